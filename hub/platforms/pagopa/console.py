"""pagoPA's panels of the operator console (``hub_console_panels``): the tenant's debt
positions, receipts, reconciliation (FdR flows and their results) and a chart of payments
per day. Only the tenant's own rows are read."""

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
    euro,
    per_day,
    when,
)

from .fdr_tables import fdr_flows, fdr_results
from .tables import positions, receipts

if TYPE_CHECKING:
    from aiohttp import web

GPD_STATUSES = (
    "DRAFT",
    "PUBLISHED",
    "VALID",
    "INVALID",
    "EXPIRED",
    "PARTIALLY_PAID",
    "PAID",
    "REPORTED",
)


class Positions:
    key, title, order, chart = "pagopa-positions", "Posizioni debitorie pagoPA", 10, False
    statuses = GPD_STATUSES

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        q = sa.select(
            positions.c.iupd,
            positions.c.status,
            positions.c.mode,
            positions.c.debtor_fiscal_code,
            positions.c.created_at,
            positions.c.updated_at,
        ).where(positions.c.tenant_id == tenant_id)
        if filters.status:
            q = q.where(positions.c.status == filters.status)
        q = q.order_by(positions.c.id.desc()).offset(filters.page * PAGE_SIZE).limit(PAGE_SIZE + 1)
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        return ConsoleView(
            columns=("IUPD", "Stato", "Modalità", "Debitore", "Creata", "Aggiornata"),
            rows=[
                (
                    r.iupd,
                    r.status,
                    r.mode,
                    r.debtor_fiscal_code,
                    when(r.created_at),
                    when(r.updated_at),
                )
                for r in found[:PAGE_SIZE]
            ],
            more=len(found) > PAGE_SIZE,
            empty="Nessuna posizione.",
        )


class Receipts:
    key, title, order, chart = "pagopa-receipts", "Ricevute pagoPA", 11, False
    statuses = ("pending", "forwarded", "no_adapter", "not_ours")

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        start, end = filters.range()
        q = sa.select(
            receipts.c.receipt_id,
            receipts.c.nav,
            receipts.c.amount,
            receipts.c.outcome,
            receipts.c.psp_company_name,
            receipts.c.payment_date_time,
            receipts.c.forward_status,
        ).where(
            receipts.c.tenant_id == tenant_id,
            receipts.c.received_at >= start,
            receipts.c.received_at < end,
        )
        if filters.status:
            q = q.where(receipts.c.forward_status == filters.status)
        q = q.order_by(receipts.c.id.desc()).offset(filters.page * PAGE_SIZE).limit(PAGE_SIZE + 1)
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        return ConsoleView(
            columns=(
                "Ricevuta",
                "Avviso",
                "Importo",
                "Esito",
                "PSP",
                "Pagato il",
                "Inoltro alla ragioneria",
            ),
            rows=[
                (
                    r.receipt_id,
                    r.nav,
                    euro(r.amount),
                    r.outcome,
                    r.psp_company_name or "",
                    when(r.payment_date_time),
                    r.forward_status,
                )
                for r in found[:PAGE_SIZE]
            ],
            more=len(found) > PAGE_SIZE,
            empty="Nessuna ricevuta nel periodo.",
        )


class Reconciliation:
    key, title, order, chart = "pagopa-reconciliation", "Riconciliazione (flussi FdR)", 12, False
    statuses = ("reconciled", "failed", "superseded")

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        start, end = filters.range()
        q = sa.select(
            fdr_flows.c.id,
            fdr_flows.c.fdr,
            fdr_flows.c.psp_id,
            fdr_flows.c.revision,
            fdr_flows.c.status,
            fdr_flows.c.published_at,
            fdr_flows.c.total_payments,
            fdr_flows.c.sum_payments,
            fdr_flows.c.forwarded_at,
            fdr_flows.c.reason,
        ).where(
            fdr_flows.c.tenant_id == tenant_id,
            fdr_flows.c.fetched_at >= start,
            fdr_flows.c.fetched_at < end,
        )
        if filters.status:
            q = q.where(fdr_flows.c.status == filters.status)
        q = q.order_by(fdr_flows.c.id.desc()).offset(filters.page * PAGE_SIZE).limit(PAGE_SIZE + 1)
        async with reading(app[ENGINE]) as conn:
            flows = (await conn.execute(q)).all()[: PAGE_SIZE + 1]
            ids = [f.id for f in flows]
            by_flow: dict[int, Counter[str]] = {}
            if ids:
                counted = await conn.execute(
                    sa.select(fdr_results.c.flow_id, fdr_results.c.status, sa.func.count())
                    .where(fdr_results.c.tenant_id == tenant_id, fdr_results.c.flow_id.in_(ids))
                    .group_by(fdr_results.c.flow_id, fdr_results.c.status)
                )
                for flow_id, state, n in counted:
                    by_flow.setdefault(flow_id, Counter())[state] = int(n)
        rows = []
        for f in flows[:PAGE_SIZE]:
            results = ", ".join(
                f"{k}: {v}" for k, v in sorted(by_flow.get(f.id, Counter()).items())
            )
            rows.append(
                (
                    f.fdr,
                    f.psp_id,
                    str(f.revision),
                    f.status,
                    when(f.published_at),
                    f"{f.total_payments or 0} / {euro(f.sum_payments)}",
                    results,
                    when(f.forwarded_at),
                    (f.reason or "")[:200],
                )
            )
        return ConsoleView(
            columns=(
                "Flusso",
                "PSP",
                "Rev.",
                "Stato",
                "Pubblicato",
                "Pagamenti / totale",
                "Esiti della riconciliazione",
                "Inoltrato",
                "Motivo",
            ),
            rows=rows,
            more=len(flows) > PAGE_SIZE,
            empty="Nessun flusso nel periodo.",
        )


class PaymentsChart:
    key, title, order, chart = "pagopa-payments", "Pagamenti pagoPA al giorno", 90, True
    statuses: tuple[str, ...] = ()

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        start, end = filters.range()
        day = day_of(receipts.c.received_at)
        q = (
            sa.select(day, sa.func.count(), sa.func.coalesce(sa.func.sum(receipts.c.amount), 0))
            .where(
                receipts.c.tenant_id == tenant_id,
                receipts.c.received_at >= start,
                receipts.c.received_at < end,
                receipts.c.outcome == "OK",
            )
            .group_by(day)
        )
        async with reading(app[ENGINE]) as conn:
            found = (await conn.execute(q)).all()
        counts = {as_date(d): int(n) for d, n, _ in found}
        amounts = {as_date(d): int(a) for d, _, a in found}
        return ConsoleView(
            columns=("Giorno", "Pagamenti", "Importo"),
            rows=[
                (d.isoformat(), str(counts.get(d, 0)), euro(amounts.get(d, 0)))
                for d in filters.days()
            ],
            series=per_day(filters, counts),
            unit="pagamenti",
        )


PANELS = [Positions(), Receipts(), Reconciliation(), PaymentsChart()]
