"""Server-rendered pages (Jinja2) with the Designers Italia look, shared by the front office
and the operator console.

A platform builds its environment once with :func:`environment` (its own template folder
first, then the kernel's ``web/`` templates: ``{% extends "web/base.html" %}``) and answers
with :func:`render`, which adds the security headers every page carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from multidict import MultiDictProxy

from . import assets

ROME = ZoneInfo("Europe/Rome")
TEMPLATES = Path(__file__).resolve().parent / "templates"

#: every page: no framing, no sniffing, scripts and styles only from the hub (the kit's
#: components set inline style attributes, hence 'unsafe-inline' for styles only)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def environment(*folders: Path) -> jinja2.Environment:
    """A Jinja2 environment over ``folders`` (searched first) and the kernel's templates,
    HTML-escaping everything, failing on undefined names."""
    loader = jinja2.FileSystemLoader([*map(str, folders), str(TEMPLATES)])
    env = jinja2.Environment(
        loader=loader,
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = assets.url
    env.filters["it_date"] = it_date
    env.globals["kit_installed"] = assets.kit_installed
    return env


def it_date(value: object) -> str:
    """A date or an instant as Italians read it, in Europe/Rome: ``07/12/2026`` or
    ``07/12/2026 alle 10:30``."""
    if isinstance(value, datetime):
        local = value.astimezone(ROME) if value.tzinfo else value
        return local.strftime("%d/%m/%Y alle %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    return "" if value is None else str(value)


async def read_form(
    request: web.Request,
) -> MultiDictProxy[str | bytes | bytearray | web.FileField] | None:
    """The posted form, or None when it cannot be read (a multipart body without its
    boundary or a part's name, an unknown charset, bytes that are not that charset): the
    page answers 400, never 500. A body over the limit still raises its 413."""
    try:
        return await request.post()
    except (ValueError, LookupError, AssertionError):  # UnicodeDecodeError is a ValueError
        return None


def render(
    env: jinja2.Environment,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The page ``template`` rendered with ``context``, with :data:`HEADERS`."""
    html = env.get_template(template).render(**context)
    return web.Response(
        text=html,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={**HEADERS, **(headers or {})},
    )
