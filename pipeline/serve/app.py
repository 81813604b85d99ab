"""The online endpoint: a FastAPI ingress on Ray Serve in front of the two engine deployments.

    POST /v1/ocr    a PDF or image (multipart `file`, or the raw body); ?mode=&pages=&dpi=&text_layer=&stream=&image=
    GET  /healthz   200 once the app answers
    GET  /v1/info   engines, models, versions, limits
    GET  /          the review page (pipeline/serve/review.html); /v1/browse/* when started with --browse OUT_DIR
    GET  /docs      OpenAPI (FastAPI's own)

A request goes through the batch job's stages: discovery (`pipeline/discover.py`, content sniffed
from the bytes), `prepare_page` (text layer, render, classify) in the ingress, then the page's
engine: `PaddleReader` or `VlmReader` (pipeline/serve/deployments.py), escalation in hybrid mode as
in the job. The answer's rows are the job's Parquet rows (`to_output_table`), as JSON.

    serve run configs/serve.yaml            # Ray's CLI: `app_builder` below, args from the YAML
    hybridocr serve --mode hybrid           # the same app on a local Ray
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from actors.vlm import needs_vlm
from pipeline.config import RunConfig, load_config
from pipeline.pixels import jpeg_data_url, page_pixels
from pipeline.prepare import prepare_page
from pipeline.schema import PIPELINE_VERSION, SCHEMA_VERSION, json_ready, to_output_table
from pipeline.serve.deployments import PaddleReader, VlmReader, paddle_options, vlm_options
from pipeline.serve.uploads import Upload, UploadError, check_size, page_rows

MODES = ("paddle", "vlm", "hybrid")
api = FastAPI(title="hybridocr", version=PIPELINE_VERSION,
              description="OCR of PDF pages and images: PaddleOCR for simple pages, a VLM for hard ones (the batch job's engines).")


@api.exception_handler(UploadError)
async def _refused(request: Request, e: UploadError) -> JSONResponse:
    return JSONResponse({"error": e.message, "status": e.status}, status_code=e.status)


def answer_rows(rows: list[dict], image: bool = False) -> list[dict]:
    """Pipeline rows → the Parquet rows as JSON objects (+ a JPEG of the page for the review page)."""
    frame = pd.DataFrame(rows).drop(columns=["image"], errors="ignore")
    table = to_output_table(pa.Table.from_pandas(frame, preserve_index=False))
    out = []
    for src, row in zip(rows, table.to_pylist()):
        json_ready(row)
        if src.get("paddle_text") is not None:
            row["paddle_text"] = src["paddle_text"]  # hybrid escalation: PaddleOCR's reading beside the VLM's
        if src.get("batch_pages"):  # pages read in the same PaddleOCR call (Serve's batching), the page's share
            # of that call's seconds by step, and how long it waited in its replica for the call
            for k in ("batch_pages", "ocr_steps", "queued_seconds"):
                row[k] = src.get(k)
        if image and src.get("preview"):
            row["image"] = src["preview"]
        out.append(row)
    return out


def preview(row: dict) -> str | None:
    """The page's pixels as a JPEG data URL (boxes stay in page pixels: the review page scales them)."""
    return jpeg_data_url(page_pixels(row)) if row.get("image") and row.get("width") else None


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(self, config: dict, paddle: DeploymentHandle | None, vlm: DeploymentHandle | None, browse: str | None = None):
        self.cfg = RunConfig.model_validate(config)
        self.paddle, self.vlm = paddle, vlm
        self.browse, self._browse = browse, None
        from ray.serve import metrics

        self.pages_served = metrics.Counter("hybridocr_pages_served", "Pages answered", tag_keys=("engine", "mode"))
        self.page_errors = metrics.Counter("hybridocr_page_errors", "Pages answered with an error row", tag_keys=("mode",))
        self.latency = metrics.Histogram("hybridocr_request_seconds", "Seconds per /v1/ocr request",
                                         boundaries=[0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120], tag_keys=("mode",))
        self.in_flight = metrics.Gauge("hybridocr_pages_in_flight", "Pages being read now")
        self._in_flight = 0

    # --- plain endpoints --------------------------------------------------------------------------

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok"}

    @api.get("/v1/info")
    async def info(self) -> dict:
        import paddleocr
        import ray

        engines = {"paddleocr": await self.paddle.info.remote() if self.paddle else None,
                   "vlm": await self.vlm.info.remote() if self.vlm else None}
        s = self.cfg.serve
        return {
            "pipeline_version": PIPELINE_VERSION, "schema_version": SCHEMA_VERSION, "ray": ray.__version__,
            "paddleocr": paddleocr.__version__, "default_mode": self.cfg.mode,
            "modes": [m for m in MODES if m == "paddle" or self.vlm is not None], "engines": engines,
            "limits": {"max_upload_mb": s.max_upload_mb, "max_pages": s.max_pages, "request_timeout_s": s.request_timeout_s,
                       "render_max_pixels": self.cfg.render.max_pixels, "render_max_image_pixels": self.cfg.render.max_image_pixels},
            "browse": self.browse,
        }

    @api.get("/", response_class=HTMLResponse)
    async def review(self) -> str:
        return (Path(__file__).with_name("review.html")).read_text(encoding="utf-8")

    @api.get("/v1/browse/documents")
    async def browse_documents(self) -> list:
        """The documents of the batch output given with --browse (source, pages, lowest confidence)."""
        return await asyncio.to_thread(self._browser().documents)

    @api.get("/v1/browse/pages")
    async def browse_pages(self, doc_id: str | None = None, lowest: int | None = None) -> dict:
        """A document's rows (doc_id=) or the lowest-confidence pages (lowest=N), with pictures where the files are here."""
        return {"pages": await asyncio.to_thread(self._browser().pages, doc_id, lowest)}

    def _browser(self):
        if not self.browse:
            raise UploadError(404, "no batch output to browse: start the server with `hybridocr serve --browse OUT_DIR`")
        if self._browse is None:
            from pipeline.serve.browse import Browser

            self._browse = Browser(self.browse, self.cfg.render)
        return self._browse

    # --- OCR --------------------------------------------------------------------------------------

    @api.post("/v1/ocr")
    async def ocr(self, request: Request, mode: str | None = None, pages: str | None = None, dpi: int | None = None,
                  text_layer: str | None = None, stream: bool = False, image: bool = False, timeout_s: float | None = None):
        """OCR one uploaded PDF or image; one JSON object per page (the Parquet row's fields), or JSON lines with stream=true.

        `timeout_s`: this request's own deadline, at most the server's `serve.request_timeout_s`."""
        started = time.perf_counter()
        cfg, mode = self._request_config(mode, dpi, text_layer)
        limit = cfg.serve.request_timeout_s
        if timeout_s is not None:
            if not 0 < timeout_s <= limit:
                raise UploadError(400, f"timeout_s={timeout_s:g}: use more than 0 and at most this server's "
                                       f"serve.request_timeout_s = {limit:g} s")
            limit = timeout_s
        data, name = await self._body(request)
        upload = Upload(data, name)
        try:
            doc, rows = page_rows(upload, cfg, pages)
        except BaseException:
            upload.close()
            raise
        tasks = [asyncio.ensure_future(self._page(row, cfg, mode, image)) for row in rows]

        def done_with(results: list[dict]) -> None:
            upload.close()
            self.latency.observe(time.perf_counter() - started, tags={"mode": mode})
            for r in results:
                self.pages_served.inc(tags={"engine": r.get("engine") or "none", "mode": mode})
                if r.get("error"):
                    self.page_errors.inc(tags={"mode": mode})

        if stream:
            async def lines():
                results = []
                try:
                    for next_done in asyncio.as_completed(tasks, timeout=limit):
                        row = answer_rows([await next_done], image)[0]
                        results.append(row)
                        yield json.dumps(row, ensure_ascii=False) + "\n"
                except asyncio.TimeoutError:  # the pages so far are sent; the last line says what happened
                    yield json.dumps({"error": f"timeout: {len(results)} of {len(tasks)} pages answered within {limit:g} s; "
                                               "ask for the rest with pages=, or allow more time", "status": 504}) + "\n"
                finally:
                    for t in tasks:
                        t.cancel()
                    done_with(results)

            return StreamingResponse(lines(), media_type="application/x-ndjson")
        try:
            results = await asyncio.wait_for(asyncio.gather(*tasks), limit)
        except asyncio.TimeoutError:
            done_with([])
            what = f"timeout_s = {limit:g} s" if timeout_s is not None else f"serve.request_timeout_s = {limit:g} s"
            raise UploadError(504, f"not answered within {what}: ask for fewer pages (pages=1-3), allow more time, "
                                   "or use stream=true to get pages as they finish") from None
        answer = answer_rows(results, image)
        done_with(answer)
        return {"source": doc["source"], "doc_id": doc["doc_id"], "page_count": doc["page_count"], "mode": mode,
                "warnings": doc.get("warnings") or [], "pages": answer}

    def _request_config(self, mode: str | None, dpi: int | None, text_layer: str | None) -> tuple[RunConfig, str]:
        mode = mode or self.cfg.mode
        if mode not in MODES:
            raise UploadError(400, f"mode={mode!r}: use one of {', '.join(MODES)}")
        if mode != "paddle" and self.vlm is None:
            raise UploadError(400, f"mode={mode}: this server has no VLM deployment; start it with --mode {mode} "
                                   "(or serve.vlm_enabled: true), or ask for mode=paddle")
        update: dict = {"mode": mode}
        if dpi is not None:
            if not 50 <= dpi <= 600:
                raise UploadError(400, f"dpi={dpi}: use 50 to 600 (the batch default is {self.cfg.render.dpi})")
            update["render"] = self.cfg.render.model_copy(update={"dpi": dpi})
        if text_layer is not None:
            if text_layer not in ("auto", "off", "force"):
                raise UploadError(400, f"text_layer={text_layer!r}: use auto, off or force")
            update["text_layer"] = self.cfg.text_layer.model_copy(update={"mode": text_layer})
        return self.cfg.model_copy(update=update), mode

    async def _body(self, request: Request) -> tuple[bytes, str | None]:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit():
            check_size(int(declared) if int(declared) > 0 else 1, self.cfg)  # refuse before reading a huge body
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("multipart/form-data"):
            form = await request.form()
            part = form.get("file")
            if part is None or isinstance(part, str):
                raise UploadError(400, "no file in the form: send it as the field `file` (curl -F file=@scan.pdf ...)")
            data, name = await part.read(), part.filename
        else:
            data, name = await request.body(), request.headers.get("x-filename")
        check_size(len(data), self.cfg)
        return data, name

    async def _page(self, row: dict, cfg: RunConfig, mode: str, image: bool) -> dict:
        """One page through the job's stages: prepare, then its engine (and escalation in hybrid mode)."""
        self._in_flight += 1
        self.in_flight.set(self._in_flight)
        try:
            page = await asyncio.to_thread(prepare_page, row, cfg)
            shown = preview(page) if image else None
            if page["error"] is None and page["engine"] == "":
                page = await self._read(page, cfg, mode)
            page["preview"] = shown
            return page
        finally:
            self._in_flight -= 1
            self.in_flight.set(self._in_flight)

    async def _read(self, page: dict, cfg: RunConfig, mode: str) -> dict:
        if mode == "vlm" or (mode == "hybrid" and page["route"] in cfg.hybrid.vlm_routes):
            return await self.vlm.read.remote(page)
        read = await self.paddle.read.remote(page)
        escalate = mode == "hybrid" and cfg.hybrid.escalate
        if escalate and read["error"] is None and bool(needs_vlm(pd.DataFrame([read]), True, cfg.vlm.escalate_below)[0]):
            read["image"], paddle_text = page["image"], read["text"]  # PaddleOCR's stage dropped the pixels
            read = await self.vlm.read.remote(read)
            read["paddle_text"] = paddle_text
        return read


def build_app(config: RunConfig, browse: str | None = None):
    """The bound Serve application for a config: Ingress → PaddleReader (+ VlmReader when the mode needs it)."""
    data = config.model_dump()
    s = config.serve
    vlm_on = s.vlm_enabled if s.vlm_enabled is not None else config.mode in ("vlm", "hybrid")
    paddle = PaddleReader.options(**paddle_options(config)).bind(data)
    vlm = VlmReader.options(**vlm_options(config)).bind(data) if vlm_on else None
    a = s.ingress
    ingress = Ingress.options(
        autoscaling_config={"min_replicas": a.min_replicas, "max_replicas": a.max_replicas,
                            "target_ongoing_requests": a.target_ongoing_requests},
        max_ongoing_requests=max(64, 4 * int(a.target_ongoing_requests)),
        ray_actor_options={"num_cpus": 0},
    )
    return ingress.bind(data, paddle, vlm, browse)


def app_builder(args: dict):
    """`serve run` / `serve deploy` entry (import_path: pipeline.serve.app:app_builder): args `config` (a YAML
    path), `mode`, `set` (a mapping of dotted keys, as `--set`), `browse` (an OUT_DIR)."""
    overrides = dict(args.get("set") or {})
    if args.get("mode"):
        overrides["mode"] = args["mode"]
    return build_app(load_config(args.get("config"), overrides), args.get("browse"))


__all__ = ["build_app", "app_builder", "answer_rows", "api"]
