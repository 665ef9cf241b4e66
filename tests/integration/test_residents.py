"""Resident look-ups end to end: the hub's API, PDND and ANPR sandboxes on real sockets,
and the comune's registry (CSV adapter). ANPR wins where it answers; the registry fills the
rest or answers alone, with a warning; every look-up is in the audit log."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import parse_config
from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
from sportello.connectors.pdnd.keys import generate_key
from sportello.sandbox.anpr.app import create_app as anpr_sandbox
from sportello.sandbox.anpr.app import modi_audience_for
from sportello.sandbox.anpr.population import generate
from sportello.sandbox.pdnd.app import create_app as pdnd_sandbox

DOOR = "/govway/rest/in/MinInternoPortaANPR"
REGISTRY_ONLY = "VRDGNN70D04H501W"
NOWHERE = "NSSNSS70A01H501X"


@pytest.fixture
async def hub(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    population = generate(seed=7, size=60)
    pdnd = TestServer(pdnd_sandbox(rate_limit=None), host="127.0.0.1")
    await pdnd.start_server()
    pdnd_url = str(pdnd.make_url("")).rstrip("/")
    anpr = TestServer(
        anpr_sandbox(
            population=population,
            voucher_key=pdnd_url + "/.well-known/jwks.json",
            client_keys=pdnd_url + "/keys",
        ),
        host="127.0.0.1",
    )
    await anpr.start_server()
    anpr_url = str(anpr.make_url("")).rstrip("/")
    private_pem, public_pem = generate_key()
    client_id = str(uuid.uuid4())
    purposes = {code: str(uuid.uuid4()) for code in ("C030", "C020", "C021", "C015")}
    monkeypatch.setenv("DEMO_PDND_KEY", private_pem.decode())
    person = population.active()[0]
    (tmp_path / "anagrafe.csv").write_text(
        "fiscal_code;family_name;given_name;address;email;phone\n"
        f"{person.fiscal_code};LOCALE;NOME LOCALE;VIA VECCHIA 1;mario@example.org;0612345\n"
        f"{REGISTRY_ONLY};Verdi;Giovanni;Via Po 2;;\n"
    )
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [
                {
                    "id": "demo",
                    "name": "Comune di Esempio",
                    "ipa_code": "c_z999",
                    "fiscal_code": "00000000999",
                    "cadastral_code": "Z999",
                    "pdnd": {
                        "client_id": client_id,
                        "key": {"env": "DEMO_PDND_KEY"},
                        "token_url": pdnd_url + "/token.oauth2",
                        "assertion_audience": SANDBOX_ASSERTION_AUDIENCE,
                        "purposes": purposes,
                    },
                    "anpr": {"base_url": anpr_url + DOOR + "-PDND", "user_location": "ufficio-1"},
                    "adapters": {
                        "registry": {"plugin": "csv", "options": {"path": "anagrafe.csv"}}
                    },
                }
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        session = client.session
        audiences = {
            purpose: modi_audience_for(anpr_url + DOOR, code) for code, purpose in purposes.items()
        }
        async with session.post(
            pdnd_url + "/__sandbox/clients",
            json={"client_id": client_id, "public_key": public_pem.decode(), "purposes": audiences},
        ) as r:
            assert r.status == 201, await r.text()
        async with app[ENGINE].begin() as conn:
            keys = {
                "pd": await apikeys.create(
                    conn,
                    tenant_id="demo",
                    name="anagrafe",
                    scopes=["personal_data"],
                    now=app[CLOCK].now(),
                ),
                "read": await apikeys.create(
                    conn, tenant_id="demo", name="x", scopes=["read"], now=app[CLOCK].now()
                ),
            }
        yield client, keys, population, anpr_url
    await anpr.close()
    await pdnd.close()


async def get(client: TestClient, key: str, cf: str, **query: str) -> tuple[int, Any]:
    r = await client.get(
        f"/api/v1/tenants/demo/residents/{cf}",
        params=query,
        headers={"Authorization": f"Bearer {key}"},
    )
    return r.status, await r.json()


async def test_anpr_wins_and_the_registry_fills_the_rest(hub) -> None:  # type: ignore[no-untyped-def]
    client, keys, population, _ = hub
    person = population.active()[0]
    status, body = await get(client, keys["pd"], person.fiscal_code, purpose="PROT.2026/1")
    assert status == 200, body
    f = body["fields"]
    assert f["id_anpr"] == {"value": person.id_anpr, "source": "anpr"}
    assert f["family_name"] == {"value": person.family_name, "source": "anpr"}
    assert f["address"] == {"value": person.address.line, "source": "anpr"}
    assert f["email"] == {"value": "mario@example.org", "source": "registry"}
    assert f["phone"]["source"] == "registry"
    household = population.households[person.household_id]
    assert sorted(m["fiscal_code"] for m in body["household"]) == sorted(
        m.fiscal_code for m in household.members
    )
    assert body["sources"] == ["anpr", "registry"] and body["warnings"] == []


async def test_registry_answers_alone_when_anpr_does_not_know(hub) -> None:  # type: ignore[no-untyped-def]
    client, keys, _, _ = hub
    status, body = await get(client, keys["pd"], REGISTRY_ONLY, purpose="PROT.2026/2")
    assert status == 200
    assert body["fields"]["family_name"] == {"value": "Verdi", "source": "registry"}
    assert body["warnings"] == ["ANPR does not know this fiscal code (EN122)"]
    status, body = await get(client, keys["pd"], NOWHERE, purpose="PROT.2026/3")
    assert status == 404 and body["found"] is False


async def test_anpr_down_is_said_and_the_registry_answers(hub) -> None:  # type: ignore[no-untyped-def]
    client, keys, population, anpr_url = hub
    person = population.active()[0]
    async with client.session.post(
        anpr_url + "/__sandbox/faults", json={"service": "*", "status": 503, "count": 50}
    ) as r:
        assert r.status in (200, 201)
    status, body = await get(client, keys["pd"], person.fiscal_code, purpose="PROT.2026/4")
    assert status == 200
    assert body["fields"]["family_name"] == {"value": "LOCALE", "source": "registry"}
    assert body["warnings"][0].startswith("ANPR unavailable (ServerError, support id ")


async def test_every_lookup_is_audited_and_scoped(hub) -> None:  # type: ignore[no-untyped-def]
    client, keys, population, _ = hub
    person = population.active()[1]
    status, body = await get(
        client, keys["pd"], person.fiscal_code, purpose="PROT.9", operator="rossi"
    )
    assert status == 200 and body["sources"] == ["anpr", "registry"]
    await get(client, keys["pd"], NOWHERE, purpose="PROT.10")
    status, body = await get(client, keys["pd"], NOWHERE)
    assert status == 400 and "purpose is required" in body["detail"]
    status, body = await get(client, keys["read"], NOWHERE, purpose="x")
    assert status == 403
    r = await client.get(
        "/api/v1/tenants/demo/audit", headers={"Authorization": f"Bearer {keys['pd']}"}
    )
    entries = (await r.json())["items"]
    assert [(e["subject"], e["purpose"], e["outcome"], e["sources"]) for e in entries] == [
        (person.fiscal_code, "PROT.9", "ok", "anpr+registry"),
        (NOWHERE, "PROT.10", "not_found", "anpr+registry"),
    ]
    assert entries[0]["actor"].endswith(":anagrafe")
