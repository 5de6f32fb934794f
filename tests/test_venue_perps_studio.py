"""The perps.studio adapter through the subscription service against the perps.studio emulator over
real sockets on 127.0.0.1: every vertical and channel live on its own socket (one per vertical) with
books equal to the emulator's; a refused subscription (a required param missing) is that stream's
error and the socket stays open; a wrong or missing API key fails the connection once (4001 is
final: no retry loop) until the user retries; the supervisor's pings keep a socket without
subscriptions from the venue's idle close (4008); a dropped or restarted venue gets every stream
subscribed again and every snapshot fetched again; book faults and a provider outage recover.

The emulator's clock is stepped by hand (``autostep=False``) and it pushes a changed book at most
every 250 ms of its time, so after each 250 ms step every changed book is pushed: what the service
holds can be compared with the emulator at the same moment. The emulator starts at the wall clock
(the adapter asks for candle history up to now)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.model import BookSnapshot, Channel, ConnectionState, Level, StreamKey, StreamState, Venue
from app.service import Subscription, SubscriptionService
from app.sim.perps_studio import BOOK_LEVELS, DEMO_API_KEY, PerpsStudioEmulator, _best_first, _prediction_levels
from app.sim.server import WsConnection
from app.supervisor import Backoff, Connection
from app.secrets import Credentials
from app.venues import build_adapter
from app.venues.base import Endpoint, Liveness
from app.venues.perps_studio import PerpsStudioAdapter, split_market
from tests.conftest import eventually

pytestmark = pytest.mark.timeout(30)

PS = Venue.PERPS_STUDIO
WRONG_KEY = "ps_test_not_a_key_4711"
STEP_MS = 250

Levels = tuple[list[Level], list[Level]]


class StudioEmulator(PerpsStudioEmulator):
    """The emulator, recording what its clients ask: every subscribe (per vertical) and every REST
    path (the query left out)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.subscribes: list[tuple[str, str]] = []  # (vertical, the subscribe's data as JSON)
        self.rest_paths: list[str] = []

        @web.middleware
        async def recording(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.startswith("/v1/"):
                self.rest_paths.append(request.path)
            return await PerpsStudioEmulator._http_middleware(self, request, handler)

        self._http_middleware = recording  # type: ignore[method-assign]

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            message = orjson.loads(text)
            if message.get("event") == "subscribe":
                self.subscribes.append((conn.state["vertical"], orjson.dumps(message["data"], option=orjson.OPT_SORT_KEYS).decode()))
        await super().on_ws_message(conn, text)


def start_emulator(**options: Any) -> StudioEmulator:
    return StudioEmulator(**{"seed": 7, "autostep": False, "tick_interval": 0.05, "book_interval": STEP_MS / 1000, **options})


@pytest.fixture
async def studio() -> AsyncIterator[StudioEmulator]:
    async with start_emulator() as server:
        yield server


@pytest.fixture
def service(studio: StudioEmulator, services: Callable[..., SubscriptionService]) -> Callable[..., SubscriptionService]:
    """Services on the emulator (with the demo key unless told), each closed at the end of the test."""

    def make(api_key: str | None = DEMO_API_KEY, adapter_cls: type[PerpsStudioAdapter] | None = None, **kwargs: Any) -> SubscriptionService:
        endpoint = Endpoint(studio.ws_url, studio.http_url)
        credentials = Credentials(api_key=None if api_key is None else SecretStr(api_key))
        adapter = build_adapter(PS, endpoint, None, credentials)
        if adapter_cls is not None:
            adapter = adapter_cls(endpoint, adapter.rest, None, credentials)
        return services(adapter, **kwargs)

    return make


def emulator_book(server: PerpsStudioEmulator, market: str) -> Levels:
    """The book the emulator pushes for ``market`` (its top 20 levels, best first, as formatted)."""
    vertical, _, ident = split_market(market)
    if vertical == "predictions":
        bids, asks = _best_first(server.model.book(ident), BOOK_LEVELS)
        side = lambda levels: [(row["price"], row["size"]) for row in _prediction_levels(levels)]  # noqa: E731
        return side(bids), side(asks)
    listing = server.listings[market]
    bids, asks = server.engine.levels(listing.key)
    side = lambda levels: [(listing.px(level[0]), listing.sz(level[1])) for level in levels[:BOOK_LEVELS]]  # noqa: E731
    return side(bids), side(asks)


def live(*handles: Subscription) -> bool:
    return all(handle.stream.state is StreamState.LIVE for handle in handles)


def exact(server: PerpsStudioEmulator, books: dict[str, Subscription]) -> bool:
    return all(live(handle) and handle.stream.data.book.levels() == emulator_book(server, market) for market, handle in books.items())


async def run_market(server: PerpsStudioEmulator, seconds: float) -> None:
    """``seconds`` of virtual time in steps of 250 ms (each changed book is pushed at its step)."""
    for _ in range(int(seconds * 1000 / STEP_MS)):
        await server.advance(STEP_MS)
        await asyncio.sleep(0.01)


async def synced(server: PerpsStudioEmulator, books: dict[str, Subscription], what: str, timeout: float = 5.0) -> None:
    await eventually(lambda: exact(server, books), timeout=timeout, what=what)


def connection_of(svc: SubscriptionService, vertical: str) -> Connection:
    (connection,) = [c for c in svc.connections(PS) if c.group == vertical]
    return connection


def subscribed(server: PerpsStudioEmulator) -> int:
    """How many subscriptions the emulator holds over all sockets."""
    return sum(len(conn.state.get("subs", ())) for conn in server.connections)


@contextlib.asynccontextmanager
async def raw_client(server: PerpsStudioEmulator, vertical: str = "perps") -> AsyncIterator[Any]:
    async with connect(f"{server.ws_url_of(vertical)}?apiKey={DEMO_API_KEY}", ping_interval=None) as ws:
        yield ws


# --------------------------------------------------------------------------------------------------
# Every vertical and channel
# --------------------------------------------------------------------------------------------------


async def test_every_vertical_and_channel_is_live_with_books_equal_to_the_emulators(studio, service):
    svc = service()
    token = studio.token_ids[0]
    market_id = studio.market_ids[0]
    books = {
        market: svc.subscribe(PS, Channel.BOOK, market)
        for market in ("perps:hyperliquid:BTC", "perps:aster:ETH", "spot:hyperliquid:HYPE/USDC", "spot:aster:BTC/USDT",
                       "rwas:hyperliquid:xyz:TSLA", "rwas:hyperliquid:flx:GOLD", f"predictions:polymarket:{token}")
    }  # fmt: skip
    others = {
        "hl trades": svc.subscribe(PS, Channel.TRADES, "perps:hyperliquid:BTC"),
        "aster trades": svc.subscribe(PS, Channel.TRADES, "perps:aster:BTC"),
        "hl ticker": svc.subscribe(PS, Channel.TICKER, "perps:hyperliquid:BTC"),
        "aster ticker": svc.subscribe(PS, Channel.TICKER, "perps:aster:BTC"),
        "hl candles": svc.subscribe(PS, Channel.CANDLES, "perps:hyperliquid:ETH", {"interval": "1m"}),
        "aster candles": svc.subscribe(PS, Channel.CANDLES, "perps:aster:SOL", {"interval": "5m"}),
        "hl mids": svc.subscribe(PS, Channel.ALL_MIDS, "perps:hyperliquid"),
        "aster mids": svc.subscribe(PS, Channel.ALL_MIDS, "perps:aster"),
        "spot trades": svc.subscribe(PS, Channel.TRADES, "spot:aster:BTC/USDT"),
        "spot ticker": svc.subscribe(PS, Channel.TICKER, "spot:hyperliquid:PURR/USDC"),
        "rwa trades": svc.subscribe(PS, Channel.TRADES, "rwas:hyperliquid:xyz:XYZ100"),
        "rwa ticker": svc.subscribe(PS, Channel.TICKER, "rwas:hyperliquid:xyz:NVDA"),
        "prediction prices": svc.subscribe(PS, Channel.ALL_MIDS, f"predictions:polymarket:{market_id}"),
    }
    await eventually(lambda: subscribed(studio) == len(books) + len(others), what="every subscription at the emulator")
    await run_market(studio, 3.0)
    await synced(studio, books, "every book live and equal to the emulator's")
    for name, handle in others.items():
        await eventually(lambda h=handle: live(h), what=f"{name} live")
    await run_market(studio, 8.0)
    await synced(studio, books, "every book still equal after 8 s")
    assert all(handle.stream.resyncs == 0 for handle in books.values())

    assert {c.group for c in svc.connections(PS)} == {"perps", "spot", "rwas", "predictions"}  # one socket per vertical
    assert studio.stats.connections_accepted == 4
    assert all(c.decode_errors == 0 and c.reconnects == 0 for c in svc.connections(PS))
    data = {name: handle.stream.data for name, handle in others.items()}
    for name in ("hl trades", "aster trades", "spot trades", "rwa trades"):
        market = others[name].key.market
        assert data[name].trades and all(trade.market == market for trade in data[name].trades), name
    hl, aster = data["hl ticker"].ticker, data["aster ticker"].ticker
    assert hl.mark and hl.index and hl.funding_rate and hl.open_interest and hl.last and hl.volume_24h
    assert aster.last and aster.volume_24h and aster.mark is None and aster.funding_rate is None  # Aster has no mark
    spot = data["spot ticker"].ticker
    assert spot.last and spot.mark and spot.funding_rate is None and spot.index is None
    assert data["rwa ticker"].ticker.funding_rate and data["rwa ticker"].ticker.market == "rwas:hyperliquid:xyz:NVDA"
    assert len(data["hl candles"].candles) > 100 and len(data["aster candles"].candles) > 50  # REST history and the live bar
    assert set(data["hl mids"].mids) == {f"perps:hyperliquid:{s}" for s in ("BTC", "ETH", "SOL", "HYPE")}
    assert set(data["aster mids"].mids) == {f"perps:aster:{s}" for s in ("BTC", "ETH", "SOL", "HYPE")}
    assert set(data["prediction prices"].mids) == {f"predictions:polymarket:{t}" for t in studio.model.markets[0].token_ids}


async def test_markets_are_listed_with_their_vertical_and_provider(studio, service):
    markets = await service().markets(PS)
    sections = Counter((m.section, m.provider, m.kind) for m in markets)
    assert sections == {
        ("perps", "hyperliquid", "perp"): 4, ("perps", "aster", "perp"): 4, ("spot", "hyperliquid", "spot"): 2,
        ("spot", "aster", "spot"): 2, ("rwas", "hyperliquid", "rwa"): 6, ("predictions", "polymarket", "prediction"): len(studio.token_ids),
    }  # fmt: skip
    for vertical, provider in (("perps", "aster"), ("spot", "hyperliquid"), ("rwas", "hyperliquid"), ("predictions", "polymarket")):
        listed = {m.market for m in markets if (m.section, m.provider) == (vertical, provider)}
        assert listed == {f"{vertical}:{provider}:{ident}" for ident in studio.symbols(vertical, provider)}


# --------------------------------------------------------------------------------------------------
# Refusals: a stream's error, the socket stays open
# --------------------------------------------------------------------------------------------------


class DroppingAdapter(PerpsStudioAdapter):
    """Subscribes a key with a ``drop`` param without that required param (what a client with an
    incomplete subscription sends); the venue's refusal echoes it, and it names this stream."""

    def subscription(self, key: StreamKey) -> dict[str, Any]:
        subscription = super().subscription(key)
        if (drop := key.param("drop")) is not None:
            subscription["params"].pop(drop)
        return subscription


async def test_a_missing_required_param_is_that_streams_error_and_the_socket_stays_open(studio, service):
    svc = service(adapter_cls=DroppingAdapter)
    token, market_id = studio.token_ids[2], studio.market_ids[1]
    good = {
        "perps": svc.subscribe(PS, Channel.BOOK, "perps:hyperliquid:BTC"),
        "spot": svc.subscribe(PS, Channel.BOOK, "spot:aster:BTC/USDT"),
        "rwas": svc.subscribe(PS, Channel.BOOK, "rwas:hyperliquid:xyz:TSLA"),
        "predictions": svc.subscribe(PS, Channel.BOOK, f"predictions:polymarket:{token}"),
    }
    # (vertical, handle, the param the venue says is missing)
    refused = [
        ("rwas", svc.subscribe(PS, Channel.TICKER, "rwas:hyperliquid::TSLA"), "dex"),  # crafted keys: an empty dex,
        ("rwas", svc.subscribe(PS, Channel.TRADES, "rwas:hyperliquid:xyz:"), "symbol"),  # an empty symbol
        ("perps", svc.subscribe(PS, Channel.BOOK, "perps:hyperliquid:ETH", {"drop": "symbol"}), "symbol"),
        ("perps", svc.subscribe(PS, Channel.CANDLES, "perps:aster:BTC", {"interval": "1m", "drop": "interval"}), "interval"),
        ("spot", svc.subscribe(PS, Channel.TRADES, "spot:hyperliquid:PURR/USDC", {"drop": "symbol"}), "symbol"),
        ("rwas", svc.subscribe(PS, Channel.BOOK, "rwas:hyperliquid:flx:GOLD", {"drop": "dex"}), "dex"),
        ("predictions", svc.subscribe(PS, Channel.BOOK, f"predictions:polymarket:{studio.token_ids[3]}", {"drop": "tokenId"}), "tokenId"),
        ("predictions", svc.subscribe(PS, Channel.ALL_MIDS, f"predictions:polymarket:{market_id}", {"drop": "marketId"}), "marketId"),
    ]
    for vertical, handle, param in refused:
        await eventually(lambda h=handle: h.stream.state is StreamState.ERROR, what=f"{handle.key} refused")
        assert handle.stream.reason == f"Missing required param: {param} (INVALID_PARAMS)", handle.key
        assert connection_of(svc, vertical).streams.get(handle.key) is handle.stream
    await run_market(studio, 1.5)
    await synced(studio, {h.key.market: h for h in good.values()}, "the good streams on the same sockets live and exact")
    await asyncio.sleep(0.5)  # the refused streams are asked again (backoff) and refused again
    assert all(handle.stream.state is StreamState.ERROR for _, handle, _ in refused)
    for connection in svc.connections(PS):
        assert connection.state is ConnectionState.LIVE and connection.reconnects == 0 and connection.decode_errors == 0
    assert studio.stats.connections_accepted == 4 and not studio.stats.idle_closes


async def test_raw_refusals_leave_the_socket_open(studio):
    """The venue's side: each required param left out is refused with its name, echoing the
    subscription; the same socket then subscribes and gets data."""
    cases = {
        "perps": ("hyperliquid", "candle", {"symbol": "BTC", "interval": "1m"}),
        "spot": ("aster", "ticker", {"symbol": "BTC/USDT"}),
        "rwas": ("hyperliquid", "orderbook", {"symbol": "TSLA", "dex": "xyz"}),
        "predictions": ("polymarket", "prices", {"marketId": studio.market_ids[0]}),
    }
    adapter = build_adapter(PS, Endpoint(studio.ws_url, studio.http_url), None, Credentials(api_key=SecretStr(DEMO_API_KEY)))
    for vertical, (provider, channel, params) in cases.items():
        async with raw_client(studio, vertical) as ws:
            for missing in params:
                data = {"provider": provider, "channel": channel, "params": {k: v for k, v in params.items() if k != missing}}
                await ws.send(orjson.dumps({"event": "subscribe", "data": data}).decode())
                frame = await asyncio.wait_for(ws.recv(), 2)
                assert orjson.loads(frame) == {"error": {"code": "INVALID_PARAMS", "message": f"Missing required param: {missing}"}, "subscription": data}
                (error,) = adapter.decoder(vertical)(frame)
                assert error.message == f"Missing required param: {missing} (INVALID_PARAMS)" and error.subscription == data
            data = {"provider": provider, "channel": channel, "params": params}
            await ws.send(orjson.dumps({"event": "subscribe", "data": data}).decode())
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 2)) == {"event": "subscribed", "data": data}
            assert orjson.loads(await asyncio.wait_for(ws.recv(), 2))["channel"] == channel
    await adapter.close()


# --------------------------------------------------------------------------------------------------
# The API key
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_key", [WRONG_KEY, None], ids=["wrong", "missing"])
async def test_a_rejected_api_key_fails_once_without_a_retry_loop(studio, service, api_key):
    svc = service(api_key)
    book = svc.subscribe(PS, Channel.BOOK, "perps:hyperliquid:BTC")
    trades = svc.subscribe(PS, Channel.TRADES, "perps:aster:ETH")
    connection = connection_of(svc, "perps")
    await eventually(lambda: connection.state is ConnectionState.FAILED, what="connection failed")
    reason = "API key rejected (close 4001)"
    assert connection.reason == reason
    for handle in (book, trades):
        assert handle.stream.state is StreamState.ERROR and handle.stream.reason == reason
    await asyncio.sleep(2.0)  # many backoff periods (0.05 s to 0.4 s): a wrong key stays wrong, nobody retries it
    assert studio.stats.connections_accepted == 1 and connection.state is ConnectionState.FAILED
    assert connection.reconnects == 0 and connection.retry_at is None
    assert WRONG_KEY not in connection.reason and WRONG_KEY not in connection.label

    svc.retry()  # the user asks: exactly one more attempt
    await eventually(lambda: studio.stats.connections_accepted == 2, what="the retry's attempt")
    await eventually(lambda: connection.state is ConnectionState.FAILED, what="failed again")
    await asyncio.sleep(1.0)
    assert studio.stats.connections_accepted == 2 and connection.reason == reason
    assert book.stream.state is StreamState.ERROR and book.stream.reason == reason
    assert not studio.connections and not studio.subscribes  # nothing was ever subscribed


async def test_the_demo_key_works_where_a_wrong_one_does_not(studio, service):
    good, bad = service(), service(WRONG_KEY)
    ok = good.subscribe(PS, Channel.BOOK, "rwas:hyperliquid:flx:OIL")
    refused = bad.subscribe(PS, Channel.BOOK, "rwas:hyperliquid:flx:OIL")
    await run_market(studio, 0.5)
    await synced(studio, {"rwas:hyperliquid:flx:OIL": ok}, "the demo key's book")
    await eventually(lambda: refused.stream.state is StreamState.ERROR, what="the wrong key's stream refused")
    assert connection_of(good, "rwas").state is ConnectionState.LIVE and connection_of(bad, "rwas").state is ConnectionState.FAILED


# --------------------------------------------------------------------------------------------------
# Idle timeout
# --------------------------------------------------------------------------------------------------


async def test_pings_keep_a_socket_without_subscriptions_open_while_an_idle_client_is_closed_4008(service):
    async with start_emulator(idle_timeout=1.0) as studio:
        endpoint = Endpoint(studio.ws_url, studio.http_url)

        def make(liveness: Liveness) -> SubscriptionService:
            # The socket outlives its last stream by 30 s (a market switch would reuse it).
            adapter = build_adapter(PS, endpoint, None, Credentials(api_key=SecretStr(DEMO_API_KEY)))
            return SubscriptionService([adapter], liveness={PS: liveness}, backoff=lambda: Backoff(0.05, 0.4), idle_grace=30.0)

        pinging = make(Liveness(ping_interval=0.3, probe_after=0.5, pong_timeout=1.0))
        silent = make(Liveness(ping_interval=60.0, probe_after=60.0, pong_timeout=60.0))  # the control: no pings
        try:
            handles = [svc.subscribe(PS, Channel.BOOK, "perps:hyperliquid:BTC") for svc in (pinging, silent)]
            await eventually(lambda: live(*handles) and subscribed(studio) == 2, what="both live")
            for handle in handles:
                handle.close()  # unsubscribed: the venue's idle clock now runs on both sockets
            await eventually(lambda: subscribed(studio) == 0, what="both unsubscribed")
            async with raw_client(studio) as ws:  # a client that says nothing
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 3.0)
                assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4008, "idle timeout")
            await asyncio.sleep(1.5)  # more than the idle timeout again
            kept = connection_of(pinging, "perps")
            assert kept.state is ConnectionState.LIVE and kept.reconnects == 0
            dropped = connection_of(silent, "perps")
            assert dropped.reconnects >= 1  # closed 4008 and reconnected (an idle close is not final)
            assert studio.stats.idle_closes >= 2  # the raw client and the silent socket, never the pinging one
        finally:
            await pinging.close()
            await silent.close()


# --------------------------------------------------------------------------------------------------
# Reconnects
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["drop", "restart"])
async def test_a_reconnect_subscribes_every_stream_again_and_refetches_every_snapshot(studio, service, fault):
    svc = service()
    token, market_id = studio.token_ids[4], studio.market_ids[2]
    books = {
        market: svc.subscribe(PS, Channel.BOOK, market)
        for market in ("perps:hyperliquid:BTC", "perps:aster:SOL", "spot:aster:BTC/USDT", "rwas:hyperliquid:flx:GOLD", f"predictions:polymarket:{token}")
    }
    others = [
        svc.subscribe(PS, Channel.CANDLES, "perps:aster:ETH", {"interval": "1m"}),
        svc.subscribe(PS, Channel.ALL_MIDS, "perps:hyperliquid"),
        svc.subscribe(PS, Channel.TRADES, "perps:hyperliquid:ETH"),
        svc.subscribe(PS, Channel.TICKER, "spot:hyperliquid:HYPE/USDC"),
        svc.subscribe(PS, Channel.ALL_MIDS, f"predictions:polymarket:{market_id}"),
    ]
    await run_market(studio, 1.5)
    await synced(studio, books, "synced before the fault")
    await eventually(lambda: live(*others), what="the other streams live")
    await asyncio.sleep(0.2)
    first_subscribes, first_rest = Counter(studio.subscribes), Counter(studio.rest_paths)
    assert len(first_subscribes) == len(books) + len(others) and set(first_subscribes.values()) == {1}
    assert len(first_rest) == len(books) + 2 and set(first_rest.values()) == {1}  # books, candles, the mid map
    studio.subscribes.clear()
    studio.rest_paths.clear()

    if fault == "drop":
        studio.drop_all()
    else:
        await studio.restart()
    await eventually(lambda: studio.stats.connections_accepted == 8, what="four sockets again")
    await eventually(lambda: subscribed(studio) == len(books) + len(others), what="every stream subscribed again")
    await run_market(studio, 1.5)
    await synced(studio, books, f"exact again after the {fault}")
    await eventually(lambda: live(*others), what="the other streams live again")
    assert Counter(studio.subscribes) == first_subscribes  # each stream once more, on its vertical's socket
    assert Counter(studio.rest_paths) == first_rest  # each snapshot fetched once more
    assert all(c.reconnects == 1 and c.state is ConnectionState.LIVE for c in svc.connections(PS))
    assert len(others[0].stream.data.candles) > 100  # the history again, not only bars since


# --------------------------------------------------------------------------------------------------
# Book faults and provider outages
# --------------------------------------------------------------------------------------------------


def pending(server: PerpsStudioEmulator, market: str) -> bool:
    return bool(server._book_faults.get(market))  # noqa: SLF001 - the base server's armed faults


@pytest.mark.parametrize("fault", ["skip", "duplicate", "reorder", "delta_before_snapshot"])
@pytest.mark.parametrize("market", ["perps:hyperliquid:ETH", "predictions"])
async def test_book_is_exact_again_after_each_fault(studio, service, fault, market):
    """Each fault reaches the client (a version missed, a book twice, an older book after a newer
    one, a stale book before the subscription's ack), and the book is exact again at the next push;
    an older book never replaces a newer one (whole books carry their time), so nothing resyncs."""
    if market == "predictions":
        market = f"predictions:polymarket:{studio.token_ids[4]}"  # the busiest market's YES token
    svc = service()
    events: list[BookSnapshot] = []
    record = lambda event: events.append(event) if isinstance(event, BookSnapshot) else None  # noqa: E731
    if fault == "delta_before_snapshot":
        first = svc.subscribe(PS, Channel.BOOK, market)
        await run_market(studio, 1.0)
        await synced(studio, {market: first}, "a book published")
        first.close()
        await eventually(lambda: subscribed(studio) == 0, what="unsubscribed")
        stale = emulator_book(studio, market)  # the last book published
        for _ in range(80):  # the book moves on, published to nobody
            await studio.advance(STEP_MS)
            if emulator_book(studio, market) != stale:
                break
        studio.arm_book_fault(market, fault)  # the next subscriber gets the last published (stale) book first
    book = svc.subscribe(PS, Channel.BOOK, market, on_event=record)
    await run_market(studio, 0.5)
    await synced(studio, {market: book}, "synced")
    if fault == "delta_before_snapshot":
        assert not pending(studio, market)
        # The stale book came (before or after the REST snapshot: if after, it was older and dropped).
        (old,) = [event for event in events if (event.bids, event.asks) == stale]
        assert stale != emulator_book(studio, market) and old.time_ms < book.stream.data.book.time_ms
    else:
        armed = len(events)
        studio.arm_book_fault(market, fault)
        for _ in range(40):  # the fault is used at the book's next push
            await studio.advance(STEP_MS)
            await asyncio.sleep(0.01)
            if not pending(studio, market):
                break
        assert not pending(studio, market), "the fault was never used"
        await asyncio.sleep(0.1)
        if fault == "duplicate":
            assert (events[-1].bids, events[-1].asks, events[-1].time_ms) == (events[-2].bids, events[-2].asks, events[-2].time_ms)
        else:  # the push of this version was skipped or held back: the client missed it for now
            assert not exact(studio, {market: book})
    times = []
    for _ in range(12):
        await studio.advance(STEP_MS)
        await asyncio.sleep(0.02)
        times.append(book.stream.data.book.time_ms)
        assert not book.stream.data.book.crossed
    await synced(studio, {market: book}, f"exact again after {fault}")
    assert times == sorted(times)
    if fault == "reorder":  # the held book arrived after a newer one, and was not applied
        pushed = events[armed:]
        assert any(later.time_ms < earlier.time_ms for earlier, later in zip(pushed, pushed[1:]))
    assert book.stream.resyncs == 0 and connection_of(svc, split_market(market)[0]).reconnects == 0


async def test_a_provider_outage_shows_as_stale_and_no_data_then_recovers(studio, service):
    svc = service()
    adapter = svc.adapters[PS]
    adapter.stale_after = {Channel.BOOK: 1.0}  # the venue's 15 s, shortened
    aster = svc.subscribe(PS, Channel.BOOK, "perps:aster:BTC")
    hyperliquid = svc.subscribe(PS, Channel.BOOK, "perps:hyperliquid:BTC")
    await run_market(studio, 1.0)
    await synced(studio, {"perps:aster:BTC": aster, "perps:hyperliquid:BTC": hyperliquid}, "both synced")

    studio.set_provider_status("aster", "down")
    late = svc.subscribe(PS, Channel.BOOK, "perps:aster:ETH")  # acked but silent, and its snapshot fails
    for _ in range(12):  # 3 s of market, 1.5 s of wall time or more
        await studio.advance(STEP_MS)
        await asyncio.sleep(0.12)
    await eventually(lambda: aster.stream.state is StreamState.STALE, what="the silent provider's book stale")
    assert aster.stream.reason == "no data for 1s"
    assert late.stream.state is not StreamState.LIVE and "503" in late.stream.reason and not late.stream.data.book.levels()[0]
    await synced(studio, {"perps:hyperliquid:BTC": hyperliquid}, "the other provider unaffected")
    assert connection_of(svc, "perps").state is ConnectionState.LIVE  # one provider down is not the socket down

    studio.set_provider_status("aster", "ok")
    await run_market(studio, 3.0)  # the failed snapshot is retried (backoff up to 0.4 s here)
    books = {"perps:aster:BTC": aster, "perps:aster:ETH": late, "perps:hyperliquid:BTC": hyperliquid}
    await synced(studio, books, "every book live and exact after the outage")
    assert connection_of(svc, "perps").reconnects == 0
