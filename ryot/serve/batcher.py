"""Dynamic batching: requests that arrive within max_wait of each other decode as one batch.

One worker task takes the first waiting request, then keeps taking requests until the batch
holds max_batch rows or max_wait has passed since it started, and decodes the batch on a single
decode thread. The event loop stays free meanwhile, so requests keep queueing during a decode and
the next batch fills by itself under load. A request never splits across batches, and a batch
that fails is decoded again one request at a time, so a failure stays its own request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ryot.serve.generate import BatchResult, Row


@dataclass
class Job:
    rows: list[Row]
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


@dataclass
class JobResult:
    batch: BatchResult
    first: int  # this job's rows are batch.rows[first : first + len(job.rows)]
    batch_rows: int
    queue_s: float


class Batcher:
    """Queue of jobs and the worker that decodes them in batches of up to max_batch rows."""

    def __init__(
        self,
        decode: Callable[[list[Row]], BatchResult],
        max_batch: int,
        max_wait_s: float,
        on_queue_depth: Callable[[int], None] = lambda depth: None,
        on_batch: Callable[[int, BatchResult], None] = lambda rows, result: None,
    ):
        self.decode = decode
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_queue_depth = on_queue_depth
        self.on_batch = on_batch
        self.draining = False  # set on shutdown: stop waiting for company, finish what is queued
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._carry: Job | None = None
        # One decode thread: the model is not shared between concurrent decodes, and torch
        # already spreads one decode over every core.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ryot-decode")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._work(), name="ryot-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self._queue.qsize() + (self._carry is not None)

    async def submit(self, rows: list[Row]) -> JobResult:
        """Queue `rows` (at most max_batch) and wait for their results."""
        assert 0 < len(rows) <= self.max_batch, "a request's rows must fit in one batch"
        job = Job(rows, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        self.on_queue_depth(self.depth)
        return await job.future

    async def _next_batch(self) -> list[Job]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], len(first.rows)
        deadline = time.perf_counter() + self.max_wait_s
        while rows < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.perf_counter()
                if left <= 0 or self.draining:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), timeout=left)
                except asyncio.TimeoutError:
                    break
            if rows + len(job.rows) > self.max_batch:
                self._carry = job  # first in line for the next batch
                break
            batch.append(job)
            rows += len(job.rows)
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            self.on_queue_depth(self.depth)
            rows = [row for job in batch for row in job.rows]
            started = time.perf_counter()
            try:
                result = await loop.run_in_executor(self._executor, self.decode, rows)
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0], exc)
                    continue
                # One request must never fail another's: decode each again on its own, so
                # only the request whose rows fail gets the error (answered 500).
                for job in batch:
                    await self._decode_alone(job, started)
                continue
            self.on_batch(len(rows), result)
            first = 0
            for job in batch:
                _settle(job, JobResult(result, first, len(rows), started - job.queued_at))
                first += len(job.rows)

    async def _decode_alone(self, job: Job, started: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self.decode, job.rows)
        except Exception as exc:
            _settle(job, exc)
            return
        self.on_batch(len(job.rows), result)
        _settle(job, JobResult(result, 0, len(job.rows), started - job.queued_at))


def _settle(job: Job, outcome: JobResult | Exception) -> None:
    if job.future.done():  # a client that went away has cancelled its future
        return
    if isinstance(outcome, Exception):
        job.future.set_exception(outcome)
    else:
        job.future.set_result(outcome)
