"""Registers the built-in connectors and the webhook outbox kind through the plugin hooks
(each platform registers its own job handlers, routes and commands: ``sportello.platforms``)."""

from __future__ import annotations

from typing import Any

from sportello.events import webhook_handler
from sportello.hookspecs import HandlerFactory, hookimpl

from .anpr.client import AnprClient
from .inad.client import InadClient
from .io.client import IoClient
from .pagopa.gpd import GpdClient
from .pdnd.client import PdndClient
from .send.client import SendClient
from .webhook import WebhookConnector


@hookimpl
def hub_connectors() -> list[type[Any]]:
    return [WebhookConnector, IoClient, PdndClient, AnprClient, GpdClient, SendClient, InadClient]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    return {"webhook": webhook_handler}
