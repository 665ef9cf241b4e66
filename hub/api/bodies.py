"""Request bodies, read whole and bounded, and JSON that cannot blow the stack.

Every handler that reads a body goes through :func:`read_body`:

- a declared ``Content-Length`` over the limit is refused (:class:`BodyTooLarge`) before a
  byte of the body is read;
- an undeclared (chunked) body is read until its end and refused as soon as it passes the
  limit;
- otherwise the WHOLE body is returned, however many TCP segments or chunks it came in
  (``request.content.read(n)`` returns only what happens to be buffered).

The limit is ``[server] max_body_bytes`` (default 1 MiB), which is also the app's
``client_max_size``; a caller may ask for a smaller one (the SAML forms use 256 KiB).

:func:`loads_json` parses untrusted JSON: invalid, too deeply nested (more than
:data:`MAX_JSON_DEPTH` levels) or recursion-breaking input raises :class:`ValueError`,
never :class:`RecursionError`, so a route can answer 400.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

#: The default body limit (``[server] max_body_bytes``): 1 MiB, as aiohttp's default.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024

#: The deepest JSON nesting a route accepts (objects and arrays); real bodies use < 10.
MAX_JSON_DEPTH = 64


class BodyTooLarge(Exception):
    """The body is (or says it is) larger than ``limit`` bytes."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        self.declared = declared
        super().__init__(f"the request body is larger than the limit of {limit} bytes")


def body_limit(request: web.Request, limit: int | None = None) -> int:
    """The limit for this request: ``limit`` if given, never above the app's own."""
    cap = request.client_max_size
    return cap if limit is None else min(limit, cap)


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body (``b""`` when there is none); :class:`BodyTooLarge` over the limit."""
    maximum = body_limit(request, limit)
    declared = request.content_length
    if declared is not None and declared > maximum:
        raise BodyTooLarge(maximum, declared)  # refused before reading
    try:
        data = await request.read()  # until the end of the body, chunked or not
    except web.HTTPRequestEntityTooLarge:
        raise BodyTooLarge(maximum) from None
    if len(data) > maximum:
        raise BodyTooLarge(maximum)
    return data


def too_large_problem(exc: BodyTooLarge) -> web.Response:
    """``413`` problem+json naming the limit; the connection closes (the rest is not read)."""
    body = {
        "type": "about:blank",
        "title": "Content Too Large",
        "status": 413,
        "detail": f"the request body is larger than the limit of {exc.limit} bytes "
        "([server] max_body_bytes)",
        "limit": exc.limit,
    }
    response = web.json_response(body, status=413, content_type="application/problem+json")
    response.force_close()
    return response


def json_depth(value: Any) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth
        stack.extend((child, depth) for child in children)
    return deepest


def loads_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse untrusted JSON; :class:`ValueError` for anything unusable (also deep nesting)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested more than {max_depth} levels deep") from None
    if json_depth(value) > max_depth:
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    return value
