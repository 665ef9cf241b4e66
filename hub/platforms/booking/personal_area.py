"""The personal area's "I miei appuntamenti" (``hub_personal_area``): the appointments the
citizen booked at this tenant's offices while logged in or giving their fiscal code, with
the booking code, the office, the service and the way to download, move or cancel them.
The read is audited (``booking.area.read``, actor ``citizen:<fiscal code>``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from sportello.appkeys import ENGINE
from sportello.config import TenantConfig
from sportello.db import reading
from sportello.web.area import AreaAction, AreaItem, AreaSection, audit_area_read

from .settings import booking_settings
from .tables import booking_appointments

STATES = {"booked": "Prenotato", "cancelled": "Annullato", "no_show": "Non presentato"}


class MyAppointments:
    key = "appuntamenti"
    title = "I miei appuntamenti"
    order = 40

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        from .service import display_code

        settings = booking_settings(tenant)
        if settings is None:
            return AreaSection(self.key, self.title, empty="Il comune non offre prenotazioni.")
        cf = fiscal_code.upper()
        async with reading(app[ENGINE]) as conn:
            rows = (
                await conn.execute(
                    select(booking_appointments)
                    .where(
                        booking_appointments.c.tenant_id == tenant.id,
                        booking_appointments.c.fiscal_code == cf,
                    )
                    .order_by(booking_appointments.c.starts_at.desc())
                    .limit(50)
                )
            ).all()
        await audit_area_read(
            app,
            tenant.id,
            cf,
            action="booking.area.read",
            purpose="personal area: the citizen's own appointments",
            detail=f"{len(rows)} appointment(s)",
            sources="booking",
            now=now,
        )
        items = []
        base = f"/t/{tenant.id}/sportello/prenota"
        for r in rows:
            office = settings.office(r.office_id)
            service = office.service(r.service_id) if office else None
            code = display_code(r.code)
            actions = [AreaAction("Aggiungi al calendario (.ics)", f"{base}/{code}/calendario.ics")]
            if r.status == "booked" and r.starts_at > now:
                actions.append(AreaAction("Sposta o annulla", f"{base}/gestisci?codice={code}"))
            items.append(
                AreaItem(
                    title=service.name if service else r.service_id,
                    status=STATES.get(r.status, r.status),
                    when=r.starts_at,
                    fields=(
                        ("Codice di prenotazione", code),
                        ("Ufficio", office.name if office else r.office_id),
                        ("Indirizzo", office.address if office and office.address else "-"),
                        ("Motivo", r.reason),
                    ),
                    actions=tuple(actions),
                )
            )
        return AreaSection(
            self.key,
            self.title,
            items=items,
            empty="Non hai appuntamenti prenotati con l'accesso SPID o CIE.",
        )


def sources() -> list[Any]:
    return [MyAppointments()]
