"""Layout and tables on text-layer pages (`text_layer.layout`): a born-digital page read through its
text layer skips OCR, but a table on it is still a table, and a running head is still a running head.
- tables (the default): when the text layer's lines form a grid (`looks_tabular`: several rows of
  three or more cells that line up in columns), the page is rendered and read by the same layout
  and table models as the PaddleOCR route (actors/page_structure.py); each table region's cells are
  filled with the text layer's own lines. The text stays the text layer's: only `tables` is added.
  Other pages cost one pass over their line boxes.
- full: every text-layer page is rendered and read like an OCR'd page: regions ordered, lines
  labelled with their region, header/footer/figure text out of `text` (layout.text_without), tables.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from actors.page_structure import PageStructure, StructuredPage
from pipeline.config import LayoutConfig, RunConfig
from pipeline.render import render_pdf_page
from pipeline.schema import lines_to_json, tables_to_json
from pipeline.tables import merge_spans
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
    return merge_spans((min(p[0] for p in ln.box), max(p[0] for p in ln.box)) for ln in row)


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
    return PageStructure(LayoutConfig.model_validate_json(layout_json), threads=1)


def text_layer_structure(page, lines: list[OcrLine], config: RunConfig):
    """The layout's reading of one text-layer page (`text_layer.layout`): a StructuredPage with lines and
    table boxes in the row's pixels at render.dpi, or None when the page is left as its text layer."""
    mode = config.text_layer.layout
    if mode == "off" or config.layout.regions == "off" or not lines:
        return None
    if mode == "tables" and (config.layout.tables == "off" or not looks_tabular(lines)):
        return None
    structure = _structure(config.layout.model_dump_json())
    if structure.layout is None or (mode == "tables" and structure.tables is None):
        return StructuredPage(None, lines, [None] * len(lines), warnings=list(structure.warnings))
    image, dpi, _ = render_pdf_page(page, config.render)
    k = dpi / config.render.dpi  # below 1 when render.max_pixels capped the page
    scaled = lines if k == 1 else [_scaled(ln, k) for ln in lines]
    if mode == "tables":  # the text and its order stay the text layer's: the regions are not ordered
        tables = structure.tables_only(image, scaled, "text_layer")
        found = StructuredPage(None, lines, [None] * len(lines), tables, warnings=list(structure.warnings))
    else:
        found = structure(image, scaled, "text_layer")
        if k != 1:
            found.lines = [_scaled(ln, 1 / k) for ln in found.lines]
    if k != 1:
        for t in found.tables:
            t["box"] = [v / k for v in t["box"]]
    return found


def _scaled(line: OcrLine, k: float) -> OcrLine:
    return OcrLine([[x * k, y * k] for x, y in line.box], line.text, line.score)


def add_text_layer_layout(row: dict, page, lines: list[OcrLine], config: RunConfig) -> None:
    """Put the layout's reading of a text-layer page into its row (tables; with `full`, text and
    lines); a failure of the models costs the page its tables, never its text layer."""
    try:
        found = text_layer_structure(page, lines, config)
    except Exception as e:
        log.warning("page structure failed on text-layer page %s: %s", row.get("page_id"), e)
        row["warnings"] = [*(row.get("warnings") or []), (
            f"structure_failed: layout/table models failed on this text-layer page ({type(e).__name__}: {str(e)[:200]}); "
            "its text layer is kept as it is; report it with the page (text_layer.layout=off skips the models)")]
        return
    if found is None:
        return
    if found.text is not None:  # text_layer.layout full: the layout's reading
        row.update(text=found.text, lines_json=lines_to_json(found.lines, found.regions))
    row["tables_json"] = tables_to_json(found.tables) if found.tables else None
    if found.warnings:
        row["warnings"] = [*(row.get("warnings") or []), *found.warnings]
