"""JSON logs mask secret fields; backoff grows, jitters and honours retry_after."""

from __future__ import annotations

import json
import logging
import random

from hypothesis import given
from hypothesis import strategies as st

from sportello.db import redact_url
from sportello.logs import JsonFormatter
from sportello.outbox.backoff import next_delay


def test_json_log_line_masks_secret_fields() -> None:
    record = logging.makeLogRecord(
        {"msg": "calling %s", "args": ("io",), "api_key": "abc123", "tenant": "demo"}
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "calling io" and line["tenant"] == "demo"
    assert line["api_key"] == "***"
    assert "abc123" not in json.dumps(line)


def test_database_passwords_are_redacted() -> None:
    assert redact_url("postgresql+asyncpg://hub:pa55@db:5432/x") == (
        "postgresql+asyncpg://hub:***@db:5432/x"
    )


@given(
    attempt=st.integers(min_value=1, max_value=40),
    base=st.floats(min_value=0.01, max_value=10),
    cap=st.floats(min_value=1, max_value=7200),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=3600)),
    seed=st.integers(),
)
def test_backoff_bounds(
    attempt: int, base: float, cap: float, retry_after: float | None, seed: int
) -> None:
    step = min(cap, base * 2 ** (attempt - 1))
    delay = next_delay(
        attempt, base=base, cap=cap, retry_after=retry_after, rng=random.Random(seed)
    )
    if retry_after is not None and retry_after >= step:
        assert delay == retry_after
    else:
        assert 0.5 * step <= delay <= step
        if retry_after is not None:
            assert delay >= retry_after


def test_backoff_spreads_out() -> None:
    rng = random.Random(1)
    delays = {round(next_delay(5, base=2, cap=3600, rng=rng), 3) for _ in range(20)}
    assert len(delays) > 10
