"""Runs users can trust: a killed run resumes with every page exactly once; the CLI end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from pipeline.cli import main
from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.report import read_pages
from tests.conftest import text_images


def _kill_run(proc: subprocess.Popen) -> None:
    """SIGKILL a `hybridocr run` and every process under it: its embedded Ray's raylet and workers
    sit in other process groups and would otherwise go on writing pages after the kill."""
    tree = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGKILL)
    for child in tree:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait()
    psutil.wait_procs(tree, timeout=30)


def test_killed_run_resumes_with_every_page_once(tmp_path, ray_local):
    inputs = text_images(tmp_path / "in", 32)
    out = tmp_path / "out"
    # the defaults: rows reach OUT_DIR while the run goes (rows_per_file auto: 8 on CPUs), not at its end
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(tmp_path / "in"), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        # readable rows, not just file names: the newest file may still be half written (read_pages skips it)
        while time.time() < deadline and read_pages(out).num_rows < 8:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
    finally:
        _kill_run(proc)  # the driver and its embedded Ray, mid-run
    written = read_pages(out).num_rows
    assert 8 <= written < len(inputs), "kill the run while it is writing"
    assert (out / "_hybridocr.lock").exists()  # the killed run's lock: taken over by the rerun (its pid is gone)
    (out / "pages" / "cut-short.parquet").write_bytes(b"PAR1 not finished")  # what a kill mid-write leaves

    plan = run_job([str(tmp_path / "in")], out, RunConfig())
    rows = read_pages(out).to_pylist()
    assert plan.todo_pages == len(inputs) - written
    assert sorted(Path(r["source"]).name for r in rows) == sorted(p.name for p in inputs)
    assert all(r["error"] is None and "line 0" in r["text"] for r in rows)
    assert (out / "broken" / "cut-short.parquet").exists()

    again = run_job([str(tmp_path / "in")], out, RunConfig())
    assert again.todo_pages == 0 and read_pages(out).num_rows == len(inputs)


def test_cli_run_report_and_export(tmp_path, ray_local, capsys):
    text_images(tmp_path / "in", 2)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "in"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "pages/min" in printed.err and "ETA" in printed.err
    assert "# hybridocr run report" in printed.out
    assert (out / "report.json").exists() and "| horizontal | 2 |" in (out / "report.md").read_text()
    assert main(["run", str(tmp_path / "in"), "--out", str(out), "--force", "--quiet"]) == 0
    assert read_pages(out).num_rows == 2
    assert main(["export", str(out), "--format", "txt", "--to", str(tmp_path / "txt")]) == 0
    assert "page 1 line 2" in (tmp_path / "txt" / "page_01.txt").read_text()


def test_cli_errors_say_what_to_do(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nothing.pdf"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("paddle:\n  engine: tesseract\n")
    assert main(["run", str(tmp_path), "--out", str(tmp_path / "o"), "--config", str(bad)]) == 2
    assert "paddle.engine" in capsys.readouterr().err
