"""GPD bulk upload (``gpd_massive_v2.json``): ``GpdClient`` against the sandbox."""

from __future__ import annotations

import functools
import io
import json
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sportello.connectors.pagopa.gpd import BULK_FILE_NAME, GpdClient, build_bulk_zip
from sportello.connectors.pagopa.gpd_errors import (
    BulkReportNotReady,
    GpdValidationError,
    UploadNotFound,
)
from sportello.connectors.retry import RetryPolicy
from sportello.sandbox.pagopa.gpd_app import (
    DEFAULT_API_KEY,
    GPD_PREFIX,
    SUBSCRIPTION_KEY_HEADER,
    UPLOAD_PREFIX,
    create_app,
)
from sportello.sandbox.pagopa.gpd_demo import DEMO_BROKER, DEMO_ORGANIZATION, demo_position
from sportello.sandbox.pagopa.gpd_spec import GpdSpecChecker

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pagopa" / "openapi"
GPD_SPEC = SPECS / "gpd.json"
MASSIVE_SPEC = SPECS / "gpd_massive_v2.json"
ORG = DEMO_ORGANIZATION
NOW = datetime.now(UTC).replace(microsecond=0)
FILE_PATH = f"{UPLOAD_PREFIX}/brokers/{DEMO_BROKER}/organizations/{ORG}/debtpositions/file"


@functools.cache
def _load_spec() -> GpdSpecChecker:
    return GpdSpecChecker.from_paths(GPD_SPEC, MASSIVE_SPEC)


def spec_or_none() -> GpdSpecChecker | None:
    return _load_spec() if GPD_SPEC.exists() and MASSIVE_SPEC.exists() else None


class Env:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        self.client = GpdClient(
            session,
            str(server.make_url(GPD_PREFIX)),
            api_key=lambda: DEFAULT_API_KEY,
            broker_code=DEMO_BROKER,
            retry=RetryPolicy(max_attempts=3, base_delay=0.01),
        )

    async def admin(self, method: str, path: str) -> Any:
        async with self.session.request(method, self.server.make_url(f"/__sandbox/{path}")) as r:
            return await r.json()

    async def post_file(self, content: bytes, filename: str = "positions.zip") -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("file", content, filename=filename, content_type="application/zip")
        async with self.session.post(
            self.server.make_url(FILE_PATH),
            data=form,
            headers={SUBSCRIPTION_KEY_HEADER: DEFAULT_API_KEY},
        ) as resp:
            return resp.status, await resp.json(content_type=None) if await resp.read() else None


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    checker = spec_or_none()
    server = TestServer(create_app(processing_delay=0.2, spec_checker=checker))
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        yield Env(server, session)
        violations = (await Env(server, session).admin("GET", "spec-violations"))["violations"]
        assert violations == [], violations
    finally:
        await session.close()
        await server.close()


def positions(count: int, start: int = 1) -> list[Any]:
    return [demo_position(n, now=NOW) for n in range(start, start + count)]


def test_the_zip_holds_one_json_file_of_gpd_bodies() -> None:
    content = build_bulk_zip(positions(3))
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.namelist() == [BULK_FILE_NAME]
        doc = json.loads(archive.read(BULK_FILE_NAME))
    assert [p["iupd"] for p in doc["paymentPositions"]] == [
        "SPORTELLO-00000001",
        "SPORTELLO-00000002",
        "SPORTELLO-00000003",
    ]
    assert build_bulk_zip(positions(3)) == content  # deterministic bytes
    checker = spec_or_none()
    if checker is not None:
        for body in doc["paymentPositions"]:
            assert checker.schema_errors("PaymentPositionModel", body) == []
    with pytest.raises(GpdValidationError):
        build_bulk_zip([*positions(2), *positions(1)])  # an IUPD twice
    with pytest.raises(GpdValidationError):
        build_bulk_zip([])
    with pytest.raises(GpdValidationError):
        build_bulk_zip(positions(3), max_content_bytes=100)


async def test_200_positions(env: Env) -> None:
    file_id = await env.client.bulk_upload(ORG, positions(200))
    status = await env.client.bulk_status(ORG, file_id)
    assert (status.operation_status, status.submitted, status.done) == ("IN_PROGRESS", 200, False)
    with pytest.raises(BulkReportNotReady):
        await env.client.bulk_report(ORG, file_id)
    report = await env.client.wait_for_bulk(ORG, file_id, poll_interval=0.05, max_wait=10)
    assert (report.file_id, report.processed, report.submitted) == (file_id, 200, 200)
    assert len(report.succeeded) == 200
    assert report.failed == {}
    assert {e.status_code for e in report.entries} == {201}
    assert (await env.client.bulk_status(ORG, file_id)).operation_status == "COMPLETED"
    stored = (await env.admin("GET", "positions?status=VALID"))["count"]
    assert stored == 200  # GPD-upload creates them published


async def test_a_bad_position_fails_alone(env: Env) -> None:
    await env.client.create(ORG, demo_position(7, now=NOW))  # already there: 409
    batch = positions(50)
    batch[20] = demo_position(21, now=NOW, due_in=timedelta(days=-2))  # due in the past
    file_id = await env.client.bulk_upload(ORG, batch)
    report = await env.client.wait_for_bulk(ORG, file_id, poll_interval=0.05, max_wait=10)
    assert report.processed == 50
    assert len(report.succeeded) == 48
    failed = report.failed
    assert sorted(failed) == ["SPORTELLO-00000007", "SPORTELLO-00000021"]
    assert failed["SPORTELLO-00000007"].status_code == 409
    assert "not unique" in failed["SPORTELLO-00000007"].message
    assert failed["SPORTELLO-00000021"].status_code == 400
    assert failed["SPORTELLO-00000021"].message.startswith(
        "Dates congruence error: due_date must be >= "
    )
    status = await env.client.bulk_status(ORG, file_id)
    assert status.operation_status == "COMPLETED_WITH_WARNINGS"
    assert (await env.admin("GET", "positions"))["count"] == 49


async def test_update_and_delete_by_file(env: Env) -> None:
    file_id = await env.client.bulk_upload(ORG, positions(5))
    await env.client.wait_for_bulk(ORG, file_id, poll_interval=0.05, max_wait=10)
    changed = [demo_position(n, now=NOW, amount=7_000) for n in (1, 2)]
    file_id = await env.client.bulk_update(ORG, changed)
    report = await env.client.wait_for_bulk(ORG, file_id, poll_interval=0.05, max_wait=10)
    assert sorted(report.succeeded) == ["SPORTELLO-00000001", "SPORTELLO-00000002"]
    assert (await env.client.get(ORG, "SPORTELLO-00000001"))["paymentOption"][0]["amount"] == 7_000
    file_id = await env.client.bulk_delete(ORG, ["SPORTELLO-00000003", "SPORTELLO-00000099"])
    report = await env.client.wait_for_bulk(ORG, file_id, poll_interval=0.05, max_wait=10)
    assert report.succeeded == ("SPORTELLO-00000003",)
    assert report.failed["SPORTELLO-00000099"].status_code == 404
    assert (await env.admin("GET", "positions"))["count"] == 4


async def test_whole_file_refusals(env: Env) -> None:
    good = build_bulk_zip(positions(2))
    status, answer = await env.post_file(good, filename="positions.json")
    assert (status, answer["title"]) == (400, "NOT A ZIP FILE")
    status, answer = await env.post_file(b"not a zip")
    assert (status, answer["title"]) == (400, "INVALID FILE")

    doc = {"paymentPositions": [p.to_gpd() for p in positions(2)]}
    doc["paymentPositions"][1]["paymentOption"][0]["amount"] = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("positions.json", json.dumps(doc))
    status, answer = await env.post_file(buffer.getvalue())
    assert status == 400
    assert answer["title"] == "INVALID DEBT POSITIONS"
    assert "paymentPositions[1].paymentOption[0].amount" in answer["detail"]
    assert (await env.admin("GET", "uploads"))["uploads"] == []

    with pytest.raises(UploadNotFound):
        await env.client.bulk_status(ORG, "no-such-file")
    file_id = await env.client.bulk_upload(ORG, positions(1))
    with pytest.raises(UploadNotFound):  # another broker cannot see it
        await env.client.bulk_status(ORG, file_id, broker_code="99999999999")
