"""The SMTP client (``aiosmtplib``): one connection per message, typed errors.

Not a ``BaseConnector`` (that base is HTTP); it raises the same error tree
(``sportello.connectors.errors``) so the outbox reads ``retryable`` the same way:
transport failures, timeouts and 4xx answers are retryable, 5xx answers are not.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage

import aiosmtplib

from ..errors import (
    AuthError,
    ConnectorError,
    ConnectorTimeout,
    PermanentError,
    ServerError,
    TransportError,
)

PLATFORM = "email"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    starttls: bool = True  # upgrade a plain connection (submission, port 587)
    implicit_tls: bool = False  # TLS from the first byte (port 465)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None  # trust this CA (PEM) instead of the system's
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class SmtpSent:
    """What the server said when it took the message."""

    message_id: str
    recipients: tuple[str, ...]
    reply: str


def _answer(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"[:300]


class SmtpClient:
    """Sends messages through one SMTP server (submission with STARTTLS by default)."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext | None:
        if not (self.settings.starttls or self.settings.implicit_tls):
            return None
        return ssl.create_default_context(cafile=self.settings.ca_file)

    async def send(self, message: EmailMessage, *, envelope_from: str | None = None) -> SmtpSent:
        """Send ``message`` to its To/Cc/Bcc recipients, from ``envelope_from`` (the
        bounce address) or else its From address."""
        s = self.settings
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            timeout=s.timeout,
            use_tls=s.implicit_tls,
            start_tls=True if s.starttls and not s.implicit_tls else False,
            tls_context=self._tls_context(),
            username=s.username,
            password=s.password,
        )
        message_id = str(message.get("Message-ID", ""))
        try:
            async with smtp:
                refused, reply = await smtp.send_message(message, sender=envelope_from)
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AuthError(
                f"SMTP authentication refused: {_answer(exc)}", platform=PLATFORM
            ) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            detail = "; ".join(_answer(r) for r in exc.recipients)
            if all(400 <= c < 500 for c in codes):
                raise ServerError(f"recipient deferred: {detail}", platform=PLATFORM) from None
            raise PermanentError(f"recipient refused: {detail}", platform=PLATFORM) from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code in (530, 534, 535, 538):
                raise AuthError(
                    f"SMTP needs authentication: {_answer(exc)}", platform=PLATFORM
                ) from None
            if 400 <= exc.code < 500:
                raise ServerError(
                    f"SMTP server deferred: {_answer(exc)}", platform=PLATFORM
                ) from None
            raise PermanentError(
                f"SMTP server refused: {_answer(exc)}", platform=PLATFORM
            ) from None
        except aiosmtplib.SMTPTimeoutError:
            raise ConnectorTimeout(
                f"SMTP {s.host}:{s.port} did not answer within {s.timeout:g}s", platform=PLATFORM
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransportError(
                f"SMTP {s.host}:{s.port}: {type(exc).__name__}: {exc}"[:300], platform=PLATFORM
            ) from None
        if refused:
            detail = "; ".join(f"{a}: {code} {text}" for a, (code, text) in refused.items())
            raise PermanentError(f"recipient refused: {detail}"[:300], platform=PLATFORM)
        return SmtpSent(message_id, tuple(_recipients(message)), reply[:300])


def _recipients(message: EmailMessage) -> list[str]:
    from email.utils import getaddresses

    return [a for _, a in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]


__all__ = ["ConnectorError", "SmtpClient", "SmtpSent", "SmtpSettings"]
