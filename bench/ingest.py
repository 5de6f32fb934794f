"""Ingest benchmark: perpterm's full ingest path against a raw websockets + orjson loop, per venue.

Each venue's emulator runs in its own child process (so it does not share this process's GIL). For
every timed flood the child first runs the venue's own ``flood`` with each frame kept instead of
written (the emulator's book and update ids move exactly as in a live flood), then, on "go", writes
the kept frames through the emulator's own send path as fast as the socket drains. So the consumer
is timed on receiving, not on the emulator making frames (Aster's emulator makes only ~4,000 diff
frames a second, which would cap both consumers). Each round times both consumers on the same
flood, interleaved (the order alternates between rounds), so machine noise hits both alike:

- ``raw``: ``websockets`` recv + ``orjson.loads`` + one key test (the floor: nothing else done);
- ``perpterm``: the real path: supervised connection, the venue adapter's ``decode``, routing, the
  subscription service's ingest, the book sync (``BookData``) and the exact order book (Decimal
  keys) — everything except render.

Feeds (``--venues``, default all eight):

- ``hyperliquid``: ``l2Book`` snapshots of BTC, 20 + 20 levels, ~1.6 KB each (each replaces the book);
- ``aster``: BTCUSDT ``@depth@100ms`` diff depth into a ~1000-level-a-side book. Before any client
  connects, one flood with nobody listening deepens the emulator's published book to 1000 levels a
  side, so perpterm syncs the documented way (REST ``depth`` limit 1000, then deltas chained by
  ``pu``). Each flood's first frame re-states the 1000-level ladder (~40 KB), every later frame sets
  10 levels a side (10 % of them deletions; ~580 B), so the book stays at ~900-1000 levels a side;
- ``polymarket``: ``price_change`` batches of the first market (each frame: one level change as its
  YES entry and NO mirror, ~600 B; perpterm follows the YES token, so half of each batch is decoded
  for nobody);
- ``hypercall``: ``OrderbookUpdate`` of a BTC option near the money, 15 + 15 levels, ~900 B (each
  replaces the book; the venue's own ``flood``, sizes varied, the last frame the true book);
- ``hypercall-greeks``: the demo wallet's ``PortfolioUpdate`` Greeks variant (per-leg Greeks of its
  four legs and the aggregate, ~800 B) on the authenticated ``portfolio`` channel; the venue has no
  flood of these, so the child builds 16 variants (the legs valued a second apart) with the
  emulator's own formatting and cycles them. perpterm follows the account's positions stream;
- ``perps-studio``: perps.studio ``orderbook`` frames of ``perps:hyperliquid:BTC`` on the perps
  vertical's socket (the demo API key in the URL), 20 + 20 ``{price,size}`` levels, ~1.6 KB each
  (each replaces the book; the venue's own ``flood``, sizes varied, the last frame the true book);
- ``perpex``: Perpex ``orderbook`` updates of BTC-USD (one bid level each, ~130 B, its size varied,
  the last frame restoring it) continuing the socket's ``seq`` from the 20 + 20 snapshot the public
  socket got on subscribe (the venue's own ``flood``);
- ``rails``: Rails ``publicOrderBookDelta`` of BTC-USDT (one level each of the top five a side,
  ~170 B, its quantity varied, the last frame restoring them) into the 25 + 25 book of the snapshot
  asked for with ``emitPublicOrderBook``, on the market's own socket (the demo token in the
  subprotocol; the venue's own ``flood``). Rails has no REST book: the check asks a socket of its own.

After each perpterm flood (outside the timed window) the bench checks that the stream is still LIVE
and was never resynced and, for Aster, Polymarket, Hypercall, perps.studio, Perpex and Rails, that perpterm's
book equals the emulator's (REST, or for Rails socket) book level for level.

Prints one table: messages/s (wall) and CPU µs/message for each consumer, and perpterm / raw as a
ratio of messages/s (the issue's measure) and of CPU per message. The notes under the table give how
busy each consumer was: a raw loop well under ~95 % busy was waiting for frames (on a loaded machine
the emulator's process loses its core), so its msgs/s and the msgs/s ratio are then flattering and
the CPU ratio is the one to read.

Usage: ``python bench/ingest.py [--venues hyperliquid,aster,polymarket,hypercall,hypercall-greeks,perps-studio,perpex,rails] [--messages N |
--messages aster=10000,hyperliquid=20000] [--rounds 5]``; ``--profile VENUE [--top 25]`` instead
runs one perpterm flood of that venue under cProfile and prints where the time goes (cProfile
inflates call-heavy code, so read it for shares, not absolute µs).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from app.model import BookDelta, BookSnapshot, Channel, Greeks, StreamState, Venue  # noqa: E402
from app.rest import RestClient  # noqa: E402
from app.secrets import Credentials  # noqa: E402
from app.service import SubscriptionService  # noqa: E402
from app.state import BookData  # noqa: E402
from app.venues import build_adapter  # noqa: E402
from app.venues.base import Endpoint  # noqa: E402

SERVER = """
import asyncio, sys, time, orjson
from app.sim.server import WsConnection

async def main(venue):
    if venue == "hyperliquid":
        from app.sim.hyperliquid import HyperliquidEmulator
        emulator, market = HyperliquidEmulator(seed=3, autostep=False, idle_timeout=600), "BTC"
    elif venue == "aster":
        from app.sim.aster import AsterEmulator
        emulator, market = AsterEmulator(seed=3, autostep=False), "BTCUSDT"
    elif venue.startswith("hypercall"):
        from app.sim.hypercall import HypercallEmulator
        emulator = HypercallEmulator(seed=3, autostep=False, idle_timeout=600, rest_rate_limit=10**6)
        spot = emulator.engine.fair_price("BTC")
        second = emulator.underlyings["BTC"].expiries[1]
        market = min((inst for inst in emulator.instruments.values() if inst.und.name == "BTC" and inst.expiry_ms == second and inst.is_call),
                     key=lambda inst: abs(inst.strike - spot)).name
    elif venue == "perps-studio":
        from app.sim.perps_studio import PerpsStudioEmulator
        emulator = PerpsStudioEmulator(seed=3, autostep=False, idle_timeout=600, rest_rate_limit=10**6)
        market = "perps:hyperliquid:BTC"
    elif venue == "perpex":
        from app.sim.perpex import PerpexEmulator
        emulator, market = PerpexEmulator(seed=3, autostep=False), "BTC-USD"
    elif venue == "rails":
        from app.sim.rails import RailsEmulator
        emulator, market = RailsEmulator(seed=3, autostep=False, idle_timeout=600), "BTC-USDT"  # demo_connect's market
    else:
        from app.sim.polymarket import PolymarketEmulator
        emulator = PolymarketEmulator(seed=3, autostep=False, idle_timeout=600)
        market = emulator.model.markets[0].token_ids[0]
    await emulator.start()
    info = {"http": emulator.http_url, "ws": emulator.ws_url, "market": market, "extra": emulator.extra_urls(), **emulator.demo_credentials(),
            "connect": emulator.demo_connect()}
    if venue == "aster":
        listing = emulator.listing(market)
        info["levels_before"] = [len(listing.bids), len(listing.asks)]
        await emulator.flood(market, 1)  # nobody listens yet: this only deepens the published book
        info["levels"] = [len(listing.bids), len(listing.asks)]
    print(orjson.dumps(info).decode(), flush=True)
    send = WsConnection.send
    captured = {}

    async def greeks_flood(count):
        # The demo's Greeks frames to every portfolio subscriber (16 variants, cycled): the
        # venue has no flood of its own for these.
        from app.sim.hypercall import _frame
        now = emulator.engine.now_ms
        variants = [_frame({"type": "PortfolioUpdate", **emulator._greeks_fields(emulator._legs(now + 1000 * k)), "timestamp": now + k})
                    for k in range(16)]
        for conn in emulator._private_audience("portfolio"):
            captured[conn] = [variants[i % 16] for i in range(count)]
        return count if captured else 0

    async def capture(conn, frame, *, backpressure=False):
        frames = captured.setdefault(conn, [])
        frames.append(frame)
        if len(frames) % 256 == 0:
            await asyncio.sleep(0)  # keep answering pings while a long flood is prepared
        return True

    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command, _, argument = line.strip().partition(" ")
        started = time.perf_counter()
        if command == "prepare":  # the venue's own flood, its frames kept instead of written
            captured.clear()
            WsConnection.send = capture
            try:
                if venue == "hypercall-greeks":
                    frames = await greeks_flood(int(argument))
                else:
                    frames = await emulator.flood(market, int(argument))
            finally:
                WsConnection.send = send
            print(orjson.dumps({"frames": frames, "seconds": time.perf_counter() - started}).decode(), flush=True)
        elif command == "go":  # written through the emulator's own send path, as fast as it drains
            sent = 0
            for conn, frames in captured.items():
                for frame in frames:
                    sent += await send(conn, frame, backpressure=True)
            captured.clear()
            print(orjson.dumps({"sent": sent, "seconds": time.perf_counter() - started}).decode(), flush=True)
    await emulator.stop()

asyncio.run(main(sys.argv[1]))
"""


class FloodServer:
    """One venue's emulator in a child process. ``prepare(n)`` runs the venue's ``flood`` for the
    bench's market with every frame kept instead of written (the emulator's book and update ids
    move as in a real flood); ``go()`` then writes the kept frames to their subscribers through the
    emulator's own send path as fast as the socket drains. So what the consumer is timed on is
    receiving, not the emulator generating frames (Aster's emulator makes ~4,000 diff frames/s)."""

    def __init__(self, venue: str) -> None:
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, venue], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root, text=True
        )
        self.info = orjson.loads(self.process.stdout.readline())
        extra = tuple((name, url) for name, url in self.info["extra"].items())
        self.endpoint = Endpoint(self.info["ws"], self.info["http"], extra)
        self.market: str = self.info["market"]
        self.wallet: str | None = self.info.get("wallet")
        self.api_key: str | None = self.info.get("api_key")  # the emulator's demo key, where it wants one

    @property
    def raw_url(self) -> str:
        """The socket URL a raw client dials (with the API key, where the venue wants one)."""
        url = self.endpoint.ws_url
        return f"{url}?apiKey={self.api_key}" if self.api_key else url

    @property
    def demo_connect(self) -> dict[str, Any]:
        """``websockets.connect`` arguments of a socket the venue accepts, as its emulator's
        ``demo_connect()`` gave them (Rails: the market and its book in the URL, the token in the
        subprotocol)."""
        return self.info["connect"]

    def credentials(self) -> Credentials:
        return Credentials.of(self.info)

    def _command(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def _answer(self) -> dict[str, Any]:
        return orjson.loads(self.process.stdout.readline())

    async def prepare(self, count: int) -> None:
        self._command(f"prepare {count}")
        answer = await asyncio.to_thread(self._answer)
        if answer["frames"] != count:
            raise RuntimeError(f"the emulator prepared {answer['frames']} frames, not {count} (a second subscriber?)")

    def go(self) -> None:
        self._command("go")

    async def wait_sent(self) -> dict[str, Any]:
        return await asyncio.to_thread(self._answer)

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


# --- the raw consumer, per venue: subscribe, then count the flood's frames --------------------------


async def raw_hyperliquid(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    await ws.send(orjson.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": server.market}}).decode())
    await ws.recv()  # the ack
    return lambda message: message.get("channel") == "l2Book"


async def raw_aster(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    stream = f"{server.market.lower()}@depth@100ms"  # what perpterm subscribes to
    await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": [stream], "id": 1}).decode())
    await ws.recv()  # the ack
    return lambda message: message["data"]["e"] == "depthUpdate"


async def raw_polymarket(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    await ws.send(orjson.dumps({"assets_ids": [server.market], "type": "market", "initial_dump": True}).decode())
    await ws.recv()  # the book dump
    return lambda message: type(message) is dict and message.get("event_type") == "price_change"


async def raw_hypercall(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    await ws.send(orjson.dumps({"type": "Subscribe", "channel": "orderbook", "symbols": [server.market]}).decode())
    await ws.recv()  # the ack
    await ws.recv()  # the book sent on subscribe
    return lambda message: message.get("type") == "OrderbookUpdate"


async def raw_perps_studio(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    _, provider, symbol = server.market.split(":", 2)
    await ws.send(orjson.dumps({"event": "subscribe", "data": {"provider": provider, "channel": "orderbook", "params": {"symbol": symbol}}}).decode())
    await ws.recv()  # the ack
    await ws.recv()  # the book sent on subscribe
    return lambda message: message.get("channel") == "orderbook"


async def raw_perpex(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    await ws.send(orjson.dumps({"op": "subscribe", "channel": "orderbook", "symbol": server.market, "depth": 20, "id": 1}).decode())
    await ws.recv()  # the ack
    await ws.recv()  # the snapshot
    return lambda message: message.get("channel") == "orderbook"


def _rails_request(message: str, market: str) -> str:
    return orjson.dumps({"message": message, "content": {"market": market}}).decode()


async def raw_rails(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    # The book is subscribed in the URL (demo_connect); the snapshot comes only when asked.
    await ws.send(_rails_request("emitPublicOrderBook", server.market))
    await ws.recv()  # the snapshot
    return lambda message: message.get("resultType") == "publicOrderBookDelta"


async def rails_book(server: FloodServer) -> dict[str, Any]:
    """Rails' book of the bench's market as the venue tells it (it has no REST book): its answer
    to ``emitPublicOrderBook`` on a socket of the check's own."""
    async with websockets.connect(**server.demo_connect) as ws:
        await ws.send(_rails_request("emitPublicOrderBook", server.market))
        while (message := orjson.loads(await ws.recv()))["resultType"] != "publicOrderBook":
            pass
    rows = message["data"]["orders"]
    side = lambda kind: [(row["price"], row["quantity"]) for row in rows if row["orderType"] == kind]  # noqa: E731
    return {"bids": side("buy"), "asks": side("sell")}


async def raw_hypercall_greeks(ws: Any, server: FloodServer) -> Callable[[Any], bool]:
    await ws.send(orjson.dumps({"type": "Authenticate", "wallet": server.wallet}).decode())
    await ws.recv()  # Authenticated
    await ws.send(orjson.dumps({"type": "Subscribe", "channel": "portfolio"}).decode())
    for _ in range(4):
        await ws.recv()  # the ack, then positions, margin and Greeks sent on subscribe
    return lambda message: message.get("type") == "PortfolioUpdate" and "per_leg" in message


@dataclass(frozen=True)
class Feed:
    venue: Venue
    label: str
    default_messages: int
    raw_subscribe: Callable[[Any, FloodServer], Awaitable[Callable[[Any], bool]]]
    rest_book: Callable[[FloodServer], tuple[str, dict[str, Any]]] | None = None  # path and params
    socket_book: Callable[[FloodServer], Awaitable[dict[str, Any]]] | None = None  # a venue with no REST book
    raw_demo_connect: bool = False  # the raw loop connects as demo_connect() says (not raw_url)
    channel: Channel = Channel.BOOK  # what perpterm subscribes to (the feed's market, or none)
    events: tuple[type, ...] = (BookSnapshot, BookDelta)  # what perpterm's listener counts
    path: str = "decode, route, ingest, book sync, exact book"  # what perpterm does with each


FEEDS: dict[str, Feed] = {
    "hyperliquid": Feed(Venue.HYPERLIQUID, "Hyperliquid l2Book, 20+20 snapshot", 20_000, raw_hyperliquid),
    "aster": Feed(
        Venue.ASTER,
        "Aster diff depth, 10+10 into ~1000+1000",
        10_000,  # the emulator takes ~0.25 ms to make each diff frame: keeps the whole run near 1.5 min
        raw_aster,
        lambda server: ("/fapi/v1/depth", {"symbol": server.market, "limit": 1000}),
    ),
    "polymarket": Feed(
        Venue.POLYMARKET,
        "Polymarket price_change (YES+NO batch)",
        20_000,
        raw_polymarket,
        lambda server: ("/book", {"token_id": server.market}),
    ),
    "hypercall": Feed(
        Venue.HYPERCALL,
        "Hypercall OrderbookUpdate, 15+15 snapshot",
        20_000,
        raw_hypercall,
        lambda server: ("/orderbook", {"instrument_id": server.market, "depth": 100}),
    ),
    "hypercall-greeks": Feed(
        Venue.HYPERCALL,
        "Hypercall PortfolioUpdate Greeks, 4 legs",
        20_000,
        raw_hypercall_greeks,
        channel=Channel.POSITIONS,
        events=(Greeks,),
        path="decode, route, ingest, positions state",
    ),
    "perps-studio": Feed(
        Venue.PERPS_STUDIO,
        "perps.studio orderbook, 20+20 snapshot",
        20_000,
        raw_perps_studio,
        lambda server: ("/v1/perps/hyperliquid/markets/BTC/orderbook", {"depth": 20}),
    ),
    "perpex": Feed(
        Venue.PERPEX,
        "Perpex orderbook delta, 1 level into 20+20",
        20_000,
        raw_perpex,
        lambda server: (f"/api/v1/orderbook/{server.market}", {"depth": 20}),
    ),
    "rails": Feed(
        Venue.RAILS,
        "Rails publicOrderBookDelta, 1 level into 25+25",
        20_000,
        raw_rails,
        socket_book=rails_book,
        raw_demo_connect=True,
    ),
}


@dataclass
class Results:
    raw: list[tuple[float, float]] = field(default_factory=list)  # (wall s, cpu s) per round
    perpterm: list[tuple[float, float]] = field(default_factory=list)
    emulator: list[float] = field(default_factory=list)  # seconds the emulator took to send each raw flood
    synced_levels: tuple[int, int] | None = None


async def run_raw(feed: Feed, server: FloodServer, count: int, results: Results | None) -> None:
    dial = server.demo_connect if feed.raw_demo_connect else {"uri": server.raw_url}
    async with websockets.connect(**dial, max_size=1 << 24, ping_interval=None) as ws:
        counted = await feed.raw_subscribe(ws, server)
        await server.prepare(count)
        await asyncio.sleep(0.05)
        server.go()
        received = 0
        wall, cpu = time.perf_counter(), time.process_time()
        while received < count:
            if counted(orjson.loads(await ws.recv(decode=False))):
                received += 1
        elapsed = time.perf_counter() - wall, time.process_time() - cpu
    sent = await server.wait_sent()
    if results is not None:
        results.raw.append(elapsed)
        results.emulator.append(sent["seconds"])


async def run_perpterm(
    feed: Feed, server: FloodServer, count: int, results: Results | None, profiler: cProfile.Profile | None = None
) -> None:
    service = SubscriptionService([build_adapter(feed.venue, server.endpoint, server.wallet, server.credentials())])
    done = asyncio.Event()
    received = 0

    def on_event(event: object) -> None:
        nonlocal received
        if isinstance(event, feed.events):
            received += 1
            if received >= count:
                done.set()

    book = feed.channel is Channel.BOOK
    handle = service.subscribe(feed.venue, feed.channel, server.market if book else "")
    deadline = time.monotonic() + 30
    while handle.stream.state is not StreamState.LIVE:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{feed.venue} {feed.channel} never went live: {handle.stream.state} {handle.stream.reason}")
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    data = handle.stream.data
    assert isinstance(data, BookData) or not book
    levels = (len(data.book.bids.prices), len(data.book.asks.prices)) if book else None
    handle.listener = on_event
    await server.prepare(count)
    await asyncio.sleep(0.05)
    if profiler is not None:
        profiler.enable()
    server.go()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        await asyncio.wait_for(done.wait(), 300)
    except TimeoutError:
        raise RuntimeError(f"{feed.venue}: {received}/{count} events, stream {handle.stream.state} {handle.stream.reason}") from None
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
    await server.wait_sent()
    stream = handle.stream
    assert stream.state is StreamState.LIVE and stream.resyncs == 0, (stream.state, stream.reason)
    assert not book or not data.book.crossed
    if feed.rest_book is not None or feed.socket_book is not None:
        await check_book(feed, server, data)
    handle.close()
    await service.close()
    if results is not None:
        results.perpterm.append(elapsed)
        results.synced_levels = levels


async def check_book(feed: Feed, server: FloodServer, data: BookData) -> None:
    """perpterm's book must equal the emulator's after the flood (exact, level for level)."""
    if feed.socket_book is not None:
        raw = await feed.socket_book(server)
    else:
        assert feed.rest_book is not None
        path, params = feed.rest_book(server)
        rest = RestClient(server.endpoint.http_url, headers={"X-API-Key": server.api_key} if server.api_key else None)
        try:
            raw = await rest.get_json(path, params)
        finally:
            await rest.close()

    def exact(levels: Any) -> dict[Decimal, Decimal]:
        pairs = ((level["price"], level["size"]) if isinstance(level, dict) else level[:2] for level in levels)
        return {Decimal(str(price)): Decimal(str(size)) for price, size in pairs}  # str: Hypercall's are JSON numbers

    raw = raw.get("result", raw)  # Hypercall answers in a JSON-RPC envelope
    bids, asks = data.book.levels()
    if (exact(bids), exact(asks)) != (exact(raw["bids"]), exact(raw["asks"])):
        raise AssertionError(f"{feed.venue}: perpterm's book differs from the emulator's after the flood")


def parse_messages(text: str, venues: list[str]) -> dict[str, int]:
    counts = {venue: FEEDS[venue].default_messages for venue in venues}
    if text.isdigit():
        return dict.fromkeys(venues, int(text))
    for item in filter(None, text.split(",")):
        venue, _, value = item.partition("=")
        if venue not in FEEDS or not value.isdigit():
            raise SystemExit(f"--messages: expected N or venue=N[,venue=N], got {item!r}")
        counts[venue] = int(value)
    return counts


def print_table(venues: list[str], counts: dict[str, int], results: dict[str, Results], rounds: int) -> None:
    def rate(samples: list[tuple[float, float]], count: int) -> float:
        return statistics.median(count / wall for wall, _ in samples)

    def cpu_us(samples: list[tuple[float, float]], count: int) -> float:
        return statistics.median(cpu / count * 1e6 for _, cpu in samples)

    def busy(samples: list[tuple[float, float]]) -> float:
        return statistics.median(cpu / wall for wall, cpu in samples)

    print(f"Ingest, loopback, emulator in a child process; median of {rounds} interleaved rounds")
    print()
    print("| feed | consumer | msgs | msgs/s | CPU µs/msg | ratio (msgs/s) | ratio (CPU) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    notes = []
    for venue in venues:
        feed, result, count = FEEDS[venue], results[venue], counts[venue]
        raw_rate, ours_rate = rate(result.raw, count), rate(result.perpterm, count)
        raw_cpu, ours_cpu = cpu_us(result.raw, count), cpu_us(result.perpterm, count)
        print(f"| {feed.label} | raw websockets + orjson.loads | {count:,} | {raw_rate:,.0f} | {raw_cpu:.1f} | 1.00 | 1.00 |")
        print(
            f"| {feed.label} | perpterm ({feed.path}) | {count:,} | {ours_rate:,.0f} | "
            f"{ours_cpu:.1f} | {ours_rate / raw_rate:.2f} | {raw_cpu / ours_cpu:.2f} |"
        )
        emulator_rate = statistics.median(count / seconds for seconds in result.emulator)
        note = f"{venue}: raw busy {busy(result.raw):.0%} of wall, perpterm {busy(result.perpterm):.0%}; the emulator wrote {emulator_rate:,.0f} msgs/s to the raw loop"
        if result.synced_levels is not None and venue == "aster":
            bids, asks = result.synced_levels
            note += f"; perpterm synced a {bids} + {asks} level book from REST (limit 1000)"
        notes.append(note)
    print()
    for note in notes:
        print(f"- {note}")


async def profile(venue: str, count: int, top: int) -> None:
    feed = FEEDS[venue]
    server = FloodServer(venue)
    try:
        await run_perpterm(feed, server, min(count, 1000), None)  # warm-up
        profiler = cProfile.Profile()
        await run_perpterm(feed, server, count, None, profiler)
    finally:
        server.close()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    print(f"{feed.label}: perpterm under cProfile, {count} msgs, {total / count * 1e6:.1f} µs/msg profiled (inflated)")
    print()
    print("| function | calls/msg | own µs/msg | own % | incl. µs/msg |")
    print("|---|---:|---:|---:|---:|")
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    for (filename, line, name), (_, calls, own, cumulative, _) in rows:
        where = f"{Path(filename).name}:{line}({name})" if line else name
        print(f"| {where} | {calls / count:.2f} | {own / count * 1e6:.2f} | {own / total:.1%} | {cumulative / count * 1e6:.2f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venues", default=",".join(FEEDS), help="comma-separated: " + ", ".join(FEEDS))
    parser.add_argument("--messages", default="", help="N for every venue, or venue=N[,venue=N] (default: 20000 each, aster 10000)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", metavar="VENUE", choices=list(FEEDS), help="profile perpterm's path on VENUE instead")
    parser.add_argument("--top", type=int, default=25, help="rows of the --profile table")
    args = parser.parse_args()
    venues = [venue for venue in args.venues.split(",") if venue]
    unknown = [venue for venue in venues if venue not in FEEDS]
    if unknown:
        parser.error(f"unknown venue(s) {', '.join(unknown)}; known: {', '.join(FEEDS)}")
    counts = parse_messages(args.messages, list(FEEDS))
    if args.profile:
        await profile(args.profile, counts[args.profile], args.top)
        return
    servers: dict[str, FloodServer] = {}
    results = {venue: Results() for venue in venues}
    try:
        for venue in venues:
            servers[venue] = FloodServer(venue)
        for venue in venues:  # warm up both paths (imports, caches, the emulator's frame caches)
            await run_raw(FEEDS[venue], servers[venue], 1000, None)
            await run_perpterm(FEEDS[venue], servers[venue], 1000, None)
        for index in range(args.rounds):
            for venue in venues:
                feed, server, count = FEEDS[venue], servers[venue], counts[venue]
                if index % 2 == 0:
                    await run_raw(feed, server, count, results[venue])
                    await run_perpterm(feed, server, count, results[venue])
                else:
                    await run_perpterm(feed, server, count, results[venue])
                    await run_raw(feed, server, count, results[venue])
    finally:
        for server in servers.values():
            server.close()
    print_table(venues, counts, results, args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
