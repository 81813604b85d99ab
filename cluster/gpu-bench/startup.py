"""Where a PaddleOCR actor's start-up goes: one process, or N at once (as a pool's actors start).

    python cluster/gpu-bench/startup.py [--config configs/gpu.yaml] [--procs 10] [--set paddle.x=y ...]

Each process times its imports, paddleocr's pipeline, the reader's sessions, the layout/table models
and its first two pages (the first pays cuDNN's set-up); prints one JSON line per process and the
slowest one's phases. Without Ray, so the worker's own start is not in it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one(config: str, sets: list[str]) -> dict:
    t = {"start": time.perf_counter()}
    sys.path.insert(0, ROOT)
    import numpy as np

    from actors.paddle_imports import lean_paddleocr_imports
    from actors.paddle_ocr import PaddleOcrPredictor
    from pipeline.config import load_config

    t["import_actor"] = time.perf_counter()
    lean_paddleocr_imports()
    import paddleocr  # noqa: F401

    t["import_paddleocr"] = time.perf_counter()
    cfg = load_config(config, dict(s.split("=", 1) for s in sets))
    predictor = PaddleOcrPredictor(cfg.model_dump())
    t["predictor"] = time.perf_counter()
    page = np.full((2200, 1700, 3), 255, np.uint8)
    for k in range(30):
        page[100 + 60 * k : 130 + 60 * k, 150:1500:7] = 0
    predictor.read([page])
    t["first_page"] = time.perf_counter()
    predictor.read([page])
    t["second_page"] = time.perf_counter()
    names = list(t)
    return {b: round(t[b] - t[a], 2) for a, b in zip(names, names[1:])} | {"total": round(t[names[-1]] - t["start"], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/gpu.yaml")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.config, args.set)), flush=True)
        return
    cmd = [sys.executable, __file__, "--one", "--config", args.config] + [x for s in args.set for x in ("--set", s)]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(args.procs)]
    rows = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"procs": args.procs, "wall": round(time.perf_counter() - start, 2), "slowest": max(rows, key=lambda r: r["total"])}))


if __name__ == "__main__":
    main()
