"""Messages built with the standard library's ``email`` package (RFC 5322 and MIME)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # "text/calendar; method=PUBLISH" or "application/pdf"
    data: bytes


def message_id_for(key: str, domain: str) -> str:
    """A ``Message-ID`` that depends only on ``key`` (the outbox's idempotency key): every
    attempt of one delivery carries the same id, two deliveries never share one."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"<{digest}@{domain}>"


def build_message(
    *,
    sender: str,
    sender_name: str | None,
    to: str,
    subject: str,
    text: str,
    message_id: str,
    date: datetime,
    attachments: tuple[Attachment, ...] = (),
    reply_to: str | None = None,
) -> EmailMessage:
    """A plain-text message (UTF-8) with its attachments. ``date`` must carry its offset.
    Header injection is impossible: the ``email`` policy refuses CR/LF in header values."""
    if date.tzinfo is None:
        raise ValueError("date: give it with its offset")
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((sender_name, sender)) if sender_name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies back, please
    if reply_to:
        msg["Reply-To"] = reply_to
    msg.set_content(text, subtype="plain", charset="utf-8")
    for a in attachments:
        main, _, rest = a.content_type.partition("/")
        sub, *params = [p.strip() for p in rest.split(";")]
        extra = dict(p.split("=", 1) for p in params if "=" in p)
        if main == "text":
            msg.add_attachment(
                a.data.decode(), subtype=sub, filename=a.filename, params=extra or None
            )
        else:
            msg.add_attachment(a.data, maintype=main, subtype=sub, filename=a.filename)
    return msg
