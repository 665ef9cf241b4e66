"""An App IO campaign end to end, through the REST API, the outbox and the IO sandbox:
sent, not on IO, sender not allowed, status followed to PROCESSED; a repeated POST with the
same Idempotency-Key queues nothing twice; a bad row queues nothing at all."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.appkeys import SERVICES, WORKER
from sportello.config import parse_config
from sportello.connectors.http1 import LeanHttpClient
from sportello.db import reading
from sportello.logs import emitted_by_hub
from sportello.platforms.io import campaigns
from sportello.ratelimit import DbRateLimiter
from sportello.sandbox.io.app import DEMO_PRIMARY_KEY, DEMO_SERVICE_ID
from sportello.sandbox.io.app import create_app as io_sandbox
from sportello.sandbox.io.population import (
    CF_ALLOWED,
    CF_BLOCKED,
    CF_INBOX_DISABLED,
    CF_NOT_ON_IO,
    default_population,
)
from sportello.schema import outbox

TENANT = {
    "id": "demo",
    "name": "Comune di Esempio",
    "ipa_code": "c_z999",
    "fiscal_code": "00000000999",
    "cadastral_code": "Z999",
}
MARKDOWN = (
    "Gentile {{ nome }}, il Comune di Esempio le ricorda che la sua pratica è stata "
    "aggiornata. Può seguirne l'iter nello sportello online del comune."
)


def allowed_citizens(population: Any, n: int) -> list[str]:
    return list(population.by_kind("allowed", DEMO_SERVICE_ID))[:n]


@pytest.fixture
async def io_hub(db_url: str, monkeypatch: pytest.MonkeyPatch, sink, request):  # type: ignore[no-untyped-def]
    """The hub and the IO sandbox; ``request.param`` (indirect) may change "outbox" and
    "io" settings."""
    changes = getattr(request, "param", {})
    population = default_population(blocked_service_ids=[DEMO_SERVICE_ID])
    sandbox = TestServer(io_sandbox(population=population, rate_limit=0), host="127.0.0.1")
    await sandbox.start_server()
    monkeypatch.setenv("IO_DEMO_KEY", DEMO_PRIMARY_KEY)
    monkeypatch.setenv("DEMO_HOOK_SECRET", "whsec-tributi")
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"poll_interval": 0.02, "backoff_base": 0.05, **changes.get("outbox", {})},
            "tenants": [
                {
                    **TENANT,
                    "io": {
                        "base_url": str(sandbox.make_url("/api/v1")),
                        "services": [{"id": DEMO_SERVICE_ID, "key": {"env": "IO_DEMO_KEY"}}],
                        "rate_limit": 150,
                        "status_poll_delay": 0.2,
                        **changes.get("io", {}),
                    },
                    "webhooks": [
                        {
                            "url": sink.url,
                            "secret": {"env": "DEMO_HOOK_SECRET"},
                            "events": ["io.message.*"],
                        }
                    ],
                }
            ],
        }
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn,
                tenant_id="demo",
                name="tributi",
                scopes=["read", "write", "personal_data"],
                now=app[CLOCK].now(),
            )
        yield client, sandbox, population, key, sink
    await sandbox.close()


async def wait_settled(client: TestClient, campaign_id: int, timeout: float = 30) -> dict:  # type: ignore[type-arg]
    async with asyncio.timeout(timeout):
        while True:
            async with reading(client.app[ENGINE]) as conn:
                data = await campaigns.report(conn, campaign_id)
            assert data is not None
            counts = data["counts"]
            if not counts["queued"] and not counts["sending"] and not counts["sent"]:
                return data
            await asyncio.sleep(0.05)


async def test_campaign_through_the_api(io_hub, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level("DEBUG")
    client, sandbox, population, key, _ = io_hub
    allowed = allowed_citizens(population, 20)
    recipients = [*allowed, CF_BLOCKED, CF_INBOX_DISABLED, CF_NOT_ON_IO]
    rows = "\n".join(f"{cf};;;;;Cittadino {i}" for i, cf in enumerate(recipients))
    body = {
        "service_id": DEMO_SERVICE_ID,
        "name": "Aggiornamento pratiche",
        "subject": "Aggiornamento sulla sua pratica",
        "markdown": MARKDOWN,
        "csv": "fiscal_code;expedition_date;due_date;notice_number;amount;nome\n" + rows,
    }
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "camp-2026-11-22"}
    r = await client.post("/api/v1/tenants/demo/io/campaigns", json=body, headers=headers)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["messages"] == len(recipients)
    again = await client.post("/api/v1/tenants/demo/io/campaigns", json=body, headers=headers)
    assert again.status == 201 and again.headers["Idempotent-Replay"] == "true"
    assert await again.json() == created
    other = await client.post(
        "/api/v1/tenants/demo/io/campaigns", json={**body, "name": "x"}, headers=headers
    )
    assert other.status == 422

    report = await wait_settled(client, created["id"])
    counts = report["counts"]
    assert counts["processed"] == 20
    assert counts["sender_not_allowed"] == 1 and counts["not_on_io"] == 2
    assert counts["failed"] == counts["unknown"] == 0
    received = await (await client.session.get(sandbox.make_url("/__sandbox/messages"))).json()
    got = sorted(m["fiscal_code"] for m in received["messages"])
    assert got == sorted(allowed), "each deliverable message arrives exactly once"
    r = await client.get(
        f"/api/v1/tenants/demo/io/campaigns/{created['id']}",
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status == 200
    api_report = await r.json()
    assert api_report["counts"] == counts and len(api_report["messages"]) == len(recipients)
    audit = await (
        await client.get("/api/v1/tenants/demo/audit", headers={"Authorization": f"Bearer {key}"})
    ).json()
    assert [e["action"] for e in audit["items"]] == ["io.campaign.report"]
    assert CF_ALLOWED not in str(audit)  # the audit names the campaign, not every recipient
    # no secret and no fiscal code in any log line; no secret in any API answer
    logged = "\n".join(r.getMessage() + str(r.args) for r in caplog.records if emitted_by_hub(r))
    assert DEMO_PRIMARY_KEY not in logged and key not in logged
    assert not any(cf in logged for cf in recipients)
    assert DEMO_PRIMARY_KEY not in str(api_report) and key.split("_", 2)[2] not in str(api_report)


async def test_one_bad_row_queues_nothing(io_hub) -> None:  # type: ignore[no-untyped-def]
    client, _, _, key, _ = io_hub
    body = {
        "service_id": DEMO_SERVICE_ID,
        "name": "x",
        "subject": "Aggiornamento sulla sua pratica",
        "markdown": MARKDOWN,
        "csv": "fiscal_code;expedition_date;due_date;notice_number;amount;nome\n"
        f"{CF_ALLOWED};;;;;Anna\nNOTAFISCALCODE;;;;;Bea\n",
    }
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "bad-1"}
    r = await client.post("/api/v1/tenants/demo/io/campaigns", json=body, headers=headers)
    assert r.status == 422
    problem = await r.json()
    assert problem["errors"][0].startswith("csv: row 3: fiscal_code")
    async with reading(client.app[ENGINE]) as conn:
        assert await campaigns.report(conn, 1) is None
    r = await client.post(
        "/api/v1/tenants/demo/io/campaigns",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status == 400 and "Idempotency-Key" in (await r.json())["detail"]


async def test_header_only_duplicates_and_wrong_check_letters_are_422(io_hub) -> None:  # type: ignore[no-untyped-def]
    """Issue 12, item 16: a CSV with only a header is the documented 422 (not a 500); a
    repeated row and a fiscal code with a wrong check letter are named; nothing is queued."""
    client, _, _, key, _ = io_hub
    header = "fiscal_code;expedition_date;due_date;notice_number;amount;nome\n"
    wrong = CF_ALLOWED[:15] + ("A" if CF_ALLOWED[15] != "A" else "B")
    cases = {
        header: ["csv: no rows to send"],
        header + "\n\n": ["csv: no rows to send"],
        header + f"{CF_ALLOWED};;;;;Anna\n{CF_ALLOWED};;;;;Anna\n": [
            "csv: row 3: fiscal_code: duplicate of row 2 (the same message to the same person)"
        ],
        header + f"{wrong};;;;;Anna\n": [
            "csv: row 2: fiscal_code: is not a valid fiscal code: "
            "the check character of the fiscal code is wrong"
        ],
    }
    for n, (csv, errors) in enumerate(cases.items()):
        body = {
            "service_id": DEMO_SERVICE_ID,
            "name": "x",
            "subject": "Aggiornamento sulla sua pratica",
            "markdown": MARKDOWN,
            "csv": csv,
        }
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"edge-{n}"}
        r = await client.post("/api/v1/tenants/demo/io/campaigns", json=body, headers=headers)
        assert r.status == 422, await r.text()
        assert r.content_type == "application/problem+json"
        assert (await r.json())["errors"] == errors
    async with reading(client.app[ENGINE]) as conn:
        assert await campaigns.report(conn, 1) is None


async def test_status_changes_reach_the_tenant_as_signed_webhooks(io_hub) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    from sportello.connectors.webhook import verify

    client, _, population, key, sink = io_hub
    allowed = allowed_citizens(population, 3)
    body = {
        "service_id": DEMO_SERVICE_ID,
        "name": "Avvisi",
        "subject": "Aggiornamento sulla sua pratica",
        "markdown": MARKDOWN,
        "csv": "fiscal_code;expedition_date;due_date;notice_number;amount;nome\n"
        + "\n".join(f"{cf};;;;;X" for cf in [*allowed, CF_NOT_ON_IO]),
    }
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "hooks-1"}
    r = await client.post("/api/v1/tenants/demo/io/campaigns", json=body, headers=headers)
    created = await r.json()
    await wait_settled(client, created["id"])
    async with asyncio.timeout(10):
        while len(sink.received) < 7:
            await asyncio.sleep(0.05)
    events = [json.loads(r["raw"]) for r in sink.received]
    statuses = sorted(e["data"]["status"] for e in events)
    assert statuses == ["not_on_io", "processed", "processed", "processed", "sent", "sent", "sent"]
    assert {e["event"] for e in events} == {"io.message.status"}
    assert all(
        verify(b"whsec-tributi", r["raw"], r["signature"], now=time.time()) for r in sink.received
    )
    assert len({r["key"] for r in sink.received}) == 7  # one outbox job (and key) per event


async def _campaign(client: TestClient, key: str, recipients: list[str], name: str) -> int:
    rows = "\n".join(f"{cf};;;;;Cittadino {i}" for i, cf in enumerate(recipients))
    body = {
        "service_id": DEMO_SERVICE_ID,
        "name": name,
        "subject": "Aggiornamento sulla sua pratica",
        "markdown": MARKDOWN,
        "csv": "fiscal_code;expedition_date;due_date;notice_number;amount;nome\n" + rows,
    }
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": name}
    r = await client.post("/api/v1/tenants/demo/io/campaigns", json=body, headers=headers)
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


async def _received(client: TestClient, sandbox: TestServer) -> list[str]:
    answer = await (await client.session.get(sandbox.make_url("/__sandbox/messages"))).json()
    return sorted(m["fiscal_code"] for m in answer["messages"])


async def _jobs(client: TestClient) -> list[dict]:  # type: ignore[type-arg]
    async with reading(client.app[ENGINE]) as conn:
        rows = await conn.execute(
            select(outbox.c.id, outbox.c.status, outbox.c.payload, outbox.c.attempts).where(
                outbox.c.kind == campaigns.SEND_BATCH_KIND
            )
        )
        return [{**r._mapping, "payload": json.loads(r.payload)} for r in rows]


async def test_a_chunk_retries_only_the_messages_it_could_not_send(io_hub) -> None:  # type: ignore[no-untyped-def]
    """30 messages = chunks of 25 and 5. App IO refuses three submissions with a 429 (nothing
    stored): those stay queued, their chunk is retried, and on the retry only they are sent;
    by the sandbox's record every message arrives exactly once."""
    client, sandbox, population, key, _ = io_hub
    recipients = allowed_citizens(population, 30)
    fault = {"count": 3, "status": 429, "operations": ["submitMessageforUserWithFiscalCodeInBody"]}
    r = await client.session.post(sandbox.make_url("/__sandbox/faults"), json=fault)
    assert r.status in (200, 201), await r.text()
    campaign_id = await _campaign(client, key, recipients, "chunk-retry")
    report = await wait_settled(client, campaign_id)
    assert report["counts"]["processed"] == 30, report["counts"]
    assert await _received(client, sandbox) == sorted(recipients)
    jobs = await _jobs(client)
    assert sorted(len(j["payload"]["message_ids"]) for j in jobs) == [5, 25]
    assert all(j["status"] == "done" for j in jobs)
    assert max(j["attempts"] for j in jobs) >= 2  # the chunk that met the 429s ran again


@pytest.mark.parametrize("io_hub", [{"outbox": {"concurrency": 1}}], indirect=True)
async def test_a_slow_chunk_hands_its_unstarted_messages_to_a_new_job(  # type: ignore[no-untyped-def]
    io_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time budget left after its first message (a paced service with many chunks
    waiting), a chunk moves one message on and queues the rest as a new job: nothing is
    lost, nothing sent twice, and no attempt is spent on it."""
    from sportello.platforms.io import delivery as io_delivery

    client, sandbox, population, key, _ = io_hub
    monkeypatch.setattr(io_delivery, "CHUNK_START_BUDGET", 0.0)
    client.app[WORKER].handlers[campaigns.SEND_BATCH_KIND] = io_delivery.io_messages_handler(
        client.app[SERVICES]
    )
    recipients = allowed_citizens(population, 4)
    campaign_id = await _campaign(client, key, recipients, "chunk-budget")
    report = await wait_settled(client, campaign_id)
    assert report["counts"]["processed"] == 4, report["counts"]
    assert await _received(client, sandbox) == sorted(recipients)
    jobs = await _jobs(client)
    assert [len(j["payload"]["message_ids"]) for j in sorted(jobs, key=lambda j: j["id"])] == [
        4,
        3,
        2,
        1,
    ]
    assert all(j["status"] == "done" and j["attempts"] == 1 for j in jobs)


@pytest.mark.parametrize(
    ("io_hub", "lean_calls"),
    [({}, True), ({"io": {"http_client": "aiohttp"}}, False)],
    indirect=["io_hub"],
)
async def test_each_transport_carries_the_app_io_calls(  # type: ignore[no-untyped-def]
    io_hub, lean_calls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default App IO calls go through the lean client; ``http_client = "aiohttp"``
    (e.g. behind a proxy) sends them through the shared session instead. Both deliver."""
    client, sandbox, population, key, _ = io_hub
    seen: list[str] = []
    lean_request = LeanHttpClient.request

    async def counting(self: LeanHttpClient, method: str, url: str, **kw: Any) -> Any:
        seen.append(url)
        return await lean_request(self, method, url, **kw)

    monkeypatch.setattr(LeanHttpClient, "request", counting)
    recipients = allowed_citizens(population, 3)
    report = await wait_settled(client, await _campaign(client, key, recipients, "transport"))
    assert report["counts"]["processed"] == 3
    assert await _received(client, sandbox) == sorted(recipients)
    io_calls = [u for u in seen if u.startswith(str(sandbox.make_url("/api/v1")))]
    if lean_calls:  # 3 profile checks, 3 submits and at least 3 status polls
        assert len(io_calls) >= 9, io_calls
    else:
        assert io_calls == []


async def test_a_message_waiting_for_its_rate_limit_slot_is_still_queued(  # type: ignore[no-untyped-def]
    io_hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submit's rate-limit slot is taken before `sending` is committed: a worker that
    dies while App IO's limit holds it back leaves the message `queued` (nothing was sent),
    not `unknown`."""
    client, _, population, key, _ = io_hub
    calls, waiting, gate = 0, asyncio.Event(), asyncio.Event()
    original = DbRateLimiter.acquire

    async def acquire(self: DbRateLimiter, name: str) -> float:
        nonlocal calls
        calls += 1
        if calls == 2:  # the submit's slot (the profile check took the first)
            waiting.set()
            await gate.wait()
        return await original(self, name)

    monkeypatch.setattr(DbRateLimiter, "acquire", acquire)
    [cf] = allowed_citizens(population, 1)
    campaign_id = await _campaign(client, key, [cf], "slot-first")
    await asyncio.wait_for(waiting.wait(), 10)
    async with reading(client.app[ENGINE]) as conn:
        held = await campaigns.report(conn, campaign_id)
    assert held is not None and held["counts"]["queued"] == 1, held["counts"]
    gate.set()
    report = await wait_settled(client, campaign_id)
    assert report["counts"]["processed"] == 1
