"""Campaigns from a source plugin instead of a CSV: the reference SQL source, through the
CLI, with every row validated before anything is queued."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sportello.plugins import Plugins
from sportello.sandbox.io.population import CF_ALLOWED, CF_BLOCKED

SPORTELLO = str(Path(sys.executable).with_name("sportello"))
MARKDOWN = (
    "Gentile {{ nome }}, il Comune di Esempio le ricorda la scadenza del tributo. Trova "
    "l'avviso nella sezione pagamenti e può pagarlo con pagoPA da App IO."
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SPORTELLO_DATABASE_URL"}
    return subprocess.run([SPORTELLO, *args], capture_output=True, text=True, env=env, timeout=60)


def test_sql_source_is_registered() -> None:
    assert "sql" in Plugins().campaign_sources()


def test_campaign_from_a_sql_query(tmp_path: Path) -> None:
    db = tmp_path / "tributi.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE contribuenti (cf TEXT, nome TEXT, scadenza TEXT)")
        conn.executemany(
            "INSERT INTO contribuenti VALUES (?, ?, ?)",
            [(CF_ALLOWED, "Anna", "2027-01-31"), (CF_BLOCKED, "Bruno", "2027-01-31")],
        )
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/hub.sqlite"\n[logging]\nlevel = "WARNING"\n'
        '[[tenants]]\nid = "demo"\nname = "Comune di Esempio"\nipa_code = "c_z999"\n'
        'fiscal_code = "00000000999"\ncadastral_code = "Z999"\n[tenants.io]\n'
        'base_url = "http://127.0.0.1:9/api/v1"\n'
        'services = [{ id = "01DEMOSERVICE0000000000000", key = { env = "X" } }]\n'
    )
    (tmp_path / "avviso.md").write_text(MARKDOWN)
    assert run("db", "upgrade", "--config", str(cfg)).returncode == 0
    common = [
        "io",
        "campaign",
        "create",
        "--config",
        str(cfg),
        "--tenant",
        "demo",
        "--service",
        "01DEMOSERVICE0000000000000",
        "--subject",
        "Scadenza tributi 2026",
        "--markdown-file",
        str(tmp_path / "avviso.md"),
        "--source",
        "sql",
        "--option",
        "url=sqlite+aiosqlite:///tributi.db",
    ]
    bad = run(*common, "--option", "query=SELECT cf AS fiscal_code FROM contribuenti")
    assert bad.returncode == 1
    assert "source sql: row 1: template: 'nome' is undefined" in bad.stderr
    good = run(
        *common,
        "--option",
        "query=SELECT cf AS fiscal_code, scadenza AS due_date, nome FROM contribuenti",
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip() == "campaign 1 queued: 2 messages"
    report = run("io", "campaign", "report", "--config", str(cfg), "1")
    assert "queued               2" in report.stdout
    neither = run(*common[:-4])
    assert neither.returncode == 2 and "give either --csv FILE or --source NAME" in neither.stderr
