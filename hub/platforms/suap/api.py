"""REST API routes for SUAP practices (scope personal_data; every read is audited)."""

from __future__ import annotations

import re
from typing import Annotated

from aiohttp import web
from pydantic import Field

from sportello.api.core import PREFIX, _Problem, handles_problems, principal_of, require, tenant_of
from sportello.api.models import page_of
from sportello.api.openapi import Query, operation
from sportello.appkeys import CONFIG
from sportello.platforms.suap.api_models import Practice, PracticeDetail
from sportello.platforms.suap.service import SUAP, SuapUnavailable, practice_view

APPLICANT = re.compile(r"[A-Za-z0-9]{16}|\d{11}")
_NO_ADAPTER = "The tenant has no SUAP adapter configured"


@operation(
    "listSuapPractices",
    "An applicant's SUAP practices, newest first (scope personal_data; audited)",
    query=[
        Query("applicant", Annotated[str, Field(pattern=f"^({APPLICANT.pattern})$")], required=True)
    ],
    responses={200: page_of(Practice), 409: _NO_ADAPTER},
    scope="personal_data",
)
@handles_problems
async def list_practices(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "personal_data")
    applicant = request.query.get("applicant", "").strip()
    if not APPLICANT.fullmatch(applicant):
        raise _Problem(
            400,
            "Bad Request",
            "applicant: a fiscal code (16 characters) or a VAT number (11 digits)",
        )
    tenant = request.app[CONFIG].tenant(tenant_id)
    assert tenant is not None
    try:
        found = await request.app[SUAP].practices(tenant, applicant, principal_of(request).actor)
    except SuapUnavailable as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    return web.json_response({"items": [practice_view(p) for p in found], "next": None})


@operation(
    "getSuapPractice",
    "One practice with its status timeline and documents (personal_data)",
    responses={200: PracticeDetail, 409: _NO_ADAPTER},
    scope="personal_data",
)
@handles_problems
async def get_practice(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "personal_data")
    tenant = request.app[CONFIG].tenant(tenant_id)
    assert tenant is not None
    practice_id = request.match_info["practice_id"]
    try:
        found = await request.app[SUAP].practice(tenant, practice_id, principal_of(request).actor)
    except SuapUnavailable as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    if found is None:
        raise _Problem(404, "Not Found", f"practice {practice_id!r} not found")
    return web.json_response(found)


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/suap/practices"
    return [web.get(base, list_practices), web.get(base + "/{practice_id}", get_practice)]
