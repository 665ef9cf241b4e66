"""INAD in the hub (the send platform) against the INAD and PDND twins over real sockets:
``GET /api/v1/tenants/{t}/inad/{fiscal_code}`` (the domicile now; with ``date`` and
``address`` INAD's verify), every read on the audit log, the personal_data scope, tenant
isolation, INAD failures as 502/503 naming INAD (never 404), and ``sportello inad lookup``
and ``sportello inad bulk`` (the asynchronous list)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from send_stack import Stack, write_cli_config

from sportello import apikeys
from sportello.app import ENGINE, SERVICES, create_app
from sportello.cli.main import main
from sportello.config import parse_config
from sportello.sandbox.inad.app import BASE_PATH, INAD_STATE

PURPOSE = "PROT.2026/77 verbale"


def tenant(tenant_id: str, fiscal_code: str, stack: Stack, tmp_path: Path) -> dict[str, Any]:
    return {
        "id": tenant_id,
        "name": "Comune di Esempio",
        "ipa_code": "c_z999",
        "fiscal_code": fiscal_code,
        "cadastral_code": "Z999",
        "pdnd": stack.pdnd_section(tmp_path / "pdnd.pem"),
        "inad": {
            "base_url": stack.inad_url + BASE_PATH,
            "purpose_id": stack.inad_purpose,
            "bulk_poll_seconds": 0.05,
        },
    }


@pytest.fixture
async def hub(
    tmp_path: Path, db_url: str, stack: Stack
) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "tenants": [
                tenant("demo", "00000000999", stack, tmp_path),
                tenant("other", "00000000998", stack, tmp_path),
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        keys = {}
        async with app[ENGINE].begin() as conn:
            now = app[SERVICES].clock.now()
            for t in ("demo", "other"):
                keys[t] = await apikeys.create(
                    conn, tenant_id=t, name="desk", scopes=["read", "personal_data"], now=now
                )
            keys["demo-read"] = await apikeys.create(
                conn, tenant_id="demo", name="reader", scopes=["read"], now=now
            )
        yield client, keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def people(stack: Stack, kind: str) -> list[Any]:
    """The twin's population: ``with`` an active domicile, ``none`` never one, ``ceased``
    only ceased ones."""
    today = stack.inad_app[INAD_STATE].clock.now().date()
    everyone = list(stack.inad_app[INAD_STATE].people.values())
    if kind == "with":
        return [p for p in everyone if p.active(today)]
    if kind == "none":
        return [p for p in everyone if not p.domiciles]
    return [p for p in everyone if p.domiciles and all(d.valid_to is not None for d in p.domiciles)]


async def audit_log(client: TestClient, key: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/tenants/demo/audit", headers=auth(key))
    assert response.status == 200, await response.text()
    return list((await response.json())["items"])


def url(code: str) -> str:
    return f"/api/v1/tenants/demo/inad/{code}"


async def test_found_now_is_audited_with_the_purpose(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    person = people(stack, "with")[0]
    response = await client.get(
        url(person.fiscal_code),
        params={"purpose": PURPOSE, "operator": "m.bianchi"},
        headers=auth(keys["demo"]),
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["found"] is True and body["fiscal_code"] == person.fiscal_code
    today = stack.inad_app[INAD_STATE].clock.now().date()
    assert [a["address"] for a in body["addresses"]] == [d.address for d in person.active(today)]
    entries = await audit_log(client, keys["demo"])
    inad = [e for e in entries if e["action"] == "inad.lookup"]
    assert [(e["subject"], e["purpose"], e["outcome"], e["sources"]) for e in inad] == [
        (person.fiscal_code, PURPOSE, "ok", "inad")
    ]
    assert "m.bianchi" in inad[0]["detail"]
    # INAD received the purpose as practicalReference
    calls = [c["operation"] for c in stack.inad_app[INAD_STATE].calls]
    assert calls == ["recuperoDomicilioDigitale"]


async def test_no_domicile_is_404_found_false_and_audited(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    person = people(stack, "none")[0]
    response = await client.get(
        url(person.fiscal_code), params={"purpose": PURPOSE}, headers=auth(keys["demo"])
    )
    assert response.status == 404
    assert response.content_type == "application/json"
    assert (await response.json())["found"] is False
    inad = [e for e in await audit_log(client, keys["demo"]) if e["action"] == "inad.lookup"]
    assert [(e["subject"], e["outcome"]) for e in inad] == [(person.fiscal_code, "not_found")]


async def test_ceased_domicile_is_not_found_now_but_verified_on_an_earlier_day(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    person = people(stack, "ceased")[0]
    old = person.domiciles[0]
    assert old.valid_to is not None
    response = await client.get(
        url(person.fiscal_code), params={"purpose": PURPOSE}, headers=auth(keys["demo"])
    )
    assert response.status == 404 and (await response.json())["found"] is False
    before = old.valid_from.isoformat()
    after = old.valid_to.isoformat()
    for day, expected in ((before, True), (after, False)):
        response = await client.get(
            url(person.fiscal_code),
            params={"purpose": PURPOSE, "date": day, "address": old.address},
            headers=auth(keys["demo"]),
        )
        assert response.status == 200, await response.text()
        body = await response.json()
        assert (body["was_domicile"], body["date"], body["address"]) == (
            expected,
            day,
            old.address,
        )
    inad = [e for e in await audit_log(client, keys["demo"]) if e["action"] == "inad.lookup"]
    assert len(inad) == 3 and {e["subject"] for e in inad} == {person.fiscal_code}


@pytest.mark.parametrize(
    ("code", "query", "field"),
    [
        ("RSSMRA80A01H501X", {"purpose": PURPOSE}, "fiscal_code"),  # wrong check character
        ("NOTACODE", {"purpose": PURPOSE}, "fiscal_code"),
        ("RSSMRA80A01H501U", {}, "purpose"),
        (
            "RSSMRA80A01H501U",
            {"purpose": PURPOSE, "date": "2024-13-01", "address": "a@b.it"},
            "date",
        ),
        ("RSSMRA80A01H501U", {"purpose": PURPOSE, "date": "2024-01-01"}, "address"),
        ("RSSMRA80A01H501U", {"purpose": PURPOSE, "address": "a@pec.it"}, "address"),
        (
            "RSSMRA80A01H501U",
            {"purpose": PURPOSE, "date": "2999-01-01", "address": "a@b.it"},
            "date",
        ),
    ],
)
async def test_bad_input_is_400_naming_the_field_and_inad_is_not_called(
    hub: tuple[TestClient, dict[str, str]],
    stack: Stack,
    code: str,
    query: dict[str, str],
    field: str,
) -> None:
    client, keys = hub
    response = await client.get(url(code), params=query, headers=auth(keys["demo"]))
    assert response.status == 400
    assert response.content_type == "application/problem+json"
    assert (await response.json())["detail"].startswith(field)
    assert not stack.inad_app[INAD_STATE].calls


async def test_scope_and_tenant_isolation(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    code = people(stack, "with")[0].fiscal_code
    response = await client.get(url(code), params={"purpose": PURPOSE}, headers=auth(keys["other"]))
    assert response.status == 404
    assert "tenant" in (await response.json())["detail"]
    response = await client.get(
        url(code), params={"purpose": PURPOSE}, headers=auth(keys["demo-read"])
    )
    assert response.status == 403
    assert "personal_data" in (await response.json())["detail"]
    assert not stack.inad_app[INAD_STATE].calls
    assert not [e for e in await audit_log(client, keys["demo"]) if e["action"] == "inad.lookup"]


async def test_inad_5xx_is_502_naming_inad_and_503_when_unavailable(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    code = people(stack, "with")[0].fiscal_code
    for status, expected in ((500, 502), (503, 503)):
        async with stack.session.post(
            stack.inad_url + "/__sandbox/faults",
            json={"count": 20, "status": status, "operations": ["recuperoDomicilioDigitale"]},
        ) as r:
            assert r.status == 201
        response = await client.get(
            url(code), params={"purpose": PURPOSE}, headers=auth(keys["demo"])
        )
        assert response.status == expected, await response.text()
        assert response.content_type == "application/problem+json"
        body = await response.json()
        assert body["platform"] == "INAD" and "INAD" in body["detail"]
        async with stack.session.delete(stack.inad_url + "/__sandbox/faults") as r:
            assert r.status == 200
    inad = [e for e in await audit_log(client, keys["demo"]) if e["action"] == "inad.lookup"]
    assert [e["outcome"] for e in inad] == ["failed", "failed"]


def write_config(tmp_path: Path, db_url: str, stack: Stack) -> Path:
    t = tenant("demo", "00000000999", stack, tmp_path)
    inad = f"""
[tenants.inad]
base_url = {json.dumps(t["inad"]["base_url"])}
purpose_id = {json.dumps(t["inad"]["purpose_id"])}
bulk_poll_seconds = 0.05
"""
    return write_cli_config(tmp_path / "cli.toml", db_url, t, inad)


async def cli(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_cli_lookup_and_bulk(
    hub: tuple[TestClient, dict[str, str]], stack: Stack, tmp_path: Path, db_url: str
) -> None:
    client, keys = hub  # the hub's fixture migrated the database the CLI uses
    path = write_config(tmp_path, db_url, stack)
    found = people(stack, "with")[0]
    none = people(stack, "none")[0]
    common = ["--config", str(path), "--tenant", "demo", "--purpose", PURPOSE]

    result = await cli("inad", "lookup", *common, found.fiscal_code.lower())
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["found"] is True

    result = await cli("inad", "lookup", *common, none.fiscal_code)
    assert result.exit_code == 3, result.output
    assert json.loads(result.stdout)["found"] is False

    codes = [p.fiscal_code for p in people(stack, "with")[:3]] + [none.fiscal_code]
    listing = tmp_path / "codes.txt"
    listing.write_text("# fines of March\n" + "\n".join(codes) + "\n")
    result = await cli("inad", "bulk", *common, str(listing))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FISCAL CODE")
    assert lines[-1] == "4 fiscal code(s), 3 with a digital domicile"
    assert any(line.startswith(none.fiscal_code) and " - " in line for line in lines)
    assert stack.inad_app[INAD_STATE].jobs, "the asynchronous list was used"

    entries = [e for e in await audit_log(client, keys["demo"]) if e["action"] == "inad.lookup"]
    assert len(entries) == 2 + 4
    assert {e["subject"] for e in entries[2:]} == set(codes)

    # a bad line is named with the file and line, and nothing is asked
    listing.write_text(codes[0] + "\nRSSMRA80A01H501X\n")
    before = len(stack.inad_app[INAD_STATE].calls)
    result = await cli("inad", "bulk", *common, str(listing))
    assert result.exit_code == 2
    assert f"{listing}: line 2" in result.stderr
    assert len(stack.inad_app[INAD_STATE].calls) == before

    # INAD failing: non-zero, naming INAD
    async with stack.session.post(
        stack.inad_url + "/__sandbox/faults", json={"count": 20, "status": 500}
    ) as r:
        assert r.status == 201
    result = await cli("inad", "lookup", *common, found.fiscal_code)
    assert result.exit_code == 4, result.output
    assert "INAD failed" in result.stderr
