"""A tiny "comune application" inside the demo, to show the login handoff end to end.

``/t/{tenant}/app`` offers "Entra con SPID" and "Entra con CIE" (SAML) and, for a tenant with
``[tenants.oidc]``, "Entra con CIE (OpenID Connect)" and "Entra con SPID (OpenID Connect)"
(``/t/{tenant}/oidc/login?provider=<the OP's entity ID>``); the login comes back to
``/t/{tenant}/app/callback?code=...``, which exchanges the code server-side (as a real
application does through ``POST /api/v1/tenants/{tenant}/logins/exchange``, here in-process)
and shows who logged in. It answers only for tenants whose ``return_urls`` list that callback,
so a production tenant never exposes it.
"""

from __future__ import annotations

import secrets
from typing import cast
from urllib.parse import urlencode

from aiohttp import web

from sportello.appkeys import CLOCK, CONFIG
from sportello.config import TenantConfig
from sportello.connectors.spid.models import Kind
from sportello.platforms.login import pages
from sportello.platforms.login.keys import public_url
from sportello.platforms.login.routes import LOGIN, cookie_name
from sportello.platforms.login.settings import oidc_tenant_settings, saml_settings

STATE_COOKIE = "sportello_demo_state"


def _callback(request: web.Request, tenant_id: str) -> str:
    return f"{public_url(request.app[CONFIG])}/t/{tenant_id}/app/callback"


def _schemes(request: web.Request) -> tuple[TenantConfig, list[Kind]]:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    if tenant is None:
        raise web.HTTPNotFound()
    url = _callback(request, tenant.id)
    kinds: list[Kind] = []
    for kind in ("spid", "cie"):
        settings = saml_settings(tenant, kind)
        if settings is not None and url in settings.return_urls:
            kinds.append(kind)
    if not kinds and not _oidc_providers(tenant, url):
        raise web.HTTPNotFound()
    return tenant, kinds


def _oidc_providers(tenant: TenantConfig, url: str) -> list[tuple[Kind, str]]:
    """The OpenID providers the demo offers (CIE first): the first of each scheme, when the
    tenant's OIDC ``return_urls`` list the demo callback."""
    settings = oidc_tenant_settings(tenant)
    if settings is None or url not in (str(u) for u in settings.return_urls):
        return []
    return [
        (kind, str(settings.providers[kind][0]).rstrip("/"))
        for kind in cast(tuple[Kind, ...], ("cie", "spid"))
        if settings.providers.get(kind)
    ]


async def home(request: web.Request) -> web.StreamResponse:
    tenant, kinds = _schemes(request)
    state = secrets.token_urlsafe(16)
    links = []
    for kind in kinds:
        query = urlencode({"return_to": _callback(request, tenant.id), "state": state})
        links.append((f"Entra con {pages.SCHEME[kind]}", f"/t/{tenant.id}/{kind}/login?{query}"))
    for kind, provider in _oidc_providers(tenant, _callback(request, tenant.id)):
        query = urlencode(
            {"provider": provider, "return_to": _callback(request, tenant.id), "state": state}
        )
        label = f"Entra con {pages.SCHEME[kind]} (OpenID Connect)"
        links.append((label, f"/t/{tenant.id}/oidc/login?{query}"))
    resp = pages.demo_home(tenant.name, links)
    config = request.app[CONFIG]
    secure = public_url(config).startswith("https://")  # Secure (and __Host-) under https
    resp.set_cookie(
        cookie_name(config, STATE_COOKIE),
        state,
        httponly=True,
        secure=secure,
        samesite="Lax",
        path="/",
    )
    return resp


async def callback(request: web.Request) -> web.StreamResponse:
    tenant, _ = _schemes(request)
    state = request.cookies.get(cookie_name(request.app[CONFIG], STATE_COOKIE))
    if not state or request.query.get("state") != state:
        return pages.refused("spid", "stato della richiesta non valido (state)", status=400)
    code = request.query.get("code", "")
    identity = await request.app[LOGIN].hand_over(
        tenant.id,
        code,
        actor="demo-app",
        purpose="login handoff (demo application)",
        now=request.app[CLOCK].now(),
    )
    if identity is None:
        return pages.refused("spid", "codice di accesso scaduto o già usato", status=400)
    kind = identity["scheme"]
    # OpenID Connect: the hub ends the session and revokes the access token at the OP
    logout = (
        f"/t/{tenant.id}/oidc/logout"
        if identity.get("protocol") == "oidc"
        else f"/t/{tenant.id}/{kind}/logout"
    )
    return pages.identity_page(tenant.name, identity, logout)


def routes() -> list[web.RouteDef]:
    return [web.get("/t/{tenant}/app", home), web.get("/t/{tenant}/app/callback", callback)]
