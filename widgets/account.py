"""The account's open orders and recent fills across venues.

Why: after sending an order a trader looks for two things, whether it rests (and how much of it
filled) and what actually traded at what fee; a liquidation fill must stand out from the
trader's own. This widget shows the open orders of every bound venue (market, side, price, size,
filled, status), newest first, then the recent fills of every bound venue merged newest first
(UTC time, venue, market, side in the buy/sell colours with a ▲/▼ mark, size, price, fee, and a
``LIQ`` tag on liquidation fills).

It is bound to the app's account streams, one :class:`~app.state.Stream` per venue and channel
(:meth:`FillsOrdersView.bind_fills`, :meth:`FillsOrdersView.bind_orders`), so it shows their
state like the market widgets do: the header badge is the worst stream's (``STALE 12s``,
``WAITING``, ``ERROR``), rows of a stream that is not live are dimmed, and a stream still waiting
or refused says so in its section. Lines are Line-API strips rebuilt only when a generation, a
state or a badge moved. Venue text (markets, statuses, reasons) is drawn inert.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from rich.style import Style
from textual.strip import Strip

from app.account import FillsData, OrdersData
from app.model import Fill, OrderUpdate, Side, StreamState, Venue
from app.state import Stream
from widgets._base import Badge, Clock, stream_badge
from widgets._format import common_decimals, format_decimal, format_time_ms, parse_decimal, short_market
from widgets._panel import Column, Layout, PanelView, fit_columns, table_pieces
from widgets._text import inert

ORDER_COLUMNS: tuple[Column, ...] = (
    Column("Venue", right=False, keep=3),
    Column("Market", right=False, keep=9, flex=True, min_width=12, shorten=short_market),
    Column("Side", right=False, keep=8),
    Column("Price", keep=9),
    Column("Size", keep=7),
    Column("Filled", keep=6),
    Column("Status", right=False, keep=5),
)
FILL_COLUMNS: tuple[Column, ...] = (
    Column("Time UTC", right=False, keep=6, flex=True, min_width=8, shorten=lambda text: text[:8]),
    Column("Venue", right=False, keep=3),
    Column("Market", right=False, keep=9, flex=True, min_width=12, shorten=short_market),
    Column("Side", right=False, keep=8),
    Column("Size", keep=7),
    Column("Price", keep=9),
    Column("Fee", keep=4),
    Column("", right=False, keep=10),  # the LIQ tag: a liquidation must show at any width
)

_SIDE_TEXT = {Side.BUY: "BUY ▲", Side.SELL: "SELL ▼"}
_SIDE_COMPONENT = {Side.BUY: "fills--buy", Side.SELL: "fills--sell"}
_BADGE_RANK = {
    StreamState.ERROR: 0,
    StreamState.STALE: 1,
    StreamState.RESYNCING: 2,
    StreamState.PENDING: 3,
    StreamState.LIVE: 4,
}


@dataclass(frozen=True, slots=True)
class _Bound:
    venue: Venue
    kind: str  # "fills" or "orders"
    stream: Stream


def _number(text: str | None) -> Decimal | None:
    return None if text is None else parse_decimal(text)


def _shown(value: Decimal | None, decimals: int, missing: str = "—") -> str:
    return missing if value is None else format_decimal(value, decimals)


def _decimals_by_market(pairs: list[tuple[str, Decimal | None]]) -> dict[str, int]:
    """The most decimals any visible value of each market has, so a market's column lines up."""
    grouped: dict[str, list[Decimal]] = {}
    for market, value in pairs:
        if value is not None:
            grouped.setdefault(market, []).append(value)
    return {market: common_decimals(values) for market, values in grouped.items()}


class FillsOrdersView(PanelView):
    """Open orders, then recent fills newest first, of every bound venue."""

    DEFAULT_CSS = """
    FillsOrdersView {
        & > .fills--buy { color: $success; }
        & > .fills--sell { color: $error; }
        & > .fills--liq { color: $error; text-style: bold reverse; }
        & > .fills--time { color: $text-muted; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"fills--buy", "fills--sell", "fills--liq", "fills--time"}

    POLL_INTERVAL = 0.2

    def __init__(
        self,
        *,
        title: str = "Orders & fills",
        clock: Clock = time.monotonic,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        self.heading = title
        self.clock = clock
        self._bound: dict[tuple[Venue, str], _Bound] = {}
        super().__init__(name=name, id=id, classes=classes)

    # --- binding ----------------------------------------------------------------------------------

    def bind_fills(self, venue: Venue, stream: Stream | None) -> None:
        """Show ``venue``'s fills from ``stream`` (its data a :class:`FillsData`); ``None`` unbinds."""
        self._bind(venue, "fills", stream, FillsData)

    def bind_orders(self, venue: Venue, stream: Stream | None) -> None:
        """Show ``venue``'s open orders from ``stream`` (an :class:`OrdersData`); ``None`` unbinds."""
        self._bind(venue, "orders", stream, OrdersData)

    def unbind(self, venue: Venue | None = None) -> None:
        """Forget ``venue``'s streams (every venue's when ``None``)."""
        for key in [key for key in self._bound if venue is None or key[0] is venue]:
            del self._bound[key]
        self.invalidate()

    def _bind(self, venue: Venue, kind: str, stream: Stream | None, expected: type) -> None:
        if stream is None:
            self._bound.pop((venue, kind), None)
        else:
            if not isinstance(stream.data, expected):
                raise TypeError(f"{kind} of {venue} needs a {expected.__name__} stream, not {type(stream.data).__name__}")
            self._bound[(venue, kind)] = _Bound(venue, kind, stream)
        self.invalidate()

    # --- what is shown ----------------------------------------------------------------------------

    def observe(self) -> Hashable:
        now = self.clock()
        return tuple(
            (key, id(bound.stream), bound.stream.data.generation, bound.stream.state, bound.stream.reason,
             stream_badge(bound.stream, now))
            for key, bound in self._bound.items()
        )  # fmt: skip

    def _streams(self, kind: str) -> list[_Bound]:
        return [bound for bound in self._bound.values() if bound.kind == kind]

    def _badge(self) -> Badge | None:
        if not self._bound:
            return None
        now = self.clock()
        worst = min(self._bound.values(), key=lambda b: _BADGE_RANK.get(b.stream.state, 5))
        badge = stream_badge(worst.stream, now)
        venues = {bound.venue for bound in self._bound.values()}
        if worst.stream.state is not StreamState.LIVE and len(self._bound) > 1:
            where = f"{worst.venue} {worst.kind}" if len(venues) > 1 else worst.kind
            badge = Badge(f"{badge.text} {inert(where)}", badge.component)
        return badge

    def _status_notices(self, kind: str, width: int) -> list[Strip]:
        """A line for each stream of ``kind`` that has nothing to show yet, or was refused."""
        notices = []
        for bound in self._streams(kind):
            stream = bound.stream
            if stream.state is StreamState.PENDING:
                notices.append(self.notice(f"{inert(bound.venue)}: waiting for {kind}…", width))
            elif stream.state is StreamState.ERROR:
                reason = inert(stream.reason)
                text = f"{inert(bound.venue)} {kind}: error" + (f": {reason}" if reason else "")
                notices.append(self.notice(text, width, "stream--error"))
        return notices

    def _showable(self, bound: _Bound) -> bool:
        return bound.stream.state not in (StreamState.PENDING, StreamState.ERROR)

    # --- building ---------------------------------------------------------------------------------

    def build(self, width: int, height: int) -> list[Strip]:
        lines = [self.header(self.heading, self._badge(), width)]
        if not self._bound:
            return lines + [self.notice("no account configured", width)]
        orders = [
            (bound.venue, order, not bound.stream.trustworthy)
            for bound in self._streams("orders") if self._showable(bound)
            for order in bound.stream.data.open_orders()  # type: ignore[attr-defined]
        ]  # fmt: skip
        orders.sort(key=lambda item: item[1].time_ms or 0, reverse=True)
        fills = [
            (bound.venue, fill, not bound.stream.trustworthy)
            for bound in self._streams("fills") if self._showable(bound)
            for fill in bound.stream.data.fills  # type: ignore[attr-defined]
        ]  # fmt: skip
        fills.sort(key=lambda item: item[1].time_ms, reverse=True)

        body = max(0, height - 1)
        order_notices = self._status_notices("orders", width)
        fill_notices = self._status_notices("fills", width)
        # Open orders first, but at most half the room when there are fills to show under them.
        fills_least = 2 + len(fill_notices) + (min(len(fills), 3) if fills else 0 if fill_notices else 1)
        order_room = body - 2 - len(order_notices) - fills_least
        if fills:
            order_room = min(order_room, (body - 4 - len(order_notices) - len(fill_notices)) // 2)
        lines += self._orders_section(orders, order_notices, max(1, order_room), width)
        fill_room = max(0, body - (len(lines) - 1) - 2 - len(fill_notices))
        lines += self._fills_section(fills[:fill_room], fill_notices, bool(fills), width)
        return lines

    def _section_title(self, text: str, width: int) -> Strip:
        return self.line([(" " + text, self.style("panel--section"))], width)

    def _column_header(self, columns: tuple[Column, ...], layout: Layout, width: int) -> Strip:
        style = self.style("stream--column-header")
        return self.line(table_pieces([(c.title, style) for c in columns], columns, layout, self.rich_style), width)

    def _orders_section(
        self, orders: list[tuple[Venue, OrderUpdate, bool]], notices: list[Strip], room: int, width: int
    ) -> list[Strip]:
        title = f"Open orders ({len(orders)})" if orders else "Open orders"
        lines = [self._section_title(title, width)]
        # Cut to the room, the last line saying how many more (the title has the count anyway).
        shown = orders if len(orders) <= room else orders[: room - 1 if room > 1 else 1]
        prices = _decimals_by_market([(o.market or "", _number(o.price)) for _, o, _ in shown])
        sizes = _decimals_by_market(
            [(o.market or "", _number(v)) for _, o, _ in shown for v in (o.size, o.filled)]
        )
        rows: list[tuple[list[str], Side | None, bool]] = []
        for venue, order, dimmed in shown:
            market = order.market or ""
            rows.append((
                [
                    inert(venue),
                    inert(market) or "—",
                    {Side.BUY: "BUY", Side.SELL: "SELL"}.get(order.side, "—") if order.side else "—",
                    _shown(_number(order.price), prices.get(market, 0)),
                    _shown(_number(order.size), sizes.get(market, 0)),
                    _shown(_number(order.filled), sizes.get(market, 0), "0"),
                    inert(order.status),
                ],
                order.side,
                dimmed,
            ))  # fmt: skip
        layout = fit_columns(ORDER_COLUMNS, [r for r, _, _ in rows], width)
        lines.append(self._column_header(ORDER_COLUMNS, layout, width))
        for cells, side, dimmed in rows:
            styles = [self.plain(dimmed)] * len(cells)
            styles[2] = self._side_style(side, dimmed)
            styles[3] = styles[2]
            pieces = table_pieces(list(zip(cells, styles)), ORDER_COLUMNS, layout, self.rich_style)
            lines.append(self.line(pieces, width))
        if len(orders) > len(shown) and room > 1:
            lines.append(self.notice(f"… {len(orders) - len(shown)} more open orders", width))
        lines += notices
        if not orders and not notices:
            lines.append(self.notice("no open orders", width))
        return lines

    def _fills_section(
        self, fills: list[tuple[Venue, Fill, bool]], notices: list[Strip], any_fills: bool, width: int
    ) -> list[Strip]:
        lines = [self._section_title("Fills", width)]
        prices = _decimals_by_market([(f.market, _number(f.price)) for _, f, _ in fills])
        sizes = _decimals_by_market([(f.market, _number(f.size)) for _, f, _ in fills])
        rows: list[tuple[list[str], Fill, bool]] = []
        for venue, fill, dimmed in fills:
            fee = _number(fill.fee)
            rows.append((
                [
                    format_time_ms(fill.time_ms),
                    inert(venue),
                    inert(fill.market),
                    _SIDE_TEXT.get(fill.side, "?"),
                    _shown(_number(fill.size), sizes.get(fill.market, 0), "?"),
                    _shown(_number(fill.price), prices.get(fill.market, 0), "?"),
                    "—" if fee is None else format_decimal(fee, max(2, common_decimals([fee]))),
                    "LIQ" if fill.liquidation else "",
                ],
                fill,
                dimmed,
            ))  # fmt: skip
        layout = fit_columns(FILL_COLUMNS, [r for r, _, _ in rows], width)
        lines.append(self._column_header(FILL_COLUMNS, layout, width))
        for cells, fill, dimmed in rows:
            side = self._side_style(fill.side, dimmed)
            plain = self.plain(dimmed)
            styles: list[Style] = [
                self.style("fills--time", dimmed), plain, plain, side, side, side, plain,
                self.style("fills--liq", dimmed) if fill.liquidation else plain,
            ]  # fmt: skip
            pieces = table_pieces(list(zip(cells, styles)), FILL_COLUMNS, layout, self.rich_style)
            lines.append(self.line(pieces, width))
        lines += notices
        if not any_fills and not notices:
            lines.append(self.notice("no fills yet", width))
        return lines

    def _side_style(self, side: Side | None, dimmed: bool) -> Style:
        component = _SIDE_COMPONENT.get(side) if side is not None else None
        return self.style(component, dimmed) if component else self.plain(dimmed)

