"""Every plugin hook of Sportello, in one file.

Hooks are synchronous, typed and prefixed ``hub_``. They return classes or factories; the
things they return do their I/O in ``async`` methods. Built-in connectors, adapters and
sandboxes register through these same hooks (entry-point group ``sportello``), exactly as a
third-party plugin does. Every hook here must be documented in ``docs/plugins.md`` with its
exact signature (a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from aiohttp import web

    from .outbox import Handler
    from .services import HubServices

PROJECT = "sportello"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class SandboxApp:
    """A sandbox twin of a national platform, served on ``base_port + port_offset``.

    ``factory()`` builds the app. When ``wants_peers`` is true it is called as
    ``factory(peers={name: base URL})`` instead, so a sandbox can find the others (the ANPR
    gateway needs the PDND token server's keys) on whatever ports they were given.
    """

    name: str
    port_offset: int
    factory: Callable[..., web.Application]
    description: str = ""
    wants_peers: bool = False

    def build(self, peers: dict[str, str]) -> web.Application:
        return self.factory(peers=peers) if self.wants_peers else self.factory()


def sandbox_urls(apps: list[SandboxApp], host: str, base_port: int) -> dict[str, str]:
    """Each sandbox's base URL for the given host and base port."""
    return {a.name: f"http://{host}:{base_port + a.port_offset}" for a in apps}


HandlerFactory = Callable[["HubServices"], "Handler"]


@hookspec
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    """Outbox kinds this plugin delivers, as ``{kind: factory}``.

    ``factory(services)`` is called once per worker and returns ``async handler(job)``.
    """


@hookspec
def hub_connectors() -> list[type[Any]]:
    """Connector classes (outbound clients of a national platform or of tenant systems)."""


@hookspec
def hub_registry_adapters() -> dict[str, type[Any]]:
    """Registry (anagrafe) adapter classes by name, chosen per tenant in the configuration."""


@hookspec
def hub_accounting_adapters() -> dict[str, type[Any]]:
    """Accounting (ragioneria) adapter classes by name, chosen per tenant."""


@hookspec
def hub_suap_adapters() -> dict[str, type[Any]]:
    """SUAP back-office adapter classes by name, chosen per tenant."""


@hookspec
def hub_campaign_sources() -> dict[str, type[Any]]:
    """App IO campaign sources by name: classes built as ``cls(options, base_dir=...)`` whose
    ``async rows()`` yields mappings with the campaign columns (``fiscal_code``,
    ``expedition_date``, ``due_date``, ``notice_number``, ``amount``) and template fields."""


@hookspec
def hub_sandbox_apps() -> list[SandboxApp]:
    """Sandbox apps that ``sportello sandbox`` and ``sportello demo`` start."""


@hookspec
def hub_web_routes() -> list[web.AbstractRouteDef]:
    """Routes this plugin adds to the hub's web app (inbound endpoints, pages)."""


@hookspec
def hub_cli_commands() -> list[click.Command]:
    """Extra ``sportello`` sub-commands."""
