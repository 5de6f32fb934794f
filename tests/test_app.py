"""The whole app under Pilot, fed by the Hyperliquid emulator over loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from textual.app import App
from textual.command import CommandPalette
from textual.strip import Strip

from app.commands import DEMO_FAULTS
from app.config import load_settings
from app.demo import EmulatorProcess
from app.model import Channel, StreamState, Venue
from app.ui import HelpScreen, PerptermApp
from tests.conftest import FAST_LIVENESS, endpoint_of, eventually
from widgets import OrderBookView


def make_app(emulator, **settings) -> PerptermApp:
    return PerptermApp(
        load_settings(**settings),
        {Venue.HYPERLIQUID: endpoint_of(emulator)},
        demo=True,
        liveness={Venue.HYPERLIQUID: FAST_LIVENESS},
    )


def screen_text(app: PerptermApp) -> str:
    return app.export_screenshot()


def screen_strips(app: App[None]) -> list[Strip]:
    """The active screen's lines as the terminal gets them (palette and toasts included)."""
    return app.screen._compositor.render_strips()


def drawn_text(app: App[None]) -> str:
    return "\n".join(strip.text for strip in screen_strips(app))


async def test_demo_shows_prices_and_keys_switch_market_and_interval(emulator):
    app = make_app(emulator)
    async with app.run_test(size=(120, 40)) as pilot:
        book_view = app.query_one(OrderBookView)

        def book_rows() -> list[str]:
            return [book_view.render_line(y).text for y in range(book_view.size.height)]

        await eventually(lambda: app.markets, what="market list loaded")
        await eventually(lambda: any("spread" in row for row in book_rows()), what="book painted")
        btc = app._handles[Channel.BOOK].stream
        best_bid = btc.data.book.best_bid
        assert f"{best_bid:,}".split(".")[0] in "\n".join(book_rows())
        assert "DEMO" in str(app.query_one("#header").render())

        await pilot.press("n")
        assert app.selection.market == "ETH"
        # The BTC book stays on screen until ETH's has data; then every channel is ETH's.
        await eventually(lambda: all(h.key.market == "ETH" for h in app._handles.values()), what="ETH shown")
        eth = app._handles[Channel.BOOK].stream
        assert btc.key not in {h.key for h in app._handles.values()}
        await eventually(lambda: eth.state is StreamState.LIVE and any("spread" in r for r in book_rows()))
        assert "ETH" in book_rows()[0]

        await pilot.press("p")
        assert app.selection.market == "BTC"

        await pilot.press("full_stop")
        assert app.selection.interval == "5m"
        # The chart keeps the 1m candles until the 5m history is in: never a blank chart.
        await eventually(lambda: app._handles[Channel.CANDLES].key.param("interval") == "5m", what="5m chart")
        await pilot.press("comma", "comma")
        assert app.selection.interval == "1d"  # wraps around

        # One socket throughout: switching never reconnects.
        (connection,) = app.service.connections(Venue.HYPERLIQUID)
        assert connection.reconnects == 0 and emulator.stats.connections_accepted == 1


async def test_help_and_market_picker(emulator):
    app = make_app(emulator)
    async with app.run_test(size=(100, 30)) as pilot:
        await eventually(lambda: app.markets, what="market list loaded")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-body").render())
        assert "Next market" in help_text and "Find market" in help_text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("slash")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"sol")
        await eventually(lambda: "SOL" in app.export_screenshot(), what="SOL offered")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await eventually(lambda: app.selection.market == "SOL", what="picked SOL")


async def test_venue_going_away_shows_stale_then_recovers(emulator):
    app = make_app(emulator)
    async with app.run_test(size=(120, 40)):
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE)
        emulator.refuse(True)
        await eventually(lambda: "STALE" in screen_text(app), what="stale badge")
        await eventually(lambda: "reconnecting" in screen_text(app), what="reconnecting in status bar")
        emulator.refuse(False)
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, timeout=8)


@pytest.fixture
async def demo_child() -> AsyncIterator[EmulatorProcess]:
    """The demo's emulator child (``perpterm sim --control-stdin``) on free ports."""
    process = EmulatorProcess([Venue.HYPERLIQUID], seed=5, port_base=0)
    try:
        await asyncio.to_thread(process.start)
        yield process
    finally:
        await asyncio.to_thread(process.stop)


async def test_demo_fault_commands_in_the_palette_reach_the_emulator_child(demo_child):
    app = PerptermApp(
        load_settings(),
        dict(demo_child.endpoints),
        demo=True,
        liveness={Venue.HYPERLIQUID: FAST_LIVENESS},
        faults=demo_child.send,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, what="book live")
        await pilot.press("ctrl+p")
        labels = [label for _, label, _ in DEMO_FAULTS]
        await eventually(lambda: all(label in drawn_text(app) for label in labels), what="demo commands listed")

        await pilot.press(*"demo drop every")
        await eventually(lambda: drawn_text(app).count("Demo: ") == 1, what="only drop left")
        await pilot.pause(0.3)
        await pilot.press("enter")
        (connection,) = app.service.connections(Venue.HYPERLIQUID)
        await eventually(lambda: connection.reconnects == 1, timeout=8, what="reconnect after the drop")
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, timeout=8, what="live again")


async def test_palette_has_no_demo_commands_without_an_emulator_child(emulator):
    app = make_app(emulator)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await eventually(lambda: "Quit the application" in drawn_text(app), what="palette commands listed")
        assert "Demo: " not in drawn_text(app)
