"""The sandbox's own JOSE plumbing: JWS with PyJWT, JWE with joserfc.

Deliberately not the connector's code (a twin that ran the code under test could not catch
its bugs): signatures go through a different library than the connector's, so a login
against the twin is a small interoperability test too.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

MAX_JWT = 64 * 1024
SIG_ALGS = ["RS256", "RS512", "PS256", "PS512", "ES256", "ES512"]
JWE_ALGS = ("RSA-OAEP", "RSA-OAEP-256")
JWE_ENCS = ("A128CBC-HS256", "A256CBC-HS512", "A256GCM")


class JoseFailure(Exception):
    """A token the sandbox refuses; ``code`` is the OAuth/federation error to answer."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an RSA or EC public JWK."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass
class SigningKey:
    private: rsa.RSAPrivateKey
    jwk: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    @classmethod
    def generate(cls, use: str = "sig") -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
        jwk["kid"] = thumbprint(jwk)
        jwk["use"] = use
        return cls(private, jwk)

    def sign(self, claims: dict[str, Any], typ: str | None = None, kid: str | None = None) -> str:
        headers: dict[str, Any] = {"kid": kid or self.kid}
        if typ:
            headers["typ"] = typ
        return pyjwt.encode(claims, self.private, algorithm="RS256", headers=headers)


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    if len(token) > MAX_JWT:
        raise JoseFailure("invalid_request", "the JWT is too large")
    try:
        header = pyjwt.get_unverified_header(token)
        claims = pyjwt.decode(token, options={"verify_signature": False})
    except pyjwt.PyJWTError as exc:
        raise JoseFailure("invalid_request", f"malformed JWT: {exc}") from exc
    return header, claims


def verify(
    token: str,
    jwks: dict[str, Any],
    *,
    code: str,
    audience: str | list[str] | None = None,
    typ: str | None = None,
) -> dict[str, Any]:
    """Claims of a JWS signed by a key of ``jwks`` (by ``kid``), alg allow-listed, exp
    checked (60 s leeway); ``JoseFailure(code)`` otherwise."""
    header, _ = unverified(token)
    alg = header.get("alg")
    if alg not in SIG_ALGS:
        raise JoseFailure(code, f"signature algorithm {alg!r} refused")
    if typ is not None and header.get("typ") != typ:
        raise JoseFailure(code, f"typ must be {typ}")
    key = next((k for k in jwks.get("keys", []) if k.get("kid") == header.get("kid")), None)
    if key is None:
        raise JoseFailure(code, "signed with a key that is not in the signer's JWKS")
    try:
        public = pyjwt.PyJWK(key, algorithm=alg).key
        return pyjwt.decode(
            token,
            public,
            algorithms=[alg],
            audience=audience,
            leeway=60,
            options={"require": ["exp"], "verify_aud": audience is not None},
        )
    except pyjwt.PyJWTError as exc:
        raise JoseFailure(code, f"JWT refused: {exc}") from exc


def encrypt(payload: str, jwk: dict[str, Any], alg: str, enc: str) -> str:
    """A compact JWE (``cty`` JWT) of ``payload`` for the RSA public ``jwk``."""
    from joserfc import jwe
    from joserfc.jwk import RSAKey

    if alg not in JWE_ALGS or enc not in JWE_ENCS:
        raise JoseFailure("invalid_client", f"unsupported userinfo encryption {alg}/{enc}")
    key = RSAKey.import_key(jwk)
    header = {"alg": alg, "enc": enc, "cty": "JWT", "kid": jwk.get("kid")}
    return jwe.encrypt_compact(header, payload, key, algorithms=[alg, enc])


def forge(claims: dict[str, Any], alg: str, kid: str, secret: bytes | None) -> str:
    """A JWT a hostile OP would send: ``alg: none`` (no signature), or ``HS256`` keyed with
    ``secret`` (the attack: the OP's *public* key, PEM, used as the HMAC secret). Built by
    hand: JOSE libraries rightly refuse to make either."""
    import hmac

    header = {"alg": "none" if alg == "none" else "HS256", "kid": kid}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = b""
    if alg != "none":
        signature = hmac.new(secret or b"", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"
