"""The Ray Data job: discover → prepare (text layer, render, classify) → OCR pools → Parquet.

    files ──flat_map(expand_document)──> page rows ──map(prepare_page)──> pages with pixels
          ──map_batches(PaddleOcrPredictor, ActorPoolStrategy)──> OCR rows     (paddle, hybrid)
          ──repartition(1 row per block)──map_batches(VlmPredictor, many calls per actor)──> VLM rows   (vlm, hybrid)
          ──map_batches(to_output_table)──> write_parquet(OUT_DIR/pages)

Hybrid mode is one stream in which the two pools work at once: the PaddleOCR stage skips the
routes the VLM reads and keeps the pixels of low-confidence pages; the VLM stage takes one row per
call, many calls at once, so a row it does not read passes in a call of its own (also while vLLM
is still starting: the engine starts in the background, `actors/vlm_engine.py`), and a page it
reads leaves as soon as it is done, escalated pages as soon as PaddleOCR has read them.

Resume: pages already in OUT_DIR/pages are filtered out before any work; unreadable files left
by a killed run are moved to OUT_DIR/broken/ and their pages recomputed. OUT_DIR may be local or
an object-store URI (see pipeline/output.py).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

import pyarrow as pa
import ray

from actors.paddle_ocr import PaddleOcrPredictor
from pipeline.config import RunConfig
from pipeline.discover import expand_document
from pipeline.output import OutputDir
from pipeline.plan import Plan, plan_pool
from pipeline.prepare import prepare_page
from pipeline.schema import to_output_table
from pipeline.sources import list_inputs

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


def finished_pages(out: OutputDir) -> set[tuple[str, str, int]]:
    """(source, doc_id, page_index) of every page already written; quarantines unreadable files."""
    t = out.read_pages(["source", "doc_id", "page_index"], quarantine=True)
    return set(zip(t["source"].to_pylist(), t["doc_id"].to_pylist(), t["page_index"].to_pylist()))


@ray.remote(num_cpus=0)
class ProgressCounter:
    """Pages that reached the writer in this run (the shaping stage adds, the driver reads), and
    when: per engine the first and last such time, and when each VLM engine was up."""

    def __init__(self):
        self.done = 0
        self.errors = 0
        self.engines: dict[str, list[float]] = {}  # engine -> [first, last] time its rows reached the writer
        self.vlm_ready: list[float] = []

    def add(self, done: int, errors: int, engines: tuple = ()) -> None:
        self.done += done
        self.errors += errors
        now = time.time()
        for engine in engines:
            self.engines.setdefault(engine, [now, now])[1] = now

    def engine_ready(self, at: float) -> None:
        self.vlm_ready.append(at)

    def get(self) -> tuple[int, int]:
        return self.done, self.errors

    def timeline(self) -> dict:
        return {"rows_by_engine": self.engines, "vlm_ready": self.vlm_ready}


def shape_output(batch: pa.Table, counter) -> pa.Table:
    """Final stage before writing: typed output rows, counted for the progress line."""
    table = to_output_table(batch)
    engines = tuple(set(table["engine"].to_pylist()))
    counter.add.remote(table.num_rows, table.num_rows - table["error"].null_count, engines)
    return table


def build_dataset(pages: ray.data.Dataset, config: RunConfig, plan: Plan, counter) -> ray.data.Dataset:
    config = plan.applied(config)
    p, mode = config.paddle, config.mode
    ds = pages.map(prepare_page, fn_kwargs={"config": config}, num_cpus=plan.render_cpus)
    escalate = mode == "hybrid" and config.hybrid.escalate
    if mode in ("paddle", "hybrid"):
        ocr_resources = {"num_gpus": p.num_gpus} if plan.device == "gpu" else {}
        ds = ds.map_batches(
            PaddleOcrPredictor,
            fn_constructor_kwargs={
                "config": config.model_dump(), "cpu_threads": plan.cpu_threads,
                "skip_routes": tuple(config.hybrid.vlm_routes) if mode == "hybrid" else (),
                "keep_pixels_below": config.vlm.escalate_below if escalate else None,
            },
            batch_size=p.batch_size,
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=plan.actors),
            num_cpus=plan.actor_cpus,
            # Ray sets OMP_NUM_THREADS to a worker's CPU reservation (often 1); the pre- and
            # post-processing (OpenCV, NumPy) should use the threads the plan gives inference.
            runtime_env={"env_vars": {**_WORKER_ENV, "OMP_NUM_THREADS": str(plan.cpu_threads)}},
            **ocr_resources,
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


def discover(files: list[str], out: OutputDir) -> tuple[ray.data.Dataset, int, int]:
    """Page rows still to do, the total page count and the number to do."""
    pages = ray.data.from_items([{"source": f} for f in files]).flat_map(expand_document).materialize()
    total = pages.count()
    done = finished_pages(out)
    if done:
        pages = pages.filter(lambda r: (r["source"], r["doc_id"], r["page_index"]) not in done).materialize()
    return pages, total, pages.count()


def _write(ds: ray.data.Dataset, out: OutputDir, config: RunConfig, todo: int) -> None:
    # Write tasks reserve no CPU: on a small node the pools' reservations take every CPU, and a
    # writer waiting for one would hold every finished row until OCR had ended.
    ds.write_parquet(out.pages, filesystem=out.fs, min_rows_per_file=min(config.rows_per_file, todo),
                     ray_remote_args={"num_cpus": 0})


def run_job(inputs: list[str], out_dir: str | os.PathLike, config: RunConfig, *, force: bool = False, on_progress=None) -> Plan:
    """Run the whole job; returns the plan it ran. `on_progress(done, errors, plan, started)` is polled."""
    files = list_inputs(inputs)  # a missing input is refused before Ray starts
    check_engines(config)
    out = OutputDir(out_dir)
    if force:
        out.clear_pages()
    init_ray(config)
    pages, total, todo = discover(files, out)
    plan = plan_pool(config, todo, total)
    if todo == 0:
        return plan
    pages = pages.repartition(max(1, min(todo, math.ceil(todo / config.paddle.batch_size), 4000)))
    counter = ProgressCounter.remote()
    ds = build_dataset(pages, config, plan, counter)
    started = plan.started = time.time()
    if on_progress is None:
        _write(ds, out, config, todo)
        plan.timeline = ray.get(counter.timeline.remote())
        return plan
    finished = threading.Event()
    failure: list[BaseException] = []

    def _write_in_thread():
        try:
            _write(ds, out, config, todo)
        except BaseException as e:
            failure.append(e)
        finally:
            finished.set()

    writer = threading.Thread(target=_write_in_thread, daemon=True)
    writer.start()
    while not finished.wait(2.0):
        done, errors = ray.get(counter.get.remote())
        on_progress(done, errors, plan, started)
    done, errors = ray.get(counter.get.remote())
    on_progress(done, errors, plan, started)
    if failure:
        raise failure[0]
    plan.timeline = ray.get(counter.timeline.remote())
    return plan
