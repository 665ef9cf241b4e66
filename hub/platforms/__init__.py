"""The hub's built-in platforms, each one folder (``hub/platforms/<platform>/``) whose
``__init__.py`` holds its hook implementations.

This package is itself a plugin (entry point ``platforms``): it brings each built-in
platform as a plugin of its own name (``hub_plugins``), registered exactly like an outside
plugin, so ``SPORTELLO_DISABLE_PLUGINS=suap`` turns one off. Adding a platform is adding its
folder and one line to :data:`BUILTINS`.
"""

from __future__ import annotations

import importlib

from sportello.hookspecs import hookimpl

#: The built-in platforms: plugin name -> module.
BUILTINS = {
    "booking": "sportello.platforms.booking",
    "console": "sportello.platforms.console",
    "frontoffice": "sportello.platforms.frontoffice",
    "io": "sportello.platforms.io",
    "login": "sportello.platforms.login",
    "pagopa": "sportello.platforms.pagopa",
    "requests": "sportello.platforms.requests",
    "residents": "sportello.platforms.residents",
    "send": "sportello.platforms.send",
    "suap": "sportello.platforms.suap",
}


@hookimpl
def hub_plugins() -> dict[str, object]:
    return {name: importlib.import_module(module) for name, module in BUILTINS.items()}
