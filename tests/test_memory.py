"""Memory of a PaddleOCR actor on a CPU (issue 11: a 2-core `hybridocr run` within 3 GB).

Each reader runs in its own Python process (ONNX Runtime's arenas and the imported modules are per
process), reads the same dense 185 DPI pages with real PP-OCRv5 weights, and reports its resident
memory after the pages, whether torch was imported, and the text it read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.bench import synthetic_pages

READ = """
import json, sys
import numpy as np
from PIL import Image
from actors.paddle_ocr import PaddleOcrPredictor
from pipeline.config import RunConfig

shrink, paths = sys.argv[1] == "1", sys.argv[2:]
reader = PaddleOcrPredictor(RunConfig.model_validate({"paddle": {"cpu_arena_shrink": shrink}}).model_dump(), cpu_threads=2)
texts = []
for path in paths:
    page = np.asarray(Image.open(path).convert("RGB"))
    texts.append("".join(line.text for line in reader.read([np.ascontiguousarray(page[:, :, ::-1])])[0]))
rss = int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
loaded = {m: m in sys.modules for m in ("torch", "transformers", "modelscope", "huggingface_hub")}
from paddlex.inference.utils.official_models import official_models  # a download would ask it: the real one loads
real = type(official_models.get_model_path.__self__).__name__
print(json.dumps({"rss_mib": rss, **loaded, "texts": texts, "official_models": real}))
"""


@pytest.fixture(scope="module")
def dense_pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("dense")
    return synthetic_pages(3, d, 185)


def read_in_process(shrink: bool, pages: list[str]) -> dict:
    root = Path(__file__).resolve().parents[1]
    # without the CPU-vLLM test work-around's sitecustomize (actors/torchvision_cpu.py), which imports
    # torch at every interpreter start once a test has started vLLM
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and "hybridocr-tvpatch" not in p]
    out = subprocess.run([sys.executable, "-c", READ, "1" if shrink else "0", *pages], cwd=root,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cpu_reader_gives_its_arenas_back_and_never_imports_torch(dense_pages):
    kept = read_in_process(False, dense_pages)
    shrunk = read_in_process(True, dense_pages)
    # the same text either way: shrinking changes where memory lives, not what is read
    assert shrunk["texts"] == kept["texts"] and all(len(t) > 1000 for t in kept["texts"])
    # the arenas keep detection's and recognition's peaks (~1.3 GB on these pages); shrunk, they give them back
    assert shrunk["rss_mib"] < kept["rss_mib"] - 500, (shrunk["rss_mib"], kept["rss_mib"])
    # paddlex -> modelscope's logger would import torch (~230 MB) for a question with a known answer
    assert not shrunk["torch"] and not kept["torch"]
    # paddlex's model hosters (transformers, modelscope, huggingface_hub: ~0.9 s of an actor's start) are
    # not imported with local weights, and are there the moment a download needs them
    assert not any(kept[m] for m in ("transformers", "modelscope", "huggingface_hub"))
    assert kept["official_models"] == "_ModelManager"
