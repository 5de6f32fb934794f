"""The Rails adapter through the subscription service against the Rails emulator over real sockets
on 127.0.0.1: the token from the API key and secret in the subprotocol, one socket per market plus
one ``market=ALL`` socket for the account; books built from the snapshot asked for on every
(re)connect and exact after it; a token renewed before it expires with the socket replaced and no
gap in the book; a lost delta repaired by the periodic snapshot; a refused key, an expired and a
forged token each failing once, without a storm."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from app.model import Channel, ConnectionState, StreamState, Venue
from app.secrets import Credentials
from app.service import SubscriptionService
from app.sim.rails import RailsEmulator
from app.venues import build_adapter
from app.venues.base import Endpoint
from app.venues.rails import RailsAdapter
from tests.conftest import eventually, stepped_until

pytestmark = pytest.mark.timeout(40)

RAILS = Venue.RAILS


@pytest.fixture
async def rails() -> AsyncIterator[RailsEmulator]:
    async with RailsEmulator(seed=7, autostep=False) as server:
        yield server


@pytest.fixture
def service(rails: RailsEmulator, services: Callable[..., SubscriptionService]) -> Callable[..., SubscriptionService]:
    """Services on the emulator with the demo key and secret unless told."""

    def make(credentials: Credentials | None = None, **kwargs: Any) -> SubscriptionService:
        credentials = credentials or Credentials(
            api_key=SecretStr(rails.demo_api_key), api_secret=SecretStr(rails.demo_api_secret)
        )
        return services(build_adapter(RAILS, Endpoint(rails.ws_url, rails.http_url), None, credentials), **kwargs)

    return make




async def assert_exact(rails: RailsEmulator, stream: Any, market: str) -> None:
    await asyncio.sleep(0.3)  # the last step's deltas have arrived; the emulator is not stepping
    assert stream.data.book.levels() == rails.book_levels(market)


async def test_one_socket_per_market_with_books_exact_after_the_snapshot(rails, service):
    svc = service()
    books = {market: svc.subscribe(RAILS, Channel.BOOK, market) for market in ("BTC-USDT", "ETH-USDT")}
    trades = svc.subscribe(RAILS, Channel.TRADES, "BTC-USDT")
    ticker = svc.subscribe(RAILS, Channel.TICKER, "BTC-USDT")
    await stepped_until(rails, lambda: all(h.stream.state is StreamState.LIVE for h in (*books.values(), trades, ticker)), what="live")
    await stepped_until(rails, lambda: all(h.stream.messages > 10 for h in books.values()), what="deltas")
    for market, handle in books.items():
        await assert_exact(rails, handle.stream, market)
    assert sorted(c.group for c in svc.connections(RAILS)) == ["BTC-USDT", "ETH-USDT"]
    assert ticker.stream.data.ticker is not None and ticker.stream.data.ticker.funding_rate is not None
    assert rails.stats.token_requests == 1  # one token for every socket


async def test_every_reconnect_asks_for_the_snapshot_again(rails, service):
    svc = service()
    book = svc.subscribe(RAILS, Channel.BOOK, "SOL-USDT")
    await stepped_until(rails, lambda: book.stream.state is StreamState.LIVE, what="live")
    rails.drop_all()
    await stepped_until(rails, lambda: svc.connections(RAILS)[0].reconnects == 1 and book.stream.state is StreamState.LIVE, what="back")
    await stepped_until(rails, lambda: book.stream.messages > 20, what="deltas")
    await assert_exact(rails, book.stream, "SOL-USDT")


async def test_a_crossed_book_asks_the_socket_again(rails, service):
    svc = service()
    book = svc.subscribe(RAILS, Channel.BOOK, "BTC-USDT")
    await stepped_until(rails, lambda: book.stream.state is StreamState.LIVE, what="live")
    best_bid, best_ask = book.stream.data.book.best_bid, book.stream.data.book.best_ask
    crossing = f'{{"resultType":"publicOrderBookDelta","market":"BTC-USDT","data":{{"orders":[{{"orderType":"buy","price":"{best_ask + 1}","quantity":"1"}}],"statusCode":200}}}}'
    await rails.inject(crossing)
    await stepped_until(rails, lambda: book.stream.resyncs == 1 and book.stream.state is StreamState.LIVE, what="resynced")
    await assert_exact(rails, book.stream, "BTC-USDT")
    assert best_bid is not None and svc.connections(RAILS)[0].reconnects == 0


async def test_the_token_is_renewed_and_the_socket_replaced_without_a_gap(rails, service):
    rails.token_ttl = 4.0
    svc = service()
    book = svc.subscribe(RAILS, Channel.BOOK, "ETH-USDT")
    states: list[StreamState] = []
    book.listener = lambda message: states.append(getattr(message, "state", None) or book.stream.state)
    await stepped_until(rails, lambda: book.stream.state is StreamState.LIVE, what="live")
    states.clear()
    await stepped_until(rails, lambda: rails.stats.token_requests >= 3, timeout=12, what="two renewals")
    assert set(states) == {StreamState.LIVE}  # never stale, never resyncing: the swap is seamless
    assert rails.stats.token_expiry_closes == 0  # every socket replaced before its token expired
    await stepped_until(rails, lambda: len(svc.connections(RAILS)) == 1, what="the old socket closed")
    await assert_exact(rails, book.stream, "ETH-USDT")


async def test_a_refused_key_fails_once(rails, service):
    svc = service(Credentials(api_key=SecretStr(rails.demo_api_key), api_secret=SecretStr("not-the-secret-123")))
    book = svc.subscribe(RAILS, Channel.BOOK, "BTC-USDT")
    await eventually(lambda: book.stream.state is StreamState.ERROR, what="refused")
    (connection,) = svc.connections(RAILS)
    assert connection.state is ConnectionState.FAILED and "API key or secret rejected (HTTP 401)" in connection.reason
    await asyncio.sleep(1.0)
    assert rails.stats.token_requests == 1 and connection.reconnects == 0


@pytest.mark.parametrize("kind", ["expired", "forged"])
async def test_a_bad_token_fails_once(rails, service, kind):
    token = rails.issue_token(rails.demo_api_key, ttl=-5) if kind == "expired" else rails.issue_token(rails.demo_api_key)[:-4] + "AAAA"
    svc = service(Credentials(token=SecretStr(token)))
    book = svc.subscribe(RAILS, Channel.BOOK, "BTC-USDT")
    await eventually(lambda: book.stream.state is StreamState.ERROR, what="refused")
    (connection,) = svc.connections(RAILS)
    assert connection.state is ConnectionState.FAILED
    assert ("token expired at" in connection.reason) if kind == "expired" else ("HTTP 401" in connection.reason)
    assert token not in connection.reason
    refused = rails.stats.ws_refused_auth
    await asyncio.sleep(1.0)
    assert rails.stats.ws_refused_auth == refused <= 1 and connection.reconnects == 0


async def test_the_account_streams_share_one_market_all_socket(rails, service):
    svc = service()
    fills = svc.subscribe(RAILS, Channel.FILLS)
    orders = svc.subscribe(RAILS, Channel.ORDERS)
    await stepped_until(rails, lambda: fills.stream.state is StreamState.LIVE and orders.stream.state is StreamState.LIVE, what="live")
    assert [c.group for c in svc.connections(RAILS)] == ["ALL"]
    await stepped_until(rails, lambda: fills.stream.data.fills and orders.stream.data.orders, timeout=20, what="the demo account trading")
    fill = fills.stream.data.fills[-1]
    assert fill.market.endswith("-USDT") and fill.order_id in orders.stream.data.orders


async def test_a_wrong_book_is_repaired_by_the_audit_snapshot(rails, service, monkeypatch):
    """Rails numbers nothing: a lost or false delta that leaves the book uncrossed is seen by no
    rule. The adapter asks for the snapshot again every so often; the difference is repaired and
    counted as a gap."""
    monkeypatch.setattr(RailsAdapter, "audit_every", {Channel.BOOK: 1.0})
    svc = service()
    book = svc.subscribe(RAILS, Channel.BOOK, "BTC-USDT")
    await stepped_until(rails, lambda: book.stream.state is StreamState.LIVE, what="live")
    deep = book.stream.data.book.best_bid - 5000  # a bid level the venue never had, far from the touch
    await rails.inject(
        f'{{"resultType":"publicOrderBookDelta","market":"BTC-USDT","data":{{"orders":[{{"orderType":"buy","price":"{deep}","quantity":"1"}}],"statusCode":200}}}}'
    )
    await eventually(lambda: (str(deep), "1") in book.stream.data.book.levels()[0], what="the false level held")
    await stepped_until(rails, lambda: book.stream.data.gaps == 1, timeout=5, what="the audit's repair")
    await assert_exact(rails, book.stream, "BTC-USDT")
    assert book.stream.state is StreamState.LIVE and book.stream.resyncs == 0
    assert svc.connections(RAILS)[0].reconnects == 0


async def test_a_429_from_the_token_endpoint_is_waited_out(rails, service):
    """Another client of the key used up its 20 token requests a minute: the venue's Retry-After
    sets the next attempt, and nothing is asked before then."""
    headers = {"X-Api-Key": rails.demo_api_key, "X-Api-Secret": rails.demo_api_secret}
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.post(f"{rails.http_url}/api/v1/token", headers=headers) as response:
                assert response.status == 200
    svc = service()
    book = svc.subscribe(RAILS, Channel.BOOK, "BTC-USDT")
    (connection,) = svc.connections(RAILS)
    await eventually(lambda: connection.state is ConnectionState.RECONNECTING, what="the refused token request")
    assert "HTTP 429" in connection.reason and connection.health().retry_in > 30  # the venue's minute, not our backoff
    asked = rails.stats.token_requests
    await asyncio.sleep(1.0)
    assert rails.stats.token_requests == asked == 21 and book.stream.state is not StreamState.LIVE


async def test_candles_are_built_from_the_public_trades(rails, service):
    svc = service()
    trades = svc.subscribe(RAILS, Channel.TRADES, "ETH-USDT")
    candles = svc.subscribe(RAILS, Channel.CANDLES, "ETH-USDT", {"interval": "1m"})
    await stepped_until(rails, lambda: candles.stream.state is StreamState.LIVE, what="bars live")
    await stepped_until(rails, lambda: len(candles.stream.data.candles) >= 2, timeout=15, what="a second bar")
    await asyncio.sleep(0.3)
    tape, bars = list(trades.stream.data.trades), list(candles.stream.data.candles)
    last = bars[-1]
    in_bar = [t for t in tape if last.open_time_ms <= t.time_ms <= last.close_time_ms]
    assert in_bar and last.close == in_bar[-1].price and last.open == in_bar[0].price
    assert Decimal(last.volume) == sum(Decimal(t.size) for t in in_bar) and last.trade_count == len(in_bar)
    assert Decimal(last.high) == max(Decimal(t.price) for t in in_bar)
    assert len(svc.connections(RAILS)) == 1  # the tape's subscription feeds the bars too
