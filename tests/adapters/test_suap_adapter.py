"""Reference SUAP adapter (a JSON export of the back office): practices per applicant newest
first, timelines oldest first, documents, changes since a moment, and bad entries reported
with file, entry and field while the good ones are served."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from sportello.adapters.suap.base import SuapAdapter, SuapDataError
from sportello.adapters.suap.json_adapter import JsonSuapAdapter
from sportello.adapters.suap.rest_adapter import RestSuapAdapter
from sportello.plugins import Plugins

ROME = timezone(timedelta(hours=1))
MARIO = "RSSMRA80A01Z999Y"
COMPANY = "01234567890"

EXPORT: dict[str, Any] = {
    "practices": [
        {
            "id": "SUAP-2024-001",
            "applicant_fiscal_code": MARIO,
            "applicant_name": "Mario Rossi",
            "title": "Apertura bar in Via Roma 1",
            "kind": "SCIA",
            "submitted_at": "2024-03-01T09:00:00+01:00",
            "events": [  # out of order on purpose: the adapter orders by time
                {"status": "integrazione richiesta", "at": "2024-03-05T10:00:00+01:00"},
                {"status": "ricevuta", "at": "2024-03-01T09:00:00+01:00", "note": None},
                {"status": "conclusa", "at": "2024-03-20T12:00:00Z", "note": "esito positivo"},
            ],
            "documents": [
                {
                    "id": "DOC-1",
                    "name": "planimetria.pdf",
                    "media_type": "application/pdf",
                    "size": 20480,
                }
            ],
        },
        {
            "id": "SUAP-2024-002",
            "applicant_fiscal_code": "rssmra80a01z999y",  # lower case in the export
            "applicant_name": "Mario Rossi",
            "title": "Insegna luminosa",
            "kind": "comunicazione",
            "submitted_at": "2024-04-10T08:30:00+02:00",
            "events": [
                {"status": "ricevuta", "at": "2024-04-10T08:30:00+02:00"},
                {"status": "in istruttoria", "at": "ieri"},  # bad event: skipped
            ],
        },
        {
            "id": "SUAP-2024-003",
            "applicant_fiscal_code": COMPANY,
            "applicant_name": None,
            "title": "Autorizzazione scarichi",
            "kind": "autorizzazione",
            "submitted_at": "2024-02-01T11:00:00+01:00",
            "events": [{"status": "ricevuta", "at": "2024-02-01T11:00:00+01:00"}],
            "documents": [],
        },
        {
            "id": "SUAP-2024-004",
            "applicant_fiscal_code": MARIO,
            "title": "Dehors",
            "kind": "autorizzazione",
            "submitted_at": "01/03/2024",  # bad date: the whole practice is skipped
            "events": [{"status": "ricevuta", "at": "2024-03-01T09:00:00+01:00"}],
        },
    ]
}


def write(tmp_path: Path, doc: Any, name: str = "suap.json") -> JsonSuapAdapter:
    (tmp_path / name).write_text(json.dumps(doc), encoding="utf-8")
    return JsonSuapAdapter({"path": name}, base_dir=tmp_path)


async def test_practices_per_applicant_newest_first(tmp_path: Path) -> None:
    adapter: SuapAdapter = write(tmp_path, EXPORT)
    mine = await adapter.practices(MARIO.lower())
    assert [p.id for p in mine] == ["SUAP-2024-002", "SUAP-2024-001"]
    assert mine == await adapter.practices(MARIO)
    company = await adapter.practices(COMPANY)
    assert [(p.id, p.kind, p.applicant_name) for p in company] == [
        ("SUAP-2024-003", "autorizzazione", None)
    ]
    assert await adapter.practices("XXXXXX00X00X000X") == []
    await adapter.close()


async def test_practice_status_comes_from_last_event(tmp_path: Path) -> None:
    adapter = write(tmp_path, EXPORT)
    bar = await adapter.practice("SUAP-2024-001")
    assert bar is not None
    assert (bar.status, bar.kind, bar.applicant_fiscal_code) == ("conclusa", "SCIA", MARIO)
    assert bar.submitted_at == datetime(2024, 3, 1, 9, tzinfo=ROME)
    assert bar.updated_at == datetime(2024, 3, 20, 12, tzinfo=UTC)
    sign = await adapter.practice("SUAP-2024-002")
    assert sign is not None and sign.applicant_fiscal_code == MARIO
    assert sign.status == "ricevuta"  # the bad event was skipped
    assert await adapter.practice("SUAP-2024-004") is None  # bad entry
    assert await adapter.practice("nope") is None


async def test_timeline_oldest_first_and_documents(tmp_path: Path) -> None:
    adapter = write(tmp_path, EXPORT)
    timeline = await adapter.timeline("SUAP-2024-001")
    assert [e.status for e in timeline] == ["ricevuta", "integrazione richiesta", "conclusa"]
    assert {e.practice_id for e in timeline} == {"SUAP-2024-001"}
    assert timeline[-1].note == "esito positivo" and timeline[0].note is None
    assert [e.status for e in await adapter.timeline("SUAP-2024-002")] == ["ricevuta"]
    assert await adapter.timeline("nope") == []

    docs = await adapter.documents("SUAP-2024-001")
    assert [(d.id, d.name, d.media_type, d.size) for d in docs] == [
        ("DOC-1", "planimetria.pdf", "application/pdf", 20480)
    ]
    assert await adapter.documents("SUAP-2024-002") == []  # no "documents" key
    assert await adapter.documents("SUAP-2024-003") == []
    assert await adapter.documents("nope") == []


async def test_changes_since(tmp_path: Path) -> None:
    adapter = write(tmp_path, EXPORT)
    everything = await adapter.changes_since(datetime(2000, 1, 1, tzinfo=UTC))
    assert [(e.practice_id, e.status) for e in everything] == [
        ("SUAP-2024-003", "ricevuta"),
        ("SUAP-2024-001", "ricevuta"),
        ("SUAP-2024-001", "integrazione richiesta"),
        ("SUAP-2024-001", "conclusa"),
        ("SUAP-2024-002", "ricevuta"),
    ]
    # strictly after: an event exactly at `since` was already seen
    since = datetime(2024, 3, 5, 10, tzinfo=ROME)
    assert [(e.practice_id, e.status) for e in await adapter.changes_since(since)] == [
        ("SUAP-2024-001", "conclusa"),
        ("SUAP-2024-002", "ricevuta"),
    ]
    # the same moment in another offset
    assert await adapter.changes_since(datetime(2024, 3, 5, 9, tzinfo=UTC)) == (
        await adapter.changes_since(since)
    )
    assert await adapter.changes_since(datetime(2030, 1, 1, tzinfo=UTC)) == []
    with pytest.raises(ValueError, match="aware"):
        await adapter.changes_since(datetime(2024, 1, 1))


async def test_bad_entries_are_named_and_skipped(tmp_path: Path) -> None:
    adapter = write(tmp_path, EXPORT)
    assert adapter.problems() == []  # nothing loaded yet: loading is lazy
    await adapter.practice("SUAP-2024-001")
    problems = adapter.problems()
    assert [p.location for p in problems] == [
        "practices[1].events[1].at",
        "practices[3].submitted_at",
    ]
    bad_date = problems[1]
    assert bad_date.source == str(tmp_path / "suap.json")
    assert (bad_date.where, bad_date.field) == ("practices[3]", "submitted_at")
    assert str(bad_date).startswith(f"{tmp_path / 'suap.json'}: practices[3].submitted_at: ")
    await adapter.close()


async def test_protocol_number_and_deadline_are_read_and_checked(tmp_path: Path) -> None:
    """C.SE.1.10: the practice's protocol number and the date by which it must end, when
    the export has them; a deadline that is not a date is named and the practice skipped."""
    base = EXPORT["practices"][2]
    doc = {
        "practices": [
            {**base, "protocol_number": "2024/0001234", "deadline": "2024-03-02"},
            {**base, "id": "SUAP-2024-010", "deadline": "entro marzo"},
            {**base, "id": "SUAP-2024-011", "protocol_number": ""},
        ]
    }
    adapter = write(tmp_path, doc)
    found = await adapter.practice("SUAP-2024-003")
    assert found is not None
    assert found.protocol_number == "2024/0001234"
    assert found.deadline is not None and found.deadline.isoformat() == "2024-03-02"
    assert await adapter.practice("SUAP-2024-010") is None
    assert await adapter.practice("SUAP-2024-011") is None
    assert [p.location for p in adapter.problems()] == [
        "practices[1].deadline",
        "practices[2].protocol_number",
    ]
    plain = write(tmp_path, {"practices": [base]}, name="plain.json")
    old = await plain.practice("SUAP-2024-003")
    assert old is not None and old.protocol_number is None and old.deadline is None
    await adapter.close()
    await plain.close()


async def test_more_bad_shapes(tmp_path: Path) -> None:
    good = EXPORT["practices"][2]
    doc = {
        "practices": [
            good,
            dict(good, title="duplicate id"),
            "not an object",
            dict(good, id="P-NAIVE", submitted_at="2024-02-01T11:00:00"),
            dict(good, id="P-CF", applicant_fiscal_code="SHORT"),
            dict(good, id="P-NOEVENTS", events=[]),
            dict(good, id="P-NOSTATUS", events=[{"at": "2024-02-01T11:00:00+01:00"}]),
            {k: v for k, v in good.items() if k != "title"} | {"id": "P-NOTITLE"},
            dict(
                good,
                id="P-DOCS",
                documents=[
                    {"id": "D1", "name": "a.pdf", "media_type": "application/pdf", "size": -1},
                    {"id": "D2", "name": "b.pdf", "media_type": "application/pdf", "size": 1},
                    {"id": "D2", "name": "c.pdf", "media_type": "application/pdf", "size": 2},
                ],
            ),
        ]
    }
    adapter = write(tmp_path, doc)
    assert [p.id for p in await adapter.practices(COMPANY)] == ["SUAP-2024-003", "P-DOCS"]
    assert [d.id for d in await adapter.documents("P-DOCS")] == ["D2"]
    assert [p.location for p in adapter.problems()] == [
        "practices[1].id",
        "practices[2]",
        "practices[3].submitted_at",
        "practices[4].applicant_fiscal_code",
        "practices[5].events",
        "practices[6].events[0].status",
        "practices[6].events",
        "practices[7].title",
        "practices[8].documents[0].size",
        "practices[8].documents[2].id",
    ]


async def test_unusable_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SuapDataError, match="no list of practices"):
        await write(tmp_path, None, "x.json").practice("x")  # "null": JSON, but no practices
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(SuapDataError, match="not valid JSON"):
        await JsonSuapAdapter({"path": "broken.json"}, base_dir=tmp_path).practice("x")
    with pytest.raises(ValueError, match=r"options\.path"):
        JsonSuapAdapter({}, base_dir=tmp_path)


def test_json_adapter_is_registered() -> None:
    assert Plugins().suap_adapters() == {"json": JsonSuapAdapter, "rest": RestSuapAdapter}
