"""Micro-batching: label calls of many concurrent problems become one model forward.

Callers `await submit(item)`; items that arrive while a batch runs (or in the same event-loop
tick) go into the next batch. The model runs in a worker thread, so the event loop keeps reading
streams while the predictor computes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class MicroBatcher:
    """Runs `fn(list of items) -> list of results` on batches of at most `max_batch` items."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]], max_batch: int = 64) -> None:
        self.fn = fn
        self.max_batch = max_batch
        self._queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # forwards run, for cost reports

    async def submit(self, item: Any) -> Any:
        """The result for `item`, computed in a batch with whatever else is waiting."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the other problems of this tick enqueue too
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch:]
            try:
                results = await asyncio.to_thread(self.fn, [item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # a cancelled caller no longer waits
                    future.set_result(result)
