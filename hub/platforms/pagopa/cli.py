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
(``pagopa_receipts``); ``reconcile`` matches the FdR flows. ``notices --out FILE.zip``
writes the payment notices (PDF) of many positions into one ZIP.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from sportello.config import HubConfig, load_config
from sportello.platforms.pagopa import operations

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
    created, existing, errors = asyncio.run(
        operations.import_positions_file(config, tenant, file, not draft)
    )
    click.echo(f"{created} created, {existing} already present, {len(errors)} rejected")
    for error in errors:
        click.echo(f"  {error}", err=True)
    if errors:
        raise SystemExit(1)


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
        click.echo(asyncio.run(operations.change_position(config, tenant, iupd, operation)))


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
    lines, failed = asyncio.run(
        operations.reconcile_flows(config, tenant, day.date() if day else None, show)
    )
    for line in lines:
        click.echo(line)
    if failed:
        raise SystemExit(1)


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
    lines, failed = asyncio.run(
        operations.sync_receipts(config, tenant, since.date() if since else None)
    )
    for line in lines:
        click.echo(line)
    if failed:
        raise SystemExit(1)


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
    lines, missing = asyncio.run(
        operations.recover_receipts(config, tenant, minutes, since.date() if since else None)
    )
    for line in lines:
        click.echo(line)
    if missing:
        raise SystemExit(1)


# `sportello pagopa notices --tenant T --out FILE.zip`: one PDF per position ("avviso di
# pagamento", single payment and instalments), streamed into a ZIP with a progress bar;
# positions are read page by page, so memory stays flat. Every notice holds the debtor's data,
# so each one written is an audit-log entry (actor ``cli:<user>``).
NOTICES_PAGE = 200


@pagopa_group.command("notices")
@config_option
@click.option("--tenant", required=True, help="tenant id")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="ZIP to write"
)
@click.option("--status", default=None, help="only positions in this state (e.g. VALID)")
def notices(config_path: Path, tenant: str, out: Path, status: str | None) -> None:
    """Write the payment notices (PDF) of the tenant's positions into one ZIP."""
    config = load_config(config_path)
    found = config.tenant(tenant)
    from sportello.platforms.pagopa.settings import pagopa_settings

    if found is None or pagopa_settings(found) is None:
        raise click.ClickException(f"tenant {tenant!r} has no [tenants.pagopa] section")
    written = asyncio.run(_write_notices(config, tenant, out, status))
    click.echo(f"{written} notices written to {out}")


async def _write_notices(config: HubConfig, tenant_id: str, out: Path, status: str | None) -> int:
    from rich.progress import Progress
    from sqlalchemy import func, select

    from sportello import audit
    from sportello.app import open_database
    from sportello.clock import SystemClock
    from sportello.connectors.pagopa.notice_pdf import render_bulk
    from sportello.db import reading
    from sportello.platforms.pagopa.api import notice_creditor
    from sportello.platforms.pagopa.store import PagopaStore
    from sportello.platforms.pagopa.tables import positions as table

    tenant = config.tenant(tenant_id)
    assert tenant is not None
    clock = SystemClock()
    engine = await open_database(config, apply_migrations=False, clock=clock)
    store = PagopaStore(engine, config, clock)

    def creditor(position: Any) -> Any:
        # the postal slip only for positions with a postal IBAN of the tenant's account
        return notice_creditor(tenant, position)

    actor = f"cli:{getpass.getuser()}"
    loop = asyncio.get_running_loop()

    async def page_after(after: int) -> list[Any]:
        """The next page of positions, its reads audited before anything is rendered."""
        page: list[Any] = await store.list_positions(
            tenant_id, status=status, after=after, limit=NOTICES_PAGE
        )
        async with engine.begin() as conn:
            for stored in page:
                await audit.record(
                    conn,
                    audit.AuditEntry(
                        tenant_id=tenant_id,
                        actor=actor,
                        action="pagopa.notice.pdf",
                        subject=stored.position.fiscal_code,
                        purpose="bulk payment notices",
                        sources="hub",
                        outcome="ok",
                        detail=f"iupd {stored.iupd}",
                    ),
                    at=clock.now(),
                )
        return page

    def positions() -> Iterator[Any]:
        # runs in the rendering thread; pages come from the event loop one at a time
        after = 0
        while True:
            page = asyncio.run_coroutine_threadsafe(page_after(after), loop).result()
            if not page:
                return
            for stored in page:
                yield stored.position
            after = page[-1].id

    try:
        stmt = select(func.count()).select_from(table).where(table.c.tenant_id == tenant_id)
        if status:
            stmt = stmt.where(table.c.status == status)
        async with reading(engine) as conn:
            total = int((await conn.execute(stmt)).scalar_one())
        tmp = out.with_name(out.name + ".part")
        with Progress(transient=True) as progress:
            task = progress.add_task("rendering notices", total=total)

            def render() -> int:
                with tmp.open("wb") as fh:
                    return render_bulk(
                        positions(),
                        creditor,
                        out=fh,
                        progress=lambda n: progress.update(task, completed=n),
                    )

            written = await asyncio.to_thread(render)
        tmp.replace(out)  # never a half-written ZIP under the final name
        return written
    finally:
        await engine.dispose()
