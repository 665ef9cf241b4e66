"""``GpdClient``: pagoPA's GPD (*Gestione Posizioni Debitorie*) for a creditor body.

Two APIs behind one client, both with the ``Ocp-Apim-Subscription-Key`` header:

- Debt Positions v1 (``gpd.json``), ``…/gpd/debt-positions-service/v1``: create, read,
  update, publish, invalidate, delete and list the debt positions of an organization
  (``/organizations/{organizationfiscalcode}/debtpositions…``);
- bulk upload v2 (``gpd_massive_v2.json``), ``…/upload/gpd/debt-positions-service/v2``:
  a ZIP holding one JSON file ``{"paymentPositions": [...]}`` sent as
  ``multipart/form-data`` to ``/brokers/{broker-code}/organizations/{cf}/debtpositions/file``,
  answered ``202`` with the file id in ``Location``, then ``…/file/{file-id}/status`` and
  ``…/file/{file-id}/report``.

Idempotency rests on the IUPD: GPD refuses a second position with the same IUPD (409).
``ensure_created`` turns that into "done" when the stored position is the one we sent
(typically: the first answer was lost and the retry hit the 409). See README.md.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import logging
import re
import secrets
import zipfile
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

import aiohttp
from yarl import Query

from ..base import BaseConnector, Response
from ..errors import ProtocolError, SigningError, UpstreamError
from ..retry import RetryPolicy, Sleep
from ..signing import OutgoingRequest
from .gpd_errors import (
    PLATFORM,
    DebtPositionExists,
    DebtPositionMismatch,
    DebtPositionNotFound,
    GpdValidationError,
    InvalidState,
    IuvInUse,
    map_gpd_error,
)
from .models import DebtPosition
from .states import DebtPositionStatus

__all__ = [
    "BULK_FILE_NAME",
    "BULK_MAX_CONTENT_BYTES",
    "PRODUCTION_BASE_URL",
    "PRODUCTION_UPLOAD_BASE_URL",
    "SUBSCRIPTION_KEY_HEADER",
    "UAT_BASE_URL",
    "UAT_UPLOAD_BASE_URL",
    "BulkEntry",
    "BulkReport",
    "BulkStatus",
    "EnsureResult",
    "GpdClient",
    "KeyProvider",
    "build_bulk_zip",
    "position_differences",
]

log = logging.getLogger("sportello.connectors.pagopa.gpd")

PRODUCTION_BASE_URL = "https://api.platform.pagopa.it/gpd/debt-positions-service/v1"
UAT_BASE_URL = "https://api.uat.platform.pagopa.it/gpd/debt-positions-service/v1"
PRODUCTION_UPLOAD_BASE_URL = "https://api.platform.pagopa.it/upload/gpd/debt-positions-service/v2"
UAT_UPLOAD_BASE_URL = "https://api.uat.platform.pagopa.it/upload/gpd/debt-positions-service/v2"
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
#: GPD-upload refuses a ZIP whose content is larger than this (``zip.content.size``).
BULK_MAX_CONTENT_BYTES = 100 * 1024 * 1024
#: Name of the JSON file inside the ZIP (GPD-upload only checks the ``.json`` extension).
BULK_FILE_NAME = "debt-positions.json"

#: Returns the current subscription key (plain or async callable), asked on every attempt.
KeyProvider = Callable[[], str | Awaitable[str]]

_ORG_CF = re.compile(r"[0-9]{11}")
_IUPD = re.compile(r"[A-Za-z0-9_*\-]{1,256}")
_FILE_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")
_LOCATION_FILE_ID = re.compile(r"/file/([^/?#]+)/status")
_GPD_SUFFIX = "/gpd/debt-positions-service/v1"
_UPLOAD_SUFFIX = "/upload/gpd/debt-positions-service/v2"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same positions always give the same bytes
_IN_PROGRESS = "IN_PROGRESS"


# -- results -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnsureResult:
    """What ``ensure_created`` did: ``created`` is False when the position already existed
    (identical to the one sent) and ``position`` is then GPD's ``GET`` answer
    (``PaymentPositionModelBaseResponse``); when created, the ``201`` body."""

    created: bool
    position: dict[str, Any]

    @property
    def status(self) -> str | None:
        value = self.position.get("status")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class BulkStatus:
    """``…/file/{file-id}/status``: ``operation_status`` is ``IN_PROGRESS``, ``COMPLETED``,
    ``COMPLETED_WITH_WARNINGS`` (some positions failed) or ``COMPLETED_UNSUCCESSFULLY``
    (all failed)."""

    file_id: str
    processed: int
    submitted: int
    operation_status: str
    start_time: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.operation_status != _IN_PROGRESS


@dataclass(frozen=True)
class BulkEntry:
    """One line of the report: the positions (IUPDs) that got the same answer from GPD."""

    status_code: int
    message: str
    iupds: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass(frozen=True)
class BulkReport:
    """``…/file/{file-id}/report``: GPD's answer for each position of the upload."""

    file_id: str
    processed: int
    submitted: int
    entries: tuple[BulkEntry, ...]
    start_time: str | None
    end_time: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def succeeded(self) -> tuple[str, ...]:
        """IUPDs GPD accepted (201 created, 200 updated or deleted)."""
        return tuple(i for e in self.entries if e.ok for i in e.iupds)

    @property
    def failed(self) -> dict[str, BulkEntry]:
        """IUPD → the entry (status code and GPD's reason) for each refused position."""
        return {i: e for e in self.entries if not e.ok for i in e.iupds}


# -- request helpers ---------------------------------------------------------------------


class _KeySigner:
    """Sets the subscription key header, asking the provider on every attempt."""

    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return "GpdKeySigner()"

    async def sign(self, request: OutgoingRequest) -> None:
        value = self._provider()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise SigningError("the GPD key provider returned no key", platform=PLATFORM)
        if any(ch in value for ch in "\r\n\0"):
            raise SigningError("the GPD key has control characters", platform=PLATFORM)
        request.headers[SUBSCRIPTION_KEY_HEADER] = value


class _UploadConnector(BaseConnector):
    """Same session and retry policy, pointed at the bulk-upload API."""

    platform = PLATFORM


def _invalid(message: str) -> GpdValidationError:
    return GpdValidationError(message, platform=PLATFORM)


def _org(org_cf: str) -> str:
    if not isinstance(org_cf, str) or not _ORG_CF.fullmatch(org_cf):
        raise _invalid("organization fiscal code: must be 11 digits")
    return org_cf


def _iupd(iupd: str) -> str:
    if not isinstance(iupd, str) or not _IUPD.fullmatch(iupd):
        raise _invalid("iupd: must be 1 to 256 letters, digits, '-', '_' or '*'")
    return iupd


def _file_id(file_id: str) -> str:
    if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id):
        raise _invalid("file id: must be 1 to 128 letters, digits, '-' or '_'")
    return file_id


def _positions_path(org_cf: str, iupd: str | None = None, action: str | None = None) -> str:
    path = f"/organizations/{_org(org_cf)}/debtpositions"
    if iupd is not None:
        path += f"/{_iupd(iupd)}"
    if action is not None:
        path += f"/{action}"
    return path


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _json_object(response: Response, operation: str) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ProtocolError(
            f"GPD {operation}: expected a JSON object",
            platform=PLATFORM,
            status=response.status,
            request_id=response.request_id,
        )
    return body


# -- bulk ZIP ----------------------------------------------------------------------------


def build_bulk_zip(
    positions: Sequence[DebtPosition] | None = None,
    *,
    iupds: Sequence[str] | None = None,
    max_content_bytes: int = BULK_MAX_CONTENT_BYTES,
) -> bytes:
    """The ZIP GPD-upload expects: one JSON file, ``{"paymentPositions": [<GPD v1 bodies>]}``
    for create/update, or ``{"paymentPositionIUPDs": [...]}`` (``iupds=``) for delete.

    Refuses (``GpdValidationError``, nothing sent) an empty list, an IUPD twice, an IUV
    used by two positions (GPD would create the first and refuse the second) and content
    larger than ``max_content_bytes``.
    """
    if (positions is None) == (iupds is None):
        raise ValueError("pass either positions or iupds")
    payload: dict[str, Any]
    if positions is not None:
        if not positions:
            raise _invalid("bulk upload: no debt positions")
        seen_iupd: set[str] = set()
        seen_iuv: set[str] = set()
        for index, position in enumerate(positions):
            if position.iupd in seen_iupd:
                raise _invalid(f"bulk upload: position {index} repeats an IUPD")
            seen_iupd.add(position.iupd)
            for option in position.payment_options:
                if option.iuv in seen_iuv:
                    raise _invalid(f"bulk upload: position {index} repeats IUV {option.iuv}")
                seen_iuv.add(option.iuv)
        payload = {"paymentPositions": [p.to_gpd() for p in positions]}
    else:
        assert iupds is not None
        if not iupds:
            raise _invalid("bulk delete: no IUPDs")
        if len(set(iupds)) != len(iupds):
            raise _invalid("bulk delete: an IUPD is listed twice")
        payload = {"paymentPositionIUPDs": [_iupd(i) for i in iupds]}
    content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if len(content) > max_content_bytes:
        raise _invalid(
            f"bulk upload: {len(content)} bytes of JSON, more than GPD's limit of "
            f"{max_content_bytes}: split the positions into several uploads"
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo(BULK_FILE_NAME, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, content)
    return buffer.getvalue()


def _multipart(filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = f"sportello-{secrets.token_hex(16)}"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), (
        f"multipart/form-data; boundary={boundary}"
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# -- comparison (ensure_created) ----------------------------------------------------------


def _instant(value: Any) -> datetime | None:
    """A GPD date-time as an aware UTC datetime to the millisecond (naive = UTC)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    parsed = parsed.astimezone(UTC)
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _blank(value: Any) -> Any:
    return None if value == "" else value


def _metadata(items: Any) -> dict[Any, Any]:
    if not isinstance(items, list):
        return {}
    return {i.get("key"): i.get("value") for i in items if isinstance(i, dict)}


def _stamp(value: Any) -> tuple[Any, ...] | None:
    if not isinstance(value, dict):
        return None
    return (value.get("hashDocument"), value.get("stampType"), value.get("provincialResidence"))


def _by(items: Any, key: str) -> dict[Any, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {i.get(key): i for i in items if isinstance(i, dict)}


def position_differences(position: DebtPosition, existing: Mapping[str, Any]) -> list[str]:
    """The fields where GPD's stored position (a ``GET`` answer) differs from ``position``.

    Compares what the v1 ``GET`` returns: ``type``, ``companyName``, ``officeName``,
    ``validityDate`` (when we set one: GPD fills it in at publication otherwise), and for
    each option (matched by IUV) ``amount``, ``description``, ``isPartialPayment``,
    ``dueDate``, ``retentionDate`` (when set), the metadata and each transfer (matched by
    ``idTransfer``: amount, beneficiary, remittance information, category, IBANs, stamp,
    company name when set, metadata). The v1 ``GET`` does not return the debtor
    (``fiscalCode``, ``fullName``, address), ``switchToExpired`` or ``payStandIn``: those
    cannot be compared. Paths only, never values.
    """
    sent = position.to_gpd()
    diffs: list[str] = []
    for key in ("type", "companyName", "officeName"):
        if _blank(sent.get(key)) != _blank(existing.get(key)):
            diffs.append(key)
    if "validityDate" in sent and _instant(sent["validityDate"]) != _instant(
        existing.get("validityDate")
    ):
        diffs.append("validityDate")
    ours, theirs = _by(sent["paymentOption"], "iuv"), _by(existing.get("paymentOption"), "iuv")
    for iuv in sorted(set(ours) | set(theirs), key=str):
        where = f"paymentOption[iuv={iuv}]"
        if iuv not in theirs:
            diffs.append(f"{where}: missing in GPD")
            continue
        if iuv not in ours:
            diffs.append(f"{where}: only in GPD")
            continue
        mine, stored = ours[iuv], theirs[iuv]
        for key in ("amount", "description", "isPartialPayment"):
            if mine.get(key) != stored.get(key):
                diffs.append(f"{where}.{key}")
        for key in ("dueDate", "retentionDate"):
            if key in mine and _instant(mine[key]) != _instant(stored.get(key)):
                diffs.append(f"{where}.{key}")
        if _metadata(mine.get("paymentOptionMetadata")) != _metadata(
            stored.get("paymentOptionMetadata")
        ):
            diffs.append(f"{where}.paymentOptionMetadata")
        diffs.extend(_transfer_differences(where, mine, stored))
    return diffs


def _transfer_differences(where: str, mine: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    diffs: list[str] = []
    ours = _by(mine.get("transfer"), "idTransfer")
    theirs = _by(stored.get("transfer"), "idTransfer")
    for tid in sorted(set(ours) | set(theirs), key=str):
        at = f"{where}.transfer[{tid}]"
        if tid not in ours or tid not in theirs:
            diffs.append(f"{at}: {'missing in GPD' if tid not in theirs else 'only in GPD'}")
            continue
        a, b = ours[tid], theirs[tid]
        for key in (
            "amount",
            "organizationFiscalCode",
            "remittanceInformation",
            "category",
            "iban",
            "postalIban",
        ):
            if _blank(a.get(key)) != _blank(b.get(key)):
                diffs.append(f"{at}.{key}")
        if _stamp(a.get("stamp")) != _stamp(b.get("stamp")):
            diffs.append(f"{at}.stamp")
        if "companyName" in a and a["companyName"] != b.get("companyName"):
            diffs.append(f"{at}.companyName")
        if _metadata(a.get("transferMetadata")) != _metadata(b.get("transferMetadata")):
            diffs.append(f"{at}.transferMetadata")
    return diffs


# -- client ------------------------------------------------------------------------------


class GpdClient(BaseConnector):
    """GPD client for the debt positions of one or more organizations (one subscription).

    ``api_key`` returns the subscription key (plain or async callable, asked on every
    attempt so a rotated key is picked up). ``upload_base_url`` defaults to the bulk API
    next to ``base_url`` (``…/gpd/debt-positions-service/v1`` →
    ``…/upload/gpd/debt-positions-service/v2``); ``upload_api_key`` defaults to
    ``api_key``; ``broker_code`` is the intermediary's code that the bulk API puts in
    its paths (it can also be given per call).

    Every call follows ``retry`` (429, 5xx and transport errors are retried): a create
    whose answer was lost is retried and gets a 409, which ``ensure_created`` resolves.
    Errors are mapped by ``gpd_errors.map_gpd_error``.
    """

    platform = PLATFORM

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = PRODUCTION_BASE_URL,
        *,
        api_key: KeyProvider,
        upload_base_url: str | None = None,
        upload_api_key: KeyProvider | None = None,
        broker_code: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        upload_timeout: float = 120.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            session,
            base_url,
            signer=_KeySigner(api_key),
            retry=retry,
            timeout=timeout,
            sleep=sleep,
        )
        if upload_base_url is None and self.base_url.endswith(_GPD_SUFFIX):
            upload_base_url = self.base_url.removesuffix(_GPD_SUFFIX) + _UPLOAD_SUFFIX
        self.upload_base_url = upload_base_url.rstrip("/") if upload_base_url else None
        self.broker_code = broker_code
        self._upload = (
            _UploadConnector(
                session,
                self.upload_base_url,
                signer=_KeySigner(upload_api_key or api_key),
                retry=self.retry_policy,
                timeout=upload_timeout,
                sleep=sleep,
            )
            if self.upload_base_url
            else None
        )

    def __repr__(self) -> str:
        return f"GpdClient({self.base_url!r}, upload_base_url={self.upload_base_url!r})"

    # -- debt positions ------------------------------------------------------------------

    async def create(
        self, org_cf: str, position: DebtPosition, *, to_publish: bool = False
    ) -> dict[str, Any]:
        """``POST …/debtpositions?toPublish=`` (createPosition): the created position.

        ``to_publish=False`` leaves it DRAFT; True makes it PUBLISHED (with a
        ``validity_date``) or VALID (payable at once). Raises ``DebtPositionExists`` when the
        IUPD or an IUV is already used: see ``ensure_created``.
        """
        response = await self._call(
            "POST",
            _positions_path(org_cf),
            "create",
            json=position.to_gpd(),
            params={"toPublish": _flag(to_publish)},
            expected=(201,),
        )
        return _json_object(response, "create")

    async def ensure_created(
        self, org_cf: str, position: DebtPosition, *, to_publish: bool = False
    ) -> EnsureResult:
        """Create ``position`` unless GPD already has it: safe to call again after any failure.

        On a 409 the position is read back by IUPD and compared with ``position``
        (``position_differences``): identical means done (``created=False``; with
        ``to_publish`` a DRAFT found is published); different raises
        ``DebtPositionMismatch``; no position with that IUPD means an IUV is taken by
        another position: ``IuvInUse``. Both are ``GpdConflict``.
        """
        try:
            created = await self.create(org_cf, position, to_publish=to_publish)
        except DebtPositionExists as conflict:
            try:
                existing = await self.get(org_cf, position.iupd)
            except DebtPositionNotFound:
                in_use = IuvInUse(
                    f"GPD refused IUPD {position.iupd} as a duplicate but has no position with "
                    "it: an IUV of its options is already used by another debt position of "
                    "the organization",
                    platform=PLATFORM,
                    status=conflict.status,
                    request_id=conflict.request_id,
                    body=conflict.body,
                )
                in_use.title, in_use.detail = conflict.title, conflict.detail
                raise in_use from conflict
            differences = position_differences(position, existing)
            if differences:
                shown = ", ".join(differences[:10])
                more = f" and {len(differences) - 10} more" if len(differences) > 10 else ""
                mismatch = DebtPositionMismatch(
                    f"GPD already has a different debt position with IUPD {position.iupd} "
                    f"(differs in: {shown}{more})",
                    platform=PLATFORM,
                    status=conflict.status,
                    request_id=conflict.request_id,
                    body=conflict.body,
                )
                mismatch.differences = tuple(differences)
                mismatch.title, mismatch.detail = conflict.title, conflict.detail
                raise mismatch from conflict
            log.info(
                "GPD already had debt position %s (status %s): treated as created",
                position.iupd,
                existing.get("status"),
            )
            if to_publish and existing.get("status") == DebtPositionStatus.DRAFT:
                existing = await self.publish(org_cf, position.iupd)
            return EnsureResult(created=False, position=existing)
        return EnsureResult(created=True, position=created)

    async def get(self, org_cf: str, iupd: str) -> dict[str, Any]:
        """``GET …/debtpositions/{iupd}``: ``PaymentPositionModelBaseResponse`` (status,
        dates, options with their NAV and payment state). Raises ``DebtPositionNotFound``."""
        response = await self._call("GET", _positions_path(org_cf, iupd), "get", expected=(200,))
        return _json_object(response, "get")

    async def update(
        self, org_cf: str, iupd: str, position: DebtPosition, *, to_publish: bool = False
    ) -> dict[str, Any]:
        """``PUT …/debtpositions/{iupd}?toPublish=``: replaces the position (DRAFT,
        PUBLISHED, VALID or EXPIRED only, else ``InvalidState``). ``to_publish=False`` puts
        it back to DRAFT. Safe to repeat."""
        if position.iupd != iupd:
            raise _invalid("update: the position's iupd differs from the iupd of the call")
        response = await self._call(
            "PUT",
            _positions_path(org_cf, iupd),
            "update",
            json=position.to_gpd(),
            params={"toPublish": _flag(to_publish)},
            expected=(200,),
        )
        return _json_object(response, "update")

    async def publish(self, org_cf: str, iupd: str) -> dict[str, Any]:
        """``POST …/{iupd}/publish``: DRAFT → PUBLISHED, or VALID when there is no
        validity date. ``InvalidState`` from any other state; when a retried attempt gets
        it because an earlier attempt did publish, the current position is returned."""
        return await self._action(org_cf, iupd, "publish", done=_PUBLISHED)

    async def invalidate(self, org_cf: str, iupd: str) -> dict[str, Any]:
        """``POST …/{iupd}/invalidate``: PUBLISHED or VALID → INVALID (final: the IUPD and
        its NAVs cannot be used again). ``InvalidState`` otherwise; a retry that finds the
        position already INVALID returns it."""
        return await self._action(org_cf, iupd, "invalidate", done=_INVALIDATED)

    async def delete(self, org_cf: str, iupd: str) -> None:
        """``DELETE …/{iupd}``: only before any payment (``InvalidState`` otherwise). A
        retried attempt that gets a 404 (an earlier attempt deleted it) counts as done."""
        try:
            await self._call("DELETE", _positions_path(org_cf, iupd), "delete", expected=(200, 204))
        except DebtPositionNotFound as error:
            if error.attempts <= 1:
                raise
            log.info("GPD delete of %s: 404 on a retry, the earlier attempt deleted it", iupd)

    async def list_positions(
        self,
        org_cf: str,
        *,
        page: int = 0,
        limit: int = 50,
        status: DebtPositionStatus | str | None = None,
        due_date_from: date | None = None,
        due_date_to: date | None = None,
        payment_date_from: date | None = None,
        payment_date_to: date | None = None,
        order_by: Literal["INSERTED_DATE", "IUPD", "STATUS", "COMPANY_NAME"] | None = None,
        ordering: Literal["ASC", "DESC"] | None = None,
    ) -> dict[str, Any]:
        """``GET …/debtpositions`` (getOrganizationDebtPositions): one page,
        ``{"payment_position_list": [...], "page_info": {...}}``.

        ``limit`` is at most 50. GPD's date filters are either on the due date or on the
        payment date, at most 30 days wide (a missing end is set 30 days from the other).
        """
        if not 1 <= limit <= 50 or page < 0:
            raise _invalid("list: limit must be 1 to 50 and page at least 0")
        due = due_date_from is not None or due_date_to is not None
        paid = payment_date_from is not None or payment_date_to is not None
        if due and paid:
            raise _invalid("list: filter on due dates or on payment dates, not both")
        params: dict[str, str] = {"page": str(page), "limit": str(limit)}
        for name, value in (
            ("due_date_from", due_date_from),
            ("due_date_to", due_date_to),
            ("payment_date_from", payment_date_from),
            ("payment_date_to", payment_date_to),
        ):
            if value is not None:
                params[name] = value.isoformat()
        if status is not None:
            params["status"] = DebtPositionStatus(status).value
        if order_by is not None:
            params["orderby"] = order_by
        if ordering is not None:
            params["ordering"] = ordering
        response = await self._call(
            "GET", _positions_path(org_cf), "list", params=params, expected=(200,)
        )
        return _json_object(response, "list")

    # -- bulk ----------------------------------------------------------------------------

    async def bulk_upload(
        self, org_cf: str, positions: Sequence[DebtPosition], *, broker_code: str | None = None
    ) -> str:
        """Create ``positions`` through GPD-upload; returns the file id to poll.

        GPD-upload creates them published (``toPublish=true``). A position GPD refuses
        (duplicate, dates, amounts) is reported as failed in ``bulk_report`` while the
        others are created; a malformed one makes GPD-upload refuse the whole file (400).
        """
        content = build_bulk_zip(positions)
        return await self._send_file("POST", org_cf, content, broker_code)

    async def bulk_update(
        self, org_cf: str, positions: Sequence[DebtPosition], *, broker_code: str | None = None
    ) -> str:
        """Replace ``positions`` (``PUT …/file``); returns the file id to poll."""
        content = build_bulk_zip(positions)
        return await self._send_file("PUT", org_cf, content, broker_code)

    async def bulk_delete(
        self, org_cf: str, iupds: Sequence[str], *, broker_code: str | None = None
    ) -> str:
        """Delete the positions with these IUPDs (``DELETE …/file``); returns the file id."""
        content = build_bulk_zip(iupds=iupds)
        return await self._send_file("DELETE", org_cf, content, broker_code)

    async def bulk_status(
        self, org_cf: str, file_id: str, *, broker_code: str | None = None
    ) -> BulkStatus:
        """``GET …/file/{file-id}/status``. Raises ``UploadNotFound``."""
        path = f"{self._file_path(org_cf, broker_code)}/{_file_id(file_id)}/status"
        response = await self._call(
            "GET", path, "upload_status", expected=(200,), transport=self._uploader()
        )
        body = _json_object(response, "upload status")
        return BulkStatus(
            file_id=str(body.get("uploadID") or body.get("fileId") or file_id),
            processed=_int(body.get("processedItem")),
            submitted=_int(body.get("submittedItem")),
            operation_status=str(body.get("operationStatus") or _IN_PROGRESS),
            start_time=_opt_str(body.get("startTime")),
            raw=body,
        )

    async def bulk_report(
        self, org_cf: str, file_id: str, *, broker_code: str | None = None
    ) -> BulkReport:
        """``GET …/file/{file-id}/report``: one entry per GPD answer, with the IUPDs that
        got it. Raises ``BulkReportNotReady`` (425) while the upload is being processed and
        ``UploadNotFound``."""
        path = f"{self._file_path(org_cf, broker_code)}/{_file_id(file_id)}/report"
        response = await self._call(
            "GET", path, "upload_report", expected=(200,), transport=self._uploader()
        )
        body = _json_object(response, "upload report")
        entries = []
        for item in body.get("responses") or []:
            if not isinstance(item, dict):
                continue
            iupds = item.get("iupds") or item.get("requestIDs") or []
            entries.append(
                BulkEntry(
                    status_code=_int(item.get("statusCode")),
                    message=str(item.get("statusMessage") or ""),
                    iupds=tuple(str(i) for i in iupds),
                )
            )
        return BulkReport(
            file_id=str(body.get("fileId") or body.get("uploadID") or file_id),
            processed=_int(body.get("processedItem")),
            submitted=_int(body.get("submittedItem")),
            entries=tuple(entries),
            start_time=_opt_str(body.get("startTime")),
            end_time=_opt_str(body.get("endTime")),
            raw=body,
        )

    async def wait_for_bulk(
        self,
        org_cf: str,
        file_id: str,
        *,
        broker_code: str | None = None,
        poll_interval: float = 2.0,
        max_wait: float = 3600.0,
    ) -> BulkReport:
        """Poll ``bulk_status`` every ``poll_interval`` seconds until the upload is done,
        then return its report. Raises ``TimeoutError`` after ``max_wait`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            status = await self.bulk_status(org_cf, file_id, broker_code=broker_code)
            if status.done:
                return await self.bulk_report(org_cf, file_id, broker_code=broker_code)
            if loop.time() + poll_interval > deadline:
                raise TimeoutError(
                    f"GPD bulk upload {file_id} still in progress after {max_wait:g}s "
                    f"({status.processed}/{status.submitted} processed)"
                )
            await self._sleep(poll_interval)

    # -- internals -----------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Query = None,
        expected: Collection[int],
        transport: BaseConnector | None = None,
    ) -> Response:
        connector = transport or self
        try:
            return await connector.request(
                method,
                path,
                json=json,
                data=data,
                headers=headers,
                params=params,
                expected=expected,
            )
        except UpstreamError as error:
            raise map_gpd_error(error, operation=operation) from error

    async def _action(
        self, org_cf: str, iupd: str, action: str, *, done: frozenset[str]
    ) -> dict[str, Any]:
        try:
            response = await self._call(
                "POST", _positions_path(org_cf, iupd, action), action, expected=(200,)
            )
        except InvalidState as error:
            if error.attempts <= 1:
                raise
            current = await self.get(org_cf, iupd)
            if current.get("status") not in done:
                raise
            log.info("GPD %s of %s: 409 on a retry, an earlier attempt did it", action, iupd)
            return current
        return _json_object(response, action)

    def _uploader(self) -> BaseConnector:
        if self._upload is None:
            raise ValueError(
                "the bulk API needs upload_base_url (it could not be derived from base_url)"
            )
        return self._upload

    def _file_path(self, org_cf: str, broker_code: str | None) -> str:
        broker = broker_code or self.broker_code
        if not broker or not _FILE_ID.fullmatch(broker):
            raise _invalid("bulk API: a broker code (letters, digits, '-', '_') is required")
        return f"/brokers/{broker}/organizations/{_org(org_cf)}/debtpositions/file"

    async def _send_file(
        self, method: str, org_cf: str, content: bytes, broker_code: str | None
    ) -> str:
        body, content_type = _multipart("debt-positions.zip", content)
        response = await self._call(
            method,
            self._file_path(org_cf, broker_code),
            "upload",
            data=body,
            headers={"Content-Type": content_type},
            expected=(202,),
            transport=self._uploader(),
        )
        match = _LOCATION_FILE_ID.search(response.headers.get("Location", ""))
        if match is None:
            raise ProtocolError(
                "GPD-upload accepted the file (202) without a file id in Location",
                platform=PLATFORM,
                status=response.status,
                request_id=response.request_id,
            )
        return match.group(1)


_PUBLISHED = frozenset({DebtPositionStatus.PUBLISHED.value, DebtPositionStatus.VALID.value})
_INVALIDATED = frozenset({DebtPositionStatus.INVALID.value})
