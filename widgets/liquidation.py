"""Each venue's distance from liquidation: state, margin, time in state, and an alert.

Why: a liquidation is the one event a trader cannot undo, and venues say it differently (Hypercall
states Normal/Warning/Liquidating; Hyperliquid only reports liquidations as events, so the state is
derived from margin). This widget draws :attr:`PortfolioView.venues` the same way for all: a state
badge (NORMAL green, WARNING yellow, LIQUIDATING red reversed, "—" while unknown), a bar of equity
over the maintenance requirement with the maintenance mark (┃ at 1×) and the warning band (up to
the ╎ at 1.5×, :data:`app.account.WARNING_RATIO`) drawn in, the figures behind it, how long the
account has been in its state, and how far it is from liquidation (a first-order estimate, hence
"≈"), with the nearest position's liquidation price.

:meth:`LiquidationStateView.alert` is what the app calls on a transition to Warning or
Liquidating: the widget takes the ``-alert`` CSS class and a heavy border in the theme's error
colour (set inline, so it shows over the layout's own border), and shows a line
``⚠ hypercall: Normal → Warning at 12:03:04 UTC`` until that venue is back to Normal (the app rings
the bell and posts the notification). ``compact`` turns it into one summary line
(``Liq: hypercall WARNING 1.32× · hyperliquid NORMAL 3.1×``, the worst venue first).

Times come from ``clock`` (``time.time``, the clock :attr:`LiquidationView.since` is on), so a
test can freeze them; the time in state ticks once a second, nothing redraws faster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import ClassVar

from rich.cells import cell_len
from rich.style import Style
from textual.color import Color
from textual.strip import Strip

from app.model import LiquidationState, Venue
from app.account import WARNING_RATIO
from app.portfolio import LiquidationView, Portfolio, PortfolioView, Transition
from widgets._base import Badge, Piece
from widgets._format import (
    clock_time,
    decimals_of,
    duration,
    format_decimal,
    money,
    ratio,
    short_market,
    sign_of,
    whole_money,
)
from widgets._panel import CompactPanelView, first_fitting
from widgets._text import inert

BAR_SCALE = 3.0
"""Equity/maintenance ratio at the bar's right end: the warning band and some room above it."""
BAR_MAX_CELLS = 60
BAR_MIN_CELLS = 10

_STATE_COMPONENT = {
    LiquidationState.NORMAL: "liq--normal",
    LiquidationState.WARNING: "liq--warning",
    LiquidationState.LIQUIDATING: "liq--liquidating",
    None: "liq--unknown",
}
_RANK = {LiquidationState.LIQUIDATING: 0, LiquidationState.WARNING: 1, LiquidationState.NORMAL: 2, None: 3}


def state_label(state: LiquidationState | None) -> str:
    return "—" if state is None else state.value.upper()


def _state_name(state: LiquidationState | None) -> str:
    return "—" if state is None else state.value


def _worst_first(venues: tuple[LiquidationView, ...]) -> list[LiquidationView]:
    return sorted(venues, key=lambda v: (_RANK[v.state], v.margin_ratio if v.margin_ratio is not None else math.inf))


def _move_sign(view: PortfolioView, venue: Venue) -> str:
    """Which way the adverse move goes: down for a net long venue, up for a short, ± for both."""
    net: dict[str, float] = {}
    for underlying in view.underlyings:
        for leg in underlying.legs:
            if leg.venue is venue:
                net[leg.underlying] = net.get(leg.underlying, 0.0) + leg.delta
    signs = {sign_of(delta) for delta in net.values()} - {0}
    if signs == {1}:
        return "-"
    if signs == {-1}:
        return "+"
    return "±"


def _liquidation_side(view: PortfolioView, venue: Venue, market: str) -> str:
    """A long position is liquidated below its mark (-), a short above (+)."""
    for underlying in view.underlyings:
        for leg in underlying.legs:
            if leg.venue is venue and leg.market == market:
                return {1: "-", -1: "+"}.get(sign_of(leg.quantity), "±")
    return "±"


def _liquidation_price(value: Decimal) -> str:
    return format_decimal(value, decimals_of(value)) if value.is_finite() else "?"


class LiquidationStateView(CompactPanelView):
    """Liquidation state and margin of every venue with an account, from ``portfolio.view``."""

    DEFAULT_CSS = """
    LiquidationStateView {
        & > .liq--venue { text-style: bold; }
        & > .liq--normal { color: $success; text-style: bold; }
        & > .liq--warning { color: $warning; text-style: bold; }
        & > .liq--liquidating { color: $error; text-style: bold reverse; }
        & > .liq--unknown { color: $text-muted; }
        & > .liq--fill-normal { color: $success; }
        & > .liq--fill-warning { color: $warning; }
        & > .liq--fill-liquidating { color: $error; }
        & > .liq--fill-unknown { color: $text-muted; }
        & > .liq--band-above { color: $text-disabled; }
        & > .liq--band-warning { color: $warning 60%; }
        & > .liq--band-below { color: $error 60%; }
        & > .liq--mark { color: $foreground; text-style: bold; }
        & > .liq--shortfall { color: $error; text-style: bold; }
        & > .liq--alert-warning { color: $warning; text-style: bold reverse; }
        & > .liq--alert-liquidating { color: $error; text-style: bold reverse; }
    }
    LiquidationStateView.-alert {
        background-tint: $error 8%;
    }
    LiquidationStateView.-alert.-compact {
        background: $error 25%;
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "liq--venue",
        *_STATE_COMPONENT.values(),
        "liq--fill-normal",
        "liq--fill-warning",
        "liq--fill-liquidating",
        "liq--fill-unknown",
        "liq--band-above",
        "liq--band-warning",
        "liq--band-below",
        "liq--mark",
        "liq--shortfall",
        "liq--alert-warning",
        "liq--alert-liquidating",
    }

    POLL_INTERVAL = 0.25

    def __init__(
        self,
        portfolio: Portfolio,
        *,
        clock: Callable[[], float] = time.time,
        title: str = "Liquidation",
        compact: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        self.portfolio = portfolio
        self.clock = clock
        self.heading = title
        self._alerts: dict[Venue, tuple[Transition, float]] = {}
        super().__init__(compact=compact, name=name, id=id, classes=classes)

    # --- alerts -----------------------------------------------------------------------------------

    def alert(self, transition: Transition) -> None:
        """Show ``transition`` (to Warning or Liquidating) until its venue is Normal again.

        A transition to Normal clears that venue's alert at once."""
        if transition.alarming:
            self._alerts[transition.venue] = (transition, self.clock())
        else:
            self._alerts.pop(transition.venue, None)
        self._show_alerting()
        self.invalidate()

    @property
    def alerting(self) -> bool:
        return bool(self._alerts)

    def _prune_alerts(self) -> None:
        if not self._alerts:
            return
        states = {venue.venue: venue.state for venue in self.portfolio.view.venues}
        cleared = [v for v in self._alerts if states.get(v) is LiquidationState.NORMAL]
        for venue in cleared:
            del self._alerts[venue]
        if cleared:
            self._show_alerting()

    def _show_alerting(self) -> None:
        """The ``-alert`` class, and a heavy border in the theme's error colour set inline: a
        stylesheet that gives the widget its own border (the app's does) would win over a
        class rule here, and the alert must show whatever the layout's CSS says."""
        alerting = bool(self._alerts)
        self.set_class(alerting, "-alert")
        if self.compact or not self.is_attached:
            return  # compact: no border at all (the line itself carries the ⚠)
        if alerting:
            colour = Color.parse(self.app.get_css_variables().get("error", "red"))
            self.styles.border = ("heavy", colour)
        else:
            for rule in ("border_top", "border_right", "border_bottom", "border_left"):
                self.styles.clear_rule(rule)

    def _apply_compact(self, compact: bool) -> None:
        super()._apply_compact(compact)
        self._show_alerting()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self._alerts and not self.compact and self.is_attached:  # a new theme: its error colour
            colour = Color.parse(self.app.get_css_variables().get("error", "red"))
            if self.styles.border_top != ("heavy", colour):
                self.styles.border = ("heavy", colour)

    def poll(self) -> None:
        self._prune_alerts()
        super().poll()

    # --- what is shown ----------------------------------------------------------------------------

    def observe(self) -> Hashable:
        view = self.portfolio.view
        alerts = tuple(self._alerts.items())
        if self.compact:
            return (view.stamp, True, alerts)
        now = self.clock()
        ticks = tuple(int(now - venue.since) for venue in view.venues if venue.since is not None)
        return (view.stamp, False, alerts, ticks)

    def _badge(self, view: PortfolioView) -> Badge:
        stale = [inert(venue.venue) for venue in view.venues if not venue.current]
        if stale:
            return Badge("STALE " + " ".join(stale), "stream--badge-stale")
        if view.stamp == 0:
            return Badge("WAITING", "stream--badge-pending")
        return Badge("LIVE", "stream--badge-live")

    # --- full form --------------------------------------------------------------------------------

    def build_full(self, width: int, height: int) -> list[Strip]:
        view = self.portfolio.view
        lines = [self.header(self.heading, self._badge(view), width)]
        lines += [self._alert_line(transition, at, width) for transition, at in self._alerts.values()]
        if not view.venues:
            text = "waiting for account data…" if self.portfolio.sources else "no account configured"
            return lines + [self.notice(text, width)]
        # Lines per venue: state, bar, money, distance; fewer when the height is short.
        room = height - len(lines)
        detail = next((d for d in (4, 3, 2) if d * len(view.venues) <= room), 1)
        name_cells = max(len(inert(venue.venue)) for venue in view.venues)
        now = self.clock()
        for venue in view.venues:
            lines += self._venue_lines(view, venue, name_cells, now, width, detail)
        return lines

    def _alert_line(self, transition: Transition, at: float, width: int) -> Strip:
        component = "liq--alert-liquidating" if transition.state is LiquidationState.LIQUIDATING else "liq--alert-warning"
        venue, previous, state = inert(transition.venue), _state_name(transition.previous), _state_name(transition.state)
        style = self.style(component)
        variants = [
            f" ⚠ {venue}: {previous} → {state} at {clock_time(at)} UTC ",
            f" ⚠ {venue}: {previous} → {state} {clock_time(at)} ",
            f" ⚠ {venue} {state_label(transition.state)} {clock_time(at)} ",
            f" ⚠ {venue} {state_label(transition.state)} ",
        ]
        return self.line(first_fitting([[(text, style)] for text in variants], width), width)

    def _venue_lines(
        self, view: PortfolioView, venue: LiquidationView, name_cells: int, now: float, width: int, detail: int
    ) -> list[Strip]:
        """Up to four lines, each the longest variant that fits: the state and how long it has
        held, the margin bar, equity/maintenance/shortfall, the distance to liquidation."""
        dimmed = not venue.current
        plain = self.plain(dimmed)
        muted = self.style("stream--notice", dimmed)
        base = self.rich_style
        indent: Piece = ("   ", base)
        margin_ratio = venue.margin_ratio
        shortfall = venue.shortfall
        short_style = self.style("liq--shortfall", dimmed) if shortfall else plain

        name_style = self.style("liq--venue", dimmed)
        state_style = self.style(_STATE_COMPONENT[venue.state], dimmed)
        core: list[Piece] = [
            (" " + inert(venue.venue).ljust(name_cells), name_style),
            ("  ", base),
            (f" {state_label(venue.state)} ", state_style),
        ]
        tight: list[Piece] = [(" " + inert(venue.venue), name_style), (" ", base), (state_label(venue.state), state_style)]
        stale: list[Piece] = [] if venue.current else [(" ", base), (" STALE ", self.style("stream--badge-stale"))]
        held = duration(None if venue.since is None else now - venue.since)
        timing: list[Piece] = [] if venue.state is None else [(f"  for {held}", plain)]
        short_timing: list[Piece] = [] if venue.state is None else [(f" {held}", plain)]
        source = [("  stated by venue" if venue.stated else "  from margin", muted)] if venue.state else []
        auction: list[Piece] = [(f"  auction {inert(venue.auction_id)}", plain)] if venue.auction_id else []
        if detail == 1 and margin_ratio is not None:
            short_timing = [*short_timing, (f" {ratio(margin_ratio)}", plain)]
        first = first_fitting(
            [
                [*core, *timing, *source, *auction, *stale],
                [*core, *stale, *short_timing, *auction],
                [*core, *stale, *short_timing],
                [*core, *stale],
                [*tight, *stale],
            ],
            width,
        )
        lines = [first]
        if detail >= 2:
            lines.append(self._bar_line(venue, width, dimmed, with_shortfall=detail < 4))
        if detail >= 4:
            lines.append(
                first_fitting(
                    [
                        [indent, ("equity ", muted), (money(venue.equity), plain),
                         ("   maint ", muted), (money(venue.maintenance), plain),
                         ("   shortfall ", muted), (money(shortfall), short_style)],
                        [indent, ("eq ", muted), (money(venue.equity), plain),
                         ("  mm ", muted), (money(venue.maintenance), plain),
                         ("  short ", muted), (money(shortfall), short_style)],
                        [indent, ("eq ", muted), (whole_money(venue.equity), plain),
                         (" mm ", muted), (whole_money(venue.maintenance), plain),
                         (" sf ", muted), (whole_money(shortfall), short_style)],
                    ],
                    width,
                )
            )  # fmt: skip
        if detail >= 3:
            lines.append(self._distance_line(view, venue, width, dimmed))
        return [self.line(pieces, width) for pieces in lines]

    def _bar_line(self, venue: LiquidationView, width: int, dimmed: bool, with_shortfall: bool) -> list[Piece]:
        plain = self.plain(dimmed)
        muted = self.style("stream--notice", dimmed)
        indent: Piece = ("   ", self.rich_style)
        margin_ratio = venue.margin_ratio
        if venue.equity is None:
            return [indent, ("no margin data", muted)]
        if margin_ratio is None:
            return [indent, ("no maintenance requirement", muted)]
        extra: list[Piece] = []
        if with_shortfall and venue.shortfall:
            extra = [("  short ", muted), (whole_money(venue.shortfall), self.style("liq--shortfall", dimmed))]
        extra_cells = sum(cell_len(text) for text, _ in extra)
        suffix = f"  {ratio(margin_ratio)} of maint (warn <{WARNING_RATIO}×)"
        if width - 4 - len(suffix) - extra_cells < 20:
            suffix = f" {ratio(margin_ratio)}"
        cells = max(BAR_MIN_CELLS, min(BAR_MAX_CELLS, width - 4 - len(suffix) - extra_cells))
        return [indent, *self._bar(margin_ratio, venue.state, cells, dimmed), (suffix, plain), *extra]

    def _distance_line(self, view: PortfolioView, venue: LiquidationView, width: int, dimmed: bool) -> list[Piece]:
        plain = self.plain(dimmed)
        muted = self.style("stream--notice", dimmed)
        indent: Piece = ("   ", self.rich_style)
        if venue.distance_pct is None:
            move: list[Piece] = [("distance to liquidation —", muted)]
            short_move: list[Piece] = [("liq distance —", muted)]
        elif venue.distance_pct <= 0:  # no move left: at or below the requirement already
            below = venue.equity is not None and venue.maintenance is not None and venue.equity < venue.maintenance
            text = "below maintenance" if below else "at maintenance"
            move = short_move = [(text, self.style("liq--shortfall", dimmed))]
        else:
            sign = _move_sign(view, venue.venue)
            # A fall past 100 % is out of reach (a price stops at 0); a rise is not.
            far = venue.distance_pct >= 100 and sign != "+"
            amount = "100%+" if far else f"{venue.distance_pct:.1f}%"
            text = f"≈ {sign}{amount}"
            move = [(text + " move", plain), (" to liquidation", muted)]
            short_move = [(text, plain), (" to liq", muted)]
        nearest: list[Piece] = []
        short_nearest: list[Piece] = []
        if venue.nearest_liquidation is not None:
            market, liq_price, away = venue.nearest_liquidation
            side = _liquidation_side(view, venue.venue, market)
            where = f"{_liquidation_price(liq_price)} ({side}{away:.1f}%)"
            nearest = [("   nearest liq ", muted), (f"{inert(market)} {where}", plain)]
            short_nearest = [(" · ", muted), (f"{short_market(inert(market))} {where}", plain)]
        return first_fitting(
            [[indent, *move, *nearest], [indent, *short_move, *short_nearest], [indent, *short_move]], width
        )

    def _bar(self, margin_ratio: float, state: LiquidationState | None, cells: int, dimmed: bool) -> list[Piece]:
        """Equity/maintenance on a 0..:data:`BAR_SCALE` scale: filled up to the ratio in the state's
        colour; the empty part shows the zones (below maintenance, the warning band); ┃ marks the
        maintenance requirement and ╎ the end of the warning band."""
        per_cell = BAR_SCALE / cells
        filled = min(cells, max(0, round(margin_ratio / per_cell)))
        maintenance_at = min(cells - 1, round(1.0 / per_cell))
        warning_at = min(cells - 1, round(float(WARNING_RATIO) / per_cell))
        fill = self.style(f"liq--fill-{state.name.lower() if state else 'unknown'}", dimmed)
        mark = self.style("liq--mark", dimmed)
        pieces: list[Piece] = []
        for index in range(cells):
            if index == maintenance_at or index == warning_at:
                char = "┃" if index == maintenance_at else "╎"
                style: Style = mark + Style(bgcolor=fill.color) if index < filled and not dimmed else mark
            elif index < filled:
                char, style = "█", fill
            else:
                centre = (index + 0.5) * per_cell
                zone = "below" if centre < 1.0 else "warning" if centre < float(WARNING_RATIO) else "above"
                char = "·" if zone == "above" else "░"
                style = self.style(f"liq--band-{zone}", dimmed)
            if pieces and pieces[-1][1] == style:
                pieces[-1] = (pieces[-1][0] + char, style)
            else:
                pieces.append((char, style))
        return pieces

    # --- compact form -----------------------------------------------------------------------------

    def build_compact(self, width: int) -> Strip:
        view = self.portfolio.view
        pieces: list[Piece] = []
        if self._alerts:
            worst = min((t.state for t, _ in self._alerts.values()), key=lambda s: _RANK[s])
            component = "liq--alert-liquidating" if worst is LiquidationState.LIQUIDATING else "liq--alert-warning"
            pieces.append((" ⚠ ", self.style(component)))
        pieces.append((" Liq:" if not pieces else "Liq:", self.style("stream--title")))
        if not view.venues:
            text = " waiting for account data…" if self.portfolio.sources else " no account configured"
            return self.line([*pieces, (text, self.style("stream--notice"))], width)
        for index, venue in enumerate(_worst_first(view.venues)):
            dimmed = not venue.current
            if index:
                pieces.append((" ·", self.style("stream--notice")))
            pieces.append((f" {inert(venue.venue)} ", self.plain(dimmed)))
            pieces.append((state_label(venue.state), self.style(_STATE_COMPONENT[venue.state], dimmed)))
            if venue.margin_ratio is not None:
                pieces.append((f" {ratio(venue.margin_ratio)}", self.plain(dimmed)))
            if dimmed:
                pieces.append((" stale", self.style("stream--badge-stale")))
        return self.line(pieces, width)
