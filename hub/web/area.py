"""The citizen's personal area, as kernel types: each platform contributes a section
(``hub_personal_area``) that lists what it holds for one fiscal code: payments, practices,
appointments, messages, notifications, requests. The front office renders them; no platform
imports another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from .. import audit
from ..appkeys import ENGINE

if TYPE_CHECKING:
    from aiohttp import web

    from ..config import TenantConfig


async def audit_area_read(
    app: web.Application,
    tenant_id: str,
    fiscal_code: str,
    *,
    action: str,
    purpose: str,
    detail: str,
    now: datetime,
    sources: str = "hub",
) -> None:
    """Audit a section's read of the citizen's own data (actor ``citizen:<fiscal code>``)."""
    async with app[ENGINE].begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant_id,
                actor=f"citizen:{fiscal_code}",
                action=action,
                subject=fiscal_code,
                purpose=purpose,
                sources=sources,
                outcome="ok",
                detail=detail,
            ),
            at=now,
        )


@dataclass(frozen=True)
class AreaAction:
    """A button next to an item: a link (GET) or a form (POST with the page's CSRF token)."""

    label: str
    url: str
    method: str = "GET"


@dataclass(frozen=True)
class AreaItem:
    """One thing of the citizen's: a notice, a practice, an appointment, a message...

    ``status`` is the plain-language state; ``milestones`` the steps so far (label, when),
    for C.SE.1.9; ``fields`` label/value pairs shown in a list (``protocol``, amounts,
    deadline: C.SE.1.10)."""

    title: str
    status: str = ""
    when: datetime | date | None = None
    url: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    milestones: tuple[tuple[str, datetime | date | None], ...] = ()
    actions: tuple[AreaAction, ...] = ()


@dataclass(frozen=True)
class AreaSection:
    key: str
    title: str
    items: list[AreaItem] = field(default_factory=list)
    #: shown when the section cannot be read now (the platform is down): never "nothing"
    unavailable: str | None = None
    empty: str = "Nessun elemento."


class AreaSource(Protocol):
    """One section of the personal area. ``order`` sorts sections (lower first)."""

    key: str
    title: str
    order: int

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        """What this platform holds for ``fiscal_code`` in ``tenant`` (its own reads are
        audited by the platform as personal-data reads, actor ``citizen:<fiscal code>``)."""
        ...
