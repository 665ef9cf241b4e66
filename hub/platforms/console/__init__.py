"""The operator console at ``/console/`` (software-house admins and comune staff): the
platform's hook implementations (a built-in plugin named ``console``, registered like an
outside one through ``sportello.platforms``). Other platforms' data reach it through
``hub_console_panels``; it imports no other platform."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Table

    from sportello.services import HubServices

log = logging.getLogger("sportello.console")

#: the demo's console admin (docs/console.md "The demo"): public on purpose, demo only
DEMO_ADMIN = "demo"
DEMO_PASSWORD = "demo-console-2026"
DEMO_TOTP_SECRET = "DEMOCONSOLETOTPSECRETAAAAAAAAAAA"


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_settings() -> dict[str, type[BaseModel]]:
    from .settings import HUB_SECTIONS

    return dict(HUB_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import console_attempts, console_staff, console_users

    return [console_users, console_staff, console_attempts]


@hookimpl
def hub_migration_locations() -> list[Path]:
    return [Path(__file__).parent / "migrations"]


@hookimpl
def hub_web_routes() -> list[web.AbstractRouteDef]:
    from .pages import routes

    return [*routes()]


@hookimpl
def hub_login_return_paths() -> list[str]:
    return ["/console/t/{tenant}/accesso"]


@asynccontextmanager
async def _console_ctx(app: web.Application) -> AsyncIterator[None]:
    from .pages import CONSOLE, Console

    app[CONSOLE] = Console(app)
    yield


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    return _console_ctx(app)


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import console_group

    return [console_group]


@hookimpl
async def hub_demo_seed(app: web.Application) -> None:
    """``sportello demo``: the console admin ``demo`` (its password and TOTP secret are
    in docs/console.md), made once."""
    from sportello.appkeys import CLOCK, CONFIG, ENGINE

    from . import service
    from .settings import console_settings

    async with app[ENGINE].begin() as conn:
        if await service.user(conn, DEMO_ADMIN) is None:
            await service.add_user(
                conn,
                DEMO_ADMIN,
                DEMO_PASSWORD,
                now=app[CLOCK].now(),
                issuer=console_settings(app[CONFIG]).totp_issuer,
                secret=DEMO_TOTP_SECRET,
            )
    log.info(
        "demo: console admin %r at /console/ (password and TOTP secret: docs/console.md)",
        DEMO_ADMIN,
    )
