"""The SEND twin, attacked with hand-built requests (no connector code): gateway checks,
presigned upload rules, spec validation with SEND's problem shape, and its answers checked
against the official bundle's schemas."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import jwt
import pytest
import yaml
from send_stack import Stack

from sportello.sandbox.send.app import DEMO_API_KEY, OTHER_API_KEY

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "send"
BUNDLE = SPEC / "api-external-b2b-pa-bundle.yaml"
PDF = b"%PDF-1.4\n%%EOF\n"


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def headers(stack: Stack, key: str = DEMO_API_KEY) -> dict[str, str]:
    return {"x-api-key": key, "Authorization": f"Bearer {await stack.voucher(stack.send_purpose)}"}


async def call(
    stack: Stack, method: str, path: str, *, hdrs: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any, Any]:
    async with stack.session.request(method, stack.send_url + path, headers=hdrs, **kw) as r:
        text = await r.text()
        try:
            body: Any = await r.json(content_type=None)
        except ValueError:
            body = text
        return r.status, body, r.headers.copy()


@cache
def _schemas() -> dict[str, Any]:
    document = yaml.load(BUNDLE.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schemas: dict[str, Any] = document["components"]["schemas"]
    return _any_of(schemas)


def _any_of(node: Any) -> Any:
    """``oneOf`` as ``anyOf``: the timeline details are loose objects, several match."""
    if isinstance(node, dict):
        return {("anyOf" if k == "oneOf" else k): _any_of(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_any_of(v) for v in node]
    return node


def schema_validator(name: str) -> Any:
    root = {"components": {"schemas": _schemas()}, "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft4Validator(root)


async def preload_slot(stack: Stack, data: bytes) -> dict[str, Any]:
    status, body, _ = await call(
        stack,
        "POST",
        "/delivery/attachments/preload",
        hdrs=await headers(stack),
        json=[{"preloadIdx": "0", "contentType": "application/pdf", "sha256": b64sha(data)}],
    )
    assert status == 200, body
    slot: dict[str, Any] = body[0]
    return slot


async def put(stack: Stack, slot: dict[str, Any], data: bytes, **override: str) -> int:
    hdrs = {
        "Content-Type": "application/pdf",
        "x-amz-meta-secret": slot["secret"],
        "x-amz-checksum-sha256": b64sha(data),
        **override,
    }
    async with stack.session.put(slot["url"], data=data, headers=hdrs) as response:
        return response.status


async def test_missing_and_wrong_api_key(stack: Stack) -> None:
    status, body, _ = await call(stack, "GET", "/delivery-progresses/v2.9/streams")
    assert status == 403 and body == {"message": "Forbidden"}
    hdrs = await headers(stack, key="guess")
    status, _, _ = await call(stack, "GET", "/delivery-progresses/v2.9/streams", hdrs=hdrs)
    assert status == 403


async def test_voucher_missing_forged_or_for_another_audience(stack: Stack) -> None:
    path = "/delivery-progresses/v2.9/streams"
    status, _, _ = await call(stack, "GET", path, hdrs={"x-api-key": DEMO_API_KEY})
    assert status == 401
    other = await stack.voucher(stack.other_purpose)
    hdrs = {"x-api-key": DEMO_API_KEY, "Authorization": f"Bearer {other}"}
    assert (await call(stack, "GET", path, hdrs=hdrs))[0] == 403
    inad_voucher = await stack.voucher(stack.inad_purpose)  # valid, but for INAD
    hdrs["Authorization"] = f"Bearer {inad_voucher}"
    assert (await call(stack, "GET", path, hdrs=hdrs))[0] == 403
    good = await stack.voucher(stack.send_purpose)
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(
        claims, "not-the-pdnd-key-" * 3, algorithm="HS256", headers={"typ": "at+jwt"}
    )
    hdrs["Authorization"] = f"Bearer {forged}"
    assert (await call(stack, "GET", path, hdrs=hdrs))[0] == 403
    hdrs["Authorization"] = f"Bearer {good}"
    assert (await call(stack, "GET", path, hdrs=hdrs))[0] == 200


async def test_upload_checks_secret_checksum_and_signature(stack: Stack) -> None:
    slot = await preload_slot(stack, PDF)
    assert slot["httpMethod"] == "PUT" and slot["key"].startswith("safestorage://")
    assert await put(stack, slot, PDF, **{"x-amz-meta-secret": "wrong"}) == 403
    # a checksum that does not match the body
    assert await put(stack, slot, PDF, **{"x-amz-checksum-sha256": b64sha(b"other")}) == 400
    # other bytes with their own (correct) checksum: not what was preloaded
    assert await put(stack, slot, b"%PDF-1.4 other\n") == 400
    tampered = dict(slot, url=slot["url"].replace("X-Amz-Signature=", "X-Amz-Signature=0"))
    assert await put(stack, tampered, PDF) == 403
    async with stack.session.put(
        slot["url"],
        data=PDF,
        headers={
            "Content-Type": "application/pdf",
            "x-amz-meta-secret": slot["secret"],
            "x-amz-checksum-sha256": b64sha(PDF),
        },
    ) as response:
        assert response.status == 200
        version = response.headers["x-amz-version-id"]
    # the same bytes again (a retry): same version; the URL cannot be reused for other bytes
    async with stack.session.put(
        slot["url"],
        data=PDF,
        headers={
            "Content-Type": "application/pdf",
            "x-amz-meta-secret": slot["secret"],
            "x-amz-checksum-sha256": b64sha(PDF),
        },
    ) as response:
        assert response.status == 200 and response.headers["x-amz-version-id"] == version
    assert await put(stack, slot, b"%PDF-1.4 replaced\n") == 400


@pytest.mark.parametrize(
    ("mutate", "element", "code"),
    [
        (
            lambda b: b.pop("paProtocolNumber"),
            "paProtocolNumber",
            "PN_GENERIC_INVALIDPARAMETER_REQUIRED",
        ),
        (
            lambda b: b["recipients"][0].update(taxId="NOTAFISCALCODE00"),
            "recipients[0].taxId",
            "PN_GENERIC_INVALIDPARAMETER_PATTERN",
        ),
        (lambda b: b.update(documents=[]), "documents", "PN_GENERIC_INVALIDPARAMETER_SIZE"),
        (
            lambda b: b.update(notificationFeePolicy="FREE"),
            "notificationFeePolicy",
            "PN_GENERIC_INVALIDPARAMETER",
        ),
        (
            lambda b: b["recipients"][0].update(extra=1),
            "recipients[0].extra",
            "PN_GENERIC_INVALIDPARAMETER",
        ),
        (lambda b: b.update(paFee=101), "paFee", "PN_GENERIC_INVALIDPARAMETER_MAX"),
        (
            lambda b: b["recipients"][0]["payments"][0]["pagoPa"].update(noticeCode="12"),
            "recipients[0].payments[0].pagoPa.noticeCode",
            "PN_GENERIC_INVALIDPARAMETER_SIZE",
        ),
    ],
)
async def test_invalid_bodies_get_400_problem_naming_the_field(
    stack: Stack, mutate: Any, element: str, code: str
) -> None:
    body = request_body()
    mutate(body)
    status, problem, hdrs = await call(
        stack, "POST", "/delivery/v2.6/requests", hdrs=await headers(stack), json=body
    )
    assert status == 400
    assert hdrs["Content-Type"].startswith("application/problem+json")
    assert (code, element) in [(e["code"], e.get("element")) for e in problem["errors"]]
    if BUNDLE.is_file():
        assert list(schema_validator("Problem").iter_errors(problem)) == []


def request_body() -> dict[str, Any]:
    sha = b64sha(PDF)
    return {
        "paProtocolNumber": "P-1",
        "subject": "Verbale",
        "recipients": [
            {
                "recipientType": "PF",
                "taxId": "RSSMRA80A01H501U",
                "denomination": "Mario Rossi",
                "physicalAddress": {"address": "Via Roma 1", "municipality": "Roma"},
                "payments": [
                    {
                        "pagoPa": {
                            "noticeCode": "302000100000019421",
                            "creditorTaxId": "00000000999",
                            "applyCost": True,
                        }
                    }
                ],
            }
        ],
        "documents": [
            {
                "digests": {"sha256": sha},
                "contentType": "application/pdf",
                "ref": {"key": "PN_NOTIFICATION_ATTACHMENTS-X.pdf", "versionToken": "v"},
            }
        ],
        "notificationFeePolicy": "DELIVERY_MODE",
        "physicalCommunicationType": "REGISTERED_LETTER_890",
        "senderDenomination": "Comune di Esempio",
        "senderTaxId": "00000000999",
        "taxonomyCode": "010101P",
    }


async def test_request_body_of_the_test_is_valid_per_spec() -> None:
    if not BUNDLE.is_file():
        pytest.skip("SEND bundle (shared/specs) not found")
    assert list(schema_validator("NewNotificationRequestV26").iter_errors(request_body())) == []


async def test_answers_match_the_spec_and_other_senders_see_nothing(stack: Stack) -> None:
    if not BUNDLE.is_file():
        pytest.skip("SEND bundle (shared/specs) not found")
    slot = await preload_slot(stack, PDF)
    assert await put(stack, slot, PDF) == 200
    async with stack.session.put(
        slot["url"],
        data=PDF,
        headers={
            "Content-Type": "application/pdf",
            "x-amz-meta-secret": slot["secret"],
            "x-amz-checksum-sha256": b64sha(PDF),
        },
    ) as response:
        version = response.headers["x-amz-version-id"]
    body = request_body()
    body["documents"][0]["ref"] = {"key": slot["key"], "versionToken": version}
    hdrs = await headers(stack)
    status, stream, _ = await call(
        stack,
        "POST",
        "/delivery-progresses/v2.9/streams",
        hdrs=hdrs,
        json={"title": "t", "eventType": "TIMELINE", "groups": []},
    )
    assert status == 200
    assert list(schema_validator("StreamMetadataResponseV29").iter_errors(stream)) == []
    status, created, _ = await call(stack, "POST", "/delivery/v2.6/requests", hdrs=hdrs, json=body)
    assert status == 202
    assert list(schema_validator("NewNotificationResponse").iter_errors(created)) == []
    rid = created["notificationRequestId"]
    status, answer, _ = await call(
        stack, "GET", f"/delivery/v2.6/requests?notificationRequestId={rid}", hdrs=hdrs
    )
    assert answer["notificationRequestStatus"] == "ACCEPTED", answer
    validator = schema_validator("NewNotificationRequestStatusResponseV26")
    assert list(validator.iter_errors(answer)) == []
    iun = answer["iun"]
    status, full, _ = await call(
        stack, "GET", f"/delivery/v2.9/notifications/sent/{iun}", hdrs=hdrs
    )
    assert status == 200
    problems = [
        e.message[:200] for e in schema_validator("FullSentNotificationV29").iter_errors(full)
    ]
    assert problems == []
    status, events, hdr = await call(
        stack, "GET", f"/delivery-progresses/v2.9/streams/{stream['streamId']}/events", hdrs=hdrs
    )
    assert status == 200 and int(hdr["retry-after"]) >= 0
    assert list(schema_validator("ProgressResponseV29").iter_errors(events)) == []
    status, price, _ = await call(
        stack, "GET", "/delivery/v2.3/price/00000000999/302000100000019421", hdrs=hdrs
    )
    assert list(schema_validator("NotificationPriceResponseV23").iter_errors(price)) == []
    # another comune, same voucher client: no access to this notification or stream
    other = await headers(stack, key=OTHER_API_KEY)
    assert (await call(stack, "GET", f"/delivery/v2.9/notifications/sent/{iun}", hdrs=other))[
        0
    ] == 404
    path = f"/delivery-progresses/v2.9/streams/{stream['streamId']}/events"
    assert (await call(stack, "GET", path, hdrs=other))[0] == 403
    assert (
        await call(stack, "PUT", f"/delivery-push/v2.0/notifications/cancel/{iun}", hdrs=other)
    )[0] == 404


async def test_bad_path_parameters_are_400_not_500(stack: Stack) -> None:
    hdrs = await headers(stack)
    for path in (
        "/delivery/v2.9/notifications/sent/not-an-iun",
        "/delivery/v2.3/price/123/456",
        "/delivery-progresses/v2.9/streams/nope/events",
        "/delivery/v2.6/requests?notificationRequestId=short",
        "/delivery/v2.6/requests",
    ):
        status, problem, _ = await call(stack, "GET", path, hdrs=hdrs)
        assert status == 400, path
        assert problem["errors"] and problem["status"] == 400
    status, _, _ = await call(
        stack, "POST", "/delivery/v2.6/requests", hdrs=hdrs, data=b"{not json"
    )
    assert status == 400
    status, _, _ = await call(
        stack,
        "GET",
        "/delivery-progresses/v2.9/streams/00000000-0000-0000-0000-000000000000/events"
        "?lastEventId=1",
        hdrs=hdrs,
    )
    assert status in (400, 404)
