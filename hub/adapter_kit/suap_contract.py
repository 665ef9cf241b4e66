"""The SUAP adapter contract as executable checks, over canonical fictitious practices.

An adapter author provides ``factory(practices, workdir) -> adapter``: it stores the practices
in the adapter's own kind of storage under ``workdir`` and returns an adapter that reads them.
The practices come in the shape of the JSON reference adapter's export: a list of objects
with ``id``, ``applicant_fiscal_code``, ``applicant_name``, ``title``, ``kind``,
``submitted_at`` (aware datetimes), ``events`` (``status``, ``at``, ``note``, in time order)
and ``documents`` (``id``, ``name``, ``media_type``, ``size``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar

from ..adapters.suap.base import Practice, PracticeDocument, PracticeEvent
from ..plugins import PluginConflict, Plugins
from .contract import ContractRunner, _fail, plugins_with

SuapFactory = Callable[[list[dict[str, Any]], Path], Awaitable[Any]]
"""``async def factory(practices, workdir) -> adapter``."""

UNKNOWN_PRACTICE = "SUAP-UNKNOWN-0000"
_CET = timezone(timedelta(hours=1))


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=_CET)


def canonical_practices() -> list[dict[str, Any]]:
    """Three practices of two applicants (a person and a company), with events, notes and
    documents; non-ASCII letters and an apostrophe in texts. A fresh copy on each call."""
    practices = [
        {
            "id": "SUAP-2026-0001",
            "applicant_fiscal_code": "RSSMRA80A01H501U",
            "applicant_name": "Mario Rossi",
            "title": 'Apertura bar "Caffè dell\'Arco"',
            "kind": "SCIA",
            "submitted_at": _at(1, 9),
            "events": [
                {"status": "ricevuta", "at": _at(1, 9), "note": None},
                {
                    "status": "integrazione richiesta",
                    "at": _at(5, 11),
                    "note": "Manca la planimetria",
                },
                {"status": "conclusa", "at": _at(12, 16), "note": None},
            ],
            "documents": [
                {"id": "D1", "name": "domanda.pdf", "media_type": "application/pdf", "size": 48213},
                {"id": "D2", "name": "planimetria.pdf", "media_type": "application/pdf", "size": 1},
            ],
        },
        {
            "id": "SUAP-2026-0002",
            "applicant_fiscal_code": "RSSMRA80A01H501U",
            "applicant_name": "Mario Rossi",
            "title": "Insegna luminosa",
            "kind": "autorizzazione",
            "submitted_at": _at(8, 10),
            "events": [{"status": "ricevuta", "at": _at(8, 10), "note": None}],
            "documents": [],
        },
        {
            "id": "SUAP-2026-0003",
            "applicant_fiscal_code": "01234567890",
            "applicant_name": "Nicolò D'Angelo s.r.l.",
            "title": "Ampliamento laboratorio",
            "kind": "comunicazione",
            "submitted_at": _at(3, 8),
            "events": [
                {"status": "ricevuta", "at": _at(3, 8), "note": None},
                {"status": "in istruttoria", "at": _at(6, 12), "note": "Assegnata all'ufficio"},
            ],
            "documents": [
                {
                    "id": "D1",
                    "name": "relazione.odt",
                    "media_type": "application/vnd.oasis.opendocument.text",
                    "size": 0,
                }
            ],
        },
    ]
    return copy.deepcopy(practices)


def _practice(entry: dict[str, Any]) -> Practice:
    last = entry["events"][-1]
    head = {k: entry[k] for k in ("id", "applicant_fiscal_code", "applicant_name", "title", "kind")}
    return Practice(
        **head, submitted_at=entry["submitted_at"], status=last["status"], updated_at=last["at"]
    )


def _events(entry: dict[str, Any]) -> list[PracticeEvent]:
    return [PracticeEvent(practice_id=entry["id"], **e) for e in entry["events"]]


def _same(what: str, got: Any, expected: Any) -> None:
    if got != expected:
        _fail(f"{what} returned {got!r}, expected {expected!r}")


class SuapContract(ContractRunner):
    """What every SUAP adapter must do, as one async method per check."""

    KIND = "SUAP"
    HOOK = "hub_suap_adapters"
    CHECKS: ClassVar[tuple[str, ...]] = (
        "practices_of_an_applicant_newest_first",
        "practice_by_id",
        "timeline_oldest_first",
        "documents_of_a_practice",
        "changes_since_is_strictly_after",
        "no_problems_on_clean_data",
        "close_is_idempotent",
        "registered_through_the_hook",
    )

    def __init__(
        self,
        factory: SuapFactory,
        *,
        practices: Sequence[dict[str, Any]] | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.factory = factory
        self.practices = list(canonical_practices() if practices is None else practices)
        self.plugins = plugins

    def factory_input(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self.practices)

    # --- the checks ---------------------------------------------------------------------------
    async def practices_of_an_applicant_newest_first(self, adapter: Any, workdir: Path) -> None:
        """``practices()`` gives the applicant's practices, newest first, with the status of
        their last event; the fiscal code in any case; [] for an unknown applicant."""
        applicants = {p["applicant_fiscal_code"] for p in self.practices}
        for cf in sorted(applicants):
            mine = [p for p in self.practices if p["applicant_fiscal_code"] == cf]
            mine.sort(key=lambda p: (p["submitted_at"], p["id"]), reverse=True)
            want = [_practice(p) for p in mine]
            for variant in (cf, cf.lower()):
                _same(f"practices({variant!r})", await adapter.practices(variant), want)
        _same("practices('ZZZZZZ99Z99Z999Z')", await adapter.practices("ZZZZZZ99Z99Z999Z"), [])

    async def practice_by_id(self, adapter: Any, workdir: Path) -> None:
        """``practice()`` gives each practice by id, None for an unknown id."""
        for entry in self.practices:
            _same(
                f"practice({entry['id']!r})", await adapter.practice(entry["id"]), _practice(entry)
            )
        _same(f"practice({UNKNOWN_PRACTICE!r})", await adapter.practice(UNKNOWN_PRACTICE), None)

    async def timeline_oldest_first(self, adapter: Any, workdir: Path) -> None:
        """``timeline()`` gives the events oldest first; [] for an unknown id."""
        for entry in self.practices:
            _same(f"timeline({entry['id']!r})", await adapter.timeline(entry["id"]), _events(entry))
        _same(f"timeline({UNKNOWN_PRACTICE!r})", await adapter.timeline(UNKNOWN_PRACTICE), [])

    async def documents_of_a_practice(self, adapter: Any, workdir: Path) -> None:
        """``documents()`` gives the practice's documents; [] for none or an unknown id."""
        for entry in self.practices:
            want = [PracticeDocument(**d) for d in entry["documents"]]
            got = await adapter.documents(entry["id"])
            _same(f"documents({entry['id']!r})", sorted(got, key=lambda d: d.id), want)
        _same(f"documents({UNKNOWN_PRACTICE!r})", await adapter.documents(UNKNOWN_PRACTICE), [])

    async def changes_since_is_strictly_after(self, adapter: Any, workdir: Path) -> None:
        """``changes_since(t)`` gives every event after ``t`` (not at ``t``), oldest first."""
        events = sorted((e for p in self.practices for e in _events(p)), key=lambda e: e.at)
        for since in (events[0].at - timedelta(days=1), events[2].at, events[-1].at):
            want = [e for e in events if e.at > since]
            got = await adapter.changes_since(since)
            _same(f"changes_since({since.isoformat()})", got, want)

    async def no_problems_on_clean_data(self, adapter: Any, workdir: Path) -> None:
        """``problems()`` (a plain method) is empty after reading the clean practices."""
        for entry in self.practices:
            await adapter.practice(entry["id"])
        got = adapter.problems()
        if inspect.isawaitable(got):
            _fail("problems() must be a plain method, not async")
        if got != []:
            _fail(f"problems() is {[str(p) for p in got]!r} for the clean practices, expected []")

    async def close_is_idempotent(self, adapter: Any, workdir: Path) -> None:
        """``close()`` may be called twice, after use and on an adapter never used."""
        await adapter.practice(self.practices[0]["id"])
        await adapter.close()
        await adapter.close()
        unused = await self.build(workdir / "unused")
        await unused.close()
        await unused.close()

    async def registered_through_the_hook(self, adapter: Any, workdir: Path) -> None:
        """The plugin returns the class from ``hub_suap_adapters()`` under its ``name``."""
        cls = type(adapter)
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            _fail(f"{cls.__name__}.name must be a non-empty class attribute (the adapter's name)")
        if self.plugins is None:
            _fail("no plugins given to check the hub_suap_adapters hook with")
        try:
            adapters = self.plugins.suap_adapters()
        except PluginConflict as exc:
            _fail(f"{exc}: pick another name")
        if adapters.get(name) is not cls:
            _fail(f"hub_suap_adapters() gives {adapters.get(name)!r} for {name!r}")


async def run_suap_contract(
    factory: SuapFactory,
    workdir: Path,
    *,
    practices: Sequence[dict[str, Any]] | None = None,
    plugin: object | None = None,
    plugin_name: str | None = None,
) -> dict[str, str]:
    """Run every SUAP contract check without pytest."""
    plugins = plugins_with(plugin, plugin_name) if plugin is not None else None
    return await SuapContract(factory, practices=practices, plugins=plugins).run_all(workdir)
