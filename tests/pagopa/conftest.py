"""pagoPA fixtures shared by this folder's tests.

``hub``: the EC station under test (``station_hub.Hub``) on SQLite and PostgreSQL, its
receipts forwarded to the ``sink`` webhook receiver; a test module may define its own ``hub``.
``gpd_sandbox``: the pagoPA sandbox for the GPD-mode runs (``e2e_env.gpd_config``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from e2e_env import SANDBOX_START
from pagopa_node import XSD_DIR
from station_hub import HAVE_XSD, Hub, make_config

from sportello.app import create_app
from sportello.clock import FakeClock
from sportello.platforms.pagopa.station import XSD_DIR as XSD_KEY
from sportello.sandbox.pagopa.app import create_app as create_sandbox


@pytest.fixture
async def hub(db_url: str, tmp_path: Path, sink: Any) -> AsyncIterator[Hub]:
    config = make_config(db_url, tmp_path, sink.url)
    app = create_app(config, apply_migrations=True, run_workers=False)
    if HAVE_XSD:
        app[XSD_KEY] = XSD_DIR
    async with TestClient(TestServer(app)) as client:
        yield Hub(client, app, config, tmp_path)


@pytest.fixture
async def gpd_sandbox() -> AsyncIterator[TestServer]:
    """The pagoPA sandbox (GPD, receipts API, FdR) on a real socket, its clock on the
    end-to-end runs' payment day."""
    app = create_sandbox(processing_delay=0, clock=FakeClock(SANDBOX_START))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()
