"""ccxt's ``hyperliquid`` (REST) and ``ccxt.pro.hyperliquid`` (WebSocket) against the emulator,
configured only through ``urls``."""

from __future__ import annotations


import pytest

ccxt = pytest.importorskip("ccxt")
ccxt_pro = pytest.importorskip("ccxt.pro")

from app.sim.engine import DEMO_ADDRESS  # noqa: E402
from app.sim.hyperliquid import HyperliquidEmulator  # noqa: E402
from app.sim.runner import EmulatorThread  # noqa: E402

pytestmark = pytest.mark.timeout(40)
SYMBOLS = {"BTC/USDC:USDC", "ETH/USDC:USDC", "SOL/USDC:USDC", "HYPE/USDC:USDC", "PURR/USDC", "HYPE/USDC"}



def rest_client(hl: HyperliquidEmulator) -> "ccxt.hyperliquid":
    return ccxt.hyperliquid({"enableRateLimit": False, "urls": {"api": {"public": hl.http_url, "private": hl.http_url}}})


def test_load_markets_and_order_books(hl: HyperliquidEmulator) -> None:
    exchange = rest_client(hl)
    markets = exchange.load_markets()
    assert set(markets) == SYMBOLS
    assert markets["HYPE/USDC"]["id"] == "@1" and markets["BTC/USDC:USDC"]["precision"]["amount"] == 1e-05
    for symbol in ("BTC/USDC:USDC", "PURR/USDC"):
        book = exchange.fetch_order_book(symbol)
        assert len(book["bids"]) == 20 and len(book["asks"]) == 20
        assert book["bids"][0][0] < book["asks"][0][0] and book["timestamp"] > 0


def test_ohlcv_trades_and_tickers(emus: EmulatorThread, hl: HyperliquidEmulator) -> None:
    exchange = rest_client(hl)
    exchange.load_markets()
    candles = exchange.fetch_ohlcv("ETH/USDC:USDC", "1h", limit=50)
    assert len(candles) == 50 and all(low <= high for _, _, high, low, _, _ in candles)
    assert [c[0] for c in candles] == sorted(c[0] for c in candles)
    daily = exchange.fetch_ohlcv("BTC/USDC:USDC", "1d")
    assert len(daily) >= 300
    ticker = exchange.fetch_ticker("SOL/USDC:USDC")
    assert ticker["symbol"] == "SOL/USDC:USDC" and ticker["bid"] < ticker["ask"] and ticker["previousClose"] > 0
    assert set(exchange.fetch_tickers()) == SYMBOLS
    emus.run(hl.advance(600_000))
    # ccxt's fetch_trades is the user's fills (userFills), not the public tape
    trades = exchange.fetch_trades("BTC/USDC:USDC", params={"user": DEMO_ADDRESS})
    assert all(trade["symbol"] == "BTC/USDC:USDC" for trade in trades)
    all_fills = exchange.fetch_my_trades(params={"user": DEMO_ADDRESS})
    assert all_fills


async def test_pro_watch_order_book_and_trades(hl: HyperliquidEmulator) -> None:
    exchange = ccxt_pro.hyperliquid({"enableRateLimit": False, "urls": {"api": {"public": hl.http_url, "private": hl.http_url, "ws": {"public": hl.ws_url}}}})
    try:
        first = await exchange.watch_order_book("BTC/USDC:USDC")
        first_time = first["timestamp"]
        assert first["bids"][0][0] < first["asks"][0][0] and len(first["bids"]) == 20
        second = await exchange.watch_order_book("BTC/USDC:USDC")
        assert second["timestamp"] > first_time
        trades = await exchange.watch_trades("ETH/USDC:USDC")
        assert trades and all(trade["symbol"] == "ETH/USDC:USDC" for trade in trades)
        spot_trades = await exchange.watch_trades("HYPE/USDC")
        assert spot_trades and spot_trades[-1]["symbol"] == "HYPE/USDC"
    finally:
        await exchange.close()
