"""The invariant checker itself: it accepts valid events and refuses each kind of invalid value."""

from __future__ import annotations

from typing import Any

import pytest

from app.model import (
    AllMids,
    Bbo,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    Candle,
    CandleHistory,
    MarketInfo,
    Side,
    Ticker,
    Trade,
    Trades,
    Venue,
)
from app.venues.base import Ack, Data, Ignored, Pong, VenueError
from tests.conformance.invariants import InvariantError, check_decoded, check_event, check_markets

T = 1_751_427_259_657


def trade(**changes: Any) -> Trade:
    fields = {"market": "BTC", "price": "106217.0", "size": "0.5", "side": Side.BUY, "time_ms": T, "trade_id": "7"}
    return Trade(**{**fields, **changes})


def candle(**changes: Any) -> Candle:
    fields = {"market": "BTC", "interval": "1m", "open_time_ms": T, "close_time_ms": T + 59_999, "open": "1",
              "high": "2", "low": ".5", "close": "1.5", "volume": "0", "trade_count": 3}  # fmt: skip
    return Candle(**{**fields, **changes})


VALID: list[Any] = [
    BookSnapshot("BTC", [("106217.0", "0.001")], [("106218", "0")], T),
    BookSnapshot("@1", [], [], None, 5),
    BookDelta("BTC", [("1", "0")], [(".5", "2")], T, 1, 2, 0),
    Trades("BTC", [trade(), trade(trade_id="8", side=Side.SELL)]),
    Trades("BTC", [], backlog=True),
    candle(),
    candle(trade_count=None),
    CandleHistory("BTC", "1m", [candle(), candle(open_time_ms=T + 60_000)]),
    Ticker("BTC", mark="1", funding_rate="-0.0000125", volume_24h="0"),
    Ticker("BTC"),
    Ticker("BTC", funding_rate="+0.1", time_ms=T),
    Bbo("ETH", ("3443.8", "4.5"), None, T),
    Bbo("ETH", None, None),
    AllMids({"BTC": "95815.5", "PURR/USDC": "0.2"}),
    AllMids({}),
    AllMids({"BTCUSDT": "95815.5"}, partial=True),
    Ticker("spot:BTCUSDT", last="97000.12", volume_24h="12.5"),
    BookInvalidated("4195", "tick size changed to 0.001"),
]

INVALID: list[tuple[str, Any]] = [
    ("float price", BookSnapshot("BTC", [(1.5, "1")], [])),  # type: ignore[list-item]
    ("zero price", BookSnapshot("BTC", [("0.0", "1")], [])),
    ("negative size", BookSnapshot("BTC", [("1", "-1")], [])),
    ("NaN price", BookSnapshot("BTC", [("NaN", "1")], [])),
    ("exponent", BookSnapshot("BTC", [("1e5", "1")], [])),
    ("fullwidth digit", BookSnapshot("BTC", [("1９", "1")], [])),
    ("trailing newline", BookSnapshot("BTC", [("1\n", "1")], [])),
    ("41 characters", BookSnapshot("BTC", [("9" * 41, "1")], [])),
    ("level is a list", BookSnapshot("BTC", [["1", "1"]], [])),  # type: ignore[list-item]
    ("time is bool", BookSnapshot("BTC", [], [], True)),
    ("time is float", BookSnapshot("BTC", [], [], float(T))),  # type: ignore[arg-type]
    ("time before 2009", BookSnapshot("BTC", [], [], 1_230_767_999_999)),
    ("time at 2100", BookSnapshot("BTC", [], [], 4_102_444_800_000)),
    ("negative sequence", BookSnapshot("BTC", [], [], T, -1)),
    ("empty market", BookSnapshot("", [], [])),
    ("long market", BookSnapshot("x" * 101, [], [])),
    ("market not str", BookSnapshot(5, [], [])),  # type: ignore[arg-type]
    ("delta zero price", BookDelta("BTC", [("0", "0")], [])),
    ("mixed trades", Trades("BTC", [trade(), trade(market="ETH")])),
    ("trade side", Trades("BTC", [trade(side="B")])),
    ("trade time", Trades("BTC", [trade(time_ms=0)])),
    ("trade id empty", Trades("BTC", [trade(trade_id="")])),
    ("trade zero price", Trades("BTC", [trade(price="0")])),
    ("candle interval", candle(interval="")),
    ("candle close time", candle(close_time_ms=10**13 * 50)),
    ("candle count bool", candle(trade_count=True)),
    ("candle low zero", candle(low="0")),
    ("history item", CandleHistory("BTC", "1m", [candle(volume="-1")])),
    ("ticker mark signed", Ticker("BTC", mark="-1")),
    ("ticker funding text", Ticker("BTC", funding_rate="NaN")),
    ("bbo level", Bbo("ETH", ("0", "1"), None)),
    ("mids value", AllMids({"BTC": "Infinity"})),
    ("mids key", AllMids({"": "1"})),
    ("mids partial not bool", AllMids({}, partial=1)),  # type: ignore[arg-type]
    ("ticker last text", Ticker("BTC", last="1e5")),
    ("ticker last float", Ticker("BTC", last=1.5)),  # type: ignore[arg-type]
    ("invalidated reason empty", BookInvalidated("4195", "")),
    ("invalidated reason long", BookInvalidated("4195", "x" * 301)),
    ("invalidated reason not str", BookInvalidated("4195", None)),  # type: ignore[arg-type]
    ("invalidated market", BookInvalidated("", "tick")),
    ("not an event", object()),
]


@pytest.mark.parametrize("event", VALID, ids=lambda e: type(e).__name__)
def test_valid_events_pass(event: Any) -> None:
    check_event(event)
    check_decoded([Data(("route", 1), event)])


@pytest.mark.parametrize(("why", "event"), INVALID, ids=[why for why, _ in INVALID])
def test_invalid_values_are_refused(why: str, event: Any) -> None:
    with pytest.raises(InvariantError):
        check_event(event)


def test_control_items() -> None:
    check_decoded([Ack({"type": "l2Book"}), VenueError("no"), Pong(), Ignored()])
    check_decoded([Ack(request_id=7), Ack(request_id=2**64 - 1, unsubscribe=True), VenueError("bad", None, 0)])
    for bad in ([Ack("l2Book")], [VenueError(5)], [Data(["unhashable"], VALID[0])], ["not an item"], [Ack()],
                [Ack(request_id=-1)], [Ack(request_id=True)], [Ack(request_id=2**64)], [Ack(request_id="7")],
                [VenueError("bad", None, -1)], [VenueError("bad", None, 1.0)]):  # fmt: skip
        with pytest.raises(InvariantError):
            check_decoded(bad)
    with pytest.raises(InvariantError):
        check_decoded(tuple())


def test_market_listings() -> None:
    check_markets([MarketInfo(Venue.HYPERLIQUID, "@1", "HYPE/USDC", "spot", 4, 2)], Venue.HYPERLIQUID)
    check_markets([MarketInfo(Venue.POLYMARKET, "4195", "Rain? · Yes", "prediction", 2, 2, "0xab", "Yes")], Venue.POLYMARKET)
    for bad in (MarketInfo(Venue.ASTER, "BTC", "BTC", "perp"), MarketInfo(Venue.HYPERLIQUID, "", "x", "perp"),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", -1),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", event=""),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", outcome=5)):  # type: ignore[arg-type]  # fmt: skip
        with pytest.raises(InvariantError):
            check_markets([bad], Venue.HYPERLIQUID)
