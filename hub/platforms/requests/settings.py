"""The requests platform's part of the configuration: ``[tenants.requests]``, and the
service cards (schede di servizio) the request engine runs.

A card says what a service is (title, description, office, deadline in days, whether a
stamp duty applies), which steps its form has and which fields each step asks, and where a
field's value can be prefilled from (the login's identity, the comune's registry: C.SE.1.5).
Two cards are built in, ``certificato`` (certificate request) and ``residenza`` (change of
residence declaration); a tenant offers them with ``services`` and can add cards of its own
(``[[tenants.requests.cards]]``), whose requests the back office follows through the API.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, model_validator

from sportello.config import ConfigModel as _Model
from sportello.config import TenantConfig

from .cards import BUILTIN, CardField, CardStep, ServiceCard, Slug

__all__ = ["CardField", "CardStep", "RequestsTenantSettings", "ServiceCard", "StampDuty"]


class StampDuty(_Model):
    """The stamp duty (imposta di bollo, DPR 642/1972 Tariffa art. 4: 16 euro on each
    certificate) collected through pagoPA: the transfer goes to ``iban`` with taxonomy
    ``category``."""

    amount: Annotated[int, Field(ge=1, le=100000)] = Field(default=1600, description="cents")
    iban: Annotated[str, Field(pattern=r"^IT\d{2}[A-Z]\d{10}[0-9A-Z]{12}$")]
    category: Annotated[str, Field(pattern=r"^\d/[0-9A-Z]{1,20}/$")] = "9/0101108TS/"
    days_to_pay: Annotated[int, Field(ge=1, le=365)] = 30


class RequestsTenantSettings(_Model):
    """``[tenants.requests]``: which services the comune offers online."""

    services: list[Slug] = Field(default_factory=lambda: ["certificato", "residenza"])
    cards: list[ServiceCard] = Field(default_factory=list)
    #: deadline in days, by service id, replacing the card's
    deadlines: dict[str, Annotated[int, Field(ge=1, le=365)]] = Field(default_factory=dict)
    office: str | None = Field(default=None, description="the office, replacing the cards'")
    #: the App IO service that sends the acknowledgement (one of [[tenants.io.services]])
    io_service: str | None = None
    stamp_duty: StampDuty | None = None

    @model_validator(mode="after")
    def _known(self) -> RequestsTenantSettings:
        own = [c.id for c in self.cards]
        for card in self.cards:
            if card.handler != "generic":
                raise ValueError(f"cards: {card.id}: a tenant's card has handler 'generic'")
        clash = sorted({c for c in own if c in BUILTIN or own.count(c) > 1})
        if clash:
            raise ValueError(f"cards: id(s) {', '.join(clash)} used twice or built in")
        unknown = sorted(s for s in self.services if s not in BUILTIN)
        if unknown:
            raise ValueError(f"services: {', '.join(unknown)} not built in ({', '.join(BUILTIN)})")
        ids = set(self.services) | set(own)
        bad = sorted(k for k in self.deadlines if k not in ids)
        if bad:
            raise ValueError(f"deadlines: {', '.join(bad)} not offered")
        return self

    def card(self, service_id: str) -> ServiceCard | None:
        """The card of ``service_id`` as this tenant offers it, or None."""
        found = BUILTIN.get(service_id) if service_id in self.services else None
        found = found or next((c for c in self.cards if c.id == service_id), None)
        if found is None:
            return None
        changes: dict[str, object] = {}
        if service_id in self.deadlines:
            changes["deadline_days"] = self.deadlines[service_id]
        if self.office:
            changes["office"] = self.office
        return found.model_copy(update=changes) if changes else found

    def offered(self) -> list[ServiceCard]:
        ids = [*self.services, *(c.id for c in self.cards)]
        return [c for c in (self.card(i) for i in ids) if c is not None]


TENANT_SECTIONS: dict[str, type[_Model]] = {"requests": RequestsTenantSettings}

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,59}$")


def requests_settings(tenant: TenantConfig | None) -> RequestsTenantSettings | None:
    """The tenant's ``[tenants.requests]``, if configured."""
    value = getattr(tenant, "requests", None)
    return value if isinstance(value, RequestsTenantSettings) else None
