"""Requests' panels of the operator console (``hub_console_panels``): the online requests
of the chosen days (protocol, service, status, deadline) and the ratings per day. Only the
tenant's rows; no personal data beyond what the desk needs (no form values)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sportello.appkeys import ENGINE
from sportello.db import reading
from sportello.web.console import (
    PAGE_SIZE,
    ConsoleFilters,
    ConsoleView,
    as_date,
    day_of,
    per_day,
    when,
)

from .service import STATUSES
from .tables import requests_ratings, requests_requests

if TYPE_CHECKING:
    from aiohttp import web


class SubmittedRequests:
    key, title, order, chart = "requests-list", "Richieste online", 45, False
    statuses = ("submitted", "in_progress", "completed", "rejected")

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        t = requests_requests
        start, end = filters.range()
        q = sa.select(
            t.c.submitted_at,
            t.c.protocol_number,
            t.c.service,
            t.c.status,
            t.c.deadline,
            t.c.stamp,
        ).where(
            t.c.tenant_id == tenant_id,
            t.c.status != "draft",
            t.c.submitted_at >= start,
            t.c.submitted_at < end,
        )
        if filters.status:
            q = q.where(t.c.status == filters.status)
        q = (
            q.order_by(t.c.submitted_at.desc(), t.c.id.desc())
            .offset(filters.page * PAGE_SIZE)
            .limit(PAGE_SIZE + 1)
        )
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        return ConsoleView(
            columns=("Presentata", "Protocollo", "Servizio", "Stato", "Termine", "Bollo"),
            rows=[
                (
                    when(r.submitted_at),
                    r.protocol_number or "",
                    r.service,
                    STATUSES.get(r.status, r.status),
                    r.deadline or "",
                    r.stamp or "",
                )
                for r in found[:PAGE_SIZE]
            ],
            more=len(found) > PAGE_SIZE,
            empty="Nessuna richiesta in questi giorni.",
        )


class RatingsPerDay:
    key, title, order, chart = "requests-ratings", "Valutazioni dei servizi", 46, True
    statuses: tuple[str, ...] = ()

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        t = requests_ratings
        start, end = filters.range()
        day = day_of(t.c.created_at)
        q = (
            sa.select(day.label("day"), sa.func.count(), sa.func.avg(t.c.score))
            .where(t.c.tenant_id == tenant_id, t.c.created_at >= start, t.c.created_at < end)
            .group_by(day)
        )
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        counts: dict[date, int] = {as_date(r[0]): int(r[1]) for r in found}
        averages = {as_date(r[0]): float(r[2] or 0) for r in found}
        return ConsoleView(
            columns=("Giorno", "Valutazioni", "Media (1-5)"),
            rows=[
                (label, count, f"{averages.get(d, 0):.1f}".replace(".", ",") if count else "-")
                for (label, count), d in zip(per_day(filters, counts), filters.days(), strict=True)
            ],
            series=per_day(filters, counts),
            unit="valutazioni",
            empty="Nessuna valutazione in questi giorni.",
        )


PANELS = [SubmittedRequests(), RatingsPerDay()]
