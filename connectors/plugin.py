"""Registers the built-in connectors and their outbox kinds through the plugin hooks."""

from __future__ import annotations

from typing import Any

from sportello.hookspecs import HandlerFactory, hookimpl

from .anpr.client import AnprClient
from .io.client import IoClient
from .pagopa.gpd import GpdClient
from .pdnd.client import PdndClient
from .webhook import WebhookConnector, webhook_handler


@hookimpl
def hub_connectors() -> list[type[Any]]:
    return [WebhookConnector, IoClient, PdndClient, AnprClient, GpdClient]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    from sportello.io_delivery import io_message_handler, io_status_handler

    return {
        "webhook": webhook_handler,
        "io.message": io_message_handler,
        "io.status": io_status_handler,
    }
