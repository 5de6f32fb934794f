"""Regenerate the README screenshot from the seeded demo: ``python screenshots/generate.py``.

Runs the real app against the Hyperliquid emulator (seed 7) in this process, waits until the book,
tape and chart are live, and saves an SVG next to this file.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from app.config import load_settings  # noqa: E402
from app.model import Channel, StreamState, Venue  # noqa: E402
from app.sim.hyperliquid import HyperliquidEmulator  # noqa: E402
from app.ui import PerptermApp  # noqa: E402
from app.venues.base import Endpoint  # noqa: E402


async def main() -> None:
    async with HyperliquidEmulator(seed=7) as emulator:
        app = PerptermApp(
            load_settings(seed=7), {Venue.HYPERLIQUID: Endpoint(emulator.ws_url, emulator.http_url)}, demo=True
        )
        async with app.run_test(size=(120, 36)) as pilot:
            while not (
                app.markets
                and all(h.stream.state is StreamState.LIVE for h in app._handles.values())
                and len(app._handles[Channel.TRADES].stream.data.trades) > 30
            ):
                await asyncio.sleep(0.1)
            await pilot.pause(1.5)  # let every widget's timer paint
            app.save_screenshot(filename="demo.svg", path=str(HERE))
    print(HERE / "demo.svg")


if __name__ == "__main__":
    asyncio.run(main())
