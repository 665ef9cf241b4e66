"""``sportello tenants onboard`` and ``sportello tenants status`` (see ``sportello.onboarding``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sportello import onboarding
from sportello.cli.common import config_option, fail, friendly, hub_services, run_async
from sportello.config import load_config
from sportello.plugins import Plugins

STATE_STYLE = {
    "made": "[green]made[/]",
    "present": "present",
    "todo": "[yellow]to do[/]",
    "blocked": "[red]blocked[/]",
    "ready": "[green]ready[/]",
    "failing": "[red]failing[/]",
    "missing": "[red]missing[/]",
    "unchecked": "[yellow]unchecked[/]",
    "configured": "configured",
}


def _values(values: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in values.items())


def _print_report(report: dict[str, Any]) -> None:
    console = Console()
    steps = Table("platform", "state", "what", "values", title=f"onboarding of {report['tenant']}")
    checks = Table("platform", "check", "result", "detail", title="checks")
    for name, p in report["platforms"].items():
        for s in p["steps"]:
            steps.add_row(
                name, STATE_STYLE[s["state"]], escape(s["what"]), escape(_values(s["values"]))
            )
        for c in p["checks"]:
            result = "[green]ok[/]" if c["ok"] else "[red]failed[/]"
            checks.add_row(name, escape(c["name"]), result, escape(c["detail"]))
    console.print(steps)
    if report["checked"]:
        console.print(checks)


def _exit_status(report: dict[str, Any]) -> int:
    return 0 if all(p["ready"] for p in report["platforms"].values()) else 1


@click.command("onboard")
@config_option
@click.argument("tenant_id")
@click.option("--dry-run", is_flag=True, help="make nothing: show what would be made and done")
@click.option("--no-check", is_flag=True, help="do not ask the platforms")
@click.option("--json", "as_json", is_flag=True)
@friendly
def tenants_onboard(
    config_path: Path, tenant_id: str, dry_run: bool, no_check: bool, as_json: bool
) -> None:
    """Make what the hub can make for TENANT_ID (keys, certificates, secrets, where its
    configuration references them; never replacing one), show per platform what is left to
    do elsewhere and with which values, then check what can be checked. Running it again
    makes nothing new. Exit status 1 when something is blocked or a check failed."""
    config = load_config(config_path)
    plugins = Plugins(config.plugins.disabled)

    async def go() -> dict[str, Any] | None:
        async with hub_services(config) as services:
            tenant = services.config.tenant(tenant_id)
            if tenant is None:
                return None
            return await onboarding.onboard_tenant(
                services.config,
                tenant,
                plugins,
                engine=services.engine,
                session=services.session,
                now=services.clock.now(),
                make=not dry_run,
                check=not no_check,
            )

    report = run_async(go())
    if report is None:
        fail(f"tenant {tenant_id!r} is not served by this hub (see `sportello tenants list`)", 1)
    if as_json:
        click.echo(json.dumps(report))
    else:
        _print_report(report)
    sys.exit(_exit_status(report))


@click.command("status")
@config_option
@click.option("--check", is_flag=True, help="ask the platforms now (else: the last results)")
@click.option("--tenant", "tenant_ids", multiple=True, help="only this tenant (repeatable)")
@click.option("--json", "as_json", is_flag=True)
@friendly
def tenants_status(
    config_path: Path, check: bool, tenant_ids: tuple[str, ...], as_json: bool
) -> None:
    """A table of tenants x platforms: ready (every check passed), failing (a check
    failed), missing what (the readiness checks of `config check` and /readyz), unchecked
    (no check run yet: use --check) or configured (nothing to check); each check's time and
    each platform's last outbox error. Exit status 1 when something is missing or failing."""
    config = load_config(config_path)
    plugins = Plugins(config.plugins.disabled)

    async def go() -> list[dict[str, Any]]:
        async with hub_services(config) as services:
            return await onboarding.status_rows(
                services.config,
                plugins,
                engine=services.engine,
                session=services.session,
                now=services.clock.now(),
                check=check,
                tenant_ids=tenant_ids or None,
            )

    rows = run_async(go())
    if as_json:
        click.echo(json.dumps(rows))
    else:
        _print_status(rows)
    bad = ("missing", "failing")
    if any(c["state"] in bad for r in rows for c in r["platforms"].values()):
        sys.exit(1)


def _print_status(rows: list[dict[str, Any]]) -> None:
    """The tenants x platforms table (one state per cell), then what is behind each state
    that is not ready: what is missing, the failed checks, the last errors."""
    columns = sorted({name for r in rows for name in r["platforms"]})
    console = Console()  # wide enough for every state in full, a terminal or not
    console = Console(width=max(console.width, 13 * (len(columns) + 2)))
    table = Table("tenant", *columns, "checked")
    notes: list[str] = []
    for r in rows:
        cells = r["platforms"]
        times = [c["checked_at"] for cell in cells.values() for c in cell["checks"]]
        table.add_row(
            r["tenant"],
            *(STATE_STYLE[cells[c]["state"]] if c in cells else "" for c in columns),
            min(times)[5:16].replace("T", " ") if times else "never",
        )
        for name, cell in cells.items():
            where = f"{r['tenant']} {name}"
            notes += [f"[red]{escape(where)}: missing: {escape(m)}[/]" for m in cell["missing"]]
            notes += [
                f"[red]{escape(where)}: {escape(c['name'])}: {escape(c['detail'])}[/]"
                for c in cell["checks"]
                if not c["ok"]
            ]
            if cell["last_error"]:
                notes.append(f"{escape(where)}: last error: {escape(cell['last_error'])}")
    console.print(table)
    for line in notes:
        console.print(line, soft_wrap=True)
