"""The names the PDND twin goes by: the ``iss`` of the vouchers it signs and the ``aud``
it wants in client assertions (PDND's own are ``interop.pagopa.it`` and
``auth.interop.pagopa.it/client-assertion``; the twin's end in ``.local`` so a voucher it
signs can never pass for a real one). The twins of the e-services behind PDND (ANPR,
SEND, INAD) expect vouchers from this issuer.

The connector's sandbox environment must name the same hosts; a test compares them
(``tests/sandbox/test_pdnd_twin_keys.py``), the twin does not import them (issue 13).
"""

from __future__ import annotations

__all__ = ["SANDBOX_ASSERTION_AUDIENCE", "SANDBOX_ISSUER"]

SANDBOX_ISSUER = "sandbox.interop.pagopa.local"
SANDBOX_ASSERTION_AUDIENCE = "auth.sandbox.interop.pagopa.local/client-assertion"
