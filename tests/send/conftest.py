"""PDND token sandbox + SEND twin + INAD twin on real sockets, and the hub's real clients.

The PDND client is registered through the PDND sandbox's HTTP API with three purposes:
one whose e-service audience is the SEND twin, one for the INAD twin, and one for an
unrelated e-service (to prove a voucher for another audience is refused).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from send_stack import Stack, client_key, pdnd_key

from sportello.sandbox.inad.app import BASE_PATH
from sportello.sandbox.inad.app import create_app as create_inad
from sportello.sandbox.pdnd.app import create_app as create_pdnd
from sportello.sandbox.send.app import create_app as create_send


async def _serve(app: Any, servers: list[TestServer]) -> str:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    servers.append(server)
    return str(server.make_url("")).rstrip("/")


@pytest.fixture
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[Stack]:
    options: dict[str, Any] = getattr(request, "param", {}) or {}
    servers: list[TestServer] = []
    session = aiohttp.ClientSession()
    pdnd_url = await _serve(create_pdnd(rate_limit=None, signing_key_pem=pdnd_key()), servers)
    send_app = create_send(
        pdnd_url=pdnd_url,
        acceptance_delay=options.get("acceptance_delay", 0.0),
        step_delay=options.get("step_delay", 0.0),
        page_size=options.get("page_size", 50),
    )
    send_url = await _serve(send_app, servers)
    inad_app = create_inad(pdnd_url=pdnd_url, bulk_delay=options.get("bulk_delay", 0.2))
    inad_url = await _serve(inad_app, servers)
    send_purpose, inad_purpose, other = (str(uuid.uuid4()) for _ in range(3))
    client_id = str(uuid.uuid4())
    async with session.post(
        pdnd_url + "/__sandbox/clients",
        json={
            "client_id": client_id,
            "public_key": client_key()[1].decode(),
            "purposes": {
                send_purpose: send_url,
                inad_purpose: inad_url + BASE_PATH,
                other: "https://another.eservice.example/v1",
            },
        },
    ) as response:
        assert response.status == 201, await response.text()
        kid = (await response.json())["kid"]
    stack = Stack(
        session,
        pdnd_url,
        send_url,
        inad_url,
        client_id,
        kid,
        send_purpose,
        inad_purpose,
        other,
        send_app,
        inad_app,
        servers,
    )
    try:
        yield stack
    finally:
        await session.close()
        for server in reversed(servers):
            await server.close()
