"""Who may call a tenant's EC station (``[tenants.pagopa.station_auth]``).

pagoPA authenticates itself to a station with mutual TLS (the Node's client certificate;
devportal "Connectivity" appendix); TLS is usually terminated by a proxy in front of the
hub, which verifies the certificate and forwards it in a header. A station may also require
a shared key in a header (``Ocp-Apim-Subscription-Key`` by default). With both configured,
both are required. Headers of a proxy are trusted only when ``client_cert`` is configured.

Keys are compared in constant time; no key, certificate or header value is ever logged,
only the reason a caller was refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from urllib.parse import unquote

from cryptography import x509

from sportello.platforms.pagopa.settings import StationAuthSettings, StationClientCertSettings

_PEM = re.compile(r"-----(BEGIN|END) CERTIFICATE-----")


def refusal(headers: Mapping[str, str], auth: StationAuthSettings) -> str | None:
    """Why the caller is refused (a fixed sentence, no secret in it), or None to serve it."""
    if auth.key is not None:
        reason = _key_refusal(headers.get(auth.key_header), auth)
        if reason is not None:
            return reason
    if auth.client_cert is not None:
        return _cert_refusal(headers, auth.client_cert)
    return None


def _key_refusal(sent: str | None, auth: StationAuthSettings) -> str | None:
    if not sent:
        return f"no {auth.key_header} header"
    try:
        accepted = [ref.reveal() for ref in (auth.key, auth.previous_key) if ref is not None]
    except LookupError:
        return "the station key is not available to the hub"
    given = sent.encode("utf-8", errors="replace")
    ok = False
    for key in accepted:  # every key compared, in constant time
        ok |= hmac.compare_digest(given, key.encode("utf-8"))
    return None if ok else f"wrong {auth.key_header}"


def certificate_der(value: str) -> bytes | None:
    """The DER certificate in a proxy's header: PEM (URL-escaped, or with its newlines
    folded into spaces) or base64 DER; None when it is neither."""
    text = _PEM.sub("", unquote(value))
    try:
        der = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return der or None


def _cert_refusal(headers: Mapping[str, str], cert: StationClientCertSettings) -> str | None:
    if cert.verify_header is not None and headers.get(cert.verify_header) != "SUCCESS":
        return "the proxy did not verify a client certificate"
    value = headers.get(cert.cert_header)
    der = certificate_der(value) if value else None
    if der is None:
        return f"no client certificate in {cert.cert_header}"
    if hashlib.sha256(der).hexdigest() in cert.fingerprints:
        return None
    if cert.subjects:
        try:
            subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            return "unreadable client certificate"
        if subject in cert.subjects:
            return None
    return "client certificate not accepted"
