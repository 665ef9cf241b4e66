"""Residents (ANPR through PDND, and the comune's registry): the platform's hook
implementations (a built-in plugin, named ``residents``, registered like an outside one
through ``sportello.platforms``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sportello.config import HubConfig, TenantConfig
    from sportello.services import HubServices

#: The ANPR e-services a resident look-up calls (each needs a PDND purpose).
LOOKUP_SERVICES = ("C030", "C020", "C021")


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_demo_pdnd_purposes(config: HubConfig, tenant: TenantConfig) -> dict[str, str]:
    """``sportello demo``: the ANPR purposes of ``[tenants.pdnd] purposes``, each with the
    audience the hub's calls carry (ModI ``aud``: the e-service URL up to ``/v1``)."""
    from sportello.connectors.anpr.services import SERVICES
    from sportello.connectors.pdnd.modi import modi_audience

    from .settings import anpr_settings

    anpr = anpr_settings(tenant)
    if anpr is None or tenant.pdnd is None:
        return {}
    base = anpr.base_url.rstrip("/")
    return {
        purpose: modi_audience(f"{base}/{SERVICES[code].e002_path}")
        for code, purpose in tenant.pdnd.purposes.items()
        if code in SERVICES
    }


@hookimpl
def hub_api_routes() -> list[web.AbstractRouteDef]:
    from . import api

    return [*api.routes()]


@hookimpl
def hub_platform_setup(
    services: HubServices, app: web.Application
) -> AbstractAsyncContextManager[None]:
    return _lookup_ctx(services, app)


@asynccontextmanager
async def _lookup_ctx(services: HubServices, app: web.Application) -> AsyncIterator[None]:
    from .lookup import RESIDENTS, ResidentLookup

    app[RESIDENTS] = lookup = ResidentLookup(services)
    try:
        yield
    finally:
        await lookup.close()


@hookimpl
def hub_config_problems(
    config: HubConfig, tenant: TenantConfig, app: web.Application | None
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if tenant.pdnd is not None:
        from sportello.connectors.pdnd.keys import load_private_key

        try:
            load_private_key(tenant.pdnd.key.reveal().encode())
        except LookupError:
            pass  # the kernel reports a missing secret
        except Exception as exc:
            out.append(("pdnd", f"key: not a usable RSA private key ({type(exc).__name__})"))
    from .settings import anpr_settings

    if anpr_settings(tenant) is not None:
        if tenant.pdnd is None:
            out.append(("anpr", "ANPR is reached through PDND: add [tenants.pdnd]"))
        else:
            missing = [c for c in LOOKUP_SERVICES if not tenant.pdnd.purposes.get(c)]
            if missing:
                out.append(
                    (
                        "anpr",
                        f"pdnd.purposes has no purposeId for {', '.join(missing)} "
                        "(resident look-ups call them)",
                    )
                )
    return out


@hookimpl
def hub_cli_commands() -> list[Any]:
    from .cli import keys_group, residents_group

    return [residents_group, keys_group]


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
