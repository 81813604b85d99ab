"""One ONNX Runtime session per input shape (actors/shape_sessions.py), on the CPU with a small real model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from actors.models import onnx_session
from actors.shape_sessions import ShapeSessions


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory):
    """A 3x3 convolution and a ReLU over (N, 3, H, W), both axes free."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h", "w"])], [w])
    path = tmp_path_factory.mktemp("model") / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


CONFIG = {"providers": ["CPUExecutionProvider"], "log_severity_level": 3}


def feeds(n: int, width: int) -> dict:
    return {"x": np.random.default_rng(n * width).standard_normal((n, 3, 16, width)).astype(np.float32)}


def test_each_shape_gets_its_own_session_and_the_same_outputs(conv_model):
    one = onnx_session(conv_model, CONFIG)
    shaped = ShapeSessions(conv_model, CONFIG, per_shape=True)
    for n, width in ((2, 32), (4, 64), (2, 32), (4, 64), (1, 32)):
        f = feeds(n, width)
        (expected,) = one.run(None, f)
        (got,) = shaped.read(f, {}, release=True)  # release is for GPU arenas: nothing to do on the CPU
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert len(shaped.sessions) == 3 and shaped.created == 3  # the session made at start served the first shape
    assert shaped.session_for(feeds(2, 32)) is shaped.session_for(feeds(2, 32))
    assert shaped.session_for(feeds(2, 32)) is not shaped.session_for(feeds(4, 64))
    (via_run,) = shaped.run(None, feeds(4, 64))  # ONNX Runtime's own signature, on the shape's session
    np.testing.assert_allclose(via_run, one.run(None, feeds(4, 64))[0], rtol=1e-6)


def test_least_recently_used_sessions_go_past_the_cap(conv_model):
    shaped = ShapeSessions(conv_model, CONFIG, per_shape=True, max_sessions=2)
    first = shaped.session_for(feeds(1, 32))
    shaped.session_for(feeds(1, 64))
    assert shaped.session_for(feeds(1, 32)) is first  # used again: now the most recent
    shaped.session_for(feeds(1, 96))  # a third shape: 64, the least recent, goes
    assert len(shaped.sessions) == 2 and shaped.session_for(feeds(1, 32)) is first
    assert [k[0][1][3] for k in shaped.sessions] == [96, 32] and shaped.created == 3


def test_one_session_for_every_shape_when_off(conv_model):
    shaped = ShapeSessions(conv_model, CONFIG, per_shape=False)
    assert shaped.session_for(feeds(1, 32)) is shaped.session_for(feeds(3, 64)) and shaped.created == 1
    assert shaped.get_providers() == ["CPUExecutionProvider"]
    wrapped = ShapeSessions.wrap(onnx_session(conv_model, CONFIG))
    assert wrapped._model_path == str(conv_model) and len(wrapped.read(feeds(2, 32))) == 1


def test_a_model_that_cannot_load_fails_at_start(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(Exception):
        ShapeSessions(bad, CONFIG, per_shape=True)


SHARED = textwrap.dedent(r"""
    import json, sys
    import numpy as np, onnx
    from onnx import TensorProto, helper, numpy_helper
    from actors.arena import arena_full
    from actors.shape_sessions import ShapeSessions, shared_arena_config, _SHARED

    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
                               helper.make_node("Relu", ["c"], ["y"])], "conv",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, "h", "w"])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
    config = shared_arena_config({"providers": ["CPUExecutionProvider"], "log_severity_level": 3}, 4 << 20)
    again = shared_arena_config({"providers": ["CPUExecutionProvider"]}, 64 << 20)  # the first registration stays
    shaped = ShapeSessions(sys.argv[1], config, per_shape=True, shared_arena=True)
    out = {"registered": {k[0]: v for k, v in _SHARED.items()}, "config": config["session_config"],
           "again": again["session_config"]}
    small = lambda n: {"x": np.ones((n, 3, 16, 16), np.float32)}  # 16 KB in, 16 KB out: far under the cap
    out["small"] = [float(shaped.read(small(n), {})[0].sum()) for n in (1, 2)]
    try:  # 8 MB out, from one session of a process whose arena is capped at 4 MB
        shaped.read({"x": np.ones((8, 3, 256, 256), np.float32)}, {})
        out["big"] = "ok"
    except Exception as e:
        out["big"] = "arena full" if arena_full(e) else repr(e)[:300]
    out["sessions"] = len(shaped.sessions)
    print(json.dumps(out))
""")


def test_a_shared_arena_caps_every_session_of_the_process_together(tmp_path):
    """`paddle.shared_arena`: the sessions allocate from one arena registered with ONNX Runtime's environment
    (here on the CPU, in its own process: the registration is for the whole process), under its cap."""
    done = subprocess.run([sys.executable, "-c", SHARED, str(tmp_path / "conv.onnx")], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["registered"] == {"Cpu": 4 << 20}
    assert out["config"] == out["again"] == {"session.use_env_allocators": "1"}
    assert out["small"][1] == 2 * out["small"][0] > 0  # runs under the cap read as usual
    assert out["big"] == "arena full" and out["sessions"] == 3, out
