"""The citizen's front office (``/t/{tenant}/sportello/``): the platform's hook
implementations (a built-in plugin, named ``frontoffice``, registered like an outside one
through ``sportello.platforms``). Its pages are in :mod:`.pages`; the personal area's
sections come from each platform's ``hub_personal_area``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sportello.hookspecs import hookimpl

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sportello.config import TenantConfig


@hookimpl
def hub_tenant_settings() -> dict[str, type[BaseModel]]:
    from .settings import TENANT_SECTIONS

    return dict(TENANT_SECTIONS)


@hookimpl
def hub_web_app(app: web.Application) -> None:
    from .pages import install

    install(app)


@hookimpl
def hub_web_routes() -> list[web.AbstractRouteDef]:
    from .pages import routes

    return [*routes()]


@hookimpl
def hub_login_return_paths() -> list[str]:
    from .pages import LOGOUT_RETURN_PATH, RETURN_PATH

    return [RETURN_PATH, LOGOUT_RETURN_PATH]


@hookimpl
def hub_web_site(tenant: TenantConfig) -> Mapping[str, Any] | None:
    from .settings import frontoffice_settings

    settings = frontoffice_settings(tenant)
    if settings is None:
        return None
    base = f"/t/{tenant.id}/sportello"
    front = base + "/"
    nav = [("Servizi", front), ("Area personale", base + "/area")]
    if getattr(tenant, "booking", None) is not None:
        nav.append(("Prenota un appuntamento", base + "/prenota/"))
    return {
        "name": settings.site_name or tenant.name,
        "home_url": settings.home_url or front,
        "logo_url": settings.logo_url or "",
        "owner_name": settings.owner_name or settings.site_name or tenant.name,
        "owner_url": settings.owner_url or settings.home_url or front,
        "tagline": settings.tagline or "Servizi online",
        "nav": nav,
        "front_office": front,
        "templates_dir": str(settings.templates_dir or ""),
    }
