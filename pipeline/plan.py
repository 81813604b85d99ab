"""How a run uses the cluster, decided before any page is rendered: pool sizes, CPU and GPU splits.

- CPUs: the OCR actors' reservations always leave render tasks room. On a GPU node the actors
  mostly wait for the card, so half the node's CPUs stay for render/classify (one 185 DPI page
  costs ~0.09 s there: one render CPU feeds ~690 pages/min, less than one GPU's PaddleOCR pool).
  On a CPU-only node OCR is the work: the actors take all but one render slot (a 1-2 core node
  reading alone: one single-threaded actor per core, their reservations leaving render its slot).
- GPUs in hybrid mode on one shared card (`hybrid.gpu_split: auto`): PaddleOCR's actors get
  `paddle_gpu_gb` each, vLLM the rest of the card (its `gpu_memory_utilization`), both recorded
  in the plan and the run's report.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

import ray

from actors.paddle_ocr import gpu_visible, total_gpu_gb
from actors.vlm import weights_gib
from pipeline.config import RunConfig

CUDA_CONTEXT_GB = 0.6  # per process on the card, outside any memory cap
VLM_HEADROOM_GB = 8.0  # vLLM beside its weights and KV cache: activations of a prefill chunk, vision encoder, CUDA graphs


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
    render_slots: float = 1.0  # CPUs the actors leave for render tasks
    vlm_device: str | None = None  # gpu | cpu, None when the mode has no VLM stage
    vlm_cpus: float = 0.0  # CPUs reserved per VLM engine
    gpu_split: dict | None = None  # hybrid on one card: memory per pool (see module doc)
    started: float = 0.0  # when page processing began (after discovery and resume filtering)
    overrides: dict = field(default_factory=dict)  # config keys the plan set (gpu split)
    timeline: dict = field(default_factory=dict)  # filled at the end: when each engine's rows reached the writer, engines up

    def applied(self, config: RunConfig) -> RunConfig:
        """The configuration the stages run with: `config` with the plan's decisions in it."""
        if not self.overrides:
            return config
        data = config.model_dump()
        for dotted, value in self.overrides.items():
            section, key = dotted.split(".")
            data[section][key] = value
        return RunConfig.model_validate(data)

    def summary(self) -> dict:
        """The plan as the report gives it; times relative to the start of page processing."""
        keys = ("device", "actors", "cpu_threads", "actor_cpus", "render_slots", "vlm_device", "gpu_split")
        out = {k: v for k, v in asdict(self).items() if k in keys}
        t = self.timeline or {}

        def rel(at: float) -> float:
            return round(at - self.started, 1)

        if t.get("vlm_ready"):
            out["vlm_engine_up_seconds"] = [rel(x) for x in t["vlm_ready"]]
            out["vlm_engine_start_phases"] = t.get("vlm_phases", [])
        if t.get("paddle_ready"):  # the slowest actor's start: the phases of the last one ready
            at, phases = max(t["paddle_ready"], key=lambda r: r[0])
            out["paddle_actors_ready_seconds"] = [rel(min(a for a, _ in t["paddle_ready"])), rel(at)]
            out["paddle_actor_start_phases"] = phases
        if t.get("rows_by_engine"):
            out["rows_reached_writer_seconds"] = {e: [rel(a), rel(b)] for e, (a, b) in t["rows_by_engine"].items()}
        return out


def gpu_visible_anywhere(gpus: float) -> bool:
    # The driver of a cluster job may have no GPU itself; Ray's GPU resource is then the evidence.
    return gpus > 0 and (gpu_visible() or not os.path.exists("/dev/nvidiactl"))


def split_gpu(config: RunConfig, actors: int, card_gb: float | None) -> tuple[dict | None, dict]:
    """Hybrid on one shared card: (the split as reported, the config keys it sets)."""
    v, p = config.vlm, config.paddle
    shared = (v.tensor_parallel_size == 1 and v.num_gpus + actors * p.num_gpus <= 1.0 + 1e-9
              and p.accelerator_type == v.accelerator_type)  # typed pools on different groups share no card
    if config.mode != "hybrid" or config.hybrid.gpu_split != "auto" or not shared or not card_gb:
        return None, {}
    paddle_gb = actors * (config.hybrid.paddle_gpu_gb + CUDA_CONTEXT_GB)
    vlm_share = round(min(0.9, (card_gb * 0.94 - paddle_gb) / card_gb), 3)
    split = {"card_gb": round(card_gb, 1), "paddle_actors": actors, "paddle_gpu_gb_each": config.hybrid.paddle_gpu_gb,
             "vlm_gpu_memory_utilization": vlm_share, "vlm_gb": round(vlm_share * card_gb, 1)}
    overrides = {"paddle.gpu_memory_gb": config.hybrid.paddle_gpu_gb, "vlm.gpu_memory_utilization": vlm_share}
    # vLLM sizes its KV cache by profiling the card's free memory and refuses to start when another
    # process frees memory meanwhile (PaddleOCR actors that finish: seen on an H200). A KV cache
    # given in bytes skips that measurement: the VLM's share less its weights and a headroom for
    # activations, the vision encoder and CUDA graphs.
    weights = weights_gib(v.model)
    kv_gib = vlm_share * card_gb - (weights or 0) - VLM_HEADROOM_GB
    if weights is not None and kv_gib >= 2 and "kv_cache_memory_bytes" not in v.engine_kwargs:
        split["vlm_kv_cache_gb"] = round(kv_gib, 1)
        overrides["vlm.engine_kwargs"] = {**v.engine_kwargs, "kv_cache_memory_bytes": int(kv_gib * 2**30)}
    return split, overrides


def gpus_by_type() -> dict:
    """GPUs of the alive nodes by Ray accelerator type (the `accelerator_type:X` node resource; None: untyped)."""
    out: dict = {}
    for node in ray.nodes():
        if node.get("Alive"):
            res = node.get("Resources", {})
            kind = next((k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")), None)
            out[kind] = out.get(kind, 0.0) + res.get("GPU", 0.0)
    return out


def paddle_gpu_share(p, v, gpus: float, vlm_gpus: float, by_type: dict) -> float:
    """GPUs PaddleOCR's actors may count on: with `paddle.accelerator_type`, only that type's, less
    the VLM's when the VLM may land there too (same type, or untyped)."""
    if not p.accelerator_type:
        return gpus - vlm_gpus
    shared = v.accelerator_type in (None, p.accelerator_type)
    return max(0.0, by_type.get(p.accelerator_type, 0.0) - (vlm_gpus if shared else 0.0))


def inference_threads(p, use_gpu: bool, cpus: float, actors: int) -> int:
    """Inference threads of one PaddleOCR actor (or Serve replica): on a GPU `num_cpus` (the models run
    there; threads do pre/post-processing, and 8-10 actors share the node); on the CPU the node's cores
    shared among the actors (rendering and classifying cost ~3% of OCR time, and the CPU reservation
    only keeps Ray's scheduler from starving them)."""
    return p.cpu_threads or max(1, int(p.num_cpus if use_gpu else cpus // max(actors, 1)))


def plan_pool(config: RunConfig, todo_pages: int, total_pages: int) -> Plan:
    """Size the actor pools from the cluster's resources (fractional GPUs or CPUs).

    The VLM engines (vlm/hybrid modes) take their GPUs first; PaddleOCR actors share what is left
    (hybrid on one GPU: vlm.num_gpus 0.5, or PaddleOCR runs on the CPU).
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
    plan = Plan(total_pages, todo_pages, "none", 0, None, 0.0, render_cpus, cpus - v.replicas * vlm_cpus, vlm_device, vlm_cpus)
    if config.mode == "vlm":
        return plan
    paddle_gpus = paddle_gpu_share(p, v, gpus, vlm_gpus, gpus_by_type() if p.accelerator_type else {})
    use_gpu = p.device == "gpu" or (p.device == "auto" and paddle_gpus >= p.num_gpus and gpu_visible_anywhere(gpus))
    # render slots: half the node beside GPU actors, one task's worth beside CPU actors
    render_slots = max(render_cpus, cpus / 2) if use_gpu else render_cpus
    free_cpus = max(0.01, cpus - render_slots - v.replicas * vlm_cpus)
    if use_gpu:
        actors = p.actors or max(1, int(paddle_gpus / p.num_gpus))
    elif vlm_device is None and cpus < 3:
        # a 1-2 core node reading alone: one single-threaded actor per core, render tasks in the gaps.
        # On 2 cores, 2 actors x 1 thread read 1.22x the pages of 1 actor x 2 threads end to end (pool
        # 1.27x; an intra-op thread pool waits for its slowest thread, and Ray's processes and the render
        # tasks take turns on the same two cores), for ~1.1 GB more memory (README "Speed", CPU)
        actors = p.actors or max(1, int(cpus // p.num_cpus))
    else:
        actors = p.actors or max(1, int(free_cpus // p.num_cpus))
    actors = max(1, min(actors, max(todo_pages, 1)))
    plan.device, plan.actors = ("gpu" if use_gpu else "cpu"), actors
    plan.actor_cpus = max(0.01, min(p.num_cpus, free_cpus / actors))
    plan.render_slots = round(cpus - v.replicas * vlm_cpus - actors * plan.actor_cpus, 2)
    plan.cpu_threads = inference_threads(p, use_gpu, cpus, actors)
    if use_gpu and vlm_device == "gpu":
        plan.gpu_split, plan.overrides = split_gpu(config, actors, total_gpu_gb() if gpu_visible() else None)
    return plan
