"""The residents platform's part of the configuration: ``[tenants.anpr]`` (ANPR through
PDND; the PDND client itself is the kernel's ``[tenants.pdnd]``)."""

from __future__ import annotations

from pydantic import Field

from sportello.config import ConfigModel as _Model
from sportello.config import HttpUrl, TenantConfig


class AnprTenantSettings(_Model):
    """ANPR through PDND: where the GovWay door is and how calls are attributed."""

    base_url: HttpUrl = Field(description="…/govway/rest/in/MinInternoPortaANPR-PDND")
    user_location: str = Field(
        default="Sportello", description="TrackingEvidence userLocation: the office or workstation"
    )
    loa: str = Field(default="LoA2", description="TrackingEvidence LoA of the operator's login")


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"anpr": AnprTenantSettings}


def anpr_settings(tenant: TenantConfig) -> AnprTenantSettings | None:
    """The tenant's ``[tenants.anpr]``, if configured."""
    value = getattr(tenant, "anpr", None)
    return value if isinstance(value, AnprTenantSettings) else None
