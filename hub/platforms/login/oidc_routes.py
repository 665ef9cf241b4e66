"""SPID and CIE login over OpenID Connect Federation: one relying party per tenant.

``/t/{tenant}/oidc/...``:

- ``.well-known/openid-federation``: the RP's entity configuration, signed with the tenant's
  federation key (``application/entity-statement+jwt``);
- ``login?provider=<OP entity ID>[&return_to=&state=]``: the OP's trust chain is resolved
  and validated up to the tenant's trust anchor (cached until it expires), then a 302 to its
  authorization endpoint with a signed request object, PKCE S256, ``state`` and ``nonce``,
  ``acr_values`` for the tenant's level, the ``claims`` it asks for, ``prompt`` and
  ``ui_locales``. The pending request is stored under the hash of its ``state`` with the
  hash of an HMAC-bound browser cookie, so any replica can finish it and only the browser
  that started it can;
- ``callback``: the pending request is used once (a replayed ``state`` is refused), then
  the connector exchanges the code (``private_key_jwt``), checks the ID token and the
  userinfo (JWE then JWS). The identity is handed over exactly as a SAML login's: a login
  session, a one-time code on ``return_to``, ``POST /api/v1/tenants/{t}/logins/exchange``,
  the ``spid.login``/``cie.login`` webhook, with ``protocol: "oidc"``.

It lives in the login platform because the handoff (sessions, codes, the exchange API, its
audit) is the login platform's and platforms do not import each other.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web
from sqlalchemy import insert, select, update

from sportello.appkeys import CLOCK, CONFIG, ENGINE
from sportello.config import HubConfig, TenantConfig
from sportello.connectors.errors import TransportError
from sportello.connectors.oidc.errors import OidcError
from sportello.connectors.oidc.federation import (
    ChainCache,
    TrustChainResolver,
    rp_entity_configuration,
)
from sportello.connectors.oidc.keys import RpKeys
from sportello.connectors.oidc.rp import (
    OidcRelyingParty,
    PendingAuthorization,
    Provider,
    RelyingPartySettings,
    acr_for_level,
    build_authorization_request,
)
from sportello.connectors.spid.models import Kind
from sportello.db import reading
from sportello.platforms.login import pages
from sportello.platforms.login.keys import public_url
from sportello.platforms.login.oidc_keys import (
    OidcConfigError,
    federation_config,
    oidc_settings,
    read_keys,
    trust_anchor,
)
from sportello.platforms.login.oidc_marks import published_marks
from sportello.platforms.login.oidc_sessions import remember_tokens
from sportello.platforms.login.routes import cookie_name
from sportello.platforms.login.settings import OidcTenantSettings, oidc_tenant_settings
from sportello.platforms.login.store import PENDING_TTL, LoginStore, digest
from sportello.platforms.login.tables import oidc_requests

from .returns import own_return_urls

log = logging.getLogger("sportello.platforms.login.oidc")

BROWSER_COOKIE = "sportello_oidc"
SESSION_COOKIE = "sportello_session_oidc"
FISCAL_CLAIM = "https://attributes.eid.gov.it/fiscal_number"
_BROWSER_KEY_LABEL = b"sportello oidc browser cookie v1"
_TOKEN_CLAIMS = {"iss", "aud", "sub", "iat", "exp", "nbf", "jti", "azp"}


@dataclass
class OidcService:
    """Per tenant: keys (reloaded when keys.json changes), the chain resolver and cache."""

    config: HubConfig
    store: LoginStore
    session: aiohttp.ClientSession
    _keys: dict[str, tuple[float, RpKeys]] = field(default_factory=dict)
    _resolvers: dict[str, TrustChainResolver] = field(default_factory=dict)

    def keys(self, tenant: TenantConfig) -> RpKeys:
        path = oidc_settings(tenant).keys_dir / "keys.json"
        try:
            stamp = path.stat().st_mtime
        except OSError:
            stamp = 0.0
        cached = self._keys.get(tenant.id)
        if cached is None or cached[0] != stamp:
            cached = (stamp, read_keys(oidc_settings(tenant).keys_dir))
            self._keys[tenant.id] = cached
        return cached[1]

    def resolver(self, tenant: TenantConfig) -> TrustChainResolver:
        found = self._resolvers.get(tenant.id)
        if found is None:
            settings = oidc_settings(tenant)
            found = TrustChainResolver(
                self.session,
                [trust_anchor(settings)],
                cache=ChainCache(),
                allow_http=settings.allow_http,
                # dynamic validation too: a trust mark its issuer revoked is refused
                check_trust_mark_status=True,
            )
            self._resolvers[tenant.id] = found
        return found

    def forget_chains(self, tenant_id: str) -> None:
        """Resolve the tenant's chains afresh (its trust anchor's keys were replaced)."""
        self._resolvers.pop(tenant_id, None)

    async def provider(self, tenant: TenantConfig, entity_id: str) -> Provider:
        settings = oidc_settings(tenant)
        chain = await self.resolver(tenant).resolve(
            entity_id, "openid_provider", required_trust_marks=settings.provider_trust_marks
        )
        return Provider.from_chain(chain)

    def client(self, tenant: TenantConfig) -> OidcRelyingParty:
        keys = self.keys(tenant)
        rp = federation_config(self.config, tenant)
        settings = RelyingPartySettings(
            rp.entity_id, rp.redirect_uris[0], keys.signing.active, keys.decryption_keys()
        )
        return OidcRelyingParty(self.session, settings)


OIDC = web.AppKey("oidc", OidcService)


# -- the pending request, bound to the browser ---------------------------------------------


def _browser_mac(keys: RpKeys, tenant_id: str, token: str) -> str:
    secret = json.dumps(dict(keys.signing.active.as_dict(private=True)), sort_keys=True)
    key = hmac.new(hashlib.sha256(secret.encode()).digest(), _BROWSER_KEY_LABEL, "sha256")
    mac = hmac.new(key.digest(), f"{tenant_id}|{token}".encode(), "sha256").digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def new_browser_value(keys: RpKeys, tenant_id: str) -> str:
    token = secrets.token_urlsafe(32)
    return f"{token}.{_browser_mac(keys, tenant_id, token)}"


def browser_value_issued(value: str | None, keys: RpKeys, tenant_id: str) -> bool:
    """Whether ``value`` is a browser cookie this hub issued for this tenant's RP."""
    if not value or len(value) > 200:
        return False
    token, sep, mac = value.partition(".")
    if not sep or len(token) < 32:
        return False
    return hmac.compare_digest(mac, _browser_mac(keys, tenant_id, token))


async def _add_pending(
    store: LoginStore,
    *,
    tenant_id: str,
    kind: Kind,
    browser: str,
    pending: PendingAuthorization,
    return_to: str | None,
    client_state: str | None,
    now: datetime,
) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(oidc_requests).values(
                state_hash=digest(pending.state),
                tenant_id=tenant_id,
                kind=kind,
                browser_hash=digest(browser),
                provider=pending.provider,
                pending=json.dumps(pending.to_dict()),
                return_to=return_to,
                client_state=client_state,
                expires_at=now + PENDING_TTL,
            )
        )


async def _take_pending(
    store: LoginStore, *, state: str, tenant_id: str, browser: str | None, now: datetime
) -> tuple[Kind, PendingAuthorization, dict[str, Any]] | str:
    """The open request of this ``state`` started by this browser, marked used; or why not."""
    async with reading(store.engine) as conn:
        row = (
            (
                await conn.execute(
                    select(oidc_requests).where(oidc_requests.c.state_hash == digest(state))
                )
            )
            .mappings()
            .first()
        )
    if row is None or row["tenant_id"] != tenant_id:
        return "nessun accesso in corso con questo state (sconosciuto o di un altro servizio)"
    if browser is None or not hmac.compare_digest(row["browser_hash"], digest(browser)):
        return "l'accesso è stato avviato da un altro browser"
    if row["consumed_at"] is not None:
        return "risposta già usata (replay)"
    if row["expires_at"] <= now:
        return "accesso scaduto: riprova"
    async with store.engine.begin() as conn:
        done = await conn.execute(
            update(oidc_requests)
            .where(
                oidc_requests.c.state_hash == row["state_hash"],
                oidc_requests.c.consumed_at.is_(None),
            )
            .values(consumed_at=now)
        )
    if done.rowcount != 1:
        return "risposta già usata (replay)"
    pending = PendingAuthorization.from_dict(json.loads(row["pending"]))
    extra = {"return_to": row["return_to"], "client_state": row["client_state"]}
    return cast(Kind, row["kind"]), pending, extra


# -- views ------------------------------------------------------------------------------------


def _tenant(request: web.Request) -> tuple[TenantConfig, OidcTenantSettings]:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    settings = oidc_tenant_settings(tenant) if tenant is not None else None
    if tenant is None or settings is None:
        raise web.HTTPNotFound(text="unknown tenant or OpenID Connect login not enabled")
    return tenant, settings


def _secure(config: HubConfig) -> bool:
    return public_url(config).startswith("https://")


def _set_cookie(resp: web.StreamResponse, config: HubConfig, name: str, value: str) -> None:
    secure = _secure(config)
    resp.set_cookie(
        cookie_name(config, name),
        value,
        httponly=True,
        secure=secure,
        path="/",
        samesite="None" if secure else "Lax",
        max_age=1800,
    )


def _refuse(
    settings: OidcTenantSettings,
    kind: str,
    reason: str,
    *,
    status: int = 403,
    return_to: str | None = None,
) -> web.Response:
    back = settings.organization_url or return_to
    return pages.refused(kind, reason, status=status, back=back)


def _scheme_of(settings: OidcTenantSettings, provider: str) -> Kind | None:
    for scheme, listed in settings.providers.items():
        if any(p.rstrip("/") == provider.rstrip("/") for p in listed):
            return scheme
    return None


async def entity_configuration_view(request: web.Request) -> web.Response:
    tenant, _settings = _tenant(request)
    config = request.app[CONFIG]
    service = request.app[OIDC]
    now = request.app[CLOCK].now()
    try:
        rp = federation_config(config, tenant)
        # the trust marks held now (refreshed ones first), never an expired one
        rp.trust_marks = await published_marks(service.store, tenant, now)
        body = rp_entity_configuration(rp, service.keys(tenant), now)
    except OidcConfigError as exc:
        log.error("entity configuration of tenant %s cannot be built: %s", tenant.id, exc)
        raise web.HTTPServiceUnavailable(text="OpenID Connect login not configured") from None
    return web.Response(
        text=body,
        content_type="application/entity-statement+jwt",
        headers={"Cache-Control": "no-cache"},
    )


async def login_view(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    service = request.app[OIDC]
    query = request.query
    return_to = query.get("return_to") or None
    state = query.get("state") or None
    provider_id = query.get("provider") or ""
    kind = _scheme_of(settings, provider_id) if provider_id else None
    shown = kind or "spid"
    if (
        return_to is not None
        and return_to not in settings.return_urls
        and return_to not in own_return_urls(request.app, tenant)
    ):
        return _refuse(
            settings, shown, "indirizzo di ritorno non autorizzato (return_to)", status=400
        )
    if state is not None and len(state) > 200:
        return _refuse(settings, shown, "parametro state troppo lungo (max 200)", status=400)
    if kind is None:
        return _refuse(
            settings,
            shown,
            "gestore di identità sconosciuto (provider)",
            status=400,
            return_to=return_to,
        )
    try:
        keys = service.keys(tenant)
        op = await service.provider(tenant, provider_id)
    except OidcConfigError as exc:
        log.error("tenant %s cannot start an OIDC login: %s", tenant.id, exc)
        raise web.HTTPServiceUnavailable(text="OpenID Connect login not configured") from None
    except (OidcError, TransportError) as exc:
        log.warning(
            "OIDC provider refused",
            extra={"tenant": tenant.id, "scheme": kind, "check": getattr(exc, "check", "http")},
        )
        return _refuse(
            settings,
            kind,
            "il gestore di identità non è affidabile o non risponde",
            status=502,
            return_to=return_to,
        )
    now = request.app[CLOCK].now()
    out = build_authorization_request(
        service.client(tenant).settings,
        op,
        acr_values=[acr_for_level(settings.level)],
        claims={
            "userinfo": {
                c: ({"essential": True} if c == FISCAL_CLAIM else None) for c in settings.claims
            }
        },
        ui_locales=settings.ui_locales,
        now=now.timestamp(),
    )
    held = request.cookies.get(cookie_name(service.config, BROWSER_COOKIE))
    browser = (
        held
        if held and browser_value_issued(held, keys, tenant.id)
        else new_browser_value(keys, tenant.id)
    )
    await _add_pending(
        service.store,
        tenant_id=tenant.id,
        kind=kind,
        browser=browser,
        pending=out.pending,
        return_to=return_to,
        client_state=state,
        now=now,
    )
    resp = web.Response(status=302, headers={"Location": out.url, "Cache-Control": "no-store"})
    _set_cookie(resp, service.config, BROWSER_COOKIE, browser)
    return resp


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


def identity_view(
    kind: Kind,
    session_id: str,
    provider: str,
    level: int,
    userinfo: dict[str, Any],
    auth_time: Any,
) -> dict[str, Any]:
    """The handoff payload: the SAML identity's shape, with ``protocol: "oidc"``."""
    attributes = {
        k: v if isinstance(v, str) else json.dumps(v)
        for k, v in userinfo.items()
        if k not in _TOKEN_CLAIMS
    }
    fiscal = attributes.get(FISCAL_CLAIM, "")
    instant = (
        datetime.fromtimestamp(auth_time, UTC).isoformat()
        if isinstance(auth_time, int | float)
        else None
    )
    return {
        "scheme": kind,
        "protocol": "oidc",
        "session_id": session_id,
        "idp": provider,
        "level": level,
        "fiscal_code": fiscal.removeprefix("TINIT-") if fiscal else None,
        "attributes": attributes,
        "authn_instant": instant,
    }


async def callback_view(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    service = request.app[OIDC]
    params = {k: v for k, v in request.query.items() if len(v) <= 4096}
    state = params.get("state", "")
    if not state or len(state) > 200:
        return _refuse(settings, "spid", "risposta senza state valido", status=400)
    try:
        keys = service.keys(tenant)
    except OidcConfigError as exc:
        log.error("tenant %s cannot finish an OIDC login: %s", tenant.id, exc)
        raise web.HTTPServiceUnavailable(text="OpenID Connect login not configured") from None
    browser = request.cookies.get(cookie_name(service.config, BROWSER_COOKIE))
    if browser is not None and not browser_value_issued(browser, keys, tenant.id):
        return _refuse(settings, "spid", "cookie di accesso non emesso da questo servizio")
    now = request.app[CLOCK].now()
    found = await _take_pending(
        service.store, state=state, tenant_id=tenant.id, browser=browser, now=now
    )
    if isinstance(found, str):
        log.warning("OIDC login refused", extra={"tenant": tenant.id, "check": "state"})
        return _refuse(settings, "spid", found)
    kind, pending, extra = found
    return_to = extra.get("return_to")
    try:
        op = await service.provider(tenant, pending.provider)
        result = await service.client(tenant).complete(op, params, pending)
    except (OidcError, TransportError) as exc:
        check = getattr(exc, "check", "http")
        log.warning(
            "OIDC login refused", extra={"tenant": tenant.id, "scheme": kind, "check": check}
        )
        reason = getattr(exc, "reason", None) or "il gestore di identità non risponde"
        return _refuse(settings, kind, f"{check}: {reason}", return_to=return_to)
    session_id = secrets.token_urlsafe(32)
    view = identity_view(
        kind,
        session_id,
        op.entity_id,
        result.id_token.level,
        result.userinfo,
        result.id_token.claims.get("auth_time") or result.id_token.claims.get("iat"),
    )
    code = await service.store.open_session(
        session_id=session_id,
        tenant_id=tenant.id,
        kind=kind,
        idp_entity_id=op.entity_id,
        name_id=result.id_token.sub,
        name_qualifier=op.issuer,
        session_index=None,
        level=result.id_token.level,
        view=view,
        now=now,
        config=service.config,
    )
    await remember_tokens(  # what logout revokes, sealed for the RP's own key
        service.store,
        keys=keys,
        session_id=session_id,
        tenant_id=tenant.id,
        provider=op.entity_id,
        access_token=result.tokens.access_token,
        expires_in=result.tokens.expires_in,
        now=now,
    )
    log.info(
        "login accepted",
        extra={
            "tenant": tenant.id,
            "scheme": kind,
            "protocol": "oidc",
            "auth_level": result.id_token.level,
            "idp": op.entity_id,
        },
    )
    if return_to:
        out = {"code": code}
        if extra.get("client_state"):
            out["state"] = str(extra["client_state"])
        target = _with_query(str(return_to), out)
    else:
        target = f"/t/{tenant.id}/oidc/done?scheme={kind}&level={result.id_token.level}"
    resp = web.Response(status=303, headers={"Location": target})
    _set_cookie(resp, service.config, SESSION_COOKIE, session_id)
    return resp


async def done_view(request: web.Request) -> web.Response:
    _tenant(request)
    scheme = request.query.get("scheme", "")
    try:
        level = int(request.query.get("level", "0"))
    except ValueError:
        level = 0
    return pages.done(scheme if scheme in ("spid", "cie") else "spid", level)


def routes() -> list[web.RouteDef]:
    base = "/t/{tenant}/oidc"
    return [
        web.get(f"{base}/.well-known/openid-federation", entity_configuration_view),
        web.get(f"{base}/login", login_view),
        web.get(f"{base}/callback", callback_view),
        web.get(f"{base}/done", done_view),
    ]


@contextlib.asynccontextmanager
async def oidc_ctx(app: web.Application, session: aiohttp.ClientSession) -> AsyncIterator[None]:
    """The OIDC relying parties on ``app`` (part of the login platform's setup)."""
    config = app[CONFIG]
    app[OIDC] = OidcService(config, LoginStore(app[ENGINE]), session)
    yield
