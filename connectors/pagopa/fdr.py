"""Client of PagoPA's FdR organization API (``fdr_organization.json``): the reporting
flows (*flussi di rendicontazione*) PSPs published for a creditor.

- :meth:`FdrClient.list_flows`: ``GET /organizations/{org}/fdrs`` (every page), the latest
  revision of each published flow, optionally only those published after an instant;
- :meth:`FdrClient.get_flow`: the flow (``SingleFlowResponse``) and all its payments
  (``.../payments``, every page) as a :class:`Flow`.

Amounts come as euro numbers and are turned into cents exactly (``Decimal``); a field
that is missing or does not fit, or totals that disagree with the payments, raise
:class:`MalformedFlow`. HTTP failures raise :class:`FdrHttpError` (``retryable`` for
5xx, 429 and transport errors). Neither carries the subscription key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import aiohttp

__all__ = [
    "PRODUCTION_BASE_URL",
    "FdrClient",
    "FdrError",
    "FdrHttpError",
    "Flow",
    "FlowPayment",
    "FlowRef",
    "MalformedFlow",
]

PRODUCTION_BASE_URL = "https://api.platform.pagopa.it/fdr-org/service/v1"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
PAY_STATUSES = frozenset({"EXECUTED", "REVOKED", "STAND_IN", "STAND_IN_NO_RPT", "NO_RPT"})


class FdrError(Exception):
    """Base of the client's errors."""

    retryable = False


class FdrHttpError(FdrError):
    def __init__(self, message: str, status: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = status is None or status >= 500 or status == 429


class MalformedFlow(FdrError):
    """FdR answered, but not with a flow this client can trust."""


@dataclass(frozen=True, slots=True)
class FlowRef:
    """One entry of the list (``FlowByPSP``)."""

    fdr: str
    psp_id: str
    revision: int
    published: datetime | None


@dataclass(frozen=True, slots=True)
class FlowPayment:
    index: int
    iuv: str
    iur: str
    id_transfer: int
    amount: int  # cents
    pay_status: str
    pay_date: datetime


@dataclass(frozen=True, slots=True)
class Flow:
    fdr: str
    psp_id: str
    revision: int
    organization_id: str
    published: datetime | None
    regulation: str
    regulation_date: date | None
    total_payments: int
    sum_payments: int  # cents
    payments: tuple[FlowPayment, ...]
    #: ``{"flow": SingleFlowResponse, "payments": [Payment...]}`` exactly as served.
    raw: dict[str, Any]


def _instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedFlow(f"{name}: expected an ISO-8601 instant")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedFlow(f"{name}: {value[:40]!r} is not an ISO-8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cents(value: Any, name: str) -> int:
    """Euro (a JSON number or numeric string) to cents, exactly."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise MalformedFlow(f"{name}: expected an amount")
    try:
        amount = Decimal(str(value)) * 100
    except InvalidOperation:
        raise MalformedFlow(f"{name}: {str(value)[:20]!r} is not an amount") from None
    if amount != amount.to_integral_value() or amount < 0:
        raise MalformedFlow(f"{name}: {value} is not a whole number of cents")
    return int(amount)


def _text(doc: dict[str, Any], name: str, maximum: int = 255) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value or len(value) > maximum:
        raise MalformedFlow(f"{name}: expected a string of 1..{maximum} characters")
    return value


def _int(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedFlow(f"{name}: expected an integer")
    return value


def parse_payment(doc: Any, where: str) -> FlowPayment:
    if not isinstance(doc, dict):
        raise MalformedFlow(f"{where}: expected an object")
    try:
        status = _text(doc, "payStatus", 20)
        if status not in PAY_STATUSES:
            raise MalformedFlow(f"payStatus: {status[:20]!r} is not a known status")
        return FlowPayment(
            index=_int(doc, "index"),
            iuv=_text(doc, "iuv", 35),
            iur=_text(doc, "iur", 255),
            id_transfer=_int(doc, "idTransfer"),
            amount=cents(doc.get("pay"), "pay"),
            pay_status=status,
            pay_date=_instant(doc.get("payDate"), "payDate"),
        )
    except MalformedFlow as exc:
        raise MalformedFlow(f"{where}: {exc}") from None


def parse_flow(single: Any, payments: list[Any], org: str) -> Flow:
    """A :class:`Flow` from FdR's documents; :class:`MalformedFlow` when they do not fit."""
    if not isinstance(single, dict):
        raise MalformedFlow("the flow is not a JSON object")
    receiver = single.get("receiver")
    receiver_org = receiver.get("organizationId") if isinstance(receiver, dict) else None
    if receiver_org != org:
        raise MalformedFlow(f"receiver.organizationId is {receiver_org!r}, not {org}")
    sender = single.get("sender")
    psp = sender.get("pspId") if isinstance(sender, dict) else None
    if not isinstance(psp, str) or not psp:
        raise MalformedFlow("sender.pspId is missing")
    parsed = tuple(parse_payment(p, f"payment {i + 1}") for i, p in enumerate(payments))
    if len({p.index for p in parsed}) != len(parsed):
        raise MalformedFlow("two payments have the same index")
    total = _int(single, "totPayments")
    amount = cents(single.get("sumPayments"), "sumPayments")
    if total != len(parsed):
        raise MalformedFlow(f"totPayments is {total} but the flow has {len(parsed)} payments")
    if amount != sum(p.amount for p in parsed):
        raise MalformedFlow("sumPayments differs from the sum of the payments")
    regulation_date = None
    raw_date = single.get("regulationDate")
    if isinstance(raw_date, str):
        try:
            regulation_date = date.fromisoformat(raw_date[:10])
        except ValueError:
            raise MalformedFlow("regulationDate is not a date") from None
    published = single.get("published")
    return Flow(
        fdr=_text(single, "fdr", 100),
        psp_id=psp,
        revision=_int(single, "revision"),
        organization_id=org,
        published=_instant(published, "published") if published is not None else None,
        regulation=_text(single, "regulation", 35),
        regulation_date=regulation_date,
        total_payments=total,
        sum_payments=amount,
        payments=parsed,
        raw={"flow": single, "payments": payments},
    )


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class FdrClient:
    """FdR organization API over ``session`` (base URL ends with ``/fdr-org/service/v1``)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = PRODUCTION_BASE_URL,
        *,
        api_key: str,
        page_size: int = 1000,
        timeout: float = 30.0,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.page_size = page_size
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"FdrClient({self.base_url!r})"

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        url = self.base_url + path
        try:
            async with self.session.get(
                url, params=params, headers={KEY_HEADER: self._key}, timeout=self.timeout
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise FdrHttpError(f"GET {path}: HTTP {resp.status}", resp.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise FdrHttpError(f"GET {path}: {type(exc).__name__}", None) from None
        try:
            return json.loads(body)
        except ValueError:
            raise MalformedFlow(f"GET {path}: the answer is not JSON") from None

    async def _pages(self, path: str, params: dict[str, str]) -> list[Any]:
        out: list[Any] = []
        page = 1
        while True:
            doc = await self._get(path, {**params, "page": str(page), "size": str(self.page_size)})
            data = doc.get("data") if isinstance(doc, dict) else None
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            if not isinstance(data, list) or not isinstance(meta, dict):
                raise MalformedFlow(f"GET {path}: expected {{metadata, data}}")
            out.extend(data)
            pages = meta.get("totPage")
            if not isinstance(pages, int) or page >= pages or not data:
                return out
            page += 1

    @staticmethod
    def _org_path(org: str) -> str:
        return f"/organizations/{quote(org, safe='')}/fdrs"

    async def list_flows(
        self, org: str, *, published_after: datetime | None = None, psp_id: str | None = None
    ) -> list[FlowRef]:
        """The latest revision of each flow published for ``org`` (after an instant)."""
        params: dict[str, str] = {}
        if published_after is not None:
            params["publishedGt"] = _iso(published_after)
            params["flowDate"] = _iso(published_after)
        if psp_id:
            params["pspId"] = psp_id
        refs = []
        for i, item in enumerate(await self._pages(self._org_path(org), params)):
            if not isinstance(item, dict):
                raise MalformedFlow(f"flow list entry {i + 1}: expected an object")
            published = item.get("published")
            refs.append(
                FlowRef(
                    fdr=_text(item, "fdr", 100),
                    psp_id=_text(item, "pspId", 35),
                    revision=_int(item, "revision"),
                    published=_instant(published, "published") if published else None,
                )
            )
        return refs

    async def get_flow(self, org: str, ref: FlowRef) -> Flow:
        """The flow ``ref`` with all its payments."""
        path = (
            f"{self._org_path(org)}/{quote(ref.fdr, safe='')}/revisions/{ref.revision}"
            f"/psps/{quote(ref.psp_id, safe='')}"
        )
        single = await self._get(path, {})
        payments = await self._pages(path + "/payments", {})
        flow = parse_flow(single, payments, org)
        if (flow.fdr, flow.psp_id, flow.revision) != (ref.fdr, ref.psp_id, ref.revision):
            raise MalformedFlow("the flow served is not the one asked for")
        return flow
