"""The liquidation widget: each state's badge and bar, the figures behind them, time in state,
distance to liquidation, the alert until Normal again, the compact line, hostile venue text, and
SVG snapshots of Normal, Warning (alerting) and Liquidating with every clock frozen."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from app.account import LiquidationData
from app.model import LiquidationChange, LiquidationState, Position, Positions
from app.portfolio import Portfolio, Transition
from tests.portfolio_fixtures import (
    HC,
    HL,
    Clock,
    hypercall_account,
    hyperliquid_account,
    portfolio,
    stated,
)
from tests.widget_harness import OneWidgetApp, lines, row_of, style_at
from widgets import LiquidationStateView

NOW = 1_767_268_984.0  # 2026-01-01 12:03:04 UTC
NORMAL, WARNING, LIQUIDATING = LiquidationState.NORMAL, LiquidationState.WARNING, LiquidationState.LIQUIDATING


def in_state(state: LiquidationState, clock: Clock) -> Portfolio:
    """Hypercall in ``state`` (stated by the venue, entered 2m05s ago); Hyperliquid derived Normal."""
    if state is LIQUIDATING:
        account = hypercall_account(equity="9649.5", maintenance="10000")
        liquidation = stated(LIQUIDATING, WARNING, entered=NOW - 125, shortfall="350.5", auction_id="auc-7781")
    else:
        account = hypercall_account()  # 13,200 over 10,000: 1.32x
        liquidation = stated(state, None if state is NORMAL else NORMAL, entered=NOW - 125)
    return portfolio(hypercall=account, liquidation=liquidation, hyperliquid=hyperliquid_account(), clock=clock)


async def screen_of(view: LiquidationStateView, size: tuple[int, int] = (100, 14)) -> list[str]:
    async with OneWidgetApp(view).run_test(size=size) as pilot:
        await pilot.pause()
        return lines(view)


@pytest.mark.parametrize(
    ("state", "badge", "component"),
    [(NORMAL, "NORMAL", "liq--normal"), (WARNING, "WARNING", "liq--warning"), (LIQUIDATING, "LIQUIDATING", "liq--liquidating")],
)
async def test_each_state_has_its_badge_and_colour(state: LiquidationState, badge: str, component: str) -> None:
    clock = Clock(NOW)
    view = LiquidationStateView(in_state(state, clock), clock=clock)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        row = row_of(view, "hypercall")
        badge_style = style_at(row, badge)
        theme = view.get_component_rich_style(component)
        assert row.text.split()[:2] == ["hypercall", badge]
        assert "for 2m05s" in row.text and "stated by venue" in row.text
        assert badge_style.color == theme.color
        colours = {"liq--normal": "success", "liq--warning": "warning", "liq--liquidating": "error"}
        app_colour = getattr(view.app.current_theme, colours[component])
    assert badge_style.color is not None and badge_style.color.triplet is not None
    theme_rgb = bytes.fromhex(app_colour.lstrip("#"))
    assert all(abs(a - b) <= 2 for a, b in zip(badge_style.color.triplet, theme_rgb))  # blending rounds
    assert bool(badge_style.reverse) is (state is LIQUIDATING)


async def test_figures_distance_and_nearest_liquidation() -> None:
    clock = Clock(NOW)
    screen = "\n".join(await screen_of(LiquidationStateView(in_state(WARNING, clock), clock=clock)))
    assert "equity 13,200.00   maint 10,000.00   shortfall 0.00" in screen
    assert "1.32× of maint (warn <1.5×)" in screen
    # Hypercall is net long BTC (0.912 + 0.35) and ETH (4.5): every underlying falling together by
    # (equity - maintenance) / sum(|delta| x price) reaches maintenance.
    distance = (13_200 - 10_000) / ((0.912 + 0.35) * 65_000 + 4.5 * 3_500) * 100
    assert f"≈ -{distance:.1f}% move to liquidation" in screen
    # Hyperliquid is short 0.5 BTC: the move is up, and so is its liquidation price.
    distance = (50_000 - 5_000) / (0.5 * 65_000) * 100
    assert f"≈ +{distance:.1f}% move to liquidation" in screen
    assert f"nearest liq BTC 81,234 (+{(81_234 - 65_000) / 65_000 * 100:.1f}%)" in screen
    assert "from margin" in screen  # Hyperliquid's state is derived


async def test_liquidating_shows_shortfall_and_auction() -> None:
    clock = Clock(NOW)
    view = LiquidationStateView(in_state(LIQUIDATING, clock), clock=clock)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        screen = "\n".join(lines(view))
        assert "auction auc-7781" in screen
        assert "shortfall 350.50" in screen
        assert "0.96× of maint" in screen
        shortfall = style_at(row_of(view, "shortfall 350.50"), "350.50")
        assert shortfall.color == view.get_component_rich_style("liq--shortfall").color


async def test_the_bar_marks_maintenance_and_the_warning_band() -> None:
    clock = Clock(NOW)
    view = LiquidationStateView(in_state(WARNING, clock), clock=clock)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        bar_line = next(line for line in lines(view) if "1.32×" in line)
        bar = bar_line.strip().split()[0]
        cells = len(bar)
        maintenance, warning = bar.index("┃"), bar.index("╎")
        assert maintenance == round(cells / 3)  # 1x on a 0..3x scale
        assert warning == round(cells * 1.5 / 3)
        filled = bar.count("█") + (1 if maintenance < round(1.32 * cells / 3) else 0)
        assert filled == round(1.32 * cells / 3)
        assert "░" in bar[maintenance:warning]  # the empty part of the warning band shows
        warning_colour = view.get_component_rich_style("liq--fill-warning").color
        assert style_at(row_of(view, "1.32×"), "█").color == warning_colour


async def test_time_in_state_ticks() -> None:
    clock = Clock(NOW)
    view = LiquidationStateView(in_state(WARNING, clock), clock=clock)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        assert "for 2m05s" in row_of(view, "hypercall").text
        builds = view.builds
        view.poll()
        lines(view)
        assert view.builds == builds  # same second: nothing to redraw
        clock.now += 3_600
        view.poll()
        await pilot.pause()
        assert "for 1h02m" in row_of(view, "hypercall").text


async def test_unknown_state_is_a_dash() -> None:
    from app.account import AccountData

    account = AccountData()
    account.apply(Positions([Position("BTC-20260131-100000-C", "BTC", "option", "1")]))
    view = LiquidationStateView(portfolio(hypercall=account), clock=Clock(NOW))
    screen = await screen_of(view)
    assert screen[1].split()[:2] == ["hypercall", "—"]
    assert "no margin data" in screen[2]
    assert "for" not in screen[1]


async def test_alert_until_the_state_is_normal_again() -> None:
    clock = Clock(NOW)
    liquidation = stated(NORMAL, None, entered=NOW - 600)
    source = portfolio(hypercall=hypercall_account(), liquidation=liquidation, hyperliquid=hyperliquid_account(), clock=clock)
    view = LiquidationStateView(source, clock=clock)
    async with OneWidgetApp(view).run_test(size=(100, 16)) as pilot:
        await pilot.pause()
        assert not view.has_class("-alert")

        liquidation.apply(LiquidationChange(WARNING, NORMAL, time_ms=int(NOW * 1000)))
        (transition,) = source.refresh()  # what the app does on its timer...
        assert transition == Transition(HC, NORMAL, WARNING)
        view.alert(transition)  # ...and on an alarming transition
        await pilot.pause()
        assert view.has_class("-alert") and view.alerting
        assert lines(view)[1].strip() == "⚠ hypercall: Normal → Warning at 12:03:04 UTC"
        alert_style = style_at(view.render_line(1), "⚠")
        assert alert_style.reverse

        clock.now += 30
        liquidation.apply(LiquidationChange(LIQUIDATING, WARNING, time_ms=int(clock.now * 1000)))
        (transition,) = source.refresh()
        view.alert(transition)
        await pilot.pause()
        assert lines(view)[1].strip() == "⚠ hypercall: Warning → Liquidating at 12:03:34 UTC"
        assert not any("→ Warning" in line for line in lines(view))  # one alert line per venue

        clock.now += 30
        liquidation.apply(LiquidationChange(NORMAL, LIQUIDATING, time_ms=int(clock.now * 1000)))
        source.refresh()
        view.poll()  # the widget notices on its own timer: no call from the app
        await pilot.pause()
        assert not view.has_class("-alert") and not view.alerting
        assert "⚠" not in "\n".join(lines(view))


async def test_alert_border_shows_over_the_layouts_own_border() -> None:
    class Bordered(OneWidgetApp):
        CSS = "LiquidationStateView { border: round blue; }"  # as the app's #liquidation has

    clock = Clock(NOW)
    liquidation = stated(WARNING, NORMAL, entered=NOW - 5)
    source = portfolio(liquidation=liquidation, clock=clock)
    view = LiquidationStateView(source, clock=clock)
    async with Bordered(view).run_test(size=(100, 16)) as pilot:
        await pilot.pause()
        assert view.styles.border_top[0] == "round"
        view.alert(Transition(HC, NORMAL, WARNING))
        await pilot.pause()
        kind, colour = view.styles.border_top
        error = bytes.fromhex(view.app.current_theme.error.lstrip("#"))
        assert kind == "heavy" and all(abs(a - b) <= 2 for a, b in zip(colour.rgb, error))
        assert view.has_class("-alert")
        liquidation.apply(LiquidationChange(NORMAL, WARNING, time_ms=int(NOW * 1000)))
        source.refresh()
        view.poll()
        await pilot.pause()
        assert view.styles.border_top[0] == "round" and not view.has_class("-alert")


async def test_compact_line_worst_first_with_alert_mark() -> None:
    clock = Clock(NOW)
    view = LiquidationStateView(in_state(WARNING, clock), clock=clock, compact=True)
    async with OneWidgetApp(view).run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert view.size.height == 1
        assert lines(view)[0].strip() == "Liq: hypercall WARNING 1.32× · hyperliquid NORMAL 10.0×"
        view.alert(Transition(HC, NORMAL, WARNING))
        await pilot.pause()
        assert lines(view)[0].strip() == "⚠ Liq: hypercall WARNING 1.32× · hyperliquid NORMAL 10.0×"
        row = view.render_line(0)
        assert style_at(row, "WARNING").color == view.get_component_rich_style("liq--warning").color


async def test_short_heights_keep_every_venue() -> None:
    clock = Clock(NOW)
    for height, per_venue in ((9, 4), (7, 3), (5, 2), (3, 1)):
        view = LiquidationStateView(in_state(WARNING, clock), clock=clock)
        screen = await screen_of(view, (60, height))
        assert screen[1].split()[0] == "hypercall"
        assert screen[1 + per_venue].split()[0] == "hyperliquid", (height, screen)


@pytest.mark.parametrize("width", [24, 38, 60, 140])
async def test_narrow_widths_pick_shorter_wordings(width: int) -> None:
    clock = Clock(NOW)
    view = LiquidationStateView(in_state(LIQUIDATING, clock), clock=clock)
    view.alert(Transition(HC, WARNING, LIQUIDATING))
    async with OneWidgetApp(view).run_test(size=(width, 14)) as pilot:
        await pilot.pause()
        screen = lines(view)
        assert view.size.width == width - 2  # the alert's border
    assert all(len(line) == width - 2 for line in screen)
    assert "⚠ hypercall" in screen[1]
    assert "LIQUIDATING" in "\n".join(screen[2:])
    assert "below maintenance" in "\n".join(screen)


async def test_hostile_venue_text_is_inert() -> None:
    clock = Clock(NOW)
    hostile = "[red]x[/]\x1b]52;c;cHduZWQ=\x07\x1b[2J"
    liquidation = stated(LIQUIDATING, WARNING, entered=NOW - 5, auction_id=hostile)
    account = hyperliquid_account()
    account.apply(Positions([Position(hostile + "-PERP", "BTC", "perp", "1", liquidation_price="60000")], replace=False))
    view = LiquidationStateView(portfolio(hypercall=hypercall_account(), liquidation=liquidation, hyperliquid=account, clock=clock), clock=clock)
    screen = "\n".join(await screen_of(view, (120, 14)))
    assert "auction [red]x[/]" in screen
    assert "nearest liq [red]x[/]-PERP 60,000 (-7.7%)" in screen
    assert "\x1b" not in screen and "cHduZWQ" not in screen


async def test_no_accounts() -> None:
    screen = await screen_of(LiquidationStateView(Portfolio(), clock=Clock(NOW)))
    assert screen[1].strip() == "no account configured"
    view = LiquidationStateView(Portfolio(), clock=Clock(NOW), compact=True)
    assert (await screen_of(view))[0].strip() == "Liq: no account configured"


def test_liquidation_data_is_shared_not_copied() -> None:
    data = LiquidationData()
    source = portfolio(liquidation=data)
    assert source.sources[0].liquidation is data


# --- snapshots ------------------------------------------------------------------------------------


class LiquidationPanel(App[None]):
    """The widget in a bordered panel as the app's account row has it, one state per snapshot."""

    CSS = "LiquidationStateView { border: round $primary; height: 14; }"

    def __init__(self, state: LiquidationState) -> None:
        super().__init__()
        self.state = state
        self.clock = Clock(NOW)

    def compose(self) -> ComposeResult:
        yield LiquidationStateView(in_state(self.state, self.clock), clock=self.clock)

    def on_mount(self) -> None:
        if self.state is not NORMAL:
            view = self.query_one(LiquidationStateView)
            previous = NORMAL if self.state is WARNING else WARNING
            view.alert(Transition(HC, previous, self.state))


def test_snapshot_normal(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LiquidationPanel(NORMAL), terminal_size=(72, 14))


def test_snapshot_warning_alerting(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LiquidationPanel(WARNING), terminal_size=(72, 14))


def test_snapshot_liquidating_alerting(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(LiquidationPanel(LIQUIDATING), terminal_size=(72, 14))


def test_venues_in_this_file() -> None:
    assert {HC, HL} == {source.venue for source in in_state(NORMAL, Clock(NOW)).sources}
