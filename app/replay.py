"""Replaying a recording (``perpterm replay FILE``): the recorded frames and REST answers go
through the same adapters, connections' routing, book syncs and service ingest as they did live.

* :func:`read_recording` reads and checks a recording (:mod:`app.record` describes the format); a
  line that is not one raises :class:`ReplayError` naming the file and the line.
* :class:`ReplayService` is a :class:`~app.service.SubscriptionService` whose connections are
  :class:`ReplayConnection`\\ s, one per recorded connection label, without sockets: a WebSocket
  line goes through :meth:`Connection._receive <app.supervisor.Connection._receive>` (decode, route,
  ingest) and a REST line through the adapter's ``parse_snapshot`` into the service's ``ingest``,
  exactly the calls the live client made in the same order. A stream is created when its first
  line arrives: the adapter's ``key_for_route`` (with the group the connection label names) or
  ``key_for_request`` gives its key, and ``state_for`` its state, so Aster books sync by their
  update ids and a gap clears the book and waits, as live, for the next REST snapshot of that
  stream (the recording holds the one the live client fetched). A refetch is never made: the
  recording has it or the live client never got it.
* Where the live client swapped a replacement connection's copy of a stream in (a planned
  rotation, or a market left and taken up again on a new connection), the replay does so too: the
  newer copy is shown once it is live, and the older connection's frames for it are dropped.
* :func:`main` is ``perpterm replay FILE [--speed X] [--headless [--dump books]]``: the dashboard
  driven by the recording at its recorded pace (scaled by ``--speed``; 0 is as fast as possible),
  or, headless, the final book of every (venue, market) as one JSON object.

A reconnect is in the recording too (the label's session suffix, ``hyperliquid#1/2``): there the
replay clears the connection's streams and starts them over, as the live client did.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import math
import sys
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from app.logsafe import escape
from app.model import (
    Channel,
    ConnectionState,
    MarketEvent,
    MarketInfo,
    StreamKey,
    StreamState,
    Venue,
)
from app.record import FIELDS, KINDS, group_of_label, split_session
from app.service import Subscription, SubscriptionService
from app.state import BookData, Stream
from app.supervisor import Connection
from app.venues import ADAPTERS, build_adapter
from app.venues.base import Data, Decoded, Endpoint, VenueAdapter

# Adapters of a replay never connect; their REST client is never used.
REPLAY_ENDPOINT = Endpoint("ws://replay.invalid/ws", "http://replay.invalid")
YIELD_EVERY = 200  # lines fed between yields to the event loop when replaying as fast as possible

Books = dict[str, dict[str, dict[str, list[list[str]]]]]


class ReplayError(Exception):
    """A recording that cannot be replayed; the message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a recording."""

    line: int
    t: float
    venue: Venue
    conn: str
    kind: str  # "ws" | "rest"
    path: str
    frame: str | bytes


def read_recording(path: Path | str) -> Iterator[Entry]:
    """Every line of the recording at ``path``, checked; blank lines are skipped."""
    try:
        file = open(path, "rb")
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read: {exc.strerror}") from None
    with file:
        for number, raw in enumerate(file, 1):
            if raw.strip():
                yield _entry(path, number, raw)


def _shown(value: Any) -> str:
    return escape(repr(value), 60)


_VENUES = {str(venue): venue for venue in ADAPTERS}


def _entry(source: Path | str, number: int, raw: bytes) -> Entry:
    def bad(problem: str) -> ReplayError:
        return ReplayError(f"{source}:{number}: {problem}")

    try:
        line = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        cut = "" if raw.endswith(b"\n") else " (the last line is cut short: was the recording interrupted?)"
        raise bad(f"not JSON: {exc}{cut}") from None
    if not isinstance(line, dict):
        raise bad(f"not a JSON object with fields {', '.join(FIELDS)}")
    missing = [name for name in FIELDS if name not in line]
    if missing:
        raise bad(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(repr(name) for name in missing)}")
    t = line["t"]
    if type(t) not in (int, float) or not math.isfinite(t):
        raise bad(f"'t' is not a time in unix seconds: {_shown(t)}")
    venue = _VENUES.get(line["venue"]) if isinstance(line["venue"], str) else None
    if venue is None:
        raise bad(f"unknown venue {_shown(line['venue'])} (known: {', '.join(_VENUES)})")
    if line["kind"] not in KINDS:
        raise bad(f"'kind' is {_shown(line['kind'])}, not 'ws' or 'rest'")
    for name in ("conn", "path", "frame"):
        if not isinstance(line[name], str):
            raise bad(f"{name!r} is not a string: {_shown(line[name])}")
    frame: str | bytes = line["frame"]
    if (encoding := line.get("encoding")) is not None:
        if encoding != "base64":
            raise bad(f"'encoding' is {_shown(encoding)}, not 'base64'")
        try:
            frame = base64.b64decode(line["frame"], validate=True)
        except binascii.Error:
            raise bad("'frame' is not base64") from None
    return Entry(number, float(t), venue, line["conn"], line["kind"], line["path"], frame)


class ReplayConnection(Connection):
    """A recorded connection: its frames and snapshot answers come from the recording, through
    the live code; nothing is sent, fetched or retried."""

    def __init__(self, adapter: VenueAdapter, label: str, sink: ReplayService, group: Hashable) -> None:
        super().__init__(adapter, label, sink, group=group)
        self._replay = sink
        self._retired: set[Hashable] = set()  # routes whose stream a newer connection took over
        self.session = 1
        self.unmatched = 0  # REST lines that name no stream

    def start(self) -> None:
        self._set_state(ConnectionState.LIVE)

    def refresh(self, stream: Stream, delay: float = 0.0) -> None:
        """A resync's refetch: the recording holds the answer the live client got, if any."""

    def _retry_refused(self, stream: Stream) -> None:
        """The live client's retry is in the recording (or was never answered)."""

    def reconnected(self, session: int) -> None:
        """The live connection opened its ``session``-th socket here: its streams are rebuilt
        from what the venue sends now, as :meth:`Connection._resubscribe_all` does (nothing sent)."""
        self.session = session
        self.reconnects += 1
        for stream in self.streams.values():
            if stream.last_data_at is not None:
                stream.data.clear()
                self._sink.set_stream_state(stream, StreamState.RESYNCING, "resubscribing")
            stream.begin()

    def feed_ws(self, frame: str | bytes) -> None:
        self._receive(frame)

    def feed_rest(self, path: str, frame: str | bytes) -> None:
        """A snapshot answer, as :meth:`Connection._fetch_snapshot` handled it live."""
        key = self.adapter.key_for_request(path)
        if key is None:
            self.unmatched += 1
            return
        route = self.adapter.route(key)
        if route in self._retired:
            return
        stream = self._routes.get(route)
        if stream is None:
            stream = self._replay.attach(self, key)
        try:
            events: list[MarketEvent] = self.adapter.parse_snapshot(stream.key, orjson.loads(frame))
        except Exception as exc:  # not JSON, a DecodeError, an adapter bug: this answer's failure
            self._bad_frame(f"bad snapshot: {type(exc).__name__}: {exc}")
            return
        for event in events:
            try:
                self._sink.ingest(stream, event, from_snapshot=True)
            except Exception as exc:  # a listener's failure
                self._bad_frame(f"handling snapshot failed: {type(exc).__name__}: {exc}")

    def _handle(self, item: Decoded, now: float) -> None:
        if isinstance(item, Data):
            if item.route in self._retired:
                return
            if item.route not in self._routes:
                key = self.adapter.key_for_route(item.route, self.group)
                if key is None:
                    return  # no stream of ours (live: dropped the same way)
                self._replay.attach(self, key)
        super()._handle(item, now)

    def retire(self, key: StreamKey) -> None:
        """A newer connection carries ``key`` now: this one's later frames for it are dropped
        (live, the older socket was closed or the stream released)."""
        route = self.adapter.route(key)
        self.streams.pop(key, None)
        self._routes.pop(route, None)
        self._retired.add(route)


class ReplayService(SubscriptionService):
    """The subscription service over a recording (see the module docstring). Consumers subscribe
    as usual; every recorded stream exists whether subscribed or not, and stays when released."""

    def __init__(self, adapters: Iterable[VenueAdapter] | None = None) -> None:
        if adapters is None:
            adapters = [build_adapter(venue, REPLAY_ENDPOINT) for venue in ADAPTERS]
        super().__init__(adapters)
        self._replayed: dict[tuple[Venue, str], ReplayConnection] = {}
        self._recorded_markets: dict[Venue, dict[str, None]] = {}
        self.lines = 0

    # --- feeding ------------------------------------------------------------------------------

    def feed(self, entry: Entry) -> None:
        label, session = split_session(entry.conn)
        connection = self._replayed.get((entry.venue, label))
        if connection is None:
            connection = self._replay_connection(entry.venue, label)
            connection.session = session
        elif session != connection.session:
            connection.reconnected(session)
        if entry.kind == "ws":
            connection.feed_ws(entry.frame)
        else:
            connection.feed_rest(entry.path, entry.frame)
        self.lines += 1

    async def play(self, entries: Iterable[Entry], speed: float = 0.0) -> int:
        """Feed ``entries`` at their recorded pace divided by ``speed`` (0: as fast as possible,
        yielding to the event loop now and then); returns the number of lines fed."""
        loop = asyncio.get_running_loop()
        first: float | None = None
        started = 0.0
        for count, entry in enumerate(entries, 1):
            if speed > 0:
                if first is None:
                    first, started = entry.t, loop.time()
                delay = started + (entry.t - first) / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif count % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            self.feed(entry)
        return self.lines

    def finish(self) -> None:
        """The recording ended: every connection shows it."""
        for connection in self._replayed.values():
            connection._set_state(ConnectionState.CLOSED, "end of recording")

    def _replay_connection(self, venue: Venue, label: str) -> ReplayConnection:
        connection = ReplayConnection(self.adapters[venue], label, self, group_of_label(venue, label))
        self._replayed[(venue, label)] = connection
        self._connections.setdefault((venue, connection.group), []).append(connection)
        connection.start()
        return connection

    def attach(self, connection: ReplayConnection, key: StreamKey) -> Stream:
        """The stream of ``key`` on ``connection``, whose first line just arrived."""
        held = self._streams.get(key)
        if held is not None and key not in self._carrier:
            stream = held  # a consumer subscribed before its data came
            self._carrier[key] = connection
        else:
            stream = Stream(key, connection.adapter.state_for(key))
            if held is None:
                self._publish(stream)
                self._carrier[key] = connection
            # else another connection carries the key: this copy is shown once live (_take_over)
        connection.add(stream)
        self.note_market(key)
        return stream

    def note_market(self, key: StreamKey) -> None:
        if key.market:
            self._recorded_markets.setdefault(key.venue, {})[key.market] = None

    def note_request(self, entry: Entry) -> StreamKey | None:
        """The key a REST line fetched (its market is listed), for a first pass over a recording."""
        key = self.adapters[entry.venue].key_for_request(entry.path) if entry.kind == "rest" else None
        if key is not None:
            self.note_market(key)
        return key

    # --- the service's ingest, plus the swap to a newer connection's copy --------------------

    def ingest(self, stream: Stream, event: MarketEvent, *, from_snapshot: bool = False) -> None:
        super().ingest(stream, event, from_snapshot=from_snapshot)
        self._take_over(stream)

    def confirm(self, stream: Stream) -> None:
        super().confirm(stream)
        self._take_over(stream)

    def _take_over(self, copy: Stream) -> None:
        """Once another connection's copy of a stream is live, show it, as the live client's
        rotation did (see :meth:`SubscriptionService._rotate`)."""
        if copy.state is not StreamState.LIVE or (held := self._streams.get(copy.key)) is copy or held is None:
            return
        key = copy.key
        new = next(c for c in self._replayed.values() if c.streams.get(key) is copy)
        copy.data.generation = max(copy.data.generation, held.data.generation + 1)  # repaint
        held.data, held.last_data_at, held.confirmed, held.fresh = copy.data, copy.last_data_at, True, True
        new.adopt(held)
        old = self._carrier.get(key)
        self._carrier[key] = new
        if isinstance(old, ReplayConnection) and old is not new:
            old.retire(key)
        self.settle(held)

    # --- the consumer API without connections -------------------------------------------------

    def _open_stream(self, adapter: VenueAdapter, key: StreamKey) -> Stream:
        """No connection: the recording feeds the stream (see :meth:`_publish`)."""
        return self._publish(Stream(key, adapter.state_for(key)))

    def _publish(self, stream: Stream) -> Stream:
        self._streams[stream.key] = stream
        self._handles[stream.key] = []
        return stream

    def _release(self, handle: Subscription) -> None:
        handles = self._handles.get(handle.key, [])
        if handle in handles:
            handles.remove(handle)  # the stream stays: the recording goes on feeding it

    async def markets(self, venue: Venue | str) -> list[MarketInfo]:
        venue = Venue(venue)
        return [MarketInfo(venue, m, m, "recorded") for m in self._recorded_markets.get(venue, ())]

    # --- results ------------------------------------------------------------------------------

    def books(self) -> Books:
        """Every recorded book as held now: ``{venue: {market: {"bids": [[price, size], ...],
        "asks": [...]}}}``, best first, every level, the decimal strings as held."""
        books: Books = {}
        # Keys with options (a book precision) first, so the market's plain book wins.
        for key, stream in sorted(self._streams.items(), key=lambda item: -len(item[0].params)):
            if key.channel is Channel.BOOK and key in self._carrier and isinstance(stream.data, BookData):
                bids, asks = stream.data.book.levels()
                books.setdefault(str(key.venue), {})[key.market] = {
                    "bids": [[price, size] for price, size in bids],
                    "asks": [[price, size] for price, size in asks],
                }
        return books


async def replay_books(path: Path | str, speed: float = 0.0) -> Books:
    """Replay the recording at ``path`` without a screen; the final books (see :meth:`ReplayService.books`)."""
    service = ReplayService()
    try:
        await service.play(read_recording(path), speed)
        return service.books()
    finally:
        await service.close()


# --- command line ---------------------------------------------------------------------------------


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("expected 0 (as fast as possible) or a positive factor")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perpterm replay",
        description="Replay a recording made with `perpterm --record FILE` through the same adapters "
        "and book syncs as the live client.",
    )
    parser.add_argument("file", type=Path, help="the recording (JSON Lines)")
    parser.add_argument(
        "--speed", type=_speed, help="pace: 1 as recorded (the default on screen), 10 ten times faster, "
        "0 as fast as possible (the default headless)",
    )  # fmt: skip
    parser.add_argument("--headless", action="store_true", help="no screen: replay, then exit")
    parser.add_argument(
        "--dump", choices=["books"], help="with --headless: print the final book of every (venue, market) "
        'as one JSON object {venue: {market: {"bids": [[price, size], ...], "asks": [...]}}}',
    )  # fmt: skip
    parser.add_argument("--theme", help="Textual theme name")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``perpterm replay FILE [--speed X] [--headless [--dump books]]``; exit 2 for a bad file."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.dump and not args.headless:
        parser.error("--dump needs --headless")
    try:
        if args.headless:
            return _headless(args.file, args.speed or 0.0, args.dump)
        return _on_screen(args.file, 1.0 if args.speed is None else args.speed, args.theme)
    except ReplayError as exc:
        print(exc, file=sys.stderr)
        return 2


def _headless(path: Path, speed: float, dump: str | None) -> int:
    if dump != "books":
        service_lines = asyncio.run(_count(path, speed))
        print(f"perpterm replay: {service_lines} lines replayed", file=sys.stderr)
        return 0
    books = asyncio.run(replay_books(path, speed))
    sys.stdout.write(orjson.dumps(books, option=orjson.OPT_SORT_KEYS).decode() + "\n")
    return 0


async def _count(path: Path, speed: float) -> int:
    service = ReplayService()
    try:
        return await service.play(read_recording(path), speed)
    finally:
        await service.close()


def _on_screen(path: Path, speed: float, theme: str | None) -> int:
    from app.config import ConfigError

    try:
        app = replay_app(path, speed, theme)
    except ConfigError as exc:
        print(f"perpterm replay: {exc}", file=sys.stderr)
        return 2
    app.run()
    return 0


def replay_app(path: Path | str, speed: float = 1.0, theme: str | None = None) -> Any:
    """The dashboard driven by the recording at ``path`` (a :class:`~app.ui.PerptermApp` whose
    service is a :class:`ReplayService`; the header says REPLAY). Every line is checked first, so a
    bad file raises :class:`ReplayError` before the screen opens; the first recorded book is shown
    first."""
    from app.config import INTERVALS, load_settings
    from app.ui import PerptermApp

    service = ReplayService()
    venues: list[Venue] = []
    keys: list[StreamKey] = []
    for entry in read_recording(path):
        if entry.venue not in venues:
            venues.append(entry.venue)
        if (key := service.note_request(entry)) is not None:
            keys.append(key)
    if not venues:
        raise ReplayError(f"{path}: nothing recorded")
    first = next((k for k in keys if k.channel is Channel.BOOK), keys[0] if keys else None)
    venue = first.venue if first is not None else venues[0]
    market = first.market if first is not None else None
    interval = next(
        (k.param("interval") for k in keys if k.channel is Channel.CANDLES and (k.venue, k.market) == (venue, market)
         and k.param("interval") in INTERVALS),
        None,
    )  # fmt: skip
    settings = load_settings(venue=venue, market=market, interval=interval, theme=theme)

    class ReplayApp(PerptermApp):
        def on_ready(self) -> None:
            self.run_worker(self._play(), name="replay", group="replay")

        async def _play(self) -> None:
            try:
                lines = await service.play(read_recording(path), speed)
            except ReplayError as exc:  # the file changed since the first pass
                self.tell(str(exc), "error")
                return
            service.finish()
            self.tell(f"replay finished: {lines} lines")

    return ReplayApp(settings, {v: REPLAY_ENDPOINT for v in venues}, service=service, replay=True)
