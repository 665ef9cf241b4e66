"""The paForNode codec: requests parsed and checked (with and without the XSD), every answer
and every fault valid against paForNode.xsd, hostile or malformed input refused."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pagopa_node import EC, RT, get_payment, payload_of, send_rt, verify

from sportello.connectors.pagopa import station as st
from sportello.connectors.pagopa import station_xml as sx
from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.connectors.pagopa.models import DebtPosition

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
XSD_DIR = SPECS / "pagopa" / "wsdl" / "xsd"
needs_xsd = pytest.mark.skipif(
    not (XSD_DIR / "paForNode.xsd").is_file(), reason="pagoPA specs not available"
)
IUV = iuv_for(1, segregation_code="01")
NAV = "3" + IUV
HASH = "dGhpcyBpcyBhIHNoYS0yNTYgZGlnZXN0IG9mIGEgZG9j"


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    if not (XSD_DIR / "paForNode.xsd").is_file():
        pytest.skip("pagoPA specs not available")
    return sx.load_schema(XSD_DIR)


def check(schema: etree.XMLSchema, response: bytes) -> etree._Element:
    payload = payload_of(response)
    assert schema.validate(payload), schema.error_log
    return payload


def position(**transfer: Any) -> DebtPosition:
    t1 = {
        "id_transfer": 1,
        "amount": 1000,
        "organization_fiscal_code": EC,
        "remittance_information": "Diritti",
        "category": "9/0101101IM/",
        "iban": "IT60X0542811101000000123456",
        "metadata": {"capitolo": "1234"},
    }
    t1.update(transfer)
    return DebtPosition.model_validate(
        {
            "iupd": "X-1",
            "type": "F",
            "fiscal_code": "RSSMRA80A01H501U",
            "full_name": "Mario Rossi",
            "city": "Roma",
            "country": "IT",
            "email": "mario@example.org",
            "company_name": "Comune di Prova",
            "office_name": "Ufficio Tributi",
            "payment_options": [
                {
                    "iuv": IUV,
                    "amount": 1000,
                    "description": "Diritti di segreteria",
                    "due_date": datetime(2026, 3, 31, 21, 59, tzinfo=UTC),
                    "retention_date": datetime(2026, 12, 31, tzinfo=UTC),
                    "transfers": [t1],
                    "metadata": {"anno": "2026"},
                }
            ],
        }
    )


# -- requests ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_schema", [True, False])
def test_every_request_is_parsed(with_schema: bool, request: pytest.FixtureRequest) -> None:
    schema = request.getfixturevalue("schema") if with_schema else None
    v = st.parse_request(verify(NAV), soap_action="paVerifyPaymentNotice", schema=schema)
    assert isinstance(v, st.VerifyPaymentNotice) and v.notice_number == NAV
    assert v.caller == st.Caller(EC, EC, "77777777777_01")
    g = st.parse_request(get_payment(NAV, amount=1000, transfer_type="POSTAL"), schema=schema)
    assert isinstance(g, st.GetPayment) and g.version == 1 and g.amount == 1000
    assert g.transfer_type == "POSTAL"
    g2 = st.parse_request(get_payment(NAV, version=2), soap_action='"paGetPaymentV2"')
    assert isinstance(g2, st.GetPayment) and g2.version == 2
    for version in (1, 2):
        rt = RT("r-1", NAV, IUV, 1234, stand_in=True)
        s = st.parse_request(send_rt(rt, version=version), schema=schema)
        assert isinstance(s, st.SendRT) and s.version == version
        receipt = s.receipt
        assert receipt.receipt_id == "r-1" and receipt.payment_amount == 1234
        assert receipt.stand_in and receipt.fee == 100
        assert receipt.primary_ci_incurred_fee == (20 if version == 2 else None)
        assert receipt.payment_date_time is not None
        assert receipt.payment_date_time.utcoffset() == timedelta(hours=1)  # Rome, March
        assert receipt.transfers[0].iban == "IT60X0542811101000000123456"
        data = receipt.to_json()
        assert data["payment_date_time"].startswith("2026-03-10T10:11:12")
        assert "RSSMRA80A01H501U" not in repr(receipt)  # personal data out of repr
    plain = st.parse_request(send_rt(RT("r-2", NAV, IUV, 1)))
    assert isinstance(plain, st.SendRT) and not plain.receipt.stand_in


def test_demand_payment_notice_is_recognised() -> None:
    ns, soap = sx.NS, sx.SOAP_NS
    body = (
        f'<s:Envelope xmlns:s="{soap}"><s:Body><p:paDemandPaymentNoticeRequest xmlns:p="{ns}">'
        f"<idPA>{EC}</idPA><idBrokerPA>{EC}</idBrokerPA><idStation>{EC}_01</idStation>"
        "<idServizio>00001</idServizio><idSoggettoServizio>00001</idSoggettoServizio>"
        "<datiSpecificiServizioRequest>AAAA</datiSpecificiServizioRequest>"
        "</p:paDemandPaymentNoticeRequest></s:Body></s:Envelope>"
    ).encode()
    parsed = st.parse_request(body)
    assert isinstance(parsed, st.DemandPaymentNotice) and parsed.id_service == "00001"


# -- answers ----------------------------------------------------------------------------


@needs_xsd
def test_every_answer_validates(schema: etree.XMLSchema) -> None:
    pos = position(postal_iban=None)
    option = pos.payment_options[0]
    verify_answer = st.verify_answer(pos, option, ec_fiscal_code=EC)
    p = check(schema, st.verify_ok(verify_answer))
    assert p.findtext("paymentList/paymentOptionDescription/dueDate") == "2026-03-31"
    assert p.findtext("paymentList/paymentOptionDescription/amount") == "10.00"
    for version in (1, 2):
        answer = st.payment_answer(pos, option, transfer_type=None, version=version)
        p = check(schema, st.get_payment_ok(answer, version=version))
        assert p.findtext("data/metadata/mapEntry/key") == "anno"
        assert p.findtext("data/transferList/transfer/metadata/mapEntry/value") == "1234"
        assert p.findtext("data/retentionDate") == "2026-12-31T01:00:00"
        check(schema, st.send_rt_ok(version=version))


@needs_xsd
def test_a_stamp_goes_out_only_through_v2(schema: etree.XMLSchema) -> None:
    pos = position(
        iban=None,
        stamp={"hash_document": HASH, "provincial_residence": "RM"},
        metadata={},
    )
    option = pos.payment_options[0]
    answer = st.payment_answer(pos, option, transfer_type=None, version=2)
    p = check(schema, st.get_payment_ok(answer, version=2))
    assert p.findtext("data/transferList/transfer/richiestaMarcaDaBollo/tipoBollo") == "01"
    with pytest.raises(st.StationError) as exc:
        st.payment_answer(pos, option, transfer_type=None, version=1)
    assert exc.value.code is st.FaultCode.SEMANTICA


def test_postal_transfer_type_picks_the_postal_iban() -> None:
    bban = "X0760103200000012345678"
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    postal = f"IT{98 - int(digits) % 97:02d}{bban}"
    pos = position(postal_iban=postal)
    option = pos.payment_options[0]
    postal_answer = st.payment_answer(pos, option, transfer_type="POSTAL", version=2)
    bank_answer = st.payment_answer(pos, option, transfer_type="PAGOPA", version=2)
    assert postal_answer.transfers[0].iban == postal
    assert bank_answer.transfers[0].iban == "IT60X0542811101000000123456"
    assert st.verify_answer(pos, option, ec_fiscal_code=EC).all_ccp


@needs_xsd
@pytest.mark.parametrize("code", list(st.FaultCode))
@pytest.mark.parametrize("operation", list(st.Operation))
def test_every_fault_validates(
    schema: etree.XMLSchema, operation: st.Operation, code: st.FaultCode
) -> None:
    p = check(schema, st.ko(operation, st.Fault(code, "why", EC)))
    assert p.findtext("outcome") == "KO"
    assert p.findtext("fault/faultCode") == code.value
    assert p.findtext("fault/faultString") == st.FAULT_STRINGS[code]
    assert p.findtext("fault/id") == EC


def test_amounts() -> None:
    assert sx.amount_to_cents("0.01") == 1 and sx.amount_to_cents("1234.50") == 123450
    assert sx.cents_to_amount(5) == "0.05" and sx.cents_to_amount(123450) == "1234.50"
    for bad in ("1", "1.5", "1,50", "-1.00", "1e3", "1000000000.00"):
        with pytest.raises(ValueError):
            sx.amount_to_cents(bad)


# -- malformed and hostile input --------------------------------------------------------

LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<lolz>&lol2;</lolz>"""
XXE = b"""<?xml version="1.0"?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<foo>&xxe;</foo>"""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (LAUGHS, "DOCTYPE"),
        (XXE, "DOCTYPE"),
        (b"not xml at all", "well-formed"),
        (b"<a><b></a>", "well-formed"),
        (b"<x/>", "Envelope"),
        (b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'/>", "Body"),
        (
            b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
            b"<a/><b/></s:Body></s:Envelope>",
            "exactly one element",
        ),
        (
            b"<s:Envelope xmlns:s='http://schemas.xmlsoap.org/soap/envelope/'><s:Body>"
            b"<paVerifyPaymentNoticeReq/></s:Body></s:Envelope>",
            "unknown request element",
        ),
    ],
)
def test_malformed_requests_are_syntax_faults(data: bytes, reason: str) -> None:
    with pytest.raises(st.StationError) as exc:
        st.parse_request(data, soap_action="paVerifyPaymentNotice")
    assert exc.value.code is st.FaultCode.SINTASSI_XSD
    assert reason in exc.value.description
    assert exc.value.operation is st.Operation.VERIFY  # answered in the hinted operation


def test_oversized_request_is_refused() -> None:
    with pytest.raises(st.StationError) as exc:
        st.parse_request(verify(NAV) + b" " * 100, max_bytes=100)
    assert "larger" in exc.value.description


def test_soap_action_must_match_the_body() -> None:
    with pytest.raises(st.StationError) as exc:
        st.parse_request(verify(NAV), soap_action="paSendRT")
    assert exc.value.operation is st.Operation.VERIFY


@pytest.mark.parametrize("with_schema", [True, False])
@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<idStation>77777777777_01</idStation>", b""),
        (NAV.encode(), b"30100000000000001X"),
        (b"<paymentAmount>12.34</paymentAmount>", b"<paymentAmount>12.3</paymentAmount>"),
        (b"<outcome>OK</outcome>", b"<outcome>MAYBE</outcome>"),
        (b"<idTransfer>1</idTransfer>", b"<idTransfer>7</idTransfer>"),
    ],
)
def test_invalid_fields_are_syntax_faults(
    with_schema: bool, old: bytes, new: bytes, request: pytest.FixtureRequest
) -> None:
    schema = request.getfixturevalue("schema") if with_schema else None
    body = send_rt(RT("r", NAV, IUV, 1234))
    assert old in body
    with pytest.raises(st.StationError) as exc:
        st.parse_request(body.replace(old, new, 1), schema=schema)
    assert exc.value.code is st.FaultCode.SINTASSI_XSD
    assert exc.value.operation is st.Operation.SEND_RT_V2


def test_soap_fault_for_unknown_operations() -> None:
    root = etree.fromstring(st.soap_fault("no operation"))
    assert root.findtext(f".//{{{sx.SOAP_NS}}}Fault/faultcode") == "soapenv:Client"


def test_missing_xsd_warns_once(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    with caplog.at_level(logging.WARNING, logger="sportello.pagopa.station"):
        assert sx.schema_for(tmp_path / "nowhere") is None
        assert sx.schema_for(tmp_path / "nowhere") is None
    assert len([r for r in caplog.records if "XSD validation off" in r.message]) == 1


def test_rome_date_of_due_dates() -> None:
    assert st.rome_date(datetime(2026, 3, 31, 22, 30, tzinfo=UTC)) == date(2026, 4, 1)
