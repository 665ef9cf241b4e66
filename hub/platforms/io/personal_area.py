"""The personal area's "I miei messaggi" (``hub_personal_area``): what the hub sent the
citizen on App IO for this tenant (subject, when, delivery state), newest first. The read
is audited (``io.area.read``, actor ``citizen:<fiscal code>``)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from sportello.appkeys import ENGINE
from sportello.config import TenantConfig
from sportello.db import reading
from sportello.web.area import AreaItem, AreaSection, audit_area_read

from .tables import io_messages

STATES = {
    "queued": "In invio",
    "sending": "In invio",
    "sent": "Inviato",
    "processed": "Consegnato",
    "rejected": "Non consegnato",
    "not_on_io": "Non consegnato: non hai attivato App IO",
    "sender_not_allowed": "Non consegnato: hai disattivato questo servizio in App IO",
    "failed": "Non consegnato",
    "unknown": "In verifica",
}


class MyMessages:
    key = "messaggi"
    title = "I miei messaggi"
    order = 50

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        cf = fiscal_code.upper()
        async with reading(app[ENGINE]) as conn:
            rows = (
                await conn.execute(
                    select(io_messages)
                    .where(io_messages.c.tenant_id == tenant.id, io_messages.c.fiscal_code == cf)
                    .order_by(io_messages.c.created_at.desc(), io_messages.c.id.desc())
                    .limit(50)
                )
            ).all()
        await audit_area_read(
            app,
            tenant.id,
            cf,
            action="io.area.read",
            purpose="personal area: the citizen's own messages",
            detail=f"{len(rows)} message(s)",
            now=now,
        )
        items = []
        for r in rows:
            try:
                content = json.loads(r.content)
            except ValueError:
                content = {}
            subject = str(content.get("subject") or "Messaggio")
            body = str(content.get("markdown") or "")
            items.append(
                AreaItem(
                    title=subject,
                    status=STATES.get(r.status, r.status),
                    when=r.sent_at or r.created_at,
                    fields=(("Testo", body[:600]),) if body else (),
                )
            )
        return AreaSection(
            self.key,
            self.title,
            items=items,
            empty="Il comune non ti ha inviato messaggi su App IO.",
        )


def sources() -> list[Any]:
    return [MyMessages()]
