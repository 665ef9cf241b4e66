"""Demo data for the GPD sandbox: an organization, a broker and valid debt positions.

``77777777777`` is the creditor body pagoPA's own mocks use (``pagopa-mock-ec``). The
IBAN is the ISO 13616 example of an Italian IBAN; the debtor's fiscal code is the usual
test one. None of this is real data.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sportello.connectors.pagopa.identifiers import iuv_for
from sportello.connectors.pagopa.models import (
    DebtorType,
    DebtPosition,
    PaymentOption,
    Transfer,
)

__all__ = [
    "DEMO_BROKER",
    "DEMO_DEBTOR",
    "DEMO_IBAN",
    "DEMO_ORGANIZATION",
    "demo_iuv",
    "demo_position",
]

DEMO_ORGANIZATION = "77777777777"
DEMO_BROKER = "77777777777"
DEMO_IBAN = "IT60X0542811101000000123456"
DEMO_DEBTOR = "RSSMRA80A01H501U"
_SEGREGATION_CODE = "01"


def demo_iuv(sequence: int) -> str:
    """The aux-digit-3 IUV number ``sequence`` of the demo organization."""
    return iuv_for(sequence, segregation_code=_SEGREGATION_CODE)


def _transfer(amount: int, text: str) -> Transfer:
    return Transfer(
        id_transfer=1,
        amount=amount,
        organization_fiscal_code=DEMO_ORGANIZATION,
        remittance_information=text,
        category="9/0101101IM/",
        iban=DEMO_IBAN,
    )


def demo_position(
    n: int,
    *,
    now: datetime,
    amount: int = 10_000,
    due_in: timedelta = timedelta(days=60),
    instalments: int = 0,
    validity_date: datetime | None = None,
    switch_to_expired: bool = False,
    description: str = "TARI 2026",
) -> DebtPosition:
    """Position ``n``: IUPD ``SPORTELLO-<n>``, one option for the payment in full due
    ``due_in`` after ``now``, plus ``instalments`` instalments (due a month apart, the
    amount split evenly). IUVs are ``demo_iuv(n * 100 + k)``, so positions never share one.
    """
    due = now + due_in
    options = [
        PaymentOption(
            iuv=demo_iuv(n * 100),
            amount=amount,
            description=f"{description} - rata unica",
            due_date=due,
            transfers=(_transfer(amount, description),),
        )
    ]
    if instalments:
        share, rest = divmod(amount, instalments)
        for k in range(1, instalments + 1):
            part = share + (rest if k == instalments else 0)
            options.append(
                PaymentOption(
                    iuv=demo_iuv(n * 100 + k),
                    amount=part,
                    description=f"{description} - rata {k}",
                    due_date=due + timedelta(days=30 * (k - 1)),
                    is_partial_payment=True,
                    installment_number=k,
                    transfers=(_transfer(part, f"{description} rata {k}"),),
                )
            )
    return DebtPosition(
        iupd=f"SPORTELLO-{n:08d}",
        type=DebtorType.PERSON,
        fiscal_code=DEMO_DEBTOR,
        full_name="Mario Rossi",
        company_name="Comune di Prova",
        office_name="Ufficio Tributi",
        validity_date=validity_date,
        switch_to_expired=switch_to_expired,
        payment_options=tuple(options),
    )
