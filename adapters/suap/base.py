"""What a SUAP adapter is: a class, built per tenant from its configured options, that reads
the comune's SUAP back office (the pratiche of businesses, DPR 160/2010 and its technical annex
as amended by DM 26-09-2023) and answers with async look-ups.

Vocabulary: a *practice* (pratica, an instance in the annex) is submitted by an applicant
(a person's 16-character fiscal code or a company's 11-digit one), is of a *kind* (SCIA,
autorizzazione, comunicazione, ...) and moves through *events*, each setting its *status*;
the last event is the current status. Its *documents* are the files attached to it.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

FISCAL_CODE = r"^(?:[A-Z0-9]{16}|\d{11})$"


class Practice(BaseModel):
    """One SUAP practice, with its current status (that of its last event)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    applicant_fiscal_code: str = Field(pattern=FISCAL_CODE)
    applicant_name: str | None = None
    title: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    status: str = Field(min_length=1)
    submitted_at: AwareDatetime
    updated_at: AwareDatetime
    #: the number the comune's register gave the practice at intake (C.SE.1.10)
    protocol_number: str | None = Field(default=None, min_length=1, max_length=60)
    #: the date by which the procedure must end (termine di conclusione, L. 241/1990 art. 2)
    deadline: date | None = None


class PracticeEvent(BaseModel):
    """A change of a practice's status (received, integration requested, concluded, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    practice_id: str = Field(min_length=1)
    status: str = Field(min_length=1)
    at: AwareDatetime
    note: str | None = None


class PracticeDocument(BaseModel):
    """A file attached to a practice (its content stays in the back office)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    media_type: str = Field(min_length=1)
    size: int = Field(ge=0)


class SuapDataError(Exception):
    """An entry of the comune's SUAP data that cannot be used: says where (file, entry such as
    ``practices[3]`` or ``practices[1].events[2]``, field)."""

    def __init__(self, source: str, where: str, field: str, message: str) -> None:
        self.source, self.where, self.field, self.message = source, where, field, message
        super().__init__(f"{source}: {self.location}: {message}")

    @property
    def location(self) -> str:
        """``where.field`` (e.g. ``practices[3].submitted_at``), or ``where`` alone."""
        return f"{self.where}.{self.field}" if self.field else self.where


class SuapAdapter(Protocol):
    """The contract a SUAP adapter class fulfils (reference: the JSON adapter)."""

    name: ClassVar[str]

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None: ...

    async def practices(self, applicant_fiscal_code: str) -> list[Practice]:
        """The practices of this applicant (fiscal code in any case), newest first."""
        ...

    async def practice(self, practice_id: str) -> Practice | None:
        """The practice with this id, or None."""
        ...

    async def timeline(self, practice_id: str) -> list[PracticeEvent]:
        """The practice's events, oldest first (the last is the current status); [] if unknown."""
        ...

    async def documents(self, practice_id: str) -> list[PracticeDocument]:
        """The documents attached to the practice; [] if unknown."""
        ...

    async def changes_since(self, since: datetime) -> list[PracticeEvent]:
        """Events of every practice with ``at > since`` (an aware datetime), oldest first:
        what the hub notifies citizens about."""
        ...

    def problems(self) -> list[SuapDataError]:
        """Entries skipped because they are not valid (empty when all are good)."""
        ...

    async def close(self) -> None: ...
