"""The order-book ladder: asks above, the spread and mid in the middle, bids below.

Each side shows price, size and cumulative size, with a depth bar behind the row proportional to
the cumulative size (one scale for both sides, so the deeper side looks deeper). As many levels as
the height allows are shown, the same number per side, best prices next to the spread row.
Everything is drawn from the exact :class:`~decimal.Decimal` book; decimals come from the visible
levels so the columns line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import ClassVar

from textual.strip import Strip

from app.book import DepthLevel
from app.state import BookData, Stream
from widgets._base import StreamView, column_widths, row_strip
from widgets._format import common_decimals, decimals_of, format_decimal

_BPS = Decimal(10_000)
_HUNDREDTH = Decimal("0.01")


class OrderBookView(StreamView):
    """A live depth ladder of one market's book (Line API, rebuilt only on a new generation).

    ``probability``: the book of a prediction market's outcome, whose prices (0 to 1) are read as
    chances: shown in percent, the spread in points."""

    probability = False

    DEFAULT_CSS = """
    OrderBookView {
        & > .orderbook--bid { color: $success; }
        & > .orderbook--ask { color: $error; }
        & > .orderbook--bar-bid { background: $success 18%; }
        & > .orderbook--bar-ask { background: $error 18%; }
        & > .orderbook--spread { color: $text-muted; background: $boost; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "orderbook--bid",
        "orderbook--ask",
        "orderbook--bar-bid",
        "orderbook--bar-ask",
        "orderbook--spread",
    }

    def render_body(self, stream: Stream, width: int, height: int, dimmed: bool) -> list[Strip]:
        assert isinstance(stream.data, BookData)
        book = stream.data.book
        if book.empty:
            return self.notice("empty book", width)
        depth = max(0, (height - 2) // 2)  # minus the column header and the spread row
        bids, asks = book.top(depth)

        best = [price for price in (book.best_bid, book.best_ask) if price is not None]
        price_decimals = common_decimals([*best, *(level.price for level in (*bids, *asks))])
        size_decimals = common_decimals(level.size for level in (*bids, *asks))

        shown_decimals = max(0, price_decimals - 2) if self.probability else price_decimals

        def price(value: Decimal) -> str:
            if self.probability:
                return format_decimal(value * 100, shown_decimals) + "%"
            return format_decimal(value, price_decimals)

        def cells(level: DepthLevel) -> list[str]:
            return [
                price(level.price),
                format_decimal(level.size, size_decimals),
                format_decimal(level.total, size_decimals),
            ]

        ask_rows = [cells(level) for level in asks]
        bid_rows = [cells(level) for level in bids]
        titles = ("Chance" if self.probability else "Price", "Size", "Total")
        widths = column_widths([list(titles), *ask_rows, *bid_rows], width)
        deepest = max((side[-1].total for side in (bids, asks) if side), default=Decimal(0))
        base = self.rich_style
        plain = self.plain_style(dimmed)

        def side_rows(rows: list[list[str]], levels: list[DepthLevel], side: str) -> list[Strip]:
            price_style = self.component_style(f"orderbook--{side}", dimmed)
            bar_style = (
                None if dimmed or not deepest else self.component_style(f"orderbook--bar-{side}")
            )
            strips = []
            for row, level in zip(rows, levels):
                price, size, total = (cell.rjust(cells) for cell, cells in zip(row, widths))
                bar = 0 if bar_style is None else max(1, round(level.total / deepest * width))
                pieces = [(price, price_style), (size + total, plain)]
                strips.append(row_strip(pieces, width, base, bar=bar, bar_style=bar_style))
            return strips

        header = "".join(title.rjust(cells) for title, cells in zip(titles, widths))
        blank = Strip.blank(width, base)
        lines = [row_strip([(header, self.component_style("stream--column-header"))], width, base)]
        lines += [blank] * (depth - len(asks))
        lines += side_rows(ask_rows, asks, "ask")[::-1]
        lines.append(self._spread_row(book.best_bid, book.best_ask, price_decimals, width, dimmed))
        lines += side_rows(bid_rows, bids, "bid")
        return lines

    def _spread_row(
        self,
        bid: Decimal | None,
        ask: Decimal | None,
        price_decimals: int,
        width: int,
        dimmed: bool,
    ) -> Strip:
        """Spread (absolute and in bps) and mid, centred; the longest variant that fits."""
        if bid is None or ask is None:
            variants: Sequence[str] = ("no bids" if bid is None else "no asks",)
        elif self.probability:  # points of chance; basis points of a probability mean nothing
            points = format_decimal((ask - bid) * 100, max(0, price_decimals - 2))
            mid_pct = format_decimal((bid + ask) * 50, max(0, price_decimals - 1))
            variants = (f"spread {points} pts  mid {mid_pct}%", f"{points} pts  {mid_pct}%", points)
        else:
            spread = format_decimal(ask - bid, price_decimals)
            mid_value = (bid + ask) / 2
            mid = format_decimal(mid_value, max(price_decimals, decimals_of(mid_value)))
            bps = ((ask - bid) / mid_value * _BPS).quantize(_HUNDREDTH)
            variants = (
                f"spread {spread}  {bps} bps  mid {mid}",
                f"{spread}  {bps} bps  {mid}",
                f"{spread} {bps}bps",
                spread,
            )
        text = next((variant for variant in variants if len(variant) <= width), variants[-1])
        style = self.component_style("orderbook--spread", dimmed)
        return row_strip([(text.center(width), style)], width, style)
