"""``CheckoutClient``: pagoPA Checkout's EC API, ``POST /carts`` (``checkout_v1.json``).

A creditor body sends 1 to 5 payment notices and three return URLs; Checkout answers
``302`` with the payment page in ``Location``, where the payer is sent. Nothing is paid by
creating a cart: the payment state changes only when the Node delivers a receipt to the
station (or GPD reports one).

The call carries ``Ocp-Apim-Subscription-Key`` (the Checkout subscription, distinct from
GPD's). It is retried once on a transport error or a 5xx: a second cart is harmless, it is
only a page nobody visits. Errors are the connectors' typed errors: ``BadRequest`` (400:
the cart breaks ``CartRequest``), ``Unprocessable`` (422: "Invalid payment info", e.g. a
notice the Node will not take), ``AuthError`` (401: the subscription key).
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ..base import BaseConnector
from ..errors import ProtocolError, SigningError
from ..retry import RetryPolicy, Sleep
from ..signing import OutgoingRequest

__all__ = [
    "MAX_NOTICES",
    "PLATFORM",
    "PRODUCTION_BASE_URL",
    "UAT_BASE_URL",
    "CartRequest",
    "CheckoutClient",
    "CheckoutNotice",
    "ReturnUrls",
]

PLATFORM = "pagopa-checkout"
PRODUCTION_BASE_URL = "https://api.platform.pagopa.it/checkout/ec/v1"
UAT_BASE_URL = "https://api.uat.platform.pagopa.it/checkout/ec/v1"
SUBSCRIPTION_KEY_HEADER = "Ocp-Apim-Subscription-Key"
#: ``CartRequest.paymentNotices``: 1 to 5 items.
MAX_NOTICES = 5

#: Returns the current subscription key (plain or async callable), asked on every attempt.
KeyProvider = Callable[[], str | Awaitable[str]]

_NAV = re.compile(r"[0-9]{18}")
_ORG_CF = re.compile(r"[0-9]{11}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URL = re.compile(r"https?://[^\s/]+\S*")


@dataclass(frozen=True, slots=True)
class CheckoutNotice:
    """One ``PaymentNotice`` of a cart: amount in cents."""

    notice_number: str
    fiscal_code: str
    amount: int
    company_name: str
    description: str

    def __post_init__(self) -> None:
        if not _NAV.fullmatch(self.notice_number):
            raise ValueError("notice_number: 18 digits")
        if not _ORG_CF.fullmatch(self.fiscal_code):
            raise ValueError("fiscal_code: the creditor's 11 digits")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 1:
            raise ValueError("amount: an integer number of cents, at least 1")
        for name in ("company_name", "description"):
            if not 1 <= len(getattr(self, name)) <= 140:
                raise ValueError(f"{name}: 1 to 140 characters")

    def to_json(self) -> dict[str, Any]:
        return {
            "noticeNumber": self.notice_number,
            "fiscalCode": self.fiscal_code,
            "amount": self.amount,
            "companyName": self.company_name,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class ReturnUrls:
    """Where Checkout sends the payer back: paid, cancelled, failed (absolute http(s))."""

    ok: str
    cancel: str
    error: str

    def __post_init__(self) -> None:
        for name in ("ok", "cancel", "error"):
            value = getattr(self, name)
            if len(value) > 2000 or not _URL.fullmatch(value):
                raise ValueError(f"{name}: an absolute http(s) URL")

    def to_json(self) -> dict[str, str]:
        return {
            "returnOkUrl": self.ok,
            "returnCancelUrl": self.cancel,
            "returnErrorUrl": self.error,
        }


@dataclass(frozen=True, slots=True)
class CartRequest:
    """``CartRequest``: the notices to pay together and the return URLs."""

    notices: tuple[CheckoutNotice, ...]
    return_urls: ReturnUrls
    email_notice: str | None = None
    id_cart: str | None = None
    all_ccp: bool | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.notices) <= MAX_NOTICES:
            raise ValueError(f"notices: 1 to {MAX_NOTICES}")
        keys = {(n.fiscal_code, n.notice_number) for n in self.notices}
        if len(keys) != len(self.notices):
            raise ValueError("notices: the same notice twice")
        if self.email_notice is not None and not _EMAIL.fullmatch(self.email_notice):
            raise ValueError("email_notice: an e-mail address")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "paymentNotices": [n.to_json() for n in self.notices],
            "returnUrls": self.return_urls.to_json(),
        }
        if self.email_notice is not None:
            body["emailNotice"] = self.email_notice
        if self.id_cart is not None:
            body["idCart"] = self.id_cart
        if self.all_ccp is not None:
            body["allCCP"] = self.all_ccp
        return body


class _KeySigner:
    """Sets the subscription key header, asking the provider on every attempt."""

    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider

    def __repr__(self) -> str:
        return "CheckoutKeySigner()"

    async def sign(self, request: OutgoingRequest) -> None:
        value = self._provider()
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str) or not value:
            raise SigningError("the Checkout key provider returned no key", platform=PLATFORM)
        if any(ch in value for ch in "\r\n\0"):
            raise SigningError("the Checkout key has control characters", platform=PLATFORM)
        request.headers[SUBSCRIPTION_KEY_HEADER] = value


class CheckoutClient(BaseConnector):
    """Checkout's EC API for one subscription (see the module docstring)."""

    platform = PLATFORM

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = PRODUCTION_BASE_URL,
        *,
        api_key: KeyProvider,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            session,
            base_url,
            signer=_KeySigner(api_key),
            retry=retry if retry is not None else RetryPolicy(max_attempts=2, deadline=20.0),
            timeout=timeout,
            sleep=sleep,
        )

    def __repr__(self) -> str:
        return f"CheckoutClient({self.base_url!r})"

    async def create_cart(self, cart: CartRequest) -> str:
        """Create the cart; returns the payment page's URL (``Location`` of the 302)."""
        response = await self.request("POST", "/carts", json=cart.to_json(), expected=(302,))
        location = response.headers.get("Location", "").strip()
        if not _URL.fullmatch(location):
            raise ProtocolError(
                "Checkout answered 302 without an absolute Location",
                platform=self.platform,
                status=response.status,
                request_id=response.request_id,
            )
        return location
