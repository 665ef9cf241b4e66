"""Run several aiohttp apps in one process (the demo: hub + every sandbox) until a signal."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")

#: ``asyncio`` turns uvloop off for the long-running commands (serve, worker, demo, sandbox).
EVENT_LOOP_ENV = "SPORTELLO_EVENT_LOOP"


def run_service_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run a long-running command's coroutine on uvloop, unless ``SPORTELLO_EVENT_LOOP`` is
    ``asyncio`` (or uvloop is not installed: it is not on Windows).

    uvloop's event loop and transports cost less CPU than asyncio's: with bench/io, 15-20 %
    less hub CPU per App IO message. The one-shot commands keep ``asyncio.run``.
    """
    if os.environ.get(EVENT_LOOP_ENV, "uvloop").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


@dataclass(frozen=True)
class Served:
    name: str
    app: web.Application
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve(
    apps: Sequence[Served], stop: asyncio.Event, *, ready: asyncio.Event | None = None
) -> None:
    """Start every app (in order), wait for ``stop``, then clean up in reverse order."""
    runners: list[web.AppRunner] = []
    try:
        for served in apps:
            # long query strings reach the app (which answers problem+json), not the parser
            runner = web.AppRunner(
                served.app, access_log=None, shutdown_timeout=15, max_line_size=65536
            )
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, served.host, served.port).start()
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
