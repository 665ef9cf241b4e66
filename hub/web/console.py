"""The operator console's panels, as kernel types: each platform shows its own data of one
tenant (pagoPA positions and receipts, App IO campaigns, SEND notifications, the day's
bookings, logins over time) through ``hub_console_panels``; the console platform renders
them and never imports another platform.

A panel answers a :class:`ConsoleView`: a table (column labels and rows of text) and,
for a chart, a series of ``(label, value)`` bars the console draws as a server-rendered SVG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

#: the most rows a panel shows on one page
PAGE_SIZE = 50


@dataclass(frozen=True)
class ConsoleFilters:
    """What the operator asked for: a day (the day's bookings), a date range ``[since,
    until]`` (charts, lists: both days included), a status, and a page (0-based) of
    :data:`PAGE_SIZE` rows. The console validates them before any panel sees them."""

    day: date
    since: date
    until: date
    status: str | None = None
    page: int = 0

    def range(self) -> tuple[datetime, datetime]:
        """``[since 00:00 UTC, until+1 00:00 UTC)`` as aware datetimes."""
        from datetime import UTC

        start = datetime.combine(self.since, time(0), tzinfo=UTC)
        end = datetime.combine(self.until + timedelta(days=1), time(0), tzinfo=UTC)
        return start, end

    def days(self) -> list[date]:
        """Every day of the range, in order (a chart's bars)."""
        n = (self.until - self.since).days + 1
        return [self.since + timedelta(days=i) for i in range(max(n, 0))]


@dataclass(frozen=True)
class ConsoleView:
    """What a panel shows: ``columns`` and ``rows`` (text, already formatted), ``more``
    when a next page exists, ``series`` the bars of a chart (``(label, value)``, e.g. one
    per day) with ``unit`` naming the value, and ``unavailable`` with the reason when the
    platform cannot be read now (never an empty table in its place)."""

    columns: tuple[str, ...] = ()
    rows: Sequence[Sequence[object]] = field(default_factory=list)
    more: bool = False
    series: list[tuple[str, int]] = field(default_factory=list)
    unit: str = ""
    empty: str = "Nessun elemento."
    unavailable: str | None = None


class ConsolePanel(Protocol):
    """One panel of a tenant's console page. ``key`` is unique across plugins (the URL
    ``/console/t/{tenant}/p/{key}``); ``statuses`` the values the status filter accepts
    (empty: the panel has none); ``chart`` marks a panel drawn as a bar chart."""

    key: str
    title: str
    order: int
    chart: bool
    statuses: tuple[str, ...]

    async def rows(
        self, app: web.Application, tenant_id: str, filters: ConsoleFilters
    ) -> ConsoleView:
        """The tenant's rows (only ``tenant_id``'s: the console relies on it for isolation)."""
        ...


def day_label(day: date) -> str:
    return day.strftime("%d/%m")


def per_day(filters: ConsoleFilters, counts: dict[date, int]) -> list[tuple[str, int]]:
    """A chart's series: one bar per day of the range, zero where nothing happened."""
    return [(day_label(d), int(counts.get(d, 0))) for d in filters.days()]


def euro(cents: int | None) -> str:
    if cents is None:
        return ""
    return f"{cents / 100:,.2f} €".replace(",", "X").replace(".", ",").replace("X", ".")


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def day_of(column: Any) -> Any:
    """A UTC timestamp column's day, for ``GROUP BY`` on SQLite and PostgreSQL alike (the
    hub stores naive UTC); read the result with :func:`as_date`."""
    import sqlalchemy as sa

    return sa.func.date(column)


def as_date(value: object) -> date:
    """A :func:`day_of` value (a ``date`` on PostgreSQL, ``YYYY-MM-DD`` text on SQLite)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
