"""The ``paForNode`` SOAP 1.1 messages as the pagoPA Node writes and reads them.

The sandbox keeps its own codec (it does not reuse the hub's station code: a sandbox is an
independent oracle, a shared bug would hide itself). What it follows:

- SOAP 1.1 envelope, ``SOAPAction`` = the operation name, payload element in the
  ``http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd`` namespace, child elements
  unqualified (``paForNode.xsd`` has no ``elementFormDefault``);
- amounts ``\\d+\\.\\d{2}`` euro on the wire, integer cents here;
- the XSD (PagoPA's ``paForNode.xsd`` + ``sac-common-types-1.0.xsd``, not shipped) read from
  a directory given at run time, ``$SPORTELLO_PAGOPA_XSD_DIR`` or the development checkout's
  ``../shared/specs/pagopa/wsdl/xsd``. Without it the parsers still check every field they
  read.

Pure code: no I/O besides reading the XSD once.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lxml import etree

__all__ = [
    "NS",
    "SOAP_NS",
    "XSD_DIR_ENV",
    "BadAnswer",
    "Fault",
    "PaymentData",
    "ReceiptData",
    "Stamp",
    "Subject",
    "Transfer",
    "VerifyData",
    "amount_to_cents",
    "cents_to_amount",
    "default_xsd_dir",
    "envelope",
    "get_payment_v2_request",
    "load_xsd",
    "open_envelope",
    "parse_get_payment_v2",
    "parse_outcome",
    "parse_verify",
    "send_rt_v2_request",
    "verify_request",
    "xsd_problems",
]

NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSD_DIR_ENV = "SPORTELLO_PAGOPA_XSD_DIR"
_XSD_FILE = "paForNode.xsd"
_MAX_ANSWER = 2 * 1024 * 1024
_AMOUNT = re.compile(r"[0-9]+\.[0-9]{2}")
_CF_PA = re.compile(r"[0-9]{11}")
_SUBJECT_DETAILS = (
    "streetName",
    "civicNumber",
    "postalCode",
    "city",
    "stateProvinceRegion",
    "country",
    "e-mail",
)


class BadAnswer(ValueError):
    """An answer the Node cannot use; ``str()`` says why."""


# -- amounts --------------------------------------------------------------------------------


def cents_to_amount(cents: int) -> str:
    """1234 → ``"12.34"``."""
    if cents < 0:
        raise ValueError("amounts are not negative")
    return f"{cents // 100}.{cents % 100:02d}"


def amount_to_cents(text: str) -> int:
    """``"12.34"`` → 1234; raises :class:`BadAnswer` unless the text is ``\\d+\\.\\d{2}``."""
    if not _AMOUNT.fullmatch(text.strip()):
        raise BadAnswer(f"amount {text!r} is not digits, a dot and two decimals")
    whole, cents = text.strip().split(".")
    return int(whole) * 100 + int(cents)


# -- XSD --------------------------------------------------------------------------------------


def default_xsd_dir() -> Path | None:
    """``$SPORTELLO_PAGOPA_XSD_DIR``, else ``<project>/../shared/specs/pagopa/wsdl/xsd``."""
    env = os.environ.get(XSD_DIR_ENV)
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[2].parent / "shared/specs/pagopa/wsdl/xsd"
    return candidate if (candidate / _XSD_FILE).is_file() else None


@lru_cache(maxsize=4)
def load_xsd(xsd_dir: Path) -> etree.XMLSchema:
    """Compile ``paForNode.xsd`` from ``xsd_dir`` (its import resolves from disk)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(xsd_dir / _XSD_FILE), parser))


def xsd_problems(schema: etree.XMLSchema, element: etree._Element) -> list[str]:
    """Every XSD error of ``element`` (validated as a document root), ``line N: message``."""
    if schema.validate(etree.ElementTree(_detached(element))):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log][:20]


def _detached(element: etree._Element) -> etree._Element:
    return etree.fromstring(etree.tostring(element))


# -- envelopes ------------------------------------------------------------------------------


def envelope(payload: etree._Element) -> bytes:
    """A SOAP 1.1 envelope around ``payload`` (UTF-8, XML declaration)."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "pafn": NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def open_envelope(raw: bytes, expected: str) -> etree._Element:
    """The ``{NS}expected`` element inside the SOAP body of ``raw``; :class:`BadAnswer`
    for anything else (not XML, a DOCTYPE, a SOAP Fault, another element)."""
    if len(raw) > _MAX_ANSWER:
        raise BadAnswer(f"answer larger than {_MAX_ANSWER} bytes")
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise BadAnswer("DOCTYPE in the answer")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise BadAnswer(f"answer is not well-formed XML: {exc}") from None
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise BadAnswer(f"answer root is {root.tag}, not a SOAP 1.1 Envelope")
    bodies = [c for c in root if c.tag == f"{{{SOAP_NS}}}Body"]
    if len(bodies) != 1:
        raise BadAnswer("the Envelope must hold exactly one Body")
    children = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(children) != 1:
        raise BadAnswer("the Body must hold exactly one element")
    payload = children[0]
    if payload.tag == f"{{{SOAP_NS}}}Fault":
        raise BadAnswer(f"SOAP Fault: {payload.findtext('faultstring') or ''}".strip())
    if payload.tag != f"{{{NS}}}{expected}":
        raise BadAnswer(f"expected {expected}, got {payload.tag}")
    return payload


# -- data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """``ctSubject``: debtor or payer. ``details`` are the optional fields, in XSD order."""

    kind: str  # F or G
    code: str
    full_name: str
    details: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, str]:
        return {"type": self.kind, "code": self.code, "fullName": self.full_name} | dict(
            self.details
        )


@dataclass(frozen=True)
class Stamp:
    """``richiestaMarcaDaBollo``: a digital revenue stamp instead of an IBAN."""

    hash_document: str
    stamp_type: str
    province: str


@dataclass(frozen=True)
class Transfer:
    """One ``transfer`` of a payment (1..5)."""

    id_transfer: int
    amount_cents: int
    fiscal_code_pa: str
    remittance: str
    category: str
    iban: str | None = None
    stamp: Stamp | None = None
    company_name: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Fault:
    """``ctFaultBean``."""

    code: str
    string: str
    id: str
    description: str | None = None


@dataclass(frozen=True)
class VerifyData:
    """What a good ``paVerifyPaymentNoticeRes`` says."""

    amount_cents: int
    options: str
    all_ccp: bool
    due_date: str | None
    description: str | None
    fiscal_code_pa: str | None
    company_name: str | None
    office_name: str | None


@dataclass(frozen=True)
class PaymentData:
    """What a good ``paGetPaymentV2Response`` says."""

    creditor_reference_id: str
    amount_cents: int
    due_date: str
    description: str
    company_name: str
    office_name: str | None
    debtor: Subject
    transfers: tuple[Transfer, ...]
    metadata: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ReceiptData:
    """Everything a ``paSendRTV2`` receipt carries."""

    receipt_id: str
    notice_number: str
    fiscal_code: str
    creditor_reference_id: str
    amount_cents: int
    description: str
    company_name: str
    debtor: Subject
    transfers: tuple[Transfer, ...]
    id_psp: str
    psp_company_name: str
    psp_fiscal_code: str
    id_channel: str
    channel_description: str
    payment_method: str
    fee_cents: int
    payment_date_time: str  # ISO local date-time
    application_date: str
    transfer_date: str
    stand_in: bool
    office_name: str | None = None
    payer: Subject | None = None
    id_bundle: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()


# -- building -------------------------------------------------------------------------------


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def _head(operation: str, id_pa: str, broker: str, station: str) -> etree._Element:
    root = etree.Element(f"{{{NS}}}{operation}", nsmap={"pafn": NS})
    _add(root, "idPA", id_pa)
    _add(root, "idBrokerPA", broker)
    _add(root, "idStation", station)
    return root


def _qr(parent: etree._Element, fiscal_code: str, notice_number: str) -> None:
    qr = _add(parent, "qrCode")
    _add(qr, "fiscalCode", fiscal_code)
    _add(qr, "noticeNumber", notice_number)


def verify_request(
    id_pa: str, broker: str, station: str, fiscal_code: str, notice_number: str
) -> etree._Element:
    """``paVerifyPaymentNoticeReq``."""
    root = _head("paVerifyPaymentNoticeReq", id_pa, broker, station)
    _qr(root, fiscal_code, notice_number)
    return root


def get_payment_v2_request(
    id_pa: str,
    broker: str,
    station: str,
    fiscal_code: str,
    notice_number: str,
    *,
    amount_cents: int | None = None,
    transfer_type: str | None = None,
) -> etree._Element:
    """``paGetPaymentV2Request``."""
    root = _head("paGetPaymentV2Request", id_pa, broker, station)
    _qr(root, fiscal_code, notice_number)
    if amount_cents is not None:
        _add(root, "amount", cents_to_amount(amount_cents))
    if transfer_type is not None:
        _add(root, "transferType", transfer_type)
    return root


def _subject(parent: etree._Element, name: str, subject: Subject) -> None:
    node = _add(parent, name)
    unique = _add(node, "uniqueIdentifier")
    _add(unique, "entityUniqueIdentifierType", subject.kind)
    _add(unique, "entityUniqueIdentifierValue", subject.code)
    _add(node, "fullName", subject.full_name)
    given = dict(subject.details)
    for key in _SUBJECT_DETAILS:
        if key in given:
            _add(node, key, given[key])


def _metadata(parent: etree._Element, entries: tuple[tuple[str, str], ...]) -> None:
    if not entries:
        return
    node = _add(parent, "metadata")
    for key, value in entries:
        entry = _add(node, "mapEntry")
        _add(entry, "key", key)
        _add(entry, "value", value)


def _mbd_attachment(stamp: Stamp) -> str:
    """A stand-in for the ``MBDAttachment`` (the stamp's XML, base64): the sandbox has no
    Agenzia delle Entrate, so it is the hash it was asked for."""
    text = f"MBD:{stamp.stamp_type}:{stamp.province}:{stamp.hash_document}"
    return base64.b64encode(text.encode()).decode()


def send_rt_v2_request(id_pa: str, broker: str, station: str, r: ReceiptData) -> etree._Element:
    """``paSendRTV2Request`` carrying ``r``."""
    root = _head("paSendRTV2Request", id_pa, broker, station)
    rec = _add(root, "receipt")
    _add(rec, "receiptId", r.receipt_id)
    _add(rec, "noticeNumber", r.notice_number)
    _add(rec, "fiscalCode", r.fiscal_code)
    _add(rec, "outcome", "OK")
    _add(rec, "creditorReferenceId", r.creditor_reference_id)
    _add(rec, "paymentAmount", cents_to_amount(r.amount_cents))
    _add(rec, "description", r.description)
    _add(rec, "companyName", r.company_name)
    if r.office_name:
        _add(rec, "officeName", r.office_name)
    _subject(rec, "debtor", r.debtor)
    transfers = _add(rec, "transferList")
    for t in r.transfers:
        node = _add(transfers, "transfer")
        _add(node, "idTransfer", str(t.id_transfer))
        _add(node, "transferAmount", cents_to_amount(t.amount_cents))
        _add(node, "fiscalCodePA", t.fiscal_code_pa)
        if t.company_name:
            _add(node, "companyName", t.company_name)
        if t.stamp is not None:
            _add(node, "MBDAttachment", _mbd_attachment(t.stamp))
        else:
            _add(node, "IBAN", t.iban or "")
        _add(node, "remittanceInformation", t.remittance)
        _add(node, "transferCategory", t.category)
        _metadata(node, t.metadata)
    _add(rec, "idPSP", r.id_psp)
    _add(rec, "pspFiscalCode", r.psp_fiscal_code)
    _add(rec, "PSPCompanyName", r.psp_company_name)
    _add(rec, "idChannel", r.id_channel)
    _add(rec, "channelDescription", r.channel_description)
    if r.payer is not None:
        _subject(rec, "payer", r.payer)
    _add(rec, "paymentMethod", r.payment_method)
    _add(rec, "fee", cents_to_amount(r.fee_cents))
    if r.id_bundle:
        _add(rec, "idBundle", r.id_bundle)
    _add(rec, "paymentDateTime", r.payment_date_time)
    _add(rec, "applicationDate", r.application_date)
    _add(rec, "transferDate", r.transfer_date)
    _metadata(rec, r.metadata)
    _add(rec, "standIn", "true" if r.stand_in else "false")
    return root


# -- reading --------------------------------------------------------------------------------


def _opt(node: etree._Element, name: str) -> str | None:
    child = node.find(name)
    return child.text or "" if child is not None else None


def _req(node: etree._Element, name: str) -> str:
    value = _opt(node, name)
    if value is None or value == "":
        raise BadAnswer(f"{node.tag}: missing {name}")
    return value


def _one(node: etree._Element, name: str) -> etree._Element:
    found = node.findall(name)
    if len(found) != 1:
        raise BadAnswer(f"{node.tag}: expected one {name}, found {len(found)}")
    return found[0]


def parse_outcome(payload: etree._Element) -> Fault | None:
    """None for ``outcome`` OK, the ``fault`` for KO (a KO without fault is a bad answer)."""
    outcome = _req(payload, "outcome")
    if outcome == "OK":
        return None
    if outcome != "KO":
        raise BadAnswer(f"outcome {outcome!r} is neither OK nor KO")
    fault = payload.find("fault")
    if fault is None:
        raise BadAnswer("outcome KO without fault")
    return Fault(
        code=_req(fault, "faultCode"),
        string=_opt(fault, "faultString") or "",
        id=_opt(fault, "id") or "",
        description=_opt(fault, "description"),
    )


def _read_metadata(node: etree._Element) -> tuple[tuple[str, str], ...]:
    meta = node.find("metadata")
    if meta is None:
        return ()
    return tuple((_req(e, "key"), _req(e, "value")) for e in meta.findall("mapEntry"))


def parse_verify(payload: etree._Element) -> VerifyData:
    """The data of an OK ``paVerifyPaymentNoticeRes``; exactly one option, as the Node wants."""
    plist = payload.find("paymentList")
    if plist is None:
        raise BadAnswer("paVerifyPaymentNoticeRes OK without paymentList")
    option = _one(plist, "paymentOptionDescription")
    all_ccp = _req(option, "allCCP")
    if all_ccp not in ("true", "false", "1", "0"):
        raise BadAnswer(f"allCCP {all_ccp!r} is not a boolean")
    fiscal_code = _opt(payload, "fiscalCodePA")
    if fiscal_code is not None and not _CF_PA.fullmatch(fiscal_code):
        raise BadAnswer(f"fiscalCodePA {fiscal_code!r} is not 11 digits")
    return VerifyData(
        amount_cents=amount_to_cents(_req(option, "amount")),
        options=_req(option, "options"),
        all_ccp=all_ccp in ("true", "1"),
        due_date=_opt(option, "dueDate"),
        description=_opt(payload, "paymentDescription"),
        fiscal_code_pa=fiscal_code,
        company_name=_opt(payload, "companyName"),
        office_name=_opt(payload, "officeName"),
    )


def _read_subject(node: etree._Element) -> Subject:
    unique = _one(node, "uniqueIdentifier")
    kind = _req(unique, "entityUniqueIdentifierType")
    if kind not in ("F", "G"):
        raise BadAnswer(f"entityUniqueIdentifierType {kind!r} is neither F nor G")
    details = tuple((k, v) for k in _SUBJECT_DETAILS if (v := _opt(node, k)) is not None)
    return Subject(
        kind=kind,
        code=_req(unique, "entityUniqueIdentifierValue"),
        full_name=_req(node, "fullName"),
        details=details,
    )


def _read_transfer(node: etree._Element) -> Transfer:
    raw_id = _req(node, "idTransfer")
    if not raw_id.isdigit():
        raise BadAnswer(f"idTransfer {raw_id!r} is not a number")
    fiscal_code = _req(node, "fiscalCodePA")
    if not _CF_PA.fullmatch(fiscal_code):
        raise BadAnswer(f"transfer fiscalCodePA {fiscal_code!r} is not 11 digits")
    stamp_node = node.find("richiestaMarcaDaBollo")
    stamp = None
    if stamp_node is not None:
        stamp = Stamp(
            hash_document=_req(stamp_node, "hashDocumento"),
            stamp_type=_req(stamp_node, "tipoBollo"),
            province=_req(stamp_node, "provinciaResidenza"),
        )
    iban = _opt(node, "IBAN")
    if (iban is None) == (stamp is None):
        raise BadAnswer(f"transfer {raw_id}: exactly one of IBAN and richiestaMarcaDaBollo")
    return Transfer(
        id_transfer=int(raw_id),
        amount_cents=amount_to_cents(_req(node, "transferAmount")),
        fiscal_code_pa=fiscal_code,
        remittance=_req(node, "remittanceInformation"),
        category=_req(node, "transferCategory"),
        iban=iban,
        stamp=stamp,
        company_name=_opt(node, "companyName"),
        metadata=_read_metadata(node),
    )


def parse_get_payment_v2(payload: etree._Element, *, iuv: str) -> PaymentData:
    """The data of an OK ``paGetPaymentV2Response``, checked as the Node checks it: 1..5
    transfers numbered 1..n, their sum equal to ``paymentAmount``, ``creditorReferenceId``
    equal to the IUV of the notice number."""
    data = payload.find("data")
    if data is None:
        raise BadAnswer("paGetPaymentV2Response OK without data")
    transfer_list = _one(data, "transferList")
    transfers = tuple(_read_transfer(t) for t in transfer_list.findall("transfer"))
    if not 1 <= len(transfers) <= 5:
        raise BadAnswer(f"transferList has {len(transfers)} transfers (1 to 5 allowed)")
    ids = [t.id_transfer for t in transfers]
    if ids != list(range(1, len(transfers) + 1)):
        raise BadAnswer(f"idTransfer values are {ids}, expected 1..{len(transfers)} in order")
    amount = amount_to_cents(_req(data, "paymentAmount"))
    total = sum(t.amount_cents for t in transfers)
    if total != amount:
        raise BadAnswer(
            f"transfers add up to {cents_to_amount(total)}, paymentAmount is "
            f"{cents_to_amount(amount)}"
        )
    reference = _req(data, "creditorReferenceId")
    if reference != iuv:
        raise BadAnswer(f"creditorReferenceId {reference} is not the IUV {iuv} of the notice")
    return PaymentData(
        creditor_reference_id=reference,
        amount_cents=amount,
        due_date=_req(data, "dueDate"),
        description=_req(data, "description"),
        company_name=_req(data, "companyName"),
        office_name=_opt(data, "officeName"),
        debtor=_read_subject(_one(data, "debtor")),
        transfers=transfers,
        metadata=_read_metadata(data),
    )
