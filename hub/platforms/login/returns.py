"""Where a login may come back to: besides each tenant's ``return_urls``, the hub's own
pages (front office, console) that declare their paths with ``hub_login_return_paths``."""

from __future__ import annotations

from aiohttp import web

from sportello.appkeys import CONFIG, PLUGINS
from sportello.config import TenantConfig

from .keys import public_url

_PATHS = web.AppKey("login_own_return_paths", list)


def install(app: web.Application) -> None:
    """Collect the paths while the app is built (``hub_web_app``)."""
    app[_PATHS] = [p for group in app[PLUGINS].pm.hook.hub_login_return_paths() for p in group]


def own_return_urls(app: web.Application, tenant: TenantConfig) -> set[str]:
    """The hub's own pages that may receive the tenant's login codes
    (``hub_login_return_paths``, on the hub's public URL)."""
    paths = app.get(_PATHS) or []
    base = public_url(app[CONFIG])
    return {base + p.format(tenant=tenant.id) for p in paths}
