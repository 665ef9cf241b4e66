"""The audit log of personal-data reads: append-only, queryable by tenant, subject and time.

Fiscal codes appear here as subjects; besides this log, the hub stores them only where a
platform needs them to do its work (e.g. ``io_messages``), and never in its logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    tenant_id: str
    actor: str
    action: str
    subject: str
    purpose: str
    sources: str
    outcome: str
    detail: str | None = None
    request_id: str | None = None


async def record(conn: AsyncConnection, entry: AuditEntry, *, at: datetime) -> int:
    """Append one entry (in the caller's transaction) and return its id."""
    result = await conn.execute(
        insert(audit_log)
        .values(at=at, **{k: getattr(entry, k) for k in AuditEntry.__slots__})
        .returning(audit_log.c.id)
    )
    return int(result.scalar_one())


async def query(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    subject: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    stmt = (
        select(audit_log)
        .where(audit_log.c.tenant_id == tenant_id, audit_log.c.id > after_id)
        .order_by(audit_log.c.id)
        .limit(limit)
    )
    if subject:
        stmt = stmt.where(audit_log.c.subject == subject.upper())
    if actor:
        stmt = stmt.where(audit_log.c.actor == actor)
    if since:
        stmt = stmt.where(audit_log.c.at >= since)
    if until:
        stmt = stmt.where(audit_log.c.at < until)
    return [dict(r._mapping) for r in await conn.execute(stmt)]
