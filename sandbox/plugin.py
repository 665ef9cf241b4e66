"""Registers the bundled sandbox apps through the ``hub_sandbox_apps`` hook."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from sportello.hookspecs import SandboxApp, hookimpl

from .anpr.app import create_app as anpr_app
from .idp.app import create_app as idp_app
from .io.app import create_app as io_app
from .pagopa.app import create_app as pagopa_app
from .pdnd.app import create_app as pdnd_app


def _anpr_with_peers(*, peers: dict[str, str]) -> web.Application:
    """The ANPR gateway, checking vouchers against the PDND sandbox wherever it runs."""
    return anpr_app(pdnd_url=peers["pdnd"]) if "pdnd" in peers else anpr_app()


@hookimpl
def hub_sandbox_apps() -> list[SandboxApp]:
    return [
        SandboxApp(
            "idp",
            1,
            idp_app,
            "SPID and CIE test identity provider: login page, anomalies 19-25, SLO",
        ),
        SandboxApp(
            "pagopa",
            2,
            partial(pagopa_app, processing_delay=1.0),
            "pagoPA: GPD, Node (PSP simulator), Checkout, FdR",
        ),
        SandboxApp("io", 3, io_app, "App IO API for public bodies"),
        SandboxApp("pdnd", 4, pdnd_app, "PDND Interoperabilità token server"),
        SandboxApp(
            "anpr",
            5,
            _anpr_with_peers,
            "ANPR gateway: GovWay front door + E002 e-services",
            wants_peers=True,
        ),
    ]
