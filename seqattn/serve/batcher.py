"""Dynamic batching: concurrent requests decoded as one batch.

One decoding thread serves every model (on a CPU, torch already uses all cores for one batch;
two batches at once would only compete). Its loop takes the oldest waiting request, gathers
whatever else arrives within ``wait`` seconds (and everything that queued while the previous
batch was decoding), up to ``max_lines`` lines, groups the requests by plan, and decodes each
group's lines together. Under load the queue fills while a batch runs, so batches grow with the
load and so does throughput (TensorFlow Serving's and Triton's dynamic batchers work the same
way).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Job:
    plan: Any
    items: list[Any]
    future: asyncio.Future[list[Any]]
    queued: float = field(default_factory=time.monotonic)


class Batcher:
    """Gathers :class:`Job` s and runs ``work(plan, items) -> results`` on groups of them."""

    def __init__(self, work: Callable[[Any, list[Any]], list[Any]], wait_s: float,
                 max_lines: int):
        self.work, self.wait_s, self.max_lines = work, wait_s, max_lines
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqattn-decode")
        self.task: asyncio.Task[None] | None = None
        self.batches = 0     # decoded groups, for /health
        self.lines = 0

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """After the server drained its requests: stop the loop and the decoding thread."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, plan: Any, items: list[Any]) -> list[Any]:
        """The results of ``items`` under ``plan``, once their batch is decoded."""
        if not items:
            return []
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        await self.queue.put(Job(plan, items, future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = [await self.queue.get()]
            count = len(jobs[0].items)
            deadline = loop.time() + self.wait_s
            while count < self.max_lines:
                try:
                    job = self.queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self.queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                jobs.append(job)
                count += len(job.items)
            groups: dict[Any, list[Job]] = {}
            for job in jobs:
                if not job.future.cancelled():   # its client went away
                    groups.setdefault(job.plan, []).append(job)
            for plan, group in groups.items():
                await self._run(loop, plan, group)

    async def _run(self, loop: asyncio.AbstractEventLoop, plan: Any, group: list[Job]) -> None:
        items = [item for job in group for item in job.items]
        try:
            results = await loop.run_in_executor(self.executor, self.work, plan, items)
        except Exception as e:  # noqa: BLE001  (each waiting request gets the error)
            for job in group:
                if not job.future.done():
                    job.future.set_exception(e)
            return
        self.batches += 1
        self.lines += len(items)
        start = 0
        for job in group:
            if not job.future.done():
                job.future.set_result(results[start:start + len(job.items)])
            start += len(job.items)
