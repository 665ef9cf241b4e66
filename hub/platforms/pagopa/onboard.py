"""Onboarding of pagoPA (``hub_onboard``, ``hub_tenant_checks``).

Made here: the station's shared key at ``station_auth.key = { file = ... }`` (0600, never
over an existing file). Left to do: in station mode, register the station URL under the
broker's station in the pagoPA back office (Selfcare, "Stazioni") and give the Node the key
it must send; in GPD mode, subscribe the broker to GPD in the developer portal and put the
subscription key at ``api_key``. Checked: in station mode the hub's own station answers a
paVerifyPaymentNotice for a probe notice at its public URL with the expected fault
(PAA_PAGAMENTO_SCONOSCIUTO: tenant, broker and station ids all recognised); in GPD mode GPD
answers a list of the tenant's positions with the configured key.
"""

from __future__ import annotations

from sportello.config import HubConfig, TenantConfig
from sportello.hookspecs import CheckContext, CheckFailed, OnboardStep, TenantCheck
from sportello.onboarding import make_secret_file

from .settings import PagopaTenantSettings, pagopa_settings

PAFORNODE = "http://pagopa-api.pagopa.gov.it/pa/paForNode.xsd"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"


def station_url(config: HubConfig, tenant: TenantConfig) -> str:
    base = config.server.public_url or f"http://{config.server.host}:{config.server.port}"
    return f"{base.rstrip('/')}/t/{tenant.id}/pagopa/station"


def onboard(config: HubConfig, tenant: TenantConfig, make: bool) -> list[OnboardStep]:
    p = pagopa_settings(tenant)
    if p is None:
        return []
    ids = {
        "ec_fiscal_code": p.ec_fiscal_code,
        "broker_id": p.broker_id,
        "station_id": p.station_id,
        "segregation_code": p.segregation_code,
    }
    out: list[OnboardStep] = []
    if p.mode == "station":
        auth = p.station_auth
        values = dict(ids, station_url=station_url(config, tenant))
        if auth is not None and auth.key is not None:
            state = make_secret_file(auth.key, make=make)
            ref = auth.key.describe()
            if state == "blocked":
                out.append(
                    OnboardStep(
                        "pagopa", "blocked", f"station_auth.key ({ref}) is not set", {"key": ref}
                    )
                )
            else:
                out.append(OnboardStep("pagopa", state, "station key", {"key": ref}))
            values.update(key_header=auth.key_header, key=ref)
        out.append(
            OnboardStep(
                "pagopa",
                "todo",
                "register the station in the pagoPA back office (Selfcare > Stazioni: the "
                "broker's station, its URL and the key the Node sends) and associate the EC "
                "with it (segregation code)",
                values,
            )
        )
    else:
        values = dict(ids)
        if p.api_key is not None:
            values["api_key"] = p.api_key.describe()
        out.append(
            OnboardStep(
                "pagopa",
                "todo" if p.api_key is not None else "blocked",
                "subscribe the broker to the GPD API in the pagoPA developer portal and put "
                "the subscription key at api_key"
                if p.api_key is not None
                else "GPD mode needs api_key = { file = ... } (the GPD subscription key)",
                values,
            )
        )
    return out


def _verify_request(p: PagopaTenantSettings) -> bytes:
    from lxml import etree

    env = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soapenv": SOAP, "pafn": PAFORNODE})
    etree.SubElement(env, f"{{{SOAP}}}Header")
    body = etree.SubElement(env, f"{{{SOAP}}}Body")
    req = etree.SubElement(body, f"{{{PAFORNODE}}}paVerifyPaymentNoticeReq")
    for name, text in (
        ("idPA", p.ec_fiscal_code),
        ("idBrokerPA", p.broker_id),
        ("idStation", p.station_id),
    ):
        etree.SubElement(req, name).text = text
    qr = etree.SubElement(req, "qrCode")
    etree.SubElement(qr, "fiscalCode").text = p.ec_fiscal_code
    # a notice of the tenant's segregation code that no position has (IUV of zeros)
    etree.SubElement(qr, "noticeNumber").text = f"3{p.segregation_code}{'0' * 15}"
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _station_check(tenant: TenantConfig) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        import aiohttp
        from lxml import etree

        p = pagopa_settings(tenant)
        assert p is not None
        url = station_url(ctx.config, tenant)
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": "paVerifyPaymentNotice"}
        if p.station_auth is not None and p.station_auth.key is not None:
            try:
                headers[p.station_auth.key_header] = p.station_auth.key.reveal()
            except LookupError as exc:
                raise CheckFailed(f"station_auth.key: {exc}") from None
        try:
            async with ctx.session.post(url, data=_verify_request(p), headers=headers) as r:
                status, body = r.status, await r.read()
        except aiohttp.ClientError as exc:
            raise CheckFailed(f"{url} cannot be reached: {type(exc).__name__} {exc}") from None
        if status != 200:
            raise CheckFailed(f"{url} answered HTTP {status}")
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError:
            raise CheckFailed(f"{url}: the answer is not XML") from None
        fault = root.findtext(".//faultCode")
        if fault != "PAA_PAGAMENTO_SCONOSCIUTO":
            outcome = root.findtext(".//outcome")
            raise CheckFailed(
                f"{url}: paVerifyPaymentNotice of a probe notice answered "
                f"{outcome or '?'} {fault or ''} (expected KO PAA_PAGAMENTO_SCONOSCIUTO)"
            )
        return f"{url} answers paVerifyPaymentNotice for {p.station_id}"

    return TenantCheck("pagopa", "station", run)


def _gpd_check(tenant: TenantConfig) -> TenantCheck:
    async def run(ctx: CheckContext) -> str:
        from sportello.connectors.pagopa.gpd import PRODUCTION_BASE_URL, GpdClient
        from sportello.connectors.retry import RetryPolicy

        p = pagopa_settings(tenant)
        assert p is not None and p.api_key is not None
        try:
            p.api_key.reveal()
        except LookupError as exc:
            raise CheckFailed(f"api_key: {exc}") from None
        client = GpdClient(
            ctx.session,
            p.base_url or PRODUCTION_BASE_URL,
            api_key=p.api_key.reveal,
            broker_code=p.broker_id,
            retry=RetryPolicy(max_attempts=1),
        )
        await client.list_positions(p.ec_fiscal_code, limit=1)
        return f"GPD lists the positions of {p.ec_fiscal_code}"

    return TenantCheck("pagopa", "gpd", run)


def tenant_checks(config: HubConfig, tenant: TenantConfig) -> list[TenantCheck]:
    p = pagopa_settings(tenant)
    if p is None:
        return []
    if p.mode == "station":
        return [_station_check(tenant)]
    return [_gpd_check(tenant)] if p.api_key is not None else []
