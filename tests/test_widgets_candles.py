"""The candle chart: what it draws, and that it rebuilds only on change and at most ~1/s."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import widgets.candles as candles_module
from app.model import Candle, CandleHistory, Channel, StreamState
from app.state import Stream
from tests.widget_harness import OneWidgetApp, hyperliquid_key, lines, stream_with
from widgets import CandleChart

T0 = 1_700_000_040_000  # 2023-11-14 22:14:00 UTC
MINUTE = 60_000


def candle(index: int, close: str = "") -> Candle:
    open_ = 100 + index
    close = close or str(open_ + (1 if index % 3 else -1))
    return Candle(
        "BTC", "1m", T0 + index * MINUTE, T0 + (index + 1) * MINUTE - 1,
        str(open_), str(open_ + 2), str(open_ - 2), close, "10",
    )  # fmt: skip


def candle_stream(count: int, state: StreamState = StreamState.LIVE) -> Stream:
    history = CandleHistory("BTC", "1m", [candle(i) for i in range(count)])
    key = hyperliquid_key(Channel.CANDLES, interval="1m")
    return stream_with(key, history, state=state, last_data_at=None)


@pytest.fixture
def plotted(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[Candle]]:
    """Records the candles of every plotext build (still building for real)."""
    calls: list[Sequence[Candle]] = []
    real = candles_module.plot_candles

    def recording(candles: Sequence[Candle], *args: object, **kwargs: object) -> str:
        calls.append(candles)
        return real(candles, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(candles_module, "plot_candles", recording)
    return calls


async def test_empty_series_says_loading() -> None:
    view = CandleChart(candle_stream(0))
    async with OneWidgetApp(view).run_test(size=(60, 12)) as pilot:
        await pilot.pause()
        assert "loading history…" in view.render_line(1).text


async def test_title_axis_labels_and_candles(plotted: list[Sequence[Candle]]) -> None:
    view = CandleChart(candle_stream(100))
    async with OneWidgetApp(view).run_test(size=(60, 16)) as pilot:
        await pilot.pause()
        shown = lines(view)
        up = view.get_component_rich_style("candles--up").color
        colours = {
            segment.style.color
            for y in range(view.size.height)
            for segment in view.render_line(y)
            if segment.style
        }
    assert shown[0].split()[:6] == ["BTC", "·", "hyperliquid", "1m", "UTC", "last"]
    assert shown[0].split()[6] == "198"  # the exact last close of candle 99
    assert "LIVE" in shown[0]
    assert "23:53" in shown[-1]  # the newest candle (index 99) opens 23:53 UTC and is labelled
    assert any("█" in line for line in shown)
    assert up in colours
    # (60 - 10 label cells) // 2 cells per candle = the last 25 candles.
    assert [c.open_time_ms for c in plotted[-1]] == [T0 + i * MINUTE for i in range(75, 100)]


async def test_rebuilds_only_on_a_new_generation_and_at_most_once_per_interval() -> None:
    now = [1000.0]
    stream = candle_stream(30)
    view = CandleChart(stream, clock=lambda: now[0])
    async with OneWidgetApp(view).run_test(size=(60, 12)) as pilot:
        await pilot.pause()
        builds = view.body_builds
        view.poll()
        view.refresh()
        await pilot.pause()
        assert view.body_builds == builds  # nothing new: cached strips

        stream.data.apply(candle(30))
        now[0] += 1.0
        view.poll()
        await pilot.pause()
        assert view.body_builds == builds + 1

        stream.data.apply(candle(30, close="999"))  # the forming candle ticks again at once
        now[0] += 0.1
        view.poll()
        await pilot.pause()
        assert view.body_builds == builds + 1  # throttled
        assert "last 129" in view.render_line(0).text

        now[0] += CandleChart.MIN_REBUILD_INTERVAL
        view.poll()
        await pilot.pause()
        assert view.body_builds == builds + 2
        assert "last 999" in view.render_line(0).text

        stream.state = StreamState.STALE
        stream.last_data_at = now[0] - 20
        view.poll()  # a state change shows at once, throttle or not
        await pilot.pause()
        assert view.body_builds == builds + 3
        assert "STALE 20s" in view.render_line(0).text


async def test_resize_rebuilds_for_the_new_width(plotted: list[Sequence[Candle]]) -> None:
    view = CandleChart(candle_stream(100))
    async with OneWidgetApp(view).run_test(size=(60, 12)) as pilot:
        await pilot.pause()
        await pilot.resize_terminal(90, 12)
        await pilot.pause()
        assert len(plotted[-1]) == (90 - 10) // 2


async def test_stale_chart_draws_candles_dimmed() -> None:
    view = CandleChart(candle_stream(40, state=StreamState.STALE))
    async with OneWidgetApp(view).run_test(size=(60, 12)) as pilot:
        await pilot.pause()
        dim = view.get_component_rich_style("stream--dim").color
        up = view.get_component_rich_style("candles--up").color
        body = [segment for y in range(1, view.size.height) for segment in view.render_line(y)]
    candle_colours = {segment.style.color for segment in body if "█" in segment.text}
    assert candle_colours == {dim} and up not in candle_colours


async def test_resyncing_chart_waits_for_history_again() -> None:
    view = CandleChart(candle_stream(40, state=StreamState.RESYNCING))
    async with OneWidgetApp(view).run_test(size=(60, 12)) as pilot:
        await pilot.pause()
        assert "RESYNCING" in view.render_line(0).text
        assert "resyncing…" in view.render_line(1).text
