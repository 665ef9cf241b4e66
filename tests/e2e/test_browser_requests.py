"""The citizen's online requests in a real browser (the front office's fixtures and helpers:
tests/e2e/test_browser_frontoffice.py): logged in with SPID,

1. a certificate in bollo: the card, its steps with "Indietro" (the values stay), "Salva la
   bozza", the draft resumed from the card page, the summary, the acknowledgement with
   protocol number, intake date and deadline; the stamp duty paid through the Checkout
   sandbox from the personal area (the receipt shown), the certificate downloaded (a PDF);
   then the rating (stars, follow-up question, free text);
2. a SUAP practice's milestones in "Le mie pratiche" (the reference ``json`` SUAP adapter on
   the demo's export, hub/demo/suap.json);
3. a change of residence declaration through its three steps to the acknowledgement, handed
   to the registry by the outbox (its practice number on the request's page);
4. an appointment booked, then rated from its confirmation.

The ratings are read back from the database. Every page is checked with axe-core and saved
as a screenshot under ``var/artefacts/requests/``.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from factories import drain_outbox
from test_browser_frontoffice import (  # noqa: F401 (fixtures)
    ARTEFACTS,
    CHECKED,
    Env,
    _book,
    _page,
    _spid_login,
    browser,
    env,
    playwright_api,
    pytestmark,
)
from test_browser_frontoffice import check as _check

from sportello.app import ENGINE
from sportello.platforms.requests.tables import requests_ratings
from sportello.sandbox.idp.identities import DEFAULT_IDENTITIES

SHOTS = ARTEFACTS.parent / "requests"
expect = playwright_api.expect


async def check(page: Any, name: str) -> None:
    await _check(page, name, SHOTS)


async def _rate(page: Any, score: int, follow_up: str, comment: str, name: str) -> None:
    """The rating page from the service's link: stars, the follow-up, the free text."""
    await page.wait_for_url(re.compile(r"/sportello/valutazione\?servizio="))
    await check(page, f"{name}-rate")
    await page.locator(f'label[for="score-{score}"]').click()
    await page.get_by_role("button", name="Avanti").click()
    await expect(page.locator("main")).to_contain_text(f"{score} su 5")
    await check(page, f"{name}-rate-more")
    await page.get_by_label(follow_up).check(force=True)
    await page.fill("#f-comment", comment)
    await page.get_by_role("button", name="Invia la valutazione").click()
    await expect(page.locator("main")).to_contain_text("Grazie per la tua valutazione")
    await check(page, f"{name}-rated")


async def _certificate(page: Any, hub: Env) -> None:
    await page.goto(hub.front + "richieste/")
    await check(page, "requests")
    await page.get_by_role("link", name=re.compile("certificato anagrafico")).click()
    await page.wait_for_url(re.compile(r"/richieste/certificato/$"))
    await expect(page.locator("#card")).to_contain_text("Imposta di bollo di 16,00 euro")
    await check(page, "certificate-card")
    await page.get_by_role("button", name="Inizia una nuova richiesta").click()
    await page.wait_for_url(re.compile(r"/certificato/[^/]+/passo/1$"))
    await check(page, "certificate-step-1")
    await page.get_by_label("Certificato di residenza", exact=True).check(force=True)
    await page.get_by_label(re.compile("^In bollo")).check(force=True)
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/passo/2$"))
    # the citizen's data, prefilled from the login; the fiscal code is the identity's
    await expect(page.locator("#f-given_name")).to_have_value("Giulia")
    await expect(page.locator("#f-fiscal_code")).to_have_attribute("readonly", "")
    await check(page, "certificate-step-2")
    # back: the first step keeps its answers
    await page.get_by_role("button", name="Indietro").click()
    await page.wait_for_url(re.compile(r"/passo/1$"))
    await expect(page.get_by_label(re.compile("^In bollo"))).to_be_checked()
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/passo/2$"))
    await page.get_by_role("button", name="Salva la bozza").click()
    await expect(page.locator(".alert-success")).to_contain_text("Bozza salvata")
    await check(page, "certificate-draft-saved")
    # the draft, resumed from the card page where it was left
    await page.goto(hub.front + "richieste/certificato/")
    await expect(page.locator("#drafts")).to_contain_text("Riprendi la bozza")
    await check(page, "certificate-drafts")
    await page.locator("#drafts a").first.click()
    await page.wait_for_url(re.compile(r"/passo/2$"))
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/riepilogo$"))
    await expect(page.locator("#summary")).to_contain_text("Certificato di residenza")
    await expect(page.locator("#summary")).to_contain_text("In bollo")
    await check(page, "certificate-summary")
    await page.get_by_role("button", name="Invia la richiesta").click()
    await page.wait_for_url(re.compile(r"/certificato/[^/]+/$"))
    # the acknowledgement: protocol number, intake date and deadline (C.SE.1.10)
    await expect(page.locator("#protocol")).to_have_text(re.compile(r"^\d{4}/\d{7}$"))
    await expect(page.locator("#request")).to_contain_text("Data di presentazione")
    await expect(page.locator("#deadline")).to_have_text(re.compile(r"^\d\d/\d\d/\d{4}$"))
    await expect(page.locator("#stamp-due")).to_be_visible()
    await check(page, "certificate-ack")
    request_url = page.url
    notice = (await page.locator("#stamp-due strong").inner_text()).strip()

    # the stamp duty, paid through Checkout from the personal area; the receipt shown
    await page.get_by_role("link", name="Paga nell'area personale").click()
    await page.wait_for_url(re.compile(r"/area/pagamenti$"))
    item = page.locator(".sportello-item", has_text=notice)
    await expect(item).to_contain_text("Imposta di bollo")
    await check(page, "stamp-duty-due")
    await item.get_by_role("button", name="Paga con pagoPA").click()
    await page.wait_for_url(re.compile(r"/checkout/p/"))
    await page.get_by_role("button", name="Paga").click()
    await page.wait_for_url(re.compile(r"/area/pagamenti\?esito=ok"))
    item = page.locator(".sportello-item", has_text=notice)
    await expect(item).to_contain_text("Pagato")
    await expect(item).to_contain_text("Ricevuta")
    await check(page, "stamp-duty-paid")

    # the certificate: its download is a PDF
    await page.goto(request_url)
    await expect(page.locator("#milestones")).to_contain_text("bollo")
    await check(page, "certificate-ready")
    async with page.expect_download() as download:
        await page.locator("#download").click()
    saved = await (await download.value).path()
    pdf = await asyncio.to_thread(Path(saved).read_bytes)
    assert pdf.startswith(b"%PDF-") and len(pdf) > 500
    await page.reload()
    await expect(page.locator("#status")).to_contain_text("Conclusa")

    await page.locator("#rate").click()
    await _rate(
        page,
        5,
        "Le indicazioni erano chiare",
        "Certificato scaricato subito dopo il pagamento.",
        "certificate",
    )


async def _residence(page: Any, hub: Env) -> None:
    await page.goto(hub.front + "richieste/residenza/")
    await check(page, "residence-card")
    await page.get_by_role("button", name="Inizia una nuova richiesta").click()
    await page.wait_for_url(re.compile(r"/residenza/[^/]+/passo/1$"))
    await expect(page.locator("#f-family_name")).to_have_value("Prova")
    await expect(page.locator("#f-birth_date")).to_have_value("1985-06-15")  # the registry's
    await page.fill("#f-birth_place", "Firenze")
    await page.fill("#f-email", "giulia@example.it")
    await check(page, "residence-step-1")
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/passo/2$"))
    await page.get_by_label("Da un altro comune italiano").check(force=True)
    # the comune of origin is asked for when coming from another comune
    await page.fill("#f-street", "Via dei Mille")
    await page.fill("#f-number", "12")
    await page.fill("#f-floor", "2")
    await page.fill("#f-moved_on", "2027-03-01")
    await page.get_by_label("Intestatario di un contratto di locazione").check(force=True)
    await page.fill("#f-occupancy_detail", "Contratto registrato a Firenze, n. 1234/3T")
    await check(page, "residence-step-2")
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/passo/3$"))
    await page.fill("#f-movers", "Luca Prova; PRVLCU10A01D612X; figlio")
    await check(page, "residence-step-3")
    await page.get_by_role("button", name="Avanti").click()
    # the summary sends the citizen back to the step with the missing comune of origin
    await page.wait_for_url(re.compile(r"/passo/2\?verifica=1$"))
    await expect(page.locator("#e-previous_comune")).to_be_visible()
    await check(page, "residence-step-2-error")
    await page.fill("#f-previous_comune", "Firenze")
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/passo/3$"))
    await expect(page.locator("#f-movers")).to_have_value(re.compile("Luca Prova"))
    await page.get_by_role("button", name="Avanti").click()
    await page.wait_for_url(re.compile(r"/riepilogo$"))
    await expect(page.locator("#summary")).to_contain_text("Via dei Mille")
    await expect(page.locator("#summary")).to_contain_text("Luca Prova")
    await check(page, "residence-summary")
    await page.get_by_role("button", name="Invia la richiesta").click()
    await page.wait_for_url(re.compile(r"/residenza/[^/]+/$"))
    await expect(page.locator("#protocol")).to_have_text(re.compile(r"^\d{4}/\d{7}$"))
    await expect(page.locator("#deadline")).to_have_text(re.compile(r"^\d\d/\d\d/\d{4}$"))
    await check(page, "residence-ack")
    # the outbox hands the declaration to the registry: its practice number is shown
    await drain_outbox(hub.app, timeout=20)
    await page.reload()
    await expect(page.locator("#request")).to_contain_text("Pratica dell'anagrafe")
    await check(page, "residence-sent")


async def test_requests_practices_and_ratings(env: Env, browser: Any) -> None:  # noqa: F811
    CHECKED.clear()
    giulia = DEFAULT_IDENTITIES[1]
    page = await _page(browser, mobile=True)
    await _spid_login(page, env, giulia)

    await _certificate(page, env)

    # a SUAP practice and its milestones, from the comune's SUAP back office (the demo's)
    await page.goto(env.front + "area/pratiche")
    practice = page.locator(".sportello-item", has_text="SUAP-DEMO-2027-0042")
    await expect(practice.locator(".sportello-milestones li")).to_have_count(3)
    await expect(practice).to_contain_text("In istruttoria")
    await expect(practice).to_contain_text("Conclusa: esito positivo")
    await expect(page.locator("#items")).not_to_contain_text("dehors")  # Giovanni's
    await check(page, "my-practices")

    await _residence(page, env)

    # both requests in "Le mie richieste", with their milestones
    await page.goto(env.front + "area/richieste")
    await expect(page.locator("#items")).to_contain_text("certificato anagrafico")
    await expect(page.locator("#items")).to_contain_text("cambio di residenza")
    await check(page, "my-requests")

    # an appointment, then its rating from the confirmation page
    await _book(page, env, logged_in=True, shots=SHOTS)
    await page.get_by_role("link", name=re.compile("Valutalo")).click()
    await _rate(page, 2, "Ho avuto problemi tecnici", "Pochi orari il sabato.", "booking")

    async with env.app[ENGINE].connect() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    requests_ratings.c.service,
                    requests_ratings.c.score,
                    requests_ratings.c.follow_up,
                    requests_ratings.c.comment,
                ).order_by(requests_ratings.c.id)
            )
        ).all()
    assert [(r.service, r.score, r.comment) for r in rows] == [
        ("requests.certificato", 5, "Certificato scaricato subito dopo il pagamento."),
        ("prenotazione", 2, "Pochi orari il sabato."),
    ]
    assert all(r.follow_up for r in rows)
    print(f"\nscreenshots and axe checks ({len(CHECKED)} pages) in {SHOTS}")
