"""Regenerate the bundled sample pages (made by this project; free to ship).

    python samples/make_samples.py

- report.pdf: a born-digital PDF with a text layer (takes the text-layer path)
- scan_two_columns.jpg: a two-column English page as an image (horizontal route, reading order)
- vertical_zh.jpg: vertical traditional Chinese from the Analects (public domain), columns right to left
- table.jpg: a ruled table (table route)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image

HERE = Path(__file__).resolve().parent
DPI = 150
BODY = (
    "Batch OCR turns page images into text that can be searched, indexed and analysed. "
    "Each page is rendered, classified and read by the engine that suits it best. "
    "Simple printed pages go to a fast detector and recogniser; hard pages such as "
    "vertical classical Chinese, photos or handwriting can go to a vision-language model. "
)
ANALECTS = (
    "子曰學而時習之不亦說乎有朋自遠方來不亦樂乎人不知而不慍不亦君子乎"
    "有子曰其為人也孝弟而好犯上者鮮矣不好犯上而好作亂者未之有也君子務本本立而道生"
    "孝弟也者其為仁之本與子曰巧言令色鮮矣仁曾子曰吾日三省吾身為人謀而不忠乎"
    "與朋友交而不信乎傳不習乎"
)


def save_png(page: pymupdf.Page, name: str, noise: float = 6.0) -> None:
    pix = page.get_pixmap(dpi=DPI, colorspace=pymupdf.csGRAY)
    img = np.frombuffer(pix.samples, np.uint8).reshape(pix.height, pix.width).astype(np.float32)
    img += np.random.default_rng(0).normal(0, noise, img.shape)  # a little scanner grain
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(HERE / name, quality=80)


def report_pdf() -> None:
    doc = pymupdf.open()
    for n in range(2):
        page = doc.new_page(width=595, height=842)
        page.insert_text((72, 90), f"hybridocr sample report, page {n + 1}", fontsize=18)
        page.insert_textbox(pymupdf.Rect(72, 120, 523, 760), BODY * 3, fontsize=11)
    doc.save(HERE / "report.pdf")


def two_columns() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    page.insert_text((72, 80), "Reading order on a two-column page", fontsize=18)
    page.insert_textbox(pymupdf.Rect(72, 110, 290, 780), "Left column. " + BODY * 2, fontsize=11)
    page.insert_textbox(pymupdf.Rect(310, 110, 523, 780), "Right column. " + BODY * 2, fontsize=11)
    save_png(page, "scan_two_columns.jpg")


def vertical_zh() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=420, height=595)
    size, per_col = 22, 20
    x = 420 - 50
    for start in range(0, len(ANALECTS), per_col):
        for i, ch in enumerate(ANALECTS[start:start + per_col]):
            page.insert_text((x, 60 + i * (size + 3)), ch, fontsize=size, fontname="china-t")
        x -= size + 14
    save_png(page, "vertical_zh.jpg")


def table() -> None:
    doc = pymupdf.open()
    page = doc.new_page(width=595, height=420)
    rows = [("Engine", "Pages", "Pages/min", "Confidence"), ("PaddleOCR", "120", "48.5", "0.91"),
            ("Qwen2.5-VL", "30", "12.0", "0.88"), ("Text layer", "300", "900.0", "1.00"), ("Total", "450", "", "")]
    x0, y0, w, h = 60, 60, 118, 40
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            rect = pymupdf.Rect(x0 + c * w, y0 + r * h, x0 + (c + 1) * w, y0 + (r + 1) * h)
            page.draw_rect(rect, color=(0, 0, 0), width=1)
            page.insert_text((rect.x0 + 8, rect.y0 + 26), cell, fontsize=12)
    save_png(page, "table.jpg", noise=3.0)


if __name__ == "__main__":
    report_pdf()
    two_columns()
    vertical_zh()
    table()
    print("samples written to", HERE)
