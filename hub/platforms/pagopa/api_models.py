"""The pagoPA API's request and response models, from which the OpenAPI document is
generated.

The cart body is validated with :class:`PagopaCartRequest`. A debt position is validated
by the connector's own model (``sportello.connectors.pagopa.models.DebtPosition``, after the
hub fills in IUVs and defaults), so :class:`PagopaPositionRequest` reuses its field types
where they are plain constraints, and ``tests/pagopa/test_api_models.py`` checks that the
two agree on valid and invalid examples.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sportello.api.models import absent
from sportello.connectors.pagopa.models import MAX_TRANSFERS, Cents
from sportello.connectors.pagopa.states import DebtPositionStatus

Text140 = Annotated[str, Field(min_length=1, max_length=140)]
Metadata = Annotated[dict[str, str], Field(max_length=10)]
Nav = Annotated[str, Field(pattern=r"^[0-9]{18}$")]
Url = Annotated[str, Field(pattern=r"^https?://[^\s/]+\S*$", max_length=2000)]


def _text(maximum: int) -> Any:
    return Field(default=None, min_length=1, max_length=maximum)


def _omittable(**constraints: Any) -> Any:
    """A request field that may be left out (the hub fills it in)."""
    return Field(default=None, **constraints)


# -- requests ---------------------------------------------------------------------------


class PagopaStamp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hash_document: str = Field(description="base64 digest of the document, 4-72 characters")
    stamp_type: Literal["01"] = "01"
    provincial_residence: str = Field(pattern=r"^[A-Z]{2}$")


class PagopaTransfer(BaseModel):
    """one beneficiary's share: an iban (optionally with a postal_iban) or a stamp"""

    model_config = ConfigDict(extra="forbid")

    id_transfer: int = Field(ge=1, le=MAX_TRANSFERS)
    amount: Cents
    organization_fiscal_code: str = _omittable(
        pattern=r"^[0-9]{11}$",
        description="the beneficiary (default: the tenant's ec_fiscal_code)",
    )
    remittance_information: Text140
    category: str = Field(description="taxonomy code, e.g. 9/0101002IM/")
    iban: str | None = None
    postal_iban: str | None = None
    stamp: PagopaStamp | None = None
    company_name: str | None = _text(140)
    metadata: Metadata = absent()


class PagopaOptionRequest(BaseModel):
    """a payment option; the hub allocates its IUV (send none)"""

    model_config = ConfigDict(extra="forbid")

    amount: Cents
    description: Text140
    due_date: datetime
    retention_date: datetime | None = None
    is_partial_payment: bool = absent()
    installment_number: int | None = Field(default=None, ge=1)
    transfers: list[PagopaTransfer] = Field(min_length=1, max_length=MAX_TRANSFERS)
    metadata: Metadata = absent()


class PagopaPositionRequest(BaseModel):
    """a debt position; the hub allocates the IUVs (options carry none)"""

    model_config = ConfigDict(extra="forbid")

    iupd: str = Field(pattern=r"^[A-Za-z0-9_-]{1,256}$")
    type: Literal["F", "G"] = Field(description="debtor: person (F) or legal entity (G)")
    fiscal_code: str = Field(description="the debtor's, or ANONIMO")
    full_name: str = Field(min_length=1, max_length=70)
    street_name: str | None = _text(70)
    civic_number: str | None = _text(16)
    postal_code: str | None = _text(16)
    city: str | None = _text(35)
    province: str | None = _text(35)
    region: str | None = _text(35)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    email: str | None = Field(default=None, max_length=256)
    company_name: Text140 = absent("the creditor (default: the tenant's name)")
    office_name: str | None = _text(140)
    switch_to_expired: bool = absent()
    validity_date: datetime | None = None
    pay_stand_in: bool = absent()
    payment_options: list[PagopaOptionRequest] = Field(min_length=1)


class PagopaPositionUpdate(PagopaPositionRequest):
    """the whole new content of the position (iupd optional: the path's); options carry no
    iuv: they keep the stored options' IUVs in order, extra ones get new IUVs"""

    iupd: str = _omittable(pattern=r"^[A-Za-z0-9_-]{1,256}$")


class PagopaReturnUrls(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    ok: Url
    cancel: Url
    error: Url


class PagopaCartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    notice_numbers: list[Nav] = Field(
        min_length=1, max_length=5, json_schema_extra={"uniqueItems": True}
    )
    return_urls: PagopaReturnUrls
    email_notice: str | None = Field(
        default=None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        max_length=256,
        description="where Checkout sends the payment's outcome",
    )


# -- answers ----------------------------------------------------------------------------


class PagopaCart(BaseModel):
    redirect_url: str
    notice_numbers: list[str]
    amount: int = Field(description="total, in cents")


class PagopaOption(BaseModel):
    iuv: str
    notice_number: Nav
    amount: int
    description: str
    due_date: datetime
    retention_date: datetime | None = None
    is_partial_payment: bool = absent()
    installment_number: int | None = None
    status: Literal["open", "paid"]
    receipt_id: str | None = None
    paid_at: datetime | None = None
    transfers: list[dict[str, Any]] = absent()
    metadata: dict[str, str] = absent()


class PagopaDebtor(BaseModel):
    """only in GET .../positions/{iupd} (personal_data, audited)"""

    type: Literal["F", "G"] = absent()
    fiscal_code: str = absent()
    full_name: str = absent()
    street_name: str | None = None
    civic_number: str | None = None
    postal_code: str | None = None
    city: str | None = None
    province: str | None = None
    region: str | None = None
    country: str | None = None
    email: str | None = None


class PagopaPosition(BaseModel):
    id: int
    iupd: str
    status: DebtPositionStatus = Field(
        description="GPD's state, with time applied (validity date, expiry)"
    )
    mode: Literal["gpd", "station"]
    company_name: str
    office_name: str | None = None
    validity_date: datetime | None = None
    switch_to_expired: bool = absent()
    pay_stand_in: bool = absent()
    payment_options: list[PagopaOption]
    created_at: datetime = absent()
    updated_at: datetime = absent()
    debtor: PagopaDebtor = absent()


class PagopaReceipt(BaseModel):
    id: int
    receipt_id: str
    notice_number: str
    iuv: str
    iupd: str | None = None
    amount: int
    outcome: Literal["OK", "KO"]
    id_psp: str = absent()
    psp_company_name: str = absent()
    payment_date_time: datetime | None = None
    stand_in: bool = absent()
    version: int = absent()
    note: str | None = None
    received_at: datetime
    forward_status: Literal["pending", "forwarded", "no_adapter", "not_ours"] = absent()
    forwarded_at: datetime | None = None
    role: Literal["creditor", "beneficiary", "unrelated"] = absent(
        "creditor: pays one of the tenant's notices; beneficiary: another creditor's notice "
        "with transfers to the tenant (never touches a position); unrelated: neither (kept "
        "and flagged, not applied, not forwarded)"
    )
    creditor_fiscal_code: str = absent("receipt/fiscalCode")
    data: dict[str, Any] = absent(
        "the whole receipt with debtor and payer: only for keys with personal_data (the "
        "read is audited)"
    )
