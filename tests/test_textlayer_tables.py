"""Tables on text-layer pages (pipeline/textlayer_tables.py): real layout and table models, real PDFs made here."""

from __future__ import annotations

import json

import pymupdf
import pytest

from pipeline.config import RunConfig
from pipeline.discover import expand_document
from pipeline.prepare import prepare_page
from pipeline.tables import parse_html_tables
from pipeline.textlayer_tables import looks_tabular
from pipeline.types import OcrLine

X = [72, 200, 300, 400, 500]
ROWS = [["Office", "Revenue", "Costs", "Staff", "Sites"]] + [
    [f"Region {r}", f"{1000 + 37 * r}", f"{600 + 11 * r}", f"{40 + r}", f"{2 + r % 3}"] for r in range(8)]


def _line(x0, y0, x1, text, h=12):
    return OcrLine([[x0, y0], [x1, y0], [x1, y0 + h], [x0, y0 + h]], text, 1.0)


def _pdf(path, table: bool) -> str:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((72, 80), "Quarterly results of the three regional offices", fontsize=14)
    y = 110
    for i in range(6):
        page.insert_text((72, y), f"The offices reported their figures for the quarter in the usual way, line {i}.", fontsize=10)
        y += 14
    if table:
        y += 20
        top = y - 14
        for row in ROWS:
            for x, cell in zip(X, row):
                page.insert_text((x + 4, y), cell, fontsize=10)
            y += 20
        for k in range(len(ROWS) + 1):
            page.draw_line((72, top + 20 * k), (560, top + 20 * k))
        for x in X + [560]:
            page.draw_line((x, top), (x, top + 20 * len(ROWS)))
    for i in range(6):
        page.insert_text((72, y + 20 + 14 * i), f"After the table the text goes on about the offices, line {i}.", fontsize=10)
    doc.save(path)
    return str(path)


def test_a_grid_of_cells_is_tabular_and_prose_is_not():
    grid = [_line(x, 100 + 20 * r, x + 60, "c") for r in range(4) for x in (0, 150, 300, 450)]
    assert looks_tabular(grid)
    # currency signs in columns of their own: rows with more cells still line up with the others
    money = grid + [_line(140, 100 + 20 * r, 146, "$") for r in range(2)]
    assert looks_tabular(money)
    # prose broken around inline math: three pieces a row, but never in the same columns
    prose = [ln for r, cut in enumerate((200, 420, 310, 520)) for ln in (
        _line(0, 100 + 20 * r, cut, "text"), _line(cut + 5, 100 + 20 * r, cut + 25, "x"), _line(cut + 30, 100 + 20 * r, 900, "more"))]
    assert not looks_tabular(prose)
    # two text columns: two cells a row
    assert not looks_tabular([_line(x, 100 + 20 * r, x + 400, "col") for r in range(10) for x in (0, 450)])
    assert not looks_tabular(grid[:8])  # two rows are not a table


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory):
    d = tmp_path_factory.mktemp("textlayer-tables")
    return _pdf(d / "table.pdf", True), _pdf(d / "prose.pdf", False)


def test_a_table_on_a_text_layer_page_comes_out_as_html_with_the_text_layers_cells(pdfs):
    row = prepare_page(expand_document({"source": pdfs[0]})[0], RunConfig())
    assert row["engine"] == "text_layer" and row["error"] is None
    assert "Region 7" in row["text"]  # the text is still the text layer's
    tables = json.loads(row["tables_json"])
    assert len(tables) == 1
    parsed = parse_html_tables(tables[0]["html"])
    assert len(parsed) == 1
    cells = [[c.text.strip() for c in r if c is not None] for r in parsed[0].grid()]
    assert cells[0] == ROWS[0] and cells[-1] == ROWS[-1] and len(cells) == len(ROWS), cells
    x0, y0, x1, y1 = tables[0]["box"]  # in the row's pixels (185 DPI): around the ruled grid
    k = 185 / 72
    assert x0 < 80 * k and x1 > 550 * k and 0 < y0 < y1 < row["height"]


def test_prose_pages_and_the_switch_off_give_no_tables(pdfs):
    prose = prepare_page(expand_document({"source": pdfs[1]})[0], RunConfig())
    assert prose["engine"] == "text_layer" and prose["tables_json"] is None
    off = prepare_page(expand_document({"source": pdfs[0]})[0], RunConfig.model_validate({"text_layer": {"layout": "off"}}))
    assert off["engine"] == "text_layer" and off["tables_json"] is None and "Region 7" in off["text"]


def test_full_layout_reads_a_text_layer_page_like_an_ocr_page(pdfs, tmp_path):
    doc = pymupdf.open(pdfs[0])
    doc[0].insert_text((72, 40), "Annual report of the regional offices 2026", fontsize=8)  # a running head
    doc.save(tmp_path / "headed.pdf")
    row = expand_document({"source": str(tmp_path / "headed.pdf")})[0]
    plain = prepare_page(row, RunConfig())
    full = prepare_page(row, RunConfig.model_validate({"text_layer": {"layout": "full"}}))
    assert "Annual report" in plain["text"] and plain["lines_json"].count('"region": null') > 10
    assert full["engine"] == "text_layer" and full["error"] is None
    lines = json.loads(full["lines_json"])
    assert len(lines) == len(json.loads(plain["lines_json"]))  # the same lines, labelled and ordered by region
    head = next(ln for ln in lines if ln["text"].startswith("Annual report"))
    assert head["region"] == "header" and "Annual report" not in full["text"]
    assert "Region 7" in full["text"] and full["text"].index("line 5.") < full["text"].index("Office")
    assert len(json.loads(full["tables_json"])) == 1
