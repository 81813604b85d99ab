"""`hybridocr export`: one Markdown or text file per document, pages in order.

Tables the table model read (the `tables` column) stand where they are on the page: `md` keeps
their HTML (row/col spans; GFM renders it), `txt` aligns their cells. Without that column, table
pages (route `table`, or other horizontal pages whose line boxes form a clear grid) keep
their columns: `md` gets a GFM pipe table (first row as header, `|` escaped), `txt` gets columns
aligned with spaces. Rows and columns come from `pipeline.tables.lines_to_table` (rows by the
vertical overlap of boxes, columns by the x extents of multi-line rows); cell text is the OCR
text unchanged. Other pages, and pages whose text already holds a table (VLM), keep their text.

A document found under several names (the `sources` column: byte-identical files) gets a file per
name. File names: the source's file stem; `stem-<doc_id[:8]>` when two documents share a stem (case
ignored); `stem-<doc_id[:8]>-<hash of the source>` when the same content sits under two
same-named sources. The final names are checked unique case-insensitively.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path, PurePosixPath

import pyarrow.fs as pafs

from pipeline.output import OutputDir
from pipeline.tables import lines_to_table, parse_html_tables, tables_in_text

FORMATS = ("md", "txt")
_COLUMNS = ["doc_id", "source", "sources", "page_index", "text", "error", "route", "lines", "tables"]
_BAD_CHARS = re.compile(r'[<>:"/\\|?*\x00-\x1f]')  # not allowed in Windows file names
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}


class ExportError(ValueError):
    """Nothing to export (no OUT_DIR, no Parquet pages) or a bad format; the message says what to do."""


# ----------------------------------------------------------------------------- tables


def table_grid(lines: list[dict] | None, route: str | None = None) -> tuple[list[str], list[list[str]], list[str]] | None:
    """(text lines above, grid rows x columns of cell texts, text lines below), or None for no table.

    Route `table`: at least 2 columns and 2 rows with 2+ filled cells. Other routes (never
    `vertical`) need a clear grid: 3+ columns, 3+ multi-cell rows holding 80% of the lines, short
    cells (median <= 20 characters), so two-column prose stays prose.
    """
    items = [ln for ln in lines or [] if (ln.get("text") or "").strip() and ln.get("box")]
    if len(items) < 4 or route == "vertical":
        return None
    # cluster on tokens, then map back: lines_to_table normalises text (NFKC) and export must not
    texts = {f"L{i}": ln["text"].strip().replace("\n", " ") for i, ln in enumerate(items)}
    table = lines_to_table([{"box": ln["box"], "text": f"L{i}"} for i, ln in enumerate(items)])
    grid = []
    for row in table.rows:
        cells = []
        for cell in row:
            cells.append(" ".join(texts[t] for t in cell.text.split()))
            cells.extend("" for _ in range(cell.colspan - 1))  # a spanning line: text in its first column
        grid.append(cells)
    filled = [sum(1 for c in r if c) for r in grid]
    multi = [k for k, n in enumerate(filled) if n >= 2]
    n_cols = len(grid[0]) if grid else 0
    if route == "table":
        ok = n_cols >= 2 and len(multi) >= 2
    else:
        sizes = sorted(len(c) for k in multi for c in grid[k] if c)
        ok = (n_cols >= 3 and len(multi) >= 3 and len(sizes) >= 0.8 * len(items)
              and sizes[len(sizes) // 2] <= 20)
    if not ok:
        return None
    above = [" ".join(c for c in r if c) for r in grid[: multi[0]]]
    below = [" ".join(c for c in r if c) for r in grid[multi[-1] + 1:]]
    return above, grid[multi[0]: multi[-1] + 1], below


def markdown_table(grid: list[list[str]]) -> str:
    """GFM pipe table; the first row is the header."""
    def row(cells):
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(grid[0]), row(["---"] * len(grid[0])), *(row(r) for r in grid[1:])])


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def aligned_table(grid: list[list[str]]) -> str:
    """Columns padded with spaces to a common display width, two spaces apart."""
    widths = [max(_width(r[k]) for r in grid) for k in range(len(grid[0]))]
    return "\n".join("  ".join(c + " " * (w - _width(c)) for c, w in zip(r, widths)).rstrip() for r in grid)


def _inside(line: dict, box) -> bool:
    xs, ys = [p[0] for p in line["box"]], [p[1] for p in line["box"]]
    cx, cy = sum(xs) / len(xs), sum(ys) / len(ys)
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def with_tables(lines: list[dict], tables: list[dict], fmt: str) -> str:
    """The page's lines in reading order, each table (the `tables` column) in place of the lines it
    holds, where its first line was: md keeps the HTML (spans and all; GFM shows it), txt aligns
    its cells in columns."""
    blocks, text, done = [], [], set()

    def table_block(t: dict) -> str:
        if fmt == "md":
            return t["html"]
        parsed = parse_html_tables(t["html"])
        grid = parsed[0].grid() if parsed else []  # spans expanded: a spanning cell's text in its top-left position
        rows = [[c.text if c is not None and (c.row, c.col) == (r, k) else "" for k, c in enumerate(cells)]
                for r, cells in enumerate(grid)]
        return aligned_table(rows) if rows and rows[0] else ""

    for line in lines or []:
        k = next((k for k, t in enumerate(tables) if line.get("box") and _inside(line, t["box"])), None)
        if k is None:
            text.append(line.get("text") or "")
            continue
        if k not in done:
            done.add(k)
            blocks += ["\n".join(text), table_block(tables[k])]
            text = []
    blocks += ["\n".join(text)] + [table_block(t) for k, t in enumerate(tables) if k not in done]
    return "\n\n".join(b for b in blocks if b.strip())


def page_body(row: dict, fmt: str) -> str:
    """One page's text in `fmt`: a placeholder for an error row, its tables in place (the `tables`
    column), a table clustered from the line boxes for a table page without one, else its text."""
    if row.get("error"):
        return f"[page {row['page_index'] + 1} not read: {row['error']}]"
    if row.get("tables") and row.get("lines"):  # (a VLM's tables are in its text already)
        return with_tables(row.get("lines") or [], row["tables"], fmt)
    text = row.get("text") or ""
    if tables_in_text(text):  # the engine already wrote a table (VLM HTML/Markdown)
        return text
    found = table_grid(row.get("lines"), row.get("route"))
    if found is None:
        return text
    above, grid, below = found
    if fmt == "md":
        return "\n\n".join(p for p in ["\n".join(above), markdown_table(grid), "\n".join(below)] if p)
    return "\n".join([*above, aligned_table(grid), *below])


# ----------------------------------------------------------------------------- file names


def _stem(source: str) -> str:
    stem = _BAD_CHARS.sub("_", PurePosixPath(source.rstrip("/")).stem).strip(" .")[:150] or "document"
    return stem + "_" if stem.split(".")[0].upper() in _RESERVED else stem


def _key(name: str) -> str:  # how a case-insensitive file system compares names
    return unicodedata.normalize("NFC", name).casefold()


def file_names(docs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(source, doc_id) -> file name without suffix: deterministic, readable, unique ignoring case."""
    names = {d: _stem(d[0]) for d in docs}
    stems = Counter(_key(n) for n in names.values())
    names = {d: n if stems[_key(n)] == 1 else f"{n}-{d[1][:8]}" for d, n in names.items()}
    clash = Counter(_key(n) for n in names.values())  # same content under two same-named sources
    names = {d: n if clash[_key(n)] == 1 else f"{n}-{hashlib.sha256(d[0].encode()).hexdigest()[:6]}"
             for d, n in names.items()}
    taken: set[str] = set()
    for d in sorted(names):  # whatever is left (a stem that looks like stem-<id>): number it
        base, k = names[d], 1
        while _key(names[d]) in taken:
            k += 1
            names[d] = f"{base}-{k}"
        taken.add(_key(names[d]))
    return names


# ----------------------------------------------------------------------------- export


def _read(out_dir: str | Path):
    out = OutputDir(out_dir)
    hint = f"run `hybridocr run INPUT... --out {out_dir}` first, or pass the --out directory of an earlier run"
    if out.fs.get_file_info(out.path).type == pafs.FileType.NotFound:
        raise ExportError(f"{out_dir}: no such directory; export expects OUT_DIR/pages/*.parquet: {hint}")
    if not out.page_files():
        raise ExportError(f"{out_dir}/pages has no Parquet files: {hint}")
    table = out.read_pages(_COLUMNS)
    if table.num_rows == 0:
        raise ExportError(f"{out_dir}/pages has no readable page rows (cut-short files are skipped): {hint}")
    return table


def export(out_dir: str | Path, fmt: str, to: str | Path) -> list[Path]:
    """Write one `<name>.<fmt>` per document under `to`; returns the paths written (all distinct)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use --format md or --format txt")
    docs: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)  # (name, doc_id) -> page_index -> row
    for row in _read(out_dir).to_pylist():
        for name in {row["source"], *(row["sources"] or ())}:  # byte-identical files: a file per name
            pages = docs[(name, row["doc_id"])]
            old = pages.get(row["page_index"])
            if old is None or (old["error"] and not row["error"]):  # one row per page, an ok row first
                pages[row["page_index"]] = row
    names = file_names(list(docs))
    if len({_key(n) for n in names.values()}) != len(docs):  # never let one document overwrite another
        raise ExportError("two documents were given the same file name; please report this as a bug")
    target = Path(to)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for key, by_index in sorted(docs.items()):
        pages = [by_index[i] for i in sorted(by_index)]
        if fmt == "md":
            parts = [f"<!-- page {p['page_index'] + 1} ({p['route'] or 'error'}) -->\n\n{page_body(p, fmt)}\n" for p in pages]
        else:
            parts = [page_body(p, fmt) for p in pages]
        path = target / f"{names[key]}.{fmt}"
        path.write_text(("\n" if fmt == "md" else "\n\f\n").join(parts), encoding="utf-8")
        written.append(path)
    return written
