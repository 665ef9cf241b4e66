"""ANPR errors, on top of the shared connector tree (``connectors/errors.py``).

Each class also inherits the base class a caller would expect for its status, so code
that only knows the shared tree (``NotFound``, ``BadRequest``, ``retryable``) still works:

==========================  ===========================================  ===============
class                        when                                         also a
==========================  ===========================================  ===============
``SubjectNotFound``          RispostaKO with ``EN122`` (HTTP 404)          ``NotFound``
``AnprRejected``             any other RispostaKO (400, 404, 500...)       ``UpstreamError``
``GatewayRejected``          GovWay's own problem (generic 400             ``BadRequest``
                             ``InteroperabilityInvalidRequest``, 404
                             "Unknown API Request", 409 replay...)
``TokenExpired``             GovWay 401 ``TokenExpired``                   ``AuthError``
==========================  ===========================================  ===============

``AnprRejected`` is retryable when ANPR answered 5xx. ``TokenExpired`` is retryable: every
attempt is signed again with a fresh voucher. ``request_id`` is always the
``GovWay-Transaction-ID``: quote it (and ``govway_id`` for gateway refusals) to ANPR
support. Like every connector error, ``str()`` never includes the body, which can hold
personal data.
"""

from __future__ import annotations

from typing import Any

from ..errors import AuthError, BadRequest, ConnectorError, NotFound, UpstreamError
from .models import TipoErroriAnomalia

__all__ = [
    "SUBJECT_NOT_FOUND_CODE",
    "AnprError",
    "AnprRejected",
    "GatewayRejected",
    "SubjectNotFound",
    "TokenExpired",
]

#: The RispostaKO code for "no subject" ("Soggetto non registrato / cancellato da ANPR").
SUBJECT_NOT_FOUND_CODE = "EN122"


class AnprError(ConnectorError):
    """Base of the ANPR-specific errors."""


class _AnprKO(AnprError, UpstreamError):
    """A RispostaKO answer: ``errors`` is its ``listaErrori``."""

    def __init__(
        self,
        message: str,
        *,
        errors: list[TipoErroriAnomalia] | None = None,
        operation_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors: list[TipoErroriAnomalia] = list(errors or [])
        self.operation_id = operation_id

    @property
    def codes(self) -> list[str]:
        """The ``codiceErroreAnomalia`` of every entry (errors and warnings)."""
        return [e.codiceErroreAnomalia for e in self.errors if e.codiceErroreAnomalia]


class SubjectNotFound(_AnprKO, NotFound):
    """EN122: ANPR has no active record for the subject (never registered, or cancelled)."""


class AnprRejected(_AnprKO):
    """A RispostaKO other than EN122: ``errors`` says why. Retryable on 5xx."""

    @classmethod
    def _resolve_retryable(cls, requested: bool | None, status: int | None) -> bool:
        if requested is None:
            return status is not None and 500 <= status <= 599 and status != 501
        return requested


class GatewayRejected(AnprError, BadRequest):
    """The GovWay front door refused the call before ANPR saw it.

    For ModI defects the answer is deliberately vague (``InteroperabilityInvalidRequest``,
    "not conform to the required interoperability profile"): the real cause is only
    known to whoever can look up ``govway_id``. ``title`` is the GovWay error name.
    """

    def __init__(
        self,
        message: str,
        *,
        govway_id: str | None = None,
        title: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.govway_id = govway_id
        self.title = title


class TokenExpired(AnprError, AuthError):
    """GovWay 401 ``TokenExpired``: the voucher expired before the call reached ANPR.

    Retryable: the next attempt is signed with a new voucher.
    """

    default_retryable = True

    def __init__(self, message: str, *, govway_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.govway_id = govway_id
