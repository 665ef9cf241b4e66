"""A federation intermediate (the rules' "Soggetto Aggregatore", SA): what it signs.

An intermediate publishes its own entity configuration (``federation_entity`` metadata
with the fetch, list, resolve and trust mark status endpoints, whose paths the CIE profile
fixes as ``*/fetch``, ``*/list``, ``*/resolve``, ``*/trust_mark_status``), the subordinate
statements about its direct subordinates (``iss`` the intermediate, ``sub`` the
subordinate, ``jwks`` the subordinate's federation keys, ``metadata_policy``,
``constraints``, the trust marks it issued to it), the trust marks it issues and the
answers of its resolve endpoint. Hand-written like the rest of the federation logic (rules,
"Intermediate Entities", "Entity Statements", "Federation Endpoints"); ``joserfc`` signs.

This is the Light (transparent) kind of aggregator: the subordinates keep their own entity
IDs, entity configurations and redirect URIs; the intermediate only vouches for their keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .federation import TrustChain, sign_statement
from .keys import KeyRing
from .tokens import sign_jws

__all__ = [
    "IntermediateConfig",
    "federation_endpoints",
    "intermediate_entity_configuration",
    "issue_trust_mark",
    "resolve_response",
    "subordinate_statement",
]

TRUST_MARK_TYP = "trust-mark+jwt"
RESOLVE_RESPONSE_TYP = "resolve-response+jwt"


def federation_endpoints(entity_id: str) -> dict[str, str]:
    """The four endpoints of an intermediate under its entity ID (CIE's fixed paths)."""
    base = entity_id.rstrip("/")
    return {
        "federation_fetch_endpoint": f"{base}/fetch",
        "federation_list_endpoint": f"{base}/list",
        "federation_resolve_endpoint": f"{base}/resolve",
        "federation_trust_mark_status_endpoint": f"{base}/trust_mark_status",
    }


@dataclass
class IntermediateConfig:
    """What an intermediate publishes about itself (rules, "Trust Anchor (TA) and
    Intermediate (SA) Metadata")."""

    entity_id: str
    organization_name: str
    contacts: list[str]
    authority_hints: list[str]
    homepage_uri: str = ""
    policy_uri: str = ""
    logo_uri: str = ""
    trust_marks: list[dict[str, Any]] = field(default_factory=list)
    lifetime: timedelta = timedelta(days=1)


def intermediate_entity_configuration(
    config: IntermediateConfig, keys: KeyRing, now: datetime
) -> str:
    """The intermediate's entity configuration (``iss`` = ``sub``), signed with its active
    federation key; ``jwks`` carries the retired keys still in their overlap."""
    iat = int(now.timestamp())
    fed: dict[str, Any] = {
        "organization_name": config.organization_name,
        "contacts": list(config.contacts),
        **federation_endpoints(config.entity_id),
    }
    for name in ("homepage_uri", "policy_uri", "logo_uri"):
        value = getattr(config, name)
        if value:
            fed[name] = value
    claims = {
        "iss": config.entity_id,
        "sub": config.entity_id,
        "iat": iat,
        "exp": iat + int(config.lifetime.total_seconds()),
        "jwks": keys.jwks(now),
        "authority_hints": list(config.authority_hints),
        "trust_marks": list(config.trust_marks),
        "metadata": {"federation_entity": fed},
    }
    return sign_statement(claims, keys.active)


def issue_trust_mark(
    issuer: str,
    keys: KeyRing,
    *,
    mark_id: str,
    subject: str,
    now: datetime,
    lifetime: timedelta,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A trust mark the intermediate issues to a subordinate, as the entry published in a
    ``trust_marks`` list: ``{"id", "iss", "trust_mark"}``."""
    iat = int(now.timestamp())
    claims = {
        **(extra or {}),
        "id": mark_id,
        "iss": issuer,
        "sub": subject,
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
    }
    token = sign_jws(claims, keys.active, typ=TRUST_MARK_TYP)
    return {"id": mark_id, "iss": issuer, "trust_mark": token}


def subordinate_statement(
    issuer: str,
    keys: KeyRing,
    *,
    subject: str,
    subject_jwks: Mapping[str, Any],
    now: datetime,
    lifetime: timedelta,
    metadata_policy: Mapping[str, Any] | None = None,
    constraints: Mapping[str, Any] | None = None,
    trust_marks: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The statement ``issuer`` makes about its direct subordinate ``subject`` (rules,
    "Entity Statement"): the subordinate's federation ``jwks``, the policy for its metadata,
    the constraints on what it may be, the trust marks issued to it."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "iat": iat,
        "exp": iat + int(lifetime.total_seconds()),
        "jwks": dict(subject_jwks),
    }
    if metadata_policy:
        claims["metadata_policy"] = dict(metadata_policy)
    if constraints:
        claims["constraints"] = dict(constraints)
    if trust_marks:
        claims["trust_marks"] = [dict(m) for m in trust_marks]
    return sign_statement(claims, keys.active)


def resolve_response(
    issuer: str,
    keys: KeyRing,
    chain: TrustChain,
    *,
    now: datetime,
    entity_types: Sequence[str] = (),
) -> str:
    """The resolve endpoint's answer (rules, EN 4.1): the subject's final metadata (only
    ``entity_types`` when given), the trust marks valid now and the serialized trust chain,
    signed by the intermediate (``typ`` ``resolve-response+jwt``, as OpenID Federation
    names it; it carries no ``jwks``, so it is not an entity statement). It expires with the
    chain."""
    metadata = {k: v for k, v in chain.metadata.items() if not entity_types or k in entity_types}
    claims = {
        "iss": issuer,
        "sub": chain.subject,
        "iat": int(now.timestamp()),
        "exp": chain.exp,
        "metadata": metadata,
        "trust_marks": [{"id": m.id, "trust_mark": m.jwt} for m in chain.trust_marks],
        "trust_chain": chain.jwts,
    }
    return sign_jws(claims, keys.active, typ=RESOLVE_RESPONSE_TYP)
