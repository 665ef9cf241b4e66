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
    from sportello.platforms.io.delivery import (
        io_message_handler,
        io_messages_handler,
        io_status_handler,
    )
    from sportello.platforms.pagopa.fdr import reconciliation_forward_handler
    from sportello.platforms.pagopa.gpd_bulk import gpd_bulk_handler
    from sportello.platforms.pagopa.jobs import (
        gpd_create_handler,
        gpd_invalidate_handler,
        gpd_publish_handler,
        gpd_update_handler,
        receipt_forward_handler,
    )

    return {
        "webhook": webhook_handler,
        "io.message": io_message_handler,
        "io.messages": io_messages_handler,
        "io.status": io_status_handler,
        "pagopa.receipt.forward": receipt_forward_handler,
        "pagopa.gpd.create": gpd_create_handler,
        "pagopa.gpd.bulk": gpd_bulk_handler,
        "pagopa.gpd.update": gpd_update_handler,
        "pagopa.gpd.publish": gpd_publish_handler,
        "pagopa.gpd.invalidate": gpd_invalidate_handler,
        "pagopa.reconciliation.forward": reconciliation_forward_handler,
    }


@hookimpl
def hub_web_routes() -> list[Any]:
    from sportello.platforms.pagopa.station import station_routes

    return [*station_routes()]


@hookimpl
def hub_cli_commands() -> list[Any]:
    from sportello.platforms.pagopa.cli import pagopa_group

    return [pagopa_group]
