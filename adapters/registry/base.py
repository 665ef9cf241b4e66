"""What a registry (anagrafe) adapter is: a class, returned by the ``hub_registry_adapters``
hook, built per tenant from its configured options, with async look-ups."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field


class RegistryRecord(BaseModel):
    """One resident as the comune's own registry knows them. Unknown fields stay None."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fiscal_code: str = Field(pattern=r"^[A-Z0-9]{16}$")
    family_name: str | None = None
    given_name: str | None = None
    sex: str | None = Field(default=None, pattern=r"^[MF]$")
    birth_date: date | None = None
    birth_place: str | None = None
    address: str | None = None
    municipality_istat: str | None = Field(default=None, pattern=r"^\d{6}$")
    family_id: str | None = None
    relationship: str | None = None
    email: str | None = None
    phone: str | None = None


FIELDS = tuple(RegistryRecord.model_fields)


class RegistryDataError(Exception):
    """A row of the comune's data that cannot be used: says where (file, row, field)."""

    def __init__(self, source: str, row: int, field: str, message: str) -> None:
        self.source, self.row, self.field, self.message = source, row, field, message
        super().__init__(f"{source}: row {row}: {field}: {message}")


#: the certificates ``issue_certificate`` gives, by kind (the registry's own: DPR 223/1989
#: art. 33; the contestuale one is DPR 445/2000 art. 11)
CERTIFICATE_KINDS = {
    "residenza": "Certificato di residenza",
    "stato_famiglia": "Certificato di stato di famiglia",
    "residenza_stato_famiglia": "Certificato contestuale di residenza e stato di famiglia",
}


class RegistryRefused(Exception):
    """The registry refuses what was asked (not a resident, an unknown kind, a reference
    already used for something else): the citizen is told, nothing is retried."""


class Mover(BaseModel):
    """A person who moves with the declarant (ANPR: each member of the household)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fiscal_code: str = Field(pattern=r"^[A-Z0-9]{16}$")
    full_name: str = Field(min_length=1, max_length=200)
    relationship: str = Field(min_length=1, max_length=60)


class ResidenceDeclaration(BaseModel):
    """A change of residence declaration (dichiarazione di residenza, DPR 223/1989 art. 13;
    the data of the ministry's form that ANPR records), as the hub sends it to the registry.

    ``reference`` is the hub's request id: the same declaration sent again (a retry) gives
    the same practice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: str = Field(min_length=1, max_length=40)
    protocol_number: str
    declarant: str = Field(pattern=r"^[A-Z0-9]{16}$")
    given_name: str
    family_name: str
    birth_date: date | None = None
    birth_place: str | None = None
    email: str | None = None
    phone: str | None = None
    #: same_comune (a new address here), other_comune (from another Italian comune), abroad
    origin: str = Field(pattern=r"^(same_comune|other_comune|abroad)$")
    previous_comune: str | None = None
    street: str
    number: str
    staircase: str | None = None
    floor: str | None = None
    apartment: str | None = None
    moved_on: date
    #: the title of occupancy (DL 47/2014 art. 5): owner, tenant, loan, usufruct, other
    occupancy: str
    occupancy_detail: str | None = None
    movers: list[Mover] = Field(default_factory=list)


class RegistryAdapter(Protocol):
    """The contract a registry adapter class fulfils (reference: CSV and SQL adapters)."""

    name: ClassVar[str]

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None: ...

    async def lookup(self, fiscal_code: str) -> RegistryRecord | None:
        """The resident with this fiscal code, or None."""
        ...

    async def household(self, fiscal_code: str) -> list[RegistryRecord]:
        """Everyone in the same family as this resident (the resident included)."""
        ...

    async def issue_certificate(self, fiscal_code: str, kind: str) -> bytes:
        """The certificate ``kind`` (:data:`CERTIFICATE_KINDS`) of this resident as a PDF;
        raises :class:`RegistryRefused` when it cannot be issued (not a resident)."""
        ...

    async def declare_residence_change(self, declaration: ResidenceDeclaration) -> str:
        """Hand a residence declaration to the registry office as a practice; its number.
        The same ``reference`` again gives the same number (the hub retries)."""
        ...

    def problems(self) -> list[RegistryDataError]:
        """Rows skipped because they are not valid (empty when all are good)."""
        ...

    async def close(self) -> None: ...


def mapping_from(options: dict[str, Any]) -> dict[str, str]:
    """``{field: source column}``: the identity unless ``options["columns"]`` remaps fields."""
    columns = dict(options.get("columns") or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown registry field(s) in columns: {', '.join(unknown)}")
    return {f: str(columns.get(f, f)) for f in FIELDS}
