"""Finding input files and reading them, locally or on an object store (pyarrow.fs URIs)."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import tempfile
from pathlib import Path

import pyarrow.fs as pafs

PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}
SUFFIXES = PDF_SUFFIXES | IMAGE_SUFFIXES
_CHUNK = 1 << 20


class InputError(ValueError):
    """An input argument that names nothing readable."""


def _is_uri(spec: str) -> bool:
    return "://" in spec


def _wanted(path: str) -> bool:
    return Path(path).suffix.lower() in SUFFIXES


def list_inputs(specs: list[str]) -> list[str]:
    """Expand files, directories (recursively) and globs into a sorted list of page-bearing files.

    Paths come back as the user gave them (a relative spec gives relative paths, so that `source`
    under `ray job submit --working-dir` is relative to the submit directory); object-store inputs
    as URIs. A file reached twice (a repeated match, a symlink, a symlink loop under `**`) is listed
    once, under the first name found. A named file is kept whatever its suffix, so that an
    unreadable one gets an error row. Read files through `resolve()` (absolute, for Ray workers).
    """
    found: list[str] = []
    for spec in specs:
        if _is_uri(spec) and not spec.startswith("file://"):
            found.extend(_list_uri(spec))
            continue
        local = spec[len("file://"):] if spec.startswith("file://") else spec
        if glob.has_magic(local):
            matches = sorted(glob.glob(local, recursive=True))
            files = [m for m in matches if os.path.isfile(m) and _wanted(m)]
            files += [f for m in matches if os.path.isdir(m) for f in _walk(m)]
            if not files:
                raise InputError(f"{spec}: the pattern matches no PDF or image files")
            found.extend(files)
        elif os.path.isdir(local):
            found.extend(_walk(local))
        elif os.path.isfile(local):
            found.append(local)
        else:
            raise InputError(f"{spec}: no such file or directory")
    seen: set[str] = set()
    out = []
    for f in found:
        key = f if _is_uri(f) else os.path.realpath(f)
        if key not in seen:
            seen.add(key)
            out.append(f if _is_uri(f) else os.path.normpath(f))
    return out


def resolve(source: str) -> str:
    """Where Ray workers read `source`: an absolute local path (from the driver's directory) or the URI."""
    return source if _is_uri(source) else os.path.abspath(source)


def _walk(directory: str) -> list[str]:
    out = []
    for root, dirs, files in os.walk(directory):  # symlinked directories are not followed: no loops
        dirs.sort()
        out.extend(os.path.join(root, f) for f in sorted(files) if _wanted(f))
    return out


def _list_uri(spec: str) -> list[str]:
    scheme = spec.split("://", 1)[0]
    pattern = spec if glob.has_magic(spec) else None
    base = spec.split("*", 1)[0].rsplit("/", 1)[0] if pattern else spec
    fs, path = pafs.FileSystem.from_uri(base)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.File and pattern is None:
        return [spec]
    if info.type != pafs.FileType.Directory:
        raise InputError(f"{spec}: no such object or prefix")
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    uris = sorted(f"{scheme}://{i.path}" for i in infos if i.type == pafs.FileType.File)
    if pattern:
        uris = [u for u in uris if fnmatch.fnmatch(u, pattern)]
    return [u for u in uris if _wanted(u)]


def local_path(source: str) -> str:
    """A local file path for `source`: itself when local, else a cached download (per node).

    The cache is keyed by the URI with the object's size and modification time, so an object
    rewritten under the same key (a damaged upload replaced) is downloaded again."""
    if not _is_uri(source):
        return source
    if source.startswith("file://"):
        return source[len("file://"):]
    cache = Path(os.environ.get("HYBRIDOCR_CACHE", Path(tempfile.gettempdir()) / "hybridocr-cache"))
    cache.mkdir(parents=True, exist_ok=True)
    fs, path = pafs.FileSystem.from_uri(source)
    info = fs.get_file_info(path)
    version = f"{source}\n{info.size}\n{info.mtime_ns}"
    target = cache / (hashlib.sha256(version.encode()).hexdigest()[:32] + Path(source).suffix.lower())
    if not target.exists():
        partial = target.with_suffix(target.suffix + f".{os.getpid()}.part")
        with fs.open_input_stream(path) as src, open(partial, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
        os.replace(partial, target)
    return str(target)


def content_hash(path: str) -> str:
    """Document id: the SHA-256 of the file's bytes (first 32 hex digits), read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()[:32]
