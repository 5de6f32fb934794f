"""Portfolio Greeks across venues: per underlying, per leg, and in total.

Why: a trader holding options on one venue and hedging with perps on another needs the net risk
per underlying, not per venue. This widget draws :attr:`Portfolio.view` (the app refreshes the
portfolio on its own timer): a header per underlying with its price, one row per leg, a net row per
underlying (delta in underlying units and in dollars, dollar gamma per 1 % move, theta in dollars
per day, vega in dollars per volatility point) and a TOTAL row in dollars, the only units that add
up across underlyings. Column headers carry the units; figures are compact and signed, positive
green and negative red (the bid/ask colours). Legs of a venue whose account streams are not live
are dimmed, and so is every sum they enter, and the header says which venue is stale.

It redraws only when :attr:`PortfolioView.stamp` moves. ``compact`` turns it into one summary line
(``Greeks $Δ +12.3k $Γ -1.1k Θ -340/d V +1.2k``) for small terminals.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

from rich.style import Style
from textual.strip import Strip

from app.model import Venue
from app.portfolio import LegView, Portfolio, PortfolioView, UnderlyingGreeks
from widgets._base import Badge, Piece
from widgets._format import iv_percent, price, quantity, short_market, sign_of, signed
from widgets._panel import NATURAL_HEIGHT, Column, CompactPanelView, Layout, fit_columns, pad, table_pieces
from widgets._text import inert

COLUMNS: tuple[Column, ...] = (
    Column("Venue", right=False, keep=4),
    Column("Market", right=False, keep=9, flex=True, min_width=13, shorten=short_market),
    Column("Qty", keep=3),
    Column("Δ", keep=10),
    Column("$Δ", keep=8),
    Column("Γ", keep=6),
    Column("$Γ/1%", keep=7),
    Column("$/day", keep=10),
    Column("$/vol", keep=9),
    Column("IV%", keep=2),
)
"""Delta in underlying units and ``$Δ`` in USD; gamma per 1 USD of the underlying and ``$Γ/1%``,
the change of ``$Δ`` for a 1 % move; theta USD per day; vega USD per volatility point (see
:mod:`app.portfolio`). The Greeks' names head their columns on the line above (:data:`GROUPS`)."""

GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Delta", (3, 4)),
    ("Gamma", (5, 6)),
    ("Theta", (7,)),
    ("Vega", (8,)),
)
"""Each Greek's name over its columns."""

_SIGNED = range(2, 9)  # the columns coloured by sign: Qty (long/short) and the Greeks


@dataclass(frozen=True, slots=True)
class _Row:
    kind: str  # "leg", "net" or "total"
    texts: tuple[str, ...]
    signs: tuple[int, ...]
    dimmed: bool


def _dollar_gamma(gamma: float, underlying_price: float | None) -> float | None:
    return None if underlying_price is None else gamma * underlying_price * underlying_price / 100


def _leg_row(leg: LegView, underlying_price: float | None, dimmed: bool) -> _Row:
    delta_usd = None if underlying_price is None else leg.delta * underlying_price
    gamma_usd = _dollar_gamma(leg.gamma, underlying_price)
    figures = (leg.delta, delta_usd, leg.gamma, gamma_usd, leg.theta, leg.vega)
    texts = (
        inert(leg.venue),
        inert(leg.market),
        quantity(leg.quantity),
        *(signed(value) for value in figures),
        iv_percent(leg.iv) if leg.kind != "perp" else "",
    )
    signs = (0, 0, sign_of(leg.quantity), *(sign_of(value) for value in figures), 0)
    return _Row("leg", texts, signs, dimmed)


def _net_row(underlying: UnderlyingGreeks, dimmed: bool) -> _Row:
    figures = (
        underlying.delta,
        underlying.delta_usd,
        underlying.gamma,
        underlying.gamma_usd,
        underlying.theta,
        underlying.vega,
    )
    texts = ("", f"Σ {inert(underlying.underlying)} net", "", *(signed(value) for value in figures), "")
    signs = (0, 0, 0, *(sign_of(value) for value in figures), 0)
    return _Row("net", texts, signs, dimmed)


def _total_row(view: PortfolioView, dimmed: bool) -> _Row:
    figures = (None, view.total_delta_usd, None, view.total_gamma_usd, view.total_theta, view.total_vega)
    texts = ("", "TOTAL", "", *("" if i in (0, 2) else signed(v) for i, v in enumerate(figures)), "")
    signs = (0, 0, 0, *(sign_of(value) for value in figures), 0)
    return _Row("total", texts, signs, dimmed)


class PortfolioGreeksView(CompactPanelView):
    """Greeks of the whole portfolio by underlying, drawn from ``portfolio.view``."""

    DEFAULT_CSS = """
    PortfolioGreeksView {
        & > .greeks--underlying { color: $accent; text-style: bold; }
        & > .greeks--net { text-style: bold; }
        & > .greeks--group { text-style: bold; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"greeks--underlying", "greeks--net", "greeks--group"}

    def __init__(
        self,
        portfolio: Portfolio,
        *,
        title: str = "Portfolio Greeks",
        compact: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        self.portfolio = portfolio
        self.heading = title
        super().__init__(compact=compact, name=name, id=id, classes=classes)

    # --- what is shown ----------------------------------------------------------------------------

    def observe(self) -> Hashable:
        return (self.portfolio.view.stamp, self.compact, self._waiting(), len(self.portfolio.sources))

    def _waiting(self) -> bool:
        """Whether a venue's positions have not all arrived yet (so "no positions" is not known)."""
        return any(source.account is None or not source.account.complete for source in self.portfolio.sources)

    def _stale(self, view: PortfolioView) -> list[Venue]:
        return [venue.venue for venue in view.venues if not venue.current]

    def _empty_text(self, view: PortfolioView) -> str | None:
        if view.underlyings:
            return None
        if not self.portfolio.sources:
            return "no positions (no account configured)"
        if view.stamp == 0 or self._waiting():
            return "waiting for positions…"
        return "no positions"

    def _badge(self, view: PortfolioView, stale: list[Venue]) -> Badge:
        if stale:
            return Badge("STALE " + " ".join(inert(venue) for venue in stale), "stream--badge-stale")
        if view.stamp == 0 or (self._waiting() and not view.underlyings):
            return Badge("WAITING", "stream--badge-pending")
        return Badge("LIVE", "stream--badge-live")

    # --- full form --------------------------------------------------------------------------------

    def build_full(self, width: int, height: int) -> list[Strip]:
        view = self.portfolio.view
        stale = self._stale(view)
        legs = view.legs
        title = f"{self.heading} · {legs} leg{'s' if legs != 1 else ''}" if legs else self.heading
        lines = [self.header(title, self._badge(view, stale), width)]
        empty = self._empty_text(view)
        if empty is not None:
            lines.append(self.notice(empty, width))
            return lines

        stale_set = set(stale)
        groups: list[tuple[UnderlyingGreeks, list[_Row], _Row]] = []
        for underlying in view.underlyings:
            leg_rows = [_leg_row(leg, underlying.price, leg.venue in stale_set) for leg in underlying.legs]
            dimmed = any(leg.venue in stale_set for leg in underlying.legs)
            groups.append((underlying, leg_rows, _net_row(underlying, dimmed)))
        total = _total_row(view, bool(stale_set))
        all_rows = [row for _, legs_, net in groups for row in (*legs_, net)] + [total]
        layout = fit_columns(COLUMNS, [row.texts for row in all_rows], width)

        lines += self._column_header(layout, width)
        # Three forms, the first that fits: each underlying with its price line, legs and net row;
        # without the price lines, a lone leg standing for its own net; net rows only.
        room = height - len(lines) - 1
        full = sum(2 + len(leg_rows) for _, leg_rows, _ in groups)
        tight = sum(1 if len(leg_rows) == 1 else 1 + len(leg_rows) for _, leg_rows, _ in groups)
        form = "full" if full <= room or height >= NATURAL_HEIGHT else "tight" if tight <= room else "nets"
        body: list[Strip] = []
        for underlying, leg_rows, net in groups:
            if form == "full":
                body.append(self._underlying_line(underlying, width, net.dimmed))
            if form == "nets" or (form == "tight" and len(leg_rows) == 1):
                body.append(self._row(net if form == "nets" else leg_rows[0], layout, width))
                continue
            body += [self._row(row, layout, width) for row in leg_rows]
            body.append(self._row(net, layout, width))
        room = max(0, height - len(lines) - 1)  # the TOTAL row stays on screen
        if len(body) > room:
            keep = max(0, room - 1)
            more = [self.notice(f"… {len(body) - keep} more rows", width)] if room else []
            body = body[:keep] + more
        return lines + body + [self._row(total, layout, width)]

    def _column_header(self, layout: Layout, width: int) -> list[Strip]:
        """Two lines: each Greek's name centred over its columns, then the columns' units."""
        style = self.style("stream--column-header")
        names = self.get_component_rich_style("greeks--group", partial=True)
        starts = layout.starts()
        groups: list[Piece] = []
        x = 0
        for title, indices in GROUPS:
            shown = [i for i in indices if starts[i] is not None]
            if not shown:
                continue
            first, last = shown[0], shown[-1]
            start, end = starts[first], starts[last]
            last_cells = layout.widths[last]
            assert start is not None and end is not None and last_cells is not None
            span = end + last_cells - start
            groups.append((" " * (start - x), self.rich_style))
            groups.append((pad(title.center(span) if span > len(title) else title, span, False), style + names))
            x = start + span
        cells = [(column.title, style) for column in COLUMNS]
        return [
            self.line(groups, width),
            self.line(table_pieces(cells, COLUMNS, layout, self.rich_style), width),
        ]

    def _underlying_line(self, underlying: UnderlyingGreeks, width: int, dimmed: bool) -> Strip:
        legs = len(underlying.legs)
        pieces: list[Piece] = [
            (" " + inert(underlying.underlying), self.style("greeks--underlying", dimmed)),
            (f"  {price(underlying.price)}", self.plain(dimmed)),
            (f"  {legs} leg{'s' if legs != 1 else ''}", self.style("stream--notice", dimmed)),
        ]
        return self.line(pieces, width)

    def _row(self, row: _Row, layout: Layout, width: int) -> Strip:
        emphasis: Style | None = None
        if row.kind != "leg":
            component = "greeks--net" if row.kind == "net" else "panel--total"
            emphasis = self.get_component_rich_style(component, partial=True)
        cells: list[Piece] = []
        for index, (text, sign) in enumerate(zip(row.texts, row.signs)):
            style = self.sign_style(sign, row.dimmed) if index in _SIGNED else self.plain(row.dimmed)
            if emphasis is not None:
                style += emphasis
            cells.append((text, style))
        return self.line(table_pieces(cells, COLUMNS, layout, self.rich_style), width)

    # --- compact form -----------------------------------------------------------------------------

    def build_compact(self, width: int) -> Strip:
        view = self.portfolio.view
        stale = self._stale(view)
        dimmed = bool(stale)
        base = self.rich_style
        pieces: list[Piece] = [(" Greeks", self.style("stream--title", dimmed))]
        empty = self._empty_text(view)
        if empty is not None:
            pieces.append((f": {empty}", self.style("stream--notice", dimmed)))
        else:
            figures = (
                ("$Δ", view.total_delta_usd, ""),
                ("$Γ", view.total_gamma_usd, ""),
                ("Θ", view.total_theta, "/d"),
                ("V", view.total_vega, ""),
            )
            for label, value, unit in figures:
                pieces.append((f" {label} ", self.plain(dimmed)))
                pieces.append((signed(value), self.sign_style(sign_of(value), dimmed)))
                if unit:
                    pieces.append((unit, self.plain(dimmed)))
        if stale:
            pieces += [(" ", base), (" STALE ", self.style("stream--badge-stale"))]
        return self.line(pieces, width)
