"""The SUAP platform's part of the configuration: ``[tenants.suap]``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from sportello.config import ConfigModel as _Model
from sportello.config import TenantConfig


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


#: The sections this platform declares (``hub_tenant_settings``).
TENANT_SECTIONS: dict[str, type[_Model]] = {"suap": SuapTenantSettings}


def suap_settings(tenant: TenantConfig) -> SuapTenantSettings | None:
    """The tenant's ``[tenants.suap]``, if configured."""
    value = getattr(tenant, "suap", None)
    return value if isinstance(value, SuapTenantSettings) else None
