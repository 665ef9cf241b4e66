"""The personal area's "Le mie richieste" (``hub_personal_area``): the citizen's requests
at this tenant, drafts included, with the protocol number, the intake date, the deadline
(C.SE.1.10) and the milestones (C.SE.1.9), and the way to resume a draft, pay the stamp
duty or download the certificate. The read is audited (``requests.area.read``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from sportello.appkeys import ENGINE
from sportello.config import TenantConfig
from sportello.db import reading
from sportello.web.area import AreaAction, AreaItem, AreaSection, audit_area_read

from .service import STATUSES
from .settings import requests_settings
from .tables import requests_milestones, requests_requests

BASE = "/t/{tenant}/sportello/richieste"


class MyRequests:
    key = "richieste"
    title = "Le mie richieste"
    order = 30

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        settings = requests_settings(tenant)
        if settings is None:
            return AreaSection(self.key, self.title, empty="Il comune non offre richieste online.")
        cf = fiscal_code.upper()
        t, m = requests_requests, requests_milestones
        async with reading(app[ENGINE]) as conn:
            rows = (
                await conn.execute(
                    sa.select(t)
                    .where(t.c.tenant_id == tenant.id, t.c.fiscal_code == cf)
                    .order_by(t.c.updated_at.desc(), t.c.id.desc())
                    .limit(50)
                )
            ).all()
            steps = (
                await conn.execute(
                    sa.select(m).where(m.c.request_id.in_([r.id for r in rows])).order_by(m.c.id)
                )
            ).all()
        await audit_area_read(
            app,
            tenant.id,
            cf,
            action="requests.area.read",
            purpose="personal area: the citizen's own requests",
            detail=f"{len(rows)} request(s)",
            sources="requests",
            now=now,
        )
        base = BASE.format(tenant=tenant.id)
        items = []
        for r in rows:
            card = settings.card(r.service)
            url = f"{base}/{r.service}/{r.ref}/"
            fields: list[tuple[str, str]] = []
            actions: list[AreaAction] = []
            if r.status == "draft":
                actions.append(AreaAction("Riprendi la bozza", url + "passo/1"))
            else:
                fields += [
                    ("Numero di protocollo", r.protocol_number or "-"),
                    ("Data di presentazione", _day(r.submitted_at)),
                    ("Termine", _day(date.fromisoformat(r.deadline)) if r.deadline else "-"),
                ]
                actions.append(AreaAction("Vedi la richiesta", url))
            if r.stamp == "due":
                fields.append(("Imposta di bollo", "da pagare, avviso " + (r.notice_number or "")))
            if r.service == "certificato" and r.stamp in ("paid", "exempt"):
                actions.append(AreaAction("Scarica il certificato", url + "certificato.pdf"))
            items.append(
                AreaItem(
                    title=card.title if card else r.service,
                    status=STATUSES.get(r.status, r.status),
                    when=r.submitted_at or r.updated_at,
                    url=url,
                    fields=tuple(fields),
                    milestones=tuple((s.label, s.at) for s in steps if s.request_id == r.id),
                    actions=tuple(actions),
                )
            )
        return AreaSection(self.key, self.title, items=items, empty="Non hai richieste online.")


def _day(value: Any) -> str:
    if isinstance(value, datetime):
        from .service import ROME

        return value.astimezone(ROME).strftime("%d/%m/%Y")
    return value.strftime("%d/%m/%Y") if isinstance(value, date) else "-"


def sources() -> list[Any]:
    return [MyRequests()]
