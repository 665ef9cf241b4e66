"""SEND's panel of the operator console (``hub_console_panels``): the tenant's
notifications, their state in the hub and in SEND. Only the tenant's rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from sportello.appkeys import ENGINE
from sportello.db import reading
from sportello.web.console import PAGE_SIZE, ConsoleFilters, ConsoleView, when

from .tables import send_notifications

if TYPE_CHECKING:
    from aiohttp import web

STATUSES = (
    "queued",
    "uploaded",
    "requesting",
    "waiting",
    "accepted",
    "refused",
    "cancelling",
    "cancelled",
    "failed",
)


class Notifications:
    key, title, order, chart = "send-notifications", "Notifiche SEND", 30, False
    statuses = STATUSES

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        t = send_notifications
        start, end = filters.range()
        q = sa.select(
            t.c.id,
            t.c.pa_protocol_number,
            t.c.subject,
            t.c.status,
            t.c.send_status,
            t.c.iun,
            t.c.created_at,
            t.c.accepted_at,
        ).where(t.c.tenant_id == tenant_id, t.c.created_at >= start, t.c.created_at < end)
        if filters.status:
            q = q.where(t.c.status == filters.status)
        q = q.order_by(t.c.id.desc()).offset(filters.page * PAGE_SIZE).limit(PAGE_SIZE + 1)
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        return ConsoleView(
            columns=(
                "N.",
                "Protocollo",
                "Oggetto",
                "Stato",
                "Stato SEND",
                "IUN",
                "Creata",
                "Accettata",
            ),
            rows=[
                (
                    str(r.id),
                    r.pa_protocol_number,
                    r.subject,
                    r.status,
                    r.send_status or "",
                    r.iun or "",
                    when(r.created_at),
                    when(r.accepted_at),
                )
                for r in found[:PAGE_SIZE]
            ],
            more=len(found) > PAGE_SIZE,
            empty="Nessuna notifica nel periodo.",
        )


PANELS = [Notifications()]
