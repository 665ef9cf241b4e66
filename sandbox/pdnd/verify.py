"""Provider-side check of a PDND voucher, as an e-service (or its gateway) does it.

``verify_voucher`` is for the ANPR gateway sandbox and any hub endpoint that acts as a
provider: signature against the PDND JWKS, ``typ at+jwt``, ``iss``, ``aud``, times (integers,
no leeway by default), and optionally ``purposeId`` and the AUDIT_REST_02 ``digest``.
Every failure raises ``VoucherInvalid`` whose ``reason`` is a short code (for a sandbox's
diagnostics); callers answer their own generic error and never echo the reason.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .keys import InvalidKeyError, jwk_public_key, load_public_key

__all__ = ["VOUCHER_CLAIMS", "VoucherInvalid", "verify_voucher"]

#: Claims every voucher carries (``digest`` is added for audited calls).
VOUCHER_CLAIMS = ("jti", "iss", "aud", "client_id", "sub", "iat", "nbf", "exp", "purposeId")

KeySource = Mapping[str, Any] | rsa.RSAPublicKey | bytes | str


class VoucherInvalid(ValueError):
    """The voucher was refused; ``reason`` names the check that failed."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _key_for(kid: str, source: KeySource) -> rsa.RSAPublicKey:
    try:
        if isinstance(source, rsa.RSAPublicKey):
            return source
        if isinstance(source, bytes | str):
            return load_public_key(source)
        if "keys" in source:
            keys = source["keys"]
            if not isinstance(keys, list):
                raise VoucherInvalid("unknownKid", "the JWKS has no key list")
            for jwk in keys:
                if isinstance(jwk, Mapping) and jwk.get("kid") == kid:
                    return jwk_public_key(jwk)
            raise VoucherInvalid("unknownKid", f"no key {kid!r} in the JWKS")
        if source.get("kid") not in (None, kid):
            raise VoucherInvalid("unknownKid", f"the JWK is not key {kid!r}")
        return jwk_public_key(source)
    except InvalidKeyError as exc:
        raise VoucherInvalid("badKey", str(exc)) from exc


def verify_voucher(
    token: str,
    jwks_or_public_key: KeySource,
    *,
    audience: str | Sequence[str],
    issuer: str,
    now: float | None = None,
    leeway: int = 0,
    purpose_id: str | None = None,
    digest_hex: str | None = None,
) -> dict[str, Any]:
    """The voucher's claims when it is valid for ``audience``; ``VoucherInvalid`` otherwise.

    ``jwks_or_public_key`` is the PDND JWKS (``{"keys": [...]}``, the key picked by
    ``kid``), one JWK, a public key object or a PEM. ``audience`` is accepted when the
    voucher's ``aud`` (string or list) contains it, or one of them when a list is given.
    ``digest_hex`` is the SHA-256 hex of the call's Agid-JWT-TrackingEvidence: the voucher
    must carry the same ``digest.value``.
    """
    current = time.time() if now is None else now
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise VoucherInvalid("malformed", f"not a compact JWS ({type(exc).__name__})") from exc
    if header.get("alg") != "RS256":
        raise VoucherInvalid("algorithmNotAllowed", f"alg {header.get('alg')!r}")
    if header.get("typ") != "at+jwt":
        raise VoucherInvalid("invalidType", f"typ {header.get('typ')!r}, expected 'at+jwt'")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise VoucherInvalid("unknownKid", "no kid in the header")
    key = _key_for(kid, jwks_or_public_key)
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
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
    except jwt.InvalidSignatureError as exc:
        raise VoucherInvalid("invalidSignature", "signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise VoucherInvalid("malformed", type(exc).__name__) from exc

    missing = [name for name in VOUCHER_CLAIMS if name not in claims]
    if missing:
        raise VoucherInvalid("missingClaims", ", ".join(missing))
    for name in ("iat", "nbf", "exp"):
        if type(claims[name]) is not int:
            raise VoucherInvalid("timeNotInteger", f"{name} is not an integer")
    if claims["iss"] != issuer:
        raise VoucherInvalid("invalidIssuer", f"iss {claims['iss']!r}")
    wanted = [audience] if isinstance(audience, str) else list(audience)
    got = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if not any(a in got for a in wanted):
        raise VoucherInvalid("invalidAudience", f"aud {claims['aud']!r}")
    if claims["exp"] <= current - leeway:
        raise VoucherInvalid("expired", "exp is in the past")
    if claims["nbf"] > current + leeway:
        raise VoucherInvalid("notYetValid", "nbf is in the future")
    if claims["iat"] > current + leeway:
        raise VoucherInvalid("issuedInTheFuture", "iat is in the future")
    if purpose_id is not None and claims["purposeId"] != purpose_id:
        raise VoucherInvalid("invalidPurpose", f"purposeId {claims['purposeId']!r}")
    if digest_hex is not None:
        digest = claims.get("digest")
        if not isinstance(digest, Mapping):
            raise VoucherInvalid("missingDigest", "the voucher has no digest claim")
        value = digest.get("value")
        if digest.get("alg") != "SHA256" or not isinstance(value, str):
            raise VoucherInvalid("invalidDigest", "digest is not {alg: SHA256, value}")
        if value.lower() != digest_hex.lower():
            raise VoucherInvalid("digestMismatch", "digest.value differs from the audit token")
    return claims
