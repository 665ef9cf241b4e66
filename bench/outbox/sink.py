"""A minimal HTTP sink for the outbox benchmark: answers 200 to every POST, counts them.

Run in its own process so the benchmark's process measures only the hub's side.
"""

from __future__ import annotations

import sys

from aiohttp import web

RECEIVED = [0]  # a benchmark script, not the hub: a counter here is harmless


async def hook(request: web.Request) -> web.Response:
    await request.read()
    RECEIVED[0] += 1
    return web.Response(text="ok")


async def count(request: web.Request) -> web.Response:
    return web.Response(text=str(RECEIVED[0]))


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
