"""Registers the bundled sandbox apps through the ``hub_sandbox_apps`` hook."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from sportello.hookspecs import SandboxApp, hookimpl

from .anpr.app import create_app as anpr_app
from .idp.app import create_app as idp_app
from .inad.app import create_app as inad_app
from .io.app import create_app as io_app
from .oidc.app import create_app as oidc_app
from .pagopa.app import create_app as pagopa_app
from .pdnd.app import create_app as pdnd_app
from .send.app import create_app as send_app


def _pagopa() -> web.Application:
    """The pagoPA sandbox; its FdR flows are numbered from the second of the day it starts
    at, so that a restarted sandbox does not publish a new flow under an id that a hub
    (which keeps its database) has already reconciled."""
    now = datetime.now(ZoneInfo("Europe/Rome"))
    first = now.hour * 3600 + now.minute * 60 + now.second + 1
    return pagopa_app(processing_delay=1.0, fdr_first_number=first)


def _anpr_with_peers(*, peers: dict[str, str]) -> web.Application:
    """The ANPR gateway, checking vouchers against the PDND sandbox wherever it runs."""
    return anpr_app(pdnd_url=peers["pdnd"]) if "pdnd" in peers else anpr_app()


def _oidc_with_peers(*, peers: dict[str, str]) -> web.Application:
    """The OIDC federation twin: its entity IDs are URLs, so it needs its own base URL."""
    return oidc_app(base_url=peers["oidc"]) if "oidc" in peers else oidc_app()


def _send_with_peers(*, peers: dict[str, str]) -> web.Application:
    """The SEND twin, checking vouchers against the PDND sandbox wherever it runs."""
    return send_app(pdnd_url=peers["pdnd"]) if "pdnd" in peers else send_app()


def _inad_with_peers(*, peers: dict[str, str]) -> web.Application:
    """The INAD twin, checking vouchers against the PDND sandbox wherever it runs."""
    return inad_app(pdnd_url=peers["pdnd"]) if "pdnd" in peers else inad_app()


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
            _pagopa,
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
        SandboxApp(
            "oidc",
            6,
            _oidc_with_peers,
            "SPID/CIE OpenID Connect Federation: trust anchor, CIE and SPID OPs",
            wants_peers=True,
        ),
        SandboxApp(
            "send",
            7,
            _send_with_peers,
            "SEND (notifiche digitali): B2B API for senders, presigned uploads, streams",
            wants_peers=True,
        ),
        SandboxApp(
            "inad",
            8,
            _inad_with_peers,
            "INAD: digital domiciles (extract, verify, bulk lists) behind PDND",
            wants_peers=True,
        ),
    ]
