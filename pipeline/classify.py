"""Cheap CPU-only page classifier: picks the OCR route for a rendered page.

`classify_page(rgb)` downscales the page (longest side near MAX_SIDE), then computes a handful
of features, applies fixed thresholds (module-level constants below) and a learned model. Features:

- ``ink_ratio``: fraction of "ink" pixels, i.e. pixels clearly darker than the local paper
  (paper = a max-filtered, heavily downscaled copy of the page, so shading/yellow paper is not ink).
- ``n_components``: connected ink blobs (after removing ruling lines) - few blobs means blank.
- ``midtone_ratio``: fraction of pixels that are neither paper nor ink (grey levels between
  MIDTONE_LO and MIDTONE_HI of the paper level) - large for photographs, small for text.
- ``colour_ratio``: fraction of saturated, non-dark pixels (HSV S > SAT_MIN) - photos, coloured ink.
- ``edge_density``: share of pixels with a strong Sobel gradient (half-size copy).
- ``axis_energy``: share of that gradient energy within AXIS_TOL degrees of the x/y axes: type
  has straight stems and bars; pen strokes are slanted and curved (lower).
- ``row_gap`` / ``col_gap``: projection-profile periodicity. The page is cut into strips; in each
  vertical strip the row profile of horizontal text alternates between text lines and blank
  leading, so many rows are empty (``row_gap`` high). Vertical text gives empty columns inside
  horizontal strips (``col_gap`` high). Both are fractions of empty positions inside the inked
  extent, averaged over strips weighted by ink.
- ``row_runs`` / ``col_runs``: mean number of text lines/columns per strip (ink runs).
- ``h_rules`` / ``v_rules`` / ``rule_crossings``: thin ruling lines found by morphological opening
  with long horizontal / vertical kernels, and their intersections (a ruled table is a grid; chart
  axes, guji column rules and lined paper give few crossings). Solid dark areas are excluded.
- ``height_cv`` / ``blob_aspect``: spread of glyph-blob heights, median blob width/height.
- ``wide_col_gap``: like ``col_gap`` but counting only empty column runs wider than WIDE_GAP of
  the page: table gutters, not the aligned letter cells of typewritten (monospace) text.
- ``border_dark``: summed share of the four outer bands darker than the paper: the desk or
  background around a photographed page (0 for a scan that fills the frame, up to 4).
- ``colour_ratio`` is measured after white-balancing on the paper's colour, so yellowed paper
  is not "colour".
- ``line_sharpness``: in each text line (vertical strips), the steepest step of the row profile
  relative to its peak. Printed glyphs share a baseline and x-height (sharp step); handwriting,
  with wavy baselines and varying letter size, ramps gently.
- ``shape_repeat``: share of glyph-sized blobs whose exact height, width and (binned) area recur at
  least REPEAT_MIN times: type prints the same letter shape again and again, a hand never quite does.
- ``gutter_gap``: ``wide_col_gap`` counting only runs at least GUTTER of the width: a table's
  column gutters, not the word gaps that line up in double-spaced typewritten text.
- ``stroke_cv``, ``cell_share``, ``aligned_cells``, ``cells_per_row``, ``cell_width``: stroke-width spread
  and the phrase/cell layout of the text lines (pipeline/classify_lines.py): a table's cells line up in
  columns past gutters, a letter's right-hand address block has nothing to its left.

Decision (`decide`): hand-set rules first (`rule_route`: photo -> blank -> vertical), then, for the pages
they leave, a multinomial logistic model over 23 of the features (classify_lines.MODEL_W: horizontal,
table, handwriting, or vertical for columns the rule missed), fitted on the tuning part only (`python -m
pipeline.page_gen --fit`). Its errors cost differently: handwriting read as print goes to PaddleOCR (worse
text), print read as handwriting goes to the VLM (slower, same quality); the fit weights handwriting 1.5.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.classify_lines import cell_features, model_route, stroke_width_cv
from pipeline.types import ROUTES, Classification

MAX_SIDE = 1000  # downscale by an integer factor to a longest side near this (px)
INK_LEVEL = 0.62  # ink = pixel darker than this fraction of the local paper level
FAINT_PCT = 5  # ... unless the darkest 0.05% (FAINT_PCT / 10000) of pixels are lighter than that:
FAINT_SHARE = 0.4  # then the level sits this far from the darkest ink towards the paper,
FAINT_MAX_LEVEL = 0.88  # but no higher than this (paper grain and show-through stay paper)
MIDTONE_LO, MIDTONE_HI = 0.25, 0.80  # midtone band, as fractions of the paper level
SAT_MIN = 70  # HSV saturation (0..255) counted as "colour"
GAP_EPS = 0.004  # a profile position is empty if less than this fraction of it is ink
N_STRIPS = 6  # strips per axis for the projection profiles
EDGE_MIN = 120.0  # |gx|+|gy| (Sobel 3x3) of a strong edge
AXIS_TOL = 12.0  # degrees: gradient this close to an axis counts as "on axis"
SOLID_SIZE = 6  # ink blobs containing a square this big are "solid", not rules
BLOCK_SIZE = 15  # ... and this big: a filled block (shading, picture), not text either
SHARP_STRIPS = 8  # vertical strips for the line-sharpness profile
WIDE_GAP = 0.008  # an empty column run this share of the page width wide is a gutter (not a letter gap)
BORDER_BAND, BORDER_DARK = 0.03, 0.72  # outer band per side; "dark" = below this share of the paper
AREA_BIN, REPEAT_MIN, REPEAT_MIN_HEIGHT = 4, 4, 6  # shape_repeat: area quantum (px), recurrences, least blob height (px)
GUTTER = 0.03  # an empty column run this share of the width is a table gutter for gutter_gap

BLANK_MAX_INK = 0.0012  # below this ink ratio, or with fewer blobs than
BLANK_MIN_COMPONENTS = 8  # this, the page is blank
PHOTO_MIN_COLOUR = 0.40  # photo: mostly saturated colour, or
PHOTO_MIN_MIDTONE = 0.30  # dominated by mid-tones ...
PHOTO_MAX_ROW_GAP = 0.30  # ... without regular text lines
VERTICAL_MARGIN = 0.08  # col_gap must beat row_gap by this much ...
VERTICAL_MAX_ROW_GAP = 0.38  # ... and rows must be dense (tables have both kinds of gaps)
PAGE_PHOTO_MIN_MIDTONE = 0.17  # a photographed page: many mid-tones (shading, background) ...
PAGE_PHOTO_MAX_PAPER = 232  # ... and no bright paper anywhere (uneven light), even with text lines
BORDER_MIN_SIDES = 2.0  # or: the desk around the page fills this many sides' outer bands (border_dark),
BORDER_MIN_MIDTONE = 0.15  # with mid-tones, on paper that is not a digital render's white
BORDER_MAX_PAPER = 250


def _downscale(image: np.ndarray) -> np.ndarray:
    """RGB copy shrunk by an integer factor (fast INTER_AREA path) to a longest side near MAX_SIDE."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    h, w = image.shape[:2]
    factor = max(1, round(max(h, w) / MAX_SIDE))
    if factor > 1:
        image = cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _paper_level(gray: np.ndarray) -> np.ndarray:
    """Local paper brightness: max filter on a 1/8 copy (erases glyphs), blurred, upscaled."""
    h, w = gray.shape
    small = cv2.resize(gray, (max(1, w // 8), max(1, h // 8)), interpolation=cv2.INTER_AREA)
    small = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5)))
    small = cv2.blur(small, (5, 5))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) + 1.0


def _rules(ink: np.ndarray) -> tuple[np.ndarray, int, int, int]:
    """Long thin horizontal/vertical ruling lines: mask of them (plus filled blocks), counts, crossings.

    Solid dark areas (photos, filled bars, marker strokes) are removed first so they don't pass
    as rules; big filled blocks (shaded bands, dark pictures) also join the returned mask.
    """
    h, w = ink.shape
    solid = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((SOLID_SIZE, SOLID_SIZE), np.uint8))
    ink = cv2.bitwise_and(ink, cv2.bitwise_not(cv2.dilate(solid, np.ones((3, 3), np.uint8))))
    blocks = cv2.morphologyEx(solid, cv2.MORPH_OPEN, np.ones((BLOCK_SIZE, BLOCK_SIZE), np.uint8))
    hk = cv2.getStructuringElement(cv2.MORPH_RECT, (max(15, w // 8), 1))
    vk = cv2.getStructuringElement(cv2.MORPH_RECT, (1, max(15, h // 8)))
    hmask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, hk)
    vmask = cv2.morphologyEx(ink, cv2.MORPH_OPEN, vk)
    n_h = cv2.connectedComponents(cv2.dilate(hmask, np.ones((3, 1), np.uint8)))[0] - 1
    n_v = cv2.connectedComponents(cv2.dilate(vmask, np.ones((1, 3), np.uint8)))[0] - 1
    cross = cv2.bitwise_and(cv2.dilate(hmask, np.ones((5, 5), np.uint8)), cv2.dilate(vmask, np.ones((5, 5), np.uint8)))
    n_x = cv2.connectedComponents(cross)[0] - 1
    return cv2.bitwise_or(cv2.bitwise_or(hmask, vmask), blocks), n_h, n_v, n_x


def _gradient_stats(gray: np.ndarray) -> tuple[float, float]:
    """(edge_density, axis_energy) from Sobel gradients on a half-size copy.

    edge_density: share of pixels with a strong gradient. axis_energy: share of that gradient
    energy within AXIS_TOL degrees of the x or y axis - type has straight stems and bars (high),
    pen strokes are slanted and curved (lower).
    """
    if min(gray.shape) >= 200:
        gray = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), interpolation=cv2.INTER_AREA)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    ax, ay = np.abs(gx), np.abs(gy)
    mag = ax + ay
    strong = mag > EDGE_MIN
    n_strong = int(np.count_nonzero(strong))
    if n_strong < 50:
        return n_strong / gray.size, 0.0
    ax, ay, m = ax[strong], ay[strong], mag[strong]
    on_axis = np.minimum(ax, ay) < np.tan(np.deg2rad(AXIS_TOL)) * np.maximum(ax, ay)
    return n_strong / gray.size, float(m[on_axis].sum() / m.sum())


def _strip_profiles(ink: np.ndarray, axis: int):
    """Per strip with some ink: (profile, lo, hi), the ink share of each position along `axis` and the
    span [lo, hi) from its first to its last inked position. axis=1: vertical strips, row profiles
    (horizontal text lines); axis=0: horizontal strips, column profiles."""
    mask = ink if axis == 1 else ink.T
    for strip in np.array_split(mask, N_STRIPS, axis=1):
        if strip.shape[1] == 0:
            continue
        prof = strip.mean(axis=1) / 255.0
        inked = np.flatnonzero(prof >= GAP_EPS)
        if inked.size >= 3:
            yield prof, int(inked[0]), int(inked[-1]) + 1


def _gap_score(ink: np.ndarray, axis: int) -> tuple[float, float]:
    """Empty-position fraction and mean ink-run count of profiles along `axis` inside strips."""
    total, score, runs = 0.0, 0.0, 0.0
    for prof, lo, hi in _strip_profiles(ink, axis):
        prof = prof[lo:hi]
        weight = float(prof.sum())
        full = prof >= GAP_EPS
        score += weight * float(1.0 - full.mean())
        runs += weight * float(np.count_nonzero(full[1:] & ~full[:-1]) + 1)
        total += weight
    if total == 0:
        return 0.0, 0.0
    return score / total, runs / total


def _wide_gap(ink: np.ndarray, min_run: int) -> float:
    """Like col_gap, but only empty column runs at least `min_run` px wide count: the gutters of a
    table, not the aligned letter cells of typewriter (monospace) text."""
    total, score = 0.0, 0.0
    for prof, lo, hi in _strip_profiles(ink, 0):
        empty = np.r_[0, (prof[lo:hi] < GAP_EPS).astype(np.int8), 0]
        edges = np.diff(empty)
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        weight = float(prof.sum())
        score += weight * float(runs[runs >= min_run].sum()) / (hi - lo)
        total += weight
    return score / total if total else 0.0


def _border_dark(gray: np.ndarray, paper_white: float) -> float:
    """Sum over the four sides of the share of an outer band (BORDER_BAND of the side) darker than
    BORDER_DARK of the paper: a photographed page lies on a table/desk, a scan fills the frame."""
    h, w = gray.shape
    bh, bw = max(1, int(h * BORDER_BAND)), max(1, int(w * BORDER_BAND))
    dark = gray < BORDER_DARK * paper_white
    return float(sum(np.mean(b) for b in (dark[:bh], dark[-bh:], dark[:, :bw], dark[:, -bw:])))


def _line_sharpness(ink: np.ndarray) -> float:
    """Mean sharpest step of the row profile inside each text line (in vertical strips).

    Printed glyphs share a baseline and x-height, so a line's profile jumps within a row or two;
    handwriting (wavy, slanted baselines, varying letter sizes) gives a gentler ramp.
    """
    vals, weights = [], []
    for strip in np.array_split(ink, SHARP_STRIPS, axis=1):
        if strip.shape[1] == 0:
            continue
        prof = strip.mean(axis=1) / 255.0
        full = np.r_[0, (prof >= GAP_EPS).astype(np.int8), 0]
        edges = np.diff(full)
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            if end - start >= 6:
                line = prof[start:end]
                vals.append(float(np.abs(np.diff(line)).max() / line.max()))
                weights.append(float(line.sum()))
    return float(np.average(vals, weights=weights)) if vals else 0.0


def _blob_stats(text_ink: np.ndarray) -> tuple[int, float, float, float, float]:
    """(blobs, height_cv, blob_aspect, height_peak, shape_repeat). height_peak: share of glyph-sized
    blobs within a pixel or ~8% of the commonest blob height - type repeats its x-height exactly, a hand
    does not. shape_repeat: share of glyph-sized blobs whose exact (height, width, area // AREA_BIN)
    occurs at least REPEAT_MIN times on the page: type prints the same letter shape again and again."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(text_ink, connectivity=8)
    stats = stats[1:]
    stats = stats[stats[:, cv2.CC_STAT_AREA] >= 4]
    if len(stats) < 5:
        return len(stats), 0.0, 0.0, 0.0, 0.0
    hts = stats[:, cv2.CC_STAT_HEIGHT].astype(np.float32)
    wds = stats[:, cv2.CC_STAT_WIDTH].astype(np.float32)
    med = max(1.0, float(np.median(hts)))
    height_cv = float(hts.std() / med)
    glyph = hts[(hts >= 0.5 * med) & (hts <= 2 * med)].astype(np.int64)
    mode = int(np.bincount(glyph).argmax())
    peak = float(np.mean(np.abs(glyph - mode) <= max(1, round(0.08 * mode))))
    sel = stats[(hts >= 0.5 * med) & (hts <= 2 * med) & (hts >= REPEAT_MIN_HEIGHT)]  # whole letters, not specks
    key = (sel[:, cv2.CC_STAT_HEIGHT] * 4096 + sel[:, cv2.CC_STAT_WIDTH]) * 4096 + sel[:, cv2.CC_STAT_AREA] // AREA_BIN
    _, inv, counts = np.unique(key, return_inverse=True, return_counts=True)
    repeat = float(np.mean(counts[inv] >= REPEAT_MIN)) if len(sel) >= 20 else 0.0
    return len(stats), height_cv, float(np.median(wds / hts)), peak, repeat


def _closed_ink_features(text_ink: np.ndarray) -> dict[str, float]:
    """The glyph statistics again after a 3x3 closing of the ink, which rejoins the strokes that a faint or
    worn typewriter ribbon (or a 150 DPI scan) breaks into specks: without it such a typed letter's glyph
    heights and stroke widths look as uneven as a hand's."""
    closed = cv2.morphologyEx(text_ink, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    _, height_cv, _, height_peak, shape_repeat = _blob_stats(closed)
    return {"closed_height_peak": height_peak, "closed_shape_repeat": shape_repeat, "closed_height_cv": height_cv,
            "closed_stroke_cv": stroke_width_cv(closed)}


def page_features(image: np.ndarray) -> dict[str, float]:
    """All features of `classify_page`, computed on a downscaled copy of the RGB page."""
    rgb = _downscale(image)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    paper = _paper_level(gray)
    rel = gray.astype(np.float32) / paper
    # faint pages (pencil, faded typewriter ink): the ink level follows the darkest strokes, up to a cap
    dark = float(np.partition(rel[::2, ::2].ravel(), max(0, rel[::2, ::2].size * FAINT_PCT // 10000))[rel[::2, ::2].size * FAINT_PCT // 10000])
    level = min(FAINT_MAX_LEVEL, max(INK_LEVEL, dark + FAINT_SHARE * (1.0 - dark)))
    if level > INK_LEVEL and np.count_nonzero(rel[::2, ::2] < level) < BLANK_MAX_INK * rel[::2, ::2].size:
        level = INK_LEVEL  # hardly anything that dark: a blank page (a page number), not faint text
    ink = np.where(rel < level, 255, 0).astype(np.uint8)
    rules_mask, n_h, n_v, n_x = _rules(ink)
    text_ink = cv2.bitwise_and(ink, cv2.bitwise_not(rules_mask))

    paper_white = float(np.percentile(gray, 95)) + 1.0
    g = gray.astype(np.float32) / paper_white
    # colour relative to the paper's own tint (white-balanced): yellowed paper is not a photo
    sample = rgb[::4, ::4].reshape(-1, 3)
    white = np.maximum(np.partition(sample, sample.shape[0] * 95 // 100, axis=0)[sample.shape[0] * 95 // 100], 32)
    lut = np.clip(np.arange(256, dtype=np.float32)[:, None] * (255.0 / white), 0, 255).astype(np.uint8)
    hsv = cv2.cvtColor(cv2.LUT(rgb, lut.reshape(256, 1, 3)), cv2.COLOR_RGB2HSV)
    row_gap, row_runs = _gap_score(text_ink, axis=1)
    col_gap, col_runs = _gap_score(text_ink, axis=0)
    n_blobs, height_cv, blob_aspect, height_peak, shape_repeat = _blob_stats(text_ink)
    edge_density, axis_energy = _gradient_stats(gray)
    return {
        "ink_ratio": float(cv2.countNonZero(ink)) / ink.size,
        "n_components": float(n_blobs),
        "paper_level": paper_white - 1.0,
        "midtone_ratio": float(np.mean((g > MIDTONE_LO) & (g < MIDTONE_HI))),
        "colour_ratio": float(np.mean((hsv[:, :, 1] > SAT_MIN) & (hsv[:, :, 2] > 60))),
        "edge_density": edge_density,
        "row_gap": row_gap,
        "col_gap": col_gap,
        "row_runs": row_runs,
        "col_runs": col_runs,
        "h_rules": float(n_h),
        "v_rules": float(n_v),
        "rule_crossings": float(n_x),
        "height_cv": height_cv,
        "blob_aspect": blob_aspect,
        "height_peak": height_peak,
        "shape_repeat": shape_repeat,
        "ink_level": level,
        "axis_energy": axis_energy,
        "gutter_gap": float(_wide_gap(text_ink, max(3, round(GUTTER * text_ink.shape[1])))),
        "line_sharpness": _line_sharpness(text_ink),
        "wide_col_gap": float(_wide_gap(text_ink, max(2, round(WIDE_GAP * text_ink.shape[1])))),
        "border_dark": _border_dark(gray, paper_white),
        "stroke_cv": stroke_width_cv(text_ink),
        **cell_features(text_ink),
        **_closed_ink_features(text_ink),
    }


def rule_route(f: dict[str, float]) -> str | None:
    """The hand-set rules, in order photo -> blank -> vertical; None for the pages left to the model."""
    if f["colour_ratio"] >= PHOTO_MIN_COLOUR or (
        f["midtone_ratio"] >= PHOTO_MIN_MIDTONE and f["row_gap"] < PHOTO_MAX_ROW_GAP
    ) or (f["midtone_ratio"] >= PAGE_PHOTO_MIN_MIDTONE and f["paper_level"] < PAGE_PHOTO_MAX_PAPER) or (
        f["border_dark"] >= BORDER_MIN_SIDES and f["midtone_ratio"] >= BORDER_MIN_MIDTONE and f["paper_level"] < BORDER_MAX_PAPER
    ):
        return "photo"
    if f["ink_ratio"] < BLANK_MAX_INK or f["n_components"] < BLANK_MIN_COMPONENTS:
        return "blank"
    if f["col_gap"] > f["row_gap"] + VERTICAL_MARGIN and f["row_gap"] < VERTICAL_MAX_ROW_GAP:
        return "vertical"
    return None


def decide(f: dict[str, float]) -> str:
    """Map features to a route: the rules first, then the learned model (classify_lines.model_route)."""
    return rule_route(f) or model_route(f)


def classify_page(image: np.ndarray) -> Classification:
    """Classify an RGB uint8 page (H x W x 3) into one of `ROUTES`."""
    features = page_features(image)
    route = decide(features)
    assert route in ROUTES
    return Classification(route=route, features=features)
