"""A capped ONNX Runtime arena that fragments (actors/arena.py): the run is repeated after the arena gives
back its free regions, instead of the page failing. On the GPU the cap is each actor's `gpu_mem_limit`;
here the same BFC arena is capped on the CPU (a shared allocator with `max_mem`), in its own process
(the allocator is registered for the whole process), with real ONNX Runtime and a real model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(r"""
    import json, sys
    import numpy as np, onnx, onnxruntime as ort
    from onnx import TensorProto, helper
    from actors.arena import arena_device, arena_full, run_within_cap

    # y = sum(x @ x.T): an (n, n) float intermediate, n*n*4 bytes, from an (n, 64) input
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
                               helper.make_node("MatMul", ["x", "xt"], ["m"]),
                               helper.make_node("ReduceSum", ["m"], ["y"], keepdims=0)], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(64 * 2**20, 1, -1, -1))  # 64 MiB, kSameAsRequested
    options = ort.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")
    options.log_severity_level = 4
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    feed = lambda n: {"x": np.ones((n, 64), np.float32)}
    out = {"device": arena_device(session)}
    for n in (1000, 1500, 2000, 2500):  # regions of 4, 9, 16 and 25 MB: 54 of the 64 MiB, each free again
        session.run(None, feed(n))
    try:
        session.run(None, feed(3900))  # 61 MB: fits the cap, not what is left of it
        out["plain"] = "ok"
    except Exception as e:
        out["plain"] = "arena full" if arena_full(e) else repr(e)
    counts = {}
    out["value"] = float(run_within_cap(session, feed(3900), counts)[0])
    out["counts"] = counts
    out["again"] = float(run_within_cap(session, feed(3000), counts)[0])  # no release needed now
    try:
        run_within_cap(session, {"x": np.ones((3, 5), np.float32)}, counts)  # a bad input: raised as it is
    except Exception as e:
        out["bad_input"] = "arena full" if arena_full(e) else type(e).__name__
    print(json.dumps(out))
""")


def test_a_fragmented_capped_arena_gives_back_its_regions_and_the_run_succeeds(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "square.onnx")], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["device"] == "cpu:0"
    assert out["plain"] == "arena full"  # what the GPU replicas hit: the page would have been an error row
    assert out["value"] == 3900 * 3900 * 64.0 and out["counts"] == {"arena_releases": 1}
    assert out["again"] == 3000 * 3000 * 64.0
    assert out["bad_input"] != "arena full" and out["counts"] == {"arena_releases": 1}
