"""Where a PaddleOCR recognition run's time goes on a GPU: one process, no Ray.

    python cluster/gpu-bench/recprof.py PAGES_DIR [--config configs/gpu.yaml] [--pages 8] [--set paddle.x=y ...]

Reads `--pages` real pages with the batch job's predictor (warm-up as configured), keeps the inputs of
every recognition run of the last page and of one call of all the pages, and then, for each kept input:
the reader's own session's time (median of 5, the shape already seen), and the same in fresh sessions
with other CUDA provider options. Last, ONNX Runtime's profile of one page's runs: seconds by operator
type and by execution provider, and the slowest nodes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import time
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def timed(run, reps: int = 5) -> float:
    run()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def profile(model, engine_config: dict, feeds: list[dict], prefix: str) -> dict:
    """ONNX Runtime's own profile of the runs (after one untimed pass): seconds by op type, by provider, top nodes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = prefix
    session = ort.InferenceSession(str(model), sess_options=options, providers=engine_config["providers"],
                                   provider_options=engine_config["provider_options"])
    for f in feeds:
        session.run(None, f)
    start = time.perf_counter()
    for f in feeds:
        session.run(None, f)
    wall = time.perf_counter() - start
    events = json.load(open(session.end_profiling()))
    by_op, by_provider, nodes = defaultdict(float), defaultdict(float), defaultdict(float)
    runs = [e for e in events if e.get("name") == "model_run"]
    cutoff = runs[len(feeds)]["ts"] if len(runs) > len(feeds) else 0  # the second pass only
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < cutoff:
            continue
        args = e.get("args", {})
        by_op[args.get("op_name", "?")] += e["dur"] / 1e6
        by_provider[args.get("provider", "?")] += e["dur"] / 1e6
        nodes[f'{e["name"][:-12]} ({args.get("op_name")}, {args.get("provider")})'] += e["dur"] / 1e6
    model_runs = sum(e["dur"] for e in runs[len(feeds):]) / 1e6
    top = lambda d, n: {k: round(v, 4) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]}  # noqa: E731
    return {"wall_s": round(wall, 4), "model_run_s": round(model_runs, 4), "by_provider": top(by_provider, 5),
            "by_op": top(by_op, 15), "nodes": top(nodes, 15)}


def prepared_pages(cfg, pages_dir: str, n: int) -> list[dict]:
    """The first page of up to `n` files in `pages_dir`, as a request's `prepare_page` makes it (OCR pages only)."""
    from pipeline.prepare import prepare_page
    from pipeline.serve.uploads import Upload, page_rows

    pages = []
    for path in sorted(glob.glob(os.path.join(pages_dir, "*")))[:n]:
        with Upload(open(path, "rb").read(), os.path.basename(path)) as upload:
            _, rows = page_rows(upload, cfg, "1")
            page = prepare_page(rows[0], cfg)
            if page["error"] is None and page["engine"] == "":
                pages.append(dict(page))
    return pages


def keep_rec_inputs(reader, kept: list):
    """From now on every recognition run of `reader` also appends its input (lines, masks) to `kept`; returns the
    reader's own run, to put back."""
    run_rec = reader._run_rec

    def keep(x, valid, release=False):
        kept.append({"image": x.copy(), "valid": valid.copy()})
        return run_rec(x, valid, release)

    reader._run_rec = keep
    return run_rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages")
    ap.add_argument("--config", default="configs/gpu.yaml")
    ap.add_argument("--pages-n", "--pages-count", dest="n", type=int, default=8)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from actors.models import ctc_argmax_model, uint8_input_model
    from actors.paddle_ocr import PaddleOcrPredictor, onnx_engine_config
    from pipeline.config import load_config

    cfg = load_config(args.config, dict(s.split("=", 1) for s in args.set))
    out: dict = {"config": args.set}
    start = time.perf_counter()
    predictor = PaddleOcrPredictor(cfg.model_dump())
    out["predictor_s"] = round(time.perf_counter() - start, 2)
    reader = predictor.read
    pages = prepared_pages(cfg, args.pages, args.n)
    kept: list = []
    run_rec = keep_rec_inputs(reader, kept)
    calls = {}
    for name, batch in (("page", pages[:1]), ("page_again", pages[:1]), ("call", pages), ("call_again", pages)):
        kept.clear()
        before = dict(reader.timings)
        start = time.perf_counter()
        predictor(pd.DataFrame(batch))
        calls[name] = {"s": round(time.perf_counter() - start, 4), "pages": len(batch),
                       "rec_infer": round(reader.timings["rec_infer"] - before.get("rec_infer", 0.0), 4),
                       "det_infer": round(reader.timings["det_infer"] - before.get("det_infer", 0.0), 4),
                       "runs": [list(f["image"].shape[:3]) for f in kept]}
        if name == "page_again":
            page_feeds = list(kept)
        if name == "call_again":
            call_feeds = list(kept)
    reader._run_rec = run_rec
    out["calls"] = calls
    session = reader.session
    out["providers"] = session.get_providers()
    out["own_session_per_run"] = [round(timed(lambda f=f: session.run(None, f)), 4) for f in page_feeds]
    out["own_session_page"] = round(sum(out["own_session_per_run"]), 4)  # each run after the same shape
    # the page's runs in their order, again and again: each run after another shape (as pages come)
    out["own_session_page_in_order"] = round(timed(lambda: [session.run(None, f) for f in page_feeds]), 4)
    out["own_session_call_in_order"] = round(timed(lambda: [session.run(None, f) for f in call_feeds], 2), 4)
    # every line of the page in one run as wide as its widest (one shape for every page of that width)
    width = max(f["image"].shape[2] for f in page_feeds)
    lines = [(f, j) for f in page_feeds for j in range(f["image"].shape[0]) if f["valid"][j].any()]
    one = {"image": np.zeros((len(lines),) + page_feeds[0]["image"].shape[1:2] + (width, 3), np.uint8),
           "valid": np.zeros((len(lines), 1, 1, width), np.uint8)}
    for i, (f, j) in enumerate(lines):
        one["image"][i, :, : f["image"].shape[2]] = f["image"][j]
        one["valid"][i, ..., : f["image"].shape[2]] = f["valid"][j]
    out["one_run_page"] = {"shape": list(one["image"].shape), "s": round(timed(lambda: session.run(None, one)), 4)}
    out["own_session_call_by_run"] = round(sum(timed(lambda f=f: session.run(None, f), 2) for f in call_feeds), 4)
    out["lines_per_run"] = [int(f["valid"][:, 0, 0, 0].sum()) for f in page_feeds]

    runner = reader.rec.runner
    onnx = os.path.join(str(runner.model_dir), f"{getattr(runner, 'model_file_prefix', 'inference')}.onnx")
    model = uint8_input_model(ctc_argmax_model(onnx), [2 / 255] * 3, [-1.0] * 3, mask=True)
    import onnxruntime as ort

    base = onnx_engine_config(cfg.paddle, "gpu", None)
    variants = {}
    for label, change in (("HEURISTIC", {}), ("DEFAULT", {"cudnn_conv_algo_search": "DEFAULT"}),
                          ("EXHAUSTIVE", {"cudnn_conv_algo_search": "EXHAUSTIVE"}),
                          ("no_cap", {"gpu_mem_limit": None}), ("tf32_off", {"use_tf32": "0"})):
        options = {k: v for k, v in {**base["provider_options"][0], **change}.items() if v is not None}
        so = ort.SessionOptions()
        so.log_severity_level = 3
        try:
            s = ort.InferenceSession(str(model), sess_options=so, providers=base["providers"],
                                     provider_options=[options, {}])
            first = time.perf_counter()
            for f in page_feeds:
                s.run(None, f)
            first = time.perf_counter() - first
            per = [timed(lambda f=f: s.run(None, f)) for f in page_feeds]
            variants[label] = {"first_pass_s": round(first, 3), "page_s": round(sum(per), 4),
                               "page_in_order_s": round(timed(lambda: [s.run(None, f) for f in page_feeds], 3), 4),
                               "call_s": round(sum(timed(lambda f=f: s.run(None, f), 2) for f in call_feeds), 4)}
            del s
        except Exception as e:  # one option this build lacks: the others still run
            variants[label] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    out["variants"] = variants

    def shape_of(f) -> tuple:
        return tuple(f["image"].shape[:3])

    def per_shape(label: str, extra: dict | None = None, env: bool = False, release: bool = False) -> dict:
        """One session per input shape: no Conv node ever sees its shape change."""
        options = {**base["provider_options"][0], **(extra or {})}
        sessions: dict = {}

        def run(f):
            key = shape_of(f)
            if key not in sessions:
                so = ort.SessionOptions()
                so.log_severity_level = 3
                if env:
                    so.add_session_config_entry("session.use_env_allocators", "1")
                sessions[key] = ort.InferenceSession(str(model), sess_options=so, providers=base["providers"],
                                                     provider_options=[options, {}])
            return sessions[key].run(None, f, shrink if release else None)

        shrink = ort.RunOptions()
        shrink.add_run_config_entry("memory.enable_memory_arena_shrinkage", "gpu:0")
        start = time.perf_counter()
        for f in call_feeds + page_feeds:
            run(f)
        result = {"sessions": len(sessions), "build_and_first_s": round(time.perf_counter() - start, 3),
                  "page_in_order_s": round(timed(lambda: [run(f) for f in page_feeds], 3), 4),
                  "call_in_order_s": round(timed(lambda: [run(f) for f in call_feeds], 2), 4),
                  "gpu_mib": gpu_mib()}
        sessions.clear()
        return result

    def gpu_mib():
        import subprocess

        try:
            rows = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                  capture_output=True, text=True).stdout.splitlines()
        except OSError:
            return None
        return [r for r in rows if r.split(",")[0].strip() == str(os.getpid())]

    out["gpu_mib_before_per_shape"] = gpu_mib()
    shaped = {}
    for label, extra, release in (("HEURISTIC", None, False), ("HEURISTIC_release_every_run", None, True),
                                  ("DEFAULT", {"cudnn_conv_algo_search": "DEFAULT"}, False)):
        try:
            shaped[label] = per_shape(label, extra, False, release)
        except Exception as e:
            shaped[label] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    try:
        mem = ort.OrtMemoryInfo("Cuda", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        cap = base["provider_options"][0].get("gpu_mem_limit", str(4 << 30))
        ort.create_and_register_allocator_v2("CUDAExecutionProvider", mem,
                                             {"arena_extend_strategy": "kSameAsRequested", "gpu_mem_limit": cap},
                                             ort.OrtArenaCfg(int(cap), 1, -1, -1))
        shaped["HEURISTIC_env_allocator"] = per_shape("env", None, True)
    except Exception as e:
        shaped["HEURISTIC_env_allocator"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    out["per_shape_sessions"] = shaped
    out["profile_page"] = profile(model, {"providers": base["providers"], "provider_options": base["provider_options"]},
                                  page_feeds, "/tmp/recprof")
    det_model = getattr(reader, "det_session", None)
    out["note"] = f"{len(page_feeds)} runs for one page, {len(call_feeds)} for {len(pages)} pages; det session {det_model is not None}"
    print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()
