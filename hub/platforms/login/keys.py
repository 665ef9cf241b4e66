"""A tenant's SAML signing keys on disk, and the SP settings built from them.

Layout of a keys directory (made by ``sportello keys spid``)::

    current.key              private key (PEM; encrypted with the master key when one is set)
    current.crt              its certificate (PEM)
    previous-YYYYMMDDTHHMMSS.crt   older certificates, still published in the metadata
                                   until they expire or ``--retire`` removes them

Rotation keeps the old certificate in the metadata during the overlap, so an IdP that has not
yet reloaded our metadata can still verify requests signed before the switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from sportello.config import HubConfig, TenantConfig
from sportello.connectors.spid.models import (
    CIE_ATTRIBUTES,
    Aggregator,
    Billing,
    Contact,
    Kind,
    Organization,
    SpSettings,
)
from sportello.platforms.login.settings import LoginSettings, saml_settings
from sportello.secrets import master_keys, read_secret_file, write_secret_file

CURRENT_KEY = "current.key"
CURRENT_CERT = "current.crt"


class LoginConfigError(Exception):
    """A tenant's login settings cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class KeyPair:
    key_pem: bytes
    certs: tuple[bytes, ...]  # current first


def read_keys(keys_dir: Path, *, now: datetime | None = None) -> KeyPair:
    """The current key and every certificate still worth publishing (current first)."""
    key_path, cert_path = keys_dir / CURRENT_KEY, keys_dir / CURRENT_CERT
    if not key_path.exists() or not cert_path.exists():
        raise LoginConfigError(
            f"{keys_dir}: no {CURRENT_KEY}/{CURRENT_CERT}; make them with "
            "`sportello keys spid --tenant <id>`"
        )
    try:
        key_pem = read_secret_file(key_path).encode() + b"\n"
    except Exception as exc:  # SecretError, OSError
        raise LoginConfigError(f"{key_path}: {exc}") from None
    certs = [cert_path.read_bytes()]
    moment = now or datetime.now(UTC)
    for old in sorted(keys_dir.glob("previous-*.crt"), reverse=True):
        data = old.read_bytes()
        if x509.load_pem_x509_certificate(data).not_valid_after_utc > moment:
            certs.append(data)
    return KeyPair(key_pem, tuple(certs))


def write_keys(keys_dir: Path, key_pem: bytes, cert_pem: bytes, *, rotate: bool) -> Path | None:
    """Install a new key pair; with ``rotate`` the current certificate becomes a previous one.

    Returns the path the old certificate was kept under (or None). Refuses to overwrite an
    existing pair without ``rotate``. The key is encrypted when a master key is configured.
    """
    keys_dir.mkdir(parents=True, exist_ok=True)
    cert_path = keys_dir / CURRENT_CERT
    kept = None
    if cert_path.exists():
        if not rotate:
            raise LoginConfigError(f"{keys_dir} already has a key pair: use --rotate to replace it")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        kept = keys_dir / f"previous-{stamp}.crt"
        cert_path.replace(kept)
    write_secret_file(keys_dir / CURRENT_KEY, key_pem, encrypted=bool(master_keys()))
    tmp = cert_path.with_suffix(".tmp")
    tmp.write_bytes(cert_pem)
    tmp.replace(cert_path)
    return kept


def retire_previous(keys_dir: Path) -> list[Path]:
    """Drop every previous certificate from the metadata (end of a rotation overlap)."""
    gone = sorted(keys_dir.glob("previous-*.crt"))
    for path in gone:
        path.unlink()
    return gone


def entity_id(config: HubConfig, tenant: TenantConfig, kind: Kind) -> str:
    """The SP's entityID: by default its metadata URL; for an aggregated tenant
    ``<public_url>/<activity>/<tenant>`` (Avviso 19 v4: the activity code in the entityID,
    no query string), which the hub serves as metadata too."""
    settings = login_settings(tenant, kind)
    if settings.entity_id:
        return settings.entity_id
    if settings.aggregator is not None:
        return f"{public_url(config)}/{settings.aggregator.activity}/{tenant.id}"
    return f"{public_url(config)}/t/{tenant.id}/{kind}/metadata"


def public_url(config: HubConfig) -> str:
    if config.server.public_url:
        return config.server.public_url.rstrip("/")
    return f"http://{config.server.host}:{config.server.port}"


def login_settings(tenant: TenantConfig, kind: Kind) -> LoginSettings:
    settings = saml_settings(tenant, kind)
    if settings is None:
        raise LoginConfigError(f"tenant {tenant.id!r} has no [tenants.{kind}] section")
    return settings


def build_sp(config: HubConfig, tenant: TenantConfig, kind: Kind) -> SpSettings:
    """The tenant's service provider for ``kind``, keys read from disk."""
    settings = login_settings(tenant, kind)
    keys = read_keys(settings.keys_dir)
    base = f"{public_url(config)}/t/{tenant.id}/{kind}"
    aggregator = None
    if settings.aggregator is not None:
        agg = settings.aggregator
        agg_keys = read_keys(agg.keys_dir)
        aggregator = Aggregator(
            company=agg.company,
            vat_number=agg.vat_number,
            fiscal_code=agg.fiscal_code,
            email=agg.email,
            phone=agg.phone,
            key_pem=agg_keys.key_pem,
            cert_pem=agg_keys.certs[0],
            activity=agg.activity,
        )
    billing = None
    if settings.billing is not None:
        b = settings.billing
        billing = Billing(
            company=b.company,
            vat_number=b.vat_number,
            address=b.address,
            number=b.number,
            postal_code=b.postal_code,
            town=b.town,
            province=b.province,
            country=b.country,
            email=b.email,
        )
    private = settings.profile == "private"
    contact = Contact(
        email=settings.contact_email,
        phone=settings.contact_phone,
        company=tenant.name,
        ipa_code=None if private else tenant.ipa_code,
        vat_number=billing.vat_number if billing else None,
        fiscal_code=tenant.fiscal_code if private else None,
    )
    technical = None
    if settings.technical_contact_email:
        technical = Contact(
            email=settings.technical_contact_email,
            company=settings.technical_contact_company,
        )
    return SpSettings(
        kind=kind,
        entity_id=entity_id(config, tenant, kind),
        acs_url=f"{base}/acs",
        slo_url=f"{base}/slo",
        key_pem=keys.key_pem,
        certs=keys.certs,
        organization=Organization(
            name=tenant.name,
            display_name=tenant.name,
            url=settings.organization_url or public_url(config),
        ),
        contact=contact,
        profile=settings.profile,
        # CIE releases only four attributes: the others are left out of its metadata
        attributes=tuple(a for a in settings.attributes if kind == "spid" or a in CIE_ATTRIBUTES),
        billing=billing,
        aggregator=aggregator,
        municipality=tenant.cadastral_code,
        province=settings.province,
        technical_contact=technical,
        clock_skew=settings.clock_skew,
    )


def prepare_demo_logins(
    config: HubConfig, data_dir: Path, trust_idps: tuple[Path, ...] = ()
) -> HubConfig:
    """Give every demo tenant with SPID/CIE (SAML or OpenID Connect) its keys under
    ``data_dir`` (made on first run) and trust the extra IdP metadata files
    (``sportello demo --trust-idp``)."""
    from sportello.connectors.spid.keys import make_sp_certificate

    tenants = []
    for tenant in config.tenants:
        updates: dict[str, object] = {}
        for kind in ("spid", "cie"):
            settings = getattr(tenant, kind)
            if settings is None:
                continue
            keys_dir = data_dir / "keys" / tenant.id / kind
            change: dict[str, object] = {
                "keys_dir": keys_dir,
                "idp_metadata": [*settings.idp_metadata, *(str(p.resolve()) for p in trust_idps)],
            }
            private = settings.profile == "private"
            if not (keys_dir / CURRENT_CERT).exists():
                key_pem, cert_pem = make_sp_certificate(
                    entity_id=entity_id(config, tenant, kind),
                    organization_name=tenant.name,
                    common_name=tenant.name,
                    locality=tenant.cadastral_code,
                    ipa_code=None if private else tenant.ipa_code,
                    vat_number=settings.billing.vat_number if settings.billing else None,
                    private=private,
                    key_size=2048,
                )
                write_keys(keys_dir, key_pem, cert_pem, rotate=False)
            if settings.aggregator is not None:
                agg_dir = data_dir / "keys" / tenant.id / f"{kind}-aggregator"
                agg = settings.aggregator
                if not (agg_dir / CURRENT_CERT).exists():
                    key_pem, cert_pem = make_sp_certificate(
                        entity_id=entity_id(config, tenant, kind),
                        organization_name=agg.company,
                        common_name=agg.company,
                        locality=tenant.cadastral_code,
                        vat_number=agg.vat_number,
                        fiscal_code=agg.fiscal_code,
                        private=True,
                        key_size=2048,
                    )
                    write_keys(agg_dir, key_pem, cert_pem, rotate=False)
                change["aggregator"] = agg.model_copy(update={"keys_dir": agg_dir})
            updates[kind] = settings.model_copy(update=change)
        tenants.append(tenant.model_copy(update=updates) if updates else tenant)
    return config.model_copy(update={"tenants": tenants})
