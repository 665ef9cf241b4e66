"""Bodies the REST API cannot use (issue 12, item 16): JSON nested 10,000 deep on the pagoPA,
App IO and login routes, and bodies over ``[server] max_body_bytes``, declared or chunked,
get a 4xx application/problem+json, never a 500; the sandbox Node's JSON routes likewise."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sportello import apikeys
from sportello.api.bodies import MAX_JSON_DEPTH, loads_json
from sportello.app import CLOCK, ENGINE, create_app
from sportello.config import parse_config
from sportello.sandbox.pagopa.app import create_app as create_sandbox

EC = "77777777777"
DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
LIMIT = 256 * 1024  # a small [server] max_body_bytes keeps the test fast


class Api:
    def __init__(self, client: TestClient[Any, Any], key: str) -> None:
        self.client, self.key = client, key

    async def post(
        self, path: str, data: Any, method: str = "POST", **headers: str
    ) -> tuple[int, str, dict[str, Any]]:
        all_headers = {
            "Authorization": f"Bearer {self.key}",
            "Idempotency-Key": "k1",
            "Content-Type": "application/json",
            **headers,
        }
        r = await self.client.request(method, path, data=data, headers=all_headers)
        raw = await r.read()
        return r.status, r.content_type, json.loads(raw) if raw[:1] == b"{" else {}


@pytest.fixture
async def api(db_url: str) -> AsyncIterator[Api]:
    tenant = {
        "id": "demo",
        "name": "Comune di Esempio",
        "ipa_code": "c_z999",
        "fiscal_code": EC,
        "cadastral_code": "Z999",
        "pagopa": {
            "ec_fiscal_code": EC,
            "broker_id": EC,
            "station_id": EC + "_01",
            "mode": "station",
        },
    }
    config = parse_config(
        {
            "database": {"url": db_url},
            "outbox": {"workers": False},
            "server": {"max_body_bytes": LIMIT},
            "tenants": [tenant],
        }
    )
    app = create_app(config, apply_migrations=True, run_workers=False)
    async with TestClient(TestServer(app)) as client:
        async with app[ENGINE].begin() as conn:
            key = await apikeys.create(
                conn,
                tenant_id="demo",
                name="all",
                scopes=["read", "write", "personal_data"],
                now=app[CLOCK].now(),
            )
        yield Api(client, key)


ROUTES = [
    ("POST", "/api/v1/tenants/demo/pagopa/positions"),
    ("PUT", "/api/v1/tenants/demo/pagopa/positions/IUPD-1"),
    ("POST", "/api/v1/tenants/demo/pagopa/carts"),
    ("POST", "/api/v1/tenants/demo/io/messages"),
    ("POST", "/api/v1/tenants/demo/io/campaigns"),
    ("POST", "/api/v1/tenants/demo/logins/exchange"),
]


async def test_json_nested_10000_deep_is_a_4xx_problem(api: Api) -> None:
    for method, path in ROUTES:
        for body in (DEEP, DEEP_OBJECT, b'{"code":' + DEEP + b"}"):
            status, ctype, doc = await api.post(path, body, method)
            assert 400 <= status < 500, (path, status)
            assert ctype == "application/problem+json", path
            assert doc["status"] == status


async def test_body_over_the_limit_is_413_problem_naming_the_limit(api: Api) -> None:
    big = b'{"x":"' + b"a" * LIMIT + b'"}'
    for method, path in ROUTES:
        status, ctype, doc = await api.post(path, big, method)  # Content-Length declared
        assert (status, ctype) == (413, "application/problem+json"), path
        assert str(LIMIT) in doc["detail"] and doc["limit"] == LIMIT

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 32 * 1024):
                yield big[i : i + 32 * 1024]
                await asyncio.sleep(0)

        status, ctype, doc = await api.post(path, chunks(), method)  # chunked, undeclared
        assert (status, ctype) == (413, "application/problem+json"), path
        assert doc["limit"] == LIMIT


async def test_body_just_under_the_limit_is_read() -> None:
    """(the limit is not refused early: a position body of LIMIT bytes is parsed)"""
    value = loads_json(b'{"x":"' + b"a" * (LIMIT - 8) + b'"}')
    assert len(value["x"]) == LIMIT - 8


def test_loads_json_depth() -> None:
    ok = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert loads_json(ok) == loads_json(ok)
    for bad in (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), DEEP, DEEP_OBJECT):
        with pytest.raises(ValueError, match="nested"):
            loads_json(bad)


async def test_sandbox_node_json_routes_refuse_deep_json() -> None:
    server = TestServer(create_sandbox(processing_delay=0))
    async with TestClient(server) as client:
        for path in ("/psp/pay", "/psp/pay-batch", "/__sandbox/stations", "/__sandbox/node"):
            r = await client.post(path, data=DEEP, headers={"Content-Type": "application/json"})
            assert 400 <= r.status < 500, (path, r.status)
