"""``sportello console``: the operator console's accounts (``hub_cli_commands``).

``user add --admin NAME`` creates a software-house admin: the password is asked twice (or
read from standard input with ``--password-stdin``), and the TOTP secret is printed once,
with its ``otpauth://`` URI and a QR code for an authenticator app. ``staff add`` lets a
comune's staff member (by fiscal code) log in with SPID/CIE, besides those listed in
``[tenants.console] staff``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sportello.cli.common import config_option, fail, fmt, friendly, operator, run_async, with_conn
from sportello.config import load_config

__all__ = ["console_group"]


@click.group("console")
def console_group() -> None:
    """The operator console's accounts: software-house admins and comune staff."""


@console_group.group("user")
def user_group() -> None:
    """Software-house admins (local account: password and TOTP)."""


@user_group.command("add")
@config_option
@click.argument("name")
@click.option("--admin", "admin", is_flag=True, required=True, help="an admin: sees every tenant")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--no-qr", is_flag=True, help="do not draw the QR code in the terminal")
@friendly
def user_add(config_path: Path, name: str, admin: bool, password_stdin: bool, no_qr: bool) -> None:
    """Create admin NAME; prints its TOTP secret once."""
    import segno

    from sportello.audit import AuditEntry, record
    from sportello.clock import SystemClock

    from . import service
    from .settings import console_settings

    config = load_config(config_path)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    now = SystemClock().now()

    async def go(conn: Any) -> service.NewUser:
        made = await service.add_user(
            conn, name, password, now=now, issuer=console_settings(config).totp_issuer
        )
        await record(
            conn,
            AuditEntry(
                tenant_id="*",
                actor=operator(),
                action="console.user.add",
                subject=name[:32],
                purpose="operator console",
                sources="cli",
                outcome="ok",
            ),
            at=now,
        )
        return made

    try:
        made = run_async(with_conn(config, go, write=True))
    except service.AccountError as exc:
        fail(str(exc), 2)
    click.echo(f"admin {made.name} created")
    click.echo(f"TOTP secret (shown once; add it to an authenticator app): {made.secret}")
    click.echo(f"otpauth URI: {made.uri}")
    if not no_qr:
        segno.make(made.uri, error="m").terminal(compact=True)


@user_group.command("list")
@config_option
@friendly
def user_list(config_path: Path) -> None:
    """The local accounts (never their secrets)."""
    from . import service

    config = load_config(config_path)
    rows = run_async(with_conn(config, service.list_users))
    for r in rows:
        state = (
            "disabled" if r["disabled_at"] else ("enrolled" if r["enrolled_at"] else "not enrolled")
        )
        click.echo(f"{r['name']}\t{r['role']}\t{state}\tcreated {fmt(r['created_at'])}")


@user_group.command("disable")
@config_option
@click.argument("name")
@friendly
def user_disable(config_path: Path, name: str) -> None:
    """Disable admin NAME (its sessions end at the next request)."""
    from sportello.clock import SystemClock
    from sportello.web import WebSessions

    from . import service

    config = load_config(config_path)
    now = SystemClock().now()

    async def go(conn: Any) -> bool:
        return await service.disable_user(conn, name, now=now)

    if not run_async(with_conn(config, go, write=True)):
        fail(f"no enabled user {name!r}", 2)

    async def revoke() -> None:
        from sportello.app import open_database

        engine = await open_database(config, apply_migrations=False, clock=SystemClock())
        try:
            await WebSessions(engine, config, "console").revoke_subject(f"admin:{name}", now=now)
        finally:
            await engine.dispose()

    run_async(revoke())
    click.echo(f"{name} disabled")


@console_group.group("staff")
def staff_group() -> None:
    """Comune staff who log in with SPID/CIE (besides [tenants.console] staff)."""


@staff_group.command("add")
@config_option
@click.argument("tenant")
@click.argument("fiscal_code")
@click.option(
    "--role", type=click.Choice(["staff", "tenant-admin"]), default="staff", show_default=True
)
@friendly
def staff_add(config_path: Path, tenant: str, fiscal_code: str, role: str) -> None:
    """Let FISCAL_CODE log in to TENANT's console with ROLE."""
    from sportello.clock import SystemClock

    from . import service

    config = load_config(config_path)
    if config.tenant(tenant) is None:
        fail(f"no tenant {tenant!r} in the configuration", 2)
    now = SystemClock().now()

    async def go(conn: Any) -> None:
        await service.add_staff(conn, tenant, fiscal_code, role, now=now)

    try:
        run_async(with_conn(config, go, write=True))
    except service.AccountError as exc:
        fail(str(exc), 2)
    click.echo(f"{fiscal_code.upper()} is {role} of {tenant}")


@staff_group.command("remove")
@config_option
@click.argument("tenant")
@click.argument("fiscal_code")
@friendly
def staff_remove(config_path: Path, tenant: str, fiscal_code: str) -> None:
    """Remove FISCAL_CODE from TENANT's console staff (effective at the next request)."""
    from . import service

    config = load_config(config_path)

    async def go(conn: Any) -> bool:
        return await service.remove_staff(conn, tenant, fiscal_code)

    if not run_async(with_conn(config, go, write=True)):
        fail(f"{fiscal_code} was not added to {tenant} with the CLI", 2)
    click.echo("removed")


@staff_group.command("list")
@config_option
@click.argument("tenant", required=False)
@friendly
def staff_list(config_path: Path, tenant: str | None) -> None:
    """Staff of TENANT (or of every tenant): from the configuration and from the CLI."""
    from . import service
    from .settings import console_tenant_settings

    config = load_config(config_path)
    for t in config.tenants:
        if tenant is not None and t.id != tenant:
            continue
        settings = console_tenant_settings(t)
        for m in settings.staff if settings is not None else []:
            click.echo(f"{t.id}\t{m.fiscal_code}\t{m.role}\tconfiguration")

    async def go(conn: Any) -> list[dict[str, Any]]:
        return await service.list_staff(conn, tenant)

    for r in run_async(with_conn(config, go)):
        click.echo(f"{r['tenant_id']}\t{r['fiscal_code']}\t{r['role']}\tcli")
