"""RSA keys for PDND: generation, the ``kid`` thumbprint, the upload format.

PDND accepts one RSA public key of at least 2048 bits per upload, as a base64-encoded PEM
(not a certificate, not a private key). The ``kid`` PDND assigns to it, and which every
client assertion and ModI JWT must carry, is the RFC 7638 JWK thumbprint: base64url of the
SHA-256 of ``{"e":...,"kty":"RSA","n":...}`` (members sorted, no whitespace), 43 characters.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .errors import InvalidKeyError

__all__ = [
    "MIN_RSA_BITS",
    "InvalidKeyError",
    "b64url_uint",
    "generate_key",
    "jwk_public_key",
    "jwk_thumbprint",
    "kid_for_private_key",
    "load_private_key",
    "load_public_key",
    "public_jwk",
    "public_key_for_upload",
    "public_pem_from_upload",
]

MIN_RSA_BITS = 2048

PublicKeyLike = rsa.RSAPublicKey | bytes | str | Mapping[str, Any]


def b64url_uint(value: int) -> str:
    """Base64url (no padding) of the unsigned big-endian bytes of ``value`` (RFC 7518 §6.3)."""
    raw = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_size(key: rsa.RSAPublicKey | rsa.RSAPrivateKey) -> None:
    if key.key_size < MIN_RSA_BITS:
        raise InvalidKeyError(
            f"RSA key of {key.key_size} bits: PDND requires at least {MIN_RSA_BITS}"
        )


def generate_key(bits: int = MIN_RSA_BITS) -> tuple[bytes, bytes]:
    """A new RSA key pair as ``(private_pem, public_pem)``: PKCS#8 and SubjectPublicKeyInfo."""
    if bits < MIN_RSA_BITS:
        raise InvalidKeyError(f"PDND requires RSA keys of at least {MIN_RSA_BITS} bits")
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def _as_bytes(pem: bytes | str) -> bytes:
    if not isinstance(pem, str):
        return pem
    try:
        return pem.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidKeyError("a PEM is ASCII text: this one holds other characters") from None


def load_private_key(pem: bytes | str) -> rsa.RSAPrivateKey:
    """Parse an unencrypted PEM RSA private key of at least 2048 bits.

    Parsed keys are kept by their PEM (the last :data:`_PARSED_KEYS` of them): OpenSSL's
    consistency check of an RSA key costs tens of milliseconds, and a hub with thousands of
    tenants sharing one key file (or ``/readyz``, which checks every tenant's key) would
    repeat it for each. Key objects are immutable; the cache lives in this process only."""
    return _parse_private_key(_as_bytes(pem))


#: how many parsed private keys :func:`load_private_key` keeps
_PARSED_KEYS = 16384


@functools.lru_cache(maxsize=_PARSED_KEYS)
def _parse_private_key(data: bytes) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        # Never quote the input: it is a secret.
        raise InvalidKeyError(
            f"not a readable unencrypted PEM private key ({type(exc).__name__})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidKeyError("PDND keys must be RSA")
    _check_size(key)
    return key


def load_public_key(pem: bytes | str) -> rsa.RSAPublicKey:
    """Parse one PEM RSA public key (SPKI or PKCS#1) of at least 2048 bits.

    Certificates and private keys are refused, as PDND does.
    """
    data = _as_bytes(pem)
    if b"CERTIFICATE" in data:
        raise InvalidKeyError("a certificate is not accepted: give the public key only")
    if b"PRIVATE KEY" in data:
        raise InvalidKeyError("this is a private key: give the public key only")
    if data.count(b"-----BEGIN ") != 1:
        raise InvalidKeyError("expected exactly one PEM public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(f"not a readable PEM public key ({exc})") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidKeyError("PDND keys must be RSA")
    _check_size(key)
    return key


def public_jwk(public_key: rsa.RSAPublicKey | bytes | str) -> dict[str, str]:
    """The RSA public key as a minimal JWK ``{"kty", "n", "e"}``."""
    key = public_key if isinstance(public_key, rsa.RSAPublicKey) else load_public_key(public_key)
    numbers = key.public_numbers()
    return {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}


def jwk_thumbprint(public_key: PublicKeyLike) -> str:
    """RFC 7638 SHA-256 thumbprint of an RSA public key: the ``kid`` PDND assigns to it.

    ``public_key`` is a key object, a PEM, or an RSA JWK mapping (only ``e``, ``kty`` and
    ``n`` are used, as RFC 7638 requires).
    """
    if isinstance(public_key, Mapping):
        if public_key.get("kty") != "RSA":
            raise InvalidKeyError("only RSA JWKs are supported")
        try:
            members = {"e": str(public_key["e"]), "kty": "RSA", "n": str(public_key["n"])}
        except KeyError as exc:
            raise InvalidKeyError(f"RSA JWK without {exc.args[0]!r}") from None
    else:
        members = public_jwk(public_key)
    canonical = json.dumps(
        {name: members[name] for name in ("e", "kty", "n")}, separators=(",", ":")
    ).encode("utf-8")
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def kid_for_private_key(private_pem: bytes | str) -> str:
    """The PDND ``kid`` of the public half of ``private_pem``."""
    return jwk_thumbprint(load_private_key(private_pem).public_key())


def public_key_for_upload(public_pem: bytes | str) -> str:
    """The text to paste in the PDND back office (or send to its API): base64 of the PEM.

    The PEM is checked first (RSA, ≥2048 bits, a public key, not a certificate).
    """
    data = _as_bytes(public_pem)
    load_public_key(data)
    if not data.endswith(b"\n"):
        data += b"\n"
    return base64.b64encode(data).decode("ascii")


def public_pem_from_upload(value: bytes | str) -> bytes:
    """The PEM back from either a PEM or its base64 upload form (checked as for upload)."""
    data = _as_bytes(value).strip()
    if not data.startswith(b"-----BEGIN"):
        try:
            data = base64.b64decode(data, validate=True).strip()
        except (binascii.Error, ValueError) as exc:
            raise InvalidKeyError("neither a PEM nor a base64-encoded PEM") from exc
    data += b"\n"
    load_public_key(data)
    return data


def jwk_public_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    """An RSA public key object from a JWK mapping with ``n`` and ``e``."""
    if jwk.get("kty") != "RSA":
        raise InvalidKeyError("only RSA JWKs are supported")
    try:
        n = int.from_bytes(_b64url_decode(str(jwk["n"])), "big")
        e = int.from_bytes(_b64url_decode(str(jwk["e"])), "big")
    except (KeyError, binascii.Error, ValueError) as exc:
        raise InvalidKeyError("malformed RSA JWK") from exc
    try:
        key = rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:  # cryptography refuses e < 3, even e, e >= n, ...
        raise InvalidKeyError(f"not a valid RSA public key ({exc})") from exc
    _check_size(key)
    return key
