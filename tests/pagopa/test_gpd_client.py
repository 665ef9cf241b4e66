"""``GpdClient`` against the GPD sandbox over real sockets.

Every test runs the sandbox with spec checking on when the official specs are available
(``../shared/specs/pagopa/openapi/gpd.json`` and ``gpd_massive_v2.json``): teardown fails
on any JSON body the sandbox accepted, or any body it sent, that the specs do not allow.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sportello.clock import FakeClock
from sportello.connectors.errors import ServerError
from sportello.connectors.pagopa.gpd import EnsureResult, GpdClient, position_differences
from sportello.connectors.pagopa.gpd_errors import (
    DebtPositionExists,
    DebtPositionMismatch,
    DebtPositionNotFound,
    GpdConflict,
    GpdRateLimited,
    GpdUnauthorized,
    GpdValidationError,
    InvalidState,
    IuvInUse,
)
from sportello.connectors.pagopa.models import DebtPosition, Stamp, Transfer
from sportello.connectors.retry import RetryPolicy
from sportello.sandbox.pagopa.gpd_app import DEFAULT_API_KEY, GPD_PREFIX, create_app
from sportello.sandbox.pagopa.gpd_demo import DEMO_BROKER, DEMO_ORGANIZATION, demo_position
from sportello.sandbox.pagopa.gpd_spec import GpdSpecChecker

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pagopa" / "openapi"
GPD_SPEC = SPECS / "gpd.json"
MASSIVE_SPEC = SPECS / "gpd_massive_v2.json"
ORG = DEMO_ORGANIZATION
NOW = datetime.now(UTC).replace(microsecond=0)


@functools.cache
def _load_spec() -> GpdSpecChecker:
    return GpdSpecChecker.from_paths(GPD_SPEC, MASSIVE_SPEC)


def spec_or_none() -> GpdSpecChecker | None:
    return _load_spec() if GPD_SPEC.exists() and MASSIVE_SPEC.exists() else None


def require_spec() -> GpdSpecChecker:
    checker = spec_or_none()
    if checker is None:
        pytest.skip(f"GPD specs not found in {SPECS} (shared/specs is not part of the repo)")
    return checker


class Env:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession, clock: Any) -> None:
        self.server = server
        self.session = session
        self.clock = clock

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def client(self, **kwargs: Any) -> GpdClient:
        kwargs.setdefault("api_key", lambda: DEFAULT_API_KEY)
        kwargs.setdefault("retry", RetryPolicy(max_attempts=3, base_delay=0.01))
        kwargs.setdefault("broker_code", DEMO_BROKER)
        return GpdClient(self.session, self.url(GPD_PREFIX), **kwargs)

    async def admin(self, method: str, path: str, json: Any = None) -> Any:
        async with self.session.request(method, self.url(f"/__sandbox/{path}"), json=json) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def calls(self, operation: str) -> list[dict[str, Any]]:
        return list((await self.admin("GET", f"calls?operation={operation}"))["calls"])

    async def stored(self) -> list[dict[str, Any]]:
        return list((await self.admin("GET", "positions"))["positions"])


MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[MakeEnv]:
    started: list[tuple[TestServer, aiohttp.ClientSession]] = []
    checker = spec_or_none()

    async def make(**kwargs: Any) -> Env:
        kwargs.setdefault("spec_checker", checker)
        server = TestServer(create_app(**kwargs))
        await server.start_server()
        session = aiohttp.ClientSession()
        started.append((server, session))
        return Env(server, session, kwargs.get("clock"))

    yield make
    for server, session in started:
        async with session.get(server.make_url("/__sandbox/spec-violations")) as resp:
            violations = (await resp.json())["violations"]
        await session.close()
        await server.close()
        assert violations == [], violations


@pytest.fixture
async def env(make_env: MakeEnv) -> Env:
    return await make_env()


def position(n: int = 1, **kwargs: Any) -> DebtPosition:
    return demo_position(n, now=NOW, **kwargs)


# -- request bodies against the spec ---------------------------------------------------------


def stamped(n: int) -> DebtPosition:
    """Position ``n`` paid with a digital stamp instead of a credit transfer."""
    base = position(n)
    stamp = Transfer(
        id_transfer=1,
        amount=base.payment_options[0].amount,
        organization_fiscal_code=ORG,
        remittance_information="Marca da bollo",
        category="9/0101101IM/",
        stamp=Stamp(hash_document="YWJjZA==", provincial_residence="RM"),
        metadata={"k": "v"},
    )
    option = base.payment_options[0].model_copy(
        update={"metadata": {"capitolo": "1010"}, "transfers": (stamp,)}
    )
    return base.model_copy(update={"payment_options": (option,)})


def test_every_body_the_client_builds_validates_against_gpd_json() -> None:
    checker = require_spec()
    for built in (
        position(1),
        position(2, instalments=3, switch_to_expired=True),
        position(3, validity_date=NOW + timedelta(days=1)),
        stamped(4),
    ):
        assert checker.schema_errors("PaymentPositionModel", built.to_gpd()) == []


async def test_a_stamped_position_round_trips(env: Env) -> None:
    client = env.client()
    await client.create(ORG, stamped(4), to_publish=True)
    got = await client.get(ORG, stamped(4).iupd)
    assert position_differences(stamped(4), got) == []
    assert got["paymentOption"][0]["transfer"][0]["stamp"]["provincialResidence"] == "RM"


# -- lifecycle ---------------------------------------------------------------------------


async def test_create_get_publish_invalidate(env: Env) -> None:
    client = env.client()
    created = await client.create(ORG, position(1))
    assert created["status"] == "DRAFT"
    assert created["paymentOption"][0]["nav"] == "3" + position(1).payment_options[0].iuv

    got = await client.get(ORG, "SPORTELLO-00000001")
    assert got["status"] == "DRAFT"
    assert got["organizationFiscalCode"] == ORG
    assert position_differences(position(1), got) == []
    assert "fiscalCode" not in got  # the v1 read model has no debtor data

    published = await client.publish(ORG, "SPORTELLO-00000001")
    assert published["status"] == "VALID"  # no validity date: payable at once
    assert "validityDate" in published

    invalid = await client.invalidate(ORG, "SPORTELLO-00000001")
    assert invalid["status"] == "INVALID"
    with pytest.raises(InvalidState) as info:
        await client.publish(ORG, "SPORTELLO-00000001")
    assert info.value.status == 409
    assert "not in publishable state" in str(info.value)
    with pytest.raises(InvalidState):
        await client.update(ORG, "SPORTELLO-00000001", position(1, amount=20_000))


async def test_update_and_delete(env: Env) -> None:
    client = env.client()
    await client.create(ORG, position(2), to_publish=True)
    updated = await client.update(ORG, "SPORTELLO-00000002", position(2, amount=15_000))
    assert updated["status"] == "DRAFT"  # toPublish=false puts it back to draft
    got = await client.get(ORG, "SPORTELLO-00000002")
    assert got["paymentOption"][0]["amount"] == 15_000
    again = await client.update(
        ORG, "SPORTELLO-00000002", position(2, amount=15_000), to_publish=True
    )
    assert again["status"] == "VALID"

    await client.delete(ORG, "SPORTELLO-00000002")
    with pytest.raises(DebtPositionNotFound):
        await client.get(ORG, "SPORTELLO-00000002")
    with pytest.raises(DebtPositionNotFound):
        await client.delete(ORG, "SPORTELLO-00000002")
    # the IUPD and its IUVs are free again after a delete
    assert (await client.create(ORG, position(2)))["status"] == "DRAFT"


async def test_validity_date_then_time(make_env: MakeEnv) -> None:
    clock = FakeClock(NOW)
    env = await make_env(clock=clock)
    client = env.client()
    later = position(3, validity_date=NOW + timedelta(hours=1), switch_to_expired=True)
    assert (await client.create(ORG, later, to_publish=True))["status"] == "PUBLISHED"
    clock.advance(3600)
    assert (await client.get(ORG, later.iupd))["status"] == "VALID"
    clock.advance(61 * 86_400)  # past the due date, switchToExpired on
    assert (await client.get(ORG, later.iupd))["status"] == "EXPIRED"
    with pytest.raises(InvalidState):
        await client.invalidate(ORG, later.iupd)


async def test_paid_positions_cannot_change(env: Env) -> None:
    client = env.client()
    plan = position(4, amount=9_000, instalments=3)
    await client.create(ORG, plan, to_publish=True)
    first = plan.installments[0].iuv
    paid = await env.admin("POST", f"pay/{ORG}/{first}")
    assert paid["status"] == "PARTIALLY_PAID"
    got = await client.get(ORG, plan.iupd)
    assert got["status"] == "PARTIALLY_PAID"
    assert {o["iuv"]: o["status"] for o in got["paymentOption"]}[first] == "PO_PAID"
    for call in (
        client.update(ORG, plan.iupd, plan),
        client.invalidate(ORG, plan.iupd),
        client.delete(ORG, plan.iupd),
    ):
        with pytest.raises(InvalidState):
            await call
    for option in plan.installments[1:]:
        await env.admin("POST", f"pay/{ORG}/{option.iuv}")
    assert (await client.get(ORG, plan.iupd))["status"] == "PAID"


async def test_list_positions(env: Env) -> None:
    client = env.client()
    for n in range(1, 8):
        await client.create(ORG, position(n), to_publish=n % 2 == 0)
    page = await client.list_positions(ORG, limit=5, order_by="IUPD", ordering="ASC")
    assert [p["iupd"] for p in page["payment_position_list"]] == [
        f"SPORTELLO-0000000{n}" for n in range(1, 6)
    ]
    assert page["page_info"] == {"page": 0, "limit": 5, "items_found": 5, "total_pages": 2}
    valid = await client.list_positions(ORG, status="VALID")
    assert len(valid["payment_position_list"]) == 3
    due = NOW.date() + timedelta(days=60)
    window = await client.list_positions(ORG, due_date_from=due - timedelta(days=1))
    assert len(window["payment_position_list"]) == 7
    with pytest.raises(GpdValidationError):
        await client.list_positions(ORG, due_date_from=due, payment_date_from=due)


# -- idempotency -------------------------------------------------------------------------


async def test_ensure_created_after_a_lost_answer(env: Env) -> None:
    client = env.client()
    await env.admin(
        "POST", "faults", {"mode": "lose", "status": 502, "operations": ["createPosition"]}
    )
    result = await client.ensure_created(ORG, position(5), to_publish=True)
    assert result == EnsureResult(created=False, position=result.position)
    assert result.status == "VALID"
    statuses = [c["status"] for c in await env.calls("createPosition")]
    assert statuses == [502, 409]  # stored, answer lost; the retry found it
    assert len(await env.stored()) == 1  # no duplicate
    # a second call is still harmless
    assert (await client.ensure_created(ORG, position(5))).created is False


async def test_ensure_created_after_a_dropped_connection(env: Env) -> None:
    client = env.client()
    await env.admin("POST", "faults", {"mode": "drop", "operations": ["createPosition"]})
    result = await client.ensure_created(ORG, position(6))
    assert result.created is False
    assert result.status == "DRAFT"
    assert len(await env.stored()) == 1


async def test_ensure_created_first_time(env: Env) -> None:
    result = await env.client().ensure_created(ORG, position(7))
    assert result.created is True
    assert result.status == "DRAFT"


async def test_ensure_created_publishes_a_draft_left_behind(env: Env) -> None:
    client = env.client()
    await client.create(ORG, position(8))
    result = await client.ensure_created(ORG, position(8), to_publish=True)
    assert result.created is False
    assert result.status == "VALID"


async def test_same_iupd_different_position_is_a_conflict(env: Env) -> None:
    client = env.client()
    await client.create(ORG, position(9))
    with pytest.raises(DebtPositionExists):
        await client.create(ORG, position(9, amount=12_345))
    with pytest.raises(DebtPositionMismatch) as info:
        await client.ensure_created(ORG, position(9, amount=12_345))
    assert isinstance(info.value, GpdConflict)
    assert info.value.differences == (
        f"paymentOption[iuv={position(9).payment_options[0].iuv}].amount",
        f"paymentOption[iuv={position(9).payment_options[0].iuv}].transfer[1].amount",
    )
    assert "SPORTELLO-00000009" in str(info.value)
    assert "12345" not in str(info.value)  # paths, never values


async def test_an_iuv_taken_by_another_position(env: Env) -> None:
    client = env.client()
    await client.create(ORG, position(10))
    thief = position(10).model_copy(update={"iupd": "ANOTHER-IUPD"})
    with pytest.raises(IuvInUse) as info:
        await client.ensure_created(ORG, thief)
    assert isinstance(info.value, GpdConflict)
    assert len(await env.stored()) == 1


async def test_publish_retried_after_a_lost_answer_is_done(env: Env) -> None:
    client = env.client()
    await client.create(ORG, position(11))
    await env.admin("POST", "faults", {"mode": "lose", "operations": ["publishPosition"]})
    published = await client.publish(ORG, position(11).iupd)
    assert published["status"] == "VALID"
    assert [c["status"] for c in await env.calls("publishPosition")] == [502, 409]


async def test_delete_retried_after_a_lost_answer_is_done(env: Env) -> None:
    client = env.client()
    await client.create(ORG, position(12))
    await env.admin("POST", "faults", {"mode": "lose", "operations": ["deletePosition"]})
    await client.delete(ORG, position(12).iupd)
    assert await env.stored() == []


# -- errors and retries --------------------------------------------------------------------


async def test_wrong_key(env: Env) -> None:
    client = env.client(api_key=lambda: "not-the-key")
    with pytest.raises(GpdUnauthorized) as info:
        await client.get(ORG, "SPORTELLO-00000001")
    assert info.value.status == 401
    assert info.value.attempts == 1  # never retried
    assert "invalid subscription key" in str(info.value)
    assert "not-the-key" not in repr(info.value)


async def test_async_key_provider(env: Env) -> None:
    async def key() -> str:
        return DEFAULT_API_KEY

    assert (await env.client(api_key=key).create(ORG, position(13)))["status"] == "DRAFT"


async def test_5xx_and_429_are_retried(env: Env) -> None:
    client = env.client(retry=RetryPolicy(max_attempts=4, base_delay=0.01))
    await env.admin("POST", "faults", {"count": 2, "status": 503})
    await env.admin("POST", "faults", {"status": 429, "retry_after": 0.05})
    created = await client.create(ORG, position(14))
    assert created["status"] == "DRAFT"
    assert [c["status"] for c in await env.calls("createPosition")] == [503, 503, 429, 201]


async def test_retries_give_up(env: Env) -> None:
    client = env.client(retry=RetryPolicy(max_attempts=2, base_delay=0.01))
    await env.admin("POST", "faults", {"count": 5, "status": 500})
    with pytest.raises(ServerError) as info:
        await client.get(ORG, "SPORTELLO-00000001")
    assert info.value.attempts == 2
    await env.admin("DELETE", "faults")
    await env.admin("POST", "faults", {"count": 5, "status": 429, "retry_after": 0})
    with pytest.raises(GpdRateLimited) as limited:
        await client.get(ORG, "SPORTELLO-00000001")
    assert limited.value.retryable is True


async def test_validation_errors_name_the_field(env: Env) -> None:
    client = env.client()
    stale = position(15, due_in=timedelta(days=-1))  # valid model, but due yesterday
    with pytest.raises(GpdValidationError) as info:
        await client.create(ORG, stale)
    assert "due_date must be >= " in str(info.value)
    assert info.value.title == "Error in the debt position request data"
    with pytest.raises(GpdValidationError):
        await client.get("123", "SPORTELLO-00000001")  # refused before any call
    with pytest.raises(GpdValidationError):
        await client.update(ORG, "OTHER", position(15))
