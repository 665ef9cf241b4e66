"""SEND (Piattaforma Notifiche Digitali): the B2B API for senders. See docs/send.md."""

from .client import API_KEY_HEADER, PRODUCTION_BASE_URL, UAT_BASE_URL, SendClient
from .errors import (
    DuplicateNotification,
    InvalidTaxonomyCode,
    NotificationRefused,
    SendError,
    SendInvalidRequest,
    SendNotFound,
    SendUnauthorized,
    UploadRejected,
)
from .models import (
    DigitalDomicile,
    NewNotificationRequest,
    NotificationAttachment,
    NotificationDocument,
    PagoPaPayment,
    PaymentEventPagoPa,
    PaymentItem,
    PhysicalAddress,
    Recipient,
    StreamRequest,
    UploadedFile,
    sha256_b64,
)

__all__ = [
    "API_KEY_HEADER",
    "PRODUCTION_BASE_URL",
    "UAT_BASE_URL",
    "DigitalDomicile",
    "DuplicateNotification",
    "InvalidTaxonomyCode",
    "NewNotificationRequest",
    "NotificationAttachment",
    "NotificationDocument",
    "NotificationRefused",
    "PagoPaPayment",
    "PaymentEventPagoPa",
    "PaymentItem",
    "PhysicalAddress",
    "Recipient",
    "SendClient",
    "SendError",
    "SendInvalidRequest",
    "SendNotFound",
    "SendUnauthorized",
    "StreamRequest",
    "UploadRejected",
    "UploadedFile",
    "sha256_b64",
]
