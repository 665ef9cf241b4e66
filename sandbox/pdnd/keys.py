"""The PDND twin's own key handling (issue 13: it must not run the connector's).

What PDND does with a client's key, from its documentation ("Client e-service: chiavi
pubbliche", the authorization server spec in /work/shared/specs/pdnd): the upload is one
RSA public key of at least 2048 bits, as a PEM or as the base64 of the PEM; certificates
and private keys are refused. PDND names the key with its RFC 7638 JWK thumbprint (SHA-256
of ``{"e":..,"kty":"RSA","n":..}``, base64url without padding, 43 characters): the
``kid`` every client assertion must carry. The twin signs its vouchers with its own RSA
key and publishes it as a JWKS.

JWK conversion goes through PyJWT (the connector writes its own), so the two code paths
differ; ``tests/sandbox/test_pdnd_twin_keys.py`` compares them on many keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.exceptions import InvalidKeyError as _PyJWTKeyError

__all__ = [
    "MIN_RSA_BITS",
    "InvalidKeyError",
    "generate_key",
    "jwk_public_key",
    "jwk_thumbprint",
    "load_private_key",
    "load_public_key",
    "public_jwk",
    "public_pem_from_upload",
]

MIN_RSA_BITS = 2048


class InvalidKeyError(ValueError):
    """A key PDND would refuse (the message says why; it never quotes a private key)."""


def _rsa_only(key: object) -> None:
    if not isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        raise InvalidKeyError("PDND keys must be RSA")
    if key.key_size < MIN_RSA_BITS:
        raise InvalidKeyError(
            f"RSA key of {key.key_size} bits: PDND requires at least {MIN_RSA_BITS}"
        )


def generate_key(bits: int = MIN_RSA_BITS) -> tuple[bytes, bytes]:
    """A new key pair ``(private PKCS#8 PEM, public SPKI PEM)``."""
    if bits < MIN_RSA_BITS:
        raise InvalidKeyError(f"PDND requires RSA keys of at least {MIN_RSA_BITS} bits")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return (
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def _bytes(pem: bytes | str) -> bytes:
    if isinstance(pem, str):
        try:
            return pem.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidKeyError("a PEM is ASCII text") from None
    return pem


def load_private_key(pem: bytes | str) -> rsa.RSAPrivateKey:
    """The twin's signing key: an unencrypted PEM RSA private key, 2048 bits or more."""
    try:
        key = serialization.load_pem_private_key(_bytes(pem), password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(
            f"not a readable unencrypted PEM private key ({type(exc).__name__})"
        ) from None
    _rsa_only(key)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def load_public_key(pem: bytes | str) -> rsa.RSAPublicKey:
    """One PEM RSA public key (SPKI or PKCS#1), as PDND takes it in an upload."""
    data = _bytes(pem)
    if b"CERTIFICATE" in data:
        raise InvalidKeyError("a certificate is not accepted: give the public key only")
    if b"PRIVATE KEY" in data:
        raise InvalidKeyError("this is a private key: give the public key only")
    if data.count(b"-----BEGIN ") != 1:
        raise InvalidKeyError("expected exactly one PEM public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(f"not a readable PEM public key ({type(exc).__name__})") from None
    _rsa_only(key)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def public_pem_from_upload(value: bytes | str) -> bytes:
    """The PEM of an upload given as a PEM or as the base64 of one (checked)."""
    data = _bytes(value).strip()
    if not data.startswith(b"-----"):
        try:
            data = base64.b64decode(data, validate=True).strip()
        except (binascii.Error, ValueError):
            raise InvalidKeyError("neither a PEM nor a base64-encoded PEM") from None
    data += b"\n"
    load_public_key(data)
    return data


def public_jwk(key: rsa.RSAPublicKey | bytes | str) -> dict[str, str]:
    """``{"kty": "RSA", "n": .., "e": ..}`` of a public key (a key object or a PEM)."""
    public = key if isinstance(key, rsa.RSAPublicKey) else load_public_key(key)
    full: dict[str, Any] = RSAAlgorithm.to_jwk(public, as_dict=True)
    return {"kty": "RSA", "n": str(full["n"]), "e": str(full["e"])}


def jwk_public_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """The public key of an RSA JWK (only ``n`` and ``e`` are read, never ``d``)."""
    if jwk.get("kty") != "RSA":
        raise InvalidKeyError("only RSA JWKs are supported")
    if not isinstance(jwk.get("n"), str) or not isinstance(jwk.get("e"), str):
        raise InvalidKeyError("malformed RSA JWK: n and e must be base64url strings")
    try:
        key = RSAAlgorithm.from_jwk({"kty": "RSA", "n": jwk["n"], "e": jwk["e"]})
    except (_PyJWTKeyError, ValueError, TypeError, KeyError):
        raise InvalidKeyError("malformed RSA JWK") from None
    _rsa_only(key)
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def jwk_thumbprint(key: rsa.RSAPublicKey | bytes | str | Mapping[str, Any]) -> str:
    """The ``kid`` PDND gives a key: its RFC 7638 SHA-256 JWK thumbprint."""
    if isinstance(key, Mapping):
        if key.get("kty") != "RSA" or "n" not in key or "e" not in key:
            raise InvalidKeyError("an RSA JWK needs kty, n and e")
        members = {"e": str(key["e"]), "kty": "RSA", "n": str(key["n"])}
    else:
        members = public_jwk(key)
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
