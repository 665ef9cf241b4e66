"""The EC station as the network delivers requests, and who may call it (issue 12, items 1
and 4), over real sockets, on SQLite and PostgreSQL.

Bodies: a request split across TCP writes 300 ms apart, sent chunked, a 268 KB paSendRTV2
with an MBD attachment and a ~922 KB verify are answered as if sent in one piece; a body
declared over the limit gets 413 before it is sent; a chunked one that passes the limit is
refused. Authentication: a per-tenant key in a header and a client certificate verified by
a TLS-terminating proxy; a refused caller gets the operation's KO (PAA_SYSTEM_ERROR) and
no debtor data; keys never reach the logs; the sandbox Node sends the configured key.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from pagopa_node import BROKER, EC, RT, STATION, XSD_DIR, get_payment, outcome, send_rt, verify
from sqlalchemy import func, select

from sportello.app import CLOCK, ENGINE, create_app
from sportello.clock import FakeClock
from sportello.config import HubConfig, parse_config
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.platforms.pagopa.store import PagopaStore
from sportello.platforms.pagopa.tables import receipts
from sportello.sandbox.pagopa.app import create_app as create_sandbox

HAVE_XSD = (XSD_DIR / "paForNode.xsd").is_file()
LIMIT = 1024 * 1024  # [server] max_body_bytes, default
KEY = "k-prova-7a1f0c2e9b4d4c1e8f3a"
OTHER_KEY = "k-altro-5c9e2b7d1a3f4e6b9c0d"
OTHER_EC = "88888888888"
CERT_EC = "66666666666"
IBAN = "IT60X0542811101000000123456"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def _pagopa(ec_cf: str, **extra: Any) -> dict[str, Any]:
    return {
        "ec_fiscal_code": ec_cf,
        "broker_id": ec_cf,
        "station_id": f"{ec_cf}_01",
        "mode": "station",
        **extra,
    }


def _tenant(tenant_id: str, ec_cf: str, pagopa: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": tenant_id,
        "name": f"Comune {tenant_id}",
        "ipa_code": f"c_{tenant_id}",
        "fiscal_code": ec_cf,
        "cadastral_code": "Z999",
        "pagopa": pagopa,
    }


def make_config(db_url: str, fingerprint: str, subject: str) -> HubConfig:
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [
                # "open": no station_auth (the behaviour before, for the body tests)
                _tenant("open", EC, _pagopa(EC) | {"broker_id": BROKER, "station_id": STATION}),
                _tenant(
                    "prova",
                    EC,
                    _pagopa(EC)
                    | {
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "station_auth": {"key": {"env": "T12_PROVA_KEY"}},
                    },
                ),
                _tenant(
                    "altro",
                    OTHER_EC,
                    _pagopa(
                        OTHER_EC,
                        station_auth={
                            "key": {"env": "T12_ALTRO_KEY"},
                            "key_header": "X-Station-Key",
                        },
                    ),
                ),
                _tenant(
                    "cert",
                    CERT_EC,
                    _pagopa(
                        CERT_EC,
                        station_auth={"client_cert": {"fingerprints": [fingerprint]}},
                    ),
                ),
                _tenant(
                    "subject",
                    CERT_EC,
                    _pagopa(
                        CERT_EC,
                        station_auth={
                            "client_cert": {
                                "subjects": [subject],
                                "cert_header": "X-Forwarded-Tls-Client-Cert",
                                "verify_header": None,
                            }
                        },
                    ),
                ),
            ],
        }
    )


def make_cert(cn: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PagoPA S.p.A."),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


NODE_CERT = make_cert("nodo.pagopa.it")
ROGUE_CERT = make_cert("nodo.pagopa.it")  # same subject, other key: not pinned
NODE_FINGERPRINT = NODE_CERT.fingerprint(hashes.SHA256()).hex(":").upper()


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Hub:
    def __init__(self, server: TestServer, app: Any, config: HubConfig) -> None:
        self.server, self.app, self.config = server, app, config
        self.store = PagopaStore(app[ENGINE], config, app[CLOCK])

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    async def nav(self, tenant: str = "open", iupd: str = "T12-1", ec_cf: str = EC) -> str:
        due = datetime.now(UTC) + timedelta(days=30)
        stored = await self.store.create_position(
            tenant,
            {
                "iupd": iupd,
                "type": "F",
                "fiscal_code": "RSSMRA80A01H501U",
                "full_name": "Mario Rossi",
                "company_name": "Comune di Prova",
                "payment_options": [
                    {
                        "amount": 8400,
                        "description": "TARI 2026",
                        "due_date": due,
                        "transfers": [
                            {
                                "id_transfer": 1,
                                "amount": 8400,
                                "organization_fiscal_code": ec_cf,
                                "remittance_information": "TARI 2026",
                                "category": "9/0101101IM/",
                                "iban": IBAN,
                            }
                        ],
                    }
                ],
            },
        )
        return stored.options[0].nav

    async def receipts(self) -> int:
        async with self.app[ENGINE].connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(receipts))).scalar())

    async def raw(
        self,
        parts: list[bytes],
        *,
        tenant: str = "open",
        headers: dict[str, str] | None = None,
        gap: float = 0.3,
        timeout: float = 10,
    ) -> tuple[int, bytes]:
        """Write a request in ``parts`` (``gap`` seconds apart) on a raw socket; the status
        and body of the answer."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = f"POST /t/{tenant}/pagopa/station HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        all_headers = {"Content-Type": "text/xml; charset=utf-8", "Connection": "close"}
        all_headers |= headers or {}
        head += "".join(f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
        try:
            writer.write(head.encode() + parts[0])
            await writer.drain()
            for part in parts[1:]:
                await asyncio.sleep(gap)
                writer.write(part)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the hub may answer and close before it has everything
        async with asyncio.timeout(timeout):  # the answer, by its Content-Length
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            lines = head_bytes.decode("latin-1").split("\r\n")
            fields = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            body = await reader.readexactly(int(fields["content-length"]))
        writer.close()
        return int(lines[0].split()[1]), body

    async def post(
        self, body: bytes, *, tenant: str = "open", headers: dict[str, str] | None = None
    ) -> bytes:
        """One request in one write, Content-Length declared."""
        status, answer = await self.raw(
            [body], tenant=tenant, headers={"Content-Length": str(len(body))} | (headers or {})
        )
        assert status == 200, (status, answer[:300])
        return answer


@pytest.fixture
async def hub(db_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hub]:
    monkeypatch.setenv("T12_PROVA_KEY", KEY)
    monkeypatch.setenv("T12_ALTRO_KEY", OTHER_KEY)
    subject = NODE_CERT.subject.rfc4514_string()
    config = make_config(db_url, NODE_FINGERPRINT, subject)
    app = create_app(config, apply_migrations=True, run_workers=False)
    if HAVE_XSD:
        app[XSD_KEY] = XSD_DIR
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Hub(server, app, config)
    finally:
        await server.close()


def chunked(body: bytes, size: int) -> list[bytes]:
    out = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return [*out, b"0\r\n\r\n"]


def with_mbd(body: bytes, attachment_bytes: int) -> bytes:
    """A paSendRTV2 whose transfer carries an MBD attachment (a stamp's XML) instead of IBAN."""
    root = etree.fromstring(body)
    iban = root.find(".//transfer/IBAN")
    assert iban is not None
    iban.tag = "MBDAttachment"
    iban.text = base64.b64encode(b"<marcaDaBollo/>" * (attachment_bytes // 15)).decode()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def with_header_padding(body: bytes, size: int) -> bytes:
    """The same request, padded to ``size`` bytes with a SOAP header block (tracing data)."""
    root = etree.fromstring(body)
    header = root.find(f"{{{SOAP}}}Header")
    assert header is not None
    trace = etree.SubElement(header, "{urn:example:trace}trace")
    trace.text = "x" * max(0, size - len(body) - 80)
    out = bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return out


# -- item 1: the whole body, however it arrives ---------------------------------------------


async def test_verify_split_across_two_writes_300ms_apart(hub: Hub) -> None:
    body = verify(await hub.nav())
    half = len(body) // 2
    status, answer = await hub.raw(
        [body[:half], body[half:]], headers={"Content-Length": str(len(body))}
    )
    assert status == 200
    assert outcome(answer) == ("OK", None)


async def test_send_rt_v2_split_across_two_writes_is_stored(hub: Hub) -> None:
    nav = await hub.nav()
    body = send_rt(RT("rcpt-split-1", nav, nav[1:], 8400))
    half = len(body) // 2
    status, answer = await hub.raw(
        [body[:half], body[half:]], headers={"Content-Length": str(len(body))}
    )
    assert status == 200
    assert outcome(answer) == ("OK", None)
    assert await hub.receipts() == 1


async def test_verify_and_send_rt_sent_chunked(hub: Hub) -> None:
    nav = await hub.nav()
    for body in (verify(nav), send_rt(RT("rcpt-chunked-1", nav, nav[1:], 8400))):
        status, answer = await hub.raw(
            chunked(body, 100), headers={"Transfer-Encoding": "chunked"}, gap=0.05
        )
        assert status == 200
        assert outcome(answer) == ("OK", None)
    assert await hub.receipts() == 1


async def test_268kb_send_rt_v2_with_mbd_attachment_is_stored(hub: Hub) -> None:
    nav = await hub.nav()
    body = with_mbd(send_rt(RT("rcpt-mbd-1", nav, nav[1:], 8400)), 200_000)
    assert 260_000 < len(body) < 280_000
    assert outcome(await hub.post(body)) == ("OK", None)
    assert await hub.receipts() == 1


async def test_922kb_verify_in_one_write_is_answered(hub: Hub) -> None:
    body = with_header_padding(verify(await hub.nav()), 922 * 1024)
    assert 900 * 1024 < len(body) <= LIMIT
    assert outcome(await hub.post(body)) == ("OK", None)


async def test_body_declared_over_the_limit_is_413_before_it_is_sent(hub: Hub) -> None:
    # only the headers are sent: the answer comes without waiting for the body
    status, answer = await hub.raw(
        [b""],
        headers={"Content-Length": str(LIMIT + 1), "SOAPAction": '"paSendRTV2"'},
        timeout=3,
    )
    assert status == 413
    assert outcome(answer) == ("KO", "PAA_SYSTEM_ERROR")
    assert str(LIMIT).encode() in answer
    status, answer = await hub.raw([b""], headers={"Content-Length": str(LIMIT + 1)}, timeout=3)
    assert status == 413
    fault = etree.fromstring(answer).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None


async def test_chunked_body_over_the_limit_is_refused(hub: Hub) -> None:
    body = with_header_padding(verify(await hub.nav()), LIMIT + 64 * 1024)
    status, answer = await hub.raw(
        chunked(body, 64 * 1024), headers={"Transfer-Encoding": "chunked"}, gap=0
    )
    assert status == 413
    assert b"<outcome>OK" not in answer


async def test_body_exactly_at_the_limit_is_read(hub: Hub) -> None:
    body = with_header_padding(verify(await hub.nav()), LIMIT)
    body = body.replace(b"<soapenv:Header>", b"<soapenv:Header>" + b" " * (LIMIT - len(body)), 1)
    assert len(body) == LIMIT
    assert outcome(await hub.post(body)) == ("OK", None)


# -- item 4: only the Node ------------------------------------------------------------------


async def test_station_key_no_key_wrong_key_other_tenants_key_refused(
    hub: Hub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    nav = await hub.nav("prova", "T12-AUTH")
    request = get_payment(nav, version=2)
    header = "Ocp-Apim-Subscription-Key"
    for headers in (
        {},
        {header: ""},
        {header: "wrong"},
        {header: KEY + "x"},
        {header: OTHER_KEY},  # another tenant's key
        {"X-Station-Key": KEY},  # the right key in another header
    ):
        answer = await hub.post(request, tenant="prova", headers=headers)
        assert outcome(answer) == ("KO", "PAA_SYSTEM_ERROR"), headers
        assert b"Mario Rossi" not in answer and b"RSSMRA80A01H501U" not in answer
    answer = await hub.post(request, tenant="prova", headers={header: KEY})
    assert outcome(answer) == ("OK", None)
    assert b"Mario Rossi" in answer
    # "altro" takes its own key in its own header, not prova's
    other = verify(
        await hub.nav("altro", "T12-ALTRO", OTHER_EC),
        fiscal_code=OTHER_EC,
        id_pa=OTHER_EC,
        broker=OTHER_EC,
        station=f"{OTHER_EC}_01",
    )
    assert outcome(await hub.post(other, tenant="altro", headers={"X-Station-Key": KEY})) == (
        "KO",
        "PAA_SYSTEM_ERROR",
    )
    assert outcome(await hub.post(other, tenant="altro", headers={"X-Station-Key": OTHER_KEY})) == (
        "OK",
        None,
    )
    # a refused receipt is not stored (the Node retries it after PAA_SYSTEM_ERROR)
    rt = send_rt(RT("rcpt-auth-1", nav, nav[1:], 8400))
    assert outcome(await hub.post(rt, tenant="prova")) == ("KO", "PAA_SYSTEM_ERROR")
    assert await hub.receipts() == 0
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    assert "caller refused" in logged
    assert KEY not in logged and OTHER_KEY not in logged


async def test_station_client_certificate_from_the_proxy(hub: Hub) -> None:
    nav = await hub.nav("cert", "T12-CERT", CERT_EC)
    request = verify(
        nav, fiscal_code=CERT_EC, id_pa=CERT_EC, broker=CERT_EC, station=f"{CERT_EC}_01"
    )
    good = quote(pem(NODE_CERT))  # nginx's $ssl_client_escaped_cert
    for headers in (
        {},
        {"X-SSL-Client-Cert": good},  # no verification result from the proxy
        {"X-SSL-Client-Cert": good, "X-Client-Verify": "FAILED:certificate has expired"},
        {"X-SSL-Client-Cert": quote(pem(ROGUE_CERT)), "X-Client-Verify": "SUCCESS"},
        {"X-SSL-Client-Cert": "garbage!", "X-Client-Verify": "SUCCESS"},
        {"X-Client-Verify": "SUCCESS"},
    ):
        answer = await hub.post(request, tenant="cert", headers=headers)
        assert outcome(answer) == ("KO", "PAA_SYSTEM_ERROR"), headers
    answer = await hub.post(
        request, tenant="cert", headers={"X-SSL-Client-Cert": good, "X-Client-Verify": "SUCCESS"}
    )
    assert outcome(answer) == ("OK", None)
    # by subject, the certificate as base64 DER (Traefik's header), no verify header
    der = base64.b64encode(NODE_CERT.public_bytes(serialization.Encoding.DER)).decode()
    other = await hub.nav("subject", "T12-SUBJ", CERT_EC)
    request = verify(
        other, fiscal_code=CERT_EC, id_pa=CERT_EC, broker=CERT_EC, station=f"{CERT_EC}_01"
    )
    ok = await hub.post(request, tenant="subject", headers={"X-Forwarded-Tls-Client-Cert": der})
    assert outcome(ok) == ("OK", None)
    stranger = make_cert("someone.example.it")
    der = base64.b64encode(stranger.public_bytes(serialization.Encoding.DER)).decode()
    no = await hub.post(request, tenant="subject", headers={"X-Forwarded-Tls-Client-Cert": der})
    assert outcome(no) == ("KO", "PAA_SYSTEM_ERROR")


def test_station_auth_settings_refuse_what_cannot_work() -> None:
    from sportello.config import ConfigError

    base = {"ec_fiscal_code": EC, "broker_id": EC, "station_id": STATION, "mode": "station"}
    for auth in (
        {},
        {"key": "inline-secret"},
        {"previous_key": {"env": "X"}},
        {"client_cert": {}},
        {"client_cert": {"fingerprints": ["abc"]}},
        {"key": {"env": "X"}, "key_header": "Bad Header:"},
    ):
        with pytest.raises(ConfigError):
            parse_config({"tenants": [_tenant("t", EC, base | {"station_auth": auth})]})


async def test_sandbox_node_sends_the_station_key(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's wiring: the sandbox Node, registered with the tenant's key, pays."""
    from sportello.platforms.pagopa.demo import register_demo_station

    sandbox = TestServer(
        create_sandbox(processing_delay=0, clock=FakeClock(datetime.now(UTC)), xsd_dir=XSD_DIR),
        host="127.0.0.1",
    )
    await sandbox.start_server()
    try:
        nav = await hub.nav("prova", "T12-DEMO")
        demo = _pagopa(EC) | {
            "broker_id": BROKER,
            "station_id": STATION,
            "checkout_url": str(sandbox.make_url("/checkout/ec/v1")),
            "station_auth": {"key": {"env": "T12_PROVA_KEY"}},
        }
        config = parse_config({"tenants": [_tenant("demo", EC, demo)]})
        hub_url = str(hub.server.make_url("")).rstrip("/")
        # the demo tenant is "demo": route it to prova's station for this test
        await register_demo_station(config, hub_url)
        async with aiohttp.ClientSession() as session:
            async with session.get(sandbox.make_url("/__sandbox/stations")) as resp:
                stations = await resp.json()
            assert stations[EC]["headers"] == ["Ocp-Apim-Subscription-Key"]  # names only
            assert KEY not in str(stations)
            stations[EC]["url"] = str(hub.server.make_url("/t/prova/pagopa/station"))
            stations[EC]["headers"] = {"Ocp-Apim-Subscription-Key": KEY}
            async with session.post(sandbox.make_url("/__sandbox/stations"), json=stations):
                pass
            async with session.post(
                sandbox.make_url("/psp/pay"), json={"fiscalCode": EC, "noticeNumber": nav}
            ) as resp:
                result = await resp.json()
            assert result["outcome"] == "OK", result
            assert await hub.receipts() == 1
            # without the key the Node is refused
            stations[EC]["headers"] = {}
            async with session.post(sandbox.make_url("/__sandbox/stations"), json=stations):
                pass
            other = await hub.nav("prova", "T12-DEMO-2")
            async with session.post(
                sandbox.make_url("/psp/pay"), json={"fiscalCode": EC, "noticeNumber": other}
            ) as resp:
                result = await resp.json()
            assert result["outcome"] == "KO"
            assert "PAA_SYSTEM_ERROR" in str(result)
    finally:
        await sandbox.close()
