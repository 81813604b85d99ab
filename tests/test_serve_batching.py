"""PaddleReader's batching (pipeline/serve/batching.py), on a plain asyncio loop: a free reader forms its batch
from every item that waited while it was busy. The reads are held open by the test, so the order is exact."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.serve.batching import PageBatcher


class HeldReader:
    """A read that records its batch and returns only when the test lets it go."""

    def __init__(self, fail_on=None, short=False):
        self.calls: list[list] = []
        self.running = 0
        self.most_running = 0
        self.go = asyncio.Event()
        self.fail_on, self.short = fail_on, short

    async def __call__(self, items: list) -> list:
        self.calls.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.go.wait()
        finally:
            self.running -= 1
        if self.fail_on in items:
            raise ValueError(f"cannot read {self.fail_on}")
        return [f"read {i}" for i in items][: -1 if self.short else None]


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_pages_that_wait_while_a_call_runs_are_read_together_in_the_next_call():
    async def main():
        read, queued = HeldReader(), []
        batcher = PageBatcher(read, max_batch_size=4, wait_s=0.0, on_queue=queued.append)
        first = asyncio.ensure_future(batcher(0))
        await settle()
        assert read.calls == [[0]]  # a free reader takes the first page at once
        rest = [asyncio.ensure_future(batcher(i)) for i in range(1, 7)]
        await settle()
        assert read.calls == [[0]] and batcher.queued() == 6  # six wait while the call runs
        read.go.set()
        answers = await asyncio.gather(first, *rest)
        # then a call of four (the cap) and one of the two left: not six calls of one
        assert read.calls == [[0], [1, 2, 3, 4], [5, 6]]
        assert answers == [f"read {i}" for i in range(7)]
        assert queued[-1] == 0 and max(queued) == 6
    run(main())


def test_two_readers_read_two_batches_at_once_and_never_more():
    async def main():
        read = HeldReader()
        batcher = PageBatcher(read, max_batch_size=3, wait_s=0.0, readers=2)
        tasks = [asyncio.ensure_future(batcher(i)) for i in range(10)]
        await settle()
        assert read.running == 2 and read.calls == [[0, 1, 2], [3, 4, 5]]
        read.go.set()
        assert await asyncio.gather(*tasks) == [f"read {i}" for i in range(10)]
        assert read.most_running == 2 and sorted(x for c in read.calls for x in c) == list(range(10))
    run(main())


def test_a_lone_page_waits_wait_s_for_company_and_no_longer():
    async def main():
        read = HeldReader()
        read.go.set()
        batcher = PageBatcher(read, max_batch_size=8, wait_s=1.0)
        first = asyncio.ensure_future(batcher("a"))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(batcher("b"))  # within the wait: same call
        assert await asyncio.gather(first, second) == ["read a", "read b"] and read.calls == [["a", "b"]]
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await batcher("c") == "read c"
        assert 0.95 < loop.time() - started < 10 and read.calls[-1] == ["c"]
    run(main())


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_is_read():
    async def main():
        read = HeldReader(fail_on=2)
        batcher = PageBatcher(read, max_batch_size=8)
        blocker = asyncio.ensure_future(batcher(0))
        await settle()
        failing = [asyncio.ensure_future(batcher(i)) for i in (1, 2, 3)]
        await settle()
        read.go.set()
        assert await blocker == "read 0"
        for t in failing:
            with pytest.raises(ValueError, match="cannot read 2"):
                await t
        assert await batcher(4) == "read 4"  # the reader went on
    run(main())


def test_a_caller_that_gave_up_is_not_read_and_a_short_answer_is_an_error():
    async def main():
        read = HeldReader()
        batcher = PageBatcher(read, max_batch_size=8)
        blocker = asyncio.ensure_future(batcher(0))
        await settle()
        gone, kept = asyncio.ensure_future(batcher(1)), asyncio.ensure_future(batcher(2))
        await settle()
        gone.cancel()  # its request timed out or its client left while it waited
        await settle()
        read.go.set()
        assert await asyncio.gather(blocker, kept) == ["read 0", "read 2"]
        assert read.calls == [[0], [2]]

        short = PageBatcher(HeldReader(short=True), max_batch_size=8)
        short.read.go.set()
        with pytest.raises(RuntimeError, match="0 results for 1 items"):
            await short(5)
    run(main())


def test_sizes_below_one_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        PageBatcher(HeldReader(), max_batch_size=0)
