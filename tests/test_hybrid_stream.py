"""The hybrid stream: the two pools at work side by side, real PaddleOCR and real vLLM (CPU build, tiny model).

What must hold: a row the VLM does not read never waits for it, so PaddleOCR's rows reach the
writer, and the disk, while vLLM is still starting and while its pages are still being read; and
every page still has exactly one row.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.report import read_pages
from tests.conftest import REPO, needs_vllm, text_images, tiny_vlm_config

pytestmark = needs_vllm


def vertical_pages(directory: Path, n: int) -> list[Path]:
    """n distinct vertical Chinese pages (the sample, cropped by a few pixels each)."""
    directory.mkdir(parents=True, exist_ok=True)
    src = Image.open(REPO / "samples" / "vertical_zh.jpg").convert("RGB")
    out = []
    for k in range(n):
        out.append(directory / f"vertical_{k}.png")
        src.crop((k, k, src.width - k, src.height - 2 * k)).save(out[-1])
    return out


class DiskWatch:
    """Polls OUT_DIR/pages: when each engine's first row could be read from a file on disk."""

    def __init__(self, out: Path):
        self.out = out
        self.first: dict[str, float] = {}
        self.seen: set[Path] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            for f in sorted((self.out / "pages").glob("*.parquet")) if (self.out / "pages").is_dir() else []:
                if f in self.seen:
                    continue
                try:
                    engines = pq.read_table(f, columns=["engine"])["engine"].to_pylist()
                except Exception:  # still being written: next round
                    continue
                self.seen.add(f)
                for e in engines:
                    self.first.setdefault(e, time.time())
            time.sleep(0.2)

    def close(self):
        self.stop.set()
        self.thread.join(5)


def test_paddle_rows_are_written_while_the_vlm_starts_and_reads(tiny_vlm_dir, ray_local, tmp_path):
    paddle = text_images(tmp_path / "in" / "text", 6)
    vlm = vertical_pages(tmp_path / "in" / "vertical", 4)
    # The VLM's pages are slow on purpose: 300 tokens each (random weights, no early stop).
    config = RunConfig.model_validate({
        "mode": "hybrid", "rows_per_file": 1, "hybrid": {"vlm_routes": ["vertical"], "escalate": False},
        "vlm": tiny_vlm_config(tiny_vlm_dir, max_tokens=300, ignore_eos=True, repeat_max_pattern_tokens=0, max_retries=0),
    })
    watch = DiskWatch(tmp_path / "out")
    try:
        plan = run_job([str(p) for p in paddle + vlm], tmp_path / "out", config)
    finally:
        watch.close()

    rows = read_pages(tmp_path / "out").to_pylist()
    assert len(rows) == plan.total_pages == 10 and len({r["page_id"] for r in rows}) == 10
    by_engine = {e: sorted(Path(r["source"]).name for r in rows if r["engine"] == e) for e in ("paddleocr", "vlm")}
    assert by_engine == {"paddleocr": sorted(p.name for p in paddle), "vlm": sorted(p.name for p in vlm)}
    assert all(r["vlm_output_tokens"] == 300 for r in rows if r["engine"] == "vlm")

    t = plan.timeline
    (ready,) = t["vlm_ready"]
    paddle_first, paddle_last = t["rows_by_engine"]["paddleocr"]
    vlm_first, _ = t["rows_by_engine"]["vlm"]
    # PaddleOCR's rows reached the writer before vLLM was up, and were on disk by then
    assert paddle_first < ready and watch.first["paddleocr"] < ready
    # ... and all of them before the first VLM page was done: none waited behind the VLM's pages
    assert paddle_last < vlm_first
    assert plan.summary()["vlm_engine_up_seconds"][0] > 0
    (phases,) = plan.summary()["vlm_engine_start_phases"]  # where the start went, for the report
    assert phases["build_engine"] > 0 and phases["import_vllm"] >= 0 and phases["process_start"] > 0, phases
    assert phases["engine_process"] == "forkserver", phases  # vLLM's engine core forked from the preloaded server


def test_paddle_actors_yield_the_cpu_to_the_vlm_in_every_thread():
    """hybrid.paddle_nice: every thread of the process, those already running and those started after."""
    import subprocess
    import sys

    code = """
import os, threading
from actors.paddle_ocr import lower_priority
def nice(tid=0):
    return os.getpriority(os.PRIO_PROCESS, tid)
base = nice()
go = threading.Event(); seen = {}
early = threading.Thread(target=lambda: (go.wait(), seen.__setitem__('early', nice(threading.get_native_id()))))
early.start()
lower_priority(7)
late = threading.Thread(target=lambda: seen.__setitem__('late', nice(threading.get_native_id())))
late.start(); late.join(); go.set(); early.join()
print(base, nice(), seen['early'], seen['late'])
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    base, main, early, late = map(int, out.stdout.split())
    assert (main, early, late) == (base + 7,) * 3, out
    from pipeline.config import HybridConfig

    assert HybridConfig().paddle_nice == 10
