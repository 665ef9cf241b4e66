"""GPD mode: receipts read back from GPD's receipts API, and the recovery of missing ones.

In GPD mode PagoPA answers the Node and keeps the receipts; the hub reads them back:

- :meth:`ReceiptSync.sync` lists the tenant's receipts from the cursor's payment day
  (``pagopa_receipt_cursors``; that day is listed again, the API filters by day), skips
  the notice numbers the hub already has a receipt for, fetches each new one's XML (the
  ``paSendRT[V2]`` request GPD stored) and stores it with ``PagopaStore.store_receipt``,
  the station's exactly-once path: a receipt stored twice is a harmless duplicate, and
  forwarding to accounting is queued in the same transaction, and so is SEND's payment event
  when a SEND notification carries the notice (``hub_notice_paid``). The cursor moves to the
  latest payment day seen, by compare-and-set from the value the round read: of two rounds
  at once (replicas, ``receipts-sync``) the later writer never moves it back.
- :meth:`ReceiptSync.recover` takes the options whose payment started (paGetPayment
  answered) more than N minutes ago and still have no receipt; in GPD mode it fetches
  their receipts by IUV (and, with ``since``, lists everything paid since that day again,
  ignoring the cursor); what is still missing is reported.

``sportello pagopa receipts-sync`` and ``sportello pagopa recover`` run them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import aiohttp
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.clock import Clock
from sportello.config import HubConfig
from sportello.connectors.errors import ConnectorError
from sportello.connectors.pagopa import station as st
from sportello.connectors.pagopa.errors import InvalidNoticeNumber
from sportello.connectors.pagopa.gpd_receipts import GpdReceiptsClient, receipts_base_url
from sportello.connectors.pagopa.identifiers import notice_number
from sportello.db import reading
from sportello.platforms.pagopa.receipts_tables import receipt_cursors
from sportello.platforms.pagopa.settings import PagopaTenantSettings
from sportello.platforms.pagopa.store import OptionMatch, PagopaStore, ReceiptOutcome
from sportello.platforms.pagopa.tables import receipts

if TYPE_CHECKING:
    from sportello.plugins import Plugins

__all__ = ["ReceiptSync", "ReceiptsUnavailable", "RecoveryReport", "SyncReport"]

_CONCURRENCY = 8


class ReceiptsUnavailable(Exception):
    """The tenant cannot read receipts from GPD (not GPD mode, no key)."""


@dataclass
class SyncReport:
    from_day: date | None
    next_day: date | None = None
    listed: int = 0
    #: already held by the hub (not fetched again)
    known: int = 0
    stored: int = 0
    duplicates: int = 0
    #: (IUV, why) of receipts listed but not stored; the next run tries them again
    failed: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class RecoveryReport:
    candidates: list[OptionMatch]
    #: (IUV, receipt id) stored by this run
    recovered: list[tuple[str, str]] = field(default_factory=list)
    #: options still without a receipt, with the reason
    missing: list[tuple[OptionMatch, str]] = field(default_factory=list)
    sync: SyncReport | None = None


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


class ReceiptSync:
    """Reads GPD-mode tenants' receipts into the hub."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: HubConfig,
        clock: Clock,
        session: aiohttp.ClientSession,
        plugins: Plugins | None = None,
    ) -> None:
        self.engine, self.config, self.clock, self.session = engine, config, clock, session
        # ``plugins``: told of each notice a receipt read back pays (``hub_notice_paid``: the
        # SEND platform tells SEND), as when the station stores one
        self.store = PagopaStore(engine, config, clock, plugins)

    def _client(self, tenant_id: str) -> tuple[PagopaTenantSettings, GpdReceiptsClient]:
        settings = self.store.settings(tenant_id)
        if settings.mode != "gpd":
            raise ReceiptsUnavailable(
                f"tenant {tenant_id!r} is in station mode: receipts come from the Node"
            )
        if settings.api_key is None:
            raise ReceiptsUnavailable(f"tenant {tenant_id!r} has no pagopa.api_key")
        url = settings.receipts_base_url or receipts_base_url(settings.base_url)
        return settings, GpdReceiptsClient(self.session, url, api_key=settings.api_key.reveal)

    # -- cursor ---------------------------------------------------------------------------

    async def cursor(self, tenant_id: str) -> date | None:
        return _day(await self._cursor_value(tenant_id))

    async def _cursor_value(self, tenant_id: str) -> str | None:
        async with reading(self.engine) as conn:
            value = (
                await conn.execute(
                    select(receipt_cursors.c.from_day).where(
                        receipt_cursors.c.tenant_id == tenant_id
                    )
                )
            ).scalar_one_or_none()
        return value if isinstance(value, str) else None

    async def _save_cursor(
        self, tenant_id: str, read: str | None, day: date | None, stored: int
    ) -> bool:
        """Move the cursor from ``read`` (the value this round started from) to ``day``:
        compare-and-set, so a round that lost a race with another one (a replica, the CLI)
        never moves the cursor back. False when another round moved it first."""
        values: dict[str, Any] = {
            "from_day": day.isoformat() if day else None,
            "synced_at": self.clock.now(),
            "stored": stored,
        }
        async with self.engine.begin() as conn:
            moved = await conn.execute(
                update(receipt_cursors)
                .where(
                    receipt_cursors.c.tenant_id == tenant_id,
                    receipt_cursors.c.from_day.is_not_distinct_from(read),
                )
                .values(**values)
            )
            if moved.rowcount == 1:
                return True
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            inserted = await conn.execute(
                dialect.insert(receipt_cursors)
                .values(tenant_id=tenant_id, **values)
                .on_conflict_do_nothing(index_elements=["tenant_id"])
            )
            return bool(inserted.rowcount == 1)

    # -- reading --------------------------------------------------------------------------

    async def _known(self, tenant_id: str, iuvs: list[str]) -> set[str]:
        """The IUVs among ``iuvs`` whose notice the hub already holds a receipt for."""
        navs: dict[str, str] = {}
        for iuv in iuvs:
            try:
                navs[notice_number(iuv)] = iuv
            except (InvalidNoticeNumber, ValueError):
                continue
        if not navs:
            return set()
        async with reading(self.engine) as conn:
            rows = await conn.execute(
                select(receipts.c.nav).where(
                    receipts.c.tenant_id == tenant_id, receipts.c.nav.in_(list(navs))
                )
            )
            return {navs[r.nav] for r in rows}

    async def store_iuv(
        self, tenant_id: str, iuv: str, *, client: GpdReceiptsClient | None = None
    ) -> ReceiptOutcome | None:
        """Fetch the receipt of ``iuv`` and store it; None when GPD has none. Raises
        ``ConnectorError`` (the API failed) or ``StationError`` (the XML is unusable)."""
        settings, default = self._client(tenant_id)
        client = client or default
        xml = await client.get_receipt(settings.ec_fiscal_code, iuv)
        if xml is None:
            return None
        parsed = st.parse_request(xml)
        if not isinstance(parsed, st.SendRT):
            raise st.StationError(
                st.FaultCode.SEMANTICA, f"GPD's receipt of IUV {iuv} is a {parsed.operation}"
            )
        if parsed.receipt.fiscal_code != settings.ec_fiscal_code:
            raise st.StationError(
                st.FaultCode.SEMANTICA, f"GPD's receipt of IUV {iuv} is for another creditor"
            )
        return await self.store.store_receipt(
            tenant_id,
            parsed.receipt,
            raw_xml=xml.decode("utf-8", errors="replace"),
            version=parsed.version,
        )

    async def _store_many(
        self, tenant_id: str, iuvs: list[str], client: GpdReceiptsClient
    ) -> list[tuple[str, ReceiptOutcome | str | None]]:
        gate = asyncio.Semaphore(_CONCURRENCY)

        async def one(iuv: str) -> tuple[str, ReceiptOutcome | str | None]:
            async with gate:
                try:
                    return iuv, await self.store_iuv(tenant_id, iuv, client=client)
                except (ConnectorError, st.StationError) as exc:
                    return iuv, str(exc)[:300]

        return list(await asyncio.gather(*(one(i) for i in iuvs)))

    async def sync(self, tenant_id: str, *, since: date | None = None) -> SyncReport:
        """Read the receipts paid since ``since`` (default: the cursor) into the hub."""
        settings, client = self._client(tenant_id)
        read = await self._cursor_value(tenant_id) if since is None else None
        start = since if since is not None else _day(read)
        report = SyncReport(from_day=start)
        latest = start
        page: list[tuple[str, str | None]] = []
        days: dict[str, date | None] = {}

        async def flush() -> None:
            iuvs = [iuv for iuv, _ in page]
            known = await self._known(tenant_id, iuvs)
            report.known += len(known)
            for iuv, result in await self._store_many(
                tenant_id, [i for i in iuvs if i not in known], client
            ):
                if isinstance(result, str):
                    report.failed.append((iuv, result))
                elif result is None:
                    report.failed.append((iuv, "listed, but GPD has no receipt for it"))
                elif result.duplicate:
                    report.duplicates += 1
                else:
                    report.stored += 1
            page.clear()

        async for item in client.iter_receipts(settings.ec_fiscal_code, from_day=start):
            report.listed += 1
            day = _day(item.payment_date_time)
            if day is not None and (latest is None or day > latest):
                latest = day
            page.append((item.iuv, item.payment_date_time))
            days[item.iuv] = day
            if len(page) >= 100:
                await flush()
        await flush()
        # a failed receipt keeps the cursor on its day, so the next run lists it again
        failed_days = [d for iuv, _ in report.failed if (d := days.get(iuv)) is not None]
        report.next_day = min([d for d in (latest, *failed_days) if d is not None], default=None)
        if since is None:
            await self._save_cursor(tenant_id, read, report.next_day, report.stored)
        return report

    async def recover(
        self,
        tenant_id: str,
        *,
        older_than: timedelta = timedelta(minutes=30),
        since: date | None = None,
        limit: int = 1000,
    ) -> RecoveryReport:
        """Find and (GPD mode) fetch the receipts the hub is missing."""
        settings = self.store.settings(tenant_id)
        candidates = await self.store.receipts_for_recovery(
            tenant_id, activated_before=self.clock.now() - older_than, limit=limit
        )
        report = RecoveryReport(candidates)
        if settings.mode != "gpd" or settings.api_key is None:
            why = (
                "station mode: ask biz-events or the Node's operators for this receipt"
                if settings.mode != "gpd"
                else "no pagopa.api_key to read GPD's receipts"
            )
            report.missing = [(c, why) for c in candidates]
            return report
        _, client = self._client(tenant_id)
        results = await self._store_many(tenant_id, [c.option.iuv for c in candidates], client)
        by_iuv = dict(results)
        for c in candidates:
            result = by_iuv.get(c.option.iuv)
            if isinstance(result, ReceiptOutcome):
                report.recovered.append((c.option.iuv, result.receipt_id))
            elif result is None:
                report.missing.append((c, "GPD has no receipt: the payment did not complete"))
            else:
                report.missing.append((c, result))
        if since is not None:
            report.sync = await self.sync(tenant_id, since=since)
        return report
