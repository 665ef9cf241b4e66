"""The SMTP twin: what a comune's submission server does with the hub's e-mail.

SMTP (RFC 5321, ``aiosmtpd``) on its own port, next to a small HTTP app for tests and the
demo. What it checks, as a strict submission server would:

- the envelope: ``MAIL FROM`` a syntactically valid address (not the null sender), each
  ``RCPT TO`` valid, at most ``MAX_RECIPIENTS``; a recipient in the reserved ``.invalid``
  domain (RFC 2606) is refused ``550 5.1.1`` (a mailbox that does not exist);
- AUTH (PLAIN, LOGIN) when the twin is built with credentials: ``530`` before it;
- the message: ``From``, ``Date``, ``Message-ID`` (``<left@right>``) and ``Subject`` present,
  the ``From`` address the envelope sender's (alignment), lines of at most 998 octets,
  8-bit bytes only with ``BODY=8BITMIME``, at most ``MAX_SIZE`` octets.

Every accepted message is stored; one whose ``Message-ID`` was seen before is marked a
duplicate and counted. HTTP routes (``/__sandbox/``): ``GET messages`` (``?to=``,
``?message_id=``), ``DELETE messages``, ``GET|POST|DELETE faults``, ``GET smtp`` (host,
port), ``GET tls-certificate`` (the twin's self-signed certificate, to trust it).

Faults (``POST /__sandbox/faults``): ``{"stage": "mail" | "rcpt" | "data" |
"after_data", "code": 421 | 451 | 452 | 550 | 554, "count": 1, "hang": null}``. At
``after_data`` the message is stored and then the answer is lost: the twin waits ``hang``
seconds (default 30) before answering, so the client times out as after a dropped link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..common import platform_app

MAX_RECIPIENTS = 100
MAX_SIZE = 10 * 1024 * 1024
STAGES = ("mail", "rcpt", "data", "after_data")
_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
_TEXTS = {
    421: "4.3.0 Service not available, closing transmission channel (sandbox fault)",
    451: "4.3.0 Requested action aborted: local error (sandbox fault)",
    452: "4.3.1 Insufficient system storage (sandbox fault)",
    550: "5.7.1 Requested action not taken (sandbox fault)",
    554: "5.6.0 Transaction failed (sandbox fault)",
}
DEMO_USER = "sportello-demo"
DEMO_PASSWORD = "sandbox-smtp-password"  # a sandbox value, not a secret


@dataclass(slots=True)
class Fault:
    stage: str
    code: int
    remaining: int
    hang: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "code": self.code, "remaining": self.remaining}


@dataclass
class MailState:
    host: str
    port: int
    credentials: tuple[str, str] | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    refused: int = 0
    bound_port: int | None = None
    certificate_pem: bytes = b""

    def fault(self, stage: str) -> Fault | None:
        for f in self.faults:
            if f.stage == stage:
                f.remaining -= 1
                if f.remaining <= 0:
                    self.faults.remove(f)
                return f
        return None

    @property
    def duplicates(self) -> int:
        return sum(1 for m in self.messages if m["duplicate"])


STATE = web.AppKey("email_state", MailState)


def _valid(address: str) -> bool:
    return len(address) <= 254 and _ADDRESS.match(address) is not None


def _problems(raw: bytes, envelope_from: str, eight_bit: bool) -> list[str]:
    out = []
    for line in raw.split(b"\n"):
        if len(line.rstrip(b"\r")) > 998:
            out.append("a line is longer than 998 octets (RFC 5322 2.1.1)")
            break
    if not eight_bit and any(b > 127 for b in raw):
        out.append("8-bit data without BODY=8BITMIME: encode it (quoted-printable or base64)")
    msg = message_from_bytes(raw, policy=default_policy)
    for name in ("From", "Date", "Message-ID", "Subject"):
        if msg.get(name) is None:
            out.append(f"header {name} is missing")
    mid = str(msg.get("Message-ID", "")).strip()
    if mid and not _MESSAGE_ID.match(mid):
        out.append(f"Message-ID {mid[:80]!r} is not <left@right>")
    if msg.get("Date") is not None:
        try:
            parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError):
            out.append("header Date is not an RFC 5322 date")
    sender = parseaddr(str(msg.get("From", "")))[1]
    if msg.get("From") is not None and sender.casefold() != envelope_from.casefold():
        out.append(f"header From {sender!r} is not the envelope sender {envelope_from!r}")
    return out


def _stored(
    raw: bytes, envelope: Envelope, session: Session, seen: set[str], n: int
) -> dict[str, Any]:
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    body = msg.get_body(preferencelist=("plain",))
    attachments = []
    for part in msg.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        item: dict[str, Any] = {
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "method": part.get_param("method"),
            "size": len(data),
        }
        if part.get_content_maintype() == "text":
            item["text"] = data.decode(part.get_content_charset() or "utf-8", "replace")
        attachments.append(item)
    mid = str(msg["Message-ID"]).strip()
    return {
        "id": n,
        "message_id": mid,
        "duplicate": mid in seen,
        "envelope_from": envelope.mail_from,
        "recipients": list(envelope.rcpt_tos),
        "from": str(msg["From"]),
        "to": [a for _, a in getaddresses(msg.get_all("To", []))],
        "subject": str(msg["Subject"]),
        "date": str(msg["Date"]),
        "headers": {k: str(v) for k, v in msg.items()},
        "text": body.get_content() if isinstance(body, EmailMessage) else None,
        "attachments": attachments,
        "size": len(raw),
        "authenticated": getattr(session, "authenticated", False),
        "tls": session.ssl is not None,
        "received_at": dt.datetime.now(dt.UTC).isoformat(),
    }


class Handler:
    """aiosmtpd's handler: the checks, the faults and the store."""

    def __init__(self, state: MailState) -> None:
        self.state = state

    async def _fault(self, stage: str) -> str | None:
        fault = self.state.fault(stage)
        if fault is None:
            return None
        if fault.hang is not None:
            await asyncio.sleep(fault.hang)
        return f"{fault.code} {_TEXTS.get(fault.code, 'sandbox fault')}"

    def _needs_auth(self, session: Session) -> bool:
        return self.state.credentials is not None and not session.authenticated

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self._needs_auth(session):
            return "530 5.7.0 Authentication required"
        if not _valid(address):
            self.state.refused += 1
            return f"553 5.1.7 The sender address {address[:80]!r} is not valid"
        answer = await self._fault("mail")
        if answer:
            return answer
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not _valid(address):
            self.state.refused += 1
            return f"553 5.1.3 The recipient address {address[:80]!r} is not valid"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS})"
        if address.casefold().endswith(".invalid"):
            self.state.refused += 1
            return f"550 5.1.1 No such mailbox: {address[:80]}"
        answer = await self._fault("rcpt")
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > MAX_SIZE:
            return f"552 5.3.4 Message too big (at most {MAX_SIZE} octets)"
        eight_bit = any(o.upper() == "BODY=8BITMIME" for o in envelope.mail_options)
        problems = _problems(raw, envelope.mail_from or "", eight_bit)
        if problems:
            self.state.refused += 1
            return "554 5.6.0 " + "; ".join(problems)[:400]
        answer = await self._fault("data")
        if answer:
            return answer
        state = self.state
        seen = {m["message_id"] for m in state.messages}
        stored = _stored(raw, envelope, session, seen, len(state.messages) + 1)
        state.messages.append(stored)
        lost = state.fault("after_data")
        if lost is not None:
            await asyncio.sleep(lost.hang if lost.hang is not None else 30.0)
        return f"250 2.0.0 OK queued as {stored['id']}"


def _authenticator(state: MailState) -> Any:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if state.credentials is None or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = state.credentials
        ok = data.login == user.encode() and data.password == password.encode()
        return AuthResult(success=ok, handled=False)

    return check


def _self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sportello SMTP sandbox")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([alt, x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _tls_context(state: MailState) -> ssl.SSLContext:
    cert, key = _self_signed(state.host)
    state.certificate_pem = cert
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "cert.pem").write_bytes(cert)
        (Path(tmp) / "key.pem").write_bytes(key)
        context.load_cert_chain(Path(tmp) / "cert.pem", Path(tmp) / "key.pem")
    return context


async def _smtp_server(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE]
    handler = Handler(state)
    tls = _tls_context(state)
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            handler,
            hostname="smtp.sandbox.sportello",
            data_size_limit=MAX_SIZE,
            tls_context=tls,
            authenticator=_authenticator(state),
            auth_require_tls=False,  # a twin on localhost; the hub's settings choose STARTTLS
            auth_required=False,  # checked at MAIL (530) to name the rule
        )

    server = await loop.create_server(protocol, state.host, state.port)
    state.bound_port = server.sockets[0].getsockname()[1]
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


# --- the inspection routes ---------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _bad(detail: str) -> web.Response:
    return web.json_response(
        {"type": "about:blank", "title": "Bad Request", "status": 400, "detail": detail},
        status=400,
        content_type="application/problem+json",
    )


async def list_messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    items = state.messages
    to = request.query.get("to")
    if to is not None:
        items = [m for m in items if to.casefold() in (r.casefold() for r in m["recipients"])]
    mid = request.query.get("message_id")
    if mid is not None:
        items = [m for m in items if m["message_id"] == mid]
    return _json(
        {
            "items": items,
            "count": len(items),
            "duplicates": state.duplicates,
            "refused": state.refused,
        }
    )


async def clear_messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    state.messages.clear()
    state.refused = 0
    return _json({"items": [], "count": 0})


async def add_fault(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _bad("expected a JSON object")
    if not isinstance(body, dict):
        return _bad("expected a JSON object")
    stage, code = body.get("stage"), body.get("code", 451)
    count, hang = body.get("count", 1), body.get("hang")
    if stage not in STAGES:
        return _bad(f"stage: one of {', '.join(STAGES)}")
    if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
        return _bad("code: an SMTP error code (4xx or 5xx)")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return _bad("count: a positive integer")
    if hang is not None and (
        not isinstance(hang, int | float) or isinstance(hang, bool) or not 0 <= hang <= 600
    ):
        return _bad("hang: seconds from 0 to 600")
    state = request.app[STATE]
    state.faults.append(Fault(stage, code, count, float(hang) if hang is not None else None))
    return _json({"faults": [f.as_dict() for f in state.faults]}, 201)


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": [f.as_dict() for f in request.app[STATE].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return _json({"faults": []})


async def smtp_info(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _json(
        {
            "host": state.host,
            "port": state.bound_port,
            "starttls": True,
            "auth": state.credentials is not None,
        }
    )


async def certificate(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[STATE].certificate_pem, content_type="application/x-pem-file"
    )


def create_app(
    *,
    smtp_host: str = "127.0.0.1",
    smtp_port: int = 0,
    credentials: tuple[str, str] | None = (DEMO_USER, DEMO_PASSWORD),
) -> web.Application:
    """The inspection app; the SMTP server starts and stops with it (``smtp_port`` 0: any
    free port, read back at ``GET /__sandbox/smtp``)."""
    app = platform_app("email", "SMTP submission server (e-mail)")
    app[STATE] = MailState(smtp_host, smtp_port, credentials)
    app.cleanup_ctx.append(_smtp_server)
    router = app.router
    router.add_get("/__sandbox/messages", list_messages)
    router.add_delete("/__sandbox/messages", clear_messages)
    router.add_get("/__sandbox/faults", list_faults)
    router.add_post("/__sandbox/faults", add_fault)
    router.add_delete("/__sandbox/faults", clear_faults)
    router.add_get("/__sandbox/smtp", smtp_info)
    router.add_get("/__sandbox/tls-certificate", certificate)
    return app
