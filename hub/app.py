"""The aiohttp app factory: typed app keys, ``cleanup_ctx`` for every resource, and the
service routes ``/healthz``, ``/readyz`` and ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime

import aiohttp
from aiohttp import web
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from sportello import __version__, migrate, readiness
from sportello.api import core as api
from sportello.connectors.http1 import LeanHttpClient

from .appkeys import (
    CLOCK,
    CONFIG,
    ENGINE,
    METRICS,
    PERIODIC,
    PLUGINS,
    SERVICES,
    SESSION,
    WORKER,
)
from .clock import Clock, SystemClock
from .config import HubConfig
from .db import ReplicaLock, check_reachable, create_engine, reading, sqlite_path
from .metrics import HubMetrics
from .outbox import store
from .outbox.worker import OutboxWorker, handlers_from
from .periodic import PeriodicRunner, PeriodicTask
from .plugins import Plugins
from .schema import STATUSES, tenants
from .services import HubServices

log = logging.getLogger("sportello.app")


__all__ = [
    "CLOCK",
    "CONFIG",
    "ENGINE",
    "METRICS",
    "PERIODIC",
    "PLUGINS",
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
    if not config.tenants:
        return
    rows = [
        {
            "id": t.id,
            "name": t.name,
            "ipa_code": t.ipa_code,
            "fiscal_code": t.fiscal_code,
            "cadastral_code": t.cadastral_code,
            "created_at": now,
            "updated_at": now,
        }
        for t in config.tenants
    ]
    async with engine.begin() as conn:
        ins = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(tenants)
        stmt = ins.on_conflict_do_update(
            index_elements=["id"],
            set_={
                k: ins.excluded[k]
                for k in ("name", "ipa_code", "fiscal_code", "cadastral_code", "updated_at")
            },
        )
        await conn.execute(stmt, rows)


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
) -> web.Application:
    """Build the hub's web app. Resources open on startup and close on cleanup, in order."""
    app = web.Application(
        middlewares=[_observe, api.authenticate],
        client_max_size=config.server.max_body_bytes,  # sportello.api.bodies.read_body's cap
    )
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[PLUGINS] = plugins or Plugins(config.plugins.disabled)
    app[METRICS] = HubMetrics()
    workers = config.outbox.workers if run_workers is None else run_workers

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
            app[SERVICES] = HubServices(
                config=config,
                engine=app[ENGINE],
                session=session,
                clock=app[CLOCK],
                metrics=app[METRICS],
                http=http,
                plugins=app[PLUGINS],
            )
            yield
            await app[SERVICES].adapters.aclose()  # the tenants' adapters, built on demand
            await http.close()

    async def platforms_ctx(app: web.Application) -> AsyncIterator[None]:
        """Each plugin's ``hub_platform_setup`` context: entered in plugin order, exited
        in reverse at shutdown (after the workers and periodic tasks have stopped)."""
        async with contextlib.AsyncExitStack() as stack:
            for setup in app[PLUGINS].platform_setups(app[SERVICES], app):
                await stack.enter_async_context(setup)
            yield

    async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
        if not workers:
            yield
            return
        handlers = handlers_from(app[PLUGINS].outbox_handlers(), app[SERVICES])
        worker = OutboxWorker(
            app[ENGINE], handlers, config.outbox, clock=app[CLOCK], metrics=app[METRICS]
        )
        app[WORKER] = worker
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name="outbox-worker")
        yield
        stop.set()  # graceful: in-flight jobs finish or are released
        await task

    async def periodic_ctx(app: web.Application) -> AsyncIterator[None]:
        tasks = periodic_tasks(app, leased=workers)
        if not tasks:
            yield
            return
        runner = PeriodicRunner(app[ENGINE], tasks, lease_seconds=config.periodic.lease_seconds)
        app[PERIODIC] = runner
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop), name="periodic")
        yield
        stop.set()  # a round in progress finishes, then the leases are released
        await task

    # periodic last: a round may use what a platform set up (the IdP refresh, the login
    # service); the workers and the periodic tasks stop before the platforms close
    app.cleanup_ctx.extend([database_ctx, session_ctx, platforms_ctx, worker_ctx, periodic_ctx])
    app[PLUGINS].web_app(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_routes(api.routes())
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
    problems = await asyncio.to_thread(_config_problems, request.app)
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
