"""The trust marks an entity publishes about itself: which are still valid, which are due
for renewal, and getting fresh ones from their issuer.

The rules ("Trust Marks") say each member must expose in its entity configuration the trust
marks its issuers released, and that a trust mark's ``exp`` is bounded by the agreement
behind it; they do not say how a member gets a renewed one. Two ways are used here, both
federation endpoints of the issuer (found in its ``federation_entity`` metadata):

1. the trust mark endpoint of OpenID Federation 1.0 (``federation_trust_mark_endpoint``,
   ``GET ?trust_mark_type=&sub=``; ``trust_mark_id`` is sent as well, the name of earlier
   drafts), answering the trust mark JWT;
2. otherwise the fetch endpoint (``federation_fetch_endpoint?sub=``): the subordinate
   statement the issuer signs about the entity carries the trust marks it issued to it
   (as the reference implementation's trust anchor does), when the issuer is a superior.

A fresh trust mark is kept only after static validation (``verify_trust_mark``: the
issuer's signature, ``sub``, ``id``, not expired) with the issuer's keys: the trust
anchor's configured out of band, or an intermediate's as its superior's statement gives
them (its trust chain resolved to the anchor). Hand-written, like the rest of the
federation logic; ``joserfc`` verifies the signatures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FederationError, TrustMarkError
from .federation import (
    EntityStatement,
    TrustChainResolver,
    trust_mark_type,
    verify_statement,
    verify_trust_mark,
)
from .tokens import peek

__all__ = [
    "HeldMark",
    "held_mark",
    "request_trust_mark",
    "still_valid",
]


@dataclass(frozen=True)
class HeldMark:
    """A trust mark as published (``{"id", "iss", "trust_mark"}``) with its times, read
    without verification (it is ours; whoever relies on it verifies it)."""

    id: str
    iss: str
    jwt: str
    iat: float | None
    exp: float | None

    def entry(self) -> dict[str, Any]:
        return {"id": self.id, "iss": self.iss, "trust_mark": self.jwt}

    def expired(self, now: float) -> bool:
        return self.exp is not None and self.exp <= now

    def due(self, now: float, *, margin: float) -> bool:
        """Renew when expired, within ``margin`` seconds of ``exp``, or past half of its
        lifetime (so one failed round never lets it lapse)."""
        if self.exp is None:
            return False
        if self.exp - now <= margin:
            return True
        return self.iat is not None and now >= self.iat + (self.exp - self.iat) / 2


def held_mark(entry: Mapping[str, Any]) -> HeldMark | None:
    """A published entry read back, or None when it is not a readable trust mark."""
    token = entry.get("trust_mark")
    if not isinstance(token, str):
        return None
    try:
        _header, claims = peek(token, TrustMarkError)
    except TrustMarkError:
        return None
    mark_id = trust_mark_type(entry) or trust_mark_type(claims)
    iss = claims.get("iss")
    if not isinstance(mark_id, str) or not isinstance(iss, str):
        return None
    iat, exp = claims.get("iat"), claims.get("exp")
    return HeldMark(
        mark_id,
        iss,
        token,
        float(iat) if isinstance(iat, int | float) else None,
        float(exp) if isinstance(exp, int | float) else None,
    )


def still_valid(entries: Iterable[Mapping[str, Any]], now: float) -> list[dict[str, Any]]:
    """The entries worth publishing: readable and not expired (an expired trust mark would
    only get the entity refused)."""
    out = []
    for entry in entries:
        mark = held_mark(entry)
        if mark is not None and not mark.expired(now):
            out.append(mark.entry())
    return out


async def _issuer(
    resolver: TrustChainResolver, issuer: str
) -> tuple[EntityStatement, dict[str, Any]]:
    """The issuer's configuration and the keys it signs trust marks with, as the
    federation vouches for them (the anchor's configured keys, or an intermediate's keys in
    its superior's statement)."""
    anchor = resolver.anchors.get(issuer.rstrip("/"))
    configuration = await resolver.fetch_configuration(issuer)
    if anchor is not None:
        verified = verify_statement(
            configuration.jwt, anchor.jwks, now=resolver.clock(), leeway=resolver.leeway
        )
        return verified, anchor.jwks
    chain = await resolver.resolve(issuer, "federation_entity")
    return configuration, chain.statements[1].jwks


async def request_trust_mark(
    resolver: TrustChainResolver, *, issuer: str, mark_id: str, subject: str
) -> HeldMark:
    """A fresh trust mark ``mark_id`` for ``subject`` from ``issuer``, statically valid."""
    configuration, keys = await _issuer(resolver, issuer)
    now = resolver.clock()
    tokens: list[str] = []
    endpoint = configuration.endpoint("federation_trust_mark_endpoint")
    if endpoint is not None:
        params = {"trust_mark_type": mark_id, "trust_mark_id": mark_id, "sub": subject}
        tokens.append((await resolver._get(endpoint, params)).strip())
    else:
        fetch = configuration.endpoint("federation_fetch_endpoint")
        if fetch is None:
            raise TrustMarkError("endpoint", f"{issuer} publishes no trust mark or fetch endpoint")
        statement = verify_statement(
            await resolver._get(fetch, {"sub": subject}), keys, now=now, leeway=resolver.leeway
        )
        if statement.iss.rstrip("/") != issuer.rstrip("/") or (
            statement.sub.rstrip("/") != subject.rstrip("/")
        ):
            raise FederationError("fetch", f"{issuer} answered a statement about another pair")
        tokens += [
            str(m["trust_mark"])
            for m in statement.trust_marks
            if trust_mark_type(m) == mark_id and isinstance(m.get("trust_mark"), str)
        ]
    problems = []
    for token in tokens:
        try:
            verify_trust_mark(token, keys, subject=subject, now=now, expected_id=mark_id)
        except TrustMarkError as exc:
            problems.append(str(exc))
            continue
        mark = held_mark({"id": mark_id, "trust_mark": token})
        if mark is not None and mark.iss.rstrip("/") == issuer.rstrip("/"):
            return mark
        problems.append("the trust mark names another issuer")
    raise TrustMarkError(
        problems[0].split(":", 1)[0] if problems else "missing",
        f"{issuer} issued no valid trust mark {mark_id}"
        + (f" ({'; '.join(problems)})" if problems else ""),
    )
