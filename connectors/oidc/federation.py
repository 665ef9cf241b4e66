"""Entity configurations, entity statements, trust marks and trust chains.

Hand-written (``joserfc`` signs and verifies; no maintained Python library resolves
federation trust chains outside a full OIDC framework): statement parsing, chain discovery
through ``authority_hints`` and the superiors' ``federation_fetch_endpoint``, the
``max_path_length`` constraint, loop detection, the metadata policy (``policy.py``) and
static plus dynamic trust mark validation. Trust anchors are configured out of band (entity
ID and federation JWKS): a chain is trusted only when its last statement verifies with them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from joserfc.jwk import ECKey, RSAKey
from yarl import URL

from .errors import FederationError, TrustChainError, TrustMarkError
from .keys import RpKeys
from .policy import apply_metadata_policy, merge_policies
from .tokens import MAX_JWT_BYTES, check_times, peek, sign_jws, verify_jws

__all__ = [
    "ENTITY_STATEMENT_TYP",
    "ChainCache",
    "EntityStatement",
    "RpFederationConfig",
    "TrustAnchor",
    "TrustChain",
    "TrustChainResolver",
    "TrustMark",
    "entity_configuration_url",
    "parse_statement",
    "rp_entity_configuration",
    "rp_metadata",
    "sign_statement",
    "trust_mark_type",
    "verify_statement",
    "verify_trust_mark",
]

ENTITY_STATEMENT_TYP = "entity-statement+jwt"
STATUS_RESPONSE_TYP = "trust-mark-status-response+jwt"
ENTITY_STATEMENT_CONTENT_TYPE = "application/entity-statement+jwt"
WELL_KNOWN = ".well-known/openid-federation"


def entity_configuration_url(entity_id: str) -> str:
    """``{entity_id}/.well-known/openid-federation`` (one slash between, as the rules say)."""
    return entity_id.rstrip("/") + "/" + WELL_KNOWN


def _same_entity(a: str, b: str) -> bool:
    """Entity IDs compared as the rules write them, with or without a trailing slash."""
    return a.rstrip("/") == b.rstrip("/")


@dataclass(frozen=True)
class EntityStatement:
    """A parsed entity statement (``iss == sub``: an entity configuration)."""

    jwt: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def iss(self) -> str:
        return str(self.claims["iss"])

    @property
    def sub(self) -> str:
        return str(self.claims["sub"])

    @property
    def exp(self) -> int:
        return int(self.claims["exp"])

    @property
    def is_configuration(self) -> bool:
        return self.iss == self.sub

    @property
    def jwks(self) -> dict[str, Any]:
        return dict(self.claims.get("jwks") or {})

    @property
    def metadata(self) -> dict[str, Any]:
        value = self.claims.get("metadata")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def metadata_policy(self) -> dict[str, Any]:
        value = self.claims.get("metadata_policy")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def authority_hints(self) -> list[str]:
        return list(self.claims.get("authority_hints") or [])

    @property
    def trust_marks(self) -> list[dict[str, Any]]:
        value = self.claims.get("trust_marks")
        return [tm for tm in value if isinstance(tm, dict)] if isinstance(value, list) else []

    @property
    def constraints(self) -> dict[str, Any]:
        value = self.claims.get("constraints")
        return dict(value) if isinstance(value, dict) else {}

    def endpoint(self, name: str) -> str | None:
        """A ``federation_entity`` endpoint (e.g. ``federation_fetch_endpoint``)."""
        fed = self.metadata.get("federation_entity")
        value = fed.get(name) if isinstance(fed, dict) else None
        return value if isinstance(value, str) else None


def _check_shape(claims: Mapping[str, Any]) -> None:
    for name in ("iss", "sub"):
        if not isinstance(claims.get(name), str) or not claims[name]:
            raise FederationError("malformed", f"the entity statement has no {name}")
    for name in ("iat", "exp"):
        value = claims.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise FederationError("malformed", f"the entity statement has no numeric {name}")
    jwks = claims.get("jwks")
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise FederationError("malformed", "the entity statement has no jwks")
    hints = claims.get("authority_hints", [])
    if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
        raise FederationError("malformed", "authority_hints must be a list of entity IDs")
    for name in ("metadata", "metadata_policy", "constraints"):
        if name in claims and not isinstance(claims[name], dict):
            raise FederationError("malformed", f"{name} must be an object")


def parse_statement(jwt: str | bytes) -> EntityStatement:
    """An entity statement's header and claims, NOT verified (shape checked)."""
    header, claims = peek(jwt, FederationError)
    _check_shape(claims)
    token = jwt.decode("ascii") if isinstance(jwt, bytes) else jwt
    return EntityStatement(token.strip(), header, claims)


def verify_statement(
    jwt: str | bytes, jwks: Mapping[str, Any], *, now: float, leeway: float = 60
) -> EntityStatement:
    """An entity statement signed by a key of ``jwks`` (``typ`` ``entity-statement+jwt``),
    not expired."""
    statement = parse_statement(jwt)
    header, claims = verify_jws(
        statement.jwt, jwks, typ=ENTITY_STATEMENT_TYP, error=FederationError
    )
    check_times(claims, now, leeway=leeway, error=FederationError)
    return EntityStatement(statement.jwt, header, claims)


def sign_statement(claims: Mapping[str, Any], key: RSAKey | ECKey) -> str:
    """An entity statement (or configuration) signed with a federation key."""
    return sign_jws(claims, key, typ=ENTITY_STATEMENT_TYP)


def trust_mark_type(entry: Mapping[str, Any]) -> str | None:
    """The identifier of a trust mark, from a ``trust_marks`` entry or a trust mark's claims:
    ``id`` as the SPID/CIE rules name it, else ``trust_mark_type`` (OpenID Federation 1.0's
    name) or ``trust_mark_id`` (the reference implementation, spid-cie-oidc, publishes these
    two and no ``id``)."""
    for name in ("id", "trust_mark_type", "trust_mark_id"):
        value = entry.get(name)
        if isinstance(value, str) and value:
            return value
    return None


@dataclass(frozen=True)
class TrustMark:
    id: str
    iss: str
    sub: str
    claims: dict[str, Any]
    jwt: str


def verify_trust_mark(
    jwt: str,
    issuer_jwks: Mapping[str, Any],
    *,
    subject: str,
    now: float,
    expected_id: str | None = None,
    leeway: float = 60,
) -> TrustMark:
    """Static trust mark validation (rules, "Trust Mark Validation"): the issuer's signature,
    ``sub`` equal to the entity carrying it, not expired, and the expected ``id``."""
    header, claims = verify_jws(jwt, issuer_jwks, error=TrustMarkError)
    if header.get("typ") not in (None, "JWT", "trust-mark+jwt"):
        raise TrustMarkError("typ", "unexpected trust mark typ")
    mark_id = trust_mark_type(claims)
    if not isinstance(mark_id, str) or not isinstance(claims.get("iss"), str):
        raise TrustMarkError("malformed", "the trust mark has no id or iss")
    if expected_id is not None and mark_id != expected_id:
        raise TrustMarkError("id", "the trust mark id differs from the one declared")
    if not isinstance(claims.get("sub"), str) or not _same_entity(claims["sub"], subject):
        raise TrustMarkError("sub", "the trust mark was issued to another entity")
    exp = claims.get("exp")
    if exp is not None:
        if not isinstance(exp, int | float) or exp + leeway < now:
            raise TrustMarkError("expired", f"the trust mark {mark_id} has expired")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or iat - leeway > now:
        raise TrustMarkError("iat", "the trust mark has no iat or one in the future")
    return TrustMark(mark_id, str(claims["iss"]), str(claims["sub"]), claims, jwt)


# --- building the relying party's entity configuration ------------------------------------


@dataclass
class RpFederationConfig:
    """What a relying party publishes about itself. ``entity_id`` is also its ``client_id``."""

    entity_id: str
    redirect_uris: list[str]
    organization_name: str
    contacts: list[str]
    authority_hints: list[str]
    homepage_uri: str = ""
    policy_uri: str = ""
    logo_uri: str = ""
    trust_marks: list[dict[str, Any]] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code", "refresh_token"])
    id_token_signed_response_alg: str = "RS256"
    userinfo_signed_response_alg: str = "RS256"
    userinfo_encrypted_response_alg: str = "RSA-OAEP-256"
    userinfo_encrypted_response_enc: str = "A256CBC-HS512"
    federation_resolve_endpoint: str | None = None
    lifetime: timedelta = timedelta(days=1)


def rp_metadata(config: RpFederationConfig, keys: RpKeys, now: datetime) -> dict[str, Any]:
    """``metadata`` of the RP's entity configuration (``openid_relying_party`` and
    ``federation_entity``), as "OpenID Connect Relying Party Metadata" lists it."""
    rp = {
        "client_id": config.entity_id,
        "client_name": config.organization_name,
        "application_type": "web",
        "client_registration_types": ["automatic"],
        "jwks": keys.core_jwks(now),
        "redirect_uris": list(config.redirect_uris),
        "grant_types": list(config.grant_types),
        "response_types": ["code"],
        "subject_type": "pairwise",
        "id_token_signed_response_alg": config.id_token_signed_response_alg,
        "userinfo_signed_response_alg": config.userinfo_signed_response_alg,
        "userinfo_encrypted_response_alg": config.userinfo_encrypted_response_alg,
        "userinfo_encrypted_response_enc": config.userinfo_encrypted_response_enc,
        "token_endpoint_auth_method": "private_key_jwt",
        "contacts": list(config.contacts),
    }
    fed: dict[str, Any] = {
        "organization_name": config.organization_name,
        "contacts": list(config.contacts),
    }
    for name in ("homepage_uri", "policy_uri", "logo_uri", "federation_resolve_endpoint"):
        value = getattr(config, name)
        if value:
            fed[name] = value
    return {"openid_relying_party": rp, "federation_entity": fed}


def rp_entity_configuration(config: RpFederationConfig, keys: RpKeys, now: datetime) -> str:
    """The RP's entity configuration JWT (``application/entity-statement+jwt``), signed with
    its active federation key."""
    iat = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": config.entity_id,
        "sub": config.entity_id,
        "iat": iat,
        "exp": iat + int(config.lifetime.total_seconds()),
        "jwks": keys.federation.jwks(now),
        "authority_hints": list(config.authority_hints),
        "trust_marks": list(config.trust_marks),
        "metadata": rp_metadata(config, keys, now),
    }
    return sign_statement(claims, keys.federation.active)


# --- trust chain resolution -----------------------------------------------------------------


@dataclass(frozen=True)
class TrustAnchor:
    """A trust anchor configured out of band: its entity ID and federation public keys."""

    entity_id: str
    jwks: dict[str, Any]


@dataclass(frozen=True)
class TrustChain:
    """A verified chain: ``statements`` is ``[leaf EC, ES..., anchor EC]``; ``metadata`` the
    leaf's metadata after every policy; ``exp`` the earliest expiry in the chain."""

    subject: str
    anchor: str
    statements: tuple[EntityStatement, ...]
    metadata: dict[str, Any]
    exp: int
    trust_marks: tuple[TrustMark, ...]

    @property
    def jwts(self) -> list[str]:
        return [s.jwt for s in self.statements]

    def entity_metadata(self, entity_type: str) -> dict[str, Any]:
        value = self.metadata.get(entity_type)
        if not isinstance(value, dict):
            raise TrustChainError("metadata", f"{self.subject} has no {entity_type} metadata")
        return value


class ChainCache:
    """Resolved chains kept until the earliest of their ``exp`` and ``max_age`` (the rules ask
    the RP to renew chains periodically; a day by default)."""

    def __init__(self, max_age: float = 86400.0) -> None:
        self.max_age = max_age
        self._chains: dict[tuple[str, str], tuple[float, TrustChain]] = {}

    def get(self, subject: str, entity_type: str, now: float) -> TrustChain | None:
        item = self._chains.get((subject, entity_type))
        if item is None:
            return None
        stored, chain = item
        if chain.exp <= now or stored + self.max_age <= now:
            del self._chains[(subject, entity_type)]
            return None
        return chain

    def put(self, chain: TrustChain, entity_type: str, now: float) -> None:
        self._chains[(chain.subject, entity_type)] = (now, chain)

    def clear(self) -> None:
        self._chains.clear()


class TrustChainResolver:
    """Resolves and validates a subject's trust chain to one of ``anchors``.

    Discovery fetches the subject's entity configuration, then for each ``authority_hints``
    entry (trust anchors first, then intermediates: the shortest path wins) the superior's
    entity configuration and, from its ``federation_fetch_endpoint``, the statement it issued
    about the subordinate. Each subordinate's configuration must verify with the keys in its
    superior's statement; the anchor's statements with the configured anchor keys. Refused:
    bad or unknown-key signatures, ``none``/``HS*``, expired statements, loops, more
    intermediates than ``max_path_length``, too many ``authority_hints``, policy violations,
    and (when ``required_trust_marks`` is set) subjects without a valid trust mark of those
    ids; with ``check_trust_mark_status`` the issuer's status endpoint must say active.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        anchors: Sequence[TrustAnchor],
        *,
        clock: Callable[[], float] = time.time,
        leeway: float = 60,
        timeout: float = 5.0,
        max_authority_hints: int = 10,
        max_depth: int = 4,
        cache: ChainCache | None = None,
        allow_http: bool = False,
        check_trust_mark_status: bool = False,
    ) -> None:
        if not anchors:
            raise ValueError("at least one trust anchor is needed")
        self.session = session
        self.anchors = {a.entity_id.rstrip("/"): a for a in anchors}
        self.clock = clock
        self.leeway = leeway
        self.timeout = timeout
        self.max_authority_hints = max_authority_hints
        self.max_depth = max_depth
        self.cache = cache if cache is not None else ChainCache()
        self.allow_http = allow_http
        self.check_trust_mark_status = check_trust_mark_status
        self.fetches = 0  # HTTP requests made (tests assert the cache works)

    # -- HTTP ------------------------------------------------------------------------------

    def _checked_url(self, url: str) -> URL:
        parsed = URL(url)
        if parsed.scheme != "https" and not (self.allow_http and parsed.scheme == "http"):
            raise FederationError("url", f"federation URLs must be https: {url}")
        if not parsed.host:
            raise FederationError("url", f"not an absolute URL: {url}")
        return parsed

    async def _get(self, url: str, params: Mapping[str, str] | None = None) -> str:
        target = self._checked_url(url)
        if params:
            target = target.extend_query(params)
        self.fetches += 1
        try:
            async with self.session.get(
                target, timeout=aiohttp.ClientTimeout(total=self.timeout), allow_redirects=False
            ) as resp:
                body = await resp.content.read(MAX_JWT_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FederationError("unreachable", f"{target.host}: {type(exc).__name__}") from exc
        if status != 200:
            raise FederationError("unreachable", f"{target} answered HTTP {status}")
        if len(body) > MAX_JWT_BYTES:
            raise FederationError("oversize", f"{target} sent more than {MAX_JWT_BYTES} bytes")
        try:
            return body.decode("ascii")
        except UnicodeDecodeError as exc:
            raise FederationError("malformed", f"{target} did not send a JWT") from exc

    async def fetch_configuration(self, entity_id: str) -> EntityStatement:
        """An entity configuration, verified with its own keys (self-signed) and not expired;
        trust in it comes only from a superior's statement."""
        statement = parse_statement(await self._get(entity_configuration_url(entity_id)))
        if not (_same_entity(statement.iss, entity_id) and statement.is_configuration):
            raise FederationError("iss", f"the configuration of {entity_id} names another entity")
        return verify_statement(statement.jwt, statement.jwks, now=self.clock(), leeway=self.leeway)

    async def fetch_subordinate(
        self, superior: EntityStatement, subject: str, jwks: Mapping[str, Any]
    ) -> EntityStatement:
        """The statement ``superior`` issued about ``subject``, verified with ``jwks``."""
        endpoint = superior.endpoint("federation_fetch_endpoint")
        if endpoint is None:
            raise TrustChainError("fetch", f"{superior.sub} publishes no federation_fetch_endpoint")
        statement = verify_statement(
            await self._get(endpoint, {"sub": subject}), jwks, now=self.clock(), leeway=self.leeway
        )
        if not _same_entity(statement.iss, superior.sub) or not _same_entity(
            statement.sub, subject
        ):
            raise TrustChainError(
                "fetch", f"{superior.sub} answered a statement about another pair"
            )
        return statement

    # -- discovery -------------------------------------------------------------------------

    async def _link(
        self, entity: EntityStatement, superior_id: str
    ) -> tuple[EntityStatement, EntityStatement]:
        """``(superior's configuration, its statement about entity)``; ``entity``'s own
        configuration must verify with the keys of that statement."""
        anchor = self.anchors.get(superior_id.rstrip("/"))
        superior = await self.fetch_configuration(superior_id)
        if anchor is not None:  # the anchor's own configuration must carry its known keys
            superior = verify_statement(
                superior.jwt, anchor.jwks, now=self.clock(), leeway=self.leeway
            )
        keys = anchor.jwks if anchor is not None else superior.jwks
        statement = await self.fetch_subordinate(superior, entity.sub, keys)
        verify_statement(entity.jwt, statement.jwks, now=self.clock(), leeway=self.leeway)
        return superior, statement

    async def _up(
        self, entity: EntityStatement, visited: frozenset[str], depth: int
    ) -> list[EntityStatement]:
        hints = entity.authority_hints
        if not hints:
            raise TrustChainError("authority_hints", f"{entity.sub} names no superior")
        if len(hints) > self.max_authority_hints:
            raise TrustChainError("authority_hints", f"{entity.sub} names too many superiors")
        problems: list[str] = []
        ordered = [h for h in hints if h.rstrip("/") in self.anchors]
        ordered += [h for h in hints if h.rstrip("/") not in self.anchors]
        for hint in ordered:
            if hint.rstrip("/") in visited:
                problems.append(f"loop: {hint} is already in the chain")
                continue
            is_anchor = hint.rstrip("/") in self.anchors
            if not is_anchor and depth + 1 > self.max_depth:
                problems.append(f"path_length: more than {self.max_depth} intermediates")
                continue
            try:
                superior, statement = await self._link(entity, hint)
                if is_anchor:
                    return [statement, superior]
                rest = await self._up(superior, visited | {hint.rstrip("/")}, depth + 1)
            except FederationError as exc:
                problems.append(f"{hint}: {exc}")
                continue
            return [statement, *rest]
        checks = "loop" if problems and all(p.startswith("loop") for p in problems) else "no_chain"
        raise TrustChainError(checks, f"{entity.sub}: " + "; ".join(problems))

    async def resolve(
        self,
        subject: str,
        entity_type: str,
        *,
        required_trust_marks: Collection[str] = (),
        use_cache: bool = True,
    ) -> TrustChain:
        """The verified chain of ``subject`` with its final ``entity_type`` metadata."""
        now = self.clock()
        if use_cache:
            cached = self.cache.get(subject, entity_type, now)
            if cached is not None:
                return cached
        if subject.rstrip("/") in self.anchors:
            raise TrustChainError("subject", "a trust anchor is not a leaf")
        leaf = await self.fetch_configuration(subject)
        if entity_type not in leaf.metadata:
            raise TrustChainError("metadata", f"{subject} has no {entity_type} metadata")
        if required_trust_marks and not any(
            trust_mark_type(tm) in required_trust_marks for tm in leaf.trust_marks
        ):  # cheap filter before any discovery (rules, "Trust Marks as deterrent")
            raise TrustMarkError("missing", f"{subject} shows no trust mark of the required ids")
        upward = await self._up(leaf, frozenset({subject.rstrip("/")}), 0)
        statements = (leaf, *upward)
        chain = self._validate(subject, entity_type, statements)
        marks = await self._trust_marks(chain, required_trust_marks)
        chain = TrustChain(
            chain.subject, chain.anchor, chain.statements, chain.metadata, chain.exp, marks
        )
        self.cache.put(chain, entity_type, now)
        return chain

    def _validate(
        self, subject: str, entity_type: str, statements: tuple[EntityStatement, ...]
    ) -> TrustChain:
        anchor_ec = statements[-1]
        subordinate = statements[1:-1]  # ES_1 (about the leaf) ... ES_n (by the anchor)
        n = len(subordinate)
        limits: list[tuple[int, int]] = []
        anchor_max = anchor_ec.constraints.get("max_path_length")
        if anchor_max is not None:
            limits.append((n - 1, anchor_max))
        for k, statement in enumerate(subordinate, start=1):
            # ES_k is about intermediate k-1 (k >= 2): its max_path_length bounds the
            # intermediates between that entity and the leaf, i.e. k - 2 (0 means it may
            # have leaves only, as X.509's pathLenConstraint). On ES_1 (about the leaf)
            # the constraint has nothing to count.
            value = statement.constraints.get("max_path_length")
            if value is not None and k >= 2:
                limits.append((k - 2, value))
            allowed = statement.constraints.get("allowed_leaf_entity_types")
            if isinstance(allowed, list) and entity_type not in allowed:
                raise TrustChainError("constraints", f"{entity_type} leaves are not allowed")
        for used, limit in limits:
            if not isinstance(limit, int) or used > limit:
                raise TrustChainError(
                    "path_length", f"{used} intermediates exceed max_path_length {limit}"
                )
        policy: dict[str, Any] = {}
        critical = anchor_ec.claims.get("metadata_policy_crit") or []
        for statement in reversed(subordinate):  # from the anchor down
            policy = merge_policies(policy, statement.metadata_policy, critical)
        leaf_metadata = dict(statements[0].metadata)
        for entity, params in subordinate[0].metadata.items():  # the superior's overrides
            if isinstance(params, dict):
                leaf_metadata[entity] = {**leaf_metadata.get(entity, {}), **params}
        metadata = apply_metadata_policy(leaf_metadata, policy, critical)
        return TrustChain(
            subject,
            anchor_ec.sub,
            statements,
            metadata,
            min(s.exp for s in statements),
            (),
        )

    async def _trust_marks(
        self, chain: TrustChain, required: Collection[str]
    ) -> tuple[TrustMark, ...]:
        """The leaf's trust marks that verify. Issuers: the anchor or an intermediate of this
        chain, listed for that id in the anchor's ``trust_mark_issuers`` (the anchor itself
        always may). With ``required``, at least one of those ids must be valid."""
        anchor_ec = chain.statements[-1]
        keys_by_issuer = {anchor_ec.sub.rstrip("/"): anchor_ec.jwks}
        configurations = {s.sub.rstrip("/"): s for s in chain.statements if s.is_configuration}
        for statement in chain.statements[1:-1]:  # an intermediate's keys, as its superior says
            if statement.sub.rstrip("/") != chain.subject.rstrip("/"):
                keys_by_issuer[statement.sub.rstrip("/")] = statement.jwks
        issuers = anchor_ec.claims.get("trust_mark_issuers") or {}
        now = self.clock()
        valid: list[TrustMark] = []
        problems: list[str] = []
        for entry in chain.statements[0].trust_marks:
            token, declared = entry.get("trust_mark"), trust_mark_type(entry)
            if not isinstance(token, str):
                continue
            try:
                _header, claims = peek(token, TrustMarkError)
                iss = str(claims.get("iss", "")).rstrip("/")
                allowed = issuers.get(declared) if isinstance(issuers, dict) else None
                if iss != anchor_ec.sub.rstrip("/") and (
                    not isinstance(allowed, list) or iss not in [a.rstrip("/") for a in allowed]
                ):
                    raise TrustMarkError("issuer", f"{iss} may not issue trust mark {declared}")
                jwks = keys_by_issuer.get(iss)
                if not jwks:
                    raise TrustMarkError(
                        "issuer", f"the keys of trust mark issuer {iss} are unknown"
                    )
                mark = verify_trust_mark(
                    token,
                    jwks,
                    subject=chain.subject,
                    now=now,
                    expected_id=declared if isinstance(declared, str) else None,
                    leeway=self.leeway,
                )
                if self.check_trust_mark_status:
                    issuer_ec = configurations.get(iss)
                    await self._check_status(mark, issuer_ec, jwks)
            except TrustMarkError as exc:
                problems.append(str(exc))
                continue
            valid.append(mark)
        if required and not any(m.id in required for m in valid):
            raise TrustMarkError(
                problems[0].split(":", 1)[0] if problems else "missing",
                f"{chain.subject} has no valid trust mark of the required ids"
                + (f" ({'; '.join(problems)})" if problems else ""),
            )
        return tuple(valid)

    async def _check_status(
        self,
        mark: TrustMark,
        issuer: EntityStatement | None,
        issuer_jwks: Mapping[str, Any] | None = None,
    ) -> None:
        """Dynamic validation at the issuer's ``federation_trust_mark_status_endpoint``. Two
        answers are understood: the JSON ``{"active": true}`` of the draft the rules cite,
        and the signed ``trust-mark-status-response+jwt`` of OpenID Federation 1.0 (what the
        reference implementation answers: ``status: "active"``, signed by the issuer, about
        this subject's trust mark of this id)."""
        endpoint = issuer.endpoint("federation_trust_mark_status_endpoint") if issuer else None
        if endpoint is None:
            raise TrustMarkError("status", f"{mark.iss} publishes no trust mark status endpoint")
        target = self._checked_url(endpoint)
        self.fetches += 1
        try:
            async with self.session.post(
                target,
                data={"id": mark.id, "sub": mark.sub},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                body = await resp.content.read(MAX_JWT_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TrustMarkError("status", f"{mark.iss}: {type(exc).__name__}") from exc
        if status != 200 or len(body) > MAX_JWT_BYTES:
            raise TrustMarkError("revoked", f"trust mark {mark.id} is not active at its issuer")
        if not body.lstrip().startswith(b"{"):
            if self._signed_status_active(body, mark, issuer_jwks):
                return
            raise TrustMarkError("revoked", f"trust mark {mark.id} is not active at its issuer")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("active") is not True:
            raise TrustMarkError("revoked", f"trust mark {mark.id} is not active at its issuer")

    def _signed_status_active(
        self, body: bytes, mark: TrustMark, issuer_jwks: Mapping[str, Any] | None
    ) -> bool:
        """A ``trust-mark-status-response+jwt``: signed with the issuer's federation keys,
        ``iss`` the issuer, about a trust mark of this id and subject, ``status`` active."""
        if not issuer_jwks:
            raise TrustMarkError("status", f"the keys of trust mark issuer {mark.iss} are unknown")
        _header, claims = verify_jws(
            body, issuer_jwks, typ=STATUS_RESPONSE_TYP, error=TrustMarkError
        )
        if not isinstance(claims.get("iss"), str) or not _same_entity(claims["iss"], mark.iss):
            raise TrustMarkError("status", "the status response comes from another issuer")
        about = claims.get("trust_mark")
        if about is not None:
            if not isinstance(about, str):
                raise TrustMarkError("status", "the status response names no trust mark")
            _h, about_claims = peek(about, TrustMarkError)
            if trust_mark_type(about_claims) != mark.id or not _same_entity(
                str(about_claims.get("sub", "")), mark.sub
            ):
                raise TrustMarkError("status", "the status response is about another trust mark")
        return claims.get("status") == "active"
