"""Region-aware reading order (pipeline/region_order.py) and the CDLA layout model (actors/layout.py)."""

import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from pipeline.region_order import assign_lines, order_regions
from pipeline.types import OcrLine


def L(text, x0, y0, x1, y1):
    return OcrLine(box=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]], text=text, score=0.9)


def texts(page):
    return [ln.text for ln in page.lines]


def test_two_columns_with_full_width_title_and_breaking_figure():
    # paragraph breaks line up across the columns (a band-by-band reading would interleave them);
    # a full-width caption ends the first pair of columns, a second pair follows under it
    lines = [L("TITLE", 100, 40, 1100, 90)]
    regions = [("title", (95, 35, 1105, 95))]
    for col, (x0, x1) in enumerate([(100, 580), (620, 1100)]):
        name = "LR"[col]
        for p, ys in enumerate([(120, 160, 200), (260, 300)]):
            for k, y in enumerate(ys):
                lines.append(L(f"{name}{p}{k}", x0, y, x1, y + 30))
            regions.append(("text", (x0 - 5, ys[0] - 5, x1 + 5, ys[-1] + 35)))
        for k, y in enumerate((460, 500)):
            lines.append(L(f"{name}b{k}", x0, y, x1, y + 30))
        regions.append(("text", (x0 - 5, 455, x1 + 5, 535)))
    lines.append(L("Figure 1: wide caption", 100, 400, 1100, 430))
    regions.append(("figure_caption", (95, 395, 1105, 435)))
    random.Random(0).shuffle(lines)
    got = texts(order_regions(lines, regions[::-1]))
    assert got == ["TITLE", "L00", "L01", "L02", "L10", "L11", "R00", "R01", "R02", "R10", "R11",
                   "Figure 1: wide caption", "Lb0", "Lb1", "Rb0", "Rb1"]


def test_table_region_is_read_row_major():
    # cells drift a little in y and the columns are far apart: the plain XY-cut reads such a
    # block column by column; inside a table region it is row by row
    lines = [L("Results are below.", 100, 40, 700, 70)]
    cells = []
    for r in range(4):
        for c in range(3):
            y = 120 + 50 * r + 3 * c
            cells.append(L(f"r{r}c{c}", 100 + 300 * c, y, 180 + 300 * c, y + 24))
    page = order_regions(lines + cells[::-1], [("text", (90, 35, 710, 75)), ("table", (90, 110, 800, 330))])
    assert texts(page) == ["Results are below."] + [f"r{r}c{c}" for r in range(4) for c in range(3)]
    assert page.labels == ["text"] + ["table"] * 12
    assert page.text.split("\n\n")[1].splitlines() == [f"r{r}c0 r{r}c1 r{r}c2" for r in range(4)]


def test_header_first_footer_last_and_labels():
    lines = [L("page 7", 560, 1580, 640, 1600), L("Journal of Things 12 (2020)", 100, 30, 600, 55),
             L("body one", 100, 200, 1100, 230), L("body two", 100, 240, 1100, 270),
             L("Received 1 May", 100, 800, 400, 825)]
    regions = [("footer", (550, 1575, 650, 1605)), ("header", (95, 25, 605, 60)),
               ("text", (95, 195, 1105, 275)),
               ("footer", (95, 795, 405, 830))]  # "footer" mid-page: body text, read in place
    page = order_regions(lines, regions, page_size=(1200, 1650))
    assert texts(page) == ["Journal of Things 12 (2020)", "body one", "body two", "Received 1 May", "page 7"]
    assert page.labels == ["header", "text", "text", "text", "footer"]
    bare = order_regions(lines, regions, page_size=(1200, 1650), text_without=("header", "footer"))
    assert bare.text == "body one\nbody two\n\nReceived 1 May" and len(bare.lines) == 5


def test_form_key_value_rows_stay_together():
    # each key and each value is its own small region; the gap between them is no gutter
    lines, regions = [], []
    for k, (key, value) in enumerate([("Name:", "John Smith"), ("Date:", "2020-01-02"), ("City:", "Paris"),
                                      ("Phone:", "555 1234")]):
        y = 100 + 40 * k
        lines += [L(key, 100, y, 170, y + 25), L(value, 260, y, 420, y + 25)]
        regions += [("text", (95, y - 3, 175, y + 28)), ("text", (255, y - 3, 425, y + 28))]
    got = texts(order_regions(lines[::-1], regions))
    assert got == ["Name:", "John Smith", "Date:", "2020-01-02", "City:", "Paris", "Phone:", "555 1234"]


def test_vertical_regions_right_to_left():
    # two blocks of vertical columns side by side; each block's columns right to left
    lines, regions = [], []
    for block, xs in (("A", (900, 850, 800)), ("B", (500, 450))):
        for k, x in enumerate(xs):
            lines.append(L(f"{block}{k}" * 5, x, 100, x + 30, 700))
        regions.append(("text", (min(xs) - 5, 95, max(xs) + 35, 705)))
    page = order_regions(lines[::-1], regions[::-1], direction="auto")
    assert texts(page) == ["A0" * 5, "A1" * 5, "A2" * 5, "B0" * 5, "B1" * 5]


def test_lines_outside_regions_are_kept_and_placed():
    lines = [L("inside a", 100, 100, 500, 130), L("inside b", 100, 140, 500, 170),
             L("stray note", 100, 300, 300, 330), L("right column", 700, 100, 1100, 130)]
    page = order_regions(lines, [("text", (95, 95, 505, 175))])
    assert texts(page) == ["inside a", "inside b", "stray note", "right column"]
    assert assign_lines(lines, [("text", (95, 95, 505, 175))]) == [0, 0, None, None]


def test_dict_lines_round_trip():
    lines = [{"box": [[0, 50], [90, 50], [90, 70], [0, 70]], "text": "second", "score": 1.0},
             {"box": [[0, 10], [90, 10], [90, 30], [0, 30]], "text": "first", "score": 1.0}]
    page = order_regions(lines, [])
    assert [ln["text"] for ln in page.lines] == ["first", "second"]
    assert page.text == "first\nsecond"


def test_figure_in_the_gutter_does_not_interleave_columns():
    # a magazine page: a figure (and its caption) sits across the gutter between two columns whose
    # narrowed middle paragraphs run beside it; each column is still read top to bottom
    lines, regions = [], []
    for name, (x0, x1), (nx0, nx1) in (("L", (100, 580), (100, 380)), ("R", (620, 1100), (820, 1100))):
        for k, (a, b, y0) in enumerate([(x0, x1, 100), (nx0, nx1, 300), (x0, x1, 700)]):
            lines += [L(f"{name}{k}a", a, y0, b, y0 + 30), L(f"{name}{k}b", a, y0 + 40, b, y0 + 70)]
            regions.append(("text", (a - 5, y0 - 5, b + 5, y0 + 75)))
    lines += [L("chart label", 450, 350, 560, 370), L("Photo: the harbour", 420, 600, 780, 630)]
    regions += [("figure", (400, 280, 800, 580)), ("figure_caption", (410, 590, 790, 640))]
    got = texts(order_regions(lines[::-1], regions))
    left = [f"L{k}{s}" for k in range(3) for s in "ab"]
    right = [f"R{k}{s}" for k in range(3) for s in "ab"]
    assert [t for t in got if t[0] in "LR" and len(t) == 3] == left + right
    assert got.index("L2b") < got.index("R0a")  # not band by band


def test_heading_above_full_width_text_follows_the_columns():
    # a narrow text beside a table, then a section heading under the text and a full-width paragraph:
    # the heading opens the paragraph rather than ending the left column
    lines = [L("notes one", 100, 100, 380, 125), L("notes two", 100, 135, 380, 160),
             L("cell a", 500, 100, 600, 125), L("cell b", 700, 100, 800, 125), L("cell c", 500, 150, 600, 175),
             L("Legal", 100, 200, 200, 230), L("full width paragraph", 100, 250, 900, 275)]
    regions = [("text", (95, 95, 385, 165)), ("table", (495, 95, 805, 180)), ("title", (95, 195, 205, 235)),
               ("text", (95, 245, 905, 280))]
    assert texts(order_regions(lines, regions)) == ["notes one", "notes two", "cell a", "cell b", "cell c", "Legal",
                                                    "full width paragraph"]


def test_side_by_side_tables_are_read_one_after_the_other():
    # one table region holding two tables with the same year columns (a financial statement page)
    lines = []
    for side, x in (("A", 100), ("B", 700)):
        lines += [L(f"{side} metric", x, 100, x + 150, 125)] + [L(str(2021 + k), x + 200 + 90 * k, 100, x + 260 + 90 * k, 125) for k in range(3)]
        for r in range(4):
            y = 140 + 35 * r
            lines += [L(f"{side}row{r}", x, y, x + 120, y + 25)] + [L(f"{side}{r}{k}", x + 200 + 90 * k, y, x + 260 + 90 * k, y + 25) for k in range(3)]
    page = order_regions(lines, [("table", (90, 90, 1290, 290))])
    got = texts(page)
    assert got[:4] == ["A metric", "2021", "2022", "2023"] and got[4:8] == ["Arow0", "A00", "A01", "A02"]
    assert got[20:24] == ["B metric", "2021", "2022", "2023"]
    # the same header twice in one row is one wide table with repeated columns: row-major across
    lines2 = [L(t, 100 + 150 * k, 100, 200 + 150 * k, 125) for k, t in enumerate(["gene", "fold", "gene", "fold"])]
    for r in range(3):
        lines2 += [L(f"g{r}{k}", 100 + 150 * k, 140 + 35 * r, 200 + 150 * k, 165 + 35 * r) for k in range(4)]
    assert texts(order_regions(lines2, [("table", (90, 90, 700, 260))]))[4:8] == ["g00", "g01", "g02", "g03"]


def test_wrapped_table_cell_stays_whole():
    # the middle cell of row 1 wraps onto a second line; the cell is read whole before the next cell
    lines = [L("Dx", 100, 100, 160, 125), L("first part of a long", 300, 100, 700, 125), L("10.2", 800, 100, 880, 125),
             L("cell text", 300, 130, 480, 155),
             L("Ex", 100, 200, 160, 225), L("short", 300, 200, 420, 225), L("10.3", 800, 200, 880, 225)]
    page = order_regions(lines[::-1], [("table", (90, 90, 900, 240))])
    assert texts(page) == ["Dx", "first part of a long", "cell text", "10.2", "Ex", "short", "10.3"]


def _column(name, x0, x1, y0, rows, h=30, step=40, indent=()):
    """Lines "name0".."name<rows-1>" of a text column, 40 px apart; rows in `indent` start a paragraph."""
    return [L(f"{name}{k}", x0 + (30 if k in indent else 0), y0 + step * k, x1, y0 + step * k + h) for k in range(rows)]


def test_caption_over_a_full_width_table_goes_with_the_table():
    # two columns, then "Table 4" and its caption left-aligned (narrower than the left column) over a
    # full-width table: the caption opens the table, it does not end the left column
    lines = _column("l", 100, 580, 100, 4) + _column("r", 620, 1100, 100, 4)
    lines += [L("Table 4", 100, 280, 180, 305), L("Relative densities at 700 MPa.", 100, 310, 500, 335)]
    cells = [L(f"c{r}{c}", 100 + 330 * c, 350 + 40 * r, 200 + 330 * c, 375 + 40 * r) for r in range(2) for c in range(3)]
    regions = [("text", (95, 95, 585, 255)), ("text", (615, 95, 1105, 255)), ("table_caption", (95, 305, 505, 340)),
               ("table", (95, 345, 1105, 420))]
    got = texts(order_regions(lines + cells, regions))
    assert got == [f"l{k}" for k in range(4)] + [f"r{k}" for k in range(4)] + \
        ["Table 4", "Relative densities at 700 MPa.", "c00", "c01", "c02", "c10", "c11", "c12"]
    # two captions on one row ("Table 1.4.4" right, its title in the middle) both open the table
    lines2 = [L("Smart ship notations", 400, 100, 700, 125), L("Table 1.4.4", 950, 98, 1050, 127)] + cells
    regions2 = [("table_caption", (945, 95, 1055, 130)), ("table_caption", (395, 97, 705, 128)), ("table", (95, 345, 1105, 420))]
    lines2 = [L(t.text, t.x0, t.y0 - 200, t.x1, t.y1 - 200) if t.text.startswith("c") else t for t in lines2]
    regions2[2] = ("table", (95, 145, 1105, 220))
    assert texts(order_regions(lines2, regions2))[:3] == ["Smart ship notations", "Table 1.4.4", "c00"]


def test_a_paragraph_interrupted_by_a_figure_reads_on():
    # the left column ends mid-sentence; the right column holds a figure and its caption, then the
    # sentence goes on ("the density...", lower case) and a new, indented paragraph follows: the
    # continuation's first paragraph is read before the figure's caption, the rest after it
    lines = _column("left", 100, 580, 100, 3)
    lines[-1].text = "and the measured value of"
    lines += [L("Fig. 4. SEM micrograph of the sample.", 620, 330, 1100, 355)]
    cont = _column("c", 620, 1100, 400, 4, indent=(2,))
    cont[0].text = "the density rose by 3%."
    cont[1].text = "as expected."
    lines += cont
    regions = [("text", (95, 95, 585, 215)), ("figure", (620, 100, 1100, 320)), ("figure_caption", (615, 325, 1105, 360)),
               ("text", (615, 395, 1105, 535))]
    got = texts(order_regions(lines, regions))
    assert got == ["left0", "left1", "and the measured value of", "the density rose by 3%.", "as expected.",
                   "Fig. 4. SEM micrograph of the sample.", "c2", "c3"]
    # a sentence that ended keeps the figure where the XY-cut put it
    lines[2] = L("and the measured value.", 100, 180, 580, 210)
    got = texts(order_regions(lines, regions))
    assert got.index("Fig. 4. SEM micrograph of the sample.") < got.index("the density rose by 3%.")


def test_text_going_on_from_the_previous_page_comes_before_the_floats():
    lines = [L("Fig. 5. XRD patterns.", 100, 330, 1100, 355)] + _column("c", 100, 1100, 400, 3, indent=(1,))
    lines[1].text = "was nearly equal to the theoretical density."
    lines[2].text = "Next paragraph"
    lines.append(L("(a)", 150, 120, 190, 140))  # a panel letter in the figure
    regions = [("figure", (100, 100, 1100, 320)), ("text", (95, 325, 1105, 360)), ("text", (95, 395, 1105, 515))]
    assert texts(order_regions(lines, regions)) == ["was nearly equal to the theoretical density.", "(a)",
                                                    "Fig. 5. XRD patterns.", "Next paragraph", "c2"]
    lines[1].text = "Was nearly equal."  # upper case: a new paragraph, nothing moves
    assert texts(order_regions(lines, regions))[0] == "(a)"


def test_figure_text_left_out_with_text_without_figure():
    body = _column("body", 100, 1100, 100, 6)
    ticks = [L(str(v), 120, 400 + 30 * k, 150, 420 + 30 * k) for k, v in enumerate((30, 20, 10, 0))]
    ticks += [L(str(v), 200 + 100 * k, 530, 230 + 100 * k, 550) for k, v in enumerate((0, 2, 4, 6))]
    caption = L("Fig. 2. Hardness against TiO2 content.", 100, 580, 700, 605)
    regions = [("text", (95, 95, 1105, 335)), ("figure", (100, 380, 700, 560)), ("figure_caption", (95, 575, 705, 610))]
    page = order_regions(body + ticks + [caption], regions, text_without=("figure",))
    assert "Fig. 2. Hardness" in page.text and "body5" in page.text
    assert not any(t.text in page.text.split() for t in ticks)
    assert len(page.lines) == len(body) + len(ticks) + 1 and page.labels.count("figure") == len(ticks)  # lines kept
    kept = order_regions(body + ticks + [caption], regions)
    assert all(t.text in kept.text.split() for t in ticks)
    # figures holding most of the page's text (a table crop the detector called a figure) stay
    grid = [L(f"v{r}{c}", 100 + 120 * c, 100 + 40 * r, 160 + 120 * c, 125 + 40 * r) for r in range(3) for c in range(4)]
    crop = order_regions(grid, [("figure", (90, 90, 600, 220))], text_without=("figure",))
    assert crop.text.splitlines()[0] == "v00 v01 v02 v03" and crop.labels == ["table"] * 12
    # a figure whose text is a grid of many aligned rows is a table, beside body text too
    rows = [L(f"t{r}{c}", 100 + 120 * c, 400 + 35 * r, 160 + 120 * c, 425 + 35 * r) for r in range(9) for c in range(4)]
    page = order_regions(body * 3 + rows, [("text", (95, 95, 1105, 335)), ("figure", (90, 390, 600, 720))],
                         text_without=("figure",))
    assert "t80 t81 t82 t83" in page.text


def test_text_inside_a_figure_box_is_the_figure():
    body = _column("body", 100, 1100, 100, 4)
    scale = L("25 KV 500 X 100um", 150, 480, 400, 500)  # an SEM image's data bar, found as a text region
    regions = [("text", (95, 95, 1105, 255)), ("figure", (100, 300, 700, 520)), ("text", (148, 478, 402, 502))]
    page = order_regions(body + [scale], regions, text_without=("figure",))
    assert "25 KV" not in page.text and page.labels[-1] == "figure"


# ----------------------------------------------------------------------------- the real model

def _font(size, bold=False):
    name = "DejaVuSerif-Bold.ttf" if bold else "DejaVuSerif.ttf"
    try:
        return ImageFont.truetype(f"/usr/share/fonts/truetype/dejavu/{name}", size)
    except OSError:
        pytest.skip("DejaVu fonts not installed")


def _page():
    """A4 at 100 dpi: title, two text columns, a ruled 4x5 table across the page below them."""
    rng = random.Random(1)
    words = ("layout region reading order the of model page text column table line detector results "
             "method data value analysis shows figure section approach").split()
    im = Image.new("RGB", (827, 1169), "white")
    d = ImageDraw.Draw(im)
    d.text((120, 70), "A Study of Layout Regions", font=_font(30, True), fill="black")
    f = _font(13)
    for x0 in (60, 433):
        for k in range(30):
            y = 150 + 18 * k + (18 if k >= 15 else 0)
            d.text((x0, y), " ".join(rng.choice(words) for _ in range(6)).capitalize(), font=f, fill="black")
    tx0, ty0, tx1, ty1 = 100, 800, 727, 1050
    for r in range(6):
        d.line((tx0, ty0 + 50 * r, tx1, ty0 + 50 * r), fill="black", width=2)
    for c in range(5):
        x = tx0 + (tx1 - tx0) * c // 4
        d.line((x, ty0, x, ty1), fill="black", width=2)
    for r in range(5):
        for c in range(4):
            d.text((tx0 + 15 + (tx1 - tx0) * c // 4, ty0 + 15 + 50 * r), f"{rng.randint(10, 999)}.{r}{c}", font=f, fill="black")
    return np.asarray(im), (tx0, ty0, tx1, ty1), [(60, 150, 400, 710), (433, 150, 773, 710)]


def _overlap(a, b):
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((b[2] - b[0]) * (b[3] - b[1]))


def test_cdla_model_finds_table_and_text_columns():
    from actors.layout import INSTALL_HINT, LayoutDetector, model_path

    if model_path() is None:
        pytest.skip(f"layout model not installed ({INSTALL_HINT})")
    image, table, columns = _page()
    regions = LayoutDetector(threads=2)(image)
    assert all(0 <= r.box[0] < r.box[2] <= image.shape[1] and 0 <= r.box[1] < r.box[3] <= image.shape[0] for r in regions)
    tables = [r for r in regions if r.label == "table"]
    assert tables and max(_overlap(r.box, table) for r in tables) > 0.8
    assert all(_overlap(r.box, table) > 0.5 for r in tables)  # no table found where text is
    text = [r for r in regions if r.label == "text"]
    for col in columns:  # each drawn column is mostly covered by text regions that stay inside it
        inside = [r for r in text if _overlap(r.box, col) > 0.1 and r.box[0] >= col[0] - 30 and r.box[2] <= col[2] + 30]
        assert sum(_overlap(r.box, col) for r in inside) > 0.6, (col, regions)
