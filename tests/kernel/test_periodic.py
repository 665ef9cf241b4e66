"""Periodic work runs once across replicas (issue 12, item 11).

Two SUAP changes are waiting after the cursor (see ``periodic_child.EXPORT``, the same two
changes as test_suap.py): announced once they are 1 App IO message and 2 webhook jobs,
however many replicas poll and whatever CLI round runs at the same time. A lease row in
``periodic_leases`` lets one replica run each task; a holder that dies is replaced after
its lease; each round moves its cursor by compare-and-set. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from periodic_child import TASK, announced, replica, suap_task, write_config
from sqlalchemy import select

from sportello import migrate
from sportello.app import PERIODIC, create_app, periodic_tasks
from sportello.cli.main import main
from sportello.clock import FakeClock
from sportello.config import load_config, parse_config
from sportello.db import create_engine
from sportello.periodic import PeriodicRunner, PeriodicTask, leases, take
from sportello.platforms.pagopa.receipts import ReceiptSync
from sportello.platforms.pagopa.receipts_tables import receipt_cursors
from sportello.platforms.suap.service import SUAP

CHILD = Path(__file__).with_name("periodic_child.py")


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.02)


def counter(name: str = "t") -> tuple[PeriodicTask, list[float]]:
    times: list[float] = []

    async def round_() -> None:
        times.append(time.monotonic())

    return PeriodicTask(name, 0.05, round_), times


async def test_two_rounds_at_once_announce_each_change_once(db_url: str, tmp_path: Path) -> None:
    """The defect as reported: two notify rounds that read the cursor at the same time."""
    config = load_config(write_config(tmp_path, db_url, lease=1.0))
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    try:
        async with replica(config) as a, replica(config) as b:
            await a.notify("demo")  # the first round only sets the cursor
            for r in (a, b):
                r.services.adapters.get("demo", "suap").gate = asyncio.Event()
            rounds = [asyncio.create_task(r.notify("demo")) for r in (a, b)]
            for r in (a, b):  # both have read the cursor and the changes
                await asyncio.wait_for(r.services.adapters.get("demo", "suap").entered.wait(), 5)
            for r in (a, b):
                r.services.adapters.get("demo", "suap").gate.set()
            results = await asyncio.gather(*rounds)
        assert sorted(r["changes"] for r in results) == [0, 2]
        assert await announced(engine) == (1, 2)
    finally:
        await engine.dispose()


async def test_two_replicas_and_a_cli_round_announce_each_change_once(
    db_url: str, tmp_path: Path
) -> None:
    path = write_config(tmp_path, db_url, lease=1.0)
    config = load_config(path)
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    stop = asyncio.Event()
    try:
        async with replica(config) as a, replica(config) as b:
            await a.notify("demo")  # the first round only sets the cursor
            for r in (a, b):
                r.services.adapters.get("demo", "suap").gate = asyncio.Event()
            runners = [
                PeriodicRunner(r.services.engine, [suap_task(r)], lease_seconds=1.0) for r in (a, b)
            ]
            tasks = [asyncio.create_task(r.run(stop)) for r in runners]
            # the lease holder's round has read the cursor and the changes ...
            entered = [
                asyncio.create_task(r.services.adapters.get("demo", "suap").entered.wait())
                for r in (a, b)
            ]
            await asyncio.wait(entered, timeout=5, return_when=asyncio.FIRST_COMPLETED)
            assert any(e.done() for e in entered)
            # ... when an operator runs `sportello suap notify`, which announces them
            # (the command itself, in a thread: a process would only add seconds of start-up)
            args = ["suap", "notify", "--config", str(path), "--tenant", "demo"]
            cli = await asyncio.to_thread(CliRunner().invoke, main, args)
            assert cli.exit_code == 0, cli.output
            assert cli.stdout.startswith("2 change(s): 1 App IO message(s) and 2 webhook")
            for r in (a, b):  # the replica's round goes on, and later rounds run
                r.services.adapters.get("demo", "suap").gate.set()
            await until(lambda: _ran(runners, 4))
            stop.set()
            await asyncio.gather(*tasks)
            for e in entered:
                e.cancel()
        assert await announced(engine) == (1, 2)
        # one replica held the lease and ran every round; the other ran none
        assert sorted(bool(r.rounds[TASK]) for r in runners) == [False, True]
        assert [lease.expires_at <= datetime.now(UTC) for lease in await leases(engine)] == [
            True
        ]  # released on stop
    finally:
        stop.set()
        await engine.dispose()


async def _ran(runners: list[PeriodicRunner], n: int) -> bool:
    return sum(r.rounds[TASK] for r in runners) >= n


async def test_two_hub_apps_on_one_database_announce_once(db_url: str, tmp_path: Path) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite runs one replica (its replica lock refuses a second)")
    config = load_config(write_config(tmp_path, db_url, lease=1.0, workers=True))
    apps = [
        create_app(config, apply_migrations=True, clock=FakeClock(datetime(2026, 1, 1, tzinfo=UTC)))
        for _ in range(2)
    ]
    runners = [web.AppRunner(app) for app in apps]
    try:
        for runner in runners:
            await runner.setup()
        periodic = [app[PERIODIC] for app in apps]
        engine = apps[0][SUAP].services.engine
        await until(lambda: _ran(periodic, 5))
        assert await announced(engine) == (1, 2)
        assert sorted(bool(p.rounds[TASK]) for p in periodic) == [False, True]
    finally:
        for runner in runners:
            await runner.cleanup()


async def test_concurrent_takes_give_the_lease_to_one_holder(engine: Any) -> None:
    now = datetime.now(UTC)
    got = await asyncio.gather(
        *(take(engine, "t", f"replica-{i}", now=now, lease_seconds=5) for i in range(8))
    )
    assert sorted(held for held, _ in got) == [False] * 7 + [True]
    [holder] = [f"replica-{i}" for i, (held, _) in enumerate(got) if held]

    async def holds(who: str, after: float) -> bool:
        at = now + timedelta(seconds=after)
        return (await take(engine, "t", who, now=at, lease_seconds=5))[0]

    # nobody else gets it before it expires; the holder renews; anyone gets it after
    assert not await holds("replica-x", 4.9)
    assert await holds(holder, 4)
    assert not await holds("replica-x", 8.9)
    assert await holds("replica-x", 9)


async def test_a_dead_holders_task_is_taken_over_after_its_lease(engine: Any) -> None:
    """A replica that stops renewing (it died) keeps the task until its lease expires."""
    taken = time.monotonic()
    held, _ = await take(engine, "t", "dead", now=datetime.now(UTC), lease_seconds=1.0)
    assert held
    task, times = counter()
    runner = PeriodicRunner(engine, [task], lease_seconds=0.3)
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.sleep(0.7)
        assert times == []  # the dead replica's lease still holds
        await until(lambda: _true(len(times) >= 3), 3)
        assert times[0] - taken >= 0.95  # (monotonic and wall clocks may differ a little)
        [lease] = await leases(engine)
        assert lease.holder == runner.holder
    finally:
        stop.set()
        await running


async def _true(value: bool) -> bool:
    return value


async def test_a_stopped_replica_hands_over_at_once(engine: Any) -> None:
    first, first_times = counter()
    second, second_times = counter()
    a = PeriodicRunner(engine, [first], lease_seconds=3.0)
    b = PeriodicRunner(engine, [second], lease_seconds=3.0)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    run_a = asyncio.create_task(a.run(stop_a))
    await until(lambda: _true(len(first_times) >= 2))
    run_b = asyncio.create_task(b.run(stop_b))
    try:
        await asyncio.sleep(0.3)
        assert second_times == []  # one holder at a time
        stop_a.set()
        await run_a
        stopped = time.monotonic()
        await until(lambda: _true(bool(second_times)), 3)
        # released on stop: taken at b's next try (every lease/3 = 1 s), not after 3 s
        assert second_times[0] - stopped < 1.5
        assert not [t for t in first_times if t > stopped]
    finally:
        stop_b.set()
        await run_b


@pytest.mark.slow
async def test_a_replica_killed_mid_round_is_taken_over(db_url: str, tmp_path: Path) -> None:
    """A replica is SIGKILLed inside a round (cursor and changes read, nothing written); the
    other takes the task over once the lease expires and announces each change once."""
    path = write_config(tmp_path, db_url, lease=1.0)
    config = load_config(path)
    engine = create_engine(config.database)
    await migrate.upgrade(engine)
    marker = tmp_path / "in-round"
    try:
        async with replica(config) as survivor:
            await survivor.notify("demo")  # sets the cursor
            child = await asyncio.create_subprocess_exec(
                sys.executable, str(CHILD), str(path), str(marker),
                stdout=subprocess.DEVNULL, stderr=(tmp_path / "child.log").open("wb"),
            )  # fmt: skip
            try:
                await until(lambda: _true(marker.exists()), 20)
                [lease] = await leases(engine)
                assert lease.holder == "child"
                child.send_signal(signal.SIGKILL)
                assert await asyncio.wait_for(child.wait(), 5) == -signal.SIGKILL
            finally:
                if child.returncode is None:
                    child.kill()
                    await child.wait()
            assert await announced(engine) == (0, 0)
            runner = PeriodicRunner(engine, [suap_task(survivor)], lease_seconds=1.0)
            stop = asyncio.Event()
            running = asyncio.create_task(runner.run(stop))
            try:
                await until(lambda: _ran([runner], 3), 5)
            finally:
                stop.set()
                await running
            [taken_over] = await leases(engine)
            assert taken_over.holder == runner.holder
            assert taken_over.acquired_at >= lease.expires_at
        assert await announced(engine) == (1, 2)
    finally:
        await engine.dispose()


async def test_gpd_receipts_cursor_never_moves_back(engine: Any) -> None:
    """Two receipts rounds read the same cursor; the one that ends last (it saw fewer
    receipts) must not move the cursor back over what the other one read."""
    config = parse_config({"database": {"url": "sqlite+aiosqlite:///unused"}})
    sync = ReceiptSync(engine, config, FakeClock(), None)  # type: ignore[arg-type]
    assert await sync._save_cursor("demo", None, date(2026, 3, 1), 2)
    read = await sync._cursor_value("demo")
    assert await sync._save_cursor("demo", read, date(2026, 3, 5), 1)
    assert not await sync._save_cursor("demo", read, date(2026, 3, 2), 0)  # the slower round
    assert not await sync._save_cursor("demo", None, date(2026, 2, 1), 0)
    async with engine.connect() as conn:
        day = (await conn.execute(select(receipt_cursors.c.from_day))).scalar_one()
    assert day == "2026-03-05"


def test_the_idp_registry_refresh_is_optional_and_runs_in_every_replica(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "sqlite+aiosqlite:///x.sqlite", lease=1.0))
    app = create_app(config)
    assert [(t.name, t.exclusive) for t in periodic_tasks(app)] == [(TASK, True)]
    on = config.model_copy(
        update={
            "periodic": config.periodic.model_copy(update={"idp_registry_refresh_seconds": 3600})
        }
    )
    app = create_app(on)
    tasks = [(t.name, t.interval, t.exclusive) for t in periodic_tasks(app, leased=False)]
    assert tasks == [("idps.registry", 3600, False)]
