"""Perpex: perps executed on Hyperliquid, behind a JWT, ten subscriptions a socket.

Protocol facts (seed 003): REST ``/api/v1/markets``, ``orderbook/:symbol``, ``account``,
``trades`` (own trades, paged), orders; a JWT Bearer token on authenticated requests; 120 REST
requests a minute per API key (429 beyond); WebSocket channels ``trades``, ``orderbook``
(configurable depth), ``positions`` (position changes and liquidation alerts) and ``candles``; 10
subscriptions per connection; a ping frame from the server after 30 s of silence. Everything on
the wire beyond that is our reference's design (``{"op":...}`` messages, ``seq`` per socket and
stream starting at 1 with a snapshot), which the emulator implements.

How this adapter meets the limits: public streams share sockets of at most ten subscriptions (the
service opens another socket for the eleventh and moves streams back when room frees); the
account's ``positions`` has a socket of its own, authenticated by the ``Authorization`` header on
the upgrade (a token refused there is HTTP 401: FAILED, not retried). The REST limiter is shared by
everything that uses the token (:func:`app.rest.shared_limiter`). The token is the user's
(``PERPTERM_PERPEX_TOKEN``); one past its ``exp`` is refused before dialling, and one expiring
mid-session (``TOKEN_EXPIRED``) ends the account socket with that reason.

Design decisions, ours:

* A subscription's ``id`` names it (``orderbook:BTC-USD``), so an error answering it by id
  refuses exactly that stream; the ``auth`` message is not used (the header does it).
* A book gap (``seq`` not last + 1) is resynced on the socket: unsubscribe and subscribe again,
  which restarts the stream at a new snapshot (``seq`` 1). The REST book's ``seq`` counts the
  venue's book changes, not this socket's messages, so it cannot be joined to a socket's deltas.
* ``positions`` feeds two streams: positions with margin, and the liquidation state.
  ``liquidation_warning`` is Warning for 15 s (the venue repeats it every 10 s while it holds),
  ``liquidated`` is Liquidating for 60 s; margin decides in between (every positions message
  carries the account's equity and maintenance).
* The ticker is ``GET /api/v1/markets`` every 5 s and fills are the first page of own trades every
  10 s (the venue streams neither): 18 of the 120 requests a minute.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import orjson

from app.model import (
    ACCOUNT_CHANNELS,
    BookDelta,
    BookSnapshot,
    Candle,
    CandleHistory,
    Channel,
    Fill,
    Fills,
    Level,
    LiquidationChange,
    LiquidationState,
    Margin,
    MarketEvent,
    MarketInfo,
    Position,
    Positions,
    Side,
    StreamKey,
    Ticker,
    Trade,
    Trades,
    Venue,
    freeze_params,
)
from app.record import parse_request
from app.state import BookData, BookSync, StreamData, new_state
from app.tokens import GivenToken, TokenSource
from app.venues import fields
from app.venues.base import (
    SHAPE_ERRORS,
    Ack,
    Data,
    DecodeError,
    Decoded,
    Dial,
    Endpoint,
    Ignored,
    Liveness,
    Pong,
    VenueAdapter,
    VenueError,
    decoding,
    json_frame,
    malformed,
)

NETWORKS: dict[str, Endpoint] = {
    "mainnet": Endpoint("wss://ws.perpex.io", "https://api.perpex.io"),
}

DEPTHS = (5, 10, 20, 50)
DEFAULT_DEPTH = 20
INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
WARNING_SHOWN = 15.0  # seconds a liquidation warning holds (the venue repeats it every 10 s)
LIQUIDATED_SHOWN = 60.0
FILLS_PAGE = 50
TOKEN_VARIABLE = "PERPTERM_PERPEX_TOKEN"

_WIRE = {Channel.BOOK: "orderbook", Channel.TRADES: "trades", Channel.CANDLES: "candles"}
_ACCOUNT_ROUTE = {Channel.POSITIONS: ("positions",), Channel.LIQUIDATION: ("liquidation",), Channel.FILLS: ("fills",)}


class PerpexAdapter(VenueAdapter):
    venue = Venue.PERPEX
    channels = frozenset({*_WIRE, Channel.TICKER, Channel.POSITIONS, Channel.LIQUIDATION, Channel.FILLS})
    max_subscriptions_per_connection = 10  # the venue's limit: the 11th is refused
    max_messages_per_second = 10  # the emulator closes 4029 above 20 a second
    rest_weight_per_minute = 120
    rest_limit_per_key = True
    polled: ClassVar[dict[Channel, float]] = {Channel.TICKER: 5.0, Channel.FILLS: 10.0}
    # The server pings after 30 s of silence from us; our pings every 20 s keep it from having to.
    liveness = Liveness(ping_interval=20.0, probe_after=5.0, pong_timeout=5.0)
    funding_period = "1h"  # Hyperliquid's, where Perpex executes
    account_missing = f"no token configured ({TOKEN_VARIABLE})"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        token = self.credentials.token
        self.tokens: TokenSource | None = None if token is None else GivenToken(token, TOKEN_VARIABLE)
        if token is not None:
            self.rest.headers["Authorization"] = f"Bearer {token.get_secret_value()}"

    @property
    def has_account(self) -> bool:
        return self.tokens is not None

    # --- subscriptions -------------------------------------------------------------------------

    def check(self, key: StreamKey) -> None:
        super().check(key)
        if key.channel in ACCOUNT_CHANNELS:
            return
        if not key.market:
            raise ValueError(f"perpex {key.channel} needs a symbol")
        if key.channel is Channel.BOOK and key.param("depth", DEFAULT_DEPTH) not in DEPTHS:
            raise ValueError(f"perpex book depth is one of {', '.join(map(str, DEPTHS))}")
        if key.channel is Channel.CANDLES and key.param("interval", "1m") not in INTERVAL_MS:
            raise ValueError(f"perpex has no {key.param('interval')!r} candles")

    def group(self, key: StreamKey) -> Hashable:
        return "account" if key.channel in ACCOUNT_CHANNELS else "public"

    async def dial(self, group: Hashable, keys: Sequence[StreamKey] = ()) -> Dial:
        if group != "account" or self.tokens is None:
            return Dial(self.endpoint.ws_url)
        token = await self.tokens.token()  # Refused when it has expired
        return Dial(self.endpoint.ws_url, headers=(("Authorization", f"Bearer {token}"),))

    def state_for(self, key: StreamKey) -> StreamData:
        if key.channel is Channel.BOOK:
            return BookData(BookSync.SOCKET_SEQUENCED)
        return new_state(key.channel)

    def subscription(self, key: StreamKey) -> dict[str, Any]:
        if key.channel in ACCOUNT_CHANNELS:
            return {"channel": "positions"}
        subscription: dict[str, Any] = {"channel": _WIRE.get(key.channel, str(key.channel)), "symbol": key.market}
        if key.channel is Channel.CANDLES:
            subscription["interval"] = key.param("interval", "1m")
        return subscription

    def route(self, key: StreamKey) -> Hashable:
        if key.channel in _ACCOUNT_ROUTE:
            return _ACCOUNT_ROUTE[key.channel]
        if key.channel is Channel.CANDLES:
            return ("candles", key.market, key.param("interval", "1m"))
        return (_WIRE.get(key.channel, str(key.channel)), key.market)

    def _request(self, op: str, key: StreamKey) -> str:
        message = {"op": op, **self.subscription(key), "id": _request_id(self.subscription(key))}
        if op == "subscribe" and key.channel is Channel.BOOK:
            message["depth"] = key.param("depth", DEFAULT_DEPTH)
        return orjson.dumps(message).decode()

    def subscribe_messages(self, keys: list[StreamKey], request_id: int, *, initial: bool = False) -> list[str]:
        # Positions and liquidation share one subscription; asking twice is acked as a no-op.
        return list(dict.fromkeys(self._request("subscribe", key) for key in keys))

    def unsubscribe_messages(self, keys: list[StreamKey], request_id: int, *, remaining: list[StreamKey]) -> list[str]:
        kept = {_request_id(self.subscription(key)) for key in remaining}
        return list(dict.fromkeys(
            self._request("unsubscribe", key) for key in keys if _request_id(self.subscription(key)) not in kept
        ))  # fmt: skip

    def resync_messages(self, key: StreamKey) -> list[str] | None:
        if key.channel is Channel.BOOK:
            return [self._request("unsubscribe", key), self._request("subscribe", key)]
        return None

    def ping_message(self) -> str:
        return '{"op":"ping"}'

    # --- inbound -------------------------------------------------------------------------------

    def decode(self, frame: str | bytes) -> list[Decoded]:
        message = json_frame(frame)
        channel: Any = None
        try:
            message = fields.obj(message, "frame")
            op = message["op"]
            if op in ("snapshot", "update"):
                channel = message["channel"]
                decode = _DECODERS.get(channel) if isinstance(channel, str) else None
                if decode is None:
                    raise DecodeError(f"unknown channel {fields.shown(channel)}")
                return decode(message, op == "snapshot")
            if op in ("subscribed", "unsubscribed"):
                echo = {name: message[name] for name in ("channel", "symbol", "interval") if name in message}
                return [Ack(echo, unsubscribe=op == "unsubscribed")]
            if op == "error":
                return [_error(message)]
            if op == "pong":
                return [Pong()]
            if op == "auth":
                return [Ignored()]
            raise DecodeError(f"unknown op {fields.shown(op)}")
        except SHAPE_ERRORS as exc:
            raise malformed(exc, f"{channel} message" if isinstance(channel, str) else "frame") from None

    # --- REST ----------------------------------------------------------------------------------

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        if key.channel is Channel.POSITIONS:
            return self.parse_snapshot(key, await self.rest.get_json("/api/v1/account"))
        if key.channel is Channel.FILLS:
            return self.parse_snapshot(key, await self.rest.get_json("/api/v1/trades", {"limit": FILLS_PAGE}))
        if key.channel is Channel.TICKER:
            # ``symbol`` filters nothing the venue documents; it names the stream in a recording.
            return self.parse_snapshot(key, await self.rest.get_json("/api/v1/markets", {"symbol": key.market}))
        return []

    async def own_trades(self, symbol: str | None = None, *, pages: int = 10, limit: int = 100) -> list[Fill]:
        """The account's trades, newest first, following ``nextCursor`` for at most ``pages``
        pages (each one request of the minute's 120)."""
        fills: list[Fill] = []
        params: dict[str, Any] = {"limit": limit, **({"symbol": symbol} if symbol else {})}
        for _ in range(pages):
            raw = await self.rest.get_json("/api/v1/trades", params)
            with decoding("trades page"):
                page = fields.obj(raw, "trades page")
                fills.extend(_fill(fields.obj(row, "trade")) for row in fields.array(page["data"], "trades"))
                cursor = page.get("nextCursor")
            if cursor is None:
                break
            params["cursor"] = fields.name(cursor, "nextCursor")
        return fills

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        with decoding(f"{key.channel} snapshot"):
            if key.channel is Channel.POSITIONS:
                account = fields.obj(raw, "account")
                positions = [_position(fields.obj(row, "position")) for row in fields.array(account["positions"], "positions")]
                return [Positions(positions, replace=True), _margin(account)]
            if key.channel is Channel.FILLS:
                rows = fields.array(fields.obj(raw, "trades page")["data"], "trades")
                return [Fills([_fill(fields.obj(row, "trade")) for row in rows], snapshot=True)]
            if key.channel is Channel.TICKER:
                for row in fields.array(fields.obj(raw, "markets")["data"], "markets"):
                    market = fields.obj(row, "market")
                    if market.get("symbol") == key.market:
                        return [_ticker(market)]
                raise DecodeError(f"markets does not list {fields.shown(key.market)}")
        return []

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        match route:
            case (str(name),) if name in ("positions", "liquidation", "fills"):
                channel = {"positions": Channel.POSITIONS, "liquidation": Channel.LIQUIDATION, "fills": Channel.FILLS}[name]
                return StreamKey(self.venue, channel)
            case ("candles", str(symbol), str(interval)):
                return StreamKey(self.venue, Channel.CANDLES, symbol, freeze_params({"interval": interval}))
            case ("orderbook", str(symbol)):
                return StreamKey(self.venue, Channel.BOOK, symbol)
            case ("trades", str(symbol)):
                return StreamKey(self.venue, Channel.TRADES, symbol)
            case ("ticker", str(symbol)):
                return StreamKey(self.venue, Channel.TICKER, symbol)
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is None or request.method != "GET":
            return None
        match request.path:
            case "/api/v1/account":
                return StreamKey(self.venue, Channel.POSITIONS)
            case "/api/v1/trades":
                return StreamKey(self.venue, Channel.FILLS)
            case "/api/v1/markets" if "symbol" in request.params:
                return StreamKey(self.venue, Channel.TICKER, request.params["symbol"])
        return None

    async def markets(self) -> list[MarketInfo]:
        raw = await self.rest.get_json("/api/v1/markets")
        with decoding("markets"):
            listed = []
            for row in fields.array(fields.obj(raw, "markets")["data"], "markets"):
                market = fields.obj(row, "market")
                symbol = fields.name(market["symbol"], "symbol")
                listed.append(
                    MarketInfo(
                        self.venue, symbol, symbol, "perp",
                        price_decimals=fields.step_decimals(market["tickSize"], "tickSize"),
                        size_decimals=fields.step_decimals(market["stepSize"], "stepSize"),
                    )
                )  # fmt: skip
            return listed


# --- helpers ------------------------------------------------------------------------------------


def _request_id(subscription: dict[str, Any]) -> str:
    """The id naming a subscription (``candles:BTC-USD:1m``): an error answering it says which."""
    return ":".join(str(subscription[name]) for name in ("channel", "symbol", "interval") if name in subscription)


def _subscription_of_id(request_id: str) -> dict[str, str]:
    channel, _, rest = request_id.partition(":")
    symbol, _, interval = rest.partition(":")
    return {"channel": channel, **({"symbol": symbol} if symbol else {}), **({"interval": interval} if interval else {})}


def _levels(raw: Any, what: str) -> list[Level]:
    rows = fields.array(raw, what)
    return list(zip(fields.prices([row[0] for row in rows], what), fields.sizes([row[1] for row in rows], what)))


def _decode_book(message: dict[str, Any], snapshot: bool) -> list[Decoded]:
    symbol = fields.name(message["symbol"], "symbol")
    seq = fields.integer(message["seq"], "seq", low=1)
    time_ms = fields.time_ms(message["ts"], "ts")
    data = fields.obj(message["data"], "orderbook data")
    bids, asks = _levels(data["bids"], "bid"), _levels(data["asks"], "ask")
    if snapshot:
        return [Data(("orderbook", symbol), BookSnapshot(symbol, bids, asks, time_ms, sequence=seq))]
    return [Data(("orderbook", symbol), BookDelta(symbol, bids, asks, time_ms, first_sequence=seq, last_sequence=seq))]


def _side(value: Any, what: str) -> Side:
    if value not in ("buy", "sell"):
        raise DecodeError(f"{what} is not buy or sell: {fields.shown(value)}")
    return Side(value)


def _decode_trades(message: dict[str, Any], snapshot: bool) -> list[Decoded]:
    symbol = fields.name(message["symbol"], "symbol")
    trades = [
        Trade(
            market=symbol,
            price=fields.price(row["price"], "trade.price"),
            size=fields.size(row["size"], "trade.size"),
            side=_side(row["side"], "trade.side"),
            time_ms=fields.time_ms(row["ts"], "trade.ts"),
            trade_id=fields.name(row["id"], "trade.id"),
        )
        for row in map(lambda r: fields.obj(r, "trade"), fields.array(message["data"], "trades"))
    ]
    if not trades:
        return [Ignored()]
    trades.sort(key=lambda trade: trade.time_ms)
    return [Data(("trades", symbol), Trades(symbol, trades, backlog=snapshot))]


def _candle(symbol: str, interval: str, row: dict[str, Any]) -> Candle:
    opened = fields.time_ms(row["t"], "candle.t")
    return Candle(
        market=symbol,
        interval=interval,
        open_time_ms=opened,
        close_time_ms=fields.time_ms(opened + INTERVAL_MS[interval] - 1, "candle close time"),  # a bar may open in 2099
        open=fields.price(row["o"], "candle.o"),
        high=fields.price(row["h"], "candle.h"),
        low=fields.price(row["l"], "candle.l"),
        close=fields.price(row["c"], "candle.c"),
        volume=fields.size(row["v"], "candle.v"),
    )


def _decode_candles(message: dict[str, Any], snapshot: bool) -> list[Decoded]:
    symbol = fields.name(message["symbol"], "symbol")
    rows = fields.array(message["data"], "candles") if snapshot else [message["data"]]
    candles = []
    for raw in rows:
        row = fields.obj(raw, "candle")
        interval = row["interval"]
        if interval not in INTERVAL_MS:
            raise DecodeError(f"unknown candle interval {fields.shown(interval)}")
        candles.append(_candle(symbol, interval, row))
    if not candles:
        return [Ignored()]
    interval = candles[0].interval
    route = ("candles", symbol, interval)
    if snapshot:
        candles.sort(key=lambda candle: candle.open_time_ms)
        return [Data(route, CandleHistory(symbol, interval, candles))]
    return [Data(route, candles[0])]


def _position(row: dict[str, Any]) -> Position:
    symbol = fields.name(row["symbol"], "position.symbol")
    size = fields.size(row["size"], "position.size")
    side = row["side"]
    if side not in ("long", "short"):
        raise DecodeError(f"position.side is not long or short: {fields.shown(side)}")
    if side == "short" and size.strip("0."):
        size = fields.decimal_text(f"-{size}", "position.size", signed=True)  # the sign may make it too long
    liquidation = row.get("liquidationPrice")
    return Position(
        market=symbol,
        underlying=fields.name(symbol.partition("-")[0], "position underlying"),  # "-X" names none
        kind="perp",
        size=size,
        entry_price=fields.optional_decimal(row.get("entryPrice"), "position.entryPrice"),
        mark_price=fields.optional_decimal(row.get("markPrice"), "position.markPrice"),
        unrealized_pnl=fields.optional_decimal(row.get("unrealizedPnl"), "position.unrealizedPnl", signed=True),
        liquidation_price=None if liquidation is None else fields.price(liquidation, "position.liquidationPrice"),
        maintenance_margin=fields.optional_decimal(row.get("maintenanceMargin"), "position.maintenanceMargin"),
    )


def _margin(account: dict[str, Any], time_ms: int | None = None) -> Margin:
    return Margin(
        equity=fields.decimal_text(account["equity"], "account.equity", signed=True),
        maintenance=fields.decimal_text(account["maintenanceMargin"], "account.maintenanceMargin"),
        initial=fields.optional_decimal(account.get("marginUsed"), "account.marginUsed"),
        available=fields.optional_decimal(account.get("availableMargin"), "account.availableMargin", signed=True),
        time_ms=time_ms,
    )


def _decode_positions(message: dict[str, Any], snapshot: bool) -> list[Decoded]:
    time_ms = fields.time_ms(message["ts"], "ts")
    data = fields.obj(message["data"], "positions data")
    margin = _margin(fields.obj(data["account"], "account"), time_ms)
    positions_route, liquidation_route = _ACCOUNT_ROUTE[Channel.POSITIONS], _ACCOUNT_ROUTE[Channel.LIQUIDATION]
    if snapshot:
        rows = fields.array(data["positions"], "positions")
        positions = Positions([_position(fields.obj(row, "position")) for row in rows], replace=True, time_ms=time_ms)
        return [Data(positions_route, positions), Data(positions_route, margin)]
    event = data["event"]
    if event == "position_update":
        position = _position(fields.obj(data["position"], "position"))
        return [Data(positions_route, Positions([position], replace=False, time_ms=time_ms)), Data(positions_route, margin)]
    if event in ("liquidation_warning", "liquidated"):
        fields.name(data["symbol"], "symbol")
        warning = event == "liquidation_warning"
        change = LiquidationChange(
            state=LiquidationState.WARNING if warning else LiquidationState.LIQUIDATING,
            equity=margin.equity,
            maintenance=margin.maintenance,
            time_ms=time_ms,
            lasts=WARNING_SHOWN if warning else LIQUIDATED_SHOWN,
        )
        return [Data(liquidation_route, change), Data(positions_route, margin)]
    raise DecodeError(f"unknown positions event {fields.shown(event)}")


def _fill(row: dict[str, Any]) -> Fill:
    liquidity = row.get("liquidity")
    return Fill(
        market=fields.name(row["symbol"], "trade.symbol"),
        side=_side(row["side"], "trade.side"),
        price=fields.price(row["price"], "trade.price"),
        size=fields.size(row["size"], "trade.size"),
        time_ms=fields.time_ms(row["ts"], "trade.ts"),
        fill_id=fields.name(row["id"], "trade.id"),
        order_id=None if row.get("orderId") is None else fields.name(row["orderId"], "trade.orderId"),
        fee=fields.optional_decimal(row.get("fee"), "trade.fee", signed=True),
        taker=None if liquidity is None else liquidity == "taker",
    )


def _ticker(row: dict[str, Any]) -> Ticker:
    optional = fields.optional_decimal
    return Ticker(
        market=fields.name(row["symbol"], "symbol"),
        mark=optional(row.get("markPrice"), "markPrice"),
        index=optional(row.get("indexPrice"), "indexPrice"),
        last=optional(row.get("lastPrice"), "lastPrice"),
        funding_rate=optional(row.get("fundingRate"), "fundingRate", signed=True),
        open_interest=optional(row.get("openInterest"), "openInterest"),
    )


def _error(message: dict[str, Any]) -> VenueError:
    code = fields.name(message["code"], "error.code")
    text = f"{fields.text(message['message'], 'error.message')} ({code})"
    request_id = message.get("id")
    if code == "TOKEN_EXPIRED":
        return VenueError(f"token expired: set a new one as {TOKEN_VARIABLE}", final=True)
    if isinstance(request_id, str) and request_id:
        return VenueError(text, _subscription_of_id(request_id))
    return VenueError(text)


_DECODERS = {
    "orderbook": _decode_book,
    "trades": _decode_trades,
    "candles": _decode_candles,
    "positions": _decode_positions,
}
