"""Legal facts (atti opponibili a terzi) of a tenant's SEND notification, through the hub's
API: the list SEND has made so far (``GET /delivery-push/v2.0/{iun}/legal-facts``) and one
of them as its PDF (``GET /delivery-push/{iun}/download/legal-facts/{legalFactId}``, then
the short-lived download URL SEND gives).

They name the recipient and say where and when the act was delivered: both routes need the
``personal_data`` scope and every read is on the audit log. A notification of another tenant
is not found; one SEND has not accepted yet has no legal facts (409). When SEND (or PDND,
for the voucher) fails the answer is 502, or 503 with ``Retry-After`` when SEND is rate
limiting, unavailable or still making the file, naming the platform in ``platform``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import select

from sportello import audit
from sportello.api.core import (
    PREFIX,
    _Problem,
    handles_problems,
    path_id,
    problem,
    require,
    tenant_of,
)
from sportello.api.openapi import Answer, operation
from sportello.appkeys import CLOCK, ENGINE
from sportello.connectors.errors import (
    ConnectorError,
    ConnectorTimeout,
    NotFound,
    RateLimited,
)
from sportello.db import reading
from sportello.platforms.send.service import SEND_CLIENTS, SendNotConfigured
from sportello.platforms.send.tables import send_notifications

#: SEND's legal fact keys (``safestorage://`` left out), as the connector accepts them.
_FACT_ID = re.compile(r"^[A-Za-z0-9._-]{1,1024}$")
_PDF_NAME = re.compile(r"[^A-Za-z0-9._-]")


class LegalFact(BaseModel):
    legal_fact_id: str = Field(description="the id to download it with (SEND's key)")
    category: str = Field(description="SEND's category: SENDER_ACK, DIGITAL_DELIVERY, ...")
    tax_id: str | None = Field(default=None, description="the recipient it is about, if one")


class LegalFacts(BaseModel):
    notification_id: int
    iun: str
    items: list[LegalFact]


_SEND_FAILED = {
    502: "SEND (or PDND, for the voucher) failed: `platform` names it",
    503: "SEND is rate limiting, unavailable or still making the file: try again after "
    "Retry-After seconds",
}


def _failed(exc: ConnectorError, what: str) -> web.Response:
    platform = "PDND" if (exc.platform or "").lower() == "pdnd" else "SEND"
    unavailable = isinstance(exc, RateLimited) or exc.status == 503
    how = "no answer in time" if isinstance(exc, ConnectorTimeout) else None
    how = how or (f"HTTP {exc.status}" if exc.status else type(exc).__name__)
    detail = (
        f"SEND failed ({how}) reading {what}; try again later"
        if platform == "SEND"
        else f"PDND refused the voucher for SEND ({how}): check [tenants.pdnd] and "
        "[tenants.send].purpose_id"
    )
    status = 503 if unavailable else 502
    response = problem(
        status, "Service Unavailable" if unavailable else "Bad Gateway", detail, platform=platform
    )
    if unavailable:
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after or 5)))
    return response


async def _notification(request: web.Request, tenant_id: str) -> Any:
    notification_id = path_id(request, "notification_id", "notification")
    async with reading(request.app[ENGINE]) as conn:
        row = (
            await conn.execute(
                select(
                    send_notifications.c.id,
                    send_notifications.c.iun,
                    send_notifications.c.status,
                    send_notifications.c.recipients,
                ).where(
                    send_notifications.c.id == notification_id,
                    send_notifications.c.tenant_id == tenant_id,
                )
            )
        ).first()
    if row is None:
        raise _Problem(404, "Not Found", f"notification {notification_id} not found")
    if not row.iun:
        raise _Problem(
            409,
            "Conflict",
            f"status: the notification is {row.status}: SEND makes legal facts once it has "
            "accepted it (it has no IUN yet)",
        )
    return row


def _client(request: web.Request, tenant_id: str) -> Any:
    try:
        return request.app[SEND_CLIENTS].get(tenant_id)
    except SendNotConfigured as exc:
        raise _Problem(409, "Conflict", str(exc)) from None


def _subject(row: Any) -> str:
    """Who the legal facts are about: the notification's recipients (their tax ids)."""
    return ",".join(r["tax_id"] for r in json.loads(row.recipients)) or f"iun:{row.iun}"


async def _audit(
    request: web.Request, tenant_id: str, actor: str, action: str, subject: str, detail: str
) -> None:
    async with request.app[ENGINE].begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant_id,
                actor=actor,
                action=action,
                subject=subject[:200],
                purpose="SEND legal facts",
                sources="send",
                outcome="ok",
                detail=detail,
            ),
            at=request.app[CLOCK].now(),
        )


@operation(
    "listSendLegalFacts",
    "The legal facts SEND has made so far for a notification (scope personal_data; audited)",
    path={"notification_id": int},
    responses={
        200: LegalFacts,
        409: "The notification is not accepted yet (no IUN), or the tenant has no [tenants.send]",
        **_SEND_FAILED,
    },
    scope="personal_data",
)
@handles_problems
async def list_legal_facts(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    row = await _notification(request, tenant_id)
    client = _client(request, tenant_id)
    try:
        facts = await client.legal_facts(row.iun)
    except NotFound:
        raise _Problem(404, "Not Found", f"SEND has no notification {row.iun}") from None
    except ConnectorError as exc:
        return _failed(exc, "the legal facts")
    items = [
        {
            "legal_fact_id": f.legalFactsId.key.removeprefix("safestorage://"),
            "category": f.legalFactsId.category,
            "tax_id": f.taxId,
        }
        for f in facts
    ]
    await _audit(
        request,
        tenant_id,
        p.actor,
        "send.legal_facts.read",
        _subject(row),
        f"notification {row.id}: {len(items)} legal fact(s)",
    )
    return web.json_response({"notification_id": int(row.id), "iun": row.iun, "items": items})


@operation(
    "getSendLegalFact",
    "One legal fact of a notification, as the PDF SEND made (scope personal_data; audited)",
    path={"notification_id": int, "legal_fact_id": str},
    responses={
        200: Answer(bytes, "The legal fact", "application/pdf"),
        409: "The notification is not accepted yet (no IUN), or the tenant has no [tenants.send]",
        **_SEND_FAILED,
    },
    scope="personal_data",
)
@handles_problems
async def get_legal_fact(request: web.Request) -> web.StreamResponse:
    tenant_id = tenant_of(request)
    p = require(request, "personal_data")
    fact_id = request.match_info["legal_fact_id"].removeprefix("safestorage://")
    if not _FACT_ID.match(fact_id) or fact_id in (".", ".."):
        raise _Problem(
            400, "Bad Request", "legal_fact_id: letters, digits, '.', '_' and '-' (SEND's key)"
        )
    row = await _notification(request, tenant_id)
    client = _client(request, tenant_id)
    try:
        meta = await client.legal_fact_download(row.iun, fact_id)
        if not meta.url:  # SEND is still making it
            wait = max(1, math.ceil(meta.retryAfter or 5))
            response = problem(
                503,
                "Service Unavailable",
                f"SEND is still making this legal fact: try again in {wait} seconds",
                platform="SEND",
            )
            response.headers["Retry-After"] = str(wait)
            return response
        pdf = await client.download(meta.url)
    except NotFound:
        raise _Problem(
            404, "Not Found", f"legal_fact_id: SEND has no such legal fact for {row.iun}"
        ) from None
    except ConnectorError as exc:
        return _failed(exc, "the legal fact")
    if not pdf.startswith(b"%PDF-"):
        return problem(
            502, "Bad Gateway", "SEND answered a legal fact that is not a PDF", platform="SEND"
        )
    await _audit(
        request,
        tenant_id,
        p.actor,
        "send.legal_fact.download",
        _subject(row),
        f"notification {row.id}: legal fact {fact_id[:120]}",
    )
    name = _PDF_NAME.sub("_", (meta.filename or fact_id).rsplit("/", 1)[-1])[:120]
    if not name.lower().endswith(".pdf"):
        name += ".pdf"
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def routes() -> list[web.RouteDef]:
    base = PREFIX + "/tenants/{tenant}/send/notifications/{notification_id}/legal-facts"
    return [
        web.get(base, list_legal_facts),
        web.get(base + "/{legal_fact_id}", get_legal_fact),
    ]
