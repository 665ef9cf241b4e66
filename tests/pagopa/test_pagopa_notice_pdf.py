"""pagoPA payment notice PDFs: pages, printed text, QR and Data Matrix contents (decoded
back from the PDF), determinism, the streamed bulk ZIP."""

from __future__ import annotations

import io
import itertools
import random
import re
import zipfile
from datetime import datetime
from typing import Any, BinaryIO, cast
from zoneinfo import ZoneInfo

import pytest
import segno
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader

from sportello.connectors.pagopa import DebtPosition, iuv_for
from sportello.connectors.pagopa import notice_pdf as pdf
from sportello.connectors.pagopa.notice_layout import (
    FIRST_PAGE_ROWS,
    NEXT_PAGE_ROWS,
    datamatrix_modules,
    datamatrix_payload,
    format_amount,
    format_date,
    format_notice_number,
    instalment_group_size,
    page_plan,
    qr_modules,
    to_latin1_text,
)
from sportello.connectors.pagopa.notice_pdf import (
    Creditor,
    qr_payload,
    render_bulk,
    render_notice,
)

ROME = ZoneInfo("Europe/Rome")
COMUNE_CF = "80016350821"
IBAN = "IT60X0542811101000000123456"
DEBTOR_CF = "RSSMRA80A01H501U"

CREDITOR = Creditor(
    name="Comune di Roccasecca dei Volsci",
    fiscal_code=COMUNE_CF,
    sector="Settore Tributi",
    contact_info="Piazza del Municipio 1, 04010 Roccasecca dei Volsci (LT)\n0773 000000",
    cbill="A0EDT",
)
POSTAL = Creditor(
    name="Comune di Roccasecca dei Volsci",
    fiscal_code=COMUNE_CF,
    cbill="A0EDT",
    postal_account="12345678",
    postal_authorization="AUT/2026/123",
    online_payment=True,
)


def transfer(amount: int, info: str = "TARI 2026 - Tassa sui rifiuti") -> dict[str, Any]:
    return {
        "id_transfer": 1,
        "amount": amount,
        "organization_fiscal_code": COMUNE_CF,
        "remittance_information": info,
        "category": "9/0101002IM/",
        "iban": IBAN,
    }


def make_position(
    n: int = 0,
    *,
    instalments: int = 0,
    full: bool = True,
    amount: int = 12_345,
    name: str = "Mario Rossi",
) -> DebtPosition:
    """Position ``n``: IUVs n*1000 (full payment) and n*1000+i (instalment i)."""
    options: list[dict[str, Any]] = []
    if full:
        options.append(
            {
                "iuv": iuv_for(n * 1000 + 1, segregation_code="01"),
                "amount": amount,
                "description": "TARI 2026 - rata unica",
                "due_date": datetime(2026, 3, 31, 23, 59, 59, tzinfo=ROME),
                "transfers": [transfer(amount)],
            }
        )
    for i in range(1, instalments + 1):
        options.append(
            {
                "iuv": iuv_for(n * 1000 + 100 + i, segregation_code="01"),
                "amount": 5_000 + i,
                "description": f"TARI 2026 - rata {i}",
                "due_date": datetime(2026 + i // 12, i % 12 + 1, 28, 23, 59, tzinfo=ROME),
                "is_partial_payment": True,
                "installment_number": i,
                "transfers": [transfer(5_000 + i)],
            }
        )
    return DebtPosition.model_validate(
        {
            "iupd": f"IUPD-{n}",
            "type": "F",
            "fiscal_code": DEBTOR_CF,
            "full_name": name,
            "street_name": "Via Roma",
            "civic_number": "1",
            "postal_code": "04010",
            "city": "Roccasecca dei Volsci",
            "province": "LT",
            "company_name": "Comune di Roccasecca dei Volsci",
            "payment_options": options,
        }
    )


def pdf_text(data: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]


# 2D codes are drawn as "q 0 g <module> 0 0 <module> <x> <y> cm" + one "x y w 1 re" per run
# of dark modules (integer coordinates, y up) + "f Q": read them back into module rows.
_CODE_BLOCK = re.compile(rb"q 0 g [0-9.]+ 0 0 [0-9.]+ [0-9.]+ [0-9.]+ cm\n(.*?)\nf Q", re.S)
_RUN = re.compile(rb"(\d+) (\d+) (\d+) 1 re")


def codes_on_page(page: Any) -> list[tuple[bytes, ...]]:
    content = page.get_contents().get_data()
    codes = []
    for block in _CODE_BLOCK.finditer(content):
        runs = [tuple(map(int, m.groups())) for m in _RUN.finditer(block.group(1))]
        height = max(y for _, y, _ in runs) + 1
        width = max(x + w for x, _, w in runs)
        rows = [bytearray(width) for _ in range(height)]
        for x, y, w in runs:
            rows[height - 1 - y][x : x + w] = b"\x01" * w
        codes.append(tuple(bytes(row) for row in rows))
    return codes


def decode(modules: tuple[bytes, ...]) -> str:
    """Rasterise module rows (4 px a module, quiet zone of 4 modules) and decode them."""
    scale, quiet = 4, 4
    height, width = len(modules), len(modules[0])
    image = Image.new("L", ((width + 2 * quiet) * scale, (height + 2 * quiet) * scale), 255)
    for r, row in enumerate(modules):
        for c, dark in enumerate(row):
            if dark:
                x, y = (c + quiet) * scale, (r + quiet) * scale
                image.paste(0, (x, y, x + scale, y + scale))
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1, "the code does not decode"
    return found[0].text


# -- formats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (1, "0,01"),
        (5, "0,05"),
        (12_345, "123,45"),
        (123_456, "1.234,56"),
        (99_999_999_999, "999.999.999,99"),
    ],
)
def test_amounts_are_in_italian_format(cents: int, text: str) -> None:
    assert format_amount(cents) == text


def test_notice_number_is_printed_in_groups_of_four() -> None:
    assert format_notice_number("301000000000000144") == "3010 0000 0000 0001 44"
    assert len(format_notice_number("301000000000000144")) == 22


def test_dates_are_the_comunes_calendar_dates() -> None:
    # 22:30 UTC on 31 March 2026 is already 1 April in Italy (summer time)
    assert format_date(datetime(2026, 3, 31, 22, 30, tzinfo=ZoneInfo("UTC"))) == "01/04/2026"
    assert format_date(datetime(2026, 12, 31, 23, 59, tzinfo=ROME)) == "31/12/2026"


def test_creditor_is_checked() -> None:
    with pytest.raises(ValueError, match="fiscal_code"):
        Creditor(name="Comune", fiscal_code="123")
    with pytest.raises(ValueError, match="cbill"):
        Creditor(name="Comune", fiscal_code=COMUNE_CF, cbill="a0edt")
    with pytest.raises(ValueError, match="postal_account"):
        Creditor(name="Comune", fiscal_code=COMUNE_CF, postal_account="CC-1234")
    with pytest.raises(ValueError, match="name"):
        Creditor(name=" ", fiscal_code=COMUNE_CF)


def test_text_outside_the_standard_fonts_loses_accents_only() -> None:
    assert to_latin1_text("Città di Forlì") == "Città di Forlì"
    assert to_latin1_text("Dragan Petrović, Łódź, 東") == "Dragan Petrovic, Łódz, ?".replace(
        "Ł", "L"
    )


# -- codes -----------------------------------------------------------------------------


def test_qr_payload_is_the_pagopa_string() -> None:
    position = make_position()
    option = position.payment_options[0]
    assert option.nav == "301000000000000144"
    assert qr_payload(option, CREDITOR) == "PAGOPA|002|301000000000000144|80016350821|12345"


@settings(max_examples=60, deadline=None)
@given(
    nav=st.from_regex(r"3[0-9]{17}", fullmatch=True),
    cf=st.from_regex(r"[0-9]{11}", fullmatch=True),
    cents=st.integers(min_value=1, max_value=99_999_999_999),
)
def test_qr_modules_are_segnos_symbol(nav: str, cf: str, cents: int) -> None:
    """The fast mask choice gives exactly what segno gives with its own mask evaluation."""
    payload = f"PAGOPA|002|{nav}|{cf}|{cents}"
    expected = segno.make_qr(payload, version=4, error="M", boost_error=False)
    assert qr_modules(payload) == tuple(bytes(row) for row in expected.matrix)


def test_qr_modules_cover_all_masks() -> None:
    rng = random.Random(7)
    masks = set()
    for _ in range(80):
        payload = f"PAGOPA|002|3{rng.randrange(10**17):017d}|{COMUNE_CF}|{rng.randrange(1, 10**9)}"
        code = segno.make_qr(payload, version=4, error="M", boost_error=False)
        masks.add(code.mask)
        assert qr_modules(payload) == tuple(bytes(row) for row in code.matrix)
    assert len(masks) >= 6


def test_qr_symbol_is_version_4_and_decodes() -> None:
    payload = "PAGOPA|002|301000000000000144|80016350821|12345"
    modules = qr_modules(payload)
    assert len(modules) == 33 and all(len(row) == 33 for row in modules)
    assert decode(modules) == payload


def test_datamatrix_payload_fields() -> None:
    position = make_position(name="Nicolò Dell'Acqua Bianchi Della Torre Rossi Verdi")
    option = position.payment_options[0]
    payload = datamatrix_payload(option, position, POSTAL, "TARI 2026 - Tassa sui rifiuti")
    assert payload.startswith(
        "codfase=NBPA;"
        "18301000000000000144"
        "12000012345678"
        "100000012345"
        "3896"
        "1P1"
        "80016350821"
        "RSSMRA80A01H501U"
    )
    assert len(payload) == 256
    fields = payload[len("codfase=NBPA;") + 50 + 3 + 11 + 16 :]
    assert fields[:40] == "Nicolo Dell'Acqua Bianchi Della Torre Ro"  # cut to 40, ASCII
    assert fields[40:150] == "TARI 2026 - Tassa sui rifiuti".ljust(110)
    assert fields[150:] == " " * 12 + "A"
    assert decode(datamatrix_modules(payload)) == payload
    with pytest.raises(ValueError, match="postal_account"):
        datamatrix_payload(option, position, CREDITOR, "TARI")


# -- single payment --------------------------------------------------------------------


def test_single_payment_notice() -> None:
    position = make_position()
    data = render_notice(position, creditor=CREDITOR)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (
        210,
        297,
    )
    text = reader.pages[0].extract_text()
    for expected in (
        "3010 0000 0000 0001 44",
        "123,45",
        "Comune di Roccasecca dei Volsci",
        "Mario Rossi",
        DEBTOR_CF,
        COMUNE_CF,
        "A0EDT",
        "TARI 2026 - Tassa sui rifiuti",
        "RATA UNICA entro il 31/03/2026",
        "Settore Tributi",
        "DOVE PAGARE?",
        "PAGA CON L'APP IO",
    ):
        assert expected in text, expected
    assert "BOLLETTINO POSTALE PA" not in text
    assert [decode(code) for code in codes_on_page(reader.pages[0])] == [
        "PAGOPA|002|301000000000000144|80016350821|12345"
    ]


def test_codes_read_back_from_the_pdf_are_the_generated_ones() -> None:
    """Decode by regenerating: the modules drawn in the PDF are the QR of the payload."""
    position = make_position()
    page = PdfReader(io.BytesIO(render_notice(position, creditor=CREDITOR))).pages[0]
    payload = qr_payload(position.payment_options[0], CREDITOR)
    assert payload == "PAGOPA|002|301000000000000144|80016350821|12345"
    assert codes_on_page(page) == [qr_modules(payload)]


def test_single_payment_with_postal_account() -> None:
    position = make_position()
    data = render_notice(position, creditor=POSTAL)
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "BOLLETTINO POSTALE PA" in text
    assert "12345678" in text and "AUT/2026/123" in text and "Tipo P1" in text
    assert "sul sito di Comune di Roccasecca dei Volsci" in text  # online_payment
    decoded = [decode(code) for code in codes_on_page(reader.pages[0])]
    option = position.payment_options[0]
    assert decoded == [
        qr_payload(option, POSTAL),
        datamatrix_payload(option, position, POSTAL, "TARI 2026 - Tassa sui rifiuti"),
    ]


# -- instalments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("full", "instalments", "postal", "pages"),
    [
        (True, 0, False, 1),
        (True, 0, True, 1),
        (True, 2, False, 2),
        (True, 3, False, 2),
        (True, 12, False, 2),  # 4 rows of 3
        (True, 13, False, 3),  # 5 rows of 3
        (False, 1, False, 1),
        (False, 6, False, 1),  # 2 rows of 3 on page 1
        (False, 9, False, 2),
        (True, 4, True, 2),  # 2 rows of 2, each with its postal slips
        (True, 6, True, 2),
        (True, 9, True, 3),
        (False, 2, True, 1),
        (False, 5, True, 2),
    ],
)
def test_instalment_pages(full: bool, instalments: int, postal: bool, pages: int) -> None:
    creditor = POSTAL if postal else CREDITOR
    position = make_position(instalments=instalments, full=full)
    data = render_notice(position, creditor=creditor)
    texts = pdf_text(data)
    assert len(texts) == pages == len(page_plan(position, creditor))
    everything = "\n".join(texts)
    for option in position.payment_options:
        assert format_notice_number(option.nav) in everything
        assert format_amount(option.amount) in everything
    for number in range(1, instalments + 1):
        assert f"RATA {number}" in everything
    if instalments:
        assert f"in {instalments} rate" in texts[0]
    reader = PdfReader(io.BytesIO(data))
    decoded = [decode(code) for page in reader.pages for code in codes_on_page(page)]
    qr = [text for text in decoded if text.startswith("PAGOPA|")]
    assert qr == [qr_payload(option, creditor) for option in _print_order(position)]
    postal_codes = [text for text in decoded if text.startswith("codfase=NBPA;")]
    assert len(postal_codes) == (len(position.payment_options) if postal else 0)
    if pages > 1:
        assert f"Pagina {pages} di {pages}" in texts[-1]


def _print_order(position: DebtPosition) -> list[Any]:
    full = position.full_payment_option
    return ([full] if full else []) + list(position.installments)


@pytest.mark.parametrize(
    ("count", "size"), [(2, 2), (3, 3), (4, 2), (5, 3), (6, 3), (8, 2), (7, 3)]
)
def test_instalments_are_grouped_by_two_or_three(count: int, size: int) -> None:
    assert instalment_group_size(count) == size


def test_blocks_fit_on_the_page() -> None:
    """The page plan's capacities match the drawing sizes (A4 minus 10 mm margins)."""
    single = pdf.PAYMENT_TOP_FIRST + pdf.SINGLE_H + pdf.POSTAL_GAP + pdf.SINGLE_POSTAL_H
    assert single <= pdf.BOTTOM
    for postal in (False, True):
        row = pdf.ROW_H + (pdf.POSTAL_GAP + pdf.ROW_POSTAL_H if postal else 0) + pdf.GAP
        first = FIRST_PAGE_ROWS[postal]
        following = NEXT_PAGE_ROWS[postal]
        assert pdf.PAYMENT_TOP_FIRST + first * row - pdf.GAP <= pdf.BOTTOM
        assert pdf.PAYMENT_TOP_FIRST + (first + 1) * row - pdf.GAP > pdf.BOTTOM
        assert pdf.PAYMENT_TOP_NEXT + following * row - pdf.GAP <= pdf.BOTTOM
        assert pdf.PAYMENT_TOP_NEXT + (following + 1) * row - pdf.GAP > pdf.BOTTOM


# -- determinism, logo, text -----------------------------------------------------------


def _png() -> bytes:
    image = Image.new("RGB", (120, 60), (0, 102, 204))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_same_input_same_bytes() -> None:
    position = make_position(instalments=3)
    logo = _png()
    first = render_notice(position, creditor=POSTAL, logo=logo)
    assert render_notice(position, creditor=POSTAL, logo=logo) == first
    assert render_notice(make_position(instalments=3), creditor=POSTAL, logo=logo) == first
    assert render_notice(position, creditor=POSTAL) != first


def test_logo_is_embedded_and_bad_logos_are_refused() -> None:
    data = render_notice(make_position(), creditor=CREDITOR, logo=_png())
    page = PdfReader(io.BytesIO(data)).pages[0]
    assert len(page.images) == 1
    with pytest.raises(ValueError, match="logo"):
        render_notice(make_position(), creditor=CREDITOR, logo=b"not an image")


def test_names_outside_windows_1252_are_printed_without_accents() -> None:
    position = make_position(name="Dragan Petrović")
    text = pdf_text(render_notice(position, creditor=POSTAL))[0]
    assert "Dragan Petrovic" in text


# -- bulk ------------------------------------------------------------------------------


class _Sink:
    """A write-only, unseekable stream (like a pipe or an HTTP response)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.total = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.total += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def test_bulk_zip_of_fifty_notices(tmp_path: Any) -> None:
    positions = [make_position(n, instalments=2 if n % 5 == 0 else 0) for n in range(1, 51)]
    calls: list[int] = []
    target = tmp_path / "avvisi.zip"
    with target.open("wb") as out:
        count = render_bulk(iter(positions), CREDITOR, out=out, progress=calls.append)
    assert count == 50
    assert calls == list(range(1, 51))
    with zipfile.ZipFile(target) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == [f"{p.payment_options[0].nav}.pdf" for p in positions]
        for position, name in zip(positions, names, strict=True):
            data = archive.read(name)
            reader = PdfReader(io.BytesIO(data))
            assert len(reader.pages) == (2 if position.installments else 1)
            assert format_notice_number(position.payment_options[0].nav) in (
                reader.pages[0].extract_text()
            )
            assert data == render_notice(position, creditor=CREDITOR)


def test_bulk_streams_to_an_unseekable_output() -> None:
    sink = _Sink()
    written_at: list[int] = []
    positions = (make_position(n) for n in range(1, 21))  # a generator: never a list
    out = cast(BinaryIO, sink)
    count = render_bulk(
        positions, POSTAL, out=out, progress=lambda n: written_at.append(sink.total)
    )
    assert count == 20
    # every notice is already out when its progress call comes
    assert all(b > a for a, b in itertools.pairwise(written_at))
    assert written_at[0] > 4000
    with zipfile.ZipFile(io.BytesIO(b"".join(sink.chunks))) as archive:
        assert len(archive.namelist()) == 20
        for name in archive.namelist():
            assert len(PdfReader(io.BytesIO(archive.read(name))).pages) == 1


def test_bulk_is_deterministic_and_refuses_duplicates() -> None:
    first, second = io.BytesIO(), io.BytesIO()
    render_bulk([make_position(1), make_position(2)], CREDITOR, out=first)
    render_bulk([make_position(1), make_position(2)], CREDITOR, out=second)
    assert first.getvalue() == second.getvalue()
    with pytest.raises(ValueError, match="notice number"):
        render_bulk([make_position(1), make_position(1)], CREDITOR, out=io.BytesIO())


# -- the postal slip only for positions payable to the postal account -------------------


def postal_iban(account: str) -> str:
    """A valid Poste Italiane IBAN (ABI 07601) for c/c ``account``."""
    bban = "X" + "07601" + "01600" + account.zfill(12)
    digits = "".join(str(int(ch, 36)) for ch in bban + "IT00")
    return f"IT{98 - int(digits) % 97:02d}{bban}"


def with_transfers(position: DebtPosition, **changes: Any) -> DebtPosition:
    data = position.model_dump()
    for option in data["payment_options"]:
        option["transfers"] = [{**t, **changes} for t in option["transfers"]]
    return DebtPosition.model_validate(data)


def test_postal_slip_only_for_a_postal_iban_of_the_creditors_account() -> None:
    plain = make_position()
    assert POSTAL.for_position(plain) == Creditor(
        name=POSTAL.name, fiscal_code=COMUNE_CF, cbill="A0EDT", online_payment=True
    )
    payable = with_transfers(plain, postal_iban=postal_iban("12345678"))
    assert POSTAL.for_position(payable) is POSTAL
    # another account, or the account of another beneficiary: no slip for ours
    other = with_transfers(plain, postal_iban=postal_iban("87654321"))
    assert not POSTAL.for_position(other).has_postal
    province = with_transfers(
        plain, postal_iban=postal_iban("12345678"), organization_fiscal_code="15376371009"
    )
    assert not POSTAL.for_position(province).has_postal
    assert CREDITOR.for_position(payable) is CREDITOR  # no account configured


def test_postal_holder_is_printed_and_bulk_decides_per_position() -> None:
    holder = Creditor(
        name="Comune di Roccasecca dei Volsci",
        fiscal_code=COMUNE_CF,
        postal_account="12345678",
        postal_authorization="AUT/2026/123",
        postal_holder="Comune di Roccasecca - Servizio Tesoreria",
    )
    payable = with_transfers(make_position(1), postal_iban=postal_iban("12345678"))
    text = pdf_text(render_notice(payable, creditor=holder.for_position(payable)))[0]
    assert "Comune di Roccasecca - Servizio Tesoreria" in text and "BOLLETTINO POSTALE PA" in text
    out = io.BytesIO()
    count = render_bulk([payable, make_position(2)], holder.for_position, out=out)
    assert count == 2
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        texts = {n: pdf_text(archive.read(n))[0] for n in names}
    assert ["BOLLETTINO POSTALE PA" in t for t in texts.values()] == [True, False]
