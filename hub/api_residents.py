"""REST API route for resident look-ups (ANPR + the comune's registry), always audited."""

from __future__ import annotations

import re

from aiohttp import web

from .api import PREFIX, _Problem, handles_problems, require, tenant_of
from .appkeys import RESIDENTS
from .residents import LookupRefused, Requester

FISCAL_CODE = re.compile(r"[A-Za-z0-9]{16}")


@handles_problems
async def lookup_resident(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    purpose = request.query.get("purpose", "").strip()
    if not purpose:
        raise _Problem(
            400, "Bad Request", "purpose is required: the file or protocol reference of the request"
        )
    fiscal_code = request.match_info["fiscal_code"]
    if not FISCAL_CODE.fullmatch(fiscal_code):
        raise _Problem(400, "Bad Request", "fiscal_code: expected 16 letters and digits")
    who = Requester(
        actor=p.actor, operator=request.query.get("operator") or p.name, purpose=purpose
    )
    household = request.query.get("household", "true").lower() != "false"
    try:
        result = await request.app[RESIDENTS].lookup(
            tenant_id, fiscal_code, who, household=household
        )
    except LookupRefused as exc:
        # The request is well formed; the tenant's configuration cannot serve it.
        raise _Problem(409, "Conflict", str(exc)) from None
    if not result["found"]:
        return web.json_response(result, status=404)
    return web.json_response(result)


def routes() -> list[web.RouteDef]:
    return [web.get(PREFIX + "/tenants/{tenant}/residents/{fiscal_code}", lookup_resident)]
