"""The portfolio model: Greeks per underlying and in total, liquidation state and its distance,
and the transitions the app alerts on. Pure state: events in, view out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.account import AccountData, LiquidationData, derive_state
from app.model import (
    Greeks,
    LegGreeks,
    LiquidationChange,
    LiquidationState,
    Margin,
    Position,
    PositionExpired,
    Positions,
    Venue,
)
from app.portfolio import AccountSource, Portfolio

HC, HL = Venue.HYPERCALL, Venue.HYPERLIQUID
CALL, PUT = "BTC-20260131-100000-C", "BTC-20260131-90000-P"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def options_account() -> AccountData:
    account = AccountData()
    account.apply(
        Positions(
            [
                Position(CALL, "BTC", "option", "2"),
                Position(PUT, "BTC", "option", "-3"),
                Position("ETH-20260131-3500-C", "ETH", "option", "-10"),
            ]
        )
    )
    account.apply(
        Greeks(
            [
                LegGreeks(CALL, "2", 0.9, 0.00004, -120.0, 80.0, 0.6),
                LegGreeks(PUT, "-3", 0.6, -0.00003, 95.0, -60.0, 0.65),
                LegGreeks("ETH-20260131-3500-C", "-10", -4.0, -0.002, 40.0, -35.0, 0.7),
            ]
        )
    )
    account.apply(Margin(equity="30000", maintenance="10000"))
    return account


def perp_account() -> AccountData:
    account = AccountData()
    account.apply(
        Positions([Position("BTC", "BTC", "perp", "-0.5", liquidation_price="120000"), Position("ETH", "ETH", "perp", "3")])
    )
    account.apply(Margin(equity="8000", maintenance="2000"))
    return account


def test_greeks_add_up_per_underlying_and_in_total():
    prices = {"BTC": 100_000.0, "ETH": 3_000.0}
    portfolio = Portfolio(
        [AccountSource(HC, options_account()), AccountSource(HL, perp_account())], prices=lambda: prices, clock=Clock()
    )
    portfolio.refresh()
    view = portfolio.view
    btc, eth = view.underlyings
    assert (btc.underlying, eth.underlying) == ("BTC", "ETH")
    # BTC: two option legs plus the short perp, whose delta is its size and other Greeks zero.
    assert btc.delta == pytest.approx(0.9 + 0.6 - 0.5)
    assert btc.gamma == pytest.approx(0.00001)
    assert btc.theta == pytest.approx(-25.0)
    assert btc.vega == pytest.approx(20.0)
    assert btc.delta_usd == pytest.approx(1.0 * 100_000)
    assert btc.gamma_usd == pytest.approx(0.00001 * 100_000**2 / 100)
    assert eth.delta == pytest.approx(-4.0 + 3)
    assert view.total_delta_usd == pytest.approx(100_000 - 3_000)
    assert view.total_theta == pytest.approx(-25.0 + 40.0)
    assert view.total_vega == pytest.approx(20.0 - 35.0)
    assert view.legs == 5
    perp = next(leg for leg in btc.legs if leg.kind == "perp")
    assert (perp.venue, perp.quantity, perp.gamma) == (HL, Decimal("-0.5"), 0.0)


def test_dollar_figures_are_unknown_without_a_price():
    portfolio = Portfolio([AccountSource(HC, options_account())], prices=lambda: {"BTC": 100_000.0}, clock=Clock())
    portfolio.refresh()
    assert portfolio.view.underlyings[1].delta_usd is None
    assert portfolio.view.total_delta_usd is None  # never a total that silently leaves one out


@pytest.mark.parametrize(
    ("equity", "maintenance", "state"),
    [
        ("30000", "10000", LiquidationState.NORMAL),
        ("15000", "10000", LiquidationState.NORMAL),  # exactly 1.5x: not yet a warning
        ("14999.99", "10000", LiquidationState.WARNING),
        ("10000", "10000", LiquidationState.WARNING),
        ("9999", "10000", LiquidationState.LIQUIDATING),
        ("100", "0", LiquidationState.NORMAL),
    ],
)
def test_state_derived_from_margin(equity, maintenance, state):
    assert derive_state(Decimal(equity), Decimal(maintenance)) is state


def test_distance_to_liquidation_is_the_adverse_move_reaching_maintenance():
    prices = {"BTC": 100_000.0, "ETH": 3_000.0}
    portfolio = Portfolio([AccountSource(HL, perp_account())], prices=lambda: prices, clock=Clock())
    portfolio.refresh()
    (venue,) = portfolio.view.venues
    # exposure: |-0.5| x 100k + |3| x 3k = 59k; headroom 6k -> 10.17 %
    assert venue.distance_pct == pytest.approx(6000 / 59_000 * 100)
    assert venue.state is LiquidationState.NORMAL and not venue.stated
    assert venue.shortfall == 0
    market, price, away = venue.nearest_liquidation
    assert (market, price) == ("BTC", Decimal("120000")) and away == pytest.approx(20.0)


def test_venue_state_wins_and_transitions_are_reported_once():
    clock = Clock()
    account, liquidation = options_account(), LiquidationData()
    portfolio = Portfolio([AccountSource(HC, account, liquidation)], prices=lambda: {"BTC": 1e5, "ETH": 3e3}, clock=clock)
    assert portfolio.refresh() == []  # the first known state is no transition
    assert portfolio.view.venues[0].state is LiquidationState.NORMAL
    clock.now += 5
    liquidation.apply(
        LiquidationChange(LiquidationState.WARNING, LiquidationState.NORMAL, "12000", "10000", "0", time_ms=1_700_000_000_000)
    )
    (transition,) = portfolio.refresh()
    assert (transition.previous, transition.state, transition.alarming) == (
        LiquidationState.NORMAL,
        LiquidationState.WARNING,
        True,
    )
    venue = portfolio.view.venues[0]
    assert venue.stated and venue.since == 1_700_000_000.0  # the venue's time of the change
    assert portfolio.refresh() == []
    liquidation.apply(LiquidationChange(LiquidationState.LIQUIDATING, LiquidationState.WARNING, "9000", "10000", "1000", "auc-7"))
    (transition,) = portfolio.refresh()
    assert transition.state is LiquidationState.LIQUIDATING
    venue = portfolio.view.venues[0]
    assert (venue.shortfall, venue.auction_id) == (Decimal("1000"), "auc-7")


def test_a_liquidation_event_is_shown_for_a_while_then_margin_speaks():
    clock = Clock()
    account, liquidation = perp_account(), LiquidationData()
    portfolio = Portfolio([AccountSource(HL, account, liquidation)], prices=lambda: {"BTC": 1e5, "ETH": 3e3}, clock=clock)
    portfolio.refresh()
    liquidation.apply(LiquidationChange(LiquidationState.LIQUIDATING, equity="500", lasts=60.0))
    liquidation.since = clock.now
    (transition,) = portfolio.refresh()
    assert transition.state is LiquidationState.LIQUIDATING
    clock.now += 59
    assert portfolio.refresh() == []
    clock.now += 2
    (transition,) = portfolio.refresh()  # nothing else moved: the event's time ran out
    assert transition.state is LiquidationState.NORMAL


def test_expired_position_leaves_the_greeks():
    account = options_account()
    account.apply(PositionExpired(CALL, "2", "105000", "10000", 1_700_000_000_000))
    assert CALL not in account.positions and CALL not in account.greeks
    assert account.expired[-1].settlement_value == "10000"


def test_position_update_keeps_the_others_and_zero_closes():
    account = options_account()
    account.apply(Positions([Position(PUT, "BTC", "option", "0")], replace=False))
    assert set(account.positions) == {CALL, "ETH-20260131-3500-C"}
    assert account.complete
    assert not AccountData().complete  # a partial update alone proves nothing about the rest
