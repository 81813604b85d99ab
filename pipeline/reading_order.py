"""Reading order for recognised text lines (pure geometry; no OCR engine imports).

Horizontal pages: recursive XY-cut over line boxes. A region is first split into columns at
vertical gutters (x gaps that no line crosses, or that only a small caption "island" with column
text above and below crosses); if none, it is split into bands at horizontal gaps, and
consecutive bands are merged again while their union still has a gutter, so a two-column body
whose paragraph breaks happen to line up is not read band by band, while a full-width title,
figure caption or footer (which crosses the gutter) stays a band of its own. Gaps that most rows
continue across (list label | text, table cells) are not gutters unless both sides are wide.
Leaves are grouped into rows (y overlap) and each row is read left to right.

Vertical pages (traditional Chinese/Japanese): the same algorithm on coordinates turned by 90
degrees, (x, y) -> (y, -x), so columns are read right to left and each column top to bottom;
several boxes in one column fall in the same "row" and are joined top to bottom. Before that, the
two half-columns of each double-line note (雙行小注) become one box (pipeline/vertical_text.py:
read right half, then left), and boxes thicker than _MAX_THICK column widths (a seal read with
the text across two columns) count as that thick, so they cannot join two columns into one row.
Vertical page text has presentation-form and look-alike punctuation normalised (`vertical_punct`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from statistics import median
from typing import Sequence

from .types import OcrLine
from .vertical_text import expand, pair_notes, vertical_punct

HORIZONTAL = "horizontal"
VERTICAL = "vertical"

# Tunables, in units of the median line thickness (text height for horizontal lines).
_SHRINK_Y = 0.30  # half-thickness kept around the centre line when projecting onto y
_SHRINK_X = 0.15  # trimmed off both ends when projecting onto x (detector padding)
_MIN_GUTTER = {"horizontal": 0.8, "vertical": 2.5}  # narrowest gap between columns (registers)
_MIN_COL_WIDTH = 4.0  # narrower x groups are merged into a neighbour (list numbers, labels)
_ISLAND_WIDTH = 0.35  # share of the region width below which a gutter-crossing line may be an island
_ISLAND_SHARE = 0.1  # at most this share of a region's lines may be islands in one gutter
_LOOKAHEAD = 12  # bands searched past a gutter-blocking band for the end of an island
_MAX_THICK = 1.3  # vertical: boxes thicker than this many median column widths count as this thick
_WIDE_COL = 12.0  # x groups at least this wide on both sides of a gap are columns even if rows align


@dataclass
class _Item:
    idx: int
    x0: float
    x1: float
    y0: float
    y1: float
    cy: float
    t: float  # line thickness


def _dist(a: Sequence[float], b: Sequence[float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _quad_size(line: OcrLine) -> tuple[float, float]:
    """(width, height) of the quadrilateral along its own edges (robust to skew)."""
    p = line.box
    if len(p) < 4:
        return line.x1 - line.x0, line.y1 - line.y0
    w = (_dist(p[0], p[1]) + _dist(p[3], p[2])) / 2
    h = (_dist(p[0], p[3]) + _dist(p[1], p[2])) / 2
    return w, h


def detect_direction(lines: Sequence[OcrLine]) -> str:
    """"vertical" if most multi-character lines are clearly taller than wide, else "horizontal".

    Votes are weighted by text length; square boxes (single characters) do not vote. With no
    multi-character line, single boxes vote by where their nearest neighbour lies (characters of
    a vertical column sit closer above/below than beside).
    """
    v = h = 0.0
    for ln in lines:
        n = len(ln.text.strip())
        w_, h_ = ln.x1 - ln.x0, ln.y1 - ln.y0
        if n < 2 or w_ <= 0 or h_ <= 0:
            continue
        if h_ > 1.5 * w_:
            v += n
        elif w_ > 1.5 * h_:
            h += n
    if v or h:
        return VERTICAL if v > h else HORIZONTAL
    centres = [((ln.x0 + ln.x1) / 2, (ln.y0 + ln.y1) / 2) for ln in lines[:400]]
    for i, (cx, cy) in enumerate(centres):
        near = min(((ox - cx) ** 2 + (oy - cy) ** 2, abs(ox - cx), abs(oy - cy))
                   for j, (ox, oy) in enumerate(centres) if j != i) if len(centres) > 1 else (0, 0, 0)
        v += near[2] > near[1]
        h += near[1] > near[2]
    return VERTICAL if v > h else HORIZONTAL


def _items(lines: Sequence[OcrLine], vertical: bool) -> list[_Item]:
    out = []
    for i, ln in enumerate(lines):
        pts = [(float(p[1]), -float(p[0])) if vertical else (float(p[0]), float(p[1])) for p in ln.box]
        if not pts:
            continue
        w, h = _quad_size(ln)
        if vertical:
            w, h = h, w
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        t = max(min(h, w) if len(ln.text.strip()) < 2 else h, 1e-3)
        cy = sum(ys) / len(ys)
        x0, x1 = min(xs), max(xs)
        trim = min(_SHRINK_X * t, (x1 - x0) / 4)
        out.append(_Item(i, x0 + trim, x1 - trim, cy - _SHRINK_Y * t, cy + _SHRINK_Y * t, cy, t))
    return out


def _gaps(spans: list[tuple[float, float]], min_gap: float) -> list[float]:
    """Cut positions where sorted 1-D intervals leave a gap wider than min_gap."""
    cuts, end = [], None
    for a, b in sorted(spans):
        if end is not None and a - end > min_gap:
            cuts.append((a + end) / 2)
        end = b if end is None else max(end, b)
    return cuts


def _split(items: list[_Item], cuts: list[float], key) -> list[list[_Item]]:
    groups: list[list[_Item]] = [[] for _ in range(len(cuts) + 1)]
    for it in items:
        groups[sum(1 for c in cuts if key(it) > c)].append(it)
    return [g for g in groups if g]


def _x0(g: list[_Item]) -> float:
    return min(i.x0 for i in g)


def _x1(g: list[_Item]) -> float:
    return max(i.x1 for i in g)


def _width(g: list[_Item]) -> float:
    return _x1(g) - _x0(g)


def _x_groups(items: list[_Item], unit: float, gutter: float) -> list[list[_Item]]:
    """Split at column gutters; groups narrower than _MIN_COL_WIDTH rejoin their nearest neighbour."""
    cuts = _gaps([(it.x0, it.x1) for it in items], gutter * unit)
    if not cuts:
        cuts = _island_cuts(items, unit, gutter)
    if not cuts:
        return [items]
    groups = _split(items, cuts, lambda it: (it.x0 + it.x1) / 2)
    while len(groups) > 1:
        k = min(range(len(groups)), key=lambda g: _width(groups[g]))
        if _width(groups[k]) >= _MIN_COL_WIDTH * unit:
            break
        gap = [_x0(groups[g + 1]) - _x1(groups[g]) for g in range(len(groups) - 1)]
        lo = k - 1 if k == len(groups) - 1 or (k > 0 and gap[k - 1] <= gap[k]) else k
        groups[lo:lo + 2] = [groups[lo] + groups[lo + 1]]
    # a gap that most rows simply continue across (label | text, list number | item, table
    # cells) is not a gutter unless both sides are wide like text columns
    k = 0
    while k < len(groups) - 1:
        a, b = groups[k], groups[k + 1]
        small, other = (a, b) if len(a) <= len(b) else (b, a)
        partners = _row_partners(small, other)
        if partners >= 0.5 * len(small) and min(_width(a), _width(b)) < _WIDE_COL * unit:
            groups[k:k + 2] = [a + b]
        else:
            k += 1
    return groups


def _island_cuts(items: list[_Item], unit: float, gutter: float) -> list[float]:
    """Gutters blocked only by a small island (a short caption or pull quote sitting in the
    gutter with column text above and below it on both sides); full-width lines never qualify."""
    if len(items) < 8:
        return []
    left, right = min(i.x0 for i in items), max(i.x1 for i in items)
    narrow = [i for i in items if i.x1 - i.x0 < _ISLAND_WIDTH * (right - left)]
    solid = [i for i in items if i.x1 - i.x0 >= _ISLAND_WIDTH * (right - left)]
    if not narrow or len(solid) < 4:
        return []
    good = []
    for c in _gaps([(i.x0, i.x1) for i in solid], gutter * unit):
        cross = [i for i in items if i.x0 < c < i.x1]
        if not cross or len(cross) > max(3, _ISLAND_SHARE * len(items)):
            continue
        ya, yb = min(i.y0 for i in cross), max(i.y1 for i in cross)
        ok = all(any(i.cy < ya for i in side) and any(i.cy > yb for i in side)
                 for side in ([i for i in solid if i.x1 < c], [i for i in solid if i.x0 > c]))
        if ok:
            good.append(c)
    return good


def _row_partners(small: list[_Item], other: list[_Item]) -> int:
    """How many of `small` have a line of `other` on the same row (centres within half a line)."""
    other = sorted(other, key=lambda o: o.cy)
    cys = [o.cy for o in other]
    tmax = max(o.t for o in other)
    n = 0
    for i in small:
        lo = bisect_left(cys, i.cy - 0.5 * max(i.t, tmax))
        hi = bisect_right(cys, i.cy + 0.5 * max(i.t, tmax))
        n += any(abs(i.cy - o.cy) < 0.5 * max(i.t, o.t) for o in other[lo:hi])
    return n


def _rows(items: list[_Item]) -> list[list[_Item]]:
    """Group a leaf into rows by vertical overlap of the line centres; each row left to right."""
    rows: list[list[_Item]] = []
    for it in sorted(items, key=lambda i: (i.cy, i.x0)):
        if rows:
            r = rows[-1]
            ry0, ry1 = min(i.y0 for i in r), max(i.y1 for i in r)
            if it.cy - _SHRINK_Y * it.t < ry1 and it.cy + _SHRINK_Y * it.t > ry0 and \
                    min(abs(it.cy - i.cy) for i in r) < 0.5 * max(it.t, min(i.t for i in r)):
                r.append(it)
                continue
        rows.append([it])
    return [sorted(r, key=lambda i: i.x0) for r in rows]


def _order(items: list[_Item], unit: float, gutter: float, depth: int = 0) -> list[list[list[_Item]]]:
    """Recursive XY-cut; returns blocks, each a list of rows."""
    rows = _rows(items)
    if len(rows) <= 1 or depth > 40:  # one row is read left to right whatever its gaps
        return [rows] if items else []
    cols = _x_groups(items, unit, gutter)
    if len(cols) > 1:
        return [b for g in sorted(cols, key=_x0) for b in _order(g, unit, gutter, depth + 1)]
    cuts = _gaps([(it.y0, it.y1) for it in items], 0.0)
    if not cuts:
        return [_rows(items)]
    bands = _split(items, cuts, lambda it: it.cy)
    merged: list[list[_Item]] = [bands[0]]
    multi = False  # merged[-1] has a gutter
    k = 1
    while k < len(bands):
        # keep a band with its predecessor while both share a gutter (multi-column body); an
        # island in the gutter needs column text below it, so look a few bands ahead for that
        for j in range(k, min(len(bands), k + (_LOOKAHEAD if multi else 1))):
            cand = merged[-1] + [i for b in bands[k:j + 1] for i in b]
            if len(_x_groups(cand, unit, gutter)) > 1:
                merged[-1], multi, k = cand, True, j + 1
                break
        else:
            merged.append(bands[k])
            multi, k = False, k + 1
    out: list[list[list[_Item]]] = []
    prev_leaf = False
    for m in merged:
        sub = _order(m, unit, gutter, depth + 1)
        leaf = len(sub) == 1
        if leaf and prev_leaf:  # consecutive plain bands (paragraph lines) form one block
            out[-1] = out[-1] + sub[0]
        else:
            out.extend(sub)
        prev_leaf = leaf
    return out


def _ordered_blocks(lines: Sequence[OcrLine], direction: str) -> list[list[list[OcrLine]]]:
    lines = [ln for ln in lines if len(ln.box) >= 2]
    if not lines:
        return []
    if direction == "auto":
        direction = detect_direction(lines)
    if direction not in (HORIZONTAL, VERTICAL):
        raise ValueError(f"direction must be 'horizontal', 'vertical' or 'auto', not {direction!r}")
    if direction == VERTICAL:  # double-line notes: both half-columns as one box while ordering
        lines = pair_notes(lines)
    items = _items(lines, direction == VERTICAL)
    unit = median(it.t for it in items)
    if direction == VERTICAL:  # a box across two columns (a seal read with the text) must not join them
        for it in items:
            if it.t > _MAX_THICK * unit:
                it.t = _MAX_THICK * unit
                it.y0, it.y1 = it.cy - _SHRINK_Y * it.t, it.cy + _SHRINK_Y * it.t
    blocks = _order(items, unit, _MIN_GUTTER[direction])
    return [[expand([lines[i.idx] for i in row]) for row in block] for block in blocks]


def order_lines(lines: Sequence[OcrLine], direction: str = "auto") -> list[OcrLine]:
    """Lines in reading order ("horizontal", "vertical", or "auto" = `detect_direction`)."""
    return read_page(lines, direction)[0]


def _join(a: str, b: str) -> str:
    if not a or not b:
        return a + b
    cjk = lambda c: ord(c) >= 0x2E80  # noqa: E731 - CJK, kana, full-width forms
    return a + b if cjk(a[-1]) or cjk(b[0]) else a + " " + b


def page_text(lines: Sequence[OcrLine], direction: str = "auto") -> str:
    """Ordered text: one output line per row (boxes of one row/column joined), blank line between blocks."""
    return read_page(lines, direction)[1]


def read_page(lines: Sequence[OcrLine], direction: str = "auto") -> tuple[list[OcrLine], str]:
    """Both `order_lines` and `page_text` from one ordering pass."""
    lines = [ln for ln in lines if len(ln.box) >= 2]
    if direction == "auto" and lines:
        direction = detect_direction(lines)
    blocks = _ordered_blocks(lines, direction)
    ordered = [ln for block in blocks for row in block for ln in row]
    out = []
    for block in blocks:
        rows = []
        for row in block:
            s = ""
            for ln in row:
                s = _join(s, ln.text.strip())
            rows.append(vertical_punct(s) if direction == VERTICAL else s)
        out.append("\n".join(rows))
    return ordered, "\n\n".join(out)
