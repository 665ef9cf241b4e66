"""REST API route for resident look-ups (ANPR + the comune's registry), always audited."""

from __future__ import annotations

from aiohttp import web

from .api import PREFIX, _Problem, handles_problems, require, tenant_of
from .appkeys import RESIDENTS
from .residents import LookupRefused, Requester


@handles_problems
async def lookup_resident(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    purpose = request.query.get("purpose", "").strip()
    if not purpose:
        raise _Problem(
            400, "Bad Request", "purpose is required: the file or protocol reference of the request"
        )
    who = Requester(
        actor=p.actor, operator=request.query.get("operator") or p.name, purpose=purpose
    )
    household = request.query.get("household", "true").lower() != "false"
    try:
        result = await request.app[RESIDENTS].lookup(
            tenant_id, request.match_info["fiscal_code"], who, household=household
        )
    except LookupRefused as exc:
        raise _Problem(400, "Bad Request", str(exc)) from None
    if not result["found"]:
        return web.json_response(result, status=404)
    return web.json_response(result)


def routes() -> list[web.RouteDef]:
    return [web.get(PREFIX + "/tenants/{tenant}/residents/{fiscal_code}", lookup_resident)]
