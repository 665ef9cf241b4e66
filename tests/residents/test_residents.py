"""Resident look-ups end to end: the hub's API, PDND and ANPR sandboxes on real sockets,
and the comune's registry (CSV adapter). ANPR wins where it answers; the registry fills the
rest or answers alone, with a warning; every look-up is in the audit log."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sportello import apikeys
from sportello.app import CLOCK, CONFIG, ENGINE, create_app
from sportello.config import parse_config
from sportello.connectors.pdnd.environments import SANDBOX_ASSERTION_AUDIENCE
from sportello.connectors.pdnd.keys import generate_key
from sportello.connectors.retry import RetryPolicy
from sportello.platforms.residents.lookup import RESIDENTS
from sportello.sandbox.anpr.app import create_app as anpr_sandbox
from sportello.sandbox.anpr.app import modi_audience_for
from sportello.sandbox.anpr.population import generate
from sportello.sandbox.pdnd.app import create_app as pdnd_sandbox

DOOR = "/govway/rest/in/MinInternoPortaANPR"
REGISTRY_ONLY = "VRDGNN70D04H501W"
NOWHERE = "NSSNSS70A01H501B"


@pytest.fixture
async def hub(  # type: ignore[no-untyped-def]
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
):
    with_registry = getattr(request, "param", True)  # indirect=True: False = ANPR only
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
                    "adapters": (
                        {"registry": {"plugin": "csv", "options": {"path": "anagrafe.csv"}}}
                        if with_registry
                        else {}
                    ),
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


# --- a platform failure is not "not found" (issue 12, item 15) ----------------------------------


async def fail(client: TestClient, anpr_url: str, platform: str, status: int) -> None:
    """Make every following call to the PDND or ANPR twin fail with ``status`` (the real
    platform's body for it), and shorten the hub's retry waits so the test stays fast."""
    tenant = client.app[CONFIG].tenant("demo")
    assert tenant is not None and tenant.pdnd is not None
    anpr = client.app[RESIDENTS].anpr_for(tenant)
    assert anpr is not None
    quick = RetryPolicy(base_delay=0.001, max_delay=0.01)
    anpr.retry_policy = quick
    anpr.modi.pdnd.retry_policy = quick
    if platform == "pdnd":
        url = tenant.pdnd.token_url.removesuffix("/token.oauth2") + "/__sandbox/faults"
        doc: dict[str, Any] = {"status": status, "count": 100}
    else:
        url = anpr_url + "/__sandbox/faults"
        doc = {"service": "*", "status": status, "count": 1000, "retry_after": 0}
    async with client.session.post(url, json=doc) as r:
        assert r.status in (200, 201), await r.text()


FAILURES = [(p, s) for p in ("pdnd", "anpr") for s in (400, 429, 500)]


@pytest.mark.parametrize("hub", [False], indirect=True)
@pytest.mark.parametrize(("platform", "status"), FAILURES)
async def test_a_failed_platform_without_a_registry_is_502_or_503_not_404(  # type: ignore[no-untyped-def]
    hub, platform: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    client, keys, population, anpr_url = hub
    person = population.active()[0]
    await fail(client, anpr_url, platform, status)
    r = await client.get(
        f"/api/v1/tenants/demo/residents/{person.fiscal_code}",
        params={"purpose": "PROT.2026/F"},
        headers={"Authorization": f"Bearer {keys['pd']}"},
    )
    body = await r.json()
    assert r.status == (503 if status == 429 else 502), body
    assert r.content_type == "application/problem+json"
    name = platform.upper()
    assert body["platform"] == name and body["answered"] == []
    assert body["detail"].startswith(f"{name} ") and "found: false" not in str(body)
    assert "registry answered" not in body["detail"]
    assert body["failures"][0]["status"] == status
    assert body["failures"][0]["platform_id"]  # PDND correlationId / GovWay transaction id
    support = body["support_id"]
    assert support in body["detail"]
    logged = [rec for rec in caplog.records if getattr(rec, "support_id", None) == support]
    assert logged and logged[0].platform == name  # type: ignore[attr-defined]
    if status == 429:
        assert int(r.headers["Retry-After"]) >= 1
    audit = await client.get(
        "/api/v1/tenants/demo/audit", headers={"Authorization": f"Bearer {keys['pd']}"}
    )
    entry = (await audit.json())["items"][-1]
    assert entry["outcome"] == "error" and entry["detail"].startswith(f"failed: {name}:")


@pytest.mark.parametrize(("platform", "status"), [("pdnd", 400), ("pdnd", 429), ("anpr", 500)])
async def test_a_failed_platform_and_a_registry_that_does_not_know_is_not_404(  # type: ignore[no-untyped-def]
    hub, platform: str, status: int
) -> None:
    client, keys, population, anpr_url = hub
    person = population.active()[1]  # known to ANPR, not to the comune's CSV
    await fail(client, anpr_url, platform, status)
    code, body = await get(client, keys["pd"], person.fiscal_code, purpose="PROT.2026/G")
    assert code == (503 if status == 429 else 502), body
    assert body["platform"] == platform.upper() and body["answered"] == ["registry"]
    assert "the comune's registry answered and did not find" in body["detail"]


@pytest.mark.parametrize("platform", ["pdnd", "anpr"])
async def test_a_failed_platform_with_a_registry_that_found_is_200_with_a_warning(  # type: ignore[no-untyped-def]
    hub, platform: str
) -> None:
    client, keys, population, anpr_url = hub
    person = population.active()[0]  # in the comune's CSV too
    await fail(client, anpr_url, platform, 429)
    code, body = await get(client, keys["pd"], person.fiscal_code, purpose="PROT.2026/H")
    assert code == 200 and body["found"] is True
    assert body["fields"]["family_name"] == {"value": "LOCALE", "source": "registry"}
    name = platform.upper()
    assert body["warnings"][0].startswith(f"{name} unavailable (RateLimited, support id ")
    assert body["warnings"][0].endswith("the comune's registry answered alone")
    assert [f["platform"] for f in body["failures"]] == [name]


async def test_the_cli_names_the_failed_platform_and_exits_with_its_code(  # type: ignore[no-untyped-def]
    hub, tmp_path: Path
) -> None:
    client, _, population, anpr_url = hub
    config = client.app[CONFIG]
    tenant = config.tenant("demo")
    assert tenant is not None and tenant.pdnd is not None and tenant.anpr is not None
    purposes = "\n".join(f"{k} = {json.dumps(v)}" for k, v in tenant.pdnd.purposes.items())
    toml = tmp_path / "cli.toml"
    toml.write_text(
        f"[database]\nurl = {json.dumps(config.database.url)}\n"
        '[logging]\nlevel = "ERROR"\n'
        '[[tenants]]\nid = "demo"\nname = "Comune"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n'
        f"[tenants.pdnd]\nclient_id = {json.dumps(tenant.pdnd.client_id)}\n"
        'key = {env = "DEMO_PDND_KEY"}\n'
        f"token_url = {json.dumps(tenant.pdnd.token_url)}\n"
        f"assertion_audience = {json.dumps(tenant.pdnd.assertion_audience)}\n"
        f"[tenants.pdnd.purposes]\n{purposes}\n"
        f"[tenants.anpr]\nbase_url = {json.dumps(tenant.anpr.base_url)}\n"
    )
    await fail(client, anpr_url, "pdnd", 400)
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("sportello")),
        *("residents", "lookup", "--config", str(toml), "--tenant", "demo"),
        *("--purpose", "PROT.2026/CLI", population.active()[0].fiscal_code),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 4, err
    assert out == b"" and b"Traceback" not in err
    line = err.decode().strip().splitlines()[-1]
    assert line.startswith("sportello: error: PDND failed (VoucherRefused, support id ")
    assert "nobody" not in line and "no source could answer" in line


# --- bad input is 4xx, never 500 (issue 12, item 16) ---------------------------------------------


async def test_blank_operator_and_wrong_check_characters_are_400(hub) -> None:  # type: ignore[no-untyped-def]
    client, keys, population, _ = hub
    person = population.active()[2]
    base = f"/api/v1/tenants/demo/residents/{person.fiscal_code}?purpose=P&operator="
    for operator in ("%20", "+", "%09", "rossi%00", "x" * 201):
        r = await client.get(base + operator, headers={"Authorization": f"Bearer {keys['pd']}"})
        body = await r.json()
        assert r.status == 400, (operator, body)
        assert r.content_type == "application/problem+json"
        assert body["detail"].startswith("operator: "), body
    wrong = person.fiscal_code[:15] + ("A" if person.fiscal_code[15] != "A" else "B")
    for code in (wrong, "RSSMRA80A32H501U", "12345678901"):
        status, body = await get(client, keys["pd"], code, purpose="P")
        assert status == 400 and body["detail"].startswith("fiscal_code: "), (code, body)
        assert code not in body["detail"]
    # a valid code in lower case is looked up as usual
    status, body = await get(client, keys["pd"], person.fiscal_code.lower(), purpose="P")
    assert status == 200, body
    r = await client.get(
        "/api/v1/tenants/demo/audit", headers={"Authorization": f"Bearer {keys['pd']}"}
    )
    assert [e["subject"] for e in (await r.json())["items"]] == [person.fiscal_code]
