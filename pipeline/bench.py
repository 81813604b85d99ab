"""`hybridocr bench`: pages/min of the Ray job against a plain single-process paddleocr loop.

Both read the same pages with the same models and settings on the same machine, in this process:
first the baseline (render each page, then `PaddleOCR.predict` on it, one page at a time, the way
a script calls paddleocr), then the Ray job. Both timings include loading the models; the job's
excludes starting Ray and discovering inputs (reported separately).
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.discover import expand_document
from pipeline.prepare import prepare_page
from pipeline.sources import list_inputs


def baseline_loop(pages: list[dict], config) -> dict:
    """The out-of-the-box way: one PaddleOCR pipeline, one page at a time, default threads."""
    import numpy as np

    from actors.paddle_ocr import load_paddleocr, resolve_device

    start = time.perf_counter()
    ocr = load_paddleocr(config.paddle, resolve_device(config.paddle))
    read = 0
    for row in pages:
        out = prepare_page(row, config)
        if out["engine"] != "" or out["error"]:
            continue
        image = np.frombuffer(out["image"], np.uint8).reshape(out["height"], out["width"], 3)
        ocr.predict([np.ascontiguousarray(image[:, :, ::-1])])
        read += 1
    seconds = time.perf_counter() - start
    del ocr
    gc.collect()
    return {"pages": len(pages), "ocr_pages": read, "seconds": round(seconds, 2), "pages_per_min": round(60 * len(pages) / seconds, 2)}


def ray_job(pages_inputs: list[str], config) -> dict:
    from pipeline.job import run_job
    from pipeline.report import ResourceSampler, build_report

    out = Path(tempfile.mkdtemp(prefix="hybridocr-bench-"))
    sampler = ResourceSampler()
    t0 = time.time()
    plan = run_job(pages_inputs, out, config, force=True, on_progress=lambda *a: sampler.sample())
    seconds = time.time() - plan.started
    report = build_report(out, {"wall_seconds": seconds, "pages_processed": plan.todo_pages, **sampler.summary()})
    return {
        "pages": plan.todo_pages, "seconds": round(seconds, 2), "pages_per_min": round(60 * plan.todo_pages / seconds, 2),
        "startup_and_discovery_seconds": round(plan.started - t0, 2), "actors": plan.actors, "device": plan.device,
        "cpu_threads_per_actor": plan.cpu_threads, "mean_stage_seconds": report["mean_stage_seconds"],
        "cpu_percent": report["cpu_percent"], "peak_memory_mib": report["peak_memory_mib"],
        "peak_gpu_memory_mib": report["peak_gpu_memory_mib"], "routes": report["routes"], "errors": report["errors"],
    }


def main(args) -> int:
    from pipeline.cli import _overrides

    config = load_config(args.config, _overrides(args.set))
    files = list_inputs(args.inputs)
    pages = [p for f in files for p in expand_document({"source": f})]
    if args.pages:
        pages = pages[: args.pages]
        keep = {p["source"] for p in pages}
        files = [f for f in files if f in keep]
    result = {"pages": len(pages), "config": config.model_dump()}
    if not args.skip_baseline:
        result["baseline"] = baseline_loop(pages, config)
        print(f"baseline (plain paddleocr loop): {result['baseline']['pages_per_min']} pages/min", flush=True)
    result["ray_job"] = ray_job(files, config)
    print(f"ray job: {result['ray_job']['pages_per_min']} pages/min "
          f"({result['ray_job']['actors']} actors x {result['ray_job']['cpu_threads_per_actor']} threads, {result['ray_job']['device']})")
    if "baseline" in result:
        result["ratio"] = round(result["ray_job"]["pages_per_min"] / result["baseline"]["pages_per_min"], 3)
        print(f"ratio ray job / baseline: {result['ratio']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
