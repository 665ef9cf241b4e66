"""The shared services a plugin's factories receive (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.connectors.http1 import LeanHttpClient

from .clock import Clock
from .config import HubConfig
from .metrics import HubMetrics
from .tenant_adapters import TenantAdapters

if TYPE_CHECKING:
    from .plugins import Plugins


@dataclass(frozen=True)
class HubServices:
    """Everything long-lived that connectors and handlers need, owned by the app."""

    config: HubConfig
    engine: AsyncEngine
    session: aiohttp.ClientSession
    clock: Clock
    metrics: HubMetrics
    #: The lean HTTP/1.1 client for high-volume calls (App IO), owned and closed with the
    #: session; None: every connector uses ``session``.
    http: LeanHttpClient | None = None
    #: The loaded plugins (None: loaded on first need, from ``config.plugins``).
    plugins: Plugins | None = None
    #: Each tenant's adapters, built once and closed by the owner of these services
    #: (``await services.adapters.aclose()`` at shutdown). Made from ``config`` and
    #: ``plugins`` when not given.
    adapters: TenantAdapters = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.adapters is None:
            object.__setattr__(self, "adapters", TenantAdapters(self.config, self.plugins))
