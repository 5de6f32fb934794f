"""Ingest benchmark: perpterm's Hyperliquid path against a raw websockets + orjson loop.

The Hyperliquid emulator runs in a child process (so it does not share this process's GIL) and
floods ``l2Book`` snapshots (20 + 20 levels, ~1.5 KB each) as fast as the socket drains. Each round
times both consumers on the same flood, interleaved, so machine noise hits both alike:

- ``raw``: ``websockets`` recv + ``orjson.loads`` (the floor: nothing else done);
- ``perpterm``: the real path: supervised connection, ``HyperliquidAdapter.decode``, routing, the
  subscription service's ingest and the exact order book (Decimal keys) — everything except render.

Prints a table: messages/s (wall) and CPU µs/message for each, and the ratio perpterm / raw.
Usage: ``python bench/ingest.py [--messages 20000] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.model import BookSnapshot, Channel, StreamState, Venue  # noqa: E402
from app.service import SubscriptionService  # noqa: E402
from app.venues import build_adapter  # noqa: E402
from app.venues.base import Endpoint  # noqa: E402

COIN = "BTC"
SERVER = """
import asyncio, sys, orjson
from app.sim.hyperliquid import HyperliquidEmulator

async def main():
    emulator = HyperliquidEmulator(seed=3, autostep=False, idle_timeout=600)
    await emulator.start()
    print(orjson.dumps({"http": emulator.http_url, "ws": emulator.ws_url}).decode(), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        count = int(line)
        sent = await emulator.flood("BTC", count)
        print(sent, flush=True)
    await emulator.stop()

asyncio.run(main())
"""


class FloodServer:
    """The emulator in a child process; ``flood(n)`` asks it to send n books to every subscriber."""

    def __init__(self) -> None:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root, text=True
        )
        info = orjson.loads(self.process.stdout.readline())
        self.endpoint = Endpoint(info["ws"], info["http"])

    def flood(self, count: int) -> None:
        self.process.stdin.write(f"{count}\n")
        self.process.stdin.flush()

    def wait_sent(self) -> int:
        return int(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


async def run_raw(server: FloodServer, count: int) -> tuple[float, float]:
    subscribe = orjson.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": COIN}})
    async with websockets.connect(server.endpoint.ws_url, max_size=1 << 24, ping_interval=None) as ws:
        await ws.send(subscribe.decode())
        await ws.recv()  # the ack
        await asyncio.sleep(0.1)
        server.flood(count)
        received = 0
        wall, cpu = time.perf_counter(), time.process_time()
        while received < count:
            message = orjson.loads(await ws.recv(decode=False))
            if message.get("channel") == "l2Book":
                received += 1
        elapsed = time.perf_counter() - wall, time.process_time() - cpu
    await asyncio.to_thread(server.wait_sent)
    return elapsed


async def run_perpterm(server: FloodServer, count: int) -> tuple[float, float]:
    service = SubscriptionService([build_adapter(Venue.HYPERLIQUID, server.endpoint)])
    done = asyncio.Event()
    received = 0

    def on_event(event: BookSnapshot) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    handle = service.subscribe(Venue.HYPERLIQUID, Channel.BOOK, COIN)
    while handle.stream.state is not StreamState.LIVE:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    handle.listener = lambda event: on_event(event) if isinstance(event, BookSnapshot) else None
    server.flood(count)
    wall, cpu = time.perf_counter(), time.process_time()
    await done.wait()
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    await asyncio.to_thread(server.wait_sent)
    assert not handle.stream.data.book.crossed and handle.stream.state is StreamState.LIVE
    handle.close()
    await service.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    server = FloodServer()
    results: dict[str, list[tuple[float, float]]] = {"raw": [], "perpterm": []}
    try:
        await run_raw(server, 1000)  # warm-up both paths
        await run_perpterm(server, 1000)
        for _ in range(args.rounds):
            results["raw"].append(await run_raw(server, args.messages))
            results["perpterm"].append(await run_perpterm(server, args.messages))
    finally:
        server.close()

    def rate(samples: list[tuple[float, float]]) -> float:
        return statistics.median(args.messages / wall for wall, _ in samples)

    def cpu_us(samples: list[tuple[float, float]]) -> float:
        return statistics.median(cpu / args.messages * 1e6 for _, cpu in samples)

    raw_rate, ours_rate = rate(results["raw"]), rate(results["perpterm"])
    raw_cpu, ours_cpu = cpu_us(results["raw"]), cpu_us(results["perpterm"])
    print(f"Hyperliquid l2Book ingest, {args.messages} msgs x {args.rounds} rounds (median), loopback")
    print()
    print("| consumer | msgs/s | CPU us/msg | ratio vs raw (msgs/s) |")
    print("|---|---:|---:|---:|")
    print(f"| raw websockets + orjson.loads | {raw_rate:,.0f} | {raw_cpu:.1f} | 1.00 |")
    print(f"| perpterm (decode, route, ingest, exact book) | {ours_rate:,.0f} | {ours_cpu:.1f} | {ours_rate / raw_rate:.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
