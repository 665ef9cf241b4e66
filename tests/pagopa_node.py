"""The Node's side of ``paForNode`` for tests: builds the SOAP requests a station receives.

Written from the XSD (element names and order of ``paForNode.xsd``), independent of the
hub's codec, so a test checks the codec against a second reading of the spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
XSD_DIR = SPECS / "pagopa" / "wsdl" / "xsd"

EC = "77777777777"
BROKER = "77777777777"
STATION = "77777777777_01"


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, name)
    if text is not None:
        el.text = text
    return el


def _envelope(payload: etree._Element) -> bytes:
    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP, "pafn": NS})
    etree.SubElement(env, f"{{{SOAP}}}Header")
    etree.SubElement(env, f"{{{SOAP}}}Body").append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _head(element: str, id_pa: str, broker: str, station: str) -> etree._Element:
    root = etree.Element(f"{{{NS}}}{element}", nsmap={"pafn": NS})
    _sub(root, "idPA", id_pa)
    _sub(root, "idBrokerPA", broker)
    _sub(root, "idStation", station)
    return root


def euro(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def verify(
    nav: str,
    *,
    fiscal_code: str = EC,
    id_pa: str = EC,
    broker: str = BROKER,
    station: str = STATION,
) -> bytes:
    root = _head("paVerifyPaymentNoticeReq", id_pa, broker, station)
    qr = _sub(root, "qrCode")
    _sub(qr, "fiscalCode", fiscal_code)
    _sub(qr, "noticeNumber", nav)
    return _envelope(root)


def get_payment(
    nav: str,
    *,
    version: int = 1,
    transfer_type: str | None = None,
    amount: int | None = None,
    id_pa: str = EC,
    broker: str = BROKER,
    station: str = STATION,
    fiscal_code: str = EC,
) -> bytes:
    element = "paGetPaymentV2Request" if version == 2 else "paGetPaymentReq"
    root = _head(element, id_pa, broker, station)
    qr = _sub(root, "qrCode")
    _sub(qr, "fiscalCode", fiscal_code)
    _sub(qr, "noticeNumber", nav)
    if amount is not None:
        _sub(root, "amount", euro(amount))
    if transfer_type is not None:
        _sub(root, "transferType", transfer_type)
    return _envelope(root)


@dataclass
class RT:
    """A receipt as the Node sends it (amounts in cents)."""

    receipt_id: str
    nav: str
    iuv: str
    amount: int
    transfers: Sequence[tuple[int, str, str]] = ()  # (amount, fiscal code PA, IBAN)
    outcome: str = "OK"
    stand_in: bool | None = None
    fiscal_code: str = EC
    debtor_cf: str = "RSSMRA80A01H501U"
    payment_date_time: str = "2026-03-10T10:11:12"
    extra: dict[str, str] = field(default_factory=dict)


def send_rt(
    rt: RT, *, version: int = 2, id_pa: str = EC, broker: str = BROKER, station: str = STATION
) -> bytes:
    element = "paSendRTV2Request" if version == 2 else "paSendRTReq"
    root = _head(element, id_pa, broker, station)
    r = _sub(root, "receipt")
    _sub(r, "receiptId", rt.receipt_id)
    _sub(r, "noticeNumber", rt.nav)
    _sub(r, "fiscalCode", rt.fiscal_code)
    _sub(r, "outcome", rt.outcome)
    _sub(r, "creditorReferenceId", rt.iuv)
    _sub(r, "paymentAmount", euro(rt.amount))
    _sub(r, "description", "TARI 2026")
    _sub(r, "companyName", "Comune di Prova")
    debtor = _sub(r, "debtor")
    uid = _sub(debtor, "uniqueIdentifier")
    _sub(uid, "entityUniqueIdentifierType", "F")
    _sub(uid, "entityUniqueIdentifierValue", rt.debtor_cf)
    _sub(debtor, "fullName", "Mario Rossi")
    tl = _sub(r, "transferList")
    transfers = rt.transfers or [(rt.amount, rt.fiscal_code, "IT60X0542811101000000123456")]
    for i, (amount, cf, iban) in enumerate(transfers, start=1):
        t = _sub(tl, "transfer")
        _sub(t, "idTransfer", str(i))
        _sub(t, "transferAmount", euro(amount))
        _sub(t, "fiscalCodePA", cf)
        _sub(t, "IBAN", iban)
        _sub(t, "remittanceInformation", "TARI")
        _sub(t, "transferCategory", "9/0101101IM/")
    _sub(r, "idPSP", "BCITITMM")
    _sub(r, "PSPCompanyName", "Banca di Prova")
    _sub(r, "idChannel", "BCITITMM_01")
    _sub(r, "channelDescription", "app")
    _sub(r, "paymentMethod", "creditCard")
    _sub(r, "fee", "1.00")
    if version == 2:
        _sub(r, "primaryCiIncurredFee", "0.20")
    _sub(r, "paymentDateTime", rt.payment_date_time)
    if rt.stand_in is not None:
        _sub(r, "standIn", "true" if rt.stand_in else "false")
    return _envelope(root)


def payload_of(response: bytes) -> etree._Element:
    """The element inside the SOAP Body of an answer."""
    env = etree.fromstring(response)
    body = env.find(f"{{{SOAP}}}Body")
    assert body is not None
    return body[0]


def outcome(response: bytes) -> tuple[str, str | None]:
    """(outcome, faultCode or None) of an answer."""
    payload = payload_of(response)
    code = payload.findtext("fault/faultCode")
    return str(payload.findtext("outcome")), code
