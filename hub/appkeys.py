"""Typed keys of the shared state hung off the aiohttp app (no module-level state)."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello.platforms.residents.lookup import ResidentLookup
from sportello.platforms.suap.service import SuapService

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
SERVICES = web.AppKey("services", HubServices)
WORKER = web.AppKey("worker", OutboxWorker)
PERIODIC = web.AppKey("periodic", PeriodicRunner)
RESIDENTS = web.AppKey("residents", ResidentLookup)
SUAP = web.AppKey("suap", SuapService)
