"""Poison frames slipped between a venue's good frames on a live connection, for every venue.

The venue's emulator runs on 127.0.0.1 without autostep (its market moves only on ``advance``), a
:class:`~app.service.SubscriptionService` holds one book stream on it, and each round injects poison
into the socket (``EmulatorServer.inject``, in order with the venue's own frames), then lets the
market move so the venue pushes a good book. After every round:

* the connection is still LIVE and never reconnected (the emulator accepted no other socket);
* ``decode_errors`` grew by exactly the number of poison frames the adapter refuses (counted with
  a second adapter of the same venue, offline), plus one marker frame that ends each batch;
* a frame that decodes but cannot be a true book (crossed, a price twice) caused exactly one
  resync; others caused none (for a venue whose book message is a delta, a price named twice is
  two changes of one level, not an impossible book: no resync is expected from it);
* the stream is LIVE and its book equals the emulator's, and it moved (its generation grew).

Poison is built from the case's ``book_message`` (a real-shaped book of the stream's own market
with hostile values in it) and from venue-neutral junk, so every venue gets the same treatment.
For a venue that pushes deltas (``book_is_delta``) the book message is a delta that continues the
client's chain without the venue knowing, so a round that gets one applied ends in a gap at the
venue's next update, which must resync the book to the venue's (within the round's wait). Where
the chain is a plain count (Perpex), the venue's next update would repeat the forged number and be
dropped as a duplicate: the case's ``reveal_forged_book`` makes it a gap instead; where nothing
numbers the deltas (Rails), it has the venue send its whole book, as when the client asks.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

import app.service as service_module
from app.model import Channel, ConnectionState, StreamState
from app.service import Subscription, SubscriptionService
from app.sim.server import EmulatorServer
from app.supervisor import Backoff, Connection
from app.venues.base import VenueAdapter
from tests.conformance.mutations import JSON_DEPTH_LIMIT, Raw, deep, dumps, nodes, set_at
from tests.conformance.venues import CASES, VenueCase, case_ids
from tests.conftest import FAST_LIVENESS, eventually

MARKER = "\x00conformance marker: not a frame\x00"  # ends each batch; refused by every adapter
HOSTILE_TEXT = "[bold red]BOOM[/] [link=file:///etc/passwd]x[/link] \x1b[2J\x1b]0;pwned\x07\x1b[31m \u202eevil\u202c \x00"
NEST = JSON_DEPTH_LIMIT - 9  # nested as deep as a field of a book frame can be while still parsing

Frames = list[str | bytes]


class Kit:
    """What poison is made of: the emulator's current book of the stream's market, and the venue's
    book message with any levels in it."""

    def __init__(self, case: VenueCase, server: EmulatorServer) -> None:
        self.case, self.server = case, server
        self.bids, self.asks = case.emulator_book(server, case.book_market)
        self.bid, self.ask = self.bids[0], self.asks[0]  # best levels, (price, size)

    def message(self, bids: Any, asks: Any, market: str | None = None) -> Any:
        return self.case.book_message(self.server, market or self.case.book_market, bids, asks)

    def book(self, bids: Any, asks: Any, market: str | None = None) -> str:
        """The book message as frame text (NaN, infinities and :class:`Raw` tokens written as is)."""
        return dumps(self.message(bids, asks, market))


@dataclass
class Poison:
    """One kind of poison, and whether a frame of it that decodes must force a resync (``resync``;
    ``delta_resync`` where a delta book message differs, ``None``: the same)."""

    name: str
    build: Callable[[Kit], Frames]
    resync: bool = False
    delta_resync: bool | None = None

    def resyncs(self, case: VenueCase) -> bool:
        if case.book_is_delta and self.delta_resync is not None:
            return self.delta_resync
        return self.resync


def _wrong_types(kit: Kit) -> Frames:
    """A one-level book with each node, one at a time, replaced by a value of another type (an
    object by an array, an array by an object, a string by a number, a number by a string...)."""
    swap = {dict: [], list: {}, str: 12345, int: "12345", float: "1.5", bool: "true", type(None): 0}
    return [
        dumps(set_at(kit.message([kit.bid], [kit.ask]), path, swap.get(type(node))))
        for path, node in nodes(kit.message([kit.bid], [kit.ask]))
        if path
    ]


def _retagged(kit: Kit) -> Frames:
    """The book message with its type names changed: every top-level string to an unknown word,
    every top-level key renamed, the whole message wrapped in an array or an unknown object."""
    message = kit.message([kit.bid], [kit.ask])
    frames: Frames = [dumps([message]), dumps({"zz_unknown_channel": message})]
    if isinstance(message, dict):
        frames.append(dumps({k: ("zz_unknown_channel" if isinstance(v, str) else v) for k, v in message.items()}))
        frames.append(dumps({f"zz_{k}": v for k, v in message.items()}))
    return frames


POISONS: tuple[Poison, ...] = (
    Poison("malformed JSON", lambda k: ["\x00 not json {", "{", "", '{"a":', "[1,2", "{}", "[]", "null", "123", '"text"', "{'a': 1}"]),
    Poison("binary garbage", lambda k: [b"\x00\xff\xfe\x80garbage", b"", bytes(range(256)), b"\xed\xa0\x80", k.book([], []).encode()[:-3] + b"\xff"]),
    Poison("hostile text", lambda k: [HOSTILE_TEXT, dumps(HOSTILE_TEXT), dumps({"message": HOSTILE_TEXT})]),
    Poison("wrong types", _wrong_types),
    Poison("NaN and infinite prices", lambda k: [
        k.book([(math.nan, k.bid[1])], [k.ask]),
        k.book([("NaN", k.bid[1])], [k.ask]),
        k.book([k.bid], [("Infinity", k.ask[1])]),
        k.book([k.bid], [(-math.inf, k.ask[1])]),
    ]),
    Poison("huge numbers", lambda k: [
        k.book([("9" * 41, k.bid[1])], [k.ask]),
        k.book([(k.bid[0], "9" * 5000)], [k.ask]),
        k.book([(1e308, k.bid[1])], [k.ask]),
        k.book([(Raw("1e400"), k.bid[1])], [k.ask]),
        k.book([(k.bid[0], 10**30)], [k.ask]),
        k.book([(k.bid[0], Raw("1" * 5000))], [k.ask]),
    ]),
    Poison("negative sizes and prices", lambda k: [
        k.book([(k.bid[0], "-1")], [k.ask]),
        k.book([k.bid], [(k.ask[0], "-0.5")]),
        k.book([("-" + k.bid[0], k.bid[1])], [k.ask]),
    ]),
    Poison("unknown channels and types", _retagged),
    Poison("deep nesting", lambda k: [deep(NEST).text, deep(NEST, "{").text, k.book([(deep(NEST - 10), k.bid[1])], [k.ask])]),
    Poison("other markets, hostile names", lambda k: [
        k.book([k.bid], [k.ask], market="ZZZ-NOT-LISTED"),
        k.book([k.bid], [k.ask], market=HOSTILE_TEXT[:60]),
    ]),
    Poison("a plausible wrong book", lambda k: [k.book([k.bid], [k.ask])]),  # shown until the next push
    Poison("crossed book", lambda k: [k.book([(k.ask[0], "1"), *k.bids], k.asks)], resync=True),
    Poison("a price twice", lambda k: [k.book([k.bid, *k.bids], k.asks)], resync=True, delta_resync=False),
)


class Live:
    """A service with one book stream on a running emulator, and the round driver."""

    def __init__(self, case: VenueCase, server: EmulatorServer, service: SubscriptionService, handle: Subscription, accepted: int) -> None:
        self.case, self.server, self.service, self.handle = case, server, service, handle
        self.accepted = accepted  # the emulator's count of accepted sockets once ours was open
        self.reference: VenueAdapter = case.offline_adapter()
        self.rounds = 0

    @property
    def connection(self) -> Connection:
        (connection,) = self.service.connections(self.case.venue)
        return connection

    def refused(self, frame: str | bytes) -> bool:
        """Whether the adapter refuses ``frame`` (any exception: the supervisor counts them all)."""
        try:
            self.reference.decode(frame)
        except Exception:  # noqa: BLE001
            return True
        return False

    async def round(self, poison: Poison) -> None:
        case, server, stream, connection = self.case, self.server, self.handle.stream, self.connection
        label = f"round {self.rounds} ({poison.name})"
        frames = poison.build(Kit(case, server))
        refused = sum(map(self.refused, frames))
        semantic = sum(1 for frame in frames if not self.refused(frame)) if poison.resyncs(case) else 0
        errors, resyncs, generation = connection.decode_errors, stream.resyncs, stream.data.generation
        assert self.refused(MARKER)

        sent = await server.inject(*frames, MARKER)
        assert sent == len(frames) + 1, f"{label}: the socket closed while poison was sent"
        await eventually(lambda: connection.decode_errors >= errors + refused + 1, what=f"{label}: poison counted")
        assert connection.decode_errors == errors + refused + 1, (
            f"{label}: {connection.decode_errors - errors - 1} decode errors counted for {refused} refused frames"
        )
        assert stream.resyncs - resyncs == semantic, f"{label}: {stream.resyncs - resyncs} resyncs, expected {semantic}"

        if case.reveal_forged_book is not None:
            await case.reveal_forged_book(server, case.book_market)
        await server.advance(case.advance_ms)  # the market moves: the venue pushes a good book
        want = case.emulator_book(server, case.book_market)
        try:
            await eventually(
                lambda: stream.state is StreamState.LIVE and stream.data.book.levels() == want and stream.data.generation > generation,
                what=f"{label}: the book equal to the emulator's after the next push",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; stream {stream.state} ({stream.reason!r}), generation {generation} -> "
                                 f"{stream.data.generation}, book top {stream.data.book.levels()[0][:1]} {stream.data.book.levels()[1][:1]}, "
                                 f"emulator top {want[0][:1]} {want[1][:1]}") from None
        assert connection.state is ConnectionState.LIVE, f"{label}: connection {connection.state} {connection.reason}"
        assert connection.reconnects == 0 and server.stats.connections_accepted == self.accepted, f"{label}: reconnected"
        assert not stream.data.book.crossed
        self.rounds += 1


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=CASES, ids=case_ids)
async def venue_emulator(request: pytest.FixtureRequest) -> AsyncIterator[tuple[VenueCase, EmulatorServer]]:
    """The case's emulator, shared by the module's tests (building a market takes a while); each
    test has its own service and socket on it."""
    case: VenueCase = request.param
    async with case.start_emulator() as server:
        yield case, server


# The service refetches one stream's snapshot at most every 2 s (not to hammer a venue that keeps
# sending bad books). A delta venue resyncs after every round that got a poison delta applied, so
# at that pace one connection's 26 rounds would spend most of their time waiting; the spacing is
# shortened here (what happens after a resync is the same, only sooner).
RESYNC_SPACING = 0.2


@pytest_asyncio.fixture(loop_scope="module")
async def live(venue_emulator: tuple[VenueCase, EmulatorServer], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Live]:
    case, server = venue_emulator
    monkeypatch.setattr(service_module, "RESYNC_SPACING", RESYNC_SPACING)  # raises if it is renamed
    service = SubscriptionService(
        [case.adapter(case.endpoint(server))],
        liveness={case.venue: FAST_LIVENESS},
        backoff=lambda: Backoff(initial=0.05, maximum=0.4),
    )
    try:
        accepted = server.stats.connections_accepted
        handle = service.subscribe(case.venue, Channel.BOOK, case.book_market)
        await eventually(lambda: handle.stream.state is StreamState.LIVE, what=f"{case.name} book live")
        await server.advance(case.advance_ms)
        want = case.emulator_book(server, case.book_market)
        await eventually(lambda: handle.stream.data.book.levels() == want, what="book equal to the emulator's")
        (connection,) = service.connections(case.venue)
        assert connection.decode_errors == 0 and connection.reconnects == 0
        assert server.stats.connections_accepted == accepted + 1
        yield Live(case, server, service, handle, accepted + 1)
    finally:
        await service.close()
        await eventually(lambda: not server.connections, what="the emulator saw the socket close")


pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("poison", POISONS, ids=lambda p: p.name.replace(" ", "-"))
async def test_poison_kind(live: Live, poison: Poison) -> None:
    """One kind of poison on a fresh connection, followed by the market moving."""
    await live.round(poison)


async def test_poison_between_good_frames(live: Live) -> None:
    """Every kind of poison in turn on one connection, then all again in reverse order: the
    connection never drops and the book keeps following the venue."""
    for poison in POISONS:
        await live.round(poison)
    for poison in reversed(POISONS):
        await live.round(poison)
    assert live.rounds == 2 * len(POISONS)
