"""The personal area's "Le mie notifiche" (``hub_personal_area``): the SEND notifications
this tenant sent the citizen (a recipient's tax id), with the IUN, the protocol number and
each status SEND reported on the progress stream. The read is audited (``send.area.read``,
actor ``citizen:<fiscal code>``)."""

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

from .tables import send_events, send_notifications

#: SEND's statuses (NotificationStatus) as a citizen reads them
STATES = {
    "IN_VALIDATION": "In verifica",
    "ACCEPTED": "Accettata",
    "REFUSED": "Rifiutata",
    "DELIVERING": "In consegna",
    "DELIVERED": "Consegnata",
    "VIEWED": "Letta",
    "EFFECTIVE_DATE": "Perfezionata per decorrenza termini",
    "PAID": "Pagata",
    "UNREACHABLE": "Destinatario irreperibile",
    "CANCELLED": "Annullata",
}
OURS = {
    "queued": "In preparazione",
    "uploaded": "In preparazione",
    "requesting": "In invio",
    "waiting": "In verifica",
    "accepted": "Accettata",
    "refused": "Rifiutata",
    "cancelling": "Annullata",
    "cancelled": "Annullata",
    "failed": "Non inviata",
}


class MyNotifications:
    key = "notifiche"
    title = "Le mie notifiche"
    order = 60

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        cf = fiscal_code.upper()
        async with reading(app[ENGINE]) as conn:
            candidates = (
                await conn.execute(
                    select(send_notifications)
                    .where(
                        send_notifications.c.tenant_id == tenant.id,
                        send_notifications.c.recipients.contains(f'"{cf}"'),
                        send_notifications.c.status.in_(("accepted", "cancelling", "cancelled")),
                    )
                    .order_by(send_notifications.c.created_at.desc())
                    .limit(50)
                )
            ).all()
            mine = [r for r in candidates if cf in _recipients(r.recipients)]
            iuns = [r.iun for r in mine if r.iun]
            events = (
                (
                    await conn.execute(
                        select(send_events)
                        .where(send_events.c.tenant_id == tenant.id, send_events.c.iun.in_(iuns))
                        .order_by(send_events.c.received_at, send_events.c.id)
                    )
                ).all()
                if iuns
                else []
            )
        await audit_area_read(
            app,
            tenant.id,
            cf,
            action="send.area.read",
            purpose="personal area: the citizen's own notifications",
            detail=f"{len(mine)} notification(s)",
            now=now,
        )
        items = []
        for r in mine:
            steps = [
                (STATES.get(e.new_status, e.new_status), e.received_at)
                for e in events
                if e.iun == r.iun and e.new_status
            ]
            status = STATES.get(r.send_status or "", "") or OURS.get(r.status, r.status)
            fields = [("Protocollo", r.pa_protocol_number)]
            if r.iun:
                fields.append(("Codice IUN", r.iun))
            if r.accepted_at:
                fields.append(("Accettata da SEND il", r.accepted_at.strftime("%d/%m/%Y")))
            items.append(
                AreaItem(
                    title=r.subject,
                    status=status,
                    when=r.accepted_at or r.created_at,
                    fields=tuple(fields),
                    milestones=tuple(steps),
                )
            )
        return AreaSection(
            self.key,
            self.title,
            items=items,
            empty="Non hai notifiche a valore legale (SEND) da questo comune.",
        )


def _recipients(raw: str) -> set[str]:
    try:
        value = json.loads(raw)
    except ValueError:
        return set()
    return {str(x).upper() for x in value} if isinstance(value, list) else set()


def sources() -> list[Any]:
    return [MyNotifications()]
