"""PaddleOCR actor: model loading, batched inference and row shaping kept apart.

`load_paddleocr` builds paddleocr's own OCR pipeline; `recognise` runs it on a list of pages;
`PaddleOcrPredictor` is the thin callable class that Ray Data's `map_batches` (ActorPoolStrategy)
and, later, Ray Serve deployments wrap.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time

import numpy as np
import pandas as pd

from actors.models import ArenaShrinking, bundled_model_dir
from actors.paddle_imports import lean_paddleocr_imports
from actors.paddle_batched import pipeline_parts
from actors.vlm import needs_vlm
from pipeline.config import PaddleConfig, RunConfig
from pipeline.pixels import page_pixels
from actors.page_structure import PageStructure
from pipeline.schema import ENGINE_COLUMNS, ensure_columns, lines_to_json, tables_to_json
from pipeline.types import OcrLine, since_process_start, this_node
from pipeline.vertical_seals import remove_seals

log = logging.getLogger(__name__)
os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")  # no network probe at start-up


def gpu_visible() -> bool:
    """Whether this process has a CUDA device for the configured engine."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    try:
        import onnxruntime as ort

        return "CUDAExecutionProvider" in ort.get_available_providers() and _nvidia_present()
    except ImportError:
        return False


def _nvidia_present() -> bool:
    return any(os.path.exists(p) for p in ("/dev/nvidia0", "/dev/nvidiactl"))


def resolve_device(cfg: PaddleConfig) -> str:
    if cfg.device == "auto":
        return "gpu" if gpu_visible() else "cpu"
    return cfg.device


def model_label(cfg: PaddleConfig, device: str, rec_fp16: bool = False) -> str:
    """The rows' `model`: the two models, the engine, the device, and a recogniser read in float16."""
    return f"{cfg.det_model}+{cfg.rec_model} ({cfg.engine}, {device}{', rec fp16' if rec_fp16 else ''})"


@functools.lru_cache(maxsize=1)
def total_gpu_gb() -> float | None:
    """Memory of the first visible GPU in GiB (nvidia-smi, asked once per process), None when unknown."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20, check=False).stdout.split()
        return float(out[0]) / 1024 if out else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def cuda_options(cfg: PaddleConfig) -> dict:
    """ONNX Runtime's CUDA provider options for every model of a PaddleOCR actor: cuDNN's algorithm search
    as configured (ONNX Runtime's default, EXHAUSTIVE, searches again for every new input shape:
    README "Speed"), and arenas that grow by what is asked, not to the next power of two. Before the actor's
    first GPU session: how its threads wait for the GPU (`paddle.cuda_schedule`, actors/cuda_sync.py)."""
    from actors.cuda_sync import set_schedule

    set_schedule(cfg.cuda_schedule)
    return {"cudnn_conv_algo_search": cfg.cudnn_conv_algo_search, "arena_extend_strategy": "kSameAsRequested"}


def structure_providers(cfg: PaddleConfig, device: str) -> list | None:
    """Providers of the layout and table models: on a GPU with the same CUDA options as detection and
    recognition (their small arenas are not capped); None on the CPU."""
    return [("CUDAExecutionProvider", cuda_options(cfg)), "CPUExecutionProvider"] if device == "gpu" else None


def onnx_engine_config(cfg: PaddleConfig, device: str, threads: int | None, share: float = 0.5) -> dict:
    """ONNX Runtime session settings (paddlex's `engine_config` keys) for a PaddleOCR model.

    `share`: this model's part of the actor's GPU memory cap (detection and recognition each get one arena).
    """
    config: dict = {
        "log_severity_level": 3,  # errors only: shape-merge notices are noise
        "enable_cpu_mem_arena": cfg.cpu_mem_arena,
    }
    if device == "gpu":
        cuda = cuda_options(cfg)
        total = None if cfg.gpu_memory_gb else total_gpu_gb()
        cap = cfg.gpu_memory_gb or (0.85 * cfg.num_gpus * total if total else None)  # CUDA contexts live outside
        if cap:  # split between the two models' arenas; several actors share one card
            cuda["gpu_mem_limit"] = str(int(cap * share * 2**30))
        config["providers"] = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        config["provider_options"] = [cuda, {}]
    if threads:
        config["intra_op_num_threads"] = threads
    return config


def load_paddleocr(cfg: PaddleConfig, device: str, cpu_threads: int | None = None, stock: bool = False):
    """paddleocr's OCR pipeline with detection + recognition only (no document unwarping).

    `stock`: paddleocr's defaults for everything but the models (the out-of-the-box baseline).
    """
    if not stock:
        lean_paddleocr_imports()
    from paddleocr import PaddleOCR

    logging.getLogger("paddlex").setLevel(logging.WARNING)  # no "Creating model" line per actor
    det_dir = cfg.det_model_dir or bundled_model_dir(cfg.det_model, cfg.engine)
    rec_dir = cfg.rec_model_dir or bundled_model_dir(cfg.rec_model, cfg.engine)
    if det_dir is None or rec_dir is None:
        log.warning("no bundled weights for %s/%s (%s): paddleocr will download them", cfg.det_model, cfg.rec_model, cfg.engine)
    models = dict(
        text_detection_model_name=cfg.det_model, text_detection_model_dir=det_dir,
        text_recognition_model_name=cfg.rec_model, text_recognition_model_dir=rec_dir,
        use_doc_orientation_classify=False, use_doc_unwarping=False, use_textline_orientation=False,
        device="gpu:0" if device == "gpu" else "cpu",
    )
    if stock:  # (paddlepaddle 3.3's oneDNN path crashes on CPU: off even here)
        return PaddleOCR(**models, **({"engine": "onnxruntime"} if cfg.engine == "onnxruntime" else {"enable_mkldnn": False}))
    threads = cpu_threads or cfg.cpu_threads
    kwargs: dict = {"enable_mkldnn": False}  # paddlepaddle 3.3's oneDNN path crashes on CPU
    if cfg.engine == "onnxruntime":
        kwargs = {"engine": "onnxruntime", "engine_config": onnx_engine_config(cfg, device, threads)}
    elif threads:
        kwargs["cpu_threads"] = threads
    ocr = PaddleOCR(
        text_det_limit_side_len=cfg.det_limit_side_len,
        text_det_limit_type=cfg.det_limit_type,
        text_recognition_batch_size=cfg.rec_batch_size,
        text_rec_score_thresh=cfg.rec_score_thresh,
        **models,
        **kwargs,
    )
    if cfg.engine == "onnxruntime" and device == "cpu" and cfg.cpu_mem_arena and cfg.cpu_arena_shrink:
        _, det, rec = pipeline_parts(ocr)
        if hasattr(getattr(det.runner, "session", None), "run") and hasattr(getattr(rec.runner, "session", None), "run"):
            rec_arena = ArenaShrinking(rec.runner.session)  # runs as before; emptied when a page's detection starts
            det.runner.session = ArenaShrinking(det.runner.session, before=(rec_arena,))
    return ocr


def _lines(result) -> list[OcrLine]:
    return [
        OcrLine(np.asarray(poly, dtype=float).tolist(), text, float(score))
        for poly, text, score in zip(result["rec_polys"], result["rec_texts"], result["rec_scores"])
        if text.strip()
    ]


def pad_rows(cfg: PaddleConfig, device: str) -> str:
    """`paddle.rec_pad_rows` for the batched reader on `device`: auto is one shape per width on a GPU."""
    return cfg.rec_pad_rows if cfg.rec_pad_rows != "auto" else ("limit" if device == "gpu" else "pow2")


def warms_up(cfg: PaddleConfig, device: str) -> bool:
    """`paddle.warm_up` on `device`: None is on a GPU, where each new input shape costs set-up once per process."""
    return cfg.warm_up if cfg.warm_up is not None else device == "gpu"


def rec_fp16(cfg: PaddleConfig, device: str) -> bool:
    """`paddle.rec_precision` on `device`: auto is float16 on a GPU, where Tensor Cores run it."""
    return cfg.rec_precision == "fp16" or (cfg.rec_precision == "auto" and device == "gpu")


def per_shape(cfg: PaddleConfig, device: str) -> bool:
    """`paddle.session_per_shape` on `device`: None is on a GPU, where a convolution re-plans on every change of shape."""
    return cfg.session_per_shape if cfg.session_per_shape is not None else device == "gpu"


# Paper a job's pages usually come on (A4, US Letter; portrait, in points): the warm-up's detection shapes
WARM_UP_PAPER = ((842, 595), (792, 612))


def paper_pixels(dpi: float | None) -> list[tuple[int, int]]:
    """(height, width) in pixels of `WARM_UP_PAPER` rendered at `dpi`, rounded up as PyMuPDF's pixmaps are (none
    without a DPI)."""
    return [(math.ceil(round(h * dpi / 72, 3)), math.ceil(round(w * dpi / 72, 3))) for h, w in WARM_UP_PAPER] if dpi else []


def make_reader(ocr, cfg: PaddleConfig, device: str, threads: int | None = None, dpi: float | None = None):
    """BGR pages -> lines per page: paddleocr's own `predict`, or the batched reader (GPU default). `dpi`: the
    job's render DPI, for the warm-up's detection shapes (A4 and Letter pages at that DPI)."""
    if cfg.reader == "batched" or (cfg.reader == "auto" and device == "gpu"):
        from actors.paddle_batched import BatchedReader

        engine_config = onnx_engine_config(cfg, device, threads) if cfg.engine == "onnxruntime" else None
        reader = BatchedReader(ocr, cfg.rec_batch_size, cfg.det_pad, cfg.rec_score_thresh, engine_config, cfg.det_batch_size,
                               pad_rows(cfg, device), per_shape(cfg, device), cfg.shared_arena, rec_fp16(cfg, device))
        if cfg.rec_precision == "fp16" and reader.session is None:
            log.warning("paddle.rec_precision fp16 is ignored: it needs paddle.engine onnxruntime and the models' "
                        ".onnx files (engine here: %s); the recogniser runs in float32", cfg.engine)
        if warms_up(cfg, device):
            start = time.perf_counter()
            try:
                shapes = reader.warm_up(paper_pixels(dpi))
                # at warning level, as the VLM engine's "ready after": one start-up line per actor, seen in Ray's logs
                log.warning("warmed %d recognition shapes and %d detection shapes in %.1f s", len(shapes["rec"]),
                            len(shapes["det"]), time.perf_counter() - start)
            except Exception as e:  # an optimisation only: the pages set up their shapes as they come
                log.warning("the warm-up failed after %.1f s (%s: %s); pages will set up their shapes "
                            "as they come", time.perf_counter() - start, type(e).__name__, str(e)[:300])
        return reader
    if cfg.rec_precision == "fp16":
        log.warning("paddle.rec_precision fp16 is ignored by paddleocr's own pipeline (paddle.reader %s on the %s); "
                    "set paddle.reader: batched to read in float16", cfg.reader, device)
    return lambda pages: [_lines(r) for r in ocr.predict(pages)]


def load_reader(cfg: PaddleConfig, device: str, threads: int | None = None, dpi: float | None = None):
    """(paddleocr's pipeline, the reader that runs it) for `device`.

    The batched reader with ONNX Runtime on a GPU runs both models in its own uint8 sessions; paddleocr's
    pipeline then only lends its pre/post-processing (and reads pages that are not 3-channel), so it is
    built on the CPU, one thread: two GPU sessions fewer per actor to create and hold. When the reader
    cannot have its own sessions (no ONNX files beside the models), the pipeline is built on the GPU.
    """
    batched = cfg.reader == "batched" or (cfg.reader == "auto" and device == "gpu")
    if not (batched and device == "gpu" and cfg.engine == "onnxruntime"):
        ocr = load_paddleocr(cfg, device, threads)
        return ocr, make_reader(ocr, cfg, device, threads, dpi)
    ocr = load_paddleocr(cfg, "cpu", 1)
    read = make_reader(ocr, cfg, device, threads, dpi)
    if read.session is None or read.det_session is None:
        ocr = load_paddleocr(cfg, device, threads)
        read = make_reader(ocr, cfg, device, threads, dpi)
    return ocr, read


def recognise(read, images: list[np.ndarray]) -> list[list[OcrLine] | Exception]:
    """OCR RGB pages in one batched call; if the batch fails, retry page by page to isolate the bad one."""
    bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
    try:
        return read(bgr)
    except Exception:
        if len(bgr) == 1:
            raise
    out: list[list[OcrLine] | Exception] = []
    for im in bgr:
        try:
            out.append(read([im])[0])
        except Exception as e:  # one page's failure stays that page's error row
            out.append(e)
    return out


def confidence(lines: list[OcrLine]) -> float | None:
    """Character-weighted mean of line scores (long lines count more than stray marks)."""
    weights = [max(len(l.text.strip()), 1) for l in lines]
    return float(np.average([l.score for l in lines], weights=weights)) if lines else None


def add_warnings(batch: pd.DataFrame, i, new: list[str]) -> None:
    """Append to row i's `warnings` list. The column may arrive Arrow-typed from Ray Data (an all-empty
    column is list<null>, which refuses strings): it is made a plain object column of lists first."""
    if "warnings" not in batch or batch["warnings"].dtype != object:
        old = batch["warnings"] if "warnings" in batch else [None] * len(batch)
        batch["warnings"] = pd.Series([list(w) if w is not None and not (isinstance(w, float) and w != w) else [] for w in old],
                                      index=batch.index, dtype=object)
    cur = batch.at[i, "warnings"]
    batch.at[i, "warnings"] = [*([] if cur is None else list(cur)), *new]


def lower_priority(nice: int) -> None:
    """Add `nice` to the CPU priority value of every thread of this process (Linux keeps it per
    thread, and threads started later inherit their creator's); a no-op where that is not possible."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]  # this thread
    for tid in tids:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
        except OSError:  # a thread that just ended, or not permitted: the others still get it
            pass


class PaddleOcrPredictor:
    """Ray Data callable: OCRs the rows that need it, passes every other row through unchanged.

    `skip_routes` are left for the VLM (hybrid mode); with `keep_pixels_below` set, rows read with
    a lower confidence keep their pixels so that the VLM stage can read them again (escalation).
    `nice` lowers the actor's CPU priority (hybrid mode: `hybrid.paddle_nice`), before its threads start.
    """

    def __init__(self, config: dict, cpu_threads: int | None = None, skip_routes: tuple = (), keep_pixels_below: float | None = None,
                 nice: int = 0, on_ready=None):
        start, age = time.perf_counter(), since_process_start(time.time())
        lower_priority(nice)
        self.cfg = RunConfig.model_validate(config)
        self.skip_routes = set(skip_routes)
        self.keep_pixels_below = keep_pixels_below
        self.device = resolve_device(self.cfg.paddle)
        self.node = this_node()
        lean_paddleocr_imports()  # as load_paddleocr does, before paddleocr's import
        import paddleocr  # noqa: F401  (timed on its own: most of an actor's start on a CPU)

        imported = time.perf_counter()
        self.ocr, self.read = load_reader(self.cfg.paddle, self.device, cpu_threads or self.cfg.paddle.cpu_threads,
                                           self.cfg.render.dpi)
        self.model = model_label(self.cfg.paddle, self.device, getattr(self.read, "rec_fp16", False))  # rows' `model`
        # the batched reader's seconds by step, added up; the page structure's (layout, tables) join them as `structure`
        self.timings = getattr(self.read, "timings", None)
        models = time.perf_counter()
        providers = structure_providers(self.cfg.paddle, self.device)
        self.structure = PageStructure(self.cfg.layout, providers, cpu_threads or self.cfg.paddle.cpu_threads)
        # seconds of each start phase; `process`: the worker's own start and imports before this constructor
        self.start_phases = {"process": age, "import_paddleocr": round(imported - start, 2),
                             "det_rec_models": round(models - imported, 2), "layout_tables": round(time.perf_counter() - models, 2)}
        if on_ready is not None:  # the job's timeline (ProgressCounter.actor_ready)
            on_ready(time.time(), self.start_phases)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        todo = batch.index[batch["error"].isna() & (batch["engine"] == "") & ~batch["route"].isin(self.skip_routes)].tolist()
        if todo:
            self._read(batch, todo)
        # left for the VLM, or to be read again by it: the VLM stage's own test (a page read with no
        # confidence, i.e. no lines, escalates too and must keep its pixels)
        keep = needs_vlm(batch, self.keep_pixels_below is not None, self.keep_pixels_below or 0.0)
        batch["image"] = [img if k else b"" for img, k in zip(batch["image"], keep)]  # pixels are not needed past here
        return batch

    def _layout_together(self, images: list[np.ndarray], results: list) -> tuple[list, float]:
        """Every page's layout regions, `layout.batch_pages` pages to a run, and each page's share of their seconds;
        with 1 (or should that fail) None for each page: the structure step finds them page by page."""
        if self.cfg.layout.batch_pages < 2:
            return [None] * len(images), 0.0
        start = time.perf_counter()
        try:
            found = self.structure.regions_many(images, [[] if isinstance(r, Exception) else r for r in results])
        except Exception as e:  # each page then finds its own, and a failure stays that page's
            log.warning("the layout of %d pages together failed (%s: %s); reading it page by page", len(images),
                        type(e).__name__, str(e)[:200])
            return [None] * len(images), 0.0
        return found, (time.perf_counter() - start) / len(images)

    def _read(self, batch: pd.DataFrame, todo: list) -> None:
        ensure_columns(batch, ENGINE_COLUMNS)
        images = [page_pixels(batch.loc[i]) for i in todo]
        if self.cfg.layout.vertical_seals == "remove":  # seal ink over a vertical book page, off before detection
            images = [remove_seals(im) if batch.at[i, "route"] == "vertical" else im for i, im in zip(todo, images)]
        start = time.perf_counter()
        try:
            results = recognise(self.read, images)
        except Exception as e:
            results = [e]
        per_page = (time.perf_counter() - start) / len(todo)
        results = results if len(results) == len(todo) else results * len(todo)
        regions, layout_share = self._layout_together(images, results)
        for k, (i, result) in enumerate(zip(todo, results)):
            if isinstance(result, Exception):
                batch.at[i, "seconds_ocr"] = per_page
                batch.at[i, "error"] = f"ocr: paddleocr failed on this page ({type(result).__name__}: {str(result)[:300]})"
                continue
            t0 = time.perf_counter()
            try:
                page = self.structure(images[k], result, batch.at[i, "route"], regions=regions[k])
            except Exception as e:  # a structure model's failure costs the page its regions and tables, not its text
                log.warning("page structure failed on %s: %s", batch.at[i, "page_id"], e)
                page = PageStructure(self.cfg.layout.model_copy(update={"regions": "off", "tables": "off"}))(None, result, batch.at[i, "route"])
                page.warnings.append(f"structure_failed: layout/table models failed on this page ({type(e).__name__}: "
                                     f"{str(e)[:200]}); its lines are in plain reading order; report it with the page")
            structure_s = time.perf_counter() - t0 + layout_share
            if self.timings is not None:
                self.timings["structure"] += structure_s
            batch.at[i, "seconds_ocr"] = per_page + structure_s
            if page.warnings:
                add_warnings(batch, i, page.warnings)
            conf = confidence(result)
            batch.at[i, "text"] = page.text
            batch.at[i, "lines_json"] = lines_to_json(page.lines, page.regions)
            batch.at[i, "tables_json"] = tables_to_json(page.tables)
            batch.at[i, "confidence"] = conf
            batch.at[i, "paddle_confidence"] = conf
            batch.at[i, "engine"] = "paddleocr"
            batch.at[i, "model"] = self.model
            batch.at[i, "node"] = self.node
