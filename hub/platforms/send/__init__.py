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
    from datetime import datetime

    from pydantic import BaseModel
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sportello.config import HubConfig, TenantConfig
    from sportello.periodic import PeriodicTask
    from sportello.services import HubServices

log = logging.getLogger("sportello.platforms.send")


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import (
        send_documents,
        send_events,
        send_notifications,
        send_payments,
        send_streams,
    )

    return [send_notifications, send_documents, send_payments, send_streams, send_events]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from . import service
    from .f24_payments import F24_PAYMENT_KIND, f24_payment_handler
    from .payments import PAYMENT_KIND

    return {
        service.UPLOAD_KIND: service.upload_handler,
        service.REQUEST_KIND: service.request_handler,
        service.ACCEPTANCE_KIND: service.acceptance_handler,
        service.CANCEL_KIND: service.cancel_handler,
        PAYMENT_KIND: service.payment_handler,
        F24_PAYMENT_KIND: f24_payment_handler,
    }


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api, f24_payments, legal_facts

    return [*api.routes(), *f24_payments.routes(), *legal_facts.routes()]


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    return _setup(services, app)


@asynccontextmanager
async def _setup(services: HubServices, app: web.Application) -> AsyncIterator[None]:
    from .inad import INAD_DOMICILES, Domiciles
    from .payments import SEND_SURCHARGES, Surcharges
    from .service import (
        SEND_CLIENTS,
        SEND_QUEUE,
        SEND_STREAMS,
        NotificationQueue,
        SendClients,
        StreamReader,
    )

    clients = SendClients(services)
    app[SEND_CLIENTS] = clients
    app[SEND_QUEUE] = NotificationQueue(services)
    app[SEND_STREAMS] = StreamReader(services, clients)
    app[INAD_DOMICILES] = Domiciles(services)
    app[SEND_SURCHARGES] = Surcharges(services, clients)
    yield


@hookimpl
def hub_periodic_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    from sportello.periodic import PeriodicTask

    from .settings import send_settings

    tasks = []
    for t in config.tenants:
        send = send_settings(t)
        if send is not None and t.pdnd is not None:
            name = f"send.stream:{t.id}"
            tasks.append(PeriodicTask(name, send.stream_poll_seconds, _read(app, t.id)))
    return tasks


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
    from .settings import inad_settings, send_settings

    out: list[tuple[str, str]] = []
    if send_settings(tenant) is not None and tenant.pdnd is None:
        out.append(("send", "SEND calls carry a PDND voucher: add [tenants.pdnd]"))
    if inad_settings(tenant) is not None and tenant.pdnd is None:
        out.append(("inad", "INAD calls carry a PDND voucher: add [tenants.pdnd]"))
    return out


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import inad_group, send_group

    return [inad_group, send_group]


@hookimpl
def hub_notice_surcharge(
    app: web.Application, tenant_id: str, notice_number: str
) -> Awaitable[int | None] | None:
    """SEND's current notification cost of a notice with ``applyCost`` (payments.py)."""
    from .payments import SEND_SURCHARGES

    surcharges = app.get(SEND_SURCHARGES)
    return None if surcharges is None else surcharges(tenant_id, notice_number)


@hookimpl
async def hub_notice_paid(
    conn: AsyncConnection,
    tenant_id: str,
    notice_number: str,
    creditor_tax_id: str,
    amount: int,
    paid_at: datetime,
    now: datetime,
) -> None:
    """The receipt closes both: SEND is told, through the outbox (payments.py)."""
    from .payments import queue_payment_event

    await queue_payment_event(
        conn,
        tenant_id=tenant_id,
        notice_number=notice_number,
        creditor_tax_id=creditor_tax_id,
        amount=amount,
        paid_at=paid_at,
        now=now,
    )


# The demo's ``[tenants.send] api_key`` (SPORTELLO_DEMO_SEND_KEY) is set from the SEND
# twin's ``SandboxApp.demo_env`` (sandbox/send/plugin.py): a platform imports no sandbox.


@hookimpl
def hub_demo_pdnd_purposes(config: HubConfig, tenant: TenantConfig) -> dict[str, str]:
    """``sportello demo``: SEND's and INAD's purposes of ``tenant``, each with the audience
    its sandbox expects (the twin's base URL, as a real e-service's)."""
    from .settings import inad_settings, send_settings

    out: dict[str, str] = {}
    send, inad = send_settings(tenant), inad_settings(tenant)
    if send is not None:
        out[send.purpose_id] = str(send.base_url).rstrip("/")
    if inad is not None:
        out[inad.purpose_id] = str(inad.base_url).rstrip("/")
    return out


@hookimpl
def hub_onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[Any]:
    from .onboard import onboard

    return onboard(config, tenant, make)


@hookimpl
def hub_tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[Any]:
    from .onboard import tenant_checks

    return tenant_checks(config, tenant)


@hookimpl
def hub_personal_area() -> list[Any]:
    from .personal_area import sources

    return sources()


@hookimpl
def hub_console_panels() -> list[Any]:
    from .console import PANELS

    return list(PANELS)
