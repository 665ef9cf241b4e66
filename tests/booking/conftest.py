"""Fixtures of the booking tests: the SMTP twin (the e-mail sandbox) on free ports."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sportello.sandbox.email.app import create_app as create_twin


@pytest.fixture
async def twin(tmp_path: Path):  # type: ignore[no-untyped-def]
    async with TestClient(TestServer(create_twin())) as client:
        info = await (await client.get("/__sandbox/smtp")).json()
        pem = tmp_path / "twin-ca.pem"
        pem.write_bytes(await (await client.get("/__sandbox/tls-certificate")).read())
        yield client, info["port"], pem
