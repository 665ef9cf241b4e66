"""App IO messages and campaigns, on top of the durable outbox.

A campaign is a CSV (fiscal code, expedition date, due date, notice number, amount, then any
template fields) and a template (subject and markdown, Jinja2, strict about missing fields).
Every row is rendered and validated with App IO's own rules before anything is written; one
bad row means nothing is written, and every bad row is reported with file, row and field.
A valid campaign is written in one transaction: the campaign, one message row per CSV row,
and one outbox job per message, due at its expedition date.

App IO has no idempotency key. So a message is marked ``sending`` (committed) before the call;
if the worker dies during the call, the retry finds ``sending`` and marks the message
``unknown`` instead of sending it again. ``resend_unknown`` sends those on purpose.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello.connectors.io.models import MessageContent, NewMessage, describe_validation_error
from sportello.hookspecs import KnownNotice
from sportello.outbox.store import NewJob, enqueue_many
from sportello.platforms.io.tables import io_campaigns, io_messages

if TYPE_CHECKING:
    from sportello.services import HubServices

ROME = ZoneInfo("Europe/Rome")
FIXED_COLUMNS = ("fiscal_code", "expedition_date", "due_date", "notice_number", "amount")
SEND_KIND = "io.message"  # one message per outbox job (single messages)
SEND_BATCH_KIND = "io.messages"  # a chunk of a campaign's messages per outbox job
#: Messages per ``io.messages`` job: the outbox's claim, outcome and ledger row are paid
#: once per chunk; small enough that several workers share a campaign.
CHUNK_SIZE = 25
STATUS_KIND = "io.status"

QUEUED, SENDING, SENT = "queued", "sending", "sent"
PROCESSED, REJECTED = "processed", "rejected"
NOT_ON_IO, SENDER_NOT_ALLOWED, FAILED, UNKNOWN = (
    "not_on_io",
    "sender_not_allowed",
    "failed",
    "unknown",
)
FINAL = (SENT, PROCESSED, REJECTED, NOT_ON_IO, SENDER_NOT_ALLOWED, FAILED, UNKNOWN)
REPORT_STATUSES = (
    QUEUED,
    SENDING,
    SENT,
    PROCESSED,
    REJECTED,
    NOT_ON_IO,
    SENDER_NOT_ALLOWED,
    FAILED,
    UNKNOWN,
)


class CampaignInvalid(Exception):
    """Rows that cannot be sent; nothing was written."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__("\n".join(problems[:20]) + more)


@dataclass
class Template:
    subject: str
    markdown: str
    feature_level_type: str = "STANDARD"
    invalid_after_due_date: bool = False


@dataclass
class PreparedMessage:
    row_number: int
    fiscal_code: str
    expedition_at: datetime
    message: NewMessage


@dataclass
class Prepared:
    messages: list[PreparedMessage] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: first row of each notice number, and of each (fiscal code, subject, text): a later
    #: row with the same is a duplicate (the same debt or message twice to one person)
    seen: dict[tuple[str, ...], int] = field(default_factory=dict, repr=False)


def _env() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def _parse_when(value: str, *, end_of_day: bool) -> datetime:
    value = value.strip()
    if "T" in value or " " in value:
        parsed = datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=ROME)).astimezone(UTC)
    day = date.fromisoformat(value)
    at = time(23, 59, 59) if end_of_day else time(8, 0)
    return datetime.combine(day, at, tzinfo=ROME).astimezone(UTC)


def _cents(value: str) -> int:
    text = value.strip().replace("€", "").replace(" ", "")
    if "," in text:
        text = text.replace(".", "").replace(",", ".")
    amount = Decimal(text)
    cents = amount * 100
    if cents != cents.to_integral_value() or amount <= 0:
        raise InvalidOperation
    return int(cents)


def _compile(template: Template, source: str, out: Prepared) -> tuple[Any, Any] | None:
    """The subject and markdown templates, or None with the syntax error in ``out``."""
    env = _env()
    try:
        return env.from_string(template.subject), env.from_string(template.markdown)
    except TemplateError as exc:
        out.problems.append(f"{source}: template: {exc}")
        return None


NoticeLookup = Callable[[str], KnownNotice | None]


async def notice_lookup(services: HubServices, tenant_id: str, navs: Iterable[str]) -> NoticeLookup:
    """A :data:`NoticeLookup` over the debt positions the hub keeps for the tenant (the
    ``hub_known_notices`` hook: the pagoPA platform's; empty without it)."""
    plugins = services.plugins or services.adapters.plugins
    return (await plugins.known_notices(services, tenant_id, navs)).get


def notice_numbers(rows_text: str) -> set[str]:
    """The notice numbers a campaign CSV names (to look them up before :func:`prepare`)."""
    reader = csv.reader(io.StringIO(rows_text.lstrip("\ufeff")), delimiter=_sniff(rows_text))
    next(reader, None)
    index = FIXED_COLUMNS.index("notice_number")
    return {r[index].strip() for r in reader if len(r) > index and r[index].strip()}


def prepare(
    rows_text: str,
    template: Template,
    *,
    source: str,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    notices: NoticeLookup | None = None,
) -> Prepared:
    """Render and validate every row. Never raises for bad rows: they go in ``problems``.

    With ``notices``, a row whose notice number belongs to a position the hub keeps gets its
    payment data by itself: the amount (and the due date, when the row has none) come from
    the position; a row that disagrees with it, names another debtor or a notice that can no
    longer be paid is a problem.
    """
    out = Prepared()
    compiled = _compile(template, source, out)
    if compiled is None:
        return out
    subject_t, markdown_t = compiled
    reader = csv.reader(io.StringIO(rows_text.lstrip("\ufeff")), delimiter=_sniff(rows_text))
    header = next(reader, None)
    if header is None or len(header) < len(FIXED_COLUMNS):
        out.problems.append(
            f"{source}: row 1: header: expected at least the columns {', '.join(FIXED_COLUMNS)}"
        )
        return out
    names = [*FIXED_COLUMNS, *(h.strip() for h in header[len(FIXED_COLUMNS) :])]
    for rowno, raw in enumerate(reader, start=2):
        if progress is not None:
            progress(1)
        if not any(c.strip() for c in raw):
            continue
        where = f"{source}: row {rowno}"
        if len(raw) != len(names):
            out.problems.append(f"{where}: expected {len(names)} columns, found {len(raw)}")
            continue
        row = dict(zip(names, (c.strip() for c in raw), strict=True))
        problems = _prepare_row(
            row, rowno, where, subject_t, markdown_t, template, now, out, notices
        )
        out.problems.extend(problems)
    if not out.messages and not out.problems:
        out.problems.append(f"{source}: no rows to send")
    return out


def prepare_rows(
    rows: Iterable[Mapping[str, Any]],
    template: Template,
    *,
    source: str,
    now: datetime,
    progress: Callable[[int], None] | None = None,
    notices: NoticeLookup | None = None,
) -> Prepared:
    """Like :func:`prepare`, for rows from a campaign source (``hub_campaign_sources``):
    mappings with the five fixed columns (missing ones count as empty) plus template fields.
    Row numbers in messages count from 1."""
    out = Prepared()
    compiled = _compile(template, source, out)
    if compiled is None:
        return out
    subject_t, markdown_t = compiled
    for rowno, raw in enumerate(rows, start=1):
        if progress is not None:
            progress(1)
        row = {str(k): "" if v is None else str(v).strip() for k, v in raw.items()}
        for column in FIXED_COLUMNS:
            row.setdefault(column, "")
        where = f"{source}: row {rowno}"
        out.problems.extend(
            _prepare_row(row, rowno, where, subject_t, markdown_t, template, now, out, notices)
        )
    return out


def _sniff(text: str) -> str:
    first = text.split("\n", 1)[0]
    return ";" if first.count(";") >= first.count(",") else ","


def _prepare_row(
    row: dict[str, str],
    rowno: int,
    where: str,
    subject_t: Any,
    markdown_t: Any,
    template: Template,
    now: datetime,
    out: Prepared,
    notices: NoticeLookup | None = None,
) -> list[str]:
    problems: list[str] = []
    cf = row["fiscal_code"].upper()
    known = notices(row["notice_number"]) if notices and row["notice_number"] else None
    if known is not None:
        if known.debtor.upper() != cf:
            problems.append(f"{where}: notice_number: the position belongs to another debtor")
        if not known.payable:
            problems.append(f"{where}: notice_number: the position is paid, expired or cancelled")
        if not row["amount"]:
            row["amount"] = f"{known.amount // 100},{known.amount % 100:02d}"
        else:
            try:
                if _cents(row["amount"]) != known.amount:
                    problems.append(
                        f"{where}: amount: differs from the position's "
                        f"({known.amount / 100:.2f} euro); leave it empty to use the position's"
                    )
            except InvalidOperation:
                pass  # reported below
        if not row["due_date"] and known.due is not None:
            row["due_date"] = known.due.astimezone(ROME).date().isoformat()
    try:
        expedition = (
            _parse_when(row["expedition_date"], end_of_day=False) if row["expedition_date"] else now
        )
    except ValueError:
        problems.append(f"{where}: expedition_date: expected YYYY-MM-DD or an ISO date-time")
        expedition = now
    due: datetime | None = None
    if row["due_date"]:
        try:
            due = _parse_when(row["due_date"], end_of_day=True)
        except ValueError:
            problems.append(f"{where}: due_date: expected YYYY-MM-DD or an ISO date-time")
    payment: dict[str, Any] | None = None
    if row["notice_number"] or row["amount"]:
        if not (row["notice_number"] and row["amount"]):
            problems.append(f"{where}: notice_number/amount: give both or neither")
        else:
            try:
                payment = {
                    "amount": _cents(row["amount"]),
                    "notice_number": row["notice_number"],
                    "invalid_after_due_date": template.invalid_after_due_date,
                }
            except InvalidOperation:
                problems.append(
                    f"{where}: amount: expected euros like 123,45 (found {row['amount']!r})"
                )
    context = {**row, "fiscal_code": cf, "due": due, "amount_cents": payment and payment["amount"]}
    try:
        subject = subject_t.render(context).strip()
        markdown = markdown_t.render(context).strip()
    except TemplateError as exc:
        problems.append(f"{where}: template: {exc}")
        return problems
    if problems:
        return problems
    try:
        content = MessageContent.model_validate(
            {"subject": subject, "markdown": markdown, "due_date": due, "payment_data": payment}
        )
        message = NewMessage.model_validate(
            {
                "fiscal_code": cf,
                "content": content,
                "feature_level_type": template.feature_level_type,
            }
        )
    except ValidationError as exc:
        return [f"{where}: {describe_validation_error(exc)}"]
    keys: list[tuple[str, ...]] = [("text", cf, subject, markdown)]
    if payment is not None:
        keys.insert(0, ("notice", str(payment["notice_number"])))
    for key in keys:
        first = out.seen.get(key)
        if first is not None:
            if key[0] == "notice":
                return [f"{where}: notice_number: duplicate of row {first} (the same notice)"]
            return [
                f"{where}: fiscal_code: duplicate of row {first} "
                "(the same message to the same person)"
            ]
    for key in keys:
        out.seen[key] = rowno
    out.messages.append(PreparedMessage(rowno, cf, expedition, message))
    return []


async def create_campaign(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    service_id: str,
    name: str,
    template: Template,
    prepared: Prepared,
    source: str,
    created_by: str,
    now: datetime,
    max_attempts: int = 12,
) -> int:
    """Write a validated campaign, its messages and their outbox jobs, in the caller's
    transaction. Refuses (writing nothing) when ``prepared`` has problems."""
    if prepared.problems:
        raise CampaignInvalid(prepared.problems)
    if not prepared.messages:
        raise CampaignInvalid([f"{source}: no rows to send"])
    campaign_id = (
        await conn.execute(
            insert(io_campaigns)
            .values(
                tenant_id=tenant_id,
                service_id=service_id,
                name=name,
                subject_template=template.subject,
                markdown_template=template.markdown,
                source=source,
                rows_total=len(prepared.messages),
                created_by=created_by,
                created_at=now,
            )
            .returning(io_campaigns.c.id)
        )
    ).scalar_one()
    await _insert_messages(
        conn, tenant_id, service_id, int(campaign_id), prepared.messages, now, max_attempts
    )
    return int(campaign_id)


async def _insert_messages(
    conn: AsyncConnection,
    tenant_id: str,
    service_id: str,
    campaign_id: int | None,
    messages: Sequence[PreparedMessage],
    now: datetime,
    max_attempts: int,
) -> list[int]:
    ids: list[int] = []
    for chunk_start in range(0, len(messages), 1000):
        chunk = messages[chunk_start : chunk_start + 1000]
        result = await conn.execute(
            insert(io_messages).returning(io_messages.c.id),
            [
                {
                    "tenant_id": tenant_id,
                    "service_id": service_id,
                    "campaign_id": campaign_id,
                    "row_number": m.row_number,
                    "fiscal_code": m.fiscal_code,
                    "content": json.dumps(m.message.content.to_payload()),
                    "feature_level_type": m.message.feature_level_type.value,
                    "expedition_at": m.expedition_at,
                    "status": QUEUED,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for m in chunk
            ],
        )
        chunk_ids = [int(r[0]) for r in result]
        if campaign_id is None:
            jobs = [
                NewJob(tenant_id, SEND_KIND, {"message_id": mid}, not_before=m.expedition_at)
                for mid, m in zip(chunk_ids, chunk, strict=True)
            ]
        else:
            jobs = _chunk_jobs(
                tenant_id, [(mid, m.expedition_at) for mid, m in zip(chunk_ids, chunk, strict=True)]
            )
        await enqueue_many(conn, jobs, now=now, default_max_attempts=max_attempts)
        ids.extend(chunk_ids)
    return ids


def _chunk_jobs(
    tenant_id: str, due: Sequence[tuple[int, datetime | None]], **extra: Any
) -> list[NewJob]:
    """``io.messages`` jobs of up to ``CHUNK_SIZE`` messages due at the same time."""
    jobs: list[NewJob] = []
    for when, group in groupby(due, key=lambda d: d[1]):
        ids = [mid for mid, _ in group]
        for i in range(0, len(ids), CHUNK_SIZE):
            payload = {"message_ids": ids[i : i + CHUNK_SIZE], **extra}
            jobs.append(NewJob(tenant_id, SEND_BATCH_KIND, payload, not_before=when))
    return jobs


async def enqueue_message(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    service_id: str,
    message: NewMessage,
    now: datetime,
    expedition_at: datetime | None = None,
) -> int:
    """Queue one message (e.g. from another connector) in the caller's transaction."""
    prepared = PreparedMessage(0, message.fiscal_code, expedition_at or now, message)
    [mid] = await _insert_messages(conn, tenant_id, service_id, None, [prepared], now, 12)
    return mid


async def report(
    conn: AsyncConnection, campaign_id: int, tenant_id: str | None = None
) -> dict[str, Any] | None:
    """Counts by status and the status of every row."""
    q = select(io_campaigns).where(io_campaigns.c.id == campaign_id)
    if tenant_id is not None:
        q = q.where(io_campaigns.c.tenant_id == tenant_id)
    campaign = (await conn.execute(q)).first()
    if campaign is None:
        return None
    counts: dict[str, int] = dict(
        (
            await conn.execute(
                select(io_messages.c.status, func.count())
                .where(io_messages.c.campaign_id == campaign_id)
                .group_by(io_messages.c.status)
            )
        ).all()
    )
    rows = await conn.execute(
        select(
            io_messages.c.id,
            io_messages.c.row_number,
            io_messages.c.fiscal_code,
            io_messages.c.status,
            io_messages.c.io_message_id,
            io_messages.c.error,
        )
        .where(io_messages.c.campaign_id == campaign_id)
        .order_by(io_messages.c.row_number)
    )
    return {
        "id": campaign.id,
        "tenant_id": campaign.tenant_id,
        "service_id": campaign.service_id,
        "name": campaign.name,
        "rows_total": campaign.rows_total,
        "created_at": campaign.created_at,
        "counts": {s: int(counts.get(s, 0)) for s in REPORT_STATUSES},
        "messages": [dict(r._mapping) for r in rows],
    }


async def resend_unknown(
    conn: AsyncConnection, *, campaign_id: int, now: datetime, operator: str
) -> int:
    """Send again, on purpose, the messages whose outcome is unknown (they may arrive twice)."""
    ids = list(
        (
            await conn.execute(
                select(io_messages.c.id).where(
                    io_messages.c.campaign_id == campaign_id, io_messages.c.status == UNKNOWN
                )
            )
        ).scalars()
    )
    if not ids:
        return 0
    await conn.execute(
        update(io_messages)
        .where(io_messages.c.id.in_(ids))
        .values(status=QUEUED, error=f"resent on purpose by {operator}", updated_at=now)
    )
    tenant = (
        await conn.execute(select(io_campaigns.c.tenant_id).where(io_campaigns.c.id == campaign_id))
    ).scalar_one()
    await enqueue_many(
        conn,
        _chunk_jobs(tenant, [(i, None) for i in ids], resend=True),
        now=now,
        default_max_attempts=12,
    )
    return len(ids)


def read_csv(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")
