"""Vertical-page helpers for pipeline/reading_order.py (pure geometry and text; no OCR imports).

- `pair_notes`: double-line small notes (雙行小注 / 夾注) are two narrow half-columns side by side
  inside one column. The detector boxes each half on its own; read as ordinary columns the left
  half would come out as a column of its own (or in the wrong place). Each such pair is replaced
  by one box of column width whose text is the right half, then the left one (the traditional
  order), so the column ordering sees an ordinary box; `expand` turns it back into the two lines.
- `vertical_punct`: recognised text of a vertical page with vertical presentation forms
  (︐︒﹁...) written as the ordinary full-width marks, and the Latin look-alikes the recogniser
  reads for turned or corner-set marks (° or o for 。, ' for ，, ` for 、) between CJK characters
  written as the marks.
"""

from __future__ import annotations

import re
from statistics import median
from typing import Sequence

from .types import OcrLine

_NARROW = 0.72  # a note half-column is at most this share of the page's column width
_MIN_NARROW = 0.2  # ... and at least this share (smaller: a punctuation mark, a speck)
_GAP = 0.6  # the two halves are at most this many half-widths apart
_TOP = 1.2  # their tops differ by at most this many half-widths (the left half starts beside the right)
_OFF = 3.0  # cost of a pair's centre off the nearest main-text column centre (vs. top and gap misfit)
_UNION = 1.6  # both halves together are at most this many column widths wide

# vertical presentation forms -> the ordinary full-width marks (NFKC would give ASCII for some)
_FORMS = str.maketrans({"︐": "，", "︑": "、", "︒": "。", "︓": "：", "︔": "；", "︕": "！", "︖": "？",
                        "﹁": "「", "﹂": "」", "﹃": "『", "﹄": "』", "︵": "（", "︶": "）", "︹": "〔", "︺": "〕",
                        "︱": "｜", "︙": "…"})
_CJK = "\u3400-\u9fff\uf900-\ufaff"
# a degree sign or a lone o/O/0 beside CJK text on a vertical page is a full stop read as Latin
_STOP = re.compile(rf"(?<=[{_CJK}])[°º˚]|[°º˚](?=[{_CJK}])|(?<=[{_CJK}])[oO0](?=[{_CJK}]|$)")
# ... and an apostrophe or backtick after a CJK character is a corner-set comma or 、
_COMMA = re.compile(rf"(?<=[{_CJK}])['’‘](?=[{_CJK}]|$)")
_DUN = re.compile(rf"(?<=[{_CJK}])[`´](?=[{_CJK}]|$)")


class PairedNote(OcrLine):
    """A right + left half-column pair standing in for both during ordering."""

    def __init__(self, right: OcrLine, left: OcrLine):
        x0, x1 = min(left.x0, right.x0), max(left.x1, right.x1)
        y0, y1 = min(left.y0, right.y0), max(left.y1, right.y1)
        super().__init__([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], right.text + left.text, min(right.score, left.score))
        self.parts = (right, left)


def _column_width(lines: Sequence[OcrLine]) -> float | None:
    """Width of the page's main text columns: the median box width, weighted by characters,
    of boxes clearly taller than wide."""
    ws = []
    for ln in lines:
        w, h, n = ln.x1 - ln.x0, ln.y1 - ln.y0, len(ln.text.strip())
        if n >= 2 and h > 1.5 * w > 0:
            ws += [w] * n
    return median(ws) if ws else None


def pair_notes(lines: Sequence[OcrLine]) -> list[OcrLine]:
    """`lines` with each double-line note's two half-columns replaced by one `PairedNote`."""
    width = _column_width(lines)
    if width is None:
        return list(lines)
    narrow = [i for i, ln in enumerate(lines)
              if _MIN_NARROW * width <= ln.x1 - ln.x0 <= _NARROW * width and ln.text.strip()
              and ln.y1 - ln.y0 >= 0.6 * (ln.x1 - ln.x0)]
    # centres of main-text boxes: a note's two halves sit around one of them, while the left half
    # of one column's note and the right half of the next column's note straddle a column line
    mains = [(ln.x0 + ln.x1) / 2 for ln in lines
             if ln.x1 - ln.x0 > _NARROW * width and ln.y1 - ln.y0 > 1.5 * (ln.x1 - ln.x0)]
    cands = []
    for i in narrow:
        a = lines[i]
        for j in narrow:
            b = lines[j]
            if (b.x0 + b.x1) >= (a.x0 + a.x1):  # b must be the left half
                continue
            half = max(a.x1 - a.x0, b.x1 - b.x0)
            gap = a.x0 - b.x1
            overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
            if not (-0.3 * half <= gap <= _GAP * half) or abs(a.y0 - b.y0) > _TOP * half:
                continue
            if overlap < 0.5 * min(a.y1 - a.y0, b.y1 - b.y0) or a.x1 - b.x0 > _UNION * width:
                continue
            off = min((abs((a.x1 + b.x0) / 2 - m) for m in mains), default=0.0)
            cands.append((_OFF * off + abs(a.y0 - b.y0) + abs(gap), i, j))
    used: set[int] = set()
    pairs = {}
    for _, i, j in sorted(cands):
        if i not in used and j not in used:
            used |= {i, j}
            pairs[i] = j
    out = []
    for i, ln in enumerate(lines):
        if i in pairs:
            out.append(PairedNote(ln, lines[pairs[i]]))
        elif i not in used:
            out.append(ln)
    return out


def expand(row: Sequence[OcrLine]) -> list[OcrLine]:
    """A row of ordered lines with each `PairedNote` back as its right, then its left half."""
    return [p for ln in row for p in (ln.parts if isinstance(ln, PairedNote) else (ln,))]


def vertical_punct(text: str) -> str:
    text = _STOP.sub("。", text.translate(_FORMS))
    return _DUN.sub("、", _COMMA.sub("，", text))
