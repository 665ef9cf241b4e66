"""Payload checks of the App IO sandbox, reported the way App IO (io-ts) reports them.

Each problem is one line ``value [<json>] at [root.content.subject] is not a valid
[<type>]``, the lines joined by newlines in the ProblemJson ``detail``. Lengths are
counted in UTF-16 code units, like JavaScript. Unknown properties are ignored (io-ts
strips them), booleans and integers are strict (``"true"`` or ``1.5`` are refused).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "UNDEFINED",
    "check_fiscal_code_payload",
    "check_new_message",
    "is_email",
    "is_fiscal_code",
    "is_organization_fiscal_code",
    "is_timestamp",
    "is_ulid",
    "js_timestamp",
    "problem_line",
    "utf16_length",
]

FISCAL_CODE_RE = re.compile(
    r"^[A-Z]{6}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
)
ORG_FISCAL_CODE_RE = re.compile(r"^[0-9]{11}$")
NOTICE_NUMBER_RE = re.compile(r"^[0123][0-9]{17}$")
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)?$")
EMAIL_RE = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
FEATURE_LEVELS = ("STANDARD", "ADVANCED")
PRECONDITIONS = ("ALWAYS", "ONCE", "NEVER")


class _Undefined:
    def __repr__(self) -> str:
        return "undefined"


#: Stands for a missing value (JavaScript's ``undefined``) in problem lines.
UNDEFINED: Any = _Undefined()


def utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def is_fiscal_code(value: object) -> bool:
    return isinstance(value, str) and FISCAL_CODE_RE.match(value) is not None


def is_organization_fiscal_code(value: object) -> bool:
    return isinstance(value, str) and ORG_FISCAL_CODE_RE.match(value) is not None


def is_ulid(value: object) -> bool:
    return isinstance(value, str) and ULID_RE.match(value) is not None


def is_email(value: object) -> bool:
    return isinstance(value, str) and EMAIL_RE.match(value) is not None


def is_timestamp(value: object) -> bool:
    """``UTCISODateFromString``: an ISO 8601 date-time that is a real date."""
    if not isinstance(value, str) or not TIMESTAMP_RE.match(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def js_timestamp(value: datetime) -> str:
    """How App IO writes a ``Timestamp`` (``created_at``): JavaScript's
    ``Date.prototype.toISOString``, UTC with milliseconds, ``2018-10-13T00:00:00.000Z``
    (the twin's own; ``tests/sandbox/test_io_twin_timestamp.py`` compares it with the
    connector's ``format_timestamp``)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _show(value: Any) -> str:
    if value is UNDEFINED:
        return "undefined"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def problem_line(value: Any, path: str, type_name: str) -> str:
    return f"value [{_show(value)}] at [{path}] is not a valid [{type_name}]"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, value: Any, path: str, type_name: str) -> None:
        self.problems.append(problem_line(value, path, type_name))

    def obj(self, value: Any, path: str, type_name: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.fail(value, path, type_name)
        return None

    def text(
        self,
        doc: dict[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        minimum: int = 0,
        maximum: int | None = None,
        type_name: str | None = None,
    ) -> None:
        value = doc.get(key, UNDEFINED)
        if value is UNDEFINED and not required:
            return
        if isinstance(value, str):
            length = utf16_length(value)
            if length >= minimum and (maximum is None or length <= maximum):
                return
        if type_name is None:
            if maximum is not None:
                type_name = f"string of length >= {minimum} and <= {maximum}"
            else:
                type_name = "non empty string" if minimum else "string"
        self.fail(value, f"{path}.{key}", type_name)

    def boolean(self, doc: dict[str, Any], key: str, path: str, *, required: bool = False) -> None:
        value = doc.get(key, UNDEFINED)
        if (value is UNDEFINED and not required) or isinstance(value, bool):
            return
        self.fail(value, f"{path}.{key}", "boolean")

    def integer(
        self,
        doc: dict[str, Any],
        key: str,
        path: str,
        minimum: int,
        maximum: int,
        type_name: str,
        *,
        required: bool = False,
    ) -> None:
        value = doc.get(key, UNDEFINED)
        if value is UNDEFINED and not required:
            return
        if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
            return
        self.fail(value, f"{path}.{key}", type_name)

    def predicate(
        self,
        doc: dict[str, Any],
        key: str,
        path: str,
        check: Any,
        type_name: str,
        *,
        required: bool = False,
    ) -> None:
        value = doc.get(key, UNDEFINED)
        if value is UNDEFINED and not required:
            return
        if not check(value):
            self.fail(value, f"{path}.{key}", type_name)


def check_fiscal_code_payload(body: Any) -> list[str]:
    """Problems of a ``FiscalCodePayload`` body (``POST /profiles``)."""
    checker = _Checker()
    doc = checker.obj(body, "root", "FiscalCodePayload")
    if doc is not None:
        checker.predicate(doc, "fiscal_code", "root", is_fiscal_code, "FiscalCode", required=True)
    return checker.problems


def _check_payment_data(checker: _Checker, value: Any, path: str) -> None:
    doc = checker.obj(value, path, "PaymentData")
    if doc is None:
        return
    checker.integer(
        doc, "amount", path, 1, 9_999_999_999, "integer >= 1 and <= 9999999999", required=True
    )
    checker.predicate(
        doc,
        "notice_number",
        path,
        lambda v: isinstance(v, str) and NOTICE_NUMBER_RE.match(v) is not None,
        "string matching ^[0123][0-9]{17}$",
        required=True,
    )
    checker.boolean(doc, "invalid_after_due_date", path)
    if "payee" in doc:
        payee = checker.obj(doc["payee"], f"{path}.payee", "Payee")
        if payee is not None:
            checker.predicate(
                payee,
                "fiscal_code",
                f"{path}.payee",
                is_organization_fiscal_code,
                "OrganizationFiscalCode",
                required=True,
            )


def _check_third_party(checker: _Checker, value: Any, path: str) -> None:
    doc = checker.obj(value, path, "ThirdPartyData")
    if doc is None:
        return
    checker.text(doc, "id", path, required=True, minimum=1)
    checker.text(doc, "original_sender", path, minimum=1)
    checker.predicate(doc, "original_receipt_date", path, is_timestamp, "Timestamp")
    checker.boolean(doc, "has_attachments", path)
    checker.boolean(doc, "has_remote_content", path)
    checker.predicate(
        doc, "has_precondition", path, lambda v: v in PRECONDITIONS, "HasPrecondition"
    )
    checker.text(doc, "summary", path, minimum=1)
    checker.predicate(doc, "configuration_id", path, is_ulid, "Ulid")


def _check_restricted(checker: _Checker, content: dict[str, Any], path: str) -> None:
    if "prescription_data" in content:
        sub = f"{path}.prescription_data"
        doc = checker.obj(content["prescription_data"], sub, "PrescriptionData")
        if doc is not None:
            checker.text(doc, "nre", sub, required=True, minimum=15, maximum=15)
            checker.text(doc, "iup", sub, minimum=1, maximum=16)
            checker.predicate(doc, "prescriber_fiscal_code", sub, is_fiscal_code, "FiscalCode")
    if "eu_covid_cert" in content:
        sub = f"{path}.eu_covid_cert"
        doc = checker.obj(content["eu_covid_cert"], sub, "EUCovidCert")
        if doc is not None:
            checker.text(doc, "auth_code", sub, required=True)
    if "legal_data" in content:
        sub = f"{path}.legal_data"
        doc = checker.obj(content["legal_data"], sub, "LegalData")
        if doc is not None:
            checker.text(doc, "sender_mail_from", sub, required=True, minimum=1)
            checker.boolean(doc, "has_attachment", sub, required=True)
            checker.text(doc, "message_unique_id", sub, required=True, minimum=1)
            checker.text(doc, "original_message_url", sub, minimum=1)
            checker.text(doc, "pec_server_service_id", sub, minimum=1)


def check_new_message(body: Any) -> list[str]:
    """Problems of a ``NewMessage`` body (``POST /messages``), io-ts style."""
    checker = _Checker()
    doc = checker.obj(body, "root", "NewMessage")
    if doc is None:
        return checker.problems
    checker.predicate(doc, "fiscal_code", "root", is_fiscal_code, "FiscalCode")
    checker.integer(doc, "time_to_live", "root", 3_600, 604_800, "TimeToLiveSeconds")
    checker.predicate(
        doc, "feature_level_type", "root", lambda v: v in FEATURE_LEVELS, "FeatureLevelType"
    )
    if "default_addresses" in doc:
        addresses = checker.obj(doc["default_addresses"], "root.default_addresses", "object")
        if addresses is not None:
            checker.predicate(addresses, "email", "root.default_addresses", is_email, "EmailString")
    content = checker.obj(doc.get("content", UNDEFINED), "root.content", "MessageContent")
    if content is None:
        return checker.problems
    path = "root.content"
    checker.text(content, "subject", path, required=True, minimum=10, maximum=120)
    checker.text(content, "markdown", path, required=True, minimum=80, maximum=10_000)
    checker.boolean(content, "require_secure_channels", path)
    checker.predicate(content, "due_date", path, is_timestamp, "Timestamp")
    if "payment_data" in content:
        _check_payment_data(checker, content["payment_data"], f"{path}.payment_data")
    if "third_party_data" in content:
        _check_third_party(checker, content["third_party_data"], f"{path}.third_party_data")
    _check_restricted(checker, content, path)
    return checker.problems
