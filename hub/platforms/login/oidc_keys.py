"""A tenant's OpenID Connect relying party: its keys on disk and its federation settings.

``<keys_dir>/keys.json`` holds the three key rings of ``sportello.connectors.oidc.keys``
(federation, core signing, core encryption; private keys: mode 0600), made and rotated by
``sportello keys oidc``. ``<keys_dir>/trust_marks.json`` holds the trust marks the trust
anchor issued at onboarding, published as they are in the entity configuration.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sportello.config import HubConfig, TenantConfig
from sportello.connectors.oidc.federation import RpFederationConfig, TrustAnchor
from sportello.connectors.oidc.keys import RpKeys, generate_rp_keys
from sportello.platforms.login.keys import public_url
from sportello.platforms.login.settings import (
    OidcTenantSettings,
    oidc_federation_settings,
    oidc_tenant_settings,
)
from sportello.secrets import write_secret_file

KEYS_FILE = "keys.json"
TRUST_MARKS_FILE = "trust_marks.json"
#: a retired key stays published this long: more than a trust chain's lifetime (a day)
DEFAULT_OVERLAP = timedelta(days=2)


class OidcConfigError(Exception):
    """The tenant's OIDC relying party cannot work as configured (the message says why)."""


def oidc_settings(tenant: TenantConfig) -> OidcTenantSettings:
    settings = oidc_tenant_settings(tenant)
    if settings is None:
        raise OidcConfigError(f"tenant {tenant.id!r} has no [tenants.oidc] section")
    return settings


def entity_id(config: HubConfig, tenant: TenantConfig) -> str:
    """The RP's entity ID (and ``client_id``): ``<public_url>/t/<tenant>/oidc``."""
    return f"{public_url(config)}/t/{tenant.id}/oidc"


def read_keys(keys_dir: Path) -> RpKeys:
    path = keys_dir / KEYS_FILE
    if not path.exists():
        raise OidcConfigError(f"{path} is missing: run `sportello keys oidc --tenant <id>`")
    try:
        return RpKeys.from_json(path.read_text("utf-8"))
    except (ValueError, KeyError, TypeError) as exc:
        raise OidcConfigError(f"{path}: unusable keys ({type(exc).__name__})") from None


def write_keys(keys_dir: Path, keys: RpKeys) -> Path:
    """Write ``keys.json`` atomically, readable by the owner only."""
    path = keys_dir / KEYS_FILE
    write_secret_file(path, keys.to_json().encode("utf-8"), encrypted=False)
    return path


def make_or_rotate(keys_dir: Path, *, rotate: bool, now: datetime, overlap: timedelta) -> RpKeys:
    """New keys; with ``rotate``, every ring gets a new active key and keeps the old public
    key published for ``overlap``. Refuses to overwrite existing keys without ``rotate``."""
    path = keys_dir / KEYS_FILE
    if rotate:
        keys = read_keys(keys_dir)
        for ring in (keys.federation, keys.signing, keys.encryption):
            ring.rotate(now, overlap)
    else:
        if path.exists():
            raise OidcConfigError(f"{path} exists: use --rotate to replace the keys")
        keys = generate_rp_keys()
    write_keys(keys_dir, keys)
    return keys


def read_trust_marks(keys_dir: Path) -> list[dict[str, Any]]:
    path = keys_dir / TRUST_MARKS_FILE
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text("utf-8"))
    except ValueError:
        raise OidcConfigError(f"{path} is not JSON") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise OidcConfigError(f"{path} must be a JSON list of trust marks")
    return data


def read_trust_anchor(anchor: str, path: Path) -> TrustAnchor:
    """The trust anchor ``anchor`` with its federation JWKS read from ``path`` (the
    ``trust_anchor_jwks`` setting, named in the errors)."""
    try:
        jwks = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise OidcConfigError(f"trust_anchor_jwks: {path}: {type(exc).__name__}") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise OidcConfigError(f"trust_anchor_jwks: {path} is not a JWKS")
    return TrustAnchor(anchor, jwks)


def trust_anchor(settings: OidcTenantSettings) -> TrustAnchor:
    return read_trust_anchor(settings.trust_anchor, settings.trust_anchor_jwks)


def federation_config(config: HubConfig, tenant: TenantConfig) -> RpFederationConfig:
    settings = oidc_settings(tenant)
    rp = entity_id(config, tenant)
    hints = list(settings.authority_hints or [settings.trust_anchor])
    # under the software house's intermediate, its resolve endpoint is the RP's too
    intermediate = f"{public_url(config)}/federation"
    resolve = None
    if oidc_federation_settings(config) is not None and intermediate in [
        str(h).rstrip("/") for h in hints
    ]:
        resolve = f"{intermediate}/resolve"
    return RpFederationConfig(
        entity_id=rp,
        redirect_uris=[f"{rp}/callback"],
        organization_name=tenant.name,
        contacts=list(settings.contacts),
        authority_hints=hints,
        homepage_uri=settings.organization_url or "",
        trust_marks=read_trust_marks(settings.keys_dir),
        federation_resolve_endpoint=resolve,
    )


# -- `sportello demo` -----------------------------------------------------------------------

DEMO_ANCHOR_JWKS = "trust-anchor-jwks.json"


def prepare_demo_oidc(tenant: TenantConfig, data_dir: Path, now: datetime) -> OidcTenantSettings:
    """The demo tenant's OIDC settings with its keys under ``data_dir/keys/<tenant>/oidc``
    (made on the first run, as ``sportello keys oidc`` does) and the anchor's JWKS file
    there too (written by :func:`onboard_demo_oidc` once the sandbox listens)."""
    settings = oidc_settings(tenant)
    keys_dir = data_dir / "keys" / tenant.id / "oidc"
    if not (keys_dir / KEYS_FILE).exists():
        make_or_rotate(keys_dir, rotate=False, now=now, overlap=DEFAULT_OVERLAP)
    return settings.model_copy(
        update={"keys_dir": keys_dir, "trust_anchor_jwks": keys_dir / DEMO_ANCHOR_JWKS}
    )


def _payload(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, unverified (the demo's trust on first use of the
    sandbox anchor: a real deployment copies the anchor's keys out of band)."""
    import base64

    part = token.split(".")[1]
    data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    if not isinstance(data, dict):
        raise ValueError("not a JWT payload")
    return data


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value), "utf-8")
    os.replace(tmp, path)


async def onboard_demo_oidc(config: HubConfig, session: Any) -> list[str]:
    """``sportello demo``, once the hub and the oidc sandbox listen: for every tenant with
    ``[tenants.oidc]``, copy the sandbox anchor's federation JWKS, have the anchor register
    the RP (``POST <sandbox>/__sandbox/register``: it fetches the entity configuration) and
    write the trust marks it issues to ``trust_marks.json``. Returns the tenants onboarded."""
    done = []
    for tenant in config.tenants:
        settings = oidc_tenant_settings(tenant)
        if settings is None:
            continue
        anchor = str(settings.trust_anchor).rstrip("/")
        async with session.get(f"{anchor}/.well-known/openid-federation") as resp:
            resp.raise_for_status()
            jwks = _payload(await resp.text()).get("jwks")
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise OidcConfigError(f"{anchor}: the anchor's entity configuration has no jwks")
        _write_json(settings.trust_anchor_jwks, jwks)
        sandbox = anchor.rsplit("/", 1)[0]
        body = {"entity_id": entity_id(config, tenant), "entity_type": "openid_relying_party"}
        async with session.post(f"{sandbox}/__sandbox/register", json=body) as resp:
            if resp.status != 200:
                raise OidcConfigError(f"{sandbox}: registration refused: {await resp.text()}")
            marks = (await resp.json()).get("trust_marks")
        if not isinstance(marks, list):
            raise OidcConfigError(f"{sandbox}: the registration answered no trust_marks")
        _write_json(settings.keys_dir / TRUST_MARKS_FILE, marks)
        done.append(tenant.id)
    return done


def prepare_demo_oidc_tenants(config: HubConfig, data_dir: Path) -> HubConfig:
    """``sportello demo``: every tenant with ``[tenants.oidc]`` gets its RP keys (onboarded
    at the sandbox's trust anchor later, by ``hub_demo_seed``)."""
    now = datetime.now(UTC)
    tenants = [
        t.model_copy(update={"oidc": prepare_demo_oidc(t, data_dir, now)})
        if oidc_tenant_settings(t) is not None
        else t
        for t in config.tenants
    ]
    return config.model_copy(update={"tenants": tenants})
