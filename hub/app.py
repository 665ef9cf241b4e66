"""The aiohttp app factory: typed app keys, ``cleanup_ctx`` for every resource, and the
service routes ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import __version__, migrate, readiness, tenant_store
from sportello.api import core as api
from sportello.connectors.http1 import LeanHttpClient
from sportello.web import assets as web_assets

from .appkeys import (
    CLOCK,
    CONFIG,
    ENGINE,
    HTTP,
    METRICS,
    PERIODIC,
    PLUGINS,
    SERVICES,
    SESSION,
    WORKER,
)
from .clock import Clock, SystemClock
from .config import HubConfig
from .db import (
    ReplicaLock,
    check_reachable,
    create_engine,
    is_unavailable,
    reading,
    sqlite_path,
)
from .metrics import HubMetrics
from .outbox import store
from .periodic import PeriodicTask
from .plugins import Plugins
from .reload import RELOADER, Reloader
from .schema import STATUSES

log = logging.getLogger("sportello.app")


__all__ = [
    "CLOCK",
    "CONFIG",
    "ENGINE",
    "METRICS",
    "PERIODIC",
    "PLUGINS",
    "RELOADER",
    "SERVICES",
    "SESSION",
    "WORKER",
    "SchemaOutdated",
    "create_app",
    "open_database",
]


class SchemaOutdated(Exception):
    """The database schema is not at this version's migration head."""


async def sync_tenants(engine: AsyncEngine, config: HubConfig, now: datetime) -> None:
    """Upsert the configured tenants into the ``tenants`` table."""
    await tenant_store.sync_rows(engine, config, now)


async def open_database(
    config: HubConfig, *, apply_migrations: bool, clock: Clock, pre_ping: bool = True
) -> AsyncEngine:
    """Engine that is reachable and at the current schema (or a one-line error)."""
    engine = create_engine(config.database, pre_ping=pre_ping)
    try:
        await check_reachable(engine)
        if apply_migrations:
            await migrate.upgrade(engine)
        current, head = await migrate.current_revision(engine), migrate.head_revision()
        if current != head:
            raise SchemaOutdated(
                f"database schema is at revision {current or 'none'}, this version needs "
                f"{head}: run `sportello db upgrade --config {config.source}`"
            )
        await sync_tenants(engine, config, clock.now())
    except BaseException:
        await engine.dispose()
        raise
    return engine


def create_app(
    config: HubConfig,
    *,
    plugins: Plugins | None = None,
    clock: Clock | None = None,
    apply_migrations: bool = False,
    run_workers: bool | None = None,
    sighup: bool = False,
) -> web.Application:
    """Build the hub's web app. Resources open on startup and close on cleanup, in order.
    ``sighup``: a SIGHUP reloads the tenants (``sportello serve``; see docs/tenants.md)."""
    app = web.Application(
        middlewares=[_observe, _database_unavailable, api.authenticate],
        client_max_size=config.server.max_body_bytes,  # sportello.api.bodies.read_body's cap
    )
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[PLUGINS] = plugins or Plugins(config.plugins.disabled)
    app[METRICS] = HubMetrics()
    app[READINESS] = ReadinessChecks()
    workers = config.outbox.workers if run_workers is None else run_workers

    generation = [0]  # of the stored tenants the app starts with

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        lock = None
        path = sqlite_path(config.database.url)
        if workers and path is not None:
            lock = ReplicaLock(path)
            lock.acquire()
        try:
            app[ENGINE] = await open_database(
                config, apply_migrations=apply_migrations, clock=app[CLOCK]
            )
            async with reading(app[ENGINE]) as conn:  # the tenants stored in the database
                # the generation first: a change made meanwhile is reloaded, never missed
                generation[0] = await tenant_store.generation(conn)
                app[CONFIG] = await tenant_store.with_stored(conn, config)
            yield
            await app[ENGINE].dispose()
        finally:
            if lock is not None:
                lock.release()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=config.outbox.http_timeout)
        connector = aiohttp.TCPConnector(limit=config.outbox.http_connections)
        async with aiohttp.ClientSession(
            timeout=timeout,
            connector=connector,
            headers={"User-Agent": f"sportello/{__version__}"},
        ) as session:
            http = LeanHttpClient(
                limit=config.outbox.http_connections, user_agent=f"sportello/{__version__}"
            )
            app[SESSION] = session
            app[HTTP] = http
            yield
            await http.close()

    async def tenants_ctx(app: web.Application) -> AsyncIterator[None]:
        """What depends on the tenants (``TenantLayer``): started now, rebuilt by each
        reload, stopped at shutdown; and the watch of the configuration generation."""
        app[RELOADER] = reloader = Reloader(app, workers=workers, generation=generation[0])
        await reloader.start()
        stop = asyncio.Event()
        watch = asyncio.create_task(reloader.watch(stop), name="tenants-watch")
        if sighup:
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGHUP, reloader.reload_soon)
        try:
            yield
        finally:
            if sighup:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            stop.set()
            await watch
            await reloader.stop()

    app.cleanup_ctx.extend([database_ctx, session_ctx, tenants_ctx])
    app[PLUGINS].web_app(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(api.routes())
    app.router.add_routes(web_assets.routes())
    app.router.add_routes(app[PLUGINS].api_routes())
    app.router.add_routes(app[PLUGINS].web_routes())
    return app


def periodic_tasks(app: web.Application, *, leased: bool = True) -> list[PeriodicTask]:
    """The plugins' periodic tasks (``hub_periodic_tasks``). ``leased``: also those that run
    once across replicas (under a database lease, see ``sportello.periodic``), which run
    where the outbox workers run."""
    tasks = app[PLUGINS].periodic_tasks(app[CONFIG], app)
    return [t for t in tasks if leased or not t.exclusive]


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok", "version": __version__})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers, its schema is current, and every configured platform
    of every tenant can work (``problems`` lists what stops one, see ``sportello.readiness``)."""
    checks: dict[str, str] = {}
    engine = request.app[ENGINE]
    try:
        async with asyncio.timeout(5):
            current = await migrate.current_revision(engine)
        head = migrate.head_revision()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current == head else f"at {current}, need {head}"
    except Exception as exc:
        checks["database"] = f"unreachable: {type(exc).__name__}"
        checks["migrations"] = "unknown"
    problems = await request.app[READINESS].problems(request.app)
    checks["platforms"] = "ok" if not problems else f"{len(problems)} problem(s)"
    ok = all(v == "ok" for v in checks.values())
    return web.json_response(
        {
            "status": "ready" if ok else "not ready",
            "checks": checks,
            "problems": [p.view() for p in problems],
        },
        status=200 if ok else 503,
    )


def _config_problems(app: web.Application) -> list[readiness.Problem]:
    return readiness.config_problems(app[CONFIG], plugins=app[PLUGINS], app=app)


class ReadinessChecks:
    """The platforms' checks of ``/readyz``, shared by concurrent probes and reused a while
    when they are costly.

    They read every tenant's keys and secrets (about a millisecond per tenant): with
    thousands of tenants a probe every few seconds would keep a core busy and slow every
    request. With at least :attr:`MANY` tenants, a result that took at least
    :attr:`COSTLY` seconds is reused for :attr:`REUSE` times what it took (8,000 tenants:
    about a minute; a hub of fewer tenants checks on every probe), never across a reload
    (another configuration), and probes arriving while the checks run wait for that run
    instead of starting another."""

    MANY = 100
    COSTLY = 0.1
    REUSE = 10.0

    def __init__(self) -> None:
        self._last: tuple[HubConfig, float, list[readiness.Problem]] | None = None
        self._running: asyncio.Future[list[readiness.Problem]] | None = None

    async def problems(self, app: web.Application) -> list[readiness.Problem]:
        config, now = app[CONFIG], time.monotonic()
        last = self._last
        if last is not None and last[0] is config and now < last[1]:
            return last[2]
        running = self._running
        if running is None:
            running = self._running = asyncio.ensure_future(self._check(app, config))
            running.add_done_callback(self._finished)
        return await asyncio.shield(running)

    def _finished(self, done: asyncio.Future[list[readiness.Problem]]) -> None:
        if self._running is done:
            self._running = None

    async def _check(self, app: web.Application, config: HubConfig) -> list[readiness.Problem]:
        started = time.monotonic()
        found = await asyncio.to_thread(_config_problems, app)
        took = time.monotonic() - started
        if took >= self.COSTLY and len(config.tenants) >= self.MANY:
            self._last = (config, time.monotonic() + self.REUSE * took, found)
        else:
            self._last = None
        return found


READINESS = web.AppKey("readiness", ReadinessChecks)


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    try:
        async with reading(request.app[ENGINE]) as conn:
            counts = await store.counts_by_status(conn)
        for status in STATUSES:
            m.outbox_depth.labels(status=status).set(counts.get(status, 0))
    except Exception:
        log.warning("metrics: outbox depth unavailable (database error)")
    return web.Response(body=m.render(), content_type="text/plain", charset="utf-8")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _database_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The database down or restarting is a 503 naming it (try again), never a 500."""
    try:
        return await handler(request)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        log.warning(
            "database unavailable: %s %s: %s", request.method, request.path, type(exc).__name__
        )
        response = api.problem(
            503,
            "Service Unavailable",
            "the hub's database is unavailable (restarting or unreachable): try again shortly",
        )
        response.headers["Retry-After"] = "5"
        return response


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency metric, request id and one JSON access-log line per request."""
    start = time.perf_counter()
    request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-ID"] = request_id
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - start
        info = request.match_info.route.resource
        route = info.canonical if info is not None else "unmatched"
        request.app[METRICS].observe_http(request.method, route, status, elapsed)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "http",
                extra={
                    "method": request.method,
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )
