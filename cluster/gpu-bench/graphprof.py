"""What would make PaddleOCR's recogniser cheaper on a shared GPU? One process, then N at once; no Ray.

    python cluster/gpu-bench/graphprof.py PAGES_DIR [--config configs/gpu.yaml] [--pages-n 8] [--procs 10] [--seconds 20]
        [--modes plain,graph,pow2,nhwc,fp16,nhwc+pow2]

Reads `--pages-n` real pages in one call of the batch job's predictor and keeps every recognition run's input
(the uint8 lines and their masks). Then, for the reader's own recogniser model (uint8 in, CTC argmax on the
device), in sessions of one input shape each, as the reader keeps them:
- `plain`: ONNX Runtime's `run`, as the reader does;
- `graph`: the same model with each input's free dimensions fixed to the shape
  (`add_free_dimension_override_by_name`, so that shape computations fold away and every node can sit on
  the GPU), CUDA EP's `enable_cuda_graph`, inputs and outputs bound once on the device (IOBinding), so
  that a run is one graph launch instead of hundreds of kernel launches and their waits;
- `pow2`: each run's rows cut to the next power of two (at least 4) above its lines, instead of the width's
  limit (`paddle.rec_pad_rows: pow2`): does a run's time follow its rows, or is it a fixed cost per run?
- `nhwc`: CUDA EP's `prefer_nhwc` (convolutions in channels-last layout);
- `fp16`: the model converted to float16 inside as the reader builds it with `paddle.rec_precision: fp16`
  (`actors.models.recogniser_model`: ONNX Runtime's own converter, inputs and outputs kept as they are),
  Tensor Cores for the convolutions and matrix products.
Flags combine with `+` (`nhwc+pow2`). Each mode: the share of its outputs equal to `plain`'s, one pass over the runs alone (median of 5), and then `--procs`
processes (as many actors share a card) each passing over the runs for `--seconds`: runs a second in all.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from actors.models import recogniser_model  # noqa: E402


def line_rows(feeds: dict) -> int:
    """The rows of a recognition run that hold a line (its mask marks pixels; padded rows have none)."""
    return int(feeds["valid"].reshape(len(feeds["valid"]), -1).any(axis=1).sum())


def pow2_rows(feeds: dict) -> dict:
    """The run with its rows cut to the next power of two (at least 4) above the rows that hold a line."""
    rows = min(len(feeds["valid"]), max(4, 1 << max(line_rows(feeds) - 1, 0).bit_length()))
    return {k: v[:rows] for k, v in feeds.items()}


class Runner:
    """Sessions per input shape of one model; `mode`: flags joined by `+` (plain, graph, pow2, nhwc, fp16)."""

    def __init__(self, model: str, engine_config: dict, mode: str, source: str):
        self.flags = set(mode.split("+"))
        # fp16: built from paddleocr's recogniser (`source`) as the reader builds it with paddle.rec_precision: fp16
        self.model = str(recogniser_model(source, fp16=True)) if "fp16" in self.flags else model
        self.config, self.mode = engine_config, "graph" if "graph" in self.flags else "plain"
        self.sessions: dict = {}

    def _session(self, feeds: dict):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if "intra_op_num_threads" in self.config:
            options.intra_op_num_threads = self.config["intra_op_num_threads"]
        providers = self.config.get("providers", ["CPUExecutionProvider"])
        provider_options = [dict(o) for o in self.config.get("provider_options", [{}] * len(providers))]
        session = None
        if "nhwc" in self.flags and providers[0] == "CUDAExecutionProvider":
            provider_options[0]["prefer_nhwc"] = "1"
        if self.mode == "graph":
            probe = ort.InferenceSession(self.model, sess_options=ort.SessionOptions(), providers=["CPUExecutionProvider"])
            for inp in probe.get_inputs():
                for dim, value in zip(inp.shape, feeds[inp.name].shape):
                    if isinstance(dim, str):
                        options.add_free_dimension_override_by_name(dim, int(value))
            provider_options[0]["enable_cuda_graph"] = "1"
            providers, provider_options = providers[:1], provider_options[:1]  # every node on the GPU, or no session
        session = ort.InferenceSession(self.model, sess_options=options, providers=providers, provider_options=provider_options)
        if self.mode != "graph":
            return session, None
        device = int(provider_options[0].get("device_id", 0))
        outputs = session.run(None, feeds)  # shapes of the outputs (a run without the graph bindings)
        bound_in = {k: ort.OrtValue.ortvalue_from_numpy(v, "cuda", device) for k, v in feeds.items()}
        bound_out = [ort.OrtValue.ortvalue_from_shape_and_type(o.shape, o.dtype, "cuda", device) for o in outputs]
        binding = session.io_binding()
        for k, v in bound_in.items():
            binding.bind_ortvalue_input(k, v)
        for meta, v in zip(session.get_outputs(), bound_out):
            binding.bind_ortvalue_output(meta.name, v)
        return session, (binding, bound_in, bound_out)

    def __call__(self, feeds: dict) -> list:
        if "pow2" in self.flags:
            feeds = pow2_rows(feeds)
        key = tuple((k, v.shape) for k, v in sorted(feeds.items()))
        if key not in self.sessions:
            self.sessions[key] = self._session(feeds)
        session, bound = self.sessions[key]
        if bound is None:
            return session.run(None, feeds)
        binding, bound_in, bound_out = bound
        for k, v in feeds.items():
            bound_in[k].update_inplace(v)
        session.run_with_iobinding(binding)
        return [o.numpy() for o in bound_out]


def _load(path: str) -> tuple[str, dict, list[dict], str]:
    import numpy as np

    meta = json.load(open(path + ".json"))
    arrays = np.load(path + ".npz")
    runs = [{"image": arrays[f"image{i}"], "valid": arrays[f"valid{i}"]} for i in range(meta["runs"])]
    return meta["model"], meta["engine_config"], runs, meta["source"]


def _worker(path: str, mode: str, seconds: float, barrier, results) -> None:
    model, config, runs, source = _load(path)
    try:
        run = Runner(model, config, mode, source)
        for feeds in runs:
            run(feeds)
        run(runs[0])
    except Exception as e:  # noqa: BLE001 - the report says why a mode could not run
        barrier.wait()
        results.put({"error": f"{type(e).__name__}: {str(e)[:300]}"})
        return
    barrier.wait()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for feeds in runs:
            run(feeds)
        done += len(runs)
    results.put({"runs": done, "s": time.perf_counter() - start})


def contention(path: str, mode: str, procs: int, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(path, mode, seconds, barrier, results)) for _ in range(procs)]
    for w in workers:
        w.start()
    got = [results.get(timeout=seconds + 600) for _ in workers]
    for w in workers:
        w.join()
    errors = [g["error"] for g in got if "error" in g]
    if errors:
        return {"procs": procs, "error": errors[0]}
    return {"procs": procs, "runs_per_s": round(sum(g["runs"] / g["s"] for g in got), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pages")
    ap.add_argument("--config", default="configs/gpu.yaml")
    ap.add_argument("--pages-n", dest="n", type=int, default=8)
    ap.add_argument("--procs", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--modes", default="plain,graph")
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from actors.paddle_ocr import PaddleOcrPredictor
    from pipeline.config import load_config
    from recprof import keep_rec_inputs, prepared_pages  # beside this script

    cfg = load_config(args.config, dict(s.split("=", 1) for s in args.set))
    predictor = PaddleOcrPredictor(cfg.model_dump())
    reader = predictor.read
    pages = prepared_pages(cfg, args.pages, args.n)
    kept: list = []
    predictor(pd.DataFrame(pages))
    run_rec = keep_rec_inputs(reader, kept)
    predictor(pd.DataFrame(pages))
    reader._run_rec = run_rec
    model, config, source = str(reader.session.model), reader.session.engine_config, str(reader.rec_source)
    config = {k: v for k, v in config.items() if k != "session_config"}  # no shared env arena in these processes
    out: dict = {"pages": len(pages), "runs": [list(f["image"].shape) for f in kept], "model": model}
    path = os.path.join(tempfile.mkdtemp(prefix="graphprof-"), "runs")
    np.savez(path + ".npz", **{f"{k}{i}": f[k] for i, f in enumerate(kept) for k in ("image", "valid")})
    json.dump({"model": model, "source": source, "engine_config": config, "runs": len(kept)}, open(path + ".json", "w"))
    del predictor, reader
    _, _, runs, _ = _load(path)
    reference = None
    for mode in args.modes.split(","):
        result: dict = {}
        try:
            run = Runner(model, config, mode, source)
            outputs = [run(f) for f in runs]
            if reference is None:
                reference = outputs
            same = [np.array_equal(a[0][: len(b[0])], b[0][: len(a[0])]) for a, b in zip(outputs, reference)]
            result["same_as_plain"] = all(same)
            result["runs_same_as_plain"] = f"{sum(same)}/{len(same)}"
            result["rows"] = [len(o[0]) for o in outputs]
            lines = [line_rows(f) for f in runs]
            result["chars_same_as_plain"] = round(float(np.mean(np.concatenate(
                [(a[0][:n] == b[0][:n]).ravel() for a, b, n in zip(outputs, reference, lines)]))), 5)
            times = []
            for _ in range(5):
                start = time.perf_counter()
                for f in runs:
                    run(f)
                times.append(time.perf_counter() - start)
            result["alone_s_per_pass"] = round(statistics.median(times), 4)
            del run
        except Exception as e:  # noqa: BLE001
            result["error"] = f"{type(e).__name__}: {str(e)[:300]}"
        if "error" not in result and args.procs > 0:
            result["together"] = contention(path, mode, args.procs, args.seconds)
            result["together"]["s_per_pass_each"] = round(args.procs * len(runs) / result["together"]["runs_per_s"], 4) \
                if result["together"].get("runs_per_s") else None
        out[mode] = result
        print(json.dumps({mode: result}), file=sys.stderr, flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
