"""Red seals (藏書印, 朱文/白文) off a vertical page's pixels before OCR.

Collectors' seals are stamped in red over the text of old books. Transcriptions leave them out, but
the detector boxes their characters with the text under them and the recogniser then misreads
both. Seal ink is red and text ink is black: a black character under a seal stays dark, so
painting the clearly red pixels with the paper colour removes the seal and keeps the text.
Red text (朱批 notes in red ink) and red column rules (朱絲欄) go too: for reading the black text
that is what is wanted. Meant for the vertical route only (a red heading on a modern page is text).
"""

from __future__ import annotations

import numpy as np

_RED_OVER_GREEN = 40  # R - G at least this (aged paper: about 20; foxing spots: below 40)
_RED_OVER_BLUE = 30  # R - B at least this
_MIN_SHARE = 1e-3  # fewer red pixels than this share of the page: left as it is


def red_mask(image: np.ndarray) -> np.ndarray:
    """Boolean H x W mask of seal-red pixels of an RGB uint8 image."""
    if image.ndim != 3 or image.shape[2] < 3:
        return np.zeros(image.shape[:2], bool)
    f = image[..., :3].astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    return (r - g >= _RED_OVER_GREEN) & (r - b >= _RED_OVER_BLUE)


def remove_seals(image: np.ndarray) -> np.ndarray:
    """`image` with its red pixels painted in the paper colour (the median light pixel); the same
    array when the page has (almost) no red."""
    red = red_mask(image)
    if red.sum() < _MIN_SHARE * red.size:
        return image
    light = ~red & (image[..., :3].astype(np.int16).sum(-1) > 450)
    paper = np.median(image[light][:, :3], axis=0) if light.any() else np.array([255, 255, 255])
    out = image.copy()
    out[red, :3] = paper.astype(image.dtype)
    return out
