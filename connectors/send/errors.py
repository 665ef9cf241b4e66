"""SEND errors, on top of the shared connector tree (``connectors/errors.py``).

SEND answers its own refusals with a ``Problem`` body (``status``, ``title``, ``detail``,
``traceId`` and ``errors[]`` with ``code``, ``element`` and ``detail``); its API gateway
(AWS) answers a wrong ``x-api-key`` or voucher with ``{"message": ...}``. The presigned
upload (S3) answers in XML. ``map_send_error`` refines the base error by status and codes:

- ``SendInvalidRequest`` (a ``BadRequest``): 400 Problem, ``errors`` name each field;
- ``InvalidTaxonomyCode`` (a ``SendInvalidRequest``): 400
  ``PN_GENERIC_INVALIDPARAMETER_TAXONOMYCODE``;
- ``DuplicateNotification`` (a ``Conflict``): 409 ``PN_GENERIC_INVALIDPARAMETER_DUPLICATED``;
- ``SendNotFound`` (a ``NotFound``): 404 Problem (unknown IUN, request, notice, stream);
- ``SendUnauthorized`` (an ``AuthError``): 401/403 from the gateway (key or voucher);
- ``UploadRejected`` (a ``ClientRequestError``): the presigned upload refused (checksum,
  secret, expired URL);
- ``NotificationRefused`` (a ``PermanentError``): raised by ``wait_for_acceptance`` when
  the request is REFUSED.

5xx keep ``ServerError`` (retryable) and 429 ``RateLimited`` (retryable, ``retry_after``
from ``Retry-After``, or from milliseconds on the progress streams). ``str()`` of an error
never includes the body: it can quote tax ids and names.
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
    PermanentError,
    UpstreamError,
)
from .models import Problem, ProblemError, RefusalError

__all__ = [
    "DUPLICATED_CODE",
    "TAXONOMY_CODE",
    "DuplicateNotification",
    "InvalidTaxonomyCode",
    "NotificationRefused",
    "SendError",
    "SendInvalidRequest",
    "SendNotFound",
    "SendUnauthorized",
    "UploadRejected",
    "map_send_error",
    "parse_problem",
]

PLATFORM = "send"
DUPLICATED_CODE = "PN_GENERIC_INVALIDPARAMETER_DUPLICATED"
TAXONOMY_CODE = "PN_GENERIC_INVALIDPARAMETER_TAXONOMYCODE"
_MAX_MESSAGE = 300


class SendError(ConnectorError):
    """Base of the SEND-specific errors; ``errors`` is the Problem's list (may be empty)."""

    def __init__(
        self, message: str, *, errors: list[ProblemError] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors: list[ProblemError] = list(errors or [])

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.errors]

    @property
    def elements(self) -> list[str]:
        return [e.element for e in self.errors if e.element]


class SendInvalidRequest(SendError, BadRequest):
    """400: SEND refused the request; ``errors`` name the fields (``element``)."""


class InvalidTaxonomyCode(SendInvalidRequest):
    """400: the ``taxonomyCode`` is not in SEND's catalogue for this sender."""


class DuplicateNotification(SendError, Conflict):
    """409: a notification with the same ``paProtocolNumber`` and ``idempotenceToken`` (or
    the same pagoPA notice) already exists. Ask SEND for it
    (``SendClient.request_status``): never send it again with another token."""


class SendNotFound(SendError, NotFound):
    """404 Problem: no such IUN, notification request, notice or stream for this sender."""


class SendUnauthorized(SendError, AuthError):
    """401/403 from SEND's gateway: wrong or missing ``x-api-key``, or a voucher refused."""


class UploadRejected(SendError, ClientRequestError):
    """The presigned upload was refused (``BadDigest``, ``AccessDenied``, expired URL...).
    ``s3_code`` is the storage's error code."""

    def __init__(self, message: str, *, s3_code: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.s3_code = s3_code


class NotificationRefused(SendError, PermanentError):
    """SEND refused the notification request after validating it (REFUSED)."""

    def __init__(
        self,
        message: str,
        *,
        refusal: list[RefusalError] | None = None,
        notification_request_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.refusal: list[RefusalError] = list(refusal or [])
        self.notification_request_id = notification_request_id

    @property
    def codes(self) -> list[str]:
        return [e.code for e in self.refusal]


def parse_problem(body: str | None) -> Problem | None:
    """The ``Problem`` in ``body``, or ``None`` when it is not one."""
    if not body:
        return None
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return None
    try:
        return Problem.model_validate(doc)
    except ValueError:
        return None


def _describe(problem: Problem) -> str:
    parts = [f"{e.code}" + (f" at {e.element}" if e.element else "") for e in problem.errors]
    head = problem.title or problem.detail or "refused"
    return (f"{head}: {', '.join(parts)}" if parts else head)[:_MAX_MESSAGE]


def map_send_error(error: UpstreamError) -> ConnectorError:
    """The SEND error for a base ``UpstreamError`` (unchanged when nothing refines it)."""
    status = error.status
    problem = parse_problem(error.body)
    cls: type[SendError] | None = None
    if status in (401, 403) and problem is None:
        cls = SendUnauthorized
    elif problem is not None:
        codes = {e.code for e in problem.errors}
        if status == 409 or DUPLICATED_CODE in codes:
            cls = DuplicateNotification
        elif status == 400 and TAXONOMY_CODE in codes:
            cls = InvalidTaxonomyCode
        elif status == 400:
            cls = SendInvalidRequest
        elif status == 404:
            cls = SendNotFound
        elif status in (401, 403):
            cls = SendUnauthorized
    if cls is None:
        return error
    mapped = cls(
        _describe(problem) if problem is not None else error.message,
        errors=problem.errors if problem is not None else None,
        platform=error.platform or PLATFORM,
        status=status,
        retry_after=error.retry_after,
        request_id=error.request_id or (problem.traceId if problem is not None else None),
        body=error.body,
    )
    mapped.attempts = error.attempts
    mapped.retries_spent = error.retries_spent
    return mapped
