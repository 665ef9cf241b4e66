"""REST API routes of online requests (``/api/v1/tenants/{tenant}/requests/...``) for the
comune's back office, and the ratings export (``/api/v1/tenants/{tenant}/ratings``).

Scopes: ``personal_data`` to list and read requests (every read audited: who, which
request); ``write`` to set a milestone (with an ``Idempotency-Key``: a retried call adds
the milestone once); ``read`` for the ratings (anonymous: no personal data), as JSON or,
with ``format=csv``, as CSV. Another tenant's request is a 404 like an unknown one.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from aiohttp import web
from pydantic import Field, ValidationError

from sportello import audit
from sportello.api.bodies import read_body
from sportello.api.core import (
    PREFIX,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    principal_of,
    require,
    tenant_of,
)
from sportello.api.openapi import Answer, Query, operation
from sportello.appkeys import CLOCK, CONFIG, ENGINE
from sportello.db import reading
from sportello.platforms.requests import service
from sportello.platforms.requests.api_models import (
    MilestoneRequest,
    Ratings,
    Request,
    Requests,
)
from sportello.platforms.requests.settings import SERVICE_NAME, requests_settings
from sportello.platforms.requests.tables import requests_requests

_NOT_CONFIGURED = "The tenant has no [tenants.requests]"
_TITLES = {
    404: "Not Found",
    409: "Conflict",
    422: "Unprocessable Content",
    503: "Service Unavailable",
}
MAX_RATINGS = 10000


def _configured(request: web.Request, scope: str) -> str:
    tenant_id = tenant_of(request)
    require(request, scope)
    if requests_settings(request.app[CONFIG].tenant(tenant_id)) is None:
        raise _Problem(409, "Conflict", f"{_NOT_CONFIGURED}: add it to take requests online")
    return tenant_id


def _refused(exc: service.RequestError) -> _Problem:
    detail = (
        exc.detail
        if exc.field is None or exc.detail.startswith(exc.field)
        else (f"{exc.field}: {exc.detail}")
    )
    return _Problem(exc.status, _TITLES.get(exc.status, "Bad Request"), detail)


async def _audit(
    conn: Any, tenant_id: str, actor: str, subject: str, detail: str, now: datetime
) -> None:
    await audit.record(
        conn,
        audit.AuditEntry(
            tenant_id=tenant_id,
            actor=actor,
            action="requests.api.read",
            subject=subject,
            purpose="back office: follow a citizen's request",
            sources="requests",
            outcome="ok",
            detail=detail,
        ),
        at=now,
    )


@operation(
    "listRequests",
    "The tenant's submitted requests, newest first (personal_data; audited)",
    query=[
        Query("service", Annotated[str, Field(max_length=40)], "a service card's id"),
        Query(
            "status",
            Annotated[str, Field(pattern="^(submitted|in_progress|completed|rejected)$")],
        ),
        Query("limit", Annotated[int, Field(ge=1, le=200)]),
        Query("after", Annotated[str, Field(max_length=16)], "the last ref of the page before"),
    ],
    responses={200: Requests, 409: _NOT_CONFIGURED},
    scope="personal_data",
)
@handles_problems
async def list_requests(request: web.Request) -> web.StreamResponse:
    tenant_id = _configured(request, "personal_data")
    t = requests_requests
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 200:
        raise _Problem(400, "Bad Request", "limit: an integer from 1 to 200")
    q = sa.select(t).where(t.c.tenant_id == tenant_id, t.c.status != "draft")
    if "service" in request.query:
        q = q.where(t.c.service == request.query["service"][:40])
    status = request.query.get("status")
    if status is not None:
        if status not in service.NEXT and status not in ("completed", "rejected"):
            raise _Problem(
                400, "Bad Request", "status: submitted, in_progress, completed or rejected"
            )
        q = q.where(t.c.status == status)
    after = request.query.get("after")
    now = request.app[CLOCK].now()
    actor = principal_of(request).actor
    async with request.app[ENGINE].begin() as conn:
        if after is not None:
            try:
                pivot = await service.find(conn, tenant_id, after)
            except service.NotFound:
                raise _Problem(400, "Bad Request", "after: not a request of this tenant") from None
            q = q.where(t.c.id < pivot.id)
        rows = (await conn.execute(q.order_by(t.c.id.desc()).limit(limit + 1))).all()
        items = []
        for r in rows[:limit]:
            items.append(service.view(r, await service.milestones_of(conn, r.id), with_data=False))
        await _audit(conn, tenant_id, actor, "-", f"listed {len(items)} request(s)", now)
    more = len(rows) > limit
    return web.json_response({"items": items, "next_after": items[-1]["ref"] if more else None})


@operation(
    "getRequest",
    "One request with its form data and milestones (personal_data; audited)",
    responses={200: Request, 409: _NOT_CONFIGURED},
    scope="personal_data",
)
@handles_problems
async def get_request(request: web.Request) -> web.StreamResponse:
    tenant_id = _configured(request, "personal_data")
    now = request.app[CLOCK].now()
    try:
        async with request.app[ENGINE].begin() as conn:
            row = await service.find(conn, tenant_id, request.match_info["ref"])
            if row.status == "draft":
                raise service.NotFound()
            found = service.view(row, await service.milestones_of(conn, row.id))
            await _audit(
                conn,
                tenant_id,
                principal_of(request).actor,
                row.fiscal_code,
                f"request {row.ref}",
                now,
            )
    except service.RequestError as exc:
        raise _refused(exc) from None
    return web.json_response(found)


@operation(
    "addRequestMilestone",
    "The back office moves a request on: a milestone the citizen sees (scope write)",
    body=MilestoneRequest,
    idempotent=True,
    responses={
        200: Answer(Request, "The request with the new milestone"),
        409: "The request is a draft, already concluded, or the tenant has no [tenants.requests]",
        422: "An Idempotency-Key reused for another request",
    },
    scope="write",
)
@handles_problems
async def add_milestone(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    _configured(request, "write")
    raw = await read_body(request)
    try:
        body = MilestoneRequest.model_validate_json(raw or b"null")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise _Problem(400, "Bad Request", f"{where}: {first['msg']}") from None
    now = request.app[CLOCK].now()
    actor = principal_of(request).actor
    ref = request.match_info["ref"]

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        try:
            row = await service.add_milestone(
                conn, tenant_id, ref, body.status, body.label, body.note, actor, now
            )
        except service.RequestError as exc:
            raise _refused(exc) from None
        return 200, service.view(row, await service.milestones_of(conn, row.id))

    return await idempotent(request, tenant_id, raw, produce)


def _day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = date.fromisoformat(raw[:10]) if len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None or not 2000 <= value.year <= 2999:
        raise _Problem(400, "Bad Request", f"{name}: a date as YYYY-MM-DD")
    return value


@operation(
    "listRatings",
    "The citizens' ratings of the services (C.SE.1.7), as JSON or CSV (scope read)",
    query=[
        Query(
            "service",
            Annotated[str, Field(pattern=SERVICE_NAME.pattern)],
            "e.g. requests.certificato",
        ),
        Query("from", date, "first day, Europe/Rome (inclusive)"),
        Query("to", date, "last day, Europe/Rome (inclusive)"),
        Query("format", Annotated[str, Field(pattern="^(json|csv)$")], "json (default) or csv"),
    ],
    responses={200: Answer(Ratings, "The ratings", also={"text/csv": str})},
    scope="read",
)
@handles_problems
async def list_ratings(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "read")
    key = request.query.get("service")
    if key is not None and not SERVICE_NAME.match(key):
        raise _Problem(400, "Bad Request", "service: a service key such as requests.certificato")
    first, last = _day(request, "from"), _day(request, "to")
    if first and last and last < first:
        raise _Problem(400, "Bad Request", "to: not before from")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        raise _Problem(400, "Bad Request", "format: json or csv")
    start = datetime.combine(first, time(), service.ROME).astimezone(UTC) if first else None
    end = (
        datetime.combine(last + timedelta(days=1), time(), service.ROME).astimezone(UTC)
        if last
        else None
    )
    async with reading(request.app[ENGINE]) as conn:
        items = await service.ratings(conn, tenant_id, key, start, end, MAX_RATINGS)
    if fmt == "csv":
        out = io.StringIO()
        columns = ["created_at", "service", "score", "follow_up", "follow_up_label", "comment"]
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for item in items:
            writer.writerow({k: service.csv_cell(item[k]) for k in columns})
        return web.Response(
            text=out.getvalue(),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": 'attachment; filename="valutazioni.csv"'},
        )
    scores = [i["score"] for i in items]
    average = round(sum(scores) / len(scores), 2) if scores else None
    return web.json_response({"items": items, "count": len(items), "average": average})


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}"
    return [
        web.get(base + "/requests", list_requests),
        web.get(base + "/requests/{ref}", get_request),
        web.post(base + "/requests/{ref}/milestones", add_milestone),
        web.get(base + "/ratings", list_ratings),
    ]


__all__ = ["routes"]
