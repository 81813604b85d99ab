"""`hybridocr export` from a real Parquet output (written with pipeline.schema): tables keep their
columns, every document gets its own file, a missing OUT_DIR is an error that says what to do."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.export import ExportError, export
from pipeline.schema import OUTPUT_SCHEMA, to_output_table


def box(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def line(x0, y0, x1, y1, text):
    return {"box": box(x0, y0, x1, y1), "text": text, "score": 0.95}


def page(doc_id, source, index, *, lines=(), text=None, route="horizontal", error=None):
    lines = list(lines)
    return {"page_id": f"{doc_id}:{index}", "doc_id": doc_id, "source": source, "kind": "pdf",
            "page_index": index, "page_count": 1, "route": None if error else route,
            "engine": "none" if error else "paddleocr",
            "text": "" if error else (text if text is not None else "\n".join(l["text"] for l in lines)),
            "lines_json": json.dumps(lines), "width": 1000, "height": 1400, "error": error}


def write_out(out_dir, rows, name="part-00000.parquet"):
    (out_dir / "pages").mkdir(parents=True, exist_ok=True)
    table = to_output_table(pa.Table.from_pylist(rows))
    assert table.schema == OUTPUT_SCHEMA
    pq.write_table(table, out_dir / "pages" / name)
    return out_dir


# A title, then a 3-column table (header + 3 rows). Boxes jitter a little in x and y, as OCR boxes
# do; the lines come in PaddleOCR's column-major-ish order, not row by row.
TITLE = line(100, 40, 520, 80, "Inventory March")
CELLS = [
    [(100, 200, "Item"), (400, 202, "Qty"), (700, 198, "Price")],
    [(102, 260, "Bolts"), (405, 262, "120"), (702, 259, "0.10")],
    [(98, 320, "Nuts a|b"), (398, 318, "75"), (699, 322, "0.05")],
    [(101, 380, "Washers"), (402, 381, "3000"), (701, 379, "0.01")],
]
GRID_LINES = [line(x, y, x + 8 * len(t) + 20, y + 30, t) for row in CELLS for x, y, t in row]
TABLE_LINES = [TITLE] + [GRID_LINES[k] for k in (0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11)]
EXPECTED = [[t for _, _, t in row] for row in CELLS]
PROSE = [line(100, 100 + 40 * i, 900, 130 + 40 * i, f"prose line {i} of the first page") for i in range(5)]
# two-column prose on a horizontal page: lines side by side, but no table
TWO_COL = [line(x, 100 + 40 * i, x + 380, 130 + 40 * i, f"{side} column sentence number {i} here")
           for side, x in (("left", 60), ("right", 540)) for i in range(6)]


def md_tables(md: str) -> list[list[list[str]]]:
    """GFM pipe tables in `md` as rows of cells (split on unescaped |, escapes undone)."""
    found, rows = [], []
    for ln in md.split("\n") + [""]:
        if ln.startswith("|"):
            cells = re.split(r"(?<!\\)\|", ln.strip()[1:-1])
            rows.append([c.strip().replace("\\|", "|") for c in cells])
        elif rows:
            found.append(rows)
            rows = []
    return found


@pytest.fixture
def table_out(tmp_path):
    rows = [page("d" * 32, "/in/stock.pdf", 1, lines=TABLE_LINES, route="table"),
            page("d" * 32, "/in/stock.pdf", 0, lines=PROSE),
            page("d" * 32, "/in/stock.pdf", 2, error="render: the PDF page is corrupt; re-save the file and run again"),
            page("e" * 32, "/in/grid.pdf", 0, lines=GRID_LINES, route="horizontal"),
            page("f" * 32, "/in/columns.pdf", 0, lines=TWO_COL, route="horizontal")]
    return write_out(tmp_path / "out", rows)


def test_table_page_becomes_markdown_table_with_its_columns(table_out, tmp_path):
    paths = export(table_out, "md", tmp_path / "md")
    md = (tmp_path / "md" / "stock.md").read_text()
    tables = md_tables(md)
    assert len(tables) == 1
    header, sep, *body = tables[0]
    assert all(len(r) == 3 for r in tables[0])  # 3 columns in every row, separator included
    assert set(sep) == {"---"}
    assert [header, *body] == EXPECTED  # rows by y, cells in their own columns, "a|b" escaped and kept
    assert "Nuts a\\|b" in md
    # the title stays text above the table; the prose page and the error row are as before
    assert md.index("Inventory March") < md.index("| Item | Qty | Price |")
    assert "\n".join(l["text"] for l in PROSE) in md
    assert md.index("prose line 0") < md.index("| Item") < md.index("[page 3 not read: render: the PDF page is corrupt; re-save")
    # a horizontal page whose lines form a clear grid is a table too; two-column prose is not
    assert md_tables((tmp_path / "md" / "grid.md").read_text()) == [[EXPECTED[0], ["---"] * 3, *EXPECTED[1:]]]
    columns = (tmp_path / "md" / "columns.md").read_text()
    assert "|" not in columns and "\n".join(l["text"] for l in TWO_COL) in columns
    assert sorted(p.name for p in paths) == ["columns.md", "grid.md", "stock.md"]


def test_table_page_in_txt_keeps_columns_aligned(table_out, tmp_path):
    export(table_out, "txt", tmp_path / "txt")
    txt = (tmp_path / "txt" / "stock.txt").read_text()
    rows = [ln for ln in txt.split("\n") if ln.split() and ln.split()[0] in ("Item", "Bolts", "Nuts", "Washers")]
    assert len(rows) == 4  # one line per table row, not one per cell
    starts = []  # per row, where each of its cells begins
    for ln, cells in zip(rows, EXPECTED):
        at = [0]
        for k in (1, 2):
            at.append(ln.index(cells[k], at[-1] + len(cells[k - 1])))
        starts.append(at)
    assert all(at == starts[0] for at in starts)  # every column starts at the same offset in every row
    for k in (1, 2):  # after the widest cell of the column before it, with a space between
        assert starts[0][k] > starts[0][k - 1] + max(len(r[k - 1]) for r in EXPECTED)
    assert "[page 3 not read: render:" in txt and "\f" in txt


SPAN_HTML = ("<table><thead><tr><td colspan=\"2\">Stock</td><td>Price</td></tr></thead>"
             "<tbody><tr><td>Bolts</td><td>120</td><td>0.10</td></tr></tbody></table>")


def test_tables_column_stands_in_place_of_its_lines(tmp_path):
    """A page with the table model's HTML (the tables column): md keeps the HTML where the table is on
    the page (spans kept), txt aligns its cells; the lines inside the table box are not repeated."""
    inside = [line(100, 200, 300, 230, "Stock"), line(600, 200, 700, 230, "Price"), line(100, 260, 200, 290, "Bolts"),
              line(400, 260, 460, 290, "120"), line(600, 260, 660, 290, "0.10")]
    lines = [TITLE, *inside, line(100, 600, 700, 630, "Prices as of March.")]
    row = {**page("a" * 32, "/in/spans.pdf", 0, lines=lines, route="horizontal"),
           "tables_json": json.dumps([{"html": SPAN_HTML, "box": [90, 190, 720, 300], "score": 0.93}])}
    out = write_out(tmp_path / "out", [row])
    export(out, "md", tmp_path / "md")
    md = (tmp_path / "md" / "spans.md").read_text()
    assert md.index("Inventory March") < md.index(SPAN_HTML) < md.index("Prices as of March.")
    assert md.count("Bolts") == 1 and 'colspan="2"' in md
    export(out, "txt", tmp_path / "txt")
    txt = (tmp_path / "txt" / "spans.txt").read_text()
    rows = [ln for ln in txt.split("\n") if ln.startswith(("Stock", "Bolts"))]
    assert len(rows) == 2 and rows[0].index("Price") == rows[1].index("0.10")  # a spanned header keeps its column
    assert "<table>" not in txt


def test_same_file_names_give_one_file_each(tmp_path):
    rows = [page("a" * 32, "/in/a/report.pdf", 0, text="alpha contents"),
            page("b" * 32, "/in/b/report.pdf", 0, text="beta contents"),
            page("c" * 32, "/in/c/dup.pdf", 0, text="same bytes"),  # same content, two sources
            page("c" * 32, "/in/d/dup.pdf", 0, text="same bytes"),
            page("1" * 32, "/in/e/Summary.pdf", 0, text="upper summary"),  # differ only by case
            page("2" * 32, "/in/f/summary.pdf", 0, text="lower summary"),
            page("3" * 32, "/in/solo.pdf", 0, text="solo contents")]
    out = write_out(tmp_path / "out", rows[:4])
    write_out(out, rows[4:], name="part-00001.parquet")
    paths = export(out, "txt", tmp_path / "txt")
    on_disk = sorted((tmp_path / "txt").iterdir())
    assert len(paths) == len(on_disk) == 7
    assert len({p.name.lower() for p in on_disk}) == 7
    names = {p.name for p in paths}
    assert {"report-aaaaaaaa.txt", "report-bbbbbbbb.txt", "Summary-11111111.txt", "summary-22222222.txt", "solo.txt"} <= names
    assert (tmp_path / "txt" / "report-aaaaaaaa.txt").read_text() == "alpha contents"
    assert (tmp_path / "txt" / "report-bbbbbbbb.txt").read_text() == "beta contents"
    dups = sorted(n for n in names if n.startswith("dup-cccccccc-"))
    assert len(dups) == 2 and all((tmp_path / "txt" / n).read_text() == "same bytes" for n in dups)
    assert sorted(p.name for p in export(out, "txt", tmp_path / "again")) == sorted(names)  # deterministic


def test_content_found_under_several_names_gets_a_file_per_name(tmp_path):
    rows = [{**page("c" * 32, "/in/c/dup.pdf", i, text=f"shared page {i}"), "sources": ["/in/c/dup.pdf", "/in/d/dup.pdf", "/in/e/copy.pdf"]}
            for i in (1, 0)]
    paths = export(write_out(tmp_path / "out", rows), "txt", tmp_path / "txt")
    assert len(paths) == len(list((tmp_path / "txt").iterdir())) == 3
    assert "copy.txt" in {p.name for p in paths}
    assert all(p.read_text() == "shared page 0\n\f\nshared page 1" for p in paths)  # each whole, pages in order


def test_missing_out_dir_is_an_error_that_says_what_to_do(tmp_path):
    with pytest.raises(ExportError, match=r"no such directory.*hybridocr run INPUT\.\.\. --out"):
        export(tmp_path / "nothing", "md", tmp_path / "md")
    (tmp_path / "empty" / "pages").mkdir(parents=True)
    with pytest.raises(ExportError, match=r"empty/pages has no Parquet files: run `hybridocr run"):
        export(tmp_path / "empty", "md", tmp_path / "md")
    assert not (tmp_path / "md").exists()


def test_cli_export_rc_and_count(table_out, tmp_path, capsys):
    assert main(["export", str(table_out), "--format", "md", "--to", str(tmp_path / "md")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 files to {tmp_path / 'md'}"
    assert len(list((tmp_path / "md").iterdir())) == 3
    assert main(["export", str(tmp_path / "nothing"), "--to", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hybridocr: ") and "hybridocr run INPUT... --out" in err
