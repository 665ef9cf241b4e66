"""pagoPA operations an operator runs (``sportello pagopa ...``), as service functions.

The CLI (``cli.py``) is a thin shell over these: it loads the configuration, runs one of them
and prints the lines it returns; tests call them directly.

- ``import_positions_file``: debt positions from a CSV file (the columns of the CSV accounting
  adapter), stored with allocated IUVs; bad rows are reported (file, row, column) and skipped;
  in GPD mode, more than ``pagopa.bulk_threshold`` new positions go to GPD as bulk uploads.
- ``change_position``: publish or invalidate one stored position.
- ``reconcile_flows``: read the FdR flows and match them to positions and receipts.
- ``sync_receipts``: read a GPD-mode tenant's new receipts from GPD's receipts API.
- ``recover_receipts``: fetch the receipts of payments that started but never got one.
- ``seed_demo_fdr``: ``sportello demo``'s flow to reconcile (the ``hub_demo_seed`` hook).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click

from sportello.config import HubConfig
from sportello.platforms.pagopa.settings import pagopa_settings

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "OperationError",
    "change_position",
    "import_positions_file",
    "reconcile_flows",
    "recover_receipts",
    "seed_demo_fdr",
    "sync_receipts",
]

log = logging.getLogger("sportello.demo")
#: The demo creditor's account (the ISO 13616 example of an Italian IBAN, not a real one).
DEMO_IBAN = "IT60X0542811101000000123456"
ROME = ZoneInfo("Europe/Rome")


class OperationError(click.ClickException):
    """An operation refused (unknown tenant or position, not configured, wrong state).

    A ``ClickException``, so the CLI prints its message and exits with status 1."""


def _options(config: HubConfig, tenant_id: str) -> dict[str, Any]:
    tenant = config.tenant(tenant_id)
    settings = pagopa_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None:
        raise OperationError(f"tenant {tenant_id!r} has no pagopa settings")
    options: dict[str, Any] = {
        "company_name": tenant.name,
        "fiscal_code": settings.ec_fiscal_code,
    }
    ref = tenant.adapters.get("accounting")
    if ref is not None and ref.plugin == "csv":
        options.update({k: v for k, v in ref.options.items() if k not in ("path",)})
    return options


async def import_positions_file(
    config: HubConfig, tenant_id: str, file: Path, to_publish: bool
) -> tuple[int, int, list[str]]:
    from sportello.adapters.accounting.base import RowError
    from sportello.adapters.accounting.csv_adapter import CsvAccountingAdapter
    from sportello.app import open_database
    from sportello.clock import SystemClock
    from sportello.platforms.pagopa.store import PagopaStore, PagopaStoreError

    adapter = CsvAccountingAdapter(_options(config, tenant_id), base_dir=file.parent)
    clock = SystemClock()
    engine = await open_database(config, apply_migrations=False, clock=clock)
    created = existing = 0
    errors: list[str] = []
    try:
        pagopa = PagopaStore(engine, config, clock)
        rows = []
        for item in await asyncio.to_thread(lambda: list(adapter.read_positions(file))):
            if isinstance(item, RowError):
                errors.append(str(item))
            else:
                rows.append(item)
        settings = pagopa.settings(tenant_id)
        if settings.mode == "gpd" and to_publish:
            new = await _new_count(engine, tenant_id, [r.iupd for r in rows])
            if new > settings.bulk_threshold:
                # one GPD bulk upload per batch instead of one call per position
                return await _import_bulk(pagopa, tenant_id, rows, errors)
        for item in rows:
            try:
                stored = await pagopa.create_position(
                    tenant_id, item.position, to_publish=to_publish
                )
            except PagopaStoreError as exc:
                errors.append(f"{item.source}: row {item.row}: iupd: {exc}")
                continue
            if stored.created:
                created += 1
            else:
                existing += 1
    finally:
        await engine.dispose()
    return created, existing, errors


async def _new_count(engine: Any, tenant_id: str, iupds: list[str]) -> int:
    from sqlalchemy import func, select

    from sportello.platforms.pagopa.tables import positions

    held = 0
    async with engine.connect() as conn:
        for start in range(0, len(iupds), 500):
            held += (
                await conn.execute(
                    select(func.count()).where(
                        positions.c.tenant_id == tenant_id,
                        positions.c.iupd.in_(iupds[start : start + 500]),
                    )
                )
            ).scalar_one()
    return len(set(iupds)) - held


async def _import_bulk(
    pagopa: Any, tenant_id: str, rows: list[Any], errors: list[str]
) -> tuple[int, int, list[str]]:
    from sportello.platforms.pagopa.gpd_bulk import BULK_BATCH, create_positions_bulk
    from sportello.platforms.pagopa.store import StoredPosition

    created = existing = 0
    for start in range(0, len(rows), BULK_BATCH):
        batch = [(r, r.position) for r in rows[start : start + BULK_BATCH]]
        for item, result in await create_positions_bulk(pagopa, tenant_id, batch):
            if not isinstance(result, StoredPosition):
                errors.append(f"{item.source}: row {item.row}: iupd: {result}")
            elif result.created:
                created += 1
            else:
                existing += 1
    return created, existing, errors


async def change_position(config: HubConfig, tenant_id: str, iupd: str, operation: str) -> str:
    from sportello.app import open_database
    from sportello.clock import SystemClock
    from sportello.platforms.pagopa.store import PagopaStore, PagopaStoreError

    clock = SystemClock()
    engine = await open_database(config, apply_migrations=False, clock=clock)
    try:
        store = PagopaStore(engine, config, clock)
        change = store.publish_position if operation == "publish" else store.invalidate_position
        try:
            stored = await change(tenant_id, iupd)
        except PagopaStoreError as exc:
            raise OperationError(str(exc)) from None
    finally:
        await engine.dispose()
    if not stored.changed:
        return f"{iupd}: already {stored.status}, nothing to do"
    sent = "; queued for GPD (outbox)" if stored.mode == "gpd" else ""
    return f"{iupd}: {stored.status}{sent}"


async def reconcile_flows(
    config: HubConfig, tenant_id: str, day: date | None, show: bool
) -> tuple[list[str], bool]:
    from sportello.cli.common import hub_services
    from sportello.platforms.pagopa.fdr import (
        AMOUNT_MISMATCH,
        MATCHED,
        MISSING_RECEIPT,
        REVOKED,
        FdrNotConfigured,
        FdrReconciler,
        day_bounds,
    )

    async with hub_services(config) as services:
        reconciler = FdrReconciler(services.engine, config, services.clock, services.session)
        try:
            since = day_bounds(day)[0] if day is not None else None
            report = await reconciler.reconcile(tenant_id, published_after=since)
        except FdrNotConfigured as exc:
            raise OperationError(str(exc)) from None
        days = {day} if day is not None else report.days
        summary = await reconciler.summary(tenant_id, days)
    lines = [
        f"flows: {report.listed} listed, {report.reconciled} reconciled, "
        f"{report.already} already reconciled, {len(report.failed)} failed",
    ]
    for fdr, psp, revision, reason in report.failed:
        lines.append(f"  failed: {fdr} (PSP {psp}, revision {revision}): {reason}")
    shown = ", ".join(d.isoformat() for d in summary.days) or "none"
    s = summary.statuses
    lines += [
        f"payment days: {shown}",
        f"matched: {s[MATCHED]}",
        f"unmatched: {s[MISSING_RECEIPT]} payments without receipt (missing receipt), "
        f"{summary.receipts_without_payment} receipts without payment, "
        f"{s[AMOUNT_MISMATCH]} amount mismatches",
        f"revoked: {s[REVOKED]}",
    ]
    if show:
        for u in summary.unmatched:
            euro = f"{u.amount // 100}.{u.amount % 100:02d}"
            lines.append(
                f"  {u.kind}: IUV {u.iuv} receipt {u.receipt_id or '-'} {euro} EUR"
                + (f": {u.detail}" if u.detail else "")
            )
    return lines, bool(report.failed)


def _sync_lines(report: Any) -> list[str]:
    shown = report.from_day.isoformat() if report.from_day else "the beginning"
    lines = [
        f"receipts listed since {shown}: {report.listed}; {report.stored} stored, "
        f"{report.duplicates} duplicates, {report.known} already held, "
        f"{len(report.failed)} failed",
        f"next read from: {report.next_day.isoformat() if report.next_day else '-'}",
    ]
    lines += [f"  failed: IUV {iuv}: {why}" for iuv, why in report.failed]
    return lines


async def sync_receipts(
    config: HubConfig, tenant_id: str, since: date | None
) -> tuple[list[str], bool]:
    from sportello.cli.common import hub_services
    from sportello.platforms.pagopa.receipts import ReceiptsUnavailable, ReceiptSync
    from sportello.platforms.pagopa.store import PagopaNotConfigured

    async with hub_services(config) as services:
        sync = ReceiptSync(
            services.engine, config, services.clock, services.session, services.plugins
        )
        try:
            report = await sync.sync(tenant_id, since=since)
        except (ReceiptsUnavailable, PagopaNotConfigured) as exc:
            raise OperationError(str(exc)) from None
    return _sync_lines(report), bool(report.failed)


async def recover_receipts(
    config: HubConfig, tenant_id: str, minutes: int, since: date | None
) -> tuple[list[str], bool]:
    from datetime import timedelta

    from sportello.cli.common import hub_services
    from sportello.platforms.pagopa.receipts import ReceiptSync
    from sportello.platforms.pagopa.store import PagopaNotConfigured

    async with hub_services(config) as services:
        sync = ReceiptSync(
            services.engine, config, services.clock, services.session, services.plugins
        )
        try:
            report = await sync.recover(
                tenant_id, older_than=timedelta(minutes=minutes), since=since
            )
        except PagopaNotConfigured as exc:
            raise OperationError(str(exc)) from None
    lines = [
        f"payments started without receipt: {len(report.candidates)}; "
        f"recovered: {len(report.recovered)}; still missing: {len(report.missing)}"
    ]
    lines += [f"  recovered: IUV {iuv} receipt {rid}" for iuv, rid in report.recovered]
    lines += [
        f"  missing: IUV {m.option.iuv} NAV {m.option.nav} (position {m.iupd}): {why}"
        for m, why in report.missing
    ]
    if report.sync is not None:
        lines += _sync_lines(report.sync)
    failed = bool(report.missing) or bool(report.sync and report.sync.failed)
    return lines, failed


async def seed_demo_fdr(app: web.Application) -> str | None:
    """Give the FdR sandbox a flow to reconcile: one notice of the demo tenant (station mode)
    is created, paid through the sandbox Node (which calls the hub's station) and its flow
    published. Done at every start, because the sandbox keeps no state; the sandbox numbers
    its flows so that a restart does not reuse an id. Returns the notice number paid."""
    from datetime import timedelta

    import aiohttp

    from sportello.appkeys import CLOCK, CONFIG, ENGINE
    from sportello.platforms.pagopa.store import PagopaStore, PagopaStoreError

    config = app[CONFIG]
    tenant = config.tenant("demo")
    p = pagopa_settings(tenant) if tenant is not None else None
    if p is None or p.mode != "station" or p.fdr_base_url is None:
        return None
    sandbox = p.fdr_base_url.split("/fdr-org/", 1)[0]
    if not sandbox.startswith("http"):
        return None
    now = app[CLOCK].now()
    text = "Diritti di segreteria (demo)"
    position = {
        "iupd": f"DEMO-FDR-{now:%Y%m%d%H%M%S%f}",
        "type": "F",
        "fiscal_code": "VRDGNN70D04H501W",  # Giovanni Verdi, in the demo registry
        "full_name": "Giovanni Verdi",
        "company_name": tenant.name if tenant is not None else "Comune di Esempio",
        "payment_options": [
            {
                "amount": 1600,
                "description": text,
                "due_date": now + timedelta(days=30),
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 1600,
                        "organization_fiscal_code": p.ec_fiscal_code,
                        "remittance_information": text,
                        "category": "9/0301109AP/",
                        "iban": DEMO_IBAN,
                    }
                ],
            }
        ],
    }
    try:
        stored = await PagopaStore(app[ENGINE], config, app[CLOCK]).create_position(
            "demo", position
        )
    except PagopaStoreError as exc:
        log.warning("demo: no notice for the FdR sandbox (%s)", exc)
        return None
    nav = stored.options[0].nav
    day = now.astimezone(ROME).date().isoformat()
    try:
        async with aiohttp.ClientSession() as session:
            pay = {"fiscalCode": p.ec_fiscal_code, "noticeNumber": nav}
            async with session.post(sandbox + "/psp/pay", json=pay) as response:
                result = await response.json(content_type=None)
            if response.status >= 300 or result.get("outcome") != "OK":
                log.warning("demo: the sandbox Node did not pay notice %s: %s", nav, result)
                return None
            async with session.post(f"{sandbox}/__sandbox/fdr/publish?date={day}") as response:
                if response.status >= 300:
                    log.warning("demo: the FdR sandbox did not publish: %s", await response.text())
                    return None
    except (aiohttp.ClientError, ValueError) as exc:
        log.warning("demo: pagoPA sandbox not reachable (%s); no FdR flow to reconcile", exc)
        return None
    return nav
