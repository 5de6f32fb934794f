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
    OPTIONS_CHAIN = "options_chain"  # strikes by expiry of one underlying (market: the underlying)
    LISTINGS = "listings"  # markets created, expired, deleted
    # Account channels: the market is empty; the account is the venue's configured wallet.
    POSITIONS = "positions"  # positions, margin and Greeks
    LIQUIDATION = "liquidation"
    FILLS = "fills"
    ORDERS = "orders"
    COMPETITION = "competition"


ACCOUNT_CHANNELS = frozenset(
    {Channel.POSITIONS, Channel.LIQUIDATION, Channel.FILLS, Channel.ORDERS, Channel.COMPETITION}
)
"""Channels about one account: subscribed only for a venue with a configured wallet."""


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


# --- Options and account events ------------------------------------------------------------------
# Greeks and implied volatilities are floats: venues send them as JSON numbers (model outputs, not
# prices), and nothing is keyed by them. Prices, sizes and money stay decimal strings.


@dataclass(slots=True)
class ChainLeg:
    """One call or put of an options-chain row: top of book, IV and per-contract Greeks."""

    symbol: str
    bid: float | None = None
    ask: float | None = None
    mark: float | None = None  # where the venue sends none: the mid of bid and ask
    bid_iv: float | None = None
    ask_iv: float | None = None
    mark_iv: float | None = None
    delta: float | None = None
    gamma: float | None = None
    theta: float | None = None
    vega: float | None = None


@dataclass(slots=True)
class ChainRow:
    """A strike of one expiry: upserted whole (the venue sends the row with both legs)."""

    underlying: str
    expiry_s: int  # expiry, Unix seconds
    strike: str
    call: ChainLeg | None = None
    put: ChainLeg | None = None


@dataclass(slots=True)
class ChainRemoval:
    """One leg left the chain (it expired or was delisted)."""

    underlying: str
    expiry_s: int
    strike: str
    option_type: str  # "call" or "put"
    symbol: str


@dataclass(slots=True)
class Listing:
    """A market was created, expired or deleted (``info`` is ``None`` for a deletion)."""

    action: str  # "created", "expired", "deleted"
    market: str
    info: MarketInfo | None
    time_ms: int


@dataclass(slots=True)
class Position:
    """An open position. ``size`` is signed (negative: short) in contracts or coins."""

    market: str
    underlying: str
    kind: str  # "perp", "option", "spot"
    size: str
    entry_price: str | None = None
    mark_price: str | None = None
    unrealized_pnl: str | None = None
    liquidation_price: str | None = None
    maintenance_margin: str | None = None


@dataclass(slots=True)
class Positions:
    """The account's positions: all of them (``replace``) or the ones that changed (size zero
    removes a position)."""

    positions: list[Position]
    replace: bool = True
    time_ms: int | None = None


@dataclass(slots=True)
class Margin:
    """Account equity against the venue's maintenance requirement (both USD decimal strings)."""

    equity: str
    maintenance: str
    initial: str | None = None
    available: str | None = None
    time_ms: int | None = None


@dataclass(slots=True)
class LegGreeks:
    """A position's Greeks as the venue computes them, already times the position's quantity:
    delta in underlying units, gamma per 1 USD of the underlying, theta USD per day, vega USD
    per volatility point."""

    market: str
    quantity: str
    delta: float
    gamma: float
    theta: float
    vega: float
    iv: float | None = None


@dataclass(slots=True)
class Greeks:
    """The venue's per-leg Greeks of the whole portfolio (replaces the previous set)."""

    legs: list[LegGreeks]
    time_ms: int | None = None


@dataclass(slots=True)
class PositionExpired:
    market: str
    size: str
    settlement_price: str
    settlement_value: str
    time_ms: int


class LiquidationState(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"
    LIQUIDATING = "Liquidating"


@dataclass(slots=True)
class LiquidationChange:
    """The venue moved the account to ``state`` (``previous`` ``None``: the venue did not say).

    ``lasts``: ``None`` for a venue that reports states (it holds until the next change);
    seconds for one that reports a liquidation as an event (Hyperliquid), shown that long before
    the state is derived from margin again."""

    state: LiquidationState
    previous: LiquidationState | None = None
    equity: str | None = None
    maintenance: str | None = None
    shortfall: str | None = None
    auction_id: str | None = None
    time_ms: int | None = None
    lasts: float | None = None


@dataclass(slots=True)
class Fill:
    """One of the account's fills; ``side`` is the account's side."""

    market: str
    side: Side
    price: str
    size: str
    time_ms: int
    fill_id: str
    order_id: str | None = None
    fee: str | None = None
    taker: bool | None = None
    liquidation: bool = False


@dataclass(slots=True)
class Fills:
    """A batch of fills; ``snapshot`` marks the recent history a venue sends first."""

    fills: list[Fill]
    snapshot: bool = False


@dataclass(slots=True)
class OrderUpdate:
    """An order's new status; ``filled`` is cumulative."""

    order_id: str
    market: str | None
    status: str  # lower case: "open", "filled", "canceled", "rejected", ...
    side: Side | None = None
    price: str | None = None
    size: str | None = None  # original size
    filled: str | None = None
    time_ms: int | None = None
    reason: str | None = None


@dataclass(slots=True)
class OrderUpdates:
    orders: list[OrderUpdate]


@dataclass(slots=True)
class CompetitionSummary:
    lifetime_pnl: str
    competition: str | None = None
    rank: int | None = None
    pnl: str | None = None
    volume: str | None = None
    time_ms: int | None = None


AccountEvent: TypeAlias = (
    Positions | Margin | Greeks | PositionExpired | LiquidationChange | Fills | OrderUpdates | CompetitionSummary
)

MarketEvent: TypeAlias = (
    BookSnapshot
    | BookDelta
    | BookInvalidated
    | Trades
    | Candle
    | CandleHistory
    | Ticker
    | Bbo
    | AllMids
    | ChainRow
    | ChainRemoval
    | Listing
    | AccountEvent
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
    section: str | None = None  # the venue's part it is listed in (perps.studio's vertical: "rwas")
    provider: str | None = None  # the upstream venue behind an aggregator ("hyperliquid", "aster")


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
