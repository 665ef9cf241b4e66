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
