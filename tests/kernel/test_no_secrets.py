"""No secret appears in a log line or in an API answer.

A hub whose tenant holds every kind of secret (App IO keys, a PDND private key, a webhook
secret, the pagoPA API keys as environment SecretRefs with random values; SPID keys in a
keys_dir) serves the API, SAML metadata, a SPID login, an App IO campaign (status followed,
signed webhooks sent) and a pagoPA debt position (sent to the GPD sandbox with the API key).
Every log record, at DEBUG and from every logger, is rendered plainly and through the hub's
JSON formatter; every response body is kept. None may hold a secret value, the API key's
secret part, or any line of a PEM private key's body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from factories import free_port

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import parse_config
from sportello.connectors.spid.keys import make_sp_certificate
from sportello.logs import JsonFormatter
from sportello.platforms.login.keys import write_keys
from sportello.sandbox.idp.app import create_app as idp_sandbox
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES
from sportello.sandbox.idp.keys import FEDERATION_CERT_PEM
from sportello.sandbox.io.app import DEMO_SERVICE_ID, SandboxService
from sportello.sandbox.io.app import create_app as io_sandbox
from sportello.sandbox.io.population import default_population
from sportello.sandbox.pagopa.app import create_app as pagopa_sandbox
from sportello.sandbox.pagopa.gpd_app import GPD_PREFIX

EC = "00000000999"
PERSON = DEFAULT_IDENTITIES[0].code
IBAN = "IT60X0542811101000000123456"


def _secret(name: str) -> str:
    """A recognizable random value: nothing else in the run can contain it by chance."""
    return f"{name}-{secrets.token_hex(16)}"


def _pem_lines(pem: bytes | str) -> list[str]:
    """The body lines of a PEM block (base64), each one long enough to be unmistakable."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    return [ln for ln in text.splitlines() if ln and not ln.startswith("-----") and len(ln) > 20]


@dataclass
class Hub:
    url: str
    idp: str
    api_key: str
    secrets: dict[str, str]
    pem_lines: list[str]
    bodies: list[str] = field(default_factory=list)


@pytest.fixture
async def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sink: Any) -> AsyncIterator[Hub]:
    values = {
        "io_key": _secret("iokey"),
        "io_secondary": _secret("iokey2"),
        "webhook": _secret("whsec"),
        "gpd": _secret("gpdkey"),
        "fdr": _secret("fdrkey"),
        "checkout": _secret("ckkey"),
    }
    for name, value in values.items():
        monkeypatch.setenv(f"NOSECRET_{name.upper()}", value)
    pdnd_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    monkeypatch.setenv("NOSECRET_PDND", pdnd_pem)

    idp_server = TestServer(idp_sandbox(), host="127.0.0.1")
    service = SandboxService(
        DEMO_SERVICE_ID, "Tributi", values["io_key"], values["io_secondary"], permissions=set()
    )
    io_server = TestServer(
        io_sandbox(services=[service], population=default_population(), rate_limit=0),
        host="127.0.0.1",
    )
    pagopa_server = TestServer(
        pagopa_sandbox(
            processing_delay=0,
            api_key=values["gpd"],
            fdr_api_key=values["fdr"],
            checkout_api_key=values["checkout"],
        ),
        host="127.0.0.1",
    )
    for server in (idp_server, io_server, pagopa_server):
        await server.start_server()
    idp = str(idp_server.make_url("")).rstrip("/")
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    keys_dir = tmp_path / "keys" / "spid"
    sp_key, sp_cert = make_sp_certificate(
        entity_id=f"{url}/t/comune/spid/metadata",
        organization_name="Comune di Prova",
        common_name="Comune di Prova",
        locality="Z999",
        ipa_code="c_z999",
        key_size=2048,
    )
    write_keys(keys_dir, sp_key, sp_cert, rotate=False)
    pagopa_url = str(pagopa_server.make_url("")).rstrip("/")
    tenant = {
        "id": "comune",
        "name": "Comune di Prova",
        "ipa_code": "c_z999",
        "fiscal_code": EC,
        "cadastral_code": "Z999",
        "spid": {
            "keys_dir": str(keys_dir),
            "contact_email": "protocollo@comune.prova.it",
            "contact_phone": "+390612345678",
            "idp_metadata": [f"{idp}/spid/metadata"],
            "return_urls": ["https://app.comune.example/callback"],
            "level": 2,
            "province": "RM",
        },
        "io": {
            "base_url": str(io_server.make_url("/api/v1")),
            "services": [
                {
                    "id": DEMO_SERVICE_ID,
                    "key": {"env": "NOSECRET_IO_KEY"},
                    "secondary_key": {"env": "NOSECRET_IO_SECONDARY"},
                }
            ],
            "status_poll_delay": 0.2,
        },
        "pdnd": {
            "client_id": "client-comune",
            "key": {"env": "NOSECRET_PDND"},
            "token_url": "http://127.0.0.1:9/token.oauth2",
            "purposes": {"C030": "purpose-1"},
        },
        "pagopa": {
            "ec_fiscal_code": EC,
            "broker_id": EC,
            "station_id": f"{EC}_01",
            "mode": "gpd",
            "base_url": pagopa_url + GPD_PREFIX,
            "api_key": {"env": "NOSECRET_GPD"},
            "fdr_api_key": {"env": "NOSECRET_FDR"},
            "checkout_url": pagopa_url + "/checkout/ec/v1",
            "checkout_api_key": {"env": "NOSECRET_CHECKOUT"},
        },
        "webhooks": [{"url": sink.url, "secret": {"env": "NOSECRET_WEBHOOK"}, "events": ["*"]}],
    }
    config = parse_config(
        {
            "server": {"public_url": url},
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'hub.sqlite'}"},
            "outbox": {"poll_interval": 0.02, "backoff_base": 0.05},
            "idps": {"signing_certs": [FEDERATION_CERT_PEM.decode()]},
            "tenants": [tenant],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with app[ENGINE].begin() as conn:
        key = await apikeys.create(
            conn,
            tenant_id="comune",
            name="gestionale",
            scopes=["read", "write", "personal_data"],
            now=app[CLOCK].now(),
        )
    pem = _pem_lines(sp_key) + _pem_lines(pdnd_pem)
    try:
        yield Hub(url, idp, key, values, pem)
    finally:
        await server.close()
        for server in (idp_server, io_server, pagopa_server):
            await server.close()


async def _call(
    hub: Hub, session: aiohttp.ClientSession, method: str, path: str, **kw: Any
) -> tuple[int, str]:
    kw.setdefault("allow_redirects", False)
    async with session.request(method, yarl.URL(hub.url + path, encoded=True), **kw) as resp:
        text = await resp.text(errors="replace")
        hub.bodies.append(f"{method} {path} -> {resp.status}\n{dict(resp.headers)}\n{text}")
        return resp.status, text


async def _spid_login(hub: Hub, browser: aiohttp.ClientSession) -> None:
    status, _ = await _call(
        hub, browser, "GET", f"/t/comune/spid/login?idp={hub.idp}/spid", allow_redirects=False
    )
    assert status == 302
    location = hub.bodies[-1].split("'Location': '", 1)[1].split("'", 1)[0]
    async with browser.get(yarl.URL(location, encoded=True)) as page:
        assert page.status == 200
        txn = page.headers["X-Sandbox-Txn"]
    data = {"txn": txn, "format": "json", "identity": PERSON}
    async with browser.post(f"{hub.idp}/spid/sso/answer", data=data) as resp:
        answer = await resp.json()
    form = {"SAMLResponse": answer["SAMLResponse"], "RelayState": answer["RelayState"]}
    async with browser.post(answer["acs_url"], data=form, allow_redirects=True) as resp:
        hub.bodies.append(await resp.text())
        assert resp.status == 200


async def _settled(hub: Hub, session: aiohttp.ClientSession, auth: dict[str, str]) -> None:
    """Wait until the outbox has nothing left to do (or 20 seconds)."""
    async with asyncio.timeout(20):
        while True:
            status, text = await _call(
                hub, session, "GET", "/api/v1/tenants/comune/outbox", headers=auth
            )
            assert status == 200, text
            if '"pending"' not in text and '"in_flight"' not in text and '"running"' not in text:
                return
            await asyncio.sleep(0.1)


async def test_no_secret_in_logs_or_answers(
    hub: Hub, caplog: pytest.LogCaptureFixture, sink: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    auth = {"Authorization": f"Bearer {hub.api_key}"}
    _, key_id, key_secret = hub.api_key.split("_", 2)
    wrong = {"Authorization": f"Bearer sk_{key_id}_{secrets.token_hex(16)}"}
    due = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
    position = {
        "iupd": "NOSECRET-1",
        "type": "F",
        "fiscal_code": PERSON,
        "full_name": "Mario Collaudo",
        "payment_options": [
            {
                "amount": 8400,
                "description": "TARI 2026",
                "due_date": due,
                "transfers": [
                    {
                        "id_transfer": 1,
                        "amount": 8400,
                        "remittance_information": "TARI 2026",
                        "category": "9/0101101IM/",
                        "iban": IBAN,
                    }
                ],
            }
        ],
    }
    campaign = {
        "service_id": DEMO_SERVICE_ID,
        "name": "Promemoria",
        "subject": "Promemoria dal Comune di Prova",
        "markdown": "Gentile cittadino, il Comune di Prova le ricorda una scadenza. " * 2,
        "csv": f"fiscal_code;expedition_date;due_date;notice_number;amount\n{PERSON};;;;\n",
    }
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for path in (
            "/api/v1/openapi.json",
            "/api/v1/tenants",
            "/api/v1/tenants/comune",
            "/api/v1/tenants/comune/outbox",
            "/api/v1/tenants/comune/audit",
        ):
            status, text = await _call(hub, session, "GET", path, headers=auth)
            assert status == 200, f"{path}: {text}"
            await _call(hub, session, "GET", path, headers=wrong)
        await _call(hub, session, "GET", "/t/comune/spid/metadata")
        await _spid_login(hub, session)
        status, text = await _call(
            hub,
            session,
            "POST",
            "/api/v1/tenants/comune/io/campaigns",
            json=campaign,
            headers={**auth, "Idempotency-Key": "nosecret-campaign"},
        )
        assert status == 201, text
        status, text = await _call(
            hub,
            session,
            "POST",
            "/api/v1/tenants/comune/pagopa/positions",
            json=position,
            headers={**auth, "Idempotency-Key": "nosecret-position"},
        )
        assert status in (200, 201), text
        await _settled(hub, session, auth)
        await _call(hub, session, "GET", "/api/v1/tenants/comune/audit", headers=auth)
        status, text = await _call(
            hub, session, "GET", "/api/v1/tenants/comune/outbox", headers=auth
        )
        jobs = {(job["kind"], job["status"]) for job in json.loads(text)["items"]}
        # the IO key, the GPD key and the webhook secret were all used, and accepted
        assert {("io.messages", "done"), ("pagopa.gpd.create", "done")} <= jobs, jobs
        assert ("webhook", "done") in jobs, jobs
        await _call(
            hub, session, "GET", "/api/v1/tenants/comune/pagopa/positions/NOSECRET-1", headers=auth
        )

    assert all(r["signature"] for r in sink.received)
    formatter = JsonFormatter()
    logged = []
    for record in caplog.records:
        logged.append(record.getMessage())
        logged.append(formatter.format(record))
        if record.exc_info:
            logged.append(logging.Formatter().formatException(record.exc_info))
    text_logged = "\n".join(logged)
    text_answers = "\n".join(hub.bodies)
    assert len(hub.bodies) > 15
    assert any(r.name.startswith("sportello.") for r in caplog.records), "hub logs are captured"
    forbidden = {**hub.secrets, "api key secret": key_secret}
    forbidden |= {f"PEM line {i}": line for i, line in enumerate(hub.pem_lines)}
    for what, value in forbidden.items():
        assert value not in text_logged, f"{what} appears in a log line"
        assert value not in text_answers, f"{what} appears in an API answer"
