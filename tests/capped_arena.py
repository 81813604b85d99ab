"""A capped ONNX Runtime arena on the CPU, for `tests/test_arena.py`'s scripts (each runs in its own process:
the allocator is registered for the whole process). The same BFC arena as a GPU session's under
`gpu_mem_limit`, here a shared CPU allocator with `max_mem`, growing by what is asked (`kSameAsRequested`)."""

from __future__ import annotations

import onnxruntime as ort


def capped_options(mib: int) -> ort.SessionOptions:
    """Register a CPU arena of `mib` MiB for this process; options for sessions that allocate from it."""
    info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(info, ort.OrtArenaCfg(mib * 2**20, 1, -1, -1))  # 1: kSameAsRequested
    options = ort.SessionOptions()
    options.add_session_config_entry("session.use_env_allocators", "1")
    options.log_severity_level = 4
    return options


def capped_session(path, options: ort.SessionOptions) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cap_reader(read, mib: int) -> None:
    """The batched reader's two sessions rebuilt in one capped arena of `mib` MiB."""
    from actors.shape_sessions import ShapeSessions

    options = capped_options(mib)
    read.session = ShapeSessions.wrap(capped_session(read.session._model_path, options))
    read.det_session = ShapeSessions.wrap(capped_session(read.det_session._model_path, options))
