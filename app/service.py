"""The subscription service: the one API widgets (and anything else) use to get market data.

``subscribe(venue, channel, market, params)`` returns a :class:`Subscription` handle. Handles are
reference counted per :class:`~app.model.StreamKey`: two widgets on one stream share one upstream
subscription and one :class:`~app.state.Stream` (one book, one tape). Streams of a venue are
multiplexed over as few supervised connections as the venue allows; a new connection is opened when
the adapter's per-connection limit is reached (or when two streams' frames could not be told apart
on one socket), and when unsubscribes leave room, the streams of the emptiest connection move to the
others and it closes (make before break: each moved stream goes live on its new socket first). The
upstream unsubscribe is sent when the last handle closes, so switching market is "subscribe the new
key, then close the old handle" on the same socket, with no reconnect.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable
from itertools import count
from typing import Any

from app.book import BookError
from app.logsafe import QuietLog, escape
from app.model import (
    Channel,
    ConnectionHealth,
    ConnectionState,
    ConnectionStatus,
    MarketEvent,
    MarketInfo,
    StreamKey,
    StreamState,
    StreamStatus,
    Venue,
    freeze_params,
)
from app.state import ResyncNeeded, Stream
from app.record import Recorder, connection_label
from app.supervisor import Backoff, Connection
from app.venues.base import Liveness, VenueAdapter

log = logging.getLogger("perpterm.service")

RESYNC_SPACING = 2.0  # seconds between REST refetches of one stream
ROTATION_TIMEOUT = 30.0  # seconds a replacement connection gets to sync all its streams

Listener = Callable[[MarketEvent | StreamStatus], None]
ConnectionListener = Callable[[ConnectionStatus], None]


class Subscription:
    """A consumer's handle on one stream. Read :attr:`stream`; call :meth:`close` when done."""

    __slots__ = ("key", "stream", "listener", "_service", "closed")

    def __init__(self, service: SubscriptionService, stream: Stream, listener: Listener | None) -> None:
        self.key = stream.key
        self.stream = stream
        self.listener = listener
        self._service = service
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._service._release(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SubscriptionService:
    """Multiplexes every venue's streams for all consumers; owns every connection."""

    def __init__(
        self,
        adapters: Iterable[VenueAdapter],
        *,
        liveness: dict[Venue, Liveness] | None = None,
        backoff: Callable[[], Backoff] = Backoff,
        healthy_after: float = 5.0,
        idle_grace: float = 10.0,
        on_connection: ConnectionListener | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        """``recorder``: every connection records its inbound frames and snapshot responses there."""
        self.adapters: dict[Venue, VenueAdapter] = {a.venue: a for a in adapters}
        self._liveness = liveness or {}
        self._backoff = backoff
        self._healthy_after = healthy_after
        self._on_connection = on_connection
        self._streams: dict[StreamKey, Stream] = {}
        self._handles: dict[StreamKey, list[Subscription]] = {}
        self._carrier: dict[StreamKey, Connection] = {}
        self._connections: dict[tuple[Venue, Hashable], list[Connection]] = {}
        self._idle_grace = idle_grace
        self._closing: set[asyncio.Task[None]] = set()
        self._moves: dict[Connection, Connection] = {}  # old -> where its streams are being synced
        self._labels = count(1)
        self._markets: dict[Venue, list[MarketInfo]] = {}
        self._last_resync: dict[StreamKey, float] = {}
        self._log = QuietLog(log)
        self._recorder = recorder

    # --- the consumer API ---------------------------------------------------------------------

    def subscribe(
        self,
        venue: Venue | str,
        channel: Channel | str,
        market: str = "",
        params: dict[str, Any] | None = None,
        on_event: Listener | None = None,
    ) -> Subscription:
        """Start (or join) a stream. Raises ``KeyError``/``ValueError`` for what the venue lacks."""
        venue, channel = Venue(venue), Channel(channel)
        adapter = self.adapters.get(venue)
        if adapter is None:
            raise KeyError(f"venue {venue} is not configured")
        key = StreamKey(venue, channel, market, freeze_params(params))
        adapter.check(key)
        stream = self._streams.get(key) or self._open_stream(adapter, key)
        handle = Subscription(self, stream, on_event)
        self._handles[key].append(handle)
        return handle

    def _open_stream(self, adapter: VenueAdapter, key: StreamKey) -> Stream:
        """A new stream for ``key``, carried by a connection of its group."""
        stream = self._streams[key] = Stream(key, adapter.state_for(key))
        self._handles[key] = []
        connection = self._carrier[key] = self._connection_for(adapter, key)
        connection.add(stream)
        return stream

    def health(self) -> list[ConnectionHealth]:
        return [c.health() for conns in self._connections.values() for c in conns]

    def connections(self, venue: Venue | str) -> list[Connection]:
        venue = Venue(venue)
        return [c for (v, _), conns in self._connections.items() if v is venue for c in conns]

    def streams(self) -> list[Stream]:
        return list(self._streams.values())

    async def markets(self, venue: Venue | str) -> list[MarketInfo]:
        """The venue's market list (fetched once, then cached)."""
        venue = Venue(venue)
        if venue not in self._markets:
            self._markets[venue] = await self.adapters[venue].markets()
        return self._markets[venue]

    def retry(self) -> None:
        """Reconnect every connection now, skipping backoff (the user asked)."""
        for conns in self._connections.values():
            for connection in conns:
                connection.reconnect_now()

    async def close(self) -> None:
        """Close every connection and REST session; never raises (a connection's error is its own)."""
        connections = [c for conns in self._connections.values() for c in conns]
        await asyncio.gather(*(connection.close() for connection in connections))  # at once, not in turn
        self._connections.clear()
        await asyncio.gather(*self._closing, return_exceptions=True)
        for adapter in self.adapters.values():
            try:
                await adapter.close()
            except Exception:
                log.exception("closing %s REST session", adapter.venue)

    # --- connections --------------------------------------------------------------------------

    def _connection_for(self, adapter: VenueAdapter, key: StreamKey) -> Connection:
        group = adapter.group(key)
        conns = self._connections.setdefault((adapter.venue, group), [])
        for connection in conns:
            if self._moves.get(connection) in conns:
                continue  # being emptied into a sibling: about to close
            if connection.can_carry(key):
                return connection
        connection = self._new_connection(adapter, group)
        conns.append(connection)
        connection.start()
        return connection

    def _new_connection(self, adapter: VenueAdapter, group: Hashable) -> Connection:
        return Connection(
            adapter,
            connection_label(adapter.venue, group, next(self._labels)),  # names the group: replay needs it
            self,
            group=group,
            liveness=self._liveness.get(adapter.venue),
            backoff=self._backoff(),
            healthy_after=self._healthy_after,
            recorder=self._recorder,
        )

    def _release(self, handle: Subscription) -> None:
        key = handle.key
        handles = self._handles.get(key, [])
        if handle in handles:
            handles.remove(handle)
        if handles:
            return
        del self._handles[key]
        del self._streams[key]
        self._last_resync.pop(key, None)
        connection = self._carrier.pop(key)
        connection.remove(key)
        # Both only if still so after a grace period: a market switch reuses the room it freed.
        if not connection.streams:
            asyncio.get_running_loop().call_later(self._idle_grace, self._close_if_idle, connection)
        else:
            asyncio.get_running_loop().call_later(self._idle_grace, self._rebalance, connection.adapter, connection.group)

    def _close_if_idle(self, connection: Connection) -> None:
        conns = self._connections.get((connection.adapter.venue, connection.group), [])
        if connection.streams or connection not in conns:
            return
        conns.remove(connection)
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- StreamSink: called by connections ----------------------------------------------------

    def ingest(self, stream: Stream, event: MarketEvent, *, from_snapshot: bool = False) -> None:
        """Fold one event into the stream's state and tell its consumers.

        A REST snapshot never overrides a venue's refusal (the stream stays ERROR; the book state
        itself drops a snapshot older than what it holds); a pushed event is the venue serving the
        stream, which ends an ERROR.
        """
        if from_snapshot:
            if stream.state is StreamState.ERROR:
                return
        stream.messages += 1
        stream.last_data_at = time.monotonic()
        try:
            stream.data.apply(event)
        except (ResyncNeeded, BookError) as exc:
            self._resync(stream, str(exc))
            return
        stream.fresh = True
        if not from_snapshot:
            stream.confirmed = True
        self.settle(stream)
        self._notify(stream, event)

    def confirm(self, stream: Stream) -> None:
        """The venue acknowledged the stream's subscription."""
        stream.confirmed = True
        self.settle(stream)

    def settle(self, stream: Stream) -> None:
        """LIVE once the venue has answered and the data is complete (a synced book, a chart with
        its history); until then the stream says what it waits for."""
        if stream.confirmed and stream.state is StreamState.ERROR:
            self.set_stream_state(stream, StreamState.PENDING)  # accepted on a later try
        if stream.state is StreamState.LIVE or not stream.confirmed:
            return
        if not stream.fresh and not stream.data.empty_is_current:
            return
        if not stream.data.complete:
            waiting = "syncing book" if stream.key.channel is Channel.BOOK else "loading history"
            self.set_stream_state(stream, stream.state, waiting)
            return
        if stream.resync_started_at is not None:
            stream.resync_seconds += time.monotonic() - stream.resync_started_at
            stream.resync_started_at = None
        self.set_stream_state(stream, StreamState.LIVE)

    def set_stream_state(self, stream: Stream, state: StreamState, reason: str = "") -> None:
        if stream.state is state and stream.reason == reason:
            return
        stream.state, stream.reason = state, reason
        self._notify(stream, StreamStatus(stream.key, state, reason))

    def _notify(self, stream: Stream, message: MarketEvent | StreamStatus) -> None:
        """Call every listener; one that fails does not keep the message from the others. The
        first failure is raised afterwards, for the connection to count against the frame."""
        if self._streams.get(stream.key) is not stream:
            return  # a rotation's shadow: nobody watches it
        failure: Exception | None = None
        for handle in list(self._handles.get(stream.key, ())):
            if handle.listener is not None:
                try:
                    handle.listener(message)
                except Exception as exc:
                    failure = failure or exc
        if failure is not None:
            raise failure

    def connection_changed(self, connection: Connection) -> None:
        if self._on_connection is not None:
            health = connection.health()
            self._on_connection(
                ConnectionStatus(health.venue, health.label, health.state, health.reason, health.retry_in)
            )

    def _resync(self, stream: Stream, reason: str) -> None:
        """Distrust the stream's state: clear it, show RESYNCING, refetch the snapshot."""
        reason = escape(reason)
        self._log.warning(f"resync {stream.key}", f"resync {stream.key}: {reason}")
        stream.resyncs += 1
        stream.data.clear()
        stream.fresh = False
        if stream.resync_started_at is None:
            stream.resync_started_at = time.monotonic()
        self.set_stream_state(stream, StreamState.RESYNCING, reason)
        # Ask REST at most every 2 s: a venue that keeps sending bad books must not be hammered.
        now = time.monotonic()
        due = max(now, self._last_resync.get(stream.key, -math.inf) + RESYNC_SPACING)
        self._last_resync[stream.key] = due
        if (connection := self._holder(stream)) is not None:
            connection.resync(stream, delay=due - now)

    def _holder(self, stream: Stream) -> Connection | None:
        """The connection feeding this very stream object (a rotation's shadow has its own)."""
        if (connection := self._carrier.get(stream.key)) is not None and connection.streams.get(stream.key) is stream:
            return connection
        return next((new for new in self._moves.values() if new.streams.get(stream.key) is stream), None)

    # --- make before break: rotation and rebalancing ------------------------------------------

    def rotate(self, old: Connection) -> None:
        """Replace ``old`` before the venue ends it (its lifetime, a token's expiry) with a new
        connection of the same group carrying all its streams, then close it."""
        if old not in self._moves:
            self._move(old, self._new_connection(old.adapter, old.group), replace=True)

    def _rebalance(self, adapter: VenueAdapter, group: Hashable) -> None:
        """If the group's streams now fit on fewer connections, move the emptiest connection's
        streams to the others' free room and close it."""
        conns = [c for c in self._connections.get((adapter.venue, group), []) if c.streams]
        if len(conns) < 2 or any(c in self._moves or c in self._moves.values() for c in conns):
            return
        room = adapter.max_subscriptions_per_connection
        source = min(conns, key=lambda c: c.subscriptions)
        # All to one other connection, the fullest that takes them (a move split over several
        # is not worth its complexity: the next release looks again).
        fits = [
            c for c in conns
            if c is not source and c.subscriptions + source.subscriptions <= room and all(c.can_carry(k) for k in source.streams)
        ]  # fmt: skip
        if fits:
            self._move(source, max(fits, key=lambda c: c.subscriptions), replace=False)

    def _move(self, old: Connection, new: Connection, *, replace: bool) -> None:
        self._moves[old] = new
        task = asyncio.get_running_loop().create_task(self._move_streams(old, new, replace=replace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _move_streams(self, old: Connection, new: Connection, *, replace: bool) -> None:
        """Subscribe shadow copies of ``old``'s streams on ``new``; once every shadow is live,
        swap their state into the streams the widgets hold, hand the streams to ``new`` and close
        ``old`` quietly. The screen never shows a gap; if ``new`` cannot sync in time, ``old``
        keeps its streams (and, rotating, lives out its lifetime and reconnects as after any
        drop). ``replace``: ``new`` is a fresh connection taking ``old``'s place in the group."""
        shadows = {key: Stream(key, old.adapter.state_for(key)) for key in old.streams}
        try:
            for shadow in shadows.values():
                new.add(shadow)
            new.start()
            deadline = time.monotonic() + ROTATION_TIMEOUT
            while not all(s.state is StreamState.LIVE for s in shadows.values() if s.key in old.streams):
                if time.monotonic() > deadline or old.state is ConnectionState.CLOSED:
                    raise TimeoutError
                await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning("%s: streams did not sync on %s in %.0fs; staying where they are", old.label, new.label, ROTATION_TIMEOUT)
            if replace:
                await new.close()
            else:
                for key, shadow in shadows.items():
                    if new.streams.get(key) is shadow:
                        new.remove(key)
            return
        finally:
            del self._moves[old]
        for key, shadow in shadows.items():
            if new.streams.get(key) is not shadow:
                continue
            if (stream := old.streams.get(key)) is None:
                new.remove(key)  # released during the move
                continue
            shadow.data.generation = max(shadow.data.generation, stream.data.generation + 1)  # repaint
            stream.data, stream.last_data_at, stream.confirmed, stream.fresh = (
                shadow.data, shadow.last_data_at, True, True
            )
            new.adopt(stream)
            self._carrier[key] = new
            self.settle(stream)
        for key, stream in old.streams.items():
            if key not in shadows:  # subscribed during the move
                new.add(stream)
                self._carrier[key] = new
        conns = self._connections[(old.adapter.venue, old.group)]
        if replace:
            conns[conns.index(old)] = new
        else:
            conns.remove(old)
        old.streams.clear()
        await old.close()
