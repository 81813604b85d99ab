"""Where a page is served online: Ray Serve deployments around the batch job's engines.

uploads.py: what a request may send, and how it becomes page rows (pure functions);
deployments.py: PaddleReader (@serve.batch across requests) and VlmReader (vLLM, many requests in flight);
app.py: the FastAPI ingress (/v1/ocr, /v1/info, /healthz, the review page) and `build_app`;
review.html: the page people look at.
"""
