"""REST API routes for App IO campaigns (``/api/v1/tenants/{tenant}/io/...``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import audit, campaigns
from .api import (
    PREFIX,
    _clean,
    _Problem,
    handles_problems,
    idempotency_key,
    idempotent,
    path_id,
    problem,
    require,
    tenant_of,
)
from .appkeys import CLOCK, CONFIG, ENGINE
from .db import reading


class CampaignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_id: str
    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, description="Jinja2 template")
    markdown: str = Field(min_length=1, description="Jinja2 template")
    csv: str = Field(
        min_length=1,
        description="fiscal_code;expedition_date;due_date;notice_number;amount;<template fields>",
    )
    feature_level_type: str = Field(default="STANDARD", pattern="^(STANDARD|ADVANCED)$")


@handles_problems
async def create_campaign(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "write")
    idempotency_key(request)
    raw = await request.read()
    try:
        body = CampaignRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "body"
        raise _Problem(400, "Bad Request", f"{where}: {first['msg']}") from None
    tenant = request.app[CONFIG].tenant(tenant_id)
    if tenant is None or tenant.io is None or tenant.io.service(body.service_id) is None:
        raise _Problem(400, "Bad Request", f"service_id: no App IO service {body.service_id!r}")
    template = campaigns.Template(
        body.subject, body.markdown, feature_level_type=body.feature_level_type
    )
    now = request.app[CLOCK].now()
    notices = await campaigns.notice_lookup(
        request.app[ENGINE], request.app[CONFIG], tenant_id, campaigns.notice_numbers(body.csv)
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


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/io/campaigns"
    return [web.post(base, create_campaign), web.get(base + "/{campaign_id}", get_campaign)]
