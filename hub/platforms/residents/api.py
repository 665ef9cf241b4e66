"""REST API route for resident look-ups (ANPR + the comune's registry), always audited."""

from __future__ import annotations

import math
from typing import Annotated

from aiohttp import web
from pydantic import Field

from sportello.api.core import PREFIX, _Problem, handles_problems, problem, require, tenant_of
from sportello.api.models import Problem
from sportello.api.openapi import Answer, Query, operation
from sportello.connectors import fiscal_code as fiscal_codes
from sportello.platforms.residents.api_models import Resident
from sportello.platforms.residents.lookup import RESIDENTS, LookupFailed, LookupRefused, Requester


@operation(
    "lookupResident",
    "A resident from ANPR and the comune's registry (scope personal_data; audited)",
    query=[
        Query(
            "purpose",
            Annotated[str, Field(min_length=1)],
            "file or protocol reference (ANPR motivoRichiesta)",
            required=True,
        ),
        Query("operator", str, "the person at the counter (ModI userID); default: key name"),
        Query("household", bool),
    ],
    responses={
        200: Resident,
        404: Answer(
            Resident,
            "Found in no source (a Resident), or no such tenant (a Problem)",
            also={"application/problem+json": Problem},
        ),
        409: "The tenant has neither ANPR nor a registry adapter configured",
        502: "A platform (PDND, ANPR or the registry) failed and no source found the person: "
        "`platform` names it, `support_id` is in the hub's logs, `answered` lists the "
        "sources that did answer",
        503: "As 502, but the failed platform is rate limiting or unavailable: try later "
        "(Retry-After when the platform said when)",
    },
    scope="personal_data",
)
@handles_problems
async def lookup_resident(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    purpose = request.query.get("purpose", "").strip()
    if not purpose:
        raise _Problem(
            400, "Bad Request", "purpose is required: the file or protocol reference of the request"
        )
    fiscal_code = request.match_info["fiscal_code"].upper()
    reason = fiscal_codes.problem(fiscal_code)  # with the check character
    if reason is not None:
        raise _Problem(400, "Bad Request", f"fiscal_code: {reason}")
    operator = request.query.get("operator")
    if operator is not None:
        operator = operator.strip()
        if not operator or len(operator) > 200 or not operator.isprintable():
            raise _Problem(
                400,
                "Bad Request",
                "operator: who is at the counter, 1 to 200 printable characters (or leave it "
                "out for the API key's name)",
            )
    who = Requester(actor=p.actor, operator=operator or p.name, purpose=purpose)
    household = request.query.get("household", "true").lower() != "false"
    try:
        result = await request.app[RESIDENTS].lookup(
            tenant_id, fiscal_code, who, household=household
        )
    except LookupRefused as exc:
        # The request is well formed; the tenant's configuration cannot serve it.
        raise _Problem(409, "Conflict", str(exc)) from None
    except LookupFailed as exc:
        # A platform failed and nobody found the person: not a 404, which would say "no one".
        response = problem(
            exc.status,
            "Service Unavailable" if exc.status == 503 else "Bad Gateway",
            exc.detail,
            platform=", ".join(exc.platforms),
            support_id=exc.support_id,
            failures=[f.view() for f in exc.failures],
            answered=exc.answered,
        )
        if exc.status == 503 and exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response
    if not result["found"]:
        return web.json_response(result, status=404)
    return web.json_response(result)


def routes() -> list[web.RouteDef]:
    return [web.get(PREFIX + "/tenants/{tenant}/residents/{fiscal_code}", lookup_resident)]
