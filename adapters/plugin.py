"""Registers the reference adapters through the same hooks third-party adapters use."""

from __future__ import annotations

from typing import Any

from sportello.hookspecs import hookimpl

from .accounting.csv_adapter import CsvAccountingAdapter
from .accounting.rest_adapter import RestAccountingAdapter
from .accounting.sql_adapter import SqlAccountingAdapter
from .agenda.base import KIND as AGENDA_KIND
from .agenda.sqlite_adapter import SqliteAgenda
from .messaging.sql_source import SqlCampaignSource
from .notifications.csv_source import CsvNotificationSource
from .notifications.sql_source import SqlNotificationSource
from .registry.csv_adapter import CsvRegistryAdapter
from .registry.rest_adapter import RestRegistryAdapter
from .registry.sql_adapter import SqlRegistryAdapter
from .suap.json_adapter import JsonSuapAdapter
from .suap.rest_adapter import RestSuapAdapter


@hookimpl
def hub_registry_adapters() -> dict[str, type[Any]]:
    return {"csv": CsvRegistryAdapter, "sql": SqlRegistryAdapter, "rest": RestRegistryAdapter}


@hookimpl
def hub_campaign_sources() -> dict[str, type[Any]]:
    return {"sql": SqlCampaignSource}


@hookimpl
def hub_send_sources() -> dict[str, type[Any]]:
    return {"csv": CsvNotificationSource, "sql": SqlNotificationSource}


@hookimpl
def hub_suap_adapters() -> dict[str, type[Any]]:
    return {"json": JsonSuapAdapter, "rest": RestSuapAdapter}


@hookimpl
def hub_accounting_adapters() -> dict[str, type[Any]]:
    return {
        "csv": CsvAccountingAdapter,
        "rest": RestAccountingAdapter,
        "sql": SqlAccountingAdapter,
    }


@hookimpl
def hub_adapters() -> dict[str, dict[str, type[Any]]]:
    # kinds declared by a platform (hub_adapter_kinds): the agenda of the booking platform
    return {AGENDA_KIND: {"sqlite": SqliteAgenda}}
