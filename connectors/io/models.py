"""Pydantic models of the App IO API for public bodies (``io-functions-services`` v4.1.1).

Request models (``NewMessage`` and what it holds) are strict: they refuse what App IO
would refuse with a 400, and a few things it would accept but a citizen could not use (a
pagoPA notice number with wrong check digits, a naive ``due_date``). Response models are
lenient: unknown fields are ignored and values of App IO's *extensible* enums that this
module does not know yet are kept as plain strings.

Lengths are counted the way App IO (io-ts, JavaScript) counts them: in UTF-16 code units,
so an emoji counts twice.

Validation errors name the field and the reason (``content.subject: must be 10 to 120
characters long, got 9``) and never echo the value (``hide_input_in_errors``): fiscal
codes and message texts are personal data. For the same reason ``repr()`` leaves out
fiscal codes and message bodies.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    ValidationError,
)

from sportello.connectors import fiscal_code as cf

__all__ = [
    "AMOUNT_MAX",
    "AMOUNT_MIN",
    "FISCAL_CODE_PATTERN",
    "IO_TEST_FISCAL_CODE",
    "MARKDOWN_MAX",
    "MARKDOWN_MIN",
    "NOTICE_NUMBER_PATTERN",
    "ORGANIZATION_FISCAL_CODE_PATTERN",
    "SUBJECT_MAX",
    "SUBJECT_MIN",
    "TTL_MAX",
    "TTL_MIN",
    "CreatedMessage",
    "EncodedMessage",
    "ExternalCreatedMessageWithContent",
    "ExternalMessageResponseWithContent",
    "FeatureLevelType",
    "FiscalCodePayload",
    "HasPrecondition",
    "LimitedProfile",
    "MessageContent",
    "MessageStatus",
    "NewMessage",
    "NotificationChannelStatus",
    "NotificationStatus",
    "Payee",
    "PaymentData",
    "PaymentStatus",
    "ReadStatus",
    "ReceivedContent",
    "ReceivedPaymentData",
    "ThirdPartyData",
    "describe_validation_error",
    "format_timestamp",
    "notice_number_check_digits",
    "utf16_length",
]

#: ``FiscalCode`` (person): the omocodia-safe pattern of ``@pagopa/ts-commons``.
FISCAL_CODE_PATTERN = (
    r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
)
#: App IO's historical test recipient: matches the pattern, has no valid check letter.
IO_TEST_FISCAL_CODE = "AAAAAA00A00A000A"
#: ``OrganizationFiscalCode``: 11 digits.
ORGANIZATION_FISCAL_CODE_PATTERN = r"^[0-9]{11}$"
#: ``PaymentDataBase.notice_number``: aux digit 0-3 followed by 17 digits.
NOTICE_NUMBER_PATTERN = r"^[0123][0-9]{17}$"
_ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"

SUBJECT_MIN, SUBJECT_MAX = 10, 120
MARKDOWN_MIN, MARKDOWN_MAX = 80, 10_000
TTL_MIN, TTL_MAX = 3_600, 604_800
AMOUNT_MIN, AMOUNT_MAX = 1, 9_999_999_999

_FISCAL_CODE_RE = re.compile(FISCAL_CODE_PATTERN)
_ORG_FISCAL_CODE_RE = re.compile(ORGANIZATION_FISCAL_CODE_PATTERN)
_NOTICE_NUMBER_RE = re.compile(NOTICE_NUMBER_PATTERN)
_ULID_RE = re.compile(_ULID_PATTERN)


def utf16_length(text: str) -> int:
    """Length of ``text`` as JavaScript (and so App IO) counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def notice_number_check_digits(first16: str) -> str:
    """pagoPA check digits of an 18-digit notice number, from its first 16 digits.

    SACI §2: for aux digit 0 (``0`` + application code + IUV base), 2 (``2`` + IUV base)
    and 3 (``3`` + segregation code + IUV base) the last two digits are the concatenation
    of the first 16 taken as an integer, modulo 93, zero-padded. Aux digit 1 has none.
    """
    return f"{int(first16) % 93:02d}"


def format_timestamp(value: datetime) -> str:
    """App IO's ``Timestamp``: ISO 8601 in UTC with milliseconds, ``2018-10-13T00:00:00.000Z``."""
    utc = value.astimezone(UTC)
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def describe_validation_error(error: ValidationError) -> str:
    """``field.path: reason`` for each problem, joined by ``; `` (never the input values)."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in item["loc"]) or "value"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}")
    return "; ".join(parts)


# -- field validators ---------------------------------------------------------------


def _text_length(minimum: int, maximum: int) -> AfterValidator:
    def check(value: str) -> str:
        length = utf16_length(value)
        if not minimum <= length <= maximum:
            raise ValueError(
                f"must be {minimum} to {maximum} characters long (UTF-16 units), got {length}"
            )
        return value

    return AfterValidator(check)


def _fiscal_code(value: str) -> str:
    if not _FISCAL_CODE_RE.match(value):
        raise ValueError(
            "is not a valid fiscal code: 16 upper-case characters, pattern "
            "AAAAAA00A00A000A with omocodia letters allowed in the digit positions"
        )
    # App IO itself only checks the pattern; a wrong check letter is a typo, never a
    # citizen, so it is refused here rather than sent. App IO's own test recipient
    # (AAAAAA00A00A000A, day 00) is the one exception.
    reason = None if value == IO_TEST_FISCAL_CODE else cf.problem(value, company=False)
    if reason is not None:
        raise ValueError(f"is not a valid fiscal code: {reason}")
    return value


def _organization_fiscal_code(value: str) -> str:
    if not _ORG_FISCAL_CODE_RE.match(value):
        raise ValueError("is not a valid organization fiscal code: exactly 11 digits")
    return value


def _notice_number(value: str) -> str:
    if not _NOTICE_NUMBER_RE.match(value):
        raise ValueError(
            "is not a valid pagoPA notice number: 18 digits, the first (aux digit) 0 to 3"
        )
    if value[0] != "1":
        expected = notice_number_check_digits(value[:16])
        if value[16:] != expected:
            raise ValueError(
                f"has wrong pagoPA check digits: the last two digits must be {expected} "
                "(first 16 digits modulo 93)"
            )
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time zone (App IO wants UTC)")
    return value.astimezone(UTC)


def _ulid(value: str) -> str:
    if not _ULID_RE.match(value):
        raise ValueError("is not a ULID (26 characters, Crockford base 32)")
    return value


FiscalCode = Annotated[str, AfterValidator(_fiscal_code)]
OrganizationFiscalCode = Annotated[str, AfterValidator(_organization_fiscal_code)]
Subject = Annotated[str, _text_length(SUBJECT_MIN, SUBJECT_MAX)]
Markdown = Annotated[str, _text_length(MARKDOWN_MIN, MARKDOWN_MAX)]
Timestamp = Annotated[
    datetime, AfterValidator(_aware), PlainSerializer(format_timestamp, return_type=str)
]
NonEmpty = Annotated[str, Field(min_length=1)]


class FeatureLevelType(StrEnum):
    STANDARD = "STANDARD"
    ADVANCED = "ADVANCED"


class HasPrecondition(StrEnum):
    ALWAYS = "ALWAYS"
    ONCE = "ONCE"
    NEVER = "NEVER"


class MessageStatus(StrEnum):
    """``MessageStatusValue``. PROCESSED, REJECTED and FAILED are final."""

    ACCEPTED = "ACCEPTED"
    THROTTLED = "THROTTLED"
    FAILED = "FAILED"
    PROCESSED = "PROCESSED"
    REJECTED = "REJECTED"


FINAL_STATUSES = frozenset({MessageStatus.PROCESSED, MessageStatus.REJECTED, MessageStatus.FAILED})


class NotificationChannelStatus(StrEnum):
    SENT = "SENT"
    THROTTLED = "THROTTLED"
    EXPIRED = "EXPIRED"
    FAILED = "FAILED"


class ReadStatus(StrEnum):
    UNAVAILABLE = "UNAVAILABLE"
    UNREAD = "UNREAD"
    READ = "READ"


class PaymentStatus(StrEnum):
    PAID = "PAID"
    NOT_PAID = "NOT_PAID"


# -- requests ------------------------------------------------------------------------


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    def to_payload(self) -> dict[str, Any]:
        """The JSON body App IO expects (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class Payee(_Request):
    """The creditor body, when it is not the sending service's organization."""

    fiscal_code: OrganizationFiscalCode


class PaymentData(_Request):
    """A pagoPA payment notice attached to the message. ``amount`` is in euro cents."""

    amount: Annotated[StrictInt, Field(ge=AMOUNT_MIN, le=AMOUNT_MAX)]
    notice_number: Annotated[str, AfterValidator(_notice_number)]
    invalid_after_due_date: StrictBool = False
    payee: Payee | None = None


class ThirdPartyData(_Request):
    """Remote-content ("third party") message data; needs a dedicated App IO permission."""

    id: NonEmpty
    original_sender: NonEmpty | None = None
    original_receipt_date: Timestamp | None = None
    has_attachments: StrictBool | None = None
    has_remote_content: StrictBool | None = None
    has_precondition: HasPrecondition | None = None
    summary: NonEmpty | None = None
    configuration_id: Annotated[str, AfterValidator(_ulid)] | None = None


class MessageContent(_Request):
    """``MessageContent``: subject 10-120 and markdown 80-10000 characters."""

    subject: Subject
    markdown: Markdown = Field(repr=False)
    due_date: Timestamp | None = None
    payment_data: PaymentData | None = None
    require_secure_channels: StrictBool | None = None
    third_party_data: ThirdPartyData | None = None


class NewMessage(_Request):
    """Body of ``POST /messages`` (fiscal code in the body, as App IO recommends)."""

    fiscal_code: FiscalCode = Field(repr=False)
    content: MessageContent
    time_to_live: Annotated[StrictInt, Field(ge=TTL_MIN, le=TTL_MAX)] | None = None
    feature_level_type: FeatureLevelType = FeatureLevelType.STANDARD


class FiscalCodePayload(_Request):
    """Body of ``POST /profiles``."""

    fiscal_code: FiscalCode = Field(repr=False)


def fiscal_code_body(fiscal_code: str) -> bytes | None:
    """The ``{"fiscal_code": ...}`` body, built without pydantic; ``None`` when the code is
    not valid (``FiscalCodePayload`` then says why)."""
    if fiscal_code != IO_TEST_FISCAL_CODE and not cf.is_person_code(fiscal_code):
        return None
    return b'{"fiscal_code":"' + fiscal_code.encode("ascii") + b'"}'


@dataclass(frozen=True, slots=True, repr=False)
class EncodedMessage:
    """A ``NewMessage`` that was validated earlier, as the exact JSON body of ``POST
    /messages``: sending it does not validate or serialise the message again.

    Build it with ``encode`` (from a ``NewMessage``) or ``from_stored`` (from content that
    ``MessageContent.to_payload`` wrote, e.g. a queued campaign message).
    """

    fiscal_code: str
    body: bytes

    def __repr__(self) -> str:
        return f"EncodedMessage({len(self.body)} bytes)"  # no fiscal code, no text

    @classmethod
    def encode(cls, message: NewMessage) -> EncodedMessage:
        body = json.dumps(message.to_payload(), ensure_ascii=False, separators=(",", ":"))
        return cls(message.fiscal_code, body.encode())

    @classmethod
    def from_stored(
        cls, fiscal_code: str, content_json: str, feature_level_type: str | None = None
    ) -> EncodedMessage:
        """The body for ``content_json``, the JSON text of ``MessageContent.to_payload()``.

        The content is not validated again (it was, before it was stored), but the
        envelope is: a valid fiscal code, a known feature level and a JSON object for the
        content, so a damaged row cannot change the body's recipient. ``ValueError`` else.
        """
        if not _FISCAL_CODE_RE.fullmatch(fiscal_code):  # fullmatch: no trailing newline
            raise ValueError("fiscal_code: not a valid fiscal code")
        level = FeatureLevelType(feature_level_type or FeatureLevelType.STANDARD).value
        text = content_json.strip()
        if not (text.startswith("{") and isinstance(json.loads(text), dict)):
            raise ValueError("content: not a JSON object")
        body = f'{{"fiscal_code":"{fiscal_code}","content":{text},"feature_level_type":"{level}"}}'
        return cls(fiscal_code, body.encode())


# -- responses -----------------------------------------------------------------------


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


_E = TypeVar("_E", bound=StrEnum)
#: A value of one of App IO's ``x-extensible-enum``: the member when known, else the string.
Extensible = Annotated[_E | str, Field(union_mode="left_to_right")]


class LimitedProfile(_Response):
    """Answer of ``POST /profiles``: may this service write to the citizen?"""

    sender_allowed: StrictBool
    preferred_languages: list[str] = Field(default_factory=list)


class CreatedMessage(_Response):
    """Body of the 201 answer to ``POST /messages``."""

    id: str | None = None


class ReceivedPaymentData(_Response):
    amount: int
    notice_number: str
    invalid_after_due_date: bool = False
    payee: dict[str, Any] | None = None


class ReceivedContent(_Response):
    """Message content as App IO returns it (no length checks: App IO is the authority)."""

    subject: str | None = None
    markdown: str | None = Field(default=None, repr=False)
    due_date: datetime | None = None
    payment_data: ReceivedPaymentData | None = None
    require_secure_channels: bool | None = None
    third_party_data: dict[str, Any] | None = None


class ExternalCreatedMessageWithContent(_Response):
    id: str
    fiscal_code: str = Field(repr=False)
    created_at: datetime
    sender_service_id: str
    time_to_live: int | None = None
    content: ReceivedContent | None = None
    feature_level_type: Extensible[FeatureLevelType] = FeatureLevelType.STANDARD


class NotificationStatus(_Response):
    email: Extensible[NotificationChannelStatus] | None = None
    webhook: Extensible[NotificationChannelStatus] | None = None


class ExternalMessageResponseWithContent(_Response):
    """Answer of ``GET /messages/{fiscal_code}/{id}``.

    ``status`` is ``None`` only if App IO leaves it out; ``read_status`` and
    ``payment_status`` come only for ADVANCED messages of services allowed to read them.
    """

    message: ExternalCreatedMessageWithContent
    notification: NotificationStatus | None = None
    status: Extensible[MessageStatus] | None = None
    read_status: Extensible[ReadStatus] | None = None
    payment_status: Extensible[PaymentStatus] | None = None

    @property
    def is_final(self) -> bool:
        """PROCESSED, REJECTED or FAILED: polling further will not change the status."""
        return self.status in FINAL_STATUSES
