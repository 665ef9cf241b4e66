"""One App IO message through the API, and the pagoPA link: a message naming a notice of a
position the hub keeps carries its payment data by itself (amount, due date), checked against
the debtor and the position's state. Campaigns are listed; a message's status is read (the
recipient only with personal_data, audited)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pagopa_api import BROKER, CF, EC, STATION, position
from sqlalchemy import select

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.clock import SystemClock
from sportello.config import parse_config
from sportello.platforms.io.tables import io_messages
from sportello.platforms.pagopa.store import PagopaStore
from sportello.schema import audit_log

SERVICE = "01TESTSERVICE000000000000A"
BASE = "/api/v1/tenants/demo/io"


@pytest.fixture
async def env(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[TestClient[Any, Any], dict[str, str], str]]:
    monkeypatch.setenv("TEST_IO_KEY", "k" * 32)
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [
                {
                    "id": "demo",
                    "name": "Comune di Esempio",
                    "ipa_code": "c_z999",
                    "fiscal_code": EC,
                    "cadastral_code": "Z999",
                    "io": {
                        "base_url": "http://127.0.0.1:9/api/v1",
                        "services": [{"id": SERVICE, "key": {"env": "TEST_IO_KEY"}}],
                    },
                    "pagopa": {
                        "ec_fiscal_code": EC,
                        "broker_id": BROKER,
                        "station_id": STATION,
                        "mode": "station",
                    },
                }
            ],
        }
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        keys = {}
        async with app[ENGINE].begin() as conn:
            for name, scopes in (("writer", ["read", "write"]), ("pd", ["read", "personal_data"])):
                keys[name] = await apikeys.create(
                    conn, tenant_id="demo", name=name, scopes=scopes, now=app[CLOCK].now()
                )
        body = position("TARI-IO-1", company_name="Comune di Esempio")
        for option in body["payment_options"]:
            for transfer in option["transfers"]:
                transfer["organization_fiscal_code"] = EC
        stored = await PagopaStore(app[ENGINE], config, SystemClock()).create_position("demo", body)
        yield client, keys, stored.options[0].nav


def _h(key: str, idem: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}"}
    if idem:
        headers["Idempotency-Key"] = idem
    return headers


def _message(**extra: str) -> dict[str, str]:
    return {
        "service_id": SERVICE,
        "fiscal_code": CF,
        "subject": "Avviso TARI 2026 {{ non un modello }}",
        "markdown": "Gentile contribuente, è disponibile l'avviso TARI 2026. " * 3,
        **extra,
    }


async def test_a_message_for_a_kept_notice_carries_its_payment_data(env: Any) -> None:
    client, keys, nav = env
    r = await client.post(
        f"{BASE}/messages", json=_message(notice_number=nav), headers=_h(keys["writer"], "m1")
    )
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["payment_data"] is True
    async with client.app[ENGINE].connect() as conn:
        row = (
            await conn.execute(select(io_messages).where(io_messages.c.id == created["id"]))
        ).one()
    content = json.loads(row.content)
    assert content["payment_data"]["notice_number"] == nav
    assert content["payment_data"]["amount"] == 8400  # from the position, not from the request
    assert content["subject"] == "Avviso TARI 2026 {{ non un modello }}"  # literal text
    assert "due_date" in content

    # a status read without personal_data shows no recipient; with it, audited
    r = await client.get(f"{BASE}/messages/{created['id']}", headers=_h(keys["writer"]))
    view = await r.json()
    assert r.status == 200 and view["status"] == "queued" and "fiscal_code" not in view
    r = await client.get(f"{BASE}/messages/{created['id']}", headers=_h(keys["pd"]))
    assert (await r.json())["fiscal_code"] == CF
    async with client.app[ENGINE].connect() as conn:
        actions = (await conn.execute(select(audit_log.c.action))).scalars().all()
    assert actions == ["io.message.read"]


async def test_a_message_that_disagrees_with_the_position_is_refused(env: Any) -> None:
    client, keys, nav = env
    cases = [
        (_message(notice_number=nav, amount="1,00"), "amount: differs from the position's"),
        (
            _message(notice_number=nav, fiscal_code="BNCLRA82B42F205M"),
            "belongs to another debtor",
        ),
    ]
    for n, (body, why) in enumerate(cases):
        r = await client.post(f"{BASE}/messages", json=body, headers=_h(keys["writer"], f"x{n}"))
        assert r.status == 422
        assert any(why in e for e in (await r.json())["errors"])
    async with client.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(io_messages.c.id))).all() == []  # nothing queued


async def test_campaigns_are_listed(env: Any) -> None:
    client, keys, _ = env
    body = {
        "service_id": SERVICE,
        "name": "TARI",
        "subject": "Avviso TARI 2026 per {{ nome }}",
        "markdown": "Gentile {{ nome }}, è disponibile l'avviso TARI 2026 del comune. " * 2,
        "csv": f"fiscal_code;expedition_date;due_date;notice_number;amount;nome\n{CF};;;;;Mario",
    }
    r = await client.post(f"{BASE}/campaigns", json=body, headers=_h(keys["writer"], "c1"))
    assert r.status == 201, await r.text()
    r = await client.get(f"{BASE}/campaigns", headers=_h(keys["writer"]))
    listing = await r.json()
    assert [c["name"] for c in listing["items"]] == ["TARI"] and listing["next"] is None


async def test_service_id_constraint_is_the_models_in_the_contract(env: Any) -> None:
    """The served document says what the handler enforces: ``CampaignRequest.service_id``
    (and ``MessageRequest``'s) is a non-empty string in the contract, because the model
    the handler validates with says so (the hand-written document once said minLength 1
    while the model accepted "", and an empty id reached the service look-up)."""
    from pydantic import ValidationError

    from sportello.platforms.io.api_models import CampaignRequest, MessageRequest

    client, keys, _ = env
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    campaign = {
        "service_id": "",
        "name": "TARI",
        "subject": "Avviso TARI 2026 per {{ nome }}",
        "markdown": "Gentile {{ nome }}, è disponibile l'avviso TARI 2026 del comune. " * 2,
        "csv": f"fiscal_code;expedition_date;due_date;notice_number;amount;nome\n{CF};;;;;Mario",
    }
    for model, name, body, url in (
        (CampaignRequest, "CampaignRequest", campaign, f"{BASE}/campaigns"),
        (MessageRequest, "MessageRequest", _message(service_id=""), f"{BASE}/messages"),
    ):
        declared = schemas[name]["properties"]["service_id"]
        assert declared["type"] == "string" and declared["minLength"] == 1
        with pytest.raises(ValidationError) as refused:
            model.model_validate(body)
        assert refused.value.errors()[0]["loc"] == ("service_id",)
        assert refused.value.errors()[0]["type"] == "string_too_short"
        r = await client.post(url, json=body, headers=_h(keys["writer"], f"empty-{name}"))
        assert r.status == 400 and r.content_type == "application/problem+json"
        detail = (await r.json())["detail"]
        assert detail.startswith("service_id: ") and "at least 1 character" in detail, detail
        # the rest of the schema is the model's too
        assert model.model_validate({**body, "service_id": SERVICE})
