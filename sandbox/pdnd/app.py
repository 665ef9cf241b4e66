"""Sandbox twin of the PDND Interoperabilità token server.

Routes (real):
- ``POST /token.oauth2``: form-encoded client-credentials grant with a signed client
  assertion. Every check of the real server is applied and every failure gets the real,
  deliberately uninformative answer: 400 ``015-0008`` with a fresh ``correlationId``.
- ``GET /.well-known/jwks.json``: the key that signs vouchers.
- ``GET /keys/{kid}``: a client's public key as a JWK (what providers fetch to check an
  ``Agid-JWT-Signature``; the real Interop API wants a voucher, the sandbox does not).

Routes (sandbox only, under ``/__sandbox``):
- ``GET /__sandbox/diagnostics/{correlationId}``: the real reason of an answer.
- ``POST /__sandbox/clients``: register a client, key and purposes at run time.
- ``GET /__sandbox/clients``: the registered clients.
- ``POST /__sandbox/faults``: make the next token calls fail with 400 (the real ``015-0008``
  answer), 429 (the real rate-limit answer and headers) or a 5xx (``015-0000``).

``create_app(...)`` takes the knobs; ``app[PDND_STATE]`` is the ``PdndSandbox`` behind it,
for in-process tests and sibling sandboxes (ANPR).
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qs

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from ..common import platform_app
from .hosts import SANDBOX_ASSERTION_AUDIENCE, SANDBOX_ISSUER
from .keys import (
    InvalidKeyError,
    generate_key,
    jwk_thumbprint,
    load_private_key,
    load_public_key,
    public_jwk,
    public_pem_from_upload,
)

__all__ = [
    "BAD_REQUEST_BODY",
    "PDND_STATE",
    "PdndSandbox",
    "SandboxClient",
    "create_app",
]

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HEADER_KEYS = frozenset({"kid", "alg", "typ"})
PAYLOAD_CLAIMS = frozenset({"iss", "sub", "aud", "jti", "iat", "exp", "purposeId", "digest"})
REQUIRED_CLAIMS = ("iss", "sub", "aud", "jti", "iat", "exp", "purposeId")
MIN_LIFESPAN, MAX_LIFESPAN = 60, 86_400
_KID = re.compile(r"^[A-Za-z0-9_-]{43}$")
_HEX = re.compile(r"^[0-9a-fA-F]*$")
_PROBLEM = "application/problem+json"

#: The body of every refused token request, except ``correlationId`` (added per answer).
BAD_REQUEST_BODY: dict[str, Any] = {
    "title": "The request contains bad syntax or cannot be fulfilled.",
    "type": "about:blank",
    "status": 400,
    "detail": "Bad request",
    "errors": [{"code": "015-0008", "detail": "Unable to generate a token for the given request"}],
}
_INTERNAL_ERROR_BODY: dict[str, Any] = {
    "title": "The request couldn't be fulfilled due to an internal error",
    "type": "internalServerError",
    "status": 500,
    "detail": "Internal server error",
    "errors": [
        {
            "code": "015-0000",
            "detail": "Unable to generate a token for the given request due to an internal error",
        }
    ],
}


def _is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass
class SandboxClient:
    """A PDND client of kind e-service: id, public keys by ``kid``, linked purposes.

    ``purposes`` maps a ``purposeId`` to the audience of its e-service (what the voucher's
    ``aud`` will be: a string, or a list as PDND descriptors allow).
    """

    client_id: str
    keys: dict[str, bytes | str] = field(default_factory=dict)
    purposes: dict[str, str | list[str]] = field(default_factory=dict)

    @classmethod
    def with_key(
        cls, client_id: str, public_pem: bytes | str, purposes: Mapping[str, str | list[str]]
    ) -> SandboxClient:
        """A client with one key whose ``kid`` is computed (PDND assigns it the same way)."""
        pem = public_pem_from_upload(public_pem)
        return cls(client_id, {jwk_thumbprint(pem): pem}, dict(purposes))


@dataclass
class _Registered:
    client_id: str
    keys: dict[str, rsa.RSAPublicKey]
    purposes: dict[str, str | list[str]]


class _Refused(Exception):
    def __init__(self, errors: list[tuple[str, str]], context: dict[str, Any]) -> None:
        super().__init__(errors[0][0])
        self.errors = errors
        self.context = context


class _Bucket:
    """Token bucket: ``limit`` requests, refilled evenly over ``interval`` seconds."""

    def __init__(self, limit: int, interval: float, now: float) -> None:
        self.limit = limit
        self.interval = interval
        self.tokens = float(limit)
        self.updated = now

    def take(self, now: float) -> tuple[bool, int]:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit), self.tokens + elapsed * self.limit / self.interval)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, math.floor(self.tokens)
        return False, 0


class PdndSandbox:
    """State of one sandbox token server (clients, signing key, limits, diagnostics)."""

    def __init__(
        self,
        *,
        clients: Sequence[SandboxClient] = (),
        issuer: str = SANDBOX_ISSUER,
        assertion_audience: str | Sequence[str] = SANDBOX_ASSERTION_AUDIENCE,
        voucher_lifespan: int = 600,
        rate_limit: tuple[int, float] | None = (1000, 60.0),
        clock: Callable[[], float] | None = None,
        signing_key_pem: bytes | None = None,
        clock_tolerance: int = 0,
        max_diagnostics: int = 1000,
    ) -> None:
        if not MIN_LIFESPAN <= voucher_lifespan <= MAX_LIFESPAN:
            raise ValueError(f"voucher_lifespan must be {MIN_LIFESPAN}-{MAX_LIFESPAN} seconds")
        if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
            raise ValueError("rate_limit must be (requests >= 1, interval seconds > 0)")
        self.issuer = issuer
        self.assertion_audiences = (
            [assertion_audience]
            if isinstance(assertion_audience, str)
            else list(assertion_audience)
        )
        self.voucher_lifespan = voucher_lifespan
        self.rate_limit = rate_limit
        self.clock: Callable[[], float] = clock or time.time
        self.clock_tolerance = clock_tolerance
        self.max_diagnostics = max_diagnostics
        pem = signing_key_pem if signing_key_pem is not None else generate_key()[0]
        self.signing_key = load_private_key(pem)
        self.signing_kid = jwk_thumbprint(self.signing_key.public_key())
        self.clients: dict[str, _Registered] = {}
        self.diagnostics: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.token_requests = 0
        self.vouchers_issued = 0
        self.pending_faults: list[int] = []
        self._buckets: dict[str, _Bucket] = {}
        for client in clients:
            self.register(client)

    # -- registry ------------------------------------------------------------------------

    def register(self, client: SandboxClient) -> None:
        """Add a client, or add keys and purposes to an existing one.

        ``ValueError`` for a non-UUID id or purpose, or a ``kid`` that is not the key's
        thumbprint (PDND computes the kid itself).
        """
        if not _is_uuid(client.client_id):
            raise ValueError("client_id must be a UUID, as PDND assigns")
        keys: dict[str, rsa.RSAPublicKey] = {}
        for kid, pem in client.keys.items():
            try:
                key_pem = public_pem_from_upload(pem)
            except InvalidKeyError as exc:
                raise ValueError(f"key {kid!r}: {exc}") from exc
            if jwk_thumbprint(key_pem) != kid:
                raise ValueError(f"kid {kid!r} is not the RFC 7638 thumbprint of its key")
            keys[kid] = load_public_key(key_pem)
        for purpose_id, audience in client.purposes.items():
            if not _is_uuid(purpose_id):
                raise ValueError(f"purpose {purpose_id!r} is not a UUID")
            if not audience or not isinstance(audience, str | list):
                raise ValueError(f"purpose {purpose_id!r} needs an e-service audience")
        entry = self.clients.setdefault(client.client_id, _Registered(client.client_id, {}, {}))
        entry.keys.update(keys)
        entry.purposes.update(client.purposes)

    def key_by_kid(self, kid: str) -> rsa.RSAPublicKey | None:
        for entry in self.clients.values():
            if kid in entry.keys:
                return entry.keys[kid]
        return None

    def jwks(self) -> dict[str, Any]:
        jwk = public_jwk(self.signing_key.public_key())
        return {"keys": [{**jwk, "kid": self.signing_kid, "alg": "RS256", "use": "sig"}]}

    # -- diagnostics ---------------------------------------------------------------------

    def _record(self, correlation_id: str, entry: dict[str, Any]) -> None:
        self.diagnostics[correlation_id] = {"correlationId": correlation_id, **entry}
        while len(self.diagnostics) > self.max_diagnostics:
            self.diagnostics.popitem(last=False)

    def diagnosis(self, correlation_id: str) -> dict[str, Any] | None:
        return self.diagnostics.get(correlation_id)

    # -- token endpoint ------------------------------------------------------------------

    def _take(self, client_id: str, now: float) -> tuple[bool, dict[str, str]]:
        if self.rate_limit is None:
            return True, {}
        limit, interval = self.rate_limit
        bucket = self._buckets.setdefault(client_id, _Bucket(limit, interval, now))
        allowed, remaining = bucket.take(now)
        return allowed, {
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Interval": str(int(interval * 1000)),
            "X-Rate-Limit-Remaining": str(remaining),
        }

    def issue(self, client_id: str, purpose_id: str, digest: Any, now: float) -> str:
        """Sign a voucher (RS256, ``typ at+jwt``, ``use sig``) for a validated request."""
        entry = self.clients[client_id]
        issued_at = int(now)
        payload: dict[str, Any] = {
            "jti": str(uuid.uuid4()),
            "iss": self.issuer,
            "aud": entry.purposes[purpose_id],
            "client_id": client_id,
            "sub": client_id,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self.voucher_lifespan,
            "purposeId": purpose_id,
        }
        if digest is not None:
            payload["digest"] = digest
        self.vouchers_issued += 1
        return jwt.encode(
            payload,
            self.signing_key,
            algorithm="RS256",
            headers={"use": "sig", "typ": "at+jwt", "kid": self.signing_kid},
        )

    def validate(
        self, content_type: str, raw_body: bytes, now: float
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Check a token request; ``(client_id, header, payload)`` or ``_Refused``."""
        context: dict[str, Any] = {}

        def refuse(code: str, detail: str) -> NoReturn:
            raise _Refused([(code, detail)], context)

        if content_type != "application/x-www-form-urlencoded":
            refuse("invalidContentType", f"Content-Type {content_type!r} is not form-encoded")
        try:
            form = parse_qs(raw_body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            refuse("malformedForm", "the body is not a valid form-encoded string")
        for name, values in form.items():
            if len(values) > 1:
                refuse("duplicateParameter", f"parameter {name!r} given more than once")
        params = {name: values[0] for name, values in form.items()}
        form_client_id = params.get("client_id")
        context["clientId"] = form_client_id
        if "client_assertion" not in params:
            refuse("missingParameter", "client_assertion is missing")
        errors: list[tuple[str, str]] = []
        if params.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            errors.append(
                (
                    "invalidAssertionType",
                    f"client_assertion_type {params.get('client_assertion_type')!r}",
                )
            )
        if params.get("grant_type") != "client_credentials":
            errors.append(("invalidGrantType", f"grant_type {params.get('grant_type')!r}"))
        if form_client_id is not None and not _is_uuid(form_client_id):
            errors.append(("invalidClientIdFormat", "client_id is not a UUID"))
        if errors:
            raise _Refused(errors, context)

        assertion = params["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
            payload = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            refuse("invalidClientAssertionFormat", f"not a compact JWS: {type(exc).__name__}")
        context.update(kid=header.get("kid"), purposeId=payload.get("purposeId"))

        # Header: only kid, alg (RS256) and typ.
        extra = sorted(set(header) - HEADER_KEYS)
        if extra:
            errors.append(("unexpectedHeaderClaims", f"header keys not allowed: {extra}"))
        alg = header.get("alg")
        if alg is None:
            errors.append(("algorithmNotFound", "no alg in the header"))
        elif alg != "RS256":
            errors.append(("algorithmNotAllowed", f"alg {alg!r}; only RS256 is allowed"))
        kid = header.get("kid")
        if kid is None:
            errors.append(("kidNotFound", "no kid in the header"))
        elif not isinstance(kid, str) or not _KID.match(kid):
            errors.append(("invalidKidFormat", "kid is not a 43-character key thumbprint"))

        # Payload: only the allowed claims, the right types.
        extra = sorted(set(payload) - PAYLOAD_CLAIMS)
        if extra:
            errors.append(("unexpectedPayloadClaims", f"claims not allowed: {extra}"))
        missing = [name for name in REQUIRED_CLAIMS if name not in payload]
        if missing:
            errors.append(("missingClaims", f"missing claims: {missing}"))
        for name in ("iss", "sub", "jti", "purposeId"):
            if name in payload and (not isinstance(payload[name], str) or not payload[name]):
                errors.append(("invalidClaimType", f"{name} must be a non-empty string"))
        for name, code in (("iat", "issuedAtNotInteger"), ("exp", "expirationNotInteger")):
            if name in payload and type(payload[name]) is not int:
                errors.append((code, f"{name} must be an integer, got {payload[name]!r}"))
        sub = payload.get("sub")
        if isinstance(sub, str) and not _is_uuid(sub):
            errors.append(("invalidSubjectFormat", "sub is not a UUID"))
        if isinstance(sub, str) and form_client_id is not None and sub != form_client_id:
            errors.append(("invalidSubject", "sub differs from the client_id parameter"))
        if isinstance(sub, str) and payload.get("iss") != sub:
            errors.append(("invalidIssuer", "iss differs from sub (the client id)"))
        purpose_id = payload.get("purposeId")
        if isinstance(purpose_id, str) and not _is_uuid(purpose_id):
            errors.append(("invalidPurposeIdFormat", "purposeId is not a UUID"))
        aud = payload.get("aud")
        if "aud" in payload:
            if isinstance(aud, str):
                audiences = [aud]
            elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
                audiences = aud
            else:
                audiences = []
                errors.append(("invalidAudienceFormat", "aud must be a string or strings"))
            if audiences and not set(audiences) & set(self.assertion_audiences):
                errors.append(
                    ("invalidAudience", f"aud {aud!r}, expected {self.assertion_audiences[0]!r}")
                )
        if "digest" in payload:
            errors.extend(_digest_errors(payload["digest"]))
        if errors:
            raise _Refused(errors, context)

        # Client, key, purpose.
        client_id = str(payload["sub"])
        context["clientId"] = client_id
        entry = self.clients.get(client_id)
        if entry is None:
            refuse("clientNotFound", f"no client {client_id}")
        key = entry.keys.get(str(kid))
        if key is None:
            refuse("keyNotRegistered", f"kid {kid} is not a key of client {client_id}")
        if payload["purposeId"] not in entry.purposes:
            refuse(
                "purposeNotLinked", f"purpose {payload['purposeId']} is not linked to the client"
            )

        # Signature, then times.
        try:
            jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            refuse("invalidSignature", "the signature does not verify with the registered key")
        except jwt.PyJWTError as exc:
            refuse("invalidClientAssertionFormat", f"cannot verify: {type(exc).__name__}")
        iat, exp = payload["iat"], payload["exp"]
        if exp <= now:
            refuse("tokenExpired", f"exp {exp} is not after now ({int(now)})")
        if iat > now + self.clock_tolerance:
            refuse("issuedInTheFuture", f"iat {iat} is after now ({int(now)})")
        if exp <= iat:
            refuse("invalidLifetime", "exp is not after iat")
        return client_id, header, payload

    def _fault(self, status: int, correlation_id: str) -> web.Response:
        """An injected failure, with the body (and headers) the real server sends."""
        headers: dict[str, str] = {}
        if status == 400:
            body = {**BAD_REQUEST_BODY, "correlationId": correlation_id}
        elif status == 429:
            limit, interval = self.rate_limit or (1000, 60.0)
            headers = {
                "X-Rate-Limit-Limit": str(limit),
                "X-Rate-Limit-Interval": str(int(interval * 1000)),
                "X-Rate-Limit-Remaining": "0",
            }
            body = {
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": "Requests limit exceeded",
                "correlationId": correlation_id,
            }
        else:
            body = {**_INTERNAL_ERROR_BODY, "status": status, "correlationId": correlation_id}
        return web.json_response(body, status=status, headers=headers, content_type=_PROBLEM)

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        correlation_id = str(uuid.uuid4())
        now = self.clock()
        raw = await request.read()
        if self.pending_faults:
            status = self.pending_faults.pop(0)
            self._record(
                correlation_id,
                {"at": now, "status": status, "outcome": "fault", "reason": "injectedFault"},
            )
            return self._fault(status, correlation_id)
        try:
            client_id, header, payload = self.validate(request.content_type, raw, now)
        except _Refused as refused:
            self._record(
                correlation_id,
                {
                    "at": now,
                    "status": 400,
                    "outcome": "refused",
                    "reason": refused.errors[0][0],
                    "detail": refused.errors[0][1],
                    "errors": [{"code": c, "detail": d} for c, d in refused.errors],
                    **refused.context,
                },
            )
            body = {**BAD_REQUEST_BODY, "correlationId": correlation_id}
            return web.json_response(body, status=400, content_type=_PROBLEM)
        allowed, headers = self._take(client_id, now)
        if not allowed:
            self._record(
                correlation_id,
                {
                    "at": now,
                    "status": 429,
                    "outcome": "rateLimited",
                    "reason": "tooManyRequests",
                    "clientId": client_id,
                },
            )
            body = {
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": f"Requests limit exceeded for client {client_id}",
                "correlationId": correlation_id,
            }
            return web.json_response(body, status=429, headers=headers, content_type=_PROBLEM)
        voucher = self.issue(client_id, payload["purposeId"], payload.get("digest"), now)
        self._record(
            correlation_id,
            {
                "at": now,
                "status": 200,
                "outcome": "issued",
                "reason": "ok",
                "clientId": client_id,
                "kid": header.get("kid"),
                "purposeId": payload["purposeId"],
                "audited": "digest" in payload,
            },
        )
        headers["Cache-Control"] = "no-cache, no-store"
        return web.json_response(
            {"access_token": voucher, "token_type": "Bearer", "expires_in": self.voucher_lifespan},
            headers=headers,
        )


def _digest_errors(digest: Any) -> list[tuple[str, str]]:
    if not isinstance(digest, dict) or set(digest) != {"alg", "value"}:
        return [("invalidDigestFormat", "digest must be {alg, value}")]
    errors: list[tuple[str, str]] = []
    if digest["alg"] != "SHA256":
        errors.append(("invalidHashAlgorithm", f"digest.alg {digest['alg']!r}, expected SHA256"))
    value = digest["value"]
    if not isinstance(value, str) or not _HEX.match(value):
        errors.append(("invalidDigestFormat", "digest.value must be hexadecimal"))
    elif len(value) != 64:
        errors.append(("invalidHashLength", f"digest.value has {len(value)} characters, not 64"))
    return errors


PDND_STATE = web.AppKey("pdnd_sandbox", PdndSandbox)


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type=_PROBLEM,
    )


async def _token(request: web.Request) -> web.Response:
    return await request.app[PDND_STATE].token(request)


async def _jwks(request: web.Request) -> web.Response:
    return web.json_response(request.app[PDND_STATE].jwks())


async def _client_key(request: web.Request) -> web.Response:
    kid = request.match_info["kid"]
    key = request.app[PDND_STATE].key_by_kid(kid)
    if key is None:
        return _problem(404, "Not Found", f"no client key {kid}")
    return web.json_response({**public_jwk(key), "kid": kid, "alg": "RS256", "use": "sig"})


async def _diagnostics(request: web.Request) -> web.Response:
    found = request.app[PDND_STATE].diagnosis(request.match_info["correlation_id"])
    if found is None:
        return _problem(404, "Not Found", "no token request with this correlationId")
    return web.json_response(found)


async def _register_client(request: web.Request) -> web.Response:
    """``{"client_id", "public_key" (PEM or base64 PEM), "kid"?, "purposes": {id: aud}}``."""
    state = request.app[PDND_STATE]
    try:
        doc = await request.json()
    except ValueError:
        return _problem(400, "Bad Request", "the body must be JSON")
    if not isinstance(doc, dict):
        return _problem(400, "Bad Request", "the body must be a JSON object")
    client_id, public_key = doc.get("client_id"), doc.get("public_key")
    purposes = doc.get("purposes", {})
    if not isinstance(client_id, str) or not isinstance(public_key, str):
        return _problem(400, "Bad Request", "client_id and public_key (PEM) are required")
    if not isinstance(purposes, dict):
        return _problem(400, "Bad Request", "purposes must map purposeId to an audience")
    try:
        client = SandboxClient.with_key(client_id, public_key, purposes)
    except InvalidKeyError as exc:
        return _problem(400, "Bad Request", str(exc))
    (kid,) = client.keys
    if doc.get("kid") not in (None, kid):
        return _problem(400, "Bad Request", f"kid is not the key thumbprint (expected {kid})")
    try:
        state.register(client)
    except ValueError as exc:
        return _problem(400, "Bad Request", str(exc))
    entry = state.clients[client_id]
    return web.json_response(
        {
            "client_id": client_id,
            "kid": kid,
            "kids": sorted(entry.keys),
            "purposes": entry.purposes,
        },
        status=201,
    )


async def _list_clients(request: web.Request) -> web.Response:
    state = request.app[PDND_STATE]
    return web.json_response(
        [
            {"client_id": c.client_id, "kids": sorted(c.keys), "purposes": c.purposes}
            for c in state.clients.values()
        ]
    )


async def _faults(request: web.Request) -> web.Response:
    """``{"status": 400 | 429 | 500 | 502 | 503 | 504, "count": n}``: the next n token
    calls fail with that status and the real server's body for it."""
    try:
        doc = await request.json()
    except ValueError:
        return _problem(400, "Bad Request", "the body must be JSON")
    status = doc.get("status", 500) if isinstance(doc, dict) else None
    count = doc.get("count", 1) if isinstance(doc, dict) else None
    if (
        status not in (400, 429, 500, 502, 503, 504)
        or type(count) is not int
        or not 0 <= count <= 100
    ):
        return _problem(400, "Bad Request", "status must be 400/429/500/502/503/504, count 0-100")
    state = request.app[PDND_STATE]
    state.pending_faults = [status] * count
    return web.json_response({"pending": state.pending_faults})


def create_app(
    *,
    clients: list[SandboxClient] | None = None,
    issuer: str = SANDBOX_ISSUER,
    assertion_audience: str | Sequence[str] = SANDBOX_ASSERTION_AUDIENCE,
    voucher_lifespan: int = 600,
    rate_limit: tuple[int, float] | None = (1000, 60.0),
    clock: Callable[[], float] | None = None,
    signing_key_pem: bytes | None = None,
    clock_tolerance: int = 0,
) -> web.Application:
    """The PDND token-server sandbox app (see the module docstring for routes and knobs).

    ``rate_limit`` is ``(requests, interval_seconds)`` per client, refilled evenly (PDND
    sends the interval in milliseconds); ``None`` turns it off. ``clock`` returns Unix
    seconds. ``signing_key_pem`` fixes the voucher key (a new one is generated otherwise).
    ``clock_tolerance`` is how far in the future an assertion ``iat`` may be (0, like PDND).
    """
    state = PdndSandbox(
        clients=clients or [],
        issuer=issuer,
        assertion_audience=assertion_audience,
        voucher_lifespan=voucher_lifespan,
        rate_limit=rate_limit,
        clock=clock,
        signing_key_pem=signing_key_pem,
        clock_tolerance=clock_tolerance,
    )
    app = platform_app("pdnd", "PDND Interoperabilità token server")
    app[PDND_STATE] = state
    app.router.add_post("/token.oauth2", _token)
    app.router.add_get("/.well-known/jwks.json", _jwks)
    app.router.add_get("/keys/{kid}", _client_key)
    app.router.add_get("/__sandbox/diagnostics/{correlation_id}", _diagnostics)
    app.router.add_post("/__sandbox/clients", _register_client)
    app.router.add_get("/__sandbox/clients", _list_clients)
    app.router.add_post("/__sandbox/faults", _faults)
    return app
