"""The app over three venues at once under Pilot, each fed by its emulator over loopback: venue
keys, the market picker across venues, a prediction market shown as outcomes, and a switch that
never blanks the screen."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette

from app.config import load_settings
from app.model import Channel, StreamState, Venue
from app.ui import HelpScreen, PerptermApp
from app.venues.base import Endpoint
from tests.conftest import FAST_LIVENESS, eventually, running
from widgets import OrderBookView

VENUES = (Venue.HYPERLIQUID, Venue.ASTER, Venue.POLYMARKET)


@pytest.fixture
async def emulators():
    async with running(VENUES) as servers:
        yield servers


def make_app(emulators) -> PerptermApp:
    endpoints = {
        venue: Endpoint(server.ws_url, server.http_url, tuple(server.extra_urls().items()))
        for venue, server in emulators.items()
    }
    return PerptermApp(load_settings(), endpoints, demo=True, liveness={v: FAST_LIVENESS for v in VENUES})


def header(app: PerptermApp) -> str:
    return str(app.query_one("#header").render())


def book_lines(app: PerptermApp) -> list[str]:
    view = app.query_one(OrderBookView)
    return [view.render_line(y).text for y in range(view.size.height)]


async def test_venue_keys_switch_without_blanking(emulators):
    app = make_app(emulators)
    async with app.run_test(size=(130, 40)) as pilot:
        await eventually(lambda: all(app.markets.get(v) for v in VENUES), timeout=10, what="every market list")
        await eventually(lambda: any("spread" in line for line in book_lines(app)), what="hyperliquid book")
        assert app.selection.venue is Venue.HYPERLIQUID and "hyperliquid" in header(app)

        await pilot.press("v")
        assert app.selection.venue is Venue.ASTER and app.selection.market == "BTCUSDT"
        # Until Aster's book has synced, the Hyperliquid book stays on screen: never a blank panel.
        for _ in range(40):
            lines = book_lines(app)
            assert any("spread" in line for line in lines), lines
            if "aster" in lines[0]:
                break
            await pilot.pause(0.05)
        await eventually(lambda: "BTCUSDT-PERP · aster" in book_lines(app)[0], what="aster book shown")
        await eventually(lambda: "/8h" in header(app), what="aster funding, per 8 h")

        await pilot.press("3")
        assert app.selection.venue is Venue.POLYMARKET
        await eventually(lambda: "Yes" in header(app) and "No" in header(app) and "%" in header(app), what="outcomes")
        await pilot.pause()
        assert not app.query_one("#chart").display  # no candles: the other outcome's book, and the tape
        assert app.query_one("#outcome").display and app.query_one("#tape").size.height > 10
        outcome = app.query_one("#outcome", OrderBookView)
        await eventually(lambda: "Chance" in outcome.render_line(1).text, what="the other outcome's book in percent")
        await pilot.press("V")
        assert app.selection.venue is Venue.ASTER and app.selection.market == "BTCUSDT"  # remembered
        await pilot.pause()
        assert app.query_one("#chart").display and not app.query_one("#outcome").display

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-body").render())
        assert "1 hyperliquid, 2 aster, 3 polymarket" in help_text and "Next venue" in help_text


async def test_market_picker_searches_every_venue(emulators):
    app = make_app(emulators)
    async with app.run_test(size=(130, 40)) as pilot:
        await eventually(lambda: all(app.markets.get(v) for v in VENUES), timeout=10, what="every market list")
        labels = [command.label for command in app.market_commands()]
        assert any(label.endswith("aster") for label in labels)
        assert any(label.endswith("polymarket") for label in labels)
        await pilot.press("m")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"ETHUSDT")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await eventually(lambda: app.selection.venue is Venue.ASTER and app.selection.market == "ETHUSDT", what="picked")
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, what="its book live")
