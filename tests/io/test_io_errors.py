"""App IO error mapping, the sandbox's population and its io-ts style payload checks."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sportello.connectors.errors import (
    AuthError,
    BadRequest,
    ConnectError,
    ConnectorTimeout,
    NotFound,
    PermanentError,
    RateLimited,
    ServerError,
    TransportError,
    UpstreamError,
    error_from_response,
)
from sportello.connectors.http1 import ConnectionDropped
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
    map_io_error,
    outcome_unknown,
    redact_detail,
)
from sportello.connectors.io.models import FISCAL_CODE_PATTERN
from sportello.sandbox.io.population import (
    CF_ALLOWED,
    CF_BLOCKED,
    CF_BLOCKS_ALL,
    CF_INBOX_DISABLED,
    CF_NOT_ON_IO,
    SANDBOX_FISCAL_CODE,
    Population,
    default_population,
    fiscal_code_check_char,
    make_fiscal_code,
)
from sportello.sandbox.io.validation import check_fiscal_code_payload, check_new_message

CF = "PRVLWD80A01X001G"


def upstream(status: int, body: Any, headers: dict[str, str] | None = None) -> UpstreamError:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return error_from_response("io", status, headers or {}, raw)


def problem(status: int, title: str, detail: str) -> dict[str, Any]:
    return {"detail": detail, "status": status, "title": title}


IO_TS_DETAIL = (
    f'value ["{CF[:-1]}"] at [root.fiscal_code] is not a valid [FiscalCode]\n'
    'value ["short"] at [root.content.subject] is not a valid '
    "[string of length >= 10 and <= 120]"
)


@pytest.mark.parametrize(
    ("status", "body", "operation", "cls", "base"),
    [
        (
            400,
            problem(400, "Invalid NewMessage", IO_TS_DETAIL),
            "submit",
            InvalidPayload,
            BadRequest,
        ),
        (
            400,
            problem(
                400,
                "Error while sending payment metadata",
                "The requested amount (150 cents) exceeds the maximum allowed for this service "
                "(100 cents)",
            ),
            "submit",
            PaymentAmountTooHigh,
            BadRequest,
        ),
        (
            401,
            {"statusCode": 401, "message": "Access denied due to invalid subscription key."},
            "profile",
            Unauthorized,
            AuthError,
        ),
        (
            403,
            problem(
                403,
                "Recipient forbidden",
                "You are not allowed to issue requests for the recipient.",
            ),
            "submit",
            RecipientForbidden,
            AuthError,
        ),
        (
            403,
            problem(
                403,
                "You are not allowed here",
                "You do not have enough permissions to send a Premium message",
            ),
            "submit",
            PermissionDenied,
            AuthError,
        ),
        (
            403,
            problem(
                403,
                "Production call forbidden",
                "You are not allowed to issue production calls at this time.",
            ),
            "submit",
            PermissionDenied,
            AuthError,
        ),
        (
            404,
            problem(
                404, "Profile not found", "The profile you requested was not found in the system."
            ),
            "profile",
            ProfileNotFound,
            NotFound,
        ),
        (
            404,
            problem(
                404,
                "Message not found",
                "The message that you requested was not found in the system.",
            ),
            "message",
            MessageNotFound,
            NotFound,
        ),
    ],
)
def test_documented_answers_map_to_io_errors(
    status: int, body: Any, operation: str, cls: type[Exception], base: type[Exception]
) -> None:
    original = upstream(status, body)
    original.attempts = 2
    mapped = map_io_error(original, operation=operation)
    assert type(mapped) is cls
    assert isinstance(mapped, base)
    assert mapped.status == status
    assert mapped.platform == "io"
    assert mapped.attempts == 2
    assert mapped.retryable is False
    assert mapped.body == original.body


def test_invalid_payload_message_names_fields_but_not_values() -> None:
    mapped = map_io_error(
        upstream(400, problem(400, "Invalid NewMessage", IO_TS_DETAIL)), operation="submit"
    )
    text = str(mapped)
    assert "root.fiscal_code" in text and "root.content.subject" in text
    assert CF[:-1] not in text and "short" not in text
    assert "\n" not in text


def test_redact_detail() -> None:
    detail = 'value [{"a":["x]"]}] at [root.content] is not a valid [MessageContent]'
    assert redact_detail(detail) == "value [...] at [root.content] is not a valid [MessageContent]"


def test_rate_limited_keeps_retry_after_from_the_io_header() -> None:
    original = upstream(
        429,
        {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 3 seconds."},
        {"x-rate-limit-retry-after": "3", "x-rate-limit-remaining": "0"},
    )
    mapped = map_io_error(original, operation="profile")
    assert isinstance(mapped, IoRateLimited) and isinstance(mapped, RateLimited)
    assert mapped.retryable is True
    assert mapped.retry_after == 3.0


def test_gateway_404_is_not_a_missing_profile() -> None:
    # an unknown route (wrong base URL) must not look like "this citizen is not on IO"
    mapped = map_io_error(
        upstream(404, {"statusCode": 404, "message": "Resource not found"}), operation="profile"
    )
    assert type(mapped) is NotFound


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_stay_retryable_server_errors(status: int) -> None:
    original = upstream(
        status, problem(status, "Internal server error", "Unable to store processing message")
    )
    mapped = map_io_error(original, operation="submit")
    assert mapped is original
    assert isinstance(mapped, ServerError) and mapped.retryable


def test_sender_not_allowed_is_permanent() -> None:
    error = SenderNotAllowed("no", platform="io")
    assert isinstance(error, PermanentError)
    assert error.retryable is False


def _with_cause(error: TransportError, cause: BaseException) -> TransportError:
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "unknown"),
    [
        (ConnectorTimeout("timeout"), True),
        (ServerError("boom", status=503), True),
        (_with_cause(TransportError("reset"), aiohttp.ServerDisconnectedError()), True),
        # BaseConnector raises ConnectError when the connection could not be opened (aiohttp
        # and the lean transport alike): nothing reached App IO
        (ConnectError("refused"), False),
        (_with_cause(TransportError("dropped"), ConnectionDropped("closed")), True),
        (Unauthorized("no", status=401), False),
        (IoRateLimited("slow down", status=429), False),
        (InvalidPayload("bad", status=400), False),
    ],
)
def test_outcome_unknown(error: Exception, unknown: bool) -> None:
    assert outcome_unknown(error) is unknown


# -- population ----------------------------------------------------------------------------

_CF_RE = re.compile(FISCAL_CODE_PATTERN)


@pytest.mark.parametrize("fiscal_code", ["RSSMRA85T10A562S", "MRTMTT91D08F205J"])
def test_check_char_of_known_fiscal_codes(fiscal_code: str) -> None:
    assert fiscal_code_check_char(fiscal_code[:15]) == fiscal_code[15]


def test_generated_population_is_deterministic_and_well_formed() -> None:
    first, second = Population.generate(seed=7), Population.generate(seed=7)
    assert [c.fiscal_code for c in first] == [c.fiscal_code for c in second]
    assert first.not_on_io == second.not_on_io
    assert [c.fiscal_code for c in Population.generate(seed=8)] != [c.fiscal_code for c in first]
    codes = [c.fiscal_code for c in first] + first.not_on_io
    assert len(codes) == len(set(codes)) == 200
    for code in codes:
        assert _CF_RE.match(code)
        assert code[11] == "X"  # no real comune or country has an X place code
        assert fiscal_code_check_char(code[:15]) == code[15]
    for kind in ("allowed", "blocked", "inbox_disabled", "not_on_io"):
        assert first.by_kind(kind), kind


def test_well_known_citizens() -> None:
    population = default_population(blocked_service_ids=["svc"])
    assert population.get(SANDBOX_FISCAL_CODE) is not None
    for code in (CF_ALLOWED, CF_BLOCKED, CF_BLOCKS_ALL, CF_INBOX_DISABLED, CF_NOT_ON_IO):
        assert _CF_RE.match(code)
    assert population.get(CF_ALLOWED).sender_allowed("svc")  # type: ignore[union-attr]
    assert not population.get(CF_BLOCKED).sender_allowed("svc")  # type: ignore[union-attr]
    assert population.get(CF_BLOCKED).sender_allowed("other")  # type: ignore[union-attr]
    assert not population.get(CF_BLOCKS_ALL).sender_allowed("other")  # type: ignore[union-attr]
    assert not population.get(CF_INBOX_DISABLED).inbox_enabled  # type: ignore[union-attr]
    assert population.get(CF_NOT_ON_IO) is None
    assert CF_NOT_ON_IO in population.not_on_io


def test_make_fiscal_code_female_day() -> None:
    code = make_fiscal_code("PRV", "DNN", 1990, 2, 5, "X010", female=True)
    assert code[9:11] == "45" and code[8] == "B"


# -- sandbox payload checks (io-ts style) -----------------------------------------------------

MARKDOWN = "m" * 80


def test_io_ts_lines_name_the_path_and_the_type() -> None:
    problems = check_new_message(
        {"fiscal_code": "X", "content": {"subject": "s" * 9, "markdown": MARKDOWN}}
    )
    assert problems == [
        'value ["X"] at [root.fiscal_code] is not a valid [FiscalCode]',
        'value ["sssssssss"] at [root.content.subject] is not a valid '
        "[string of length >= 10 and <= 120]",
    ]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (None, "root"),
        ([], "root"),
        ({"fiscal_code": CF}, "root.content"),
        ({"content": {"subject": "s" * 10}}, "root.content.markdown"),
        ({"content": {"subject": "s" * 10, "markdown": "m" * 10_001}}, "root.content.markdown"),
        (
            {"content": {"subject": "s" * 10, "markdown": MARKDOWN}, "time_to_live": 3599},
            "root.time_to_live",
        ),
        (
            {"content": {"subject": "s" * 10, "markdown": MARKDOWN}, "time_to_live": 3600.5},
            "root.time_to_live",
        ),
        (
            {"content": {"subject": "s" * 10, "markdown": MARKDOWN}, "feature_level_type": "X"},
            "root.feature_level_type",
        ),
        (
            {
                "content": {
                    "subject": "s" * 10,
                    "markdown": MARKDOWN,
                    "due_date": "2026-13-01T00:00:00Z",
                }
            },
            "root.content.due_date",
        ),
        (
            {
                "content": {
                    "subject": "s" * 10,
                    "markdown": MARKDOWN,
                    "payment_data": {"amount": 0, "notice_number": "0" * 18},
                }
            },
            "root.content.payment_data.amount",
        ),
        (
            {
                "content": {
                    "subject": "s" * 10,
                    "markdown": MARKDOWN,
                    "payment_data": {"amount": True, "notice_number": "0" * 18},
                }
            },
            "root.content.payment_data.amount",
        ),
        (
            {
                "content": {
                    "subject": "s" * 10,
                    "markdown": MARKDOWN,
                    "payment_data": {"amount": 1, "notice_number": "4" * 18},
                }
            },
            "root.content.payment_data.notice_number",
        ),
        (
            {
                "content": {
                    "subject": "s" * 10,
                    "markdown": MARKDOWN,
                    "payment_data": {
                        "amount": 1,
                        "notice_number": "0" * 18,
                        "payee": {"fiscal_code": "1"},
                    },
                }
            },
            "root.content.payment_data.payee.fiscal_code",
        ),
        (
            {
                "content": {
                    "subject": "s" * 10,
                    "markdown": MARKDOWN,
                    "require_secure_channels": "true",
                }
            },
            "root.content.require_secure_channels",
        ),
        (
            {"content": {"subject": "s" * 10, "markdown": MARKDOWN, "third_party_data": {}}},
            "root.content.third_party_data.id",
        ),
    ],
)
def test_each_problem_names_its_path(body: Any, path: str) -> None:
    problems = check_new_message(body)
    assert any(f"at [{path}]" in line for line in problems), problems


def test_valid_minimal_message_has_no_problem() -> None:
    assert check_new_message({"content": {"subject": "s" * 120, "markdown": "m" * 10_000}}) == []
    assert check_fiscal_code_payload({"fiscal_code": CF}) == []
    assert check_fiscal_code_payload({"fiscal_code": CF.lower()}) == [
        f'value ["{CF.lower()}"] at [root.fiscal_code] is not a valid [FiscalCode]'
    ]


@given(st.integers(min_value=0, max_value=200))
def test_subject_boundaries_match_the_client_models(length: int) -> None:
    problems = check_new_message({"content": {"subject": "a" * length, "markdown": MARKDOWN}})
    assert (problems == []) is (10 <= length <= 120)
