"""Sandbox SPID/CIE OpenID Connect Federation: a trust anchor and two OpenID providers.

``create_app(base_url=...)`` (``base_url`` is where the app is served: entity IDs are URLs):

- Trust anchor ``{base}/ta``: ``/.well-known/openid-federation``, ``/fetch?sub=``,
  ``/list?entity_type=``, ``/resolve?sub=&anchor=``, ``POST /trust_mark_status`` (``id``,
  ``sub`` -> ``{"active": bool}``), ``/trust_mark?trust_mark_type=&sub=`` (a fresh trust
  mark for a registered entity: how RPs renew theirs). Its subordinates are the two OPs
  (registered at start) and whatever registers through ``POST /__sandbox/register``. Its
  constraints: ``max_path_length`` 1. Trust marks: ``{base}/ta/openid_relying_party/public/``,
  ``{base}/ta/openid_provider/public/``, ``{base}/ta/intermediate/public/``.
- OPs ``{base}/cie`` and ``{base}/spid``: ``/.well-known/openid-federation``,
  ``/authorization`` (GET or POST; the signed request object is checked against the RP's
  keys from its trust chain, resolved over HTTP from the RP's entity configuration; a valid
  trust mark of the TA is required first), the login page (the SAML sandbox IdP's people;
  CIE only shows people with an identity card), ``POST /login``, the consent page,
  ``POST /consent``, ``POST /token`` (``private_key_jwt``, PKCE S256, single-use codes),
  ``/userinfo`` (Bearer; answers a JWE wrapping a JWS, ``application/jose``; SPID: GET
  only), ``POST /revocation``.
- Errors: once the ``redirect_uri`` is one of the RP's chain-verified ``redirect_uris``,
  errors go back to it (``error``, ``error_description``, ``state``, ``iss``); before that
  (no request object, RP not in the federation) a 400 page names the error (header
  ``X-Sandbox-Error``), since redirecting to an unverified URI would be an open redirect.

Sandbox-only routes:

- ``POST /__sandbox/register`` ``{"entity_id": ..., "entity_type": "openid_relying_party"}``
  (or ``"federation_entity"`` for an intermediate): the TA fetches the entity configuration,
  checks its self-signature and that it names the TA in ``authority_hints``, records its
  keys, and answers ``{"trust_marks": [{"id", "iss", "trust_mark"}]}`` to publish. An RP
  whose ``authority_hints`` name a registered intermediate instead gets its trust mark once
  that intermediate's statement vouches for its keys (it stays the intermediate's
  subordinate: the TA's ``fetch`` does not answer for it).
- ``POST /__sandbox/faults`` ``{"faults": [...]}``; ``GET`` lists; ``DELETE`` clears. Names:
  ``expired_trust_mark`` (trust marks issued with an ``exp`` in the past),
  ``revoked_trust_mark`` (the status endpoint answers inactive), ``broken_chain`` (the TA's
  statements about the OPs carry a bad signature), ``op_key_outside_chain`` (the OPs sign
  tokens with a key their metadata does not list), ``policy_forbids`` (the TA's policy asks
  the OPs for a value they do not have), ``downgrade_acr`` (ID tokens carry SpidL1),
  ``tamper_userinfo`` (a byte of the userinfo JWE is flipped), ``mixup_iss`` (the callback's
  ``iss`` names the other OP), ``id_token_alg_none`` and ``id_token_hs256`` (ID tokens
  unsigned, or "signed" with HS256 keyed by the OP's public JWK), ``oversize_id_token`` (an
  ID token padded past 64 KiB).
- ``POST /__sandbox/reset``; ``GET /__sandbox/identities``; ``GET /__sandbox/log``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization

from ..common import platform_app
from ..idp.identities import DEFAULT_IDENTITIES, TestIdentity
from . import pages
from .jose import JoseFailure, SigningKey, b64url, encrypt, forge, unverified, verify

__all__ = ["FAULT_NAMES", "create_app"]

FAULT_NAMES = (
    "expired_trust_mark",
    "revoked_trust_mark",
    "broken_chain",
    "op_key_outside_chain",
    "policy_forbids",
    "downgrade_acr",
    "tamper_userinfo",
    "mixup_iss",
    "id_token_alg_none",
    "id_token_hs256",
    "oversize_id_token",
)
ES_TYP = "entity-statement+jwt"
ES_CT = "application/entity-statement+jwt"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACR = {f"https://www.spid.gov.it/SpidL{n}": n for n in (1, 2, 3)}
PREFIX = "https://attributes.eid.gov.it/"
STATEMENT_LIFETIME = 86400
MAX_BODY = 64 * 1024


@dataclass
class Subordinate:
    entity_id: str
    entity_type: str
    jwks: dict[str, Any]


@dataclass
class Provider:
    scheme: str
    label: str
    entity_id: str
    federation: SigningKey
    core: SigningKey
    rogue: SigningKey

    def endpoint(self, name: str) -> str:
        return f"{self.entity_id}/{name}"


@dataclass
class Txn:
    op: str
    client_id: str
    redirect_uri: str
    state: str
    nonce: str
    challenge: str
    scope: list[str]
    acr_values: list[str]
    claims: dict[str, Any]
    identity: str | None = None


@dataclass
class Grant:
    txn: Txn
    issued: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass
class State:
    base: str
    ta_id: str
    ta_key: SigningKey
    ta_rogue: SigningKey
    ops: dict[str, Provider]
    subordinates: dict[str, Subordinate] = field(default_factory=dict)
    faults: set[str] = field(default_factory=set)
    revoked_marks: set[tuple[str, str]] = field(default_factory=set)
    txns: dict[str, Txn] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, Grant] = field(default_factory=dict)  # access token jti -> grant
    revoked_tokens: set[str] = field(default_factory=set)
    assertion_jtis: set[str] = field(default_factory=set)
    rp_cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    aggregated: dict[str, str] = field(default_factory=dict)  # RP under an intermediate -> it
    log: list[dict[str, Any]] = field(default_factory=list)

    def mark_id(self, role: str) -> str:
        return f"{self.ta_id}/{role}/public/"

    def record(self, event: str, **data: Any) -> None:
        self.log.append({"event": event, **data})
        del self.log[:-200]


STATE = web.AppKey("oidc_state", State)
SESSION = web.AppKey("oidc_http", aiohttp.ClientSession)


def _problem(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


def _jwt(token: str) -> web.Response:
    return web.Response(text=token, content_type=ES_CT)


# --- the trust anchor ------------------------------------------------------------------------


def _trust_mark(state: State, sub: str, role: str) -> dict[str, Any]:
    now = int(time.time())
    exp = now - 3600 if "expired_trust_mark" in state.faults else now + 30 * 86400
    mark_id = state.mark_id(role)
    claims = {
        "id": mark_id,
        "iss": state.ta_id,
        "sub": sub,
        "iat": now - (7200 if "expired_trust_mark" in state.faults else 0),
        "exp": exp,
        "organization_type": "public",
        "id_code": {"ipa_code": "sbx_" + hashlib.sha256(sub.encode()).hexdigest()[:6]},
        "email": "pec@example.org",
        "organization_name": "Sandbox",
        "ref": f"{state.base}/docs",
    }
    return {"id": mark_id, "iss": state.ta_id, "trust_mark": state.ta_key.sign(claims)}


def _ta_configuration(state: State) -> str:
    now = int(time.time())
    ta = state.ta_id
    claims = {
        "iss": ta,
        "sub": ta,
        "iat": now,
        "exp": now + STATEMENT_LIFETIME,
        "jwks": {"keys": [state.ta_key.jwk]},
        "metadata": {
            "federation_entity": {
                "organization_name": "Sandbox Trust Anchor",
                "homepage_uri": state.base,
                "policy_uri": f"{ta}/policy",
                "logo_uri": f"{ta}/logo.svg",
                "contacts": ["ta@example.org"],
                "federation_fetch_endpoint": f"{ta}/fetch",
                "federation_list_endpoint": f"{ta}/list",
                "federation_resolve_endpoint": f"{ta}/resolve",
                "federation_trust_mark_status_endpoint": f"{ta}/trust_mark_status",
                "federation_trust_mark_endpoint": f"{ta}/trust_mark",
            }
        },
        "trust_mark_issuers": {
            state.mark_id(role): [ta]
            for role in ("openid_relying_party", "openid_provider", "intermediate")
        },
        "constraints": {"max_path_length": 1},
    }
    return state.ta_key.sign(claims, typ=ES_TYP)


_SIG = ["RS256", "RS512", "PS256", "PS512", "ES256", "ES512"]


def _policy(state: State, entity_type: str) -> dict[str, Any]:
    if entity_type == "openid_provider":
        policy: dict[str, Any] = {
            "code_challenge_methods_supported": {"subset_of": ["S256"], "essential": True},
            "token_endpoint_auth_methods_supported": {
                "subset_of": ["private_key_jwt"],
                "essential": True,
            },
            "response_types_supported": {"subset_of": ["code"], "essential": True},
            "request_parameter_supported": {"value": True},
            "client_registration_types_supported": {"subset_of": ["automatic"]},
            "issuer": {"essential": True},
            "jwks": {"essential": True},
        }
        if "policy_forbids" in state.faults:
            policy["client_registration_types_supported"] = {
                "superset_of": ["automatic", "explicit"]
            }
        return {"openid_provider": policy}
    if entity_type == "openid_relying_party":
        return {
            "openid_relying_party": {
                "grant_types": {"subset_of": ["authorization_code", "refresh_token"]},
                "token_endpoint_auth_method": {"one_of": ["private_key_jwt"], "essential": True},
                "client_registration_types": {"subset_of": ["automatic"], "essential": True},
                "response_types": {"value": ["code"]},
                "id_token_signed_response_alg": {"one_of": _SIG, "essential": True},
                "userinfo_signed_response_alg": {"one_of": _SIG, "essential": True},
                "userinfo_encrypted_response_alg": {"one_of": ["RSA-OAEP", "RSA-OAEP-256"]},
                "userinfo_encrypted_response_enc": {
                    "one_of": ["A128CBC-HS256", "A256CBC-HS512", "A256GCM"]
                },
                "redirect_uris": {"essential": True},
                "client_id": {"essential": True},
                "jwks": {"essential": True},
            }
        }
    return {}


def _role(entity_type: str) -> str:
    return "intermediate" if entity_type == "federation_entity" else entity_type


def _subordinate_statement(state: State, sub: Subordinate) -> str:
    now = int(time.time())
    claims = {
        "iss": state.ta_id,
        "sub": sub.entity_id,
        "iat": now,
        "exp": now + STATEMENT_LIFETIME,
        "jwks": sub.jwks,
        "metadata_policy": _policy(state, sub.entity_type),
        "trust_marks": [_trust_mark(state, sub.entity_id, _role(sub.entity_type))],
    }
    if sub.entity_type == "federation_entity":
        claims["constraints"] = {"max_path_length": 0}
    signer = state.ta_key
    if "broken_chain" in state.faults and sub.entity_type == "openid_provider":
        signer = state.ta_rogue  # same kid as the TA's key, another key: a bad signature
        return signer.sign(claims, typ=ES_TYP, kid=state.ta_key.kid)
    return signer.sign(claims, typ=ES_TYP)


async def ta_configuration(request: web.Request) -> web.Response:
    return _jwt(_ta_configuration(request.app[STATE]))


async def ta_fetch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sub = request.query.get("sub")
    if not sub:
        return _problem(400, "invalid_request", "sub is required")
    if sub.rstrip("/") == state.ta_id:
        return _jwt(_ta_configuration(state))
    known = state.subordinates.get(sub.rstrip("/"))
    if known is None:
        return _problem(404, "not_found", f"{sub} is not a subordinate of this trust anchor")
    return _jwt(_subordinate_statement(state, known))


async def ta_list(request: web.Request) -> web.Response:
    state = request.app[STATE]
    wanted = request.query.get("entity_type")
    return web.json_response(
        [s.entity_id for s in state.subordinates.values() if wanted in (None, s.entity_type)]
    )


async def ta_trust_mark_status(request: web.Request) -> web.Response:
    state = request.app[STATE]
    form = await request.post() if request.method == "POST" else request.query
    mark_id, sub = form.get("id"), form.get("sub")
    if not isinstance(mark_id, str) or not isinstance(sub, str):
        return _problem(400, "invalid_request", "id and sub are required")
    registered = sub.rstrip("/") in state.subordinates or sub.rstrip("/") in state.aggregated
    active = (
        registered
        and mark_id.startswith(state.ta_id + "/")
        and "revoked_trust_mark" not in state.faults
        and (mark_id, sub.rstrip("/")) not in state.revoked_marks
    )
    return web.json_response({"active": active})


async def ta_trust_mark(request: web.Request) -> web.Response:
    """The trust mark endpoint (OpenID Federation 1.0, ``trust_mark_type`` and ``sub``;
    ``trust_mark_id`` as earlier drafts named it): a fresh trust mark for a registered
    entity whose mark is not revoked, as ``application/trust-mark+jwt``."""
    state = request.app[STATE]
    query = request.query
    mark_id = query.get("trust_mark_type") or query.get("trust_mark_id")
    sub = query.get("sub", "").rstrip("/")
    if not mark_id or not sub:
        return _problem(400, "invalid_request", "trust_mark_type and sub are required")
    known = state.subordinates.get(sub)
    role = _role(known.entity_type) if known else "openid_relying_party"
    if (known is None and sub not in state.aggregated) or mark_id != state.mark_id(role):
        return _problem(404, "not_found", "no such trust mark for this subject")
    if "revoked_trust_mark" in state.faults or (mark_id, sub) in state.revoked_marks:
        return _problem(404, "not_found", "the trust mark of this subject is revoked")
    mark = _trust_mark(state, known.entity_id if known else sub, role)
    state.record("trust_mark", sub=sub, id=mark_id)
    return web.Response(text=mark["trust_mark"], content_type="application/trust-mark+jwt")


async def ta_resolve(request: web.Request) -> web.Response:
    """The subject's final metadata and chain (an OP, or a registered entity fetched now)."""
    state = request.app[STATE]
    sub = request.query.get("sub", "").rstrip("/")
    anchor = request.query.get("anchor", state.ta_id).rstrip("/")
    if not sub:
        return _problem(400, "invalid_request", "sub is required")
    if anchor != state.ta_id:
        return _problem(404, "not_found", "unknown trust anchor")
    known = state.subordinates.get(sub)
    if known is None:
        return _problem(404, "not_found", f"{sub} is not a subordinate of this trust anchor")
    op = next((o for o in state.ops.values() if o.entity_id == sub), None)
    if op is not None:
        leaf = _op_configuration(state, op)
    else:
        try:
            leaf = await _fetch_configuration(request.app, sub)
        except JoseFailure as exc:
            return _problem(400, "invalid_request", exc.description)
    _header, leaf_claims = unverified(leaf)
    metadata = leaf_claims.get("metadata", {})
    now = int(time.time())
    claims = {
        "iss": state.ta_id,
        "sub": sub,
        "iat": now,
        "exp": now + STATEMENT_LIFETIME,
        "metadata": metadata,
        "trust_marks": [_trust_mark(state, sub, _role(known.entity_type))],
        "trust_chain": [leaf, _subordinate_statement(state, known), _ta_configuration(state)],
    }
    return _jwt(state.ta_key.sign(claims, typ="resolve-response+jwt"))


# --- fetching and trusting relying parties ------------------------------------------------


async def _fetch_configuration(app: web.Application, entity_id: str) -> str:
    url = entity_id.rstrip("/") + "/.well-known/openid-federation"
    try:
        async with app[SESSION].get(
            url, timeout=aiohttp.ClientTimeout(total=5), allow_redirects=False
        ) as resp:
            body = await resp.content.read(MAX_BODY + 1)
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise JoseFailure("temporarily_unavailable", f"{url}: {type(exc).__name__}") from exc
    if status != 200 or len(body) > MAX_BODY:
        raise JoseFailure("temporarily_unavailable", f"{url} answered HTTP {status}")
    return body.decode("ascii", errors="replace")


def _self_signed(token: str, entity_id: str) -> dict[str, Any]:
    _header, claims = unverified(token)
    if str(claims.get("iss", "")).rstrip("/") != entity_id.rstrip("/") or claims.get(
        "iss"
    ) != claims.get("sub"):
        raise JoseFailure("invalid_client", "the entity configuration is not the entity's own")
    jwks = claims.get("jwks")
    if not isinstance(jwks, dict):
        raise JoseFailure("invalid_client", "the entity configuration has no jwks")
    return verify(token, jwks, code="invalid_client", typ=ES_TYP)


def _check_rp_policy(meta: dict[str, Any], client_id: str) -> None:
    """The TA's policy for RPs, checked (the sandbox's own reading of the rules)."""
    if meta.get("client_id", client_id).rstrip("/") != client_id.rstrip("/"):
        raise JoseFailure("unauthorized_client", "client_id in the metadata differs")
    if meta.get("response_types", ["code"]) != ["code"]:
        raise JoseFailure("unauthorized_client", "response_types must be ['code']")
    if meta.get("token_endpoint_auth_method") != "private_key_jwt":
        raise JoseFailure(
            "unauthorized_client", "token_endpoint_auth_method must be private_key_jwt"
        )
    if "automatic" not in (meta.get("client_registration_types") or []):
        raise JoseFailure("unauthorized_client", "client_registration_types must be automatic")
    if not meta.get("redirect_uris") or not isinstance(meta.get("jwks"), dict):
        raise JoseFailure("unauthorized_client", "redirect_uris and jwks are essential")


async def _via_intermediate(
    app: web.Application, client_id: str, hints: list[str]
) -> tuple[dict[str, Any], float] | None:
    """``(jwks, exp)`` of the statement a registered intermediate among ``hints`` issues
    about ``client_id`` (its configuration checked against the keys the TA recorded)."""
    state = app[STATE]
    for hint in hints:
        intermediate = state.subordinates.get(hint)
        if intermediate is None or intermediate.entity_type != "federation_entity":
            continue
        sa_claims = verify(
            await _fetch_configuration(app, hint), intermediate.jwks, code="invalid_client"
        )
        fetch = sa_claims.get("metadata", {}).get("federation_entity", {})
        endpoint = fetch.get("federation_fetch_endpoint")
        if not isinstance(endpoint, str):
            continue
        async with app[SESSION].get(endpoint, params={"sub": client_id}) as resp:
            es = (await resp.content.read(MAX_BODY)).decode("ascii", errors="replace")
        es_claims = verify(es, sa_claims["jwks"], code="invalid_client", typ=ES_TYP)
        if es_claims.get("sub", "").rstrip("/") == client_id.rstrip("/") and str(
            es_claims.get("iss", "")
        ).rstrip("/") == hint.rstrip("/"):
            return es_claims["jwks"], min(float(es_claims["exp"]), float(sa_claims["exp"]))
    return None


async def _resolve_rp(app: web.Application, client_id: str) -> dict[str, Any]:
    """The RP's ``openid_relying_party`` metadata through its trust chain, cached until the
    chain's expiry: its configuration (self-signed), a valid, unrevoked TA trust mark first,
    then the superior's statement (the TA's own, or an intermediate's fetched and checked
    against the TA's), whose keys must verify the configuration."""
    state = app[STATE]
    cached = state.rp_cache.get(client_id)
    if cached and cached[0] > time.time():
        return cached[1]
    token = await _fetch_configuration(app, client_id)
    claims = _self_signed(token, client_id)
    mark_id = state.mark_id("openid_relying_party")
    marks = [m for m in claims.get("trust_marks") or [] if isinstance(m, dict)]
    good = False
    for mark in marks:
        if mark.get("id") != mark_id or not isinstance(mark.get("trust_mark"), str):
            continue
        try:
            tm = verify(
                mark["trust_mark"], {"keys": [state.ta_key.jwk]}, code="unauthorized_client"
            )
        except JoseFailure:
            continue
        if tm.get("sub", "").rstrip("/") == client_id.rstrip("/") and tm.get("id") == mark_id:
            good = (mark_id, client_id.rstrip("/")) not in state.revoked_marks
            good = good and "revoked_trust_mark" not in state.faults
        if good:
            break
    if not good:
        raise JoseFailure("unauthorized_client", "no valid trust mark for a relying party")
    hints = [str(h).rstrip("/") for h in claims.get("authority_hints") or []][:10]
    exp = float(claims["exp"])
    superior_jwks: dict[str, Any] | None = None
    if state.ta_id in hints and client_id.rstrip("/") in state.subordinates:
        superior_jwks = state.subordinates[client_id.rstrip("/")].jwks
    else:
        found = await _via_intermediate(app, client_id, hints)
        if found is not None:
            superior_jwks, until = found
            exp = min(exp, until)
    if superior_jwks is None:
        raise JoseFailure("invalid_client", "the relying party has no trust chain to this TA")
    verify(token, superior_jwks, code="invalid_client", typ=ES_TYP)
    meta = claims.get("metadata", {}).get("openid_relying_party")
    if not isinstance(meta, dict):
        raise JoseFailure("invalid_client", "no openid_relying_party metadata")
    _check_rp_policy(meta, client_id)
    state.rp_cache[client_id] = (min(exp, time.time() + 600), meta)
    return meta


# --- the OpenID providers ------------------------------------------------------------------


def _op_configuration(state: State, op: Provider) -> str:
    now = int(time.time())
    e = op.entity_id
    meta = {
        "issuer": e,
        "authorization_endpoint": op.endpoint("authorization"),
        "token_endpoint": op.endpoint("token"),
        "userinfo_endpoint": op.endpoint("userinfo"),
        "introspection_endpoint": op.endpoint("introspection"),
        "revocation_endpoint": op.endpoint("revocation"),
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "offline_access"]
        + (["profile", "email"] if op.scheme == "cie" else []),
        "response_types_supported": ["code"],
        "response_modes_supported": ["form_post", "query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "acr_values_supported": list(ACR),
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256", "RS512"],
        "userinfo_signing_alg_values_supported": ["RS256", "RS512"],
        "userinfo_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256"],
        "userinfo_encryption_enc_values_supported": ["A128CBC-HS256", "A256CBC-HS512", "A256GCM"],
        "request_object_signing_alg_values_supported": _SIG,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": _SIG,
        "claims_parameter_supported": True,
        "request_parameter_supported": True,
        "authorization_response_iss_parameter_supported": True,
        "client_registration_types_supported": ["automatic"],
        "request_authentication_methods_supported": {"authorization_endpoint": ["request_object"]},
        "jwks": {"keys": [op.core.jwk]},
    }
    claims = {
        "iss": e,
        "sub": e,
        "iat": now,
        "exp": now + STATEMENT_LIFETIME,
        "jwks": {"keys": [op.federation.jwk]},
        "authority_hints": [state.ta_id],
        "trust_marks": [_trust_mark(state, e, "openid_provider")],
        "metadata": {
            "openid_provider": meta,
            "federation_entity": {
                "organization_name": f"{op.label} (sandbox)",
                "homepage_uri": state.base,
                "policy_uri": f"{e}/policy",
                "logo_uri": f"{e}/logo.svg",
                "contacts": ["op@example.org"],
                "federation_resolve_endpoint": f"{state.ta_id}/resolve",
            },
        },
    }
    return op.federation.sign(claims, typ=ES_TYP)


def _op(request: web.Request) -> Provider:
    op = request.app[STATE].ops.get(request.match_info["op"])
    if op is None:
        raise web.HTTPNotFound()
    return op


async def op_configuration(request: web.Request) -> web.Response:
    return _jwt(_op_configuration(request.app[STATE], _op(request)))


def _redirect(uri: str, params: dict[str, str]) -> web.Response:
    sep = "&" if "?" in uri else "?"
    return web.Response(status=302, headers={"Location": uri + sep + urlencode(params)})


def _bad_request(code: str, description: str) -> web.Response:
    html = pages.error_page("Richiesta non valida", code, description)
    return web.Response(
        status=400, text=html, content_type="text/html", headers={"X-Sandbox-Error": code}
    )


async def authorization(request: web.Request) -> web.Response:
    state, op = request.app[STATE], _op(request)
    params = dict(await request.post()) if request.method == "POST" else dict(request.query)
    request_object = params.get("request")
    client_id = params.get("client_id")
    if not isinstance(request_object, str) or not isinstance(client_id, str):
        return _bad_request("invalid_request", "client_id and a signed request object are required")
    try:
        _header, unsigned = unverified(request_object)
    except JoseFailure as exc:
        return _bad_request("invalid_request_object", exc.description)
    if str(unsigned.get("client_id", "")) != client_id or unsigned.get("iss") != client_id:
        return _bad_request("invalid_request_object", "client_id/iss differ from the request's")
    try:
        meta = await _resolve_rp(request.app, client_id)
    except JoseFailure as exc:
        state.record("authorization_refused", op=op.scheme, client_id=client_id, error=exc.code)
        return _bad_request(exc.code, exc.description)
    redirect_uri = unsigned.get("redirect_uri")
    if redirect_uri not in meta["redirect_uris"]:
        return _bad_request("invalid_request", "redirect_uri is not one of the RP's redirect_uris")
    ro_state = str(unsigned.get("state", ""))

    def fail(code: str, description: str) -> web.Response:
        state.record("authorization_error", op=op.scheme, error=code)
        return _redirect(
            str(redirect_uri),
            {
                "error": code,
                "error_description": description,
                "state": ro_state,
                "iss": op.entity_id,
            },
        )

    try:
        ro = verify(
            request_object, meta["jwks"], code="invalid_request_object", audience=op.entity_id
        )
    except JoseFailure as exc:
        return fail(exc.code, exc.description)
    if ro.get("iat") is None or ro["iat"] > time.time() + 60:
        return fail("invalid_request_object", "iat missing or in the future")
    if ro.get("response_type") != "code" or params.get("response_type", "code") != "code":
        return fail("unsupported_response_type", "response_type must be code")
    scope = str(ro.get("scope", "")).split()
    if "openid" not in scope or params.get("scope") != ro.get("scope"):
        return fail("invalid_scope", "scope must contain openid and match the request object")
    if ro.get("code_challenge_method") != "S256" or not ro.get("code_challenge"):
        return fail("invalid_request", "PKCE S256 is required")
    if params.get("code_challenge", ro["code_challenge"]) != ro["code_challenge"]:
        return fail("invalid_request", "code_challenge differs from the request object's")
    if len(ro_state) < 32 or len(str(ro.get("nonce", ""))) < 32:
        return fail("invalid_request", "state and nonce need at least 32 characters")
    if ro.get("prompt") not in ("consent", "consent login"):
        return fail("invalid_request", "prompt must be consent or 'consent login'")
    acr_values = str(ro.get("acr_values", "")).split()
    if not acr_values or any(a not in ACR for a in acr_values):
        return fail("invalid_request", "acr_values must be SPID levels")
    claims = ro.get("claims") if isinstance(ro.get("claims"), dict) else {}
    txn = secrets.token_urlsafe(16)
    state.txns[txn] = Txn(
        op.scheme,
        client_id,
        str(redirect_uri),
        ro_state,
        str(ro["nonce"]),
        str(ro["code_challenge"]),
        scope,
        acr_values,
        claims or {},
    )
    state.record("authorization", op=op.scheme, client_id=client_id, txn=txn)
    people = [i for i in DEFAULT_IDENTITIES if op.scheme == "spid" or i.has_cie]
    html = pages.login_page(
        op.label, op.endpoint("login"), txn, client_id, people, min(ACR[a] for a in acr_values)
    )
    return web.Response(text=html, content_type="text/html", headers={"X-Sandbox-Txn": txn})


def _txn(request: web.Request, form: Any) -> Txn:
    txn = request.app[STATE].txns.get(str(form.get("txn", "")))
    if txn is None or txn.op != request.match_info["op"]:
        raise web.HTTPBadRequest(text="unknown or finished login", content_type="text/plain")
    return txn


def _identity(code: str | None) -> TestIdentity | None:
    return next((i for i in DEFAULT_IDENTITIES if i.code == code), None)


def _release(txn: Txn, identity: TestIdentity) -> dict[str, Any]:
    """The user claims the RP asked for (``claims.userinfo``; CIE also ``profile``/``email``
    scopes), from the identity's SPID attributes."""
    attrs = identity.attribute_map()
    available: dict[str, Any] = {
        "given_name": attrs.get("name"),
        "family_name": attrs.get("familyName"),
        "birthdate": attrs.get("dateOfBirth"),
        "gender": attrs.get("gender"),
        "place_of_birth": {
            "region": attrs.get("countyOfBirth"),
            "locality": attrs.get("placeOfBirth"),
        }
        if attrs.get("placeOfBirth")
        else None,
        "email": attrs.get("email"),
        "email_verified": True if attrs.get("email") else None,
        "phone_number": attrs.get("mobilePhone"),
        PREFIX + "fiscal_number": attrs.get("fiscalNumber"),
        PREFIX + "spid_code": attrs.get("spidCode"),
        PREFIX + "company_name": attrs.get("companyName"),
        PREFIX + "company_fiscal_number": attrs.get("companyFiscalNumber"),
        PREFIX + "vat_number": attrs.get("ivaCode"),
        PREFIX + "e_delivery_service": attrs.get("digitalAddress"),
        PREFIX + "eid_exp_date": attrs.get("expirationDate"),
    }
    wanted = set((txn.claims.get("userinfo") or {}).keys())
    if txn.op == "cie" and "profile" in txn.scope:
        wanted |= {"given_name", "family_name", "birthdate", PREFIX + "fiscal_number"}
    if txn.op == "cie" and "email" in txn.scope:
        wanted |= {"email", "email_verified"}
    return {k: v for k, v in available.items() if k in wanted and v is not None}


async def login(request: web.Request) -> web.Response:
    state, op = request.app[STATE], _op(request)
    form = await request.post()
    txn = _txn(request, form)
    back = {"state": txn.state, "iss": op.entity_id}
    identity = _identity(str(form.get("identity", "")))
    if form.get("cancel") or identity is None or (op.scheme == "cie" and not identity.has_cie):
        del state.txns[str(form["txn"])]
        return _redirect(
            txn.redirect_uri,
            {"error": "access_denied", "error_description": "login cancelled", **back},
        )
    if identity.max_level < min(ACR[a] for a in txn.acr_values):
        del state.txns[str(form["txn"])]
        return _redirect(
            txn.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "credentials below the level asked",
                **back,
            },
        )
    txn.identity = identity.code
    html = pages.consent_page(
        op.label,
        op.endpoint("consent"),
        str(form["txn"]),
        txn.client_id,
        sorted(_release(txn, identity)),
    )
    return web.Response(text=html, content_type="text/html")


async def consent(request: web.Request) -> web.Response:
    state, op = request.app[STATE], _op(request)
    form = await request.post()
    txn = _txn(request, form)
    del state.txns[str(form["txn"])]
    iss = op.entity_id
    if "mixup_iss" in state.faults:
        iss = next(o.entity_id for o in state.ops.values() if o is not op)
    if form.get("decision") != "accept" or txn.identity is None:
        return _redirect(
            txn.redirect_uri,
            {
                "error": "access_denied",
                "error_description": "consent denied",
                "state": txn.state,
                "iss": iss,
            },
        )
    code = secrets.token_urlsafe(32)
    state.grants[code] = Grant(txn, time.time())
    state.record("code", op=op.scheme, client_id=txn.client_id)
    return _redirect(txn.redirect_uri, {"code": code, "state": txn.state, "iss": iss})


async def _client(request: web.Request, form: Any, audience: list[str]) -> str:
    """The client_id whose ``private_key_jwt`` assertion verifies (RP keys from its chain)."""
    state = request.app[STATE]
    client_id = form.get("client_id")
    assertion = form.get("client_assertion")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not isinstance(assertion, str):
        raise JoseFailure("invalid_client", "private_key_jwt client authentication is required")
    if not isinstance(client_id, str):
        _h, unsigned = unverified(assertion)
        client_id = str(unsigned.get("iss", ""))
    meta = await _resolve_rp(request.app, client_id)
    claims = verify(assertion, meta["jwks"], code="invalid_client", audience=audience)
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise JoseFailure("invalid_client", "client assertion iss and sub must be the client_id")
    jti = claims.get("jti")
    if not isinstance(jti, str) or jti in state.assertion_jtis:
        raise JoseFailure("invalid_client", "client assertion jti missing or reused")
    state.assertion_jtis.add(jti)
    return client_id


def _sub(identity: str, client_id: str, op: Provider) -> str:
    return hashlib.sha256(f"{op.entity_id}|{client_id}|{identity}".encode()).hexdigest()


def _signer(state: State, op: Provider) -> SigningKey:
    return op.rogue if "op_key_outside_chain" in state.faults else op.core


async def token(request: web.Request) -> web.Response:
    state, op = request.app[STATE], _op(request)
    form = await request.post()
    try:
        client_id = await _client(request, form, [op.endpoint("token"), op.entity_id])
    except JoseFailure as exc:
        return _problem(401 if exc.code == "invalid_client" else 400, exc.code, exc.description)
    if form.get("grant_type") != "authorization_code":
        return _problem(400, "unsupported_grant_type", "only authorization_code is supported here")
    grant = state.grants.get(str(form.get("code", "")))
    if grant is None or grant.txn.op != op.scheme or grant.txn.client_id != client_id:
        return _problem(400, "invalid_grant", "unknown code")
    if grant.used:  # a replayed code: refuse, and revoke what the first use obtained
        state.revoked_tokens.update(grant.tokens)
        state.record("code_reuse", op=op.scheme, client_id=client_id)
        return _problem(400, "invalid_grant", "the code was already used")
    grant.used = True
    if time.time() - grant.issued > 60:
        return _problem(400, "invalid_grant", "the code has expired")
    verifier = str(form.get("code_verifier", ""))
    if b64url(hashlib.sha256(verifier.encode()).digest()) != grant.txn.challenge:
        return _problem(400, "invalid_grant", "code_verifier does not match the code_challenge")
    identity = grant.txn.identity or ""
    sub = _sub(identity, client_id, op)
    now = int(time.time())
    signer = _signer(state, op)
    jti = str(uuid.uuid4())
    access = signer.sign(
        {
            "iss": op.entity_id,
            "sub": sub,
            "aud": [op.endpoint("userinfo")],
            "client_id": client_id,
            "scope": " ".join(grant.txn.scope),
            "jti": jti,
            "iat": now,
            "exp": now + 1800,
        },
        typ="at+jwt",
    )
    user = _identity(identity)
    level = min(ACR[a] for a in grant.txn.acr_values)
    level = max(level, 2) if user and user.max_level >= 2 else level
    acr = (
        "https://www.spid.gov.it/SpidL1"
        if "downgrade_acr" in state.faults
        else f"https://www.spid.gov.it/SpidL{level}"
    )
    digest = hashlib.sha256(access.encode()).digest()
    id_claims: dict[str, Any] = {
        "iss": op.entity_id,
        "sub": sub,
        "aud": client_id,
        "acr": acr,
        "at_hash": b64url(digest[:16]),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "nonce": grant.txn.nonce,
    }
    if "oversize_id_token" in state.faults:
        id_claims["padding"] = "x" * (70 * 1024)
    if "id_token_alg_none" in state.faults:
        id_token = forge(id_claims, "none", op.core.kid, None)
    elif "id_token_hs256" in state.faults:
        public_pem = op.core.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        id_token = forge(id_claims, "HS256", op.core.kid, public_pem)
    else:
        id_token = signer.sign(id_claims)
    state.access[jti] = grant
    grant.tokens.append(jti)
    state.record("token", op=op.scheme, client_id=client_id)
    return web.json_response(
        {"access_token": access, "token_type": "Bearer", "expires_in": 1800, "id_token": id_token}
    )


async def userinfo(request: web.Request) -> web.Response:
    state, op = request.app[STATE], _op(request)
    if request.method == "POST" and op.scheme == "spid":
        return _problem(405, "invalid_request", "SPID userinfo answers GET only")
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return _problem(401, "invalid_token", "a Bearer access token is required")
    try:
        claims = verify(
            auth[7:],
            {"keys": [op.core.jwk]},
            code="invalid_token",
            audience=op.endpoint("userinfo"),
        )
    except JoseFailure as exc:
        return _problem(401, exc.code, exc.description)
    grant = state.access.get(str(claims.get("jti")))
    if grant is None or claims["jti"] in state.revoked_tokens or claims.get("iss") != op.entity_id:
        return _problem(401, "invalid_token", "the access token is revoked or unknown")
    user = _identity(grant.txn.identity)
    if user is None:
        return _problem(401, "invalid_token", "no user")
    meta = await _resolve_rp(request.app, grant.txn.client_id)
    enc_key = next(
        (k for k in meta["jwks"]["keys"] if k.get("use") == "enc" and k.get("kty") == "RSA"), None
    )
    if enc_key is None:
        return _problem(400, "invalid_client", "the RP publishes no RSA encryption key")
    now = int(time.time())
    body = {
        "iss": op.entity_id,
        "aud": grant.txn.client_id,
        "sub": claims["sub"],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **_release(grant.txn, user),
    }
    signed = _signer(state, op).sign(body)
    try:
        jwe = encrypt(
            signed,
            enc_key,
            str(meta.get("userinfo_encrypted_response_alg", "RSA-OAEP")),
            str(meta.get("userinfo_encrypted_response_enc", "A256CBC-HS512")),
        )
    except JoseFailure as exc:
        return _problem(400, exc.code, exc.description)
    if "tamper_userinfo" in state.faults:
        parts = jwe.split(".")
        ciphertext = parts[3]
        parts[3] = ("B" if ciphertext[0] == "A" else "A") + ciphertext[1:]
        jwe = ".".join(parts)
    state.record("userinfo", op=op.scheme, client_id=grant.txn.client_id)
    return web.Response(text=jwe, content_type="application/jose")


async def revocation(request: web.Request) -> web.Response:
    state, op = request.app[STATE], _op(request)
    form = await request.post()
    try:
        client_id = await _client(request, form, [op.endpoint("revocation"), op.entity_id])
    except JoseFailure as exc:
        state.record("revocation_refused", op=op.scheme, error=exc.code)
        return _problem(401, exc.code, exc.description)
    token_value = form.get("token")
    if not isinstance(token_value, str):
        return _problem(400, "invalid_request", "token is required")
    # only a token this OP signed, issued to this client, is revoked (RFC 7009 2.1); an
    # unknown, foreign or already revoked token gets 200 all the same (rules: no information
    # is released)
    try:
        claims = verify(token_value, {"keys": [op.core.jwk, op.rogue.jwk]}, code="invalid_token")
    except JoseFailure:
        claims = {}
    jti = str(claims.get("jti", ""))
    grant = state.access.get(jti)
    revoked = grant is not None and grant.txn.client_id == client_id
    if revoked:
        state.revoked_tokens.add(jti)
    state.record("revocation", op=op.scheme, client_id=client_id, jti=jti, revoked=revoked)
    return web.Response(status=200)


# --- control -------------------------------------------------------------------------------


async def register(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _problem(400, "invalid_request", "the body must be JSON")
    entity_id = body.get("entity_id") if isinstance(body, dict) else None
    entity_type = (
        body.get("entity_type", "openid_relying_party") if isinstance(body, dict) else None
    )
    if not isinstance(entity_id, str) or not entity_id.startswith(("http://", "https://")):
        return _problem(400, "invalid_request", "entity_id must be an http(s) URL")
    if entity_type not in ("openid_relying_party", "federation_entity"):
        return _problem(
            400, "invalid_request", "entity_type must be openid_relying_party or federation_entity"
        )
    try:
        claims = _self_signed(await _fetch_configuration(request.app, entity_id), entity_id)
    except JoseFailure as exc:
        return _problem(400, exc.code, exc.description)
    hints = [str(h).rstrip("/") for h in claims.get("authority_hints") or []][:10]
    key = entity_id.rstrip("/")
    if state.ta_id not in hints:
        # an RP under a registered intermediate: the TA issues its trust mark once the
        # intermediate's statement vouches for the RP's keys; it stays the intermediate's
        # subordinate (the TA's fetch does not answer for it)
        via = None
        if entity_type == "openid_relying_party":
            try:
                via = await _via_intermediate(request.app, entity_id, hints)
                if via is not None:
                    token = await _fetch_configuration(request.app, entity_id)
                    verify(token, via[0], code="invalid_client", typ=ES_TYP)
            except JoseFailure as exc:
                return _problem(400, exc.code, exc.description)
            except (aiohttp.ClientError, TimeoutError) as exc:
                return _problem(400, "temporarily_unavailable", type(exc).__name__)
        if via is None:
            return _problem(
                400,
                "invalid_request",
                "authority_hints must name this trust anchor or a registered intermediate",
            )
        state.aggregated[key] = next(h for h in hints if h in state.subordinates)
        state.rp_cache.pop(entity_id, None)
        state.record("register", entity_id=entity_id, entity_type=entity_type, via="intermediate")
        return web.json_response(
            {
                "entity_id": entity_id,
                "trust_marks": [_trust_mark(state, entity_id, _role(entity_type))],
            }
        )
    state.subordinates[key] = Subordinate(entity_id, entity_type, claims["jwks"])
    state.rp_cache.pop(entity_id, None)
    state.record("register", entity_id=entity_id, entity_type=entity_type)
    return web.json_response(
        {"entity_id": entity_id, "trust_marks": [_trust_mark(state, entity_id, _role(entity_type))]}
    )


async def faults(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if request.method == "DELETE":
        state.faults.clear()
        state.rp_cache.clear()
    elif request.method == "POST":
        try:
            names = (await request.json()).get("faults")
        except (ValueError, AttributeError):
            names = None
        if not isinstance(names, list) or any(n not in FAULT_NAMES for n in names):
            return _problem(400, "invalid_request", f"faults must be a list of {FAULT_NAMES}")
        state.faults.update(names)
        state.rp_cache.clear()
    return web.json_response({"faults": sorted(state.faults), "available": list(FAULT_NAMES)})


async def reset(request: web.Request) -> web.Response:
    state = request.app[STATE]
    ops = {o.entity_id for o in state.ops.values()}
    state.subordinates = {k: v for k, v in state.subordinates.items() if v.entity_id in ops}
    for name in (
        "faults",
        "revoked_marks",
        "txns",
        "grants",
        "access",
        "revoked_tokens",
        "assertion_jtis",
        "aggregated",
        "rp_cache",
    ):
        getattr(state, name).clear()
    state.log.clear()
    return web.json_response({"reset": True})


async def identities(request: web.Request) -> web.Response:
    return web.json_response(
        [
            {"code": i.code, "label": i.label, "max_level": i.max_level, "cie": i.has_cie}
            for i in DEFAULT_IDENTITIES
        ]
    )


async def log(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE].log)


def create_app(base_url: str = "http://127.0.0.1:8106") -> web.Application:
    base = base_url.rstrip("/")
    app = platform_app("oidc", "SPID/CIE OpenID Connect Federation: trust anchor, CIE and SPID OPs")
    ops = {
        scheme: Provider(
            scheme,
            label,
            f"{base}/{scheme}",
            SigningKey.generate(),
            SigningKey.generate(),
            SigningKey.generate(),
        )
        for scheme, label in (("cie", "CIE id"), ("spid", "SPID"))
    }
    state = State(base, f"{base}/ta", SigningKey.generate(), SigningKey.generate(), ops)
    for op in ops.values():
        state.subordinates[op.entity_id] = Subordinate(
            op.entity_id, "openid_provider", {"keys": [op.federation.jwk]}
        )
    app[STATE] = state

    async def http_session(app: web.Application):  # type: ignore[no-untyped-def]
        app[SESSION] = aiohttp.ClientSession()
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(http_session)
    wk = "/.well-known/openid-federation"
    app.router.add_get("/ta" + wk, ta_configuration)
    app.router.add_get("/ta/fetch", ta_fetch)
    app.router.add_get("/ta/list", ta_list)
    app.router.add_get("/ta/resolve", ta_resolve)
    app.router.add_route("*", "/ta/trust_mark_status", ta_trust_mark_status)
    app.router.add_get("/ta/trust_mark", ta_trust_mark)
    op_path = "/{op:cie|spid}"
    app.router.add_get(op_path + wk, op_configuration)
    app.router.add_route("GET", op_path + "/authorization", authorization)
    app.router.add_route("POST", op_path + "/authorization", authorization)
    app.router.add_post(op_path + "/login", login)
    app.router.add_post(op_path + "/consent", consent)
    app.router.add_post(op_path + "/token", token)
    app.router.add_route("GET", op_path + "/userinfo", userinfo)
    app.router.add_route("POST", op_path + "/userinfo", userinfo)
    app.router.add_post(op_path + "/revocation", revocation)
    app.router.add_post("/__sandbox/register", register)
    app.router.add_route("*", "/__sandbox/faults", faults)
    app.router.add_post("/__sandbox/reset", reset)
    app.router.add_get("/__sandbox/identities", identities)
    app.router.add_get("/__sandbox/log", log)
    return app
