"""The SEND platform of the hub against the SEND twin over real sockets (SQLite and
PostgreSQL): a notification from the API goes through the outbox (upload, request,
acceptance) and reaches SEND once even when every answer to the request is dropped (the
twin's own record says so); a refusal is visible in the API; the POST is idempotent; another
tenant's key sees nothing; the progress stream's events are stored once and announced by
``send.notification.status`` webhooks."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from factories import drain_outbox
from send_stack import Stack
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from sportello import apikeys
from sportello.app import ENGINE, SERVICES, create_app
from sportello.config import parse_config
from sportello.outbox import store
from sportello.platforms.send.service import (
    SEND_QUEUE,
    SEND_STREAMS,
    Change,
    HeldBatcher,
    QueuedRequest,
    SendRows,
    _Revealed,
)
from sportello.platforms.send.tables import send_events, send_notifications
from sportello.sandbox.send.app import DEMO_API_KEY
from sportello.schema import idempotency_keys, ledger, outbox

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
BASE = "/api/v1/tenants/demo/send/notifications"


def tenant(
    tenant_id: str, fiscal_code: str, stack: Stack, tmp_path: Path, sink_url: str
) -> dict[str, Any]:
    (tmp_path / "send.key").write_text(DEMO_API_KEY)
    return {
        "id": tenant_id,
        "name": "Comune di Esempio",
        "ipa_code": "c_z999",
        "fiscal_code": fiscal_code,
        "cadastral_code": "Z999",
        "pdnd": stack.pdnd_section(tmp_path / "pdnd.pem"),
        "send": {
            "base_url": stack.send_url,
            "api_key": {"file": str(tmp_path / "send.key")},
            "purpose_id": stack.send_purpose,
            "acceptance_poll_seconds": 0.05,
        },
        "webhooks": [{"url": sink_url, "events": ["send.*"]}],
    }


@pytest.fixture
async def hub(
    tmp_path: Path, db_url: str, sink: Any, stack: Stack
) -> AsyncIterator[tuple[TestClient, dict[str, str]]]:
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {
                "workers": False,
                "poll_interval": 0.02,
                "backoff_base": 0.05,
                "backoff_cap": 0.2,
            },
            "tenants": [
                tenant("demo", "00000000999", stack, tmp_path, sink.url),
                tenant("other", "00000000998", stack, tmp_path, sink.url),
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        keys = {}
        async with app[ENGINE].begin() as conn:
            for t in ("demo", "other"):
                keys[t] = await apikeys.create(
                    conn,
                    tenant_id=t,
                    name="send",
                    scopes=["read", "write", "personal_data"],
                    now=app[SERVICES].clock.now(),
                )
        yield client, keys


async def drain(client: TestClient) -> None:
    """Run one outbox worker until nothing is pending or running."""
    await drain_outbox(client.app)


def body(protocol: str, *, digital: bool = True, address: bool = True) -> dict[str, Any]:
    recipient: dict[str, Any] = {
        "recipientType": "PF",
        "taxId": "RSSMRA80A01H501U",
        "denomination": "Mario Rossi",
    }
    if digital:
        recipient["digitalDomicile"] = {"type": "PEC", "address": "mario.rossi@pec.example.it"}
    if address:
        recipient["physicalAddress"] = {
            "address": "Via Roma 1",
            "municipality": "Roma",
            "zip": "00100",
            "province": "RM",
        }
    return {
        "pa_protocol_number": protocol,
        "subject": "Verbale di accertamento violazione codice della strada",
        "taxonomy_code": "010101P",
        "recipients": [recipient],
        "documents": [{"title": "Verbale", "content_base64": base64.b64encode(PDF).decode()}],
    }


async def post(
    client: TestClient, key: str, payload: dict[str, Any], idem: str, tenant: str = "demo"
) -> tuple[int, dict[str, Any]]:
    r = await client.post(
        f"/api/v1/tenants/{tenant}/send/notifications",
        json=payload,
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem},
    )
    return r.status, await r.json()


async def twin_record(stack: Stack, protocol: str) -> list[dict[str, Any]]:
    async with stack.session.get(stack.send_url + "/__sandbox/notifications") as response:
        found: list[dict[str, Any]] = (await response.json())["notifications"]
    return [n for n in found if n.get("paProtocolNumber") == protocol]


async def test_accepted_once_through_the_outbox_with_dropped_answers(
    hub: tuple[TestClient, dict[str, str]], stack: Stack, sink: Any
) -> None:
    client, keys = hub
    auth = {"Authorization": f"Bearer {keys['demo']}"}
    reader = client.app[SEND_STREAMS]
    assert await reader.read("demo") == {"events": 0, "webhooks": 0}  # the stream exists
    # SEND stores the request and every answer to it is lost (all the client's retries)
    async with stack.session.post(
        stack.send_url + "/__sandbox/faults",
        json={"mode": "drop", "count": 4, "operations": ["sendNewNotificationV26"]},
    ) as r:
        assert r.status == 201
    status, queued = await post(client, keys["demo"], body("VERB-2026-1"), "k-1")
    assert status == 202 and queued["status"] == "queued"
    await drain(client)
    [record] = await twin_record(stack, "VERB-2026-1")  # exactly one request reached SEND
    async with client.app[ENGINE].connect() as conn:
        outcomes = (
            await conn.execute(
                select(ledger.c.outcome).where(ledger.c.kind == "send.upload").order_by(ledger.c.id)
            )
        ).scalars()
        # the first attempt lost every answer; the second asked SEND and sent nothing
        assert list(outcomes) == ["retry", "ok"]
    assert record["idempotenceToken"] == queued["idempotence_token"]
    r = await client.get(f"{BASE}/{queued['id']}", headers=auth)
    detail = await r.json()
    assert detail["status"] == "accepted" and detail["iun"] == record["iun"]
    assert detail["recipients"] == [{"tax_id": "RSSMRA80A01H501U", "denomination": "Mario Rossi"}]
    # the stream: every event stored once, a webhook per status change
    first = await reader.read("demo")
    assert first["events"] > 0 and first["webhooks"] > 0
    assert await reader.read("demo") == {"events": 0, "webhooks": 0}
    async with client.app[ENGINE].connect() as conn:
        stored = (await conn.execute(select(func.count()).select_from(send_events))).scalar()
        distinct = (
            await conn.execute(select(func.count(func.distinct(send_events.c.event_id))))
        ).scalar()
    assert stored == distinct == first["events"]
    detail = await (await client.get(f"{BASE}/{queued['id']}", headers=auth)).json()
    categories = [e["category"] for e in detail["timeline"]]
    assert "REQUEST_ACCEPTED" in categories
    assert detail["send_status"] in ("ACCEPTED", "DELIVERING", "DELIVERED", "EFFECTIVE_DATE")
    await drain(client)  # the webhooks
    events = [json.loads(r["raw"]) for r in sink.received]  # type: ignore[arg-type]
    statuses = [e["data"] for e in events if e["event"] == "send.notification.status"]
    assert statuses[0]["status"] == "accepted" and statuses[0]["iun"] == record["iun"]
    assert len([s for s in statuses if s.get("send_status")]) == first["webhooks"]
    # reading the recipients is audited
    audit = (await (await client.get("/api/v1/tenants/demo/audit", headers=auth)).json())["items"]
    assert [(a["action"], a["subject"]) for a in audit] == [
        ("send.notification.read", "RSSMRA80A01H501U")
    ] * 2


async def test_refusal_is_visible_and_other_tenants_see_nothing(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    # neither a digital domicile nor a physical address: SEND refuses NOT_VALID_ADDRESS
    status, queued = await post(
        client, keys["demo"], body("VERB-2026-2", digital=False, address=False), "k-2"
    )
    assert status == 202
    await drain(client)
    r = await client.get(
        f"{BASE}/{queued['id']}", headers={"Authorization": f"Bearer {keys['demo']}"}
    )
    detail = await r.json()
    assert detail["status"] == "refused" and detail["iun"] is None
    assert [e["code"] for e in detail["errors"]] == ["NOT_VALID_ADDRESS"]
    [record] = await twin_record(stack, "VERB-2026-2")
    assert record["state"] == "REFUSED"
    other = {"Authorization": f"Bearer {keys['other']}"}
    assert (await client.get(f"{BASE}/{queued['id']}", headers=other)).status == 404
    r = await client.get(f"/api/v1/tenants/other/send/notifications/{queued['id']}", headers=other)
    assert r.status == 404
    listed = await (
        await client.get("/api/v1/tenants/other/send/notifications", headers=other)
    ).json()
    assert listed["items"] == []
    # nothing to cancel in a refused notification
    r = await client.post(
        f"{BASE}/{queued['id']}/cancel",
        headers={"Authorization": f"Bearer {keys['demo']}", "Idempotency-Key": "c-1"},
    )
    assert r.status == 409


async def test_post_is_idempotent_and_checked(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    client, keys = hub
    first = await post(client, keys["demo"], body("VERB-2026-3"), "k-3")
    again = await post(client, keys["demo"], body("VERB-2026-3"), "k-3")
    assert first[0] == again[0] == 202 and first[1] == again[1]
    status, problem = await post(client, keys["demo"], body("VERB-2026-4"), "k-3")
    assert status == 422
    # the same protocol number under another key: a conflict, nothing queued twice
    status, problem = await post(client, keys["demo"], body("VERB-2026-3"), "k-4")
    assert status == 409 and "pa_protocol_number" in problem["detail"]
    # what SEND would refuse with a 400 is refused before it is queued, naming the field
    bad = body("VERB-2026-5")
    bad["recipients"][0]["taxId"] = "not-a-tax-id"
    status, problem = await post(client, keys["demo"], bad, "k-5")
    assert status == 400 and "recipients.0.taxId" in problem["detail"]
    bad = body("VERB-2026-5")
    bad["documents"][0]["content_base64"] = "!!!!"
    status, problem = await post(client, keys["demo"], bad, "k-6")
    assert status == 400 and "documents.0.content_base64" in problem["detail"]
    r = await client.post(
        BASE, json=body("VERB-2026-6"), headers={"Authorization": f"Bearer {keys['demo']}"}
    )
    assert r.status == 400  # no Idempotency-Key
    listed = await (
        await client.get(BASE, headers={"Authorization": f"Bearer {keys['demo']}"})
    ).json()
    assert [n["pa_protocol_number"] for n in listed["items"]] == ["VERB-2026-3"]
    await drain(client)
    assert len(await twin_record(stack, "VERB-2026-3")) == 1


async def test_jobs_queued_by_an_earlier_version_still_finish_once(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    """``send.upload`` now sends the request itself and ``send.acceptance`` carries the
    request id; a ``send.request`` job (after an upload that stopped at ``uploaded``) and an
    acceptance job with the notification id alone, as an earlier version queued them, still
    reach the same end, and SEND still has one request."""
    client, keys = hub
    engine = client.app[ENGINE]
    status, queued = await post(client, keys["demo"], body("VERB-2026-7"), "k-7")
    assert status == 202
    await drain(client)
    [record] = await twin_record(stack, "VERB-2026-7")
    n = send_notifications.c
    reset = {"iun": None, "accepted_at": None, "notification_request_id": None}
    for kind, status_before in (("send.request", "uploaded"), ("send.acceptance", "waiting")):
        async with engine.begin() as conn:
            values = dict(reset, status=status_before)
            if kind == "send.acceptance":  # the request id stays, as the request stored it
                values.pop("notification_request_id")
            await conn.execute(update(send_notifications).where(n.id == queued["id"]), values)
            await store.enqueue_many(
                conn,
                [store.NewJob("demo", kind, {"notification_id": queued["id"]})],
                now=client.app[SERVICES].clock.now(),
                default_max_attempts=5,
            )
        await drain(client)
        async with engine.connect() as conn:
            row = (await conn.execute(select(n.status, n.iun).where(n.id == queued["id"]))).one()
        assert (row.status, row.iun) == ("accepted", record["iun"]), kind
        assert len(await twin_record(stack, "VERB-2026-7")) == 1


async def test_posts_arriving_together_are_stored_together_and_stay_idempotent(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    """POSTs at the same time are stored in group commits (``NotificationQueue``); each is
    still answered once per Idempotency-Key, a protocol number is still the tenant's once,
    and every notification reaches SEND once."""
    client, keys = hub
    k = keys["demo"]
    plain = [post(client, k, body(f"VERB-2026-B{i}"), f"kb-{i}") for i in range(10)]
    twice = [post(client, k, body("VERB-2026-B20"), "kb-20") for _ in range(2)]
    same_protocol = [post(client, k, body("VERB-2026-B21"), f"kb-21-{i}") for i in range(2)]
    other_body = [post(client, k, body(f"VERB-2026-B2{i}"), "kb-22") for i in (2, 3)]
    answers = await asyncio.gather(*plain, *twice, *same_protocol, *other_body)
    ok = answers[:10]
    assert [s for s, _ in ok] == [202] * 10
    assert len({a["id"] for _, a in ok}) == 10
    assert answers[10] == answers[11] and answers[10][0] == 202  # one notification, one answer
    assert sorted(s for s, _ in answers[12:14]) == [202, 409]
    assert sorted(s for s, _ in answers[14:16]) == [202, 422]
    again = await post(client, k, body("VERB-2026-B3"), "kb-3")  # a replay after the batch
    assert again == ok[3]
    await drain(client)
    async with client.app[ENGINE].connect() as conn:
        statuses = (await conn.execute(select(send_notifications.c.status))).scalars().all()
    assert statuses == ["accepted"] * 13
    for protocol in [f"VERB-2026-B{i}" for i in range(10)] + ["VERB-2026-B20", "VERB-2026-B21"]:
        assert len(await twin_record(stack, protocol)) == 1, protocol


async def test_queue_many_stores_only_the_plain_requests(
    hub: tuple[TestClient, dict[str, str]],
) -> None:
    """The group commit stores a request only when nothing in the database or in the batch
    has its key or protocol number; the others get None (the API then runs them alone)."""
    client, keys = hub
    queue = client.app[SEND_QUEUE]
    now = client.app[SERVICES].clock.now()

    def item(key: str, protocol: str, tenant: str = "demo") -> QueuedRequest:
        wire = {
            "paProtocolNumber": protocol,
            "idempotenceToken": f"token-{key}",
            "subject": "Verbale",
            "recipients": [{"taxId": "RSSMRA80A01H501U", "denomination": "Mario Rossi"}],
        }
        return QueuedRequest(tenant, key, "digest", wire, [("Verbale", PDF)], ["sha"], "t", now)

    assert (await post(client, keys["demo"], body("P-1"), "q-1"))[0] == 202  # stored alone
    answers = await queue._queue_many(
        [
            item("q-1", "P-9"),  # the key has an answer
            item("q-2", "P-1"),  # the protocol number is taken
            item("q-3", "P-3"),
            item("q-3", "P-4"),  # the same key again in the batch
            item("q-5", "P-3"),  # the same protocol number again in the batch
            item("q-3", "P-3", tenant="other"),  # another tenant: its own keys and numbers
        ]
    )
    assert [a is None for a in answers] == [True, True, False, True, True, False]
    assert answers[2] is not None and answers[5] is not None
    assert answers[2]["pa_protocol_number"] == "P-3" and answers[2]["status"] == "queued"
    async with client.app[ENGINE].connect() as conn:
        i = idempotency_keys.c
        stored = (await conn.execute(select(i.tenant_id, i.key, i.body))).all()
        jobs = (await conn.execute(select(func.count()).select_from(outbox))).scalar()
    assert {(r.tenant_id, r.key) for r in stored} == {
        ("demo", "q-1"),
        ("demo", "q-3"),
        ("other", "q-3"),
    }
    assert json.loads(next(r.body for r in stored if r.tenant_id == "other")) == answers[5]
    assert jobs == 3  # one send.upload each


async def test_first_acceptance_check_runs_in_the_upload_job(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    """The twin decides at once: the job that sent the request asks for the acceptance
    ``acceptance_poll_seconds`` later (0.05 here) and commits the IUN; no acceptance job."""
    client, keys = hub
    status, queued = await post(client, keys["demo"], body("VERB-2026-8"), "k-8")
    assert status == 202
    await drain(client)
    [record] = await twin_record(stack, "VERB-2026-8")
    async with client.app[ENGINE].connect() as conn:
        n = send_notifications.c
        row = (await conn.execute(select(send_notifications).where(n.id == queued["id"]))).one()
        kinds = (await conn.execute(select(outbox.c.kind))).scalars().all()
    assert (row.status, row.iun) == ("accepted", record["iun"])
    assert row.notification_request_id == record["notificationRequestId"]
    assert row.accepted_at is not None
    assert "send.acceptance" not in kinds and "send.upload" in kinds


@pytest.mark.parametrize("stack", [{"acceptance_delay": 0.6}], indirect=True)
async def test_a_waiting_request_gets_an_acceptance_job_after_retry_after(
    hub: tuple[TestClient, dict[str, str]], stack: Stack
) -> None:
    """SEND answers WAITING with ``retryAfter`` (1 s from the twin): the row is committed
    ``waiting`` with its request id and a ``send.acceptance`` job due then, which takes it
    to ``accepted``."""
    client, keys = hub
    status, queued = await post(client, keys["demo"], body("VERB-2026-9"), "k-9")
    assert status == 202
    await drain(client)
    [record] = await twin_record(stack, "VERB-2026-9")
    async with client.app[ENGINE].connect() as conn:
        n = send_notifications.c
        row = (await conn.execute(select(send_notifications).where(n.id == queued["id"]))).one()
        jobs = (await conn.execute(select(outbox).where(outbox.c.kind == "send.acceptance"))).all()
    assert (row.status, row.iun) == ("accepted", record["iun"])
    [job] = jobs
    assert json.loads(job.payload)["request_id"] == record["notificationRequestId"]
    # due SEND's retryAfter after the answer (the row's commit comes a moment later)
    assert (job.next_attempt_at - job.created_at).total_seconds() >= 0.9


async def test_send_rows_change_only_rows_in_the_expected_status(
    hub: tuple[TestClient, dict[str, str]],
) -> None:
    """``SendRows.apply``: one transaction for what arrives together; a change applies only
    while the row is in its ``when`` status (a second change of the same row in the batch
    loses), and each row gets its own values."""
    client, keys = hub
    ids = [
        (await post(client, keys["demo"], body(f"VERB-2026-R{i}"), f"kr-{i}"))[1]["id"]
        for i in range(3)
    ]
    rows = SendRows(client.app[SERVICES])
    results = await asyncio.gather(
        rows.apply(Change(ids[0], "queued", {"status": "waiting", "iun": "IUN-A"})),
        rows.apply(Change(ids[1], "queued", {"status": "waiting", "iun": "IUN-B"})),
        rows.apply(Change(ids[1], "queued", {"status": "waiting", "iun": "IUN-X"})),
        rows.apply(Change(ids[2], "requesting", {"status": "waiting", "iun": "IUN-C"})),
    )
    assert list(results) == [True, True, False, False]
    async with client.app[ENGINE].connect() as conn:
        found = {
            r.id: (r.status, r.iun)
            for r in await conn.execute(
                select(
                    send_notifications.c.id, send_notifications.c.status, send_notifications.c.iun
                )
            )
        }
    assert found == {
        ids[0]: ("waiting", "IUN-A"),
        ids[1]: ("waiting", "IUN-B"),
        ids[2]: ("queued", None),
    }


def test_the_api_key_is_read_again_after_its_ttl() -> None:
    """SEND's API key (a file, perhaps encrypted) is read at most every few seconds, not on
    every call; a key replaced in its file is used once that time has passed."""
    reads: list[str] = []
    current = ["key-1"]

    def reveal() -> str:
        reads.append(current[0])
        return current[0]

    cached = _Revealed(reveal, ttl=60.0)
    assert [cached() for _ in range(3)] == ["key-1"] * 3 and reads == ["key-1"]
    current[0] = "key-2"
    assert cached() == "key-1"  # within the ttl
    fresh = _Revealed(reveal, ttl=0.0)
    assert fresh() == "key-2" and fresh() == "key-2" and reads == ["key-1", "key-2", "key-2"]


async def test_held_batcher_takes_the_batch_once_connected() -> None:
    """What arrives while the writer waits for the connection joins that transaction; an
    error reaches every caller of its batch (the next batch is still written); a unique
    constraint gives the ``conflict`` results."""
    gate = asyncio.Event()
    batches: list[list[str]] = []

    @asynccontextmanager
    async def connect() -> AsyncIterator[Any]:
        await gate.wait()
        yield None

    async def work(conn: Any, items: Sequence[str]) -> list[str | None]:
        batches.append(list(items))
        if "boom" in items:
            raise ValueError("boom")
        if "taken" in items:
            raise IntegrityError("INSERT", None, Exception("unique"))
        return [i.upper() for i in items]

    batcher: HeldBatcher[str, str | None] = HeldBatcher(
        connect, work, conflict=lambda items: [None] * len(items)
    )
    first = asyncio.ensure_future(batcher("a"))
    await asyncio.sleep(0.01)  # the writer now waits for the connection
    later = [asyncio.ensure_future(batcher(x)) for x in ("b", "c")]
    await asyncio.sleep(0.01)
    gate.set()
    assert await asyncio.gather(first, *later) == ["A", "B", "C"]
    assert batches == [["a", "b", "c"]]
    failed = await asyncio.gather(batcher("boom"), batcher("d"), return_exceptions=True)
    assert [type(r) for r in failed] == [ValueError, ValueError]
    assert await batcher("e") == "E"
    assert await asyncio.gather(batcher("taken"), batcher("f")) == [None, None]
