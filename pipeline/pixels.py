"""Page pixels between stages: how a row carries its RGB image, and the size a VLM sees it at.

Shared by render (`prepare`), both engines' actors and the bench, so that none of them imports
another stage for it.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _smart_resize():
    from actors.torchvision_cpu import patch_cpu_torchvision

    patch_cpu_torchvision()  # qwen_vl_utils imports torchvision, which needs it beside CI's CPU torch
    from qwen_vl_utils import smart_resize

    return smart_resize


def page_pixels(row) -> np.ndarray:
    """The RGB pixels `prepare_page` stored in a row (a dict or a pandas row) as an HxWx3 array."""
    return np.frombuffer(row["image"], dtype=np.uint8).reshape(int(row["height"]), int(row["width"]), 3)


def vlm_size(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) as Qwen2.5-VL's processor sizes an image: sides multiples of 28, area in [min, max]."""
    return _smart_resize()(height, width, factor=28, min_pixels=min_pixels, max_pixels=max_pixels)


def resize_for_vlm(image: np.ndarray, min_pixels: int, max_pixels: int):
    """The page as a PIL image at `vlm_size` (qwen-vl-utils' `smart_resize`, the rule of the model's processor).

    Done before the engine so that the in-process engine and a server see the same pixels; the
    processor then leaves the size alone.
    """
    from PIL import Image

    h, w = image.shape[:2]
    nh, nw = vlm_size(h, w, min_pixels, max_pixels)
    pil = Image.fromarray(np.ascontiguousarray(image[:, :, :3]), "RGB")
    return pil if (nh, nw) == (h, w) else pil.resize((nw, nh), Image.Resampling.BICUBIC)


def sized_for_vlm(image: np.ndarray, min_pixels: int, max_pixels: int, out: dict) -> np.ndarray:
    """The pixels the VLM will see; the row's width, height, DPI and scale in `out` follow them."""
    sized = np.asarray(resize_for_vlm(image, min_pixels, max_pixels))
    factor = sized.shape[1] / image.shape[1]
    out.update(width=sized.shape[1], height=sized.shape[0], dpi=out["dpi"] * factor, scale=out["scale"] * factor)
    return sized


def jpeg_data_url(image: np.ndarray, longest: int = 1400) -> str:
    """The page as a JPEG `data:` URL at most `longest` px a side, for pages people look at (the review page)."""
    import base64
    import io

    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image[:, :, :3]), "RGB")
    pil.thumbnail((longest, longest))
    buf = io.BytesIO()
    pil.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
