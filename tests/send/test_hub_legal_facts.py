"""Legal facts through the hub's API (``.../send/notifications/{id}/legal-facts``) against the
SEND twin over real sockets, on SQLite and PostgreSQL: listed and downloaded as the PDF the
twin made, personal_data scope, every read audited, tenant isolation, not before SEND has
accepted the notification, SEND failures as 502/503 naming SEND, and both operations in the
generated OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from send_stack import Stack
from test_hub_send import BASE, body, drain, hub, post  # noqa: F401 (the hub fixture)

from sportello import apikeys
from sportello.app import ENGINE, SERVICES


async def accepted(client: TestClient, key: str, protocol: str) -> dict[str, Any]:
    status, queued = await post(client, key, body(protocol), f"k-{protocol}")
    assert status == 202, queued
    await drain(client)
    return queued


async def test_list_and_download_audited_and_isolated(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    stack: Stack,
) -> None:
    client, keys = hub
    auth = {"Authorization": f"Bearer {keys['demo']}"}
    queued = await accepted(client, keys["demo"], "VERB-LF-1")
    url = f"{BASE}/{queued['id']}/legal-facts"
    r = await client.get(url, headers=auth)
    assert r.status == 200, await r.text()
    listing = await r.json()
    assert listing["notification_id"] == queued["id"] and listing["iun"]
    categories = {f["category"] for f in listing["items"]}
    assert "SENDER_ACK" in categories
    fact = next(f for f in listing["items"] if f["category"] == "SENDER_ACK")
    assert not fact["legal_fact_id"].startswith("safestorage://")
    r = await client.get(f"{url}/{fact['legal_fact_id']}", headers=auth)
    assert r.status == 200, await r.text()
    assert r.content_type == "application/pdf"
    pdf = await r.read()
    assert pdf.startswith(b"%PDF-") and b"%%EOF" in pdf[-64:]
    assert r.headers["Content-Disposition"].startswith('attachment; filename="')
    assert r.headers["Cache-Control"] == "no-store"
    # the safestorage:// form SEND itself uses is accepted too
    r = await client.get(f"{url}/safestorage:%2F%2F{fact['legal_fact_id']}", headers=auth)
    assert r.status == 200
    audit = (await (await client.get("/api/v1/tenants/demo/audit", headers=auth)).json())["items"]
    actions = [(a["action"], a["subject"]) for a in audit]
    assert ("send.legal_facts.read", "RSSMRA80A01H501U") in actions
    assert actions.count(("send.legal_fact.download", "RSSMRA80A01H501U")) == 2
    # another tenant's key: the notification does not exist for it, in either path
    other = {"Authorization": f"Bearer {keys['other']}"}
    r = await client.get(url, headers=other)
    assert r.status == 404
    r = await client.get(
        f"/api/v1/tenants/other/send/notifications/{queued['id']}/legal-facts", headers=other
    )
    assert r.status == 404
    r = await client.get(
        f"/api/v1/tenants/other/send/notifications/{queued['id']}/legal-facts/"
        f"{fact['legal_fact_id']}",
        headers=other,
    )
    assert r.status == 404
    # a key without personal_data
    async with client.app[ENGINE].begin() as conn:
        reader = await apikeys.create(
            conn,
            tenant_id="demo",
            name="reader",
            scopes=["read"],
            now=client.app[SERVICES].clock.now(),
        )
    r = await client.get(url, headers={"Authorization": f"Bearer {reader}"})
    assert r.status == 403
    # bad and unknown ids
    for bad in ("a%20b", "x" * 1025, "%2E%2E"):
        r = await client.get(f"{url}/{bad}", headers=auth)
        assert r.status in (400, 404), bad
        if r.status == 400:
            assert (await r.json())["detail"].startswith("legal_fact_id:")
    r = await client.get(f"{url}/PN_LEGAL_FACTS-nope.pdf", headers=auth)
    assert r.status == 404 and "legal_fact_id" in (await r.json())["detail"]
    r = await client.get(f"{BASE}/999999/legal-facts", headers=auth)
    assert r.status == 404


async def test_not_accepted_yet_and_send_failures(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
    stack: Stack,
) -> None:
    client, keys = hub
    auth = {"Authorization": f"Bearer {keys['demo']}"}
    status, waiting = await post(client, keys["demo"], body("VERB-LF-2"), "k-lf-2")
    assert status == 202
    r = await client.get(f"{BASE}/{waiting['id']}/legal-facts", headers=auth)
    assert r.status == 409 and "no IUN yet" in (await r.json())["detail"]
    await drain(client)
    url = f"{BASE}/{waiting['id']}/legal-facts"
    # SEND answers 500 to every try: 502 naming SEND
    async with stack.session.post(
        stack.send_url + "/__sandbox/faults",
        json={"count": 10, "status": 500, "operations": ["retrieveNotificationLegalFactsV20"]},
    ) as response:
        assert response.status == 201
    r = await client.get(url, headers=auth)
    assert r.status == 502
    problem = await r.json()
    assert problem["platform"] == "SEND" and "SEND failed (HTTP 500)" in problem["detail"]
    async with stack.session.delete(stack.send_url + "/__sandbox/faults") as response:
        assert response.status == 200
    # rate limited on the download: 503 with Retry-After
    facts = (await (await client.get(url, headers=auth)).json())["items"]
    async with stack.session.post(
        stack.send_url + "/__sandbox/faults",
        json={"count": 10, "status": 429, "operations": ["downloadLegalFactById"]},
    ) as response:
        assert response.status == 201
    r = await client.get(f"{url}/{facts[0]['legal_fact_id']}", headers=auth)
    assert r.status == 503
    assert (await r.json())["platform"] == "SEND" and int(r.headers["Retry-After"]) >= 1
    async with stack.session.delete(stack.send_url + "/__sandbox/faults") as response:
        assert response.status == 200


async def test_openapi_describes_the_legal_fact_routes(
    hub: tuple[TestClient, dict[str, str]],  # noqa: F811
) -> None:
    client, _ = hub
    spec = await (await client.get("/api/v1/openapi.json")).json()
    base = "/api/v1/tenants/{tenant}/send/notifications/{notification_id}/legal-facts"
    listing = spec["paths"][base]["get"]
    assert listing["operationId"] == "listSendLegalFacts"
    assert {"200", "409", "502", "503"} <= set(listing["responses"])
    download = spec["paths"][base + "/{legal_fact_id}"]["get"]
    assert download["operationId"] == "getSendLegalFact"
    assert "application/pdf" in download["responses"]["200"]["content"]
