"""``LeanHttpClient``: a small HTTP/1.1 client for high-volume JSON calls (App IO campaigns).

Hand-written on purpose, and kept small. A campaign makes two App IO calls per message and
the hub is CPU-bound on them: aiohttp 3.14 spends about 200 µs of CPU per request on its
request/response objects, timers and hooks, this client about 60 µs (bench/README.md;
aiosonic, the other maintained asyncio client measured, was no faster than aiohttp). It does
only what those calls need, on well-kept parts: responses are parsed by ``httptools`` (the
C parser uvicorn uses; Content-Length and chunked bodies), TLS is the event loop's.

What it does: keep-alive connections pooled per origin (at most ``limit`` per origin,
idle ones closed after ``idle_seconds``), one request per connection at a time with a
``Content-Length`` body, a total timeout per request. Answers framed by Content-Length, by
chunks or by the server closing the connection (a body without either ends at EOF).

What a peer cannot do to it: make one request read another's answer (bytes that arrive
while no request is in flight, or after a complete answer, close the connection: it is
never pooled again), or make it buffer without end (as aiohttp: 8190 bytes a status or
header line, 128 header lines; at most 64 KiB of head and ``max_body`` bytes of body; over
any of these the answer is a ``BadResponse`` and the connection is closed).

What it does not do: redirects, proxies, cookies, compression, ``Expect: 100-continue``,
HTTP/2. A connector that needs
those uses aiohttp (``BaseConnector`` without a ``transport``).

Failures are told apart the way a caller without an idempotency key needs:
``ConnectFailed`` (nothing was sent), ``ConnectionDropped`` (sent, the answer was lost),
``BadResponse`` (the answer was not HTTP).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict

__all__ = [
    "BadResponse",
    "ConnectFailed",
    "ConnectionDropped",
    "HttpResult",
    "LeanHttpClient",
]


# Headers this client writes itself: a caller's copy would make the request ambiguous.
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class ConnectFailed(OSError):
    """The connection could not be opened: the request was not sent."""


class ConnectionDropped(ConnectionError):
    """The connection closed before the whole answer arrived (the request may have arrived)."""


class BadResponse(Exception):
    """The peer's answer is not valid HTTP/1.1 (or is over this client's size limits)."""


MAX_LINE = 8190  # bytes in the status line or one header line (aiohttp's max_line_size)
MAX_HEADERS = 128  # header lines in one answer (aiohttp's client max_headers)
MAX_HEAD = 64 * 1024  # bytes of status line and headers together
MAX_BODY = 16 * 1024 * 1024  # default cap of an answer's body


class _Stop(Exception):
    """Raised in a parser callback to stop parsing; the waiter already has the error."""


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; httptools calls the ``on_*`` methods while parsing."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.waiter: asyncio.Future[HttpResult] | None = None
        self.closed = False
        self.keep_alive = False
        self.head = False  # the request in flight is a HEAD: its answer has no body
        self.idle_since = 0.0
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_size = 0  # bytes fed while the answer's head was not complete
        self._in_head = False  # between the start of an answer and the end of its headers
        self._status_size = 0
        self._headers_seen = False  # the answer in progress has a complete head

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if self.waiter is None:
            # Bytes with no request in flight: an answer nobody asked for (or the tail of
            # one already given). Handing them to the next request would give it a stranger's
            # answer, so this connection ends here.
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            # HttpParserUpgrade: a 101 nobody asked for (no request here sends Upgrade)
            self._fail(BadResponse(f"invalid HTTP answer: {type(exc).__name__}"))
            self.close()
            return
        if self._in_head:  # httptools keeps an unfinished head in memory: bound it
            self._head_size += len(data)
            if self._head_size > MAX_HEAD:
                self._fail(BadResponse(f"answer head over {MAX_HEAD} bytes"))
                self.close()

    def eof_received(self) -> None:
        # The peer closed its side (for TLS: with close_notify, so the body is not cut).
        # No Content-Length, not chunked: the body is what came before this EOF (RFC 9112
        # §6.3 rule 8). httptools has no call to say "EOF", so the answer ends here.
        # Returning None lets the transport close; connection_lost follows.
        if self._close_delimited():
            self._complete(self.parser.get_status_code(), b"".join(self._body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionDropped("connection closed before the answer was complete"))

    def _close_delimited(self) -> bool:
        if self.waiter is None or self._in_head or self.head or not self._headers_seen:
            return False
        status = self.parser.get_status_code()
        if status < 200 or status in (204, 304):
            return False
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        return "content-length" not in self._headers and not chunked

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second answer in the packet that ended the first
            self.close()
            raise _Stop
        self._headers = CIMultiDict()
        self._body = []
        self._body_size = 0
        self._head_size = 0
        self._status_size = 0
        self._in_head = True
        self._headers_seen = False

    def on_status(self, status: bytes) -> None:
        self._status_size += len(status)  # the reason phrase may come in pieces
        if self._status_size > MAX_LINE:
            self._refuse(f"status line over {MAX_LINE} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) + len(value) + 2 > MAX_LINE:
            self._refuse(f"header line over {MAX_LINE} bytes")
        if len(self._headers) >= MAX_HEADERS:
            self._refuse(f"more than {MAX_HEADERS} header lines")
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def _refuse(self, reason: str) -> None:
        self._fail(BadResponse(f"answer refused: {reason}"))
        self.close()
        raise _Stop

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._headers_seen = True
        # The answer to a HEAD has no body whatever its Content-Length says, and httptools
        # cannot be told so: it would wait for that many bytes. Answer now; the connection
        # is reused only if the parser also saw the message end (``keep_alive`` stays False
        # otherwise, so the connection is closed).
        if self.head and self.parser.get_status_code() >= 200:
            self._complete(self.parser.get_status_code(), b"")

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self.max_body:
            self._refuse(f"body over {self.max_body} bytes")
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue, 103 Early Hints): the final follows
            return
        self.keep_alive = self.parser.should_keep_alive()
        self._complete(status, b"".join(self._body))

    def _complete(self, status: int, body: bytes) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(HttpResult(status, self._headers, body))

    # -- use -----------------------------------------------------------------------------
    async def exchange(self, data: bytes, head: bool = False) -> HttpResult:
        if self.closed or self.transport is None:
            raise ConnectionDropped("connection already closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.keep_alive = False
        self.head = head
        self.transport.write(data)
        return await self.waiter

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Pool:
    def __init__(
        self, host: str, port: int, tls: ssl.SSLContext | None, limit: int, max_body: int
    ) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.max_body = max_body
        self.slots = asyncio.Semaphore(limit)
        self.idle: deque[_Connection] = deque()
        self.open: set[_Connection] = set()

    async def acquire(self, idle_seconds: float) -> _Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()  # the most recently used: the likeliest to be alive
            if not conn.closed and now - conn.idle_since < idle_seconds:
                return conn
            conn.close()
            self.open.discard(conn)
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                lambda: _Connection(self.max_body),
                self.host,
                self.port,
                ssl=self.tls,
                server_hostname=self.host if self.tls else None,
            )
        except OSError as exc:  # refused, unreachable, DNS, TLS handshake
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        self.open.add(conn)
        return conn

    def release(self, conn: _Connection, reusable: bool) -> None:
        if reusable and not conn.closed:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()
            self.open.discard(conn)

    def close(self) -> None:
        for conn in self.open:
            conn.close()
        self.open.clear()
        self.idle.clear()


class LeanHttpClient:
    """See the module docstring. One instance per process is enough; ``close()`` it."""

    def __init__(
        self,
        *,
        limit: int = 100,
        idle_seconds: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str | None = None,
        max_body: int = MAX_BODY,
    ) -> None:
        self.limit = limit
        self.max_body = max_body
        self.idle_seconds = idle_seconds
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._pools: dict[tuple[str, str, int], _Pool] = {}
        self._origins: dict[str, tuple[str, _Pool]] = {}

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes = b"",
        time_limit: float,
    ) -> HttpResult:
        """Send one request and read the whole answer within ``time_limit`` seconds.

        ``url`` must be absolute and already encoded. Raises ``ConnectFailed``,
        ``ConnectionDropped``, ``BadResponse`` or ``TimeoutError``.
        """
        target, host_line, pool = self._route(url)
        lines = [f"{method} {target} HTTP/1.1\r\nHost: {host_line}\r\n"]
        if self._user_agent and not any(name.lower() == "user-agent" for name in headers):
            lines.append(f"User-Agent: {self._user_agent}\r\n")
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} has characters not allowed in HTTP")
            if name.lower() in _FRAMING:
                raise ValueError(f"header {name!r} is set by the client itself")
            lines.append(f"{name}: {value}\r\n")
        if body or method not in ("GET", "HEAD", "DELETE"):
            lines.append(f"Content-Length: {len(body)}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode("latin-1") + body
        async with asyncio.timeout(time_limit), pool.slots:
            conn = await pool.acquire(self.idle_seconds)
            try:
                result = await conn.exchange(data, method == "HEAD")
            except BaseException:
                pool.release(conn, reusable=False)
                raise
            pool.release(conn, reusable=conn.keep_alive)
            return result

    def _route(self, url: str) -> tuple[str, str, _Pool]:
        """(request target, Host header, pool) for ``url``; the origin's part is cached."""
        slash = url.find("/", url.find("//") + 2)
        origin, target = (url[:slash], url[slash:]) if slash > 0 else (url, "/")
        cached = self._origins.get(origin)
        if cached is None:
            cached = self._origins[origin] = self._parse_origin(origin)
        return target, cached[0], cached[1]

    def _parse_origin(self, origin: str) -> tuple[str, _Pool]:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in origin:
            raise ValueError("only absolute http and https URLs without credentials")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        key = (parts.scheme, parts.hostname, port)
        pool = self._pools.get(key)
        if pool is None:
            context = (self._ssl or ssl.create_default_context()) if tls else None
            pool = self._pools[key] = _Pool(
                parts.hostname, port, context, self.limit, self.max_body
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
        return (host if port == (443 if tls else 80) else f"{host}:{port}"), pool

    async def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._origins.clear()
        await asyncio.sleep(0)  # let the transports finish closing

    def __repr__(self) -> str:
        return f"LeanHttpClient(limit={self.limit}, origins={len(self._pools)})"
