"""Deterministic binary prediction markets, the model behind the Polymarket emulator.

Why a model and not canned frames: as with :mod:`app.sim.engine`, the client must see books that
move, trades that consume them and snapshots that agree with the deltas before them, so that a wrong
merge shows up as a visible inconsistency. The emulator only formats what this module produces.

Determinism: every draw comes from one ``random.Random`` seeded from ``seed``; ids are hashes of the
seed and the market's slug; time is the caller's virtual millisecond clock (the emulator steps this
model with the same ``dt`` as its :class:`~app.sim.engine.MarketEngine`). Same seed and same ``step``
calls give the same events.

Model (design decisions; the venue says nothing about this):

* Each market's YES probability is ``p = sigmoid(x)``; ``x`` is an Ornstein-Uhlenbeck process on the
  logit around the market's anchor (exact discretisation), clamped so ``p`` stays in (0.002, 0.998).
* ONE book per market, kept in YES terms (prices in units of 0.001, sizes in hundredths of a share).
  The NO token's book is its mirror, because the CLOB matches a BUY YES at ``p`` against a BUY NO at
  ``1 - p``: NO bids are YES asks at ``1 - p`` and NO asks are YES bids at ``1 - p`` (what the real
  captures show: every ``price_change`` carries a YES level and its NO mirror with the same size).
* Makers keep a ladder per side: an inside level half a spread from the fair price, then grid prices
  further out, about 70 % of them occupied (a fixed pattern per price, so the ladder slides with the
  price instead of reshuffling), and a large resting order at the extreme tick (the 0.01 / 0.99 walls
  of real books). Bids stay strictly below the fair price and asks strictly above, so the book is
  never crossed. When the price moves through resting levels some are picked off by an arbitrage
  taker and the rest cancelled in one batch; otherwise makers act at random times: add a missing
  ladder level, cancel one that left the ladder, or change a size near the top.
* Takers arrive as a Poisson process, lean towards the fair price, pick the YES or the NO token at
  random and consume the top levels (one fill per level, one transaction hash per order).
* Tick size: 0.01, and 0.001 while the market is near an extreme: it switches to 0.001 when the
  probability leaves [0.04, 0.96] and back to 0.01 when it is inside [0.06, 0.94] again (hysteresis
  so a price on the boundary does not flap). Coarsening drops the levels that are off the new grid.
  :meth:`PredictionMarkets.set_tick_size` forces a change (test hook); it holds until the next
  crossing of a zone boundary.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from app.sim.engine import _poisson  # the engine's arrival counts, shared rather than copied

__all__ = [
    "COARSE_TICK",
    "DEFAULT_MARKETS",
    "FINE_TICK",
    "PRICE_DECIMALS",
    "PRICE_ONE",
    "SIZE_DECIMALS",
    "BinaryMarket",
    "BookChanges",
    "BookSnapshot",
    "LevelChange",
    "MarketFill",
    "MarketSpec",
    "PredictionMarkets",
    "TickSizeChange",
    "decimal_str",
    "hostile_market_specs",
]

PRICE_DECIMALS = 3
PRICE_ONE = 10**PRICE_DECIMALS  # price units per 1.0 (one share pays 1 USDC)
SIZE_DECIMALS = 2
COARSE_TICK, FINE_TICK = 10, 1  # 0.01 and 0.001 in price units
_ENTER_EXTREME = (40, 960)  # below / above these the tick becomes 0.001
_LEAVE_EXTREME = (60, 940)  # back inside both, it becomes 0.01 again
_MAX_LOGIT = math.log(0.998 / 0.002)
_MINUTE = 60_000
_LADDER_DEPTH = 14  # occupied grid levels per side, inside level included
_OCCUPANCY = 0.7
_PICKOFF_PROBABILITY = 0.3
_MAX_TAKERS_PER_STEP = 100
_MAX_MAKER_ACTIONS_PER_STEP = 60
_TAKER_REACH_TICKS = 5  # a taker order does not sweep further than this past the touch

Side = Literal["BUY", "SELL"]


def decimal_str(units: int, decimals: int) -> str:
    """``units * 10**-decimals`` the way Polymarket prints it: no trailing zeros, no trailing dot
    (``"0.5"``, ``"0.01"``, ``"1"``, ``"3149725.72"``, ``"20000"`` in the real captures)."""
    whole, frac = divmod(units, 10**decimals)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{decimals}d}".rstrip("0")


# --------------------------------------------------------------------------------------------------
# Market descriptions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """A binary market as the venue lists it, plus the parameters of its simulation.

    ``logit_sd`` is the stationary standard deviation of the logit around ``logit(initial_p)`` and
    ``reversion_minutes`` how fast it returns there; sizes are in shares.
    """

    slug: str
    question: str
    description: str
    tags: tuple[str, ...]
    end_date_iso: str
    initial_p: float
    logit_sd: float
    reversion_minutes: float
    trades_per_s: float
    trade_shares: float
    level_shares: float
    wall_shares: float
    half_spread_ticks: float = 0.5  # 0.5: the inside is one or two ticks wide
    maker_actions_per_s: float = 3.0
    min_order_size: int = 5
    game_start_time: str | None = None
    seconds_delay: int = 0
    traded_before: bool = True  # False: no trade yet, ``last_trade_price`` is ""


#: The default listing: a crypto price market, an election, a live sports game, a macro market, a
#: freshly listed market that has not traded yet and one near an extreme (tick size 0.001 at start,
#: it crosses back and forth over the 0.01 boundary every few minutes).
DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("will-btc-close-above-120k-in-2026", "Will BTC close above $120k in 2026?",
               'Resolves "Yes" if the Bitcoin daily close on Dec 31, 2026 (UTC) is above $120,000.',
               ("Crypto", "Bitcoin"), "2026-12-31T12:00:00Z", initial_p=0.34, logit_sd=0.35,
               reversion_minutes=360, trades_per_s=1.0, trade_shares=120, level_shares=1500,
               wall_shares=900_000),
    MarketSpec("will-the-incumbent-party-win-the-2028-us-presidential-election",
               "Will the incumbent party win the 2028 US presidential election?",
               'Resolves "Yes" if the party of the sitting president wins the 2028 US presidential election.',
               ("Politics", "Elections"), "2028-11-07T12:00:00Z", initial_p=0.52, logit_sd=0.2,
               reversion_minutes=720, trades_per_s=0.8, trade_shares=300, level_shares=5000,
               wall_shares=3_000_000),
    MarketSpec("nba-lal-bos-2026-06-12", "Lakers vs. Celtics: will the Lakers win on June 12?",
               'Resolves "Yes" if the Los Angeles Lakers win the game scheduled for June 12, 2026.',
               ("Sports", "NBA"), "2026-06-13T04:00:00Z", initial_p=0.57, logit_sd=0.5,
               reversion_minutes=30, trades_per_s=1.5, trade_shares=80, level_shares=800,
               wall_shares=200_000, half_spread_ticks=1.0, maker_actions_per_s=4.0,
               game_start_time="2026-06-13T00:30:00Z", seconds_delay=3),
    MarketSpec("fed-cuts-rates-in-december", "Will the Fed cut rates in December?",
               'Resolves "Yes" if the FOMC lowers the federal funds target range at its December meeting.',
               ("Economy", "Fed"), "2026-12-10T19:00:00Z", initial_p=0.71, logit_sd=0.3,
               reversion_minutes=120, trades_per_s=0.7, trade_shares=200, level_shares=2500,
               wall_shares=1_500_000),
    MarketSpec("will-eth-flip-btc-by-2030", "Will ETH flip BTC in market cap by 2030?",
               'Resolves "Yes" if Ether\'s market capitalization exceeds Bitcoin\'s on any day before 2030.',
               ("Crypto", "Ethereum"), "2029-12-31T12:00:00Z", initial_p=0.08, logit_sd=0.3,
               reversion_minutes=60, trades_per_s=0.15, trade_shares=40, level_shares=400,
               wall_shares=100_000, maker_actions_per_s=1.5, traded_before=False),
    MarketSpec("humans-land-on-mars-before-2027", "Will humans land on Mars before 2027?",
               'Resolves "Yes" if a crewed spacecraft lands on Mars before January 1, 2027.',
               ("Science", "Space"), "2026-12-31T12:00:00Z", initial_p=0.04, logit_sd=0.5,
               reversion_minutes=15, trades_per_s=0.4, trade_shares=500, level_shares=3000,
               wall_shares=2_500_000, maker_actions_per_s=2.0),
)  # fmt: skip


def hostile_market_specs(names: Iterable[str]) -> tuple[MarketSpec, ...]:
    """Quiet markets whose question and description are hostile terminal text (markup, escapes,
    bidi controls): the venue shows what market creators write, so the client must print it literally."""
    return tuple(
        MarketSpec(f"hostile-market-{index}", name, name, ("Hostile",), "2027-01-01T00:00:00Z",
                   initial_p=0.5, logit_sd=0.2, reversion_minutes=60, trades_per_s=0.2,
                   trade_shares=20, level_shares=200, wall_shares=10_000, maker_actions_per_s=1.0)
        for index, name in enumerate(names)
    )  # fmt: skip


# --------------------------------------------------------------------------------------------------
# State and events
# --------------------------------------------------------------------------------------------------


class BookSnapshot:
    """A book at one instant, in one token's terms, levels ordered worst to best (as the venue sends).

    ``bids`` ascend and ``asks`` descend in price, so the best level of each side is the last one.
    Immutable once built; the emulator caches formatted forms on it (``cache``).
    """

    __slots__ = ("time", "tick", "bids", "asks", "last_trade", "cache")

    def __init__(self, time: int, tick: int, bids: tuple[tuple[int, int], ...], asks: tuple[tuple[int, int], ...],
                 last_trade: int | None) -> None:  # fmt: skip
        self.time = time
        self.tick = tick
        self.bids = bids
        self.asks = asks
        self.last_trade = last_trade
        self.cache: dict[str, object] = {}

    @property
    def best_bid(self) -> int | None:
        return self.bids[-1][0] if self.bids else None

    @property
    def best_ask(self) -> int | None:
        return self.asks[-1][0] if self.asks else None

    def mirrored(self) -> BookSnapshot:
        """The other outcome token's book: bids become asks at ``1 - p`` and vice versa."""
        mirrored = self.cache.get("mirrored")
        if mirrored is None:
            bids = tuple((PRICE_ONE - px, sz) for px, sz in self.asks)
            asks = tuple((PRICE_ONE - px, sz) for px, sz in self.bids)
            last = None if self.last_trade is None else PRICE_ONE - self.last_trade
            mirrored = BookSnapshot(self.time, self.tick, bids, asks, last)
            self.cache["mirrored"] = mirrored  # one way only: no reference cycle to collect
        return mirrored  # type: ignore[return-value]


class BinaryMarket:
    """One YES/NO market: ids, the logit process and the book in YES terms."""

    def __init__(self, spec: MarketSpec, seed: int, start_ms: int) -> None:
        self.spec = spec
        self.condition_id = "0x" + _digest(seed, spec.slug, "condition").hex()
        self.question_id = "0x" + _digest(seed, spec.slug, "question").hex()
        # ERC-1155 position ids are uint256; real ones print as 76-78 digit decimal strings.
        self.token_ids: tuple[str, str] = tuple(str(int.from_bytes(_digest(seed, spec.slug, outcome), "big")) for outcome in ("Yes", "No"))  # type: ignore[assignment]
        self.outcomes = ("Yes", "No")
        self.anchor = _logit(spec.initial_p)
        self.theta = 1.0 / (spec.reversion_minutes * _MINUTE)
        self.x = self.anchor
        self.extreme = False
        self.tick = COARSE_TICK
        self.bids: dict[int, int] = {}  # YES price units -> size units
        self.asks: dict[int, int] = {}
        self.last_trade: int | None = None  # YES price units
        self.last_trade_side: Side | None = None  # YES taker side of the last trade
        self.updated_ms = start_ms
        self._snapshot: BookSnapshot | None = None

    @property
    def fair(self) -> float:
        """Fair YES price in price units."""
        return PRICE_ONE / (1.0 + math.exp(-self.x))

    def snapshot(self) -> BookSnapshot:
        """The current book in YES terms (cached until the next change)."""
        if self._snapshot is None:
            bids = tuple(sorted(self.bids.items()))
            asks = tuple(sorted(self.asks.items(), reverse=True))
            self._snapshot = BookSnapshot(self.updated_ms, self.tick, bids, asks, self.last_trade)
        return self._snapshot

    def set_level(self, side: Side, px: int, size: int, t: int) -> None:
        levels = self.bids if side == "BUY" else self.asks
        if size > 0:
            levels[px] = size
        else:
            levels.pop(px, None)
        self.touch(t)

    def touch(self, t: int) -> None:
        self.updated_ms = max(self.updated_ms, t)
        self._snapshot = None


@dataclass(frozen=True, slots=True)
class LevelChange:
    """One level's new total in YES terms (``size`` 0 removes it) and the YES book right after."""

    side: Side  # YES terms: BUY = bid
    price: int
    size: int
    book: BookSnapshot


@dataclass(frozen=True, slots=True)
class BookChanges:
    """Order placements/cancellations published together (one ``price_change`` frame)."""

    market: BinaryMarket
    time: int
    changes: tuple[LevelChange, ...]


@dataclass(frozen=True, slots=True)
class MarketFill:
    """One fill of a taker order on ``outcome`` (0 YES, 1 NO); price in that token's terms."""

    market: BinaryMarket
    time: int
    outcome: int
    side: Side  # the taker's side on that token
    price: int
    size: int
    transaction_hash: str
    book: BookSnapshot  # YES book after the fill


@dataclass(frozen=True, slots=True)
class TickSizeChange:
    market: BinaryMarket
    time: int
    old_tick: int
    new_tick: int
    book: BookSnapshot  # YES book after the change (off-grid levels dropped)


MarketEvent = BookChanges | MarketFill | TickSizeChange


# --------------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------------


class PredictionMarkets:
    """Binary markets on a virtual millisecond clock; :meth:`step` returns what happened, in order."""

    def __init__(self, seed: int, specs: Iterable[MarketSpec] | None = None, start_ms: int = 0) -> None:
        self.seed = seed
        self.now_ms = int(start_ms)
        self._rng = random.Random(f"{seed}:predictions")
        self.markets = [BinaryMarket(spec, seed, self.now_ms) for spec in (DEFAULT_MARKETS if specs is None else specs)]
        if not self.markets:
            raise ValueError("PredictionMarkets needs at least one market")
        self._by_token: dict[str, tuple[BinaryMarket, int]] = {}
        self._by_condition: dict[str, BinaryMarket] = {}
        for market in self.markets:
            self._by_condition[market.condition_id] = market
            for outcome, token in enumerate(market.token_ids):
                self._by_token[token] = (market, outcome)
        rng = self._rng
        for market in self.markets:
            market.x = self._clamp(market.anchor + 0.5 * market.spec.logit_sd * rng.gauss(0.0, 1.0))
            market.extreme = not (_ENTER_EXTREME[0] <= market.fair <= _ENTER_EXTREME[1])
            market.tick = FINE_TICK if market.extreme else COARSE_TICK
            self._build_book(market)
            if market.spec.traded_before:
                market.last_trade = self._on_grid(market, market.fair)
                market.last_trade_side = "BUY" if rng.random() < 0.5 else "SELL"

    # -- lookups ---------------------------------------------------------------------------------

    def token(self, token_id: str) -> tuple[BinaryMarket, int] | None:
        """``(market, outcome)`` of a token id, or None."""
        return self._by_token.get(token_id)

    def market(self, condition_id: str) -> BinaryMarket | None:
        return self._by_condition.get(condition_id)

    def book(self, token_id: str) -> BookSnapshot:
        """The current book of one token, in that token's terms."""
        market, outcome = self._by_token[token_id]
        snapshot = market.snapshot()
        return snapshot.mirrored() if outcome else snapshot

    # -- simulation ------------------------------------------------------------------------------

    def step(self, dt_ms: int) -> list[MarketEvent]:
        """Advance the clock by ``dt_ms``; the events come in time order, each with its book."""
        if dt_ms < 0:
            raise ValueError("time only moves forward")
        rng = self._rng
        start = self.now_ms
        self.now_ms = start + int(dt_ms)
        events: list[MarketEvent] = []
        if dt_ms == 0:
            return events
        first = start + 1
        schedule: list[tuple[int, int, BinaryMarket, str]] = []  # (time, order drawn, market, actor)
        for market in self.markets:
            spec = market.spec
            decay = math.exp(-market.theta * dt_ms)
            deviation = (market.x - market.anchor) * decay + spec.logit_sd * math.sqrt(1 - decay * decay) * rng.gauss(0.0, 1.0)
            market.x = self._clamp(market.anchor + deviation)
            self._follow_tick_zone(market, first, events)
            self._pick_off_and_pull(market, first, events)
            self._improve_inside(market, first, events)
            takers = min(_MAX_TAKERS_PER_STEP, _poisson(rng, spec.trades_per_s * dt_ms / 1000))
            actions = min(_MAX_MAKER_ACTIONS_PER_STEP, _poisson(rng, spec.maker_actions_per_s * dt_ms / 1000))
            for actor in ("taker",) * takers + ("maker",) * actions:
                schedule.append((first + int(rng.random() * dt_ms), len(schedule), market, actor))
        schedule.sort(key=lambda item: item[:2])
        for t, _, market, actor in schedule:
            if actor == "taker":
                self._taker(market, t, events)
            else:
                self._maker_action(market, t, events)
        return events

    def set_tick_size(self, condition_or_token: str, tick: int) -> TickSizeChange | None:
        """Force a market's tick size now (test hook); None when it already has that tick."""
        market = self._by_condition.get(condition_or_token) or self._by_token.get(condition_or_token, (None, 0))[0]
        if market is None:
            raise KeyError(condition_or_token)
        if tick not in (COARSE_TICK, FINE_TICK):
            raise ValueError("tick must be COARSE_TICK (0.01) or FINE_TICK (0.001)")
        return self._change_tick(market, tick, self.now_ms)

    # -- internals -------------------------------------------------------------------------------

    @staticmethod
    def _clamp(x: float) -> float:
        return max(-_MAX_LOGIT, min(_MAX_LOGIT, x))

    @staticmethod
    def _on_grid(market: BinaryMarket, price: float) -> int:
        tick = market.tick
        return max(tick, min(PRICE_ONE - tick, round(price / tick) * tick))

    def _new_size(self, shares: float, spread: float = 0.9) -> int:
        """A level or order size in hundredths: log-normal, half of them whole shares."""
        rng = self._rng
        size = max(1.0, rng.lognormvariate(math.log(shares), spread))
        units = round(size * 10**SIZE_DECIMALS)
        if rng.random() < 0.5:
            units = max(100, units - units % 100)
        return units

    def _targets(self, market: BinaryMarket) -> tuple[int | None, int | None]:
        """Inside prices the makers aim for: half a spread from fair, on the grid, never crossing it."""
        fair, tick = market.fair, market.tick
        half = max(tick / 2, market.spec.half_spread_ticks * tick)
        bid = math.floor((fair - half) / tick) * tick
        ask = math.ceil((fair + half) / tick) * tick
        bid = max(tick, bid)
        ask = min(PRICE_ONE - tick, ask)
        return (bid if bid < fair else None), (ask if ask > fair else None)

    def _ladder(self, market: BinaryMarket, side: Side) -> list[int]:
        """Prices the makers want on ``side``, inside first, the extreme-tick wall last."""
        tick = market.tick
        bid, ask = self._targets(market)
        inside = bid if side == "BUY" else ask
        wall = tick if side == "BUY" else PRICE_ONE - tick
        if inside is None:
            return []
        direction = -tick if side == "BUY" else tick
        prices = [inside]
        px = inside + direction
        while len(prices) < _LADDER_DEPTH and tick <= px <= PRICE_ONE - tick:
            if _occupied(market.condition_id, side, px):
                prices.append(px)
            px += direction
        if wall not in prices and (wall < inside if side == "BUY" else wall > inside):
            prices.append(wall)
        return prices

    def _build_book(self, market: BinaryMarket) -> None:
        t = market.updated_ms
        for side in ("BUY", "SELL"):
            ladder = self._ladder(market, side)  # type: ignore[arg-type]
            for index, px in enumerate(ladder):
                wall = index == len(ladder) - 1 and px in (market.tick, PRICE_ONE - market.tick)
                size = self._new_size(market.spec.wall_shares, 0.4) if wall else self._new_size(market.spec.level_shares)
                market.set_level(side, px, size, t)  # type: ignore[arg-type]

    def _change_tick(self, market: BinaryMarket, tick: int, t: int) -> TickSizeChange | None:
        old = market.tick
        if tick == old:
            return None
        market.tick = tick
        if tick > old:  # coarser grid: orders off it cannot rest any more
            for levels in (market.bids, market.asks):
                for px in [px for px in levels if px % tick or not tick <= px <= PRICE_ONE - tick]:
                    del levels[px]
        market.touch(t)  # a past trade keeps its price, on the old grid or not
        return TickSizeChange(market, t, old, tick, market.snapshot())

    def _follow_tick_zone(self, market: BinaryMarket, t: int, events: list[MarketEvent]) -> None:
        fair = market.fair
        if not market.extreme and not (_ENTER_EXTREME[0] <= fair <= _ENTER_EXTREME[1]):
            market.extreme = True
            change = self._change_tick(market, FINE_TICK, t)
        elif market.extreme and _LEAVE_EXTREME[0] <= fair <= _LEAVE_EXTREME[1]:
            market.extreme = False
            change = self._change_tick(market, COARSE_TICK, t)
        else:
            return
        if change is not None:
            events.append(change)

    def _pick_off_and_pull(self, market: BinaryMarket, t: int, events: list[MarketEvent]) -> None:
        """The fair price moved through resting quotes: an arbitrageur may take them, makers pull the rest."""
        fair = market.fair
        rng = self._rng
        if market.asks and min(market.asks) <= fair and rng.random() < _PICKOFF_PROBABILITY:
            self._take(market, "up", self._new_size(market.spec.trade_shares, 0.6), fair, t, events)
        elif market.bids and max(market.bids) >= fair and rng.random() < _PICKOFF_PROBABILITY:
            self._take(market, "down", self._new_size(market.spec.trade_shares, 0.6), fair, t, events)
        changes: list[LevelChange] = []
        for side, levels in (("BUY", market.bids), ("SELL", market.asks)):
            crossed = sorted(px for px in levels if (px >= fair if side == "BUY" else px <= fair))
            for px in crossed:
                market.set_level(side, px, 0, t)  # type: ignore[arg-type]
                changes.append(LevelChange(side, px, 0, market.snapshot()))  # type: ignore[arg-type]
        if changes:
            events.append(BookChanges(market, t, tuple(changes)))

    def _improve_inside(self, market: BinaryMarket, t: int, events: list[MarketEvent]) -> None:
        bid, ask = self._targets(market)
        changes: list[LevelChange] = []
        if bid is not None and (not market.bids or max(market.bids) < bid):
            size = self._new_size(market.spec.level_shares)
            market.set_level("BUY", bid, size, t)
            changes.append(LevelChange("BUY", bid, size, market.snapshot()))
        if ask is not None and (not market.asks or min(market.asks) > ask):
            size = self._new_size(market.spec.level_shares)
            market.set_level("SELL", ask, size, t)
            changes.append(LevelChange("SELL", ask, size, market.snapshot()))
        if changes:
            events.append(BookChanges(market, t, tuple(changes)))

    def _maker_action(self, market: BinaryMarket, t: int, events: list[MarketEvent]) -> None:
        """One order event: add a missing ladder level, cancel one off the ladder, or resize one."""
        rng = self._rng
        side: Side = "BUY" if rng.random() < 0.5 else "SELL"
        levels = market.bids if side == "BUY" else market.asks
        ladder = self._ladder(market, side)
        missing = [px for px in ladder if px not in levels]
        wall = market.tick if side == "BUY" else PRICE_ONE - market.tick
        stray = [px for px in levels if px not in ladder and px != wall]
        roll = rng.random()
        if missing and roll < 0.45:
            px = missing[0] if rng.random() < 0.6 else rng.choice(missing)
            shares = market.spec.wall_shares if px == wall else market.spec.level_shares
            size = self._new_size(shares, 0.4 if px == wall else 0.9)
        elif stray and roll < 0.7:
            px = max(stray, key=lambda p: abs(p - market.fair))
            size = 0
        elif levels:
            by_distance = sorted(levels, key=lambda p: abs(p - market.fair))
            px = by_distance[min(len(by_distance) - 1, int(rng.expovariate(0.35)))]
            change = round(rng.gauss(0.0, 0.4) * market.spec.level_shares * 10**SIZE_DECIMALS)
            size = max(10**SIZE_DECIMALS, levels[px] + change)
            if size == levels[px]:
                return
        else:
            return
        if not (px < market.fair if side == "BUY" else px > market.fair):
            return  # never cross the fair price (the ladder can lag a tick behind a fast move)
        market.set_level(side, px, size, t)
        events.append(BookChanges(market, t, (LevelChange(side, px, size, market.snapshot()),)))

    def _taker(self, market: BinaryMarket, t: int, events: list[MarketEvent]) -> None:
        rng = self._rng
        fair = market.fair
        bid = max(market.bids) if market.bids else None
        ask = min(market.asks) if market.asks else None
        lean = 0.0
        if bid is not None and ask is not None:
            lean = max(-0.25, min(0.25, (fair - (bid + ask) / 2) / (4 * max(market.tick, ask - bid))))
        direction = "up" if rng.random() < 0.5 + lean else "down"
        touch = ask if direction == "up" else bid
        if touch is None:
            return
        reach = _TAKER_REACH_TICKS * market.tick
        limit = touch + reach if direction == "up" else touch - reach
        self._take(market, direction, self._new_size(market.spec.trade_shares, 1.0), limit, t, events)

    def _take(self, market: BinaryMarket, direction: str, size: int, limit: float, t: int, events: list[MarketEvent]) -> None:
        """A taker order consuming YES asks (``up``: buy YES or sell NO) or YES bids (``down``)."""
        rng = self._rng
        outcome = 0 if rng.random() < 0.5 else 1
        yes_side: Side = "BUY" if direction == "up" else "SELL"
        token_side: Side = yes_side if outcome == 0 else ("SELL" if yes_side == "BUY" else "BUY")
        transaction_hash = f"0x{rng.getrandbits(256):064x}"
        resting_side: Side = "SELL" if direction == "up" else "BUY"
        levels = market.asks if direction == "up" else market.bids
        remaining = size
        while remaining > 0 and levels:
            px = min(levels) if direction == "up" else max(levels)
            if (px > limit) if direction == "up" else (px < limit):
                break
            filled = min(remaining, levels[px])
            remaining -= filled
            market.last_trade, market.last_trade_side = px, yes_side
            market.set_level(resting_side, px, levels[px] - filled, t)
            price = px if outcome == 0 else PRICE_ONE - px
            events.append(MarketFill(market, t, outcome, token_side, price, filled, transaction_hash, market.snapshot()))


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _digest(seed: int, slug: str, what: str) -> bytes:
    return hashlib.sha256(f"polymarket-emulator:{seed}:{slug}:{what}".encode()).digest()


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _occupied(condition_id: str, side: str, px: int) -> bool:
    """Whether makers keep an order at this grid price: a fixed pattern per market, side and price."""
    digest = hashlib.blake2b(f"{condition_id}:{side}:{px}".encode(), digest_size=2).digest()
    return int.from_bytes(digest, "big") < _OCCUPANCY * 65536
