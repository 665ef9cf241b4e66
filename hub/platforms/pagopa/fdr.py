"""FdR reconciliation: match what PSPs report (flussi di rendicontazione) to the hub's
positions and receipts.

``FdrReconciler.reconcile(tenant)`` reads the flows published for the tenant's
organization (``pagopa.ec_fiscal_code``) from the FdR organization API
(``pagopa.fdr_base_url`` and ``pagopa.fdr_api_key``; :mod:`sportello.connectors.pagopa.fdr`)
and, flow by flow, in one transaction each:

- stores the flow (``pagopa_fdr_flows``, with the documents as served) and one result per
  reported payment (``pagopa_fdr_results``). A payment is matched to its receipt by IUR
  (the receipt id; by IUV when no receipt has that id) and to its payment option by IUV:
  ``matched`` (the amount is the receipt's transfer ``idTransfer``), ``amount_mismatch``,
  ``missing_receipt`` (the PSP collected it but no receipt reached the hub: the case to
  chase), or ``revoked`` (``payStatus`` REVOKED);
- a higher revision of a flow replaces the results of the earlier ones (marked
  ``superseded``); a flow already reconciled at the same revision is not read again;
- queues ``pagopa.reconciliation.forward`` (payload ``{"flow": id}``), whose handler
  gives each result to the tenant's accounting adapter (``push_reconciliation``).

One flow that cannot be read (an HTTP error, a malformed document, totals that do not
add up) is stored ``failed`` with the reason and tried again on the next run; the other
flows go on. :meth:`FdrReconciler.summary` counts, for payment days, the results and the
receipts no flow reported (``receipt_without_payment``).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sportello.adapters.accounting.base import ReconciliationResult
from sportello.clock import Clock
from sportello.config import HubConfig
from sportello.connectors.errors import PermanentError
from sportello.connectors.pagopa.fdr import (
    PRODUCTION_BASE_URL,
    FdrClient,
    FdrError,
    Flow,
    FlowPayment,
    FlowRef,
)
from sportello.db import reading
from sportello.outbox import Delivery, Handler, Job
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.pagopa.fdr_tables import (
    FLOW_FAILED,
    FLOW_RECONCILED,
    FLOW_SUPERSEDED,
    fdr_flows,
    fdr_results,
)
from sportello.platforms.pagopa.settings import PagopaTenantSettings, pagopa_settings
from sportello.platforms.pagopa.tables import payment_options, positions, receipts
from sportello.services import HubServices

__all__ = [
    "AMOUNT_MISMATCH",
    "MATCHED",
    "MISSING_RECEIPT",
    "RECEIPT_WITHOUT_PAYMENT",
    "RECONCILIATION_FORWARD_KIND",
    "REVOKED",
    "DaySummary",
    "FdrNotConfigured",
    "FdrReconciler",
    "ReconcileReport",
    "reconciliation_forward_handler",
]

ROME = ZoneInfo("Europe/Rome")
RECONCILIATION_FORWARD_KIND = "pagopa.reconciliation.forward"
MATCHED, AMOUNT_MISMATCH, MISSING_RECEIPT, REVOKED = (
    "matched",
    "amount_mismatch",
    "missing_receipt",
    "revoked",
)
RECEIPT_WITHOUT_PAYMENT = "receipt_without_payment"
_CHUNK = 500


class FdrNotConfigured(Exception):
    """The tenant has no pagoPA settings or no FdR subscription key."""


@dataclass
class ReconcileReport:
    """What one run did."""

    listed: int = 0
    reconciled: int = 0
    already: int = 0
    #: (fdr, psp, revision, reason) of the flows that could not be read.
    failed: list[tuple[str, str, int, str]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    #: Payment days (Rome) of the payments reconciled in this run.
    days: set[date] = field(default_factory=set)


@dataclass(frozen=True)
class Unmatched:
    kind: str  # missing_receipt, amount_mismatch, receipt_without_payment
    iuv: str
    receipt_id: str | None
    amount: int
    detail: str | None


@dataclass
class DaySummary:
    days: tuple[date, ...]
    statuses: Counter[str]
    receipts_without_payment: int
    failed_flows: int
    unmatched: list[Unmatched]

    @property
    def matched(self) -> int:
        return self.statuses[MATCHED]


def forward_key(tenant_id: str, flow_id: int) -> str:
    digest = hashlib.sha256(f"{tenant_id}\0{flow_id}".encode()).hexdigest()
    return f"{RECONCILIATION_FORWARD_KIND}:{digest}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where ``day`` (Italian time) starts and ends."""
    start = datetime.combine(day, time(), tzinfo=ROME).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=ROME).astimezone(UTC)
    return start, end


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class FdrReconciler:
    """Reads a tenant's flows and stores the reconciliation (see the module docstring)."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: HubConfig,
        clock: Clock,
        session: aiohttp.ClientSession,
        *,
        client: FdrClient | None = None,
    ) -> None:
        self.engine, self.config, self.clock, self.session = engine, config, clock, session
        self._client = client

    def settings(self, tenant_id: str) -> PagopaTenantSettings:
        tenant = self.config.tenant(tenant_id)
        settings = pagopa_settings(tenant) if tenant is not None else None
        if settings is None:
            raise FdrNotConfigured(f"tenant {tenant_id!r} has no pagoPA settings")
        return settings

    def client(self, tenant_id: str) -> FdrClient:
        if self._client is not None:
            return self._client
        settings = self.settings(tenant_id)
        if settings.fdr_api_key is None:
            raise FdrNotConfigured(f"tenant {tenant_id!r} has no pagopa.fdr_api_key")
        try:
            api_key = settings.fdr_api_key.reveal()
        except LookupError as exc:
            raise FdrNotConfigured(f"tenant {tenant_id!r}: pagopa.fdr_api_key: {exc}") from None
        return FdrClient(
            self.session, settings.fdr_base_url or PRODUCTION_BASE_URL, api_key=api_key
        )

    # -- reading and storing -----------------------------------------------------------

    async def reconcile(
        self, tenant_id: str, *, published_after: datetime | None = None
    ) -> ReconcileReport:
        """Read the flows published after ``published_after`` (default: just before the
        latest one already stored, or FdR's default window on the first run)."""
        org = self.settings(tenant_id).ec_fiscal_code
        client = self.client(tenant_id)
        if published_after is None:
            # Just before the latest flow stored, or the earliest one that failed.
            async with reading(self.engine) as conn:
                latest, earliest_failed = (
                    await conn.execute(
                        select(
                            func.max(fdr_flows.c.published_at).filter(
                                fdr_flows.c.status != FLOW_FAILED
                            ),
                            func.min(fdr_flows.c.published_at).filter(
                                fdr_flows.c.status == FLOW_FAILED
                            ),
                        ).where(fdr_flows.c.tenant_id == tenant_id)
                    )
                ).one()
            marks = [m for m in (latest, earliest_failed) if m is not None]
            if marks:
                published_after = min(marks) - timedelta(seconds=1)
        report = ReconcileReport()
        refs = await client.list_flows(org, published_after=published_after)
        report.listed = len(refs)
        known = await self._known(tenant_id, refs)
        for ref in refs:
            state = known.get((ref.fdr, ref.psp_id))
            if state is not None and state >= ref.revision:
                report.already += 1
                continue
            try:
                flow = await client.get_flow(org, ref)
            except FdrError as exc:
                reason = str(exc) or type(exc).__name__
                await self._record_failure(tenant_id, org, ref, reason)
                report.failed.append((ref.fdr, ref.psp_id, ref.revision, reason))
                continue
            statuses = await self._store(tenant_id, flow)
            if statuses is None:
                report.already += 1
                continue
            report.reconciled += 1
            report.statuses.update(statuses)
            report.days.update(p.pay_date.astimezone(ROME).date() for p in flow.payments)
        return report

    async def _known(self, tenant_id: str, refs: Sequence[FlowRef]) -> dict[tuple[str, str], int]:
        """The highest revision reconciled (or superseded) per (fdr, psp) among ``refs``."""
        fdrs = sorted({r.fdr for r in refs})
        out: dict[tuple[str, str], int] = {}
        async with reading(self.engine) as conn:
            for chunk in _chunks(fdrs):
                rows = await conn.execute(
                    select(fdr_flows.c.fdr, fdr_flows.c.psp_id, func.max(fdr_flows.c.revision))
                    .where(
                        fdr_flows.c.tenant_id == tenant_id,
                        fdr_flows.c.fdr.in_(chunk),
                        fdr_flows.c.status != FLOW_FAILED,
                    )
                    .group_by(fdr_flows.c.fdr, fdr_flows.c.psp_id)
                )
                for fdr, psp, revision in rows:
                    out[(fdr, psp)] = int(revision)
        return out

    async def _record_failure(self, tenant_id: str, org: str, ref: FlowRef, reason: str) -> None:
        now = self.clock.now()
        values = {
            "status": FLOW_FAILED,
            "published_at": ref.published,
            "reason": reason[:2000],
            "fetched_at": now,
        }
        async with self.engine.begin() as conn:
            key = self._key_clause(tenant_id, ref.fdr, ref.psp_id, ref.revision)
            existing = (await conn.execute(select(fdr_flows.c.status).where(key))).first()
            if existing is None:
                await conn.execute(
                    insert(fdr_flows).values(
                        tenant_id=tenant_id,
                        organization_id=org,
                        fdr=ref.fdr,
                        psp_id=ref.psp_id,
                        revision=ref.revision,
                        **values,
                    )
                )
            elif existing.status == FLOW_FAILED:
                await conn.execute(update(fdr_flows).where(key).values(**values))

    @staticmethod
    def _key_clause(tenant_id: str, fdr: str, psp: str, revision: int) -> Any:
        return and_(
            fdr_flows.c.tenant_id == tenant_id,
            fdr_flows.c.fdr == fdr,
            fdr_flows.c.psp_id == psp,
            fdr_flows.c.revision == revision,
        )

    async def _store(self, tenant_id: str, flow: Flow) -> Counter[str] | None:
        """Match and store ``flow`` in one transaction; None when it was there already."""
        now = self.clock.now()
        try:
            async with self.engine.begin() as conn:
                return await self._store_in(conn, tenant_id, flow, now)
        except IntegrityError:
            return None  # a concurrent run stored it

    async def _store_in(
        self, conn: AsyncConnection, tenant_id: str, flow: Flow, now: datetime
    ) -> Counter[str] | None:
        same_flow = and_(
            fdr_flows.c.tenant_id == tenant_id,
            fdr_flows.c.fdr == flow.fdr,
            fdr_flows.c.psp_id == flow.psp_id,
        )
        rows = (
            await conn.execute(
                select(fdr_flows.c.id, fdr_flows.c.revision, fdr_flows.c.status).where(same_flow)
            )
        ).all()
        if any(r.revision >= flow.revision and r.status != FLOW_FAILED for r in rows):
            return None
        older = [int(r.id) for r in rows if r.revision < flow.revision]
        if older:
            await conn.execute(delete(fdr_results).where(fdr_results.c.flow_id.in_(older)))
            await conn.execute(
                update(fdr_flows)
                .where(fdr_flows.c.id.in_(older), fdr_flows.c.status != FLOW_FAILED)
                .values(status=FLOW_SUPERSEDED)
            )
        failed_row = next((r for r in rows if r.revision == flow.revision), None)
        values = {
            "status": FLOW_RECONCILED,
            "published_at": flow.published,
            "regulation": flow.regulation,
            "regulation_date": flow.regulation_date.isoformat() if flow.regulation_date else None,
            "total_payments": flow.total_payments,
            "sum_payments": flow.sum_payments,
            "reason": None,
            "raw": json.dumps(flow.raw, separators=(",", ":"), ensure_ascii=False),
            "fetched_at": now,
        }
        if failed_row is not None:
            flow_id = int(failed_row.id)
            await conn.execute(update(fdr_flows).where(fdr_flows.c.id == flow_id).values(**values))
        else:
            flow_id = (
                await conn.execute(
                    insert(fdr_flows)
                    .values(
                        tenant_id=tenant_id,
                        organization_id=flow.organization_id,
                        fdr=flow.fdr,
                        psp_id=flow.psp_id,
                        revision=flow.revision,
                        **values,
                    )
                    .returning(fdr_flows.c.id)
                )
            ).scalar_one()
        results = await self._match(conn, tenant_id, flow_id, flow.payments)
        if results:
            await conn.execute(insert(fdr_results), results)
        await enqueue_many(
            conn,
            [
                NewJob(
                    tenant_id,
                    RECONCILIATION_FORWARD_KIND,
                    {"flow": flow_id},
                    idempotency_key=forward_key(tenant_id, flow_id),
                )
            ],
            now=now,
            default_max_attempts=self.config.outbox.max_attempts,
        )
        return Counter(r["status"] for r in results)

    async def _match(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        flow_id: int,
        payments: Sequence[FlowPayment],
    ) -> list[dict[str, Any]]:
        by_id: dict[str, Any] = {}
        by_iuv: dict[str, Any] = {}
        options: dict[str, Any] = {}
        iurs = sorted({p.iur for p in payments})
        iuvs = sorted({p.iuv for p in payments})
        cols = (
            receipts.c.receipt_id,
            receipts.c.iuv,
            receipts.c.nav,
            receipts.c.amount,
            receipts.c.outcome,
            receipts.c.position_id,
            receipts.c.data,
        )
        for chunk in _chunks(iurs):
            for row in await conn.execute(
                select(*cols).where(
                    receipts.c.tenant_id == tenant_id, receipts.c.receipt_id.in_(chunk)
                )
            ):
                by_id[row.receipt_id] = row
        for chunk in _chunks(iuvs):
            for row in await conn.execute(
                select(*cols)
                .where(
                    receipts.c.tenant_id == tenant_id,
                    receipts.c.iuv.in_(chunk),
                    receipts.c.outcome == "OK",
                )
                .order_by(receipts.c.id)
            ):
                by_iuv.setdefault(row.iuv, row)
            for opt in await conn.execute(
                select(
                    payment_options.c.iuv,
                    payment_options.c.nav,
                    payment_options.c.status,
                    payment_options.c.position_id,
                    positions.c.iupd,
                )
                .join(positions, positions.c.id == payment_options.c.position_id)
                .where(payment_options.c.tenant_id == tenant_id, payment_options.c.iuv.in_(chunk))
            ):
                options[opt.iuv] = opt
        out = []
        for p in payments:
            receipt = by_id.get(p.iur)
            if receipt is not None and receipt.iuv != p.iuv:
                receipt = None
            if receipt is None:
                receipt = by_iuv.get(p.iuv)
            option = options.get(p.iuv)
            status, detail = self._judge(p, receipt, option)
            out.append(
                {
                    "tenant_id": tenant_id,
                    "flow_id": flow_id,
                    "idx": p.index,
                    "iuv": p.iuv,
                    "iur": p.iur,
                    "id_transfer": p.id_transfer,
                    "amount": p.amount,
                    "pay_status": p.pay_status,
                    "pay_date": p.pay_date,
                    "status": status,
                    "receipt_id": receipt.receipt_id if receipt is not None else None,
                    "nav": receipt.nav if receipt is not None else (option.nav if option else None),
                    "position_id": (
                        receipt.position_id
                        if receipt is not None and receipt.position_id is not None
                        else (option.position_id if option else None)
                    ),
                    "detail": detail,
                }
            )
        return out

    @staticmethod
    def _judge(p: FlowPayment, receipt: Any, option: Any) -> tuple[str, str | None]:
        if p.pay_status == "REVOKED":
            return REVOKED, "the PSP revoked this payment"
        if receipt is None:
            if option is None:
                return MISSING_RECEIPT, "no receipt and no payment option with this IUV"
            return (
                MISSING_RECEIPT,
                f"no receipt; option {option.nav} of position {option.iupd} is {option.status}",
            )
        notes = []
        if receipt.receipt_id != p.iur:
            notes.append(f"IUR differs from the receipt id {receipt.receipt_id}")
        transfers = json.loads(receipt.data).get("transfers") or []
        line = next((t for t in transfers if int(t.get("id_transfer", 0)) == p.id_transfer), None)
        if line is None:
            return AMOUNT_MISMATCH, f"the receipt has no transfer {p.id_transfer}"
        if int(line["amount"]) != p.amount:
            return (
                AMOUNT_MISMATCH,
                f"reported {p.amount} cents, transfer {p.id_transfer} of the receipt is "
                f"{line['amount']}",
            )
        if p.pay_status.startswith("STAND_IN"):
            notes.append("collected in Stand-In")
        return MATCHED, "; ".join(notes) or None

    # -- reporting ---------------------------------------------------------------------

    async def summary(
        self, tenant_id: str, days: Iterable[date], *, list_limit: int = 100
    ) -> DaySummary:
        """Results and receipts without a reported payment, for payments made on ``days``."""
        wanted = tuple(sorted(set(days)))
        statuses: Counter[str] = Counter()
        unmatched: list[Unmatched] = []
        without = 0
        async with reading(self.engine) as conn:
            for day in wanted:
                start, end = day_bounds(day)
                in_day = and_(
                    fdr_results.c.tenant_id == tenant_id,
                    fdr_results.c.pay_date >= start,
                    fdr_results.c.pay_date < end,
                )
                for status, count in await conn.execute(
                    select(fdr_results.c.status, func.count())
                    .where(in_day)
                    .group_by(fdr_results.c.status)
                ):
                    statuses[status] += int(count)
                for row in await conn.execute(
                    select(fdr_results)
                    .where(in_day, fdr_results.c.status.in_([MISSING_RECEIPT, AMOUNT_MISMATCH]))
                    .order_by(fdr_results.c.id)
                    .limit(list_limit)
                ):
                    unmatched.append(
                        Unmatched(row.status, row.iuv, row.receipt_id, row.amount, row.detail)
                    )
                reported = select(fdr_results.c.receipt_id).where(
                    fdr_results.c.tenant_id == tenant_id,
                    fdr_results.c.receipt_id.is_not(None),
                )
                orphan = and_(
                    receipts.c.tenant_id == tenant_id,
                    receipts.c.outcome == "OK",
                    receipts.c.payment_date_time >= start,
                    receipts.c.payment_date_time < end,
                    receipts.c.receipt_id.not_in(reported),
                )
                count = (await conn.execute(select(func.count()).where(orphan))).scalar_one()
                without += int(count)
                for row in await conn.execute(
                    select(receipts.c.receipt_id, receipts.c.iuv, receipts.c.amount)
                    .where(orphan)
                    .order_by(receipts.c.id)
                    .limit(list_limit)
                ):
                    unmatched.append(
                        Unmatched(
                            RECEIPT_WITHOUT_PAYMENT,
                            row.iuv,
                            row.receipt_id,
                            int(row.amount),
                            "no flow reports this receipt (yet)",
                        )
                    )
            failed = (
                await conn.execute(
                    select(func.count()).where(
                        fdr_flows.c.tenant_id == tenant_id, fdr_flows.c.status == FLOW_FAILED
                    )
                )
            ).scalar_one()
        return DaySummary(wanted, statuses, without, int(failed), unmatched)


# -- outbox --------------------------------------------------------------------------------


def reconciliation_forward_handler(services: HubServices) -> Handler:
    """``pagopa.reconciliation.forward``: a flow's results to the accounting adapter."""
    from sportello.platforms.pagopa.jobs import NO_ADAPTER_NOTE, AccountingAdapters

    adapters = AccountingAdapters(services)

    async def handle(job: Job) -> Delivery:
        flow_id = int(job.payload["flow"])
        async with reading(services.engine) as conn:
            flow = (
                await conn.execute(
                    select(fdr_flows.c.fdr, fdr_flows.c.revision, fdr_flows.c.status).where(
                        fdr_flows.c.id == flow_id, fdr_flows.c.tenant_id == job.tenant_id
                    )
                )
            ).first()
            if flow is None:
                raise PermanentError("the reconciled flow is not stored", platform="accounting")
            rows = (
                await conn.execute(
                    select(fdr_results)
                    .where(fdr_results.c.flow_id == flow_id)
                    .order_by(fdr_results.c.idx)
                )
            ).all()
        if flow.status != FLOW_RECONCILED:
            return Delivery(remote_id=f"{flow.status}: not forwarded")
        adapter = adapters.get(job.tenant_id)
        if adapter is None:
            return Delivery(remote_id=NO_ADAPTER_NOTE)
        for row in rows:
            detail = f"revision {flow.revision}, transfer {row.id_transfer}, {row.pay_status}"
            if row.detail:
                detail += f": {row.detail}"
            await adapter.push_reconciliation(
                ReconciliationResult(
                    tenant_id=job.tenant_id,
                    flow_id=flow.fdr,
                    iuv=row.iuv,
                    amount=int(row.amount),
                    status=row.status,
                    receipt_id=row.receipt_id,
                    detail=detail,
                )
            )
        async with services.engine.begin() as conn:
            await conn.execute(
                update(fdr_flows)
                .where(fdr_flows.c.id == flow_id)
                .values(forwarded_at=services.clock.now())
            )
        return Delivery(remote_id=flow.fdr[:200])

    return handle
