"""SEND's F24 metadata (``F24Metadata`` of the B2B bundle), field by field.

An F24 payment of a notification (``recipients[i].payments[j].f24``) refers to a JSON file
preloaded as ``application/json``; SEND builds the F24 form from it and refuses the
notification with ``F24_METADATA_NOT_VALID`` when the file does not follow the schema. The
models below are the bundle's schemas (``F24Standard``, ``F24Simplified``, ``F24Excise``,
``F24Elid`` and their sections and records): types are strict (``"true"`` is not a boolean,
``100`` is not an amount: amounts are strings of 3 to 15 digits, in euro cents), each
record says ``applyCost`` (``IncludeNotificationCost``), a local tax record (IMU, TARI, ...)
names its ``municipality`` (the comune's cadastral code) and ``taxType`` (the tributo code),
a simplified record its ``section`` (ER, RG or EL). Patterns are the bundle's, searched as
JSON Schema does (``^A|B$`` is "starts with A or ends with B"); the bundle's ``[A-Z\\\\s]`` of
``PersonalData`` is read as ``[A-Z\\s]`` (letters and spaces), as its other names are.
Fields the schemas do not list are allowed, as the schemas allow them.

:func:`f24_metadata_problems` gives every problem as ``(field, message)``, the field named
as a path (``f24Standard.localTax.records[0].municipality``); values are never echoed
(they are personal data).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "F24_KINDS",
    "F24Elid",
    "F24Excise",
    "F24Metadata",
    "F24Simplified",
    "F24Standard",
    "f24_metadata_problems",
]

#: ``F24Metadata``: one and only one of these.
F24_KINDS = ("f24Standard", "f24Simplified", "f24Excise", "f24Elid")


_TAX_CODE = (
    r"^([A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST]{1}[0-9LMNPQRSTUV]{2}[A-Z]{1}"
    r"[0-9LMNPQRSTUV]{3}[A-Z]{1})|([0-9]{11})$"
)
_AMOUNT = r"^[0-9]{3,15}$"
_YEAR = r"^[1-2][0-9]{3}$"
_INSTALLMENT = r"^[A-Z0-9]{0,4}$"
_OFFICE = r"^[A-Z0-9]{3}$"
_DOCUMENT = r"^\d{11}$"
_ID2 = r"^[A-Z0-9]{2}$"
_ID17 = r"^[A-Z0-9]{17}$"
_OPERATION = r"^[A-Z0-9]{18}$"


class _F24(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", hide_input_in_errors=True)


class _Cost(_F24):
    """``IncludeNotificationCost``: every record says whether SEND's cost goes on it."""

    applyCost: bool


class PersonalData(_F24):
    surname: str | None = Field(default=None, pattern=r"^[A-Z\s]{1,24}$")
    name: str | None = Field(default=None, pattern=r"^[A-Z\s]{1,20}$")
    birthDate: str | None = Field(default=None, pattern=r"^\d{2}-\d{2}-\d{4}$")
    sex: str | None = Field(default=None, pattern=r"^[FM]$")
    birthPlace: str | None = Field(default=None, pattern=r"^[A-Z\s]{1,40}$")
    birthProvince: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class TaxAddress(_F24):
    municipality: str | None = Field(default=None, pattern=r"^[A-Z]{1,40}$")
    province: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    address: str | None = Field(default=None, pattern=r"^[A-Z0-9\s.]{1,35}$")


class PersonData(_F24):
    personalData: PersonalData | None = None
    taxAddress: TaxAddress | None = None


class CompanyData(_F24):
    name: str | None = Field(default=None, pattern=r"^[A-Z\s]{1,60}$")
    taxAddress: TaxAddress | None = None


class TaxPayerStandard(_F24):
    taxCode: str | None = Field(default=None, pattern=_TAX_CODE)
    isNotTaxYear: bool | None = None
    person: PersonData | None = None
    company: CompanyData | None = None
    relativePersonTaxCode: str | None = Field(default=None, pattern=_TAX_CODE)
    id: str | None = Field(default=None, pattern=_ID2)


class TaxPayerExcise(TaxPayerStandard):
    pass


class TaxPayerElide(_F24):
    taxCode: str | None = Field(default=None, pattern=_TAX_CODE)
    person: PersonData | None = None
    company: CompanyData | None = None
    relativePersonTaxCode: str | None = Field(default=None, pattern=_TAX_CODE)
    id: str | None = Field(default=None, pattern=_ID2)


class TaxPayerSimplified(_F24):
    taxCode: str | None = Field(default=None, pattern=_TAX_CODE)
    personalData: PersonalData | None = None
    relativePersonTaxCode: str | None = Field(default=None, pattern=_TAX_CODE)
    id: str | None = Field(default=None, pattern=_ID2)
    document: str | None = Field(default=None, pattern=_DOCUMENT)
    office: str | None = Field(default=None, pattern=_OFFICE)


class Tax(_Cost):
    """A line of the Erario section."""

    taxType: str | None = Field(default=None, pattern=r"^[A-Z0-9]{4}$")
    installment: str | None = Field(default=None, pattern=_INSTALLMENT)
    year: str | None = Field(default=None, pattern=_YEAR)
    debit: str | None = Field(default=None, pattern=_AMOUNT)
    credit: str | None = Field(default=None, pattern=_AMOUNT)


class TreasurySection(_F24):
    records: list[Tax] | None = None
    office: str | None = Field(default=None, pattern=_OFFICE)
    document: str | None = Field(default=None, pattern=_DOCUMENT)


class Period(_F24):
    startDate: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    endDate: str | None = Field(default=None, pattern=r"^[0-9]{6}$")


class InpsRecord(_Cost):
    office: str | None = Field(default=None, pattern=r"^[0-9]{3,4}$")
    reason: str | None = Field(default=None, pattern=r"^[A-Z-]{3,4}$")
    inps: str | None = Field(default=None, pattern=r"^[A-Za-z0-9\s]{0,17}$")
    period: Period | None = None
    debit: str | None = Field(default=None, pattern=_AMOUNT)
    credit: str | None = Field(default=None, pattern=_AMOUNT)


class InpsSection(_F24):
    records: list[InpsRecord] | None = None


class RegionRecord(_Cost):
    region: str | None = Field(default=None, pattern=r"^[0-9]{2}$")
    taxType: str | None = Field(default=None, pattern=r"^[0-9A-Z]{4}$")
    installment: str | None = Field(default=None, pattern=_INSTALLMENT)
    year: str | None = Field(default=None, pattern=_YEAR)
    debit: str | None = Field(default=None, pattern=_AMOUNT)
    credit: str | None = Field(default=None, pattern=_AMOUNT)


class RegionSection(_F24):
    records: list[RegionRecord] | None = None


class LocalTaxRecord(_Cost):
    """A line of the IMU and local taxes section: the comune's cadastral code and the
    tributo code are required."""

    municipality: str = Field(pattern=r"^[0-9A-Z]{4}$")
    reconsideration: bool | None = None
    propertiesChanges: bool | None = None
    advancePayment: bool | None = None
    fullPayment: bool | None = None
    numberOfProperties: str | None = Field(default=None, pattern=r"^[0-9]{3}$")
    taxType: str = Field(pattern=r"^[0-9]{4}$")
    installment: str | None = Field(default=None, pattern=_INSTALLMENT)
    year: str | None = Field(default=None, pattern=_YEAR)
    debit: str | None = Field(default=None, pattern=_AMOUNT)
    credit: str | None = Field(default=None, pattern=_AMOUNT)


class LocalTaxSection(_F24):
    operationId: str | None = Field(default=None, pattern=_OPERATION)
    records: list[LocalTaxRecord] | None = None
    deduction: str | None = Field(default=None, pattern=_AMOUNT)


class InailRecord(_Cost):
    office: str | None = Field(default=None, pattern=r"^[0-9]{5}$")
    company: str | None = Field(default=None, pattern=r"^[0-9]{8}$")
    control: str | None = Field(default=None, pattern=r"^[0-9]{2}$")
    refNumber: str | None = Field(default=None, pattern=r"^[0-9]{6}$")
    reason: str | None = Field(default=None, pattern=r"^[A-Z0-9]$")
    debit: str | None = Field(default=None, pattern=_AMOUNT)
    credit: str | None = Field(default=None, pattern=_AMOUNT)


class SocialSecurityRecord(_Cost):
    institution: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    office: str | None = Field(default=None, pattern=r"^[0-9A-Z]{5}$")
    reason: str | None = Field(default=None, pattern=r"^[0-9A-Z]{3,4}$")
    position: str | None = Field(default=None, pattern=r"^[0-9]{9}$")
    period: Period | None = None
    debit: str | None = Field(default=None, pattern=_AMOUNT)
    credit: str | None = Field(default=None, pattern=_AMOUNT)


class SocialSecuritySection(_F24):
    records: list[InailRecord] | None = None
    socSecRecords: list[SocialSecurityRecord] | None = None


class F24Standard(_F24):
    taxPayer: TaxPayerStandard | None = None
    treasury: TreasurySection | None = None
    inps: InpsSection | None = None
    region: RegionSection | None = None
    localTax: LocalTaxSection | None = None
    socialSecurity: SocialSecuritySection | None = None


class SimplifiedPaymentRecord(LocalTaxRecord):
    section: str = Field(pattern=r"^(ER|RG|EL)$")


class SimplifiedPaymentSection(_F24):
    operationId: str | None = Field(default=None, pattern=_OPERATION)
    records: list[SimplifiedPaymentRecord] | None = None


class F24Simplified(_F24):
    taxPayer: TaxPayerSimplified | None = None
    payments: SimplifiedPaymentSection | None = None


class ExciseTax(_Cost):
    institution: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    province: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    id: str | None = Field(default=None, pattern=_ID17)
    taxType: str | None = Field(default=None, pattern=r"^[0-9A-Z]{4}$")
    installment: str | None = Field(default=None, pattern=_INSTALLMENT)
    month: str | None = Field(default=None, pattern=r"^[0-1][0-9]$")
    year: str | None = Field(default=None, pattern=_YEAR)
    debit: str | None = Field(default=None, pattern=_AMOUNT)


class ExciseSection(_F24):
    records: list[ExciseTax] | None = None
    office: str | None = Field(default=None, pattern=_OFFICE)
    document: str | None = Field(default=None, pattern=_DOCUMENT)


class F24Excise(_F24):
    taxPayer: TaxPayerExcise | None = None
    treasury: TreasurySection | None = None
    inps: InpsSection | None = None
    region: RegionSection | None = None
    localTax: LocalTaxSection | None = None
    excise: ExciseSection | None = None


class TreasuryRecord(_Cost):
    type: str | None = Field(default=None, pattern=r"^[A-Z]$")
    id: str | None = Field(default=None, pattern=_ID17)
    taxType: str | None = Field(default=None, pattern=r"^[A-Z0-9]{4}$")
    year: str | None = Field(default=None, pattern=_YEAR)
    debit: str | None = Field(default=None, pattern=_AMOUNT)


class TreasuryAndOtherSection(_F24):
    office: str | None = Field(default=None, pattern=_OFFICE)
    document: str | None = Field(default=None, pattern=_DOCUMENT)
    records: list[TreasuryRecord] | None = None


class F24Elid(_F24):
    taxPayer: TaxPayerElide | None = None
    treasury: TreasuryAndOtherSection | None = None


class F24Metadata(_F24):
    """One and only one of the four kinds (checked by :func:`f24_metadata_problems`)."""

    f24Standard: F24Standard | None = None
    f24Simplified: F24Simplified | None = None
    f24Excise: F24Excise | None = None
    f24Elid: F24Elid | None = None


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required"
    if kind == "string_pattern_mismatch":
        return f"must match {error['ctx']['pattern']}"
    if kind in ("string_type", "bool_type", "list_type", "model_type", "dict_type"):
        return {
            "string_type": "must be a string",
            "bool_type": "must be true or false",
            "list_type": "must be an array",
        }.get(kind, "must be an object")
    return str(error["msg"])


def f24_metadata_problems(data: Any) -> list[tuple[str, str]]:
    """Every problem of ``data`` (the parsed JSON file) as ``F24Metadata``: ``(field,
    message)``, empty when SEND's schema takes it."""
    if not isinstance(data, dict):
        return [("", "not a JSON object (F24Metadata)")]
    unknown = sorted(set(data) - set(F24_KINDS))
    if unknown:
        return [("", f"unknown field {unknown[0][:40]!r}: one of {', '.join(F24_KINDS)}")]
    kinds = [k for k in F24_KINDS if data.get(k) is not None]
    if len(kinds) != 1:
        return [("", f"one and only one of {', '.join(F24_KINDS)}")]
    if not isinstance(data[kinds[0]], dict) or not data[kinds[0]]:
        # the schema takes {} but SEND cannot make an F24 form of nothing
        return [(kinds[0], "an object with the F24's sections")]
    try:
        F24Metadata.model_validate(data)
    except ValidationError as exc:
        return [(_path(e["loc"]), _message(e)) for e in exc.errors()]
    return []


def f24_metadata_bytes_problems(content: bytes) -> list[tuple[str, str]]:
    """:func:`f24_metadata_problems` of a file's bytes (not JSON: one problem)."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[" * 10**5
        return [("", "not JSON (the F24 metadata, F24Metadata)")]
    return f24_metadata_problems(data)
