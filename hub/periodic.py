"""Periodic tasks, run by one replica at a time through a lease row in the database.

A :class:`PeriodicTask` is a name, an interval and a coroutine function (one *round*).
:class:`PeriodicRunner` runs a list of them in one process. For an *exclusive* task (the
default) every replica's runner competes for the task's row in ``periodic_leases``:

- taking or renewing the lease is one conditional ``UPDATE``: ``SET holder = me, expires_at =
  now + lease WHERE name = task AND (holder = me OR expires_at <= now)``. The database
  serialises concurrent updates of one row (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the
  second ``UPDATE`` waits for the first and re-checks its ``WHERE``), so at most one replica
  gets the row; the first take of a task inserts it (``ON CONFLICT DO NOTHING``);
- only the holder runs rounds, when ``last_run_at + interval`` has passed (``last_run_at``
  is in the row, so a replica that takes over keeps the cadence); while a round runs the
  lease is renewed every third of its length;
- every replica tries again every third of the lease; a holder that dies stops renewing
  and another replica takes the task over once ``expires_at`` has passed (at most
  ``lease_seconds`` plus a third of it later); a runner that stops releases its leases, so
  another replica takes over at its next try.

A lease keeps replicas from *running* the same round at once; it is not what makes a round
correct. A holder that stalls longer than its lease (a frozen VM) may still be in a round
when another replica starts one, and a CLI command (``sportello suap notify``) runs a round
without any lease. So every round also moves its cursor with a compare-and-set: it writes
its results only if the cursor is still the one it read (see ``SuapService.notify`` and
``ReceiptSync.sync``).

A task with ``exclusive=False`` runs in every replica, without a lease: work on the
replica's own state, such as its copy of the SPID IdP registry.

Lease times come from the machine's clock (UTC), not from the app's :class:`Clock`:
replicas' clocks must agree to well within a lease (NTP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import reading
from .schema import UTCDateTime, periodic_leases

__all__ = [
    "Lease",
    "PeriodicRunner",
    "PeriodicTask",
    "holder_id",
    "leases",
    "release",
    "take",
]

log = logging.getLogger("sportello.periodic")
L = periodic_leases


@dataclass(frozen=True)
class PeriodicTask:
    """``run`` is awaited once per round, every ``interval`` seconds (by the lease holder)."""

    name: str
    interval: float
    run: Callable[[], Awaitable[Any]]
    exclusive: bool = True


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    last_run_at: datetime | None


def holder_id() -> str:
    """Who holds a lease: host, process id and a random part (unique per runner)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


async def take(
    engine: AsyncEngine, name: str, holder: str, *, now: datetime, lease_seconds: float
) -> tuple[bool, datetime | None]:
    """Take or renew the lease of ``name`` for ``holder`` until ``now + lease_seconds``.

    Returns whether ``holder`` holds it now, and when the task's last round ended."""
    until = now + timedelta(seconds=lease_seconds)
    async with engine.begin() as conn:
        result = await conn.execute(
            update(L)
            .where(L.c.name == name, or_(L.c.holder == holder, L.c.expires_at <= now))
            .values(
                holder=holder,
                expires_at=until,
                acquired_at=case(
                    (L.c.holder == holder, L.c.acquired_at), else_=literal(now, UTCDateTime())
                ),
            )
        )
        if result.rowcount == 1:
            last = await conn.execute(select(L.c.last_run_at).where(L.c.name == name))
            return True, last.scalar_one()
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        inserted = await conn.execute(
            dialect.insert(L)
            .values(name=name, holder=holder, acquired_at=now, expires_at=until, last_run_at=None)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return inserted.rowcount == 1, None


async def finished(engine: AsyncEngine, name: str, holder: str, *, at: datetime) -> bool:
    """Record the end of a round (only while ``holder`` still holds the lease)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(L).where(L.c.name == name, L.c.holder == holder).values(last_run_at=at)
        )
        return bool(result.rowcount == 1)


async def release(engine: AsyncEngine, name: str, holder: str, *, now: datetime) -> None:
    """Give the lease up: another replica may take it at once."""
    async with engine.begin() as conn:
        await conn.execute(
            update(L).where(L.c.name == name, L.c.holder == holder).values(expires_at=now)
        )


async def leases(engine: AsyncEngine) -> list[Lease]:
    """Every task's lease row (holder, expiry, last round), by name."""
    async with reading(engine) as conn:
        rows = await conn.execute(select(L).order_by(L.c.name))
        return [Lease(r.name, r.holder, r.acquired_at, r.expires_at, r.last_run_at) for r in rows]


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


class PeriodicRunner:
    """Runs ``tasks`` until ``stop`` is set; exclusive ones only while holding their lease."""

    def __init__(
        self,
        engine: AsyncEngine,
        tasks: Sequence[PeriodicTask],
        *,
        lease_seconds: float = 30.0,
        holder: str | None = None,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"periodic task names must be unique: {names}")
        self.engine = engine
        self.tasks = list(tasks)
        self.lease_seconds = lease_seconds
        self.holder = holder or holder_id()
        self._now = now
        #: rounds this runner ran, by task name (for logs and tests)
        self.rounds: dict[str, int] = {t.name: 0 for t in tasks}
        #: the failure of each task's last round, while it keeps failing the same way
        self.failures: dict[str, str] = {}
        self._held: set[str] = set()

    @property
    def tick(self) -> float:
        """How often a lease is renewed (holder) or tried (the other replicas)."""
        return self.lease_seconds / 3

    def holds(self, name: str) -> bool:
        return name in self._held

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.gather(*(self._loop(t, stop) for t in self.tasks))
        finally:
            for name in sorted(self._held):
                try:
                    await release(self.engine, name, self.holder, now=self._now())
                except Exception:
                    log.warning("periodic: lease %s not released (it expires by itself)", name)
            self._held.clear()

    async def _take(self, task: PeriodicTask) -> tuple[bool, datetime | None]:
        held, last = await take(
            self.engine,
            task.name,
            self.holder,
            now=self._now(),
            lease_seconds=self.lease_seconds,
        )
        if held and task.name not in self._held:
            self._held.add(task.name)
            log.info("periodic: lease taken", extra={"task": task.name, "holder": self.holder})
        elif not held and task.name in self._held:
            self._held.discard(task.name)
            log.warning("periodic: lease lost", extra={"task": task.name, "holder": self.holder})
        return held, last

    async def _loop(self, task: PeriodicTask, stop: asyncio.Event) -> None:
        last_local: datetime | None = None  # non-exclusive tasks keep their cadence here
        while not stop.is_set():
            wait = self.tick if task.exclusive else task.interval
            try:
                if task.exclusive:
                    held, last = await self._take(task)
                else:
                    held, last = True, last_local
                if held:
                    due_in = 0.0
                    if last is not None:
                        due_in = (last - self._now()).total_seconds() + task.interval
                    if due_in <= 0:
                        await self._round(task)
                        last_local = self._now()
                        due_in = task.interval
                    wait = min(wait, due_in)
            except Exception:  # the database is down: try again at the next tick
                log.exception("periodic: lease of %s unavailable", task.name)
            await _sleep(stop, wait)

    async def _round(self, task: PeriodicTask) -> None:
        renewer = asyncio.create_task(self._renew(task)) if task.exclusive else None
        try:
            await task.run()
        except Exception as exc:
            # Once per distinct failure (an unreadable adapter file fails every round the
            # same way): not a traceback every poll. Files and sockets need no traceback.
            failure = f"{type(exc).__name__}: {exc}"
            if self.failures.get(task.name) != failure:
                self.failures[task.name] = failure
                log.error(
                    "periodic: round of %s failed: %s (said once until it changes)",
                    task.name,
                    failure,
                    exc_info=not isinstance(exc, OSError),
                    extra={"task": task.name},
                )
            else:
                log.debug("periodic: round of %s failed again: %s", task.name, failure)
        else:
            if self.failures.pop(task.name, None) is not None:
                log.info("periodic: round of %s works again", task.name, extra={"task": task.name})
        finally:
            self.rounds[task.name] += 1
            if renewer is not None:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer
                await finished(self.engine, task.name, self.holder, at=self._now())

    async def _renew(self, task: PeriodicTask) -> None:
        """Keep the lease while a round runs (a round may be longer than the lease)."""
        while True:
            await asyncio.sleep(self.tick)
            try:
                held, _ = await self._take(task)
            except Exception:
                log.warning("periodic: lease of %s not renewed (database error)", task.name)
                continue
            if not held:  # another replica took it: this round's cursor write will lose
                return
