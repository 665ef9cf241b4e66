"""What every ``sportello`` command shares, the kernel's and the platforms' alike: the
``--config`` option, the one-line failures, the services of a command that talks to
platforms. A platform's ``cli.py`` imports these; the kernel CLI imports no platform."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from sportello import apikeys, tenant_store
from sportello.app import SchemaOutdated, open_database
from sportello.clock import SystemClock
from sportello.config import ConfigError, HubConfig
from sportello.db import DatabaseUnavailable, ReplicaLockError, reading
from sportello.outbox import store
from sportello.plugins import PluginConflict
from sportello.services import HubServices

__all__ = [
    "CONFIG_ENV",
    "config_option",
    "fail",
    "fmt",
    "friendly",
    "hub_services",
    "operator",
    "run_async",
    "with_conn",
]

T = TypeVar("T")
CONFIG_ENV = "SPORTELLO_CONFIG"


def fail(message: str, code: int) -> NoReturn:
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
            fail(str(exc), 1)
        except (store.OperatorError, apikeys.ApiKeyError, tenant_store.TenantStoreError) as exc:
            fail(str(exc), 1)
        except OSError as exc:
            fail(f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})", 1)

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


@asynccontextmanager
async def hub_services(config: HubConfig, *, pre_ping: bool = True) -> AsyncIterator[HubServices]:
    """What a command that talks to platforms needs: the database (current schema), one
    HTTP session and the tenants' adapters, closed on the way out (``pre_ping``: see
    ``db.create_engine``)."""
    import aiohttp

    from sportello.connectors.http1 import LeanHttpClient
    from sportello.metrics import HubMetrics

    clock = SystemClock()
    engine = await open_database(config, apply_migrations=False, clock=clock, pre_ping=pre_ping)
    try:
        async with reading(engine) as conn:  # the tenants stored in the database too
            config = await tenant_store.with_stored(conn, config)
        timeout = aiohttp.ClientTimeout(total=config.outbox.http_timeout)
        connector = aiohttp.TCPConnector(limit=config.outbox.http_connections)
        http = LeanHttpClient(limit=config.outbox.http_connections)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            services = HubServices(config, engine, session, clock, HubMetrics(), http=http)
            try:
                yield services
            finally:
                await services.adapters.aclose()
                await http.close()
    finally:
        await engine.dispose()


async def with_conn(
    config: HubConfig, fn: Callable[[Any], Coroutine[Any, Any, T]], *, write: bool = False
) -> T:
    """Run ``fn(conn)`` on the configured database (``write``: in one transaction)."""
    engine = await open_database(config, apply_migrations=False, clock=SystemClock())
    try:
        if write:
            async with engine.begin() as conn:
                return await fn(conn)
        async with reading(engine) as conn:
            return await fn(conn)
    finally:
        await engine.dispose()


def fmt(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


def operator() -> str:
    """Who runs the command, as the audit log names a CLI operator."""
    return f"cli:{os.environ.get('USER', 'unknown')}"
