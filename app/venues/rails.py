"""Rails (rails.xyz, once Fungible): a hybrid perps exchange, a token in the WebSocket subprotocol.

Protocol facts (seed 004 and the Rails docs, see the wire reference): the socket URL names one
``market`` (or ``ALL``) and its ``subscriptions`` (``orders``, ``trades``, ``publicTrades``,
``publicOrderBook``); the JWT goes in ``Sec-WebSocket-Protocol`` as ``authorization#<JWT>``;
requests are ``{"message", "content":{"clientRequestId", ...}}`` and everything inbound is
``{"resultType", "market"?, "data"}``. Books are deltas without any sequence number, and no
snapshot comes unless asked for with ``emitPublicOrderBook``. Tokens come from
``POST /api/v1/token`` for an API key and secret, live 30 minutes, at most 20 a minute per key.

How this adapter meets that: one socket per market, as Rails recommends (a problem on one market's
socket leaves the others alone), and one ``market=ALL`` socket for the account's ``orders`` and
``trades`` (fills of every market). Every (re)connect subscribes and asks for the book snapshot;
deltas before it are dropped (:attr:`~app.state.BookSync.SNAPSHOT_THEN_DELTAS`: it is sent after
them on the same ordered socket, so it contains them), and a crossed book asks again on the
socket. The token is fetched once for every socket (:class:`~app.tokens.IssuedToken`), renewed
with 60 % of its life left, and each socket's lifetime is its token's: the service opens the
replacement, with the new token, and moves the streams over before the old token expires.

Design decisions, ours:

* ``clientRequestId`` is a UUID carrying our request number (``...-8000-<number>``), so acks and
  errors find their request and a venue that checks the format sees a UUID.
* Candles are built from the public trades (:class:`~app.state.TradeCandles`; Rails has no candle
  stream or endpoint): the recent-trade backlog is their only history, so a chart starts short.
* The ticker is ``GET /api/v1/market-data?market=`` every 2 s (Rails streams none): mid from its
  bid and ask, index, funding, open interest, 24 h volume.
* A socket closed 4001 is retried: the next dial brings a fresh token. A refused key or secret
  (HTTP 401 at the token endpoint) is final until the user retries.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlencode

import orjson

from app.model import (
    ACCOUNT_CHANNELS,
    BookDelta,
    BookSnapshot,
    Channel,
    Fill,
    Fills,
    Level,
    MarketEvent,
    MarketInfo,
    OrderUpdate,
    OrderUpdates,
    Side,
    StreamKey,
    Ticker,
    Trade,
    Trades,
    Venue,
    freeze_params,
)
from app.record import parse_request
from app.rest import RestClient, RestError, shared_limiter
from app.state import BookData, BookSync, StreamData, TradeCandles, new_state
from app.tokens import GivenToken, IssuedToken, TokenSource
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
    Refused,
    VenueAdapter,
    VenueError,
    json_frame,
    malformed,
)

NETWORKS: dict[str, Endpoint] = {
    "mainnet": Endpoint(
        "wss://ws.trade.rails.xyz",
        "https://market-data.trade.rails.xyz",
        (("auth_http", "https://api-auth.trade.rails.xyz"),),
    ),
}

TOKEN_REQUESTS_PER_MINUTE = 20
CREDENTIAL_VARIABLES = "PERPTERM_RAILS_API_KEY and PERPTERM_RAILS_API_SECRET"

_WIRE = {
    Channel.BOOK: "publicOrderBook", Channel.TRADES: "publicTrades", Channel.CANDLES: "publicTrades",
    Channel.FILLS: "trades", Channel.ORDERS: "orders",
}  # fmt: skip
# Candles are built from the public trades (Rails streams none), at the intervals the app shows.
CANDLE_INTERVAL_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000}
_ID_PREFIX = "00000000-0000-4000-8000-"
_ORDER_RESULTS = frozenset({"createOrder", "cancelOrder", "modifyOrder", "orderFilled", "orderRejected"})
_ORDER_STATUS = {
    "pending": "pending", "active": "open", "partiallyFilled": "open", "cancelling": "canceling",
    "modifying": "open", "filled": "filled", "cancelled": "canceled", "rejected": "rejected",
}  # fmt: skip


class RailsAdapter(VenueAdapter):
    venue = Venue.RAILS
    channels = frozenset({*_WIRE, Channel.TICKER})
    acks_by_id = True
    max_messages_per_second = 5  # the emulator answers 429 above 10 requests a second
    rest_weight_per_minute = 600
    polled: ClassVar[dict[Channel, float]] = {Channel.TICKER: 2.0}
    # Deltas carry no sequence: a lost one would leave a wrong book that nothing shows. A snapshot
    # every 30 s (about 3 kB) repairs it and counts the repair as a gap.
    audit_every: ClassVar[dict[Channel, float]] = {Channel.BOOK: 30.0}
    # Rails recommends its application ping over control frames (it travels with the data); the
    # emulator closes a socket silent for 60 s.
    liveness = Liveness(ping_interval=20.0, probe_after=5.0, pong_timeout=10.0)
    fatal_close_codes: ClassVar[dict[int, str]] = {}  # 4001 (token expired): a new dial, a new token
    funding_period = "1h"
    account_missing = f"no API key and secret configured ({CREDENTIAL_VARIABLES})"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key, secret, token = self.credentials.api_key, self.credentials.api_secret, self.credentials.token
        self.tokens: TokenSource | None = None
        self._auth: RestClient | None = None  # the token endpoint's client, with the key and secret
        if key is not None and secret is not None:
            auth_url = self.endpoint.url("auth_http") or self.endpoint.http_url
            limiter = shared_limiter(f"rails-token:{auth_url}", key.get_secret_value(), TOKEN_REQUESTS_PER_MINUTE)
            headers = {"X-Api-Key": key.get_secret_value(), "X-Api-Secret": secret.get_secret_value()}
            self._auth = RestClient(auth_url, limiter=limiter, headers=headers)
            self.tokens = IssuedToken(self._fetch_token)
        elif token is not None:
            self.tokens = GivenToken(token, "PERPTERM_RAILS_TOKEN (or set an API key and secret)")

    @property
    def has_account(self) -> bool:
        return self.tokens is not None

    async def _fetch_token(self) -> tuple[str, float]:
        try:
            assert self._auth is not None  # only an IssuedToken calls this
            answer = orjson.loads(await self._auth.fetch("POST", "/api/v1/token"))
        except RestError as exc:
            if exc.status in (401, 403):
                raise Refused(f"API key or secret rejected (HTTP {exc.status})") from None
            raise
        except orjson.JSONDecodeError:
            raise RestError("POST /api/v1/token: response is not JSON") from None
        try:
            token = fields.text(answer["access_token"], "access_token", limit=4096)
            return token, float(fields.integer(answer.get("expires_in", 1800), "expires_in", low=1))
        except SHAPE_ERRORS as exc:
            raise RestError(f"POST /api/v1/token: {malformed(exc, 'token answer')}") from None

    # --- subscriptions -------------------------------------------------------------------------

    def check(self, key: StreamKey) -> None:
        super().check(key)
        if self.tokens is None:
            raise ValueError(f"rails {key.channel}: {self.account_missing}")
        if key.channel not in ACCOUNT_CHANNELS and not key.market:
            raise ValueError(f"rails {key.channel} needs a market")
        if key.channel is Channel.CANDLES and key.param("interval", "1m") not in CANDLE_INTERVAL_MS:
            raise ValueError(f"rails candles come in {', '.join(CANDLE_INTERVAL_MS)}")

    def group(self, key: StreamKey) -> Hashable:
        return "ALL" if key.channel in ACCOUNT_CHANNELS else key.market

    async def dial(self, group: Hashable, keys: Sequence[StreamKey] = ()) -> Dial:
        assert self.tokens is not None  # check() refuses every stream without credentials
        token = await self.tokens.token()
        streams = ",".join(dict.fromkeys(_WIRE[key.channel] for key in keys if key.channel in _WIRE))
        query = urlencode({"market": str(group), "subscriptions": streams})
        return Dial(
            f"{self.endpoint.ws_url.rstrip('/')}/?{query}",
            subprotocols=(f"authorization#{token}",),
            max_lifetime=self.tokens.lifetime(),
        )

    def state_for(self, key: StreamKey) -> StreamData:
        if key.channel is Channel.BOOK:
            return BookData(BookSync.SNAPSHOT_THEN_DELTAS)
        if key.channel is Channel.CANDLES:
            interval = key.param("interval", "1m")
            return TradeCandles(interval, CANDLE_INTERVAL_MS[interval])
        return new_state(key.channel)

    def subscription(self, key: StreamKey) -> str:
        return _WIRE.get(key.channel, str(key.channel))

    def route(self, key: StreamKey) -> Hashable:
        if key.channel in ACCOUNT_CHANNELS:
            return (_WIRE[key.channel],)
        if key.channel is Channel.CANDLES:
            return ("candles", key.market, key.param("interval", "1m"))
        return (self.subscription(key), key.market)

    def subscribe_messages(self, keys: list[StreamKey], request_id: int, *, initial: bool = False) -> list[str]:
        wire = list(dict.fromkeys(_WIRE[key.channel] for key in keys))
        messages = [_request("subscribe", request_id, subscriptions=wire)]
        for key in keys:  # the state each stream starts from: Rails sends none by itself
            messages.extend(self._emit(key, request_id) or ())
        return messages

    def unsubscribe_messages(self, keys: list[StreamKey], request_id: int, *, remaining: list[StreamKey]) -> list[str]:
        kept = {_WIRE.get(key.channel) for key in remaining}
        wire = [name for name in dict.fromkeys(_WIRE[key.channel] for key in keys) if name not in kept]
        return [_request("unsubscribe", request_id, subscriptions=wire)] if wire else []

    def _emit(self, key: StreamKey, request_id: int) -> list[str] | None:
        if key.channel is Channel.BOOK:
            return [_request("emitPublicOrderBook", request_id, market=key.market)]
        if key.channel is Channel.TRADES or key.channel is Channel.CANDLES:  # the tape's, the bars' history
            return [_request("emitPublicCompletedOrders", request_id, market=key.market)]
        return None

    def resync_messages(self, key: StreamKey) -> list[str] | None:
        return self._emit(key, 0) if key.channel is Channel.BOOK else None

    def ping_message(self) -> str:
        return _request("ping", 0)

    # --- inbound -------------------------------------------------------------------------------

    def decode(self, frame: str | bytes) -> list[Decoded]:
        message = json_frame(frame)
        result: Any = None
        try:
            message = fields.obj(message, "frame")
            result = message["resultType"]
            data = message["data"]
            if isinstance(data, dict) and isinstance(status := data.get("statusCode"), int) and status >= 400 and "order" not in data:
                return [_error(result, data)]  # (an orderRejected, 400 with its order, is the order's notice)
            decode = _DECODERS.get(result) if isinstance(result, str) else None
            if decode is not None:
                return decode(message, data)
            if result in _ORDER_RESULTS:
                return _decode_order(message, data)
            raise DecodeError(f"unknown resultType {fields.shown(result)}")
        except SHAPE_ERRORS as exc:
            raise malformed(exc, f"{result} message" if isinstance(result, str) else "frame") from None

    # --- REST ----------------------------------------------------------------------------------

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        if key.channel is Channel.TICKER:
            return self.parse_snapshot(key, await self.rest.get_json("/api/v1/market-data", {"market": key.market}))
        return []

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        if key.channel is not Channel.TICKER:
            return []
        try:
            values: dict[str, str] = {}
            for row in fields.array(raw, "market data"):
                row = fields.obj(row, "market data row")
                if row["market"] == key.market:
                    kind = fields.name(row["type"], "type")  # only funding may be negative
                    values[kind] = fields.decimal_text(row["value"], f"{kind} value", signed=kind == "FUNDING")
        except SHAPE_ERRORS as exc:
            raise malformed(exc, "market data") from None
        bid, ask = values.get("BID"), values.get("ASK")
        mid = fields.quotient(fields.exact_sum([bid, ask], "mid"), "2") if bid and ask else None
        return [
            Ticker(
                market=key.market,
                mid=mid,
                index=values.get("INDEX"),
                funding_rate=values.get("FUNDING"),
                open_interest=values.get("OPEN_INTEREST"),
                volume_24h=values.get("24H_VOLUME"),
            )
        ]

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        channel_of = {**{wire: channel for channel, wire in _WIRE.items() if channel is not Channel.CANDLES}, "ticker": Channel.TICKER}
        match route:
            case ("candles", str(market), str(interval)):
                return StreamKey(self.venue, Channel.CANDLES, market, freeze_params({"interval": interval}))
            case (str(wire),) if channel_of.get(wire) in ACCOUNT_CHANNELS:
                return StreamKey(self.venue, channel_of[wire])
            case (str(wire), str(market)) if wire in channel_of:
                return StreamKey(self.venue, channel_of[wire], market)
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is not None and request.method == "GET" and request.path == "/api/v1/market-data":
            market = request.params.get("market")
            return None if market is None else StreamKey(self.venue, Channel.TICKER, market)
        return None

    async def markets(self) -> list[MarketInfo]:
        raw = await self.rest.get_json("/api/v1/markets")
        try:
            listed = []
            for row in fields.array(raw, "markets"):
                row = fields.obj(row, "market")
                name = fields.name(row["name"], "market.name")
                listed.append(
                    MarketInfo(
                        self.venue, name, name, "perp",
                        price_decimals=fields.step_decimals(row["tickSize"], "tickSize"),
                        size_decimals=fields.step_decimals(row["stepSize"], "stepSize"),
                    )
                )  # fmt: skip
            return listed
        except SHAPE_ERRORS as exc:
            raise malformed(exc, "markets") from None

    async def close(self) -> None:
        await super().close()
        if self._auth is not None:
            await self._auth.close()


# --- helpers ------------------------------------------------------------------------------------


def _request(message: str, request_id: int, **content: Any) -> str:
    content["clientRequestId"] = f"{_ID_PREFIX}{request_id:012d}"
    return orjson.dumps({"message": message, "content": content}).decode()


def _request_number(data: dict[str, Any]) -> int | None:
    """Our request number from an echoed ``clientRequestId`` (``None``: not one of ours)."""
    echoed = data.get("clientRequestId")
    if isinstance(echoed, str) and echoed.startswith(_ID_PREFIX) and echoed[len(_ID_PREFIX):].isdigit():
        return int(echoed[len(_ID_PREFIX):])
    return None


def _market(message: dict[str, Any]) -> str:
    return fields.name(message["market"], "market")


def _side(value: Any, what: str) -> Side:
    if value not in ("buy", "sell"):
        raise DecodeError(f"{what} is not buy or sell: {fields.shown(value)}")
    return Side(value)


def _book_sides(data: dict[str, Any]) -> tuple[list[Level], list[Level]]:
    """Bids and asks of ``data.orders`` (``orderType`` buy: a bid level), in the order sent."""
    bids: list[Level] = []
    asks: list[Level] = []
    for raw in fields.array(data["orders"], "orders"):
        row = fields.obj(raw, "level")
        side = _side(row["orderType"], "level.orderType")
        level = (fields.price(row["price"], "level.price"), fields.size(row["quantity"], "level.quantity"))
        (bids if side is Side.BUY else asks).append(level)
    return bids, asks


def _decode_book_delta(message: dict[str, Any], data: Any) -> list[Decoded]:
    market, data = _market(message), fields.obj(data, "delta")
    bids, asks = _book_sides(data)
    time_ms = None if data.get("ts") is None else fields.time_ms(data["ts"], "ts")
    return [Data(("publicOrderBook", market), BookDelta(market, bids, asks, time_ms))]


def _decode_book(message: dict[str, Any], data: Any) -> list[Decoded]:
    market, data = _market(message), fields.obj(data, "book")
    bids, asks = _book_sides(data)
    bids.sort(key=lambda level: Decimal(level[0]), reverse=True)  # best first
    asks.sort(key=lambda level: Decimal(level[0]))
    time_ms = None if data.get("ts") is None else fields.time_ms(data["ts"], "ts")
    return [Data(("publicOrderBook", market), BookSnapshot(market, bids, asks, time_ms))]


def _trades(message: dict[str, Any], data: Any, *, backlog: bool) -> list[Decoded]:
    market, data = _market(message), fields.obj(data, "trades")
    trades = []
    for raw in fields.array(data["orders"], "orders"):
        row = fields.obj(raw, "trade")
        if row.get("executionType", "taker") != "taker":
            continue  # a maker row repeats its taker's trade
        trades.append(
            Trade(
                market=market,
                price=fields.price(row["price"], "trade.price"),
                size=fields.size(row["quantity"], "trade.quantity"),
                side=_side(row["orderType"], "trade.orderType"),
                time_ms=fields.time_ms(row["updatedAt"], "trade.updatedAt"),
                trade_id=fields.name(row["matchId"], "trade.matchId"),
            )
        )
    if not trades:
        return [Ignored()]
    trades.sort(key=lambda trade: trade.time_ms)
    bars = Trades(market, trades, backlog=backlog)  # one object for every interval's bars, another for the tape
    return [
        Data(("publicTrades", market), Trades(market, trades, backlog=backlog)),
        *(Data(("candles", market, interval), bars) for interval in CANDLE_INTERVAL_MS),
    ]


def _decode_fills(message: dict[str, Any], data: Any) -> list[Decoded]:
    fills = []
    for raw in fields.array(data, "completedOrdersDelta"):
        row = fields.obj(raw, "fill")
        fills.append(
            Fill(
                market=fields.name(row["market"], "fill.market"),
                side=_side(row["orderType"], "fill.orderType"),
                price=fields.price(row["price"], "fill.price"),
                size=fields.size(row["quantity"], "fill.quantity"),
                time_ms=fields.time_ms(row["orderFilledAt"], "fill.orderFilledAt"),
                fill_id=fields.name(row["matchId"], "fill.matchId"),
                order_id=fields.name(row["orderId"], "fill.orderId"),
                fee=fields.optional_decimal(row.get("fees"), "fill.fees", signed=True),
                taker=row.get("executionType") == "taker" if "executionType" in row else None,
            )
        )
    return [Data(("trades",), Fills(fills))] if fills else [Ignored()]


def _decode_order(message: dict[str, Any], data: Any) -> list[Decoded]:
    data = fields.obj(data, "order message")
    if "order" not in data:
        return [Ignored()]  # an answer without an order (the venue's ack to a request of nobody's)
    order = fields.obj(data["order"], "order")
    status = order["orderStatus"]
    if status not in _ORDER_STATUS:
        raise DecodeError(f"unknown orderStatus {fields.shown(status)}")
    remaining = fields.size(order["quantity"], "order.quantity")
    filled = fields.size(order.get("filledQuantity", "0"), "order.filledQuantity")
    price = order.get("price")
    update = OrderUpdate(
        order_id=fields.name(order["orderId"], "order.orderId"),
        market=fields.name(order["market"], "order.market"),
        status=_ORDER_STATUS[status],
        side=_side(order["orderType"], "order.orderType"),
        price=None if price in (None, "0") else fields.price(price, "order.price"),
        size=fields.exact_sum([remaining, filled], "order size"),  # quantity is what remains
        filled=filled,
        time_ms=fields.time_ms(order["updatedAt"], "order.updatedAt") if "updatedAt" in order else None,
        reason=fields.text(data["body"], "body", limit=120) if status == "rejected" and "body" in data else None,
    )
    return [Data(("orders",), OrderUpdates([update]))]


def _decode_subscribed(message: dict[str, Any], data: Any) -> list[Decoded]:
    """An ack of one of our requests; one without our id (another client's request) acks nothing of ours."""
    number = _request_number(fields.obj(data, "subscribed"))
    if number is None:
        return [Ignored()]
    return [Ack(request_id=number, unsubscribe=message["resultType"] == "unsubscribed")]


def _error(result: Any, data: dict[str, Any]) -> VenueError:
    status = data["statusCode"]
    body = fields.text(data.get("body", ""), "body", limit=200)
    return VenueError(f"{body or 'refused'} ({fields.shown(result)}, {status})", request_id=_request_number(data))


_DECODERS = {
    "publicOrderBookDelta": _decode_book_delta,
    "publicOrderBook": _decode_book,
    "publicCompletedOrdersDelta": lambda message, data: _trades(message, data, backlog=False),
    "publicCompletedOrders": lambda message, data: _trades(message, data, backlog=True),
    "completedOrdersDelta": _decode_fills,
    "subscribed": _decode_subscribed,
    "unsubscribed": _decode_subscribed,
    "pong": lambda message, data: [Pong()],
}
