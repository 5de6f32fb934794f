"""The Textual application: composes the widgets and binds them to the subscription service.

The app owns the service (I/O) and the current selection (venue, market, interval); widgets only
read the streams they are bound to, each on its own timer. Switching market subscribes the new
streams before releasing the old ones, so the screen is never blank and no socket is reopened.

Venue text (market names, error messages, HTTP error bodies) reaches the screen inert and never as
markup: widgets draw it as segments, the header as a ``Text``, notifications with ``markup=False``
and the command palette through :mod:`app.commands`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.command import CommandPalette
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Static

from app.account import AccountData, ChainData, LiquidationData
from app.commands import DemoFaults, MarketPicker, PlainCommand
from app.config import INTERVALS, Settings
from app.model import (
    Channel,
    ConnectionHealth,
    LiquidationState,
    MarketInfo,
    StreamKey,
    StreamState,
    Venue,
    freeze_params,
)
from app.portfolio import AccountSource, Portfolio, Transition, underlying_of
from app.rest import RestError
from app.secrets import Credentials
from app.service import Subscription, SubscriptionService
from app.sim.runner import Fault
from app.state import BookData, MidsData, Stream, TickerData
from app.venues import build_adapter
from app.venues.base import DecodeError, Endpoint, Liveness
from themes import register_themes
from widgets import (
    CandleChart,
    FillsOrdersView,
    LiquidationStateView,
    OptionsChainView,
    OrderBookView,
    PortfolioGreeksView,
    StatusBar,
    TradeTapeView,
)
from widgets._format import at_most
from widgets._text import inert


log = logging.getLogger("perpterm.ui")

SWITCH_WAIT = 1.5  # seconds the old market stays on screen while the new one has no data yet
SWITCH_POLL = 0.05

# The market a venue opens on when nothing chose one (Polymarket, Hypercall: the first listed).
DEFAULT_MARKETS: dict[Venue, str] = {
    Venue.HYPERLIQUID: "BTC",
    Venue.ASTER: "BTCUSDT",
    Venue.PERPS_STUDIO: "perps:hyperliquid:BTC",
    Venue.PERPEX: "BTC-USD",
    Venue.RAILS: "BTC-USDT",
}

HEADER_PRICE_DECIMALS = 6  # a header price of a market whose tick is unknown: at most this many places
FUNDING_DECIMALS = 8  # 0.00001501 (1.5 bp): finer than any venue's funding step

ACCOUNT_STREAMS = (Channel.POSITIONS, Channel.LIQUIDATION, Channel.FILLS, Channel.ORDERS)
CLOSE_LIMIT = 2.0  # seconds the exit waits for the connections to close
PORTFOLIO_REFRESH = 0.25  # seconds between portfolio recomputations (cheap when nothing moved)
COMPACT_BELOW = (110, 36)  # terminal width, height under which the account panels take one line each


@dataclass(slots=True)
class Selection:
    venue: Venue
    market: str
    interval: str


class HelpScreen(ModalScreen[None]):
    """Every binding of the main screen, generated from the bindings themselves."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, bindings: list[Binding], venues: list[Venue]) -> None:
        super().__init__()
        self._listed = [binding for binding in bindings if not binding.action.startswith("jump_venue")]
        self._venues = venues

    def compose(self) -> ComposeResult:
        text = Text("perpterm keys\n\n", style="bold")
        for binding in self._listed:
            keys = ", ".join(_key_label(key) for key in binding.key.split(","))
            text.append(f"  {keys:<14}", style="bold")
            text.append(f"{binding.description}\n")
        if len(self._venues) > 1:
            text.append(f"  {'1-' + str(len(self._venues)):<14}", style="bold")
            text.append("Venue: " + ", ".join(f"{i} {v}" for i, v in enumerate(self._venues, 1)) + "\n")
        text.append("\n  Esc or ? closes this help.", style="dim")
        yield Static(text, id="help-body")


def _key_label(key: str) -> str:
    names = {
        "right_square_bracket": "]",
        "left_square_bracket": "[",
        "full_stop": ".",
        "comma": ",",
        "slash": "/",
        "question_mark": "?",
        "V": "V (shift+v)",
    }
    return names.get(key, key)


class OptionsChainScreen(ModalScreen[str | None]):
    """An options chain over the dashboard; Enter picks an option as the market shown.

    The screen subscribes the chain of one underlying at a time (``u`` cycles them) and releases
    it when it closes; it dismisses with the chosen instrument, or ``None``."""

    BINDINGS = [
        Binding("escape,o", "dismiss_none", "Close"),
        Binding("u", "next_underlying", "Next underlying"),
    ]

    def __init__(
        self,
        service: SubscriptionService,
        venue: Venue,
        underlyings: list[str],
        underlying: str,
        price: Callable[[str], float | None],
    ) -> None:
        """``price``: an underlying's current price (the chain marks the strike nearest it)."""
        super().__init__()
        self._service = service
        self._price = price
        self._venue = venue
        self._underlyings = underlyings or [underlying]
        self._underlying = underlying
        self._handle: Subscription | None = None

    def compose(self) -> ComposeResult:
        yield OptionsChainView(underlying_price=lambda: self._price(self._underlying), id="chain")

    def on_mount(self) -> None:
        self._bind()
        self.query_one(OptionsChainView).focus()

    def _bind(self) -> None:
        old = self._handle
        self._handle = self._service.subscribe(self._venue, Channel.OPTIONS_CHAIN, self._underlying)
        title = f"{self._underlying} options · {self._venue}   u: next underlying  enter: show  esc: close"
        self.query_one(OptionsChainView).bind(self._handle.stream, title=title)
        if old is not None:
            old.close()

    def action_next_underlying(self) -> None:
        index = self._underlyings.index(self._underlying) if self._underlying in self._underlyings else -1
        self._underlying = self._underlyings[(index + 1) % len(self._underlyings)]
        self._bind()

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def on_options_chain_view_chosen(self, message: OptionsChainView.Chosen) -> None:
        self.dismiss(message.symbol)

    def on_unmount(self) -> None:
        if self._handle is not None:
            self._handle.close()


class PerptermApp(App[None]):
    CSS_PATH = "perpterm.tcss"
    TITLE = "perpterm"
    COMMANDS = App.COMMANDS | {DemoFaults}
    BINDINGS = [
        Binding("n,right_square_bracket", "next_market", "Next market"),
        Binding("p,left_square_bracket", "previous_market", "Previous market"),
        Binding("v", "next_venue", "Next venue"),
        Binding("V", "previous_venue", "Previous venue"),
        *(Binding(str(n), f"jump_venue({n - 1})", f"Venue {n}", show=False) for n in range(1, 8)),
        Binding("slash,m", "pick_market", "Find market (every venue)"),
        Binding("o", "options_chain", "Options chain"),
        Binding("g", "next_section", "Next vertical (perps, spot, RWAs, predictions)"),
        Binding("x", "switch_provider", "Same market, other provider"),
        Binding("full_stop", "next_interval", "Longer candles"),
        Binding("comma", "previous_interval", "Shorter candles"),
        Binding("r", "retry", "Reconnect now"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        settings: Settings,
        endpoints: dict[Venue, Endpoint],
        *,
        demo: bool = False,
        liveness: dict[Venue, Liveness] | None = None,
        faults: Callable[[Fault], None] | None = None,
        service: SubscriptionService | None = None,
        replay: bool = False,
        wallets: dict[Venue, str] | None = None,
        credentials: dict[Venue, Credentials] | None = None,
    ) -> None:
        """``faults`` sends a fault to the demo's emulators (the palette's demo commands).
        ``service``: use this one instead of building one on ``endpoints`` (a recording one, a
        replay's); ``replay``: the header says REPLAY. ``wallets``: the account shown per venue
        (its positions, Greeks, liquidation state, fills and orders); ``credentials``: per venue that
        needs them."""
        super().__init__()
        self.wallets = wallets or {}
        self._credentials = credentials or {}
        self.portfolio = Portfolio(prices=self._underlying_prices)
        self._account_handles: list[Subscription] = []
        self._price_streams: list[Stream] = []  # underlyings' prices for the portfolio's $ figures
        self.settings = settings
        self.endpoints = endpoints
        self.demo = demo
        self._liveness = liveness
        self._faults = faults
        self._prepared = service
        self.replay = replay
        self.venues = [venue for venue in Venue if venue in endpoints]
        venue = settings.venue if settings.venue in endpoints else (self.venues or [settings.venue])[0]
        market = settings.market if venue is settings.venue else DEFAULT_MARKETS.get(venue, "")
        self.selection = Selection(venue, market, settings.interval)
        self.markets: dict[Venue, list[MarketInfo]] = {}
        self.service: SubscriptionService | None = None
        self._handles: dict[Channel, Subscription] = {}  # what the widgets show
        self._incoming: dict[Channel, Subscription] = {}  # the new selection, until it has data
        self._incoming_since = 0.0
        self._outcomes: list[tuple[MarketInfo, Subscription]] = []  # a prediction's other tokens
        self._option_context: list[Subscription] = []  # an option's chain and index, for the header
        self._chosen: dict[Venue, str] = {venue: market}  # last market shown per venue

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="main"):
            yield OrderBookView(id="book")
            with Vertical(id="right"):
                yield CandleChart(id="chart")
                yield OrderBookView(id="outcome")  # a prediction's other outcome, beside the first
                yield TradeTapeView(id="tape")
        with Horizontal(id="account"):
            yield PortfolioGreeksView(self.portfolio, id="greeks")
            yield LiquidationStateView(self.portfolio, id="liquidation")
            yield FillsOrdersView(id="fills")
        yield StatusBar(health=self._health, hint="? help  / markets  q quit", id="status")

    def _health(self) -> list[ConnectionHealth]:
        return [] if self.service is None else self.service.health()

    def on_load(self) -> None:
        """SIGTERM and SIGHUP end the app like ``q``.

        Textual's normal shutdown then restores the terminal (no alternate screen or mouse tracking
        left on) and the caller stops the demo's emulators; the default action would kill the
        process with the terminal still in application mode. Installed before the driver starts;
        the event loop removes them when it closes.
        """
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(signum, self.exit)

    async def on_mount(self) -> None:
        register_themes(self)
        self.theme = self.settings.theme
        self.service = self._prepared if self._prepared is not None else SubscriptionService(
            [
                build_adapter(venue, endpoint, self.wallets.get(venue), self._credentials.get(venue))
                for venue, endpoint in self.endpoints.items()
            ],
            liveness=self._liveness,
        )
        self._bind_selection()
        self._bind_accounts()
        self._every(PORTFOLIO_REFRESH, self._refresh_portfolio)
        for venue in self.venues:
            self._load_markets(venue)
        self._every(SWITCH_POLL, self._complete_switch)
        self._every(0.5, self._update_header)
        # Textual allocates many short-lived objects; gen-2 collections set the latency tail.
        gc.collect()
        gc.freeze()

    async def on_unmount(self) -> None:
        """Close every connection, but never hold the exit up for it: a user who quits (or whose
        terminal hung up) is not kept waiting on a venue."""
        if self.service is not None:
            try:
                await asyncio.wait_for(self.service.close(), CLOSE_LIMIT)
            except TimeoutError:
                log.warning("connections still closing after %.0f s; exiting anyway", CLOSE_LIMIT)

    # --- selection ----------------------------------------------------------------------------

    def _bind_selection(self) -> None:
        """Subscribe the selection's streams. Widgets keep showing what they show until the new
        streams have something to show (or :data:`SWITCH_WAIT` passed): the screen never blanks."""
        assert self.service is not None
        sel = self.selection
        if not sel.market:
            return  # the venue's market list will choose one
        adapter = self.service.adapters.get(sel.venue)
        offered = adapter.channels if adapter is not None else frozenset()
        wanted = {
            Channel.BOOK: None,
            Channel.TRADES: None,
            Channel.CANDLES: {"interval": sel.interval},
            Channel.TICKER: None,
        }
        for handle in self._incoming.values():
            handle.close()  # a selection that never got shown
        self._incoming = {}
        for channel, params in wanted.items():
            if channel not in offered or adapter is None:
                continue
            # An option's chart is its underlying's: the venue has no candles of the option.
            market = adapter.chart_market(sel.market) if channel is Channel.CANDLES else sel.market
            try:
                adapter.check(StreamKey(sel.venue, channel, market, freeze_params(params)))
            except ValueError as exc:
                if channel is Channel.BOOK:  # the market itself is wrong; a panel it lacks is not news
                    self.tell(str(exc), "error")
                continue
            try:
                self._incoming[channel] = self.service.subscribe(sel.venue, channel, market, params)
            except (KeyError, ValueError) as exc:
                self.tell(str(exc), "error")
        self._incoming_since = time.monotonic()
        for channel in [c for c in self._handles if c not in self._incoming]:
            self._handles.pop(channel).close()  # the new venue has no such channel
        self._bind_outcomes()
        self._bind_option_context()
        self._complete_switch()
        self._bind_widgets()
        self._update_header()

    def _complete_switch(self) -> None:
        """Show each incoming stream once it has data, a state worth showing, or waited enough."""
        if not self._incoming:
            return
        waited = time.monotonic() - self._incoming_since >= SWITCH_WAIT
        for channel, handle in list(self._incoming.items()):
            if waited or handle.stream.state is not StreamState.PENDING or channel not in self._handles:
                del self._incoming[channel]
                old = self._handles.get(channel)
                self._handles[channel] = handle
                self._bind_widget(channel)
                if old is not None:
                    old.close()

    def _bind_widgets(self) -> None:
        for channel in (Channel.BOOK, Channel.TRADES, Channel.CANDLES):
            self._bind_widget(channel)

    def _bind_widget(self, channel: Channel) -> None:
        widget = {Channel.BOOK: OrderBookView, Channel.TRADES: TradeTapeView, Channel.CANDLES: CandleChart}.get(channel)
        if widget is None:
            return
        handle = self._handles.get(channel)
        venue = handle.key.venue if handle is not None else self.selection.venue
        market = handle.key.market if handle is not None else self.selection.market
        title = f"{self._display_name(venue, market)} · {venue}"
        info = self._info(venue, market)
        if channel is Channel.CANDLES and handle is not None and market != self.selection.market:
            title = f"{market} · underlying of {self._display_name()} · {venue}"  # an option's chart
        absent = f"{venue} has no {channel.value}" if handle is None and self.selection.market else "no market"
        view = self.query_one(f"#{_PANEL_IDS[channel]}", widget)
        if isinstance(view, OrderBookView):
            view.probability = info is not None and info.kind == "prediction"
        view.bind(None if handle is None else handle.stream, title=title, absent=absent)
        if channel in (Channel.CANDLES, Channel.TRADES):  # a panel the market lacks gives up its room
            view.display = handle is not None or channel in self._incoming

    # --- accounts -----------------------------------------------------------------------------

    def _every(self, seconds: float, callback: Callable[[], None]) -> None:
        """An interval timer for a callback that reads the main screen's widgets: while the app
        closes, those go before the app's timers stop, and a tick then has nothing to update."""

        def tick() -> None:
            try:
                callback()
            except NoMatches:
                if self.screen_stack and self.screen_stack[0].query("#header"):
                    raise  # the main screen is whole: a widget is missing for real
        self.set_interval(seconds, tick)

    def _bind_accounts(self) -> None:
        """Subscribe the account streams of every venue with a wallet, for the app's lifetime,
        and the venues' prices the portfolio's dollar figures need."""
        assert self.service is not None
        fills = self.query_one(FillsOrdersView)
        for venue in self.venues:
            adapter = self.service.adapters.get(venue)
            if adapter is None or not adapter.has_account:
                continue
            streams: dict[Channel, Stream] = {}
            for channel in (*ACCOUNT_STREAMS, Channel.ALL_MIDS):
                if channel in adapter.channels:
                    handle = self.service.subscribe(venue, channel, "")
                    self._account_handles.append(handle)
                    streams[channel] = handle.stream
            if Channel.ALL_MIDS in streams:
                self._price_streams.append(streams.pop(Channel.ALL_MIDS))
            account, liquidation = streams.get(Channel.POSITIONS), streams.get(Channel.LIQUIDATION)
            if account is not None or liquidation is not None:  # Rails has orders and fills only
                self.portfolio.sources.append(
                    AccountSource(
                        venue,
                        account=account.data if account is not None and isinstance(account.data, AccountData) else None,
                        liquidation=(
                            liquidation.data
                            if liquidation is not None and isinstance(liquidation.data, LiquidationData)
                            else None
                        ),
                        live=partial(_all_live, list(streams.values())),
                    )
                )
            if Channel.FILLS in streams:
                fills.bind_fills(venue, streams[Channel.FILLS])
            if Channel.ORDERS in streams:
                fills.bind_orders(venue, streams[Channel.ORDERS])
        self.query_one("#account").display = bool(self._account_handles)

    def _underlying_prices(self) -> dict[str, float]:
        """Underlying -> price from the venues' price maps; a later venue's (Hypercall's index,
        what its Greeks use) wins over an earlier one's mid."""
        prices: dict[str, float] = {}
        for stream in self._price_streams:
            if isinstance(stream.data, MidsData):
                for name, text in stream.data.mids.items():
                    if not name.startswith("@"):  # Hyperliquid spot pairs are no underlying
                        prices[name] = float(text)
        return prices

    def _refresh_portfolio(self) -> None:
        for transition in self.portfolio.refresh():
            if transition.alarming:
                self._alert(transition)

    def _alert(self, transition: Transition) -> None:
        """A venue moved toward liquidation: ring, tell, and mark the liquidation panel."""
        self.bell()
        severity: SeverityLevel = "error" if transition.state is LiquidationState.LIQUIDATING else "warning"
        previous = transition.previous.value if transition.previous is not None else "?"
        self.notify(
            f"{transition.venue}: {previous} → {transition.state.value}",
            title="Liquidation state",
            severity=severity,
            timeout=15,
            markup=False,
        )
        self.query_one(LiquidationStateView).alert(transition)

    def on_resize(self, event: events.Resize) -> None:
        width, height = event.size
        compact = width < COMPACT_BELOW[0] or height < COMPACT_BELOW[1]
        self.screen.set_class(compact, "-compact")
        self.query_one(PortfolioGreeksView).compact = compact
        self.query_one(LiquidationStateView).compact = compact

    def action_options_chain(self) -> None:
        """Show the options chain of the selected option's underlying (or the first listed)."""
        if self.service is None:
            return
        venue = next(
            (v for v in (self.selection.venue, *self.venues) if Channel.OPTIONS_CHAIN in self._channels(v)), None
        )
        if venue is None:
            self.tell("no venue here lists options")
            return
        underlyings = sorted({underlying_of(m.market) for m in self.markets.get(venue, ()) if m.kind == "option"})
        current = underlying_of(self.selection.market) if venue is self.selection.venue else ""
        underlying = current if current in underlyings else (underlyings or ["BTC"])[0]

        def chosen(symbol: str | None) -> None:
            if symbol:
                self._pick(venue, symbol)

        price = lambda name: self._underlying_prices().get(name)  # noqa: E731
        self.push_screen(OptionsChainScreen(self.service, venue, underlyings, underlying, price), chosen)

    def _channels(self, venue: Venue) -> frozenset[Channel]:
        adapter = self.service.adapters.get(venue) if self.service is not None else None
        return adapter.channels if adapter is not None else frozenset()

    def _bind_outcomes(self) -> None:
        """For a prediction market, follow the books of its other outcomes for the header."""
        assert self.service is not None
        old, self._outcomes = self._outcomes, []
        info = self._info(self.selection.venue, self.selection.market)
        if info is not None and info.event is not None:
            for other in self.markets.get(info.venue, ()):
                if other.event == info.event and other.market != info.market:
                    handle = self.service.subscribe(other.venue, Channel.BOOK, other.market)
                    self._outcomes.append((other, handle))
        outcome_view = self.query_one("#outcome", OrderBookView)
        outcome_view.display = bool(self._outcomes)
        if self._outcomes:  # the other outcome's book, read as chances like the first
            other, handle = self._outcomes[0]
            outcome_view.probability = True
            outcome_view.bind(handle.stream, title=f"{other.display} · {other.venue}")
        for _, handle in old:
            handle.close()

    def _bind_option_context(self) -> None:
        """For an option, follow its underlying's chain (the option's mark, IV and delta) and the
        venue's index prices, for the header: the venue has no ticker of an option."""
        assert self.service is not None
        old, self._option_context = self._option_context, []
        info = self._info(self.selection.venue, self.selection.market)
        channels = self._channels(self.selection.venue)
        if info is not None and info.kind == "option" and Channel.OPTIONS_CHAIN in channels:
            underlying = underlying_of(info.market)
            self._option_context.append(self.service.subscribe(info.venue, Channel.OPTIONS_CHAIN, underlying))
            if Channel.ALL_MIDS in channels:
                self._option_context.append(self.service.subscribe(info.venue, Channel.ALL_MIDS, ""))
        for handle in old:
            handle.close()

    def _stream(self, channel: Channel) -> Stream | None:
        handle = self._handles.get(channel)
        return None if handle is None else handle.stream

    def select(self, market: str | None = None, interval: str | None = None, venue: Venue | None = None) -> None:
        if venue is not None:
            self.selection.venue = venue
            self.selection.market = self._chosen.get(venue) or DEFAULT_MARKETS.get(venue) or self._first_market(venue)
        if market is not None:
            self.selection.market = market
        if interval is not None:
            self.selection.interval = interval
        self._chosen[self.selection.venue] = self.selection.market
        self._bind_selection()

    def _first_market(self, venue: Venue) -> str:
        markets = self.markets.get(venue)
        return markets[0].market if markets else ""

    @work(group="markets")
    async def _load_markets(self, venue: Venue) -> None:
        assert self.service is not None
        try:
            markets = await self.service.markets(venue)
        except Exception as exc:  # a venue's bad list (or our bug) costs the list, never the app
            if not isinstance(exc, RestError | DecodeError):
                log.exception("%s market list", venue)
            self.tell(f"{venue} market list unavailable: {exc}", "warning")
            return
        self.markets[venue] = markets
        if venue is self.selection.venue:
            if not self.selection.market and markets:
                self.select(market=markets[0].market)
            else:
                self._bind_outcomes()
                self._bind_option_context()
                self._bind_widgets()  # titles now use the venue's display names

    def tell(self, text: str, severity: SeverityLevel = "information") -> None:
        """Notify with text that may come from a venue: inert, and not parsed as markup."""
        self.notify(inert(text), severity=severity, markup=False)

    def _market_names(self) -> list[str]:
        names = [m.market for m in self.markets.get(self.selection.venue, ())]
        return names or [self.selection.market]

    def _step_market(self, step: int) -> None:
        names = self._market_names()
        current = self.selection.market
        index = names.index(current) if current in names else -step
        self.select(market=names[(index + step) % len(names)])

    def action_next_market(self) -> None:
        self._step_market(1)

    def action_previous_market(self) -> None:
        self._step_market(-1)

    def _step_venue(self, step: int) -> None:
        if self.selection.venue in self.venues:
            index = self.venues.index(self.selection.venue)
            self.select(venue=self.venues[(index + step) % len(self.venues)])

    def action_next_venue(self) -> None:
        self._step_venue(1)

    def action_previous_venue(self) -> None:
        self._step_venue(-1)

    def action_jump_venue(self, index: int) -> None:
        if index < len(self.venues) and self.venues[index] is not self.selection.venue:
            self.select(venue=self.venues[index])

    def action_next_section(self) -> None:
        """The first market of the venue's next section (perps.studio's verticals)."""
        markets = self.markets.get(self.selection.venue, [])
        sections = list(dict.fromkeys(m.section for m in markets if m.section))
        if len(sections) < 2:
            self.tell(f"{self.selection.venue} has one section")
            return
        current = self._info(self.selection.venue, self.selection.market)
        index = sections.index(current.section) if current is not None and current.section in sections else -1
        section = sections[(index + 1) % len(sections)]
        self.select(market=next(m.market for m in markets if m.section == section))

    def action_switch_provider(self) -> None:
        """The same market from the next provider of an aggregator (Hyperliquid's BTC -> Aster's)."""
        current = self._info(self.selection.venue, self.selection.market)
        if current is None or current.provider is None:
            self.tell("this market has no other provider")
            return
        symbol = current.market.split(":", 2)[-1]
        peers = [
            m for m in self.markets.get(current.venue, [])
            if m.section == current.section and m.market.split(":", 2)[-1] == symbol
        ]  # fmt: skip
        if len(peers) < 2:
            self.tell(f"{current.display} is listed by {current.provider} only")
            return
        self.select(market=peers[(peers.index(current) + 1) % len(peers)].market)

    def _step_interval(self, step: int) -> None:
        index = INTERVALS.index(self.selection.interval) if self.selection.interval in INTERVALS else 0
        self.select(interval=INTERVALS[(index + step) % len(INTERVALS)])

    def action_next_interval(self) -> None:
        self._step_interval(1)

    def action_previous_interval(self) -> None:
        self._step_interval(-1)

    def market_commands(self) -> list[PlainCommand]:
        """The market picker's entries: every market of every venue (the selected one until the
        lists are loaded)."""
        markets = [m for venue in self.venues for m in self.markets.get(venue, ())] or [
            MarketInfo(self.selection.venue, self.selection.market, self.selection.market, "perp")
        ]
        return [
            PlainCommand(
                f"{m.display}  {m.venue}",
                partial(self._pick, m.venue, m.market),
                f"{m.kind} {m.market}",
            )
            for m in markets
        ]

    def _pick(self, venue: Venue, market: str) -> None:
        self.selection.venue = venue
        self.select(market=market)

    def action_pick_market(self) -> None:
        self.push_screen(CommandPalette(providers=[MarketPicker], placeholder="Find a market…"))

    @property
    def can_inject_faults(self) -> bool:
        return self._faults is not None

    def inject_fault(self, fault: Fault) -> None:
        """Make the demo's emulators misbehave, to watch the supervisor recover."""
        assert self._faults is not None
        try:
            self._faults(fault)
        except OSError as exc:
            self.tell(f"demo fault not sent: {exc}", "error")
            return
        seconds = f" for {fault.seconds:g} s" if fault.kind == "stall" else ""
        self.tell(f"demo: emulators told to {fault.kind}{seconds}")

    def action_retry(self) -> None:
        if self.service is not None:
            self.service.retry()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(list(self.BINDINGS), self.venues))

    # --- header -------------------------------------------------------------------------------

    def _info(self, venue: Venue, market: str) -> MarketInfo | None:
        return next((m for m in self.markets.get(venue, ()) if m.market == market), None)

    def _display_name(self, venue: Venue | None = None, market: str | None = None) -> str:
        venue = venue or self.selection.venue
        market = self.selection.market if market is None else market
        info = self._info(venue, market)
        return info.display if info is not None else market

    def _update_header(self) -> None:
        header = Text()
        header.append(" perpterm ", style="bold reverse")
        if self.demo:
            header.append(" DEMO ", style="bold black on yellow")
        if self.replay:
            header.append(" REPLAY ", style="bold black on cyan")
        header.append(f"  {self.selection.venue}  ", style="dim")
        header.append(inert(self._display_name()), style="bold")
        adapter = self.service.adapters.get(self.selection.venue) if self.service is not None else None
        if Channel.CANDLES in self._handles or Channel.CANDLES in self._incoming:
            header.append(f"  {self.selection.interval}", style="dim")
        self._append_outcomes(header)
        self._append_option(header)
        ticker_stream = self._stream(Channel.TICKER)
        if ticker_stream is not None and isinstance(ticker_stream.data, TickerData):
            ticker = ticker_stream.data.ticker
            if ticker is not None:
                live = ticker_stream.state is StreamState.LIVE
                style = "" if live else "dim"
                info = self._info(self.selection.venue, self.selection.market)
                places = HEADER_PRICE_DECIMALS if info is None or info.price_decimals is None else info.price_decimals + 1
                if ticker.mark:
                    header.append(f"   mark {inert(at_most(ticker.mark, places))}", style=style)
                elif ticker.last:
                    header.append(f"   last {inert(at_most(ticker.last, places))}", style=style)
                if ticker.index:
                    header.append(f"  index {inert(at_most(ticker.index, places))}", style=style)
                if ticker.funding_rate and adapter is not None:
                    rate = at_most(ticker.funding_rate, FUNDING_DECIMALS)
                    header.append(f"  funding {inert(rate)}/{adapter.funding_period_of(ticker.market)}", style=style)
                change = _change_24h(ticker.mark or ticker.last, ticker.prev_day_price)
                if change is not None:
                    header.append(f"  24h {change:+.2f}%", style="green" if change >= 0 else "red")
        self.query_one("#header", Static).update(header)

    def _append_option(self, header: Text) -> None:
        """An option's mark, IV and delta (per contract, from the chain) and its underlying's index."""
        market = self.selection.market
        for handle in self._option_context:
            data, style = handle.stream.data, "" if handle.stream.state is StreamState.LIVE else "dim"
            if isinstance(data, ChainData):
                leg = data.leg(market)
                if leg is not None and leg.mark is not None:
                    header.append(f"   mark {leg.mark:,.2f}", style=style)
                    if leg.mark_iv is not None:
                        header.append(f"  IV {leg.mark_iv * 100:.1f}%", style=style)
                    if leg.delta is not None:
                        header.append(f"  Δ {leg.delta:+.3f}", style=style)
            elif isinstance(data, MidsData) and (index := data.mids.get(underlying_of(market))) is not None:
                header.append(f"  index {inert(index)}", style=style)

    def _append_outcomes(self, header: Text) -> None:
        """A prediction market as its outcomes: each outcome's price (the mid of its book) read
        as a probability."""
        info = self._info(self.selection.venue, self.selection.market)
        if info is None or info.event is None:
            return
        shown = [(info, self._stream(Channel.BOOK))] + [(other, h.stream) for other, h in self._outcomes]
        for outcome, stream in shown:
            mid = stream.data.book.mid if stream is not None and isinstance(stream.data, BookData) else None
            live = stream is not None and stream.state is StreamState.LIVE
            price = "—" if mid is None else f"{mid * 100:.1f}%"
            header.append(f"   {inert(outcome.outcome or outcome.market)} ", style="bold" if outcome is info else "")
            header.append(price, style="" if live else "dim")


_PANEL_IDS = {Channel.BOOK: "book", Channel.TRADES: "tape", Channel.CANDLES: "chart"}


def _all_live(streams: list[Stream]) -> bool:
    return all(stream.state is StreamState.LIVE for stream in streams)


def _change_24h(mark: str | None, previous: str | None) -> float | None:
    try:
        now, before = float(mark or ""), float(previous or "")
    except ValueError:
        return None
    return None if before == 0 else (now / before - 1) * 100
