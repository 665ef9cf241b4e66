"""What a protocol adapter is: a class, built per tenant from its configured options
(``[tenants.adapters.protocol]``), that registers an incoming request in the comune's
protocol register (protocollo informatico, DPR 445/2000 art. 53) and gives back its number.

The requests platform declares this kind (``protocol``) through ``hub_adapter_kinds``; the
classes come from ``hub_adapters`` (``{"protocol": {name: class}}``). Without one, the hub
numbers requests itself in its database (``sportello.platforms.requests.service.
hub_protocol_number``): one sequence per tenant and year, never a number twice.

``register`` is called once per request with a stable ``reference`` (the request's id in
the hub): an adapter asked again with the same reference must give the same number back
(the hub retries after a failure). It raises :class:`ProtocolUnavailable` when the register
cannot be reached (the citizen is told to submit again later; nothing is half-written).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

KIND = "protocol"


class ProtocolEntry(BaseModel):
    """A registration: the protocol number as the register writes it, and its instant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: str = Field(min_length=1, max_length=40)
    registered_at: AwareDatetime


class ProtocolUnavailable(Exception):
    """The protocol register cannot be reached now."""


class ProtocolAdapter(Protocol):
    """The contract a protocol adapter class fulfils."""

    name: ClassVar[str]

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None: ...

    async def register(
        self,
        *,
        reference: str,
        subject: str,
        sender_fiscal_code: str,
        office: str,
        at: datetime,
    ) -> ProtocolEntry:
        """Register an incoming document (the request) and give its protocol entry."""
        ...

    async def close(self) -> None: ...
