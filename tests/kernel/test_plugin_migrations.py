"""A plugin ships its own Alembic branch (``hub_migration_locations``): the hub upgrades
every branch, a database is current only with every head, and a database made before the
plugin existed (at the kernel's chain only) upgrades cleanly. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from sportello import migrate
from sportello.config import DatabaseSettings
from sportello.db import create_engine
from sportello.hookspecs import hookimpl
from sportello.plugins import Plugins

KERNEL_AT = "0015"  # what databases made before plugin branches existed were at, at least

REVISION = '''
"""acme: its things table."""
import sqlalchemy as sa
from alembic import op

revision = "acme_0001"
down_revision = None
branch_labels = ("acme",)
depends_on = "0012"


def upgrade() -> None:
    op.create_table(
        "acme_things",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("tenant_id", sa.String(40), sa.ForeignKey("tenants.id"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("acme_things")
'''


def _acme(tmp_path: Path) -> Plugins:
    folder = tmp_path / "acme_migrations"
    folder.mkdir()
    (folder / "acme_0001_things.py").write_text(REVISION, encoding="utf-8")

    class Acme:
        @hookimpl
        def hub_migration_locations(self) -> list[Path]:
            return [folder]

    plugins = Plugins()
    plugins.register(Acme(), name="acme")
    return plugins


async def _tables(engine) -> set[str]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_a_plugin_branch_is_upgraded_with_the_kernel(
    empty_db_url: str, tmp_path: Path
) -> None:
    plugins = _acme(tmp_path)
    heads = migrate.head_revisions(plugins)
    # the kernel's head, each built-in platform's own branch (booking), and acme's
    assert "acme_0001" in heads and len(heads) == len(migrate.head_revisions()) + 1
    assert migrate.head_revision(plugins) == ", ".join(heads)
    engine = create_engine(DatabaseSettings(url=empty_db_url))
    try:
        await migrate.upgrade(engine, plugins=plugins)
        assert await migrate.current_revisions(engine) == heads
        assert await migrate.is_current(engine, plugins)
        assert not await migrate.is_current(engine)  # without the plugin: one head too many
        assert {"acme_things", "outbox", "tenants"} <= await _tables(engine)
        await migrate.upgrade(engine, plugins=plugins)  # idempotent
        assert await migrate.current_revisions(engine) == heads
    finally:
        await engine.dispose()


async def test_a_database_of_the_kernel_chain_upgrades_to_every_head(
    empty_db_url: str, tmp_path: Path
) -> None:
    """An existing database (alembic_version at 0015, from before plugin branches) gets the
    rest of the kernel chain and the plugin's branch, with its rows intact."""
    engine = create_engine(DatabaseSettings(url=empty_db_url))
    try:
        await migrate.upgrade(engine, KERNEL_AT)
        assert await migrate.current_revisions(engine) == (KERNEL_AT,)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, ipa_code, fiscal_code, cadastral_code,"
                    " created_at, updated_at) VALUES ('t1', 'A', 'c_a001', '00000000001',"
                    " 'A001', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        plugins = _acme(tmp_path)
        await migrate.upgrade(engine, plugins=plugins)
        assert await migrate.current_revisions(engine) == migrate.head_revisions(plugins)
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO acme_things (id, tenant_id) VALUES (1, 't1')"))
            count = (await conn.execute(text("SELECT count(*) FROM tenants"))).scalar()
        assert count == 1
    finally:
        await engine.dispose()


def test_the_built_in_chain_keeps_its_revision_ids() -> None:
    """Existing databases hold these ids in alembic_version: they never change."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config())
    ids = {r.revision for r in script.walk_revisions()}
    assert {f"{n:04d}" for n in range(1, 16)} <= ids
    assert script.get_revision("0015").down_revision == "0014"
