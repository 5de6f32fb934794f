"""Per-stream state: what events are folded into, and what widgets read.

Ingest applies each event here as it arrives (cheap: no formatting); widgets read on a timer and
skip work when :attr:`StreamData.generation` has not moved. One instance per upstream stream, shared
by every consumer of that stream.
"""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal
from functools import cache
from enum import StrEnum
from typing import ClassVar

from app.book import OrderBook
from app.model import (
    AllMids,
    Bbo,
    BookDelta,
    BookInvalidated,
    BookSnapshot,
    Candle,
    CandleHistory,
    Channel,
    Level,
    MarketEvent,
    StreamKey,
    StreamState,
    Ticker,
    Trade,
    Trades,
)


class ResyncNeeded(Exception):
    """The state can no longer be trusted (crossed book, sequence gap): rebuild it from a snapshot."""


class StreamData:
    """Base: a generation counter bumped on every change, and event dispatch."""

    channel: ClassVar[Channel]
    # Whether nothing received yet is itself current (a quiet market's empty tape), so the venue's
    # ack is enough to go live; otherwise the first data is awaited.
    empty_is_current: ClassVar[bool] = False

    def __init__(self) -> None:
        self.generation = 0

    def apply(self, event: MarketEvent) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        """Forget everything (used before a resync so no stale data can survive it)."""
        self.generation += 1

    @property
    def complete(self) -> bool:
        """Whether what is held may be shown as the venue's current state (see subclasses)."""
        return True


class BookSync(StrEnum):
    """How a venue's book stream becomes a correct book (see :class:`BookData`)."""

    FULL = "full"  # every push is the whole book (Hyperliquid l2Book): replace, nothing to check
    SNAPSHOT_THEN_DELTAS = "snapshot"  # deltas without sequence follow a snapshot (Polymarket)
    CHAIN_PREVIOUS = "pu"  # sequenced deltas, each naming the previous one's last id (Aster perps)
    CHAIN_NEXT = "next"  # sequenced deltas, each starting at the previous last id + 1 (Aster spot)
    # The socket's own snapshot starts a count that each delta continues by one (Perpex): deltas
    # before it belong to an earlier subscription and are dropped, not buffered.
    SOCKET_SEQUENCED = "socket"


class BookData(StreamData):
    """An order book kept correct by its venue's sync rule.

    Sequenced rules follow the Binance-style local-book procedure: deltas that arrive before the
    snapshot are buffered; the snapshot's sequence (``lastUpdateId``) drops the buffered deltas it
    already covers; the first delta applied must straddle it; every later one must chain on the
    one before. Any break raises :class:`ResyncNeeded` for this book alone, which clears it and
    fetches a new snapshot while new deltas are buffered again. Until a snapshot has been applied
    the book is not :attr:`complete`, so it is never shown as live half-built.
    """

    channel = Channel.BOOK

    def __init__(self, sync: BookSync = BookSync.FULL, buffer_limit: int = 5000) -> None:
        super().__init__()
        self.book = OrderBook()
        self.sync = sync
        self.synced = False
        self.gaps = 0  # chain breaks seen, for the health display
        self._buffer: deque[BookDelta] = deque()
        self._buffer_limit = buffer_limit
        self._last_id: int | None = None  # last sequence applied; None: next delta must straddle
        self._last_levels: tuple[list[Level], list[Level]] | None = None  # what that update changed

    @property
    def complete(self) -> bool:
        return self.synced

    @property
    def _awaiting_straddle(self) -> bool:
        return self._chained and self._last_id is None

    @property
    def _chained(self) -> bool:
        return self.sync is not BookSync.FULL and self.sync is not BookSync.SNAPSHOT_THEN_DELTAS

    @property
    def _next_follows(self) -> bool:
        """Each update starts at the previous one's last id + 1."""
        return self.sync is BookSync.CHAIN_NEXT or self.sync is BookSync.SOCKET_SEQUENCED

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, BookSnapshot):
            if self._older(event):
                return
            self._apply_snapshot(event)
        elif isinstance(event, BookInvalidated):
            raise ResyncNeeded(event.reason)
        elif isinstance(event, BookDelta):
            if not self.synced and self.sync is not BookSync.FULL:
                self._hold(event)
                return
            if self._awaiting_straddle and self._covered(event, self.book.sequence or 0):
                return  # the stream lags the REST snapshot: this update is already in it
            if self._chained and self._last_id is not None and _sequence(event.last_sequence) <= self._last_id:
                if event.last_sequence == self._last_id and self._last_levels != (event.bids, event.asks):
                    self._gap(f"update {self._last_id} came twice with different levels")
                return  # sent twice, or late: every change in it is already applied
            self._apply_delta(event)
        else:
            return
        self.generation += 1
        if self.book.crossed:
            raise ResyncNeeded(f"crossed book: bid {self.book.best_bid} >= ask {self.book.best_ask}")

    def _older(self, event: BookSnapshot) -> bool:
        """A snapshot older than the book held (a slow REST answer, a reordered push): by
        sequence where the venue numbers its updates, by time otherwise."""
        book = self.book
        if not self.synced or book.empty or self.sync is BookSync.SOCKET_SEQUENCED:
            return False  # (a socket snapshot starts a new count: never older)
        if book.sequence is not None and event.sequence is not None:
            return event.sequence < book.sequence
        return book.time_ms is not None and event.time_ms is not None and event.time_ms < book.time_ms

    def _apply_snapshot(self, event: BookSnapshot) -> None:
        if self.synced and self.sync is BookSync.SNAPSHOT_THEN_DELTAS and self.book.levels() != (event.bids, event.asks):
            # The socket's snapshot follows every delta before it: the held book should equal it.
            self.gaps += 1  # it did not: a delta was lost or wrong, and this snapshot repairs it
        self.book.replace(event.bids, event.asks, event.time_ms, event.sequence)
        self.synced = True
        if not self._chained:
            return
        if event.sequence is None:
            raise ResyncNeeded("snapshot without a sequence id")
        self._last_id = None
        buffered, self._buffer = self._buffer, deque()
        for delta in buffered:
            if self._covered(delta, event.sequence):
                continue
            self._apply_delta(delta, snapshot_id=event.sequence)

    def _hold(self, delta: BookDelta) -> None:
        """Before the snapshot: keep sequenced deltas for it, drop the others (the venue's
        snapshot on the socket will include them)."""
        if not self._chained or self.sync is BookSync.SOCKET_SEQUENCED:
            return
        if len(self._buffer) >= self._buffer_limit:
            self._buffer.clear()
            raise ResyncNeeded(f"no snapshot after {self._buffer_limit} buffered updates")
        self._buffer.append(delta)

    def _covered(self, delta: BookDelta, snapshot_id: int) -> bool:
        last = _sequence(delta.last_sequence)
        return last < snapshot_id or (self._next_follows and last == snapshot_id)

    def _apply_delta(self, delta: BookDelta, snapshot_id: int | None = None) -> None:
        if self._chained:
            self._check_chain(delta, snapshot_id if snapshot_id is not None else self.book.sequence)
        self.book.apply(delta.bids, delta.asks, delta.time_ms, delta.last_sequence)
        self._last_id = delta.last_sequence
        self._last_levels = (delta.bids, delta.asks)

    def _check_chain(self, delta: BookDelta, snapshot_id: int | None) -> None:
        first, last = _sequence(delta.first_sequence), _sequence(delta.last_sequence)
        if self._last_id is None:  # the first delta after the snapshot must straddle it
            if snapshot_id is None or not self._straddles(delta, first, last, snapshot_id):
                self._gap(f"first update {first}-{last} does not straddle snapshot {snapshot_id}")
        elif self.sync is BookSync.CHAIN_PREVIOUS:
            if delta.previous_sequence != self._last_id:
                self._gap(f"update {first}-{last} follows {delta.previous_sequence}, not {self._last_id}")
        elif first != self._last_id + 1:  # CHAIN_NEXT, SOCKET_SEQUENCED
            self._gap(f"update {first}-{last} does not follow {self._last_id}")

    def _straddles(self, delta: BookDelta, first: int, last: int, snapshot_id: int) -> bool:
        """Whether nothing lies between the snapshot and this first update. Spot ids are
        consecutive per symbol: ``U <= L + 1 <= u``. Perp ids are shared by every symbol, so a
        quiet book's next update can start well after ``L``; the documented ``U <= L <= u`` is
        then never met, but ``pu <= L <= u`` (the previous update is in the snapshot, this one
        goes past it) proves the same and holds in both cases."""
        if self._next_follows:
            return first <= snapshot_id + 1 <= last
        previous = delta.previous_sequence
        return last >= snapshot_id and (first <= snapshot_id or (previous is not None and previous <= snapshot_id))

    def _gap(self, reason: str) -> None:
        self.gaps += 1
        raise ResyncNeeded(f"gap: {reason}")

    def clear(self) -> None:
        self.book.clear()
        self.synced = False
        self._buffer.clear()
        self._last_id = None
        super().clear()


def _sequence(value: int | None) -> int:
    if value is None:
        raise ResyncNeeded("sequenced update without sequence ids")
    return value


class TradeTape(StreamData):
    """The most recent trades, newest last, with duplicates (backlog replays) dropped."""

    channel = Channel.TRADES
    empty_is_current = True

    def __init__(self, maxlen: int = 500) -> None:
        super().__init__()
        self.trades: deque[Trade] = deque(maxlen=maxlen)
        self._seen: set[tuple[int, str]] = set()
        self._seen_order: deque[tuple[int, str]] = deque()
        self._seen_limit = maxlen * 4

    def apply(self, event: MarketEvent) -> None:
        if not isinstance(event, Trades):
            return
        added = False
        for trade in event.trades:
            key = (trade.time_ms, trade.trade_id)
            if key in self._seen:
                continue
            self._remember(key)
            if self.trades and trade.time_ms < self.trades[-1].time_ms and event.backlog:
                continue  # backlog older than what we already show: history, not news
            self.trades.append(trade)
            added = True
        if added:
            self.generation += 1

    def _remember(self, key: tuple[int, str]) -> None:
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > self._seen_limit:
            self._seen.discard(self._seen_order.popleft())

    def clear(self) -> None:
        # Trades are history, not state: keep them (and the dedupe set) across a resync.
        pass


class CandleSeries(StreamData):
    """Candles oldest first; the last one may still be forming."""

    channel = Channel.CANDLES

    def __init__(self, maxlen: int = 1500) -> None:
        super().__init__()
        self.candles: deque[Candle] = deque(maxlen=maxlen)
        self.has_history = False

    @property
    def complete(self) -> bool:
        """A pushed bar alone is not a chart: complete once the REST history has arrived."""
        return self.has_history

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, CandleHistory):
            self.candles.clear()
            self.candles.extend(event.candles)
            self.has_history = True
        elif isinstance(event, Candle):
            last = self.candles[-1] if self.candles else None
            if last is None or event.open_time_ms > last.open_time_ms:
                self.candles.append(event)
            elif event.open_time_ms == last.open_time_ms:
                self.candles[-1] = event
            else:
                return  # an update for a bar we already closed: ignore
        else:
            return
        self.generation += 1

    def clear(self) -> None:
        self.candles.clear()
        self.has_history = False
        super().clear()


class TradeCandles(CandleSeries):
    """Candles of ``interval_ms`` built from the trades the venue pushes, for a venue that
    streams none (Rails). The first trades (its recent-trade backlog) are all the history there is,
    so the chart starts short and grows. A reconnect keeps the bars (they are what was seen, and a
    backlog refills what it can); trades already counted are skipped by id."""

    def __init__(self, interval: str, interval_ms: int, maxlen: int = 1500) -> None:
        super().__init__(maxlen)
        self.interval = interval
        self.interval_ms = interval_ms
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()

    def apply(self, event: MarketEvent) -> None:
        if not isinstance(event, Trades):
            return
        for trade in sorted(event.trades, key=lambda t: t.time_ms):
            if trade.trade_id in self._seen:
                continue
            self._remember(trade.trade_id)
            self._fold(trade)
        self.has_history = True
        self.generation += 1

    def _fold(self, trade: Trade) -> None:
        opened = trade.time_ms - trade.time_ms % self.interval_ms
        last = self.candles[-1] if self.candles else None
        if last is not None and opened < last.open_time_ms:
            return  # a trade older than the forming bar: its bar is already drawn
        if last is None or opened > last.open_time_ms:
            self.candles.append(Candle(
                trade.market, self.interval, opened, opened + self.interval_ms - 1,
                trade.price, trade.price, trade.price, trade.price, trade.size, 1,
            ))  # fmt: skip
            return
        price = Decimal(trade.price)
        if price > Decimal(last.high):
            last.high = trade.price
        if price < Decimal(last.low):
            last.low = trade.price
        last.close = trade.price
        last.volume = str(Decimal(last.volume) + Decimal(trade.size))
        last.trade_count = (last.trade_count or 0) + 1

    def _remember(self, trade_id: str) -> None:
        self._seen.add(trade_id)
        self._seen_order.append(trade_id)
        if len(self._seen_order) > 5000:
            self._seen.discard(self._seen_order.popleft())

    def clear(self) -> None:
        pass  # bars seen stay through a reconnect (see the class docstring)


class TickerData(StreamData):
    channel = Channel.TICKER

    def __init__(self) -> None:
        super().__init__()
        self.ticker: Ticker | None = None

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, Ticker):
            held = self.ticker
            if held is not None and held.market == event.market:
                for name in Ticker.__slots__:
                    if getattr(event, name) is None:
                        setattr(event, name, getattr(held, name))
            self.ticker = event
            self.generation += 1


class BboData(StreamData):
    channel = Channel.BBO

    def __init__(self) -> None:
        super().__init__()
        self.bbo: Bbo | None = None

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, Bbo):
            self.bbo = event
            self.generation += 1


class MidsData(StreamData):
    channel = Channel.ALL_MIDS

    def __init__(self) -> None:
        super().__init__()
        self.mids: dict[str, str] = {}

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, AllMids):
            self.mids = {**self.mids, **event.mids} if event.partial else event.mids
            self.generation += 1


@cache
def state_types() -> dict[Channel, type[StreamData]]:
    """The state class of each channel (those of :mod:`app.account` too, imported here, late:
    they build on :class:`StreamData`, so that module imports this one)."""
    from app.account import ACCOUNT_STATE_TYPES

    market = (BookData, TradeTape, CandleSeries, TickerData, BboData, MidsData)
    return {cls.channel: cls for cls in (*market, *ACCOUNT_STATE_TYPES)}


def new_state(channel: Channel) -> StreamData:
    return state_types()[channel]()


class Stream:
    """One upstream stream: its state, its status and its receive statistics.

    Owned by the subscription service; widgets hold it through a subscription handle and only read.
    Times are ``time.monotonic()`` seconds.
    """

    __slots__ = (
        "key", "data", "state", "reason", "last_data_at", "messages", "resyncs",
        "confirmed", "fresh", "resync_started_at", "resync_seconds",
    )  # fmt: skip

    def __init__(self, key: StreamKey, data: StreamData | None = None) -> None:
        self.key = key
        self.data = data or new_state(key.channel)
        self.state = StreamState.PENDING
        self.reason = ""
        self.last_data_at: float | None = None
        self.messages = 0
        self.resyncs = 0
        self.resync_started_at: float | None = None  # while resyncing: since when
        self.resync_seconds = 0.0  # time spent resyncing, all resyncs together
        # Since the last (re)subscribe: did the venue answer (ack or data), and has data been
        # applied? LIVE needs both, and complete data (see SubscriptionService.settle).
        self.confirmed = False
        self.fresh = False

    def begin(self) -> None:
        """A subscribe was (re)sent: nothing from before it counts as current any more."""
        self.confirmed = False
        self.fresh = False

    def age(self, now: float | None = None) -> float | None:
        """Seconds since the last data event, or ``None`` before the first one."""
        if self.last_data_at is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_data_at

    @property
    def trustworthy(self) -> bool:
        """Whether the data may be shown as current (live), not dimmed or flagged."""
        return self.state is StreamState.LIVE
