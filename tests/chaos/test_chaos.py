"""The short form of `make chaos` (docs/chaos.md): 100 TARI positions, their App IO
campaign, 30 payments through the Node (duplicate and Stand-In receipts), 50 webhook events
to a flaky sink, 40 resident look-ups (PDND + ANPR), 20 SPID logins, 20 SEND fines
(`sportello send import`, SEND answering 5xx and 429s and dropping answers), two hub
replicas on PostgreSQL, two SIGKILLs at random moments of the whole day. Nothing lost;
nothing doubled where the platform gives a key; every message, payment, fine, look-up and
login accounted for by the sandboxes' own records. No PostgreSQL restart here: the test
server is shared (the long form restarts a private one, docs/chaos.md)."""

from __future__ import annotations

import pytest
from chaos_day import Plan, print_summary, run_day

pytestmark = [pytest.mark.slow, pytest.mark.pg]


async def test_short_chaos_day_loses_nothing(pg_url: str) -> None:
    plan = Plan(
        positions=100,
        payments=30,
        webhooks=50,
        lookups=40,
        logins=20,
        kills=2,
        fines=20,
        settle_timeout=120,
    )
    rows = await run_day(plan, db_url=pg_url)
    print_summary(rows, plan)
    by_name = {r.platform.split(" ")[0]: r for r in rows}
    assert set(by_name) == {
        "pagoPA",
        "accounting",
        "App",
        "webhooks",
        "resident",
        "SPID",
        "SEND",
    }
    for row in rows:
        assert row.lost == 0, (row.platform, row.details)
        if row.keyed:
            assert row.doubled == 0, (row.platform, row.details)
        # every item is accounted for: done, or unknown with its reason
        assert row.done + row.unknown == row.sent, (row.platform, row.reasons, row.details)
        assert sum(row.reasons.values()) >= row.unknown
    io = by_name["App"]
    assert io.sent == 100 and io.done > 0
    # App IO gives no idempotency key: the hub never resends a message whose outcome it
    # does not know, so no citizen gets it twice
    assert io.doubled == 0, io.details
    pagopa = by_name["pagoPA"]
    assert 0 < pagopa.sent <= 30 and pagopa.done == pagopa.sent
    assert by_name["accounting"].done == pagopa.done
    webhooks = by_name["webhooks"]
    # the 50 plain events plus one per receipt (the hub announces each receipt once)
    assert webhooks.sent >= 50 + pagopa.done
    assert webhooks.done == webhooks.sent
    lookups = by_name["resident"]
    assert lookups.sent == 40 and lookups.done > 0
    # audited twice only when the same GET reached the hub twice (a retry on a dropped
    # connection): never more than the replicas killed
    assert lookups.doubled <= plan.kills
    logins = by_name["SPID"]
    assert logins.sent == 20 and logins.done > 0
    # SEND gives a key (paProtocolNumber + idempotenceToken): every fine accepted by SEND
    # exactly once, with the IUN the hub stored, although SEND failed and dropped answers
    send = by_name["SEND"]
    assert send.sent == 20 and send.done == 20 and send.doubled == 0, send.details
    assert send.retried > 0, "SEND's faults happened"
