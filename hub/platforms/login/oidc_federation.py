"""The software house as an OpenID Connect Federation intermediate (``[oidc_federation]``).

One federation entity for the whole hub, entity ID ``<public_url>/federation``, of the
Light kind the rules describe ("Intermediate Entities"): the tenants' relying parties keep
their own entity IDs (``<public_url>/t/<tenant>/oidc``) and name the intermediate in their
``authority_hints``; the intermediate vouches for their federation keys, so the software
house onboards once with the trust anchor and every comune it runs is in the federation.

``/federation/...``:

- ``.well-known/openid-federation``: its entity configuration (``federation_entity`` with
  the four endpoints below), signed with its federation key;
- ``fetch?sub=``: the subordinate statement about a tenant's RP (``jwks`` = the RP's
  federation keys, ``metadata_policy`` fixing the RP's core ``jwks`` as the rules' "SA
  Metadata Policy for RP" asks, ``constraints`` allowing only relying party leaves, the
  trust marks it issues);
- ``list[?entity_type=&intermediate=&trust_mark_id=]``: its subordinates' entity IDs;
- ``resolve?sub=&trust_anchor=`` (``anchor`` too, as the rules' example spells it): the
  subject's trust chain resolved and validated up to the anchor (over HTTP, with the same
  code the RP uses for OPs), answered signed with the final metadata, the valid trust marks
  and the chain; only for its subordinates and itself (never an open resolver);
- ``trust_mark_status`` (GET or POST; ``trust_mark=`` or ``id=&sub=``): ``{"active": bool}``
  for the trust marks it issues.

Errors are JSON ``{"error", "error_description"}`` with the rules' codes ("Federation error
management"): ``invalid_request`` 400, ``not_found`` 404; a chain that cannot be resolved
is ``temporarily_unavailable`` or ``invalid_client`` with 502.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from sportello.appkeys import CLOCK, CONFIG
from sportello.config import HubConfig, TenantConfig
from sportello.connectors.oidc.errors import FederationError, OidcError, TrustMarkError
from sportello.connectors.oidc.federation import (
    ChainCache,
    TrustAnchor,
    TrustChainResolver,
    verify_trust_mark,
)
from sportello.connectors.oidc.intermediate import (
    IntermediateConfig,
    intermediate_entity_configuration,
    issue_trust_mark,
    resolve_response,
    subordinate_statement,
)
from sportello.connectors.oidc.keys import KeyRing
from sportello.connectors.oidc.tokens import MAX_JWT_BYTES, peek
from sportello.platforms.login.keys import public_url
from sportello.platforms.login.oidc_keys import (
    OidcConfigError,
    entity_id,
    read_trust_anchor,
    read_trust_marks,
)
from sportello.platforms.login.settings import (
    OidcFederationSettings,
    oidc_federation_settings,
    oidc_tenant_settings,
)
from sportello.secrets import write_secret_file
from sportello.web import read_form

log = logging.getLogger("sportello.platforms.login.oidc_federation")

PATH = "/federation"
KEYS_FILE = "keys.json"
CONTENT_TYPE = "application/entity-statement+jwt"
RP_TYPE = "openid_relying_party"
FEDERATION_TYPE = "federation_entity"
#: entity types a tenant's RP carries in its entity configuration's metadata
TENANT_TYPES = frozenset({RP_TYPE, FEDERATION_TYPE})
MAX_PARAM = 2048  # an entity ID or a trust mark id longer than this is not one


def federation_entity_id(config: HubConfig) -> str:
    """The intermediate's entity ID: ``<public_url>/federation``."""
    return public_url(config) + PATH


def read_federation_keys(keys_dir: Path) -> KeyRing:
    path = keys_dir / KEYS_FILE
    if not path.exists():
        raise OidcConfigError(f"{path} is missing: run `sportello keys oidc --federation`")
    try:
        return KeyRing.from_json(path.read_text("utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise OidcConfigError(f"{path}: unusable keys ({type(exc).__name__})") from None


def make_or_rotate_federation(
    keys_dir: Path, *, rotate: bool, now: datetime, overlap: timedelta
) -> KeyRing:
    """The intermediate's federation key ring, new (refused if one exists) or rotated (the
    previous public key stays published for ``overlap``). Written 0600, atomically."""
    path = keys_dir / KEYS_FILE
    if rotate:
        ring = read_federation_keys(keys_dir)
        ring.rotate(now, overlap)
    else:
        if path.exists():
            raise OidcConfigError(f"{path} exists: use --rotate to replace the key")
        ring = KeyRing.new("RSA", use="sig")
    write_secret_file(path, ring.to_json().encode("utf-8"), encrypted=False)
    return ring


def anchor_of(settings: OidcFederationSettings) -> TrustAnchor:
    return read_trust_anchor(settings.trust_anchor, settings.trust_anchor_jwks)


def intermediate_config(config: HubConfig, settings: OidcFederationSettings) -> IntermediateConfig:
    return IntermediateConfig(
        entity_id=federation_entity_id(config),
        organization_name=settings.organization_name,
        contacts=list(settings.contacts),
        authority_hints=list(settings.authority_hints or [settings.trust_anchor]),
        homepage_uri=settings.homepage_uri or "",
        policy_uri=settings.policy_uri or "",
        logo_uri=settings.logo_uri or "",
        trust_marks=read_trust_marks(settings.keys_dir),
        lifetime=timedelta(seconds=settings.statement_lifetime_seconds),
    )


def subordinates(config: HubConfig, settings: OidcFederationSettings) -> dict[str, TenantConfig]:
    """The tenants it vouches for, by their RP's entity ID: those listed in ``tenants``, or
    (by default) every tenant with ``[tenants.oidc]`` whose ``authority_hints`` name it.
    A tenant without ``[tenants.oidc]`` is never one."""
    me = federation_entity_id(config).rstrip("/")
    out: dict[str, TenantConfig] = {}
    for tenant in config.tenants:
        oidc = oidc_tenant_settings(tenant)
        if oidc is None:
            continue
        if settings.tenants is not None:
            if tenant.id not in settings.tenants:
                continue
        elif me not in [str(h).rstrip("/") for h in oidc.authority_hints]:
            continue
        out[entity_id(config, tenant).rstrip("/")] = tenant
    return out


@dataclass
class FederationService:
    """The intermediate's keys (reloaded when keys.json changes) and its chain resolver."""

    config: HubConfig
    settings: OidcFederationSettings
    session: aiohttp.ClientSession
    _keys: tuple[float, KeyRing] | None = None
    _resolver: TrustChainResolver | None = None
    _rp_keys: dict[str, tuple[float, Any]] = field(default_factory=dict)

    @property
    def entity_id(self) -> str:
        return federation_entity_id(self.config)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(seconds=self.settings.statement_lifetime_seconds)

    def keys(self) -> KeyRing:
        path = self.settings.keys_dir / KEYS_FILE
        try:
            stamp = path.stat().st_mtime
        except OSError:
            stamp = 0.0
        if self._keys is None or self._keys[0] != stamp:
            self._keys = (stamp, read_federation_keys(self.settings.keys_dir))
        return self._keys[1]

    def resolver(self) -> TrustChainResolver:
        if self._resolver is None:
            self._resolver = TrustChainResolver(
                self.session,
                [anchor_of(self.settings)],
                cache=ChainCache(),
                allow_http=self.settings.allow_http,
            )
        return self._resolver

    def subordinates(self) -> dict[str, TenantConfig]:
        return subordinates(self.config, self.settings)

    def issued_marks(self, tenant: TenantConfig, now: datetime) -> list[dict[str, Any]]:
        """The trust marks it issues to ``tenant``'s RP, with the claims of the rules'
        "Trust Mark Composition" (a comune: ``public``, its IPA code)."""
        oidc = oidc_tenant_settings(tenant)
        extra = {
            "organization_type": "public",
            "id_code": {"ipa_code": tenant.ipa_code},
            "organization_name": tenant.name,
            "email": oidc.contacts[0] if oidc is not None else "",
            "ref": self.settings.homepage_uri or self.entity_id,
        }
        return [
            issue_trust_mark(
                self.entity_id,
                self.keys(),
                mark_id=mark_id,
                subject=entity_id(self.config, tenant),
                now=now,
                lifetime=self.lifetime,
                extra=extra,
            )
            for mark_id in self.settings.issued_trust_marks
        ]


FEDERATION = web.AppKey("oidc_federation", FederationService)


# -- views ------------------------------------------------------------------------------------


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response(
        {"error": error, "error_description": description},
        status=status,
        headers={"Cache-Control": "no-store"},
    )


class _BadParam(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _one(params: Mapping[str, str], name: str, *, required: bool = False) -> str | None:
    """A single-valued parameter of reasonable size (repeated, oversize or with control
    characters: refused by name)."""
    values = params.getall(name, []) if hasattr(params, "getall") else [params.get(name)]
    values = [v for v in values if v is not None]
    if not values:
        if required:
            raise _BadParam(f"{name} is required")
        return None
    if len(values) > 1:
        raise _BadParam(f"{name} must be given once")
    value = str(values[0])
    limit = MAX_JWT_BYTES if name == "trust_mark" else MAX_PARAM
    if len(value) > limit:
        raise _BadParam(f"{name} is longer than {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise _BadParam(f"{name} contains control characters")
    if required and not value:
        raise _BadParam(f"{name} is required")
    return value


def _service(request: web.Request) -> FederationService:
    service = request.app.get(FEDERATION)
    if service is None:
        raise web.HTTPNotFound(
            text=json.dumps(
                {"error": "not_found", "error_description": "no federation intermediate here"}
            ),
            content_type="application/json",
        )
    return service


def _statement(body: str) -> web.Response:
    return web.Response(text=body, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-cache"})


def _unconfigured(exc: OidcConfigError) -> web.Response:
    log.error("the federation intermediate cannot answer: %s", exc)
    return _error(503, "temporarily_unavailable", "the federation intermediate is not configured")


async def configuration_view(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        body = intermediate_entity_configuration(
            intermediate_config(service.config, service.settings),
            service.keys(),
            request.app[CLOCK].now(),
        )
    except OidcConfigError as exc:
        return _unconfigured(exc)
    return _statement(body)


async def fetch_view(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        sub = _one(request.query, "sub", required=True)
        iss = _one(request.query, "iss")
    except _BadParam as exc:
        return _error(400, "invalid_request", exc.description)
    assert sub is not None
    if iss is not None and iss.rstrip("/") != service.entity_id:
        return _error(404, "not_found", f"iss is not this intermediate ({service.entity_id})")
    tenant = service.subordinates().get(sub.rstrip("/"))
    if tenant is None:
        return _error(404, "not_found", "sub is not a subordinate of this intermediate")
    from sportello.platforms.login.oidc_routes import OIDC

    now = request.app[CLOCK].now()
    try:
        rp_keys = request.app[OIDC].keys(tenant)
        body = subordinate_statement(
            service.entity_id,
            service.keys(),
            subject=entity_id(service.config, tenant),
            subject_jwks=rp_keys.federation.jwks(now),
            now=now,
            lifetime=service.lifetime,
            metadata_policy={RP_TYPE: {"jwks": {"value": rp_keys.core_jwks(now)}}},
            constraints={"allowed_leaf_entity_types": [RP_TYPE]},
            trust_marks=service.issued_marks(tenant, now),
        )
    except OidcConfigError as exc:
        log.error("no statement for tenant %s: %s", tenant.id, exc)
        return _error(503, "temporarily_unavailable", "the subordinate's keys are not available")
    return _statement(body)


def _flag(params: Mapping[str, str], name: str) -> bool | None:
    value = _one(params, name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise _BadParam(f"{name} must be true or false")
    return value == "true"


async def list_view(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        wanted = request.query.getall("entity_type", [])
        if len(wanted) > 10 or any(len(w) > 100 or not w for w in wanted):
            raise _BadParam("entity_type: at most 10 values of at most 100 characters")
        intermediate = _flag(request.query, "intermediate")
        trust_marked = _flag(request.query, "trust_marked")
        mark_id = _one(request.query, "trust_mark_id")
    except _BadParam as exc:
        return _error(400, "invalid_request", exc.description)
    out: list[str] = []
    if intermediate is not True:  # no subordinate of this one is an intermediate
        for tenant in service.subordinates().values():
            if wanted and not TENANT_TYPES.intersection(wanted):
                continue
            if trust_marked and not service.settings.issued_trust_marks:
                continue
            if mark_id is not None and mark_id not in service.settings.issued_trust_marks:
                continue
            out.append(entity_id(service.config, tenant))
    return web.json_response(out, headers={"Cache-Control": "no-cache"})


async def resolve_view(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        sub = _one(request.query, "sub", required=True)
        anchor = _one(request.query, "trust_anchor") or _one(request.query, "anchor")
        types = request.query.getall("entity_type", [])
        if len(types) > 10 or any(len(t) > 100 or not t for t in types):
            raise _BadParam("entity_type: at most 10 values of at most 100 characters")
        if not anchor:
            raise _BadParam("trust_anchor is required")
    except _BadParam as exc:
        return _error(400, "invalid_request", exc.description)
    assert sub is not None
    if anchor.rstrip("/") != service.settings.trust_anchor.rstrip("/"):
        return _error(404, "not_found", "unknown trust anchor (not this intermediate's)")
    subject = sub.rstrip("/")
    if subject == service.entity_id:
        entity_type = FEDERATION_TYPE
    elif subject in service.subordinates():
        entity_type = RP_TYPE
    else:
        return _error(404, "not_found", "sub is neither this intermediate nor a subordinate")
    try:
        chain = await service.resolver().resolve(subject, entity_type)
        body = resolve_response(
            service.entity_id,
            service.keys(),
            chain,
            now=request.app[CLOCK].now(),
            entity_types=types,
        )
    except OidcConfigError as exc:
        return _unconfigured(exc)
    except FederationError as exc:
        code = "temporarily_unavailable" if exc.check == "unreachable" else "invalid_client"
        log.warning("resolve refused", extra={"check": exc.check})
        return _error(502, code, f"the trust chain of {subject} does not resolve: {exc}")
    return _statement(body)


async def trust_mark_status_view(request: web.Request) -> web.Response:
    service = _service(request)
    params: Mapping[str, str]
    if request.method == "POST":
        if (request.content_length or 0) > 2 * MAX_JWT_BYTES:
            return _error(400, "invalid_request", "the request body is too large")
        form = await read_form(request)
        if form is None:
            return _error(400, "invalid_request", "the form cannot be read (charset or format)")
        params = form  # type: ignore[assignment]
    else:
        params = request.query
    try:
        token = _one(params, "trust_mark")
        mark_id = _one(params, "id")
        sub = _one(params, "sub")
        if token is None and (mark_id is None or sub is None):
            raise _BadParam("trust_mark, or id and sub, are required")
        if token is not None:
            _header, claims = peek(token, TrustMarkError)
    except _BadParam as exc:
        return _error(400, "invalid_request", exc.description)
    except OidcError as exc:
        return _error(400, "invalid_request", f"trust_mark: {exc.reason}")
    now = request.app[CLOCK].now()
    issued = set(service.settings.issued_trust_marks)
    try:
        if token is not None:
            subject = str(claims.get("sub", ""))
            try:
                mark = verify_trust_mark(
                    token, service.keys().jwks(now), subject=subject, now=now.timestamp()
                )
            except TrustMarkError:
                return web.json_response({"active": False})
            mark_id, sub = mark.id, mark.sub
            if mark.iss.rstrip("/") != service.entity_id:
                return web.json_response({"active": False})
    except OidcConfigError as exc:
        return _unconfigured(exc)
    assert mark_id is not None and sub is not None
    active = mark_id in issued and sub.rstrip("/") in service.subordinates()
    return web.json_response({"active": active}, headers={"Cache-Control": "no-store"})


def routes() -> list[web.RouteDef]:
    return [
        web.get(f"{PATH}/.well-known/openid-federation", configuration_view),
        web.get(f"{PATH}/fetch", fetch_view),
        web.get(f"{PATH}/list", list_view),
        web.get(f"{PATH}/resolve", resolve_view),
        web.get(f"{PATH}/trust_mark_status", trust_mark_status_view),
        web.post(f"{PATH}/trust_mark_status", trust_mark_status_view),
    ]


@contextlib.asynccontextmanager
async def federation_ctx(
    app: web.Application, session: aiohttp.ClientSession
) -> AsyncIterator[None]:
    """The intermediate on ``app`` when ``[oidc_federation]`` is configured."""
    config = app[CONFIG]
    settings = oidc_federation_settings(config)
    if settings is not None:
        app[FEDERATION] = FederationService(config, settings, session)
    yield


def intermediate_problems(config: HubConfig, tenant: TenantConfig) -> list[str]:
    """What stops the intermediate from vouching for ``tenant`` (``config check``,
    ``/readyz``): its RP names ``/federation`` but no ``[oidc_federation]`` is configured,
    or the intermediate's keys, trust marks or anchor keys cannot be read."""
    oidc = oidc_tenant_settings(tenant)
    if oidc is None:
        return []
    me = federation_entity_id(config)
    names_it = me in [str(h).rstrip("/") for h in oidc.authority_hints]
    settings = oidc_federation_settings(config)
    if settings is None:
        return (
            [f"authority_hints names {me}, but no [oidc_federation] section is configured"]
            if names_it
            else []
        )
    if entity_id(config, tenant).rstrip("/") not in subordinates(config, settings):
        return []
    out = []
    for check in (
        lambda: read_federation_keys(settings.keys_dir),
        lambda: anchor_of(settings),
        lambda: read_trust_marks(settings.keys_dir),
    ):
        try:
            check()
        except OidcConfigError as exc:
            out.append(f"[oidc_federation] {exc}")
    if not names_it:
        out.append(f"[oidc_federation] lists this tenant, but its authority_hints omit {me}")
    return out
