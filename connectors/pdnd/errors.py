"""PDND-specific errors. They subclass the shared connector tree (``connectors/errors.py``).

The token server answers every validation failure with the same 400 ``015-0008`` body, so
the hub cannot know the real cause: ``VoucherRefused`` carries the ``correlationId`` (as
``request_id``) to quote to PDND support or to the sandbox diagnostics endpoint.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest, SigningError

__all__ = [
    "TOKEN_REFUSED_CODE",
    "InvalidKeyError",
    "ModiSigningError",
    "VoucherRefused",
]

#: The only error code the PDND token server gives for a refused client assertion.
TOKEN_REFUSED_CODE = "015-0008"


class VoucherRefused(BadRequest):
    """400 ``015-0008``: PDND refused the client assertion. Never retried.

    Causes are all hidden behind this one answer: wrong ``kid``, ``aud`` or ``purposeId``,
    an unexpected claim, a non-integer time, an expired assertion, a bad signature...
    ``request_id`` (also ``correlation_id``) is the ``correlationId`` of the answer.
    """

    def __init__(self, message: str, *, code: str = TOKEN_REFUSED_CODE, **kwargs: Any) -> None:
        kwargs.setdefault("status", 400)
        super().__init__(message, **kwargs)
        self.code = code

    @property
    def correlation_id(self) -> str | None:
        return self.request_id


class ModiSigningError(SigningError):
    """A ModI header (Agid-JWT-Signature, Agid-JWT-TrackingEvidence) could not be built."""


class InvalidKeyError(ValueError):
    """A key PDND would refuse: not RSA, shorter than 2048 bits, a certificate, unreadable."""
