"""The front office's part of the configuration: ``[tenants.frontoffice]``.

How the citizen's pages of a tenant look and where they lead: the comune's name and logo
(its site's header), its site (where error pages and the logout lead back), the services
shown on the home page and the personal area's sections.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator

from sportello.config import ConfigModel as _Model
from sportello.config import TenantConfig

_URL = r"^(https?://[^\s<>\"]+|/[^\s<>\"]*)$"
Url = Annotated[str, Field(pattern=_URL, max_length=500)]


class FrontofficeService(_Model):
    """A service listed on the home page: a link (the hub's own pages or the comune's)."""

    title: Annotated[str, Field(min_length=1, max_length=120)]
    url: Url
    description: Annotated[str, Field(max_length=300)] = ""


class FrontofficeTenantSettings(_Model):
    """The citizen's front office at ``/t/{tenant}/sportello/`` (docs/frontoffice.md)."""

    site_name: Annotated[str, Field(max_length=120)] | None = Field(
        default=None, description="the name in the header (default: the tenant's name)"
    )
    tagline: Annotated[str, Field(max_length=200)] = ""
    logo_url: Url | None = Field(default=None, description="the comune's logo (stemma)")
    home_url: Url | None = Field(
        default=None,
        description="the comune's site: the header's link, where errors lead back "
        "(default: the front office's home)",
    )
    owner_name: Annotated[str, Field(max_length=120)] = Field(
        default="", description="the slim header's owner (e.g. the region); default: the name"
    )
    owner_url: Url | None = None
    after_logout_url: Url | None = Field(
        default=None, description="where the citizen lands after logging out (default: home_url)"
    )
    services: list[FrontofficeService] = Field(
        default_factory=list, description="services listed on the home page (besides booking)"
    )
    sections: list[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,40}$")]] | None = Field(
        default=None,
        description="the personal area's sections to show, by key (default: every "
        "platform's: dati, pagamenti, pratiche, appuntamenti, messaggi, notifiche)",
    )
    templates_dir: Path | None = Field(
        default=None,
        description="a folder of templates searched before the built-in ones (branding; "
        "relative to the configuration file)",
    )

    @field_validator("templates_dir")
    @classmethod
    def _relative_to_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir") if info.context else None
        if value is not None and not value.is_absolute() and base is not None:
            return Path(base) / value
        return value

    @field_validator("sections")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(value) != len(set(value)):
            raise ValueError("section keys must be unique")
        return value


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"frontoffice": FrontofficeTenantSettings}


def frontoffice_settings(tenant: TenantConfig) -> FrontofficeTenantSettings | None:
    """The tenant's ``[tenants.frontoffice]``, if configured: the front office answers only
    for tenants that have it."""
    value = getattr(tenant, "frontoffice", None)
    return value if isinstance(value, FrontofficeTenantSettings) else None
