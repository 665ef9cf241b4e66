"""``PdndClient`` gets vouchers from the PDND token server; ``ModiCaller`` signs e-service calls.

``PdndClient.voucher(purpose_id)`` signs a client assertion and trades it for a voucher
(``POST /token.oauth2``, form-encoded). Plain vouchers are cached per purpose until shortly
before they expire. A voucher bound to an audit digest (AUDIT_REST_02) is never cached:
each audited call has its own TrackingEvidence, so it needs its own voucher.

``ModiCaller`` is what an e-service connector (ANPR) uses: it builds ``Authorization``,
``Digest``, ``Agid-JWT-Signature`` and, for audited calls, ``Agid-JWT-TrackingEvidence``.
It is also a ``Signer``, so a ``BaseConnector`` re-signs every retry with a fresh ``jti``
and ``iat`` (and a fresh voucher when audited). See README.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from ..base import BaseConnector, Response
from ..errors import (
    ConnectorError,
    ProtocolError,
    RateLimited,
    SigningError,
    UpstreamError,
    error_from_response,
)
from ..retry import RetryPolicy, Sleep, parse_retry_after
from ..signing import OutgoingRequest
from .assertion import build_client_assertion, check_digest_hex
from .environments import PdndEnvironment
from .errors import TOKEN_REFUSED_CODE, InvalidKeyError, ModiSigningError, VoucherRefused
from .keys import jwk_thumbprint, load_private_key
from .modi import (
    DEFAULT_LIFETIME,
    DEFAULT_SKEW,
    AuditContext,
    digest_header,
    integrity_signature,
    modi_audience,
    sha256_hex,
    tracking_evidence,
)

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "ModiCaller",
    "PdndClient",
    "Voucher",
    "rate_limit_wait",
]

log = logging.getLogger("sportello.connectors.pdnd")

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_FORM = "application/x-www-form-urlencoded"
_EVERY_STATUS = frozenset(range(100, 600))
_MAX_PROBLEM_BYTES = 64 * 1024

PrivateKeyProvider = Callable[[], bytes | str]


@dataclass(frozen=True)
class Voucher:
    """A PDND voucher. ``token`` is a secret: it is left out of ``repr``.

    ``expires_at`` is on the hub's clock: the time the request was sent plus
    ``expires_in``, so a skewed clock does not make a voucher look expired or fresh.
    """

    token: str = field(repr=False)
    expires_at: float
    purpose_id: str
    expires_in: int
    token_type: str = "Bearer"
    digest_hex: str | None = None
    obtained_at: float = 0.0

    def is_fresh(self, now: float, margin: float = 0.0) -> bool:
        """Whether the voucher is still usable ``margin`` seconds from ``now``."""
        return now < self.expires_at - margin

    def unverified_claims(self) -> dict[str, Any]:
        """The voucher payload, not verified (for diagnostics: ``aud``, ``digest``...)."""
        return dict(jwt.decode(self.token, options={"verify_signature": False}))


def _problem(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body[:_MAX_PROBLEM_BYTES])
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _error_codes(problem: Mapping[str, Any]) -> list[str]:
    errors = problem.get("errors")
    if not isinstance(errors, list):
        return []
    return [str(e.get("code")) for e in errors if isinstance(e, dict) and "code" in e]


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    for key, value in headers.items():
        if key.lower() == name:
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def rate_limit_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait after a PDND 429.

    A ``Retry-After`` (or similar) header wins. Otherwise PDND's limiter refills
    ``X-Rate-Limit-Limit`` requests evenly over ``X-Rate-Limit-Interval`` milliseconds, so
    one request comes back after ``interval / limit``.
    """
    explicit = parse_retry_after(headers)
    if explicit is not None:
        return explicit
    interval_ms = _int_header(headers, "x-rate-limit-interval")
    limit = _int_header(headers, "x-rate-limit-limit")
    if interval_ms is None or interval_ms <= 0:
        return None
    return interval_ms / 1000.0 / max(limit or 1, 1)


class PdndClient(BaseConnector):
    """Client of the PDND token server (``/token.oauth2``).

    ``private_key`` returns the PEM (bytes or text, e.g. ``SecretRef.reveal``) of the
    client's private key. It is called whenever a JWT is signed, so a rotated key is
    picked up; the parsed key is kept while the PEM does not change. ``kid`` must be the
    thumbprint of that key, as PDND shows it.
    ``assertion_audience`` is the environment's ``.../client-assertion`` audience.
    ``clock`` returns Unix seconds; ``clock_skew`` back-dates ``iat`` of every JWT built.
    """

    platform = "pdnd"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        *,
        client_id: str,
        kid: str,
        private_key: PrivateKeyProvider,
        assertion_audience: str,
        clock: Callable[[], float] = time.time,
        clock_skew: int = DEFAULT_SKEW,
        assertion_lifetime: int = 600,
        refresh_margin: float = 60.0,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        parts = urlsplit(token_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("token_url must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("token_url must not have a query or fragment")
        directory, _, name = parts.path.rpartition("/")
        if not name:
            raise ValueError("token_url must end with the token endpoint, e.g. /token.oauth2")
        super().__init__(
            session,
            urlunsplit((parts.scheme, parts.netloc, directory, "", "")),
            retry=retry,
            timeout=timeout,
            sleep=sleep,
        )
        if not client_id or not assertion_audience:
            raise ValueError("client_id and assertion_audience are required")
        if clock_skew < 0 or assertion_lifetime < 60 or refresh_margin < 0:
            raise ValueError("invalid clock_skew, assertion_lifetime or refresh_margin")
        self.token_url = token_url
        self._token_path = name
        self.client_id = client_id
        self.kid = kid
        self.assertion_audience = assertion_audience
        self.clock = clock
        self.clock_skew = int(clock_skew)
        self.assertion_lifetime = int(assertion_lifetime)
        self.refresh_margin = float(refresh_margin)
        self._private_key = private_key
        self._loaded_key: tuple[bytes, rsa.RSAPrivateKey] | None = None
        self._cache: dict[str, Voucher] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def for_environment(
        cls,
        session: aiohttp.ClientSession,
        environment: PdndEnvironment,
        *,
        client_id: str,
        kid: str,
        private_key: PrivateKeyProvider,
        **kwargs: Any,
    ) -> PdndClient:
        """A client for Collaudo, Attestazione or Produzione (``environments.py``)."""
        return cls(
            session,
            environment.token_url,
            client_id=client_id,
            kid=kid,
            private_key=private_key,
            assertion_audience=environment.assertion_audience,
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"PdndClient(token_url={self.token_url!r}, client_id={self.client_id!r})"

    # -- keys and assertions ------------------------------------------------------------

    def signing_key(self) -> rsa.RSAPrivateKey:
        """The parsed private key; ``SigningError`` if unreadable or not matching ``kid``."""
        try:
            pem = self._private_key()
        except Exception as exc:
            raise SigningError(
                f"private key provider failed: {type(exc).__name__}", platform=self.platform
            ) from exc
        if not isinstance(pem, bytes | str) or not pem:
            raise SigningError("private key provider returned no key", platform=self.platform)
        raw = pem.encode("ascii") if isinstance(pem, str) else pem
        if self._loaded_key is not None and self._loaded_key[0] == raw:
            return self._loaded_key[1]
        try:
            key = load_private_key(raw)
        except InvalidKeyError as exc:
            raise SigningError(f"unusable private key: {exc}", platform=self.platform) from None
        if jwk_thumbprint(key.public_key()) != self.kid:
            # PDND would answer only "015-0008": say it here, where the cause is known.
            raise SigningError(
                "the configured kid is not the thumbprint of the private key "
                "(was the right public key uploaded to PDND?)",
                platform=self.platform,
            )
        self._loaded_key = (raw, key)
        return key

    def client_assertion(self, purpose_id: str, *, digest_hex: str | None = None) -> str:
        """A freshly signed client assertion for ``purpose_id``."""
        try:
            return build_client_assertion(
                client_id=self.client_id,
                kid=self.kid,
                private_key_pem=self.signing_key(),
                audience=self.assertion_audience,
                purpose_id=purpose_id,
                digest_hex=digest_hex,
                now=int(self.clock()) - self.clock_skew,
                lifetime=self.assertion_lifetime,
            )
        except ValueError as exc:
            raise SigningError(f"cannot build the client assertion: {exc}") from exc

    # -- vouchers -----------------------------------------------------------------------

    def _margin(self, voucher: Voucher) -> float:
        return min(self.refresh_margin, voucher.expires_in / 4)

    async def voucher(self, purpose_id: str, *, digest_hex: str | None = None) -> Voucher:
        """A voucher for ``purpose_id``.

        Without ``digest_hex`` a cached voucher is returned while it has more than
        ``refresh_margin`` seconds (at most a quarter of its lifetime) left; concurrent
        callers share one request. With ``digest_hex`` (an audited call) a new voucher is
        always requested, bound to that digest.
        """
        if not purpose_id:
            raise ValueError("purpose_id is required")
        if digest_hex is not None:
            try:
                check_digest_hex(digest_hex)
            except ValueError as exc:
                raise SigningError(str(exc), platform=self.platform) from exc
            return await self._fetch(purpose_id, digest_hex)
        cached = self._cache.get(purpose_id)
        if cached is not None and cached.is_fresh(self.clock(), self._margin(cached)):
            return cached
        lock = self._locks.setdefault(purpose_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(purpose_id)
            if cached is not None and cached.is_fresh(self.clock(), self._margin(cached)):
                return cached
            fresh = await self._fetch(purpose_id, None)
            self._cache[purpose_id] = fresh
            return fresh

    async def token(self, purpose_id: str) -> str:
        """The bearer token of a (cached) plain voucher."""
        return (await self.voucher(purpose_id)).token

    def token_provider(self, purpose_id: str) -> Callable[[], Awaitable[str]]:
        """A provider for ``BearerTokenSigner``, for e-services that need no ModI headers."""

        async def provide() -> str:
            return await self.token(purpose_id)

        return provide

    def invalidate(self, purpose_id: str | None = None) -> None:
        """Forget the cached voucher of ``purpose_id`` (all when ``None``), e.g. after a 401."""
        if purpose_id is None:
            self._cache.clear()
        else:
            self._cache.pop(purpose_id, None)

    async def _fetch(self, purpose_id: str, digest_hex: str | None) -> Voucher:
        sent_at = self.clock()
        form = urlencode(
            {
                "client_id": self.client_id,
                "client_assertion": self.client_assertion(purpose_id, digest_hex=digest_hex),
                "client_assertion_type": CLIENT_ASSERTION_TYPE,
                "grant_type": "client_credentials",
            }
        )
        response = await self.request(
            "POST",
            self._token_path,
            data=form.encode("ascii"),
            headers={"Content-Type": _FORM, "Accept": "application/json"},
            expected=(200,),
        )
        voucher = self._parse_voucher(response, purpose_id, digest_hex, sent_at)
        log.debug(
            "pdnd voucher for purpose %s (audited=%s, expires_in=%ds, attempts=%d)",
            purpose_id,
            digest_hex is not None,
            voucher.expires_in,
            response.attempts,
        )
        return voucher

    def _parse_voucher(
        self, response: Response, purpose_id: str, digest_hex: str | None, sent_at: float
    ) -> Voucher:
        doc = response.json()

        def bad(what: str) -> ProtocolError:
            # The body holds the token: it is not kept on the error.
            return ProtocolError(
                f"token response {what}", platform=self.platform, status=response.status
            )

        if not isinstance(doc, dict):
            raise bad("is not a JSON object")
        token = doc.get("access_token")
        expires_in = doc.get("expires_in")
        token_type = doc.get("token_type")
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n\0 "):
            raise bad("has no usable access_token")
        if type(expires_in) is not int or expires_in <= 0:
            raise bad("has no positive integer expires_in")
        if token_type != "Bearer":
            raise bad(f"has token_type {token_type!r}, expected 'Bearer'")
        return Voucher(
            token=token,
            expires_at=sent_at + expires_in,
            purpose_id=purpose_id,
            expires_in=expires_in,
            token_type=token_type,
            digest_hex=digest_hex,
            obtained_at=self.clock(),
        )

    async def _send(
        self, outgoing: OutgoingRequest, expected: frozenset[int], time_limit: float
    ) -> Response:
        """The base attempt, with the token server's own error answers mapped."""
        response = await super()._send(outgoing, _EVERY_STATUS, time_limit)
        if response.status in expected:
            return response
        raise self._token_error(response)

    def _token_error(self, response: Response) -> UpstreamError:
        problem = _problem(response.body)
        correlation = problem.get("correlationId")
        codes = _error_codes(problem)
        error = error_from_response(self.platform, response.status, response.headers, response.body)
        if error.request_id is None and isinstance(correlation, str) and correlation:
            error.request_id = correlation
        if response.status == 400 and TOKEN_REFUSED_CODE in codes:
            return VoucherRefused(
                "PDND refused the client assertion (015-0008, the cause is not disclosed: "
                "check kid, purposeId, aud, claims and clock, or quote the correlationId)",
                platform=self.platform,
                request_id=error.request_id,
                body=error.body,
            )
        if isinstance(error, RateLimited) and error.retry_after is None:
            error.retry_after = rate_limit_wait(response.headers)
        return error


# -- ModI -------------------------------------------------------------------------------

_scope_audit: ContextVar[AuditContext | None] = ContextVar("pdnd_modi_audit", default=None)
_scope_purpose: ContextVar[str | None] = ContextVar("pdnd_modi_purpose", default=None)


def _without(headers: dict[str, str], names: set[str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in names}


class ModiCaller:
    """Builds the PDND/ModI headers of one e-service call; usable as a ``Signer``.

    ``audience`` is the ModI ``aud`` (a fixed string, or a function of the call URL; by
    default the ANPR rule ``modi_audience``). ``purpose_id`` is the default purpose for
    ``sign``. With ``audit_required`` every call must carry an ``AuditContext`` (ANPR
    declares AUDIT_REST_02 on every e-service). See README.md for the ANPR example.
    """

    def __init__(
        self,
        pdnd: PdndClient,
        *,
        purpose_id: str | None = None,
        audience: str | Callable[[str], str] = modi_audience,
        audit_required: bool = False,
        default_content_type: str = "application/json",
        lifetime: int = DEFAULT_LIFETIME,
    ) -> None:
        self.pdnd = pdnd
        self.purpose_id = purpose_id
        self.audience = audience
        self.audit_required = audit_required
        self.default_content_type = default_content_type
        self.lifetime = lifetime

    def __repr__(self) -> str:
        return f"ModiCaller(client_id={self.pdnd.client_id!r}, purpose_id={self.purpose_id!r})"

    @staticmethod
    @contextmanager
    def scope(
        *, audit: AuditContext | None = None, purpose_id: str | None = None
    ) -> Iterator[None]:
        """Within this block, ``sign`` uses this audit context (and purpose).

        Context variables follow the task, so concurrent calls do not mix audits::

            with ModiCaller.scope(audit=AuditContext("op-17", "ufficio-anagrafe", "LoA3")):
                await anpr.request("POST", "/anpr-service-e002", json=body)
        """
        audit_token = _scope_audit.set(audit)
        purpose_token = _scope_purpose.set(purpose_id)
        try:
            yield
        finally:
            _scope_audit.reset(audit_token)
            _scope_purpose.reset(purpose_token)

    def _audience_for(self, url: str) -> str:
        if isinstance(self.audience, str):
            return self.audience
        try:
            return self.audience(url)
        except ValueError as exc:
            raise ModiSigningError(str(exc), platform=self.pdnd.platform) from exc

    async def headers(
        self,
        *,
        url: str,
        body: bytes,
        purpose_id: str,
        audit: AuditContext | None,
        content_type: str | None = "application/json",
    ) -> dict[str, str]:
        """``Authorization``, ``Digest``, ``Agid-JWT-Signature`` and, when audited,
        ``Agid-JWT-TrackingEvidence`` for one attempt of a call to ``url`` with ``body``.

        ``content_type`` must be the ``Content-Type`` actually sent (``None`` when none is).
        An audited call gets a new voucher bound to ``sha256_hex(TrackingEvidence)``.
        """
        if audit is None and self.audit_required:
            raise ModiSigningError(
                "this e-service requires an audit context (Agid-JWT-TrackingEvidence)",
                platform=self.pdnd.platform,
            )
        if not purpose_id:
            raise ModiSigningError("no purpose_id for the call", platform=self.pdnd.platform)
        pdnd = self.pdnd
        audience = self._audience_for(url)
        key = pdnd.signing_key()
        result: dict[str, str] = {}
        try:
            if audit is not None:
                evidence = tracking_evidence(
                    client_id=pdnd.client_id,
                    kid=pdnd.kid,
                    private_key=key,
                    audience=audience,
                    purpose_id=purpose_id,
                    audit=audit,
                    now=pdnd.clock(),
                    lifetime=self.lifetime,
                    skew=pdnd.clock_skew,
                )
                voucher = await pdnd.voucher(purpose_id, digest_hex=sha256_hex(evidence))
                result["Agid-JWT-TrackingEvidence"] = evidence
            else:
                voucher = await pdnd.voucher(purpose_id)
            digest = digest_header(body)
            signature = integrity_signature(
                client_id=pdnd.client_id,
                kid=pdnd.kid,
                private_key=key,
                audience=audience,
                digest=digest,
                content_type=content_type,
                now=pdnd.clock(),
                lifetime=self.lifetime,
                skew=pdnd.clock_skew,
            )
        except ConnectorError:
            raise
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise ModiSigningError(
                f"cannot build the ModI headers: {type(exc).__name__}: {exc}",
                platform=pdnd.platform,
            ) from exc
        result["Authorization"] = f"{voucher.token_type} {voucher.token}"
        result["Digest"] = digest
        result["Agid-JWT-Signature"] = signature
        return result

    async def sign(self, request: OutgoingRequest) -> None:
        """``Signer``: add the ModI headers to this attempt (audit and purpose from
        ``scope``, else the defaults). A missing ``Content-Type`` on a request with a body
        is set to ``default_content_type`` so the signed value is the one sent."""
        purpose_id = _scope_purpose.get() or self.purpose_id
        if not purpose_id:
            raise ModiSigningError(
                "no purpose_id: pass one to ModiCaller or ModiCaller.scope()",
                platform=self.pdnd.platform,
            )
        content_type = next(
            (v for k, v in request.headers.items() if k.lower() == "content-type"), None
        )
        if content_type is None and request.body:
            content_type = self.default_content_type
            request.headers["Content-Type"] = content_type
        added = await self.headers(
            url=request.url,
            body=request.body,
            purpose_id=purpose_id,
            audit=_scope_audit.get(),
            content_type=content_type,
        )
        request.headers = _without(request.headers, {name.lower() for name in added})
        request.headers.update(added)
