"""The hub's OpenID Connect relying party against the reference implementation, italia's
``spid-cie-oidc`` (PyPI, the Django apps of italia/spid-cie-oidc-django): ``make oidc-interop``.

1. installs ``spid-cie-oidc`` in its own virtualenv (``.venv-oidc``; it pins Django 4.2,
   pydantic 1 and cryptojwt, which the hub does not use);
2. for each OP profile (``spid``, ``cie``) and each way into the federation (``direct``: the
   tenant's RP is the anchor's subordinate; ``intermediate``: through the hub's software-house
   intermediate at ``/federation``), on loopback ports:

   - the SDK's Django apps in one server (``tests/compliance/oidc_sdk``: settings and URLs
     written here): its trust anchor ``/ta`` and its OpenID provider ``/oidc/op``, made with
     the SDK's models; the anchor onboards the OP;
   - the hub (SQLite), one tenant whose RP trusts that anchor, with keys made as
     ``sportello keys oidc`` makes them; the anchor onboards the RP (or the intermediate) with
     the SDK's own onboarding validator and issues the trust marks the hub then publishes;
   - Debian's Chromium (Playwright, headless) from ``/t/comune/oidc/login?provider=<OP>``:
     the hub resolves the OP's chain (the SDK's statements, metadata policy, trust marks),
     the SDK's OP resolves the RP's chain (the hub's statements) and checks the request
     object, the person logs in and consents on the SDK's pages, the hub's callback
     exchanges the code (``private_key_jwt``, PKCE), checks the ID token and the userinfo;
   - the application's server exchanges the one-time code at
     ``/api/v1/tenants/comune/logins/exchange`` and gets the person's identity;
3. prints one PASS/FAIL line per run and exits 1 unless every run passed.

The person, the OP and the anchor are the SDK's; the hub's code is the one under test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from readiness import wait_ready

ROOT = Path(__file__).resolve().parents[2]
SDK_DIR = Path(__file__).resolve().parent / "oidc_sdk"
PACKAGE = "spid-cie-oidc"
VERSION = "1.6.3"
VENV = ROOT / ".venv-oidc"
TENANT = "comune"
RETURN_PATH = "/login/callback"  # the comune's application, served by the run on loopback
PROFILES = ("spid", "cie")
WAYS = ("direct", "intermediate")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def ensure_sdk(venv: Path = VENV) -> Path:
    """``.venv-oidc/bin/python`` with ``spid-cie-oidc==VERSION`` (made once)."""
    python = venv / "bin" / "python"
    if python.exists():
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import importlib.metadata as m; print(m.version('spid-cie-oidc'))",
            ],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == VERSION:
            return python
    if venv.is_symlink() or (venv.exists() and not venv.is_dir()):
        venv.unlink()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{PACKAGE}=={VERSION}"], check=True
    )
    return python


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sdk:
    """The SDK's server (trust anchor + OP) for one run."""

    python: Path
    data: Path
    base: str
    profile: str
    proc: subprocess.Popen[bytes] | None = None
    facts: dict[str, Any] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "OIDC_SDK_DATA": str(self.data),
            "OIDC_SDK_BASE": self.base,
            "OIDC_SDK_PROFILE": self.profile,
            "OIDC_SDK_RP_MARK": f"{self.base}/ta/openid_relying_party/public/",
            "OIDC_SDK_SECRET": "interop-" + self.data.name,
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def command(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [str(self.python), str(SDK_DIR / "sdk.py"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"sdk.py {args[0]} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
        return done.stdout

    def start(self) -> None:
        out = self.data / "facts.json"
        self.command("init", str(out))
        self.facts = json.loads(out.read_text())
        log = (self.data / "sdk.log").open("wb")
        port = self.base.rsplit(":", 1)[1]
        self.proc = subprocess.Popen(
            [str(self.python), str(SDK_DIR / "sdk.py"), "serve", port],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_ready(
            f"{self.base}/ta/.well-known/openid-federation",
            self.proc,
            what="the SDK server",
            timeout=30.0,
        )
        self.register(self.facts["provider"], "openid_provider")
        self.command("op-marks")

    def register(self, sub: str, entity_type: str) -> list[dict[str, Any]]:
        marks = json.loads(self.command("register", sub, entity_type).strip().splitlines()[-1])
        assert isinstance(marks, list)
        return marks

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def log_tail(self) -> str:
        path = self.data / "sdk.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


# -- the hub -----------------------------------------------------------------------------------


async def start_application() -> tuple[Any, str, list[str]]:
    """The comune's application: its ``return_to`` page on a loopback port, recording the
    URLs the browser brings to it; returns ``(server, return URL, visits)``."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    visits: list[str] = []

    async def callback(request: web.Request) -> web.Response:
        visits.append(str(request.url))
        return web.Response(text="<h1>Applicazione del comune</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get(RETURN_PATH, callback)
    port = free_port()
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    return server, f"http://127.0.0.1:{port}{RETURN_PATH}", visits


async def start_hub(work: Path, sdk: Sdk, way: str, return_url: str) -> tuple[Any, str, str]:
    """The hub on a loopback port with one tenant trusting the SDK's anchor; returns
    ``(server, base URL, API key)``. With ``way == "intermediate"`` the tenant's RP names the
    hub's software-house intermediate as its superior, and the intermediate names the anchor."""
    from aiohttp.test_utils import TestServer

    from sportello import apikeys
    from sportello.app import CLOCK, ENGINE, create_app
    from sportello.config import parse_config
    from sportello.platforms.login.oidc_keys import DEFAULT_OVERLAP, make_or_rotate

    facts = sdk.facts or {}
    port = free_port()
    hub = f"http://127.0.0.1:{port}"
    (work / "ta-jwks.json").write_text(json.dumps(facts["trust_anchor_jwks"]))
    now = datetime.now(UTC)
    make_or_rotate(work / "keys" / "oidc", rotate=False, now=now, overlap=DEFAULT_OVERLAP)
    oidc: dict[str, Any] = {
        "keys_dir": "keys/oidc",
        "trust_anchor": facts["trust_anchor"],
        "trust_anchor_jwks": "ta-jwks.json",
        "providers": {sdk.profile: [facts["provider"]]},
        "provider_trust_marks": [facts["op_mark"]],
        "contacts": ["protocollo@pec.comune.example.it"],
        "organization_url": "https://www.comune.example.it/",
        "return_urls": [return_url],
        "allow_http": True,
        # the rules (and OpenID Connect) send ui_locales as a space-separated string; the
        # SDK's request schema types it as a JSON list and refuses the request: not sent
        "ui_locales": [],
    }
    raw: dict[str, Any] = {
        "server": {"public_url": hub},
        "database": {"url": f"sqlite+aiosqlite:///{work / 'hub.sqlite'}"},
        "outbox": {"workers": False},
        "tenants": [
            {
                "id": TENANT,
                "name": "Comune di Prova",
                "ipa_code": "c_x000",
                "fiscal_code": "00000000000",
                "cadastral_code": "X000",
                "oidc": oidc,
            }
        ],
    }
    if way == "intermediate":
        from sportello.platforms.login.oidc_federation import make_or_rotate_federation

        make_or_rotate_federation(
            work / "keys" / "federation", rotate=False, now=now, overlap=timedelta(days=2)
        )
        raw["oidc_federation"] = {
            "keys_dir": "keys/federation",
            "trust_anchor": facts["trust_anchor"],
            "trust_anchor_jwks": "ta-jwks.json",
            "organization_name": "Software house di prova",
            "contacts": ["federazione@pec.softwarehouse.example.it"],
            "allow_http": True,
            "issued_trust_marks": [facts["rp_mark"]],
        }
        oidc["authority_hints"] = [f"{hub}/federation"]
    config = parse_config(raw, source=str(work / "hub.toml"), base_dir=work)
    app = create_app(config, apply_migrations=True)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    async with app[ENGINE].begin() as conn:
        key = await apikeys.create(
            conn, tenant_id=TENANT, name="app", scopes=["personal_data"], now=app[CLOCK].now()
        )
    return server, hub, key


# -- one run -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    profile: str
    way: str
    ok: bool
    detail: str


@dataclass
class Visit:
    """What the browser run brought back."""

    identity: dict[str, Any]
    logout_landing: str


async def browser_session(
    hub: str, key: str, provider: str, facts: dict[str, Any], return_url: str, landed: list[str]
) -> Visit:
    """Chromium from the hub's login URL through the SDK's login and consent pages back to the
    hub's callback and on to the application's ``return_to`` with a one-time code, which the
    application's server exchanges for the identity; then the person logs out at the hub
    (``/t/comune/oidc/logout``: the hub revokes the access token at the SDK's revocation
    endpoint) and is sent back to the application."""
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("chromium is not on PATH (make sysdeps installs it)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = None
        try:
            context = await browser.new_context(locale="it-IT")
            context.set_default_timeout(15_000)
            page = await context.new_page()

            login = f"{hub}/t/{TENANT}/oidc/login?" + urllib.parse.urlencode(
                {"provider": provider, "return_to": return_url, "state": "app-state-1"}
            )
            await page.goto(login)
            if not page.url.startswith(f"{provider}/authorization"):
                raise RuntimeError(f"not at the OP's login page: {page.url}")
            await page.fill("#id_username", facts["username"])
            await page.fill("#id_password", facts["password"])
            await page.click("button#submit")
            await page.wait_for_url(re.compile(r"/oidc/op/consent"))
            await page.click("button#agree")
            await page.wait_for_url(re.compile("^" + re.escape(return_url) + r"\?"))
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(landed[-1]).query)
            if query.get("state") != ["app-state-1"] or not query.get("code"):
                raise RuntimeError(f"the application got {landed[-1]}")
            identity = await exchange(hub, key, query["code"][0])
            logout = f"{hub}/t/{TENANT}/oidc/logout?" + urllib.parse.urlencode(
                {"return_to": return_url}
            )
            await page.goto(logout)
            await page.wait_for_url(re.compile("^" + re.escape(return_url) + "$"))
        except Exception as exc:
            where = page.url if page is not None else "?"
            text = await _text(page) if page is not None else ""
            raise RuntimeError(f"{type(exc).__name__} at {where}: {exc}\n{text}") from None
        finally:
            await browser.close()
    return Visit(identity, landed[-1])


async def _text(page: Any) -> str:
    try:
        return str(await page.inner_text("body"))[:1500]
    except Exception:
        return ""


async def exchange(hub: str, key: str, code: str) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": code[:20]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{hub}/api/v1/tenants/{TENANT}/logins/exchange", json={"code": code}, headers=headers
        ) as resp,
    ):
        body = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"exchange answered {resp.status}: {body}")
        return dict(body)


async def one_run(python: Path, profile: str, way: str, out: Path) -> Outcome:
    work = Path(tempfile.mkdtemp(prefix=f"oidc-interop-{profile}-{way}-", dir=out))
    sdk = Sdk(python, work / "sdk", f"http://127.0.0.1:{free_port()}", profile)
    sdk.data.mkdir()
    server = application = None
    try:
        await asyncio.to_thread(sdk.start)
        facts = sdk.facts or {}
        application, return_url, landed = await start_application()
        server, hub, key = await start_hub(work, sdk, way, return_url)
        if way == "intermediate":
            # the anchor onboards the software house once; it issues the comune's trust mark
            marks = await asyncio.to_thread(sdk.register, f"{hub}/federation", "federation_entity")
            (work / "keys" / "federation" / "trust_marks.json").write_text(json.dumps(marks))
            await asyncio.to_thread(sdk.command, "tm-issuer", facts["rp_mark"], f"{hub}/federation")
            rp_marks = await _intermediate_marks(hub)
        else:
            rp_marks = await asyncio.to_thread(
                sdk.register, f"{hub}/t/{TENANT}/oidc", "openid_relying_party"
            )
        (work / "keys" / "oidc" / "trust_marks.json").write_text(json.dumps(rp_marks))
        visit = await browser_session(hub, key, facts["provider"], facts, return_url, landed)
        identity = visit.identity
        person = facts["person"]
        expected = {
            "scheme": profile,
            "protocol": "oidc",
            "idp": facts["provider"],
            "level": 2,
            "fiscal_code": person["https://attributes.eid.gov.it/fiscal_number"][6:],
        }
        got = {k: identity.get(k) for k in expected}
        attrs = identity.get("attributes") or {}
        names = (attrs.get("given_name"), attrs.get("family_name"))
        if got != expected or names != (person["given_name"], person["family_name"]):
            return Outcome(profile, way, False, f"identity {identity}")
        # the SDK answers 400 to an unknown token: its session revoked proves the revocation
        revoked = json.loads(await asyncio.to_thread(sdk.command, "revoked"))
        if revoked != {"sessions": 1, "revoked": 1}:
            return Outcome(profile, way, False, f"after logout the SDK's OP has {revoked}")
        return Outcome(
            profile, way, True, f"{names[0]} {names[1]} {got['fiscal_code']} L2, logout revoked"
        )
    except Exception as exc:
        return Outcome(profile, way, False, f"{exc}\n--- SDK log ---\n{sdk.log_tail()}")
    finally:
        for running in (server, application):
            if running is not None:
                await running.close()
        await asyncio.to_thread(sdk.stop)


async def _intermediate_marks(hub: str) -> list[dict[str, Any]]:
    """The trust marks the software house's intermediate issues to the tenant's RP, taken
    from its subordinate statement (``/federation/fetch``) for the RP to publish."""
    import aiohttp

    from sportello.connectors.oidc.federation import parse_statement

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{hub}/federation/fetch", params={"sub": f"{hub}/t/{TENANT}/oidc"}) as resp,
    ):
        body = await resp.text()
        if resp.status != 200:
            raise RuntimeError(f"/federation/fetch answered {resp.status}: {body}")
    return parse_statement(body).trust_marks


async def run(
    python: Path, out: Path, profiles: tuple[str, ...] = PROFILES, ways: tuple[str, ...] = WAYS
) -> list[Outcome]:
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    results = []
    for way in ways:
        for profile in profiles:
            results.append(await one_run(python, profile, way, out))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "oidc-interop")
    parser.add_argument("--profiles", nargs="*", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--ways", nargs="*", default=list(WAYS), choices=WAYS)
    parser.add_argument("--install-only", action="store_true", help="only make .venv-oidc")
    args = parser.parse_args()
    python = ensure_sdk()
    if args.install_only:
        return 0
    started = time.monotonic()
    results = asyncio.run(run(python, args.out, tuple(args.profiles), tuple(args.ways)))
    for r in results:
        print(f"{'PASS' if r.ok else 'FAIL'} {r.profile:4} {r.way:12} {r.detail}")
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed ({time.monotonic() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
