"""The login platform's part of the configuration: ``[tenants.spid]``, ``[tenants.cie]``
(SAML), ``[tenants.oidc]`` (OpenID Connect) and the hub-level ``[idps]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from cryptography import x509
from pydantic import Field, ValidationInfo, field_validator, model_validator

from sportello.config import ConfigModel as _Model
from sportello.config import HttpUrl, HubConfig, TenantConfig
from sportello.config import relative_to_base as _relative_to_base


class BillingSettings(_Model):
    """Who AgID invoices (private SPs only: ``fpa:CessionarioCommittente``)."""

    company: str
    vat_number: Annotated[str, Field(pattern=r"^[A-Z]{2}\w{2,28}$")]
    address: str
    number: str
    postal_code: Annotated[str, Field(pattern=r"^\d{5}$")]
    town: str
    province: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    country: str = "IT"
    email: str = ""


class AggregatorSettings(_Model):
    """The software house serving the tenant as a SPID aggregator (Avviso 19 v4)."""

    company: str
    vat_number: str | None = None
    fiscal_code: str | None = None
    email: str
    phone: str | None = None
    activity: Literal["pub-ag-full", "pub-ag-lite", "pri-ag-full", "pri-ag-lite"] = "pub-ag-full"
    keys_dir: Path = Field(description="directory of the aggregator's signing key (current.key)")

    @field_validator("keys_dir")
    @classmethod
    def _relative(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative_to_base(value, info)


class LoginSettings(_Model):
    """One tenant's SAML service provider for SPID (``[tenants.spid]``) or CIE (``[tenants.cie]``).

    Keys live in ``keys_dir`` (``current.key``/``current.crt``, made by ``sportello keys
    spid``; older ``previous-*.crt`` stay in the metadata during a rotation overlap).
    """

    entity_id: HttpUrl | None = Field(
        default=None, description="default: <public_url>/t/<tenant>/<spid|cie>/metadata"
    )
    profile: Literal["public", "private", "aggregated"] = "public"
    keys_dir: Path = Field(description="directory holding current.key and current.crt")
    contact_email: str
    contact_phone: Annotated[str, Field(pattern=r"^\+39\d{6,12}$")] | None = None
    organization_url: HttpUrl | None = None
    attributes: list[str] = Field(
        default_factory=lambda: ["name", "familyName", "fiscalNumber", "email"]
    )
    level: Annotated[int, Field(ge=1, le=3)] = 2
    comparison: Literal["exact", "minimum", "better", "maximum"] = "minimum"
    binding: Literal["redirect", "post"] = "redirect"
    idp_metadata: list[str] = Field(
        default_factory=list,
        description="extra trusted IdP metadata: files or http(s) URLs (test and sandbox IdPs)",
    )
    use_registry: bool = Field(
        default=False,
        description="trust the official IdP list (cached by `sportello idps refresh`)",
    )
    return_urls: list[HttpUrl] = Field(
        default_factory=list,
        description="where the tenant's application may receive login codes (exact match)",
    )
    return_url_levels: dict[str, Annotated[int, Field(ge=1, le=3)]] = Field(
        default_factory=dict,
        description="a minimum level per registered return URL, above `level` (e.g. 3)",
    )
    province: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    billing: BillingSettings | None = None
    aggregator: AggregatorSettings | None = None
    technical_contact_email: str | None = Field(
        default=None, description="CIE: the software house's technical contact"
    )
    technical_contact_company: str | None = None
    clock_skew: Annotated[float, Field(ge=0, le=300)] = 10.0

    @field_validator("keys_dir")
    @classmethod
    def _relative(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative_to_base(value, info)

    @model_validator(mode="after")
    def _profile_needs(self) -> LoginSettings:
        if self.profile == "private" and self.billing is None:
            raise ValueError("a private SP needs [billing] (Avviso 29 v3)")
        if self.profile == "aggregated" and self.aggregator is None:
            raise ValueError("an aggregated SP needs [aggregator] (Avviso 19 v4)")
        unknown = sorted(set(self.return_url_levels) - set(self.return_urls))
        if unknown:
            raise ValueError(f"return_url_levels names URLs not in return_urls: {unknown}")
        return self

    def minimum_level(self, return_to: str | None) -> int:
        """The lowest level a login may ask for: ``level``, raised for ``return_to``."""
        return max(self.level, self.return_url_levels.get(return_to or "", 1))


SpidTenantSettings = LoginSettings


class OidcTenantSettings(_Model):
    """One tenant's SPID/CIE OpenID Connect relying party (``[tenants.oidc]``).

    Its entity ID is ``<public_url>/t/<tenant>/oidc``. Keys live in ``keys_dir``
    (``keys.json``: federation, signing and encryption rings, made by ``sportello keys
    oidc``); ``trust_marks.json`` there holds the trust marks the trust anchor issued at
    onboarding (published in the entity configuration).
    """

    keys_dir: Path = Field(description="directory holding keys.json (and trust_marks.json)")
    trust_anchor: HttpUrl = Field(description="the trust anchor's entity ID")
    trust_anchor_jwks: Path = Field(
        description="JSON file with the trust anchor's federation JWKS, copied out of band"
    )
    authority_hints: list[HttpUrl] = Field(
        default_factory=list, description="superiors of the RP (default: the trust anchor)"
    )
    providers: dict[Literal["spid", "cie"], list[HttpUrl]] = Field(
        default_factory=dict, description="trusted OP entity IDs per scheme"
    )
    provider_trust_marks: list[str] = Field(
        default_factory=list, description="trust mark ids an OP must show (any of them)"
    )
    level: Annotated[int, Field(ge=1, le=3)] = 2
    claims: list[str] = Field(
        default_factory=lambda: [
            "given_name",
            "family_name",
            "https://attributes.eid.gov.it/fiscal_number",
            "email",
        ],
        description="userinfo claims asked for (the fiscal number is essential)",
    )
    ui_locales: list[str] = Field(default_factory=lambda: ["it", "en"])
    contacts: list[str] = Field(min_length=1, description="the RP's contacts (e-mail, PEC)")
    organization_url: HttpUrl | None = Field(
        default=None, description="the comune's site, linked from error pages"
    )
    return_urls: list[HttpUrl] = Field(
        default_factory=list,
        description="where the tenant's application may receive login codes (exact match)",
    )
    allow_http: bool = Field(default=False, description="plain-http federation (sandbox only)")
    trust_mark_refresh_seconds: Annotated[float, Field(ge=60)] | None = Field(
        default=3600.0,
        description="how often a leased task checks the RP's trust marks and renews, from "
        "their issuer, those past half their lifetime (none: never)",
    )

    @field_validator("keys_dir", "trust_anchor_jwks")
    @classmethod
    def _relative(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative_to_base(value, info)


class OidcFederationSettings(_Model):
    """The software house as an OpenID Connect Federation intermediate (``[oidc_federation]``).

    Its entity ID is ``<public_url>/federation``; it issues the subordinate statements of
    the tenants' relying parties, so one onboarding with the trust anchor serves them all.
    ``keys_dir`` holds ``keys.json`` (its federation key ring, made by ``sportello keys oidc
    --federation``) and ``trust_marks.json`` (the trust marks the anchor issued to it).
    """

    keys_dir: Path = Field(description="directory holding keys.json (and trust_marks.json)")
    trust_anchor: HttpUrl = Field(description="the trust anchor's entity ID")
    trust_anchor_jwks: Path = Field(
        description="JSON file with the trust anchor's federation JWKS, copied out of band"
    )
    authority_hints: list[HttpUrl] = Field(
        default_factory=list, description="superiors of the intermediate (default: the anchor)"
    )
    organization_name: str = Field(min_length=1, description="the software house's name")
    contacts: list[str] = Field(min_length=1, description="e-mail or PEC addresses")
    homepage_uri: HttpUrl | None = None
    policy_uri: HttpUrl | None = None
    logo_uri: HttpUrl | None = None
    tenants: list[str] | None = Field(
        default=None,
        description="tenant ids it subordinates (default: every tenant with [tenants.oidc] "
        "whose authority_hints name it)",
    )
    issued_trust_marks: list[str] = Field(
        default_factory=list,
        description="trust mark ids it issues to each subordinate (in its statement)",
    )
    statement_lifetime_seconds: Annotated[int, Field(ge=600, le=7 * 86400)] = 86400
    allow_http: bool = Field(default=False, description="plain-http federation (sandbox only)")

    @field_validator("keys_dir", "trust_anchor_jwks")
    @classmethod
    def _relative(cls, value: Path, info: ValidationInfo) -> Path:
        return _relative_to_base(value, info)


_PEM_CERT = "-----BEGIN CERTIFICATE-----"


class IdpTrustSettings(_Model):
    """Who may sign the IdP metadata the hub fetches over the network (``[idps]``).

    The SPID registry (``sportello idps refresh``, ``use_registry``) must be signed by AgID
    and any ``idp_metadata`` http(s) URL by one of ``signing_certs``; unsigned or badly
    signed documents are refused and the last good copy stays in use. Local metadata files
    are trusted as they are (whoever can write them can write this configuration).
    """

    signing_certs: list[str] = Field(
        default_factory=list,
        description="PEM certificates (file paths, or the PEM text inline): AgID's for the "
        "registry, and whoever signs each IdP metadata URL",
    )

    @field_validator("signing_certs")
    @classmethod
    def _paths_or_pem(cls, values: list[str], info: ValidationInfo) -> list[str]:
        base = (info.context or {}).get("base_dir") if info.context else None
        out = []
        for value in values:
            text = value.strip()
            if text.startswith(_PEM_CERT):
                try:
                    x509.load_pem_x509_certificate(text.encode())
                except ValueError:
                    raise ValueError("an inline signing certificate is not valid PEM") from None
                out.append(text)
            elif base is not None and not Path(text).is_absolute():
                out.append(str(Path(base) / text))
            else:
                out.append(text)
        return out

    def pems(self) -> list[bytes]:
        """The certificates, read now; a file that is missing or not a PEM certificate
        raises ValueError naming it."""
        out = []
        for value in self.signing_certs:
            if value.startswith(_PEM_CERT):
                out.append(value.encode())
                continue
            try:
                data = Path(value).read_bytes()
                x509.load_pem_x509_certificate(data)
            except OSError as exc:
                raise ValueError(f"[idps] signing_certs: cannot read {value}: {exc}") from None
            except ValueError:
                raise ValueError(
                    f"[idps] signing_certs: {value} is not a PEM certificate"
                ) from None
            out.append(data)
        return out


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {
    "spid": LoginSettings,
    "cie": LoginSettings,
    "oidc": OidcTenantSettings,
}
#: The hub-level sections it declares (``hub_settings``).
HUB_SECTIONS: dict[str, type[_Model]] = {
    "idps": IdpTrustSettings,
    "oidc_federation": OidcFederationSettings,
}


def saml_settings(tenant: TenantConfig, kind: str) -> LoginSettings | None:
    """The tenant's ``[tenants.spid]`` or ``[tenants.cie]`` (``kind``), if configured."""
    value = getattr(tenant, kind, None) if kind in ("spid", "cie") else None
    return value if isinstance(value, LoginSettings) else None


def spid_settings(tenant: TenantConfig) -> LoginSettings | None:
    return saml_settings(tenant, "spid")


def cie_settings(tenant: TenantConfig) -> LoginSettings | None:
    return saml_settings(tenant, "cie")


def oidc_tenant_settings(tenant: TenantConfig) -> OidcTenantSettings | None:
    """The tenant's ``[tenants.oidc]``, if configured."""
    value = getattr(tenant, "oidc", None)
    return value if isinstance(value, OidcTenantSettings) else None


def idp_trust(config: HubConfig) -> IdpTrustSettings:
    """The hub's ``[idps]`` (defaults when absent)."""
    value = getattr(config, "idps", None)
    return value if isinstance(value, IdpTrustSettings) else IdpTrustSettings()


def oidc_federation_settings(config: HubConfig) -> OidcFederationSettings | None:
    """The hub's ``[oidc_federation]`` (the software house as intermediate), if configured."""
    value = config.section("oidc_federation")
    return value if isinstance(value, OidcFederationSettings) else None
