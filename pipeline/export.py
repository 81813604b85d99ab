"""`hybridocr export`: one Markdown or text file per document, pages in order."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pipeline.report import read_pages


def export(out_dir: str | Path, fmt: str, to: str | Path) -> list[Path]:
    table = read_pages(out_dir, ["doc_id", "source", "page_index", "text", "error", "route"])
    docs: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        docs[(row["source"], row["doc_id"])].append(row)
    target = Path(to)
    target.mkdir(parents=True, exist_ok=True)
    stems: dict[str, int] = defaultdict(int)
    for source, _ in docs:
        stems[Path(source).stem] += 1
    written = []
    for (source, doc_id), pages in sorted(docs.items()):
        stem = Path(source).stem
        name = stem if stems[stem] == 1 else f"{stem}-{doc_id[:8]}"
        pages.sort(key=lambda r: r["page_index"])
        parts = []
        for p in pages:
            body = p["text"] or ""
            if p["error"]:
                body = f"[page not read: {p['error']}]"
            if fmt == "md":
                parts.append(f"<!-- page {p['page_index'] + 1} ({p['route'] or 'error'}) -->\n\n{body}\n")
            else:
                parts.append(body)
        path = target / f"{name}.{fmt}"
        path.write_text(("\n" if fmt == "md" else "\n\f\n").join(parts), encoding="utf-8")
        written.append(path)
    return written
