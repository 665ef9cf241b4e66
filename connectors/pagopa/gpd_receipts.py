"""``GpdReceiptsClient``: GPD's payments-receipts API (``gpd_payments.json``).

``…/gpd/payments-receipts-service/v1``, same subscription key as GPD:

- ``GET /payments/{organizationfiscalcode}/receipts`` (``getOrganizationReceipts``):
  pages of ``{organizationFiscalCode, iuv, debtor, paymentDateTime, status}`` (``pageNum``
  from 0, ``pageSize`` ≤ 100), filtered by ``from``/``to`` (payment day), ``debtor``,
  ``service``, ``segregationCodes`` and ``debtorOrIuv``;
- ``GET /payments/{organizationfiscalcode}/receipts/{iuv}`` (``getReceiptByIUV``): the
  receipt GPD stored, the XML of the ``paSendRT[V2]`` request; 404 when there is none.

The hub reads the list to find new receipts and fetches each one's XML, which it parses
and stores as if the Node had sent it (``sportello.platforms.pagopa.receipts``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp

from ..base import BaseConnector
from ..errors import NotFound, ProtocolError
from ..retry import RetryPolicy
from .gpd import KeyProvider, _KeySigner
from .gpd_errors import PLATFORM

__all__ = [
    "PRODUCTION_RECEIPTS_BASE_URL",
    "GpdReceiptsClient",
    "ReceiptSummary",
    "ReceiptsPage",
    "receipts_base_url",
]

PRODUCTION_RECEIPTS_BASE_URL = "https://api.platform.pagopa.it/gpd/payments-receipts-service/v1"
_GPD_SUFFIX = "/gpd/debt-positions-service/v1"
_RECEIPTS_SUFFIX = "/gpd/payments-receipts-service/v1"
_ORG_CF = re.compile(r"[0-9]{11}")
_IUV = re.compile(r"[A-Za-z0-9]{1,35}")
_SEGREGATION = re.compile(r"\d{2}(,\d{2})*")
#: The largest page the API serves.
MAX_PAGE_SIZE = 100


def receipts_base_url(gpd_base_url: str | None) -> str:
    """The receipts API next to a GPD debt-positions base URL (production when None)."""
    if gpd_base_url and gpd_base_url.rstrip("/").endswith(_GPD_SUFFIX):
        return gpd_base_url.rstrip("/").removesuffix(_GPD_SUFFIX) + _RECEIPTS_SUFFIX
    return PRODUCTION_RECEIPTS_BASE_URL


@dataclass(frozen=True, slots=True)
class ReceiptSummary:
    """One row of the list (``ReceiptModelResponse``)."""

    organization_fiscal_code: str
    iuv: str
    debtor: str | None
    payment_date_time: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class ReceiptsPage:
    page: int
    total_pages: int
    results: tuple[ReceiptSummary, ...]


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {what}")
    return value


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


class GpdReceiptsClient(BaseConnector):
    """Client of the receipts API for one subscription (``api_key`` like ``GpdClient``)."""

    platform = PLATFORM

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = PRODUCTION_RECEIPTS_BASE_URL,
        *,
        api_key: KeyProvider,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(
            session, base_url, signer=_KeySigner(api_key), retry=retry, timeout=timeout
        )

    def __repr__(self) -> str:
        return f"GpdReceiptsClient({self.base_url!r})"

    async def list_page(
        self,
        org_cf: str,
        *,
        page: int = 0,
        page_size: int = MAX_PAGE_SIZE,
        from_day: date | None = None,
        to_day: date | None = None,
        debtor: str | None = None,
        service: str | None = None,
        segregation_codes: Sequence[str] = (),
        debtor_or_iuv: str | None = None,
    ) -> ReceiptsPage:
        """One page of ``getOrganizationReceipts``."""
        if page < 0 or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page >= 0 and 1 <= page_size <= {MAX_PAGE_SIZE}")
        params: dict[str, str] = {"pageNum": str(page), "pageSize": str(page_size)}
        if from_day is not None:
            params["from"] = from_day.isoformat()
        if to_day is not None:
            params["to"] = to_day.isoformat()
        if debtor:
            params["debtor"] = debtor
        if service:
            params["service"] = service
        if segregation_codes:
            params["segregationCodes"] = _check(
                _SEGREGATION, ",".join(segregation_codes), "segregation codes"
            )
        if debtor_or_iuv:
            params["debtorOrIuv"] = debtor_or_iuv
        path = f"/payments/{_check(_ORG_CF, org_cf, 'organization fiscal code')}/receipts"
        response = await self.request("GET", path, params=params, expected=(200,))
        body = response.json() if response.body else {}
        if not isinstance(body, dict) or not isinstance(body.get("results", []), list):
            raise ProtocolError(
                "receipts list: expected a PaymentsResult object",
                platform=PLATFORM,
                status=response.status,
                request_id=response.request_id,
            )
        results = tuple(
            ReceiptSummary(
                organization_fiscal_code=str(item.get("organizationFiscalCode") or org_cf),
                iuv=str(item["iuv"]),
                debtor=_opt(item.get("debtor")),
                payment_date_time=_opt(item.get("paymentDateTime")),
                status=_opt(item.get("status")),
            )
            for item in body.get("results") or []
            if isinstance(item, dict) and item.get("iuv")
        )
        return ReceiptsPage(
            page=int(body.get("currentPageNumber") or page),
            total_pages=int(body.get("totalPages") or 0),
            results=results,
        )

    async def iter_receipts(
        self,
        org_cf: str,
        *,
        from_day: date | None = None,
        to_day: date | None = None,
        segregation_codes: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[ReceiptSummary]:
        """Every receipt of the filters, page after page."""
        page = 0
        while True:
            result = await self.list_page(
                org_cf,
                page=page,
                page_size=page_size,
                from_day=from_day,
                to_day=to_day,
                segregation_codes=segregation_codes,
            )
            for item in result.results:
                yield item
            page += 1
            if page >= result.total_pages or not result.results:
                return

    async def get_receipt(
        self, org_cf: str, iuv: str, *, segregation_codes: Sequence[str] = ()
    ) -> bytes | None:
        """The stored receipt's XML (``paSendRT[V2]`` request), None when GPD has none."""
        path = (
            f"/payments/{_check(_ORG_CF, org_cf, 'organization fiscal code')}"
            f"/receipts/{_check(_IUV, iuv, 'IUV')}"
        )
        params = (
            {"segregationCodes": _check(_SEGREGATION, ",".join(segregation_codes), "codes")}
            if segregation_codes
            else None
        )
        try:
            response = await self.request("GET", path, params=params, expected=(200,))
        except NotFound:
            return None
        return response.body
