"""The PaddleOCR route's page structure with the real models: CDLA layout regions, SLANet tables
filled with real PaddleOCR lines, and the same through a Ray job into Parquet and `export`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from actors.page_structure import PageStructure
from actors.paddle_ocr import load_paddleocr, make_reader, recognise
from pipeline.config import LayoutConfig, PaddleConfig, RunConfig
from pipeline.tables import parse_html_tables

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "samples" / "table.jpg"  # 5 ruled rows x 4 columns (samples/make_samples.py), two empty cells
ROWS = [["Engine", "Pages", "Pages/min", "Confidence"], ["PaddleOCR", "120", "48.5", "0.91"],
        ["Qwen2.5-VL", "30", "12.0", "0.88"], ["Text layer", "300", "900.0", "1.00"], ["Total", "450", "", ""]]


@pytest.fixture(scope="module")
def read():
    cfg = PaddleConfig()
    return make_reader(load_paddleocr(cfg, "cpu", 2), cfg, "cpu", 2)


def page_lines(read, path: Path):
    image = np.asarray(Image.open(path).convert("RGB"))
    return image, recognise(read, [image])[0]


def test_a_ruled_table_becomes_html_with_its_cells(read):
    image, lines = page_lines(read, TABLE)
    page = PageStructure(LayoutConfig())(image, lines, "table")
    assert not page.warnings and len(page.tables) == 1
    (table,) = page.tables
    grid = parse_html_tables(table["html"])[0].grid()
    texts = [[c.text if c is not None else "" for c in row] for row in grid]
    assert texts == ROWS, texts
    assert 0 < table["score"] <= 1 and table["box"][2] <= image.shape[1] and table["box"][3] <= image.shape[0]
    assert len(page.lines) == len(lines) and all(r is not None for r in page.regions)  # every line has its region
    assert page.text.index("Engine") < page.text.index("PaddleOCR") < page.text.index("Total")  # row by row


def test_layout_off_tables_off_is_the_plain_reading_order(read):
    image, lines = page_lines(read, TABLE)
    page = PageStructure(LayoutConfig(regions="off", tables="off"))(image, lines, "table")
    assert page.tables == [] and page.regions == [None] * len(lines) and "Engine" in page.text


@pytest.mark.timeout(600)
def test_job_rows_carry_tables_and_line_regions(ray_local, tmp_path):
    from pipeline.export import export
    from pipeline.job import run_job
    from pipeline.report import read_pages

    out = tmp_path / "out"
    run_job([str(TABLE), str(REPO / "samples" / "scan_two_columns.jpg")], out, RunConfig(mode="paddle"))
    rows = {Path(r["source"]).name: r for r in read_pages(out).to_pylist()}
    table = rows["table.jpg"]
    assert table["error"] is None and len(table["tables"]) == 1, table["error"]
    assert [[c.text for c in r] for r in parse_html_tables(table["tables"][0]["html"])[0].rows][0] == ROWS[0]
    assert {ln["region"] for ln in table["lines"]} >= {"table"}
    prose = rows["scan_two_columns.jpg"]
    assert prose["tables"] == [] and all(ln["region"] for ln in prose["lines"])
    export(out, "md", tmp_path / "md")
    md = (tmp_path / "md" / "table.md").read_text()
    assert "<table>" in md and "Qwen2.5-VL" in md and md.count("PaddleOCR") == 1


def test_the_layout_reads_pages_together_as_it_reads_them_alone():
    """`layout.batch_pages`: the CDLA model given a free batch dimension reads pages of different sizes in runs of 2
    (2 + 2 + 1 here) and finds each page's regions as a run of its own does."""
    from actors.layout import LayoutDetector

    paths = [TABLE, *(REPO / "samples" / n for n in ("scan_two_columns.jpg", "vertical_zh.jpg", "table.jpg", "scan_two_columns.jpg"))]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    images[3] = np.ascontiguousarray(images[3][: images[3].shape[0] // 2])  # another size in the same run
    alone, together = LayoutDetector(), LayoutDetector(batch_pages=2)
    assert together.batch_pages == 2
    expected, got = [alone(im) for im in images], together.detect_many(images)
    assert sum(map(len, expected)) >= 5  # regions on every kind of page, so that the comparison means something
    for want, have in zip(expected, got):
        assert [r.label for r in have] == [r.label for r in want]
        np.testing.assert_allclose([r.box for r in have], [r.box for r in want], atol=1e-3)
        np.testing.assert_allclose([r.score for r in have], [r.score for r in want], atol=1e-5)


def test_a_call_with_its_layout_in_one_run_gives_the_same_rows(caplog):
    """The predictor with `layout.batch_pages` 4 reads a call of three pages into the rows that page-by-page layout
    gives: text, lines with their regions, tables (and not by falling back to page by page)."""
    import pandas as pd

    from actors.paddle_ocr import PaddleOcrPredictor

    from tests.conftest import page_row

    rows = [page_row(REPO / "samples" / name, f"d:{k}", route) for k, (name, route) in
            enumerate((("table.jpg", "table"), ("scan_two_columns.jpg", "horizontal"), ("vertical_zh.jpg", "vertical")))]
    predictors = {n: PaddleOcrPredictor(RunConfig(layout={"batch_pages": n}).model_dump(), cpu_threads=2) for n in (1, 4)}
    assert predictors[4].structure.layout.batch_pages == 4
    read = {n: p(pd.DataFrame(rows)) for n, p in predictors.items()}
    assert "together failed" not in caplog.text
    for column in ("error", "text", "lines_json", "tables_json"):
        assert read[4][column].tolist() == read[1][column].tolist(), column
    assert read[4]["error"].isna().all() and '"table"' in read[4].at[0, "lines_json"]


# ----------------------------------------------------------------------------- figure text, routes (layout stubbed)


def _L(text, x0, y0, x1, y1):
    from pipeline.types import OcrLine

    return OcrLine([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], text, 0.9)


def test_figure_text_stays_on_a_table_route_page():
    # the detector calls a table crop's halves figures; on a page routed as a table their text stays (text_without:
    # figure is for charts inside documents), on a horizontal page with body text it is left out
    from actors.layout import Region

    body = [_L(f"body line {k}", 100, 100 + 40 * k, 1100, 130 + 40 * k) for k in range(6)]
    chart = [_L(str(v), 200 + 100 * k, 500, 230 + 100 * k, 520) for k, v in enumerate((0, 2, 4, 6))]
    regions = [Region("text", (95, 95, 1105, 335), 0.9), Region("figure", (100, 380, 700, 560), 0.9)]
    ps = PageStructure(LayoutConfig(tables="off"))
    ps.layout = lambda image: regions
    image = np.full((800, 1200, 3), 255, np.uint8)
    assert ps.cfg.text_without == ["header", "footer", "figure"]  # the default
    doc = ps(image, body + chart, "horizontal")
    assert "body line 5" in doc.text and "6" not in doc.text.split() and doc.regions.count("figure") == 4
    crop = ps(image, body + chart, "table")
    assert "6" in crop.text.split()
    keep = PageStructure(LayoutConfig(tables="off", text_without=["header", "footer"]))
    keep.layout = lambda image: regions
    assert "6" in keep(image, body + chart, "horizontal").text.split()
