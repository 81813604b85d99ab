"""Cheap CPU-only page classifier: picks the OCR route for a rendered page.

`classify_page(rgb)` downscales the page (longest side <= MAX_SIDE), then computes a handful
of features and applies fixed thresholds (module-level constants below). Features:

- ``ink_ratio``: fraction of "ink" pixels, i.e. pixels clearly darker than the local paper
  (paper = a max-filtered, heavily downscaled copy of the page, so shading/yellow paper is not ink).
- ``n_components``: connected ink blobs (after removing ruling lines) - few blobs means blank.
- ``midtone_ratio``: fraction of pixels that are neither paper nor ink (grey levels between
  MIDTONE_LO and MIDTONE_HI of the paper level) - large for photographs, small for text.
- ``colour_ratio``: fraction of saturated, non-dark pixels (HSV S > SAT_MIN) - photos, coloured ink.
- ``edge_density``: Canny edge pixels per pixel.
- ``row_gap`` / ``col_gap``: projection-profile periodicity. The page is cut into strips; in each
  vertical strip the row profile of horizontal text alternates between text lines and blank
  leading, so many rows are empty (``row_gap`` high). Vertical text gives empty columns inside
  horizontal strips (``col_gap`` high). Both are fractions of empty positions inside the inked
  extent, averaged over strips weighted by ink.
- ``row_runs`` / ``col_runs``: mean number of text lines/columns per strip (ink runs).
- ``h_rules`` / ``v_rules``: ruling lines found by morphological opening with long horizontal /
  vertical kernels (tables, forms, guji column rules, lined paper).
- ``height_cv``: coefficient of variation of glyph-blob heights; ``blob_aspect``: median
  width/height of blobs. Handwriting has irregular, joined (wide) strokes and ragged baselines,
  so both are higher and ``row_gap`` is lower than for print.
- ``stroke_cv``: coefficient of variation of stroke width (distance transform on ink skeleton-ish
  ridge pixels); pens vary more than fonts.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.types import ROUTES, Classification

MAX_SIDE = 1000  # downscale so the longest side is at most this (px)
INK_LEVEL = 0.62  # ink = pixel darker than this fraction of the local paper level
MIDTONE_LO, MIDTONE_HI = 0.25, 0.80  # midtone band, as fractions of the paper level
SAT_MIN = 70  # HSV saturation (0..255) counted as "colour"
GAP_EPS = 0.004  # a profile position is empty if less than this fraction of it is ink
N_STRIPS = 6  # strips per axis for the projection profiles

BLANK_MAX_INK = 0.0015  # below this ink ratio ...
BLANK_MAX_COMPONENTS = 25  # ... or with at most this many blobs, the page is blank
PHOTO_MIN_MIDTONE = 0.30  # photos are dominated by mid-tones ...
PHOTO_MAX_ROW_GAP = 0.25  # ... and show no regular text lines
VERTICAL_MARGIN = 0.08  # col_gap must beat row_gap by this much for vertical text
TABLE_MIN_RULES = 3  # ruled table: this many horizontal rules ...
TABLE_MIN_V_RULES = 2  # ... plus this many vertical ones, or
TABLE_MIN_COL_GAP = 0.18  # whitespace-separated columns (col_gap) together with row gaps
TABLE_MIN_ROW_GAP = 0.25
HANDWRITING_MIN_HEIGHT_CV = 0.9
HANDWRITING_MAX_ROW_GAP = 0.2

assert all(r in ROUTES for r in ("horizontal", "vertical", "table", "photo", "handwriting", "blank"))


def _downscale(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    h, w = image.shape[:2]
    scale = MAX_SIDE / max(h, w)
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _paper_level(gray: np.ndarray) -> np.ndarray:
    """Local paper brightness: max filter on a 1/8 copy (erases glyphs), blurred, upscaled."""
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    small = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5)))
    small = cv2.blur(small, (5, 5))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) + 1.0


def _rules(ink: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Long horizontal/vertical ruling lines: mask of them and their counts."""
    h, w = ink.shape
    hk = cv2.getStructuringElement(cv2.MORPH_RECT, (max(15, w // 8), 1))
    vk = cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(15, h // 8)))
    hmask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, hk)
    vmask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, vk)
    n_h = cv2.connectedComponents(cv2.dilate(hmask, np.ones((3, 1), np.uint8)))[0] - 1
    n_v = cv2.connectedComponents(cv2.dilate(vmask, np.ones((1, 3), np.uint8)))[0] - 1
    return cv2.bitwise_or(hmask, vmask), n_h, n_v


def _gap_score(ink: np.ndarray, axis: int) -> tuple[float, float]:
    """Empty-position fraction and mean ink-run count of profiles along `axis` inside strips.

    axis=1: vertical strips, row profiles (horizontal text lines); axis=0: the transpose.
    """
    mask = ink if axis == 1 else ink.T
    total, score, runs = 0.0, 0.0, 0.0
    for strip in np.array_split(mask, N_STRIPS, axis=1):
        if strip.shape[1] == 0:
            continue
        prof = strip.mean(axis=1) / 255.0
        inked = np.flatnonzero(prof >= GAP_EPS)
        if inked.size < 3:
            continue
        prof = prof[inked[0] : inked[-1] + 1]
        weight = float(prof.sum())
        full = prof >= GAP_EPS
        score += weight * float(1.0 - full.mean())
        runs += weight * float(np.count_nonzero(full[1:] & ~full[:-1]) + 1)
        total += weight
    if total == 0:
        return 0.0, 0.0
    return score / total, runs / total


def _blob_stats(text_ink: np.ndarray) -> tuple[int, float, float]:
    n, _, stats, _ = cv2.connectedComponentsWithStats(text_ink, connectivity=8)
    stats = stats[1:]
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= 4]
    if len(stats) < 5:
        return len(stats), 0.0, 0.0
    hts = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float32)
    wds = stats[:, cv2.CC_STAT_WIDTH].astype(np.float32)
    height_cv = float(hts.std() / max(1.0, float(np.median(hts))))
    return len(stats), height_cv, float(np.median(wds / hts))


def _stroke_cv(text_ink: np.ndarray) -> float:
    """Variation of stroke width, sampled at local maxima of the distance transform."""
    if cv2.countNonZero(text_ink) < 50:
        return 0.0
    dist = cv2.distanceTransform(text_ink, cv2.DIST_L2, 3)
    ridge = (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8))) & (dist > 0)
    widths = dist[ridge]
    if widths.size < 20:
        return 0.0
    return float(widths.std() / max(widths.mean(), 1e-3))


def page_features(image: np.ndarray) -> dict[str, float]:
    """All features of `classify_page`, computed on a downscaled copy of the RGB page."""
    rgb = _downscale(image)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    paper = _paper_level(gray)
    rel = gray.astype(np.float32) / paper
    ink = np.where(rel < INK_LEVEL, 255, 0).astype(np.uint8)
    rules_mask, n_h, n_v = _rules(ink)
    text_ink = cv2.bitwise_and(ink, cv2.bitwise_not(rules_mask))

    paper_white = float(np.percentile(gray, 95)) + 1.0
    g = gray.astype(np.float32) / paper_white
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    row_gap, row_runs = _gap_score(text_ink, axis=1)
    col_gap, col_runs = _gap_score(text_ink, axis=0)
    n_blobs, height_cv, blob_aspect = _blob_stats(text_ink)
    return {
        "ink_ratio": float(cv2.countNonZero(ink)) / ink.size,
        "n_components": float(n_blobs),
        "paper_level": paper_white - 1.0,
        "midtone_ratio": float(np.mean((g > MIDTONE_LO) & (g < MIDTONE_HI))),
        "colour_ratio": float(np.mean((hsv[:, :, 1] > SAT_MIN) & (hsv[:, :, 2] > 60))),
        "edge_density": float(cv2.countNonZero(cv2.Canny(gray, 80, 160))) / gray.size,
        "row_gap": row_gap,
        "col_gap": col_gap,
        "row_runs": row_runs,
        "col_runs": col_runs,
        "h_rules": float(n_h),
        "v_rules": float(n_v),
        "height_cv": height_cv,
        "blob_aspect": blob_aspect,
        "stroke_cv": _stroke_cv(text_ink),
    }


def decide(f: dict[str, float]) -> str:
    """Map features to a route (first matching rule wins)."""
    if f["ink_ratio"] < BLANK_MAX_INK or f["n_components"] <= BLANK_MAX_COMPONENTS:
        return "blank"
    if f["midtone_ratio"] >= PHOTO_MIN_MIDTONE and f["row_gap"] < PHOTO_MAX_ROW_GAP:
        return "photo"
    if f["col_gap"] > f["row_gap"] + VERTICAL_MARGIN:
        return "vertical"
    if (f["h_rules"] >= TABLE_MIN_RULES and f["v_rules"] >= TABLE_MIN_V_RULES) or (
        f["col_gap"] >= TABLE_MIN_COL_GAP and f["row_gap"] >= TABLE_MIN_ROW_GAP
    ):
        return "table"
    if f["height_cv"] >= HANDWRITING_MIN_HEIGHT_CV and f["row_gap"] < HANDWRITING_MAX_ROW_GAP:
        return "handwriting"
    return "horizontal"


def classify_page(image: np.ndarray) -> Classification:
    """Classify an RGB uint8 page (H x W x 3) into one of `ROUTES`."""
    features = page_features(image)
    return Classification(route=decide(features), features=features)
