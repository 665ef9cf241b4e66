"""API keys: ``sk_<id>_<secret>``, stored as SHA-256 of the secret, scoped to a tenant and to
permissions. The full key is shown once, when created."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .schema import api_keys

SCOPES = ("read", "write", "personal_data", "admin")


class ApiKeyError(Exception):
    """A key that cannot be created or revoked as asked."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling the API."""

    key_id: str
    name: str
    tenant_id: str | None  # None for an admin key
    scopes: frozenset[str]
    last_used_at: datetime | None = None

    @property
    def actor(self) -> str:
        return f"apikey:{self.key_id}:{self.name}"

    def may_see(self, tenant_id: str) -> bool:
        return self.tenant_id is None or self.tenant_id == tenant_id


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create(
    conn: AsyncConnection,
    *,
    tenant_id: str | None,
    name: str,
    scopes: list[str],
    now: datetime,
) -> str:
    """Create a key and return it in full (the only time it exists outside the caller)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if "admin" in scopes and tenant_id is not None:
        raise ApiKeyError("an admin key is not bound to a tenant: omit --tenant")
    if "admin" not in scopes and tenant_id is None:
        raise ApiKeyError("a key needs --tenant (or the admin scope)")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    await conn.execute(
        insert(api_keys).values(
            id=key_id,
            tenant_id=tenant_id,
            name=name,
            scopes=",".join(sorted(set(scopes))),
            secret_sha256=_digest(secret),
            created_at=now,
        )
    )
    return f"sk_{key_id}_{secret}"


async def authenticate(conn: AsyncConnection, presented: str, *, now: datetime) -> Principal | None:
    """The principal for a presented key, or None when unknown, revoked or wrong."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != "sk":
        return None
    _, key_id, secret = parts
    row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.secret_sha256, _digest(secret)):
        return None
    return Principal(
        key_id=row.id,
        name=row.name,
        tenant_id=row.tenant_id,
        scopes=frozenset(s for s in row.scopes.split(",") if s),
        last_used_at=row.last_used_at,
    )


#: How long a key found valid is trusted without reading the database again: a revoked key
#: (``sportello apikeys revoke``, another process) is refused at most this long afterwards.
CACHE_TTL = timedelta(seconds=5)


class KeyCache:
    """The principals of keys found valid in the last :data:`CACHE_TTL`, by the SHA-256 of
    the presented key (never the key itself); unknown, revoked and wrong keys are not kept,
    so each of them is checked against the database every time."""

    def __init__(self, ttl: timedelta = CACHE_TTL, size: int = 1024) -> None:
        self.ttl, self.size = ttl, size
        self._found: dict[bytes, tuple[datetime, Principal]] = {}

    def get(self, presented: str, now: datetime) -> Principal | None:
        found = self._found.get(hashlib.sha256(presented.encode()).digest())
        if found is None or now - found[0] >= self.ttl or now < found[0]:
            return None
        return found[1]

    def put(self, presented: str, principal: Principal, now: datetime) -> None:
        if len(self._found) >= self.size:
            self._found.clear()
        self._found[hashlib.sha256(presented.encode()).digest()] = (now, principal)

    def used(self, presented: str, now: datetime) -> None:
        """The key's use was recorded at ``now`` (its cached ``last_used_at``)."""
        key = hashlib.sha256(presented.encode()).digest()
        if key in self._found:
            checked, principal = self._found[key]
            self._found[key] = (checked, replace(principal, last_used_at=now))


USE_RESOLUTION = timedelta(minutes=1)


def due_for_mark(principal: Principal, now: datetime) -> bool:
    """Whether this use should be recorded (at most once a minute per key)."""
    last = principal.last_used_at
    return last is None or now - last >= USE_RESOLUTION


async def mark_used(conn: AsyncConnection, principal: Principal, *, now: datetime) -> bool:
    """Record that a key was used, at most once a minute per key (so reads stay reads)."""
    if not due_for_mark(principal, now):
        return False
    await conn.execute(
        update(api_keys).where(api_keys.c.id == principal.key_id).values(last_used_at=now)
    )
    return True


async def revoke(conn: AsyncConnection, key_id: str, *, now: datetime) -> None:
    result = await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    if not result.rowcount:
        raise ApiKeyError(f"no active API key with id {key_id}")


async def listing(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(
            api_keys.c.id,
            api_keys.c.tenant_id,
            api_keys.c.name,
            api_keys.c.scopes,
            api_keys.c.created_at,
            api_keys.c.revoked_at,
            api_keys.c.last_used_at,
        ).order_by(api_keys.c.created_at)
    )
    return [dict(r._mapping) for r in rows]
