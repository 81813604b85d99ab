"""A weightless Qwen2.5-VL-7B-Instruct directory, for random-weight throughput benchmarks.

For GPU machines with no internet and no Hugging Face hub: the directory has the real model's
config (Hub layout), image processor, chat template and tokenizer, but no weight files, so vLLM
must load it with `load_format="dummy"` (random weights). Speed and memory then match the real 7B
model; the text it writes is garbage, so label every figure taken with it "random weights".

The tokenizer is the real Qwen2 vocabulary: `qwen.tiktoken` (shipped inside the `dashscope` wheel on
PyPI) converted with transformers' TikTokenConverter; ids 0..151642 are the tiktoken ranks, the
special tokens follow from 151643 exactly as in Qwen2.5-VL.

    python -m pipeline.bench_model DEST [--tiktoken FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

PIP_HINT = (
    "pip download dashscope --no-deps -d /tmp/dashscope && "
    "unzip -o /tmp/dashscope/dashscope-*.whl 'dashscope/resources/qwen.tiktoken' -d /tmp/dashscope"
    "   # then --tiktoken /tmp/dashscope/dashscope/resources/qwen.tiktoken"
)
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
N_RANKS = 151643
SPECIAL_TOKENS = [  # ids 151643.. in this order
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]  # fmt: skip
PLAIN_ADDED = [  # ids 151657..151664, added but not special (as in Qwen2.5)
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
]  # fmt: skip

# Qwen2.5-VL-7B-Instruct's chat_template.json.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CONFIG = {  # Qwen/Qwen2.5-VL-7B-Instruct config.json (Hub layout: text keys at the top level)
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "vision_token_id": 151654,
    "image_token_id": 151655,
    "video_token_id": 151656,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 128000,
    "max_window_layers": 28,
    "model_type": "qwen2_5_vl",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.41.2",
    "use_cache": True,
    "use_sliding_window": False,
    "vision_config": {
        "depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
        "in_chans": 3, "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
        "spatial_patch_size": 14, "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31],
        "tokens_per_second": 2, "temporal_patch_size": 2,
    },
    # head_dim 128 → 64 rotary pairs, split over (time, height, width)
    "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
    "vocab_size": 152064,
}  # fmt: skip
PREPROCESSOR = {
    "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2_5_VLProcessor",
}  # fmt: skip
GENERATION = {  # the real generation_config.json: vLLM takes its default sampling parameters from it
    "bos_token_id": 151643, "pad_token_id": 151643, "eos_token_id": [151645, 151643], "do_sample": True,
    "repetition_penalty": 1.05, "temperature": 0.1, "top_p": 0.001, "top_k": 1,
}  # fmt: skip


def find_tiktoken() -> Path | None:
    """qwen.tiktoken of an installed dashscope package, without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("dashscope")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / "resources" / "qwen.tiktoken").is_file():
            return Path(loc) / "resources" / "qwen.tiktoken"
    return None


def _load_ranks(path: str) -> dict[bytes, int]:
    ranks = {}
    for line in Path(path).read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_tokenizer(tiktoken_file: Path):
    from tokenizers import AddedToken, normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class _Converter(TikTokenConverter):  # reads the file itself: no `tiktoken` package needed
        load_tiktoken_bpe = staticmethod(_load_ranks)

    ranks = _load_ranks(str(tiktoken_file))
    if sorted(ranks.values()) != list(range(N_RANKS)):
        raise ValueError(f"{tiktoken_file}: expected ranks 0..{N_RANKS - 1}, got {len(ranks)} tokens")
    tok = _Converter(str(tiktoken_file), pattern=PRETOKENIZE_REGEX).converted()
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in PLAIN_ADDED])
    for i, t in enumerate(SPECIAL_TOKENS + PLAIN_ADDED):
        assert tok.token_to_id(t) == N_RANKS + i, (t, tok.token_to_id(t))
    return tok


def build_qwen25_vl_7b(dest: Path, tiktoken_file: Path | None = None) -> Path:
    """Write config, tokenizer, image processor and chat template into `dest` (no weights)."""
    dest = Path(dest)
    tiktoken_file = Path(tiktoken_file) if tiktoken_file else find_tiktoken()
    if tiktoken_file is None or not tiktoken_file.is_file():
        raise FileNotFoundError(f"qwen.tiktoken not found ({tiktoken_file}); fetch it with:\n  {PIP_HINT}")
    dest.mkdir(parents=True, exist_ok=True)
    build_tokenizer(tiktoken_file).save(str(dest / "tokenizer.json"))
    tokenizer_config = {  # as the real tokenizer_config.json, less its added_tokens_decoder (tokenizer.json has them)
        "tokenizer_class": "Qwen2Tokenizer", "model_max_length": 131072, "errors": "replace",
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
        "add_bos_token": False, "add_prefix_space": False, "clean_up_tokenization_spaces": False,
        "split_special_tokens": False, "additional_special_tokens": SPECIAL_TOKENS[1:], "chat_template": CHAT_TEMPLATE,
    }  # fmt: skip
    files = {
        "config.json": CONFIG, "preprocessor_config.json": PREPROCESSOR, "generation_config.json": GENERATION,
        "tokenizer_config.json": tokenizer_config, "chat_template.json": {"chat_template": CHAT_TEMPLATE},
    }  # fmt: skip
    for name, content in files.items():
        (dest / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    (dest / "README.md").write_text(
        "Qwen2.5-VL-7B-Instruct architecture without weights (pipeline/bench_model.py).\n"
        'Load with vLLM load_format="dummy"; every figure from it is "random weights".\n'
    )
    return dest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pipeline.bench_model", description=__doc__.splitlines()[0])
    ap.add_argument("dest", type=Path)
    ap.add_argument("--tiktoken", type=Path, default=None, help="qwen.tiktoken (default: installed dashscope's)")
    args = ap.parse_args(argv)
    try:
        print(build_qwen25_vl_7b(args.dest, args.tiktoken))
    except FileNotFoundError as err:
        raise SystemExit(str(err)) from None


if __name__ == "__main__":
    main()
