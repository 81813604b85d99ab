"""PaddleOCR's own detection and recognition models, driven for throughput on a GPU.

`PaddleOCR.predict` detects one page, then recognises that page's lines in batches as wide as the
widest line of the batch. On a GPU, ONNX Runtime's cuDNN searches convolution algorithms for every
new input shape (0.1-1 s; a shape seen before costs milliseconds), and nearly every batch has a
new shape. `BatchedReader` runs the same loaded models and the same pre/post-processing code with:

- pages padded with white at the bottom and right to a multiple of `det_pad` pixels, so detection
  sees a handful of shapes, and pages of one size go through detection as one batch;
- the lines of every page in the call sorted by width and recognised together, each batch padded
  to a width bucket (four per octave) and to that bucket's batch size (fewer lines as lines get
  wider: the recogniser's attention grows with the square of the width), so recognition sees a
  few dozen shapes in a whole run and bounded memory;
- with ONNX Runtime, pixels sent as uint8 and scaled on the device (a quarter of the bytes to copy,
  no float passes in NumPy: `uint8_input_model`), the recogniser's softmax reduced there
  (`ctc_argmax_model`).

Box coordinates are those of the unpadded page. `timings` adds up seconds per step (the profile
that `hybridocr bench --profile` prints).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from pipeline.types import OcrLine


def width_bucket(width: int, cap: int = 3200) -> int:
    """Smallest bucket ≥ width: steps of 1/4 of the octave (…, 320, 384, 448, 512, 640, 768, …)."""
    if width <= 32:
        return 32
    step = (1 << (width - 1).bit_length()) // 8  # an eighth of the next power of two = a quarter octave
    return min(-(-width // step) * step, max(cap, width))


def pad_to_multiple(image: np.ndarray, multiple: int, value: int = 255) -> np.ndarray:
    """Pad an HxWxC page at the bottom and right to multiples of `multiple` (white by default)."""
    h, w = image.shape[:2]
    H, W = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    if (H, W) == (h, w):
        return image
    out = np.full((H, W) + image.shape[2:], value, dtype=image.dtype)
    out[:h, :w] = image
    return out


class TimedRunner:
    """Wraps a paddlex inference runner: adds up the seconds spent in it (and pads, if asked)."""

    def __init__(self, runner, timings: dict, key: str, pad: bool = False, max_width: int = 3200):
        self.runner, self.timings, self.key = runner, timings, key
        self.pad, self.max_width = pad, max_width
        self.shapes: set = set()

    def __call__(self, x=None, **kwargs):
        x = kwargs.pop("x") if x is None else x
        if self.pad:
            x, n = self._pad(x[0] if isinstance(x, (list, tuple)) else x)
        start = time.perf_counter()
        out = self.runner(x=x, **kwargs)
        self.timings[self.key] += time.perf_counter() - start
        self.shapes.add(tuple(x[0].shape))
        return [o[:n] for o in out] if self.pad else out

    def _pad(self, batch: np.ndarray):
        """Recognition batch (N, C, 48, W) → (next power of two ≥ N, C, 48, bucket(W)); paddlex itself pads with zeros."""
        n, c, h, w = batch.shape
        N, W = max(4, 1 << (n - 1).bit_length()), width_bucket(w, self.max_width)
        if (N, W) == (n, w):
            return [batch], n
        padded = np.zeros((N, c, h, W), dtype=batch.dtype)
        padded[:n, :, :, :w] = batch
        return [padded], n

    def __getattr__(self, name):
        return getattr(self.runner, name)


def pipeline_parts(ocr):
    """The loaded models inside paddleocr's OCR pipeline (paddleocr 3.x / paddlex 3.x layout)."""
    inner = getattr(ocr.paddlex_pipeline, "_pipeline", ocr.paddlex_pipeline)
    return inner, inner.text_det_model, inner.text_rec_model


def time_runners(ocr, timings: dict) -> None:
    """Profile only: time the det and rec runners of paddleocr's own pipeline (no padding)."""
    _, det, rec = pipeline_parts(ocr)
    det.runner = TimedRunner(det.runner, timings, "det_infer")
    rec.runner = TimedRunner(rec.runner, timings, "rec_infer")


class BatchedReader:
    """Reads pages (BGR arrays) with the models of a loaded `PaddleOCR`; returns the lines per page.

    With ONNX Runtime (`engine_config` given) both models run on copies that take uint8 pixels and
    scale them on the device (actors/models.py: `uint8_input_model`), the recogniser's reducing its
    softmax there too (`ctc_argmax_model`), in sessions with the same settings; with paddlepaddle
    both go through paddlex's own predictors, padded the same way.
    """

    def __init__(self, ocr, rec_batch_size: int, det_pad: int = 128, score_thresh: float = 0.0,
                 engine_config: dict | None = None, det_batch_size: int = 4, pad_rows: str = "pow2",
                 per_shape: bool = False, shared_arena: bool = False, rec_fp16: bool = False):
        self.inner, self.det, self.rec = pipeline_parts(ocr)
        self.pad_rows = pad_rows  # a short recognition batch's rows: "limit" (its width's) or "pow2" (`paddle.rec_pad_rows`)
        self.rec_batch_size, self.det_pad, self.score_thresh = rec_batch_size, det_pad, score_thresh
        self.det_batch_size = det_batch_size
        self.timings: dict = defaultdict(float)
        # arena_releases: runs repeated after the session's arena gave back its free regions; arena_splits: batches
        # read in halves because they did not fit the arena's cap even then (actors/arena.py)
        self.counts: dict = {}
        self.rec_cells: int | None = None  # lines x padded width per recognition run, once a run had to be split
        self.max_width = getattr(self.rec.pre_tfs.get("ReisizeNorm"), "max_imgW", 3200)
        self.rec_shapes: set = set()
        self.session = None
        det_runner = self.det.runner

        def path(runner) -> Path:
            return Path(getattr(runner, "model_dir", "")) / f"{getattr(runner, 'model_file_prefix', 'inference')}.onnx"

        self.det_session = None
        self.rec_fp16 = False  # the recogniser runs in float16 (`paddle.rec_precision`): only in its own session
        if engine_config is not None and path(det_runner).is_file() and path(self.rec.runner).is_file():
            from actors.models import recogniser_model, uint8_input_model
            from actors.shape_sessions import ShapeSessions, shared_arena_config

            if shared_arena:  # one arena for both models' sessions, capped at the two arenas' caps together
                limit = engine_config.get("provider_options", [{}])[0].get("gpu_mem_limit")
                engine_config = shared_arena_config(engine_config, 2 * int(limit) if limit else None)

            norm = self.det.pre_tfs["Normalize"]  # per_shape: one session per input shape (actors/shape_sessions.py)
            det = uint8_input_model(path(det_runner), norm.alpha, norm.beta)
            self.det_session = ShapeSessions(det, engine_config, per_shape, max_sessions=12, shared_arena=shared_arena)
            self.rec_source = path(self.rec.runner)  # paddleocr's recogniser, before the reader's changes
            rec = recogniser_model(self.rec_source, rec_fp16)
            self.rec_fp16 = rec_fp16
            # every shape the reader makes (15 widths at their limit; with pow2 ~70) and room for halved runs
            self.session = ShapeSessions(rec, engine_config, per_shape, max_sessions=max(24, len(self.rec_shape_plan()) + 8),
                                         shared_arena=shared_arena)
        else:
            self.rec.runner = TimedRunner(self.rec.runner, self.timings, "rec_infer", True, self.max_width)
        self.det.runner = TimedRunner(det_runner, self.timings, "det_infer")

    @property
    def shapes(self) -> dict:
        rec = self.rec_shapes if self.session is not None else self.rec.runner.shapes
        return {"det": sorted(self.det.runner.shapes), "rec": sorted(rec)}

    def __call__(self, pages: list[np.ndarray]) -> list[list[OcrLine]]:
        t = self.timings
        start = time.perf_counter()
        padded = [pad_to_multiple(p, self.det_pad) for p in pages]
        groups: dict = defaultdict(list)
        for i, p in enumerate(padded):
            groups[p.shape].append(i)
        polys: list = [[] for _ in pages]
        size = self.det_batch_size
        runs = [group[b : b + size] for group in groups.values() for b in range(0, len(group), size)]
        for k, members in enumerate(runs):
            last = k + 1 == len(runs) or len(runs[k + 1]) != len(members) or padded[runs[k + 1][0]].shape != padded[members[0]].shape
            for i, found in zip(members, self._detect([padded[i] for i in members], release=last)):
                if len(found):
                    polys[i] = self.inner._sort_boxes(found)
        t["det"] += time.perf_counter() - start
        start = time.perf_counter()
        crops, owners = [], []
        for i, page_polys in enumerate(polys):
            if not len(page_polys):
                continue
            for crop, poly in zip(self.inner._crop_by_polys(padded[i], page_polys), page_polys):
                if crop.size and crop.shape[0] > 0 and crop.shape[1] > 0:
                    crops.append(crop)
                    owners.append((i, poly))
        t["crop"] += time.perf_counter() - start
        start = time.perf_counter()
        recognised = self._recognise(crops)
        t["rec"] += time.perf_counter() - start
        out: list[list[OcrLine]] = [[] for _ in pages]
        for (i, poly), (text, score) in zip(owners, recognised):
            if score >= self.score_thresh and text.strip():
                h, w = pages[i].shape[:2]
                box = np.clip(np.asarray(poly, dtype=float), 0, [w, h]).tolist()
                out[i].append(OcrLine(box, text, float(score)))
        t["pages"] += len(pages)
        return out

    def _detect(self, pages: list[np.ndarray], release: bool = False) -> list:
        """Text boxes per page (pages of one shape): paddlex's resize and DB post-processing; with an
        ONNX Runtime session the pixels go in as uint8 and are scaled on the device. `release`: no run of this
        shape follows in this call (a per-shape session gives its arena's free regions back)."""
        det = self.det
        if self.det_session is None or any(p.ndim != 3 or p.shape[2] != 3 for p in pages):
            return [res["dt_polys"] for res in det(pages, batch_size=len(pages))]
        images, shapes = det.pre_tfs["Resize"](imgs=det.pre_tfs["Read"](imgs=pages), limit_side_len=det.limit_side_len,
                                               limit_type=det.limit_type, max_side_limit=det.max_side_limit)
        x = np.stack(images)
        start = time.perf_counter()
        splits = self.counts.get("arena_splits", 0)
        preds = self.det_session.read({"image": x}, self.counts, release)
        if self.counts.get("arena_splits", 0) > splits:  # the next detection runs take half as many pages
            self.det_batch_size = max(1, len(pages) // 2)
        self.timings["det_infer"] += time.perf_counter() - start
        det.runner.shapes.add(x.shape)
        polys, _ = det.post_op(preds, shapes, thresh=det.thresh, box_thresh=det.box_thresh, unclip_ratio=det.unclip_ratio)
        return polys

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, score) per crop; crops of similar width share a batch, fewer per batch as lines get wider."""
        order = sorted(range(len(crops)), key=lambda k: crops[k].shape[1] / crops[k].shape[0])
        result: list = [None] * len(crops)
        batches, batch = [], []
        for k in order:  # ascending width: a batch ends when the widest line's cap is reached
            if batch and len(batch) >= self.batch_for(crops[k]):
                batches.append(batch)
                batch = []
            batch.append(k)
        batches += [batch] if batch else []
        if self.session is None:
            for members in batches:
                images = [crops[k] for k in members]
                for k, r in zip(members, self.rec(images, batch_size=len(images))):
                    result[k] = (r["rec_text"], r["rec_score"])
            return result
        feeds = [self._rec_feed([crops[k] for k in members], self.batch_for(crops[members[-1]])) for members in batches]
        for j, (members, (x, valid)) in enumerate(zip(batches, feeds)):
            release = j + 1 == len(feeds) or feeds[j + 1][0].shape != x.shape  # this shape's last run in the call
            for k, res in zip(members, self._read_feed(x, valid, len(members), release)):
                result[k] = res
        return result

    def batch_for(self, crop: np.ndarray) -> int:
        """Lines per recognition batch for lines as wide as this crop: the recogniser's attention
        grows with the square of the width, so batches of wide lines shrink (memory stays bounded)."""
        return self.rows_for(width_bucket(max(int(np.ceil(48 * crop.shape[1] / max(crop.shape[0], 1))), 320), self.max_width))

    def rows_for(self, width: int) -> int:
        rows = max(min(4, self.rec_batch_size), min(self.rec_batch_size, int(self.rec_batch_size * (1536 / width) ** 2)))
        return rows if self.rec_cells is None else max(1, min(rows, self.rec_cells // width))

    def rec_shape_plan(self) -> list[tuple[int, int]]:
        """(rows, width) of the recognition runs this reader makes: each width bucket at its limit, and with
        `pad_rows` "pow2" the powers of two from 4 below it."""
        plan = []
        for width in sorted({width_bucket(w, self.max_width) for w in range(320, self.max_width + 1, 32)}):
            limit = self.rows_for(width)
            below = [1 << k for k in range(2, limit.bit_length()) if 1 << k < limit] if self.pad_rows == "pow2" else []
            plan += [(rows, width) for rows in below + [limit]]
        return plan

    def warm_up(self, page_sizes: list[tuple[int, int]] = ()) -> dict:
        """One recognition run of each shape of `rec_shape_plan` on blank lines (`paddle.warm_up`), and one detection
        run of 1 to `det_batch_size` blank pages of each (height, width) in `page_sizes` (a job's usual paper at its
        DPI), so that the set-up a new input shape costs in a process (on a GPU: its session, cuDNN's choices, the
        arena's regions) is paid before the first page. Returns the shapes run: {"rec": [(rows, width)], "det":
        [(pages, height, width)]}; a run split to fit the arena's cap lowers the rows after it."""
        if self.session is None:
            return {"rec": [], "det": []}
        height = self.rec.pre_tfs["ReisizeNorm"].rec_image_shape[1]
        rec, det = [], []
        for rows, width in self.rec_shape_plan():
            rows = min(rows, self.rows_for(width))  # smaller once a run had to be split
            self._run_rec(np.zeros((rows, height, width, 3), np.uint8), np.zeros((rows, 1, 1, width), np.uint8), True)
            rec.append((rows, width))
        for size in dict.fromkeys(page_sizes):
            page = pad_to_multiple(np.full((*size, 3), 255, np.uint8), self.det_pad)
            n = 1
            while n <= self.det_batch_size:  # as calls group them; a run split to fit the arena's cap lowers the limit
                self._detect([page] * n, release=True)
                det.append((n, *page.shape[:2]))
                n += 1
        return {"rec": rec, "det": det}

    def _rec_feed(self, batch: list[np.ndarray], rows: int) -> tuple[np.ndarray, np.ndarray]:
        """The input of one recognition run: paddlex's reading and resizing (its `OCRReisizeNormImg`, kept in
        uint8: the scaling runs on the device), one padded (batch, bucket) shape; `valid` marks each line's pixels.

        `rows`: the most lines a batch this wide holds. A fuller batch is padded to that; a short one (the last
        of a call, or a call of one or two pages, as Serve's often are) too with `pad_rows` "limit" (one shape per
        width: the GPU's choice, where each new shape costs set-up), or with "pow2" to the next power of two, at
        least 4: a few shapes more, and no recognising of empty rows by the dozen (a page's last 3 lines were 23
        rows; the CPU's choice)."""
        norm = self.rec.pre_tfs["ReisizeNorm"]
        _, height, min_width = norm.rec_image_shape
        sized = []
        for image in self.rec.pre_tfs["Read"](imgs=batch):
            ratio = image.shape[1] / float(image.shape[0])
            width = int(height * max(min_width / height, ratio))  # paddlex: the line's own padded width
            resized = norm.max_imgW if width > norm.max_imgW else min(width, math.ceil(height * ratio))
            sized.append((cv2.resize(image, (resized, height)), min(width, norm.max_imgW)))
        width = width_bucket(max(w for _, w in sized), self.max_width)
        if self.pad_rows == "pow2":
            rows = min(rows, max(4, 1 << (len(sized) - 1).bit_length()))
        rows = max(len(sized), rows)
        x = np.zeros((rows, height, width, 3), dtype=np.uint8)
        valid = np.zeros((rows, 1, 1, width), dtype=np.uint8)
        for j, (image, _) in enumerate(sized):
            x[j, :, : image.shape[1]] = image.reshape(height, image.shape[1], -1)
            valid[j, ..., : image.shape[1]] = 1
        return x, valid

    def _read_feed(self, x: np.ndarray, valid: np.ndarray, n: int, release: bool = False) -> list[tuple[str, float]]:
        """One recognition run and its CTC decoding for the first `n` rows. `release`: no run of this shape follows
        in this call (a per-shape session gives its arena's free regions back)."""
        self.rec_shapes.add((x.shape[0], 3, x.shape[1], x.shape[2]))
        start = time.perf_counter()
        index, prob = self._run_rec(x, valid, release)
        self.timings["rec_infer"] += time.perf_counter() - start
        return [(text, float(score)) for text, score in self.rec.post_op.decode(index[:n], prob[:n], is_remove_duplicate=True)]

    def _run_rec(self, x: np.ndarray, valid: np.ndarray, release: bool = False) -> list:
        """One recognition run within the arena's cap; if it had to be read in halves, later batches are no
        larger than the halves (`rec_cells`), so they are not split again."""
        rows, width = x.shape[0], x.shape[2]
        splits = self.counts.get("arena_splits", 0)
        out = self.session.read({"image": x, "valid": valid}, self.counts, release)
        if self.counts.get("arena_splits", 0) > splits:
            self.rec_cells = min(self.rec_cells or rows * width, rows // 2 * width)
        return out
