"""Reference SUAP adapter: a JSON export of the comune's SUAP back office.

Options: ``path`` (relative to the configuration file), ``encoding`` (default ``utf-8``).
The export looks like::

    {"practices": [{"id": "...", "applicant_fiscal_code": "...", "applicant_name": "...",
                    "title": "...", "kind": "SCIA", "submitted_at": "2024-03-01T09:00:00+01:00",
                    "protocol_number": "2024/0001234", "deadline": "2024-04-30",
                    "events": [{"status": "...", "at": "...", "note": "..."}],
                    "documents": [{"id": "...", "name": "...", "media_type": "...",
                                   "size": 1234}]}]}

``protocol_number`` and ``deadline`` (a date) are optional. Datetimes carry their offset. A
practice's status and ``updated_at`` are those of its latest event (events are ordered by
time, the export's order breaking ties). Keys the adapter does
not know are ignored. A bad practice, event or document is reported with file, entry
(``practices[i]``, ``practices[i].events[j]``) and field, and skipped; the rest are served. A
practice left without a valid event has no status, so it is skipped too.
"""

from __future__ import annotations

import asyncio
import bisect
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from .base import Practice, PracticeDocument, PracticeEvent, SuapDataError

_HEAD = (
    "id",
    "applicant_fiscal_code",
    "applicant_name",
    "title",
    "kind",
    "submitted_at",
    "protocol_number",
    "deadline",
)
_EVENT = ("status", "at", "note")
_DOCUMENT = ("id", "name", "media_type", "size")
M = TypeVar("M", bound=BaseModel)
_PLACEHOLDER_STATUS = "-"  # replaced by the latest event's status before serving


@dataclass
class _Data:
    by_id: dict[str, Practice] = field(default_factory=dict)
    by_applicant: dict[str, list[Practice]] = field(default_factory=dict)
    events: dict[str, list[PracticeEvent]] = field(default_factory=dict)
    documents: dict[str, list[PracticeDocument]] = field(default_factory=dict)
    all_events: list[PracticeEvent] = field(default_factory=list)
    problems: list[SuapDataError] = field(default_factory=list)


class JsonSuapAdapter:
    name: ClassVar[str] = "json"

    def __init__(self, options: dict[str, Any], *, base_dir: Path) -> None:
        if "path" not in options:
            raise ValueError("the json SUAP adapter needs options.path")
        path = Path(options["path"])
        self.path = path if path.is_absolute() else base_dir / path
        self.encoding = str(options.get("encoding", "utf-8"))
        self._data: _Data | None = None
        self._seen: tuple[int, int] | None = None
        self._problems: list[SuapDataError] = []
        self._lock = asyncio.Lock()

    # -- loading -------------------------------------------------------------------------------

    def _errors(
        self, where: str, exc: ValidationError, skip: tuple[str, ...] = ()
    ) -> list[SuapDataError]:
        src = str(self.path)
        out: list[SuapDataError] = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]) or "?"
            if name not in skip:
                out.append(SuapDataError(src, where, name, err["msg"]))
        return out

    def _validate(
        self,
        model: type[M],
        where: str,
        values: dict[str, Any],
        problems: list[SuapDataError],
        skip: tuple[str, ...] = (),
    ) -> M | None:
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            problems.extend(self._errors(where, exc, skip))
            return None

    def _load(self) -> _Data:
        src = str(self.path)
        text = self.path.read_text(encoding=self.encoding)
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SuapDataError(
                src, f"line {exc.lineno}", "", f"not valid JSON: {exc.msg}"
            ) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("practices"), list):
            raise SuapDataError(src, "", "practices", "the export has no list of practices")

        data = _Data()
        problems = data.problems
        first_at: dict[str, int] = {}
        for i, entry in enumerate(doc["practices"]):
            where = f"practices[{i}]"
            if not isinstance(entry, dict):
                problems.append(SuapDataError(src, where, "", "not an object"))
                continue
            practice = self._practice(where, entry, problems)
            if practice is None:
                continue
            if practice.id in first_at:
                problems.append(
                    SuapDataError(
                        src,
                        where,
                        "id",
                        f"appears twice (first at practices[{first_at[practice.id]}])",
                    )
                )
                continue
            events = self._events(where, practice.id, entry, problems)
            if not events:
                continue
            documents = self._documents(where, entry, problems)
            last = events[-1]
            practice = practice.model_copy(update={"status": last.status, "updated_at": last.at})
            first_at[practice.id] = i
            data.by_id[practice.id] = practice
            data.by_applicant.setdefault(practice.applicant_fiscal_code, []).append(practice)
            data.events[practice.id] = events
            data.documents[practice.id] = documents
            data.all_events.extend(events)

        for mine in data.by_applicant.values():
            mine.sort(key=lambda p: (p.submitted_at, p.id), reverse=True)
        data.all_events.sort(key=lambda e: e.at)  # stable: per-practice order kept on ties
        return data

    def _practice(
        self, where: str, entry: dict[str, Any], problems: list[SuapDataError]
    ) -> Practice | None:
        values = {k: entry[k] for k in _HEAD if k in entry}
        cf = values.get("applicant_fiscal_code")
        if isinstance(cf, str):
            values["applicant_fiscal_code"] = cf.strip().upper()
        # status and updated_at come from the events: placeholders until they are read
        values["status"] = _PLACEHOLDER_STATUS
        values["updated_at"] = values.get("submitted_at")
        return self._validate(Practice, where, values, problems, ("status", "updated_at"))

    def _events(
        self, where: str, practice_id: str, entry: dict[str, Any], problems: list[SuapDataError]
    ) -> list[PracticeEvent]:
        src = str(self.path)
        raw = entry.get("events")
        if not isinstance(raw, list):
            problems.append(SuapDataError(src, where, "events", "must be a list of events"))
            return []
        events: list[PracticeEvent] = []
        for j, item in enumerate(raw):
            at = f"{where}.events[{j}]"
            if not isinstance(item, dict):
                problems.append(SuapDataError(src, at, "", "not an object"))
                continue
            values = {k: item[k] for k in _EVENT if k in item}
            values["practice_id"] = practice_id
            event = self._validate(PracticeEvent, at, values, problems)
            if event is not None:
                events.append(event)
        if not events:
            problems.append(
                SuapDataError(src, where, "events", "no valid event, so the practice has no status")
            )
        events.sort(key=lambda e: e.at)  # stable: the export's order breaks ties
        return events

    def _documents(
        self, where: str, entry: dict[str, Any], problems: list[SuapDataError]
    ) -> list[PracticeDocument]:
        src = str(self.path)
        raw = entry.get("documents", [])
        if raw is None:
            return []
        if not isinstance(raw, list):
            problems.append(SuapDataError(src, where, "documents", "must be a list of documents"))
            return []
        documents: list[PracticeDocument] = []
        seen: set[str] = set()
        for k, item in enumerate(raw):
            at = f"{where}.documents[{k}]"
            if not isinstance(item, dict):
                problems.append(SuapDataError(src, at, "", "not an object"))
                continue
            values = {key: item[key] for key in _DOCUMENT if key in item}
            document = self._validate(PracticeDocument, at, values, problems)
            if document is None:
                continue
            if document.id in seen:
                problems.append(SuapDataError(src, at, "id", "appears twice in this practice"))
                continue
            seen.add(document.id)
            documents.append(document)
        return documents

    async def _loaded(self) -> _Data:
        """The export, read again whenever the back office has written a new one (its
        modification time or size changed), so a long-running hub sees new events."""
        async with self._lock:
            stamp = await asyncio.to_thread(self._stamp)
            if self._data is None or stamp != self._seen:
                data = await asyncio.to_thread(self._load)
                self._data, self._problems, self._seen = data, list(data.problems), stamp
            return self._data

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    # -- the contract --------------------------------------------------------------------------

    async def practices(self, applicant_fiscal_code: str) -> list[Practice]:
        data = await self._loaded()
        return list(data.by_applicant.get(applicant_fiscal_code.strip().upper(), []))

    async def practice(self, practice_id: str) -> Practice | None:
        return (await self._loaded()).by_id.get(practice_id)

    async def timeline(self, practice_id: str) -> list[PracticeEvent]:
        return list((await self._loaded()).events.get(practice_id, []))

    async def documents(self, practice_id: str) -> list[PracticeDocument]:
        return list((await self._loaded()).documents.get(practice_id, []))

    async def changes_since(self, since: datetime) -> list[PracticeEvent]:
        if since.tzinfo is None or since.utcoffset() is None:
            raise ValueError("changes_since needs an aware datetime")
        events = (await self._loaded()).all_events
        start = bisect.bisect_right(events, since, key=lambda e: e.at)
        return events[start:]

    def problems(self) -> list[SuapDataError]:
        return list(self._problems)

    async def close(self) -> None:
        self._data = None
