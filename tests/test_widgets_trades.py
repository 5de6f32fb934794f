"""The trade tape: newest first, side colours and marks, emphasis, state handling."""

from __future__ import annotations

from rich.style import Style
from textual.app import App, ComposeResult
from textual.strip import Strip

from app.model import Channel, Side, StreamKey, StreamState, Trade, Trades, Venue
from app.state import Stream
from widgets import TradeTapeView
from widgets.trades import large_trade_threshold

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20.000 UTC


def trade(index: int, price: str, size: str, side: Side) -> Trade:
    return Trade("BTC", price, size, side, T0 + index * 250, f"t{index}")


def tape_stream(trades: list[Trade], state: StreamState = StreamState.LIVE) -> Stream:
    stream = Stream(StreamKey(Venue.HYPERLIQUID, Channel.TRADES, "BTC"))
    stream.data.apply(Trades("BTC", trades))
    stream.state = state
    stream.last_data_at = 100.0
    return stream


class TapeApp(App[None]):
    def __init__(self, view: TradeTapeView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield self.view


def lines(view: TradeTapeView) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def style_at(strip: Strip, text: str) -> Style:
    position = strip.text.index(text)
    for segment in strip:
        if position < len(segment.text):
            return segment.style or Style()
        position -= len(segment.text)
    raise AssertionError(text)


THREE = [
    trade(0, "65000.5", "0.1", Side.BUY),
    trade(1, "64999", "0.25", Side.SELL),
    trade(2, "65001", "1", Side.BUY),
]


async def test_newest_trade_on_top_with_utc_times_and_sides() -> None:
    view = TradeTapeView(tape_stream(list(THREE)))
    async with TapeApp(view).run_test(size=(44, 8)) as pilot:
        await pilot.pause()
        shown = lines(view)
        buy = view.get_component_rich_style("trades--buy").color
        sell = view.get_component_rich_style("trades--sell").color
        rows = [view.render_line(y) for y in (2, 3, 4)]
    assert shown[1].split() == ["Time", "UTC", "Price", "Size"]
    assert [line.split() for line in shown[2:5]] == [
        ["22:13:20.500", "65,001.0", "1.00", "▲"],
        ["22:13:20.250", "64,999.0", "0.25", "▼"],
        ["22:13:20.000", "65,000.5", "0.10", "▲"],
    ]
    assert style_at(rows[0], "65,001.0").color == buy
    assert style_at(rows[1], "64,999.0").color == sell
    assert style_at(rows[1], "▼").color == sell
    assert style_at(rows[2], "0.10").color == buy


async def test_shows_only_what_fits_newest_first() -> None:
    trades = [trade(i, str(100 + i), "1", Side.BUY) for i in range(30)]
    view = TradeTapeView(tape_stream(trades))
    async with TapeApp(view).run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        shown = lines(view)
    assert [line.split()[1] for line in shown[2:]] == ["129", "128", "127", "126"]


def test_large_trade_threshold_is_the_90th_percentile() -> None:
    from decimal import Decimal

    sizes = [Decimal(i) for i in range(1, 101)]
    assert large_trade_threshold(sizes) == Decimal(91)
    assert large_trade_threshold(sizes[:5]) is None  # too few to judge


async def test_large_trades_are_bold() -> None:
    trades = [trade(i, "100", "1", Side.BUY) for i in range(25)]
    trades.append(trade(25, "101", "50", Side.SELL))
    view = TradeTapeView(tape_stream(trades))
    async with TapeApp(view).run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        whale, normal = view.render_line(2), view.render_line(3)
    assert style_at(whale, "▼").bold
    assert not style_at(normal, "▲").bold


async def test_stale_and_resyncing_tapes_are_dimmed_not_hidden() -> None:
    stream = tape_stream(list(THREE), state=StreamState.STALE)
    view = TradeTapeView(stream, clock=lambda: 130.0)
    async with TapeApp(view).run_test(size=(44, 8)) as pilot:
        await pilot.pause()
        dim = view.get_component_rich_style("stream--dim").color
        assert "STALE 30s" in view.render_line(0).text
        assert style_at(view.render_line(2), "65,001.0").color == dim

        stream.state = StreamState.RESYNCING
        view.poll()
        await pilot.pause()
        assert "RESYNCING" in view.render_line(0).text
        assert "65,001.0" in view.render_line(2).text  # trades are history: still shown
        assert style_at(view.render_line(2), "65,001.0").color == dim


async def test_empty_tape_and_rebuilds_only_on_new_trades() -> None:
    stream = tape_stream([])
    view = TradeTapeView(stream)
    async with TapeApp(view).run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        assert "no trades yet" in view.render_line(1).text
        builds = view.body_builds
        await pilot.pause(0.3)
        assert view.body_builds == builds

        stream.data.apply(Trades("BTC", [THREE[0]]))
        await pilot.pause(0.25)  # the widget's own timer picks it up
        assert view.body_builds == builds + 1
        assert "65,000.5" in view.render_line(2).text

        stream.data.apply(Trades("BTC", [THREE[0]], backlog=True))  # a duplicate: no new generation
        await pilot.pause(0.25)
        assert view.body_builds == builds + 1


async def test_garbage_numbers_from_a_venue_do_not_break_the_tape() -> None:
    view = TradeTapeView(tape_stream([trade(-1, "abc", "NaN", Side.SELL), *THREE]))
    async with TapeApp(view).run_test(size=(44, 8)) as pilot:
        await pilot.pause()
        assert lines(view)[5].split()[1:] == ["?", "?", "▼"]
