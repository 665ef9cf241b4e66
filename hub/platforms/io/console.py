"""App IO's panels of the operator console (``hub_console_panels``): the tenant's campaigns
with their progress, and a chart of messages sent per day. Only the tenant's rows."""

from __future__ import annotations

from collections import Counter
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

from .campaigns import FINAL, QUEUED, SENDING
from .tables import io_campaigns, io_messages

if TYPE_CHECKING:
    from aiohttp import web

#: what counts as delivered to IO (the rest of FINAL did not reach the citizen)
DELIVERED = ("sent", "processed")


class Campaigns:
    key, title, order, chart = "io-campaigns", "Campagne App IO", 20, False
    statuses = ("in-progress", "done")

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        q = (
            sa.select(
                io_campaigns.c.id,
                io_campaigns.c.name,
                io_campaigns.c.service_id,
                io_campaigns.c.rows_total,
                io_campaigns.c.created_at,
            )
            .where(io_campaigns.c.tenant_id == tenant_id)
            .order_by(io_campaigns.c.id.desc())
        )
        open_ids = (
            sa.select(io_messages.c.campaign_id)
            .where(
                io_messages.c.tenant_id == tenant_id, io_messages.c.status.in_((QUEUED, SENDING))
            )
            .scalar_subquery()
        )
        if filters.status == "in-progress":
            q = q.where(io_campaigns.c.id.in_(open_ids))
        elif filters.status == "done":
            q = q.where(io_campaigns.c.id.not_in(open_ids))
        q = q.offset(filters.page * PAGE_SIZE).limit(PAGE_SIZE + 1)
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
            ids = [c.id for c in found[:PAGE_SIZE]]
            progress: dict[int, Counter[str]] = {}
            if ids:
                counted = await conn.execute(
                    sa.select(io_messages.c.campaign_id, io_messages.c.status, sa.func.count())
                    .where(io_messages.c.tenant_id == tenant_id, io_messages.c.campaign_id.in_(ids))
                    .group_by(io_messages.c.campaign_id, io_messages.c.status)
                )
                for campaign_id, state, n in counted:
                    progress.setdefault(campaign_id, Counter())[state] = int(n)
        rows = []
        for c in found[:PAGE_SIZE]:
            counts = progress.get(c.id, Counter())
            total = max(c.rows_total or 0, sum(counts.values()))
            final = sum(n for s, n in counts.items() if s in FINAL)
            delivered = sum(n for s, n in counts.items() if s in DELIVERED)
            percent = f"{100 * final // total}%" if total else "-"
            rows.append(
                (
                    str(c.id),
                    c.name,
                    c.service_id,
                    str(total),
                    f"{final} ({percent})",
                    str(delivered),
                    ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
                    when(c.created_at),
                )
            )
        return ConsoleView(
            columns=(
                "N.",
                "Nome",
                "Servizio",
                "Messaggi",
                "Conclusi",
                "Consegnati",
                "Per stato",
                "Creata",
            ),
            rows=rows,
            more=len(found) > PAGE_SIZE,
            empty="Nessuna campagna.",
        )


class MessagesChart:
    key, title, order, chart = "io-messages", "Messaggi App IO inviati al giorno", 91, True
    statuses: tuple[str, ...] = ()

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        start, end = filters.range()
        day = day_of(io_messages.c.sent_at)
        q = (
            sa.select(day, sa.func.count())
            .where(
                io_messages.c.tenant_id == tenant_id,
                io_messages.c.sent_at >= start,
                io_messages.c.sent_at < end,
            )
            .group_by(day)
        )
        async with reading(app[ENGINE]) as conn:
            counts = {as_date(d): int(n) for d, n in (await conn.execute(q)).all()}
        return ConsoleView(
            columns=("Giorno", "Messaggi"),
            rows=[(d.isoformat(), str(counts.get(d, 0))) for d in filters.days()],
            series=per_day(filters, counts),
            unit="messaggi",
        )


PANELS = [Campaigns(), MessagesChart()]
