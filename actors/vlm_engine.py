"""The VLM engine that the batch job (and Ray Serve) share: vLLM's async engine, always kept full.

`VlmEngine(cfg)` returns at once: the engine (vLLM's `AsyncLLM`, or a client of an
OpenAI-compatible `vllm serve` when `vlm.server_url` is set) is built in the background, in an
event loop of its own thread, so that whoever holds it (a Ray Data actor, a Serve replica) is
ready to pass other rows on while vLLM starts. `read(image, key)` hands one page to it and returns
a `concurrent.futures.Future` of its `VlmResult`; `aread` is the same for async callers.

Each page is a request of its own and is retried on its own (a loop or a cut-off output goes again
at the next temperature): nothing waits for a batch's slowest page, and at most `max_in_flight`
requests (ceil(1.1 x max_num_seqs), as in Ray's `ray.data.llm` vLLM stage) are in the engine at
once, so its scheduler always has the next page when one finishes, whatever the output lengths.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import logging
import threading
import time
from concurrent.futures import Future

import numpy as np

from actors import vlm_process
from actors.vlm import (
    VlmResult, better, build_request, chat_messages, engine_args, max_in_flight, mean_probability, page_max_tokens, problem_of,
    resize_for_model, result_from_output, retry_temperature, sampling_params,
)
from pipeline.config import VlmConfig
from pipeline.types import since_process_start

log = logging.getLogger(__name__)
INSTALL_HINT = "install the VLM engine with `VLM=gpu bash cluster/install.sh` (or VLM=cpu for tests), or set vlm.server_url"


class _VllmBackend:
    """vLLM's `AsyncLLM` in this process (its engine core in a process of its own)."""

    def __init__(self, cfg: VlmConfig):
        t0 = time.time()
        args = engine_args(cfg)  # before the fork server starts: the variables it sets reach it
        server = vlm_process.prestart(cfg.engine_process)  # imports vLLM beside this process's import
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        t1 = time.time()
        self.cfg = cfg
        process = "forkserver" if vlm_process.install(server) else "spawn"
        try:
            self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        except Exception as e:
            if process != "forkserver":
                raise
            log.warning("vlm engine: the start through the fork server failed (%s: %s); again with vLLM's spawn "
                        "(set vlm.engine_process: spawn to skip the fork server)", type(e).__name__, str(e)[:300])
            vlm_process.uninstall()
            process = "spawn"
            self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**args))
        self.ids = itertools.count()
        self.phases = {"import_vllm": round(t1 - t0, 1), "build_engine": round(time.time() - t1, 1), "engine_process": process}

    async def attempt(self, image: np.ndarray, cfg: VlmConfig, attempt: int, temperature: float, overrides: dict) -> VlmResult:
        from vllm.sampling_params import RequestOutputKind

        params = sampling_params(cfg, temperature, attempt, **overrides)
        params.output_kind = RequestOutputKind.FINAL_ONLY  # one output per request, not one per token
        final = None
        async for out in self.engine.generate(build_request(image, cfg), params, f"page-{next(self.ids)}"):
            final = out
        return result_from_output(final, attempt, temperature, cfg)

    def close(self) -> None:
        self.engine.shutdown()


class _ServerBackend:
    """The same requests to an OpenAI-compatible server (`vllm serve MODEL`)."""

    def __init__(self, cfg: VlmConfig):
        from openai import AsyncOpenAI

        self.cfg = cfg
        self.client = AsyncOpenAI(base_url=cfg.server_url, api_key=cfg.api_key)

    async def attempt(self, image: np.ndarray, cfg: VlmConfig, attempt: int, temperature: float, overrides: dict) -> VlmResult:
        buf = io.BytesIO()
        # sized here, so the server's image processor keeps the size (per-request mm_processor_kwargs
        # would need `--trust-request-mm-kwargs` on the server)
        resize_for_model(image, cfg).save(buf, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        extra: dict = {}
        if cfg.repeat_max_pattern_tokens > 0:
            extra["repetition_detection"] = {"max_pattern_size": cfg.repeat_max_pattern_tokens, "min_count": cfg.repeat_min_count}
        if cfg.ignore_eos:
            extra["ignore_eos"] = True
        overrides = dict(overrides)
        max_tokens = overrides.pop("max_tokens", cfg.max_tokens)
        extra.update(overrides)
        r = await self.client.chat.completions.create(
            model=cfg.model, messages=chat_messages(cfg, url), max_tokens=max_tokens, temperature=temperature,
            seed=cfg.seed + attempt, logprobs=True, top_logprobs=1, extra_body=extra,
        )
        choice = r.choices[0]
        lps = [c.logprob for c in (choice.logprobs.content or [])] if choice.logprobs else []
        text = choice.message.content or ""
        reason = str(choice.finish_reason or "length")
        return VlmResult(text, reason, r.usage.prompt_tokens, r.usage.completion_tokens, mean_probability(lps),
                         attempt, problem_of(text, reason, cfg), temperature)

    def close(self) -> None:
        pass


class VlmEngine:
    """One VLM engine, started in the background; `read` pages into it from any thread."""

    def __init__(self, cfg: VlmConfig):
        self.cfg = cfg
        self.max_in_flight = max_in_flight(cfg)
        self.started_at = time.time()
        self.ready_at: float | None = None
        self.phases: dict = {}  # seconds per start phase, once up
        self.in_flight = self.peak_in_flight = 0
        self._busy = self._busy_since = self._charged = 0.0  # engine-busy seconds, kept in the loop's thread
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vlm-engine", daemon=True)
        self._thread.start()
        self._backend: Future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)

    async def _start(self):
        # Building blocks this loop (its only work until then): reads queue behind it.
        loop_at = time.time()
        self._slots = asyncio.Semaphore(self.max_in_flight)
        try:
            backend = _ServerBackend(self.cfg) if self.cfg.server_url else _VllmBackend(self.cfg)
        except ImportError as e:
            raise RuntimeError(f"the VLM engine could not start ({e}): {INSTALL_HINT}") from None
        warm = time.time()
        if isinstance(backend, _VllmBackend):
            # vLLM loads its image processor and tokenizer on the first request (~30 s for
            # Qwen2.5-VL-7B on an H200, the card idle): here, before the engine counts as up
            side = max(28, int(self.cfg.min_pixels ** 0.5) // 28 * 28)
            try:
                await backend.attempt(np.full((side, side, 3), 255, np.uint8), self.cfg, 0, 0.0, {"max_tokens": 1})
            except Exception as e:  # the pages' own requests will say what is wrong
                log.warning("vlm engine: warm-up request failed: %s", e)
        self.ready_at = time.time()
        self.phases = {"process_start": since_process_start(self.started_at, 1),
                       "wait_for_loop": round(loop_at - self.started_at, 1), **getattr(backend, "phases", {}),
                       "first_request": round(self.ready_at - warm, 1)}
        # one line per engine, also under Ray's WARNING log level: where a slow start went
        log.warning("vlm engine ready after %.1f s (%s)", self.ready_at - self.started_at,
                    ", ".join(f"{k} {v}" + (" s" if isinstance(v, (int, float)) else "") for k, v in self.phases.items()))
        return backend

    def when_ready(self, callback) -> None:
        """Call `callback(time, phases)` once the engine is up (phases: seconds per start phase)."""
        self._backend.add_done_callback(lambda f: f.exception() is None and callback(self.ready_at, self.phases))

    def start_error(self) -> BaseException | None:
        """Why the engine failed to start; None while it starts or once it is up."""
        return self._backend.exception() if self._backend.done() else None

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the engine is up (raises what stopped it from starting)."""
        self._backend.result(timeout)

    def read(self, image: np.ndarray, key: str = "", cfg: VlmConfig | None = None, **overrides) -> Future:
        """Read one page; a Future of its VlmResult.

        `cfg`: this request's settings (prompt, token budget, retries; the engine's own by default; the
        engine arguments stay those it was built with). `overrides` go to vLLM's SamplingParams
        (tests force loops with them)."""
        return asyncio.run_coroutine_threadsafe(self._read(image, key, cfg or self.cfg, overrides), self._loop)

    async def aread(self, image: np.ndarray, key: str = "", cfg: VlmConfig | None = None, **overrides) -> VlmResult:
        return await asyncio.wrap_future(self.read(image, key, cfg, **overrides))

    async def _read(self, image: np.ndarray, key: str, cfg: VlmConfig, overrides: dict) -> VlmResult:
        backend = await asyncio.wrap_future(self._backend)
        overrides = {"max_tokens": page_max_tokens(cfg, key), **overrides}
        best: VlmResult | None = None
        async with self._slots:  # the page keeps its slot through its retries: no request waits twice
            if self.in_flight == 0:
                self._busy_since = time.perf_counter()
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                for attempt in range(1, cfg.max_retries + 2):
                    temperature = retry_temperature(cfg, attempt)
                    res = await backend.attempt(image, cfg, attempt, temperature, overrides)
                    if better(res, best):
                        best = res
                    best.attempts = attempt
                    if best.problem is None:
                        break
                    if attempt <= cfg.max_retries:
                        log.info("vlm: page %s %s, retry %d at temperature %.2f", key, best.problem, attempt,
                                 retry_temperature(cfg, attempt + 1))
            finally:
                best_seconds = self._charge()
                self.in_flight -= 1
                if self.in_flight == 0:
                    self._busy += time.perf_counter() - self._busy_since
        if best is not None:
            best.seconds = best_seconds
        return best  # type: ignore[return-value]

    def _charge(self) -> float:
        """Busy seconds since the last page finished: each page is charged the time the engine
        worked while it was the next to finish, so the charges add up to the engine's busy time."""
        busy = self._busy + (time.perf_counter() - self._busy_since if self.in_flight else 0.0)
        charge, self._charged = busy - self._charged, busy
        return charge

    def close(self) -> None:
        """Stop the engine and its loop (pages still in flight fail)."""

        async def shutdown():
            if self._backend.done() and self._backend.exception() is None:
                self._backend.result().close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(60)
        except Exception as e:  # shutting down: nothing left to save
            log.debug("vlm engine shutdown: %s", e)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
