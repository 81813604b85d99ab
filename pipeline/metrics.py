"""Character error rate (CER) and an order-free CER floor, for any script (Chinese included).

`cer` is the Levenshtein distance between hypothesis and reference characters divided by the
reference length. `order_free_cer` compares the two texts as multisets of characters, so it is
a lower bound on `cer` that ignores reading order: the gap between the two is error caused by
reading order alone (columns interleaved, vertical columns read the wrong way).

Uses rapidfuzz's C Levenshtein when installed, else a numpy row-by-row fallback.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

try:  # fast C implementation
    from rapidfuzz.distance import Levenshtein as _rf_lev
except ImportError:  # pragma: no cover - exercised only without rapidfuzz
    _rf_lev = None

import numpy as np

_WS = re.compile(r"\s+")
# Characters NFKC leaves alone but that mean the same thing in OCR output.
_EXTRA = str.maketrans({"\u3000": " ", "\u00a0": " ", "\ufeff": "", "\u200b": ""})


def normalize(text: str) -> str:
    """NFKC (full-width ASCII -> ASCII, vertical presentation forms -> normal punctuation,
    compatibility ideographs -> unified), then every whitespace run -> one space / newline.

    Runs of whitespace that contain a newline become a single "\\n", others a single " ";
    leading/trailing whitespace is stripped on every line.
    """
    text = unicodedata.normalize("NFKC", text or "").translate(_EXTRA)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_WS.sub(" ", ln).strip() for ln in text.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def _prep(text: str, ignore_whitespace: bool) -> str:
    text = normalize(text)
    if ignore_whitespace:
        return _WS.sub("", text)
    return text.replace("\n", " ")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit costs) between two strings, per Unicode code point."""
    if _rf_lev is not None:
        return int(_rf_lev.distance(a, b))
    return _edit_distance_np(a, b)


def _edit_distance_np(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    prev = np.arange(len(b) + 1, dtype=np.int64)
    for i, ch in enumerate(a, 1):
        sub = prev[:-1] + (bb != ord(ch))
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(sub, prev[1:] + 1)
        # insertion term cur[j-1] + 1 is sequential: resolve with a running minimum
        # cur[j] = min_k<=j (cur0[k] + (j - k))  ==  min.accumulate(cur0 - idx) + idx
        idx = np.arange(len(cur))
        cur = np.minimum.accumulate(cur - idx) + idx
        prev = cur
    return int(prev[-1])


def cer(hypothesis: str, reference: str, *, ignore_whitespace: bool = False) -> float:
    """Character error rate: edit_distance(hyp, ref) / len(ref) after `normalize`.

    Line breaks count as spaces (ignore_whitespace=False) or are dropped with all other
    whitespace (ignore_whitespace=True, the fair choice for Chinese). An empty reference gives
    0.0 when the hypothesis is empty too, else 1.0. Values can exceed 1.0 (long hypothesis).
    """
    hyp = _prep(hypothesis, ignore_whitespace)
    ref = _prep(reference, ignore_whitespace)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(hyp, ref) / len(ref)


def order_free_cer(hyp: str, ref: str, *, ignore_whitespace: bool = True) -> float:
    """Bag-of-characters error: max(missing, extra) characters / len(ref).

    `missing` = reference characters absent from the hypothesis (multiset difference), `extra`
    the reverse; max(...) is what the edit distance would be if order were free (each
    substitution counts once). A lower bound on `cer` with the same settings. Whitespace is
    ignored by default because line breaks depend on layout.
    """
    h = _prep(hyp, ignore_whitespace)
    r = _prep(ref, ignore_whitespace)
    if not r:
        return 0.0 if not h else 1.0
    ch, cr = Counter(h), Counter(r)
    missing = sum((cr - ch).values())
    extra = sum((ch - cr).values())
    return max(missing, extra) / len(r)
