"""Booking (appointments at the comune's offices): the platform's hook implementations (a
built-in plugin, named ``booking``, registered like an outside one through
``sportello.platforms``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import AdapterKind, HandlerFactory, hookimpl

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
    from .tables import booking_appointments, booking_attempts, booking_seats

    return [booking_appointments, booking_seats, booking_attempts]


@hookimpl
def hub_migration_locations() -> list[Path]:
    return [Path(__file__).parent / "migrations"]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from .jobs import email_handler, reminder_handler
    from .service import EMAIL_KIND, REMINDER_KIND

    return {REMINDER_KIND: reminder_handler, EMAIL_KIND: email_handler}


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_web_app(app: web.Application) -> None:
    from .pages import install

    install(app)


@hookimpl
def hub_web_routes() -> list[web.AbstractRouteDef]:
    from . import pages

    return [*pages.routes()]


@hookimpl
def hub_personal_area() -> list[Any]:
    from .personal_area import sources

    return sources()


@hookimpl
def hub_adapter_kinds() -> dict[str, AdapterKind]:
    from sportello.adapters.agenda.base import KIND, AgendaAdapter

    return {
        KIND: AdapterKind(
            AgendaAdapter, "the comune's existing agenda software (appointments at its offices)"
        )
    }


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    from .settings import booking_settings

    settings = booking_settings(tenant)
    if settings is None:
        return []
    problems = []
    if not settings.offices and "booking" not in tenant.adapters:
        problems.append(
            (
                "booking",
                "[tenants.booking] has no offices: list them, or name the comune's agenda "
                "in [tenants.adapters.booking]",
            )
        )
    if settings.io_service is None:
        return problems
    io = getattr(tenant, "io", None)
    services = getattr(io, "services", None) or []
    if not any(getattr(s, "id", None) == settings.io_service for s in services):
        problems.append(
            (
                "booking",
                f"[tenants.booking] io_service {settings.io_service!r} is not among "
                "[[tenants.io.services]]",
            )
        )
    return problems


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import booking_group

    return [booking_group]


@hookimpl
def hub_console_panels() -> list[Any]:
    from .console import PANELS

    return list(PANELS)
