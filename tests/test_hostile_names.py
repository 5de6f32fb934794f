"""Venue text is inert everywhere: hostile names and error bodies show literally, never as markup.

The emulator serves markets named with Rich/Textual markup, escape sequences and a bidi override
(``hostile_names=True``); the app must show each name as the text it is (escape and control
characters removed), turn none of it into a link, a click action or a style, and not crash.
"""

from __future__ import annotations

import json
import re

import pytest
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets._toast import Toast

from app.config import load_settings
from app.model import Channel, ConnectionHealth, ConnectionState, StreamState, Venue
from app.sim.engine import HOSTILE_NAMES, HOSTILE_TOKEN
from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.runner import start_emulators
from app.ui import PerptermApp
from app.venues.base import Endpoint
from tests.conftest import FAST_LIVENESS, eventually
from tests.test_app import make_app, screen_strips
from tests.test_sim_runner import post_info, spawn_sim
from widgets import CandleChart, OrderBookView, StatusBar, TradeTapeView
from widgets._text import inert

CLICKER = "[@click=app.quit]x[/]"
HOSTILE_DISPLAYS = [f"{name}-PERP" for name in HOSTILE_NAMES] + [f"{HOSTILE_TOKEN}/USDC"]  # as the venue names them
BODY_MARKUP = "<b>[link=https://evil.example]x[/link] [@click=app.quit]q[/] [bold red]PWN [/broken "
HOSTILE_BODY = BODY_MARKUP + "\x1b]0;pwned\x07\u202eRTL</b>"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture
async def hostile():
    async with HyperliquidEmulator(seed=11, book_interval=0.1, idle_timeout=30, hostile_names=True) as server:
        yield server


def screen_lines(app: App[None]) -> list[str]:
    """The active screen as the terminal gets it, after checking that it is inert."""
    strips = screen_strips(app)
    assert_inert(strips)
    return [strip.text for strip in strips]


def assert_inert(strips: list[Strip]) -> None:
    """No link, no click action and no escape or bidi control anywhere in what is drawn."""
    for segment in Segment.filter_control(segment for strip in strips for segment in strip):
        style = segment.style
        assert style is None or (not style.link and "@click" not in style.meta), segment
        assert not _UNSAFE.search(segment.text), segment


def titled(app: PerptermApp, shown: str) -> bool:
    """Whether the book, tape and chart titles read ``shown · hyperliquid``, as far as they fit
    before the state badge (the book is narrow)."""
    title = f" {shown} · hyperliquid"
    views = [app.query_one(view) for view in (OrderBookView, TradeTapeView, CandleChart)]
    return all(view.render_line(0).text.startswith(title[: view.size.width - len(" WAITING ")]) for view in views)


async def test_picker_header_titles_and_status_show_hostile_names_literally(hostile) -> None:
    app = make_app(hostile)
    async with app.run_test(size=(140, 40)) as pilot:
        await eventually(lambda: len(app.markets.get(Venue.HYPERLIQUID, ())) == 6 + len(HOSTILE_DISPLAYS), what="market list loaded")
        assert [m.display for m in app.markets[Venue.HYPERLIQUID][4:-3]] == HOSTILE_DISPLAYS[:-1]

        await pilot.press("slash")
        await pilot.press(*"click")
        offered = f"{CLICKER}-PERP  hyperliquid"
        await eventually(lambda: any(offered in line for line in screen_lines(app)), what="hostile market offered")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await eventually(lambda: app.selection.market == CLICKER, what="picked the hostile market")

        book = app.query_one(OrderBookView)
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, what="hostile book live")
        await eventually(lambda: "spread" in "".join(book.render_line(y).text for y in range(book.size.height)))
        await eventually(lambda: titled(app, f"{CLICKER}-PERP"), what="hostile titles")
        lines = screen_lines(app)
        assert f"hyperliquid  {CLICKER}-PERP  1m" in lines[0]
        assert "hyperliquid#1 live" in lines[-1]

        # Clicking the name in the header must not run app.quit.
        await pilot.click("#header", offset=(lines[0].index(CLICKER) + 3, 0))
        await pilot.pause(0.1)
        assert app.is_running and app.return_code is None

        # Every hostile market, perps and the spot pair, in the header and the widget titles.
        markets = {m.display: m.market for m in app.markets[Venue.HYPERLIQUID]}
        for display in HOSTILE_DISPLAYS:
            app.select(market=markets[display])
            shown = inert(display)
            await eventually(lambda: titled(app, shown), what=f"{shown!r} titles")
            await pilot.pause()
            assert f"  {shown}  1m" in screen_lines(app)[0]
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, what="hostile spot book live")
        assert app.is_running


async def test_hostile_http_error_body_shows_literally_in_the_notification(emulator) -> None:
    emulator.fail_http(500, HOSTILE_BODY)
    app = make_app(emulator)
    async with app.run_test(size=(140, 40), notifications=True) as pilot:
        await eventually(lambda: bool(app.screen.query(Toast)), what="market list warning")
        await pilot.pause(0.2)
        (toast,) = app.screen.query(Toast)
        shown = toast.render().plain
        assert shown.startswith(f"hyperliquid market list unavailable: POST /info: HTTP 500: {BODY_MARKUP}")
        assert shown.endswith("RTL</b>") and inert(shown) == shown  # the escape shown harmless, if at all
        drawn = "".join(screen_lines(app))
        assert "[link=https://evil.example]x[/link]" in drawn and "[bold red]PWN" in drawn
        assert app.is_running and not app.markets


async def test_hostile_connection_text_in_the_status_bar() -> None:
    reason = "[link=https://evil.example]x[/link] \x1b]0;pwned\x07[@click=app.quit]q[/]"
    health = ConnectionHealth(Venue.HYPERLIQUID, "[bold red]hl\u202e", ConnectionState.FAILED, reason=reason)

    class Bar(App[None]):
        def compose(self) -> ComposeResult:
            yield StatusBar(health=lambda: [health], hint="? help")

    app = Bar()
    async with app.run_test(size=(120, 3)) as pilot:
        await pilot.pause(0.1)
        assert f"[bold red]hl failed: {inert(reason)}" in screen_lines(app)[-1]


def test_sim_command_serves_hostile_names() -> None:
    sim = spawn_sim("--json", "--hostile-names")
    try:
        assert sim.stdout is not None
        http_url = json.loads(sim.stdout.readline())["http"]
        meta, spot = (post_info(http_url, {"type": kind}) for kind in ("meta", "spotMeta"))
        assert [asset["name"] for asset in meta["universe"]] == ["BTC", "ETH", "SOL", "HYPE", *HOSTILE_NAMES]  # type: ignore[index]
        assert spot["tokens"][-1]["name"] == HOSTILE_TOKEN  # type: ignore[index]
        sim.terminate()
        assert sim.wait(10) == 0
    finally:
        if sim.poll() is None:
            sim.kill()
            sim.wait()


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("LINK\x1b]8;;https://evil.example\x1b\\here\x1b]8;;\x1b\\", "LINKhere"),  # OSC 8, ST-terminated
        ("\x1b]8;;https://evil.example\x07here\x1b]8;;\x07", "here"),  # OSC 8, BEL-terminated
        ("C1\x9b2J\x85x\x9d0;t\x07y\x90q\x9c", "C1 xy"),  # 8-bit CSI, NEL, OSC and DCS
        ("\u2067RTL\u2069\u202eX", "RTLX"),  # isolates and an override
        ("👩\u200d💻", "👩\u200d💻"),  # zero-width joiners stay
        ("lone \ud800surrogate", "lone surrogate"),  # cannot be encoded for the terminal
    ],
)
def test_inert_strips_what_the_terminal_would_act_on(text: str, shown: str) -> None:
    assert inert(text) == shown


@pytest.mark.parametrize("venue", [Venue.ASTER, Venue.POLYMARKET])
async def test_hostile_names_of_the_other_venues_are_shown_literally(venue: Venue) -> None:
    """Aster lists hostile symbols, Polymarket hostile questions: every one reaches the header and
    the book title literally and inert, and the picker offers it without markup."""
    (server,) = await start_emulators([str(venue)], seed=11, hostile_names=True)
    try:
        endpoint = Endpoint(server.ws_url, server.http_url, tuple(server.extra_urls().items()))
        app = PerptermApp(load_settings(venue=venue, market=""), {venue: endpoint}, demo=True, liveness={venue: FAST_LIVENESS})
        async with app.run_test(size=(160, 40)) as pilot:
            await eventually(lambda: bool(app.markets.get(venue)), timeout=10, what="market list")
            hostile = [m for m in app.markets[venue] if any(name in m.display for name in HOSTILE_NAMES)]
            assert hostile, [m.display for m in app.markets[venue]]
            labels = [command.label for command in app.market_commands()]
            assert all(any(m.display in label for label in labels) for m in hostile)
            for info in hostile:
                app.select(market=info.market)
                shown = inert(info.display)
                book = app.query_one(OrderBookView)
                await eventually(lambda: book.render_line(0).text.startswith(f" {shown}"[: book.size.width - 10]), what=f"{shown!r} book title")
                await pilot.pause()
                assert shown in screen_lines(app)[0]  # the header, checked inert by screen_lines
            await pilot.click("#header", offset=(40, 0))
            assert app.is_running and app.return_code is None
    finally:
        await server.stop()
