"""VLM actor: a vLLM engine (or an OpenAI-compatible `vllm serve`) reading whole pages.

Kept apart, as in `paddle_ocr.py`: `load_engine` builds vLLM's offline engine; `build_request`
sizes one page for the model and wraps it in the model's chat template; `generate_pages` sends a
whole batch in ONE `LLM.generate` call (vLLM's continuous batching keeps many pages in flight),
then re-sends only the bad pages (repetition loop, truncated) with stepped temperatures;
`generate_via_server` does the same against a server; `VlmPredictor` is the Ray Data callable.

Why a thin actor and not `ray.data.llm`: its processor turns every row into an LLM request and
owns the rows end to end, while this pipeline routes (rows already read by the text layer or
PaddleOCR pass through; bad pages retry at stepped temperatures and fall back to PaddleOCR's
text). `ray.data.llm` also needs `ray[llm]`, which pins a CUDA vLLM build. Replicas and tensor
parallelism come from Ray Data's actor pool: see `ray_remote_args`.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from actors.torchvision_cpu import patch_cpu_torchvision
from pipeline.config import VlmConfig
from pipeline.prepare import page_pixels

log = logging.getLogger(__name__)


@dataclass
class VlmResult:
    text: str
    finish_reason: str  # stop | length | repetition | error
    prompt_tokens: int
    output_tokens: int
    confidence: float | None  # mean probability of the generated tokens, 0-1
    attempts: int
    problem: str | None = None  # None | "repetition" | "truncated"
    temperature: float = 0.0


# --- engine -------------------------------------------------------------------------------------


def load_engine(cfg: VlmConfig):
    """vLLM's offline engine for one page image per prompt."""
    patch_cpu_torchvision()
    # paddlex registers a vLLM plugin that needs its own extras and logs a traceback when it
    # fails to load; this engine uses no vLLM plugins.
    os.environ.setdefault("VLLM_PLUGINS", "")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the CLI's progress line, not vLLM's per-step INFO
    if cfg.inline_engine:  # read when the engine is built: no spawned engine-core process (Ray actors must spawn)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from vllm import LLM

    args = dict(
        model=cfg.model,
        tokenizer=cfg.tokenizer,
        load_format=cfg.load_format,
        dtype=cfg.dtype,
        seed=cfg.seed,
        tensor_parallel_size=cfg.tensor_parallel_size,
        gpu_memory_utilization=cfg.gpu_memory_utilization,
        max_num_seqs=cfg.max_num_seqs,
        max_model_len=cfg.max_model_len,
        enable_chunked_prefill=cfg.enable_chunked_prefill,
        enable_prefix_caching=cfg.enable_prefix_caching,
        enforce_eager=cfg.enforce_eager,
        limit_mm_per_prompt={"image": 1},
        mm_processor_kwargs=processor_kwargs(cfg),
    )
    if cfg.tensor_parallel_size > 1 and _in_ray_actor():
        # TP workers go into the actor's placement group (vLLM passes it to its engine process,
        # which must join this cluster, not start its own). Outside Ray: vLLM's default (mp).
        import ray

        args["distributed_executor_backend"] = "ray"
        os.environ.setdefault("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    return LLM(**{**args, **cfg.engine_kwargs})  # engine_kwargs win


def _in_ray_actor() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def processor_kwargs(cfg: VlmConfig) -> dict:
    """Qwen2-VL image processor bounds (transformers 5 spells min/max_pixels as size's shortest/longest_edge)."""
    return {"size": {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}}


def ray_remote_args(cfg: VlmConfig) -> dict:
    """`map_batches` arguments for the VLM actor pool: `replicas` engines of `tensor_parallel_size` whole GPUs.

    TP 1: the actor holds one GPU. TP > 1: each actor gets its own STRICT_PACK placement group of
    TP one-GPU bundles (one node), takes no GPU itself, and vLLM's Ray executor puts its TP
    workers into that group (`placement_group_capture_child_tasks`).
    """
    import ray.data

    pool = ray.data.ActorPoolStrategy(size=cfg.replicas)
    if cfg.tensor_parallel_size == 1:
        return {"compute": pool, "num_gpus": cfg.num_gpus}
    tp = cfg.tensor_parallel_size

    def remote_args() -> dict:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = ray.util.placement_group([{"GPU": 1, "CPU": 1}] * tp, strategy="STRICT_PACK")
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)}

    return {"compute": pool, "num_gpus": 0, "ray_remote_args_fn": remote_args}


# --- requests -----------------------------------------------------------------------------------


def resize_for_model(image: np.ndarray, cfg: VlmConfig):
    """The page as a PIL image whose sides are multiples of 28 and whose area lies in [min_pixels, max_pixels].

    Done here (qwen-vl-utils' `smart_resize`, the rule of Qwen2.5-VL's processor) so that the
    in-process engine and a server see the same pixels; the processor then leaves the size alone.
    """
    from PIL import Image
    from qwen_vl_utils import smart_resize

    h, w = image.shape[:2]
    nh, nw = smart_resize(h, w, factor=28, min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    pil = Image.fromarray(np.ascontiguousarray(image[:, :, :3]), "RGB")
    return pil if (nh, nw) == (h, w) else pil.resize((nw, nh), Image.Resampling.BICUBIC)


def chat_messages(cfg: VlmConfig, image_url: str | None = None) -> list[dict]:
    image_part = {"type": "image_url", "image_url": {"url": image_url}} if image_url else {"type": "image"}
    return [{"role": "user", "content": [image_part, {"type": "text", "text": cfg.prompt}]}]


_PROMPTS: dict[tuple[int, str], str] = {}


def build_request(image_rgb: np.ndarray, cfg: VlmConfig, tokenizer=None) -> dict:
    """One vLLM prompt: the model's chat template around (image, instruction), and the sized image."""
    key = (id(tokenizer), cfg.prompt)
    if key not in _PROMPTS:
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(cfg.tokenizer or cfg.model)
        _PROMPTS[key] = tokenizer.apply_chat_template(chat_messages(cfg), tokenize=False, add_generation_prompt=True)
    return {"prompt": _PROMPTS[key], "multi_modal_data": {"image": resize_for_model(image_rgb, cfg)}}


# --- checks -------------------------------------------------------------------------------------


def looks_repetitive(text: str, min_repeats: int = 12, min_chars: int = 160, max_unit: int = 200) -> bool:
    """Whether the text ends in a loop: one unit (1..max_unit chars) repeated at least `min_repeats`
    times back to back, spanning at least `min_chars` characters. Only the tail counts: a loop runs
    until the token budget ends it, while legitimate repetition (table cells, dot leaders) stops."""
    t = text.rstrip()
    n = len(t)
    for unit in range(1, min(max_unit, n // min_repeats) + 1):
        if unit * min_repeats > n:
            break
        pattern = t[n - unit :]
        count, end = 1, n - unit
        while end >= unit and t[end - unit : end] == pattern:
            count += 1
            end -= unit
        if count >= min_repeats and count * unit >= min_chars:
            return True
    return False


def problem_of(text: str, finish_reason: str, cfg: VlmConfig) -> str | None:
    if finish_reason == "repetition" or looks_repetitive(text, cfg.repeat_min_count, cfg.repeat_min_chars):
        return "repetition"
    if finish_reason == "length":
        return "truncated"
    return None


def mean_probability(logprobs: list[float]) -> float | None:
    """Mean per-token probability: like PaddleOCR's line score (mean per-character probability), 0-1."""
    if not logprobs:
        return None
    return float(np.mean([math.exp(max(lp, -1e4)) for lp in logprobs]))


# --- generation ---------------------------------------------------------------------------------


def sampling_params(cfg: VlmConfig, temperature: float, attempt: int = 1, **overrides):
    from vllm import SamplingParams

    # logprobs=1 returns the sampled token's log-probability (raw, before temperature: comparable
    # across attempts); the seed moves with the attempt so a repeated temperature still draws anew.
    kwargs = dict(temperature=temperature, max_tokens=cfg.max_tokens, logprobs=1, seed=cfg.seed + attempt, ignore_eos=cfg.ignore_eos)
    try:  # vLLM >= 0.32 stops a token loop early; older releases rely on looks_repetitive alone
        from vllm.sampling_params import RepetitionDetectionParams
    except ImportError:
        RepetitionDetectionParams = None
    if RepetitionDetectionParams is not None and cfg.repeat_max_pattern_tokens > 0:
        kwargs["repetition_detection"] = RepetitionDetectionParams(
            max_pattern_size=cfg.repeat_max_pattern_tokens, min_count=cfg.repeat_min_count
        )
    return SamplingParams(**{**kwargs, **overrides})


def _from_output(out, attempt: int, temperature: float, cfg: VlmConfig) -> VlmResult:
    comp = out.outputs[0]
    lps = []
    for tok, entry in zip(comp.token_ids, comp.logprobs or []):
        if entry and tok in entry:
            lps.append(entry[tok].logprob)
    reason = str(comp.finish_reason or "length")
    return VlmResult(
        text=comp.text,
        finish_reason=reason,
        prompt_tokens=len(out.prompt_token_ids or []),
        output_tokens=len(comp.token_ids),
        confidence=mean_probability(lps),
        attempts=attempt,
        problem=problem_of(comp.text, reason, cfg),
        temperature=temperature,
    )


def retry_temperature(cfg: VlmConfig, attempt: int) -> float:
    """Attempt 1 runs at cfg.temperature; retry k at retry_temperatures[k-1] (the last one repeats)."""
    return cfg.temperature if attempt == 1 else cfg.retry_temperatures[min(attempt - 2, len(cfg.retry_temperatures) - 1)]


def _rank(r: VlmResult) -> tuple:
    return (r.problem is None, r.problem == "truncated", r.confidence or 0.0)


def _retry_loop(n: int, run_attempt, cfg: VlmConfig) -> list[VlmResult]:
    """Every page once, then only the bad pages again at stepped temperatures; each page keeps its
    best attempt (good > truncated > looping, then higher confidence) and the number of attempts."""
    best: list[VlmResult | None] = [None] * n
    todo = list(range(n))
    for attempt in range(1, cfg.max_retries + 2):
        if attempt > 1:
            log.info("vlm: retry %d of %d page(s) at temperature %.2f", attempt - 1, len(todo), retry_temperature(cfg, attempt))
        for i, res in zip(todo, run_attempt(todo, attempt, retry_temperature(cfg, attempt)), strict=True):
            if best[i] is None or _rank(res) > _rank(best[i]):
                best[i] = res
            best[i].attempts = attempt
        todo = [i for i in todo if best[i].problem is not None]
        if not todo:
            break
    return best  # type: ignore[return-value]


def generate_pages(engine, images: list[np.ndarray], cfg: VlmConfig, **sampling_overrides) -> list[VlmResult]:
    """Read every page of the batch in one `LLM.generate` call per attempt; only bad pages go again.

    `sampling_overrides` go to vLLM's SamplingParams (tests use them to force loops)."""
    tokenizer = engine.get_tokenizer()
    requests = [build_request(im, cfg, tokenizer) for im in images]

    def run_attempt(todo, attempt, temperature):
        params = sampling_params(cfg, temperature, attempt, **sampling_overrides)
        outs = engine.generate([requests[i] for i in todo], params, use_tqdm=False)
        return [_from_output(o, attempt, temperature, cfg) for o in outs]

    return _retry_loop(len(images), run_attempt, cfg)


def generate_via_server(images: list[np.ndarray], cfg: VlmConfig, client=None, **sampling_overrides) -> list[VlmResult]:
    """The same pages and outputs through an OpenAI-compatible server (`vllm serve MODEL`), many requests in flight."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI

    client = client or OpenAI(base_url=cfg.server_url, api_key=cfg.api_key)
    urls = []
    for im in images:
        buf = io.BytesIO()
        resize_for_model(im, cfg).save(buf, format="PNG")
        urls.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    # The page is already sized here (resize_for_model), so the server's image processor keeps it
    # as is; per-request mm_processor_kwargs would need `--trust-request-mm-kwargs` on the server.
    extra: dict = {}
    if cfg.repeat_max_pattern_tokens > 0:
        extra["repetition_detection"] = {"max_pattern_size": cfg.repeat_max_pattern_tokens, "min_count": cfg.repeat_min_count}
    extra.update(sampling_overrides)

    def one(i: int, attempt: int, temperature: float) -> VlmResult:
        r = client.chat.completions.create(
            model=cfg.model, messages=chat_messages(cfg, urls[i]), max_tokens=cfg.max_tokens, temperature=temperature,
            seed=cfg.seed + attempt, logprobs=True, top_logprobs=1, extra_body=extra,
        )
        choice = r.choices[0]
        lps = [c.logprob for c in (choice.logprobs.content or [])] if choice.logprobs else []
        text = choice.message.content or ""
        reason = str(choice.finish_reason or "length")
        return VlmResult(text, reason, r.usage.prompt_tokens, r.usage.completion_tokens, mean_probability(lps),
                         attempt, problem_of(text, reason, cfg), temperature)

    with ThreadPoolExecutor(max_workers=cfg.server_concurrency) as pool:
        def run_attempt(todo, attempt, temperature):
            return list(pool.map(lambda i: one(i, attempt, temperature), todo))

        return _retry_loop(len(images), run_attempt, cfg)


# --- Ray Data callable --------------------------------------------------------------------------


VLM_COLUMNS = ("vlm_confidence", "vlm_finish_reason", "vlm_prompt_tokens", "vlm_output_tokens", "vlm_attempts", "vlm_problem")


def model_label(cfg: VlmConfig) -> str:
    return f"{cfg.model} (vllm {'server' if cfg.server_url else 'engine'})"


class VlmPredictor:
    """Ray Data callable: reads with the VLM the rows that need it, passes every other row through.

    `config` is the run configuration (its `vlm` section is used) or a VlmConfig mapping. Rows
    with `error` null and `engine == ""` are read. With `escalate=True` (hybrid mode) PaddleOCR
    rows whose confidence is below `escalate_below` are read again; if the VLM still loops or is
    cut off after the retries, such a row keeps PaddleOCR's text and `vlm_problem` says why.
    Adds VLM_COLUMNS (null on rows the VLM did not read).
    """

    def __init__(self, config: dict, escalate: bool = False, engine=None):
        section = config.get("vlm", config) if isinstance(config, dict) else config
        self.cfg = section if isinstance(section, VlmConfig) else VlmConfig.model_validate(section)
        self.escalate = escalate
        self.model = model_label(self.cfg)
        self.engine = engine or (None if self.cfg.server_url else load_engine(self.cfg))

    def _todo(self, batch: pd.DataFrame) -> list:
        ok = batch["error"].isna()
        mask = ok & (batch["engine"] == "")
        if self.escalate and "confidence" in batch:
            conf = pd.to_numeric(batch["confidence"], errors="coerce")
            mask |= ok & (batch["engine"] == "paddleocr") & (conf.isna() | (conf < self.cfg.escalate_below))
        return batch.index[mask].tolist()

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        for col in VLM_COLUMNS:
            if col not in batch:
                batch[col] = None
        todo = self._todo(batch)
        if todo:
            self._read(batch, todo)
        batch["image"] = [b""] * len(batch)  # pixels are not needed past this stage
        return batch

    def _read(self, batch: pd.DataFrame, todo: list) -> None:
        images = [page_pixels(batch.loc[i]) for i in todo]
        start = time.perf_counter()
        results = self._generate(images)
        per_page = (time.perf_counter() - start) / len(todo)
        for i, res in zip(todo, results):
            if isinstance(res, Exception):
                batch.at[i, "error"] = f"vlm: generation failed on this page ({type(res).__name__}: {str(res)[:300]})"
                continue
            before = batch.at[i, "seconds_ocr"] if "seconds_ocr" in batch else None  # hybrid: PaddleOCR's time + the VLM's
            batch.at[i, "seconds_ocr"] = (float(before) if pd.notna(before) else 0.0) + per_page
            batch.at[i, "vlm_confidence"] = res.confidence
            batch.at[i, "vlm_finish_reason"] = res.finish_reason
            batch.at[i, "vlm_prompt_tokens"] = res.prompt_tokens
            batch.at[i, "vlm_output_tokens"] = res.output_tokens
            batch.at[i, "vlm_attempts"] = res.attempts
            batch.at[i, "vlm_problem"] = res.problem
            if res.problem and batch.at[i, "engine"] == "paddleocr":
                continue  # keep PaddleOCR's reading; the row says the VLM could not do better
            batch.at[i, "text"] = res.text
            batch.at[i, "lines_json"] = "[]"  # a VLM gives page text, no line boxes
            batch.at[i, "confidence"] = res.confidence
            batch.at[i, "engine"] = "vlm"
            batch.at[i, "model"] = self.model

    def _generate(self, images: list[np.ndarray]) -> list:
        """The batch in one go; if it fails, page by page so that one bad page stays that page's error."""
        run = (lambda ims: generate_pages(self.engine, ims, self.cfg)) if self.engine else (lambda ims: generate_via_server(ims, self.cfg))
        try:
            return run(images)
        except Exception as e:
            if len(images) == 1:
                return [e]
        out: list = []
        for im in images:
            try:
                out.extend(run([im]))
            except Exception as e:
                out.append(e)
        return out
