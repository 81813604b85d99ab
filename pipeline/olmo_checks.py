"""olmOCR-bench checks (present, absent, order, table, baseline, math) with the semantics of
olmocr/bench/tests.py: `run_test(test, text, tables)` -> (passed, why)."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
from rapidfuzz import fuzz

_FANCY = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "＿": "_", "–": "-", "—": "-",
                        "‑": "-", "‒": "-", "−": "-", "\u00b5": "\u03bc"})


def olmo_normalize(text: str) -> str:
    """olmOCR-bench's normalize_text: drop <br>, bold/italic markup, collapse whitespace, NFC, ASCII quotes."""
    text = re.sub(r"<br/?>", " ", text or "")
    text = re.sub(r"</?[bi]>", "", text)
    text = re.sub(r"(\*\*|__)(.*?)\1", r"\2", text)
    text = re.sub(r"(\*|_)(.*?)\1", r"\2", text)
    return unicodedata.normalize("NFC", re.sub(r"\s+", " ", text)).translate(_FANCY)


def near_match_starts(pattern: str, text: str, max_diffs: int) -> list[int]:
    """Start offsets of substrings of `text` within `max_diffs` edits of `pattern` (fuzzysearch-like)."""
    if max_diffs == 0:
        return [m.start() for m in re.finditer(f"(?={re.escape(pattern)})", text)]
    # Sellers' algorithm on the reversed strings: match ends in the reversal are starts in the text.
    p = np.frombuffer(pattern[::-1].encode("utf-32-le"), np.uint32)
    col = np.arange(len(p) + 1, dtype=np.int64)
    idx = np.arange(len(p) + 1)
    starts = []
    for j, ch in enumerate(text[::-1], 1):
        new = np.empty_like(col)
        new[0] = 0
        new[1:] = np.minimum(col[:-1] + (p != ord(ch)), col[1:] + 1)
        col = np.minimum.accumulate(new - idx) + idx
        if col[-1] <= max_diffs:
            starts.append(len(text) - j)
    return sorted(starts)


def _table_relations(table, cell) -> dict[str, list]:
    grid = table.grid()
    rows, cols = range(cell.row, cell.row + cell.rowspan), range(cell.col, cell.col + cell.colspan)

    def at(rr, cc):
        return [grid[r][c] for r in rr for c in cc if 0 <= r < len(grid) and 0 <= c < len(grid[0]) and grid[r][c] is not None]

    heads = [c for c in at(range(cell.row), cols) if c.header]
    top = heads or [next((c for c in at(range(cell.row), [col]) if c.text), None) for col in cols]
    left = next((c for c in at(rows[:1], range(cell.col)) if c.text), None)
    return {"up": at([cell.row - 1], cols), "down": at([cell.row + cell.rowspan], cols), "left": at(rows, [cell.col - 1]),
            "right": at(rows, [cell.col + cell.colspan]), "top_heading": [c for c in top if c], "left_heading": [left] if left else []}


def run_test(test: dict, text: str, tables=None) -> tuple[bool, str]:
    """One olmOCR-bench check against a page's text; `tables` (list of pipeline.tables.Table) for `table`."""
    kind, max_diffs = test["type"], int(test.get("max_diffs", 0) or 0)
    if kind in ("present", "absent"):
        query, content = olmo_normalize(test["text"]), olmo_normalize(text)
        if not test.get("case_sensitive", True):
            query, content = query.lower(), content.lower()
        first_n, last_n = test.get("first_n"), test.get("last_n")
        if first_n or last_n:
            content = (content[:first_n] if first_n else "") + (content[-last_n:] if last_n else "")
        if len(content) < len(query) - max_diffs:
            return kind == "absent", "candidate shorter than the query"
        ratio = fuzz.partial_ratio(query, content) / 100.0
        found = ratio >= 1.0 - max_diffs / max(len(query), 1)
        return found == (kind == "present"), f"best match ratio {ratio:.3f}"
    if kind == "order":
        content = olmo_normalize(text)
        before = near_match_starts(olmo_normalize(test["before"]), content, max_diffs)
        after = near_match_starts(olmo_normalize(test["after"]), content, max_diffs)
        if not before or not after:
            return False, "'before' not found" if not before else "'after' not found"
        return min(before) < max(after), "order"
    if kind == "table":
        def similar(a, b):
            a = olmo_normalize(a)
            return fuzz.ratio(a, olmo_normalize(b)) / 100.0 >= max(0.5, 1.0 - max_diffs / max(len(a), 1))

        for table in tables or []:
            grid_cells = {id(c): c for row in table.grid() for c in row if c is not None}.values()
            for cell in (c for c in grid_cells if similar(test["cell"], c.text)):
                rel = _table_relations(table, cell)
                if all(any(similar(test[k], c.text) for c in rel[k]) for k in rel if test.get(k)):
                    return True, ""
        return False, "no table cell with those neighbours" if tables else "no table in the output"
    if kind == "baseline":
        alnum = sum(c.isalnum() for c in text)
        if test.get("max_length") is not None:
            return alnum <= test["max_length"], f"{alnum} alphanumeric characters"
        if alnum == 0:
            return False, "no alphanumeric characters"
        tail = text[-600:]
        for n in range(1, 6):  # the text must not end in >30 repeats of one n-gram
            gram, k = tail[-n:], 0
            while tail.endswith(gram * (k + 1)):
                k += 1
            if k > test.get("max_repeats", 30):
                return False, f"ends with {k} repeats of a {n}-gram"
        bad = re.findall(r"[\u4e00-\u9fff\u3040-\u30ff\U0001F300-\U0001F6FF\U0001F1E0-\U0001F1FF]", text)
        return not bad, "disallowed characters" if bad else ""
    if kind == "math":
        squash = lambda s: re.sub(r"\s+", "", s)
        eqs = re.findall(r"\\\((.+?)\\\)|\\\[(.+?)\\\]|\$\$(.+?)\$\$|\$(.+?)\$", text or "", re.DOTALL)
        return any(squash(g) == squash(test["math"]) for e in eqs for g in e if g), "exact LaTeX only (no KaTeX render)"
    return False, f"unknown test type {kind!r}"
