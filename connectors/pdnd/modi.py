"""ModI headers for calling an e-service through PDND (ANPR and the like).

- ``Digest``: ``SHA-256=<base64(sha256(exact body bytes))>``.
- ``Agid-JWT-Signature`` (INTEGRITY_REST_02): a JWS whose ``signed_headers`` claim is an
  ARRAY of one-member objects with lowercase names, ``[{"digest": ...}, {"content-type":
  ...}]``, signed with the key registered on PDND (``kid``).
- ``Agid-JWT-TrackingEvidence`` (AUDIT_REST_02): who asked, from where, with which level of
  assurance. Its SHA-256 hex goes into the client assertion's ``digest``; PDND copies it
  into the voucher and the provider compares the two.

The ANPR gateway allows no clock skew: a token "created in the future" by a second is
refused. ``iat`` and ``nbf`` are therefore set ``skew`` seconds in the past (default 3),
and every time is an integer.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "DEFAULT_LIFETIME",
    "DEFAULT_SKEW",
    "AuditContext",
    "digest_header",
    "integrity_signature",
    "modi_audience",
    "sha256_hex",
    "tracking_evidence",
]

DEFAULT_SKEW = 3
DEFAULT_LIFETIME = 300
_VERSION_SEGMENT = re.compile(r"^v\d+$")
_PDND_SUFFIX = "-PDND"

PrivateKey = bytes | rsa.RSAPrivateKey


@dataclass(frozen=True)
class AuditContext:
    """The AUDIT_REST_02 claims of one call: the operator, the workstation, the LoA.

    ``user_id`` identifies the operator inside the comune (not necessarily a fiscal code),
    ``user_location`` the workstation or office, ``loa`` the level of assurance of the
    operator's login (for example ``"LoA3"`` or ``"SPID_L2"``, as the provider documents).
    """

    user_id: str
    user_location: str
    loa: str

    def __post_init__(self) -> None:
        for name in ("user_id", "user_location", "loa"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"AuditContext.{name} must be a non-empty string")


def sha256_hex(data: bytes | str) -> str:
    """Lowercase hex SHA-256 (of the UTF-8 bytes when given text)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def digest_header(body: bytes) -> str:
    """The ``Digest`` header value for ``body``: ``SHA-256=<base64>`` (RFC 3230)."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def modi_audience(call_url: str) -> str:
    """The ModI ``aud`` of a call, by the ANPR rule.

    The path segment ending in ``-PDND`` loses that suffix and the URL is cut right after
    the version segment (``/v1``); query and fragment are dropped::

        https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR-PDND/
            C030-servizioAccertamentoIdUnicoNazionale/v1/anpr-service-e002
        -> https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR/
            C030-servizioAccertamentoIdUnicoNazionale/v1

    ``ValueError`` when the URL has no scheme and host or no ``/vN`` segment.
    """
    parts = urlsplit(call_url)
    if not parts.scheme or not parts.netloc:
        raise ValueError("the call URL must be absolute")
    segments = parts.path.split("/")
    kept: list[str] = []
    for segment in segments:
        if segment.endswith(_PDND_SUFFIX):
            segment = segment[: -len(_PDND_SUFFIX)]
        kept.append(segment)
        if _VERSION_SEGMENT.match(segment):
            break
    else:
        raise ValueError("cannot derive the ModI audience: the URL has no /vN segment")
    return urlunsplit((parts.scheme, parts.netloc, "/".join(kept), "", ""))


def _times(now: float, lifetime: int, skew: int) -> dict[str, int]:
    if lifetime < 1:
        raise ValueError("lifetime must be at least one second")
    if skew < 0:
        raise ValueError("skew must not be negative")
    current = int(now)
    issued_at = current - int(skew)
    return {"iat": issued_at, "nbf": issued_at, "exp": current + int(lifetime)}


def _sign(payload: dict[str, Any], kid: str, private_key: PrivateKey) -> str:
    if not isinstance(kid, str) or not kid:
        raise ValueError("kid must be a non-empty string")
    return jwt.encode(payload, private_key, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})


def tracking_evidence(
    *,
    client_id: str,
    kid: str,
    private_key: PrivateKey,
    audience: str,
    purpose_id: str,
    audit: AuditContext,
    now: float,
    lifetime: int = DEFAULT_LIFETIME,
    skew: int = DEFAULT_SKEW,
    jti: str | None = None,
) -> str:
    """The Agid-JWT-TrackingEvidence JWS (AUDIT_REST_02).

    Header ``{alg: RS256, typ: JWT, kid}``; payload ``{iss, aud, purposeId, jti, iat, nbf,
    exp, userID, userLocation, LoA}``.
    """
    payload: dict[str, Any] = {
        "iss": client_id,
        "aud": audience,
        "purposeId": purpose_id,
        "jti": jti or str(uuid.uuid4()),
        **_times(now, lifetime, skew),
        "userID": audit.user_id,
        "userLocation": audit.user_location,
        "LoA": audit.loa,
    }
    return _sign(payload, kid, private_key)


def integrity_signature(
    *,
    client_id: str,
    kid: str,
    private_key: PrivateKey,
    audience: str,
    digest: str,
    content_type: str | None,
    now: float,
    lifetime: int = DEFAULT_LIFETIME,
    skew: int = DEFAULT_SKEW,
    jti: str | None = None,
) -> str:
    """The Agid-JWT-Signature JWS (INTEGRITY_REST_02).

    ``digest`` is the exact ``Digest`` header value. ``signed_headers`` is
    ``[{"digest": digest}, {"content-type": content_type}]``; the content-type entry is
    left out only when the request sends no ``Content-Type`` (``content_type=None``).
    """
    if not digest.startswith("SHA-256="):
        raise ValueError("digest must be a Digest header value (SHA-256=...)")
    signed_headers: list[dict[str, str]] = [{"digest": digest}]
    if content_type is not None:
        signed_headers.append({"content-type": content_type})
    payload: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti or str(uuid.uuid4()),
        **_times(now, lifetime, skew),
        "signed_headers": signed_headers,
    }
    return _sign(payload, kid, private_key)
