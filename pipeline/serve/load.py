"""`hybridocr bench --serve`: a bounded load on the Serve app over loopback, beside the batch job.

On the same pages and machine: the batch job first (its pool rate; its per-page share of render +
classify + OCR seconds, batch-amortised), then each page's bare time: one page read alone without
Serve (discovery, render, classify and the PaddleOCR predictor in this process, as a request at
concurrency 1 is read: the p50's reference), then the app on a free loopback port (or the one at
`--serve-url`), then, at each concurrency (1, 8, 32 by default), every file sent once as its own
request (or the first N files, `--serve-levels 32,8:64,1:12`): p50/p95 latency and pages/min. The
load stops by itself when every request has answered.
"""

from __future__ import annotations

import concurrent.futures
import socket
import statistics
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send_load(url: str, files: list[str], concurrency: int, timeout: float = 600) -> dict:
    """Each file once, `concurrency` requests at a time; latency percentiles and pages/min."""
    import requests

    def one(path: str) -> tuple[float, int, int, list[str], float, list[dict]]:
        start = time.perf_counter()
        with open(path, "rb") as f:
            r = requests.post(url + "/v1/ocr", files={"file": (Path(path).name, f)}, timeout=timeout)
        latency = time.perf_counter() - start
        answered = r.json().get("pages", []) if r.status_code == 200 else []
        errors = [p["error"] for p in answered if p.get("error")]
        read = [p for p in answered if p.get("batch_pages") and not p.get("error")]  # pages PaddleOCR read
        return latency, r.status_code, len(answered) - len(errors), errors, latency - page_work(answered), read

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        done = list(pool.map(one, files))
    wall = time.perf_counter() - start
    latencies = sorted(d[0] for d in done)
    pages = sum(d[2] for d in done)  # pages read: an error row is answered, not read, and counts apart
    errors = [e for d in done for e in d[3]]
    read = [p for d in done for p in d[5]]  # each page PaddleOCR read: its call's size, its share of it, its wait

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 3)

    return {"concurrency": concurrency, "requests": len(files), "failed": sum(d[1] != 200 for d in done), "pages": pages,
            "page_errors": len(errors), "first_page_error": errors[0][:300] if errors else None,
            "p50_seconds": round(statistics.median(latencies), 3), "p95_seconds": pct(0.95),
            "p50_outside_page_seconds": round(statistics.median(d[4] for d in done), 3),
            "pages_per_min": round(60 * pages / wall, 2), "seconds": round(wall, 2),
            **batching(read)}


def batching(read: list[dict]) -> dict:
    """Serve's batching as the pages PaddleOCR read saw it: pages per call, OCR seconds per page in those calls,
    each step's seconds per page (`ocr_steps`: the batched reader's det, crop, rec and their inference, then the
    page structure: layout and tables; `call`: the whole predictor call), and the p50 of the wait in a replica for a call."""
    if not read:
        return {"pages_per_call": None, "ocr_seconds_per_page": None, "ocr_steps_per_page": None, "p50_queued_seconds": None}
    keys = sorted({k for p in read for k in (p.get("ocr_steps") or {})})
    return {"pages_per_call": round(statistics.mean(p["batch_pages"] for p in read), 2),
            "ocr_seconds_per_page": round(statistics.mean(p.get("seconds_ocr") or 0.0 for p in read), 3),
            "ocr_steps_per_page": {k: round(statistics.mean((p.get("ocr_steps") or {}).get(k, 0.0) for p in read), 4)
                                   for k in keys},
            "p50_queued_seconds": round(statistics.median(p.get("queued_seconds") or 0.0 for p in read), 3)}


def steps_text(steps: dict | None) -> str:
    return " ".join(f"{k} {v:.3f}" for k, v in (steps or {}).items())


def page_work(pages: list[dict]) -> float:
    """The seconds an answer's pages say they took (render + classify + OCR; the longest page, as a request's
    pages run at once). A request's latency less this is what serving added: upload, hops between replicas,
    waiting for a batch, and, in batches of several pages, the other pages' share of the batch."""
    return max((sum(p.get(k) or 0.0 for k in ("seconds_render", "seconds_classify", "seconds_ocr")) for p in pages),
               default=0.0)


def parse_levels(text: str) -> list[tuple[int, int | None]]:
    """`"32,8:64,1:12"` -> [(32, None), (8, 64), (1, 12)]: concurrency, at most this many files (None: all)."""
    levels = []
    for item in (x.strip() for x in text.split(",") if x.strip()):
        c, _, n = item.partition(":")
        try:
            level = (int(c), int(n) if n else None)
        except ValueError:
            raise SystemExit(f"--serve-levels: {item!r} is not C or C:N (integers), e.g. 1,8,32 or 32,8:64,1:12") from None
        if level[0] < 1 or (level[1] is not None and level[1] < 1):
            raise SystemExit(f"--serve-levels: {item!r}: concurrency and file count must be at least 1")
        levels.append(level)
    return levels or [(1, None), (8, None), (32, None)]


def bare_page(files: list[str], config, n: int = 8) -> dict | None:
    """A page read alone without Serve: the median time of the upload's discovery, `prepare_page` (render,
    classify) and the batch job's PaddleOCR predictor on that one page, in this process, over the first
    page of up to `n` files after one warm-up page; then the same pages in one predictor call, as the
    batch job's actors read them, twice (the second sees no new input shape). Each with the batched
    reader's seconds per step and page (None in vlm mode)."""
    if config.mode == "vlm" or not files:
        return None
    import gc

    import pandas as pd

    from actors.paddle_ocr import PaddleOcrPredictor
    from pipeline.prepare import prepare_page
    from pipeline.serve.deployments import paddle_threads, step_seconds
    from pipeline.serve.uploads import Upload, page_rows

    predictor = PaddleOcrPredictor(config.model_dump(), cpu_threads=paddle_threads(config))  # as a replica has
    steps = getattr(predictor.read, "timings", {})

    def read(pages: list[dict]) -> dict:
        """One predictor call: its seconds by step and in all (`call`)."""
        before, start = dict(steps), time.perf_counter()
        predictor(pd.DataFrame(pages))
        return {**step_seconds(steps, before), "call": time.perf_counter() - start}

    times, alone, pages = [], [], []
    for i, path in enumerate(files[: n + 1]):
        data = Path(path).read_bytes()
        start = time.perf_counter()
        with Upload(data, Path(path).name) as upload:
            _, rows = page_rows(upload, config, "1")
            page = prepare_page(rows[0], config)
            if page["error"] is None and page["engine"] == "":
                pages.append(dict(page))
                took = read([page])
                if i or len(files) == 1:
                    alone.append(took)
        if i or len(files) == 1:
            times.append(time.perf_counter() - start)
    together, again = {}, {}
    if len(pages) > 1:  # twice: the second call has only shapes the first one set up
        size = min(len(pages), config.paddle.pages_per_call(predictor.device))
        together, again = ({**{k: v / size for k, v in read(pages[:size]).items()}, "pages": size} for _ in range(2))
    del predictor
    gc.collect()  # its GPU arena goes before the app's replicas start
    mean = {k: round(statistics.mean(a.get(k, 0.0) for a in alone), 4) for k in (alone[0] if alone else {})}
    return {"seconds": statistics.median(times), "steps_alone": mean,
            "steps_together": {k: round(v, 4) for k, v in together.items()},
            "steps_together_again": {k: round(v, 4) for k, v in again.items()}}


def bench_serve(files: list[str], config, url: str | None, levels=((1, None), (8, None), (32, None)), *,
                batch: dict) -> dict:
    """`batch`: the batch job's bench result on the same files (`pipeline.bench.ray_job`), run first."""
    from ray import serve

    from pipeline.serve.app import build_app

    stages = batch["mean_stage_seconds"]
    # a VLM row's seconds_ocr is the engine's busy time shared out among the pages in flight (~1 / pool
    # rate), not one page alone: no bare page time in vlm mode (its single-page latency is the c=1 p50)
    share = 0.0 if config.mode == "vlm" else sum(
        v for v in (stages.get("seconds_render"), stages.get("seconds_classify"), stages.get("seconds_ocr")) if v)
    profile = bare_page(files, config) or {}
    bare = profile.get("seconds") or 0.0
    print(f"batch job: {batch['pages_per_min']} pages/min end to end, pool {batch['pool_pages_per_min']}; "
          f"seconds per page in the job (render + classify + OCR, batch-amortised) {f'{share:.3f}' if share else 'n/a'}; "
          f"a page alone without Serve {f'{bare:.3f} s' if bare else 'n/a (vlm: the c=1 p50 is its single-page latency)'}"
          + (f"; the pool's PaddleOCR calls read {config.paddle.pages_per_call(batch['device'])} page(s) each, "
             f"{stages['seconds_ocr']:.3f} s a page" if config.mode != "vlm" and stages.get("seconds_ocr") else ""),
          flush=True)
    if profile.get("steps_alone"):
        together, again = dict(profile["steps_together"]), dict(profile["steps_together_again"])
        again.pop("pages", 0)
        print(f"a page alone, seconds by step: {steps_text(profile['steps_alone'])}; "
              f"{together.pop('pages', 0)} pages in one call, seconds a page by step: {steps_text(together)}; "
              f"the same call again: {steps_text(again)}", flush=True)
    started_here = url is None
    if started_here:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(config.model_copy(update={"serve": config.serve.model_copy(update={"port": port})})),
                  name="hybridocr-bench", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
    try:
        send_load(url, files[: min(4, len(files))], 2)  # warm-up: engines loaded, first shapes seen
        results = []
        for c, n in levels:
            r = send_load(url, files[:n], c)
            r["p50_vs_bare"] = round(r["p50_seconds"] / bare, 2) if bare else None
            r["vs_batch_pool"] = round(r["pages_per_min"] / batch["pool_pages_per_min"], 3) if batch["pool_pages_per_min"] else None
            results.append(r)
            print(f"serve at concurrency {c}: {r['pages_per_min']} pages/min ({r['vs_batch_pool']} x the batch pool), "
                  f"p50 {r['p50_seconds']} s ({r['p50_vs_bare']} x the bare page; {r['p50_outside_page_seconds']} s outside "
                  f"the page's own work), p95 {r['p95_seconds']} s, "
                  + (f"PaddleOCR calls of {r['pages_per_call']} page(s) on average, {r['ocr_seconds_per_page']} s a page "
                     f"({steps_text(r['ocr_steps_per_page'])}; p50 wait for a call {r['p50_queued_seconds']} s), "
                     if r["pages_per_call"] else "") +
                  f"{r['failed']} failed, {r['page_errors']} pages answered with an error"
                  + (f" (first: {r['first_page_error']})" if r["page_errors"] else ""), flush=True)
    finally:
        if started_here:
            serve.shutdown()
    return {"batch": batch, "job_seconds_per_page": round(share, 3) if share else None,
            "bare_seconds_per_page": round(bare, 3) if bare else None, "bare_profile": profile or None, "url": url,
            "levels": results}
