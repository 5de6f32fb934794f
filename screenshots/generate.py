"""Regenerate the README screenshots from the seeded demo: ``python screenshots/generate.py``.

Runs the real app against the Hyperliquid, Aster and Polymarket emulators (seed 7) in this process
and saves one SVG per venue next to this file (``demo.svg`` is Hyperliquid), each once the book,
tape and chart (where the venue has one) are live.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from app.config import load_settings  # noqa: E402
from app.model import Channel, StreamState, Venue  # noqa: E402
from app.sim.runner import start_emulators  # noqa: E402
from app.ui import PerptermApp  # noqa: E402
from app.venues.base import Endpoint  # noqa: E402

SHOTS = {Venue.HYPERLIQUID: "demo.svg", Venue.ASTER: "demo-aster.svg", Venue.POLYMARKET: "demo-polymarket.svg"}


async def main() -> None:
    servers = await start_emulators([str(venue) for venue in SHOTS], seed=7)
    try:
        endpoints = {
            Venue(s.venue): Endpoint(s.ws_url, s.http_url, tuple(s.extra_urls().items())) for s in servers
        }
        app = PerptermApp(load_settings(seed=7), endpoints, demo=True)
        async with app.run_test(size=(120, 36)) as pilot:
            for venue, filename in SHOTS.items():
                if app.selection.venue is not venue:
                    await pilot.press(str(app.venues.index(venue) + 1))
                while not (
                    app.markets.get(venue)
                    and app.selection.venue is venue
                    and not app._incoming
                    and all(h.stream.state is StreamState.LIVE for h in app._handles.values())
                    and len(app._handles[Channel.TRADES].stream.data.trades) > 5
                ):
                    await asyncio.sleep(0.1)
                await pilot.pause(1.5)  # let every widget's timer paint
                app.save_screenshot(filename=filename, path=str(HERE))
                print(HERE / filename)
    finally:
        for server in servers:
            await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
