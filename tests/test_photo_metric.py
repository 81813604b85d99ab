"""Photo class metric (ICDAR 2015 style words): known values, and real PaddleOCR on a generated scene."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.photo_metric import iou, line_words, read_words, score_words, summarize_words
from tests.conftest import scene_photo


def quad(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def test_iou_known_values():
    assert iou(quad(0, 0, 10, 10), quad(0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou(quad(0, 0, 10, 10), quad(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou(quad(0, 0, 10, 10), quad(20, 20, 30, 30)) == 0.0
    diamond = np.array([[5, 0], [10, 5], [5, 10], [0, 5]], dtype=float)  # half the square's area, inside it
    assert iou(quad(0, 0, 10, 10), diamond) == pytest.approx(0.5)
    assert iou(quad(0, 0, 10, 10)[::-1], diamond) == pytest.approx(0.5)  # either winding


def test_lines_cut_into_words_along_the_line():
    words = line_words([{"box": [[0, 0], [110, 0], [110, 10], [0, 10]], "text": "Main Street", "score": 0.9}])
    assert [w.text for w in words] == ["Main", "Street"]
    assert words[0].quad[:, 0].min() == 0 and words[0].quad[:, 0].max() == pytest.approx(40)
    assert words[1].quad[:, 0].min() == pytest.approx(50) and words[1].quad[:, 0].max() == pytest.approx(110)


def test_matching_dont_care_and_end_to_end():
    truth = read_words("\ufeff0,0,40,0,40,10,0,10,Main\n50,0,110,0,110,10,50,10,Street\n0,50,60,50,60,60,0,60,###\n")
    lines = [{"box": [[0, 0], [110, 0], [110, 10], [0, 10]], "text": "Main Strest"},  # one word misread
             {"box": [[2, 50], [58, 50], [58, 60], [2, 60]], "text": "blur"},  # inside ###: not counted
             {"box": [[300, 300], [340, 300], [340, 310], [300, 310]], "text": "ghost"}]  # a false detection
    counts = score_words(truth, line_words(lines))
    assert counts == {"truth_words": 2, "predicted_words": 3, "det_matched": 2, "e2e_matched": 1}
    s = summarize_words([counts, {"truth_words": 2, "predicted_words": 0, "det_matched": 0, "e2e_matched": 0}])
    assert (s["det_precision"], s["det_recall"], s["e2e_recall"]) == (round(2 / 3, 4), 0.5, 0.25)


def test_real_paddleocr_reads_a_scene_photo(tmp_path):
    from actors.paddle_ocr import load_paddleocr, make_reader, recognise
    from pipeline.config import PaddleConfig

    words = ["OPEN", "Bakery", "Main Street", "EXIT"]
    truth = read_words("\n".join(scene_photo(tmp_path / "scene.jpg", words, seed=3)))
    cfg = PaddleConfig()
    ocr = load_paddleocr(cfg, "cpu", 2)
    from PIL import Image

    (lines,) = recognise(make_reader(ocr, cfg, "cpu", 2), [np.asarray(Image.open(tmp_path / "scene.jpg").convert("RGB"))])
    predicted = line_words([{"box": l.box, "text": l.text} for l in lines])
    counts = score_words(truth, predicted)
    assert counts["truth_words"] == 5  # "Main Street" is two words; the ### scribble is not scored
    assert counts["det_matched"] >= 4 and counts["e2e_matched"] >= 4, (counts, [(w.text, w.quad.tolist()) for w in predicted])
