"""A batch run's output on the review page (`hybridocr serve --browse OUT_DIR`).

The rows come from OUT_DIR/pages (the Parquet the job wrote); a page's picture is rendered again
from the `source` the row names, when that file is readable where the server runs. Clients pick
rows by doc_id / page or ask for the lowest-confidence pages; they never name a path.
"""

from __future__ import annotations

import pyarrow.compute as pc

from pipeline.config import RenderConfig
from pipeline.output import OutputDir
from pipeline.schema import json_ready

_COLUMNS = None  # every column: the review page shows the row as the job wrote it


class Browser:
    def __init__(self, out_dir: str, render: RenderConfig):
        self.out_dir, self.render = out_dir, render
        self._table = None

    def table(self):
        if self._table is None:  # read once per replica; a new run's rows: restart the server
            self._table = OutputDir(self.out_dir).read_pages(_COLUMNS)
        return self._table

    def documents(self) -> list[dict]:
        docs: dict[str, dict] = {}
        for row in self.table().select(["doc_id", "source", "confidence"]).to_pylist():
            d = docs.setdefault(row["doc_id"], {"doc_id": row["doc_id"], "source": row["source"], "pages": 0, "min_confidence": None})
            d["pages"] += 1
            c = row["confidence"]
            if c is not None and (d["min_confidence"] is None or c < d["min_confidence"]):
                d["min_confidence"] = c
        return sorted(docs.values(), key=lambda d: d["source"])

    def pages(self, doc_id: str | None = None, lowest: int | None = None) -> list[dict]:
        t = self.table()
        if doc_id is not None:
            rows = sorted(t.filter(pc.equal(t["doc_id"], doc_id)).to_pylist(), key=lambda r: r["page_index"])
        else:
            scored = t.filter(pc.is_valid(t["confidence"]))
            rows = sorted(scored.to_pylist(), key=lambda r: r["confidence"])[: max(1, min(lowest or 12, 100))]
        for row in rows:
            json_ready(row)
            row["image"] = self._picture(row)
        return rows

    def _picture(self, row: dict) -> str | None:
        from pipeline.pixels import jpeg_data_url
        from pipeline.render import open_pdf_page, render_image_page, render_pdf_page

        try:
            if row["kind"] == "pdf":
                image, _, _ = render_pdf_page(open_pdf_page(row["source"], row["page_index"]),
                                              self.render.model_copy(update={"dpi": row["dpi"] or self.render.dpi}))
            else:
                image, _, _ = render_image_page(row["source"], row["page_index"], self.render)
        except Exception:  # the file is not here (another machine, moved): the text and boxes still show
            return None
        return jpeg_data_url(image)
