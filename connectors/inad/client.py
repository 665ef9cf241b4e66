"""``InadClient``: INAD (Indice Nazionale dei Domicili Digitali) through PDND.

The e-service "INAD consultazione DD" (``inad_api_extraxtion.yaml``): every call carries a
PDND voucher for the INAD purpose (``Authorization: Bearer``; the spec declares only
``bearerAuth``, no ModI signature). Operations:

- ``extract(cf, practical_reference)``: ``GET /extract/{codice_fiscale}``, the domicile now;
- ``verify(cf, address, since, practical_reference)``: ``GET /verify/{codice_fiscale}``,
  whether the address was the person's domicile on ``since``;
- the asynchronous bulk extraction of up to 1,000 codes: ``request_list`` (``POST
  /listDigitalAddress``, 202), ``list_state`` (``GET /listDigitalAddress/state/{id}``:
  200 while processing, 303 with ``Location`` when ready), ``list_response`` (``GET
  /listDigitalAddress/response/{id}``), and ``extract_many`` doing the three.

Every call is a personal-data read: the hub audits them. Nothing here logs fiscal codes
(the connector base masks them in its debug line). All calls are reads or, for the bulk
request, safe to repeat (a second list is only a second job): the shared retry policy
applies (429, 5xx, timeouts).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import date
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from ..base import BaseConnector, Response
from ..errors import ConnectorTimeout, ProtocolError, UpstreamError
from ..pdnd.client import PdndClient
from ..retry import RetryPolicy, Sleep
from ..signing import BearerTokenSigner
from .errors import map_inad_error
from .models import BULK_MAX, BulkRequest, BulkState, DigitalDomicile

__all__ = ["EXAMPLE_BASE_URL", "InadClient"]

_M = TypeVar("_M", bound=BaseModel)

log = logging.getLogger("sportello.connectors.inad")

#: The spec's example server; the real URL is the one PDND's catalogue gives.
EXAMPLE_BASE_URL = "https://api.inad.gov.it/rest/inad/v1/domiciliodigitale"
_CF = re.compile(
    r"^[0-9]{11}$|^[A-Z]{6}[0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z]$"
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ADDRESS = re.compile(r"^[a-zA-Z0-9_.+-]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+$")


def _cf(value: str) -> str:
    code = value.strip().upper()
    if not _CF.match(code):
        raise ValueError("not a fiscal code (16 characters or 11 digits)")
    return code


def _reference(value: str) -> str:
    if not value or not value.strip():
        raise ValueError("practical_reference (the administrative procedure) is required")
    return value


class InadClient(BaseConnector):
    """INAD extraction client for one PDND purpose."""

    platform = "inad"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str = EXAMPLE_BASE_URL,
        *,
        pdnd: PdndClient,
        purpose_id: str,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not purpose_id:
            raise ValueError("purpose_id is required (the PDND purpose for INAD)")
        super().__init__(
            session,
            base_url,
            signer=BearerTokenSigner(pdnd.token_provider(purpose_id)),
            retry=retry,
            timeout=timeout,
            sleep=sleep,
        )
        self.pdnd = pdnd
        self.purpose_id = purpose_id

    def __repr__(self) -> str:
        return f"InadClient(base_url={self.base_url!r}, purpose_id={self.purpose_id!r})"

    async def extract(self, fiscal_code: str, *, practical_reference: str) -> DigitalDomicile:
        """The person's (or body's) digital domicile now; ``NoDigitalDomicile`` when none."""
        response = await self._call(
            "GET",
            f"/extract/{_cf(fiscal_code)}",
            params={"practicalReference": _reference(practical_reference)},
            operation="extract",
        )
        return self._parse(DigitalDomicile, response.json(), response)

    async def has_domicile(self, fiscal_code: str, *, practical_reference: str) -> bool:
        """Whether INAD has a digital domicile for the code (a 404 means no)."""
        from .errors import NoDigitalDomicile

        try:
            found = await self.extract(fiscal_code, practical_reference=practical_reference)
        except NoDigitalDomicile:
            return False
        return found.has_domicile

    async def verify(
        self,
        fiscal_code: str,
        digital_address: str,
        *,
        since: date,
        practical_reference: str,
    ) -> bool:
        """Whether ``digital_address`` was the domicile of ``fiscal_code`` on ``since``."""
        if not _ADDRESS.match(digital_address):
            raise ValueError("not a PEC address")
        response = await self._call(
            "GET",
            f"/verify/{_cf(fiscal_code)}",
            params={
                "digital_address": digital_address,
                "since": since.isoformat(),
                "practicalReference": _reference(practical_reference),
            },
            operation="verify",
        )
        data = response.json()
        outcome = data.get("outcome") if isinstance(data, dict) else None
        if not isinstance(outcome, bool):
            raise ProtocolError(
                "verify answer has no boolean outcome", platform=self.platform, status=200
            )
        return outcome

    async def request_list(
        self, fiscal_codes: Sequence[str], *, practical_reference: str
    ) -> BulkRequest:
        """``POST /listDigitalAddress`` (1 to 1,000 codes): the job id (202)."""
        codes = [_cf(c) for c in fiscal_codes]
        if not 1 <= len(codes) <= BULK_MAX:
            raise ValueError(f"a bulk extraction takes 1 to {BULK_MAX} fiscal codes")
        response = await self._call(
            "POST",
            "/listDigitalAddress",
            # "praticalReference" is the spec's spelling of the field in this body
            json={"codiciFiscali": codes, "praticalReference": _reference(practical_reference)},
            expected=(202,),
            operation="bulk",
        )
        return self._parse(BulkRequest, response.json(), response)

    async def list_state(self, job_id: str) -> BulkState:
        """``GET /listDigitalAddress/state/{id}``: 200 while processing, 303 when ready."""
        response = await self._call(
            "GET",
            f"/listDigitalAddress/state/{self._job(job_id)}",
            expected=(200, 303),
            operation="bulk",
        )
        state = self._parse(BulkState, response.json(), response)
        if response.status == 303:
            state.location = response.headers.get("Location")
            if not state.ready:
                state.state = "DISPONIBILE"
        return state

    async def list_response(self, job_id: str) -> list[DigitalDomicile]:
        """``GET /listDigitalAddress/response/{id}``: one entry per code asked (codes with
        no domicile come with an empty ``digitalAddress``)."""
        response = await self._call(
            "GET", f"/listDigitalAddress/response/{self._job(job_id)}", operation="bulk"
        )
        data = response.json()
        items = data.get("list") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise ProtocolError("bulk answer has no list", platform=self.platform, status=200)
        return [self._parse(DigitalDomicile, item, response) for item in items]

    async def extract_many(
        self,
        fiscal_codes: Sequence[str],
        *,
        practical_reference: str,
        interval: float = 5.0,
        max_wait: float = 3600.0,
    ) -> list[DigitalDomicile]:
        """Request, poll every ``interval`` seconds until ready, and read the list."""
        job = await self.request_list(fiscal_codes, practical_reference=practical_reference)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            state = await self.list_state(job.id)
            if state.ready:
                return await self.list_response(job.id)
            if loop.time() + interval > deadline:
                raise ConnectorTimeout(
                    f"INAD bulk extraction {job.id} still {state.state} after {max_wait:g}s",
                    platform=self.platform,
                    retryable=True,
                )
            await self._sleep(interval)

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _job(job_id: str) -> str:
        if not _UUID.match(job_id):
            raise ValueError("not a bulk extraction id (UUID)")
        return job_id

    async def _call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        json: Any = None,
        params: dict[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
    ) -> Response:
        try:
            return await self.request(method, path, json=json, params=params, expected=expected)
        except UpstreamError as error:
            raise map_inad_error(error, operation=operation) from error

    def _parse(self, model: type[_M], data: Any, response: Response) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ProtocolError(
                f"unexpected INAD answer ({exc.error_count()} problems)",
                platform=self.platform,
                status=response.status,
                request_id=response.request_id,
            ) from None
