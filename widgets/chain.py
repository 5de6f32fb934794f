"""An options chain: expiries as tabs, strikes as rows, calls left and puts right.

Why: picking an option means comparing strikes around the money within one expiry, both sides at
once. This widget draws one options-chain stream (:class:`~app.account.ChainData`): the expiries
on a tab line (the selected one highlighted), then one row per strike with the call's bid, mark,
ask and implied volatility, the strike, and the put's. The strike nearest the underlying's price
is marked at the money (▸ strike ◂) and in-the-money cells are shaded; a missing mark is the mid
of bid and ask. A cursor (a strike and a side) picks one option and ``enter`` posts
:class:`OptionsChainView.Chosen` with its venue and symbol, so the app can open its book.

Keys while focused::

    up / down          previous / next strike (pageup, pagedown, home, end: by page, to the ends)
    left / right       calls / puts (the side of the cursor: calls are on the left)
    [ / ]              previous / next expiry (shadows the app's market keys while focused)
    enter              post Chosen for the highlighted option

A click on a tab selects that expiry, a click on a row moves the cursor there, a double click
chooses. The cursor is kept by strike, not row index: new strikes, a removed leg or an expiry
switch leave it on the same (or the nearest) strike. Venue text is drawn inert.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from decimal import Decimal, InvalidOperation
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip

from app.account import ChainData
from app.model import ChainLeg, ChainRow, StreamState, Venue
from app.state import Stream
from widgets._base import Badge, Clock, Piece, stream_badge
from widgets._format import common_decimals, expiry_label, format_decimal, iv_percent, option_price, price
from widgets._panel import PanelView, pad
from widgets._text import inert

CALL, PUT = "call", "put"
SIDE_FIELDS = ("Bid", "Mark", "Ask", "IV%")
HEAD_LINES = 4
"""Lines above the strikes: title, expiry tabs, side labels, column names."""


def leg_mark(leg: ChainLeg) -> float | None:
    """The venue's mark, or the mid of bid and ask where it sent none."""
    if leg.mark is not None:
        return leg.mark
    if leg.bid is not None and leg.ask is not None:
        return (leg.bid + leg.ask) / 2
    return None


def _strike(row: ChainRow) -> Decimal:
    try:
        return Decimal(row.strike)
    except InvalidOperation:
        return Decimal(0)


def _leg_cells(leg: ChainLeg | None) -> list[str]:
    if leg is None:
        return ["", "", "", ""]
    return [option_price(leg.bid), option_price(leg_mark(leg)), option_price(leg.ask), iv_percent(leg.mark_iv)]


class OptionsChainView(PanelView):
    """One underlying's options chain on one venue, with an expiry and an option cursor."""

    can_focus = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Previous strike", show=False),
        Binding("down", "move(1)", "Next strike", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "edge(-1)", "First strike", show=False),
        Binding("end", "edge(1)", "Last strike", show=False),
        Binding("left", "side('call')", "Calls"),
        Binding("right", "side('put')", "Puts"),
        Binding("left_square_bracket", "expiry(-1)", "Previous expiry"),
        Binding("right_square_bracket", "expiry(1)", "Next expiry"),
        Binding("enter", "choose", "Choose option"),
    ]

    DEFAULT_CSS = """
    OptionsChainView {
        & > .chain--tab { color: $text-muted; }
        & > .chain--tab-selected { color: $accent; text-style: bold reverse; }
        & > .chain--side-label { color: $text-muted; text-style: bold; }
        & > .chain--bid { color: $success; }
        & > .chain--ask { color: $error; }
        & > .chain--mark { text-style: bold; }
        & > .chain--iv { color: $text-muted; }
        & > .chain--strike { text-style: bold; }
        & > .chain--atm { color: $accent; text-style: bold; }
        & > .chain--itm { background: $boost; }
        & > .chain--cursor { color: $block-cursor-foreground; background: $block-cursor-background; text-style: bold; }
        & > .chain--cursor-blurred { color: $block-cursor-blurred-foreground; background: $block-cursor-blurred-background; }
        & > .chain--separator { color: $text-disabled; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "chain--tab",
        "chain--tab-selected",
        "chain--side-label",
        "chain--bid",
        "chain--ask",
        "chain--mark",
        "chain--iv",
        "chain--strike",
        "chain--atm",
        "chain--itm",
        "chain--cursor",
        "chain--cursor-blurred",
        "chain--separator",
    }

    POLL_INTERVAL = 0.2

    class Chosen(Message):
        """``enter`` (or a double click) on an option: ``symbol`` on ``venue``."""

        def __init__(
            self,
            chain: OptionsChainView,
            venue: Venue,
            symbol: str,
            *,
            underlying: str,
            expiry_s: int,
            strike: Decimal,
            option_type: str,
        ) -> None:
            super().__init__()
            self.chain = chain
            self.venue = venue
            self.symbol = symbol
            self.underlying = underlying
            self.expiry_s = expiry_s
            self.strike = strike
            self.option_type = option_type  # "call" or "put"

        @property
        def control(self) -> OptionsChainView:
            return self.chain

    def __init__(
        self,
        stream: Stream | None = None,
        *,
        underlying_price: Callable[[], float | None] | None = None,
        title: str | None = None,
        clock: Clock = time.monotonic,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``underlying_price``: read every poll for the at-the-money mark (or call
        :meth:`set_underlying_price`); ``title`` replaces "BTC options · venue" (the underlying's
        price, when known, follows either)."""
        self.stream = stream
        self.clock = clock
        self.heading = title
        self._price_source = underlying_price
        self._price: float | None = None
        self._expiry: int | None = None
        self._strike: Decimal | None = None
        self._side = CALL
        self._offset = 0
        self._recentre = True
        self._tabs: list[tuple[int, int, int]] = []  # (first cell, end cell, expiry) of drawn tabs
        self._split: tuple[int, int] = (0, 0)  # where the strike column starts and ends
        super().__init__(name=name, id=id, classes=classes)

    # --- public API -------------------------------------------------------------------------------

    def bind(self, stream: Stream | None, *, title: str | None = None) -> None:
        """Show another chain (``None``: none); the cursor starts again at the money."""
        self.stream = stream
        self.heading = title
        self._expiry = None
        self._strike = None
        self._recentre = True
        self.invalidate()

    def set_underlying_price(self, value: float | None) -> None:
        """The underlying's price, for the at-the-money row (used when no callable was given)."""
        self._price = value
        self.poll()

    @property
    def underlying_price(self) -> float | None:
        if self._price_source is not None:
            try:
                return self._price_source()
            except Exception:  # a price source must never take the chain down
                return None
        return self._price

    @property
    def selected_expiry(self) -> int | None:
        self._resolve()
        return self._expiry

    @property
    def cursor(self) -> tuple[Decimal | None, str]:
        """The highlighted strike and side ("call" or "put")."""
        self._resolve()
        return self._strike, self._side

    def select_expiry(self, expiry_s: int) -> None:
        self._expiry = expiry_s
        self._recentre = True
        self.invalidate()

    def highlighted(self) -> ChainLeg | None:
        """The option under the cursor (``None``: no chain, or no such leg at that strike)."""
        row = self._cursor_row()
        if row is None:
            return None
        return row.call if self._side == CALL else row.put

    # --- selection --------------------------------------------------------------------------------

    def _chain(self) -> ChainData | None:
        stream = self.stream
        if stream is None or not isinstance(stream.data, ChainData):
            return None
        return stream.data

    def _resolve(self) -> tuple[list[int], list[ChainRow], int | None]:
        """Expiries, the selected expiry's rows and the cursor's row index, fixing the selection
        up when the chain changed under it (an expiry gone: the next one; a strike gone: the
        nearest; nothing chosen yet: at the money)."""
        chain = self._chain()
        if chain is None:
            return [], [], None
        expiries = chain.expiries()
        if not expiries:
            return expiries, [], None
        if self._expiry not in expiries:
            later = [e for e in expiries if self._expiry is not None and e >= self._expiry]
            self._expiry = later[0] if later else expiries[0] if self._expiry is None else expiries[-1]
            self._recentre = True
        assert self._expiry is not None
        rows = chain.rows_for(self._expiry)
        if not rows:
            return expiries, rows, None
        strikes = [_strike(row) for row in rows]
        if self._strike not in strikes:
            target = self._strike
            if target is None:
                atm = self._atm_index(strikes)
                target = strikes[atm if atm is not None else len(strikes) // 2]
            self._strike = min(strikes, key=lambda strike: (abs(strike - target), strike))
        return expiries, rows, strikes.index(self._strike)

    def _atm_index(self, strikes: list[Decimal]) -> int | None:
        underlying = self.underlying_price
        if underlying is None or not strikes:
            return None
        return min(range(len(strikes)), key=lambda i: abs(float(strikes[i]) - underlying))

    def _cursor_row(self) -> ChainRow | None:
        _, rows, index = self._resolve()
        return None if index is None else rows[index]

    def _move_to(self, index: int) -> None:
        _, rows, _ = self._resolve()
        if rows:
            self._strike = _strike(rows[max(0, min(len(rows) - 1, index))])
            self.invalidate()

    # --- actions ----------------------------------------------------------------------------------

    def action_move(self, step: int) -> None:
        _, _, index = self._resolve()
        if index is not None:
            self._move_to(index + step)

    def action_page(self, step: int) -> None:
        _, _, index = self._resolve()
        if index is not None:
            self._move_to(index + step * max(1, self.size.height - HEAD_LINES - 1))

    def action_edge(self, step: int) -> None:
        _, rows, _ = self._resolve()
        self._move_to(0 if step < 0 else len(rows) - 1)

    def action_side(self, side: str) -> None:
        if side in (CALL, PUT) and side != self._side:
            self._side = side
            self.invalidate()

    def action_expiry(self, step: int) -> None:
        expiries, _, _ = self._resolve()
        if not expiries or self._expiry is None:
            return
        index = max(0, min(len(expiries) - 1, expiries.index(self._expiry) + step))
        if expiries[index] != self._expiry:
            self.select_expiry(expiries[index])

    def action_choose(self) -> None:
        row = self._cursor_row()
        leg = self.highlighted()
        stream = self.stream
        if row is None or leg is None or stream is None or self._expiry is None:
            self.app.bell()
            return
        self.post_message(
            self.Chosen(
                self,
                stream.key.venue,
                leg.symbol,
                underlying=row.underlying,
                expiry_s=self._expiry,
                strike=_strike(row),
                option_type=self._side,
            )
        )

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        x, y = offset
        if y == 1:
            for start, end, expiry in self._tabs:
                if start <= x < end:
                    self.select_expiry(expiry)
                    return
        elif y >= HEAD_LINES:
            first, last = self._split
            if x < first:
                self.action_side(CALL)
            elif x >= last:
                self.action_side(PUT)
            self._move_to(self._offset + y - HEAD_LINES)
            if event.chain >= 2:
                self.action_choose()

    # --- what is shown ----------------------------------------------------------------------------

    def poll(self) -> None:
        self._resolve()
        super().poll()

    def observe(self) -> Hashable:
        stream = self.stream
        underlying = self.underlying_price
        status: tuple[object, ...] = ()
        if stream is not None:
            status = (id(stream), stream.data.generation, stream.state, stream.reason, stream_badge(stream, self.clock()))
        return (status, self._expiry, self._strike, self._side, None if underlying is None else price(underlying))

    def _title(self) -> str:
        stream = self.stream
        if self.heading is not None:
            title = inert(self.heading)
        elif stream is None:
            return "Options"
        else:
            title = f"{inert(stream.key.market)} options · {inert(stream.key.venue)}"
        underlying = self.underlying_price
        return f"{title}  underlying {price(underlying)}" if underlying is not None else title

    def build(self, width: int, height: int) -> list[Strip]:
        stream = self.stream
        badge: Badge | None = None if stream is None else stream_badge(stream, self.clock())
        lines = [self.header(self._title(), badge, width)]
        self._tabs = []
        if stream is None:
            return lines + [self.notice("no options chain", width)]
        if stream.state is StreamState.PENDING:
            return lines + [self.notice(inert(stream.reason) or "waiting for data", width)]
        if stream.state is StreamState.ERROR:
            reason = inert(stream.reason)
            return lines + [self.notice(f"error: {reason}" if reason else "error", width, "stream--error")]
        if stream.state is StreamState.RESYNCING:
            return lines + [self.notice("resyncing…", width)]
        expiries, rows, index = self._resolve()
        if not expiries:
            return lines + [self.notice("no options listed", width)]
        dimmed = not stream.trustworthy
        lines.append(self._tab_line(expiries, width, dimmed))
        if index is None:
            return lines + [self.notice("no strikes in this expiry", width)]

        strikes = [_strike(row) for row in rows]
        strike_decimals = common_decimals(strikes)
        strike_texts = [format_decimal(strike, strike_decimals) for strike in strikes]
        cells = [(_leg_cells(row.call), _leg_cells(row.put)) for row in rows]
        strike_cells = max(len("Strike"), *(cell_len(text) for text in strike_texts)) + 4  # "▸ " " ◂"
        half = max(0, (width - strike_cells - 4) // 2)  # two "│" and a margin cell each side
        widths = self._side_widths(cells, half)
        first = half + 2
        self._split = (first, first + strike_cells)

        lines.append(self._labels_line(half, strike_cells, width))
        lines.append(self._column_line(widths, half, strike_cells, width))

        visible = max(1, height - HEAD_LINES) if height > HEAD_LINES else len(rows)
        if self._recentre:
            self._offset = index - visible // 2
            self._recentre = False
        self._offset = min(max(self._offset, index - visible + 1), index)
        self._offset = max(0, min(self._offset, max(0, len(rows) - visible)))

        atm = self._atm_index(strikes)
        underlying = self.underlying_price
        for row_index in range(self._offset, min(len(rows), self._offset + visible)):
            strike = strikes[row_index]
            itm_call = underlying is not None and float(strike) < underlying
            itm_put = underlying is not None and float(strike) > underlying
            cursor = row_index == index
            call_cells, put_cells = cells[row_index]
            pieces: list[Piece] = [
                *self._side_pieces(call_cells, widths, half, itm_call, cursor and self._side == CALL, dimmed),
                (" │", self.style("chain--separator")),
                *self._strike_pieces(strike_texts[row_index], strike_cells, row_index == atm, cursor, dimmed),
                ("│", self.style("chain--separator")),
                *self._side_pieces(put_cells, widths, half, itm_put, cursor and self._side == PUT, dimmed),
            ]
            lines.append(self.line(pieces, width))
        return lines

    # --- pieces -----------------------------------------------------------------------------------

    def _tab_line(self, expiries: list[int], width: int, dimmed: bool) -> Strip:
        labels = [f" {expiry_label(expiry)} " for expiry in expiries]
        selected = expiries.index(self._expiry) if self._expiry in expiries else 0
        room = width - 4  # the "‹ " and " ›" marks of a cut tab line
        start = end = selected
        used = cell_len(labels[selected])
        while True:  # grow the window around the selected tab while it fits, later expiries first
            grown = False
            if end + 1 < len(labels) and used + 1 + cell_len(labels[end + 1]) <= room:
                end += 1
                used += 1 + cell_len(labels[end])
                grown = True
            if start > 0 and used + 1 + cell_len(labels[start - 1]) <= room:
                start -= 1
                used += 1 + cell_len(labels[start])
                grown = True
            if not grown:
                break
        base = self.rich_style
        muted = self.style("chain--tab", dimmed)
        pieces: list[Piece] = [("‹ " if start > 0 else "  ", muted)]
        cells = 2
        for index in range(start, end + 1):
            if index > start:
                pieces.append((" ", base))
                cells += 1
            component = "chain--tab-selected" if index == selected else "chain--tab"
            pieces.append((labels[index], self.style(component, dimmed and index != selected)))
            self._tabs.append((cells, cells + cell_len(labels[index]), expiries[index]))
            cells += cell_len(labels[index])
        if end < len(labels) - 1:
            pieces.append((" ›", muted))
        return self.line(pieces, width)

    def _labels_line(self, half: int, strike_cells: int, width: int) -> Strip:
        style = self.style("chain--side-label")
        return self.line(
            [("CALLS".center(half), style), (" " * (strike_cells + 3), self.rich_style), ("PUTS".center(half), style)],
            width,
        )

    def _column_line(self, widths: list[int], half: int, strike_cells: int, width: int) -> Strip:
        style = self.style("stream--column-header")
        side = "".join(pad(title, cells, True) for title, cells in zip(SIDE_FIELDS, widths) if cells)
        side = pad(side, half, True)
        return self.line([(side, style), ("  " + "Strike".center(strike_cells) + " ", style), (side, style)], width)

    def _side_widths(self, cells: list[tuple[list[str], list[str]]], half: int) -> list[int]:
        """Cells per column of one side (both sides alike), IV then Mark dropped when short."""
        natural = [len(title) for title in SIDE_FIELDS]
        for call, put in cells:
            for index, text in enumerate((*call, *put)):
                column = index % 4
                natural[column] = max(natural[column], cell_len(text))
        widths = [cells + 1 for cells in natural]  # a one-cell gap before each
        for drop in (3, 1, 2):
            if sum(widths) <= half:
                break
            widths[drop] = 0
        spare = max(0, half - sum(widths))
        shown = [i for i, cells in enumerate(widths) if cells]
        if shown:
            share, extra = divmod(spare, len(shown))
            for position, i in enumerate(shown):
                widths[i] += min(3, share + (position < extra))
        return widths

    def _side_pieces(
        self, cells: list[str], widths: list[int], half: int, itm: bool, cursor: bool, dimmed: bool
    ) -> list[Piece]:
        components = ("chain--bid", "chain--mark", "chain--ask", "chain--iv")  # as SIDE_FIELDS
        overlay: Style | None = None
        if cursor:
            overlay = self.get_component_rich_style("chain--cursor" if self.has_focus else "chain--cursor-blurred")
        elif itm and not dimmed:
            overlay = Style(bgcolor=self.get_component_rich_style("chain--itm").bgcolor)
        base = self.rich_style if overlay is None else self.rich_style + overlay
        used = sum(widths)
        pieces: list[Piece] = [(" " * max(0, half - used), base)]
        for index, (text, cells) in enumerate(zip(cells, widths)):
            if not cells:
                continue
            style = self.style(components[index], dimmed)
            if overlay is not None:
                style = style + overlay
            pieces.append((pad(text, cells, True), style))
        return pieces

    def _strike_pieces(self, text: str, cells: int, atm: bool, cursor: bool, dimmed: bool) -> list[Piece]:
        shown = f"▸ {text} ◂" if atm else text
        style = self.style("chain--atm" if atm else "chain--strike", dimmed)
        left = max(0, (cells - cell_len(shown)) // 2)
        right = max(0, cells - left - cell_len(shown))
        if cursor:  # the cursor's strike underlined (its side is highlighted)
            return [(" " * left, self.rich_style), (pad(shown, cells - left, False)[: cells - left - right],
                    style + Style(underline=True)), (" " * right, self.rich_style)]  # fmt: skip
        return [(" " * left + shown + " " * right, style)]
