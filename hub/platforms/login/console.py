"""The login platform's panel of the operator console (``hub_console_panels``): SPID and
CIE logins (SAML) per day for the tenant."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

import sqlalchemy as sa

from sportello.appkeys import ENGINE
from sportello.db import reading
from sportello.web.console import ConsoleFilters, ConsoleView, as_date, day_of, per_day

from .tables import login_sessions

if TYPE_CHECKING:
    from aiohttp import web


class LoginsChart:
    key, title, order, chart = "login-logins", "Accessi SPID e CIE al giorno", 92, True
    statuses: tuple[str, ...] = ()

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        start, end = filters.range()
        t = login_sessions
        day = day_of(t.c.created_at)
        q = (
            sa.select(day, t.c.kind, sa.func.count())
            .where(t.c.tenant_id == tenant_id, t.c.created_at >= start, t.c.created_at < end)
            .group_by(day, t.c.kind)
        )
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        total: dict[date, int] = {}
        by_kind: dict[tuple[date, str], int] = {}
        for d, kind, n in found:
            day_ = as_date(d)
            total[day_] = total.get(day_, 0) + int(n)
            by_kind[(day_, kind)] = int(n)
        return ConsoleView(
            columns=("Giorno", "SPID", "CIE", "Totale"),
            rows=[
                (
                    d.isoformat(),
                    str(by_kind.get((d, "spid"), 0)),
                    str(by_kind.get((d, "cie"), 0)),
                    str(total.get(d, 0)),
                )
                for d in filters.days()
            ],
            series=per_day(filters, total),
            unit="accessi",
        )


PANELS = [LoginsChart()]
