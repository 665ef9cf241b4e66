"""A campaign of 10,000 App IO messages, its worker killed with SIGKILL twice while sending,
then resumed. By the sandbox's own record every message arrives at most once; every message
is sent exactly once except the few in flight at a kill, which are reported as "outcome
unknown" and not resent until an operator asks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.db import reading
from sportello.platforms.io import campaigns
from sportello.platforms.io.tables import io_messages
from sportello.sandbox.io.app import DEMO_PRIMARY_KEY, DEMO_SERVICE_ID, STATE
from sportello.sandbox.io.app import create_app as io_sandbox
from sportello.sandbox.io.population import Population

pytestmark = pytest.mark.slow
SPORTELLO = str(Path(sys.executable).with_name("sportello"))
TOTAL = 10_000
MARKDOWN = (
    "Gentile cittadino, è disponibile l'avviso TARI 2026 del Comune di Esempio. Lo trova "
    "nella sezione pagamenti e può pagarlo con pagoPA. Riferimento {{ rif }}."
)


def write_config(tmp_path: Path, db_url: str, io_url: str) -> Path:
    cfg = tmp_path / "io-worker.toml"
    cfg.write_text(
        f"""
[database]
url = "{db_url}"

[outbox]
concurrency = 64
lease_seconds = 2
poll_interval = 0.05

[logging]
level = "WARNING"

[[tenants]]
id = "demo"
name = "Comune di Esempio"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"

[tenants.io]
base_url = "{io_url}"
rate_limit = 0
status_poll_attempts = 0
services = [{{ id = "{DEMO_SERVICE_ID}", key = {{ env = "IO_DEMO_KEY" }} }}]
"""
    )
    return cfg


def start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    env["IO_DEMO_KEY"] = DEMO_PRIMARY_KEY
    return subprocess.Popen(
        [SPORTELLO, "worker", "--config", str(cfg)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )


async def test_campaign_survives_two_sigkills(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    population = Population.generate(
        TOTAL, blocked_share=0, inbox_disabled_share=0, not_on_io_share=0
    )
    citizens = [c.fiscal_code for c in population]
    server = TestServer(io_sandbox(population=population, rate_limit=0), host="127.0.0.1")
    await server.start_server()
    try:
        now = datetime.now(UTC)
        csv = "fiscal_code;expedition_date;due_date;notice_number;amount;rif\n" + "\n".join(
            f"{cf};;;;;{i}" for i, cf in enumerate(citizens)
        )
        template = campaigns.Template("TARI 2026: il suo avviso", MARKDOWN)
        prepared = campaigns.prepare(csv, template, source="tari.csv", now=now)
        assert prepared.problems == []
        async with engine.begin() as conn:
            campaign_id = await campaigns.create_campaign(
                conn,
                tenant_id="demo",
                service_id=DEMO_SERVICE_ID,
                name="TARI",
                template=template,
                prepared=prepared,
                source="tari.csv",
                created_by="test",
                now=now,
            )
        cfg = write_config(tmp_path, db_url, str(server.make_url("/api/v1")))
        log = tmp_path / "worker.log"
        state = server.app[STATE]

        def received() -> int:
            return len(state.messages)

        async def run_until(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
            async with asyncio.timeout(timeout):
                while not await predicate():
                    await asyncio.sleep(0.005)

        in_flight: set[str] = set()
        for kill_at in (2500, 6000):
            worker = start_worker(cfg, log)
            try:

                async def enough(w: subprocess.Popen[bytes] = worker, k: int = kill_at) -> bool:
                    assert w.poll() is None, log.read_text()
                    return received() >= k

                await run_until(enough, 120)
            finally:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
            async with reading(engine) as conn:
                in_flight |= set(
                    (
                        await conn.execute(
                            select(io_messages.c.fiscal_code).where(
                                io_messages.c.status == campaigns.SENDING
                            )
                        )
                    ).scalars()
                )
        worker = start_worker(cfg, log)
        try:

            async def settled() -> bool:
                assert worker.poll() is None, log.read_text()
                await asyncio.sleep(0.2)
                async with reading(engine) as conn:
                    pending = (
                        await conn.execute(
                            select(func.count()).where(
                                io_messages.c.status.in_([campaigns.QUEUED, campaigns.SENDING])
                            )
                        )
                    ).scalar()
                return pending == 0

            await run_until(settled, 180)
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0

        async with reading(engine) as conn:
            data = await campaigns.report(conn, campaign_id)
        assert data is not None
        by_status: dict[str, set[str]] = {}
        for m in data["messages"]:
            by_status.setdefault(m["status"], set()).add(m["fiscal_code"])
        arrivals = Counter(m.fiscal_code for m in state.messages.values())
        assert max(arrivals.values()) == 1, "no message arrived twice"
        unknown = by_status.get(campaigns.UNKNOWN, set())
        sent = by_status.get(campaigns.SENT, set())
        assert sent | unknown == set(citizens)
        extra = unknown - in_flight
        reasons = Counter(m["error"][:80] for m in data["messages"] if m["fiscal_code"] in extra)
        assert not extra, f"only messages in flight at a kill are unknown: {reasons}"
        assert len(unknown) <= 2 * 64
        assert all(arrivals[cf] == 1 for cf in sent), "every sent message arrived exactly once"
        assert {cf for cf in citizens if arrivals[cf] == 0} <= unknown
        print(
            f"\nIO kill test: {len(in_flight)} in flight at the kills, {len(unknown)} unknown, "
            f"{sum(1 for cf in unknown if arrivals[cf])} of them had reached IO"
        )
        # the operator resends the unknown ones on purpose
        async with engine.begin() as conn:
            n = await campaigns.resend_unknown(
                conn, campaign_id=campaign_id, now=datetime.now(UTC), operator="test"
            )
        assert n == len(unknown)
    finally:
        await server.close()
