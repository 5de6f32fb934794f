"""The trade tape: the most recent trades, newest on top, coloured by aggressor side.

Times are the venue's trade times in UTC (the column says so), so two screens in different time
zones read the same tape. Besides colour, each row carries a side mark (▲ buy, ▼ sell) so the tape
still reads without colour (NO_COLOR, a colour-blind palette). Trades larger than the 90th
percentile of recent sizes are emphasized (strictly larger, so a tape of equal sizes has none).
"""

from __future__ import annotations

from decimal import Decimal
from itertools import islice
from typing import ClassVar

from rich.style import Style
from textual.strip import Strip

from app.model import Side, Trade
from app.state import Stream, TradeTape
from widgets._base import StreamView, column_widths, row_strip
from widgets._format import common_decimals, format_decimal, format_time_ms, parse_decimal

LARGE_TRADE_PERCENTILE = 0.9
MIN_TRADES_FOR_EMPHASIS = 20
"""Below this many trades a percentile says little, so nothing is emphasized."""

_SIDE_MARK = {Side.BUY: "▲", Side.SELL: "▼"}
_SIDE_COMPONENT = {Side.BUY: "trades--buy", Side.SELL: "trades--sell"}


def large_trade_threshold(sizes: list[Decimal]) -> Decimal | None:
    """Size above which a trade counts as large (the 90th percentile), ``None`` if too few."""
    if len(sizes) < MIN_TRADES_FOR_EMPHASIS:
        return None
    ordered = sorted(sizes)
    return ordered[min(len(ordered) - 1, int(len(ordered) * LARGE_TRADE_PERCENTILE))]


class TradeTapeView(StreamView):
    """Recent trades of one market (Line API, rebuilt only on a new generation)."""

    DEFAULT_CSS = """
    TradeTapeView {
        & > .trades--buy { color: $success; }
        & > .trades--sell { color: $error; }
        & > .trades--large { text-style: bold; }
        & > .trades--time { color: $text-muted; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "trades--buy",
        "trades--sell",
        "trades--large",
        "trades--time",
    }

    HIDE_WHILE_RESYNCING = False  # trades are history: a resync does not make them wrong

    def render_body(self, stream: Stream, width: int, height: int, dimmed: bool) -> list[Strip]:
        assert isinstance(stream.data, TradeTape)
        tape = stream.data.trades
        if not tape:
            return self.notice("no trades yet", width)
        visible: list[Trade] = list(islice(reversed(tape), max(0, height - 1)))
        prices = [parse_decimal(trade.price) for trade in visible]
        sizes = [parse_decimal(trade.size) for trade in visible]
        price_decimals = common_decimals(price for price in prices if price is not None)
        size_decimals = common_decimals(size for size in sizes if size is not None)
        threshold = large_trade_threshold(
            [size for trade in tape if (size := parse_decimal(trade.size)) is not None]
        )

        def shown(value: Decimal | None, decimals: int) -> str:
            return "?" if value is None else format_decimal(value, decimals)

        rows = [
            [
                format_time_ms(trade.time_ms),
                shown(price, price_decimals),
                f"{shown(size, size_decimals)} {_SIDE_MARK.get(trade.side, '?')}",
            ]
            for trade, price, size in zip(visible, prices, sizes)
        ]
        heading = ["Time UTC", "Price", "Size  "]
        widths = column_widths([heading, *rows], width)
        large = self.get_component_rich_style("trades--large", partial=True)
        time_style = self.component_style("trades--time", dimmed)
        base = self.rich_style

        def line(cells: list[str], time: Style, numbers: Style) -> Strip:
            first, *rest = cells
            return row_strip(
                [
                    ((" " + first).ljust(widths[0]), time),
                    ("".join(cell.rjust(cells) for cell, cells in zip(rest, widths[1:])), numbers),
                ],
                width,
                base,
            )

        header = self.component_style("stream--column-header")
        lines = [line(heading, header, header)]
        for trade, size, row in zip(visible, sizes, rows):
            side = self.component_style(_SIDE_COMPONENT.get(trade.side, "stream--notice"), dimmed)
            if not dimmed and threshold is not None and size is not None and size > threshold:
                side += large
            lines.append(line(row, time_style, side))
        return lines
