"""Small HTTP helpers shared by the Node, Checkout and FdR routes of the pagoPA sandbox.

``subscription_refusal`` is what the Azure API gateway in front of every pagoPA REST API
answers for a missing or wrong ``Ocp-Apim-Subscription-Key`` (header, or the
``subscription-key`` query parameter).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

__all__ = [
    "SUBSCRIPTION_KEY_HEADER",
    "bad_request",
    "json_response",
    "read_json",
    "subscription_refusal",
]

SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
_MISSING = (
    "Access denied due to missing subscription key. "
    "Make sure to include subscription key when making requests to an API."
)
_INVALID = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription."
)


def json_response(payload: Any, status: int = 200) -> web.Response:
    """Compact UTF-8 JSON."""
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def bad_request(detail: str) -> web.Response:
    """A 400 for the sandbox's own (test and driver) routes."""
    return json_response(
        {
            "type": "about:blank",
            "title": "Invalid sandbox request",
            "status": 400,
            "detail": detail,
        },
        400,
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body (``{}`` when empty); ``ValueError`` when it is not JSON."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw.strip() else {}
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None


def subscription_refusal(request: web.Request, expected: str) -> web.Response | None:
    """None when the request carries ``expected``, else the gateway's 401."""
    key = request.headers.get(SUBSCRIPTION_KEY_HEADER) or request.query.get("subscription-key")
    if key == expected:
        return None
    response = json_response({"statusCode": 401, "message": _MISSING if not key else _INVALID}, 401)
    response.headers["WWW-Authenticate"] = (
        f'AzureApiManagementKey realm="https://api.platform.pagopa.it",'
        f'name="{SUBSCRIPTION_KEY_HEADER}",type="header"'
    )
    return response
