"""The engines as Ray Serve deployments: the batch job's own classes, no second code path.

`PaddleReader` holds a `PaddleOcrPredictor` (actors/paddle_ocr.py) and reads pages gathered across
requests (pipeline/serve/batching.py); `VlmReader` holds a `VlmPredictor` (actors/vlm_predictor.py) whose
`VlmEngine` keeps many requests in vLLM at once. Both take and return the batch job's page rows
(`prepare_page` output), so a page served equals the batch job's row for that page.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pandas as pd
from ray import serve

from actors.cuda_sync import mps_active
from actors.paddle_ocr import PaddleOcrPredictor, resolve_device
from actors.vlm import gpu_bundle, max_in_flight
from pipeline.config import RunConfig
from pipeline.plan import inference_threads
from pipeline.serve.batching import PageBatcher
from pipeline.serve.routing import ROUTER

log = logging.getLogger(__name__)

# the batched reader's steps (actors/paddle_batched.py) and the page structure after them (layout, tables:
# actors/paddle_ocr.py) that a Serve answer reports, each page's share of its call
STEPS = ("det", "det_infer", "crop", "rec", "rec_infer", "structure")


def step_seconds(steps: dict | None, before: dict) -> dict:
    """Seconds by step since `before` (a copy of the reader's `timings`; paddleocr's own reader has none)."""
    return {k: v - before.get(k, 0.0) for k, v in (steps or {}).items() if k in STEPS}


def _rows(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if v is pd.NA else v) for k, v in row.items()} for row in frame.to_dict("records")]


@serve.deployment(name="PaddleReader")
class PaddleReader:
    """PaddleOCR on fractional GPUs or CPU; pages of concurrent requests share one inference call."""

    def __init__(self, config: dict):
        self.cfg = RunConfig.model_validate(config)
        # decided here, on the replica's node: the machine that built the app may be a 2-core head
        self.threads = paddle_threads(self.cfg, node_cpus())
        # Ray set it to the replica's 1 CPU; this reaches OpenMP runtimes started from here on (NumPy's
        # OpenBLAS read it at import; ONNX Runtime's sessions get `threads` themselves)
        os.environ["OMP_NUM_THREADS"] = str(self.threads)
        self.predictor = PaddleOcrPredictor(config, cpu_threads=self.threads)
        self.pages_per_call = serve_batch_size(self.cfg, self.predictor.device)
        self.concurrent_batches = self.cfg.serve.paddle_concurrent_batches
        # replicas sharing a card: their small calls gain most from CUDA MPS (actors/cuda_sync.py, README "Online: Ray Serve")
        self.cuda_mps = mps_active() if self.predictor.device == "gpu" else None
        if self.cuda_mps is False and self.cfg.paddle.num_gpus < 1:
            log.warning("PaddleReader shares its GPU (%s of it) without CUDA MPS: its calls and the other replicas' take "
                        "the card in turns. Start `nvidia-cuda-mps-control -d` on GPU nodes before Ray (README \"Online: Ray Serve\": "
                        "1.14-1.47 x the pages at concurrency 32 on an H100)", self.cfg.paddle.num_gpus)
        from ray.serve import metrics

        # Serve's batching for Prometheus: small calls cost GPU time a page (cluster/gpu-bench/SERVE.md, H100 runs)
        self.call_pages = metrics.Histogram("hybridocr_paddle_call_pages", "Pages per PaddleOCR call in a replica",
                                            boundaries=[1, 2, 3, 4, 6, 8, 12, 16, 32])
        self.queued_pages = metrics.Gauge("hybridocr_paddle_queued_pages", "Pages waiting in a replica for a PaddleOCR call")
        # the batch is formed when a call is free to read it, from every page that waited meanwhile
        # (pipeline/serve/batching.py says why not `@serve.batch`)
        self.read_batch = PageBatcher(self._read_pages, self.pages_per_call, self.cfg.serve.batch_wait_timeout_s,
                                      readers=self.concurrent_batches, on_queue=self.queued_pages.set)

    async def _read_pages(self, queued: list[tuple[float, dict]]) -> list[dict]:
        rows = [row for _, row in queued]
        steps = getattr(self.predictor.read, "timings", None)  # the batched reader's seconds per step, added up
        before = dict(steps) if steps is not None else {}
        start = time.perf_counter()
        # inference off the replica's event loop, so requests keep arriving while it runs
        read = _rows(await asyncio.to_thread(self.predictor, pd.DataFrame(rows)))
        n = len(rows)
        self.call_pages.observe(n)
        # each page's share of the call, by step (with two calls at once the steps of both mix)
        shares = {k: round(v / n, 4) for k, v in step_seconds(steps, before).items()}
        shares["call"] = round((time.perf_counter() - start) / n, 4)
        for row, (arrived, _) in zip(read, queued):
            row["batch_pages"] = n  # how many pages shared this inference call (its seconds_ocr is a share of the call)
            row["ocr_steps"] = shares
            row["queued_seconds"] = round(start - arrived, 4)  # waiting in this replica for a call
        return read

    async def read(self, row: dict) -> dict:
        return await self.read_batch((time.perf_counter(), row))

    def info(self) -> dict:
        counts = getattr(self.predictor.read, "counts", {})
        return {"model": self.predictor.model, "device": self.predictor.device, "pages_per_call": self.pages_per_call,
                "concurrent_batches": self.concurrent_batches, "threads": self.threads, "cuda_mps": self.cuda_mps,
                "queued_pages": self.read_batch.queued(),
                # runs repeated after a capped ONNX Runtime arena gave back its free regions, and batches read in
                # halves because they did not fit its cap even then (actors/arena.py)
                **{k: counts.get(k, 0) for k in ("arena_releases", "arena_splits")}}


@serve.deployment(name="VlmReader")
class VlmReader:
    """The VLM engine (vLLM's AsyncLLM, or a `vllm serve` client): one request per page, many in flight."""

    def __init__(self, config: dict):
        from actors.vlm_predictor import VlmPredictor

        self.predictor = VlmPredictor(config, escalate=True)  # the ingress sends only pages the VLM must read

    async def read(self, row: dict) -> dict:
        return _rows(await self.predictor.acall(pd.DataFrame([row])))[0]

    def check_health(self) -> None:
        error = self.predictor.engine.start_error()
        if error is not None:  # a failed start: Serve restarts the replica
            raise RuntimeError(f"the VLM engine failed to start: {error}")

    def info(self) -> dict:
        engine = self.predictor.engine
        return {"model": self.predictor.model, "ready": engine.ready_at is not None, "start_phases_s": engine.phases}


def _gpus_in_cluster() -> bool:
    import ray

    if not ray.is_initialized():  # building the app before connecting (`serve build`): this machine's view
        from actors.paddle_ocr import gpu_visible

        return gpu_visible()
    return ray.cluster_resources().get("GPU", 0) > 0


def paddle_on_gpu(cfg: RunConfig) -> bool:
    return resolve_device(cfg.paddle) == "gpu" or (cfg.paddle.device == "gpu" and _gpus_in_cluster())


def serve_batch_size(cfg: RunConfig, device: str) -> int:
    """Pages a PaddleReader replica reads per call: `serve.paddle_batch_size`, else as the batch job's actors."""
    return cfg.serve.paddle_batch_size or cfg.paddle.pages_per_call(device)


def node_cpus() -> float:
    """The CPUs Ray gives the node this process runs on (a pod's limit, not the host's cores); outside Ray,
    this machine's cores."""
    import ray

    if ray.is_initialized():
        me = ray.get_runtime_context().get_node_id()
        for node in ray.nodes():
            if node["NodeID"] == me and node["Resources"].get("CPU"):
                return node["Resources"]["CPU"]
    return os.cpu_count() or 1


def paddle_threads(cfg: RunConfig, cpus: float | None = None, gpu: bool | None = None) -> int:
    """Inference threads of a PaddleReader replica: as the batch job's actors on a GPU (`paddle.num_cpus`:
    ten replicas with a thread per core each would fight over the node); on the CPU every core of its node
    (`cpus`, default this machine's). `gpu`: where the replicas read, when the caller knows it already."""
    gpu = paddle_on_gpu(cfg) if gpu is None else gpu
    return inference_threads(cfg.paddle, gpu, cpus or os.cpu_count() or 1, 1)


def paddle_options(cfg: RunConfig) -> dict:
    """Deployment options for PaddleReader from the config: autoscaling, queue bound, resources."""
    gpu = paddle_on_gpu(cfg)
    a = cfg.serve.paddle
    # on a GPU the threads are the config's; on the CPU the replica counts its node's cores itself
    env = {"OMP_NUM_THREADS": str(paddle_threads(cfg, gpu=gpu))} if gpu else {}
    return {
        "autoscaling_config": {"min_replicas": a.min_replicas, "max_replicas": a.max_replicas,
                               "target_ongoing_requests": a.target_ongoing_requests},
        # four times what the calls in flight hold (serve.paddle_concurrent_batches of them)
        "max_ongoing_requests": 4 * serve_batch_size(cfg, "gpu" if gpu else "cpu") * cfg.serve.paddle_concurrent_batches,
        **({"request_router_config": {"request_router_class": ROUTER}} if cfg.serve.paddle_router == "least_loaded" else {}),
        "ray_actor_options": {"num_cpus": 1, "num_gpus": cfg.paddle.num_gpus if gpu else 0,
                              **({"accelerator_type": cfg.paddle.accelerator_type} if gpu and cfg.paddle.accelerator_type else {}),
                              **({"runtime_env": {"env_vars": env}} if env else {})},
    }


def vlm_options(cfg: RunConfig) -> dict:
    """Deployment options for VlmReader: whole GPUs (a STRICT_PACK placement group for tensor
    parallelism, as Serve's own LLM deployments do), or CPU for the CPU build / a remote server."""
    v, a = cfg.vlm, cfg.serve.vlm
    opts: dict = {
        "autoscaling_config": {"min_replicas": a.min_replicas, "max_replicas": a.max_replicas,
                               "target_ongoing_requests": a.target_ongoing_requests},
        "max_ongoing_requests": 4 * max_in_flight(v),
        # vLLM's start (weights, CUDA graphs) takes minutes on a fresh node
        "health_check_period_s": 10, "health_check_timeout_s": 60, "graceful_shutdown_timeout_s": 30,
    }
    if v.server_url or not _gpus_in_cluster():
        opts["ray_actor_options"] = {"num_cpus": 1, "num_gpus": 0}
    elif v.tensor_parallel_size > 1:
        opts["ray_actor_options"] = {"num_cpus": 1, "num_gpus": 0}
        opts["placement_group_bundles"] = [{"CPU": 1}] + [gpu_bundle(v)] * v.tensor_parallel_size
        opts["placement_group_strategy"] = "STRICT_PACK"
    else:
        opts["ray_actor_options"] = {"num_cpus": 1, "num_gpus": v.num_gpus,
                                     **({"accelerator_type": v.accelerator_type} if v.accelerator_type else {})}
    return opts
