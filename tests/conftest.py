"""Shared fixtures: the evaluation pages beside the checkout, a real local Ray, bad input files."""

from __future__ import annotations

import functools
import io
import os
import socket
import struct
import zlib
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(os.environ.get("HYBRIDOCR_EVAL", REPO.parent / "shared" / "eval"))
# vLLM's CPU engine (tests only): set before Ray starts so that its workers inherit them.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache
os.environ.setdefault("VLLM_CACHE_ROOT", str(Path(os.environ.get("TMPDIR", "/tmp")) / "hybridocr-test-vllm-cache"))


@functools.lru_cache(maxsize=1)
def vllm_missing() -> str | None:
    """Why vLLM cannot run here, or None. CI installs vllm-cpu (cluster/install.sh VLM=cpu)."""
    try:
        from actors.vlm import patch_cpu_torchvision

        patch_cpu_torchvision()
        import vllm  # noqa: F401
    except Exception as e:  # ImportError, or a torch/torchvision mismatch
        return f"vllm not importable ({type(e).__name__}: {str(e)[:120]}); CI installs vllm-cpu"
    return None


needs_vllm = pytest.mark.skipif(bool(vllm_missing()), reason=vllm_missing() or "")


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    """The tiny random Qwen2.5-VL, built once per test session (a few seconds, no network)."""
    if vllm_missing():
        pytest.skip(vllm_missing())
    from tests.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.getbasetemp() / "tiny-qwen2.5-vl")


def tiny_vlm_config(model_dir: Path, **overrides) -> dict:
    """VlmConfig fields for the tiny model on 2 CPU cores: small images, few tokens."""
    return {
        "model": str(model_dir), "dtype": "bfloat16", "enforce_eager": True, "max_model_len": 1024, "max_num_seqs": 8,
        "min_pixels": 16 * 28 * 28, "max_pixels": 64 * 28 * 28, "max_tokens": 8, "max_retries": 1,
        # vLLM's CPU backend refuses to start unless this share of the node's memory is free (its KV
        # cache is VLLM_CPU_KVCACHE_SPACE above): 0.9 fails as soon as PaddleOCR actors run beside it
        "gpu_memory_utilization": 0.2, **overrides,
    }


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    if not EVAL.is_dir():
        pytest.skip(f"evaluation pages not found at {EVAL} (set HYBRIDOCR_EVAL)")
    return EVAL


@pytest.fixture(scope="session")
def ray_local():
    """One embedded local Ray for the whole session, as `hybridocr run` starts it."""
    import ray

    from pipeline.config import RunConfig
    from pipeline.job import init_ray

    init_ray(RunConfig())
    yield ray
    ray.shutdown()


def text_pdf(path: Path, pages: list[str], rotate: int = 0) -> Path:
    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page(width=595, height=842)
        page.insert_text((72, 100), text, fontsize=14)
        if rotate:
            page.set_rotation(rotate)
    doc.save(path)
    return path


def huge_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that claims width x height pixels (valid header, tiny body): decoding it would need GBs."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


@pytest.fixture()
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    return make_bad_inputs(tmp_path / "bad")


def make_bad_inputs(d: Path) -> dict[str, Path]:
    """One file for each kind of bad input a corpus contains, keyed by what is wrong with it."""
    d.mkdir(parents=True)
    good = text_pdf(d / "good.pdf", ["Hello"] * 3)
    corrupt = d / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.7\nthis is not a pdf body at all\n" * 3)
    enc = pymupdf.open()
    enc.new_page().insert_text((72, 72), "secret")
    enc.save(d / "encrypted.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="o", user_pw="u")
    zero = d / "zero_pages.pdf"
    zero.write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    truncated = d / "truncated.pdf"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    unreadable = d / "unreadable.png"
    unreadable.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    huge = huge_png_header(d / "huge.png", 20000, 20000)
    empty = d / "empty.jpg"
    empty.write_bytes(b"")
    Image.new("RGB", (300, 200), "white").save(d / "blank.png")
    html = d / "web_page.pdf"  # a browser's "save as" under a document's name: MuPDF would render it
    html.write_text("<!DOCTYPE html>\n<html><head><title>Scan 12</title></head><body><p>Not a PDF</p></body></html>\n")
    jpeg = io.BytesIO()
    Image.effect_noise((400, 300), 60).convert("RGB").save(jpeg, "JPEG")
    (d / "cut_short.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 3])
    return {
        "corrupt": corrupt, "encrypted": d / "encrypted.pdf", "zero_pages": zero, "truncated": truncated,
        "unreadable": unreadable, "huge": huge, "empty": empty, "blank": d / "blank.png",
        "html_as_pdf": html, "truncated_jpeg": d / "cut_short.jpg",
    }


WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


def page_row(path: Path, page_id: str = "d:0", route: str = "horizontal") -> dict:
    """A rendered page as the PaddleOCR predictor takes it (the job's row before OCR): the image file's RGB pixels."""
    import numpy as np

    image = np.asarray(Image.open(path).convert("RGB"))
    return {"page_id": page_id, "route": route, "engine": "", "error": None, "image": image.tobytes(),
            "width": image.shape[1], "height": image.shape[0]}


def text_images(directory: Path, n: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    font = ImageFont.load_default(size=28)
    paths = []
    for i in range(n):
        im = Image.new("RGB", (700, 300), "white")
        draw = ImageDraw.Draw(im)
        for row in range(3):
            draw.text((30, 40 + 80 * row), f"page {i} line {row} {WORDS[(i + row) % len(WORDS)]}", fill="black", font=font)
        paths.append(directory / f"page_{i:02d}.png")
        im.save(paths[-1])
    return paths


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# tests/test_object_store.py reads and writes through an S3-compatible server on loopback (moto's,
# started there). Ray's workers take their environment when the local Ray starts, so the endpoint
# and throw-away credentials are set here, before any test starts it: the same variables a user
# sets for MinIO or another S3-compatible store (pyarrow.fs reads AWS_ENDPOINT_URL).
S3_PORT = free_ports(1)[0]
os.environ.update({
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{S3_PORT}", "AWS_ACCESS_KEY_ID": "hybridocr-test",
    "AWS_SECRET_ACCESS_KEY": "hybridocr-test", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
})


def deployments(built) -> set[str]:
    """The app's graph: each deployment and those bound into it."""
    names, todo = set(), [built]
    while todo:
        d = todo.pop()._bound_deployment
        names.add(d.name)
        todo += [a for a in (*d.init_args, *d.init_kwargs.values()) if hasattr(a, "_bound_deployment")]
    return names


def scene_photo(path: Path, words: list[str], seed: int = 0, dont_care: int = 1) -> list[str]:
    """A street-scene-like photo: coloured, noisy background, words on signs at small angles, and
    `dont_care` scribbles marked `###`. Writes `path` (JPEG) and returns its ICDAR 2015 truth lines."""
    import math

    import numpy as np

    rng = np.random.default_rng(seed)
    w, h = 1000, 700
    grad = np.linspace(0, 1, h)[:, None, None] * rng.uniform(40, 120, 3) + rng.uniform(60, 140, 3)
    base = np.clip(grad + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(base)
    font_file = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
    truth = []
    for k, word in enumerate(words + ["~" * 6] * dont_care):
        size = int(rng.integers(44, 64))
        font = ImageFont.truetype(str(font_file), size) if font_file.exists() else ImageFont.load_default(size=size)
        x0, y0, x1, y1 = font.getbbox(word)
        pad = 14
        sign = Image.new("RGBA", (x1 - x0 + 2 * pad, y1 + 2 * pad), tuple(int(v) for v in rng.integers(200, 256, 3)) + (255,))
        ImageDraw.Draw(sign).text((pad - x0, pad), word, font=font, fill=tuple(int(v) for v in rng.integers(0, 60, 3)))
        angle = float(rng.uniform(-8, 8))
        rotated = sign.rotate(angle, expand=True, resample=Image.BICUBIC)
        px, py = 40 + (k % 2) * 470 + int(rng.integers(0, 40)), 40 + (k // 2) * 160 + int(rng.integers(0, 30))
        im.paste(rotated, (px, py), rotated)
        # the word's own box inside the sign, rotated as PIL does (counter-clockwise, about the centre)
        cx, cy, a = sign.width / 2, sign.height / 2, math.radians(angle)
        ox, oy = (rotated.width - sign.width) / 2, (rotated.height - sign.height) / 2
        start = 0
        for token in word.split(" "):  # one truth line per word, as ICDAR 2015 has
            a0 = pad - x0 + font.getlength(word[:start]) if start else pad
            a1 = pad - x0 + font.getlength(word[: start + len(token)])
            start += len(token) + 1
            quad = []
            for qx, qy in ((a0, pad + y0), (a1, pad + y0), (a1, pad + y1), (a0, pad + y1)):
                dx, dy = qx - cx, qy - cy
                rx, ry = cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)
                quad += [round(px + ox + rx), round(py + oy + ry)]
            truth.append(",".join(map(str, quad)) + "," + (token if k < len(words) else "###"))
    im.convert("RGB").save(path, quality=88)
    return truth
