"""``SendClient``: SEND (Piattaforma Notifiche Digitali) B2B API for senders.

Every call carries the sender's ``x-api-key`` and a PDND voucher (``Authorization:
Bearer``) for the SEND purpose, from the PDND connector (cached per purpose, refreshed
before it expires; after a 401 the cached voucher is dropped and the call is signed again).

Retry rules (see docs/send.md):

- reads (``GET``), the preload (it only reserves upload slots), the upload to the
  presigned URL (same key, same bytes, same checksum: storing it twice stores the same
  file), the cancellation (SEND answers ``NOTIFICATION_ALREADY_CANCELLED``) and a stream
  deletion are retried on 429 (``Retry-After``), 5xx, timeouts and dropped connections;
- ``send_notification`` is retried on an outcome-unknown failure (timeout, dropped answer,
  5xx) **only** when the request has an ``idempotenceToken``: SEND refuses a second request
  with the same ``paProtocolNumber`` and token (409 ``PN_GENERIC_INVALIDPARAMETER_DUPLICATED``),
  and a 409 met on a retry is resolved by asking SEND for the first request
  (``request_status``), never by sending with another token. Without a token only the
  failures where nothing reached SEND (connection refused, 429, a 401 on the voucher)
  are retried;
- ``create_stream`` likewise: a second stream would be created, so only nothing-sent
  failures are retried.

4xx answers are permanent (typed errors in ``errors.py``). The progress streams give
``retry-after`` in milliseconds: ``EventsPage.retry_after_ms``, and a 429 there is
converted to seconds on the error's ``retry_after``.

Nothing here logs tax ids, names, addresses or the documents: log lines carry IUNs,
request ids and error codes only.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from xml.etree import ElementTree

import aiohttp
from pydantic import BaseModel, ValidationError
from yarl import URL

from ..base import BaseConnector, Response
from ..errors import (
    ConnectError,
    ConnectorError,
    ConnectorTimeout,
    ProtocolError,
    RateLimited,
    SigningError,
    TransportError,
    error_from_response,
)
from ..http1 import BadResponse, ConnectFailed, LeanHttpClient
from ..pdnd.client import PdndClient
from ..retry import RetryPolicy, Sleep
from ..signing import OutgoingRequest
from .errors import (
    DuplicateNotification,
    NotificationRefused,
    SendUnauthorized,
    UploadRejected,
    map_send_error,
)
from .models import (
    IUN_PATTERN,
    LAST_EVENT_ID_PATTERN,
    CancellationStatus,
    EventsPage,
    LegalFactDownload,
    LegalFactListElement,
    NewNotificationRequest,
    NewNotificationResponse,
    NotificationPrice,
    NotificationRequestStatus,
    PaymentEventF24,
    PaymentEventPagoPa,
    PreLoadRequest,
    PreLoadResponse,
    ProgressEvent,
    SentNotification,
    StreamListElement,
    StreamMetadata,
    StreamRequest,
    UploadedFile,
    sha256_b64,
)

__all__ = [
    "API_KEY_HEADER",
    "PRODUCTION_BASE_URL",
    "UAT_BASE_URL",
    "KeyProvider",
    "SendClient",
]

log = logging.getLogger("sportello.connectors.send")

PRODUCTION_BASE_URL = "https://api.notifichedigitali.it"
UAT_BASE_URL = "https://api.uat.notifichedigitali.it"
API_KEY_HEADER = "x-api-key"
MAX_PRELOAD = 15

#: Returns the sender's API key (plain or async callable), asked on every attempt.
KeyProvider = str | Callable[[], str | Awaitable[str]]

_M = TypeVar("_M", bound=BaseModel)
_EVERY_STATUS = frozenset(range(100, 600))
_IUN = re.compile(IUN_PATTERN)
_LAST_EVENT_ID = re.compile(LAST_EVENT_ID_PATTERN)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DIGITS = re.compile(r"^\d+$")
_NOTIFICATION_REQUEST_ID = re.compile(r"^[A-Za-z0-9+/=]{36}$")
_LEGAL_FACT_ID = re.compile(r"^[A-Za-z0-9._-]{1,1024}$")


@dataclass(frozen=True)
class _NothingSentPolicy(RetryPolicy):
    """The same waits, but retries only failures where SEND did not act on the request."""

    def should_retry(self, error: BaseException) -> bool:
        if not super().should_retry(error):
            return False
        if isinstance(error, ConnectError | RateLimited):
            return True
        return isinstance(error, SendUnauthorized) and error.status == 401


def _nothing_sent(policy: RetryPolicy) -> RetryPolicy:
    return _NothingSentPolicy(**{f.name: getattr(policy, f.name) for f in fields(policy)})


class _SendSigner:
    """``x-api-key`` and the PDND voucher, on every attempt."""

    def __init__(self, api_key: KeyProvider, pdnd: PdndClient, purpose_id: str) -> None:
        self._api_key = api_key
        self._pdnd = pdnd
        self._purpose_id = purpose_id

    def __repr__(self) -> str:
        return f"SendSigner(purpose_id={self._purpose_id!r})"

    async def sign(self, request: OutgoingRequest) -> None:
        provider = self._api_key
        value: Any = provider() if callable(provider) else provider
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value or any(c in value for c in "\r\n\0"):
            raise SigningError("the SEND api key provider returned no usable key", platform="send")
        request.headers[API_KEY_HEADER] = value
        token = await self._pdnd.token(self._purpose_id)
        request.headers["Authorization"] = f"Bearer {token}"


class SendClient(BaseConnector):
    """SEND B2B client for one sender (one API key) and one PDND purpose.

    ``base_url`` is ``PRODUCTION_BASE_URL``, ``UAT_BASE_URL`` or the sandbox's URL.
    ``pdnd`` is the comune's PDND client; ``purpose_id`` its purpose for SEND's e-service.
    """

    platform = "send"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = PRODUCTION_BASE_URL,
        *,
        api_key: KeyProvider,
        pdnd: PdndClient,
        purpose_id: str,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        transport: LeanHttpClient | None = None,
    ) -> None:
        if not purpose_id:
            raise ValueError("purpose_id is required (the PDND purpose for SEND)")
        super().__init__(
            session,
            base_url,
            signer=_SendSigner(api_key, pdnd, purpose_id),
            retry=retry,
            timeout=timeout,
            sleep=sleep,
            transport=transport,
        )
        self.pdnd = pdnd
        self.purpose_id = purpose_id
        # Same session, URL and signer; retries only what SEND cannot have acted on.
        self._cautious: SendClient = copy.copy(self)
        self._cautious.retry_policy = _nothing_sent(self.retry_policy)

    def __repr__(self) -> str:
        return f"SendClient(base_url={self.base_url!r}, purpose_id={self.purpose_id!r})"

    # -- documents ---------------------------------------------------------------------

    async def preload(self, files: Sequence[PreLoadRequest]) -> list[PreLoadResponse]:
        """``POST /delivery/attachments/preload``: one upload slot per file (1 to 15)."""
        if not 1 <= len(files) <= MAX_PRELOAD:
            raise ValueError(f"preload 1 to {MAX_PRELOAD} files per call")
        response = await self._call(
            "POST", "/delivery/attachments/preload", json=[f.wire() for f in files]
        )
        data = response.json()
        if not isinstance(data, list) or len(data) != len(files):
            raise ProtocolError(
                "preload answer is not one slot per file",
                platform=self.platform,
                status=response.status,
                request_id=response.request_id,
            )
        return [_model(PreLoadResponse, item, response, "preload") for item in data]

    async def upload(
        self,
        slot: PreLoadResponse,
        content: bytes,
        *,
        content_type: str = "application/pdf",
        sha256: str | None = None,
    ) -> str:
        """Upload ``content`` to a preloaded slot; the ``x-amz-version-id`` SEND answered.

        Sends ``x-amz-meta-secret`` and ``x-amz-checksum-sha256`` (base64 SHA-256, sent as
        a header: the storage accepts it as a header or as the trailer the spec describes;
        ``sha256``: the caller's, else computed here; the storage refuses bytes that do
        not match it). Retried like a read: the same bytes to the same key.
        """
        headers = {
            "Content-Type": content_type,
            "x-amz-meta-secret": slot.secret,
            "x-amz-checksum-sha256": sha256 or sha256_b64(content),
        }
        _, answer_headers, _ = await self._presigned(slot.httpMethod, slot.url, content, headers)
        version = next(
            (v for k, v in answer_headers.items() if k.lower() == "x-amz-version-id"), ""
        )
        if not version:
            raise ProtocolError(
                "the upload answered 200 without x-amz-version-id", platform=self.platform
            )
        return version

    async def upload_files(
        self,
        contents: Sequence[bytes],
        *,
        content_type: str = "application/pdf",
        digests: Sequence[str] | None = None,
    ) -> list[UploadedFile]:
        """Preload and upload up to 15 files; their references for the notification request
        (``digests``: their base64 SHA-256 when the caller has them, else computed here)."""
        if digests is not None and len(digests) != len(contents):
            raise ValueError("one digest per file")
        requests = [
            PreLoadRequest(
                preloadIdx=str(i),
                contentType=content_type,  # type: ignore[arg-type]
                sha256=digests[i] if digests is not None else sha256_b64(c),
            )
            for i, c in enumerate(contents)
        ]
        slots = await self.preload(requests)
        by_idx = {s.preloadIdx: s for s in slots}
        uploaded: list[UploadedFile] = []
        for index, (request, content) in enumerate(zip(requests, contents, strict=True)):
            slot = by_idx.get(str(index)) or slots[index]
            version = await self.upload(
                slot, content, content_type=content_type, sha256=request.sha256
            )
            uploaded.append(
                UploadedFile(
                    key=slot.key,
                    version_token=version,
                    sha256=request.sha256,
                    content_type=content_type,
                )
            )
        return uploaded

    async def upload_file(
        self, content: bytes, *, content_type: str = "application/pdf"
    ) -> UploadedFile:
        """Preload and upload one file."""
        return (await self.upload_files([content], content_type=content_type))[0]

    # -- notification requests -----------------------------------------------------------

    async def send_notification(self, request: NewNotificationRequest) -> NewNotificationResponse:
        """``POST /delivery/v2.6/requests``: SEND answers 202 with a ``notificationRequestId``.

        202 only means the request is well formed: ask ``request_status`` (or read a stream)
        for ACCEPTED with the IUN, or REFUSED. See the module docstring for retries.
        """
        transport = self if request.idempotenceToken else self._cautious
        try:
            response = await transport._call(
                "POST", "/delivery/v2.6/requests", json=request.wire(), expected=(202,)
            )
        except DuplicateNotification as error:
            if error.attempts <= 1 or not request.idempotenceToken:
                raise
            # Our own earlier attempt reached SEND (its answer was lost): find it.
            log.info("send: duplicate on retry, resolving by paProtocolNumber+idempotenceToken")
            found = await self.request_status(
                pa_protocol_number=request.paProtocolNumber,
                idempotence_token=request.idempotenceToken,
            )
            return NewNotificationResponse(
                notificationRequestId=found.notificationRequestId,
                paProtocolNumber=request.paProtocolNumber,
                idempotenceToken=request.idempotenceToken,
            )
        return _parse(NewNotificationResponse, response, "notification request")

    async def request_status(
        self,
        notification_request_id: str | None = None,
        *,
        pa_protocol_number: str | None = None,
        idempotence_token: str | None = None,
    ) -> NotificationRequestStatus:
        """``GET /delivery/v2.6/requests``: WAITING, ACCEPTED (with ``iun``) or REFUSED
        (with ``errors``), by request id or by ``paProtocolNumber`` + ``idempotenceToken``."""
        params: dict[str, str] = {}
        if notification_request_id is not None:
            if not _NOTIFICATION_REQUEST_ID.match(notification_request_id):
                raise ValueError("not a notificationRequestId (36 base64 characters)")
            params["notificationRequestId"] = notification_request_id
        elif pa_protocol_number:
            params["paProtocolNumber"] = pa_protocol_number
            if idempotence_token:
                params["idempotenceToken"] = idempotence_token
        else:
            raise ValueError("pass notification_request_id or pa_protocol_number")
        response = await self._call("GET", "/delivery/v2.6/requests", params=params)
        return _parse(NotificationRequestStatus, response, "request status")

    async def wait_for_acceptance(
        self,
        notification_request_id: str,
        *,
        max_wait: float = 600.0,
        interval: float = 5.0,
    ) -> NotificationRequestStatus:
        """Poll ``request_status`` until ACCEPTED (returned) or REFUSED (``NotificationRefused``).

        Waits SEND's ``retryAfter`` when it gives one, else ``interval`` seconds;
        ``ConnectorTimeout`` after ``max_wait`` seconds of WAITING.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            status = await self.request_status(notification_request_id)
            if status.accepted:
                return status
            if status.refused:
                codes = ", ".join(e.code for e in status.errors) or "no error list"
                raise NotificationRefused(
                    f"SEND refused the notification request: {codes}",
                    refusal=status.errors,
                    notification_request_id=notification_request_id,
                    platform=self.platform,
                )
            wait = float(status.retryAfter) if status.retryAfter else interval
            if loop.time() + wait > deadline:
                raise ConnectorTimeout(
                    f"notification request still {status.notificationRequestStatus} "
                    f"after {max_wait:g}s",
                    platform=self.platform,
                    retryable=True,
                )
            await self._sleep(wait)

    # -- sent notifications --------------------------------------------------------------

    async def notification(self, iun: str) -> SentNotification:
        """``GET /delivery/v2.9/notifications/sent/{iun}``: the notification, its status
        history and its timeline."""
        response = await self._call("GET", f"/delivery/v2.9/notifications/sent/{_iun(iun)}")
        return _parse(SentNotification, response, "notification")

    async def legal_facts(self, iun: str) -> list[LegalFactListElement]:
        """``GET /delivery-push/v2.0/{iun}/legal-facts``: the legal facts made so far."""
        response = await self._call("GET", f"/delivery-push/v2.0/{_iun(iun)}/legal-facts")
        data = response.json()
        if not isinstance(data, list):
            raise ProtocolError("legal facts answer is not a list", platform=self.platform)
        return [_model(LegalFactListElement, item, response, "legal facts") for item in data]

    async def legal_fact_download(self, iun: str, legal_fact_id: str) -> LegalFactDownload:
        """``GET /delivery-push/{iun}/download/legal-facts/{legalFactId}``: file name, size
        and a short-lived download URL (or ``retryAfter`` while SEND is making it)."""
        fact_id = legal_fact_id.removeprefix("safestorage://")
        if not _LEGAL_FACT_ID.match(fact_id):
            raise ValueError("not a legal fact id")
        response = await self._call(
            "GET", f"/delivery-push/{_iun(iun)}/download/legal-facts/{fact_id}"
        )
        return _parse(LegalFactDownload, response, "legal fact download")

    async def download(self, url: str) -> bytes:
        """The bytes at a download URL SEND gave (a presigned URL: no credentials sent)."""
        _, _, body = await self._presigned("GET", url, None, {})
        return body

    async def legal_fact_pdf(self, iun: str, legal_fact_id: str) -> bytes:
        """Download a legal fact's PDF, waiting SEND's ``retryAfter`` while it is made."""
        for _ in range(10):
            meta = await self.legal_fact_download(iun, legal_fact_id)
            if meta.url:
                return await self.download(meta.url)
            await self._sleep(float(meta.retryAfter or 1.0))
        raise ConnectorTimeout("the legal fact is still not ready", platform=self.platform)

    async def cancel(self, iun: str) -> CancellationStatus:
        """``PUT /delivery-push/v2.0/notifications/cancel/{iun}`` (202)."""
        response = await self._call(
            "PUT", f"/delivery-push/v2.0/notifications/cancel/{_iun(iun)}", expected=(202,)
        )
        return _parse(CancellationStatus, response, "cancellation")

    async def price(self, pa_tax_id: str, notice_code: str) -> NotificationPrice:
        """``GET /delivery/v2.3/price/{paTaxId}/{noticeCode}``: the notification cost the
        citizen pays with this notice (euro cents)."""
        if len(pa_tax_id) != 11 or not _DIGITS.match(pa_tax_id):
            raise ValueError("paTaxId must be 11 digits")
        if len(notice_code) != 18 or not _DIGITS.match(notice_code):
            raise ValueError("noticeCode must be 18 digits")
        response = await self._call("GET", f"/delivery/v2.3/price/{pa_tax_id}/{notice_code}")
        return _parse(NotificationPrice, response, "price")

    async def payment_events(self, events: Sequence[PaymentEventPagoPa]) -> None:
        """``POST /delivery/events/payment/pagopa`` (204): the creditor tells SEND that these
        pagoPA notices were paid (the notifications move to PAID). Retried like a read: an
        event repeated names the same payment."""
        if not events:
            raise ValueError("at least one payment event")
        body = {"events": [e.wire() for e in events]}
        await self._call("POST", "/delivery/events/payment/pagopa", json=body, expected=(204,))

    async def payment_events_f24(self, events: Sequence[PaymentEventF24]) -> None:
        """``POST /delivery/events/payment/f24`` (204; deprecated in the bundle, still
        served): the sender tells SEND that F24s of these notifications were paid (SEND
        adds ``PAYMENT`` to the recipient's timeline). Retried like a read: SEND keeps one
        ``PAYMENT`` for a repeated event."""
        if not events:
            raise ValueError("at least one payment event")
        body = {"events": [e.wire() for e in events]}
        await self._call("POST", "/delivery/events/payment/f24", json=body, expected=(204,))

    # -- progress streams ------------------------------------------------------------------

    async def create_stream(self, request: StreamRequest) -> StreamMetadata:
        """``POST /delivery-progresses/v2.9/streams``. Not retried once it may have reached
        SEND (a retry would create a second stream)."""
        response = await self._cautious._call(
            "POST", "/delivery-progresses/v2.9/streams", json=request.wire()
        )
        return _parse(StreamMetadata, response, "stream")

    async def streams(self) -> list[StreamListElement]:
        response = await self._call("GET", "/delivery-progresses/v2.9/streams")
        data = response.json()
        if not isinstance(data, list):
            raise ProtocolError("stream list is not a list", platform=self.platform)
        return [_model(StreamListElement, item, response, "stream list") for item in data]

    async def stream(self, stream_id: str) -> StreamMetadata:
        response = await self._call("GET", f"/delivery-progresses/v2.9/streams/{_uuid(stream_id)}")
        return _parse(StreamMetadata, response, "stream")

    async def delete_stream(self, stream_id: str) -> None:
        await self._call(
            "DELETE", f"/delivery-progresses/v2.9/streams/{_uuid(stream_id)}", expected=(204,)
        )

    async def stream_events(self, stream_id: str, last_event_id: str | None = None) -> EventsPage:
        """``GET .../streams/{streamId}/events?lastEventId=``: the events after
        ``last_event_id`` (from the first when ``None``), in order. Store
        ``page.last_event_id`` with the events, and pass it to the next read: SEND drops
        the events up to it."""
        params: dict[str, str] = {}
        if last_event_id is not None:
            if not _LAST_EVENT_ID.match(last_event_id):
                raise ValueError("lastEventId is 38 digits starting with 0")
            params["lastEventId"] = last_event_id
        response = await self._call(
            "GET", f"/delivery-progresses/v2.9/streams/{_uuid(stream_id)}/events", params=params
        )
        data = response.json()
        if not isinstance(data, list):
            raise ProtocolError("stream events answer is not a list", platform=self.platform)
        events = [_model(ProgressEvent, item, response, "stream events") for item in data]
        return EventsPage(events=events, retry_after_ms=_int_header(response.headers))

    # -- internals -------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        expected: Sequence[int] = (200,),
    ) -> Response:
        return await self.request(method, path, json=json, params=params, expected=expected)

    async def _send(
        self, outgoing: OutgoingRequest, expected: frozenset[int], time_limit: float
    ) -> Response:
        """One attempt; SEND's answers are mapped here so the retry policy sees typed
        errors (a 401 is retried once the cached voucher is dropped)."""
        response = await super()._send(outgoing, _EVERY_STATUS, time_limit)
        if response.status in expected:
            return response
        error = error_from_response(self.platform, response.status, response.headers, response.body)
        if response.status == 429 and "/delivery-progresses/" in outgoing.url:
            millis = _int_header(response.headers)  # the streams count in milliseconds
            error.retry_after = millis / 1000.0 if millis is not None else error.retry_after
        mapped = map_send_error(error)
        if response.status == 401:
            self.pdnd.invalidate(self.purpose_id)
            mapped.retryable = True
        raise mapped

    async def _presigned(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A call to a presigned storage URL (no credentials), with the read retry policy."""
        if not url.startswith(("https://", "http://")):
            raise ProtocolError("SEND gave a storage URL that is not http(s)", platform="send")
        policy = self.retry_policy
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._presigned_once(method, url, data, headers)
            except ConnectorError as error:
                error.platform = error.platform or self.platform
                error.attempts = attempt
                if attempt >= policy.max_attempts or not policy.should_retry(error):
                    error.retries_spent = True
                    raise
                delay = policy.compute_delay(attempt, error)
                log.warning("send storage attempt %d failed (%s), retrying", attempt, error)
                await self._sleep(delay)

    async def _presigned_once(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        if self.transport is not None:
            status, answer_headers, body = await self._presigned_lean(
                self.transport, method, url, data, headers
            )
        else:
            status, answer_headers, body = await self._presigned_aiohttp(method, url, data, headers)
        if status == 200:
            return status, answer_headers, body
        code, message = _s3_error(body)
        if 400 <= status < 500 and status != 429:
            raise UploadRejected(
                f"the storage refused the {method}: {code or status}: {message or ''}".strip(),
                s3_code=code,
                platform=self.platform,
                status=status,
                body=body.decode("utf-8", errors="replace"),
            )
        raise error_from_response(self.platform, status, answer_headers, body)

    async def _presigned_lean(
        self,
        transport: LeanHttpClient,
        method: str,
        url: str,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            result = await transport.request(
                method, url, headers=headers, body=data or b"", time_limit=self.timeout
            )
        except TimeoutError as exc:
            raise ConnectorTimeout(f"storage: no answer within {self.timeout:g}s") from exc
        except ConnectFailed as exc:
            if isinstance(exc.__cause__, ssl.SSLCertVerificationError):  # will fail again
                raise TransportError("storage: TLS certificate error", retryable=False) from exc
            raise ConnectError(f"storage: {type(exc).__name__}") from exc
        except OSError as exc:  # ConnectionDropped and other socket errors
            raise TransportError(f"storage: {type(exc).__name__}") from exc
        except BadResponse as exc:
            raise ProtocolError(f"storage: invalid HTTP answer: {exc}") from exc
        return result.status, result.headers, result.body

    async def _presigned_aiohttp(
        self, method: str, url: str, data: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        try:
            async with self.session.request(
                method,
                URL(url, encoded=True),
                data=data,
                headers=dict(headers),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                return resp.status, resp.headers, await resp.read()
        except TimeoutError as exc:
            raise ConnectorTimeout(f"storage: no answer within {self.timeout:g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectError(f"storage: {type(exc).__name__}") from exc
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransportError(f"storage: {type(exc).__name__}") from exc
        except aiohttp.ClientError as exc:
            raise ProtocolError(f"storage: invalid HTTP answer: {type(exc).__name__}") from exc


def _s3_error(body: bytes) -> tuple[str | None, str | None]:
    try:
        root = ElementTree.fromstring(body[:65536])
    except ElementTree.ParseError:
        return None, None
    return root.findtext("Code"), root.findtext("Message")


def _int_header(headers: Mapping[str, str]) -> int | None:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def _iun(iun: str) -> str:
    if not _IUN.match(iun):
        raise ValueError("not an IUN (AAAA-AAAA-AAAA-YYYYMM-A-N)")
    return iun


def _uuid(value: str) -> str:
    if not _UUID.match(value):
        raise ValueError("not a stream id (UUID)")
    return value


def _model(model: type[_M], item: Any, response: Response, what: str) -> _M:
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        raise ProtocolError(
            f"unexpected {what} answer ({exc.error_count()} problems)",
            platform="send",
            status=response.status,
            request_id=response.request_id,
        ) from None


def _parse(model: type[_M], response: Response, what: str) -> _M:
    return _model(model, response.json(), response, what)
