"""The portfolio Greeks widget: figures per leg, per underlying and in total against sums computed
here from the venue's numbers, their signs and colours, units in the headers, staleness, empty
states, the compact line, hostile names, and no redraw without a new view."""

from __future__ import annotations

import pytest

from app.account import AccountData
from app.model import Greeks, LegGreeks, Position, Positions
from app.portfolio import AccountSource, Portfolio
from tests.portfolio_fixtures import (
    HC,
    HYPERCALL_LEGS,
    HYPERLIQUID_PERP,
    PRICES,
    close_enough,
    hypercall_account,
    hyperliquid_account,
    portfolio,
)
from tests.widget_harness import OneWidgetApp, lines, row_of, style_at
from widgets import PortfolioGreeksView


def expected() -> dict[str, dict[str, float]]:
    """Net Greeks per underlying and the dollar totals, from the fixtures' raw numbers."""
    net: dict[str, dict[str, float]] = {}
    for _, underlying, _, delta, gamma, theta, vega, _ in HYPERCALL_LEGS:
        sums = net.setdefault(underlying, {"delta": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0})
        sums["delta"] += delta
        sums["gamma"] += gamma
        sums["theta"] += theta
        sums["vega"] += vega
    net["BTC"]["delta"] += float(HYPERLIQUID_PERP[1])  # a perp's delta is its size
    for underlying, sums in net.items():
        price = PRICES[underlying]
        sums["delta_usd"] = sums["delta"] * price
        sums["gamma_usd"] = sums["gamma"] * price * price / 100
    net["TOTAL"] = {
        key: sum(net[u][key] for u in ("BTC", "ETH")) for key in ("delta_usd", "gamma_usd", "theta", "vega")
    }
    return net


def both() -> Portfolio:
    return portfolio(hyperliquid=hyperliquid_account())


async def shown(view: PortfolioGreeksView, size: tuple[int, int] = (140, 20)) -> list[str]:
    async with OneWidgetApp(view).run_test(size=size) as pilot:
        await pilot.pause()
        return lines(view)


async def test_net_rows_and_total_match_the_sums_of_the_legs() -> None:
    view = PortfolioGreeksView(both())
    screen = await shown(view)
    want = expected()
    for underlying in ("BTC", "ETH"):
        row = next(line for line in screen if f"Σ {underlying} net" in line).split()
        delta, delta_usd, gamma, gamma_usd, theta, vega = row[3:9]
        sums = want[underlying]
        assert close_enough(delta, sums["delta"]), (underlying, delta)
        assert close_enough(delta_usd, sums["delta_usd"]), (underlying, delta_usd)
        assert close_enough(gamma, sums["gamma"]), (underlying, gamma)
        assert close_enough(gamma_usd, sums["gamma_usd"]), (underlying, gamma_usd)
        assert close_enough(theta, sums["theta"]), (underlying, theta)
        assert close_enough(vega, sums["vega"]), (underlying, vega)
    total = next(line for line in screen if "TOTAL" in line).split()
    delta_usd, gamma_usd, theta, vega = total[1:5]
    assert close_enough(delta_usd, want["TOTAL"]["delta_usd"])
    assert close_enough(gamma_usd, want["TOTAL"]["gamma_usd"])
    assert close_enough(theta, want["TOTAL"]["theta"])
    assert close_enough(vega, want["TOTAL"]["vega"])
    # The figures this fixture gives, as a trader reads them.
    assert total[1:5] == ["+65.3k", "+3.6k", "-155", "+255"]


async def test_each_leg_row_and_the_underlying_headers() -> None:
    view = PortfolioGreeksView(both())
    screen = await shown(view)
    assert any(line.split()[:2] == ["BTC", "65,000.00"] for line in screen)
    assert any(line.split()[:2] == ["ETH", "3,500.00"] for line in screen)
    call = next(line for line in screen if "BTC-20260131-100000-C" in line).split()
    assert call[0] == "hypercall" and call[2] == "+2"
    assert call[3] == "+0.912" and close_enough(call[4], 0.912 * 65_000)
    assert call[-1] == "52.1"  # IV in percent
    perp = next(line for line in screen if line.split()[:2] == ["hyperliquid", "BTC"]).split()
    assert perp[2] == "-0.5" and perp[3] == "-0.500" and close_enough(perp[4], -32_500)
    assert len(perp) == 9  # a perp has no IV


async def test_column_headers_name_the_greeks_and_their_units() -> None:
    for width in (140, 58):  # the whole terminal, and the app's account row at 140x45
        view = PortfolioGreeksView(both())
        screen = await shown(view, (width, 16))
        head = "\n".join(screen[:3])
        for word in ("Delta", "Gamma", "Theta", "Vega", "$Δ", "$Γ/1%", "$/day", "$/vol"):
            assert word in head, (width, word, head)


async def test_signs_are_coloured_like_bids_and_asks() -> None:
    view = PortfolioGreeksView(both())
    async with OneWidgetApp(view).run_test(size=(140, 20)) as pilot:
        await pilot.pause()
        positive = view.get_component_rich_style("panel--positive").color
        negative = view.get_component_rich_style("panel--negative").color
        net = row_of(view, "Σ BTC net")
        total = row_of(view, "TOTAL")
        put = row_of(view, "BTC-20260131-90000-P")
    assert positive is not None and negative is not None and positive != negative
    assert style_at(net, "+49.5k").color == positive
    assert style_at(net, "-75.3").color == negative
    assert style_at(total, "-155").color == negative
    assert style_at(total, "+255").color == positive
    assert style_at(put, "-1 ").color == negative  # short one contract
    assert style_at(put, "-150").color == negative


async def test_dollar_figures_unknown_without_a_price() -> None:
    view = PortfolioGreeksView(portfolio(prices={"ETH": 3_500.0}))
    screen = await shown(view)
    btc = next(line for line in screen if "Σ BTC net" in line).split()
    assert btc[4] == "—" and btc[6] == "—"  # $Δ and $Γ/1% need BTC's price
    assert next(line for line in screen if "TOTAL" in line).split()[1:3] == ["—", "—"]
    assert any(line.split()[:2] == ["BTC", "—"] for line in screen)


async def test_a_stale_venue_dims_its_legs_and_says_so() -> None:
    view = PortfolioGreeksView(portfolio(hyperliquid=hyperliquid_account(), hypercall_live=False))
    async with OneWidgetApp(view).run_test(size=(140, 20)) as pilot:
        await pilot.pause()
        assert "STALE hypercall" in lines(view)[0]
        dim = view.get_component_rich_style("stream--dim").color
        positive = view.get_component_rich_style("panel--positive").color
        assert style_at(row_of(view, "BTC-20260131-100000-C"), "+0.912").color == dim
        assert style_at(row_of(view, "TOTAL"), "+65.3k").color == dim  # a sum with stale parts
        perp = row_of(view, "hyperliquid")
        assert style_at(perp, "hyperliquid").color != dim  # the live venue's own leg is not
        view.compact = True
        await pilot.pause()
        compact = lines(view)[0]
        assert "STALE" in compact
        assert style_at(view.render_line(0), "+65.3k").color == dim != positive


async def test_empty_waiting_and_unconfigured() -> None:
    empty = AccountData()
    empty.apply(Positions([]))
    screen = await shown(PortfolioGreeksView(portfolio(hypercall=empty)))
    assert screen[1].strip() == "no positions"

    partial = AccountData()
    partial.apply(Positions([], replace=False))  # an update alone: the full set is still to come
    screen = await shown(PortfolioGreeksView(portfolio(hypercall=partial)))
    assert screen[1].strip() == "waiting for positions…" and "WAITING" in screen[0]

    screen = await shown(PortfolioGreeksView(Portfolio()))
    assert screen[1].strip() == "no positions (no account configured)"


async def test_compact_is_one_summary_line() -> None:
    view = PortfolioGreeksView(both(), compact=True)
    async with OneWidgetApp(view).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert view.size.height == 1 and view.has_class("-compact")
        assert lines(view)[0].split() == ["Greeks", "$Δ", "+65.3k", "$Γ", "+3.6k", "Θ", "-155/d", "V", "+255"]
        view.compact = False
        await pilot.pause()
        assert view.size.height > 1 and not view.has_class("-compact")
        assert "TOTAL" in "\n".join(lines(view))


async def test_compact_overrides_a_stylesheet_border_and_height() -> None:
    class Styled(OneWidgetApp):
        CSS = "PortfolioGreeksView { height: 12; border: round red; padding: 1; }"

    view = PortfolioGreeksView(both())
    async with Styled(view).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert view.outer_size.height == 12
        view.compact = True
        await pilot.pause()
        assert view.outer_size.height == 1 and view.size.height == 1
        view.compact = False
        await pilot.pause()
        assert view.outer_size.height == 12


async def test_short_height_keeps_the_total_on_screen() -> None:
    # 8 lines: no room for the legs, so each underlying shows its net row only.
    screen = await shown(PortfolioGreeksView(both()), (140, 8))
    drawn = [line for line in screen if line.strip()]
    assert "TOTAL" in drawn[-1]
    assert [line.split()[1] for line in drawn[3:5]] == ["BTC", "ETH"]  # "Σ BTC net", "Σ ETH net"
    assert not any("hypercall" in line for line in screen)
    # 5 lines: not even that; what is cut is counted, the total stays.
    screen = await shown(PortfolioGreeksView(both()), (140, 5))
    assert "Σ BTC net" not in screen[3] and "more rows" in screen[3]
    assert "TOTAL" in screen[4]


async def test_hostile_names_are_drawn_literally() -> None:
    hostile = "[red]x[/]\x1b]0;pwned\x07-\x1b[31mEVIL"
    account = AccountData()
    account.apply(Positions([Position(hostile, "[b]U[/b]", "option", "1")]))
    account.apply(Greeks([LegGreeks(hostile, "1", 0.5, 0.001, -1.0, 2.0, 0.4)]))
    view = PortfolioGreeksView(Portfolio([AccountSource(HC, account)], prices=lambda: {"[b]U[/b]": 10.0}))
    view.portfolio.refresh()
    screen = await shown(view)
    text = "\n".join(screen)
    assert "[red]x[/]-EVIL" in text and "[b]U[/b]" in text and "Σ [b]U[/b] net" in text
    assert "\x1b" not in text and "pwned" not in text


async def test_no_rebuild_until_the_view_moves() -> None:
    source = portfolio(hyperliquid=hyperliquid_account())
    view = PortfolioGreeksView(source)
    async with OneWidgetApp(view).run_test(size=(140, 20)) as pilot:
        await pilot.pause()
        builds = view.builds
        for _ in range(5):
            source.refresh()  # nothing moved: same view, same stamp
            view.poll()
            lines(view)
        assert view.builds == builds
        account = source.sources[0].account
        assert account is not None
        account.apply(Greeks([LegGreeks("BTC-20260131-100000-C", "2", 1.0, 0.0001, -100.0, 300.0, 0.5)]))
        source.refresh()
        view.poll()
        await pilot.pause()
        assert view.builds == builds + 1
        assert "+1.00" in "\n".join(lines(view))


@pytest.mark.parametrize("width", [20, 40, 58, 90, 140])
async def test_every_width_draws_full_lines(width: int) -> None:
    view = PortfolioGreeksView(both())
    screen = await shown(view, (width, 20))
    assert all(len(line) == width for line in screen)
    if width >= 40:  # narrower, the labels' column gives way to the figures
        assert "TOTAL" in "\n".join(screen)


def test_hypercall_fixture_is_what_the_widget_tests_assume() -> None:
    account = hypercall_account()
    assert set(account.greeks) == {market for market, *_ in HYPERCALL_LEGS}
