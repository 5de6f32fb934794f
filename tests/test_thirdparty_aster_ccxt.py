"""ccxt's ``aster`` and ``binanceusdm`` (synchronous REST) and ``ccxt.pro.aster`` (WebSocket) against
the Aster emulator, configured only through ``urls``: the clients' own endpoint choices, parameters
and parsers, unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

ccxt = pytest.importorskip("ccxt")

from app.sim.aster import AsterEmulator  # noqa: E402
from app.sim.runner import EmulatorThread  # noqa: E402

pytestmark = pytest.mark.timeout(60)
PERPS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "HYPE/USDT:USDT"]


@pytest.fixture(scope="module")
def emus() -> Iterator[EmulatorThread]:
    """Stepped by hand, so a book read through ccxt can be compared with the engine's."""
    with EmulatorThread(["aster"], seed=31, autostep=False) as thread:
        server = thread["aster"]
        thread.run(server.advance(30_000))  # a tape to fetch
        yield thread


@pytest.fixture(scope="module")
def aster(emus: EmulatorThread) -> AsterEmulator:
    server = emus["aster"]
    assert isinstance(server, AsterEmulator)
    return server


def aster_client(server: AsterEmulator) -> "ccxt.aster":
    urls = {name: server.http_url + path for name, path in (("fapiPublic", "/fapi"), ("fapiPrivate", "/fapi"), ("sapiPublic", "/api"), ("sapiPrivate", "/api"))}
    return ccxt.aster({"enableRateLimit": False, "urls": {"api": urls}})


def binance_client(server: AsterEmulator) -> "ccxt.binanceusdm":
    urls = {name: f"{server.http_url}/fapi/{version}" for name, version in (("fapiPublic", "v1"), ("fapiPublicV2", "v2"), ("fapiPublicV3", "v3"))}
    return ccxt.binanceusdm({"enableRateLimit": False, "urls": {"api": urls}})


def engine_book(server: AsterEmulator, engine_symbol: str) -> tuple[list[list[float]], list[list[float]]]:
    spec = server.engine.spec(engine_symbol)
    bids, asks = server.engine.levels(engine_symbol)
    as_floats = lambda side: [[round(spec.px(px), spec.px_decimals), round(spec.sz(sz), spec.sz_decimals)] for px, sz, _ in side]  # noqa: E731
    return as_floats(bids), as_floats(asks)


@pytest.mark.parametrize("make", [aster_client, binance_client], ids=["aster", "binanceusdm"])
def test_markets_and_order_books_equal_the_engine(aster: AsterEmulator, make) -> None:
    exchange = make(aster)
    markets = exchange.load_markets()
    expected = set(PERPS) | ({"ASTER/USDT", "BTC/USDT"} if exchange.id == "aster" else set())
    assert set(markets) == expected
    btc = markets["BTC/USDT:USDT"]
    assert (btc["id"], btc["swap"], btc["linear"], btc["settle"]) == ("BTCUSDT", True, True, "USDT")
    assert (btc["precision"]["price"], btc["precision"]["amount"]) == (0.1, 0.001)
    for symbol, engine_symbol in (("BTC/USDT:USDT", "BTC"), ("HYPE/USDT:USDT", "HYPE")):
        book = exchange.fetch_order_book(symbol, 1000)
        bids, asks = engine_book(aster, engine_symbol)
        assert [book["bids"], book["asks"]] == [bids, asks] and book["timestamp"] > 0
    if exchange.id == "aster":
        spot = exchange.fetch_order_book("ASTER/USDT", 5)
        bids, asks = engine_book(aster, "ASTER/USDT")
        assert [spot["bids"], spot["asks"]] == [bids[:5], asks[:5]]


@pytest.mark.parametrize("make", [aster_client, binance_client], ids=["aster", "binanceusdm"])
def test_trades_candles_and_tickers(aster: AsterEmulator, make) -> None:
    exchange = make(aster)
    exchange.load_markets()
    trades = exchange.fetch_trades("ETH/USDT:USDT", limit=50)
    engine_trades = aster.engine.recent_trades("ETH", len(trades))
    assert [(t["price"], t["amount"], t["timestamp"], t["side"]) for t in trades] == [
        (float(t.px_str), float(t.sz_str), t.time, t.side) for t in engine_trades
    ]
    candles = exchange.fetch_ohlcv("SOL/USDT:USDT", "1h", limit=48)
    assert len(candles) == 48 and [c[0] for c in candles] == sorted(c[0] for c in candles)
    assert all(low <= min(open_, close) <= max(open_, close) <= high for _, open_, high, low, close, _ in candles)
    since = candles[0][0]
    assert exchange.fetch_ohlcv("SOL/USDT:USDT", "1h", since=since, limit=3)[0][0] == since
    ticker = exchange.fetch_ticker("BTC/USDT:USDT")
    assert ticker["symbol"] == "BTC/USDT:USDT" and ticker["low"] <= ticker["last"] <= ticker["high"]
    assert ticker["last"] == float(aster.engine.recent_trades("BTC", 1)[0].px_str)
    if exchange.id == "aster":
        spot = exchange.fetch_ticker("ASTER/USDT")
        assert spot["symbol"] == "ASTER/USDT" and spot["bid"] < spot["ask"]
        assert exchange.fetch_trades("BTC/USDT", limit=5)[-1]["symbol"] == "BTC/USDT"
        assert exchange.fetch_ohlcv("BTC/USDT", "1d", limit=10)[-1][0] % 86_400_000 == 0


async def test_pro_watch_books_trades_tickers_and_candles() -> None:
    ccxt_pro = pytest.importorskip("ccxt.pro")
    async with AsterEmulator(seed=5, tick_interval=0.05) as server:
        urls = aster_client(server).urls["api"]
        # ccxt.pro tells futures from spot by "fstream" in the URL (the real host name); the query
        # string carries it here and the emulator ignores it
        urls["ws"] = {"public": {"swap": server.ws_url + "?fstream", "spot": server.spot_ws_url}}
        exchange = ccxt_pro.aster({"enableRateLimit": False, "urls": {"api": urls}})
        try:
            book = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT:USDT"), 10)
            assert len(book["bids"]) == len(book["asks"]) == 20 and book["bids"][0][0] < book["asks"][0][0]
            spot = await asyncio.wait_for(exchange.watch_order_book("ASTER/USDT"), 10)
            assert spot["symbol"] == "ASTER/USDT" and spot["bids"][0][0] < spot["asks"][0][0]
            trades = await asyncio.wait_for(exchange.watch_trades("ETH/USDT:USDT"), 10)
            assert trades and {trade["symbol"] for trade in trades} == {"ETH/USDT:USDT"}
            ticker = await asyncio.wait_for(exchange.watch_ticker("SOL/USDT:USDT"), 10)
            assert ticker["symbol"] == "SOL/USDT:USDT" and ticker["last"] > 0
            candles = await asyncio.wait_for(exchange.watch_ohlcv("BTC/USDT:USDT", "1m"), 10)
            assert candles[-1][0] % 60_000 == 0 and candles[-1][2] >= candles[-1][3]
        finally:
            await exchange.close()
