"""The trade tape: newest first, side colours and marks, emphasis, state handling."""

from __future__ import annotations

from app.model import Channel, Side, StreamState, Trade, Trades
from app.state import Stream
from tests.widget_harness import OneWidgetApp, hyperliquid_key, lines, stream_with, style_at
from widgets import TradeTapeView
from widgets.trades import large_trade_threshold

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20.000 UTC


def trade(index: int, price: str, size: str, side: Side) -> Trade:
    return Trade("BTC", price, size, side, T0 + index * 250, f"t{index}")


def tape_stream(trades: list[Trade], state: StreamState = StreamState.LIVE) -> Stream:
    return stream_with(hyperliquid_key(Channel.TRADES), Trades("BTC", trades), state=state)


THREE = [
    trade(0, "65000.5", "0.1", Side.BUY),
    trade(1, "64999", "0.25", Side.SELL),
    trade(2, "65001", "1", Side.BUY),
]


async def test_newest_trade_on_top_with_utc_times_and_sides() -> None:
    view = TradeTapeView(tape_stream(list(THREE)))
    async with OneWidgetApp(view).run_test(size=(44, 8)) as pilot:
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
    async with OneWidgetApp(view).run_test(size=(40, 6)) as pilot:
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
    async with OneWidgetApp(view).run_test(size=(40, 6)) as pilot:
        await pilot.pause()
        whale, normal = view.render_line(2), view.render_line(3)
    assert style_at(whale, "▼").bold
    assert not style_at(normal, "▲").bold


async def test_stale_and_resyncing_tapes_are_dimmed_not_hidden() -> None:
    stream = tape_stream(list(THREE), state=StreamState.STALE)
    view = TradeTapeView(stream, clock=lambda: 130.0)
    async with OneWidgetApp(view).run_test(size=(44, 8)) as pilot:
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
    async with OneWidgetApp(view).run_test(size=(40, 6)) as pilot:
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
    async with OneWidgetApp(view).run_test(size=(44, 8)) as pilot:
        await pilot.pause()
        assert lines(view)[5].split()[1:] == ["?", "?", "▼"]
