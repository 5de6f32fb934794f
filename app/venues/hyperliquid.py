"""Hyperliquid: one WebSocket (``/ws``) for every subscription, REST ``POST /info`` for snapshots.

Protocol facts (see the Hyperliquid wire reference): subscribe with
``{"method":"subscribe","subscription":{...}}``; the server acks on channel ``subscriptionResponse``
echoing a *normalized* subscription (optional fields added as null), so acks are matched by subset;
errors arrive on channel ``error`` as plain strings that embed the offending subscription as JSON;
``l2Book`` is a full snapshot every push (replace, never merge); the first ``trades`` frame is a
backlog; ``candle`` data is a single object although documented as a list; spot coins' asset
context arrives on ``activeSpotAssetCtx``; ``{"method":"ping"}`` is answered by ``{"channel":"pong"}``
without data; the server closes after 60 s of its own silence; a plain-text greeting may arrive.
Every price and size is a decimal string and stays one.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from decimal import Decimal
from typing import Any, ClassVar

import orjson

from app.model import (
    AllMids,
    Fill,
    Fills,
    LiquidationChange,
    LiquidationState,
    Margin,
    OrderUpdate,
    OrderUpdates,
    Position,
    Positions,
    Bbo,
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
from app.venues import fields
from app.venues.base import (
    Ack,
    Data,
    DecodeError,
    Decoded,
    Endpoint,
    Ignored,
    Liveness,
    Pong,
    VenueAdapter,
    SHAPE_ERRORS,
    VenueError,
    decoding,
    malformed,
)

NETWORKS: dict[str, Endpoint] = {
    "mainnet": Endpoint("wss://api.hyperliquid.xyz/ws", "https://api.hyperliquid.xyz"),
    "testnet": Endpoint("wss://api.hyperliquid-testnet.xyz/ws", "https://api.hyperliquid-testnet.xyz"),
}

GREETING = "Websocket connection established."

INTERVAL_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,  # 30 days: only used to size the history window
}

_SUBSCRIPTION_TYPE: dict[Channel, str] = {
    Channel.BOOK: "l2Book",
    Channel.TRADES: "trades",
    Channel.CANDLES: "candle",
    Channel.TICKER: "activeAssetCtx",
    Channel.ALL_MIDS: "allMids",
    Channel.BBO: "bbo",
}
# Account streams, by the venue's subscription type (its frames' channel: userEvents -> "user").
_ACCOUNT_TYPE: dict[Channel, str] = {
    Channel.POSITIONS: "clearinghouseState",
    Channel.FILLS: "userFills",
    Channel.ORDERS: "orderUpdates",
    Channel.LIQUIDATION: "userEvents",
}
_ACCOUNT_ROUTE: dict[Channel, str] = {**_ACCOUNT_TYPE, Channel.LIQUIDATION: "user"}
_CHANNEL_OF_ACCOUNT_ROUTE = {route: channel for channel, route in _ACCOUNT_ROUTE.items()}
ACCOUNT = "account"  # the connection group of account streams: one account per socket (the SDKs')
LIQUIDATION_SHOWN = 60.0  # seconds a liquidation event is shown before margin speaks again
_BOOK_OPTIONS = ("nSigFigs", "mantissa", "fast")
_CHANNEL_OF_TYPE = {  # a route's first part -> channel, where the rest of the route is the coin
    kind: channel for channel, kind in _SUBSCRIPTION_TYPE.items() if channel not in (Channel.CANDLES, Channel.ALL_MIDS)
}
HISTORY_BARS = 500


def _level(raw: Any, what: str) -> Level:
    level = fields.obj(raw, what)
    return (fields.price(level["px"], f"{what}.px"), fields.size(level["sz"], f"{what}.sz"))


def _levels(raw: Any, what: str) -> list[Level]:
    rows = fields.array(raw, what)  # a row that is not an object fails the lookups: a shape error
    return list(zip(fields.prices([row["px"] for row in rows], what), fields.sizes([row["sz"] for row in rows], what)))


def _candle(raw: Any) -> Candle:
    candle = fields.obj(raw, "candle")
    count = candle.get("n")
    return Candle(
        market=fields.name(candle["s"], "candle.s"),
        interval=fields.name(candle["i"], "candle.i"),
        open_time_ms=fields.time_ms(candle["t"], "candle.t"),
        close_time_ms=fields.time_ms(candle["T"], "candle.T"),
        open=fields.price(candle["o"], "candle.o"),
        high=fields.price(candle["h"], "candle.h"),
        low=fields.price(candle["l"], "candle.l"),
        close=fields.price(candle["c"], "candle.c"),
        volume=fields.size(candle["v"], "candle.v"),
        trade_count=None if count is None else fields.integer(count, "candle.n"),
    )


def _book(raw: Any) -> BookSnapshot:
    book = fields.obj(raw, "l2Book")
    sides = fields.array(book["levels"], "l2Book.levels")
    if len(sides) != 2:
        raise DecodeError("l2Book.levels is not [bids, asks]")
    return BookSnapshot(
        market=fields.name(book["coin"], "l2Book.coin"),
        bids=_levels(sides[0], "bid"),
        asks=_levels(sides[1], "ask"),
        time_ms=fields.time_ms(book["time"], "l2Book.time"),
    )


def _embedded_subscription(message: str) -> Any:
    """The subscription JSON an error string names (``Invalid subscription {...}``), if any."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        embedded = orjson.loads(message[start:])
    except orjson.JSONDecodeError:
        return None
    if isinstance(embedded, dict) and isinstance(embedded.get("subscription"), dict):
        return embedded["subscription"]  # "Error parsing JSON ...: {whole request}"
    return embedded


class HyperliquidAdapter(VenueAdapter):
    venue = Venue.HYPERLIQUID
    channels = frozenset({*_SUBSCRIPTION_TYPE, *_ACCOUNT_TYPE})
    # The venue allows 1000 subscriptions per IP; we stay far below it on one socket.
    max_subscriptions_per_connection = 200
    # Reference §7: REST weight 1200 a minute per IP (l2Book and allMids 2, candleSnapshot 20 plus
    # one per 60 bars, meta 20); 2000 WebSocket messages a minute (we pace at 30 a second).
    rest_weight_per_minute = 1200
    max_messages_per_second = 30
    # Server closes after 60 s of its own silence; ping well inside that (design decision: 20 s).
    liveness = Liveness(ping_interval=20.0, probe_after=5.0, pong_timeout=5.0)
    # l2Book pushes every 0.5 s (fast) to ~5 s (20 levels, 2026); allMids and asset contexts ~1 s.
    stale_after: ClassVar[dict[Channel, float]] = {
        Channel.BOOK: 15.0,
        Channel.ALL_MIDS: 10.0,
        Channel.TICKER: 10.0,
    }

    def group(self, key: StreamKey) -> Hashable:
        return ACCOUNT if key.channel in _ACCOUNT_TYPE else ()

    def subscription(self, key: StreamKey) -> dict[str, Any]:
        if key.channel in _ACCOUNT_TYPE:
            return {"type": _ACCOUNT_TYPE[key.channel], "user": self.wallet}
        subscription: dict[str, Any] = {"type": _SUBSCRIPTION_TYPE[key.channel]}
        if key.channel is Channel.ALL_MIDS:
            if dex := key.param("dex"):
                subscription["dex"] = dex
            return subscription
        subscription["coin"] = key.market
        if key.channel is Channel.CANDLES:
            subscription["interval"] = key.param("interval", "1m")
        elif key.channel is Channel.BOOK:
            for option in _BOOK_OPTIONS:
                if (value := key.param(option)) is not None:
                    subscription[option] = value
        return subscription

    def check(self, key: StreamKey) -> None:
        super().check(key)
        if key.channel in _ACCOUNT_TYPE:
            return
        if key.channel is not Channel.ALL_MIDS and not key.market:
            raise ValueError(f"hyperliquid {key.channel} needs a market")
        if key.channel is Channel.CANDLES and key.param("interval", "1m") not in INTERVAL_MS:
            raise ValueError(f"unknown candle interval {key.param('interval')!r}")

    def route(self, key: StreamKey) -> Hashable:
        if key.channel in _ACCOUNT_ROUTE:
            return (_ACCOUNT_ROUTE[key.channel],)
        if key.channel is Channel.ALL_MIDS:
            return ("allMids", key.param("dex") or "")
        if key.channel is Channel.CANDLES:
            return ("candle", key.market, key.param("interval", "1m"))
        return (_SUBSCRIPTION_TYPE[key.channel], key.market)

    def subscribe_message(self, key: StreamKey) -> str:
        return orjson.dumps({"method": "subscribe", "subscription": self.subscription(key)}).decode()

    def unsubscribe_message(self, key: StreamKey) -> str:
        return orjson.dumps({"method": "unsubscribe", "subscription": self.subscription(key)}).decode()

    def ping_message(self) -> str:
        return '{"method":"ping"}'

    def decode(self, frame: str | bytes) -> list[Decoded]:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            if frame == GREETING:
                return [Ignored()]
            raise DecodeError("frame is not JSON") from None
        channel: Any = None
        try:
            message = fields.obj(message, "frame")
            channel = message["channel"]
            if channel == "pong":
                return [Pong()]
            decoder = _DECODERS.get(channel) if isinstance(channel, str) else None
            if decoder is None:
                raise DecodeError(f"unknown channel {fields.shown(channel)}")
            return decoder(message["data"])
        except SHAPE_ERRORS as exc:
            raise malformed(exc, f"{channel} frame" if isinstance(channel, str) else "frame") from None

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        if key.channel is Channel.BOOK:
            body: dict[str, Any] = {"type": "l2Book", "coin": key.market}
            body["nSigFigs"] = key.param("nSigFigs")
            body["mantissa"] = key.param("mantissa")
            return self.parse_snapshot(key, await self.rest.post_json("/info", body, weight=2))
        if key.channel is Channel.CANDLES:
            interval = key.param("interval", "1m")
            end = int(time.time() * 1000)
            request = {
                "coin": key.market,
                "interval": interval,
                "startTime": end - HISTORY_BARS * INTERVAL_MS[interval],
                "endTime": end,
            }
            raw = await self.rest.post_json(
                "/info", {"type": "candleSnapshot", "req": request}, weight=20 + HISTORY_BARS // 60
            )
            return self.parse_snapshot(key, raw)
        if key.channel is Channel.ALL_MIDS:
            body = {"type": "allMids"}
            if dex := key.param("dex"):
                body["dex"] = dex
            return self.parse_snapshot(key, await self.rest.post_json("/info", body, weight=2))
        if key.channel is Channel.POSITIONS:
            body = {"type": "clearinghouseState", "user": self.wallet}
            return self.parse_snapshot(key, await self.rest.post_json("/info", body, weight=2))
        return []

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        if key.channel is Channel.BOOK:
            with decoding("l2Book snapshot"):
                return [] if raw is None else [_book(raw)]
        if key.channel is Channel.CANDLES:
            with decoding("candleSnapshot"):
                candles = sorted(map(_candle, fields.array(raw, "candles")), key=lambda c: c.open_time_ms)
            return [CandleHistory(key.market, key.param("interval", "1m"), candles)]
        if key.channel is Channel.ALL_MIDS:
            with decoding("allMids snapshot"):
                return [] if raw is None else [AllMids(_mids(raw))]
        if key.channel is Channel.POSITIONS:
            with decoding("clearinghouseState snapshot"):
                return _clearinghouse(raw)
        return []

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        match route:
            case (str(kind),) if kind in _CHANNEL_OF_ACCOUNT_ROUTE:
                return StreamKey(self.venue, _CHANNEL_OF_ACCOUNT_ROUTE[kind])
            case ("allMids", str(dex)):
                return StreamKey(self.venue, Channel.ALL_MIDS, "", freeze_params({"dex": dex} if dex else None))
            case ("candle", str(coin), str(interval)):
                return StreamKey(self.venue, Channel.CANDLES, coin, freeze_params({"interval": interval}))
            case (str(kind), str(coin)) if kind in _CHANNEL_OF_TYPE:
                return StreamKey(self.venue, _CHANNEL_OF_TYPE[kind], coin)
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is None or request.method != "POST" or request.path != "/info":
            return None
        body = request.body if isinstance(request.body, dict) else {}
        match body.get("type"):
            case "l2Book" if isinstance(coin := body.get("coin"), str):
                options = {name: body[name] for name in ("nSigFigs", "mantissa") if body.get(name) is not None}
                return StreamKey(self.venue, Channel.BOOK, coin, freeze_params(options))
            case "candleSnapshot" if isinstance(req := body.get("req"), dict):
                coin, interval = req.get("coin"), req.get("interval")  # not the times: they move
                if isinstance(coin, str) and isinstance(interval, str):
                    return StreamKey(self.venue, Channel.CANDLES, coin, freeze_params({"interval": interval}))
            case "clearinghouseState":
                return StreamKey(self.venue, Channel.POSITIONS)
            case "allMids":
                dex = body.get("dex")
                return StreamKey(self.venue, Channel.ALL_MIDS, "", freeze_params({"dex": dex} if dex else None))
        return None

    async def markets(self) -> list[MarketInfo]:
        meta = await self.rest.post_json("/info", {"type": "meta"}, weight=20)
        spot = await self.rest.post_json("/info", {"type": "spotMeta"}, weight=20)
        with decoding("meta"):
            markets = [
                _listing(asset, "perp", fields.name(asset["name"], "asset name"))
                for asset in map(_object, fields.array(fields.obj(meta, "meta")["universe"], "universe"))
                if not asset.get("isDelisted")
            ]
        with decoding("spotMeta"):
            spot = fields.obj(spot, "spotMeta")
            tokens = {
                fields.integer(token["index"], "token index"): token
                for token in map(_object, fields.array(spot["tokens"], "tokens"))
            }
            for pair in map(_object, fields.array(spot["universe"], "spot universe")):
                base, quote = (tokens[i] for i in fields.array(pair["tokens"], "pair tokens"))
                display = f"{fields.name(base['name'], 'token name')}/{fields.name(quote['name'], 'token name')}"
                markets.append(_listing(base, "spot", display, market=pair["name"]))
        return markets


def _object(raw: Any) -> dict[str, Any]:
    return fields.obj(raw, "listing")


def _listing(asset: dict[str, Any], kind: str, display: str, market: Any = None) -> MarketInfo:
    """A perp asset (``market`` is its name) or a spot pair (``asset`` is its base token)."""
    size_decimals = fields.integer(asset["szDecimals"], "szDecimals", high=20)
    max_decimals = 6 if kind == "perp" else 8  # the venue's price-decimal rule per kind
    return MarketInfo(
        venue=Venue.HYPERLIQUID,
        market=fields.name(asset["name"] if market is None else market, "market name"),
        display=display if kind == "spot" else f"{display}-PERP",
        kind=kind,
        price_decimals=max(0, max_decimals - size_decimals),
        size_decimals=size_decimals,
    )


def _decode_book(data: Any) -> list[Decoded]:
    book = _book(data)
    return [Data(("l2Book", book.market), book)]


def _decode_trades(data: Any) -> list[Decoded]:
    raws = fields.array(data, "trades")
    if not raws:
        return []  # empty arrays happen; the official SDK skips them too
    trades = [_trade(raw) for raw in raws]
    coin = trades[0].market
    if any(trade.market != coin for trade in trades):
        raise DecodeError("trades frame mixes coins")
    trades.sort(key=lambda trade: trade.time_ms)
    return [Data(("trades", coin), Trades(coin, trades))]


def _trade(raw: Any) -> Trade:
    trade = fields.obj(raw, "trade")
    side = trade["side"]
    if side not in ("B", "A"):
        raise DecodeError(f"trade.side is not B or A: {fields.shown(side)}")
    return Trade(
        market=fields.name(trade["coin"], "trade.coin"),
        price=fields.price(trade["px"], "trade.px"),
        size=fields.size(trade["sz"], "trade.sz"),
        side=Side.BUY if side == "B" else Side.SELL,
        time_ms=fields.time_ms(trade["time"], "trade.time"),
        trade_id=str(fields.integer(trade["tid"], "trade.tid")),
    )


def _decode_candle(data: Any) -> list[Decoded]:
    raws = data if isinstance(data, list) else [data]  # documented as a list, sent as an object
    candles = [_candle(raw) for raw in raws]
    return [Data(("candle", c.market, c.interval), c) for c in candles]


def _decode_asset_ctx(data: Any) -> list[Decoded]:
    data = fields.obj(data, "assetCtx")
    coin = fields.name(data["coin"], "assetCtx.coin")
    ctx = fields.obj(data["ctx"], "assetCtx.ctx")
    ticker = Ticker(
        market=coin,
        mark=fields.optional_decimal(ctx.get("markPx"), "markPx"),
        mid=fields.optional_decimal(ctx.get("midPx"), "midPx"),
        index=fields.optional_decimal(ctx.get("oraclePx"), "oraclePx"),
        funding_rate=fields.optional_decimal(ctx.get("funding"), "funding", signed=True),
        open_interest=fields.optional_decimal(ctx.get("openInterest"), "openInterest"),
        volume_24h=fields.optional_decimal(ctx.get("dayNtlVlm"), "dayNtlVlm"),
        prev_day_price=fields.optional_decimal(ctx.get("prevDayPx"), "prevDayPx"),
    )
    return [Data(("activeAssetCtx", coin), ticker)]


def _decode_all_mids(data: Any) -> list[Decoded]:
    data = fields.obj(data, "allMids")
    dex = data.get("dex") or ""
    if dex:
        fields.name(dex, "allMids.dex")
    return [Data(("allMids", dex), AllMids(_mids(data["mids"])))]


def _mids(raw: Any) -> dict[str, str]:
    return {
        fields.name(coin, "allMids coin"): fields.decimal_text(mid, "allMids mid")
        for coin, mid in fields.obj(raw, "allMids.mids").items()
    }


def _decode_bbo(data: Any) -> list[Decoded]:
    data = fields.obj(data, "bbo")
    coin = fields.name(data["coin"], "bbo.coin")
    sides = fields.array(data["bbo"], "bbo.bbo")
    if len(sides) != 2:
        raise DecodeError("bbo.bbo is not [bid, ask]")
    bid, ask = (None if side is None else _level(side, "bbo level") for side in sides)
    time = data.get("time")
    bbo = Bbo(coin, bid, ask, None if time is None else fields.time_ms(time, "bbo.time"))
    return [Data(("bbo", coin), bbo)]


def _decode_ack(data: Any) -> list[Decoded]:
    data = fields.obj(data, "subscriptionResponse")
    subscription = fields.obj(data["subscription"], "subscriptionResponse.subscription")
    return [Ack(subscription, unsubscribe=data.get("method") == "unsubscribe")]


def _decode_error(data: Any) -> list[Decoded]:
    message = data if isinstance(data, str) else orjson.dumps(data).decode()
    subscription = _embedded_subscription(message)
    if message.startswith("Already subscribed") and isinstance(subscription, dict):
        return [Ack(subscription)]  # a re-sent subscribe: the venue confirms it holds it
    return [VenueError(message, subscription)]


def _clearinghouse(raw: Any) -> list[MarketEvent]:
    """Positions and margin from a ``clearinghouseState`` (REST answer or the socket's)."""
    state = fields.obj(raw, "clearinghouseState")
    summary = fields.obj(state["marginSummary"], "marginSummary")
    positions = []
    for entry in fields.array(state["assetPositions"], "assetPositions"):
        position = fields.obj(fields.obj(entry, "assetPosition")["position"], "position")
        coin = fields.name(position["coin"], "position.coin")
        size = fields.decimal_text(position["szi"], "position.szi", signed=True)
        value = fields.optional_decimal(position.get("positionValue"), "positionValue")
        mark = None
        if value is not None and Decimal(size) != 0:
            mark = fields.quotient(value, size.lstrip("+-"))  # not str(): "1E+2" for 100
        positions.append(
            Position(
                market=coin,
                underlying=coin,
                kind="perp",
                size=size,
                entry_price=fields.optional_decimal(position.get("entryPx"), "entryPx"),
                mark_price=mark,
                unrealized_pnl=fields.optional_decimal(position.get("unrealizedPnl"), "unrealizedPnl", signed=True),
                liquidation_price=fields.optional_decimal(position.get("liquidationPx"), "liquidationPx"),
            )
        )
    time = state.get("time")
    time_ms = None if time is None else fields.time_ms(time, "clearinghouseState.time")
    margin = Margin(
        equity=fields.decimal_text(summary["accountValue"], "accountValue", signed=True),
        maintenance=fields.decimal_text(state["crossMaintenanceMarginUsed"], "crossMaintenanceMarginUsed"),
        initial=fields.optional_decimal(summary.get("totalMarginUsed"), "totalMarginUsed"),
        available=fields.optional_decimal(state.get("withdrawable"), "withdrawable"),
        time_ms=time_ms,
    )
    return [Positions(positions, replace=True, time_ms=time_ms), margin]


def _decode_clearinghouse(data: Any) -> list[Decoded]:
    data = fields.obj(data, "clearinghouseState event")
    return [Data(("clearinghouseState",), event) for event in _clearinghouse(data["clearinghouseState"])]


def _fill(raw: Any) -> Fill:
    fill = fields.obj(raw, "fill")
    side = fill["side"]
    if side not in ("B", "A"):
        raise DecodeError(f"fill.side is not B or A: {fields.shown(side)}")
    crossed = fill.get("crossed")
    return Fill(
        market=fields.name(fill["coin"], "fill.coin"),
        side=Side.BUY if side == "B" else Side.SELL,
        price=fields.price(fill["px"], "fill.px"),
        size=fields.size(fill["sz"], "fill.sz"),
        time_ms=fields.time_ms(fill["time"], "fill.time"),
        fill_id=str(fields.integer(fill["tid"], "fill.tid")),
        order_id=str(fields.integer(fill["oid"], "fill.oid")),
        fee=fields.optional_decimal(fill.get("fee"), "fill.fee", signed=True),
        taker=crossed if isinstance(crossed, bool) else None,
        liquidation=fill.get("liquidation") is not None,
    )


def _decode_user_fills(data: Any) -> list[Decoded]:
    data = fields.obj(data, "userFills")
    fills = [_fill(raw) for raw in fields.array(data["fills"], "userFills.fills")]
    return [Data(("userFills",), Fills(fills, snapshot=data.get("isSnapshot") is True))]


def _decode_order_updates(data: Any) -> list[Decoded]:
    updates = []
    for raw in fields.array(data, "orderUpdates"):
        entry = fields.obj(raw, "orderUpdate")
        order = fields.obj(entry["order"], "orderUpdate.order")
        side = order["side"]
        if side not in ("B", "A"):
            raise DecodeError(f"order.side is not B or A: {fields.shown(side)}")
        remaining = fields.size(order["sz"], "order.sz")
        original = fields.size(order.get("origSz", remaining), "order.origSz")
        filled = fields.exact_sum([original, "-" + remaining], "order filled (origSz - sz)")  # refuses sz > origSz
        updates.append(
            OrderUpdate(
                order_id=str(fields.integer(order["oid"], "order.oid")),
                market=fields.name(order["coin"], "order.coin"),
                status=fields.name(entry["status"], "orderUpdate.status").lower(),
                side=Side.BUY if side == "B" else Side.SELL,
                price=fields.price(order["limitPx"], "order.limitPx"),
                size=original,
                filled=filled,
                time_ms=fields.time_ms(entry["statusTimestamp"], "statusTimestamp"),
            )
        )
    return [Data(("orderUpdates",), OrderUpdates(updates))] if updates else [Ignored()]


def _decode_user_events(data: Any) -> list[Decoded]:
    """``userEvents``: only the liquidation variant is news here (fills arrive on userFills)."""
    data = fields.obj(data, "userEvents")
    if (raw := data.get("liquidation")) is None:
        return [Ignored()]
    event = fields.obj(raw, "liquidation")
    change = LiquidationChange(
        state=LiquidationState.LIQUIDATING,
        equity=fields.decimal_text(event["liquidated_account_value"], "liquidated_account_value", signed=True),
        auction_id=str(fields.integer(event["lid"], "liquidation.lid")),
        lasts=LIQUIDATION_SHOWN,
    )
    return [Data(("user",), change)]


_DECODERS = {
    "l2Book": _decode_book,
    "trades": _decode_trades,
    "candle": _decode_candle,
    "activeAssetCtx": _decode_asset_ctx,
    "activeSpotAssetCtx": _decode_asset_ctx,
    "allMids": _decode_all_mids,
    "bbo": _decode_bbo,
    "subscriptionResponse": _decode_ack,
    "error": _decode_error,
    "post": lambda data: [Ignored()],  # we make no post requests over the socket
    "clearinghouseState": _decode_clearinghouse,
    "userFills": _decode_user_fills,
    "orderUpdates": _decode_order_updates,
    "user": _decode_user_events,
}
