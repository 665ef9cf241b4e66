"""The handoff of a SPID/CIE login to the tenant's application: code for identity, once.

After an accepted login the browser lands on the application's ``return_to`` with a
one-time ``code`` (valid two minutes). The application's server exchanges it here with its
own API key (scope ``personal_data``); the identity is handed out once, then wiped, and the
read is audited. Why a code and not a signed JWT in the browser: the identity (fiscal code,
name) never travels through the browser or its history, the exchange is authenticated with
the tenant's API key, and a stolen code is useless without that key.

The endpoint requires ``Idempotency-Key`` like every POST, but a repeat never replays the
identity (that would mean storing it): the code is the one-time key, a second exchange
answers 404.
"""

from __future__ import annotations

from aiohttp import web

from sportello.api.bodies import loads_json, read_body
from sportello.api.core import (
    PREFIX,
    _Problem,
    handles_problems,
    idempotency_key,
    require,
    tenant_of,
)
from sportello.api.openapi import operation
from sportello.appkeys import CLOCK
from sportello.platforms.login.api_models import LoginExchange, LoginIdentity
from sportello.platforms.login.routes import LOGIN


@operation(
    "exchangeLoginCode",
    "The identity behind a SPID/CIE login code, once (scope personal_data; audited). A "
    "repeat answers 404: the identity is never stored for replay.",
    body=LoginExchange,
    idempotent=True,
    responses={
        200: LoginIdentity,
        404: "Unknown, expired or already exchanged code, or no such tenant",
    },
    scope="personal_data",
)
@handles_problems
async def exchange_code(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    idempotency_key(request)
    try:
        body = loads_json(await read_body(request) or b"{}")
    except ValueError:
        raise _Problem(400, "Bad Request", 'the body must be JSON: {"code": "..."}') from None
    code = body.get("code") if isinstance(body, dict) else None
    if not isinstance(code, str) or not 20 <= len(code) <= 100:
        raise _Problem(400, "Bad Request", "code: the value received on return_to (string)")
    identity = await request.app[LOGIN].hand_over(
        tenant_id, code, actor=p.actor, purpose="login handoff", now=request.app[CLOCK].now()
    )
    if identity is None:
        raise _Problem(404, "Not Found", "unknown, expired or already exchanged code")
    return web.json_response(identity)


def routes() -> list[web.RouteDef]:
    return [web.post(PREFIX + "/tenants/{tenant}/logins/exchange", exchange_code)]
