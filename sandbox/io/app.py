"""A sandbox of the App IO API for public bodies, faithful to what App IO really answers.

Routes are those of the spec under ``/api/v1`` (``POST /profiles``, ``GET
/profiles/{fiscal_code}``, ``POST /messages``, ``POST /messages/{fiscal_code}``, ``GET
/messages/{fiscal_code}/{id}``) with the ``Ocp-Apim-Subscription-Key`` header. What it
reproduces (see ``connectors/io/README.md`` for the list and ``/__sandbox/`` routes):

- the Azure API gateway: 401 bodies for a missing or wrong key, 404 "Resource not found"
  for unknown routes, 429 past ``rate_limit`` calls per ``rate_window`` seconds per
  subscription (both keys of a service share it, as with App IO's ``rate-limit`` policy),
  with ``x-rate-limit-remaining`` and ``x-rate-limit-retry-after``;
- the backend's checks in App IO's order, with its ProblemJson titles and details: io-ts
  400s naming the field, 403 "You are not allowed here" for ADVANCED, payee, third-party or
  EU Covid certificate payloads without the permission, 403 "Recipient forbidden" for a
  draft service outside its authorized recipients (``AAAAAA00A00A000A`` is always
  allowed), 400 above ``max_allowed_payment_amount``, 404 "Profile not found" for no
  profile or a disabled inbox;
- ``201 {"id": <ULID>}`` with ``Location: /api/v1/messages/{fiscal_code}/{id}``, then
  ACCEPTED for ``processing_delay`` seconds and PROCESSED, or REJECTED when the citizen
  has no profile, disabled the inbox or blocked the service.

State lives on the app (``web.AppKey``), so each ``create_app`` is independent.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web
from ulid import ULID

from sportello.clock import Clock, SystemClock

from ..common import platform_app
from .population import SANDBOX_FISCAL_CODE, Citizen, Population, default_population
from .spec import SpecChecker, SpecViolation
from .validation import (
    check_fiscal_code_payload,
    check_new_message,
    is_fiscal_code,
    js_timestamp,
    problem_line,
)

__all__ = [
    "API_PREFIX",
    "DEMO_DRAFT_SERVICE_ID",
    "DEMO_PRIMARY_KEY",
    "DEMO_SECONDARY_KEY",
    "DEMO_SERVICE_ID",
    "DRAFT_PRIMARY_KEY",
    "DRAFT_SECONDARY_KEY",
    "PERM_ADVANCED",
    "PERM_EU_COVID_CERT",
    "PERM_PAYEE",
    "PERM_THIRD_PARTY",
    "SUBSCRIPTION_KEY_HEADER",
    "SandboxService",
    "create_app",
    "demo_services",
]

API_PREFIX = "/api/v1"
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"

PERM_ADVANCED = "ADVANCED"  # ApiMessageWriteAdvanced + ApiMessageReadAdvanced
PERM_PAYEE = "payee"  # ApiMessageWriteWithPayee
PERM_THIRD_PARTY = "third_party"  # ApiThirdPartyMessageWrite
PERM_EU_COVID_CERT = "eu_covid_cert"  # ApiMessageWriteEUCovidCert

DEMO_SERVICE_ID = "01DEMOSERVICE0000000000000"
DEMO_PRIMARY_KEY = "sandbox-demo-primary-key"
DEMO_SECONDARY_KEY = "sandbox-demo-secondary-key"
DEMO_DRAFT_SERVICE_ID = "01DEMODRAFTSERVICE00000000"
DRAFT_PRIMARY_KEY = "sandbox-draft-primary-key"
DRAFT_SECONDARY_KEY = "sandbox-draft-secondary-key"

PROBLEM_JSON = "application/problem+json"
_MISSING_KEY = (
    "Access denied due to missing subscription key. "
    "Make sure to include subscription key when making requests to an API."
)
_INVALID_KEY = (
    "Access denied due to invalid subscription key. "
    "Make sure to provide a valid key for an active subscription."
)
_NOT_ALLOWED_TITLE = "You are not allowed here"
_DEFAULT_TTL = 3_600
_DEFAULT_HANG = 30.0
_MAX_CALLS = 100_000  # the call log keeps the most recent calls only


@dataclass
class SandboxService:
    """An App IO service as the sandbox sees it (one subscription, two keys).

    ``sandbox=True`` is a draft service: it may only write to ``authorized_recipients``
    and ``AAAAAA00A00A000A``. ``permissions`` holds ``PERM_*`` names.
    ``max_allowed_payment_amount`` is in cents; App IO's default is 0 (no payments).
    """

    service_id: str
    name: str
    primary_key: str
    secondary_key: str
    sandbox: bool = False
    authorized_recipients: Collection[str] = frozenset()
    permissions: Collection[str] = frozenset()
    max_allowed_payment_amount: int = 0
    organization_fiscal_code: str = "00000000000"
    organization_name: str = "Comune di Prova"

    def __post_init__(self) -> None:
        self.authorized_recipients = frozenset(self.authorized_recipients)
        self.permissions = frozenset(self.permissions)

    def may_write_to(self, fiscal_code: str) -> bool:
        return (
            not self.sandbox
            or fiscal_code == SANDBOX_FISCAL_CODE
            or fiscal_code in self.authorized_recipients
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "service_id": self.service_id,
            "name": self.name,
            "primary_key": self.primary_key,
            "secondary_key": self.secondary_key,
            "sandbox": self.sandbox,
            "authorized_recipients": sorted(self.authorized_recipients),
            "permissions": sorted(self.permissions),
            "max_allowed_payment_amount": self.max_allowed_payment_amount,
            "organization_fiscal_code": self.organization_fiscal_code,
        }


def demo_services() -> list[SandboxService]:
    """Fresh copies of the two demo services (these keys are sandbox keys, not secrets).

    - ``DEMO_SERVICE_ID``: a published service with ADVANCED and payee permissions and a
      payment cap of 1,000,000 cents;
    - ``DEMO_DRAFT_SERVICE_ID``: a draft (``sandbox=True``) with no permissions and no
      authorized recipient besides ``AAAAAA00A00A000A``.
    """
    return [
        SandboxService(
            DEMO_SERVICE_ID,
            "Servizio demo Sportello",
            DEMO_PRIMARY_KEY,
            DEMO_SECONDARY_KEY,
            permissions={PERM_ADVANCED, PERM_PAYEE},
            max_allowed_payment_amount=1_000_000,
            organization_fiscal_code="00000000001",
        ),
        SandboxService(
            DEMO_DRAFT_SERVICE_ID,
            "Servizio demo in bozza",
            DRAFT_PRIMARY_KEY,
            DRAFT_SECONDARY_KEY,
            sandbox=True,
            organization_fiscal_code="00000000001",
        ),
    ]


@dataclass(slots=True)
class _Message:
    id: str
    service_id: str
    fiscal_code: str
    content: dict[str, Any]
    time_to_live: int
    feature_level_type: str
    created_at: str
    accepted_at: float
    key: str
    final_status: str | None = None


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    hang: float | None
    after_processing: bool
    operations: frozenset[str] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "status": self.status,
            "hang": self.hang,
            "after_processing": self.after_processing,
            "operations": sorted(self.operations) if self.operations is not None else None,
        }


@dataclass
class _State:
    services: dict[str, SandboxService]
    population: Population
    rate_limit: int
    rate_window: float
    processing_delay: float
    clock: Clock
    spec: SpecChecker | None
    initial_services: list[SandboxService] = field(default_factory=list)
    initial_population: Population = field(default_factory=Population)
    keys: dict[str, tuple[SandboxService, str]] = field(default_factory=dict)
    messages: dict[str, _Message] = field(default_factory=dict)
    windows: dict[str, deque[float]] = field(default_factory=dict)
    faults: list[_Fault] = field(default_factory=list)
    calls: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_MAX_CALLS))
    violations: list[SpecViolation] = field(default_factory=list)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def index_keys(self) -> None:
        self.keys = {}
        for service in self.services.values():
            self.keys[service.primary_key] = (service, "primary")
            self.keys[service.secondary_key] = (service, "secondary")

    def reset(self) -> None:
        self.services = {s.service_id: replace(s) for s in self.initial_services}
        self.population = self.initial_population.copy()
        self.index_keys()
        self.messages.clear()
        self.windows.clear()
        self.faults.clear()
        self.calls.clear()
        self.violations.clear()

    def status_of(self, message: _Message) -> str:
        """ACCEPTED until ``processing_delay`` has passed, then PROCESSED or REJECTED
        (decided once, on the first look after the delay)."""
        if message.final_status is None:
            if self.clock.monotonic() - message.accepted_at < self.processing_delay:
                return "ACCEPTED"
            citizen = self.population.get(message.fiscal_code)
            delivered = (
                citizen is not None
                and citizen.inbox_enabled
                and citizen.sender_allowed(message.service_id)
            )
            message.final_status = "PROCESSED" if delivered else "REJECTED"
        return message.final_status


STATE = web.AppKey("io_sandbox_state", _State)
_SERVICE = web.RequestKey("io_sandbox_service", SandboxService)
_KEY_SLOT = web.RequestKey("io_sandbox_key_slot", str)


# -- responses -------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type=content_type,
    )


def _problem(status: int, title: str, detail: str) -> web.Response:
    """A ``ProblemJson`` as App IO's backend (``@pagopa/ts-commons``) sends it."""
    return _json({"detail": detail, "status": status, "title": title}, status, PROBLEM_JSON)


def _gateway(status: int, message: str) -> web.Response:
    """An answer of the Azure API gateway in front of App IO."""
    return _json({"statusCode": status, "message": message}, status)


def _not_allowed(detail: str) -> web.Response:
    return _problem(403, _NOT_ALLOWED_TITLE, detail)


def _recipient_forbidden() -> web.Response:
    return _problem(
        403, "Recipient forbidden", "You are not allowed to issue requests for the recipient."
    )


def _invalid(type_name: str, problems: list[str]) -> web.Response:
    return _problem(400, f"Invalid {type_name}", "\n".join(problems))


async def _read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _context(request: web.Request) -> tuple[_State, SandboxService, str]:
    return request.app[STATE], request[_SERVICE], request[_KEY_SLOT]


# -- API handlers ------------------------------------------------------------------------


def _profile_answer(state: _State, service: SandboxService, fiscal_code: str) -> web.Response:
    # A draft service learns nothing about fiscal codes it may not write to: 403, not 404.
    if not service.may_write_to(fiscal_code):
        return _recipient_forbidden()
    citizen = state.population.get(fiscal_code)
    if citizen is None or not citizen.inbox_enabled:
        return _problem(
            404, "Profile not found", "The profile you requested was not found in the system."
        )
    return _json(
        {
            "sender_allowed": citizen.sender_allowed(service.service_id),
            "preferred_languages": list(citizen.preferred_languages),
        }
    )


async def get_profile_by_post(request: web.Request) -> web.Response:
    state, service, _ = _context(request)
    body = await _read_json(request)
    problems = check_fiscal_code_payload(body)
    if problems:
        return _invalid("FiscalCodePayload", problems)
    return _profile_answer(state, service, body["fiscal_code"])


async def get_profile(request: web.Request) -> web.Response:
    state, service, _ = _context(request)
    fiscal_code = request.match_info["fiscal_code"]
    if not is_fiscal_code(fiscal_code):
        return _invalid("FiscalCode", [problem_line(fiscal_code, "root", "FiscalCode")])
    return _profile_answer(state, service, fiscal_code)


def _permission_problem(service: SandboxService, body: dict[str, Any]) -> web.Response | None:
    """App IO's ``AzureAllowBodyPayloadMiddleware`` checks, in App IO's order."""
    content = body["content"]
    permissions = service.permissions
    if "eu_covid_cert" in content and PERM_EU_COVID_CERT not in permissions:
        return _not_allowed("You do not have enough permissions to send an EUCovidCert message")
    payment = content.get("payment_data")
    if isinstance(payment, dict) and "payee" in payment and PERM_PAYEE not in permissions:
        return _not_allowed(
            "You do not have enough permissions to send a payment message with payee"
        )
    if body.get("feature_level_type") == "ADVANCED" and PERM_ADVANCED not in permissions:
        return _not_allowed("You do not have enough permissions to send a Premium message")
    if "third_party_data" in content and PERM_THIRD_PARTY not in permissions:
        return _not_allowed("You do not have enough permissions to send a third party message")
    return None


async def submit_message(request: web.Request) -> web.Response:
    state, service, slot = _context(request)
    path_fiscal_code = request.match_info.get("fiscal_code")
    if path_fiscal_code is not None and not is_fiscal_code(path_fiscal_code):
        return _invalid("FiscalCode", [problem_line(path_fiscal_code, "root", "FiscalCode")])
    body = await _read_json(request)
    problems = check_new_message(body)
    if problems:
        return _invalid("NewMessage", problems)
    denied = _permission_problem(service, body)
    if denied is not None:
        return denied
    body_fiscal_code = body.get("fiscal_code")
    if path_fiscal_code is not None and body_fiscal_code is not None:
        return _problem(
            400,
            "Bad parameters",
            "The fiscalcode parameter must be specified in the path or in the payload but not "
            "in both",
        )
    fiscal_code = path_fiscal_code or body_fiscal_code
    if fiscal_code is None:
        return _problem(
            400,
            "Bad parameters",
            "The fiscalcode parameter must be specified in the path or in the payload",
        )
    content = dict(body["content"])
    feature_level = body.get("feature_level_type", "STANDARD")
    third_party = content.get("third_party_data")
    if isinstance(third_party, dict):
        if not third_party.get("configuration_id"):
            return _problem(
                403,
                "No configuration id for remote content",
                "You did not send any configuration id for your remote content in third_party_data",
            )
        if feature_level != "ADVANCED" and third_party.get("has_attachments") is True:
            return _problem(
                403,
                "Attachments call forbidden",
                "You are not allowed to send messages with attachmens with STANDARD messages, "
                "please use ADVANCED",
            )
    if not service.may_write_to(fiscal_code):
        return _recipient_forbidden()
    payment = content.get("payment_data")
    if isinstance(payment, dict) and payment["amount"] > service.max_allowed_payment_amount:
        return _problem(
            400,
            "Error while sending payment metadata",
            f"The requested amount ({payment['amount']} cents) exceeds the maximum allowed "
            f"for this service ({service.max_allowed_payment_amount} cents)",
        )
    if isinstance(payment, dict):
        payment = {"invalid_after_due_date": False, **payment}
        payment.setdefault("payee", {"fiscal_code": service.organization_fiscal_code})
        content["payment_data"] = payment
    now = state.clock.now()
    message_id = str(ULID.from_datetime(now))
    state.messages[message_id] = _Message(
        id=message_id,
        service_id=service.service_id,
        fiscal_code=fiscal_code,
        content=content,
        time_to_live=body.get("time_to_live", _DEFAULT_TTL),
        feature_level_type=feature_level,
        created_at=js_timestamp(now),
        accepted_at=state.clock.monotonic(),
        key=slot,
    )
    response = _json({"id": message_id}, 201)
    response.headers["Location"] = f"{API_PREFIX}/messages/{fiscal_code}/{message_id}"
    return response


async def get_message(request: web.Request) -> web.Response:
    state, service, _ = _context(request)
    fiscal_code = request.match_info["fiscal_code"]
    if not is_fiscal_code(fiscal_code):
        return _invalid("FiscalCode", [problem_line(fiscal_code, "root", "FiscalCode")])
    message = state.messages.get(request.match_info["id"])
    if message is None or message.fiscal_code != fiscal_code:
        return _problem(
            404, "Message not found", "The message that you requested was not found in the system."
        )
    if message.service_id != service.service_id:
        return _not_allowed(
            "You do not have enough permission to complete the operation you requested"
        )
    status = state.status_of(message)
    public: dict[str, Any] = {
        "id": message.id,
        "fiscal_code": message.fiscal_code,
        "time_to_live": message.time_to_live,
        "created_at": message.created_at,
        "sender_service_id": message.service_id,
        "feature_level_type": message.feature_level_type,
    }
    answer: dict[str, Any] = {"message": public, "status": status}
    if status == "PROCESSED":
        public["content"] = message.content
        answer["notification"] = {"webhook": "SENT"}
    if message.feature_level_type == "ADVANCED" and PERM_ADVANCED in service.permissions:
        # App IO does not share read receipts with services yet: always UNAVAILABLE
        answer["read_status"] = "UNAVAILABLE"
        if "payment_data" in message.content:
            answer["payment_status"] = "NOT_PAID"
    return _json(answer)


# -- gateway: key, rate limit, faults, call log ----------------------------------------------


def _rate_check(
    state: _State, service: SandboxService
) -> tuple[web.Response | None, dict[str, str]]:
    if state.rate_limit <= 0:
        return None, {}
    now = state.clock.monotonic()
    window = state.windows.setdefault(service.service_id, deque())
    cutoff = now - state.rate_window
    while window and window[0] <= cutoff:
        window.popleft()
    if len(window) >= state.rate_limit:
        retry_after = max(1, math.ceil(window[0] + state.rate_window - now))
        response = _gateway(429, f"Rate limit is exceeded. Try again in {retry_after} seconds.")
        response.headers["x-rate-limit-limit"] = str(state.rate_limit)
        response.headers["x-rate-limit-remaining"] = "0"
        response.headers["x-rate-limit-retry-after"] = str(retry_after)
        return response, {}
    window.append(now)
    remaining = state.rate_limit - len(window)
    return None, {
        "x-rate-limit-limit": str(state.rate_limit),
        "x-rate-limit-remaining": str(remaining),
    }


def _take_fault(state: _State, operation: str, after_processing: bool) -> _Fault | None:
    for fault in state.faults:
        if fault.after_processing != after_processing:
            continue
        if fault.operations is not None and operation not in fault.operations:
            continue
        fault.remaining -= 1
        if fault.remaining <= 0:
            state.faults.remove(fault)
        return fault
    return None


async def _apply_fault(state: _State, fault: _Fault) -> web.Response:
    if fault.hang is not None:
        try:
            await asyncio.wait_for(state.closing.wait(), fault.hang)
        except TimeoutError:
            pass
    if fault.status == 500:
        return _problem(500, "Internal server error", "Unable to store processing message")
    return _gateway(fault.status, "sandbox fault injection")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def io_gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What Azure APIM does in front of App IO, plus the sandbox's call log and faults."""
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    state = request.app[STATE]
    route = request.match_info.route
    operation = route.name if request.match_info.http_exception is None else None
    template = route.resource.canonical if route.resource is not None else request.path
    service: SandboxService | None = None
    slot: str | None = None
    response: web.StreamResponse
    rate_headers: dict[str, str] = {}
    if operation is None:
        response = _gateway(404, "Resource not found")
    else:
        key = request.headers.get(SUBSCRIPTION_KEY_HEADER)
        found = state.keys.get(key) if key else None
        if not key:
            response = _gateway(401, _MISSING_KEY)
        elif found is None:
            response = _gateway(401, _INVALID_KEY)
        else:
            service, slot = found
            limited, rate_headers = _rate_check(state, service)
            if limited is not None:
                response = limited
            else:
                request[_SERVICE] = service
                request[_KEY_SLOT] = slot
                fault = _take_fault(state, operation, after_processing=False)
                if fault is not None:
                    response = await _apply_fault(state, fault)
                else:
                    response = await handler(request)
                    fault = _take_fault(state, operation, after_processing=True)
                    if fault is not None:
                        response = await _apply_fault(state, fault)
        if response.status == 401:
            response.headers["WWW-Authenticate"] = (
                'AzureApiManagementKey realm="https://api.io.pagopa.it/api/v1",'
                f'name="{SUBSCRIPTION_KEY_HEADER}",type="header"'
            )
    response.headers.update(rate_headers)
    state.calls.append(
        {
            "operation": operation,
            "method": request.method,
            "route": template,
            "status": response.status,
            "service_id": service.service_id if service is not None else None,
            "key": slot,
        }
    )
    return response


@web.middleware
async def spec_check(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Record request and response bodies that do not match the official spec."""
    state = request.app[STATE]
    checker = state.spec
    if checker is None or not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    route = request.match_info.route
    resource = route.resource
    if request.match_info.http_exception is not None or resource is None:
        return await handler(request)
    path = resource.canonical.removeprefix(API_PREFIX)
    method = request.method
    response = await handler(request)
    if request.body_exists and 200 <= response.status < 300:
        # App IO accepted this body: the spec must accept it too
        body = await _read_json(request)
        for problem in checker.request_errors(method, path, body):
            state.violations.append(SpecViolation("request", method, path, None, problem))
    if isinstance(response, web.Response) and response.status < 500:
        try:
            payload = json.loads(response.body) if response.body else None  # type: ignore[arg-type]
        except ValueError:
            payload = None
        if checker.response_schema(method, path, response.status) is not None and payload is None:
            state.violations.append(
                SpecViolation("response", method, path, response.status, "body is not JSON")
            )
        for problem in checker.response_errors(method, path, response.status, payload):
            state.violations.append(
                SpecViolation("response", method, path, response.status, problem)
            )
    return response


# -- test-only routes --------------------------------------------------------------------


async def list_messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    service_id = request.query.get("service_id")
    fiscal_code = request.query.get("fiscal_code")
    out = []
    for message in state.messages.values():
        if service_id and message.service_id != service_id:
            continue
        if fiscal_code and message.fiscal_code != fiscal_code:
            continue
        out.append(
            {
                "id": message.id,
                "service_id": message.service_id,
                "fiscal_code": message.fiscal_code,
                "subject": message.content.get("subject"),
                "created_at": message.created_at,
                "key": message.key,
                "feature_level_type": message.feature_level_type,
                "status": state.status_of(message),
                "has_payment": "payment_data" in message.content,
            }
        )
    return _json({"messages": out, "count": len(out)})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return _json({"reset": True})


def _bad(detail: str) -> web.Response:
    return _problem(400, "Invalid sandbox request", detail)


async def add_faults(request: web.Request) -> web.Response:
    """``{"count": 1, "status": 503, "hang": null, "after_processing": false,
    "operations": ["submitMessageforUserWithFiscalCodeInBody"]}``"""
    state = request.app[STATE]
    body = await _read_json(request)
    if not isinstance(body, dict):
        return _bad("expected a JSON object")
    count, status, hang = body.get("count", 1), body.get("status", 503), body.get("hang")
    operations = body.get("operations")
    if not isinstance(count, int) or count < 1:
        return _bad("count must be a positive integer")
    if not isinstance(status, int) or not 400 <= status <= 599:
        return _bad("status must be an HTTP error status")
    if hang is True:
        hang = _DEFAULT_HANG
    if hang is not None and (not isinstance(hang, int | float) or hang < 0):
        return _bad("hang must be a number of seconds")
    if operations is not None and (
        not isinstance(operations, list) or not all(isinstance(o, str) for o in operations)
    ):
        return _bad("operations must be a list of operation ids")
    fault = _Fault(
        remaining=count,
        status=status,
        hang=float(hang) if hang is not None else None,
        after_processing=bool(body.get("after_processing", False)),
        operations=frozenset(operations) if operations is not None else None,
    )
    state.faults.append(fault)
    return _json({"faults": [f.as_dict() for f in state.faults]}, 201)


async def list_faults(request: web.Request) -> web.Response:
    return _json({"faults": [f.as_dict() for f in request.app[STATE].faults]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return _json({"faults": []})


async def list_calls(request: web.Request) -> web.Response:
    calls = list(request.app[STATE].calls)
    return _json({"calls": calls, "count": len(calls)})


async def list_services(request: web.Request) -> web.Response:
    services = request.app[STATE].services.values()
    return _json({"services": [s.as_dict() for s in services]})


async def set_key(request: web.Request) -> web.Response:
    """Regenerate (or set) a key, like App IO's ``PUT /manage/services/{id}/keys/{type}``:
    the old value stops working at once."""
    state = request.app[STATE]
    service = state.services.get(request.match_info["service_id"])
    which = request.match_info["which"]
    if service is None:
        return _problem(404, "Not Found", "no such sandbox service")
    if which not in ("primary", "secondary"):
        return _bad("the key is 'primary' or 'secondary'")
    body = await _read_json(request)
    value = body.get("key") if isinstance(body, dict) else None
    if value is None:
        value = f"sandbox-{secrets.token_hex(16)}"
    if not isinstance(value, str) or not value or value in state.keys:
        return _bad("key must be a new, non-empty string")
    if which == "primary":
        service.primary_key = value
    else:
        service.secondary_key = value
    state.index_keys()
    return _json({"primary_key": service.primary_key, "secondary_key": service.secondary_key})


async def put_citizen(request: web.Request) -> web.Response:
    """Create or change a profile: ``{"inbox_enabled", "blocked_services", "blocks_all",
    "preferred_languages"}`` (all optional)."""
    state = request.app[STATE]
    fiscal_code = request.match_info["fiscal_code"]
    if not is_fiscal_code(fiscal_code):
        return _bad("not a valid fiscal code")
    body = await _read_json(request)
    body = body if isinstance(body, dict) else {}
    current = state.population.get(fiscal_code) or Citizen(fiscal_code)
    try:
        citizen = Citizen(
            fiscal_code,
            inbox_enabled=bool(body.get("inbox_enabled", current.inbox_enabled)),
            blocked_services=frozenset(body.get("blocked_services", current.blocked_services)),
            blocks_all=bool(body.get("blocks_all", current.blocks_all)),
            preferred_languages=tuple(body.get("preferred_languages", current.preferred_languages)),
        )
    except TypeError:
        return _bad("blocked_services and preferred_languages must be lists")
    state.population.put(citizen)
    return _json(_citizen_dict(citizen))


async def delete_citizen(request: web.Request) -> web.Response:
    request.app[STATE].population.remove(request.match_info["fiscal_code"])
    return _json({"deleted": True})


def _citizen_dict(citizen: Citizen) -> dict[str, Any]:
    return {
        "fiscal_code": citizen.fiscal_code,
        "inbox_enabled": citizen.inbox_enabled,
        "blocked_services": sorted(citizen.blocked_services),
        "blocks_all": citizen.blocks_all,
        "preferred_languages": list(citizen.preferred_languages),
    }


async def list_population(request: web.Request) -> web.Response:
    """``?kind=allowed|blocked|inbox_disabled|not_on_io&service_id=...&limit=20``"""
    state = request.app[STATE]
    kind = request.query.get("kind", "allowed")
    service_id = request.query.get("service_id", DEMO_SERVICE_ID)
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        return _bad("limit must be an integer")
    codes = state.population.by_kind(kind, service_id)
    return _json({"kind": kind, "count": len(codes), "fiscal_codes": codes[: max(limit, 0)]})


async def list_violations(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return _json(
        {
            "enabled": state.spec is not None,
            "violations": [v.as_dict() for v in state.violations],
        }
    )


# -- app -----------------------------------------------------------------------------------


def create_app(
    *,
    services: Iterable[SandboxService] | None = None,
    population: Population | None = None,
    rate_limit: int = 150,
    rate_window: float = 5.0,
    processing_delay: float = 0.0,
    clock: Clock | None = None,
    spec_checker: SpecChecker | None = None,
) -> web.Application:
    """The App IO sandbox. ``rate_limit=0`` disables the 429s (benchmarks).

    ``services`` default to ``demo_services()``; they are copied, so changing keys through
    ``/__sandbox/`` never touches the caller's objects. ``population`` defaults to
    ``default_population()`` (``CF_BLOCKED`` blocks every configured service).
    ``spec_checker`` turns on spec checking of every body (see ``spec.py``).
    """
    if rate_limit < 0 or rate_window <= 0 or processing_delay < 0:
        raise ValueError("rate_limit, rate_window and processing_delay must not be negative")
    initial = [replace(s) for s in (services if services is not None else demo_services())]
    ids = [s.service_id for s in initial]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate service_id")
    keys = [k for s in initial for k in (s.primary_key, s.secondary_key)]
    if len(set(keys)) != len(keys) or not all(keys):
        raise ValueError("every key must be non-empty and unique")
    base_population = (
        population if population is not None else default_population(blocked_service_ids=ids)
    )
    state = _State(
        services={},
        population=Population(),
        rate_limit=rate_limit,
        rate_window=rate_window,
        processing_delay=processing_delay,
        clock=clock or SystemClock(),
        spec=spec_checker,
        initial_services=initial,
        initial_population=base_population.copy(),
    )
    state.reset()

    app = platform_app("io", "App IO services API")
    app[STATE] = state
    if spec_checker is not None:
        app.middlewares.append(spec_check)
    app.middlewares.append(io_gateway)

    async def on_shutdown(app: web.Application) -> None:
        app[STATE].closing.set()

    app.on_shutdown.append(on_shutdown)
    router = app.router
    router.add_post(f"{API_PREFIX}/profiles", get_profile_by_post, name="getProfileByPOST")
    router.add_get(f"{API_PREFIX}/profiles/{{fiscal_code}}", get_profile, name="getProfile")
    router.add_post(
        f"{API_PREFIX}/messages",
        submit_message,
        name="submitMessageforUserWithFiscalCodeInBody",
    )
    router.add_post(
        f"{API_PREFIX}/messages/{{fiscal_code}}", submit_message, name="submitMessageforUser"
    )
    router.add_get(f"{API_PREFIX}/messages/{{fiscal_code}}/{{id}}", get_message, name="getMessage")

    router.add_get("/__sandbox/messages", list_messages)
    router.add_post("/__sandbox/reset", reset)
    router.add_get("/__sandbox/faults", list_faults)
    router.add_post("/__sandbox/faults", add_faults)
    router.add_delete("/__sandbox/faults", clear_faults)
    router.add_get("/__sandbox/calls", list_calls)
    router.add_get("/__sandbox/services", list_services)
    router.add_put("/__sandbox/services/{service_id}/keys/{which}", set_key)
    router.add_get("/__sandbox/population", list_population)
    router.add_put("/__sandbox/citizens/{fiscal_code}", put_citizen)
    router.add_delete("/__sandbox/citizens/{fiscal_code}", delete_citizen)
    router.add_get("/__sandbox/spec-violations", list_violations)
    return app
