"""What every decoded item may contain, stated independently of the adapter code.

These rules deliberately do not import :mod:`app.venues.fields`: they restate the contract from the
outside, so a bug in the shared readers is caught here rather than copied. A violation raises
:class:`InvariantError` (an ``AssertionError``) naming the offending field and value.

* Prices are ``str`` of ASCII digits with at most one point (``12``, ``12.5``, ``.5``), with a
  non-zero digit, at most 40 characters. Sizes the same, but zero is allowed.
* Ticker decimals (``last`` included) may be ``None``; the funding rate may carry a sign.
* Times (``time_ms``, ``open_time_ms``, ``close_time_ms``) are ``int`` (not ``bool``) Unix
  milliseconds in [2009-01-01, 2100-01-01).
* Interval and other names are non-empty ``str`` of at most 100 characters; market names of at
  most 128 (an aggregator names an upstream's market behind its section and provider:
  ``predictions:polymarket:`` and a 78-digit token id is 101).
* A ``Data`` item has a hashable route; a ``Trades`` batch's trades all share its market.
* ``AllMids.partial`` is a bool. ``BookInvalidated.reason`` is a non-empty str of at most 300
  characters (it is shown as the stream's state).
* A listing's ``event`` and ``outcome``, and an aggregator's ``section`` and ``provider``, where
  given, are names like its market.
* An ``Ack`` names what it acknowledges: its ``subscription`` (a dict), or, from a venue that acks
  by request id, its ``request_id`` (an int in [0, 2**64), not ``bool``) with no subscription.
  ``VenueError.message`` is a str; its ``request_id`` is ``None`` or such an int. ``partial`` (both)
  is a bool, and a partial echo is a non-empty dict: an empty one would fit every subscription (an
  error would refuse every stream of the socket). ``Authenticated.identity`` is a str of at most
  100 characters (empty: the venue echoed none).

Options and account events (:mod:`app.model`, "Options and account events"):

* Money and quantities that may be negative are signed decimals: a position's size and
  quantity, equity, available balance, PnL, fees, settlement value. Everything else decimal is
  unsigned; prices the venue quotes (a fill's, an order's, a strike) are > 0.
* Greeks, IVs and chain-leg prices are ``float`` (not ``int``, not ``bool``), finite and of magnitude
  below 1e18; IVs and chain-leg prices are >= 0 (an empty side is 0 or ``None``).
* An expiry (``expiry_s``) is an ``int`` of Unix seconds in [2009-01-01, 2100-01-01).
* Enumerations are the model's: ``Side``, ``LiquidationState``; option types ``call``/``put``;
  listing actions ``created``/``expired``/``deleted`` (``info`` ``None`` exactly for a deletion,
  else a listing of that market); position kinds ``perp``/``option``/``spot``; an order status
  is a lower-case name.
* Flags are ``bool``; ranks are ints in [0, 2**64); ``LiquidationChange.lasts`` is ``None`` or
  finite seconds > 0; text for people (an order's reason, a competition's name) as for listings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable
from typing import Any

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

MAX_DECIMAL_CHARS = 40
MAX_NAME_CHARS = 100
MAX_MARKET_CHARS = 128  # a name behind an aggregator's prefix: "predictions:polymarket:" + a 78-digit token is 101
MAX_DISPLAY_CHARS = 700  # a prediction's question (prose, up to 500) plus its outcome's name
MAX_REASON_CHARS = 300
MIN_TIME_MS = 1_230_768_000_000  # 2009-01-01T00:00:00Z
END_TIME_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z, excluded
MAX_NUMBER = 1e18  # Greeks, IVs and chain prices: finite and below this in magnitude
OPTION_TYPES = ("call", "put")
LISTING_ACTIONS = ("created", "expired", "deleted")
POSITION_KINDS = ("perp", "option", "spot")

# ASCII only: Python's ``\d`` also matches fullwidth and other Unicode digits.
_UNSIGNED = re.compile(r"[0-9]+(?:\.[0-9]+)?|\.[0-9]+")
_SIGNED = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)")
_NONZERO = re.compile(r"[1-9]")


class InvariantError(AssertionError):
    """A decoded item holds a value no adapter may let through: ``what`` breaks ``rule``."""

    def __init__(self, what: str, rule: str, value: Any) -> None:
        super().__init__(f"{what} {rule}: {_shown(value)}")
        self.what, self.rule, self.value = what, rule, value


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a deeply nested value: say what it is without walking it
        text = f"<deeply nested {type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _fail(what: str, rule: str, value: Any) -> None:
    raise InvariantError(what, rule, value)


# --- fields ---------------------------------------------------------------------------------------


def check_decimal(value: Any, what: str, *, positive: bool = False, signed: bool = False) -> None:
    if type(value) is not str:
        _fail(what, "is not a str", value)
    if len(value) > MAX_DECIMAL_CHARS:
        _fail(what, f"is longer than {MAX_DECIMAL_CHARS} characters", value)
    if (_SIGNED if signed else _UNSIGNED).fullmatch(value) is None:
        _fail(what, "is not a plain ASCII decimal", value)
    if positive and _NONZERO.search(value) is None:
        _fail(what, "is not > 0", value)


def check_price(value: Any, what: str = "price") -> None:
    check_decimal(value, what, positive=True)


def check_size(value: Any, what: str = "size") -> None:
    check_decimal(value, what)


def check_optional_decimal(value: Any, what: str, *, signed: bool = False) -> None:
    if value is not None:
        check_decimal(value, what, signed=signed)


def check_time(value: Any, what: str = "time_ms") -> None:
    if type(value) is not int:
        _fail(what, "is not an int", value)
    if not MIN_TIME_MS <= value < END_TIME_MS:
        _fail(what, "is outside [2009-01-01, 2100-01-01) in ms", value)


def check_optional_time(value: Any, what: str = "time_ms") -> None:
    if value is not None:
        check_time(value, what)


def check_count(value: Any, what: str) -> None:
    """A non-negative int (counts, sequence numbers), ``None`` allowed."""
    if value is None:
        return
    if type(value) is not int or value < 0 or value >= 2**64:
        _fail(what, "is not an int in [0, 2**64)", value)


def check_optional_price(value: Any, what: str) -> None:
    if value is not None:
        check_price(value, what)


def check_expiry(value: Any, what: str) -> None:
    """Unix seconds in [2009-01-01, 2100-01-01)."""
    if type(value) is not int:
        _fail(what, "is not an int", value)
    if not MIN_TIME_MS // 1000 <= value < END_TIME_MS // 1000:
        _fail(what, "is outside [2009-01-01, 2100-01-01) in seconds", value)


def check_number(value: Any, what: str, *, non_negative: bool = False) -> None:
    """A model output (Greek, IV, chain price): a finite ``float`` below 1e18 in magnitude."""
    if type(value) is not float:
        _fail(what, "is not a float", value)
    if not math.isfinite(value) or abs(value) >= MAX_NUMBER:
        _fail(what, "is not finite and below 1e18 in magnitude", value)
    if non_negative and value < 0:
        _fail(what, "is negative", value)


def check_optional_number(value: Any, what: str, *, non_negative: bool = False) -> None:
    if value is not None:
        check_number(value, what, non_negative=non_negative)


def check_bool(value: Any, what: str) -> None:
    if type(value) is not bool:
        _fail(what, "is not a bool", value)


def check_choice(value: Any, what: str, choices: tuple[str, ...]) -> None:
    if type(value) is not str or value not in choices:
        _fail(what, f"is not one of {', '.join(choices)}", value)


def check_side(value: Any, what: str) -> None:
    if not isinstance(value, Side):
        _fail(what, "is not a Side", value)


def check_list(value: Any, what: str) -> list[Any]:
    if type(value) is not list:
        _fail(what, "is not a list", value)
    return value


def check_name(value: Any, what: str = "market", limit: int = MAX_NAME_CHARS) -> None:
    if type(value) is not str:
        _fail(what, "is not a str", value)
    if not value or len(value) > limit:
        _fail(what, f"is not 1 to {limit} characters", value)


def check_market(value: Any, what: str = "market") -> None:
    """A market's name: a name, with room for an aggregator's ``<section>:<provider>:`` prefix."""
    check_name(value, what, MAX_MARKET_CHARS)


def check_text(value: Any, what: str) -> None:
    """Text for people (a display name): a non-empty str of bounded length."""
    if type(value) is not str:
        _fail(what, "is not a str", value)
    if not value or len(value) > MAX_DISPLAY_CHARS:
        _fail(what, f"is not 1 to {MAX_DISPLAY_CHARS} characters", value)


def check_level(level: Any, what: str, *, zero_size: bool = False) -> None:
    if type(level) is not tuple or len(level) != 2:
        _fail(what, "is not a (price, size) tuple", level)
    price, size = level
    check_price(price, f"{what} price")
    if zero_size:
        check_size(size, f"{what} size")
    else:
        check_decimal(size, f"{what} size")


def check_levels(levels: Any, what: str, *, zero_size: bool = False) -> None:
    if type(levels) is not list:
        _fail(what, "is not a list", levels)
    for index, level in enumerate(levels):
        check_level(level, f"{what}[{index}]", zero_size=zero_size)


# --- events ---------------------------------------------------------------------------------------


def _book_snapshot(event: BookSnapshot) -> None:
    check_market(event.market, "BookSnapshot.market")
    check_levels(event.bids, "BookSnapshot.bids")
    check_levels(event.asks, "BookSnapshot.asks")
    check_optional_time(event.time_ms, "BookSnapshot.time_ms")
    check_count(event.sequence, "BookSnapshot.sequence")


def _book_delta(event: BookDelta) -> None:
    check_market(event.market, "BookDelta.market")
    check_levels(event.bids, "BookDelta.bids", zero_size=True)
    check_levels(event.asks, "BookDelta.asks", zero_size=True)
    check_optional_time(event.time_ms, "BookDelta.time_ms")
    check_count(event.first_sequence, "BookDelta.first_sequence")
    check_count(event.last_sequence, "BookDelta.last_sequence")
    check_count(event.previous_sequence, "BookDelta.previous_sequence")


def _book_invalidated(event: BookInvalidated) -> None:
    check_market(event.market, "BookInvalidated.market")
    if type(event.reason) is not str:
        _fail("BookInvalidated.reason", "is not a str", event.reason)
    if not event.reason or len(event.reason) > MAX_REASON_CHARS:
        _fail("BookInvalidated.reason", f"is not 1 to {MAX_REASON_CHARS} characters", event.reason)


def _trade(trade: Any, what: str) -> None:
    if type(trade) is not Trade:
        _fail(what, "is not a Trade", trade)
    check_market(trade.market, f"{what}.market")
    check_price(trade.price, f"{what}.price")
    check_size(trade.size, f"{what}.size")
    check_side(trade.side, f"{what}.side")
    check_time(trade.time_ms, f"{what}.time_ms")
    check_name(trade.trade_id, f"{what}.trade_id")


def _trades(event: Trades) -> None:
    check_market(event.market, "Trades.market")
    if type(event.trades) is not list:
        _fail("Trades.trades", "is not a list", event.trades)
    for index, trade in enumerate(event.trades):
        _trade(trade, f"Trades.trades[{index}]")
        if trade.market != event.market:
            _fail(f"Trades.trades[{index}].market", f"differs from the batch's {event.market!r}", trade.market)
    if type(event.backlog) is not bool:
        _fail("Trades.backlog", "is not a bool", event.backlog)


def _candle(event: Any, what: str = "Candle") -> None:
    if type(event) is not Candle:
        _fail(what, "is not a Candle", event)
    check_market(event.market, f"{what}.market")
    check_name(event.interval, f"{what}.interval")
    check_time(event.open_time_ms, f"{what}.open_time_ms")
    check_time(event.close_time_ms, f"{what}.close_time_ms")
    for field in ("open", "high", "low", "close"):
        check_price(getattr(event, field), f"{what}.{field}")
    check_size(event.volume, f"{what}.volume")
    check_count(event.trade_count, f"{what}.trade_count")


def _candle_history(event: CandleHistory) -> None:
    check_market(event.market, "CandleHistory.market")
    check_name(event.interval, "CandleHistory.interval")
    if type(event.candles) is not list:
        _fail("CandleHistory.candles", "is not a list", event.candles)
    for index, candle in enumerate(event.candles):
        _candle(candle, f"CandleHistory.candles[{index}]")


def _ticker(event: Ticker) -> None:
    check_market(event.market, "Ticker.market")
    for field in ("mark", "mid", "index", "open_interest", "volume_24h", "prev_day_price", "last"):
        check_optional_decimal(getattr(event, field), f"Ticker.{field}")
    check_optional_decimal(event.funding_rate, "Ticker.funding_rate", signed=True)
    check_optional_time(event.time_ms, "Ticker.time_ms")


def _bbo(event: Bbo) -> None:
    check_market(event.market, "Bbo.market")
    for field in ("bid", "ask"):
        level = getattr(event, field)
        if level is not None:
            check_level(level, f"Bbo.{field}")
    check_optional_time(event.time_ms, "Bbo.time_ms")


def _all_mids(event: AllMids) -> None:
    if type(event.mids) is not dict:
        _fail("AllMids.mids", "is not a dict", event.mids)
    if type(event.partial) is not bool:
        _fail("AllMids.partial", "is not a bool", event.partial)
    for market, mid in event.mids.items():
        check_market(market, "AllMids market")
        check_size(mid, f"AllMids[{market!r}]")


# --- options and account events -------------------------------------------------------------------


def _chain_leg(leg: Any, what: str) -> None:
    if leg is None:
        return
    if type(leg) is not ChainLeg:
        _fail(what, "is not a ChainLeg", leg)
    check_name(leg.symbol, f"{what}.symbol")
    for field in ("bid", "ask", "mark", "bid_iv", "ask_iv", "mark_iv"):
        check_optional_number(getattr(leg, field), f"{what}.{field}", non_negative=True)
    for field in ("delta", "gamma", "theta", "vega"):
        check_optional_number(getattr(leg, field), f"{what}.{field}")


def _chain_row(event: ChainRow) -> None:
    check_name(event.underlying, "ChainRow.underlying")
    check_expiry(event.expiry_s, "ChainRow.expiry_s")
    check_price(event.strike, "ChainRow.strike")
    _chain_leg(event.call, "ChainRow.call")
    _chain_leg(event.put, "ChainRow.put")


def _chain_removal(event: ChainRemoval) -> None:
    check_name(event.underlying, "ChainRemoval.underlying")
    check_expiry(event.expiry_s, "ChainRemoval.expiry_s")
    check_price(event.strike, "ChainRemoval.strike")
    check_choice(event.option_type, "ChainRemoval.option_type", OPTION_TYPES)
    check_name(event.symbol, "ChainRemoval.symbol")


def _listing(event: Listing) -> None:
    check_choice(event.action, "Listing.action", LISTING_ACTIONS)
    check_market(event.market, "Listing.market")
    if event.action == "deleted":
        if event.info is not None:
            _fail("Listing.info", "is not None for a deletion", event.info)
    else:
        check_market_info(event.info, "Listing.info")
        if event.info.market != event.market:
            _fail("Listing.info.market", f"differs from the listing's {event.market!r}", event.info.market)
    check_time(event.time_ms, "Listing.time_ms")


def _position(position: Any, what: str) -> None:
    if type(position) is not Position:
        _fail(what, "is not a Position", position)
    check_market(position.market, f"{what}.market")
    check_name(position.underlying, f"{what}.underlying")
    check_choice(position.kind, f"{what}.kind", POSITION_KINDS)
    check_decimal(position.size, f"{what}.size", signed=True)
    for field in ("entry_price", "mark_price", "liquidation_price", "maintenance_margin"):
        check_optional_decimal(getattr(position, field), f"{what}.{field}")
    check_optional_decimal(position.unrealized_pnl, f"{what}.unrealized_pnl", signed=True)


def _positions(event: Positions) -> None:
    for index, position in enumerate(check_list(event.positions, "Positions.positions")):
        _position(position, f"Positions.positions[{index}]")
    check_bool(event.replace, "Positions.replace")
    check_optional_time(event.time_ms, "Positions.time_ms")


def _margin(event: Margin) -> None:
    check_decimal(event.equity, "Margin.equity", signed=True)
    check_decimal(event.maintenance, "Margin.maintenance")
    check_optional_decimal(event.initial, "Margin.initial")
    check_optional_decimal(event.available, "Margin.available", signed=True)
    check_optional_time(event.time_ms, "Margin.time_ms")


def _leg_greeks(leg: Any, what: str) -> None:
    if type(leg) is not LegGreeks:
        _fail(what, "is not a LegGreeks", leg)
    check_market(leg.market, f"{what}.market")
    check_decimal(leg.quantity, f"{what}.quantity", signed=True)
    for field in ("delta", "gamma", "theta", "vega"):
        check_number(getattr(leg, field), f"{what}.{field}")
    check_optional_number(leg.iv, f"{what}.iv", non_negative=True)


def _greeks(event: Greeks) -> None:
    for index, leg in enumerate(check_list(event.legs, "Greeks.legs")):
        _leg_greeks(leg, f"Greeks.legs[{index}]")
    check_optional_time(event.time_ms, "Greeks.time_ms")


def _position_expired(event: PositionExpired) -> None:
    check_market(event.market, "PositionExpired.market")
    check_decimal(event.size, "PositionExpired.size", signed=True)
    check_decimal(event.settlement_price, "PositionExpired.settlement_price")
    check_decimal(event.settlement_value, "PositionExpired.settlement_value", signed=True)
    check_time(event.time_ms, "PositionExpired.time_ms")


def _liquidation_change(event: LiquidationChange) -> None:
    if not isinstance(event.state, LiquidationState):
        _fail("LiquidationChange.state", "is not a LiquidationState", event.state)
    if event.previous is not None and not isinstance(event.previous, LiquidationState):
        _fail("LiquidationChange.previous", "is not a LiquidationState", event.previous)
    check_optional_decimal(event.equity, "LiquidationChange.equity", signed=True)
    check_optional_decimal(event.maintenance, "LiquidationChange.maintenance")
    check_optional_decimal(event.shortfall, "LiquidationChange.shortfall")
    if event.auction_id is not None:
        check_name(event.auction_id, "LiquidationChange.auction_id")
    check_optional_time(event.time_ms, "LiquidationChange.time_ms")
    lasts = event.lasts
    if lasts is not None and (type(lasts) not in (int, float) or not math.isfinite(lasts) or not 0 < lasts < MAX_NUMBER):
        _fail("LiquidationChange.lasts", "is not None or finite seconds > 0", lasts)


def _fill(fill: Any, what: str) -> None:
    if type(fill) is not Fill:
        _fail(what, "is not a Fill", fill)
    check_market(fill.market, f"{what}.market")
    check_side(fill.side, f"{what}.side")
    check_price(fill.price, f"{what}.price")
    check_size(fill.size, f"{what}.size")
    check_time(fill.time_ms, f"{what}.time_ms")
    check_name(fill.fill_id, f"{what}.fill_id")
    if fill.order_id is not None:
        check_name(fill.order_id, f"{what}.order_id")
    check_optional_decimal(fill.fee, f"{what}.fee", signed=True)
    if fill.taker is not None:
        check_bool(fill.taker, f"{what}.taker")
    check_bool(fill.liquidation, f"{what}.liquidation")


def _fills(event: Fills) -> None:
    for index, fill in enumerate(check_list(event.fills, "Fills.fills")):
        _fill(fill, f"Fills.fills[{index}]")
    check_bool(event.snapshot, "Fills.snapshot")


def _order_update(order: Any, what: str) -> None:
    if type(order) is not OrderUpdate:
        _fail(what, "is not an OrderUpdate", order)
    check_name(order.order_id, f"{what}.order_id")
    if order.market is not None:
        check_market(order.market, f"{what}.market")
    check_name(order.status, f"{what}.status")
    if order.status != order.status.lower():
        _fail(f"{what}.status", "is not lower case", order.status)
    if order.side is not None:
        check_side(order.side, f"{what}.side")
    check_optional_price(order.price, f"{what}.price")
    check_optional_decimal(order.size, f"{what}.size")
    check_optional_decimal(order.filled, f"{what}.filled")
    check_optional_time(order.time_ms, f"{what}.time_ms")
    if order.reason is not None:
        check_text(order.reason, f"{what}.reason")


def _order_updates(event: OrderUpdates) -> None:
    for index, order in enumerate(check_list(event.orders, "OrderUpdates.orders")):
        _order_update(order, f"OrderUpdates.orders[{index}]")


def _competition(event: CompetitionSummary) -> None:
    check_decimal(event.lifetime_pnl, "CompetitionSummary.lifetime_pnl", signed=True)
    if event.competition is not None:
        check_text(event.competition, "CompetitionSummary.competition")
    if event.rank is not None:
        check_count(event.rank, "CompetitionSummary.rank")
    check_optional_decimal(event.pnl, "CompetitionSummary.pnl", signed=True)
    check_optional_decimal(event.volume, "CompetitionSummary.volume")
    check_optional_time(event.time_ms, "CompetitionSummary.time_ms")


_EVENT_CHECKS: dict[type, Any] = {
    BookSnapshot: _book_snapshot,
    BookDelta: _book_delta,
    BookInvalidated: _book_invalidated,
    Trades: _trades,
    Candle: _candle,
    CandleHistory: _candle_history,
    Ticker: _ticker,
    Bbo: _bbo,
    AllMids: _all_mids,
    ChainRow: _chain_row,
    ChainRemoval: _chain_removal,
    Listing: _listing,
    Positions: _positions,
    Margin: _margin,
    Greeks: _greeks,
    PositionExpired: _position_expired,
    LiquidationChange: _liquidation_change,
    Fills: _fills,
    OrderUpdates: _order_updates,
    CompetitionSummary: _competition,
}


def check_event(event: Any) -> None:
    """Assert that ``event`` is a :data:`~app.model.MarketEvent` holding only valid values."""
    # By the nearest model class: a subclass (app.account's OpenOrders) is checked as what it extends.
    check = next((_EVENT_CHECKS[cls] for cls in type(event).__mro__ if cls in _EVENT_CHECKS), None)
    if check is None:
        _fail("event", "is not a MarketEvent", event)
    check(event)


def _check_request_id(value: Any, what: str) -> None:
    if type(value) is not int or not 0 <= value < 2**64:
        _fail(what, "is not an int in [0, 2**64)", value)


def check_item(item: Any) -> None:
    """Assert that one item of ``adapter.decode()``'s result is valid."""
    kind = type(item)
    if kind is Data:
        if not isinstance(item.route, Hashable):
            _fail("Data.route", "is not hashable", item.route)
        try:
            hash(item.route)
        except TypeError:
            _fail("Data.route", "is not hashable", item.route)
        check_event(item.event)
    elif kind is Ack:
        if item.subscription is None and item.request_id is not None:
            _check_request_id(item.request_id, "Ack.request_id")
        elif type(item.subscription) is not dict:
            _fail("Ack.subscription", "is not a dict", item.subscription)
        elif item.request_id is not None:
            _check_request_id(item.request_id, "Ack.request_id")
        if type(item.unsubscribe) is not bool:
            _fail("Ack.unsubscribe", "is not a bool", item.unsubscribe)
        _check_partial(item.partial, item.subscription, "Ack")
    elif kind is VenueError:
        if type(item.message) is not str:
            _fail("VenueError.message", "is not a str", item.message)
        if item.request_id is not None:
            _check_request_id(item.request_id, "VenueError.request_id")
        _check_partial(item.partial, item.subscription, "VenueError")
    elif kind is Authenticated:
        if type(item.identity) is not str:
            _fail("Authenticated.identity", "is not a str", item.identity)
        if len(item.identity) > MAX_NAME_CHARS:
            _fail("Authenticated.identity", f"is longer than {MAX_NAME_CHARS} characters", item.identity)
    elif kind not in (Pong, Ignored):
        _fail("decoded item", "is not Data, Ack, VenueError, Pong, Ignored or Authenticated", item)


def _check_partial(partial: Any, subscription: Any, what: str) -> None:
    """``partial`` is a bool; a partial echo is matched as a subset of our subscriptions, so it
    must name something (an empty one fits every subscription on the socket)."""
    if type(partial) is not bool:
        _fail(f"{what}.partial", "is not a bool", partial)
    if partial and (type(subscription) is not dict or not subscription):
        _fail(f"{what}.subscription", "of a partial echo is not a non-empty dict", subscription)


def check_decoded(items: Any) -> None:
    """Assert that ``adapter.decode()`` returned a list of valid items."""
    if type(items) is not list:
        _fail("decode() result", "is not a list", items)
    for item in items:
        check_item(item)


def check_events(events: Any) -> None:
    """Assert that ``adapter.snapshot()`` returned a list of valid market events."""
    if type(events) is not list:
        _fail("snapshot() result", "is not a list", events)
    for event in events:
        check_event(event)


def check_markets(markets: Any, venue: Venue) -> None:
    """Assert that ``adapter.markets()`` returned valid listings of ``venue``."""
    if type(markets) is not list:
        _fail("markets() result", "is not a list", markets)
    for index, info in enumerate(markets):
        what = f"markets()[{index}]"
        check_market_info(info, what)
        if info.venue is not venue:
            _fail(f"{what}.venue", f"is not {venue}", info.venue)


def check_market_info(info: Any, what: str) -> None:
    """One listing (of ``markets()``, or of a :class:`~app.model.Listing` event)."""
    if type(info) is not MarketInfo:
        _fail(what, "is not a MarketInfo", info)
    if not isinstance(info.venue, Venue):
        _fail(f"{what}.venue", "is not a Venue", info.venue)
    check_market(info.market, f"{what}.market")
    check_text(info.display, f"{what}.display")
    check_name(info.kind, f"{what}.kind")
    for field in ("event", "outcome", "section", "provider"):
        if getattr(info, field) is not None:
            check_name(getattr(info, field), f"{what}.{field}")
    for field in ("price_decimals", "size_decimals"):
        value = getattr(info, field)
        if value is not None and (type(value) is not int or not 0 <= value <= 30):
            _fail(f"{what}.{field}", "is not an int in [0, 30]", value)
