"""Platforms are plugins with a lifecycle: the web app gives them their services at start-up
and closes what they opened at shutdown; each tenant's adapter is built once and closed
with the app; a disabled platform adds nothing; the kernel imports no platform."""

from __future__ import annotations

import ast
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

from aiohttp.test_utils import TestClient, TestServer

from sportello.app import SERVICES, create_app, periodic_tasks
from sportello.config import parse_config
from sportello.hookspecs import hookimpl
from sportello.periodic import PeriodicTask
from sportello.plugins import Plugins
from sportello.schema import all_tables

HUB = Path(__file__).resolve().parents[2] / "hub"
TENANT = {
    "id": "demo",
    "name": "Comune di Esempio",
    "ipa_code": "c_z999",
    "fiscal_code": "00000000999",
    "cadastral_code": "Z999",
}


class CountingAdapter:
    made: ClassVar[list[CountingAdapter]] = []

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        self.closed = 0
        CountingAdapter.made.append(self)

    async def close(self) -> None:
        self.closed += 1


class Acme:
    """A third-party platform: one adapter kind, a start-up context, a periodic task."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @hookimpl
    def hub_accounting_adapters(self) -> dict[str, type[Any]]:
        return {"counting": CountingAdapter}

    @hookimpl
    def hub_platform_setup(self, services: Any, app: Any) -> Any:
        @asynccontextmanager
        async def ctx() -> Any:
            self.events.append(f"start:{services.config.tenants[0].id}")
            yield
            self.events.append("stop")

        return ctx()

    @hookimpl
    def hub_periodic_tasks(self, config: Any, app: Any) -> list[PeriodicTask]:
        async def round_() -> None:
            return None

        return [PeriodicTask("acme.sync", 3600, round_, exclusive=False)]


def _config(tmp_path: Path, **tenant: Any) -> Any:
    return parse_config(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp_path}/hub.sqlite"},
            "outbox": {"workers": False},
            "tenants": [{**TENANT, **tenant}],
        }
    )


async def test_a_platform_starts_with_the_services_and_stops_with_the_app(tmp_path: Path) -> None:
    CountingAdapter.made.clear()
    plugins = Plugins()
    acme = Acme()
    plugins.register(acme, name="acme")
    config = _config(tmp_path, adapters={"accounting": {"plugin": "counting"}})
    app = create_app(config, plugins=plugins, apply_migrations=True)
    assert "acme.sync" in [t.name for t in periodic_tasks(app, leased=False)]
    async with TestClient(TestServer(app)) as client:
        assert acme.events == ["start:demo"]
        adapters = client.app[SERVICES].adapters
        first = adapters.get("demo", "accounting")
        assert adapters.get("demo", "accounting") is first  # built once per tenant
        assert adapters.get("nobody", "accounting") is None
        assert adapters.get("demo", "registry") is None  # not configured
    assert acme.events == ["start:demo", "stop"]
    assert CountingAdapter.made == [first] and first.closed == 1  # closed at shutdown


def test_a_disabled_platform_adds_nothing(tmp_path: Path) -> None:
    config = _config(tmp_path, suap={"poll_seconds": 60}, adapters={"suap": {"plugin": "json"}})
    on = {r.resource.canonical for r in create_app(config).router.routes() if r.resource}
    assert "/api/v1/tenants/{tenant}/suap/practices" in on
    assert "suap.notify:demo" in [t.name for t in periodic_tasks(create_app(config))]
    off_plugins = Plugins(["suap"])
    off = create_app(config, plugins=off_plugins)
    routes = {r.resource.canonical for r in off.router.routes() if r.resource}
    assert not any("/suap" in path for path in routes)
    assert periodic_tasks(off) == []
    assert "suap_cursors" not in {t.name for t in off_plugins.tables()}
    assert {"suap_cursors", "pagopa_positions", "io_messages", "login_sessions"} <= set(
        all_tables().tables
    )


def test_the_kernel_imports_no_platform() -> None:
    kernel = [
        *HUB.glob("*.py"),
        *(HUB / "api").glob("*.py"),
        *(HUB / "outbox").glob("*.py"),
        HUB / "cli" / "main.py",
        HUB / "cli" / "common.py",
        HUB / "migrations" / "env.py",
    ]
    found = []
    for path in kernel:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.level and (node.module or "").startswith("platforms"):
                    names = ["sportello." + (node.module or "")]
            found += [f"{path.name}: {n}" for n in names if n.startswith("sportello.platforms")]
    assert found == []
