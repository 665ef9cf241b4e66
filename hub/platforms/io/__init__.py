"""App IO: the platform's hook implementations (a built-in plugin, named ``io``,
registered like an outside one through ``sportello.platforms``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import HandlerFactory, hookimpl

if TYPE_CHECKING:
    from datetime import datetime

    from pydantic import BaseModel
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sportello.config import HubConfig, TenantConfig
    from sportello.connectors.io.models import NewMessage


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import io_campaigns, io_messages

    return [io_campaigns, io_messages]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from .delivery import io_message_handler, io_messages_handler, io_status_handler

    return {
        "io.message": io_message_handler,
        "io.messages": io_messages_handler,
        "io.status": io_status_handler,
    }


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    from .settings import io_settings

    io = io_settings(tenant)
    if io is not None and not io.services:
        return [("io", "no App IO service: add [[tenants.io.services]] with its key")]
    return []


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import io_group

    return [io_group]


@hookimpl
async def hub_queue_message(
    conn: AsyncConnection,
    tenant_id: str,
    service_id: str,
    message: NewMessage,
    now: datetime,
    expedition_at: datetime | None,
) -> int:
    """Other platforms' App IO messages (SUAP's practice changes) join the io outbox."""
    from .campaigns import enqueue_message

    return await enqueue_message(
        conn,
        tenant_id=tenant_id,
        service_id=service_id,
        message=message,
        now=now,
        expedition_at=expedition_at,
    )


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
