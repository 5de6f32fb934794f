"""Per-stream state: what events are folded into, and what widgets read.

Ingest applies each event here as it arrives (cheap: no formatting); widgets read on a timer and
skip work when :attr:`StreamData.generation` has not moved. One instance per upstream stream, shared
by every consumer of that stream.
"""

from __future__ import annotations

import time
from collections import deque
from typing import ClassVar

from app.book import OrderBook
from app.model import (
    AllMids,
    Bbo,
    BookDelta,
    BookSnapshot,
    Candle,
    CandleHistory,
    Channel,
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

    def __init__(self) -> None:
        self.generation = 0

    def apply(self, event: MarketEvent) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        """Forget everything (used before a resync so no stale data can survive it)."""
        self.generation += 1


class BookData(StreamData):
    channel = Channel.BOOK

    def __init__(self) -> None:
        super().__init__()
        self.book = OrderBook()

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, BookSnapshot):
            self.book.replace(event.bids, event.asks, event.time_ms, event.sequence)
        elif isinstance(event, BookDelta):
            self.book.apply(event.bids, event.asks, event.time_ms, event.last_sequence)
        else:
            return
        self.generation += 1
        if self.book.crossed:
            raise ResyncNeeded(f"crossed book: bid {self.book.best_bid} >= ask {self.book.best_ask}")

    def clear(self) -> None:
        self.book.clear()
        super().clear()


class TradeTape(StreamData):
    """The most recent trades, newest last, with duplicates (backlog replays) dropped."""

    channel = Channel.TRADES

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

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, CandleHistory):
            self.candles.clear()
            self.candles.extend(event.candles)
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
        super().clear()


class TickerData(StreamData):
    channel = Channel.TICKER

    def __init__(self) -> None:
        super().__init__()
        self.ticker: Ticker | None = None

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, Ticker):
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
            self.mids = event.mids
            self.generation += 1


STATE_TYPES: dict[Channel, type[StreamData]] = {
    cls.channel: cls for cls in (BookData, TradeTape, CandleSeries, TickerData, BboData, MidsData)
}


def new_state(channel: Channel) -> StreamData:
    return STATE_TYPES[channel]()


class Stream:
    """One upstream stream: its state, its status and its receive statistics.

    Owned by the subscription service; widgets hold it through a subscription handle and only read.
    Times are ``time.monotonic()`` seconds.
    """

    __slots__ = (
        "key", "data", "state", "reason", "last_data_at", "messages", "resyncs",
        "confirmed", "snapshot_due", "fresh",
    )  # fmt: skip

    def __init__(self, key: StreamKey) -> None:
        self.key = key
        self.data = new_state(key.channel)
        self.state = StreamState.PENDING
        self.reason = ""
        self.last_data_at: float | None = None
        self.messages = 0
        self.resyncs = 0
        # Since the last (re)subscribe: did the venue answer (ack or data), is the REST snapshot
        # this channel cannot be shown without still missing, and has any data been applied?
        # LIVE needs the first and third and not the second (see SubscriptionService.settle).
        self.confirmed = False
        self.snapshot_due = False
        self.fresh = False

    def begin(self, snapshot_due: bool) -> None:
        """A subscribe was (re)sent: nothing from before it counts as current any more."""
        self.confirmed = False
        self.snapshot_due = snapshot_due
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
