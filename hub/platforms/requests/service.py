"""The request engine: drafts, validation step by step, submission with a protocol number,
intake date and deadline, milestones, the certificate and its stamp duty, the residence
declaration sent to the registry, and the ratings.

Everything a citizen reaches is found by (tenant, request ref, fiscal code): another
tenant's request, or another citizen's, is "not found". Refusals are :class:`RequestError`
with the HTTP status and the field at fault; nothing is half-written (each change is one
transaction).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from sportello import audit
from sportello.adapters.protocol.base import KIND as PROTOCOL_KIND
from sportello.adapters.protocol.base import ProtocolUnavailable
from sportello.adapters.registry.base import Mover, RegistryRefused, ResidenceDeclaration
from sportello.hookspecs import NoticeRefused, NoticeRequest
from sportello.outbox.store import NewJob, enqueue_many
from sportello.services import HubServices
from sportello.tenant_adapters import AdapterNotInstalled

from .cards import STAMPED, use_label
from .settings import CardField, RequestsTenantSettings, ServiceCard
from .tables import (
    requests_documents,
    requests_milestones,
    requests_protocol,
    requests_ratings,
    requests_requests,
)

ROME = ZoneInfo("Europe/Rome")
RESIDENCE_KIND = "requests.residence"
REF = re.compile(r"^[A-Z2-7]{10}$")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_PHONE = re.compile(r"^\+?[0-9 ]{6,20}$")
_CF = re.compile(r"^[A-Z0-9]{16}$")
#: milestone statuses the back office sets, and which it may follow
STATUSES = {
    "draft": "Bozza",
    "submitted": "Ricevuta",
    "in_progress": "In lavorazione",
    "completed": "Conclusa",
    "rejected": "Respinta",
}
NEXT = {
    "submitted": {"in_progress", "completed", "rejected"},
    "in_progress": {"in_progress", "completed", "rejected"},
}


class RequestError(Exception):
    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


class NotFound(RequestError):
    def __init__(self) -> None:
        super().__init__(404, "no such request")


def new_ref() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(10))


def normalize_ref(raw: str) -> str:
    ref = raw.strip().upper()
    if not REF.match(ref):
        raise NotFound()
    return ref


def local_day(moment: datetime) -> date:
    return moment.astimezone(ROME).date()


# --- fields -----------------------------------------------------------------------------------


def parse_people(text: str) -> list[Mover]:
    """The "people" field: one person a line, ``full name; fiscal code; relationship``."""
    out = []
    for n, line in enumerate((x.strip() for x in text.splitlines()), start=1):
        if not line:
            continue
        parts = [p.strip() for p in line.split(";")]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"riga {n}: scrivi nome e cognome; codice fiscale; rapporto")
        cf = parts[1].upper()
        if not _CF.match(cf):
            raise ValueError(f"riga {n}: il codice fiscale {parts[1][:20]!r} non è valido")
        if len(parts[0]) > 200 or len(parts[2]) > 60:
            raise ValueError(f"riga {n}: nome o rapporto troppo lunghi")
        out.append(Mover(fiscal_code=cf, full_name=parts[0], relationship=parts[2]))
    if len(out) > 20:
        raise ValueError("al massimo 20 persone")
    return out


def check_field(f: CardField, raw: object) -> tuple[str, str | None]:
    """The field's value from a form (stripped) and the error to show, if any."""
    value = raw.strip() if isinstance(raw, str) else ""
    if f.kind != "textarea" and f.kind != "people":
        value = " ".join(value.split())
    if not value:
        return "", ("Questo campo è obbligatorio." if f.required else None)
    if len(value) > f.max_length:
        return value[: f.max_length], f"Al massimo {f.max_length} caratteri."
    if f.kind == "choice" and value not in {v for v, _ in f.choices}:
        return "", "Scegli una delle opzioni."
    if f.kind == "date":
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return value, "Scrivi la data come AAAA-MM-GG, ad esempio 2027-03-01."
        if not 1900 <= day.year <= 2999:
            return value, "La data non è plausibile."
    if f.kind == "email" and not _EMAIL.match(value):
        return value, "Scrivi un indirizzo e-mail valido, ad esempio nome@esempio.it."
    if f.kind == "tel" and not _PHONE.match(value):
        return value, "Scrivi un numero di telefono di sole cifre, ad esempio +39 333 1234567."
    if f.kind == "people":
        try:
            parse_people(value)
        except ValueError as exc:
            return value, str(exc)
    return value, None


def check_step(
    card: ServiceCard, index: int, form: Mapping[str, object], fixed: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The values and errors of step ``index``; fixed fields take the login's value."""
    values, errors = {}, {}
    for f in card.steps[index].fields:
        raw = fixed[f.name] if f.fixed and f.name in fixed else form.get(f.name)
        values[f.name], error = check_field(f, raw)
        if error:
            errors[f.name] = error
    return values, errors


def check_all(
    card: ServiceCard, data: Mapping[str, str], fixed: Mapping[str, str]
) -> tuple[int, dict[str, str]] | None:
    """The first step with an error and its errors, or None when the whole form is good
    (with the card's own rules: where the residence comes from, whether a bollo is paid)."""
    for index in range(len(card.steps)):
        _, errors = check_step(card, index, data, fixed)
        if errors:
            return index, errors
    if card.handler == "residence":
        if data.get("origin") in ("other_comune", "abroad") and not data.get("previous_comune"):
            where = _step_of(card, "previous_comune")
            return where, {"previous_comune": "Indica il comune o lo Stato di provenienza."}
    return None


def _step_of(card: ServiceCard, name: str) -> int:
    return next(i for i, s in enumerate(card.steps) if any(f.name == name for f in s.fields))


async def prefill(
    services: HubServices,
    tenant_id: str,
    card: ServiceCard,
    fiscal_code: str,
    identity: Mapping[str, Any],
    now: datetime,
) -> dict[str, str]:
    """The card's values the login and the registry know (C.SE.1.5): the registry read is
    audited (``requests.prefill.read``); a registry that fails leaves its fields empty."""
    out: dict[str, str] = {}
    wanted = [f for s in card.steps for f in s.fields if f.prefill]
    ident = {**{k: str(v) for k, v in identity.items() if v}, "fiscal_code": fiscal_code}
    for f in wanted:
        source, _, key = str(f.prefill).partition(".")
        if source == "identity" and ident.get(key):
            out[f.name] = ident[key]
    registry_fields = [f for f in wanted if str(f.prefill).startswith("registry.")]
    if not registry_fields:
        return out
    try:
        adapter = services.adapters.get(tenant_id, "registry")
        record = await adapter.lookup(fiscal_code) if adapter is not None else None
    except Exception:  # the registry is down: the citizen types the data
        return out
    if adapter is None:
        return out
    async with services.engine.begin() as conn:
        await audit.record(
            conn,
            audit.AuditEntry(
                tenant_id=tenant_id,
                actor=f"citizen:{fiscal_code}",
                action="requests.prefill.read",
                subject=fiscal_code,
                purpose=f"prefill of the citizen's own request ({card.id})",
                sources="registry",
                outcome="ok" if record is not None else "not_found",
            ),
            at=now,
        )
    if record is None:
        return out
    for f in registry_fields:
        value = getattr(record, f.prefill.split(".", 1)[1], None)  # type: ignore[union-attr]
        if value is not None and f.name not in out:
            out[f.name] = value.isoformat() if isinstance(value, date) else str(value)
    return out


# --- drafts -----------------------------------------------------------------------------------


async def create_draft(
    conn: AsyncConnection,
    tenant_id: str,
    card: ServiceCard,
    fiscal_code: str,
    data: Mapping[str, str],
    now: datetime,
) -> str:
    ref = new_ref()
    await conn.execute(
        sa.insert(requests_requests).values(
            tenant_id=tenant_id,
            ref=ref,
            service=card.id,
            fiscal_code=fiscal_code,
            status="draft",
            data=json.dumps(dict(data), sort_keys=True),
            step=0,
            created_at=now,
            updated_at=now,
        )
    )
    return ref


async def find(
    conn: AsyncConnection, tenant_id: str, raw_ref: str, fiscal_code: str | None = None
) -> Row[Any]:
    """The tenant's request (the citizen's own when ``fiscal_code`` is given), or
    :class:`NotFound`."""
    q = sa.select(requests_requests).where(
        requests_requests.c.tenant_id == tenant_id,
        requests_requests.c.ref == normalize_ref(raw_ref),
    )
    if fiscal_code is not None:
        q = q.where(requests_requests.c.fiscal_code == fiscal_code)
    row = (await conn.execute(q)).first()
    if row is None:
        raise NotFound()
    return row


def data_of(row: Row[Any]) -> dict[str, str]:
    value = json.loads(row.data)
    return value if isinstance(value, dict) else {}


async def save_draft(
    conn: AsyncConnection, row: Row[Any], values: Mapping[str, str], step: int, now: datetime
) -> None:
    """Merge ``values`` into a draft (and remember the furthest step); a request already
    submitted is not changed (409)."""
    merged = {**data_of(row), **values}
    done = await conn.execute(
        sa.update(requests_requests)
        .where(requests_requests.c.id == row.id, requests_requests.c.status == "draft")
        .values(
            data=json.dumps(merged, sort_keys=True),
            step=max(step, row.step),
            updated_at=now,
        )
    )
    if done.rowcount != 1:
        raise RequestError(409, "the request was already submitted")


async def drafts_of(
    conn: AsyncConnection, tenant_id: str, fiscal_code: str, service: str
) -> list[Row[Any]]:
    return list(
        (
            await conn.execute(
                sa.select(requests_requests)
                .where(
                    requests_requests.c.tenant_id == tenant_id,
                    requests_requests.c.fiscal_code == fiscal_code,
                    requests_requests.c.service == service,
                    requests_requests.c.status == "draft",
                )
                .order_by(requests_requests.c.updated_at.desc())
                .limit(5)
            )
        ).all()
    )


# --- protocol ---------------------------------------------------------------------------------


def _adapter(services: HubServices, tenant_id: str, kind: str) -> Any:
    """The tenant's ``kind`` adapter (None: none configured); one that is not installed or
    cannot be built is a 503 naming it, never a 500."""
    try:
        return services.adapters.get(tenant_id, kind)
    except (AdapterNotInstalled, ValueError, TypeError) as exc:
        raise RequestError(503, f"[tenants.adapters.{kind}]: {str(exc)[:200]}") from None


async def hub_protocol_number(conn: AsyncConnection, tenant_id: str, year: int) -> str:
    """The next number of the hub's own protocol register for the tenant and year, as
    ``YYYY/NNNNNNN``: one atomic upsert, so concurrent requests never share a number."""
    t = requests_protocol
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(t)
    stmt = (
        insert.values(tenant_id=tenant_id, year=year, last=1)
        .on_conflict_do_update(
            index_elements=[t.c.tenant_id, t.c.year], set_={"last": t.c.last + 1}
        )
        .returning(t.c.last)
    )
    last = (await conn.execute(stmt)).scalar_one()
    return f"{year}/{int(last):07d}"


# --- submission -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Submitted:
    ref: str
    protocol_number: str
    submitted_at: datetime
    deadline: date
    notice_number: str | None


async def _milestone(
    conn: AsyncConnection,
    request_id: int,
    status: str,
    label: str,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> None:
    await conn.execute(
        sa.insert(requests_milestones).values(
            request_id=request_id, status=status, label=label, note=note, actor=actor, at=now
        )
    )


async def submit(
    services: HubServices,
    tenant_id: str,
    settings: RequestsTenantSettings,
    card: ServiceCard,
    raw_ref: str,
    fiscal_code: str,
    full_name: str,
    now: datetime,
) -> Submitted:
    """Submit the citizen's draft: the whole form checked again, a protocol number (the
    tenant's protocol adapter, or the hub's numbering), the intake date and the deadline
    from the card, the first milestone, the acknowledgement on App IO, and by service: the
    stamp duty's pagoPA notice (certificate in bollo) or the declaration queued for the
    registry (residence). One transaction: a failure leaves the draft as it was."""
    engine = services.engine
    async with engine.connect() as conn:
        row = await find(conn, tenant_id, raw_ref, fiscal_code)
    if row.status != "draft":
        raise RequestError(409, "the request was already submitted")
    data = data_of(row)
    wrong = check_all(card, data, {"fiscal_code": fiscal_code})
    if wrong is not None:
        index, errors = wrong
        raise RequestError(422, f"step {index + 1}: " + "; ".join(errors), next(iter(errors)))
    stamped = card.handler == "certificate" and data.get("use") == STAMPED
    if stamped and settings.stamp_duty is None:
        raise RequestError(
            422,
            "the comune does not collect the stamp duty online: choose an exemption or ask "
            "at the office",
            "use",
        )
    adapter = _adapter(services, tenant_id, PROTOCOL_KIND)
    external = None
    if adapter is not None:
        try:
            external = await adapter.register(
                reference=row.ref,
                subject=card.title,
                sender_fiscal_code=fiscal_code,
                office=card.office,
                at=now,
            )
        except ProtocolUnavailable as exc:
            raise RequestError(503, f"the protocol register is unavailable: {exc}") from None
    submitted_at = external.registered_at if external is not None else now
    deadline = local_day(submitted_at) + timedelta(days=card.deadline_days)
    plugins = services.plugins or services.adapters.plugins
    async with engine.begin() as conn:
        number = (
            external.number
            if external is not None
            else await hub_protocol_number(conn, tenant_id, local_day(submitted_at).year)
        )
        notice_number = None
        stamp = None
        if card.handler == "certificate":
            stamp = "due" if stamped else "exempt"
        if stamped:
            duty = settings.stamp_duty
            assert duty is not None
            try:
                created = await plugins.create_notice(
                    conn,
                    services,
                    tenant_id,
                    NoticeRequest(
                        reference=f"REQ-{row.ref}",
                        debtor=fiscal_code,
                        debtor_type="F",
                        full_name=full_name[:70] or fiscal_code,
                        amount=duty.amount,
                        due=datetime.combine(
                            local_day(now) + timedelta(days=duty.days_to_pay),
                            time(23, 59, 59),
                            ROME,
                        ),
                        description=f"Imposta di bollo - {card.title} {number}"[:140],
                        iban=duty.iban,
                        category=duty.category,
                    ),
                    f"citizen:{fiscal_code}",
                )
            except NoticeRefused as exc:
                raise RequestError(503, f"pagoPA: {exc.detail}") from None
            notice_number = created.notice_number
        done = await conn.execute(
            sa.update(requests_requests)
            .where(requests_requests.c.id == row.id, requests_requests.c.status == "draft")
            .values(
                status="submitted",
                protocol_number=number,
                submitted_at=submitted_at,
                deadline=deadline.isoformat(),
                stamp=stamp,
                notice_number=notice_number,
                step=len(card.steps),
                updated_at=now,
            )
        )
        if done.rowcount != 1:
            raise RequestError(409, "the request was already submitted")
        label = f"Richiesta ricevuta, protocollo n. {number}"
        await _milestone(conn, row.id, "submitted", label, f"citizen:{fiscal_code}", now)
        if card.handler == "residence":
            await enqueue_many(
                conn,
                [
                    NewJob(
                        tenant_id,
                        RESIDENCE_KIND,
                        {"ref": row.ref},
                        idempotency_key=f"requests-residence-{row.ref}",
                        lock=f"requests:{row.ref}",
                    )
                ],
                now=now,
                default_max_attempts=services.config.outbox.max_attempts,
            )
        io_service = _io_service(services, tenant_id, settings)
        if io_service and plugins.queues_messages():
            await _acknowledge_on_io(
                conn,
                plugins,
                tenant_id,
                io_service,
                card,
                fiscal_code,
                number,
                submitted_at,
                deadline,
                now,
            )
    return Submitted(row.ref, number, submitted_at, deadline, notice_number)


def _io_service(
    services: HubServices, tenant_id: str, settings: RequestsTenantSettings
) -> str | None:
    """The App IO service of the acknowledgement: ``io_service``, else the tenant's first
    App IO service (None: the tenant has no App IO)."""
    if settings.io_service:
        return settings.io_service
    tenant = services.config.tenant(tenant_id)
    found = getattr(getattr(tenant, "io", None), "services", None) or []
    return str(found[0].id) if found else None


async def _acknowledge_on_io(
    conn: AsyncConnection,
    plugins: Any,
    tenant_id: str,
    io_service: str,
    card: ServiceCard,
    fiscal_code: str,
    number: str,
    submitted_at: datetime,
    deadline: date,
    now: datetime,
) -> None:
    from sportello.connectors.io.models import MessageContent, NewMessage

    when = submitted_at.astimezone(ROME)
    markdown = (
        f"Abbiamo ricevuto la tua richiesta **{card.title}** il {when:%d/%m/%Y} alle "
        f"{when:%H:%M}.\n\nNumero di protocollo: **{number}**.\n\nUfficio: {card.office}. "
        f"Termine per la conclusione: {deadline:%d/%m/%Y}.\n\nSegui lo stato della richiesta "
        "nella tua area personale dello sportello online del comune."
    )
    await plugins.queue_message(
        conn,
        tenant_id=tenant_id,
        service_id=io_service,
        message=NewMessage(
            fiscal_code=fiscal_code,
            content=MessageContent(
                subject=f"Richiesta ricevuta: {card.title}"[:120], markdown=markdown
            ),
        ),
        now=now,
    )


# --- milestones (the back office) -------------------------------------------------------------


async def add_milestone(
    conn: AsyncConnection,
    tenant_id: str,
    raw_ref: str,
    status: str,
    label: str,
    note: str | None,
    actor: str,
    now: datetime,
) -> Row[Any]:
    row = await find(conn, tenant_id, raw_ref)
    allowed = NEXT.get(row.status, set())
    if status not in allowed:
        raise RequestError(
            409,
            f"a request {row.status} cannot become {status} (allowed: "
            f"{', '.join(sorted(allowed)) or 'none'})",
            "status",
        )
    done = await conn.execute(
        sa.update(requests_requests)
        .where(requests_requests.c.id == row.id, requests_requests.c.status == row.status)
        .values(status=status, updated_at=now)
    )
    if done.rowcount != 1:
        raise RequestError(409, "the request changed meanwhile: read it and try again")
    await _milestone(conn, row.id, status, label, actor, now, note)
    await audit.record(
        conn,
        audit.AuditEntry(
            tenant_id=tenant_id,
            actor=actor,
            action="requests.milestone",
            subject=row.fiscal_code,
            purpose="back office: a milestone of the citizen's request",
            sources="requests",
            outcome=status,
            detail=f"request {row.ref}",
        ),
        at=now,
    )
    return await find(conn, tenant_id, raw_ref)


async def milestones_of(conn: AsyncConnection, request_id: int) -> list[Row[Any]]:
    return list(
        (
            await conn.execute(
                sa.select(requests_milestones)
                .where(requests_milestones.c.request_id == request_id)
                .order_by(requests_milestones.c.id)
            )
        ).all()
    )


def view(row: Row[Any], steps: list[Row[Any]], *, with_data: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ref": row.ref,
        "service": row.service,
        "status": row.status,
        "protocol_number": row.protocol_number,
        "submitted_at": row.submitted_at.isoformat() if row.submitted_at else None,
        "deadline": row.deadline,
        "stamp": row.stamp,
        "notice_number": row.notice_number,
        "practice_ref": row.practice_ref,
        "fiscal_code": row.fiscal_code,
        "milestones": [
            {
                "status": m.status,
                "label": m.label,
                "note": m.note,
                "at": m.at.isoformat(),
            }
            for m in steps
        ],
    }
    if with_data:
        out["data"] = data_of(row)
    return out


# --- stamp duty and certificate ---------------------------------------------------------------


async def notice_paid(
    conn: AsyncConnection, tenant_id: str, notice_number: str, now: datetime
) -> None:
    """A stamp duty's notice was paid (``hub_notice_paid``, in the receipt's transaction)."""
    rows = (
        await conn.execute(
            sa.select(requests_requests.c.id).where(
                requests_requests.c.tenant_id == tenant_id,
                requests_requests.c.notice_number == notice_number,
                requests_requests.c.stamp == "due",
            )
        )
    ).all()
    for r in rows:
        await conn.execute(
            sa.update(requests_requests)
            .where(requests_requests.c.id == r.id)
            .values(stamp="paid", updated_at=now)
        )
        await _milestone(conn, r.id, "submitted", "Imposta di bollo pagata", "pagopa", now)


async def certificate(
    services: HubServices, tenant_id: str, raw_ref: str, fiscal_code: str, now: datetime
) -> bytes:
    """The certificate of the citizen's request: the stored one, or issued now by the
    registry adapter once the stamp duty is paid or exempt (then stored, the request
    completed, the read audited)."""
    async with services.engine.connect() as conn:
        row = await find(conn, tenant_id, raw_ref, fiscal_code)
        stored = (
            await conn.execute(
                sa.select(requests_documents.c.body).where(
                    requests_documents.c.request_id == row.id
                )
            )
        ).scalar()
    if row.service != "certificato" or row.status == "draft":
        raise NotFound()
    if stored is not None:
        return bytes(stored)
    if row.stamp not in ("paid", "exempt"):
        raise RequestError(409, "the stamp duty is not paid yet")
    adapter = _adapter(services, tenant_id, "registry")
    issue = getattr(adapter, "issue_certificate", None)
    if issue is None:
        raise RequestError(503, "the comune's registry does not issue certificates online")
    kind = data_of(row).get("kind", "")
    outcome = "ok"
    try:
        pdf = bytes(await issue(fiscal_code, kind))
    except RegistryRefused as exc:
        outcome = "refused"
        raise RequestError(422, f"the registry refused: {exc}") from None
    except Exception as exc:
        outcome = "failed"
        raise RequestError(503, f"registry: {type(exc).__name__}") from None
    finally:
        async with services.engine.begin() as conn:
            await audit.record(
                conn,
                audit.AuditEntry(
                    tenant_id=tenant_id,
                    actor=f"citizen:{fiscal_code}",
                    action="requests.certificate.issue",
                    subject=fiscal_code,
                    purpose=f"the citizen's own certificate ({kind})",
                    sources="registry",
                    outcome=outcome,
                    detail=f"request {row.ref}",
                ),
                at=now,
            )
    async with services.engine.begin() as conn:
        found = (
            await conn.execute(
                sa.select(requests_documents.c.body).where(
                    requests_documents.c.request_id == row.id
                )
            )
        ).scalar()
        if found is not None:  # issued meanwhile by a parallel download: keep the first
            return bytes(found)
        await conn.execute(
            sa.insert(requests_documents).values(
                request_id=row.id, content_type="application/pdf", body=pdf, created_at=now
            )
        )
        await conn.execute(
            sa.update(requests_requests)
            .where(requests_requests.c.id == row.id)
            .values(status="completed", updated_at=now)
        )
        await _milestone(conn, row.id, "completed", "Certificato rilasciato", "registry", now)
    return pdf


def declaration(row: Row[Any]) -> ResidenceDeclaration:
    data = data_of(row)
    return ResidenceDeclaration(
        reference=row.ref,
        protocol_number=row.protocol_number or "",
        declarant=row.fiscal_code,
        given_name=data.get("given_name", ""),
        family_name=data.get("family_name", ""),
        birth_date=date.fromisoformat(data["birth_date"]) if data.get("birth_date") else None,
        birth_place=data.get("birth_place") or None,
        email=data.get("email") or None,
        phone=data.get("phone") or None,
        origin=data.get("origin", ""),
        previous_comune=data.get("previous_comune") or None,
        street=data.get("street", ""),
        number=data.get("number", ""),
        staircase=data.get("staircase") or None,
        floor=data.get("floor") or None,
        apartment=data.get("apartment") or None,
        moved_on=date.fromisoformat(data["moved_on"]),
        occupancy=data.get("occupancy", ""),
        occupancy_detail=data.get("occupancy_detail") or None,
        movers=parse_people(data.get("movers", "")),
    )


# --- ratings ----------------------------------------------------------------------------------

EASE_QUESTION = "Quanto è stato facile usare questo servizio?"
POSITIVE_QUESTION = "Quali sono stati gli aspetti che hai preferito?"
NEGATIVE_QUESTION = "Dove hai incontrato le maggiori difficoltà?"
#: the follow-up options of Designers Italia's rating component (Modello Comuni)
POSITIVE = {
    "chiare": "Le indicazioni erano chiare",
    "complete": "Le indicazioni erano complete",
    "procedura": "Capivo sempre che stavo procedendo correttamente",
    "tecnica": "Non ho avuto problemi tecnici",
    "altro": "Altro",
}
NEGATIVE = {
    "non_chiare": "A volte le indicazioni non erano chiare",
    "non_complete": "A volte le indicazioni non erano complete",
    "procedura": "A volte non capivo se stavo procedendo correttamente",
    "tecnica": "Ho avuto problemi tecnici",
    "altro": "Altro",
}
COMMENT_MAX = 200


def follow_ups(score: int) -> tuple[str, dict[str, str]]:
    return (POSITIVE_QUESTION, POSITIVE) if score >= 4 else (NEGATIVE_QUESTION, NEGATIVE)


async def rate(
    conn: AsyncConnection,
    tenant_id: str,
    service: str,
    score: int,
    follow_up: str | None,
    comment: str | None,
    now: datetime,
) -> None:
    if not 1 <= score <= 5:
        raise RequestError(422, "score: from 1 to 5", "score")
    _, options = follow_ups(score)
    if follow_up is not None and follow_up not in options:
        raise RequestError(422, "follow_up: not an option for this score", "follow_up")
    if comment is not None and len(comment) > COMMENT_MAX:
        raise RequestError(422, f"comment: at most {COMMENT_MAX} characters", "comment")
    await conn.execute(
        sa.insert(requests_ratings).values(
            tenant_id=tenant_id,
            service=service,
            score=score,
            follow_up=follow_up,
            comment=comment or None,
            created_at=now,
        )
    )


async def ratings(
    conn: AsyncConnection,
    tenant_id: str,
    service: str | None,
    start: datetime | None,
    end: datetime | None,
    limit: int = 10000,
) -> list[dict[str, Any]]:
    t = requests_ratings
    q = sa.select(t).where(t.c.tenant_id == tenant_id)
    if service:
        q = q.where(t.c.service == service)
    if start is not None:
        q = q.where(t.c.created_at >= start)
    if end is not None:
        q = q.where(t.c.created_at < end)
    rows = (await conn.execute(q.order_by(t.c.created_at, t.c.id).limit(limit))).all()
    out = []
    for r in rows:
        _, options = follow_ups(r.score)
        out.append(
            {
                "service": r.service,
                "score": r.score,
                "follow_up": r.follow_up,
                "follow_up_label": options.get(r.follow_up or "", None),
                "comment": r.comment,
                "created_at": r.created_at.astimezone(UTC).isoformat(),
            }
        )
    return out


def csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP "CSV injection"):
    free text starting with ``= + - @`` or a control character gets a leading quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


__all__ = ["RequestError", "csv_cell", "submit", "use_label"]
