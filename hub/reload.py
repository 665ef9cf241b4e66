"""Tenants applied without a restart: the layer of the hub that depends on the tenants, and
its reload.

The *tenant layer* is what a hub builds from its tenants: the services (with the tenants'
adapters), every plugin's ``hub_platform_setup`` context, the outbox worker (its handlers
hold the services) and the periodic tasks (``hub_periodic_tasks`` makes them per tenant).
A reload reads the configuration file, its ``tenants_dir`` and the database's tenants
again, validates them as at start-up (a bad file is refused, logged with its path and
field, and the running layer keeps serving), builds a whole new layer next to the running
one, swaps it in (``app[CONFIG]``, ``app[SERVICES]`` and the platforms' app keys), starts
its worker and periodic tasks, and only then stops the old worker and tasks (in-flight
jobs finish) and closes the old platforms' contexts and adapters, after a grace period for
the requests still using them. Every tenant's platform state is rebuilt, not only the
changed tenants': it keeps the platforms free of any reload logic.

Only the tenants change: the hub-level sections (``[server]``, ``[database]``, ``[outbox]``...)
of the running configuration stay until a restart (a change to them is logged).

Replicas learn of changes through the database: :meth:`Reloader.watch` reads the
configuration generation (``sportello.tenant_store``) every ``[periodic]
config_poll_seconds`` and reloads when it moved; ``sportello tenants reload`` and every
change of a stored tenant move it. ``sportello serve`` also reloads on SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import tenant_store
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
from .config import ConfigError, HubConfig, load_config
from .db import reading
from .outbox.worker import OutboxWorker, handlers_from
from .periodic import PeriodicRunner
from .services import HubServices

log = logging.getLogger("sportello.reload")

#: Seconds the old layer stays open after a swap, for the requests still using it.
CLOSE_GRACE = 5.0


@dataclass
class TenantLayer:
    """The running state built from one set of tenants."""

    config: HubConfig
    services: HubServices
    stack: contextlib.AsyncExitStack
    loops: list[tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: the tenant ids added, changed and removed, or why it refused."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _diff(old: HubConfig, new: HubConfig) -> ReloadResult:
    before = {t.id: t for t in old.tenants}
    after = {t.id: t for t in new.tenants}
    return ReloadResult(
        added=tuple(i for i in after if i not in before),
        changed=tuple(i for i in after if i in before and after[i] != before[i]),
        removed=tuple(i for i in before if i not in after),
    )


_HUB_LEVEL_EXCLUDE = {"tenants", "stored_tenants", "source"}


class Reloader:
    """Owns the tenant layer of one app: starts it, reloads it, stops it."""

    def __init__(self, app: web.Application, *, workers: bool, generation: int = 0) -> None:
        self.app = app
        self.workers = workers
        self.layer: TenantLayer | None = None
        #: the configuration generation the running layer was built at (read before its
        #: tenants: a change in between makes one more reload, never a missed one)
        self.generation = generation
        #: the last refused reload, for logs and ``readyz`` (None once one succeeds)
        self.last_error: str | None = None
        self.reloads = 0
        self._lock = asyncio.Lock()
        self._stopping = False
        self._background: set[asyncio.Task[Any]] = set()

    # --- the layer ----------------------------------------------------------------------------
    async def _build(self, config: HubConfig) -> TenantLayer:
        app = self.app
        services = HubServices(
            config=config,
            engine=app[ENGINE],
            session=app[SESSION],
            clock=app[CLOCK],
            metrics=app[METRICS],
            http=app[HTTP],
            plugins=app[PLUGINS],
        )
        stack = contextlib.AsyncExitStack()
        try:
            # the platforms' setups put their objects on the running app, as at start-up
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Changing state of started", DeprecationWarning)
                app[SERVICES] = services  # the setups read it from the app too
                for setup in app[PLUGINS].platform_setups(services, app):
                    await stack.enter_async_context(setup)
        except BaseException:
            await stack.aclose()
            await services.adapters.aclose()
            raise
        return TenantLayer(config, services, stack)

    def _start_loops(self, layer: TenantLayer) -> None:
        app, config = self.app, layer.config
        if self.workers:
            handlers = handlers_from(app[PLUGINS].outbox_handlers(), layer.services)
            worker = OutboxWorker(
                app[ENGINE], handlers, config.outbox, clock=app[CLOCK], metrics=app[METRICS]
            )
            app[WORKER] = worker
            stop = asyncio.Event()
            layer.loops.append((stop, asyncio.create_task(worker.run(stop), name="outbox-worker")))
        tasks = [
            t for t in app[PLUGINS].periodic_tasks(config, app) if self.workers or not t.exclusive
        ]
        if tasks:
            runner = PeriodicRunner(app[ENGINE], tasks, lease_seconds=config.periodic.lease_seconds)
            app[PERIODIC] = runner
            stop = asyncio.Event()
            layer.loops.append((stop, asyncio.create_task(runner.run(stop), name="periodic")))

    @staticmethod
    async def _stop_loops(layer: TenantLayer) -> None:
        # periodic first (a round may use the worker's platforms), then the worker
        for stop, task in reversed(layer.loops):
            stop.set()  # graceful: a round or a job in progress finishes, leases released
            await task
        layer.loops.clear()

    @staticmethod
    async def _close(layer: TenantLayer) -> None:
        await layer.stack.aclose()
        await layer.services.adapters.aclose()

    async def start(self) -> None:
        """Build and start the layer of ``app[CONFIG]`` (at start-up)."""
        self.layer = await self._build(self.app[CONFIG])
        self._start_loops(self.layer)

    async def stop(self) -> None:
        """Stop the layer (at shutdown), after any reload still closing an old one."""
        self._stopping = True
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        async with self._lock:
            if self.layer is not None:
                await self._stop_loops(self.layer)
                await self._close(self.layer)
                self.layer = None

    # --- reload -------------------------------------------------------------------------------
    async def read_config(self, running: HubConfig) -> HubConfig:
        """The tenants as they are now (file, folder, database) with the running hub-level
        sections; :class:`ConfigError` for a file that does not validate."""
        if running.source == "<memory>":  # built in code: its own tenants stay
            base = running.model_copy(
                update={
                    "tenants": [t for t in running.tenants if t.id not in running.stored_tenants],
                    "stored_tenants": frozenset(),
                }
            )
        else:
            base = await asyncio.to_thread(load_config, running.source, plugins=self.app[PLUGINS])
            if base.model_dump(exclude=_HUB_LEVEL_EXCLUDE) != running.model_dump(
                exclude=_HUB_LEVEL_EXCLUDE
            ):
                log.warning(
                    "tenants reload: %s changed outside the tenants: restart to apply it",
                    running.source,
                )
        async with reading(self.app[ENGINE]) as conn:
            fresh = await tenant_store.with_stored(conn, base)
        return running.model_copy(
            update={"tenants": fresh.tenants, "stored_tenants": fresh.stored_tenants}
        )

    async def reload(self) -> ReloadResult:
        """Apply the tenants as they are now; the running ones keep serving on a refusal."""
        async with self._lock:
            if self.layer is None or self._stopping:
                return ReloadResult(error="the hub is not running")
            old = self.layer
            async with reading(self.app[ENGINE]) as conn:
                generation = await tenant_store.generation(conn)
            try:
                config = await self.read_config(old.config)
            except ConfigError as exc:
                self.generation = generation  # the same file would be refused again
                self.last_error = str(exc)
                log.error("tenants reload refused, the running tenants stay: %s", exc)
                return ReloadResult(error=str(exc))
            self.generation = generation
            result = _diff(old.config, config)
            if not (result.added or result.changed or result.removed):
                self.last_error = None
                return result
            snapshot = {key: self.app[key] for key in self.app}
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Changing state of started", DeprecationWarning)
                self.app[CONFIG] = config
                try:
                    # the rows of the added and changed tenants (thousands of others stay)
                    touched = {*result.added, *result.changed}
                    rows = [t for t in config.tenants if t.id in touched]
                    await tenant_store.sync_rows(
                        self.app[ENGINE],
                        config.model_copy(update={"tenants": rows}),
                        self.app[CLOCK].now(),
                    )
                    layer = await self._build(config)
                except Exception as exc:
                    for key in [k for k in self.app if k not in snapshot]:
                        del self.app[key]
                    for key, value in snapshot.items():
                        self.app[key] = value
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("tenants reload failed, the running tenants stay")
                    return ReloadResult(error=self.last_error)
                self.layer = layer
                self._start_loops(layer)
            self.reloads += 1
            self.last_error = None
            log.info(
                "tenants reloaded",
                extra={
                    "added": list(result.added),
                    "changed": list(result.changed),
                    "removed": list(result.removed),
                },
            )
            self._spawn(self._retire(old))
            return result

    async def _retire(self, old: TenantLayer) -> None:
        await self._stop_loops(old)
        await asyncio.sleep(CLOSE_GRACE)  # requests that began on the old layer finish
        await self._close(old)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def reload_soon(self) -> None:
        """Reload in the background (SIGHUP, a change made through this replica's API)."""
        self._spawn(self.reload())

    async def watch(self, stop: asyncio.Event) -> None:
        """Reload whenever the configuration generation in the database moves."""
        every = self.app[CONFIG].periodic.config_poll_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            if stop.is_set():
                return
            try:
                async with reading(self.app[ENGINE]) as conn:
                    current = await tenant_store.generation(conn)
                if current != self.generation:
                    await self.reload()
            except Exception:
                log.exception("tenants watch: the configuration generation cannot be read")


RELOADER = web.AppKey("reloader", Reloader)
