"""GPD errors: the base connector errors, refined by what GPD and its gateway answer.

GPD's backend answers errors with a ``ProblemJson`` (``title``, ``status``, ``detail``);
its API gateway (Azure APIM: 401, 403 for a subscription not enabled for the
organization, 429, unknown routes) with ``{"statusCode": …, "message": …}``.
``map_gpd_error`` turns the generic error ``BaseConnector`` raised into one of these:

- 400: ``GpdValidationError`` (a ``BadRequest``): bean validation (``title`` "BAD
  REQUEST", ``detail`` "field: reason, …") or GPD's own checks ("Dates congruence
  error: …", "Amounts congruence error: …"); for a bulk upload, the whole file was refused
  ("INVALID DEBT POSITIONS", "NOT A ZIP FILE", …).
- 401: ``GpdUnauthorized``; 403: ``GpdForbidden`` (both ``AuthError``).
- 404: ``DebtPositionNotFound`` for a debt position, ``UploadNotFound`` for a bulk upload
  (both ``NotFound``). APIM's own 404 (a wrong base URL) stays a plain ``NotFound``.
- 409: ``GpdConflict`` and its subclasses: ``DebtPositionExists`` (create: the IUPD, or
  an IUV/NAV of one of its options, is already used in the organization), ``InvalidState``
  (publish, invalidate, update or delete refused by the position's state, or a payment
  already made). ``ensure_created`` raises ``DebtPositionMismatch`` (same IUPD, different
  content) and ``IuvInUse`` (the IUPD is free but an IUV is taken by another position).
- 422: ``GpdUnprocessable``; 425 (bulk report asked for before the upload is done):
  ``BulkReportNotReady``; 429: ``GpdRateLimited`` (retryable, ``retry_after`` from the
  ``Retry-After`` header).

5xx and transport errors keep their base classes (``ServerError``, ``TransportError``:
retryable). Every error keeps ``status``, ``request_id``, ``body`` and ``attempts``; GPD's
``title`` and ``detail`` are on ``.title`` / ``.detail``.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import (
    AuthError,
    BadRequest,
    ClientRequestError,
    Conflict,
    ConnectorError,
    NotFound,
    RateLimited,
    Unprocessable,
    UpstreamError,
)

__all__ = [
    "PLATFORM",
    "BulkReportNotReady",
    "DebtPositionExists",
    "DebtPositionMismatch",
    "DebtPositionNotFound",
    "GpdConflict",
    "GpdForbidden",
    "GpdRateLimited",
    "GpdUnauthorized",
    "GpdUnprocessable",
    "GpdValidationError",
    "InvalidState",
    "IuvInUse",
    "UploadNotFound",
    "map_gpd_error",
]

PLATFORM = "gpd"
_MAX_MESSAGE_CHARS = 400


class _GpdDetail:
    """Mixin: GPD's ``title`` and ``detail`` (ProblemJson), when the answer had them."""

    title: str | None = None
    detail: str | None = None


class GpdValidationError(_GpdDetail, BadRequest):
    """400: GPD (or the client, before sending) refused the request."""


class GpdUnauthorized(_GpdDetail, AuthError):
    """401: the subscription key is missing, wrong or revoked."""


class GpdForbidden(_GpdDetail, AuthError):
    """403: the subscription is not enabled for this organization (or its segregation codes)."""


class DebtPositionNotFound(_GpdDetail, NotFound):
    """404: no debt position with this IUPD for the organization."""


class UploadNotFound(_GpdDetail, NotFound):
    """404: no bulk upload with this file id for the broker and organization."""


class GpdConflict(_GpdDetail, Conflict):
    """409: GPD refused the operation because of existing data or the position's state."""


class DebtPositionExists(GpdConflict):
    """409 on create: the IUPD, or the IUV/NAV of one of its options, is already in use."""


class InvalidState(GpdConflict):
    """409: publish, invalidate, update or delete is not allowed in the position's state."""


class DebtPositionMismatch(GpdConflict):
    """``ensure_created``: a position with this IUPD exists but differs from the one sent.

    ``differences`` lists the paths that differ (``paymentOption[iuv=…].amount``), never
    the values.
    """

    differences: tuple[str, ...] = ()


class IuvInUse(GpdConflict):
    """``ensure_created``: GPD said 409 but no position has the IUPD: another position of
    the organization already uses one of the IUVs."""


class GpdUnprocessable(_GpdDetail, Unprocessable):
    """422: GPD understood the request but cannot apply it."""


class BulkReportNotReady(_GpdDetail, ClientRequestError):
    """425: the bulk upload is still being processed; poll its status, then ask again."""


class GpdRateLimited(_GpdDetail, RateLimited):
    """429 from the gateway: wait ``retry_after`` seconds (when known)."""


def _parse(body: str | None) -> dict[str, Any]:
    if not body:
        return {}
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    return " ".join(value.split()) if isinstance(value, str) else ""


def map_gpd_error(error: UpstreamError, *, operation: str) -> ConnectorError:
    """The GPD error for ``error``.

    ``operation`` is ``"create"``, ``"get"``, ``"update"``, ``"publish"``, ``"invalidate"``,
    ``"delete"``, ``"list"``, ``"upload"``, ``"upload_status"`` or ``"upload_report"``.
    Errors that need no refinement (5xx, unexpected statuses) are returned unchanged.
    """
    doc = _parse(error.body)
    title, detail = _text(doc, "title"), _text(doc, "detail")
    gateway = _text(doc, "message")
    status = error.status
    upload = operation.startswith("upload")
    cls: type[UpstreamError] | None = None
    if status == 400:
        cls = GpdValidationError
    elif status == 401:
        cls = GpdUnauthorized
    elif status == 403:
        cls = GpdForbidden
    elif status == 404 and (title or detail):  # GPD's ProblemJson, not APIM's "not found"
        cls = UploadNotFound if upload else DebtPositionNotFound
    elif status == 409:
        cls = DebtPositionExists if operation == "create" else InvalidState
    elif status == 422:
        cls = GpdUnprocessable
    elif status == 425:
        cls = BulkReportNotReady
    elif status == 429:
        cls = GpdRateLimited
    if cls is None:
        return error
    if title and detail:
        message = f"{title}: {detail}"
    else:
        message = title or detail or gateway or str(error.message)
    mapped = cls(
        message[:_MAX_MESSAGE_CHARS],
        platform=error.platform or PLATFORM,
        retryable=error.retryable,
        retry_after=error.retry_after,
        status=status,
        request_id=error.request_id,
        body=error.body,
    )
    mapped.attempts = error.attempts
    if isinstance(mapped, _GpdDetail):
        mapped.title = title or None
        mapped.detail = detail or gateway or None
    return mapped
