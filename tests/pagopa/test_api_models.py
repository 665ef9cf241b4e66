"""The contract's debt-position schema (``PagopaPositionRequest``, from which the OpenAPI
document is generated) and the handler's own validation (the connector's ``DebtPosition``
after the hub's defaults and IUVs) agree: what the contract calls valid the handler
stores, and every constraint the contract states the handler enforces (a contract stricter
than the handler would make clients refuse good input; schemathesis sends what the
contract calls invalid and expects a 4xx)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pagopa_api import BROKER, EC, STATION, position
from pydantic import ValidationError

from sportello.api.core import _Problem
from sportello.platforms.pagopa.api import _prepare_position
from sportello.platforms.pagopa.api_models import PagopaPositionRequest, PagopaPositionUpdate
from sportello.platforms.pagopa.settings import PagopaTenantSettings

SETTINGS = PagopaTenantSettings(
    ec_fiscal_code=EC, broker_id=BROKER, station_id=STATION, mode="station"
)

Body = dict[str, Any]


def handler_accepts(body: Body) -> bool:
    try:
        _prepare_position(copy.deepcopy(body), "Comune di Esempio", SETTINGS)
    except _Problem as exc:
        assert exc.response.status == 422
        return False
    return True


def contract_accepts(body: Body) -> bool:
    try:
        PagopaPositionRequest.model_validate(body)
    except ValidationError:
        return False
    return True


def _option(body: Body, **change: Any) -> Body:
    body["payment_options"][0].update(change)
    return body


def _transfer(body: Body, **change: Any) -> Body:
    body["payment_options"][0]["transfers"][0].update(change)
    return body


VALID: dict[str, Callable[[], Body]] = {
    "single": lambda: position("A-1"),
    "instalments": lambda: position("A-2", instalments=3),
    "every optional field": lambda: _transfer(
        _option(
            position(
                "A_3",
                street_name="Via Roma",
                civic_number="1",
                postal_code="00100",
                city="Roma",
                province="RM",
                region="Lazio",
                country="IT",
                email="mario.rossi@example.it",
                company_name="Comune di Esempio",
                office_name="Ufficio Tributi",
                switch_to_expired=False,
                pay_stand_in=True,
                validity_date=None,
            ),
            metadata={"anno": "2026"},
            retention_date=None,
        ),
        organization_fiscal_code=EC,
        company_name="Comune di Esempio",
        metadata={"capitolo": "1234"},
    ),
}

INVALID: dict[str, Callable[[], Body]] = {
    "iupd with a space": lambda: position("A 1"),
    "iupd too long": lambda: position("A" * 257),
    "debtor type": lambda: position("A-1", type="X"),
    "empty full_name": lambda: position("A-1", full_name=""),
    "full_name over 70": lambda: position("A-1", full_name="M" * 71),
    "empty street_name": lambda: position("A-1", street_name=""),
    "city over 35": lambda: position("A-1", city="R" * 36),
    "country lower case": lambda: position("A-1", country="it"),
    "email over 256": lambda: position("A-1", email="a" * 250 + "@example.it"),
    "company_name over 140": lambda: position("A-1", company_name="C" * 141),
    "unknown field": lambda: position("A-1", colour="blue"),
    "no options": lambda: position("A-1", payment_options=[]),
    "no options at all": lambda: {
        k: v for k, v in position("A-1").items() if k != "payment_options"
    },
    "option with an iuv": lambda: _option(position("A-1"), iuv="01000000000000001"),
    "amount 0": lambda: _transfer(_option(position("A-1"), amount=0), amount=0),
    "amount too large": lambda: _transfer(
        _option(position("A-1"), amount=100_000_000_000), amount=100_000_000_000
    ),
    "empty description": lambda: _option(position("A-1"), description=""),
    "instalment 0": lambda: _option(position("A-1"), installment_number=0),
    "no transfers": lambda: _option(position("A-1"), transfers=[]),
    "eleven metadata": lambda: _option(position("A-1"), metadata={str(i): "x" for i in range(11)}),
    "id_transfer 6": lambda: _transfer(position("A-1"), id_transfer=6),
    "beneficiary not 11 digits": lambda: _transfer(position("A-1"), organization_fiscal_code="1"),
    "empty remittance": lambda: _transfer(position("A-1"), remittance_information=""),
    "unknown transfer field": lambda: _transfer(position("A-1"), colour="blue"),
    "stamp residence": lambda: _transfer(
        position("A-1"),
        iban=None,
        stamp={"hash_document": "YWJjZA==", "provincial_residence": "rm"},
    ),
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_what_the_contract_calls_valid_the_handler_takes(name: str) -> None:
    body = VALID[name]()
    assert contract_accepts(body) and handler_accepts(body)
    without_iupd = {k: v for k, v in body.items() if k != "iupd"}
    assert PagopaPositionUpdate.model_validate(without_iupd)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_what_the_contract_refuses_the_handler_refuses(name: str) -> None:
    body = INVALID[name]()
    assert not contract_accepts(body), "the contract should state this constraint"
    assert not handler_accepts(body), "the contract is stricter than the handler"
