"""REST API routes for App IO campaigns (``/api/v1/tenants/{tenant}/io/...``)."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import select

from sportello import audit
from sportello.api import models
from sportello.api.bodies import read_body
from sportello.api.core import (
    PAGING,
    PREFIX,
    _clean,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    page,
    page_params,
    path_id,
    problem,
    require,
    tenant_of,
)
from sportello.api.openapi import Answer, operation
from sportello.appkeys import CLOCK, CONFIG, ENGINE, SERVICES
from sportello.db import reading
from sportello.platforms.io import campaigns
from sportello.platforms.io.api_models import (
    CampaignCreated,
    CampaignReport,
    CampaignRequest,
    CampaignSummary,
    MessageQueued,
    MessageRequest,
    MessageStatus,
)
from sportello.platforms.io.settings import io_settings
from sportello.platforms.io.tables import io_campaigns, io_messages

B = TypeVar("B", "CampaignRequest", "MessageRequest")


def _body(request: web.Request, tenant_id: str, model: type[B], raw: bytes) -> B:
    """The request body as ``model``, for one of the tenant's App IO services; else a 400."""
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise _Problem(400, "Bad Request", f"{where}: {first['msg']}") from None
    tenant = request.app[CONFIG].tenant(tenant_id)
    io = io_settings(tenant) if tenant is not None else None
    if io is None or io.service(body.service_id) is None:
        raise _Problem(400, "Bad Request", f"service_id: no App IO service {body.service_id!r}")
    return body


@operation(
    "createIoCampaign",
    "Queue an App IO campaign from CSV rows and a template (scope write)",
    body=CampaignRequest,
    idempotent=True,
    responses={
        201: Answer(CampaignCreated, "Queued"),
        422: "Rows that cannot be sent (listed in errors), or an Idempotency-Key reused "
        "for another request; nothing queued",
    },
    scope="write",
)
@handles_problems
async def create_campaign(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "write")
    idempotency_key(request)
    raw = await read_body(request)
    body = _body(request, tenant_id, CampaignRequest, raw)
    template = campaigns.Template(
        body.subject, body.markdown, feature_level_type=body.feature_level_type
    )
    now = request.app[CLOCK].now()
    notices = await campaigns.notice_lookup(
        request.app[SERVICES], tenant_id, campaigns.notice_numbers(body.csv)
    )
    prepared = campaigns.prepare(body.csv, template, source="csv", now=now, notices=notices)
    if prepared.problems:
        return problem(
            422,
            "Unprocessable Content",
            f"{len(prepared.problems)} row(s) cannot be sent; nothing was queued",
            errors=prepared.problems,
        )

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        campaign_id = await campaigns.create_campaign(
            conn,
            tenant_id=tenant_id,
            service_id=body.service_id,
            name=body.name,
            template=template,
            prepared=prepared,
            source="api",
            created_by=p.actor,
            now=now,
        )
        return 201, {"id": campaign_id, "messages": len(prepared.messages)}

    return await idempotent(request, tenant_id, raw, produce)


@operation(
    "getIoCampaign",
    "Delivery report of a campaign (scope read; recipients with personal_data)",
    path={"campaign_id": int},
    responses={200: CampaignReport},
    scope="read",
)
@handles_problems
async def get_campaign(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "read")
    campaign_id = path_id(request, "campaign_id", "campaign")
    engine = request.app[ENGINE]
    async with reading(engine) as conn:
        data = await campaigns.report(conn, campaign_id, tenant_id)
    if data is None:
        raise _Problem(404, "Not Found", f"campaign {campaign_id} not found")
    personal = "personal_data" in p.scopes or "admin" in p.scopes
    if personal:
        async with engine.begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=p.actor,
                    action="io.campaign.report",
                    subject=f"campaign:{campaign_id}",
                    purpose="campaign delivery report",
                    sources="hub",
                    outcome="ok",
                    detail=f"{len(data['messages'])} recipients",
                ),
                at=request.app[CLOCK].now(),
            )
        data["messages"] = [_clean(m) for m in data["messages"]]
    else:
        data.pop("messages")
    return web.json_response(_clean(data))


# The texts go through the campaign pipeline as data, never as template source.
_LITERAL = ("{{ subject }}", "{{ markdown }}")


@operation(
    "createIoMessage",
    "Queue one App IO message (scope write); a notice of a position the hub keeps carries "
    "its payment data by itself",
    body=MessageRequest,
    idempotent=True,
    responses={
        201: Answer(MessageQueued, "Queued"),
        422: "The message cannot be sent (errors say why), or an Idempotency-Key reused "
        "for another request; nothing queued",
    },
    scope="write",
)
@handles_problems
async def create_message(request: web.Request) -> web.StreamResponse:
    """Queue one message; a notice of a position the hub keeps carries its payment data."""
    tenant_id = tenant_of(request)
    require(request, "write")
    idempotency_key(request)
    raw = await read_body(request)
    body = _body(request, tenant_id, MessageRequest, raw)
    template = campaigns.Template(*_LITERAL, feature_level_type=body.feature_level_type)
    now = request.app[CLOCK].now()
    row = body.model_dump(exclude={"service_id", "feature_level_type"})
    navs = {body.notice_number} if body.notice_number else set()
    notices = await campaigns.notice_lookup(request.app[SERVICES], tenant_id, navs)
    prepared = campaigns.prepare_rows([row], template, source="message", now=now, notices=notices)
    if prepared.problems:
        return problem(
            422,
            "Unprocessable Content",
            "the message cannot be sent; nothing was queued",
            errors=[p.replace("message: row 1: ", "") for p in prepared.problems],
        )
    (ready,) = prepared.messages

    async def produce(conn: Any) -> tuple[int, dict[str, Any]]:
        message_id = await campaigns.enqueue_message(
            conn,
            tenant_id=tenant_id,
            service_id=body.service_id,
            message=ready.message,
            now=now,
            expedition_at=ready.expedition_at,
        )
        payment = ready.message.content.payment_data
        return 201, {
            "id": message_id,
            "status": "queued",
            "payment_data": payment is not None,
        }

    return await idempotent(request, tenant_id, raw, produce)


@operation(
    "getIoMessage",
    "A message's delivery status (scope read; the recipient with personal_data, audited)",
    path={"message_id": int},
    responses={200: MessageStatus},
    scope="read",
)
@handles_problems
async def get_message(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "read")
    message_id = path_id(request, "message_id", "message")
    async with reading(request.app[ENGINE]) as conn:
        row = (
            await conn.execute(
                select(io_messages).where(
                    io_messages.c.id == message_id, io_messages.c.tenant_id == tenant_id
                )
            )
        ).first()
    if row is None:
        raise _Problem(404, "Not Found", f"message {message_id} not found")
    view: dict[str, Any] = {
        k: row._mapping[k]
        for k in (
            "id",
            "service_id",
            "campaign_id",
            "status",
            "io_message_id",
            "error",
            "attempts",
            "expedition_at",
            "created_at",
            "updated_at",
            "sent_at",
        )
    }
    if "personal_data" in p.scopes or "admin" in p.scopes:
        async with request.app[ENGINE].begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=p.actor,
                    action="io.message.read",
                    subject=row.fiscal_code,
                    purpose="message delivery status",
                    sources="hub",
                    outcome="ok",
                ),
                at=request.app[CLOCK].now(),
            )
        view["fiscal_code"] = row.fiscal_code
    return web.json_response(_clean(view))


@operation(
    "listIoCampaigns",
    "The tenant's App IO campaigns, oldest first (scope read)",
    query=PAGING,
    responses={200: models.page_of(CampaignSummary)},
    scope="read",
)
@handles_problems
async def list_campaigns(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    require(request, "read")
    limit, after = page_params(request)
    async with reading(request.app[ENGINE]) as conn:
        rows = await conn.execute(
            select(
                io_campaigns.c.id,
                io_campaigns.c.service_id,
                io_campaigns.c.name,
                io_campaigns.c.rows_total,
                io_campaigns.c.created_by,
                io_campaigns.c.created_at,
            )
            .where(io_campaigns.c.tenant_id == tenant_id, io_campaigns.c.id > after)
            .order_by(io_campaigns.c.id)
            .limit(limit)
        )
        items = [_clean(dict(r._mapping)) for r in rows]
    return web.json_response(page(items, limit))


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/io/campaigns"
    messages = PREFIX + "/tenants/{tenant}/io/messages"
    return [
        web.post(base, create_campaign),
        web.get(base, list_campaigns),
        web.get(base + "/{campaign_id}", get_campaign),
        web.post(messages, create_message),
        web.get(messages + "/{message_id}", get_message),
    ]
