"""The io sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 3``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp

from .app import DEMO_PRIMARY_KEY


def _build() -> web.Application:
    from .app import create_app

    return create_app()


SANDBOX = SandboxApp(
    "io",
    3,
    _build,
    "App IO API for public bodies",
    # the demo tenant's App IO service key (a sandbox value, not a secret)
    demo_env={"SPORTELLO_DEMO_IO_KEY": DEMO_PRIMARY_KEY},
)
