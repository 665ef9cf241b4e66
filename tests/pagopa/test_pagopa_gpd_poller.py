"""`sportello serve` in GPD mode reads new receipts by itself: positions go to GPD through the
outbox, one is paid on the GPD side, and the periodic receipts task stores its receipt once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from e2e_env import EC, TENANT, count, gpd_config, write_positions

from sportello.app import CLOCK, ENGINE, create_app
from sportello.platforms.pagopa.operations import import_positions_file
from sportello.platforms.pagopa.store import PagopaStore
from sportello.platforms.pagopa.tables import receipts
from sportello.sandbox.pagopa.app import DEFAULT_FDR_API_KEY, DEFAULT_GPD_API_KEY


async def _until(check: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.1)


async def test_serve_reads_gpd_receipts_periodically(
    db_url: str,
    tmp_path: Path,
    gpd_sandbox: TestServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPORTELLO_E2E_FDR_KEY", DEFAULT_FDR_API_KEY)
    monkeypatch.setenv("SPORTELLO_E2E_GPD_KEY", DEFAULT_GPD_API_KEY)
    base = gpd_config(db_url, tmp_path, gpd_sandbox)
    tenant = base.tenants[0]
    assert tenant.pagopa is not None
    pagopa = tenant.pagopa.model_copy(update={"receipts_poll_seconds": 0.2})
    config = base.model_copy(
        update={
            "outbox": base.outbox.model_copy(update={"workers": True}),
            "tenants": [tenant.model_copy(update={"pagopa": pagopa})],
        }
    )
    source = tmp_path / "positions.csv"
    write_positions(source, 3)
    app = create_app(config, apply_migrations=True)
    hub = TestServer(app, host="127.0.0.1")
    await hub.start_server()
    try:
        assert await import_positions_file(config, TENANT, source, True) == (3, 0, [])
        async with aiohttp.ClientSession() as session:

            async def in_gpd() -> bool:
                url = gpd_sandbox.make_url(f"/__sandbox/positions?organization={EC}&status=VALID")
                async with session.get(url) as resp:
                    return bool((await resp.json())["count"] == 3)

            await _until(in_gpd)  # the outbox created them on GPD
            stored = await PagopaStore(app[ENGINE], config, app[CLOCK]).list_positions(TENANT)
            iuv = stored[0].options[0].iuv
            async with session.post(
                gpd_sandbox.make_url(f"/__sandbox/pay/{EC}/{iuv}"), json={}
            ) as r:
                assert r.status == 200, await r.text()

        async def stored_once() -> bool:
            return await count(app[ENGINE], receipts) == 1

        await _until(stored_once)  # no command run: the periodic task read it
        await asyncio.sleep(0.6)  # a few more rounds store nothing more
        assert await count(app[ENGINE], receipts) == 1
    finally:
        await hub.close()
