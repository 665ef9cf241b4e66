"""``sportello suap notify``: the SUAP platform's command (``hub_cli_commands``), thin over
``service.SuapService``."""

from __future__ import annotations

from pathlib import Path

import click

from sportello.cli.common import config_option, fail, friendly, hub_services, run_async
from sportello.config import load_config

__all__ = ["suap_group"]


# --- SUAP -----------------------------------------------------------------------------------------
@click.group("suap")
def suap_group() -> None:
    """SUAP practices (the comune's back office, through a SUAP adapter)."""


@suap_group.command("notify")
@config_option
@click.option("--tenant", required=True)
@friendly
def suap_notify(config_path: Path, tenant: str) -> None:
    """Announce practice status changes since the last run (App IO message + webhook).

    The first run only records where the change feed starts. `sportello serve` does this by
    itself every `[tenants.suap] poll_seconds`.
    """
    from sportello.platforms.suap.service import SuapService, SuapUnavailable

    config = load_config(config_path)

    async def go() -> dict[str, int]:
        async with hub_services(config) as services:
            suap = SuapService(services)
            try:
                return await suap.notify(tenant)
            finally:
                await suap.close()

    try:
        result = run_async(go())
    except SuapUnavailable as exc:
        fail(str(exc), 1)
    click.echo(
        f"{result['changes']} change(s): {result['messages']} App IO message(s) and "
        f"{result['events']} webhook event(s) queued"
    )
