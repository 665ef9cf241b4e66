"""The REST API for software houses under ``/api/v1``: API-key auth scoped to tenants and
permissions, problem+json errors, cursor pagination. The OpenAPI document is generated
by ``sportello.api.openapi`` from the ``@operation`` metadata of each handler and the models
of ``sportello.api.models``.

Tenant isolation: a key bound to one tenant gets 404 for every resource of another tenant,
exactly as if it did not exist.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, get_args

from aiohttp import web
from pydantic import Field
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import apikeys, audit, tenant_store
from sportello.api import models
from sportello.api.bodies import BodyTooLarge, loads_json, read_body, too_large_problem
from sportello.api.openapi import Answer, Query, document, operation, undocumented
from sportello.appkeys import CLOCK, CONFIG, ENGINE
from sportello.config import ConfigError
from sportello.db import reading
from sportello.outbox import store
from sportello.schema import idempotency_keys

PREFIX = "/api/v1"
PRINCIPAL = web.RequestKey("principal", apikeys.Principal)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem document."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


#: The keys found valid lately, per database (apikeys.KeyCache: a revoked key is refused
#: at most apikeys.CACHE_TTL later).
_KEY_CACHES: weakref.WeakKeyDictionary[Any, apikeys.KeyCache] = weakref.WeakKeyDictionary()


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith(PREFIX + "/") or path == f"{PREFIX}/openapi.json":
        return await handler(request)
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return problem(
            401,
            "Unauthorized",
            "send an API key as 'Authorization: Bearer sk_...' "
            "(create one with `sportello apikeys create`)",
        )

    presented, now = header[len("Bearer ") :].strip(), request.app[CLOCK].now()
    engine = request.app[ENGINE]
    cache = _KEY_CACHES.get(engine)
    if cache is None:
        cache = _KEY_CACHES[engine] = apikeys.KeyCache()
    principal = cache.get(presented, now)
    if principal is None:
        async with reading(engine) as conn:
            principal = await apikeys.authenticate(conn, presented, now=now)
        if principal is None:
            return problem(401, "Unauthorized", "the API key is unknown or revoked")
        cache.put(presented, principal, now)
    if apikeys.due_for_mark(principal, now):
        async with engine.begin() as conn:
            await apikeys.mark_used(conn, principal, now=now)
        cache.used(presented, now)
    request[PRINCIPAL] = principal
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return problem(404, "Not Found", f"no resource at {request.method} {path}")


def principal_of(request: web.Request) -> apikeys.Principal:
    return request[PRINCIPAL]


def require(request: web.Request, scope: str) -> apikeys.Principal:
    p = principal_of(request)
    if scope not in p.scopes and "admin" not in p.scopes:
        raise _Problem(403, "Forbidden", f"this API key lacks the '{scope}' scope")
    return p


class _Problem(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        self.response = problem(status, title, detail)


def tenant_of(request: web.Request) -> str:
    """The tenant in the path, if it exists and the key may see it; else 404."""

    tenant_id = request.match_info["tenant"]
    p = principal_of(request)
    if not p.may_see(tenant_id) or request.app[CONFIG].tenant(tenant_id) is None:
        raise _Problem(404, "Not Found", f"tenant {tenant_id!r} not found")
    return tenant_id


def page_params(request: web.Request) -> tuple[int, int]:
    try:
        limit = int(request.query.get("limit", "50"))
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise _Problem(400, "Bad Request", "limit and after must be integers") from None
    if not 1 <= limit <= 500:
        raise _Problem(400, "Bad Request", "limit must be between 1 and 500")
    if not 0 <= after <= MAX_ID:
        raise _Problem(400, "Bad Request", f"after must be between 0 and {MAX_ID}")
    return limit, after


MAX_ID = 2**63 - 1  # the largest id any backend stores

#: The query parameters of :func:`page_params`, for ``@operation(query=...)``.
PAGING = (
    Query("limit", Annotated[int, Field(ge=1, le=500)]),
    Query("after", Annotated[int, Field(ge=0, le=MAX_ID)]),
)


def path_id(request: web.Request, name: str, what: str) -> int:
    """An integer id from the path; anything else (or out of range) is simply not found."""
    raw = request.match_info[name]
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ID:
        raise _Problem(404, "Not Found", f"{what} {raw!r} not found")
    return value


def page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    nxt = str(items[-1]["id"]) if len(items) == limit else None
    return {"items": items, "next": nxt}


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _clean(row: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    return {k: _iso(v) for k, v in row.items() if k not in drop}


def handles_problems(fn: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await fn(request)
        except _Problem as exc:
            return exc.response
        except BodyTooLarge as exc:
            return too_large_problem(exc)
        except web.HTTPRequestEntityTooLarge:  # a body read without read_body
            return too_large_problem(BodyTooLarge(request.client_max_size))

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _tenant_view(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "ipa_code": t.ipa_code,
        "fiscal_code": t.fiscal_code,
        "cadastral_code": t.cadastral_code,
        "platforms": [p for p in ("spid", "pagopa", "io", "pdnd") if getattr(t, p) is not None],
    }


@operation(
    "listTenants",
    "Tenants this key may see (all of them for an admin key)",
    responses={200: models.page_of(models.Tenant)},
    scope="read",
)
@handles_problems
async def list_tenants(request: web.Request) -> web.StreamResponse:

    p = require(request, "read")
    visible = [t for t in request.app[CONFIG].tenants if p.may_see(t.id)]
    return web.json_response({"items": [_tenant_view(t) for t in visible], "next": None})


@operation("getTenant", "One tenant", responses={200: models.Tenant}, scope="read")
@handles_problems
async def get_tenant(request: web.Request) -> web.StreamResponse:

    tenant = request.app[CONFIG].tenant(tenant_of(request))
    require(request, "read")
    return web.json_response(_tenant_view(tenant))


def require_admin(request: web.Request) -> apikeys.Principal:
    """The caller, when it holds an admin key (not bound to a tenant); else 403."""
    p = principal_of(request)
    if "admin" not in p.scopes or p.tenant_id is not None:
        raise _Problem(403, "Forbidden", "this operation needs an admin API key")
    return p


async def _stored_view(conn: AsyncConnection, tenant_id: str) -> dict[str, Any]:
    rows = await tenant_store.listing(conn)
    return _clean(next(r for r in rows if r["id"] == tenant_id))


@operation(
    "listStoredTenants",
    "Tenants stored in the database (admin key); the file's are in listTenants",
    responses={200: models.page_of(models.StoredTenant)},
    scope="admin",
)
@handles_problems
async def list_stored_tenants(request: web.Request) -> web.StreamResponse:

    require_admin(request)
    async with reading(request.app[ENGINE]) as conn:
        rows = await tenant_store.listing(conn)
    return web.json_response({"items": [_clean(r) for r in rows], "next": None})


@operation(
    "putStoredTenant",
    "Store or replace a tenant in the database, validated as at start-up (admin key); "
    "every replica serves it within seconds",
    body=models.TenantDocument,
    path={"tenant_id": str},
    responses={
        201: Answer(models.StoredTenant, "Stored"),
        200: Answer(models.StoredTenant, "Replaced"),
        409: "The tenant is configured in the file or its tenants_dir",
    },
    scope="admin",
)
@handles_problems
async def put_stored_tenant(request: web.Request) -> web.StreamResponse:

    p = require_admin(request)
    tenant_id = request.match_info["tenant_id"]
    try:
        data = loads_json(await read_body(request))
    except ValueError as exc:
        raise _Problem(400, "Bad Request", f"the body is not usable JSON: {exc}") from None
    config = request.app[CONFIG]
    try:
        tenant = tenant_store.check_document(data, config, source="body")
    except ConfigError as exc:
        return problem(
            400,
            "Bad Request",
            "the tenant is not valid: " + "; ".join(exc.problems),
            errors=exc.problems,
        )
    if tenant.id != tenant_id:
        raise _Problem(400, "Bad Request", f"id: {tenant.id!r} differs from the path's")
    try:
        async with request.app[ENGINE].begin() as conn:
            created = await tenant_store.store(
                conn, tenant, config, now=request.app[CLOCK].now(), actor=p.actor
            )
            view = await _stored_view(conn, tenant.id)
    except tenant_store.TenantStoreError as exc:
        raise _Problem(409, "Conflict", str(exc)) from None
    _reload_soon(request)
    return web.json_response(view, status=201 if created else 200)


@operation(
    "deleteStoredTenant",
    "Stop serving a tenant stored in the database (admin key); its data is kept",
    path={"tenant_id": str},
    responses={204: Answer(None, "Removed")},
    scope="admin",
)
@handles_problems
async def delete_stored_tenant(request: web.Request) -> web.StreamResponse:

    require_admin(request)
    tenant_id = request.match_info["tenant_id"]
    try:
        async with request.app[ENGINE].begin() as conn:
            await tenant_store.remove(conn, tenant_id, now=request.app[CLOCK].now())
    except tenant_store.TenantStoreError as exc:
        raise _Problem(404, "Not Found", str(exc)) from None
    _reload_soon(request)
    return web.Response(status=204)


def _reload_soon(request: web.Request) -> None:
    """This replica applies the change now; the others when they see the generation move."""
    from sportello.reload import RELOADER

    reloader = request.app.get(RELOADER)
    if reloader is not None:
        reloader.reload_soon()


OUTBOX_STATUSES: tuple[str, ...] = get_args(models.OutboxStatus)


@operation(
    "listOutboxJobs",
    "Outbound work of the tenant, oldest first (scope read)",
    query=(*PAGING, Query("status", models.OutboxStatus), Query("kind")),
    responses={200: models.page_of(models.OutboxJob)},
    scope="read",
)
@handles_problems
async def list_outbox(request: web.Request) -> web.StreamResponse:

    tenant_id = tenant_of(request)
    require(request, "read")
    limit, after = page_params(request)
    status = request.query.get("status")
    if status is not None and status not in OUTBOX_STATUSES:
        raise _Problem(400, "Bad Request", f"status must be one of {', '.join(OUTBOX_STATUSES)}")
    async with reading(request.app[ENGINE]) as conn:
        rows = await store.list_rows(
            conn,
            status=status,
            tenant_id=tenant_id,
            kind=request.query.get("kind"),
            limit=limit,
            after_id=after,
        )
    return web.json_response(page([_clean(r, ("payload",)) for r in rows], limit))


@operation(
    "getOutboxJob",
    "One outbox job with its ledger of attempts (scope read)",
    path={"job_id": int},
    responses={200: models.OutboxJob},
    scope="read",
)
@handles_problems
async def get_outbox_job(request: web.Request) -> web.StreamResponse:

    tenant_id = tenant_of(request)
    require(request, "read")
    job_id = path_id(request, "job_id", "outbox job")
    async with reading(request.app[ENGINE]) as conn:
        job = await store.inspect(conn, job_id)
    if job is None or job["tenant_id"] != tenant_id:
        raise _Problem(404, "Not Found", f"outbox job {job_id} not found")
    job["ledger"] = [_clean(h) for h in job["ledger"]]
    return web.json_response(_clean(job, ("payload",)))


def _parse_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise _Problem(400, "Bad Request", f"{name} must be an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise _Problem(400, "Bad Request", f"{name} needs a timezone (e.g. 2026-01-31T00:00:00Z)")
    return value


@operation(
    "listAuditEntries",
    "Personal-data reads of the tenant (scope personal_data)",
    query=(
        *PAGING,
        Query("subject"),
        Query("actor"),
        Query("since", datetime),
        Query("until", datetime),
    ),
    responses={200: models.page_of(models.AuditEntry)},
    scope="personal_data",
)
@handles_problems
async def list_audit(request: web.Request) -> web.StreamResponse:

    tenant_id = tenant_of(request)
    require(request, "personal_data")
    limit, after = page_params(request)
    async with reading(request.app[ENGINE]) as conn:
        rows = await audit.query(
            conn,
            tenant_id=tenant_id,
            subject=request.query.get("subject"),
            actor=request.query.get("actor"),
            since=_parse_time(request, "since"),
            until=_parse_time(request, "until"),
            after_id=after,
            limit=limit,
        )
    return web.json_response(page([_clean(r) for r in rows], limit))


def idempotency_key(request: web.Request) -> str:
    """The request's Idempotency-Key, or a 400 saying it is needed."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 200:
        raise _Problem(
            400, "Bad Request", "every POST needs an Idempotency-Key header (1-200 characters)"
        )
    # bytes that are not UTF-8 arrive as lone surrogates, which no database stores (a 500):
    # they, like control characters, are not printable
    if not key.isprintable():
        raise _Problem(400, "Bad Request", "Idempotency-Key: printable UTF-8 characters only")
    return key


def request_digest(request: web.Request, raw_body: bytes) -> str:
    """What ``idempotent`` stores with a key to tell a replay from another request."""
    return hashlib.sha256(request.method.encode() + request.path.encode() + raw_body).hexdigest()


async def idempotent(
    request: web.Request,
    tenant_id: str,
    raw_body: bytes,
    produce: Callable[[AsyncConnection], Awaitable[tuple[int, dict[str, Any]]]],
) -> web.Response:
    """Run ``produce`` once per ``Idempotency-Key``: a repeat gets the stored answer.

    The business change, its outbox rows and the stored answer commit together.
    """
    key = idempotency_key(request)
    digest = request_digest(request, raw_body)
    engine = request.app[ENGINE]
    for _ in range(2):
        try:
            async with engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(idempotency_keys).where(
                            idempotency_keys.c.tenant_id == tenant_id,
                            idempotency_keys.c.key == key,
                        )
                    )
                ).first()
                if row is not None:
                    if row.request_sha256 != digest:
                        raise _Problem(
                            422,
                            "Unprocessable Content",
                            "this Idempotency-Key was used for a different request",
                        )
                    return web.json_response(
                        json.loads(row.body),
                        status=row.status,
                        headers={"Idempotent-Replay": "true"},
                    )
                status, body = await produce(conn)
                await conn.execute(
                    insert(idempotency_keys).values(
                        tenant_id=tenant_id,
                        key=key,
                        request_sha256=digest,
                        status=status,
                        body=json.dumps(body),
                        created_at=request.app[CLOCK].now(),
                    )
                )
                return web.json_response(body, status=status)
        except IntegrityError:
            continue  # a concurrent request with the same key won: read its answer
    raise _Problem(409, "Conflict", "a request with this Idempotency-Key is in progress")


@undocumented
async def openapi_json(request: web.Request) -> web.StreamResponse:
    """The OpenAPI document of the routes this app serves (generated, see
    ``sportello.api.openapi``)."""
    return web.json_response(document(request.app.router.routes()))


def routes() -> list[web.RouteDef]:
    """The API kernel's routes (platforms add theirs through ``hub_api_routes``)."""
    t = PREFIX + "/tenants/{tenant}"
    return [
        web.get(f"{PREFIX}/openapi.json", openapi_json),
        web.get(f"{PREFIX}/tenants", list_tenants),
        web.get(t, get_tenant),
        web.get(f"{t}/outbox", list_outbox),
        web.get(t + "/outbox/{job_id}", get_outbox_job),
        web.get(f"{t}/audit", list_audit),
        web.get(f"{PREFIX}/admin/tenants", list_stored_tenants),
        web.put(PREFIX + "/admin/tenants/{tenant_id}", put_stored_tenant),
        web.delete(PREFIX + "/admin/tenants/{tenant_id}", delete_stored_tenant),
    ]


def all_routes(plugins: Any = None) -> list[web.AbstractRouteDef]:
    """The kernel's API routes and every plugin's (``hub_api_routes``); ``plugins``: a
    ``sportello.plugins.Plugins`` (default: all installed)."""
    if plugins is None:
        from sportello.plugins import Plugins

        plugins = Plugins()
    return [*routes(), *plugins.api_routes()]
