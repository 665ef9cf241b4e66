"""The EC station's SOAP codec (``paForNode``): typed requests in, XSD-valid answers out.

What the Node sends (``wsdl/paForNode.wsdl``, SOAP 1.1 document/literal, ``soapAction`` =
operation name, namespace :data:`~.station_xml.NS` on the wrapper element only):

========================  ==============================  ===============================
operation                 request element                 response element
========================  ==============================  ===============================
paVerifyPaymentNotice     paVerifyPaymentNoticeReq        paVerifyPaymentNoticeRes
paGetPayment              paGetPaymentReq                 paGetPaymentRes
paGetPaymentV2            paGetPaymentV2Request           paGetPaymentV2Response
paSendRT                  paSendRTReq                     paSendRTRes
paSendRTV2                paSendRTV2Request               paSendRTV2Response
paDemandPaymentNotice     paDemandPaymentNoticeRequest    paDemandPaymentNoticeResponse
========================  ==============================  ===============================

:func:`parse_request` returns one of :class:`VerifyPaymentNotice`, :class:`GetPayment`,
:class:`SendRT`, :class:`DemandPaymentNotice`, or raises :class:`StationError` (a fault
code plus the operation, when known, so the caller can answer in that operation's
response element). Every answer is ``outcome`` OK with data, or KO with
``fault{faultCode, faultString, id, description}`` (:func:`ko`).

Pure code, no I/O. Amounts are integer cents here and ``\\d+\\.\\d{2}`` on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree

from .models import DebtPosition, PaymentOption
from .station_xml import (
    MAX_REQUEST_BYTES,
    NS,
    SOAP_NS,
    XmlProblem,
    amount_to_cents,
    cents_to_amount,
    envelope,
    parse_document,
    soap_payload,
    validate,
)

__all__ = [
    "ROME",
    "Caller",
    "DemandPaymentNotice",
    "Fault",
    "FaultCode",
    "GetPayment",
    "Operation",
    "PaymentAnswer",
    "Receipt",
    "ReceiptTransfer",
    "SendRT",
    "StationError",
    "StationRequest",
    "Subject",
    "TransferAnswer",
    "VerifyAnswer",
    "VerifyPaymentNotice",
    "get_payment_ok",
    "ko",
    "parse_request",
    "payment_answer",
    "send_rt_ok",
    "soap_fault",
    "verify_answer",
    "verify_ok",
]

ROME = ZoneInfo("Europe/Rome")


class Operation(StrEnum):
    VERIFY = "paVerifyPaymentNotice"
    GET_PAYMENT = "paGetPayment"
    GET_PAYMENT_V2 = "paGetPaymentV2"
    SEND_RT = "paSendRT"
    SEND_RT_V2 = "paSendRTV2"
    DEMAND = "paDemandPaymentNotice"


REQUEST_ELEMENTS: dict[str, Operation] = {
    "paVerifyPaymentNoticeReq": Operation.VERIFY,
    "paGetPaymentReq": Operation.GET_PAYMENT,
    "paGetPaymentV2Request": Operation.GET_PAYMENT_V2,
    "paSendRTReq": Operation.SEND_RT,
    "paSendRTV2Request": Operation.SEND_RT_V2,
    "paDemandPaymentNoticeRequest": Operation.DEMAND,
}
RESPONSE_ELEMENTS: dict[Operation, str] = {
    Operation.VERIFY: "paVerifyPaymentNoticeRes",
    Operation.GET_PAYMENT: "paGetPaymentRes",
    Operation.GET_PAYMENT_V2: "paGetPaymentV2Response",
    Operation.SEND_RT: "paSendRTRes",
    Operation.SEND_RT_V2: "paSendRTV2Response",
    Operation.DEMAND: "paDemandPaymentNoticeResponse",
}


class FaultCode(StrEnum):
    """The EC faults the Node knows (``nodo-greater-than-ec``)."""

    PAGAMENTO_SCONOSCIUTO = "PAA_PAGAMENTO_SCONOSCIUTO"
    PAGAMENTO_DUPLICATO = "PAA_PAGAMENTO_DUPLICATO"
    PAGAMENTO_SCADUTO = "PAA_PAGAMENTO_SCADUTO"
    PAGAMENTO_ANNULLATO = "PAA_PAGAMENTO_ANNULLATO"
    RECEIPT_DUPLICATA = "PAA_RECEIPT_DUPLICATA"
    ID_DOMINIO_ERRATO = "PAA_ID_DOMINIO_ERRATO"
    ID_INTERMEDIARIO_ERRATO = "PAA_ID_INTERMEDIARIO_ERRATO"
    STAZIONE_INT_ERRATA = "PAA_STAZIONE_INT_ERRATA"
    SINTASSI_XSD = "PAA_SINTASSI_XSD"
    SEMANTICA = "PAA_SEMANTICA"
    SYSTEM_ERROR = "PAA_SYSTEM_ERROR"


#: ``faultString`` per code: a short, fixed sentence (details go in ``description``).
FAULT_STRINGS: dict[FaultCode, str] = {
    FaultCode.PAGAMENTO_SCONOSCIUTO: "Pagamento in attesa risulta sconosciuto all'Ente Creditore",
    FaultCode.PAGAMENTO_DUPLICATO: "Pagamento in attesa risulta concluso all'Ente Creditore",
    FaultCode.PAGAMENTO_SCADUTO: "Pagamento in attesa risulta scaduto all'Ente Creditore",
    FaultCode.PAGAMENTO_ANNULLATO: "Pagamento in attesa risulta annullato all'Ente Creditore",
    FaultCode.RECEIPT_DUPLICATA: "La ricevuta risulta già acquisita dall'Ente Creditore",
    FaultCode.ID_DOMINIO_ERRATO: "Identificativo dell'Ente Creditore sconosciuto",
    FaultCode.ID_INTERMEDIARIO_ERRATO: "Identificativo dell'intermediario sconosciuto",
    FaultCode.STAZIONE_INT_ERRATA: "Stazione intermediario sconosciuta",
    FaultCode.SINTASSI_XSD: "Errore di sintassi XSD",
    FaultCode.SEMANTICA: "Errore semantico",
    FaultCode.SYSTEM_ERROR: "Errore generico",
}


class StationError(Exception):
    """A request answered with a fault. ``operation`` is None when it could not be told."""

    def __init__(
        self, code: FaultCode, description: str, operation: Operation | None = None
    ) -> None:
        self.code, self.description, self.operation = code, description, operation
        super().__init__(f"{code}: {description}")


# -- requests ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who the Node says the request is for: creditor, intermediary, station."""

    id_pa: str
    id_broker_pa: str
    id_station: str


@dataclass(frozen=True, slots=True)
class VerifyPaymentNotice:
    operation: Operation
    caller: Caller
    fiscal_code: str
    notice_number: str


@dataclass(frozen=True, slots=True)
class GetPayment:
    """``paGetPayment`` or ``paGetPaymentV2`` (``version`` 1 or 2)."""

    operation: Operation
    caller: Caller
    fiscal_code: str
    notice_number: str
    amount: int | None = None
    payment_note: str | None = field(default=None, repr=False)
    #: ``POSTAL`` asks for the postal IBANs, ``PAGOPA`` (or absent) for the others.
    transfer_type: str | None = None
    due_date: date | None = None

    @property
    def version(self) -> int:
        return 2 if self.operation is Operation.GET_PAYMENT_V2 else 1


@dataclass(frozen=True, slots=True)
class Subject:
    """``ctSubject``: a debtor or payer. Personal data: kept out of ``repr()``."""

    type: str = field(repr=False)
    fiscal_code: str = field(repr=False)
    full_name: str = field(repr=False)
    street_name: str | None = field(default=None, repr=False)
    civic_number: str | None = field(default=None, repr=False)
    postal_code: str | None = field(default=None, repr=False)
    city: str | None = field(default=None, repr=False)
    province: str | None = field(default=None, repr=False)
    country: str | None = field(default=None, repr=False)
    email: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class ReceiptTransfer:
    id_transfer: int
    amount: int
    fiscal_code_pa: str
    remittance_information: str
    category: str
    iban: str | None = None
    #: V2: the stamp's ``MBDAttachment`` (base64) instead of an IBAN.
    mbd_attachment: str | None = field(default=None, repr=False)
    company_name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    """``ctReceipt`` / ``ctReceiptV2``: the proof of a payment (amounts in cents)."""

    receipt_id: str
    notice_number: str
    fiscal_code: str
    outcome: str
    creditor_reference_id: str
    payment_amount: int
    description: str
    company_name: str
    debtor: Subject
    transfers: tuple[ReceiptTransfer, ...]
    id_psp: str
    psp_company_name: str
    id_channel: str
    channel_description: str
    office_name: str | None = None
    psp_fiscal_code: str | None = None
    psp_partita_iva: str | None = None
    payer: Subject | None = None
    payment_method: str | None = None
    payment_note: str | None = field(default=None, repr=False)
    fee: int | None = None
    primary_ci_incurred_fee: int | None = None
    id_bundle: str | None = None
    id_ci_bundle: str | None = None
    payment_date_time: datetime | None = None
    application_date: date | None = None
    transfer_date: date | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    #: True when the Node collected the payment in Stand-In (no verify/activate with us).
    stand_in: bool = False

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (dates as ISO strings, amounts in cents)."""

        def convert(value: Any) -> Any:
            if isinstance(value, date | datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: convert(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [convert(v) for v in value]
            return value

        result: dict[str, Any] = convert(asdict(self))
        return result


@dataclass(frozen=True, slots=True)
class SendRT:
    """``paSendRT`` or ``paSendRTV2`` (``version`` 1 or 2)."""

    operation: Operation
    caller: Caller
    receipt: Receipt

    @property
    def version(self) -> int:
        return 2 if self.operation is Operation.SEND_RT_V2 else 1


@dataclass(frozen=True, slots=True)
class DemandPaymentNotice:
    """``paDemandPaymentNotice`` (spontaneous payments at a PSP): parsed, not served yet."""

    operation: Operation
    caller: Caller
    id_service: str


StationRequest = VerifyPaymentNotice | GetPayment | SendRT | DemandPaymentNotice


def operation_from_action(soap_action: str | None) -> Operation | None:
    """The operation a ``SOAPAction`` header names (quotes and a path prefix allowed)."""
    if not soap_action:
        return None
    name = soap_action.strip().strip('"').rsplit("/", 1)[-1]
    try:
        return Operation(name)
    except ValueError:
        return None


def parse_request(
    data: bytes,
    *,
    soap_action: str | None = None,
    schema: etree.XMLSchema | None = None,
    max_bytes: int = MAX_REQUEST_BYTES,
) -> StationRequest:
    """Parse and check one request; raises :class:`StationError` (PAA_SINTASSI_XSD mostly).

    With ``schema`` the payload is validated against ``paForNode.xsd``; without it the
    fields read are still checked (required, lengths, patterns). A ``SOAPAction`` that
    names another operation than the body is a syntax error.
    """
    hinted = operation_from_action(soap_action)
    try:
        payload = soap_payload(parse_document(data, max_bytes=max_bytes))
    except XmlProblem as exc:
        raise StationError(FaultCode.SINTASSI_XSD, str(exc), hinted) from None
    qname = etree.QName(payload)
    operation = REQUEST_ELEMENTS.get(qname.localname) if qname.namespace == NS else None
    if operation is None:
        raise StationError(
            FaultCode.SINTASSI_XSD, f"unknown request element {qname.localname!r}", hinted
        )
    if hinted is not None and hinted is not operation:
        raise StationError(
            FaultCode.SINTASSI_XSD,
            f"SOAPAction {hinted} does not match the body ({operation})",
            operation,
        )
    if schema is not None:
        problem = validate(schema, payload)
        if problem is not None:
            raise StationError(FaultCode.SINTASSI_XSD, problem, operation)
    try:
        request: StationRequest = _READERS[operation](operation, _Reader(payload))
    except _Missing as exc:
        raise StationError(FaultCode.SINTASSI_XSD, str(exc), operation) from None
    return request


class _Missing(ValueError):
    pass


class _Reader:
    """Reads unqualified children of one element, checking what the XSD would."""

    def __init__(self, element: etree._Element, path: str = "") -> None:
        self.element = element
        self.path = path or etree.QName(element).localname

    def _children(self, name: str) -> list[etree._Element]:
        return [c for c in self.element if c.tag == name]

    def child(self, name: str) -> _Reader:
        found = self._children(name)
        if len(found) != 1:
            raise _Missing(f"{self.path}/{name}: expected exactly one element")
        return _Reader(found[0], f"{self.path}/{name}")

    def maybe_child(self, name: str) -> _Reader | None:
        found = self._children(name)
        if len(found) > 1:
            raise _Missing(f"{self.path}/{name}: at most one element")
        return _Reader(found[0], f"{self.path}/{name}") if found else None

    def children(self, name: str) -> list[_Reader]:
        return [_Reader(c, f"{self.path}/{name}") for c in self._children(name)]

    def text(self, name: str, *, maximum: int = 10_000, pattern: str | None = None) -> str:
        value = self.maybe_text(name, maximum=maximum, pattern=pattern)
        if value is None:
            raise _Missing(f"{self.path}/{name}: required")
        return value

    def maybe_text(
        self, name: str, *, maximum: int = 10_000, pattern: str | None = None
    ) -> str | None:
        node = self.maybe_child(name)
        if node is None:
            return None
        value = node.element.text or ""
        if not 1 <= len(value) <= maximum:
            raise _Missing(f"{node.path}: 1 to {maximum} characters")
        if pattern is not None and not _match(pattern, value):
            raise _Missing(f"{node.path}: does not match {pattern}")
        return value

    def amount(self, name: str) -> int:
        value = self.maybe_amount(name)
        if value is None:
            raise _Missing(f"{self.path}/{name}: required")
        return value

    def maybe_amount(self, name: str) -> int | None:
        value = self.maybe_text(name, maximum=20)
        if value is None:
            return None
        try:
            return amount_to_cents(value)
        except ValueError as exc:
            raise _Missing(f"{self.path}/{name}: {exc}") from None

    def maybe_bool(self, name: str) -> bool | None:
        value = self.maybe_text(name, maximum=5)
        if value is None:
            return None
        if value.strip() in ("true", "1"):
            return True
        if value.strip() in ("false", "0"):
            return False
        raise _Missing(f"{self.path}/{name}: not a boolean")

    def maybe_date(self, name: str) -> date | None:
        value = self.maybe_text(name, maximum=40)
        if value is None:
            return None
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise _Missing(f"{self.path}/{name}: not a date") from None

    def maybe_datetime(self, name: str) -> datetime | None:
        value = self.maybe_text(name, maximum=40)
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Missing(f"{self.path}/{name}: not a date-time") from None
        # The Node writes Italian local time without an offset.
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=ROME)

    def metadata(self) -> dict[str, str]:
        node = self.maybe_child("metadata")
        if node is None:
            return {}
        return {
            e.text("key", maximum=140): e.text("value", maximum=140)
            for e in node.children("mapEntry")
        }


def _match(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


_CF_PA = r"[0-9]{11}"
_NAV = r"[0-9]{18}"


def _caller(r: _Reader) -> Caller:
    return Caller(
        id_pa=r.text("idPA", maximum=35),
        id_broker_pa=r.text("idBrokerPA", maximum=35),
        id_station=r.text("idStation", maximum=35),
    )


def _qr(r: _Reader) -> tuple[str, str]:
    qr = r.child("qrCode")
    return qr.text("fiscalCode", pattern=_CF_PA), qr.text("noticeNumber", pattern=_NAV)


def _read_verify(op: Operation, r: _Reader) -> VerifyPaymentNotice:
    fiscal_code, nav = _qr(r)
    return VerifyPaymentNotice(op, _caller(r), fiscal_code, nav)


def _read_get_payment(op: Operation, r: _Reader) -> GetPayment:
    fiscal_code, nav = _qr(r)
    transfer_type = r.maybe_text("transferType", pattern="POSTAL|PAGOPA")
    return GetPayment(
        op,
        _caller(r),
        fiscal_code,
        nav,
        amount=r.maybe_amount("amount"),
        payment_note=r.maybe_text("paymentNote", maximum=210),
        transfer_type=transfer_type,
        due_date=r.maybe_date("dueDate"),
    )


def _subject(r: _Reader) -> Subject:
    uid = r.child("uniqueIdentifier")
    return Subject(
        type=uid.text("entityUniqueIdentifierType", pattern="F|G"),
        fiscal_code=uid.text("entityUniqueIdentifierValue", maximum=16),
        full_name=r.text("fullName", maximum=70),
        street_name=r.maybe_text("streetName", maximum=70),
        civic_number=r.maybe_text("civicNumber", maximum=16),
        postal_code=r.maybe_text("postalCode", maximum=16),
        city=r.maybe_text("city", maximum=35),
        province=r.maybe_text("stateProvinceRegion", maximum=35),
        country=r.maybe_text("country", pattern="[A-Z]{2}"),
        email=r.maybe_text("e-mail", maximum=256),
    )


def _receipt_transfer(r: _Reader) -> ReceiptTransfer:
    raw_id = r.text("idTransfer", maximum=1, pattern="[1-5]")
    iban = r.maybe_text("IBAN", maximum=35)
    mbd = r.maybe_text("MBDAttachment", maximum=1_000_000)
    if (iban is None) == (mbd is None):
        raise _Missing(f"{r.path}: needs either IBAN or MBDAttachment")
    try:
        amount = amount_to_cents(r.text("transferAmount", maximum=20))
    except ValueError as exc:
        raise _Missing(f"{r.path}/transferAmount: {exc}") from None
    return ReceiptTransfer(
        id_transfer=int(raw_id),
        amount=amount,
        fiscal_code_pa=r.text("fiscalCodePA", pattern=_CF_PA),
        remittance_information=r.text("remittanceInformation", maximum=140),
        category=r.text("transferCategory", maximum=140),
        iban=iban,
        mbd_attachment=mbd,
        company_name=r.maybe_text("companyName", maximum=140),
        metadata=r.metadata(),
    )


def _read_send_rt(op: Operation, r: _Reader) -> SendRT:
    rt = r.child("receipt")
    transfers = tuple(_receipt_transfer(t) for t in rt.child("transferList").children("transfer"))
    if not 1 <= len(transfers) <= 5:
        raise _Missing(f"{rt.path}/transferList: 1 to 5 transfers")
    payer = rt.maybe_child("payer")
    outcome = rt.text("outcome", pattern="OK|KO")
    receipt = Receipt(
        receipt_id=rt.text("receiptId", maximum=255),
        notice_number=rt.text("noticeNumber", pattern=_NAV),
        fiscal_code=rt.text("fiscalCode", pattern=_CF_PA),
        outcome=outcome,
        creditor_reference_id=rt.text("creditorReferenceId", maximum=35),
        payment_amount=rt.amount("paymentAmount"),
        description=rt.text("description", maximum=140),
        company_name=rt.text("companyName", maximum=140),
        office_name=rt.maybe_text("officeName", maximum=140),
        debtor=_subject(rt.child("debtor")),
        transfers=transfers,
        id_psp=rt.text("idPSP", maximum=35),
        psp_fiscal_code=rt.maybe_text("pspFiscalCode", maximum=70),
        psp_partita_iva=rt.maybe_text("pspPartitaIVA", maximum=20),
        psp_company_name=rt.text("PSPCompanyName", maximum=70),
        id_channel=rt.text("idChannel", maximum=35),
        channel_description=rt.text("channelDescription", maximum=35),
        payer=_subject(payer) if payer is not None else None,
        payment_method=rt.maybe_text("paymentMethod", maximum=35),
        payment_note=rt.maybe_text("paymentNote", maximum=210),
        fee=rt.maybe_amount("fee"),
        primary_ci_incurred_fee=rt.maybe_amount("primaryCiIncurredFee"),
        id_bundle=rt.maybe_text("idBundle", maximum=70),
        id_ci_bundle=rt.maybe_text("idCiBundle", maximum=70),
        payment_date_time=rt.maybe_datetime("paymentDateTime"),
        application_date=rt.maybe_date("applicationDate"),
        transfer_date=rt.maybe_date("transferDate"),
        metadata=rt.metadata(),
        stand_in=bool(rt.maybe_bool("standIn")),
    )
    return SendRT(op, _caller(r), receipt)


def _read_demand(op: Operation, r: _Reader) -> DemandPaymentNotice:
    return DemandPaymentNotice(op, _caller(r), r.text("idServizio", maximum=5))


_READERS: dict[Operation, Any] = {
    Operation.VERIFY: _read_verify,
    Operation.GET_PAYMENT: _read_get_payment,
    Operation.GET_PAYMENT_V2: _read_get_payment,
    Operation.SEND_RT: _read_send_rt,
    Operation.SEND_RT_V2: _read_send_rt,
    Operation.DEMAND: _read_demand,
}


# -- responses --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fault:
    code: FaultCode
    description: str | None = None
    #: ``id``: who raised the fault; the EC's fiscal code (the Node adds its own).
    id: str = "sportello"

    @property
    def fault_string(self) -> str:
        return FAULT_STRINGS[self.code]


@dataclass(frozen=True, slots=True)
class VerifyAnswer:
    """The one ``paymentOptionDescription`` of ``paVerifyPaymentNoticeRes``, and its frame."""

    amount: int
    fiscal_code_pa: str
    company_name: str
    payment_description: str
    due_date: date | None = None
    detail_description: str | None = None
    office_name: str | None = None
    #: True when every transfer can be credited to a postal account.
    all_ccp: bool = False
    options: str = "EQ"


@dataclass(frozen=True, slots=True)
class TransferAnswer:
    id_transfer: int
    amount: int
    fiscal_code_pa: str
    remittance_information: str
    category: str
    iban: str | None = None
    #: V2 only: ``(hashDocumento, tipoBollo, provinciaResidenza)`` instead of an IBAN.
    stamp: tuple[str, str, str] | None = None
    company_name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PaymentAnswer:
    """``data`` of ``paGetPayment[V2]Res`` (``ctPaymentPA`` / ``ctPaymentPAV2``)."""

    creditor_reference_id: str
    amount: int
    due_date: date
    description: str
    company_name: str
    debtor: Subject
    transfers: Sequence[TransferAnswer]
    retention_date: datetime | None = None
    office_name: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


def _el(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def _opt(parent: etree._Element, name: str, text: str | None) -> None:
    if text is not None:
        _el(parent, name, text)


def _response(operation: Operation, outcome: str) -> etree._Element:
    root = etree.Element(f"{{{NS}}}{RESPONSE_ELEMENTS[operation]}", nsmap={"pafn": NS})
    _el(root, "outcome", outcome)
    return root


def _metadata(parent: etree._Element, metadata: Mapping[str, str]) -> None:
    if not metadata:
        return
    node = _el(parent, "metadata")
    for key, value in list(metadata.items())[:15]:
        entry = _el(node, "mapEntry")
        _el(entry, "key", key)
        _el(entry, "value", value)


def _subject_xml(parent: etree._Element, name: str, s: Subject) -> None:
    node = _el(parent, name)
    uid = _el(node, "uniqueIdentifier")
    _el(uid, "entityUniqueIdentifierType", s.type)
    _el(uid, "entityUniqueIdentifierValue", s.fiscal_code)
    _el(node, "fullName", s.full_name)
    _opt(node, "streetName", s.street_name)
    _opt(node, "civicNumber", s.civic_number)
    _opt(node, "postalCode", s.postal_code)
    _opt(node, "city", s.city)
    _opt(node, "stateProvinceRegion", s.province)
    _opt(node, "country", s.country)
    _opt(node, "e-mail", s.email)


def ko_element(operation: Operation, fault: Fault) -> etree._Element:
    root = _response(operation, "KO")
    node = _el(root, "fault")
    _el(node, "faultCode", fault.code.value)
    _el(node, "faultString", fault.fault_string)
    _el(node, "id", fault.id)
    _opt(node, "description", fault.description)
    return root


def ko(operation: Operation, fault: Fault) -> bytes:
    """A KO answer carrying ``fault``, in ``operation``'s response element."""
    return envelope(ko_element(operation, fault))


def verify_ok(answer: VerifyAnswer) -> bytes:
    root = _response(Operation.VERIFY, "OK")
    lst = _el(root, "paymentList")
    opt = _el(lst, "paymentOptionDescription")
    _el(opt, "amount", cents_to_amount(answer.amount))
    _el(opt, "options", answer.options)
    _opt(opt, "dueDate", answer.due_date.isoformat() if answer.due_date else None)
    _opt(opt, "detailDescription", answer.detail_description)
    _el(opt, "allCCP", "true" if answer.all_ccp else "false")
    _el(root, "paymentDescription", answer.payment_description)
    _el(root, "fiscalCodePA", answer.fiscal_code_pa)
    _el(root, "companyName", answer.company_name)
    _opt(root, "officeName", answer.office_name)
    return envelope(root)


def get_payment_ok(answer: PaymentAnswer, *, version: int) -> bytes:
    """``paGetPaymentRes`` (version 1) or ``paGetPaymentV2Response`` (version 2)."""
    operation = Operation.GET_PAYMENT_V2 if version == 2 else Operation.GET_PAYMENT
    root = _response(operation, "OK")
    data = _el(root, "data")
    _el(data, "creditorReferenceId", answer.creditor_reference_id)
    _el(data, "paymentAmount", cents_to_amount(answer.amount))
    _el(data, "dueDate", answer.due_date.isoformat())
    if answer.retention_date is not None:
        _el(
            data,
            "retentionDate",
            answer.retention_date.astimezone(ROME)
            .replace(tzinfo=None)
            .isoformat(timespec="seconds"),
        )
    _el(data, "description", answer.description)
    _el(data, "companyName", answer.company_name)
    _opt(data, "officeName", answer.office_name)
    _subject_xml(data, "debtor", answer.debtor)
    lst = _el(data, "transferList")
    for t in answer.transfers:
        node = _el(lst, "transfer")
        _el(node, "idTransfer", str(t.id_transfer))
        _el(node, "transferAmount", cents_to_amount(t.amount))
        _el(node, "fiscalCodePA", t.fiscal_code_pa)
        if version == 2:
            _opt(node, "companyName", t.company_name)
        if t.stamp is not None:
            if version != 2:
                raise StationError(
                    FaultCode.SEMANTICA, "a stamp transfer needs paGetPaymentV2", operation
                )
            stamp = _el(node, "richiestaMarcaDaBollo")
            _el(stamp, "hashDocumento", t.stamp[0])
            _el(stamp, "tipoBollo", t.stamp[1])
            _el(stamp, "provinciaResidenza", t.stamp[2])
        else:
            _el(node, "IBAN", t.iban)
        _el(node, "remittanceInformation", t.remittance_information)
        _el(node, "transferCategory", t.category)
        _metadata(node, t.metadata)
    _metadata(data, answer.metadata)
    return envelope(root)


def send_rt_ok(*, version: int) -> bytes:
    return envelope(_response(Operation.SEND_RT_V2 if version == 2 else Operation.SEND_RT, "OK"))


def soap_fault(message: str) -> bytes:
    """A SOAP 1.1 ``Fault`` (``soapenv:Client``) for a request whose operation is unknown."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP_NS}}}Fault")
    _el(fault, "faultcode", "soapenv:Client")
    _el(fault, "faultstring", message)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


# -- from a debt position ---------------------------------------------------------------


def rome_date(value: datetime) -> date:
    """The calendar date of ``value`` in Italy (due dates are Italian days)."""
    return value.astimezone(ROME).date() if value.tzinfo else value.replace(tzinfo=UTC).date()


def _payment_description(position: DebtPosition, option: PaymentOption) -> str:
    return option.description


def verify_answer(
    position: DebtPosition, option: PaymentOption, *, ec_fiscal_code: str
) -> VerifyAnswer:
    """The verify answer for ``option``: its amount, due date and description."""
    return VerifyAnswer(
        amount=option.amount,
        fiscal_code_pa=ec_fiscal_code,
        company_name=position.company_name,
        office_name=position.office_name,
        payment_description=_payment_description(position, option),
        due_date=rome_date(option.due_date),
        all_ccp=all(t.postal_iban is not None for t in option.transfers),
    )


def debtor_of(position: DebtPosition) -> Subject:
    return Subject(
        type=position.type.value,
        fiscal_code=position.fiscal_code,
        full_name=position.full_name,
        street_name=position.street_name,
        civic_number=position.civic_number,
        postal_code=position.postal_code,
        city=position.city,
        province=position.province or position.region,
        country=position.country,
        email=position.email,
    )


def payment_answer(
    position: DebtPosition, option: PaymentOption, *, transfer_type: str | None, version: int
) -> PaymentAnswer:
    """``data`` for ``option``; ``transfer_type="POSTAL"`` picks the postal IBANs.

    A stamp transfer asked through ``paGetPayment`` (V1, which has no stamp) raises
    :class:`StationError` PAA_SEMANTICA.
    """
    postal = transfer_type == "POSTAL"
    transfers = []
    for t in option.transfers:
        if t.stamp is not None and version != 2:
            raise StationError(
                FaultCode.SEMANTICA,
                "this payment includes a digital stamp: use paGetPaymentV2",
                Operation.GET_PAYMENT,
            )
        iban = (t.postal_iban or t.iban) if postal else t.iban
        transfers.append(
            TransferAnswer(
                id_transfer=t.id_transfer,
                amount=t.amount,
                fiscal_code_pa=t.organization_fiscal_code,
                remittance_information=t.remittance_information,
                category=t.category,
                iban=iban,
                stamp=(t.stamp.hash_document, t.stamp.stamp_type, t.stamp.provincial_residence)
                if t.stamp is not None
                else None,
                company_name=t.company_name,
                metadata=t.metadata,
            )
        )
    return PaymentAnswer(
        creditor_reference_id=option.iuv,
        amount=option.amount,
        due_date=rome_date(option.due_date),
        retention_date=option.retention_date,
        description=option.description,
        company_name=position.company_name,
        office_name=position.office_name,
        debtor=debtor_of(position),
        transfers=sorted(transfers, key=lambda x: x.id_transfer),
        metadata=option.metadata,
    )
