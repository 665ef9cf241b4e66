"""The GovWay front door of the ANPR sandbox: the ModI checks ANPR's gateway applies.

``FrontDoor.check`` verifies one request and returns the caller's identity, or raises
``Refusal`` naming the check that failed. The app answers every ModI defect with the same
generic GovWay 400 (``InteroperabilityInvalidRequest``) and keeps the true reason for the
sandbox-only diagnostics route, as the real gateway keeps it for ANPR support.

Checks, in order (``check`` is the name the diagnostics report):

* voucher (``voucher.*``): ``Authorization: Bearer``, RS256 signature by the PDND key,
  ``typ at+jwt``, integer times, ``iss``, ``aud`` = the e-service, not expired (expired
  gives **401 TokenExpired**), ``nbf``/``iat`` not in the future; for audited calls a
  ``digest {alg: SHA256, value}`` claim. The voucher itself is checked by
  ``sandbox.pdnd.verify.verify_voucher``.
* ``Digest`` (``digest.*``): present, ``SHA-256=<base64>``, equal to the body's hash.
* ``Agid-JWT-Signature`` (``signature.*``): RS256 by a client key (``kid``), integer
  times, ``iat`` not in the future (no skew at all), not expired, ``aud`` = the ModI
  audience (the URL **without** ``-PDND``, cut at ``/v1``), ``iss`` = the voucher's
  client, a ``jti``, ``signed_headers`` an ARRAY holding the ``digest`` (equal to the
  Digest header) and the ``content-type`` (equal to the Content-Type header).
* ``Agid-JWT-TrackingEvidence`` (``audit.*``): same token checks, ``userID``,
  ``userLocation``, ``LoA``, ``purposeId`` = the voucher's, and ``sha256_hex(token)`` =
  the voucher's ``digest.value``.
* replay (``*.replay``): a ``jti`` seen before (while its token is valid) → **409**.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import aiohttp
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..pdnd.keys import InvalidKeyError, jwk_public_key, load_public_key
from ..pdnd.verify import VoucherInvalid, verify_voucher

__all__ = [
    "GENERIC_DETAIL",
    "ClientKeys",
    "FrontDoor",
    "Identity",
    "Refusal",
    "VoucherKey",
    "now_from",
    "spellings",
]

GENERIC_TITLE = "InteroperabilityInvalidRequest"
GENERIC_DETAIL = "Received request is not conform to the required interoperability profile"
_PDND_SUFFIX = "-PDND"
_JWKS_REFRESH_SECONDS = 5.0
_KEY_CACHE_SECONDS = 300.0
_B64URL = re.compile(rb"^[A-Za-z0-9_-]*$")

KeyLike = rsa.RSAPublicKey | bytes | str | Mapping[str, Any]
#: The PDND key that signs vouchers: a PEM, a JWK/JWKS dict, a key, an ``http(s)://`` JWKS
#: URL, or a function returning one of those (sync or async).
VoucherKey = KeyLike | Callable[[], KeyLike | Awaitable[KeyLike]]
#: A client's public key by ``kid`` (PEM, JWK dict or key; ``None`` when unknown), or the
#: base URL of a ``GET {url}/{kid}`` JWK endpoint (the PDND sandbox's ``/keys``).
ClientKeys = Callable[[str], KeyLike | Awaitable[KeyLike | None] | None] | str


class Refusal(Exception):
    """A request the gateway refuses. ``check`` and ``reason`` go to the diagnostics only."""

    def __init__(
        self,
        check: str,
        reason: str,
        *,
        status: int = 400,
        title: str = GENERIC_TITLE,
        detail: str = GENERIC_DETAIL,
        headers: Mapping[str, str] | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(f"{check}: {reason}")
        self.check = check
        self.reason = reason
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.client_id = client_id


@dataclass(frozen=True)
class Identity:
    """Who called: from the voucher (and the audit token when there is one)."""

    client_id: str
    purpose_id: str
    voucher: Mapping[str, Any] = field(repr=False)
    audit: Mapping[str, Any] | None = field(default=None, repr=False)


def now_from(clock: Any) -> Callable[[], float]:
    """A ``() -> epoch seconds`` from a hub ``Clock`` (``.now()``), a callable or ``None``."""
    if clock is None:
        return time.time
    if hasattr(clock, "now"):
        return lambda: float(clock.now().timestamp())
    if callable(clock):
        return lambda: float(clock())
    raise TypeError("clock must be a Clock (with .now()) or a () -> float")


def spellings(url: str) -> frozenset[str]:
    """``url`` as written and with its path percent-encoded (C001's en dash travels
    encoded in the request line, so a client may sign either form)."""
    scheme, sep, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return frozenset({url, f"{scheme}{sep}{host}{slash}{quote(path, safe='/-._~')}"})


def _is_int(value: Any) -> bool:
    return type(value) is int


class _BadJws(ValueError):
    pass


def _b64url(segment: bytes) -> bytes:
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        raise _BadJws("not base64url")
    return base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4))


def _jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified."""
    parts = token.encode("ascii", errors="replace").split(b".")
    if len(parts) != 3:
        raise _BadJws("a compact JWS has three parts")
    try:
        header = json.loads(_b64url(parts[0]))
    except ValueError as exc:
        raise _BadJws("the header is not JSON") from exc
    if not isinstance(header, dict):
        raise _BadJws("the header is not a JSON object")
    return header


def _verify_rs256(token: str, key: rsa.RSAPublicKey) -> bytes:
    """The payload bytes of an RS256 compact JWS whose signature verifies with ``key``."""
    head, payload, signature = token.encode("ascii", errors="replace").split(b".")
    key.verify(_b64url(signature), head + b"." + payload, padding.PKCS1v15(), hashes.SHA256())
    return _b64url(payload)


def _to_key(value: KeyLike, kid: str) -> rsa.RSAPublicKey:
    if isinstance(value, rsa.RSAPublicKey):
        return value
    if isinstance(value, bytes | str):
        return load_public_key(value)
    if "keys" in value:
        for jwk in value.get("keys") or []:
            if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
                return jwk_public_key(jwk)
        raise InvalidKeyError(f"no key {kid!r} in the JWKS")
    return jwk_public_key(value)


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class _ReplayCache:
    """``jti`` values seen, kept until their token expires (bounded)."""

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._seen: dict[str, float] = {}

    def seen(self, jti: str) -> bool:
        return jti in self._seen

    def add(self, jti: str, until: float, now: float) -> None:
        if len(self._seen) >= self.limit:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            while len(self._seen) >= self.limit:
                self._seen.pop(next(iter(self._seen)))
        self._seen[jti] = until


class FrontDoor:
    """The ModI checks of the ANPR gateway; see the module docstring."""

    def __init__(
        self,
        *,
        voucher_key: VoucherKey,
        voucher_issuer: str,
        client_keys: ClientKeys,
        clock: Callable[[], float],
    ) -> None:
        self.voucher_key = voucher_key
        self.voucher_issuer = voucher_issuer
        self.client_keys = client_keys
        self.clock = clock
        self._replays = {"signature": _ReplayCache(), "audit": _ReplayCache()}
        self._session: aiohttp.ClientSession | None = None
        self._jwks: dict[str, Any] | None = None
        self._jwks_at = float("-inf")
        self._jwks_lock = asyncio.Lock()
        # kid -> (key, cached at): GovWay caches the keys it fetches from PDND too.
        self._client_cache: dict[str, tuple[rsa.RSAPublicKey, float]] = {}
        self._voucher_cache: dict[tuple[int, str], rsa.RSAPublicKey] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ------------------------------------------------------------------ key lookup

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self._session

    async def _fetch_json(self, url: str) -> Any:
        async with self._http().get(url) as response:
            if response.status != 200:
                return None
            return await response.json(content_type=None)

    def _has_kid(self, kid: str) -> bool:
        keys = self._jwks.get("keys", []) if self._jwks is not None else []
        return any(isinstance(k, dict) and k.get("kid") == kid for k in keys)

    async def _voucher_key_source(self, kid: str) -> KeyLike:
        source: Any = self.voucher_key
        if callable(source) and not isinstance(source, Mapping):
            source = await _resolve(source())
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            # A JWKS URL, as GovWay is configured: refreshed when an unknown kid shows up.
            if self._has_kid(kid):
                return self._jwks or {"keys": []}
            async with self._jwks_lock:  # concurrent callers wait for one fetch
                recent = time.monotonic() - self._jwks_at < _JWKS_REFRESH_SECONDS
                if not self._has_kid(kid) and not (recent and self._jwks is not None):
                    self._jwks_at = time.monotonic()
                    try:
                        fetched = await self._fetch_json(source)
                    except (aiohttp.ClientError, TimeoutError, ValueError):
                        fetched = None
                    if isinstance(fetched, dict):
                        self._jwks = fetched
            return self._jwks or {"keys": []}
        if not isinstance(source, rsa.RSAPublicKey | bytes | str | Mapping):
            raise TypeError("voucher_key must give a PEM, a JWK(S) or a public key")
        return source

    async def _voucher_public_key(self, kid: str) -> rsa.RSAPublicKey | None:
        source = await self._voucher_key_source(kid)
        if isinstance(source, rsa.RSAPublicKey):
            return source
        cache_key = (id(source), kid)
        cached = self._voucher_cache.get(cache_key)
        if cached is not None:
            return cached
        try:
            key = _to_key(source, kid)
        except (InvalidKeyError, ValueError, TypeError):
            return None
        if len(self._voucher_cache) > 64:
            self._voucher_cache.clear()
        self._voucher_cache[cache_key] = key
        return key

    async def _client_key(self, kid: str) -> rsa.RSAPublicKey | None:
        cached = self._client_cache.get(kid)
        if cached is not None and time.monotonic() - cached[1] < _KEY_CACHE_SECONDS:
            return cached[0]
        key = await self._lookup_client_key(kid)
        if key is not None:
            if len(self._client_cache) > 10_000:
                self._client_cache.clear()
            self._client_cache[kid] = (key, time.monotonic())
        return key

    async def _lookup_client_key(self, kid: str) -> rsa.RSAPublicKey | None:
        source = self.client_keys
        if isinstance(source, str):
            try:
                found = await self._fetch_json(f"{source.rstrip('/')}/{quote(kid, safe='')}")
            except (aiohttp.ClientError, TimeoutError, ValueError):
                return None
            value: Any = found if isinstance(found, dict) else None
        else:
            value = await _resolve(source(kid))
        if value is None:
            return None
        try:
            return _to_key(value, kid)
        except (InvalidKeyError, ValueError, TypeError):
            return None

    # ---------------------------------------------------------------------- checks

    async def check(
        self,
        *,
        headers: Mapping[str, str],
        body: bytes,
        audience: str,
        accepted_audiences: frozenset[str],
        voucher_audience: str,
        audited: bool,
        integrity: bool,
    ) -> Identity:
        """Verify one request; ``Refusal`` on the first failed check.

        ``audience`` is the expected ModI ``aud``; ``accepted_audiences`` its equivalent
        spellings (percent-encoded or not). ``voucher_audience`` is the e-service audience
        the voucher must carry (either spelling). ``audited`` requires the TrackingEvidence
        (and the voucher ``digest``); ``integrity`` requires Digest and Agid-JWT-Signature.
        """
        now = self.clock()
        voucher = await self._voucher(headers, spellings(voucher_audience), now, audited)
        client_id = str(voucher.get("client_id") or voucher.get("sub"))
        purpose_id = str(voucher.get("purposeId"))
        signature: dict[str, Any] | None = None
        audit: dict[str, Any] | None = None
        try:
            if integrity:
                digest = self._digest(headers, body)
                signature = await self._signature(
                    headers, digest, audience, accepted_audiences, client_id, now
                )
            if audited:
                audit = await self._audit(
                    headers, audience, accepted_audiences, voucher, purpose_id, now
                )
        except Refusal as refusal:
            refusal.client_id = client_id
            raise
        for kind, claims in (("signature", signature), ("audit", audit)):
            if claims is None:
                continue
            cache = self._replays[kind]
            if cache.seen(str(claims["jti"])):
                raise Refusal(
                    f"{kind}.replay",
                    f"jti {claims['jti']!r} of the "
                    f"{'Agid-JWT-Signature' if kind == 'signature' else 'TrackingEvidence'} "
                    "was already received",
                    status=409,
                    title="Conflict",
                    detail="Request with an identifier already received (replay)",
                    client_id=client_id,
                )
        for kind, claims in (("signature", signature), ("audit", audit)):
            if claims is not None:
                self._replays[kind].add(str(claims["jti"]), float(claims["exp"]), now)
        return Identity(client_id, purpose_id, voucher, audit)

    async def _voucher(
        self, headers: Mapping[str, str], audiences: frozenset[str], now: float, audited: bool
    ) -> dict[str, Any]:
        authorization = headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if not authorization:
            raise Refusal("voucher.missing", "no Authorization header (PDND voucher)")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refusal("voucher.scheme", f"Authorization scheme {scheme!r}, expected Bearer")
        token = token.strip()
        try:
            kid = _jws_header(token).get("kid")
        except _BadJws:
            raise Refusal("voucher.malformed", "the voucher is not a compact JWS") from None
        if not isinstance(kid, str) or not kid:
            raise Refusal("voucher.unknownKid", "the voucher header has no kid")
        key = await self._voucher_public_key(kid)
        if key is None:
            raise Refusal("voucher.unknownKid", f"kid {kid!r} is not a key of the PDND JWKS")
        try:
            claims = verify_voucher(
                token, key, audience=sorted(audiences), issuer=self.voucher_issuer, now=now
            )
        except VoucherInvalid as exc:
            if exc.reason == "expired":
                raise Refusal(
                    "voucher.expired",
                    exc.detail,
                    status=401,
                    title="TokenExpired",
                    detail="Token expired",
                    headers={
                        "WWW-Authenticate": 'Bearer error="invalid_token", '
                        'error_description="Token expired"'
                    },
                ) from None
            raise Refusal(f"voucher.{exc.reason}", exc.detail) from None
        if audited:
            digest = claims.get("digest")
            if not isinstance(digest, Mapping) or "value" not in digest:
                raise Refusal(
                    "voucher.missingDigest",
                    "the voucher has no digest claim: AUDIT_REST_02 needs the client "
                    "assertion to carry digest {alg: SHA256, value: sha256(TrackingEvidence)}",
                )
            if digest.get("alg") != "SHA256" or not isinstance(digest.get("value"), str):
                raise Refusal("voucher.invalidDigest", "digest is not {alg: SHA256, value}")
        return claims

    @staticmethod
    def _digest(headers: Mapping[str, str], body: bytes) -> str:
        value = headers.get("Digest")
        if value is None:
            raise Refusal("digest.missing", "no Digest header (INTEGRITY_REST_02)")
        algorithm, sep, encoded = value.partition("=")
        if not sep or algorithm.upper() != "SHA-256":
            raise Refusal("digest.malformed", "Digest must be SHA-256=<base64>")
        try:
            received = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise Refusal("digest.malformed", "the Digest value is not base64") from None
        if received != hashlib.sha256(body).digest():
            raise Refusal("digest.mismatch", "Digest is not the SHA-256 of the body received")
        return value

    async def _token(
        self, prefix: str, name: str, token: str | None, now: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Signature, kid and time checks shared by the two ModI tokens."""
        if not token:
            raise Refusal(f"{prefix}.missing", f"no {name} header")
        try:
            header = _jws_header(token)
        except _BadJws:
            raise Refusal(f"{prefix}.malformed", f"{name} is not a compact JWS") from None
        if header.get("alg") != "RS256":
            raise Refusal(f"{prefix}.algorithm", f"alg {header.get('alg')!r}, expected RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Refusal(f"{prefix}.kid", f"{name} has no kid")
        key = await self._client_key(kid)
        if key is None:
            raise Refusal(f"{prefix}.unknownKid", f"kid {kid!r} is not a key registered on PDND")
        try:
            claims = json.loads(_verify_rs256(token, key))
        except InvalidSignature:
            raise Refusal(
                f"{prefix}.invalidSignature", f"{name} signature does not verify"
            ) from None
        except ValueError:
            raise Refusal(f"{prefix}.malformed", f"{name} payload is not JSON") from None
        if not isinstance(claims, dict):
            raise Refusal(f"{prefix}.malformed", f"{name} payload is not a JSON object")
        for claim in ("iat", "exp"):
            if claim not in claims:
                raise Refusal(f"{prefix}.missingClaims", f"{name} has no {claim}")
        for claim in ("iat", "nbf", "exp"):
            if claim in claims and not _is_int(claims[claim]):
                raise Refusal(
                    f"{prefix}.timeNotInteger",
                    f"{name} {claim} is {claims[claim]!r}: times must be integers",
                )
        if claims["iat"] > now:
            raise Refusal(
                f"{prefix}.issuedInTheFuture",
                f"Token creato nel futuro: {name} iat {claims['iat']} is after now "
                f"({int(now)}); the gateway allows no clock skew",
            )
        if "nbf" in claims and claims["nbf"] > now:
            raise Refusal(f"{prefix}.notYetValid", f"{name} nbf is in the future")
        if claims["exp"] <= now:
            raise Refusal(f"{prefix}.expired", f"{name} has expired")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise Refusal(f"{prefix}.missingJti", f"{name} has no jti")
        return header, claims

    @staticmethod
    def _audience(
        prefix: str, name: str, aud: Any, audience: str, accepted: frozenset[str]
    ) -> None:
        if isinstance(aud, str) and aud in accepted:
            return
        if isinstance(aud, str) and _PDND_SUFFIX + "/" in aud:
            raise Refusal(
                f"{prefix}.audiencePDND",
                f"{name} aud {aud!r} contains '-PDND': the ModI audience is the call URL "
                f"WITHOUT -PDND and cut at /v1, here {audience!r}",
            )
        if isinstance(aud, str) and aud.rstrip("/").endswith("/anpr-service-e002"):
            raise Refusal(
                f"{prefix}.audienceNotCut",
                f"{name} aud {aud!r} is the operation URL: cut it at /v1, here {audience!r}",
            )
        raise Refusal(f"{prefix}.audience", f"{name} aud {aud!r}, expected {audience!r}")

    async def _signature(
        self,
        headers: Mapping[str, str],
        digest: str,
        audience: str,
        accepted: frozenset[str],
        client_id: str,
        now: float,
    ) -> dict[str, Any]:
        name = "Agid-JWT-Signature"
        _, claims = await self._token("signature", name, headers.get(name), now)
        self._audience("signature", name, claims.get("aud"), audience, accepted)
        if claims.get("iss") != client_id:
            raise Refusal(
                "signature.issuer",
                f"{name} iss {claims.get('iss')!r} is not the voucher's client {client_id!r}",
            )
        signed = claims.get("signed_headers")
        if not isinstance(signed, list):
            raise Refusal(
                "signature.signedHeadersNotArray",
                f"signed_headers is a {type(signed).__name__}, it must be an ARRAY of "
                'one-member objects: [{"digest": ...}, {"content-type": ...}]',
            )
        values: dict[str, Any] = {}
        for entry in signed:
            if not isinstance(entry, dict):
                raise Refusal("signature.signedHeadersEntry", "a signed_headers entry is no object")
            for key, value in entry.items():
                values[str(key).lower()] = value
        if "digest" not in values:
            raise Refusal("signature.signedHeadersNoDigest", "signed_headers has no digest")
        if values["digest"] != digest:
            raise Refusal(
                "signature.signedHeadersDigest",
                "the digest in signed_headers differs from the Digest header",
            )
        content_type = headers.get("Content-Type")
        if "content-type" not in values:
            raise Refusal(
                "signature.signedHeadersNoContentType", "signed_headers has no content-type"
            )
        if content_type is None or values["content-type"] != content_type:
            raise Refusal(
                "signature.signedHeadersContentType",
                f"signed content-type {values['content-type']!r} differs from the "
                f"Content-Type header {content_type!r}",
            )
        return claims

    async def _audit(
        self,
        headers: Mapping[str, str],
        audience: str,
        accepted: frozenset[str],
        voucher: Mapping[str, Any],
        purpose_id: str,
        now: float,
    ) -> dict[str, Any]:
        name = "Agid-JWT-TrackingEvidence"
        token = headers.get(name)
        _, claims = await self._token("audit", name, token, now)
        self._audience("audit", name, claims.get("aud"), audience, accepted)
        missing = [
            claim
            for claim in ("userID", "userLocation", "LoA")
            if not isinstance(claims.get(claim), str) or not claims[claim].strip()
        ]
        if missing:
            raise Refusal("audit.missingClaims", f"{name} lacks {', '.join(missing)}")
        if claims.get("purposeId") != purpose_id:
            raise Refusal(
                "audit.purpose",
                f"{name} purposeId {claims.get('purposeId')!r} is not the voucher's {purpose_id!r}",
            )
        assert token is not None  # _token refused a missing one
        expected = str(voucher["digest"]["value"]).lower()
        actual = hashlib.sha256(token.encode("ascii")).hexdigest()
        if actual != expected:
            raise Refusal(
                "audit.digestBinding",
                "sha256(TrackingEvidence) differs from the voucher digest.value: the "
                "voucher was not requested for this TrackingEvidence",
            )
        return claims
