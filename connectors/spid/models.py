"""The shapes the SPID/CIE service provider works with (shared by metadata, requests,
responses, logout, the hub routes and the sandbox IdP tests).

Everything here is plain data: no XML, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Kind = Literal["spid", "cie"]
Profile = Literal["public", "private", "aggregated"]
Comparison = Literal["exact", "minimum", "better", "maximum"]
Binding = Literal["redirect", "post"]

SPID_LEVELS = {
    1: "https://www.spid.gov.it/SpidL1",
    2: "https://www.spid.gov.it/SpidL2",
    3: "https://www.spid.gov.it/SpidL3",
}

# SPID attribute names an SP may request (Regole tecniche, "Attributi").
SPID_ATTRIBUTES = (
    "spidCode",
    "name",
    "familyName",
    "placeOfBirth",
    "countyOfBirth",
    "dateOfBirth",
    "gender",
    "companyName",
    "registeredOffice",
    "fiscalNumber",
    "ivaCode",
    "idCard",
    "mobilePhone",
    "email",
    "address",
    "expirationDate",
    "digitalAddress",
    "domicileStreetAddress",
    "domicilePostalCode",
    "domicileMunicipality",
    "domicileProvince",
    "domicileNation",
    "companyFiscalNumber",
)
CIE_ATTRIBUTES = ("name", "familyName", "dateOfBirth", "fiscalNumber")


@dataclass(frozen=True)
class Organization:
    name: str
    display_name: str
    url: str
    lang: str = "it"


@dataclass(frozen=True)
class Contact:
    """A ``ContactPerson``: who answers for the SP (or for the aggregator)."""

    email: str
    phone: str | None = None  # +39... without spaces
    company: str | None = None
    ipa_code: str | None = None
    vat_number: str | None = None  # "IT" + 11 digits
    fiscal_code: str | None = None


@dataclass(frozen=True)
class Billing:
    """``fpa:CessionarioCommittente`` for private SPs (Avviso 29 v3, billing contact)."""

    company: str
    vat_number: str  # IT + digits, split into country + code in XML
    address: str
    number: str
    postal_code: str
    town: str
    province: str
    country: str = "IT"
    email: str = ""
    fiscal_code: str | None = None


@dataclass(frozen=True)
class Aggregator:
    """The software house that serves the tenant as a SPID aggregator (Avviso 19 v4).

    ``activity`` is the code that ends up in the entityID and in the extensions:
    ``pub-ag-full`` -> ``spid:PublicServicesFullAggregator`` and so on.
    Its key signs the aggregated metadata.
    """

    company: str
    vat_number: str | None
    fiscal_code: str | None
    email: str
    phone: str | None
    key_pem: bytes
    cert_pem: bytes
    activity: Literal["pub-ag-full", "pub-ag-lite", "pri-ag-full", "pri-ag-lite"] = "pub-ag-full"


@dataclass(frozen=True)
class SpSettings:
    """One tenant's service provider for one scheme (SPID or CIE).

    ``entity_id`` is also the certificate's ``uri`` and, in this hub, the metadata URL.
    ``certs`` holds the current certificate first, then older ones still published during a
    rotation overlap; ``key_pem`` signs (always the current key).
    """

    kind: Kind
    entity_id: str
    acs_url: str
    slo_url: str
    key_pem: bytes
    certs: tuple[bytes, ...]
    organization: Organization
    contact: Contact
    profile: Profile = "public"
    attributes: tuple[str, ...] = ("name", "familyName", "fiscalNumber", "email")
    attribute_index: int = 0
    service_name: str = "Servizi online"
    billing: Billing | None = None
    aggregator: Aggregator | None = None
    municipality: str | None = None  # cadastral code (CIE, mandatory there)
    province: str | None = None
    technical_contact: Contact | None = None  # CIE: the software house
    clock_skew: float = 10.0  # seconds accepted on IssueInstant / NotBefore / NotOnOrAfter


@dataclass(frozen=True)
class IdpInfo:
    """An identity provider as its metadata describes it."""

    entity_id: str
    name: str
    certs: tuple[bytes, ...]  # PEM signing certificates
    sso_redirect: str | None = None
    sso_post: str | None = None
    slo_redirect: str | None = None
    slo_post: str | None = None
    slo_redirect_response: str | None = None  # ResponseLocation, when given


@dataclass(frozen=True)
class AuthnRequestOut:
    """What the login route hands the browser, and what it stores as the pending request."""

    request_id: str
    issue_instant: datetime
    binding: Binding
    url: str  # redirect URL (binding "redirect") or the form action (binding "post")
    form_html: str | None  # auto-submitting form for "post"
    relay_state: str


@dataclass(frozen=True)
class PendingRequest:
    """A stored AuthnRequest the ACS answers against."""

    request_id: str
    issue_instant: datetime
    idp_entity_id: str
    level: int
    comparison: Comparison


@dataclass(frozen=True)
class Identity:
    """An accepted login: who, at which level, from which IdP, and until when."""

    idp_entity_id: str
    name_id: str
    name_qualifier: str
    session_index: str | None
    level: int
    attributes: dict[str, str]
    assertion_id: str
    response_id: str
    in_response_to: str
    not_on_or_after: datetime  # of the assertion (replay cache expiry)
    authn_instant: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)
