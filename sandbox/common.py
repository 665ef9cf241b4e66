"""What every sandbox app shares: a status route and platform-style JSON errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

PLATFORM = web.AppKey("sandbox_platform", str)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Unknown routes answer a problem+json 404 naming the route, never a blank 200; JSON
    nested too deeply for the parser is a 400, never a 500."""
    try:
        return await handler(request)
    except RecursionError:
        return web.json_response(
            {
                "type": "about:blank",
                "title": "Bad Request",
                "status": 400,
                "detail": "the body is nested too deeply",
            },
            status=400,
            content_type="application/problem+json",
        )
    except web.HTTPNotFound:
        return web.json_response(
            {
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": f"the {request.app[PLATFORM]} sandbox has no route "
                f"{request.method} {request.path}",
            },
            status=404,
            content_type="application/problem+json",
        )


def platform_app(name: str, description: str) -> web.Application:
    """A sandbox app with ``GET /status``; each platform's issue adds its real routes."""
    app = web.Application(middlewares=[json_errors])
    app[PLATFORM] = name

    async def status(request: web.Request) -> web.Response:
        routes = sorted(
            {r.resource.canonical for r in request.app.router.routes() if r.resource is not None}
        )
        return web.json_response(
            {"platform": name, "description": description, "status": "up", "routes": routes}
        )

    app.router.add_get("/status", status)
    return app


@dataclass(frozen=True)
class SpecViolation:
    """A body a spec-checking sandbox sent or accepted that its official spec refuses:
    ``kind`` is ``request`` or ``response``."""

    kind: str
    method: str
    path: str
    status: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def schema_problems(validator: Any, body: Any) -> list[str]:
    """``path: message`` for every error a ``jsonschema`` validator finds in ``body``."""
    return [
        f"{'/'.join(str(part) for part in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(body)
    ]
