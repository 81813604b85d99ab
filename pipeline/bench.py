"""`hybridocr bench`: pages/min of the Ray job against a baseline on the same pages, same process.

- paddle mode: paddleocr out of the box in one process (its defaults, the same models; render
  each page, `PaddleOCR.predict` on it, one page at a time, the way a script calls paddleocr).
- vlm mode: raw `vllm.LLM.generate` over the same images (sized the same way) with the same
  sampling settings, all pages in one call: what vLLM alone does at best.
Both timings include loading the models; the job's excludes starting Ray and discovering inputs
(reported separately). The job also reports its pool rate (actors × 60 / seconds per page in an
actor: what the pool sustains once started). `--profile` runs one reader in this process instead
and prints seconds per step (detection, crops, recognition, and the inference inside them).
`--synthetic N` makes N distinct A4 pages at the configured DPI, since repeated images hit vLLM's
prefix and encoder caches and inflate its pages/min about threefold.
"""

from __future__ import annotations

import gc
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pipeline.config import load_config
from pipeline.discover import expand_document
from pipeline.pixels import page_pixels
from pipeline.prepare import prepare_page
from pipeline.sources import list_inputs


def baseline_loop(pages: list[dict], config) -> dict:
    """The out-of-the-box way: paddleocr's defaults (same models), one page at a time."""
    from actors.paddle_ocr import load_paddleocr, resolve_device

    start = time.perf_counter()
    ocr = load_paddleocr(config.paddle, resolve_device(config.paddle), stock=True)
    read = 0
    for row in pages:
        out = prepare_page(row, config)
        if out["engine"] != "" or out["error"]:
            continue
        ocr.predict([np.ascontiguousarray(page_pixels(out)[:, :, ::-1])])
        read += 1
    seconds = time.perf_counter() - start
    del ocr
    gc.collect()
    return {"pages": len(pages), "ocr_pages": read, "seconds": round(seconds, 2), "pages_per_min": round(60 * len(pages) / seconds, 2)}


def ocr_pages(pages: list[dict], config) -> list[tuple[str, np.ndarray]]:
    """(page_id, prepared pixels) of the pages an OCR engine would read (rendered here, untimed):
    the id gives each page the token budget the job gives it (raw_vllm)."""
    prepared = (prepare_page(row, config) for row in pages)
    return [(out["page_id"], page_pixels(out)) for out in prepared if out["engine"] == "" and not out["error"]]


def ocr_images(pages: list[dict], config) -> list[np.ndarray]:
    """The prepared pixels of the pages an OCR engine would read (ocr_pages without the ids)."""
    return [im for _, im in ocr_pages(pages, config)]


def profile_reader(pages: list[dict], config) -> dict:
    """One PaddleOCR reader in this process as the actors use it: seconds per step, pages/min, input shapes.

    Pages are rendered first and not timed; `steady_pages_per_min` covers the second half of the
    pages, after the first sight of most input shapes.
    """
    from collections import defaultdict

    from actors.paddle_batched import BatchedReader, time_runners
    from actors.paddle_ocr import load_reader, recognise, resolve_device

    images = ocr_images(pages, config)
    device = resolve_device(config.paddle)
    start = time.perf_counter()
    ocr, read = load_reader(config.paddle, device, dpi=config.render.dpi)
    if isinstance(read, BatchedReader):
        timings = read.timings
    else:
        timings = defaultdict(float)
        time_runners(ocr, timings)
    load = time.perf_counter() - start
    size, marks = config.paddle.pages_per_call(device), []
    start = time.perf_counter()
    for i in range(0, len(images), size):
        recognise(read, images[i : i + size])
        marks.append((i + len(images[i : i + size]), time.perf_counter() - start))
    seconds = time.perf_counter() - start
    half = next((m for m in marks if m[0] >= len(images) / 2), marks[-1]) if marks else (0, 0.0)
    steady = (len(images) - half[0]) / max(seconds - half[1], 1e-9)
    result = {
        "reader": type(read).__name__ if isinstance(read, BatchedReader) else "PaddleOCR.predict", "device": device,
        "pages": len(images), "load_seconds": round(load, 2), "seconds": round(seconds, 2),
        "pages_per_min": round(60 * len(images) / max(seconds, 1e-9), 2), "steady_pages_per_min": round(60 * steady, 2),
        "seconds_per_page": {k: round(v / max(len(images), 1), 4) for k, v in sorted(timings.items()) if k != "pages"},
    }
    if isinstance(read, BatchedReader):
        result["input_shapes"] = {k: len(v) for k, v in read.shapes.items()}
    return result


def raw_vllm(pages: list[dict], config) -> dict:
    """All pages in one `LLM.generate` call, no retries: raw vLLM on the same images and settings,
    each page with the token budget the job gives it (`vlm.max_tokens_spread`)."""

    from actors.vlm import build_request, load_engine, page_max_tokens, sampling_params

    pairs = ocr_pages(pages, config)
    images = [im for _, im in pairs]
    start = time.perf_counter()
    engine = load_engine(config.vlm)
    loaded = time.perf_counter()
    params = [sampling_params(config.vlm, config.vlm.temperature, 1, max_tokens=page_max_tokens(config.vlm, pid)) for pid, _ in pairs]
    tokenizer = engine.get_tokenizer()
    requests = [build_request(im, config.vlm, tokenizer) for im in images]
    outs = engine.generate(requests, params, use_tqdm=False)
    seconds = time.perf_counter() - start
    tokens = sum(len(o.outputs[0].token_ids) for o in outs)
    del engine
    gc.collect()
    return {"pages": len(images), "seconds": round(seconds, 2), "load_seconds": round(loaded - start, 2),
            "pages_per_min": round(60 * len(images) / seconds, 2), "output_tokens": tokens,
            "prompt_tokens_per_page": round(sum(len(o.prompt_token_ids) for o in outs) / max(len(outs), 1))}


_WORDS = "page text batch scan ocr ray engine column table report figure line number word".split()
_HANZI = "天地玄黃宇宙洪荒日月盈昃辰宿列張寒來暑往秋收冬藏閏餘成歲律呂調陽雲騰致雨露結為霜金生麗水玉出崑岡劍號巨闕珠稱夜光果珍李柰菜重芥薑"


def degrade(path: Path, i: int) -> None:
    """A poor scan of the page (seeded by i): scanned at a third of the resolution, blurred, faded
    ink on grey paper, sensor noise and a slight skew."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(i)
    im = Image.open(path).convert("L").rotate(float(rng.uniform(-1.5, 1.5)), fillcolor=255, resample=Image.Resampling.BICUBIC)
    w, h = im.size
    low = float(rng.uniform(0.28, 0.36))
    im = im.resize((int(w * low), int(h * low)), Image.Resampling.BOX).resize((w, h), Image.Resampling.BILINEAR)
    im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.8, 1.4))))
    a = np.asarray(im, dtype=np.float32)
    a = 255 - (255 - a) * float(rng.uniform(0.6, 0.8))  # faded ink
    a = a * 0.9 + rng.normal(0, 18, a.shape)  # grey paper, noise
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).convert("RGB").save(path)


def synthetic_page(i: int, directory: Path, dpi: int, vertical: bool = False, degraded: bool = False) -> str:
    """Page i of the synthetic set: an A4 page as a PNG image (no text layer) with its own text.

    Horizontal: ~420 Latin words (the classifier routes it `horizontal`). Vertical: traditional
    Chinese in right-to-left columns, 16 columns of 38 characters (routed `vertical`). Degraded:
    a horizontal page as a poor scan (`degrade`), which PaddleOCR reads with low confidence.
    """
    import pymupdf

    doc = pymupdf.open()
    page = doc.new_page(width=595, height=842)
    if vertical:
        import random

        size, rows = 16, 38
        pick = random.Random(i)  # the page's own text: every vertical page distinct (content-keyed runs read copies once)
        for c in range(16):
            x = 535 - size - c * size * 1.8
            for r in range(rows):
                page.insert_text((x, 106 + r * size * 1.15), pick.choice(_HANZI), fontsize=size, fontname="china-t")
    else:
        page.insert_text((60, 70), f"Benchmark page {i}", fontsize=16)
        body = " ".join(_WORDS[(i * 7 + k * 3) % len(_WORDS)] + str((i * 31 + k) % 997) for k in range(420))
        page.insert_textbox(pymupdf.Rect(60, 90, 535, 800), body, fontsize=10)
    path = directory / f"bench_{i:04d}{'_v' if vertical else '_d' if degraded else ''}.png"
    page.get_pixmap(dpi=dpi).save(path)
    if degraded and not vertical:
        degrade(path, i)
    return str(path)


def spread(n: int, share: float, offset: float = 0.0) -> list[bool]:
    """Which of n items are in a share of them, spread evenly (offset shifts the pattern)."""
    return [int((i + 1) * share + offset) > int(i * share + offset) for i in range(n)]


def synthetic_pages(n: int, directory: Path, dpi: int, vertical_share: float = 0.0, degraded_share: float = 0.0) -> list[str]:
    """N distinct A4 pages (made in parallel processes); `vertical_share` of them vertical and
    `degraded_share` of the others poor scans, spread evenly."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    directory.mkdir(parents=True, exist_ok=True)
    vertical = spread(n, vertical_share)
    degraded = [d and not v for d, v in zip(spread(n, degraded_share, 0.5), vertical)]
    with ProcessPoolExecutor(max(1, min(os.cpu_count() or 1, n // 8))) as pool:
        return list(pool.map(synthetic_page, range(n), [directory] * n, [dpi] * n, vertical, degraded, chunksize=8))


def pool_rate(workers: int, mean_seconds_per_page: float | None) -> float | None:
    """What the OCR actors sustain while busy: workers x 60 / mean seconds per page inside one.

    Leaves out the actors' start and the pipeline's fill and drain; the page count decides how
    close a whole run comes to it. (Rates read off the progress line are not used: pages reach
    the writer in bursts.)
    """
    return round(60 * workers / mean_seconds_per_page, 2) if workers and mean_seconds_per_page else None


def writer_rate(plan) -> float | None:
    """Pages/min at the writer between its first and its last row (the pipeline's sustained rate)."""
    spans = (plan.timeline or {}).get("rows_by_engine") or {}
    if not spans:
        return None
    first, last = min(a for a, _ in spans.values()), max(b for _, b in spans.values())
    return round(60 * plan.todo_pages / (last - first), 2) if last > first else None


def ray_job(pages_inputs: list[str], config) -> dict:
    from pipeline.job import run_job
    from pipeline.report import ResourceSampler, build_report, read_pages

    out = Path(tempfile.mkdtemp(prefix="hybridocr-bench-"))
    sampler = ResourceSampler()
    t0 = time.time()
    plan = run_job(pages_inputs, out, config, force=True, on_progress=lambda *a: sampler.sample())
    seconds = time.time() - plan.started
    report = build_report(out, {"wall_seconds": seconds, "pages_processed": plan.todo_pages, **sampler.summary()})
    pool = pool_rate(plan.actors if config.mode == "paddle" else config.vlm.replicas,
                     report["mean_stage_seconds"]["seconds_ocr"]) if config.mode != "hybrid" else None
    engine_seconds = report["engine_seconds_ocr"]
    rows = read_pages(out, ["route", "paddle_confidence", "vlm_attempts", "engine"]).to_pylist()
    escalated = [r for r in rows if r["paddle_confidence"] is not None and r["vlm_attempts"] is not None]
    return {
        "mode": config.mode, "pages": plan.todo_pages, "seconds": round(seconds, 2),
        "pages_per_min": round(60 * plan.todo_pages / seconds, 2), "pool_pages_per_min": pool,
        "writer_pages_per_min": writer_rate(plan),
        # the run's time not spent at the pool rate: actors' start, the pipeline's fill and drain
        "start_and_drain_seconds": round(seconds - 60 * plan.todo_pages / pool, 2) if pool else None,
        "startup_and_discovery_seconds": round(plan.started - t0, 2), "actors": plan.actors, "device": plan.device,
        "vlm_device": plan.vlm_device, "plan": plan.summary(),
        "cpu_threads_per_actor": plan.cpu_threads, "mean_stage_seconds": report["mean_stage_seconds"],
        "cpu_percent": report["cpu_percent"], "peak_memory_mib": report["peak_memory_mib"],
        "peak_gpu_memory_mib": report["peak_gpu_memory_mib"], "mean_gpu_utilization_percent": report["mean_gpu_utilization_percent"],
        "routes": report["routes"], "errors": report["errors"], "engines": report["engines"],
        "vlm_route_pages": sum(r["route"] in config.hybrid.vlm_routes for r in rows) if config.mode == "hybrid" else None,
        "escalated": len(escalated), "escalated_won_by_vlm": sum(r["engine"] == "vlm" for r in escalated),
        # hybrid: what each pool sustains on the pages it read (actors x 60 / its seconds per page)
        "pool_pages_per_min_by_engine": {
            "paddleocr": pool_rate(plan.actors, engine_seconds.get("paddleocr")),
            "vlm": pool_rate(config.vlm.replicas, engine_seconds.get("vlm")),
        } if config.mode == "hybrid" else None,
    }


def mixture_bound(vlm_share: float, vlm_rate: float, paddle_rate: float) -> float:
    """Pages/min of running the two pure modes one after the other on their shares of the pages."""
    return round(1 / (vlm_share / vlm_rate + (1 - vlm_share) / paddle_rate), 2)


def compare_hybrid(result: dict, files: list[str], config, args, overrides: dict) -> None:
    """The pure modes on the same pages, and the hybrid against the mixture bound they give."""
    hybrid = result["ray_job"]
    for mode, path in (("paddle", args.paddle_config), ("vlm", args.vlm_config)):
        cfg = load_config(path, {"mode": mode, **overrides}) if path else config.model_copy(update={"mode": mode})
        pure = files[: args.pure_pages] if args.pure_pages else files
        result[f"{mode}_only"] = job = ray_job(pure, cfg)
        print(f"{mode} only: {job['pages_per_min']} pages/min end to end on {job['pages']} pages", flush=True)
    share = hybrid["vlm_route_pages"] / max(hybrid["pages"], 1)
    bound = mixture_bound(share, result["vlm_only"]["pages_per_min"], result["paddle_only"]["pages_per_min"])
    result["mixture"] = {"vlm_share": round(share, 3), "bound_pages_per_min": bound,
                         "hybrid_ratio_to_bound": round(hybrid["pages_per_min"] / bound, 3),
                         "hybrid_vs_paddle_only": round(hybrid["pages_per_min"] / result["paddle_only"]["pages_per_min"], 3),
                         "hybrid_vs_vlm_only": round(hybrid["pages_per_min"] / result["vlm_only"]["pages_per_min"], 3)}
    m = result["mixture"]
    print(f"mixture bound (VLM share {m['vlm_share']}): {bound} pages/min; hybrid {hybrid['pages_per_min']} = "
          f"{m['hybrid_ratio_to_bound']} x the bound, {m['hybrid_vs_paddle_only']} x paddle only, "
          f"{m['hybrid_vs_vlm_only']} x vlm only; escalated {hybrid['escalated']} pages "
          f"({hybrid['escalated_won_by_vlm']} kept the VLM's text)", flush=True)


def main(args, overrides: dict) -> int:
    """`hybridocr bench` (pipeline/cli.py parses the arguments; `overrides` are its --set pairs)."""
    config = load_config(args.config, {**({"mode": args.mode} if args.mode else {}), **overrides})
    inputs = list(args.inputs)
    if args.synthetic:
        inputs.append(str(Path(tempfile.mkdtemp(prefix="hybridocr-pages-"))))
        synthetic_pages(args.synthetic, Path(inputs[-1]), config.render.dpi, args.synthetic_vertical, args.synthetic_degraded)
    files = list_inputs(inputs)
    pages = [p for f in files for p in expand_document({"source": f})]
    if args.pages:
        pages = pages[: args.pages]
        keep = {p["source"] for p in pages}
        files = [f for f in files if f in keep]
    result = {"pages": len(pages), "config": config.model_dump()}
    if getattr(args, "serve", False) or getattr(args, "serve_url", None):
        from pipeline.serve.load import bench_serve, parse_levels

        levels = parse_levels(args.serve_levels)
        result["serve"] = bench_serve(files, config, args.serve_url, levels, batch=ray_job(files, config))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return 0
    if args.profile:
        result["profile"] = prof = profile_reader(pages, config)
        print(f"profile ({prof['reader']}, {prof['device']}): {prof['pages_per_min']} pages/min, "
              f"{prof['steady_pages_per_min']} after warm-up; seconds/page {prof['seconds_per_page']}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2))
        return 0
    if not args.skip_baseline and config.mode != "hybrid":
        if config.mode == "vlm":
            result["baseline"] = raw_vllm(pages, config)
            print(f"baseline (raw vllm.LLM.generate): {result['baseline']['pages_per_min']} pages/min", flush=True)
        else:
            result["baseline"] = baseline_loop(pages[: args.baseline_pages or len(pages)], config)
            print(f"baseline (plain paddleocr loop): {result['baseline']['pages_per_min']} pages/min", flush=True)
    result["ray_job"] = ray_job(files, config)
    job = result["ray_job"]
    if config.mode == "vlm" and "baseline" in result:  # generation alone, no engine start, on both sides
        base = result["baseline"]
        base["generate_pages_per_min"] = round(60 * base["pages"] / (base["seconds"] - base["load_seconds"]), 2)
        print(f"without engine start: raw {base['generate_pages_per_min']}, ray job {job['pool_pages_per_min']} pages/min"
              f" (raw engine start {base['load_seconds']} s)")
    pool = (f", {job['pool_pages_per_min']} in the OCR pool once started ({job['start_and_drain_seconds']} s of "
            f"{job['seconds']} s outside it: start, fill, drain)") if job["pool_pages_per_min"] else ""
    print(f"ray job ({config.mode}): {job['pages_per_min']} pages/min end to end{pool}"
          f" (paddle: {job['actors']} actors x "
          f"{job['cpu_threads_per_actor']} threads on {job['device']}; vlm: {job['vlm_device']})")
    if job["writer_pages_per_min"]:
        print(f"writer: {job['writer_pages_per_min']} pages/min from its first row to its last; plan {job['plan']}")
    if job["pool_pages_per_min_by_engine"]:
        print(f"hybrid: pages per engine {job['engines']}; pool pages/min by engine {job['pool_pages_per_min_by_engine']}; "
              f"OCR seconds per page by route {({k: v['mean_seconds_ocr'] for k, v in job['routes'].items()})}")
        if not args.skip_baseline:
            compare_hybrid(result, files, config, args, overrides)
    if "baseline" in result:
        result["ratio"] = round(result["ray_job"]["pages_per_min"] / result["baseline"]["pages_per_min"], 3)
        print(f"ratio ray job / baseline: {result['ratio']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
