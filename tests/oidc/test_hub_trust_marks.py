"""The RP's trust marks: renewed from their issuer before they expire (a leased periodic
task per tenant), published by the entity configuration only while valid; and the two ways a
fresh trust mark is obtained (the issuer's trust mark endpoint, or the trust marks in its
subordinate statement)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import jwt as pyjwt
import pytest
from sqlalchemy import select

from sportello.app import CLOCK, ENGINE
from sportello.config import HubConfig
from sportello.connectors.oidc.errors import TrustMarkError
from sportello.connectors.oidc.federation import TrustChainResolver
from sportello.connectors.oidc.tokens import sign_jws
from sportello.connectors.oidc.trust_marks import held_mark, request_trust_mark, still_valid
from sportello.platforms.login import hub_periodic_tasks
from sportello.platforms.login.oidc_marks import refresh_trust_marks
from sportello.platforms.login.oidc_routes import OIDC
from sportello.platforms.login.tables import oidc_trust_marks

from . import test_federation, test_hub_rp
from .conftest import set_faults
from .test_federation import Federation
from .test_hub_rp import MARIO, Hub, _at_provider, _callback, _to_provider

hub = test_hub_rp.hub  # the fixtures, shared
fed = test_federation.fed

RP_MARK = "{twin}/ta/openid_relying_party/public/"
MONTH = 30 * 86400


async def _published(hub: Hub) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{hub.rp}/.well-known/openid-federation") as resp,
    ):
        assert resp.status == 200
        claims = pyjwt.decode(await resp.text(), options={"verify_signature": False})
    return list(claims["trust_marks"])


def _exp(entry: dict[str, Any]) -> int:
    return int(pyjwt.decode(entry["trust_mark"], options={"verify_signature": False})["exp"])


async def _register(hub: Hub, *faults: str) -> list[dict[str, Any]]:
    """Onboard again (the twin issues trust marks, with the faults given), the marks written
    to trust_marks.json as an operator does; the faults are cleared afterwards."""
    async with aiohttp.ClientSession() as http:
        await set_faults(http, hub.twin, *faults)
        async with http.post(f"{hub.twin}/__sandbox/register", json={"entity_id": hub.rp}) as r:
            assert r.status == 200
            marks = (await r.json())["trust_marks"]
        async with http.delete(f"{hub.twin}/__sandbox/faults"):
            pass
    (hub.keys_dir / "trust_marks.json").write_text(json.dumps(marks))
    return list(marks)


async def _refresh(hub: Hub, **kw: Any) -> Any:
    service = hub.app[OIDC]
    config: HubConfig = service.config
    tenant = config.tenant("comune")
    assert tenant is not None
    return await refresh_trust_marks(
        service.store, service.resolver(tenant), config, tenant, hub.app[CLOCK].now(), **kw
    )


async def _stored(hub: Hub) -> list[Any]:
    async with hub.app[ENGINE].connect() as conn:
        return list((await conn.execute(select(oidc_trust_marks))).mappings().all())


async def test_an_expired_trust_mark_is_renewed_and_only_the_valid_one_published(
    hub: Hub,
) -> None:
    old = await _register(hub, "expired_trust_mark")
    assert _exp(old[0]) < time.time()
    assert await _published(hub) == []  # expired: not published
    report = await _refresh(hub)
    assert report.renewed == [RP_MARK.format(twin=hub.twin)] and not report.failed
    [published] = await _published(hub)
    assert published["id"] == RP_MARK.format(twin=hub.twin)
    assert _exp(published) > time.time() + MONTH - 120
    [row] = await _stored(hub)
    assert row["tenant_id"] == "comune" and row["trust_mark"] == published["trust_mark"]
    assert row["issuer"] == f"{hub.twin}/ta"
    async with aiohttp.ClientSession() as http, http.get(f"{hub.twin}/__sandbox/log") as resp:
        asked = [e for e in await resp.json() if e["event"] == "trust_mark"]
    assert asked == [{"event": "trust_mark", "sub": hub.rp, "id": published["id"]}]
    # a valid trust mark far from expiry is left alone (no request to the issuer)
    again = await _refresh(hub)
    assert again.renewed == [] and again.current == 1


async def test_a_mark_past_half_its_life_is_renewed_and_a_login_still_works(hub: Hub) -> None:
    [before] = await _published(hub)
    await asyncio.sleep(1.1)  # the renewed mark's exp is a later second
    report = await _refresh(hub, margin=MONTH + 3600)  # everything is due
    assert report.renewed == [before["id"]]
    [after] = await _published(hub)
    assert after["trust_mark"] != before["trust_mark"] and _exp(after) > _exp(before)
    async with hub.browser() as browser:  # the twin trusts the RP with the renewed mark
        callback = await _at_provider(browser, await _to_provider(browser, hub, "cie"), MARIO.code)
        assert (await _callback(browser, callback)).status == 303


@pytest.mark.parametrize("fault", ["expired_trust_mark", "revoked_trust_mark"])
async def test_a_failed_renewal_keeps_the_current_mark(hub: Hub, fault: str) -> None:
    [before] = await _published(hub)
    async with aiohttp.ClientSession() as http:
        await set_faults(http, hub.twin, fault)
    report = await _refresh(hub, margin=MONTH + 3600)
    assert report.renewed == [] and list(report.failed) == [before["id"]]
    reason = report.failed[before["id"]]
    assert reason.startswith("expired" if fault == "expired_trust_mark" else "unreachable")
    assert await _published(hub) == [before]  # still valid, still published
    assert await _stored(hub) == []


async def test_the_refresh_is_a_leased_periodic_task_per_tenant(hub: Hub) -> None:
    config: HubConfig = hub.app[OIDC].config
    tasks = {t.name: t for t in hub_periodic_tasks(config=config, app=hub.app)}
    assert {"oidc.trust_marks:comune", "oidc.trust_marks:altro"} <= set(tasks)
    task = tasks["oidc.trust_marks:comune"]
    assert task.exclusive and task.interval == 3600.0
    await _register(hub, "expired_trust_mark")
    await task.run()  # one round, as the lease holder runs it
    assert len(await _stored(hub)) == 1 and len(await _published(hub)) == 1


# -- the connector: where a fresh trust mark comes from -------------------------------------


async def test_fresh_mark_from_the_issuers_subordinate_statement(
    http: aiohttp.ClientSession,
    fed: Federation,
) -> None:
    """An issuer without a trust mark endpoint: the marks in its statement about the leaf."""
    mark_id = fed.id("ta") + "/openid_relying_party/public/"
    now = int(time.time())

    def mark(signer: str, sub: str = "leaf") -> dict[str, Any]:
        claims = {"id": mark_id, "iss": fed.id("ta"), "sub": fed.id(sub), "iat": now}
        claims["exp"] = now + 3600
        return {"id": mark_id, "trust_mark": sign_jws(claims, fed.key(signer))}

    fed.configuration("ta", trust_mark_issuers={mark_id: [fed.id("ta")]})
    resolver = TrustChainResolver(http, [fed.anchor()], allow_http=True)
    fed.statement("ta", "leaf", trust_marks=[mark("ta")])
    fresh = await request_trust_mark(
        resolver, issuer=fed.id("ta"), mark_id=mark_id, subject=fed.id("leaf")
    )
    assert fresh.iss == fed.id("ta") and fresh.exp == now + 3600
    for bad, check in (
        ([mark("intruder")], "kid"),
        ([mark("ta", "other")], "sub"),
        ([], "missing"),
    ):
        fed.statement("ta", "leaf", trust_marks=bad)
        with pytest.raises(TrustMarkError) as info:
            await request_trust_mark(
                resolver, issuer=fed.id("ta"), mark_id=mark_id, subject=fed.id("leaf")
            )
        assert info.value.check == check


def test_expired_and_unreadable_marks_are_not_published() -> None:
    now = time.time()

    def entry(exp: float | None) -> dict[str, Any]:
        claims: dict[str, Any] = {"id": "https://ta/x/", "iss": "https://ta", "iat": now - 10}
        if exp is not None:
            claims["exp"] = exp
        token = pyjwt.encode(claims, "k" * 32, algorithm="HS256")
        return {"id": "https://ta/x/", "iss": "https://ta", "trust_mark": token}

    good, old, forever = entry(now + 60), entry(now - 1), entry(None)
    assert still_valid([good, old, forever, {"trust_mark": "junk"}, {}], now) == [good, forever]
    held = held_mark(good)
    assert held is not None and not held.due(now, margin=30) and held.due(now, margin=120)
