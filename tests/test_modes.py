"""vlm and hybrid modes through the Ray job: real vLLM (CPU build) on a tiny random Qwen2.5-VL.

The random model's text is noise; what is asserted is the routing (by route, by confidence),
the retries and the fallback to PaddleOCR's text, and that every page still has one row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.report import read_pages
from tests.conftest import REPO, needs_vllm, text_images, tiny_vlm_config

pytestmark = needs_vllm
VERTICAL = REPO / "samples" / "vertical_zh.jpg"


def rows_by_name(out: Path) -> dict[str, dict]:
    return {Path(r["source"]).name: r for r in read_pages(out).to_pylist()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("modes")
    return [str(p) for p in text_images(d / "in", 2)] + [str(VERTICAL), str(REPO / "samples" / "report.pdf")]


def test_hybrid_routes_escalates_and_falls_back(inputs, tiny_vlm_dir, ray_local, tmp_path):
    # escalate_below 1.0: every PaddleOCR page is re-read; the random model's 8-token answers are
    # cut off on every attempt, so each escalated row keeps PaddleOCR's text and says why.
    config = RunConfig.model_validate({"mode": "hybrid", "vlm": tiny_vlm_config(tiny_vlm_dir, escalate_below=1.0)})
    plan = run_job(inputs, tmp_path, config)
    rows = rows_by_name(tmp_path)
    assert len(rows) == plan.total_pages - 1  # report.pdf has two pages under one name
    assert read_pages(tmp_path).num_rows == plan.total_pages == 5

    vertical = rows["vertical_zh.jpg"]
    assert vertical["route"] == "vertical" and vertical["paddle_confidence"] is None  # routed straight to the VLM
    assert vertical["engine"] == "vlm" and vertical["vlm_output_tokens"] == 8 and vertical["vlm_prompt_tokens"] > 16
    assert vertical["vlm_problem"] == "truncated" and vertical["vlm_attempts"] == 2

    for name in ("page_00.png", "page_01.png"):
        row = rows[name]
        assert row["route"] == "horizontal" and row["error"] is None
        assert row["engine"] == "paddleocr" and "line 0" in row["text"]  # the fallback kept PaddleOCR's reading
        assert 0 < row["paddle_confidence"] < 1.0 and row["confidence"] == row["paddle_confidence"]
        assert row["vlm_attempts"] == 2 and row["vlm_problem"] == "truncated" and 0 <= row["vlm_confidence"] <= 1

    assert rows["report.pdf"]["engine"] == "text_layer" and rows["report.pdf"]["vlm_attempts"] is None


def test_vlm_mode_reads_every_ocr_page(inputs, tiny_vlm_dir, ray_local, tmp_path):
    config = RunConfig.model_validate({"mode": "vlm", "vlm": tiny_vlm_config(tiny_vlm_dir, max_retries=0)})
    run_job(inputs, tmp_path, config)
    rows = read_pages(tmp_path).to_pylist()
    ocr = [r for r in rows if r["engine"] != "text_layer"]
    assert len(ocr) == 3 and all(r["engine"] == "vlm" and r["paddle_confidence"] is None for r in ocr)
    assert all(r["vlm_finish_reason"] in ("length", "stop", "repetition") and r["vlm_attempts"] == 1 for r in ocr)
    assert all(r["model"].startswith(str(tiny_vlm_dir)) for r in ocr)
    # sized for the model while rendering (in parallel), not in the engine's actor
    assert all(r["width"] % 28 == 0 and r["height"] % 28 == 0 and r["width"] * r["height"] <= 64 * 28 * 28 for r in ocr)


def _engine_cores() -> list:
    import psutil

    return [p for p in psutil.process_iter(["name", "cmdline"])
            if "EngineCore" in (p.info["name"] or "") or "EngineCore" in " ".join(p.info["cmdline"] or [])]


def test_the_vlm_engine_stops_cleanly_when_the_job_retires_its_actor(inputs, tiny_vlm_dir, ray_local, tmp_path):
    # Ray Data deletes the UDF of an actor it retires; the predictor then stops vLLM itself. Without
    # that, Ray reaped the engine-core process under a live frontend, which logged an
    # EngineDeadError traceback at the end of every vlm and hybrid job.
    import time

    import ray

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    sizes = {f: f.stat().st_size for f in logs.glob("worker-*")}
    config = RunConfig.model_validate({"mode": "vlm", "vlm": tiny_vlm_config(tiny_vlm_dir, max_retries=0)})
    run_job(inputs[:1], tmp_path, config)
    deadline = time.time() + 60
    while _engine_cores() and time.time() < deadline:
        time.sleep(1)
    assert not _engine_cores(), "the engine-core process outlived the job"
    time.sleep(2)  # the last log lines
    new = "".join(f.read_bytes()[sizes.get(f, 0):].decode(errors="replace") for f in logs.glob("worker-*"))
    assert "vlm engine ready" in new  # the job's own actor logged here
    assert "EngineDeadError" not in new and "exited unexpectedly" not in new, new[-3000:]
