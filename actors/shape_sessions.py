"""ONNX Runtime sessions of one model, one per input shape: on a GPU no convolution ever changes shape.

ONNX Runtime's CUDA convolution (cuDNN 9) keeps the execution plan of the last input shape only: each time
a node sees another shape than on its previous run, it builds a new cuDNN graph and plan (`Conv::UpdateState`
→ `CreateCudnnFeExecutionPlan`), ~0.2-0.8 s for PP-OCRv5's recogniser, although the shape was seen before.
A reader whose runs alternate between a few shapes (every page's lines fall in two or three width buckets)
paid that on nearly every run: on an H100 a page alone spent 0.48 s in recognition with the GPU ~6% busy, and
a warm-up of every shape changed nothing. Sessions are cheap (the recogniser's weights are ~16 MB), so each
shape gets its own, created when the shape first comes (`warm_up` makes them before the first page) and kept in
an LRU of `max_sessions`.

Memory: each session has its own arena, capped as the one session was. The last run of a group of same-shape
runs passes `release=True`, which gives that arena's free regions back (ONNX Runtime's arena shrinkage, at
the end of the run itself: a separate shrinking run would change the shape and cost a plan), so at most
one session holds activations at a time. Or, with `shared_arena`, every session of the process allocates from
one arena registered with ONNX Runtime's environment (`create_and_register_allocator_v2`) under one cap, and
nothing is released between runs (an H100 measured the release at ~30% of recognition: cluster/gpu-bench/SERVE.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from actors.arena import arena_device, run_within_cap

_SHARED: dict = {}  # device -> the cap of the arena registered for it in this process (one registration allowed)


def shared_arena_config(engine_config: dict, cap_bytes: int | None) -> dict:
    """`engine_config` for sessions that allocate from the process's one shared arena on its device (registered
    on first use, capped at `cap_bytes`; None: no cap). Registering twice is an error in ONNX Runtime, so a
    later reader in the same process shares the first one's arena and cap."""
    import onnxruntime as ort

    cuda = engine_config.get("providers", ["CPUExecutionProvider"])[0] == "CUDAExecutionProvider"
    device = int(engine_config.get("provider_options", [{}])[0].get("device_id", 0)) if cuda else 0
    key = ("Cuda" if cuda else "Cpu", device)
    if key not in _SHARED:
        info = ort.OrtMemoryInfo(key[0], ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, device, ort.OrtMemType.DEFAULT)
        arena = ort.OrtArenaCfg(int(cap_bytes or 0), 1, -1, -1)  # 1: kSameAsRequested
        if cuda:
            options = {"arena_extend_strategy": "kSameAsRequested", "device_id": str(device)}
            if cap_bytes:
                options["gpu_mem_limit"] = str(int(cap_bytes))
            ort.create_and_register_allocator_v2("CUDAExecutionProvider", info, options, arena)
        else:
            ort.create_and_register_allocator(info, arena)
        _SHARED[key] = cap_bytes
    return {**engine_config, "session_config": {**engine_config.get("session_config", {}), "session.use_env_allocators": "1"}}


class ShapeSessions:
    """`read(feeds)` on the session for the feeds' shapes (`per_shape`), or on one session for every shape."""

    def __init__(self, model: str | Path, engine_config: dict, per_shape: bool, max_sessions: int = 32,
                 shared_arena: bool = False, session=None):
        """`session`: an ONNX Runtime session of `model` to start from (else one is made now, so that a model
        that cannot load fails the actor's start); with `per_shape` it serves the first shape."""
        from actors.models import onnx_session

        self.model, self.engine_config = model, engine_config
        self.shared = shared_arena  # engine_config already names the env allocators (shared_arena_config)
        self.max_sessions = max(1, max_sessions)
        probe = session if session is not None else onnx_session(model, engine_config)
        self.providers = probe.get_providers()
        self.one, self.spare = (None, probe) if per_shape else (probe, None)  # spare: the first shape's session
        self.sessions: OrderedDict = OrderedDict()
        self.created = 1  # sessions made in all (evicted ones included)
        self._release = None
        self._lock = threading.Lock()  # a Serve replica reads from `paddle_concurrent_batches` threads

    @classmethod
    def wrap(cls, session) -> "ShapeSessions":
        """One given session for every shape (tests build theirs with their own options)."""
        return cls(session._model_path, {}, per_shape=False, session=session)

    @property
    def _model_path(self) -> str:
        return str(self.model)

    def get_providers(self) -> list[str]:
        return self.providers

    def session_for(self, feeds: dict):
        """The session of these feeds' shapes (made on first use; past `max_sessions` the least recently used goes)."""
        if self.one is not None:
            return self.one
        key = tuple((name, tuple(v.shape)) for name, v in sorted(feeds.items()))
        with self._lock:
            session = self.sessions.get(key)
            if session is None:
                from actors.models import onnx_session

                if self.spare is not None:
                    session, self.spare = self.spare, None
                else:
                    session = onnx_session(self.model, self.engine_config)
                    self.created += 1
                self.sessions[key] = session
                while len(self.sessions) > self.max_sessions:
                    self.sessions.popitem(last=False)
            self.sessions.move_to_end(key)
        return session

    def release_options(self, session):
        """Run options that give the arena's free regions back at the end of the run (GPU sessions only)."""
        if self._release is None:
            import onnxruntime as ort

            self._release = ort.RunOptions()
            self._release.add_run_config_entry("memory.enable_memory_arena_shrinkage", arena_device(session))
        return self._release

    def run(self, output_names, feeds: dict, options=None):
        """ONNX Runtime's `run`, on the session of these feeds' shapes."""
        return self.session_for(feeds).run(output_names, feeds, options)

    def read(self, feeds: dict, counts: dict | None = None, release: bool = False):
        """The session's outputs for `feeds` (within the arena's cap: actors/arena.py). `release`: the last run of
        this shape for now (per-shape sessions on a GPU give their arena's free regions back after it)."""
        session = self.session_for(feeds)
        options = None
        if release and self.one is None and not self.shared and self.providers[0] == "CUDAExecutionProvider":
            options = self.release_options(session)
        return run_within_cap(session, feeds, counts, options)
