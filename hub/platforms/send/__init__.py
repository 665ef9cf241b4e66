"""SEND (notifications with legal value): the platform's hook implementations (a built-in
plugin, named ``send``, registered like an outside one through ``sportello.platforms``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import HandlerFactory, hookimpl

if TYPE_CHECKING:
    from sqlalchemy import Table

    from sportello.config import HubConfig, TenantConfig
    from sportello.periodic import PeriodicTask
    from sportello.services import HubServices

log = logging.getLogger("sportello.platforms.send")


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import send_documents, send_events, send_notifications, send_streams

    return [send_notifications, send_documents, send_streams, send_events]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from . import service

    return {
        service.UPLOAD_KIND: service.upload_handler,
        service.REQUEST_KIND: service.request_handler,
        service.ACCEPTANCE_KIND: service.acceptance_handler,
        service.CANCEL_KIND: service.cancel_handler,
    }


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    return _setup(services, app)


@asynccontextmanager
async def _setup(services: HubServices, app: web.Application) -> AsyncIterator[None]:
    from .inad import INAD_DOMICILES, Domiciles
    from .service import SEND_CLIENTS, SEND_STREAMS, SendClients, StreamReader

    clients = SendClients(services)
    app[SEND_CLIENTS] = clients
    app[SEND_STREAMS] = StreamReader(services, clients)
    app[INAD_DOMICILES] = Domiciles(services)
    yield


@hookimpl
def hub_periodic_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    from sportello.periodic import PeriodicTask

    return [
        PeriodicTask(f"send.stream:{t.id}", t.send.stream_poll_seconds, _read(app, t.id))
        for t in config.tenants
        if t.send is not None and t.pdnd is not None
    ]


def _read(app: web.Application, tenant_id: str) -> Callable[[], Awaitable[None]]:
    async def round_() -> None:
        from .service import SEND_STREAMS

        result = await app[SEND_STREAMS].read(tenant_id)
        if result["events"]:
            log.info("send: stream events stored", extra={"tenant": tenant_id, **result})

    return round_


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if tenant.send is not None and tenant.pdnd is None:
        out.append(("send", "SEND calls carry a PDND voucher: add [tenants.pdnd]"))
    if tenant.inad is not None and tenant.pdnd is None:
        out.append(("inad", "INAD calls carry a PDND voucher: add [tenants.pdnd]"))
    return out


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import inad_group

    return [inad_group]
