"""Low-level XML for the EC station (``paForNode``): a hardened parser, the XSD, SOAP 1.1.

- Parsing refuses a DOCTYPE (and so every entity, internal or external), never touches the
  network, and refuses bodies over :data:`MAX_REQUEST_BYTES`.
- The XSD (``paForNode.xsd`` and ``xsd-common/sac-common-types-1.0.xsd``, PagoPA's files)
  is read from a directory given at run time: the hub does not ship it. Without one the
  codec still checks every field it reads (presence, patterns, lengths) and logs a warning
  once. :func:`default_xsd_dir` looks at ``SPORTELLO_PAGOPA_XSD_DIR`` and then at
  ``../shared/specs/pagopa/wsdl/xsd`` next to the project root (a development checkout).
- Amounts are ``\\d+\\.\\d{2}`` euro on the wire and integer cents everywhere else.

Pure code: nothing here does I/O besides reading the XSD files once.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path

from lxml import etree

__all__ = [
    "MAX_REQUEST_BYTES",
    "NS",
    "SOAP_NS",
    "XSD_DIR_ENV",
    "XmlProblem",
    "amount_to_cents",
    "cents_to_amount",
    "default_xsd_dir",
    "envelope",
    "load_schema",
    "parse_document",
    "schema_for",
    "soap_payload",
    "validate",
]

log = logging.getLogger("sportello.pagopa.station")

#: ``targetNamespace`` of ``paForNode.xsd``; child elements are unqualified.
NS = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
#: Largest request accepted. A paSendRTV2 with five transfers and metadata is a few KB; a
#: stamp receipt (``MBDAttachment``) a few more.
MAX_REQUEST_BYTES = 1024 * 1024
#: Environment variable naming the directory that holds ``paForNode.xsd``.
XSD_DIR_ENV = "SPORTELLO_PAGOPA_XSD_DIR"
XSD_FILE = "paForNode.xsd"

_AMOUNT = re.compile(r"[0-9]+\.[0-9]{2}")
_AMOUNT_MAX_CENTS = 99_999_999_999


class XmlProblem(ValueError):
    """The bytes are not a usable SOAP request; ``str()`` says why (never echoes values)."""


_parsers = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser: building one costs more than parsing a request, and an lxml
    parser must not be shared between threads (it keeps no state between documents)."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            collect_ids=False,
            remove_comments=True,
            remove_pis=True,
        )
    return parser


def parse_document(data: bytes, *, max_bytes: int = MAX_REQUEST_BYTES) -> etree._Element:
    """The root element of ``data``; raises :class:`XmlProblem` for anything unsafe or broken."""
    if len(data) > max_bytes:
        raise XmlProblem(f"request larger than {max_bytes} bytes")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlProblem("DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlProblem(f"not well-formed XML (line {exc.lineno})") from None
    if root is None:  # pragma: no cover - lxml raises on empty input
        raise XmlProblem("empty document")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XmlProblem("DOCTYPE and entity declarations are not allowed")
    return root


def soap_payload(root: etree._Element) -> etree._Element:
    """The one element inside ``Envelope/Body`` (SOAP 1.1)."""
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise XmlProblem("the root element is not a SOAP 1.1 Envelope")
    bodies = [c for c in root if c.tag == f"{{{SOAP_NS}}}Body"]
    if len(bodies) != 1:
        raise XmlProblem("the Envelope must hold exactly one Body")
    children = [c for c in bodies[0] if isinstance(c.tag, str)]
    if len(children) != 1:
        raise XmlProblem("the Body must hold exactly one element")
    return children[0]


def envelope(payload: etree._Element) -> bytes:
    """A SOAP 1.1 envelope around ``payload``, UTF-8 with an XML declaration."""
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS, "pafn": NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Header")
    body = etree.SubElement(env, f"{{{SOAP_NS}}}Body")
    body.append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


# -- XSD --------------------------------------------------------------------------------


def default_xsd_dir() -> Path | None:
    """``$SPORTELLO_PAGOPA_XSD_DIR``, else ``<project>/../shared/specs/pagopa/wsdl/xsd``."""
    env = os.environ.get(XSD_DIR_ENV)
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    candidate = root.parent / "shared" / "specs" / "pagopa" / "wsdl" / "xsd"
    return candidate if (candidate / XSD_FILE).is_file() else None


@lru_cache(maxsize=8)
def load_schema(xsd_dir: Path) -> etree.XMLSchema:
    """Compile ``paForNode.xsd`` from ``xsd_dir`` once (its imports resolve from disk)."""
    path = xsd_dir / XSD_FILE
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.XMLSchema(etree.parse(str(path), parser))
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError) as exc:
        raise FileNotFoundError(f"cannot load the paForNode XSD from {path}: {exc}") from exc


_warned: set[str] = set()


def schema_for(xsd_dir: Path | None) -> etree.XMLSchema | None:
    """The compiled schema, or None (with one warning) when ``xsd_dir`` has no usable XSD."""
    if xsd_dir is not None and (xsd_dir / XSD_FILE).is_file():
        try:
            return load_schema(xsd_dir.resolve())
        except FileNotFoundError as exc:
            reason = str(exc)
    else:
        reason = f"no {XSD_FILE} in {xsd_dir}" if xsd_dir else "no XSD directory configured"
    if reason not in _warned:
        _warned.add(reason)
        log.warning(
            "pagoPA station: XSD validation off (%s); only structural checks apply (set %s)",
            reason,
            XSD_DIR_ENV,
        )
    return None


def validate(schema: etree.XMLSchema, element: etree._Element) -> str | None:
    """None when ``element`` is valid, else the first error (line and message)."""
    if schema.validate(element):
        return None
    error = schema.error_log.last_error
    if error is None:  # pragma: no cover - lxml always logs one
        return "invalid"
    return f"line {error.line}: {error.message}"[:500]


# -- amounts ----------------------------------------------------------------------------


def amount_to_cents(text: str) -> int:
    """``"12.34"`` → 1234; raises ``ValueError`` unless the text is ``\\d+\\.\\d{2}``."""
    value = text.strip()
    if not _AMOUNT.fullmatch(value):
        raise ValueError("an amount is digits, a dot and two decimals (e.g. 12.34)")
    whole, cents = value.split(".")
    result = int(whole) * 100 + int(cents)
    if result > _AMOUNT_MAX_CENTS:
        raise ValueError("an amount is at most 999999999.99")
    return result


def cents_to_amount(cents: int) -> str:
    """1234 → ``"12.34"``."""
    if cents < 0:
        raise ValueError("amounts are not negative")
    return f"{cents // 100}.{cents % 100:02d}"
