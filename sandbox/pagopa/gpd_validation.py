"""Checks of the GPD sandbox on a ``PaymentPositionModel`` body, reported the way GPD does.

Two stages, as in GPD (``pagopa-debt-position``):

1. :func:`check_position`: the request schema of ``gpd.json`` (required fields, types,
   enums, lengths, patterns, ``minimum``, ``maxItems``) plus GPD's bean-validation
   messages ("iupd is required", "The country must be reported with two capital letters
   (example: IT)"...). Each problem is ``<field path>: <reason>``, the path written as
   Spring writes it (``paymentOption[0].transfer[1].amount``); GPD answers 400 with title
   ``BAD REQUEST`` and the problems joined by ``", "``.
2. :func:`semantic_problem`: GPD's ``DebtPositionValidation`` (dates, number and ids of
   transfers, amounts, IBAN or stamp): the first problem, with GPD's wording.

Unknown properties are ignored and read-only ones (``status``, ``paymentDate``, ``nav``,
``notificationFee``) are dropped, as Jackson does.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "TRANSFER_IDS",
    "check_position",
    "format_datetime",
    "parse_datetime",
    "semantic_problem",
]

TRANSFER_IDS = ("1", "2", "3", "4", "5")
_COUNTRY = re.compile(r"[A-Z]{2}")
_IBAN = re.compile(r"[A-Za-z0-9]{1,35}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_LOCAL_DT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:\d{2})?")
_DATE_FORMAT = "%Y-%m-%d %I:%M:%S"  # GPD's messages use "yyyy-MM-dd hh:mm:ss"


def parse_datetime(value: Any) -> datetime | None:
    """A GPD ``LocalDateTime`` (``Z`` or an offset accepted, naive read as UTC), as UTC."""
    if not isinstance(value, str) or not _LOCAL_DT.fullmatch(value):
        return None
    text = value[:-1] + "+00:00" if value[-1] in "Zz" else value
    if "." in text:  # Python reads at most 6 fractional digits
        head, _, tail = text.partition(".")
        digits = re.match(r"\d+", tail)
        assert digits is not None
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{tail[digits.end() :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_datetime(value: datetime) -> str:
    """UTC with milliseconds and ``Z`` (RFC 3339, what ``format: date-time`` requires)."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, reason: str) -> None:
        self.problems.append(f"{path}: {reason}")

    def required(self, doc: dict[str, Any], key: str, path: str, message: str) -> bool:
        value = doc.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            self.fail(path, message)
            return False
        return True

    def string(
        self,
        doc: dict[str, Any],
        key: str,
        path: str,
        *,
        max_length: int | None = None,
        min_length: int = 0,
    ) -> str | None:
        value = doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(path, "must be a string")
            return None
        if max_length is not None and not min_length <= len(value) <= max_length:
            self.fail(path, f"size must be between {min_length} and {max_length}")
        return value

    def boolean(self, doc: dict[str, Any], key: str, path: str) -> None:
        value = doc.get(key)
        if value is not None and not isinstance(value, bool):
            self.fail(path, "must be a boolean")

    def integer(self, doc: dict[str, Any], key: str, path: str, minimum: int | None) -> None:
        value = doc.get(key)
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(path, "must be an integer")
        elif minimum is not None and value < minimum:
            self.fail(path, f"must be greater than or equal to {minimum}")

    def date_time(self, doc: dict[str, Any], key: str, path: str) -> None:
        value = doc.get(key)
        if value is not None and parse_datetime(value) is None:
            self.fail(path, "must be a date-time (yyyy-MM-ddTHH:mm:ss[.SSS][Z])")

    def array(self, doc: dict[str, Any], key: str, path: str, max_items: int | None) -> list[Any]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(path, "must be an array")
            return []
        if max_items is not None and len(value) > max_items:
            self.fail(path, f"size must be between 0 and {max_items}")
        return value

    def metadata(self, doc: dict[str, Any], key: str, path: str) -> None:
        for index, item in enumerate(self.array(doc, key, path, 10)):
            where = f"{path}[{index}]"
            if not isinstance(item, dict):
                self.fail(where, "must be an object")
                continue
            for field in ("key", "value"):
                if item.get(field) is None:
                    self.fail(f"{where}.{field}", "must not be null")
                else:
                    self.string(item, field, f"{where}.{field}", max_length=140)


def _check_transfer(checker: _Checker, doc: dict[str, Any], path: str) -> None:
    checker.required(doc, "idTransfer", f"{path}.idTransfer", "id transfer is required")
    checker.string(doc, "idTransfer", f"{path}.idTransfer")
    if checker.required(doc, "amount", f"{path}.amount", "amount is required"):
        checker.integer(doc, "amount", f"{path}.amount", 1)
    checker.string(doc, "organizationFiscalCode", f"{path}.organizationFiscalCode")
    checker.required(
        doc,
        "remittanceInformation",
        f"{path}.remittanceInformation",
        "remittance information is required",
    )
    checker.string(doc, "remittanceInformation", f"{path}.remittanceInformation", max_length=140)
    checker.required(doc, "category", f"{path}.category", "category is required")
    checker.string(doc, "category", f"{path}.category")
    iban = checker.string(doc, "iban", f"{path}.iban", min_length=1, max_length=35)
    if iban and not _IBAN.fullmatch(iban):
        checker.fail(f"{path}.iban", 'must match "^[A-Za-z0-9]{1,35}$"')
    # the spec's pattern allows "" but its minLength (1) does not
    postal = checker.string(doc, "postalIban", f"{path}.postalIban", min_length=1, max_length=35)
    if postal and not _IBAN.fullmatch(postal):
        checker.fail(f"{path}.postalIban", 'must match "^$|^[A-Za-z0-9]{1,35}$"')
    checker.string(doc, "companyName", f"{path}.companyName", max_length=140)
    stamp = doc.get("stamp")
    if stamp is not None:
        where = f"{path}.stamp"
        if not isinstance(stamp, dict):
            checker.fail(where, "must be an object")
        else:
            for key in ("hashDocument", "stampType", "provincialResidence"):
                if stamp.get(key) is None:
                    checker.fail(f"{where}.{key}", "must not be null")
            checker.string(stamp, "hashDocument", f"{where}.hashDocument", max_length=72)
            checker.string(stamp, "stampType", f"{where}.stampType", min_length=2, max_length=2)
            province = checker.string(stamp, "provincialResidence", f"{where}.provincialResidence")
            if province is not None and not _COUNTRY.fullmatch(province):
                checker.fail(f"{where}.provincialResidence", 'must match "[A-Z]{2}"')
    checker.metadata(doc, "transferMetadata", f"{path}.transferMetadata")


def _check_option(checker: _Checker, doc: dict[str, Any], path: str) -> None:
    checker.required(doc, "iuv", f"{path}.iuv", "iuv is required")
    checker.string(doc, "iuv", f"{path}.iuv")
    checker.string(doc, "nav", f"{path}.nav")  # read-only in GPD, but typed by the spec
    if checker.required(doc, "amount", f"{path}.amount", "amount is required"):
        checker.integer(doc, "amount", f"{path}.amount", 1)
    if doc.get("description") is None:
        checker.fail(f"{path}.description", "must not be null")
    checker.string(doc, "description", f"{path}.description", max_length=140)
    checker.required(
        doc, "isPartialPayment", f"{path}.isPartialPayment", "is partial payment is required"
    )
    checker.boolean(doc, "isPartialPayment", f"{path}.isPartialPayment")
    checker.required(doc, "dueDate", f"{path}.dueDate", "due date is required")
    checker.date_time(doc, "dueDate", f"{path}.dueDate")
    checker.date_time(doc, "retentionDate", f"{path}.retentionDate")
    checker.integer(doc, "fee", f"{path}.fee", None)
    for index, transfer in enumerate(checker.array(doc, "transfer", f"{path}.transfer", None)):
        where = f"{path}.transfer[{index}]"
        if isinstance(transfer, dict):
            _check_transfer(checker, transfer, where)
        else:
            checker.fail(where, "must be an object")
    checker.metadata(doc, "paymentOptionMetadata", f"{path}.paymentOptionMetadata")


def check_position(body: Any) -> list[str]:
    """Problems of a ``PaymentPositionModel`` body (empty when GPD would accept its shape)."""
    checker = _Checker()
    if not isinstance(body, dict):
        return ["(root): must be a JSON object (PaymentPositionModel)"]
    checker.required(body, "iupd", "iupd", "iupd is required")
    checker.string(body, "iupd", "iupd")
    if checker.required(body, "type", "type", "type is required") and body["type"] not in (
        "F",
        "G",
    ):
        checker.fail("type", "must be one of F, G")
    checker.required(body, "fiscalCode", "fiscalCode", "fiscal code is required")
    checker.string(body, "fiscalCode", "fiscalCode")
    checker.required(body, "fullName", "fullName", "full name is required")
    checker.string(body, "fullName", "fullName")
    for key in ("streetName", "civicNumber", "postalCode", "city", "province", "region", "phone"):
        checker.string(body, key, key)
    country = checker.string(body, "country", "country")
    if country is not None and not _COUNTRY.fullmatch(country):
        checker.fail(
            "country", "The country must be reported with two capital letters (example: IT)"
        )
    email = checker.string(body, "email", "email")
    if email is not None and not _EMAIL.fullmatch(email):
        checker.fail("email", "Please provide a valid email address")
    if body.get("switchToExpired") is None:
        checker.fail("switchToExpired", "switch to expired value is required")
    checker.boolean(body, "switchToExpired", "switchToExpired")
    checker.boolean(body, "payStandIn", "payStandIn")
    checker.required(body, "companyName", "companyName", "company name is required")
    checker.string(body, "companyName", "companyName", max_length=140)
    checker.string(body, "officeName", "officeName", max_length=140)
    checker.date_time(body, "validityDate", "validityDate")
    for index, option in enumerate(checker.array(body, "paymentOption", "paymentOption", None)):
        where = f"paymentOption[{index}]"
        if isinstance(option, dict):
            _check_option(checker, option, where)
        else:
            checker.fail(where, "must be an object")
    return checker.problems


def _fmt(value: datetime | None) -> str | None:
    return value.strftime(_DATE_FORMAT) if value is not None else None


def semantic_problem(body: dict[str, Any], now: datetime, *, action: str) -> str | None:
    """GPD's ``DebtPositionValidation`` on a body that passed :func:`check_position`.

    ``action`` is ``"create"`` or ``"update"``: on create the validity date and the due
    dates must not be in the past; on update a past due date is accepted unless
    ``switchToExpired`` is set. Returns the first problem in GPD's words, or None.
    """
    validity = parse_datetime(body.get("validityDate"))
    ste = body.get("switchToExpired") is True
    for option in body.get("paymentOption") or []:
        due = parse_datetime(option.get("dueDate"))
        assert due is not None
        if action == "create" and validity is not None and validity <= now:
            return (
                "Dates congruence error: validity_date must be >= current_date "
                f"[validity_date={_fmt(validity)}; current_date={_fmt(now)}] "
            )
        invalid = due < (validity or now)
        if action == "create" or ste:
            invalid = invalid or due < now
        if invalid:
            return (
                "Dates congruence error: due_date must be >= validity_date (if provided) or "
                f"due_date must be >= current_date [due_date={_fmt(due)}; "
                f"validity_date={_fmt(validity)}; current_date={_fmt(now)}]"
            )
        retention = parse_datetime(option.get("retentionDate"))
        if retention is not None and retention < due:
            return (
                "Dates congruence error: retention_date must be >= due_date "
                f"[retention_date={_fmt(retention)}; due_date={_fmt(due)}] "
            )
        transfers = option.get("transfer") or []
        if len(transfers) > len(TRANSFER_IDS):
            return (
                "Number of transfers congruence error: Each payment option must have a maximum "
                f"of {len(TRANSFER_IDS)} transactions [transactions found={len(transfers)}]"
            )
        for transfer in transfers:
            if transfer.get("idTransfer") not in TRANSFER_IDS:
                return (
                    "Transfer ID congruence error: The transaction id not have a value between "
                    f"those expected [transaction id={transfer.get('idTransfer')}; expected "
                    f"values=[{', '.join(TRANSFER_IDS)}]]"
                )
        total = 0
        for transfer in transfers:
            has_iban = bool(transfer.get("iban"))
            stamp = transfer.get("stamp")
            has_stamp = isinstance(stamp, dict) and all(
                stamp.get(k) for k in ("hashDocument", "stampType", "provincialResidence")
            )
            if (has_iban == has_stamp) or (has_stamp and transfer.get("postalIban")):
                return (
                    "The Iban may be present (optionally combined with the Postal Iban) or the "
                    "Stamp. Not all at the same time "
                    f"[iuv={option.get('iuv')}, transaction id={transfer.get('idTransfer')}]."
                )
            total += transfer["amount"]
        if option["amount"] != total:
            return (
                "Amounts congruence error: payment option amount must coincide with the total "
                f"of the transfers amount [payment_option_amount(in cent)={option['amount']}; "
                f"total_tranfers_amount(in cent)={total}]"
            )
    return None
