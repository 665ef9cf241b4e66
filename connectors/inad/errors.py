"""INAD errors, on top of the shared connector tree.

INAD answers its errors with ``Errore`` (``{"status": "404", "type": "NOT_FOUND",
"detail": ...}``, ``application/problem+json``):

- ``NoDigitalDomicile`` (a ``NotFound``): 404 ``Errore`` on ``/extract``: the fiscal code
  has no digital domicile in INAD;
- ``BulkNotFound`` (a ``NotFound``): 404 on a bulk extraction id (unknown, or older than
  the 48 hours INAD keeps a list);
- ``InadRejected`` (a ``BadRequest``): 400 ``Errore``;
- ``InadUnauthorized`` (an ``AuthError``): 401/403 ``Errore`` (voucher missing, expired,
  or for another e-service).

5xx (``ServerError``, 503 included) and transport errors stay retryable. Messages never
quote the fiscal code.
"""

from __future__ import annotations

import json

from ..errors import AuthError, BadRequest, ConnectorError, NotFound, UpstreamError

__all__ = [
    "BulkNotFound",
    "InadError",
    "InadRejected",
    "InadUnauthorized",
    "NoDigitalDomicile",
    "map_inad_error",
]


class InadError(ConnectorError):
    """Base of the INAD-specific errors."""


class NoDigitalDomicile(InadError, NotFound):
    """404 on ``/extract``: no digital domicile for this fiscal code."""


class BulkNotFound(InadError, NotFound):
    """404 on a bulk extraction id."""


class InadRejected(InadError, BadRequest):
    """400: INAD refused the request."""


class InadUnauthorized(InadError, AuthError):
    """401 or 403: the voucher was refused."""


def _errore(body: str | None) -> dict[str, object] | None:
    if not body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and "type" in doc and "status" in doc:
        return doc
    return None


def map_inad_error(error: UpstreamError, *, operation: str) -> ConnectorError:
    """The INAD error for ``error``; ``operation`` is ``extract``, ``verify`` or ``bulk``."""
    doc = _errore(error.body)
    status = error.status
    cls: type[InadError] | None = None
    if status in (401, 403):
        cls = InadUnauthorized
    elif doc is not None and status == 404:
        cls = NoDigitalDomicile if operation == "extract" else BulkNotFound
    elif doc is not None and status == 400:
        cls = InadRejected
    if cls is None:
        return error
    detail = str(doc.get("detail") or doc.get("type")) if doc else error.message
    mapped = cls(
        f"INAD: {detail}"[:300],
        platform=error.platform or "inad",
        status=status,
        retry_after=error.retry_after,
        request_id=error.request_id,
        body=error.body,
    )
    mapped.attempts = error.attempts
    mapped.retries_spent = error.retries_spent
    return mapped
