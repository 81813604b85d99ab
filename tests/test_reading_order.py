from pipeline.reading_order import detect_direction, order_lines, page_text
from pipeline.types import OcrLine


def L(text, x0, y0, x1, y1):
    return OcrLine(box=[[x0, y0], [x1, y0], [x1, y1], [x0, y1]], text=text, score=0.9)


def texts(lines):
    return [ln.text for ln in lines]


def two_column_page():
    """Full-width title, two columns of 4 lines each (baselines aligned), full-width footer."""
    lines = [L("TITLE OF THE PAPER SPANNING BOTH COLUMNS", 100, 50, 1100, 90)]
    for i in range(4):
        y = 150 + i * 40
        lines.append(L(f"left {i}", 100, y, 580, y + 30))
        lines.append(L(f"right {i}", 620, y, 1100, y + 30))
    lines.append(L("footer line across the whole page width", 100, 400, 1100, 430))
    return lines


def test_two_columns_with_full_width_title():
    lines = two_column_page()
    shuffled = lines[::-1]  # detector order is arbitrary
    assert detect_direction(shuffled) == "horizontal"
    got = texts(order_lines(shuffled))
    assert got == ["TITLE OF THE PAPER SPANNING BOTH COLUMNS"] + [f"left {i}" for i in range(4)] + \
        [f"right {i}" for i in range(4)] + ["footer line across the whole page width"]


def test_columns_with_aligned_paragraph_gap_are_not_interleaved():
    # both columns have a paragraph break at the same height: still column after column
    lines = []
    for i, y in enumerate([100, 140, 180, 260, 300]):
        lines.append(L(f"L{i}", 100, y, 580, y + 30))
        lines.append(L(f"R{i}", 620, y, 1100, y + 30))
    got = texts(order_lines(lines))
    assert got == [f"L{i}" for i in range(5)] + [f"R{i}" for i in range(5)]


def test_full_width_block_between_two_column_sections():
    lines = [L("a0", 100, 100, 580, 130), L("b0", 620, 100, 1100, 130),
             L("a1", 100, 140, 580, 170), L("b1", 620, 140, 1100, 170),
             L("Figure 1: a caption that spans the full page width", 100, 200, 1100, 230),
             L("c0", 100, 260, 580, 290), L("d0", 620, 260, 1100, 290)]
    assert texts(order_lines(lines[::-1])) == ["a0", "a1", "b0", "b1",
                                               "Figure 1: a caption that spans the full page width", "c0", "d0"]


def test_row_split_into_two_boxes_is_joined_left_to_right():
    lines = [L("first part of a row", 100, 100, 500, 130), L("and its end", 560, 102, 800, 131),
             L("second row of text that is long", 100, 140, 800, 170)]
    assert texts(order_lines(lines[::-1])) == ["first part of a row", "and its end", "second row of text that is long"]
    assert page_text(lines).splitlines()[0] == "first part of a row and its end"


def test_list_labels_stay_with_their_rows():
    lines = []
    for i in range(4):
        y = 100 + 40 * i
        lines.append(L(f"({i})", 100, y, 160, y + 30))
        lines.append(L(f"item text number {i} continues here", 220, y, 900, y + 30))
    got = texts(order_lines(lines[::-1]))
    assert got == [t for i in range(4) for t in (f"({i})", f"item text number {i} continues here")]


def test_slightly_skewed_lines_keep_row_order():
    # rows drift down to the right (skewed scan) and boxes overlap a little vertically
    lines = []
    for i in range(5):
        y = 100 + 32 * i
        lines.append(OcrLine(box=[[100, y], [900, y + 12], [900, y + 46], [100, y + 34]], text=f"row {i}", score=1))
    assert texts(order_lines(lines[::-1])) == [f"row {i}" for i in range(5)]


def vertical_page():
    """Three vertical columns, right to left; the middle one split into two boxes (punctuation gap)."""
    return [
        L("學而時習之不亦說乎", 800, 100, 850, 600),
        L("有朋自遠方來", 720, 100, 770, 400),
        L("不亦樂乎", 720, 440, 770, 640),
        L("人不知而不慍", 640, 100, 690, 400),
    ]


def test_vertical_columns_right_to_left():
    lines = vertical_page()
    shuffled = [lines[3], lines[0], lines[2], lines[1]]
    assert detect_direction(shuffled) == "vertical"
    assert texts(order_lines(shuffled)) == ["學而時習之不亦說乎", "有朋自遠方來", "不亦樂乎", "人不知而不慍"]
    assert page_text(shuffled).split() == ["學而時習之不亦說乎", "有朋自遠方來不亦樂乎", "人不知而不慍"]


def test_vertical_tight_columns_with_overlapping_boxes():
    # detector boxes of neighbouring columns overlap by a few pixels
    lines = [L(f"col{i}", 900 - 60 * i - 4, 100, 900 - 60 * i + 62, 700) for i in range(6)]
    assert texts(order_lines(lines, "vertical")) == [f"col{i}" for i in range(6)]


def test_direction_with_single_character_boxes():
    # only single characters: decided by where the nearest neighbour sits
    vert = [L(c, 500 - 60 * (i // 4), 100 + 50 * (i % 4), 540 - 60 * (i // 4), 140 + 50 * (i % 4))
            for i, c in enumerate("天地玄黃宇宙洪荒")]
    horiz = [L(c, 100 + 50 * (i % 4), 100 + 70 * (i // 4), 140 + 50 * (i % 4), 140 + 70 * (i // 4))
             for i, c in enumerate("天地玄黃宇宙洪荒")]
    assert detect_direction(vert) == "vertical"
    assert detect_direction(horiz) == "horizontal"
    assert "".join(texts(order_lines(vert))) == "天地玄黃宇宙洪荒"


def test_empty_and_explicit_direction():
    assert order_lines([]) == []
    assert page_text([]) == ""
    assert detect_direction([]) == "horizontal"
    lines = two_column_page()
    assert order_lines(lines, "horizontal") == order_lines(lines)


def test_small_caption_in_the_gutter_does_not_break_columns():
    # magazine layout: a short caption sits across the gutter with column text above and below
    lines = []
    for i in range(10):
        y = 100 + 40 * i
        lines.append(L(f"L{i}", 100, y, 560, y + 30))
        lines.append(L(f"R{i}", 660, y, 1120, y + 30))
    lines.append(L("PHOTO CAPTION", 500, 262, 720, 290))  # crosses the gutter between rows 4 and 5
    got = texts(order_lines(lines[::-1]))
    assert got[:5] == [f"L{i}" for i in range(5)]
    assert [t for t in got if t.startswith("L")] == [f"L{i}" for i in range(10)]
    assert [t for t in got if t.startswith("R")] == [f"R{i}" for i in range(10)]
    assert got.index("R0") > got.index("L9") or got.index("L0") > got.index("R9")
