"""Stage 3 - text layer: take a born-digital page's own text when it can be trusted.

A text layer is refused when it is nearly empty, when many glyphs are replacement characters,
control or private-use code points (fonts without a ToUnicode map), `(cid:NN)` escapes, or
mojibake (UTF-8 read as Latin-1: "Ã©", "â€™").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import pymupdf

from pipeline.config import TextLayerConfig
from pipeline.types import OcrLine

_MOJIBAKE = re.compile(r"[ÃÂâ][\u0080-\u00bf€™œ]|Ã.|â€")
_CID = re.compile(r"\(cid:\d+\)")


@dataclass
class TextLayer:
    text: str
    lines: list[OcrLine]
    chars: int
    bad_ratio: float
    usable: bool
    reason: str


def bad_glyph_ratio(text: str) -> float:
    """Share of characters that signal a broken text layer."""
    chars = [c for c in text if not c.isspace()]
    if not chars:
        return 0.0
    bad = 0
    for c in chars:
        cat = unicodedata.category(c)
        if c == "\ufffd" or cat in ("Co", "Cs", "Cn") or (cat == "Cc"):
            bad += 1
    bad += 2 * len(_MOJIBAKE.findall(text)) + 4 * len(_CID.findall(text))
    return min(1.0, bad / len(chars))


def judge_text(text: str, cfg: TextLayerConfig) -> tuple[bool, str, int, float]:
    """(usable, reason, characters, broken-glyph ratio) of a page's extracted text."""
    chars = sum(1 for c in text if not c.isspace())
    ratio = bad_glyph_ratio(text)
    if cfg.mode == "off":
        return False, "text_layer.mode is off", chars, ratio
    if cfg.mode == "force":
        return chars > 0, "forced" if chars else "no text layer", chars, ratio
    if chars < cfg.min_chars:
        return False, f"only {chars} characters", chars, ratio
    if ratio > cfg.max_bad_ratio:
        return False, f"{ratio:.0%} broken glyphs (mojibake, private-use or missing ToUnicode)", chars, ratio
    return True, "usable", chars, ratio


def read_text_layer(page: pymupdf.Page, cfg: TextLayerConfig, dpi: float) -> TextLayer:
    """Extract text and line boxes (in pixels at `dpi`) and judge whether OCR can be skipped."""
    text = page.get_text("text")
    scale = dpi / 72.0
    lines: list[OcrLine] = []
    for block in page.get_text("dict")["blocks"]:
        for line in block.get("lines", []):
            line_text = "".join(span["text"] for span in line["spans"]).strip()
            if not line_text:
                continue
            x0, y0, x1, y1 = (v * scale for v in line["bbox"])
            lines.append(OcrLine([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], line_text, 1.0))
    usable, reason, chars, ratio = judge_text(text, cfg)
    return TextLayer(text.strip(), lines, chars, ratio, usable, reason)
