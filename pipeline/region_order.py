"""Region-aware reading order: OCR lines + layout regions (actors/layout.py) -> ordered lines.

1. Near-duplicate regions (IoU > 0.6) are merged (a table wins over a figure). Each line goes to
   the region holding most of its box (ties: the smaller region, so a title inside a text box
   stays a title); lines no region holds half of become "text" regions of their own: the blocks
   the line-level XY-cut (reading_order) makes of them, cut where rows are > 1.5 lines apart.
   Text regions inside a figure's box are the figure's text (region_blocks).
2. Regions are ordered: "header" regions in the top 10% of the page first, "footer" regions in
   the bottom 10% last (elsewhere those labels count as text); the rest by a recursive XY-cut over
   the regions' line boxes: split at column gutters first (left to right; on vertical pages the
   frame is turned so columns read right to left), else into bands at horizontal gaps, merged
   again while their union still has a gutter, so full-width regions break the columns while
   staggered paragraphs stay in their column. Figures, captions, equations narrower than half
   the block, and stray 1-2 character regions may sit in a gutter without closing it. A gap that
   most regions continue across on the same row (form key | value) is not a gutter.
   Before the XY-cut floats take their captions and move as one block with them; after it, floats
   that interrupt a paragraph are read after it (pipeline/region_blocks.py).
3. Lines within a region: tables (and figures whose text is short cells on shared rows) row-major,
   rows by y overlap, a wrapped cell kept whole, tables standing side by side in one region
   (a header row repeated across a gap) one after the other; everything else by
   `reading_order.read_page` (XY-cut inside the region; vertical pages right to left).
4. `text_without` labels stay in the lines but not in the text. "figure" leaves out text inside
   figures (tick labels, legends), except a figure whose text is a grid of many aligned rows (a
   table the detector called a figure) and figures that together hold most of the page's text
   (region_blocks._figure_rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median
from typing import Any, Sequence

from .reading_order import HORIZONTAL, VERTICAL, _join, _ordered_blocks, detect_direction, read_page
from .region_blocks import (
    _Reg, _absorb_figure_text, _area, _attach_captions, _figure_rule, _flatten, _flow_text, _inter, _table_rows,
)
from .types import OcrLine

_MIN_SHARE = 0.5  # share of a line's box a region must hold to own it
_TIE = 0.1  # shares this close count as a tie (the smaller region wins)
_EDGE = 0.10  # header/footer labels count only in this top/bottom share of the page
_SHRINK = 0.25  # region boxes shrink by this many line heights on each side when looking for gaps
_WIDE = 12.0
_FREE_GAP = 1.5  # rows of free lines further apart than this many line heights are separate regions
_SAME = 0.6  # IoU above which two regions are one
_FIGURE_SHARE = 0.5  # figures holding this share of the page's characters are its content, never left out
_ISLANDS = ("figure", "figure_caption", "equation")  # may sit in a column gutter


def _as_line(ln: Any) -> OcrLine:
    return ln if isinstance(ln, OcrLine) else OcrLine(ln["box"], ln["text"], ln.get("score", 1.0))


def _as_region(r: Any) -> tuple[str, tuple[float, float, float, float]]:
    if isinstance(r, dict):
        return r["label"], tuple(map(float, r["box"]))
    if hasattr(r, "label") and hasattr(r, "box"):
        return r.label, tuple(map(float, r.box))
    return r[0], tuple(map(float, r[1]))


def _bbox(ln: OcrLine) -> tuple[float, float, float, float]:
    return ln.x0, ln.y0, ln.x1, ln.y1


def _dedupe(regs: list[_Reg]) -> list[_Reg]:
    """Of two regions that are nearly the same box, keep one: a table over anything, else the earlier
    (the detector lists them best first)."""
    out: list[_Reg] = []
    for r in regs:
        for k, o in enumerate(out):
            i = _inter(r.box, o.box)
            if i > _SAME * (_area(r.box) + _area(o.box) - i):
                if r.label == "table" and o.label != "table":
                    out[k] = r
                break
        else:
            out.append(r)
    return out


def assign_lines(lines: Sequence[OcrLine], regions: Sequence[Any], min_share: float = _MIN_SHARE) -> list[int | None]:
    """Index of the region that holds most of each line's box (None: no region holds min_share)."""
    boxes = [_as_region(r)[1] for r in regions]
    out: list[int | None] = []
    for ln in lines:
        b = _bbox(ln)
        a = max(_area(b), 1e-6)
        shares = [(_inter(b, rb) / a, k) for k, rb in enumerate(boxes)]
        best = max((s for s, _ in shares), default=0.0)
        if best < min_share:
            out.append(None)
            continue
        out.append(min((k for s, k in shares if s >= best - _TIE), key=lambda k: _area(boxes[k])))
    return out


def _free_regions(lines: Sequence[OcrLine], idx: list[int], direction: str, unit: float) -> list[_Reg]:
    """Lines outside every region, as the blocks that the line-level XY-cut makes of them, cut again
    where rows are more than _FREE_GAP line heights apart (a sidebar is several small regions)."""
    if not idx:
        return []
    pos = {id(lines[i]): i for i in idx}
    out = []
    for block in _ordered_blocks([lines[i] for i in idx], direction):
        runs: list[list[int]] = []
        prev = None
        for row in block:
            members = [pos[id(ln)] for ln in row]
            y0, y1 = min(ln.y0 for ln in row), max(ln.y1 for ln in row)
            if prev is None or (direction == HORIZONTAL and y0 - prev > _FREE_GAP * unit):
                runs.append([])
            runs[-1] += members
            prev = y1 if prev is None else max(prev, y1)
        for members in runs:
            b = (min(lines[i].x0 for i in members), min(lines[i].y0 for i in members),
                 max(lines[i].x1 for i in members), max(lines[i].y1 for i in members))
            out.append(_Reg("text", b, members))
    return out


# ------------------------------------------------------------------ region XY-cut (horizontal frame)


def _gap_cuts(spans: list[tuple[float, float]]) -> list[float]:
    cuts, end = [], None
    for a, b in sorted(spans):
        if end is not None and a > end:
            cuts.append((a + end) / 2)
        end = b if end is None else max(end, b)
    return cuts


def _split(regs: list[_Reg], cuts: list[float], centre) -> list[list[_Reg]]:
    groups: list[list[_Reg]] = [[] for _ in range(len(cuts) + 1)]
    for r in regs:
        groups[sum(1 for c in cuts if centre(r) > c)].append(r)
    return [g for g in groups if g]


def _aligned(a: list[_Reg], b: list[_Reg]) -> bool:
    """Most regions of the smaller side have a partner on the same row on the other side."""
    small, other = (a, b) if len(a) <= len(b) else (b, a)
    n = sum(any(min(r.y1, o.y1) - max(r.y0, o.y0) > 0.5 * min(r.y1 - r.y0, o.y1 - o.y0) for o in other) for r in small)
    return n >= 0.5 * len(small) and len(small) >= 2


def _island_cuts(regs: list[_Reg], unit: float) -> list[float]:
    """Gutters blocked only by figures, captions or stray marks sitting in them, with column text beside
    them (or above and below them) on both sides."""
    left, right = min(r.x0 for r in regs), max(r.x1 for r in regs)
    isl = [r for r in regs if r.label in _ISLANDS and r.x1 - r.x0 < 0.5 * (right - left) or r.chars <= 2]
    solid = [r for r in regs if r not in isl]
    if not isl or len(solid) < 2:
        return []
    s = _SHRINK * unit
    good = []
    for c in _gap_cuts([(r.x0 + s, r.x1 - s) if r.x1 - r.x0 > 4 * s else (r.x0, r.x1) for r in solid]):
        cross = [r for r in isl if r.x0 < c < r.x1]
        ya, yb = min((r.y0 for r in cross), default=0), max((r.y1 for r in cross), default=0)
        if all(any(min(r.y1, yb) > max(r.y0, ya) for r in side) or
               any(r.y1 <= ya for r in side) and any(r.y0 >= yb for r in side)
               for side in ([r for r in solid if r.x1 < c], [r for r in solid if r.x0 > c])):
            good.append(c)
    return good


def _columns(regs: list[_Reg], unit: float) -> list[list[_Reg]]:
    s = _SHRINK * unit
    cuts = _gap_cuts([(r.x0 + s, r.x1 - s) if r.x1 - r.x0 > 4 * s else (r.x0, r.x1) for r in regs])
    if not cuts:
        cuts = _island_cuts(regs, unit)
    if not cuts:
        return [regs]
    groups = _split(regs, cuts, lambda r: (r.x0 + r.x1) / 2)
    k = 0
    while k < len(groups) - 1:  # label | value columns are one table-like block, not two columns
        a, b = groups[k], groups[k + 1]
        wa, wb = max(r.x1 for r in a) - min(r.x0 for r in a), max(r.x1 for r in b) - min(r.x0 for r in b)
        if _aligned(a, b) and min(wa, wb) < _WIDE * unit:
            groups[k:k + 2] = [a + b]
        else:
            k += 1
    return groups


def _xy(regs: list[_Reg], unit: float, depth: int = 0) -> list[_Reg]:
    if len(regs) <= 1 or depth > 30:
        return regs
    cols = _columns(regs, unit)
    if len(cols) > 1:
        return [r for c in sorted(cols, key=lambda g: min(r.x0 for r in g)) for r in _xy(c, unit, depth + 1)]
    cuts = _gap_cuts([(r.y0, r.y1) for r in regs])
    if not cuts:  # regions overlap in y all the way down: top to bottom, then left to right
        return sorted(regs, key=lambda r: (r.y0, r.x0))
    bands = _split(regs, cuts, lambda r: (r.y0 + r.y1) / 2)
    merged = [bands[0]]
    width = max(r.x1 for r in regs) - min(r.x0 for r in regs)
    for j, b in enumerate(bands[1:], 1):
        nxt = bands[j + 1] if j + 1 < len(bands) else None
        # a heading band right above a full-width block opens that block, not the columns above it
        heading = all(r.label == "title" for r in b) and nxt is not None and len(_columns(nxt, unit)) == 1 and \
            max(r.x1 for r in nxt) - min(r.x0 for r in nxt) > 0.7 * width
        if not heading and len(_columns(merged[-1] + b, unit)) > 1:
            merged[-1] = merged[-1] + b
        else:
            merged.append(b)
    if len(merged) == 1:  # one band whose columns merged back (a form): rows top to bottom
        return sorted(regs, key=lambda r: ((r.y0 + r.y1) / 2, r.x0))
    return [r for m in merged for r in _xy(m, unit, depth + 1)]


def _turned(r: _Reg) -> _Reg:
    """The region in the vertical frame (x, y) -> (y, -x): right-to-left columns become rows."""
    return _Reg(r.label, r.box, r.lines, r.y0, -r.x1, r.y1, -r.x0, r.chars)


# ------------------------------------------------------------------ lines inside a region


def _cell_rows(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Table rows, with wrapped cells kept whole: a row with fewer lines than usual whose every line
    continues (left-aligned, just below) a full-width line of the row above joins that row, and the
    joined row reads cell by cell (cells left to right, each top to bottom)."""
    rows = _table_rows(lines)
    if len(rows) < 2:
        return rows
    typical = median(len(r) for r in rows)

    def full(p: OcrLine) -> bool:
        col = [l.x1 - l.x0 for l in lines if min(l.x1, p.x1) - max(l.x0, p.x0) > 0]
        return p.x1 - p.x0 >= 0.8 * max(col)

    def continues(l: OcrLine, p: OcrLine) -> bool:
        h = max(p.y1 - p.y0, 1e-6)
        return 0 <= l.y0 - p.y1 < 0.6 * h and abs(l.x0 - p.x0) < 0.5 * h and full(p)

    out = [rows[0]]
    for r in rows[1:]:
        if len(r) < typical and all(any(continues(l, p) for p in out[-1]) for l in r):
            out[-1] = out[-1] + r
        else:
            out.append(r)
    result = []
    for r in out:
        cells: list[list[OcrLine]] = []
        for l in sorted(r, key=lambda l: l.x0):
            for c in cells:
                if any(min(l.x1, o.x1) - max(l.x0, o.x0) > 0 for o in c):
                    c.append(l)
                    break
            else:
                cells.append([l])
        result.append([l for c in cells for l in sorted(c, key=lambda l: l.y0)])
    return result


def _labels_first(rows: list[list[OcrLine]]) -> bool:
    """Most rows start with a text label (a row-header column), not a number."""
    first = [r[0].text.strip() for r in rows if r]
    return sum(sum(c.isalpha() for c in t) >= 2 for t in first) >= 0.6 * max(len(first), 1)


def _side_by_side(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Split a table region holding tables side by side: at an x gap that no line crosses, where a
    header row repeats itself across (the same cells, e.g. years, on both sides) and both sides
    start their rows with labels (column groups such as "n | %" twice are one table)."""
    spans = sorted((l.x0, l.x1) for l in lines)
    end = spans[0][1]
    for a, b in spans[1:]:
        if a > end:
            cut = (a + end) / 2
            left, right = [l for l in lines if l.x1 < cut], [l for l in lines if l.x0 > cut]
            lrows, rrows = _table_rows(left), _table_rows(right)
            for row in _table_rows(lines)[:3]:
                lt = [l.text.strip() for l in row if l.x1 < cut and len(l.text.strip()) > 1]
                rt = {l.text.strip() for l in row if l.x0 > cut}
                first = [l.text.strip() for l in row]
                same_head = first[:len(first) // 2] == first[len(first) - len(first) // 2:]  # one table, columns repeated
                if sum(t in rt for t in lt) >= 2 and not same_head and len(lrows) >= 3 and len(rrows) >= 3 and \
                        _labels_first(lrows) and _labels_first(rrows):
                    return _side_by_side(left) + _side_by_side(right)
        end = max(end, b)
    return [lines]


def _region_text(label: str, lines: list[OcrLine], direction: str) -> tuple[list[OcrLine], str]:
    if direction == HORIZONTAL and label == "table":
        ordered, text = [], []
        for part in _side_by_side(lines):
            for row in _cell_rows(part):
                s = ""
                for ln in row:
                    s = _join(s, ln.text.strip())
                text.append(s)
                ordered += row
        return ordered, "\n".join(text)
    return read_page(lines, direction)


@dataclass
class RegionPage:
    lines: list  # the input line objects, in reading order
    labels: list[str]  # region label per ordered line ("header", "text", "table", ...)
    text: str  # page text: one block per region, blank line between regions
    regions: list[tuple[str, tuple[float, float, float, float], list[int]]]  # ordered: label, box, input line indices


def order_regions(lines: Sequence[Any], regions: Sequence[Any], direction: str = "auto",
                  page_size: tuple[float, float] | None = None, text_without: Sequence[str] = ()) -> RegionPage:
    """Reading order of `lines` (OcrLine or {"box", "text", "score"} dicts) given layout `regions`
    (`actors.layout.Region`, (label, box) pairs or {"label", "box"} dicts; boxes x0, y0, x1, y1 in the
    lines' pixels). `page_size` (width, height) places header/footer labels; default: the content's extent.
    `text_without`: region labels left out of the page text (e.g. ("header", "footer")); their lines
    stay in `lines` with their labels."""
    src = list(lines)
    lns = [_as_line(ln) for ln in src]
    keep = [i for i, ln in enumerate(lns) if len(ln.box) >= 2]
    if not keep:
        return RegionPage([], [], "", [])
    if direction == "auto":
        direction = detect_direction([lns[i] for i in keep])
    vertical = direction == VERTICAL
    unit = median(min(ln.x1 - ln.x0, ln.y1 - ln.y0) if len(ln.text.strip()) > 1 else max(ln.x1 - ln.x0, ln.y1 - ln.y0)
                  for ln in (lns[i] for i in keep)) or 1.0
    regs = _dedupe([_Reg(*_as_region(r)) for r in regions])
    owner = assign_lines([lns[i] for i in keep], regs)
    free = []
    for i, k in zip(keep, owner):
        (free.append(i) if k is None else regs[k].lines.append(i))
    _absorb_figure_text(regs, lns)
    regs = [r for r in regs if r.lines] + _free_regions(lns, free, direction, unit)
    for r in regs:
        r.x0, r.y0 = min(lns[i].x0 for i in r.lines), min(lns[i].y0 for i in r.lines)
        r.x1, r.y1 = max(lns[i].x1 for i in r.lines), max(lns[i].y1 for i in r.lines)
        r.chars = sum(len(lns[i].text.strip()) for i in r.lines)
    if page_size:
        top, bottom = 0.0, float(page_size[1])
    else:
        top, bottom = min(r.y0 for r in regs), max(r.y1 for r in regs)
    height = max(bottom - top, 1.0)
    for r in regs:  # a header/footer label away from the page edge is body text
        cy = (r.y0 + r.y1) / 2
        if r.label == "header" and cy > top + _EDGE * height or r.label == "footer" and cy < bottom - _EDGE * height:
            r.label = "text"
    parts = {p: [r for r in regs if (r.label if r.label in ("header", "footer") else "body") == p]
             for p in ("header", "body", "footer")}
    ordered: list[_Reg] = []
    for p in ("header", "body", "footer"):
        if vertical:
            ordered += _xy([_turned(r) for r in parts[p]], unit)
            continue
        texts = {id(r): " ".join(lns[i].text for i in sorted(r.lines, key=lambda i: (lns[i].y0, lns[i].x0)))
                 for r in parts[p]}
        regs_p = _attach_captions(parts[p], texts, unit) if p == "body" else parts[p]
        seq = _xy(regs_p, unit)
        if p == "body":
            seq = _flow_text(seq, lns, unit)
        ordered += _flatten(seq)
    out_lines, labels, texts, out_regions = [], [], [], []
    figures = sum(r.chars for r in ordered if r.label == "figure")
    whole = figures >= _FIGURE_SHARE * sum(r.chars for r in ordered)  # the figures are the page's content
    for r in ordered:
        drop = r.label in text_without
        if r.label == "figure":
            drop = _figure_rule(r, lns, vertical, whole, drop)  # a grid-like figure becomes a table
        part, text = _region_text(r.label, [lns[i] for i in r.lines], direction)
        pos = {id(lns[i]): i for i in r.lines}
        idx = [pos[id(ln)] for ln in part]
        out_lines += [src[i] for i in idx]
        labels += [r.label] * len(idx)
        if not drop:
            texts.append(text)
        out_regions.append((r.label, r.box, idx))
    return RegionPage(out_lines, labels, "\n\n".join(t for t in texts if t), out_regions)
