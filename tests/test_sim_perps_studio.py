"""The perps.studio emulator over real sockets on 127.0.0.1: auth, acks and every error code, each
vertical's channels and payloads, idle and rate closes, REST, one price per underlying across
providers and the Hyperliquid emulator, determinism and the shared fault controls.

The clock is stepped by hand (``autostep=False``); ``{"event":"ping"}`` is the barrier (everything
the server sent before its pong has arrived). Most tests share one emulator (building its 18 markets'
history takes most of a second); tests that change a knob put it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.sim.engine import DEFAULT_START_MS, HOSTILE_NAMES, HOSTILE_TOKEN
from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.perps_studio import DEMO_API_KEY, PerpsStudioEmulator
from app.sim.runner import VENUE_EMULATORS, start_emulators
from app.sim.runner import _describe as describe
from tests.ws_client import JsonClient

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio(loop_scope="module")]

SECOND_KEY = "ps_test_second_key"
TICKER_KEYS = [
    "symbol", "lastPrice", "markPrice", "indexPrice", "midPrice", "prevDayPrice", "change24h", "change24hPct",
    "volume24h", "quoteVolume24h", "fundingRate", "openInterest", "timestamp",
]  # fmt: skip
CANDLE_KEYS = ["symbol", "interval", "open", "high", "low", "close", "volume", "timestamp", "closed"]


def build(**options: Any) -> PerpsStudioEmulator:
    """Scripted clients send requests faster than 20 a second: the rate limit is tested on its own."""
    defaults = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, "max_messages_per_s": 10_000}
    return PerpsStudioEmulator(**{**defaults, **options})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emu() -> AsyncIterator[PerpsStudioEmulator]:
    async with build(api_keys=(DEMO_API_KEY, SECOND_KEY)) as server:
        await server.advance(5_000)  # a few trades on the tapes
        yield server


class Client(JsonClient):
    """A raw WebSocket client speaking perps.studio's JSON."""

    ping = {"event": "ping"}
    pong = ("event", "pong")

    async def subscribe(self, provider: str, channel: str, **params: Any) -> list[Any]:
        return await self.request({"event": "subscribe", "data": {"provider": provider, "channel": channel, "params": params}})

    async def closed(self, timeout: float = 2.0) -> tuple[int, str]:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        assert closed.value.rcvd is not None
        return closed.value.rcvd.code, closed.value.rcvd.reason


@contextlib.asynccontextmanager
async def client(server: PerpsStudioEmulator, vertical: str = "perps", key: str | None = DEMO_API_KEY, header: bool = False) -> AsyncIterator[Client]:
    url = server.ws_url_of(vertical)
    headers = {}
    if key is not None and header:
        headers["X-API-Key"] = key
    elif key is not None:
        url += f"?apiKey={key}"
    async with connect(url, additional_headers=headers, ping_interval=None, max_size=None, max_queue=None) as ws:
        yield Client(ws)


async def rest(server: PerpsStudioEmulator, path: str, key: str | None = DEMO_API_KEY, **params: Any) -> tuple[int, Any, Any]:
    headers = {"X-API-Key": key} if key is not None else {}
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.get(server.http_url + path, params={k: str(v) for k, v in params.items()}) as response:
            return response.status, orjson.loads(await response.read()), response.headers


async def run(server: PerpsStudioEmulator, c: Client, steps: int, dt_ms: int = 250) -> list[Any]:
    frames: list[Any] = []
    for _ in range(steps):
        await server.advance(dt_ms)
        frames += await c.sync()
    return frames


def of(frames: list[Any], channel: str, provider: str | None = None) -> list[Any]:
    return [f["data"] for f in frames if f.get("channel") == channel and provider in (None, f["provider"])]


def decimal(text: Any) -> Decimal:
    assert isinstance(text, str), text
    return Decimal(text)


def check_book(data: dict[str, Any], levels: int = 20) -> tuple[Decimal, Decimal]:
    """Levels are {price,size} strings, best first, not crossed; returns the best bid and ask."""
    bids = [decimal(level["price"]) for level in data["bids"]]
    asks = [decimal(level["price"]) for level in data["asks"]]
    assert len(bids) == len(asks) == levels
    assert all(set(level) == {"price", "size"} and decimal(level["size"]) > 0 for level in data["bids"] + data["asks"])
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert isinstance(data["timestamp"], int) and data["timestamp"] >= DEFAULT_START_MS
    return bids[0], asks[0]


def error(code: str, message: str, subscription: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if subscription is not None:
        body["subscription"] = subscription
    return body


# --------------------------------------------------------------------------------------------------
# Authentication, acks, errors
# --------------------------------------------------------------------------------------------------


async def test_api_key_in_the_query_or_a_header_else_4001(emu: PerpsStudioEmulator) -> None:
    for header in (False, True):
        async with client(emu, "spot", header=header) as c:
            assert await c.sync() == []
    for key, reason in ((None, "Missing API key"), ("", "Missing API key"), ("ps_live_nope", "Invalid API key")):
        for header in (False, True):
            async with client(emu, "rwas", key=key, header=header) as c:
                assert await c.closed() == (4001, reason)


async def test_acks_echo_what_was_sent(emu: PerpsStudioEmulator) -> None:
    async with client(emu) as c:
        sent = {"provider": "aster", "channel": "trades", "params": {"symbol": "BTC", "extra": [1]}}
        assert await c.request({"event": "subscribe", "data": sent}) == [{"event": "subscribed", "data": sent}]
        prices = {"provider": "hyperliquid", "channel": "prices"}
        frames = await c.request({"event": "subscribe", "data": prices})
        assert frames[0] == {"event": "subscribed", "data": {**prices, "params": {}}} and frames[1]["channel"] == "prices"
        unsent = {"provider": "aster", "channel": "trades", "params": {"symbol": "BTC"}}  # the same subscription
        assert await c.request({"event": "unsubscribe", "data": unsent}) == [{"event": "unsubscribed", "data": unsent}]
        assert await c.request({"event": "unsubscribe", "data": unsent}) == [{"event": "unsubscribed", "data": unsent}]
        again = await c.subscribe("hyperliquid", "orderbook", symbol="ETH")
        resent = await c.subscribe("hyperliquid", "orderbook", symbol="ETH")  # acked again, with the book again
        assert [f.get("event") for f in again] == [f.get("event") for f in resent] == ["subscribed", None] and again[1] == resent[1]


async def test_every_error_code_and_the_socket_stays_open(emu: PerpsStudioEmulator) -> None:
    intervals = "1m, 5m, 15m, 30m, 1h, 4h, 1d, 1w"
    # (vertical, provider, channel, params, code, message); each error echoes the subscription
    cases: list[tuple[str, str, str, Any, str, str]] = [
        ("perps", "hyperliquid", "invalid_channel", {}, "UNKNOWN_CHANNEL", "Unknown channel: invalid_channel"),
        ("perps", "polymarket", "orderbook", {"symbol": "BTC"}, "UNSUPPORTED_PROVIDER", "Provider polymarket does not serve perps"),
        ("perps", "hyperliquid", "orderbook", {}, "INVALID_PARAMS", "Missing required param: symbol"),
        ("perps", "aster", "candle", {"symbol": "BTC"}, "INVALID_PARAMS", "Missing required param: interval"),
        ("perps", "aster", "candle", {"symbol": "BTC", "interval": "2m"}, "INVALID_PARAMS", f"Invalid interval: 2m (one of {intervals})"),
        ("perps", "aster", "ticker", {"symbol": 5}, "INVALID_PARAMS", "Missing required param: symbol"),
        ("perps", "aster", "ticker", "BTC", "INVALID_PARAMS", "params must be an object"),
        ("perps", "aster", "trades", {"symbol": "PURR"}, "UNKNOWN_SYMBOL", "Unknown symbol: PURR"),
        ("spot", "hyperliquid", "candle", {"symbol": "HYPE/USDC", "interval": "1m"}, "UNKNOWN_CHANNEL", "Unknown channel: candle"),
        ("spot", "aster", "orderbook", {"symbol": "BTC/USDC"}, "UNKNOWN_SYMBOL", "Unknown symbol: BTC/USDC"),
        ("rwas", "aster", "ticker", {"symbol": "TSLA", "dex": "xyz"}, "UNSUPPORTED_PROVIDER", "Provider aster does not serve rwas"),
        ("rwas", "hyperliquid", "ticker", {"symbol": "TSLA"}, "INVALID_PARAMS", "Missing required param: dex"),
        ("rwas", "hyperliquid", "trades", {"symbol": "GOLD", "dex": "xyz"}, "UNKNOWN_SYMBOL", "Unknown symbol: xyz:GOLD"),
        ("predictions", "hyperliquid", "orderbook", {"tokenId": "1"}, "UNSUPPORTED_PROVIDER", "Provider hyperliquid does not serve predictions"),
        ("predictions", "polymarket", "orderbook", {}, "INVALID_PARAMS", "Missing required param: tokenId"),
        ("predictions", "polymarket", "prices", {"tokenId": "1"}, "INVALID_PARAMS", "Missing required param: marketId"),
        ("predictions", "polymarket", "orderbook", {"tokenId": "123"}, "UNKNOWN_SYMBOL", "Unknown symbol: 123"),
        ("predictions", "polymarket", "prices", {"marketId": "0xabc"}, "UNKNOWN_SYMBOL", "Unknown symbol: 0xabc"),
        ("predictions", "polymarket", "trades", {"tokenId": "1"}, "UNKNOWN_CHANNEL", "Unknown channel: trades"),
    ]
    for vertical in ("perps", "spot", "rwas", "predictions"):
        async with client(emu, vertical) as c:
            for case_vertical, provider, channel, params, code, text in cases:
                if case_vertical == vertical:
                    data = {"provider": provider, "channel": channel, "params": params}
                    for event in ("subscribe", "unsubscribe"):  # unsubscribe is validated the same way
                        assert await c.request({"event": event, "data": data}) == [error(code, text, data)], (event, data)
    async with client(emu) as c:
        for message, text in (
            ("{not json", "Invalid JSON"),
            ([1, 2], "Message must be a JSON object"),
            ({"event": "subscribed"}, 'Unknown event: "subscribed"'),
            ({"data": {}}, "Unknown event: null"),
            ({"event": "subscribe"}, "data must be an object with provider, channel and params"),
            ({"event": "subscribe", "data": {"provider": 1, "channel": "orderbook"}}, "data.provider and data.channel must be strings"),
        ):
            assert await c.request(message) == [error("INVALID_MESSAGE", text)]
        emu.max_subscriptions = 2
        try:
            for symbol in ("BTC", "ETH"):
                assert (await c.subscribe("aster", "trades", symbol=symbol))[0]["event"] == "subscribed"
            assert (await c.subscribe("aster", "trades", symbol="ETH"))[0]["event"] == "subscribed"  # not a new one
            third = {"provider": "aster", "channel": "trades", "params": {"symbol": "SOL"}}
            message = "Subscription limit reached: at most 2 subscriptions per connection"
            assert await c.request({"event": "subscribe", "data": third}) == [error("SUBSCRIPTION_LIMIT", message, third)]
        finally:
            emu.max_subscriptions = 100


# --------------------------------------------------------------------------------------------------
# Channels and payloads
# --------------------------------------------------------------------------------------------------


async def test_perps_channels_of_both_providers(emu: PerpsStudioEmulator) -> None:
    async with client(emu) as c:
        first: dict[tuple[str, str], Any] = {}
        for provider in ("hyperliquid", "aster"):
            for channel, params in (("orderbook", {"symbol": "BTC"}), ("ticker", {"symbol": "ETH"}), ("candle", {"symbol": "SOL", "interval": "1m"}), ("prices", {})):
                ack, push = await c.subscribe(provider, channel, **params)
                assert ack["event"] == "subscribed" and push["channel"] == channel and push["provider"] == provider
                first[provider, channel] = push["data"]
            trades_ack = {"event": "subscribed", "data": {"provider": provider, "channel": "trades", "params": {"symbol": "HYPE"}}}
            assert await c.subscribe(provider, "trades", symbol="HYPE") == [trades_ack]  # trades: no first push
        frames = await run(emu, c, 16)  # 4 s
        for provider in ("hyperliquid", "aster"):
            books = [first[provider, "orderbook"], *of(frames, "orderbook", provider)]
            assert 8 <= len(books) <= 9  # on change, at most every 500 ms
            assert all(b["symbol"] == "BTC" and list(b) == ["symbol", "bids", "asks", "timestamp"] for b in books)
            assert all(later["timestamp"] - earlier["timestamp"] >= 500 for earlier, later in zip(books[1:], books[2:], strict=False))
            for book in books:
                check_book(book)
            trades = of(frames, "trades", provider)
            assert trades and all(t["symbol"] == "HYPE" and list(t) == ["symbol", "trades"] for t in trades)
            rows = [row for t in trades for row in t["trades"]]
            assert all(list(r) == ["id", "price", "size", "side", "timestamp"] and r["side"] in ("buy", "sell") and isinstance(r["timestamp"], int) for r in rows)
            assert all(decimal(r["price"]) > 0 and decimal(r["size"]) > 0 and isinstance(r["id"], str) for r in rows)
            tickers = [first[provider, "ticker"], *of(frames, "ticker", provider)]
            assert len(tickers) == 5 and all(list(t) == TICKER_KEYS and t["symbol"] == "ETH" for t in tickers)
            candles = [first[provider, "candle"], *of(frames, "candle", provider)]
            assert len(candles) >= 3 and all(list(k) == CANDLE_KEYS and k["interval"] == "1m" and k["symbol"] == "SOL" for k in candles)
            assert all(decimal(k["low"]) <= decimal(k["close"]) <= decimal(k["high"]) for k in candles)
            prices = [first[provider, "prices"], *of(frames, "prices", provider)]
            assert set(prices[0]["prices"]) == {"BTC", "ETH", "SOL", "HYPE"} and len(prices) >= 3
            assert all(decimal(p) > 0 for frame in prices for p in frame["prices"].values())
        hl, aster = first["hyperliquid", "ticker"], first["aster", "ticker"]
        assert all(isinstance(hl[k], str) for k in TICKER_KEYS[1:-1]) and hl["lastPrice"] == hl["midPrice"]
        assert [k for k in TICKER_KEYS if aster[k] is None] == ["markPrice", "indexPrice", "midPrice", "fundingRate", "openInterest"]
        assert decimal(hl["change24h"]) == decimal(hl["lastPrice"]) - decimal(hl["prevDayPrice"])
        hl_prices = of(frames, "prices", "hyperliquid")
        assert all(set(p["prices"]) == {"BTC", "ETH", "SOL", "HYPE"} for p in hl_prices)  # complete maps
        assert all(len(p["prices"]) <= 4 for p in of(frames, "prices", "aster"))  # changed symbols only
        assert first["aster", "orderbook"]["bids"][0]["size"].count(".") == 1 and len(first["aster", "orderbook"]["bids"][0]["size"].split(".")[1]) == 3
        # a bar that ends is sent once more, closed
        await emu.advance(60_000 - emu.engine.now_ms % 60_000 + 100)
        closing = [k for k in of(await c.sync(), "candle") if k["closed"]]
        assert {k["interval"] for k in closing} == {"1m"} and all(k["timestamp"] % 60_000 == 0 for k in closing)


async def test_spot_rwas_and_predictions_channels(emu: PerpsStudioEmulator) -> None:
    async with client(emu, "spot") as spot, client(emu, "rwas") as rwas, client(emu, "predictions") as pred:
        firsts = {}
        markets = ((spot, "hyperliquid", {"symbol": "HYPE/USDC"}), (spot, "aster", {"symbol": "BTC/USDT"}), (rwas, "hyperliquid", {"symbol": "TSLA", "dex": "xyz"}))
        for c, provider, params in markets:
            for channel in ("orderbook", "ticker", "trades"):
                frames = await c.subscribe(provider, channel, **params)
                assert frames[0]["event"] == "subscribed"
                if channel != "trades":
                    firsts[provider, params["symbol"], channel] = frames[1]["data"]
        token, market = emu.token_ids[2], emu.market_ids[1]
        book_ack, book = await pred.subscribe("polymarket", "orderbook", tokenId=token)
        prices_ack, prices = await pred.subscribe("polymarket", "prices", marketId=market)
        for _ in range(16):
            await emu.advance(250)
        spot_frames, rwa_frames, pred_frames = await spot.sync(), await rwas.sync(), await pred.sync()
    for (provider, symbol, channel), data in firsts.items():
        if channel == "orderbook":
            check_book(data)
        else:
            assert list(data)[0] == "symbol" and data["symbol"] == symbol
            if symbol != "TSLA":  # spot has no funding or open interest (rwas: below)
                assert data["fundingRate"] is None and data["openInterest"] is None
    tsla = firsts["hyperliquid", "TSLA", "orderbook"]
    assert list(tsla) == ["symbol", "dex", "bids", "asks", "timestamp"] and tsla["dex"] == "xyz"
    assert firsts["hyperliquid", "HYPE/USDC", "ticker"]["indexPrice"] is None and firsts["hyperliquid", "HYPE/USDC", "ticker"]["markPrice"] is not None
    assert of(spot_frames, "trades", "hyperliquid") and {t["symbol"] for t in of(spot_frames, "trades")} == {"HYPE/USDC", "BTC/USDT"}
    rwa_tickers = of(rwa_frames, "ticker")
    assert rwa_tickers and all(t["dex"] == "xyz" and t["symbol"] == "TSLA" and decimal(t["fundingRate"]) and decimal(t["openInterest"]) > 0 for t in rwa_tickers)
    assert all(t["dex"] == "xyz" for t in of(rwa_frames, "trades") + of(rwa_frames, "orderbook"))
    # predictions: the book of a token, its market's prices
    assert book_ack["event"] == prices_ack["event"] == "subscribed"
    data = book["data"]
    assert list(data) == ["tokenId", "marketId", "bids", "asks", "timestamp", "hash"] and data["tokenId"] == token
    assert data["marketId"] == emu.market_ids[1] and len(data["hash"]) == 40
    bids = [decimal(level["price"]) for level in data["bids"]]
    asks = [decimal(level["price"]) for level in data["asks"]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and 0 < bids[0] < asks[0] < 1
    assert all(len(of(pred_frames, "orderbook")) >= 1 for _ in [0]) and all(b["tokenId"] == token for b in of(pred_frames, "orderbook"))
    outcomes = prices["data"]["outcomes"]
    assert prices["data"]["marketId"] == market and [o["tokenId"] for o in outcomes] == emu.token_ids[2:4]
    assert [o["outcome"] for o in outcomes] == ["Yes", "No"] and all(list(o) == ["tokenId", "outcome", "bestBid", "bestAsk", "lastPrice"] for o in outcomes)
    assert decimal(outcomes[0]["bestBid"]) + decimal(outcomes[1]["bestAsk"]) == 1  # the NO book mirrors the YES book
    assert all(p["marketId"] == market and isinstance(p["timestamp"], int) for p in of(pred_frames, "prices"))


# --------------------------------------------------------------------------------------------------
# Liveness and rate limits
# --------------------------------------------------------------------------------------------------


async def test_idle_sockets_close_4008_unless_pinged_or_subscribed(emu: PerpsStudioEmulator) -> None:
    emu.idle_timeout = 0.4
    try:
        async with client(emu) as idle, client(emu, "spot") as pinging, client(emu, "predictions") as subscribed:
            await subscribed.subscribe("polymarket", "prices", marketId=emu.market_ids[0])
            started = time.monotonic()
            while time.monotonic() - started < 1.0:
                await pinging.ws.ping()  # control frames only
                await asyncio.sleep(0.1)
            assert await idle.closed() == (4008, "idle timeout")
            assert 0.4 <= time.monotonic() - started < 1.5
            assert await pinging.sync() == [] and await subscribed.sync() == []
            await subscribed.request({"event": "unsubscribe", "data": {"provider": "polymarket", "channel": "prices", "params": {"marketId": emu.market_ids[0]}}})
            assert await subscribed.closed() == (4008, "idle timeout")  # nothing left to keep it
    finally:
        emu.idle_timeout = 30.0


async def test_flooding_the_server_closes_4029(emu: PerpsStudioEmulator) -> None:
    emu.max_messages_per_s = 20
    try:
        async with client(emu) as c:
            for _ in range(19):
                await c.send({"event": "ping"})
            await c.ws.ping()  # control frames count too
            assert [(await c.recv())["event"] for _ in range(19)] == ["pong"] * 19
            with contextlib.suppress(ConnectionClosed):
                for _ in range(5):
                    await c.send({"event": "ping"})
            assert await c.closed() == (4029, "rate limit exceeded")
    finally:
        emu.max_messages_per_s = 10_000


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


async def test_rest_endpoints(emu: PerpsStudioEmulator) -> None:
    status, book, headers = await rest(emu, "/v1/perps/hyperliquid/markets/BTC/orderbook", depth=20)
    assert status == 200 and list(book) == ["bids", "asks", "timestamp"] and headers["X-RateLimit-Limit"] == "100"
    check_book(book)
    assert len((await rest(emu, "/v1/perps/aster/markets/ETH/orderbook", depth=5))[1]["bids"]) == 5
    status, trades, _ = await rest(emu, "/v1/perps/aster/markets/BTC/trades", limit=3)
    assert status == 200 and len(trades) == 3 and [int(t["id"]) for t in trades] == sorted(int(t["id"]) for t in trades)
    assert all(list(t) == ["id", "price", "size", "side", "timestamp"] for t in trades)
    now = emu.engine.now_ms
    status, candles, _ = await rest(emu, "/v1/perps/hyperliquid/markets/SOL/candles", interval="1h", startTime=now - 10 * 3_600_000, endTime=now)
    assert status == 200 and len(candles) in (10, 11) and all(list(k) == ["open", "high", "low", "close", "volume", "timestamp"] for k in candles)
    assert [k["timestamp"] for k in candles] == sorted(k["timestamp"] for k in candles) and candles[-1]["timestamp"] == now - now % 3_600_000
    assert len((await rest(emu, "/v1/perps/aster/markets/SOL/candles", interval="1m"))[1]) == 500
    status, funding, _ = await rest(emu, "/v1/perps/hyperliquid/markets/ETH/funding", limit=5)
    assert status == 200 and len(funding) == 5 and all(list(f) == ["fundingRate", "markPrice", "timestamp"] and f["timestamp"] % 3_600_000 == 0 for f in funding)
    aster_funding = (await rest(emu, "/v1/perps/aster/markets/ETH/funding", limit=2))[1]
    assert aster_funding[1]["timestamp"] - aster_funding[0]["timestamp"] == 8 * 3_600_000
    status, prices, _ = await rest(emu, "/v1/perps/aster/prices")
    assert status == 200 and set(prices["prices"]) == {"BTC", "ETH", "SOL", "HYPE"} and prices["timestamp"] == now
    books = ("/v1/spot/aster/orderbook/BTC%2FUSDT", "/v1/spot/hyperliquid/orderbook/HYPE%2FUSDC", "/v1/rwas/hyperliquid/orderbook/flx/GOLD")
    for path in (*books, f"/v1/predictions/polymarket/orderbook/{emu.token_ids[0]}"):
        status, body, _ = await rest(emu, path, depth=3)
        assert status == 200 and len(body["bids"]) == 3 and isinstance(body["timestamp"], int), path
    assert (await rest(emu, "/v1/rwas/hyperliquid/orderbook/flx/GOLD"))[1]["dex"] == "flx"
    # listings
    assert [m["symbol"] for m in (await rest(emu, "/v1/perps/hyperliquid/markets"))[1]] == ["BTC", "ETH", "SOL", "HYPE"]
    assert (await rest(emu, "/v1/perps/aster/markets"))[1][0] == {"symbol": "BTC", "base": "BTC", "quote": "USDT", "priceDecimals": 1, "sizeDecimals": 3}
    assert [m["symbol"] for m in (await rest(emu, "/v1/spot/aster/markets"))[1]] == ["ASTER/USDT", "BTC/USDT"]
    assert [m["symbol"] for m in (await rest(emu, "/v1/spot/hyperliquid/markets"))[1]] == ["PURR/USDC", "HYPE/USDC"]
    rwas = (await rest(emu, "/v1/rwas/hyperliquid/markets"))[1]
    assert [(m["dex"], m["symbol"], m["category"]) for m in rwas] == [
        ("xyz", "XYZ100", "index"), ("xyz", "TSLA", "equity"), ("xyz", "NVDA", "equity"),
        ("flx", "GOLD", "commodity"), ("flx", "SILVER", "commodity"), ("flx", "OIL", "commodity"),
    ]  # fmt: skip
    predictions = (await rest(emu, "/v1/predictions/polymarket/markets"))[1]
    assert [m["marketId"] for m in predictions] == emu.market_ids
    assert [o["tokenId"] for m in predictions for o in m["outcomes"]] == emu.token_ids and predictions[0]["question"]
    assert emu.symbols("rwas", "hyperliquid")[0] == "xyz:XYZ100" and emu.symbols("perps", "aster") == ["BTC", "ETH", "SOL", "HYPE"]
    assert (await rest(emu, "/v1/health"))[1] == {"status": "ok", "providers": {"hyperliquid": "ok", "aster": "ok", "polymarket": "ok"}}
    assert (await rest(emu, "/v1/health/aster"))[1] == {"provider": "aster", "status": "ok"}
    # errors
    assert (await rest(emu, "/v1/health", key=None))[:2] == (401, error("INVALID_API_KEY", "Missing X-API-Key header"))
    assert (await rest(emu, "/v1/perps/aster/prices", key="ps_live_x"))[:2] == (401, error("INVALID_API_KEY", "Invalid API key"))
    assert (await rest(emu, "/v1/perps/polymarket/prices"))[:2] == (400, error("UNSUPPORTED_PROVIDER", "Provider polymarket does not serve perps"))
    assert (await rest(emu, "/v1/rwas/aster/orderbook/xyz/TSLA"))[:2] == (400, error("UNSUPPORTED_PROVIDER", "Provider aster does not serve rwas"))
    assert (await rest(emu, "/v1/perps/aster/markets/PURR/orderbook"))[:2] == (404, error("NOT_FOUND", "Market not found: PURR"))
    assert (await rest(emu, "/v1/spot/aster/orderbook/BTC%2FUSDC"))[:2] == (404, error("NOT_FOUND", "Market not found: BTC/USDC"))
    assert (await rest(emu, "/v1/predictions/polymarket/orderbook/42"))[0] == 404
    assert (await rest(emu, "/v1/health/nope"))[0] == 404 and (await rest(emu, "/v1/perps/hyperliquid/tickers"))[1]["error"]["code"] == "NOT_FOUND"
    for path, params in (("/v1/perps/hyperliquid/markets/BTC/orderbook", {"depth": 101}), ("/v1/perps/hyperliquid/markets/BTC/trades", {"limit": "x"}),
                         ("/v1/perps/hyperliquid/markets/BTC/candles", {"interval": "2h"}),
                         ("/v1/perps/hyperliquid/markets/BTC/candles", {"interval": "1m", "startTime": 5, "endTime": 4})):  # fmt: skip
        status, body, _ = await rest(emu, path, **params)
        assert status == 400 and body["error"]["code"] == "INVALID_PARAMS", (path, params)
    # a provider outage
    emu.set_provider_status("aster", "down")
    try:
        assert (await rest(emu, "/v1/perps/aster/prices"))[:2] == (503, error("PROVIDER_UNAVAILABLE", "Provider aster is unavailable"))
        assert (await rest(emu, "/v1/health"))[1]["status"] == "degraded"
    finally:
        emu.set_provider_status("aster", "ok")


async def test_rest_rate_limit_per_key(emu: PerpsStudioEmulator) -> None:
    used_by_demo = 101 - int((await rest(emu, "/v1/health"))[2]["X-RateLimit-Remaining"])
    emu.rest_rate_limit = used_by_demo + 3  # the second key has used nothing so far
    try:
        remaining = [(await rest(emu, "/v1/health", key=SECOND_KEY))[2]["X-RateLimit-Remaining"] for _ in range(used_by_demo + 3)]
        assert remaining[-3:] == ["2", "1", "0"]
        status, body, headers = await rest(emu, "/v1/health", key=SECOND_KEY)
        assert status == 429 and body["error"]["code"] == "RATE_LIMITED" and 1 <= int(headers["Retry-After"]) <= 60
        assert body["error"]["message"] == f"Rate limit exceeded. Try again in {headers['Retry-After']} seconds."
        assert int(headers["X-RateLimit-Reset"]) >= emu.now_ms() // 1000
        assert (await rest(emu, "/v1/health"))[0] == 200  # per key
    finally:
        emu.rest_rate_limit = 100


# --------------------------------------------------------------------------------------------------
# One market: one price across providers and venues; determinism
# --------------------------------------------------------------------------------------------------


async def test_one_underlying_one_price_here_and_on_the_hyperliquid_emulator(emu: PerpsStudioEmulator) -> None:
    async with HyperliquidEmulator(seed=7, autostep=False, start_ms=DEFAULT_START_MS, tick_interval=0.05) as hl:
        await hl.advance(emu.engine.now_ms - hl.engine.now_ms)  # the same virtual time, other steps
        assert hl.engine.now_ms == emu.engine.now_ms
        for coin in ("BTC", "ETH", "SOL", "HYPE"):
            assert hl.engine.fair_price(coin) == emu.engine.fair_price(coin)
            async with aiohttp.ClientSession() as session, session.post(hl.http_url + "/info", json={"type": "l2Book", "coin": coin}) as response:
                levels = (await response.json())["levels"]
            quotes = [(Decimal(levels[0][0]["px"]), Decimal(levels[1][0]["px"]))]
            for provider in ("hyperliquid", "aster"):
                quotes.append(check_book((await rest(emu, f"/v1/perps/{provider}/markets/{coin}/orderbook"))[1]))
            for bid, ask in quotes:  # every book has the fair price inside its spread, so they overlap
                assert all(bid < other_ask and other_bid < ask for other_bid, other_ask in quotes), (coin, quotes)
        spot = check_book((await rest(emu, "/v1/spot/aster/orderbook/BTC%2FUSDT"))[1])
        assert spot[0] < Decimal(str(emu.engine.fair_price("BTC"))) < spot[1]


SCRIPT = (("orderbook", {"symbol": "ETH"}), ("trades", {"symbol": "BTC"}), ("ticker", {"symbol": "SOL"}), ("candle", {"symbol": "HYPE", "interval": "5m"}), ("prices", {}))


async def scripted(seed: int) -> list[Any]:
    async with build(seed=seed) as server, client(server) as c, client(server, "predictions") as pred:
        frames: list[Any] = []
        for provider in ("hyperliquid", "aster"):
            for channel, params in SCRIPT:
                frames += await c.subscribe(provider, channel, **params)
        frames += await pred.subscribe("polymarket", "orderbook", tokenId=server.token_ids[0])
        frames += await pred.subscribe("polymarket", "prices", marketId=server.market_ids[0])
        for _ in range(8):
            await server.advance(250)
            frames += await c.sync() + await pred.sync()
        return frames


async def test_same_seed_same_frames() -> None:
    first, second, other = await scripted(3), await scripted(3), await scripted(4)
    assert first == second and len(first) > 50 and first != other
    assert {f.get("channel") for f in first} >= {"orderbook", "trades", "ticker", "candle", "prices"}


# --------------------------------------------------------------------------------------------------
# Fault controls, book faults, flood
# --------------------------------------------------------------------------------------------------


async def test_stall_restart_and_ignored_requests_in_its_own_messages(emu: PerpsStudioEmulator) -> None:
    """The fault controls every emulator shares are tested once for all (test_sim_fault_controls);
    here what they mean in perps.studio's messages."""
    async with client(emu) as c:
        await c.subscribe("aster", "orderbook", symbol="SOL")
        emu.stall(True)
        await c.send({"event": "ping"})
        with pytest.raises(TimeoutError):
            await c.recv(timeout=0.2)
        emu.stall(False)
        assert (await c.recv())["event"] == "pong"
        await emu.restart()
        assert await c.closed() == (1012, "service restart")
    assert not emu._topics  # the server forgets subscriptions
    async with client(emu) as c:
        emu.ignore_requests('"subscribe"')
        assert await c.subscribe("aster", "trades", symbol="BTC") == []
        emu.ignore_requests(None)


async def test_book_faults_and_flood(emu: PerpsStudioEmulator) -> None:
    market = "perps:hyperliquid:ETH"
    async with client(emu) as c:
        await c.subscribe("hyperliquid", "orderbook", symbol="ETH")

        async def pushes() -> list[Any]:
            return of(await run(emu, c, 1, 600), "orderbook")

        assert len(await pushes()) == 1
        emu.arm_book_fault(market, "duplicate")
        duplicated = await pushes()
        assert len(duplicated) == 2 and duplicated[0] == duplicated[1]
        emu.arm_book_fault(market, "skip")
        assert await pushes() == []
        emu.arm_book_fault(market, "reorder")
        assert await pushes() == []
        late, early = await pushes()
        assert early["timestamp"] < late["timestamp"]  # the held, older book after the new one
        emu.arm_book_fault(market, "delta_before_snapshot")
        async with client(emu) as other:
            stale, ack, current = await other.subscribe("hyperliquid", "orderbook", symbol="ETH")
            assert stale["data"] == late and ack["event"] == "subscribed" and current["data"]["timestamp"] >= stale["data"]["timestamp"]
            assert await emu.flood(market, 30) == 60  # both subscribers
            flooded = of(await other.sync(), "orderbook")
            assert len(flooded) == 30 and len({orjson.dumps(f) for f in flooded}) == 17 and flooded[-1] == current["data"]  # 16 variants, then the true book
        emu.arm_book_fault(f"predictions:polymarket:{emu.token_ids[1]}", "duplicate")
        async with client(emu, "predictions") as pred:
            await pred.subscribe("polymarket", "orderbook", tokenId=emu.token_ids[1])
            books = []
            for _ in range(12):
                books = of(await run(emu, pred, 1, 600), "orderbook")
                if books:
                    break
            assert len(books) == 2 and books[0] == books[1]
    with pytest.raises(KeyError):
        await emu.flood("perps:hyperliquid:NOPE", 1)


# --------------------------------------------------------------------------------------------------
# Hostile names, the runner
# --------------------------------------------------------------------------------------------------


async def test_hostile_names_are_listed_and_served_verbatim() -> None:
    async with build(hostile_names=True) as server:
        for provider in ("hyperliquid", "aster"):
            symbols = [m["symbol"] for m in (await rest(server, f"/v1/perps/{provider}/markets"))[1]]
            assert symbols == ["BTC", "ETH", "SOL", "HYPE", *HOSTILE_NAMES]
        assert f"{HOSTILE_TOKEN}/USDC" in [m["symbol"] for m in (await rest(server, "/v1/spot/hyperliquid/markets"))[1]]
        questions = [m["question"] for m in (await rest(server, "/v1/predictions/polymarket/markets"))[1]]
        assert questions[-len(HOSTILE_NAMES) :] == list(HOSTILE_NAMES)
        for name in HOSTILE_NAMES:
            status, book, _ = await rest(server, f"/v1/perps/aster/markets/{quote(name, safe='')}/orderbook")
            assert status == 200 and book["bids"], name
        async with client(server) as c:
            ack, push = await c.subscribe("hyperliquid", "orderbook", symbol=HOSTILE_NAMES[0])
            assert ack["event"] == "subscribed" and push["data"]["symbol"] == HOSTILE_NAMES[0]
            assert set(HOSTILE_NAMES) <= set((await c.subscribe("aster", "prices"))[1]["data"]["prices"])


async def test_runner_lists_it_with_the_demo_key() -> None:
    assert VENUE_EMULATORS["perps-studio"] is PerpsStudioEmulator
    (server,) = await start_emulators(["perps-studio"], seed=2, autostep=False, idle_timeout=5.0)
    try:
        described = orjson.loads(describe(server, True))
        assert list(described) == ["venue", "http", "ws", "spot_ws", "rwas_ws", "predictions_ws", "api_key"]
        assert described["venue"] == "perps-studio" and described["api_key"] == DEMO_API_KEY
        assert described["ws"] == described["http"].replace("http://", "ws://") + "/ws/v1/perps"
        assert described["predictions_ws"] == described["ws"].removesuffix("/perps") + "/predictions"
        assert isinstance(server, PerpsStudioEmulator) and server.idle_timeout == 5.0
        async with client(server, "rwas") as c:
            assert (await c.subscribe("hyperliquid", "ticker", symbol="OIL", dex="flx"))[1]["data"]["dex"] == "flx"
    finally:
        await server.stop()
