"""The options chain: expiry tabs and switching, rows by strike with both sides, the mark's mid
fallback, the at-the-money row, the cursor and its keys, Enter posting Chosen with the right
symbol, state handling, hostile names, and an SVG snapshot."""

from __future__ import annotations

from decimal import Decimal

import pytest
from textual.app import App, ComposeResult

from app.model import Channel, ChainLeg, ChainRemoval, ChainRow, StreamKey, StreamState, Venue
from app.state import Stream
from tests.widget_harness import OneWidgetApp, lines, row_of, stream_with, style_at
from widgets import OptionsChainView
from widgets._format import expiry_label

JAN, FEB, MAR = 1_769_846_400, 1_772_236_800, 1_774_656_000  # 31 Jan, 28 Feb, 28 Mar 2026 08:00 UTC
STRIKES = range(55_000, 75_001, 5_000)
SPOT = 64_200.0


def symbol(expiry: int, strike: int, kind: str) -> str:
    return f"BTC-{expiry_label(expiry)}-{strike}-{kind}"


def row(expiry: int, strike: int, *, call_mark: float | None = -1.0) -> ChainRow:
    """A row whose prices tell the expiry (a month adds 100) and the strike apart."""
    month = {JAN: 0, FEB: 100, MAR: 200}.get(expiry, 0)
    intrinsic_call, intrinsic_put = max(0, 65_000 - strike), max(0, strike - 65_000)
    call_bid = intrinsic_call + 900 + month
    return ChainRow(
        "BTC",
        expiry,
        str(strike),
        call=ChainLeg(
            symbol(expiry, strike, "C"), bid=call_bid, ask=call_bid + 100,
            mark=call_bid + 40 if call_mark == -1.0 else call_mark, mark_iv=0.5 + month / 1000,
        ),
        put=ChainLeg(symbol(expiry, strike, "P"), bid=intrinsic_put + 800 + month, ask=intrinsic_put + 880 + month,
                     mark=intrinsic_put + 840 + month, mark_iv=0.55),
    )  # fmt: skip


def chain(*rows: ChainRow, state: StreamState = StreamState.LIVE, market: str = "BTC") -> Stream:
    key = StreamKey(Venue.HYPERCALL, Channel.OPTIONS_CHAIN, market, ())
    return stream_with(key, *rows, state=state)


def full_chain() -> Stream:
    return chain(*(row(expiry, strike) for expiry in (JAN, FEB, MAR) for strike in STRIKES))


class Chooser(OneWidgetApp):
    """Records every Chosen message."""

    def __init__(self, view: OptionsChainView) -> None:
        super().__init__(view)
        self.chosen: list[OptionsChainView.Chosen] = []

    def on_options_chain_view_chosen(self, message: OptionsChainView.Chosen) -> None:
        self.chosen.append(message)


def strike_row(screen: list[str], strike: str) -> list[str]:
    line = next(line for line in screen if "│" in line and f" {strike} " in line.split("│")[1])
    call, middle, put = line.split("│")
    return [*call.split(), middle.replace("▸", "").replace("◂", "").strip(), *put.split()]


async def test_rows_by_strike_with_both_sides_and_headers() -> None:
    view = OptionsChainView(full_chain(), underlying_price=lambda: SPOT)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        screen = lines(view)
    assert "BTC options · hypercall" in screen[0] and "underlying 64,200.00" in screen[0] and "LIVE" in screen[0]
    assert screen[1].split() == ["31JAN26", "28FEB26", "28MAR26"]
    assert screen[2].split() == ["CALLS", "PUTS"]
    assert screen[3].split() == ["Bid", "Mark", "Ask", "IV%", "Strike", "Bid", "Mark", "Ask", "IV%"]
    assert strike_row(screen, "60,000") == ["5,900", "5,940", "6,000", "50.0", "60,000", "800", "840", "880", "55.0"]
    strikes = [line.split("│")[1].replace("▸", "").replace("◂", "").strip() for line in screen[4:] if "│" in line]
    assert strikes == ["55,000", "60,000", "65,000", "70,000", "75,000"]  # ascending


async def test_mark_falls_back_to_the_mid() -> None:
    stream = chain(row(JAN, 60_000, call_mark=None), row(JAN, 65_000))
    view = OptionsChainView(stream)
    async with OneWidgetApp(view).run_test(size=(100, 10)) as pilot:
        await pilot.pause()
        cells = strike_row(lines(view), "60,000")
    assert cells[:3] == ["5,900", "5,950", "6,000"]  # (5,900 + 6,000) / 2


async def test_at_the_money_row_is_marked_and_the_cursor_starts_there() -> None:
    view = OptionsChainView(full_chain())
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        assert not any("▸" in line for line in lines(view))  # no price yet: no ATM row
        assert view.cursor == (Decimal(65_000), "call")  # the middle strike
        view.set_underlying_price(71_000.0)
        await pilot.pause()
        atm = row_of(view, "▸")
        assert "70,000" in atm.text and "◂" in atm.text
        assert style_at(atm, "70,000").color == view.get_component_rich_style("chain--atm").color
        assert "underlying 71,000.00" in lines(view)[0]
    # A chain shown with a price from the start puts the cursor at the money.
    view = OptionsChainView(full_chain(), underlying_price=lambda: 59_000.0)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        assert view.cursor == (Decimal(60_000), "call")


async def test_expiry_keys_switch_tabs_and_keep_the_strike() -> None:
    view = OptionsChainView(full_chain(), underlying_price=lambda: SPOT)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        view.focus()
        await pilot.pause()
        assert view.selected_expiry == JAN
        selected = view.get_component_rich_style("chain--tab-selected")
        assert style_at(view.render_line(1), "31JAN26").reverse == selected.reverse is True
        await pilot.press("down")
        assert view.cursor == (Decimal(70_000), "call")
        await pilot.press("right_square_bracket")
        await pilot.pause()
        assert view.selected_expiry == FEB
        assert style_at(view.render_line(1), "28FEB26").reverse
        assert not style_at(view.render_line(1), "31JAN26").reverse
        assert strike_row(lines(view), "70,000")[0] == "1,000"  # February's prices: 900 + 100
        assert view.cursor == (Decimal(70_000), "call")  # same strike in the new expiry
        await pilot.press("right_square_bracket", "right_square_bracket")  # past the last: stays
        assert view.selected_expiry == MAR
        await pilot.press("left_square_bracket")
        assert view.selected_expiry == FEB


async def test_enter_posts_chosen_with_the_highlighted_symbol() -> None:
    view = OptionsChainView(full_chain(), underlying_price=lambda: SPOT)
    app = Chooser(view)
    async with app.run_test(size=(100, 14)) as pilot:
        view.focus()
        await pilot.pause()
        await pilot.press("enter")
        await pilot.press("up", "right", "right_square_bracket", "enter")
        await pilot.press("left", "end", "enter")
        await pilot.pause()
    assert [(m.venue, m.symbol) for m in app.chosen] == [
        (Venue.HYPERCALL, symbol(JAN, 65_000, "C")),
        (Venue.HYPERCALL, symbol(FEB, 60_000, "P")),
        (Venue.HYPERCALL, symbol(FEB, 75_000, "C")),
    ]
    second = app.chosen[1]
    assert (second.underlying, second.expiry_s, second.strike, second.option_type) == ("BTC", FEB, Decimal(60_000), "put")
    assert second.control is view


async def test_cursor_highlights_one_side_of_one_row() -> None:
    view = OptionsChainView(full_chain(), underlying_price=lambda: SPOT)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        view.focus()
        await pilot.pause()
        cursor = view.get_component_rich_style("chain--cursor").bgcolor
        line = row_of(view, "▸")  # the cursor starts at the money, on the call
        assert style_at(line, "1,000").bgcolor == cursor  # the call's ask
        assert style_at(line, "880").bgcolor != cursor  # the put's ask
        await pilot.press("right")
        line = row_of(view, "▸")
        assert style_at(line, "880").bgcolor == cursor
        assert style_at(line, "1,000").bgcolor != cursor


async def test_no_leg_at_the_cursor_rings_instead_of_choosing() -> None:
    only_calls = chain(ChainRow("BTC", JAN, "65000", call=ChainLeg(symbol(JAN, 65_000, "C"), 1.0, 2.0)))
    view = OptionsChainView(only_calls)
    app = Chooser(view)
    async with app.run_test(size=(100, 10)) as pilot:
        view.focus()
        await pilot.press("right", "enter")
        await pilot.pause()
    assert app.chosen == []


async def test_a_removed_leg_and_an_expired_expiry() -> None:
    stream = full_chain()
    view = OptionsChainView(stream, underlying_price=lambda: SPOT)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        for strike in STRIKES:  # January expires: both legs of every strike leave
            for kind, letter in (("call", "C"), ("put", "P")):
                stream.data.apply(ChainRemoval("BTC", JAN, str(strike), kind, symbol(JAN, strike, letter)))
        view.poll()
        await pilot.pause()
        assert view.selected_expiry == FEB  # the next one
        assert lines(view)[1].split() == ["28FEB26", "28MAR26"]
        stream.data.apply(ChainRemoval("BTC", FEB, "65000", "call", symbol(FEB, 65_000, "C")))
        view.poll()
        await pilot.pause()
        cells = strike_row(lines(view), "65,000")
        assert cells[0] == "65,000" and cells[1:3] == ["900", "940"]  # the call side is empty


async def test_click_selects_tab_and_row() -> None:
    view = OptionsChainView(full_chain(), underlying_price=lambda: SPOT)
    app = Chooser(view)
    async with app.run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        tab_x = lines(view)[1].index("28MAR26")
        await pilot.click(OptionsChainView, offset=(tab_x, 1))
        await pilot.pause()
        assert view.selected_expiry == MAR
        y = next(y for y, line in enumerate(lines(view)) if "55,000" in line)
        await pilot.click(OptionsChainView, offset=(95, y))
        assert view.cursor == (Decimal(55_000), "put")
        await pilot.double_click(OptionsChainView, offset=(95, y))
        await pilot.pause()
    assert [m.symbol for m in app.chosen] == [symbol(MAR, 55_000, "P")]


async def test_scrolls_to_keep_the_cursor_visible() -> None:
    strikes = range(40_000, 90_001, 1_000)
    view = OptionsChainView(chain(*(row(JAN, k) for k in strikes)), underlying_price=lambda: SPOT)
    async with OneWidgetApp(view).run_test(size=(100, 12)) as pilot:
        view.focus()
        await pilot.pause()
        assert any("▸ 64,000 ◂" in line for line in lines(view))  # centred at the money
        await pilot.press("end")
        assert "90,000" in lines(view)[-1]
        await pilot.press("home")
        assert "40,000" in lines(view)[4]


@pytest.mark.parametrize(
    ("state", "text"),
    [(StreamState.PENDING, "waiting for data"), (StreamState.RESYNCING, "resyncing…"), (StreamState.ERROR, "error: nope")],
)
async def test_stream_states(state: StreamState, text: str) -> None:
    stream = full_chain()
    stream.state = state
    stream.reason = "nope" if state is StreamState.ERROR else ""
    view = OptionsChainView(stream)
    async with OneWidgetApp(view).run_test(size=(80, 8)) as pilot:
        await pilot.pause()
        assert lines(view)[1].strip() == text


async def test_stale_chain_is_dimmed() -> None:
    stream = full_chain()
    stream.state = StreamState.STALE
    view = OptionsChainView(stream, clock=lambda: 112.0)
    async with OneWidgetApp(view).run_test(size=(100, 14)) as pilot:
        await pilot.pause()
        assert "STALE 12s" in lines(view)[0]
        dim = view.get_component_rich_style("stream--dim").color
        assert style_at(row_of(view, "60,000"), "5,900").color == dim


async def test_unbound_and_empty() -> None:
    view = OptionsChainView()
    async with OneWidgetApp(view).run_test(size=(60, 6)) as pilot:
        await pilot.pause()
        assert lines(view)[1].strip() == "no options chain"
        view.bind(chain())
        await pilot.pause()
        assert lines(view)[1].strip() == "no options listed"
        view.bind(full_chain(), title="BTC · hypercall options")
        await pilot.pause()
        assert lines(view)[0].split()[:4] == ["BTC", "·", "hypercall", "options"]


async def test_hostile_names_are_drawn_literally() -> None:
    hostile = "[red]x[/]\x1b]0;pwned\x07\x1b[2J"
    stream = chain(ChainRow(hostile, JAN, "1", call=ChainLeg(hostile + "-C", 1.0, 2.0)), market=hostile)
    view = OptionsChainView(stream)
    app = Chooser(view)
    async with app.run_test(size=(80, 8)) as pilot:
        view.focus()
        await pilot.pause()
        screen = "\n".join(lines(view))
        await pilot.press("enter")
        await pilot.pause()
    assert "[red]x[/] options · hypercall" in screen
    assert "\x1b" not in screen and "pwned" not in screen
    assert app.chosen[0].symbol == hostile + "-C"  # the symbol itself is passed on unchanged


@pytest.mark.parametrize("width", [30, 60, 100, 140])
async def test_every_width_draws_full_lines(width: int) -> None:
    view = OptionsChainView(full_chain(), underlying_price=lambda: SPOT)
    async with OneWidgetApp(view).run_test(size=(width, 12)) as pilot:
        await pilot.pause()
        screen = lines(view)
    assert all(len(line) == width for line in screen)
    assert any("65,000" in line for line in screen)


class ChainScreen(App[None]):
    CSS = "OptionsChainView { border: round $primary; }"

    def compose(self) -> ComposeResult:
        yield OptionsChainView(full_chain(), underlying_price=lambda: SPOT, clock=lambda: 100.0)

    def on_mount(self) -> None:
        self.query_one(OptionsChainView).focus()


def test_snapshot_chain(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(ChainScreen(), press=["down", "right", "right_square_bracket"], terminal_size=(100, 14))
