"""``sportello inad lookup`` and ``sportello inad bulk``: who has a digital domicile
(``hub_cli_commands`` of the send platform), thin over ``inad.Domiciles``. Every fiscal
code asked is on the audit log. A failure of INAD (or PDND) exits 4 (5 when INAD is
unavailable or rate limiting) naming the platform; "no domicile" is not a failure."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from sportello.cli.common import config_option, fail, friendly, hub_services, run_async
from sportello.cli.common import operator as cli_operator
from sportello.config import load_config
from sportello.connectors import fiscal_code as fiscal_codes

__all__ = ["inad_group", "send_group"]


@click.group("inad")
def inad_group() -> None:
    """INAD digital domiciles (through PDND). Every read is audited."""


def _run(
    config_path: Path,
    tenant: str,
    purpose: str,
    operator: str | None,
    call: Callable[[Any, Any], Awaitable[Any]],
) -> Any:
    from sportello.platforms.send.inad import Domiciles, InadFailed, InadNotConfigured, Requester

    config = load_config(config_path)
    if config.tenant(tenant) is None:
        fail(f"tenant {tenant!r} is not in {config_path}", 2)
    if not purpose.strip():
        fail("--purpose: the file or protocol reference is required", 2)
    user = cli_operator()
    who = Requester(actor=user, operator=operator or user, purpose=purpose.strip())

    async def go() -> Any:
        async with hub_services(config) as services:
            return await call(Domiciles(services), who)

    try:
        return run_async(go())
    except InadNotConfigured as exc:
        fail(str(exc), 2)
    except InadFailed as exc:
        fail(exc.detail, 5 if exc.status == 503 else 4)


def _checked(code: str, where: str) -> str:
    value = code.strip().upper()
    reason = fiscal_codes.problem(value)
    if reason is not None:
        fail(f"{where}: {reason}", 2)
    return value


@inad_group.command("lookup")
@config_option
@click.option("--tenant", required=True)
@click.option("--purpose", required=True, help="file or protocol reference (practicalReference)")
@click.option("--operator", default=None, help="who asks (default: the system user)")
@click.argument("fiscal_code")
@friendly
def inad_lookup(
    config_path: Path, tenant: str, purpose: str, operator: str | None, fiscal_code: str
) -> None:
    """The digital domicile of one fiscal code now; print JSON (exit 3 when INAD has none)."""
    code = _checked(fiscal_code, "FISCAL_CODE")
    result = _run(config_path, tenant, purpose, operator, lambda d, who: d.now(tenant, code, who))
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    if not result["found"]:
        raise SystemExit(3)


@inad_group.command("bulk")
@config_option
@click.option("--tenant", required=True)
@click.option("--purpose", required=True, help="file or protocol reference (practicalReference)")
@click.option("--operator", default=None, help="who asks (default: the system user)")
@click.option("--interval", type=float, default=None, help="seconds between polls")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@friendly
def inad_bulk(
    config_path: Path,
    tenant: str,
    purpose: str,
    operator: str | None,
    interval: float | None,
    file: Path,
) -> None:
    """INAD's asynchronous list for FILE (one fiscal code a line, at most 1,000): request,
    wait until ready, read; print a table."""
    from sportello.connectors.inad import BULK_MAX

    codes: list[str] = []
    for n, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            codes.append(_checked(line, f"{file}: line {n}"))
    codes = list(dict.fromkeys(codes))
    if not 1 <= len(codes) <= BULK_MAX:
        fail(f"{file}: 1 to {BULK_MAX} fiscal codes (found {len(codes)})", 2)
    rows = _run(
        config_path,
        tenant,
        purpose,
        operator,
        lambda d, who: d.bulk(tenant, codes, who, interval=interval),
    )
    click.echo(f"{'FISCAL CODE':<16}  {'DOMICILE':<50}  PROFESSION")
    with_domicile = 0
    for row in rows:
        addresses = row["addresses"] or [{"address": "-", "profession": None}]
        with_domicile += bool(row["addresses"])
        for a in addresses:
            click.echo(f"{row['fiscal_code']:<16}  {a['address']:<50}  {a['profession'] or ''}")
    click.echo(f"{len(rows)} fiscal code(s), {with_domicile} with a digital domicile")


@click.group("send")
def send_group() -> None:
    """SEND notifications with legal value (fines, tax assessments)."""


@send_group.command("import")
@config_option
@click.argument("tenant")
@click.option(
    "--source",
    "source_name",
    default="csv",
    show_default=True,
    help="notification source (hub_send_sources): csv, sql or a plugin's",
)
@click.option(
    "--file",
    "file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="the source's file (csv: one row per notification)",
)
@click.option(
    "--documents",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="folder of the acts' PDF files (default: the folder of --file)",
)
@click.option(
    "--option",
    "raw_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="a source option (csv: encoding, delimiter; sql: url, query)",
)
@click.option("--dry-run", is_flag=True, help="check every row, queue nothing")
@friendly
def send_import(
    config_path: Path,
    tenant: str,
    source_name: str,
    file: Path | None,
    documents: Path | None,
    raw_options: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Queue SEND notifications from the comune's software. Every row is checked first
    (problems named file/row/column, exit 1, nothing queued); a protocol number already
    queued is not sent again, so running the same import twice is safe."""
    from sportello.platforms.send.imports import import_notifications
    from sportello.platforms.send.service import SendNotConfigured
    from sportello.plugins import Plugins

    config = load_config(config_path)
    if config.tenant(tenant) is None:
        fail(f"tenant {tenant!r} is not in {config_path}", 2)
    sources = Plugins(config.plugins.disabled).send_sources()
    if source_name not in sources:
        fail(
            f"--source: no notification source {source_name!r} "
            f"(installed: {', '.join(sorted(sources))})",
            2,
        )
    options: dict[str, str] = {}
    for item in raw_options:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--option {item!r}: expected KEY=VALUE", 2)
        options[key] = value
    if file is not None:
        options["path"] = str(file.absolute())
    if documents is None:
        if file is None:
            fail("--documents: the folder of the acts' PDF files is required", 2)
        documents = file.absolute().parent
    try:
        source = sources[source_name](options, base_dir=config_path.absolute().parent)
    except ValueError as exc:
        fail(f"--source {source_name}: {exc}", 2)
    label = str(getattr(source, "label", source_name))

    async def go() -> Any:
        import dataclasses

        async with hub_services(config) as services:
            # with the plugins: the notice PDFs of the tenant's own positions are attached
            services = dataclasses.replace(
                services, plugins=Plugins(config.plugins.disabled), adapters=services.adapters
            )
            return await import_notifications(
                services,
                tenant,
                source.rows(),
                documents=documents,
                source=label,
                actor=cli_operator(),
                dry_run=dry_run,
            )

    try:
        result = run_async(go())
    except SendNotConfigured as exc:
        fail(str(exc), 2)
    if result.problems:
        for problem in result.problems:
            click.echo(problem, err=True)
        fail(f"{len(result.problems)} problem(s) in {result.rows} row(s): nothing queued", 1)
    if dry_run:
        click.echo(f"{result.rows} row(s) checked: no problems (dry run, nothing queued)")
        return
    click.echo(
        f"{len(result.queued)} notification(s) queued, {len(result.already)} already queued "
        f"(not sent again), from {result.rows} row(s)"
    )
