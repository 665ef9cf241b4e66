"""SPID/CIE OpenID Connect logout: the local session ends, the access token is revoked.

The rules ("Logout", "Revocation Endpoint"): an RP that keeps its own session must offer a
logout that ends it and revokes, at the OP's revocation endpoint (RFC 7009, client
authentication ``private_key_jwt``), the access tokens of the login still active; SPID adds
that the RP revokes when its session ends. Refresh tokens are not asked for (no
``offline_access``), so there are none to keep or revoke.

What is kept for that: one ``oidc_sessions`` row per login, next to its ``login_sessions``
row, with the access token sealed as a JWE (RSA-OAEP-256, A256GCM) for the RP's own
encryption key, so a database dump alone does not hold usable tokens and tokens are never
logged. After a rotation of the encryption key (``sportello keys oidc --rotate``) tokens
sealed before it cannot be opened: their logout ends the local session and says the
provider was not told (access tokens live minutes; the overlap does not help, retired
entries hold public keys only).

``GET|POST /t/{tenant}/oidc/logout[?return_to=]``, with the browser's session cookie:

- no session, or one already ended: nothing to do, the browser goes back (a replayed
  logout is harmless: it revokes nothing twice);
- a session cookie of another tenant: refused (403 page), that session is left alone;
- otherwise the local session ends first (one ``UPDATE``: of two concurrent logouts only
  one goes on), then the token is revoked; on success the browser goes to ``return_to``
  (one of the tenant's ``return_urls``, or its ``organization_url``). When the provider does
  not answer, refuses, or the token cannot be opened, the local session stays ended, the
  row keeps the reason, and the person is told on a page (502) with the way back. When
  trying later may work (no answer, or a 5xx), an ``oidc.revoke`` outbox job (payload: the
  session ID; idempotency key ``oidc.revoke:<session>``) is queued with the outcome and
  retried with the outbox's backoff; otherwise the sealed token is wiped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from aiohttp import web

from sportello.appkeys import CLOCK
from sportello.config import TenantConfig
from sportello.connectors.errors import TransportError
from sportello.connectors.oidc.errors import FederationError, OidcError, ProviderError
from sportello.outbox import Delivery, Handler, Job
from sportello.outbox.store import NewJob
from sportello.platforms.login import pages
from sportello.platforms.login.oidc_keys import OidcConfigError, oidc_settings
from sportello.platforms.login.oidc_routes import (
    OIDC,
    SESSION_COOKIE,
    OidcService,
    _refuse,
    _secure,
    _tenant,
)
from sportello.platforms.login.oidc_sessions import end_session, session_row, settle, unseal
from sportello.platforms.login.routes import cookie_name
from sportello.platforms.login.store import LoginStore
from sportello.services import HubServices
from sportello.web import read_form

from .returns import own_return_urls

log = logging.getLogger("sportello.platforms.login.oidc")


def _back(tenant: TenantConfig, return_to: str | None) -> str | None:
    settings = oidc_settings(tenant)
    if return_to:
        return return_to
    return str(settings.organization_url) if settings.organization_url else None


def _forget(resp: web.StreamResponse, service: OidcService) -> web.StreamResponse:
    secure = _secure(service.config)
    resp.del_cookie(
        cookie_name(service.config, SESSION_COOKIE),
        path="/",
        secure=secure,
        httponly=True,
        samesite="None" if secure else "Lax",
    )
    return resp


def _gone(service: OidcService, target: str | None, kind: str = "spid") -> web.StreamResponse:
    """Logged out: back to ``target`` (303), or the "session closed" page."""
    if target:
        resp = web.Response(status=303, headers={"Location": target, "Cache-Control": "no-store"})
        return _forget(resp, service)
    return _forget(pages.logged_out(kind), service)


def _told(service: OidcService, back: str | None, *, retry: bool) -> web.StreamResponse:
    """Logged out here, the provider not told: say so (502), with the way back."""
    link = (
        f'<p><a class="btn" id="back" href="{escape(back)}">Torna al sito del comune</a></p>'
        if back
        else ""
    )
    resp = pages.page(
        "Disconnessione effettuata",
        '<p id="local">La tua sessione sul servizio del comune è chiusa.</p>'
        '<div class="err" id="not-revoked"><p>Il gestore di identità non ha confermato la '
        "revoca dell'accesso"
        + (": riproveremo a breve." if retry else ".")
        + " Se usi un computer condiviso, chiudi il browser.</p></div>"
        + link,
        status=502,
    )
    return _forget(resp, service)


async def logout_view(request: web.Request) -> web.StreamResponse:
    tenant, settings = _tenant(request)
    service = request.app[OIDC]
    posted = await read_form(request) if request.method == "POST" else request.query
    if posted is None:
        return _refuse(settings, "spid", "modulo illeggibile (codifica o formato)", status=400)
    form = posted
    raw_return = form.get("return_to")
    return_to = raw_return if isinstance(raw_return, str) and raw_return else None
    allowed = {str(u) for u in settings.return_urls} | own_return_urls(request.app, tenant)
    if settings.organization_url:
        allowed.add(str(settings.organization_url))
    if return_to is not None and return_to not in allowed:
        why = "indirizzo di ritorno non autorizzato (return_to)"
        return _refuse(settings, "spid", why, status=400)
    target = _back(tenant, return_to)
    session_id = request.cookies.get(cookie_name(service.config, SESSION_COOKIE))
    if not session_id or len(session_id) > 64:
        return _gone(service, target)
    row = await session_row(service.store, session_id)
    if row is None or (row["tenant_id"] == tenant.id and row["ended_at"] is not None):
        return _gone(service, target)  # unknown or already ended: nothing to revoke
    if row["tenant_id"] != tenant.id:
        log.warning("OIDC logout refused", extra={"tenant": tenant.id, "check": "tenant"})
        return _refuse(settings, "spid", "la sessione non è di questo servizio", status=403)
    now = request.app[CLOCK].now()
    kind = str(row["kind"])
    if not await end_session(service.store, session_id, tenant.id, now):
        return _gone(service, target, kind)  # a concurrent logout ended it (and revokes)
    outcome = await revoke_session(service, tenant, row, now)
    retry = revoke_job(tenant.id, session_id) if outcome.retryable else None
    await settle(
        service.store,
        session_id,
        now,
        outcome.error,
        retry=retry,
        max_attempts=service.config.outbox.max_attempts,
    )
    log.info(
        "OIDC logout",
        extra={
            "tenant": tenant.id,
            "idp": row["provider"],
            "revoked": outcome.error is None,
            "retry": retry is not None,
        },
    )
    if outcome.error is None:
        return _gone(service, target, kind)
    return _told(service, target, retry=retry is not None)


@dataclass(frozen=True)
class Outcome:
    """How a revocation went: ``error`` None when done (or nothing is left to revoke: no
    token kept, or it has expired); ``retryable`` when trying later may succeed (the OP did
    not answer, or answered 5xx)."""

    error: str | None = None
    retryable: bool = False


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, TransportError):
        return True
    if isinstance(exc, ProviderError):
        return exc.status is None or exc.status >= 500 or exc.check == "temporarily_unavailable"
    return isinstance(exc, FederationError) and exc.check == "unreachable"


async def revoke_session(
    service: OidcService, tenant: TenantConfig, row: Mapping[str, Any], now: datetime
) -> Outcome:
    """Revoke the session's access token at its provider (RFC 7009, ``private_key_jwt``)."""
    sealed = row["access_token"]
    expires = row["token_expires_at"]
    if sealed is None:
        return Outcome("no_token")
    if expires is not None and expires <= now:
        return Outcome()  # expired: nothing to revoke (rules: "if it is not expired yet")
    try:
        keys = service.keys(tenant)
        token = unseal(keys, sealed)
    except (OidcConfigError, OidcError, UnicodeDecodeError) as exc:
        return Outcome(f"unseal: {getattr(exc, 'check', type(exc).__name__)}"[:200])
    try:
        provider = await service.provider(tenant, row["provider"])
        await service.client(tenant).revoke(provider, token)
    except (OidcError, TransportError) as exc:
        reason = f"{getattr(exc, 'check', 'http')}: {getattr(exc, 'reason', '')}"[:200]
        return Outcome(reason, _retryable(exc))
    return Outcome()


# -- the durable retry -----------------------------------------------------------------------

REVOKE_KIND = "oidc.revoke"


def revoke_job(tenant_id: str, session_id: str) -> NewJob:
    """A retry of a revocation the OP did not confirm at logout; the payload names the
    session only (the token stays sealed in its row), the key makes it one job a session."""
    return NewJob(
        tenant_id,
        REVOKE_KIND,
        {"session_id": session_id},
        idempotency_key=f"{REVOKE_KIND}:{session_id}",
    )


class RevocationFailed(Exception):
    """The OP still did not revoke; ``retryable`` tells the outbox whether to try again."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.retryable = retryable


def oidc_revoke_handler(services: HubServices) -> Handler:
    """Outbox handler of ``oidc.revoke``: the sealed token of the session's row, revoked."""
    service = OidcService(services.config, LoginStore(services.engine), services.session)

    async def handle(job: Job) -> Delivery | None:
        session_id = str(job.payload.get("session_id", ""))
        row = await session_row(service.store, session_id)
        tenant = services.config.tenant(job.tenant_id)
        if row is None or tenant is None or row["tenant_id"] != job.tenant_id:
            return Delivery()  # purged with its session, or the tenant is gone: nothing to do
        if row["access_token"] is None:
            return Delivery()  # revoked (or wiped) meanwhile
        now = services.clock.now()
        outcome = await revoke_session(service, tenant, row, now)
        if outcome.error is not None and outcome.retryable:
            raise RevocationFailed(outcome.error, retryable=True)
        await settle(service.store, session_id, now, outcome.error)
        if outcome.error is not None:
            raise RevocationFailed(outcome.error, retryable=False)
        log.info("OIDC token revoked on retry", extra={"tenant": tenant.id, "idp": row["provider"]})
        return Delivery()

    return handle


def routes() -> list[web.RouteDef]:
    path = "/t/{tenant}/oidc/logout"
    return [web.get(path, logout_view), web.post(path, logout_view)]
