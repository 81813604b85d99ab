"""`hybridocr eval`: hand-checked metric cases, then a small end-to-end run through the real Ray job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config import RunConfig
from pipeline.evaluate import (
    EvalItem,
    evaluate,
    score_item,
    summarize,
    write_eval_report,
)
from pipeline.olmo_checks import near_match_starts, run_test
from pipeline.tables import lines_to_table, parse_html_tables, teds
from tests.conftest import scene_photo

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"

SPANNED = ('<table><thead><tr><th rowspan="2">Drug</th><th colspan="2">Dose</th></tr>'
           "<tr><th>low</th><th>high</th></tr></thead>"
           "<tbody><tr><td>A</td><td>1</td><td>2</td></tr><tr><td>B</td><td>3</td><td>4</td></tr></tbody></table>")


def _row(text, page=0, route="horizontal", lines=None):
    return {"text": text, "page_index": page, "route": route, "error": None, "lines": lines or []}


def test_cer_known_values():
    item = EvalItem("s", "a", "c", "horizontal", [], text="Hello world\n")
    s = score_item(item, [_row("Hallo  world")])
    assert s["cer"] == pytest.approx(1 / 11, abs=1e-4)  # one substitution in 11 characters
    assert s["cer_no_ws"] == pytest.approx(1 / 10, abs=1e-4)  # whitespace dropped: 1 of 10
    zh = score_item(EvalItem("s", "b", "c", "vertical", [], text="天地玄黄\n宇宙洪荒"), [_row("天地玄黃 宇宙洪")])
    assert zh["cer_no_ws"] == pytest.approx(2 / 8)  # 黃 for 黄 (not unified by NFKC) + one missing character
    # document-level truth: two pages joined in order
    doc = score_item(EvalItem("s", "d", "c", "horizontal", [], text="one two"), [_row("one", 0), _row("two", 1)])
    assert doc["cer"] == 0.0 and doc["pages"] == 2


@pytest.mark.parametrize("test, passing, failing", [
    ({"type": "present", "text": "Master Bath", "case_sensitive": False}, "the master bath is here", "the mister bathroom"),
    ({"type": "present", "text": "corporate social responsibility", "max_diffs": 2}, "corporate sociel responsibilty!", "corporate soc resp"),
    ({"type": "absent", "text": "1", "last_n": 20}, "page 1 of the text and then a long tail", "a long body text ends with page 1"),
    ({"type": "absent", "text": "Volume 8 | Issue 3"}, "body text only", "header Volume 8 | Issue 3 body"),
    ({"type": "order", "before": "Euler's Identity", "after": "Pythagorean Theorem"},
     "Euler’s Identity ... Pythagorean Theorem", "Pythagorean Theorem ... Euler's Identity"),
    ({"type": "order", "before": "first sentence here", "after": "second one here", "max_diffs": 2},
     "frist sentence here; second one hear", "second one here; first sentence here"),
    ({"type": "baseline", "max_length": 10}, "  12 \n", "Some words on a page that should be blank"),
    ({"type": "baseline"}, "ordinary text", "ab" + "la" * 40),
    ({"type": "math", "math": "a^{2}+b^{2}=c^{2}"}, "so $a^{2} + b^{2} = c^{2}$ holds", "so a2 + b2 = c2 holds"),
])
def test_olmocr_tests_pass_and_fail(test, passing, failing):
    test = {"pdf": "x.pdf", "page": 1, "id": "t", **test}
    assert run_test(test, passing)[0] is True
    assert run_test(test, failing)[0] is False


def test_olmocr_table_test_with_spans():
    tables = parse_html_tables(SPANNED)
    base = {"pdf": "x.pdf", "page": 1, "id": "t", "type": "table"}
    assert run_test({**base, "cell": "3", "left": "B", "up": "1", "right": "4"}, "", tables)[0]
    assert run_test({**base, "cell": "4", "top_heading": "Dose"}, "", tables)[0]  # colspan header over both columns
    assert run_test({**base, "cell": "high", "left_heading": "Drug"}, "", tables)[0]  # rowspan reaches row 2
    assert not run_test({**base, "cell": "3", "right": "2"}, "", tables)[0]
    assert not run_test({**base, "cell": "4", "top_heading": "Drug"}, "", tables)[0]
    assert not run_test({**base, "cell": "3"}, "no tables at all", [])[0]
    # a Markdown table in the text is found by the scorer too
    md = "| a | b |\n|---|---|\n| 1 | 2 |"
    item = EvalItem("s", "m", "c", "table", [], tests=[{**base, "cell": "2", "left": "1", "top_heading": "b"}])
    assert score_item(item, [_row(md)])["tests"][0]["passed"]


def test_near_matches():
    assert near_match_starts("abc", "xxabcxabc", 0) == [2, 6]
    assert 0 in near_match_starts("abcdef", "abcXdef tail", 1)
    assert near_match_starts("abcdef", "zzzzzz", 1) == []


def test_teds_spans_known_values():
    grid = parse_html_tables(SPANNED)[0].grid()
    assert [[c.text for c in row] for row in grid] == [["Drug", "Dose", "Dose"], ["Drug", "low", "high"],
                                                       ["A", "1", "2"], ["B", "3", "4"]]
    assert teds(SPANNED, SPANNED) == 1.0
    # tree: table + 4 tr + 10 td = 15 nodes; one cell's text fully wrong costs 1 -> 14/15
    assert teds(SPANNED.replace("<td>4</td>", "<td>9</td>"), SPANNED) == pytest.approx(14 / 15)
    # lose the colspan: "Dose" no longer spans (rename cost 1) and row 1 keeps 2 cells -> 14/15
    assert teds(SPANNED.replace(' colspan="2"', ""), SPANNED) == pytest.approx(14 / 15)
    # a dropped row: 3 td + 1 tr deleted -> 1 - 4/15
    assert teds(SPANNED.replace("<tr><td>B</td><td>3</td><td>4</td></tr>", ""), SPANNED) == pytest.approx(11 / 15)
    assert teds(SPANNED.replace("<td>4</td>", "<td>9</td>"), SPANNED, structure_only=True) == 1.0
    assert teds(None, SPANNED) == 0.0


def test_lines_to_table():
    def box(x0, y0, x1, y1):
        return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]

    lines = [{"box": box(0, 0, 200, 10), "text": "Dose by drug"},  # wide title line: colspan 2
             {"box": box(0, 20, 40, 30), "text": "A"}, {"box": box(150, 21, 190, 31), "text": "1"},
             {"box": box(0, 40, 40, 50), "text": "B"}, {"box": box(150, 40, 180, 50), "text": "3"}]
    table = lines_to_table(lines)
    assert table.to_html() == ('<table><tr><td colspan="2">Dose by drug</td></tr><tr><td>A</td><td>1</td></tr>'
                               "<tr><td>B</td><td>3</td></tr></table>")
    assert teds(table, table.to_html()) == 1.0


def test_summary_and_confusion():
    items = [{"set": "s", "id": "1", "class": "c", "expected": "table", "pages": 2, "routes": ["table", "horizontal"],
              "errors": [], "accepted": [], "cer": 0.1, "cer_no_ws": 0.1, "order_free_cer": 0.05,
              "tests": [{"type": "present", "passed": True}, {"type": "table", "passed": False}]},
             {"set": "s", "id": "2", "class": "m", "expected": "mixed", "pages": 1, "routes": ["photo"], "errors": [], "accepted": []}]
    s = summarize(items)
    assert s["confusion"] == {"table": {"table": 1, "horizontal": 1}} and s["route_accuracy"] == 0.5
    assert s["classes"]["c"]["test_pass_rate"] == 0.5 and s["classes"]["c"]["tests_by_type"] == {"present": "1/1", "table": "0/1"}


@pytest.mark.timeout(300)
def test_evaluate_end_to_end(ray_local, tmp_path):
    if not EVAL.is_dir():
        pytest.skip(f"evaluation pages not found at {EVAL}")
    paths = [EVAL / "en_printed_tesseract_test" / "phototest.png", EVAL / "SYNTHETIC_vertical_classical_zh" / "synth_vert_00.jpg",
             EVAL / "table_en_pubtabnet" / "PMC4517499_004_00.png", EVAL / "olmocr_bench_sample" / "earnings.pdf"]
    photos = tmp_path / "SCENE_photos"  # a photo set: ICDAR 2015 word truth beside the image
    photos.mkdir()
    (photos / "street.words.txt").write_text("\n".join(scene_photo(photos / "street.jpg", ["OPEN", "Bakery", "Main Street"])))
    paths.append(photos)
    result = evaluate(paths, tmp_path / "out", RunConfig())
    by_id = {s["id"]: s for s in result["items"]}
    assert set(by_id) == {"phototest", "synth_vert_00", "PMC4517499_004_00", "earnings", "street"}
    words = result["classes"]["SCENE_photos"]["words"]
    assert words["truth_words"] == 4 and words["det_recall"] >= 0.75 and words["e2e_recall"] >= 0.75, words
    assert by_id["phototest"]["cer"] < 0.1 and by_id["phototest"]["routes"] == ["horizontal"]
    assert by_id["synth_vert_00"]["routes"] == ["vertical"] and by_id["synth_vert_00"]["cer_no_ws"] < 0.15  # measured 0.043
    assert 0.0 < by_id["PMC4517499_004_00"]["teds"] <= 1.0
    assert by_id["earnings"]["routes"] == ["text_layer"] and len(by_id["earnings"]["tests"]) == 5
    assert result["classes"]["olmocr_tables"]["route_accuracy"] == 1.0  # a born-digital table PDF may take its text layer
    md = write_eval_report(tmp_path, result)
    assert "| SCENE_photos | paddle | 1 | 4 |" in md
    assert "| tables | table_pubtabnet_crops | paddle | 1 |" in md and "photos" in md
    assert json.loads((tmp_path / "report.json").read_text())["modes"]["paddle"]["items"]


def test_score_item_compares_markup_as_text():
    ref = "Table 1\n<table><tr><td>Al</td><td>$<45 \\mu \\mathrm{m}$</td></tr></table>\nwith $\\mathrm{TiO}_{2}$ particles"
    row = {"text": "Table 1\nAl <45 μm\nwith TiO2 particles", "page_index": 0, "route": "horizontal", "error": None, "lines": []}
    s = score_item(EvalItem("s", "a", "c", "horizontal", [], text=ref), [row])
    assert s["cer_no_ws"] == 0.0 and s["order_free_cer"] == 0.0
