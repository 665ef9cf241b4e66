"""E-mail through SMTP (RFC 5321), messages built with the standard library (RFC 5322, MIME).

``SmtpClient`` sends one message per call (``aiosmtplib``), STARTTLS or implicit TLS and
AUTH when configured, and turns SMTP answers into the connectors' typed errors (4xx and
transport failures retryable, 5xx permanent). ``build_message`` makes the message with a
``Message-ID`` derived from an idempotency key (``message_id_for``), so a resend after a
lost answer carries the same id and the receiving side can recognise it.
"""

from __future__ import annotations

from .client import SmtpClient, SmtpSent, SmtpSettings
from .message import Attachment, build_message, message_id_for

__all__ = [
    "Attachment",
    "SmtpClient",
    "SmtpSent",
    "SmtpSettings",
    "build_message",
    "message_id_for",
]
