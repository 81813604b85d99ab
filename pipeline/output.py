"""The output directory, local or on an object store (s3://, gs://, file:// through pyarrow.fs).

Layout: OUT/pages/*.parquet (the page rows), OUT/report.json, OUT/report.md, OUT/broken/ (files a
killed run left unreadable; their pages are recomputed).
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

    def clear_pages(self) -> None:
        if self.fs.get_file_info(self.pages).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.pages)

    def write_text(self, name: str, text: str) -> None:
        self.fs.create_dir(self.path, recursive=True)
        with self.fs.open_output_stream(f"{self.path}/{name}") as f:
            f.write(text.encode("utf-8"))
