"""Compact JWS/JWE helpers on top of ``joserfc``, with the checks the rules add.

``joserfc`` does the cryptography. What is added here: a size cap before any parsing
(oversize JWTs are refused unread), an allow-list of asymmetric algorithms (``none`` and
``HS*`` never reach the library: an HMAC "signed" with a public key as secret is refused by
name), a ``kid`` that must name a key of the trusted set, and time checks with leeway.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Mapping
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from .errors import OidcError, TokenRejected

__all__ = [
    "ENCRYPTION_ALGS",
    "ENCRYPTION_ENCS",
    "MAX_JWT_BYTES",
    "SIGNING_ALGS",
    "b64url",
    "check_times",
    "decrypt_jwe",
    "import_jwks",
    "peek",
    "sign_jws",
    "verify_jws",
]

#: Larger tokens are refused before they are decoded (a resolve answer with its whole trust
#: chain is a few kilobytes; 64 KiB leaves room and bounds the work an attacker can cause).
MAX_JWT_BYTES = 64 * 1024

#: Signature algorithms accepted (rules, "Cryptographic algorithms": RS256/RS512 required,
#: ES256/ES512/PS256/PS512 recommended; none and HS256/384/512 forbidden).
SIGNING_ALGS: tuple[str, ...] = ("RS256", "RS512", "PS256", "PS512", "ES256", "ES512")
#: Key encryption (RSA_1_5 forbidden) and content encryption algorithms accepted.
ENCRYPTION_ALGS: tuple[str, ...] = ("RSA-OAEP", "RSA-OAEP-256")
ENCRYPTION_ENCS: tuple[str, ...] = ("A128CBC-HS256", "A256CBC-HS512", "A256GCM")

JwkSet = KeySet | Mapping[str, Any]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _json_part(part: str, what: str, error: type[OidcError]) -> dict[str, Any]:
    try:
        value = json.loads(_b64decode(part))
    except (ValueError, UnicodeDecodeError) as exc:
        raise error("malformed", f"the {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise error("malformed", f"the {what} is not a JSON object")
    return value


def _size(token: str | bytes, error: type[OidcError]) -> str:
    if len(token) > MAX_JWT_BYTES:
        raise error("oversize", f"the JWT is larger than {MAX_JWT_BYTES} bytes")
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError as exc:
            raise error("malformed", "the JWT is not ASCII") from exc
    return token.strip()


def peek(
    token: str | bytes, error: type[OidcError] = TokenRejected
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, NOT verified (to learn who signed it)."""
    token = _size(token, error)
    parts = token.split(".")
    if len(parts) != 3:
        raise error("malformed", "a signed JWT has three parts")
    return _json_part(parts[0], "JWT header", error), _json_part(parts[1], "JWT payload", error)


def import_jwks(jwks: JwkSet, error: type[OidcError] = TokenRejected) -> KeySet:
    """A public ``KeySet`` from a JWKS; every key must have a ``kid`` (rules, EC ``jwks``)."""
    if isinstance(jwks, KeySet):
        return jwks
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise error("jwks", "the JWKS has no keys")
    usable = []
    for key in keys:
        if not isinstance(key, dict) or not isinstance(key.get("kid"), str) or not key["kid"]:
            raise error("jwks", "every key of a JWKS must have a kid")
        if key.get("kty") not in ("RSA", "EC"):
            continue  # symmetric keys are never trusted for signatures
        public = {k: v for k, v in key.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
        usable.append(public)
    if not usable:
        raise error("jwks", "the JWKS has no RSA or EC key")
    try:
        return KeySet.import_key_set({"keys": usable})
    except (JoseError, ValueError, TypeError) as exc:
        raise error("jwks", f"a key of the JWKS is invalid ({type(exc).__name__})") from exc


def verify_jws(
    token: str | bytes,
    jwks: JwkSet,
    *,
    algs: Collection[str] = SIGNING_ALGS,
    typ: str | None = None,
    error: type[OidcError] = TokenRejected,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS whose signature a key of ``jwks`` verifies.

    The ``alg`` must be in ``algs`` (never ``none`` or ``HS*``, whatever ``algs`` says), the
    ``kid`` must name a key of ``jwks`` and, when ``typ`` is given, the header must carry it.
    """
    token = _size(token, error)
    header, _claims = peek(token, error)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algs or alg == "none" or alg.startswith("HS"):
        raise error("alg", f"signature algorithm {alg!r} is not allowed")
    if typ is not None and header.get("typ") != typ:
        raise error("typ", f"the JWT header typ must be {typ!r}")
    keyset = import_jwks(jwks, error)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise error("kid", "the JWT header has no kid")
    key = next((k for k in keyset.keys if k.kid == kid), None)
    if key is None:
        raise error("kid", "the JWT is signed with a key outside the trusted set")
    try:
        signed = jws.deserialize_compact(token, key, algorithms=[alg])
    except JoseError as exc:
        raise error("signature", f"the JWT signature does not verify ({exc.error})") from exc
    try:
        claims = json.loads(signed.payload)
    except ValueError as exc:
        raise error("malformed", "the JWT payload is not JSON") from exc
    if not isinstance(claims, dict):
        raise error("malformed", "the JWT payload is not a JSON object")
    return header, claims


def _default_alg(key: RSAKey | ECKey) -> str:
    if isinstance(key, ECKey):
        return {"P-256": "ES256", "P-521": "ES512"}[key.curve_name]
    return "RS256"


def sign_jws(
    claims: Mapping[str, Any],
    key: RSAKey | ECKey,
    *,
    alg: str | None = None,
    typ: str | None = None,
    extra_header: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS of ``claims`` signed with ``key`` (header ``alg``, ``kid``, ``typ``)."""
    alg = alg or _default_alg(key)
    if alg not in SIGNING_ALGS:
        raise ValueError(f"signature algorithm {alg!r} is not allowed")
    header: dict[str, Any] = {"alg": alg, "kid": key.kid}
    if typ:
        header["typ"] = typ
    header.update(extra_header or {})
    payload = json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode()
    return jws.serialize_compact(header, payload, key, algorithms=[alg])


def check_times(
    claims: Mapping[str, Any],
    now: float,
    *,
    leeway: float = 60,
    require_iat: bool = True,
    error: type[OidcError] = TokenRejected,
) -> None:
    """``exp`` must be in the future, ``iat`` (and ``nbf``) not in the future, with leeway."""
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise error("exp", "the JWT has no numeric exp")
    if exp + leeway < now:
        raise error("exp", "the JWT has expired")
    iat = claims.get("iat")
    if iat is None and not require_iat:
        return
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise error("iat", "the JWT has no numeric iat")
    if iat - leeway > now:
        raise error("iat", "the JWT was issued in the future")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or nbf - leeway > now):
        raise error("nbf", "the JWT is not valid yet")


def decrypt_jwe(
    token: str | bytes,
    keys: KeySet,
    *,
    algs: Collection[str] = ENCRYPTION_ALGS,
    encs: Collection[str] = ENCRYPTION_ENCS,
    error: type[OidcError] = TokenRejected,
) -> tuple[dict[str, Any], bytes]:
    """Protected header and plaintext of a compact JWE decrypted with one of ``keys``."""
    token = _size(token, error)
    parts = token.split(".")
    if len(parts) != 5:
        raise error("malformed", "an encrypted JWT has five parts")
    header = _json_part(parts[0], "JWE header", error)
    if header.get("alg") not in algs:
        raise error("alg", f"key encryption {header.get('alg')!r} is not allowed")
    if header.get("enc") not in encs:
        raise error("enc", f"content encryption {header.get('enc')!r} is not allowed")
    kid = header.get("kid")
    candidates = [k for k in keys.keys if kid is None or k.kid == kid]
    if not candidates:
        raise error("kid", "the JWE is encrypted for a key we do not have")
    for key in candidates:
        try:
            result = jwe.decrypt_compact(
                token, key, algorithms=[str(header["alg"]), str(header["enc"])]
            )
        except JoseError:
            continue
        if result.plaintext is None:
            break
        return header, result.plaintext
    raise error("decrypt", "the JWE does not decrypt (tampered, or for another key)")
