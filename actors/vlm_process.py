"""vLLM's engine-core process inside a Ray actor: forked from a server that imported vLLM beside the actor.

Inside a Ray actor vLLM must start its engine core with `spawn` (forking a Ray worker, with its
gRPC threads, can hang: vLLM PR #14768). A spawned process is a new interpreter that imports torch
and vLLM again, after the actor has imported them itself: on an H200 node the engine build took
34-47 s more inside the actor than vLLM's plain fork outside Ray (README "Speed"), all of it on the
critical path of every VLM page.

`prestart("forkserver")`, called at the very start of the engine's start, launches Python's fork
server (a new interpreter, as spawn gives) with vLLM's engine core preloaded, so that it imports
while the actor imports. `install()` then hands vLLM that server's context instead of spawn's: when
vLLM starts its engine core, the process is forked from the server, already imported. It is the
process spawn would give in every other respect: no Ray threads (the server never ran any),
multiprocessing prepares its main module, path and directory as for spawn, and it runs with the
actor's environment as it is at that moment (vLLM sets variables for its child just before).

`vlm.engine_process: spawn` keeps vLLM's own way. A vLLM without the hook in `_HOOK` keeps it too
(with a warning), and so does a start through the server that fails (VlmEngine tries spawn once).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import signal
import sys

log = logging.getLogger(__name__)
_HOOK = "vllm.v1.engine.utils"  # vLLM 0.2x-0.3x: CoreEngineProcManager takes its context from this module's get_mp_context
_PRELOAD = "actors.vlm_preload"  # what the server imports before it forks


def die_with_parent(sig: int, parent: int | None = None) -> None:
    """Linux: this process gets `sig` when its parent exits (PR_SET_PDEATHSIG); at once if `parent`
    (the pid it was started by) is already gone. A no-op elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, sig)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def _run_with_env(env: dict, server: int | None, target, *args, **kwargs):
    """In the forked process: the environment its parent had when it started it, then vLLM's target.

    A spawned engine core is the actor's child, which Ray ends with the actor; this one is the fork
    server's, so it ends with the server, and the server with the actor (actors/vlm_preload.py): no
    engine outlives its actor on the GPU (seen on an H100 before: the server ended with the actor, its
    orphaned engine core held 73 GB). SIGKILL: the engine's own workers end on their death pipes."""
    die_with_parent(signal.SIGKILL, server)
    os.environ.clear()
    os.environ.update(env)
    return target(*args, **kwargs)


class _Process(multiprocessing.context.ForkServerProcess):
    def start(self):
        multiprocessing.forkserver.ensure_running()  # (again, if it had ended): its pid is this process's parent-to-be
        server = multiprocessing.forkserver._forkserver._forkserver_pid
        self._target = functools.partial(_run_with_env, dict(os.environ), server, self._target)  # type: ignore[attr-defined]
        super().start()


class _Context(multiprocessing.context.ForkServerContext):
    Process = _Process  # type: ignore[assignment]


def _in_ray_actor() -> bool:
    try:
        import ray

        return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None
    except Exception:
        return False


def prestart(method: str) -> _Context | None:
    """Start the fork server now, preloading vLLM (returns at once; the server imports in the
    background). None where vLLM would not spawn: outside a Ray actor it forks, which is as fast."""
    if method != "forkserver" or not sys.platform.startswith("linux") or not _in_ray_actor():
        return None
    ctx = _Context()
    # '__main__' too: the server imports the actor's main module (Ray's worker) as spawn's child would,
    # so the forked process finds it loaded
    ctx.set_forkserver_preload(["__main__", _PRELOAD])
    os.environ["HYBRIDOCR_FORKSERVER_PARENT"] = str(os.getpid())  # the server ends with this process
    try:
        multiprocessing.forkserver.ensure_running()
    except OSError as e:
        log.warning("vlm engine: the fork server did not start (%s); vLLM spawns its engine core", e)
        return None
    return ctx


def install(ctx: _Context | None) -> bool:
    """Make vLLM start its engine core from the fork server; False where it keeps its own way."""
    if ctx is None:
        return False
    try:
        hook = __import__(_HOOK, fromlist=["get_mp_context"])
        original = hook._hybridocr_original_get_mp_context if hasattr(hook, "_hybridocr_original_get_mp_context") \
            else hook.get_mp_context
    except (ImportError, AttributeError) as e:
        log.warning("vlm engine: this vLLM has no %s.get_mp_context (%s); it spawns its engine core", _HOOK, e)
        return False

    def get_mp_context():
        # vLLM's own checks first: they set RAY_ADDRESS for its child and spawn for the engine's own workers
        original()
        return ctx

    hook._hybridocr_original_get_mp_context = original
    hook.get_mp_context = get_mp_context
    return True


def uninstall() -> None:
    """vLLM's own context again (a start through the server failed)."""
    hook = sys.modules.get(_HOOK)
    original = getattr(hook, "_hybridocr_original_get_mp_context", None)
    if original is not None:
        hook.get_mp_context = original  # type: ignore[union-attr]
