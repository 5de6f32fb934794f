"""Account state for the portfolio widgets' tests, built by applying model events (no network).

Two venues: Hypercall holds BTC and ETH options (its Greeks from the venue, its liquidation state
stated), Hyperliquid a short BTC perp (its state derived from margin). Every clock is fixed, so
what the widgets draw is the same on every run.
"""

from __future__ import annotations

from app.account import AccountData, LiquidationData
from app.model import (
    Greeks,
    LegGreeks,
    LiquidationChange,
    LiquidationState,
    Margin,
    Position,
    Positions,
    Venue,
)
from app.portfolio import AccountSource, Portfolio

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC, the wall clock of every portfolio test
HC, HL = Venue.HYPERCALL, Venue.HYPERLIQUID
CALL, PUT, ETH_CALL = "BTC-20260131-100000-C", "BTC-20260131-90000-P", "ETH-20260131-4000-C"
PRICES = {"BTC": 65_000.0, "ETH": 3_500.0}

# (market, underlying, quantity, delta, gamma, theta, vega, iv) as the venue sends them, already
# times the quantity.
HYPERCALL_LEGS = [
    (CALL, "BTC", "2", 0.912, 0.00012, -120.5, 310.0, 0.521),
    (PUT, "BTC", "-1", 0.35, -0.00004, 45.2, -150.0, 0.55),
    (ETH_CALL, "ETH", "10", 4.5, 0.002, -80.0, 95.0, 0.6),
]
HYPERLIQUID_PERP = ("BTC", "-0.5")


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hypercall_account(legs: list[tuple] | None = None, equity: str = "13200", maintenance: str = "10000") -> AccountData:
    legs = HYPERCALL_LEGS if legs is None else legs
    account = AccountData()
    account.apply(Positions([Position(market, underlying, "option", qty) for market, underlying, qty, *_ in legs]))
    account.apply(
        Greeks([LegGreeks(market, qty, d, g, t, v, iv) for market, _, qty, d, g, t, v, iv in legs])
    )
    account.apply(Margin(equity, maintenance))
    return account


def hyperliquid_account(equity: str = "50000", maintenance: str = "5000", liquidation_price: str = "81234") -> AccountData:
    market, size = HYPERLIQUID_PERP
    account = AccountData()
    account.apply(
        Positions([Position(market, "BTC", "perp", size, mark_price="65000", liquidation_price=liquidation_price)])
    )
    account.apply(Margin(equity, maintenance))
    return account


def stated(
    state: LiquidationState,
    previous: LiquidationState | None = LiquidationState.NORMAL,
    *,
    entered: float = NOW - 125,
    shortfall: str | None = None,
    auction_id: str | None = None,
) -> LiquidationData:
    """Hypercall's liquidation channel after one change to ``state`` at ``entered``."""
    data = LiquidationData()
    data.apply(
        LiquidationChange(
            state, previous, shortfall=shortfall, auction_id=auction_id, time_ms=int(entered * 1000)
        )
    )
    return data


def portfolio(
    *,
    hypercall: AccountData | None = None,
    liquidation: LiquidationData | None = None,
    hyperliquid: AccountData | None = None,
    hypercall_live: bool = True,
    clock: Clock | None = None,
    prices: dict[str, float] | None = None,
) -> Portfolio:
    """Both venues (Hyperliquid only when given), refreshed once."""
    sources = [
        AccountSource(HC, hypercall if hypercall is not None else hypercall_account(), liquidation,
                      live=lambda: hypercall_live),
    ]  # fmt: skip
    if hyperliquid is not None:
        sources.append(AccountSource(HL, hyperliquid))
    shown = PRICES if prices is None else prices
    result = Portfolio(sources, prices=lambda: dict(shown), clock=clock or Clock())
    result.refresh()
    return result


def parse_compact(text: str) -> tuple[float, float]:
    """A compact figure back to its number and half its last digit's unit (the rounding
    allowed): ``+49.5k`` -> (49500.0, 50.0), ``-8.0e-05`` -> (-8e-05, 5e-07)."""
    scale = {"k": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}.get(text[-1:], 1.0)
    mantissa = text[:-1] if scale != 1.0 else text
    exponent = 0
    if "e" in mantissa:
        mantissa, power = mantissa.split("e")
        exponent = int(power)
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    unit = 10.0 ** (exponent - decimals) * scale
    return float(mantissa) * 10.0**exponent * scale, unit / 2


def close_enough(shown: str, expected: float) -> bool:
    """Whether ``shown`` is ``expected`` rounded to the digits drawn."""
    value, half_unit = parse_compact(shown)
    return abs(value - expected) <= half_unit * 1.0001
