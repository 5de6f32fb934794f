"""Polymarket CLOB market channel: outcome-token books, trades and best prices by asset id.

Protocol facts (see the Polymarket wire reference): one socket (``/ws/market``) subscribes by
*asset ids* (outcome tokens), first with ``{"assets_ids": [...], "type": "market"}`` right after
connecting, later with ``"operation": "subscribe" | "unsubscribe"``; there are no acks, the
``book`` dump for an asset is the answer. ``book`` is a full snapshot (levels worst to best, so
never trust the order) sent on subscribe and again after trades; ``price_change`` carries new
level totals (``"0"`` deletes) in batches that may touch both tokens of a market (current shape)
or one change per frame (the legacy shapes, flat or with ``changes``); ``last_trade_price`` is a
trade; ``tick_size_change`` invalidates the book; a frame may be a JSON array of events;
timestamps are millisecond strings; the heartbeat is the text ``PING`` answered by ``PONG``.

There are no sequence numbers, so a lost ``price_change`` cannot be seen on the stream: the book
is rebuilt from every ``book`` the venue sends, resynced over REST (``GET /book``) on a crossed
book or a tick size change, and never shown before its first snapshot (the shared book sync
``SNAPSHOT_THEN_DELTAS``).

Market names on our side are token ids; each :class:`~app.model.MarketInfo` carries its
condition id as ``event`` and its outcome name, so the app can show a market as its outcomes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from typing import Any, ClassVar

import orjson

from app.model import (
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    Channel,
    Level,
    MarketEvent,
    MarketInfo,
    Side,
    StreamKey,
    Trade,
    Trades,
    Venue,
)
from app.record import parse_request
from app.state import BookData, BookSync, StreamData, new_state
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
    SHAPE_ERRORS,
    VenueAdapter,
    decoding,
    json_frame,
    malformed,
)

NETWORKS: dict[str, Endpoint] = {
    "mainnet": Endpoint("wss://ws-subscriptions-clob.polymarket.com/ws/market", "https://clob.polymarket.com"),
}

MAX_MARKET_PAGES = 20  # /markets is paginated; enough for the picker without crawling the venue
_END_CURSOR = "LTE="  # the venue's "no more pages" cursor


class PolymarketAdapter(VenueAdapter):
    venue = Venue.POLYMARKET
    channels = frozenset({Channel.BOOK, Channel.TRADES})
    # Design decision (reference §3): at most 200 assets a socket; two channels per asset.
    max_subscriptions_per_connection = 400
    max_messages_per_second = 5
    rest_weight_per_minute = 600
    # PING every 10 s keeps the socket open; the official client gives up after 30 s.
    liveness = Liveness(ping_interval=10.0, probe_after=5.0, pong_timeout=10.0)
    stale_after: ClassVar[dict[Channel, float]] = {}

    def check(self, key: StreamKey) -> None:
        super().check(key)
        if not key.market:
            raise ValueError(f"polymarket {key.channel} needs a token id")

    def state_for(self, key: StreamKey) -> StreamData:
        if key.channel is Channel.BOOK:
            return BookData(BookSync.SNAPSHOT_THEN_DELTAS)
        return new_state(key.channel)

    def route(self, key: StreamKey) -> Hashable:
        return (key.channel.value, key.market)

    def subscription(self, key: StreamKey) -> dict[str, str]:
        """Every channel of a token rides one asset subscription; its ``book`` confirms them all."""
        return {"asset_id": key.market}

    def subscribe_messages(self, keys: list[StreamKey], request_id: int, *, initial: bool = False) -> list[str]:
        assets = sorted({key.market for key in keys})
        if initial:
            message = {"assets_ids": assets, "type": "market", "initial_dump": True, "custom_feature_enabled": True}
        elif assets:
            message = {"assets_ids": assets, "operation": "subscribe", "custom_feature_enabled": True}
        else:
            return []
        return [orjson.dumps(message).decode()]

    def unsubscribe_messages(self, keys: list[StreamKey], request_id: int, *, remaining: list[StreamKey]) -> list[str]:
        still_used = {key.market for key in remaining}
        assets = sorted({key.market for key in keys} - still_used)
        if not assets:
            return []
        return [orjson.dumps({"assets_ids": assets, "operation": "unsubscribe"}).decode()]

    def ping_message(self) -> str:
        return "PING"

    def decode(self, frame: str | bytes) -> list[Decoded]:
        if frame in ("PONG", b"PONG"):
            return [Pong()]
        message = json_frame(frame)
        events = message if isinstance(message, list) else [message]
        decoded: list[Decoded] = []
        try:
            for event in events:
                decoded.extend(_decode_event(fields.obj(event, "event")))
        except SHAPE_ERRORS as exc:
            raise malformed(exc, "frame") from None
        return decoded

    async def snapshot(self, key: StreamKey) -> list[MarketEvent]:
        if key.channel is not Channel.BOOK:
            return []
        return self.parse_snapshot(key, await self.rest.get_json("/book", {"token_id": key.market}))

    def parse_snapshot(self, key: StreamKey, raw: Any) -> list[MarketEvent]:
        if key.channel is not Channel.BOOK:
            return []
        with decoding("book snapshot"):
            return [_book(fields.obj(raw, "book"))]

    def key_for_route(self, route: Hashable, group: Hashable) -> StreamKey | None:
        match route:
            case ("book" | "trades" as kind, str(asset)):
                return StreamKey(self.venue, Channel(kind), asset)
        return None

    def key_for_request(self, path: str) -> StreamKey | None:
        request = parse_request(path)
        if request is not None and request.method == "GET" and request.path == "/book":
            if asset := request.params.get("token_id"):
                return StreamKey(self.venue, Channel.BOOK, asset)
        return None

    async def markets(self) -> list[MarketInfo]:
        markets: list[MarketInfo] = []
        cursor = ""
        for _ in range(MAX_MARKET_PAGES):
            page = await self.rest.get_json("/markets", {"next_cursor": cursor} if cursor else None)
            with decoding("markets page"):
                page = fields.obj(page, "markets page")
                for market in fields.array(page["data"], "markets"):
                    markets.extend(_outcomes(fields.obj(market, "market")))
                cursor = fields.name(page.get("next_cursor") or _END_CURSOR, "next_cursor")
            if cursor == _END_CURSOR:
                break
        return markets


# --- events ---------------------------------------------------------------------------------------


def _decode_event(event: dict[str, Any]) -> list[Decoded]:
    kind = event.get("event_type")
    if kind == "book":
        snapshot = _book(event)
        return [Data(("book", snapshot.market), snapshot), Ack({"asset_id": snapshot.market})]
    if kind == "price_change":
        return _price_changes(event)
    if kind == "last_trade_price":
        return [_trade(event)]
    if kind == "tick_size_change":
        asset = fields.name(event["asset_id"], "asset_id")
        new_tick = fields.price(event["new_tick_size"], "new_tick_size")
        return [Data(("book", asset), BookInvalidated(asset, f"tick size changed to {new_tick}"))]
    if kind in ("best_bid_ask", "new_market", "market_resolved"):
        return [Ignored()]  # best prices come from the book itself, which has the sizes too
    raise DecodeError(f"unknown event type {fields.shown(kind)}")


def _levels(raw: Any, what: str) -> list[Level]:
    rows = fields.array(raw, what)  # a row that is not an object fails the lookups: a shape error
    return list(zip(fields.prices([row["price"] for row in rows], what), fields.sizes([row["size"] for row in rows], what)))


def _book(event: dict[str, Any]) -> BookSnapshot:
    return BookSnapshot(
        market=fields.name(event["asset_id"], "asset_id"),
        bids=_levels(event["bids"], "bid"),
        asks=_levels(event["asks"], "ask"),
        time_ms=fields.time_ms_text(event["timestamp"], "book.timestamp"),
    )


def _side_levels(changes: list[dict[str, Any]]) -> tuple[list[Level], list[Level]]:
    bids: list[Level] = []
    asks: list[Level] = []
    levels = zip(fields.prices([c["price"] for c in changes], "change price"), fields.sizes([c["size"] for c in changes], "change size"))
    for change, level in zip(changes, levels):
        side = change["side"]
        if side == "BUY":
            bids.append(level)
        elif side == "SELL":
            asks.append(level)
        else:
            raise DecodeError(f"change side is not BUY or SELL: {fields.shown(side)}")
    return bids, asks


def _price_changes(event: dict[str, Any]) -> list[Decoded]:
    """Book deltas per asset, in the current batched shape or either legacy single-asset shape."""
    time_ms = fields.time_ms_text(event["timestamp"], "price_change.timestamp")
    if "price_changes" in event:
        per_asset: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for change in fields.array(event["price_changes"], "price_changes"):
            change = fields.obj(change, "price change")
            per_asset[fields.name(change["asset_id"], "asset_id")].append(change)
    else:  # legacy: one asset per frame, the changes listed or the one change inline
        changes = event["changes"] if "changes" in event else [event]
        asset = fields.name(event["asset_id"], "asset_id")
        per_asset = {asset: [fields.obj(change, "change") for change in fields.array(changes, "changes")]}
    decoded: list[Decoded] = []
    for asset, changes in per_asset.items():
        bids, asks = _side_levels(changes)
        decoded.append(Data(("book", asset), BookDelta(asset, bids, asks, time_ms)))
    return decoded


def _trade(event: dict[str, Any]) -> Data:
    asset = fields.name(event["asset_id"], "asset_id")
    side = event["side"]
    if side not in ("BUY", "SELL"):
        raise DecodeError(f"trade side is not BUY or SELL: {fields.shown(side)}")
    time_ms = fields.time_ms_text(event["timestamp"], "trade.timestamp")
    price = fields.price(event["price"], "trade.price")
    size = fields.size(event["size"], "trade.size")
    # No trade id on the market channel: the transaction hash when sent, else what the trade is.
    trade_id = event.get("transaction_hash") or f"{price}:{size}:{side}"
    trade = Trade(asset, price, size, Side.BUY if side == "BUY" else Side.SELL, time_ms, str(trade_id)[:100])
    return Data(("trades", asset), Trades(asset, [trade]))


# --- REST -----------------------------------------------------------------------------------------


def _outcomes(market: dict[str, Any]) -> list[MarketInfo]:
    """One market per outcome token of an active, open prediction market."""
    if market.get("closed") or market.get("active") is False:
        return []
    condition = fields.name(market["condition_id"], "condition_id")
    question = fields.text(market["question"], "question") if market.get("question") else condition
    decimals = _tick_decimals(market.get("minimum_tick_size"))
    infos = []
    for token in (fields.obj(t, "token") for t in fields.array(market["tokens"], "tokens")):
        outcome = fields.name(token["outcome"], "outcome")
        infos.append(
            MarketInfo(
                venue=Venue.POLYMARKET,
                market=fields.name(token["token_id"], "token_id"),
                display=f"{question} · {outcome}",
                kind="prediction",
                price_decimals=decimals,
                size_decimals=2,
                event=condition,
                outcome=outcome,
            )
        )
    return infos


def _tick_decimals(tick: Any) -> int | None:
    """Price decimals from the market's tick, which ``/markets`` sends as a JSON number (0.01);
    only for display, so a float is fine here. ``None`` when it is missing or makes no sense."""
    if type(tick) is str:
        tick = float(fields.decimal_text(tick, "minimum_tick_size"))
    if type(tick) not in (int, float) or not 0 < tick < 1:
        return None
    return len(f"{tick:.10f}".rstrip("0").partition(".")[2])
