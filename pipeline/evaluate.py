"""`hybridocr eval`: recognition quality per page class, through the same Ray job as `run`.

Evaluation sets are laid out like ../shared/eval (see its README): `<set>/<id>.<png|jpg|pdf>` with
`<id>.txt` (reference text), `<id>.tests.jsonl` (olmOCR-bench checks), `<id>.html` (table).
MANIFEST.json items choose the inputs: `page_images_150dpi` (a document scored as its pages joined
in order), `image_150dpi`/`image` (page images rather than the PDF whose text layer *is* the
reference), else `pdf`. A multi-page PDF whose reference is pdftotext output with one form feed
per page is scored page by page. A path to one file inside a set evaluates that file's item.

Scores, per item then per class (means over items; "pages" = output rows behind a cell):
- CER (metrics.cer, NFKC-normalised, per character, so per Chinese character), the whitespace-free
  variant, and the order-free floor;
- olmOCR-bench tests (`run_test`, semantics of olmocr/bench/tests.py): fraction passed, pooled
  over the class's tests. `math` needs KaTeX rendering: here it passes only when a delimited
  equation equals the reference LaTeX up to whitespace, so a plain-text engine fails it;
- TEDS against `<id>.html` (pipeline.tables): a page's own HTML/Markdown table when its text has
  one (VLM output), else a table clustered from its OCR line boxes (PaddleOCR has no structure);
- the router: route per output row against the set's expected route (confusion matrix; "mixed"
  classes are left out).
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz

from pipeline.metrics import cer, order_free_cer
from pipeline.sources import SUFFIXES
from pipeline.tables import lines_to_table, tables_in_text, teds

# set -> (class, expected route, accepted routes). olmocr_bench_sample is split by MANIFEST class.
SET_CLASSES = {
    "en_printed_tesseract_test": ("horizontal_en_scans", "horizontal", ()),
    "zh_printed_mineru_bench": ("horizontal_zh_en_documents", "horizontal", ()),
    "zh_born_digital_textlayer": ("horizontal_zh_renders", "horizontal", ()),
    "born_digital_pdf_en": ("born_digital_pdf_text_layer", "text_layer", ("horizontal",)),
    "SYNTHETIC_vertical_classical_zh": ("vertical_classical_zh_synthetic", "vertical", ()),
    "table_en_pubtabnet": ("table_pubtabnet_crops", "table", ()),
}
OLMOCR_CLASSES = (("handwriting", "olmocr_handwriting", "handwriting"), ("table", "olmocr_tables", "table"),
                  ("blank", "olmocr_blank", "blank"), ("headers_footers", "olmocr_headers_footers", "mixed"))
SCENARIOS = {"horizontal": "horizontal text", "vertical": "vertical classical", "table": "tables", "photo": "photos",
             "handwriting": "handwriting", "text_layer": "born-digital (text layer)", "blank": "blank", "mixed": "mixed"}


@dataclass
class EvalItem:
    set: str
    id: str
    cls: str
    expected: str  # a route, or "mixed" (not in the confusion matrix)
    sources: list[str]  # absolute paths, in reading order
    page: int | None = None  # 0-based page of a single source; None: all pages
    accepted: tuple[str, ...] = ()  # further routes that count as right
    text: str | None = None
    tests: list[dict] = field(default_factory=list)
    html: str | None = None


def _read(p: Path) -> str | None:
    return p.read_text(encoding="utf-8") if p.is_file() else None


def _load_set(d: Path) -> list[EvalItem]:
    manifest = json.loads(_read(d / "MANIFEST.json") or "{}")
    entries = manifest.get("items") or [{"id": p.stem, "file": p.name} for p in sorted(d.iterdir())
                                        if p.suffix.lower() in SUFFIXES and any((d / f"{p.stem}{s}").exists() for s in (".txt", ".tests.jsonl", ".html"))]
    cls, expected, accepted = SET_CLASSES.get(d.name, (d.name, "mixed", ()))
    items = []
    for e in entries:
        files = e.get("page_images_150dpi") or e.get("image_150dpi") or [e.get("image") or e.get("pdf") or e["file"]]
        tests_text = _read(d / f"{e['id']}.tests.jsonl") or ""
        item = EvalItem(d.name, e["id"], cls, expected, [str((d / f).resolve()) for f in files], accepted=accepted,
                        text=_read(d / (e.get("gt") or f"{e['id']}.txt")), html=_read(d / f"{e['id']}.html"),
                        tests=[json.loads(ln) for ln in tests_text.splitlines() if ln.strip()])
        if d.name == "olmocr_bench_sample" or "class" in e and d.name not in SET_CLASSES:
            item.cls, item.expected = f"{d.name}_other", "mixed"
            for key, c, route in OLMOCR_CLASSES:
                if str(e.get("class", "")).startswith(key) or key in e["id"]:
                    item.cls, item.expected = c, route
                    break
            item.accepted = ("text_layer",) if e.get("textlayer_ref") and item.expected != "mixed" else ()
        pages = (item.text or "").split("\f")
        if len(files) == 1 and files[0].lower().endswith(".pdf") and len(pages) > 2:
            import pymupdf

            with pymupdf.open(item.sources[0]) as doc:
                n = doc.page_count
            if len(pages) - 1 == n and not pages[-1].strip():
                items += [EvalItem(**{**item.__dict__, "id": f"{item.id}#{i + 1}", "page": i, "text": pages[i]}) for i in range(n)]
                continue
        items.append(item)
    return items


def load_eval_sets(paths: list[str | Path], limit: int | None = None) -> list[EvalItem]:
    """Items of every set under `paths` (a set folder, a folder of sets, or one file of a set)."""
    items: list[EvalItem] = []
    for p in map(Path, paths):
        if p.is_file():
            items += [i for i in _load_set(p.parent) if str(p.resolve()) in i.sources]
            continue
        sets = [p] if (p / "MANIFEST.json").exists() or not any(c.is_dir() for c in p.iterdir()) else sorted(c for c in p.iterdir() if c.is_dir())
        for s in sets:
            found = _load_set(s)
            items += found[:limit] if limit else found
    return items


# ----------------------------------------------------------------------------- olmOCR-bench tests

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


# ----------------------------------------------------------------------------- scoring


def page_tables(row: dict) -> list:
    """Tables of one output row: its own HTML/Markdown tables, else one clustered from its line boxes."""
    found = tables_in_text(row.get("text") or "")
    if found:
        return found
    built = lines_to_table(row.get("lines") or [])
    return [built] if built else []


def score_item(item: EvalItem, rows: list[dict]) -> dict:
    """Scores of one item from its output rows (already in reading order)."""
    hyp = "\n".join(r["text"] or "" for r in rows)
    out = {"set": item.set, "id": item.id, "class": item.cls, "expected": item.expected, "pages": len(rows),
           "routes": [r["route"] for r in rows], "errors": [r["error"] for r in rows if r["error"]]}
    if item.text is not None:
        out.update(cer=round(cer(hyp, item.text), 4), cer_no_ws=round(cer(hyp, item.text, ignore_whitespace=True), 4),
                   order_free_cer=round(order_free_cer(hyp, item.text), 4))
    if item.tests:
        results = []
        for t in item.tests:
            page_rows = [r for r in rows if r["page_index"] == int(t.get("page", 1)) - 1] or rows
            text = "\n".join(r["text"] or "" for r in page_rows)
            tables = [tb for r in page_rows for tb in page_tables(r)] if t["type"] == "table" else None
            ok, why = run_test(t, text, tables)
            results.append({"id": t.get("id"), "type": t["type"], "passed": ok, **({} if ok else {"why": why})})
        out["tests"] = results
    if item.html is not None:
        candidates = [tb for r in rows for tb in page_tables(r)]
        out["teds"] = round(max((teds(tb, item.html) for tb in candidates), default=0.0), 4)
        out["teds_struct"] = round(max((teds(tb, item.html, structure_only=True) for tb in candidates), default=0.0), 4)
    return out


def _mean(vals):
    vals = [v for v in vals if v is not None]
    return round(sum(vals) / len(vals), 4) if vals else None


def summarize(scored: list[dict]) -> dict:
    """Per-class aggregates and the router's confusion matrix (expected route x actual route)."""
    classes: dict[str, dict] = {}
    for cls in sorted({s["class"] for s in scored}):
        its = [s for s in scored if s["class"] == cls]
        with_text = [s for s in its if "cer" in s]
        tests = [t for s in its for t in s.get("tests", [])]
        tabled = [s for s in its if "teds" in s]
        by_type = Counter(t["type"] for t in tests)
        passed = Counter(t["type"] for t in tests if t["passed"])
        classes[cls] = {
            "scenario": SCENARIOS.get(its[0]["expected"], "mixed"), "items": len(its), "pages": sum(s["pages"] for s in its),
            "error_pages": sum(len(s["errors"]) for s in its),
            "cer": _mean(s["cer"] for s in with_text), "cer_no_ws": _mean(s["cer_no_ws"] for s in with_text),
            "order_free_cer": _mean(s["order_free_cer"] for s in with_text), "cer_pages": sum(s["pages"] for s in with_text),
            "tests_passed": sum(passed.values()), "tests": len(tests),
            "test_pass_rate": round(sum(passed.values()) / len(tests), 4) if tests else None,
            "tests_pages": sum(s["pages"] for s in its if s.get("tests")),
            "tests_by_type": {k: f"{passed[k]}/{n}" for k, n in sorted(by_type.items())},
            "teds": _mean(s["teds"] for s in tabled), "teds_struct": _mean(s["teds_struct"] for s in tabled),
            "teds_pages": sum(s["pages"] for s in tabled),
        }
    matrix: dict[str, Counter] = defaultdict(Counter)
    right = total = 0
    for s in scored:
        if s["expected"] == "mixed":
            continue
        for route in s["routes"]:
            matrix[s["expected"]][route or "error"] += 1
            total += 1
            right += route == s["expected"] or route in s.get("accepted", ())
    for cls, v in classes.items():
        its = [s for s in scored if s["class"] == cls and s["expected"] != "mixed"]
        n = sum(s["pages"] for s in its)
        ok = sum(r == s["expected"] or r in s.get("accepted", ()) for s in its for r in s["routes"])
        v["route_accuracy"] = round(ok / n, 4) if n else None
    return {"classes": classes, "confusion": {k: dict(v) for k, v in sorted(matrix.items())},
            "route_accuracy": round(right / total, 4) if total else None}


def evaluate(paths: list[str | Path], out_dir: str | Path, config, *, limit: int | None = None, force: bool = False,
             on_progress=None) -> dict:
    """Run the Ray job (as `hybridocr run`, resuming OUT/<mode>/pages) over the evaluation pages, then score them."""
    from pipeline.job import run_job
    from pipeline.report import read_pages

    items = load_eval_sets(paths, limit)
    if not items:
        raise ValueError(f"no evaluation items found under {', '.join(map(str, paths))}")
    mode = config.mode
    run_dir = Path(out_dir) / mode
    inputs = sorted({s for it in items for s in it.sources})
    plan = run_job(inputs, run_dir, config, force=force, on_progress=on_progress)
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in read_pages(run_dir, ["source", "sources", "page_index", "route", "text", "lines", "error"]).to_pylist():
        for name in r["sources"] or [r["source"]]:  # byte-identical pages under several names: one row
            by_source[str(Path(name).resolve())].append(r)
    scored = []
    for it in items:
        rows = [r for s in it.sources for r in sorted(by_source.get(s, []), key=lambda r: r["page_index"])
                if it.page is None or r["page_index"] == it.page]
        scored.append({**score_item(it, rows), "accepted": list(it.accepted)})
    return {"mode": mode, "pages_run": plan.total_pages, "items": scored, **summarize(scored)}


# ----------------------------------------------------------------------------- report

def _cell(value, n, pct=False):
    if value is None or not n:
        return "–"
    return f"{100 * value:.1f}% ({n})" if pct else f"{value:.3f} ({n})"


def eval_markdown(report: dict) -> str:
    modes = report["modes"]
    lines = ["# hybridocr evaluation", "",
             ("Per class x mode; each cell: value (pages behind it). CER: Unicode-normalised character error rate "
             "(mean over items; lower is better); no-ws: whitespace removed; order-free: bag-of-characters floor. "
             "Tests: olmOCR-bench checks passed (pooled). TEDS: table tree-edit similarity (tables from OCR line "
             "boxes for PaddleOCR). Route: share of pages the router sent to the expected route."), "",
             "| scenario | class | mode | pages | CER | CER no-ws | order-free CER | tests passed | TEDS | TEDS-struct | route ok |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    classes = sorted({c for m in modes.values() for c in m["classes"]},
                     key=lambda c: (list(SCENARIOS.values()).index(next(m["classes"][c]["scenario"] for m in modes.values() if c in m["classes"])), c))
    for cls in classes:
        for mode, m in sorted(modes.items()):
            v = m["classes"].get(cls)
            if v is None:
                continue
            lines.append(f"| {v['scenario']} | {cls} | {mode} | {v['pages']} | {_cell(v['cer'], v['cer_pages'])} | "
                         f"{_cell(v['cer_no_ws'], v['cer_pages'])} | {_cell(v['order_free_cer'], v['cer_pages'])} | "
                         f"{_cell(v['test_pass_rate'], v['tests_pages'], True)} | {_cell(v['teds'], v['teds_pages'])} | "
                         f"{_cell(v['teds_struct'], v['teds_pages'])} | {_cell(v['route_accuracy'], v['pages'], True)} |")
    if not any(v["scenario"] == "photos" for m in modes.values() for v in m["classes"].values()):
        lines.append("| photos | (no evaluation set) | – | 0 | – | – | – | – | – | – | – |")
    for mode, m in sorted(modes.items()):
        routes = sorted({r for row in m["confusion"].values() for r in row})
        lines += ["", (f"Router confusion ({mode}; rows: expected route, columns: route taken; accuracy "
                  f"{_cell(m['route_accuracy'], 1, True).split(' ')[0]}; text_layer also accepted for PDFs with a text layer):"), "",
                  "| expected \\ routed | " + " | ".join(routes) + " |", "|---" * (len(routes) + 1) + "|"]
        lines += [f"| {exp} | " + " | ".join(str(row.get(r, 0)) for r in routes) + " |" for exp, row in m["confusion"].items()]
        types = Counter()
        for v in m["classes"].values():
            for k, s in v["tests_by_type"].items():
                a, b = map(int, s.split("/"))
                types[k + "/p"] += a
                types[k + "/n"] += b
        if types:
            lines += ["", f"olmOCR tests by type ({mode}): " + ", ".join(
                f"{k[:-2]} {types[k]}/{types[k[:-2] + '/n']}" for k in sorted(types) if k.endswith("/p"))]
    return "\n".join(lines) + "\n"


def write_eval_report(out_dir: str | Path, result: dict) -> str:
    """Merge one mode's result into OUT/report.json (other modes kept) and rewrite report.md."""
    out_dir = Path(out_dir)
    path = out_dir / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {"modes": {}}
    report["modes"][result["mode"]] = result
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    md = eval_markdown(report)
    (out_dir / "report.md").write_text(md)
    return md


# ----------------------------------------------------------------------------- CLI


def add_parser(subparsers, func=None) -> None:
    p = subparsers.add_parser("eval", help="score recognition quality per page class on evaluation sets with ground truth")
    p.add_argument("data", nargs="+", metavar="DATA", help="evaluation sets (a set folder, a folder of sets, or files of a set)")
    p.add_argument("--mode", action="append", choices=["paddle", "vlm", "hybrid"], help="engines (repeat to compare; default paddle)")
    p.add_argument("--out", default="eval-out", help="output folder: <mode>/pages, report.md, report.json")
    p.add_argument("--config", help="YAML config (see configs/)")
    p.add_argument("--limit", type=int, help="at most N items per set")
    p.add_argument("--force", action="store_true", help="recompute pages already in OUT/<mode>/pages (else they are reused)")
    p.set_defaults(func=func or main)


def main(args, on_progress=None) -> int:
    """`hybridocr eval` (pipeline/cli.py gives it the progress printer)."""
    from pipeline.config import ConfigError, load_config

    Path(args.out).mkdir(parents=True, exist_ok=True)
    md = ""
    for mode in args.mode or ["paddle"]:
        try:
            config = load_config(args.config, {"mode": mode})
        except ConfigError as e:
            print(f"hybridocr: {e}", file=sys.stderr)
            return 2
        md = write_eval_report(args.out, evaluate(args.data, args.out, config, limit=args.limit, force=args.force, on_progress=on_progress))
    print(md)
    return 0


if __name__ == "__main__":
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m pipeline.evaluate")
    add_parser(parser.add_subparsers(dest="command", required=True))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ns = parser.parse_args(["eval", *sys.argv[1:]])
    sys.exit(ns.func(ns))
