r"""`hybridocr eval`: recognition quality per page class, through the same Ray job as `run`.

Evaluation sets are laid out like ../shared/eval (see its README): `<set>/<id>.<png|jpg|pdf>` with
`<id>.txt` (reference text), `<id>.tests.jsonl` (olmOCR-bench checks), `<id>.html` (table).
MANIFEST.json items choose the inputs: `page_images_150dpi` (a document scored as its pages joined
in order), `image_150dpi`/`image` (page images rather than the PDF whose text layer *is* the
reference), else `pdf`. A multi-page PDF whose reference is pdftotext output with one form feed
per page is scored page by page. A path to one file inside a set evaluates that file's item.

Scores, per item then per class (means over items; "pages" = output rows behind a cell):
- CER (metrics.cer, NFKC-normalised, per character, so per Chinese character), the whitespace-free
  variant, and the order-free floor; reference and output both through metrics.plain_text first, so
  markup is scored as the text it shows (HTML/Markdown tables as cell text, LaTeX math as its
  characters: MinerU's references write `$\mathrm{TiO}_{2}$` where a page shows TiO2);
- olmOCR-bench tests (`run_test`, semantics of olmocr/bench/tests.py): fraction passed, pooled
  over the class's tests. `math` needs KaTeX rendering: here it passes only when a delimited
  equation equals the reference LaTeX up to whitespace, so a plain-text engine fails it;
- TEDS against `<id>.html` (pipeline.tables): the row's `tables` (PaddleOCR route: the table
  model's HTML), else the HTML/Markdown tables in its text (VLM), else a table clustered from its
  OCR line boxes (layout.tables off);
- photos with `<id>.words.txt` (ICDAR 2015 word quads): word detection and end-to-end precision,
  recall and hmean (pipeline.photo_metric), pooled per class;
- the router: route per output row against the set's expected route (confusion matrix; "mixed"
  classes are left out).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.metrics import cer, order_free_cer, plain_text
from pipeline.olmo_checks import run_test
from pipeline.photo_metric import line_words, read_words, score_words, summarize_words
from pipeline.sources import SUFFIXES
from pipeline.tables import lines_to_table, parse_html_tables, tables_in_text, teds

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
TRUTH_SUFFIXES = (".txt", ".tests.jsonl", ".html", ".words.txt")
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
    words: str | None = None  # ICDAR 2015 word quads + transcriptions (photos)


def _read(p: Path) -> str | None:
    return p.read_text(encoding="utf-8") if p.is_file() else None


def _load_set(d: Path) -> list[EvalItem]:
    manifest = json.loads(_read(d / "MANIFEST.json") or "{}")
    entries = manifest.get("items") or [{"id": p.stem, "file": p.name} for p in sorted(d.iterdir())
                                        if p.suffix.lower() in SUFFIXES and any((d / f"{p.stem}{s}").exists() for s in TRUTH_SUFFIXES)]
    # a set of word-boxed images (ICDAR 2015 truth) is a photo set unless SET_CLASSES says otherwise
    cls, expected, accepted = SET_CLASSES.get(d.name) or (d.name, "photo" if any(d.glob("*.words.txt")) else "mixed", ())
    items = []
    for e in entries:
        files = e.get("page_images_150dpi") or e.get("image_150dpi") or [e.get("image") or e.get("pdf") or e["file"]]
        tests_text = _read(d / f"{e['id']}.tests.jsonl") or ""
        item = EvalItem(d.name, e["id"], cls, expected, [str((d / f).resolve()) for f in files], accepted=accepted,
                        text=_read(d / (e.get("gt") or f"{e['id']}.txt")), html=_read(d / f"{e['id']}.html"),
                        words=_read(d / f"{e['id']}.words.txt"),
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


# ----------------------------------------------------------------------------- scoring


def page_tables(row: dict) -> list:
    """Tables of one output row: its `tables` column (the table model's HTML), the HTML/Markdown tables
    in its text (VLM), else one clustered from its line boxes."""
    found = [tb for t in row.get("tables") or [] for tb in parse_html_tables(t["html"])]
    if found:
        return found
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
    if item.text is not None:  # markup (HTML/Markdown tables, LaTeX math) scored as the text it shows, on both sides
        h, ref = plain_text(hyp), plain_text(item.text)
        out.update(cer=round(cer(h, ref), 4), cer_no_ws=round(cer(h, ref, ignore_whitespace=True), 4),
                   order_free_cer=round(order_free_cer(h, ref), 4))
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
    if item.words is not None and rows:  # one image: its lines back in the file's pixels (render's scale undone)
        scale = rows[0].get("scale") or 1.0
        lines = [{**ln, "box": (np.asarray(ln["box"], dtype=float) / scale).tolist()} for ln in rows[0].get("lines") or []]
        out["words"] = score_words(read_words(item.words), line_words(lines))
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
            "words": summarize_words([s["words"] for s in its if "words" in s]) if any("words" in s for s in its) else None,
            "words_pages": sum(s["pages"] for s in its if "words" in s),
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
    for r in read_pages(run_dir, ["source", "sources", "page_index", "route", "text", "lines", "tables", "scale", "error"]).to_pylist():
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
    worded = [(cls, mode, m["classes"][cls]) for cls in classes for mode, m in sorted(modes.items())
              if m["classes"].get(cls, {}).get("words")]
    if worded:
        lines += ["", ("Words (ICDAR 2015 style: IoU >= 0.5 one-to-one, `###` regions not scored; end to end: the "
                  "word's text equal too). Precision / recall / hmean:"), "",
                  "| class | mode | pages | truth words | detection | end to end |", "|---|---|---|---|---|---|"]
        for cls, mode, v in worded:
            w = v["words"]
            lines.append(f"| {cls} | {mode} | {v['words_pages']} | {w['truth_words']} | {w['det_precision']:.3f} / "
                         f"{w['det_recall']:.3f} / {w['det_hmean']:.3f} | {w['e2e_precision']:.3f} / {w['e2e_recall']:.3f} / "
                         f"{w['e2e_hmean']:.3f} |")
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
