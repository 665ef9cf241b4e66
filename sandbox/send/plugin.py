"""The send sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 7``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp

from .app import DEMO_API_KEY


def _build(*, peers: dict[str, str]) -> web.Application:
    """The SEND twin, checking vouchers against the PDND sandbox wherever it runs and
    writing ASYNC notifications' costs into the pagoPA sandbox's GPD (over HTTP)."""
    from .app import GPD_PATH, create_app

    gpd_url = peers["pagopa"].rstrip("/") + GPD_PATH if "pagopa" in peers else None
    if "pdnd" in peers:
        return create_app(pdnd_url=peers["pdnd"], gpd_url=gpd_url)
    return create_app(gpd_url=gpd_url)


SANDBOX = SandboxApp(
    "send",
    7,
    _build,
    "SEND (notifiche digitali): B2B API for senders, presigned uploads, streams",
    wants_peers=True,
    # the demo tenant's sender key (a sandbox value, not a secret)
    demo_env={"SPORTELLO_DEMO_SEND_KEY": DEMO_API_KEY},
)
