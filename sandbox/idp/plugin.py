"""The idp sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 1``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp


def _build() -> web.Application:
    from .app import create_app

    return create_app()


SANDBOX = SandboxApp(
    "idp", 1, _build, "SPID and CIE test identity provider: login page, anomalies 19-25, SLO"
)
