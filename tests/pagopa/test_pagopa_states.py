"""The GPD debt-position state machine: every legal transition, and the illegal ones."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sportello.connectors.pagopa import (
    DebtPositionStatus,
    Event,
    IllegalTransition,
    allowed_events,
    initial_state,
    next_state,
)
from sportello.connectors.pagopa.states import DELETABLE, FINAL, PAYABLE, TRANSITIONS, UPDATABLE

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
GPD_SPEC = SPECS / "pagopa" / "openapi" / "gpd.json"
S = DebtPositionStatus
E = Event
ILLEGAL = sorted(
    (state, event) for state, event in itertools.product(S, E) if (state, event) not in TRANSITIONS
)

#: The transitions, written out once more by hand from SANP 3.11 "Stati della posizione
#: debitoria V1" and GPD's code, so that a change to the table has to be made twice.
EXPECTED = {
    (S.DRAFT, E.PUBLISH): S.PUBLISHED,
    (S.PUBLISHED, E.VALIDITY_REACHED): S.VALID,
    (S.PUBLISHED, E.INVALIDATE): S.INVALID,
    (S.VALID, E.INVALIDATE): S.INVALID,
    (S.VALID, E.EXPIRE): S.EXPIRED,
    (S.VALID, E.PAY_FULL): S.PAID,
    (S.VALID, E.PAY_INSTALLMENT): S.PARTIALLY_PAID,
    (S.VALID, E.PAY_LAST_INSTALLMENT): S.PAID,
    (S.PARTIALLY_PAID, E.PAY_INSTALLMENT): S.PARTIALLY_PAID,
    (S.PARTIALLY_PAID, E.PAY_LAST_INSTALLMENT): S.PAID,
    (S.PARTIALLY_PAID, E.REPORT_TRANSFER): S.PARTIALLY_PAID,
    (S.PAID, E.REPORT_TRANSFER): S.PAID,
    (S.PAID, E.REPORT_COMPLETE): S.REPORTED,
    **{
        (state, event): target
        for state in (S.DRAFT, S.PUBLISHED, S.VALID, S.EXPIRED)
        for event, target in (
            (E.UPDATE_TO_DRAFT, S.DRAFT),
            (E.UPDATE_PUBLISHED, S.PUBLISHED),
            (E.UPDATE_VALID, S.VALID),
        )
    },
}


def test_states_are_exactly_the_spec_enum() -> None:
    if not GPD_SPEC.exists():
        pytest.skip(f"GPD spec not found at {GPD_SPEC}")
    schemas = json.loads(GPD_SPEC.read_text(encoding="utf-8"))["components"]["schemas"]
    for name in ("PaymentPositionModel", "PaymentPositionModelBaseResponse"):
        assert schemas[name]["properties"]["status"]["enum"] == [s.value for s in S]


def test_table_is_the_documented_one() -> None:
    assert dict(TRANSITIONS) == EXPECTED


@pytest.mark.parametrize(("state", "event"), sorted(EXPECTED))
def test_every_legal_transition(state: DebtPositionStatus, event: Event) -> None:
    assert next_state(state, event) is EXPECTED[(state, event)]
    assert next_state(state.value, event.value) is EXPECTED[(state, event)]
    assert event in allowed_events(state)


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_every_illegal_transition_raises(state: DebtPositionStatus, event: Event) -> None:
    with pytest.raises(IllegalTransition) as info:
        next_state(state, event)
    error = info.value
    assert (error.state, error.event) == (state.value, event.value)
    assert state.value not in error.allowed_from
    assert set(error.allowed_from) == {s.value for (s, e) in TRANSITIONS if e is event}
    assert f"state {state.value}" in str(error)


@pytest.mark.parametrize(
    ("state", "event", "why"),
    [
        (S.DRAFT, E.INVALIDATE, "a draft is deleted, not invalidated"),
        (S.DRAFT, E.PAY_FULL, "a draft is not payable"),
        (S.PUBLISHED, E.PAY_FULL, "not payable before the validity date"),
        (S.PUBLISHED, E.EXPIRE, "only a VALID position expires"),
        (S.EXPIRED, E.PAY_FULL, "an expired position is not payable"),
        (S.EXPIRED, E.INVALIDATE, "an expired position cannot be invalidated"),
        (S.PARTIALLY_PAID, E.PAY_FULL, "instalments and payment in full exclude each other"),
        (S.PARTIALLY_PAID, E.INVALIDATE, "a paid position cannot be cancelled"),
        (S.PARTIALLY_PAID, E.UPDATE_VALID, "a paid position is immutable"),
        (S.PAID, E.PAY_INSTALLMENT, "nothing left to pay"),
        (S.PAID, E.UPDATE_TO_DRAFT, "a paid position is immutable"),
        (S.VALID, E.REPORT_COMPLETE, "nothing paid, nothing to report"),
        (S.INVALID, E.UPDATE_VALID, "INVALID is final: a new position is needed"),
        (S.INVALID, E.PUBLISH, "INVALID is final"),
        (S.REPORTED, E.REPORT_TRANSFER, "REPORTED is final"),
    ],
)
def test_notable_illegal_transitions(state: DebtPositionStatus, event: Event, why: str) -> None:
    with pytest.raises(IllegalTransition):
        next_state(state, event)


def test_expired_becomes_payable_again_through_an_update() -> None:
    assert next_state(S.EXPIRED, E.UPDATE_VALID) is S.VALID
    assert S.EXPIRED in UPDATABLE and S.EXPIRED not in PAYABLE and S.EXPIRED not in FINAL


def test_final_states_accept_nothing() -> None:
    assert FINAL == {S.INVALID, S.REPORTED}
    for state in S:
        assert (allowed_events(state) == frozenset()) == (state in FINAL)


def test_named_sets_agree_with_the_table() -> None:
    pay = {E.PAY_FULL, E.PAY_INSTALLMENT, E.PAY_LAST_INSTALLMENT}
    update = {E.UPDATE_TO_DRAFT, E.UPDATE_PUBLISHED, E.UPDATE_VALID}
    assert {s for s in S if allowed_events(s) & pay} == PAYABLE == {S.VALID, S.PARTIALLY_PAID}
    assert {s for s in S if allowed_events(s) >= update} == UPDATABLE
    assert {s for s in S if allowed_events(s) & update} == UPDATABLE
    assert DELETABLE == {S.DRAFT, S.PUBLISHED, S.VALID, S.INVALID, S.EXPIRED}
    paid = {S.PARTIALLY_PAID, S.PAID, S.REPORTED}
    assert DELETABLE.isdisjoint(paid) and UPDATABLE.isdisjoint(paid)


def test_initial_state() -> None:
    when = datetime(2026, 3, 1, tzinfo=UTC)
    assert initial_state(to_publish=False, validity_date=None) is S.DRAFT
    assert initial_state(to_publish=False, validity_date=when) is S.DRAFT
    assert initial_state(to_publish=True, validity_date=when) is S.PUBLISHED
    assert initial_state(to_publish=True, validity_date=None) is S.VALID


def test_unknown_values() -> None:
    with pytest.raises(ValueError):
        next_state("ARCHIVED", E.PUBLISH)
    with pytest.raises(ValueError):
        next_state(S.DRAFT, "archive")


def walk(state: DebtPositionStatus, *events: Event) -> DebtPositionStatus:
    for event in events:
        state = next_state(state, event)
    return state


def test_life_of_a_tari_position_paid_in_instalments() -> None:
    state = initial_state(to_publish=True, validity_date=datetime(2026, 3, 1, tzinfo=UTC))
    assert state is S.PUBLISHED
    state = walk(
        state,
        E.VALIDITY_REACHED,
        E.PAY_INSTALLMENT,
        E.REPORT_TRANSFER,
        E.PAY_INSTALLMENT,
        E.PAY_LAST_INSTALLMENT,
        E.REPORT_TRANSFER,
        E.REPORT_COMPLETE,
    )
    assert state is S.REPORTED


def test_publish_without_validity_date_is_publish_then_valid() -> None:
    assert walk(S.DRAFT, E.PUBLISH, E.VALIDITY_REACHED) is S.VALID


def test_expire_update_pay() -> None:
    assert walk(S.VALID, E.EXPIRE, E.UPDATE_VALID, E.PAY_FULL, E.REPORT_COMPLETE) is S.REPORTED


@given(st.lists(st.sampled_from(list(E)), max_size=40))
def test_random_walks_never_leave_a_final_state_and_report_only_what_was_paid(
    events: list[Event],
) -> None:
    state = S.DRAFT
    history = [state]
    for event in events:
        try:
            state = next_state(state, event)
        except IllegalTransition:
            assert event not in allowed_events(state)
            continue
        history.append(state)
    for before, after in itertools.pairwise(history):
        assert before not in FINAL
        if after is S.REPORTED:
            assert before is S.PAID
        if after in {S.PARTIALLY_PAID, S.PAID}:
            assert before in PAYABLE | {after}
