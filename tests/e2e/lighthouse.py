"""Lighthouse (npm ``lighthouse``, pinned in package.json) on the front office's personal area,
the booking pages, a request's card and the rating page, mobile (Lighthouse's default: a Moto
G class phone, slow 4G), with Debian's Chromium. Too slow for the test suite (about 15 s a
page), so a script:

    .venv/bin/python tests/e2e/lighthouse.py [--min 90] [--out var/artefacts/lighthouse]
        [--only richieste,valutazione]

It starts the hub on 127.0.0.1 (SQLite in a temporary folder) with one tenant (front office,
booking, the comune's registry as a CSV), opens a citizen session in the database as the
front office does after a login (the login itself is the browser test's job:
tests/e2e/test_browser_frontoffice.py), runs Lighthouse on each page with the session's
cookie, prints the performance and accessibility scores, writes each report (JSON) under
``--out`` and exits 1 when a score is below ``--min``. docs/frontoffice.md records the
scores (the requests pages: docs/requests.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from aiohttp import web

from sportello.app import create_app
from sportello.appkeys import CLOCK
from sportello.config import parse_config
from sportello.web.citizen import sessions

ROOT = Path(__file__).resolve().parents[2]
LIGHTHOUSE = ROOT / "node_modules" / "lighthouse" / "cli" / "index.js"
TENANT = "comune"
CF = "PRVGLI85H55F205A"
PAGES = (
    "area",
    "area/dati",
    "area/appuntamenti",
    "prenota/",
    "prenota/orari?servizio=anagrafe/cie",
    "richieste/certificato/",
    "valutazione?servizio=requests.certificato",
)
CATEGORIES = ("performance", "accessibility")


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(folder: Path, hub: str) -> object:
    (folder / "anagrafe.csv").write_text(
        "fiscal_code;family_name;given_name;birth_date;address;municipality_istat;email\n"
        f"{CF};Prova;Giulia;1985-06-15;Via della Prova 1;058091;giulia@example.it\n",
        encoding="utf-8",
    )
    hours = {d: ["08:00-20:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    tenant = {
        "id": TENANT,
        "name": "Comune di Prova",
        "ipa_code": "c_z999",
        "fiscal_code": "00000000999",
        "cadastral_code": "Z999",
        "frontoffice": {"owner_name": "Regione di Prova"},
        "booking": {
            "offices": [
                {
                    "id": "anagrafe",
                    "name": "Ufficio Anagrafe",
                    "address": "Piazza del Municipio 1",
                    "services": [
                        {"id": "cie", "name": "Carta d'identità elettronica", "minutes": 30}
                    ],
                    "hours": hours,
                }
            ]
        },
        "requests": {},
        "adapters": {"registry": {"plugin": "csv", "options": {"path": "anagrafe.csv"}}},
    }
    return parse_config(
        {
            "server": {"public_url": hub},
            "database": {"url": f"sqlite+aiosqlite:///{folder / 'hub.sqlite'}"},
            "outbox": {"workers": False},
            "logging": {"level": "WARNING"},
            "tenants": [tenant],
        },
        source=str(folder / "hub.toml"),
        base_dir=folder,
    )


def _lighthouse(url: str, cookie: str, out: Path, chromium: str) -> dict[str, float]:
    command = [
        "node",
        str(LIGHTHOUSE),
        url,
        f"--chrome-path={chromium}",
        "--chrome-flags=--headless --no-sandbox --disable-gpu",
        f"--only-categories={','.join(CATEGORIES)}",
        "--output=json",
        f"--output-path={out}",
        f"--extra-headers={json.dumps({'Cookie': cookie})}",
        "--quiet",
    ]
    subprocess.run(command, check=True, timeout=180)
    report = json.loads(out.read_text(encoding="utf-8"))
    return {c: round(report["categories"][c]["score"] * 100) for c in CATEGORIES}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min", type=int, default=90)
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "artefacts" / "lighthouse")
    parser.add_argument("--only", default="", help="comma-separated parts of the pages to run")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not LIGHTHOUSE.is_file():
        print("needs chromium on PATH and node_modules/lighthouse (npm ci)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    port = _port()
    hub = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(_config(Path(tmp), hub), apply_migrations=True)  # type: ignore[arg-type]
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            carrier = web.Response()
            await sessions(app).start(
                carrier,
                tenant_id=TENANT,
                subject=CF,
                data={"name": "Giulia", "family_name": "Prova", "scheme": "spid"},
                now=app[CLOCK].now(),
            )
            cookie = "; ".join(f"{k}={m.value}" for k, m in carrier.cookies.items())
            failed = False
            wanted = [w for w in args.only.split(",") if w]
            for path in [p for p in PAGES if not wanted or any(w in p for w in wanted)]:
                url = f"{hub}/t/{TENANT}/sportello/{path}"
                name = path.replace("/", "_").split("?")[0] or "home"
                scores = await asyncio.to_thread(
                    _lighthouse, url, cookie, args.out / f"{name}.json", chromium
                )
                low = [c for c, v in scores.items() if v < args.min]
                failed |= bool(low)
                line = "  ".join(f"{c} {v}" for c, v in scores.items())
                print(f"{path:45} {line}{'  < ' + str(args.min) if low else ''}", flush=True)
        finally:
            await runner.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("SPORTELLO_LOG_LEVEL", "WARNING")
    raise SystemExit(asyncio.run(main()))
