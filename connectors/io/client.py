"""``IoClient``: the App IO API for public bodies (send messages to citizens).

One client per App IO service (one subscription, so one key pair). See README.md for the
error mapping, the key rotation and pacing contract, and what is not covered.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from contextvars import ContextVar
from typing import Any, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from ..base import BaseConnector, Response
from ..errors import ProtocolError, SigningError, UpstreamError
from ..http1 import LeanHttpClient
from ..retry import RetryPolicy, Sleep
from ..signing import OutgoingRequest
from .errors import InvalidPayload, SenderNotAllowed, map_io_error
from .models import (
    EncodedMessage,
    ExternalMessageResponseWithContent,
    FiscalCodePayload,
    LimitedProfile,
    NewMessage,
    describe_validation_error,
    fiscal_code_body,
)

__all__ = [
    "PRODUCTION_BASE_URL",
    "SUBSCRIPTION_KEY_HEADER",
    "IoClient",
    "KeyName",
    "KeyProvider",
    "Pacer",
]

log = logging.getLogger("sportello.connectors.io")

PRODUCTION_BASE_URL = "https://api.io.pagopa.it/api/v1"
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"

KeyName = Literal["primary", "secondary"]
#: Returns the current value of a subscription key (plain or async callable).
KeyProvider = Callable[[], str | Awaitable[str]]
#: Awaited with the key name before every HTTP attempt; may sleep to respect a rate limit.
#: It may return a callable that ``take_slot`` awaits right before the call the slot was
#: taken for (e.g. to move the logged call to the moment it is really made).
Pacer = Callable[[str], Awaitable["Callable[[], Awaitable[None]] | None"]]

_M = TypeVar("_M", bound=BaseModel)
_MESSAGE_ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
# The key slot chosen for the call in progress (set around each request: see _with_key).
_KEY_SLOT: ContextVar[KeyName | None] = ContextVar("sportello_io_key_slot", default=None)
# Set by ``take_slot``: the next paced call of this task already has its rate-limit slot
# (the value: what to await right before that call, or True when the pacer gave nothing).
_SLOT_TAKEN: ContextVar[Callable[[], Awaitable[None]] | bool] = ContextVar(
    "sportello_io_slot_taken", default=False
)
# Request bodies are serialised here (once), so they go to BaseConnector as bytes.
_JSON_HEADERS = {"Content-Type": "application/json"}


class _IoKeySigner:
    """Signer run by ``BaseConnector`` on every attempt: pace, then set the key header."""

    def __init__(self, client: IoClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "IoKeySigner()"

    async def sign(self, request: OutgoingRequest) -> None:
        slot = _KEY_SLOT.get() or self._client.active_key
        await self._client._pace(slot)
        request.headers[SUBSCRIPTION_KEY_HEADER] = await self._client._key(slot)


class _SingleAttempt(BaseConnector):
    """Same session, URL and signer as the client, but never retries (``submit_message``)."""

    platform = "io"


class IoClient(BaseConnector):
    """App IO client for one service.

    ``primary_key`` / ``secondary_key`` return the service's subscription keys (called on
    every attempt, so a rotated value is picked up). The primary key is used first; on a
    401 the same call is made once with the other key, and the key that worked becomes
    ``active_key`` for the following calls. ``pacer(key_name)`` is awaited before every
    HTTP attempt, retries and the 401 fallback included.

    ``retry`` applies to the profile and message-status reads (429 and 5xx are retried).
    ``submit_message`` is never retried: App IO has no idempotency key.

    ``transport`` (a ``LeanHttpClient``) carries the calls instead of ``session`` when
    given: about a third of aiohttp's CPU per call, for campaigns (see ``http1.py``).
    """

    platform = "io"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = PRODUCTION_BASE_URL,
        *,
        primary_key: KeyProvider,
        secondary_key: KeyProvider | None = None,
        pacer: Pacer | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        transport: LeanHttpClient | None = None,
    ) -> None:
        signer = _IoKeySigner(self)
        super().__init__(
            session,
            base_url,
            signer=signer,
            retry=retry,
            timeout=timeout,
            sleep=sleep,
            transport=transport,
        )
        self._providers: dict[KeyName, KeyProvider] = {"primary": primary_key}
        if secondary_key is not None:
            self._providers["secondary"] = secondary_key
        self._pacer = pacer
        self._active: KeyName = "primary"
        self._single_attempt = _SingleAttempt(
            session,
            base_url,
            signer=signer,
            retry=RetryPolicy(max_attempts=1),
            timeout=timeout,
            sleep=sleep,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"IoClient({self.base_url!r}, active_key={self._active!r})"

    @property
    def active_key(self) -> KeyName:
        """The key sent first: ``"primary"`` until a 401 made the client switch."""
        return self._active

    # -- API ---------------------------------------------------------------------------

    async def get_profile(self, fiscal_code: str) -> LimitedProfile:
        """``POST /profiles`` (getProfileByPOST): the fiscal code travels in the body.

        Raises ``ProfileNotFound`` (no profile, or inbox disabled), ``RecipientForbidden``
        (a draft service asking about a fiscal code outside its authorized recipients).
        """
        body = fiscal_code_body(fiscal_code)
        if body is None:  # invalid: pydantic says why
            _validated(FiscalCodePayload, fiscal_code=fiscal_code)
            raise InvalidPayload("fiscal_code: not a valid fiscal code", platform="io")
        response = await self._call(
            "POST", "/profiles", body=body, expected=(200,), operation="profile"
        )
        return _parse(LimitedProfile, response, "profile")

    async def get_profile_by_path(self, fiscal_code: str) -> LimitedProfile:
        """``GET /profiles/{fiscal_code}`` (getProfile). Deprecated by App IO because the
        fiscal code ends up in the URL (and in proxy logs): prefer ``get_profile``."""
        payload = _validated(FiscalCodePayload, fiscal_code=fiscal_code)
        response = await self._call(
            "GET", f"/profiles/{payload.fiscal_code}", expected=(200,), operation="profile"
        )
        return _parse(LimitedProfile, response, "profile")

    async def submit_message(self, message: NewMessage | EncodedMessage) -> str:
        """``POST /messages`` (fiscal code in the body): the new message id.

        ``message`` may be an ``EncodedMessage`` (validated and serialised beforehand, e.g.
        when the campaign was created): its body is sent as it is.

        One attempt only (a 401 is still retried once with the other key: the gateway
        refused it, so nothing was created). On a timeout, a dropped connection or a 5xx
        the message may exist anyway: ``errors.outcome_unknown(error)`` says so, and the
        caller decides whether to send again.
        """
        encoded = message if isinstance(message, EncodedMessage) else EncodedMessage.encode(message)
        response = await self._call(
            "POST",
            "/messages",
            body=encoded.body,
            expected=(201,),
            operation="submit",
            single_attempt=True,
        )
        return self._created_id(response, message.fiscal_code)

    async def send_if_allowed(self, message: NewMessage | EncodedMessage) -> str:
        """The documented send flow: check the profile, then submit.

        Raises ``ProfileNotFound`` or ``SenderNotAllowed`` (nothing sent) before submitting.
        """
        profile = await self.get_profile(message.fiscal_code)
        if not profile.sender_allowed:
            raise SenderNotAllowed(
                "the citizen does not accept messages from this service (sender_allowed=false)",
                platform=self.platform,
            )
        return await self.submit_message(message)

    async def get_message(
        self, fiscal_code: str, message_id: str
    ) -> ExternalMessageResponseWithContent:
        """``GET /messages/{fiscal_code}/{id}``: status (ACCEPTED → PROCESSED or REJECTED...)
        and, once processed, the content. Raises ``MessageNotFound``."""
        payload = _validated(FiscalCodePayload, fiscal_code=fiscal_code)
        if not _MESSAGE_ID_RE.match(message_id):
            raise InvalidPayload("message_id: not a valid App IO message id", platform="io")
        response = await self._call(
            "GET",
            f"/messages/{payload.fiscal_code}/{message_id}",
            expected=(200,),
            operation="message",
        )
        return _parse(ExternalMessageResponseWithContent, response, "message")

    # -- internals ---------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        expected: Collection[int],
        operation: str,
        single_attempt: bool = False,
    ) -> Response:
        transport: BaseConnector = self._single_attempt if single_attempt else self
        slot = self._active
        try:
            return await self._with_key(slot, transport, method, path, body, expected)
        except UpstreamError as error:
            other = self._other(slot)
            if error.status != 401 or other is None:
                raise map_io_error(error, operation=operation) from error
            log.warning("App IO refused the %s key (401): retrying with the %s key", slot, other)
        try:
            response = await self._with_key(other, transport, method, path, body, expected)
        except UpstreamError as error:
            raise map_io_error(error, operation=operation) from error
        if self._active != other:
            log.warning("App IO: now using the %s key", other)
            self._active = other
        return response

    async def _with_key(
        self,
        slot: KeyName,
        transport: BaseConnector,
        method: str,
        path: str,
        body: bytes | None,
        expected: Collection[int],
    ) -> Response:
        token = _KEY_SLOT.set(slot)
        try:
            if body is None:
                return await transport.request(method, path, expected=expected)
            return await transport.request(
                method, path, data=body, headers=_JSON_HEADERS, expected=expected
            )
        finally:
            _KEY_SLOT.reset(token)

    def _other(self, slot: KeyName) -> KeyName | None:
        other: KeyName = "secondary" if slot == "primary" else "primary"
        return other if other in self._providers else None

    async def take_slot(self) -> None:
        """Wait for the pacer now; the next call made by this task then goes without waiting.

        For a caller that records something between the wait and the call: the hub commits
        a message ``sending`` only once its submit can go at once, so a crash while waiting
        for App IO's rate limit leaves the message ``queued`` (nothing was sent), not
        ``unknown``. Only the first attempt of that call is covered: a retry or the 401
        fallback waits for its own slot.
        """
        confirm = await self._pacer(self._active) if self._pacer is not None else None
        _SLOT_TAKEN.set(confirm or True)

    async def _pace(self, slot: KeyName) -> None:
        taken = _SLOT_TAKEN.get()
        if taken:
            _SLOT_TAKEN.set(False)  # taken ahead by take_slot for this call
            if callable(taken):
                await taken()
            return
        if self._pacer is not None:
            await self._pacer(slot)

    async def _key(self, slot: KeyName) -> str:
        provider = self._providers.get(slot)
        if provider is None:
            raise SigningError(f"no {slot} key configured", platform=self.platform)
        value = provider()
        if not isinstance(value, str) and inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise SigningError(f"the {slot} key provider returned no key", platform=self.platform)
        if "\r" in value or "\n" in value or "\0" in value:
            # never echo the value: it is a secret
            raise SigningError(f"the {slot} key has control characters", platform=self.platform)
        return value

    def _created_id(self, response: Response, fiscal_code: str) -> str:
        """The id of a created message, from the body, else from ``Location``.

        Raising here would invite a resend of a message App IO has stored, so a missing or
        inconsistent ``Location`` is only logged; only a 201 with no id anywhere raises
        (non-retryable ``ProtocolError``).
        """
        location = response.headers.get("Location", "")
        try:
            body = response.json()
        except ProtocolError:
            body = None
        created_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(created_id, str) or not created_id:
            tail = location.rstrip("/").rsplit("/", 1)[-1] if location else ""
            if not _MESSAGE_ID_RE.match(tail):
                raise ProtocolError(
                    "App IO answered 201 without a message id (the message was created)",
                    platform=self.platform,
                    status=response.status,
                    request_id=response.request_id,
                )
            log.warning("App IO 201 without an id in the body: id taken from Location")
            return tail
        if not location:
            log.warning("App IO 201 without a Location header (message %s)", created_id)
        elif not location.endswith(f"/messages/{fiscal_code}/{created_id}"):
            log.warning("App IO 201 Location does not match message %s", created_id)
        return created_id


def _validated(model: type[_M], **fields: Any) -> _M:
    """Build a request model; an invalid argument raises ``InvalidPayload`` (no value echoed)."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise InvalidPayload(describe_validation_error(exc), platform="io") from None


def _parse(model: type[_M], response: Response, operation: str) -> _M:
    try:
        return model.model_validate_json(response.body)  # parse and validate in one pass
    except ValidationError:
        pass  # the slower path below names the problem as it always did
    try:
        return model.model_validate(response.json())
    except ValidationError as exc:
        raise ProtocolError(
            f"unexpected {operation} answer: {describe_validation_error(exc)}",
            platform="io",
            status=response.status,
            request_id=response.request_id,
        ) from None
