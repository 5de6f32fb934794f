"""The official ``hyperliquid-python-sdk`` against the emulator, with only its base URL changed."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

pytest.importorskip("hyperliquid.info")

from hyperliquid.info import Info  # noqa: E402

from app.sim.engine import DEMO_ADDRESS  # noqa: E402
from app.sim.hyperliquid import HyperliquidEmulator  # noqa: E402
from app.sim.runner import EmulatorThread  # noqa: E402

pytestmark = pytest.mark.timeout(30)



def test_rest_calls(emus: EmulatorThread, hl: HyperliquidEmulator) -> None:
    info = Info(base_url=hl.http_url, skip_ws=True)
    assert [asset["name"] for asset in info.meta()["universe"]] == ["BTC", "ETH", "SOL", "HYPE"]
    assert info.name_to_coin["HYPE/USDC"] == "@1" and info.name_to_asset("@1") == 10_001
    mids = info.all_mids()
    assert set(mids) == {"BTC", "ETH", "SOL", "HYPE", "PURR/USDC", "@1"}
    book = info.l2_snapshot("BTC")
    assert book["coin"] == "BTC" and [len(side) for side in book["levels"]] == [20, 20]
    bids = [float(level["px"]) for level in book["levels"][0]]
    asks = [float(level["px"]) for level in book["levels"][1]]
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
    assert all(isinstance(level["px"], str) and isinstance(level["n"], int) for level in book["levels"][0])
    spot_book = info.l2_snapshot("HYPE/USDC")
    assert spot_book["coin"] == "@1"
    now = int(time.time() * 1000)
    candles = info.candles_snapshot("ETH", "15m", now - 10 * 900_000, now)
    assert 10 <= len(candles) <= 11 and all(candle["s"] == "ETH" and candle["i"] == "15m" for candle in candles)
    meta, ctxs = info.meta_and_asset_ctxs()
    assert len(ctxs) == len(meta["universe"])
    spot_meta, spot_ctxs = info.spot_meta_and_asset_ctxs()
    assert [pair["name"] for pair in spot_meta["universe"]] == ["PURR/USDC", "@1"] and len(spot_ctxs) == 2
    emus.run(hl.advance(600_000))
    assert info.user_fills(DEMO_ADDRESS)
    assert "assetPositions" in info.user_state(DEMO_ADDRESS)
    assert info.open_orders(DEMO_ADDRESS) == []


def test_l2_snapshot_equals_the_emulator_book() -> None:
    emus = EmulatorThread(["hyperliquid"], seed=22, autostep=False).start()
    try:
        server = emus["hyperliquid"]
        info = Info(base_url=server.http_url, skip_ws=True)
        bids, asks = emus.call(server.engine.book, "SOL")
        book = info.l2_snapshot("SOL")
        assert book["levels"] == [[{"px": p, "sz": s, "n": n} for p, s, n in side] for side in (bids, asks)]
    finally:
        emus.stop()


def test_websocket_subscriptions(hl: HyperliquidEmulator) -> None:
    info = Info(base_url=hl.http_url, skip_ws=False)
    received: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def collect(message: Any) -> None:
        with lock:
            received.setdefault(message["channel"], []).append(message)

    try:
        for subscription in (
            {"type": "l2Book", "coin": "BTC"},
            {"type": "trades", "coin": "ETH"},
            {"type": "candle", "coin": "SOL", "interval": "1m"},
            {"type": "allMids"},
            {"type": "bbo", "coin": "HYPE"},
            {"type": "activeAssetCtx", "coin": "BTC"},
            {"type": "activeAssetCtx", "coin": "PURR/USDC"},
        ):
            info.subscribe(subscription, collect)
        expected = {"l2Book", "trades", "candle", "allMids", "bbo", "activeAssetCtx", "activeSpotAssetCtx"}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                if expected <= set(received) and len(received["l2Book"]) >= 2:
                    break
            time.sleep(0.05)
        with lock:
            assert expected <= set(received), set(received)
            books = received["l2Book"]
            assert all(book["data"]["coin"] == "BTC" for book in books)
            assert books[1]["data"]["time"] > books[0]["data"]["time"]
            assert all(trade["coin"] == "ETH" for frame in received["trades"] for trade in frame["data"])
            assert all(isinstance(frame["data"], dict) for frame in received["candle"])
    finally:
        info.disconnect_websocket()
