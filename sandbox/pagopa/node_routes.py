"""HTTP routes of the Node simulator: the PSP driver and the ``/__sandbox/`` controls.

- ``POST /psp/pay`` ``{fiscalCode, noticeNumber, amountCents?, standIn?, payer?, psp?}``:
  one modello-3 payment; 200 with ``outcome`` OK or KO, ``faultCode`` (``PPT_*``) and
  ``originalFaultCode`` on KO, ``receiptId`` and the receipt's delivery state on OK, and
  every step. 400 only for a malformed driver request.
- ``POST /psp/pay-batch`` ``{payments: [...], concurrency?}``: at most
  :data:`MAX_BATCH` payments, ``concurrency`` 1..:data:`MAX_CONCURRENCY` (default 8).
- ``GET|POST /__sandbox/stations``, ``DELETE /__sandbox/stations/{fiscal_code}``.
- ``GET /__sandbox/receipts[?status=&fiscalCode=]``, ``GET /__sandbox/receipts/{id}``
  (with the XML), ``POST /__sandbox/receipts/{id}/redeliver``.
- ``GET|POST /__sandbox/node``: settings (timeouts, ``retry_interval``, ``max_attempts``,
  ``duplicate_receipts``, ``stand_in``); ``GET /__sandbox/node/exchanges`` (last SOAP
  messages both ways), ``GET /__sandbox/node/violations`` (answers the Node refused).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from .apim import bad_request, json_response, read_json
from .node import Node, parse_pay_request, parse_station

__all__ = ["MAX_BATCH", "MAX_CONCURRENCY", "NODE", "add_node_routes"]

NODE = web.AppKey("pagopa_node", Node)
MAX_BATCH = 10_000
MAX_CONCURRENCY = 32


async def _body(request: web.Request) -> Any:
    try:
        return await read_json(request)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"title": "Invalid sandbox request", "detail": "body is not JSON"}),
            content_type="application/json",
        ) from None


async def psp_pay(request: web.Request) -> web.Response:
    node = request.app[NODE]
    try:
        pay = parse_pay_request(await _body(request))
    except ValueError as exc:
        return bad_request(str(exc))
    result = await node.pay(pay)
    return json_response(result.as_dict())


async def psp_pay_batch(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await _body(request)
    if not isinstance(body, dict) or not isinstance(body.get("payments"), list):
        return bad_request("expected {payments: [...], concurrency?}")
    payments = body["payments"]
    if not 1 <= len(payments) <= MAX_BATCH:
        return bad_request(f"payments must hold 1 to {MAX_BATCH} items")
    concurrency = body.get("concurrency", 8)
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        return bad_request(f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}")
    try:
        requests = [parse_pay_request(p) for p in payments]
    except ValueError as exc:
        return bad_request(f"payments: {exc}")
    results = await node.pay_many(requests, concurrency)
    answers = [r.as_dict() for r in results]
    return json_response(
        {
            "count": len(answers),
            "ok": sum(1 for a in answers if a["outcome"] == "OK"),
            "ko": sum(1 for a in answers if a["outcome"] == "KO"),
            "results": answers,
        }
    )


async def list_stations(request: web.Request) -> web.Response:
    node = request.app[NODE]
    return json_response({cf: s.as_dict() for cf, s in node.stations.items()})


async def set_stations(request: web.Request) -> web.Response:
    """``{ec_fiscal_code: {url, broker_id, station_id}, ...}``: added or replaced."""
    node = request.app[NODE]
    body = await _body(request)
    if not isinstance(body, dict) or not body:
        return bad_request("expected {ec_fiscal_code: {url, broker_id, station_id}}")
    try:
        stations = [parse_station(cf, doc) for cf, doc in body.items()]
    except ValueError as exc:
        return bad_request(str(exc))
    for station in stations:
        node.stations[station.fiscal_code] = station
    return json_response({cf: s.as_dict() for cf, s in node.stations.items()})


async def delete_station(request: web.Request) -> web.Response:
    node = request.app[NODE]
    if node.stations.pop(request.match_info["fiscal_code"], None) is None:
        return json_response({"detail": "no such station"}, 404)
    return json_response({cf: s.as_dict() for cf, s in node.stations.items()})


async def list_receipts(request: web.Request) -> web.Response:
    node = request.app[NODE]
    status = request.query.get("status")
    fiscal_code = request.query.get("fiscalCode")
    out = [
        r.as_dict()
        for r in node.receipts.values()
        if (not status or r.status == status)
        and (not fiscal_code or r.data.fiscal_code == fiscal_code)
    ]
    return json_response({"receipts": out, "count": len(out), "pending": len(node.pending)})


async def get_receipt(request: web.Request) -> web.Response:
    record = request.app[NODE].receipts.get(request.match_info["receipt_id"])
    if record is None:
        return json_response({"detail": "no such receipt"}, 404)
    return json_response(record.as_dict(xml=True))


async def redeliver_receipt(request: web.Request) -> web.Response:
    record = request.app[NODE].redeliver(request.match_info["receipt_id"])
    if record is None:
        return json_response({"detail": "no such receipt"}, 404)
    return json_response(record.as_dict())


async def get_settings(request: web.Request) -> web.Response:
    return json_response(asdict(request.app[NODE].settings))


async def set_settings(request: web.Request) -> web.Response:
    node = request.app[NODE]
    body = await _body(request)
    if not isinstance(body, dict):
        return bad_request("expected an object of settings")
    try:
        node.settings.update(body)
    except ValueError as exc:
        return bad_request(str(exc))
    return json_response(asdict(node.settings))


async def list_exchanges(request: web.Request) -> web.Response:
    node = request.app[NODE]
    operation = request.query.get("operation")
    out = [e for e in node.exchanges if not operation or e["operation"] == operation]
    return json_response({"exchanges": out, "count": len(out)})


async def list_violations(request: web.Request) -> web.Response:
    violations = list(request.app[NODE].violations)
    return json_response({"violations": violations, "count": len(violations)})


def add_node_routes(app: web.Application) -> None:
    """Register the routes above (the app must hold a :class:`Node` under :data:`NODE`)."""
    router = app.router
    router.add_post("/psp/pay", psp_pay)
    router.add_post("/psp/pay-batch", psp_pay_batch)
    router.add_get("/__sandbox/stations", list_stations)
    router.add_post("/__sandbox/stations", set_stations)
    router.add_delete("/__sandbox/stations/{fiscal_code}", delete_station)
    router.add_get("/__sandbox/receipts", list_receipts)
    router.add_get("/__sandbox/receipts/{receipt_id}", get_receipt)
    router.add_post("/__sandbox/receipts/{receipt_id}/redeliver", redeliver_receipt)
    router.add_get("/__sandbox/node", get_settings)
    router.add_post("/__sandbox/node", set_settings)
    router.add_get("/__sandbox/node/exchanges", list_exchanges)
    router.add_get("/__sandbox/node/violations", list_violations)
