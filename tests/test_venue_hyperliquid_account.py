"""The Hyperliquid adapter's account streams through the subscription service against the
Hyperliquid emulator over real sockets on 127.0.0.1: positions and margin equal to the emulator's
``clearinghouseState`` (REST and pushes), fills (snapshot, then new ones, each once also across a
reconnect), orders open then filled, the liquidation stages in the portfolio (derived Warning, the
``userEvents`` liquidation shown for its 60 s, liquidation fills), and no account stream without a
wallet.

The emulator's clock is stepped by hand (``autostep=False``), after five minutes of trading so the
demo account holds positions and has a history of fills."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest

from app.account import AccountData, derive_state
from app.model import Channel, ConnectionState, LiquidationState, OrderUpdates, StreamKey, StreamState, Venue
from app.portfolio import AccountSource, Portfolio, Transition
from app.service import Subscription, SubscriptionService
from app.sim.engine import DEFAULT_START_MS, DEMO_ADDRESS, Fill
from app.sim.hyperliquid import LIQUIDATION_DELAY_MS, HyperliquidEmulator
from app.venues import build_adapter
from app.venues.base import Endpoint
from app.venues.hyperliquid import LIQUIDATION_SHOWN
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(20)

HL = Venue.HYPERLIQUID
ACCOUNT_CHANNELS = (Channel.POSITIONS, Channel.FILLS, Channel.ORDERS, Channel.LIQUIDATION)


@pytest.fixture
async def hyperliquid():
    server = HyperliquidEmulator(seed=7, autostep=False, start_ms=DEFAULT_START_MS, tick_interval=0.05)
    async with server:
        await server.advance(300_000)  # five minutes of trading: positions and a history of fills
        yield server


@pytest.fixture
def service(hyperliquid, services):
    def make(wallet: str | None = DEMO_ADDRESS) -> SubscriptionService:
        return services(build_adapter(HL, Endpoint(hyperliquid.ws_url, hyperliquid.http_url), wallet))

    return make


def live(*handles: Subscription) -> bool:
    return all(handle.stream.state is StreamState.LIVE for handle in handles)


async def rest_state(server: HyperliquidEmulator) -> dict[str, Any]:
    """``clearinghouseState`` of the demo account over HTTP, as any client asks for it."""
    async with aiohttp.ClientSession() as session:
        async with session.post(server.http_url + "/info", json={"type": "clearinghouseState", "user": DEMO_ADDRESS}) as response:
            assert response.status == 200
            return orjson.loads(await response.read())


def state_now(server: HyperliquidEmulator) -> dict[str, Any]:
    """The same answer, read synchronously (for conditions polled while the clock stands still)."""
    status, state = server.info({"type": "clearinghouseState", "user": DEMO_ADDRESS})
    assert status == 200
    return state


def account_figures(account: AccountData) -> tuple[dict[str, tuple[Decimal | None, ...]], tuple[Decimal | None, ...]]:
    def number(text: str | None) -> Decimal | None:
        return None if text is None else Decimal(text)

    positions = {
        market: (number(p.size), number(p.entry_price), number(p.mark_price), number(p.unrealized_pnl), number(p.liquidation_price))
        for market, p in account.positions.items()
    }  # fmt: skip
    margin = account.margin
    assert margin is not None
    return positions, (number(margin.equity), number(margin.maintenance), number(margin.initial), number(margin.available))


def venue_figures(state: dict[str, Any]) -> tuple[dict[str, tuple[Decimal | None, ...]], tuple[Decimal | None, ...]]:
    positions = {}
    for entry in state["assetPositions"]:
        p = entry["position"]
        size, value = Decimal(p["szi"]), Decimal(p["positionValue"])
        liquidation = None if p["liquidationPx"] is None else Decimal(p["liquidationPx"])
        positions[p["coin"]] = (size, Decimal(p["entryPx"]), value / abs(size), Decimal(p["unrealizedPnl"]), liquidation)
    summary = state["marginSummary"]
    margin = (Decimal(summary["accountValue"]), Decimal(state["crossMaintenanceMarginUsed"]), Decimal(summary["totalMarginUsed"]), Decimal(state["withdrawable"]))
    return positions, margin


def equal_to(account: AccountData, state: dict[str, Any]) -> bool:
    return account.margin is not None and account_figures(account) == venue_figures(state)


async def advance_until_fills(server: HyperliquidEmulator, step_ms: int = 500, max_ms: int = 60_000) -> list[Fill]:
    for _ in range(max_ms // step_ms):
        events = await server.advance(step_ms)
        if events.fills:
            return events.fills
        await asyncio.sleep(0.005)
    raise AssertionError("no demo fill")


async def test_positions_and_margin_are_the_clearinghouse_state(hyperliquid, service):
    svc = service()
    positions = svc.subscribe(HL, Channel.POSITIONS)
    await eventually(lambda: live(positions) and positions.stream.messages >= 4, what="the push and the REST snapshot")  # two events each
    account = positions.stream.data
    state = await rest_state(hyperliquid)  # the clock stands still: the state both of them saw
    assert state["assetPositions"] and equal_to(account, state)
    assert {p.kind for p in account.positions.values()} == {"perp"} and all(p.underlying == m for m, p in account.positions.items())
    pushed_at = account.margin.time_ms
    requests = hyperliquid.stats.http_requests
    for _ in range(3):  # pushed on change, at most once a second
        await hyperliquid.advance(1_100)
        state = state_now(hyperliquid)
        await eventually(lambda: equal_to(account, state), what="the pushed state")
    assert account.margin.time_ms > pushed_at and hyperliquid.stats.http_requests == requests  # over the socket
    assert equal_to(account, await rest_state(hyperliquid)) and live(positions)


async def test_fills_snapshot_then_new_fills_each_once(hyperliquid, service):
    svc = service()
    fills = svc.subscribe(HL, Channel.FILLS)
    data = fills.stream.data
    await eventually(lambda: live(fills) and len(data.fills) == 30, what="the snapshot")  # the socket's 30 newest
    status, history = hyperliquid.info({"type": "userFills", "user": DEMO_ADDRESS})
    assert status == 200 and {f.fill_id for f in data.fills} == {str(raw["tid"]) for raw in history[:30]}
    assert [f.time_ms for f in data.fills] == sorted(f.time_ms for f in data.fills)  # newest last
    new = await advance_until_fills(hyperliquid)
    await eventually(lambda: {str(f.tid) for f in new} <= {f.fill_id for f in data.fills}, what="the new fills")
    fill = next(f for f in data.fills if f.fill_id == str(new[-1].tid))
    spec = hyperliquid.engine.spec(new[-1].symbol)
    assert (fill.market, fill.price, fill.size, fill.order_id) == (hyperliquid.coin(new[-1].symbol), spec.px_str(new[-1].px), spec.sz_str(new[-1].sz), str(new[-1].order_id))
    assert not any(f.liquidation for f in data.fills)
    held = [f.fill_id for f in data.fills]
    # a reconnect's snapshot repeats fills already held: each is kept once
    messages = fills.stream.messages
    hyperliquid.drop_all()
    await eventually(lambda: svc.connections(HL)[0].reconnects == 1 and live(fills) and fills.stream.messages > messages, what="the snapshot again")
    assert [f.fill_id for f in data.fills] == held and len(set(held)) == len(held) == 30 + len({f.tid for f in new})


async def test_orders_open_then_filled(hyperliquid, service):
    svc = service()
    seen: list[tuple[str, str]] = []
    orders = svc.subscribe(
        HL, Channel.ORDERS, on_event=lambda event: seen.extend((u.order_id, u.status) for u in event.orders) if isinstance(event, OrderUpdates) else None
    )
    await eventually(lambda: live(orders), what="orders live")  # the venue sends nothing on subscribe
    fills = await advance_until_fills(hyperliquid)
    oids = list(dict.fromkeys(str(fill.order_id) for fill in fills))
    await eventually(lambda: all(oid in orders.stream.data.orders for oid in oids) and len(seen) == 2 * len(oids), what="the orders")
    assert seen == [(oid, "open") for oid in oids] + [(oid, "filled") for oid in oids]
    for oid in oids:
        mine = [fill for fill in fills if str(fill.order_id) == oid]
        spec = hyperliquid.engine.spec(mine[0].symbol)
        order = orders.stream.data.orders[oid]
        assert (order.status, order.market, order.side.value) == ("filled", hyperliquid.coin(mine[0].symbol), mine[0].side)
        assert Decimal(order.size) == Decimal(order.filled) == Decimal(spec.sz_str(sum(fill.sz for fill in mine)))
    assert orders.stream.data.open_orders() == []


async def test_liquidation_stages_reach_the_portfolio(hyperliquid, service):
    svc = service()
    positions, fills, liquidation = (svc.subscribe(HL, c) for c in (Channel.POSITIONS, Channel.FILLS, Channel.LIQUIDATION))
    await eventually(lambda: live(positions, fills, liquidation) and positions.stream.messages >= 4, what="live")
    account, data = positions.stream.data, liquidation.stream.data
    portfolio = Portfolio([AccountSource(HL, account, data)])
    assert portfolio.refresh() == [] and portfolio.view.venues[0].state is LiquidationState.NORMAL

    hyperliquid.set_liquidation_stage("warning")  # moves USDC out at once; pushed within a second
    await hyperliquid.advance(1_100)
    state = state_now(hyperliquid)
    await eventually(lambda: equal_to(account, state), what="the warning margin")
    assert derive_state(Decimal(account.margin.equity), Decimal(account.margin.maintenance)) is LiquidationState.WARNING
    assert portfolio.refresh() == [Transition(HL, LiquidationState.NORMAL, LiquidationState.WARNING)]
    (venue,) = portfolio.view.venues
    assert not venue.stated and 1.0 <= venue.margin_ratio < 1.5 and data.state is None  # derived: Hyperliquid states nothing

    hyperliquid.set_liquidation_stage("liquidating")
    liquidated: list[Fill] = []
    for _ in range(LIQUIDATION_DELAY_MS // 100 + 12):  # below maintenance for the delay, then liquidated
        events = await hyperliquid.advance(100)
        liquidated += [fill for fill in events.fills if fill.liquidation_mark_px is not None]
        await asyncio.sleep(0.005)
        if liquidated:
            break
    assert liquidated, "no liquidation"
    await eventually(lambda: data.state is LiquidationState.LIQUIDATING, what="the userEvents liquidation")
    last = data.last
    assert last.lasts == LIQUIDATION_SHOWN == 60.0 and last.auction_id is not None and last.auction_id.isdigit()
    assert Decimal(last.equity) > 0 and data.transitions == 1
    await eventually(lambda: {str(f.tid) for f in liquidated} <= {f.fill_id for f in fills.stream.data.fills if f.liquidation}, what="liquidation fills")
    assert all(not f.liquidation for f in fills.stream.data.fills if f.fill_id not in {str(f.tid) for f in liquidated})
    transitions = portfolio.refresh()  # Warning -> Liquidating (from margin, or the event itself)
    assert transitions == [Transition(HL, LiquidationState.WARNING, LiquidationState.LIQUIDATING)]
    (venue,) = portfolio.view.venues
    assert venue.stated and venue.state is LiquidationState.LIQUIDATING and venue.auction_id == last.auction_id
    # The event is shown for its 60 s whatever the margin says, then margin speaks again.
    await hyperliquid.advance(1_100)
    state = state_now(hyperliquid)
    await eventually(lambda: equal_to(account, state), what="the state after the liquidation")
    assert portfolio.refresh() == [] and portfolio.view.venues[0].state is LiquidationState.LIQUIDATING
    later = Portfolio([AccountSource(HL, account, data)], clock=lambda: time.time() + LIQUIDATION_SHOWN + 1)
    later.refresh()
    (venue,) = later.view.venues
    assert not venue.stated and venue.state is derive_state(Decimal(account.margin.equity), Decimal(account.margin.maintenance))


async def test_no_account_stream_without_a_wallet(hyperliquid, service):
    adapter = build_adapter(HL, Endpoint(hyperliquid.ws_url, hyperliquid.http_url))
    for channel in ACCOUNT_CHANNELS:
        with pytest.raises(ValueError, match=f"^hyperliquid {channel}: no wallet configured$"):
            adapter.check(StreamKey(HL, channel))
    await adapter.close()
    svc = service(None)
    for channel in ACCOUNT_CHANNELS:
        with pytest.raises(ValueError, match="no wallet configured"):
            svc.subscribe(HL, channel)
    assert svc.connections(HL) == [] and svc.streams() == []
    mids = svc.subscribe(HL, Channel.ALL_MIDS)  # public streams need none
    await eventually(lambda: live(mids), what="mids live")
    assert hyperliquid.stats.connections_accepted == 1 and [c.group for c in svc.connections(HL)] == [()]
    assert all(c.state is ConnectionState.LIVE for c in svc.connections(HL))
