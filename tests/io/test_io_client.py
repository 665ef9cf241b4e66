"""``IoClient`` against the App IO sandbox over real sockets.

The sandbox runs with spec checking on when ``../shared/specs/io/index.yaml`` is there, so
every request body the client sends (and every answer) is checked against the official
spec: teardown fails on any violation.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sportello.clock import FakeClock
from sportello.connectors.errors import ConnectorTimeout, ServerError
from sportello.connectors.io.client import IoClient
from sportello.connectors.io.errors import (
    InvalidPayload,
    IoRateLimited,
    MessageNotFound,
    PaymentAmountTooHigh,
    PermissionDenied,
    ProfileNotFound,
    RecipientForbidden,
    SenderNotAllowed,
    Unauthorized,
    outcome_unknown,
)
from sportello.connectors.io.models import (
    MessageContent,
    MessageStatus,
    NewMessage,
    PaymentData,
)
from sportello.connectors.retry import RetryPolicy
from sportello.sandbox.io.app import (
    DEMO_PRIMARY_KEY,
    DEMO_SECONDARY_KEY,
    DEMO_SERVICE_ID,
    DRAFT_PRIMARY_KEY,
    STATE,
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
MARKDOWN = "# Avviso\n\n" + "Il Comune ti ricorda che il pagamento della TARI scade a breve. " * 2
SUBMIT = "submitMessageforUserWithFiscalCodeInBody"
NO_RETRY = RetryPolicy(max_attempts=1)


@functools.cache
def _load_spec() -> SpecChecker:
    return SpecChecker.from_path(SPEC)


def message(fiscal_code: str = CF_ALLOWED, **extra: Any) -> NewMessage:
    content = MessageContent(subject="Promemoria scadenza TARI", markdown=MARKDOWN, **extra)
    return NewMessage(fiscal_code=fiscal_code, content=content)


class Pacer:
    def __init__(self) -> None:
        self.keys: list[str] = []

    async def __call__(self, key_name: str) -> None:
        self.keys.append(key_name)


class Env:
    """A running sandbox, a session, and helpers to build clients and query the sandbox."""

    def __init__(self, server: TestServer, session: aiohttp.ClientSession, clock: Any) -> None:
        self.server = server
        self.session = session
        self.clock = clock
        self.base_url = str(server.make_url("/api/v1"))

    def client(
        self,
        primary: Callable[[], Any] = lambda: DEMO_PRIMARY_KEY,
        secondary: Callable[[], Any] | None = lambda: DEMO_SECONDARY_KEY,
        **kwargs: Any,
    ) -> IoClient:
        kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=0.01))
        return IoClient(
            self.session, self.base_url, primary_key=primary, secondary_key=secondary, **kwargs
        )

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        url = self.server.make_url(f"/__sandbox/{path}")
        async with self.session.request(method, url, json=json) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def calls(self, operation: str | None = None) -> list[dict[str, Any]]:
        calls = (await self.admin("GET", "calls"))["calls"]
        return [c for c in calls if operation is None or c["operation"] == operation]

    async def messages(self) -> list[dict[str, Any]]:
        return list((await self.admin("GET", "messages"))["messages"])


MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[MakeEnv]:
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []
    checker = _load_spec() if SPEC.exists() else None

    async def make(**kwargs: Any) -> Env:
        kwargs.setdefault("spec_checker", checker)
        server = TestServer(create_app(**kwargs))
        await server.start_server()
        session = aiohttp.ClientSession()
        started.append((server, session))
        return Env(server, session, kwargs.get("clock"))

    yield make
    for server, session in started:
        violations: list[Any] = []
        if checker is not None:
            async with session.get(server.make_url("/__sandbox/spec-violations")) as resp:
                violations = (await resp.json())["violations"]
        await session.close()
        await server.close()
        assert violations == [], violations


@pytest.fixture
async def env(make_env: MakeEnv) -> Env:
    return await make_env()


# -- profiles -------------------------------------------------------------------------------


async def test_profiles(env: Env) -> None:
    client = env.client()
    allowed = await client.get_profile(CF_ALLOWED)
    assert allowed.sender_allowed is True
    assert allowed.preferred_languages == ["it_IT"]
    assert (await client.get_profile(CF_ALLOWED_EN)).preferred_languages == ["en_GB", "it_IT"]
    assert (await client.get_profile(CF_BLOCKED)).sender_allowed is False
    assert (await client.get_profile_by_path(CF_BLOCKED)).sender_allowed is False
    for cf in (CF_NOT_ON_IO, CF_INBOX_DISABLED):
        with pytest.raises(ProfileNotFound) as info:
            await client.get_profile(cf)
        assert info.value.status == 404
        assert info.value.retryable is False
        assert cf not in str(info.value)
    with pytest.raises(ProfileNotFound):
        await client.get_profile_by_path(CF_NOT_ON_IO)


async def test_an_invalid_fiscal_code_is_refused_before_any_call(env: Env) -> None:
    client = env.client()
    with pytest.raises(InvalidPayload) as info:
        await client.get_profile("prvlwd80a01x001g")
    assert str(info.value).startswith("[io] fiscal_code: is not a valid fiscal code")
    assert "prvlwd80a01x001g" not in str(info.value)
    with pytest.raises(InvalidPayload, match="message_id"):
        await client.get_message(CF_ALLOWED, "../profiles")
    assert await env.calls() == []


async def test_draft_service_gets_recipient_forbidden(env: Env) -> None:
    client = env.client(lambda: DRAFT_PRIMARY_KEY, None)
    with pytest.raises(RecipientForbidden):
        await client.get_profile(CF_ALLOWED)
    with pytest.raises(RecipientForbidden):
        await client.submit_message(message())
    assert (await client.get_profile(SANDBOX_FISCAL_CODE)).sender_allowed
    assert await client.send_if_allowed(message(SANDBOX_FISCAL_CODE))


# -- sending --------------------------------------------------------------------------------


async def test_send_and_poll_until_processed(make_env: MakeEnv) -> None:
    clock = FakeClock()
    env = await make_env(processing_delay=30.0, clock=clock)
    client = env.client()
    due = clock.now()
    sent = message(
        due_date=due,
        payment_data=PaymentData(amount=4_250, notice_number="301000000000000144"),
    )
    message_id = await client.send_if_allowed(sent)
    first = await client.get_message(CF_ALLOWED, message_id)
    assert first.status is MessageStatus.ACCEPTED
    assert not first.is_final
    assert first.message.id == message_id
    assert first.message.sender_service_id == DEMO_SERVICE_ID
    assert first.message.content is None
    clock.advance(30.0)
    done = await client.get_message(CF_ALLOWED, message_id)
    assert done.status is MessageStatus.PROCESSED
    assert done.is_final
    assert done.message.content is not None
    assert done.message.content.subject == "Promemoria scadenza TARI"
    payment = done.message.content.payment_data
    assert payment is not None and payment.amount == 4_250
    assert payment.payee == {"fiscal_code": "00000000001"}  # filled in by App IO
    assert done.message.content.due_date == due
    recorded = await env.messages()
    assert [(m["id"], m["fiscal_code"], m["key"]) for m in recorded] == [
        (message_id, CF_ALLOWED, "primary")
    ]


async def test_polling_in_real_time(make_env: MakeEnv) -> None:
    env = await make_env(processing_delay=0.15)
    client = env.client()
    message_id = await client.submit_message(message())
    seen = []
    while True:
        answer = await client.get_message(CF_ALLOWED, message_id)
        seen.append(answer.status)
        if answer.is_final:
            break
        await asyncio.sleep(0.05)
    assert seen[0] is MessageStatus.ACCEPTED
    assert seen[-1] is MessageStatus.PROCESSED


async def test_a_message_to_a_blocked_citizen_is_rejected(env: Env) -> None:
    client = env.client()
    message_id = await client.submit_message(message(CF_BLOCKED))  # skipping the profile check
    answer = await client.get_message(CF_BLOCKED, message_id)
    assert answer.status is MessageStatus.REJECTED
    assert answer.is_final


async def test_send_if_allowed_sends_nothing_to_who_cannot_read(env: Env) -> None:
    client = env.client()
    with pytest.raises(SenderNotAllowed) as info:
        await client.send_if_allowed(message(CF_BLOCKED))
    assert info.value.retryable is False
    assert CF_BLOCKED not in str(info.value)
    with pytest.raises(ProfileNotFound):
        await client.send_if_allowed(message(CF_NOT_ON_IO))
    with pytest.raises(ProfileNotFound):
        await client.send_if_allowed(message(CF_INBOX_DISABLED))
    assert await env.messages() == []
    assert await env.calls(SUBMIT) == []


async def test_unknown_message(env: Env) -> None:
    with pytest.raises(MessageNotFound):
        await env.client().get_message(CF_ALLOWED, "01ARZ3NDEKTSV4RRFFQ69G5FAV")


async def test_payloads_refused_by_app_io(make_env: MakeEnv) -> None:
    bare = SandboxService("01BARE00000000000000000000", "Bare", "bare-1", "bare-2")
    env = await make_env(services=[bare])
    client = env.client(lambda: "bare-1", lambda: "bare-2")
    advanced = NewMessage(
        fiscal_code=CF_ALLOWED,
        content=MessageContent(subject="Promemoria scadenza TARI", markdown=MARKDOWN),
        feature_level_type="ADVANCED",  # type: ignore[arg-type]
    )
    with pytest.raises(PermissionDenied) as denied:
        await client.submit_message(advanced)
    assert "Premium" in str(denied.value)
    payment = PaymentData(amount=100, notice_number="301000000000000144")
    with pytest.raises(PaymentAmountTooHigh) as too_high:
        await client.submit_message(message(payment_data=payment))
    assert "exceeds the maximum allowed" in str(too_high.value)
    # a payload that skipped the model's validation: App IO's 400 names the field
    unchecked = NewMessage.model_construct(
        fiscal_code=CF_ALLOWED,
        content=MessageContent.model_construct(subject="short", markdown=MARKDOWN),
    )
    with pytest.raises(InvalidPayload) as invalid:
        await client.submit_message(unchecked)
    assert "root.content.subject" in str(invalid.value)
    assert "short" not in str(invalid.value)  # the echoed value is redacted
    assert await env.messages() == []


# -- keys -----------------------------------------------------------------------------------


async def test_key_rotation_without_a_failed_call(env: Env) -> None:
    pacer = Pacer()
    client = env.client(pacer=pacer)
    assert client.active_key == "primary"
    await client.get_profile(CF_ALLOWED)
    # the primary key is regenerated in App IO before the hub's configuration knows it
    await env.admin("PUT", f"services/{DEMO_SERVICE_ID}/keys/primary", {"key": "rotated"})
    message_id = await client.send_if_allowed(message())
    assert client.active_key == "secondary"
    await client.get_message(CF_ALLOWED, message_id)
    calls = await env.calls()
    assert [(c["operation"], c["status"], c["key"]) for c in calls] == [
        ("getProfileByPOST", 200, "primary"),
        ("getProfileByPOST", 401, None),
        ("getProfileByPOST", 200, "secondary"),
        (SUBMIT, 201, "secondary"),
        ("getMessage", 200, "secondary"),
    ]
    assert pacer.keys == ["primary", "primary", "secondary", "secondary", "secondary"]
    assert [m["key"] for m in await env.messages()] == ["secondary"]


async def test_rotation_back_to_a_refreshed_primary(env: Env) -> None:
    keys = {"primary": DEMO_PRIMARY_KEY}

    async def primary() -> str:  # an async provider reading the current configuration
        return keys["primary"]

    client = env.client(primary)
    await env.admin("PUT", f"services/{DEMO_SERVICE_ID}/keys/primary", {"key": "new-primary"})
    await client.get_profile(CF_ALLOWED)
    assert client.active_key == "secondary"
    keys["primary"] = "new-primary"  # configuration updated with the new primary
    await env.admin("PUT", f"services/{DEMO_SERVICE_ID}/keys/secondary", {"key": "new-secondary"})
    await client.get_profile(CF_ALLOWED)
    assert client.active_key == "primary"


async def test_wrong_keys_raise_unauthorized(env: Env) -> None:
    both_wrong = env.client(lambda: "wrong-1", lambda: "wrong-2")
    with pytest.raises(Unauthorized) as info:
        await both_wrong.submit_message(message())
    assert info.value.status == 401
    assert info.value.retryable is False
    assert both_wrong.active_key == "primary"
    only_primary = env.client(lambda: "wrong-1", None)
    with pytest.raises(Unauthorized):
        await only_primary.get_profile(CF_ALLOWED)
    assert [c["status"] for c in await env.calls()] == [401, 401, 401]
    assert await env.messages() == []


async def test_no_key_or_fiscal_code_in_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    client = env.client(lambda: "wrong-primary")
    message_id = await client.send_if_allowed(message())
    await client.get_message(CF_ALLOWED, message_id)
    with pytest.raises(ProfileNotFound):
        await client.get_profile(CF_NOT_ON_IO)
    # the sandbox's own access log is not the client's business: only the hub's loggers
    text = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("sportello"))
    assert "retrying with the secondary key" in text
    for secret in ("wrong-primary", DEMO_SECONDARY_KEY, CF_ALLOWED, CF_NOT_ON_IO):
        assert secret not in text


# -- rate limit and pacing ---------------------------------------------------------------------


async def test_429_carries_retry_after(make_env: MakeEnv) -> None:
    env = await make_env(rate_limit=5, rate_window=1.0, clock=FakeClock())
    client = env.client(retry=NO_RETRY)
    for _ in range(5):
        await client.get_profile(CF_ALLOWED)
    with pytest.raises(IoRateLimited) as info:
        await client.get_profile(CF_ALLOWED)
    assert info.value.status == 429
    assert info.value.retryable is True
    assert info.value.retry_after == 1.0
    with pytest.raises(IoRateLimited):
        await client.submit_message(message())
    assert await env.messages() == []


async def test_reads_wait_and_retry_after_a_429(make_env: MakeEnv) -> None:
    clock = FakeClock()
    env = await make_env(rate_limit=5, rate_window=1.0, clock=clock)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:  # the client's backoff moves the sandbox's time
        waits.append(seconds)
        clock.advance(seconds)

    pacer = Pacer()
    client = env.client(pacer=pacer, sleep=sleep, retry=RetryPolicy(max_attempts=3))
    profiles = [await client.get_profile(CF_ALLOWED) for _ in range(7)]
    assert all(p.sender_allowed for p in profiles)
    assert waits and all(w >= 1.0 for w in waits)  # never shorter than x-rate-limit-retry-after
    statuses = [c["status"] for c in await env.calls()]
    assert statuses.count(429) == len(waits)
    assert len(pacer.keys) == len(statuses)


async def test_150_calls_in_5_seconds_then_429(env: Env) -> None:
    client = env.client(retry=NO_RETRY)
    results = await asyncio.gather(
        *(client.get_profile(CF_ALLOWED) for _ in range(151)), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], IoRateLimited)
    assert errors[0].retry_after is not None and 1.0 <= errors[0].retry_after <= 5.0


async def test_pacer_is_awaited_before_every_call(make_env: MakeEnv) -> None:
    env = await make_env(rate_limit=0)
    state = env.server.app[STATE]
    seen: list[tuple[str, int]] = []

    async def pacer(key_name: str) -> None:  # notes how many calls the sandbox had seen
        seen.append((key_name, len(state.calls)))
        await asyncio.sleep(0)

    client = env.client(pacer=pacer)
    await env.admin("POST", "faults", {"count": 1, "status": 503, "operations": ["getMessage"]})
    message_id = await client.send_if_allowed(message())
    await client.get_message(CF_ALLOWED, message_id)  # 503, then retried
    calls = await env.calls()
    assert [c["status"] for c in calls] == [200, 201, 503, 200]
    assert seen == [("primary", 0), ("primary", 1), ("primary", 2), ("primary", 3)]


# -- no automatic resend of a message ---------------------------------------------------------


async def test_submit_is_not_retried_on_a_503(env: Env) -> None:
    await env.admin("POST", "faults", {"count": 3, "status": 503, "operations": [SUBMIT]})
    client = env.client(retry=RetryPolicy(max_attempts=5, base_delay=0.001))
    with pytest.raises(ServerError) as info:
        await client.submit_message(message())
    assert info.value.status == 503
    assert info.value.attempts == 1
    assert outcome_unknown(info.value)
    assert len(await env.calls(SUBMIT)) == 1
    # reads with the same client do retry
    await env.admin(
        "POST", "faults", {"count": 1, "status": 503, "operations": ["getProfileByPOST"]}
    )
    assert (await client.get_profile(CF_ALLOWED)).sender_allowed
    assert len(await env.calls("getProfileByPOST")) == 2


async def test_a_lost_answer_leaves_exactly_one_message(env: Env) -> None:
    await env.admin(
        "POST", "faults", {"status": 500, "after_processing": True, "operations": [SUBMIT]}
    )
    client = env.client(retry=RetryPolicy(max_attempts=5, base_delay=0.001))
    with pytest.raises(ServerError) as info:
        await client.submit_message(message())
    assert outcome_unknown(info.value)
    assert len(await env.messages()) == 1  # App IO has it; the client did not send it again
    assert len(await env.calls(SUBMIT)) == 1


async def test_submit_timeout_is_not_retried(env: Env) -> None:
    await env.admin(
        "POST", "faults", {"hang": 2.0, "after_processing": True, "operations": [SUBMIT]}
    )
    client = env.client(timeout=0.2, retry=RetryPolicy(max_attempts=5, base_delay=0.001))
    with pytest.raises(ConnectorTimeout) as info:
        await client.submit_message(message())
    assert outcome_unknown(info.value)
    assert info.value.attempts == 1
    # the message exists (the fault hit after processing); a resend would have made two
    assert len(await env.messages()) == 1


async def test_connection_refused_is_a_known_outcome() -> None:
    async with aiohttp.ClientSession() as session:
        client = IoClient(session, "http://127.0.0.1:9/api/v1", primary_key=lambda: "k", timeout=2)
        with pytest.raises(Exception) as info:
            await client.submit_message(message())
    assert not outcome_unknown(info.value)  # nothing reached App IO: safe to send again


async def test_take_slot_paces_once_ahead_of_the_next_call(env: Env) -> None:
    """``take_slot`` waits for the pacer now; the next call goes without waiting again, the
    one after it waits as usual."""
    pacer = Pacer()
    client = env.client(pacer=pacer)
    await client.take_slot()
    assert pacer.keys == ["primary"]
    await client.submit_message(message())
    assert pacer.keys == ["primary"]  # the slot taken ahead was used
    await client.get_profile(CF_ALLOWED)
    assert pacer.keys == ["primary", "primary"]
    assert [c["operation"] for c in await env.calls()] == [SUBMIT, "getProfileByPOST"]
