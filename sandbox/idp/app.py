"""Sandbox SPID and CIE test identity provider: two SAML IdPs on one aiohttp app.

``create_app(base_url=..., key_dir=..., sp_metadata=[...])``: the SPID IdP has entityID
``{base}/spid``, the CIE one ``{base}/cie`` (``base`` is ``base_url``, or the request's own
``scheme://host`` when None). SPs are found by their entityID, which in this hub is their
metadata URL: fetched on first sight and cached 60 s, or pinned at start / via
``POST /__sandbox/sp-metadata``.

Routes (``{scheme}`` is ``spid`` or ``cie``):

- ``GET /{scheme}/metadata``: the IdP's metadata, signed by the sandbox federation key
  (``keys.FEDERATION``: the sandbox plays AgID; the hub's ``[idps] signing_certs`` trusts it).
- ``GET /registry/spid-entities-idps.xml``: the sandbox "AgID registry", an
  ``EntitiesDescriptor`` of the SPID IdP signed by the same federation key (what
  ``sportello idps refresh --url`` reads).
- ``GET|POST /{scheme}/sso``: an AuthnRequest (HTTP-Redirect or HTTP-POST). A bad one gets a
  400 page naming every problem, with the codes in the ``X-Sandbox-Error`` header
  (comma-separated, e.g. ``signature,destination``). A good one gets the login page, and the
  header ``X-Sandbox-Txn`` carries its transaction id.
- ``POST /{scheme}/sso/answer``: the login page's buttons. Form fields: ``txn`` plus
  ``identity`` (a test fiscal code, see ``identities.py``) or ``anomaly`` (19, 20, 21, 22,
  23, 25; "Annulla" is 25). Answers an auto-submitting form that posts ``SAMLResponse`` and
  ``RelayState`` to the SP's ACS. With ``format=json`` (or ``Accept: application/json``) it
  answers JSON instead: ``{"acs_url", "SAMLResponse", "RelayState", "session_index",
  "level", "anomaly"}``.
- ``GET|POST /{scheme}/slo``: an SP's LogoutRequest (signature checked). SPID ends the session
  and answers a signed Success LogoutResponse to the SP's SLO endpoint (HTTP-Redirect with a
  query signature when the SP has one, else an HTTP-POST form). CIE ends the session and
  never answers the SP (real CIE behaviour): a "sessione chiusa" page. The same route takes
  the SP's LogoutResponse to an IdP-initiated logout and shows its outcome (header
  ``X-Sandbox-Logout`` carries the status).
- ``GET /spid/sessions``: active sessions, each with a logout button;
  ``POST /spid/sessions/{session_index}/logout`` sends the SP a signed LogoutRequest
  (browser redirect, HTTP-Redirect binding; HTTP-POST form when the SP has only that).

Sandbox-only routes:

- ``GET /__sandbox/requests`` (``?limit=N``): the last inbound AuthnRequests, LogoutRequests
  and LogoutResponses, parsed (id, issuer, level, comparison, binding, signature_ok,
  problems...).
- ``POST /__sandbox/reset``: forget transactions, sessions, log, faults and fetched SPs.
- ``POST /__sandbox/sp-metadata`` (body: SP metadata XML), ``GET /__sandbox/sp-metadata``.
- ``POST /__sandbox/faults`` ``{"faults": ["expired", ...], "count": 1}``: spoil the next
  ``count`` login answers (names in ``state.FAULT_NAMES``); ``GET``/``DELETE`` list/clear.
- ``GET /__sandbox/identities``, ``GET /__sandbox/sessions``.

Scripted login (no HTML scraping): send the AuthnRequest to ``/spid/sso``, read
``X-Sandbox-Txn``, then ``POST /spid/sso/answer`` with ``txn``, ``identity`` (or
``anomaly``) and ``format=json``, and post ``SAMLResponse``/``RelayState`` to ``acs_url``.

Levels: the answer carries the level the request asked for that satisfies its comparison
(exact and minimum: the requested level; better: one above; maximum: the requested level, or
the identity's maximum when lower). When the identity cannot reach it, the answer is
``ErrorCode nr20``. CIE: every CIE holder reaches SpidL3; "minimum" answers SpidL3, "exact"
the requested level. The CIE Issuers carry no ``Format`` attribute (like the real CIE IdP).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from lxml import etree

from sportello.clock import Clock, SystemClock

from ..common import platform_app
from .identities import DEFAULT_IDENTITIES, TestIdentity
from .inbound import (
    AuthnCheck,
    Inbound,
    LogoutCheck,
    check_authn_request,
    check_logout_request,
    check_logout_response,
    read_message,
)
from .keys import load_or_create
from .metadata import idp_metadata, registry_metadata
from .outbound import (
    ANOMALY_MESSAGES,
    LoginAnswer,
    anomaly_response,
    logout_request,
    logout_response,
    sign,
    success_response,
)
from .pages import autopost_page, error_page, login_page, message_page, sessions_page
from .spmeta import BINDING_REDIRECT, SpRegistry, parse_sp_metadata
from .state import (
    FAULT_NAMES,
    STATE,
    AuthnTxn,
    Fault,
    IdpSession,
    IdpState,
    PendingLogout,
    Problem,
)
from .xmlutil import XmlRefused, deflate_b64, fmt_time, new_id, sign_query, tostring

__all__ = ["STATE", "create_app", "grant_level"]

LABELS = {"spid": "SPID", "cie": "CIE"}
SCHEME = "{scheme:spid|cie}"
_HTML = "text/html"


def grant_level(scheme: str, requested: int, comparison: str, max_level: int) -> int | None:
    """The level to answer with, or None when the identity cannot satisfy the request."""
    if scheme == "cie":
        max_level = 3
    level = {
        "exact": requested,
        "minimum": 3 if scheme == "cie" else requested,
        "better": requested + 1,
        "maximum": min(requested, max_level),
    }.get(comparison, requested)
    return level if level <= min(max_level, 3) else None


def _base(request: web.Request) -> str:
    configured = request.app[STATE].base_url
    return configured if configured else f"{request.scheme}://{request.host}"


def _entity(request: web.Request, scheme: str) -> str:
    return f"{_base(request)}/{scheme}"


def _refuse(title: str, problems: list[Problem], status: int = 400) -> web.Response:
    response = web.Response(text=error_page(title, problems), status=status, content_type=_HTML)
    response.headers["X-Sandbox-Error"] = ",".join(p.code for p in problems)
    return response


def _b64(xml: bytes) -> str:
    return base64.b64encode(xml).decode("ascii")


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _record(
    state: IdpState,
    kind: str,
    scheme: str,
    binding: str,
    relay: str | None,
    summary: dict[str, Any],
) -> None:
    state.record(
        {
            "kind": kind,
            "scheme": scheme,
            "binding": binding,
            "relay_state": relay,
            "received_at": fmt_time(state.clock.now()),
            **summary,
        }
    )


async def _read(
    request: web.Request, kind: str, scheme: str
) -> tuple[Inbound | None, web.Response | None]:
    """The inbound message, or the 400 page (logged) when it cannot be read."""
    state = request.app[STATE]
    try:
        return await read_message(request), None
    except XmlRefused as exc:
        problem = Problem(exc.code, exc.message, 4 if exc.code in ("binding", "encoding") else 8)
        binding = "redirect" if request.method == "GET" else "post"
        _record(
            state,
            kind,
            scheme,
            binding,
            None,
            {"signature_ok": None, "problems": [problem.as_dict()]},
        )
        return None, _refuse("Richiesta SAML non leggibile", [problem])


# -- metadata and SSO ----------------------------------------------------------------------


async def metadata(request: web.Request) -> web.Response:
    """The IdP's signed metadata (cached per entityID: the signature is made once)."""
    scheme = request.match_info["scheme"]
    state = request.app[STATE]
    entity_id = _entity(request, scheme)
    body = state.metadata_cache.get(entity_id)
    if body is None:
        body = idp_metadata(scheme, entity_id, state.keys[scheme], state.federation)
        if len(state.metadata_cache) < 32:  # one per Host header seen: keep it bounded
            state.metadata_cache[entity_id] = body
    return web.Response(body=body, content_type="application/samlmetadata+xml", charset="utf-8")


async def idp_registry(request: web.Request) -> web.Response:
    """The sandbox IdP registry (like AgID's ``spid-entities-idps.xml``), federation-signed."""
    state = request.app[STATE]
    entity_id = _entity(request, "spid")
    key = f"registry|{entity_id}"
    body = state.metadata_cache.get(key)
    if body is None:
        body = registry_metadata([("spid", entity_id, state.keys["spid"])], state.federation)
        if len(state.metadata_cache) < 32:
            state.metadata_cache[key] = body
    return web.Response(body=body, content_type="application/samlmetadata+xml", charset="utf-8")


async def sso(request: web.Request) -> web.Response:
    """Receive an AuthnRequest; answer the login page or a 400 naming every problem."""
    scheme = request.match_info["scheme"]
    state = request.app[STATE]
    state.prune()
    inbound, refused = await _read(request, "AuthnRequest", scheme)
    if inbound is None:
        assert refused is not None
        return refused
    entity_id = _entity(request, scheme)
    check: AuthnCheck = await check_authn_request(
        inbound,
        scheme=scheme,
        idp_entity_id=entity_id,
        sso_url=f"{entity_id}/sso",
        registry=state.registry,
        now=state.clock.now(),
        mono=state.clock.monotonic(),
    )
    _record(state, "AuthnRequest", scheme, inbound.binding, inbound.relay_state, check.summary())
    if check.problems:
        return _refuse("Richiesta di autenticazione non valida", check.problems)
    assert check.message_id and check.issuer and check.acs_url and check.level is not None
    txn = AuthnTxn(
        txn=state.new_txn_id(),
        scheme=scheme,
        request_id=check.message_id,
        sp_entity_id=check.issuer,
        acs_url=check.acs_url,
        level=check.level,
        comparison=check.comparison,
        attributes=check.attributes,
        relay_state=inbound.relay_state,
        created=state.clock.monotonic(),
    )
    state.transactions[txn.txn] = txn
    rows = [
        (
            identity,
            3 if scheme == "cie" else identity.max_level,
            grant_level(scheme, txn.level, txn.comparison, identity.max_level) is not None,
        )
        for identity in state.identities
        if scheme == "spid" or identity.has_cie
    ]
    page = login_page(
        label=LABELS[scheme],
        action=f"/{scheme}/sso/answer",
        txn=txn.txn,
        sp_entity_id=txn.sp_entity_id,
        level=txn.level,
        comparison=txn.comparison,
        identities=rows,
    )
    response = web.Response(text=page, content_type=_HTML)
    response.headers["X-Sandbox-Txn"] = txn.txn
    response.headers["Cache-Control"] = "no-store"
    return response


def _wants_json(request: web.Request, form: Any) -> bool:
    accept = request.headers.get("Accept", "")
    return form.get("format") == "json" or accept.startswith("application/json")


async def answer(request: web.Request) -> web.Response:
    """The login page's choice: a signed Response (or anomaly) posted to the SP's ACS."""
    scheme = request.match_info["scheme"]
    state = request.app[STATE]
    state.prune()
    form = await request.post()
    txn_id = form.get("txn")
    txn = state.transactions.get(txn_id) if isinstance(txn_id, str) else None
    if txn is None or txn.scheme != scheme:
        return _refuse(
            "Sessione di autenticazione non trovata",
            [Problem("txn_unknown", "unknown or expired transaction (txn): start the login again")],
        )
    anomaly_field, identity_field = form.get("anomaly"), form.get("identity")
    identity: TestIdentity | None = None
    anomaly: int | None = None
    if isinstance(anomaly_field, str) and anomaly_field:
        anomaly = int(anomaly_field) if anomaly_field.isdigit() else -1
        if anomaly not in ANOMALY_MESSAGES:
            return _refuse(
                "Anomalia sconosciuta",
                [Problem("anomaly", f"anomaly must be one of {sorted(ANOMALY_MESSAGES)}")],
            )
    elif isinstance(identity_field, str) and identity_field:
        identity = state.identity(identity_field)
        if identity is None or (scheme == "cie" and not identity.has_cie):
            return _refuse(
                "Identità sconosciuta",
                [Problem("identity", f"no {LABELS[scheme]} test identity {identity_field!r}")],
            )
    else:
        return _refuse(
            "Scelta mancante", [Problem("choice", "post either identity or anomaly with txn")]
        )
    del state.transactions[txn.txn]
    login = LoginAnswer(
        scheme, _entity(request, scheme), txn.request_id, txn.sp_entity_id, txn.acs_url
    )
    keys, now = state.keys[scheme], state.clock.now()
    level = (
        grant_level(scheme, txn.level, txn.comparison, identity.max_level)
        if identity is not None
        else None
    )
    session_index: str | None = None
    if identity is None or level is None:
        anomaly = anomaly if anomaly is not None else 20
        root = anomaly_response(login, keys=keys, now=now, code=anomaly)
    else:
        session_index, name_id = new_id(), new_id()
        root = success_response(
            login,
            keys=keys,
            now=now,
            identity=identity,
            level=level,
            attributes=txn.attributes,
            name_id=name_id,
            session_index=session_index,
            faults=state.take_fault(),
        )
        state.sessions[session_index] = IdpSession(
            session_index=session_index,
            scheme=scheme,
            sp_entity_id=txn.sp_entity_id,
            name_id=name_id,
            identity=identity.code,
            level=level,
            started=fmt_time(now),
        )
    fields = {"SAMLResponse": _b64(tostring(root))}
    if txn.relay_state is not None:
        fields["RelayState"] = txn.relay_state
    if _wants_json(request, form):
        return web.json_response(
            {
                "acs_url": txn.acs_url,
                **fields,
                "session_index": session_index,
                "level": level if anomaly is None else None,
                "anomaly": anomaly,
            }
        )
    page = autopost_page(txn.acs_url, fields, title="Ritorno al servizio")
    return web.Response(text=page, content_type=_HTML, headers={"Cache-Control": "no-store"})


# -- single logout ---------------------------------------------------------------------------


def _end_sessions(state: IdpState, check: LogoutCheck) -> int:
    ended = 0
    for index in check.session_indexes:
        session = state.sessions.get(index)
        if (
            session is not None
            and session.active
            and session.sp_entity_id == check.issuer
            and session.name_id == check.name_id
        ):
            session.active = False
            ended += 1
    return ended


async def slo(request: web.Request) -> web.StreamResponse:
    """An SP's LogoutRequest (answered, except by CIE) or its LogoutResponse to ours."""
    scheme = request.match_info["scheme"]
    state = request.app[STATE]
    state.prune()
    inbound, refused = await _read(request, "LogoutRequest", scheme)
    if inbound is None:
        assert refused is not None
        return refused
    entity_id = _entity(request, scheme)
    common: dict[str, Any] = {
        "scheme": scheme,
        "slo_url": f"{entity_id}/slo",
        "registry": state.registry,
        "now": state.clock.now(),
        "mono": state.clock.monotonic(),
    }
    if inbound.param == "SAMLResponse":
        return await _logout_outcome(request, inbound, common)
    check = await check_logout_request(inbound, **common)
    _record(state, "LogoutRequest", scheme, inbound.binding, inbound.relay_state, check.summary())
    if check.problems:
        return _refuse("Richiesta di logout non valida", check.problems)
    ended = _end_sessions(state, check)
    if scheme == "cie":
        return web.Response(
            text=message_page("Sessione chiusa", "La sessione CIE è stata chiusa."),
            content_type=_HTML,
            headers={"X-Sandbox-Sessions-Ended": str(ended)},
        )
    assert check.sp is not None and check.message_id is not None
    endpoint = check.sp.slo_endpoint(BINDING_REDIRECT)
    if endpoint is None:
        return _refuse(
            "Service provider senza SLO",
            [Problem("sp_slo", "the SP metadata has no SingleLogoutService to answer to")],
        )
    destination = endpoint.response_location or endpoint.location
    response = logout_response(
        idp_entity_id=entity_id,
        destination=destination,
        in_response_to=check.message_id,
        now=state.clock.now(),
    )
    headers = {"X-Sandbox-Sessions-Ended": str(ended)}
    return _send(
        state,
        scheme,
        "SAMLResponse",
        response,
        (endpoint.binding, destination),
        inbound.relay_state,
        headers,
    )


def _send(
    state: IdpState,
    scheme: str,
    param: str,
    message: etree._Element,
    endpoint: tuple[str, str],
    relay_state: str | None,
    headers: dict[str, str],
) -> web.Response:
    """Send a logout message to the SP through the browser: ``endpoint`` is (binding, URL).

    HTTP-Redirect answers a 303 (query signature); HTTP-POST the signed auto-posting form."""
    binding, destination = endpoint
    if binding == BINDING_REDIRECT:
        query = sign_query(
            param, deflate_b64(tostring(message)), relay_state, state.keys[scheme].key_pem
        )
        # a plain 303: web.HTTPSeeOther would pass the URL through yarl, which re-encodes
        # the query (%2F -> /) and breaks the signature for an SP checking it as received
        location = _with_query(destination, query)
        return web.Response(status=303, headers={**headers, "Location": location})
    sign(message, state.keys[scheme])
    fields = {param: _b64(tostring(message))}
    if relay_state is not None:
        fields["RelayState"] = relay_state
    return web.Response(
        text=autopost_page(destination, fields, title="Logout"), content_type=_HTML, headers=headers
    )


async def _logout_outcome(
    request: web.Request, inbound: Inbound, common: dict[str, Any]
) -> web.Response:
    state = request.app[STATE]
    scheme = common["scheme"]
    check = await check_logout_response(inbound, pending=set(state.pending_logouts), **common)
    _record(state, "LogoutResponse", scheme, inbound.binding, inbound.relay_state, check.summary())
    if check.problems:
        return _refuse("Risposta di logout non valida", check.problems)
    assert check.in_response_to is not None
    pending = state.pending_logouts.pop(check.in_response_to)
    session = state.sessions.get(pending.session_index)
    if session is not None:
        session.active = False
    status = (check.status or "").rsplit(":", 1)[-1]
    text = f"Il service provider {pending.sp_entity_id} ha risposto: {status}."
    return web.Response(
        text=message_page("Logout completato", text),
        content_type=_HTML,
        headers={"X-Sandbox-Logout": status},
    )


async def sessions(request: web.Request) -> web.Response:
    """The SPID sessions page: one IdP-initiated logout button per active session."""
    state = request.app[STATE]
    active = [s for s in state.sessions.values() if s.scheme == "spid"]
    page = sessions_page("SPID", active, "/spid/sessions")
    return web.Response(text=page, content_type=_HTML)


async def idp_logout(request: web.Request) -> web.StreamResponse:
    """IdP-initiated logout: a signed LogoutRequest to the session's SP."""
    state = request.app[STATE]
    state.prune()
    session = state.sessions.get(request.match_info["session_index"])
    if session is None or not session.active or session.scheme != "spid":
        return _refuse(
            "Sessione non trovata",
            [Problem("session_unknown", "no active SPID session with that SessionIndex")],
            status=404,
        )
    try:
        sp = await state.registry.get(session.sp_entity_id, state.clock.monotonic())
    except XmlRefused as exc:
        return _refuse("Service provider irraggiungibile", [Problem(exc.code, exc.message)], 502)
    endpoint = sp.slo_endpoint(BINDING_REDIRECT)
    if endpoint is None:
        return _refuse(
            "Service provider senza SLO",
            [Problem("sp_slo", "the SP metadata has no SingleLogoutService")],
        )
    entity_id = _entity(request, "spid")
    message = logout_request(
        idp_entity_id=entity_id,
        destination=endpoint.location,
        name_id=session.name_id,
        session_index=session.session_index,
        now=state.clock.now(),
    )
    request_id = message.get("ID")
    assert request_id is not None
    state.pending_logouts[request_id] = PendingLogout(
        request_id, session.session_index, session.sp_entity_id, state.clock.monotonic()
    )
    session.active = False
    return _send(
        state,
        "spid",
        "SAMLRequest",
        message,
        (endpoint.binding, endpoint.location),
        secrets.token_urlsafe(16),
        {"X-Sandbox-Logout-Request": request_id},
    )


# -- sandbox-only routes ---------------------------------------------------------------------


async def list_requests(request: web.Request) -> web.Response:
    records = list(request.app[STATE].records)
    limit = request.query.get("limit", "")
    if limit.isdigit():
        records = records[-int(limit) :] if int(limit) else []
    return web.json_response({"requests": records, "count": len(records)})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"reset": True})


async def add_sp_metadata(request: web.Request) -> web.Response:
    try:
        sp = parse_sp_metadata(await request.read())
    except XmlRefused as exc:
        return web.json_response({"error": exc.code, "detail": exc.message}, status=400)
    request.app[STATE].registry.pin(sp)
    return web.json_response({"entity_id": sp.entity_id, "certs": len(sp.certs)}, status=201)


async def list_sp_metadata(request: web.Request) -> web.Response:
    return web.json_response({"service_providers": request.app[STATE].registry.known()})


async def add_faults(request: web.Request) -> web.Response:
    """``{"faults": ["expired", "wrong_audience"], "count": 1}``"""
    try:
        body = await request.json()
    except ValueError:
        body = None
    names = body.get("faults") if isinstance(body, dict) else None
    count = body.get("count", 1) if isinstance(body, dict) else None
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) and n in FAULT_NAMES for n in names)
    ):
        return web.json_response(
            {"error": "faults must be a non-empty list of names", "known": FAULT_NAMES},
            status=400,
        )
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return web.json_response({"error": "count must be a positive integer"}, status=400)
    state = request.app[STATE]
    state.faults.append(Fault(tuple(names), count))
    return web.json_response({"faults": [f.as_dict() for f in state.faults]}, status=201)


async def list_faults(request: web.Request) -> web.Response:
    faults = [f.as_dict() for f in request.app[STATE].faults]
    return web.json_response({"faults": faults, "known": FAULT_NAMES})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response({"faults": []})


async def list_identities(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "identities": [
                {
                    "code": i.code,
                    "label": i.label,
                    "max_level": i.max_level,
                    "has_cie": i.has_cie,
                    "attributes": i.attribute_map(),
                }
                for i in request.app[STATE].identities
            ]
        }
    )


async def list_sessions(request: web.Request) -> web.Response:
    return web.json_response(
        {"sessions": [s.as_dict() for s in request.app[STATE].sessions.values()]}
    )


def create_app(
    *,
    base_url: str | None = None,
    key_dir: Path | None = None,
    sp_metadata: Sequence[bytes] = (),
    identities: Sequence[TestIdentity] | None = None,
    clock: Clock | None = None,
    sp_spttl: float = 60.0,
) -> web.Application:
    """The SPID + CIE sandbox IdP (see the module docstring for the routes).

    ``key_dir`` keeps the two signing keys across restarts (``spid-*.pem``, ``cie-*.pem``);
    ``sp_metadata`` pins SP metadata documents; ``identities`` replaces the default
    population; ``clock`` drives IssueInstant checks and the times the IdP writes.
    """
    registry = SpRegistry(ttl=sp_spttl)
    for document in sp_metadata:
        registry.pin(parse_sp_metadata(document), initial=True)
    state = IdpState(
        base_url=base_url.rstrip("/") if base_url else None,
        keys={scheme: load_or_create(key_dir, scheme) for scheme in LABELS},
        identities=tuple(identities) if identities is not None else DEFAULT_IDENTITIES,
        registry=registry,
        clock=clock or SystemClock(),
    )
    app = platform_app("idp", "SPID and CIE test identity provider")
    app[STATE] = state
    router = app.router
    router.add_get(f"/{SCHEME}/metadata", metadata)
    router.add_get("/registry/spid-entities-idps.xml", idp_registry)
    router.add_route("GET", f"/{SCHEME}/sso", sso)
    router.add_route("POST", f"/{SCHEME}/sso", sso)
    router.add_post(f"/{SCHEME}/sso/answer", answer)
    router.add_route("GET", f"/{SCHEME}/slo", slo)
    router.add_route("POST", f"/{SCHEME}/slo", slo)
    router.add_get("/spid/sessions", sessions)
    router.add_post("/spid/sessions/{session_index}/logout", idp_logout)
    router.add_get("/__sandbox/requests", list_requests)
    router.add_post("/__sandbox/reset", reset)
    router.add_get("/__sandbox/sp-metadata", list_sp_metadata)
    router.add_post("/__sandbox/sp-metadata", add_sp_metadata)
    router.add_get("/__sandbox/faults", list_faults)
    router.add_post("/__sandbox/faults", add_faults)
    router.add_delete("/__sandbox/faults", clear_faults)
    router.add_get("/__sandbox/identities", list_identities)
    router.add_get("/__sandbox/sessions", list_sessions)
    return app
