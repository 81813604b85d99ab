"""Stage 1 - discover: one input file in, one row per page out (never a whole document in memory)."""

from __future__ import annotations

from pathlib import Path

import pymupdf
from PIL import Image

from pipeline.sources import PDF_SUFFIXES, content_hash, local_path

# Counting an image's frames reads its header only; the size limit is render.max_image_pixels,
# checked when the page is rendered (pipeline/render.py), with a message that names it. Without
# this, a worker that discovers before it ever renders raises Pillow's DecompressionBombError.
Image.MAX_IMAGE_PIXELS = None


def _kind(source: str) -> str:
    return "pdf" if Path(source).suffix.lower() in PDF_SUFFIXES else "image"


def page_count(path: str, kind: str) -> int:
    """Number of pages, reading only the document's structure (PDF xref, image headers)."""
    if kind == "pdf":
        with pymupdf.open(path, filetype="pdf") as doc:
            if doc.needs_pass:
                raise ValueError("the PDF is encrypted with a password; decrypt it (e.g. qpdf --decrypt) and rerun")
            return doc.page_count
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def expand_document(row: dict) -> list[dict]:
    """Discover one file: a row per page, or one error row for the whole document."""
    source = row["source"]
    kind = _kind(source)
    base = {"source": source, "kind": kind, "doc_id": "", "page_index": 0, "page_count": 0, "error": None}
    try:
        path = local_path(source)
        base["doc_id"] = content_hash(path)
        n = page_count(path, kind)
    except Exception as e:  # any unreadable document becomes a row, never a failed job
        return [{**base, "error": f"discover: cannot open {kind} ({type(e).__name__}: {_short(e)})"}]
    if n == 0:
        return [{**base, "error": f"discover: the {kind} has no pages"}]
    return [{**base, "page_index": i, "page_count": n} for i in range(n)]


def _short(e: Exception, limit: int = 300) -> str:
    text = str(e).strip() or repr(e)
    return text if len(text) <= limit else text[:limit] + "..."
