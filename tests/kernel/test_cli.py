"""The command line as a user meets it: one clear line for each expected failure, never a
traceback; operator commands on the outbox; the demo starting hub and sandboxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from factories import free_port

from sportello import migrate

SPORTELLO = str(Path(sys.executable).with_name("sportello"))
TENANT = """
[[tenants]]
id = "demo"
name = "Comune di Esempio"
ipa_code = "c_z999"
fiscal_code = "00000000999"
cadastral_code = "Z999"
"""


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    return subprocess.run(
        [SPORTELLO, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def config(tmp_path: Path, db_url: str, extra: str = "") -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(f'[database]\nurl = "{db_url}"\n[logging]\nlevel = "WARNING"\n{extra}\n{TENANT}')
    return p


def test_a_bad_config_file_gives_field_errors_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TENANT.replace('"00000000999"', '"123"') + "\n[outbox]\nconcurency = 3\n")
    result = run("serve", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        f"sportello: error: invalid configuration: {bad}: outbox.concurency: unknown field "
        "(check its spelling and the configuration reference)"
    )
    assert lines[1].startswith(f"  {bad}: tenants[0].fiscal_code: String should match pattern")


def test_a_database_that_is_down_gives_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cfg = config(tmp_path, f"postgresql+asyncpg://hub:secretpw@127.0.0.1:{port}/hub")
    for command in ("serve", "worker"):
        result = run(command, "--config", str(cfg))
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            f"sportello: error: database postgresql+asyncpg://hub:***@127.0.0.1:{port}/hub "
            "is unreachable: "
        )
        assert "secretpw" not in line


def test_serve_refuses_an_unmigrated_database_then_db_upgrade_fixes_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite")
    result = run("serve", "--config", str(cfg))
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "sportello: error: database schema is at revision none, this version needs "
        f"{migrate.head_revision()}: "
        f"run `sportello db upgrade --config {cfg}`"
    )
    assert run("db", "current", "--config", str(cfg)).returncode == 1
    up = run("db", "upgrade", "--config", str(cfg))
    head = migrate.head_revision()
    assert up.returncode == 0 and up.stdout.strip() == f"database at revision {head} (head {head})"
    cur = run("db", "current", "--config", str(cfg))
    assert cur.returncode == 0 and f"database {head}" in cur.stdout


def test_a_second_worker_on_sqlite_refuses_to_start(tmp_path: Path) -> None:
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite")
    assert run("db", "upgrade", "--config", str(cfg)).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    first = subprocess.Popen(
        [SPORTELLO, "worker", "--config", str(cfg)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert first.stderr is not None
        assert "outbox worker" in first.stderr.readline()
        second = run("worker", "--config", str(cfg))
        assert second.returncode == 1
        assert f"another Sportello replica (pid {first.pid}) is already running" in second.stderr
        assert "use PostgreSQL" in second.stderr and "Traceback" not in second.stderr
    finally:
        first.terminate()
        assert first.wait(10) == 0


@pytest.mark.slow  # a dozen `sportello` processes
def test_outbox_operator_commands(tmp_path: Path) -> None:
    import asyncio

    from sportello.clock import SystemClock
    from sportello.config import load_config
    from sportello.db import create_engine
    from sportello.outbox import store
    from sportello.outbox.store import NewJob

    cfg = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite")
    assert run("db", "upgrade", "--config", str(cfg)).returncode == 0

    async def seed() -> None:
        engine = create_engine(load_config(cfg).database)
        async with engine.begin() as conn:
            await store.enqueue_many(
                conn,
                [
                    NewJob("demo", "webhook", {"url": "http://x"}, idempotency_key=f"k{i}")
                    for i in range(3)
                ],
                now=SystemClock().now(),
                default_max_attempts=4,
            )
            await conn.exec_driver_sql(
                "UPDATE outbox SET status='failed', attempts=4, last_error='boom' WHERE id=2"
            )
        await engine.dispose()

    asyncio.run(seed())
    listed = json.loads(run("outbox", "list", "--config", str(cfg), "--json").stdout)
    assert [(r["id"], r["status"]) for r in listed] == [
        (1, "pending"),
        (2, "failed"),
        (3, "pending"),
    ]
    failed = json.loads(
        run("outbox", "list", "--config", str(cfg), "--json", "--status", "failed").stdout
    )
    assert [r["idempotency_key"] for r in failed] == ["k1"]
    stats = run("outbox", "stats", "--config", str(cfg)).stdout
    assert "pending    2" in stats and "failed     1" in stats

    assert (
        run("outbox", "retry", "--config", str(cfg), "2").stdout.strip()
        == "outbox job 2 queued again"
    )
    refused = run("outbox", "retry", "--config", str(cfg), "1")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "sportello: error: outbox job 1 is pending; this command applies to failed or cancelled"
    )
    assert run("outbox", "cancel", "--config", str(cfg), "3").returncode == 0
    shown = json.loads(run("outbox", "inspect", "--config", str(cfg), "2").stdout)
    assert shown["status"] == "pending" and shown["idempotency_key"] == "k1"
    assert shown["max_attempts"] == 8 and shown["ledger"][0]["outcome"] == "operator"
    missing = run("outbox", "inspect", "--config", str(cfg), "99")
    assert missing.returncode == 1 and "outbox job 99 does not exist" in missing.stderr


def test_plugins_and_tenants_listing(tmp_path: Path) -> None:
    listing = json.loads(run("plugins", "--json").stdout)
    assert {p["name"] for p in listing} >= {"connectors", "sandbox"}
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite")
    out = run("tenants", "list", "--config", str(cfg)).stdout
    assert "Comune di Esempio" in out and "c_z999" in out


def get_json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_demo_starts_the_hub_and_every_sandbox(tmp_path: Path) -> None:
    hub_port, base = free_port(), free_port() + 10
    cfg = tmp_path / "demo.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/demo.sqlite"\n[server]\nport = {hub_port}\n'
        f'[sandbox]\nbase_port = {base}\n[logging]\nlevel = "WARNING"\n{TENANT}'
    )
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    proc = subprocess.Popen(
        [SPORTELLO, "demo", "--config", str(cfg), "--data-dir", str(tmp_path / "var")],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        line = ""
        while "demo ready" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "demo exited"
        assert get_json(f"http://127.0.0.1:{hub_port}/readyz")["status"] == "ready"
        names = [get_json(f"http://127.0.0.1:{base + i}/status")["platform"] for i in range(1, 10)]
        assert names == ["idp", "pagopa", "io", "pdnd", "anpr", "oidc", "send", "inad", "email"]
    finally:
        proc.terminate()
        assert proc.wait(15) == 0


@pytest.mark.parametrize("command", [["--help"], ["outbox", "--help"], ["--version"]])
def test_help(command: list[str]) -> None:
    assert run(*command).returncode == 0


@pytest.mark.parametrize("url", ["sportello.example.it", "htps//sportello.example.it", "https://"])
def test_config_check_refuses_a_url_without_scheme_or_host(tmp_path: Path, url: str) -> None:
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite", f'[server]\npublic_url = "{url}"')
    result = run("config", "check", str(cfg))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{cfg}: server.public_url: expected an absolute http:// or https:// URL" in (
        result.stderr
    )


def test_config_check_says_per_tenant_and_platform_what_is_missing(tmp_path: Path) -> None:
    cfg = config(
        tmp_path,
        f"sqlite:///{tmp_path}/hub.sqlite",
        '[server]\npublic_url = "https://sportello.example.it"',
    )
    cfg.write_text(
        cfg.read_text()
        + '[tenants.spid]\nkeys_dir = "keys"\ncontact_email = "urp@example.it"\n'
        + '[tenants.adapters.registry]\nplugin = "csv"\noptions = { path = "nowhere.csv" }\n'
    )
    result = run("config", "check", str(cfg))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"{cfg}: valid (1 tenants, database sqlite+aiosqlite), but 3 problem(s):"
    assert lines[1].startswith("  tenant demo: spid: keys_dir: ")
    assert lines[2].startswith("  tenant demo: spid: no IdP list: set idp_metadata")
    assert lines[3].startswith("  tenant demo: adapters.registry: options.path: ")
    assert lines[3].endswith("nowhere.csv does not exist")
    ok = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite")
    result = run("config", "check", str(ok))
    assert result.returncode == 0
    assert result.stdout.strip() == f"{ok}: ok (1 tenants, database sqlite+aiosqlite)"


def test_serve_says_when_it_is_up_and_when_it_stops(tmp_path: Path) -> None:
    port = free_port()
    cfg = config(tmp_path, f"sqlite:///{tmp_path}/hub.sqlite", f"[server]\nport = {port}")
    assert run("db", "upgrade", "--config", str(cfg)).returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    proc = subprocess.Popen(
        [SPORTELLO, "serve", "--config", str(cfg), "--no-workers"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        up = proc.stderr.readline().strip()
        assert up == (
            f"sportello: serving on http://127.0.0.1:{port} (public URL not set; "
            "tenants: demo; outbox workers: off)"
        )
        assert get_json(f"http://127.0.0.1:{port}/readyz")["status"] == "ready"
    finally:
        proc.terminate()
        assert proc.wait(15) == 0
    assert proc.stderr.read().strip() == f"sportello: stopped serving on http://127.0.0.1:{port}"
