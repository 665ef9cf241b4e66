"""Registers the built-in connectors and their outbox kinds through the plugin hooks."""

from __future__ import annotations

from typing import Any

from sportello.hookspecs import HandlerFactory, hookimpl

from .webhook import WebhookConnector, webhook_handler


@hookimpl
def hub_connectors() -> list[type[Any]]:
    return [WebhookConnector]


@hookimpl
def hub_outbox_handlers() -> dict[str, HandlerFactory]:
    return {"webhook": webhook_handler}
