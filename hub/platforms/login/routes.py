"""SPID and CIE login routes: metadata, login, ACS, handoff, logout, for every tenant.

``/t/{tenant}/{spid|cie}/...``:

- ``metadata``: the signed SP metadata (cached until the keys change);
- ``login?idp=<entityID>[&level=&return_to=&state=]``: a signed AuthnRequest (302 for the
  Redirect binding, an auto-submitting form for POST); without ``idp``, the IdP chooser. The
  request is stored with the hash of a browser cookie, so any replica can finish the login
  and a response can only complete the login in the browser that started it;
- ``acs``: every SPID check (``sportello.connectors.spid.response``), then the replay
  guards (request used once, assertion ID cached until it expires); accepted logins end in a
  303 to the tenant application's ``return_to`` with a one-time ``code`` (or to ``done``);
  refusals answer 4xx, anomalies 19-25 show the prescribed message with 403;
- ``logout`` (SP-initiated) and ``slo`` (LogoutResponse from the IdP, or an IdP-initiated
  LogoutRequest answered with a signed LogoutResponse); CIE has no SAML SLO (its IdP never
  answers), so ``/cie/logout`` ends the local session only. ``logout?return_to=`` (a URL
  accepted as a login's ``return_to``) sends the browser there at the end, not to the
  "logged out" page.

The handoff: the tenant's application exchanges the code server-side at
``POST /api/v1/tenants/{tenant}/logins/exchange`` with its API key (scope ``personal``); see
docs/platforms.md for why a code and not a JWT in the browser.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import secrets
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

from aiohttp import web

from sportello import audit
from sportello.api.bodies import BodyTooLarge, read_body
from sportello.appkeys import CLOCK, CONFIG, ENGINE, PLUGINS
from sportello.config import HubConfig, TenantConfig
from sportello.connectors.spid import authn, logout, metadata, response
from sportello.connectors.spid.errors import ResponseRejected, SamlError, SpidAnomaly
from sportello.connectors.spid.models import Kind, PendingRequest, SpSettings
from sportello.platforms.login import pages
from sportello.platforms.login.idps import IdpDirectory
from sportello.platforms.login.keys import LoginConfigError, build_sp, login_settings, public_url
from sportello.platforms.login.settings import saml_settings
from sportello.platforms.login.store import LoginStore
from sportello.web import read_form

from .returns import own_return_urls

log = logging.getLogger("sportello.platforms.login.routes")

BROWSER_COOKIE = "sportello_login"
SESSION_COOKIE = "sportello_session_{kind}"
LOGOUT_COOKIE = "sportello_slo_{kind}"
MAX_FORM = 256 * 1024


@dataclass
class LoginService:
    """What the login routes share: settings per tenant, IdPs, storage."""

    config: HubConfig
    store: LoginStore
    idps: IdpDirectory
    _sps: dict[tuple[str, str], tuple[float, SpSettings]] = field(default_factory=dict)
    _metadata: dict[tuple[str, str], tuple[float, bytes]] = field(default_factory=dict)

    def sp(self, tenant: TenantConfig, kind: Kind) -> SpSettings:
        """The tenant's SP, rebuilt when its keys directory changes (rotation)."""
        keys_dir = login_settings(tenant, kind).keys_dir
        stamp = max((p.stat().st_mtime for p in keys_dir.glob("*")), default=0.0)
        cached = self._sps.get((tenant.id, kind))
        if cached is None or cached[0] != stamp:
            cached = (stamp, build_sp(self.config, tenant, kind))
            self._sps[(tenant.id, kind)] = cached
            self._metadata.pop((tenant.id, kind), None)
        return cached[1]

    def metadata(self, tenant: TenantConfig, kind: Kind) -> bytes:
        sp = self.sp(tenant, kind)
        stamp = self._sps[(tenant.id, kind)][0]
        cached = self._metadata.get((tenant.id, kind))
        if cached is None or cached[0] != stamp:
            cached = (stamp, metadata.build_metadata(sp))
            self._metadata[(tenant.id, kind)] = cached
        return cached[1]

    async def hand_over(
        self, tenant_id: str, code: str, *, actor: str, purpose: str, now: datetime
    ) -> dict[str, Any] | None:
        """The identity behind a login code, once, with the read in the audit log."""
        identity = await self.store.exchange(tenant_id=tenant_id, code=code, now=now)
        if identity is None:
            return None
        async with self.store.engine.begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=actor,
                    action=f"{identity['scheme']}.login.exchange",
                    subject=str(identity.get("fiscal_code") or "-"),
                    purpose=purpose,
                    sources=str(identity["idp"]),
                    outcome="ok",
                ),
                at=now,
            )
        return identity


LOGIN = web.AppKey("login", LoginService)


def _kind(request: web.Request) -> Kind:
    kind = request.match_info["kind"]
    if kind not in ("spid", "cie"):
        raise web.HTTPNotFound()
    return cast(Kind, kind)


def _tenant(request: web.Request, kind: Kind) -> TenantConfig:
    tenant = request.app[CONFIG].tenant(request.match_info["tenant"])
    if tenant is None or saml_settings(tenant, kind) is None:
        raise web.HTTPNotFound(text="unknown tenant or login scheme not enabled")
    return tenant


def _secure(config: HubConfig) -> bool:
    return public_url(config).startswith("https://")


def cookie_name(config: HubConfig, name: str) -> str:
    """``__Host-<name>`` under https: Secure, Path=/, no Domain, so no sibling (sub)domain
    and no plain-http page can plant or overwrite it; the bare name over plain http."""
    return f"__Host-{name}" if _secure(config) else name


def _set_cookie(
    resp: web.StreamResponse, config: HubConfig, name: str, value: str, max_age: int | None = None
) -> None:
    # The ACS is reached by a cross-site POST from the IdP: with https the cookie must be
    # SameSite=None; Secure to come along. Over plain http (demo, tests) Lax is enough
    # because hub and sandbox IdP share the host (same site).
    secure = _secure(config)
    resp.set_cookie(
        cookie_name(config, name),
        value,
        httponly=True,
        secure=secure,
        path="/",
        samesite="None" if secure else "Lax",
        max_age=max_age,
    )


def _del_cookie(resp: web.StreamResponse, config: HubConfig, name: str) -> None:
    secure = _secure(config)
    resp.del_cookie(
        cookie_name(config, name),
        path="/",
        secure=secure,
        httponly=True,
        samesite="None" if secure else "Lax",
    )


def _get_cookie(request: web.Request, config: HubConfig, name: str) -> str | None:
    return request.cookies.get(cookie_name(config, name)) or None


# The browser cookie binds a pending login to the browser that started it. Only values the
# hub issued count: ``<random>.<HMAC>`` under a key derived from the tenant's SAML signing
# key (which every replica holds), over tenant, scheme and the random part. A value the
# client made up, or one issued for another tenant or scheme, is ignored at login (a new
# one is issued) and refused at the ACS.
_BROWSER_KEY_LABEL = b"sportello login browser cookie v1"


def _browser_mac(sp: SpSettings, tenant_id: str, kind: Kind, token: str) -> str:
    key = hmac.new(hashlib.sha256(sp.key_pem).digest(), _BROWSER_KEY_LABEL, "sha256").digest()
    mac = hmac.new(key, f"{tenant_id}|{kind}|{token}".encode(), "sha256").digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def new_browser_value(sp: SpSettings, tenant_id: str, kind: Kind) -> str:
    token = secrets.token_urlsafe(32)
    return f"{token}.{_browser_mac(sp, tenant_id, kind, token)}"


def browser_value_issued(value: str | None, sp: SpSettings, tenant_id: str, kind: Kind) -> bool:
    """Whether ``value`` is a browser cookie this hub issued for this tenant and scheme."""
    if not value or len(value) > 200:
        return False
    token, sep, mac = value.partition(".")
    if not sep or len(token) < 32:
        return False
    return hmac.compare_digest(mac, _browser_mac(sp, tenant_id, kind, token))


async def metadata_view(request: web.Request) -> web.Response:
    if "activity" in request.match_info:  # /<activity>/<tenant>: an aggregated entityID
        kind: Kind = "spid"
        tenant = _tenant(request, kind)
        agg = login_settings(tenant, kind).aggregator
        if agg is None or agg.activity != request.match_info["activity"]:
            raise web.HTTPNotFound()
    else:
        kind = _kind(request)
        tenant = _tenant(request, kind)
    try:
        body = request.app[LOGIN].metadata(tenant, kind)
    except (LoginConfigError, SamlError) as exc:
        log.error("metadata for tenant %s (%s) cannot be built: %s", tenant.id, kind, exc)
        raise web.HTTPServiceUnavailable(text=f"SP metadata not available: {exc}") from None
    return web.Response(body=body, content_type="application/samlmetadata+xml")


def _return_to_allowed(request: web.Request, tenant: TenantConfig, kind: Kind, url: str) -> bool:
    return url in login_settings(tenant, kind).return_urls or url in own_return_urls(
        request.app, tenant
    )


async def login_view(request: web.Request) -> web.StreamResponse:
    kind = _kind(request)
    tenant = _tenant(request, kind)
    service = request.app[LOGIN]
    settings = login_settings(tenant, kind)
    query = request.query
    return_to = query.get("return_to") or None
    state = query.get("state") or None
    if return_to is not None and not _return_to_allowed(request, tenant, kind, return_to):
        return pages.refused(kind, "indirizzo di ritorno non autorizzato (return_to)", status=400)
    if state is not None and len(state) > 200:
        return pages.refused(kind, "parametro state troppo lungo (max 200)", status=400)
    idp_id = query.get("idp")
    if not idp_id:
        await service.idps.ensure(tenant, kind)
        keep = {k: v for k, v in query.items() if k in ("level", "return_to", "state")}
        listing = [(i.name or i.entity_id, i.entity_id) for i in service.idps.all(tenant, kind)]
        return pages.chooser(tenant.name, kind, request.path, listing, keep)
    idp = await service.idps.get(tenant, kind, idp_id)
    if idp is None:
        return pages.refused(kind, "gestore di identità sconosciuto", status=400)
    minimum = settings.minimum_level(return_to)
    try:
        level = int(query.get("level", minimum))
    except ValueError:
        level = 0
    if level not in (1, 2, 3):
        return pages.refused(kind, "livello SPID non valido (1, 2 o 3)", status=400)
    if level < minimum:
        # the tenant's level (and its return URL's) is a minimum the browser cannot lower
        return pages.refused(
            kind,
            f"livello {level} inferiore al minimo richiesto dal servizio ({minimum})",
            status=400,
        )
    try:
        sp = service.sp(tenant, kind)
    except LoginConfigError as exc:
        log.error("tenant %s cannot start a %s login: %s", tenant.id, kind, exc)
        raise web.HTTPServiceUnavailable(text="login not configured") from None
    now = request.app[CLOCK].now()
    comparison = settings.comparison
    out = authn.build_authn_request(
        sp,
        idp,
        level=level,
        comparison=comparison,
        binding=settings.binding,
        now=now,
        relay_state=secrets.token_urlsafe(16),
    )
    held = _get_cookie(request, service.config, BROWSER_COOKIE)
    browser = (
        held
        if held and browser_value_issued(held, sp, tenant.id, kind)
        else new_browser_value(sp, tenant.id, kind)
    )
    await service.store.add_pending(
        tenant_id=tenant.id,
        kind=kind,
        browser=browser,
        pending=PendingRequest(out.request_id, out.issue_instant, idp.entity_id, level, comparison),
        return_to=return_to,
        client_state=state,
        now=now,
    )
    resp: web.StreamResponse
    if out.binding == "redirect":
        # a plain 302: HTTPFound would re-encode the signed query string
        resp = web.Response(status=302, headers={"Location": out.url})
    else:
        resp = _form_page(out.form_html)
    resp.headers["Cache-Control"] = "no-store"
    _set_cookie(resp, service.config, BROWSER_COOKIE, browser)
    return resp


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = (parts.query + "&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


async def acs_view(request: web.Request) -> web.StreamResponse:
    kind = _kind(request)
    tenant = _tenant(request, kind)
    service = request.app[LOGIN]
    try:
        await read_body(request, MAX_FORM)  # whole, bounded; post() parses what it read
    except BodyTooLarge:
        return pages.refused(kind, "risposta troppo grande", status=413)
    form = await read_form(request)
    if form is None:
        return pages.refused(kind, "modulo illeggibile (codifica o formato)", status=400)
    saml = form.get("SAMLResponse")
    if not isinstance(saml, str) or not saml:
        return pages.refused(kind, "nessuna risposta SAML ricevuta", status=400)
    now = request.app[CLOCK].now()
    try:
        in_response_to, _issuer = response.peek_response(saml)
    except ResponseRejected as exc:
        return _refuse_at(request, tenant, kind, exc)
    if not in_response_to:
        return _refuse_at(request, tenant, kind, ResponseRejected("unsolicited", "no InResponseTo"))
    try:
        sp = service.sp(tenant, kind)
    except LoginConfigError as exc:
        log.error("tenant %s cannot finish a %s login: %s", tenant.id, kind, exc)
        raise web.HTTPServiceUnavailable(text="login not configured") from None
    browser = _get_cookie(request, service.config, BROWSER_COOKIE)
    if browser is not None and not browser_value_issued(browser, sp, tenant.id, kind):
        return _refuse(
            tenant, kind, ResponseRejected("browser", "login cookie not issued by this service")
        )
    found = await service.store.pending(
        request_id=in_response_to,
        tenant_id=tenant.id,
        kind=kind,
        browser=browser,
        now=now,
    )
    if isinstance(found, str):
        return _refuse_at(request, tenant, kind, ResponseRejected("in_response_to", found))
    pending, extra = found
    idp = await service.idps.get(tenant, kind, pending.idp_entity_id)
    if idp is None:
        return _refuse_at(
            request, tenant, kind, ResponseRejected("issuer", "the IdP is no longer trusted")
        )
    try:
        identity = response.validate_response(saml, sp=sp, idp=idp, pending=pending, now=now)
        minimum = login_settings(tenant, kind).minimum_level(extra.get("return_to"))
        if identity.level < minimum:  # e.g. comparison="maximum": never below the minimum
            raise ResponseRejected(
                "level", f"authenticated at level {identity.level}, the service needs {minimum}"
            )
    except ResponseRejected as exc:
        await service.store.consume(pending.request_id, now)
        return _refuse_at(request, tenant, kind, exc)
    if not await service.store.consume(pending.request_id, now):
        return _refuse_at(
            request, tenant, kind, ResponseRejected("replay", "request already answered")
        )
    if not await service.store.remember_assertion(
        idp.entity_id, identity.assertion_id, identity.not_on_or_after
    ):
        return _refuse_at(
            request, tenant, kind, ResponseRejected("replay", "assertion already used")
        )
    session_id, code = await service.store.start_session(
        tenant_id=tenant.id, kind=kind, identity=identity, now=now, config=service.config
    )
    log.info(
        "login accepted",
        extra={
            "tenant": tenant.id,
            "scheme": kind,
            "auth_level": identity.level,
            "idp": idp.entity_id,
        },
    )
    return_to = extra.get("return_to")
    if return_to:
        params = {"code": code}
        if extra.get("client_state"):
            params["state"] = str(extra["client_state"])
        target = _with_query(str(return_to), params)
    else:
        target = f"/t/{tenant.id}/{kind}/done?level={identity.level}"
    resp = web.Response(status=303, headers={"Location": target})
    _set_cookie(resp, service.config, SESSION_COOKIE.format(kind=kind), session_id)
    return resp


def _refuse(
    tenant: TenantConfig, kind: Kind, exc: ResponseRejected, back: str | None = None
) -> web.Response:
    log.warning(
        "login refused",
        extra={"tenant": tenant.id, "scheme": kind, "check": exc.check, "reason": exc.reason},
    )
    if isinstance(exc, SpidAnomaly):
        return pages.anomaly(kind, exc.code, exc.message, back=back)
    return pages.refused(kind, exc.reason, status=exc.status, back=back)


def _refuse_at(
    request: web.Request, tenant: TenantConfig, kind: Kind, exc: ResponseRejected
) -> web.Response:
    """A refused login at the ACS, with a way back to the comune's citizen pages when the
    tenant has some (``hub_web_site``: the front office's ``home_url``)."""
    found = request.app[PLUGINS].pm.hook.hub_web_site(tenant=tenant)
    back = str(found["home_url"]) if found and found.get("home_url") else None
    return _refuse(tenant, kind, exc, back)


async def done_view(request: web.Request) -> web.Response:
    kind = _kind(request)
    _tenant(request, kind)
    try:
        level = int(request.query.get("level", "0"))
    except ValueError:
        level = 0
    return pages.done(kind, level)


async def logout_view(request: web.Request) -> web.StreamResponse:
    """SP-initiated logout: a signed LogoutRequest to the IdP (SPID); local only for CIE."""
    kind = _kind(request)
    tenant = _tenant(request, kind)
    service = request.app[LOGIN]
    now = request.app[CLOCK].now()
    session_id = _get_cookie(request, service.config, SESSION_COOKIE.format(kind=kind))
    # where the browser goes once logged out (a hub page's own return path, or one of the
    # tenant's return_urls), instead of the plain "logged out" page
    back = request.query.get("return_to") or None
    if back is not None and not _return_to_allowed(request, tenant, kind, back):
        back = None
    row = await service.store.session(session_id, tenant.id) if session_id else None
    if row is None or row["ended_at"] is not None:
        return _logged_out(kind, back)
    await service.store.end_session(row["session_id"], now)
    idp = await service.idps.get(tenant, kind, row["idp_entity_id"])
    if kind == "cie" or idp is None or not (idp.slo_redirect or idp.slo_post):
        resp: web.StreamResponse = _logged_out(kind, back)
        _del_cookie(resp, service.config, SESSION_COOKIE.format(kind=kind))
        return resp
    out = logout.build_logout_request(
        service.sp(tenant, kind),
        idp,
        name_id=row["name_id"],
        name_qualifier=row["name_qualifier"],
        session_index=row["session_index"],
        binding="redirect" if idp.slo_redirect else "post",
        now=now,
        relay_state=secrets.token_urlsafe(16),
    )
    if out.binding == "redirect":
        resp = web.Response(status=302, headers={"Location": out.url})  # keep the signed query
    else:
        resp = _form_page(out.form_html)
    state = f"{out.request_id}|{int(out.issue_instant.timestamp())}|{row['session_id']}"
    if back is not None:
        state += "|" + base64.urlsafe_b64encode(back.encode()).decode().rstrip("=")
    _set_cookie(resp, service.config, LOGOUT_COOKIE.format(kind=kind), state, 900)
    _del_cookie(resp, service.config, SESSION_COOKIE.format(kind=kind))
    return resp


def _logged_out(kind: Kind, back: str | None) -> web.Response:
    """The end of a logout: the page that says so, or a 303 to the ``return_to`` given."""
    if back is None:
        return pages.logged_out(kind)
    return web.Response(status=303, headers={"Location": back, "Cache-Control": "no-store"})


def _back_from(request: web.Request, tenant: TenantConfig, kind: Kind, raw: str) -> str | None:
    """The ``return_to`` kept in the logout cookie (checked again: never an open redirect)."""
    if not raw:
        return None
    try:
        back = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return back if _return_to_allowed(request, tenant, kind, back) else None


def _peek_issuer(params: dict[str, str], key: str, binding: str) -> str | None:
    """The Issuer of an incoming logout message, to pick the key that must have signed it."""
    raw = base64.b64decode(params[key], validate=False)
    if binding == "redirect":
        raw = zlib.decompress(raw, -15)
    root = response.parse_xml(raw)
    issuer = root.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer")
    return (issuer.text or "").strip() if issuer is not None else None


async def slo_view(request: web.Request) -> web.StreamResponse:
    """The IdP's side of logout: its LogoutResponse to us, or its own LogoutRequest."""
    kind = _kind(request)
    tenant = _tenant(request, kind)
    service = request.app[LOGIN]
    now = request.app[CLOCK].now()
    binding = _binding(request)
    params: dict[str, str] = dict(request.query)
    if binding == "post":
        try:
            await read_body(request, MAX_FORM)
        except BodyTooLarge:
            return pages.refused(kind, "messaggio troppo grande", status=413)
        form = await read_form(request)
        if form is None:
            return pages.refused(kind, "modulo illeggibile (codifica o formato)", status=400)
        params = {k: v for k, v in form.items() if isinstance(v, str)}
    key = "SAMLResponse" if "SAMLResponse" in params else "SAMLRequest"
    if key not in params:
        return pages.refused(kind, "nessun messaggio di logout", status=400)
    sp = service.sp(tenant, kind)
    try:
        try:
            issuer = _peek_issuer(params, key, binding)
        except (ValueError, zlib.error) as exc:
            raise ResponseRejected("malformed", f"unreadable logout message: {exc}") from None
        idp = await service.idps.get(tenant, kind, issuer or "")
        if idp is None:
            raise ResponseRejected(
                "issuer", "logout message from an IdP this tenant does not trust"
            )
        if key == "SAMLResponse":
            state = _get_cookie(request, service.config, LOGOUT_COOKIE.format(kind=kind)) or ""
            request_id, _, rest = state.partition("|")
            stamp, _, rest = rest.partition("|")
            _session, _, back64 = rest.partition("|")
            if not request_id or not stamp.isdigit():
                raise ResponseRejected("in_response_to", "no logout was started in this browser")
            instant = datetime.fromtimestamp(int(stamp), UTC)
            if binding == "redirect":
                logout.parse_logout_response_redirect(
                    request.raw_path.partition("?")[2],
                    sp=sp,
                    idp=idp,
                    request_id=request_id,
                    request_instant=instant,
                    now=now,
                )
            else:
                logout.parse_logout_response_post(
                    params[key],
                    sp=sp,
                    idp=idp,
                    request_id=request_id,
                    request_instant=instant,
                    now=now,
                    relay_state=params.get("RelayState"),
                )
            resp: web.StreamResponse = _logged_out(kind, _back_from(request, tenant, kind, back64))
            _del_cookie(resp, service.config, LOGOUT_COOKIE.format(kind=kind))
            return resp
        if binding == "redirect":
            incoming = logout.parse_logout_request_redirect(
                request.raw_path.partition("?")[2], sp=sp, idp=idp, now=now
            )
        else:
            incoming = logout.parse_logout_request_post(
                params[key], sp=sp, idp=idp, now=now, relay_state=params.get("RelayState")
            )
        ended = 0
        for index in incoming.session_indexes or (None,):
            ended += await service.store.end_sessions(
                tenant_id=tenant.id,
                kind=kind,
                idp_entity_id=idp.entity_id,
                name_id=incoming.name_id,
                session_index=index,
                now=now,
            )
        log.info(
            "IdP-initiated logout", extra={"tenant": tenant.id, "scheme": kind, "sessions": ended}
        )
        answer = logout.build_logout_response(
            sp,
            idp,
            in_response_to=incoming.request_id,
            now=now,
            binding="redirect" if (idp.slo_redirect_response or idp.slo_redirect) else "post",
            relay_state=incoming.relay_state,
        )
        if answer.binding == "redirect":
            return web.Response(status=302, headers={"Location": answer.url})
        return _form_page(answer.form_html)
    except ResponseRejected as exc:
        return _refuse(tenant, kind, exc)


def _form_page(form_html: str | None) -> web.Response:
    """The POST binding's self-submitting form, with a CSP that allows only its own script."""
    return web.Response(
        text=form_html or "",
        content_type="text/html",
        headers={"Content-Security-Policy": authn.AUTOSUBMIT_CSP, "Cache-Control": "no-store"},
    )


#: every other HTML page of the hub: no script at all, styles inline, nothing framed
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


async def _html_policy(request: web.Request, response: web.StreamResponse) -> None:
    """Every HTML answer gets a Content-Security-Policy (the strict page one by default)."""
    if response.content_type == "text/html" and "Content-Security-Policy" not in response.headers:
        response.headers["Content-Security-Policy"] = PAGE_CSP


def _binding(request: web.Request) -> str:
    return "post" if request.method == "POST" else "redirect"


async def _purge_forever(app: web.Application, every: float = 600.0) -> None:
    """Expired pending requests, replay entries, codes and sessions go away on their own."""
    while True:
        try:
            await app[LOGIN].store.purge(app[CLOCK].now())
        except Exception:  # the database may be briefly away; try again next round
            log.exception("login purge failed")
        await asyncio.sleep(every)


def routes() -> list[web.RouteDef]:
    base = "/t/{tenant}/{kind}"
    return [
        web.get(f"{base}/metadata", metadata_view),
        web.get(f"{base}/login", login_view),
        web.post(f"{base}/acs", acs_view),
        web.get(f"{base}/done", done_view),
        web.get(f"{base}/logout", logout_view),
        web.get(f"{base}/slo", slo_view),
        web.post(f"{base}/slo", slo_view),
        web.get("/{activity:(pub|pri)-ag-(full|lite)}/{tenant}", metadata_view),
    ]


@contextlib.asynccontextmanager
async def login_ctx(app: web.Application) -> AsyncIterator[None]:
    """The login service on ``app`` (login's ``hub_platform_setup``), with the purger of
    expired rows; both go at shutdown."""
    config = app[CONFIG]
    app[LOGIN] = LoginService(config, LoginStore(app[ENGINE]), IdpDirectory(config))
    await app[LOGIN].idps.load_all()
    purger = asyncio.create_task(_purge_forever(app), name="login-purge")
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger


def web_app(app: web.Application) -> None:
    """Every HTML answer of the app gets the page CSP (login's ``hub_web_app``)."""
    app.on_response_prepare.append(_html_policy)
