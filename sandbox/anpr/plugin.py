"""The anpr sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 5``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp


def _build(*, peers: dict[str, str]) -> web.Application:
    """The ANPR gateway, checking vouchers against the PDND sandbox wherever it runs."""
    from .app import create_app

    return create_app(pdnd_url=peers["pdnd"]) if "pdnd" in peers else create_app()


SANDBOX = SandboxApp(
    "anpr", 5, _build, "ANPR gateway: GovWay front door + E002 e-services", wants_peers=True
)
