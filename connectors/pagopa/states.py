"""The GPD v1 debt-position state machine.

Sources: SANP 3.11 "Stati della posizione debitoria V1" (the Payment Position FSM and its
business rules) and GPD's implementation (``pagopa-debt-position``:
``DebtPositionStatus``, ``PublishPaymentUtil``, ``PaymentPositionActionsService``,
``PaymentsService``). The states are exactly the ``status`` enum of ``gpd.json``.

Events:

- ``PUBLISH``: API ``POST …/{iupd}/publish``, DRAFT → PUBLISHED. Without a
  ``validityDate`` GPD sets it to "now" and the position is VALID at once: that is
  ``PUBLISH`` followed by ``VALIDITY_REACHED``.
- ``VALIDITY_REACHED``: time, ``validityDate`` reached, PUBLISHED → VALID.
- ``UPDATE_TO_DRAFT``: API ``PUT …/{iupd}`` with ``toPublish=false`` → DRAFT.
- ``UPDATE_PUBLISHED``: ``PUT`` with ``toPublish=true`` and a ``validityDate`` → PUBLISHED.
- ``UPDATE_VALID``: ``PUT`` with ``toPublish=true`` and no ``validityDate`` → VALID (also
  how an EXPIRED position gets a new due date and becomes payable again).
- ``INVALIDATE``: API ``POST …/{iupd}/invalidate`` (cancellation), PUBLISHED or VALID →
  INVALID, final.
- ``EXPIRE``: time, the latest ``dueDate`` passed with ``switchToExpired`` on, VALID →
  EXPIRED (not payable).
- ``PAY_FULL``: receipt for the option in full (``isPartialPayment=false``) → PAID.
- ``PAY_INSTALLMENT``: receipt for an instalment while others are unpaid → PARTIALLY_PAID.
- ``PAY_LAST_INSTALLMENT``: receipt for the last unpaid instalment → PAID.
- ``REPORT_TRANSFER``: a transfer of a paid option appears in a reporting flow (FdR) while
  others have not yet; the position's state does not change.
- ``REPORT_COMPLETE``: every transfer of the paid option(s) is reported, PAID → REPORTED.

Updatable states are DRAFT, PUBLISHED, VALID and EXPIRED; PARTIALLY_PAID, PAID and
REPORTED are immutable; payable states are VALID and PARTIALLY_PAID, and in
PARTIALLY_PAID only the remaining instalments are payable (the payment in full and the
instalments exclude each other). INVALID and REPORTED are final. A position can be
deleted only before any payment (:data:`DELETABLE`).

GPD also has ``POST …/paymentoptions/paids/{nav}``, which forces one *option* to PAID
whatever the position's state; it is an option-level operation outside this table.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from .errors import IllegalTransition

__all__ = [
    "DELETABLE",
    "FINAL",
    "PAYABLE",
    "TRANSITIONS",
    "UPDATABLE",
    "DebtPositionStatus",
    "Event",
    "allowed_events",
    "initial_state",
    "next_state",
]


class DebtPositionStatus(StrEnum):
    """GPD ``PaymentPositionModel.status``."""

    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    VALID = "VALID"
    INVALID = "INVALID"
    EXPIRED = "EXPIRED"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    REPORTED = "REPORTED"


class Event(StrEnum):
    """What happens to a debt position (see the module docstring)."""

    PUBLISH = "publish"
    VALIDITY_REACHED = "validity_reached"
    UPDATE_TO_DRAFT = "update_to_draft"
    UPDATE_PUBLISHED = "update_published"
    UPDATE_VALID = "update_valid"
    INVALIDATE = "invalidate"
    EXPIRE = "expire"
    PAY_FULL = "pay_full"
    PAY_INSTALLMENT = "pay_installment"
    PAY_LAST_INSTALLMENT = "pay_last_installment"
    REPORT_TRANSFER = "report_transfer"
    REPORT_COMPLETE = "report_complete"


S = DebtPositionStatus
E = Event

#: States whose data can still be changed through the API.
UPDATABLE: frozenset[DebtPositionStatus] = frozenset({S.DRAFT, S.PUBLISHED, S.VALID, S.EXPIRED})
#: States in which a payment is accepted.
PAYABLE: frozenset[DebtPositionStatus] = frozenset({S.VALID, S.PARTIALLY_PAID})
#: States with no way out.
FINAL: frozenset[DebtPositionStatus] = frozenset({S.INVALID, S.REPORTED})
#: States in which ``DELETE …/{iupd}`` is accepted (nothing paid yet).
DELETABLE: frozenset[DebtPositionStatus] = frozenset(
    {S.DRAFT, S.PUBLISHED, S.VALID, S.INVALID, S.EXPIRED}
)

_table: dict[tuple[DebtPositionStatus, Event], DebtPositionStatus] = {
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
}
for _state in UPDATABLE:
    _table[(_state, E.UPDATE_TO_DRAFT)] = S.DRAFT
    _table[(_state, E.UPDATE_PUBLISHED)] = S.PUBLISHED
    _table[(_state, E.UPDATE_VALID)] = S.VALID

#: Every legal transition: (state, event) → next state.
TRANSITIONS: MappingProxyType[tuple[DebtPositionStatus, Event], DebtPositionStatus] = (
    MappingProxyType(_table)
)
del _table, _state


def next_state(current: DebtPositionStatus | str, event: Event | str) -> DebtPositionStatus:
    """The state after ``event``; raises ``IllegalTransition`` when the event is not allowed.

    ``current`` and ``event`` may be given as their string values (``"VALID"``,
    ``"pay_full"``); an unknown value raises ``ValueError``.
    """
    state = DebtPositionStatus(current)
    happening = Event(event)
    try:
        return TRANSITIONS[(state, happening)]
    except KeyError:
        allowed_from = tuple(sorted(str(s) for (s, e) in TRANSITIONS if e is happening))
        raise IllegalTransition(str(state), str(happening), allowed_from) from None


def allowed_events(current: DebtPositionStatus | str) -> frozenset[Event]:
    """The events a position in ``current`` accepts (empty for INVALID and REPORTED)."""
    state = DebtPositionStatus(current)
    return frozenset(e for (s, e) in TRANSITIONS if s is state)


def initial_state(*, to_publish: bool, validity_date: datetime | None) -> DebtPositionStatus:
    """The state GPD gives a new position (``POST …/debtpositions?toPublish=``).

    ``toPublish=false`` → DRAFT; ``toPublish=true`` with a ``validityDate`` → PUBLISHED;
    ``toPublish=true`` without one → VALID (payable at once).
    """
    if not to_publish:
        return S.DRAFT
    return S.PUBLISHED if validity_date is not None else S.VALID
