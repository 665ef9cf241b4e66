"""Typed keys of the kernel's shared state hung off the aiohttp app (no module-level state).
A platform keeps its own objects under keys it defines (``sportello.platforms.suap.service.
SUAP``...), set by its ``hub_platform_setup``."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.connectors.http1 import LeanHttpClient

from .clock import Clock
from .config import HubConfig
from .metrics import HubMetrics
from .outbox.worker import OutboxWorker
from .periodic import PeriodicRunner
from .plugins import Plugins
from .services import HubServices

CONFIG = web.AppKey("config", HubConfig)
CLOCK = web.AppKey("clock", Clock)
PLUGINS = web.AppKey("plugins", Plugins)
METRICS = web.AppKey("metrics", HubMetrics)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSION = web.AppKey("session", aiohttp.ClientSession)
#: the lean HTTP/1.1 client the services share (closed with the session)
HTTP = web.AppKey("http", LeanHttpClient)
SERVICES = web.AppKey("services", HubServices)
WORKER = web.AppKey("worker", OutboxWorker)
PERIODIC = web.AppKey("periodic", PeriodicRunner)
