"""The portfolio across venues: Greeks per underlying and in total, and each venue's liquidation state.

Pure reading: :class:`Portfolio` is fed the account streams the app subscribed (one set per venue
with a configured wallet) and the underlyings' prices, and :meth:`Portfolio.refresh` folds them
into a :class:`PortfolioView` that widgets draw. It owns no I/O and holds one piece of memory:
when each venue entered its current liquidation state, and which transitions are new (to alert).

Conventions (what the widgets label):

* A contract is one unit of the underlying. A perp position's delta is its signed size; its other
  Greeks are zero. Options' Greeks come from the venue, already times the position's quantity.
* delta in underlying units, ``$Δ`` = delta x price; gamma = change of delta per 1 USD, ``$Γ/1%``
  = change of ``$Δ`` for a 1 % move (gamma x price² / 100); theta USD per day; vega USD per
  volatility point.
* Liquidation: the venue's stated state where it has one (Hypercall); otherwise derived from
  margin like the venues do: *Liquidating* below maintenance, *Warning* below
  :data:`app.account.WARNING_RATIO` x maintenance. The distance to liquidation is the adverse move of every
  underlying at once that would bring equity down to maintenance, linear in delta (a first-order
  estimate: gamma and the requirement's own change are ignored, so it is shown with ``≈``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

from app.account import AccountData, LiquidationData, derive_state
from app.model import LiquidationState, Venue

@dataclass(frozen=True, slots=True)
class LegView:
    """One position's contribution to the Greeks."""

    venue: Venue
    market: str
    underlying: str
    kind: str
    quantity: Decimal
    delta: float
    gamma: float
    theta: float
    vega: float
    iv: float | None


@dataclass(frozen=True, slots=True)
class UnderlyingGreeks:
    """Legs of one underlying and their sums; the ``$`` figures need the underlying's price."""

    underlying: str
    price: float | None
    legs: tuple[LegView, ...]
    delta: float
    gamma: float
    theta: float
    vega: float

    @property
    def delta_usd(self) -> float | None:
        return None if self.price is None else self.delta * self.price

    @property
    def gamma_usd(self) -> float | None:
        """Change of ``$Δ`` for a 1 % move of the underlying."""
        return None if self.price is None else self.gamma * self.price * self.price / 100


@dataclass(frozen=True, slots=True)
class LiquidationView:
    """One venue's account health."""

    venue: Venue
    state: LiquidationState | None  # None: nothing known yet
    stated: bool  # the venue said so (vs derived from margin)
    since: float | None  # time.time() seconds when this state was entered
    equity: Decimal | None
    maintenance: Decimal | None
    shortfall: Decimal | None
    distance_pct: float | None  # adverse move (%) of every underlying reaching maintenance, ≈
    nearest_liquidation: tuple[str, Decimal, float] | None  # market, price, % away from the mark
    auction_id: str | None
    current: bool  # the streams behind it are live (not stale, not reconnecting)

    @property
    def margin_ratio(self) -> float | None:
        """Equity / maintenance (∞-like when there is no requirement)."""
        if self.equity is None or not self.maintenance:
            return None
        return float(self.equity / self.maintenance)


@dataclass(frozen=True, slots=True)
class Transition:
    venue: Venue
    previous: LiquidationState | None
    state: LiquidationState

    @property
    def alarming(self) -> bool:
        return self.state is not LiquidationState.NORMAL


@dataclass(frozen=True, slots=True)
class PortfolioView:
    underlyings: tuple[UnderlyingGreeks, ...] = ()
    venues: tuple[LiquidationView, ...] = ()
    stamp: int = 0  # changes whenever the view does (widgets skip redraws while it holds)

    @property
    def total_delta_usd(self) -> float | None:
        return _total(u.delta_usd for u in self.underlyings)

    @property
    def total_gamma_usd(self) -> float | None:
        return _total(u.gamma_usd for u in self.underlyings)

    @property
    def total_theta(self) -> float:
        return sum(u.theta for u in self.underlyings)

    @property
    def total_vega(self) -> float:
        return sum(u.vega for u in self.underlyings)

    @property
    def legs(self) -> int:
        return sum(len(u.legs) for u in self.underlyings)

    def worst(self) -> LiquidationView | None:
        """The venue closest to liquidation (for one-line summaries)."""
        order = {LiquidationState.LIQUIDATING: 0, LiquidationState.WARNING: 1, LiquidationState.NORMAL: 2, None: 3}
        ranked = sorted(self.venues, key=lambda v: (order[v.state], v.margin_ratio or float("inf")))
        return ranked[0] if ranked else None


def _total(values: Iterable[float | None]) -> float | None:
    values = list(values)
    return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)


@dataclass(slots=True)
class AccountSource:
    """What the portfolio reads for one venue: its account streams' state and whether it is live."""

    venue: Venue
    account: AccountData | None = None
    liquidation: LiquidationData | None = None
    live: Callable[[], bool] = lambda: True


@dataclass(slots=True)
class _Held:
    state: LiquidationState | None = None
    since: float | None = None


@dataclass(slots=True)
class Portfolio:
    """Folds account sources and prices into a :class:`PortfolioView` (see the module docstring).

    ``prices`` returns underlying -> price (index or mid); ``clock`` is ``time.time``.
    """

    sources: list[AccountSource] = field(default_factory=list)
    prices: Callable[[], dict[str, float]] = dict
    clock: Callable[[], float] = time.time
    view: PortfolioView = field(default_factory=PortfolioView)
    _held: dict[Venue, _Held] = field(default_factory=dict)
    _stamp: int = 0
    _last_key: object = None

    def refresh(self) -> list[Transition]:
        """Recompute the view if anything it reads moved; return the liquidation transitions
        since the last refresh (a venue's first known state is no transition)."""
        prices = self.prices()
        now = self.clock()
        key = (
            tuple(
                (
                    s.venue,
                    _generation(s.account),
                    _generation(s.liquidation),
                    s.liquidation is not None and s.liquidation.in_force(now) is not None,  # an event ran out
                    s.live(),
                )
                for s in self.sources
            ),
            tuple(sorted(prices.items())),
        )
        if key == self._last_key:
            return []
        self._last_key = key
        legs = [leg for source in self.sources for leg in _legs(source)]
        venues: list[LiquidationView] = []
        transitions: list[Transition] = []
        for source in self.sources:
            view = self._liquidation(source, legs, prices, now)
            held = self._held.setdefault(source.venue, _Held())
            # Unknown for a moment (a reconnect rebuilding the account) is no state: the next
            # known one is compared with the last known one.
            if view.state is not None and view.state is not held.state:
                if held.state is not None:
                    transitions.append(Transition(source.venue, held.state, view.state))
                held.state = view.state
                held.since = view.since if view.stated and view.since is not None else now
            venues.append(_with_since(view, held.since))
        self._stamp += 1
        self.view = PortfolioView(_by_underlying(legs, prices), tuple(venues), self._stamp)
        return transitions

    def _liquidation(
        self, source: AccountSource, legs: list[LegView], prices: dict[str, float], now: float
    ) -> LiquidationView:
        account, liquidation = source.account, source.liquidation
        margin = account.margin if account is not None else None
        equity = _decimal(margin.equity) if margin else None
        maintenance = _decimal(margin.maintenance) if margin else None
        stated = liquidation.in_force(now) if liquidation is not None else None  # else margin speaks
        if stated is not None:
            state, since = stated.state, liquidation.since if liquidation is not None else None
            equity = _decimal(stated.equity) if equity is None and stated.equity else equity
            maintenance = _decimal(stated.maintenance) if maintenance is None and stated.maintenance else maintenance
        else:
            state, since = derive_state(equity, maintenance), None
        shortfall = None
        if stated is not None and stated.shortfall is not None:
            shortfall = _decimal(stated.shortfall)
        elif equity is not None and maintenance is not None:
            shortfall = max(Decimal(0), maintenance - equity)
        venue_legs = [leg for leg in legs if leg.venue is source.venue]
        return LiquidationView(
            venue=source.venue,
            state=state,
            stated=stated is not None,
            since=since,
            equity=equity,
            maintenance=maintenance,
            shortfall=shortfall,
            distance_pct=_distance(equity, maintenance, venue_legs, prices),
            nearest_liquidation=_nearest(account, prices),
            auction_id=stated.auction_id if stated is not None else None,
            current=source.live(),
        )


def _generation(data: object) -> int | None:
    return None if data is None else getattr(data, "generation", None)


def _with_since(view: LiquidationView, since: float | None) -> LiquidationView:
    return replace(view, since=since)


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def underlying_of(market: str) -> str:
    """``BTC-20260131-100000-C`` -> ``BTC``; ``BTC`` -> ``BTC``."""
    return market.split("-", 1)[0]


def _legs(source: AccountSource) -> list[LegView]:
    account = source.account
    if account is None:
        return []
    legs: list[LegView] = []
    for market, position in account.positions.items():
        quantity = Decimal(position.size)
        if position.kind == "perp":
            legs.append(
                LegView(source.venue, market, position.underlying, "perp", quantity, float(quantity), 0.0, 0.0, 0.0, None)
            )
        elif position.kind == "option" and market not in account.greeks:
            # Held, but the venue has not priced it yet: listed with unknown (zero) Greeks.
            legs.append(LegView(source.venue, market, position.underlying, "option", quantity, 0.0, 0.0, 0.0, 0.0, None))
    for market, greeks in account.greeks.items():
        held = account.positions.get(market)
        legs.append(
            LegView(
                venue=source.venue,
                market=market,
                underlying=held.underlying if held is not None else underlying_of(market),
                kind=held.kind if held is not None else "option",
                quantity=Decimal(greeks.quantity),
                delta=greeks.delta,
                gamma=greeks.gamma,
                theta=greeks.theta,
                vega=greeks.vega,
                iv=greeks.iv,
            )
        )
    return legs


def _by_underlying(legs: list[LegView], prices: dict[str, float]) -> tuple[UnderlyingGreeks, ...]:
    grouped: dict[str, list[LegView]] = {}
    for leg in legs:
        grouped.setdefault(leg.underlying, []).append(leg)
    return tuple(
        UnderlyingGreeks(
            underlying=underlying,
            price=prices.get(underlying),
            legs=tuple(sorted(group, key=lambda leg: (leg.venue, leg.market))),
            delta=sum(leg.delta for leg in group),
            gamma=sum(leg.gamma for leg in group),
            theta=sum(leg.theta for leg in group),
            vega=sum(leg.vega for leg in group),
        )
        for underlying, group in sorted(grouped.items())
    )


def _distance(
    equity: Decimal | None, maintenance: Decimal | None, legs: list[LegView], prices: dict[str, float]
) -> float | None:
    if equity is None or maintenance is None or not legs:
        return None
    net: dict[str, float] = {}
    for leg in legs:
        net[leg.underlying] = net.get(leg.underlying, 0.0) + leg.delta
    exposure = 0.0
    for underlying, delta in net.items():
        price = prices.get(underlying)
        if price is None:
            return None
        exposure += abs(delta) * price
    if exposure <= 0:
        return None
    return max(0.0, float(equity - maintenance) / exposure * 100)


def _nearest(account: AccountData | None, prices: dict[str, float]) -> tuple[str, Decimal, float] | None:
    best: tuple[str, Decimal, float] | None = None
    if account is None:
        return None
    for market, position in account.positions.items():
        liq = _decimal(position.liquidation_price)
        mark = prices.get(position.underlying) if position.kind == "perp" else None
        if mark is None:
            mark_text = _decimal(position.mark_price)
            mark = float(mark_text) if mark_text else None
        if liq is None or liq <= 0 or not mark:
            continue
        away = abs(float(liq) - mark) / mark * 100
        if best is None or away < best[2]:
            best = (market, liq, away)
    return best
