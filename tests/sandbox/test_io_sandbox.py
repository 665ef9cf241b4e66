"""The App IO sandbox over real sockets, with plain HTTP calls (no client library).

Every test runs the sandbox with spec checking on when the official spec is available
(``../shared/specs/io/index.yaml``): teardown fails on any request body the sandbox
accepted, or any body it sent, that the spec does not allow.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sportello.clock import FakeClock
from sportello.sandbox.io.app import (
    DEMO_DRAFT_SERVICE_ID,
    DEMO_PRIMARY_KEY,
    DEMO_SECONDARY_KEY,
    DEMO_SERVICE_ID,
    DRAFT_PRIMARY_KEY,
    PERM_ADVANCED,
    SandboxService,
    create_app,
)
from sportello.sandbox.io.population import (
    CF_ALLOWED,
    CF_ALLOWED_EN,
    CF_BLOCKED,
    CF_INBOX_DISABLED,
    CF_NOT_ON_IO,
    SANDBOX_FISCAL_CODE,
)
from sportello.sandbox.io.spec import SpecChecker

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "io" / "index.yaml"
KEY = "Ocp-Apim-Subscription-Key"
MARKDOWN = "# Avviso\n\n" + "Il Comune ti ricorda che il pagamento della TARI scade a breve. " * 2
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
BARE_KEY = "bare-primary"
BARE = SandboxService("01BARESERVICE0000000000000", "Bare", BARE_KEY, "bare-secondary")


@functools.cache
def _load_spec() -> SpecChecker:
    return SpecChecker.from_path(SPEC)


def spec_or_none() -> SpecChecker | None:
    return _load_spec() if SPEC.exists() else None


def require_spec() -> SpecChecker:
    if not SPEC.exists():
        pytest.skip(f"App IO spec not found at {SPEC} (shared/specs is not part of the repo)")
    return _load_spec()


class Sandbox:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = DEMO_PRIMARY_KEY,
        json: Any = None,
        data: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        headers = {KEY: key} if key is not None else {}
        async with self.session.request(
            method, self.url(f"/api/v1{path}"), headers=headers, json=json, data=data
        ) as resp:
            body = await resp.json(content_type=None) if await resp.read() else None
            return resp.status, body, resp.headers

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        async with self.session.request(method, self.url(f"/__sandbox/{path}"), json=json) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def send(
        self, fiscal_code: str = CF_ALLOWED, key: str = DEMO_PRIMARY_KEY, **extra: Any
    ) -> str:
        status, body, _ = await self.call(
            "POST", "/messages", key=key, json=new_message(fiscal_code, **extra)
        )
        assert status == 201, body
        return str(body["id"])


def new_message(fiscal_code: str | None = CF_ALLOWED, **extra: Any) -> dict[str, Any]:
    content = {"subject": "Promemoria scadenza TARI", "markdown": MARKDOWN}
    content.update(extra.pop("content", {}))
    body: dict[str, Any] = {"content": content, **extra}
    if fiscal_code is not None:
        body["fiscal_code"] = fiscal_code
    return body


MakeSandbox = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
async def make_sandbox() -> AsyncIterator[MakeSandbox]:
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []
    checker = spec_or_none()

    async def make(**kwargs: Any) -> Sandbox:
        kwargs.setdefault("spec_checker", checker)
        server = TestServer(create_app(**kwargs))
        await server.start_server()
        session = aiohttp.ClientSession()
        started.append((server, session))
        return Sandbox(server, session)

    yield make
    for server, session in started:
        if checker is not None:
            async with session.get(server.make_url("/__sandbox/spec-violations")) as resp:
                violations = (await resp.json())["violations"]
        await session.close()
        await server.close()
        if checker is not None:
            assert violations == [], violations


@pytest.fixture
async def sandbox(make_sandbox: MakeSandbox) -> Sandbox:
    return await make_sandbox()


# -- the API gateway -------------------------------------------------------------------------


async def test_missing_and_invalid_keys_get_the_gateway_401(sandbox: Sandbox) -> None:
    status, body, headers = await sandbox.call(
        "POST", "/profiles", key=None, json={"fiscal_code": CF_ALLOWED}
    )
    assert status == 401
    assert body["statusCode"] == 401
    assert body["message"].startswith("Access denied due to missing subscription key.")
    assert 'name="Ocp-Apim-Subscription-Key"' in headers["WWW-Authenticate"]
    status, body, _ = await sandbox.call(
        "POST", "/profiles", key="nope", json={"fiscal_code": CF_ALLOWED}
    )
    assert (status, body["statusCode"]) == (401, 401)
    assert body["message"].startswith("Access denied due to invalid subscription key.")
    calls = (await sandbox.admin("GET", "calls"))["calls"]
    assert [c["status"] for c in calls] == [401, 401]
    assert all(c["key"] is None for c in calls)


async def test_unknown_routes_get_the_gateway_404(sandbox: Sandbox) -> None:
    for method, path in [("GET", "/nothing"), ("DELETE", "/messages"), ("GET", "/messages")]:
        status, body, _ = await sandbox.call(method, path)
        assert status == 404
        assert body == {"statusCode": 404, "message": "Resource not found"}


async def test_status_route_lists_the_api(sandbox: Sandbox) -> None:
    async with sandbox.session.get(sandbox.url("/status")) as resp:
        info = await resp.json()
    assert info["platform"] == "io"
    assert "/api/v1/messages/{fiscal_code}/{id}" in info["routes"]


# -- profiles -----------------------------------------------------------------------------------


async def test_profiles(sandbox: Sandbox) -> None:
    expected = {
        CF_ALLOWED: (200, {"sender_allowed": True, "preferred_languages": ["it_IT"]}),
        CF_ALLOWED_EN: (200, {"sender_allowed": True, "preferred_languages": ["en_GB", "it_IT"]}),
        SANDBOX_FISCAL_CODE: (200, {"sender_allowed": True, "preferred_languages": ["it_IT"]}),
        CF_BLOCKED: (200, {"sender_allowed": False, "preferred_languages": ["it_IT"]}),
    }
    for cf, answer in expected.items():
        status, body, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": cf})
        assert (status, body) == answer, cf
        status, body, _ = await sandbox.call("GET", f"/profiles/{cf}")
        assert (status, body) == answer, cf
    for cf in (CF_NOT_ON_IO, CF_INBOX_DISABLED):
        for method, path, payload in [
            ("POST", "/profiles", {"fiscal_code": cf}),
            ("GET", f"/profiles/{cf}", None),
        ]:
            status, body, headers = await sandbox.call(method, path, json=payload)
            assert status == 404
            assert body == {
                "detail": "The profile you requested was not found in the system.",
                "status": 404,
                "title": "Profile not found",
            }
            assert headers["Content-Type"].startswith("application/problem+json")


async def test_profile_with_an_invalid_fiscal_code(sandbox: Sandbox) -> None:
    status, body, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": "abc"})
    assert status == 400
    assert body["title"] == "Invalid FiscalCodePayload"
    assert body["detail"] == 'value ["abc"] at [root.fiscal_code] is not a valid [FiscalCode]'
    status, body, _ = await sandbox.call("POST", "/profiles", data=b"{not json")
    assert status == 400 and "at [root]" in body["detail"]
    status, body, _ = await sandbox.call("GET", "/profiles/PRVLWD80A01X001")
    assert status == 400 and body["title"] == "Invalid FiscalCode"


async def test_a_draft_service_cannot_even_ask_about_others(sandbox: Sandbox) -> None:
    # 403, not 404: a test key must not learn whether a fiscal code is on App IO
    for cf in (CF_ALLOWED, CF_NOT_ON_IO):
        status, body, _ = await sandbox.call(
            "POST", "/profiles", key=DRAFT_PRIMARY_KEY, json={"fiscal_code": cf}
        )
        assert status == 403
        assert body == {
            "detail": "You are not allowed to issue requests for the recipient.",
            "status": 403,
            "title": "Recipient forbidden",
        }
    status, body, _ = await sandbox.call(
        "POST", "/profiles", key=DRAFT_PRIMARY_KEY, json={"fiscal_code": SANDBOX_FISCAL_CODE}
    )
    assert (status, body["sender_allowed"]) == (200, True)


# -- messages -----------------------------------------------------------------------------------


async def test_submit_answers_201_with_a_ulid_and_location(sandbox: Sandbox) -> None:
    status, body, headers = await sandbox.call("POST", "/messages", json=new_message())
    assert status == 201
    assert set(body) == {"id"} and ULID_RE.match(body["id"])
    assert headers["Location"] == f"/api/v1/messages/{CF_ALLOWED}/{body['id']}"
    listed = (await sandbox.admin("GET", "messages"))["messages"]
    assert [(m["id"], m["fiscal_code"], m["service_id"], m["key"]) for m in listed] == [
        (body["id"], CF_ALLOWED, DEMO_SERVICE_ID, "primary")
    ]
    assert listed[0]["subject"] == "Promemoria scadenza TARI"


@pytest.mark.parametrize(
    ("field", "length", "ok"),
    [
        ("subject", 9, False),
        ("subject", 10, True),
        ("subject", 120, True),
        ("subject", 121, False),
        ("markdown", 79, False),
        ("markdown", 80, True),
        ("markdown", 10_000, True),
        ("markdown", 10_001, False),
    ],
)
async def test_exact_length_limits(sandbox: Sandbox, field: str, length: int, ok: bool) -> None:
    status, body, _ = await sandbox.call(
        "POST", "/messages", json=new_message(content={field: "x" * length})
    )
    if ok:
        assert status == 201
    else:
        assert status == 400
        assert body["title"] == "Invalid NewMessage"
        assert f"at [root.content.{field}] is not a valid [string of length" in body["detail"]


async def test_io_ts_detail_lists_every_problem(sandbox: Sandbox) -> None:
    bad = new_message("nope", time_to_live=60, content={"subject": "short"})
    status, body, _ = await sandbox.call("POST", "/messages", json=bad)
    assert status == 400
    lines = body["detail"].split("\n")
    assert lines == [
        'value ["nope"] at [root.fiscal_code] is not a valid [FiscalCode]',
        "value [60] at [root.time_to_live] is not a valid [TimeToLiveSeconds]",
        'value ["short"] at [root.content.subject] is not a valid '
        "[string of length >= 10 and <= 120]",
    ]
    assert (await sandbox.admin("GET", "messages"))["count"] == 0


async def test_fiscal_code_in_path_or_body_but_not_both(sandbox: Sandbox) -> None:
    status, body, headers = await sandbox.call(
        "POST", f"/messages/{CF_ALLOWED}", json=new_message(None)
    )
    assert status == 201
    assert headers["Location"] == f"/api/v1/messages/{CF_ALLOWED}/{body['id']}"
    status, body, _ = await sandbox.call("POST", f"/messages/{CF_ALLOWED}", json=new_message())
    assert (status, body["title"]) == (400, "Bad parameters")
    assert "but not in both" in body["detail"]
    status, body, _ = await sandbox.call("POST", "/messages", json=new_message(None))
    assert (status, body["title"]) == (400, "Bad parameters")


PAYMENT = {"amount": 15_000, "notice_number": "301000000000000144"}


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        (new_message(feature_level_type="ADVANCED"), "send a Premium message"),
        (
            new_message(
                content={"payment_data": {**PAYMENT, "payee": {"fiscal_code": "01234567890"}}}
            ),
            "send a payment message with payee",
        ),
        (
            new_message(
                content={
                    "third_party_data": {
                        "id": "abc",
                        "configuration_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
                    }
                }
            ),
            "send a third party message",
        ),
        (new_message(content={"eu_covid_cert": {"auth_code": "x"}}), "send an EUCovidCert message"),
    ],
)
async def test_payloads_needing_a_permission(
    make_sandbox: MakeSandbox, payload: dict[str, Any], detail: str
) -> None:
    sandbox = await make_sandbox(services=[BARE])
    status, body, _ = await sandbox.call("POST", "/messages", key=BARE_KEY, json=payload)
    assert status == 403
    assert body["title"] == "You are not allowed here"
    assert body["detail"] == f"You do not have enough permissions to {detail}"


async def test_payment_cap(make_sandbox: MakeSandbox) -> None:
    capped = SandboxService(
        "01CAPPED000000000000000000",
        "Capped",
        "cap-1",
        "cap-2",
        max_allowed_payment_amount=10_000,
        organization_fiscal_code="01234567890",
    )
    sandbox = await make_sandbox(services=[capped, BARE])
    status, body, _ = await sandbox.call(
        "POST", "/messages", key="cap-1", json=new_message(content={"payment_data": PAYMENT})
    )
    assert status == 400
    assert body == {
        "detail": "The requested amount (15000 cents) exceeds the maximum allowed for this "
        "service (10000 cents)",
        "status": 400,
        "title": "Error while sending payment metadata",
    }
    # App IO's default cap is 0: no payment at all
    status, _, _ = await sandbox.call(
        "POST",
        "/messages",
        key=BARE_KEY,
        json=new_message(content={"payment_data": {**PAYMENT, "amount": 1}}),
    )
    assert status == 400
    ok = {**PAYMENT, "amount": 10_000}
    status, body, _ = await sandbox.call(
        "POST", "/messages", key="cap-1", json=new_message(content={"payment_data": ok})
    )
    assert status == 201
    # the stored content gets the default payee (the service's organization), as App IO does
    status, answer, _ = await sandbox.call(
        "GET", f"/messages/{CF_ALLOWED}/{body['id']}", key="cap-1"
    )
    assert answer["message"]["content"]["payment_data"] == {
        **ok,
        "invalid_after_due_date": False,
        "payee": {"fiscal_code": "01234567890"},
    }


async def test_draft_service_writes_only_to_authorized_recipients(
    make_sandbox: MakeSandbox,
) -> None:
    draft = SandboxService(
        "01DRAFT0000000000000000000",
        "Draft",
        "draft-1",
        "draft-2",
        sandbox=True,
        authorized_recipients={CF_ALLOWED_EN},
    )
    sandbox = await make_sandbox(services=[draft])
    status, body, _ = await sandbox.call("POST", "/messages", key="draft-1", json=new_message())
    assert (status, body["title"]) == (403, "Recipient forbidden")
    for cf in (SANDBOX_FISCAL_CODE, CF_ALLOWED_EN):
        status, _, _ = await sandbox.call("POST", "/messages", key="draft-1", json=new_message(cf))
        assert status == 201


async def test_status_moves_from_accepted_to_processed(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock()
    sandbox = await make_sandbox(processing_delay=2.0, clock=clock)
    message_id = await sandbox.send()
    status, body, _ = await sandbox.call("GET", f"/messages/{CF_ALLOWED}/{message_id}")
    assert status == 200
    assert body["status"] == "ACCEPTED"
    assert "content" not in body["message"]  # not in the inbox yet
    assert body["message"] == {
        "id": message_id,
        "fiscal_code": CF_ALLOWED,
        "time_to_live": 3600,
        "created_at": "2026-01-01T00:00:00.000Z",
        "sender_service_id": DEMO_SERVICE_ID,
        "feature_level_type": "STANDARD",
    }
    clock.advance(2.0)
    _, body, _ = await sandbox.call("GET", f"/messages/{CF_ALLOWED}/{message_id}")
    assert body["status"] == "PROCESSED"
    assert body["message"]["content"]["subject"] == "Promemoria scadenza TARI"
    assert body["notification"] == {"webhook": "SENT"}
    assert "read_status" not in body


@pytest.mark.parametrize("cf", [CF_BLOCKED, CF_INBOX_DISABLED, CF_NOT_ON_IO])
async def test_messages_nobody_can_read_are_rejected(sandbox: Sandbox, cf: str) -> None:
    message_id = await sandbox.send(cf)
    status, body, _ = await sandbox.call("GET", f"/messages/{cf}/{message_id}")
    assert (status, body["status"]) == (200, "REJECTED")
    assert "content" not in body["message"]


async def test_advanced_messages_report_read_and_payment_status(sandbox: Sandbox) -> None:
    message_id = await sandbox.send(
        feature_level_type="ADVANCED", content={"payment_data": PAYMENT}
    )
    _, body, _ = await sandbox.call("GET", f"/messages/{CF_ALLOWED}/{message_id}")
    assert body["message"]["feature_level_type"] == "ADVANCED"
    assert body["read_status"] == "UNAVAILABLE"
    assert body["payment_status"] == "NOT_PAID"


async def test_reading_messages_of_others(sandbox: Sandbox) -> None:
    message_id = await sandbox.send(SANDBOX_FISCAL_CODE)
    status, body, _ = await sandbox.call("GET", f"/messages/{CF_ALLOWED}/{message_id}")
    assert (status, body["title"]) == (404, "Message not found")
    status, body, _ = await sandbox.call(
        "GET", f"/messages/{SANDBOX_FISCAL_CODE}/01ARZ3NDEKTSV4RRFFQ69G5FAV"
    )
    assert status == 404
    status, body, _ = await sandbox.call(
        "GET", f"/messages/{SANDBOX_FISCAL_CODE}/{message_id}", key=DRAFT_PRIMARY_KEY
    )
    assert (status, body["title"]) == (403, "You are not allowed here")


# -- rate limit ---------------------------------------------------------------------------------


async def test_rate_limit_per_subscription_with_headers(make_sandbox: MakeSandbox) -> None:
    clock = FakeClock()
    sandbox = await make_sandbox(rate_limit=5, rate_window=1.0, clock=clock)
    body = {"fiscal_code": CF_ALLOWED}
    remaining = []
    for index in range(5):
        key = DEMO_PRIMARY_KEY if index % 2 else DEMO_SECONDARY_KEY  # both keys share it
        status, _, headers = await sandbox.call("POST", "/profiles", key=key, json=body)
        assert status == 200
        assert headers["x-rate-limit-limit"] == "5"
        remaining.append(headers["x-rate-limit-remaining"])
    assert remaining == ["4", "3", "2", "1", "0"]
    clock.advance(0.4)
    status, answer, headers = await sandbox.call("POST", "/profiles", json=body)
    assert status == 429
    assert answer == {
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again in 1 seconds.",
    }
    assert headers["x-rate-limit-retry-after"] == "1"
    assert headers["x-rate-limit-remaining"] == "0"
    # another service has its own counter
    status, _, _ = await sandbox.call(
        "POST", "/profiles", key=DRAFT_PRIMARY_KEY, json={"fiscal_code": SANDBOX_FISCAL_CODE}
    )
    assert status == 200
    clock.advance(0.6)
    status, _, headers = await sandbox.call("POST", "/profiles", json=body)
    assert status == 200
    assert headers["x-rate-limit-remaining"] == "4"


async def test_default_rate_limit_is_150_calls_per_5_seconds(sandbox: Sandbox) -> None:
    async def one() -> int:
        status, _, _ = await sandbox.call("GET", f"/profiles/{CF_ALLOWED}")
        return status

    statuses = await asyncio.gather(*(one() for _ in range(151)))
    assert statuses.count(200) == 150
    assert statuses.count(429) == 1


async def test_rate_limit_zero_disables_it(make_sandbox: MakeSandbox) -> None:
    sandbox = await make_sandbox(rate_limit=0)

    async def one() -> tuple[int, Any]:
        status, _, headers = await sandbox.call("GET", f"/profiles/{CF_ALLOWED}")
        return status, headers.get("x-rate-limit-remaining")

    results = await asyncio.gather(*(one() for _ in range(200)))
    assert set(results) == {(200, None)}


# -- test-only routes ---------------------------------------------------------------------------


async def test_faults_then_recovery(sandbox: Sandbox) -> None:
    await sandbox.admin(
        "POST",
        "faults",
        {"count": 2, "status": 503, "operations": ["submitMessageforUserWithFiscalCodeInBody"]},
    )
    status, _, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_ALLOWED})
    assert status == 200  # other operations are untouched
    for _ in range(2):
        status, _, _ = await sandbox.call("POST", "/messages", json=new_message())
        assert status == 503
    assert (await sandbox.admin("GET", "messages"))["count"] == 0
    status, _, _ = await sandbox.call("POST", "/messages", json=new_message())
    assert status == 201
    assert (await sandbox.admin("GET", "faults"))["faults"] == []


async def test_fault_after_processing_loses_only_the_answer(sandbox: Sandbox) -> None:
    await sandbox.admin("POST", "faults", {"status": 500, "after_processing": True})
    status, body, _ = await sandbox.call("POST", "/messages", json=new_message())
    assert status == 500
    assert body["detail"] == "Unable to store processing message"
    assert (await sandbox.admin("GET", "messages"))["count"] == 1


async def test_hang_fault(sandbox: Sandbox) -> None:
    await sandbox.admin("POST", "faults", {"hang": 0.2, "status": 504})
    started = asyncio.get_running_loop().time()
    status, _, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_ALLOWED})
    assert status == 504
    assert asyncio.get_running_loop().time() - started >= 0.2


async def test_key_regeneration_and_reset(sandbox: Sandbox) -> None:
    keys = await sandbox.admin("PUT", f"services/{DEMO_SERVICE_ID}/keys/primary", {"key": "fresh"})
    assert keys == {"primary_key": "fresh", "secondary_key": DEMO_SECONDARY_KEY}
    status, _, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_ALLOWED})
    assert status == 401
    status, _, _ = await sandbox.call(
        "POST", "/profiles", key="fresh", json={"fiscal_code": CF_ALLOWED}
    )
    assert status == 200
    await sandbox.send(key="fresh")
    await sandbox.admin("PUT", f"citizens/{CF_ALLOWED}", {"blocks_all": True})
    _, body, _ = await sandbox.call(
        "POST", "/profiles", key="fresh", json={"fiscal_code": CF_ALLOWED}
    )
    assert body["sender_allowed"] is False
    await sandbox.admin("POST", "reset")
    assert (await sandbox.admin("GET", "messages"))["count"] == 0
    assert (await sandbox.admin("GET", "calls"))["count"] == 0
    _, body, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_ALLOWED})
    assert body["sender_allowed"] is True  # original key and population are back


async def test_citizen_routes(sandbox: Sandbox) -> None:
    await sandbox.admin("PUT", f"citizens/{CF_NOT_ON_IO}", {"preferred_languages": ["de_DE"]})
    _, body, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_NOT_ON_IO})
    assert body == {"sender_allowed": True, "preferred_languages": ["de_DE"]}
    await sandbox.admin("PUT", f"citizens/{CF_NOT_ON_IO}", {"blocked_services": [DEMO_SERVICE_ID]})
    _, body, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_NOT_ON_IO})
    assert body["sender_allowed"] is False
    await sandbox.admin("DELETE", f"citizens/{CF_NOT_ON_IO}")
    status, _, _ = await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_NOT_ON_IO})
    assert status == 404
    listed = await sandbox.admin("GET", "population?kind=blocked&limit=3")
    assert (
        CF_BLOCKED
        in (await sandbox.admin("GET", "population?kind=blocked&limit=1000"))["fiscal_codes"]
    )
    assert len(listed["fiscal_codes"]) == 3
    services = (await sandbox.admin("GET", "services"))["services"]
    assert {s["service_id"] for s in services} == {DEMO_SERVICE_ID, DEMO_DRAFT_SERVICE_ID}
    assert PERM_ADVANCED in services[0]["permissions"]


# -- the spec -----------------------------------------------------------------------------------


async def test_every_answer_validates_against_the_spec(make_sandbox: MakeSandbox) -> None:
    checker = require_spec()
    sandbox = await make_sandbox(services=[BARE, *_demo()])
    # a tour of the documented statuses: the fixture fails on any violation recorded
    await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_ALLOWED})
    await sandbox.call("POST", "/profiles", json={"fiscal_code": CF_NOT_ON_IO})
    await sandbox.call("POST", "/profiles", json={"fiscal_code": "bad"})
    await sandbox.call("GET", f"/profiles/{CF_BLOCKED}")
    message_id = await sandbox.send(
        content={"payment_data": PAYMENT, "due_date": "2026-05-01T00:00:00.000Z"}
    )
    await sandbox.call("GET", f"/messages/{CF_ALLOWED}/{message_id}")
    await sandbox.call("POST", f"/messages/{CF_ALLOWED}", json=new_message(None))
    await sandbox.call("POST", "/messages", json=new_message(content={"subject": "x"}))
    await sandbox.call(
        "POST", "/messages", key=BARE_KEY, json=new_message(content={"payment_data": PAYMENT})
    )
    await sandbox.call("GET", f"/messages/{CF_ALLOWED}/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    report = await sandbox.admin("GET", "spec-violations")
    assert report == {"enabled": True, "violations": []}
    # and the checker does catch a wrong body
    assert checker.response_errors("POST", "/profiles", 200, {"preferred_languages": []})
    assert checker.response_errors(
        "GET", "/messages/{fiscal_code}/{id}", 200, {"status": "PROCESSED"}
    )
    assert checker.request_errors(
        "POST", "/messages", {"content": {"subject": "short", "markdown": "m"}}
    )


def _demo() -> list[SandboxService]:
    from sportello.sandbox.io.app import demo_services

    return demo_services()


async def test_spec_checking_reports_what_the_spec_refuses(make_sandbox: MakeSandbox) -> None:
    require_spec()
    # a misconfigured service: its organization fiscal code becomes the default payee
    broken = SandboxService(
        "01BROKEN000000000000000000",
        "Broken",
        "broken-1",
        "broken-2",
        max_allowed_payment_amount=100_000,
        organization_fiscal_code="123",
    )
    sandbox = await make_sandbox(services=[broken])
    message_id = await sandbox.send(key="broken-1", content={"payment_data": PAYMENT})
    status, _, _ = await sandbox.call("GET", f"/messages/{CF_ALLOWED}/{message_id}", key="broken-1")
    assert status == 200  # the answer is not changed, only recorded
    report = await sandbox.admin("GET", "spec-violations")
    assert len(report["violations"]) == 1
    violation = report["violations"][0]
    assert violation["kind"] == "response"
    assert violation["path"] == "/messages/{fiscal_code}/{id}"
    assert "OrganizationFiscalCode" in violation["message"]
    await sandbox.admin("POST", "reset")  # so that the fixture's final check passes


async def test_spec_checking_covers_the_request_bodies_it_accepts(
    make_sandbox: MakeSandbox,
) -> None:
    class Refusing(SpecChecker):
        def request_errors(self, method: str, path: str, body: Any) -> list[str]:
            return [f"refused {method} {path} with subject {body['content']['subject']!r}"]

    sandbox = await make_sandbox(spec_checker=Refusing(require_spec().document))
    await sandbox.send()
    await sandbox.call("POST", "/messages", json=new_message(content={"subject": "short"}))  # 400
    report = await sandbox.admin("GET", "spec-violations")
    assert [(v["kind"], v["path"], v["message"]) for v in report["violations"]] == [
        ("request", "/messages", "refused POST /messages with subject 'Promemoria scadenza TARI'")
    ]
    await sandbox.admin("POST", "reset")
