"""``sportello io``: App IO campaigns (``hub_cli_commands``), thin over ``campaigns``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sportello import audit
from sportello.cli.common import (
    config_option,
    fail,
    fmt,
    friendly,
    hub_services,
    operator,
    run_async,
    with_conn,
)
from sportello.clock import SystemClock
from sportello.config import HubConfig, load_config
from sportello.plugins import Plugins

__all__ = ["io_group"]


# --- App IO ---------------------------------------------------------------------------------------
@click.group("io")
def io_group() -> None:
    """App IO messages and campaigns."""


@io_group.group("campaign")
def campaign_group() -> None:
    """Campaigns: one CSV, one template, many messages."""


@campaign_group.command("create")
@config_option
@click.option("--tenant", required=True)
@click.option("--service", "service_id", required=True, help="the App IO service id")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--source", "source_name", help="a campaign source plugin instead of --csv (e.g. sql)"
)
@click.option(
    "--option", "source_options", multiple=True, metavar="KEY=VALUE", help="source option"
)
@click.option("--subject", required=True, help="Jinja2 template of the subject")
@click.option(
    "--markdown-file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Jinja2 template of the body (markdown)",
)
@click.option("--name", help="campaign name (default: the CSV file name)")
@click.option("--advanced", is_flag=True, help="send as ADVANCED (needs the IO permission)")
@click.option("--dry-run", is_flag=True, help="validate every row, write nothing")
@friendly
def campaign_create(
    config_path: Path,
    tenant: str,
    service_id: str,
    csv_path: Path | None,
    source_name: str | None,
    source_options: tuple[str, ...],
    subject: str,
    markdown_file: Path,
    name: str | None,
    advanced: bool,
    dry_run: bool,
) -> None:
    """Validate every row, then queue the whole campaign (or nothing)."""
    from rich.progress import Progress

    from sportello.platforms.io import campaigns

    config = load_config(config_path)
    t = config.tenant(tenant)
    from sportello.platforms.io.settings import io_settings

    io = io_settings(t) if t is not None else None
    if io is None or io.service(service_id) is None:
        fail(f"tenant {tenant!r} has no App IO service {service_id!r} in {config_path}", 2)
    if (csv_path is None) == (source_name is None):
        fail("give either --csv FILE or --source NAME", 2)
    template = campaigns.Template(
        subject=subject,
        markdown=markdown_file.read_text(encoding="utf-8"),
        feature_level_type="ADVANCED" if advanced else "STANDARD",
    )
    now = SystemClock().now()
    if csv_path is not None:
        text = campaigns.read_csv(csv_path)
        label = csv_path.name
        notices = run_async(_notices(config, tenant, campaigns.notice_numbers(text)))
        with Progress(transient=True) as progress:
            task = progress.add_task("validating rows", total=max(0, text.count("\n") - 1))
            prepared = campaigns.prepare(
                text,
                template,
                source=str(csv_path),
                now=now,
                progress=lambda n: progress.advance(task, n),
                notices=notices,
            )
    else:
        assert source_name is not None
        label = f"source {source_name}"
        base_dir = config_path.resolve().parent
        rows = run_async(_source_rows(config, base_dir, source_name, source_options))
        with Progress(transient=True) as progress:
            task = progress.add_task("validating rows", total=len(rows))
            prepared = campaigns.prepare_rows(
                rows, template, source=label, now=now, progress=lambda n: progress.advance(task, n)
            )
    if prepared.problems:
        click.echo(f"{len(prepared.problems)} row(s) cannot be sent; nothing was queued:", err=True)
        for problem in prepared.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    if dry_run:
        click.echo(f"{len(prepared.messages)} messages valid (dry run: nothing queued)")
        return
    campaign_id = run_async(
        with_conn(
            config,
            lambda c: campaigns.create_campaign(
                c,
                tenant_id=tenant,
                service_id=service_id,
                name=name or label,
                template=template,
                prepared=prepared,
                source=label,
                created_by=operator(),
                now=now,
            ),
            write=True,
        )
    )
    click.echo(f"campaign {campaign_id} queued: {len(prepared.messages)} messages")


async def _notices(config: HubConfig, tenant: str, navs: set[str]) -> Any:
    """Stored pagoPA positions for the notice numbers a campaign names (payment data link)."""
    from sportello.platforms.io import campaigns

    async with hub_services(config) as services:
        return await campaigns.notice_lookup(services, tenant, navs)


async def _source_rows(
    config: HubConfig, base_dir: Path, name: str, raw_options: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Every row of a campaign source plugin (validated afterwards, all before queueing)."""
    sources = Plugins(config.plugins.disabled).campaign_sources()
    if name not in sources:
        fail(f"no campaign source {name!r} (installed: {', '.join(sorted(sources))})", 2)
    options: dict[str, str] = {}
    for item in raw_options:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--option {item!r}: expected KEY=VALUE", 2)
        options[key] = value
    try:
        source = sources[name](options, base_dir=base_dir)
    except ValueError as exc:
        fail(f"campaign source {name}: {exc}", 2)
    return [dict(row) async for row in source.rows()]


@campaign_group.command("report")
@config_option
@click.argument("campaign_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="every message with its status")
@friendly
def campaign_report(config_path: Path, campaign_id: int, as_json: bool) -> None:
    """Sent, not on IO, sender not allowed, failed (with reason), unknown: per campaign."""
    from sportello.platforms.io import campaigns

    config = load_config(config_path)
    data = run_async(with_conn(config, lambda c: campaigns.report(c, campaign_id)))
    if data is None:
        fail(f"campaign {campaign_id} does not exist", 1)
    assert data is not None
    if as_json:  # recipients' fiscal codes: a personal-data read, audited
        entry = audit.AuditEntry(
            tenant_id=data["tenant_id"],
            actor=operator(),
            action="io.campaign.report",
            subject=f"campaign:{campaign_id}",
            purpose="campaign delivery report (CLI)",
            sources="hub",
            outcome="ok",
            detail=f"{len(data['messages'])} recipients",
        )
        now = SystemClock().now()
        run_async(with_conn(config, lambda c: audit.record(c, entry, at=now), write=True))
        click.echo(json.dumps(data, default=fmt))
        return
    click.echo(f"campaign {data['id']} {data['name']!r}: {data['rows_total']} messages")
    for status, n in data["counts"].items():
        click.echo(f"  {status:20} {n}")
    for m in data["messages"]:
        if m["status"] in ("failed", "unknown"):
            click.echo(f"  row {m['row_number']}: {m['status']}: {m['error']}")


@io_group.command("resend-unknown")
@config_option
@click.option("--campaign", "campaign_id", type=int, required=True)
@friendly
def io_resend_unknown(config_path: Path, campaign_id: int) -> None:
    """Send again, on purpose, messages whose outcome is unknown (they may arrive twice)."""
    from sportello.platforms.io import campaigns

    config = load_config(config_path)
    now = SystemClock().now()
    n = run_async(
        with_conn(
            config,
            lambda c: campaigns.resend_unknown(
                c, campaign_id=campaign_id, now=now, operator=operator()
            ),
            write=True,
        )
    )
    click.echo(f"{n} message(s) queued again")
