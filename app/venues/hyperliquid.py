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
from typing import Any, ClassVar

import orjson

from app.model import (
    AllMids,
    Bbo,
    BookSnapshot,
    Candle,
    CandleHistory,
    Channel,
    MarketEvent,
    MarketInfo,
    Side,
    StreamKey,
    Ticker,
    Trade,
    Trades,
    Venue,
)
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
    VenueError,
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
_BOOK_OPTIONS = ("nSigFigs", "mantissa", "fast")
HISTORY_BARS = 500


def _level(raw: dict[str, Any] | None) -> tuple[str, str] | None:
    return None if raw is None else (raw["px"], raw["sz"])


def _candle(raw: dict[str, Any]) -> Candle:
    return Candle(
        market=raw["s"],
        interval=raw["i"],
        open_time_ms=raw["t"],
        close_time_ms=raw["T"],
        open=raw["o"],
        high=raw["h"],
        low=raw["l"],
        close=raw["c"],
        volume=raw["v"],
        trade_count=raw.get("n"),
    )


def _book(raw: dict[str, Any]) -> BookSnapshot:
    bids, asks = raw["levels"]
    return BookSnapshot(
        market=raw["coin"],
        bids=[(level["px"], level["sz"]) for level in bids],
        asks=[(level["px"], level["sz"]) for level in asks],
        time_ms=raw["time"],
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
    channels = frozenset(_SUBSCRIPTION_TYPE)
    # The venue allows 1000 subscriptions per IP; we stay far below it on one socket.
    max_subscriptions_per_connection = 200
    # Server closes after 60 s of its own silence; ping well inside that (design decision: 20 s).
    liveness = Liveness(ping_interval=20.0, probe_after=5.0, pong_timeout=5.0)
    # l2Book pushes every 0.5 s (fast) to ~5 s (20 levels, 2026); allMids and asset contexts ~1 s.
    stale_after: ClassVar[dict[Channel, float]] = {
        Channel.BOOK: 15.0,
        Channel.ALL_MIDS: 10.0,
        Channel.TICKER: 10.0,
    }

    def subscription(self, key: StreamKey) -> dict[str, Any]:
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
        if key.channel is not Channel.ALL_MIDS and not key.market:
            raise ValueError(f"hyperliquid {key.channel} needs a market")
        if key.channel is Channel.CANDLES and key.param("interval", "1m") not in INTERVAL_MS:
            raise ValueError(f"unknown candle interval {key.param('interval')!r}")

    def route(self, key: StreamKey) -> Hashable:
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
        try:
            channel = message["channel"]
            if channel == "pong":
                return [Pong()]
            data = message["data"]
            decoder = _DECODERS.get(channel)
            if decoder is None:
                raise DecodeError(f"unknown channel {str(channel)[:40]!r}")
            return decoder(data)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"malformed {type(exc).__name__}: {str(exc)[:60]}") from None

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        if key.channel is Channel.BOOK:
            body: dict[str, Any] = {"type": "l2Book", "coin": key.market}
            body["nSigFigs"] = key.param("nSigFigs")
            body["mantissa"] = key.param("mantissa")
            raw = await self.rest.post_json("/info", body)
            return [] if raw is None else [_book(raw)]
        if key.channel is Channel.CANDLES:
            interval = key.param("interval", "1m")
            end = int(time.time() * 1000)
            request = {
                "coin": key.market,
                "interval": interval,
                "startTime": end - HISTORY_BARS * INTERVAL_MS[interval],
                "endTime": end,
            }
            raw = await self.rest.post_json("/info", {"type": "candleSnapshot", "req": request})
            candles = sorted((_candle(c) for c in raw), key=lambda c: c.open_time_ms)
            return [CandleHistory(key.market, interval, candles)]
        if key.channel is Channel.ALL_MIDS:
            body = {"type": "allMids"}
            if dex := key.param("dex"):
                body["dex"] = dex
            raw = await self.rest.post_json("/info", body)
            return [] if raw is None else [AllMids(dict(raw))]
        return []

    async def markets(self) -> list[MarketInfo]:
        meta = await self.rest.post_json("/info", {"type": "meta"})
        spot = await self.rest.post_json("/info", {"type": "spotMeta"})
        markets = [
            MarketInfo(
                venue=self.venue,
                market=asset["name"],
                display=f"{asset['name']}-PERP",
                kind="perp",
                price_decimals=max(0, 6 - asset["szDecimals"]),
                size_decimals=asset["szDecimals"],
            )
            for asset in meta["universe"]
            if not asset.get("isDelisted")
        ]
        tokens = {token["index"]: token for token in spot["tokens"]}
        for pair in spot["universe"]:
            base, quote = (tokens[i] for i in pair["tokens"])
            markets.append(
                MarketInfo(
                    venue=self.venue,
                    market=pair["name"],
                    display=f"{base['name']}/{quote['name']}",
                    kind="spot",
                    price_decimals=max(0, 8 - base["szDecimals"]),
                    size_decimals=base["szDecimals"],
                )
            )
        return markets


def _decode_book(data: Any) -> list[Decoded]:
    return [Data(("l2Book", data["coin"]), _book(data))]


def _decode_trades(data: Any) -> list[Decoded]:
    if not data:
        return []  # empty arrays happen; the official SDK skips them too
    coin = data[0]["coin"]
    trades = [
        Trade(
            market=coin,
            price=raw["px"],
            size=raw["sz"],
            side=Side.BUY if raw["side"] == "B" else Side.SELL,
            time_ms=raw["time"],
            trade_id=str(raw["tid"]),
        )
        for raw in data
    ]
    trades.sort(key=lambda trade: trade.time_ms)
    return [Data(("trades", coin), Trades(coin, trades))]


def _decode_candle(data: Any) -> list[Decoded]:
    candles = data if isinstance(data, list) else [data]  # documented as a list, sent as an object
    return [Data(("candle", raw["s"], raw["i"]), _candle(raw)) for raw in candles]


def _decode_asset_ctx(data: Any) -> list[Decoded]:
    coin, ctx = data["coin"], data["ctx"]
    ticker = Ticker(
        market=coin,
        mark=ctx.get("markPx"),
        mid=ctx.get("midPx"),
        index=ctx.get("oraclePx"),
        funding_rate=ctx.get("funding"),
        open_interest=ctx.get("openInterest"),
        volume_24h=ctx.get("dayNtlVlm"),
        prev_day_price=ctx.get("prevDayPx"),
    )
    return [Data(("activeAssetCtx", coin), ticker)]


def _decode_all_mids(data: Any) -> list[Decoded]:
    mids = data["mids"]
    if not isinstance(mids, dict):
        raise DecodeError("allMids.mids is not an object")
    return [Data(("allMids", data.get("dex") or ""), AllMids(mids))]


def _decode_bbo(data: Any) -> list[Decoded]:
    bid, ask = data["bbo"]
    bbo = Bbo(data["coin"], _level(bid), _level(ask), data.get("time"))
    return [Data(("bbo", data["coin"]), bbo)]


def _decode_ack(data: Any) -> list[Decoded]:
    return [Ack(data["subscription"], unsubscribe=data.get("method") == "unsubscribe")]


def _decode_error(data: Any) -> list[Decoded]:
    message = data if isinstance(data, str) else orjson.dumps(data).decode()
    return [VenueError(message, _embedded_subscription(message))]


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
}
