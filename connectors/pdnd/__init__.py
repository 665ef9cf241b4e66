"""PDND Interoperabilità: client assertion, voucher, ModI signing. See README.md."""

from .client import CLIENT_ASSERTION_TYPE, ModiCaller, PdndClient, Voucher
from .environments import ATTESTAZIONE, COLLAUDO, PRODUZIONE, PdndEnvironment
from .errors import InvalidKeyError, ModiSigningError, VoucherRefused
from .keys import generate_key, jwk_thumbprint, public_key_for_upload
from .modi import AuditContext, digest_header, modi_audience, sha256_hex

__all__ = [
    "ATTESTAZIONE",
    "CLIENT_ASSERTION_TYPE",
    "COLLAUDO",
    "PRODUZIONE",
    "AuditContext",
    "InvalidKeyError",
    "ModiCaller",
    "ModiSigningError",
    "PdndClient",
    "PdndEnvironment",
    "Voucher",
    "VoucherRefused",
    "digest_header",
    "generate_key",
    "jwk_thumbprint",
    "modi_audience",
    "public_key_for_upload",
    "sha256_hex",
]
