"""Campaign rows: every row rendered and validated before anything is written; bad rows
named with file, row and field; strict templates; euro amounts and Rome dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sportello.connectors.io.models import notice_number_check_digits
from sportello.platforms.io.campaigns import (
    CHUNK_SIZE,
    SEND_BATCH_KIND,
    Template,
    _chunk_jobs,
    prepare,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CF1, CF2 = "RSSMRA80A01H501U", "BNCLRA82B42F205M"


def nav(base16: str = "3020000000000001") -> str:
    return base16 + notice_number_check_digits(base16)


TEMPLATE = Template(
    subject="TARI 2026: avviso per {{ nome }}",
    markdown=(
        "Gentile {{ nome }}, è disponibile l'avviso TARI 2026 del Comune di Esempio. "
        "Importo: {{ amount }} euro. Può pagarlo con pagoPA direttamente in App IO."
    ),
)


def csv_text(*rows: str) -> str:
    return "fiscal_code;expedition_date;due_date;notice_number;amount;nome\n" + "\n".join(rows)


def test_good_rows_become_messages() -> None:
    out = prepare(
        csv_text(
            f"{CF1};2026-12-01;2027-01-31;{nav()};123,45;Mario",
            f"{CF2};;;;;Laura",
        ),
        TEMPLATE,
        source="tari.csv",
        now=NOW,
    )
    assert out.problems == []
    first, second = out.messages
    assert first.row_number == 2 and first.fiscal_code == CF1
    assert first.expedition_at == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)  # 08:00 in Rome
    content = first.message.content
    assert content.subject == "TARI 2026: avviso per Mario"
    assert content.payment_data is not None and content.payment_data.amount == 12345
    assert content.due_date == datetime(2027, 1, 31, 22, 59, 59, tzinfo=UTC)
    assert second.expedition_at == NOW and second.message.content.payment_data is None


def test_every_bad_row_is_reported_with_row_and_field() -> None:
    out = prepare(
        csv_text(
            f"{CF1};2026-12-01;;{nav()};123,45;Mario",
            "NOTACF;2026-12-01;;;;Anna",
            f"{CF2};01/12/2026;;;;Laura",
            f"{CF2};;;{nav()[:-2]}00;10;Laura",
            f"{CF2};;;{nav()};;Laura",
            f"{CF2};;;{nav()};12,345;Laura",
            f"{CF2};;;;",
        ),
        TEMPLATE,
        source="tari.csv",
        now=NOW,
    )
    problems = out.problems
    assert len(problems) == 6, problems
    assert problems[0].startswith("tari.csv: row 3: fiscal_code")
    assert (
        problems[1] == "tari.csv: row 4: expedition_date: expected YYYY-MM-DD or an ISO date-time"
    )
    assert problems[2].startswith("tari.csv: row 5: payment_data.notice_number: has wrong pagoPA")
    assert problems[3] == "tari.csv: row 6: notice_number/amount: give both or neither"
    assert problems[4] == "tari.csv: row 7: amount: expected euros like 123,45 (found '12,345')"
    assert problems[5] == "tari.csv: row 8: expected 6 columns, found 5"
    assert [m.row_number for m in out.messages] == [2]


def test_missing_template_field_is_an_error_not_a_blank() -> None:
    template = Template(subject="Avviso per {{ cognome }}", markdown=TEMPLATE.markdown)
    out = prepare(csv_text(f"{CF1};;;;;Mario"), template, source="x.csv", now=NOW)
    assert out.messages == []
    assert out.problems == ["x.csv: row 2: template: 'cognome' is undefined"]


def test_markdown_too_short_names_the_field() -> None:
    template = Template(subject="Avviso TARI 2026", markdown="Troppo corto {{ nome }}")
    out = prepare(csv_text(f"{CF1};;;;;Mario"), template, source="x.csv", now=NOW)
    assert len(out.problems) == 1
    assert out.problems == [
        "x.csv: row 2: markdown: must be 80 to 10000 characters long (UTF-16 units), got 18"
    ]


def test_header_is_required() -> None:
    out = prepare("", TEMPLATE, source="empty.csv", now=NOW)
    assert out.problems == [
        "empty.csv: row 1: header: expected at least the columns fiscal_code, expedition_date, "
        "due_date, notice_number, amount"
    ]


def test_a_notice_the_hub_keeps_carries_its_payment_data_by_itself() -> None:
    from sportello.platforms.io.campaigns import KnownNotice, notice_numbers

    due = datetime(2027, 3, 31, 21, 59, 59, tzinfo=UTC)
    known = {
        nav(): KnownNotice(amount=15800, due=due, debtor=CF1, payable=True),
        nav("3020000000000002"): KnownNotice(amount=100, due=due, debtor=CF1, payable=False),
    }
    text = csv_text(
        f"{CF1};;;{nav()};;Mario",  # amount and due date come from the position
        f"{CF2};;;{nav()};;Laura",  # someone else's notice
        f"{CF1};;;{nav()};99,00;Mario",  # disagrees with the position
        f"{CF1};;;{nav('3020000000000002')};;Mario",  # already paid
    )
    assert notice_numbers(text) == set(known)
    out = prepare(text, TEMPLATE, source="tari.csv", now=NOW, notices=known.get)
    assert out.problems == [
        "tari.csv: row 3: notice_number: the position belongs to another debtor",
        "tari.csv: row 4: amount: differs from the position's (158.00 euro); "
        "leave it empty to use the position's",
        "tari.csv: row 5: notice_number: the position is paid, expired or cancelled",
    ]
    (first,) = out.messages
    payment = first.message.content.payment_data
    assert payment is not None and payment.amount == 15800 and payment.notice_number == nav()
    assert first.message.content.due_date is not None
    assert first.message.content.due_date.date() == due.date()


def test_campaign_jobs_are_chunks_of_messages_due_together() -> None:
    """One ``io.messages`` job per CHUNK_SIZE messages; a new expedition time starts a new
    chunk, and each chunk is due at its messages' time."""
    monday = datetime(2026, 11, 23, 9, tzinfo=UTC)
    tuesday = monday + timedelta(days=1)
    due = [(i, monday) for i in range(1, CHUNK_SIZE + 3)] + [(100, tuesday), (101, tuesday)]
    jobs = _chunk_jobs("demo", due, resend=True)
    assert [j.payload["message_ids"] for j in jobs] == [
        list(range(1, CHUNK_SIZE + 1)),
        [CHUNK_SIZE + 1, CHUNK_SIZE + 2],
        [100, 101],
    ]
    assert [j.not_before for j in jobs] == [monday, monday, tuesday]
    assert {j.kind for j in jobs} == {SEND_BATCH_KIND} and all(j.payload["resend"] for j in jobs)
    assert _chunk_jobs("demo", []) == []


def test_duplicate_rows_are_flagged_with_the_first_row() -> None:
    out = prepare(
        csv_text(
            f"{CF1};;;{nav()};123,45;Mario",
            f"{CF2};;;;;Laura",
            f"{CF1};;;{nav()};123,45;Mario",  # the same notice again
            f"{CF2};;;;;Laura",  # the same message to the same person again
            f"{CF2};;;;;Laura Bianchi",  # another text: not a duplicate
            f"{CF2};;;{nav()};123,45;Laura",  # the same notice for someone else
        ),
        TEMPLATE,
        source="tari.csv",
        now=NOW,
    )
    assert out.problems == [
        "tari.csv: row 4: notice_number: duplicate of row 2 (the same notice)",
        "tari.csv: row 5: fiscal_code: duplicate of row 3 (the same message to the same person)",
        "tari.csv: row 7: notice_number: duplicate of row 2 (the same notice)",
    ]


def test_a_file_with_only_a_header_has_no_rows_to_send() -> None:
    for text in (csv_text(), csv_text() + "\n", csv_text(";;;;;", "")):
        out = prepare(text, TEMPLATE, source="tari.csv", now=NOW)
        assert out.problems == ["tari.csv: no rows to send"] and out.messages == []


def test_fiscal_codes_are_checked_with_their_check_letter() -> None:
    wrong = CF1[:15] + "A"  # CF1's check letter is U
    out = prepare(csv_text(f"{wrong};;;;;Mario", f"{CF1};;;;;Mario"), TEMPLATE, source="t", now=NOW)
    assert len(out.problems) == 1 and out.problems[0].startswith("t: row 2: fiscal_code: ")
    assert "check character" in out.problems[0] and wrong not in out.problems[0]
    assert [m.fiscal_code for m in out.messages] == [CF1]
