"""The oidc sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 6``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp


def _build(*, peers: dict[str, str]) -> web.Application:
    """The OIDC federation twin: its entity IDs are URLs, so it needs its own base URL."""
    from .app import create_app

    return create_app(base_url=peers["oidc"]) if "oidc" in peers else create_app()


SANDBOX = SandboxApp(
    "oidc",
    6,
    _build,
    "SPID/CIE OpenID Connect Federation: trust anchor, CIE and SPID OPs",
    wants_peers=True,
)
