"""Stage 1 - discover: one input file in, one document row out (identity, kind, pages), then one
row per page still to do (never a whole document in memory).

A document is known by its content: `doc_id` is the SHA-256 of its bytes, so whatever path,
symlink, glob or `ray job submit` working-dir copy reached it, a page is (doc_id, page_index).
The kind comes from the file's first bytes, not its name: an HTML file named .pdf is refused.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pymupdf
from PIL import Image

from pipeline.config import TextLayerConfig
from pipeline.sources import PDF_SUFFIXES, content_hash, local_path
from pipeline.textlayer import judge_text

# Counting an image's frames reads its header only; the size limit is render.max_image_pixels,
# checked when the page is rendered (pipeline/render.py), with a message that names it. Without
# this, a worker that discovers before it ever renders raises Pillow's DecompressionBombError.
Image.MAX_IMAGE_PIXELS = None

_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
                (b"BM", "BMP"))
_FIX_PDF = "re-download or re-export it, or repair it (`qpdf in.pdf fixed.pdf`, `mutool clean in.pdf fixed.pdf`), and rerun"
_FIX_IMAGE = "re-copy or re-export it from its origin, and rerun"


class NotADocument(ValueError):
    """The file's bytes are no PDF or image this pipeline reads; the message says what they look like."""


def sniff(path: str) -> str:
    """'pdf' or 'image' from the file's first bytes; NotADocument with what it looks like otherwise."""
    with open(path, "rb") as f:
        head = f.read(2048)
    if not head:
        raise NotADocument(f"the file is empty (0 bytes); {_FIX_IMAGE}")
    if b"%PDF-" in head[:1024]:  # the PDF header may follow some junk bytes (ISO 32000 allows 1 KB)
        return "pdf"
    if any(head.startswith(magic) for magic, _ in _IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "image"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in lowered[:512]:
        looks = "an HTML page (a web page saved under a document's name?)"
    elif lowered.startswith(b"<?xml") or lowered.startswith(b"<svg"):
        looks = "XML/SVG"
    elif head[:4] == b"PK\x03\x04":
        looks = "a ZIP archive (DOCX/XLSX/ODT are ZIPs: convert them to PDF first)"
    elif all(32 <= b < 127 or b in b"\t\r\n" for b in head[:512]):
        looks = "plain text"
    else:
        looks = f"an unknown format (first bytes {head[:8].hex(' ')})"
    raise NotADocument(f"not a PDF or image: the content is {looks}; give the original PDF or image and rerun")


def _open_pdf(path: str) -> tuple[int, list[str], pymupdf.Document]:
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as e:
        raise ValueError(f"the PDF is damaged and cannot be opened ({_short(e, 120)}); {_FIX_PDF}") from None
    warnings = []
    if doc.needs_pass:
        doc.close()
        raise ValueError("the PDF is encrypted with a password; decrypt it (`qpdf --decrypt --password=PW in.pdf out.pdf`) and rerun")
    if doc.is_repaired:
        warnings.append("pdf_repaired: MuPDF had to repair this PDF's structure (cut short or damaged?); "
                        f"its pages may be incomplete or garbled: check them, or {_FIX_PDF}")
    if doc.page_count == 0:
        doc.close()
        raise ValueError(f"the PDF has no pages (an export that did not finish?); {_FIX_PDF}")
    return doc.page_count, warnings, doc


def _needs_ocr(doc: pymupdf.Document, cfg: TextLayerConfig) -> bool:
    """Whether any page lacks a usable text layer (stops at the first one: scans answer at page 0)."""
    if cfg.mode == "off":
        return True
    return any(not judge_text(page.get_text("text"), cfg)[0] for page in doc)


def describe_document(row: dict, text_layer: TextLayerConfig | None = None) -> dict:
    """One input file → one document row: doc_id, kind, page_count, warnings, needs_ocr, or an error
    that says what to do. Never raises: an unreadable document is a row, never a failed job."""
    source = row["source"]
    path = row.get("path") or source
    kind = "pdf" if Path(source).suffix.lower() in PDF_SUFFIXES else "image"
    doc = {"source": source, "path": path, "kind": kind, "doc_id": "", "page_count": 0, "error": None,
           "warnings": [], "needs_ocr": True}
    try:
        local = local_path(path)
        doc["doc_id"] = content_hash(local)
    except Exception as e:  # vanished, unreadable: an id from the name, so that the error row has a page_id
        doc["doc_id"] = "missing-" + hashlib.sha256(source.encode()).hexdigest()[:24]
        doc["error"] = f"discover: cannot read the file ({type(e).__name__}: {_short(e)}); check that it exists and is readable, and rerun"
        return doc
    try:
        doc["kind"] = kind = sniff(local)
        if kind == "pdf":
            doc["page_count"], doc["warnings"], pdf = _open_pdf(local)
            with pdf:
                doc["needs_ocr"] = _needs_ocr(pdf, text_layer or TextLayerConfig())
        else:
            with Image.open(local) as im:
                doc["page_count"] = getattr(im, "n_frames", 1)
    except ValueError as e:  # ours (NotADocument included): they say what to do
        doc["error"] = f"discover: {e}"
    except Exception as e:
        fix = _FIX_PDF if kind == "pdf" else _FIX_IMAGE
        doc["error"] = f"discover: the {kind} cannot be read ({type(e).__name__}: {_short(e, 160)}); it is damaged: {fix}"
    return doc


def expand_pages(doc: dict) -> list[dict]:
    """A document row → its page rows, less the pages in `doc["skip"]` (finished in OUT_DIR)."""
    skip = set(doc.get("skip") or ())
    base = {k: doc.get(k) for k in ("source", "path", "kind", "doc_id", "page_count", "error")}
    base["warnings"] = list(doc.get("warnings") or [])
    base["sources"] = list(doc.get("sources") or [doc["source"]])
    if doc.get("error"):  # one error row for the whole document
        return [] if 0 in skip else [{**base, "page_index": 0}]
    return [{**base, "page_index": i} for i in range(doc["page_count"]) if i not in skip]


def expand_document(row: dict) -> list[dict]:
    """Discover one file on its own (bench, tests): its document row expanded into page rows."""
    return expand_pages(describe_document(row))


def _short(e: Exception, limit: int = 300) -> str:
    text = str(e).strip() or repr(e)
    return text if len(text) <= limit else text[:limit] + "..."
