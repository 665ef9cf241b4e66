"""The hub's static files: Bootstrap Italia (copied from its npm package by
:mod:`sportello.web.vendor`) and the hub's own stylesheet, under ``/static/<version>/...``.

The version in the path changes with the kit's version and the stylesheet's content, so the
files are served as immutable (cached a year by browsers); an unknown version answers 404.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"
KIT = STATIC / "kit"
PREFIX = "/static"

mimetypes.add_type("font/woff2", ".woff2")
mimetypes.add_type("font/woff", ".woff")
mimetypes.add_type("image/svg+xml", ".svg")


def kit_installed() -> bool:
    """True when the UI kit has been copied (``make install`` does it)."""
    return (KIT / "css" / "bootstrap-italia.min.css").is_file()


@lru_cache(maxsize=1)
def version() -> str:
    """The kit's version and a digest of the hub's stylesheet: the cache-busting segment."""
    kit = (KIT / "VERSION").read_text(encoding="utf-8").strip() if kit_installed() else "none"
    own = hashlib.sha256((STATIC / "sportello.css").read_bytes()).hexdigest()[:10]
    return f"{kit}-{own}"


def url(path: str) -> str:
    """The URL of a static file, e.g. ``url("kit/svg/sprites.svg")``."""
    return f"{PREFIX}/{version()}/{path.lstrip('/')}"


#: text files served gzip-compressed to browsers that accept it
COMPRESSIBLE = frozenset({".css", ".js", ".svg"})


@lru_cache(maxsize=16)
def _gzipped(path: str, mtime_ns: int) -> bytes:
    """A static file compressed once (per version of it: ``mtime_ns`` is in the key)."""
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


async def serve(request: web.Request) -> web.StreamResponse:
    if request.match_info["version"] != version():
        raise web.HTTPNotFound(text="unknown asset version")
    relative = request.match_info["path"]
    try:
        target = (STATIC / relative).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        raise web.HTTPNotFound(text="no such asset") from None
    if STATIC not in target.parents or not target.is_file():
        raise web.HTTPNotFound(text="no such asset")
    kind, _ = mimetypes.guess_type(target.name)
    if target.suffix in COMPRESSIBLE and "gzip" in request.headers.get("Accept-Encoding", ""):
        # the kit's CSS and JavaScript are 0.6 and 1 MB: a phone gets a tenth of that
        return web.Response(
            body=_gzipped(str(target), target.stat().st_mtime_ns),
            headers={
                "Cache-Control": "public, max-age=31536000, immutable",
                "Content-Type": kind or "application/octet-stream",
                "Content-Encoding": "gzip",
                "Vary": "Accept-Encoding",
                "X-Content-Type-Options": "nosniff",
            },
        )
    response = web.FileResponse(
        target,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "Content-Type": kind or "application/octet-stream",
            "X-Content-Type-Options": "nosniff",
        },
    )
    return response


def routes() -> list[web.AbstractRouteDef]:
    return [web.get(PREFIX + "/{version}/{path:.+}", serve)]
