"""The pagopa sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin`` (port ``base_port + 2``)."""

from __future__ import annotations

from aiohttp import web

from sportello.hookspecs import SandboxApp

from .checkout import DEFAULT_CHECKOUT_API_KEY
from .fdr_routes import DEFAULT_FDR_API_KEY


def _build() -> web.Application:
    """The pagoPA sandbox; its FdR flows are numbered from the second of the day it starts
    at, so that a restarted sandbox does not publish a new flow under an id that a hub
    (which keeps its database) has already reconciled."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from .app import create_app

    now = datetime.now(ZoneInfo("Europe/Rome"))
    first = now.hour * 3600 + now.minute * 60 + now.second + 1
    return create_app(processing_delay=1.0, fdr_first_number=first)


SANDBOX = SandboxApp(
    "pagopa",
    2,
    _build,
    "pagoPA: GPD, Node (PSP simulator), Checkout, FdR",
    # the demo tenant's Checkout and FdR subscription keys (sandbox values, not secrets)
    demo_env={
        "SPORTELLO_DEMO_CHECKOUT_KEY": DEFAULT_CHECKOUT_API_KEY,
        "SPORTELLO_DEMO_FDR_KEY": DEFAULT_FDR_API_KEY,
    },
)
