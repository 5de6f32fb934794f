"""Aster (perps and spot): Binance-style combined streams, diff-depth books synced from REST.

Protocol facts (see the Aster wire reference): streams are named ``<symbol lowercase>@<kind>``
and multiplexed on ``/stream``, every frame wrapped ``{"stream": name, "data": payload}``;
``SUBSCRIBE``/``UNSUBSCRIBE`` carry an unsigned-int ``id`` that the ack ``{"result": null, "id": N}``
echoes, and errors are ``{"code", "msg"}`` (with the ``id`` when the server includes it). Diff depth
is the Binance local-book procedure: deltas ``U``/``u`` chained by ``pu`` on perps and by
``U == previous u + 1`` on spot, from a REST snapshot's ``lastUpdateId`` (the sync itself is the
shared :class:`~app.state.BookData`). ``aggTrade.m`` is "the buyer is the maker", so the aggressor
sold. ``!ticker@arr`` carries only the symbols that changed. The server pings with control frames
(answered by the WebSocket library), drops a connection after 24 h, and allows 10 (perps) or 5
(spot) inbound messages a second and 200 streams a connection.

Design decisions: perps and spot are two connection groups (two hosts); a spot market is named
``spot:<SYMBOL>`` on our side because the same symbol exists on both; public data uses the ``v1``
REST paths, which the venue keeps serving; we send at most 4 messages a second, under both limits.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any, ClassVar

import orjson

from app.model import (
    AllMids,
    Bbo,
    BookDelta,
    BookSnapshot,
    Candle,
    CandleHistory,
    Channel,
    Level,
    MarketEvent,
    MarketInfo,
    Side,
    StreamKey,
    Ticker,
    Trade,
    Trades,
    Venue,
    freeze_params,
)
from app.record import parse_request
from app.rest import RateLimiter, RestClient
from app.state import BookData, BookSync, StreamData, new_state
from app.venues import fields
from app.venues.base import (
    Ack,
    Data,
    DecodeError,
    Decoded,
    Dial,
    Endpoint,
    Liveness,
    VenueAdapter,
    SHAPE_ERRORS,
    VenueError,
    decoding,
    json_frame,
    malformed,
)

NETWORKS: dict[str, Endpoint] = {
    "mainnet": Endpoint(
        "wss://fstream.asterdex.com/stream",
        "https://fapi.asterdex.com",
        (("spot_ws", "wss://sstream.asterdex.com/stream"), ("spot_http", "https://sapi.asterdex.com")),
    ),
}

SPOT_PREFIX = "spot:"
INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M")
DEPTH_LIMIT = 1000  # the deepest REST snapshot (weight 20): the book the deltas are applied to
HISTORY_BARS = 500
LIFETIME = 24 * 3600.0  # the venue drops every connection at 24 h
_ROUTE_CHANNELS = frozenset({"book", "trades", "ticker", "bbo"})  # routes (channel value, symbol)


def is_spot(market: str) -> bool:
    return market.startswith(SPOT_PREFIX)


def symbol_of(market: str) -> str:
    """The venue's symbol (``BTCUSDT``) of our market name (``BTCUSDT`` or ``spot:BTCUSDT``)."""
    return market[len(SPOT_PREFIX) :] if is_spot(market) else market


class AsterAdapter(VenueAdapter):
    venue = Venue.ASTER
    channels = frozenset(
        {Channel.BOOK, Channel.TRADES, Channel.CANDLES, Channel.TICKER, Channel.BBO, Channel.ALL_MIDS}
    )
    max_subscriptions_per_connection = 100  # keys; a ticker key is two streams, the limit is 200
    max_messages_per_second = 4
    acks_by_id = True
    funding_period = "8h"
    rest_weight_per_minute = 2400
    # The server's control-frame pings come every 5 minutes; we probe sooner to see a dead socket.
    liveness = Liveness(ping_interval=30.0, probe_after=5.0, pong_timeout=10.0)
    stale_after: ClassVar[dict[Channel, float]] = {Channel.TICKER: 15.0, Channel.ALL_MIDS: 15.0}

    def __init__(self, endpoint: Endpoint, rest: RestClient, *args: Any, **kwargs: Any) -> None:
        super().__init__(endpoint, rest, *args, **kwargs)
        spot_http = endpoint.url("spot_http") or endpoint.http_url
        separate = spot_http != endpoint.http_url  # one host in the emulator, two for real
        self.spot_rest = RestClient(spot_http, limiter=RateLimiter(self.rest_weight_per_minute)) if separate else rest

    def check(self, key: StreamKey) -> None:
        super().check(key)
        if key.channel is not Channel.ALL_MIDS and not symbol_of(key.market):
            raise ValueError(f"aster {key.channel} needs a market")
        if key.channel is Channel.CANDLES and key.param("interval", "1m") not in INTERVALS:
            raise ValueError(f"unknown candle interval {key.param('interval')!r}")

    def group(self, key: StreamKey) -> Hashable:
        spot = is_spot(key.market) if key.channel is not Channel.ALL_MIDS else key.param("kind") == "spot"
        return "spot" if spot else "perp"

    async def dial(self, group: Hashable, keys: Sequence[StreamKey] = ()) -> Dial:
        url = self.endpoint.url("spot_ws") if group == "spot" else None
        return Dial(url or self.endpoint.ws_url, max_lifetime=LIFETIME)

    def state_for(self, key: StreamKey) -> StreamData:
        if key.channel is Channel.BOOK:
            return BookData(BookSync.CHAIN_NEXT if is_spot(key.market) else BookSync.CHAIN_PREVIOUS)
        return new_state(key.channel)

    def streams(self, key: StreamKey) -> list[str]:
        """The venue streams one key needs (a perp ticker is the 24 h ticker plus the mark price)."""
        symbol = symbol_of(key.market).lower()
        match key.channel:
            case Channel.BOOK:
                return [f"{symbol}@depth@100ms"]
            case Channel.TRADES:
                return [f"{symbol}@aggTrade"]
            case Channel.CANDLES:
                return [f"{symbol}@kline_{key.param('interval', '1m')}"]
            case Channel.TICKER:
                return [f"{symbol}@ticker"] if is_spot(key.market) else [f"{symbol}@ticker", f"{symbol}@markPrice@1s"]
            case Channel.BBO:
                return [f"{symbol}@bookTicker"]
            case Channel.ALL_MIDS:
                return ["!ticker@arr"]
        raise ValueError(f"aster has no {key.channel} channel")

    def route(self, key: StreamKey) -> Hashable:
        symbol = symbol_of(key.market)
        if key.channel is Channel.CANDLES:
            return ("kline", symbol, key.param("interval", "1m"))
        if key.channel is Channel.ALL_MIDS:
            return ("all",)
        return (key.channel.value, symbol)

    def subscription(self, key: StreamKey) -> Any:
        return self.streams(key)

    def subscribe_messages(self, keys: list[StreamKey], request_id: int, *, initial: bool = False) -> list[str]:
        return _request("SUBSCRIBE", [s for key in keys for s in self.streams(key)], request_id)

    def unsubscribe_messages(self, keys: list[StreamKey], request_id: int, *, remaining: list[StreamKey]) -> list[str]:
        return _request("UNSUBSCRIBE", [s for key in keys for s in self.streams(key)], request_id)

    def decoder(self, group: Hashable) -> Callable[[str | bytes], list[Decoded]]:
        """Spot payloads name the bare symbol; on the spot socket events get our spot names."""
        return partial(self.decode, spot=group == "spot")

    def decode(self, frame: str | bytes, *, spot: bool = False) -> list[Decoded]:
        decoded = self._decode(frame)
        return _on_spot(decoded) if spot else decoded

    def _decode(self, frame: str | bytes) -> list[Decoded]:
        message = json_frame(frame)
        try:
            if isinstance(message, dict) and "data" in message and "stream" in message:
                fields.name(message["stream"], "stream")
                return _decode_payload(message["data"])
            if isinstance(message, dict) and "id" in message and "result" in message:
                return [Ack(request_id=fields.integer(message["id"], "ack id"))]
            if isinstance(message, dict) and "code" in message and "msg" in message:
                request_id = message.get("id")
                text = message["msg"] if isinstance(message["msg"], str) else fields.shown(message["msg"])
                code = fields.shown(message["code"])
                return [VenueError(f"{text[:300]} (code {code})", None, _id_or_none(request_id))]
            return _decode_payload(message)  # a raw /ws stream
        except SHAPE_ERRORS as exc:
            raise malformed(exc, "frame") from None

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        symbol = symbol_of(key.market)
        spot = is_spot(key.market) if key.channel is not Channel.ALL_MIDS else key.param("kind") == "spot"
        rest, prefix = (self.spot_rest, "/api/v1") if spot else (self.rest, "/fapi/v1")
        if key.channel is Channel.BOOK:
            raw = await rest.get_json(f"{prefix}/depth", {"symbol": symbol, "limit": DEPTH_LIMIT}, weight=20)
        elif key.channel is Channel.CANDLES:
            params = {"symbol": symbol, "interval": key.param("interval", "1m"), "limit": HISTORY_BARS}
            raw = await rest.get_json(f"{prefix}/klines", params, weight=5)
        elif key.channel is Channel.ALL_MIDS:
            raw = await rest.get_json(f"{prefix}/ticker/24hr", weight=40)
        else:
            return []
        return self.parse_snapshot(key, raw)

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        if key.channel is Channel.BOOK:
            with decoding("depth snapshot"):
                return [_depth_snapshot(key.market, raw)]
        if key.channel is Channel.CANDLES:
            interval = key.param("interval", "1m")
            with decoding("klines"):
                candles = [_kline_row(key.market, interval, row) for row in fields.array(raw, "klines")]
            return [CandleHistory(key.market, interval, candles)]
        if key.channel is Channel.ALL_MIDS:
            with decoding("24hr tickers"):
                return [AllMids(_last_prices(raw, key.param("kind") == "spot"))]
        return []

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        spot = group == "spot"
        match route:
            case ("all",):
                return StreamKey(self.venue, Channel.ALL_MIDS, "", freeze_params({"kind": "spot"} if spot else None))
            case ("kline", str(symbol), str(interval)):
                return StreamKey(self.venue, Channel.CANDLES, _market(symbol, spot), freeze_params({"interval": interval}))
            case (str(kind), str(symbol)) if kind in _ROUTE_CHANNELS:
                return StreamKey(self.venue, Channel(kind), _market(symbol, spot))
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is None or request.method != "GET":
            return None
        for prefix, spot in (("/fapi/v1/", False), ("/api/v1/", True)):
            if request.path.startswith(prefix):
                endpoint = request.path[len(prefix) :]
                break
        else:
            return None
        symbol, interval = request.params.get("symbol"), request.params.get("interval")
        if endpoint == "depth" and symbol:
            return StreamKey(self.venue, Channel.BOOK, _market(symbol, spot))
        if endpoint == "klines" and symbol and interval:
            return StreamKey(self.venue, Channel.CANDLES, _market(symbol, spot), freeze_params({"interval": interval}))
        if endpoint == "ticker/24hr" and not symbol:
            return StreamKey(self.venue, Channel.ALL_MIDS, "", freeze_params({"kind": "spot"} if spot else None))
        return None

    async def markets(self) -> list[MarketInfo]:
        perps = await self.rest.get_json("/fapi/v1/exchangeInfo")
        spot = await self.spot_rest.get_json("/api/v1/exchangeInfo")
        with decoding("exchangeInfo"):
            return [*_listings(perps, "perp"), *_listings(spot, "spot")]

    async def close(self) -> None:
        await self.rest.close()
        if self.spot_rest is not self.rest:
            await self.spot_rest.close()


def _request(method: str, streams: list[str], request_id: int) -> list[str]:
    if not streams:
        return []
    return [orjson.dumps({"method": method, "params": streams, "id": request_id}).decode()]


def _id_or_none(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _market(symbol: str, spot: bool) -> str:
    return SPOT_PREFIX + symbol if spot else symbol


# --- payloads -------------------------------------------------------------------------------------
# The same payload shapes arrive on perps and spot; ``pu`` (perps only) tells a perp depth update
# apart, and the route is by symbol, which is unique within one connection (one group).


def _decode_payload(payload: Any) -> list[Decoded]:
    if isinstance(payload, list):  # !ticker@arr
        tickers = [fields.obj(item, "ticker") for item in payload]
        prices = {fields.name(t["s"], "ticker.s"): fields.price(t["c"], "ticker.c") for t in tickers}
        return [Data(("all",), AllMids(prices, partial=True))]
    payload = fields.obj(payload, "payload")
    kind = payload.get("e")
    if kind is None and "b" in payload and "B" in payload:
        kind = "bookTicker"  # spot book tickers carry no event type
    decoder = _DECODERS.get(kind) if isinstance(kind, str) else None
    if decoder is None:
        raise DecodeError(f"unknown event type {fields.shown(kind)}")
    try:
        return [decoder(payload)]
    except SHAPE_ERRORS as exc:
        raise malformed(exc, f"{kind} event") from None


def _on_spot(decoded: list[Decoded]) -> list[Decoded]:
    """Name the markets of spot events as our keys do (``spot:<SYMBOL>``); routes stay bare."""
    for item in decoded:
        if not isinstance(item, Data):
            continue
        event = item.event
        if isinstance(event, AllMids):
            event.mids = {SPOT_PREFIX + symbol: price for symbol, price in event.mids.items()}
        elif isinstance(event, Trades):
            event.market = SPOT_PREFIX + event.market
            for trade in event.trades:
                trade.market = event.market
        else:
            event.market = SPOT_PREFIX + event.market
    return decoded


def _levels(raw: Any, what: str) -> list[Level]:
    rows = fields.array(raw, what)
    if any(type(row) is not list for row in rows):
        raise DecodeError(f"{what} level is not an array")
    return list(zip(fields.prices([row[0] for row in rows], what), fields.sizes([row[1] for row in rows], what)))


def _depth_update(p: dict[str, Any]) -> Data:
    symbol = fields.name(p["s"], "depth.s")
    previous = p.get("pu")
    delta = BookDelta(
        market=symbol,
        bids=_levels(p["b"], "bid"),
        asks=_levels(p["a"], "ask"),
        time_ms=fields.time_ms(p["E"], "depth.E"),
        first_sequence=fields.integer(p["U"], "depth.U"),
        last_sequence=fields.integer(p["u"], "depth.u"),
        previous_sequence=None if previous is None else fields.integer(previous, "depth.pu"),
    )
    return Data(("book", symbol), delta)


def _agg_trade(p: dict[str, Any]) -> Data:
    symbol = fields.name(p["s"], "aggTrade.s")
    buyer_is_maker = p["m"]
    if type(buyer_is_maker) is not bool:
        raise DecodeError("aggTrade.m is not a boolean")
    trade = Trade(
        market=symbol,
        price=fields.price(p["p"], "aggTrade.p"),
        size=fields.size(p["q"], "aggTrade.q"),
        side=Side.SELL if buyer_is_maker else Side.BUY,
        time_ms=fields.time_ms(p["T"], "aggTrade.T"),
        trade_id=str(fields.integer(p["a"], "aggTrade.a")),
    )
    return Data(("trades", symbol), Trades(symbol, [trade]))


def _kline(p: dict[str, Any]) -> Data:
    k = fields.obj(p["k"], "kline.k")
    symbol = fields.name(k["s"], "kline.s")
    candle = Candle(
        market=symbol,
        interval=fields.name(k["i"], "kline.i"),
        open_time_ms=fields.time_ms(k["t"], "kline.t"),
        close_time_ms=fields.time_ms(k["T"], "kline.T"),
        open=fields.price(k["o"], "kline.o"),
        high=fields.price(k["h"], "kline.h"),
        low=fields.price(k["l"], "kline.l"),
        close=fields.price(k["c"], "kline.c"),
        volume=fields.size(k["v"], "kline.v"),
        trade_count=fields.integer(k["n"], "kline.n"),
    )
    return Data(("kline", symbol, candle.interval), candle)


def _ticker_24h(p: dict[str, Any]) -> Data:
    symbol = fields.name(p["s"], "ticker.s")
    ticker = Ticker(
        market=symbol,
        last=fields.price(p["c"], "ticker.c"),
        prev_day_price=fields.optional_decimal(p.get("o"), "ticker.o"),
        volume_24h=fields.optional_decimal(p.get("q"), "ticker.q"),
        time_ms=fields.time_ms(p["E"], "ticker.E"),
    )
    return Data(("ticker", symbol), ticker)


def _mark_price(p: dict[str, Any]) -> Data:
    symbol = fields.name(p["s"], "markPrice.s")
    ticker = Ticker(
        market=symbol,
        mark=fields.price(p["p"], "markPrice.p"),
        index=fields.optional_decimal(p.get("i"), "markPrice.i"),
        funding_rate=fields.optional_decimal(p.get("r"), "markPrice.r", signed=True),
        time_ms=fields.time_ms(p["E"], "markPrice.E"),
    )
    return Data(("ticker", symbol), ticker)


def _book_ticker(p: dict[str, Any]) -> Data:
    symbol = fields.name(p["s"], "bookTicker.s")
    bid = (fields.price(p["b"], "bookTicker.b"), fields.size(p["B"], "bookTicker.B"))
    ask = (fields.price(p["a"], "bookTicker.a"), fields.size(p["A"], "bookTicker.A"))
    time = p.get("E")
    return Data(("bbo", symbol), Bbo(symbol, bid, ask, None if time is None else fields.time_ms(time, "bookTicker.E")))


_DECODERS = {
    "depthUpdate": _depth_update,
    "aggTrade": _agg_trade,
    "kline": _kline,
    "24hrTicker": _ticker_24h,
    "markPriceUpdate": _mark_price,
    "bookTicker": _book_ticker,
}


# --- REST -------------------------------------------------------------------------------------


def _depth_snapshot(market: str, raw: Any) -> BookSnapshot:
    body = fields.obj(raw, "depth")
    time = body.get("E") or body.get("T")
    return BookSnapshot(
        market=market,
        bids=_levels(body["bids"], "bid"),
        asks=_levels(body["asks"], "ask"),
        time_ms=None if time is None else fields.time_ms(time, "depth.E"),
        sequence=fields.integer(body["lastUpdateId"], "lastUpdateId"),
    )


def _kline_row(market: str, interval: str, raw: Any) -> Candle:
    row = fields.array(raw, "kline row")
    return Candle(
        market=market,
        interval=interval,
        open_time_ms=fields.time_ms(row[0], "kline open time"),
        close_time_ms=fields.time_ms(row[6], "kline close time"),
        open=fields.price(row[1], "kline open"),
        high=fields.price(row[2], "kline high"),
        low=fields.price(row[3], "kline low"),
        close=fields.price(row[4], "kline close"),
        volume=fields.size(row[5], "kline volume"),
        trade_count=fields.integer(row[8], "kline trades"),
    )


def _last_prices(raw: Any, spot: bool) -> dict[str, str]:
    tickers = (fields.obj(t, "ticker") for t in fields.array(raw, "tickers"))
    return {
        _market(fields.name(t["symbol"], "symbol"), spot): fields.price(t["lastPrice"], "lastPrice")
        for t in tickers
    }


def _listings(raw: Any, kind: str) -> list[MarketInfo]:
    listings = []
    symbols = fields.array(fields.obj(raw, "exchangeInfo")["symbols"], "symbols")
    for symbol in (fields.obj(item, "symbol") for item in symbols):
        if symbol.get("status") != "TRADING":
            continue
        name = fields.name(symbol["symbol"], "symbol")
        base = fields.name(symbol["baseAsset"], "baseAsset")
        quote = fields.name(symbol["quoteAsset"], "quoteAsset")
        spot = kind == "spot"
        listings.append(
            MarketInfo(
                venue=Venue.ASTER,
                market=_market(name, spot),
                display=f"{base}/{quote}" if spot else f"{base}{quote}-PERP",
                kind=kind,
                price_decimals=_precision(symbol, "pricePrecision", "PRICE_FILTER", "tickSize"),
                size_decimals=_precision(symbol, "quantityPrecision", "LOT_SIZE", "stepSize"),
            )
        )
    return listings


def _precision(symbol: dict[str, Any], field: str, filter_type: str, step_field: str) -> int | None:
    """Decimals from the explicit precision (perps) or the filter's step (spot)."""
    if (value := symbol.get(field)) is not None:
        return fields.integer(value, field, high=20)
    for item in symbol.get("filters") or ():
        if isinstance(item, dict) and item.get("filterType") == filter_type:
            step = fields.decimal_text(item.get(step_field), step_field).rstrip("0")
            return len(step.partition(".")[2])
    return None
