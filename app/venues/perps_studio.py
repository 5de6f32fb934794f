"""perps.studio Provider API: one aggregator key in front of Hyperliquid, Aster and Polymarket.

Protocol facts (seed 000 and the perps.studio wire reference): one WebSocket path per vertical
(``/ws/v1/perps``, ``/spot``, ``/rwas``, ``/predictions``), each multiplexing its providers; the API
key is the ``apiKey`` query parameter, and a missing or invalid one closes the socket with 4001
(final: shown as "API key rejected", never retried in a loop). ``{"event":"subscribe"|"unsubscribe",
"data":{provider, channel, params}}`` out; ``{channel, provider, data}`` and ``{"error":{code,
message}}`` in. The server forgets subscriptions on a reconnect and closes a socket idle for 30 s
(our WebSocket pings and subscriptions keep it alive). REST takes the key as ``X-API-Key``.

The key is a ``SecretStr`` until :meth:`PerpsStudioAdapter.dial` puts it in the URL; that URL is
never shown (labels and recordings carry the path only) and the key is registered for redaction
(:mod:`app.secrets`) wherever text could still carry it.

Design decisions, ours (the venue documents no payload inside ``data``; the emulator does the same):

* Market names are ``<vertical>:<provider>:<symbol>``: ``perps:hyperliquid:BTC``,
  ``spot:aster:BTC/USDT``, ``rwas:hyperliquid:xyz:XYZ100`` (a HIP-3 dex and its symbol, as
  Hyperliquid names them), ``predictions:polymarket:<tokenId>``. The all-mids channel of a perps
  provider is ``perps:<provider>``; a prediction market's prices are ``predictions:polymarket`` with
  the ``marketId`` param, mapped to its outcome tokens' last prices.
* Payloads mirror the documented REST shapes (``{price,size}`` levels, decimal strings, ms times)
  and carry their params (``symbol``, ``dex``, ``tokenId``, ``marketId``) so a multiplexed frame
  finds its stream. Each orderbook message is a whole book (replace); prices are partial maps.
* Acks (``{"event":"subscribed","data":{...}}``) are optional; an error may echo the subscription it
  refuses (``"subscription": {...}``), else ``Unknown channel: X`` refuses every stream of X.
* Listings come from ``GET /v1/<vertical>/<provider>/markets`` (not in the docs).
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlencode

import orjson

from app.model import (
    AllMids,
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
    "mainnet": Endpoint("wss://api.perps.studio/ws/v1", "https://api.perps.studio"),
}

VERTICALS = ("perps", "spot", "rwas", "predictions")
PROVIDERS: dict[str, tuple[str, ...]] = {
    "perps": ("hyperliquid", "aster"),
    "spot": ("hyperliquid", "aster"),
    "rwas": ("hyperliquid",),
    "predictions": ("polymarket",),
}
INTERVAL_MS = {
    "1m": 60_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "4h": 14_400_000, "1d": 86_400_000, "1w": 604_800_000,
}  # fmt: skip
BOOK_DEPTH = 20
HISTORY_BARS = 500

_WIRE = {
    Channel.BOOK: "orderbook",
    Channel.TRADES: "trades",
    Channel.TICKER: "ticker",
    Channel.CANDLES: "candle",
    Channel.ALL_MIDS: "prices",
}
_CHANNEL_OF_WIRE = {wire: channel for channel, wire in _WIRE.items()}
_VERTICAL_PATH = re.compile(r"/(?:perps|spot|rwas|predictions)/?$")
_UNKNOWN_CHANNEL = "Unknown channel: "


def split_market(market: str) -> tuple[str, str, str]:
    """``rwas:hyperliquid:xyz:XYZ100`` -> ``("rwas", "hyperliquid", "xyz:XYZ100")``."""
    vertical, _, rest = market.partition(":")
    provider, _, ident = rest.partition(":")
    return vertical, provider, ident


class PerpsStudioAdapter(VenueAdapter):
    venue = Venue.PERPS_STUDIO
    channels = frozenset(_WIRE)
    # Not documented; the emulator refuses the 101st subscription of a socket.
    max_subscriptions_per_connection = 100
    max_messages_per_second = 10  # the emulator closes 4029 above 20 a second
    rest_weight_per_minute = 100  # per API key
    # The server closes a socket idle for 30 s: ping well inside that.
    liveness = Liveness(ping_interval=15.0, probe_after=10.0, pong_timeout=10.0)
    stale_after: ClassVar[dict[Channel, float]] = {Channel.BOOK: 15.0}
    fatal_close_codes: ClassVar[dict[int, str]] = {4001: "API key rejected"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if (key := self.credentials.api_key) is not None:
            self.rest.headers["X-API-Key"] = key.get_secret_value()

    # --- subscriptions -------------------------------------------------------------------------

    def check(self, key: StreamKey) -> None:
        super().check(key)
        vertical, provider, ident = split_market(key.market)
        if vertical not in VERTICALS or provider not in PROVIDERS[vertical]:
            raise ValueError(f"perps-studio market {key.market!r} is not <vertical>:<provider>:<symbol>")
        allowed = {
            "perps": set(_WIRE),
            "spot": {Channel.BOOK, Channel.TRADES, Channel.TICKER},
            "rwas": {Channel.BOOK, Channel.TRADES, Channel.TICKER},
            "predictions": {Channel.BOOK, Channel.ALL_MIDS},
        }[vertical]
        if key.channel not in allowed:
            raise ValueError(f"perps-studio {vertical} has no {key.channel} channel")
        needs_ident = key.channel is not Channel.ALL_MIDS or vertical == "predictions"
        if needs_ident and not ident:
            raise ValueError(f"perps-studio {key.channel} needs a symbol")
        if vertical == "rwas" and ":" not in ident:
            raise ValueError("perps-studio RWA markets are <dex>:<symbol>")
        if key.channel is Channel.CANDLES and key.param("interval", "1m") not in INTERVAL_MS:
            raise ValueError(f"unknown candle interval {key.param('interval')!r}")

    def funding_period_of(self, market: str) -> str:
        return {"hyperliquid": "1h", "aster": "8h"}.get(split_market(market)[1], self.funding_period)

    def group(self, key: StreamKey) -> Hashable:
        return split_market(key.market)[0]  # one socket path per vertical

    async def dial(self, group: Hashable, keys: Sequence[StreamKey] = ()) -> Dial:
        base = _VERTICAL_PATH.sub("", self.endpoint.ws_url.rstrip("/"))
        key = self.credentials.api_key
        query = f"?{urlencode({'apiKey': key.get_secret_value()})}" if key else ""
        return Dial(f"{base}/{group}{query}")

    def subscription(self, key: StreamKey) -> dict[str, Any]:
        vertical, provider, ident = split_market(key.market)
        return {"provider": provider, "channel": _WIRE[key.channel], "params": _params(key, vertical, ident)}

    def route(self, key: StreamKey) -> Hashable:
        vertical, provider, ident = split_market(key.market)
        if key.channel is Channel.CANDLES:
            return ("candle", provider, ident, key.param("interval", "1m"))
        return (_WIRE[key.channel], provider, ident)

    def subscribe_message(self, key: StreamKey) -> str:
        return orjson.dumps({"event": "subscribe", "data": self.subscription(key)}).decode()

    def unsubscribe_message(self, key: StreamKey) -> str:
        return orjson.dumps({"event": "unsubscribe", "data": self.subscription(key)}).decode()

    # --- inbound -------------------------------------------------------------------------------

    def decoder(self, group: Hashable) -> Any:
        vertical = group if isinstance(group, str) else "perps"
        return lambda frame: self._decode(frame, vertical)

    def decode(self, frame: str | bytes) -> list[Decoded]:
        return self._decode(frame, "perps")

    def _decode(self, frame: str | bytes, vertical: str) -> list[Decoded]:
        message = json_frame(frame)
        channel: Any = None
        try:
            message = fields.obj(message, "frame")
            if "error" in message:
                return [_error(message)]
            if (event := message.get("event")) is not None:
                return _event(event, message)
            channel, provider = message["channel"], fields.name(message["provider"], "provider")
            decode = _DECODERS.get(channel) if isinstance(channel, str) else None
            if decode is None:
                raise DecodeError(f"unknown channel {fields.shown(channel)}")
            return decode(vertical, provider, fields.obj(message["data"], f"{channel} data"))
        except SHAPE_ERRORS as exc:
            raise malformed(exc, f"{channel} message" if isinstance(channel, str) else "frame") from None

    # --- REST ----------------------------------------------------------------------------------

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        vertical, provider, ident = split_market(key.market)
        if key.channel is Channel.BOOK:
            path = _book_path(vertical, provider, ident)
            query = {"depth": BOOK_DEPTH} if vertical == "perps" else None
            return self.parse_snapshot(key, await self.rest.get_json(path, query))
        if key.channel is Channel.CANDLES:
            interval = key.param("interval", "1m")
            end = int(time.time() * 1000)
            query = {"interval": interval, "startTime": end - HISTORY_BARS * INTERVAL_MS[interval], "endTime": end}
            path = f"/v1/perps/{provider}/markets/{_segment(ident)}/candles"
            return self.parse_snapshot(key, await self.rest.get_json(path, query))
        if key.channel is Channel.ALL_MIDS and vertical == "perps":
            return self.parse_snapshot(key, await self.rest.get_json(f"/v1/perps/{provider}/prices"))
        return []

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        vertical, provider, ident = split_market(key.market)
        with decoding(f"{key.channel} snapshot"):
            if key.channel is Channel.BOOK:
                book = fields.obj(raw, "orderbook")
                return [_book(key.market, book)]
            if key.channel is Channel.CANDLES:
                interval = key.param("interval", "1m")
                candles = [_candle(key.market, interval, fields.obj(row, "candle")) for row in fields.array(raw, "candles")]
                candles.sort(key=lambda candle: candle.open_time_ms)
                return [CandleHistory(key.market, interval, candles)]
            if key.channel is Channel.ALL_MIDS and vertical == "perps":
                return [_prices(vertical, provider, fields.obj(raw, "prices"), partial=False)]
        return []

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        if not isinstance(group, str) or group not in VERTICALS:
            return None
        match route:
            case ("candle", str(provider), str(ident), str(interval)):
                market = f"{group}:{provider}:{ident}"
                return StreamKey(self.venue, Channel.CANDLES, market, freeze_params({"interval": interval}))
            case (str(wire), str(provider), str(ident)) if wire in _CHANNEL_OF_WIRE:
                market = f"{group}:{provider}:{ident}" if ident else f"{group}:{provider}"
                return StreamKey(self.venue, _CHANNEL_OF_WIRE[wire], market)
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is None or request.method != "GET":
            return None
        parts = [unquote(part) for part in request.path.strip("/").split("/")]
        match parts:
            case ["v1", "perps", provider, "markets", symbol, "orderbook"]:
                return StreamKey(self.venue, Channel.BOOK, f"perps:{provider}:{symbol}")
            case ["v1", "perps", provider, "markets", symbol, "candles"]:
                interval = request.params.get("interval", "1m")
                return StreamKey(self.venue, Channel.CANDLES, f"perps:{provider}:{symbol}", freeze_params({"interval": interval}))
            case ["v1", "perps", provider, "prices"]:
                return StreamKey(self.venue, Channel.ALL_MIDS, f"perps:{provider}")
            case ["v1", "spot", provider, "orderbook", symbol]:
                return StreamKey(self.venue, Channel.BOOK, f"spot:{provider}:{symbol}")
            case ["v1", "rwas", provider, "orderbook", dex, symbol]:
                return StreamKey(self.venue, Channel.BOOK, f"rwas:{provider}:{dex}:{symbol}")
            case ["v1", "predictions", provider, "orderbook", token]:
                return StreamKey(self.venue, Channel.BOOK, f"predictions:{provider}:{token}")
        return None

    async def markets(self) -> list[MarketInfo]:
        markets: list[MarketInfo] = []
        for vertical, providers in PROVIDERS.items():
            for provider in providers:
                raw = await self.rest.get_json(f"/v1/{vertical}/{provider}/markets")
                with decoding(f"{vertical} {provider} markets"):
                    for row in fields.array(raw, "markets"):
                        markets.extend(_listings(vertical, provider, fields.obj(row, "market")))
        return markets


# --- helpers ------------------------------------------------------------------------------------


def _params(key: StreamKey, vertical: str, ident: str) -> dict[str, str]:
    if vertical == "predictions":
        return {"marketId" if key.channel is Channel.ALL_MIDS else "tokenId": ident}
    if key.channel is Channel.ALL_MIDS:
        return {}
    if vertical == "rwas":
        dex, _, symbol = ident.partition(":")
        return {"symbol": symbol, "dex": dex}
    params = {"symbol": ident}
    if key.channel is Channel.CANDLES:
        params["interval"] = key.param("interval", "1m")
    return params


def _market(vertical: str, provider: str, ident: str) -> str:
    """The market name ``<vertical>:<provider>:<ident>`` of a payload's names, refused when longer
    than a market name may be (each part is a name; together they could be twice as long)."""
    market = f"{vertical}:{provider}:{ident}"
    if len(market) > fields.MAX_MARKET_CHARS:
        raise DecodeError(f"market name longer than {fields.MAX_MARKET_CHARS} characters: {fields.shown(market)}")
    return market


def _segment(text: str) -> str:
    return quote(text, safe="")


def _book_path(vertical: str, provider: str, ident: str) -> str:
    if vertical == "perps":
        return f"/v1/perps/{provider}/markets/{_segment(ident)}/orderbook"
    if vertical == "rwas":
        dex, _, symbol = ident.partition(":")
        return f"/v1/rwas/{provider}/orderbook/{_segment(dex)}/{_segment(symbol)}"
    return f"/v1/{vertical}/{provider}/orderbook/{_segment(ident)}"


def _ident(vertical: str, data: dict[str, Any]) -> str:
    """The market part a payload names: its symbol (``dex:symbol`` on RWAs) or token id."""
    if vertical == "predictions":
        return fields.name(data["tokenId"], "tokenId")
    symbol = fields.name(data["symbol"], "symbol")
    return f"{fields.name(data['dex'], 'dex')}:{symbol}" if vertical == "rwas" else symbol


def _levels(raw: Any, what: str) -> list[Level]:
    rows = fields.array(raw, what)
    return list(zip(fields.prices([row["price"] for row in rows], what), fields.sizes([row["size"] for row in rows], what)))


def _book(market: str, data: dict[str, Any]) -> BookSnapshot:
    time_ms = data.get("timestamp")
    return BookSnapshot(
        market=market,
        bids=_levels(data["bids"], "bid"),
        asks=_levels(data["asks"], "ask"),
        time_ms=None if time_ms is None else fields.time_ms(time_ms, "orderbook.timestamp"),
    )


def _candle(market: str, interval: str, data: dict[str, Any]) -> Candle:
    opened = fields.time_ms(data["timestamp"], "candle.timestamp")
    return Candle(
        market=market,
        interval=interval,
        open_time_ms=opened,
        close_time_ms=fields.time_ms(opened + INTERVAL_MS.get(interval, 60_000) - 1, "candle close time"),  # a bar may open in 2099
        open=fields.price(data["open"], "candle.open"),
        high=fields.price(data["high"], "candle.high"),
        low=fields.price(data["low"], "candle.low"),
        close=fields.price(data["close"], "candle.close"),
        volume=fields.size(data["volume"], "candle.volume"),
    )


def _prices(vertical: str, provider: str, data: dict[str, Any], *, partial: bool = True) -> AllMids:
    prices = fields.obj(data["prices"], "prices")
    return AllMids(
        {_market(vertical, provider, fields.name(s, "prices symbol")): fields.price(p, "price") for s, p in prices.items()},
        partial=partial,
    )


def _decode_book(vertical: str, provider: str, data: dict[str, Any]) -> list[Decoded]:
    ident = _ident(vertical, data)
    return [Data(("orderbook", provider, ident), _book(_market(vertical, provider, ident), data))]


def _decode_trades(vertical: str, provider: str, data: dict[str, Any]) -> list[Decoded]:
    ident = _ident(vertical, data)
    market = _market(vertical, provider, ident)
    trades = []
    for raw in fields.array(data["trades"], "trades"):
        trade = fields.obj(raw, "trade")
        side = trade["side"]
        if side not in ("buy", "sell"):
            raise DecodeError(f"trade.side is not buy or sell: {fields.shown(side)}")
        trades.append(
            Trade(
                market=market,
                price=fields.price(trade["price"], "trade.price"),
                size=fields.size(trade["size"], "trade.size"),
                side=Side(side),
                time_ms=fields.time_ms(trade["timestamp"], "trade.timestamp"),
                trade_id=fields.name(trade["id"], "trade.id"),
            )
        )
    if not trades:
        return [Ignored()]
    trades.sort(key=lambda trade: trade.time_ms)
    return [Data(("trades", provider, ident), Trades(market, trades))]


def _decode_ticker(vertical: str, provider: str, data: dict[str, Any]) -> list[Decoded]:
    ident = _ident(vertical, data)
    optional = fields.optional_decimal
    time_ms = data.get("timestamp")
    ticker = Ticker(
        market=_market(vertical, provider, ident),
        mark=optional(data.get("markPrice"), "markPrice"),
        mid=optional(data.get("midPrice"), "midPrice"),
        index=optional(data.get("indexPrice"), "indexPrice"),
        funding_rate=optional(data.get("fundingRate"), "fundingRate", signed=True),
        open_interest=optional(data.get("openInterest"), "openInterest"),
        volume_24h=optional(data.get("quoteVolume24h"), "quoteVolume24h"),
        prev_day_price=optional(data.get("prevDayPrice"), "prevDayPrice"),
        last=optional(data.get("lastPrice"), "lastPrice"),
        time_ms=None if time_ms is None else fields.time_ms(time_ms, "ticker.timestamp"),
    )
    return [Data(("ticker", provider, ident), ticker)]


def _decode_candle(vertical: str, provider: str, data: dict[str, Any]) -> list[Decoded]:
    ident = _ident(vertical, data)
    interval = fields.name(data["interval"], "candle.interval")
    candle = _candle(_market(vertical, provider, ident), interval, data)
    return [Data(("candle", provider, ident, interval), candle)]


def _decode_prices(vertical: str, provider: str, data: dict[str, Any]) -> list[Decoded]:
    if vertical != "predictions":
        return [Data(("prices", provider, ""), _prices(vertical, provider, data))]
    market_id = fields.name(data["marketId"], "marketId")
    mids = {}
    for raw in fields.array(data["outcomes"], "outcomes"):
        outcome = fields.obj(raw, "outcome")
        token = fields.name(outcome["tokenId"], "outcome.tokenId")
        price = outcome.get("lastPrice") or outcome.get("bestBid")
        if price is not None:
            mids[_market(vertical, provider, token)] = fields.decimal_text(price, "outcome price")
    return [Data(("prices", provider, market_id), AllMids(mids, partial=True))]


_DECODERS = {
    "orderbook": _decode_book,
    "trades": _decode_trades,
    "ticker": _decode_ticker,
    "candle": _decode_candle,
    "prices": _decode_prices,
}


def _event(event: Any, message: dict[str, Any]) -> list[Decoded]:
    if event == "pong":
        return [Pong()]
    if event in ("subscribed", "unsubscribed"):
        subscription = fields.obj(message["data"], f"{event} data")
        return [Ack(subscription, unsubscribe=event == "unsubscribed")]
    raise DecodeError(f"unknown event {fields.shown(event)}")


def _error(message: dict[str, Any]) -> VenueError:
    error = fields.obj(message["error"], "error")
    code = fields.name(error["code"], "error.code")
    text = fields.text(error["message"], "error.message")
    subscription = message.get("subscription")
    if isinstance(subscription, dict):
        return VenueError(f"{text} ({code})", subscription)
    if text.startswith(_UNKNOWN_CHANNEL):
        return VenueError(f"{text} ({code})", {"channel": text[len(_UNKNOWN_CHANNEL) :]}, partial=True)
    return VenueError(f"{text} ({code})")


def _listings(vertical: str, provider: str, row: dict[str, Any]) -> list[MarketInfo]:
    if vertical == "predictions":
        market_id = fields.name(row["marketId"], "marketId")
        question = fields.text(row["question"], "question")
        listed = []
        for raw in fields.array(row["outcomes"], "outcomes"):
            outcome = fields.obj(raw, "outcome")
            name = fields.name(outcome["outcome"], "outcome")
            listed.append(
                MarketInfo(
                    venue=Venue.PERPS_STUDIO,
                    market=_market(vertical, provider, fields.name(outcome["tokenId"], "tokenId")),
                    display=f"{question} · {name}",  # an outcome as the Polymarket adapter shows one
                    kind="prediction",
                    event=market_id,
                    outcome=name,
                    section=vertical,
                    provider=provider,
                )
            )
        return listed
    symbol = fields.name(row["symbol"], "symbol")
    if vertical == "rwas":
        dex = fields.name(row["dex"], "dex")
        name = row.get("name")
        label = f"{dex}:{symbol}" + (f" {fields.text(name, 'name', limit=100)}" if name else "")
        return [
            MarketInfo(Venue.PERPS_STUDIO, _market(vertical, provider, f"{dex}:{symbol}"), label, "rwa", section=vertical, provider=provider)
        ]
    price_decimals, size_decimals = row.get("priceDecimals"), row.get("sizeDecimals")
    return [
        MarketInfo(
            venue=Venue.PERPS_STUDIO,
            market=_market(vertical, provider, symbol),
            display=f"{symbol}-PERP {provider}" if vertical == "perps" else f"{symbol} {provider}",
            kind="perp" if vertical == "perps" else "spot",
            price_decimals=None if price_decimals is None else fields.integer(price_decimals, "priceDecimals", high=20),
            size_decimals=None if size_decimals is None else fields.integer(size_decimals, "sizeDecimals", high=20),
            section=vertical,
            provider=provider,
        )
    ]
