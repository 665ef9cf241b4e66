"""Booking's panel of the operator console (``hub_console_panels``): the appointments of
one day (Europe/Rome) at every office of the tenant. Only the tenant's rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sportello.appkeys import ENGINE
from sportello.db import reading
from sportello.web.console import PAGE_SIZE, ConsoleFilters, ConsoleView

from .service import ROME
from .tables import booking_appointments

if TYPE_CHECKING:
    from aiohttp import web


class DayAppointments:
    key, title, order, chart = "booking-day", "Appuntamenti del giorno", 40, False
    statuses = ("booked", "cancelled", "no_show")

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        t = booking_appointments
        start = datetime.combine(filters.day, datetime.min.time(), ROME).astimezone(UTC)
        end = datetime.combine(
            filters.day + timedelta(days=1), datetime.min.time(), ROME
        ).astimezone(UTC)
        q = sa.select(
            t.c.starts_at,
            t.c.office_id,
            t.c.service_id,
            t.c.name,
            t.c.surname,
            t.c.code,
            t.c.status,
        ).where(t.c.tenant_id == tenant_id, t.c.starts_at >= start, t.c.starts_at < end)
        if filters.status:
            q = q.where(t.c.status == filters.status)
        q = (
            q.order_by(t.c.starts_at, t.c.office_id, t.c.id)
            .offset(filters.page * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        return ConsoleView(
            columns=("Ora", "Ufficio", "Servizio", "Persona", "Codice", "Stato"),
            rows=[
                (
                    r.starts_at.astimezone(ROME).strftime("%H:%M"),
                    r.office_id,
                    r.service_id,
                    f"{r.name} {r.surname}",
                    r.code,
                    r.status,
                )
                for r in found[:PAGE_SIZE]
            ],
            more=len(found) > PAGE_SIZE,
            empty="Nessun appuntamento in questo giorno.",
        )


PANELS = [DayAppointments()]
