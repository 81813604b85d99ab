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
    import numpy as np, onnx
    from onnx import TensorProto, helper
    from actors.arena import arena_device, arena_full, run_within_cap
    from tests.capped_arena import capped_options, capped_session

    # y = sum(x @ x.T): an (n, n) float intermediate, n*n*4 bytes, from an (n, 64) input
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [])
    graph = helper.make_graph([helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0]),
                               helper.make_node("MatMul", ["x", "xt"], ["m"]),
                               helper.make_node("ReduceSum", ["m"], ["y"], keepdims=0)], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), sys.argv[1])
    session = capped_session(sys.argv[1], capped_options(64))
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


READER = textwrap.dedent(r"""
    import json, sys
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from actors.paddle_ocr import load_reader
    from pipeline.config import PaddleConfig
    from tests.capped_arena import cap_reader
    from tests.conftest import text_images

    _, read = load_reader(PaddleConfig(reader="batched", engine="onnxruntime"), "cpu", 2)
    cap_reader(read, 1024)  # both models in the one capped arena of 1 GiB
    line = Image.open(text_images(Path(sys.argv[1]), 1)[0]).convert("RGB")
    page = Image.new("RGB", (1530, 2163), "white")  # an A4 page at 185 DPI
    for k in range(6):
        page.paste(line, (50, 60 + 330 * k))
    full = 0
    for rows in range(4, 68, 4):  # recognition batches of growing size: a region each, until the cap
        try:
            read.session.run(None, {"image": np.zeros((rows, 48, 320, 3), np.uint8),
                                    "valid": np.ones((rows, 1, 1, 320), np.uint8)})
        except Exception as e:
            if "Available memory of" not in str(e):
                raise
            full += 1
    lines = read([np.asarray(page)[:, :, ::-1].copy()])[0]
    print(json.dumps({"full": full, "texts": [l.text for l in lines], "counts": read.counts}))
""")


def test_the_batched_reader_reads_a_page_through_a_fragmented_capped_arena(tmp_path):
    """The real PP-OCRv5 reader (its own uint8 sessions) in an arena that smaller runs have filled: the page's
    detection needs a region larger than any free one; before actors/arena.py the page failed with the GPU's
    message ("Available memory of 45287424 is smaller than requested bytes of 106954752", checked at 2e98cf9)."""
    done = subprocess.run([sys.executable, "-c", READER, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["full"] >= 1  # the arena was at its cap before the page came
    assert out["counts"] == {"arena_releases": 1} and len(out["texts"]) >= 6, out


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


SPLIT = textwrap.dedent(r"""
    import json, sys
    import numpy as np, onnx
    from onnx import TensorProto, helper
    from actors.arena import run_within_cap
    from tests.capped_arena import capped_options, capped_session

    # y[i] = sum_j (x @ w)[i, j]: an (n, 4096) float intermediate, 16 KiB a row, each row on its own
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [64, 4096], np.ones(64 * 4096, np.float32))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]),
                               helper.make_node("ReduceSum", ["m"], ["y"], axes=[1], keepdims=0)], "g", [x], [y], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), sys.argv[1])
    session = capped_session(sys.argv[1], capped_options(64))
    rows = np.arange(5000, dtype=np.float32)[:, None] * np.ones((1, 64), np.float32) / 64  # row i sums to i
    counts = {}
    got = run_within_cap(session, {"x": rows}, counts)[0]  # 82 MB at once: more than the whole cap
    out = {"equal": bool(np.array_equal(got, np.arange(5000, dtype=np.float32) * 4096)), "counts": counts}
    try:
        run_within_cap(session, {"x": np.ones((3, 5), np.float32)}, counts)  # a bad input is not split
    except Exception as e:
        out["bad_input"] = type(e).__name__
    out["after_bad"] = dict(counts)
    print(json.dumps(out))
""")


def test_a_batch_larger_than_the_cap_is_read_in_halves_with_the_same_results(tmp_path):
    done = subprocess.run([sys.executable, "-c", SPLIT, str(tmp_path / "rows.onnx")], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["equal"], out
    assert out["counts"]["arena_splits"] >= 1 and out["counts"]["arena_releases"] >= 1
    assert out["bad_input"] and out["after_bad"] == out["counts"]


WIDE = textwrap.dedent(r"""
    import json, sys
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont
    from actors.paddle_ocr import load_reader
    from pipeline.config import PaddleConfig
    from tests.capped_arena import cap_reader

    _, read = load_reader(PaddleConfig(reader="batched", engine="onnxruntime", rec_batch_size=64), "cpu", 2)
    if sys.argv[1] != "0":
        cap_reader(read, int(sys.argv[1]))
    page = Image.new("RGB", (1530, 2163), "white")  # an A4 page at 185 DPI, 24 lines 1,450 px wide
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=24)
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa".split()
    for k in range(24):
        draw.text((40, 30 + 52 * k), " ".join(words[(k + j) % len(words)] + str(k) for j in range(14)), fill="black", font=font)
    bgr = np.asarray(page)[:, :, ::-1].copy()
    texts = [l.text for l in read([bgr])[0]]
    first = dict(read.counts)
    again = read([bgr])[0]
    print(json.dumps({"texts": texts, "first": first, "counts": read.counts, "cells": read.rec_cells, "again": len(again)}))
""")


def test_the_batched_reader_reads_a_recognition_batch_larger_than_the_cap_in_halves(tmp_path):
    """What the H100's Serve replicas hit on 2026-12-06: a recognition batch (here 23 lines padded to 2,560 px,
    whose CTC softmax alone is ~0.5 GB) needs more than the capped arena holds, even right after a release.
    It is read in halves, with the same text as an uncapped reader; later batches are formed as small as the
    halves (no second split)."""
    def run(cap: int) -> dict:
        done = subprocess.run([sys.executable, "-c", WIDE, str(cap)], capture_output=True, text=True, timeout=300,
                              cwd=Path(__file__).resolve().parents[1])
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    free, capped = run(0), run(1024)
    assert free["counts"] == {} and len(free["texts"]) == 24
    assert capped["first"].get("arena_splits", 0) >= 1 and capped["cells"], capped
    assert capped["texts"] == free["texts"]
    assert capped["counts"]["arena_splits"] == capped["first"]["arena_splits"] and capped["again"] == 24
