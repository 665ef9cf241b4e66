"""LeanHttpClient (connectors/http1.py) against real sockets on 127.0.0.1.

Well-behaved peers are aiohttp test servers; misbehaving ones (dropping the connection,
answering garbage, announcing ``Connection: close`` but keeping the socket open, sending
interim 1xx answers) are raw ``asyncio.start_server`` servers.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from factories import free_port
from pytest_aiohttp import AiohttpServer

from sportello.connectors.base import BaseConnector
from sportello.connectors.errors import (
    ConnectError,
    ConnectorTimeout,
    NotFound,
    ProtocolError,
    ServerError,
    TransportError,
)
from sportello.connectors.http1 import (
    BadResponse,
    ConnectFailed,
    ConnectionDropped,
    LeanHttpClient,
)
from sportello.connectors.io.errors import outcome_unknown
from sportello.connectors.retry import RetryPolicy

LIMIT = 2.0  # time_limit of the requests that are expected to succeed


# -- a well-behaved server: aiohttp ---------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    port: int

    def header(self, name: str) -> list[str]:
        """Every value the request carried for ``name`` (case-insensitive)."""
        wanted = name.lower().encode()
        return [v.decode("latin-1") for k, v in self.raw_headers if k.lower() == wanted]


class Upstream:
    """An aiohttp app that records every request, the peer port it came from and how many
    requests were being handled at once."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.active = 0
        self.max_active = 0
        self.release_slow = asyncio.Event()
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/echo", self.echo)
        app.router.add_get("/status/{code}", self.status)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/busy/{n}", self.busy)
        app.router.add_get("/chunked", self.chunked)
        self.app = app

    @property
    def ports(self) -> set[int]:
        return {seen.port for seen in self.seen}

    async def _record(self, request: web.Request) -> Seen:
        seen = Seen(
            request.method,
            request.path_qs,
            request.raw_headers,
            await request.read(),
            request.transport.get_extra_info("peername")[1],  # type: ignore[union-attr]
        )
        self.seen.append(seen)
        return seen

    async def echo(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        return web.Response(
            body=b'{"got":' + (seen.body or b"null") + b"}",
            content_type="application/json",
            headers={"X-Request-Id": f"req-{len(self.seen)}", "X-Path": seen.path},
        )

    async def status(self, request: web.Request) -> web.Response:
        await self._record(request)
        code = int(request.match_info["code"])
        return web.Response(status=code, text=f"status {code}")

    async def slow(self, request: web.Request) -> web.Response:
        await self._record(request)
        try:  # "sleeps 1 s", but the test lets it go early so the teardown is quick
            await asyncio.wait_for(self.release_slow.wait(), 1.0)
        except TimeoutError:
            pass
        return web.Response(text="slow")

    async def busy(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await asyncio.sleep(0.1)
        finally:
            self.active -= 1
        return web.Response(text=f"busy {request.match_info['n']}")

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for chunk in CHUNKS:
            await response.write(chunk)
            await asyncio.sleep(0.005)  # separate writes: separate chunks, separate packets
        await response.write_eof()
        return response


CHUNKS = [b"first,", b"", b"x" * 70_000, b"\r\n0\r\n\r\n", bytes(range(256)), b"last"]
CHUNKS = [c for c in CHUNKS if c]  # an empty write would end the chunked body


@pytest.fixture
async def upstream(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[Upstream, str]]:
    up = Upstream()
    server = await aiohttp_server(up.app)
    yield up, str(server.make_url("")).rstrip("/")
    up.release_slow.set()


ClientFactory = Callable[..., LeanHttpClient]


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    clients: list[LeanHttpClient] = []

    def make(**options: object) -> LeanHttpClient:
        client = LeanHttpClient(**options)  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:  # required by BaseConnector, unused
        yield shared


class LeanConnector(BaseConnector):
    platform = "lean"


def connector(session: aiohttp.ClientSession, base_url: str, http: LeanHttpClient) -> BaseConnector:
    return LeanConnector(
        session, base_url, retry=RetryPolicy(max_attempts=1), timeout=LIMIT, transport=http
    )


# -- misbehaving servers: raw asyncio --------------------------------------------------------

Reply = Callable[[bytes, int], "list[bytes] | None"]


class RawServer:
    """Reads requests (head + Content-Length body) off each connection and answers each with
    ``reply(request, n)`` (``n`` counts requests from 1): a list of byte strings written one
    after the other, or None to close the connection without answering. Keeps reading until
    the client closes, so reuse (or not) of a connection is visible."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.requests: list[tuple[int, bytes]] = []  # (connection number, request bytes)
        self.leftover = b""  # bytes received that were not a whole request
        self.client_closed = 0  # connections the client closed (EOF or reset)
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self._writers.add(writer)
        self.connections += 1
        number = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    self.leftover += exc.partial
                    self.client_closed += 1
                    return
                length = re.search(rb"(?im)^content-length:\s*(\d+)\r$", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                self.requests.append((number, head + body))
                parts = self.reply(head + body, len(self.requests))
                if parts is None:
                    return
                for i, part in enumerate(parts):
                    if i:
                        await asyncio.sleep(0.02)
                    writer.write(part)
                    await writer.drain()
        except ConnectionError:
            self.client_closed += 1
        finally:
            writer.close()
            self._writers.discard(writer)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[RawServer]:
    raw = RawServer(reply)
    server = await asyncio.start_server(raw.serve, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    try:
        yield raw
    finally:
        server.close()
        for writer in list(raw._writers):
            writer.close()
        if raw._tasks:
            await asyncio.wait(raw._tasks, timeout=1.0)
        await server.wait_closed()


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def eventually(check: Callable[[], bool], within: float = 0.5) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not check():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.005)
    return True


# -- requests and answers ---------------------------------------------------------------------


async def test_json_post_round_trip(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client(user_agent="sportello/test")
    payload = json.dumps({"fiscal_code": "AAAAAA00A00A000A", "città": "Bari"}).encode()

    result = await http.request(
        "POST",
        f"{url}/echo?x=1&y=%C3%A0",
        headers={"Content-Type": "application/json", "Ocp-Apim-Subscription-Key": "k1"},
        body=payload,
        time_limit=LIMIT,
    )

    assert result.status == 200
    assert result.body == b'{"got":' + payload + b"}"
    assert json.loads(result.body) == {"got": {"fiscal_code": "AAAAAA00A00A000A", "città": "Bari"}}
    assert result.headers["content-type"] == "application/json"
    assert result.headers["CONTENT-LENGTH"] == str(len(result.body))
    assert result.headers["x-request-id"] == "req-1"
    [seen] = up.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/echo?x=1&y=%C3%A0", payload)
    port = url.rsplit(":", 1)[1]
    assert seen.header("Host") == [f"127.0.0.1:{port}"]
    assert seen.header("Content-Length") == [str(len(payload))]
    assert seen.header("Content-Type") == ["application/json"]
    assert seen.header("Ocp-Apim-Subscription-Key") == ["k1"]
    assert seen.header("User-Agent") == ["sportello/test"]


async def test_content_length_only_when_there_is_a_body(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client()
    await http.request("GET", f"{url}/echo", headers={}, time_limit=LIMIT)
    await http.request("POST", f"{url}/echo", headers={}, time_limit=LIMIT)
    get, post = up.seen
    assert get.header("Content-Length") == []
    assert post.header("Content-Length") == ["0"]
    assert get.header("User-Agent") == []  # none configured, none sent


async def test_given_user_agent_wins_whatever_its_case(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client(user_agent="sportello/test")
    for name in ("User-Agent", "user-agent"):
        result = await http.request("GET", f"{url}/echo", headers={name: "mine"}, time_limit=LIMIT)
        assert result.status == 200  # aiohttp answers 400 to a duplicated User-Agent
    assert [seen.header("User-Agent") for seen in up.seen] == [["mine"], ["mine"]]


async def test_error_statuses_are_results_and_typed_errors_in_the_connector(
    upstream: tuple[Upstream, str], make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    up, url = upstream
    http = make_client()
    for code in (404, 500, 503):
        result = await http.request("GET", f"{url}/status/{code}", headers={}, time_limit=LIMIT)
        assert (result.status, result.body) == (code, f"status {code}".encode())
    assert len(up.ports) == 1  # an error status does not cost the connection

    lean = connector(session, url, http)
    with pytest.raises(ServerError) as server_error:
        await lean.request("GET", "/status/503")
    assert (server_error.value.status, server_error.value.retryable) == (503, True)
    assert server_error.value.platform == "lean"
    with pytest.raises(NotFound) as not_found:
        await lean.request("GET", "/status/404")
    assert not_found.value.status == 404
    response = await lean.request("GET", "/echo")
    assert (response.status, response.request_id) == (200, f"req-{len(up.seen)}")
    assert up.seen[-1].header("User-Agent") == []  # went through the lean client, not aiohttp


async def test_chunked_body_is_reassembled(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client()
    result = await http.request("GET", f"{url}/chunked", headers={}, time_limit=LIMIT)
    assert result.status == 200
    assert result.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in result.headers
    assert result.body == b"".join(CHUNKS)
    # The parser is left in a clean state: the connection serves the next answer.
    after = await http.request("POST", f"{url}/echo", headers={}, body=b"1", time_limit=LIMIT)
    assert after.body == b'{"got":1}'
    assert len(up.ports) == 1


async def test_large_bodies_both_ways(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client()
    payload = b"[" + b",".join(b"%d" % i for i in range(300_000)) + b"]"  # ~2 MB
    result = await http.request("POST", f"{url}/echo", headers={}, body=payload, time_limit=LIMIT)
    assert result.status == 200
    assert up.seen[0].body == payload
    assert result.body == b'{"got":' + payload + b"}"


async def test_head_answer_has_no_body_whatever_its_content_length(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client()
    result = await http.request("HEAD", f"{url}/echo", headers={}, time_limit=0.5)
    assert result.status == 200
    assert int(result.headers["Content-Length"]) > 0
    assert result.body == b""
    after = await http.request("POST", f"{url}/echo", headers={}, body=b"2", time_limit=LIMIT)
    assert after.body == b'{"got":2}'
    assert [seen.method for seen in up.seen] == ["HEAD", "POST"]


async def test_interim_1xx_answers_are_skipped(make_client: ClientFactory) -> None:
    def reply(request: bytes, n: int) -> list[bytes]:
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        final = ok(b"answer %d" % n)
        if n == 1:
            return [hints + final]  # one packet
        return [b"HTTP/1.1 100 Continue\r\n\r\n", hints, final]  # three, 20 ms apart

    http = make_client()
    async with raw_server(reply) as raw:
        for n in (1, 2, 3):
            result = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
            assert (result.status, result.body) == (200, b"answer %d" % n)
            assert "link" not in result.headers
        assert raw.connections == 1


# -- connection reuse -------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client()
    for i in range(10):
        body = b"%d" % i
        result = await http.request("POST", f"{url}/echo", headers={}, body=body, time_limit=LIMIT)
        assert result.body == b'{"got":' + body + b"}"  # each answer goes to its own request
    assert len(up.seen) == 10
    assert len(up.ports) == 1


async def test_connection_close_answer_is_not_reused(make_client: ClientFactory) -> None:
    # The server announces the close but keeps the socket open: only the client's reading
    # of the header keeps it from sending the next request on that connection.
    def reply(request: bytes, n: int) -> list[bytes]:
        return [ok(b"bye %d" % n, "Connection: close")]

    http = make_client()
    async with raw_server(reply) as raw:
        for n in (1, 2):
            result = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
            assert result.body == b"bye %d" % n
        assert [number for number, _ in raw.requests] == [1, 2]
        assert raw.connections == 2
        assert await eventually(lambda: raw.client_closed == 2)


async def test_connection_closed_by_peer_while_idle_is_not_reused(
    make_client: ClientFactory,
) -> None:
    # Keep-alive answer, then the server closes: the pool must notice and open a new one.
    def reply(request: bytes, n: int) -> list[bytes]:
        return [ok(b"once %d" % n)]

    http = make_client()
    async with raw_server(reply) as raw:
        first = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert first.body == b"once 1"
        for writer in list(raw._writers):
            writer.close()
        assert await eventually(lambda: not raw._writers)
        await asyncio.sleep(0.05)  # the client's side sees the FIN
        second = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert second.body == b"once 2"
        assert raw.connections == 2


async def test_idle_connection_expires(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client(idle_seconds=0.05)
    await http.request("GET", f"{url}/echo", headers={}, time_limit=LIMIT)
    await http.request("GET", f"{url}/echo", headers={}, time_limit=LIMIT)  # at once: reused
    assert len(up.ports) == 1
    await asyncio.sleep(0.1)
    await http.request("GET", f"{url}/echo", headers={}, time_limit=LIMIT)
    assert len(up.seen) == 3
    assert len(up.ports) == 2  # aiohttp keeps connections 75 s: the client closed it


async def test_limit_caps_concurrent_connections(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client(limit=2)
    results = await asyncio.gather(
        *(http.request("GET", f"{url}/busy/{i}", headers={}, time_limit=LIMIT) for i in range(6))
    )
    assert [(r.status, r.body) for r in results] == [(200, b"busy %d" % i) for i in range(6)]
    assert up.max_active == 2
    assert len(up.ports) == 2


# -- failures -----------------------------------------------------------------------------------


async def test_connection_refused(
    make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    port = free_port()
    http = make_client()
    with pytest.raises(ConnectFailed) as failed:
        await http.request("POST", f"http://127.0.0.1:{port}/x", headers={}, time_limit=LIMIT)
    assert isinstance(failed.value.__cause__, ConnectionRefusedError)

    with pytest.raises(ConnectError) as error:
        await connector(session, f"http://127.0.0.1:{port}", http).request("POST", "/x", json={})
    assert isinstance(error.value.__cause__, ConnectFailed)
    assert error.value.retryable
    assert not outcome_unknown(error.value)  # nothing was sent


async def test_dropped_after_the_request(
    make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    http = make_client()
    async with raw_server(lambda request, n: None) as raw:
        with pytest.raises(ConnectionDropped):
            await http.request("POST", f"{raw.url}/m", headers={}, body=b"{}", time_limit=LIMIT)

        with pytest.raises(TransportError) as error:
            await connector(session, raw.url, http).request("POST", "/m", json={"a": 1})
        assert not isinstance(error.value, ConnectError | ConnectorTimeout)
        assert isinstance(error.value.__cause__, ConnectionDropped)
        assert outcome_unknown(error.value)  # the request did arrive
        assert [request.endswith(b"\r\n\r\n{}") for _, request in raw.requests] == [True, False]
        assert raw.requests[1][1].endswith(b'{"a":1}')


@pytest.mark.parametrize(
    "garbage",
    [
        b"NOT HTTP\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
    ],
    ids=["not-http", "bad-length", "unasked-upgrade"],
)
async def test_garbage_answer(
    garbage: bytes, make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    http = make_client()
    async with raw_server(lambda request, n: [garbage]) as raw:
        with pytest.raises(BadResponse):
            await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        # The server kept the socket open: the client closed it, it is not pooled.
        assert await eventually(lambda: raw.client_closed == 1)

        with pytest.raises(ProtocolError) as error:
            await connector(session, raw.url, http).request("GET", "/")
        assert isinstance(error.value.__cause__, BadResponse)
        assert raw.connections == 2


async def test_timeout_discards_the_connection(
    upstream: tuple[Upstream, str], make_client: ClientFactory
) -> None:
    up, url = upstream
    http = make_client()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await http.request("GET", f"{url}/slow", headers={}, time_limit=0.1)
    assert loop.time() - started < 0.5
    result = await http.request("POST", f"{url}/echo", headers={}, body=b"3", time_limit=LIMIT)
    # Had the timed-out connection gone back to the pool, the slow answer could come back
    # for this request; it went on a new connection instead.
    assert result.body == b'{"got":3}'
    assert [seen.path for seen in up.seen] == ["/slow", "/echo"]
    assert len(up.ports) == 2


async def test_header_injection_is_refused_before_sending(make_client: ClientFactory) -> None:
    http = make_client()
    async with raw_server(lambda request, n: [ok(b"fine")]) as raw:
        bad_headers = [
            {"X-Ok": "a\r\nX-Injected: 1"},
            {"X-Ok": "a\nX-Injected: 1"},
            {"X-Ok": "a\rb"},
            {"X-Ok\r\nX-Injected": "1"},
            {"X-Ok: 1\r\nX-Injected": "1"},
            # framing headers are the client's own: a second copy would be ambiguous
            {"Host": "elsewhere.example"},
            {"content-length": "0"},
            {"Transfer-Encoding": "chunked"},
        ]
        for headers in bad_headers:
            with pytest.raises(ValueError):
                await http.request("GET", f"{raw.url}/", headers=headers, time_limit=LIMIT)
        await asyncio.sleep(0.05)
        assert (raw.connections, raw.requests, raw.leftover) == (0, [], b"")

        result = await http.request("GET", f"{raw.url}/", headers={"X-Ok": "a"}, time_limit=LIMIT)
        assert result.body == b"fine"
        [(_, request)] = raw.requests
        assert b"X-Injected" not in request


# -- TLS ------------------------------------------------------------------------------------


def self_signed_for_localhost(directory: Path) -> tuple[Path, Path, str]:
    """(certificate file, key file, certificate PEM) for IP 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sportello test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(pem)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_file, 0o600)
    return cert_file, key_file, pem.decode()


async def test_https(
    aiohttp_server: AiohttpServer, make_client: ClientFactory, tmp_path: Path
) -> None:
    cert_file, key_file, pem = self_signed_for_localhost(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    up = Upstream()
    server = await aiohttp_server(up.app, ssl=server_context)
    url = str(server.make_url("/echo"))
    assert url.startswith("https://127.0.0.1:")

    trusting = make_client(ssl_context=ssl.create_default_context(cadata=pem))
    for body in (b"1", b"2"):
        result = await trusting.request("POST", url, headers={}, body=body, time_limit=LIMIT)
        assert (result.status, result.body) == (200, b'{"got":' + body + b"}")
    assert len(up.ports) == 1  # keep-alive over TLS too

    untrusting = make_client()  # the default context: the system's CAs
    with pytest.raises(ConnectFailed) as failed:
        await untrusting.request("POST", url, headers={}, body=b"3", time_limit=LIMIT)
    assert isinstance(failed.value.__cause__, ssl.SSLCertVerificationError)
    assert len(up.seen) == 2  # nothing reached the handler
    # through a connector: a TransportError that is not retried (as on the aiohttp path)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TransportError) as error:
            await connector(session, url.rsplit("/", 1)[0], untrusting).request(
                "POST", "/echo", data=b"4"
            )
    assert error.value.retryable is False and not isinstance(error.value, ConnectError)
    assert str(error.value).startswith("[lean] TLS certificate error")
    assert len(up.seen) == 2

    await trusting.close()
    await trusting.close()


# -- close ------------------------------------------------------------------------------------


async def test_close_closes_pooled_connections_and_can_be_repeated(
    make_client: ClientFactory,
) -> None:
    http = make_client()
    async with raw_server(lambda request, n: [ok(b"kept")]) as raw:
        results = await asyncio.gather(
            *(http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT) for _ in range(3))
        )
        assert [r.body for r in results] == [b"kept"] * 3
        assert raw.connections == 3
        assert raw.client_closed == 0  # idle in the pool, open

        await http.close()
        assert await eventually(lambda: raw.client_closed == 3)
        await http.close()

        # A closed client opens new connections if used again.
        again = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert again.body == b"kept"
        assert raw.connections == 4


# -- a peer that desyncs, floods or closes to end the body (issue 12 item 10) ------------------


STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nstray"  # 5 of its 10 body bytes


@pytest.mark.parametrize("when", ["same-packet", "while-idle"])
async def test_bytes_with_no_request_in_flight_close_the_connection(
    when: str, make_client: ClientFactory
) -> None:
    # A peer (or a proxy gone wrong) sends an answer nobody asked for. Had those bytes stayed
    # in the connection's parser, the next request would read "strayHTTP/" as its answer.
    def reply(request: bytes, n: int) -> list[bytes]:
        if n == 1:
            return [ok(b"one") + STRAY] if when == "same-packet" else [ok(b"one"), STRAY]
        return [ok(b"answer %d" % n)]

    http = make_client()
    async with raw_server(reply) as raw:
        first = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert first.body == b"one"
        await asyncio.sleep(0.1)  # the stray bytes arrive while the connection is idle
        second = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert (second.status, second.body) == (200, b"answer 2")
        assert [number for number, _ in raw.requests] == [1, 2]  # a new connection
        assert await eventually(lambda: raw.client_closed >= 1)  # the first one was closed


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 8200 + b"\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 " + b"O" * 8200 + b"\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n"
        + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
        + b"Content-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000) for i in range(12)),
    ],
    ids=["header-line-over-8k", "status-line-over-8k", "200-headers", "head-over-64k"],
)
async def test_oversized_heads_are_refused(
    head: bytes, make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    http = make_client()
    async with raw_server(lambda request, n: [head]) as raw:
        with pytest.raises(BadResponse, match=r"refused|over"):
            await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert await eventually(lambda: raw.client_closed == 1)
        with pytest.raises(ProtocolError):
            await connector(session, raw.url, http).request("GET", "/")


async def test_a_head_that_never_ends_is_refused_without_waiting_for_the_timeout(
    make_client: ClientFactory,
) -> None:
    endless = [b"HTTP/1.1 200 OK\r\nX-Endless: "] + [b"a" * 16_384] * 40  # 640 KiB, no CRLF
    http = make_client()
    loop = asyncio.get_running_loop()
    async with raw_server(lambda request, n: endless) as raw:
        started = loop.time()
        with pytest.raises(BadResponse, match="head over"):
            await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert loop.time() - started < 0.5  # 64 KiB in: it did not buffer until LIMIT


async def test_header_lines_up_to_aiohttp_limit_are_accepted(make_client: ClientFactory) -> None:
    value = b"v" * (8190 - len(b"X-Big") - 2)  # name + ": " + value = 8190 bytes
    http = make_client()
    async with raw_server(lambda request, n: [ok(b"fine", "X-Big: " + value.decode())]) as raw:
        result = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert (result.body, result.headers["X-Big"]) == (b"fine", value.decode())


async def test_body_over_the_cap_is_refused(make_client: ClientFactory) -> None:
    def reply(request: bytes, n: int) -> list[bytes]:
        size = 1000 if n == 1 else 1001
        return [ok(b"x" * size)]

    http = make_client(max_body=1000)
    async with raw_server(reply) as raw:
        result = await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
        assert len(result.body) == 1000  # at the cap: fine
        with pytest.raises(BadResponse, match="body over 1000 bytes"):
            await http.request("GET", f"{raw.url}/", headers={}, time_limit=LIMIT)
    # the default cap is finite too
    assert LeanHttpClient().max_body == 16 * 1024 * 1024


@asynccontextmanager
async def closing_server(answer: list[bytes]) -> AsyncIterator[str]:
    """Reads one request head, writes ``answer`` (parts 20 ms apart), then closes (FIN)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)\r$", head)
        if length:
            await reader.readexactly(int(length.group(1)))
        for i, part in enumerate(answer):
            if i:
                await asyncio.sleep(0.02)
            writer.write(part)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def test_close_delimited_body_ends_at_eof(
    make_client: ClientFactory, session: aiohttp.ClientSession
) -> None:
    # No Content-Length, not chunked, Connection: close: the body is everything up to the
    # server's close (RFC 9112 §6.3). An App IO answer framed so is an answer, not a loss.
    body = b'{"id":"01HQX0MESSAGE"}'
    answer = [
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        body[:10],
        body[10:],
    ]
    http = make_client()
    async with closing_server(answer) as url:
        result = await http.request(
            "POST", f"{url}/messages", headers={}, body=b"{}", time_limit=LIMIT
        )
        assert (result.status, result.body) == (201, body)
    async with closing_server(answer) as url:  # through a connector: no outcome_unknown
        response = await connector(session, url, http).request(
            "POST", "/messages", json={}, expected=(201,)
        )
        assert (response.status, response.json()) == (201, {"id": "01HQX0MESSAGE"})
    # An HTTP/1.0 answer with neither header is close-delimited too.
    async with closing_server([b"HTTP/1.0 200 OK\r\n\r\nold", b" style"]) as url:
        result = await http.request("GET", f"{url}/", headers={}, time_limit=LIMIT)
        assert result.body == b"old style"


async def test_eof_before_the_announced_length_is_still_a_lost_answer(
    make_client: ClientFactory,
) -> None:
    cut = [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhalf"]
    http = make_client()
    async with closing_server(cut) as url:
        with pytest.raises(ConnectionDropped):
            await http.request("GET", f"{url}/", headers={}, time_limit=LIMIT)
    chunked = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhalf\r\n"]
    async with closing_server(chunked) as url:
        with pytest.raises(ConnectionDropped):
            await http.request("GET", f"{url}/", headers={}, time_limit=LIMIT)
    async with closing_server([b"HTTP/1.1 200 OK\r\nX-Cut: 1\r\n"]) as url:  # head cut
        with pytest.raises(ConnectionDropped):
            await http.request("GET", f"{url}/", headers={}, time_limit=LIMIT)
