"""The INAD twin attacked with hand-built requests: voucher checks, parameters the spec
requires, bulk limits, and its answers against the official spec's schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from send_stack import Stack

from sportello.connectors.fiscal_code import is_person_code
from sportello.sandbox.inad.app import BASE_PATH, generate_population

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "inad"


@cache
def validator(name: str) -> Any:
    document = yaml.safe_load((SPEC / "inad_api_extraxtion.yaml").read_text())
    root = {"components": document["components"], "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft4Validator(root)


async def call(stack: Stack, method: str, path: str, token: str | None, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with stack.session.request(
        method, stack.inad_url + BASE_PATH + path, headers=headers, allow_redirects=False, **kw
    ) as r:
        return r.status, await r.json(content_type=None), r.headers.copy()


def test_population_has_valid_codes_with_and_without_domiciles() -> None:
    people = generate_population()
    assert all(is_person_code(p.fiscal_code) for p in people)
    assert any(p.domiciles for p in people) and any(not p.domiciles for p in people)


async def test_voucher_required_and_checked(stack: Stack) -> None:
    code = generate_population()[0].fiscal_code
    status, body, _ = await call(stack, "GET", f"/extract/{code}?practicalReference=x", None)
    assert status == 401 and body["type"] == "UNAUTHORIZED"
    other = await stack.voucher(stack.other_purpose)
    status, body, _ = await call(stack, "GET", f"/extract/{code}?practicalReference=x", other)
    assert status == 403 and body["type"] == "FORBIDDEN"


async def test_required_parameters(stack: Stack) -> None:
    token = await stack.voucher(stack.inad_purpose)
    code = generate_population()[0].fiscal_code
    for path in (
        f"/extract/{code}",
        "/extract/NOTACODE?practicalReference=x",
        f"/verify/{code}?digital_address=a@pec.it&practicalReference=x",
        f"/verify/{code}?digital_address=a@pec.it&since=2024-13-01&practicalReference=x",
        "/listDigitalAddress/state/not-a-uuid",
    ):
        status, body, _ = await call(stack, "GET", path, token)
        assert status == 400, path
        assert body["status"] == "400" and body["type"] == "BAD_REQUEST"
    for payload in (
        {"codiciFiscali": [], "praticalReference": "x"},
        {"codiciFiscali": [code] * 1001, "praticalReference": "x"},
        {"codiciFiscali": [code]},
        {"codiciFiscali": ["bad"], "praticalReference": "x"},
    ):
        status, _, _ = await call(stack, "POST", "/listDigitalAddress", token, json=payload)
        assert status == 400


@pytest.mark.parametrize("stack", [{"bulk_delay": 0.0}], indirect=True)
async def test_answers_match_the_spec(stack: Stack) -> None:
    if not (SPEC / "inad_api_extraxtion.yaml").is_file():
        pytest.skip("INAD spec (shared/specs) not found")
    token = await stack.voucher(stack.inad_purpose)
    person = next(
        p for p in generate_population() if p.domiciles and p.domiciles[-1].valid_to is None
    )
    status, body, _ = await call(
        stack, "GET", f"/extract/{person.fiscal_code}?practicalReference=x", token
    )
    assert status == 200
    assert list(validator("Response_Request_Digital_Address").iter_errors(body)) == []
    status, body, headers = await call(
        stack,
        "POST",
        "/listDigitalAddress",
        token,
        json={"codiciFiscali": [person.fiscal_code], "praticalReference": "x"},
    )
    assert status == 202 and headers["Location"].endswith(body["id"])
    assert list(validator("Response_Request_List_Digital_Address").iter_errors(body)) == []
    status, state, headers = await call(
        stack, "GET", f"/listDigitalAddress/state/{body['id']}", token
    )
    assert status == 303 and state["state"] == "DISPONIBILE"
    assert headers["Location"].endswith(f"/listDigitalAddress/response/{body['id']}")
    status, listed, _ = await call(
        stack, "GET", f"/listDigitalAddress/response/{body['id']}", token
    )
    assert list(validator("Response_List_Digital_Address").iter_errors(listed)) == []
