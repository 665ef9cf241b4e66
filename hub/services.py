"""The shared services a plugin's factories receive (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.connectors.http1 import LeanHttpClient

from .clock import Clock
from .config import HubConfig
from .metrics import HubMetrics


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
