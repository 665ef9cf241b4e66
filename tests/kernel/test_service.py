"""The aiohttp service: health, readiness, metrics, webhook delivery through the worker,
startup refusals (outdated schema, a second SQLite replica)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sportello import migrate
from sportello.app import ENGINE, SchemaOutdated, create_app
from sportello.clock import SystemClock
from sportello.config import HubConfig, parse_config
from sportello.connectors.webhook import verify
from sportello.db import ReplicaLockError
from sportello.outbox import store
from sportello.outbox.store import NewJob

TENANT = {
    "id": "demo",
    "name": "Comune di Esempio",
    "ipa_code": "c_z999",
    "fiscal_code": "00000000999",
    "cadastral_code": "Z999",
}


def make_config(db_url: str) -> HubConfig:
    return parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"poll_interval": 0.02, "backoff_base": 0.01},
            "tenants": [TENANT],
        }
    )


@pytest.fixture
async def client(db_url: str):  # type: ignore[no-untyped-def]
    app = create_app(make_config(db_url), apply_migrations=True)
    async with TestClient(TestServer(app)) as c:
        yield c


async def test_health_readiness_and_metrics(client: TestClient) -> None:
    r = await client.get("/healthz")
    assert r.status == 200 and (await r.json())["status"] == "ok"
    assert len(r.headers["X-Request-ID"]) == 32
    r = await client.get("/readyz", headers={"X-Request-ID": "abc"})
    assert r.status == 200 and r.headers["X-Request-ID"] == "abc"
    assert await r.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "platforms": "ok"},
        "problems": [],
    }
    r = await client.get("/metrics")
    text = await r.text()
    assert r.status == 200 and r.content_type == "text/plain"
    assert 'sportello_outbox_jobs{status="pending"} 0.0' in text
    assert 'sportello_http_requests_total{method="GET",route="/readyz",status="200"} 1.0' in text
    assert "sportello_http_request_duration_seconds_bucket" in text
    r = await client.get("/nowhere")
    assert r.status == 404


async def test_webhook_delivered_signed_through_the_outbox(
    client: TestClient,
    sink,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("DEMO_WEBHOOK_SECRET", "whsec-demo")
    engine = client.app[ENGINE]
    async with engine.begin() as conn:
        [key] = await store.enqueue_many(
            conn,
            [
                NewJob(
                    "demo",
                    "webhook",
                    {
                        "url": sink.url,
                        "event": "receipt.stored",
                        "data": {"n": 7},
                        "secret": {"env": "DEMO_WEBHOOK_SECRET"},
                    },
                )
            ],
            now=SystemClock().now(),
            default_max_attempts=3,
        )
    sink.respond = lambda body, attempt: (503, {"Retry-After": "0"}) if attempt == 1 else (200, {})
    async with asyncio.timeout(10):
        while True:
            async with engine.connect() as conn:
                if await store.counts_by_status(conn) == {"done": 1}:
                    break
            await asyncio.sleep(0.02)
    assert [r["key"] for r in sink.received] == [key, key]
    last = sink.received[-1]
    assert verify(b"whsec-demo", last["raw"], last["signature"], now=time.time())
    assert not verify(b"wrong", last["raw"], last["signature"], now=time.time())
    text = await (await client.get("/metrics")).text()
    assert 'sportello_outbox_attempts_total{kind="webhook",outcome="ok"} 1.0' in text
    assert 'sportello_outbox_attempts_total{kind="webhook",outcome="retry"} 1.0' in text


async def test_readiness_fails_when_the_schema_is_behind(db_url: str) -> None:
    # no outbox worker or periodic task: their transactions would deadlock with the DROPs
    # of the downgrade on PostgreSQL (the test is about /readyz, not about a live downgrade)
    app = create_app(make_config(db_url), apply_migrations=True, run_workers=False)
    async with TestClient(TestServer(app)) as client:
        await _readiness_after_downgrade(client)


async def _readiness_after_downgrade(client: TestClient) -> None:
    engine = client.app[ENGINE]

    def downgrade(conn):  # type: ignore[no-untyped-def]
        from alembic import command

        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")

    async with engine.begin() as conn:
        await conn.run_sync(downgrade)
    r = await client.get("/readyz")
    assert r.status == 503
    assert (await r.json())["checks"]["migrations"] == f"at None, need {migrate.head_revision()}"


async def test_refuses_to_start_on_an_unmigrated_database(empty_db_url: str) -> None:
    app = create_app(make_config(empty_db_url), apply_migrations=False)
    with pytest.raises(SchemaOutdated, match="run `sportello db upgrade --config"):
        async with TestClient(TestServer(app)):
            pass


async def test_a_second_replica_on_sqlite_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = make_config(f"sqlite+aiosqlite:///{tmp_path / 'one.sqlite'}")
    async with TestClient(TestServer(create_app(config, apply_migrations=True))):
        second = create_app(config)
        with pytest.raises(ReplicaLockError, match="SQLite supports one replica"):
            async with TestClient(TestServer(second)):
                pass
        # without workers (an HTTP-only replica) it may start
        async with TestClient(TestServer(create_app(config, run_workers=False))) as c:
            assert (await c.get("/readyz")).status == 200


async def test_readiness_lists_what_stops_each_configured_platform(  # type: ignore[no-untyped-def]
    db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Ready means ready: SPID keys missing, no IdP list, a secret unset, ANPR without its
    purposes, an adapter file that cannot be read: 503 with one problem each; the SUAP poller
    that fails on the unreadable file says so once, not with a traceback every round."""
    monkeypatch.delenv("READY_PDND_KEY", raising=False)
    config = parse_config(
        {
            "server": {"public_url": "https://sportello.example.it"},
            "database": {"url": db_url},
            "tenants": [
                {
                    **TENANT,
                    "spid": {"keys_dir": "keys/spid", "contact_email": "urp@example.it"},
                    "pdnd": {
                        "client_id": "5c0c53b4-7a51-4f7e-9c43-0d6f2b7d2a10",
                        "key": {"env": "READY_PDND_KEY"},
                        "token_url": "https://auth.uat.interop.pagopa.it/token.oauth2",
                    },
                    "anpr": {"base_url": "https://anpr.example.it/MinInternoPortaANPR-PDND"},
                    "adapters": {
                        "registry": {"plugin": "csv", "options": {"path": "anagrafe.csv"}},
                        "suap": {"plugin": "json", "options": {"path": "suap.json"}},
                    },
                    "suap": {"poll_seconds": 0.05},
                }
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as c:
        r = await c.get("/readyz")
        body = await r.json()
        assert r.status == 503 and body["status"] == "not ready"
        assert body["checks"]["platforms"] == "6 problem(s)"
        found = {(p["tenant"], p["platform"]): p["problem"] for p in body["problems"]}
        assert found.keys() == {
            ("demo", "spid"),  # keys, and no IdP (two problems, one key: see below)
            ("demo", "pdnd"),
            ("demo", "anpr"),
            ("demo", "adapters.registry"),
            ("demo", "adapters.suap"),
        }
        spid = [p["problem"] for p in body["problems"] if p["platform"] == "spid"]
        assert spid[0].startswith("keys_dir: ") and "sportello keys spid" in spid[0]
        assert spid[1].startswith("no IdP is known")
        assert found[("demo", "pdnd")] == (
            "key: secret environment variable READY_PDND_KEY is not set"
        )
        assert "C030, C020, C021" in found[("demo", "anpr")]
        assert found[("demo", "adapters.registry")].endswith("anagrafe.csv does not exist")
        assert found[("demo", "adapters.suap")].endswith("suap.json does not exist")

        await asyncio.sleep(0.5)  # the SUAP poller runs ~10 rounds on the missing file
        from sportello.app import PERIODIC

        assert app[PERIODIC].rounds["suap.notify:demo"] >= 3
        said = [r for r in caplog.records if "round of suap.notify:demo failed" in r.getMessage()]
        assert len(said) == 1 and not said[0].exc_info  # once, one line

        (tmp_path / "anagrafe.csv").write_text("fiscal_code;family_name\n")
        from sportello.connectors.pdnd.keys import generate_key

        monkeypatch.setenv("READY_PDND_KEY", generate_key()[0].decode())
        body = await (await c.get("/readyz")).json()
        assert {p["platform"] for p in body["problems"]} == {"spid", "anpr", "adapters.suap"}
