"""How a process waits for its GPU: CUDA's scheduling flag of the device's primary context.

CUDA's default (`auto`) spins a CPU core in every wait while there are fewer CUDA contexts than cores. Ten
PaddleOCR actors or Serve replicas on one card each spin a core whenever their run waits for the GPU, which
the card shares among them in turns: on an H100 at Serve concurrency 32 every replica used ~100% of a core
(`top.txt` in gpu.sh's tarballs) with the GPU 26% busy, and the ingress replicas that render and classify
had what was left of 16 cores. `blocking` lets a waiting thread sleep until the GPU is done (a wake-up of
microseconds per wait); `yield` spins but gives the core up to any other runnable thread.

Measured on an H100 (2026-12-06, cluster/gpu-bench/SERVE.md): with `blocking` each Serve replica used 30-45% of a core
instead of ~100%, but the batch job's pool of 10 actors read 1,158 and 1,162 pages/min against 1,309 with
`auto`: the waits' wake-ups cost more than the cores gave back. So `auto` stays the default (`paddle.cuda_schedule`).

ONNX Runtime's CUDA provider runs on the device's primary context (the CUDA runtime's), whose flags the
driver API sets (`cuDevicePrimaryCtxSetFlags`), best before the context exists: the actor calls
`set_schedule` before its first GPU session. No driver (a CPU machine) or an error: nothing is changed.

`mps_active()`: whether this process's CUDA would go through CUDA's Multi-Process Service (the control
daemon's `control` socket is where a CUDA client looks for it). Under MPS the small kernels of several processes on one card
run side by side instead of in turns; on an H100 (2026-12-07, README "Online: Ray Serve") it raised Serve's PaddleOCR rate at
concurrency 32 1.14 x with 10 replicas and 1.42-1.47 x with 16. The daemon is machine-wide: hybridocr never starts it.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

# CUcontext flags (cuda.h): CU_CTX_SCHED_AUTO, _SPIN, _YIELD, _BLOCKING_SYNC, and their mask
SCHEDULES = {"auto": 0x00, "spin": 0x01, "yield": 0x02, "blocking": 0x04}
_MASK = 0x07
_done: dict = {}  # schedule -> devices set, once per process


def _driver():
    try:
        return ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None


def _state(lib, ordinal: int):
    """(device handle, primary-context flags, whether it is active) of a device ordinal; None on a driver error."""
    dev, flags, active = ctypes.c_int(), ctypes.c_uint(), ctypes.c_int()
    if lib.cuDeviceGet(ctypes.byref(dev), ordinal) or lib.cuDevicePrimaryCtxGetState(dev, ctypes.byref(flags), ctypes.byref(active)):
        return None
    return dev, flags.value, bool(active.value)


def set_schedule(schedule: str) -> list[int]:
    """Give every visible GPU's primary context the scheduling flag `schedule` (a key of SCHEDULES); keeps its
    other flags. Returns the device ordinals set ([] without a CUDA driver, or for "auto")."""
    if schedule not in SCHEDULES:
        raise ValueError(f"CUDA schedule {schedule!r}: use one of {', '.join(SCHEDULES)}")
    if schedule in _done:
        return _done[schedule]
    done: list[int] = []
    lib = _driver() if schedule != "auto" else None
    if lib is not None and lib.cuInit(0) == 0:
        count = ctypes.c_int()
        lib.cuDeviceGetCount(ctypes.byref(count))
        set_flags = getattr(lib, "cuDevicePrimaryCtxSetFlags_v2", None) or lib.cuDevicePrimaryCtxSetFlags
        for ordinal in range(count.value):
            state = _state(lib, ordinal)
            if state is None:
                continue
            dev, flags, active = state
            rc = set_flags(dev, (flags & ~_MASK) | SCHEDULES[schedule])
            if rc == 0:
                done.append(ordinal)
            else:  # e.g. a context made earlier with other flags: it keeps them
                log.warning("CUDA schedule %s not set on device %d (driver error %d, context active: %s)",
                            schedule, ordinal, rc, active)
    if done:  # one start-up line per actor, at warning level as its warm-up's, seen in Ray's logs
        log.warning("CUDA schedule %s on device(s) %s", schedule, done)
    _done[schedule] = done
    return done


def schedule_of(ordinal: int = 0) -> str | None:
    """The scheduling flag of a device's primary context now (None without a CUDA driver)."""
    lib = _driver()
    if lib is None or lib.cuInit(0) != 0:
        return None
    state = _state(lib, ordinal)
    return None if state is None else {v: k for k, v in SCHEDULES.items()}.get(state[1] & _MASK)


def mps_pipe_dir() -> str:
    """Where a CUDA client looks for the MPS control daemon's socket (CUDA's default unless the environment moves it)."""
    return os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or "/tmp/nvidia-mps"


def mps_active() -> bool:
    """Whether an MPS control daemon answers where this process's CUDA looks for one (`nvidia-cuda-mps-control -d`
    started before this process's first GPU work)."""
    return os.path.exists(os.path.join(mps_pipe_dir(), "control"))
