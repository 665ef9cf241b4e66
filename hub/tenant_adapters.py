"""One per-tenant adapter factory for the whole hub.

A tenant names its adapters in the configuration (``[tenants.adapters.<kind>]``: the
plugin and its options); :class:`TenantAdapters` builds each one on first use, once per
tenant and kind, keeps it for the life of the process, and closes them all at shutdown
(:meth:`TenantAdapters.aclose`, called by whoever owns the :class:`~sportello.services.
HubServices`: the web app, ``sportello worker``, a CLI command). Platforms reach it as
``services.adapters``; they never build an adapter themselves.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import HubConfig, TenantConfig

if TYPE_CHECKING:
    from .plugins import Plugins

__all__ = ["AdapterNotInstalled", "TenantAdapters"]

log = logging.getLogger("sportello.adapters")


class AdapterNotInstalled(LookupError):
    """The tenant names an adapter plugin that is not installed (or is disabled)."""

    def __init__(self, kind: str, plugin: str, installed: list[str]) -> None:
        self.kind = kind
        self.plugin = plugin
        self.installed = installed
        super().__init__(
            f"{kind} adapter {plugin!r} is not installed "
            f"(installed: {', '.join(installed) or 'none'})"
        )


def _catalogues(plugins: Plugins) -> dict[str, Callable[[], dict[str, type[Any]]]]:
    """The adapter classes by kind, as the plugin hooks provide them: the kernel's own
    kinds, each with its hook, and every kind a plugin declares (``hub_adapter_kinds``),
    whose classes come from ``hub_adapters``."""
    catalogues: dict[str, Callable[[], dict[str, type[Any]]]] = {
        "registry": plugins.registry_adapters,
        "suap": plugins.suap_adapters,
        "accounting": plugins.accounting_adapters,
    }
    for kind in plugins.adapter_kinds():
        catalogues.setdefault(kind, functools.partial(plugins.kind_adapters, kind))
    return catalogues


class TenantAdapters:
    """Each tenant's adapters, built as ``cls(options, base_dir=<config folder>)`` on first
    use and closed together by :meth:`aclose`."""

    def __init__(self, config: HubConfig, plugins: Plugins | None = None) -> None:
        self.config = config
        self._plugins = plugins
        self._built: dict[tuple[str, str], Any] = {}

    @property
    def plugins(self) -> Plugins:
        if self._plugins is None:
            from .plugins import Plugins

            self._plugins = Plugins(self.config.plugins.disabled)
        return self._plugins

    def get(self, tenant: TenantConfig | str, kind: str) -> Any | None:
        """The tenant's ``kind`` adapter; None when the tenant configures none (or is
        unknown). Raises :class:`AdapterNotInstalled` when its plugin is missing."""
        t = self.config.tenant(tenant) if isinstance(tenant, str) else tenant
        if t is None:
            return None
        ref = t.adapters.get(kind)
        if ref is None:
            return None
        key = (t.id, kind)
        if key not in self._built:
            catalogue = _catalogues(self.plugins).get(kind)
            classes = catalogue() if catalogue is not None else {}
            if ref.plugin not in classes:
                raise AdapterNotInstalled(kind, ref.plugin, sorted(classes))
            base = Path(self.config.source).resolve().parent
            self._built[key] = classes[ref.plugin](ref.options, base_dir=base)
        return self._built[key]

    def put(self, tenant_id: str, kind: str, adapter: Any) -> None:
        """Use ``adapter`` as the tenant's ``kind`` adapter from now on (a wrapper around the
        built one, a test double); it is closed with the others."""
        self._built[(tenant_id, kind)] = adapter

    async def aclose(self) -> None:
        """Close every adapter built (``aclose()`` or ``close()``, awaited when a coroutine);
        one that fails to close is logged and the others still close."""
        built, self._built = list(self._built.items()), {}
        for (tenant_id, kind), adapter in built:
            close = getattr(adapter, "aclose", None) or getattr(adapter, "close", None)
            if close is None:
                continue
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("adapter close failed", extra={"tenant": tenant_id, "kind": kind})
