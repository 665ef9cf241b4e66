"""Bulk import of SEND notifications from the comune's software (fines, tax assessments).

Rows come from a notification source (``hub_send_sources``: the reference ``csv`` and
``sql`` adapters, or a plugin's) as ``(row_number, mapping)`` pairs with the notification
columns (:data:`COLUMNS`, docs/send.md). :func:`import_notifications` checks every row
before it queues anything — each problem named ``source: row N: column: why`` — and queues
nothing when any row is bad: nothing is half sent. The act of each row is a PDF file named
in the ``document`` column and looked up inside the documents folder only (absolute names,
``..`` and links leading out of it are refused).

The valid rows are queued in one transaction through the same function as the API
(``service.queue_notification``: documents stored, ``paProtocolNumber`` and
``idempotenceToken`` stored before any call, the ``send.upload`` (the documents, then the
request) → ``send.acceptance`` jobs of the outbox). The idempotency key of a row is the
tenant plus its ``paProtocolNumber``: running the same import again queues nothing twice (a
row whose protocol number is already there with the same content counts as ``already``; with
other content it is a problem, since SEND would take it for the same act).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sportello import audit
from sportello.config import TenantConfig
from sportello.connectors import fiscal_code as fiscal_codes
from sportello.hookspecs import NoticeRefused, NoticeRequest
from sportello.platforms.send.f24 import MAX_F24_BYTES, f24_payment, f24_problem
from sportello.platforms.send.payments import (
    NoticeAttachment,
    PaymentProblem,
    check_async_fees,
    link_mode,
    notice_attachments,
)
from sportello.platforms.send.service import (
    ProtocolTaken,
    SendNotConfigured,
    check_request,
    queue_notification,
    sender_fields,
)
from sportello.platforms.send.settings import send_settings
from sportello.platforms.send.tables import (
    PAYMENT_DOCUMENT_BASE,
    send_documents,
    send_notifications,
)
from sportello.services import HubServices

__all__ = [
    "COLUMNS",
    "MAX_DOCUMENT_BYTES",
    "MAX_ROWS",
    "REQUIRED",
    "ImportResult",
    "import_notifications",
]

#: Columns every row must fill.
REQUIRED: tuple[str, ...] = (
    "paProtocolNumber",
    "subject",
    "taxonomyCode",
    "document",
    "recipientType",
    "taxId",
    "denomination",
    "address",
    "municipality",
)
#: Every column a row may have (names are matched without regard to case).
COLUMNS: tuple[str, ...] = (
    *REQUIRED,
    "abstract",
    "documentTitle",
    "zip",
    "province",
    "at",
    "addressDetails",
    "municipalityDetails",
    "foreignState",
    "digitalDomicile",
    "noticeCode",
    "creditorTaxId",
    "amount",
    "paymentExpirationDate",
    "applyCost",
    "notificationFeePolicy",
    "physicalCommunicationType",
    "paFee",
    "vat",
    "description",
    "iban",
    "transferCategory",
    "f24Metadata",
    "f24Title",
    "f24ApplyCost",
)
_CANONICAL = {c.lower(): c for c in COLUMNS}

MAX_ROWS = 100_000
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
#: Problems listed at most (then a count of the others).
MAX_PROBLEMS = 1000

_LENGTHS = {
    "paProtocolNumber": 256,
    "subject": 134,
    "abstract": 1024,
    "documentTitle": 512,
    "denomination": 88,
    "address": 1024,
    "municipality": 256,
    "at": 44,
    "addressDetails": 1024,
    "municipalityDetails": 256,
    "province": 256,
    "foreignState": 256,
}
# A cell a spreadsheet would run as a formula when the data is opened again (CSV injection).
_FORMULA = tuple("=+-@")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PEC = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_AMOUNT = re.compile(r"^\d{1,9}(?:[.,]\d{1,2})?$")
_TRUE = {"true", "1", "yes", "si", "sì", "y", "s"}
_FALSE = {"false", "0", "no", "n", ""}
_IBAN = re.compile(r"^IT[0-9]{2}[A-Z][0-9]{10}[0-9A-Z]{12}$")
_CATEGORY = re.compile(r"^(?:[6-9]/)?[0-9]{7}(?:IM|TS|SP|SA|AP)(?:/\S*)?$")
#: When the hub creates a fine's position, its notice is due at the end of this day, Rome time.
_ROME = ZoneInfo("Europe/Rome")


@dataclass
class ImportResult:
    """The outcome of an import. ``problems`` non-empty: nothing was queued."""

    rows: int = 0
    queued: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Document:
    path: Path
    title: str
    sha256: str  # base64, as SEND's digests


@dataclass(frozen=True)
class _Row:
    number: int
    wire: dict[str, Any]
    document: _Document
    #: the position the hub creates for this row (amount without noticeCode): the request's
    #: fields but the reference (its paProtocolNumber), and its applyCost
    position: dict[str, Any] | None = None
    apply_cost: bool = False
    #: the F24 metadata file (JSON) the request's ``f24`` payment refers to
    f24: bytes | None = None


class _Problems:
    def __init__(self, result: ImportResult) -> None:
        self.result, self.more = result, 0

    def add(self, message: str) -> None:
        if len(self.result.problems) < MAX_PROBLEMS:
            self.result.problems.append(message)
        else:
            self.more += 1

    def close(self) -> None:
        if self.more:
            self.result.problems.append(f"... and {self.more} more problem(s)")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _b64sha(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _locate(root: Path, name: str) -> Path | str:
    """The regular file ``name`` inside ``root``, or why it is refused (absolute names,
    ``..`` and links leading out of the folder)."""
    if "\x00" in name or _CONTROL.search(name):
        return "control characters in the file name"
    if (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or name.startswith(("/", "\\"))
    ):
        return "an absolute path: give a file name inside the documents folder"
    parts = PureWindowsPath(name).parts  # splits on / and \ both
    if any(p in ("..", ".") for p in parts):
        return "'..' is not allowed: give a file name inside the documents folder"
    try:
        path = (root / Path(*parts)).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return f"no such file in the documents folder ({root.name})"
    if not path.is_relative_to(root):
        return "leads outside the documents folder: refused"
    if not path.is_file():
        return "not a regular file"
    return path


def _check_f24(root: Path, name: str) -> tuple[Path, bytes] | str:
    """The F24 metadata file ``name`` inside ``root`` and its bytes, or why it is refused."""
    path = _locate(root, name)
    if isinstance(path, str):
        return path
    try:
        size = path.stat().st_size
        if size > MAX_F24_BYTES:
            return f"{size} bytes, more than the {MAX_F24_BYTES} allowed"
        content = path.read_bytes()
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    problem = f24_problem(content)
    if problem is not None:
        return problem
    return path, content


def _check_document(root: Path, name: str, max_bytes: int) -> tuple[Path, str] | str:
    """The file ``name`` inside ``root`` and its SHA-256, or why it is refused."""
    path = _locate(root, name)
    if isinstance(path, str):
        return path
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return f"{size} bytes, more than the {max_bytes} allowed"
        if size < 16:
            return "not a PDF (too short)"
        sha = hashlib.sha256()
        with path.open("rb") as f:
            head = f.read(1024)
            if not head.startswith(b"%PDF-"):
                return "not a PDF (it does not start with %PDF-)"
            sha.update(head)
            tail = head
            while chunk := f.read(1 << 20):
                sha.update(chunk)
                tail = (tail + chunk)[-2048:]
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if b"%%EOF" not in tail[-1024:]:
        return "not a complete PDF (no %%EOF at its end)"
    return path, _b64sha(sha.digest())


def _text(row: dict[str, str], name: str, where: str, problems: list[str]) -> str | None:
    value = row.get(name, "")
    if not value:
        if name in REQUIRED:
            problems.append(f"{where}: {name}: required")
        return None
    if _CONTROL.search(value):
        problems.append(f"{where}: {name}: control characters (line breaks, tabs) not allowed")
        return None
    if value.startswith(_FORMULA):
        problems.append(
            f"{where}: {name}: starts with {value[0]!r}: a spreadsheet would run it as a "
            "formula (CSV injection); refused"
        )
        return None
    limit = _LENGTHS.get(name)
    if limit is not None and len(value) > limit:
        problems.append(f"{where}: {name}: longer than {limit} characters")
        return None
    return value


def _cents(value: str) -> int:
    if not _AMOUNT.match(value):
        raise InvalidOperation(value)
    return int(Decimal(value.replace(",", ".")) * 100)


def _pydantic_where(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        names = [str(x) for x in err["loc"] if isinstance(x, str)]
        column = next((n for n in reversed(names) if n in _CANONICAL.values()), None)
        if column is None and names and names[-1] == "address":
            column = "digitalDomicile"
        out.append(f"{column or '.'.join(str(x) for x in err['loc'])}: {err['msg']}")
    return out


def _prepare(
    number: int,
    raw: Mapping[str, Any],
    *,
    tenant: TenantConfig,
    root: Path,
    label: str,
    max_document_bytes: int,
    unknown: set[str],
    problems: _Problems,
) -> _Row | None:
    where = f"{label}: row {number}"
    row: dict[str, str] = {}
    for key, value in raw.items():
        name = _CANONICAL.get(str(key).strip().lower())
        if name is None:
            if str(key) not in unknown:
                unknown.add(str(key))
                problems.add(f"{label}: column {str(key)[:60]!r}: unknown column")
            continue
        row[name] = _cell(value)
    found: list[str] = []
    texts = {n: _text(row, n, where, found) for n in _LENGTHS}
    protocol, subject = texts["paProtocolNumber"], texts["subject"]
    taxonomy = row.get("taxonomyCode", "").upper()
    if not taxonomy:
        found.append(f"{where}: taxonomyCode: required")
    elif not re.fullmatch(r"[0-9]{6}[A-Z]", taxonomy):
        found.append(f"{where}: taxonomyCode: six digits and a letter (such as 010101P, fines)")
    kind = row.get("recipientType", "").upper()
    tax_id = row.get("taxId", "").upper().replace(" ", "")
    if kind not in ("PF", "PG"):
        found.append(f"{where}: recipientType: PF (a person) or PG (a legal person)")
    elif not tax_id:
        found.append(f"{where}: taxId: required")
    else:
        reason = fiscal_codes.problem(tax_id, company=kind == "PG")
        if reason is not None:
            found.append(f"{where}: taxId: {reason}")
    zip_code = row.get("zip", "")
    if not zip_code and not row.get("foreignState"):
        found.append(f"{where}: zip: required for an address in Italy")
    elif zip_code and not row.get("foreignState") and not re.fullmatch(r"\d{5}", zip_code):
        found.append(f"{where}: zip: five digits")
    elif zip_code and not re.fullmatch(r"[\w \-]{1,15}", zip_code):
        found.append(f"{where}: zip: letters, digits, spaces and dashes, at most 15")
    pec = row.get("digitalDomicile", "")
    if pec and (not _PEC.match(pec) or len(pec) > 320 or pec.startswith(_FORMULA)):
        found.append(f"{where}: digitalDomicile: not an e-mail (PEC) address")
    # -- the payment (pagoPA notice) --
    notice, creditor = row.get("noticeCode", ""), row.get("creditorTaxId", "")
    amount_text = row.get("amount", "")
    apply_cost_text = row.get("applyCost", "").lower()
    policy = row.get("notificationFeePolicy", "").upper() or "DELIVERY_MODE"
    if policy not in ("FLAT_RATE", "DELIVERY_MODE"):
        found.append(f"{where}: notificationFeePolicy: FLAT_RATE or DELIVERY_MODE")
    physical = row.get("physicalCommunicationType", "").upper() or "AR_REGISTERED_LETTER"
    if physical not in ("AR_REGISTERED_LETTER", "REGISTERED_LETTER_890"):
        found.append(
            f"{where}: physicalCommunicationType: AR_REGISTERED_LETTER or REGISTERED_LETTER_890"
        )
    apply_cost = False
    if apply_cost_text in _TRUE:
        apply_cost = True
    elif apply_cost_text not in _FALSE:
        found.append(f"{where}: applyCost: true or false")
    payment: dict[str, Any] | None = None
    amount: int | None = None
    creating: dict[str, Any] | None = None
    if notice:
        if not re.fullmatch(r"\d{18}", notice):
            found.append(f"{where}: noticeCode: 18 digits (the pagoPA notice number)")
        creditor = creditor or tenant.fiscal_code
        if not re.fullmatch(r"\d{11}", creditor):
            found.append(f"{where}: creditorTaxId: the creditor's 11-digit fiscal code")
        if not amount_text:
            found.append(f"{where}: amount: required with noticeCode (euro, such as 41,00)")
        else:
            try:
                amount = _cents(amount_text)
                if amount <= 0:
                    found.append(f"{where}: amount: more than zero")
            except InvalidOperation:
                found.append(f"{where}: amount: euro with at most two decimals (such as 41,00)")
        if apply_cost and policy != "DELIVERY_MODE":
            found.append(
                f"{where}: applyCost: SEND adds its cost only with notificationFeePolicy "
                "DELIVERY_MODE"
            )
        payment = {"noticeCode": notice, "creditorTaxId": creditor, "applyCost": apply_cost}
    elif amount_text:  # the hub creates the position (pagoPA platform) and its notice
        try:
            amount = _cents(amount_text)
            if amount <= 0:
                found.append(f"{where}: amount: more than zero")
        except InvalidOperation:
            found.append(f"{where}: amount: euro with at most two decimals (such as 41,00)")
        if row.get("creditorTaxId"):
            found.append(
                f"{where}: creditorTaxId: only with noticeCode (a position the hub creates "
                "is the tenant's)"
            )
        if not row.get("paymentExpirationDate"):
            found.append(
                f"{where}: paymentExpirationDate: required with amount and no noticeCode "
                "(the due date of the position the hub creates)"
            )
        iban = row.get("iban", "").upper().replace(" ", "")
        if not _IBAN.fullmatch(iban):
            found.append(
                f"{where}: iban: required with amount and no noticeCode: the Italian IBAN "
                "the fine is paid to (27 characters)"
            )
        category = row.get("transferCategory", "")
        if not _CATEGORY.fullmatch(category):
            found.append(
                f"{where}: transferCategory: required with amount and no noticeCode: the "
                "pagoPA taxonomy code of the payment (such as 9/0301109AP/)"
            )
        description = row.get("description", "") or (subject or "")
        if len(description) > 140 or _CONTROL.search(description):
            found.append(f"{where}: description: at most 140 characters, one line")
        if apply_cost and policy != "DELIVERY_MODE":
            found.append(
                f"{where}: applyCost: SEND adds its cost only with notificationFeePolicy "
                "DELIVERY_MODE"
            )
        creating = {
            "debtor_type": "G" if kind == "PG" else "F",
            "iban": iban,
            "category": category,
            "description": description,
        }
    else:
        for name in ("creditorTaxId", "paymentExpirationDate"):
            if row.get(name):
                found.append(f"{where}: {name}: only with noticeCode or amount (a pagoPA notice)")
        if apply_cost:
            found.append(f"{where}: applyCost: only with noticeCode or amount (a pagoPA notice)")
    if not (amount_text and not notice):
        for name in ("iban", "transferCategory", "description"):
            if row.get(name):
                found.append(
                    f"{where}: {name}: only with amount and no noticeCode (a position the hub "
                    "creates)"
                )
    expiration = row.get("paymentExpirationDate", "")
    if expiration:
        try:
            date.fromisoformat(expiration)
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", expiration):
                raise ValueError
        except ValueError:
            found.append(f"{where}: paymentExpirationDate: YYYY-MM-DD")
    fees: dict[str, int] = {}
    for name in ("paFee", "vat"):
        if row.get(name):
            if not re.fullmatch(r"\d{1,3}", row[name]) or int(row[name]) > 100:
                found.append(f"{where}: {name}: a whole number from 0 to 100")
            else:
                fees[name] = int(row[name])
    # -- the act --
    document: _Document | None = None
    doc_name = row.get("document", "")
    if not doc_name:
        found.append(f"{where}: document: required (the PDF file name of the act)")
    else:
        checked = _check_document(root, doc_name, max_document_bytes)
        if isinstance(checked, str):
            found.append(f"{where}: document: {checked}")
        else:
            title = texts["documentTitle"] or PureWindowsPath(doc_name).name[:512]
            document = _Document(checked[0], title, checked[1])
    # -- the F24 (its metadata file, JSON, in the documents folder) --
    f24_content: bytes | None = None
    f24_name = row.get("f24Metadata", "")
    f24_title = row.get("f24Title", "")
    f24_cost_text = row.get("f24ApplyCost", "").lower()
    f24_cost = f24_cost_text in _TRUE
    if f24_cost_text not in _TRUE | _FALSE:
        found.append(f"{where}: f24ApplyCost: true or false")
    if f24_name:
        checked_f24 = _check_f24(root, f24_name)
        if isinstance(checked_f24, str):
            found.append(f"{where}: f24Metadata: {checked_f24}")
        else:
            f24_content = checked_f24[1]
        if len(f24_title) > 512 or _CONTROL.search(f24_title) or f24_title.startswith(_FORMULA):
            found.append(f"{where}: f24Title: at most 512 characters, one line")
        if f24_cost and policy != "DELIVERY_MODE":
            found.append(
                f"{where}: f24ApplyCost: SEND adds its cost only with notificationFeePolicy "
                "DELIVERY_MODE"
            )
    else:
        for name in ("f24Title", "f24ApplyCost"):
            if row.get(name):
                found.append(f"{where}: {name}: only with f24Metadata (the F24's JSON file)")
    if found or document is None or protocol is None or subject is None:
        for p in found:
            problems.add(p)
        return None
    address = {
        "address": texts["address"],
        "municipality": texts["municipality"],
        "zip": zip_code or None,
        "province": texts["province"],
        "at": texts["at"],
        "addressDetails": texts["addressDetails"],
        "municipalityDetails": texts["municipalityDetails"],
        "foreignState": texts["foreignState"],
    }
    recipient: dict[str, Any] = {
        "recipientType": kind,
        "taxId": tax_id,
        "denomination": texts["denomination"],
        "physicalAddress": {k: v for k, v in address.items() if v is not None},
    }
    if pec:
        recipient["digitalDomicile"] = {"type": "PEC", "address": pec}
    if payment is not None:
        recipient["payments"] = [{"pagoPa": payment}]
    if f24_content is not None:
        item = f24_payment(0, f24_title or "Modello F24", f24_cost, f24_content)
        recipient["payments"] = [*recipient.get("payments", []), item]
    wire: dict[str, Any] = {
        "paProtocolNumber": protocol,
        "idempotenceToken": uuid.uuid4().hex,
        "subject": subject,
        "abstract": texts["abstract"],
        "recipients": [recipient],
        "notificationFeePolicy": policy,
        "physicalCommunicationType": physical,
        **sender_fields(tenant),
        "taxonomyCode": taxonomy,
        "amount": amount,
        "paymentExpirationDate": expiration or None,
        **fees,
    }
    wire = {k: v for k, v in wire.items() if v is not None}
    try:
        check_request(wire, [(document.title, document.sha256)])
    except ValidationError as exc:
        for p in _pydantic_where(exc):
            problems.add(f"{where}: {p}")
        return None
    position: dict[str, Any] | None = None
    if creating is not None and amount is not None and expiration:
        position = {
            **creating,
            "debtor": tax_id,
            "full_name": texts["denomination"] or "",
            "amount": amount,
            "due": datetime.combine(date.fromisoformat(expiration), time(23, 59, 59), _ROME),
        }
    return _Row(number, wire, document, position, apply_cost, f24_content)


def _folder(documents: Path) -> Path | None:
    try:
        root = documents.resolve(strict=True)
    except OSError:
        return None
    return root if root.is_dir() else None


def _content(wire: Mapping[str, Any], *, created: bool = False) -> dict[str, Any]:
    """What makes two requests the same act (the token and the sender left out; with
    ``created``, the payments too: the hub made their notices, the row has none yet)."""
    if created:
        wire = {
            **wire,
            "recipients": [
                {
                    **r,
                    "payments": [p for p in r.get("payments") or [] if not p.get("pagoPa")],
                }
                for r in wire["recipients"]
            ],
        }
    skip = {
        "idempotenceToken",
        "senderDenomination",
        "senderTaxId",
        "documents",
        "pagoPaIntMode",  # set by payments.notice_attachments, from the positions' state
    }
    return {k: v for k, v in wire.items() if k not in skip}


async def _iterate(
    rows: AsyncIterable[tuple[int, Mapping[str, Any]]] | Iterable[tuple[int, Mapping[str, Any]]],
) -> Any:
    if isinstance(rows, AsyncIterable):
        async for item in rows:
            yield item
    else:
        for item in rows:
            yield item


async def import_notifications(
    services: HubServices,
    tenant_id: str,
    rows: AsyncIterable[tuple[int, Mapping[str, Any]]] | Iterable[tuple[int, Mapping[str, Any]]],
    *,
    documents: Path,
    source: str = "import",
    actor: str = "import",
    dry_run: bool = False,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> ImportResult:
    """Check every row, then queue every new one in one transaction (module docstring).

    ``rows``: ``(row_number, mapping)`` pairs, as a notification source's ``rows()`` yields
    them (a ``ValueError`` it raises becomes a problem). ``documents``: the folder the
    ``document`` column names files in. ``source`` starts every problem. ``dry_run``: check
    only. Raises ``SendNotConfigured`` when the tenant has no ``[tenants.send]``."""
    tenant = services.config.tenant(tenant_id)
    if tenant is None or send_settings(tenant) is None:
        raise SendNotConfigured(
            f"tenant {tenant_id!r} has no [tenants.send]: SEND is not configured",
            platform="send",
        )
    result = ImportResult(dry_run=dry_run)
    problems = _Problems(result)
    root = await asyncio.to_thread(_folder, documents)
    if root is None:
        problems.add(f"{documents}: the documents folder does not exist")
        problems.close()
        return result
    prepared: list[_Row] = []
    first_row: dict[str, int] = {}
    unknown: set[str] = set()
    missing_checked = False
    try:
        async for item in _iterate(rows):
            result.rows += 1
            try:
                number, raw = item
                if not isinstance(raw, Mapping):
                    raise TypeError
                number = int(number)
            except (TypeError, ValueError):
                problems.add(
                    f"{source}: item {result.rows}: not a (row number, columns) pair: the "
                    "notification source is faulty"
                )
                break
            if result.rows > MAX_ROWS:
                problems.add(f"{source}: more than {MAX_ROWS} rows: split it in several imports")
                break
            if not missing_checked:
                missing_checked = True
                present = {str(k).strip().lower() for k in raw}
                absent = [c for c in REQUIRED if c.lower() not in present]
                if absent:
                    problems.add(f"{source}: missing column(s): {', '.join(absent)}")
                    break
            row = await asyncio.to_thread(  # the documents are read and hashed
                _prepare,
                number,
                raw,
                tenant=tenant,
                root=root,
                label=source,
                max_document_bytes=max_document_bytes,
                unknown=unknown,
                problems=problems,
            )
            if row is None:
                continue
            protocol = row.wire["paProtocolNumber"]
            if protocol in first_row:
                problems.add(
                    f"{source}: row {number}: paProtocolNumber: {protocol!r} is on row "
                    f"{first_row[protocol]} too (one act, one protocol number)"
                )
                continue
            first_row[protocol] = number
            prepared.append(row)
    except ValueError as exc:
        problems.add(str(exc))
    if result.rows == 0 and not result.problems:
        problems.add(f"{source}: no rows to import")
    # the rows whose protocol number the tenant already has: the same act, or a problem
    engine = services.engine
    existing: dict[str, tuple[int, dict[str, Any], list[str]]] = {}
    protocols = [r.wire["paProtocolNumber"] for r in prepared]
    async with engine.connect() as conn:
        for start in range(0, len(protocols), 500):
            chunk = protocols[start : start + 500]
            found = await conn.execute(
                select(
                    send_notifications.c.id,
                    send_notifications.c.pa_protocol_number,
                    send_notifications.c.request,
                ).where(
                    send_notifications.c.tenant_id == tenant_id,
                    send_notifications.c.pa_protocol_number.in_(chunk),
                )
            )
            rows_found = found.all()
            shas: dict[int, list[str]] = {int(r.id): [] for r in rows_found}
            if shas:
                for d in await conn.execute(
                    select(send_documents.c.notification_id, send_documents.c.sha256)
                    .where(
                        send_documents.c.notification_id.in_(list(shas)),
                        send_documents.c.idx < PAYMENT_DOCUMENT_BASE,  # not notice PDFs
                    )
                    .order_by(send_documents.c.notification_id, send_documents.c.idx)
                ):
                    shas[int(d.notification_id)].append(d.sha256)
            for r in rows_found:
                existing[r.pa_protocol_number] = (
                    int(r.id),
                    json.loads(r.request),
                    shas[int(r.id)],
                )
    fresh: list[_Row] = []
    for row in prepared:
        protocol = row.wire["paProtocolNumber"]
        if protocol not in existing:
            fresh.append(row)
            continue
        known_id, known_wire, known_shas = existing[protocol]
        created = row.position is not None
        same_cost = not created or all(
            bool(p["pagoPa"]["applyCost"]) == row.apply_cost
            for r in known_wire["recipients"]
            for p in r.get("payments") or []
            if p.get("pagoPa")
        )
        if (
            _content(known_wire, created=created) == _content(row.wire, created=created)
            and same_cost
            and known_shas == [row.document.sha256]
        ):
            result.already.append(known_id)
        else:
            problems.add(
                f"{source}: row {row.number}: paProtocolNumber: notification {known_id} already "
                f"has {protocol!r} with other content; nothing is sent again (a new act needs "
                "a new protocol number)"
            )
    # the notices: one per notification (SEND refuses a notice twice), and the PDFs of the
    # notices of the tenant's own positions attached (payments.notice_attachments)
    notice_rows: dict[str, int] = {}
    notices: dict[int, list[NoticeAttachment]] = {}
    for row in fresh:
        for recipient in row.wire["recipients"]:
            for payment in recipient.get("payments") or []:
                if not payment.get("pagoPa"):
                    continue  # an F24
                code = payment["pagoPa"]["noticeCode"]
                if code in notice_rows:
                    problems.add(
                        f"{source}: row {row.number}: noticeCode: the same notice as row "
                        f"{notice_rows[code]} (SEND refuses a notice in two notifications)"
                    )
                notice_rows.setdefault(code, row.number)
    plugins = services.plugins
    if any(r.position is not None for r in fresh) and (
        plugins is None or not plugins.creates_notices()
    ):
        problems.add(
            f"{source}: amount without noticeCode: the hub cannot create pagoPA positions here "
            "(no pagoPA platform)"
        )
    if not result.problems:
        for row in fresh:
            if row.position is not None:
                continue  # its notice is made in the queueing transaction
            try:
                notices[row.number] = await notice_attachments(services, tenant_id, row.wire, actor)
            except PaymentProblem as exc:
                problems.add(f"{source}: row {row.number}: {_payment_column(exc)}: {exc.detail}")
    problems.close()
    if result.problems or dry_run or not fresh:
        return result
    now = services.clock.now()
    queued: list[int] = []
    current = 0
    try:
        async with engine.begin() as conn:
            for row in fresh:
                current = row.number
                content = await asyncio.to_thread(row.document.path.read_bytes)
                if _b64sha(hashlib.sha256(content).digest()) != row.document.sha256:
                    raise _Changed(f"{source}: row {row.number}: document: changed while importing")
                if row.position is not None:
                    assert plugins is not None
                    notices[row.number] = await _create_notice(
                        conn, services, tenant_id, row, actor
                    )
                queued.append(
                    await queue_notification(
                        conn,
                        tenant_id=tenant_id,
                        wire=row.wire,
                        documents=[(row.document.title, content)],
                        actor=actor,
                        now=now,
                        max_attempts=services.config.outbox.max_attempts,
                        notices=notices.get(row.number, ()),
                        f24=() if row.f24 is None else (row.f24,),
                    )
                )
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=actor,
                    action="send.import",
                    subject=f"import:{source}"[:200],
                    purpose="SEND notifications from the comune's software",
                    sources="hub",
                    outcome="ok",
                    detail=f"{len(queued)} queued, {len(result.already)} already queued",
                ),
                at=now,
            )
    except _Changed as exc:
        result.problems.append(str(exc))
        return result
    except NoticeRefused as exc:
        result.problems.append(
            f"{source}: row {current}: {exc.field or 'amount'}: the pagoPA position could not "
            f"be created: {exc.detail}; nothing queued"
        )
        return result
    except ProtocolTaken as exc:
        result.problems.append(
            f"{source}: {exc} (another import queued it meanwhile); nothing queued: run again"
        )
        return result
    except PaymentProblem as exc:  # another live notification carries the notice
        result.problems.append(
            f"{source}: row {current}: {_payment_column(exc)}: {exc.detail}; nothing queued"
        )
        return result
    except IntegrityError:
        result.problems.append(
            f"{source}: another import or request queued some of these protocol numbers or "
            "pagoPA notices meanwhile; nothing queued: run again"
        )
        return result
    except OSError as exc:
        result.problems.append(f"{source}: a document could not be read ({exc.strerror})")
        return result
    result.queued = queued
    return result


async def _create_notice(
    conn: Any, services: HubServices, tenant_id: str, row: _Row, actor: str
) -> list[NoticeAttachment]:
    """In the queueing transaction: the row's position created by the pagoPA platform
    (``hub_create_notice``), its notice put in the row's request with the PDF to attach."""
    assert services.plugins is not None and row.position is not None
    created = await services.plugins.create_notice(
        conn,
        services,
        tenant_id,
        NoticeRequest(reference=str(row.wire["paProtocolNumber"]), **row.position),
        actor,
    )
    doc = created.document
    recipient = row.wire["recipients"][0]
    recipient["payments"] = [
        {
            "pagoPa": {
                "noticeCode": created.notice_number,
                "creditorTaxId": doc.creditor_tax_id,
                "applyCost": row.apply_cost,
            }
        },
        *recipient.get("payments", []),  # an F24
    ]
    link_mode(row.wire, doc.station, row.apply_cost)
    check_async_fees(row.wire)  # PaymentProblem: the row's paFee or vat named
    return [NoticeAttachment(0, 0, created.notice_number, doc.pdf, lock=doc.lock)]


def _payment_column(exc: PaymentProblem) -> str:
    """The import column of a payment problem's field (``recipients.0.payments.0.pagoPa.
    noticeCode`` → ``noticeCode``)."""
    last = exc.field.rsplit(".", 1)[-1]
    return last if last in _CANONICAL.values() else exc.field


class _Changed(Exception):
    pass
