"""The chaos runner's own parts (tests/chaos/chaos_day.py), without a chaos day: the verdict
per platform, the balancer in front of the replicas, the configuration it writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from chaos_day import Balancer, Plan, Progress, Replica, Row, free_port, toml_table


def test_verdict_fails_on_lost_and_on_doubled_only_where_there_is_a_key() -> None:
    assert Row("pagoPA receipts", sent=3, done=3).ok
    assert not Row("pagoPA receipts", sent=3, done=2, lost=1).ok
    assert not Row("webhooks", doubled=1).ok
    assert Row("App IO campaign", doubled=1, keyed=False).ok
    assert not Row("App IO campaign", lost=1, keyed=False).ok
    # unknown outcomes are listed for an operator, not failures
    assert Row("App IO campaign", sent=2, done=1, unknown=1, keyed=False).ok


def test_written_toml_reads_back_with_pem_quotes_and_lists() -> None:
    pem = '-----BEGIN CERTIFICATE-----\nMIID"x\\y\n-----END CERTIFICATE-----\n'
    text = toml_table("idps", {"signing_certs": [pem], "level": 2, "on": True, "name": 'a "b"'})
    assert tomllib.loads(text) == {
        "idps": {"signing_certs": [pem], "level": 2, "on": True, "name": 'a "b"'}
    }


async def _replica_server(name: str, hits: list[str]) -> TestServer:
    async def handle(request: web.Request) -> web.Response:
        hits.append(name)
        return web.Response(
            text=f"{name}:{await request.text()}",
            status=302 if request.path == "/redirect" else 200,
            headers={"Location": "/elsewhere", "Set-Cookie": f"s={name}"},
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


def _replica(name: str, port: int, tmp_path: Path) -> Replica:
    replica = Replica(name, tmp_path / "hub.toml", tmp_path / f"{name}.log", {})
    replica.port = port
    return replica


async def test_balancer_skips_a_replica_that_is_down_and_passes_answers_through(
    tmp_path: Path,
) -> None:
    hits: list[str] = []
    alive = await _replica_server("B", hits)
    assert alive.port is not None
    down = _replica("A", free_port(), tmp_path)  # nothing listens there
    balancer = Balancer([down, _replica("B", alive.port, tmp_path)])
    front = TestServer(balancer.app(), host="127.0.0.1")
    await front.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            for i in range(4):  # round robin: every other request starts with the dead one
                async with s.post(front.make_url(f"/x?i={i}"), data=b"body") as r:
                    assert r.status == 200 and await r.text() == "B:body"
            # redirects and cookies are the browser's business: passed through untouched
            async with s.get(front.make_url("/redirect"), allow_redirects=False) as r:
                assert r.status == 302 and r.headers["Location"] == "/elsewhere"
                assert r.headers["Set-Cookie"].startswith("s=B")
        assert hits == ["B"] * 5
        assert balancer.failovers == 3  # turns 0, 2 and 4 began with the dead replica
        await alive.close()
        async with aiohttp.ClientSession() as s, s.get(front.make_url("/x")) as r:
            assert r.status == 503  # no replica at all
    finally:
        await front.close()
        await balancer.session.close()


def test_progress_is_the_mean_share_of_the_days_work() -> None:
    plan = Plan(lookups=10, logins=0, fines=0)
    progress = Progress(plan, engine=None, payments=20)
    assert progress.share() == 2 / 6  # nothing done; no logins and no fines planned
    progress.tick("payments", 10)
    progress.tick("lookups", 10)
    progress.db = {"campaign": 0.5, "fines": 1.0, "outbox": 0.25}
    assert progress.share() == (0.5 + 1 + 1 + 0.5 + 1 + 0.25) / 6
    progress.tick("payments", 99)  # a share never passes 1
    assert progress.share() <= 1
