"""The inad sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 8``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp


def _build(*, peers: dict[str, str]) -> web.Application:
    """The INAD twin, checking vouchers against the PDND sandbox wherever it runs."""
    from .app import create_app

    return create_app(pdnd_url=peers["pdnd"]) if "pdnd" in peers else create_app()


SANDBOX = SandboxApp(
    "inad",
    8,
    _build,
    "INAD: digital domiciles (extract, verify, bulk lists) behind PDND",
    wants_peers=True,
)
