"""Storage and outbox rows on SQLite and PostgreSQL: migrations, the business transaction,
idempotency keys, leases, operator commands."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import migrate
from sportello.outbox import store
from sportello.outbox.store import NewJob
from sportello.schema import all_tables, ledger, outbox, tenants

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_migrations_match_the_schema(engine: AsyncEngine) -> None:
    def diff(conn):  # type: ignore[no-untyped-def]
        return compare_metadata(MigrationContext.configure(conn), all_tables())

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    assert await migrate.is_current(engine)
    await migrate.upgrade(engine)  # idempotent
    assert await migrate.current_revision(engine) == migrate.head_revision()


async def test_enqueue_commits_or_rolls_back_with_the_business_change(engine: AsyncEngine) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with engine.begin() as conn:
            await conn.execute(
                insert(tenants).values(
                    id="t1",
                    name="A",
                    ipa_code="c_a001",
                    fiscal_code="00000000001",
                    cadastral_code="A001",
                    created_at=T0,
                    updated_at=T0,
                )
            )
            await store.enqueue_many(
                conn, [NewJob("t1", "webhook", {"n": 1})], now=T0, default_max_attempts=3
            )
            raise Boom()
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 0
        assert (await conn.execute(select(func.count()).select_from(tenants))).scalar() == 0

    async with engine.begin() as conn:
        keys = await store.enqueue_many(
            conn, [NewJob("t1", "webhook", {"n": 1})], now=T0, default_max_attempts=3
        )
    async with engine.connect() as conn:
        row = (await conn.execute(select(outbox))).one()
    assert row.idempotency_key == keys[0] and len(keys[0]) == 32
    assert row.status == "pending" and row.attempts == 0 and row.max_attempts == 3
    assert row.next_attempt_at == T0 and row.created_at.tzinfo is not None


async def test_same_idempotency_key_is_enqueued_once(engine: AsyncEngine) -> None:
    job = NewJob("t1", "webhook", {"n": 1}, idempotency_key="iupd-123")
    for _ in range(3):
        async with engine.begin() as conn:
            assert await store.enqueue_many(conn, [job], now=T0, default_max_attempts=3) == [
                "iupd-123"
            ]
    async with engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(outbox))).scalar() == 1


async def _enqueue(engine: AsyncEngine, n: int, *, now: datetime = T0) -> list[str]:
    async with engine.begin() as conn:
        return await store.enqueue_many(
            conn,
            [NewJob("t1", "webhook", {"n": i}) for i in range(n)],
            now=now,
            default_max_attempts=5,
        )


async def test_claim_takes_due_rows_once_and_an_expired_lease_is_reclaimed(
    engine: AsyncEngine,
) -> None:
    await _enqueue(engine, 5)
    async with engine.begin() as conn:  # a future job is not due
        await store.enqueue_many(
            conn,
            [NewJob("t1", "webhook", {"later": True}, not_before=T0 + timedelta(hours=1))],
            now=T0,
            default_max_attempts=5,
        )
    lease = timedelta(seconds=30)
    async with engine.begin() as conn:
        first = await store.claim(conn, worker="w1", limit=3, now=T0, lease=lease)
    async with engine.begin() as conn:
        second = await store.claim(conn, worker="w2", limit=10, now=T0, lease=lease)
    assert [j.payload["n"] for j in first] == [0, 1, 2]
    assert [j.payload["n"] for j in second] == [3, 4]
    assert all(j.attempt == 1 for j in first + second)

    # w1 dies; after its lease expires the rows are claimable again, same key, attempt 2
    later = T0 + timedelta(seconds=31)
    async with engine.begin() as conn:
        ext = await store.extend_leases(
            conn, worker="w2", ids=[j.id for j in second], until=later + lease
        )
        assert ext == 2
        again = await store.claim(conn, worker="w3", limit=10, now=later, lease=lease)
    assert sorted(j.idempotency_key for j in again) == sorted(j.idempotency_key for j in first)
    assert all(j.attempt == 2 for j in again)

    async with engine.begin() as conn:
        released = await store.release(conn, worker="w3", ids=[j.id for j in again], now=later)
        assert released == 3
        assert await store.counts_by_status(conn) == {"pending": 4, "running": 2}


async def test_operator_retry_and_cancel_keep_the_key_and_write_the_ledger(
    engine: AsyncEngine,
) -> None:
    await _enqueue(engine, 2)
    async with engine.begin() as conn:
        ids = [r["id"] for r in await store.list_rows(conn)]
        await conn.execute(
            outbox.update().where(outbox.c.id == ids[0]).values(status="failed", attempts=5)
        )
        with pytest.raises(store.OperatorError, match="is pending; this command applies to"):
            await store.retry(conn, ids[1], now=T0, operator="cli:test")
        with pytest.raises(store.OperatorError, match="does not exist"):
            await store.cancel(conn, 999_999, now=T0, operator="cli:test")
        await store.retry(conn, ids[0], now=T0, operator="cli:test")
        await store.cancel(conn, ids[1], now=T0, operator="cli:test")
    async with engine.connect() as conn:
        job = await store.inspect(conn, ids[0])
        assert job is not None
        assert job["status"] == "pending" and job["max_attempts"] == 10
        assert [h["outcome"] for h in job["ledger"]] == ["operator"]
        assert job["ledger"][0]["worker"] == "cli:test"
        cancelled = await store.inspect(conn, ids[1])
        assert cancelled is not None and cancelled["status"] == "cancelled"
        assert await store.list_rows(conn, status="cancelled") == [
            r for r in await store.list_rows(conn) if r["id"] == ids[1]
        ]
        n = (await conn.execute(select(func.count()).select_from(ledger))).scalar()
        assert n == 2


async def test_twenty_operators_retrying_one_job_at_once_retry_it_once(
    engine: AsyncEngine,
) -> None:
    """A console and a CLI (or two replicas' consoles) retrying the same failed job at the
    same moment: one retry, one ledger row; the others are told it changed."""
    await _enqueue(engine, 1)
    async with engine.begin() as conn:
        (job_id,) = [r["id"] for r in await store.list_rows(conn)]
        await conn.execute(
            outbox.update().where(outbox.c.id == job_id).values(status="failed", attempts=5)
        )

    async def one(n: int) -> bool:
        try:
            async with engine.begin() as conn:
                await store.retry(conn, job_id, now=T0, operator=f"console:{n}")
            return True
        except store.OperatorError:
            return False

    outcomes = await asyncio.gather(*(one(n) for n in range(20)))
    assert outcomes.count(True) == 1
    async with engine.connect() as conn:
        n = (await conn.execute(select(func.count()).select_from(ledger))).scalar()
    assert n == 1


async def test_backend_specific_settings(engine: AsyncEngine, db_url: str) -> None:
    async with engine.connect() as conn:
        if db_url.startswith("sqlite"):
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 30000
        else:
            assert conn.dialect.name == "postgresql"
