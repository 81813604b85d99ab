"""Page structure for the PaddleOCR route: layout regions, reading order, tables as HTML.

`PageStructure(config.layout)` holds the two small ONNX models (both from PyPI wheels, loaded
offline): the CDLA layout detector (actors/layout.py) and the SLANet-family table model
(actors/table_structure.py). Called with a page's pixels and its OCR lines it returns the page
in reading order:
- regions found: lines ordered region by region (pipeline/region_order.py), each line's region
  label kept (header/footer and text inside figures marked, and left out of the text: `layout.text_without`;
  not figures on a page of a `layout.table_routes` route); without regions (layout off, none found): the XY-cut order
  of pipeline/reading_order.py;
- tables: each `table` region (or the whole page for a route in `layout.table_routes` when the
  layout found none) is cut out, read by the table model, its cells filled with the OCR lines
  inside it (pipeline/table_html.py): `{"html", "box", "score"}` per table.
A model that is not installed is left out with a warning on the row (what to install), never an
error: the page is still read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import LayoutConfig
from pipeline.reading_order import detect_direction, read_page
from pipeline.types import OcrLine

log = logging.getLogger(__name__)
TABLE_MARGIN = 8  # px of the page kept around a table region when it is cut out for the table model


@dataclass
class StructuredPage:
    text: str
    lines: list[OcrLine]  # reading order
    regions: list[str | None]  # region label per line (None without layout)
    tables: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _centre_inside(line: OcrLine, box) -> bool:
    pts = np.asarray(line.box, dtype=float).reshape(-1, 2)
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


class PageStructure:
    def __init__(self, cfg: LayoutConfig, providers: list | None = None, threads: int | None = None):
        self.cfg = cfg
        self.layout = self.tables = None
        self.warnings: list[str] = []
        if cfg.regions == "cdla":
            from actors import layout

            if layout.model_path():
                self.layout = layout.LayoutDetector(providers=providers, threads=threads, conf=cfg.min_score,
                                                    batch_pages=cfg.batch_pages)
            else:
                self.warnings.append(f"layout_unavailable: layout.regions is cdla but its model is not installed "
                                     f"({layout.INSTALL_HINT}); lines were ordered without regions")
        if cfg.tables == "slanet-1m":
            from actors import table_structure

            if table_structure.model_path():
                self.tables = table_structure.TableStructure(providers=providers, threads=threads)
            else:
                self.warnings.append(f"tables_unavailable: layout.tables is slanet-1m but its model is not installed "
                                     f"({table_structure.INSTALL_HINT}); no tables were read")
        for w in self.warnings:
            log.warning(w)

    def __call__(self, image: np.ndarray | None, lines: list[OcrLine], route: str, regions: list | None = None) -> StructuredPage:
        """The page in reading order with its tables; `regions`: its layout regions found already (`regions_many`)."""
        direction = "vertical" if route == "vertical" else detect_direction(lines)
        regions = self._regions(image, lines) if regions is None else regions
        if regions:
            from pipeline.region_order import order_regions

            h, w = image.shape[:2]
            # a page routed as a table is one: "figure" regions on it are the detector's mistakes, their text stays
            without = tuple(k for k in self.cfg.text_without if k != "figure" or route not in self.cfg.table_routes)
            page = order_regions(lines, regions, direction, page_size=(w, h), text_without=without)
            out = StructuredPage(page.text, list(page.lines), list(page.labels), warnings=list(self.warnings))
        else:
            ordered, text = read_page(lines, direction)
            out = StructuredPage(text, ordered, [None] * len(ordered), warnings=list(self.warnings))
        out.tables = self._tables(image, lines, regions, route)
        return out

    def tables_only(self, image: np.ndarray | None, lines: list[OcrLine], route: str) -> list[dict]:
        """The tables `__call__` finds on the page, without ordering its regions and lines: for a
        caller that keeps its own text and order (a text-layer page, pipeline/textlayer_tables.py)."""
        return self._tables(image, lines, self._regions(image, lines), route)

    def _regions(self, image: np.ndarray | None, lines: list[OcrLine]) -> list:
        return self.layout(image) if self.layout is not None and image is not None and lines else []

    def regions_many(self, images: list[np.ndarray | None], lines: list[list[OcrLine]]) -> list[list]:
        """The layout regions of several pages (`layout.batch_pages` to a run of the model), as `__call__` finds them."""
        todo = [k for k, (im, ls) in enumerate(zip(images, lines)) if self.layout is not None and im is not None and ls]
        found = dict(zip(todo, self.layout.detect_many([images[k] for k in todo]) if todo else []))
        return [found.get(k, []) for k in range(len(images))]

    def _tables(self, image: np.ndarray | None, lines: list[OcrLine], regions: list, route: str) -> list[dict]:
        """Each `table` region read by the table model (the whole page on a `layout.table_routes`
        route where the layout found none)."""
        if self.tables is None or image is None or not lines:
            return []
        boxes = [r.box for r in regions if r.label == "table"]
        if not boxes and route in self.cfg.table_routes:
            boxes = [(0.0, 0.0, float(image.shape[1]), float(image.shape[0]))]
        return [t for t in (self._table(image, lines, b) for b in boxes) if t]

    def _table(self, image: np.ndarray, lines: list[OcrLine], box) -> dict | None:
        from pipeline.table_html import table_html

        h, w = image.shape[:2]
        x0, y0 = max(int(box[0]) - TABLE_MARGIN, 0), max(int(box[1]) - TABLE_MARGIN, 0)
        x1, y1 = min(int(np.ceil(box[2])) + TABLE_MARGIN, w), min(int(np.ceil(box[3])) + TABLE_MARGIN, h)
        inside = [ln for ln in lines if _centre_inside(ln, (x0, y0, x1, y1))]
        if x1 - x0 < 16 or y1 - y0 < 16 or not inside:
            return None
        tokens, cells, score = self.tables(np.ascontiguousarray(image[y0:y1, x0:x1]))
        if not len(cells):
            return None
        shifted = [{"box": (np.asarray(ln.box, dtype=float).reshape(-1, 2) - (x0, y0)).tolist(), "text": ln.text}
                   for ln in inside]
        return {"html": table_html(tokens, cells, shifted), "box": [float(x0), float(y0), float(x1), float(y1)],
                "score": float(score)}
