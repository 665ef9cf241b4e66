"""Certificates and residence declarations of the reference registry adapters (CSV, SQL,
REST): what ``issue_certificate`` and ``declare_residence_change`` do when the comune's
registry software offers nothing of its own.

The certificate is a PDF drawn with reportlab from the registry's data and marked on every
page "DEMO - documento senza valore legale": a real certificate comes from the comune's
registry software (ANPR's certificates bear the registrar's seal), which a production
adapter calls instead. A residence declaration is written as one JSON file per declaration
in ``practices_dir`` (option; default ``registry-practices`` beside the configuration),
named by its reference, so the registry office can take it up; the reference is the
practice number returned.
"""

from __future__ import annotations

import asyncio
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from .base import (
    CERTIFICATE_KINDS,
    RegistryRecord,
    RegistryRefused,
    ResidenceDeclaration,
)

DEMO_MARK = "DEMO - documento senza valore legale"


def _line(record: RegistryRecord) -> str:
    name = " ".join(x for x in (record.family_name, record.given_name) if x) or "-"
    born = ""
    if record.birth_date:
        born = f", nato/a il {record.birth_date:%d/%m/%Y}"
        if record.birth_place:
            born += f" a {record.birth_place}"
    return f"{name} ({record.fiscal_code}){born}"


def render_certificate(
    kind: str,
    me: RegistryRecord,
    household: list[RegistryRecord],
    *,
    issuer: str,
    issued_at: datetime,
) -> bytes:
    """The certificate ``kind`` of ``me`` as a one-page PDF (A4), marked as a demo."""
    title = CERTIFICATE_KINDS[kind]
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4, invariant=True, pageCompression=0)
    pdf.setTitle(title)
    pdf.setAuthor(issuer or "Ufficio anagrafe")
    width, height = A4
    pdf.saveState()
    pdf.setFont("Helvetica-Bold", 26)
    pdf.setFillGray(0.82)
    pdf.translate(width / 2, height / 2)
    pdf.rotate(35)
    pdf.drawCentredString(0, 0, DEMO_MARK)
    pdf.restoreState()
    y = height - 25 * mm
    pdf.setFont("Helvetica-Bold", 10)
    pdf.drawString(20 * mm, y, DEMO_MARK)
    y -= 12 * mm
    pdf.setFont("Helvetica-Bold", 14)
    pdf.drawString(20 * mm, y, issuer or "Comune")
    y -= 8 * mm
    pdf.setFont("Helvetica", 11)
    pdf.drawString(20 * mm, y, "Ufficio anagrafe")
    y -= 14 * mm
    pdf.setFont("Helvetica-Bold", 13)
    pdf.drawString(20 * mm, y, title.upper())
    y -= 12 * mm
    pdf.setFont("Helvetica", 11)
    lines = ["L'ufficiale d'anagrafe, visti gli atti d'ufficio, certifica che", "", _line(me)]
    if kind in ("residenza", "residenza_stato_famiglia"):
        lines += ["", f"risiede in {me.address or '-'}."]
    if kind in ("stato_famiglia", "residenza_stato_famiglia"):
        lines += ["", "e che la sua famiglia anagrafica è così composta:"]
        for member in sorted(household, key=lambda r: r.fiscal_code):
            relation = f" - {member.relationship}" if member.relationship else ""
            lines.append(f"  {_line(member)}{relation}")
    lines += [
        "",
        f"Rilasciato il {issued_at.astimezone(UTC):%d/%m/%Y} (UTC).",
        "",
        DEMO_MARK + ": prodotto dall'adattatore di riferimento dell'anagrafe di Sportello.",
    ]
    for text in lines:
        if y < 25 * mm:
            pdf.showPage()
            pdf.setFont("Helvetica", 11)
            pdf.drawString(20 * mm, height - 25 * mm, DEMO_MARK)
            y = height - 40 * mm
        pdf.drawString(20 * mm, y, text[:110])
        y -= 6 * mm
    pdf.showPage()
    pdf.save()
    return out.getvalue()


class ReferenceDesk:
    """``issue_certificate`` and ``declare_residence_change`` over ``lookup``/``household``
    (mixed into the reference adapters; options ``comune`` and ``practices_dir``)."""

    _options: dict[str, Any]
    _base_dir: Path

    async def lookup(self, fiscal_code: str) -> RegistryRecord | None:
        raise NotImplementedError

    async def household(self, fiscal_code: str) -> list[RegistryRecord]:
        raise NotImplementedError

    async def issue_certificate(self, fiscal_code: str, kind: str) -> bytes:
        if kind not in CERTIFICATE_KINDS:
            raise RegistryRefused(f"unknown certificate kind {kind!r}")
        me = await self.lookup(fiscal_code)
        if me is None:
            raise RegistryRefused("not a resident of this comune's registry")
        family = await self.household(fiscal_code) if kind != "residenza" else []
        return render_certificate(
            kind,
            me,
            family or [me],
            issuer=str(self._options.get("comune") or ""),
            issued_at=datetime.now(UTC),
        )

    def _practices(self) -> Path:
        raw = Path(str(self._options.get("practices_dir") or "registry-practices"))
        return raw if raw.is_absolute() else self._base_dir / raw

    async def declare_residence_change(self, declaration: ResidenceDeclaration) -> str:
        folder = self._practices()
        target = folder / f"{declaration.reference}.json"
        text = declaration.model_dump_json(indent=2)

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            if target.exists() and json.loads(target.read_text("utf-8")) != json.loads(text):
                raise RegistryRefused(f"{target.name}: another declaration has this reference")
            tmp = target.with_suffix(".tmp")
            tmp.write_text(text, "utf-8")
            tmp.replace(target)

        await asyncio.to_thread(write)
        return f"RES-{declaration.reference}"
