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
Seeds >= TEST_SEED0 are held out and also draw on fonts (page_gen_base.HELDOUT_FONTS) that tuning seeds never use: the
first held-out part (TEST_SEED0 .. FRESH_SEED0-1, looked at while the router was tuned, so its pages are kept
exactly as they were), the fresh held-out part (seeds FRESH_SEED0 .. FRESH2_SEED0-1, measured once after the
first model, then looked at) and the second fresh part (seeds >= FRESH2_SEED0, pages drawn like the fresh
part's, measured once: issue 14). Tuning and both fresh parts' seeds also draw the later
variations (`varied`: 150/240 DPI, office type and long address blocks, neat or letter-by-letter hands,
pen widths, letterheads, short borderless tables). `python -m pipeline.page_gen --report` prints router
accuracy and confusion per part (real labelled pages split by `real_split` join the tuning and first held-out
parts); `--fit` refits the router's model
(pipeline/classify_lines.py) on the tuning part only.
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

from pipeline.page_gen_base import _rnd
from pipeline.page_gen_kinds import GENERATORS

KINDS = {"typed_letter": "horizontal", "form": "table", "handwriting": "handwriting", "photo_of_page": "photo",
         "horizontal": "horizontal", "table": "table", "vertical": "vertical", "blank": "blank"}
ALSO_OK = {"form": {"horizontal"}}  # a form read as plain text still goes to PaddleOCR
TEST_SEED0 = 1_000_000  # seeds from here on: held-out part (the first one, looked at while tuning)
FRESH_SEED0 = 2_000_000  # seeds from here on: the fresh held-out part, measured once after the tuning
FRESH2_SEED0 = 3_000_000  # seeds from here on: the second fresh part (issue 14), measured once
FRESH3_SEED0 = 4_000_000  # the third fresh part: first measured with the closed-ink features (2026-12-05), once
DPI_CHOICES = (1.0, 1.0, 1.0, 0.81, 1.3)  # varied pages: 185 DPI, or 150 / 240


def varied(seed: int) -> bool:
    """Tuning and both fresh parts' seeds draw the later variations (page_gen_kinds' `v`, other DPIs); the first
    held-out part (TEST_SEED0 .. FRESH_SEED0-1) does not, so its pages stay the ones measured before."""
    return not TEST_SEED0 <= seed < FRESH_SEED0


def generate(kind: str, seed: int, dpi: int = 185) -> Image.Image:
    """Page `seed` of `kind` (a key of KINDS); seeds >= TEST_SEED0 belong to the held-out parts (held-out fonts)."""
    v = _rnd(kind + ":v", seed) if varied(seed) else None
    if v is not None:
        dpi = round(dpi * _rnd(kind + ":dpi", seed).choice(DPI_CHOICES))
    return GENERATORS[kind](_rnd(kind, seed), dpi, seed >= TEST_SEED0, v)


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


def _softmax_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, k: int, lam: float, iters: int = 3000):
    """L2-regularised multinomial logistic regression (full-batch gradient descent with momentum on
    standardised features): (weights d x k, biases k) on the raw features."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    z, onehot = (x - mu) / sd, np.eye(k)[y]
    wt, b, vw, vb = np.zeros((z.shape[1], k)), np.zeros(k), np.zeros((z.shape[1], k)), np.zeros(k)
    for _ in range(iters):
        s = z @ wt + b
        p = np.exp(s - s.max(1, keepdims=True))
        g = (p / p.sum(1, keepdims=True) - onehot) * (w / w.sum())[:, None]
        vw, vb = 0.9 * vw - 0.5 * (z.T @ g + lam * wt), 0.9 * vb - 0.5 * g.sum(0)
        wt, b = wt + vw, b + vb
    return wt / sd[:, None], b - mu @ (wt / sd[:, None])


FIT_WEIGHTS = {"real": 6.0, "form": 0.5, "handwriting": 1.5}  # per page: real ones, forms (text is fine), handwriting


def router_training_rows(n_per_kind: int = 80):
    """(name, features, label) of the tuning part: real "tune" pages plus generated seeds 0..n-1."""
    from pipeline.classify import page_features

    items = [it[1:] for it in real_pages() if it[0] == "tune"] + labelled_items(n_per_kind, 0)
    return [(name, page_features(load()), label) for name, load, label, _ in items]


def fit_router(rows, lam: float = 0.01):
    """Fit classify_lines.MODEL_W/MODEL_B on `rows` (router_training_rows): the pages that reach the model
    (past the photo, blank and vertical rules) with a label among MODEL_CLASSES."""
    from pipeline import classify, classify_lines as cl

    x, y, w = [], [], []
    for name, f, label in rows:
        if label in cl.MODEL_CLASSES and classify.rule_route(f) is None:
            kind = name.split("/")[1] if name.startswith("gen/") else "real"
            x.append(cl.model_vector(f))
            y.append(cl.MODEL_CLASSES.index(label))
            w.append(FIT_WEIGHTS.get(kind, 1.0) * FIT_WEIGHTS.get(label, 1.0))
    return _softmax_fit(np.array(x), np.array(y), np.array(w), len(cl.MODEL_CLASSES), lam)


def print_model(wt: np.ndarray, b: np.ndarray) -> None:
    from pipeline import classify_lines as cl

    print("MODEL_W = (  # " + ", ".join(cl.MODEL_CLASSES))
    for k, row in zip(cl.MODEL_FEATURES, wt):
        print("    (" + ", ".join(f"{v:.4g}" for v in row) + f"),  # {k}")
    print(")\nMODEL_B = (" + ", ".join(f"{v:.4g}" for v in b) + ")")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Router accuracy on the tuning and held-out parts (no Ray needed).")
    ap.add_argument("--report", action="store_true", help="print accuracy, per class and confusion for each part")
    ap.add_argument("--n-tune", type=int, default=20, help="generated tuning pages per kind")
    ap.add_argument("--n-test", type=int, default=10, help="generated held-out pages per kind")
    ap.add_argument("--n-fresh", type=int, default=10, help="generated pages per kind of the fresh held-out part")
    ap.add_argument("--n-fresh2", type=int, default=10, help="generated pages per kind of the second fresh part")
    ap.add_argument("--n-fresh3", type=int, default=10, help="generated pages per kind of the third fresh part")
    ap.add_argument("--parts", default="tune,test,fresh", help="which parts to report: tune, test, fresh, fresh2, fresh3")
    ap.add_argument("--save", help="only write held-out generated pages as PNGs to this folder")
    ap.add_argument("--fit", action="store_true", help="only refit the router's model on the tuning part (80 pages per kind)")
    args = ap.parse_args(argv)
    if args.fit:
        print_model(*fit_router(router_training_rows()))
        return 0
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        for k in KINDS:
            for s in range(TEST_SEED0, TEST_SEED0 + args.n_test):
                generate(k, s).save(Path(args.save) / f"{k}_{s}.png")
        return 0
    real = real_pages()
    parts = {"tune": ("tuning", args.n_tune, 0, "tune"), "test": ("held-out", args.n_test, TEST_SEED0, "test"),
             "fresh": ("fresh held-out", args.n_fresh, FRESH_SEED0, None),
             "fresh2": ("second fresh held-out", args.n_fresh2, FRESH2_SEED0, None),
             "fresh3": ("third fresh held-out", args.n_fresh3, FRESH3_SEED0, None)}  # real pages: their real_split part
    for key in args.parts.split(","):
        part, n, s0, real_part = parts[key]
        r = route_all([it[1:] for it in real if it[0] == real_part])
        g = route_all(labelled_items(n, s0))
        for title, rows in (("real pages", r), ("generated pages", g), ("all", r + g)):
            if rows:
                print_summary(f"{part} part, {title}", summarise(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
