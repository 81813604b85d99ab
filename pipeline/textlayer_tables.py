"""Tables on text-layer pages: a born-digital page read through its text layer skips OCR, but a
table on it is still a table. When the text layer's lines form a grid (`looks_tabular`: several
rows of three or more cells that line up in columns), the page is rendered and read by the same
layout and table models as the PaddleOCR route (actors/page_structure.py); each table region's
cells are filled with the text layer's own lines. Other text-layer pages cost one pass over their
line boxes. The text itself stays the text layer's: only the `tables` column is added.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from pipeline.config import LayoutConfig, RunConfig
from pipeline.render import render_pdf_page
from pipeline.types import OcrLine

log = logging.getLogger(__name__)


def _rows_of(lines: list[OcrLine]) -> list[list[OcrLine]]:
    """Lines grouped into rows: a line joins the row whose centre is within half a line height of its own."""
    spans = sorted(((min(p[1] for p in ln.box), max(p[1] for p in ln.box), ln) for ln in lines), key=lambda t: t[0] + t[1])
    heights = [y1 - y0 for y0, y1, _ in spans if y1 > y0]
    if not heights:
        return []
    tol = 0.5 * float(np.median(heights))
    rows: list[list[OcrLine]] = []
    last = None
    for y0, y1, ln in spans:
        c = (y0 + y1) / 2
        if last is not None and abs(c - last) <= tol:
            rows[-1].append(ln)
        else:
            rows.append([ln])
            last = c
    return rows


def _cells(row: list[OcrLine]) -> list[tuple[float, float]]:
    """A row's lines as x-intervals, lines that overlap sideways merged into one cell."""
    cells: list[list[float]] = []
    for x0, x1 in sorted((min(p[0] for p in ln.box), max(p[0] for p in ln.box)) for ln in row):
        if cells and x0 <= cells[-1][1]:
            cells[-1][1] = max(cells[-1][1], x1)
        else:
            cells.append([x0, x1])
    return [(a, b) for a, b in cells]


def _aligned(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Each cell of the row with fewer cells overlaps exactly one cell of the other, a different one
    each, left to right (columns; a row may have more cells, e.g. currency signs in columns of their own)."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    hits = [[j for j, (u0, u1) in enumerate(long_) if x0 <= u1 and u0 <= x1] for x0, x1 in short]
    if any(len(h) != 1 for h in hits):
        return False
    order = [h[0] for h in hits]
    return all(i < j for i, j in zip(order, order[1:]))


def looks_tabular(lines: list[OcrLine], min_rows: int = 3, min_cells: int = 3) -> bool:
    """At least `min_rows` rows of `min_cells` or more cells that line up in columns (prose broken
    around inline math or two text columns does not: its pieces do not fall into the same columns)."""
    grid = [c for c in (_cells(r) for r in _rows_of(lines)) if len(c) >= min_cells]
    return any(sum(_aligned(ref, other) for other in grid) >= min_rows for ref in grid)


@functools.lru_cache(maxsize=2)
def _structure(layout_json: str):
    """One PageStructure per process and layout config (a render worker loads the two models once)."""
    from actors.page_structure import PageStructure

    return PageStructure(LayoutConfig.model_validate_json(layout_json), threads=1)


def text_layer_tables(page, lines: list[OcrLine], config: RunConfig) -> tuple[list[dict], list[str]]:
    """(tables as {"html", "box", "score"} in the row's pixels at render.dpi, warnings) of one text-layer page."""
    if config.layout.tables == "off" or config.layout.regions == "off" or not lines or not looks_tabular(lines):
        return [], []
    structure = _structure(config.layout.model_dump_json())
    if structure.layout is None or structure.tables is None:
        return [], list(structure.warnings)
    image, dpi, _ = render_pdf_page(page, config.render)
    k = dpi / config.render.dpi  # below 1 when render.max_pixels capped the page
    scaled = lines if k == 1 else [OcrLine([[x * k, y * k] for x, y in ln.box], ln.text, ln.score) for ln in lines]
    tables = structure(image, scaled, "text_layer").tables
    if k != 1:
        for t in tables:
            t["box"] = [v / k for v in t["box"]]
    return tables, []
