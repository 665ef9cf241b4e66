"""The SEND platform's part of the configuration: ``[tenants.send]`` and ``[tenants.inad]``
(both through PDND: the voucher comes from the kernel's ``[tenants.pdnd]``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sportello.config import ConfigModel as _Model
from sportello.config import HttpUrl, SecretRef, TenantConfig


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
    http_client: Literal["lean", "aiohttp"] = Field(
        default="lean",
        description="lean: the hub's own HTTP/1.1 client for SEND's calls and the uploads "
        "(a third of aiohttp's CPU per call); aiohttp: the shared session (e.g. behind an "
        "HTTP proxy)",
    )


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


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {
    "send": SendTenantSettings,
    "inad": InadTenantSettings,
}


def send_settings(tenant: TenantConfig) -> SendTenantSettings | None:
    """The tenant's ``[tenants.send]``, if configured."""
    value = getattr(tenant, "send", None)
    return value if isinstance(value, SendTenantSettings) else None


def inad_settings(tenant: TenantConfig) -> InadTenantSettings | None:
    """The tenant's ``[tenants.inad]``, if configured."""
    value = getattr(tenant, "inad", None)
    return value if isinstance(value, InadTenantSettings) else None
