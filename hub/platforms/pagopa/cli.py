"""``sportello pagopa import --tenant T FILE``: load debt positions from a CSV file.

The file has the columns of the CSV accounting adapter (see
``sportello.adapters.accounting.csv_adapter``); the creditor's name and fiscal code come
from the tenant's ``adapters.accounting`` options when it uses the ``csv`` plugin, else from
the tenant itself. Each position is stored with allocated IUVs (``PagopaStore``);
importing the same file again changes nothing. Bad rows are listed (file, row, column)
and skipped; the exit status is 1 when there were any. In GPD mode, when more than the
tenant's ``pagopa.bulk_threshold`` positions are new, they go to GPD as bulk uploads (one
``pagopa.gpd.bulk`` job per batch, ``pagopa_gpd_bulk``) instead of one job each.

``publish`` and ``invalidate`` change one stored position (``PagopaStore.publish_position``
/ ``invalidate_position``): in GPD mode the change goes to GPD through the outbox.

``receipts-sync`` reads a GPD-mode tenant's new receipts back from GPD's receipts API;
``recover`` fetches the receipts of payments that started but never got one
(``pagopa_receipts``); ``reconcile`` matches the FdR flows.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from sportello.config import HubConfig, load_config

__all__ = ["pagopa_group"]


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SPORTELLO_CONFIG",
    required=True,
    help="TOML configuration file (or $SPORTELLO_CONFIG)",
)


@click.group("pagopa")
def pagopa_group() -> None:
    """pagoPA debt positions held by the hub."""


@pagopa_group.command("import")
@config_option
@click.option("--tenant", required=True, help="tenant id")
@click.option("--draft", is_flag=True, help="store as DRAFT (not yet payable)")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_positions(config_path: Path, tenant: str, draft: bool, file: Path) -> None:
    """Create the debt positions of FILE (CSV) for TENANT."""
    config = load_config(config_path)
    created, existing, errors = asyncio.run(_import(config, tenant, file, not draft))
    click.echo(f"{created} created, {existing} already present, {len(errors)} rejected")
    for error in errors:
        click.echo(f"  {error}", err=True)
    if errors:
        raise SystemExit(1)


def _options(config: HubConfig, tenant_id: str) -> dict[str, Any]:
    tenant = config.tenant(tenant_id)
    if tenant is None or tenant.pagopa is None:
        raise click.ClickException(f"tenant {tenant_id!r} has no pagopa settings")
    options: dict[str, Any] = {
        "company_name": tenant.name,
        "fiscal_code": tenant.pagopa.ec_fiscal_code,
    }
    ref = tenant.adapters.get("accounting")
    if ref is not None and ref.plugin == "csv":
        options.update({k: v for k, v in ref.options.items() if k not in ("path",)})
    return options


async def _import(
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


def _change_command(operation: str, help_text: str) -> None:
    @pagopa_group.command(operation, help=help_text)
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="SPORTELLO_CONFIG",
        required=True,
        help="TOML configuration file (or $SPORTELLO_CONFIG)",
    )
    @click.option("--tenant", required=True, help="tenant id")
    @click.argument("iupd")
    def command(config_path: Path, tenant: str, iupd: str) -> None:
        config = load_config(config_path)
        click.echo(asyncio.run(_change(config, tenant, iupd, operation)))


_change_command(
    "publish",
    "Publish TENANT's DRAFT position IUPD: PUBLISHED, or VALID at once without a validity "
    "date (GPD mode: sent to GPD through the outbox).",
)
_change_command(
    "invalidate",
    "Cancel TENANT's PUBLISHED or VALID position IUPD: INVALID, for good; the station "
    "refuses its notices (GPD mode: sent to GPD through the outbox).",
)


async def _change(config: HubConfig, tenant_id: str, iupd: str, operation: str) -> str:
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
            raise click.ClickException(str(exc)) from None
    finally:
        await engine.dispose()
    if not stored.changed:
        return f"{iupd}: already {stored.status}, nothing to do"
    sent = "; queued for GPD (outbox)" if stored.mode == "gpd" else ""
    return f"{iupd}: {stored.status}{sent}"


@pagopa_group.command("reconcile")
@config_option
@click.option("--tenant", required=True, help="tenant id")
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="payment day (YYYY-MM-DD): read the flows published since then and report that "
    "day; without it, read the flows published since the last run",
)
@click.option("--list", "show", is_flag=True, help="list what did not match")
def reconcile(config_path: Path, tenant: str, day: datetime | None, show: bool) -> None:
    """Read TENANT's reporting flows (FdR) and match them to positions and receipts."""
    config = load_config(config_path)
    lines, failed = asyncio.run(_reconcile(config, tenant, day.date() if day else None, show))
    for line in lines:
        click.echo(line)
    if failed:
        raise SystemExit(1)


async def _reconcile(
    config: HubConfig, tenant_id: str, day: date | None, show: bool
) -> tuple[list[str], bool]:
    from sportello.cli.main import _services
    from sportello.platforms.pagopa.fdr import (
        AMOUNT_MISMATCH,
        MATCHED,
        MISSING_RECEIPT,
        REVOKED,
        FdrNotConfigured,
        FdrReconciler,
        day_bounds,
    )

    async with _services(config) as services:
        reconciler = FdrReconciler(services.engine, config, services.clock, services.session)
        try:
            since = day_bounds(day)[0] if day is not None else None
            report = await reconciler.reconcile(tenant_id, published_after=since)
        except FdrNotConfigured as exc:
            raise click.ClickException(str(exc)) from None
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


@pagopa_group.command("receipts-sync")
@config_option
@click.option("--tenant", required=True, help="tenant id (GPD mode)")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="read the receipts paid since this day (YYYY-MM-DD) instead of the cursor's day; "
    "the cursor is left alone",
)
def receipts_sync(config_path: Path, tenant: str, since: datetime | None) -> None:
    """Read TENANT's new receipts from GPD's receipts API and store them (GPD mode)."""
    config = load_config(config_path)
    lines, failed = asyncio.run(_receipts_sync(config, tenant, since.date() if since else None))
    for line in lines:
        click.echo(line)
    if failed:
        raise SystemExit(1)


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


async def _receipts_sync(
    config: HubConfig, tenant_id: str, since: date | None
) -> tuple[list[str], bool]:
    from sportello.cli.main import _services
    from sportello.platforms.pagopa.receipts import ReceiptsUnavailable, ReceiptSync
    from sportello.platforms.pagopa.store import PagopaNotConfigured

    async with _services(config) as services:
        sync = ReceiptSync(services.engine, config, services.clock, services.session)
        try:
            report = await sync.sync(tenant_id, since=since)
        except (ReceiptsUnavailable, PagopaNotConfigured) as exc:
            raise click.ClickException(str(exc)) from None
    return _sync_lines(report), bool(report.failed)


@pagopa_group.command("recover")
@config_option
@click.option("--tenant", required=True, help="tenant id")
@click.option(
    "--minutes",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="payments started (paGetPayment answered) at least this long ago",
)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="GPD mode: also list again every receipt paid since this day (YYYY-MM-DD)",
)
def recover(config_path: Path, tenant: str, minutes: int, since: datetime | None) -> None:
    """Find TENANT's payments that started but have no receipt and fetch their receipts
    (GPD mode: from GPD's receipts API); print what was recovered and what is missing."""
    config = load_config(config_path)
    lines, missing = asyncio.run(_recover(config, tenant, minutes, since.date() if since else None))
    for line in lines:
        click.echo(line)
    if missing:
        raise SystemExit(1)


async def _recover(
    config: HubConfig, tenant_id: str, minutes: int, since: date | None
) -> tuple[list[str], bool]:
    from datetime import timedelta

    from sportello.cli.main import _services
    from sportello.platforms.pagopa.receipts import ReceiptSync
    from sportello.platforms.pagopa.store import PagopaNotConfigured

    async with _services(config) as services:
        sync = ReceiptSync(services.engine, config, services.clock, services.session)
        try:
            report = await sync.recover(
                tenant_id, older_than=timedelta(minutes=minutes), since=since
            )
        except PagopaNotConfigured as exc:
            raise click.ClickException(str(exc)) from None
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


from sportello.platforms.pagopa import notices_cli as pagopa_notices_cli  # noqa: E402, F401  (registers `pagopa notices`)
