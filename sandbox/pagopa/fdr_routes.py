"""The FdR organization API (``fdr_organization.json``) and the FdR and clock controls.

Under ``/fdr-org/service/v1`` with the subscription key:

- ``GET /organizations/{organizationId}/fdrs[?flowDate=&publishedGt=&pspId=&page=&size=]``:
  latest revision of each published flow (``PaginatedFlowsResponse``); ``flowDate`` and
  ``publishedGt`` default to the start of the previous calendar month, ``size`` 1..1000
  (default 1000);
- ``GET .../fdrs/{fdr}/revisions/{revision}/psps/{pspId}``: ``SingleFlowResponse``;
- ``GET .../fdrs/{fdr}/revisions/{revision}/psps/{pspId}/payments[?page=&size=]``:
  ``PaginatedPaymentsResponse``.

Errors are FdR's ``ErrorResponse``: 400 ``FDR-1000`` (a bad parameter), ``FDR-1002`` (a bad
date), 404 ``FDR-3001`` "Reporting flow [...] not found".

Controls: ``POST /__sandbox/fdr/publish[?date=YYYY-MM-DD]`` (no date: every day due),
``POST /__sandbox/fdr/revise`` ``{organizationId, fdr, revoke?: [index], amounts?: {index:
cents}, statuses?: {index: payStatus}}``, ``GET /__sandbox/fdr`` (drafts and flows),
``GET /__sandbox/fdr/{organizationId}/{fdr}/xml`` (the legacy FlussoRiversamento),
``GET|POST /__sandbox/clock`` (``{"days": n, "seconds": s}`` moves the sandbox clock, then
publishes what became due).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from sportello.clock import Clock

from .apim import bad_request, json_response, read_json, subscription_refusal
from .fdr import Flow, Ledger, flusso_xml, iso_instant

__all__ = [
    "CLOCK",
    "DEFAULT_FDR_API_KEY",
    "FDR",
    "FDR_PREFIX",
    "FdrState",
    "SandboxClock",
    "add_fdr_routes",
]

FDR_PREFIX = "/fdr-org/service/v1"
DEFAULT_FDR_API_KEY = "sandbox-fdr-key"
_MAX_SIZE = 1000


class SandboxClock:
    """A :class:`~sportello.clock.Clock` that can be moved forward (``/__sandbox/clock``)."""

    def __init__(self, base: Clock) -> None:
        self._base = base
        self.offset = timedelta()

    def now(self) -> datetime:
        return self._base.now() + self.offset

    def monotonic(self) -> float:
        return self._base.monotonic()

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta():
            raise ValueError("the sandbox clock only moves forward")
        self.offset += delta


class FdrState:
    """The ledger and the API key, on the app."""

    def __init__(self, ledger: Ledger, api_key: str) -> None:
        self.ledger = ledger
        self.api_key = api_key


FDR = web.AppKey("pagopa_fdr", FdrState)
CLOCK = web.AppKey("pagopa_clock", SandboxClock)

_STATUS_TEXT = {400: "Bad Request", 404: "Not Found"}


class _FdrError(Exception):
    def __init__(self, status: int, code: str, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.path = status, code, message, path

    def response(self) -> web.Response:
        error: dict[str, Any] = {"message": self.message}
        if self.path is not None:
            error = {"path": self.path} | error
        return json_response(
            {
                "httpStatusCode": self.status,
                "httpStatusDescription": _STATUS_TEXT[self.status],
                "appErrorCode": self.code,
                "errors": [error],
            },
            self.status,
        )


def _int_param(request: web.Request, name: str, default: int, maximum: int | None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    bad = _FdrError(
        400, "FDR-1000", f"Bad request. Field [{name}] is [{raw}]. Not match a correct value", name
    )
    try:
        value = int(raw)
    except ValueError:
        raise bad from None
    if value < 1 or (maximum is not None and value > maximum):
        raise bad
    return value


def _instant_param(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise _FdrError(
            400,
            "FDR-1002",
            f"Bad request. Field [{name}] is [{raw}]. Expected ISO-8601 [2011-12-03T10:15:30Z]",
            name,
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _page(items: list[Any], page: int, size: int) -> tuple[list[Any], dict[str, int]]:
    total_pages = max(1, math.ceil(len(items) / size))
    chunk = items[(page - 1) * size : page * size]
    return chunk, {"pageSize": size, "pageNumber": page, "totPage": total_pages}


def _find(request: web.Request) -> Flow:
    state = request.app[FDR]
    info = request.match_info
    try:
        revision = int(info["revision"])
    except ValueError:
        raise _FdrError(
            400,
            "FDR-1000",
            f"Bad request. Field [revision] is [{info['revision']}]. Not match a correct value",
            "revision",
        ) from None
    flow = state.ledger.find(info["organizationId"], info["fdr"], revision, info["pspId"])
    if flow is None:
        raise _FdrError(404, "FDR-3001", f"Reporting flow [{info['fdr']}] not found")
    return flow


# -- FdR API ------------------------------------------------------------------------------


async def list_flows(request: web.Request) -> web.Response:
    state = request.app[FDR]
    now = state.ledger.clock.now().astimezone(UTC)
    previous_month = (now.replace(day=1) - timedelta(days=1)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )
    flow_date = _instant_param(request, "flowDate", previous_month)
    published_gt = _instant_param(request, "publishedGt", previous_month)
    page = _int_param(request, "page", 1, None)
    size = _int_param(request, "size", _MAX_SIZE, _MAX_SIZE)
    psp = request.query.get("pspId")
    flows = [
        f
        for f in state.ledger.latest(request.match_info["organizationId"])
        if f.published >= flow_date
        and f.published > published_gt
        and (not psp or f.psp.id_psp == psp)
    ]
    chunk, metadata = _page(flows, page, size)
    return json_response(
        {"metadata": metadata, "count": len(flows), "data": [f.listing() for f in chunk]}
    )


async def get_flow(request: web.Request) -> web.Response:
    return json_response(_find(request).single())


async def get_flow_payments(request: web.Request) -> web.Response:
    flow = _find(request)
    page = _int_param(request, "page", 1, None)
    size = _int_param(request, "size", _MAX_SIZE, None)
    chunk, metadata = _page(list(flow.payments), page, size)
    return json_response(
        {"metadata": metadata, "count": flow.total, "data": [p.as_json() for p in chunk]}
    )


@web.middleware
async def fdr_gateway(request: web.Request, handler: Any) -> web.StreamResponse:
    """Subscription key and ``ErrorResponse`` bodies on the FdR API paths."""
    if not request.path.startswith(FDR_PREFIX + "/") or FDR not in request.app:
        return await handler(request)  # type: ignore[no-any-return]
    refusal = subscription_refusal(request, request.app[FDR].api_key)
    if refusal is not None:
        return refusal
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except _FdrError as error:
        return error.response()


# -- controls -----------------------------------------------------------------------------


def _flows_view(flows: list[Flow]) -> list[dict[str, Any]]:
    return [
        f.single() | {"organizationId": f.org, "sumCents": f.sum_cents, "date": f.day.isoformat()}
        for f in flows
    ]


async def publish(request: web.Request) -> web.Response:
    ledger = request.app[FDR].ledger
    raw = request.query.get("date")
    if raw is None:
        return json_response({"published": _flows_view(ledger.publish_due())})
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return bad_request("date must be YYYY-MM-DD")
    return json_response({"published": _flows_view(ledger.publish(day))})


def _index_map(doc: Any, name: str, kind: type) -> dict[int, Any]:
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{name} must be an object of index: value")
    out = {}
    for key, value in doc.items():
        if not str(key).isdigit() or not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{name}: {key!r}: {value!r} does not fit")
        out[int(key)] = value
    return out


async def revise(request: web.Request) -> web.Response:
    ledger = request.app[FDR].ledger
    try:
        body = await read_json(request)
    except ValueError:
        return bad_request("body is not JSON")
    if not isinstance(body, dict):
        return bad_request("expected {organizationId, fdr, revoke?, amounts?, statuses?}")
    org, fdr = body.get("organizationId"), body.get("fdr")
    revoke = body.get("revoke", [])
    if not isinstance(org, str) or not isinstance(fdr, str):
        return bad_request("organizationId and fdr are required strings")
    if not isinstance(revoke, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) for i in revoke
    ):
        return bad_request("revoke must be a list of payment indexes")
    try:
        amounts = _index_map(body.get("amounts"), "amounts", int)
        statuses = _index_map(body.get("statuses"), "statuses", str)
        flow = ledger.revise(org, fdr, revoke=revoke, amounts=amounts, statuses=statuses)
    except KeyError:
        return json_response({"detail": f"no published flow {fdr} for {org}"}, 404)
    except ValueError as exc:
        return bad_request(str(exc))
    return json_response(_flows_view([flow])[0])


async def fdr_view(request: web.Request) -> web.Response:
    ledger = request.app[FDR].ledger
    flows = [f for revisions in ledger.flows.values() for f in revisions]
    return json_response({"drafts": ledger.drafts_view(), "flows": _flows_view(flows)})


async def fdr_xml(request: web.Request) -> web.Response:
    ledger = request.app[FDR].ledger
    revisions = ledger.flows.get((request.match_info["organizationId"], request.match_info["fdr"]))
    if not revisions:
        return json_response({"detail": "no such flow"}, 404)
    return web.Response(body=flusso_xml(revisions[-1]), content_type="application/xml")


async def get_clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    return json_response(
        {"now": iso_instant(clock.now()), "offsetSeconds": clock.offset.total_seconds()}
    )


async def advance_clock(request: web.Request) -> web.Response:
    clock = request.app[CLOCK]
    try:
        body = await read_json(request)
    except ValueError:
        return bad_request("body is not JSON")
    days = body.get("days", 0) if isinstance(body, dict) else None
    seconds = body.get("seconds", 0) if isinstance(body, dict) else None
    if not all(
        isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in (days, seconds)
    ):
        return bad_request("expected {days?: number >= 0, seconds?: number >= 0}")
    assert isinstance(days, int | float) and isinstance(seconds, int | float)
    clock.advance(timedelta(days=days, seconds=seconds))
    published = request.app[FDR].ledger.publish_due()
    return json_response({"now": iso_instant(clock.now()), "published": [f.fdr for f in published]})


def add_fdr_routes(app: web.Application) -> None:
    """Register the FdR API (with its gateway middleware) and the controls."""
    app.middlewares.append(fdr_gateway)
    router = app.router
    base = f"{FDR_PREFIX}/organizations/{{organizationId}}/fdrs"
    one = f"{base}/{{fdr}}/revisions/{{revision}}/psps/{{pspId}}"
    router.add_get(base, list_flows, name="IOrganizationsController_getAllPublishedFlows")
    router.add_get(one, get_flow, name="IOrganizationsController_getSinglePublishedFlow")
    router.add_get(
        f"{one}/payments",
        get_flow_payments,
        name="IOrganizationsController_getPaymentsFromPublishedFlow",
    )
    router.add_post("/__sandbox/fdr/publish", publish)
    router.add_post("/__sandbox/fdr/revise", revise)
    router.add_get("/__sandbox/fdr", fdr_view)
    router.add_get("/__sandbox/fdr/{organizationId}/{fdr}/xml", fdr_xml)
    router.add_get("/__sandbox/clock", get_clock)
    router.add_post("/__sandbox/clock", advance_clock)
    router.add_post("/__sandbox/clock/advance", advance_clock)
