"""Online requests (richieste online, Designers Italia criteria C.SE): the platform's hook
implementations (a built-in plugin, named ``requests``, registered like an outside one
through ``sportello.platforms``).

A service-request engine (service cards with steps, drafts, summary, submission with a
protocol number, intake date and deadline, milestones set by the back office), two services
on it (certificate request with the stamp duty through pagoPA, change of residence
declaration sent to the registry) and the rating of every service (C.SE.1.7)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import AdapterKind, HandlerFactory, hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sportello.config import HubConfig, TenantConfig


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_tables() -> list[Table]:
    from .tables import TABLES

    return list(TABLES)


@hookimpl
def hub_migration_locations() -> list[Path]:
    return [Path(__file__).parent / "migrations"]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from .jobs import residence_handler
    from .service import RESIDENCE_KIND

    return {RESIDENCE_KIND: residence_handler}


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
    from sportello.adapters.protocol.base import KIND, ProtocolAdapter

    return {
        KIND: AdapterKind(
            ProtocolAdapter,
            "the comune's protocol register (numbers the online requests; without one the "
            "hub numbers them in its database)",
        )
    }


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
    """A stamp duty paid: the certificate can be downloaded."""
    from .service import notice_paid

    await notice_paid(conn, tenant_id, notice_number, now)


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    from .settings import requests_settings

    settings = requests_settings(tenant)
    if settings is None:
        return []
    problems = []
    if settings.io_service is not None:
        services = getattr(getattr(tenant, "io", None), "services", None) or []
        if not any(getattr(s, "id", None) == settings.io_service for s in services):
            problems.append(
                (
                    "requests",
                    f"[tenants.requests] io_service {settings.io_service!r} is not among "
                    "[[tenants.io.services]]",
                )
            )
    if settings.stamp_duty is not None and getattr(tenant, "pagopa", None) is None:
        problems.append(
            (
                "requests",
                "[tenants.requests.stamp_duty] needs [tenants.pagopa] to collect it",
            )
        )
    if "certificato" in settings.services and "registry" not in tenant.adapters:
        problems.append(
            (
                "requests",
                "the certificate request needs the comune's registry: [tenants.adapters.registry]",
            )
        )
    return problems


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import requests_group

    return [requests_group]


@hookimpl
def hub_console_panels() -> list[Any]:
    from .console import PANELS

    return list(PANELS)
