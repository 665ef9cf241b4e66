"""App IO models: the spec's limits, exactly, and errors that name the field."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from sportello.connectors.fiscal_code import person_check_char
from sportello.connectors.io.models import (
    FISCAL_CODE_PATTERN,
    EncodedMessage,
    ExternalMessageResponseWithContent,
    FeatureLevelType,
    LimitedProfile,
    MessageContent,
    MessageStatus,
    NewMessage,
    PaymentData,
    describe_validation_error,
    fiscal_code_body,
    format_timestamp,
    notice_number_check_digits,
    utf16_length,
)

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "io" / "index.yaml"
CF = "PRVLWD80A01X001G"
MARKDOWN = "# Avviso\n\n" + "Il servizio del Comune ti ricorda la scadenza del pagamento. " * 2


@functools.cache
def _checker() -> Any:
    from sportello.sandbox.io.spec import SpecChecker

    return SpecChecker.from_path(SPEC)


def spec_checker() -> Any:
    if not SPEC.exists():
        pytest.skip(f"App IO spec not found at {SPEC} (shared/specs is not part of the repo)")
    return _checker()


def content(**overrides: Any) -> dict[str, Any]:
    return {"subject": "Avviso di pagamento TARI", "markdown": MARKDOWN, **overrides}


def message(**overrides: Any) -> dict[str, Any]:
    return {"fiscal_code": CF, "content": content(), **overrides}


def notice(first16: str) -> str:
    return first16 + notice_number_check_digits(first16)


def errors_of(exc: ValidationError) -> str:
    return describe_validation_error(exc)


# -- subject and markdown limits ---------------------------------------------------------


@pytest.mark.parametrize(("length", "ok"), [(9, False), (10, True), (120, True), (121, False)])
def test_subject_limits(length: int, ok: bool) -> None:
    data = message(content=content(subject="s" * length))
    if ok:
        assert NewMessage.model_validate(data).content.subject == "s" * length
    else:
        with pytest.raises(ValidationError) as info:
            NewMessage.model_validate(data)
        text = errors_of(info.value)
        assert text.startswith("content.subject: must be 10 to 120 characters")
        assert f"got {length}" in text


@pytest.mark.parametrize(
    ("length", "ok"), [(79, False), (80, True), (10_000, True), (10_001, False)]
)
def test_markdown_limits(length: int, ok: bool) -> None:
    data = message(content=content(markdown="m" * length))
    if ok:
        NewMessage.model_validate(data)
    else:
        with pytest.raises(ValidationError) as info:
            NewMessage.model_validate(data)
        assert "content.markdown: must be 80 to 10000 characters" in errors_of(info.value)


def test_lengths_count_utf16_units_like_app_io() -> None:
    # "😀" is one code point but two UTF-16 units: 60 emoji are 120 units, 61 are too many
    assert utf16_length("😀") == 2
    MessageContent.model_validate(content(subject="😀" * 60))
    with pytest.raises(ValidationError, match="got 122"):
        MessageContent.model_validate(content(subject="😀" * 61))
    # accented letters are one unit each
    MessageContent.model_validate(content(subject="è" * 120))


# -- payment data --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "301000000000000144",  # aux 3, segregation 01: SACI example
        "001110000000000164",  # aux 0: GovPay's documented example
        notice("2" + "123456789012345"),
        "112345678901234567",  # aux 1 has no check digits
    ],
)
def test_valid_notice_numbers(number: str) -> None:
    assert PaymentData(amount=100, notice_number=number).notice_number == number


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("401000000000000144", "aux digit"),  # aux digit 4
        ("30100000000000014", "18 digits"),  # 17 digits
        ("3010000000000001440", "18 digits"),  # 19 digits
        ("30100000000000014A", "18 digits"),
        ("301000000000000145", "check digits: the last two digits must be 44"),
    ],
)
def test_invalid_notice_numbers(number: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        PaymentData(amount=100, notice_number=number)
    text = errors_of(info.value)
    assert text.startswith("notice_number:")
    assert reason in text
    assert number not in text  # never echoes the input


@given(st.sampled_from("023"), st.text(alphabet="0123456789", min_size=15, max_size=15))
def test_notice_numbers_with_computed_check_digits_pass(aux: str, rest: str) -> None:
    number = notice(aux + rest)
    PaymentData(amount=1, notice_number=number)
    wrong = number[:16] + f"{(int(number[16:]) + 1) % 100:02d}"
    with pytest.raises(ValidationError):
        PaymentData(amount=1, notice_number=wrong)


@pytest.mark.parametrize(
    ("amount", "ok"),
    [(0, False), (1, True), (9_999_999_999, True), (10_000_000_000, False), (-5, False)],
)
def test_amount_limits(amount: int, ok: bool) -> None:
    data = {"amount": amount, "notice_number": "301000000000000144"}
    if ok:
        assert PaymentData.model_validate(data).amount == amount
    else:
        with pytest.raises(ValidationError, match="amount"):
            PaymentData.model_validate(data)


@pytest.mark.parametrize("amount", [12.5, 100.0, "100", True])
def test_amount_must_be_an_integer_number_of_cents(amount: Any) -> None:
    with pytest.raises(ValidationError, match="amount"):
        PaymentData.model_validate({"amount": amount, "notice_number": "301000000000000144"})


def test_payee_is_an_organization_fiscal_code() -> None:
    ok = {
        "amount": 5,
        "notice_number": "301000000000000144",
        "payee": {"fiscal_code": "01234567890"},
    }
    assert PaymentData.model_validate(ok).payee is not None
    bad = dict(ok, payee={"fiscal_code": "0123456789"})
    with pytest.raises(ValidationError) as info:
        PaymentData.model_validate(bad)
    assert errors_of(info.value).startswith("payee.fiscal_code: is not a valid organization")


# -- message -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fiscal_code", [CF, "AAAAAA00A00A000A", "RSSMRALPTMLAMNPL", "PRVLWD80A01X00MY"]
)
def test_fiscal_code_pattern_accepts_omocodia(fiscal_code: str) -> None:
    assert NewMessage.model_validate(message(fiscal_code=fiscal_code)).fiscal_code == fiscal_code


@pytest.mark.parametrize(
    "fiscal_code",
    [
        "prvlwd80a01x001g",
        "PRVLWD80A01X001",
        "PRVLWD80Z01X001G",
        "12345678901",
        "RSSMRA80A01H501A",  # check letter U
        "RSSMRA80A01H5LMU",  # omocodia letters change the check letter (X)
        "RSSMRA80A32H501U",  # day 32
        "RSSMRA80A00H501U",  # day 00
    ],
)
def test_fiscal_code_pattern_rejects(fiscal_code: str) -> None:
    with pytest.raises(ValidationError) as info:
        NewMessage.model_validate(message(fiscal_code=fiscal_code))
    text = errors_of(info.value)
    assert text.startswith("fiscal_code: is not a valid fiscal code")
    assert fiscal_code not in text
    assert fiscal_code not in str(info.value)  # pydantic's own text hides the input too


@given(st.from_regex(FISCAL_CODE_PATTERN, fullmatch=True))
def test_a_fiscal_code_matching_the_spec_pattern_is_accepted_with_its_check_letter(
    code: str,
) -> None:
    """Any code of App IO's pattern (day of birth 01-31 or 41-71) with the right check
    letter is accepted; with any other check letter it is refused, without the value."""
    day = int(code[9:11].translate(str.maketrans("LMNPQRSTUV", "0123456789")))
    assume(1 <= day <= 31 or 41 <= day <= 71)
    right = code[:15] + person_check_char(code[:15])
    assert NewMessage.model_validate(message(fiscal_code=right)).fiscal_code == right
    wrong = code[:15] + ("A" if right[15] != "A" else "B")
    with pytest.raises(ValidationError) as info:
        NewMessage.model_validate(message(fiscal_code=wrong))
    assert "check character" in errors_of(info.value)
    assert wrong not in str(info.value)


@pytest.mark.parametrize(
    ("ttl", "ok"), [(3_599, False), (3_600, True), (604_800, True), (604_801, False)]
)
def test_time_to_live_limits(ttl: int, ok: bool) -> None:
    if ok:
        assert NewMessage.model_validate(message(time_to_live=ttl)).time_to_live == ttl
    else:
        with pytest.raises(ValidationError, match="time_to_live"):
            NewMessage.model_validate(message(time_to_live=ttl))


def test_feature_level_type() -> None:
    assert NewMessage.model_validate(message()).feature_level_type is FeatureLevelType.STANDARD
    advanced = NewMessage.model_validate(message(feature_level_type="ADVANCED"))
    assert advanced.feature_level_type is FeatureLevelType.ADVANCED
    with pytest.raises(ValidationError, match="feature_level_type"):
        NewMessage.model_validate(message(feature_level_type="PREMIUM"))


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"content\.subjet"):
        NewMessage.model_validate(message(content=content(subjet="typo")))


def test_due_date_needs_a_time_zone_and_is_sent_in_utc_with_milliseconds() -> None:
    rome = timezone(timedelta(hours=2))
    msg = NewMessage.model_validate(
        message(content=content(due_date=datetime(2026, 6, 30, 23, 59, 0, 500_000, tzinfo=rome)))
    )
    assert msg.to_payload()["content"]["due_date"] == "2026-06-30T21:59:00.500Z"
    assert NewMessage.model_validate(msg.to_payload()) == msg
    with pytest.raises(ValidationError) as info:
        NewMessage.model_validate(message(content=content(due_date=datetime(2026, 6, 30))))
    assert errors_of(info.value).startswith("content.due_date: must carry a time zone")
    assert format_timestamp(datetime(2018, 10, 13, tzinfo=UTC)) == "2018-10-13T00:00:00.000Z"


def test_payload_leaves_out_unset_fields() -> None:
    payload = NewMessage.model_validate(message()).to_payload()
    assert payload == {
        "fiscal_code": CF,
        "content": {"subject": "Avviso di pagamento TARI", "markdown": MARKDOWN},
        "feature_level_type": "STANDARD",
    }


def test_repr_leaves_out_fiscal_code_and_body() -> None:
    msg = NewMessage.model_validate(message())
    assert CF not in repr(msg)
    assert "servizio del Comune" not in repr(msg)


def test_several_problems_are_all_named() -> None:
    bad = {"fiscal_code": "nope", "content": {"subject": "short", "markdown": "tiny"}}
    with pytest.raises(ValidationError) as info:
        NewMessage.model_validate(bad)
    text = errors_of(info.value)
    for field in ("fiscal_code", "content.subject", "content.markdown"):
        assert f"{field}:" in text


# -- responses -----------------------------------------------------------------------------


def test_limited_profile() -> None:
    profile = LimitedProfile.model_validate({"sender_allowed": True, "extra": 1})
    assert profile.sender_allowed is True
    assert profile.preferred_languages == []
    with pytest.raises(ValidationError):
        LimitedProfile.model_validate({"preferred_languages": ["it_IT"]})
    with pytest.raises(ValidationError):
        LimitedProfile.model_validate({"sender_allowed": "yes"})


def _answer(status: str | None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "message": {
            "id": "01BX9NSMKVXXS5PSP2FATZMYYY",
            "fiscal_code": CF,
            "created_at": "2026-01-01T10:00:00.000Z",
            "sender_service_id": "svc",
            "feature_level_type": "STANDARD",
        }
    }
    if status is not None:
        answer["status"] = status
    return answer


@pytest.mark.parametrize(
    ("status", "final"),
    [
        ("ACCEPTED", False),
        ("THROTTLED", False),
        ("PROCESSED", True),
        ("REJECTED", True),
        ("FAILED", True),
        ("SOMETHING_NEW", False),
        (None, False),
    ],
)
def test_message_status_values(status: str | None, final: bool) -> None:
    answer = ExternalMessageResponseWithContent.model_validate(_answer(status))
    assert answer.is_final is final
    if status in MessageStatus.__members__:
        assert isinstance(answer.status, MessageStatus)
    else:
        assert answer.status == status  # an unknown value of the extensible enum is kept


# -- against the official spec -------------------------------------------------------------

subjects = st.text(min_size=10, max_size=60).filter(lambda s: 10 <= utf16_length(s) <= 120)
markdowns = st.text(min_size=80, max_size=200).filter(lambda s: 80 <= utf16_length(s) <= 10_000)
payments = st.builds(
    lambda aux, rest, amount, invalid_after, payee: {
        "amount": amount,
        "notice_number": notice(aux + rest),
        "invalid_after_due_date": invalid_after,
        **({"payee": {"fiscal_code": payee}} if payee else {}),
    },
    st.sampled_from("023"),
    st.text(alphabet="0123456789", min_size=15, max_size=15),
    st.integers(1, 9_999_999_999),
    st.booleans(),
    st.one_of(st.none(), st.from_regex(r"^[0-9]{11}$", fullmatch=True)),
)


def _with_check_letter(code: str) -> str:
    return code[:15] + person_check_char(code[:15])


def _real_day(code: str) -> bool:
    day = int(code[9:11].translate(str.maketrans("LMNPQRSTUV", "0123456789")))
    return 1 <= day <= 31 or 41 <= day <= 71


#: App IO's pattern, a real day of birth and the right check letter.
valid_fiscal_codes = (
    st.from_regex(FISCAL_CODE_PATTERN, fullmatch=True).filter(_real_day).map(_with_check_letter)
)

new_messages = st.builds(
    lambda cf, subject, markdown, ttl, level, payment, due: {
        "fiscal_code": cf,
        "content": {
            "subject": subject,
            "markdown": markdown,
            **({"payment_data": payment} if payment else {}),
            **({"due_date": due} if due else {}),
        },
        **({"time_to_live": ttl} if ttl else {}),
        "feature_level_type": level,
    },
    valid_fiscal_codes,
    subjects,
    markdowns,
    st.one_of(st.none(), st.integers(3_600, 604_800)),
    st.sampled_from(["STANDARD", "ADVANCED"]),
    st.one_of(st.none(), payments),
    st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(new_messages)
def test_every_valid_message_payload_validates_against_the_spec(data: dict[str, Any]) -> None:
    checker = spec_checker()
    payload = NewMessage.model_validate(data).to_payload()
    assert checker.request_errors("POST", "/messages", payload) == []
    assert checker.definition_errors("NewMessage", payload) == []


def test_spec_limits_match_the_models() -> None:
    checker = spec_checker()
    base = checker.document["definitions"]["MessageContentBase"]["properties"]
    assert (base["subject"]["minLength"], base["subject"]["maxLength"]) == (10, 120)
    assert (base["markdown"]["minLength"], base["markdown"]["maxLength"]) == (80, 10_000)
    payment = checker.document["definitions"]["PaymentDataBase"]["properties"]
    assert (payment["amount"]["minimum"], payment["amount"]["maximum"]) == (1, 9_999_999_999)
    assert payment["notice_number"]["pattern"] == "^[0123][0-9]{17}$"
    ttl = checker.document["definitions"]["TimeToLiveSeconds"]
    assert (ttl["minimum"], ttl["maximum"]) == (3_600, 604_800)
    pattern = checker.document["parameters"]["FiscalCode"]["pattern"].strip()
    assert FISCAL_CODE_PATTERN == f"^{pattern}$"


# -- encoded messages (sent without validating or serialising again) -----------------


@given(new_messages)
def test_a_stored_message_encodes_to_the_payload_of_its_model(data: dict[str, Any]) -> None:
    message = NewMessage.model_validate(data)
    stored = json.dumps(message.content.to_payload())  # what campaigns store
    encoded = EncodedMessage.from_stored(
        message.fiscal_code, stored, message.feature_level_type.value
    )
    expected = {**message.to_payload(), "feature_level_type": message.feature_level_type.value}
    expected.pop("time_to_live", None)  # a campaign message carries none
    assert json.loads(encoded.body) == expected
    assert json.loads(EncodedMessage.encode(message).body) == message.to_payload()


@pytest.mark.parametrize(
    ("fiscal_code", "content", "level"),
    [
        ("not-a-cf", '{"subject": "x"}', "STANDARD"),
        (CF + "\n", '{"subject": "x"}', "STANDARD"),
        (CF + '","fiscal_code":"X', '{"subject": "x"}', "STANDARD"),
        (CF, '["subject"]', "STANDARD"),
        (CF, '{"subject": "x"}, "fiscal_code": "RSSMRA80A01H501U"', "STANDARD"),
        (CF, '{"subject": "x"} {}', "STANDARD"),
        (CF, '{"subject": "x"}', "PREMIUM"),
    ],
)
def test_a_damaged_stored_message_is_refused(fiscal_code: str, content: str, level: str) -> None:
    with pytest.raises(ValueError):
        EncodedMessage.from_stored(fiscal_code, content, level)


def test_an_encoded_message_repr_has_no_personal_data() -> None:
    encoded = EncodedMessage.from_stored(CF, json.dumps({"subject": "s", "markdown": "m"}))
    assert CF not in repr(encoded)
    assert json.loads(encoded.body)["feature_level_type"] == "STANDARD"


def test_the_profile_body_is_built_only_for_valid_fiscal_codes() -> None:
    assert json.loads(fiscal_code_body(CF) or b"") == {"fiscal_code": CF}
    assert fiscal_code_body(CF.lower()) is None
    assert fiscal_code_body(CF + '"') is None
    assert fiscal_code_body(CF + "\n") is None
