"""Plugins: built-ins load through the entry-point group, can be disabled, conflicts are
refused, and every hookspec is documented in docs/plugins.md with its exact signature."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from sportello import hookspecs
from sportello.hookspecs import HandlerFactory, SandboxApp, hookimpl
from sportello.plugins import PluginConflict, Plugins

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def hookspec_functions() -> list[Any]:
    return [
        f
        for name, f in vars(hookspecs).items()
        if name.startswith("hub_") and inspect.isfunction(f)
    ]


def test_every_hook_is_prefixed_typed_and_documented() -> None:
    specs = hookspec_functions()
    assert len(specs) >= 8
    text = DOCS.read_text(encoding="utf-8")
    for f in specs:
        assert f.__doc__, f"{f.__name__} has no docstring"
        assert "return" in inspect.get_annotations(f), f"{f.__name__} has no return type"
        params = ", ".join(inspect.signature(f).parameters)
        signature = f"{f.__name__}({params})"
        assert f"`{signature}`" in text, f"docs/plugins.md does not document `{signature}`"


def test_builtins_come_from_the_entry_point_group() -> None:
    listing = {p["name"]: p for p in Plugins().listing()}
    assert listing["connectors"]["distribution"].startswith("sportello ")
    assert listing["sandbox"]["distribution"].startswith("sportello ")
    assert "hub_connectors" in listing["connectors"]["hooks"]
    # the kernel registers its own outbox kind (connectors import nothing of the hub)
    assert "hub_outbox_handlers" in listing["kernel"]["hooks"]
    assert "hub_outbox_handlers" not in listing["connectors"]["hooks"]
    plugins = Plugins()
    assert "webhook" in plugins.outbox_handlers()
    assert [a.name for a in plugins.sandbox_apps()] == [
        "idp",
        "pagopa",
        "io",
        "pdnd",
        "anpr",
        "oidc",
        "send",
        "inad",
        "email",
    ]


def test_a_plugin_can_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPORTELLO_DISABLE_PLUGINS", "sandbox, other")
    plugins = Plugins()
    assert plugins.sandbox_apps() == []
    listing = {p["name"]: p["distribution"] for p in plugins.listing()}
    assert listing["sandbox"] == "DISABLED" and "connectors" in listing
    assert "webhook" in Plugins(["connectors"]).outbox_handlers()
    assert "webhook" not in Plugins(["kernel"]).outbox_handlers()


class ThirdParty:
    @hookimpl
    def hub_registry_adapters(self) -> dict[str, type[Any]]:
        return {"halley": dict}

    @hookimpl
    def hub_sandbox_apps(self) -> list[SandboxApp]:
        return []


class Clash:
    @hookimpl
    def hub_outbox_handlers(self) -> dict[str, HandlerFactory]:
        return {"webhook": lambda services: None}  # type: ignore[dict-item,return-value]


def test_third_party_plugins_register_and_conflicts_are_refused() -> None:
    plugins = Plugins()
    plugins.register(ThirdParty(), name="halley")
    assert plugins.registry_adapters()["halley"] is dict
    plugins.register(Clash(), name="clash")
    with pytest.raises(PluginConflict, match="two plugins provide the outbox kind 'webhook'"):
        plugins.outbox_handlers()


def test_a_hook_with_a_typo_is_refused() -> None:
    class Typo:
        @hookimpl
        def hub_registry_adaptors(self) -> dict[str, type[Any]]:
            return {}

    with pytest.raises(Exception, match="unknown hook 'hub_registry_adaptors'"):
        Plugins().register(Typo(), name="typo")


def test_docs_mention_no_hook_that_does_not_exist() -> None:
    names = {f.__name__ for f in hookspec_functions()}
    documented = set(re.findall(r"`(hub_[a-z_]+)\(", DOCS.read_text(encoding="utf-8")))
    assert documented <= names, documented - names


def test_sandboxes_that_want_peers_get_their_urls() -> None:
    from sportello.hookspecs import sandbox_urls
    from sportello.sandbox.anpr.app import ANPR_STATE

    specs = Plugins().sandbox_apps()
    peers = sandbox_urls(specs, "127.0.0.1", 8300)
    assert peers["pdnd"] == "http://127.0.0.1:8304"
    anpr = next(s for s in specs if s.name == "anpr")
    assert anpr.wants_peers
    door = anpr.build(peers)[ANPR_STATE].front_door
    assert door.voucher_key == "http://127.0.0.1:8304/.well-known/jwks.json"
    assert door.client_keys == "http://127.0.0.1:8304/keys"


def test_plugin_commands_load_only_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    from click.testing import CliRunner

    from sportello.cli import main as cli

    @click.command("acme-sync")
    def acme_sync() -> None:
        click.echo("synced")

    class Acme:
        @hookimpl
        def hub_cli_commands(self) -> list[click.Command]:
            return [acme_sync]

    made: list[int] = []

    def plugins(*args: Any, **kwargs: Any) -> Plugins:
        made.append(1)
        p = Plugins(*args, **kwargs)
        p.register(Acme(), name="acme")
        return p

    monkeypatch.setattr(cli, "Plugins", plugins)
    # a fresh group of the same kind as `sportello` (its class, its built-in commands), so
    # loading the plugin does not change the real one
    group = type(cli.main)(commands=dict(cli.main.commands))
    runner = CliRunner()
    assert runner.invoke(group, ["config", "--help"]).exit_code == 0
    assert made == []  # a built-in command loads no plugin
    result = runner.invoke(group, ["acme-sync"])
    assert result.exit_code == 0 and result.output == "synced\n"
    assert made == [1]
    assert "acme-sync" in runner.invoke(group, ["--help"]).output
    assert made == [1]  # loaded once


# --- platforms meet through the kernel (issue 13: no platform imports another) ------------


class Ledger:
    """An outside plugin that keeps debt positions of its own (as pagoPA does)."""

    @hookimpl
    async def hub_known_notices(
        self, services: Any, tenant_id: str, notice_numbers: frozenset[str]
    ) -> dict[str, hookspecs.KnownNotice]:
        mine = {"302000000000000001": hookspecs.KnownNotice(1500, None, "RSSMRA80A01H501U", True)}
        return {n: k for n, k in mine.items() if n in notice_numbers and tenant_id == "demo"}


async def test_notices_of_every_plugin_are_merged_and_none_without_pagopa() -> None:
    plugins = Plugins(["pagopa"])
    plugins.register(Ledger(), name="ledger")
    found = await plugins.known_notices(None, "demo", ["302000000000000001", "302000000000000002"])  # type: ignore[arg-type]
    assert found == {
        "302000000000000001": hookspecs.KnownNotice(1500, None, "RSSMRA80A01H501U", True)
    }
    assert await plugins.known_notices(None, "other", ["302000000000000001"]) == {}  # type: ignore[arg-type]
    assert await Plugins(["pagopa"]).known_notices(None, "demo", ["302000000000000001"]) == {}  # type: ignore[arg-type]


async def test_messages_cannot_be_queued_without_the_io_platform() -> None:
    assert Plugins().queues_messages()
    plugins = Plugins(["io"])
    assert not plugins.queues_messages()
    with pytest.raises(LookupError, match="io platform disabled"):
        await plugins.queue_message(
            None,  # type: ignore[arg-type]
            tenant_id="demo",
            service_id="S",
            message=None,  # type: ignore[arg-type]
            now=None,  # type: ignore[arg-type]
        )


def test_demo_configuration_passes_through_each_plugin_in_turn(tmp_path: Path) -> None:
    from sportello.config import parse_config

    class First:
        @hookimpl
        def hub_demo_prepare(self, config: Any) -> Any:  # a subset of the arguments
            return config.model_copy(
                update={"plugins": config.plugins.model_copy(update={"disabled": ["a"]})}
            )

    class Second:
        @hookimpl
        def hub_demo_prepare(self, config: Any, data_dir: Path) -> Any:
            assert config.plugins.disabled == ["a"]  # sees what First returned
            return config.model_copy(
                update={
                    "plugins": config.plugins.model_copy(update={"disabled": ["a", data_dir.name]})
                }
            )

    class Keeps:
        @hookimpl
        def hub_demo_prepare(self, config: Any, data_dir: Path, trust_idps: Any) -> None:
            return None

    plugins = Plugins(["login"], entry_points=False)
    for n, p in enumerate((First(), Keeps(), Second())):
        plugins.register(p, name=f"demo{n}")
    config = parse_config(
        {"database": {"url": "sqlite:///x.sqlite"}}, source="x", base_dir=tmp_path
    )
    assert plugins.demo_prepare(config, tmp_path / "var").plugins.disabled == ["a", "var"]
