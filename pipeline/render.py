"""Stage 2 - render a page to RGB pixels with PyMuPDF (PDF) or Pillow (images).

PDF pages render at the configured DPI with the page's /Rotate applied; a page that would
exceed `max_pixels` renders at a lower DPI and the row records the scale. Image files larger
than `max_image_pixels` are refused before decoding, so a 20000x20000 scan cannot exhaust memory.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pymupdf
from PIL import Image, ImageOps

from pipeline.config import RenderConfig
from pipeline.sources import local_path

Image.MAX_IMAGE_PIXELS = None  # the size check below replaces Pillow's decompression-bomb warning


@functools.lru_cache(maxsize=8)
def _open_pdf(path: str) -> pymupdf.Document:
    return pymupdf.open(path, filetype="pdf")


def open_pdf_page(source: str, page_index: int) -> pymupdf.Page:
    return _open_pdf(local_path(source))[page_index]


def render_pdf_page(page: pymupdf.Page, cfg: RenderConfig) -> tuple[np.ndarray, float, float]:
    """Render with rotation honoured; returns (RGB array, effective dpi, scale against cfg.dpi)."""
    rect = page.rect  # already rotated by PyMuPDF
    dpi = float(cfg.dpi)
    pixels = (rect.width * dpi / 72) * (rect.height * dpi / 72)
    if pixels > cfg.max_pixels:
        dpi *= math.sqrt(cfg.max_pixels / pixels)
    pix = page.get_pixmap(dpi=max(int(dpi), 1), colorspace=pymupdf.csRGB, alpha=False)
    # one copy out of the pixmap's buffer (`samples` would be a second one)
    image = np.frombuffer(pix.samples_mv, dtype=np.uint8).reshape(pix.height, pix.width, 3).copy()
    dpi = float(max(int(dpi), 1))
    return image, dpi, dpi / cfg.dpi


def render_image_page(source: str, page_index: int, cfg: RenderConfig) -> tuple[np.ndarray, float, float]:
    """Decode one frame of an image file (multi-page TIFF aware), EXIF orientation applied."""
    with Image.open(local_path(source)) as im:
        w, h = im.size
        if w * h > cfg.max_image_pixels:
            raise ValueError(
                f"image is {w}x{h} = {w * h / 1e6:.0f} MP, above render.max_image_pixels = "
                f"{cfg.max_image_pixels / 1e6:.0f} MP; downscale it or raise the limit in the config"
            )
        im.seek(page_index)
        dpi = float(im.info.get("dpi", (cfg.dpi, cfg.dpi))[0] or cfg.dpi)
        # in place: an upright image is not copied (exif_transpose copies it otherwise; so did convert to the
        # same mode and np.asarray: ~18 ms of a 185 DPI A4 page's ~40, in the batch job and Serve's ingress)
        ImageOps.exif_transpose(im, in_place=True)
        frame = im if im.mode == "RGB" else im.convert("RGB")
        scale = 1.0
        if w * h > cfg.max_pixels:
            scale = math.sqrt(cfg.max_pixels / (w * h))
            fw, fh = frame.size  # after the EXIF turn: a portrait photo stored landscape keeps its shape
            frame = frame.resize((max(1, int(fw * scale)), max(1, int(fh * scale))), Image.LANCZOS)
        pixels = np.frombuffer(frame.tobytes(), dtype=np.uint8).reshape(frame.height, frame.width, 3)
        return pixels, dpi * scale, scale
