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
    ChainLeg,
    ChainRemoval,
    ChainRow,
    CompetitionSummary,
    Fill,
    Fills,
    Greeks,
    LegGreeks,
    LiquidationChange,
    LiquidationState,
    Listing,
    Margin,
    MarketInfo,
    OrderUpdate,
    OrderUpdates,
    Position,
    PositionExpired,
    Positions,
    Side,
    Ticker,
    Trade,
    Trades,
    Venue,
)
from app.venues.base import Ack, Authenticated, Data, Ignored, Pong, VenueError
from tests.conformance.invariants import InvariantError, check_decoded, check_event, check_markets

T = 1_751_427_259_657


def trade(**changes: Any) -> Trade:
    fields = {"market": "BTC", "price": "106217.0", "size": "0.5", "side": Side.BUY, "time_ms": T, "trade_id": "7"}
    return Trade(**{**fields, **changes})


def candle(**changes: Any) -> Candle:
    fields = {"market": "BTC", "interval": "1m", "open_time_ms": T, "close_time_ms": T + 59_999, "open": "1",
              "high": "2", "low": ".5", "close": "1.5", "volume": "0", "trade_count": 3}  # fmt: skip
    return Candle(**{**fields, **changes})


EXPIRY_S = 1_780_387_200  # 2026-06-02T08:00:00Z
OPTION = "BTC-20260602-100000-C"
OPTION_INFO = MarketInfo(Venue.HYPERCALL, OPTION, "BTC 02JUN26 100000 C", "option")


def leg(**changes: Any) -> ChainLeg:
    fields = {"symbol": OPTION, "bid": 0.0, "ask": 1210.5, "mark": 605.25, "bid_iv": 0.0, "ask_iv": 0.58,
              "mark_iv": 0.55, "delta": 0.48, "gamma": 4.1e-05, "theta": -310.2, "vega": 41.7}  # fmt: skip
    return ChainLeg(**{**fields, **changes})


def position(**changes: Any) -> Position:
    fields = {"market": OPTION, "underlying": "BTC", "kind": "option", "size": "-3.0", "entry_price": "1210.5",
              "mark_price": "1200", "unrealized_pnl": "-31.5", "liquidation_price": None, "maintenance_margin": "950.12"}  # fmt: skip
    return Position(**{**fields, **changes})


def leg_greeks(**changes: Any) -> LegGreeks:
    fields = {"market": OPTION, "quantity": "-3.0", "delta": -1.44, "gamma": -0.000123, "theta": 930.6, "vega": -125.1, "iv": 0.55}
    return LegGreeks(**{**fields, **changes})


def fill(**changes: Any) -> Fill:
    fields = {"market": OPTION, "side": Side.SELL, "price": "1210.5", "size": "0.5", "time_ms": T, "fill_id": "81",
              "order_id": "9001", "fee": "-0.015", "taker": True}  # fmt: skip
    return Fill(**{**fields, **changes})


def order(**changes: Any) -> OrderUpdate:
    fields = {"order_id": "9001", "market": OPTION, "status": "filled", "side": Side.BUY, "price": "1210.5",
              "size": "1.0", "filled": "1.0", "time_ms": T, "reason": None}  # fmt: skip
    return OrderUpdate(**{**fields, **changes})


def liquidation(**changes: Any) -> LiquidationChange:
    fields = {"state": LiquidationState.WARNING, "previous": LiquidationState.NORMAL, "equity": "-12.5",
              "maintenance": "1000", "shortfall": "0.0", "auction_id": "auc-1", "time_ms": T}  # fmt: skip
    return LiquidationChange(**{**fields, **changes})


VALID: list[Any] = [
    BookSnapshot("BTC", [("106217.0", "0.001")], [("106218", "0")], T),
    BookSnapshot("@1", [], [], None, 5),
    BookSnapshot("predictions:polymarket:" + "1" * 78, [], []),  # an aggregator's name of a 78-digit token
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
    ChainRow("BTC", EXPIRY_S, "100000", leg(), leg(symbol="BTC-20260602-100000-P", delta=-0.52)),
    ChainRow("ETH", EXPIRY_S, "3612.5", None, leg(bid=None, ask=None, mark=None, bid_iv=None, ask_iv=None, mark_iv=None,
                                                  delta=None, gamma=None, theta=None, vega=None)),  # fmt: skip
    ChainRemoval("BTC", EXPIRY_S, "100000", "put", "BTC-20260602-100000-P"),
    Listing("created", OPTION, OPTION_INFO, T),
    Listing("expired", OPTION, OPTION_INFO, T),
    Listing("deleted", OPTION, None, T),
    Positions([position(), position(market="ETH", underlying="ETH", kind="perp", size="0", liquidation_price="2900.5")], time_ms=T),
    Positions([], replace=False),
    Margin("-120.5", "0", "10", "-130.5", T),
    Margin("100000.0", "512.25"),
    Greeks([leg_greeks(), leg_greeks(iv=None, delta=0.0)], T),
    Greeks([]),
    PositionExpired(OPTION, "-3.0", "101234.56", "-3703.68", T),
    PositionExpired(OPTION, "2", "0", "0.0", T),
    liquidation(),
    LiquidationChange(LiquidationState.LIQUIDATING, equity="95.1", auction_id="7", lasts=60.0),
    LiquidationChange(LiquidationState.NORMAL),
    Fills([fill(), fill(fill_id="82", order_id=None, fee=None, taker=None, liquidation=True)], snapshot=True),
    Fills([]),
    OrderUpdates([order(), order(market=None, side=None, price=None, size=None, filled=None, time_ms=None, status="canceled", reason="expired")]),
    OrderUpdates([]),
    CompetitionSummary("1250.5", "Spring Sprint", 12, "-31.25", "25000.0", T),
    CompetitionSummary("-0.5"),
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
    ("long market", BookSnapshot("x" * 129, [], [])),
    ("long interval", candle(interval="x" * 101)),
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
    ("chain expiry in ms", ChainRow("BTC", EXPIRY_S * 1000, "100000", leg())),
    ("chain expiry zero", ChainRow("BTC", 0, "100000", leg())),
    ("chain expiry bool", ChainRow("BTC", True, "100000", leg())),  # type: ignore[arg-type]
    ("chain strike zero", ChainRow("BTC", EXPIRY_S, "0", leg())),
    ("chain strike float", ChainRow("BTC", EXPIRY_S, 100000.0, leg())),  # type: ignore[arg-type]
    ("chain underlying empty", ChainRow("", EXPIRY_S, "100000", leg())),
    ("chain leg not a leg", ChainRow("BTC", EXPIRY_S, "100000", {"symbol": OPTION})),  # type: ignore[arg-type]
    ("chain leg symbol", ChainRow("BTC", EXPIRY_S, "100000", leg(symbol=""))),
    ("chain leg NaN delta", ChainRow("BTC", EXPIRY_S, "100000", leg(delta=float("nan")))),
    ("chain leg infinite vega", ChainRow("BTC", EXPIRY_S, "100000", leg(vega=float("inf")))),
    ("chain leg huge theta", ChainRow("BTC", EXPIRY_S, "100000", leg(theta=-1e18))),
    ("chain leg int gamma", ChainRow("BTC", EXPIRY_S, "100000", leg(gamma=0))),
    ("chain leg bool delta", ChainRow("BTC", EXPIRY_S, "100000", leg(delta=True))),
    ("chain leg str iv", ChainRow("BTC", EXPIRY_S, "100000", leg(mark_iv="0.55"))),
    ("chain leg negative iv", ChainRow("BTC", EXPIRY_S, "100000", leg(bid_iv=-0.1))),
    ("chain leg negative bid", ChainRow("BTC", EXPIRY_S, "100000", leg(bid=-1.0))),
    ("removal option type", ChainRemoval("BTC", EXPIRY_S, "100000", "C", OPTION)),
    ("removal symbol", ChainRemoval("BTC", EXPIRY_S, "100000", "call", "")),
    ("removal expiry", ChainRemoval("BTC", -1, "100000", "call", OPTION)),
    ("listing action", Listing("Created", OPTION, OPTION_INFO, T)),
    ("listing deleted with info", Listing("deleted", OPTION, OPTION_INFO, T)),
    ("listing created without info", Listing("created", OPTION, None, T)),
    ("listing info of another market", Listing("created", "BTC-20260602-95000-C", OPTION_INFO, T)),
    ("listing info display", Listing("created", OPTION, MarketInfo(Venue.HYPERCALL, OPTION, "", "option"), T)),
    ("listing time", Listing("expired", OPTION, OPTION_INFO, 0)),
    ("positions not a list", Positions((position(),))),  # type: ignore[arg-type]
    ("position not a Position", Positions([{"market": OPTION}])),  # type: ignore[list-item]
    ("position size text", Positions([position(size="short")])),
    ("position size float", Positions([position(size=-3.0)])),
    ("position entry signed", Positions([position(entry_price="-1")])),
    ("position pnl exponent", Positions([position(unrealized_pnl="-1e3")])),
    ("position mark exponent", Positions([position(mark_price="1E+2")])),
    ("position kind", Positions([position(kind="future")])),
    ("position underlying", Positions([position(underlying="")])),
    ("positions replace not bool", Positions([], replace=1)),  # type: ignore[arg-type]
    ("positions time", Positions([], time_ms=5)),
    ("margin maintenance signed", Margin("1", "-1")),
    ("margin equity missing", Margin(None, "1")),  # type: ignore[arg-type]
    ("margin equity NaN", Margin("NaN", "1")),
    ("margin initial signed", Margin("1", "1", "-5")),
    ("greeks leg float quantity", Greeks([leg_greeks(quantity=-3.0)])),
    ("greeks leg NaN", Greeks([leg_greeks(theta=float("nan"))])),
    ("greeks leg int", Greeks([leg_greeks(delta=1)])),
    ("greeks leg iv negative", Greeks([leg_greeks(iv=-0.5)])),
    ("greeks leg market", Greeks([leg_greeks(market="")])),
    ("greeks legs not list", Greeks(None)),  # type: ignore[arg-type]
    ("expired settlement price signed", PositionExpired(OPTION, "1", "-1", "0", T)),
    ("expired size text", PositionExpired(OPTION, "one", "1", "0", T)),
    ("expired time missing", PositionExpired(OPTION, "1", "1", "0", None)),  # type: ignore[arg-type]
    ("liquidation state text", liquidation(state="Warning")),
    ("liquidation previous text", liquidation(previous="normal")),
    ("liquidation equity float", liquidation(equity=-12.5)),
    ("liquidation maintenance signed", liquidation(maintenance="-1")),
    ("liquidation shortfall signed", liquidation(shortfall="-1")),
    ("liquidation auction empty", liquidation(auction_id="")),
    ("liquidation lasts zero", liquidation(lasts=0.0)),
    ("liquidation lasts NaN", liquidation(lasts=float("nan"))),
    ("liquidation lasts bool", liquidation(lasts=True)),
    ("fill side", Fills([fill(side="sell")])),
    ("fill zero price", Fills([fill(price="0")])),
    ("fill negative size", Fills([fill(size="-1")])),
    ("fill fee text", Fills([fill(fee="1e-5")])),
    ("fill id empty", Fills([fill(fill_id="")])),
    ("fill order id int", Fills([fill(order_id=9001)])),
    ("fill taker text", Fills([fill(taker="true")])),
    ("fill liquidation None", Fills([fill(liquidation=None)])),
    ("fill time", Fills([fill(time_ms=1.5)])),
    ("fills snapshot not bool", Fills([], snapshot=None)),  # type: ignore[arg-type]
    ("order id int", OrderUpdates([order(order_id=9001)])),
    ("order status upper", OrderUpdates([order(status="FILLED")])),
    ("order status empty", OrderUpdates([order(status="")])),
    ("order filled signed", OrderUpdates([order(filled="-1.0")])),
    ("order filled exponent", OrderUpdates([order(filled="1E+2")])),
    ("order price zero", OrderUpdates([order(price="0.0")])),
    ("order side text", OrderUpdates([order(side="B")])),
    ("order reason empty", OrderUpdates([order(reason="")])),
    ("orders not a list", OrderUpdates(None)),  # type: ignore[arg-type]
    ("competition pnl float", CompetitionSummary(1250.5)),  # type: ignore[arg-type]
    ("competition rank negative", CompetitionSummary("1", rank=-1)),
    ("competition rank bool", CompetitionSummary("1", rank=True)),
    ("competition volume signed", CompetitionSummary("1", volume="-1")),
    ("competition name empty", CompetitionSummary("1", competition="")),
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
    check_decoded([Ack({"channel": "trades"}, partial=True), VenueError("Invalid channel: x", {"channel": "x"}, partial=True),
                   Authenticated("0x0de0000000000000000000000000000000000001"), Authenticated()])  # fmt: skip
    for bad in ([Ack("l2Book")], [VenueError(5)], [Data(["unhashable"], VALID[0])], ["not an item"], [Ack()],
                [Ack(request_id=-1)], [Ack(request_id=True)], [Ack(request_id=2**64)], [Ack(request_id="7")],
                [VenueError("bad", None, -1)], [VenueError("bad", None, 1.0)],
                [Ack({"channel": "x"}, partial=1)], [Ack({}, partial=True)], [VenueError("bad", partial=None)],
                [VenueError("bad", {}, partial=True)], [VenueError("bad", partial=True)], [VenueError("bad", ["x"], partial=True)],
                [Authenticated(None)], [Authenticated("x" * 101)], [Authenticated(5)]):  # fmt: skip
        with pytest.raises(InvariantError):
            check_decoded(bad)
    with pytest.raises(InvariantError):
        check_decoded(tuple())


def test_market_listings() -> None:
    check_markets([MarketInfo(Venue.HYPERLIQUID, "@1", "HYPE/USDC", "spot", 4, 2)], Venue.HYPERLIQUID)
    check_markets([MarketInfo(Venue.POLYMARKET, "4195", "Rain? · Yes", "prediction", 2, 2, "0xab", "Yes")], Venue.POLYMARKET)
    check_markets([MarketInfo(Venue.PERPS_STUDIO, "rwas:hyperliquid:xyz:TSLA", "xyz:TSLA Tesla", "rwa", section="rwas", provider="hyperliquid")],
                  Venue.PERPS_STUDIO)  # fmt: skip
    for bad in (MarketInfo(Venue.ASTER, "BTC", "BTC", "perp"), MarketInfo(Venue.HYPERLIQUID, "", "x", "perp"),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", -1),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", event=""),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", outcome=5),  # type: ignore[arg-type]
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", section=""),
                MarketInfo(Venue.HYPERLIQUID, "BTC", "BTC", "perp", provider="x" * 101),
                MarketInfo(Venue.HYPERLIQUID, "x" * 129, "BTC", "perp")):  # fmt: skip
        with pytest.raises(InvariantError):
            check_markets([bad], Venue.HYPERLIQUID)
