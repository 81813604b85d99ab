"""What a request may upload, and how an upload becomes the batch job's page rows.

Pure functions (no Ray, no HTTP server): the ingress calls them, tests call them directly. Every
refusal is an `UploadError` with an HTTP status and a message that says what to do. The endpoint
reads only what the client sent: it never opens a server path or fetches a URL that a client names.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass

from PIL import Image

from pipeline.config import RunConfig
from pipeline.discover import NotADocument, describe_document, expand_pages, sniff


@dataclass
class UploadError(Exception):
    status: int
    message: str

    def __str__(self) -> str:
        return self.message


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


def parse_pages(spec: str | None, page_count: int, max_pages: int) -> list[int]:
    """'1-3,5' (1-based, as printed page numbers) → 0-based indices, in order, without repeats.

    None or '' means every page. More than `max_pages` pages is a 413 that says how to ask for fewer."""
    if not spec or not spec.strip():
        wanted = list(range(page_count))
    else:
        wanted = []
        for part in spec.split(","):
            m = _RANGE.match(part)
            if not m:
                raise UploadError(400, f"pages={spec!r}: write page numbers and ranges from 1, e.g. pages=1-3,5")
            first = int(m.group(1))
            last = first if m.group(2) is None else int(m.group(2) or page_count)
            if first < 1 or last < first:
                raise UploadError(400, f"pages={spec!r}: ranges go from 1 upwards, e.g. pages=2-4")
            if first > page_count:
                raise UploadError(400, f"pages={spec!r}: the document has {page_count} page(s)")
            wanted.extend(i - 1 for i in range(first, min(last, page_count) + 1))
        wanted = list(dict.fromkeys(wanted))
    if len(wanted) > max_pages:
        raise UploadError(413, f"{len(wanted)} pages asked for, at most {max_pages} per request (serve.max_pages): "
                               f"ask for a range (pages=1-{max_pages}) or use `hybridocr run` for whole documents")
    return wanted


def check_size(size: int, cfg: RunConfig) -> None:
    limit = cfg.serve.max_upload_mb * 2**20
    if size > limit:
        raise UploadError(413, f"the upload is {size / 2**20:.1f} MB, above serve.max_upload_mb = {cfg.serve.max_upload_mb:g} MB: "
                               "split the document or use `hybridocr run`")
    if size == 0:
        raise UploadError(400, "the upload is empty (0 bytes): send the file's bytes (curl -F file=@scan.pdf ...)")


class Upload:
    """An uploaded file in a private temporary directory, removed with `close()` (or `with`)."""

    def __init__(self, data: bytes, name: str | None):
        self.dir = tempfile.mkdtemp(prefix="hybridocr-upload-")
        # the client's name is kept as a label only: never a path on this server
        self.name = os.path.basename((name or "").replace("\\", "/")) or "upload"
        # named by content: the renderer caches open documents by path, so a reused name must mean the same bytes
        self.path = os.path.join(self.dir, hashlib.sha256(data).hexdigest()[:32])
        with open(self.path, "wb") as f:
            f.write(data)

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def page_rows(upload: Upload, cfg: RunConfig, pages: str | None) -> tuple[dict, list[dict]]:
    """The batch job's discovery for one upload: (document row, page rows to prepare).

    Content is sniffed from the bytes (an HTML file named .pdf is a 415); a damaged, encrypted or
    empty document, and an image above render.max_image_pixels, are refused with what to do."""
    try:
        kind = sniff(upload.path)
    except NotADocument as e:
        raise UploadError(415, str(e)) from None
    doc = describe_document({"source": upload.name, "path": upload.path}, cfg.text_layer)
    if doc.get("error"):
        raise UploadError(422, doc["error"].removeprefix("discover: "))
    if kind == "image":
        with Image.open(upload.path) as im:
            w, h = im.size
        if w * h > cfg.render.max_image_pixels:
            raise UploadError(413, f"the image is {w}x{h} = {w * h / 1e6:.0f} MP, above render.max_image_pixels = "
                                   f"{cfg.render.max_image_pixels / 1e6:.0f} MP: downscale it before sending")
    wanted = parse_pages(pages, doc["page_count"], cfg.serve.max_pages)
    doc["skip"] = sorted(set(range(doc["page_count"])) - set(wanted))
    return doc, expand_pages(doc)
