"""The whole Ray Data job on real pages with real PaddleOCR weights, bad inputs mixed in."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.metrics import cer
from pipeline.report import build_report, read_pages
from tests.conftest import make_bad_inputs

# (set, page file, truth file, CER limit), whitespace ignored. Limits are the CER this pipeline
# measured (PP-OCRv5 mobile, ONNX Runtime, CPU; in brackets) with a margin for run-to-run and
# library drift. Vertical pages: even ids have no punctuation; odd ids use vertical punctuation that
# the mobile recogniser misreads. 8087's truth covers only the UNLV zones of the page.
# ordinary_textbook's truth holds LaTeX formulas OCR cannot produce (order-free floor 0.38).
PAGES = [
    ("en_printed_tesseract_test", "phototest.png", "phototest.txt", 0.03),  # (0.000)
    ("en_printed_tesseract_test", "eurotext.png", "eurotext.txt", 0.05),  # (0.020)
    ("en_printed_tesseract_test", "8087_054.3B.png", "8087_054.3B.txt", 0.15),  # (0.062)
    ("zh_born_digital_textlayer", "mineru_3list_1table.png", "mineru_3list_1table.txt", 0.08),  # (0.027)
    ("zh_born_digital_textlayer", "mineru_p3_tuwenhunpai84.png", "mineru_p3_tuwenhunpai84.txt", 0.03),  # (0.004)
    ("zh_printed_mineru_bench", "ordinary_textbook_1d9a8476-1.png", "ordinary_textbook_1d9a8476.txt", 0.45),  # (0.404)
    ("SYNTHETIC_vertical_classical_zh", "synth_vert_00.jpg", "synth_vert_00.txt", 0.10),  # (0.043)
    ("SYNTHETIC_vertical_classical_zh", "synth_vert_01.png", "synth_vert_01.txt", 0.40),  # (0.330)
    ("SYNTHETIC_vertical_classical_zh", "synth_vert_04.jpg", "synth_vert_04.txt", 0.12),  # (0.075)
    ("SYNTHETIC_vertical_classical_zh", "synth_vert_07.png", "synth_vert_07.txt", 0.30),  # (0.189)
]
TEXT_LAYER_PDF = ("zh_born_digital_textlayer", "mineru_2list_1table.pdf", "mineru_2list_1table.txt", 0.05)  # (0.015)


def _flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def job(eval_dir, ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("job")
    bad_inputs = make_bad_inputs(tmp_path_factory.mktemp("bad") / "files")
    inputs = [str(eval_dir / s / f) for s, f, _, _ in PAGES + [TEXT_LAYER_PDF]]
    inputs += [str(p) for p in bad_inputs.values()]
    plan = run_job(inputs, out, RunConfig())
    rows = read_pages(out).to_pylist()
    return out, plan, {Path(r["source"]).name: r for r in rows}, rows


def test_every_input_page_has_exactly_one_row(job):
    out, plan, by_name, rows = job
    truncated = next(r for r in rows if r["source"].endswith("truncated.pdf"))
    expected = len(PAGES) + 1 + 9 + max(truncated["page_count"], 1)  # a repaired truncated PDF keeps its pages
    assert len(rows) == expected == plan.total_pages
    assert len({(r["source"], r["page_index"]) for r in rows}) == len(rows)
    # every actor says when it was ready and where its start went (the report's start phases)
    assert len(plan.timeline["paddle_ready"]) == plan.actors
    summary = plan.summary()
    first, last = summary["paddle_actors_ready_seconds"]
    assert 0 < first <= last and first <= summary["rows_reached_writer_seconds"]["paddleocr"][0]
    phases = summary["paddle_actor_start_phases"]
    assert phases["process"] > 0 and phases["det_rec_models"] > 0 and phases["import_paddleocr"] >= 0


@pytest.mark.parametrize("set_name, page, truth, limit", PAGES + [TEXT_LAYER_PDF], ids=[p[1] for p in PAGES + [TEXT_LAYER_PDF]])
def test_character_error_rate(job, eval_dir, set_name, page, truth, limit):
    row = job[2][page]
    assert row["error"] is None
    reference = (eval_dir / set_name / truth).read_text(encoding="utf-8")
    score = cer(_flat(row["text"]), _flat(reference))
    assert score <= limit, f"{page}: CER {score:.3f} > {limit}"


def test_routes_and_engines(job):
    by_name = job[2]
    assert by_name["mineru_2list_1table.pdf"]["engine"] == "text_layer"
    assert by_name["phototest.png"]["engine"] == "paddleocr" and by_name["phototest.png"]["route"] == "horizontal"
    assert all(by_name[f"synth_vert_0{i}.{e}"]["route"] == "vertical" for i, e in ((0, "jpg"), (1, "png"), (4, "jpg"), (7, "png")))
    assert by_name["blank.png"]["route"] == "blank" and by_name["blank.png"]["text"] == ""
    ocr = by_name["eurotext.png"]
    assert 0.85 <= ocr["confidence"] <= 1.0 and ocr["lines"] and len(ocr["lines"][0]["box"]) == 4
    assert ocr["dpi"] > 0 and ocr["seconds_ocr"] > 0 and ocr["model"].startswith("PP-OCRv5_mobile_det")


def test_bad_inputs_are_error_rows_with_clear_messages(job):
    by_name = job[2]
    expect = {
        "corrupt.pdf": "the PDF is damaged", "encrypted.pdf": "decrypt it", "zero_pages.pdf": "no pages",
        "unreadable.png": "the image cannot be read", "empty.jpg": "the file is empty", "huge.png": "max_image_pixels",
        "web_page.pdf": "not a PDF or image: the content is an HTML page", "cut_short.jpg": "damaged or cut short",
    }
    for name, fragment in expect.items():
        assert fragment in (by_name[name]["error"] or ""), name
        assert "rerun" in by_name[name]["error"] or "raise the limit" in by_name[name]["error"], name  # says what to do
    assert by_name["truncated.pdf"]["error"] is None and by_name["truncated.pdf"]["warnings"][0].startswith("pdf_repaired:")


def test_schema_is_the_documented_one(job):
    from pipeline.schema import OUTPUT_SCHEMA

    for f in (job[0] / "pages").glob("*.parquet"):
        assert pq.read_schema(f).remove_metadata().equals(OUTPUT_SCHEMA)


def test_report_counts(job):
    report = build_report(job[0], {"wall_seconds": 10.0, "pages_processed": len(job[3])})
    assert report["pages"] == len(job[3]) and report["errors"] >= 6
    assert report["routes"]["vertical"]["pages"] >= 4 and report["routes"]["vertical"]["mean_confidence"] > 0.8
    # speed per page class: OCR seconds per page by route and by engine (text-layer pages take none)
    assert report["routes"]["vertical"]["mean_seconds_ocr"] > 0
    assert report["engine_seconds_ocr"]["paddleocr"] > 0 and "text_layer" not in report["engine_seconds_ocr"]
