"""The output schema: one Parquet row per input page (documented in README, versioned here).

Bump SCHEMA_VERSION when a column is added, removed or changes meaning.
"""

from __future__ import annotations

import json

import pyarrow as pa

SCHEMA_VERSION = "5"  # 2: VLM columns (engine "vlm", hybrid confidences); 3: sources, warnings; 4: node; 5: tables, line regions
PIPELINE_VERSION = "0.1.0"

LINE = pa.struct(
    [
        ("box", pa.list_(pa.list_(pa.float32(), 2), 4)),  # 4 points (x, y) in pixels of the rendered page
        ("text", pa.string()),
        ("score", pa.float32()),
        ("region", pa.string()),  # the layout region it lies in: text | title | header | footer | table | figure | ... ; null without layout
    ]
)

TABLE = pa.struct(
    [
        ("html", pa.string()),  # <table> with <tr>/<td colspan rowspan>, cells filled with the OCR lines' text
        ("box", pa.list_(pa.float32(), 4)),  # x0, y0, x1, y1 in pixels of the rendered page
        ("score", pa.float32()),  # the structure model's mean token probability
    ]
)

OUTPUT_SCHEMA = pa.schema(
    [
        ("page_id", pa.string()),  # "<doc_id>:<page_index>"
        ("doc_id", pa.string()),  # SHA-256 of the file's bytes (32 hex digits)
        ("source", pa.string()),  # path or URI as given (relative to the submit directory under `ray job submit`)
        ("sources", pa.list_(pa.string())),  # every name this content was found under in the run (byte-identical files)
        ("kind", pa.string()),  # pdf | image
        ("page_index", pa.int32()),  # 0-based
        ("page_count", pa.int32()),
        ("route", pa.string()),  # horizontal | vertical | table | photo | handwriting | blank | text_layer
        ("route_features", pa.string()),  # JSON object of the classifier's features
        ("engine", pa.string()),  # paddleocr | vlm | text_layer | none
        ("model", pa.string()),  # e.g. PP-OCRv5_mobile_det+PP-OCRv5_mobile_rec (onnxruntime, cpu)
        ("text", pa.string()),  # page text in reading order
        ("lines", pa.list_(LINE)),  # in reading order
        ("tables", pa.list_(TABLE)),  # tables found on the page (PaddleOCR route: the table-structure model); empty when none
        ("confidence", pa.float32()),  # the winning engine's confidence, 0-1; null when nothing was read
        ("paddle_confidence", pa.float32()),  # PaddleOCR's character-weighted mean line score
        ("vlm_confidence", pa.float32()),  # VLM's mean generated-token probability
        ("vlm_finish_reason", pa.string()),  # stop | length | repetition
        ("vlm_prompt_tokens", pa.int32()),
        ("vlm_output_tokens", pa.int32()),
        ("vlm_attempts", pa.int32()),  # 1 + retries at stepped temperatures
        ("vlm_problem", pa.string()),  # null | repetition | truncated (after all retries)
        ("width", pa.int32()),  # rendered image size in pixels
        ("height", pa.int32()),
        ("dpi", pa.float32()),  # effective DPI of the rendered image
        ("scale", pa.float32()),  # 1.0, or < 1 when the page was scaled down to fit render.max_pixels
        ("seconds_render", pa.float32()),
        ("seconds_classify", pa.float32()),
        ("seconds_ocr", pa.float32()),
        ("node", pa.string()),  # the Ray node that read the page: "<ip> <node id[:8]>" (the report's key); null outside Ray
        ("warnings", pa.list_(pa.string())),  # "<kind>: <what and what to do>", e.g. pdf_repaired; empty when none
        ("error", pa.string()),  # null when ok; "<stage>: <what happened and what to do>" otherwise
        ("pipeline_version", pa.string()),
        ("schema_version", pa.string()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
    ]
)

_INTERMEDIATE_ONLY = ("image", "lines_json", "tables_json", "error_stage")
# what an engine stage writes into a page row (a row from elsewhere, e.g. a Serve request, may lack some)
ENGINE_COLUMNS = ("text", "lines_json", "tables_json", "confidence", "paddle_confidence", "engine", "model", "node",
                  "seconds_ocr", "error")


def ensure_columns(batch, columns) -> None:
    """Add the missing `columns` to a pandas batch as nulls, so that rows can be set with `.at`."""
    for col in columns:
        if col not in batch:
            batch[col] = None


def lines_to_json(lines, regions: list[str | None] | None = None) -> str:
    regions = regions or [None] * len(lines)
    return json.dumps([{"box": l.box, "text": l.text, "score": l.score, "region": r} for l, r in zip(lines, regions)],
                      ensure_ascii=False)


def tables_to_json(tables: list[dict]) -> str:
    """[{"html", "box", "score"}] as the intermediate column `tables_json`."""
    return json.dumps([{"html": t["html"], "box": [float(v) for v in t["box"]], "score": float(t["score"])} for t in tables],
                      ensure_ascii=False)


def to_output_table(batch: pa.Table) -> pa.Table:
    """Shape a batch of pipeline rows into OUTPUT_SCHEMA (drops pixels, types the lines)."""
    import datetime

    n = batch.num_rows
    cols = {name: batch.column(name) for name in batch.column_names}
    lines = [json.loads(s) if s else [] for s in cols["lines_json"].to_pylist()] if "lines_json" in cols else [[]] * n
    tables = [json.loads(s) if s else [] for s in cols["tables_json"].to_pylist()] if "tables_json" in cols else [[]] * n
    now = datetime.datetime.now(datetime.timezone.utc)
    arrays = []
    for field in OUTPUT_SCHEMA:
        if field.name == "lines":
            arrays.append(pa.array(lines, type=field.type))
        elif field.name == "tables":
            arrays.append(pa.array(tables, type=field.type))
        elif field.name == "pipeline_version":
            arrays.append(pa.array([PIPELINE_VERSION] * n, type=field.type))
        elif field.name == "schema_version":
            arrays.append(pa.array([SCHEMA_VERSION] * n, type=field.type))
        elif field.name == "finished_at":
            arrays.append(pa.array([now] * n, type=field.type))
        elif field.name in cols:
            arrays.append(cols[field.name].cast(field.type))
        else:
            arrays.append(pa.nulls(n, type=field.type))
    return pa.Table.from_arrays(arrays, schema=OUTPUT_SCHEMA)


def json_ready(row: dict) -> dict:
    """An output row (`Table.to_pylist()`) for a JSON answer: `finished_at` as ISO 8601 text."""
    stamp = row.get("finished_at")
    row["finished_at"] = stamp.isoformat() if stamp else None
    return row
