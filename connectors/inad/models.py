"""Pydantic models of INAD's extraction e-service (``inad_api_extraxtion.yaml``).

Lenient on answers (unknown fields ignored). ``repr()`` leaves out fiscal codes and
addresses: they are personal data.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BULK_MAX",
    "BulkRequest",
    "BulkState",
    "DigitalAddress",
    "DigitalDomicile",
    "ErrorBody",
    "UsageInfo",
]

#: ``POST /listDigitalAddress`` takes at most 1,000 fiscal codes.
BULK_MAX = 1000


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)


class UsageInfo(_Model):
    """``Usage_Info``: when and why a domicile stops being valid."""

    motivation: str
    dateEndValidity: str


class DigitalAddress(_Model):
    """``Element_Digital_Address``: one PEC address (``practicedProfession`` for
    professionals only)."""

    digitalAddress: str = Field(repr=False)
    practicedProfession: str | None = None
    usageInfo: UsageInfo | None = None


class DigitalDomicile(_Model):
    """``Response_Request_Digital_Address``: the domiciles of one fiscal code."""

    codiceFiscale: str = Field(repr=False)
    since: str
    digitalAddress: list[DigitalAddress] = Field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [a.digitalAddress for a in self.digitalAddress]

    @property
    def has_domicile(self) -> bool:
        return bool(self.digitalAddress)


class BulkRequest(_Model):
    """``Response_Request_List_Digital_Address``: a bulk extraction taken in charge."""

    id: str
    state: str
    message: str
    dateTimeRequest: str


class BulkState(_Model):
    """``Response_Status_List_Digital_Address``: PRESA_IN_CARICO, IN_ELABORAZIONE or
    DISPONIBILE (then ``location`` is where to read the list)."""

    state: str
    message: str
    location: str | None = None

    @property
    def ready(self) -> bool:
        return self.state == "DISPONIBILE"


class ErrorBody(_Model):
    """``Errore``: ``status`` is a string (``"404"``), ``type`` the status name."""

    status: str | None = None
    type: str | None = None
    detail: str | None = None
