"""Registers the built-in connectors through the plugin hooks (the kernel registers its own
``webhook`` outbox kind, each platform its job handlers, routes and commands).

Connectors import nothing of the hub, not even ``sportello.hookspecs``: the hook marker is
pluggy's, for the project name ``sportello`` (which is what ``hookspecs.hookimpl`` is)."""

from __future__ import annotations

from typing import Any

import pluggy

from .anpr.client import AnprClient
from .inad.client import InadClient
from .io.client import IoClient
from .pagopa.gpd import GpdClient
from .pdnd.client import PdndClient
from .send.client import SendClient
from .webhook import WebhookConnector

hookimpl = pluggy.HookimplMarker("sportello")


@hookimpl
def hub_connectors() -> list[type[Any]]:
    return [WebhookConnector, IoClient, PdndClient, AnprClient, GpdClient, SendClient, InadClient]
