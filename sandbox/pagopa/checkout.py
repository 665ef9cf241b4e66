"""Checkout: ``POST /checkout/ec/v1/carts`` and a payment page that pays through the Node.

The cart API answers as pagoPA's ``ecommerce-payment-requests-service`` does:

- the ``CartRequest`` schema of ``checkout_v1.json`` (1..5 ``paymentNotices`` with
  ``noticeNumber`` 18 characters, ``fiscalCode`` 11, integer ``amount`` ≥ 1 cent,
  ``companyName`` and ``description`` ≤ 140; ``returnUrls`` with the three URLs;
  ``emailNotice`` an e-mail; ``idCart`` a string; ``allCCP`` a boolean): anything else is
  400 ``{"title": "Request validation error", "detail": "The input request is invalid"}``;
- the same notice twice: 422 "Invalid payment info" / "Duplicate payment notice values
  found."; a notice the Node cannot take (no station for the creditor, already paid or
  being paid, bad check digits): 422 "Invalid payment info" / "Invalid payment notice data"
  (the Node's ``checkPosition``);
- otherwise 302 with ``Location: <sandbox>/checkout/p/{cart id}``.

The page (plain HTML forms, no JavaScript) has "Paga" and "Annulla". "Paga" verifies and
activates every notice through the Node, then sends every receipt, and redirects (303) to
``returnOkUrl``; if any notice fails nothing is paid and it redirects to
``returnErrorUrl``. "Annulla" redirects to ``returnCancelUrl``: no receipt, as with a
payer who walks away. Payment state changes only through the receipts the station gets.
"""

from __future__ import annotations

import html
import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .apim import json_response, read_json, subscription_refusal
from .node import Node, PayRequest, PayResult, Prepared
from .node_routes import NODE
from .notices import BadNotice, read_notice

__all__ = [
    "CARTS_PATH",
    "CHECKOUT",
    "DEFAULT_CHECKOUT_API_KEY",
    "CheckoutState",
    "add_checkout_routes",
    "cart_problems",
]

CARTS_PATH = "/checkout/ec/v1/carts"
DEFAULT_CHECKOUT_API_KEY = "sandbox-checkout-key"
_MAX_CARTS = 10_000
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_URI = re.compile(r"\S+")


@dataclass
class Cart:
    """A cart waiting on its payment page."""

    id: str
    notices: list[dict[str, Any]]
    return_urls: dict[str, str]
    email: str | None
    id_cart: str | None
    status: str = "CREATED"  # CREATED, PAID, CANCELLED, FAILED
    results: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "idCart": self.id_cart,
            "status": self.status,
            "paymentNotices": self.notices,
            "returnUrls": self.return_urls,
            "emailNotice": self.email,
            "results": self.results,
        }


@dataclass
class CheckoutState:
    """Carts by id (the oldest dropped past :data:`_MAX_CARTS`)."""

    api_key: str
    carts: OrderedDict[str, Cart] = field(default_factory=OrderedDict)

    def add(self, cart: Cart) -> None:
        self.carts[cart.id] = cart
        while len(self.carts) > _MAX_CARTS:
            self.carts.popitem(last=False)


CHECKOUT = web.AppKey("pagopa_checkout", CheckoutState)


# -- validation ---------------------------------------------------------------------------


def _string(doc: dict[str, Any], key: str, problems: list[str], **rules: int) -> None:
    value = doc.get(key)
    if not isinstance(value, str):
        problems.append(f"{key}: must be a string")
        return
    if "exact" in rules and len(value) != rules["exact"]:
        problems.append(f"{key}: length must be {rules['exact']}")
    if "maximum" in rules and len(value) > rules["maximum"]:
        problems.append(f"{key}: length must be at most {rules['maximum']}")


def cart_problems(body: Any) -> list[str]:
    """Every way ``body`` breaks ``CartRequest`` (empty: valid)."""
    if not isinstance(body, dict):
        return ["(root): must be an object"]
    problems: list[str] = []
    notices = body.get("paymentNotices")
    if not isinstance(notices, list):
        problems.append("paymentNotices: required array")
    elif not 1 <= len(notices) <= 5:
        problems.append("paymentNotices: 1 to 5 items")
    else:
        for i, notice in enumerate(notices):
            if not isinstance(notice, dict):
                problems.append(f"paymentNotices/{i}: must be an object")
                continue
            found: list[str] = []
            _string(notice, "noticeNumber", found, exact=18)
            _string(notice, "fiscalCode", found, exact=11)
            _string(notice, "companyName", found, maximum=140)
            _string(notice, "description", found, maximum=140)
            amount = notice.get("amount")
            if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
                found.append("amount: integer of at least 1")
            problems.extend(f"paymentNotices/{i}/{p}" for p in found)
    urls = body.get("returnUrls")
    if not isinstance(urls, dict):
        problems.append("returnUrls: required object")
    else:
        for key in ("returnOkUrl", "returnCancelUrl", "returnErrorUrl"):
            value = urls.get(key)
            if not isinstance(value, str) or not _URI.fullmatch(value):
                problems.append(f"returnUrls/{key}: required URI")
    email = body.get("emailNotice")
    if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email)):
        problems.append("emailNotice: must be an e-mail address")
    if body.get("idCart") is not None and not isinstance(body.get("idCart"), str):
        problems.append("idCart: must be a string")
    if body.get("allCCP") is not None and not isinstance(body.get("allCCP"), bool):
        problems.append("allCCP: must be a boolean")
    return problems


def _problem(status: int, title: str, detail: str) -> web.Response:
    return json_response({"title": title, "status": status, "detail": detail}, status)


def _position_ok(node: Node, notice: dict[str, Any]) -> bool:
    """The Node's ``checkPosition``: a creditor it knows, a notice it can take."""
    key = (notice["fiscalCode"], notice["noticeNumber"])
    if notice["fiscalCode"] not in node.stations or key in node.paid or key in node.in_progress:
        return False
    try:
        read_notice(notice["noticeNumber"])
    except BadNotice:
        return False
    return True


# -- handlers -----------------------------------------------------------------------------


async def post_carts(request: web.Request) -> web.Response:
    state = request.app[CHECKOUT]
    refusal = subscription_refusal(request, state.api_key)
    if refusal is not None:
        return refusal
    try:
        body = await read_json(request)
    except ValueError:
        body = None
    if cart_problems(body):
        return _problem(400, "Request validation error", "The input request is invalid")
    notices = body["paymentNotices"]
    if len({(n["fiscalCode"], n["noticeNumber"]) for n in notices}) != len(notices):
        return _problem(422, "Invalid payment info", "Duplicate payment notice values found.")
    node = request.app[NODE]
    if not all(_position_ok(node, n) for n in notices):
        return _problem(422, "Invalid payment info", "Invalid payment notice data")
    cart = Cart(
        id=str(uuid.uuid4()),
        notices=[
            {
                k: n[k]
                for k in ("noticeNumber", "fiscalCode", "amount", "companyName", "description")
            }
            for n in notices
        ],
        return_urls={
            k: body["returnUrls"][k] for k in ("returnOkUrl", "returnCancelUrl", "returnErrorUrl")
        },
        email=body.get("emailNotice"),
        id_cart=body.get("idCart"),
    )
    state.add(cart)
    location = str(
        request.url.origin().join(request.app.router["checkout_page"].url_for(cart_id=cart.id))
    )
    raise web.HTTPFound(location)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (
        "<!doctype html><html lang='it'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html")


def _euro(cents: int) -> str:
    return f"{cents // 100},{cents % 100:02d} €"


def _cart(request: web.Request) -> Cart:
    cart = request.app[CHECKOUT].carts.get(request.match_info["cart_id"])
    if cart is None:
        raise web.HTTPNotFound()
    return cart


async def checkout_page(request: web.Request) -> web.Response:
    try:
        cart = _cart(request)
    except web.HTTPNotFound:
        return _page("Carrello non trovato", "<p>Il carrello non esiste o è scaduto.</p>", 404)
    rows = "".join(
        "<tr>"
        f"<td>{html.escape(n['companyName'])}</td><td>{html.escape(n['description'])}</td>"
        f"<td>{html.escape(n['noticeNumber'])}</td><td>{_euro(n['amount'])}</td>"
        "</tr>"
        for n in cart.notices
    )
    table = (
        "<table><thead><tr><th>Ente</th><th>Causale</th><th>Codice avviso</th>"
        f"<th>Importo</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<p>Totale: <strong>{_euro(sum(n['amount'] for n in cart.notices))}</strong></p>"
    )
    if cart.status != "CREATED":
        return _page(f"Carrello {cart.status}", table + f"<p id='status'>{cart.status}</p>")
    base = f"/checkout/p/{cart.id}"
    forms = (
        f"<form method='post' action='{base}/pay'><button type='submit' name='action' "
        "value='pay'>Paga</button></form>"
        f"<form method='post' action='{base}/cancel'><button type='submit' name='action' "
        "value='cancel'>Annulla</button></form>"
    )
    return _page("Pagamento pagoPA (sandbox)", table + forms)


async def checkout_pay(request: web.Request) -> web.Response:
    try:
        cart = _cart(request)
    except web.HTTPNotFound:
        return _page("Carrello non trovato", "<p>Il carrello non esiste o è scaduto.</p>", 404)
    if cart.status != "CREATED":
        return _page("Carrello già chiuso", f"<p id='status'>{cart.status}</p>", 409)
    node = request.app[NODE]
    cart.status = "PAYING"
    prepared: list[Prepared] = []
    failed: list[PayResult] = []
    try:
        for notice in cart.notices:
            pay_request = PayRequest(notice["fiscalCode"], notice["noticeNumber"])
            outcome = await node.prepare(pay_request)
            if isinstance(outcome, PayResult):
                failed.append(outcome)
                break
            prepared.append(outcome)
    except BaseException:
        for item in prepared:
            node.abort(item)
        cart.status = "FAILED"
        raise
    if failed:
        for item in prepared:
            node.abort(item)
        cart.status = "FAILED"
        cart.results = [r.as_dict() for r in failed]
        raise web.HTTPSeeOther(cart.return_urls["returnErrorUrl"])
    results = [await node.settle(item) for item in prepared]
    cart.results = [r.as_dict() for r in results]
    cart.status = "PAID"
    raise web.HTTPSeeOther(cart.return_urls["returnOkUrl"])


async def checkout_cancel(request: web.Request) -> web.Response:
    try:
        cart = _cart(request)
    except web.HTTPNotFound:
        return _page("Carrello non trovato", "<p>Il carrello non esiste o è scaduto.</p>", 404)
    if cart.status != "CREATED":
        return _page("Carrello già chiuso", f"<p id='status'>{cart.status}</p>", 409)
    cart.status = "CANCELLED"
    raise web.HTTPSeeOther(cart.return_urls["returnCancelUrl"])


async def list_carts(request: web.Request) -> web.Response:
    carts = [c.as_dict() for c in request.app[CHECKOUT].carts.values()]
    return json_response({"carts": carts, "count": len(carts)})


def add_checkout_routes(app: web.Application) -> None:
    """Register the cart API, the payment page and ``GET /__sandbox/carts``."""
    router = app.router
    router.add_post(CARTS_PATH, post_carts, name="PostCarts")
    router.add_get("/checkout/p/{cart_id}", checkout_page, name="checkout_page")
    router.add_post("/checkout/p/{cart_id}/pay", checkout_pay)
    router.add_post("/checkout/p/{cart_id}/cancel", checkout_cancel)
    router.add_get("/__sandbox/carts", list_carts)
