"""Sandbox twin of the PDND token server."""

from .app import PDND_STATE, PdndSandbox, SandboxClient, create_app
from .verify import VoucherInvalid, verify_voucher

__all__ = [
    "PDND_STATE",
    "PdndSandbox",
    "SandboxClient",
    "VoucherInvalid",
    "create_app",
    "verify_voucher",
]
