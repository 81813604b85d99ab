"""Line- and stroke-level features of the page router (pipeline/classify.py), and its learned scores.

`cell_features(text_ink)`: letters are joined into phrases by a short horizontal dilation (word gaps
close, a table's column gutters do not); each phrase ("segment") that has another segment to its left
on the same text line, past a gutter, is a *cell*. A table is rows of cells whose left edges line up
in columns; a letter's right-hand address block or date is a run of lines with nothing to their left
(no cells), and a two-column text page has one long cell per line.

- ``cell_share``: share of the segments that are cells;
- ``aligned_cells``: share of the segments that are cells whose left edge lines up (within ALIGN_TOL
  of the width) with ALIGN_MIN other cells: table columns;
- ``cells_per_row``: mean number of segments on the lines that have a cell (2 for two columns);
- ``cell_width``: median width of the cells as a share of the page width (short in tables).

`stroke_width_cv(text_ink)`: spread of the stroke width (distance transform at the stroke's ridge):
a pen's pressure and a felt tip vary it, type keeps it.

`model_route(f)`: the learned last step of classify.decide (see MODEL_W).
"""

from __future__ import annotations

import cv2
import numpy as np

CELL_JOIN = 0.011  # horizontal dilation joining letters into phrases (share of the width)
CELL_GAP = 0.022  # a segment this far (share of the width, or 1.5 line heights) right of another is a cell
ALIGN_TOL, ALIGN_MIN = 0.008, 3  # column alignment: left edges this close (share of width), this many others


def cell_features(text_ink: np.ndarray) -> dict[str, float]:
    h, w = text_ink.shape
    k = max(3, round(CELL_JOIN * w))
    n, _, st, _ = cv2.connectedComponentsWithStats(cv2.dilate(text_ink, np.ones((1, k), np.uint8)), connectivity=8)
    st = st[1:]
    st = st[(st[:, 3] >= 3) & (st[:, 3] <= 0.06 * h) & (st[:, 2] >= k + 2)]
    out = {"cell_share": 0.0, "aligned_cells": 0.0, "cells_per_row": 0.0, "cell_width": 0.0}
    if len(st) < 8:
        return out
    x0 = st[:, 0].astype(np.float32) + k // 2  # the dilation widened each phrase by k // 2 on either side
    x1 = (st[:, 0] + st[:, 2]).astype(np.float32) - k // 2
    yc = st[:, 1] + st[:, 3] / 2.0
    hh = st[:, 3].astype(np.float32)
    med_h = float(np.median(hh))
    gap = max(CELL_GAP * w, 1.5 * med_h)
    # same line: centres within half the smaller height; left of it past a gutter
    same = np.abs(yc[:, None] - yc[None, :]) < 0.5 * np.minimum(hh[:, None], hh[None, :])
    left_of = x1[None, :] <= x0[:, None] - gap  # [i, j]: j ends a gutter before i starts
    cell = np.any(same & left_of, axis=1)
    n_seg = len(st)
    out["cell_share"] = float(cell.mean())
    if cell.sum() >= 3:
        xc = x0[cell]
        close = np.abs(xc[:, None] - xc[None, :]) <= ALIGN_TOL * w
        aligned = (close.sum(1) - 1) >= ALIGN_MIN
        out["aligned_cells"] = float(aligned.sum()) / n_seg
        rows = same[cell]  # the lines of the cells: segments on them
        out["cells_per_row"] = float(np.mean(rows.sum(1)))
        out["cell_width"] = float(np.median(x1[cell] - x0[cell])) / w
    return out


def stroke_width_cv(text_ink: np.ndarray) -> float:
    """Coefficient of variation of the stroke half-width at the strokes' ridges (distance-transform maxima)."""
    if cv2.countNonZero(text_ink) < 200:
        return 0.0
    dt = cv2.distanceTransform(text_ink, cv2.DIST_L2, 3)
    ridge = (dt > 0) & (dt >= cv2.dilate(dt, np.ones((3, 3), np.uint8)))
    vals = dt[ridge]
    return float(vals.std() / (vals.mean() + 1e-6)) if vals.size > 50 else 0.0


# The learned part of the router: a multinomial logistic model over these features (counts and the ink
# ratio on a log scale) for the pages that the photo, blank and vertical rules leave. Fitted on the tuning
# part only (`python -m pipeline.page_gen --fit`: real tuning pages weighted 6, forms 0.5 as they may also
# go as text, handwriting 1.5 as reading it as print costs text; L2 0.01 on standardised features, chosen
# by two-fold cross-validation over the tuning seeds). MODEL_W: one row per feature, one column per class.
MODEL_CLASSES = ("horizontal", "table", "handwriting", "vertical")
MODEL_FEATURES = ("ink_ratio", "row_gap", "col_gap", "row_runs", "col_runs", "midtone_ratio", "axis_energy",
                  "line_sharpness", "height_peak", "shape_repeat", "stroke_cv", "cell_share", "aligned_cells",
                  "cells_per_row", "cell_width", "wide_col_gap", "gutter_gap", "rule_crossings", "h_rules", "v_rules",
                  "height_cv", "blob_aspect", "edge_density", "closed_height_peak", "closed_shape_repeat",
                  "closed_height_cv", "closed_stroke_cv")
LOG_FEATURES = ("rule_crossings", "h_rules", "v_rules", "cells_per_row", "row_runs", "col_runs")
MODEL_W = (  # horizontal, table, handwriting, vertical
    (-0.2959, 0.5506, -0.3906, 0.1359),  # ink_ratio
    (-0.3689, 3.003, -1.481, -1.153),  # row_gap
    (-1.471, 1.015, -0.4612, 0.9166),  # col_gap
    (-0.1196, -0.2559, 0.2168, 0.1587),  # row_runs
    (-0.09674, -0.1179, 0.2604, -0.04579),  # col_runs
    (0.5787, -3.302, -0.8462, 3.569),  # midtone_ratio
    (-4.017, 7.328, -3.949, 0.638),  # axis_energy
    (3.653, 2.95, -6.789, 0.1861),  # line_sharpness
    (1.928, -0.1221, -2.198, 0.3916),  # height_peak
    (0.6814, 0.8763, -1.058, -0.4999),  # shape_repeat
    (1.404, 2.315, -5.302, 1.583),  # stroke_cv
    (-1.739, 0.5084, 0.7813, 0.4495),  # cell_share
    (-2.094, 1.263, 0.06573, 0.7653),  # aligned_cells
    (-0.001821, -0.4216, 0.09972, 0.3237),  # cells_per_row
    (6.069, -1.66, -3.044, -1.365),  # cell_width
    (-2.282, 1.711, -0.7332, 1.303),  # wide_col_gap
    (-2.161, 3.224, -1.399, 0.3366),  # gutter_gap
    (-0.08677, 0.07319, -0.07034, 0.08392),  # rule_crossings
    (-0.03681, 0.2267, -0.1908, 0.0008673),  # h_rules
    (-0.0867, -0.4992, 0.2097, 0.3763),  # v_rules
    (0.7807, -0.3616, -0.4582, 0.0391),  # height_cv
    (-0.7512, -0.1777, 0.328, 0.6008),  # blob_aspect
    (2.963, 0.1082, -4.364, 1.293),  # edge_density
    (1.932, 0.8793, -4.242, 1.431),  # closed_height_peak
    (1.979, -0.4047, -2.831, 1.257),  # closed_shape_repeat
    (-0.3137, 0.2754, 0.1373, -0.09897),  # closed_height_cv
    (1.944, -1.895, -4.228, 4.179),  # closed_stroke_cv
)
MODEL_B = (1.389, -7.264, 14.63, -8.755)


def model_vector(f: dict[str, float]) -> np.ndarray:
    return np.array([np.log1p(1000 * f[k]) if k == "ink_ratio" else np.log1p(f[k]) if k in LOG_FEATURES else f[k]
                     for k in MODEL_FEATURES])


def model_scores(f: dict[str, float], w=None, b=None) -> np.ndarray:
    """One score per MODEL_CLASSES (a softmax of them is the model's probability)."""
    return model_vector(f) @ np.asarray(MODEL_W if w is None else w) + np.asarray(MODEL_B if b is None else b)


def model_route(f: dict[str, float]) -> str:
    return MODEL_CLASSES[int(np.argmax(model_scores(f)))]
