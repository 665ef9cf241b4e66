"""The ``sportello`` command line.

Every expected failure (bad configuration, database down, schema outdated, a second replica
on SQLite) ends with one line on stderr that says what is wrong and what to do, and exit
status 2 (configuration) or 1 (anything else); never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from sportello import __version__, apikeys, audit, migrate
from sportello.app import SchemaOutdated, create_app
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
from sportello.db import (
    DatabaseUnavailable,
    ReplicaLock,
    create_engine,
    sqlite_path,
)
from sportello.hookspecs import sandbox_urls
from sportello.logs import setup_logging
from sportello.outbox import store
from sportello.outbox.worker import OutboxWorker, handlers_from
from sportello.plugins import PluginConflict, Plugins
from sportello.runner import Served, install_stop_signals, run_service_loop, serve

_fail = fail
_services = hub_services
_with_conn = with_conn
_fmt = fmt
_operator = operator


def demo_config_path() -> Path:
    return Path(str(resources.files("sportello").joinpath("demo/demo.toml")))


class _PluginCommands(click.Group):
    """The built-in commands, plus the ``hub_cli_commands`` of plugins, loaded only when a
    name is not a built-in or the list is shown: loading every plugin costs most of a second,
    which ``sportello db upgrade`` or ``sportello outbox list`` should not pay."""

    _plugins_loaded = False

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        try:
            for command in Plugins().cli_commands():
                existing = self.commands.get(command.name or "")
                if existing is None:
                    self.add_command(command)
                elif _mergeable(existing, command):
                    # two plugins add to one group (``keys``: login's spid, residents' pdnd)
                    self.commands[existing.name or ""] = _merged(existing, command)  # type: ignore[arg-type]
        except PluginConflict as exc:
            click.echo(f"sportello: warning: {exc}", err=True)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._load_plugins()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugins()
        return super().list_commands(ctx)


def _mergeable(a: click.Command, b: click.Command) -> bool:
    return isinstance(a, click.Group) and isinstance(b, click.Group) and a is not b


def _merged(a: click.Group, b: click.Group) -> click.Group:
    """One group with the sub-commands of both (``a``'s win a name clash); neither changes."""
    return click.Group(a.name, commands={**b.commands, **a.commands}, help=a.help)


@click.group(cls=_PluginCommands)
@click.version_option(__version__, prog_name="sportello")
def main() -> None:
    """Sportello: SPID/CIE, pagoPA, App IO and ANPR for Italian comuni."""


# --- service -----------------------------------------------------------------------------------
@main.command("serve")
@config_option
@click.option("--host", default=None, help="override server.host")
@click.option("--port", type=int, default=None, help="override server.port")
@click.option("--no-workers", is_flag=True, help="serve HTTP only; run outbox workers elsewhere")
@friendly
def serve_cmd(config_path: Path, host: str | None, port: int | None, no_workers: bool) -> None:
    """Run the hub (HTTP service and outbox workers)."""
    config = load_config(config_path)
    setup_logging(config.logging.level, json_format=config.logging.json_format)
    app = create_app(config, run_workers=False if no_workers else None, sighup=True)
    served = Served("hub", app, host or config.server.host, port or config.server.port)
    # a dedicated process: startup objects leave the garbage collector's full passes
    from sportello.outbox.worker import freeze_startup_objects

    freeze_startup_objects()
    workers = config.outbox.workers and not no_workers
    tenants = ", ".join(t.id for t in config.tenants) or "none"

    def up() -> None:
        click.echo(
            f"sportello: serving on {served.url} (public URL "
            f"{config.server.public_url or 'not set'}; tenants: {tenants}; "
            f"outbox workers: {'on' if workers else 'off'})",
            err=True,
        )

    run_service_loop(_serve_until_signal([served], up))
    click.echo(f"sportello: stopped serving on {served.url}", err=True)


async def _serve_until_signal(
    apps: list[Served],
    banner: Callable[[], None] | None = None,
    after_start: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> None:
    stop = asyncio.Event()
    install_stop_signals(stop)
    ready = asyncio.Event()
    task = asyncio.create_task(serve(apps, stop, ready=ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        await task  # raises the startup error
        return
    if after_start is not None:
        await after_start()
    if banner is not None:
        banner()
    await task


@main.command("worker")
@config_option
@friendly
def worker_cmd(config_path: Path) -> None:
    """Run outbox workers only (no HTTP). Several may run against PostgreSQL."""
    config = load_config(config_path)
    setup_logging(config.logging.level, json_format=config.logging.json_format)
    run_service_loop(_run_worker(config))


async def _run_worker(config: HubConfig) -> None:
    lock = None
    path = sqlite_path(config.database.url)
    if path is not None:
        lock = ReplicaLock(path)
        lock.acquire()
    plugins = Plugins(config.plugins.disabled)
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        async with _services(config, pre_ping=False) as services:  # outbox retries instead
            handlers = handlers_from(plugins.outbox_handlers(), services)
            worker = OutboxWorker(
                services.engine, handlers, config.outbox, clock=services.clock, freeze_gc=True
            )
            click.echo(f"sportello: outbox worker {worker.name} started", err=True)
            await worker.run(stop)
    finally:
        if lock is not None:
            lock.release()


@main.command("sandbox")
@click.option("--host", default="127.0.0.1")
@click.option("--base-port", type=int, default=8100, show_default=True)
@friendly
def sandbox_cmd(host: str, base_port: int) -> None:
    """Run every sandbox platform (SPID/CIE IdP, pagoPA, IO, PDND, ANPR)."""
    setup_logging("INFO", json_format=True)
    specs = Plugins().sandbox_apps()
    peers = sandbox_urls(specs, host, base_port)
    apps = [Served(s.name, s.build(peers), host, base_port + s.port_offset) for s in specs]

    def banner() -> None:
        for s in apps:
            click.echo(f"sandbox {s.name:8} {s.url}", err=True)

    run_service_loop(_serve_until_signal(apps, banner))


@main.command("demo")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var"))
@click.option("--port", type=int, default=None, help="hub port (default 8000)")
@click.option(
    "--trust-idp",
    "trust_idps",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="extra IdP metadata the demo tenants trust (repeatable), e.g. spid-sp-test's IdP",
)
@friendly
def demo_cmd(
    config_path: Path | None, data_dir: Path, port: int | None, trust_idps: tuple[Path, ...]
) -> None:
    """Hub + every sandbox + the demo tenant, on an embedded SQLite file under var/."""
    from sportello.cli.demo_setup import (
        demo_api_key,
        prepare_demo_platforms,
        prepare_demo_secrets,
        register_demo_pdnd_client,
        seed_demo,
    )

    path = config_path or demo_config_path()
    data_dir.mkdir(parents=True, exist_ok=True)
    if "SPORTELLO_DATABASE_URL" not in os.environ and config_path is None:
        os.environ["SPORTELLO_DATABASE_URL"] = (
            f"sqlite+aiosqlite:///{(data_dir / 'demo.sqlite').resolve()}"
        )
    prepare_demo_secrets(data_dir)
    config = load_config(path)
    if port is not None and config.server.public_url:
        # the demo's URLs (SAML entityIDs, return URLs) follow the port it really listens on
        config = load_config(path, replace={":8000": f":{port}"})
    config = prepare_demo_platforms(config, data_dir, trust_idps)
    setup_logging(config.logging.level, json_format=config.logging.json_format)
    app = create_app(config, apply_migrations=True)
    hub = Served("hub", app, config.server.host, port or config.server.port)
    specs = app[_plugins_key()].sandbox_apps()
    peers = sandbox_urls(specs, config.sandbox.host, config.sandbox.base_port)
    sandboxes = [
        Served(
            s.name, s.build(peers), config.sandbox.host, config.sandbox.base_port + s.port_offset
        )
        for s in specs
    ]
    key_file = data_dir / "demo-api-key.txt"

    async def after_start() -> None:
        await register_demo_pdnd_client(config, app[_plugins_key()])
        await demo_api_key(app, key_file)
        await seed_demo(app)

    def banner() -> None:
        click.echo(f"Sportello demo ready: hub {hub.url} (tenant 'demo')", err=True)
        for s in sandboxes:
            click.echo(f"  sandbox {s.name:8} {s.url}", err=True)
        if key_file.exists():
            click.echo(f"  API key (tenant demo): {key_file}", err=True)
            click.echo(
                f'  try: curl -H "Authorization: Bearer $(cat {key_file})" '
                f"{hub.url}/api/v1/tenants/demo",
                err=True,
            )
        click.echo("  Ctrl-C to stop", err=True)

    run_service_loop(_serve_until_signal([*sandboxes, hub], banner, after_start))


def _plugins_key() -> Any:
    from sportello.app import PLUGINS

    return PLUGINS


# --- database ------------------------------------------------------------------------------------
@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@config_option
@friendly
def db_upgrade(config_path: Path) -> None:
    """Apply every pending migration."""
    config = load_config(config_path)

    async def go() -> str | None:
        from sportello.db import check_reachable

        engine = create_engine(config.database)
        try:
            await check_reachable(engine)
            await migrate.upgrade(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {run_async(go())} (head {migrate.head_revision()})")


@db_group.command("current")
@config_option
@friendly
def db_current(config_path: Path) -> None:
    """Show the schema revision of the database and of this version."""
    config = load_config(config_path)

    async def go() -> str | None:
        from sportello.db import check_reachable

        engine = create_engine(config.database)
        try:
            await check_reachable(engine)
            return await migrate.current_revision(engine)
        finally:
            await engine.dispose()

    current = run_async(go())
    head = migrate.head_revision()
    click.echo(f"database {current or 'empty'}; this version needs {head}")
    if current != head:
        sys.exit(1)


# --- outbox ---------------------------------------------------------------------------------------
@main.group("outbox")
def outbox_group() -> None:
    """Inspect and steer the durable outbox."""


@outbox_group.command("list")
@config_option
@click.option("--status", type=click.Choice(["pending", "running", "done", "failed", "cancelled"]))
@click.option("--tenant")
@click.option("--kind")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--after", "after_id", type=int, default=0, help="show ids greater than this")
@click.option("--json", "as_json", is_flag=True)
@friendly
def outbox_list(
    config_path: Path,
    status: str | None,
    tenant: str | None,
    kind: str | None,
    limit: int,
    after_id: int,
    as_json: bool,
) -> None:
    """List outbox jobs (oldest first)."""
    config = load_config(config_path)
    rows = run_async(
        _with_conn(
            config,
            lambda c: store.list_rows(
                c, status=status, tenant_id=tenant, kind=kind, limit=limit, after_id=after_id
            ),
        )
    )
    if as_json:
        click.echo(
            json.dumps([{k: v for k, v in r.items() if k != "payload"} for r in rows], default=_fmt)
        )
        return
    table = Table("id", "tenant", "kind", "status", "attempts", "next attempt", "last error")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["tenant_id"],
            r["kind"],
            r["status"],
            f"{r['attempts']}/{r['max_attempts']}",
            _fmt(r["next_attempt_at"]),
            (r["last_error"] or "")[:60],
        )
    Console().print(table)


@outbox_group.command("stats")
@config_option
@click.option("--tenant")
@friendly
def outbox_stats(config_path: Path, tenant: str | None) -> None:
    """Count jobs by status."""
    config = load_config(config_path)
    counts = run_async(_with_conn(config, lambda c: store.counts_by_status(c, tenant)))
    for status in ("pending", "running", "done", "failed", "cancelled"):
        click.echo(f"{status:10} {counts.get(status, 0)}")


@outbox_group.command("inspect")
@config_option
@click.argument("job_id", type=int)
@friendly
def outbox_inspect(config_path: Path, job_id: int) -> None:
    """Show one job with its ledger (every attempt and operator action)."""
    config = load_config(config_path)
    data = run_async(_with_conn(config, lambda c: store.inspect(c, job_id)))
    if data is None:
        _fail(f"outbox job {job_id} does not exist", 1)
    assert data is not None
    click.echo(json.dumps(data, default=_fmt, indent=2))


@outbox_group.command("retry")
@config_option
@click.argument("job_id", type=int)
@friendly
def outbox_retry(config_path: Path, job_id: int) -> None:
    """Queue a failed or cancelled job again (same idempotency key)."""
    config = load_config(config_path)
    now = SystemClock().now()
    run_async(
        _with_conn(
            config, lambda c: store.retry(c, job_id, now=now, operator=_operator()), write=True
        )
    )
    click.echo(f"outbox job {job_id} queued again")


@outbox_group.command("cancel")
@config_option
@click.argument("job_id", type=int)
@friendly
def outbox_cancel(config_path: Path, job_id: int) -> None:
    """Cancel a pending or failed job."""
    config = load_config(config_path)
    now = SystemClock().now()
    run_async(
        _with_conn(
            config, lambda c: store.cancel(c, job_id, now=now, operator=_operator()), write=True
        )
    )
    click.echo(f"outbox job {job_id} cancelled")


# --- secrets at rest ------------------------------------------------------------------------------
@main.group("secrets")
def secrets_group() -> None:
    """Secret files encrypted at rest with a master key (AES-256-GCM)."""


@secrets_group.command("new-master-key")
def secrets_new_master_key() -> None:
    """Print a new random master key (put it in SPORTELLO_MASTER_KEYS as id=<key>)."""
    from sportello.secrets import new_master_key

    click.echo(new_master_key())


@secrets_group.command("encrypt")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@friendly
def secrets_encrypt(files: tuple[Path, ...]) -> None:
    """Encrypt secret files in place (already encrypted ones are re-encrypted)."""
    _rotate(files)


@secrets_group.command("rotate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@friendly
def secrets_rotate(files: tuple[Path, ...]) -> None:
    """Re-encrypt secret files with the current (first) master key."""
    _rotate(files)


def _rotate(files: tuple[Path, ...]) -> None:
    from sportello.secrets import SecretError, rotate_file

    for path in files:
        try:
            kid = rotate_file(path)
        except SecretError as exc:
            _fail(str(exc), 1)
        click.echo(f"{path}: encrypted with master key {kid}")


# --- API keys and audit ------------------------------------------------------------------------
@main.group("apikeys")
def apikeys_group() -> None:
    """API keys for the REST API (stored hashed; the full key is shown once)."""


@apikeys_group.command("create")
@config_option
@click.option("--tenant", help="the tenant the key belongs to (omit for an admin key)")
@click.option("--name", required=True, help="who uses it, e.g. 'gestionale tributi'")
@click.option(
    "--scopes",
    default="read",
    show_default=True,
    help=f"comma-separated, from: {', '.join(apikeys.SCOPES)}",
)
@friendly
def apikeys_create(config_path: Path, tenant: str | None, name: str, scopes: str) -> None:
    """Create a key and print it (store it now: it is not shown again)."""
    config = load_config(config_path)
    if tenant is not None and config.tenant(tenant) is None:
        _fail(f"tenant {tenant!r} is not in {config_path}", 2)
    now = SystemClock().now()
    wanted = [s.strip() for s in scopes.split(",") if s.strip()]
    key = run_async(
        _with_conn(
            config,
            lambda c: apikeys.create(c, tenant_id=tenant, name=name, scopes=wanted, now=now),
            write=True,
        )
    )
    click.echo(key)


@apikeys_group.command("list")
@config_option
@friendly
def apikeys_list(config_path: Path) -> None:
    """List keys (ids, tenants, scopes; never the secrets)."""
    config = load_config(config_path)
    rows = run_async(_with_conn(config, apikeys.listing))
    table = Table("id", "tenant", "name", "scopes", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            r["id"],
            r["tenant_id"] or "(admin)",
            r["name"],
            r["scopes"],
            _fmt(r["created_at"]),
            _fmt(r["last_used_at"]),
            _fmt(r["revoked_at"]),
        )
    Console().print(table)


@apikeys_group.command("revoke")
@config_option
@click.argument("key_id")
@friendly
def apikeys_revoke(config_path: Path, key_id: str) -> None:
    """Revoke a key by its id (the part after sk_)."""
    config = load_config(config_path)
    now = SystemClock().now()
    run_async(_with_conn(config, lambda c: apikeys.revoke(c, key_id, now=now), write=True))
    click.echo(f"API key {key_id} revoked")


@main.group("audit")
def audit_group() -> None:
    """The audit log of personal-data reads (append-only)."""


@audit_group.command("list")
@config_option
@click.option("--tenant", required=True)
@click.option("--subject", help="a fiscal code")
@click.option("--since", type=click.DateTime(), help="UTC date/time")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly
def audit_list(
    config_path: Path,
    tenant: str,
    subject: str | None,
    since: datetime | None,
    limit: int,
    as_json: bool,
) -> None:
    """Who read whose personal data, when and why."""
    config = load_config(config_path)
    since_utc = since.replace(tzinfo=UTC) if since else None
    rows = run_async(
        _with_conn(
            config,
            lambda c: audit.query(
                c, tenant_id=tenant, subject=subject, since=since_utc, limit=limit
            ),
        )
    )
    if as_json:
        click.echo(json.dumps(rows, default=_fmt))
        return
    table = Table("id", "at", "actor", "action", "subject", "purpose", "sources", "outcome")
    for r in rows:
        table.add_row(
            str(r["id"]),
            _fmt(r["at"]),
            r["actor"],
            r["action"],
            r["subject"],
            r["purpose"],
            r["sources"],
            r["outcome"],
        )
    Console().print(table)


# --- plugins, tenants, config ---------------------------------------------------------------
@main.command("plugins")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@friendly
def plugins_cmd(config_path: Path | None, as_json: bool) -> None:
    """List loaded plugins and the hooks each implements."""
    disabled = load_config(config_path).plugins.disabled if config_path else []
    listing = Plugins(disabled).listing()
    if as_json:
        click.echo(json.dumps(listing))
        return
    table = Table("name", "module", "hooks", "from")
    for p in listing:
        table.add_row(p["name"], p["module"], ", ".join(p["hooks"]), p["distribution"])
    Console().print(table)


@main.command("openapi")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), help="default: stdout")
@friendly
def openapi_cmd(config_path: Path | None, output: Path | None) -> None:
    """Write the OpenAPI document of /api/v1 (generated from the loaded plugins' routes,
    as served at /api/v1/openapi.json)."""
    from sportello.api.core import all_routes
    from sportello.api.openapi import document

    disabled = load_config(config_path).plugins.disabled if config_path else []
    text = json.dumps(document(all_routes(Plugins(disabled))), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@main.group("tenants")
def tenants_group() -> None:
    """Tenants (enti) served by this hub."""


@tenants_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True)
@friendly
def tenants_list(config_path: Path, as_json: bool) -> None:
    """List the tenants: the configuration file's, its tenants_dir's and the database's."""
    from sportello import tenant_store

    async def merged(conn: Any) -> HubConfig:
        return await tenant_store.with_stored(conn, config)

    config = load_config(config_path)
    try:
        config = run_async(with_conn(config, merged))
    except (DatabaseUnavailable, SchemaOutdated) as exc:
        click.echo(f"sportello: warning: the database's tenants are not shown: {exc}", err=True)
    rows: list[tuple[str, str, str, str, str, str, list[str]]] = []
    for t in config.tenants:
        platforms = [name for name in t.sections() if name != "pdnd" or t.pdnd is not None]
        source = "database" if t.id in config.stored_tenants else "file"
        rows.append((t.id, t.name, t.ipa_code, t.fiscal_code, t.cadastral_code, source, platforms))
    if as_json:
        keys = ("id", "name", "ipa_code", "fiscal_code", "cadastral_code", "source", "platforms")
        click.echo(json.dumps([dict(zip(keys, r, strict=True)) for r in rows]))
        return
    table = Table("id", "name", "IPA", "fiscal code", "from", "platforms")  # --json: all
    for r in rows:
        table.add_row(r[0], r[1], r[2], r[3], r[5], ", ".join(r[6]))
    Console().print(table)


@tenants_group.command("add")
@config_option
@click.argument("tenant_file", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def tenants_add(config_path: Path, tenant_file: Path) -> None:
    """Store the tenant of TENANT_FILE (one tenant table, as in a tenants_dir) in the
    database, validated as at start-up; an existing stored tenant is replaced."""
    from sportello import tenant_store
    from sportello.config import read_toml

    config = load_config(config_path)
    tenant = tenant_store.check_document(
        read_toml(tenant_file),
        config,
        source=str(tenant_file),
        base_dir=tenant_file.resolve().parent,
    )

    async def add(conn: Any) -> bool:
        return await tenant_store.store(
            conn, tenant, config, now=SystemClock().now(), actor=operator()
        )

    created = run_async(with_conn(config, add, write=True))
    click.echo(f"tenant {tenant.id} {'added' if created else 'replaced'}")


@tenants_group.command("reload")
@config_option
@friendly
def tenants_reload(config_path: Path) -> None:
    """Have every running replica apply the tenants as they are now (the file, its
    tenants_dir, the database): the file is validated here first, and a bad one is refused
    with its path and field (the replicas keep their tenants)."""
    from sportello import tenant_store

    config = load_config(config_path)

    async def bump(conn: Any) -> int:
        await tenant_store.bump_generation(conn, now=SystemClock().now())
        return await tenant_store.generation(conn)

    generation = run_async(with_conn(config, bump, write=True))
    every = config.periodic.config_poll_seconds
    click.echo(f"configuration generation {generation}: replicas reload within {every:g} s")


@tenants_group.command("remove")
@config_option
@click.argument("tenant_id")
@friendly
def tenants_remove(config_path: Path, tenant_id: str) -> None:
    """Stop serving a tenant stored in the database. Its data stays (outbox, audit log,
    positions, messages...): see docs/tenants.md for retention."""
    from sportello import tenant_store

    config = load_config(config_path)

    async def remove(conn: Any) -> None:
        await tenant_store.remove(conn, tenant_id, now=SystemClock().now())

    run_async(with_conn(config, remove, write=True))
    click.echo(f"tenant {tenant_id} removed (its data is kept)")


@main.group("config")
def config_group() -> None:
    """Configuration files."""


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@friendly
def config_check(path: Path) -> None:
    """Validate a configuration file, and say what stops a configured platform from working."""
    from sportello.readiness import config_problems

    config = load_config(path)
    summary = f"{len(config.tenants)} tenants, database {config.database.url.split(':')[0]}"
    problems = config_problems(config, plugins=Plugins(config.plugins.disabled))
    if not problems:
        click.echo(f"{path}: ok ({summary})")
        return
    click.echo(f"{path}: valid ({summary}), but {len(problems)} problem(s):", err=True)
    for problem in problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1)


def _add_builtin_commands() -> None:
    from sportello.adapter_kit.cli import adapter_group
    from sportello.cli.onboard import tenants_onboard, tenants_status

    main.add_command(adapter_group)
    tenants_group.add_command(tenants_onboard)
    tenants_group.add_command(tenants_status)


_add_builtin_commands()
