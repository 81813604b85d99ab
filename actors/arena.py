"""ONNX Runtime arenas under a cap: give back what is free and run again, instead of failing the page.

Each PaddleOCR actor's GPU sessions are capped (`gpu_mem_limit`, a share of the card: ten actors share
one GPU). The arena never returns a region, and with `kSameAsRequested` each region is the size of the
request that made it, so after many different shapes (a Serve replica's batches hold 1 to 8 pages) the
regions fill the cap in pieces too small for the next large request. ONNX Runtime then fails the run with
"Available memory of X is smaller than requested bytes of Y", and every later run that needs as much
fails the same way, although almost nothing is in use (seen on an H100, 2026-12-06: 10% of the pages
served at concurrency 32, and all of them once two batches shared a session).

`run_within_cap` catches exactly that error, runs the session once on a tiny input with arena shrinkage
on (regions with nothing in use go back to the device), and runs the request again. A run can also need
more regions than the cap holds on its own, from an empty arena: each tensor larger than every free region
adds a region of its size, and the earlier ones stay (seen on an H100, 2026-12-06: a recognition batch of
47 lines 1,792 px wide, whose CTC softmax alone is 774 MB, failed again after the release in every Serve
replica, although the batch job's actors read it). Then the batch is read in halves along its first axis
(every input and output of the two PaddleOCR sessions is batch-major) and the halves' outputs joined:
same results, a page is not lost to the arena's layout.
"""

from __future__ import annotations

import logging
import re

import numpy as np

log = logging.getLogger(__name__)

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8,
           "tensor(int8)": np.int8, "tensor(int32)": np.int32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


def arena_full(error: BaseException) -> bool:
    """ONNX Runtime's arena refused a request at its cap (not a CUDA out-of-memory, not a bad input)."""
    text = str(error)
    return "Available memory of" in text and "requested bytes" in text


def arena_device(session) -> str:
    """The device string of the session's arena for arena shrinkage: `gpu:N` on CUDA, else `cpu:0`."""
    if session.get_providers()[0] == "CUDAExecutionProvider":
        return f"gpu:{session.get_provider_options().get('CUDAExecutionProvider', {}).get('device_id', '0')}"
    return "cpu:0"


def tiny_feeds(session) -> dict:
    """An input for every model input: fixed dims as the model says, a free batch dim 1, other free dims 32
    (small, and a multiple of 32, which detection models need)."""
    feeds = {}
    for inp in session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else (1 if axis == 0 else 32) for axis, d in enumerate(inp.shape)]
        feeds[inp.name] = np.zeros(shape, _DTYPES.get(inp.type, np.float32))
    return feeds


def release_arena(session, device: str | None = None) -> None:
    """A tiny run with arena shrinkage on: the arena's regions with nothing in use go back."""
    import onnxruntime as ort

    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", device or arena_device(session))
    session.run(None, tiny_feeds(session), options)


def run_within_cap(session, feeds: dict, counts: dict | None = None, options=None):
    """`session.run(None, feeds, options)`; if the arena is at its cap, release its free regions and run once more
    (`counts["arena_releases"]`); if it is still at its cap, run the two halves of the batch (first axis),
    each the same way, and join their outputs (`counts["arena_splits"]`). Any other error is raised, and the
    arena's own error when a single item does not fit."""
    counts = {} if counts is None else counts
    try:
        return session.run(None, feeds, options)
    except Exception as e:
        if not arena_full(e):
            raise
        said = re.search(r"Available memory of \d+ is smaller than requested bytes of \d+", str(e))
        log.warning("ONNX Runtime's arena is at its cap (%s): releasing its free regions and running again",
                    said.group(0) if said else str(e)[-200:])
        try:
            release_arena(session)
        except Exception as failed:  # an ONNX Runtime that cannot shrink this arena: the page keeps the first error
            log.warning("the arena could not give its regions back: %s", failed)
            raise e from None
    counts["arena_releases"] = counts.get("arena_releases", 0) + 1
    try:
        return session.run(None, feeds, options)
    except Exception as e:
        sizes = {len(v) for v in feeds.values()}
        if not arena_full(e) or len(sizes) != 1 or min(sizes) < 2:
            raise
        rows = min(sizes)
    log.warning("a batch of %d does not fit the arena's cap even after the release: reading it in halves", rows)
    half = rows // 2
    counts["arena_splits"] = counts.get("arena_splits", 0) + 1
    parts = [run_within_cap(session, {k: v[:half] for k, v in feeds.items()}, counts, options),
             run_within_cap(session, {k: v[half:] for k, v in feeds.items()}, counts, options)]
    return [np.concatenate(pair, axis=0) for pair in zip(*parts)]
