"""Pages of concurrent requests read together, the batch formed when a reader is free to read it.

Ray Serve's `@serve.batch` (Ray 2.60) closes a batch `batch_wait_timeout_s` after its first request
arrives, and only then waits for one of its `max_concurrent_batches` slots. Under load that makes
every batch as small as what arrived in that short wait, and the rest of the queue waits behind it
as batches of their own. On an H100 with ten PaddleOCR replicas at concurrency 32, the calls held
1.03 pages on average (cluster/gpu-bench/SERVE.md). Here a reader that is free forms its batch from everything
that waited while it was busy, up to `max_batch_size`. It waits up to `wait_s` for more only when
the queue holds less than that.

`PageBatcher(read, max_batch_size, wait_s, readers)` is awaited once per item, and `read` gets
lists of items and returns one result per item, in order. A caller that gives up (a cancelled
request) is left out of the batch. An error in `read` goes to every caller of that batch.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Awaitable, Callable


class PageBatcher:
    def __init__(self, read: Callable[[list], Awaitable[list]], max_batch_size: int, wait_s: float = 0.0,
                 readers: int = 1, on_queue: Callable[[int], None] | None = None):
        if max_batch_size < 1 or readers < 1:
            raise ValueError(f"max_batch_size={max_batch_size}, readers={readers}: both must be at least 1")
        self.read, self.max_batch_size, self.wait_s, self.readers = read, max_batch_size, wait_s, readers
        self.on_queue = on_queue  # called with the number of items waiting, whenever it changes (a metric)
        self._waiting: collections.deque = collections.deque()
        self._arrived: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []

    def queued(self) -> int:
        return len(self._waiting)

    async def __call__(self, item: Any) -> Any:
        loop = asyncio.get_running_loop()
        if not self._tasks:  # the readers live on the loop of the first call (a replica's user-code loop)
            self._arrived = asyncio.Event()
            self._tasks = [loop.create_task(self._reader()) for _ in range(self.readers)]
        future = loop.create_future()
        self._waiting.append((item, future))
        self._queue_changed()
        self._arrived.set()
        return await future

    def _queue_changed(self) -> None:
        if self.on_queue is not None:
            self.on_queue(len(self._waiting))

    async def _next_batch(self) -> list:
        loop = asyncio.get_running_loop()
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = loop.time() + self.wait_s
        while len(self._waiting) < self.max_batch_size and (left := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                break
        batch = [self._waiting.popleft() for _ in range(min(self.max_batch_size, len(self._waiting)))]
        self._queue_changed()
        return [(item, f) for item, f in batch if not f.done()]  # callers that gave up are not read

    async def _reader(self) -> None:
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            try:
                results = await self.read([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"the batch reader returned {len(results)} results for {len(batch)} items")
            except Exception as e:  # every caller of this batch gets the error; the reader goes on
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
                continue
            for (_, f), result in zip(batch, results):
                if not f.done():
                    f.set_result(result)
