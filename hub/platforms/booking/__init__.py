"""Booking (appointments at the comune's offices): the platform's hook implementations (a
built-in plugin, named ``booking``, registered like an outside one through
``sportello.platforms``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import HandlerFactory, hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Table

    from sportello.config import HubConfig, TenantConfig


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import booking_appointments, booking_seats

    return [booking_appointments, booking_seats]


@hookimpl
def hub_migration_locations() -> list[Path]:
    return [Path(__file__).parent / "migrations"]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from .jobs import reminder_handler
    from .service import REMINDER_KIND

    return {REMINDER_KIND: reminder_handler}


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    from .settings import booking_settings

    settings = booking_settings(tenant)
    if settings is None or settings.io_service is None:
        return []
    io = getattr(tenant, "io", None)
    services = getattr(io, "services", None) or []
    if not any(getattr(s, "id", None) == settings.io_service for s in services):
        return [
            (
                "booking",
                f"[tenants.booking] io_service {settings.io_service!r} is not among "
                "[[tenants.io.services]]",
            )
        ]
    return []


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import booking_group

    return [booking_group]
