"""The pagoPA platform's part of the configuration: ``[tenants.pagopa]``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sportello.config import ConfigModel as _Model
from sportello.config import HttpUrl, SecretRef, TenantConfig

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


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"pagopa": PagopaTenantSettings}


def pagopa_settings(tenant: TenantConfig) -> PagopaTenantSettings | None:
    """The tenant's ``[tenants.pagopa]``, if configured."""
    value = getattr(tenant, "pagopa", None)
    return value if isinstance(value, PagopaTenantSettings) else None
