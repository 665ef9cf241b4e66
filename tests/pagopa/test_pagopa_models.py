"""pagoPA debt-position models: GPD's rules, errors that name the field, the GPD v1 body."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sportello.connectors.pagopa import (
    DebtorType,
    DebtPosition,
    PaymentOption,
    Transfer,
    describe_validation_error,
    is_valid_iban,
    iuv_for,
)
from sportello.connectors.pagopa.models import AMOUNT_MAX, format_gpd_datetime

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
GPD_SPEC = SPECS / "pagopa" / "openapi" / "gpd.json"
ROME = timezone(timedelta(hours=1))
COMUNE = "80016350821"
PROVINCIA = "80021470820"
#: The classic ISO 13616 example of an Italian IBAN.
IBAN = "IT60X0542811101000000123456"
CF = "RSSMRA80A01H501U"
HASH = "dGhpcyBpcyBhIHNoYS0yNTYgZGlnZXN0IG9mIGEgZG9j"  # 44 characters of base64


def iban_with(abi: str, account: str = "000012345678", cin: str = "X", cab: str = "03200") -> str:
    """A valid IT IBAN with the given ABI (check digits computed independently)."""
    bban = cin + abi + cab + account
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


POSTAL_IBAN = iban_with("07601")


def iuv(n: int) -> str:
    return iuv_for(n, segregation_code="01")


def transfer(**overrides: Any) -> dict[str, Any]:
    return {
        "id_transfer": 1,
        "amount": 10_000,
        "organization_fiscal_code": COMUNE,
        "remittance_information": "TARI 2026",
        "category": "9/0101002IM/",
        "iban": IBAN,
        **overrides,
    }


def option(n: int = 1, **overrides: Any) -> dict[str, Any]:
    return {
        "iuv": iuv(n),
        "amount": 10_000,
        "description": "TARI 2026 - rata unica",
        "due_date": datetime(2026, 3, 31, 23, 59, 59, tzinfo=ROME),
        "transfers": [transfer()],
        **overrides,
    }


def instalment(number: int, amount: int = 5_000, **overrides: Any) -> dict[str, Any]:
    return option(
        10 + number,
        amount=amount,
        description=f"TARI 2026 - rata {number}",
        due_date=datetime(2026, 3 + 3 * number, 30, tzinfo=ROME),
        is_partial_payment=True,
        installment_number=number,
        transfers=[transfer(amount=amount)],
        **overrides,
    )


def position(**overrides: Any) -> dict[str, Any]:
    return {
        "iupd": f"{COMUNE}-TARI2026-000001",
        "type": "F",
        "fiscal_code": CF,
        "full_name": "Mario Rossi",
        "company_name": "Comune di Palermo",
        "payment_options": [option()],
        **overrides,
    }


def build(**overrides: Any) -> DebtPosition:
    return DebtPosition.model_validate(position(**overrides))


def errors(**overrides: Any) -> str:
    with pytest.raises(ValidationError) as info:
        build(**overrides)
    return describe_validation_error(info.value)


def full_example() -> DebtPosition:
    """TARI + TEFA in full, or three instalments; every optional field set."""
    tari, tefa = 28_500, 1_500
    return build(
        type="G",
        fiscal_code="01234567897",
        full_name="Rossi S.r.l.",
        street_name="Via Roma",
        civic_number="1",
        postal_code="90100",
        city="Palermo",
        province="PA",
        region="Sicilia",
        country="IT",
        email="amministrazione@rossi-srl.it",
        office_name="Ufficio Tributi",
        switch_to_expired=True,
        validity_date=datetime(2026, 2, 1, tzinfo=UTC),
        pay_stand_in=False,
        payment_options=[
            option(
                amount=tari + tefa,
                retention_date=datetime(2026, 12, 31, tzinfo=UTC),
                metadata={"capitolo": "1010", "anno": "2026"},
                transfers=[
                    transfer(amount=tari, metadata={"accertamento": "2026/123"}),
                    transfer(
                        id_transfer=2,
                        amount=tefa,
                        organization_fiscal_code=PROVINCIA,
                        remittance_information="TEFA 2026",
                        category="0101101IM",
                        iban=None,
                        company_name="Città Metropolitana di Palermo",
                        stamp=None,
                    )
                    | {"iban": iban_with("01030"), "postal_iban": POSTAL_IBAN},
                ],
            ),
            *(instalment(n, 10_000) for n in (1, 2, 3)),
        ],
    )


# -- GPD's JSON schema ------------------------------------------------------------------


@functools.cache
def gpd_spec() -> dict[str, Any]:
    return json.loads(GPD_SPEC.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def spec() -> dict[str, Any]:
    if not GPD_SPEC.exists():
        pytest.skip(f"GPD spec not found at {GPD_SPEC} (shared/specs is not part of the repo)")
    return gpd_spec()


def schema_errors(body: dict[str, Any], schema_name: str = "PaymentPositionModel") -> list[str]:
    import jsonschema
    import referencing
    from referencing.jsonschema import DRAFT202012

    resource = referencing.Resource.from_contents(spec(), default_specification=DRAFT202012)
    registry: referencing.Registry[Any] = referencing.Registry().with_resource("urn:gpd", resource)
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:gpd#/components/schemas/{schema_name}"},
        registry=registry,
        format_checker=jsonschema.FormatChecker(),
    )
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]


def declared_keys(body: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Keys of ``body`` the schema does not declare, or declares read-only."""
    schemas = spec()["components"]["schemas"]
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    problems = []
    if isinstance(body, dict):
        properties = schema.get("properties", {})
        for key, value in body.items():
            if key not in properties:
                problems.append(f"{where}{key}: not in the schema")
            elif properties[key].get("readOnly"):
                problems.append(f"{where}{key}: read-only")
            else:
                problems += declared_keys(value, properties[key], f"{where}{key}.")
    elif isinstance(body, list):
        for index, item in enumerate(body):
            problems += declared_keys(item, schema.get("items", {}), f"{where}{index}.")
    return problems


@pytest.mark.parametrize(
    "example",
    [
        lambda: build(),
        full_example,
        lambda: build(type="F", fiscal_code="ANONIMO"),
        lambda: build(
            payment_options=[
                option(
                    amount=1_600,
                    transfers=[
                        transfer(
                            amount=1_600,
                            iban=None,
                            stamp={"hash_document": HASH, "provincial_residence": "RM"},
                        )
                    ],
                )
            ]
        ),
        lambda: build(
            payment_options=[
                option(
                    amount=50_000,
                    transfers=[
                        transfer(id_transfer=i, amount=10_000, organization_fiscal_code=COMUNE)
                        for i in (1, 2, 3, 4, 5)
                    ],
                )
            ]
        ),
    ],
)
def test_to_gpd_validates_against_the_official_schema(example: Any) -> None:
    body = example().to_gpd()
    assert schema_errors(body) == []
    assert declared_keys(body, {"$ref": "#/components/schemas/PaymentPositionModel"}) == []
    json.dumps(body)  # plain JSON types only


def test_required_fields_of_the_schema_are_always_there() -> None:
    body = build().to_gpd()
    schemas = spec()["components"]["schemas"]
    assert set(schemas["PaymentPositionModel"]["required"]) <= set(body)
    assert set(schemas["PaymentOptionModel"]["required"]) <= set(body["paymentOption"][0])
    assert set(schemas["TransferModel"]["required"]) <= set(body["paymentOption"][0]["transfer"][0])


def test_the_schema_check_does_catch_a_broken_body() -> None:
    body = build().to_gpd()
    del body["companyName"]
    body["paymentOption"][0]["transfer"][0]["idTransfer"] = "6"
    assert len(schema_errors(body)) == 2


def test_to_gpd_field_names_and_values() -> None:
    body = full_example().to_gpd()
    assert body["type"] == "G"
    assert body["fiscalCode"] == "01234567897"
    assert body["fullName"] == "Rossi S.r.l."
    assert body["companyName"] == "Comune di Palermo"
    assert body["officeName"] == "Ufficio Tributi"
    assert body["switchToExpired"] is True
    assert body["payStandIn"] is False
    assert body["validityDate"] == "2026-02-01T00:00:00.000Z"
    full, *plan = body["paymentOption"]
    assert full["isPartialPayment"] is False
    assert [p["isPartialPayment"] for p in plan] == [True, True, True]
    assert full["dueDate"] == "2026-03-31T22:59:59.000Z"  # 23:59:59 in Rome (UTC+1)
    assert full["retentionDate"] == "2026-12-31T00:00:00.000Z"
    assert full["paymentOptionMetadata"] == [
        {"key": "capitolo", "value": "1010"},
        {"key": "anno", "value": "2026"},
    ]
    tari, tefa = full["transfer"]
    assert [tari["idTransfer"], tefa["idTransfer"]] == ["1", "2"]
    assert tari["amount"] + tefa["amount"] == full["amount"] == 30_000
    assert tari["transferMetadata"] == [{"key": "accertamento", "value": "2026/123"}]
    assert "postalIban" not in tari and "stamp" not in tari
    assert tefa["organizationFiscalCode"] == PROVINCIA
    assert tefa["postalIban"] == POSTAL_IBAN
    assert tefa["companyName"] == "Città Metropolitana di Palermo"
    assert "installment_number" not in json.dumps(body)


def test_minimal_body_leaves_optional_fields_out() -> None:
    body = build().to_gpd()
    assert set(body) == {
        "iupd",
        "type",
        "fiscalCode",
        "fullName",
        "companyName",
        "switchToExpired",
        "payStandIn",
        "paymentOption",
    }
    assert set(body["paymentOption"][0]) == {
        "iuv",
        "amount",
        "description",
        "isPartialPayment",
        "dueDate",
        "transfer",
    }


def test_stamp_body() -> None:
    body = build(
        payment_options=[
            option(
                amount=1_600,
                transfers=[
                    transfer(
                        amount=1_600,
                        iban=None,
                        stamp={"hash_document": HASH, "provincial_residence": "RM"},
                    )
                ],
            )
        ]
    ).to_gpd()
    only = body["paymentOption"][0]["transfer"][0]
    assert only["stamp"] == {"hashDocument": HASH, "stampType": "01", "provincialResidence": "RM"}
    assert "iban" not in only


def test_format_gpd_datetime() -> None:
    moment = datetime(2026, 7, 1, 12, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=2)))
    assert format_gpd_datetime(moment) == "2026-07-01T10:00:00.123Z"


# -- rules, and errors that name the field ----------------------------------------------


def test_transfer_amounts_must_sum_to_the_option_amount() -> None:
    message = errors(payment_options=[option(amount=12_000)])
    assert message == (
        "payment_options.0.transfers: amounts sum to 10000 cents "
        "but the option's amount is 12000 cents"
    )


@pytest.mark.parametrize("count", [0, 6])
def test_one_to_five_transfers(count: int) -> None:
    transfers = [transfer(id_transfer=min(i + 1, 5), amount=100) for i in range(count)]
    message = errors(payment_options=[option(amount=100 * count or 1, transfers=transfers)])
    assert message.startswith("payment_options.0.transfers: an option has 1 to 5 transfers")


def test_id_transfer_above_5_is_refused() -> None:
    message = errors(payment_options=[option(transfers=[transfer(id_transfer=6)])])
    assert message.startswith("payment_options.0.transfers.0.id_transfer: ")


@pytest.mark.parametrize("ids", [(1, 1), (1, 3), (2, 3)])
def test_id_transfer_values_are_1_to_n(ids: tuple[int, int]) -> None:
    transfers = [transfer(id_transfer=i, amount=5_000) for i in ids]
    message = errors(payment_options=[option(transfers=transfers)])
    assert message.startswith("payment_options.0.transfers: id_transfer values must be 1..2")


@pytest.mark.parametrize(
    ("destination", "words"),
    [
        ({"iban": None}, "needs an iban or a stamp"),
        ({"iban": None, "postal_iban": POSTAL_IBAN}, "postal_iban goes with an iban"),
        (
            {"stamp": {"hash_document": HASH, "provincial_residence": "RM"}},
            "either a stamp or an iban",
        ),
        (
            {
                "iban": None,
                "postal_iban": POSTAL_IBAN,
                "stamp": {"hash_document": HASH, "provincial_residence": "RM"},
            },
            "either a stamp or an iban",
        ),
    ],
)
def test_iban_or_stamp(destination: dict[str, Any], words: str) -> None:
    message = errors(payment_options=[option(transfers=[transfer(**destination)])])
    assert message.startswith("payment_options.0.transfers.0: ")
    assert words in message


def test_iban_with_postal_iban_is_allowed() -> None:
    only = build(payment_options=[option(transfers=[transfer(postal_iban=POSTAL_IBAN)])])
    assert only.payment_options[0].transfers[0].postal_iban == POSTAL_IBAN


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("IT61X0542811101000000123456", "check digits are wrong"),
        ("DE89370400440532013000", "Italian IBAN"),
        ("IT60X054281110100000012345", "Italian IBAN"),
        ("IT60005428111010000001234567", "Italian IBAN"),
    ],
)
def test_iban_format_and_check_digits(value: str, words: str) -> None:
    message = errors(payment_options=[option(transfers=[transfer(iban=value)])])
    assert message.startswith("payment_options.0.transfers.0.iban: ")
    assert words in message


def test_iban_is_normalised() -> None:
    spaced = "it60 x054 2811 1010 0000 0123 456"
    built = build(payment_options=[option(transfers=[transfer(iban=spaced)])])
    assert built.payment_options[0].transfers[0].iban == IBAN


def test_postal_iban_must_be_poste_italiane() -> None:
    message = errors(payment_options=[option(transfers=[transfer(postal_iban=iban_with("03069"))])])
    assert message == (
        "payment_options.0.transfers.0.postal_iban: "
        "a postal IBAN must have Poste Italiane's ABI 07601"
    )


@given(
    st.from_regex(r"[A-Z]", fullmatch=True),
    st.from_regex(r"[0-9]{10}", fullmatch=True),
    st.from_regex(r"[A-Z0-9]{12}", fullmatch=True),
)
def test_iban_check_detects_every_single_substitution(cin: str, bank: str, account: str) -> None:
    good = iban_with(bank[:5], account, cin, bank[5:])
    assert is_valid_iban(good)
    for i in range(2, len(good)):
        for other in "0123456789" if good[i].isdigit() else "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
            if other != good[i]:
                assert not is_valid_iban(good[:i] + other + good[i + 1 :])


def test_retention_date_not_before_due_date() -> None:
    due = datetime(2026, 3, 31, tzinfo=UTC)
    message = errors(payment_options=[option(due_date=due, retention_date=due - timedelta(1))])
    assert message == "payment_options.0.retention_date: must not be before due_date"
    assert build(payment_options=[option(due_date=due, retention_date=due)])


def test_due_dates_after_validity_date() -> None:
    validity = datetime(2026, 3, 31, 22, 59, 59, tzinfo=UTC)  # = the option's due date
    message = errors(validity_date=validity)
    assert message == "payment_options: option 0: due_date must be after validity_date"
    assert build(validity_date=validity - timedelta(seconds=1))


def test_naive_datetimes_are_refused() -> None:
    message = errors(payment_options=[option(due_date=datetime(2026, 3, 31))])
    assert message.startswith("payment_options.0.due_date: ")


def test_instalments_and_one_full_option() -> None:
    plan = build(payment_options=[option(), instalment(2), instalment(1)])
    assert plan.full_payment_option is not None
    assert [o.installment_number for o in plan.installments] == [1, 2]
    only_plan = build(payment_options=[instalment(1), instalment(2), instalment(3)])
    assert only_plan.full_payment_option is None


def test_at_most_one_full_payment_option() -> None:
    message = errors(payment_options=[option(1), option(2)])
    assert message == (
        "payment_options: at most one option for the payment in full "
        "(is_partial_payment=False), got 2"
    )


def test_instalments_numbered_1_to_n() -> None:
    message = errors(payment_options=[instalment(1), instalment(3)])
    assert message == "payment_options: instalments must be numbered 1..2, each once"
    twice = instalment(1) | {"iuv": iuv(99)}
    assert "numbered 1..2" in errors(payment_options=[instalment(1), twice])


def test_installment_number_only_on_instalments() -> None:
    expected = (
        "payment_options.0.installment_number: required for an instalment (is_partial_payment=True)"
    )
    missing = instalment(1) | {"installment_number": None}
    assert errors(payment_options=[missing]) == expected
    omitted = {k: v for k, v in instalment(1).items() if k != "installment_number"}
    assert errors(payment_options=[omitted]) == expected
    extra = option() | {"installment_number": 1}
    assert errors(payment_options=[extra]) == (
        "payment_options.0.installment_number: only instalments (is_partial_payment=True) have one"
    )


def test_iuvs_are_distinct_and_valid() -> None:
    same = instalment(1) | {"iuv": iuv(1)}
    assert errors(payment_options=[option(1), same]) == (
        f"payment_options: IUV {iuv(1)} is used by more than one option"
    )
    wrong = iuv(1)[:-1] + str((int(iuv(1)[-1]) + 1) % 10)
    message = errors(payment_options=[option(iuv=wrong)])
    assert message.startswith("payment_options.0.iuv: must be an aux-digit-3 IUV: check digits")


def test_at_least_one_payment_option() -> None:
    assert errors(payment_options=[]) == (
        "payment_options: a debt position needs at least one payment option"
    )


@pytest.mark.parametrize(
    "category", ["0101002XX", "010100IM", "9/0101002im/", "10/0101002IM/", "abc", "9/0101002IM/ x"]
)
def test_taxonomy_category(category: str) -> None:
    message = errors(payment_options=[option(transfers=[transfer(category=category)])])
    assert message.startswith("payment_options.0.transfers.0.category: must be a pagoPA taxonomy")


@pytest.mark.parametrize(
    "category", ["9/0101002IM/", "0101002IM", "9/0101108TS/", "8/0201101SP/", "9/0101002IM/cap1010"]
)
def test_taxonomy_category_accepted(category: str) -> None:
    assert build(payment_options=[option(transfers=[transfer(category=category)])])


@pytest.mark.parametrize("amount", [0, -1, AMOUNT_MAX + 1, 100.0, "100", True])
def test_amounts_are_positive_integer_cents(amount: object) -> None:
    message = errors(payment_options=[option(amount=amount, transfers=[transfer(amount=amount)])])
    assert "payment_options.0.amount: " in message


def test_largest_amount() -> None:
    big = option(amount=AMOUNT_MAX, transfers=[transfer(amount=AMOUNT_MAX)])
    assert build(payment_options=[big]).to_gpd()["paymentOption"][0]["amount"] == AMOUNT_MAX


@pytest.mark.parametrize(
    ("debtor", "code", "ok"),
    [
        ("F", CF, True),
        ("F", "ANONIMO", True),
        ("F", "RSSMRA80A01H5LMX", True),  # omocodia
        ("F", "rssmra80a01h501u", False),
        ("F", "01234567890", False),
        ("G", "01234567897", True),
        ("G", "01234567890", False),  # check digit 7
        ("F", "RSSMRA80A01H501A", False),  # check letter U
        ("G", "RSSMRA80A01H501A", False),
        ("F", "RSSMRA80A01H5LMU", False),  # omocodia letters change the check letter
        ("G", CF, True),
        ("G", "0123456789", False),
        ("G", "ANONIMO", False),
    ],
)
def test_debtor_fiscal_code(debtor: str, code: str, ok: bool) -> None:
    if ok:
        assert build(type=debtor, fiscal_code=code).type is DebtorType(debtor)
    else:
        assert errors(type=debtor, fiscal_code=code).startswith("fiscal_code: ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("full_name", "x" * 71),
        ("full_name", ""),
        ("street_name", "x" * 71),
        ("civic_number", "x" * 17),
        ("postal_code", "x" * 17),
        ("city", "x" * 36),
        ("country", "Italia"),
        ("email", "not-an-address"),
        ("company_name", "x" * 141),
        ("iupd", "has spaces in it"),
        ("iupd", "x" * 257),
        ("type", "X"),
        ("switch_to_expired", "yes"),
    ],
)
def test_debtor_and_position_fields(field: str, value: Any) -> None:
    assert errors(**{field: value}).startswith(f"{field}: ")


def test_description_and_remittance_information_lengths() -> None:
    assert errors(payment_options=[option(description="x" * 141)]).startswith(
        "payment_options.0.description: "
    )
    message = errors(payment_options=[option(transfers=[transfer(remittance_information="")])])
    assert message.startswith("payment_options.0.transfers.0.remittance_information: ")


def test_stamp_fields() -> None:
    def stamped(**stamp: Any) -> str:
        base = {"hash_document": HASH, "provincial_residence": "RM"} | stamp
        return errors(
            payment_options=[
                option(amount=1_600, transfers=[transfer(amount=1_600, iban=None, stamp=base)])
            ]
        )

    prefix = "payment_options.0.transfers.0.stamp."
    assert stamped(stamp_type="02").startswith(prefix + "stamp_type: ")
    assert stamped(provincial_residence="Roma").startswith(prefix + "provincial_residence: ")
    assert stamped(hash_document="not base64!").startswith(prefix + "hash_document: ")
    assert stamped(hash_document="QUJD" * 19).startswith(prefix + "hash_document: ")


def test_metadata_limits() -> None:
    too_many = {f"k{i}": "v" for i in range(11)}
    assert errors(payment_options=[option(metadata=too_many)]).startswith(
        "payment_options.0.metadata: at most 10 entries"
    )


def test_unknown_fields_are_refused() -> None:
    assert errors(status="VALID").startswith("status: ")


def test_errors_and_repr_do_not_leak_personal_data() -> None:
    secret_name = "Gianfranco Segretissimo"
    message = errors(full_name=secret_name, fiscal_code="BADCODE", email="nope")
    assert "BADCODE" not in message and "nope" not in message and secret_name not in message
    shown = repr(full_example()) + repr(build(email="mario.rossi@example.it"))
    for personal in ("01234567897", CF, "Rossi S.r.l.", "Mario Rossi", "mario.rossi@", "Via Roma"):
        assert personal not in shown


def test_models_are_frozen() -> None:
    built = build()
    with pytest.raises(ValidationError):
        built.iupd = "other"


def test_nav_of_an_option() -> None:
    built = build()
    assert built.payment_options[0].nav == "3" + iuv(1)


def test_date_problems() -> None:
    built = build()
    due = built.payment_options[0].due_date
    assert built.date_problems(due - timedelta(days=1)) == []
    assert built.date_problems(due + timedelta(seconds=1)) == [
        "payment_options.0.due_date: is in the past"
    ]
    later = build(validity_date=due - timedelta(days=30))
    assert later.date_problems(due - timedelta(days=31)) == []
    assert later.date_problems(due - timedelta(days=29)) == ["validity_date: is in the past"]


def test_model_classes_accept_their_own_dump() -> None:
    built = full_example()
    assert DebtPosition.model_validate(built.model_dump()) == built
    assert PaymentOption.model_validate(built.payment_options[0].model_dump()) is not None
    assert Transfer.model_validate(built.payment_options[0].transfers[1].model_dump()) is not None


@settings(max_examples=60)
@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=5), st.data())
def test_any_split_into_transfers_validates_and_any_change_does_not(
    shares: list[int], data: st.DataObject
) -> None:
    total = sum(shares)
    transfers = [transfer(id_transfer=i + 1, amount=a) for i, a in enumerate(shares)]
    built = build(payment_options=[option(amount=total, transfers=transfers)])
    body = built.to_gpd()
    assert sum(t["amount"] for t in body["paymentOption"][0]["transfer"]) == total
    delta = data.draw(st.integers(-5, 5).filter(lambda d: d != 0 and d + shares[0] > 0))
    transfers[0] = transfer(id_transfer=1, amount=shares[0] + delta)
    with pytest.raises(ValidationError):
        build(payment_options=[option(amount=total, transfers=transfers)])


# -- characters XML 1.0 cannot carry (paGetPaymentV2 is XML) ----------------------------

_NOT_XML = [
    "\x00",
    "\x07",
    "\x08",
    "\x0b",
    "\x0c",
    "\x1b",
    "\x1f",
    "\ud800",
    "\udfff",
    "\ufffe",
    "\uffff",
]


@pytest.mark.parametrize("bad", _NOT_XML)
@pytest.mark.parametrize(
    ("where", "make"),
    [
        ("full_name", lambda t: {"full_name": f"Mario{t}Rossi"}),
        ("street_name", lambda t: {"street_name": f"Via{t}"}),
        ("city", lambda t: {"city": t + "Roma"}),
        ("company_name", lambda t: {"company_name": f"Comune{t}"}),
        ("office_name", lambda t: {"office_name": f"Tributi{t}"}),
        (
            "payment_options.0.description",
            lambda t: {"payment_options": [option(description=f"TARI{t} 2026")]},
        ),
        (
            "payment_options.0.transfers.0.remittance_information",
            lambda t: {
                "payment_options": [option(transfers=[transfer(remittance_information=f"x{t}")])]
            },
        ),
        (
            "payment_options.0.transfers.0.company_name",
            lambda t: {"payment_options": [option(transfers=[transfer(company_name=f"x{t}")])]},
        ),
        (
            "payment_options.0.metadata",
            lambda t: {"payment_options": [option(metadata={"k": f"v{t}"})]},
        ),
        (
            "payment_options.0.metadata",
            lambda t: {"payment_options": [option(metadata={f"k{t}": "v"})]},
        ),
    ],
)
def test_text_xml_cannot_carry_is_refused_naming_the_field(bad: str, where: str, make: Any) -> None:
    text = errors(**make(bad))
    if "\ud800" <= bad <= "\udfff":  # pydantic refuses lone surrogates by itself
        assert text.startswith(f"{where}: "), text
    else:
        assert text.startswith(
            f"{where}: contains a character XML 1.0 cannot carry (U+{ord(bad):04X}"
        )
    assert bad not in text


@pytest.mark.parametrize(
    "fine", ["\t", "\n", "\r", " ", "\u00e8", "\ud7ff", "\ue000", "\ufffd", "\U0001f600"]
)
def test_characters_xml_can_carry_are_kept(fine: str) -> None:
    assert build(full_name=f"Mario{fine}Rossi").full_name == f"Mario{fine}Rossi"


def test_stored_positions_load_without_the_later_checks() -> None:
    # stored before the check character and XML checks existed: still readable
    stored = (
        build().model_dump_json().replace(CF, "RSSMRA80A01H501A").replace("Mario", "Ma\\u0007rio")
    )
    loaded = DebtPosition.from_stored(stored)
    assert loaded.fiscal_code == "RSSMRA80A01H501A" and "\x07" in loaded.full_name
    with pytest.raises(ValidationError):
        DebtPosition.model_validate_json(stored)
