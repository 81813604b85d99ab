"""The bench's arithmetic and its synthetic pages (the bench itself is a command, never a timed test)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.bench import mixture_bound, spread, synthetic_pages
from pipeline.classify import classify_page
from tests.conftest import needs_vllm, tiny_vlm_config


def test_mixture_bound_is_the_two_pure_modes_one_after_the_other():
    # 300 VLM pages at 400/min and 700 PaddleOCR pages at 1,000/min take 0.75 + 0.7 minutes
    assert mixture_bound(0.3, 400, 1000) == pytest.approx(1000 / 1.45, abs=0.01)
    assert mixture_bound(0.0, 400, 1000) == 1000 and mixture_bound(1.0, 400, 1000) == 400


@pytest.mark.parametrize("n, share", [(10, 0.3), (400, 0.3), (7, 0.0), (5, 1.0)])
def test_spread_takes_its_share_evenly(n, share):
    picked = spread(n, share)
    assert sum(picked) == int(n * share)
    if 0 < share < 1:
        gaps = np.diff(np.flatnonzero(picked))
        assert gaps.max() - gaps.min() <= 1


def test_synthetic_pages_are_distinct_and_routed_as_meant(tmp_path):
    paths = synthetic_pages(6, tmp_path, 100, vertical_share=1 / 3, degraded_share=0.5)
    assert len({open(p, "rb").read() for p in paths}) == 6
    kinds = [("v" if p.endswith("_v.png") else "d" if p.endswith("_d.png") else "h") for p in paths]
    assert kinds.count("v") == 2 and kinds.count("d") >= 1
    for p, kind in zip(paths, kinds):
        route = classify_page(np.asarray(Image.open(p).convert("RGB"))).route
        assert route == ("vertical" if kind == "v" else "horizontal"), (p, route)


def test_vertical_synthetic_pages_stay_distinct_past_the_glyph_cycle(tmp_path):
    # pages i and i + 64 were the same image (the glyph offset cycled): a content-keyed run read 64 of 600
    from pipeline.bench import synthetic_page

    first = synthetic_page(1, tmp_path, 30, vertical=True)
    again = synthetic_page(65, tmp_path, 30, vertical=True)
    assert open(first, "rb").read() != open(again, "rb").read()


@needs_vllm
def test_raw_vllm_baseline_gives_each_page_the_budget_the_job_gives_it(tmp_path, tiny_vlm_dir):
    # raw vLLM is the vlm mode's baseline: with max_tokens_spread the job decodes 400-800 tokens a
    # page, and a raw run that decoded 800 for every page did a third more work (seen on the H200)
    from actors.vlm import page_max_tokens
    from pipeline.bench import raw_vllm
    from pipeline.config import RunConfig
    from pipeline.discover import expand_document

    files = synthetic_pages(3, tmp_path, 60)
    pages = [p for f in files for p in expand_document({"source": f})]
    config = RunConfig(mode="vlm", vlm=tiny_vlm_config(tiny_vlm_dir, max_tokens=24, max_tokens_spread=0.9, ignore_eos=True,
                                                       max_retries=0, repeat_max_pattern_tokens=0))
    budgets = [page_max_tokens(config.vlm, f"{p['doc_id']}:{p['page_index']}") for p in pages]
    assert len(set(budgets)) > 1  # the spread gives these pages different budgets
    result = raw_vllm(pages, config)
    assert result["pages"] == 3 and result["output_tokens"] == sum(budgets), (result, budgets)
