"""A tenant's OpenID Connect relying party: its keys on disk and its federation settings.

``<keys_dir>/keys.json`` holds the three key rings of ``sportello.connectors.oidc.keys``
(federation, core signing, core encryption; private keys: mode 0600), made and rotated by
``sportello keys oidc``. ``<keys_dir>/trust_marks.json`` holds the trust marks the trust
anchor issued at onboarding, published as they are in the entity configuration.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sportello.config import HubConfig, OidcTenantSettings, TenantConfig
from sportello.connectors.oidc.federation import RpFederationConfig, TrustAnchor
from sportello.connectors.oidc.keys import RpKeys, generate_rp_keys
from sportello.platforms.login.keys import public_url

KEYS_FILE = "keys.json"
TRUST_MARKS_FILE = "trust_marks.json"
#: a retired key stays published this long: more than a trust chain's lifetime (a day)
DEFAULT_OVERLAP = timedelta(days=2)


class OidcConfigError(Exception):
    """The tenant's OIDC relying party cannot work as configured (the message says why)."""


def oidc_settings(tenant: TenantConfig) -> OidcTenantSettings:
    if tenant.oidc is None:
        raise OidcConfigError(f"tenant {tenant.id!r} has no [tenants.oidc] section")
    return tenant.oidc


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
    keys_dir.mkdir(parents=True, exist_ok=True)
    path = keys_dir / KEYS_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(keys.to_json())
    os.replace(tmp, path)
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


def trust_anchor(settings: OidcTenantSettings) -> TrustAnchor:
    path = settings.trust_anchor_jwks
    try:
        jwks = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise OidcConfigError(f"trust_anchor_jwks: {path}: {type(exc).__name__}") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise OidcConfigError(f"trust_anchor_jwks: {path} is not a JWKS")
    return TrustAnchor(settings.trust_anchor, jwks)


def federation_config(config: HubConfig, tenant: TenantConfig) -> RpFederationConfig:
    settings = oidc_settings(tenant)
    rp = entity_id(config, tenant)
    return RpFederationConfig(
        entity_id=rp,
        redirect_uris=[f"{rp}/callback"],
        organization_name=tenant.name,
        contacts=list(settings.contacts),
        authority_hints=list(settings.authority_hints or [settings.trust_anchor]),
        homepage_uri=settings.organization_url or "",
        trust_marks=read_trust_marks(settings.keys_dir),
    )
