"""The VLM's pieces shared by the batch job, the bench and the engine: requests, checks, results.

`engine_args` gives vLLM's engine arguments for a config (`load_engine` builds the offline `LLM`
from them, for the bench's raw baseline); `build_request` sizes one page for the model and wraps it
in the model's chat template; `problem_of` says whether an output loops or was cut off;
`sampling_params` steps temperature and seed with the attempt. The async engine that the Ray job
and Serve run lives in `vlm_engine.py`, the Ray Data callable in `vlm_predictor.py`.

Why thin actors and not `ray.data.llm`: its processor turns every row into an LLM request and
owns the rows end to end, while this pipeline routes (rows already read by the text layer or
PaddleOCR pass through; bad pages retry at stepped temperatures and fall back to PaddleOCR's
text). `ray.data.llm` also needs `ray[llm]`, which pins a CUDA vLLM build. The way its vLLM stage
keeps the engine full is taken over: many calls in flight per actor, each page a request of its
own, a cap of ~1.1 x max_num_seqs requests in the engine. Replicas and tensor parallelism come
from Ray Data's actor pool: see `ray_remote_args`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from actors.torchvision_cpu import patch_cpu_torchvision
from pipeline.config import VlmConfig
from pipeline.pixels import resize_for_vlm

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
    seconds: float = 0.0  # the engine's busy time put down to this page (its pool rate = pages x 60 / their sum)


# --- engine -------------------------------------------------------------------------------------


def engine_args(cfg: VlmConfig) -> dict:
    """vLLM engine arguments for one page image per prompt (the offline `LLM` and `AsyncLLM` take the same)."""
    patch_cpu_torchvision()
    # paddlex registers a vLLM plugin that needs its own extras and logs a traceback when it
    # fails to load; this engine uses no vLLM plugins.
    os.environ.setdefault("VLLM_PLUGINS", "")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # the CLI's progress line, not vLLM's per-step INFO
    # FlashInfer's top-k/top-p sampler is built with nvcc at the engine's first start on a node
    # (~104 s on an H200, one core, the card idle); pages are decoded greedily or at a plain
    # temperature, which PyTorch's sampler does as fast. Set it to 1 to have it anyway.
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")
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
    args = {**args, **cfg.engine_kwargs}  # engine_kwargs win
    if not cfg.enforce_eager and isinstance(args.get("compilation_config", {}), dict):
        # vLLM captures CUDA graphs up to 2 x max_num_seqs tokens by default; past max_num_seqs they
        # serve only mixed batches that small, which ~1,500-token page prompts seldom make: capturing
        # them lengthens every engine start, which is on the critical path of the VLM's pages.
        args["compilation_config"] = {"max_cudagraph_capture_size": cfg.max_num_seqs, **args.get("compilation_config", {})}
    return args


def load_engine(cfg: VlmConfig):
    """vLLM's offline engine (`vllm.LLM`): the bench's raw baseline, one `generate` call for all pages."""
    args = engine_args(cfg)
    from vllm import LLM

    return LLM(**args)


def _in_ray_actor() -> bool:
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def processor_kwargs(cfg: VlmConfig) -> dict:
    """Qwen2-VL image processor bounds (transformers 5 spells min/max_pixels as size's shortest/longest_edge)."""
    return {"size": {"shortest_edge": cfg.min_pixels, "longest_edge": cfg.max_pixels}}


def weights_gib(model: str) -> float | None:
    """GiB of a local checkpoint's weights: the safetensors index's total_size or the files' sizes,
    else estimated from config.json (Qwen2-family text + vision shapes, 2 bytes per weight: what
    `load_format: dummy` allocates). None when the model is neither a local directory nor in the local hub cache."""
    import json
    from pathlib import Path

    d = Path(model)
    if not d.is_dir():  # a hub name: its snapshot in the local Hugging Face cache, if downloaded (no network)
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(model, "config.json")
        except Exception:
            found = None
        if not isinstance(found, str):
            return None
        d = Path(found).parent
    index = d / "model.safetensors.index.json"
    if index.is_file():
        return json.loads(index.read_text())["metadata"]["total_size"] / 2**30
    files = list(d.glob("*.safetensors"))
    if files:
        return sum(f.stat().st_size for f in files) / 2**30
    try:
        c = json.loads((d / "config.json").read_text())
        t = {**c, **c.get("text_config", {})}
        h, layers, inter, vocab = t["hidden_size"], t["num_hidden_layers"], t["intermediate_size"], t["vocab_size"]
        kv = t.get("num_key_value_heads", t["num_attention_heads"]) * h // t["num_attention_heads"]
        params = vocab * h * (1 if t.get("tie_word_embeddings") else 2) + layers * (h * (2 * h + 2 * kv) + 3 * h * inter)
        v = c.get("vision_config") or {}
        if v.get("depth"):
            vh = v.get("hidden_size") or v.get("embed_dim")
            params += v["depth"] * (4 * vh * vh + 3 * vh * v.get("intermediate_size", 4 * vh))
        return params * 2 / 2**30
    except (OSError, KeyError, TypeError, ValueError):
        return None


def max_in_flight(cfg: VlmConfig) -> int:
    """Requests one engine holds at once: ~1.1 x the sequences its scheduler runs (engine_kwargs win)."""
    if cfg.server_url:
        return cfg.server_concurrency
    return cfg.max_in_flight or math.ceil(1.1 * cfg.engine_kwargs.get("max_num_seqs", cfg.max_num_seqs))


def calls_per_actor(cfg: VlmConfig) -> int:
    """Calls in flight per VLM actor: enough that the engine's share of them never runs dry and
    rows passing through find a free call (see VlmConfig.calls_per_actor). Each call is a thread
    that waits for its page (~0.1 MB resident): 2,048 threads measured ~260 MB."""
    return cfg.calls_per_actor or min(4096, max(256, 16 * max_in_flight(cfg)))


def vlm_pool(cfg: VlmConfig):
    """Ray Data's actor pool for the VLM: `replicas` actors, each running many calls at once (threads)."""
    import ray.data

    calls = calls_per_actor(cfg)
    return ray.data.ActorPoolStrategy(size=cfg.replicas, max_tasks_in_flight_per_actor=calls,
                                      max_concurrent_calls_per_actor=calls, enable_true_multi_threading=True)


def gpu_bundle(cfg: VlmConfig) -> dict:
    """One tensor-parallel GPU's placement-group bundle; with `accelerator_type`, the node resource
    Ray gives nodes of that type (`accelerator_type:H100`), asked as Ray's own option asks it."""
    return {"GPU": 1, **({f"accelerator_type:{cfg.accelerator_type}": 0.001} if cfg.accelerator_type else {})}


def ray_remote_args(cfg: VlmConfig) -> dict:
    """`map_batches` arguments for the VLM actor pool on GPUs: `replicas` engines of `tensor_parallel_size` whole GPUs.

    TP 1: the actor holds `num_gpus`. TP > 1: each actor gets its own STRICT_PACK placement group of
    TP one-GPU bundles (one node), takes no GPU itself, and vLLM's Ray executor puts its TP
    workers into that group (`placement_group_capture_child_tasks`).
    """
    import ray

    pool = vlm_pool(cfg)
    if cfg.tensor_parallel_size == 1:
        typed = {"accelerator_type": cfg.accelerator_type} if cfg.accelerator_type else {}
        return {"compute": pool, "num_gpus": cfg.num_gpus, **typed}
    tp = cfg.tensor_parallel_size
    bundle = gpu_bundle(cfg)

    def remote_args() -> dict:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = ray.util.placement_group([{**bundle, "CPU": 1}] * tp, strategy="STRICT_PACK")
        return {"scheduling_strategy": PlacementGroupSchedulingStrategy(pg, placement_group_capture_child_tasks=True)}

    return {"compute": pool, "num_gpus": 0, "ray_remote_args_fn": remote_args}


# --- requests -----------------------------------------------------------------------------------


def resize_for_model(image: np.ndarray, cfg: VlmConfig):
    """The page as the model will see it (`pipeline.pixels.resize_for_vlm` with the config's pixel bounds)."""
    return resize_for_vlm(image, cfg.min_pixels, cfg.max_pixels)


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


def page_max_tokens(cfg: VlmConfig, key: str) -> int:
    """This page's token budget: max_tokens, or with `max_tokens_spread` (benchmarks with random
    weights and ignore_eos) a length between (1 - spread) and 1 times it that the page's key fixes."""
    if not cfg.max_tokens_spread or not key:
        return cfg.max_tokens
    u = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "big") / 2**32
    return max(1, round(cfg.max_tokens * (1 - cfg.max_tokens_spread * u)))


def result_from_output(out, attempt: int, temperature: float, cfg: VlmConfig) -> VlmResult:
    """A vLLM `RequestOutput` (final) as this page's result."""
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


def better(a: VlmResult, b: VlmResult | None) -> bool:
    """Whether attempt `a` beats `b`: good > truncated > looping, then higher confidence."""
    if b is None:
        return True
    rank = lambda r: (r.problem is None, r.problem == "truncated", r.confidence or 0.0)  # noqa: E731
    return rank(a) > rank(b)


def model_label(cfg: VlmConfig) -> str:
    return f"{cfg.model} (vllm {'server' if cfg.server_url else 'engine'})"


def needs_vlm(batch: pd.DataFrame, escalate: bool, escalate_below: float) -> pd.Series:
    """Rows for the VLM: not yet read by anyone, or (escalate) read by PaddleOCR below `escalate_below`."""
    ok = batch["error"].isna()
    mask = ok & (batch["engine"] == "")
    if escalate and "confidence" in batch:
        conf = pd.to_numeric(batch["confidence"], errors="coerce")
        mask |= ok & (batch["engine"] == "paddleocr") & (conf.isna() | (conf < escalate_below))
    return mask
