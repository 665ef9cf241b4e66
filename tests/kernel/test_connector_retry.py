"""Retry policy, Retry-After parsing and the error tree of the connector base."""

from __future__ import annotations

import pickle
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from sportello.connectors.errors import (
    AuthError,
    BadRequest,
    ClientRequestError,
    Conflict,
    ConnectorError,
    ConnectorTimeout,
    NotFound,
    PermanentError,
    ProtocolError,
    RateLimited,
    ServerError,
    SigningError,
    TransportError,
    Unprocessable,
    UpstreamError,
    error_from_response,
)
from sportello.connectors.retry import RetryPolicy, build_retrying, parse_retry_after

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# --- parse_retry_after -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": " 7 "}, 7.0),
        ({"RETRY-AFTER": "1.5"}, 1.5),
        ({"Retry-After": "0"}, 0.0),
        ({"Retry-After": "-3"}, 0.0),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": "Sat, 01 Mar 2025 12:01:00 GMT"}, 60.0),
        ({"Retry-After": "Saturday, 01-Mar-25 12:00:10 GMT"}, 10.0),  # RFC 850
        ({"Retry-After": "Sat Mar  1 12:00:05 2025"}, 5.0),  # asctime
        ({"Retry-After": "Sat, 01 Mar 2025 11:00:00 GMT"}, 0.0),  # in the past
        ({"x-rate-limit-retry-after": "9"}, 9.0),
        ({"X-Rate-Limit-Retry-After": "4"}, 4.0),
        ({"RateLimit-Reset": "30"}, 30.0),
        ({"X-RateLimit-Reset": "12"}, 12.0),
        ({"X-RateLimit-Reset": str(int(NOW.timestamp()) + 45)}, 45.0),  # Unix epoch
        ({"ratelimit-reset": str(int(NOW.timestamp()) - 45)}, 0.0),  # epoch in the past
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"X-RateLimit-Reset": "tomorrow"}, None),
        ({}, None),
        ({"Content-Type": "application/json"}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_precedence_and_fallback() -> None:
    both = {"X-RateLimit-Reset": "50", "x-rate-limit-retry-after": "20", "Retry-After": "3"}
    assert parse_retry_after(both, now=NOW) == 3.0
    # Garbage in Retry-After does not hide a usable header after it.
    assert parse_retry_after({"Retry-After": "later", "RateLimit-Reset": "8"}, now=NOW) == 8.0


def test_parse_retry_after_multidict_and_naive_now() -> None:
    headers = CIMultiDict([("Retry-After", "Sat, 01 Mar 2025 12:00:20 GMT")])
    assert parse_retry_after(headers, now=NOW.replace(tzinfo=None)) == 20.0


def test_parse_retry_after_default_now_uses_clock() -> None:
    soon = datetime.now(UTC) + timedelta(seconds=100)
    delay = parse_retry_after({"Retry-After": format_datetime(soon, usegmt=True)})
    assert delay is not None and 95.0 <= delay <= 100.0


# --- compute_delay -----------------------------------------------------------------------


@given(
    attempt=st.integers(min_value=1, max_value=2_000),
    base_delay=st.floats(min_value=0.0, max_value=10.0),
    max_delay=st.floats(min_value=0.0, max_value=120.0),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=60.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_compute_delay_bounds(
    attempt: int, base_delay: float, max_delay: float, retry_after: float | None, seed: int
) -> None:
    policy = RetryPolicy(base_delay=base_delay, max_delay=max_delay, rng=random.Random(seed))
    cap = min(max_delay, base_delay * 2.0 ** min(attempt - 1, 62))
    error = ServerError("x", retry_after=retry_after) if retry_after is not None else None
    delay = policy.compute_delay(attempt, error)
    backoff = RetryPolicy(
        base_delay=base_delay, max_delay=max_delay, rng=random.Random(seed)
    ).compute_delay(attempt, None)
    assert 0.5 * cap <= backoff <= cap
    if retry_after is None:
        assert delay == backoff
    else:
        assert delay >= retry_after
        assert delay == max(backoff, retry_after)


def test_compute_delay_values() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, rng=random.Random(1))
    assert [policy.backoff_cap(n) for n in (0, 1, 2, 3, 4, 10, 10_000)] == [
        1.0,
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
        5.0,
    ]
    assert policy.compute_delay(1, RateLimited("slow down", retry_after=30.0)) == 30.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_delay": -1.0}, {"deadline": 0.0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


# --- build_retrying stop rules -----------------------------------------------------------


class Flaky:
    """Raises the queued errors in order, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_retries_until_success_with_policy_delays() -> None:
    sleep = SleepRecorder()
    policy = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=10.0, rng=random.Random(7))
    fn = Flaky(ServerError("a", status=503), TransportError("b"))
    assert await build_retrying(policy, sleep=sleep)(fn) == "ok"
    assert fn.calls == 3
    twin = RetryPolicy(base_delay=0.5, max_delay=10.0, rng=random.Random(7))
    assert sleep.delays == [twin.compute_delay(1, None), twin.compute_delay(2, None)]
    assert 0.25 <= sleep.delays[0] <= 0.5 and 0.5 <= sleep.delays[1] <= 1.0


async def test_stops_after_max_attempts_and_reraises_last_error() -> None:
    sleep = SleepRecorder()
    errors = [ServerError(f"e{n}", status=502) for n in range(5)]
    fn = Flaky(*errors)
    with pytest.raises(ServerError) as info:
        await build_retrying(RetryPolicy(max_attempts=3), sleep=sleep)(fn)
    assert info.value is errors[2]
    assert fn.calls == 3 and len(sleep.delays) == 2


@pytest.mark.parametrize(
    "error",
    [
        BadRequest("bad", status=400),
        ServerError("not implemented", status=501),
        PermanentError("give up"),
        ProtocolError("garbled"),
        SigningError("no key"),
        ValueError("not a connector error"),
        RateLimited("come back tomorrow", status=429, retry_after=3600.0),
    ],
)
async def test_not_retried(error: BaseException) -> None:
    sleep = SleepRecorder()
    fn = Flaky(error)
    with pytest.raises(type(error)) as info:
        await build_retrying(RetryPolicy(max_attempts=5), sleep=sleep)(fn)
    assert info.value is error
    assert fn.calls == 1 and sleep.delays == []


async def test_retry_after_at_the_limit_is_waited() -> None:
    sleep = SleepRecorder()
    fn = Flaky(RateLimited("wait", status=429, retry_after=60.0))
    assert await build_retrying(RetryPolicy(max_retry_after=60.0), sleep=sleep)(fn) == "ok"
    assert sleep.delays == [60.0]


async def test_deadline_stops_before_a_wait_that_would_pass_it() -> None:
    sleep = SleepRecorder()
    fn = Flaky(RateLimited("wait", status=429, retry_after=5.0), ServerError("x", status=500))
    with pytest.raises(RateLimited):
        await build_retrying(RetryPolicy(deadline=2.0), sleep=sleep)(fn)
    assert fn.calls == 1 and sleep.delays == []


async def test_deadline_allows_short_waits() -> None:
    sleep = SleepRecorder()
    fn = Flaky(ServerError("x", status=500, retry_after=0.5))
    policy = RetryPolicy(deadline=2.0, base_delay=0.1, rng=random.Random(0))
    assert await build_retrying(policy, sleep=sleep)(fn) == "ok"
    assert sleep.delays == [0.5]


# --- error tree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequest, False),
        (401, AuthError, False),
        (403, AuthError, False),
        (404, NotFound, False),
        (409, Conflict, False),
        (410, ClientRequestError, False),
        (422, Unprocessable, False),
        (429, RateLimited, True),
        (500, ServerError, True),
        (501, ServerError, False),
        (502, ServerError, True),
        (503, ServerError, True),
        (504, ServerError, True),
        (200, UpstreamError, False),
        (302, UpstreamError, False),
    ],
)
def test_error_from_response_classes(status: int, cls: type, retryable: bool) -> None:
    error = error_from_response("gpd", status, {}, b"")
    assert type(error) is cls
    assert error.retryable is retryable
    assert error.status == status and error.platform == "gpd"
    assert error.body is None and error.request_id is None and error.retry_after is None
    assert error.message == f"unexpected HTTP status {status}"


def test_error_hierarchy() -> None:
    assert issubclass(ConnectorTimeout, TransportError)
    assert issubclass(TransportError, ConnectorError)
    for cls in (BadRequest, AuthError, NotFound, Conflict, Unprocessable):
        assert issubclass(cls, ClientRequestError) and issubclass(cls, UpstreamError)
    assert issubclass(RateLimited, UpstreamError) and issubclass(ServerError, UpstreamError)
    assert ConnectorTimeout("t").retryable is True
    assert PermanentError("p", retryable=True).retryable is False


def test_error_from_response_details() -> None:
    problem = b'{"title":"Conflict","status":409,"detail":"Debt position already exists"}'
    error = error_from_response(
        "gpd", 409, CIMultiDict({"GovWay-Transaction-ID": "gw-77"}), problem
    )
    assert isinstance(error, Conflict)
    assert error.message == "Debt position already exists"
    assert error.request_id == "gw-77"
    assert error.body == problem.decode()
    assert str(error) == "[gpd] HTTP 409: Debt position already exists (request-id: gw-77)"


@pytest.mark.parametrize(
    "header",
    ["x-request-id", "X-Correlation-ID", "govway-transaction-id", "x-amzn-RequestId"],
)
def test_request_id_headers(header: str) -> None:
    error = error_from_response("io", 500, {header: "rid-1"}, b"oops")
    assert error.request_id == "rid-1"
    assert error.message == "unexpected HTTP status 500"
    assert error.body == "oops"


def test_rate_limited_retry_after_and_truncated_body() -> None:
    body = ("é" * 3000).encode()
    error = error_from_response("io", 429, {"x-rate-limit-retry-after": "12"}, body)
    assert isinstance(error, RateLimited) and error.retry_after == 12.0
    assert error.body == "é" * 2000
    assert "é" not in str(error)
    assert ConnectorError("m", body="x" * 5000).body == "x" * 2000


def test_str_without_optional_parts() -> None:
    assert str(TransportError("connection refused")) == "connection refused"
    assert str(TransportError("reset", platform="anpr")) == "[anpr] reset"


def test_error_pickles_with_its_attributes() -> None:
    error = RateLimited(
        "slow", platform="io", status=429, retry_after=3.0, request_id="r", body="b"
    )
    error.attempts = 2
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimited
    assert (copy.message, copy.platform, copy.status, copy.retry_after) == ("slow", "io", 429, 3.0)
    assert (copy.request_id, copy.body, copy.attempts, copy.retryable) == ("r", "b", 2, True)
    assert str(copy) == str(error)


async def test_an_error_whose_retries_are_spent_is_not_retried_again() -> None:
    # A PDND 500 that PdndClient already retried, met again while signing an ANPR attempt:
    # retrying the ANPR call would run PDND's whole retry loop once more (issue 12 item 13).
    spent = ServerError("pdnd down", platform="pdnd", status=500)
    spent.retries_spent = True
    sleep = SleepRecorder()
    fn = Flaky(spent)
    with pytest.raises(ServerError) as info:
        await build_retrying(RetryPolicy(max_attempts=4), sleep=sleep)(fn)
    assert info.value is spent and fn.calls == 1 and sleep.delays == []
    assert spent.retryable  # later (the outbox) it is still worth another try
    assert RetryPolicy().should_retry(ServerError("fresh", status=500))
    copy = pickle.loads(pickle.dumps(spent))
    assert copy.retries_spent is True
