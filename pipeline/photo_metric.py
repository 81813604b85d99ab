"""Word-level detection and end-to-end recognition scores for scene photos (ICDAR 2015 style).

Page CER means little on a photo (no reading order, a few words in a street scene), so photos are
scored as the ICDAR 2015 Robust Reading "incidental scene text" task does:
- truth: one quadrilateral per word, `x1,y1,x2,y2,x3,y3,x4,y4,transcription` per line (the
  `gt_img_N.txt` format; `<id>.words.txt` beside the image in an evaluation set); a transcription
  of `###` marks a region that is not scored (illegible);
- predictions: the row's OCR lines, cut into words at spaces (each word's quad interpolated along
  its line by character position; a line without spaces stays one word);
- a prediction that lies mostly (> 50 % of its area) inside a `###` region is dropped;
- one-to-one greedy matching at IoU >= 0.5; end to end, a match counts only when the texts are equal
  after case folding and stripping leading/trailing punctuation.
Precision, recall and their harmonic mean, for detection and end to end; counts pooled over pages.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

DONT_CARE = "###"
IOU_MIN = 0.5
DONT_CARE_OVERLAP = 0.5


@dataclass
class Word:
    quad: np.ndarray  # 4 x 2, clockwise from top-left
    text: str


def read_words(text: str) -> list[Word]:
    """ICDAR 2015 ground truth lines (a UTF-8 BOM and blank lines allowed; commas in the word kept)."""
    words = []
    for line in text.lstrip("\ufeff").splitlines():
        parts = line.strip().split(",", 8)
        if len(parts) == 9:
            words.append(Word(np.array([float(v) for v in parts[:8]]).reshape(4, 2), parts[8]))
    return words


def line_words(lines: list[dict]) -> list[Word]:
    """OCR lines (box = 4 points, text) cut into words, each quad a slice of its line's quad."""
    words = []
    for line in lines or []:
        quad = np.asarray(line["box"], dtype=float).reshape(4, 2)
        text = line.get("text") or ""
        n = max(len(text), 1)
        pos = 0
        for token in text.split(" "):
            if token:
                a, b = pos / n, (pos + len(token)) / n
                top = quad[0] + (quad[1] - quad[0]) * np.array([[a], [b]])
                bottom = quad[3] + (quad[2] - quad[3]) * np.array([[b], [a]])
                words.append(Word(np.vstack([top, bottom]), token))
            pos += len(token) + 1
    return words


def _area(poly: np.ndarray) -> float:
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2


def _ccw(poly: np.ndarray) -> np.ndarray:
    x, y = poly[:, 0], poly[:, 1]
    return poly if float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) > 0 else poly[::-1]


def _clip(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman: `subject` cut by the convex polygon `clip` (both counter-clockwise)."""
    out = list(subject)
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        inp, out = out, []
        if not inp:
            break

        def inside(p):
            return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0

        def cross(p, q):
            d1, d2 = q - p, b - a
            den = d1[0] * d2[1] - d1[1] * d2[0]
            t = ((a[0] - p[0]) * d2[1] - (a[1] - p[1]) * d2[0]) / den if den else 0.0
            return p + t * d1

        for j in range(len(inp)):
            p, q = inp[j - 1], inp[j]
            if inside(q):
                if not inside(p):
                    out.append(cross(p, q))
                out.append(q)
            elif inside(p):
                out.append(cross(p, q))
    return np.array(out) if out else np.zeros((0, 2))


def intersection(a: np.ndarray, b: np.ndarray) -> float:
    return _area(_clip(_ccw(a), _ccw(b)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = intersection(a, b)
    union = _area(a) + _area(b) - inter
    return inter / union if union > 0 else 0.0


def _same(a: str, b: str) -> bool:
    strip = string.punctuation + "“”‘’«»"
    return a.casefold().strip(strip) == b.casefold().strip(strip)


def score_words(truth: list[Word], predicted: list[Word]) -> dict:
    """Counts for one page: scored truth words, kept predictions, detection and end-to-end matches."""
    care = [w for w in truth if w.text != DONT_CARE]
    ignored = [w for w in truth if w.text == DONT_CARE]
    kept = [p for p in predicted
            if not any(intersection(p.quad, g.quad) > DONT_CARE_OVERLAP * max(_area(p.quad), 1e-9) for g in ignored)]
    pairs = sorted(((iou(g.quad, p.quad), i, j) for i, g in enumerate(care) for j, p in enumerate(kept)), reverse=True)
    used_g, used_p, det, e2e = set(), set(), 0, 0
    for value, i, j in pairs:
        if value < IOU_MIN:
            break
        if i in used_g or j in used_p:
            continue
        used_g.add(i)
        used_p.add(j)
        det += 1
        e2e += _same(care[i].text, kept[j].text)
    return {"truth_words": len(care), "predicted_words": len(kept), "det_matched": det, "e2e_matched": e2e}


def summarize_words(counts: list[dict]) -> dict:
    """Pooled precision / recall / hmean (detection and end to end) over pages' counts."""
    t = sum(c["truth_words"] for c in counts)
    p = sum(c["predicted_words"] for c in counts)
    out = {"truth_words": t, "predicted_words": p}
    for key in ("det", "e2e"):
        m = sum(c[f"{key}_matched"] for c in counts)
        precision = m / p if p else 0.0
        recall = m / t if t else 0.0
        out[f"{key}_precision"] = round(precision, 4)
        out[f"{key}_recall"] = round(recall, 4)
        out[f"{key}_hmean"] = round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0
    return out
