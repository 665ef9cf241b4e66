"""A debt position as the hub holds it, and its GPD v1 request body (``to_gpd()``).

Shape and names follow GPD's ``PaymentPositionModel`` / ``PaymentOptionModel`` /
``TransferModel`` (``pagopa-api openapi/gpd.json``); limits that GPD only meets later,
when the Node asks the EC for the payment (``paGetPayment``), are applied here too: the
debtor's name and address fields have the lengths of ``ctSubject`` in ``paForNode.xsd``,
amounts stay within ``stAmountNotZero`` (0.01 to 999,999,999.99 euro), descriptions and
remittance information are 1 to 140 characters (``stText140``).

Rules checked here, each with an error that names the field:

- a transfer has an ``iban`` (optionally with a ``postal_iban``) or a ``stamp``, never
  both: GPD's own rule ("The Iban may be present (optionally combined with the Postal
  Iban) or the Stamp"); IBANs are Italian and pass the ISO 13616 mod-97 check, a postal
  IBAN belongs to Poste Italiane (ABI 07601);
- 1 to 5 transfers per option, ``id_transfer`` values distinct and 1..n, their amounts
  summing to the option's amount;
- ``due_date`` not after ``retention_date``; with a ``validity_date``, every ``due_date``
  strictly after it (SANP 3.11, "Vincoli sulle date");
- instalments: options with ``is_partial_payment=True`` numbered 1..n, plus at most one
  option for the payment in full (``is_partial_payment=False``);
- IUVs are aux-digit-3 IUVs with valid check digits, distinct within the position;
- the debtor's fiscal code has a valid check character (:mod:`sportello.connectors.fiscal_code`);
- no text holds a character that XML 1.0 cannot carry (C0 controls other than tab, LF
  and CR, lone surrogates, U+FFFE, U+FFFF): every field may end up in a SOAP message
  to the Node (``paGetPaymentV2``), which lxml would refuse to write.

Positions already stored are loaded with :meth:`DebtPosition.from_stored`, which skips
the last two checks (rules added later must not make stored positions unreadable).

Rules that depend on the clock (``validity_date`` and due dates not in the past) are left
to :meth:`DebtPosition.date_problems`, so that loading a stored position never fails.

Validation errors never echo input values (``hide_input_in_errors``) and ``repr()``
leaves out the debtor's personal data.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sportello.connectors import fiscal_code as cf

from .errors import InvalidIUV
from .identifiers import notice_number, validate_iuv

__all__ = [
    "AMOUNT_MAX",
    "MAX_TRANSFERS",
    "STORED",
    "TAXONOMY_PATTERN",
    "DebtPosition",
    "DebtorType",
    "PaymentOption",
    "Stamp",
    "Transfer",
    "describe_validation_error",
    "format_gpd_datetime",
    "is_valid_iban",
    "xml_char_problem",
]

#: Largest amount in cents the Node accepts (``stAmountNotZero`` max 999999999.99).
AMOUNT_MAX = 99_999_999_999
#: GPD: ``idTransfer`` is "1".."5".
MAX_TRANSFERS = 5
#: Taxonomy code (*tassonomia dei servizi di incasso*): optional prefix ``9/`` (or the
#: RTP prefixes ``6/``, ``7/``, ``8/``), creditor type (2 digits), macro area (2),
#: service type (3), legal reason (IM, TS, SP, SA or AP), then optionally ``/`` and
#: EC-specific data. Example: ``9/0101002IM/`` or ``0101002IM``.
TAXONOMY_PATTERN = r"^(?:[6-9]/)?[0-9]{7}(?:IM|TS|SP|SA|AP)(?:/\S*)?$"
#: Poste Italiane's ABI code: a postal IBAN is ``ITkk`` + CIN + ``07601`` + ...
POSTE_ABI = "07601"

_PERSON_CF = re.compile(
    r"[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]"
)
_ORG_CF = re.compile(r"[0-9]{11}")
_IT_IBAN = re.compile(r"IT[0-9]{2}[A-Z][0-9]{10}[A-Z0-9]{12}")
_EMAIL = re.compile(r"[a-zA-Z0-9_.+\-]+@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*")  # stEMail
_IUPD = re.compile(r"[A-Za-z0-9_\-]{1,256}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TAXONOMY = re.compile(TAXONOMY_PATTERN)
#: Characters outside XML 1.0's ``Char`` production (#x9 | #xA | #xD | [#x20-#xD7FF] |
#: [#xE000-#xFFFD] | [#x10000-#x10FFFF]).
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
#: Validation context for positions read back from the database (see ``from_stored``).
STORED = {"stored": True}


class DebtorType(StrEnum):
    """GPD ``type``: the debtor is a natural person (F) or a legal entity (G)."""

    PERSON = "F"
    LEGAL_ENTITY = "G"


# -- helpers ----------------------------------------------------------------------------


def is_valid_iban(iban: str) -> bool:
    """True when ``iban`` is a compact Italian IBAN (27 characters) passing mod 97."""
    if not _IT_IBAN.fullmatch(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def format_gpd_datetime(value: datetime) -> str:
    """GPD's date-time: UTC with milliseconds and ``Z``, e.g. ``2026-03-31T21:59:59.000Z``.

    GPD parses ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` into a UTC ``LocalDateTime``.
    """
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def describe_validation_error(error: ValidationError) -> str:
    """``field.path: reason`` for each problem, joined by ``; `` (never the input values)."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]) or "debt position"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


def xml_char_problem(value: str) -> str | None:
    """Why ``value`` cannot go into an XML 1.0 document (``None`` when it can): names
    the first offending character by code point and position, never the text."""
    found = _NOT_XML_CHAR.search(value)
    if found is None:
        return None
    return (
        f"contains a character XML 1.0 cannot carry (U+{ord(found.group()):04X} at "
        f"position {found.start() + 1}): control characters other than tab and line "
        "breaks, lone surrogates, U+FFFE and U+FFFF are refused"
    )


def _is_stored(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("stored"))


def _compact_iban(value: Any) -> Any:
    return value.replace(" ", "").upper() if isinstance(value, str) else value


def _iban(value: str) -> str:
    if not is_valid_iban(value):
        if not _IT_IBAN.fullmatch(value):
            raise ValueError(
                "must be an Italian IBAN: IT, 2 check digits, CIN letter, ABI (5 digits), "
                "CAB (5 digits), account (12 letters or digits)"
            )
        raise ValueError("IBAN check digits are wrong (ISO 13616 mod 97)")
    return value


def _postal_iban(value: str) -> str:
    _iban(value)
    if value[5:10] != POSTE_ABI:
        raise ValueError(f"a postal IBAN must have Poste Italiane's ABI {POSTE_ABI}")
    return value


def _taxonomy(value: str) -> str:
    if len(value) > 140 or not _TAXONOMY.fullmatch(value):
        raise ValueError(
            "must be a pagoPA taxonomy code such as 9/0101002IM/ or 0101002IM "
            "(2+2+3 digits, then IM, TS, SP, SA or AP; at most 140 characters)"
        )
    return value


def _iuv(value: str) -> str:
    try:
        return validate_iuv(value, 3)
    except InvalidIUV as exc:
        raise ValueError(f"must be an aux-digit-3 IUV: {exc.reason}") from None


def _hash_document(value: str) -> str:
    if not 4 <= len(value) <= 72 or not _BASE64.fullmatch(value) or len(value) % 4:
        raise ValueError("must be base64, 4 to 72 characters (the document's digest)")
    try:
        base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("must be valid base64") from None
    return value


def _email(value: str) -> str:
    if len(value) > 256 or not _EMAIL.fullmatch(value):
        raise ValueError("must be an e-mail address (pagoPA stEMail, at most 256 characters)")
    return value


def _iupd(value: str) -> str:
    if not _IUPD.fullmatch(value):
        raise ValueError("must be 1 to 256 letters, digits, '-' or '_'")
    return value


def _metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 10:
        raise ValueError(f"at most 10 entries, got {len(value)}")
    for key, item in value.items():
        if not 1 <= len(key) <= 140 or len(item) > 140:
            raise ValueError("keys must be 1 to 140 characters and values at most 140")
    return value


def _text(maximum: int, minimum: int = 1) -> Any:
    return Field(min_length=minimum, max_length=maximum)


Cents = Annotated[StrictInt, Field(ge=1, le=AMOUNT_MAX)]
Iban = Annotated[str, BeforeValidator(_compact_iban), AfterValidator(_iban)]
PostalIban = Annotated[str, BeforeValidator(_compact_iban), AfterValidator(_postal_iban)]
Metadata = Annotated[dict[str, str], AfterValidator(_metadata)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    @field_validator("*", mode="after")
    @classmethod
    def _xml_chars(cls, value: Any, info: ValidationInfo) -> Any:
        """Every text (and metadata key and value) must fit in XML 1.0."""
        if _is_stored(info):
            return value
        texts = (
            [*value.keys(), *value.values()]
            if isinstance(value, dict)
            else [value]
            if isinstance(value, str)
            else []
        )
        for text in texts:
            reason = xml_char_problem(text) if isinstance(text, str) else None
            if reason is not None:
                raise ValueError(reason)
        return value


# -- models -----------------------------------------------------------------------------


class Stamp(_Model):
    """A digital revenue stamp (*marca da bollo digitale*) instead of a credit transfer."""

    #: base64 of the digest of the stamped document (``stBase64Binary72``).
    hash_document: Annotated[str, AfterValidator(_hash_document)]
    #: ``stTipoBolloDigitale``: "01" is the only type the Node defines.
    stamp_type: Literal["01"] = "01"
    #: province of residence of the payer, e.g. "RM".
    provincial_residence: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]

    def to_gpd(self) -> dict[str, Any]:
        return {
            "hashDocument": self.hash_document,
            "stampType": self.stamp_type,
            "provincialResidence": self.provincial_residence,
        }


class Transfer(_Model):
    """One beneficiary's share of a payment option (GPD ``TransferModel``)."""

    id_transfer: Annotated[StrictInt, Field(ge=1, le=MAX_TRANSFERS)]
    amount: Cents
    #: The beneficiary (the comune itself, or e.g. the province for TEFA): 11 digits.
    organization_fiscal_code: Annotated[str, Field(pattern=r"^[0-9]{11}$")]
    remittance_information: Annotated[str, _text(140)]
    #: Taxonomy code, see :data:`TAXONOMY_PATTERN`.
    category: Annotated[str, AfterValidator(_taxonomy)]
    iban: Iban | None = None
    postal_iban: PostalIban | None = None
    stamp: Stamp | None = None
    #: The beneficiary's name, for multi-beneficiary options.
    company_name: Annotated[str, _text(140)] | None = None
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_destination(self) -> Transfer:
        if self.stamp is not None and (self.iban is not None or self.postal_iban is not None):
            raise ValueError("a transfer has either a stamp or an iban (and postal_iban), not both")
        if self.stamp is None and self.iban is None:
            if self.postal_iban is not None:
                raise ValueError("postal_iban goes with an iban: GPD requires the iban")
            raise ValueError("a transfer needs an iban or a stamp")
        return self

    def to_gpd(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "idTransfer": str(self.id_transfer),
            "amount": self.amount,
            "organizationFiscalCode": self.organization_fiscal_code,
            "remittanceInformation": self.remittance_information,
            "category": self.category,
        }
        if self.iban is not None:
            body["iban"] = self.iban
        if self.postal_iban is not None:
            body["postalIban"] = self.postal_iban
        if self.stamp is not None:
            body["stamp"] = self.stamp.to_gpd()
        if self.company_name is not None:
            body["companyName"] = self.company_name
        if self.metadata:
            body["transferMetadata"] = [{"key": k, "value": v} for k, v in self.metadata.items()]
        return body


class PaymentOption(_Model):
    """One way to pay the position: in full, or one instalment (GPD ``PaymentOptionModel``)."""

    iuv: Annotated[str, AfterValidator(_iuv)]
    amount: Cents
    description: Annotated[str, _text(140)]
    due_date: AwareDatetime
    retention_date: AwareDatetime | None = None
    is_partial_payment: StrictBool = False
    #: 1..n for instalments, None for the payment in full. Not sent to GPD, which has no
    #: such field: it orders the plan inside the hub (notices, reminders).
    installment_number: Annotated[StrictInt, Field(ge=1)] | None = Field(
        default=None, validate_default=True
    )
    #: 1 to 5 transfers (checked after the items, so that errors point at the bad item).
    transfers: tuple[Transfer, ...]
    metadata: Metadata = Field(default_factory=dict)

    @property
    def nav(self) -> str:
        """The 18-digit notice number (``"3"`` + IUV)."""
        return notice_number(self.iuv)

    @field_validator("retention_date")
    @classmethod
    def _retention_after_due(cls, value: datetime | None, info: ValidationInfo) -> Any:
        due = info.data.get("due_date")
        if value is not None and due is not None and value < due:
            raise ValueError("must not be before due_date")
        return value

    @field_validator("installment_number")
    @classmethod
    def _installment_number(cls, value: int | None, info: ValidationInfo) -> Any:
        partial = info.data.get("is_partial_payment")
        if partial and value is None:
            raise ValueError("required for an instalment (is_partial_payment=True)")
        if partial is False and value is not None:
            raise ValueError("only instalments (is_partial_payment=True) have one")
        return value

    @field_validator("transfers")
    @classmethod
    def _transfers(cls, value: tuple[Transfer, ...], info: ValidationInfo) -> Any:
        if not 1 <= len(value) <= MAX_TRANSFERS:
            raise ValueError(f"an option has 1 to {MAX_TRANSFERS} transfers, got {len(value)}")
        ids = [t.id_transfer for t in value]
        if sorted(ids) != list(range(1, len(ids) + 1)):
            raise ValueError(
                f"id_transfer values must be 1..{len(ids)}, each once; got "
                + ", ".join(str(i) for i in ids)
            )
        amount = info.data.get("amount")
        total = sum(t.amount for t in value)
        if amount is not None and total != amount:
            raise ValueError(
                f"amounts sum to {total} cents but the option's amount is {amount} cents"
            )
        return value

    def to_gpd(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "iuv": self.iuv,
            "amount": self.amount,
            "description": self.description,
            "isPartialPayment": self.is_partial_payment,
            "dueDate": format_gpd_datetime(self.due_date),
        }
        if self.retention_date is not None:
            body["retentionDate"] = format_gpd_datetime(self.retention_date)
        body["transfer"] = [t.to_gpd() for t in self.transfers]
        if self.metadata:
            body["paymentOptionMetadata"] = [
                {"key": k, "value": v} for k, v in self.metadata.items()
            ]
        return body


class DebtPosition(_Model):
    """A debt position (*posizione debitoria*, GPD ``PaymentPositionModel``).

    ``company_name`` is the creditor's name as the payer sees it ("Comune di Roma"): GPD
    requires it. The debtor is ``type`` / ``fiscal_code`` / ``full_name`` plus the optional
    address and e-mail.
    """

    iupd: Annotated[str, AfterValidator(_iupd)]
    type: DebtorType
    #: Debtor: 16-character fiscal code, 11 digits for a legal entity, or "ANONIMO".
    fiscal_code: str = Field(repr=False)
    full_name: Annotated[str, _text(70)] = Field(repr=False)
    street_name: Annotated[str, _text(70)] | None = Field(default=None, repr=False)
    civic_number: Annotated[str, _text(16)] | None = Field(default=None, repr=False)
    postal_code: Annotated[str, _text(16)] | None = Field(default=None, repr=False)
    city: Annotated[str, _text(35)] | None = Field(default=None, repr=False)
    province: Annotated[str, _text(35)] | None = Field(default=None, repr=False)
    region: Annotated[str, _text(35)] | None = Field(default=None, repr=False)
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = Field(default=None, repr=False)
    email: Annotated[str, AfterValidator(_email)] | None = Field(default=None, repr=False)
    company_name: Annotated[str, _text(140)]
    office_name: Annotated[str, _text(140)] | None = None
    switch_to_expired: StrictBool = False
    validity_date: AwareDatetime | None = None
    pay_stand_in: StrictBool = True
    payment_options: tuple[PaymentOption, ...]

    @classmethod
    def from_stored(cls, content: str | bytes) -> DebtPosition:
        """A position the hub stored earlier (its JSON), without the checks added after it
        may have been stored (fiscal code check character, XML characters)."""
        return cls.model_validate_json(content, context=STORED)

    @field_validator("fiscal_code")
    @classmethod
    def _fiscal_code(cls, value: str, info: ValidationInfo) -> Any:
        debtor = info.data.get("type")
        stored = _is_stored(info)
        if debtor is DebtorType.PERSON:
            if value != "ANONIMO" and not _PERSON_CF.fullmatch(value):
                raise ValueError("a person's fiscal code is 16 characters (uppercase), or ANONIMO")
            if value != "ANONIMO" and not stored and not cf.is_person_code(value):
                raise ValueError(cf.problem(value, company=False))
        elif debtor is DebtorType.LEGAL_ENTITY:
            if not (_ORG_CF.fullmatch(value) or _PERSON_CF.fullmatch(value)):
                raise ValueError(
                    "a legal entity's fiscal code is 11 digits (16 characters for a sole trader)"
                )
            if not stored and not cf.is_fiscal_code(value):
                raise ValueError(cf.problem(value))
        return value

    @field_validator("payment_options")
    @classmethod
    def _payment_options(cls, value: tuple[PaymentOption, ...], info: ValidationInfo) -> Any:
        if not value:
            raise ValueError("a debt position needs at least one payment option")
        seen: set[str] = set()
        for option in value:
            if option.iuv in seen:
                raise ValueError(f"IUV {option.iuv} is used by more than one option")
            seen.add(option.iuv)
        full = sum(1 for o in value if not o.is_partial_payment)
        if full > 1:
            raise ValueError(
                f"at most one option for the payment in full (is_partial_payment=False), got {full}"
            )
        numbers = sorted(o.installment_number or 0 for o in value if o.is_partial_payment)
        if numbers and numbers != list(range(1, len(numbers) + 1)):
            raise ValueError(f"instalments must be numbered 1..{len(numbers)}, each once")
        validity = info.data.get("validity_date")
        if validity is not None:
            for index, option in enumerate(value):
                if option.due_date <= validity:
                    raise ValueError(f"option {index}: due_date must be after validity_date")
        return value

    @property
    def full_payment_option(self) -> PaymentOption | None:
        """The option for the payment in full, if any."""
        return next((o for o in self.payment_options if not o.is_partial_payment), None)

    @property
    def installments(self) -> tuple[PaymentOption, ...]:
        """The instalments, in the order of ``installment_number``."""
        partial = [o for o in self.payment_options if o.is_partial_payment]
        return tuple(sorted(partial, key=lambda o: o.installment_number or 0))

    def date_problems(self, now: datetime) -> list[str]:
        """What GPD would refuse at creation time ``now`` (empty when nothing).

        GPD: ``validity_date`` must not be in the past; every ``due_date`` must be after
        ``validity_date`` or, without one, not in the past (a position published after
        its first due date is refused).
        """
        problems = []
        if self.validity_date is not None and self.validity_date < now:
            problems.append("validity_date: is in the past")
        for index, option in enumerate(self.payment_options):
            if self.validity_date is None and option.due_date < now:
                problems.append(f"payment_options.{index}.due_date: is in the past")
        return problems

    def to_gpd(self) -> dict[str, Any]:
        """The GPD v1 request body (``PaymentPositionModel``) for create and update."""
        body: dict[str, Any] = {
            "iupd": self.iupd,
            "type": self.type.value,
            "fiscalCode": self.fiscal_code,
            "fullName": self.full_name,
        }
        optional = {
            "streetName": self.street_name,
            "civicNumber": self.civic_number,
            "postalCode": self.postal_code,
            "city": self.city,
            "province": self.province,
            "region": self.region,
            "country": self.country,
            "email": self.email,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        body["companyName"] = self.company_name
        if self.office_name is not None:
            body["officeName"] = self.office_name
        body["switchToExpired"] = self.switch_to_expired
        if self.validity_date is not None:
            body["validityDate"] = format_gpd_datetime(self.validity_date)
        body["payStandIn"] = self.pay_stand_in
        body["paymentOption"] = [option.to_gpd() for option in self.payment_options]
        return body
