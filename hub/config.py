"""Deployment configuration: one TOML file, validated by pydantic into typed objects.

Secrets are never written inline: a secret field holds a reference, ``{env = "NAME"}`` or
``{file = "path"}``, resolved only when a connector needs the value and never printed.
A bad file raises :class:`ConfigError`, whose message names the file, the field path and
what was expected, one problem per line.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

SECRET_HINT = 'secrets must be references: write {env = "NAME"} or {file = "path"}, not the value'


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is ready to show to a person."""

    def __init__(self, path: str | os.PathLike[str], problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__("\n".join(f"{self.path}: {p}" for p in problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host: ``sportello.example.it`` or ``htps//...`` would
    end up in SAML entityIDs, return URLs and platform calls as relative nonsense."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in value)
    ):
        raise ValueError(
            "expected an absolute http:// or https:// URL with a host, "
            "e.g. https://sportello.example.it"
        )
    return value


#: A configured URL: scheme http or https and a host are required.
HttpUrl = Annotated[str, AfterValidator(_http_url)]


class SecretRef(_Model):
    """A reference to a secret held outside the configuration file."""

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(SECRET_HINT)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError('give exactly one of env = "NAME" or file = "path"')
        return self

    @field_validator("file")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if info.context else None
        if value is not None and not value.is_absolute() and base is not None:
            return Path(base) / value
        return value

    def reveal(self) -> str:
        """Return the secret value. Call it at the point of use; never log the result."""
        if self.env is not None:
            try:
                return os.environ[self.env]
            except KeyError:
                raise LookupError(f"secret environment variable {self.env} is not set") from None
        assert self.file is not None
        from .secrets import SecretError, read_secret_file

        try:
            return read_secret_file(self.file)
        except OSError as exc:
            raise LookupError(f"secret file {self.file} cannot be read: {exc.strerror}") from None
        except SecretError as exc:
            raise LookupError(str(exc)) from None

    def describe(self) -> str:
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"

    __str__ = __repr__


class ServerSettings(_Model):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    public_url: HttpUrl | None = Field(
        default=None, description="URL citizens and platforms use to reach the hub"
    )
    max_body_bytes: Annotated[int, Field(ge=64 * 1024, le=64 * 1024 * 1024)] = Field(
        default=1024 * 1024,
        description="largest request body accepted (bytes); larger ones get 413",
    )


class DatabaseSettings(_Model):
    url: str = Field(
        default="sqlite+aiosqlite:///var/sportello.sqlite",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    pool_size: Annotated[int, Field(ge=1, le=200)] = 10

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str, info: ValidationInfo) -> str:
        if value.startswith("sqlite:"):
            value = "sqlite+aiosqlite:" + value[len("sqlite:") :]
        elif value.startswith(("postgresql:", "postgres:")):
            value = "postgresql+asyncpg:" + value.split(":", 1)[1]
        if not value.startswith(("sqlite+aiosqlite:///", "postgresql+asyncpg://")):
            raise ValueError(
                "expected sqlite+aiosqlite:///path/to/file.sqlite or "
                "postgresql+asyncpg://user@host:port/database"
            )
        base = (info.context or {}).get("base_dir") if info.context else None
        prefix = "sqlite+aiosqlite:///"
        if value.startswith(prefix) and base is not None:
            path = value[len(prefix) :]
            if path and path != ":memory:" and not Path(path).is_absolute():
                value = prefix + str(Path(base) / path)
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class OutboxSettings(_Model):
    workers: bool = Field(default=True, description="run delivery workers in this process")
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 128
    lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 12
    backoff_base: Annotated[float, Field(gt=0)] = 2.0
    backoff_cap: Annotated[float, Field(gt=0)] = 3600.0
    poll_interval: Annotated[float, Field(gt=0)] = 0.5
    shutdown_grace: Annotated[float, Field(ge=0)] = 10.0
    http_timeout: Annotated[float, Field(gt=0)] = 20.0
    job_timeout: Annotated[float, Field(gt=0)] = Field(
        default=300.0,
        description="longest one delivery attempt may run (its lease is renewed meanwhile)",
    )

    @property
    def http_connections(self) -> int:
        """Connections per origin for the hub's HTTP clients: room for every job in flight."""
        return max(100, self.concurrency * 2)


class PeriodicSettings(_Model):
    """Periodic tasks (the SUAP poller, the GPD receipts poller, the IdP registry refresh)."""

    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = Field(
        default=30.0,
        description="how long a replica holds a periodic task without renewing its lease "
        "(renewed every third of it): a replica that dies is replaced within about this long",
    )
    idp_registry_refresh_seconds: Annotated[float, Field(ge=60)] | None = Field(
        default=None,
        description="`sportello serve` refreshes the official SPID IdP list this often, in "
        "every replica (none: run `sportello idps refresh` yourself)",
    )
    idp_registry_url: str = Field(
        default="https://registry.spid.gov.it/metadata/idp/spid-entities-idps.xml",
        description="where the refresh reads the SPID IdP list",
    )


class SandboxSettings(_Model):
    host: str = "127.0.0.1"
    base_port: Annotated[int, Field(ge=1024, le=65000)] = 8100


class PluginSettings(_Model):
    disabled: list[str] = Field(default_factory=list)


class LoggingSettings(_Model):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=True, alias="json")


class AdapterRef(_Model):
    """Which adapter plugin serves a tenant for one kind of legacy software."""

    plugin: str
    options: dict[str, Any] = Field(default_factory=dict)


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


def _relative_to_base(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir") if info.context else None
    if not value.is_absolute() and base is not None:
        return Path(base) / value
    return value


_HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$"  # an HTTP field name (RFC 9110 token)


class StationClientCertSettings(_Model):
    """The client certificate a TLS-terminating proxy verified and forwards in headers.

    Trusted only when configured, and only as the proxy sets it: the proxy must overwrite
    (never pass through) these headers from the client."""

    cert_header: Annotated[str, Field(pattern=_HEADER_NAME)] = Field(
        default="X-SSL-Client-Cert",
        description="header with the verified certificate: PEM (URL-escaped or not) or "
        "base64 DER, e.g. nginx's $ssl_client_escaped_cert",
    )
    verify_header: Annotated[str, Field(pattern=_HEADER_NAME)] | None = Field(
        default="X-Client-Verify",
        description="header the proxy sets to SUCCESS when it verified the certificate "
        "(nginx's $ssl_client_verify); none: the proxy forwards only verified certificates",
    )
    fingerprints: list[Annotated[str, Field(pattern=r"^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$")]] = (
        Field(default_factory=list, description="SHA-256 of the accepted certificates (hex)")
    )
    subjects: list[Annotated[str, Field(min_length=3)]] = Field(
        default_factory=list,
        description="accepted subject DNs, RFC 4514 ('CN=...,O=PagoPA S.p.A.,C=IT')",
    )

    @field_validator("fingerprints")
    @classmethod
    def _normalised(cls, values: list[str]) -> list[str]:
        return [v.replace(":", "").lower() for v in values]

    @model_validator(mode="after")
    def _something_to_match(self) -> StationClientCertSettings:
        if not self.fingerprints and not self.subjects:
            raise ValueError("give the accepted certificates: fingerprints and/or subjects")
        return self


class StationAuthSettings(_Model):
    """Who may call the tenant's EC station: a shared key in a header and/or the client
    certificate checked by a proxy. With both, both are required."""

    key: SecretRef | None = Field(default=None, description="shared key the caller sends")
    previous_key: SecretRef | None = Field(
        default=None, description="the key being replaced, still accepted while rotating"
    )
    key_header: Annotated[str, Field(pattern=_HEADER_NAME)] = "Ocp-Apim-Subscription-Key"
    client_cert: StationClientCertSettings | None = None

    @model_validator(mode="after")
    def _something_to_check(self) -> StationAuthSettings:
        if self.key is None and self.client_cert is None:
            raise ValueError("give a key and/or client_cert")
        if self.previous_key is not None and self.key is None:
            raise ValueError("previous_key needs key")
        return self


class PostalAccountSettings(_Model):
    """The comune's *conto corrente postale* (``[tenants.pagopa.postal]``): its payment
    notices then carry a *Bollettino Postale PA* with Poste Italiane's Data Matrix, for
    every position that names this account as a postal IBAN (``postal_iban``)."""

    account: Annotated[str, Field(pattern=r"^[0-9]{1,12}$")] = Field(
        description="the c/c number (up to 12 digits), as in the postal IBAN's last 12"
    )
    holder: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="the account holder printed after 'intestato a' (default: tenant name)",
    )
    authorization: Annotated[str, Field(min_length=1, max_length=60)] | None = Field(
        default=None,
        description="Poste Italiane's authorisation to print the bollettino in house "
        "(printed as 'Aut. n. ...'), e.g. 'AUT/2024/0001234'",
    )


class PagopaTenantSettings(_Model):
    ec_fiscal_code: Annotated[str, Field(pattern=r"^\d{11}$")]
    broker_id: Annotated[str, Field(pattern=r"^\d{11}$")]
    station_id: Annotated[str, Field(pattern=r"^\d{11}_\d{2}$")]
    segregation_code: Annotated[str, Field(pattern=r"^\d{2}$")] = "01"
    mode: Literal["gpd", "station"] = "gpd"
    base_url: HttpUrl | None = None
    api_key: SecretRef | None = None
    fdr_base_url: HttpUrl | None = None  # FdR organization API, …/fdr-org/service/v1
    fdr_api_key: SecretRef | None = None
    checkout_url: HttpUrl | None = None  # Checkout EC API, …/checkout/ec/v1 (default: production)
    checkout_api_key: SecretRef | None = None  # Checkout subscription: carts need it
    # GPD mode: an import creating more positions than this sends them as bulk uploads
    bulk_threshold: Annotated[int, Field(ge=0)] = 100
    receipts_base_url: HttpUrl | None = None  # GPD receipts API (default: next to base_url)
    receipts_poll_seconds: Annotated[float, Field(gt=0)] = Field(
        default=300.0, description="GPD mode: how often `sportello serve` reads new receipts"
    )
    postal: PostalAccountSettings | None = Field(
        default=None, description="the postal account for the Bollettino Postale PA on notices"
    )
    station_auth: StationAuthSettings | None = Field(
        default=None, description="station mode: how the station authenticates the Node"
    )


class IoServiceSettings(_Model):
    id: str
    name: str = ""
    key: SecretRef
    secondary_key: SecretRef | None = None


class IoTenantSettings(_Model):
    base_url: HttpUrl = Field(description="App IO API base URL (the sandbox's in the demo)")
    services: list[IoServiceSettings] = Field(default_factory=list)
    rate_limit: Annotated[int, Field(ge=0)] = Field(
        default=150, description="calls per key per rate_window, shared by replicas; 0 = off"
    )
    rate_window: Annotated[float, Field(gt=0)] = 5.0
    rate_margin: Annotated[float, Field(ge=0, le=60)] = Field(
        default=0.25,
        description="seconds added to rate_window when pacing: any rate_limit + 1 consecutive "
        "calls span at least rate_window + rate_margin, so network jitter up to this much "
        "between the hub and App IO costs no 429 (0.25: 100 ms of jitter with room to spare)",
    )
    status_poll_delay: Annotated[float, Field(gt=0)] = 30.0
    status_poll_attempts: Annotated[int, Field(ge=0)] = 5
    http_client: Literal["lean", "aiohttp"] = Field(
        default="lean",
        description="lean: the hub's own HTTP/1.1 client for App IO calls (a third of the "
        "CPU per call); aiohttp: the shared session (e.g. behind an HTTP proxy)",
    )

    def service(self, service_id: str) -> IoServiceSettings | None:
        return next((s for s in self.services if s.id == service_id), None)


class PdndTenantSettings(_Model):
    """The tenant's PDND client (one per environment) and its purposes."""

    client_id: str
    key: SecretRef = Field(description="the client's RSA private key (PEM)")
    kid: str | None = Field(
        default=None, description="the key's thumbprint as PDND shows it (computed when omitted)"
    )
    token_url: HttpUrl = Field(description="e.g. https://auth.uat.interop.pagopa.it/token.oauth2")
    assertion_audience: str | None = Field(
        default=None, description="client-assertion aud (derived from token_url when omitted)"
    )
    purposes: dict[str, str] = Field(
        default_factory=dict, description="e-service code (C030, C020...) -> purposeId"
    )


class AnprTenantSettings(_Model):
    """ANPR through PDND: where the GovWay door is and how calls are attributed."""

    base_url: HttpUrl = Field(description="…/govway/rest/in/MinInternoPortaANPR-PDND")
    user_location: str = Field(
        default="Sportello", description="TrackingEvidence userLocation: the office or workstation"
    )
    loa: str = Field(default="LoA2", description="TrackingEvidence LoA of the operator's login")


class SendTenantSettings(_Model):
    """SEND (notifications with legal value): the sender's API key, its PDND purpose for
    SEND's e-service (the voucher comes from ``[tenants.pdnd]``) and how often to poll."""

    base_url: HttpUrl = Field(description="SEND B2B API base URL (the sandbox's in the demo)")
    api_key: SecretRef = Field(description="the sender's x-api-key from SEND's back office")
    purpose_id: Annotated[str, Field(min_length=1)] = Field(
        description="PDND purposeId for SEND's e-service"
    )
    sender_tax_id: Annotated[str, Field(pattern=r"^\d{11}$")] | None = Field(
        default=None, description="senderTaxId (default: the tenant's fiscal_code)"
    )
    sender_denomination: str | None = Field(
        default=None, description="senderDenomination (default: the tenant's name)"
    )
    acceptance_poll_seconds: Annotated[float, Field(gt=0)] = 10.0
    acceptance_poll_attempts: Annotated[int, Field(ge=1)] = 200
    stream_poll_seconds: Annotated[float, Field(gt=0)] = 60.0


class InadTenantSettings(_Model):
    """INAD (digital domiciles) through PDND: the e-service's URL and the tenant's PDND
    purpose for it (the voucher comes from ``[tenants.pdnd]``)."""

    base_url: HttpUrl = Field(
        description="…/rest/inad/v1/domiciliodigitale (the sandbox's in the demo)"
    )
    purpose_id: Annotated[str, Field(min_length=1)] = Field(
        description="PDND purposeId for INAD's extraction e-service"
    )
    bulk_poll_seconds: Annotated[float, Field(gt=0)] = Field(
        default=5.0, description="how often `sportello inad bulk` asks whether the list is ready"
    )
    bulk_max_wait_seconds: Annotated[float, Field(gt=0)] = 3600.0


class SuapTenantSettings(_Model):
    """Telling citizens and businesses that their SUAP practice moved on."""

    io_service: str | None = Field(
        default=None, description="App IO service for practice updates (none: webhooks only)"
    )
    subject: str = "Pratica SUAP {{ practice.id }}: {{ event.status }}"
    markdown: str = (
        "La pratica **{{ practice.title }}** ({{ practice.kind }}, n. {{ practice.id }}) "
        "presentata allo Sportello Unico per le Attività Produttive è ora nello stato: "
        "**{{ event.status }}**.{% if event.note %} {{ event.note }}{% endif %} "
        "Può seguirne l'iter sul sito del comune."
    )
    poll_seconds: Annotated[float, Field(gt=0)] = 60.0


class WebhookSettings(_Model):
    """A tenant system that wants to hear about events (signed, through the outbox)."""

    url: HttpUrl = Field(description="https endpoint of the tenant's system")
    secret: SecretRef | None = Field(
        default=None, description="HMAC-SHA256 key: requests carry Sportello-Signature"
    )
    events: list[str] = Field(
        default_factory=lambda: ["*"],
        description="event names (e.g. io.message.status) or prefixes ending in '*'",
    )

    def wants(self, event: str) -> bool:
        return any(
            e == event or (e.endswith("*") and event.startswith(e[:-1])) for e in self.events
        )


_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")


class TenantConfig(_Model):
    """One public body (ente) served by this hub."""

    id: Annotated[str, Field(description="short slug used in URLs: /t/{id}/...")]
    name: str
    ipa_code: Annotated[str, Field(min_length=1, max_length=20)]
    fiscal_code: Annotated[str, Field(pattern=r"^\d{11}$")]
    cadastral_code: Annotated[str, Field(pattern=r"^[A-Z]\d{3}$")]
    spid: LoginSettings | None = None
    cie: LoginSettings | None = None
    oidc: OidcTenantSettings | None = None
    pagopa: PagopaTenantSettings | None = None
    io: IoTenantSettings | None = None
    pdnd: PdndTenantSettings | None = None
    anpr: AnprTenantSettings | None = None
    adapters: dict[str, AdapterRef] = Field(default_factory=dict)
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    suap: SuapTenantSettings | None = None
    send: SendTenantSettings | None = None
    inad: InadTenantSettings | None = None

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _TENANT_ID.match(value):
            raise ValueError(
                "expected 2-40 lowercase letters, digits or '-', starting alphanumeric"
            )
        return value


class HubConfig(_Model):
    """The whole deployment."""

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    periodic: PeriodicSettings = Field(default_factory=PeriodicSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    idps: IdpTrustSettings = Field(default_factory=IdpTrustSettings)
    tenants: list[TenantConfig] = Field(default_factory=list)
    source: str = Field(default="<memory>", exclude=True, description="file it was read from")

    @field_validator("tenants")
    @classmethod
    def _unique_ids(cls, tenants: list[TenantConfig]) -> list[TenantConfig]:
        seen: set[str] = set()
        for tenant in tenants:
            if tenant.id in seen:
                raise ValueError(f"tenant id {tenant.id!r} appears twice")
            seen.add(tenant.id)
        return tenants

    def tenant(self, tenant_id: str) -> TenantConfig | None:
        return next((t for t in self.tenants if t.id == tenant_id), None)


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"


_SENSITIVE = re.compile(r"key|secret|password|token", re.IGNORECASE)


def format_validation_error(exc: ValidationError) -> list[str]:
    """One readable line per problem: field path, what is expected, what was found."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        where = _loc(loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling and the configuration reference)"
        elif err["type"] == "missing":
            msg = "required field is missing"
        found = ""
        if err["type"] not in ("missing", "extra_forbidden") and not _SENSITIVE.search(where):
            shown = repr(err.get("input"))
            found = f" (found {shown[:60]})" if len(shown) < 200 else ""
        lines.append(f"{where}: {msg}{found}")
    return lines


def parse_config(
    data: dict[str, Any], *, source: str = "<memory>", base_dir: Path | None = None
) -> HubConfig:
    """Validate an already-parsed mapping; relative paths resolve against ``base_dir``."""
    data = dict(data)
    env_url = os.environ.get("SPORTELLO_DATABASE_URL")
    if env_url:
        data["database"] = {**data.get("database", {}), "url": env_url}
    data["source"] = source
    try:
        return HubConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from None


def load_config(
    path: str | os.PathLike[str], *, replace: dict[str, str] | None = None
) -> HubConfig:
    """Read and validate a TOML configuration file.

    ``replace`` substitutes text before parsing (the demo moves its URLs to another port).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(p, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(p, [f"cannot be read: {exc.strerror}"]) from None
    try:
        text = raw.decode("utf-8")
        for old, new in (replace or {}).items():
            text = text.replace(old, new)
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(p, ["is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, [f"invalid TOML: {exc}"]) from None
    return parse_config(data, source=str(p), base_dir=p.resolve().parent)
