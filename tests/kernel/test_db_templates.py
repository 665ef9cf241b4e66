"""The test databases (tests/db_templates.py): ``db_url`` is a copy of a migrated template,
at every head and of its own; ``empty_db_url`` has no schema at all."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
from db_templates import Templates
from sqlalchemy import inspect, text

from sportello import migrate
from sportello.config import DatabaseSettings
from sportello.db import create_engine


async def _revisions_and_tenants(url: str) -> tuple[tuple[str, ...], int]:
    engine = create_engine(DatabaseSettings(url=url))
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM tenants"))).scalar_one()
        return await migrate.current_revisions(engine), int(count)
    finally:
        await engine.dispose()


async def test_db_url_is_at_every_head_and_its_own(db_url: str) -> None:
    assert await _revisions_and_tenants(db_url) == (migrate.head_revisions(), 0)
    engine = create_engine(DatabaseSettings(url=db_url))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, ipa_code, fiscal_code, cadastral_code,"
                    " created_at, updated_at) VALUES ('t1', 'A', 'c_a001', '00000000001',"
                    " 'A001', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
    finally:
        await engine.dispose()
    assert (await _revisions_and_tenants(db_url))[1] == 1


def test_copies_do_not_share_rows(db_templates: Templates, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two copies of the same template: a row written in one is not in the other (SQLite)."""
    urls = []
    for name in ("a.sqlite", "b.sqlite"):
        db_templates.sqlite_copy(tmp_path / name)
        urls.append(f"sqlite+aiosqlite:///{tmp_path / name}")

    async def go() -> tuple[int, int]:
        engine = create_engine(DatabaseSettings(url=urls[0]))
        try:
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO tenants (id, name, ipa_code, fiscal_code, cadastral_code,"
                        " created_at, updated_at) VALUES ('t1', 'A', 'c_a001', '00000000001',"
                        " 'A001', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    )
                )
        finally:
            await engine.dispose()
        first, second = [await _revisions_and_tenants(url) for url in urls]
        return first[1], second[1]

    assert asyncio.run(go()) == (1, 0)


async def test_empty_db_url_has_no_schema(empty_db_url: str) -> None:
    engine = create_engine(DatabaseSettings(url=empty_db_url))
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert tables == []
        assert await migrate.current_revisions(engine) == ()
    finally:
        await engine.dispose()


@pytest.mark.pg
def test_postgresql_copies_are_named_for_this_process(
    migrated_pg_url: str, db_templates: Templates
) -> None:
    """Names carry the pid (parallel pytest processes never collide); a dropped copy is gone."""
    assert migrated_pg_url.rsplit("/", 1)[1].startswith(f"sportello_t_{os.getpid()}_")
    name = db_templates.pg_create()

    async def exists() -> bool:
        conn = await asyncpg.connect(db_templates.pg_admin_url)
        try:
            return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name))
        finally:
            await conn.close()

    assert asyncio.run(exists())
    db_templates.pg_drop(name)
    db_templates._drops[-1].result()  # the background drop, waited for
    assert not asyncio.run(exists())
