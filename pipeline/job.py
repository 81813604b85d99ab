"""The Ray Data job: discover → prepare (text layer, render, classify) → OCR pools → Parquet.

    files ──map(describe_document)──> documents (driver: merge duplicates, skip finished pages)
          ──flat_map(expand_pages)──> page rows ──map(prepare_page)──> pages with pixels
          ──map_batches(PaddleOcrPredictor, ActorPoolStrategy)──> OCR rows     (paddle, hybrid)
          ──repartition(1 row per block)──map_batches(VlmPredictor, many calls per actor)──> VLM rows   (vlm, hybrid)
          ──map_batches(to_output_table)──> write_parquet(OUT_DIR/pages)

Hybrid mode is one stream in which the two pools work at once: the PaddleOCR stage skips the
routes the VLM reads and keeps the pixels of low-confidence pages; the VLM stage takes one row per
call, many calls at once, so a row it does not read passes in a call of its own (also while vLLM
is still starting: the engine starts in the background, `actors/vlm_engine.py`), and a page it
reads leaves as soon as it is done, escalated pages as soon as PaddleOCR has read them.

Exactly once: a page is (doc_id = content hash, page_index), whatever path reached it; one run
writes an OUT_DIR at a time (pipeline/lock.py); pages whose ok row is in OUT_DIR/pages are skipped
before any work, error rows are retried (unless `retry_errors=False`) and replaced; unreadable
files left by a killed run are moved to OUT_DIR/broken/ and their pages recomputed. OUT_DIR may be
local or an object-store URI (see pipeline/output.py).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.paddle_ocr import PaddleOcrPredictor
from pipeline.config import RunConfig
from pipeline.discover import describe_document, expand_pages
from pipeline.lock import RunLock
from pipeline.output import OutputDir
from pipeline.plan import Plan, plan_pool
from pipeline.prepare import prepare_page
from pipeline.schema import to_output_table
from pipeline.sources import list_inputs, resolve

log = logging.getLogger(__name__)
_WORKER_ENV = {"PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK": "True", "PYTHONWARNINGS": "ignore"}


def init_ray(config: RunConfig) -> None:
    """Join the cluster a job was submitted to (RAY_ADDRESS) or start an embedded local Ray."""
    if ray.is_initialized():
        return
    address = config.ray_address or os.environ.get("RAY_ADDRESS")
    ray.init(
        address=address,
        include_dashboard=False if address is None else None,
        logging_level=logging.WARNING,
        log_to_driver=True,
        runtime_env={"env_vars": _WORKER_ENV},
    )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI prints one progress line with pages/min and ETA
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class EngineMissing(RuntimeError):
    """The mode needs an engine that is not installed here; the message names the install command."""


def check_engines(config: RunConfig) -> None:
    """vlm and hybrid modes need vLLM (or vlm.server_url): refuse at once, not after Ray's start.

    Only for local runs: a job on a cluster (RAY_ADDRESS) may have vLLM on its GPU nodes alone."""
    import importlib.util

    remote = config.ray_address or os.environ.get("RAY_ADDRESS")
    if config.mode in ("vlm", "hybrid") and not config.vlm.server_url and not remote and importlib.util.find_spec("vllm") is None:
        raise EngineMissing(f"--mode {config.mode} needs vLLM, which is not installed here: run "
                            "`VLM=gpu bash cluster/install.sh` (GPU) or `VLM=cpu bash cluster/install.sh` (CPU build), "
                            "or set vlm.server_url to a running `vllm serve`")


@ray.remote(num_cpus=0)
class ProgressCounter:
    """Pages that reached the writer in this run (the shaping stage adds, the driver reads), and
    when: per engine the first and last such time, and when each VLM engine was up."""

    def __init__(self):
        self.done = 0
        self.errors = 0
        self.engines: dict[str, list[float]] = {}  # engine -> [first, last] time its rows reached the writer
        self.vlm_ready: list[float] = []
        self.vlm_phases: list[dict] = []  # per engine: seconds of each start phase (VlmEngine.phases)
        self.paddle_ready: list[tuple[float, dict]] = []  # per PaddleOCR actor: when it was ready, its start phases

    def add(self, done: int, errors: int, engines: tuple = ()) -> None:
        self.done += done
        self.errors += errors
        now = time.time()
        for engine in engines:
            self.engines.setdefault(engine, [now, now])[1] = now

    def engine_ready(self, at: float, phases: dict | None = None) -> None:
        self.vlm_ready.append(at)
        self.vlm_phases.append(phases or {})

    def actor_ready(self, at: float, phases: dict) -> None:
        self.paddle_ready.append((at, phases))

    def get(self) -> tuple[int, int]:
        return self.done, self.errors

    def timeline(self) -> dict:
        return {"rows_by_engine": self.engines, "vlm_ready": self.vlm_ready, "vlm_phases": self.vlm_phases,
                "paddle_ready": self.paddle_ready}


def shape_output(batch: pa.Table, counter) -> pa.Table:
    """Final stage before writing: typed output rows, counted for the progress line."""
    table = to_output_table(batch)
    engines = tuple(set(table["engine"].to_pylist()))
    counter.add.remote(table.num_rows, table.num_rows - table["error"].null_count, engines)
    return table


def paddle_remote_args(p, plan: Plan) -> dict:
    """GPU share of a PaddleOCR actor, on nodes of `paddle.accelerator_type` when set (the cluster's
    L4 group, say, never the VLM's H100s); nothing on the CPU."""
    if plan.device != "gpu":
        return {}
    return {"num_gpus": p.num_gpus, **({"accelerator_type": p.accelerator_type} if p.accelerator_type else {})}


def build_dataset(pages: ray.data.Dataset, config: RunConfig, plan: Plan, counter, ocr: bool = True) -> ray.data.Dataset:
    """The stages after discovery; with `ocr` False (no page needs OCR) no engine pool at all."""
    config = plan.applied(config)
    p, mode = config.paddle, config.mode if ocr else "none"
    ds = pages.map(prepare_page, fn_kwargs={"config": config}, num_cpus=plan.render_cpus)
    escalate = mode == "hybrid" and config.hybrid.escalate
    if mode in ("paddle", "hybrid"):
        ds = ds.map_batches(
            PaddleOcrPredictor,
            fn_constructor_kwargs={
                "config": config.model_dump(), "cpu_threads": plan.cpu_threads,
                "skip_routes": tuple(config.hybrid.vlm_routes) if mode == "hybrid" else (),
                "keep_pixels_below": config.vlm.escalate_below if escalate else None,
                # the VLM on a GPU: its CPU work (start, request preparation) is small and on the critical path
                "nice": config.hybrid.paddle_nice if mode == "hybrid" and plan.vlm_device == "gpu" else 0,
                "on_ready": counter.actor_ready.remote,
            },
            batch_size=p.pages_per_call(plan.device),
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.actor_cpus,
            # Ray sets OMP_NUM_THREADS to a worker's CPU reservation (often 1); the pre- and
            # post-processing (OpenCV, NumPy) should use the threads the plan gives inference.
            runtime_env={"env_vars": {**_WORKER_ENV, "OMP_NUM_THREADS": str(plan.cpu_threads)}},
            **paddle_remote_args(p, plan),
        )
    if mode in ("vlm", "hybrid"):
        from actors.vlm import ray_remote_args, vlm_pool
        from actors.vlm_predictor import VlmPredictor

        vlm = config.vlm
        if plan.vlm_device == "gpu":
            resources = ray_remote_args(vlm)
        else:  # CPU engine (tests) or a remote server: no GPU to hold
            resources = {"compute": vlm_pool(vlm), "num_gpus": 0}
        # one call per row: a call waits only for its own page (Ray Data bundles whole blocks into a call)
        ds = ds.repartition(target_num_rows_per_block=vlm.batch_size)
        ds = ds.map_batches(
            VlmPredictor,
            fn_constructor_kwargs={"config": vlm.model_dump(), "escalate": escalate, "on_ready": counter.engine_ready.remote},
            batch_size=vlm.batch_size,
            batch_format="pandas",
            num_cpus=plan.vlm_cpus,
            **resources,
        )
    return ds.map_batches(shape_output, fn_kwargs={"counter": counter}, batch_format="pyarrow", num_cpus=0.1)


def merge_duplicates(docs: list[dict]) -> list[dict]:
    """One document per content: byte-identical files under several names become one document
    (its first name is `source`, every name is in `sources`), so each page is read and written once."""
    by_id: dict[str, dict] = {}
    for d in docs:
        if d["doc_id"] in by_id:
            by_id[d["doc_id"]]["sources"].append(d["source"])
        else:
            by_id[d["doc_id"]] = {**d, "sources": [d["source"]]}
    return list(by_id.values())


def discover(files: list[str], out: OutputDir, config: RunConfig, retry_errors: bool = True) -> tuple[list[dict], int, int, dict]:
    """Document rows still to do (each with the page indices to skip), the total page count, the
    number of pages to do, and {input name: doc_id}. Pages are keyed by (doc_id, page_index):
    content, not path."""
    docs = ray.data.from_items([{"source": f, "path": resolve(f)} for f in files]).map(
        describe_document, fn_kwargs={"text_layer": config.text_layer}).take_all()
    order = {f: i for i, f in enumerate(files)}
    docs = merge_duplicates(sorted(docs, key=lambda d: order[d["source"]]))
    out.read_pages(["page_id"], quarantine=True)  # unreadable files a killed run left: to broken/, pages redone
    ok, failed = out.compact()
    done = ok if retry_errors else ok | failed
    total = todo = 0
    todo_docs = []
    for d in docs:
        pages = 1 if d["error"] else d["page_count"]
        skip = [i for i in range(pages) if f"{d['doc_id']}:{i}" in done] if done else []
        total += pages
        if len(skip) < pages:
            todo += pages - len(skip)
            todo_docs.append({**d, "skip": skip})
    return todo_docs, total, todo, {name: d["doc_id"] for d in docs for name in d["sources"]}


def _write(ds: ray.data.Dataset, out: OutputDir, config: RunConfig, todo: int, plan: Plan) -> None:
    # Write tasks reserve no CPU: on a small node the pools' reservations take every CPU, and a
    # writer waiting for one would hold every finished row until OCR had ended.
    rows = config.rows_per_file or (256 if "gpu" in (plan.device, plan.vlm_device) else 8)
    ds.write_parquet(out.pages, filesystem=out.fs, min_rows_per_file=min(rows, todo),
                     ray_remote_args={"num_cpus": 0})


def run_job(inputs: list[str], out_dir: str | os.PathLike, config: RunConfig, *, force: bool = False,
            retry_errors: bool = True, on_progress=None, command: str = "") -> Plan:
    """Run the whole job; returns the plan it ran. `on_progress(done, errors, plan, started)` is polled.

    Refused before Ray starts: a missing input, a missing engine, an OUT_DIR another run writes."""
    files = list_inputs(inputs)
    check_engines(config)
    out = OutputDir(out_dir)
    with RunLock(out.fs, out.path, out.location, command or f"run {' '.join(inputs)}"):
        if force:
            out.clear_pages()
        init_ray(config)
        docs, total, todo, current = discover(files, out, config, retry_errors)
        plan = plan_pool(config, todo, total)
        if todo == 0:
            out.compact(current)
            return plan
        ocr = any(d["needs_ocr"] and not d["error"] for d in docs)
        pages = ray.data.from_items(docs).flat_map(expand_pages)
        pages = pages.repartition(max(1, min(todo, math.ceil(todo / config.paddle.pages_per_call(plan.device)), 4000)))
        # on the driver's node: a worker node's death must not take the job's progress with it
        # (Ray Data retries the tasks and restarts the actors it had elsewhere; this actor has no copy)
        counter = ProgressCounter.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=False)).remote()
        if not ocr:  # every page from the text layer (or an error row): no OCR actor, no engine start
            plan.actors, plan.vlm_device = 0, None
        ds = build_dataset(pages, config, plan, counter, ocr=ocr)
        plan.started = time.time()
        _run(ds, out, config, todo, plan, counter, on_progress)
        out.compact(current)  # a retried error row, or a changed file's old rows, give way to the new rows
        return plan


def _run(ds, out: OutputDir, config: RunConfig, todo: int, plan: Plan, counter, on_progress) -> None:
    if on_progress is None:
        _write(ds, out, config, todo, plan)
        plan.timeline = ray.get(counter.timeline.remote())
        return
    finished = threading.Event()
    failure: list[BaseException] = []

    def _write_in_thread():
        try:
            _write(ds, out, config, todo, plan)
        except BaseException as e:
            failure.append(e)
        finally:
            finished.set()

    writer = threading.Thread(target=_write_in_thread, daemon=True)
    writer.start()
    while not finished.wait(2.0):
        done, errors = ray.get(counter.get.remote())
        on_progress(done, errors, plan, plan.started)
    done, errors = ray.get(counter.get.remote())
    on_progress(done, errors, plan, plan.started)
    if failure:
        raise failure[0]
    plan.timeline = ray.get(counter.timeline.remote())
