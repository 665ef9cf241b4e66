"""The ``sportello`` command line.

Every expected failure (bad configuration, database down, schema outdated, a second replica
on SQLite) ends with one line on stderr that says what is wrong and what to do, and exit
status 2 (configuration) or 1 (anything else); never a traceback.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import click
from rich.console import Console
from rich.table import Table

from sportello import __version__, apikeys, audit, migrate
from sportello.app import SchemaOutdated, create_app, open_database
from sportello.clock import SystemClock
from sportello.config import ConfigError, HubConfig, load_config
from sportello.db import (
    DatabaseUnavailable,
    ReplicaLock,
    ReplicaLockError,
    create_engine,
    reading,
    sqlite_path,
)
from sportello.hookspecs import sandbox_urls
from sportello.logs import setup_logging
from sportello.outbox import store
from sportello.outbox.worker import OutboxWorker, handlers_from
from sportello.plugins import PluginConflict, Plugins
from sportello.runner import Served, install_stop_signals, run_service_loop, serve
from sportello.services import HubServices

T = TypeVar("T")
CONFIG_ENV = "SPORTELLO_CONFIG"


def demo_config_path() -> Path:
    return Path(str(resources.files("sportello").joinpath("demo/demo.toml")))


def _fail(message: str, code: int) -> None:
    click.echo(f"sportello: error: {message}", err=True)
    sys.exit(code)


def friendly(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn the expected failures into one clear line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            lines = str(exc).splitlines()
            click.echo(f"sportello: error: invalid configuration: {lines[0]}", err=True)
            for line in lines[1:]:
                click.echo(f"  {line}", err=True)
            sys.exit(2)
        except (DatabaseUnavailable, SchemaOutdated, ReplicaLockError, PluginConflict) as exc:
            _fail(str(exc), 1)
        except (store.OperatorError, apikeys.ApiKeyError) as exc:
            _fail(str(exc), 1)
        except OSError as exc:
            _fail(f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})", 1)
        raise AssertionError("unreachable")

    return wrapper


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV,
    required=True,
    help=f"TOML configuration file (or ${CONFIG_ENV})",
)


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
                if command.name not in self.commands:
                    self.add_command(command)
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
    app = create_app(config, run_workers=False if no_workers else None)
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


@asynccontextmanager
async def _services(config: HubConfig, *, pre_ping: bool = True) -> AsyncIterator[HubServices]:
    """What a command that talks to platforms needs: the database (current schema) and one
    HTTP session, closed on the way out (``pre_ping``: see ``db.create_engine``)."""
    import aiohttp

    from sportello.connectors.http1 import LeanHttpClient
    from sportello.metrics import HubMetrics

    clock = SystemClock()
    engine = await open_database(config, apply_migrations=False, clock=clock, pre_ping=pre_ping)
    try:
        timeout = aiohttp.ClientTimeout(total=config.outbox.http_timeout)
        connector = aiohttp.TCPConnector(limit=config.outbox.http_connections)
        http = LeanHttpClient(limit=config.outbox.http_connections)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            try:
                yield HubServices(config, engine, session, clock, HubMetrics(), http=http)
            finally:
                await http.close()
    finally:
        await engine.dispose()


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
        prepare_demo_logins,
        prepare_demo_secrets,
        register_demo_pagopa_station,
        register_demo_pdnd_client,
        seed_demo_fdr,
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
    config = prepare_demo_logins(config, data_dir, trust_idps)
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
        await register_demo_pdnd_client(config, data_dir)
        await register_demo_pagopa_station(config, hub.url)
        await demo_api_key(app, key_file)
        await seed_demo_fdr(app)

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


async def _with_conn(
    config: HubConfig, fn: Callable[[Any], Coroutine[Any, Any, T]], *, write: bool = False
) -> T:
    engine = await open_database(config, apply_migrations=False, clock=SystemClock())
    try:
        if write:
            async with engine.begin() as conn:
                return await fn(conn)
        async with reading(engine) as conn:
            return await fn(conn)
    finally:
        await engine.dispose()


def _fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


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


def _operator() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


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


# --- keys ---------------------------------------------------------------------------------------
@main.group("keys")
def keys_group() -> None:
    """Key pairs a tenant registers with national platforms."""


@keys_group.command("pdnd")
@config_option
@click.option("--tenant", required=True)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where to write the private key (default: keys/<tenant>/ next to the config file)",
)
@friendly
def keys_pdnd(config_path: Path, tenant: str, out_dir: Path | None) -> None:
    """Make the RSA key for a tenant's PDND client; print what to upload and the kid."""
    from sportello.connectors.pdnd.keys import generate_key, jwk_thumbprint, public_key_for_upload

    config = load_config(config_path)
    if config.tenant(tenant) is None:
        _fail(f"tenant {tenant!r} is not in {config_path}", 2)
    private_pem, public_pem = generate_key()
    kid = jwk_thumbprint(public_pem)
    folder = out_dir or config_path.resolve().parent / "keys" / tenant
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / f"pdnd-{kid[:12]}.pem"
    from sportello.secrets import master_keys, write_secret_file

    if key_file.exists():
        _fail(f"{key_file} already exists", 1)
    encrypted = bool(master_keys())
    write_secret_file(key_file, private_pem, encrypted=encrypted)
    (folder / f"pdnd-{kid[:12]}.pub.pem").write_bytes(public_pem)
    how = "encrypted with the master key" if encrypted else "NOT encrypted: no master key set"
    click.echo(f"private key written to {key_file} (mode 600, {how}; never share it)")
    click.echo(f"kid (RFC 7638 thumbprint, as PDND computes it): {kid}")
    click.echo("public key to upload in the PDND back office (base64 of the PEM):")
    click.echo(public_key_for_upload(public_pem))
    click.echo("then set in the tenant's [tenants.pdnd] section:")
    click.echo(f'  kid = "{kid}"')
    rel = os.path.relpath(key_file, config_path.resolve().parent)
    shown = key_file if rel.startswith("..") else rel
    click.echo(f'  key = {{ file = "{shown}" }}')


@keys_group.command("spid")
@config_option
@click.option("--tenant", required=True)
@click.option("--scheme", type=click.Choice(["spid", "cie"]), default="spid", show_default=True)
@click.option(
    "--rotate",
    is_flag=True,
    help="replace the current pair; the old certificate "
    "stays in the metadata until it expires or --retire",
)
@click.option("--retire", is_flag=True, help="drop previous certificates from the metadata")
@click.option("--aggregator", is_flag=True, help="make the aggregator's signing key instead")
@click.option("--days", type=int, default=730, show_default=True)
@friendly
def keys_spid(
    config_path: Path,
    tenant: str,
    scheme: str,
    rotate: bool,
    retire: bool,
    aggregator: bool,
    days: int,
) -> None:
    """Make a tenant's SAML key and self-signed certificate (SPID subject and policy OIDs)."""
    from sportello.connectors.spid.keys import make_sp_certificate
    from sportello.platforms.login.keys import (
        LoginConfigError,
        entity_id,
        login_settings,
        retire_previous,
        write_keys,
    )

    config = load_config(config_path)
    t = config.tenant(tenant)
    if t is None:
        _fail(f"tenant {tenant!r} is not in {config_path}", 2)
    assert t is not None
    kind: Literal["spid", "cie"] = "cie" if scheme == "cie" else "spid"
    try:
        settings = login_settings(t, kind)
    except LoginConfigError as exc:
        _fail(str(exc), 2)
        raise
    keys_dir = settings.keys_dir
    if aggregator:
        if settings.aggregator is None:
            _fail(f"tenant {tenant!r} has no [tenants.{kind}.aggregator] section", 2)
        assert settings.aggregator is not None
        keys_dir = settings.aggregator.keys_dir
    if retire:
        gone = retire_previous(keys_dir)
        click.echo(f"retired {len(gone)} previous certificate(s) from {keys_dir}")
        return
    private = settings.profile == "private"
    agg = settings.aggregator if aggregator else None
    key_pem, cert_pem = make_sp_certificate(
        entity_id=entity_id(config, t, kind),
        organization_name=agg.company if agg else t.name,
        common_name=agg.company if agg else t.name,
        locality=t.cadastral_code,
        ipa_code=None if (private or agg) else t.ipa_code,
        vat_number=(
            agg.vat_number if agg else (settings.billing.vat_number if settings.billing else None)
        ),
        fiscal_code=(agg.fiscal_code if agg else (t.fiscal_code if private else None)),
        private=private or agg is not None,
        days=days,
    )
    try:
        kept = write_keys(keys_dir, key_pem, cert_pem, rotate=rotate)
    except LoginConfigError as exc:
        _fail(str(exc), 1)
    click.echo(f"key and certificate written to {keys_dir} (current.key, current.crt)")
    if kept is not None:
        click.echo(f"previous certificate kept in the metadata: {kept.name} (--retire drops it)")
    click.echo("publish the new metadata to AgID / the CIE federation before the old one expires")


@main.group("idps")
def idps_group() -> None:
    """The identity providers tenants trust."""


@idps_group.command("refresh")
@click.option(
    "--url",
    default="https://registry.spid.gov.it/metadata/idp/spid-entities-idps.xml",
    show_default=True,
)
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/idps/spid-entities-idps.xml"),
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=CONFIG_ENV,
    help=f"TOML configuration whose [idps] signing_certs verify the document (or ${CONFIG_ENV})",
)
@click.option(
    "--cert",
    "cert_paths",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="AgID's signing certificate (PEM), instead of the configuration's (repeatable)",
)
@friendly
def idps_refresh(
    url: str, cache: Path, config_path: Path | None, cert_paths: tuple[Path, ...]
) -> None:
    """Fetch the official SPID IdP metadata, verify AgID's signature, cache it.

    A document that is unsigned, badly signed, expired or empty is refused (exit 1) and the
    last good copy stays in use.
    """
    import aiohttp

    from sportello.config import IdpTrustSettings
    from sportello.connectors.spid.errors import SamlConfigError
    from sportello.platforms.login.idps import refresh_registry

    try:
        if cert_paths:
            certs = IdpTrustSettings(signing_certs=[str(p) for p in cert_paths]).pems()
        else:
            certs = load_config(config_path).idps.pems() if config_path else []
    except ValueError as exc:
        _fail(str(exc), 2)
    if not certs:
        _fail(
            "no certificate to verify the registry's signature: give --cert AGID.pem or "
            "--config with [idps] signing_certs",
            2,
        )
    try:
        count = run_async(refresh_registry(url, cache, certs))
    except (SamlConfigError, aiohttp.ClientError, TimeoutError) as exc:
        kept = f"the last good copy in {cache} is kept" if cache.exists() else "nothing cached"
        _fail(f"{exc or type(exc).__name__}; {kept}", 1)
    click.echo(f"{count} identity providers verified and cached in {cache}")


# --- App IO ---------------------------------------------------------------------------------------
@main.group("io")
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
    if t is None or t.io is None or t.io.service(service_id) is None:
        _fail(f"tenant {tenant!r} has no App IO service {service_id!r} in {config_path}", 2)
    if (csv_path is None) == (source_name is None):
        _fail("give either --csv FILE or --source NAME", 2)
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
        _with_conn(
            config,
            lambda c: campaigns.create_campaign(
                c,
                tenant_id=tenant,
                service_id=service_id,
                name=name or label,
                template=template,
                prepared=prepared,
                source=label,
                created_by=_operator(),
                now=now,
            ),
            write=True,
        )
    )
    click.echo(f"campaign {campaign_id} queued: {len(prepared.messages)} messages")


async def _notices(config: HubConfig, tenant: str, navs: set[str]) -> Any:
    """Stored pagoPA positions for the notice numbers a campaign names (payment data link)."""
    from sportello.platforms.io import campaigns

    async with _services(config) as services:
        return await campaigns.notice_lookup(services.engine, config, tenant, navs)


async def _source_rows(
    config: HubConfig, base_dir: Path, name: str, raw_options: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Every row of a campaign source plugin (validated afterwards, all before queueing)."""
    sources = Plugins(config.plugins.disabled).campaign_sources()
    if name not in sources:
        _fail(f"no campaign source {name!r} (installed: {', '.join(sorted(sources))})", 2)
    options: dict[str, str] = {}
    for item in raw_options:
        key, sep, value = item.partition("=")
        if not sep:
            _fail(f"--option {item!r}: expected KEY=VALUE", 2)
        options[key] = value
    try:
        source = sources[name](options, base_dir=base_dir)
    except ValueError as exc:
        _fail(f"campaign source {name}: {exc}", 2)
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
    data = run_async(_with_conn(config, lambda c: campaigns.report(c, campaign_id)))
    if data is None:
        _fail(f"campaign {campaign_id} does not exist", 1)
    assert data is not None
    if as_json:  # recipients' fiscal codes: a personal-data read, audited
        entry = audit.AuditEntry(
            tenant_id=data["tenant_id"],
            actor=_operator(),
            action="io.campaign.report",
            subject=f"campaign:{campaign_id}",
            purpose="campaign delivery report (CLI)",
            sources="hub",
            outcome="ok",
            detail=f"{len(data['messages'])} recipients",
        )
        now = SystemClock().now()
        run_async(_with_conn(config, lambda c: audit.record(c, entry, at=now), write=True))
        click.echo(json.dumps(data, default=_fmt))
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
        _with_conn(
            config,
            lambda c: campaigns.resend_unknown(
                c, campaign_id=campaign_id, now=now, operator=_operator()
            ),
            write=True,
        )
    )
    click.echo(f"{n} message(s) queued again")


# --- residents ----------------------------------------------------------------------------------
@main.group("residents")
def residents_group() -> None:
    """Resident look-ups (ANPR through PDND, and the comune's registry). Always audited."""


@residents_group.command("lookup")
@config_option
@click.option("--tenant", required=True)
@click.option("--purpose", required=True, help="file or protocol reference (motivoRichiesta)")
@click.option("--operator", default=None, help="who asks (default: the system user)")
@click.argument("fiscal_code")
@friendly
def residents_lookup(
    config_path: Path, tenant: str, purpose: str, operator: str | None, fiscal_code: str
) -> None:
    """Look up one resident; print JSON with the source of every field."""
    from sportello.platforms.residents.lookup import (
        LookupFailed,
        LookupRefused,
        Requester,
        ResidentLookup,
    )

    config = load_config(config_path)
    user = _operator()

    async def go() -> dict[str, Any]:
        async with _services(config) as services:
            lookup = ResidentLookup(services, Plugins(config.plugins.disabled))
            try:
                who = Requester(actor=user, operator=operator or user, purpose=purpose)
                return await lookup.lookup(tenant, fiscal_code, who)
            finally:
                await lookup.close()

    try:
        result = run_async(go())
    except LookupRefused as exc:
        _fail(str(exc), 1)
    except LookupFailed as exc:
        # not "nobody": a platform failed, so whether the person exists is unknown
        _fail(exc.detail, 5 if exc.status == 503 else 4)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    for warning in result["warnings"]:
        click.echo(f"sportello: warning: {warning}", err=True)
    if not result["found"]:
        sys.exit(3)


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


# --- SUAP -----------------------------------------------------------------------------------------
@main.group("suap")
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
        async with _services(config) as services:
            suap = SuapService(services, Plugins(config.plugins.disabled))
            try:
                return await suap.notify(tenant)
            finally:
                await suap.close()

    try:
        result = run_async(go())
    except SuapUnavailable as exc:
        _fail(str(exc), 1)
    click.echo(
        f"{result['changes']} change(s): {result['messages']} App IO message(s) and "
        f"{result['events']} webhook event(s) queued"
    )


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


@main.group("tenants")
def tenants_group() -> None:
    """Tenants (enti) served by this hub."""


@tenants_group.command("list")
@config_option
@friendly
def tenants_list(config_path: Path) -> None:
    """List the configured tenants."""
    config = load_config(config_path)
    table = Table("id", "name", "IPA", "fiscal code", "cadastral", "platforms")
    for t in config.tenants:
        platforms = [p for p in ("spid", "pagopa", "io", "pdnd") if getattr(t, p) is not None]
        table.add_row(
            t.id, t.name, t.ipa_code, t.fiscal_code, t.cadastral_code, ", ".join(platforms)
        )
    Console().print(table)


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

    main.add_command(adapter_group)


_add_builtin_commands()
