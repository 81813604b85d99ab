"""Where a page is served online: Ray Serve deployments around the batch job's engines.

uploads.py: what a request may send, and how it becomes page rows (pure functions);
deployments.py: PaddleReader (pages of concurrent requests in one call) and VlmReader (vLLM, many requests in flight);
batching.py: how PaddleReader gathers those pages (a batch formed when a call is free);
app.py: the FastAPI ingress (/v1/ocr, /v1/info, /healthz, the review page) and `build_app`;
review.html: the page people look at.
"""
