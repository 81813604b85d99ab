"""Seeded generator of labelled pages for tuning and testing the page router (pipeline/classify.py).

`generate(kind, seed, dpi)` draws one page (PIL RGB image, A4 at `dpi`); `labelled_set(n, seed)` gives
(image, route) pairs for every kind. Kinds and their routes (KINDS; drawn in pipeline/page_gen_kinds.py,
fonts, paper and scan effects in pipeline/page_gen_base.py): typed letters (monospace "typewriter" type,
per-character jitter and ink, aged paper, skew, signature) -> horizontal; business forms (labels, boxes,
filled values) -> table; handwriting (script fonts from PyPI's fontpkg-* packages, per-word size, slant
and baseline jitter, elastic wobble, pen width, lined or squared or plain paper, blue/black/pencil) ->
handwriting; photos of pages (perspective, lighting, background, blur, JPEG) -> photo; plain text pages,
tables, vertical Chinese (pymupdf's CJK font; some from pipeline.bench.synthetic_page) and blank pages.
Most kinds are sometimes "scanned" again (resolution loss, JPEG, bitonal, dark copy, grey scan).
Seeds >= TEST_SEED0 are the held-out part, which also draws on fonts (HELDOUT_FONTS) that tuning seeds
never use. `python -m pipeline.page_gen --report` prints router accuracy and confusion on the tuning and
held-out parts (real labelled pages split by `real_split`, plus generated pages); `--fit` refits the
handwriting score of pipeline/classify.py on the tuning part only.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.page_gen_base import HELDOUT_FONTS, _pool, _rnd, _scan, hand_fonts, mono_fonts, text_fonts  # noqa: F401
from pipeline.page_gen_kinds import GENERATORS

KINDS = {"typed_letter": "horizontal", "form": "table", "handwriting": "handwriting", "photo_of_page": "photo",
         "horizontal": "horizontal", "table": "table", "vertical": "vertical", "blank": "blank"}
ALSO_OK = {"form": {"horizontal"}}  # a form read as plain text still goes to PaddleOCR
TEST_SEED0 = 1_000_000  # seeds from here on: held-out part


def generate(kind: str, seed: int, dpi: int = 185) -> Image.Image:
    """Page `seed` of `kind` (a key of KINDS); seeds >= TEST_SEED0 belong to the held-out part."""
    return GENERATORS[kind](_rnd(kind, seed), dpi, seed >= TEST_SEED0)


def labelled_items(n_per_kind: int, seed: int = 0, dpi: int = 185):
    """(name, loader, route, also-acceptable routes) for n pages of every kind, seeds seed .. seed+n-1."""
    return [(f"gen/{k}/{s}", functools.partial(lambda k, s: np.asarray(generate(k, s, dpi)), k, s), KINDS[k], ALSO_OK.get(k, set()))
            for k in KINDS for s in range(seed, seed + n_per_kind)]


def labelled_set(n_per_kind: int, seed: int = 0, dpi: int = 185) -> list[tuple[Image.Image, str]]:
    return [(generate(k, s, dpi), KINDS[k]) for k in KINDS for s in range(seed, seed + n_per_kind)]


def real_split(name: str) -> str:
    """'test' for a third of the real labelled pages (by a hash of the page name), else 'tune'."""
    return "test" if zlib.crc32(name.encode()) % 3 == 0 else "tune"


def real_pages():
    """The labelled real pages of tests/test_classify.py (needs ../shared/eval), with their split."""
    path = Path(__file__).resolve().parents[1] / "tests" / "test_classify.py"
    spec = importlib.util.spec_from_file_location("_router_labels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not mod.EVAL.is_dir():
        return []
    return [(real_split(n), n, load, label, also) for n, load, label, also in mod.labelled_pages(full=True)]




def route_all(items) -> list[tuple[str, str, set, str, float]]:
    """Route every (name, loader, label, also) item: (name, label, also, route, seconds in the classifier)."""
    from pipeline.classify import classify_page

    out = []
    for name, load, label, also in items:
        img = load()
        t = time.perf_counter()
        route = classify_page(img).route
        out.append((name, label, also, route, time.perf_counter() - t))
    return out


def summarise(routed) -> dict:
    """Lenient accuracy (a route in `also` counts), per class hits/pages, confusion (label x route), misses."""
    conf, per, misses = {}, {}, []
    for name, label, also, route, _ in routed:
        conf.setdefault(label, {}).setdefault(route, 0)
        conf[label][route] += 1
        ok = route == label or route in also
        per.setdefault(label, [0, 0])
        per[label] = [per[label][0] + ok, per[label][1] + 1]
        misses += [] if ok else [f"{name}: {label} -> {route}"]
    n = len(routed)
    return {"pages": n, "accuracy": sum(a for a, _ in per.values()) / max(n, 1), "per_class": per, "confusion": conf,
            "misses": misses, "ms_per_page": 1000 * sum(r[4] for r in routed) / max(n, 1)}


def print_summary(title: str, res: dict) -> None:
    from pipeline.types import ROUTES

    print(f"\n== {title}: {res['accuracy']:.1%} of {res['pages']} pages, classifier {res['ms_per_page']:.0f} ms/page")
    print("per class: " + ", ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(res["per_class"].items())))
    print("expected \\ routed" + " " * 2 + "".join(f"{r[:11]:>12}" for r in ROUTES))
    for label in ROUTES:
        if label in res["confusion"]:
            print(f"{label:<18}" + "".join(f"{res['confusion'][label].get(r, 0):>12}" for r in ROUTES))
    for m in res["misses"]:
        print("  miss", m)


def _logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, lam: float) -> np.ndarray:
    """L2-regularised logistic regression (Newton steps on standardised features): [bias, coefficients...]."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z = np.c_[np.ones(len(x)), (x - mu) / sd]
    b, reg = np.zeros(z.shape[1]), lam * np.diag(np.r_[0.0, np.ones(z.shape[1] - 1)])
    for _ in range(50):
        p = 1 / (1 + np.exp(-z @ b))
        b -= np.linalg.solve((z * (w * p * (1 - p))[:, None]).T @ z + reg, z.T @ (w * (p - y)) + reg @ b)
    coef = b[1:] / sd
    return np.r_[b[0] - (coef * mu).sum(), coef]


def fit_handwriting(n_per_kind: int = 80, real_weight: float = 5.0, lam: float = 0.3) -> dict[str, float]:
    """Refit classify.HW_* on the tuning part only: pages labelled horizontal or handwriting (generated
    typed letters, text pages and handwriting, seeds 0..n-1, plus the real "tune" pages, weighted
    `real_weight`) that reach the handwriting rule; prints and returns the new constants."""
    from pipeline import classify

    items = [it[1:] for it in real_pages() if it[0] == "tune"]
    items += [it for it in labelled_items(n_per_kind, 0) if it[0].split("/")[1] in ("handwriting", "typed_letter", "horizontal")]
    names = ("axis_energy", "line_sharpness", "height_peak", "shape_repeat")
    x, y, w = [], [], []
    for name, load, label, _ in items:
        f = classify.page_features(load())
        # pages that pass the photo/blank/vertical/table rules end as handwriting or horizontal
        if label in ("horizontal", "handwriting") and classify.decide(f) in ("horizontal", "handwriting"):
            x.append([f[k] for k in names])
            y.append(label == "handwriting")
            w.append(real_weight if not name.startswith("gen/") else 1.0)
    b = _logistic(np.array(x), np.array(y, float), np.array(w), lam)
    out = dict(zip(("HW_BIAS", "HW_AXIS", "HW_SHARP", "HW_PEAK", "HW_REPEAT"), (round(float(v), 2) for v in b)))
    print(f"{len(y)} pages reach the handwriting rule ({int(sum(y))} handwriting):", out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Router accuracy on the tuning and held-out parts (no Ray needed).")
    ap.add_argument("--report", action="store_true", help="print accuracy, per class and confusion for both parts")
    ap.add_argument("--n-tune", type=int, default=20, help="generated tuning pages per kind")
    ap.add_argument("--n-test", type=int, default=10, help="generated held-out pages per kind")
    ap.add_argument("--save", help="only write held-out generated pages as PNGs to this folder")
    ap.add_argument("--fit", action="store_true", help="only refit the handwriting score on the tuning part")
    args = ap.parse_args(argv)
    if args.fit:
        fit_handwriting()
        return 0
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for k in KINDS:
            for s in range(TEST_SEED0, TEST_SEED0 + args.n_test):
                generate(k, s).save(Path(args.save) / f"{k}_{s}.png")
        return 0
    real = real_pages()
    for part, n, s0 in (("tuning", args.n_tune, 0), ("held-out", args.n_test, TEST_SEED0)):
        r = route_all([it[1:] for it in real if it[0] == ("tune" if part == "tuning" else "test")])
        g = route_all(labelled_items(n, s0))
        for title, rows in (("real pages", r), ("generated pages", g), ("all", r + g)):
            print_summary(f"{part} part, {title}", summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
