"""The header and footer of the citizen's pages, for every platform that has some (front
office, booking, requests): the comune's name, logo and site and the front office's menu,
given by the ``hub_web_site`` hook (built-in: the ``frontoffice`` platform's
``[tenants.frontoffice]``), so a platform's pages look like the rest without importing
the front office."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appkeys import PLUGINS
from ..config import TenantConfig


def site(app: web.Application, tenant: TenantConfig, path: str = "") -> dict[str, Any]:
    """The ``site`` context of ``web/base.html`` for ``tenant``; the menu entry whose URL
    is ``path`` (or its longest prefix) is marked current."""
    found = app[PLUGINS].pm.hook.hub_web_site(tenant=tenant) or {}
    home = str(found.get("home_url") or f"/t/{tenant.id}/sportello/")
    nav = [(str(label), str(url)) for label, url in found.get("nav") or []]
    best = max((u for _, u in nav if path.startswith(u.split("?")[0])), key=len, default=None)
    return {
        "name": str(found.get("name") or tenant.name),
        "home_url": home,
        "logo_url": found.get("logo_url") or "",
        "owner_name": found.get("owner_name") or "",
        "owner_url": found.get("owner_url") or home,
        "tagline": found.get("tagline") or "",
        "nav": [(label, url, url == best) for label, url in nav],
        "front_office": str(found.get("front_office") or f"/t/{tenant.id}/sportello/"),
        #: a folder of templates the tenant's pages search first (branding), or ""
        "templates_dir": str(found.get("templates_dir") or ""),
    }
