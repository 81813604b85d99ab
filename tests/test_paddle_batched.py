"""The batched PaddleOCR reader (the GPU default), run here on the CPU with the real PP-OCRv5 weights."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from actors.models import bundled_model_dir, ctc_argmax_model
from actors.paddle_batched import BatchedReader, pad_to_multiple, pipeline_parts, width_bucket
from actors.page_structure import PageStructure
from actors.paddle_ocr import (load_paddleocr, load_reader, make_reader, model_label, onnx_engine_config, pad_rows, paper_pixels,
                               per_shape, rec_fp16, structure_providers, warms_up)
from pipeline.bench import pool_rate
from pipeline.config import LayoutConfig, PaddleConfig, RunConfig
from pipeline.job import run_job
from pipeline.metrics import cer
from pipeline.report import read_pages
from tests.test_job import PAGES

def read_batch(reader: BatchedReader, crops: list, rows: int) -> list[tuple[str, float]]:
    """(text, score) of each crop, read as one recognition batch of the reader's own sessions."""
    x, valid = reader._rec_feed(crops, rows)
    return reader._read_feed(x, valid, len(crops))


# A scan, a vertical page, a Chinese render of another size: three detection shapes at most.
SAMPLE = [PAGES[0], PAGES[3], PAGES[6]]


def test_width_buckets_are_few_and_tight():
    widths = range(320, 3201)
    buckets = {width_bucket(w) for w in widths}
    assert len(buckets) <= 16  # a few dozen (batch, width) shapes in a whole run, not one per batch
    for w in widths:
        assert w <= width_bucket(w) <= max(320, w * 1.25)
    assert width_bucket(5000) == 5000  # never narrower than the line


def test_pages_are_padded_white_at_bottom_right():
    page = np.zeros((1530, 1000, 3), dtype=np.uint8)
    out = pad_to_multiple(page, 128)
    assert out.shape == (1536, 1024, 3)
    assert (out[:1530, :1000] == 0).all() and (out[1530:] == 255).all() and (out[:, 1000:] == 255).all()
    assert pad_to_multiple(out, 128) is out


def test_ctc_argmax_model_matches_the_softmax_it_replaces():
    source = bundled_model_dir("PP-OCRv5_mobile_rec", "onnxruntime") + "/inference.onnx"
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 320)).astype(np.float32)
    full = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    (probs,) = full.run(None, {full.get_inputs()[0].name: x})
    small = ort.InferenceSession(str(ctc_argmax_model(source)), providers=["CPUExecutionProvider"])
    index, prob = small.run(None, {small.get_inputs()[0].name: x})
    assert index.shape == prob.shape == probs.shape[:2]
    np.testing.assert_array_equal(index, probs.argmax(-1))
    np.testing.assert_allclose(prob, probs.max(-1), rtol=1e-6)


def test_gpu_session_options_are_chosen_on_purpose():
    cfg = PaddleConfig(num_gpus=0.125, gpu_memory_gb=8, cudnn_conv_algo_search="HEURISTIC")
    engine = onnx_engine_config(cfg, "gpu", 2, share=0.5)
    cuda = engine["provider_options"][0]
    assert engine["providers"][0] == "CUDAExecutionProvider"
    assert cuda["cudnn_conv_algo_search"] == "HEURISTIC" and cuda["arena_extend_strategy"] == "kSameAsRequested"
    assert int(cuda["gpu_mem_limit"]) == 4 * 2**30  # half the actor's cap for each of the two models
    assert "providers" not in onnx_engine_config(cfg, "cpu", 2)
    # the layout and table models on the GPU search cuDNN's algorithms the same way (not ONNX Runtime's EXHAUSTIVE)
    (name, options), cpu = structure_providers(cfg, "gpu")
    assert name == "CUDAExecutionProvider" and options["cudnn_conv_algo_search"] == "HEURISTIC" and cpu == "CPUExecutionProvider"
    assert structure_providers(cfg, "cpu") is None


def test_pool_rate_is_workers_over_seconds_per_page():
    assert pool_rate(8, 0.5) == 960.0  # 8 actors, each 0.5 s per page
    assert pool_rate(0, 0.5) is None and pool_rate(4, None) is None


@pytest.fixture(scope="module")
def readers():
    cfg = RunConfig(paddle={"reader": "batched", "rec_batch_size": 16}).paddle
    ocr = load_paddleocr(cfg, "cpu", 2)
    batched = make_reader(ocr, cfg, "cpu", 2)
    plain_cfg = cfg.model_copy(update={"reader": "pipeline"})
    plain = make_reader(load_paddleocr(plain_cfg, "cpu", 2), plain_cfg, "cpu", 2)
    return batched, plain


def test_batched_reader_reads_like_paddleocr(readers, eval_dir):
    batched, plain = readers
    assert isinstance(batched, BatchedReader) and not isinstance(plain, BatchedReader)
    pages = [np.ascontiguousarray(np.asarray(Image.open(eval_dir / s / f).convert("RGB"))[:, :, ::-1]) for s, f, _, _ in SAMPLE]
    together = batched(pages)  # three pages in one call: lines of all pages recognised together
    alone = plain(pages)
    flat = lambda t: re.sub(r"\s+", "", t)  # noqa: E731
    for (s, f, truth, limit), mine, theirs, page in zip(SAMPLE, together, alone, pages):
        route = "vertical" if "vertical" in s else "horizontal"
        text = PageStructure(LayoutConfig(regions="off", tables="off"))(None, mine, route).text
        assert cer(flat(text), flat((eval_dir / s / truth).read_text(encoding="utf-8"))) <= limit, f
        assert abs(len(mine) - len(theirs)) <= max(2, len(theirs) // 20), f  # the same lines, give or take
        h, w = page.shape[:2]
        assert all(0 <= x <= w and 0 <= y <= h for line in mine for x, y in line.box)  # unpadded coordinates
    assert len(batched.shapes["det"]) <= len(SAMPLE)
    assert batched.timings["rec_infer"] > 0 and batched.timings["pages"] == len(SAMPLE)


def test_uint8_inputs_read_like_paddlex_float_preprocessing(readers, eval_dir):
    """Pixels go to ONNX Runtime as uint8 and are scaled in the graph: the same model outputs as
    paddlex's float32 NCHW pre-processing (detection), the same decoded lines (recognition, with
    the padding of each line masked to the zeros paddlex pads with)."""
    batched, _ = readers
    s, f, _, _ = SAMPLE[0]
    page = pad_to_multiple(np.ascontiguousarray(np.asarray(Image.open(eval_dir / s / f).convert("RGB"))[:, :, ::-1]), 128)
    det, tfs = batched.det, batched.det.pre_tfs
    images, _ = tfs["Resize"](imgs=[page], limit_side_len=det.limit_side_len, limit_type=det.limit_type,
                              max_side_limit=det.max_side_limit)
    x = tfs["ToBatch"](imgs=tfs["ToCHW"](imgs=tfs["Normalize"](imgs=images)))[0]
    float_det = ort.InferenceSession(bundled_model_dir("PP-OCRv5_mobile_det", "onnxruntime") + "/inference.onnx",
                                     providers=["CPUExecutionProvider"])
    (expected,) = float_det.run(None, {float_det.get_inputs()[0].name: x})
    (got,) = batched.det_session.run(None, {"image": np.stack(images)})
    np.testing.assert_allclose(got, expected, atol=1e-5)

    crops = [page[100 + 40 * k : 140 + 40 * k, 80 : 80 + w] for k, w in enumerate((60, 400, 900, 1300))]
    norm = batched.rec.pre_tfs["ReisizeNorm"]
    floats = norm(imgs=crops)
    width = width_bucket(max(im.shape[2] for im in floats))
    x = np.zeros((4, 3, 48, width), np.float32)
    for j, im in enumerate(floats):
        x[j, :, :, : im.shape[2]] = im
    float_rec = ort.InferenceSession(str(ctc_argmax_model(Path(batched.rec.runner.model_dir) / "inference.onnx")),
                                     providers=["CPUExecutionProvider"])
    index, prob = float_rec.run(None, {float_rec.get_inputs()[0].name: x})
    expected = batched.rec.post_op.decode(index, prob, is_remove_duplicate=True)
    got = read_batch(batched, crops, 4)
    assert [t for t, _ in got] == [t for t, _ in expected] and any(t for t, _ in got)
    np.testing.assert_allclose([p for _, p in got], [p for _, p in expected], atol=1e-4)


def test_wide_lines_get_smaller_recognition_batches(readers):
    batched, _ = readers
    narrow, wide = np.zeros((30, 200, 3), np.uint8), np.zeros((30, 2000, 3), np.uint8)
    assert batched.batch_for(narrow) == 16
    assert 4 <= batched.batch_for(wide) < 16


def test_a_short_recognition_batch_is_padded_to_a_power_of_two_not_to_its_limit(readers):
    """A call of one page (Serve's, mostly) ends its width's batch early: 3 lines are run as 4 rows, not as
    the 16 that a full batch of that width holds (on the CPU a single page reads 1.6 x faster so, 2026-12-06)."""
    from PIL import ImageDraw, ImageFont

    batched, _ = readers
    crops = []
    for k in range(16):  # text lines 40 px high, 400 px wide, each its own words
        line = Image.new("RGB", (400, 40), "white")
        ImageDraw.Draw(line).text((6, 6), f"line {k} of sixteen {k * 37}", fill="black", font=ImageFont.load_default(size=24))
        crops.append(np.asarray(line)[:, :, ::-1].copy())
    batched.rec_shapes.clear()
    three, five, full = (read_batch(batched, crops[:n], 16) for n in (3, 5, 16))
    assert sorted(shape[0] for shape in batched.rec_shapes) == [4, 8, 16]
    assert three == five[:3] == full[:3] and five == full[:5]  # the empty rows never changed a line's result
    assert all(t for t, _ in full)
    # on a GPU each shape costs set-up once per process: there a short batch keeps its width's one shape
    cfg = RunConfig().paddle
    assert (pad_rows(cfg, "gpu"), pad_rows(cfg, "cpu")) == ("limit", "pow2")
    assert pad_rows(cfg.model_copy(update={"rec_pad_rows": "pow2"}), "gpu") == "pow2"
    batched.rec_shapes.clear()
    batched.pad_rows = "limit"
    try:
        assert [read_batch(batched, crops[:n], 16) for n in (3, 5)] == [three, five]
        assert {shape[0] for shape in batched.rec_shapes} == {16}
    finally:
        batched.pad_rows = "pow2"


def test_warm_up_runs_every_recognition_shape_once_and_reads_alike_after(readers, eval_dir):
    """`paddle.warm_up` (on by default on a GPU only): each width bucket at its row limit (and the powers of two
    below it with pow2) run on blank lines before the first page; a page reads the same afterwards."""
    batched, _ = readers
    cfg = RunConfig().paddle
    assert (warms_up(cfg, "gpu"), warms_up(cfg, "cpu")) == (True, False)
    assert warms_up(cfg.model_copy(update={"warm_up": True}), "cpu") and not warms_up(cfg.model_copy(update={"warm_up": False}), "gpu")
    pow2 = batched.rec_shape_plan()
    batched.pad_rows = "limit"
    try:
        limit = batched.rec_shape_plan()
        widths = [w for _, w in limit]
        assert widths == sorted(set(widths)) and widths[0] == 320 and widths[-1] == batched.max_width
        rows = {w: r for r, w in limit}
        assert rows[320] == 16 and rows[batched.max_width] == 4  # wide lines: fewer rows
        assert set(limit) < set(pow2) and (8, 320) in pow2 and (4, 320) in pow2
        s, f, _, _ = SAMPLE[0]
        page = np.ascontiguousarray(np.asarray(Image.open(eval_dir / s / f).convert("RGB"))[:, :, ::-1])
        before = batched([page])
        assert batched.warm_up() == {"rec": limit, "det": []}
        after = batched([page])
        assert [(l.text, l.box) for l in after[0]] == [(l.text, l.box) for l in before[0]] and after[0]
    finally:
        batched.pad_rows = "pow2"


def test_a_session_per_input_shape_reads_alike(readers, eval_dir):
    """`paddle.session_per_shape` (on by default on a GPU only, where a convolution re-plans whenever its input
    shape changes): each detection and recognition shape runs in its own session; the lines are the same."""
    batched, _ = readers
    assert (per_shape(RunConfig().paddle, "gpu"), per_shape(RunConfig().paddle, "cpu")) == (True, False)
    cfg = RunConfig(paddle={"reader": "batched", "rec_batch_size": 16, "session_per_shape": True}).paddle
    shaped = make_reader(load_paddleocr(cfg, "cpu", 2), cfg, "cpu", 2)
    pages = [np.ascontiguousarray(np.asarray(Image.open(eval_dir / s / f).convert("RGB"))[:, :, ::-1]) for s, f, _, _ in SAMPLE]
    got, expected = shaped(pages), batched(pages)
    assert [[(l.text, l.box) for l in p] for p in got] == [[(l.text, l.box) for l in p] for p in expected] and got[0]
    assert len(shaped.session.sessions) == min(shaped.session.max_sessions, len(shaped.rec_shapes)) > 1
    # the LRU holds every shape the reader can make (pow2 here: the powers of two below each width's limit too), so
    # a warm-up of them all keeps them; 24 at least
    assert shaped.session.max_sessions >= max(24, len(shaped.rec_shape_plan()) + 8) > len(shaped.rec_shape_plan()) > 24
    assert len(shaped.det_session.sessions) == min(12, len(shaped.det.runner.shapes)) >= 1
    assert not batched.session.sessions and batched.session.created == 1  # off: the one session
    # the warm-up's detection shapes: 1 to det_batch_size pages of each paper size, padded as pages are; each its
    # own session, which the pages of that shape then use (no new session made for them)
    assert paper_pixels(185) == [(2164, 1529), (2035, 1573)] and paper_pixels(None) == []
    size = pages[0].shape[:2]
    warmed = shaped.warm_up([size, size])
    padded = pad_to_multiple(pages[0], shaped.det_pad).shape[:2]
    assert warmed["det"] == [(n, *padded) for n in range(1, shaped.det_batch_size + 1)] and warmed["rec"]
    made = shaped.det_session.created
    again = shaped([pages[0]] * 3)
    assert shaped.det_session.created == made and [(l.text, l.box) for l in again[2]] == [(l.text, l.box) for l in got[0]]


def test_a_float16_recogniser_reads_alike(readers, eval_dir):
    """`paddle.rec_precision: fp16` (for a GPU's Tensor Cores): the recogniser's weights and arithmetic in float16,
    its uint8 input and (index, probability) outputs as before; the same boxes, the text within a character or so."""
    import onnx

    batched, _ = readers
    cfg = RunConfig(paddle={"reader": "batched", "rec_batch_size": 16, "rec_precision": "fp16"}).paddle
    half = make_reader(load_paddleocr(cfg, "cpu", 2), cfg, "cpu", 2)
    model = onnx.load(half.session.model)
    assert {i.data_type for i in model.graph.initializer} >= {onnx.TensorProto.FLOAT16}
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.UINT8] * 2
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [onnx.TensorProto.INT64, onnx.TensorProto.FLOAT]
    pages = [np.ascontiguousarray(np.asarray(Image.open(eval_dir / s / f).convert("RGB"))[:, :, ::-1]) for s, f, _, _ in SAMPLE]
    got, expected = half(pages), batched(pages)
    for mine, theirs in zip(got, expected):
        assert [l.box for l in mine] == [l.box for l in theirs] and mine
        text, ref = "".join(l.text for l in mine), "".join(l.text for l in theirs)
        assert cer(text, ref) <= 0.01, (text, ref)
        assert max(abs(a.score - b.score) for a, b in zip(mine, theirs)) < 0.02


def test_float16_where_it_cannot_apply_says_so(caplog):
    """paddleocr's own pipeline has no float16 recogniser: asking for one is logged, not silently dropped."""
    cfg = RunConfig(paddle={"reader": "pipeline", "rec_precision": "fp16"}).paddle
    with caplog.at_level(logging.WARNING, logger="actors.paddle_ocr"):
        make_reader(None, cfg, "cpu")
    assert "rec_precision fp16 is ignored" in caplog.text and "paddle.reader: batched" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="actors.paddle_ocr"):  # auto asks for nothing it cannot have
        make_reader(None, RunConfig(paddle={"reader": "pipeline"}).paddle, "gpu")
    assert "rec_precision" not in caplog.text
    auto, fp32 = RunConfig().paddle, RunConfig(paddle={"rec_precision": "fp32"}).paddle
    assert (rec_fp16(auto, "gpu"), rec_fp16(auto, "cpu"), rec_fp16(fp32, "gpu")) == (True, False, False)


def test_both_readers_read_alike_from_two_threads_at_once(readers, eval_dir):
    """A Serve replica with `serve.paddle_concurrent_batches: 2` calls its reader from two threads at
    once: each thread's pages get the lines that a call alone gives them."""
    import concurrent.futures

    pages = [np.ascontiguousarray(np.asarray(Image.open(eval_dir / s / f).convert("RGB"))[:, :, ::-1]) for s, f, _, _ in SAMPLE]
    calls = [pages[:2], pages[2:], pages[1:], pages[:1]]
    for read in readers:
        alone = [read(c) for c in calls]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # two calls in flight at any time
            together = list(pool.map(read, calls))
        texts = lambda out: [[(l.text, [tuple(map(round, p)) for p in l.box]) for l in page] for page in out]  # noqa: E731
        assert [texts(t) for t in together] == [texts(a) for a in alone]


def test_on_a_gpu_paddleocrs_own_models_stay_on_the_cpu(readers, eval_dir):
    """The batched reader's own sessions read the pages on the GPU: paddleocr's pipeline, which only
    lends its pre/post-processing, is built on the CPU (no idle GPU sessions per actor). Here the
    reader's sessions fall back to the CPU, as ONNX Runtime does without CUDA."""
    cfg = RunConfig(paddle={"rec_batch_size": 16}).paddle
    ocr, read = load_reader(cfg, "gpu", 2)
    _, det, rec = pipeline_parts(ocr)
    assert isinstance(read, BatchedReader) and read.session is not None and read.det_session is not None
    assert det.device == "cpu" and rec.device == "cpu"
    assert read.rec_fp16 and not readers[0].rec_fp16  # rec_precision auto: float16 on a GPU, float32 on the CPU
    assert model_label(cfg, "gpu", read.rec_fp16).endswith("(onnxruntime, gpu, rec fp16)")
    page = np.ascontiguousarray(np.asarray(Image.open(eval_dir / SAMPLE[0][0] / SAMPLE[0][1]).convert("RGB"))[:, :, ::-1])
    mine, theirs = read([page])[0], readers[0]([page])[0]
    assert len(mine) >= 5 and [l.text for l in mine] == [l.text for l in theirs]
    assert [l.box for l in mine] == [l.box for l in theirs]


def test_ray_job_with_batched_reader(eval_dir, ray_local, tmp_path):
    inputs = [str(eval_dir / s / f) for s, f, _, _ in SAMPLE[:2]]
    run_job(inputs, tmp_path, RunConfig(paddle={"reader": "batched", "batch_size": 2}))
    rows = read_pages(tmp_path).to_pylist()
    assert len(rows) == 2 and all(r["error"] is None and r["engine"] == "paddleocr" and r["text"] for r in rows)


def test_the_predictor_adds_its_page_structure_to_the_readers_steps(tmp_path):
    """Serve's answers and `bench --serve` split a call's seconds by step: the batched reader's, and then the page
    structure's (layout and tables, run by the predictor after OCR) as `structure`, in the same dict."""
    import pandas as pd

    from actors.paddle_ocr import PaddleOcrPredictor
    from tests.conftest import page_row, text_images

    (path,) = text_images(tmp_path, 1)
    row = page_row(path)
    predictor = PaddleOcrPredictor(RunConfig(paddle={"reader": "batched"}).model_dump(), cpu_threads=2)
    assert predictor.timings is predictor.read.timings
    out = predictor(pd.DataFrame([row]))
    steps = predictor.timings
    assert out.at[0, "error"] is None and "page 0 line 0" in out.at[0, "text"].lower()
    assert steps["rec_infer"] > 0 and steps["structure"] > 0  # the CDLA layout ran on the page's lines
    assert out.at[0, "seconds_ocr"] >= steps["structure"]
