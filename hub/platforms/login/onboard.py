"""Onboarding of SPID, CIE (SAML) and the OpenID Connect relying party (``hub_onboard``,
``hub_tenant_checks``).

Made here, where the tenant's configuration points (``keys_dir``), never over an existing
key: the SAML signing key and its certificate (``current.key``, 0600; ``current.crt``), the
aggregator's when one is configured, and the RP's three OIDC key rings (``keys.json``,
0600). Left to do: register the metadata URL with AgID (SPID) or the Ministry of the
Interior (CIE), the entity configuration with the federation (OIDC). Checked: the hub's own
metadata is served at its public URL, names the right entityID and verifies against the
certificate on disk; the entity configuration is served and verifies against the federation
key on disk.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from sportello.config import HubConfig, TenantConfig
from sportello.connectors.spid.models import Kind
from sportello.hookspecs import CheckContext, CheckFailed, OnboardStep, TenantCheck

from .keys import CURRENT_CERT, entity_id, public_url, write_keys
from .settings import LoginSettings, saml_settings

KINDS: tuple[Kind, ...] = ("spid", "cie")
WHERE = {
    "spid": "AgID (SPID service-provider onboarding: send the metadata URL)",
    "cie": "the Ministry of the Interior (CIE federation: the CIE ID onboarding portal)",
}


def metadata_url(config: HubConfig, tenant: TenantConfig, kind: Kind) -> str:
    return f"{public_url(config)}/t/{tenant.id}/{kind}/metadata"


def _fingerprint(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _saml_keys(
    config: HubConfig,
    tenant: TenantConfig,
    kind: Kind,
    settings: LoginSettings,
    make: bool,
) -> list[OnboardStep]:
    from sportello.connectors.spid.keys import make_sp_certificate

    out: list[OnboardStep] = []
    private = settings.profile == "private"
    pairs: list[tuple[str, Any, dict[str, Any]]] = [
        (
            "signing key and certificate",
            settings.keys_dir,
            {
                "organization_name": tenant.name,
                "common_name": tenant.name,
                "ipa_code": None if private else tenant.ipa_code,
                "vat_number": settings.billing.vat_number if settings.billing else None,
                "private": private,
            },
        )
    ]
    if settings.aggregator is not None:
        agg = settings.aggregator
        pairs.append(
            (
                "aggregator's signing key and certificate",
                agg.keys_dir,
                {
                    "organization_name": agg.company,
                    "common_name": agg.company,
                    "vat_number": agg.vat_number,
                    "fiscal_code": agg.fiscal_code,
                    "private": True,
                },
            )
        )
    for label, keys_dir, subject in pairs:
        cert = keys_dir / CURRENT_CERT
        values = {"keys_dir": str(keys_dir)}
        if cert.exists():
            state = "present"
        elif not make:
            out.append(OnboardStep(kind, "todo", f"{label} to make", values))
            continue
        else:
            key_pem, cert_pem = make_sp_certificate(
                entity_id=entity_id(config, tenant, kind),
                locality=tenant.cadastral_code,
                key_size=3072,
                **subject,
            )
            write_keys(keys_dir, key_pem, cert_pem, rotate=False)
            state = "made"
        values["certificate_sha256"] = _fingerprint(cert.read_bytes())
        out.append(OnboardStep(kind, state, label, values))
    return out


def _oidc_steps(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    from .oidc_keys import KEYS_FILE, make_or_rotate, read_keys
    from .oidc_keys import entity_id as rp_entity_id
    from .settings import oidc_tenant_settings

    settings = oidc_tenant_settings(tenant)
    if settings is None:
        return []
    out: list[OnboardStep] = []
    path = settings.keys_dir / KEYS_FILE
    values = {"keys_file": str(path)}
    label = "federation, signing and encryption keys"
    if path.exists():
        out.append(OnboardStep("oidc", "present", label, values))
    elif make:
        from datetime import UTC, datetime

        from .oidc_keys import DEFAULT_OVERLAP

        make_or_rotate(
            settings.keys_dir, rotate=False, now=datetime.now(UTC), overlap=DEFAULT_OVERLAP
        )
        out.append(OnboardStep("oidc", "made", label, values))
    else:
        out.append(OnboardStep("oidc", "todo", "keys to make", values))
    rp = rp_entity_id(config, tenant)
    todo = {"entity_id": rp, "entity_configuration": f"{rp}/.well-known/openid-federation"}
    if path.exists():
        fed = read_keys(settings.keys_dir).federation.active
        todo["federation_kid"] = str(fed.kid)
    todo["trust_anchor"] = settings.trust_anchor
    if settings.authority_hints:
        todo["authority_hints"] = ", ".join(settings.authority_hints)
    out.append(
        OnboardStep(
            "oidc",
            "todo",
            "onboard the RP with the federation: register its entity configuration URL with "
            "the intermediate or the trust anchor, then store the trust marks it issues in "
            "trust_marks.json",
            todo,
        )
    )
    return out


def onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    out: list[OnboardStep] = []
    for kind in KINDS:
        settings = saml_settings(tenant, kind)
        if settings is None:
            continue
        out += _saml_keys(config, tenant, kind, settings, make)
        out.append(
            OnboardStep(
                kind,
                "todo",
                f"register the SP metadata with {WHERE[kind]}",
                {
                    "metadata_url": metadata_url(config, tenant, kind),
                    "entity_id": entity_id(config, tenant, kind),
                },
            )
        )
    out += _oidc_steps(config, tenant, make)
    return out


# --- checks -------------------------------------------------------------------------------------


async def _get(ctx: CheckContext, url: str) -> tuple[int, str, bytes]:
    import aiohttp

    try:
        async with ctx.session.get(url, allow_redirects=False) as r:
            return r.status, r.content_type, await r.read()
    except aiohttp.ClientError as exc:
        raise CheckFailed(f"{url} cannot be reached: {type(exc).__name__} {exc}") from None


def _metadata_check(config: HubConfig, tenant: TenantConfig, kind: Kind) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        from lxml import etree

        from sportello.connectors.spid.idps import verify_metadata_signature

        settings = saml_settings(tenant, kind)
        assert settings is not None
        url = metadata_url(ctx.config, tenant, kind)
        status, _, body = await _get(ctx, url)
        if status != 200:
            raise CheckFailed(f"{url} answered HTTP {status}")
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as exc:
            raise CheckFailed(f"{url}: not well-formed XML ({exc})") from None
        expected = entity_id(ctx.config, tenant, kind)
        if root.get("entityID") != expected:
            raise CheckFailed(f"{url}: entityID {root.get('entityID')!r}, expected {expected!r}")
        cert_path = settings.keys_dir / CURRENT_CERT
        try:
            cert = cert_path.read_bytes()
        except OSError as exc:
            raise CheckFailed(f"{cert_path} cannot be read: {exc.strerror}") from None
        if not verify_metadata_signature(body, cert):
            raise CheckFailed(
                f"{url}: the signature does not verify with {cert_path} "
                "(the hub signs with another key: reload it after changing keys)"
            )
        return f"{url} served, signed with the certificate of {cert_path}"

    return TenantCheck(kind, "metadata", run)


def _entity_configuration_check(tenant: TenantConfig) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        from joserfc import jws
        from joserfc.errors import JoseError

        from .oidc_keys import OidcConfigError, read_keys
        from .oidc_keys import entity_id as rp_entity_id
        from .settings import oidc_tenant_settings

        settings = oidc_tenant_settings(tenant)
        assert settings is not None
        rp = rp_entity_id(ctx.config, tenant)
        url = f"{rp}/.well-known/openid-federation"
        status, content_type, body = await _get(ctx, url)
        if status != 200:
            raise CheckFailed(f"{url} answered HTTP {status}")
        if content_type != "application/entity-statement+jwt":
            raise CheckFailed(f"{url}: content type {content_type}, not an entity statement")
        try:
            key = read_keys(settings.keys_dir).federation.active
        except OidcConfigError as exc:
            raise CheckFailed(str(exc)) from None
        try:
            token = jws.deserialize_compact(body.strip(), key)
            claims = json.loads(token.payload)
        except (JoseError, ValueError) as exc:
            raise CheckFailed(
                f"{url}: does not verify with the federation key on disk "
                f"({type(exc).__name__}): reload the hub after changing keys"
            ) from None
        if claims.get("iss") != rp or claims.get("sub") != rp:
            raise CheckFailed(f"{url}: iss/sub are not {rp}")
        return f"{url} served, signed by kid {key.kid}"

    return TenantCheck("oidc", "entity configuration", run)


def tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[TenantCheck]:
    from .settings import oidc_tenant_settings

    out = [
        _metadata_check(config, tenant, kind)
        for kind in KINDS
        if saml_settings(tenant, kind) is not None
    ]
    if oidc_tenant_settings(tenant) is not None:
        out.append(_entity_configuration_check(tenant))
    return out
