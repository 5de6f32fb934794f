"""The Hypercall adapter through the subscription service against the Hypercall emulator over real
sockets on 127.0.0.1: authentication (the echo compared case-insensitively, a refused wallet fails
the account connection only), filters per socket, every message type folded into the state, the
Greeks equal to the emulator's, the server's heartbeat, reconnects that authenticate and filter
again (and forget an order or a liquidation state that may have changed while disconnected),
slow-consumer closes, and liquidation transitions reaching the portfolio.

The emulator's clock is stepped by hand (``autostep=False``): the market moves only when a test
advances it, so what the service holds can be compared with the emulator at the same moment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import astuple
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect

from app.model import (
    BookSnapshot,
    Channel,
    ChainRow,
    ConnectionState,
    ConnectionStatus,
    LiquidationState,
    StreamState,
    StreamStatus,
    Venue,
)
from app.portfolio import AccountSource, Portfolio, Transition
from app.service import Subscription, SubscriptionService
from app.sim.engine import DEFAULT_START_MS, DEMO_ADDRESS, format_decimal
from app.sim.hypercall import HypercallEmulator
from app.sim.options import bs_greeks, years_between
from app.sim.server import WsConnection
from app.supervisor import Connection
from app.venues import build_adapter
from app.venues.base import Endpoint
from app.venues.hypercall import ACCOUNT
from tests.conftest import eventually
from tests.test_sim_hypercall import raw_socket, read_frame

pytestmark = pytest.mark.timeout(20)

HC = Venue.HYPERCALL
MIXED_CASE = "0x" + DEMO_ADDRESS[2:].upper()  # the demo wallet; the venue echoes it lower-cased
OTHER_WALLET = "0x" + "ab" * 20  # valid, holds nothing
ACCOUNT_CHANNELS = (Channel.POSITIONS, Channel.FILLS, Channel.ORDERS, Channel.LIQUIDATION, Channel.COMPETITION)
PRIVATE_WIRE = {"portfolio", "fills", "order_updates", "liquidation", "competition"}


def start_emulator(**options: Any) -> HypercallEmulator:
    options = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, **options}
    return HypercallEmulator(**options)


@pytest.fixture
async def hypercall():
    async with start_emulator() as server:
        yield server


@pytest.fixture
def service(hypercall, services):
    """Services on an emulator (``hypercall`` unless given), each closed at the end of the test."""

    def make(wallet: str | None = MIXED_CASE, server: HypercallEmulator | None = None, **kwargs: Any) -> SubscriptionService:
        server = server or hypercall
        return services(build_adapter(HC, Endpoint(server.ws_url, server.http_url), wallet), **kwargs)

    return make


def record_client_frames(server: HypercallEmulator) -> list[tuple[int, Any]]:
    """Every JSON frame the emulator receives from its clients, as (connection id, message)."""
    received: list[tuple[int, Any]] = []
    handle = server.on_ws_message

    async def recording(conn: WsConnection, text: str) -> None:
        received.append((conn.id, orjson.loads(text)))
        await handle(conn, text)

    server.on_ws_message = recording  # type: ignore[method-assign]
    return received


def of_type(received: list[tuple[int, Any]], kind: str) -> list[tuple[int, Any]]:
    return [(conn, message) for conn, message in received if message.get("type") == kind]


def live(*handles: Subscription) -> bool:
    return all(handle.stream.state is StreamState.LIVE for handle in handles)


def settled(handle: Subscription) -> bool:
    """A positions stream live with both its socket snapshot and its REST snapshot applied (three
    events each), so no late REST answer lands after what a test then waits for."""
    return live(handle) and handle.stream.messages >= 6


def account_connection(svc: SubscriptionService) -> Connection:
    (connection,) = [c for c in svc.connections(HC) if c.group == ACCOUNT]
    return connection


def subscribed(server: HypercallEmulator, channel: str) -> list[WsConnection]:
    """The emulator's open connections subscribed to ``channel``."""
    return [conn for conn in server.connections if not conn.closed and channel in conn.state.get("subs", {})]


async def advance_until(server: HypercallEmulator, predicate: Callable[[], bool], what: str, virtual_s: float = 60.0, step_ms: int = 500) -> None:
    """Move the market on in steps of ``step_ms`` until ``predicate`` holds (at most ``virtual_s``
    of virtual time), then give the frames in flight a moment."""
    for _ in range(int(virtual_s * 1000 / step_ms)):
        if predicate():
            return
        await server.advance(step_ms)
        await asyncio.sleep(0.01)
    await eventually(predicate, timeout=2.0, what=what)


async def rest(server: HypercallEmulator, path: str, **params: str) -> Any:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + path, params=params) as response:
            assert response.status == 200
            return orjson.loads(await response.read())


def decimal_levels(levels: list[tuple[str, str]]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(price), Decimal(size)) for price, size in levels]


def service_book(handle: Subscription) -> tuple[list[tuple[Decimal, Decimal]], ...]:
    bids, asks = handle.stream.data.book.levels()
    return decimal_levels(bids), decimal_levels(asks)


def emulator_book(server: HypercallEmulator, name: str) -> tuple[list[tuple[Decimal, Decimal]], ...]:
    inst = server.instruments[name]
    return tuple([(Decimal(inst.px(px)), Decimal(lots) / 10) for px, lots in side] for side in (inst.bids, inst.asks))


def instrument(server: HypercallEmulator, underlying: str, expiry_index: int, kind: str) -> str:
    expiry = server.underlyings[underlying].expiries[expiry_index]
    names = sorted(
        (inst.strike, name) for name, inst in server.instruments.items()
        if inst.und.name == underlying and inst.expiry_ms == expiry and inst.option_type == kind
    )  # fmt: skip
    return names[len(names) // 2][1]  # at the money


def day(expiry_ms: int) -> str:
    return datetime.fromtimestamp(expiry_ms / 1000, UTC).strftime("%Y-%m-%d")


# --------------------------------------------------------------------------------------------------
# Authentication
# --------------------------------------------------------------------------------------------------


async def test_account_streams_go_live_after_authenticate_with_a_mixed_case_wallet(hypercall, service):
    received = record_client_frames(hypercall)
    svc = service(MIXED_CASE)
    handles = [svc.subscribe(HC, channel) for channel in ACCOUNT_CHANNELS]
    await eventually(lambda: live(*handles), what="account streams live")
    connection = account_connection(svc)
    assert connection.state is ConnectionState.LIVE and len(svc.connections(HC)) == 1
    # One Authenticate with the wallet as configured; the venue echoed it lower-cased (!= ours).
    (auth,) = of_type(received, "Authenticate")
    assert auth[1] == {"type": "Authenticate", "wallet": MIXED_CASE} and MIXED_CASE != DEMO_ADDRESS
    on_socket = [message for conn, message in received if conn == auth[0]]
    assert on_socket[0]["type"] == "Authenticate"  # before any subscribe
    assert {m["channel"] for m in on_socket[1:] if m["type"] == "Subscribe"} == PRIVATE_WIRE
    (conn,) = subscribed(hypercall, "portfolio")
    assert conn.state["wallet"] == DEMO_ADDRESS and set(conn.state["subs"]) == PRIVATE_WIRE
    assert len(handles[0].stream.data.positions) == 4  # the demo wallet's legs


async def test_a_refused_wallet_fails_the_account_connection_only(hypercall, service):
    received = record_client_frames(hypercall)
    svc = service("0x123")
    positions = svc.subscribe(HC, Channel.POSITIONS)
    fills = svc.subscribe(HC, Channel.FILLS)
    index = svc.subscribe(HC, Channel.ALL_MIDS)
    await eventually(lambda: account_connection(svc).state is ConnectionState.FAILED, what="account connection failed")
    connection = account_connection(svc)
    assert connection.reason == "authentication refused: Invalid wallet address"
    for handle in (positions, fills):
        assert handle.stream.state is StreamState.ERROR and "Invalid wallet address" in handle.stream.reason
    await advance_until(hypercall, lambda: live(index) and set(index.stream.data.mids) == {"BTC", "ETH"}, "public stream live")
    await asyncio.sleep(0.3)  # several backoff periods: a wrong wallet stays wrong, nobody retries it
    assert len(of_type(received, "Authenticate")) == 1 and connection.state is ConnectionState.FAILED
    assert not of_type(received, "Subscribe") or all(m["channel"] == "index_prices" for _, m in of_type(received, "Subscribe"))
    # The venue's side of the refusal: the Error leaves the socket open and usable.
    async with connect(hypercall.ws_url, ping_interval=None) as ws:
        await ws.send('{"type":"Authenticate","wallet":"0x123"}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 2)) == {"type": "Error", "message": "Invalid wallet address"}
        await ws.send('{"type":"Subscribe","channel":"index_prices"}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 2)) == {"type": "Subscribed", "channel": "index_prices"}
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 2))["type"] == "IndexPriceUpdate"


async def test_the_deprecated_wallet_query_authenticates(hypercall):
    async with connect(f"{hypercall.ws_url}?wallet={MIXED_CASE}", ping_interval=None) as ws:
        await ws.send('{"type":"Subscribe","channel":"portfolio"}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 2)) == {"type": "Subscribed", "channel": "portfolio"}
        initial = orjson.loads(await asyncio.wait_for(ws.recv(), 2))
        assert initial["type"] == "PortfolioUpdate" and len(initial["positions"]) == 4
        assert {p["wallet_address"] for p in initial["positions"]} == {DEMO_ADDRESS}


# --------------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------------


async def test_two_books_share_a_socket_each_with_its_instrument(hypercall, service):
    received = record_client_frames(hypercall)
    svc = service(None)
    first, second = instrument(hypercall, "BTC", 0, "call"), instrument(hypercall, "ETH", 1, "put")
    seen: dict[str, list[str]] = {first: [], second: []}

    def collect(name: str) -> Callable[[Any], None]:
        return lambda event: seen[name].append(event.market) if isinstance(event, BookSnapshot) else None

    books = {name: svc.subscribe(HC, Channel.BOOK, name, on_event=collect(name)) for name in (first, second)}
    await advance_until(
        hypercall, lambda: live(*books.values()) and all(service_book(h) == emulator_book(hypercall, n) for n, h in books.items()), "both books synced", 5.0
    )
    assert len(svc.connections(HC)) == 1
    (conn,) = subscribed(hypercall, "orderbook")
    assert conn.state["subs"]["orderbook"].symbols == {first, second}
    await advance_until(hypercall, lambda: all(len(markets) >= 3 for markets in seen.values()), "book pushes for both", 30.0)
    assert all(set(markets) == {name} for name, markets in seen.items())  # each only its instrument
    assert all(service_book(h) == emulator_book(hypercall, n) for n, h in books.items())

    books[first].close()
    await eventually(lambda: conn.state["subs"]["orderbook"].symbols == {second}, what="first instrument unsubscribed")
    (_, unsubscribe), = of_type(received, "Unsubscribe")
    assert unsubscribe == {"type": "Unsubscribe", "channel": "orderbook", "symbols": [first]}
    before = len(seen[second])
    await advance_until(hypercall, lambda: len(seen[second]) >= before + 3, "second book keeps flowing", 30.0)
    assert set(seen[second]) == {second} and live(books[second])
    assert service_book(books[second]) == emulator_book(hypercall, second)
    assert hypercall.stats.connections_accepted == 1


async def test_a_filtered_chain_gets_only_its_expiry_and_type(hypercall, service):
    svc = service(None)
    expiry = hypercall.underlyings["ETH"].expiries[1]
    rows: list[ChainRow] = []
    chain = svc.subscribe(
        HC, Channel.OPTIONS_CHAIN, "ETH", {"expiry": day(expiry), "option_type": "put"},
        on_event=lambda event: rows.append(event) if isinstance(event, ChainRow) else None,
    )  # fmt: skip
    await eventually(lambda: live(chain), what="chain live")
    held = chain.stream.data.rows
    expected = {(inst.expiry_s, Decimal(inst.strike_text)): inst for inst in hypercall.instruments.values()
                if inst.und.name == "ETH" and inst.expiry_ms == expiry and not inst.is_call}  # fmt: skip
    assert set(held) == set(expected) and len(held) == 9
    for key, row in held.items():
        inst = expected[key]
        assert row.call is None and row.put is not None and row.put.symbol == inst.name
        assert row.put.delta == pytest.approx(inst.greeks.delta, rel=1e-6)  # the snapshot: nothing moved since
        assert row.put.mark_iv == pytest.approx(inst.iv, rel=1e-6)
    (connection,) = svc.connections(HC)
    assert connection.group == f"chain:{day(expiry)}:put"  # filters hold per socket
    (conn,) = subscribed(hypercall, "options_chain")
    subscription = conn.state["subs"]["options_chain"]
    assert (subscription.symbols, subscription.expiry, subscription.option_type) == ({"ETH"}, day(expiry), "put")
    count = len(rows)
    await advance_until(hypercall, lambda: len(rows) >= count + 3, "chain updates", 20.0)
    assert all(row.underlying == "ETH" and row.expiry_s == expiry // 1000 and row.call is None and row.put for row in rows)
    assert len(held) == 9


# --------------------------------------------------------------------------------------------------
# Every message type
# --------------------------------------------------------------------------------------------------


async def test_public_messages_fold_into_their_states(hypercall, service):
    svc = service(None)
    name = instrument(hypercall, "BTC", 1, "call")
    book = svc.subscribe(HC, Channel.BOOK, name)
    candles = svc.subscribe(HC, Channel.CANDLES, "BTC", {"interval": "1m"})
    index = svc.subscribe(HC, Channel.ALL_MIDS)
    chain = svc.subscribe(HC, Channel.OPTIONS_CHAIN, "BTC")
    listings = svc.subscribe(HC, Channel.LISTINGS)
    handles = (book, candles, index, chain, listings)
    await advance_until(hypercall, lambda: live(*handles), "public streams live", 5.0)

    # OrderbookUpdate: the book is the emulator's, also after it moved on
    await advance_until(hypercall, lambda: service_book(book) == emulator_book(hypercall, name), "book equal", 5.0)
    version = hypercall.instruments[name].version
    await advance_until(
        hypercall, lambda: hypercall.instruments[name].version > version + 2 and service_book(book) == emulator_book(hypercall, name), "book moved", 30.0
    )
    # IndexPriceUpdate (every underlying's index) and Candle (the forming bar) of this second
    await hypercall.advance(1_000)
    expected = {und: format_decimal(hypercall.engine.fair_price(und), u.index_decimals) for und, u in hypercall.underlyings.items()}
    await eventually(lambda: index.stream.data.mids == expected, what="index")
    series = candles.stream.data  # REST history first (the chart is complete), then the socket's bar
    symbol = hypercall.underlyings["BTC"].symbol
    bar, spec = hypercall.engine.current_candle(symbol, "1m"), hypercall.engine.spec(symbol)
    shown = ("BTC", "1m", bar.t, bar.t + 59_999, spec.px_str(bar.o), spec.px_str(bar.h), spec.px_str(bar.l), spec.px_str(bar.c), spec.sz_str(bar.v))
    await eventually(lambda: astuple(series.candles[-1])[:9] == shown, what="the forming bar")
    assert series.complete and len(series.candles) > 100
    assert [c.open_time_ms for c in series.candles] == sorted({c.open_time_ms for c in series.candles})

    # OptionsChainUpdate Upsert: every row of every expiry
    btc = hypercall.underlyings["BTC"]
    assert chain.stream.data.expiries() == [e // 1000 for e in btc.expiries] and len(chain.stream.data.rows) == 36
    row = chain.stream.data.rows_for(btc.expiries[0] // 1000)[4]
    assert row.call.symbol.endswith("-C") and row.put.symbol.endswith("-P") and row.call.bid <= row.call.mark <= row.call.ask
    # Expiry: Remove per leg and MarketUpdate Expired, then the new expiry Created and upserted
    old = {n for n, inst in hypercall.instruments.items() if inst.und is btc and inst.expiry_ms == btc.expiries[0]}
    nearest = await hypercall.expire_next("BTC")
    await eventually(lambda: nearest // 1000 not in chain.stream.data.expiries(), what="expired rows removed")
    new = {n for n, inst in hypercall.instruments.items() if inst.und is btc and inst.expiry_ms == btc.expiries[-1]}
    await eventually(lambda: len(listings.stream.data.changes) == 36, what="listing changes")
    changes = list(listings.stream.data.changes)
    assert {c.market for c in changes if c.action == "expired"} == old
    assert {c.market for c in changes if c.action == "created"} == new
    created = next(c for c in changes if c.action == "created")
    assert created.info is not None and created.info.kind == "option" and created.info.display.startswith("BTC ")
    await advance_until(hypercall, lambda: chain.stream.data.expiries() == [e // 1000 for e in btc.expiries], "new expiry upserted", 5.0)
    assert len(chain.stream.data.rows) == 36
    assert live(*handles)


async def test_account_messages_fold_into_their_states(hypercall, service):
    svc = service(MIXED_CASE)
    positions, fills, orders, liquidation, competition = (svc.subscribe(HC, channel) for channel in ACCOUNT_CHANNELS)
    await eventually(lambda: live(fills, orders, liquidation, competition) and settled(positions), what="account live")
    account = positions.stream.data
    portfolio = await rest(hypercall, "/portfolio", wallet=DEMO_ADDRESS)
    assert {m: Decimal(p.size) for m, p in account.positions.items()} == {p["symbol"]: Decimal(p["amount"]) for p in portfolio["positions"]}
    assert all(p.kind == "option" and p.underlying == m.split("-")[0] for m, p in account.positions.items())
    assert account.margin is not None and account.margin.equity == portfolio["span_margin"]["equity"]
    assert set(account.greeks) == set(account.positions)
    # the resting order from REST; no fills yet; the competition summary
    (resting,) = orders.stream.data.open_orders()
    assert resting.status == "open" and resting.side == "buy" and resting.market in hypercall.instruments
    assert list(fills.stream.data.fills) == []
    summary = competition.stream.data.summary
    assert summary is not None and summary.competition == "Spring Sprint" and isinstance(summary.rank, int)
    assert Decimal(summary.lifetime_pnl) > 0
    # listen to trades on the demo's legs: its own trades print there
    trades = {market: svc.subscribe(HC, Channel.TRADES, market) for market in account.positions}
    await eventually(lambda: live(*trades.values()), what="trades live")

    # A demo trade: OrderUpdate OPEN and FILLED, Fill, PositionUpdate, and the public Trade
    await advance_until(hypercall, lambda: len(fills.stream.data.fills) >= 1, "a demo fill")
    fill = fills.stream.data.fills[0]
    order = orders.stream.data.orders[fill.order_id]
    assert (order.status, order.market, order.side) == ("filled", fill.market, fill.side)
    assert Decimal(order.filled) == Decimal(order.size) == Decimal(fill.size) and Decimal(order.price) == Decimal(fill.price)
    assert fill.taker is True and fill.fee is not None and Decimal(fill.fee) > 0
    await eventually(lambda: any(t.price == fill.price and t.time_ms == fill.time_ms for t in trades[fill.market].stream.data.trades), what="the public trade")
    trade = next(t for t in trades[fill.market].stream.data.trades if t.time_ms == fill.time_ms)
    assert (trade.market, trade.size, trade.side) == (fill.market, fill.size, fill.side)
    portfolio = await rest(hypercall, "/portfolio", wallet=DEMO_ADDRESS)
    amounts = {p["symbol"]: Decimal(p["amount"]) for p in portfolio["positions"]}
    await eventually(lambda: {m: Decimal(p.size) for m, p in account.positions.items()} == amounts, what="position update")
    entries = {p["symbol"]: Decimal(p["entry_price"]) for p in portfolio["positions"]}
    assert all(Decimal(p.entry_price) == entries[m] for m, p in account.positions.items())
    # the REST fills agree with what the socket delivered
    rest_fills = (await rest(hypercall, "/fills", wallet=DEMO_ADDRESS))["data"]
    assert [str(f["fill_id"]) for f in reversed(rest_fills)] == [f.fill_id for f in fills.stream.data.fills]

    # PositionExpired: the nearest BTC expiry settles the long call held there
    btc = hypercall.underlyings["BTC"]
    (held,) = [m for m in account.positions if hypercall.instruments[m].und is btc and hypercall.instruments[m].expiry_ms == btc.expiries[0]]
    size = account.positions[held].size
    strike = hypercall.instruments[held].strike
    spot = hypercall.engine.fair_price("BTC")
    await hypercall.expire_next("BTC")
    await eventually(lambda: len(account.expired) == 1, what="position expired")
    (expired,) = account.expired
    assert (expired.market, expired.size) == (held, size)
    assert float(expired.settlement_value) == pytest.approx(float(size) * max(0.0, spot - strike), abs=0.01)
    assert held not in account.positions and held not in account.greeks
    expired_at = hypercall.engine.now_ms
    await advance_until(hypercall, lambda: (account.greeks_time_ms or 0) > expired_at, "greeks after the expiry", 3.0, 1_000)
    assert set(account.greeks) == set(account.positions) and held not in account.greeks
    assert live(positions, fills, orders, liquidation, competition)


async def test_another_valid_wallet_has_the_empty_portfolio(hypercall, service):
    svc = service(OTHER_WALLET)
    positions, competition, liquidation = (svc.subscribe(HC, c) for c in (Channel.POSITIONS, Channel.COMPETITION, Channel.LIQUIDATION))
    await eventually(lambda: live(competition, liquidation) and settled(positions), what="live")
    subscribed_at = hypercall.engine.now_ms
    await advance_until(hypercall, lambda: (positions.stream.data.greeks_time_ms or 0) > subscribed_at, "a periodic update", 3.0, 1_000)
    account = positions.stream.data
    assert account.complete and account.positions == {} and account.greeks == {}
    assert account.margin is not None and Decimal(account.margin.equity) == 0 == Decimal(account.margin.maintenance)
    summary = competition.stream.data.summary
    assert summary is not None and summary.competition is None and Decimal(summary.lifetime_pnl) == 0
    view = Portfolio([AccountSource(HC, account, liquidation.stream.data)])
    assert view.refresh() == [] and view.view.legs == 0 and view.view.underlyings == ()
    assert view.view.venues[0].state is LiquidationState.NORMAL and not view.view.venues[0].stated


async def test_an_unknown_channel_errs_that_stream_only(hypercall, service):
    svc = service(None)
    index = svc.subscribe(HC, Channel.ALL_MIDS)
    await eventually(lambda: live(index), what="index live")
    unknown = svc.subscribe(HC, Channel.CANDLES, "SOL", {"interval": "1m"})  # not listed: "Invalid channel"
    await eventually(lambda: unknown.stream.state is StreamState.ERROR, what="refused")
    assert unknown.stream.reason == "Invalid channel: candles:SOL:1m"
    (connection,) = svc.connections(HC)
    assert connection.state is ConnectionState.LIVE and connection.reconnects == 0
    messages = index.stream.messages
    await advance_until(hypercall, lambda: index.stream.messages >= messages + 2, "index keeps flowing", 5.0)
    assert live(index) and unknown.stream.state is StreamState.ERROR
    assert hypercall.stats.connections_accepted == 1 and connection.reconnects == 0


# --------------------------------------------------------------------------------------------------
# Greeks and liquidation in the portfolio
# --------------------------------------------------------------------------------------------------


async def test_greeks_equal_the_emulators(hypercall, service):
    svc = service(MIXED_CASE)
    positions = svc.subscribe(HC, Channel.POSITIONS)
    index = svc.subscribe(HC, Channel.ALL_MIDS)
    await eventually(lambda: live(index) and settled(positions), what="live")
    account = positions.stream.data
    for _ in range(3):  # the periodic GreeksUpdate, at several moments
        await hypercall.advance(1_000)
        await eventually(lambda: account.greeks_time_ms == hypercall.engine.now_ms, what="greeks of this moment")
        now = hypercall.engine.now_ms
        assert set(account.greeks) == set(account.positions) and len(account.greeks) == 4
        expected: dict[str, dict[str, float]] = {}
        for market, leg in account.greeks.items():
            inst = hypercall.instruments[market]
            spot = hypercall.engine.fair_price(inst.und.name)
            quantity = float(leg.quantity)
            assert leg.quantity == account.positions[market].size
            g = bs_greeks(spot, inst.strike, years_between(now, inst.expiry_ms), inst.iv, inst.is_call).scaled(quantity)
            for name in ("delta", "gamma", "theta", "vega"):
                assert getattr(leg, name) == pytest.approx(getattr(g, name), rel=1e-6), (market, name)
                expected.setdefault(inst.und.name, {}).setdefault(name, 0.0)
                expected[inst.und.name][name] += getattr(g, name)
            assert leg.iv == pytest.approx(inst.iv, rel=1e-6)
        mids = {k: float(v) for k, v in index.stream.data.mids.items()}
        portfolio = Portfolio([AccountSource(HC, account)], prices=lambda: mids)
        portfolio.refresh()
        view = portfolio.view
        assert [u.underlying for u in view.underlyings] == ["BTC", "ETH"] and view.legs == 4
        for u in view.underlyings:
            for name in ("delta", "gamma", "theta", "vega"):
                assert getattr(u, name) == pytest.approx(expected[u.underlying][name], rel=1e-6, abs=1e-9), (u.underlying, name)
        aggregate = (await rest(hypercall, "/portfolio/greeks", wallet=DEMO_ADDRESS))["aggregate"]  # the same moment
        for name in ("delta", "gamma", "theta", "vega"):
            assert sum(getattr(u, name) for u in view.underlyings) == pytest.approx(aggregate[name], rel=1e-6, abs=1e-6), name
        assert view.total_theta == pytest.approx(aggregate["theta"], rel=1e-6) and view.total_vega == pytest.approx(aggregate["vega"], rel=1e-6)


async def test_liquidation_transitions_reach_the_portfolio(hypercall, service):
    svc = service(MIXED_CASE)
    positions = svc.subscribe(HC, Channel.POSITIONS)
    liquidation = svc.subscribe(HC, Channel.LIQUIDATION)
    await eventually(lambda: live(liquidation) and settled(positions), what="live")
    data = liquidation.stream.data
    portfolio = Portfolio([AccountSource(HC, positions.stream.data, data, live=lambda: live(positions, liquidation))])
    assert portfolio.refresh() == []  # the first known state is no transition
    (venue,) = portfolio.view.venues
    assert venue.state is LiquidationState.NORMAL and not venue.stated  # derived: the venue has not spoken
    assert venue.margin_ratio == pytest.approx(3.0, rel=0.01)

    hypercall.set_liquidation_stage("warning")
    await hypercall.advance(100)
    await eventually(lambda: data.state is LiquidationState.WARNING, what="warning")
    assert portfolio.refresh() == [Transition(HC, LiquidationState.NORMAL, LiquidationState.WARNING)]
    (venue,) = portfolio.view.venues
    assert venue.stated and venue.auction_id is None and data.last.previous is LiquidationState.NORMAL
    assert float(data.last.equity) == pytest.approx(1.25 * float(data.last.maintenance), rel=1e-3)

    hypercall.set_liquidation_stage("liquidating")
    await hypercall.advance(100)
    await eventually(lambda: data.state is LiquidationState.LIQUIDATING, what="liquidating")
    assert portfolio.refresh() == [Transition(HC, LiquidationState.WARNING, LiquidationState.LIQUIDATING)]
    (venue,) = portfolio.view.venues
    assert venue.stated and venue.auction_id == "auc-1" and venue.shortfall is not None and venue.shortfall > 0
    assert data.transitions == 2 and data.last.previous is LiquidationState.WARNING and data.last.lasts is None
    assert data.since == hypercall.engine.now_ms / 1000  # the venue's timestamp
    assert portfolio.refresh() == []  # reported once


# --------------------------------------------------------------------------------------------------
# Liveness and reconnects
# --------------------------------------------------------------------------------------------------


async def test_heartbeat_closes_a_silent_client_and_keeps_the_service(service):
    async with start_emulator(ping_interval=0.25, pong_timeout=0.8) as emu:
        svc = service(MIXED_CASE, server=emu)
        positions = svc.subscribe(HC, Channel.POSITIONS)
        index = svc.subscribe(HC, Channel.ALL_MIDS)
        await eventually(lambda: live(positions, index), what="live")
        accepted = emu.stats.connections_accepted
        since = time.monotonic()
        reader, writer = await raw_socket(emu)  # never answers a ping
        try:
            pings = 0
            while (frame := await read_frame(reader))[0] == 0x9:
                pings += 1
            opcode, payload = frame
            assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1008 and payload[2:] == b"pong timeout"
            assert pings >= 2 and 0.7 < time.monotonic() - since < 2.5
        finally:
            writer.close()
        while time.monotonic() - since < 2.5:  # ten ping intervals, three pong timeouts
            await emu.advance(200)
            await asyncio.sleep(0.1)
            assert all(c.state is ConnectionState.LIVE for c in svc.connections(HC))
        assert live(positions, index)
        assert all(c.reconnects == 0 for c in svc.connections(HC)) and emu.stats.connections_accepted == accepted + 1
        ours = [conn for conn in emu.connections if not conn.closed]
        assert len(ours) == 2 and all(conn.last_pong > conn.opened_at + 1.0 for conn in ours)  # websockets answered


@pytest.mark.parametrize("fault", ["drop_all", "restart"])
async def test_reconnect_authenticates_again_and_keeps_the_filters(hypercall, service, fault):
    received = record_client_frames(hypercall)
    svc = service(MIXED_CASE)
    name = instrument(hypercall, "ETH", 0, "call")
    expiry = hypercall.underlyings["BTC"].expiries[2]
    positions = svc.subscribe(HC, Channel.POSITIONS)
    liquidation = svc.subscribe(HC, Channel.LIQUIDATION)
    book = svc.subscribe(HC, Channel.BOOK, name)
    chain = svc.subscribe(HC, Channel.OPTIONS_CHAIN, "BTC", {"expiry": day(expiry)})
    handles = (positions, liquidation, book, chain)
    await advance_until(hypercall, lambda: live(*handles), "live", 5.0)
    assert len(svc.connections(HC)) == 3  # account, public, the filtered chain
    states: list[StreamState] = []
    chain.listener = lambda event: states.append(event.state) if isinstance(event, StreamStatus) else None

    if fault == "drop_all":
        hypercall.drop_all()
    else:
        await hypercall.restart()
    await eventually(lambda: all(c.reconnects >= 1 for c in svc.connections(HC)), what="reconnected")
    await advance_until(hypercall, lambda: live(*handles), "live again", 5.0)

    auths = of_type(received, "Authenticate")
    assert [m for _, m in auths] == [{"type": "Authenticate", "wallet": MIXED_CASE}] * 2 and auths[0][0] != auths[1][0]
    (conn,) = subscribed(hypercall, "portfolio")
    assert conn.id == auths[1][0] and conn.state["wallet"] == DEMO_ADDRESS and set(conn.state["subs"]) == {"portfolio", "liquidation"}
    (conn,) = subscribed(hypercall, "orderbook")
    assert conn.state["subs"]["orderbook"].symbols == {name}
    (conn,) = subscribed(hypercall, "options_chain")
    subscription = conn.state["subs"]["options_chain"]
    assert (subscription.symbols, subscription.expiry, subscription.option_type) == ({"BTC"}, day(expiry), None)
    assert states[0] is StreamState.STALE and StreamState.RESYNCING in states and states[-1] is StreamState.LIVE  # rebuilt
    assert chain.stream.data.expiries() == [expiry // 1000] and len(chain.stream.data.rows) == 9
    await advance_until(hypercall, lambda: service_book(book) == emulator_book(hypercall, name), "book equal again", 5.0)
    assert len(positions.stream.data.positions) == 4


async def test_a_slow_consumer_close_reconnects(hypercall, service):
    statuses: list[ConnectionStatus] = []
    svc = service(MIXED_CASE, on_connection=statuses.append)
    positions = svc.subscribe(HC, Channel.POSITIONS)
    book = svc.subscribe(HC, Channel.BOOK, instrument(hypercall, "BTC", 0, "put"))
    await advance_until(hypercall, lambda: live(positions, book), "live", 5.0)
    await hypercall.close_slow_consumer()
    await eventually(lambda: all(c.reconnects == 1 for c in svc.connections(HC)), what="reconnected")
    await advance_until(hypercall, lambda: live(positions, book) and all(c.state is ConnectionState.LIVE for c in svc.connections(HC)), "live again", 5.0)
    reasons = [s.reason for s in statuses if s.state is ConnectionState.RECONNECTING]
    assert len(reasons) == 2 and all("slow_consumer" in reason for reason in reasons)
    assert not any(s.state is ConnectionState.FAILED for s in statuses)
    assert len(positions.stream.data.positions) == 4


async def test_an_order_that_ended_while_disconnected_is_not_shown_open(hypercall, service):
    svc = service(MIXED_CASE)
    orders = svc.subscribe(HC, Channel.ORDERS)
    await eventually(lambda: live(orders) and len(orders.stream.data.open_orders()) == 1, what="the resting order")
    (resting,) = orders.stream.data.open_orders()
    hypercall.refuse()  # offline while the order's instrument expires: its CANCELED is never seen
    while resting.market in hypercall.instruments:
        await hypercall.expire_next("BTC")
    hypercall.refuse(False)
    (canceled,) = (await rest(hypercall, "/orders", wallet=DEMO_ADDRESS, status="canceled"))["data"]
    assert canceled["order_id"] == int(resting.order_id)
    await eventually(lambda: account_connection(svc).reconnects >= 1 and orders.stream.data.open_orders() == [], what="not open after the snapshot")
    assert live(orders)
    held = orders.stream.data.orders[resting.order_id]
    assert (held.status, held.market, held.size) == ("closed", resting.market, resting.size)


async def test_a_state_change_missed_while_disconnected_is_not_held(hypercall, service):
    svc = service(MIXED_CASE)
    positions = svc.subscribe(HC, Channel.POSITIONS)
    liquidation = svc.subscribe(HC, Channel.LIQUIDATION)
    await eventually(lambda: live(liquidation) and settled(positions), what="live")
    portfolio = Portfolio([AccountSource(HC, positions.stream.data, liquidation.stream.data)])
    transitions = portfolio.refresh()
    # refreshed on every event and status, as a screen refreshing at any moment would
    positions.listener = liquidation.listener = lambda _: transitions.extend(portfolio.refresh())
    hypercall.set_liquidation_stage("warning")
    await hypercall.advance(100)
    await eventually(lambda: liquidation.stream.data.state is LiquidationState.WARNING, what="warning")
    assert transitions == [Transition(HC, LiquidationState.NORMAL, LiquidationState.WARNING)]
    hypercall.refuse()  # offline while the account recovers: its LiquidationStateChange is never seen
    hypercall.set_liquidation_stage("normal")
    await hypercall.advance(100)
    hypercall.refuse(False)
    await eventually(lambda: account_connection(svc).reconnects >= 1 and live(liquidation) and settled(positions), what="back")
    await eventually(lambda: portfolio.view.venues[0].state is LiquidationState.NORMAL, what="normal again")
    assert transitions[1:] == [Transition(HC, LiquidationState.WARNING, LiquidationState.NORMAL)]
    assert not portfolio.view.venues[0].stated  # derived from margin until the venue speaks again
