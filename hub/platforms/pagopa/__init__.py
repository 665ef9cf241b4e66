"""pagoPA: the platform's hook implementations (a built-in plugin, named ``pagopa``,
registered like an outside one through ``sportello.platforms``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import HandlerFactory, KnownNotice, NoticeDocument, hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sportello.config import HubConfig, TenantConfig
    from sportello.hookspecs import CreatedNotice, NoticeRequest
    from sportello.periodic import PeriodicTask
    from sportello.services import HubServices

log = logging.getLogger("sportello.platforms.pagopa")


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from . import fdr_tables, receipts_tables, tables

    return [
        tables.iuv_counters,
        tables.positions,
        tables.payment_options,
        tables.receipts,
        fdr_tables.fdr_flows,
        fdr_tables.fdr_results,
        receipts_tables.receipt_cursors,
    ]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from .fdr import reconciliation_forward_handler
    from .gpd_bulk import gpd_bulk_handler
    from .jobs import (
        gpd_create_handler,
        gpd_invalidate_handler,
        gpd_publish_handler,
        gpd_update_handler,
        receipt_forward_handler,
    )

    return {
        "pagopa.receipt.forward": receipt_forward_handler,
        "pagopa.gpd.create": gpd_create_handler,
        "pagopa.gpd.bulk": gpd_bulk_handler,
        "pagopa.gpd.update": gpd_update_handler,
        "pagopa.gpd.publish": gpd_publish_handler,
        "pagopa.gpd.invalidate": gpd_invalidate_handler,
        "pagopa.reconciliation.forward": reconciliation_forward_handler,
    }


@hookimpl
def hub_web_routes() -> list[web.AbstractRouteDef]:
    from . import personal_area
    from .station import station_routes

    return [*station_routes(), *personal_area.routes()]


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    from .station import station_ctx

    return station_ctx(app)


@hookimpl
def hub_periodic_tasks(config: HubConfig, app: web.Application) -> list[PeriodicTask]:
    from sportello.periodic import PeriodicTask

    from .settings import pagopa_settings

    tasks = []
    for t in config.tenants:
        p = pagopa_settings(t)
        if p is not None and p.mode == "gpd" and p.base_url:
            # GPD mode: receipts are read back from the GPD receipts API
            tasks.append(
                PeriodicTask(
                    f"pagopa.receipts:{t.id}", p.receipts_poll_seconds, _receipts(app, t.id)
                )
            )
    return tasks


def _receipts(app: web.Application, tenant_id: str) -> Callable[[], Awaitable[None]]:
    async def round_() -> None:
        from sportello.appkeys import SERVICES

        from .receipts import ReceiptSync

        services = app[SERVICES]
        sync = ReceiptSync(
            services.engine, services.config, services.clock, services.session, services.plugins
        )
        report = await sync.sync(tenant_id)
        if report.stored:
            log.info("pagopa: receipts read", extra={"tenant": tenant_id, "stored": report.stored})

    return round_


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    from .settings import pagopa_settings

    p = pagopa_settings(tenant)
    if p is not None and p.mode == "gpd" and p.api_key is None:
        return [("pagopa", "mode gpd needs api_key (the GPD subscription key)")]
    return []


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import pagopa_group

    return [pagopa_group]


@hookimpl
async def hub_known_notices(
    services: HubServices, tenant_id: str, notice_numbers: frozenset[str]
) -> dict[str, KnownNotice]:
    """The notices of the positions the hub keeps, for App IO messages' payment data."""
    from .settings import pagopa_settings

    tenant = services.config.tenant(tenant_id)
    if tenant is None or pagopa_settings(tenant) is None:
        return {}
    from .store import PagopaStore

    store = PagopaStore(services.engine, services.config, services.clock)
    found = await store.known_notices(tenant_id, notice_numbers)
    return {nav: KnownNotice(*fields) for nav, fields in found.items()}


@hookimpl
async def hub_notice_document(
    services: HubServices, tenant_id: str, notice_number: str, actor: str
) -> NoticeDocument | None:
    """The payment notice PDF of a position the hub keeps (a SEND payment's attachment);
    the read of the debtor's data is audited."""
    from .notices import notice_document

    return await notice_document(services, tenant_id, notice_number, actor)


@hookimpl
async def hub_create_notice(
    conn: AsyncConnection,
    services: HubServices,
    tenant_id: str,
    request: NoticeRequest,
    actor: str,
) -> CreatedNotice:
    """A debt position for another platform's notice (a SEND fine), in its transaction."""
    from .notices import create_notice

    return await create_notice(conn, services, tenant_id, request, actor)


@hookimpl
def hub_demo_prepare(config: HubConfig) -> None:
    """``sportello demo``: the station key the demo's ``[tenants.pagopa]`` refers to."""
    from .demo import prepare_demo_env

    prepare_demo_env()


@hookimpl
async def hub_demo_seed(app: web.Application) -> None:
    """``sportello demo``: register the demo station with the sandbox Node, then give the
    FdR sandbox a flow to reconcile (station mode)."""
    from sportello.appkeys import CONFIG

    from .demo import hub_url, register_demo_station
    from .operations import seed_demo_fdr

    config = app[CONFIG]
    await register_demo_station(config, hub_url(config))
    await seed_demo_fdr(app)
    from .personal_area import seed_demo_notice

    await seed_demo_notice(app)  # the front office's "I miei pagamenti"


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
