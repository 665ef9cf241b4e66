"""What goes on a pagoPA payment notice (*avviso di pagamento*), independent of drawing.

The rules are those of PagoPA's *Guida tecnica sugli avvisi di pagamento* ("avvisi 3.x",
docs.pagopa.it/avviso-pagamento, Allegato 2 "Specifiche tecniche"):

- the notice number is printed as 22 characters: the 18 digits in groups of 4 separated
  by a space (``3010 0000 0000 0001 44``);
- amounts in Italian format, thousands with ``.`` and decimals with ``,`` (``1.020,99``),
  dates as ``dd/mm/yyyy``;
- the QR code of each payment option encodes
  ``PAGOPA|002|<notice number>|<creditor fiscal code>|<amount in cents>``, ISO/IEC 18004
  version 4 (33×33 modules), error correction M, printed 25×25 mm;
- when the creditor has a postal account, a *Bollettino Postale PA* section follows the
  single payment and each group of instalments, with Poste Italiane's Data Matrix;
- instalments are grouped by 2 or by 3 on the same row ("layout con multipli di 2 / 3");
  a number of instalments divisible by neither may use either layout, repeated.

The page plan (which block goes on which page) lives here too, so that tests can state
the number of pages without drawing anything, and so do the 2D codes as rows of modules
(:func:`qr_modules` with segno, :func:`datamatrix_modules` with zxing-cpp). Everything
here is pure and deterministic.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import segno
import zxingcpp

from .models import DebtPosition, PaymentOption

__all__ = [
    "POSTE_DOCUMENT_TYPE",
    "QR_VERSION",
    "Creditor",
    "NoticePage",
    "datamatrix_modules",
    "datamatrix_payload",
    "format_amount",
    "format_date",
    "format_notice_number",
    "instalment_group_size",
    "notice_file_name",
    "notice_subject",
    "page_plan",
    "primary_option",
    "qr_modules",
    "qr_payload",
    "to_latin1_text",
]

#: QR code version the guidelines prescribe (33×33 modules), error correction level M.
QR_VERSION = 4
QR_ERROR = "M"
#: Poste Italiane document type of the *Bollettino Postale PA* ("896"), printed as
#: "Tipo P1" on the slip and written as ``3896`` in the Data Matrix code line.
POSTE_DOCUMENT_TYPE = "896"
#: The dates on the notice are the comune's calendar dates.
ROME = ZoneInfo("Europe/Rome")

_CF_ENTE = re.compile(r"[0-9]{11}")
_CBILL = re.compile(r"[A-Z0-9]{5}")
_POSTAL_ACCOUNT = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class Creditor:
    """The comune (or other *ente creditore*) as printed on its notices.

    - ``name``: ``ENTE.NOME``, e.g. "Comune di Roccasecca" (the guidelines allow 100
      characters; long names wrap);
    - ``fiscal_code``: ``ENTE.CF``, 11 digits; it is also the fiscal code in the QR code;
    - ``sector``: ``ENTE.SETTORE``, the office that manages the payment ("Settore Tributi");
    - ``contact_info``: ``ENTE.INFO``, free text (address, phone, e-mail/PEC, website);
      lines separated by ``\\n``;
    - ``cbill``: the CBILL (SIA) code of the creditor, 5 letters or digits, if it has one;
    - ``postal_account``: the *conto corrente postale* number (up to 12 digits): when set,
      every payment option also gets a *Bollettino Postale PA* section;
    - ``postal_authorization``: the number of Poste Italiane's authorisation to print
      the *bollettino* in house ("Aut."), printed when set;
    - ``postal_holder``: the account holder printed after "intestato a" (default:
      ``name``);
    - ``online_payment``: the creditor's own website takes pagoPA payments (``ENTE.CANALE``:
      changes the "Dove pagare" text).
    """

    name: str
    fiscal_code: str
    sector: str | None = None
    contact_info: str | None = None
    cbill: str | None = None
    postal_account: str | None = None
    postal_authorization: str | None = None
    online_payment: bool = False
    postal_holder: str | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("creditor name: must not be empty")
        if not _CF_ENTE.fullmatch(self.fiscal_code):
            raise ValueError("creditor fiscal_code: must be 11 digits")
        if self.cbill is not None and not _CBILL.fullmatch(self.cbill):
            raise ValueError("creditor cbill: must be 5 uppercase letters or digits")
        if self.postal_account is not None and not _POSTAL_ACCOUNT.fullmatch(self.postal_account):
            raise ValueError("creditor postal_account: must be 1 to 12 digits")

    @property
    def has_postal(self) -> bool:
        return self.postal_account is not None

    def for_position(self, position: DebtPosition) -> Creditor:
        """This creditor as ``position``'s notice shows it: with the postal account only
        when one of the position's transfers to this creditor has a postal IBAN for that
        account (its last 12 digits), so that the *Bollettino Postale PA* is printed for
        positions payable to the account, and never for others."""
        if self.postal_account is None:
            return self
        wanted = self.postal_account.zfill(12)
        for option in position.payment_options:
            for transfer in option.transfers:
                iban = transfer.postal_iban
                if (
                    iban is not None
                    and transfer.organization_fiscal_code == self.fiscal_code
                    and iban[-12:] == wanted
                ):
                    return self
        return dataclasses.replace(
            self, postal_account=None, postal_authorization=None, postal_holder=None
        )


# -- formatting ------------------------------------------------------------------------


def format_amount(cents: int) -> str:
    """``123456`` -> ``"1.234,56"`` (Italian: ``.`` for thousands, ``,`` for decimals)."""
    if cents < 0:
        raise ValueError("amount: must not be negative")
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d}"


def format_notice_number(nav: str) -> str:
    """The 18-digit notice number in groups of 4: ``"3010 0000 0000 0001 44"``."""
    return " ".join(nav[i : i + 4] for i in range(0, len(nav), 4))


def format_date(value: datetime) -> str:
    """``dd/mm/yyyy`` of ``value`` on the comune's calendar (Europe/Rome)."""
    return value.astimezone(ROME).strftime("%d/%m/%Y")


#: Letters that Unicode does not decompose into a base letter and an accent.
_NO_DECOMPOSITION = str.maketrans(
    {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Ħ": "H", "ħ": "h", "ı": "i", "Ŧ": "T", "ŧ": "t"}
)


def to_latin1_text(text: str) -> str:
    """``text`` reduced to what the PDF's standard fonts can show (Windows-1252).

    Accented letters outside that set lose their accent (``č`` -> ``c``, ``ł`` -> ``l``);
    anything else that cannot be shown becomes ``?``. Text already in the set is returned
    as is.
    """
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text.translate(_NO_DECOMPOSITION):
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            base = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)
            )
            try:
                base.encode("cp1252")
                out.append(base or "?")
            except UnicodeEncodeError:
                out.append("?")
    return "".join(out)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.translate(_NO_DECOMPOSITION))
    return "".join(c if " " <= c <= "~" else "?" for c in folded if not unicodedata.combining(c))


# -- contents --------------------------------------------------------------------------


def primary_option(position: DebtPosition) -> PaymentOption:
    """The payment in full if there is one, otherwise the first instalment."""
    full = position.full_payment_option
    if full is not None:
        return full
    return position.installments[0]


def notice_subject(position: DebtPosition) -> str:
    """``AVVISO.OGGETTO``: the remittance information of the primary option's first
    transfer (``"TARI 2026"``)."""
    option = primary_option(position)
    first = min(option.transfers, key=lambda t: t.id_transfer)
    return first.remittance_information


def notice_file_name(position: DebtPosition) -> str:
    """``<notice number>.pdf``, with the notice number of the primary option."""
    return f"{primary_option(position).nav}.pdf"


def qr_payload(option: PaymentOption, creditor: Creditor) -> str:
    """The QR code content: ``PAGOPA|002|<NAV>|<creditor CF>|<amount in cents>``.

    The amount is in cents without padding (as PagoPA's own notice generator writes it).
    """
    return f"PAGOPA|002|{option.nav}|{creditor.fiscal_code}|{option.amount}"


def datamatrix_payload(
    option: PaymentOption, position: DebtPosition, creditor: Creditor, subject: str
) -> str:
    """Poste Italiane's Data Matrix content for the *Bollettino Postale PA*.

    ``codfase=NBPA;`` + code line (``18`` + notice number, ``12`` + postal account
    zero-padded to 12, ``10`` + amount in cents zero-padded to 10, ``3`` + document type
    ``896``) + ``1P1`` + creditor CF (11) + debtor CF (16) + debtor name (40) + subject
    (110) + 12 spaces + ``A``; text fields padded with spaces and cut to length. Text is
    folded to ASCII so that every field keeps its width in bytes.
    """
    if creditor.postal_account is None:
        raise ValueError("the creditor has no postal_account: no Bollettino Postale PA")
    code_line = (
        f"18{option.nav}"
        f"12{creditor.postal_account.zfill(12)}"
        f"10{option.amount:010d}"
        f"3{POSTE_DOCUMENT_TYPE}"
    )
    return (
        "codfase=NBPA;"
        + code_line
        + "1P1"
        + creditor.fiscal_code.ljust(11)[:11]
        + _ascii(position.fiscal_code).ljust(16)[:16]
        + _ascii(position.full_name).ljust(40)[:40]
        + _ascii(subject).ljust(110)[:110]
        + " " * 12
        + "A"
    )


# -- page plan -------------------------------------------------------------------------


def instalment_group_size(count: int) -> int:
    """Instalments per row: 3 when ``count`` divides by 3, else 2 when it divides by 2,
    else 3 (the guidelines leave the choice free; 3 uses fewer pages)."""
    if count % 3 == 0:
        return 3
    if count % 2 == 0:
        return 2
    return 3


#: Rows of instalments that fit on the first page (when there is no single payment) and
#: on each following page, without and with the postal section (see notice_pdf's sizes).
FIRST_PAGE_ROWS = {False: 2, True: 1}
NEXT_PAGE_ROWS = {False: 4, True: 2}


@dataclass(frozen=True, slots=True)
class NoticePage:
    """One page: page 1 has the overview (creditor, debtor, amount, where to pay) and the
    single payment if any; every page may carry rows of instalments."""

    number: int
    overview: bool
    single: PaymentOption | None
    rows: tuple[tuple[PaymentOption, ...], ...]


def page_plan(position: DebtPosition, creditor: Creditor) -> tuple[NoticePage, ...]:
    """Which block goes on which page.

    Page 1: header, creditor and debtor, amount and due date, where to pay, then the
    single payment (with its postal section) if there is one; otherwise the first rows
    of instalments. Instalments then follow in rows of :func:`instalment_group_size`,
    :data:`NEXT_PAGE_ROWS` rows a page, each page repeating the header.
    """
    postal = creditor.has_postal
    single = position.full_payment_option
    instalments = position.installments
    size = instalment_group_size(len(instalments)) if instalments else 1
    rows = [tuple(instalments[i : i + size]) for i in range(0, len(instalments), size)]
    first_rows = 0 if single is not None else FIRST_PAGE_ROWS[postal]
    pages = [NoticePage(1, True, single, tuple(rows[:first_rows]))]
    rest = rows[first_rows:]
    per_page = NEXT_PAGE_ROWS[postal]
    for start in range(0, len(rest), per_page):
        pages.append(NoticePage(len(pages) + 1, False, None, tuple(rest[start : start + per_page])))
    return tuple(pages)


# -- 2D codes --------------------------------------------------------------------------
#
# segno picks the QR mask the ISO/IEC 18004 way (7.8.3: score the 8 masked symbols, keep
# the lowest penalty), but does it in pure Python at about 5 ms a symbol, which alone
# would cap a single core below 200 notices a second. So the same choice is made here,
# faster: segno encodes the symbol once with mask 0; the other 7 symbols differ from it
# by a fixed pattern (the masks on the data modules and the format information), which
# is taken once from segno itself; each candidate is scored with segno's own rules
# (``segno.encoder.mask_scores``: N1 runs, N2 2x2 blocks, N3 1:1:3:1:1 patterns, N4
# dark proportion, on the symbol before format information is written) using integer
# rows and C-level string searches. The result is the exact matrix segno returns with
# ``mask=None``; unit tests compare the two on many payloads.

_QR_WIDTH = 17 + 4 * QR_VERSION  # 33
_ROW_BITS = f"0{_QR_WIDTH}b"
_TO_ASCII = bytes.maketrans(b"\x00\x01", b"01")
_FROM_ASCII = bytes.maketrans(b"01", b"\x00\x01")
_N1_LIGHT = re.compile("00000+")
_N1_DARK = re.compile("11111+")
_N3_PATTERN = "1011101"
_PAIR_BITS = (1 << (_QR_WIDTH - 1)) - 1


def _rows_to_ints(matrix: Sequence[bytes | bytearray]) -> tuple[int, ...]:
    return tuple(int(bytes(row).translate(_TO_ASCII), 2) for row in matrix)


def _segno_rows(payload: str, mask: int | None) -> tuple[int, ...]:
    code = segno.make_qr(payload, version=QR_VERSION, error=QR_ERROR, mask=mask, boost_error=False)
    if code.version != QR_VERSION or code.error != QR_ERROR or code.mode != "byte":
        raise ValueError(f"QR payload does not fit version {QR_VERSION}-{QR_ERROR} in byte mode")
    return _rows_to_ints(code.matrix)


def _format_area() -> tuple[int, ...]:
    """Rows with the bits of the format information (and the dark module), which segno
    leaves light while it scores the masks."""
    cells = {(8, c) for c in (*range(6), 7, 8)} | {(r, 8) for r in (*range(6), 7, 8)}
    cells |= {(8, c) for c in range(_QR_WIDTH - 8, _QR_WIDTH)}
    cells |= {(r, 8) for r in range(_QR_WIDTH - 8, _QR_WIDTH)}
    rows = [0] * _QR_WIDTH
    for r, c in cells:
        rows[r] |= 1 << (_QR_WIDTH - 1 - c)
    return tuple(rows)


@functools.cache
def _mask_deltas() -> tuple[tuple[int, ...], ...]:
    """For each mask k, the rows to XOR with a mask-0 symbol to get the mask-k symbol.

    Taken from segno on two unrelated payloads, which must agree: the difference between
    masks does not depend on the data (same version, level and mode)."""
    found = []
    for reference in (
        "PAGOPA|002|000000000000000000|00000000000|1",
        "PAGOPA|002|399999999999999999|99999999999|99999999999",
    ):
        base = _segno_rows(reference, 0)
        found.append(
            tuple(
                tuple(a ^ b for a, b in zip(base, _segno_rows(reference, k), strict=True))
                for k in range(8)
            )
        )
    if found[0] != found[1]:
        raise RuntimeError("segno's QR masks differ from what qr_modules expects")
    return found[0]


def _n3_score(line: str) -> int:
    # segno.encoder.mask_scores' n3_pattern_occurrences, on a string of 0/1
    score = 0
    last = _QR_WIDTH - 7
    index = line.find(_N3_PATTERN)
    while index != -1:
        offset = index + 7
        if (
            index in (0, last)
            or "1" not in line[max(index - 4, 0) : index]
            or "1" not in line[offset : offset + 4]
        ):
            score += 40
        else:
            offset = index + 4
        index = line.find(_N3_PATTERN, offset)
    return score


def _penalty(rows: Sequence[int]) -> int:
    lines = [format(row, _ROW_BITS) for row in rows]
    columns = ["".join(column) for column in zip(*lines, strict=True)]
    everything = (*lines, *columns)
    joined = "|".join(everything)
    light, dark_runs = _N1_LIGHT.findall(joined), _N1_DARK.findall(joined)
    score = sum(map(len, light)) + sum(map(len, dark_runs)) - 2 * (len(light) + len(dark_runs))
    for line in everything:
        if _N3_PATTERN in line:
            score += _n3_score(line)
    blocks = 0
    for upper, lower in itertools.pairwise(rows):
        same = ~(upper ^ lower) & ~(upper ^ (upper >> 1)) & ~(lower ^ (lower >> 1))
        blocks += (same & _PAIR_BITS).bit_count()
    score += 3 * blocks
    dark = sum(row.bit_count() for row in rows)
    percent = float(dark) / (_QR_WIDTH**2)
    score += 10 * int(abs(percent * 100 - 50) / 5)
    return score


def qr_modules(payload: str) -> tuple[bytes, ...]:
    """The QR code of ``payload`` as rows of modules (1 = dark), no quiet zone.

    Version 4 (33×33), level M, byte mode, mask chosen by the ISO/IEC 18004 penalty
    rules: the same matrix as ``segno.make_qr(payload, version=4, error="M",
    boost_error=False).matrix``, about three times faster (see the comment above).
    """
    base = _segno_rows(payload, 0)
    area = _format_area_rows
    best_rows: tuple[int, ...] = base
    best_score = -1
    for delta in _mask_deltas():
        rows = tuple(b ^ d for b, d in zip(base, delta, strict=True))
        score = _penalty(tuple(r & ~a for r, a in zip(rows, area, strict=True)))
        if best_score < 0 or score < best_score:
            best_rows, best_score = rows, score
    return tuple(format(row, _ROW_BITS).encode().translate(_FROM_ASCII) for row in best_rows)


_format_area_rows = _format_area()


def datamatrix_modules(payload: str) -> tuple[bytes, ...]:
    """The Data Matrix (ECC 200, smallest square symbol) of ``payload`` as rows of
    modules (1 = dark), no quiet zone, made with zxing-cpp."""
    code = zxingcpp.create_barcode(payload, zxingcpp.BarcodeFormat.DataMatrix)
    image = memoryview(code.to_image(scale=1, add_quiet_zones=False))  # type: ignore[arg-type]
    rows, cols = image.shape[0], image.shape[1]  # type: ignore[index]
    flat = image.tobytes()
    dark = bytes.maketrans(bytes(range(256)), b"\x01" + b"\x00" * 255)
    return tuple(flat[r * cols : (r + 1) * cols].translate(dark) for r in range(rows))
