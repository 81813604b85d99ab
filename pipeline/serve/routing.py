"""How the ingress picks a PaddleOCR replica for a page: the least loaded of all of them.

Ray Serve's default router ("power of two choices") asks two replicas at random and sends the page to the one
with fewer requests. With 10 replicas and ~30 pages in flight (concurrency 32), a replica that just finished
its call is one of the two asked only 1 time in 5, so it often waits with nothing to read while others queue
pages. `cluster/gpu-bench/routesim.py` (real Serve on a local Ray, an engine that sleeps as the H100's calls
took: 0.24 s + 0.47 s a page; 4 ingress replicas holding each page 0.2 s; 10 replicas; concurrency 32) read
14.3-14.5 pages a second with the replicas busy 86-88% of the time, as the H100 did (841-854 a minute, 0.70-0.74 ×
the pool); with this router 14.8-15.0, busy 90-91%. A PaddleOCR replica reads every page that waited in one
call (pipeline/serve/batching.py), so an idle one should get the next page. This router ranks every replica by
the queue lengths Serve already keeps (its cache, refreshed from the replicas' own answers) and sends the page
to the shortest queue; ties are broken at random. On an H100 (2026-12-07, cluster/gpu-bench/SERVE.md) it read 852 pages a minute at
concurrency 32, within what Serve's default router read on other H100s (841-854): no loss, and no gain that shows.
"""

from __future__ import annotations

import random
from typing import List, Optional

from ray.serve.request_router import FIFOMixin, LocalityMixin, PendingRequest, RequestRouter, RunningReplica


class LeastLoadedRouter(FIFOMixin, LocalityMixin, RequestRouter):
    """Every available replica is a candidate (Serve's default asks two at random)."""

    async def choose_replicas(self, candidate_replicas: List[RunningReplica],
                              pending_request: Optional[PendingRequest] = None) -> List[List[RunningReplica]]:
        ids = list(self.apply_locality_routing(pending_request=pending_request))
        random.shuffle(ids)  # among equal queues, no replica is always first
        return [[self._replicas[i] for i in ids if i in self._replicas]] if ids else []


ROUTER = f"{__name__}:LeastLoadedRouter"
