"""Registers the built-in connectors through the plugin hooks (the kernel registers its own
``webhook`` outbox kind, each platform its job handlers, routes and commands).

A connector package is found here by walking ``sportello.connectors``: the public
``BaseConnector`` subclasses of its ``client`` module (``connectors/<name>/client.py``) are
listed, so a new connector needs no line here; ``EXTRA`` lists the clients kept elsewhere.

Connectors import nothing of the hub, not even ``sportello.hookspecs``: the hook marker is
pluggy's, for the project name ``sportello`` (which is what ``hookspecs.hookimpl`` is)."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from typing import Any

import pluggy

from .base import BaseConnector
from .pagopa.gpd import GpdClient
from .webhook import WebhookConnector

hookimpl = pluggy.HookimplMarker("sportello")

#: Connectors not in a ``<name>/client.py`` module.
EXTRA: tuple[type[Any], ...] = (WebhookConnector, GpdClient)


def declared() -> list[type[Any]]:
    """The public ``BaseConnector`` subclasses of every ``connectors/<name>/client.py``."""
    found: list[type[Any]] = []
    package = importlib.import_module(__package__ or "sportello.connectors")
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module_name = f"{package.__name__}.{info.name}.client"
        if not info.ispkg or importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseConnector)
                and value.__module__ == module_name
                and not name.startswith("_")
            ):
                found.append(value)
    return found


@hookimpl
def hub_connectors() -> list[type[Any]]:
    return [*EXTRA, *(c for c in declared() if c not in EXTRA)]
