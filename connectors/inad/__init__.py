"""INAD, the national index of digital domiciles, through PDND. See docs/send.md."""

from .client import EXAMPLE_BASE_URL, InadClient
from .errors import BulkNotFound, InadError, InadRejected, InadUnauthorized, NoDigitalDomicile
from .models import BULK_MAX, BulkRequest, BulkState, DigitalAddress, DigitalDomicile

__all__ = [
    "BULK_MAX",
    "EXAMPLE_BASE_URL",
    "BulkNotFound",
    "BulkRequest",
    "BulkState",
    "DigitalAddress",
    "DigitalDomicile",
    "InadClient",
    "InadError",
    "InadRejected",
    "InadUnauthorized",
    "NoDigitalDomicile",
]
