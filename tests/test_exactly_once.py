"""Exactly once, whatever reached the pages: content identity, one writer per OUT_DIR, retried errors.

Real runs on the local Ray with real PaddleOCR weights; concurrent runs as two real CLI processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymupdf
import pytest

from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.lock import LOCK_NAME, OutputLocked, RunLock
from pipeline.output import OutputDir
from pipeline.report import read_pages
from tests.conftest import text_images, text_pdf

REPO = Path(__file__).resolve().parents[1]


def _rows(out) -> list[dict]:
    rows = read_pages(out).to_pylist()
    assert len({r["page_id"] for r in rows}) == len(rows), "a page_id twice in the output"
    return rows


def test_a_page_is_its_content_whatever_path_reached_it(tmp_path, ray_local):
    pages = text_images(tmp_path / "in", 3)
    (tmp_path / "in" / "copy_of_first.png").write_bytes(pages[0].read_bytes())  # byte-identical, another name
    out = tmp_path / "out"
    plan = run_job([str(tmp_path / "in")], out, RunConfig())
    rows = _rows(out)
    assert plan.todo_pages == len(rows) == 3  # the copy is not read twice
    twin = next(r for r in rows if len(r["sources"]) == 2)
    assert sorted(Path(s).name for s in twin["sources"]) == sorted(["copy_of_first.png", pages[0].name])
    assert twin["source"] in twin["sources"]

    # the same folder through a symlink, a glob over a symlink loop and a repeated match, and a copy
    # elsewhere (what `ray job submit --working-dir` hands the driver): nothing is read or written again
    (tmp_path / "link").symlink_to(tmp_path / "in")
    (tmp_path / "in" / "loop").symlink_to(tmp_path / "in")
    shutil.copytree(tmp_path / "in", tmp_path / "_ray_pkg_0123" / "in", symlinks=True)
    for inputs in ([str(tmp_path / "link")], [f"{tmp_path}/**/*.png", str(pages[1])], [str(tmp_path / "_ray_pkg_0123" / "in")]):
        assert run_job(inputs, out, RunConfig()).todo_pages == 0, inputs
    assert len(_rows(out)) == 3


def test_source_is_the_path_as_given(tmp_path, ray_local, monkeypatch):
    text_images(tmp_path / "in", 1)
    monkeypatch.chdir(tmp_path)  # as under `ray job submit --working-dir .`: inputs relative to the submit directory
    run_job(["in"], tmp_path / "out", RunConfig())
    (row,) = _rows(tmp_path / "out")
    assert row["source"] == "in/page_00.png" and row["error"] is None and "line 0" in row["text"]


def _encrypted_pdf(path: Path, pages: list[str]) -> None:
    doc = pymupdf.open()
    for text in pages:
        doc.new_page().insert_text((72, 100), text, fontsize=14)
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="o", user_pw="u")


def test_error_rows_are_retried_and_replaced_after_a_fix(tmp_path, ray_local):
    text = "The quick brown fox jumps over the lazy dog, page {}."
    (image,) = text_images(tmp_path / "in", 1)
    pdf = tmp_path / "in" / "letters.pdf"
    _encrypted_pdf(pdf, [text.format(i) for i in range(3)])
    out = tmp_path / "out"
    run_job([str(tmp_path / "in")], out, RunConfig.model_validate({"render": {"max_image_pixels": 200_000}}))
    first = {Path(r["source"]).name: r for r in _rows(out)}
    assert "decrypt it" in first["letters.pdf"]["error"] and "max_image_pixels" in first[image.name]["error"]

    # --keep-errors: the error rows count as finished
    assert run_job([str(tmp_path / "in")], out, RunConfig(), retry_errors=False).todo_pages == 0

    # fix what the rows say (decrypt the PDF; the default pixel limit), rerun: one row per page, no error left
    text_pdf(pdf, [text.format(i) for i in range(3)])
    plan = run_job([str(tmp_path / "in")], out, RunConfig())
    rows = _rows(out)
    assert plan.todo_pages == 4 and len(rows) == 4 and all(r["error"] is None for r in rows)
    assert sorted(r["page_index"] for r in rows if r["source"].endswith("letters.pdf")) == [0, 1, 2]
    assert run_job([str(tmp_path / "in")], out, RunConfig()).todo_pages == 0


def test_one_writer_per_out_dir(tmp_path):
    text_images(tmp_path / "in", 6)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(tmp_path / "in"), "--out", str(out), "--quiet"]
    first = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / LOCK_NAME).exists():
            assert time.time() < deadline and first.poll() is None, "the first run never took the lock"
            time.sleep(0.1)
        second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert second.returncode == 3, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Wait for it to finish, or write to another --out" in second.stderr
        assert first.wait(timeout=600) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    assert len(_rows(out)) == 6 and not (out / LOCK_NAME).exists()


def _lock_file(out: Path, **holder) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(json.dumps({"token": "other", "command": "hybridocr run x", "started": time.time(), **holder}))


def test_a_crashed_runs_lock_never_blocks_for_long(tmp_path):
    out = OutputDir(tmp_path / "out")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lock_file(tmp_path / "out", host=socket.gethostname(), pid=gone.pid, heartbeat=time.time())
    with RunLock(out.fs, out.path, out.location):  # its process is gone: taken over at once
        assert json.loads((tmp_path / "out" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "out" / LOCK_NAME).exists()

    _lock_file(tmp_path / "out", host="node-7", pid=4242, heartbeat=time.time() - 5)  # live, on another node
    with pytest.raises(OutputLocked, match="host node-7, pid 4242"):
        RunLock(out.fs, out.path, out.location).acquire()
    _lock_file(tmp_path / "out", host="node-7", pid=4242, heartbeat=time.time() - 600)  # that node died
    with RunLock(out.fs, out.path, out.location):
        pass
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def _actor_ids() -> set[str]:
    import ray._private.state

    return set(ray._private.state.actors())


def _new_ocr_actors(before: set[str]) -> list:
    """Ray Data actor-pool workers started since `before` (in paddle mode only the OCR pool has any)."""
    import ray._private.state

    return [a for i, a in ray._private.state.actors().items() if i not in before and "MapWorker" in a["ActorClassName"]]


def test_a_text_layer_only_run_starts_no_ocr_actor(tmp_path, ray_local):
    text_pdf(tmp_path / "born_digital.pdf", ["The quick brown fox jumps over the lazy dog, page %d." % i for i in range(4)])
    before = _actor_ids()
    plan = run_job([str(tmp_path / "born_digital.pdf")], tmp_path / "out", RunConfig())
    rows = _rows(tmp_path / "out")
    assert len(rows) == 4 and {r["engine"] for r in rows} == {"text_layer"} and plan.actors == 0
    assert _new_ocr_actors(before) == []

    # the check can fail: a scan in the same kind of run does start one
    text_images(tmp_path / "scan", 1)
    before = _actor_ids()
    run_job([str(tmp_path / "scan")], tmp_path / "out2", RunConfig())
    assert len(_new_ocr_actors(before)) >= 1
