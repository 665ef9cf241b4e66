"""The App IO twin writes its ``created_at`` timestamps with its own code (issue 13),
as App IO does (JavaScript's ``toISOString``): checked from that format and compared with
the connector's ``format_timestamp`` on many generated instants and offsets."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta, timezone

from sportello.connectors.io.models import format_timestamp
from sportello.sandbox.io.validation import is_timestamp, js_timestamp

TO_ISO_STRING = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def test_twin_writes_what_javascript_writes() -> None:
    # new Date(Date.UTC(2018, 9, 13)).toISOString() === "2018-10-13T00:00:00.000Z"
    assert js_timestamp(datetime(2018, 10, 13, tzinfo=UTC)) == "2018-10-13T00:00:00.000Z"
    # milliseconds are truncated, and the instant is written in UTC
    rome = timezone(timedelta(hours=2))
    moment = datetime(2026, 6, 1, 1, 30, 5, 999_999, tzinfo=rome)
    assert js_timestamp(moment) == "2026-05-31T23:30:05.999Z"


def test_twin_and_connector_agree() -> None:
    rng = random.Random(13)
    start = datetime(1970, 1, 1, tzinfo=UTC)
    disagreements = []
    for _ in range(3000):
        offset = timezone(timedelta(minutes=rng.randint(-23 * 60, 23 * 60)))
        instant = start + timedelta(microseconds=rng.randint(0, 10**17))
        value = instant.astimezone(offset)
        ours, theirs = js_timestamp(value), format_timestamp(value)
        assert TO_ISO_STRING.fullmatch(ours) and is_timestamp(ours), ours
        if ours != theirs:
            disagreements.append(f"{value.isoformat()}: twin {ours}, connector {theirs}")
    assert disagreements == []
