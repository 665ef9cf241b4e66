"""``sportello booking``: the booking platform's commands (``hub_cli_commands``), thin over
``service``."""

from __future__ import annotations

import getpass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click

from sportello.cli.common import config_option, fail, friendly, hub_services, run_async
from sportello.config import load_config

__all__ = ["booking_group"]


@click.group("booking")
def booking_group() -> None:
    """Appointments at the comune's offices."""


@booking_group.command("day")
@config_option
@click.argument("tenant")
@click.option("--office", "office_id", help="the office (default: every office)")
@click.option(
    "--date", "day", type=click.DateTime(formats=["%Y-%m-%d"]), help="the day (default today)"
)
@friendly
def booking_day(
    config_path: Path, tenant: str, office_id: str | None, day: datetime | None
) -> None:
    """List a day's appointments of an office (the read is audited as the system user's)."""
    from sportello.platforms.booking import service
    from sportello.platforms.booking.settings import booking_settings

    config = load_config(config_path)
    tenant_config = config.tenant(tenant)
    if tenant_config is None:
        fail(f"no tenant {tenant!r} in the configuration", 2)
    settings = booking_settings(tenant_config)
    if settings is None:
        fail(f"tenant {tenant!r} has no [tenants.booking]", 2)
    assert settings is not None
    offices = [office_id] if office_id else [o.id for o in settings.offices]
    actor = f"cli:{getpass.getuser()}"

    async def go() -> list[tuple[str, date, list[dict[str, Any]]]]:
        out = []
        async with hub_services(config) as services:
            now = services.clock.now()
            wanted = day.date() if day is not None else service.local_day(now)
            for office in offices:
                async with services.engine.begin() as conn:
                    rows = await service.day_list(
                        conn,
                        tenant_id=tenant,
                        settings=settings,
                        office_id=office,
                        day=wanted,
                        actor=actor,
                        now=now,
                    )
                out.append((office, wanted, rows))
        return out

    try:
        result = run_async(go())
    except service.BookingError as exc:
        fail(exc.detail, 1)
    for office, wanted, rows in result:
        click.echo(f"{office} {wanted.isoformat()}: {len(rows)} appointment(s)")
        for r in rows:
            start = datetime.fromisoformat(r["start"]).astimezone(service.ROME)
            click.echo(
                f"  {start:%H:%M} {r['service_id']:<16} {r['code']} {r['status']:<9} "
                f"{r['surname']} {r['name']}"
            )
