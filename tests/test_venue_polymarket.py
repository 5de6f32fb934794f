"""The Polymarket adapter through the subscription service against the Polymarket emulator over
real sockets: books from the socket's dump and price changes equal the emulator's, exact again
after every fault within the venue's book refresh, tick size changes resync, assets added and
removed on the open socket, markets listed as outcomes."""

from __future__ import annotations

import asyncio

import pytest

from app.model import Channel, StreamState, StreamStatus, Venue
from app.rest import RestClient
from app.service import SubscriptionService
from app.sim.polymarket import PolymarketEmulator
from app.supervisor import Backoff
from app.venues.base import Endpoint
from app.venues.polymarket import PolymarketAdapter
from tests.conftest import QUICK_LIVENESS, eventually

PM = Venue.POLYMARKET


@pytest.fixture(params=[False, True], ids=["current", "legacy"])
async def polymarket(request):
    async with PolymarketEmulator(seed=9, autostep=False, legacy_price_change=request.param, book_refresh_interval=2.0) as server:
        yield server


@pytest.fixture
async def service(polymarket):
    endpoint = Endpoint(polymarket.ws_url, polymarket.http_url)
    made = SubscriptionService(
        [PolymarketAdapter(endpoint, RestClient(endpoint.http_url))],
        liveness={PM: QUICK_LIVENESS},
        backoff=lambda: Backoff(initial=0.05, maximum=0.4),
        idle_grace=0.2,
    )
    yield made
    await made.close()


async def run_market(server: PolymarketEmulator, seconds: float, step_ms: int = 100) -> None:
    for _ in range(int(seconds * 1000 / step_ms)):
        await server.advance(step_ms)
        await asyncio.sleep(0.005)


async def synced(server: PolymarketEmulator, handle, token: str, what: str) -> None:
    await eventually(
        lambda: handle.stream.state is StreamState.LIVE and handle.stream.data.book.levels() == server.book(token),
        what=what,
    )


def subscribed_assets(server: PolymarketEmulator) -> set[str]:
    return {token for conn in server.connections for token in conn.state.get("assets", ())}


async def test_book_from_dump_and_price_changes_equals_the_emulators(service, polymarket):
    token = polymarket.token_ids[0]
    book = service.subscribe(PM, Channel.BOOK, token)
    await synced(polymarket, book, token, "dump applied")
    await run_market(polymarket, 3.0)
    await synced(polymarket, book, token, "still equal after 3 s of price changes")
    assert book.stream.resyncs == 0


@pytest.mark.parametrize("fault", ["skip", "duplicate", "reorder", "delta_before_snapshot"])
async def test_book_is_exact_again_after_each_fault(service, polymarket, fault):
    token = polymarket.token_ids[2]
    if fault == "delta_before_snapshot":
        polymarket.arm_book_fault(token, fault)  # for the next subscription
    book = service.subscribe(PM, Channel.BOOK, token)
    await synced(polymarket, book, token, "synced before the fault")
    if fault != "delta_before_snapshot":
        polymarket.arm_book_fault(token, fault)
    await run_market(polymarket, 3.0)  # longer than the venue's book refresh (2 s here)
    await synced(polymarket, book, token, f"exact again after {fault}")
    assert not book.stream.data.book.crossed


async def test_tick_size_change_resyncs_the_book(service, polymarket):
    token = polymarket.token_ids[0]
    book = service.subscribe(PM, Channel.BOOK, token)
    await synced(polymarket, book, token, "synced")
    states: list[StreamState] = []
    book.listener = lambda event: states.append(event.state) if isinstance(event, StreamStatus) else None
    await polymarket.change_tick_size(token, "0.001")
    await run_market(polymarket, 0.5)
    await synced(polymarket, book, token, "exact after the tick size change")
    assert book.stream.resyncs == 1 and StreamState.RESYNCING in states


async def test_assets_are_added_and_removed_on_the_open_socket(service, polymarket):
    first, second = polymarket.token_ids[0], polymarket.token_ids[2]
    book = service.subscribe(PM, Channel.BOOK, first)
    trades = service.subscribe(PM, Channel.TRADES, first)
    await synced(polymarket, book, first, "first live")
    await eventually(lambda: trades.stream.state is StreamState.LIVE, what="trades confirmed by the dump")
    other = service.subscribe(PM, Channel.BOOK, second)  # make before break
    book.close()
    await synced(polymarket, other, second, "second live")
    assert subscribed_assets(polymarket) == {first, second}  # the first still has its trades
    trades.close()
    await eventually(lambda: subscribed_assets(polymarket) == {second}, what="first asset unsubscribed")
    assert polymarket.stats.connections_accepted == 1


async def test_trades_arrive(service, polymarket):
    token = polymarket.token_ids[0]
    trades = service.subscribe(PM, Channel.TRADES, token)
    await run_market(polymarket, 10.0, step_ms=250)
    await eventually(lambda: len(trades.stream.data.trades) > 0, what="a trade")
    assert all(trade.market == token for trade in trades.stream.data.trades)


async def test_markets_are_listed_as_outcomes(service, polymarket):
    markets = await service.markets(PM)
    by_event: dict[str, list[str]] = {}
    for market in markets:
        assert market.kind == "prediction" and market.event and market.outcome
        by_event.setdefault(market.event, []).append(market.outcome)
    assert all(sorted(outcomes) == ["No", "Yes"] for outcomes in by_event.values())
    assert {m.market for m in markets} == set(polymarket.token_ids)
