"""Helpers of test_periodic.py, and the replica it kills: run as a script
(``python periodic_child.py CONFIG MARKER``), it runs the SUAP poller under its lease as
holder ``child`` and hangs in its first round, after reading the cursor and the changes
(``MARKER`` is written then), until it is killed."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.clock import FakeClock
from sportello.config import HubConfig, load_config
from sportello.db import create_engine
from sportello.metrics import HubMetrics
from sportello.periodic import PeriodicRunner, PeriodicTask
from sportello.platforms.io.tables import io_messages
from sportello.platforms.suap.service import SuapService
from sportello.plugins import Plugins
from sportello.schema import outbox
from sportello.services import HubServices

START = datetime(2026, 1, 1, tzinfo=UTC)
TASK = "suap.notify:demo"
SERVICE = "01DEMOSERVICE0000000000000"
# After START in the export: Anna's practice is concluded (a person: one App IO message and
# a webhook) and the company's is suspended (a webhook only): see test_suap.py.
EXPORT = {
    "practices": [
        {
            "id": "SUAP-2025-0012",
            "applicant_fiscal_code": "RSSNNA80A41H501L",
            "applicant_name": "Anna Rossi",
            "title": "Apertura bar in via Roma 3",
            "kind": "SCIA",
            "submitted_at": "2025-12-01T09:00:00+01:00",
            "events": [
                {"status": "presentata", "at": "2025-12-01T09:00:00+01:00"},
                {"status": "conclusa", "at": "2026-01-15T12:00:00+01:00"},
            ],
        },
        {
            "id": "SUAP-2025-0099",
            "applicant_fiscal_code": "01234567890",
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


def write_config(tmp_path: Path, db_url: str, *, lease: float, workers: bool = False) -> Path:
    (tmp_path / "suap.json").write_text(json.dumps(EXPORT))
    path = tmp_path / "hub.toml"
    path.write_text(
        f"""
[database]
url = "{db_url}"
[outbox]
workers = {str(workers).lower()}
[periodic]
lease_seconds = {lease}
[logging]
level = "WARNING"

[[tenants]]
id = "demo"
name = "Comune di Esempio"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"
[tenants.io]
base_url = "http://127.0.0.1:9/api/v1"
[[tenants.io.services]]
id = "{SERVICE}"
key = {{ env = "SPORTELLO_TEST_UNSET_IO_KEY" }}
[tenants.suap]
io_service = "{SERVICE}"
poll_seconds = 0.1
[tenants.adapters.suap]
plugin = "json"
options = {{ path = "suap.json" }}
[[tenants.webhooks]]
url = "http://127.0.0.1:9/hook"
events = ["suap.*"]
"""
    )
    return path


class Gated:
    """A SUAP adapter that, once a round has read the cursor and the changes, says so
    (``entered``, ``marker``) and waits for ``gate`` if there is one (the child's is never
    set: it hangs until killed)."""

    def __init__(self, inner: Any, *, marker: Path | None = None) -> None:
        self.inner = inner
        self.marker = marker
        self.entered = asyncio.Event()
        self.gate: asyncio.Event | None = asyncio.Event() if marker is not None else None

    async def changes_since(self, since: datetime) -> Any:
        found = await self.inner.changes_since(since)
        self.entered.set()
        if self.marker is not None:
            self.marker.write_text("in round")
        if self.gate is not None:
            await self.gate.wait()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@asynccontextmanager
async def replica(config: HubConfig, *, marker: Path | None = None) -> AsyncIterator[Any]:
    """One replica's SuapService (its own engine and session) with a Gated adapter, open."""
    engine = create_engine(config.database)
    try:
        async with aiohttp.ClientSession() as session:
            services = HubServices(config, engine, session, FakeClock(START), HubMetrics())
            suap = SuapService(services, Plugins(config.plugins.disabled))
            gated = Gated(suap.adapter_for(config.tenants[0]), marker=marker)
            services.adapters.put("demo", "suap", gated)
            try:
                yield suap
            finally:
                await services.adapters.aclose()
    finally:
        await engine.dispose()


def suap_task(suap: SuapService, every: float = 0.1) -> PeriodicTask:
    async def round_() -> None:
        await suap.notify("demo")

    return PeriodicTask(TASK, every, round_)


async def announced(engine: AsyncEngine) -> tuple[int, int]:
    """(App IO messages, webhook jobs) queued so far."""
    async with engine.connect() as conn:
        messages = (await conn.execute(select(func.count()).select_from(io_messages))).scalar()
        webhooks = (
            await conn.execute(
                select(func.count()).select_from(outbox).where(outbox.c.kind == "webhook")
            )
        ).scalar()
    return int(messages or 0), int(webhooks or 0)


async def _child(config_path: Path, marker: Path) -> None:
    config = load_config(config_path)
    async with replica(config, marker=marker) as suap:
        runner = PeriodicRunner(
            suap.services.engine,
            [suap_task(suap)],
            lease_seconds=config.periodic.lease_seconds,
            holder="child",
        )
        await runner.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(_child(Path(sys.argv[1]), Path(sys.argv[2])))
