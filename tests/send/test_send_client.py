"""The SEND connector against the SEND twin over real sockets: preload, upload, request,
acceptance, detail with timeline, legal facts, price, cancellation, streams, and the retry
rules on lost answers (the twin's own record says how many notifications it accepted)."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from pypdf import PdfReader
from send_stack import Stack

from sportello.connectors.errors import ServerError
from sportello.connectors.send import (
    DuplicateNotification,
    InvalidTaxonomyCode,
    NewNotificationRequest,
    NotificationDocument,
    NotificationRefused,
    PaymentEventPagoPa,
    SendClient,
    SendNotFound,
    SendUnauthorized,
    StreamRequest,
)
from sportello.connectors.send.models import (
    NotificationAttachment,
    PagoPaPayment,
    PaymentItem,
    PhysicalAddress,
    Recipient,
    UploadedFile,
)
from sportello.sandbox.send.app import DEMO_API_KEY, OTHER_API_KEY

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
NOTICE_PDF = b"%PDF-1.4\n% avviso pagoPA\n%%EOF\n"
CREDITOR = "00000000999"


def fine(
    doc: UploadedFile,
    *,
    protocol: str,
    token: str | None = "t-1",
    notice: str = "302000100000019421",
    notice_pdf: UploadedFile | None = None,
    digital: bool = True,
    taxonomy: str = "010101P",
    policy: str = "DELIVERY_MODE",
) -> NewNotificationRequest:
    """A traffic fine (act code 010101P) with its pagoPA notice, as the spec describes it."""
    payment = PagoPaPayment(
        noticeCode=notice,
        creditorTaxId=CREDITOR,
        applyCost=True,
        attachment=NotificationAttachment.of(notice_pdf) if notice_pdf else None,
    )
    recipient: dict[str, Any] = {
        "recipientType": "PF",
        "taxId": "RSSMRA80A01H501U",
        "denomination": "Mario Rossi",
        "physicalAddress": PhysicalAddress(
            address="Via Roma 1", municipality="Roma", zip="00100", province="RM"
        ),
        "payments": [PaymentItem(pagoPa=payment)],
    }
    if digital:
        recipient["digitalDomicile"] = {"type": "PEC", "address": "mario.rossi@pec.example.it"}
    return NewNotificationRequest(
        paProtocolNumber=protocol,
        idempotenceToken=token,
        subject="Verbale di accertamento violazione codice della strada",
        recipients=[Recipient(**recipient)],
        documents=[NotificationDocument.of(doc, "Verbale")],
        notificationFeePolicy=policy,  # type: ignore[arg-type]
        physicalCommunicationType="AR_REGISTERED_LETTER",
        senderDenomination="Comune di Esempio",
        senderTaxId=CREDITOR,
        taxonomyCode=taxonomy,
        paFee=100,
        vat=22,
    )


async def record(stack: Stack) -> list[dict[str, Any]]:
    async with stack.session.get(stack.send_url + "/__sandbox/notifications") as response:
        notifications: list[dict[str, Any]] = (await response.json())["notifications"]
        return notifications


async def fault(stack: Stack, **body: Any) -> None:
    async with stack.session.post(stack.send_url + "/__sandbox/faults", json=body) as response:
        assert response.status == 201, await response.text()


async def test_fine_end_to_end_digital(stack: Stack) -> None:
    send = stack.send()
    doc, notice_pdf = await send.upload_files([PDF, NOTICE_PDF])
    created = await send.send_notification(fine(doc, protocol="VERB-1", notice_pdf=notice_pdf))
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert status.accepted and status.iun
    detail = await send.notification(status.iun)
    categories = detail.categories()
    for wanted in (
        "REQUEST_ACCEPTED",
        "SEND_DIGITAL_DOMICILE",
        "SEND_DIGITAL_FEEDBACK",
        "DIGITAL_SUCCESS_WORKFLOW",
        "REFINEMENT",
    ):
        assert wanted in categories
    assert categories.index("REQUEST_ACCEPTED") < categories.index("DIGITAL_SUCCESS_WORKFLOW")
    assert categories.index("DIGITAL_SUCCESS_WORKFLOW") < categories.index("REFINEMENT")
    assert detail.notificationStatus == "EFFECTIVE_DATE"
    assert [h.status for h in detail.notificationStatusHistory] == [
        "ACCEPTED",
        "DELIVERING",
        "DELIVERED",
        "EFFECTIVE_DATE",
    ]
    # legal facts are real PDFs
    facts = await send.legal_facts(status.iun)
    assert {"SENDER_ACK", "PEC_RECEIPT", "DIGITAL_DELIVERY"} <= {
        f.legalFactsId.category for f in facts
    }
    pdf = await send.legal_fact_pdf(status.iun, facts[0].legalFactsId.key)
    assert status.iun in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    # the price of the notice: SEND fee + the sender's fee, no postal cost (digital)
    price = await send.price(CREDITOR, "302000100000019421")
    assert price.iun == status.iun
    assert price.totalPrice == 100 + 100 and price.analogCost == 0
    accepted = [n for n in await record(stack) if n["state"] == "ACCEPTED"]
    assert len(accepted) == 1


async def test_analog_workflow_and_its_cost(stack: Stack) -> None:
    send = stack.send()
    doc = await send.upload_file(PDF)
    created = await send.send_notification(
        fine(doc, protocol="VERB-2", digital=False, notice="302000100000019422")
    )
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert status.iun is not None
    categories = (await send.notification(status.iun)).categories()
    order = [
        "PREPARE_ANALOG_DOMICILE",
        "SEND_ANALOG_DOMICILE",
        "SEND_ANALOG_FEEDBACK",
        "ANALOG_SUCCESS_WORKFLOW",
        "REFINEMENT",
    ]
    assert [c for c in categories if c in order] == order
    price = await send.price(CREDITOR, "302000100000019422")
    assert price.analogCost and price.analogCost > 0
    assert price.totalPrice and price.totalPrice > price.partialPrice  # type: ignore[operator]


async def test_refused_when_document_was_never_uploaded(stack: Stack) -> None:
    send = stack.send()
    ghost = UploadedFile(
        key="PN_NOTIFICATION_ATTACHMENTS-NEVERUPLOADED.pdf",
        version_token="v1",
        sha256="A" * 43 + "=",
    )
    created = await send.send_notification(fine(ghost, protocol="VERB-3"))
    with pytest.raises(NotificationRefused) as info:
        await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert info.value.codes == ["FILE_NOTFOUND"]
    assert (await record(stack))[0]["state"] == "REFUSED"


async def test_duplicate_protocol_and_token_is_409(stack: Stack) -> None:
    send = stack.send()
    doc = await send.upload_file(PDF)
    await send.send_notification(fine(doc, protocol="VERB-4"))
    with pytest.raises(DuplicateNotification) as info:
        await send.send_notification(fine(doc, protocol="VERB-4", notice="302000100000019499"))
    assert info.value.status == 409
    assert info.value.codes == ["PN_GENERIC_INVALIDPARAMETER_DUPLICATED"]


async def test_unknown_taxonomy_code_is_refused_at_once(stack: Stack) -> None:
    send = stack.send()
    doc = await send.upload_file(PDF)
    with pytest.raises(InvalidTaxonomyCode):
        await send.send_notification(fine(doc, protocol="VERB-5", taxonomy="999999Z"))
    assert await record(stack) == []


async def test_lost_answer_with_token_is_resolved_not_sent_twice(stack: Stack) -> None:
    send = stack.send()
    doc = await send.upload_file(PDF)
    # SEND stores the request, then the connection drops before the answer
    await fault(stack, mode="drop", operations=["sendNewNotificationV26"])
    created = await send.send_notification(fine(doc, protocol="VERB-6", token="tok-6"))
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert status.accepted
    notifications = await record(stack)
    assert len(notifications) == 1 and notifications[0]["state"] == "ACCEPTED"


async def test_without_token_a_5xx_after_acting_is_not_retried(stack: Stack) -> None:
    send = stack.send()
    doc = await send.upload_file(PDF)
    await fault(stack, mode="lose", status=503, operations=["sendNewNotificationV26"])
    with pytest.raises(ServerError):
        await send.send_notification(fine(doc, protocol="VERB-7", token=None))
    assert len(await record(stack)) == 1  # one request stored, none sent twice


async def test_upload_and_reads_survive_5xx_and_429(stack: Stack) -> None:
    send = stack.send()
    await fault(stack, mode="fail", status=503, count=2, operations=["upload"])
    await fault(stack, mode="drop", count=1, operations=["upload"])
    await fault(
        stack, mode="fail", status=429, retry_after=0, operations=["presignedUploadRequest"]
    )
    doc = await send.upload_file(PDF)
    created = await send.send_notification(fine(doc, protocol="VERB-8"))
    await fault(stack, mode="fail", status=500, operations=["retrieveNotificationRequestStatusV26"])
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert status.accepted


async def test_cancellation(stack: Stack) -> None:
    send = stack.send()
    doc = await send.upload_file(PDF)
    created = await send.send_notification(fine(doc, protocol="VERB-9"))
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert status.iun is not None
    first = await send.cancel(status.iun)
    assert first.codes == ["NOTIFICATION_CANCELLATION_ACCEPTED"]
    again = await send.cancel(status.iun)
    assert again.codes == ["NOTIFICATION_ALREADY_CANCELLED"]
    detail = await send.notification(status.iun)
    assert detail.notificationStatus == "CANCELLED"
    assert detail.categories()[-1] == "NOTIFICATION_CANCELLED"


@pytest.mark.parametrize("stack", [{"page_size": 3}], indirect=True)
async def test_stream_events_read_once_in_order(stack: Stack) -> None:
    send = stack.send()
    stream = await send.create_stream(StreamRequest(title="tutto", eventType="TIMELINE"))
    status_stream = await send.create_stream(
        StreamRequest(title="stati", eventType="STATUS", filterValues=["ACCEPTED", "DELIVERED"])
    )
    assert {s.streamId for s in await send.streams()} == {stream.streamId, status_stream.streamId}
    doc = await send.upload_file(PDF)
    created = await send.send_notification(fine(doc, protocol="VERB-10"))
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    timeline = [e.elementId for e in (await send.notification(status.iun or "")).timeline]
    seen: list[str] = []
    ids: list[str] = []
    last = None
    while True:
        page = await send.stream_events(stream.streamId, last)
        if not page.events:
            break
        assert len(page.events) <= 3
        seen += [e.element.elementId or "" for e in page.events]
        ids += [e.eventId for e in page.events]
        last = page.last_event_id
    assert seen == timeline  # every element once, in order
    assert ids == sorted(ids) and all(len(i) == 38 for i in ids)
    statuses = await send.stream_events(status_stream.streamId)
    assert [e.newStatus for e in statuses.events] == ["ACCEPTED", "DELIVERED"]
    await send.delete_stream(stream.streamId)
    assert [s.streamId for s in await send.streams()] == [status_stream.streamId]


async def test_wrong_api_key_is_refused(stack: Stack) -> None:
    send = stack.send(api_key="not-a-key")
    with pytest.raises(SendUnauthorized) as info:
        await send.upload_file(PDF)
    assert info.value.status == 403


async def test_voucher_for_another_e_service_is_refused(stack: Stack) -> None:
    send: SendClient = stack.send(purpose=stack.other_purpose)
    with pytest.raises(SendUnauthorized):
        await send.streams()


async def test_payment_events_move_the_notification_to_paid(stack: Stack) -> None:
    """``POST /delivery/events/payment/pagopa``: the creditor tells SEND a notice was paid;
    SEND records PAYMENT (once, however often it is told) and the status PAID; a notice no
    accepted notification of the caller carries is a 404."""
    send = stack.send()
    doc = await send.upload_file(PDF)
    created = await send.send_notification(
        fine(doc, protocol="VERB-PAY", notice="302000100000019499")
    )
    status = await send.wait_for_acceptance(created.notificationRequestId, interval=0.01)
    assert status.iun is not None
    event = PaymentEventPagoPa(
        noticeCode="302000100000019499",
        creditorTaxId=CREDITOR,
        paymentDate="2026-03-10T10:11:12Z",
        amount=8600,
    )
    await send.payment_events([event])
    await send.payment_events([event])  # told twice: one payment
    sent = await send.notification(status.iun)
    assert sent.notificationStatus == "PAID"
    payments = [e for e in sent.timeline if e.category == "PAYMENT"]
    assert len(payments) == 1 and payments[0].details["amount"] == 8600
    assert payments[0].details["noticeCode"] == "302000100000019499"
    unknown = event.model_copy(update={"noticeCode": "302000100000019498"})
    with pytest.raises(SendNotFound):
        await send.payment_events([unknown])
    # another sender cannot pay this comune's notices
    with pytest.raises(SendNotFound):
        await stack.send(api_key=OTHER_API_KEY).payment_events([event])
    # the twin checks the body as SEND does, naming the field
    voucher = await stack.voucher(stack.send_purpose)
    hdrs = {"x-api-key": DEMO_API_KEY, "Authorization": f"Bearer {voucher}"}
    bad = {"events": [{"noticeCode": "12", "creditorTaxId": CREDITOR, "amount": 1}]}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            stack.send_url + "/delivery/events/payment/pagopa", json=bad, headers=hdrs
        ) as r:
            problem = await r.json(content_type=None)
    assert r.status == 400
    elements = {e["element"] for e in problem["errors"]}
    assert {"events[0].noticeCode", "events[0].paymentDate"} <= elements
