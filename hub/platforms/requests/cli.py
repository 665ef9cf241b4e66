"""``sportello requests``: the requests platform's commands (``hub_cli_commands``), thin
over ``service``: the ratings export, the same rows as ``GET /api/v1/tenants/{t}/ratings``."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import click

from sportello.cli.common import config_option, fail, friendly, hub_services, run_async
from sportello.config import load_config
from sportello.db import reading

__all__ = ["requests_group"]


@click.group("requests")
def requests_group() -> None:
    """Online requests and the ratings of the services."""


@requests_group.command("ratings")
@config_option
@click.argument("tenant")
@click.option("--service", "key", help="one service (e.g. requests.certificato)")
@click.option("--from", "first", type=click.DateTime(formats=["%Y-%m-%d"]), help="first day")
@click.option("--to", "last", type=click.DateTime(formats=["%Y-%m-%d"]), help="last day")
@friendly
def ratings_cmd(
    config_path: Path,
    tenant: str,
    key: str | None,
    first: datetime | None,
    last: datetime | None,
) -> None:
    """Write the tenant's ratings as CSV on standard output."""
    from sportello.platforms.requests import service

    config = load_config(config_path)
    if config.tenant(tenant) is None:
        fail(f"no tenant {tenant!r} in the configuration", 2)
    start = datetime.combine(first.date(), time(), service.ROME).astimezone(UTC) if first else None
    end = (
        datetime.combine(last.date() + timedelta(days=1), time(), service.ROME).astimezone(UTC)
        if last
        else None
    )

    async def go() -> list[dict[str, Any]]:
        async with hub_services(config) as services, reading(services.engine) as conn:
            return await service.ratings(conn, tenant, key, start, end)

    rows = run_async(go())
    columns = ["created_at", "service", "score", "follow_up", "follow_up_label", "comment"]
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: service.csv_cell(r[k]) for k in columns} for r in rows)
