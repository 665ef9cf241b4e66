"""GPD's payments-receipts API (``gpd_payments.json``) on the GPD sandbox.

Routes, under ``/gpd/payments-receipts-service/v1`` with the GPD subscription key:

- ``GET /payments/{organizationfiscalcode}/receipts`` (``getOrganizationReceipts``):
  ``PaymentsResult`` pages (``pageNum`` from 0, ``pageSize`` ≤ 100, default 20) of
  ``{organizationFiscalCode, iuv, debtor, paymentDateTime, status}``, filtered by
  ``debtor``, ``from`` / ``to`` (payment day, ``yyyy-MM-dd``, Italian time),
  ``segregationCodes`` (``01,02``: the first two digits of the IUV) and ``debtorOrIuv``
  (start of either);
- ``GET /payments/{organizationfiscalcode}/receipts/{iuv}`` (``getReceiptByIUV``): the
  receipt as GPD keeps it, the ``paSendRTV2`` SOAP request (``application/xml``); 404
  when the option is unknown or unpaid.

A receipt exists for every option the GPD side marked paid: ``POST /__sandbox/pay/{org}/{iuv}``
(whose body may also say ``"stand_in": true``, ``"psp_id"``) makes one right away, with
the option's transfers, and — when the app also runs FdR — accounts the payment in the
reporting flows, as the Node does for the payments it collects. An option found paid
without one (another route marked it) gets its receipt built on first read.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from .fdr_routes import FDR
from .gpd_app import STATE, SUBSCRIPTION_KEY_HEADER
from .node_model import DEFAULT_PSPS, Psp, ReceiptRecord, Station
from .node_soap import ReceiptData, Stamp, Subject, Transfer, envelope, send_rt_v2_request

__all__ = ["RECEIPTS", "RECEIPTS_PREFIX", "GpdReceipts", "add_gpd_receipts_routes"]

RECEIPTS_PREFIX = "/gpd/payments-receipts-service/v1"
ROME = ZoneInfo("Europe/Rome")
_BROKER = "99999000000"
_STATION = "99999000000_01"
_SUBJECT_KEYS = {
    "streetName": "streetName",
    "civicNumber": "civicNumber",
    "postalCode": "postalCode",
    "city": "city",
    "province": "stateProvinceRegion",
    "country": "country",
    "email": "e-mail",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Receipt:
    org: str
    iuv: str
    debtor: str
    paid_at: datetime
    xml: bytes


@dataclass
class GpdReceipts:
    """The receipts GPD keeps, by (organization, IUV)."""

    receipts: dict[tuple[str, str], _Receipt]

    def reset(self) -> None:
        self.receipts.clear()


RECEIPTS = web.AppKey("gpd_sandbox_receipts", GpdReceipts)


def _transfers(org: str, body: dict[str, Any]) -> tuple[Transfer, ...]:
    out = []
    for t in body.get("transfer") or []:
        stamp = t.get("stamp")
        out.append(
            Transfer(
                id_transfer=int(t["idTransfer"]),
                amount_cents=int(t["amount"]),
                fiscal_code_pa=t.get("organizationFiscalCode") or org,
                remittance=str(t["remittanceInformation"])[:140],
                category=t["category"],
                iban=t.get("iban") if not stamp else None,
                stamp=Stamp(stamp["hashDocument"], stamp["stampType"], stamp["provincialResidence"])
                if stamp
                else None,
                metadata=tuple((m["key"], m["value"]) for m in t.get("transferMetadata") or []),
            )
        )
    return tuple(out)


def _make_receipt(
    app: web.Application, org: str, iuv: str, *, stand_in: bool, psp: Psp
) -> _Receipt | None:
    state = app[STATE]
    iupd = state.iuvs.get((org, iuv))
    position = state.positions.get((org, iupd)) if iupd is not None else None
    if position is None:
        return None
    option = next((o for o in position.options if o.iuv == iuv), None)
    if option is None or option.status != "PO_PAID":
        return None
    debtor = position.body
    details = tuple(
        (name, str(debtor[key]))
        for key, name in _SUBJECT_KEYS.items()
        if debtor.get(key) and (key != "province" or len(str(debtor[key])) <= 35)
    )
    paid_at = option.payment_date or state.now()
    local = paid_at.astimezone(ROME)
    data = ReceiptData(
        receipt_id=option.id_receipt or f"{org}{iuv}",
        notice_number="3" + iuv,
        fiscal_code=org,
        creditor_reference_id=iuv,
        amount_cents=int(option.body["amount"]),
        description=str(option.body.get("description") or "Pagamento")[:140],
        company_name=str(debtor.get("companyName") or org)[:140],
        office_name=None,
        debtor=Subject(
            str(debtor.get("type", "F")),
            str(debtor.get("fiscalCode", "ANONIMO")),
            str(debtor.get("fullName", "ANONIMO"))[:70],
            details,
        ),
        transfers=_transfers(org, option.body),
        id_psp=psp.id_psp,
        psp_company_name=(option.psp_company or psp.name)[:70],
        psp_fiscal_code=psp.fiscal_code,
        id_channel=psp.channel_id,
        channel_description=psp.channel_description,
        payment_method=option.payment_method or psp.payment_method,
        fee_cents=psp.fee_cents,
        payment_date_time=local.replace(tzinfo=None, microsecond=0).isoformat(),
        application_date=local.date().isoformat(),
        transfer_date=local.date().isoformat(),
        stand_in=stand_in,
    )
    xml = envelope(send_rt_v2_request(org, _BROKER, _STATION, data))
    receipt = _Receipt(org, iuv, str(debtor.get("fiscalCode", "")), paid_at, xml)
    app[RECEIPTS].receipts[(org, iuv)] = receipt
    if FDR in app:
        station = Station(org, "", _BROKER, _STATION, company_name=data.company_name)
        app[FDR].ledger.account(ReceiptRecord(data, station, xml, paid_at, psp))
    return receipt


def _paid(app: web.Application, org: str) -> list[_Receipt]:
    """Every receipt of ``org``: the kept ones, plus any paid option without one."""
    state, kept = app[STATE], app[RECEIPTS].receipts
    out = []
    for (owner, _), position in state.positions.items():
        if owner != org:
            continue
        for option in position.options:
            if option.status != "PO_PAID":
                continue
            receipt = kept.get((org, option.iuv)) or _make_receipt(
                app, org, option.iuv, stand_in=False, psp=DEFAULT_PSPS[0]
            )
            if receipt is not None:
                out.append(receipt)
    out.sort(key=lambda r: (r.paid_at, r.iuv))
    return out


def _problem(status: int, title: str, detail: str) -> web.Response:
    return web.json_response({"title": title, "status": status, "detail": detail}, status=status)


def _authorized(request: web.Request) -> web.Response | None:
    key = request.headers.get(SUBSCRIPTION_KEY_HEADER) or request.query.get("subscription-key")
    state = request.app[STATE]
    if not key or key != state.api_key:
        return web.json_response(
            {"statusCode": 401, "message": "Access denied due to invalid subscription key."},
            status=401,
        )
    if state.organizations is not None and request.match_info["org"] not in state.organizations:
        return web.json_response(
            {"statusCode": 403, "message": "You are not allowed to access this resource."},
            status=403,
        )
    return None


def _day(value: str | None) -> date | None:
    if not value:
        return None
    return date.fromisoformat(value[:10])


async def list_receipts(request: web.Request) -> web.Response:
    refused = _authorized(request)
    if refused is not None:
        return refused
    org, q = request.match_info["org"], request.query
    try:
        page = int(q.get("pageNum", "0"))
        size = int(q.get("pageSize", "20"))
        start, end = _day(q.get("from")), _day(q.get("to"))
    except ValueError as exc:
        return _problem(400, "BAD REQUEST", str(exc))
    if page < 0 or not 1 <= size <= 100:
        return _problem(400, "BAD REQUEST", "pageNum >= 0, 1 <= pageSize <= 100")
    segregation = set(filter(None, (q.get("segregationCodes") or "").split(",")))
    prefix = q.get("debtorOrIuv")
    found = []
    for r in _paid(request.app, org):
        day = r.paid_at.astimezone(ROME).date()
        if (start and day < start) or (end and day > end):
            continue
        if q.get("debtor") and r.debtor != q["debtor"]:
            continue
        if segregation and r.iuv[:2] not in segregation:
            continue
        if prefix and not (r.debtor.startswith(prefix) or r.iuv.startswith(prefix)):
            continue
        found.append(r)
    pages = (len(found) + size - 1) // size
    chunk = found[page * size : (page + 1) * size]
    return web.json_response(
        {
            "currentPageNumber": page,
            "length": len(chunk),
            "totalPages": pages,
            "results": [
                {
                    "organizationFiscalCode": r.org,
                    "iuv": r.iuv,
                    "debtor": r.debtor,
                    "paymentDateTime": r.paid_at.astimezone(ROME)
                    .replace(tzinfo=None, microsecond=0)
                    .isoformat(),
                    "status": "PAID",
                }
                for r in chunk
            ],
        }
    )


async def get_receipt(request: web.Request) -> web.Response:
    refused = _authorized(request)
    if refused is not None:
        return refused
    org, iuv = request.match_info["org"], request.match_info["iuv"]
    segregation = set(filter(None, (request.query.get("segregationCodes") or "").split(",")))
    receipt = request.app[RECEIPTS].receipts.get((org, iuv))
    if receipt is None:
        receipt = _make_receipt(request.app, org, iuv, stand_in=False, psp=DEFAULT_PSPS[0])
    if receipt is None or (segregation and iuv[:2] not in segregation):
        return _problem(
            404,
            "Not found the receipt",
            f"Not found a receipt for Organization Fiscal Code {org} and IUV {iuv}",
        )
    return web.Response(body=receipt.xml, content_type="application/xml")


@web.middleware
async def _on_pay(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After ``/__sandbox/pay/{org}/{iuv}`` marked an option paid: write its receipt.
    After ``/__sandbox/reset``: forget the receipts."""
    path = request.path
    if request.method != "POST" or not path.startswith(("/__sandbox/pay/", "/__sandbox/reset")):
        return await handler(request)
    extra: Any = {}
    if path.startswith("/__sandbox/pay/"):
        try:
            extra = json.loads(await request.read() or b"{}")
        except ValueError:
            extra = {}
    response = await handler(request)
    if path == "/__sandbox/reset":
        request.app[RECEIPTS].reset()
    elif response.status == 200:
        extra = extra if isinstance(extra, dict) else {}
        psps = {p.id_psp: p for p in DEFAULT_PSPS}
        psp = psps.get(str(extra.get("psp_id")), DEFAULT_PSPS[0])
        org, iuv = request.match_info["org"], request.match_info["iuv"]
        _make_receipt(request.app, org, iuv, stand_in=extra.get("stand_in") is True, psp=psp)
    return response


def add_gpd_receipts_routes(app: web.Application) -> None:
    """The receipts API and the receipt-writing hook on the GPD sandbox ``app``."""
    app[RECEIPTS] = GpdReceipts({})
    app.middlewares.append(_on_pay)
    base = f"{RECEIPTS_PREFIX}/payments/{{org}}/receipts"
    app.router.add_get(base, list_receipts, name="getOrganizationReceipts")
    app.router.add_get(f"{base}/{{iuv}}", get_receipt, name="getReceiptByIUV")
