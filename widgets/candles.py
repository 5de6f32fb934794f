"""The candle chart: the last candles that fit the width, drawn by plotext 5 and cached as strips.

Why plotext 5 directly, and not textual-plotext or plotext 6:

* textual-plotext 1.0.1 pins ``plotext<6``, so it gives us nothing plotext 5 does not, and its
  widget rebuilds the whole plot on every ``render()``. A plotext candlestick build costs ~22 ms
  (35 ms with ``Text.from_ansi``, see the limits research): more than a 60 fps frame. This widget
  builds once per candle change (at most every :attr:`CandleChart.MIN_REBUILD_INTERVAL` seconds) or
  resize, and serves cached Line-API strips in between.
* plotext 6 removed the module-level API (``plot``, ``build``, ``plotsize``) in favour of a new
  figure API; the project pins ``plotext>=5.3,<6``.

plotext 5 keeps one global figure, so every build starts from ``clear_figure()`` and runs on the UI
thread only. Prices become ``float`` here, for drawing only; the title shows the exact last price.
Time labels are UTC, like the trade tape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import islice
from typing import ClassVar

import plotext as plt
from rich.color import Color
from rich.text import Text
from textual.strip import Strip

from app.model import Candle
from app.state import CandleSeries, Stream
from widgets._base import StreamView
from widgets._format import decimals_of, format_decimal, parse_decimal

CELLS_PER_CANDLE = 2
"""A candle body and a gap: narrower and neighbouring candles merge into a block."""
Y_LABEL_CELLS = 10
"""Room assumed for the price labels when deciding how many candles fit."""
CELLS_PER_TIME_LABEL = 12
MIN_CHART_WIDTH = 12
MIN_CHART_HEIGHT = 4
_DAY_MS = 86_400_000

RGB = tuple[int, int, int]


def _ohlc(candle: Candle) -> tuple[float, float, float, float] | None:
    """Open, high, low, close as floats for drawing, or ``None`` if the venue sent a non-number."""
    texts = (candle.open, candle.high, candle.low, candle.close)
    numbers = [float(value) for text in texts if (value := parse_decimal(text)) is not None]
    if len(numbers) != len(texts):
        return None
    return numbers[0], numbers[1], numbers[2], numbers[3]


def time_labels(candles: Sequence[Candle], every: int) -> tuple[list[int], list[str]]:
    """Positions and UTC labels of every ``every``-th candle, counted back from the newest."""
    daily = len(candles) > 1 and candles[1].open_time_ms - candles[0].open_time_ms >= _DAY_MS
    form = "%m-%d" if daily else "%H:%M"
    positions = list(range(len(candles) - 1, -1, -every))[::-1]
    labels = [
        datetime.fromtimestamp(candles[index].open_time_ms / 1000, tz=UTC).strftime(form)
        for index in positions
    ]
    return positions, labels


def plot_candles(candles: Sequence[Candle], width: int, height: int, up: RGB, down: RGB) -> str:
    """Build the chart as plotext's ANSI text. Uses (and resets) plotext's global figure."""
    drawable = [(candle, ohlc) for candle in candles if (ohlc := _ohlc(candle)) is not None]
    plt.clear_figure()
    plt.theme("clear")  # no colours of its own: axes and labels take the widget's text colour
    plt.plotsize(width, height)
    plt.frame(False)
    if drawable:
        shown = [candle for candle, _ in drawable]
        opens, highs, lows, closes = (
            list(column) for column in zip(*(ohlc for _, ohlc in drawable))
        )
        plt.candlestick(
            list(range(len(shown))),
            {"Open": opens, "High": highs, "Low": lows, "Close": closes},
            colors=[up, down],
        )
        plot_cells = max(1, width - Y_LABEL_CELLS)
        every = max(1, math.ceil(CELLS_PER_TIME_LABEL * len(shown) / plot_cells))
        plt.xticks(*time_labels(shown, every))
    chart: str = plt.build()
    return chart


def _rgb(color: Color | None) -> RGB:
    if color is None:
        return (128, 128, 128)
    triplet = color.get_truecolor()
    return triplet.red, triplet.green, triplet.blue


class CandleChart(StreamView):
    """OHLC candles of one market and interval, rebuilt at most about once a second."""

    DEFAULT_CSS = """
    CandleChart {
        & > .candles--up { color: $success; }
        & > .candles--down { color: $error; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"candles--up", "candles--down"}

    POLL_INTERVAL = 0.25
    MIN_REBUILD_INTERVAL = 0.75

    def title_detail(self, stream: Stream) -> str:
        assert isinstance(stream.data, CandleSeries)
        candles = stream.data.candles
        interval = stream.key.param("interval") or (candles[-1].interval if candles else "")
        detail = f"{interval} UTC" if interval else "UTC"
        last = parse_decimal(candles[-1].close) if candles else None
        if last is None:
            return detail
        return f"{detail}  last {format_decimal(last, decimals_of(last))}"

    def render_body(self, stream: Stream, width: int, height: int, dimmed: bool) -> list[Strip]:
        assert isinstance(stream.data, CandleSeries)
        candles = stream.data.candles
        if not candles:
            return self.notice("loading history…", width)
        if width < MIN_CHART_WIDTH or height < MIN_CHART_HEIGHT:
            return self.notice("too small for a chart", width)
        count = max(1, (width - Y_LABEL_CELLS) // CELLS_PER_CANDLE)
        visible = list(islice(candles, max(0, len(candles) - count), None))
        chart = plot_candles(
            visible,
            width,
            height,
            up=_rgb(self.component_style("candles--up", dimmed).color),
            down=_rgb(self.component_style("candles--down", dimmed).color),
        )
        base = self.rich_style
        console = self.app.console
        return [
            Strip(line.render(console), line.cell_len).apply_style(base).crop_extend(0, width, base)
            for line in Text.from_ansi(chart, no_wrap=True).split("\n")[:height]
        ]
