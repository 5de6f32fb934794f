"""Regenerate the README screenshots from the seeded demo: ``python screenshots/generate.py``.

Runs the real app against every venue's emulator (seed 7) in this process, at 140x45 with the
emulators' demo wallets, keys and tokens, and saves one SVG per venue next to this file (``demo.svg`` is
Hyperliquid), each once the book, tape and chart (where the venue has one) are live; then the
options chain (``demo-options-chain.svg``) and both demo accounts driven into Warning and
Liquidating (``demo-liquidation.svg``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from app.config import load_settings  # noqa: E402
from app.model import Channel, StreamState, Venue  # noqa: E402
from app.secrets import Credentials  # noqa: E402
from app.sim.runner import start_emulators  # noqa: E402
from app.ui import PerptermApp  # noqa: E402
from app.venues.base import Endpoint  # noqa: E402

SHOTS = {
    Venue.HYPERLIQUID: "demo.svg",
    Venue.ASTER: "demo-aster.svg",
    Venue.POLYMARKET: "demo-polymarket.svg",
    Venue.PERPS_STUDIO: "demo-perps-studio.svg",
    Venue.HYPERCALL: "demo-hypercall.svg",
    Venue.PERPEX: "demo-perpex.svg",
    Venue.RAILS: "demo-rails.svg",
}


async def main() -> None:
    servers = await start_emulators([str(venue) for venue in SHOTS], seed=7)
    try:
        endpoints = {
            Venue(s.venue): Endpoint(s.ws_url, s.http_url, tuple(s.extra_urls().items())) for s in servers
        }
        announced = {Venue(s.venue): s.demo_credentials() for s in servers}
        wallets = {venue: c["wallet"] for venue, c in announced.items() if "wallet" in c}
        credentials = {venue: Credentials.of(c) for venue, c in announced.items()}
        app = PerptermApp(load_settings(seed=7), endpoints, demo=True, wallets=wallets, credentials=credentials)
        async with app.run_test(size=(140, 45)) as pilot:
            for venue, filename in SHOTS.items():
                if app.selection.venue is not venue:
                    await pilot.press(str(app.venues.index(venue) + 1))
                await live(app, venue)
                save(app, filename)
                if venue is Venue.PERPS_STUDIO:  # its predictions vertical too
                    for _ in range(3):
                        await pilot.press("g")
                    await live(app, venue)
                    save(app, "demo-perps-studio-predictions.svg")
            await pilot.press(str(app.venues.index(Venue.HYPERCALL) + 1))
            await live(app, Venue.HYPERCALL)
            await pilot.press("o")  # the chain of the option Hypercall shows
            await pilot.pause(2.0)
            save(app, "demo-options-chain.svg")
            await pilot.press("down", "enter")
            await live(app, Venue.HYPERCALL)
            for server in servers:
                if hasattr(server, "set_liquidation_stage"):
                    server.set_liquidation_stage("warning")
            await asyncio.sleep(3.0)
            for server in servers:
                if hasattr(server, "set_liquidation_stage"):
                    server.set_liquidation_stage("liquidating")
            await asyncio.sleep(5.0)
            save(app, "demo-liquidation.svg")
    finally:
        for server in servers:
            await server.stop()


async def live(app: PerptermApp, venue: Venue) -> None:
    while not (
        app.markets.get(venue)
        and app.selection.venue is venue
        and not app._incoming
        and all(h.stream.state is StreamState.LIVE for h in app._handles.values())
        and (venue is Venue.HYPERCALL or app.selection.market.startswith("predictions:")
             or len(app._handles[Channel.TRADES].stream.data.trades) > 5)
    ):
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)  # let every widget's timer paint


def save(app: PerptermApp, filename: str) -> None:
    app.save_screenshot(filename=filename, path=str(HERE))
    print(HERE / filename)


if __name__ == "__main__":
    asyncio.run(main())
