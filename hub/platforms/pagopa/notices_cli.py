"""``sportello pagopa notices --tenant T --out FILE.zip``: the notices of many positions at once.

One PDF per position ("avviso di pagamento", single payment and instalments), streamed into a
ZIP with a progress bar; positions are read page by page, so memory stays flat. Every notice
holds the debtor's data, so each one written is an audit-log entry (actor ``cli:<user>``).
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from sportello.config import HubConfig, load_config
from sportello.platforms.pagopa.cli import config_option, pagopa_group

PAGE = 200


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
    if found is None or found.pagopa is None:
        raise click.ClickException(f"tenant {tenant!r} has no [tenants.pagopa] section")
    written = asyncio.run(_write(config, tenant, out, status))
    click.echo(f"{written} notices written to {out}")


async def _write(config: HubConfig, tenant_id: str, out: Path, status: str | None) -> int:
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
    assert tenant is not None and tenant.pagopa is not None
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
            tenant_id, status=status, after=after, limit=PAGE
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
