"""The e-mail sandbox as ``sportello sandbox`` and ``sportello demo`` serve it, found by
``sportello.sandbox.plugin``: the inspection app on ``base_port + 9``, the SMTP server on
``base_port + SMTP_PORT_OFFSET`` (8125 with the default base port)."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from sportello.hookspecs import SandboxApp

PORT_OFFSET = 9
SMTP_PORT_OFFSET = 25


def _build(peers: dict[str, str]) -> web.Application:
    from .app import DEMO_PASSWORD, DEMO_USER, create_app

    own = urlsplit(peers["email"])
    assert own.port is not None
    # the SMTP port: base_port + SMTP_PORT_OFFSET, unless the peers name it ("email-smtp",
    # as the demo test does when it moves every port)
    named = urlsplit(peers["email-smtp"]).port if "email-smtp" in peers else None
    return create_app(
        smtp_host=own.hostname or "127.0.0.1",
        smtp_port=named or own.port - PORT_OFFSET + SMTP_PORT_OFFSET,
        credentials=(DEMO_USER, DEMO_PASSWORD),
    )


SANDBOX = SandboxApp(
    "email",
    PORT_OFFSET,
    _build,
    "SMTP submission server (e-mail), inspected over HTTP",
    wants_peers=True,
    demo_env={"SPORTELLO_DEMO_SMTP_PASSWORD": "sandbox-smtp-password"},
)
