"""vLLM's engine core forked from the preloaded fork server inside a Ray actor (actors/vlm_process.py)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import signal
import time

import numpy as np
import psutil
import pytest

from actors import vlm_process
from tests.conftest import needs_vllm, tiny_vlm_config


def _env_of_child(name: str, queue) -> None:
    queue.put(os.environ.get(name))


def test_the_forked_process_runs_with_the_environment_its_parent_has_when_it_starts_it():
    ctx = vlm_process._Context()
    ctx.set_forkserver_preload([])
    multiprocessing.forkserver.ensure_running()
    try:
        os.environ["HYBRIDOCR_TEST_LATE"] = "set after the server started"
        queue = ctx.Queue()
        proc = ctx.Process(target=_env_of_child, args=("HYBRIDOCR_TEST_LATE", queue))
        proc.start()
        assert queue.get(timeout=60) == "set after the server started"
        proc.join(30)
        assert proc.exitcode == 0
    finally:
        os.environ.pop("HYBRIDOCR_TEST_LATE", None)
        multiprocessing.forkserver._forkserver._stop()


@needs_vllm
def test_engine_core_is_forked_from_the_server_and_ends_with_it(tiny_vlm_dir, ray_local):
    ray = ray_local

    @ray.remote(num_cpus=0)
    class Engine:
        def __init__(self, cfg):
            from actors.vlm_engine import VlmEngine
            from pipeline.config import VlmConfig

            self.engine = VlmEngine(VlmConfig.model_validate(cfg))

        def read(self):
            res = self.engine.read(np.full((300, 300, 3), 200, np.uint8), "p").result(600)
            server = multiprocessing.forkserver._forkserver._forkserver_pid
            cores = [p.pid for p in psutil.Process(server).children()] if server else []
            return res.output_tokens, self.engine.phases, server, cores

    actor = Engine.remote(tiny_vlm_config(tiny_vlm_dir))
    try:
        tokens, phases, server, cores = ray.get(actor.read.remote(), timeout=900)
        assert tokens == 8 and phases["engine_process"] == "forkserver", phases
        assert server and len(cores) == 1, (server, cores)  # the engine core is the server's child, not the actor's
        # Ray ends an actor's own children with it, not their children: the engine core must end with
        # the server (on an H100 an orphaned one kept 73 GB of the card after its actor had gone)
        os.kill(server, signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline and psutil.pid_exists(cores[0]) and psutil.Process(cores[0]).status() != "zombie":
            time.sleep(0.5)
        assert not psutil.pid_exists(cores[0]) or psutil.Process(cores[0]).status() == "zombie"
    finally:
        ray.kill(actor)


def test_outside_a_ray_actor_vllm_keeps_its_own_way():
    assert vlm_process.prestart("forkserver") is None  # vLLM forks there, which is as fast
    assert vlm_process.prestart("spawn") is None and not vlm_process.install(None)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
