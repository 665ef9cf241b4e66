"""Sandbox twin of INAD's extraction e-service (``inad_api_extraxtion.yaml``) behind PDND.

Routes (under ``BASE_PATH``, as the spec's server URL), each needing a PDND voucher
(checked against the PDND sandbox's JWKS; 401 ``UNAUTHORIZED`` without one, 403
``FORBIDDEN`` when refused):

- ``GET /extract/{codice_fiscale}?practicalReference=``: the domicile now, 404 ``NOT_FOUND``
  when the person has none;
- ``GET /verify/{codice_fiscale}?digital_address=&since=&practicalReference=``: whether the
  address was the person's domicile on that day;
- ``POST /listDigitalAddress`` (1 to 1,000 codes, 202 with ``Location``), ``GET
  /listDigitalAddress/state/{id}`` (200 ``PRESA_IN_CARICO`` / ``IN_ELABORAZIONE``, then 303
  ``DISPONIBILE`` with ``Location``), ``GET /listDigitalAddress/response/{id}`` (kept 48
  hours).

Errors are the spec's ``Errore`` (``{"status": "400", "type": "BAD_REQUEST", "detail"}``).
The population is fictitious and deterministic: people with valid fiscal codes, about
half with a digital domicile (some professionals, some with an older, ceased domicile).

Sandbox-only: ``GET /__sandbox/population?kind=with|without|ceased&limit=``, ``POST|DELETE
/__sandbox/faults`` (``{"count", "mode": "fail"|"lose"|"drop", "status", "operations"}``),
``GET /__sandbox/calls``.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from sportello.clock import Clock, SystemClock

from ..anpr.population import fiscal_code_check_char
from ..common import platform_app
from ..pdnd.hosts import SANDBOX_ISSUER
from ..voucher import VoucherChecker, VoucherInvalid

__all__ = [
    "BASE_PATH",
    "DEFAULT_PDND_URL",
    "INAD_STATE",
    "Domicile",
    "InadSandbox",
    "Person",
    "create_app",
    "generate_population",
]

BASE_PATH = "/rest/inad/v1/domiciliodigitale"
DEFAULT_PDND_URL = "http://127.0.0.1:8104"
PROBLEM_JSON = "application/problem+json"
_CF = re.compile(r"^([0-9]{11})$|^([A-Za-z]{6}[0-9]{2}[A-Za-z][0-9]{2}[A-Za-z][0-9]{3}[A-Za-z])$")
_ADDRESS = re.compile(r"^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")
_UUID = re.compile(r"^[{]?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}[}]?$")
_TYPES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
_KEEP_LISTS = timedelta(hours=48)
_MAX_CALLS = 50_000

_SURNAMES = ("ROSSI", "BIANCHI", "VERDI", "ESPOSITO", "COLOMBO", "RICCI", "MARINO", "GRECO")
_NAMES = ("MARIO", "GIULIA", "LUCA", "ANNA", "PAOLO", "SARA", "MARCO", "ELENA")
_MONTHS = "ABCDEHLMPRST"
_PLACES = ("H501", "F205", "L219", "G273", "A944", "D612")


@dataclass(frozen=True)
class Domicile:
    address: str
    valid_from: date
    valid_to: date | None = None  # ceased on that day
    motivation: str | None = None
    profession: str | None = None


@dataclass
class Person:
    fiscal_code: str
    given_name: str
    family_name: str
    domiciles: list[Domicile] = field(default_factory=list)

    def active(self, on: date) -> list[Domicile]:
        return [
            d
            for d in self.domiciles
            if d.valid_from <= on and (d.valid_to is None or on < d.valid_to)
        ]


def _consonants(word: str) -> str:
    return "".join(c for c in word if c not in "AEIOU")


def _code3(word: str, name: bool = False) -> str:
    cons = _consonants(word)
    if name and len(cons) >= 4:
        cons = cons[0] + cons[2] + cons[3]
    return (cons + "".join(c for c in word if c in "AEIOU") + "XXX")[:3]


def generate_population(size: int = 200, seed: int = 15) -> list[Person]:
    """Fictitious people with valid fiscal codes: about half with a digital domicile."""
    rng = random.Random(seed)
    people: list[Person] = []
    seen: set[str] = set()
    while len(people) < size:
        surname, name = rng.choice(_SURNAMES), rng.choice(_NAMES)
        female = name in ("GIULIA", "ANNA", "SARA", "ELENA")
        year = rng.randint(40, 99)
        day = rng.randint(1, 28) + (40 if female else 0)
        first15 = (
            f"{_code3(surname)}{_code3(name, True)}{year:02d}{rng.choice(_MONTHS)}"
            f"{day:02d}{rng.choice(_PLACES)}"
        )
        code = first15 + fiscal_code_check_char(first15)
        if code in seen:
            continue
        seen.add(code)
        person = Person(code, name.title(), surname.title())
        kind = len(people) % 6
        mailbox = f"{name.lower()}.{surname.lower()}{len(people)}"
        if kind in (0, 1):
            person.domiciles.append(Domicile(f"{mailbox}@pec.sandbox.it", date(2023, 7, 6)))
        elif kind == 2:
            person.domiciles.append(
                Domicile(
                    f"avv.{mailbox}@pec.ordine.sandbox.it", date(2023, 9, 1), profession="Avvocato"
                )
            )
        elif kind == 3:  # a ceased domicile, then a new one
            person.domiciles += [
                Domicile(
                    f"{mailbox}@old.pec.sandbox.it",
                    date(2023, 7, 6),
                    date(2024, 3, 1),
                    "CESSAZIONE_VOLONTARIA",
                ),
                Domicile(f"{mailbox}@pec.sandbox.it", date(2024, 3, 1)),
            ]
        elif kind == 4:  # ceased, none now
            person.domiciles.append(
                Domicile(
                    f"{mailbox}@pec.sandbox.it",
                    date(2023, 7, 6),
                    date(2024, 6, 1),
                    "CESSAZIONE_UFFICIO",
                )
            )
        people.append(person)
    return people


@dataclass
class _Job:
    job_id: str
    requester: str
    codes: list[str]
    requested: datetime
    started: float


@dataclass
class _Fault:
    remaining: int
    mode: str
    status: int
    operations: frozenset[str] | None


class InadSandbox:
    def __init__(
        self,
        *,
        people: list[Person],
        vouchers: VoucherChecker,
        clock: Clock,
        bulk_delay: float,
    ) -> None:
        self.people = {p.fiscal_code: p for p in people}
        self.vouchers = vouchers
        self.clock = clock
        self.bulk_delay = bulk_delay
        self.jobs: dict[str, _Job] = {}
        self.faults: list[_Fault] = []
        self.calls: deque[dict[str, Any]] = deque(maxlen=_MAX_CALLS)

    def now_iso(self) -> str:
        return self.clock.now().astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def entry(self, code: str, now: datetime) -> dict[str, Any]:
        person = self.people.get(code.upper())
        active = person.active(now.date()) if person is not None else []
        return {
            "codiceFiscale": code,
            "since": self.now_iso(),
            "digitalAddress": [_element(d) for d in active],
        }


def _element(domicile: Domicile) -> dict[str, Any]:
    element: dict[str, Any] = {
        "digitalAddress": domicile.address,
        # usageInfo is required by the spec's schema; an active domicile has no end yet
        "usageInfo": {
            "motivation": domicile.motivation or "CESSAZIONE_VOLONTARIA",
            "dateEndValidity": (
                f"{domicile.valid_to.isoformat()}T00:00:00Z"
                if domicile.valid_to
                else "9999-12-31T00:00:00Z"
            ),
        },
    }
    if domicile.profession:
        element["practicedProfession"] = domicile.profession
    return element


INAD_STATE = web.AppKey("inad_sandbox_state", InadSandbox)
_REQUESTER = web.RequestKey("inad_sandbox_requester", str)


def _json(payload: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type=content_type,
    )


def _error(status: int, detail: str) -> web.Response:
    return _json(
        {
            "status": str(status),
            "type": _TYPES.get(status, "INTERNAL_SERVER_ERROR"),
            "detail": detail,
        },
        status,
        PROBLEM_JSON,
    )


def _check_cf(value: str) -> web.Response | None:
    if not _CF.match(value):
        return _error(400, "codice_fiscale: formato non valido")
    return None


def _reference(request: web.Request, name: str = "practicalReference") -> web.Response | None:
    if not request.query.get(name, "").strip():
        return _error(400, f"{name}: parametro obbligatorio")
    return None


async def extract(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    code = request.match_info["codice_fiscale"]
    problem = _check_cf(code) or _reference(request)
    if problem is not None:
        return problem
    entry = state.entry(code, state.clock.now())
    if not entry["digitalAddress"]:
        return _error(404, "Domicilio digitale non presente")
    return _json(entry)


async def verify(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    code = request.match_info["codice_fiscale"]
    problem = _check_cf(code) or _reference(request)
    if problem is not None:
        return problem
    address = request.query.get("digital_address", "")
    if not _ADDRESS.match(address):
        return _error(400, "digital_address: formato non valido")
    try:
        since = date.fromisoformat(request.query.get("since", ""))
    except ValueError:
        return _error(400, "since: data non valida (yyyy-MM-dd)")
    person = state.people.get(code.upper())
    outcome = person is not None and any(
        d.address.lower() == address.lower() for d in person.active(since)
    )
    return _json({"outcome": outcome, "dateTimeCheck": state.now_iso()})


async def request_list(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "body: JSON non valido")
    if not isinstance(body, dict):
        return _error(400, "body: oggetto atteso")
    codes = body.get("codiciFiscali")
    if not isinstance(codes, list) or not 1 <= len(codes) <= 1000:
        return _error(400, "codiciFiscali: da 1 a 1000 codici fiscali")
    for index, code in enumerate(codes):
        if not isinstance(code, str) or not _CF.match(code):
            return _error(400, f"codiciFiscali[{index}]: formato non valido")
    reference = body.get("praticalReference")
    if not isinstance(reference, str) or not reference.strip():
        return _error(400, "praticalReference: campo obbligatorio")
    job = _Job(
        str(uuid.uuid4()),
        request[_REQUESTER],
        list(codes),
        state.clock.now(),
        state.clock.monotonic(),
    )
    state.jobs[job.job_id] = job
    response = _json(
        {
            "state": "PRESA_IN_CARICO",
            "message": "Richiesta elenco presa in carico",
            "id": job.job_id,
            "dateTimeRequest": job.requested.isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
        202,
    )
    response.headers["Location"] = f"{BASE_PATH}/listDigitalAddress/state/{job.job_id}"
    return response


def _job(request: web.Request) -> tuple[_Job | None, web.Response | None]:
    state = request.app[INAD_STATE]
    job_id = request.match_info["id"]
    if not _UUID.match(job_id):
        return None, _error(400, "id: formato non valido")
    job = state.jobs.get(job_id)
    if job is not None and state.clock.now() - job.requested > _KEEP_LISTS:
        del state.jobs[job_id]
        job = None
    if job is None or job.requester != request[_REQUESTER]:
        return None, _error(404, "Richiesta non trovata")
    return job, None


async def list_state(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    job, error = _job(request)
    if job is None:
        return error or _error(404, "Richiesta non trovata")
    elapsed = state.clock.monotonic() - job.started
    if elapsed >= state.bulk_delay:
        response = _json({"state": "DISPONIBILE", "message": "Richiesta elenco disponibile"}, 303)
        response.headers["Location"] = f"{BASE_PATH}/listDigitalAddress/response/{job.job_id}"
        return response
    if elapsed >= state.bulk_delay / 2:
        return _json({"state": "IN_ELABORAZIONE", "message": "Richiesta elenco in elaborazione"})
    return _json({"state": "PRESA_IN_CARICO", "message": "Richiesta elenco presa in carico"})


async def list_response(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    job, error = _job(request)
    if job is None:
        return error or _error(404, "Richiesta non trovata")
    if state.clock.monotonic() - job.started < state.bulk_delay:
        return _error(404, "Elenco non ancora disponibile")
    now = state.clock.now()
    return _json({"list": [state.entry(code, now) for code in job.codes]})


# -- sandbox-only -------------------------------------------------------------------------


async def population(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    kind = request.query.get("kind", "with")
    limit = (
        int(request.query.get("limit", "20")) if request.query.get("limit", "").isdigit() else 20
    )
    today = state.clock.now().date()
    out = []
    for person in state.people.values():
        active = person.active(today)
        ceased = any(d.valid_to is not None for d in person.domiciles)
        if (
            (kind == "with" and active)
            or (kind == "without" and not active)
            or (kind == "ceased" and ceased)
        ):
            out.append(
                {
                    "fiscal_code": person.fiscal_code,
                    "domiciles": [
                        {
                            "address": d.address,
                            "from": d.valid_from.isoformat(),
                            "to": d.valid_to.isoformat() if d.valid_to else None,
                            "profession": d.profession,
                        }
                        for d in person.domiciles
                    ],
                }
            )
    return _json({"kind": kind, "count": len(out), "people": out[:limit]})


async def add_faults(request: web.Request) -> web.Response:
    state = request.app[INAD_STATE]
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "expected a JSON object")
    mode, count, status = body.get("mode", "fail"), body.get("count", 1), body.get("status", 503)
    operations = body.get("operations")
    if (
        mode not in ("fail", "lose", "drop")
        or type(count) is not int
        or count < 1
        or type(status) is not int
        or not 400 <= status <= 599
        or (operations is not None and not isinstance(operations, list))
    ):
        return _error(400, "mode fail|lose|drop, count >= 1, status 400-599, operations list")
    state.faults.append(
        _Fault(count, mode, status, frozenset(operations) if operations is not None else None)
    )
    return _json({"pending": len(state.faults)}, 201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[INAD_STATE].faults.clear()
    return _json({"pending": 0})


async def list_calls(request: web.Request) -> web.Response:
    calls = list(request.app[INAD_STATE].calls)
    return _json({"calls": calls, "count": len(calls)})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _take_fault(state: InadSandbox, operation: str) -> _Fault | None:
    for fault in state.faults:
        if fault.operations is not None and operation not in fault.operations:
            continue
        fault.remaining -= 1
        if fault.remaining <= 0:
            state.faults.remove(fault)
        return fault
    return None


@web.middleware
async def inad_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The PDND voucher check in front of every e-service route, faults, call log."""
    route = request.match_info.route
    operation = route.name if request.match_info.http_exception is None else None
    if operation is None:
        return await handler(request)
    state = request.app[INAD_STATE]
    refused: str | None = None
    response: web.StreamResponse
    try:
        claims = await state.vouchers.check(
            request.headers.get("Authorization"), f"{request.scheme}://{request.host}"
        )
    except VoucherInvalid as exc:
        refused = exc.reason
        response = (
            _error(401, "Token mancante")
            if exc.reason == "missing"
            else _error(403, "Voucher non valido per questo e-service")
        )
    else:
        request[_REQUESTER] = str(claims.get("client_id") or claims.get("sub"))
        fault = _take_fault(state, operation)
        if fault is not None and fault.mode == "fail":
            response = _error(fault.status, "sandbox fault injection")
        else:
            response = await handler(request)
            if fault is not None and fault.mode == "drop" and request.transport is not None:
                request.transport.close()
            elif fault is not None:
                response = _error(fault.status, "sandbox fault injection")
    state.calls.append({"operation": operation, "status": response.status, "refused": refused})
    return response


def create_app(
    *,
    people: list[Person] | None = None,
    pdnd_url: str = DEFAULT_PDND_URL,
    jwks: dict[str, Any] | None = None,
    voucher_issuer: str = SANDBOX_ISSUER,
    voucher_audience: str | None = None,
    purposes: Collection[str] | None = None,
    clock: Clock | None = None,
    bulk_delay: float = 2.0,
) -> web.Application:
    """The INAD twin. Vouchers must carry ``aud`` = ``voucher_audience`` (default: the
    twin's base URL plus ``BASE_PATH``) and, when ``purposes`` is given, one of those
    purposes. ``bulk_delay``: seconds before a bulk list is ready."""
    actual_clock = clock or SystemClock()
    checker = VoucherChecker(
        jwks if jwks is not None else pdnd_url.rstrip("/") + "/.well-known/jwks.json",
        issuer=voucher_issuer,
        audience=(
            voucher_audience if voucher_audience is not None else (lambda base: base + BASE_PATH)
        ),
        purposes=purposes,
        clock=lambda: actual_clock.now().timestamp(),
    )
    state = InadSandbox(
        people=people if people is not None else generate_population(),
        vouchers=checker,
        clock=actual_clock,
        bulk_delay=bulk_delay,
    )
    app = platform_app("inad", "INAD consultazione domicili digitali (PDND e-service)")
    app[INAD_STATE] = state
    app.middlewares.append(inad_gateway)
    r = app.router
    r.add_get(f"{BASE_PATH}/extract/{{codice_fiscale}}", extract, name="recuperoDomicilioDigitale")
    r.add_get(f"{BASE_PATH}/verify/{{codice_fiscale}}", verify, name="verificaDomicilioDigitale")
    r.add_post(
        f"{BASE_PATH}/listDigitalAddress", request_list, name="richiestaElencoDomiciliDigitali"
    )
    r.add_get(
        f"{BASE_PATH}/listDigitalAddress/state/{{id}}",
        list_state,
        name="verificaStatoRichiestaElencoDomiciliDigitali",
    )
    r.add_get(
        f"{BASE_PATH}/listDigitalAddress/response/{{id}}",
        list_response,
        name="recuperoElencoDomiciliDigitali",
    )
    r.add_get("/__sandbox/population", population)
    r.add_post("/__sandbox/faults", add_faults)
    r.add_delete("/__sandbox/faults", clear_faults)
    r.add_get("/__sandbox/calls", list_calls)

    async def on_cleanup(app: web.Application) -> None:
        await app[INAD_STATE].vouchers.close()

    app.on_cleanup.append(on_cleanup)
    return app
