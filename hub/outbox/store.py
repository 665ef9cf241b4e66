"""Outbox rows: enqueue inside the business transaction, claim with a lease, settle.

Every function takes an ``AsyncConnection`` that is already inside a transaction, so the
caller decides what commits together: a business change and its outbox row always do.

A job may hold lock keys (``NewJob.lock``): the claim never takes it while another job of
one of its keys is running, or an earlier one (by id) is pending, due or not (waiting for
its next attempt). So the jobs of one key run one at a time, in the order they were
queued; a job that ended (done, failed, cancelled) blocks nothing.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..schema import (
    CANCELLED,
    DONE,
    FAILED,
    OPERATOR,
    PENDING,
    RUNNING,
    ledger,
    outbox,
    outbox_locks,
)

#: The longest lock key (the column's width).
LOCK_KEY_MAX = 200


@dataclass(frozen=True, slots=True)
class Job:
    """One outbox row as a worker sees it."""

    id: int
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    attempt: int
    max_attempts: int
    #: The job's lock key (the first when it holds several), or None.
    lock: str | None = None


@dataclass(frozen=True, slots=True)
class NewJob:
    tenant_id: str
    kind: str
    payload: dict[str, Any]
    idempotency_key: str | None = None
    max_attempts: int | None = None
    not_before: datetime | None = None
    #: A lock key, or several (a job that covers several keys, as one upload of many
    #: positions): the jobs of one key run one at a time, in the order they were queued.
    lock: str | Sequence[str] | None = None

    def lock_keys(self) -> tuple[str, ...]:
        keys = (self.lock,) if isinstance(self.lock, str) else tuple(self.lock or ())
        for key in keys:
            if not key or len(key) > LOCK_KEY_MAX:
                raise ValueError(f"an outbox lock key is 1 to {LOCK_KEY_MAX} characters")
        return tuple(dict.fromkeys(keys))


def new_idempotency_key() -> str:
    """The key made at enqueue time and sent, unchanged, on every attempt."""
    return uuid.uuid4().hex


def _insert_ignore(conn: AsyncConnection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(outbox).on_conflict_do_nothing(index_elements=["idempotency_key"])
    return sqlite.insert(outbox).on_conflict_do_nothing(index_elements=["idempotency_key"])


async def enqueue_many(
    conn: AsyncConnection, jobs: Sequence[NewJob], *, now: datetime, default_max_attempts: int
) -> list[str]:
    """Insert jobs; a job whose idempotency key already exists is not inserted again.

    Returns the idempotency keys, in order (made here when the caller gave none).
    """
    rows = []
    keys = []
    locks: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        key = job.idempotency_key or new_idempotency_key()
        keys.append(key)
        job_locks = job.lock_keys()
        if job_locks:
            locks[key] = job_locks
        rows.append(
            {
                "tenant_id": job.tenant_id,
                "kind": job.kind,
                "payload": json.dumps(job.payload, separators=(",", ":"), sort_keys=True),
                "idempotency_key": key,
                "status": PENDING,
                "attempts": 0,
                "max_attempts": job.max_attempts or default_max_attempts,
                "next_attempt_at": job.not_before or now,
                "created_at": now,
                "updated_at": now,
                "lock": job_locks[0] if job_locks else None,
            }
        )
    if rows and not locks:
        await conn.execute(_insert_ignore(conn), rows)
    elif rows:
        # the rows inserted now (a key already queued is the same job: its locks stay)
        stmt = _insert_ignore(conn).returning(outbox.c.id, outbox.c.idempotency_key)
        inserted = (await conn.execute(stmt, rows)).all()
        lock_rows = [
            {"lock_key": lock, "outbox_id": r.id}
            for r in inserted
            for lock in locks.get(r.idempotency_key, ())
        ]
        if lock_rows:
            await conn.execute(insert(outbox_locks), lock_rows)
    return keys


@functools.cache
def _lock_free() -> ColumnElement[bool]:
    """The row holds no lock, or none of its keys is held by a running job or by an
    earlier pending one (due or waiting for its next attempt). Built once: the expression
    has no parameters, and building its aliases and subquery cost every claim CPU."""
    mine = outbox_locks.alias("mine")
    other = outbox_locks.alias("other")
    blocker = outbox.alias("blocker")
    held = (
        select(1)
        .select_from(
            mine.join(other, other.c.lock_key == mine.c.lock_key).join(
                blocker, blocker.c.id == other.c.outbox_id
            )
        )
        .where(
            mine.c.outbox_id == outbox.c.id,
            blocker.c.id != outbox.c.id,
            or_(
                blocker.c.status == RUNNING,
                and_(blocker.c.status == PENDING, blocker.c.id < outbox.c.id),
            ),
        )
        .correlate(outbox)
    )
    return or_(outbox.c.lock.is_(None), ~held.exists())


async def claim(
    conn: AsyncConnection, *, worker: str, limit: int, now: datetime, lease: timedelta
) -> list[Job]:
    """Take up to ``limit`` due rows (pending, or running with an expired lease).

    On PostgreSQL the candidate rows are locked ``FOR UPDATE SKIP LOCKED`` so replicas never
    claim the same row; on SQLite the surrounding ``BEGIN IMMEDIATE`` serialises claims.
    A pending row with a lock key is taken only when no job of its keys is running and no
    earlier one is pending (:func:`_lock_free`). Two replicas claiming two jobs of one key
    at the same moment cannot both win: the later job is blocked by the earlier one in any
    snapshot (pending, or running once claimed), and it stops blocking only when it ends.
    A row whose lease expired already holds its keys: it is taken back whatever waits
    behind it (else an earlier job retried by an operator meanwhile would wait for it,
    and it for that job, for ever).
    """
    # Two index-friendly queries rather than one OR (which scans the table): rows whose
    # lease expired (a crashed worker) first, then pending rows that are due.
    # A worker never reclaims its own rows: they are still running in this process (its
    # heartbeat may just be late); a crashed worker's rows carry another worker's name.
    expired = and_(
        outbox.c.status == RUNNING,
        outbox.c.lease_expires_at < now,
        outbox.c.lease_owner != worker,
    )
    due = and_(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now, _lock_free())
    rows: list[Any] = []
    for predicate in (expired, due):
        if len(rows) >= limit:
            break
        rows.extend(await _claim_where(conn, predicate, worker, limit - len(rows), now, lease))
    jobs = [
        Job(
            id=r.id,
            tenant_id=r.tenant_id,
            kind=r.kind,
            payload=json.loads(r.payload),
            idempotency_key=r.idempotency_key,
            attempt=r.attempts,
            max_attempts=r.max_attempts,
            lock=r.lock,
        )
        for r in rows
    ]
    jobs.sort(key=lambda j: j.id)
    return jobs


async def _claim_where(
    conn: AsyncConnection,
    predicate: Any,
    worker: str,
    limit: int,
    now: datetime,
    lease: timedelta,
) -> list[Any]:
    candidates = select(outbox.c.id).where(predicate).order_by(outbox.c.next_attempt_at)
    candidates = candidates.limit(limit)
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    stmt = (
        update(outbox)
        .where(outbox.c.id.in_(candidates.scalar_subquery()))
        .values(
            status=RUNNING,
            lease_owner=worker,
            lease_expires_at=now + lease,
            attempts=outbox.c.attempts + 1,
            updated_at=now,
        )
        .returning(
            outbox.c.id,
            outbox.c.tenant_id,
            outbox.c.kind,
            outbox.c.payload,
            outbox.c.idempotency_key,
            outbox.c.attempts,
            outbox.c.max_attempts,
            outbox.c.lock,
        )
    )
    return list(await conn.execute(stmt))


async def extend_leases(
    conn: AsyncConnection, *, worker: str, ids: Iterable[int], until: datetime
) -> int:
    ids = list(ids)
    if not ids:
        return 0
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids), outbox.c.lease_owner == worker, outbox.c.status == RUNNING)
        .values(lease_expires_at=until)
    )
    return result.rowcount or 0


async def release(conn: AsyncConnection, *, worker: str, ids: Iterable[int], now: datetime) -> int:
    """Give back claimed rows that were never attempted (graceful shutdown)."""
    ids = list(ids)
    if not ids:
        return 0
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids), outbox.c.lease_owner == worker, outbox.c.status == RUNNING)
        .values(
            status=PENDING,
            lease_owner=None,
            lease_expires_at=None,
            attempts=outbox.c.attempts - 1,
            next_attempt_at=now,
            updated_at=now,
        )
    )
    return result.rowcount or 0


async def counts_by_status(conn: AsyncConnection, tenant_id: str | None = None) -> dict[str, int]:
    stmt = select(outbox.c.status, func.count()).group_by(outbox.c.status)
    if tenant_id is not None:
        stmt = stmt.where(outbox.c.tenant_id == tenant_id)
    rows = (await conn.execute(stmt)).all()
    return {status: int(n) for status, n in rows}


async def list_rows(
    conn: AsyncConnection,
    *,
    status: str | None = None,
    tenant_id: str | None = None,
    kind: str | None = None,
    limit: int = 50,
    after_id: int = 0,
) -> list[dict[str, Any]]:
    stmt = select(outbox).where(outbox.c.id > after_id).order_by(outbox.c.id).limit(limit)
    if status:
        stmt = stmt.where(outbox.c.status == status)
    if tenant_id:
        stmt = stmt.where(outbox.c.tenant_id == tenant_id)
    if kind:
        stmt = stmt.where(outbox.c.kind == kind)
    return [dict(r._mapping) for r in await conn.execute(stmt)]


async def inspect(conn: AsyncConnection, job_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(outbox).where(outbox.c.id == job_id))).first()
    if row is None:
        return None
    history = await conn.execute(
        select(ledger).where(ledger.c.outbox_id == job_id).order_by(ledger.c.id)
    )
    data = dict(row._mapping)
    data["ledger"] = [dict(h._mapping) for h in history]
    return data


class OperatorError(Exception):
    """An operator command that does not apply to the row in its current state."""


async def _operator_change(
    conn: AsyncConnection,
    job_id: int,
    *,
    allowed: tuple[str, ...],
    values: dict[str, Any],
    note: str,
    now: datetime,
    operator: str,
) -> None:
    row = (await conn.execute(select(outbox).where(outbox.c.id == job_id))).first()
    if row is None:
        raise OperatorError(f"outbox job {job_id} does not exist")
    if row.status not in allowed:
        raise OperatorError(
            f"outbox job {job_id} is {row.status}; this command applies to {' or '.join(allowed)}"
        )
    # the status read above is checked again by the update itself: of two operators (or a
    # console and a CLI) acting on the job at the same moment, one changes it, the other is
    # told it already changed
    changed = await conn.execute(
        update(outbox)
        .where(outbox.c.id == job_id, outbox.c.status == row.status)
        .values(updated_at=now, **values)
    )
    if changed.rowcount != 1:
        raise OperatorError(f"outbox job {job_id} changed meanwhile; look at it again")
    await conn.execute(
        insert(ledger).values(
            outbox_id=job_id,
            tenant_id=row.tenant_id,
            kind=row.kind,
            idempotency_key=row.idempotency_key,
            attempt=row.attempts,
            outcome=OPERATOR,
            worker=operator,
            error=note,
            recorded_at=now,
        )
    )


async def retry(conn: AsyncConnection, job_id: int, *, now: datetime, operator: str) -> None:
    """Put a failed or cancelled job back in the queue, with a fresh attempt budget.

    The idempotency key is kept, so a platform that saw an earlier attempt recognises it.
    """
    row = (await conn.execute(select(outbox.c.attempts).where(outbox.c.id == job_id))).first()
    extra = row.attempts if row is not None else 0
    await _operator_change(
        conn,
        job_id,
        allowed=(FAILED, CANCELLED),
        values={
            "status": PENDING,
            "next_attempt_at": now,
            "finished_at": None,
            "max_attempts": outbox.c.max_attempts + extra,
        },
        note="retry requested by operator",
        now=now,
        operator=operator,
    )


async def cancel(conn: AsyncConnection, job_id: int, *, now: datetime, operator: str) -> None:
    """Stop a pending or failed job. A running job is refused: let it settle first."""
    await _operator_change(
        conn,
        job_id,
        allowed=(PENDING, FAILED),
        values={"status": CANCELLED, "finished_at": now, "lease_owner": None},
        note="cancelled by operator",
        now=now,
        operator=operator,
    )


__all__ = [
    "CANCELLED",
    "DONE",
    "FAILED",
    "LOCK_KEY_MAX",
    "PENDING",
    "RUNNING",
    "Job",
    "NewJob",
    "OperatorError",
    "cancel",
    "claim",
    "counts_by_status",
    "enqueue_many",
    "extend_leases",
    "inspect",
    "list_rows",
    "new_idempotency_key",
    "release",
    "retry",
]
