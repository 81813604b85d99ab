"""The plan: pool sizes, the CPUs left for rendering, and the GPU split of a hybrid run on one card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.config import load_config
from pipeline.plan import CUDA_CONTEXT_GB, Plan, split_gpu
from tests.conftest import REPO


@pytest.mark.parametrize("name, card_gb, actors", [("gpu-hybrid.yaml", 141.0, 8), ("gpu-hybrid-80gb.yaml", 80.0, 4)])
def test_hybrid_gpu_split_gives_vllm_what_paddleocr_leaves(name, card_gb, actors):
    config = load_config(REPO / "configs" / name)
    split, overrides = split_gpu(config, config.paddle.actors, card_gb)
    assert split["paddle_actors"] == actors
    paddle_gb = actors * (config.hybrid.paddle_gpu_gb + CUDA_CONTEXT_GB)
    vlm_gb = split["vlm_gpu_memory_utilization"] * card_gb
    assert paddle_gb + vlm_gb <= 0.95 * card_gb and vlm_gb > 40  # weights ~17 GB + KV cache for max_num_seqs pages
    applied = Plan(1, 1, "gpu", actors, 2, overrides=overrides).applied(config)
    assert applied.vlm.gpu_memory_utilization == split["vlm_gpu_memory_utilization"]
    assert applied.paddle.gpu_memory_gb == config.hybrid.paddle_gpu_gb
    # not split: another mode, the split turned off, or the pools on cards of their own
    assert split_gpu(config.model_copy(update={"mode": "paddle"}), actors, card_gb) == (None, {})
    off = load_config(REPO / "configs" / name, {"hybrid.gpu_split": "config"})
    assert split_gpu(off, actors, card_gb) == (None, {})
    whole = load_config(REPO / "configs" / name, {"vlm.num_gpus": 1.0})
    assert split_gpu(whole, actors, card_gb) == (None, {})


SCRIPT = textwrap.dedent(
    """
    import json, sys, ray
    from pipeline.config import load_config
    from pipeline.plan import plan_pool
    ray.init(num_cpus=16, num_gpus=1, include_dashboard=False, log_to_driver=False)
    out = {}
    for name in ("gpu.yaml", "gpu-hybrid.yaml"):
        plan = plan_pool(load_config("configs/" + name), 2000, 2000)
        out[name] = {"actors": plan.actors, "actor_cpus": plan.actor_cpus, "render_slots": plan.render_slots,
                     "vlm_cpus": plan.vlm_cpus, "device": plan.device, "cpu_threads": plan.cpu_threads}
    print("PLAN" + json.dumps(out))
    """
)


def test_gpu_actors_leave_half_the_node_to_render():
    # A Ray with 16 logical CPUs and one logical GPU (own process: the session's Ray has neither).
    # configs/gpu.yaml once reserved 8 x 1.875 CPUs for the actors, leaving one render task to feed them.
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    line = next((l for l in done.stdout.splitlines() if l.startswith("PLAN")), None)
    assert line, done.stderr[-3000:]
    plans = json.loads(line[4:])
    paddle = plans["gpu.yaml"]
    assert paddle["device"] == "gpu" and paddle["actors"] == 10
    assert paddle["render_slots"] >= 8 and paddle["actors"] * paddle["actor_cpus"] <= 8
    assert paddle["cpu_threads"] == 2
    hybrid = plans["gpu-hybrid.yaml"]
    assert hybrid["actors"] == 8 and hybrid["render_slots"] >= 7 and hybrid["vlm_cpus"] == 1.0
    assert hybrid["actors"] * hybrid["actor_cpus"] + hybrid["vlm_cpus"] + hybrid["render_slots"] <= 16 + 1e-6


def test_serve_replicas_on_a_gpu_get_the_batch_actors_threads():
    """Ten PaddleReader replicas with a thread per core each (16 x 4 sessions x 10) fought over the node."""
    from pipeline.serve.deployments import paddle_options, paddle_threads

    gpu = load_config(REPO / "configs" / "gpu.yaml")
    assert paddle_threads(gpu) == int(gpu.paddle.num_cpus) == 2
    assert paddle_options(gpu)["ray_actor_options"]["runtime_env"]["env_vars"]["OMP_NUM_THREADS"] == "2"
    cpu = load_config(REPO / "configs" / "cpu.yaml", {"paddle.device": "cpu"})
    assert paddle_threads(cpu) == (cpu.paddle.cpu_threads or os.cpu_count())  # one replica reads with every core
    assert paddle_threads(cpu, 24) == (cpu.paddle.cpu_threads or 24)  # ... of its own node, counted there
    assert "runtime_env" not in paddle_options(cpu)["ray_actor_options"]  # not this machine's count
    assert paddle_threads(cpu, 24, gpu=True) == (cpu.paddle.cpu_threads or int(cpu.paddle.num_cpus))  # as told
    # a replica takes as many requests as its batches in flight hold, four times over
    one, two = paddle_options(cpu), paddle_options(cpu.model_copy(update={"serve": cpu.serve.model_copy(update={"paddle_concurrent_batches": 2})}))
    assert (one["max_ongoing_requests"], two["max_ongoing_requests"]) == (4, 8)


CPU_SCRIPT = textwrap.dedent(
    """
    import json, ray
    from pipeline.config import RunConfig
    from pipeline.plan import plan_pool
    ray.init(num_cpus=int(__import__("sys").argv[1]), num_gpus=0, include_dashboard=False, log_to_driver=False)
    out = {m: (lambda p: [p.actors, p.cpu_threads, p.actor_cpus, p.render_slots])(
        plan_pool(RunConfig.model_validate({"mode": m, "paddle": {"device": "cpu"}}), 16, 16)) for m in ("paddle", "hybrid")}
    print("PLAN" + json.dumps(out))
    """
)


@pytest.mark.parametrize("cpus, paddle, hybrid", [(2, [2, 1], [1, 2]), (4, [3, 1], [2, 2])])
def test_small_cpu_nodes_read_with_one_single_threaded_actor_per_core(cpus, paddle, hybrid):
    # 2 cores: 2 actors x 1 thread read 1.22x the pages of 1 actor x 2 threads (README "Speed", CPU);
    # beside a VLM on the same CPUs (hybrid) one actor stays; larger nodes keep a whole render slot
    done = subprocess.run([sys.executable, "-c", CPU_SCRIPT, str(cpus)], cwd=REPO, capture_output=True, text=True, timeout=300)
    line = next((l for l in done.stdout.splitlines() if l.startswith("PLAN")), None)
    assert line, done.stderr[-3000:]
    plans = json.loads(line[4:])
    assert plans["paddle"][:2] == paddle and plans["hybrid"][:2] == hybrid, plans
    for actors, _, actor_cpus, render_slots in plans.values():  # reservations fit the node, render keeps room
        assert actors * actor_cpus + render_slots <= cpus + 1e-6 and render_slots >= 0.5


def test_hybrid_split_gives_vllm_its_kv_cache_in_bytes(tmp_path):
    # vLLM's memory profiling fails when PaddleOCR actors free the card meanwhile (H200, 2026-12-02):
    # with the KV cache in bytes it does not measure; its size is the VLM's share less the weights
    from actors.vlm import weights_gib
    from pipeline.bench_model import CONFIG
    from pipeline.plan import VLM_HEADROOM_GB

    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    assert 15.0 < weights_gib(str(tmp_path)) < 15.8  # Qwen2.5-VL-7B: 8.29 B weights in bf16
    config = load_config(REPO / "configs" / "gpu-hybrid.yaml", {"vlm.model": str(tmp_path)})
    split, overrides = split_gpu(config, config.paddle.actors, 141.0)
    kv = overrides["vlm.engine_kwargs"]["kv_cache_memory_bytes"] / 2**30
    assert kv == pytest.approx(split["vlm_gb"] - weights_gib(str(tmp_path)) - VLM_HEADROOM_GB, abs=0.1) and kv > 16
    applied = Plan(1, 1, "gpu", 8, 2, overrides=overrides).applied(config)
    assert applied.vlm.engine_kwargs["kv_cache_memory_bytes"] == int(kv * 2**30)
    # a hub name (no local config) or a size the user gave: vLLM's own profiling, untouched
    assert "vlm.engine_kwargs" not in split_gpu(load_config(REPO / "configs" / "gpu-hybrid.yaml"), 8, 141.0)[1]
    mine = load_config(REPO / "configs" / "gpu-hybrid.yaml", {"vlm.model": str(tmp_path), "vlm.engine_kwargs": {"kv_cache_memory_bytes": 123}})
    assert "vlm.engine_kwargs" not in split_gpu(mine, 8, 141.0)[1]


PLACE = textwrap.dedent(
    """
    import json, sys, tempfile, ray
    from ray.cluster_utils import Cluster
    from pipeline.config import load_config
    from pipeline.plan import plan_pool
    from pipeline.job import paddle_remote_args
    from actors.vlm import ray_remote_args
    from pipeline.serve.deployments import node_cpus

    tmp = tempfile.mkdtemp(prefix="hybridocr-place-")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False,
                                                      "temp_dir": tmp})
    # logical GPUs with the node resource Ray gives a node of that card (accelerator_type:L4 ...)
    nodes = {c.add_node(num_cpus=4, num_gpus=2, resources={"accelerator_type:L4": 1}).node_id: "L4",
             c.add_node(num_cpus=4, num_gpus=2, resources={"accelerator_type:H100": 1}).node_id: "H100"}
    ray.init(address=c.address, log_to_driver=False)

    @ray.remote(num_cpus=0)
    class Where:
        def node(self):
            return nodes.get(ray.get_runtime_context().get_node_id(), "head")

        def cpus(self):
            return node_cpus()

    out = {}
    for name, overrides in (("typed", {}), ("untyped", {"paddle.accelerator_type": None, "vlm.accelerator_type": None})):
        config = load_config("configs/cluster-hybrid.yaml", {"vlm.replicas": 1, **overrides})
        plan = plan_pool(config, 2000, 2000)
        out[name] = {"actors": plan.actors, "device": plan.device, "split": plan.gpu_split}
        if name == "typed":  # where the job's own remote arguments put them
            vlm = Where.options(**{k: v for k, v in ray_remote_args(config.vlm).items() if k != "compute"}).remote()
            paddle = [Where.options(**paddle_remote_args(config.paddle, plan)).remote() for _ in range(plan.actors)]
            out[name]["paddle_nodes"] = sorted({n for n in ray.get([a.node.remote() for a in paddle])})
            out[name]["vlm_node"] = ray.get(vlm.node.remote())
            out[name]["cpus"] = {"driver": node_cpus(), "vlm_node": ray.get(vlm.cpus.remote())}
    print("PLACED" + json.dumps(out))
    ray.shutdown()
    c.shutdown()
    """
)


def test_typed_pools_land_on_their_own_gpu_groups():
    # configs/cluster-hybrid.yaml (the RayJob's): PaddleOCR on the L4 group, vLLM on the H100s. A
    # real three-node Ray (head without GPUs, two GPU nodes of logical GPUs) schedules the actors.
    done = subprocess.run([sys.executable, "-c", PLACE], cwd=REPO, capture_output=True, text=True, timeout=300)
    line = next((l for l in done.stdout.splitlines() if l.startswith("PLACED")), None)
    assert line, done.stderr[-3000:]
    typed, untyped = json.loads(line[6:]).values()
    assert typed["device"] == "gpu" and typed["actors"] == 4  # the L4s' 2 GPUs / 0.5, none of the H100s'
    assert typed["paddle_nodes"] == ["L4"] and typed["vlm_node"] == "H100"
    assert typed["split"] is None  # no card shared: vLLM keeps its own memory settings
    # a Serve replica counts its own node's CPUs (Ray's, not this machine's cores): 4 there, 1 on the head
    assert typed["cpus"] == {"driver": 1, "vlm_node": 4}
    assert untyped["actors"] == 6  # untyped, PaddleOCR would count the H100 that vLLM does not hold


def test_pages_per_actor_call_follow_the_device_unless_set():
    # on a CPU paddleocr reads page by page: one page per call puts each row in the writer once read
    # (2-core bench: the first row after ~15 s instead of ~45 s) and spreads the last pages over every actor
    auto = load_config(REPO / "configs" / "cpu.yaml").paddle
    assert (auto.pages_per_call("cpu"), auto.pages_per_call("gpu"), auto.pages_per_call("none")) == (1, 8, 4)
    assert load_config(REPO / "configs" / "gpu.yaml").paddle.pages_per_call("gpu") == 8
    assert load_config(None, {"paddle.batch_size": 3}).paddle.pages_per_call("cpu") == 3
