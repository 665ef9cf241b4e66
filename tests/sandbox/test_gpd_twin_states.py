"""The GPD twin's debt-position rules are its own (issue 13): written from the platform
(SANP 3.11 "Stati della posizione debitoria V1", GPD's services), checked here from that
spec, and compared with the connector's state machine: two independent implementations,
so a bug in either shows as a disagreement instead of being shared."""

from __future__ import annotations

import ast
import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sportello.connectors.pagopa import states as connector
from sportello.connectors.pagopa.errors import IllegalTransition
from sportello.sandbox.pagopa import gpd_states as twin
from sportello.sandbox.pagopa.gpd_states import Refused, Status

S = Status
WHEN = datetime(2026, 3, 1, tzinfo=UTC)
SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"

# From the spec: the states each action is accepted in, and where it leads.
SPEC_ONE_WAY = {
    "publish": ({S.DRAFT}, S.PUBLISHED),
    "invalidate": ({S.PUBLISHED, S.VALID}, S.INVALID),
    "validity": ({S.PUBLISHED}, S.VALID),
    "expiry": ({S.VALID}, S.EXPIRED),
    "full payment": ({S.VALID}, S.PAID),
    "last instalment": ({S.VALID, S.PARTIALLY_PAID}, S.PAID),
    "instalment": ({S.VALID, S.PARTIALLY_PAID}, S.PARTIALLY_PAID),
}
TWIN = {
    "publish": twin.published,
    "invalidate": twin.invalidated,
    "validity": twin.validity_reached,
    "expiry": twin.expired,
    "full payment": lambda s: twin.paid(s, instalment=False, last=True),
    "last instalment": lambda s: twin.paid(s, instalment=True, last=True),
    "instalment": lambda s: twin.paid(s, instalment=True, last=False),
}
CONNECTOR_EVENT = {
    "publish": connector.Event.PUBLISH,
    "invalidate": connector.Event.INVALIDATE,
    "validity": connector.Event.VALIDITY_REACHED,
    "expiry": connector.Event.EXPIRE,
    "full payment": connector.Event.PAY_FULL,
    "last instalment": connector.Event.PAY_LAST_INSTALLMENT,
    "instalment": connector.Event.PAY_INSTALLMENT,
}


@pytest.mark.parametrize(("action", "status"), list(itertools.product(SPEC_ONE_WAY, list(S))))
def test_twin_follows_the_spec(action: str, status: Status) -> None:
    accepted, target = SPEC_ONE_WAY[action]
    if status in accepted:
        assert TWIN[action](status) is target
    else:
        with pytest.raises(Refused):
            TWIN[action](status)


@pytest.mark.parametrize("status", list(S))
def test_update_only_before_payment_and_lands_where_create_would(status: Status) -> None:
    cases = [(False, None, S.DRAFT), (True, WHEN, S.PUBLISHED), (True, None, S.VALID)]
    for to_publish, validity, target in cases:
        assert twin.created(to_publish=to_publish, validity_date=validity) is target
        if status in {S.DRAFT, S.PUBLISHED, S.VALID, S.EXPIRED}:
            assert twin.updated(status, to_publish=to_publish, validity_date=validity) is target
        else:  # paid, partially paid, reported, invalid: immutable
            with pytest.raises(Refused):
                twin.updated(status, to_publish=to_publish, validity_date=validity)
    assert (status in twin.DELETABLE) is (status not in {S.PARTIALLY_PAID, S.PAID, S.REPORTED})


@pytest.mark.parametrize(("action", "status"), list(itertools.product(SPEC_ONE_WAY, list(S))))
def test_twin_and_connector_agree(action: str, status: Status) -> None:
    try:
        theirs: str | None = connector.next_state(status.value, CONNECTOR_EVENT[action])
    except IllegalTransition:
        theirs = None
    try:
        ours: str | None = TWIN[action](status)
    except Refused:
        ours = None
    assert ours == theirs, f"{action} from {status}: twin {ours}, connector {theirs}"


def test_no_sandbox_module_imports_the_connectors_state_machine() -> None:
    """The twin must not run the code it checks (the import contract says so too; this
    names the file when it happens)."""
    offenders = []
    for path in SANDBOX.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith(
                "connectors.pagopa.states"
            ):
                offenders.append(str(path.relative_to(SANDBOX)))
    assert offenders == []
