"""Router accuracy on pages it was never tuned on (issue 14).

The held-out part: the third of the real labelled pages (tests/test_classify.py) that
`pipeline.page_gen.real_split` puts in "test", plus generated pages from held-out seeds
(>= TEST_SEED0, which also use fonts tuning pages never see). pipeline/classify.py's thresholds were
set on the other part only. `python -m pipeline.page_gen --report` prints both parts in full.
"""

from __future__ import annotations

import numpy as np
from pipeline import page_gen
from pipeline.page_gen import KINDS, TEST_SEED0, labelled_items, real_pages, real_split, summarise

N_GENERATED = 3  # held-out generated pages per kind (8 kinds): CI on 2 cores stays well under a minute
# Measured floors, NOT the target (held-out >= 0.95 is not reached yet; the full held-out part,
# `python -m pipeline.page_gen --report --n-test 20`, scores 0.937). On this set (45 real + 24 generated)
# the router scores 65/69 = 0.942 lenient; per class horizontal 26/28, table 21/22, handwriting 2/3,
# photo 3/3, vertical 9/9, blank 4/4. The misses: a faint typed letter read as handwriting (VLM: slower,
# same text), a typed letter with a right-hand address block read as a table, one held-out script
# font read as print (PaddleOCR: worse text) and one PubTabNet crop without rules read as text.
# The floors leave about one page of slack per class; raise them as the router improves.
MIN_OVERALL = 0.92
MIN_PER_CLASS = {"horizontal": 0.92, "table": 0.95, "vertical": 1.0, "handwriting": 0.66, "photo": 0.66, "blank": 1.0}


def test_split_is_disjoint_and_deterministic():
    real = real_pages()
    tune = {name for part, name, *_ in real if part == "tune"}
    test = {name for part, name, *_ in real if part == "test"}
    assert not tune & test
    if real:
        assert 0.25 < len(test) / len(tune | test) < 0.45, (len(test), len(tune))
    assert all(real_split(n) == real_split(n) for n in tune | test)
    gen_tune = {n for n, *_ in labelled_items(50, 0)}
    gen_test = {n for n, *_ in labelled_items(50, TEST_SEED0)}
    assert not gen_tune & gen_test
    assert all(int(n.rsplit("/", 1)[1]) < TEST_SEED0 for n in gen_tune)
    # held-out fonts never reach a tuning page
    for fonts in (page_gen.hand_fonts(), page_gen.mono_fonts()):
        assert not [f for f in page_gen._pool(fonts, test=False) if any(h in f for h in page_gen.HELDOUT_FONTS)] or \
            len(page_gen._pool(fonts, test=False)) == len(fonts) == 0
    a, b = page_gen.generate("handwriting", 7, dpi=60), page_gen.generate("handwriting", 7, dpi=60)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_generator_kinds_and_sizes():
    assert set(KINDS.values()) == {"horizontal", "vertical", "table", "photo", "handwriting", "blank"}
    img = page_gen.generate("typed_letter", TEST_SEED0, dpi=185)
    assert img.mode == "RGB" and img.size == (1530, 2163)
    assert page_gen.hand_fonts(), "no handwriting fonts: pip install -e '.[test]' (fontpkg-* script fonts, see page_gen)"


def test_held_out_router_accuracy():
    items = [it[1:] for it in real_pages() if it[0] == "test"] + labelled_items(N_GENERATED, TEST_SEED0)
    res = summarise(page_gen.route_all(items))
    acc = {k: a / n for k, (a, n) in res["per_class"].items()}
    assert res["accuracy"] >= MIN_OVERALL, (res["accuracy"], res["confusion"], res["misses"])
    for label, floor in MIN_PER_CLASS.items():
        assert acc.get(label, 1.0) >= floor, (label, acc, res["misses"])


def test_logistic_fit_recovers_a_separating_direction():
    """The handwriting score's fitter (page_gen.fit_handwriting uses it on the tuning part)."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (400, 2))
    y = (2 * x[:, 0] - x[:, 1] + 0.5 > 0).astype(float)
    b = page_gen._logistic(x, y, np.ones(len(y)), lam=0.1)
    assert b[1] > 0 > b[2] and abs(b[1] / b[2] + 2) < 0.5
    assert np.mean(((x @ b[1:] + b[0]) > 0) == (y > 0)) > 0.97


def test_scan_effects_keep_size_and_ink():
    img = page_gen.generate("horizontal", 5, dpi=120)
    for seed in range(12):  # every kind of _scan at least once
        out = page_gen._scan(page_gen._rnd("scan", seed), img, p=1.0)
        g = np.asarray(out.convert("L"), np.float32)
        assert out.size == img.size and out.mode == "RGB"
        assert np.percentile(g, 1) < 0.75 * np.percentile(g, 90), seed  # the text is still there
