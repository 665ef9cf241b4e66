"""SUAP practices through the hub: the API shows an applicant's practices (audited), and a
status change is announced once, as an App IO message and a signed webhook."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from sportello import apikeys
from sportello.app import CLOCK, ENGINE, create_app
from sportello.appkeys import SERVICES
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.platforms.io.tables import io_messages
from sportello.platforms.suap.service import SUAP, SuapService
from sportello.plugins import Plugins
from sportello.schema import outbox

ANNA = "RSSNNA80A41H501L"
SRL = "01234567890"
EXPORT = {
    "practices": [
        {
            "id": "SUAP-2025-0012",
            "applicant_fiscal_code": ANNA,
            "applicant_name": "Anna Rossi",
            "title": "Apertura bar in via Roma 3",
            "kind": "SCIA",
            "submitted_at": "2025-12-01T09:00:00+01:00",
            "events": [
                {"status": "presentata", "at": "2025-12-01T09:00:00+01:00"},
                {"status": "in istruttoria", "at": "2025-12-10T10:00:00+01:00"},
                {
                    "status": "conclusa",
                    "at": "2026-01-15T12:00:00+01:00",
                    "note": "Esito positivo.",
                },
            ],
            "documents": [
                {"id": "D1", "name": "scia.pdf", "media_type": "application/pdf", "size": 1024}
            ],
        },
        {
            "id": "SUAP-2025-0099",
            "applicant_fiscal_code": SRL,
            "title": "Insegna",
            "kind": "autorizzazione",
            "submitted_at": "2025-11-01T09:00:00+01:00",
            "events": [
                {"status": "presentata", "at": "2025-11-01T09:00:00+01:00"},
                {"status": "sospesa", "at": "2026-01-20T09:00:00+01:00"},
            ],
        },
    ]
}


@pytest.fixture
async def hub(tmp_path: Path, db_url: str, sink):  # type: ignore[no-untyped-def]
    (tmp_path / "suap.json").write_text(json.dumps(EXPORT))
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
                    "io": {
                        "base_url": "http://127.0.0.1:9/api/v1",
                        "services": [{"id": "01DEMOSERVICE0000000000000", "key": {"env": "X"}}],
                    },
                    "suap": {"io_service": "01DEMOSERVICE0000000000000"},
                    "adapters": {"suap": {"plugin": "json", "options": {"path": "suap.json"}}},
                    "webhooks": [{"url": sink.url, "events": ["suap.*"]}],
                }
            ],
        },
        source=str(tmp_path / "hub.toml"),
        base_dir=tmp_path,
    )
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    app = create_app(config, apply_migrations=True, clock=clock)
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn, tenant_id="demo", name="suap", scopes=["personal_data"], now=clock.now()
            )
        yield client, key


async def test_practices_are_shown_and_audited(hub) -> None:  # type: ignore[no-untyped-def]
    client, key = hub
    auth = {"Authorization": f"Bearer {key}"}
    r = await client.get(
        f"/api/v1/tenants/demo/suap/practices?applicant={ANNA.lower()}", headers=auth
    )
    assert r.status == 200
    [practice] = (await r.json())["items"]
    assert practice["id"] == "SUAP-2025-0012" and practice["status"] == "conclusa"
    r = await client.get("/api/v1/tenants/demo/suap/practices/SUAP-2025-0012", headers=auth)
    detail = await r.json()
    assert [e["status"] for e in detail["timeline"]] == ["presentata", "in istruttoria", "conclusa"]
    assert detail["documents"][0]["name"] == "scia.pdf"
    assert (
        await client.get("/api/v1/tenants/demo/suap/practices/NOPE", headers=auth)
    ).status == 404
    r = await client.get("/api/v1/tenants/demo/suap/practices?applicant=x", headers=auth)
    assert r.status == 400
    audit = (await (await client.get("/api/v1/tenants/demo/audit", headers=auth)).json())["items"]
    assert [(a["action"], a["subject"]) for a in audit] == [
        ("suap.practices", ANNA),
        ("suap.practice", ANNA),
    ]


async def test_a_status_change_is_announced_once(hub) -> None:  # type: ignore[no-untyped-def]
    client, _ = hub
    suap = client.app[SUAP]
    assert await suap.notify("demo") == {"changes": 0, "messages": 0, "events": 0}  # sets cursor
    second = await suap.notify("demo")
    # two changes after 2026-01-01: Anna's practice (a person: App IO) and the company's
    assert second == {"changes": 2, "messages": 1, "events": 2}
    assert await suap.notify("demo") == {"changes": 0, "messages": 0, "events": 0}
    engine = client.app[ENGINE]
    async with engine.connect() as conn:
        [message] = (await conn.execute(select(io_messages))).all()
        kinds = sorted((await conn.execute(select(outbox.c.kind))).scalars())
    content = json.loads(message.content)
    assert message.fiscal_code == ANNA and message.status == "queued"
    assert content["subject"] == "Pratica SUAP SUAP-2025-0012: conclusa"
    assert "Esito positivo." in content["markdown"]
    assert kinds == ["io.message", "webhook", "webhook"]
    assert client.app[CLOCK].now() == datetime(2026, 1, 1, tzinfo=UTC)


async def test_a_new_export_is_read_without_a_restart(hub, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, _ = hub
    suap = client.app[SUAP]
    await suap.notify("demo")  # cursor at 2026-01-01
    await suap.notify("demo")  # the two changes already in the export
    export = json.loads((tmp_path / "suap.json").read_text())
    export["practices"][1]["events"].append(
        {"status": "riattivata", "at": "2026-02-01T09:00:00+01:00"}
    )
    (tmp_path / "suap.json").write_text(json.dumps(export))
    assert await suap.notify("demo") == {"changes": 1, "messages": 0, "events": 1}


async def test_without_the_io_platform_changes_are_announced_by_webhook_only(hub, sink) -> None:  # type: ignore[no-untyped-def]
    """SUAP reaches App IO only through the kernel (``hub_queue_message``): with the io
    platform disabled, nothing lands in its tables and the webhook says ``"io": false``."""
    client, _ = hub
    suap = SuapService(client.app[SERVICES], Plugins(["io"]))
    assert await suap.notify("demo") == {"changes": 0, "messages": 0, "events": 0}
    assert await suap.notify("demo") == {"changes": 2, "messages": 0, "events": 2}
    async with client.app[ENGINE].connect() as conn:
        assert (await conn.execute(select(io_messages))).all() == []
        jobs = (await conn.execute(select(outbox.c.kind, outbox.c.payload))).all()
    assert sorted(kind for kind, _ in jobs) == ["webhook", "webhook"]
    assert [json.loads(p)["data"]["io"] for _, p in jobs] == [False, False]
