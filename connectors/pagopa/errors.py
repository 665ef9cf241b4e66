"""Typed errors of the pagoPA package (pure code: nothing here talks to the network).

``InvalidIdentifier`` and its subclasses are ``ValueError`` too, so a pydantic validator
that calls ``validate_iuv`` turns them into an ordinary validation error. ``part`` says
which part of the identifier is wrong (``"length"``, ``"characters"``, ``"aux_digit"``,
``"check_digits"``...) so callers can branch without parsing the message.
"""

from __future__ import annotations

__all__ = [
    "IllegalTransition",
    "InvalidCreditorReference",
    "InvalidIUV",
    "InvalidIdentifier",
    "InvalidNoticeNumber",
    "PagoPAError",
]


class PagoPAError(Exception):
    """Base of every error raised by ``sportello.connectors.pagopa``."""


class InvalidIdentifier(PagoPAError, ValueError):
    """A pagoPA identifier (notice number, IUV, creditor reference) is malformed."""

    kind = "identifier"

    def __init__(self, part: str, reason: str) -> None:
        self.part = part
        self.reason = reason
        super().__init__(f"{self.kind}: {reason}")


class InvalidNoticeNumber(InvalidIdentifier):
    """An 18-digit notice number (NAV, *numero avviso*) is malformed."""

    kind = "notice number"


class InvalidIUV(InvalidIdentifier):
    """An IUV (*identificativo univoco di versamento*) is malformed."""

    kind = "IUV"


class InvalidCreditorReference(InvalidIdentifier):
    """An ISO 11649 creditor reference (``RF..``) is malformed."""

    kind = "creditor reference"


class IllegalTransition(PagoPAError):
    """A GPD debt position cannot go through ``event`` from ``state``."""

    def __init__(self, state: str, event: str, allowed_from: tuple[str, ...]) -> None:
        self.state = state
        self.event = event
        self.allowed_from = allowed_from
        where = ", ".join(allowed_from) if allowed_from else "no state"
        super().__init__(
            f"event {event!r} is not allowed for a debt position in state {state} "
            f"(allowed from: {where})"
        )
