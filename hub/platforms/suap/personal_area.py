"""The personal area's "Le mie pratiche" (``hub_personal_area``): the citizen's SUAP
practices from the comune's back office (the SUAP adapter), each with its number, kind,
dates and every status it went through (C.SE.1.9, 1.10). The read is audited
(``suap.practices``, actor ``citizen:<fiscal code>``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from sportello.config import TenantConfig
from sportello.web.area import AreaItem, AreaSection


class MyPractices:
    key = "pratiche"
    title = "Le mie pratiche"
    order = 30

    async def section(
        self, app: web.Application, tenant: TenantConfig, fiscal_code: str, *, now: datetime
    ) -> AreaSection:
        from .service import SUAP, SuapUnavailable

        service = app.get(SUAP)
        if service is None:
            return AreaSection(self.key, self.title, empty="Nessuna pratica.")
        try:
            adapter = service.adapter_for(tenant)
        except SuapUnavailable:
            return AreaSection(
                self.key, self.title, empty="Il comune non ha collegato lo sportello SUAP."
            )
        found = await service.practices(tenant, fiscal_code, f"citizen:{fiscal_code}")
        items = []
        for p in sorted(found, key=lambda p: p.submitted_at, reverse=True):
            timeline = sorted(await adapter.timeline(p.id), key=lambda e: e.at)
            items.append(
                AreaItem(
                    title=p.title,
                    status=p.status,
                    when=p.updated_at,
                    fields=(
                        ("Numero di pratica", p.id),
                        *(
                            (("Numero di protocollo", p.protocol_number),)
                            if p.protocol_number
                            else ()
                        ),
                        ("Tipo", p.kind),
                        ("Presentata il", p.submitted_at.strftime("%d/%m/%Y")),
                        *(
                            (("Termine di conclusione", p.deadline.strftime("%d/%m/%Y")),)
                            if p.deadline
                            else ()
                        ),
                        ("Ultimo aggiornamento", p.updated_at.strftime("%d/%m/%Y")),
                    ),
                    milestones=tuple(
                        (e.status + (f": {e.note}" if e.note else ""), e.at) for e in timeline
                    ),
                )
            )
        return AreaSection(
            self.key, self.title, items=items, empty="Non hai pratiche presso lo sportello SUAP."
        )


def sources() -> list[Any]:
    return [MyPractices()]
