import pytest

from pipeline import metrics
from pipeline.metrics import cer, edit_distance, normalize, order_free_cer, plain_text


def test_identical_is_zero():
    assert cer("hello world", "hello world") == 0.0
    assert order_free_cer("hello world", "hello world") == 0.0


def test_one_substitution_in_ten():
    assert cer("abcdefghiX", "abcdefghij") == pytest.approx(0.1)


def test_insertion_and_deletion():
    assert cer("abcd", "abc") == pytest.approx(1 / 3)  # one insertion
    assert cer("ab", "abcd") == pytest.approx(0.5)  # two deletions
    assert cer("xxxxxxxx", "ab") == pytest.approx(4.0)  # can exceed 1


def test_chinese_per_character():
    ref = "学而时习之不亦说乎"  # 9 characters
    assert cer("学而时习之不亦悦乎", ref) == pytest.approx(1 / 9)
    assert cer("", ref) == 1.0


def test_whitespace_insensitive():
    ref = "子曰 学而时习之\n不亦说乎"
    hyp = "子曰学而时习之不亦说乎"
    assert cer(hyp, ref) > 0
    assert cer(hyp, ref, ignore_whitespace=True) == 0.0
    # line breaks count as single spaces when whitespace matters
    assert cer("a b\n\nc", "a  b c") == 0.0


def test_empty_reference():
    assert cer("", "") == 0.0
    assert cer("   \n", "") == 0.0
    assert cer("abc", "") == 1.0
    assert order_free_cer("", "") == 0.0
    assert order_free_cer("x", "") == 1.0


def test_normalize_nfkc_and_vertical_forms():
    # full-width ASCII, ideographic space, vertical presentation forms (U+FE10..) -> normal forms
    assert normalize("ＡＢＣ　１２３") == "ABC 123"
    assert normalize("\ufe10\ufe12\ufe41\ufe42") == normalize("，。「」")
    assert normalize("  a \t b \r\n\n c  ") == "a b\nc"


def test_order_free_is_floor_of_order():
    ref = "abcdefghij"
    hyp = "fghijabcde"  # right characters, wrong order
    assert order_free_cer(hyp, ref) == 0.0
    assert cer(hyp, ref) > 0.5
    # substitutions count once (max of missing / extra), so the floor never exceeds CER
    assert order_free_cer("abcdefghiX", ref) == pytest.approx(0.1)
    assert order_free_cer("abc", ref) == pytest.approx(0.7)


def test_numpy_fallback_matches(monkeypatch):
    pairs = [("", ""), ("abc", ""), ("kitten", "sitting"), ("学而时习之", "学時習之乎"), ("flaw", "lawn")]
    expect = [0, 3, 3, 4, 2]  # 学而时习之 -> 学時習之乎: delete 而, 2 subs, insert 乎
    monkeypatch.setattr(metrics, "_rf_lev", None)
    assert [edit_distance(a, b) for a, b in pairs] == expect
    assert [metrics._edit_distance_np(b, a) for a, b in pairs] == expect


# scoring of markup: evaluate.score_item renders references and output as plain text before CER
# (MinerU-style references carry LaTeX and HTML tables that a line-reading engine never writes)


def test_plain_text_renders_latex_and_tables():
    assert plain_text(r"matrix of $\mathrm{Al}-4 \mathrm{Cu}$ with $\mathrm{TiO}_{2}$, $2 \mathrm{wt} \%$") == \
        "matrix of Al-4 Cu with TiO2, 2 wt %"
    assert plain_text(r"$\alpha=90^{\circ}$ and $\beta \leq 60^{\circ}$, $\triangle A B D$") == "α=90° and β ≤ 60°, △ A B D"
    assert plain_text("$$\n\\frac{1}{\\left|z-z_{1}\\right|^{2}} \\leq \\frac{9}{4}\n$$").split() == ["1/|z-z1|2", "≤", "9/4"]
    assert plain_text(r"绝对涨幅(\%)	7.18") == "绝对涨幅(%)	7.18"
    for prose in ("costs $5 and $10 today", "Over the $43,456.78 <lazy> #90 dog", "<45 μm | 99.9", "a_b c^d",
                  "ON <table name> AS <correlation name>", "|K| = | ln DV(a, z) |\n| x |"):
        assert plain_text(prose) == prose  # no markup: unchanged
    html = "<table><thead><tr><th>a &amp; b</th><th>2</th></tr></thead><tr><td>1</td><td>x<br>y</td></tr></table>"
    assert [ln.split("\t")[:2] for ln in plain_text(html).split("\n") if ln.strip()] == [["a & b", "2"], ["1", "x"], ["y", ""]]
    assert plain_text("| a | b |\n| :--- | ---: |\n| 1 | 2 |") == "a\tb\n1\t2"
