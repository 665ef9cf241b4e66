"""Group commits: many concurrent callers' small writes, one transaction.

SQLite has one writer and every transaction costs a lock, a thread hop and a commit; so
does a round trip to PostgreSQL. When dozens of outbox handlers each want one row changed,
``Batcher`` collects what arrives while the previous batch is being written, writes it all
with set-based statements in one transaction, and wakes each caller only after the commit.
A caller therefore still knows its change is durable before it goes on (e.g. before it
calls a platform that has no idempotency key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")  # noqa: E741 - item
R = TypeVar("R")


class BatchError(RuntimeError):
    """``flush`` broke its contract (one result per item, in order): nothing can be answered."""


class Batcher(Generic[I, R]):
    def __init__(
        self, flush: Callable[[Sequence[I]], Awaitable[Sequence[R]]], *, max_items: int = 500
    ) -> None:
        self._flush = flush
        self._max = max_items
        self._pending: list[tuple[I, asyncio.Future[R]]] = []
        self._running: asyncio.Task[None] | None = None

    async def __call__(self, item: I) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let every caller ready in this tick join the batch
        while self._pending:
            batch, self._pending = self._pending[: self._max], self._pending[self._max :]
            items = [item for item, _ in batch]
            try:
                results = list(await self._flush(items))
                if len(results) != len(batch):
                    raise BatchError(
                        f"{getattr(self._flush, '__qualname__', self._flush)!s} returned "
                        f"{len(results)} results for {len(batch)} items"
                    )
            except asyncio.CancelledError:
                # Shutting down: no caller may wait for a batch that will never be written.
                stopped = BatchError("the batch writer was cancelled: outcome unknown")
                for _, future in batch + self._pending:
                    if not future.done():
                        future.set_exception(stopped)
                self._pending = []
                raise
            except BaseException as exc:
                # Every caller of this batch gets the error (none is left waiting); the
                # batches after it are still written.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
