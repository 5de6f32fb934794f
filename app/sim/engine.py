"""Deterministic, venue-neutral market simulation shared by every venue emulator.

Why a simulation and not canned frames: the client must be tested against books that move, trades
that consume those books, candles that agree with the trades and asset contexts that agree with all
of them, so that a wrong merge or a stale widget shows up as a visible inconsistency. The venue
emulators (``app.sim.hyperliquid`` now; Aster, Polymarket, ... later) only *format* what this module
produces, so every venue sees the same kind of market and a bug in one adapter cannot hide behind
different data.

Determinism: every random draw comes from ``random.Random`` instances seeded from ``seed``; nothing
reads the wall clock. Time is a virtual clock in epoch milliseconds advanced by :meth:`MarketEngine.step`.
The same seed and the same sequence of ``step`` calls give identical books, trades and candles. The
emulator server maps wall time onto this clock; tests step it by hand.

Model (design decisions, the venues say nothing about this):

* One mean-reverting log-price process (Ornstein-Uhlenbeck around the initial price, clamped to
  +-30 %) per *underlying*; assets naming the same underlying (``HYPE`` perp and ``HYPE/USDC`` spot)
  share it. The clamp keeps every price in the decade it started in, so a tick chosen from five
  significant figures at start stays valid (see :func:`price_decimals`).
* A level-based book per asset: market makers keep ~``BOOK_DEPTH`` levels per side around the fair
  price, strictly ``bids < fair < asks`` so the book is never crossed or locked; when the fair price
  moves through a level, that level is sometimes picked off by an arbitrage taker and otherwise
  cancelled. Random takers (Poisson arrivals) consume the top levels, one fill per level, all fills of
  one taker order sharing a hash and a time. Sizes vary (log-normal).
* Prices are integer ticks (``10**-px_decimals``) and sizes integer lots (``10**-sz_decimals``), so
  aggregation is exact and formatting is cheap.
* Candles for all fourteen intervals are aggregated from trades. History before ``start_ms`` is
  generated at construction in layers that get coarser further back (1m for a day, 5m for four days,
  30m for a month, 4h for 200 days, 1d for ~1000 days), so every interval has hundreds of bars and the
  coarse intervals are exact aggregates of the fine ones where they overlap. Aggregated series are
  built lazily per interval and cached.
* One demo account (:data:`DEMO_ADDRESS`) takes part in a small share of trades, so account views
  (fills, positions, balances) have data that is consistent with the public tape.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "DEFAULT_ASSETS",
    "DEFAULT_START_MS",
    "DEMO_ADDRESS",
    "HOSTILE_ASSETS",
    "HOSTILE_NAMES",
    "HOSTILE_TOKEN",
    "CANDLE_INTERVALS",
    "INTERVALS",
    "AssetContext",
    "AssetSpec",
    "Bar",
    "DemoAccount",
    "Fill",
    "MarketEngine",
    "StepEvents",
    "Trade",
    "bucket_start",
    "bucket_end",
    "format_decimal",
    "format_fixed",
    "format_price",
    "price_decimals",
]

#: Fixed epoch used when no start time is given (2025-06-15 00:00:00 UTC), so seeded tests are exact.
DEFAULT_START_MS = 1_749_945_600_000

#: Address of the simulated user whose fills, positions and balances the account endpoints report.
DEMO_ADDRESS = "0x0de0000000000000000000000000000000000001"

#: Candle intervals (Hyperliquid's set, reference §4.4; other venues use subsets).
INTERVALS: tuple[str, ...] = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M")

#: Every interval the engine aggregates: Hyperliquid's set plus ``6h`` (Binance-style venues such as
#: Aster list it). ``6h`` bars come from history layers whose bars tile it (1m/5m/30m: ~35 days).
CANDLE_INTERVALS: tuple[str, ...] = (*INTERVALS[:8], "6h", *INTERVALS[8:])

_MINUTE = 60_000
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
_FIXED_INTERVAL_MS: dict[str, int] = {
    "1m": _MINUTE, "3m": 3 * _MINUTE, "5m": 5 * _MINUTE, "15m": 15 * _MINUTE, "30m": 30 * _MINUTE,
    "1h": _HOUR, "2h": 2 * _HOUR, "4h": 4 * _HOUR, "6h": 6 * _HOUR, "8h": 8 * _HOUR, "12h": 12 * _HOUR,
    "1d": _DAY, "3d": 3 * _DAY, "1w": 7 * _DAY,
}  # fmt: skip

#: History layers, newest first: (bar length, span covered before the next layer starts).
_HISTORY_LAYERS: tuple[tuple[int, int], ...] = (
    (_MINUTE, _DAY),
    (5 * _MINUTE, 4 * _DAY),
    (30 * _MINUTE, 30 * _DAY),
    (4 * _HOUR, 200 * _DAY),
    (_DAY, 1000 * _DAY),
)

PRICE_GRID_MS = 100  # the price processes move every 100 ms of virtual time
BOOK_DEPTH = 48  # resting levels kept per side (>= 20 shown, the rest feeds coarse aggregation)
_MAX_DEPTH = 64
_RECENT_TRADES = 1000
_MAX_LOG_DEVIATION = 0.30
_MEAN_REVERSION_MS = 3 * _DAY
_PICKOFF_PROBABILITY = 0.3
_DEMO_TAKER_SHARE = 0.04
_DEMO_MAKER_SHARE = 0.02


# --------------------------------------------------------------------------------------------------
# Decimal formatting
# --------------------------------------------------------------------------------------------------


def format_fixed(units: int, decimals: int) -> str:
    """Format ``units * 10**-decimals`` the way Hyperliquid prints decimals.

    Trailing zeros are dropped but one fractional digit always stays: ``"97012.0"``, ``"0.5"``,
    ``"2.113"``, ``"1417.0"`` (reference fixtures ``ws_l2Book.jsonl``, ``rest_l2Book_DYDX_2023.json``).
    """
    if decimals <= 0:
        return f"{units * 10 ** -decimals}.0"
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    if frac == 0:
        return f"{sign}{whole}.0"
    return f"{sign}{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


def format_decimal(value: float, max_decimals: int) -> str:
    """Format a float rounded to ``max_decimals`` places in the same trailing-zero style."""
    text = f"{value:.{max_decimals}f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return "0.0" if text in ("-0.0", "-0") else text


def price_decimals(price: float, sz_decimals: int, max_decimals: int, sig_figs: int = 5) -> int:
    """Decimals allowed for ``price`` under the "five significant figures, at most
    ``max_decimals - szDecimals`` decimals" rule (Hyperliquid: max_decimals 6 for perps, 8 for spot;
    integer prices are always allowed)."""
    integer_digits = math.floor(math.log10(price)) + 1
    return max(0, min(max_decimals - sz_decimals, sig_figs - integer_digits))


def format_price(value: float, sz_decimals: int, max_decimals: int, sig_figs: int = 5) -> str:
    """Round a derived price (mark, oracle) to the venue's price rule and format it."""
    if value <= 0:
        return "0.0"
    decimals = price_decimals(value, sz_decimals, max_decimals, sig_figs)
    return format_fixed(round(value * 10**decimals), decimals)


# --------------------------------------------------------------------------------------------------
# Interval arithmetic
# --------------------------------------------------------------------------------------------------


def bucket_start(interval: str, t_ms: int) -> int:
    """Open time of the ``interval`` bucket containing ``t_ms``.

    Fixed-length intervals are aligned to the Unix epoch, so ``1w`` opens on Thursdays 00:00 UTC as
    Hyperliquid's weekly candles do; ``1M`` opens on the first day of the calendar month (UTC).
    """
    step = _FIXED_INTERVAL_MS.get(interval)
    if step is not None:
        return t_ms - t_ms % step
    if interval != "1M":
        raise ValueError(f"unknown interval {interval!r}")
    day = datetime.fromtimestamp(t_ms / 1000, UTC)
    return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)


def bucket_end(interval: str, t_ms: int) -> int:
    """Open time of the bucket after the one containing ``t_ms`` (exclusive end)."""
    start = bucket_start(interval, t_ms)
    step = _FIXED_INTERVAL_MS.get(interval)
    if step is not None:
        return start + step
    day = datetime.fromtimestamp(start / 1000, UTC)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


def _interval_accepts(interval: str, bar_ms: int) -> bool:
    """Whether bars of length ``bar_ms`` tile the buckets of ``interval`` exactly."""
    step = _FIXED_INTERVAL_MS.get(interval)
    return bar_ms <= _DAY if step is None else step % bar_ms == 0


# --------------------------------------------------------------------------------------------------
# Public data types
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetSpec:
    """A tradable market, described without any venue's naming.

    ``symbol`` is the engine key (``"BTC"`` perp, ``"PURR/USDC"`` spot); venue emulators map it to
    their own names. Prices are multiples of ``10**-px_decimals``, sizes of ``10**-sz_decimals``.
    The activity parameters are in quote currency (USD) so one table fits every price level.
    """

    symbol: str
    base: str
    quote: str
    kind: Literal["perp", "spot"]
    sz_decimals: int
    px_decimals: int
    initial_px: float
    daily_vol: float = 0.03
    trades_per_s: float = 1.0
    trade_notional: float = 2_000.0
    level_notional: float = 20_000.0
    level_gap_bps: float = 2.0
    spread_bps: float = 0.5
    open_interest: float = 0.0
    circulating_supply: float = 0.0
    underlying: str | None = None

    @property
    def underlying_key(self) -> str:
        return self.underlying or self.base

    @property
    def tick(self) -> float:
        return 10.0**-self.px_decimals

    @property
    def lot(self) -> float:
        return 10.0**-self.sz_decimals

    def px_str(self, ticks: int) -> str:
        return format_fixed(ticks, self.px_decimals)

    def sz_str(self, lots: int) -> str:
        return format_fixed(lots, self.sz_decimals)

    def px(self, ticks: int) -> float:
        return ticks * self.tick

    def sz(self, lots: int) -> float:
        return lots * self.lot


#: The demo universe: four perps and two spot pairs (six books, the demo's load).
DEFAULT_ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec("BTC", "BTC", "USDC", "perp", sz_decimals=5, px_decimals=0, initial_px=97_000.0,
              daily_vol=0.025, trades_per_s=2.0, trade_notional=3_000.0, level_notional=25_000.0,
              level_gap_bps=1.5, spread_bps=0.2, open_interest=28_000.0),
    AssetSpec("ETH", "ETH", "USDC", "perp", sz_decimals=4, px_decimals=1, initial_px=3_400.0,
              daily_vol=0.035, trades_per_s=1.6, trade_notional=2_000.0, level_notional=20_000.0,
              level_gap_bps=2.0, spread_bps=0.3, open_interest=450_000.0),
    AssetSpec("SOL", "SOL", "USDC", "perp", sz_decimals=2, px_decimals=2, initial_px=180.0,
              daily_vol=0.045, trades_per_s=1.2, trade_notional=1_200.0, level_notional=12_000.0,
              level_gap_bps=2.5, spread_bps=0.6, open_interest=2_500_000.0),
    AssetSpec("HYPE", "HYPE", "USDC", "perp", sz_decimals=2, px_decimals=3, initial_px=30.0,
              daily_vol=0.06, trades_per_s=1.4, trade_notional=900.0, level_notional=8_000.0,
              level_gap_bps=3.0, spread_bps=1.0, open_interest=9_000_000.0),
    AssetSpec("PURR/USDC", "PURR", "USDC", "spot", sz_decimals=0, px_decimals=5, initial_px=0.2,
              daily_vol=0.07, trades_per_s=0.4, trade_notional=150.0, level_notional=1_500.0,
              level_gap_bps=8.0, spread_bps=5.0, circulating_supply=596_000_000.0),
    AssetSpec("HYPE/USDC", "HYPE", "USDC", "spot", sz_decimals=2, px_decimals=3, initial_px=30.0,
              daily_vol=0.06, trades_per_s=0.8, trade_notional=600.0, level_notional=5_000.0,
              level_gap_bps=4.0, spread_bps=2.0, circulating_supply=334_000_000.0),
)  # fmt: skip

#: Names a venue could send that are hostile terminal text: Rich/Textual markup (a link, a click
#: action, a style, a broken tag), escape sequences (OSC title, OSC 8 hyperlink, 8-bit CSI) and a
#: bidi override. A venue's names are its data, so the client must show them literally; these
#: markets let emulators prove it (``perpterm sim --hostile-names``).
HOSTILE_NAMES: tuple[str, ...] = (
    "[link=https://evil.example]x[/link]",
    "[@click=app.quit]x[/]",
    "[bold red]PWN",
    "[/broken",
    "OSC\x1b]0;pwned\x07",
    "LINK\x1b]8;;https://evil.example\x1b\\here\x1b]8;;\x1b\\",
    "\u202eRTL",
    "C1\x9b2J",
)
HOSTILE_TOKEN = "[blink]SPOT"

#: One quiet perp per hostile name and a spot pair whose base token is hostile (appended to the
#: default universe, so the default markets keep their venue indices).
HOSTILE_ASSETS: tuple[AssetSpec, ...] = (
    *(AssetSpec(name, name, "USDC", "perp", sz_decimals=2, px_decimals=3, initial_px=10.0,
                trades_per_s=0.5, trade_notional=300.0, level_notional=3_000.0, level_gap_bps=5.0,
                spread_bps=2.0, open_interest=1_000_000.0) for name in HOSTILE_NAMES),
    AssetSpec(f"{HOSTILE_TOKEN}/USDC", HOSTILE_TOKEN, "USDC", "spot", sz_decimals=2, px_decimals=3,
              initial_px=10.0, trades_per_s=0.5, trade_notional=300.0, level_notional=3_000.0,
              level_gap_bps=5.0, spread_bps=2.0, circulating_supply=100_000_000.0),
)  # fmt: skip


class Bar:
    """One candle in integer units: price ticks, size lots, notional in quote units (float)."""

    __slots__ = ("t", "dur", "o", "h", "l", "c", "v", "n", "ntl")

    def __init__(self, t: int, dur: int, o: int, h: int, l: int, c: int, v: int, n: int, ntl: float) -> None:  # noqa: E741
        self.t, self.dur, self.o, self.h, self.l, self.c, self.v, self.n, self.ntl = t, dur, o, h, l, c, v, n, ntl

    def copy(self) -> Bar:
        return Bar(self.t, self.dur, self.o, self.h, self.l, self.c, self.v, self.n, self.ntl)

    def absorb(self, later: Bar) -> None:
        """Merge a later bar of the same bucket into this one."""
        self.h = max(self.h, later.h)
        self.l = min(self.l, later.l)
        self.c = later.c
        self.v += later.v
        self.n += later.n
        self.ntl += later.ntl

    def add_trade(self, px: int, sz: int, ntl: float) -> None:
        if px > self.h:
            self.h = px
        if px < self.l:
            self.l = px
        self.c = px
        self.v += sz
        self.n += 1
        self.ntl += ntl

    def __repr__(self) -> str:
        return f"Bar(t={self.t}, o={self.o}, h={self.h}, l={self.l}, c={self.c}, v={self.v}, n={self.n})"


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill on the public tape. ``side`` is the aggressor's side; ``buyer``/``seller`` are addresses."""

    symbol: str
    side: Literal["buy", "sell"]
    px: int
    sz: int
    px_str: str
    sz_str: str
    time: int
    tid: int
    hash: str
    buyer: str
    seller: str


@dataclass(frozen=True, slots=True)
class Fill:
    """A trade seen from the demo account: ``side`` is the account's side, ``taker`` whether it crossed."""

    symbol: str
    side: Literal["buy", "sell"]
    px: int
    sz: int
    time: int
    start_position: int
    closed_pnl: float
    hash: str
    order_id: int
    taker: bool
    fee: float  # in quote units (USDC)
    tid: int
    liquidation_mark_px: float | None = None  # set on the fills of a liquidation of the account


@dataclass(frozen=True, slots=True)
class AssetContext:
    """Ticker-style state of one asset in plain numbers; venues format it."""

    mark_px: float
    oracle_px: float
    mid_px: float | None
    funding: float
    premium: float
    open_interest: float
    prev_day_px: float
    day_ntl_vlm: float
    day_base_vlm: float
    impact_bid: float | None
    impact_ask: float | None
    circulating_supply: float


@dataclass(slots=True)
class StepEvents:
    """What one :meth:`MarketEngine.step` produced, for the emulators to publish."""

    time: int
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)


@dataclass(slots=True)
class Position:
    size: int = 0  # signed lots
    entry_px: float = 0.0


class DemoAccount:
    """Positions, spot balances and fills of :data:`DEMO_ADDRESS`, updated from its simulated trades.

    The perp account's cash is ``STARTING_EQUITY + transfers + realized_pnl``; ``transfers`` is USDC
    moved in or out by hand (an emulator's margin controls), never by trading.
    """

    STARTING_EQUITY = 100_000.0

    def __init__(self, specs: dict[str, AssetSpec]) -> None:
        self.address = DEMO_ADDRESS
        self.specs = specs
        self.positions: dict[str, Position] = {s: Position() for s, spec in specs.items() if spec.kind == "perp"}
        self.realized_pnl = 0.0
        self.transfers = 0.0
        self.balances: dict[str, float] = {"USDC": 10_000.0}
        for spec in specs.values():
            if spec.kind == "spot":
                self.balances.setdefault(spec.base, 1_000.0 / spec.initial_px)
        self.fills: deque[Fill] = deque(maxlen=2_000)

    def apply(self, symbol: str, side: str, px: int, sz: int, time: int, hash_: str, order_id: int,
              taker: bool, tid: int, liquidation_mark_px: float | None = None) -> Fill:  # fmt: skip
        spec = self.specs[symbol]
        price, qty = spec.px(px), spec.sz(sz)
        fee = price * qty * (0.00045 if taker else 0.00015)
        signed = sz if side == "buy" else -sz
        closed_pnl = 0.0
        start = 0
        if spec.kind == "perp":
            pos = self.positions[symbol]
            start = pos.size
            if pos.size == 0 or (pos.size > 0) == (signed > 0):
                total = abs(pos.size) + sz
                pos.entry_px = (pos.entry_px * abs(pos.size) + price * sz) / total
            else:
                closing = min(abs(pos.size), sz)
                direction = 1 if pos.size > 0 else -1
                closed_pnl = (price - pos.entry_px) * spec.sz(closing) * direction
                if sz > abs(pos.size):
                    pos.entry_px = price
            pos.size += signed
            if pos.size == 0:
                pos.entry_px = 0.0
            self.realized_pnl += closed_pnl - fee
        else:
            start = round(self.balances.get(spec.base, 0.0) / spec.lot)
            sign = 1 if side == "buy" else -1
            self.balances[spec.base] = self.balances.get(spec.base, 0.0) + sign * qty
            self.balances[spec.quote] = self.balances.get(spec.quote, 0.0) - sign * qty * price - fee
        fill = Fill(symbol, side, px, sz, time, start, closed_pnl, hash_, order_id, taker, fee, tid, liquidation_mark_px)  # type: ignore[arg-type]
        self.fills.append(fill)
        return fill

    def preferred_side(self, symbol: str, rng: random.Random) -> str:
        """Side for a new demo order: random, but leaning back toward flat so positions stay bounded."""
        spec = self.specs[symbol]
        if spec.kind == "perp":
            exposure = spec.sz(self.positions[symbol].size) * spec.initial_px
        else:
            exposure = (self.balances.get(spec.base, 0.0) * spec.initial_px) - 1_000.0
        lean = max(-0.4, min(0.4, exposure / 50_000.0))
        return "sell" if rng.random() < 0.5 + lean else "buy"


# --------------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------------


class _PriceProcess:
    """Ornstein-Uhlenbeck on the log price around ``anchor``, exact discretisation, clamped.

    Live, it moves on a fixed grid of virtual time (:data:`PRICE_GRID_MS`, aligned to the epoch)
    with a random stream of its own, seeded by the seed and the underlying: every emulator built
    with the same seed in the same minute sees the same price at the same virtual time, however
    its steps fall, so one asset has one price across every venue of the demo.
    """

    __slots__ = ("anchor", "x", "stationary_sd", "theta", "rng", "t")

    def __init__(self, anchor: float, daily_vol: float, rng: random.Random, start_ms: int) -> None:
        self.anchor = anchor
        self.theta = 1.0 / _MEAN_REVERSION_MS
        sigma = daily_vol / math.sqrt(_DAY)  # per sqrt(ms)
        self.stationary_sd = sigma / math.sqrt(2 * self.theta)
        self.rng = rng
        self.x = self.stationary_sd * 0.5 * rng.gauss(0.0, 1.0)
        self.t = start_ms - start_ms % _MINUTE  # the grid starts at the minute: the same for all
        self.advance_to(start_ms)

    def evolve(self, x: float, dt_ms: float, gauss: float) -> float:
        decay = math.exp(-self.theta * dt_ms)
        x = x * decay + self.stationary_sd * math.sqrt(1 - decay * decay) * gauss
        return max(-_MAX_LOG_DEVIATION, min(_MAX_LOG_DEVIATION, x))

    def advance_to(self, t_ms: int) -> None:
        while self.t + PRICE_GRID_MS <= t_ms:
            self.x = self.evolve(self.x, PRICE_GRID_MS, self.rng.gauss(0.0, 1.0))
            self.t += PRICE_GRID_MS

    @property
    def price(self) -> float:
        return self.anchor * math.exp(self.x)


class _CandleStore:
    """Generated history plus live 1m bars of one asset, aggregated lazily per interval."""

    def __init__(self, history: list[Bar]) -> None:
        self.history = history  # oldest first, coarse layers first
        self.live: list[Bar] = []  # 1m bars after the history
        self._history_by_interval: dict[str, list[Bar]] = {}
        self._current: dict[str, Bar] = {}
        self._history_trade_sums: list[int] | None = None

    def add_trade(self, t: int, px: int, sz: int, ntl: float) -> None:
        minute = t - t % _MINUTE
        if self.live and self.live[-1].t == minute:
            self.live[-1].add_trade(px, sz, ntl)
        else:
            self.live.append(Bar(minute, _MINUTE, px, px, px, px, sz, 1, ntl))
        for interval, bar in self._current.items():
            start = bucket_start(interval, t)
            if start == bar.t:
                bar.add_trade(px, sz, ntl)
            else:
                self._current[interval] = Bar(start, bar.dur, px, px, px, px, sz, 1, ntl)

    def last_close(self) -> int:
        return (self.live[-1] if self.live else self.history[-1]).c

    def trades_before(self, t: int) -> int:
        """Trades in the bars (history, then live) that open before ``t``."""
        if self._history_trade_sums is None:
            self._history_trade_sums = list(itertools.accumulate((bar.n for bar in self.history), initial=0))
        count = self._history_trade_sums[bisect.bisect_left(self.history, t, key=lambda b: b.t)]
        live = self.live
        return count + sum(bar.n for bar in live[: bisect.bisect_left(live, t, key=lambda b: b.t)])

    def minute_bars(self) -> Iterable[Bar]:
        """The 1m bars, history then live (used to seed the rolling 24 h window)."""
        first = next(i for i, bar in enumerate(self.history) if bar.dur == _MINUTE)
        yield from self.history[first:]
        yield from self.live

    def close_at(self, t: int) -> int:
        """Close of the last bar opened at or before ``t``."""
        if self.live and self.live[0].t <= t:
            index = bisect.bisect_right(self.live, t, key=lambda b: b.t) - 1
            return self.live[index].c
        index = bisect.bisect_right(self.history, t, key=lambda b: b.t) - 1
        return self.history[max(0, index)].c

    def _history_for(self, interval: str) -> list[Bar]:
        cached = self._history_by_interval.get(interval)
        if cached is None:
            first = len(self.history)
            while first > 0 and _interval_accepts(interval, self.history[first - 1].dur):
                first -= 1
            cached = _aggregate(self.history[first:], interval)
            self._history_by_interval[interval] = cached
        return cached

    def series(self, interval: str) -> list[Bar]:
        """All bars of ``interval`` (fresh copies where history and live share a bucket)."""
        history = self._history_for(interval)
        live = _aggregate(self.live, interval)
        if history and live and history[-1].t == live[0].t:
            joined = history[-1].copy()
            joined.absorb(live[0])
            return [*history[:-1], joined, *live[1:]]
        return [*history, *live]

    def current(self, interval: str) -> Bar:
        """The newest bar of ``interval``; kept up to date incrementally once asked for."""
        bar = self._current.get(interval)
        if bar is None:
            bar = self.series(interval)[-1].copy()
            self._current[interval] = bar
        return bar


def _aggregate(bars: list[Bar], interval: str) -> list[Bar]:
    out: list[Bar] = []
    current: Bar | None = None
    fixed = _FIXED_INTERVAL_MS.get(interval)
    for bar in bars:
        start = bar.t - bar.t % fixed if fixed is not None else bucket_start(interval, bar.t)
        if current is not None and current.t == start:
            current.absorb(bar)
        else:
            current = Bar(start, fixed or 0, bar.o, bar.h, bar.l, bar.c, bar.v, bar.n, bar.ntl)
            out.append(current)
    return out


class _Market:
    """Book, tape, candles and ticker state of one asset."""

    def __init__(self, spec: AssetSpec, process: _PriceProcess, candles: _CandleStore, rng: random.Random) -> None:
        self.spec = spec
        self.process = process
        self.candles = candles
        self.bids: list[list[int]] = []  # [px, sz, n], best first
        self.asks: list[list[int]] = []
        self.trades: deque[Trade] = deque(maxlen=_RECENT_TRADES)
        self.open_interest = round(spec.open_interest / spec.lot)
        self.oracle_basis = 0.0
        self.premium_ema = 0.0
        tick, lot = spec.tick, spec.lot
        self.level_lots = max(1.0, spec.level_notional / spec.initial_px / lot)
        self.trade_lots = max(1.0, spec.trade_notional / spec.initial_px / lot)
        self.gap_ticks = max(1.0, spec.initial_px * spec.level_gap_bps / 1e4 / tick)
        self.half_spread_ticks = max(0.5, spec.initial_px * spec.spread_bps / 2e4 / tick)
        self.rng = rng
        self.day_window: deque[Bar] = deque()
        self.day_base = 0
        self.day_ntl = 0.0

    # -- book maintenance ------------------------------------------------------------------------

    def fair_ticks(self) -> float:
        return self.process.price / self.spec.tick

    def new_level(self, px: int) -> list[int]:
        rng = self.rng
        size = max(1, round(rng.lognormvariate(math.log(self.level_lots), 0.9)))
        orders = 1 + min(int(rng.expovariate(1.1)), 6)
        return [px, size, orders]

    def next_gap(self) -> int:
        return 1 + int(self.rng.expovariate(1.0 / max(self.gap_ticks - 1.0, 0.01)))

    def build_book(self) -> None:
        fair = self.fair_ticks()
        self.bids = [self.new_level(math.floor(fair - self.half_spread_ticks))]
        self.asks = [self.new_level(math.ceil(fair + self.half_spread_ticks))]
        self.replenish()

    def replenish(self) -> None:
        bids, asks = self.bids, self.asks
        while len(bids) < BOOK_DEPTH:
            px = bids[-1][0] - self.next_gap()
            if px <= 0:
                break
            bids.append(self.new_level(px))
        while len(asks) < BOOK_DEPTH:
            asks.append(self.new_level(asks[-1][0] + self.next_gap()))
        del bids[_MAX_DEPTH:], asks[_MAX_DEPTH:]

    def requote(self, fair: float) -> None:
        """Makers pull quotes the fair price moved through and improve the inside back to target."""
        rng = self.rng
        bids, asks = self.bids, self.asks
        while bids and bids[0][0] >= fair:
            bids.pop(0)
        while asks and asks[0][0] <= fair:
            asks.pop(0)
        best_bid = math.floor(fair - self.half_spread_ticks * (1.0 + rng.random()))
        best_ask = math.ceil(fair + self.half_spread_ticks * (1.0 + rng.random()))
        if best_bid > 0 and (not bids or bids[0][0] < best_bid):
            bids.insert(0, self.new_level(best_bid))
        if not asks or asks[0][0] > best_ask:
            asks.insert(0, self.new_level(best_ask))
        if not bids:  # price collapsed to the first tick; keep one level so mid stays defined
            bids.append(self.new_level(max(1, best_ask - 1)))
        for side in (bids, asks):
            if side and rng.random() < 0.6:  # size churn: adds and partial cancels near the top
                level = side[min(len(side) - 1, int(rng.expovariate(0.25)))]
                level[1] = max(1, level[1] + round(rng.gauss(0.0, 0.35) * self.level_lots))
                level[2] = max(1, level[2] + rng.choice((-1, 0, 1)))
        self.replenish()

    def take(self, side: str, lots: int, limit: float | None) -> list[tuple[int, int]]:
        """Consume resting levels for a taker on ``side``; returns ``[(px, lots), ...]`` fills."""
        levels = self.asks if side == "buy" else self.bids
        fills: list[tuple[int, int]] = []
        remaining = lots
        while remaining > 0 and levels:
            level = levels[0]
            if limit is not None and (level[0] > limit if side == "buy" else level[0] < limit):
                break
            filled = min(remaining, level[1])
            fills.append((level[0], filled))
            remaining -= filled
            level[1] -= filled
            if level[1] == 0:
                levels.pop(0)
            elif level[2] > 1:
                level[2] -= 1
        return fills

    def best(self) -> tuple[list[int] | None, list[int] | None]:
        return (self.bids[0] if self.bids else None, self.asks[0] if self.asks else None)

    # -- derived values --------------------------------------------------------------------------

    def mid_ticks(self) -> float | None:
        bid, ask = self.best()
        return None if bid is None or ask is None else (bid[0] + ask[0]) / 2

    def impact_px(self, side: str, notional: float) -> float | None:
        """Average price to trade ``notional`` against one side (None when the side is too thin)."""
        spec = self.spec
        levels = self.asks if side == "buy" else self.bids
        cost = qty = 0.0
        for px, sz, _ in levels:
            price, size = spec.px(px), spec.sz(sz)
            take = min(size, (notional - cost) / price)
            cost += take * price
            qty += take
            if cost >= notional * 0.999999:
                return cost / qty
        return None

    def roll_day_window(self, now: int) -> None:
        window = self.day_window
        horizon = now - _DAY
        while window and window[0].t + _MINUTE <= horizon:
            old = window.popleft()
            self.day_base -= old.v
            self.day_ntl -= old.ntl


# --------------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------------


class MarketEngine:
    """Deterministic markets for every asset in ``assets`` on a virtual millisecond clock.

    ``step(dt_ms)`` advances the clock, moves the prices, lets takers and makers act and returns the
    :class:`StepEvents`; the query methods read the state at the current virtual time.
    """

    def __init__(self, seed: int, assets: Iterable[AssetSpec] | None = None, start_ms: int | None = None) -> None:
        self.seed = seed
        self.start_ms = DEFAULT_START_MS if start_ms is None else int(start_ms)
        self.now_ms = self.start_ms
        self.specs: dict[str, AssetSpec] = {spec.symbol: spec for spec in (assets or DEFAULT_ASSETS)}
        if not self.specs:
            raise ValueError("MarketEngine needs at least one asset")
        self._rng = random.Random(seed)
        history_rng = random.Random(f"{seed}:history")
        self._addresses = [f"0x{self._rng.getrandbits(160):040x}" for _ in range(48)]
        self._next_order_id = 10_000_000_000 + self._rng.randrange(1_000_000_000)
        self.account = DemoAccount(self.specs)
        processes: dict[str, _PriceProcess] = {}
        for spec in self.specs.values():
            key = spec.underlying_key
            if key not in processes:
                rng = random.Random(f"{seed}:price:{key}")
                processes[key] = _PriceProcess(spec.initial_px, spec.daily_vol, rng, self.start_ms)
        self._processes = processes
        live_start = self.start_ms - self.start_ms % _MINUTE
        self._markets: dict[str, _Market] = {}
        for spec in self.specs.values():
            process = processes[spec.underlying_key]
            history = _generate_history(spec, process, live_start, history_rng)
            market = _Market(spec, process, _CandleStore(history), self._rng)
            market.build_book()
            for bar in market.candles.minute_bars():
                if bar.t + _MINUTE > self.start_ms - _DAY:
                    market.day_window.append(bar)
                    market.day_base += bar.v
                    market.day_ntl += bar.ntl
            self._markets[spec.symbol] = market

    # -- simulation ------------------------------------------------------------------------------

    def step(self, dt_ms: int) -> StepEvents:
        """Advance the virtual clock by ``dt_ms`` and simulate what happened meanwhile."""
        if dt_ms < 0:
            raise ValueError("time only moves forward")
        rng = self._rng
        start = self.now_ms
        self.now_ms = now = start + int(dt_ms)
        events = StepEvents(time=now)
        for process in self._processes.values():
            process.advance_to(now)
        for symbol, market in self._markets.items():
            trades: list[Trade] = []
            arrivals = sorted(start + 1 + int(rng.random() * dt_ms) for _ in range(_poisson(rng, market.spec.trades_per_s * dt_ms / 1000)))
            for t in arrivals:
                lots = max(1, round(rng.lognormvariate(math.log(market.trade_lots), 1.1)))
                self._taker_order(market, _taker_side(rng, market), lots, None, t, trades, events.fills)
            fair = market.fair_ticks()
            bid, ask = market.best()
            if ask is not None and ask[0] <= fair and rng.random() < _PICKOFF_PROBABILITY:
                self._taker_order(market, "buy", max(1, round(market.trade_lots)), fair, now, trades, events.fills)
            elif bid is not None and bid[0] >= fair and rng.random() < _PICKOFF_PROBABILITY:
                self._taker_order(market, "sell", max(1, round(market.trade_lots)), fair, now, trades, events.fills)
            market.requote(fair)
            self._update_ticker_state(market, dt_ms)
            market.roll_day_window(now)
            if trades:
                events.trades[symbol] = trades
        events.fills.sort(key=lambda fill: fill.time)
        return events

    def _taker_order(self, market: _Market, side: str, lots: int, limit: float | None, t: int,
                     trades: list[Trade], fills: list[Fill]) -> None:  # fmt: skip
        rng = self._rng
        spec = market.spec
        account = self.account
        demo_taker = limit is None and rng.random() < _DEMO_TAKER_SHARE
        if demo_taker:
            side = account.preferred_side(spec.symbol, rng)
            lots = max(1, lots // 4)
        matched = market.take(side, lots, limit)
        if matched:
            self._execute(market, side, matched, t, demo_taker, trades, fills)

    def _execute(self, market: _Market, side: str, matched: list[tuple[int, int]], t: int, demo_taker: bool,
                 trades: list[Trade], fills: list[Fill], liquidation_mark_px: float | None = None) -> None:  # fmt: skip
        """Put one taker order's matched levels on the tape (and into the demo account's fills)."""
        rng = self._rng
        spec = market.spec
        account = self.account
        taker = account.address if demo_taker else rng.choice(self._addresses)
        taker_oid = self._order_id()
        hash_ = f"0x{rng.getrandbits(256):064x}"
        for px, sz in matched:
            demo_maker = not demo_taker and rng.random() < _DEMO_MAKER_SHARE
            maker = account.address if demo_maker else rng.choice(self._addresses)
            while maker == taker:  # no self-trades on the tape
                maker = rng.choice(self._addresses)
            buyer, seller = (taker, maker) if side == "buy" else (maker, taker)
            tid = rng.getrandbits(50)
            trade = Trade(spec.symbol, side, px, sz, spec.px_str(px), spec.sz_str(sz), t, tid, hash_, buyer, seller)  # type: ignore[arg-type]
            trades.append(trade)
            market.trades.append(trade)
            ntl = spec.px(px) * spec.sz(sz)
            market.candles.add_trade(t, px, sz, ntl)
            self._add_day_volume(market, t, sz, ntl)
            if spec.kind == "perp":
                grow = rng.random() < (0.55 if market.open_interest < spec.open_interest / spec.lot else 0.45)
                market.open_interest = max(0, market.open_interest + (sz if grow else -sz))
            if demo_taker:
                fills.append(account.apply(spec.symbol, side, px, sz, t, hash_, taker_oid, True, tid, liquidation_mark_px))
            elif demo_maker:
                maker_side = "sell" if side == "buy" else "buy"
                fills.append(account.apply(spec.symbol, maker_side, px, sz, t, hash_, self._order_id(), False, tid))

    def liquidate_demo(self) -> tuple[dict[str, list[Trade]], list[Fill]]:
        """Liquidate the demo account now: close each of its perp positions with one market order
        of the full size through the book (Hyperliquid's first liquidation step; a thin book may
        close it only partly). Returns the trades per symbol and the account's fills, which carry
        the mark price the liquidation used; the emulator publishes them with its step."""
        trades_by_symbol: dict[str, list[Trade]] = {}
        fills: list[Fill] = []
        for symbol, position in self.account.positions.items():
            if position.size == 0:
                continue
            market = self._markets[symbol]
            side = "sell" if position.size > 0 else "buy"
            mark = self.mark_px(symbol)
            matched = market.take(side, abs(position.size), None)
            if matched:
                trades: list[Trade] = []
                self._execute(market, side, matched, self.now_ms, True, trades, fills, mark)
                trades_by_symbol[symbol] = trades
        return trades_by_symbol, fills

    def _add_day_volume(self, market: _Market, t: int, sz: int, ntl: float) -> None:
        live = market.candles.live[-1]  # the bar the trade just went into
        if not market.day_window or market.day_window[-1] is not live:
            market.day_window.append(live)
        market.day_base += sz
        market.day_ntl += ntl

    def _order_id(self) -> int:
        self._next_order_id += 1 + self._rng.randrange(50)
        return self._next_order_id

    def _update_ticker_state(self, market: _Market, dt_ms: int) -> None:
        rng = self._rng
        decay = math.exp(-dt_ms / 30_000)
        market.oracle_basis = market.oracle_basis * decay + 0.00015 * math.sqrt(1 - decay * decay) * rng.gauss(0.0, 1.0)
        mid = market.mid_ticks()
        if mid is not None:
            oracle = market.process.price * (1 + market.oracle_basis)
            premium = (mid * market.spec.tick - oracle) / oracle
            weight = 1 - math.exp(-dt_ms / 60_000)
            market.premium_ema += (premium - market.premium_ema) * weight

    # -- queries ---------------------------------------------------------------------------------

    def fair_price(self, underlying: str) -> float:
        """The underlying's fair price now (what every market of it quotes around)."""
        return self._processes[underlying].price

    @property
    def symbols(self) -> list[str]:
        return list(self.specs)

    def spec(self, symbol: str) -> AssetSpec:
        return self.specs[symbol]

    def levels(self, symbol: str) -> tuple[list[list[int]], list[list[int]]]:
        """Raw resting levels ``[px_ticks, size_lots, orders]``, best first. Read-only views."""
        market = self._markets[symbol]
        return market.bids, market.asks

    def book(self, symbol: str, depth: int = 20) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, int]]]:
        """Top ``depth`` levels per side, best first, as ``(price_str, size_str, order_count)``."""
        market = self._markets[symbol]
        px_str, sz_str = market.spec.px_str, market.spec.sz_str
        return (
            [(px_str(px), sz_str(sz), n) for px, sz, n in market.bids[:depth]],
            [(px_str(px), sz_str(sz), n) for px, sz, n in market.asks[:depth]],
        )

    def bbo(self, symbol: str) -> tuple[list[int] | None, list[int] | None]:
        """Best bid and best ask levels ``[px, sz, n]`` (``None`` for an empty side)."""
        return self._markets[symbol].best()

    def mid(self, symbol: str) -> str | None:
        """Mid price as a decimal string with one more decimal than the tick (``"108963.5"``)."""
        market = self._markets[symbol]
        bid, ask = market.best()
        if bid is None or ask is None:
            return None
        return format_fixed((bid[0] + ask[0]) * 5, market.spec.px_decimals + 1)

    def recent_trades(self, symbol: str, limit: int = 30) -> list[Trade]:
        """The newest ``limit`` trades, oldest first."""
        trades = self._markets[symbol].trades
        return list(trades)[-limit:] if limit > 0 else []

    def candles(self, symbol: str, interval: str, start_ms: int, end_ms: int, limit: int = 5000) -> list[Bar]:
        """Bars of ``interval`` overlapping ``[start_ms, end_ms]``: the most recent ``limit`` of them."""
        if interval not in CANDLE_INTERVALS:
            raise ValueError(f"unknown interval {interval!r}")
        series = self._markets[symbol].candles.series(interval)
        first = bisect.bisect_left(series, bucket_start(interval, max(0, start_ms)), key=lambda b: b.t)
        last = bisect.bisect_right(series, end_ms, key=lambda b: b.t)
        selected = series[first:last]
        return selected[-limit:] if limit > 0 else []

    def trade_count(self, symbol: str, before_ms: int | None = None) -> int:
        """Trades of ``symbol`` (generated history included) in bars opening before ``before_ms`` (all
        of them when ``None``). A running trade number: venues that number trades sequentially derive
        every id (a candle's first/last trade, a 24 h window's) from it, consistent with ``Bar.n``."""
        candles = self._markets[symbol].candles
        return candles.trades_before(self.now_ms + 1 if before_ms is None else before_ms)

    def current_candle(self, symbol: str, interval: str) -> Bar:
        """The newest (possibly still forming) bar of ``interval``."""
        if interval not in CANDLE_INTERVALS:
            raise ValueError(f"unknown interval {interval!r}")
        return self._markets[symbol].candles.current(interval)

    def mark_px(self, symbol: str) -> float:
        """Mark price: the median of best bid, best ask and last trade (what margin is valued at)."""
        market = self._markets[symbol]
        bid, ask = market.best()
        last = market.trades[-1].px if market.trades else market.candles.last_close()
        candidates = sorted(x for x in (bid and bid[0], ask and ask[0], last) if x)
        return market.spec.px(candidates[len(candidates) // 2])

    def context(self, symbol: str) -> AssetContext:
        market = self._markets[symbol]
        spec = market.spec
        market.roll_day_window(self.now_ms)
        fair = market.process.price
        oracle = fair * (1 + market.oracle_basis)
        bid, ask = market.best()
        mark = self.mark_px(symbol)
        mid = market.mid_ticks()
        impact_notional = 20_000.0 if spec.kind == "perp" else 2_000.0
        funding = max(-0.0004, min(0.0004, 0.0000125 + market.premium_ema / 8))
        return AssetContext(
            mark_px=mark,
            oracle_px=oracle,
            mid_px=None if mid is None else mid * spec.tick,
            funding=funding,
            premium=market.premium_ema,
            open_interest=spec.sz(market.open_interest),
            prev_day_px=spec.px(market.candles.close_at(self.now_ms - _DAY)),
            day_ntl_vlm=max(0.0, market.day_ntl),
            day_base_vlm=spec.sz(max(0, market.day_base)),
            impact_bid=market.impact_px("sell", impact_notional),
            impact_ask=market.impact_px("buy", impact_notional),
            circulating_supply=spec.circulating_supply,
        )


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; means here are small (arrivals per step)."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _taker_side(rng: random.Random, market: _Market) -> str:
    """Takers lean toward the fair price's side of the mid (informed flow), otherwise coin flips."""
    mid = market.mid_ticks()
    lean = 0.0 if mid is None else max(-0.2, min(0.2, (market.fair_ticks() - mid) / (4 * market.half_spread_ticks)))
    return "buy" if rng.random() < 0.5 + lean else "sell"


def _generate_history(spec: AssetSpec, process: _PriceProcess, live_start: int, rng: random.Random) -> list[Bar]:
    """Candles before ``live_start``, walking the price process backwards (OU is time-reversible)."""
    tick, lot = spec.tick, spec.lot
    lots_per_ms = spec.trades_per_s / 1000 * spec.trade_notional / spec.initial_px / lot
    trades_per_ms = spec.trades_per_s / 1000
    sigma_per_sqrt_ms = spec.daily_vol / math.sqrt(_DAY)
    layers: list[list[Bar]] = []
    x = process.x
    end = live_start
    for bar_ms, span in _HISTORY_LAYERS:
        coarser = next((ms for ms, _ in _HISTORY_LAYERS if ms > bar_ms), _DAY)
        begin = end - span
        begin -= begin % coarser
        count = (end - begin) // bar_ms
        wiggle = sigma_per_sqrt_ms * math.sqrt(bar_ms) * 0.6
        mean_lots = lots_per_ms * bar_ms
        mean_trades = trades_per_ms * bar_ms
        anchor = process.anchor
        bars: list[Bar] = []
        close = max(1, round(anchor * math.exp(x) / tick))
        for i in range(count):
            x = process.evolve(x, bar_ms, rng.gauss(0.0, 1.0))
            open_ = max(1, round(anchor * math.exp(x) / tick))
            high = math.ceil(max(open_, close) * math.exp(abs(rng.gauss(0.0, wiggle))))
            low = max(1, math.floor(min(open_, close) * math.exp(-abs(rng.gauss(0.0, wiggle)))))
            activity = rng.lognormvariate(-0.3, 0.75)
            volume = max(1, round(mean_lots * activity))
            trades = max(1, round(mean_trades * activity))
            t = end - (i + 1) * bar_ms
            bars.append(Bar(t, bar_ms, open_, high, low, close, volume, trades, volume * lot * (open_ + close) * tick / 2))
            close = open_
        bars.reverse()
        layers.append(bars)
        end = begin
    return [bar for layer in reversed(layers) for bar in layer]
