"""The output directory, local or on an object store (s3://, gs://, file:// through pyarrow.fs).

Layout: OUT/pages/*.parquet (the page rows), OUT/report.json, OUT/report.md, OUT/broken/ (files a
killed run left unreadable; their pages are recomputed), OUT/_hybridocr.lock while a run writes
(pipeline/lock.py).

One row per page: `compact()` keeps, per page_id, an ok row over an error row and then the newest,
rewriting only the files that hold a dropped row (each file is replaced whole: a crash leaves
either the old file or the new one, and a later compaction finishes the work).
"""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.schema import OUTPUT_SCHEMA

log = logging.getLogger(__name__)


class OutputDir:
    def __init__(self, location: str | os.PathLike):
        location = str(location)
        if "://" in location:
            self.fs, self.path = pafs.FileSystem.from_uri(location)
        else:
            self.fs, self.path = pafs.LocalFileSystem(), os.path.abspath(location)
        self.location = location
        self.pages = f"{self.path}/pages"

    def page_files(self) -> list[str]:
        info = self.fs.get_file_info(pafs.FileSelector(self.pages, allow_not_found=True))
        return sorted(i.path for i in info if i.type == pafs.FileType.File and i.path.endswith(".parquet"))

    def read_pages(self, columns: list[str] | None = None, *, quarantine: bool = False) -> pa.Table:
        """All page rows; unreadable files are skipped (and moved to broken/ when `quarantine`)."""
        tables = []
        for f in self.page_files():
            try:
                tables.append(pq.read_table(f, filesystem=self.fs, columns=columns, schema=OUTPUT_SCHEMA))
            except (pa.ArrowInvalid, OSError) as e:  # a file cut short by a killed run
                if quarantine:
                    self.fs.create_dir(f"{self.path}/broken", recursive=True)
                    self.fs.move(f, f"{self.path}/broken/{f.rsplit('/', 1)[-1]}")
                    log.warning("moved unreadable %s to %s/broken (%s); its pages will be recomputed", f, self.location, e)
        schema = OUTPUT_SCHEMA if columns is None else pa.schema([OUTPUT_SCHEMA.field(c) for c in columns])
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def compact(self, current: dict[str, str] | None = None) -> tuple[set[str], set[str]]:
        """Drop superseded rows (see the module doc); returns (ok page_ids, error page_ids) after it.

        `current` maps this run's input names to their content's doc_id: rows of a name whose
        content has changed since (a decrypted PDF, a re-exported scan) are superseded too."""
        best: dict[str, tuple] = {}  # page_id -> (rank, file, row)
        per_file: dict[str, pa.Table] = {}
        stale: set[tuple[str, int]] = set()
        live = set((current or {}).values())
        for f in self.page_files():
            try:
                t = pq.read_table(f, filesystem=self.fs, columns=["page_id", "doc_id", "source", "error", "finished_at"])
            except (pa.ArrowInvalid, OSError):
                continue
            per_file[f] = t
            ids, errors = t["page_id"].to_pylist(), t["error"].is_null().to_pylist()
            stamps = t["finished_at"].cast(pa.int64()).fill_null(0).to_pylist()
            for i, (pid, doc, source) in enumerate(zip(ids, t["doc_id"].to_pylist(), t["source"].to_pylist())):
                if current and source in current and doc not in live:
                    stale.add((f, i))
            for i, (pid, ok, at) in enumerate(zip(ids, errors, stamps)):
                rank = (ok, at, f, i)
                if (f, i) not in stale and (pid not in best or rank > best[pid][0]):
                    best[pid] = (rank, f, i)
        keep = {(f, i) for _, f, i in best.values()}
        for f, t in per_file.items():
            mask = [(f, i) in keep for i in range(t.num_rows)]
            if all(mask):
                continue
            if not any(mask):
                self.fs.delete_file(f)
                continue
            full = pq.read_table(f, filesystem=self.fs, schema=OUTPUT_SCHEMA).filter(pa.array(mask))
            tmp = f[: -len(".parquet")] + ".compacting"
            pq.write_table(full, tmp, filesystem=self.fs)
            self.fs.move(tmp, f)
            log.info("compacted %s: dropped %d superseded rows", f, mask.count(False))
        ok = {pid for pid, (rank, _, _) in best.items() if rank[0]}
        return ok, set(best) - ok

    def clear_pages(self) -> None:
        if self.fs.get_file_info(self.pages).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.pages)

    def write_text(self, name: str, text: str) -> None:
        self.fs.create_dir(self.path, recursive=True)
        with self.fs.open_output_stream(f"{self.path}/{name}") as f:
            f.write(text.encode("utf-8"))
