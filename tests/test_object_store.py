"""Input from and output to an S3-compatible object store, for real: moto's S3 server on loopback
(it installs from PyPI with the test extra and speaks the S3 REST API that pyarrow.fs and boto3
use; MinIO, the usual choice, has no PyPI package). The job goes through the same `pyarrow.fs`
code users run, with the endpoint from AWS_ENDPOINT_URL (tests/conftest.py sets it before Ray
starts), real Ray workers and real PaddleOCR weights."""

from __future__ import annotations

import logging

import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest

from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.report import read_pages
from tests.conftest import S3_PORT, text_images

BUCKET = "hocr"


@pytest.fixture(scope="module")
def s3():
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per HTTP request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=S3_PORT, verbose=False)
    server.start()
    client = boto3.client("s3")  # endpoint and credentials from the environment, as pyarrow's
    client.create_bucket(Bucket=BUCKET)
    yield client
    server.stop()


def put(client, key: str, data: bytes) -> str:
    client.put_object(Bucket=BUCKET, Key=key, Body=data)
    return f"s3://{BUCKET}/{key}"


def test_pages_from_and_to_s3_with_resume(ray_local, s3, tmp_path):
    images = text_images(tmp_path / "img", 4)
    for img in images[:3]:
        put(s3, f"in/{img.name}", img.read_bytes())
    put(s3, "in/notes.txt", b"not a page")  # not a document type: not listed
    out = f"s3://{BUCKET}/out"

    plan = run_job([f"s3://{BUCKET}/in/"], out, RunConfig(mode="paddle"))
    assert plan.todo_pages == 3
    rows = read_pages(out).to_pylist()
    assert sorted(r["source"] for r in rows) == [f"s3://{BUCKET}/in/{p.name}" for p in images[:3]]
    for r in rows:  # each page read by PaddleOCR from the object bytes: its own words
        i = int(r["source"].rsplit("_", 1)[1][:2])
        assert r["error"] is None and r["engine"] == "paddleocr" and f"page {i} line 0" in r["text"], r

    # what a user opens: plain Parquet files under OUT/pages, read straight from the store
    fs = pafs.S3FileSystem(endpoint_override=f"http://127.0.0.1:{S3_PORT}", scheme="http")
    assert pads.dataset(f"{BUCKET}/out/pages", filesystem=fs, format="parquet").count_rows() == 3
    assert fs.get_file_info(f"{BUCKET}/out/_hybridocr.lock").type == pafs.FileType.NotFound  # released

    # resume: nothing is read again; a new object is read, alone; still one row per page
    assert run_job([f"s3://{BUCKET}/in/"], out, RunConfig(mode="paddle")).todo_pages == 0
    put(s3, f"in/{images[3].name}", images[3].read_bytes())
    assert run_job([f"s3://{BUCKET}/in/"], out, RunConfig(mode="paddle")).todo_pages == 1
    rows = read_pages(out).to_pylist()
    assert len(rows) == 4 and len({r["page_id"] for r in rows}) == 4 and all(r["error"] is None for r in rows)


def test_a_bad_object_is_an_error_row_and_its_fix_is_read_on_the_rerun(ray_local, s3, tmp_path):
    (img,) = text_images(tmp_path / "img", 1)
    key = "fix/scan.png"
    put(s3, key, img.read_bytes()[:200])  # cut short in transit
    out = f"s3://{BUCKET}/fix-out"
    run_job([f"s3://{BUCKET}/fix/"], out, RunConfig(mode="paddle"))
    (row,) = read_pages(out).to_pylist()
    assert row["error"] is not None and "rerun" in row["error"], row
    put(s3, key, img.read_bytes())  # the object fixed in place: new bytes under the same key
    assert run_job([f"s3://{BUCKET}/fix/"], out, RunConfig(mode="paddle")).todo_pages == 1
    (row,) = read_pages(out).to_pylist()  # the error row gave way to the new one
    assert row["error"] is None and "page 0 line 0" in row["text"], row
