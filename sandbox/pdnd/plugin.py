"""The pdnd sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 4``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp


def _build() -> web.Application:
    from .app import create_app

    return create_app()


SANDBOX = SandboxApp("pdnd", 4, _build, "PDND Interoperabilità token server")
