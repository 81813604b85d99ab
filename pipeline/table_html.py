"""Table structure (actors.table_structure) + OCR lines -> an HTML table with row/col spans.

`table_html(tokens, cells, lines)` puts every OCR line into the cell box it lies in most (the
share of the line's area inside the cell; ties by IoU, then the nearest cell, as rapid_table's
TableMatch but no line is dropped). A line that runs across several cells of one row (the OCR
joined two columns) is split at its spaces, each word going to the cell under its estimated x
position. A cell's lines are joined in reading order (top to bottom, left to right within a text
row). The HTML keeps the model's header rows in `<thead>` (PubTabNet's form); text is escaped.

Line boxes: 4 points [[x, y] x 4] (the output schema's `lines[].box`) or [x0, y0, x1, y1], in the
pixels of the image the structure model saw.
"""

from __future__ import annotations

from html import escape
from typing import Callable

import numpy as np

_SPLIT_MIN = 0.8  # a line less than this much inside its best cell may be split across cells


def line_boxes(lines) -> tuple[np.ndarray, list[str]]:
    """Axis-aligned boxes [m, 4] and texts of OCR lines (dicts or objects with box/text)."""
    boxes, texts = [], []
    for ln in lines or []:
        box, text = (ln["box"], ln["text"]) if isinstance(ln, dict) else (ln.box, ln.text)
        if not (text or "").strip():
            continue
        pts = np.asarray(box, dtype=np.float64).reshape(-1, 2)
        boxes.append([*pts.min(0), *pts.max(0)])
        texts.append(text.strip())
    return np.asarray(boxes, np.float64).reshape(-1, 4), texts


def parse_structure(tokens: list[str]) -> list[list[dict]]:
    """Structure tokens -> rows of cells {"index", "rowspan", "colspan", "header"} (index = cell box)."""
    rows: list[list[dict]] = []
    row, header, pending, index = None, False, None, 0
    for t in tokens:
        if t == "<thead>":
            header = True
        elif t in ("</thead>", "<tbody>"):
            header = False
        elif t == "<tr>":
            row = []
            rows.append(row)
        elif t == "</tr>":
            row = None
        elif t in ("<td></td>", "<td>", "<td"):
            if row is None:
                row = []
                rows.append(row)
            cell = {"index": index, "rowspan": 1, "colspan": 1, "header": header}
            index += 1
            row.append(cell)
            pending = cell if t == "<td" else None
        elif pending is not None and "span=" in t:
            name, _, value = t.strip().partition("=")
            pending[name] = max(1, int(value.strip("\"'") or 1))
        elif t == ">":
            pending = None
    return [r for r in rows if r]


def _overlaps(boxes: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share of each line inside each cell, IoU), both [m, n]."""
    b, c = boxes[:, None, :], cells[None, :, :]
    iw = np.clip(np.minimum(b[..., 2], c[..., 2]) - np.maximum(b[..., 0], c[..., 0]), 0, None)
    ih = np.clip(np.minimum(b[..., 3], c[..., 3]) - np.maximum(b[..., 1], c[..., 1]), 0, None)
    inter = iw * ih
    area_b = np.maximum((b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]), 1e-6)
    area_c = np.maximum((c[..., 2] - c[..., 0]) * (c[..., 3] - c[..., 1]), 1e-6)
    return inter / area_b, inter / (area_b + area_c - inter)


def _gap(box: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Distance from a box to each cell (0 when they touch), centre distance as tie-breaker."""
    dx = np.clip(np.maximum(cells[:, 0] - box[2], box[0] - cells[:, 2]), 0, None)
    dy = np.clip(np.maximum(cells[:, 1] - box[3], box[1] - cells[:, 3]), 0, None)
    centre = np.hypot((cells[:, 0] + cells[:, 2] - box[0] - box[2]) / 2, (cells[:, 1] + cells[:, 3] - box[1] - box[3]) / 2)
    return np.hypot(dx, dy) + 1e-3 * centre


def _split(box: np.ndarray, text: str, cells: np.ndarray, share: np.ndarray, row_of: list[int] | None) -> list[tuple[int, list, str]] | None:
    """Words of a line that covers several cells of one row, grouped by the cell under each word."""
    words = text.split()
    best = int(np.argmax(share))
    if row_of is not None:  # the structure's own rows: only cells of the best cell's row
        hit = [k for k in np.flatnonzero(share > 0.1) if row_of[k] == row_of[best]]
    else:
        hit = [k for k in np.flatnonzero(share > 0.1) if abs(cells[k, 1] + cells[k, 3] - cells[best, 1] - cells[best, 3]) / 2 < 0.5 * (box[3] - box[1])]
    if len(words) < 2 or len(hit) < 2:
        return None
    x0, width, total = box[0], box[2] - box[0], len(text)
    parts: dict[int, list] = {}
    pos = 0
    for w in words:
        start = text.index(w, pos)
        pos = start + len(w)
        cx = x0 + width * (start + len(w) / 2) / total
        k = min(hit, key=lambda k: 0 if cells[k, 0] <= cx <= cells[k, 2] else min(abs(cx - cells[k, 0]), abs(cx - cells[k, 2])))
        parts.setdefault(int(k), []).append((w, start, pos))
    if len(parts) < 2:
        return None
    out = []
    for k, ws in parts.items():
        a, b = ws[0][1], ws[-1][2]
        sub = [x0 + width * a / total, box[1], x0 + width * b / total, box[3]]
        out.append((k, sub, " ".join(w for w, _, _ in ws)))
    return out


def match_lines(cells: np.ndarray, lines, rows: list[list[dict]] | None = None) -> list[str]:
    """The text of each cell (by cell index) from the OCR lines that fall in it.

    `rows` (parse_structure) tells which cells share a row: a line is split only across those."""
    cells = np.asarray(cells, np.float64).reshape(-1, 4)
    boxes, texts = line_boxes(lines)
    if len(cells) == 0 or len(boxes) == 0:
        return [""] * len(cells)
    row_of = None
    if rows is not None:
        row_of = [-1] * len(cells)
        for r, row in enumerate(rows):
            for c in row:
                if c["index"] < len(cells):
                    row_of[c["index"]] = r
    share, iou = _overlaps(boxes, cells)
    pieces: list[tuple[int, list, str, np.ndarray]] = []  # (cell, box, text, share of the line in each cell)
    for i, (box, text) in enumerate(zip(boxes, texts)):
        if share[i].max() <= 0:
            pieces.append((int(np.argmin(_gap(box, cells))), list(box), text, share[i]))
            continue
        best = int(np.lexsort((-iou[i], -share[i]))[0])
        parts = _split(box, text, cells, share[i], row_of) if share[i, best] < _SPLIT_MIN else None
        for k, sub, t in parts or [(best, list(box), text)]:
            pieces.append((k, sub, t, share[i] if parts is None else np.zeros(len(cells))))
    # boxes drift by a few pixels on dense tables: a cell given two lines hands the weaker one to
    # an empty cell that line also overlaps nearly as much
    count = np.bincount([p[0] for p in pieces], minlength=len(cells))
    for n, (k, sub, t, sh) in sorted(enumerate(pieces), key=lambda it: it[1][3].max()):
        if count[k] < 2:
            continue
        alt = [j for j in np.argsort(-sh) if j != k and count[j] == 0 and sh[j] >= 0.5 * sh[k] and sh[j] > 0]
        if alt:
            count[k] -= 1
            count[alt[0]] += 1
            pieces[n] = (int(alt[0]), sub, t, sh)
    found: list[list[tuple[list, str]]] = [[] for _ in range(len(cells))]
    for k, sub, t, _ in pieces:
        found[k].append((sub, t))
    return [_reading_order(items) for items in found]


def _reading_order(items: list[tuple[list, str]]) -> str:
    """Lines of one cell: text rows top to bottom (vertical overlap > half), each left to right."""
    rows: list[list] = []
    for box, text in sorted(items, key=lambda it: (it[0][1] + it[0][3]) / 2):
        if rows:
            top, bottom = min(b[1] for b, _ in rows[-1]), max(b[3] for b, _ in rows[-1])
            if min(bottom, box[3]) - max(top, box[1]) > 0.5 * min(bottom - top, box[3] - box[1]):
                rows[-1].append((box, text))
                continue
        rows.append([(box, text)])
    return " ".join(t for row in rows for _, t in sorted(row, key=lambda it: it[0][0]))


def render_html(rows: list[list[dict]], texts: list[str]) -> str:
    """Rows of cells (parse_structure) with their texts -> `<table>...</table>`."""
    def tr(row):
        out = []
        for c in row:
            span = "".join(f' {k}="{c[k]}"' for k in ("rowspan", "colspan") if c[k] > 1)
            text = texts[c["index"]] if c["index"] < len(texts) else ""
            out.append(f"<td{span}>{escape(text, quote=False)}</td>")
        return "<tr>" + "".join(out) + "</tr>"

    n_head = next((i for i, r in enumerate(rows) if not all(c["header"] for c in r)), len(rows))
    head = "".join(tr(r) for r in rows[:n_head])
    body = "".join(tr(r) for r in rows[n_head:])
    return "<table>" + (f"<thead>{head}</thead>" if head else "") + (f"<tbody>{body}</tbody>" if body else "") + "</table>"


def table_html(tokens: list[str], cells: np.ndarray, lines, fill: Callable[[np.ndarray], list[str]] | None = None) -> str:
    """The HTML table of one table image: structure tokens + cell boxes + OCR lines.

    `fill(boxes [k, 4]) -> k texts` reads the cells no OCR line fell in (the detector misses lone
    short tokens such as "1" or "–"): e.g. the recogniser on those crops, "" below a score."""
    rows = parse_structure(tokens)
    texts = match_lines(cells, lines, rows)
    cells = np.asarray(cells, np.float64).reshape(-1, 4)
    empty = [k for k, t in enumerate(texts) if not t and cells[k, 2] - cells[k, 0] > 2 and cells[k, 3] - cells[k, 1] > 4]
    if fill is not None and empty:
        for k, t in zip(empty, fill(cells[empty])):
            texts[k] = (t or "").strip()
    return render_html(rows, texts)


def table_text(html: str, sep: str = "\t") -> str:
    """The first table's text row by row (cells joined by `sep`, spans not repeated)."""
    from pipeline.tables import parse_html_tables

    tables = parse_html_tables(html)
    if not tables:
        return ""
    return "\n".join(sep.join(c.text for c in row) for row in tables[0].rows)
