"""Blocks of layout regions for region_order: floats with their captions, text that floats interrupt,
and the rules for text found inside figures.

- `_Reg`: a layout region with the input lines it owns and their extent; `_inter`/`_area` on boxes.
- Captions: before the region XY-cut each float (figure, table) takes the captions right above or
  below it (caption regions, short text regions starting "Table 4", "Fig. 2.", "表1"; captions
  chain) and the text regions inside its box, and moves as one block with them (`_attach_captions`;
  `_flatten` opens the blocks again after the cut, their members row by row).
- Interrupted paragraphs: after the cut, floats that interrupt a paragraph are read after it: a text
  block ending mid-sentence, floats, then a block going on in lower case (or after a comma): that
  block's first paragraph moves up before the floats; so does a lower-case first block of a page
  (the sentence from the previous page) (`_flow_text`).
- Figure text: a text/title region inside a figure's box that is not caption-like is the figure's
  text (`_absorb_figure_text`). A figure whose text is short cells on shared rows is read as a table
  (`_grid_like`); "figure" in `text_without` leaves a figure's text out except a figure whose text is
  a grid of many aligned rows and figures that together hold most of the page's text
  (`_figure_rule`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from statistics import median
from typing import Sequence

from .types import OcrLine

_GRID_ROWS = 8  # a figure with this many aligned rows of 3+ cells is a table (see _grid_like)


@dataclass
class _Reg:
    label: str
    box: tuple[float, float, float, float]
    lines: list[int] = field(default_factory=list)
    x0: float = 0.0
    y0: float = 0.0
    x1: float = 0.0
    y1: float = 0.0
    chars: int = 0  # text length of its lines
    members: list["_Reg"] = field(default_factory=list)  # a float with its captions: the regions it stands for


def _inter(a, b) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _area(b) -> float:
    return max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)


# ------------------------------------------------------------------ floats: captions, text flowing around them

_FLOATS = ("figure", "table")
_CAPTIONS = ("figure_caption", "table_caption")
_CAPTION_GAP = 1.5  # a caption sits at most this many line heights above or below its float (or its other caption)
_CAPTION_START = re.compile(r"^\s*(?:Table|TABLE|Tab\.|Fig\.|FIG\.|Figure|FIGURE|Scheme|Chart|Plate|Exhibit|表|图|圖)\s*"
                            r"(?:[0-9]+(?:[.-][0-9]+)*|[IVX]+\b|[一二三四五六七八九十]+)(?:$|[.:：．、|]|\s+(?![a-z]))")
_INSIDE = 0.8  # a text region with this share of its box inside a figure's box is text in the figure
_CAPTION_CHARS = 400  # a text region read as a caption ("Table 4", "Fig. 2. ...", not "Fig. 2 shows") is at most this long
_ENDS = tuple(".!?。！？:：;；…)）]】」』\"”'’")  # a text block ending in one of these ends its paragraph


def _caption_like(r: _Reg, text: str) -> bool:
    return r.label in _CAPTIONS or r.label in ("text", "title") and r.chars <= _CAPTION_CHARS and \
        bool(_CAPTION_START.match(text))


def _attach_captions(regs: list[_Reg], texts: dict[int, str], unit: float) -> list[_Reg]:
    """Each float (figure, table) with the captions right above or below it (caption regions, or short text
    regions that start like one: "Table 4", "Fig. 2."), as one region, so that the XY-cut moves them
    together: a left-aligned "Table 4 / Relative densities..." over a full-width table is not read as
    the end of the left column. Captions chain ("Table 4" over its caption over the table)."""
    groups = {id(r): _Reg(r.label, r.box, list(r.lines), r.x0, r.y0, r.x1, r.y1, r.chars, [r])
              for r in regs if r.label in _FLOATS}
    if not groups:
        return regs
    inner: set[int] = set()  # text regions inside a figure's box (tick labels, a scale bar): the figure's text
    for r in regs:
        if r.label in ("text", "title", "figure_caption") and not _caption_like(r, texts[id(r)]):
            a = max(_area((r.x0, r.y0, r.x1, r.y1)), 1e-6)
            for g in groups.values():
                if g.label == "figure" and _inter((r.x0, r.y0, r.x1, r.y1), g.box) >= _INSIDE * a:
                    r.label = "figure"
                    g.members.append(r)
                    g.lines += r.lines
                    g.x0, g.y0, g.x1, g.y1 = min(g.x0, r.x0), min(g.y0, r.y0), max(g.x1, r.x1), max(g.y1, r.y1)
                    g.chars += r.chars
                    inner.add(id(r))
                    break
    free = [r for r in regs if r.label not in _FLOATS and id(r) not in inner and _caption_like(r, texts[id(r)])]
    # a float reaches as far as its detector box (a figure's pixels), not only its lines
    reach = {k: [min(g.x0, g.box[0]), min(g.y0, g.box[1]), max(g.x1, g.box[2]), max(g.y1, g.box[3])]
             for k, g in groups.items()}
    taken: set[int] = set(inner)
    changed = True
    while changed:
        changed = False
        for c in free:
            if id(c) in taken:
                continue
            best = None
            for k, g in groups.items():
                x0, y0, x1, y1 = reach[k]
                gap = max(c.y0 - y1, y0 - c.y1)
                if not -1.5 * (c.y1 - c.y0) <= gap <= _CAPTION_GAP * unit:  # (beside an attached caption: overlaps it)
                    continue
                if min(c.x1, x1) - max(c.x0, x0) <= 0 and abs(c.x0 - x0) > 2 * unit:
                    continue
                if best is None or gap < best[0]:
                    best = (gap, k)
            if best:
                g, rb = groups[best[1]], reach[best[1]]
                rb[:] = [min(rb[0], c.x0), min(rb[1], c.y0), max(rb[2], c.x1), max(rb[3], c.y1)]
                g.members.append(c)
                g.lines += c.lines
                g.x0, g.y0, g.x1, g.y1 = min(g.x0, c.x0), min(g.y0, c.y0), max(g.x1, c.x1), max(g.y1, c.y1)
                g.chars += c.chars
                taken.add(id(c))
                changed = True
    out = []
    for r in regs:
        if id(r) in groups:
            out.append(groups[id(r)] if len(groups[id(r)].members) > 1 else r)
        elif id(r) not in taken:
            out.append(r)
    return out


def _rows_first(regs: list[_Reg]) -> list[_Reg]:
    """Regions top to bottom, those on one row (y ranges overlapping by half) left to right."""
    rows: list[list[_Reg]] = []
    for r in sorted(regs, key=lambda r: (r.y0 + r.y1) / 2):
        if rows and any(min(r.y1, o.y1) - max(r.y0, o.y0) > 0.5 * min(r.y1 - r.y0, o.y1 - o.y0) for o in rows[-1]):
            rows[-1].append(r)
        else:
            rows.append([r])
    return [r for row in rows for r in sorted(row, key=lambda r: r.x0)]


def _flatten(regs: list[_Reg]) -> list[_Reg]:
    return [m for r in regs for m in (_rows_first(r.members) if r.members else [r])]


def _is_float(r: _Reg) -> bool:
    return r.label in _FLOATS or r.label in _CAPTIONS or bool(r.members)


def _region_of(r: _Reg, idx: list[int], lns: Sequence[OcrLine]) -> _Reg:
    return _Reg(r.label, r.box, idx, min(lns[i].x0 for i in idx), min(lns[i].y0 for i in idx),
                max(lns[i].x1 for i in idx), max(lns[i].y1 for i in idx), sum(len(lns[i].text.strip()) for i in idx))


def _first_paragraph(r: _Reg, lns: Sequence[OcrLine], unit: float) -> tuple[_Reg, _Reg | None]:
    """A text region cut after its first paragraph (the next row indented, or a short row ending a
    sentence before it): (first paragraph, the rest or None)."""
    rows = _table_rows([lns[i] for i in r.lines])
    pos = {id(lns[i]): i for i in r.lines}
    for k in range(len(rows) - 1):
        x1 = max(l.x1 for l in rows[k])
        end = " ".join(l.text for l in rows[k]).rstrip()
        if min(l.x0 for l in rows[k + 1]) > r.x0 + 0.8 * unit or x1 < r.x1 - 3 * unit and end.endswith(_ENDS):
            head = [pos[id(l)] for row in rows[:k + 1] for l in row]
            tail = [pos[id(l)] for row in rows[k + 1:] for l in row]
            return _region_of(r, head, lns), _region_of(r, tail, lns)
    return r, None


def _flow_text(regs: list[_Reg], lns: Sequence[OcrLine], unit: float) -> list[_Reg]:
    """Floats (figures, tables, their captions) that interrupt a paragraph are read after it, as a reader
    (and MinerU-style references) does: when a column's text ends mid-sentence, floats follow in the
    XY-cut order and the text then goes on (in the next column), the continuation's first paragraph
    moves up to just after the paragraph's first part, the floats after it. A continuation starts in
    lower case (Latin script), or follows a block that ended on a comma (Chinese). Text that starts a
    page's body in lower case after floats goes on from the previous page: its first paragraph is read
    before them."""
    def text(r: _Reg) -> str:
        return " ".join(lns[i].text for i in sorted(r.lines, key=lambda i: (lns[i].y0, lns[i].x0))).strip()

    def opens(t: str) -> bool:
        t = t.lstrip(" \t\"“‘(（")
        return bool(t) and t[0].islower()

    out = list(regs)
    i = -1  # -1: the page's start (text before it came from the previous page)
    while i < len(out) - 1:
        j = i + 1
        while j < len(out) and _is_float(out[j]):
            j += 1
        if j > i + 1 and j < len(out) and out[j].label == "text" and (i < 0 or out[i].label in ("text", "reference")):
            t, prev = text(out[j]), text(out[i]) if i >= 0 else ""
            if opens(t) if i < 0 else prev and not prev.endswith(_ENDS) and (opens(t) or prev.endswith(("，", "、", ","))):
                head, tail = _first_paragraph(out[j], lns, unit)
                out[j:j + 1] = [tail] if tail else []
                out.insert(i + 1, head)
        i += 1
    return out


def _table_rows(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Lines as rows (y ranges overlapping by half a line), each left to right (also region_order's tables)."""
    rows: list[list[OcrLine]] = []
    for ln in sorted(lines, key=lambda l: ((l.y0 + l.y1) / 2, l.x0)):
        if rows:
            r = rows[-1]
            ry0, ry1 = median(l.y0 for l in r), median(l.y1 for l in r)
            if min(ln.y1, ry1) - max(ln.y0, ry0) > 0.5 * min(ln.y1 - ln.y0, ry1 - ry0):
                r.append(ln)
                continue
        rows.append([ln])
    return [sorted(r, key=lambda l: l.x0) for r in rows]


# ------------------------------------------------------------------ text inside figures


def _absorb_figure_text(regs: list[_Reg], lns: Sequence[OcrLine]) -> None:
    """A text region inside a figure's box (tick labels, a scale bar) is the figure's text: its lines
    move to the figure (caption-like regions stay)."""
    for r in regs:
        if r.label in ("text", "title") and r.lines:
            fig = next((f for f in regs if f.label == "figure" and _inter(r.box, f.box) >= _INSIDE * _area(r.box) > 0), None)
            if fig is not None and not _caption_like(r, " ".join(lns[i].text for i in r.lines)):
                fig.lines += r.lines
                r.lines = []


def _grid_like(lines: list[OcrLine], strict: bool = False) -> bool:
    """A figure whose text is short cells on shared rows (a table the model called a figure). strict:
    also at least _GRID_ROWS rows of three or more cells that line up with the cells of another such
    row - a chart's text (tick labels along its axes, a legend, panel letters) makes a few such rows
    per panel, a table one per row."""
    if len(lines) < 4:
        return False
    width = max(l.x1 for l in lines) - min(l.x0 for l in lines)
    rows = _table_rows(lines)
    short = sum(l.x1 - l.x0 < 0.3 * width for l in lines)
    if short < 0.6 * len(lines) or sum(len(r) >= 2 for r in rows) < 2:
        return False
    if not strict:
        return True
    wide = [r for r in rows if len(r) >= 3]

    def shared(a: list[OcrLine], b: list[OcrLine]) -> int:
        return sum(any(min(x.x1, y.x1) - max(x.x0, y.x0) > 0 for y in b) for x in a)

    return sum(any(shared(a, b) >= 3 for b in wide if b is not a) for a in wide) >= _GRID_ROWS


def _figure_rule(r: _Reg, lns: Sequence[OcrLine], vertical: bool, whole: bool, drop: bool) -> bool:
    """Whether a figure region's text is left out of the page text (`drop`: "figure" is in text_without).
    A table the model called a figure is read row by row (its label becomes "table"); it stays in the
    text even when figures do not unless its grid could be a chart's labels; figures that together
    hold most of the page's text (`whole`: a table crop, a slide) are the page's content and stay too."""
    inner = [lns[i] for i in r.lines]
    grid = not vertical and _grid_like(inner)
    drop = drop and not whole and not (grid and _grid_like(inner, strict=True))
    if grid and not drop:
        r.label = "table"
    return drop
