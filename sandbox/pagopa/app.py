"""The whole pagoPA sandbox: GPD, the Node playing a PSP, Checkout and FdR on one app.

``create_app`` builds the GPD app (:mod:`.gpd_app`) and adds:

- the Node (:mod:`.node`, routes in :mod:`.node_routes`): ``POST /psp/pay`` and
  ``/psp/pay-batch`` run modello 3 against the EC stations configured by fiscal code
  (``stations=`` or ``POST /__sandbox/stations``);
- Checkout (:mod:`.checkout`): ``POST /checkout/ec/v1/carts`` and the payment page;
- FdR (:mod:`.fdr`, routes in :mod:`.fdr_routes`): every collected payment is reported,
  flows are published a simulated day later, served as the FdR organization API under
  ``/fdr-org/service/v1`` and as legacy XML (``nodoChiediElencoFlussiRendicontazione``
  and ``nodoChiediFlussoRendicontazione`` on ``POST /nodo/nodo-per-pa/v1``, :mod:`.fdr_soap`).

One clock drives them all (and GPD's validity and due dates): ``POST /__sandbox/clock``
moves it forward. ``POST /__sandbox/reset`` resets GPD, the Node's receipts, the carts and
the flows (stations and settings stay).

Stand-In receipts take their data from GPD's positions, as the real Stand-In takes it
from the ACA.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from sportello.clock import Clock, SystemClock

from .checkout import CHECKOUT, DEFAULT_CHECKOUT_API_KEY, CheckoutState, add_checkout_routes
from .fdr import Ledger
from .fdr_routes import CLOCK, DEFAULT_FDR_API_KEY, FDR, FdrState, SandboxClock, add_fdr_routes
from .fdr_soap import add_fdr_soap_routes
from .gpd_app import DEFAULT_API_KEY, STATE
from .gpd_app import create_app as create_gpd_app
from .gpd_receipts import add_gpd_receipts_routes
from .gpd_spec import GpdSpecChecker
from .node import DEFAULT_PSPS, Node, NodeSettings, Psp, parse_station
from .node_routes import NODE, add_node_routes
from .node_soap import PaymentData, Stamp, Subject, Transfer, default_xsd_dir, load_xsd

__all__ = [
    "DEFAULT_CHECKOUT_API_KEY",
    "DEFAULT_FDR_API_KEY",
    "DEFAULT_GPD_API_KEY",
    "create_app",
]

DEFAULT_GPD_API_KEY = DEFAULT_API_KEY
_SUBJECT_KEYS = {
    "streetName": "streetName",
    "civicNumber": "civicNumber",
    "postalCode": "postalCode",
    "city": "city",
    "province": "stateProvinceRegion",
    "country": "country",
    "email": "e-mail",
}


def _gpd_aca(app: web.Application) -> Callable[[str, str], PaymentData | None]:
    """Stand-In data from the GPD sandbox: an unpaid option of a VALID or PARTIALLY_PAID
    position, as the ACA would hold it."""

    def lookup(fiscal_code: str, iuv: str) -> PaymentData | None:
        state = app[STATE]
        iupd = state.iuvs.get((fiscal_code, iuv))
        position = state.find(fiscal_code, iupd) if iupd is not None else None
        if position is None or position.status.value not in ("VALID", "PARTIALLY_PAID"):
            return None
        option = next((o for o in position.options if o.iuv == iuv), None)
        if option is None or option.status != "PO_UNPAID":
            return None
        body, debtor = option.body, position.body
        transfers = []
        for t in body.get("transfer") or []:
            stamp = t.get("stamp")
            transfers.append(
                Transfer(
                    id_transfer=int(t["idTransfer"]),
                    amount_cents=int(t["amount"]),
                    fiscal_code_pa=t.get("organizationFiscalCode") or fiscal_code,
                    remittance=t["remittanceInformation"],
                    category=t["category"],
                    iban=t.get("iban") if not stamp else None,
                    stamp=Stamp(
                        stamp["hashDocument"], stamp["stampType"], stamp["provincialResidence"]
                    )
                    if stamp
                    else None,
                    metadata=tuple((m["key"], m["value"]) for m in t.get("transferMetadata") or []),
                )
            )
        details = tuple(
            (name, str(debtor[key]))
            for key, name in _SUBJECT_KEYS.items()
            if debtor.get(key) and (key != "province" or len(str(debtor[key])) <= 35)
        )
        return PaymentData(
            creditor_reference_id=iuv,
            amount_cents=int(body["amount"]),
            due_date=str(body.get("dueDate", ""))[:10],
            description=str(body.get("description") or "Pagamento")[:140],
            company_name=str(debtor.get("companyName") or fiscal_code)[:140],
            office_name=debtor.get("officeName"),
            debtor=Subject(
                str(debtor.get("type", "F")),
                str(debtor.get("fiscalCode", "ANONIMO")),
                str(debtor.get("fullName", "ANONIMO"))[:70],
                details,
            ),
            transfers=tuple(transfers),
        )

    return lookup


@web.middleware
async def _reset_all(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``POST /__sandbox/reset`` (GPD's) also resets the Node, the carts and the flows."""
    response = await handler(request)
    if request.method == "POST" and request.path == "/__sandbox/reset":
        request.app[NODE].reset()
        request.app[CHECKOUT].carts.clear()
        request.app[FDR].ledger.reset()
    return response


def create_app(
    *,
    processing_delay: float = 1.0,
    stations: Mapping[str, Mapping[str, Any]] | None = None,
    clock: Clock | None = None,
    xsd_dir: Path | None = None,
    psps: Collection[Psp] = DEFAULT_PSPS,
    node_settings: NodeSettings | None = None,
    fdr_lag_days: int = 1,
    fdr_first_number: int = 1,
    api_key: str = DEFAULT_GPD_API_KEY,
    checkout_api_key: str = DEFAULT_CHECKOUT_API_KEY,
    fdr_api_key: str = DEFAULT_FDR_API_KEY,
    organizations: Collection[str] | None = None,
    spec_checker: GpdSpecChecker | None = None,
) -> web.Application:
    """The pagoPA sandbox (GPD + Node + Checkout + FdR).

    ``stations`` maps EC fiscal codes to ``{url, broker_id, station_id}`` (more can be set
    with ``POST /__sandbox/stations``). ``xsd_dir`` holds ``paForNode.xsd`` (default:
    ``$SPORTELLO_PAGOPA_XSD_DIR`` or the development checkout's specs; without one the
    Node only runs its own field checks). ``node_settings`` sets the timeouts (7 s / 7 s /
    15 s), the receipt retry (``retry_interval``, ``max_attempts``) and the
    ``duplicate_receipts`` / ``stand_in`` knobs. ``fdr_lag_days`` is how many days after
    the payments a flow is published when the clock moves; ``fdr_first_number`` is the
    number of the first flow of each PSP (flow ids end with it). ``processing_delay``,
    ``api_key``, ``organizations`` and ``spec_checker`` go to the GPD app.
    """
    sandbox_clock = SandboxClock(clock or SystemClock())
    app = create_gpd_app(
        api_key=api_key,
        clock=sandbox_clock,
        processing_delay=processing_delay,
        organizations=organizations,
        spec_checker=spec_checker,
    )
    directory = xsd_dir if xsd_dir is not None else default_xsd_dir()
    xsd = load_xsd(directory.resolve()) if directory is not None else None
    node = Node(
        stations=[parse_station(cf, dict(doc)) for cf, doc in (stations or {}).items()],
        psps=psps,
        settings=node_settings,
        clock=sandbox_clock,
        xsd=xsd,
        aca=_gpd_aca(app),
    )
    ledger = Ledger(sandbox_clock, lag_days=fdr_lag_days, first_number=fdr_first_number)
    node.on_collected.append(ledger.account)
    app[CLOCK] = sandbox_clock
    app[NODE] = node
    app[CHECKOUT] = CheckoutState(api_key=checkout_api_key)
    app[FDR] = FdrState(ledger, fdr_api_key)
    app.middlewares.append(_reset_all)
    add_node_routes(app)
    add_checkout_routes(app)
    add_fdr_routes(app)
    add_fdr_soap_routes(app)
    add_gpd_receipts_routes(app)  # GPD's payments-receipts API

    async def start_node(app: web.Application) -> None:
        await app[NODE].start()

    async def stop_node(app: web.Application) -> None:
        await app[NODE].close()

    app.on_startup.append(start_node)
    app.on_shutdown.append(stop_node)
    app.on_cleanup.append(stop_node)
    return app
