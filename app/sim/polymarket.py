"""Polymarket CLOB emulator: the public market channel ``/ws/market`` and the public REST API on one port.

Follows the wire reference ``protocols/polymarket.md`` and its real captures so that the official
``py-clob-client`` works against it unchanged (only ``host`` pointed here) and the client's adapter
sees the venue's shapes exactly. The markets come from :class:`app.sim.predictions.PredictionMarkets`,
stepped with the shared :class:`~app.sim.engine.MarketEngine` clock; this module only names,
validates, formats and applies the shared fault controls.

Wire facts implemented:

* Subscribe: the first frame must be ``{"assets_ids":[...],"type":"market",...}`` (``type`` compared
  case-insensitively: the current docs say ``market``, the older overview ``MARKET``), with optional
  ``initial_dump`` (default true) and ``custom_feature_enabled``. The dump is ONE JSON array frame of
  ``book`` objects, one per known asset in request order. Later frames with ``"operation":"subscribe"``
  or ``"unsubscribe"`` add or remove assets on the open socket (extra keys such as ``type`` and
  ``markets``, which the official Rust client sends, are ignored); no acks. Subscribing again to an
  asset re-sends its book (the reference's resync path).
* Invalid input, as third-party reports describe the venue: a first frame that is not a valid market
  subscription (a ``PING`` included) closes the socket with 1008 ``invalid subscription payload``
  (nautilus_trader#4864); a second initial subscription (no ``operation``) is answered with the text
  ``INVALID OPERATION`` (nautilus_trader#3717). [D] Any other unusable frame after the subscription
  also gets ``INVALID OPERATION`` and the socket stays open; unknown token ids are ignored silently
  (no book), as the venue sends nothing for them.
* Heartbeat: text ``PING`` -> text ``PONG``.
* ``book``: levels worst -> best (bids ascending, asks descending), decimals as strings, ``timestamp``
  a string of ms, ``tick_size`` and ``last_trade_price`` (three decimals, ``"0.920"``, as both real
  captures print it; ``""`` before the first trade). ``hash`` is the venue's: SHA-1 of the compact
  REST ``/book`` body with ``hash`` set to ``""`` (key order market, asset_id, timestamp, hash, bids,
  asks, min_order_size, tick_size, neg_risk, last_trade_price); this reproduces the hashes of the real
  captures, so REST and WebSocket agree for the same state. A fresh ``book`` follows every taker order
  (the venue re-sends books after trades).
* ``price_change`` (schema since 2025-09-15): ``{market, price_changes:[{asset_id, price, size, side,
  hash, best_bid, best_ask}], timestamp}``, each level change as its YES entry and its NO mirror;
  ``size`` is the level's new total, ``"0"`` deletes; ``hash``/``best_*`` describe that asset's book
  right after the entry (``"0"``/``"1"`` for an empty side). The whole market frame goes to
  subscribers of either token. With ``legacy_price_change=True`` the pre-2025-09 shape instead:
  one frame per asset ``{asset_id, changes:[{price, side, size}], event_type, market, timestamp,
  hash}`` (migration guide), sent to that asset's subscribers.
* ``last_trade_price`` per fill on the taker's token (``side`` = taker side, ``fee_rate_bps`` a
  string); ``tick_size_change`` for both tokens when the market crosses into or out of the extreme
  zone (see the model) or :meth:`PolymarketEmulator.change_tick_size` forces one, followed by a fresh
  ``book`` [D]; ``best_bid_ask`` when an asset's top changes, for connections with custom features.
* REST: ``GET /book``, ``POST /books``, ``GET /price`` (BUY -> best bid, SELL -> best ask, as the
  docs say), ``/midpoint``, ``/spread``, ``/last-trade-price``, ``/tick-size`` (also
  ``/tick-size/<token_id>``; the value is a number), ``/neg-risk``, ``/markets`` (cursor pages:
  base64 offsets, ``"MA=="`` first, ``"LTE="`` end), ``/markets/<condition_id>``, ``/time`` (seconds)
  and ``/`` (``"OK"``). Errors: ``400 {"error":"Invalid token id"}`` for a missing or non-numeric id;
  unknown ids ``404 {"error":"No orderbook exists for the requested token id"}`` on book-backed
  endpoints (the venue's text, UMAprotocol/protocol#4843) and ``404 {"error":"market not found"}``
  on market metadata.

Design decisions where the venue is silent:

* Idleness is the CLIENT's silence (the venue closes sockets that send nothing; the docs ask for a
  PING every 10 s): a socket from which no frame arrived for ``idle_timeout`` seconds (default 60) is
  closed with 1000 ``idle timeout`` (the shared idle close, with :meth:`PolymarketEmulator.idle_since`).
  Only data frames count, not protocol-level pings, since the documented heartbeat is the text ``PING``.
* Book faults (:meth:`~app.sim.server.EmulatorServer.arm_book_fault`, keyed by TOKEN id) apply to the
  next ``price_change`` entries of that token: ``skip`` drops them, ``duplicate`` sends them again in
  a frame of their own right after, ``reorder`` holds them back until after the token's next
  ``price_change`` (or just before its next ``book``), ``delta_before_snapshot`` is kept for the next
  subscription of that token, which then gets a ``price_change`` of the current top level before its
  dump. There are no sequence numbers, so a client only recovers from the next ``book``: every
  subscribed market gets a fresh ``book`` at least every ``book_refresh_interval`` seconds of virtual
  time (default 5; trades usually send one sooner).
* ``flood`` sends ``price_change`` frames (top five levels per side resized and restored, true hashes)
  so that the client's book is the emulator's book again when the burst ends; it does not pause the
  market, so with ``autostep`` a concurrent change can leave a stale level until the next book.
* ``hostile_names=True`` adds markets whose question is hostile terminal text (see
  :data:`app.sim.engine.HOSTILE_NAMES`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from app.sim.engine import DEFAULT_ASSETS, HOSTILE_NAMES, StepEvents
from app.sim.predictions import (
    COARSE_TICK,
    DEFAULT_MARKETS,
    FINE_TICK,
    PRICE_DECIMALS,
    PRICE_ONE,
    SIZE_DECIMALS,
    BinaryMarket,
    BookChanges,
    BookSnapshot,
    LevelChange,
    MarketFill,
    PredictionMarkets,
    TickSizeChange,
    decimal_str,
    hostile_market_specs,
)
from app.sim.server import DEFAULT_SEED, BookFault, EmulatorServer, WsConnection

__all__ = ["PolymarketEmulator", "summary_hash"]

CLOSE_NORMAL = 1000
CLOSE_POLICY_VIOLATION = 1008
INVALID_SUBSCRIPTION = "invalid subscription payload"
INVALID_OPERATION = b"INVALID OPERATION"
INVALID_TOKEN = "Invalid token id"
NO_ORDERBOOK = "No orderbook exists for the requested token id"
MARKET_NOT_FOUND = "market not found"
FIRST_CURSOR, END_CURSOR = "MA==", "LTE="
_MAX_TOKEN_DIGITS = 80
_FLOOD_LEVELS = 5


def _price(units: int) -> str:
    return decimal_str(units, PRICE_DECIMALS)


def _size(units: int) -> str:
    return decimal_str(units, SIZE_DECIMALS)


def _last_trade(units: int | None) -> str:
    """``"0.920"``: the real captures print the book's last trade price with three decimals."""
    return "" if units is None else f"{units // PRICE_ONE}.{units % PRICE_ONE:03d}"


def summary_hash(summary: dict[str, Any]) -> str:
    """The venue's book hash: SHA-1 of the compact ``/book`` body with ``hash`` empty (key order kept)."""
    return hashlib.sha1(orjson.dumps({**summary, "hash": ""})).hexdigest()


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PolymarketEmulator(EmulatorServer):
    """The Polymarket CLOB on the shared emulator mechanism (see the module docstring)."""

    venue = "polymarket"
    ws_path = "/ws/market"

    def __init__(
        self,
        *,
        legacy_price_change: bool = False,
        book_refresh_interval: float = 5.0,
        markets_page_size: int = 1000,
        hostile_names: bool = False,
        idle_timeout: float = 60.0,
        **kwargs: Any,
    ) -> None:
        seed = kwargs.get("seed", DEFAULT_SEED)
        if "engine" not in kwargs:  # the engine is the shared clock; one asset is all it needs
            kwargs["assets"] = DEFAULT_ASSETS[:1]
        super().__init__(idle_timeout=idle_timeout, **kwargs)
        if book_refresh_interval <= 0:
            raise ValueError("book_refresh_interval must be positive")
        self.legacy_price_change = legacy_price_change
        self.book_refresh_ms = int(book_refresh_interval * 1000)
        self.markets_page_size = markets_page_size
        specs = DEFAULT_MARKETS + (hostile_market_specs(HOSTILE_NAMES) if hostile_names else ())
        self.model = PredictionMarkets(seed, specs, start_ms=self.engine.now_ms)
        self._subscribers: dict[str, set[WsConnection]] = {}  # token id -> connections
        self._held: dict[str, tuple[BinaryMarket, int, list[tuple[str, dict[str, str]]]]] = {}  # reorder fault
        self._faults_put_back: dict[str, list[BookFault]] = {}
        self._last_book_ms = {market.condition_id: self.engine.now_ms for market in self.model.markets}
        self._last_top: dict[str, tuple[str, str]] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def idle_since(self, conn: WsConnection) -> float | None:
        """The client's last data frame (pings do not count: the heartbeat is the text ``PING``)."""
        return conn.state.get("last_heard")

    def stall(self, on: bool = True) -> None:
        super().stall(on)
        if not on:  # nothing could arrive while frozen
            now = time.monotonic()
            for conn in self.connections:
                conn.state["last_heard"] = now

    # -- state accessors (tests, conformance harness) --------------------------------------------

    @property
    def token_ids(self) -> list[str]:
        """Every token id, YES then NO per market, in listing order."""
        return [token for market in self.model.markets for token in market.token_ids]

    def book(self, token_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The current book of a token, best level first, as ``(price, size)`` strings."""
        snapshot = self.model.book(token_id)
        return (
            [(_price(px), _size(sz)) for px, sz in reversed(snapshot.bids)],
            [(_price(px), _size(sz)) for px, sz in reversed(snapshot.asks)],
        )

    def book_summary(self, token_id: str) -> dict[str, Any]:
        """What ``GET /book`` answers for this token now."""
        found = self.model.token(token_id)
        if found is None:
            raise KeyError(token_id)
        market, outcome = found
        return self._summary(market, outcome, self.model.book(token_id))

    async def change_tick_size(self, market_or_token: str, tick_size: str) -> None:
        """Force a tick size change (``"0.01"`` or ``"0.001"``) now and publish it (test hook)."""
        ticks = {"0.01": COARSE_TICK, "0.001": FINE_TICK}
        if tick_size not in ticks:
            raise ValueError(f"tick size must be one of {', '.join(ticks)}")
        async with self._step_lock:  # between two steps, never inside one's publishing
            change = self.model.set_tick_size(market_or_token, ticks[tick_size])
            if change is not None:
                await self._publish_tick_size(change)

    # ==============================================================================================
    # Formatting
    # ==============================================================================================

    def _summary(self, market: BinaryMarket, outcome: int, snapshot: BookSnapshot) -> dict[str, Any]:
        """The REST ``/book`` body of one token's book, with the venue's hash (cached per snapshot)."""
        summary = snapshot.cache.get("summary")
        if summary is None:
            summary = {
                "market": market.condition_id,
                "asset_id": market.token_ids[outcome],
                "timestamp": str(snapshot.time),
                "hash": "",
                "bids": [{"price": _price(px), "size": _size(sz)} for px, sz in snapshot.bids],
                "asks": [{"price": _price(px), "size": _size(sz)} for px, sz in snapshot.asks],
                "min_order_size": str(market.spec.min_order_size),
                "tick_size": _price(snapshot.tick),
                "neg_risk": False,
                "last_trade_price": _last_trade(snapshot.last_trade),
            }
            summary["hash"] = summary_hash(summary)
            snapshot.cache["summary"] = summary
        return summary  # type: ignore[return-value]

    def _book_event(self, market: BinaryMarket, outcome: int, snapshot: BookSnapshot) -> dict[str, Any]:
        summary = self._summary(market, outcome, snapshot)
        return {
            "event_type": "book",
            "market": summary["market"],
            "asset_id": summary["asset_id"],
            "timestamp": summary["timestamp"],
            "hash": summary["hash"],
            "bids": summary["bids"],
            "asks": summary["asks"],
            "tick_size": summary["tick_size"],
            "last_trade_price": summary["last_trade_price"],
        }

    @staticmethod
    def _top(snapshot: BookSnapshot) -> tuple[str, str]:
        bid, ask = snapshot.best_bid, snapshot.best_ask
        return ("0" if bid is None else _price(bid)), ("1" if ask is None else _price(ask))

    def _entries(self, market: BinaryMarket, change: LevelChange) -> list[tuple[str, dict[str, str]]]:
        """A YES-terms level change as its two wire entries: the YES level and the NO mirror."""
        mirrored_side = "SELL" if change.side == "BUY" else "BUY"
        entries = []
        for outcome, side, px, book in (
            (0, change.side, change.price, change.book),
            (1, mirrored_side, PRICE_ONE - change.price, change.book.mirrored()),
        ):
            best_bid, best_ask = self._top(book)
            token = market.token_ids[outcome]
            entries.append((token, {
                "asset_id": token,
                "price": _price(px),
                "size": _size(change.size),
                "side": side,
                "hash": self._summary(market, outcome, book)["hash"],
                "best_bid": best_bid,
                "best_ask": best_ask,
            }))  # fmt: skip
        return entries

    def _price_change_frames(self, market: BinaryMarket, t: int, entries: list[tuple[str, dict[str, str]]]) -> list[tuple[bytes, set[WsConnection]]]:
        """Frames of the current (one per market) or legacy (one per asset) shape, with their audience."""
        if not entries:
            return []
        if not self.legacy_price_change:
            frame = {"market": market.condition_id, "price_changes": [entry for _, entry in entries], "timestamp": str(t), "event_type": "price_change"}
            return [(orjson.dumps(frame), self._audience(market))]
        by_asset: dict[str, list[dict[str, str]]] = {}
        for token, entry in entries:
            by_asset.setdefault(token, []).append(entry)
        frames = []
        for token, group in by_asset.items():
            frame = {
                "asset_id": token,
                "changes": [{"price": e["price"], "side": e["side"], "size": e["size"]} for e in group],
                "event_type": "price_change",
                "market": market.condition_id,
                "timestamp": str(t),
                "hash": group[-1]["hash"],
            }
            frames.append((orjson.dumps(frame), set(self._subscribers.get(token, ()))))
        return frames

    def _audience(self, market: BinaryMarket) -> set[WsConnection]:
        yes, no = market.token_ids
        return self._subscribers.get(yes, set()) | self._subscribers.get(no, set())

    def _subscribed(self, market: BinaryMarket) -> bool:
        return any(self._subscribers.get(token) for token in market.token_ids)

    # ==============================================================================================
    # Publishing
    # ==============================================================================================

    async def on_step(self, events: StepEvents) -> None:
        model_events = self.model.step(events.time - self.model.now_ms)
        pending_book: tuple[BinaryMarket, BookSnapshot] | None = None
        for event in model_events:
            if pending_book is not None and not (isinstance(event, MarketFill) and event.market is pending_book[0]):
                await self._publish_books(*pending_book)
                pending_book = None
            if not self._subscribed(event.market):
                continue
            if isinstance(event, BookChanges):
                await self._publish_changes(event)
                await self._publish_top(event.market, event.changes[-1].book)
            elif isinstance(event, MarketFill):
                await self._publish_fill(event)
                pending_book = (event.market, event.book)
            elif isinstance(event, TickSizeChange):
                await self._publish_tick_size(event)
        if pending_book is not None:
            await self._publish_books(*pending_book)
        now = events.time
        for market in self.model.markets:
            if now - self._last_book_ms[market.condition_id] >= self.book_refresh_ms and self._subscribed(market):
                await self._publish_books(market, market.snapshot())

    async def _publish_changes(self, event: BookChanges) -> None:
        market = event.market
        entries = [entry for change in event.changes for entry in self._entries(market, change)]
        tokens = list(dict.fromkeys(token for token, _ in entries))
        released: list[tuple[BinaryMarket, int, list[tuple[str, dict[str, str]]]]] = []
        duplicates: list[list[tuple[str, dict[str, str]]]] = []
        for token in tokens:
            if token in self._held:
                released.append(self._held.pop(token))
            fault = self._next_fault(token, at_subscribe=False)
            if fault is None:
                continue
            own = [entry for entry in entries if entry[0] == token]
            if fault == "skip":
                entries = [entry for entry in entries if entry[0] != token]
            elif fault == "reorder":
                entries = [entry for entry in entries if entry[0] != token]
                self._held[token] = (market, event.time, own)
            elif fault == "duplicate":
                duplicates.append(own)
        frames = self._price_change_frames(market, event.time, entries)
        for own in duplicates:
            frames += self._price_change_frames(market, event.time, own)
        for held_market, held_time, held_entries in released:
            frames += self._price_change_frames(held_market, held_time, held_entries)
        for frame, audience in frames:
            await self.broadcast(audience, frame)

    def _next_fault(self, token: str, *, at_subscribe: bool) -> BookFault | None:
        """The fault armed for this token's next update, in arming order.

        ``delta_before_snapshot`` belongs to the next subscription, so an update leaves it (and the
        faults behind it) armed; a subscription leaves the other kinds armed for the updates.
        """
        if not self._subscribers.get(token) and not at_subscribe:
            return None  # nobody would see it
        put_back = self._faults_put_back.get(token)
        fault = put_back.pop(0) if put_back else self.take_book_fault(token)
        if fault is None:
            return None
        if (fault == "delta_before_snapshot") != at_subscribe:
            self._faults_put_back.setdefault(token, []).insert(0, fault)
            return None
        return fault

    async def _release_held(self, token: str) -> None:
        held = self._held.pop(token, None)
        if held is not None:
            for frame, audience in self._price_change_frames(*held):
                await self.broadcast(audience, frame)

    async def _publish_books(self, market: BinaryMarket, snapshot: BookSnapshot) -> None:
        """A fresh ``book`` per token to its subscribers (after trades, tick changes, refreshes)."""
        self._last_book_ms[market.condition_id] = max(self._last_book_ms[market.condition_id], snapshot.time, self.engine.now_ms)
        for outcome, token in enumerate(market.token_ids):
            subscribers = self._subscribers.get(token)
            if subscribers:
                await self._release_held(token)
                book = snapshot.mirrored() if outcome else snapshot
                await self.broadcast(subscribers, orjson.dumps(self._book_event(market, outcome, book)))
        await self._publish_top(market, snapshot)

    async def _publish_fill(self, fill: MarketFill) -> None:
        market = fill.market
        token = market.token_ids[fill.outcome]
        subscribers = self._subscribers.get(token)
        if subscribers:
            frame = {
                "event_type": "last_trade_price",
                "market": market.condition_id,
                "asset_id": token,
                "price": _price(fill.price),
                "side": fill.side,
                "size": _size(fill.size),
                "fee_rate_bps": "0",
                "timestamp": str(fill.time),
                "transaction_hash": fill.transaction_hash,
            }
            await self.broadcast(subscribers, orjson.dumps(frame))

    async def _publish_tick_size(self, change: TickSizeChange) -> None:
        market = change.market
        for token in market.token_ids:
            subscribers = self._subscribers.get(token)
            if subscribers:
                frame = {
                    "event_type": "tick_size_change",
                    "market": market.condition_id,
                    "asset_id": token,
                    "old_tick_size": _price(change.old_tick),
                    "new_tick_size": _price(change.new_tick),
                    "timestamp": str(change.time),
                }
                await self.broadcast(subscribers, orjson.dumps(frame))
        await self._publish_books(market, change.book)

    async def _publish_top(self, market: BinaryMarket, snapshot: BookSnapshot) -> None:
        """``best_bid_ask`` for tokens whose top changed, to connections with custom features on."""
        for outcome, token in enumerate(market.token_ids):
            book = snapshot.mirrored() if outcome else snapshot
            top = self._top(book)
            if self._last_top.get(token) == top:
                continue
            self._last_top[token] = top
            audience = [conn for conn in self._subscribers.get(token, ()) if conn.state.get("custom")]
            if audience:
                bid, ask = top
                spread_units = (book.best_ask if book.best_ask is not None else PRICE_ONE) - (book.best_bid or 0)
                frame = {
                    "event_type": "best_bid_ask",
                    "market": market.condition_id,
                    "asset_id": token,
                    "best_bid": bid,
                    "best_ask": ask,
                    "spread": _price(spread_units),
                    "timestamp": str(book.time),
                }
                await self.broadcast(audience, orjson.dumps(frame))

    # ==============================================================================================
    # WebSocket requests
    # ==============================================================================================

    async def on_ws_open(self, conn: WsConnection) -> None:
        conn.state.update(subscribed=False, assets=set(), custom=False, last_heard=time.monotonic())

    def on_ws_close(self, conn: WsConnection) -> None:
        for token in conn.state.get("assets", ()):
            self._unsubscribe_token(conn, token)

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        conn.state["last_heard"] = time.monotonic()
        if conn.state.get("rejected"):
            return
        if not conn.state["subscribed"]:
            request = _parse_request(text)
            if request is None or "operation" in request or not isinstance(request.get("type"), str) or request["type"].lower() != "market":
                conn.state["rejected"] = True
                await conn.close(CLOSE_POLICY_VIOLATION, INVALID_SUBSCRIPTION)
                return
            conn.state["subscribed"] = True
            conn.state["custom"] = request.get("custom_feature_enabled") is True
            await self._subscribe(conn, request["assets_ids"], request.get("initial_dump", True))
            return
        if text == "PING":
            await conn.send(b"PONG")
            return
        request = _parse_request(text)
        operation = None if request is None else request.get("operation")
        if operation not in ("subscribe", "unsubscribe"):
            await conn.send(INVALID_OPERATION)  # also a second initial subscription
            return
        assert request is not None
        if isinstance(request.get("custom_feature_enabled"), bool):
            conn.state["custom"] = request["custom_feature_enabled"]
        if operation == "subscribe":
            await self._subscribe(conn, request["assets_ids"], request.get("initial_dump", True))
        else:
            for token in dict.fromkeys(request["assets_ids"]):
                if token in conn.state["assets"]:
                    conn.state["assets"].discard(token)
                    self._unsubscribe_token(conn, token)

    def _unsubscribe_token(self, conn: WsConnection, token: str) -> None:
        subscribers = self._subscribers.get(token)
        if subscribers is not None:
            subscribers.discard(conn)
            if not subscribers:
                del self._subscribers[token]
                self._held.pop(token, None)

    async def _subscribe(self, conn: WsConnection, tokens: list[str], initial_dump: bool) -> None:
        known: list[tuple[BinaryMarket, int, str]] = []
        for token in dict.fromkeys(tokens):
            found = self.model.token(token)
            if found is None:
                continue  # the venue sends nothing for an unknown id
            await self._release_held(token)  # a held frame must not reach the new subscriber after its book
            conn.state["assets"].add(token)
            self._subscribers.setdefault(token, set()).add(conn)
            known.append((*found, token))
        if not initial_dump or not known:
            return
        for market, outcome, token in known:
            if self._next_fault(token, at_subscribe=True) == "delta_before_snapshot":
                await conn.send(self._early_delta(market, outcome))
        books = [self._book_event(market, outcome, self.model.book(token)) for market, outcome, token in known]
        await conn.send(orjson.dumps(books))

    def _early_delta(self, market: BinaryMarket, outcome: int) -> bytes:
        """A ``price_change`` restating the token's top level, as if an order raced the dump."""
        snapshot = market.snapshot()
        if snapshot.bids:
            px, size = snapshot.bids[-1]
            change = LevelChange("BUY", px, size, snapshot)
        elif snapshot.asks:
            px, size = snapshot.asks[-1]
            change = LevelChange("SELL", px, size, snapshot)
        else:
            change = LevelChange("BUY", snapshot.tick, 0, snapshot)
        token = market.token_ids[outcome]
        entries = self._entries(market, change)
        if self.legacy_price_change:
            entries = [entry for entry in entries if entry[0] == token]
        frames = self._price_change_frames(market, snapshot.time, entries)
        return frames[0][0]

    # ==============================================================================================
    # Benchmark flood
    # ==============================================================================================

    async def flood(self, market: str, count: int) -> int:
        """Send ``count`` ``price_change`` frames of one market (a token or condition id) to its
        subscribers as fast as the transports drain; returns the number of frames written.

        The frames resize the top levels and then restore them (true hashes on every entry), so the
        client's book ends equal to the emulator's. Current shape: both tokens' entries, to
        subscribers of either; legacy shape: the named token's frames (YES for a condition id).
        """
        found = self.model.token(market)
        if found is None:
            by_condition = self.model.market(market)
            if by_condition is None:
                raise KeyError(f"unknown market {market!r}")
            found = (by_condition, 0)
        target, outcome = found
        token = target.token_ids[outcome]
        audience = set(self._subscribers.get(token, ())) if self.legacy_price_change else self._audience(target)
        if not audience or count <= 0:
            return 0
        return await self.send_burst(audience, self._flood_frames(target, token, count))

    def _flood_frames(self, market: BinaryMarket, token: str, count: int) -> Iterator[bytes]:
        base = market.snapshot()
        t = self.now_ms()
        levels = [("BUY", px, sz) for px, sz in reversed(base.bids[-_FLOOD_LEVELS:])]
        levels += [("SELL", px, sz) for px, sz in reversed(base.asks[-_FLOOD_LEVELS:])]
        if not levels:
            return
        true_sizes = [sz for _, _, sz in levels]
        sizes = list(true_sizes)
        frames: dict[tuple[int, tuple[int, ...]], bytes] = {}

        def frame(index: int, size: int) -> bytes:
            sizes[index] = size
            key = (index, tuple(sizes))
            cached = frames.get(key)
            if cached is None:
                book_sizes = {(side, px): sz for (side, px, _), sz in zip(levels, sizes, strict=True)}
                bids = tuple((px, book_sizes.get(("BUY", px), sz)) for px, sz in base.bids)
                asks = tuple((px, book_sizes.get(("SELL", px), sz)) for px, sz in base.asks)
                side, px, _ = levels[index]
                book = BookSnapshot(t, base.tick, bids, asks, base.last_trade)
                entries = self._entries(market, LevelChange(side, px, size, book))  # type: ignore[arg-type]
                if self.legacy_price_change:
                    entries = [entry for entry in entries if entry[0] == token]
                cached = frames[key] = self._price_change_frames(market, t, entries)[0][0]
            return cached

        period = 2 * len(levels)
        full, rest = divmod(count, period)
        for round_ in range(full + 1):
            perturbed = min(len(levels), rest // 2) if round_ == full else len(levels)
            bump = (round_ % 7 + 1) * 10**SIZE_DECIMALS
            for index in range(perturbed):
                yield frame(index, true_sizes[index] + bump)
            for index in range(perturbed):
                yield frame(index, true_sizes[index])
        if rest % 2:
            yield frame(0, true_sizes[0])  # a no-op restatement keeps the count exact

    # ==============================================================================================
    # REST
    # ==============================================================================================

    def http_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self._http_ok),
            web.get("/time", self._http_time),
            web.get("/book", self._http_book),
            web.post("/books", self._http_books),
            web.get("/price", self._http_price),
            web.get("/midpoint", self._http_midpoint),
            web.get("/spread", self._http_spread),
            web.get("/last-trade-price", self._http_last_trade_price),
            web.get("/tick-size", self._http_tick_size),
            web.get("/tick-size/{token_id}", self._http_tick_size),
            web.get("/neg-risk", self._http_neg_risk),
            web.get("/markets", self._http_markets),
            web.get("/markets/{condition_id}", self._http_market),
        ]

    def _token_param(self, request: web.Request) -> tuple[BinaryMarket, int, str] | web.Response:
        """The ``token_id`` of a request, or the error response the venue gives for it."""
        token = request.match_info.get("token_id") or request.query.get("token_id", "")
        if not token.isdigit() or not token.isascii() or len(token) > _MAX_TOKEN_DIGITS:
            return _error(400, INVALID_TOKEN)
        found = self.model.token(token)
        if found is None:
            return _error(404, NO_ORDERBOOK if request.path in ("/book", "/price", "/midpoint", "/spread", "/last-trade-price") else MARKET_NOT_FOUND)
        return (*found, token)

    async def _http_ok(self, request: web.Request) -> web.Response:
        return _json("OK")

    async def _http_time(self, request: web.Request) -> web.Response:
        return _json(self.now_ms() // 1000)

    async def _http_book(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        market, outcome, token = found
        return _json(self._summary(market, outcome, self.model.book(token)))

    async def _http_books(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, list) or not all(isinstance(item, dict) and isinstance(item.get("token_id"), str) for item in body):
            return _error(400, "Invalid payload")
        books = []
        for item in body:
            found = self.model.token(item["token_id"])
            if found is not None:  # [D] unknown ids are left out
                books.append(self._summary(*found, self.model.book(item["token_id"])))
        return _json(books)

    async def _http_price(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        side = request.query.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            return _error(400, "Invalid side")
        book = self.model.book(found[2])
        price = book.best_bid if side == "BUY" else book.best_ask
        if price is None:
            return _error(404, NO_ORDERBOOK)
        return _json({"price": _price(price)})

    async def _http_midpoint(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        book = self.model.book(found[2])
        if book.best_bid is None or book.best_ask is None:
            return _error(404, NO_ORDERBOOK)
        return _json({"mid": decimal_str(5 * (book.best_bid + book.best_ask), PRICE_DECIMALS + 1)})

    async def _http_spread(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        book = self.model.book(found[2])
        if book.best_bid is None or book.best_ask is None:
            return _error(404, NO_ORDERBOOK)
        return _json({"spread": _price(book.best_ask - book.best_bid)})

    async def _http_last_trade_price(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        market, outcome, _ = found
        if market.last_trade is None:
            return _json({"price": "", "side": ""})
        price = market.last_trade if outcome == 0 else PRICE_ONE - market.last_trade
        side = market.last_trade_side if outcome == 0 else ("SELL" if market.last_trade_side == "BUY" else "BUY")
        return _json({"price": _price(price), "side": side})

    async def _http_tick_size(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        return _json({"minimum_tick_size": found[0].tick / PRICE_ONE})

    async def _http_neg_risk(self, request: web.Request) -> web.Response:
        found = self._token_param(request)
        if isinstance(found, web.Response):
            return found
        return _json({"neg_risk": False})

    async def _http_markets(self, request: web.Request) -> web.Response:
        cursor = request.query.get("next_cursor") or FIRST_CURSOR
        markets = self.model.markets
        if cursor == END_CURSOR:
            return _json({"data": [], "next_cursor": END_CURSOR, "limit": self.markets_page_size, "count": 0})
        try:
            offset = int(base64.b64decode(cursor, validate=True).decode("ascii"))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return _error(400, "invalid next_cursor")
        if offset < 0:
            return _error(400, "invalid next_cursor")
        page = markets[offset : offset + self.markets_page_size]
        end = offset + self.markets_page_size
        next_cursor = base64.b64encode(str(end).encode()).decode() if end < len(markets) else END_CURSOR
        data = [self._market_json(market) for market in page]
        return _json({"data": data, "next_cursor": next_cursor, "limit": self.markets_page_size, "count": len(data)})

    async def _http_market(self, request: web.Request) -> web.Response:
        market = self.model.market(request.match_info["condition_id"])
        if market is None:
            return _error(404, MARKET_NOT_FOUND)
        return _json(self._market_json(market))

    def _market_json(self, market: BinaryMarket) -> dict[str, Any]:
        """A market as ``/markets`` lists it (field order of real responses)."""
        spec = market.spec
        book = market.snapshot()
        if book.best_bid is not None and book.best_ask is not None:
            yes_price = (book.best_bid + book.best_ask) / (2 * PRICE_ONE)
        else:
            yes_price = (market.last_trade or round(market.fair)) / PRICE_ONE
        listed_ms = self.engine.start_ms - 30 * 86_400_000
        image = f"https://polymarket-upload.s3.us-east-2.amazonaws.com/{spec.slug}.png"
        return {
            "enable_order_book": True,
            "active": True,
            "closed": False,
            "archived": False,
            "accepting_orders": True,
            "accepting_order_timestamp": _iso(listed_ms),
            "minimum_order_size": spec.min_order_size,
            "minimum_tick_size": market.tick / PRICE_ONE,
            "condition_id": market.condition_id,
            "question_id": market.question_id,
            "question": spec.question,
            "description": spec.description,
            "market_slug": spec.slug,
            "end_date_iso": spec.end_date_iso,
            "game_start_time": spec.game_start_time,
            "seconds_delay": spec.seconds_delay,
            "fpmm": "",
            "maker_base_fee": 0,
            "taker_base_fee": 0,
            "notifications_enabled": True,
            "neg_risk": False,
            "neg_risk_market_id": "",
            "neg_risk_request_id": "",
            "icon": image,
            "image": image,
            "rewards": {"rates": None, "min_size": 0, "max_spread": 0},
            "is_50_50_outcome": False,
            "tokens": [
                {"token_id": token, "outcome": name, "price": round(yes_price if index == 0 else 1 - yes_price, 4), "winner": False}
                for index, (token, name) in enumerate(zip(market.token_ids, market.outcomes, strict=True))
            ],
            "tags": list(spec.tags),
        }


def _parse_request(text: str) -> dict[str, Any] | None:
    """A subscription-shaped JSON object (``assets_ids`` a list of strings, flags booleans), else None."""
    try:
        request = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(request, dict):
        return None
    tokens = request.get("assets_ids")
    if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
        return None
    for flag in ("initial_dump", "custom_feature_enabled"):
        if flag in request and not isinstance(request[flag], bool):
            return None
    return request

