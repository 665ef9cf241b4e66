"""F24 payments (SEND B2B bundle ``F24Payment``: title, applyCost, ``metadataAttachment``
with the F24's JSON metadata preloaded as ``application/json``).

- the twin, with hand-built requests: a metadata file preloaded as JSON with its digest is
  accepted (the body valid per the bundle); a wrong digest is FILE_SHA_ERROR; a file that is
  not ``F24Metadata`` (two kinds, not JSON, preloaded as a PDF) is F24_METADATA_NOT_VALID;
- the hub (SQLite and PostgreSQL): the bulk import's ``f24Metadata`` column names a JSON file
  in the documents folder; the hub stores it, preloads and uploads it as JSON and the request
  refers to it by its SHA-256; SEND accepts it. Bad files (outside the folder, not JSON, not
  one F24 kind, too big) are refused by row and column with nothing queued."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from send_stack import Stack
from test_send_import import fine, write
from test_send_pagopa import CF, Hub, drain, hub, twin_body  # noqa: F401
from test_send_sandbox import (
    BUNDLE,
    PDF,
    b64sha,
    call,
    headers,
    request_body,
    schema_validator,
)

from sportello.adapters.notifications.csv_source import CsvNotificationSource
from sportello.app import SERVICES
from sportello.platforms.send.f24 import MAX_F24_BYTES, f24_problem
from sportello.platforms.send.imports import ImportResult, import_notifications
from sportello.platforms.send.tables import send_notifications
from sportello.sandbox.send.app import SEND_STATE

METADATA = {
    "f24Simplified": {
        "taxPayer": {"taxCode": CF, "id": "01"},
        "payments": {
            "records": [
                {
                    "section": "EL",
                    "municipality": "H501",
                    "taxType": "3944",
                    "year": "2026",
                    "debit": "12000",
                    "applyCost": False,
                }
            ]
        },
    }
}
F24_JSON = json.dumps(METADATA).encode()


async def uploaded(stack: Stack, data: bytes, content_type: str) -> dict[str, str]:
    status, body, _ = await call(
        stack,
        "POST",
        "/delivery/attachments/preload",
        hdrs=await headers(stack),
        json=[{"preloadIdx": "0", "contentType": content_type, "sha256": b64sha(data)}],
    )
    assert status == 200, body
    slot: dict[str, Any] = body[0]
    hdrs = {
        "Content-Type": content_type,
        "x-amz-meta-secret": slot["secret"],
        "x-amz-checksum-sha256": b64sha(data),
    }
    async with stack.session.put(slot["url"], data=data, headers=hdrs) as response:
        assert response.status == 200
        return {"key": slot["key"], "versionToken": response.headers["x-amz-version-id"]}


async def outcome(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    hdrs = await headers(stack)
    status, created, _ = await call(stack, "POST", "/delivery/v2.6/requests", hdrs=hdrs, json=body)
    assert status == 202, created
    rid = created["notificationRequestId"]
    path = f"/delivery/v2.6/requests?notificationRequestId={rid}"
    status, answer, _ = await call(stack, "GET", path, hdrs=hdrs)
    assert status == 200
    result: dict[str, Any] = answer
    return result


async def f24_request(
    stack: Stack, metadata: bytes, *, content_type: str = "application/json", digest: str = ""
) -> dict[str, Any]:
    act = await uploaded(stack, PDF, "application/pdf")
    ref = await uploaded(stack, metadata, content_type)
    body = request_body()
    body["paProtocolNumber"] = f"F24-{ref['key'][-8:]}"
    body["documents"][0]["ref"] = act
    body["recipients"][0]["payments"].append(
        {
            "f24": {
                "title": "Modello F24",
                "applyCost": False,
                "metadataAttachment": {
                    "digests": {"sha256": digest or b64sha(metadata)},
                    "contentType": "application/json",
                    "ref": ref,
                },
            }
        }
    )
    return body


async def test_the_twin_takes_f24_metadata_preloaded_as_json(stack: Stack) -> None:
    body = await f24_request(stack, F24_JSON)
    if BUNDLE.is_file():
        assert list(schema_validator("NewNotificationRequestV26").iter_errors(body)) == []
    answer = await outcome(stack, body)
    assert answer["notificationRequestStatus"] == "ACCEPTED", answer


@pytest.mark.parametrize(
    ("metadata", "content_type", "wrong_digest", "code"),
    [
        (F24_JSON, "application/json", True, "FILE_SHA_ERROR"),
        (
            json.dumps({"f24Simplified": {"a": 1}, "f24Elid": {"b": 2}}).encode(),
            "application/json",
            False,
            "F24_METADATA_NOT_VALID",
        ),
        (b"not json", "application/json", False, "F24_METADATA_NOT_VALID"),
        (json.dumps([1]).encode(), "application/json", False, "F24_METADATA_NOT_VALID"),
        (F24_JSON, "application/pdf", False, "F24_METADATA_NOT_VALID"),
    ],
)
async def test_the_twin_refuses_bad_f24_metadata(
    stack: Stack, metadata: bytes, content_type: str, wrong_digest: bool, code: str
) -> None:
    digest = b64sha(b"something else") if wrong_digest else ""
    body = await f24_request(stack, metadata, content_type=content_type, digest=digest)
    answer = await outcome(stack, body)
    assert answer["notificationRequestStatus"] == "REFUSED", answer
    assert [e["code"] for e in answer["errors"]] == [code]
    assert "f24.metadataAttachment" in answer["errors"][0]["element"]


def test_the_hub_checks_the_metadata_shape() -> None:
    assert f24_problem(F24_JSON) is None
    assert f24_problem(b"\xff") == "not JSON (the F24 metadata, F24Metadata)"
    assert f24_problem(b"[]") == "not a JSON object (F24Metadata)"
    assert f24_problem(b"{}") is not None and "one and only one" in (f24_problem(b"{}") or "")
    assert "unknown field" in (f24_problem(b'{"f24Other": {}}') or "")
    assert "an object" in (f24_problem(b'{"f24Elid": 3}') or "")
    assert "more than" in (f24_problem(b" " * (MAX_F24_BYTES + 1)) or "")


async def run(hub: Hub, path: Path) -> ImportResult:  # noqa: F811
    source = CsvNotificationSource({"path": str(path)}, base_dir=path.parent)
    return await import_notifications(
        hub.app[SERVICES], "demo", source.rows(), documents=path.parent, source="fines.csv"
    )


def with_f24(n: int, name: str = "f24.json", **changes: str) -> dict[str, str]:
    row = fine(
        n,
        taxId=CF,
        noticeCode="",
        creditorTaxId="",
        amount="",
        applyCost="",
        f24Metadata=name,
        f24Title="F24 IMU 2026",
        f24ApplyCost="false",
    )
    row.update(changes)
    return row


async def test_an_imported_f24_reaches_send(hub: Hub, tmp_path: Path) -> None:  # noqa: F811
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "f24.json").write_bytes(F24_JSON)
    result = await run(hub, write(folder, [with_f24(1)]))
    assert result.ok, result.problems
    await drain(hub)
    body = twin_body(hub, "VERB-2026-00001")
    [payment] = body["recipients"][0]["payments"]
    f24 = payment["f24"]
    assert (f24["title"], f24["applyCost"]) == ("F24 IMU 2026", False)
    attachment = f24["metadataAttachment"]
    assert attachment["contentType"] == "application/json"
    assert attachment["digests"]["sha256"] == b64sha(F24_JSON)
    upload = hub.stack.send_app[SEND_STATE].uploads[
        attachment["ref"]["key"].removeprefix("safestorage://")
    ]
    assert (upload.body, upload.content_type) == (F24_JSON, "application/json")
    # the same file again: nothing queued twice
    again = await run(hub, write(folder, [with_f24(1)]))
    assert again.ok and again.queued == [] and again.already == result.queued


async def test_bad_f24_files_are_refused_with_nothing_queued(
    hub: Hub,  # noqa: F811
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (tmp_path / "outside.json").write_bytes(F24_JSON)
    (folder / "two.json").write_text(json.dumps({"f24Standard": {"a": 1}, "f24Elid": {"b": 1}}))
    (folder / "text.json").write_text("IMU 2026")
    (folder / "big.json").write_bytes(b" " * (MAX_F24_BYTES + 1))
    (folder / "good.json").write_bytes(F24_JSON)
    (folder / "link.json").symlink_to(tmp_path / "outside.json")
    rows = [
        with_f24(1, "../outside.json"),
        with_f24(2, "two.json"),
        with_f24(3, "text.json"),
        with_f24(4, "big.json"),
        with_f24(5, "link.json"),
        with_f24(6, "good.json", f24ApplyCost="maybe"),
        fine(7, f24Title="F24", f24Metadata="", f24ApplyCost=""),
        with_f24(8, "good.json", f24ApplyCost="true", notificationFeePolicy="FLAT_RATE"),
        with_f24(9, "good.json"),
    ]
    for row in rows:
        row.setdefault("notificationFeePolicy", "")
    result = await run(hub, write(folder, rows))
    assert result.problems == [
        "fines.csv: row 2: f24Metadata: '..' is not allowed: give a file name inside the "
        "documents folder",
        "fines.csv: row 3: f24Metadata: one and only one of f24Standard, f24Simplified, "
        "f24Excise, f24Elid",
        "fines.csv: row 4: f24Metadata: not JSON (the F24 metadata, F24Metadata)",
        f"fines.csv: row 5: f24Metadata: {MAX_F24_BYTES + 1} bytes, more than the "
        f"{MAX_F24_BYTES} allowed",
        "fines.csv: row 6: f24Metadata: leads outside the documents folder: refused",
        "fines.csv: row 7: f24ApplyCost: true or false",
        "fines.csv: row 8: f24Title: only with f24Metadata (the F24's JSON file)",
        "fines.csv: row 9: f24ApplyCost: SEND adds its cost only with notificationFeePolicy "
        "DELIVERY_MODE",
    ]
    async with hub.app[SERVICES].engine.connect() as c:
        assert (await c.execute(send_notifications.select())).first() is None


async def post(hub: Hub, protocol: str, f24: list[dict[str, Any]]) -> tuple[int, Any]:  # noqa: F811
    body = {
        "pa_protocol_number": protocol,
        "subject": "Avviso di accertamento IMU 2026",
        "taxonomy_code": "010101P",
        "recipients": [
            {
                "recipientType": "PF",
                "taxId": CF,
                "denomination": "Mario Rossi",
                "physicalAddress": {"address": "Via Roma 1", "municipality": "Roma"},
            }
        ],
        "documents": [{"title": "Avviso", "content_base64": base64.b64encode(PDF).decode()}],
        "f24": f24,
    }
    r = await hub.client.post(
        "/api/v1/tenants/demo/send/notifications",
        json=body,
        headers={"Authorization": f"Bearer {hub.keys['demo']}", "Idempotency-Key": protocol},
    )
    return r.status, await r.json()


async def test_an_f24_through_the_api(hub: Hub) -> None:  # noqa: F811
    f24 = {"title": "F24 IMU", "apply_cost": False, "metadata": METADATA}
    status, answer = await post(hub, "API-F24-1", [f24])
    assert status == 202, answer
    await drain(hub)
    pay = twin_body(hub, "API-F24-1")["recipients"][0]["payments"][0]["f24"]
    key = pay["metadataAttachment"]["ref"]["key"].removeprefix("safestorage://")
    upload = hub.stack.send_app[SEND_STATE].uploads[key]
    assert json.loads(upload.body or b"") == METADATA
    assert pay["metadataAttachment"]["digests"]["sha256"] == b64sha(upload.body or b"")
    bad = [
        ({**f24, "metadata": {"f24Elid": {"a": 1}, "f24Excise": {"b": 1}}}, "f24.0.metadata"),
        ({**f24, "recipient": 3}, "f24.0.recipient: no such recipient"),
        ({**f24, "metadata": {"f24Elid": {"x": "y" * 300_000}}}, "f24.0.metadata: "),
        ({**f24, "title": "a\nb"}, "f24.0.title"),
    ]
    for n, (item, field) in enumerate(bad):
        status, problem = await post(hub, f"API-F24-BAD-{n}", [item])
        assert status == 400, problem
        assert problem["detail"].startswith(field), problem
