"""Escalation hand-off between the pools: what PaddleOCR leaves for the VLM keeps its pixels (real PaddleOCR, no Ray)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from actors.paddle_ocr import PaddleOcrPredictor
from actors.vlm import needs_vlm
from pipeline.config import RunConfig


def test_pages_the_vlm_will_read_keep_their_pixels():
    # A page PaddleOCR finds no line on has no confidence: the VLM stage escalates it, so its
    # pixels must survive the PaddleOCR stage (they did not: the VLM stage then failed on b"").
    blank = np.full((120, 200, 3), 255, np.uint8)
    row = {"page_id": "d:0", "route": "horizontal", "engine": "", "error": None, "image": blank.tobytes(), "width": 200,
           "height": 120, "text": None, "lines_json": None, "confidence": None, "paddle_confidence": None,
           "model": None, "seconds_ocr": None}
    batch = pd.DataFrame([row, {**row, "page_id": "d:1", "route": "vertical"}])
    predictor = PaddleOcrPredictor(RunConfig().model_dump(), skip_routes=("vertical",), keep_pixels_below=0.9)
    out = predictor(batch)
    assert out.at[0, "engine"] == "paddleocr" and pd.isna(out.at[0, "confidence"])
    assert list(needs_vlm(out, True, 0.9)) == [True, True]
    assert out.at[0, "image"] == blank.tobytes() and out.at[1, "image"] == blank.tobytes()
    # without escalation only the VLM's routes keep pixels
    out = PaddleOcrPredictor(RunConfig().model_dump(), skip_routes=("vertical",))(pd.DataFrame([row, {**row, "route": "vertical"}]))
    assert out.at[0, "image"] == b"" and out.at[1, "image"] == blank.tobytes()
