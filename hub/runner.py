"""Run several aiohttp apps in one process (the demo: hub + every sandbox) until a signal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web


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
