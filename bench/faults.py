"""Fault recovery per venue: how long after each injected fault the client's book is exact again.

For every venue emulator and every fault (the shared book faults, plus a dropped connection, a
stall and a restart) a subscription service follows one book over real sockets on 127.0.0.1; the
fault is injected, and the time until the client's book equals the emulator's book again is
measured, with the resyncs and gaps the client counted. The emulators run live (autostep), so the
times include the venues' push cadences (Hyperliquid books every 0.5 s, Aster diffs every 100 ms,
Polymarket books refreshed at least every 5 s, Hypercall books pushed only when they change, at most
every 0.5 s: the bench follows an ETH option of the nearest expiry near the money, one of the
busiest books, whose book changes in about two of three seconds; perps.studio whole books of
``perps:hyperliquid:BTC`` on change, at most every 0.5 s, with the emulator's demo API key; Perpex
deltas of BTC-USD's top 20 every 100 ms, numbered per socket, a gap resynced on the socket by
unsubscribe and subscribe; Rails deltas of BTC-USDT's top 25 on change, every 100 ms, numbered by
nothing: the snapshot is asked for on (re)connect, on a crossed book and by the 30 s audit, so a
lost, late or stale delta is fixed by the venue's next change of the levels it touched, by a crossed
book's resync, or by the audit, which comes after this bench's 20 s deadline: "missed").

    python bench/faults.py [--rounds 3] [--venues hyperliquid,aster,polymarket,hypercall,perps-studio,perpex,rails]

A book fault counts as recovered only once the venue has used it (its next book update), timed
from when it was armed. The machine is shared and noisy: read the times as orders of magnitude,
the counts as exact.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from app.model import Channel, Venue  # noqa: E402
from app.secrets import Credentials  # noqa: E402
from app.service import SubscriptionService  # noqa: E402
from app.sim.engine import format_fixed  # noqa: E402
from app.sim.runner import start_emulators  # noqa: E402
from app.sim.server import BOOK_FAULTS, EmulatorServer  # noqa: E402
from app.supervisor import Backoff  # noqa: E402
from app.venues import build_adapter  # noqa: E402
from app.venues.base import Endpoint, Liveness  # noqa: E402

FAULTS = (*BOOK_FAULTS, "drop", "stall 6 s", "restart")
LIVENESS = Liveness(ping_interval=2.0, probe_after=1.0, pong_timeout=2.0)
DEADLINE = 20.0


def book_of(server: EmulatorServer, market: str) -> Callable[[], Any]:
    """The emulator's whole book of ``market`` as (price, size) strings, best first."""
    venue = server.venue
    if venue in ("hyperliquid", "perpex"):  # the engine's top 20 (Perpex names the coin "<COIN>-USD")
        coin = server.markets[market].symbol if venue == "perpex" else market  # type: ignore[attr-defined]

        def read() -> Any:
            bids, asks = server.engine.book(coin)
            return [(px, sz) for px, sz, _ in bids], [(px, sz) for px, sz, _ in asks]
    elif venue == "aster":
        def read() -> Any:
            listing = server.listing(market)  # type: ignore[attr-defined]
            return (
                [(listing.px(t), listing.qty(q)) for t, q in sorted(listing.bids.items(), reverse=True)],
                [(listing.px(t), listing.qty(q)) for t, q in sorted(listing.asks.items())],
            )
    elif venue == "perps-studio":
        def read() -> Any:
            listing = server.listings[market]  # type: ignore[attr-defined]
            bids, asks = server.engine.levels(listing.key)
            return (
                [(listing.px(level[0]), listing.sz(level[1])) for level in bids[:20]],
                [(listing.px(level[0]), listing.sz(level[1])) for level in asks[:20]],
            )
    elif venue == "hypercall":
        def read() -> Any:
            inst = server.instruments[market]  # type: ignore[attr-defined]
            return (
                [(inst.px(px), format_fixed(lots, 1)) for px, lots in inst.bids],
                [(inst.px(px), format_fixed(lots, 1)) for px, lots in inst.asks],
            )
    elif venue == "rails":
        def read() -> Any:
            return server.book_levels(market)  # type: ignore[attr-defined]
    else:
        def read() -> Any:
            return server.book(market)  # type: ignore[attr-defined]
    return read


def market_of(server: EmulatorServer) -> str:
    if server.venue == "hypercall":  # the ETH call of the nearest expiry nearest the money
        spot = server.engine.fair_price("ETH")
        nearest = server.underlyings["ETH"].expiries[0]  # type: ignore[attr-defined]
        listed = server.instruments.values()  # type: ignore[attr-defined]
        return min((i for i in listed if i.und.name == "ETH" and i.expiry_ms == nearest and i.is_call), key=lambda i: abs(i.strike - spot)).name
    named = {"hyperliquid": "BTC", "aster": "BTCUSDT", "perps-studio": "perps:hyperliquid:BTC", "perpex": "BTC-USD", "rails": "BTC-USDT"}
    return named.get(server.venue) or server.token_ids[0]  # type: ignore[attr-defined]


async def inject(server: EmulatorServer, market: str, fault: str) -> None:
    if fault in BOOK_FAULTS:
        server.arm_book_fault(market, fault)  # type: ignore[arg-type]
    elif fault == "drop":
        server.drop_all()
    elif fault.startswith("stall"):
        server.stall(True)
        await asyncio.sleep(6.0)
        server.stall(False)
    elif fault == "restart":
        await server.restart()


def pending(server: EmulatorServer, market: str) -> bool:
    """Whether a book fault armed for ``market`` has yet to be used: until the venue's next book
    update takes it, the client's book is still exact and nothing has been recovered from (a
    venue that pushes only on change, like Hypercall, may not update for a second or more)."""
    return bool(server._book_faults.get(market))  # noqa: SLF001 - the base server's armed faults


async def one_round(server: EmulatorServer, fault: str) -> tuple[float | None, int, int]:
    """Seconds until the book is exact again (None: not within the deadline), resyncs, gaps."""
    venue = Venue(server.venue)
    market = market_of(server)
    endpoint = Endpoint(server.ws_url, server.http_url, tuple(server.extra_urls().items()))
    adapter = build_adapter(venue, endpoint, None, Credentials.of(server.demo_credentials()))
    service = SubscriptionService([adapter], liveness={venue: LIVENESS}, backoff=lambda: Backoff(0.2, 2.0))
    want = book_of(server, market)
    try:
        handle = service.subscribe(venue, Channel.BOOK, market)
        stream = handle.stream
        started = time.monotonic()
        while not (stream.state.value == "live" and stream.data.book.levels() == want()):
            if time.monotonic() - started > DEADLINE:
                return None, 0, 0
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        if fault == "delta_before_snapshot":  # armed for the next subscriber: subscribe anew
            handle.close()
            await asyncio.sleep(0.3)
            server.arm_book_fault(market, fault)
            handle = service.subscribe(venue, Channel.BOOK, market)
            stream = handle.stream
            started = time.monotonic()
        else:
            started = time.monotonic()
            await inject(server, market, fault)
            await asyncio.sleep(0.05)  # let the fault reach the wire before judging the book
        # Exact means equal twice in a row 50 ms apart, so a lucky instant does not count; and only
        # once the fault has been used (timed from when it was armed all the same).
        while True:
            if time.monotonic() - started > DEADLINE:
                return None, stream.resyncs, stream.data.gaps
            if not pending(server, market) and stream.state.value == "live" and stream.data.book.levels() == want():
                await asyncio.sleep(0.05)
                if stream.state.value == "live" and stream.data.book.levels() == want():
                    return time.monotonic() - started - 0.05, stream.resyncs, stream.data.gaps
            await asyncio.sleep(0.005)
    finally:
        await service.close()


async def main(venues: list[str], rounds: int) -> None:
    servers = await start_emulators(venues, seed=17)
    print(f"{'venue':<12} {'fault':<22} {'exact again after (s)':>22} {'resyncs':>8} {'gaps':>5}")
    try:
        for server in servers:
            for fault in FAULTS:
                times, resyncs, gaps, misses = [], [], [], 0
                for _ in range(rounds):
                    elapsed, resynced, gapped = await one_round(server, fault)
                    resyncs.append(resynced)
                    gaps.append(gapped)
                    if elapsed is None:
                        misses += 1
                    else:
                        times.append(elapsed)
                shown = f"{statistics.median(times):.2f} (max {max(times):.2f})" if times else "never"
                if misses:
                    shown += f", {misses} missed"
                print(f"{server.venue:<12} {fault:<22} {shown:>22} {sum(resyncs) / rounds:>8.1f} {sum(gaps) / rounds:>5.1f}")
    finally:
        for server in servers:
            await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--venues", default="hyperliquid,aster,polymarket,hypercall,perps-studio,perpex,rails")
    args = parser.parse_args()
    logging.getLogger("perpterm").setLevel(logging.ERROR)  # the resyncs are counted in the table
    asyncio.run(main(args.venues.split(","), args.rounds))
