"""Character error rate (CER) and an order-free CER floor, for any script (Chinese included).

`cer` is the Levenshtein distance between hypothesis and reference characters divided by the
reference length. `order_free_cer` compares the two texts as multisets of characters, so it is
a lower bound on `cer` that ignores reading order: the gap between the two is error caused by
reading order alone (columns interleaved, vertical columns read the wrong way).

`plain_text` turns the markup that references and some engines write (HTML and Markdown tables,
LaTeX math) into the characters a reader sees, so that a table or formula is scored by its text
whether it was written as markup or read as plain lines (evaluate applies it to both sides).

Uses rapidfuzz's C Levenshtein when installed, else a numpy row-by-row fallback.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter

try:  # fast C implementation
    from rapidfuzz.distance import Levenshtein as _rf_lev
except ImportError:  # pragma: no cover - exercised only without rapidfuzz
    _rf_lev = None

import numpy as np

_WS = re.compile(r"\s+")
# Characters NFKC leaves alone but that mean the same thing in OCR output.
_EXTRA = str.maketrans({"\u3000": " ", "\u00a0": " ", "\ufeff": "", "\u200b": ""})


# ----------------------------------------------------------------------------- markup -> plain text

_TAG = re.compile(r"</?(?:table|thead|tbody|tfoot|tr|td|th|caption|colgroup|col|br|p|div|span|sup|sub|b|i|u|em|strong)\b[^<>]*/?>",
                  re.I)
_ROW_END = re.compile(r"</tr\s*>|<br\s*/?>|</?(?:table|thead|tbody|tfoot|caption|p|div)\b[^<>]*>", re.I)
_CELL_END = re.compile(r"</t[dh]\s*>", re.I)
_HTML_TABLE = re.compile(r"<table\b[^<>]*>(?:(?!</?table\b).)*?</t[dhr]\s*>.*?</table\s*>", re.I | re.S)  # with cells
_MD_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_MATH = re.compile(r"\$\$(.+?)\$\$|\\\[(.+?)\\\]|\\\((.+?)\\\)|(?<![\\$])\$(?!\$)([^$\n]{1,400}?)(?<!\\)\$", re.S)
_LATEXY = re.compile(r"\\[A-Za-z]+|[\\^_{}]")  # an inline $...$ is math only with LaTeX in it ($5 and $10 is prose)
# LaTeX commands as the characters they print (the symbols MinerU-style references and VLMs write)
_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "zeta": "ζ", "eta": "η",
    "theta": "θ", "vartheta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π",
    "rho": "ρ", "varrho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "times": "×", "div": "÷", "pm": "±", "mp": "∓", "cdot": "·", "circ": "°",
    "degree": "°", "leq": "≤", "le": "≤", "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "~",
    "simeq": "≃", "equiv": "≡", "propto": "∝", "infty": "∞", "partial": "∂", "nabla": "∇", "sum": "∑", "prod": "∏",
    "int": "∫", "sqrt": "√", "rightarrow": "→", "to": "→", "leftarrow": "←", "Rightarrow": "⇒", "Leftarrow": "⇐",
    "leftrightarrow": "↔", "uparrow": "↑", "downarrow": "↓", "triangle": "△", "angle": "∠", "perp": "⊥",
    "parallel": "∥", "in": "∈", "notin": "∉", "subset": "⊂", "supset": "⊃", "cup": "∪", "cap": "∩", "forall": "∀",
    "exists": "∃", "ldots": "…", "cdots": "⋯", "dots": "…", "prime": "′", "AA": "Å", "lfloor": "⌊", "rfloor": "⌋",
    "lceil": "⌈", "rceil": "⌉", "langle": "⟨", "rangle": "⟩", "star": "*", "ast": "*", "bullet": "•", "mid": "|",
    "vert": "|", "Vert": "‖", "backslash": "\\", "quad": " ", "qquad": " ", "%": "%", "&": "&", "#": "#", "_": "_",
    "$": "$", "{": "{", "}": "}", ",": " ", ";": " ", ":": " ", "!": "", " ": " ", "|": "‖",
}
_CMD = re.compile(r"\\([A-Za-z]+|.)")


def _group(s: str, i: int) -> tuple[str, int] | None:
    """The balanced {...} group starting at s[i] (spaces before it skipped): its content and the index after it."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s) or s[i] != "{":
        return None
    depth = 0
    for j in range(i, len(s)):
        depth += {"{": 1, "}": -1}.get(s[j], 0)
        if depth == 0:
            return s[i + 1:j], j + 1
    return None


def _fracs(s: str) -> str:
    """\\frac{a}{b} (and \\dfrac, \\tfrac; nested) -> a/b."""
    out, i = [], 0
    while True:
        m = re.compile(r"\\[dt]?frac\b").search(s, i)
        if not m:
            return "".join(out) + s[i:]
        a = _group(s, m.end())
        b = a and _group(s, a[1])
        if not b:
            out.append(s[i:m.end()])
            i = m.end()
            continue
        out.append(s[i:m.start()] + _fracs(a[0]) + "/" + _fracs(b[0]))
        i = b[1]


def _latex_text(src: str) -> str:
    """A LaTeX formula as the characters it prints: commands by their symbols (\\alpha -> α, ^{\\circ} -> °),
    font and text commands and sub/superscripts by their content (\\mathrm{TiO}_{2} -> TiO2), \\frac{a}{b} -> a/b,
    sizing commands (\\left, \\right) and braces dropped."""
    s = _fracs(src)
    s = re.sub(r"\\(?:left|right|big|Big|bigg|Bigg)\b\s*\\?", "", s)
    s = re.sub(r"\\(?:begin|end)\s*\{[^{}]*\}", " ", s)
    s = s.replace("~", " ").replace("&", " ").replace("\\\\", " ")

    def cmd(m: re.Match) -> str:
        name = m.group(1)
        return _SYMBOLS.get(name, "" if name.isalpha() else name)  # \mathrm, \text, \bar...: their argument stays

    s = _CMD.sub(cmd, s)
    s = re.sub(r"[_^]", "", s)
    return s.replace("{", "").replace("}", "")


def plain_text(text: str) -> str:
    """Text with its markup rendered as plain characters, for scoring an engine that writes markup against
    one that reads lines (and a reference written either way):
    - HTML tables (<table> ... </table> with cells; <br>, <sup>, ... inside them): one line per row, cells
      TAB-separated, entities decoded (tags outside tables, "<table name>" in prose, stay);
    - Markdown tables (a `| a | b |` row over a `| --- | --- |` rule, then rows): rule dropped, cells
      TAB-separated (|x| in a formula stays);
    - LaTeX math ($...$ with LaTeX in it, $$...$$, \\(...\\), \\[...\\]) as the characters it prints, and \\%
      (a LaTeX percent sign left in table cells) as %.
    Text without markup comes back unchanged."""
    if not text:
        return text or ""
    if "<" in text and _HTML_TABLE.search(text):
        def table(m: re.Match) -> str:
            t = _CELL_END.sub("\t", m.group(0))
            return html.unescape(_TAG.sub("", _ROW_END.sub("\n", t)))

        text = _HTML_TABLE.sub(table, text)
    if "|" in text and "-|" in text.replace(" ", "").replace(":", ""):
        lines, out, k = text.split("\n"), [], 0

        def piped(ln: str) -> bool:
            return ln.strip().startswith("|") and ln.strip().endswith("|") and len(ln.strip()) > 1

        while k < len(lines):  # a table: a | row |, its | --- | rule, then | rows |
            if piped(lines[k]) and k + 1 < len(lines) and "|" in lines[k + 1] and _MD_RULE.match(lines[k + 1].strip()):
                out.append("\t".join(c.strip() for c in lines[k].strip()[1:-1].split("|")))
                k += 2
                while k < len(lines) and piped(lines[k]):
                    out.append("\t".join(c.strip() for c in lines[k].strip()[1:-1].split("|")))
                    k += 1
                continue
            out.append(lines[k])
            k += 1
        text = "\n".join(out)
    if "$" in text or "\\(" in text or "\\[" in text:
        def math(m: re.Match) -> str:
            body = next(g for g in m.groups() if g is not None)
            if m.group(4) is not None and not _LATEXY.search(body):
                return m.group(0)
            return _latex_text(body)

        text = _MATH.sub(math, text)
    return text.replace("\\%", "%")


def normalize(text: str) -> str:
    """NFKC (full-width ASCII -> ASCII, vertical presentation forms -> normal punctuation,
    compatibility ideographs -> unified), then every whitespace run -> one space / newline.

    Runs of whitespace that contain a newline become a single "\\n", others a single " ";
    leading/trailing whitespace is stripped on every line.
    """
    text = unicodedata.normalize("NFKC", text or "").translate(_EXTRA)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_WS.sub(" ", ln).strip() for ln in text.split("\n")]
    return "\n".join(ln for ln in lines if ln)


def _prep(text: str, ignore_whitespace: bool) -> str:
    text = normalize(text)
    if ignore_whitespace:
        return _WS.sub("", text)
    return text.replace("\n", " ")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (unit costs) between two strings, per Unicode code point."""
    if _rf_lev is not None:
        return int(_rf_lev.distance(a, b))
    return _edit_distance_np(a, b)


def _edit_distance_np(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    prev = np.arange(len(b) + 1, dtype=np.int64)
    for i, ch in enumerate(a, 1):
        sub = prev[:-1] + (bb != ord(ch))
        cur = np.empty_like(prev)
        cur[0] = i
        cur[1:] = np.minimum(sub, prev[1:] + 1)
        # insertion term cur[j-1] + 1 is sequential: resolve with a running minimum
        # cur[j] = min_k<=j (cur0[k] + (j - k))  ==  min.accumulate(cur0 - idx) + idx
        idx = np.arange(len(cur))
        cur = np.minimum.accumulate(cur - idx) + idx
        prev = cur
    return int(prev[-1])


def cer(hypothesis: str, reference: str, *, ignore_whitespace: bool = False) -> float:
    """Character error rate: edit_distance(hyp, ref) / len(ref) after `normalize`.

    Line breaks count as spaces (ignore_whitespace=False) or are dropped with all other
    whitespace (ignore_whitespace=True, the fair choice for Chinese). An empty reference gives
    0.0 when the hypothesis is empty too, else 1.0. Values can exceed 1.0 (long hypothesis).
    """
    hyp = _prep(hypothesis, ignore_whitespace)
    ref = _prep(reference, ignore_whitespace)
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(hyp, ref) / len(ref)


def order_free_cer(hyp: str, ref: str, *, ignore_whitespace: bool = True) -> float:
    """Bag-of-characters error: max(missing, extra) characters / len(ref).

    `missing` = reference characters absent from the hypothesis (multiset difference), `extra`
    the reverse; max(...) is what the edit distance would be if order were free (each
    substitution counts once). A lower bound on `cer` with the same settings. Whitespace is
    ignored by default because line breaks depend on layout.
    """
    h = _prep(hyp, ignore_whitespace)
    r = _prep(ref, ignore_whitespace)
    if not r:
        return 0.0 if not h else 1.0
    ch, cr = Counter(h), Counter(r)
    missing = sum((cr - ch).values())
    extra = sum((ch - cr).values())
    return max(missing, extra) / len(r)
