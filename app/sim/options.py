"""Option maths for the options-venue emulators: Black-Scholes with r = 0, an implied-volatility
surface, and a portfolio margin model. Pure functions and small classes; no I/O, no clock.

Units (those of the Hypercall emulator, :mod:`app.sim.hypercall`): a contract is one unit of the
underlying; ``t`` is in years of 365 days; ``vol`` a decimal (0.63); prices in USD.

* ``delta`` in underlying units, ``gamma`` = d(delta)/d(1 USD of spot), ``theta`` USD per day
  (calendar), ``vega`` USD per vol point (0.01 of IV).
* Cash Greeks (:func:`cash_greeks`): ``delta_1pct_usd`` = delta x 1 % of spot; ``gamma_1pct_usd`` =
  gamma x (1 % of spot)^2 (how much ``delta_1pct_usd`` changes for a 1 % move); ``theta_1d_usd`` =
  theta; ``vega_1vol_usd`` = vega.

Margin model (design decision, documented in :func:`portfolio_margin`): per underlying, the worst
loss of the option positions over spot shocks of -15..+15 % (steps of 5 %) crossed with relative
vol shocks of -25 % and +25 %, repriced with Black-Scholes at the same time to expiry (scanning
risk, no offset between underlyings); an option floor of 10 % of the short premium; a gamma overlay
of half the net short gamma times a 5 % move squared; initial = max(scanning, floor) + overlay;
maintenance = 0.8 x initial. Liquidation state: ``Liquidating`` below maintenance, ``Warning`` below
1.5 x maintenance, else ``Normal``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DAYS_PER_YEAR",
    "MS_PER_YEAR",
    "SPOT_SHOCKS",
    "VOL_SHOCKS",
    "Greeks",
    "Leg",
    "Margin",
    "VolSurface",
    "bs_greeks",
    "bs_price",
    "cash_greeks",
    "implied_vol",
    "liquidation_state",
    "portfolio_margin",
    "years_between",
]

DAYS_PER_YEAR = 365.0
MS_PER_YEAR = DAYS_PER_YEAR * 86_400_000
SPOT_SHOCKS: tuple[float, ...] = (-0.15, -0.10, -0.05, 0.0, 0.05, 0.10, 0.15)
VOL_SHOCKS: tuple[float, ...] = (-0.25, 0.25)
OPTION_FLOOR_RATE = 0.10
GAMMA_OVERLAY_MOVE = 0.05
MAINTENANCE_RATIO = 0.8
WARNING_RATIO = 1.5
_SQRT_2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MIN_VOL = 0.01


def years_between(start_ms: int, end_ms: int) -> float:
    """Time from ``start_ms`` to ``end_ms`` in years of 365 days (0 when already past)."""
    return max(0.0, (end_ms - start_ms) / MS_PER_YEAR)


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT_2))


def _pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _d1(spot: float, strike: float, t: float, vol: float) -> float:
    sd = vol * math.sqrt(t)
    return (math.log(spot / strike) + 0.5 * sd * sd) / sd


def bs_price(spot: float, strike: float, t: float, vol: float, is_call: bool) -> float:
    """Black-Scholes price with r = 0 (forward = spot); intrinsic value at or after expiry."""
    if t <= 0.0 or vol <= 0.0:
        return max(0.0, spot - strike) if is_call else max(0.0, strike - spot)
    d1 = _d1(spot, strike, t, vol)
    d2 = d1 - vol * math.sqrt(t)
    if is_call:
        return max(0.0, spot * _cdf(d1) - strike * _cdf(d2))
    return max(0.0, strike * _cdf(-d2) - spot * _cdf(-d1))


@dataclass(frozen=True, slots=True)
class Greeks:
    """Per-contract Greeks (module docstring for the units); multiply by a quantity for a position."""

    delta: float
    gamma: float
    theta: float
    vega: float

    def scaled(self, quantity: float) -> Greeks:
        return Greeks(self.delta * quantity, self.gamma * quantity, self.theta * quantity, self.vega * quantity)


def bs_greeks(spot: float, strike: float, t: float, vol: float, is_call: bool) -> Greeks:
    """Black-Scholes Greeks with r = 0. At or after expiry: delta of the intrinsic value, the rest 0."""
    if t <= 0.0 or vol <= 0.0:
        if spot == strike:
            delta = 0.5 if is_call else -0.5
        else:
            delta = (1.0 if spot > strike else 0.0) if is_call else (-1.0 if spot < strike else 0.0)
        return Greeks(delta, 0.0, 0.0, 0.0)
    sqrt_t = math.sqrt(t)
    d1 = _d1(spot, strike, t, vol)
    density = _pdf(d1)
    delta = _cdf(d1) if is_call else _cdf(d1) - 1.0
    gamma = density / (spot * vol * sqrt_t)
    theta = -spot * density * vol / (2.0 * sqrt_t) / DAYS_PER_YEAR
    vega = spot * density * sqrt_t / 100.0
    return Greeks(delta, gamma, theta, vega)


def cash_greeks(greeks: Greeks, spot: float) -> dict[str, float]:
    """The chain's ``greeks_cash`` of one contract (units in the module docstring)."""
    move = 0.01 * spot
    return {
        "delta_1pct_usd": greeks.delta * move,
        "gamma_1pct_usd": greeks.gamma * move * move,
        "theta_1d_usd": greeks.theta,
        "vega_1vol_usd": greeks.vega,
    }


def implied_vol(price: float, spot: float, strike: float, t: float, is_call: bool, guess: float = 0.6) -> float | None:
    """The volatility at which :func:`bs_price` equals ``price`` (Newton, bisection as fallback);
    ``None`` when no volatility in (0.001, 10) gives that price (e.g. below intrinsic value)."""
    if t <= 0.0 or price <= 0.0:
        return None
    low, high = 0.001, 10.0
    if not bs_price(spot, strike, t, low, is_call) <= price <= bs_price(spot, strike, t, high, is_call):
        return None
    vol = min(max(guess, low), high)
    for _ in range(50):
        diff = bs_price(spot, strike, t, vol, is_call) - price
        if abs(diff) < 1e-9 * max(1.0, price):
            return vol
        if diff > 0:
            high = vol
        else:
            low = vol
        vega = bs_greeks(spot, strike, t, vol, is_call).vega * 100.0
        step = vol - diff / vega if vega > 1e-12 else -1.0
        vol = step if low < step < high else 0.5 * (low + high)
    return vol


# --------------------------------------------------------------------------------------------------
# Volatility surface
# --------------------------------------------------------------------------------------------------


class VolSurface:
    """Implied volatility of one underlying by time to expiry and log-moneyness, moving slowly.

    ``iv = atm(T) * (1 + skew * x + smile * x^2)`` with ``x = ln(K/F) / (atm(T) * sqrt(T))`` clipped
    to +-3 standard deviations, and ``atm(T) = atm * (1 + term * exp(-T / 7 days))`` (short expiries
    a little richer). ``atm`` and ``skew`` follow mean-reverting log/level noise (one hour) drawn from
    the caller's generator, so the surface is deterministic for a seed and a sequence of steps.
    """

    def __init__(self, atm: float, skew: float = -0.05, smile: float = 0.025, term: float = 0.12,
                 atm_noise: float = 0.05, skew_noise: float = 0.02) -> None:  # fmt: skip
        self.base_atm = atm
        self.base_skew = skew
        self.smile = smile
        self.term = term
        self.atm_noise = atm_noise
        self.skew_noise = skew_noise
        self._log_atm = 0.0  # deviation of log(atm) from log(base_atm)
        self._skew = 0.0

    @property
    def atm(self) -> float:
        return self.base_atm * math.exp(self._log_atm)

    @property
    def skew(self) -> float:
        return self.base_skew + self._skew

    def evolve(self, dt_ms: int, rng: random.Random) -> None:
        """Move the surface by ``dt_ms`` of virtual time (Ornstein-Uhlenbeck, one-hour reversion)."""
        if dt_ms <= 0:
            return
        decay = math.exp(-dt_ms / 3_600_000)
        spread = math.sqrt(1.0 - decay * decay)
        self._log_atm = self._log_atm * decay + self.atm_noise * spread * rng.gauss(0.0, 1.0)
        self._skew = self._skew * decay + self.skew_noise * spread * rng.gauss(0.0, 1.0)

    def atm_at(self, t: float) -> float:
        return self.atm * (1.0 + self.term * math.exp(-t * DAYS_PER_YEAR / 7.0))

    def iv(self, forward: float, strike: float, t: float) -> float:
        atm = self.atm_at(t)
        x = math.log(strike / forward) / (atm * math.sqrt(max(t, 1.0 / MS_PER_YEAR * 60_000)))
        x = max(-3.0, min(3.0, x))
        return max(_MIN_VOL, atm * (1.0 + self.skew * x + self.smile * x * x))


# --------------------------------------------------------------------------------------------------
# Margin
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    """One option position for the margin model: signed quantity in contracts."""

    underlying: str
    quantity: float
    strike: float
    t: float
    is_call: bool
    vol: float
    mark: float


@dataclass(frozen=True, slots=True)
class Margin:
    """The margin model's result for one account (all USD)."""

    equity: float
    scanning_risk: float
    option_floor: float
    gamma_overlay: float
    initial: float
    maintenance: float

    @property
    def state(self) -> str:
        return liquidation_state(self.equity, self.maintenance)

    @property
    def shortfall(self) -> float:
        return max(0.0, self.maintenance - self.equity)


def liquidation_state(equity: float, maintenance: float) -> str:
    """``Liquidating`` when equity < maintenance, ``Warning`` when below 1.5 x maintenance."""
    if maintenance <= 0.0:
        return "Normal"
    if equity < maintenance:
        return "Liquidating"
    if equity < WARNING_RATIO * maintenance:
        return "Warning"
    return "Normal"


def portfolio_margin(cash: float, legs: Iterable[Leg], spots: dict[str, float]) -> Margin:
    """Equity and margin of an account holding ``cash`` and option ``legs`` (module docstring).

    ``equity = cash + sum(quantity x mark)``; scanning risk is computed per underlying and summed.
    """
    legs = list(legs)
    equity = cash + sum(leg.quantity * leg.mark for leg in legs)
    by_underlying: dict[str, list[Leg]] = {}
    for leg in legs:
        by_underlying.setdefault(leg.underlying, []).append(leg)
    scanning = overlay = 0.0
    for underlying, group in by_underlying.items():
        spot = spots[underlying]
        value = sum(leg.quantity * leg.mark for leg in group)
        worst = 0.0
        for spot_shock in SPOT_SHOCKS:
            shocked = spot * (1.0 + spot_shock)
            for vol_shock in VOL_SHOCKS:
                repriced = sum(
                    leg.quantity * bs_price(shocked, leg.strike, leg.t, leg.vol * (1.0 + vol_shock), leg.is_call) for leg in group
                )
                worst = max(worst, value - repriced)
        scanning += worst
        net_gamma = sum(leg.quantity * bs_greeks(spot, leg.strike, leg.t, leg.vol, leg.is_call).gamma for leg in group)
        overlay += 0.5 * max(0.0, -net_gamma) * (GAMMA_OVERLAY_MOVE * spot) ** 2
    floor = OPTION_FLOOR_RATE * sum(-leg.quantity * leg.mark for leg in legs if leg.quantity < 0)
    initial = max(scanning, floor) + overlay
    return Margin(equity, scanning, floor, overlay, initial, MAINTENANCE_RATIO * initial)
