"""Hypercall options exchange: one WebSocket (``/ws``), flat JSON messages tagged by ``type``.

Protocol facts (see the Hypercall wire reference and seed 002): a socket identifies its wallet
with ``{"type":"Authenticate","wallet":...}`` and waits for ``Authenticated`` (the echo compared
case-insensitively, as the official SDK does) before subscribing to private channels; an invalid
wallet gets an ``Error`` and the socket stays open. ``Subscribe``/``Unsubscribe`` carry optional
``symbols`` (bare underlyings or instrument names; a later Subscribe adds, an Unsubscribe with
symbols removes only those), ``expiry`` and ``option_type``; acks name only the channel, so one
ack answers the oldest unanswered subscribe of that channel. The server pings every 20 s and
closes 1008 "pong timeout" after 60 s without a pong (``websockets`` answers pings itself).
Decimals are strings, Greeks and IVs JSON numbers, times integer ms (a market's expiry seconds).
Unknown message types are ignored, as the SDK's catch-all does.

Where the docs and the SDK disagree, both shapes are read: ``OrderUpdate`` (docs: ``remaining_size``;
SDK: ``request{...}``), ``PortfolioUpdate`` (variants told apart by their fields, under the outer
``PortfolioUpdate`` tag or the SDK's variant name), the auction id (top level or inside
``full_liquidation``).

Design decisions, ours (the venue is silent; the emulator does the same):

* Streams: a book or trade stream per instrument (``symbols`` filter of one name); an options
  chain per underlying; ``index_prices`` as the venue's all-mids channel (underlying -> index);
  ``market_updates`` as listings; candles are the underlying's, ``candles:<UND>:<RES>``, payload
  ``{"type":"Candle","underlying","resolution","open_time","close_time","open",...}`` and REST
  history ``GET /candles?underlying=&resolution=&limit=`` (both undocumented: ours).
* Each ``OrderbookUpdate`` replaces the instrument's book (no sequence exists); a REST
  ``/orderbook`` snapshot (numbers, not strings) paints it first.
* Per-leg Greeks are position Greeks (the docs' example has aggregate equal to the one leg of
  quantity 2). The liquidation channel speaks only on a change: until the first, the state is
  derived from the portfolio's margin (:func:`app.account.derive_state`).
* Account streams ride their own socket (group ``account``), authenticated; public ones do not
  wait for authentication.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import UTC, datetime
from itertools import count
from typing import Any, ClassVar

import orjson

from app.account import OpenOrders
from app.model import (
    ACCOUNT_CHANNELS,
    AllMids,
    BookSnapshot,
    Candle,
    CandleHistory,
    ChainLeg,
    ChainRemoval,
    ChainRow,
    Channel,
    CompetitionSummary,
    Fill,
    Fills,
    Greeks,
    LegGreeks,
    LiquidationChange,
    LiquidationState,
    Listing,
    Margin,
    MarketEvent,
    MarketInfo,
    OrderUpdate,
    OrderUpdates,
    Position,
    PositionExpired,
    Positions,
    Side,
    StreamKey,
    Trade,
    Trades,
    Venue,
    freeze_params,
)
from app.record import parse_request
from app.venues import fields
from app.venues.base import (
    SHAPE_ERRORS,
    Ack,
    Authenticated,
    Data,
    DecodeError,
    Decoded,
    Endpoint,
    Handshake,
    Ignored,
    Liveness,
    VenueAdapter,
    VenueError,
    decoding,
    json_frame,
    malformed,
)

NETWORKS: dict[str, Endpoint] = {
    "mainnet": Endpoint("wss://api.hypercall.xyz/ws", "https://api.hypercall.xyz"),
    # The testnet REST host is inferred from the socket's (the docs name only the socket).
    "testnet": Endpoint("wss://testnet-api.hypercall.xyz/ws", "https://testnet-api.hypercall.xyz"),
}

RESOLUTIONS = ("1m", "5m", "15m", "1h", "4h", "1d")
BOOK_DEPTH = 15
HISTORY_BARS = 500
ACCOUNT = "account"  # the connection group of the authenticated channels

_WIRE: dict[Channel, str] = {
    Channel.BOOK: "orderbook",
    Channel.TRADES: "trades",
    Channel.ALL_MIDS: "index_prices",
    Channel.OPTIONS_CHAIN: "options_chain",
    Channel.LISTINGS: "market_updates",
    Channel.POSITIONS: "portfolio",
    Channel.LIQUIDATION: "liquidation",
    Channel.FILLS: "fills",
    Channel.ORDERS: "order_updates",
    Channel.COMPETITION: "competition",
}
_CHANNEL_OF_WIRE = {wire: channel for channel, wire in _WIRE.items()}
_PER_SYMBOL = (Channel.BOOK, Channel.TRADES)  # one stream per instrument (route has the symbol)
_STATES = {state.value.lower(): state for state in LiquidationState}
_PORTFOLIO_TYPES = frozenset(
    {"PortfolioUpdate", "Initial", "PositionUpdate", "BalanceUpdate", "MarginUpdate", "GreeksUpdate"}
)
_NAMES_CHANNEL = ("Invalid channel: ", "Authentication required for channel: ")


def underlying_of(symbol: str) -> str:
    """``BTC-20260131-100000-C`` -> ``BTC`` (an underlying names itself)."""
    return symbol.split("-", 1)[0]


class HypercallAdapter(VenueAdapter):
    venue = Venue.HYPERCALL
    channels = frozenset({*_WIRE, Channel.CANDLES})
    # Undocumented per-socket limits; the SDK's tier default is 600 REST requests a minute.
    max_subscriptions_per_connection = 200
    rest_weight_per_minute = 600
    max_messages_per_second = 10
    # The server pings every 20 s; we probe a silent socket ourselves after 10 s.
    liveness = Liveness(ping_interval=20.0, probe_after=10.0, pong_timeout=10.0)
    stale_after: ClassVar[dict[Channel, float]] = {Channel.ALL_MIDS: 10.0}
    funding_period = ""  # options: no funding
    # No close code is final: 1008 (pong timeout, slow consumer) asks for a reconnect.
    fatal_close_codes: ClassVar[dict[int, str]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trade_ids = count(1)  # trades carry no id; the tape needs one to tell two apart

    # --- subscriptions -------------------------------------------------------------------------

    def check(self, key: StreamKey) -> None:
        super().check(key)
        if key.channel in _PER_SYMBOL and not key.market:
            raise ValueError(f"hypercall {key.channel} needs an instrument")
        if key.channel is Channel.OPTIONS_CHAIN and not key.market:
            raise ValueError("hypercall options chain needs an underlying")
        if key.channel is Channel.CANDLES:
            if not key.market or "-" in key.market:
                raise ValueError("hypercall candles are an underlying's (e.g. BTC)")
            if key.param("interval", "1m") not in RESOLUTIONS:
                raise ValueError(f"unknown candle resolution {key.param('interval')!r}")

    def group(self, key: StreamKey) -> Hashable:
        if key.channel in ACCOUNT_CHANNELS:
            return ACCOUNT
        if key.channel is Channel.OPTIONS_CHAIN and (key.param("expiry") or key.param("option_type")):
            # Filters hold per socket and channel: a filtered chain cannot share one.
            return f"chain:{key.param('expiry') or ''}:{key.param('option_type') or ''}"
        return ()

    def handshake(self, group: Hashable) -> Handshake | None:
        if group != ACCOUNT or not self.wallet:
            return None
        return Handshake((orjson.dumps({"type": "Authenticate", "wallet": self.wallet}).decode(),))

    def chart_market(self, market: str) -> str:
        return underlying_of(market)

    def subscription(self, key: StreamKey) -> dict[str, Any]:
        if key.channel is Channel.CANDLES:
            return {"channel": f"candles:{key.market}:{key.param('interval', '1m')}"}
        subscription: dict[str, Any] = {"channel": _WIRE[key.channel]}
        if key.channel in _PER_SYMBOL or key.channel is Channel.OPTIONS_CHAIN:
            subscription["symbols"] = [key.market]
        elif symbols := key.param("symbols"):
            subscription["symbols"] = list(symbols)
        for option in ("expiry", "option_type"):
            if (value := key.param(option)) is not None:
                subscription[option] = value
        return subscription

    def route(self, key: StreamKey) -> Hashable:
        if key.channel is Channel.CANDLES:
            return ("candles", key.market, key.param("interval", "1m"))
        if key.channel in _PER_SYMBOL or key.channel is Channel.OPTIONS_CHAIN:
            return (_WIRE[key.channel], key.market)
        return (_WIRE[key.channel],)

    def subscribe_message(self, key: StreamKey) -> str:
        return orjson.dumps({"type": "Subscribe", **self.subscription(key)}).decode()

    def unsubscribe_message(self, key: StreamKey) -> str:
        return orjson.dumps({"type": "Unsubscribe", **self.subscription(key)}).decode()

    # --- inbound -------------------------------------------------------------------------------

    def decoder(self, group: Hashable) -> Callable[[str | bytes], list[Decoded]]:
        if group != ACCOUNT:
            return self.decode
        return lambda frame: self._check_identity(self.decode(frame))

    def _check_identity(self, decoded: list[Decoded]) -> list[Decoded]:
        """An ``Authenticated`` for another wallet than ours is a refusal, not an acceptance."""
        for i, item in enumerate(decoded):
            if isinstance(item, Authenticated) and item.identity.lower() != (self.wallet or "").lower():
                decoded[i] = VenueError(f"authenticated as another wallet ({fields.shown(item.identity)})")
        return decoded

    def decode(self, frame: str | bytes) -> list[Decoded]:
        message = json_frame(frame)
        kind: Any = None
        try:
            message = fields.obj(message, "frame")
            kind = message["type"]
            if not isinstance(kind, str):
                raise DecodeError(f"type is not a string: {fields.shown(kind)}")
            if kind in _PORTFOLIO_TYPES:
                return _decode_portfolio(message)
            decoder = _DECODERS.get(kind)
            if decoder is None:
                return [Ignored()]  # the SDK ignores types it does not know; so do we
            return decoder(self, message)
        except SHAPE_ERRORS as exc:
            raise malformed(exc, f"{kind} message" if isinstance(kind, str) else "frame") from None

    def _decode_trade(self, message: dict[str, Any]) -> list[Decoded]:
        symbol = fields.name(message["symbol"], "Trade.symbol")
        trade = Trade(
            market=symbol,
            price=fields.price(message["price"], "Trade.price"),
            size=fields.size(message["size"], "Trade.size"),
            side=_side(message["side"], "Trade.side"),
            time_ms=fields.time_ms(message["timestamp"], "Trade.timestamp"),
            trade_id=str(next(self._trade_ids)),
        )
        return [Data(("trades", symbol), Trades(symbol, [trade]))]

    # --- REST ----------------------------------------------------------------------------------

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        if key.channel is Channel.BOOK:
            raw = await self.rest.get_json("/orderbook", {"instrument_id": key.market, "depth": BOOK_DEPTH})
            return self.parse_snapshot(key, raw)
        if key.channel is Channel.CANDLES:
            query = {"underlying": key.market, "resolution": key.param("interval", "1m"), "limit": HISTORY_BARS}
            return self.parse_snapshot(key, await self.rest.get_json("/candles", query))
        if key.channel is Channel.POSITIONS:
            portfolio = await self.rest.get_json("/portfolio", {"wallet": self.wallet})
            greeks = await self.rest.get_json("/portfolio/greeks", {"wallet": self.wallet})
            return self.parse_snapshot(key, portfolio) + self.parse_snapshot(key, greeks)
        if key.channel is Channel.FILLS:
            return self.parse_snapshot(key, await self.rest.get_json("/fills", {"wallet": self.wallet}))
        if key.channel is Channel.ORDERS:
            raw = await self.rest.get_json("/orders", {"wallet": self.wallet, "status": "open"})
            return self.parse_snapshot(key, raw)
        return []

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        with decoding(f"{key.channel} snapshot"):
            if key.channel is Channel.BOOK:
                return [_rest_book(fields.obj(fields.obj(raw, "orderbook")["result"], "orderbook.result"))]
            if key.channel is Channel.CANDLES:
                candles = [_candle(row) for row in fields.array(_envelope(raw), "candles")]
                candles.sort(key=lambda candle: candle.open_time_ms)
                return [CandleHistory(key.market, key.param("interval", "1m"), candles)]
            if key.channel is Channel.POSITIONS:
                raw = fields.obj(raw, "portfolio")
                if "per_leg" in raw:
                    return [_greeks(raw)]
                events: list[MarketEvent] = [Positions([_position(p) for p in fields.array(raw["positions"], "positions")])]
                if isinstance(raw.get("span_margin"), dict):
                    events.append(_margin(raw))
                return events
            if key.channel is Channel.FILLS:
                return [Fills([_fill(row) for row in fields.array(_envelope(raw), "fills")], snapshot=True)]
            if key.channel is Channel.ORDERS:
                return [OpenOrders([_rest_order(row) for row in fields.array(_envelope(raw), "orders")])]
        return []

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        match route:
            case ("candles", str(underlying), str(resolution)):
                return StreamKey(self.venue, Channel.CANDLES, underlying, freeze_params({"interval": resolution}))
            case (str(wire), str(market)) if _CHANNEL_OF_WIRE.get(wire) in (*_PER_SYMBOL, Channel.OPTIONS_CHAIN):
                options = {}
                if isinstance(group, str) and group.startswith("chain:"):
                    _, expiry, option_type = group.split(":")
                    options = {k: v for k, v in (("expiry", expiry), ("option_type", option_type)) if v}
                return StreamKey(self.venue, _CHANNEL_OF_WIRE[wire], market, freeze_params(options))
            case (str(wire),) if wire in _CHANNEL_OF_WIRE:
                return StreamKey(self.venue, _CHANNEL_OF_WIRE[wire])
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is None or request.method != "GET":
            return None
        query = request.params
        match request.path:
            case "/orderbook" if "instrument_id" in query:
                return StreamKey(self.venue, Channel.BOOK, query["instrument_id"])
            case "/candles" if "underlying" in query:
                interval = query.get("resolution", "1m")
                return StreamKey(self.venue, Channel.CANDLES, query["underlying"], freeze_params({"interval": interval}))
            case "/portfolio" | "/portfolio/greeks":
                return StreamKey(self.venue, Channel.POSITIONS)
            case "/fills":
                return StreamKey(self.venue, Channel.FILLS)
            case "/orders":
                return StreamKey(self.venue, Channel.ORDERS)
        return None

    async def markets(self) -> list[MarketInfo]:
        raw = await self.rest.get_json("/markets")
        with decoding("markets"):
            return [
                _listing(instrument)
                for expiry in fields.array(_envelope(raw), "markets")
                for instrument in fields.array(fields.obj(expiry, "market")["instruments"], "instruments")
                if fields.obj(instrument, "instrument").get("status", "active") == "active"
            ]


# --- message decoders ---------------------------------------------------------------------------


def _side(raw: Any, what: str) -> Side:
    if isinstance(raw, str) and raw.lower() in ("buy", "sell"):
        return Side(raw.lower())
    raise DecodeError(f"{what} is not buy or sell: {fields.shown(raw)}")


def _levels(raw: Any, what: str) -> list[tuple[str, str]]:
    rows = fields.array(raw, what)
    for row in rows:
        if type(row) is not list or len(row) != 2:
            raise DecodeError(f"{what} level is not [price, size]")
    return list(zip(fields.prices([row[0] for row in rows], what), fields.sizes([row[1] for row in rows], what)))


def _decode_book(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    symbol = fields.name(message["symbol"], "OrderbookUpdate.symbol")
    bids, asks = _levels(message["bids"], "bid"), _levels(message["asks"], "ask")
    # A whole ladder each time; a zero size (never seen) would be no level at all.
    book = BookSnapshot(
        market=symbol,
        bids=[level for level in bids if _nonzero(level[1])],
        asks=[level for level in asks if _nonzero(level[1])],
        time_ms=fields.time_ms(message["timestamp"], "OrderbookUpdate.timestamp"),
    )
    return [Data(("orderbook", symbol), book)]


def _nonzero(size: str) -> bool:
    """A checked decimal with a non-zero digit (a strip in C: 7x the per-character test's speed,
    30 of them per book frame)."""
    return bool(size.strip("0."))


def _rest_book(result: dict[str, Any]) -> BookSnapshot:
    def levels(raw: Any, what: str) -> list[tuple[str, str]]:
        out = []
        for row in fields.array(raw, what):
            if type(row) is not list or len(row) != 2:
                raise DecodeError(f"{what} level is not [price, size]")
            price, size = fields.number_text(row[0], what), fields.number_text(row[1], what)
            out.append((fields.price(price, what), size))
        return [level for level in out if _nonzero(level[1])]

    return BookSnapshot(
        market=fields.name(result["instrument_name"], "orderbook.instrument_name"),
        bids=levels(result["bids"], "bid"),
        asks=levels(result["asks"], "ask"),
        time_ms=fields.time_ms(result["timestamp"], "orderbook.timestamp"),
    )


def _candle(raw: Any) -> Candle:
    candle = fields.obj(raw, "candle")
    return Candle(
        market=fields.name(candle["underlying"], "Candle.underlying"),
        interval=fields.name(candle["resolution"], "Candle.resolution"),
        open_time_ms=fields.time_ms(candle["open_time"], "Candle.open_time"),
        close_time_ms=fields.time_ms(candle["close_time"], "Candle.close_time"),
        open=fields.price(candle["open"], "Candle.open"),
        high=fields.price(candle["high"], "Candle.high"),
        low=fields.price(candle["low"], "Candle.low"),
        close=fields.price(candle["close"], "Candle.close"),
        volume=fields.size(candle["volume"], "Candle.volume"),
    )


def _decode_candle(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    candle = _candle(message)
    return [Data(("candles", candle.market, candle.interval), candle)]


def _decode_index(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    prices = {}
    for raw in fields.array(message["prices"], "IndexPriceUpdate.prices"):
        entry = fields.obj(raw, "index price")
        prices[fields.name(entry["underlying"], "index underlying")] = fields.price(entry["price"], "index price")
    return [Data(("index_prices",), AllMids(prices, partial=True))]


def _leg(raw: Any, what: str) -> ChainLeg | None:
    if raw is None:
        return None
    leg = fields.obj(raw, what)
    number, unsigned = fields.optional_number, _optional_unsigned  # Greeks may be negative; prices, IVs not
    greeks = leg.get("greeks_abs")
    greeks = fields.obj(greeks, f"{what}.greeks_abs") if greeks is not None else {}
    bid, ask = unsigned(leg.get("bid_price_usd"), f"{what}.bid"), unsigned(leg.get("ask_price_usd"), f"{what}.ask")
    bid_iv, ask_iv = unsigned(leg.get("bid_iv"), f"{what}.bid_iv"), unsigned(leg.get("ask_iv"), f"{what}.ask_iv")
    if not bid:  # a zero price is an empty side, not a quote (the emulator writes 0.0)
        bid = bid_iv = None
    if not ask:
        ask = ask_iv = None
    mark = unsigned(leg.get("mark_price_usd"), f"{what}.mark")
    if mark is None and bid is not None and ask is not None:
        mark = (bid + ask) / 2
    return ChainLeg(
        symbol=fields.name(leg["symbol"], f"{what}.symbol"),
        bid=bid,
        ask=ask,
        mark=mark,
        bid_iv=bid_iv,
        ask_iv=ask_iv,
        mark_iv=unsigned(leg.get("mark_iv"), f"{what}.mark_iv"),
        delta=number(greeks.get("delta"), f"{what}.delta"),
        gamma=number(greeks.get("gamma"), f"{what}.gamma"),
        theta=number(greeks.get("theta"), f"{what}.theta"),
        vega=number(greeks.get("vega"), f"{what}.vega"),
    )


def _decode_chain(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    underlying = fields.name(message["currency"], "OptionsChainUpdate.currency")
    expiry = _expiry_s(message["expiry"], "OptionsChainUpdate.expiry")
    action = message["action"]
    event: MarketEvent
    if action == "Upsert":
        row = fields.obj(message["row"], "OptionsChainUpdate.row")
        strike = fields.price(fields.number_text(row["strike"], "row.strike"), "row.strike")
        event = ChainRow(underlying, expiry, strike, _leg(row.get("call"), "call"), _leg(row.get("put"), "put"))
    elif action == "Remove":
        option_type = message["option_type"]
        if option_type not in ("call", "put"):
            raise DecodeError(f"option_type is not call or put: {fields.shown(option_type)}")
        strike = fields.price(fields.number_text(message["strike"], "strike"), "strike")
        event = ChainRemoval(underlying, expiry, strike, option_type, fields.name(message["symbol"], "symbol"))
    else:
        raise DecodeError(f"unknown options chain action {fields.shown(action)}")
    return [Data(("options_chain", underlying), event)]


def _decode_market_update(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    action = message["action"]
    if action not in ("Created", "Expired", "Deleted"):
        raise DecodeError(f"unknown market update action {fields.shown(action)}")
    symbol = fields.name(message["symbol"], "MarketUpdate.symbol")
    info = None
    if action != "Deleted":
        info = _instrument_info(
            symbol,
            fields.name(message["underlying"], "MarketUpdate.underlying"),
            _expiry_s(message["expiry"], "MarketUpdate.expiry"),
            fields.price(message["strike"], "MarketUpdate.strike"),
            "call" if fields.flag(message["is_call"], "MarketUpdate.is_call") else "put",
        )
    time_ms = fields.time_ms(message["timestamp"], "MarketUpdate.timestamp")
    return [Data(("market_updates",), Listing(action.lower(), symbol, info, time_ms))]


def _position(raw: Any) -> Position:
    position = fields.obj(raw, "position")
    symbol = fields.name(position["symbol"], "position.symbol")
    kind = position.get("instrument_type", "option")
    if kind not in ("option", "perp"):
        raise DecodeError(f"instrument_type is not option or perp: {fields.shown(kind)}")
    liquidation = fields.optional_decimal(position.get("liquidation_price"), "liquidation_price")
    return Position(
        market=symbol,
        underlying=fields.name(underlying_of(symbol), "position underlying"),  # "-X" names none
        kind=kind,
        size=fields.decimal_text(position["amount"], "position.amount", signed=True),
        entry_price=fields.optional_decimal(position.get("entry_price"), "entry_price"),
        unrealized_pnl=fields.optional_decimal(position.get("unrealized_pnl"), "unrealized_pnl", signed=True),
        liquidation_price=liquidation if liquidation and _nonzero(liquidation) else None,
        maintenance_margin=fields.optional_decimal(position.get("maintenance_margin"), "maintenance_margin"),
    )


def _margin(message: dict[str, Any]) -> Margin:
    span = fields.obj(message["span_margin"], "span_margin")
    return Margin(
        equity=fields.decimal_text(span["equity"], "span_margin.equity", signed=True),
        maintenance=fields.decimal_text(span["maintenance_margin_required"], "maintenance_margin_required"),
        initial=fields.optional_decimal(span.get("initial_margin_required"), "initial_margin_required"),
        available=fields.optional_decimal(message.get("available_balance"), "available_balance", signed=True),
        time_ms=_optional_time(message.get("timestamp")),
    )


def _greeks(message: dict[str, Any]) -> Greeks:
    legs = []
    for raw in fields.array(message["per_leg"], "per_leg"):
        leg = fields.obj(raw, "per_leg leg")
        legs.append(
            LegGreeks(
                market=fields.name(leg["symbol"], "leg.symbol"),
                quantity=fields.decimal_text(leg["quantity"], "leg.quantity", signed=True),
                delta=fields.number(leg["delta"], "leg.delta"),
                gamma=fields.number(leg["gamma"], "leg.gamma"),
                theta=fields.number(leg["theta"], "leg.theta"),
                vega=fields.number(leg["vega"], "leg.vega"),
                iv=_optional_unsigned(leg.get("iv"), "leg.iv"),
            )
        )
    aggregate = message.get("aggregate")
    if aggregate is not None:
        fields.obj(aggregate, "aggregate")  # the sum of the legs: recomputed, but checked
    elif legs:
        raise DecodeError("Greeks with legs but no aggregate")
    return Greeks(legs, _optional_time(message.get("timestamp")))


def _decode_portfolio(message: dict[str, Any]) -> list[Decoded]:
    """The portfolio variants by their fields (the reference's rule: the tag is ambiguous)."""
    route = ("portfolio",)
    if "per_leg" in message:
        return [Data(route, _greeks(message))]
    time_ms = _optional_time(message.get("timestamp"))
    if "positions" in message:
        positions = [_position(raw) for raw in fields.array(message["positions"], "positions")]
        return [Data(route, Positions(positions, replace=True, time_ms=time_ms))]
    if "position" in message:
        return [Data(route, Positions([_position(message["position"])], replace=False, time_ms=time_ms))]
    if "span_margin" in message:
        return [Data(route, _margin(message))]
    if "total_margin_used" in message:
        fields.decimal_text(message["total_margin_used"], "total_margin_used")
        return [Ignored()]  # a balance update: the margin update that follows carries equity
    raise DecodeError("PortfolioUpdate of no known variant")


def _decode_position_expired(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    expired = PositionExpired(
        market=fields.name(message["symbol"], "PositionExpired.symbol"),
        size=fields.decimal_text(message["position_size"], "position_size", signed=True),
        settlement_price=fields.decimal_text(message["settlement_price"], "settlement_price"),
        settlement_value=fields.decimal_text(message["settlement_value"], "settlement_value", signed=True),
        time_ms=fields.time_ms(message["timestamp"], "PositionExpired.timestamp"),
    )
    return [Data(("portfolio",), expired)]


def _state(raw: Any, what: str) -> LiquidationState:
    state = _STATES.get(raw.lower()) if isinstance(raw, str) else None
    if state is None:
        raise DecodeError(f"{what} is not a liquidation state: {fields.shown(raw)}")
    return state


def _decode_liquidation(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    auction = message.get("auction_id")
    full = message.get("full_liquidation")
    if auction is None and full is not None:
        auction = fields.obj(full, "full_liquidation").get("auction_id")
    previous = message.get("previous_state")
    change = LiquidationChange(
        state=_state(message["new_state"], "new_state"),
        previous=None if previous is None else _state(previous, "previous_state"),
        equity=fields.decimal_text(message["equity"], "equity", signed=True),
        maintenance=fields.decimal_text(message["mm_required"], "mm_required"),
        shortfall=fields.optional_decimal(message.get("shortfall"), "shortfall"),
        auction_id=None if auction is None else fields.name(str(auction), "auction_id"),
        time_ms=_optional_time(message.get("timestamp")),
    )
    return [Data(("liquidation",), change)]


def _fill(raw: Any) -> Fill:
    fill = fields.obj(raw, "Fill")
    return Fill(
        market=fields.name(fill["symbol"], "Fill.symbol"),
        side=_side(fill["side"], "Fill.side"),
        price=fields.price(fill["price"], "Fill.price"),
        size=fields.size(fill["size"], "Fill.size"),
        time_ms=fields.time_ms(fill["timestamp"], "Fill.timestamp"),
        fill_id=str(fields.integer(fill["fill_id"], "Fill.fill_id")),
        order_id=str(fields.integer(fill["order_id"], "Fill.order_id")),
        fee=fields.optional_decimal(fill.get("fee"), "Fill.fee", signed=True),
        taker=fill.get("is_taker") if isinstance(fill.get("is_taker"), bool) else None,
    )


def _decode_fill(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    return [Data(("fills",), Fills([_fill(message)]))]


def _decode_order(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    """Both shapes: the SDK's (``request{price,size,symbol,side}``, cumulative ``filled_size``)
    and the docs' (``remaining_size``, no symbol)."""
    order_id = str(fields.integer(message["order_id"], "OrderUpdate.order_id"))
    status = message["status"]
    if not isinstance(status, str) or not status:
        raise DecodeError(f"OrderUpdate.status is not a status: {fields.shown(status)}")
    filled = fields.optional_decimal(message.get("filled_size"), "filled_size")
    update = OrderUpdate(order_id, None, fields.name(status, "status").lower(), filled=filled)
    if (request := message.get("request")) is not None:
        request = fields.obj(request, "OrderUpdate.request")
        update.market = fields.name(request["symbol"], "request.symbol")
        update.side = _side(request["side"], "request.side")
        update.price = fields.price(request["price"], "request.price")
        update.size = fields.size(request["size"], "request.size")
    elif (remaining := message.get("remaining_size")) is not None:
        remaining = fields.size(remaining, "remaining_size")
        update.size = fields.exact_sum([remaining, filled or "0"], "remaining_size + filled_size")
        update.price = fields.optional_decimal(message.get("avg_fill_price"), "avg_fill_price")
    update.time_ms = _optional_time(message.get("timestamp"))
    if (reason := message.get("reason")) is not None:
        update.reason = fields.text(reason, "OrderUpdate.reason")
    return [Data(("order_updates",), OrderUpdates([update]))]


def _rest_order(raw: Any) -> OrderUpdate:
    order = fields.obj(raw, "order")
    return OrderUpdate(
        order_id=str(fields.integer(order["order_id"], "order.order_id")),
        market=fields.name(order["symbol"], "order.symbol"),
        status=fields.name(order.get("status") or "open", "order.status").lower(),
        side=_side(order["side"], "order.side"),
        price=fields.price(order["price"], "order.price"),
        size=fields.size(order["size"], "order.size"),
        filled=fields.optional_decimal(order.get("filled_size"), "order.filled_size"),
        time_ms=_optional_time(order.get("created_at")),
    )


def _decode_competition(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    active = message.get("active_competition")
    summary = CompetitionSummary(
        lifetime_pnl=fields.decimal_text(message["lifetime_realized_pnl"], "lifetime_realized_pnl", signed=True),
        time_ms=_optional_time(message.get("timestamp")),
    )
    if active is not None:
        active = fields.obj(active, "active_competition")
        summary.competition = fields.text(active["competition_name"], "competition_name", limit=100)
        rank = active.get("rank")
        summary.rank = None if rank is None else fields.integer(rank, "rank")
        summary.pnl = fields.optional_decimal(active.get("pnl"), "pnl", signed=True)
        summary.volume = fields.optional_decimal(active.get("volume"), "volume")
    return [Data(("competition",), summary)]


def _decode_ack(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    channel = fields.name(message["channel"], "channel")
    return [Ack({"channel": channel}, unsubscribe=message["type"] == "Unsubscribed", partial=True)]


def _decode_error(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    text = fields.text(message["message"], "Error.message")
    for prefix in _NAMES_CHANNEL:
        if text.startswith(prefix):  # the refusal names the channel: it is that channel's
            return [VenueError(text, {"channel": text[len(prefix) :]}, partial=True)]
    return [VenueError(text)]


def _decode_authenticated(_: HypercallAdapter, message: dict[str, Any]) -> list[Decoded]:
    return [Authenticated(fields.name(message["wallet"], "Authenticated.wallet"))]


def _optional_unsigned(raw: Any, what: str) -> float | None:
    """A finite number >= 0 (a chain price or an IV), or ``None``."""
    value = fields.optional_number(raw, what)
    if value is not None and value < 0:
        raise DecodeError(f"{what} is negative: {fields.shown(raw)}")
    return value


def _expiry_s(raw: Any, what: str) -> int:
    """An expiry in Unix seconds, in the range :func:`fields.time_ms` allows for milliseconds."""
    return fields.integer(raw, what, low=fields.MIN_TIME_MS // 1000, high=fields.MAX_TIME_MS // 1000)


def _optional_time(raw: Any) -> int | None:
    return None if raw is None else fields.time_ms(raw, "timestamp")


def _envelope(raw: Any) -> Any:
    """The ``data`` of a ``{"success","data","error"}`` answer (a refusal raises)."""
    raw = fields.obj(raw, "answer")
    if raw.get("success") is False:
        raise DecodeError(f"venue refused: {fields.shown(raw.get('error'))}")
    return raw["data"]


def _instrument_info(symbol: str, underlying: str, expiry_s: int, strike: str, option_type: str) -> MarketInfo:
    day = datetime.fromtimestamp(expiry_s, UTC).strftime("%d%b%y").upper()
    return MarketInfo(
        venue=Venue.HYPERCALL,
        market=symbol,
        display=f"{underlying} {day} {strike} {option_type[0].upper()}",
        kind="option",
    )


def _listing(raw: dict[str, Any]) -> MarketInfo:
    option_type = raw["option_type"]
    if option_type not in ("call", "put"):
        raise DecodeError(f"option_type is not call or put: {fields.shown(option_type)}")
    return _instrument_info(
        fields.name(raw["id"], "instrument id"),
        fields.name(raw["underlying"], "instrument underlying"),
        _expiry_s(raw["expiry"], "instrument expiry"),
        fields.price(raw["strike"], "instrument strike"),
        option_type,
    )


_DECODERS: dict[str, Callable[[HypercallAdapter, dict[str, Any]], list[Decoded]]] = {
    "OrderbookUpdate": _decode_book,
    "Trade": HypercallAdapter._decode_trade,
    "Candle": _decode_candle,
    "IndexPriceUpdate": _decode_index,
    "OptionsChainUpdate": _decode_chain,
    "MarketUpdate": _decode_market_update,
    "PositionExpired": _decode_position_expired,
    "LiquidationStateChange": _decode_liquidation,
    "Fill": _decode_fill,
    "OrderUpdate": _decode_order,
    "CompetitionPnlSummary": _decode_competition,
    "Subscribed": _decode_ack,
    "Unsubscribed": _decode_ack,
    "Error": _decode_error,
    "Authenticated": _decode_authenticated,
    "ClockSynced": lambda _, message: [Ignored()],
}
