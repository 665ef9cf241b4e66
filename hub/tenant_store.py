"""Tenants stored in the database (``sportello tenants add``, the admin API), next to those
of the configuration file and its ``tenants_dir``.

A stored tenant is the validated tenant table as JSON: the same model as start-up checks it
when it is stored and again when a hub reads it, and its secrets stay references
(``{env = ...}``/``{file = ...}``). Removing a tenant deletes its document only: its
outbox rows, audit log, positions, messages and every other row stay (see
docs/tenants.md for retention). Every change bumps the ``tenants`` row of
``config_generation``, which replicas compare to learn of changes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .config import ConfigError, HubConfig, TenantConfig, validate_tenant
from .schema import config_generation, tenant_documents, tenants

log = logging.getLogger("sportello.tenants")

GENERATION = "tenants"


class TenantStoreError(Exception):
    """A tenant that cannot be stored or removed as asked; ``str()`` is for a person."""


def document_of(tenant: TenantConfig) -> str:
    """The tenant as stored: its validated fields as JSON (secrets as references)."""
    return json.dumps(tenant.model_dump(mode="json", by_alias=True), sort_keys=True)


def check_document(
    data: Any, config: HubConfig, *, source: str, base_dir: Path | None = None
) -> TenantConfig:
    """Validate a tenant table with the model of ``config`` (its plugins' sections);
    :class:`ConfigError` names ``source`` and each bad field. Relative paths resolve
    against ``base_dir`` (stored resolved: every replica reads the same path)."""
    return validate_tenant(data, model=type(config), source=source, base_dir=base_dir)


def _insert(conn: AsyncConnection, table: Any) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


async def bump_generation(conn: AsyncConnection, *, now: datetime) -> None:
    """Count one change of the stored tenants (in the caller's transaction)."""
    ins = _insert(conn, config_generation).values(name=GENERATION, generation=1, changed_at=now)
    await conn.execute(
        ins.on_conflict_do_update(
            index_elements=["name"],
            set_={"generation": config_generation.c.generation + 1, "changed_at": now},
        )
    )


async def generation(conn: AsyncConnection) -> int:
    """How many times the stored tenants changed (0: never)."""
    value = await conn.scalar(
        select(config_generation.c.generation).where(config_generation.c.name == GENERATION)
    )
    return int(value or 0)


async def store(
    conn: AsyncConnection, tenant: TenantConfig, config: HubConfig, *, now: datetime, actor: str
) -> bool:
    """Store (or replace) ``tenant``; True when it is new. A tenant of the configuration
    file or its folder is refused: it is changed there."""
    if tenant.id in file_tenant_ids(config):
        raise TenantStoreError(
            f"tenant {tenant.id!r} is configured in {config.source} or its tenants_dir: "
            "change it there"
        )
    doc = document_of(tenant)
    result = await conn.execute(
        update(tenant_documents)
        .where(tenant_documents.c.tenant_id == tenant.id)
        .values(document=doc, updated_at=now, updated_by=actor[:200])
    )
    created = not result.rowcount
    if created:
        await conn.execute(
            insert(tenant_documents).values(
                tenant_id=tenant.id,
                document=doc,
                created_at=now,
                updated_at=now,
                updated_by=actor[:200],
            )
        )
    row = {
        "id": tenant.id,
        "name": tenant.name,
        "ipa_code": tenant.ipa_code,
        "fiscal_code": tenant.fiscal_code,
        "cadastral_code": tenant.cadastral_code,
        "created_at": now,
        "updated_at": now,
    }
    ins = _insert(conn, tenants).values(**row)
    await conn.execute(
        ins.on_conflict_do_update(
            index_elements=["id"],
            set_={k: ins.excluded[k] for k in row if k not in ("id", "created_at")},
        )
    )
    await bump_generation(conn, now=now)
    return created


async def remove(conn: AsyncConnection, tenant_id: str, *, now: datetime) -> None:
    """Stop serving a stored tenant: its document goes, its data stays (the ``tenants``
    row too, which the data refers to)."""
    result = await conn.execute(
        delete(tenant_documents).where(tenant_documents.c.tenant_id == tenant_id)
    )
    if not result.rowcount:
        raise TenantStoreError(f"no tenant {tenant_id!r} is stored in the database")
    await bump_generation(conn, now=now)


async def listing(conn: AsyncConnection) -> list[dict[str, Any]]:
    """The stored tenants: id, name, created_at, updated_at, updated_by."""
    rows = await conn.execute(select(tenant_documents).order_by(tenant_documents.c.tenant_id))
    out = []
    for r in rows:
        try:
            name = json.loads(r.document).get("name")
        except (ValueError, AttributeError):
            name = None
        out.append(
            {
                "id": r.tenant_id,
                "name": name,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "updated_by": r.updated_by,
            }
        )
    return out


def file_tenant_ids(config: HubConfig) -> set[str]:
    """Ids of the tenants of the configuration file and its ``tenants_dir``."""
    return {t.id for t in config.tenants} - set(config.stored_tenants)


async def with_stored(conn: AsyncConnection, config: HubConfig) -> HubConfig:
    """``config`` with the stored tenants after the file's. A stored tenant that no longer
    validates (a plugin disabled since, a field renamed) or whose id the file now uses is
    left out and logged by id and field: the other tenants are served."""
    base = file_tenant_ids(config)
    kept = [t for t in config.tenants if t.id in base]
    stored: list[str] = []
    rows = await conn.execute(select(tenant_documents).order_by(tenant_documents.c.tenant_id))
    for r in rows:
        source = f"database tenant {r.tenant_id}"
        if r.tenant_id in base:
            log.error("%s: id is also configured in %s: skipped", source, config.source)
            continue
        try:
            tenant = check_document(json.loads(r.document), config, source=source)
        except ValueError:
            log.error("%s: stored document is not JSON: skipped", source)
            continue
        except ConfigError as exc:
            log.error("%s: skipped: %s", source, "; ".join(exc.problems))
            continue
        if tenant.id != r.tenant_id:
            log.error("%s: document id %r differs: skipped", source, tenant.id)
            continue
        kept.append(tenant)
        stored.append(tenant.id)
    return config.model_copy(update={"tenants": kept, "stored_tenants": frozenset(stored)})


async def sync_rows(engine: AsyncEngine, config: HubConfig, now: datetime) -> None:
    """Upsert the ``tenants`` rows (id, name, codes) of every tenant of ``config``."""
    if not config.tenants:
        return
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "ipa_code": t.ipa_code,
            "fiscal_code": t.fiscal_code,
            "cadastral_code": t.cadastral_code,
            "created_at": now,
            "updated_at": now,
        }
        for t in config.tenants
    ]
    async with engine.begin() as conn:
        ins = _insert(conn, tenants)
        stmt = ins.on_conflict_do_update(
            index_elements=["id"],
            set_={
                k: ins.excluded[k]
                for k in ("name", "ipa_code", "fiscal_code", "cadastral_code", "updated_at")
            },
        )
        await conn.execute(stmt, rows)
