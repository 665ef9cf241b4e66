"""The trust marks a tenant's relying party publishes, and their refresh before expiry.

At onboarding the trust anchor (or the software house's intermediate) issues the RP its
trust marks, kept in ``<keys_dir>/trust_marks.json``. A trust mark expires (its ``exp`` is
bounded by the onboarding agreement) and an RP without a valid one is refused by every OP,
so a leased periodic task (``oidc.trust_marks:<tenant>``, one replica at a time) asks each
issuer for a fresh one once half of its lifetime has passed or ``margin`` is left
(``sportello.connectors.oidc.trust_marks``: the issuer's trust mark endpoint, or its fetch
endpoint's statement), verifies it and stores it in ``oidc_trust_marks``, which every
replica reads. The entity configuration publishes, per trust mark id, the stored one or
else the file's, and never an expired one. A failed round changes nothing (the current
trust mark stays published until it expires) and is logged with the issuer and the check.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from sportello.config import HubConfig, TenantConfig
from sportello.connectors.errors import TransportError
from sportello.connectors.oidc.errors import OidcError
from sportello.connectors.oidc.federation import TrustChainResolver
from sportello.connectors.oidc.trust_marks import (
    HeldMark,
    held_mark,
    request_trust_mark,
    still_valid,
)
from sportello.db import reading
from sportello.platforms.login.oidc_keys import entity_id, oidc_settings, read_trust_marks
from sportello.platforms.login.store import LoginStore
from sportello.platforms.login.tables import oidc_trust_marks

log = logging.getLogger("sportello.platforms.login.oidc")

#: how often the refresh task looks (a round does nothing while no trust mark is due)
REFRESH_SECONDS = 3600.0
#: renew at the latest this long before ``exp`` (well above a round's interval)
MARGIN_SECONDS = 3 * 86400.0


async def held_marks(store: LoginStore, tenant: TenantConfig) -> list[HeldMark]:
    """Every trust mark the tenant holds, expired ones included: per id, of the refreshed
    one (database) and the onboarding file's, the one that expires last."""
    async with reading(store.engine) as conn:
        rows = (
            await conn.execute(
                select(oidc_trust_marks.c.mark_id, oidc_trust_marks.c.trust_mark).where(
                    oidc_trust_marks.c.tenant_id == tenant.id
                )
            )
        ).all()
    marks: dict[str, HeldMark] = {}
    entries = [*read_trust_marks(oidc_settings(tenant).keys_dir)]
    entries += [{"id": mark_id, "trust_mark": token} for mark_id, token in rows]
    for entry in entries:
        mark = held_mark(entry)
        if mark is None:
            continue
        held = marks.get(mark.id)
        # of two, the one that expires last (the file may be a newer re-onboarding's)
        if held is None or (held.exp is not None and (mark.exp or 0) >= held.exp):
            marks[mark.id] = mark
    return list(marks.values())


async def published_marks(store: LoginStore, tenant: TenantConfig, now: datetime) -> list[Any]:
    """The ``trust_marks`` of the entity configuration: the held ones not expired."""
    held = await held_marks(store, tenant)
    return still_valid([m.entry() for m in held], now.timestamp())


async def _store(store: LoginStore, tenant_id: str, mark: HeldMark, now: datetime) -> None:
    def at(value: float | None) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if value is not None else None

    async with store.engine.begin() as conn:
        await conn.execute(
            delete(oidc_trust_marks).where(
                oidc_trust_marks.c.tenant_id == tenant_id, oidc_trust_marks.c.mark_id == mark.id
            )
        )
        await conn.execute(
            insert(oidc_trust_marks).values(
                tenant_id=tenant_id,
                mark_id=mark.id,
                issuer=mark.iss,
                trust_mark=mark.jwt,
                issued_at=at(mark.iat) or now,
                expires_at=at(mark.exp),
                refreshed_at=now,
            )
        )


@dataclass
class RefreshReport:
    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    current: int = 0


async def refresh_trust_marks(
    store: LoginStore,
    resolver: TrustChainResolver,
    config: HubConfig,
    tenant: TenantConfig,
    now: datetime,
    *,
    margin: float = MARGIN_SECONDS,
) -> RefreshReport:
    """One round for one tenant: every held trust mark that is due is asked again from its
    issuer; a valid, later-expiring answer replaces it."""
    report = RefreshReport()
    subject = entity_id(config, tenant)
    for mark in await held_marks(store, tenant):
        if not mark.due(now.timestamp(), margin=margin):
            report.current += 1
            continue
        try:
            fresh = await request_trust_mark(
                resolver, issuer=mark.iss, mark_id=mark.id, subject=subject
            )
        except (OidcError, TransportError) as exc:
            check = getattr(exc, "check", "http")
            report.failed[mark.id] = f"{check}: {getattr(exc, 'reason', exc)}"[:300]
            log.warning(
                "OIDC trust mark not renewed",
                extra={"tenant": tenant.id, "issuer": mark.iss, "check": check},
            )
            continue
        if mark.exp is not None and (fresh.exp is None or fresh.exp > mark.exp):
            await _store(store, tenant.id, fresh, now)
            report.renewed.append(mark.id)
        elif mark.exp is None:
            report.current += 1
        else:
            report.failed[mark.id] = "the issuer answered no later trust mark"
    if report.renewed:
        log.info("OIDC trust marks renewed", extra={"tenant": tenant.id, "marks": report.renewed})
    return report
