"""How busy Serve keeps the PaddleOCR replicas at a given concurrency, with an engine that only sleeps.

    python cluster/gpu-bench/routesim.py                 # Serve's default router
    ROUTER=1 python cluster/gpu-bench/routesim.py        # pipeline/serve/routing.py's least-loaded router

Runs on any machine (no GPU, no models): real Ray Serve on a local Ray, `R` replicas (10) that form their
batches as PaddleReader does (pipeline/serve/batching.py, up to 8 pages) and sleep `A + B x pages` seconds a call
(0.24 + 0.47: fitted to the H100's calls, ~4.0 s for the pool's 8 pages and ~1.3 s for Serve's ~2.2 at
concurrency 32, cluster/gpu-bench/SERVE.md), behind 4 front replicas that hold each
page `D` seconds (0.2: the ingress's render and classify), loaded with `N` pages (400) at concurrency `C` (32),
after 64 to warm up. Prints one JSON line: pages a second, each replica's busy share and pages, pages per call.
`MAXQ`: the replicas' max_ongoing_requests (32, as gpu.yaml's PaddleReader).
"""

import asyncio
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import ray  # noqa: E402
from ray import serve  # noqa: E402

from pipeline.serve.batching import PageBatcher  # noqa: E402

A, B = float(os.environ.get("A", 0.24)), float(os.environ.get("B", 0.47))


@serve.deployment
class Reader:
    def __init__(self, max_batch: int):
        self.busy, self.pages, self.calls = 0.0, 0, 0
        self.batch = PageBatcher(self._read, max_batch, 0.0)

    async def _read(self, items):
        start = time.perf_counter()
        await asyncio.to_thread(time.sleep, A + B * len(items))
        self.busy += time.perf_counter() - start
        self.pages += len(items)
        self.calls += 1
        return items

    async def read(self, x):
        return await self.batch(x)

    def stats(self) -> dict:
        out = {"busy": self.busy, "pages": self.pages, "calls": self.calls}
        self.busy, self.pages, self.calls = 0.0, 0, 0
        return out


@serve.deployment
class Front:
    def __init__(self, reader, delay: float):
        self.reader, self.delay = reader, delay

    async def __call__(self, x):
        await asyncio.sleep(self.delay)
        return await self.reader.read.remote(x)


async def load(handle, concurrency: int, n: int) -> float:
    todo = list(range(n))

    async def client():
        while todo:
            await handle.remote(todo.pop())

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - start


def main() -> None:
    replicas, maxq, c = int(os.environ.get("R", 10)), int(os.environ.get("MAXQ", 32)), int(os.environ.get("C", 32))
    ray.init(num_cpus=16, include_dashboard=False, log_to_driver=False)
    extra = {}
    if os.environ.get("ROUTER"):
        from pipeline.serve.routing import ROUTER

        extra["request_router_config"] = {"request_router_class": ROUTER}
    reader = Reader.options(num_replicas=replicas, max_ongoing_requests=maxq, ray_actor_options={"num_cpus": 0}, **extra).bind(8)
    front = Front.options(num_replicas=4, max_ongoing_requests=64, ray_actor_options={"num_cpus": 0}).bind(
        reader, float(os.environ.get("D", 0.2)))
    handle = serve.run(front, name="routesim", route_prefix=None)
    asyncio.run(load(handle, c, 64))
    actors = [a for a in ray.util.list_named_actors(all_namespaces=True) if "Reader" in a["name"]]
    replicas_ = [ray.get_actor(a["name"], namespace=a["namespace"]) for a in actors]

    def stats(actor) -> dict:  # the replica's own object, through Ray's actor call hook
        return ray.get(actor.__ray_call__.remote(lambda self: self._replica_impl._user_callable_wrapper._callable.stats()))

    for r in replicas_:
        stats(r)
    n = int(os.environ.get("N", 400))
    wall = asyncio.run(load(handle, c, n))
    st = [stats(r) for r in replicas_]
    busy = [s["busy"] / wall for s in st]
    print(json.dumps({"router": "least_loaded" if extra else "power_of_two", "replicas": replicas, "max_ongoing": maxq,
                      "concurrency": c, "pages_per_s": round(n / wall, 2), "busy_mean": round(sum(busy) / len(busy), 3),
                      "busy": [round(b, 2) for b in busy], "pages": [s["pages"] for s in st],
                      "pages_per_call": round(sum(s["pages"] for s in st) / max(1, sum(s["calls"] for s in st)), 2)}))
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
