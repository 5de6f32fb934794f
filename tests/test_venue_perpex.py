"""The Perpex adapter through the subscription service against the Perpex emulator over real
sockets on 127.0.0.1: books exact after snapshot-then-deltas and after a gap (resynced on the
socket); more than ten subscriptions spread over sockets of at most ten, and brought back onto one
when released; the REST limiter shared per token keeps a burst under the venue's window, and a
429 is waited out without a storm; an expired, a forged and an expiring token each end the account
connection once with a clear reason; a liquidation alert on ``positions`` reaches the state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from app.model import Channel, ConnectionState, LiquidationState, StreamState, Venue
from app.rest import RateLimiter
from app.secrets import Credentials
from app.service import SubscriptionService
from app.sim.perpex import PerpexEmulator
from app.venues import build_adapter
from app.venues.base import Endpoint
from tests.conftest import stepped_until

pytestmark = pytest.mark.timeout(40)

PX = Venue.PERPEX
SYMBOLS = ("BTC-USD", "ETH-USD", "SOL-USD", "HYPE-USD")


@pytest.fixture
async def perpex() -> AsyncIterator[PerpexEmulator]:
    async with PerpexEmulator(seed=7, autostep=False) as server:
        yield server


@pytest.fixture
def service(perpex: PerpexEmulator, services: Callable[..., SubscriptionService]) -> Callable[..., SubscriptionService]:
    """Services on the emulator with the demo token unless told."""

    def make(token: str | None = None, **kwargs: Any) -> SubscriptionService:
        token = perpex.demo_credentials()["token"] if token is None else token
        return services(build_adapter(PX, Endpoint(perpex.ws_url, perpex.http_url), None, Credentials(token=SecretStr(token))), **kwargs)

    return make




async def rest_book(perpex: PerpexEmulator, symbol: str, depth: int = 20) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    async with aiohttp.ClientSession() as session, session.get(f"{perpex.http_url}/api/v1/orderbook/{symbol}", params={"depth": depth}) as r:
        book = await r.json()
    return [tuple(level) for level in book["bids"]], [tuple(level) for level in book["asks"]]


async def assert_book_exact(perpex: PerpexEmulator, stream: Any, symbol: str) -> None:
    await asyncio.sleep(0.3)  # every delta of the last step has arrived (the emulator is not stepping)
    bids, asks = await rest_book(perpex, symbol)
    held_bids, held_asks = stream.data.book.levels()
    assert (held_bids[:20], held_asks[:20]) == (bids, asks)


async def test_book_is_exact_and_a_gap_resyncs_on_the_socket(perpex, service):
    svc = service()
    handle = svc.subscribe(PX, Channel.BOOK, "BTC-USD")
    await stepped_until(perpex, lambda: handle.stream.state is StreamState.LIVE, what="book live")
    await stepped_until(perpex, lambda: handle.stream.messages > 10, what="deltas")
    await assert_book_exact(perpex, handle.stream, "BTC-USD")

    perpex.arm_book_fault("BTC-USD", "skip")
    await stepped_until(perpex, lambda: handle.stream.resyncs == 1 and handle.stream.state is StreamState.LIVE, what="resync")
    assert handle.stream.data.gaps == 1
    await assert_book_exact(perpex, handle.stream, "BTC-USD")
    assert len(svc.connections(PX)) == 1  # resynced by unsubscribe and subscribe: no reconnect
    assert svc.connections(PX)[0].reconnects == 0


async def test_more_than_ten_streams_shard_and_come_back_together(perpex, service):
    svc = service()
    handles = [svc.subscribe(PX, channel, symbol) for symbol in SYMBOLS for channel in (Channel.BOOK, Channel.TRADES)]
    handles += [svc.subscribe(PX, Channel.CANDLES, symbol, {"interval": "1m"}) for symbol in SYMBOLS]
    assert len(handles) == 12
    await stepped_until(perpex, lambda: all(h.stream.state is StreamState.LIVE for h in handles), what="12 streams live")
    connections = svc.connections(PX)
    assert sorted(len(c.streams) for c in connections) == [2, 10]
    assert all(c.decode_errors == 0 for c in connections)

    for handle in handles[:3]:  # 9 left: they fit on one socket again
        handle.close()
    await stepped_until(perpex, lambda: len(svc.connections(PX)) == 1, what="one socket")
    (connection,) = svc.connections(PX)
    assert len(connection.streams) == 9
    await stepped_until(perpex, lambda: all(h.stream.state is StreamState.LIVE for h in handles[3:]), what="all live")
    book = next(h for h in handles[3:] if h.key.channel is Channel.BOOK)
    await stepped_until(perpex, lambda: book.stream.messages > 5, what="deltas after the move")
    await assert_book_exact(perpex, book.stream, book.key.market)


async def test_a_burst_stays_inside_the_venues_window(perpex):
    perpex.rest_rate_limit, perpex.rest_rate_window = 10, 2.0
    token = perpex.issue_token("burst")
    adapter = build_adapter(PX, Endpoint(perpex.ws_url, perpex.http_url), None, Credentials(token=SecretStr(token)))
    adapter.rest.limiter = RateLimiter(per_minute=300, window=2.0, margin=0.2)  # the venue's 10 per 2 s
    try:
        answers = await asyncio.gather(*(adapter.rest.get_json("/api/v1/account") for _ in range(25)))
    finally:
        await adapter.close()
    assert len(answers) == 25
    assert perpex.rest_requests["burst"]["rejected"] == 0


async def test_one_limiter_per_token_however_many_adapters():
    endpoint = Endpoint("ws://127.0.0.1:9", "http://127.0.0.1:9")
    first, second, other = (
        build_adapter(PX, endpoint, None, Credentials(token=SecretStr(token))) for token in ("tok-aaaaaaaa", "tok-aaaaaaaa", "tok-bbbbbbbb")
    )
    assert first.rest.limiter is second.rest.limiter is not other.rest.limiter


async def test_a_429_is_waited_out_once(perpex, service):
    perpex.rest_rate_limit, perpex.rest_rate_window = 3, 2.0
    svc = service()
    subject = "demo"
    async with aiohttp.ClientSession() as session:  # another client of the same key uses it up
        headers = {"Authorization": f"Bearer {perpex.demo_credentials()['token']}"}
        for _ in range(3):
            async with session.get(f"{perpex.http_url}/api/v1/markets", headers=headers) as response:
                assert response.status == 200
    handle = svc.subscribe(PX, Channel.POSITIONS)
    await stepped_until(perpex, lambda: handle.stream.state is StreamState.LIVE, timeout=10, what="positions after the wait")
    assert perpex.rest_requests[subject]["rejected"] == 1  # one 429; then Retry-After was honoured


@pytest.mark.parametrize("kind", ["expired", "forged"])
async def test_a_bad_token_fails_the_account_socket_once(perpex, service, kind):
    token = perpex.issue_token(ttl=-10) if kind == "expired" else perpex.issue_token()[:-4] + "AAAA"
    svc = service(token)
    positions = svc.subscribe(PX, Channel.POSITIONS)
    book = svc.subscribe(PX, Channel.BOOK, "ETH-USD")
    await stepped_until(perpex, lambda: positions.stream.state is StreamState.ERROR, what="refused")
    account = next(c for c in svc.connections(PX) if c.group == "account")
    assert account.state is ConnectionState.FAILED
    assert ("token expired at" in account.reason and "PERPTERM_PERPEX_TOKEN" in account.reason) if kind == "expired" else "HTTP 401" in account.reason
    assert token not in account.reason
    await stepped_until(perpex, lambda: book.stream.state is StreamState.LIVE, what="public streams unaffected")
    attempts = perpex.stats.connections_accepted + perpex.stats.ws_refused
    await asyncio.sleep(1.0)
    assert perpex.stats.connections_accepted + perpex.stats.ws_refused == attempts and account.reconnects == 0  # no retry storm


async def test_a_token_expiring_in_session_ends_the_account_socket(perpex, service):
    svc = service(perpex.issue_token(ttl=1.5))
    positions = svc.subscribe(PX, Channel.POSITIONS)
    await stepped_until(perpex, lambda: positions.stream.state is StreamState.LIVE, what="positions live")
    await stepped_until(perpex, lambda: positions.stream.state is StreamState.ERROR, what="expiry")
    (account,) = svc.connections(PX)
    assert account.state is ConnectionState.FAILED and "token expired" in account.reason


async def test_positions_and_a_liquidation_alert_reach_their_states(perpex, service):
    svc = service()
    positions = svc.subscribe(PX, Channel.POSITIONS)
    liquidation = svc.subscribe(PX, Channel.LIQUIDATION)
    fills = svc.subscribe(PX, Channel.FILLS)
    await stepped_until(perpex, lambda: positions.stream.state is StreamState.LIVE and fills.stream.state is StreamState.LIVE, what="account live")
    assert {p.market: p.size[0] == "-" for p in positions.stream.data.positions.values()} == {"BTC-USD": False, "ETH-USD": True}
    assert positions.stream.data.margin is not None and len(fills.stream.data.fills) == 50
    assert len(svc.connections(PX)) == 1  # one socket, one positions subscription for both streams

    perpex.set_liquidation_stage("warning")
    await stepped_until(perpex, lambda: liquidation.stream.data.state is LiquidationState.WARNING, what="warning")
    perpex.set_liquidation_stage("liquidating")
    await stepped_until(perpex, lambda: liquidation.stream.data.state is LiquidationState.LIQUIDATING, what="liquidated")
    await stepped_until(perpex, lambda: not positions.stream.data.positions, what="positions closed")


async def test_own_trades_follow_the_cursor(perpex):
    adapter = build_adapter(PX, Endpoint(perpex.ws_url, perpex.http_url), None, Credentials.of(perpex.demo_credentials()))
    try:
        fills = await adapter.own_trades(limit=40)
        btc = await adapter.own_trades("BTC-USD", limit=40)
    finally:
        await adapter.close()
    assert len(fills) == 120 and len({f.fill_id for f in fills}) == 120
    assert btc and all(f.market == "BTC-USD" for f in btc) and len(btc) < 120
    assert [f.time_ms for f in fills] == sorted((f.time_ms for f in fills), reverse=True)
