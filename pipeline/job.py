"""The Ray Data job: discover → prepare (text layer, render, classify) → OCR pools → Parquet.

    files ──flat_map(expand_document)──> page rows ──map(prepare_page)──> pages with pixels
          ──map_batches(PaddleOcrPredictor, ActorPoolStrategy)──> OCR rows     (paddle, hybrid)
          ──map_batches(VlmPredictor, whole-GPU actors)──> VLM rows           (vlm, hybrid)
          ──map_batches(to_output_table)──> write_parquet(OUT_DIR/pages)

Hybrid mode stays one linear stream: the PaddleOCR stage skips the routes the VLM reads and keeps
the pixels of low-confidence pages; the VLM stage reads what is left and escalates those.

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
from dataclasses import dataclass

import pyarrow as pa
import ray

from actors.paddle_ocr import PaddleOcrPredictor, gpu_visible
from pipeline.config import RunConfig
from pipeline.discover import expand_document
from pipeline.output import OutputDir
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


def finished_pages(out: OutputDir) -> set[tuple[str, str, int]]:
    """(source, doc_id, page_index) of every page already written; quarantines unreadable files."""
    t = out.read_pages(["source", "doc_id", "page_index"], quarantine=True)
    return set(zip(t["source"].to_pylist(), t["doc_id"].to_pylist(), t["page_index"].to_pylist()))


@dataclass
class Plan:
    """What a run will do, decided before any page is rendered."""

    total_pages: int
    todo_pages: int
    device: str
    actors: int
    cpu_threads: int | None
    actor_cpus: float = 1.0  # CPUs reserved per PaddleOCR actor
    render_cpus: float = 1.0  # CPUs reserved per render task
    vlm_device: str | None = None  # gpu | cpu, None when the mode has no VLM stage
    vlm_cpus: float = 0.0  # CPUs reserved per VLM engine
    started: float = 0.0  # when page processing began (after discovery and resume filtering)


def plan_pool(config: RunConfig, todo_pages: int, total_pages: int) -> Plan:
    """Size the actor pools from the cluster's resources (fractional GPUs or CPUs).

    The VLM engines (vlm/hybrid modes) take their GPUs first; PaddleOCR actors share what is left
    (hybrid on one GPU: set vlm.num_gpus to 0.5, or PaddleOCR runs on the CPU). The CPU
    reservations always leave room for the render tasks: an actor pool that holds every CPU would
    starve the stage that feeds it and the job would hang.
    """
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 1)
    p, v = config.paddle, config.vlm
    render_cpus = min(config.render_num_cpus, cpus / 2)
    vlm_device, vlm_gpus, vlm_cpus = None, 0.0, 0.0
    if config.mode in ("vlm", "hybrid"):
        vlm_device = "gpu" if gpus > 0 and not v.server_url else "cpu"
        vlm_gpus = v.replicas * (v.tensor_parallel_size if v.tensor_parallel_size > 1 else v.num_gpus) if vlm_device == "gpu" else 0.0
        vlm_cpus = min(1.0, cpus / 4)
    plan = Plan(total_pages, todo_pages, "none", 0, None, 0.0, render_cpus, vlm_device, vlm_cpus)
    if config.mode == "vlm":
        return plan
    paddle_gpus = gpus - vlm_gpus
    use_gpu = p.device == "gpu" or (p.device == "auto" and paddle_gpus >= p.num_gpus and gpu_visible_anywhere(gpus))
    free_cpus = cpus - render_cpus - v.replicas * vlm_cpus
    if use_gpu:
        actors = p.actors or max(1, int(paddle_gpus / p.num_gpus))
    else:
        actors = p.actors or max(1, int(free_cpus // p.num_cpus))
    actors = max(1, min(actors, max(todo_pages, 1)))
    plan.device, plan.actors = ("gpu" if use_gpu else "cpu"), actors
    plan.actor_cpus = max(0.01, min(p.num_cpus, free_cpus / actors))
    # Inference threads: on the CPU every core (rendering and classifying cost ~3% of OCR time, and
    # the reservation above only keeps Ray's scheduler from starving them); on a GPU, num_cpus.
    plan.cpu_threads = p.cpu_threads or max(1, int(p.num_cpus if use_gpu else cpus // actors))
    return plan


def gpu_visible_anywhere(gpus: float) -> bool:
    # The driver of a cluster job may have no GPU itself; Ray's GPU resource is then the evidence.
    return gpus > 0 and (gpu_visible() or not os.path.exists("/dev/nvidiactl"))


@ray.remote(num_cpus=0)
class ProgressCounter:
    """Pages written so far in this run (the shaping stage adds, the driver reads)."""

    def __init__(self):
        self.done = 0
        self.errors = 0

    def add(self, done: int, errors: int) -> None:
        self.done += done
        self.errors += errors

    def get(self) -> tuple[int, int]:
        return self.done, self.errors


def shape_output(batch: pa.Table, counter) -> pa.Table:
    """Final stage before writing: typed output rows, counted for the progress line."""
    table = to_output_table(batch)
    counter.add.remote(table.num_rows, table.num_rows - table["error"].null_count)
    return table


def build_dataset(pages: ray.data.Dataset, config: RunConfig, plan: Plan, counter) -> ray.data.Dataset:
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
        from actors.vlm import VlmPredictor, ray_remote_args

        if plan.vlm_device == "gpu":
            resources = ray_remote_args(config.vlm)
        else:  # CPU engine (tests) or a remote server: no GPU to hold
            resources = {"compute": ray.data.ActorPoolStrategy(size=config.vlm.replicas), "num_gpus": 0, "num_cpus": plan.vlm_cpus}
        ds = ds.map_batches(
            VlmPredictor,
            fn_constructor_kwargs={"config": config.model_dump(), "escalate": escalate},
            batch_size=config.vlm.batch_size,
            batch_format="pandas",
            **resources,
        )
    return ds.map_batches(shape_output, fn_kwargs={"counter": counter}, batch_format="pyarrow", num_cpus=0.1)


def discover(inputs: list[str], out: OutputDir) -> tuple[ray.data.Dataset, int, int]:
    """Page rows still to do, the total page count and the number to do."""
    files = list_inputs(inputs)
    pages = ray.data.from_items([{"source": f} for f in files]).flat_map(expand_document).materialize()
    total = pages.count()
    done = finished_pages(out)
    if done:
        pages = pages.filter(lambda r: (r["source"], r["doc_id"], r["page_index"]) not in done).materialize()
    return pages, total, pages.count()


def _write(ds: ray.data.Dataset, out: OutputDir, config: RunConfig, todo: int) -> None:
    ds.write_parquet(out.pages, filesystem=out.fs, min_rows_per_file=min(config.rows_per_file, todo))


def run_job(inputs: list[str], out_dir: str | os.PathLike, config: RunConfig, *, force: bool = False, on_progress=None) -> Plan:
    """Run the whole job; returns the plan it ran. `on_progress(done, errors, plan, started)` is polled."""
    out = OutputDir(out_dir)
    if force:
        out.clear_pages()
    init_ray(config)
    pages, total, todo = discover(inputs, out)
    plan = plan_pool(config, todo, total)
    if todo == 0:
        return plan
    pages = pages.repartition(max(1, min(todo, math.ceil(todo / config.paddle.batch_size), 4000)))
    counter = ProgressCounter.remote()
    ds = build_dataset(pages, config, plan, counter)
    started = plan.started = time.time()
    if on_progress is None:
        _write(ds, out, config, todo)
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
    return plan
