"""Venue-neutral market-data model.

Every adapter turns its venue's frames into these events; everything above the adapters (the
subscription service, the stream state, the widgets) speaks only this vocabulary.

Prices and sizes stay the venue's decimal strings from the wire until they are displayed or used as
book keys (then :class:`decimal.Decimal`, never ``float``): a string costs nothing to keep and is
exact, and a book keyed by float silently merges or splits levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias


class Venue(StrEnum):
    """Venue ids, used in config, on screen, in recordings and by ``perpterm sim``."""

    HYPERLIQUID = "hyperliquid"
    ASTER = "aster"
    POLYMARKET = "polymarket"
    PERPS_STUDIO = "perps-studio"
    HYPERCALL = "hypercall"
    PERPEX = "perpex"
    RAILS = "rails"


class Channel(StrEnum):
    """What a stream carries, independent of what the venue calls it."""

    BOOK = "book"
    TRADES = "trades"
    CANDLES = "candles"
    TICKER = "ticker"
    ALL_MIDS = "all_mids"
    BBO = "bbo"


class Side(StrEnum):
    """Aggressor side of a trade (the side that crossed the spread)."""

    BUY = "buy"
    SELL = "sell"


class ConnectionState(StrEnum):
    """States of one supervised connection, in the order a healthy one passes through them."""

    CONNECTING = "connecting"
    LIVE = "live"
    STALE = "stale"  # open, but silent and an unanswered liveness probe is out
    RECONNECTING = "reconnecting"  # waiting out the backoff before the next attempt
    FAILED = "failed"  # not retried (e.g. authentication refused); ``reason`` says why
    CLOSED = "closed"  # stopped on purpose


class StreamState(StrEnum):
    """States of one upstream subscription, as widgets show them."""

    PENDING = "pending"  # requested, no data yet
    LIVE = "live"
    STALE = "stale"  # data can no longer be trusted as current
    RESYNCING = "resyncing"  # state is being rebuilt from a snapshot
    ERROR = "error"  # the venue refused the subscription; ``reason`` says why


Level: TypeAlias = tuple[str, str]
"""One book level: (price, size) as the venue's decimal strings."""

Params: TypeAlias = tuple[tuple[str, Any], ...]
"""Channel options (e.g. candle interval, book precision) as sorted, hashable pairs."""


def freeze_params(params: dict[str, Any] | None) -> Params:
    """Turn an options dict into the hashable form used in :class:`StreamKey`."""
    return tuple(sorted((params or {}).items()))


@dataclass(frozen=True, slots=True)
class StreamKey:
    """Identifies one upstream stream; equal keys share one venue subscription."""

    venue: Venue
    channel: Channel
    market: str = ""  # venue-native market name ("BTC", "@107"); empty for all-market channels
    params: Params = ()

    def param(self, name: str, default: Any = None) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        return default

    def __str__(self) -> str:
        options = ",".join(f"{k}={v}" for k, v in self.params)
        return f"{self.venue}:{self.channel}:{self.market}" + (f"[{options}]" if options else "")


# --- Events -------------------------------------------------------------------------------------


@dataclass(slots=True)
class BookSnapshot:
    """A full book: replaces whatever was held. Levels best first."""

    market: str
    bids: list[Level]
    asks: list[Level]
    time_ms: int | None = None
    sequence: int | None = None  # venue sequence where it has one (e.g. Aster lastUpdateId)


@dataclass(slots=True)
class BookDelta:
    """Changed levels with the new absolute size; size zero removes the level.

    ``first_sequence``/``last_sequence``/``previous_sequence`` carry the venue's chain fields
    (Aster ``U``/``u``/``pu``) so the book can detect a gap; ``None`` where the venue has none.
    """

    market: str
    bids: list[Level]
    asks: list[Level]
    time_ms: int | None = None
    first_sequence: int | None = None
    last_sequence: int | None = None
    previous_sequence: int | None = None


@dataclass(slots=True)
class Trade:
    market: str
    price: str
    size: str
    side: Side
    time_ms: int
    trade_id: str  # unique within (market, time_ms) at least; used to drop duplicates


@dataclass(slots=True)
class Trades:
    """A batch of trades; ``backlog`` marks the recent-history frame some venues send first."""

    market: str
    trades: list[Trade]
    backlog: bool = False


@dataclass(slots=True)
class Candle:
    market: str
    interval: str
    open_time_ms: int
    close_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    trade_count: int | None = None


@dataclass(slots=True)
class CandleHistory:
    """Candles from a REST snapshot, oldest first: replaces the series."""

    market: str
    interval: str
    candles: list[Candle]


@dataclass(slots=True)
class Ticker:
    """Mark/index/funding/volume context of one market. ``None`` fields are unknown: a venue that
    splits the context over several streams sends each part with the others ``None``, and the
    stream state merges them."""

    market: str
    mark: str | None = None
    mid: str | None = None
    index: str | None = None  # oracle / index price
    funding_rate: str | None = None
    open_interest: str | None = None
    volume_24h: str | None = None  # quote notional
    prev_day_price: str | None = None
    last: str | None = None  # last trade price (spot markets have no mark)
    time_ms: int | None = None


@dataclass(slots=True)
class Bbo:
    market: str
    bid: Level | None
    ask: Level | None
    time_ms: int | None = None


@dataclass(slots=True)
class AllMids:
    """Price of every market of the venue (mid, or last where the venue has no mid); replaces
    the previous map, or with ``partial`` updates only the markets it names (Aster's
    ``!ticker@arr`` carries only the symbols that changed)."""

    mids: dict[str, str] = field(default_factory=dict)
    partial: bool = False


@dataclass(slots=True)
class BookInvalidated:
    """The venue says the held book no longer holds (e.g. Polymarket's tick size changed): the
    stream resyncs from a fresh snapshot."""

    market: str
    reason: str


MarketEvent: TypeAlias = (
    BookSnapshot | BookDelta | BookInvalidated | Trades | Candle | CandleHistory | Ticker | Bbo | AllMids
)


@dataclass(slots=True)
class StreamStatus:
    """A stream changed state; delivered to the stream's consumers like a market event."""

    key: StreamKey
    state: StreamState
    reason: str = ""


@dataclass(slots=True)
class ConnectionStatus:
    """A supervised connection changed state."""

    venue: Venue
    label: str  # connection label without secrets, e.g. "hyperliquid#1"
    state: ConnectionState
    reason: str = ""
    retry_in: float | None = None  # seconds until the next attempt, while reconnecting


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """One tradable market as listed by the venue (for the market picker)."""

    venue: Venue
    market: str  # venue-native name used on the wire
    display: str  # what a trader reads, e.g. "HYPE/USDC" for "@107"
    kind: str  # "perp", "spot", "option", "prediction", ...
    price_decimals: int | None = None
    size_decimals: int | None = None
    event: str | None = None  # what several markets belong to (a prediction's condition id)
    outcome: str | None = None  # this market's outcome within the event ("Yes", "No")


@dataclass(slots=True)
class ConnectionHealth:
    """A read-only summary of one connection for the status bar and the health display."""

    venue: Venue
    label: str
    state: ConnectionState
    reason: str = ""
    retry_in: float | None = None  # seconds until the next attempt, while reconnecting
    data_age: float | None = None  # seconds since the last data frame, None before the first
    message_rate: float = 0.0  # inbound frames per second over the last few seconds
    reconnects: int = 0
    decode_errors: int = 0
    streams: int = 0
    resyncs: int = 0  # books (or other state) rebuilt from a snapshot, over the streams carried
    gaps: int = 0  # sequence breaks seen in those streams' books
