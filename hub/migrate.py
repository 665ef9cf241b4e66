"""Apply and inspect Alembic migrations from async code.

The kernel's revisions live in ``migrations/versions`` (one chain, ``0001``...). A plugin may
ship its own folder of revisions (``hub_migration_locations``): its own branch, starting at
``down_revision = None`` with ``branch_labels = ("<platform>",)`` and ``depends_on`` the kernel
revision it needs. Alembic reads every folder at once; the hub upgrades to ``heads`` (every
branch), and a database is current when its heads are exactly the scripts' heads.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from .db import reading


@functools.lru_cache(maxsize=4)
def _installed_locations(disabled: str) -> tuple[Path, ...]:
    from .plugins import Plugins

    return tuple(Plugins().migration_locations())


def migration_locations(plugins: Any = None) -> list[Path]:
    """The folders of revision files: the kernel's, then each plugin's
    (``hub_migration_locations`` of ``plugins``; default: the installed plugins)."""
    kernel = Path(str(resources.files("sportello").joinpath("migrations", "versions")))
    if plugins is None:
        extra = list(_installed_locations(os.environ.get("SPORTELLO_DISABLE_PLUGINS", "")))
    else:
        extra = list(plugins.migration_locations())
    out = [kernel]
    for path in extra:
        if Path(path).resolve() not in {p.resolve() for p in out}:
            out.append(Path(path))
    return out


def alembic_config(plugins: Any = None) -> Config:
    ini = resources.files("sportello").joinpath("alembic.ini")
    cfg = Config(str(ini))
    cfg.set_main_option("script_location", str(resources.files("sportello").joinpath("migrations")))
    cfg.set_main_option("path_separator", "os")
    locations = os.pathsep.join(str(p) for p in migration_locations(plugins))
    cfg.set_main_option("version_locations", locations.replace("%", "%%"))
    return cfg


def head_revisions(plugins: Any = None) -> tuple[str, ...]:
    """Every branch's head, sorted."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config(plugins)).get_heads()))


def head_revision(plugins: Any = None) -> str | None:
    """The heads this version needs, as one string (``"0017"``, or ``"0017, acme_0001"``
    when a plugin ships its own branch); None when there is no revision."""
    return ", ".join(head_revisions(plugins)) or None


async def upgrade(engine: AsyncEngine, revision: str = "heads", *, plugins: Any = None) -> None:
    """Bring the schema to ``revision`` (default: every branch's head; idempotent)."""
    cfg = alembic_config(plugins)

    def _upgrade(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    """The revisions the database is at (one per branch), sorted."""

    def _current(conn: Connection) -> tuple[str, ...]:
        return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))

    async with reading(engine) as conn:
        return await conn.run_sync(_current)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revisions as one string, comparable with :func:`head_revision`."""
    return ", ".join(await current_revisions(engine)) or None


async def is_current(engine: AsyncEngine, plugins: Any = None) -> bool:
    return await current_revisions(engine) == head_revisions(plugins)
