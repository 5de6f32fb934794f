"""perps.studio in the app under Pilot, fed by its emulator with the demo key: reached with the venue
keys, its verticals with `g` and the market picker, the provider switch `x`, a prediction market as
its outcomes with percentages, RWA markets labelled with their dex."""

from __future__ import annotations

import pytest

from app.config import load_settings
from app.model import Channel, StreamState, Venue
from app.secrets import Credentials
from app.sim.perps_studio import DEMO_API_KEY
from app.ui import PerptermApp
from app.venues.base import Endpoint
from tests.conftest import FAST_LIVENESS, eventually, running

VENUES = (Venue.HYPERLIQUID, Venue.PERPS_STUDIO)
PS = Venue.PERPS_STUDIO


@pytest.fixture
async def emulators():
    async with running(VENUES) as servers:
        yield servers


def make_app(emulators) -> PerptermApp:
    endpoints = {venue: Endpoint(server.ws_url, server.http_url) for venue, server in emulators.items()}
    credentials = {PS: Credentials.of(emulators[PS].demo_credentials())}
    assert credentials[PS].api_key.get_secret_value() == DEMO_API_KEY
    return PerptermApp(load_settings(), endpoints, demo=True, liveness={v: FAST_LIVENESS for v in VENUES}, credentials=credentials)


def header(app: PerptermApp) -> str:
    return str(app.query_one("#header").render())


async def shown(app: PerptermApp, market: str) -> None:
    """Wait until ``market`` is selected and its book is live on screen."""
    await eventually(lambda: app.selection.market == market, what=f"{market} selected")
    await eventually(
        lambda: not app._incoming
        and app._handles[Channel.BOOK].key.market == market
        and app._handles[Channel.BOOK].stream.state is StreamState.LIVE,
        timeout=8,
        what=f"{market} book live",
    )


async def test_verticals_providers_and_predictions(emulators):
    app = make_app(emulators)
    async with app.run_test(size=(140, 45)) as pilot:
        await eventually(lambda: app.markets.get(PS), timeout=10, what="perps.studio listings")
        await pilot.press(str(app.venues.index(PS) + 1))  # the venue keys, like every venue
        assert app.selection.venue is PS
        await shown(app, "perps:hyperliquid:BTC")
        await eventually(lambda: "BTC-PERP hyperliquid" in header(app) and "/1h" in header(app), what="its ticker")
        assert app.query_one("#chart").display

        await pilot.press("x")  # the same market from the other provider
        await shown(app, "perps:aster:BTC")
        await eventually(lambda: "BTC-PERP aster" in header(app), what="aster's header")
        # Aster's ticker through perps.studio has no funding rate; never Hyperliquid's hourly one.
        await eventually(lambda: "/1h" not in header(app), what="aster's own ticker")

        sections = []
        for _ in range(3):
            await pilot.press("g")
            await eventually(lambda: app.selection.market.split(":")[0] not in sections + ["perps"], what="next vertical")
            sections.append(app.selection.market.split(":")[0])
            await shown(app, app.selection.market)
        assert sections == ["spot", "rwas", "predictions"]

        # A prediction: both outcomes in the header, priced as probabilities; no chart.
        await eventually(lambda: "Yes" in header(app) and "No" in header(app) and "%" in header(app), what="outcomes")
        await pilot.pause()
        assert not app.query_one("#chart").display
        labels = [command.label for command in app.market_commands()]
        # RWA markets carry their dex; every vertical is in the picker.
        assert any("xyz:" in label and label.endswith("perps-studio") for label in labels)
        assert any("flx:GOLD" in label for label in labels)
        assert {m.section for m in app.markets[PS]} == {"perps", "spot", "rwas", "predictions"}
        await pilot.press("g")  # around again to perps
        await eventually(lambda: app.selection.market.startswith("perps:"), what="back to perps")


def test_funding_is_labelled_by_the_provider_period():
    from app.venues import build_adapter

    adapter = build_adapter(PS, Endpoint("ws://127.0.0.1:9/ws/v1", "http://127.0.0.1:9"))
    assert adapter.funding_period_of("perps:hyperliquid:BTC") == "1h"
    assert adapter.funding_period_of("perps:aster:BTC") == "8h"
