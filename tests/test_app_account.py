"""The account side of the app under Pilot, fed by the Hyperliquid and Hypercall emulators over
loopback with their demo wallets: Greeks and liquidation state on the first screen, one summary
line each on a small terminal, the alert on a move toward liquidation, and an option chosen from
the chain driving the book, the trades and the chart."""

from __future__ import annotations

import pytest

from app.config import load_settings
from app.model import Channel, LiquidationState, StreamState, Venue
from app.secrets import Credentials
from app.sim.engine import DEMO_ADDRESS
from app.ui import OptionsChainScreen, PerptermApp
from app.venues.base import Endpoint
from tests.conftest import FAST_LIVENESS, eventually, running
from widgets import LiquidationStateView, OptionsChainView, PortfolioGreeksView

VENUES = (Venue.HYPERLIQUID, Venue.HYPERCALL)


@pytest.fixture
async def emulators():
    async with running(VENUES) as servers:
        yield servers


def make_app(emulators) -> PerptermApp:
    endpoints = {venue: Endpoint(server.ws_url, server.http_url) for venue, server in emulators.items()}
    wallets = {venue: server.demo_credentials()["wallet"] for venue, server in emulators.items()}
    assert set(wallets.values()) == {DEMO_ADDRESS}
    return PerptermApp(
        load_settings(), endpoints, demo=True, liveness={v: FAST_LIVENESS for v in VENUES}, wallets=wallets
    )


def text(widget) -> str:
    return "\n".join(widget.render_line(y).text for y in range(widget.size.height))


async def test_first_screen_shows_greeks_and_liquidation_state(emulators):
    app = make_app(emulators)
    async with app.run_test(size=(140, 45)) as pilot:
        greeks, liquidation = app.query_one(PortfolioGreeksView), app.query_one(LiquidationStateView)
        await eventually(lambda: "LIVE" in text(greeks) and "TOTAL" in text(greeks), timeout=10, what="greeks")
        shown = text(greeks)
        for word in ("Delta", "Gamma", "Theta", "Vega"):
            assert word in shown, shown
        # Options legs of the Hypercall account and perps of the Hyperliquid one, side by side.
        assert "C " in shown and "P " in shown
        await eventually(lambda: text(liquidation).count("NORMAL") == 2, what="both venues Normal")
        assert "hypercall" in text(liquidation) and "hyperliquid" in text(liquidation)
        assert greeks.size.height >= 12 and not greeks.compact

        await pilot.resize_terminal(80, 24)
        await eventually(lambda: greeks.compact and liquidation.compact, what="compact")
        await pilot.pause()
        assert greeks.size.height == 1 and liquidation.size.height == 1  # collapsed, not gone
        assert greeks.display and liquidation.display
        assert "Greeks" in text(greeks) and "$Δ" in text(greeks)
        assert "Liq" in text(liquidation) and "NORMAL" in text(liquidation)


async def test_transition_to_warning_and_liquidating_rings_and_alerts(emulators):
    app = make_app(emulators)
    bells: list[int] = []
    app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
    async with app.run_test(size=(140, 45)) as pilot:
        liquidation = app.query_one(LiquidationStateView)
        hypercall = emulators[Venue.HYPERCALL]
        states = lambda: {v.venue: v.state for v in app.portfolio.view.venues}  # noqa: E731
        await eventually(lambda: states().get(Venue.HYPERCALL) is LiquidationState.NORMAL, timeout=10, what="normal")
        assert not bells and not liquidation.alerting

        hypercall.set_liquidation_stage("warning")
        await eventually(lambda: states()[Venue.HYPERCALL] is LiquidationState.WARNING, timeout=8, what="warning")
        await eventually(lambda: bells and liquidation.alerting, what="the alert")
        assert "⚠ hypercall WARNING" in text(liquidation)
        # notify() posts a message: the notification is added when the app handles it.
        await eventually(lambda: any("Warning" in str(n.message) for n in app._notifications), what="the notification")

        hypercall.set_liquidation_stage("liquidating")
        await eventually(lambda: states()[Venue.HYPERCALL] is LiquidationState.LIQUIDATING, timeout=8, what="liquidating")
        await eventually(lambda: len(bells) >= 2, what="a second bell")
        assert "⚠ hypercall LIQUIDATING" in text(liquidation)
        assert "LIQUIDATING" in text(liquidation)
        await pilot.pause()


async def test_an_option_chosen_from_the_chain_drives_book_trades_and_chart(emulators):
    app = make_app(emulators)
    async with app.run_test(size=(140, 45)) as pilot:
        await eventually(lambda: app.markets.get(Venue.HYPERCALL), timeout=10, what="hypercall listing")
        await pilot.press("o")
        assert isinstance(app.screen, OptionsChainScreen)
        chain = app.screen.query_one(OptionsChainView)
        await eventually(lambda: chain.highlighted() is not None, timeout=8, what="chain rows")
        await pilot.press("down", "right")  # the next strike's put
        leg = chain.highlighted()
        assert leg is not None and leg.symbol.startswith("BTC-") and leg.symbol.endswith("-P")
        symbol = leg.symbol
        await pilot.press("enter")
        await eventually(lambda: not isinstance(app.screen, OptionsChainScreen), what="chain closed")
        assert (app.selection.venue, app.selection.market) == (Venue.HYPERCALL, symbol)
        await eventually(
            lambda: app._handles.get(Channel.BOOK) is not None and app._handles[Channel.BOOK].key.market == symbol,
            what="the option's book bound",
        )
        await eventually(lambda: app._handles[Channel.BOOK].stream.state is StreamState.LIVE, what="its book live")
        shown = lambda: {channel: handle.key for channel, handle in app._handles.items()}  # noqa: E731
        await eventually(
            lambda: all(key.venue is Venue.HYPERCALL for key in shown().values()) and not app._incoming,
            what="every panel switched to the option",
        )
        assert app._handles[Channel.TRADES].key.market == symbol
        chart = app._handles[Channel.CANDLES].key
        assert (chart.market, chart.param("interval")) == ("BTC", app.selection.interval)  # the underlying's candles
        await eventually(lambda: "underlying of" in text(app.query_one("#chart")), what="the chart titled as such")
        header = lambda: str(app.query_one("#header").render())  # noqa: E731
        await eventually(lambda: all(word in header() for word in ("mark", "IV", "Δ", "index")), what="option header")


async def test_a_perpex_liquidation_alert_reaches_the_widget():
    """Perpex's account comes from its token, not a wallet: ``positions`` feeds the Greeks (a perp's
    delta is its size) and its ``liquidation_warning`` and ``liquidated`` events the panel."""
    async with running([Venue.PERPEX]) as servers:
        perpex = servers[Venue.PERPEX]
        endpoints = {Venue.PERPEX: Endpoint(perpex.ws_url, perpex.http_url)}
        credentials = {Venue.PERPEX: Credentials.of(perpex.demo_credentials())}
        app = PerptermApp(
            load_settings(venue="perpex", market="BTC-USD"), endpoints, demo=True,
            liveness={Venue.PERPEX: FAST_LIVENESS}, credentials=credentials,
        )  # fmt: skip
        bells: list[int] = []
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        async with app.run_test(size=(140, 45)) as pilot:
            liquidation, greeks = app.query_one(LiquidationStateView), app.query_one(PortfolioGreeksView)
            states = lambda: {v.venue: v.state for v in app.portfolio.view.venues}  # noqa: E731
            await eventually(lambda: states().get(Venue.PERPEX) is LiquidationState.NORMAL, timeout=10, what="normal")
            await eventually(lambda: "BTC-USD" in text(greeks) and "ETH-USD" in text(greeks), what="positions")

            perpex.set_liquidation_stage("warning")
            await eventually(lambda: states()[Venue.PERPEX] is LiquidationState.WARNING, timeout=8, what="warning")
            await eventually(lambda: bells and liquidation.alerting, what="the alert")
            assert "perpex: Normal → Warning" in text(liquidation) and "WARNING" in text(liquidation)

            perpex.set_liquidation_stage("liquidating")
            await eventually(lambda: states()[Venue.PERPEX] is LiquidationState.LIQUIDATING, timeout=8, what="liquidated")
            assert "LIQUIDATING" in text(liquidation)
            await pilot.pause()
