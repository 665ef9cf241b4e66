"""The client assertion a PDND client signs to ask for a voucher.

Since mid-2025 PDND validates assertions strictly: the header holds only ``kid``, ``alg``
(``RS256``) and ``typ``; the payload only ``iss``, ``sub``, ``aud``, ``jti``, ``iat``,
``exp``, ``purposeId`` and, for audited calls, ``digest``. ``nbf`` or ``client_id`` in the
payload get the request refused, and ``iat``/``exp`` must be integers.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "ASSERTION_ALGORITHM",
    "DIGEST_ALGORITHM",
    "build_client_assertion",
    "check_digest_hex",
]

ASSERTION_ALGORITHM = "RS256"
DIGEST_ALGORITHM = "SHA256"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_KID = re.compile(r"^[A-Za-z0-9_-]{43}$")


def check_digest_hex(digest_hex: str) -> str:
    """``digest_hex`` if it is a SHA-256 hex digest (64 hex characters), else ``ValueError``."""
    if not isinstance(digest_hex, str) or not _HEX64.match(digest_hex):
        raise ValueError("digest must be a SHA-256 hex digest (64 hex characters)")
    return digest_hex


def _require(name: str, value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return value


def build_client_assertion(
    *,
    client_id: str,
    kid: str,
    private_key_pem: bytes | rsa.RSAPrivateKey,
    audience: str,
    purpose_id: str,
    digest_hex: str | None,
    now: int,
    lifetime: int = 600,
    jti: str | None = None,
) -> str:
    """A signed client assertion (compact JWS, RS256).

    ``now`` becomes ``iat`` and ``now + lifetime`` becomes ``exp`` (both integers; the
    caller back-dates ``now`` if it wants a clock-skew margin). ``digest_hex`` is the
    SHA-256 hex of the Agid-JWT-TrackingEvidence JWS for an audited call; PDND copies it
    into the voucher. ``private_key_pem`` may also be an already loaded key.
    """
    _require("client_id", client_id)
    _require("audience", audience)
    _require("purpose_id", purpose_id)
    if not isinstance(kid, str) or not _KID.match(kid):
        raise ValueError("kid must be the 43-character key thumbprint PDND shows")
    if lifetime < 1:
        raise ValueError("lifetime must be at least one second")
    issued_at = int(now)
    payload: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti or str(uuid.uuid4()),
        "iat": issued_at,
        "exp": issued_at + int(lifetime),
        "purposeId": purpose_id,
    }
    if digest_hex is not None:
        payload["digest"] = {"alg": DIGEST_ALGORITHM, "value": check_digest_hex(digest_hex)}
    return jwt.encode(
        payload,
        private_key_pem,
        algorithm=ASSERTION_ALGORITHM,
        headers={"kid": kid, "typ": "JWT"},
    )
