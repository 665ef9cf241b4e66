"""The plugin manager: loads the ``sportello`` entry-point group (built-ins included),
honours the disable list, and offers typed accessors over the hooks."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pluggy

from . import hookspecs
from .hookspecs import (
    PROJECT,
    AdapterKind,
    CreatedNotice,
    HandlerFactory,
    KnownNotice,
    NoticeDocument,
    NoticeRequest,
    SandboxApp,
)

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager
    from datetime import datetime

    import click
    from aiohttp import web
    from pydantic import BaseModel
    from sqlalchemy import Table
    from sqlalchemy.ext.asyncio import AsyncConnection

    from sportello.connectors.io.models import NewMessage

    from .config import HubConfig, TenantConfig
    from .periodic import PeriodicTask
    from .services import HubServices

ENTRY_POINT_GROUP = "sportello"
DISABLE_ENV = "SPORTELLO_DISABLE_PLUGINS"

# Built-ins, by entry-point name. They load through the entry-point group like any plugin;
# this table only covers running from a checkout whose metadata is not installed.
BUILTIN_PLUGINS = {
    "connectors": "sportello.connectors.plugin",
    "sandbox": "sportello.sandbox.plugin",
    "adapters": "sportello.adapters.plugin",
    "platforms": "sportello.platforms",
}
# The kernel's own hook implementations (the ``webhook`` outbox kind; the onboarding API),
# registered after the built-ins under these names (disabling ``kernel`` turns the webhook
# deliveries off, ``onboarding`` the admin onboarding routes).
KERNEL_PLUGINS = {"kernel": "sportello.events", "onboarding": "sportello.api.onboarding"}


class PluginConflict(Exception):
    """Two plugins registered the same name for the same thing."""


def disabled_from_env() -> set[str]:
    return {p.strip() for p in os.environ.get(DISABLE_ENV, "").split(",") if p.strip()}


class Plugins:
    """Typed facade over the pluggy manager."""

    def __init__(self, disabled: Iterable[str] = (), *, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.disabled = set(disabled) | disabled_from_env()
        for name in self.disabled:
            self.pm.set_blocked(name)
        if entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for name, module in BUILTIN_PLUGINS.items():
            if not self.pm.has_plugin(name) and not self.pm.is_blocked(name):
                self.pm.register(importlib.import_module(module), name=name)
        for name, module in KERNEL_PLUGINS.items():
            if not self.pm.has_plugin(name) and not self.pm.is_blocked(name):
                self.pm.register(importlib.import_module(module), name=name)
        #: plugins brought by another (``hub_plugins``): name -> the bringer's name
        self.brought: dict[str, str] = {}
        self._register_brought()
        self.pm.check_pending()

    def _register_brought(self) -> None:
        for bringer, plugin in list(self.pm.list_name_plugin()):
            if plugin is None or not hasattr(plugin, "hub_plugins"):
                continue
            for name, brought in (plugin.hub_plugins() or {}).items():
                if self.pm.has_plugin(name) or self.pm.is_blocked(name):
                    continue
                self.pm.register(brought, name=name)
                self.brought[name] = bringer

    def register(self, plugin: object, name: str | None = None) -> None:
        self.pm.register(plugin, name=name)
        self.pm.check_pending()

    def listing(self) -> list[dict[str, Any]]:
        """What is loaded: name, module, hooks implemented, where it came from."""
        dists = {id(p): d for p, d in self.pm.list_plugin_distinfo()}
        out = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist = dists.get(id(plugin))
            if dist is None and name in self.brought:
                dist = dists.get(id(self.pm.get_plugin(self.brought[name])))
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            out.append(
                {
                    "name": name,
                    "module": getattr(plugin, "__name__", type(plugin).__name__),
                    "hooks": hooks,
                    "distribution": f"{dist.project_name} {dist.version}" if dist else "(direct)",
                }
            )
        for name in sorted(self.disabled):
            out.append({"name": name, "module": "-", "hooks": [], "distribution": "DISABLED"})
        return out

    def _merge(self, results: list[dict[str, Any]], what: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for result in results:
            for key, value in (result or {}).items():
                if key in merged and merged[key] is not value:
                    raise PluginConflict(f"two plugins provide the {what} {key!r}")
                merged[key] = value
        return merged

    def outbox_handlers(self) -> dict[str, HandlerFactory]:
        return self._merge(self.pm.hook.hub_outbox_handlers(), "outbox kind")

    def connectors(self) -> list[type[Any]]:
        return [c for group in self.pm.hook.hub_connectors() for c in group]

    def registry_adapters(self) -> dict[str, type[Any]]:
        return self._merge(self.pm.hook.hub_registry_adapters(), "registry adapter")

    def accounting_adapters(self) -> dict[str, type[Any]]:
        return self._merge(self.pm.hook.hub_accounting_adapters(), "accounting adapter")

    def suap_adapters(self) -> dict[str, type[Any]]:
        return self._merge(self.pm.hook.hub_suap_adapters(), "SUAP adapter")

    def adapter_kinds(self) -> dict[str, AdapterKind]:
        """The adapter kinds plugins declare (``hub_adapter_kinds``)."""
        return self._merge(self.pm.hook.hub_adapter_kinds(), "adapter kind")

    def kind_adapters(self, kind: str) -> dict[str, type[Any]]:
        """The adapter classes of a declared ``kind`` (``hub_adapters``)."""
        return self._merge(
            [(result or {}).get(kind, {}) for result in self.pm.hook.hub_adapters()],
            f"{kind} adapter",
        )

    def campaign_sources(self) -> dict[str, type[Any]]:
        return self._merge(self.pm.hook.hub_campaign_sources(), "campaign source")

    def send_sources(self) -> dict[str, type[Any]]:
        return self._merge(self.pm.hook.hub_send_sources(), "SEND notification source")

    def sandbox_apps(self) -> list[SandboxApp]:
        apps = [a for group in self.pm.hook.hub_sandbox_apps() for a in group]
        return sorted(apps, key=lambda a: a.port_offset)

    def web_routes(self) -> list[web.AbstractRouteDef]:
        return [r for group in self.pm.hook.hub_web_routes() for r in group]

    def cli_commands(self) -> list[click.Command]:
        return [c for group in self.pm.hook.hub_cli_commands() for c in group]

    def platform_setups(
        self, services: HubServices, app: web.Application
    ) -> list[AbstractAsyncContextManager[None]]:
        """The start-up contexts, in the order to enter them (plugins registered first,
        first: pluggy calls the last registered first)."""
        return [c for c in reversed(self.pm.hook.hub_platform_setup(services=services, app=app))]

    def web_app(self, app: web.Application) -> None:
        self.pm.hook.hub_web_app(app=app)

    def api_routes(self) -> list[web.AbstractRouteDef]:
        return [r for group in self.pm.hook.hub_api_routes() for r in group]

    def migration_locations(self) -> list[Path]:
        """The plugins' folders of Alembic revisions (``hub_migration_locations``)."""
        groups = reversed(self.pm.hook.hub_migration_locations())
        return [Path(p) for group in groups for p in group]

    def tenant_settings(self) -> dict[str, type[BaseModel]]:
        """The ``[tenants.<name>]`` sections the plugins declare (``hub_tenant_settings``)."""
        return self._merge(self.pm.hook.hub_tenant_settings(), "tenant section")

    def hub_settings(self) -> dict[str, type[BaseModel]]:
        """The top-level sections the plugins declare (``hub_settings``)."""
        return self._merge(self.pm.hook.hub_settings(), "configuration section")

    def tables(self) -> list[Table]:
        return [t for group in self.pm.hook.hub_tables() for t in group]

    def periodic_tasks(self, config: HubConfig, app: web.Application) -> list[PeriodicTask]:
        groups = reversed(self.pm.hook.hub_periodic_tasks(config=config, app=app))
        return [t for group in groups for t in group]

    def config_problems(
        self, config: HubConfig, tenant: TenantConfig, app: web.Application | None
    ) -> list[tuple[str, str]]:
        groups = reversed(self.pm.hook.hub_config_problems(config=config, tenant=tenant, app=app))
        return [p for group in groups for p in group]

    async def known_notices(
        self, services: HubServices, tenant_id: str, notice_numbers: Iterable[str]
    ) -> dict[str, KnownNotice]:
        """The notices the plugins keep among ``notice_numbers`` (``hub_known_notices``)."""
        wanted = frozenset(notice_numbers)
        found: dict[str, KnownNotice] = {}
        if not wanted:
            return found
        hook = self.pm.hook.hub_known_notices
        for pending in hook(services=services, tenant_id=tenant_id, notice_numbers=wanted):
            if pending is not None:
                found.update(await pending)
        return found

    def queues_messages(self) -> bool:
        """Whether a plugin queues App IO messages (``hub_queue_message``)."""
        return bool(self.pm.hook.hub_queue_message.get_hookimpls())

    async def queue_message(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        service_id: str,
        message: NewMessage,
        now: datetime,
        expedition_at: datetime | None = None,
    ) -> int:
        """Queue one App IO message in ``conn``'s transaction; its id (``hub_queue_message``).
        Raises LookupError when no plugin queues messages (see :meth:`queues_messages`)."""
        pending = self.pm.hook.hub_queue_message(
            conn=conn,
            tenant_id=tenant_id,
            service_id=service_id,
            message=message,
            now=now,
            expedition_at=expedition_at,
        )
        if pending is None:
            raise LookupError("no plugin queues App IO messages (is the io platform disabled?)")
        return int(await pending)

    async def notice_document(
        self, services: HubServices, tenant_id: str, notice_number: str, actor: str
    ) -> NoticeDocument | None:
        """The payment notice PDF of a notice a plugin keeps (``hub_notice_document``)."""
        pending = self.pm.hook.hub_notice_document(
            services=services, tenant_id=tenant_id, notice_number=notice_number, actor=actor
        )
        return None if pending is None else cast("NoticeDocument | None", await pending)

    def creates_notices(self) -> bool:
        """Whether a plugin creates debt positions for other platforms (``hub_create_notice``)."""
        return bool(self.pm.hook.hub_create_notice.get_hookimpls())

    async def create_notice(
        self,
        conn: AsyncConnection,
        services: HubServices,
        tenant_id: str,
        request: NoticeRequest,
        actor: str,
    ) -> CreatedNotice:
        """Create a debt position in ``conn``'s transaction (``hub_create_notice``); raises
        ``NoticeRefused`` (also when no plugin creates positions)."""
        pending = self.pm.hook.hub_create_notice(
            conn=conn, services=services, tenant_id=tenant_id, request=request, actor=actor
        )
        if pending is None:
            raise hookspecs.NoticeRefused(
                "no plugin creates pagoPA positions (is pagopa disabled?)"
            )
        return cast("CreatedNotice", await pending)

    async def notice_paid(
        self,
        conn: AsyncConnection,
        *,
        tenant_id: str,
        notice_number: str,
        creditor_tax_id: str,
        amount: int,
        paid_at: datetime,
        now: datetime,
    ) -> None:
        """Tell the plugins, in ``conn``'s transaction, that a notice was paid
        (``hub_notice_paid``)."""
        for pending in self.pm.hook.hub_notice_paid(
            conn=conn,
            tenant_id=tenant_id,
            notice_number=notice_number,
            creditor_tax_id=creditor_tax_id,
            amount=amount,
            paid_at=paid_at,
            now=now,
        ):
            if pending is not None:
                await pending

    def surcharges_notices(self) -> bool:
        """Whether a plugin may add to a notice's amount (``hub_notice_surcharge``)."""
        return bool(self.pm.hook.hub_notice_surcharge.get_hookimpls())

    async def notice_surcharge(
        self, app: web.Application, tenant_id: str, notice_number: str
    ) -> int | None:
        """Cents to add to a notice's amount, or None (``hub_notice_surcharge``); raises
        ``NoticeSurchargeUnavailable`` when it cannot be known now."""
        pending = self.pm.hook.hub_notice_surcharge(
            app=app, tenant_id=tenant_id, notice_number=notice_number
        )
        if pending is None:
            return None
        extra = await pending
        return None if extra is None else int(extra)

    def demo_prepare(
        self, config: HubConfig, data_dir: Path, trust_idps: tuple[Path, ...] = ()
    ) -> HubConfig:
        """The demo configuration, passed through every ``hub_demo_prepare`` in plugin order."""
        for impl in self.pm.hook.hub_demo_prepare.get_hookimpls():  # registration order
            # one at a time (pluggy calls them all with the same arguments): each sees the
            # configuration the previous one returned
            given = {"config": config, "data_dir": data_dir, "trust_idps": trust_idps}
            changed = impl.function(*(given[a] for a in impl.argnames))
            if changed is not None:
                config = cast("HubConfig", changed)
        return config

    def demo_pdnd_purposes(self, config: HubConfig, tenant: TenantConfig) -> dict[str, str]:
        """Every plugin's PDND purposes for ``tenant`` (``hub_demo_pdnd_purposes``)."""
        groups = self.pm.hook.hub_demo_pdnd_purposes(config=config, tenant=tenant)
        return self._merge(list(reversed(groups)), "PDND purpose")

    async def demo_seed(self, app: web.Application) -> None:
        """Run every plugin's ``hub_demo_seed``, in plugin order."""
        for pending in reversed(self.pm.hook.hub_demo_seed(app=app)):
            if pending is not None:
                await pending
