"""The venues under test, and the good frames each one really sends.

:data:`CASES` is the one table of the harness: one :class:`VenueCase` per adapter in
:data:`app.venues.ADAPTERS` (a test fails when an adapter has no case). Everything else is
generic: :func:`capture` starts the case's emulator, connects over a real WebSocket, subscribes with
the adapter's own messages and records what comes back; the fuzz tests mutate those frames, and the
poison test uses the case's book hooks.

Adding a venue (its adapter in ``ADAPTERS``, its emulator on :class:`app.sim.server.EmulatorServer`)::

    ASTER = VenueCase(
        venue=Venue.ASTER,
        emulator=AsterEmulator,
        sample_keys=keys(Venue.ASTER, (Channel.BOOK, "BTCUSDT"), (Channel.TRADES, "BTCUSDT"), ...),
        bad_keys=keys(Venue.ASTER, (Channel.BOOK, "NOPE")),   # or () if it cannot refuse one
        book_market="ETHUSDT",
        emulator_book=lambda server, market: ...,            # its book as ([(px, sz)], [(px, sz)])
        book_message=lambda server, market, bids, asks: {...},  # a book frame (JSON value) of these levels
    )
    CASES = (HYPERLIQUID, ASTER)
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

from app.model import Channel, Level, StreamKey, Venue, freeze_params
from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.server import EmulatorServer
from app.venues import ADAPTERS, build_adapter
from app.venues.base import Endpoint, VenueAdapter
from tests.conformance.mutations import Pool, strings_in, trimmed

BookLevels = tuple[list[Level], list[Level]]


def keys(venue: Venue, *specs: tuple[Any, ...]) -> tuple[StreamKey, ...]:
    """Stream keys from ``(channel, market[, params])`` tuples."""
    return tuple(
        StreamKey(venue, Channel(spec[0]), spec[1] if len(spec) > 1 else "", freeze_params(spec[2] if len(spec) > 2 else None))
        for spec in specs
    )


@dataclass(frozen=True, eq=False)
class VenueCase:
    """What the harness needs to know about one venue; everything else it derives.

    ``sample_keys``: streams to capture good frames from, at least one per channel the adapter has
    (more where frames differ, e.g. a spot and a perp ticker). ``bad_keys``: subscriptions the venue
    refuses, to capture its error frames. ``book_market``: the market of the live poison test.
    ``emulator_book(server, market)``: the emulator's current book, best first, as the client's
    ``OrderBook.levels()`` shows it. ``book_message(server, market, bids, asks)``: a JSON value the
    venue would push as a full book of ``market`` with exactly these levels (any types: the poison
    test puts hostile values in them), timestamped now; for a venue that pushes deltas, the message
    the client applies as a whole book (a partial-depth snapshot, or a delta continuing the chain).
    """

    venue: Venue
    emulator: type[EmulatorServer]
    sample_keys: tuple[StreamKey, ...]
    bad_keys: tuple[StreamKey, ...]
    book_market: str
    emulator_book: Callable[[Any, str], BookLevels]
    book_message: Callable[[Any, str, Sequence[Any], Sequence[Any]], Any]
    emulator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    seed: int = 7
    advance_ms: int = 1000  # one step of the emulator's clock: long enough for every periodic push

    @property
    def name(self) -> str:
        return str(self.venue)

    def adapter(self, endpoint: Endpoint) -> VenueAdapter:
        return build_adapter(self.venue, endpoint)

    def start_emulator(self, **overrides: Any) -> EmulatorServer:
        """The case's emulator, deterministic (``autostep=False``): ``async with`` it."""
        kwargs = {"seed": self.seed, "autostep": False, "idle_timeout": 30.0, **self.emulator_kwargs, **overrides}
        return self.emulator(**kwargs)

    def offline_adapter(self) -> VenueAdapter:
        """An adapter for decoding only (its endpoint is never contacted)."""
        return self.adapter(Endpoint("ws://127.0.0.1:9/ws", "http://127.0.0.1:9"))


# --- Hyperliquid ----------------------------------------------------------------------------------


def _hyperliquid_book(server: HyperliquidEmulator, coin: str) -> BookLevels:
    bids, asks = server.engine.book(server.listings[coin].spec.symbol)
    return [(px, sz) for px, sz, _ in bids], [(px, sz) for px, sz, _ in asks]


def _hyperliquid_book_message(server: HyperliquidEmulator, coin: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    side = lambda levels: [{"px": px, "sz": sz, "n": 1} for px, sz in levels]  # noqa: E731
    return {"channel": "l2Book", "data": {"coin": coin, "time": server.now_ms(), "levels": [side(bids), side(asks)]}}


HYPERLIQUID = VenueCase(
    venue=Venue.HYPERLIQUID,
    emulator=HyperliquidEmulator,
    emulator_kwargs={"greeting": True, "book_interval": 0.5},
    sample_keys=keys(
        Venue.HYPERLIQUID,
        (Channel.BOOK, "BTC"),
        (Channel.BOOK, "ETH", {"nSigFigs": 5, "mantissa": 2}),
        (Channel.TRADES, "BTC"),
        (Channel.TRADES, "@1"),
        (Channel.CANDLES, "ETH", {"interval": "1m"}),
        (Channel.TICKER, "BTC"),
        (Channel.TICKER, "@1"),  # spot: channel activeSpotAssetCtx, no funding
        (Channel.ALL_MIDS,),
        (Channel.BBO, "SOL"),
    ),
    bad_keys=keys(Venue.HYPERLIQUID, (Channel.BOOK, "NOPE"), (Channel.CANDLES, "NOPE", {"interval": "1m"})),
    book_market="ETH",
    emulator_book=_hyperliquid_book,
    book_message=_hyperliquid_book_message,
)

#: Every venue the harness runs; one per adapter in ``app.venues.ADAPTERS``.
CASES: tuple[VenueCase, ...] = (HYPERLIQUID,)


def case_ids(case: VenueCase) -> str:
    return case.name


def missing_cases() -> set[Venue]:
    return set(ADAPTERS) - {case.venue for case in CASES}


# --- capture --------------------------------------------------------------------------------------


@dataclass(repr=False)
class RestCall:
    """One REST-using adapter operation and the bodies the emulator answered it with, in order."""

    name: str
    run: Callable[[VenueAdapter], Any]  # adapter -> coroutine (snapshot(key) or markets())
    responses: list[Any]
    markets: bool = False

    def __repr__(self) -> str:
        return f"<RestCall {self.name}: {len(self.responses)} answer(s)>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(repr=False)
class Samples:
    """What a venue's emulator really sent: raw WebSocket frames and REST answers."""

    case: VenueCase
    frames: list[str | bytes]
    rest: list[RestCall]

    def __repr__(self) -> str:  # short: hypothesis prints the arguments of a failing test
        return f"<Samples of {self.case.name}: {len(self.frames)} frames, {len(self.rest)} REST operations>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))

    @functools.cached_property
    def documents(self) -> list[Any]:
        """The frames that are JSON, parsed (for structural mutation)."""
        out = []
        for frame in self.frames:
            try:
                out.append(orjson.loads(frame))
            except orjson.JSONDecodeError:
                pass
        return out

    @functools.cached_property
    def small_documents(self) -> list[Any]:
        """:attr:`documents` with long arrays cut to three items (quicker to mutate)."""
        return [trimmed(doc) for doc in self.documents]

    @functools.cached_property
    def small_rest(self) -> list[RestCall]:
        """:attr:`rest` with long arrays in the answers cut to three items."""
        return [RestCall(c.name, c.run, [trimmed(body) for body in c.responses], c.markets) for c in self.rest]

    @functools.cached_property
    def words(self) -> list[str]:
        """Every string in the good frames and REST answers (channel names, coins, keys)."""
        return strings_in([*self.small_documents, *(body for call in self.small_rest for body in call.responses)])

    @functools.cached_property
    def frame_pool(self) -> Pool:
        """The good frames (small) for the mutation strategies."""
        return Pool(f"{self.case.name} frames", self.small_documents, self.words)

    @functools.cached_property
    def rest_pool(self) -> Pool:
        """The good REST answers (small), to graft from."""
        return Pool(f"{self.case.name} REST", [b for call in self.small_rest for b in call.responses], self.words)


class _Recorder:
    """Stands in for the adapter's RestClient: forwards every request method (``post_json``,
    ``get_json``, ...) to the real one and records each answer."""

    def __init__(self, rest: Any) -> None:
        self.rest = rest
        self.responses: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.rest, name)
        if not name.endswith("_json"):
            return method

        async def request(*args: Any, **kwargs: Any) -> Any:
            response = await method(*args, **kwargs)
            self.responses.append(copy.deepcopy(response))
            return response

        return request

    async def close(self) -> None:
        await self.rest.close()


class Replay:
    """A RestClient that answers every request method (``post_json``, ``get_json``, ...) with
    prepared bodies, in order, without a socket."""

    def __init__(self, responses: Sequence[Any]) -> None:
        self.responses = list(responses)
        self.calls = 0
        self.limiter = None

    def __getattr__(self, name: str) -> Any:
        if not name.endswith("_json"):
            raise AttributeError(name)

        async def request(path: str, *args: Any, **kwargs: Any) -> Any:
            if self.calls >= len(self.responses):
                raise AssertionError(f"unexpected REST request {name} {path}")
            self.calls += 1
            return self.responses[self.calls - 1]

        return request

    async def close(self) -> None:
        pass


async def _drain(ws: Any, quiet: float = 0.3) -> list[str | bytes]:
    """Frames received until the socket has been quiet for ``quiet`` seconds."""
    frames: list[str | bytes] = []
    while True:
        try:
            frames.append(await asyncio.wait_for(ws.recv(), quiet))
        except TimeoutError:
            return frames


class _Socket:
    """One captured connection: the keys it carries and the adapter's messages for them. Uses the
    adapter's connection API as it stands: ``group``/``dial``/``subscribe_messages`` where the
    adapter has them, else ``ws_url``/``subscribe_message``."""

    def __init__(self, adapter: VenueAdapter, keys: list[StreamKey], group: Any = None) -> None:
        self.adapter, self.keys, self.group = adapter, keys, group
        self.ws: Any = None
        self.requests = itertools.count(1)

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        adapter = self.adapter
        options: dict[str, Any] = {"max_size": None, "ping_interval": None}
        if hasattr(adapter, "dial"):
            dial = await adapter.dial(self.group)
            url = dial.url
            if dial.headers:
                options["additional_headers"] = list(dial.headers)
            if dial.subprotocols:
                options["subprotocols"] = list(dial.subprotocols)
        else:
            url = adapter.ws_url()  # type: ignore[attr-defined]
        self.ws = await stack.enter_async_context(websockets.connect(url, **options))

    def subscribe(self, keys: list[StreamKey], *, initial: bool) -> list[str]:
        method = getattr(self.adapter, "subscribe_messages", None)
        if method is None:
            return [self.adapter.subscribe_message(key) for key in keys]
        return method(keys, next(self.requests), **_accepted(method, initial=initial))

    def unsubscribe(self, keys: list[StreamKey]) -> list[str]:
        method = getattr(self.adapter, "unsubscribe_messages", None)
        if method is None:
            return [self.adapter.unsubscribe_message(key) for key in keys]
        remaining = [key for key in self.keys if key not in keys]
        return method(keys, next(self.requests), **_accepted(method, remaining=remaining))

    async def send(self, messages: Sequence[str]) -> None:
        for message in messages:
            await self.ws.send(message)


def _accepted(method: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The keyword options ``method`` takes (the adapter connection API is still growing)."""
    parameters = inspect.signature(method).parameters
    return {name: value for name, value in options.items() if name in parameters}


def _sockets(adapter: VenueAdapter, keys: Sequence[StreamKey]) -> list[_Socket]:
    if not hasattr(adapter, "group"):
        return [_Socket(adapter, list(keys))]
    groups: dict[Any, list[StreamKey]] = {}
    for key in keys:
        groups.setdefault(adapter.group(key), []).append(key)
    return [_Socket(adapter, members, group) for group, members in groups.items()]


async def capture_async(case: VenueCase, steps: int = 3) -> Samples:
    """Run the case's emulator and record its frames and REST answers over real sockets: the
    greeting, a pong, the acks and first frames of every sample key (in one request per socket),
    the errors for the bad keys (in a request of their own), ``steps`` market moves, and an
    unsubscribe ack."""
    frames: list[str | bytes] = []
    rest: list[RestCall] = []
    async with case.start_emulator() as server, contextlib.AsyncExitStack() as stack:
        adapter = case.adapter(Endpoint(server.ws_url, server.http_url))
        stack.push_async_callback(adapter.rest.close)
        sockets = _sockets(adapter, case.sample_keys)
        bad = _sockets(adapter, case.bad_keys)
        for socket in (*sockets, *bad):
            await socket.open(stack)

        async def drain(quiet: float) -> None:
            for received in await asyncio.gather(*(_drain(socket.ws, quiet) for socket in (*sockets, *bad))):
                frames.extend(received)

        await drain(0.3)  # greetings, if the venue sends them
        for socket in (*sockets, *bad):
            if (ping := adapter.ping_message()) is not None:
                await socket.ws.send(ping)
        for socket in sockets:
            await socket.send(socket.subscribe(socket.keys, initial=True))
        for socket in bad:
            await socket.send(socket.subscribe(socket.keys, initial=True))
        await drain(0.3)  # acks, errors, first snapshots and backlogs
        for _ in range(steps):
            await server.advance(case.advance_ms)
            await drain(0.1)
        await sockets[0].send(sockets[0].unsubscribe(sockets[0].keys[:1]))
        await drain(0.1)
        for key in case.sample_keys:
            rest.append(await _record(adapter, f"snapshot {key}", lambda a, key=key: a.snapshot(key)))
        rest.append(await _record(adapter, "markets", lambda a: a.markets(), markets=True))
    return Samples(case, frames, [call for call in rest if call.responses])


async def _record(adapter: VenueAdapter, name: str, run: Callable[[VenueAdapter], Any], markets: bool = False) -> RestCall:
    real = adapter.rest
    recorder = _Recorder(real)
    adapter.rest = recorder  # type: ignore[assignment]
    try:
        await run(adapter)
    finally:
        adapter.rest = real
    return RestCall(name, run, recorder.responses, markets)


@functools.cache
def capture(case: VenueCase) -> Samples:
    """:func:`capture_async`, once per venue per test session (call it outside an event loop)."""
    return asyncio.run(capture_async(case))
