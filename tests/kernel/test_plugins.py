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
    assert "hub_outbox_handlers" in listing["connectors"]["hooks"]
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
    ]


def test_a_plugin_can_be_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPORTELLO_DISABLE_PLUGINS", "sandbox, other")
    plugins = Plugins()
    assert plugins.sandbox_apps() == []
    listing = {p["name"]: p["distribution"] for p in plugins.listing()}
    assert listing["sandbox"] == "DISABLED" and "connectors" in listing
    assert "webhook" not in Plugins(["connectors"]).outbox_handlers()


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
