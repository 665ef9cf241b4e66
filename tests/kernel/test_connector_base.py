"""BaseConnector against real local HTTP servers (no mocks of aiohttp)."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from sportello.connectors.base import BaseConnector, Response
from sportello.connectors.errors import (
    AuthError,
    BadRequest,
    ConnectError,
    ConnectorTimeout,
    ProtocolError,
    RateLimited,
    ServerError,
    SigningError,
    TransportError,
    UpstreamError,
)
from sportello.connectors.retry import RetryPolicy
from sportello.connectors.signing import (
    BearerTokenSigner,
    HeaderKeySigner,
    OutgoingRequest,
    static_secret,
)


class DemoConnector(BaseConnector):
    platform = "demo"


class SleepRecorder:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class RecordingSigner:
    """Signs each attempt with a signature unique to it, as a ModI JWT would be."""

    def __init__(self) -> None:
        self.calls: list[OutgoingRequest] = []

    async def sign(self, request: OutgoingRequest) -> None:
        signature = f"sig-{request.attempt}-{random.getrandbits(64):016x}"
        request.headers["Agid-JWT-Signature"] = signature
        self.calls.append(
            OutgoingRequest(
                request.method,
                request.url,
                dict(request.headers),
                request.body,
                request.attempt,
                request.idempotency_key,
            )
        )


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"ok":true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: dict[str, str]
    body: bytes


class Script:
    """Handler giving the queued answers in order (the last one repeats); records requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = answers
        self.seen: list[Seen] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            Seen(request.method, request.path_qs, dict(request.headers), await request.read())
        )
        answer = self.answers[min(len(self.seen), len(self.answers)) - 1]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = {"Content-Type": "application/json", **answer.headers}
        return web.Response(status=answer.status, body=answer.body, headers=headers)


Serve = Callable[[Script], Awaitable[str]]


@pytest.fixture
def serve(aiohttp_server: AiohttpServer) -> Serve:
    async def start(script: Script) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", script.handle)
        server = await aiohttp_server(app)
        return str(server.make_url("/api/v1"))

    return start


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as shared:
        yield shared


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


def connector(
    session: aiohttp.ClientSession,
    base_url: str,
    sleep: SleepRecorder,
    *,
    timeout: float = 2.0,
    **policy: float,
) -> DemoConnector:
    retry = RetryPolicy(**{"base_delay": 0.01, **policy}, rng=random.Random(3))  # type: ignore[arg-type]
    return DemoConnector(session, base_url, retry=retry, timeout=timeout, sleep=sleep)


# --- retries on HTTP answers -------------------------------------------------------------


async def test_429_waits_retry_after_then_succeeds(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(429, b"", {"Retry-After": "2"}), Answer(200, b'{"id":"P1"}'))
    conn = connector(session, await serve(script), sleep)
    response = await conn.request("GET", "/positions/P1")
    assert response.status == 200 and response.json() == {"id": "P1"}
    assert response.attempts == 2
    assert len(sleep.delays) == 1 and sleep.delays[0] >= 2.0
    assert [s.path_qs for s in script.seen] == ["/api/v1/positions/P1"] * 2
    assert not session.closed


async def test_503_twice_same_idempotency_key_and_fresh_signature(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(503, b""), Answer(503, b""), Answer(201, b'{"iupd":"X"}'))
    signer = RecordingSigner()
    conn = DemoConnector(
        session,
        await serve(script),
        signer=signer,
        retry=RetryPolicy(base_delay=0.01, rng=random.Random(1)),
        sleep=sleep,
    )
    payload = {"iupd": "X", "amount": 1050, "città": "Bari"}
    response = await conn.request(
        "post", "/debtpositions", json=payload, params={"toPublish": "true"}, idempotency_key="k-1"
    )
    assert response.status == 201 and response.attempts == 3
    assert [c.attempt for c in signer.calls] == [1, 2, 3]
    assert [s.headers["Idempotency-Key"] for s in script.seen] == ["k-1", "k-1", "k-1"]
    assert all(c.idempotency_key == "k-1" for c in signer.calls)
    signatures = [s.headers["Agid-JWT-Signature"] for s in script.seen]
    assert signatures == [c.headers["Agid-JWT-Signature"] for c in signer.calls]
    assert len(set(signatures)) == 3
    assert [sig.split("-")[1] for sig in signatures] == ["1", "2", "3"]
    # The body is serialised once: identical bytes on every attempt, signed as sent.
    expected_body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    assert [s.body for s in script.seen] == [expected_body] * 3
    assert all(c.body == expected_body for c in signer.calls)
    assert all(s.method == "POST" for s in script.seen)
    assert all(s.headers["Content-Type"] == "application/json" for s in script.seen)
    # The signer saw the exact URL the server received.
    assert script.seen[0].path_qs == "/api/v1/debtpositions?toPublish=true"
    assert signer.calls[0].url.endswith("/api/v1/debtpositions?toPublish=true")
    assert len(sleep.delays) == 2


async def test_503_forever_gives_server_error(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(503, b"busy", {"x-request-id": "req-503-abc"}))
    conn = connector(session, await serve(script), sleep, max_attempts=4)
    with pytest.raises(ServerError) as info:
        await conn.request("GET", "/status")
    error = info.value
    assert (error.status, error.request_id, error.platform) == (503, "req-503-abc", "demo")
    assert error.attempts == 4 and error.retryable is True and error.body == "busy"
    assert len(script.seen) == 4 and len(sleep.delays) == 3
    assert str(error) == "[demo] HTTP 503: unexpected HTTP status 503 (request-id: req-503-abc)"


async def test_400_is_raised_at_once_with_body(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    problem = b'{"title":"Bad Request","status":400,"detail":"fiscalCode is invalid"}'
    script = Script(Answer(400, problem, {"X-Correlation-ID": "corr-9"}))
    conn = connector(session, await serve(script), sleep)
    with pytest.raises(BadRequest) as info:
        await conn.request("POST", "/messages", json={"fiscal_code": "XXX"})
    error = info.value
    assert error.status == 400 and error.retryable is False and error.attempts == 1
    assert error.body == problem.decode() and error.message == "fiscalCode is invalid"
    assert error.request_id == "corr-9" and error.platform == "demo"
    assert len(script.seen) == 1 and sleep.delays == []


async def test_429_longer_than_max_retry_after_is_raised_at_once(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(429, b"", {"Retry-After": "3600"}), Answer(200))
    conn = connector(session, await serve(script), sleep, max_retry_after=60.0)
    with pytest.raises(RateLimited) as info:
        await conn.request("GET", "/quota")
    assert info.value.retry_after == 3600.0 and info.value.retryable is True
    assert info.value.attempts == 1 and info.value.status == 429
    assert len(script.seen) == 1 and sleep.delays == []


async def test_unexpected_success_status_and_redirects_are_errors(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(200), Answer(302, b"", {"Location": "http://elsewhere.invalid/"}))
    conn = connector(session, await serve(script), sleep)
    with pytest.raises(UpstreamError) as info:
        await conn.request("PUT", "/x", data=b"raw", expected=(201,))
    assert type(info.value) is UpstreamError and info.value.status == 200
    assert info.value.retryable is False and script.seen[0].body == b"raw"
    with pytest.raises(UpstreamError) as redirect:
        await conn.request("GET", "/x")
    assert redirect.value.status == 302 and len(script.seen) == 2


async def test_json_on_garbage_is_protocol_error(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(200, b"<html>maintenance</html>", {"x-request-id": "r-7"}))
    response: Response = await connector(session, await serve(script), sleep).request("GET", "/")
    assert response.request_id == "r-7" and response.body == b"<html>maintenance</html>"
    with pytest.raises(ProtocolError) as info:
        response.json()
    assert info.value.status == 200 and info.value.platform == "demo"
    assert info.value.body == "<html>maintenance</html>" and info.value.retryable is False


# --- signers -----------------------------------------------------------------------------


async def test_signers_reask_provider_each_attempt_and_never_leak(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    tokens = iter(["tok-expired", "tok-fresh"])

    async def token_provider() -> str:
        return next(tokens)

    script = Script(Answer(503, b""), Answer(401, b'{"detail":"invalid token"}'))
    signer = BearerTokenSigner(token_provider)
    conn = DemoConnector(session, await serve(script), signer=signer, sleep=sleep)
    with pytest.raises(AuthError) as info:
        await conn.request("GET", "/me")
    assert [s.headers["Authorization"] for s in script.seen] == [
        "Bearer tok-expired",
        "Bearer tok-fresh",
    ]
    error = info.value
    assert error.status == 401 and error.attempts == 2
    for text in (str(error), repr(error), repr(signer)):
        assert "tok-" not in text and "Bearer " not in text


async def test_header_key_signer(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(201, b'{"id":"01J"}'))
    signer = HeaderKeySigner("Ocp-Apim-Subscription-Key", static_secret("sub-key-123"))
    conn = DemoConnector(session, await serve(script), signer=signer, sleep=sleep)
    response = await conn.request("POST", "/messages", json={"content": {}})
    assert response.json() == {"id": "01J"}
    assert script.seen[0].headers["Ocp-Apim-Subscription-Key"] == "sub-key-123"
    assert "sub-key" not in repr(signer)


async def test_failing_signer_is_signing_error_without_secret(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    async def broken() -> str:
        raise RuntimeError("could not load key s3cr3t")

    script = Script(Answer(200))
    conn = DemoConnector(
        session, await serve(script), signer=BearerTokenSigner(broken), sleep=sleep
    )
    with pytest.raises(SigningError) as info:
        await conn.request("GET", "/")
    assert str(info.value) == "[demo] signer failed: RuntimeError"
    assert info.value.attempts == 1 and script.seen == [] and sleep.delays == []


# --- transport failures ------------------------------------------------------------------


async def test_slow_answer_times_out_and_is_retried(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(200, b'{"late":true}', delay=0.4), Answer(200, b'{"late":false}'))
    conn = connector(session, await serve(script), sleep, timeout=0.1)
    response = await conn.request("GET", "/slow")
    assert response.json() == {"late": False} and response.attempts == 2
    assert len(script.seen) == 2 and len(sleep.delays) == 1


async def test_always_slow_gives_connector_timeout(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(200, delay=0.4))
    conn = connector(session, await serve(script), sleep, timeout=0.1, max_attempts=2)
    with pytest.raises(ConnectorTimeout) as info:
        await conn.request("GET", "/slow")
    assert info.value.attempts == 2 and info.value.retryable is True
    assert info.value.platform == "demo" and info.value.status is None
    assert len(sleep.delays) == 1


async def test_deadline_shortens_the_attempt_timeout(
    serve: Serve, session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    script = Script(Answer(200, delay=0.5))
    conn = connector(session, await serve(script), sleep, timeout=5.0, deadline=0.15)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectorTimeout) as info:
        await conn.request("GET", "/slow")
    assert loop.time() - started < 0.45
    assert info.value.attempts == 1 and sleep.delays == []


class RawServer:
    """A bare TCP server: plays one behaviour per connection, records raw requests."""

    OK = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        b'Connection: close\r\n\r\n{"ok":true}'
    )
    SHORT = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
        b'Connection: close\r\n\r\n{"partial"'
    )

    def __init__(self, *behaviours: str) -> None:
        self.behaviours = list(behaviours)
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self.behaviours.pop(0) if len(self.behaviours) > 1 else self.behaviours[0]
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        self.requests.append(head + (await reader.readexactly(length) if length else b""))
        if behaviour == "ok":
            writer.write(self.OK)
        elif behaviour == "short":
            writer.write(self.SHORT)
        await writer.drain()
        writer.close()  # "drop": the request was read, no answer at all

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[..., Awaitable[tuple[RawServer, str]]]]:
    servers: list[RawServer] = []

    async def start(*behaviours: str) -> tuple[RawServer, str]:
        server = RawServer(*behaviours)
        servers.append(server)
        return server, await server.start()

    yield start
    for server in servers:
        await server.close()


async def test_connection_dropped_mid_request_is_retried(
    raw_server: Callable[..., Awaitable[tuple[RawServer, str]]],
    session: aiohttp.ClientSession,
    sleep: SleepRecorder,
) -> None:
    server, url = await raw_server("drop", "short", "ok")
    conn = connector(session, url, sleep)
    response = await conn.request("POST", "/pay", json={"n": 1}, idempotency_key="idem-7")
    assert response.status == 200 and response.json() == {"ok": True}
    assert response.attempts == 3 and len(sleep.delays) == 2
    assert len(server.requests) == 3
    assert all(b"Idempotency-Key: idem-7\r\n" in r for r in server.requests)
    assert all(r.startswith(b"POST /api/pay HTTP/1.1\r\n") for r in server.requests)
    assert all(r.endswith(b'{"n":1}') for r in server.requests)


async def test_connection_dropped_every_time_gives_transport_error(
    raw_server: Callable[..., Awaitable[tuple[RawServer, str]]],
    session: aiohttp.ClientSession,
    sleep: SleepRecorder,
) -> None:
    server, url = await raw_server("drop")
    conn = connector(session, url, sleep, max_attempts=3)
    with pytest.raises(TransportError) as info:
        # POST: for GET/PUT/DELETE aiohttp itself resends once on a dropped connection.
        await conn.request("POST", "/x")
    assert type(info.value) is TransportError
    assert info.value.attempts == 3 and info.value.retryable is True
    assert str(info.value) == "[demo] ServerDisconnectedError: Server disconnected"
    assert len(server.requests) == 3


async def test_connection_refused_is_connect_error(
    session: aiohttp.ClientSession, sleep: SleepRecorder
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = connector(session, f"http://127.0.0.1:{port}", sleep, max_attempts=2)
    with pytest.raises(TransportError) as info:
        await conn.request("GET", "/health")
    error = info.value
    # a TransportError that says nothing was sent (callers without idempotency rely on it)
    assert type(error) is ConnectError and error.retryable is True
    assert error.attempts == 2 and error.status is None and error.platform == "demo"
    assert str(error).startswith("[demo] ClientConnectorError: Cannot connect to host 127.0.0.1")
    assert len(sleep.delays) == 1


# --- construction ------------------------------------------------------------------------


async def test_construction_rules(session: aiohttp.ClientSession) -> None:
    with pytest.raises(TypeError, match="platform"):
        BaseConnector(session, "http://x")
    conn = DemoConnector(session, "https://api.example.it/gpd/v1/")
    assert conn.url_for("/organizations/123/debtpositions", {"page": 0}) == (
        "https://api.example.it/gpd/v1/organizations/123/debtpositions?page=0"
    )
    assert conn.url_for("a b") == "https://api.example.it/gpd/v1/a%20b"
    for bad in ("https://evil.example/x", "//evil.example/x"):
        with pytest.raises(ValueError):
            await conn.request("GET", bad)
    with pytest.raises(ValueError):
        await conn.request("POST", "/x", json={}, data=b"")
