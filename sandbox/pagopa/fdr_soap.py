"""The legacy way to fetch flows: ``nodoChiediElencoFlussiRendicontazione`` and
``nodoChiediFlussoRendicontazione`` of ``nodeForPa.wsdl`` (SOAP 1.1 on
``POST /nodo/nodo-per-pa/v1``, ``SOAPAction`` = the operation).

- The caller names its broker and station (``identificativoIntermediarioPA``,
  ``identificativoStazioneIntermediarioPA``): they must be a station the Node knows, else
  fault ``PPT_STAZIONE_INT_PA_SCONOSCIUTA``; ``identificativoDominio``, when given, must be
  an EC of that station (``PPT_DOMINIO_SCONOSCIUTO``). The password is not checked.
- The list covers the flows published in the last 30 days (latest revision, as the Node
  keeps the last ``dataOraFlusso``), optionally for one ``identificativoPSP``.
- A flow comes back as ``xmlRendicontazione``: the ``FlussoRiversamento`` XML in base64;
  an unknown id is ``PPT_ID_FLUSSO_SCONOSCIUTO``.
"""

from __future__ import annotations

import base64
from datetime import timedelta

from aiohttp import web
from lxml import etree

from .fdr import ROME, Flow, flusso_xml
from .fdr_routes import FDR
from .node_routes import NODE
from .node_soap import SOAP_NS, BadAnswer

__all__ = ["NODO_PER_PA_NS", "NODO_PER_PA_PATH", "add_fdr_soap_routes"]

NODO_PER_PA_PATH = "/nodo/nodo-per-pa/v1"
NODO_PER_PA_NS = "http://ws.pagamenti.telematici.gov/"
_WINDOW = timedelta(days=30)
_OPERATIONS = ("nodoChiediElencoFlussiRendicontazione", "nodoChiediFlussoRendicontazione")


class _Fault(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code, self.text = code, text


def _envelope(payload: etree._Element) -> web.Response:
    env = etree.Element(f"{{{SOAP_NS}}}Envelope", nsmap={"soapenv": SOAP_NS})
    etree.SubElement(env, f"{{{SOAP_NS}}}Body").append(payload)
    return web.Response(
        body=etree.tostring(env, xml_declaration=True, encoding="UTF-8"),
        content_type="text/xml",
        charset="utf-8",
    )


def _answer(operation: str) -> etree._Element:
    return etree.Element(f"{{{NODO_PER_PA_NS}}}{operation}Risposta", nsmap={"ppt": NODO_PER_PA_NS})


def _add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, name)
    if text is not None:
        child.text = text
    return child


def _parse(raw: bytes) -> etree._Element:
    if b"<!DOCTYPE" in raw or b"<!ENTITY" in raw:
        raise BadAnswer("DOCTYPE not allowed")
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise BadAnswer(str(exc)) from None
    body = root.find(f"{{{SOAP_NS}}}Body")
    children = [c for c in body if isinstance(c.tag, str)] if body is not None else []
    if len(children) != 1:
        raise BadAnswer("expected one element in a SOAP Body")
    return children[0]


def _flows(request: web.Request, payload: etree._Element) -> list[Flow]:
    """The latest revision of every flow the calling station may read."""
    node = request.app[NODE]
    broker = payload.findtext("identificativoIntermediarioPA")
    station_id = payload.findtext("identificativoStazioneIntermediarioPA")
    domains = {
        s.fiscal_code
        for s in node.stations.values()
        if s.broker_id == broker and s.station_id == station_id
    }
    if not domains:
        raise _Fault("PPT_STAZIONE_INT_PA_SCONOSCIUTA", "Stazione intermediario sconosciuta.")
    domain = payload.findtext("identificativoDominio")
    if domain:
        if domain not in domains:
            raise _Fault("PPT_DOMINIO_SCONOSCIUTO", "Identificativo dominio sconosciuto.")
        domains = {domain}
    psp = payload.findtext("identificativoPSP")
    ledger = request.app[FDR].ledger
    return [
        f for org in sorted(domains) for f in ledger.latest(org) if not psp or f.psp.id_psp == psp
    ]


async def nodo_per_pa(request: web.Request) -> web.Response:
    action = request.headers.get("SOAPAction", "").strip().strip('"')
    try:
        payload = _parse(await request.read())
    except BadAnswer as exc:
        return web.Response(status=400, text=f"not a SOAP request: {exc}")
    operation = etree.QName(payload).localname
    if action not in _OPERATIONS or operation != action:
        return web.Response(status=400, text=f"unknown SOAPAction {action!r}")
    answer = _answer(operation)
    try:
        flows = _flows(request, payload)
        if operation == "nodoChiediElencoFlussiRendicontazione":
            since = request.app[FDR].ledger.clock.now() - _WINDOW
            recent = [f for f in flows if f.published >= since]
            listing = _add(answer, "elencoFlussiRendicontazione")
            _add(listing, "totRestituiti", str(len(recent)))
            for flow in recent:
                item = _add(listing, "idRendicontazione")
                _add(item, "identificativoFlusso", flow.fdr)
                published = flow.published.astimezone(ROME).replace(tzinfo=None, microsecond=0)
                _add(item, "dataOraFlusso", published.isoformat())
        else:
            wanted = payload.findtext("identificativoFlusso")
            found = next((f for f in flows if f.fdr == wanted), None)
            if found is None:
                raise _Fault("PPT_ID_FLUSSO_SCONOSCIUTO", "Identificativo flusso sconosciuto.")
            _add(answer, "xmlRendicontazione", base64.b64encode(flusso_xml(found)).decode())
    except _Fault as fault:
        answer = _answer(operation)
        node = _add(answer, "fault")
        _add(node, "faultCode", fault.code)
        _add(node, "faultString", fault.text)
        _add(node, "id", "NodoDeiPagamentiSPC")
    return _envelope(answer)


def add_fdr_soap_routes(app: web.Application) -> None:
    """Register ``POST /nodo/nodo-per-pa/v1``."""
    app.router.add_post(NODO_PER_PA_PATH, nodo_per_pa)
