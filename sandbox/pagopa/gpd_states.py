"""The GPD twin's own debt-position rules, written from the platform, not from our connector.

A twin that ran the connector's state machine (``connectors/pagopa/states.py``) would agree
with every bug in it; this module is written independently, action by action, the way GPD's
service checks them (SANP 3.11 "Stati della posizione debitoria V1"; ``pagopa-debt-position``
``PaymentPositionActionsService``, ``PublishPaymentUtil``, ``PaymentsService``):

- create: ``toPublish=false`` → DRAFT; ``toPublish=true`` → PUBLISHED with a
  ``validityDate``, else VALID (payable at once);
- update (``PUT``): only DRAFT, PUBLISHED, VALID and EXPIRED positions; the new state is the
  create rule again (so an EXPIRED position with a new due date is payable again);
- publish: only a DRAFT → PUBLISHED;
- invalidate: only PUBLISHED or VALID → INVALID (final);
- delete: only before any payment (DRAFT, PUBLISHED, VALID, INVALID, EXPIRED);
- time: PUBLISHED → VALID when the validity date is reached; VALID → EXPIRED when the latest
  due date passed with ``switchToExpired``;
- payment: the full option only while VALID → PAID; an instalment while VALID or
  PARTIALLY_PAID → PARTIALLY_PAID, or PAID when it was the last unpaid one.

``tests/sandbox/test_gpd_twin_states.py`` checks these rules from the spec, and that they
agree with the connector's (two implementations: a bug in either shows as a disagreement).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

__all__ = [
    "DELETABLE",
    "UPDATABLE",
    "Refused",
    "Status",
    "created",
    "expired",
    "invalidated",
    "paid",
    "published",
    "updated",
    "validity_reached",
]


class Status(StrEnum):
    """``PaymentPositionModel.status`` (``gpd.json``)."""

    DRAFT = "DRAFT"
    PUBLISHED = "PUBLISHED"
    VALID = "VALID"
    INVALID = "INVALID"
    EXPIRED = "EXPIRED"
    PARTIALLY_PAID = "PARTIALLY_PAID"
    PAID = "PAID"
    REPORTED = "REPORTED"


class Refused(Exception):
    """GPD refuses the action in the position's current state."""

    def __init__(self, action: str, status: Status) -> None:
        self.action = action
        self.status = status
        super().__init__(f"{action} refused in state {status}")


UPDATABLE = frozenset({Status.DRAFT, Status.PUBLISHED, Status.VALID, Status.EXPIRED})
DELETABLE = frozenset(
    {Status.DRAFT, Status.PUBLISHED, Status.VALID, Status.INVALID, Status.EXPIRED}
)


def created(*, to_publish: bool, validity_date: datetime | None) -> Status:
    """The state of a new position."""
    if not to_publish:
        return Status.DRAFT
    return Status.VALID if validity_date is None else Status.PUBLISHED


def updated(status: Status, *, to_publish: bool, validity_date: datetime | None) -> Status:
    """The state after a ``PUT``; refused once paid, reported or invalidated."""
    if status not in UPDATABLE:
        raise Refused("update", status)
    return created(to_publish=to_publish, validity_date=validity_date)


def published(status: Status) -> Status:
    if status is not Status.DRAFT:
        raise Refused("publish", status)
    return Status.PUBLISHED


def invalidated(status: Status) -> Status:
    if status not in (Status.PUBLISHED, Status.VALID):
        raise Refused("invalidate", status)
    return Status.INVALID


def validity_reached(status: Status) -> Status:
    if status is not Status.PUBLISHED:
        raise Refused("validity", status)
    return Status.VALID


def expired(status: Status) -> Status:
    if status is not Status.VALID:
        raise Refused("expiry", status)
    return Status.EXPIRED


def paid(status: Status, *, instalment: bool, last: bool) -> Status:
    """The state after a receipt for one option: in full, or one instalment (``last``: no
    other instalment is still unpaid). In PARTIALLY_PAID only instalments are payable."""
    if not instalment:
        if status is not Status.VALID:
            raise Refused("payment", status)
        return Status.PAID
    if status not in (Status.VALID, Status.PARTIALLY_PAID):
        raise Refused("payment", status)
    return Status.PAID if last else Status.PARTIALLY_PAID
