"""Registers the bundled sandbox apps through the ``hub_sandbox_apps`` hook."""

from __future__ import annotations

from functools import partial

from sportello.hookspecs import SandboxApp, hookimpl

from .common import platform_app

# name, port offset from sandbox.base_port, what it plays
PLATFORMS = [
    ("idp", 1, "SPID and CIE test identity provider"),
    ("pagopa", 2, "pagoPA node, GPD and Checkout"),
    ("io", 3, "App IO services API"),
    ("pdnd", 4, "PDND Interoperabilità token server"),
    ("anpr", 5, "ANPR e-services behind the PDND gateway"),
]


@hookimpl
def hub_sandbox_apps() -> list[SandboxApp]:
    return [
        SandboxApp(name, offset, partial(platform_app, name, description), description)
        for name, offset, description in PLATFORMS
    ]
