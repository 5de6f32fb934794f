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
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.command import CommandPalette
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Static

from app.commands import DemoFaults, MarketPicker, PlainCommand
from app.config import INTERVALS, Settings
from app.model import Channel, ConnectionHealth, MarketInfo, StreamState, Venue
from app.rest import RestError
from app.service import Subscription, SubscriptionService
from app.sim.runner import Fault
from app.state import Stream, TickerData
from app.venues import build_adapter
from app.venues.base import Endpoint, Liveness
from themes import register_themes
from widgets import CandleChart, OrderBookView, StatusBar, TradeTapeView
from widgets._text import inert


@dataclass(slots=True)
class Selection:
    venue: Venue
    market: str
    interval: str


class HelpScreen(ModalScreen[None]):
    """Every binding of the main screen, generated from the bindings themselves."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def __init__(self, bindings: list[Binding]) -> None:
        super().__init__()
        self._listed = bindings

    def compose(self) -> ComposeResult:
        text = Text("perpterm keys\n\n", style="bold")
        for binding in self._listed:
            keys = ", ".join(_key_label(key) for key in binding.key.split(","))
            text.append(f"  {keys:<14}", style="bold")
            text.append(f"{binding.description}\n")
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
    }
    return names.get(key, key)


class PerptermApp(App[None]):
    CSS_PATH = "perpterm.tcss"
    TITLE = "perpterm"
    COMMANDS = App.COMMANDS | {DemoFaults}
    BINDINGS = [
        Binding("n,right_square_bracket", "next_market", "Next market"),
        Binding("p,left_square_bracket", "previous_market", "Previous market"),
        Binding("slash,m", "pick_market", "Find market"),
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
    ) -> None:
        """``faults`` sends a fault to the demo's emulators (the palette's demo commands)."""
        super().__init__()
        self.settings = settings
        self.endpoints = endpoints
        self.demo = demo
        self._liveness = liveness
        self._faults = faults
        self.selection = Selection(settings.venue, settings.market, settings.interval)
        self.markets: list[MarketInfo] = []
        self.service: SubscriptionService | None = None
        self._handles: dict[Channel, Subscription] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with Horizontal(id="main"):
            yield OrderBookView(id="book")
            with Vertical(id="right"):
                yield CandleChart(id="chart")
                yield TradeTapeView(id="tape")
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
        self.service = SubscriptionService(
            [build_adapter(venue, endpoint) for venue, endpoint in self.endpoints.items()],
            liveness=self._liveness,
        )
        self._bind_selection()
        self._load_markets()
        self.set_interval(0.5, self._update_header)
        # Textual allocates many short-lived objects; gen-2 collections set the latency tail.
        gc.collect()
        gc.freeze()

    async def on_unmount(self) -> None:
        if self.service is not None:
            await self.service.close()

    # --- selection ----------------------------------------------------------------------------

    def _bind_selection(self) -> None:
        """Subscribe the selected market's streams, rebind widgets, then release the old ones."""
        assert self.service is not None
        sel = self.selection
        wanted = {
            Channel.BOOK: (sel.market, None),
            Channel.TRADES: (sel.market, None),
            Channel.CANDLES: (sel.market, {"interval": sel.interval}),
            Channel.TICKER: (sel.market, None),
        }
        old = self._handles
        self._handles = {}
        for channel, (market, params) in wanted.items():
            try:
                self._handles[channel] = self.service.subscribe(sel.venue, channel, market, params)
            except (KeyError, ValueError) as exc:
                self.tell(str(exc), "error")
        self._bind_widgets()
        for handle in old.values():
            handle.close()
        self._update_header()

    def _bind_widgets(self) -> None:
        title = f"{self._display_name()} · {self.selection.venue}"
        self.query_one(OrderBookView).bind(self._stream(Channel.BOOK), title=title)
        self.query_one(TradeTapeView).bind(self._stream(Channel.TRADES), title=title)
        self.query_one(CandleChart).bind(self._stream(Channel.CANDLES), title=title)

    def _stream(self, channel: Channel) -> Stream | None:
        handle = self._handles.get(channel)
        return None if handle is None else handle.stream

    def select(self, market: str | None = None, interval: str | None = None) -> None:
        if market is not None:
            self.selection.market = market
        if interval is not None:
            self.selection.interval = interval
        self._bind_selection()

    @work(exclusive=True, group="markets")
    async def _load_markets(self) -> None:
        assert self.service is not None
        try:
            markets = await self.service.markets(self.selection.venue)
        except (RestError, KeyError, TypeError, ValueError) as exc:
            self.tell(f"market list unavailable: {exc}", "warning")
            return
        self.markets = markets
        self._bind_widgets()  # titles now use the venue's display names

    def tell(self, text: str, severity: SeverityLevel = "information") -> None:
        """Notify with text that may come from a venue: inert, and not parsed as markup."""
        self.notify(inert(text), severity=severity, markup=False)

    def _market_names(self) -> list[str]:
        names = [m.market for m in self.markets]
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

    def _step_interval(self, step: int) -> None:
        index = INTERVALS.index(self.selection.interval) if self.selection.interval in INTERVALS else 0
        self.select(interval=INTERVALS[(index + step) % len(INTERVALS)])

    def action_next_interval(self) -> None:
        self._step_interval(1)

    def action_previous_interval(self) -> None:
        self._step_interval(-1)

    def market_commands(self) -> list[PlainCommand]:
        """The market picker's entries: every market of the venue (the selected one until loaded)."""
        markets = self.markets or [
            MarketInfo(self.selection.venue, self.selection.market, self.selection.market, "perp")
        ]
        return [
            PlainCommand(f"{m.display}  {m.venue}", partial(self.select, market=m.market), f"{m.kind} {m.market}")
            for m in markets
        ]

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
        self.push_screen(HelpScreen(list(self.BINDINGS)))

    # --- header -------------------------------------------------------------------------------

    def _display_name(self) -> str:
        for market in self.markets:
            if market.market == self.selection.market:
                return market.display
        return self.selection.market

    def _update_header(self) -> None:
        header = Text()
        header.append(" perpterm ", style="bold reverse")
        if self.demo:
            header.append(" DEMO ", style="bold black on yellow")
        header.append(f"  {self.selection.venue}  ", style="dim")
        header.append(inert(self._display_name()), style="bold")
        header.append(f"  {self.selection.interval}", style="dim")
        ticker_stream = self._stream(Channel.TICKER)
        if ticker_stream is not None and isinstance(ticker_stream.data, TickerData):
            ticker = ticker_stream.data.ticker
            if ticker is not None:
                live = ticker_stream.state is StreamState.LIVE
                style = "" if live else "dim"
                if ticker.mark:
                    header.append(f"   mark {inert(ticker.mark)}", style=style)
                if ticker.index:
                    header.append(f"  index {inert(ticker.index)}", style=style)
                if ticker.funding_rate:
                    header.append(f"  funding {inert(ticker.funding_rate)}/h", style=style)
                change = _change_24h(ticker.mark, ticker.prev_day_price)
                if change is not None:
                    header.append(f"  24h {change:+.2f}%", style="green" if change >= 0 else "red")
        self.query_one("#header", Static).update(header)


def _change_24h(mark: str | None, previous: str | None) -> float | None:
    try:
        now, before = float(mark or ""), float(previous or "")
    except ValueError:
        return None
    return None if before == 0 else (now / before - 1) * 100
