"""Dynamic batching: concurrent requests decoded as one batch.

One decoding thread serves every model (on a CPU, torch already uses all cores for one batch;
two batches at once would only compete). Its loop takes the oldest waiting request, gathers
whatever else arrives within ``wait`` seconds (and everything that queued while the previous
batch was decoding), up to ``max_lines`` lines, groups the requests by their batch key (those
that can share a decoding pass), and decodes each group's lines together. Under load the queue
fills while a batch runs, so batches grow with the load and so does throughput (TensorFlow
Serving's and Triton's dynamic batchers work the same way). Past ``max_queued`` waiting lines a
request is refused at once (:class:`Busy`) instead of waiting without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: ``work(group)``: a group is ``[(plan, items), ...]`` with one batch key; it returns each
#: job's results, in order.
Work = Callable[[list[tuple[Any, list[Any]]]], list[list[Any]]]


class Busy(Exception):
    """Too many lines are waiting already (HTTP 503: retry later)."""


@dataclass
class Job:
    plan: Any
    items: list[Any]
    future: asyncio.Future[list[Any]]


class Batcher:
    """Gathers :class:`Job` s and runs ``work`` on groups of them (``key(plan)`` groups)."""

    def __init__(self, work: Work, key: Callable[[Any], Hashable], wait_s: float,
                 max_lines: int, max_queued: int):
        self.work, self.key = work, key
        self.wait_s, self.max_lines, self.max_queued = wait_s, max_lines, max_queued
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.queued = 0                  # lines waiting in the queue
        self.carry: Job | None = None    # a job that did not fit the last batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqattn-decode")
        self.task: asyncio.Task[None] | None = None
        self.batches = 0                 # decoded groups and their lines, for /health
        self.lines = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())
        self.task.add_done_callback(self._ended)

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    async def stop(self) -> None:
        """After the server drained its requests: stop the loop and the decoding thread."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown)

    async def submit(self, plan: Any, items: list[Any]) -> list[Any]:
        """The results of ``items`` under ``plan``, once their batch is decoded."""
        if not items:
            return []
        if not self.alive:
            raise Busy("the decoding loop has stopped")
        if self.queued + len(items) > self.max_queued:
            raise Busy(f"{self.queued} lines are waiting already; retry later")
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.queued += len(items)
        await self.queue.put(Job(plan, items, future))
        return await future

    async def _next(self) -> Job:
        if self.carry is not None:
            job, self.carry = self.carry, None
            return job
        job = await self.queue.get()
        self.queued -= len(job.items)
        return job

    def _take_nowait(self) -> Job | None:
        try:
            job = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        self.queued -= len(job.items)
        return job

    async def _gather(self) -> list[Job]:
        """The next batch: the oldest job, then what arrives within ``wait_s``, up to
        ``max_lines`` lines (a job that would pass it waits for the next batch)."""
        loop = asyncio.get_running_loop()
        jobs = [await self._next()]
        count = len(jobs[0].items)
        deadline = loop.time() + self.wait_s
        while count < self.max_lines:
            job = self._take_nowait()
            if job is None:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
                self.queued -= len(job.items)
            if count + len(job.items) > self.max_lines:
                self.carry = job
                break
            jobs.append(job)
            count += len(job.items)
        return jobs

    async def _loop(self) -> None:
        while True:
            jobs = await self._gather()
            groups: dict[Hashable, list[Job]] = {}
            for job in jobs:
                if not job.future.done():   # cancelled: its client went away
                    groups.setdefault(self.key(job.plan), []).append(job)
            for group in groups.values():
                await self._run(group)

    async def _run(self, group: list[Job]) -> None:
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(
                self.executor, self.work, [(job.plan, job.items) for job in group])
        except Exception as e:  # noqa: BLE001  (handed to the requests that waited)
            if len(group) > 1:  # one request's bad input must not fail the others
                for job in group:
                    await self._run([job])
                return
            _finish(group[0], error=e)
            return
        self.batches += 1
        self.lines += sum(len(job.items) for job in group)
        for job, result in zip(group, results):
            _finish(job, result=result)

    def _ended(self, task: asyncio.Task[None]) -> None:
        """The loop ended (stopped, or died): nobody may wait for it any more."""
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("the decoding loop died: %s: %s", type(error).__name__, error)
        pending = [self.carry] if self.carry is not None else []
        while (job := self._take_nowait()) is not None:
            pending.append(job)
        for job in pending:
            _finish(job, error=Busy("the server is stopping"))


def _finish(job: Job, result: list[Any] | None = None, error: Exception | None = None) -> None:
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result or [])
