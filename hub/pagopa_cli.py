"""``sportello pagopa import --tenant T FILE``: load debt positions from a CSV file.

The file has the columns of the CSV accounting adapter (see
``sportello.adapters.accounting.csv_adapter``); the creditor's name and fiscal code come
from the tenant's ``adapters.accounting`` options when it uses the ``csv`` plugin, else from
the tenant itself. Each position is stored with allocated IUVs (``PagopaStore``);
importing the same file again changes nothing. Bad rows are listed (file, row, column)
and skipped; the exit status is 1 when there were any.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from .config import HubConfig, load_config

__all__ = ["pagopa_group"]


@click.group("pagopa")
def pagopa_group() -> None:
    """pagoPA debt positions held by the hub."""


@pagopa_group.command("import")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="SPORTELLO_CONFIG",
    required=True,
    help="TOML configuration file (or $SPORTELLO_CONFIG)",
)
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

    from .app import open_database
    from .clock import SystemClock
    from .pagopa_store import PagopaStore, PagopaStoreError

    adapter = CsvAccountingAdapter(_options(config, tenant_id), base_dir=file.parent)
    clock = SystemClock()
    engine = await open_database(config, apply_migrations=False, clock=clock)
    created = existing = 0
    errors: list[str] = []
    try:
        pagopa = PagopaStore(engine, config, clock)
        for item in await asyncio.to_thread(lambda: list(adapter.read_positions(file))):
            if isinstance(item, RowError):
                errors.append(str(item))
                continue
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
