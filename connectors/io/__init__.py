"""App IO (API for public bodies): client, models, errors. See README.md."""

from .client import PRODUCTION_BASE_URL, IoClient
from .errors import (
    InvalidPayload,
    IoRateLimited,
    MessageNotFound,
    PaymentAmountTooHigh,
    PermissionDenied,
    ProfileNotFound,
    RecipientForbidden,
    SenderNotAllowed,
    Unauthorized,
    outcome_unknown,
)
from .models import (
    ExternalMessageResponseWithContent,
    FeatureLevelType,
    LimitedProfile,
    MessageContent,
    MessageStatus,
    NewMessage,
    Payee,
    PaymentData,
)

__all__ = [
    "PRODUCTION_BASE_URL",
    "ExternalMessageResponseWithContent",
    "FeatureLevelType",
    "InvalidPayload",
    "IoClient",
    "IoRateLimited",
    "LimitedProfile",
    "MessageContent",
    "MessageNotFound",
    "MessageStatus",
    "NewMessage",
    "Payee",
    "PaymentAmountTooHigh",
    "PaymentData",
    "PermissionDenied",
    "ProfileNotFound",
    "RecipientForbidden",
    "SenderNotAllowed",
    "Unauthorized",
    "outcome_unknown",
]
