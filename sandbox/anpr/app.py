"""Sandbox twin of ANPR on PDND: the GovWay front door plus the E002 e-services.

Routes (as the real gateway):

- ``POST {base_path}/<Cxxx-name>/v1/anpr-service-e002`` for C001, C003, C007, C015,
  C020, C021, C029, C030: ModI checks (``govway.py``), then the e-service
  (``eservices.py``) on the fictitious population (``population.py``).
- ``GET {base_path}/<Cxxx-name>/v1/status``: needs a valid voucher for the service.
- anything else under ``/govway/``: GovWay 404 ``NotFound`` "Unknown API Request".

Every ModI defect gets the same GovWay 400 ``InteroperabilityInvalidRequest`` body with
``GovWay-Transaction-ID`` and ``GovWay-Transaction-ErrorType`` headers; an expired voucher
gets 401 ``TokenExpired``; a replayed ``jti`` 409; a client over its rate limit 429
``LimitExceeded`` with ``Retry-After``.

Routes (sandbox only):

- ``GET /__sandbox/diagnostics/{govway_id}``: the true outcome of a transaction (the
  check that failed and why). ``GET /__sandbox/diagnostics?limit=n``: the latest ones.
- ``GET /__sandbox/population?limit=&offset=&active=1``: the fictitious people.
- ``POST /__sandbox/faults`` ``{"service": "C030" | "*", "status": 400 | 429 | 500 | 502 |
  503 | 504, "count": n, "retry_after": s}``: the next n calls that pass the front door fail
  with the real answer for that status (400: a RispostaKO with a blocking error; 429: GovWay's
  ``LimitExceeded`` with ``Retry-After: s``, default 1; 500: a RispostaKO; 502-504: GovWay's
  problem). ``DELETE`` clears them.
- ``GET /status``: the platform status shared by every sandbox app.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from aiohttp import web

from ..common import platform_app
from ..pdnd.hosts import SANDBOX_ISSUER
from .eservices import SERVICE_CODES, answer, ko_body
from .govway import ClientKeys, FrontDoor, Refusal, VoucherKey, now_from, spellings
from .population import Population, generate

__all__ = [
    "ANPR_STATE",
    "DEFAULT_BASE_PATH",
    "DEFAULT_PDND_URL",
    "SERVICE_SEGMENTS",
    "AnprSandbox",
    "create_app",
    "modi_audience_for",
]

DEFAULT_BASE_PATH = "/govway/rest/in/MinInternoPortaANPR-PDND"
#: Where the PDND sandbox listens in the demo layout (``sandbox.base_port`` 8100 + 4).
DEFAULT_PDND_URL = "http://127.0.0.1:8104"
E002 = "anpr-service-e002"
_PROBLEM = "application/problem+json"
_GOVWAY_ERRORS = "https://govway.org/handling-errors"

#: Path segment of each e-service. C001 keeps the EN DASH of its official OpenAPI file;
#: the ASCII spelling ``C001-servizioNotifica`` is accepted too.
SERVICE_SEGMENTS: Mapping[str, str] = {
    "C001": "C001\u2013servizioNotifica",
    "C003": "C003-servizioVerificaDichGeneralita",
    "C007": "C007-servizioVerificaDichEsistenzaVita",
    "C015": "C015-servizioAccertamentoGeneralita",
    "C020": "C020-servizioAccertamentoResidenza",
    "C021": "C021-servizioAccertamentoStatoFamiglia",
    "C029": "C029-servizioAccertamentoDatiAnagrafici",
    "C030": "C030-servizioAccertamentoIdUnicoNazionale",
}
_ALIASES: Mapping[str, tuple[str, ...]] = {"C001": ("C001-servizioNotifica",)}


def _without_pdnd(path: str) -> str:
    return "/".join(s[: -len("-PDND")] if s.endswith("-PDND") else s for s in path.split("/"))


def modi_audience_for(audience_base: str, service: str) -> str:
    """The ModI ``aud`` (and voucher audience) of ``service``: ``{audience_base}/<seg>/v1``.

    ``audience_base`` is the door URL *without* ``-PDND``, e.g.
    ``https://modipa-val.anpr.interno.it/govway/rest/in/MinInternoPortaANPR``.
    """
    return f"{audience_base.rstrip('/')}/{SERVICE_SEGMENTS[service]}/v1"


@dataclass
class _Fault:
    service: str
    status: int
    remaining: int
    retry_after: int = 1


class _Window:
    """Fixed-window request counter for one client."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0


class AnprSandbox:
    """State of one ANPR gateway twin: population, front door, diagnostics, faults."""

    def __init__(
        self,
        *,
        population: Population,
        front_door: FrontDoor,
        base_path: str,
        audience_base: str | None,
        voucher_audience: Callable[[str], str] | None,
        rate_limit: tuple[int, float] | None,
        clock: Callable[[], float],
        max_diagnostics: int,
    ) -> None:
        self.population = population
        self.front_door = front_door
        self.base_path = "/" + base_path.strip("/")
        self.audience_base = audience_base
        self.voucher_audience = voucher_audience
        self.rate_limit = rate_limit
        self.clock = clock
        self.max_diagnostics = max_diagnostics
        self.diagnostics: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.faults: list[_Fault] = []
        self.calls: dict[str, int] = {}
        self._windows: dict[str, _Window] = {}

    # ------------------------------------------------------------------ helpers

    def audience(self, request: web.Request, service: str) -> str:
        base = self.audience_base
        if base is None:
            base = f"{request.scheme}://{request.host}{_without_pdnd(self.base_path)}"
        return modi_audience_for(base, service)

    def record(self, govway_id: str, entry: dict[str, Any]) -> None:
        outcome = str(entry.get("outcome"))
        self.calls[outcome] = self.calls.get(outcome, 0) + 1
        self.diagnostics[govway_id] = {
            "govway_id": govway_id,
            "at": datetime.fromtimestamp(self.clock(), UTC).isoformat(),
            **entry,
        }
        while len(self.diagnostics) > self.max_diagnostics:
            self.diagnostics.popitem(last=False)

    def _allow(self, client_id: str) -> float | None:
        """``None`` when the call is allowed, else the seconds until the window resets."""
        if self.rate_limit is None:
            return None
        limit, interval = self.rate_limit
        now = self.clock()
        window = self._windows.get(client_id)
        if window is None or now - window.start >= interval:
            window = self._windows[client_id] = _Window(now)
        window.count += 1
        if window.count <= limit:
            return None
        return max(0.0, window.start + interval - now)

    def _take_fault(self, service: str) -> _Fault | None:
        for fault in self.faults:
            if fault.service in ("*", service) and fault.remaining > 0:
                fault.remaining -= 1
                self.faults = [f for f in self.faults if f.remaining > 0]
                return fault
        return None

    # ----------------------------------------------------------------- responses

    @staticmethod
    def govway_problem(
        govway_id: str,
        status: int,
        title: str,
        detail: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        body = {
            "type": f"{_GOVWAY_ERRORS}/{status}/{title}.html",
            "title": title,
            "status": status,
            "detail": detail,
            "govway_id": govway_id,
        }
        return web.json_response(
            body,
            status=status,
            content_type=_PROBLEM,
            headers={
                "GovWay-Transaction-ID": govway_id,
                "GovWay-Transaction-ErrorType": title,
                **(headers or {}),
            },
        )

    def refused(
        self, govway_id: str, refusal: Refusal, service: str, request: web.Request
    ) -> web.Response:
        self.record(
            govway_id,
            {
                "outcome": "refused",
                "status": refusal.status,
                "error_type": refusal.title,
                "check": refusal.check,
                "reason": refusal.reason,
                "service": service,
                "method": request.method,
                "path": request.path,
                "client_id": refusal.client_id,
            },
        )
        return self.govway_problem(
            govway_id, refusal.status, refusal.title, refusal.detail, refusal.headers
        )

    # ------------------------------------------------------------------ handlers

    async def e002(self, request: web.Request, service: str) -> web.Response:
        govway_id = str(uuid.uuid4())
        if request.method != "POST":
            return self.not_found(request, govway_id)
        body = await request.read()
        audience = self.audience(request, service)
        voucher_audience = (
            self.voucher_audience(service) if self.voucher_audience is not None else audience
        )
        try:
            identity = await self.front_door.check(
                headers=request.headers,
                body=body,
                audience=audience,
                accepted_audiences=spellings(audience),
                voucher_audience=voucher_audience,
                audited=True,
                integrity=True,
            )
        except Refusal as refusal:
            return self.refused(govway_id, refusal, service, request)
        limited = self._allow(identity.client_id)
        if limited is not None:
            return self._limited(govway_id, identity.client_id, service, request, limited)
        fault = self._take_fault(service)
        if fault is not None:
            return self._fault(govway_id, fault, service, request, identity.client_id)
        try:
            payload = json.loads(body)
            if request.content_type != "application/json":
                raise ValueError("not JSON")
        except ValueError:
            status, out = (
                400,
                ko_body(
                    str(uuid.uuid4()),
                    [
                        {
                            "codiceErroreAnomalia": "SBX01",
                            "testoErroreAnomalia": "Il corpo della richiesta deve essere JSON",
                            "tipoErroreAnomalia": "E",
                            "campoErroreAnomalia": "RichiestaE002",
                        }
                    ],
                ),
            )
        else:
            status, out = answer(service, payload, self.population)
        codes = [e["codiceErroreAnomalia"] for e in out.get("listaErrori", [])]
        self.record(
            govway_id,
            {
                "outcome": "ok" if status == 200 else "ko",
                "status": status,
                "service": service,
                "method": request.method,
                "path": request.path,
                "client_id": identity.client_id,
                "purpose_id": identity.purpose_id,
                "user_id": identity.audit.get("userID") if identity.audit else None,
                "idOperazioneANPR": out.get("idOperazioneANPR"),
                "errors": codes,
            },
        )
        return web.json_response(
            out,
            status=status,
            content_type="application/json" if status == 200 else _PROBLEM,
            headers={"GovWay-Transaction-ID": govway_id},
        )

    async def status(self, request: web.Request, service: str) -> web.Response:
        govway_id = str(uuid.uuid4())
        if request.method != "GET":
            return self.not_found(request, govway_id)
        audience = self.audience(request, service)
        voucher_audience = (
            self.voucher_audience(service) if self.voucher_audience is not None else audience
        )
        try:
            identity = await self.front_door.check(
                headers=request.headers,
                body=b"",
                audience=audience,
                accepted_audiences=spellings(audience),
                voucher_audience=voucher_audience,
                audited=False,
                integrity=False,
            )
        except Refusal as refusal:
            return self.refused(govway_id, refusal, service, request)
        self.record(
            govway_id,
            {
                "outcome": "ok",
                "status": 200,
                "service": service,
                "method": "GET",
                "path": request.path,
                "client_id": identity.client_id,
            },
        )
        return web.json_response(
            {"idOperazioneANPR": str(uuid.uuid4()), "listaErrori": []},
            content_type=_PROBLEM,  # the official files declare problem+json for /status
            headers={"GovWay-Transaction-ID": govway_id},
        )

    def not_found(self, request: web.Request, govway_id: str | None = None) -> web.Response:
        govway_id = govway_id or str(uuid.uuid4())
        self.record(
            govway_id,
            {
                "outcome": "notFound",
                "status": 404,
                "error_type": "NotFound",
                "check": "routing",
                "reason": f"no operation {request.method} {request.path}",
                "method": request.method,
                "path": request.path,
            },
        )
        return self.govway_problem(govway_id, 404, "NotFound", "Unknown API Request")

    def _limited(
        self,
        govway_id: str,
        client_id: str,
        service: str,
        request: web.Request,
        retry_after: float,
    ) -> web.Response:
        self.record(
            govway_id,
            {
                "outcome": "rateLimited",
                "status": 429,
                "error_type": "LimitExceeded",
                "check": "rateLimit",
                "reason": f"client {client_id} exceeded {self.rate_limit}",
                "service": service,
                "method": request.method,
                "path": request.path,
                "client_id": client_id,
            },
        )
        return self.govway_problem(
            govway_id,
            429,
            "LimitExceeded",
            "The maximum number of allowed requests has been reached",
            {"Retry-After": str(max(1, math.ceil(retry_after)))},
        )

    def _fault(
        self, govway_id: str, fault: _Fault, service: str, request: web.Request, client_id: str
    ) -> web.Response:
        status = fault.status
        self.record(
            govway_id,
            {
                "outcome": "fault",
                "status": status,
                "check": "injectedFault",
                "reason": f"fault injected through /__sandbox/faults ({status})",
                "service": service,
                "method": request.method,
                "path": request.path,
                "client_id": client_id,
            },
        )
        if status == 429:
            return self.govway_problem(
                govway_id,
                429,
                "LimitExceeded",
                "The maximum number of allowed requests has been reached",
                {"Retry-After": str(fault.retry_after)},
            )
        if status in (400, 500):
            code, text = (
                ("SBX40", "Richiesta non elaborabile (guasto simulato)")
                if status == 400
                else ("SBX99", "Errore interno (guasto simulato)")
            )
            body = ko_body(
                str(uuid.uuid4()),
                [
                    {
                        "codiceErroreAnomalia": code,
                        "testoErroreAnomalia": text,
                        "tipoErroreAnomalia": "E",
                    }
                ],
            )
            return web.json_response(
                body,
                status=status,
                content_type=_PROBLEM,
                headers={"GovWay-Transaction-ID": govway_id},
            )
        titles = {502: "InvalidResponse", 503: "APIUnavailable", 504: "EndpointReadTimedOut"}
        details = {
            502: "Invalid response received from the API Implementation",
            503: "The API Implementation is temporary unavailable",
            504: "Read Timeout expired while waiting for the API implementation response",
        }
        return self.govway_problem(govway_id, status, titles[status], details[status])


ANPR_STATE = web.AppKey("anpr_sandbox", AnprSandbox)


def _route(service: str, kind: str) -> Callable[[web.Request], Any]:
    async def handler(request: web.Request) -> web.Response:
        state = request.app[ANPR_STATE]
        if kind == "e002":
            return await state.e002(request, service)
        return await state.status(request, service)

    return handler


async def _unknown(request: web.Request) -> web.Response:
    return request.app[ANPR_STATE].not_found(request)


def _json_problem(status: int, detail: str) -> web.Response:
    title = HTTPStatus(status).phrase
    return web.json_response(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status=status,
        content_type=_PROBLEM,
    )


async def _diagnosis(request: web.Request) -> web.Response:
    found = request.app[ANPR_STATE].diagnostics.get(request.match_info["govway_id"])
    if found is None:
        return _json_problem(404, "no transaction with this govway_id")
    return web.json_response(found)


async def _diagnostics(request: web.Request) -> web.Response:
    state = request.app[ANPR_STATE]
    try:
        limit = max(1, min(int(request.query.get("limit", "20")), 1000))
    except ValueError:
        return _json_problem(400, "limit must be an integer")
    latest = list(state.diagnostics.values())[-limit:]
    return web.json_response({"counts": state.calls, "latest": latest[::-1]})


async def _population(request: web.Request) -> web.Response:
    state = request.app[ANPR_STATE]
    try:
        limit = max(1, min(int(request.query.get("limit", "50")), 5000))
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        return _json_problem(400, "limit and offset must be integers")
    people = state.population.active() if request.query.get("active") else state.population.people
    page = people[offset : offset + limit]
    return web.json_response(
        {
            "comune": {
                "name": state.population.comune.name,
                "istat_code": state.population.comune.istat_code,
            },
            "seed": state.population.seed,
            "total": len(people),
            "people": [
                {
                    "idANPR": p.id_anpr,
                    "codiceFiscale": p.fiscal_code,
                    "cognome": p.family_name,
                    "nome": p.given_name,
                    "sesso": p.sex,
                    "dataNascita": p.birth_date.isoformat(),
                    "famiglia": p.household_id,
                    "codiceLegame": p.relationship_code,
                    "deceduto": p.date_of_death is not None,
                    "cancellato": p.cancelled,
                }
                for p in page
            ],
        }
    )


async def _add_fault(request: web.Request) -> web.Response:
    state = request.app[ANPR_STATE]
    try:
        doc = await request.json()
    except ValueError:
        return _json_problem(400, "the body must be JSON")
    if not isinstance(doc, dict):
        return _json_problem(400, "the body must be a JSON object")
    service = doc.get("service", "*")
    status = doc.get("status", 500)
    count = doc.get("count", 1)
    if service != "*" and service not in SERVICE_CODES:
        return _json_problem(400, f"service must be '*' or one of {', '.join(SERVICE_CODES)}")
    retry_after = doc.get("retry_after", 1)
    if status not in (400, 429, 500, 502, 503, 504):
        return _json_problem(400, "status must be 400, 429, 500, 502, 503 or 504")
    if not isinstance(count, int) or not 1 <= count <= 1000:
        return _json_problem(400, "count must be an integer between 1 and 1000")
    if type(retry_after) is not int or not 0 <= retry_after <= 3600:
        return _json_problem(400, "retry_after must be an integer between 0 and 3600")
    state.faults.append(_Fault(service, status, count, retry_after))
    return web.json_response({"pending": [f.__dict__ for f in state.faults]}, status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[ANPR_STATE].faults.clear()
    return web.json_response({"pending": []})


def create_app(
    *,
    population: Population | None = None,
    voucher_key: VoucherKey | None = None,
    voucher_issuer: str = SANDBOX_ISSUER,
    base_path: str = DEFAULT_BASE_PATH,
    audience_base: str | None = None,
    client_keys: ClientKeys | None = None,
    pdnd_url: str = DEFAULT_PDND_URL,
    clock: Any = None,
    voucher_audience: Callable[[str], str] | None = None,
    rate_limit: tuple[int, float] | None = None,
    max_diagnostics: int = 10_000,
) -> web.Application:
    """The ANPR gateway twin as an aiohttp app.

    ``voucher_key``: the PDND sandbox's voucher key (PEM, JWK or JWKS dict, key object,
    JWKS URL, or a function returning one). ``voucher_issuer``: the voucher ``iss``.
    ``audience_base``: the external URL of the door **without** ``-PDND`` (e.g.
    ``http://127.0.0.1:8105/govway/rest/in/MinInternoPortaANPR``); by default it is
    derived from each request's scheme and host. The ModI ``aud`` of a service is
    ``{audience_base}/<Cxxx-name>/v1``, and so is the voucher audience unless
    ``voucher_audience(code)`` says otherwise. ``client_keys``: ``kid`` → the client's
    public key (PEM, JWK, key object or ``None``; sync or async), or the base URL of a
    ``GET {url}/{kid}`` JWK endpoint such as the PDND sandbox's ``/keys``. Left out, both
    come from the PDND sandbox at ``pdnd_url`` (its JWKS and ``/keys``; by default the demo
    layout, ``http://127.0.0.1:8104``), so ``create_app()`` works as a zero-argument
    factory. ``clock``: a hub ``Clock`` or a ``() -> float``. ``rate_limit``:
    ``(calls, seconds)`` per client.
    """
    if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
        raise ValueError("rate_limit must be (calls >= 1, seconds > 0)")
    now = now_from(clock)
    pdnd = pdnd_url.rstrip("/")
    if voucher_key is None:
        voucher_key = pdnd + "/.well-known/jwks.json"
    if client_keys is None:
        client_keys = pdnd + "/keys"
    state = AnprSandbox(
        population=population if population is not None else generate(),
        front_door=FrontDoor(
            voucher_key=voucher_key,
            voucher_issuer=voucher_issuer,
            client_keys=client_keys,
            clock=now,
        ),
        base_path=base_path,
        audience_base=audience_base,
        voucher_audience=voucher_audience,
        rate_limit=rate_limit,
        clock=now,
        max_diagnostics=max_diagnostics,
    )
    app = platform_app("anpr", "ANPR e-services behind the PDND gateway")
    app[ANPR_STATE] = state
    for service in SERVICE_CODES:
        for segment in (SERVICE_SEGMENTS[service], *_ALIASES.get(service, ())):
            prefix = f"{state.base_path}/{segment}/v1"
            app.router.add_route("*", f"{prefix}/{E002}", _route(service, "e002"))
            app.router.add_route("*", f"{prefix}/status", _route(service, "status"))
    app.router.add_route("*", "/govway/{tail:.*}", _unknown)
    app.router.add_get("/__sandbox/diagnostics", _diagnostics)
    app.router.add_get("/__sandbox/diagnostics/{govway_id}", _diagnosis)
    app.router.add_get("/__sandbox/population", _population)
    app.router.add_post("/__sandbox/faults", _add_fault)
    app.router.add_delete("/__sandbox/faults", _clear_faults)

    async def close_front_door(app: web.Application) -> None:
        await app[ANPR_STATE].front_door.close()

    app.on_cleanup.append(close_front_door)
    return app
