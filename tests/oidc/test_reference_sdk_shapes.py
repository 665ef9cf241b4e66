"""Defects the interoperability run against italia's spid-cie-oidc (``make oidc-interop``)
exposed in the hub's trust chain resolver, each pinned here without the SDK:

1. the SDK publishes trust marks as ``{"trust_mark_type", "trust_mark_id", "trust_mark"}``
   (OpenID Federation 1.0's names) with no ``id`` (the rules' name): the resolver looked for
   ``id`` only and refused every OP of the SDK's anchor as "missing" its trust mark;
2. the SDK's trust mark status endpoint answers a signed ``trust-mark-status-response+jwt``
   (``status: "active"``) where the rules' draft answered ``{"active": true}``: the resolver
   read only the JSON and took every SDK trust mark for revoked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sportello.connectors.oidc.errors import TrustMarkError
from sportello.connectors.oidc.federation import TrustChainResolver, trust_mark_type
from sportello.connectors.oidc.tokens import sign_jws

from .conftest import free_port
from .test_federation import OP_TYPE, Federation

STATUS_TYP = "trust-mark-status-response+jwt"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class Anchor:
    """A federation (``Federation`` of test_federation) whose anchor also answers trust mark
    status requests with ``self.answer`` (``(status, body, content type)``)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.fed = Federation(f"http://127.0.0.1:{self.port}")
        self.answer: tuple[int, str, str] = (200, '{"active": true}', "application/json")
        self.asked: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = self.fed.app()

        async def status(request: web.Request) -> web.Response:
            self.asked.append(dict(await request.post()))
            code, body, ctype = self.answer
            return web.Response(status=code, text=body, content_type=ctype)

        app.router.add_post("/ta/trust_mark_status", status)
        return app

    @property
    def mark_id(self) -> str:
        return self.fed.id("ta") + "/openid_provider/public/"

    def sdk_mark(self, *, subject: str = "leaf", declared: str | None = None) -> dict[str, Any]:
        """A trust mark as spid-cie-oidc 1.6 issues and lists it (no ``id`` anywhere)."""
        now = int(time.time())
        claims = {
            "trust_mark_type": self.mark_id,
            "trust_mark_id": self.mark_id,
            "iss": self.fed.id("ta"),
            "sub": self.fed.id(subject),
            "iat": now - 10,
            "organization_type": "public",
        }
        token = sign_jws(claims, self.fed.key("ta"), typ="trust-mark+jwt")
        named = declared or self.mark_id
        return {"trust_mark_type": named, "trust_mark_id": named, "trust_mark": token}

    def publish(self, marks: list[dict[str, Any]]) -> None:
        ta = self.fed.id("ta")
        self.fed.configuration(
            "ta",
            trust_mark_issuers={self.mark_id: [ta]},
            metadata={
                "federation_entity": {
                    "federation_fetch_endpoint": f"{ta}/fetch",
                    "federation_trust_mark_status_endpoint": f"{ta}/trust_mark_status",
                }
            },
        )
        self.fed.statement("ta", "leaf")
        self.fed.configuration("leaf", ["ta"], trust_marks=marks)

    def status_jwt(self, status: str, *, signer: str = "ta", subject: str = "leaf") -> str:
        about = self.sdk_mark(subject=subject)["trust_mark"]
        claims = {"iss": self.fed.id("ta"), "iat": int(time.time()), "trust_mark": about}
        claims["status"] = status
        return sign_jws(claims, self.fed.key(signer), typ=STATUS_TYP)


@pytest.fixture
async def anchor() -> AsyncIterator[Anchor]:
    found = Anchor()
    server = TestServer(found.app(), host="127.0.0.1", port=found.port)
    await server.start_server()
    try:
        yield found
    finally:
        await server.close()


async def _resolve(http: aiohttp.ClientSession, a: Anchor, *, status: bool = False) -> Any:
    resolver = TrustChainResolver(
        http, [a.fed.anchor()], allow_http=True, check_trust_mark_status=status
    )
    return await resolver.resolve(a.fed.id("leaf"), OP_TYPE, required_trust_marks=[a.mark_id])


def test_trust_mark_type_reads_every_name_in_use() -> None:
    assert trust_mark_type({"id": "a", "trust_mark_type": "b"}) == "a"  # the rules' name first
    assert trust_mark_type({"trust_mark_type": "b", "trust_mark_id": "c"}) == "b"
    assert trust_mark_type({"trust_mark_id": "c"}) == "c"
    assert trust_mark_type({"id": "", "trust_mark_type": 7}) is None


async def test_trust_marks_named_as_the_reference_sdk_names_them(
    http: aiohttp.ClientSession, anchor: Anchor
) -> None:
    anchor.publish([anchor.sdk_mark()])
    chain = await _resolve(http, anchor)
    assert [m.id for m in chain.trust_marks] == [anchor.mark_id]


async def test_a_listed_type_that_differs_from_the_signed_one_is_refused(
    http: aiohttp.ClientSession, anchor: Anchor
) -> None:
    anchor.publish([anchor.sdk_mark(declared=anchor.fed.id("ta") + "/other/")])
    with pytest.raises(TrustMarkError) as info:  # the entry lies about the signed mark
        await _resolve(http, anchor)
    assert info.value.check == "missing"


async def test_signed_status_response_active(http: aiohttp.ClientSession, anchor: Anchor) -> None:
    anchor.publish([anchor.sdk_mark()])
    anchor.answer = (200, anchor.status_jwt("active"), "application/" + STATUS_TYP)
    chain = await _resolve(http, anchor, status=True)
    assert [m.id for m in chain.trust_marks] == [anchor.mark_id]
    assert anchor.asked == [{"id": anchor.mark_id, "sub": anchor.fed.id("leaf")}]


@pytest.mark.parametrize(
    ("answer", "check"),
    [
        ("revoked", "revoked"),  # the issuer says so
        ("forged", "kid"),  # signed by the leaf, not the issuer
        ("other", "status"),  # about someone else's trust mark
        ("json-inactive", "revoked"),  # the draft's JSON form still works both ways
        ("http-404", "revoked"),
    ],
)
async def test_status_responses_that_do_not_say_active_are_refused(
    http: aiohttp.ClientSession, anchor: Anchor, answer: str, check: str
) -> None:
    anchor.publish([anchor.sdk_mark()])
    jwt_type = "application/" + STATUS_TYP
    anchor.answer = {
        "revoked": (200, anchor.status_jwt("revoked"), jwt_type),
        "forged": (200, anchor.status_jwt("active", signer="leaf"), jwt_type),
        "other": (200, anchor.status_jwt("active", subject="ta"), jwt_type),
        "json-inactive": (200, '{"active": false}', "application/json"),
        "http-404": (404, '{"error": "not_found"}', "application/json"),
    }[answer]
    with pytest.raises(TrustMarkError) as info:
        await _resolve(http, anchor, status=True)
    assert info.value.check == check
