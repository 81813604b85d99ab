"""Stages 2-4 for one page row: text layer, render, classify. Pure per-row function for `Dataset.map`.

Every failure lands in the row's `error` column ("<stage>: <message>"); the row always comes out.
Rows leave with `engine` set when no OCR is needed (text_layer, or "none" for blank pages) and
`engine == ""` when the OCR pool must read them.
"""

from __future__ import annotations

import json
import time

from pipeline.classify import classify_page
from pipeline.config import RunConfig
from pipeline.pixels import sized_for_vlm
from pipeline.render import open_pdf_page, render_image_page, render_pdf_page
from pipeline.schema import lines_to_json
from pipeline.textlayer import read_text_layer
from pipeline.textlayer_tables import add_text_layer_layout
from pipeline.types import this_node

_DEFAULTS = {
    "page_id": "", "route": None, "route_features": None, "engine": "", "model": None, "text": None,
    "lines_json": None, "tables_json": None, "confidence": None, "paddle_confidence": None, "width": None, "height": None, "dpi": None, "scale": None,
    "seconds_render": None, "seconds_classify": None, "seconds_ocr": None, "image": b"",
}


def prepare_page(row: dict, config: RunConfig) -> dict:
    out = {**_DEFAULTS, **row}
    out["page_id"] = f"{row['doc_id']}:{row['page_index']}"
    out["node"] = this_node()  # the engine that reads the page sets its own
    if out["error"] is not None:
        out["engine"] = "none"
        return out
    stage = "render"
    try:
        start = time.perf_counter()
        if row["kind"] == "pdf":
            page = open_pdf_page(row.get("path") or row["source"], row["page_index"])
            stage = "text_layer"
            if config.text_layer.mode != "off":
                layer = read_text_layer(page, config.text_layer, config.render.dpi)
                if layer.usable:
                    out.update(
                        engine="text_layer", route="text_layer", text=layer.text, lines_json=lines_to_json(layer.lines),
                        confidence=1.0, width=round(page.rect.width * config.render.dpi / 72),
                        height=round(page.rect.height * config.render.dpi / 72), dpi=float(config.render.dpi), scale=1.0,
                        route_features=json.dumps({"text_layer_chars": layer.chars, "bad_glyph_ratio": layer.bad_ratio}),
                        seconds_render=time.perf_counter() - start,
                    )
                    add_text_layer_layout(out, page, layer.lines, config)
                    return out
            stage = "render"
            image, dpi, scale = render_pdf_page(page, config.render)
        else:
            image, dpi, scale = render_image_page(row.get("path") or row["source"], row["page_index"], config.render)
        out.update(width=image.shape[1], height=image.shape[0], dpi=dpi, scale=scale, seconds_render=time.perf_counter() - start)
        stage = "classify"
        start = time.perf_counter()
        verdict = classify_page(image)
        out.update(route=verdict.route, route_features=json.dumps(verdict.features), seconds_classify=time.perf_counter() - start)
        if verdict.route == "blank":
            out.update(engine="none", text="", lines_json="[]")
        else:
            if config.mode == "vlm" or (config.mode == "hybrid" and verdict.route in config.hybrid.vlm_routes):
                # the VLM's pages are sized for the model here, in parallel, not serially in the engine's actor
                image = sized_for_vlm(image, config.vlm.min_pixels, config.vlm.max_pixels, out)
            out["image"] = image.tobytes()
    except Exception as e:  # the page becomes an error row; the job goes on
        out.update(engine="none", image=b"", error=stage_error(stage, e))
    return out


_ADVICE = {
    "render": "the file is damaged or cut short: re-copy or re-export it from its origin, and rerun",
    "text_layer": "rerun with --set text_layer.mode=off to OCR the page instead of reading its text layer",
    "classify": "a bug in the page classifier: report it with the file (the rest of the job is unaffected)",
}


def stage_error(stage: str, e: Exception) -> str:
    """"<stage>: <what happened>; <what to do>" (our own ValueErrors already say what to do)."""
    what = f"{type(e).__name__}: {str(e)[:300]}"
    if isinstance(e, ValueError) and "; " in str(e):
        return f"{stage}: {str(e)[:400]}"
    return f"{stage}: {what}; {_ADVICE.get(stage, 'rerun; if it fails again, report it with the file')}"
