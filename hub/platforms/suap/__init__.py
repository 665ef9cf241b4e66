"""SUAP: the platform's hook implementations (a built-in plugin, named ``suap``,
registered like an outside one through ``sportello.platforms``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Table

    from sportello.config import HubConfig, TenantConfig
    from sportello.periodic import PeriodicTask
    from sportello.services import HubServices

log = logging.getLogger("sportello.platforms.suap")


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import suap_cursors

    return [suap_cursors]


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    return _service_ctx(services, app)


@asynccontextmanager
async def _service_ctx(services: HubServices, app: web.Application) -> AsyncIterator[None]:
    from .service import SUAP, SuapService

    app[SUAP] = suap = SuapService(services)
    try:
        yield
    finally:
        await suap.close()


@hookimpl
def hub_periodic_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    from sportello.periodic import PeriodicTask

    from .settings import suap_settings

    tasks = []
    for t in config.tenants:
        settings = suap_settings(t)
        if settings is not None and "suap" in t.adapters:
            name = f"suap.notify:{t.id}"
            tasks.append(PeriodicTask(name, settings.poll_seconds, _notify(app, t.id)))
    return tasks


def _notify(app: web.Application, tenant_id: str) -> Callable[[], Awaitable[None]]:
    async def round_() -> None:
        from .service import SUAP

        result = await app[SUAP].notify(tenant_id)
        if result["changes"]:
            log.info("suap: changes announced", extra={"tenant": tenant_id, **result})

    return round_


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    from .settings import suap_settings

    if suap_settings(tenant) is not None and "suap" not in tenant.adapters:
        return [("suap", "[tenants.suap] needs a SUAP adapter in [tenants.adapters.suap]")]
    return []


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import suap_group

    return [suap_group]


@hookimpl
def hub_personal_area() -> list[Any]:
    from .personal_area import sources

    return sources()
