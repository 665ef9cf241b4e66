"""The REST API: keys and scopes, tenant isolation over every route, problem+json errors,
pagination, and answers that validate against the served OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from api_contract import Contract
from sqlalchemy import delete, update

from sportello import apikeys, audit
from sportello.app import CLOCK, ENGINE, create_app
from sportello.clock import FakeClock
from sportello.config import parse_config
from sportello.outbox import store
from sportello.outbox.store import NewJob
from sportello.schema import audit_log

TENANTS = [
    {
        "id": tid,
        "name": f"Comune di {tid.title()}",
        "ipa_code": f"c_{tid[:4]}",
        "fiscal_code": fc,
        "cadastral_code": cc,
    }
    for tid, fc, cc in (("demo", "00000000999", "Z999"), ("altro", "00000000888", "Z888"))
]


@pytest.fixture
async def api(db_url: str):  # type: ignore[no-untyped-def]
    config = parse_config(
        {"database": {"url": db_url}, "outbox": {"workers": False}, "tenants": TENANTS}
    )
    app = create_app(config, apply_migrations=True)
    async with TestClient(TestServer(app)) as client:
        engine, now = app[ENGINE], app[CLOCK].now()
        keys: dict[str, str] = {}
        async with engine.begin() as conn:
            keys["demo"] = await apikeys.create(
                conn, tenant_id="demo", name="gestionale", scopes=["read"], now=now
            )
            keys["demo_pd"] = await apikeys.create(
                conn, tenant_id="demo", name="anagrafe", scopes=["read", "personal_data"], now=now
            )
            keys["altro"] = await apikeys.create(
                conn, tenant_id="altro", name="x", scopes=["read", "personal_data"], now=now
            )
            keys["demo_admin_like"] = await apikeys.create(
                conn,
                tenant_id="demo",
                name="all",
                scopes=["read", "write", "personal_data"],
                now=now,
            )
            keys["admin"] = await apikeys.create(
                conn, tenant_id=None, name="ops", scopes=["admin"], now=now
            )
            for tenant in ("demo", "altro"):
                await store.enqueue_many(
                    conn,
                    [NewJob(tenant, "webhook", {"url": "http://x", "n": i}) for i in range(3)],
                    now=now,
                    default_max_attempts=3,
                )
                await audit.record(
                    conn,
                    audit.AuditEntry(
                        tenant_id=tenant,
                        actor="test",
                        action="resident.lookup",
                        subject="RSSMRA80A01H501U",
                        purpose="PROT.1",
                        sources="anpr",
                        outcome="ok",
                    ),
                    at=now,
                )
        yield client, keys


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_openapi_describes_every_route_and_nothing_else(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    served = {
        (r.method, r.resource.canonical)
        for r in client.app.router.routes()
        if r.resource is not None
        and r.resource.canonical.startswith("/api/v1/")
        and r.method != "HEAD"
        and not r.resource.canonical.endswith("openapi.json")
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert served == documented


async def test_keys_are_required_and_checked(api) -> None:  # type: ignore[no-untyped-def]
    client, keys = api
    r = await client.get("/api/v1/tenants")
    assert r.status == 401 and r.content_type == "application/problem+json"
    assert "Authorization: Bearer sk_" in (await r.json())["detail"]
    bad = keys["demo"][:-3] + "xyz"
    assert (await client.get("/api/v1/tenants", headers=auth(bad))).status == 401
    assert (await client.get("/api/v1/tenants", headers=auth("nonsense"))).status == 401
    engine = client.app[ENGINE]
    async with engine.begin() as conn:
        await apikeys.revoke(conn, keys["demo"].split("_")[1], now=client.app[CLOCK].now())
    r = await client.get("/api/v1/tenants", headers=auth(keys["demo"]))
    assert r.status == 401 and "revoked" in (await r.json())["detail"]


async def test_a_revoked_key_is_refused_within_the_cache_ttl(db_url: str) -> None:
    """A key found valid is not read again for apikeys.CACHE_TTL; revoked by another process
    (the CLI), it is refused once that time has passed, and a wrong or unknown key is never
    served from the cache."""
    clock = FakeClock()
    config = parse_config(
        {"database": {"url": db_url}, "outbox": {"workers": False}, "tenants": TENANTS}
    )
    app = create_app(config, apply_migrations=True, clock=clock)
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn, tenant_id="demo", name="gestionale", scopes=["read"], now=clock.now()
            )
        assert (await client.get("/api/v1/tenants", headers=auth(key))).status == 200
        for wrong in (key[:-3] + "xyz", key + "x", "sk_000000000000_" + key.split("_", 2)[2]):
            assert (await client.get("/api/v1/tenants", headers=auth(wrong))).status == 401
        async with app[ENGINE].begin() as conn:
            await apikeys.revoke(conn, key.split("_")[1], now=clock.now())
        clock.advance(apikeys.CACHE_TTL.total_seconds() - 1)
        assert (await client.get("/api/v1/tenants", headers=auth(key))).status == 200
        clock.advance(1)
        r = await client.get("/api/v1/tenants", headers=auth(key))
        assert r.status == 401 and "revoked" in (await r.json())["detail"]
        # the use is still recorded once a minute, not on every cached request
        async with app[ENGINE].begin() as conn:
            key2 = await apikeys.create(
                conn, tenant_id="demo", name="altro", scopes=["read"], now=clock.now()
            )
        marks = []
        for _ in range(3):
            assert (await client.get("/api/v1/tenants", headers=auth(key2))).status == 200
            async with app[ENGINE].connect() as conn:
                rows = await apikeys.listing(conn)
            marks.append(next(r["last_used_at"] for r in rows if r["name"] == "altro"))
            clock.advance(2)
        assert marks[0] is not None and marks[0] == marks[1] == marks[2]


async def test_a_tenant_key_gets_404_on_every_route_of_another_tenant(api) -> None:  # type: ignore[no-untyped-def]
    client, keys = api
    async with client.app[ENGINE].connect() as conn:
        other_job = (await store.list_rows(conn, tenant_id="altro"))[0]["id"]
        own_job = (await store.list_rows(conn, tenant_id="demo"))[0]["id"]
    doc = await (await client.get("/api/v1/openapi.json")).json()
    tenant_routes = [
        (method, p) for p, ops in doc["paths"].items() if "{tenant}" in p for method in ops
    ]
    assert len(tenant_routes) >= 6
    for method, template in tenant_routes:
        foreign = (
            template.replace("{tenant}", "altro")
            .replace("{job_id}", str(other_job))
            .replace("{campaign_id}", "1")
            .replace("{message_id}", "1")
            .replace("{fiscal_code}", "RSSMRA80A01H501U")
            .replace("{practice_id}", "SUAP-1")
            .replace("{iupd}", "IUPD-1")
            .replace("{nav}", "301000000000000199")
            .replace("{receipt_id}", "R-1")
            .replace("{notification_id}", "1")
            .replace("{legal_fact_id}", "PN_LEGAL_FACTS-1.pdf")
            .replace("{office_id}", "anagrafe")
            .replace("{service_id}", "cie")
            .replace("{code}", "ABCD-EFGH-JKMN")
            .replace("{ref}", "R-1")
        )
        for key in ("demo_pd", "demo_admin_like"):
            r = await client.request(method, foreign, headers=auth(keys[key]))
            assert r.status == 404, (method, foreign)
            assert (await r.json())["detail"] == "tenant 'altro' not found"
        if method != "get":
            continue
        # and the same route works for the tenant's own key, and for an admin key
        # the tenant's own key gets past isolation: what it meets next is the route's own
        # answer (no campaign exists; residents and SUAP lists need a query parameter; the
        # tenant has no SUAP adapter)
        expected = 200
        if any(
            f"{{{name}}}" in template for name in ("campaign_id", "message_id", "notification_id")
        ):
            expected = 404  # nothing of that id exists for the tenant
        elif "{fiscal_code}" in template or template.endswith("/suap/practices"):
            expected = 400
        elif (
            "{practice_id}" in template
            or "/pagopa/" in template
            or "/booking/" in template
            or template.endswith(("/requests", "/requests/{ref}"))
        ):
            # no SUAP adapter, no pagoPA settings, no [tenants.booking], no [tenants.requests]
            # (the ratings list needs no settings: 200, empty)
            expected = 409
        r = await client.get(foreign, headers=auth(keys["altro"]))
        assert r.status == expected, foreign
        r = await client.get(foreign, headers=auth(keys["admin"]))
        assert r.status == expected, foreign
    # a job id of another tenant under one's own tenant is 404 too
    r = await client.get(f"/api/v1/tenants/demo/outbox/{other_job}", headers=auth(keys["demo"]))
    assert r.status == 404
    r = await client.get(f"/api/v1/tenants/demo/outbox/{own_job}", headers=auth(keys["demo"]))
    assert r.status == 200
    listing = await (await client.get("/api/v1/tenants", headers=auth(keys["demo"]))).json()
    assert [t["id"] for t in listing["items"]] == ["demo"]


async def test_scopes_pagination_and_contract(api) -> None:  # type: ignore[no-untyped-def]
    client, keys = api
    contract = Contract(await (await client.get("/api/v1/openapi.json")).json())

    async def get(url: str, key: str, template: str, status: int = 200) -> Any:
        r = await client.get(url, headers=auth(keys[key]))
        assert r.status == status, await r.text()
        body = await r.json()
        contract.check(template, status, body, r.content_type)
        return body

    await get("/api/v1/tenants", "admin", "/api/v1/tenants")
    await get("/api/v1/tenants/demo", "demo", "/api/v1/tenants/{tenant}")
    first = await get(
        "/api/v1/tenants/demo/outbox?limit=2", "demo", "/api/v1/tenants/{tenant}/outbox"
    )
    assert len(first["items"]) == 2 and first["next"] is not None
    rest = await get(
        f"/api/v1/tenants/demo/outbox?limit=2&after={first['next']}",
        "demo",
        "/api/v1/tenants/{tenant}/outbox",
    )
    assert len(rest["items"]) == 1 and rest["next"] is None
    assert {i["tenant_id"] for i in first["items"] + rest["items"]} == {"demo"}
    job = await get(
        f"/api/v1/tenants/demo/outbox/{first['items'][0]['id']}",
        "demo",
        "/api/v1/tenants/{tenant}/outbox/{job_id}",
    )
    assert job["ledger"] == [] and "payload" not in job
    # audit needs personal_data
    denied = await get("/api/v1/tenants/demo/audit", "demo", "/api/v1/tenants/{tenant}/audit", 403)
    assert "lacks the 'personal_data' scope" in denied["detail"]
    entries = await get("/api/v1/tenants/demo/audit", "demo_pd", "/api/v1/tenants/{tenant}/audit")
    assert [e["tenant_id"] for e in entries["items"]] == ["demo"]
    bad = await get(
        "/api/v1/tenants/demo/outbox?limit=9999", "demo", "/api/v1/tenants/{tenant}/outbox", 400
    )
    assert bad["detail"] == "limit must be between 1 and 500"
    bad = await get(
        "/api/v1/tenants/demo/audit?since=yesterday",
        "demo_pd",
        "/api/v1/tenants/{tenant}/audit",
        400,
    )
    assert bad["detail"] == "since must be an ISO 8601 date-time"


async def test_audit_log_is_append_only(api) -> None:  # type: ignore[no-untyped-def]
    client, _ = api
    engine = client.app[ENGINE]
    for stmt in (update(audit_log).values(purpose="changed"), delete(audit_log)):
        with pytest.raises(Exception, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(stmt)
    async with engine.connect() as conn:
        rows = await audit.query(conn, tenant_id="demo")
    assert [r["purpose"] for r in rows] == ["PROT.1"]


async def test_key_use_is_recorded_at_most_once_a_minute(api) -> None:  # type: ignore[no-untyped-def]
    client, keys = api
    engine = client.app[ENGINE]

    async def last_used() -> Any:
        async with engine.connect() as conn:
            rows = {r["id"]: r for r in await apikeys.listing(conn)}
        return rows[keys["demo"].split("_")[1]]["last_used_at"]

    assert await last_used() is None
    assert (await client.get("/api/v1/tenants", headers=auth(keys["demo"]))).status == 200
    first = await last_used()
    assert first is not None
    assert (await client.get("/api/v1/tenants", headers=auth(keys["demo"]))).status == 200
    assert await last_used() == first  # within the minute: no write


async def test_a_platform_the_tenant_has_not_configured_is_409_not_404(api) -> None:  # type: ignore[no-untyped-def]
    """ "Not found" is for what does not exist; a tenant without [tenants.send] is told so."""
    client, keys = api
    r = await client.post(
        "/api/v1/tenants/demo/send/notifications",
        json={},
        headers={**auth(keys["demo_admin_like"]), "Idempotency-Key": "no-send-1"},
    )
    assert r.status == 409
    problem = await r.json()
    assert "[tenants.send]" in problem["detail"]
