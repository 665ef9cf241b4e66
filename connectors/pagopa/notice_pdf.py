"""pagoPA payment notices (*avvisi di pagamento*) as A4 PDFs, one at a time or in bulk.

    render_notice(position, creditor=creditor, logo=png_bytes) -> bytes
    render_bulk(positions, creditor, out=binary_file, progress=callback) -> count

What is printed, and where, follows PagoPA's *Guida tecnica sugli avvisi di pagamento*
(avvisi 3.x, Allegato 2); the rules that do not depend on drawing (amount and date
formats, QR and Data Matrix contents, which block goes on which page) are in
:mod:`.notice_layout`. The drawing code is this project's own: no template of the guide is
embedded, and the pagoPA, CBILL and Poste logos are not reproduced (their use is governed by
their owners' brand rules); the words "pagoPA", "BANCHE E ALTRI CANALI", "BOLLETTINO
POSTALE PA" stand in for them.

Codes (made in :mod:`.notice_layout`, drawn here as vector rectangles):

- QR codes with segno, one per payment option (the single payment and each instalment):
  version 4, error correction M, byte mode, 25×25 mm with a quiet zone of at least 4
  modules. segno's mask evaluation is redone faster there, giving the same symbol.
- Poste Italiane's Data Matrix (ECC 200) with zxing-cpp. segno has no Data Matrix;
  pylibdmtx needs the system library libdmtx; of the pure-Python encoders, pyStrich was
  measured 13 times slower than zxing-cpp here and ppf-datamatrix is a 0.2 release from
  2023. zxing-cpp is a maintained C++ library whose wheels carry the native code (no
  system package needed). The symbol is the smallest square that fits the 256 characters
  (48×48 modules for usual content), printed 20×20 mm.

The output is deterministic: reportlab's invariant mode fixes the creation date and the
document id, so the same input gives the same bytes.

Text uses the PDF standard fonts (Helvetica), which cover Windows-1252: letters outside it
lose their accents (``č`` -> ``c``) on the page; see :func:`.notice_layout.to_latin1_text`.
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from .models import DebtPosition, PaymentOption
from .notice_layout import (
    Creditor,
    NoticePage,
    datamatrix_modules,
    datamatrix_payload,
    format_amount,
    format_date,
    format_notice_number,
    instalment_group_size,
    notice_file_name,
    notice_subject,
    page_plan,
    primary_option,
    qr_modules,
    qr_payload,
    to_latin1_text,
)

__all__ = [
    "Creditor",
    "datamatrix_modules",
    "datamatrix_payload",
    "qr_modules",
    "qr_payload",
    "render_bulk",
    "render_notice",
]

# -- geometry (millimetres, measured from the top-left corner of the page) --------------

PAGE_W, PAGE_H = 210.0, 297.0
MARGIN = 10.0
CONTENT_W = PAGE_W - 2 * MARGIN
BOTTOM = PAGE_H - MARGIN
HEADER_BOTTOM = 42.0
#: Where the payment blocks start on page 1 (below the overview) and on later pages.
PAYMENT_TOP_FIRST = 133.0
PAYMENT_TOP_NEXT = HEADER_BOTTOM
SINGLE_H = 50.0
SINGLE_POSTAL_H = 52.0
ROW_H = 56.0
ROW_POSTAL_H = 58.0
GAP = 4.0
POSTAL_GAP = 2.0
QR_SIZE = 25.0
DM_SIZE = 20.0

FONT = "Helvetica"
BOLD = "Helvetica-Bold"
BLUE = (0.0, 0.35, 0.75)
GREY = (0.33, 0.33, 0.33)
BLACK = (0.0, 0.0, 0.0)
LINE = (0.7, 0.7, 0.7)

_RUNS = re.compile(rb"\x01+")

_AMOUNT_NOTE = (
    "L'importo può essere aggiornato automaticamente, per esempio per sgravi, interessi, "
    "sanzioni o costi di notifica: il canale che userai potrebbe quindi chiederti una cifra "
    "diversa da quella indicata qui."
)
_PHYSICAL = (
    "in banca e agli sportelli ATM, negli uffici postali, in ricevitoria, dal tabaccaio, al "
    "supermercato e presso gli altri esercenti abilitati."
)
_CHOOSE = "Utilizza la porzione di avviso relativa al canale di pagamento che preferisci."
_POSTE_NOTE = (
    "Bollettino postale pagabile in tutti gli Uffici Postali e sui canali fisici o digitali "
    "abilitati di Poste Italiane e dell'Ente Creditore."
)


# -- drawing helpers -------------------------------------------------------------------


def _y(top: float) -> float:
    """PDF y (points, from the bottom) of a distance in mm from the top of the page."""
    return float((PAGE_H - top) * mm)


class _Page:
    """A canvas seen in millimetres from the top-left corner.

    All the text of a page goes into one PDF text object, drawn by :meth:`finish` (the
    text never overlaps the graphics, so the order does not matter): much cheaper than
    one ``drawString`` per line.
    """

    def __init__(self, canvas: Canvas) -> None:
        self.c = canvas
        self.t = canvas.beginText()
        self._font: tuple[str, float] | None = None
        self._color: tuple[float, float, float] | None = None

    def text(
        self,
        x: float,
        top: float,
        value: str,
        font: str = FONT,
        size: float = 9,
        color: tuple[float, float, float] = BLACK,
        *,
        right: bool = False,
    ) -> None:
        t = self.t
        if self._font != (font, size):
            t.setFont(font, size)
            self._font = (font, size)
        if self._color != color:
            t.setFillColorRGB(*color)
            self._color = color
        x_pt = x * mm
        if right:
            x_pt -= stringWidth(value, font, size)
        t.setTextOrigin(x_pt, _y(top))
        t.textOut(value)

    def wrapped(
        self,
        x: float,
        top: float,
        value: str,
        width: float,
        font: str = FONT,
        size: float = 9,
        color: tuple[float, float, float] = BLACK,
        *,
        leading: float | None = None,
        max_lines: int = 2,
    ) -> float:
        """Draw ``value`` wrapped to ``width`` mm; return the top of the next line."""
        step = leading if leading is not None else size * 0.3528 * 1.25
        for line in _wrap(value, font, size, width, max_lines):
            self.text(x, top, line, font, size, color)
            top += step
        return top

    def label_value(
        self,
        x: float,
        top: float,
        label: str,
        value: str,
        width: float,
        *,
        size: float = 9,
        bold: bool = True,
        max_lines: int = 1,
    ) -> None:
        self.text(x, top, label, FONT, 6.5, GREY)
        self.wrapped(x, top + 4.2, value, width, BOLD if bold else FONT, size, max_lines=max_lines)

    def rule(self, top: float, x0: float = MARGIN, x1: float = PAGE_W - MARGIN) -> None:
        self.c.setStrokeColorRGB(*LINE)
        self.c.setLineWidth(0.5)
        self.c.line(x0 * mm, _y(top), x1 * mm, _y(top))

    def frame(self, x: float, top: float, width: float, height: float) -> None:
        self.c.setStrokeColorRGB(*LINE)
        self.c.setLineWidth(0.6)
        self.c.rect(x * mm, _y(top + height), width * mm, height * mm, stroke=1, fill=0)

    def modules(self, rows: Sequence[bytes], x: float, top: float, size: float) -> None:
        """Draw a 2D code (rows of 0/1 modules) as one black filled path.

        The path is written in a coordinate system of one unit per module, one
        rectangle per horizontal run of dark modules, with integer coordinates (what the
        tests read back to decode the code from the PDF)."""
        count = len(rows)
        stride = len(rows[0]) + 1
        module = size * mm / count
        ops = [f"q 0 g {module:.5f} 0 0 {module:.5f} {x * mm:.3f} {_y(top + size):.3f} cm"]
        top_row = count - 1
        for run in _RUNS.finditer(b"\x00".join(rows)):
            r, c = divmod(run.start(), stride)
            ops.append(f"{c} {top_row - r} {run.end() - run.start()} 1 re")
        ops.append("f Q")
        self.c.addLiteral("\n".join(ops))

    def finish(self) -> None:
        self.c.drawText(self.t)


@functools.lru_cache(maxsize=4096)
def _wrap(value: str, font: str, size: float, width: float, max_lines: int) -> tuple[str, ...]:
    """``value`` in lines of at most ``width`` mm, at most ``max_lines`` (the last one
    cut with an ellipsis). Cached: most texts repeat from one notice to the next."""
    if stringWidth(value, font, size) <= width * mm:
        return (value,)
    lines: list[str] = simpleSplit(value, font, size, width * mm)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and stringWidth(last + "…", font, size) > width * mm:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    for index, line in enumerate(lines):  # a single word longer than the width
        if stringWidth(line, font, size) > width * mm:
            while line and stringWidth(line + "…", font, size) > width * mm:
                line = line[:-1]
            lines[index] = line + "…"
    return tuple(lines)


# -- the notice ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Notice:
    """Everything drawn, already converted to printable text."""

    position: DebtPosition
    creditor: Creditor
    subject: str
    creditor_name: str
    postal_holder: str
    debtor_name: str
    debtor_cf: str
    address: tuple[str, ...]
    logo: ImageReader | None
    pages: tuple[NoticePage, ...]


def _prepare(position: DebtPosition, creditor: Creditor, logo: ImageReader | None) -> _Notice:
    street = " ".join(p for p in (position.street_name, position.civic_number) if p)
    place = " ".join(p for p in (position.postal_code, position.city) if p)
    if place and position.province:
        place += f" ({position.province})"
    address = tuple(to_latin1_text(part) for part in (street, place) if part)
    return _Notice(
        position=position,
        creditor=creditor,
        subject=to_latin1_text(notice_subject(position)),
        creditor_name=to_latin1_text(creditor.name),
        postal_holder=to_latin1_text(creditor.postal_holder or creditor.name),
        debtor_name=to_latin1_text(position.full_name),
        debtor_cf=position.fiscal_code,
        address=address,
        logo=logo,
        pages=page_plan(position, creditor),
    )


def _header(page: _Page, notice: _Notice, number: int) -> None:
    page.text(MARGIN, 15, "pagoPA", BOLD, 13, BLUE)
    page.text(MARGIN, 21.5, "AVVISO DI PAGAMENTO", BOLD, 8, GREY)
    page.wrapped(MARGIN, 28.5, notice.subject, 140, BOLD, 14, leading=5.8, max_lines=2)
    if notice.logo is not None:
        page.c.drawImage(
            notice.logo,
            160 * mm,
            _y(32),
            40 * mm,
            24 * mm,
            preserveAspectRatio=True,
            anchor="ne",
            mask="auto",
        )
    page.rule(38)
    total = len(notice.pages)
    if total > 1:
        page.text(
            PAGE_W - MARGIN, PAGE_H - 5, f"Pagina {number} di {total}", FONT, 7, GREY, right=True
        )


def _overview(page: _Page, notice: _Notice) -> None:
    creditor, position = notice.creditor, notice.position
    col2 = 110.0
    width = 88.0
    # creditor and debtor
    page.text(MARGIN, 45, "ENTE CREDITORE", BOLD, 8, BLUE)
    page.text(MARGIN, 50, f"Cod. Fiscale {creditor.fiscal_code}", FONT, 8, GREY)
    top = page.wrapped(MARGIN, 56, notice.creditor_name, width, BOLD, 11, max_lines=2)
    if creditor.sector:
        top = page.wrapped(
            MARGIN, top, to_latin1_text(creditor.sector), width, FONT, 9, max_lines=1
        )
    if creditor.contact_info:
        for line in creditor.contact_info.splitlines()[:3]:
            top = page.wrapped(MARGIN, top, to_latin1_text(line), width, FONT, 8, max_lines=1)
    page.text(col2, 45, "DESTINATARIO AVVISO", BOLD, 8, BLUE)
    page.text(col2, 50, f"Cod. Fiscale {notice.debtor_cf}", FONT, 8, GREY)
    top = page.wrapped(col2, 56, notice.debtor_name, width, BOLD, 11, max_lines=2)
    for line in notice.address:
        top = page.wrapped(col2, top, line, width, FONT, 9, max_lines=1)
    page.rule(80)

    # how much and when
    page.text(MARGIN, 87, "QUANTO E QUANDO PAGARE?", BOLD, 9, BLUE)
    single = position.full_payment_option
    instalments = position.installments
    if single is not None:
        page.text(MARGIN, 96, f"{format_amount(single.amount)} Euro", BOLD, 17)
        page.text(MARGIN, 102, f"entro il {format_date(single.due_date)}", FONT, 10)
        rates = f"Puoi pagare per intero oppure in {len(instalments)} rate" if instalments else ""
    else:
        total = sum(o.amount for o in instalments)
        page.text(MARGIN, 96, f"{format_amount(total)} Euro", BOLD, 17)
        page.text(
            MARGIN, 102, f"la prima rata entro il {format_date(instalments[0].due_date)}", FONT, 10
        )
        rates = f"Puoi pagare in {len(instalments)} rate"
    top = 108.0
    if rates:
        page.text(MARGIN, top, rates, BOLD, 9)
        top += 5
    page.wrapped(MARGIN, top, _AMOUNT_NOTE, width, FONT, 7, max_lines=4)

    # where to pay
    page.text(col2, 87, "DOVE PAGARE?", BOLD, 9, BLUE)
    page.text(col2, 93, "PAGA CON L'APP IO", BOLD, 8.5)
    site = f"sul sito di {notice.creditor_name}, " if creditor.online_payment else ""
    digital = (
        f"oppure {site}dal tuo Home Banking, con la tua app di pagamento o con gli altri "
        "canali abilitati."
    )
    top = page.wrapped(col2, 97, digital, width, FONT, 8, max_lines=3)
    page.text(col2, top + 2, "PAGA SUL TERRITORIO", BOLD, 8.5)
    page.wrapped(col2, top + 6, _PHYSICAL, width, FONT, 8, max_lines=3)
    page.text(MARGIN, 129, _CHOOSE, FONT, 8, GREY)


def _single(page: _Page, notice: _Notice, option: PaymentOption, top: float) -> float:
    """The "rata unica" block for banks and other channels; returns its bottom."""
    creditor = notice.creditor
    page.frame(MARGIN, top, CONTENT_W, SINGLE_H)
    page.text(MARGIN + 4, top + 6, "BANCHE E ALTRI CANALI", BOLD, 9, BLUE)
    page.text(
        PAGE_W - MARGIN - 4,
        top + 6,
        f"RATA UNICA entro il {format_date(option.due_date)}",
        BOLD,
        9,
        right=True,
    )
    page.modules(qr_modules(qr_payload(option, creditor)), MARGIN + 4, top + 11, QR_SIZE)
    page.text(MARGIN + 4, top + 41, "Inquadra il codice QR", FONT, 6.5, GREY)
    page.text(MARGIN + 4, top + 44, "con la tua app di pagamento", FONT, 6.5, GREY)
    a, b = 46.0, 124.0
    page.label_value(a, top + 13, "Destinatario", notice.debtor_name, 72)
    page.label_value(a, top + 23, "Ente Creditore", notice.creditor_name, 72)
    page.label_value(a, top + 33, "Oggetto del pagamento", notice.subject, 72, max_lines=2)
    page.text(b, top + 13, "Euro", FONT, 6.5, GREY)
    page.text(b, top + 19, format_amount(option.amount), BOLD, 15)
    if creditor.cbill:
        page.label_value(b, top + 24, "Codice CBILL", creditor.cbill, 70)
    page.text(b, top + 33, "Codice Avviso", FONT, 6.5, GREY)
    page.text(b, top + 38, format_notice_number(option.nav), BOLD, 11.5)
    page.label_value(b, top + 42.5, "Cod. Fiscale Ente Creditore", creditor.fiscal_code, 70)
    return top + SINGLE_H


def _single_postal(page: _Page, notice: _Notice, option: PaymentOption, top: float) -> float:
    """The *Bollettino Postale PA* for the single payment; returns its bottom."""
    creditor, position = notice.creditor, notice.position
    assert creditor.postal_account is not None
    page.frame(MARGIN, top, CONTENT_W, SINGLE_POSTAL_H)
    page.text(MARGIN + 4, top + 6, "BOLLETTINO POSTALE PA", BOLD, 9, BLUE)
    page.text(
        PAGE_W - MARGIN - 4,
        top + 6,
        f"RATA UNICA entro il {format_date(option.due_date)}",
        BOLD,
        9,
        right=True,
    )
    page.text(MARGIN + 4, top + 10.5, _POSTE_NOTE, FONT, 6.5, GREY)
    payload = datamatrix_payload(option, position, creditor, notice_subject(position))
    page.modules(datamatrix_modules(payload), MARGIN + 4, top + 15, DM_SIZE)
    a, b = 40.0, 124.0
    page.label_value(a, top + 16, "sul C/C n.", creditor.postal_account, 80, size=10)
    page.label_value(a, top + 25, "intestato a", notice.postal_holder, 80)
    page.label_value(a, top + 34, "Destinatario", notice.debtor_name, 80)
    page.label_value(a, top + 43, "Oggetto del pagamento", notice.subject, 80)
    page.text(b, top + 16, "Euro", FONT, 6.5, GREY)
    page.text(b, top + 22, format_amount(option.amount), BOLD, 15)
    page.text(b, top + 27, "Codice Avviso", FONT, 6.5, GREY)
    page.text(b, top + 32, format_notice_number(option.nav), BOLD, 11.5)
    tipo = "Tipo P1"
    if creditor.postal_authorization:
        tipo += f"    Aut. n. {to_latin1_text(creditor.postal_authorization)}"
    page.text(b, top + 37.5, tipo, FONT, 8)
    page.label_value(b, top + 42, "Cod. Fiscale Ente Creditore", creditor.fiscal_code, 70)
    return top + SINGLE_POSTAL_H


def _row(
    page: _Page, notice: _Notice, options: Sequence[PaymentOption], size: int, top: float
) -> float:
    """A row of 2 or 3 instalments for banks and other channels; returns its bottom."""
    creditor = notice.creditor
    cell = CONTENT_W / size
    page.frame(MARGIN, top, CONTENT_W, ROW_H)
    for index, option in enumerate(options):
        x = MARGIN + index * cell + 3
        if index:
            page.c.line((x - 3) * mm, _y(top + 3), (x - 3) * mm, _y(top + ROW_H - 3))
        page.text(x, top + 6, f"RATA {option.installment_number}", BOLD, 10, BLUE)
        page.text(x, top + 10.5, f"entro il {format_date(option.due_date)}", FONT, 8)
        page.text(x, top + 15.5, f"Euro {format_amount(option.amount)}", BOLD, 12)
        page.modules(qr_modules(qr_payload(option, creditor)), x, top + 19.5, QR_SIZE)
        xr, width = x + QR_SIZE + 3, cell - QR_SIZE - 9
        page.label_value(
            xr, top + 21, "Cod. Fiscale Ente Creditore", creditor.fiscal_code, width, size=8
        )
        if creditor.cbill:
            page.label_value(xr, top + 30, "Codice CBILL", creditor.cbill, width, size=8)
        if size == 2:
            page.label_value(xr, top + 39, "Destinatario", notice.debtor_name, width, size=8)
        page.text(x, top + 49.5, "Codice Avviso", FONT, 6.5, GREY)
        page.text(x, top + 54, format_notice_number(option.nav), BOLD, 10 if size == 3 else 11)
    return top + ROW_H


def _row_postal(
    page: _Page, notice: _Notice, options: Sequence[PaymentOption], size: int, top: float
) -> float:
    """The *Bollettino Postale PA* of a row of instalments; returns its bottom."""
    creditor, position = notice.creditor, notice.position
    assert creditor.postal_account is not None
    subject = notice_subject(position)
    cell = CONTENT_W / size
    page.frame(MARGIN, top, CONTENT_W, ROW_POSTAL_H)
    for index, option in enumerate(options):
        x = MARGIN + index * cell + 3
        if index:
            page.c.line((x - 3) * mm, _y(top + 3), (x - 3) * mm, _y(top + ROW_POSTAL_H - 3))
        page.text(x, top + 6, "BOLLETTINO POSTALE PA", BOLD, 8, BLUE)
        page.text(
            x,
            top + 10.5,
            f"RATA {option.installment_number} entro il {format_date(option.due_date)}",
            FONT,
            8,
        )
        page.text(x, top + 16, f"Euro {format_amount(option.amount)}", BOLD, 12)
        payload = datamatrix_payload(option, position, creditor, subject)
        page.modules(datamatrix_modules(payload), x, top + 19, DM_SIZE)
        xr, width = x + DM_SIZE + 3, cell - DM_SIZE - 9
        page.label_value(xr, top + 21, "sul C/C n.", creditor.postal_account, width, size=8)
        tipo = "Tipo P1"
        if creditor.postal_authorization:
            tipo += f"  Aut. {to_latin1_text(creditor.postal_authorization)}"
        page.wrapped(xr, top + 31, tipo, width, FONT, 7, max_lines=1)
        page.text(x, top + 43, "intestato a", FONT, 6.5, GREY)
        page.wrapped(x + 13, top + 43, notice.postal_holder, cell - 19, FONT, 6.5, max_lines=1)
        page.text(x, top + 47, f"Cod. Fiscale Ente Creditore {creditor.fiscal_code}", FONT, 6.5)
        page.text(x, top + 51.5, "Codice Avviso", FONT, 6.5, GREY)
        page.text(x, top + 56, format_notice_number(option.nav), BOLD, 10 if size == 3 else 11)
    return top + ROW_POSTAL_H


def _draw(canvas: Canvas, notice: _Notice) -> None:
    postal = notice.creditor.has_postal
    size = instalment_group_size(len(notice.position.installments) or 1)
    for plan in notice.pages:
        page = _Page(canvas)
        _header(page, notice, plan.number)
        top = PAYMENT_TOP_NEXT
        if plan.overview:
            _overview(page, notice)
            top = PAYMENT_TOP_FIRST
        if plan.single is not None:
            top = _single(page, notice, plan.single, top)
            if postal:
                top = _single_postal(page, notice, plan.single, top + POSTAL_GAP)
            top += GAP
        for row in plan.rows:
            top = _row(page, notice, row, size, top)
            if postal:
                top = _row_postal(page, notice, row, size, top + POSTAL_GAP)
            top += GAP
        page.finish()
        canvas.showPage()


def _render(position: DebtPosition, creditor: Creditor, logo: ImageReader | None) -> bytes:
    notice = _prepare(position, creditor, logo)
    buffer = io.BytesIO()
    canvas = Canvas(
        buffer,
        pagesize=(PAGE_W * mm, PAGE_H * mm),
        invariant=1,
        pageCompression=1,
        pdfVersion=(1, 4),
    )
    canvas.setTitle(f"Avviso di pagamento {format_notice_number(primary_option(position).nav)}")
    canvas.setAuthor(notice.creditor_name)
    canvas.setSubject(notice.subject)
    canvas.setCreator("Sportello")
    _draw(canvas, notice)
    canvas.save()
    return buffer.getvalue()


def _logo_reader(logo: bytes | None) -> ImageReader | None:
    if logo is None:
        return None
    try:
        reader = ImageReader(io.BytesIO(logo))
        reader.getSize()
    except Exception as exc:  # reportlab/PIL raise various errors for unreadable images
        raise ValueError("logo: not a PNG or JPEG image reportlab can read") from exc
    return reader


# -- public API ------------------------------------------------------------------------


def render_notice(
    position: DebtPosition, *, creditor: Creditor, logo: bytes | None = None
) -> bytes:
    """The payment notice of ``position`` as an A4 PDF (bytes).

    One page for a single payment; with instalments, the single payment (if any) on page
    1 and the instalments in rows of 2 or 3 on the following pages (see
    :func:`.notice_layout.page_plan`). ``logo`` is the comune's logo, PNG or JPEG, drawn
    in the top-right corner within 40×24 mm. The same input always gives the same bytes.
    """
    return _render(position, creditor, _logo_reader(logo))


def render_bulk(
    positions: Iterable[DebtPosition],
    creditor: Creditor | Callable[[DebtPosition], Creditor],
    *,
    out: BinaryIO,
    progress: Callable[[int], None] | None = None,
    logo: bytes | None = None,
) -> int:
    """Write a ZIP of one PDF per position (``<notice number>.pdf``) to ``out``; return
    how many were written.

    The ZIP is streamed: each PDF is rendered, written and dropped before the next, and
    ``out`` need not be seekable (a pipe or an HTTP response body will do). What stays in
    memory is the ZIP's central directory, written at the end: ``zipfile`` keeps about
    500 bytes per entry (50 MB for 100,000 notices), so split very large runs into
    several ZIPs. ``progress`` is called after each notice with the number written so
    far. ``creditor`` may be a function of the position (e.g. ``Creditor.for_position``,
    so that only positions with a postal IBAN get the postal slip). Entries are deflated
    (the page streams already are; the rest of each PDF shrinks by about a quarter) and
    carry a fixed timestamp, so the ZIP is deterministic too. Two
    positions with the same notice number raise ``ValueError`` (a ZIP would keep both
    under one name).
    """
    reader = _logo_reader(logo)
    seen: set[str] = set()
    count = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for position in positions:
            name = notice_file_name(position)
            if name in seen:
                raise ValueError(f"two positions have the notice number {name[:-4]}")
            seen.add(name)
            own = creditor if isinstance(creditor, Creditor) else creditor(position)
            data = _render(position, own, reader)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
            count += 1
            if progress is not None:
                progress(count)
    return count
