"""A tiny random-weight Qwen2.5-VL, built on the spot for the VLM tests (no network, no hub).

Architecture as Qwen2.5-VL (so vLLM's real Qwen2.5-VL code path runs: vision tower, mrope, image
placeholders), sizes cut to the bone: text hidden 128, 2 layers, 2 heads / 1 KV head; vision depth
2, hidden 64. The tokenizer is a byte-level BPE trained here on a few sentences, with Qwen2.5-VL's
special tokens and chat template added after it. `config.json` is written in the Hub layout (text
keys at the top level, `rope_scaling` with mrope) that every vLLM / transformers reader accepts.

    build_tiny_vlm(Path("/tmp/tiny-qwen2.5-vl"))   # idempotent: a finished directory is reused
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Qwen2-VL's chat template (the part for text and images), as shipped in the model's tokenizer_config.json.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "Recognise all text on the page and keep the layout. Tables as HTML, the rest as Markdown.",
    "The quick brown fox jumps over the lazy dog. 0123456789 <table><tr><td>cell</td></tr></table>",
    "Invoice number, date, total amount, page 1 of 3. # Heading ## Subheading - item * bullet",
    "Read the columns of vertical classical Chinese from right to left. 天地玄黃 宇宙洪荒 日月盈昃",
]

HIDDEN, LAYERS, HEADS, KV_HEADS = 128, 2, 2, 1
VISION_HIDDEN, VISION_DEPTH, VISION_HEADS = 64, 2, 2


def _train_tokenizer(vocab_target: int = 600):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_target, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    return tok


def _hub_config(ids: dict[str, int], vocab_size: int) -> dict:
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu",
        "hidden_size": HIDDEN,
        "intermediate_size": 4 * HIDDEN,
        "initializer_range": 0.02,
        "max_position_embeddings": 4096,
        "max_window_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        # head_dim 64 → 32 rotary pairs split over (time, height, width)
        "rope_scaling": {"type": "mrope", "mrope_section": [8, 12, 12]},
        "sliding_window": 4096,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "vocab_size": vocab_size,
        "vision_config": {
            "depth": VISION_DEPTH,
            "hidden_act": "silu",
            "hidden_size": VISION_HIDDEN,
            "intermediate_size": 2 * VISION_HIDDEN,
            "num_heads": VISION_HEADS,
            "in_chans": 3,
            "out_hidden_size": HIDDEN,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [VISION_DEPTH - 1],
            "tokens_per_second": 2,
        },
    }


def _write_weights(config: dict, dest: Path, seed: int) -> None:
    """Random weights with transformers' own initialisation, saved as safetensors."""
    import torch
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    hf_config = AutoConfig.from_pretrained(dest)
    model = Qwen2_5_VLForConditionalGeneration(hf_config).to(torch.bfloat16)
    model.save_pretrained(dest, safe_serialization=True)
    # save_pretrained rewrites config.json in transformers' own (newer) layout: put the Hub layout back.
    (dest / "config.json").write_text(json.dumps(config, indent=2))


def build_tiny_vlm(dest: Path, seed: int = 0) -> Path:
    """Build (or reuse) the tiny model directory: config, weights, tokenizer, image processor."""
    dest = Path(dest)
    if (dest / ".complete").exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    tok = _train_tokenizer()
    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    vocab_size = ((tok.get_vocab_size() + 63) // 64) * 64
    tok.save(str(dest / "tokenizer.json"))
    (dest / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "Qwen2Tokenizer",
                "model_max_length": 4096,
                "bos_token": None,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "unk_token": None,
                "add_prefix_space": False,
                "errors": "replace",
                "clean_up_tokenization_spaces": False,
                "split_special_tokens": False,
                "chat_template": CHAT_TEMPLATE,
                "additional_special_tokens": SPECIAL_TOKENS[1:],
            },
            indent=2,
        )
    )
    (dest / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}))
    (dest / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "Qwen2VLImageProcessor",
                "processor_class": "Qwen2_5_VLProcessor",
                "do_resize": True,
                "do_rescale": True,
                "do_normalize": True,
                "do_convert_rgb": True,
                "rescale_factor": 1 / 255,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "min_pixels": 3136,
                "max_pixels": 12845056,
                "patch_size": 14,
                "temporal_patch_size": 2,
                "merge_size": 2,
            },
            indent=2,
        )
    )
    (dest / "generation_config.json").write_text(
        json.dumps({"bos_token_id": ids["<|endoftext|>"], "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]]})
    )
    _write_weights(_hub_config(ids, vocab_size), dest, seed)
    (dest / ".complete").write_text("ok\n")
    return dest


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from actors.vlm import patch_cpu_torchvision

    patch_cpu_torchvision()  # transformers imports torchvision: see actors/vlm.py
    print(build_tiny_vlm(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-qwen2.5-vl")))
