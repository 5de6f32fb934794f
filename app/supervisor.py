"""Supervised venue connections: connect, subscribe, prove liveness, reconnect with backoff.

One :class:`Connection` is one WebSocket to one venue endpoint carrying many streams. It runs a
visible state machine (:class:`~app.model.ConnectionState`)::

    CONNECTING -> LIVE <-> STALE          (STALE: silent, a liveness probe is unanswered)
         ^          |
         |          v  (closed, dead, refused)
    RECONNECTING <--+      FAILED  (a close the adapter calls final, e.g. 4001: never retried)

On every (re)connect it re-sends every subscription and refetches REST snapshots, and the streams'
state is rebuilt from those (never merged into what was held before the drop). Liveness counts
inbound frames; after ``probe_after`` seconds of silence a probe (the venue's ping, or a WebSocket
ping frame) is sent early, so a quiet market is distinguished from a dead socket without being
reconnected for being quiet.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Protocol

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from app.model import (
    ConnectionHealth,
    ConnectionState,
    MarketEvent,
    StreamKey,
    StreamState,
    Trades,
)
from app.rest import RestError
from app.state import Stream
from app.venues.base import Data, DecodeError, Liveness, VenueAdapter, VenueError

log = logging.getLogger("perpterm.supervisor")

RATE_WINDOW = 5.0  # seconds over which the message rate is averaged
MAX_FRAME_BYTES = 16 * 1024 * 1024  # full-depth snapshots can be large; bounded all the same


class Backoff:
    """Exponential backoff with jitter: ``initial`` doubling to ``maximum``; each delay is drawn
    from [half, full] of the step so that many clients dropped together do not return together."""

    def __init__(
        self,
        initial: float = 1.0,
        maximum: float = 30.0,
        factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        step = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return step * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.attempts = 0


class StreamSink(Protocol):
    """Where a connection hands what it learns (implemented by the subscription service)."""

    def ingest(self, stream: Stream, event: MarketEvent) -> None: ...

    def set_stream_state(self, stream: Stream, state: StreamState, reason: str = "") -> None: ...

    def connection_changed(self, connection: Connection) -> None: ...


class Connection:
    """One supervised WebSocket carrying many streams of one venue."""

    def __init__(
        self,
        adapter: VenueAdapter,
        label: str,
        sink: StreamSink,
        *,
        liveness: Liveness | None = None,
        backoff: Backoff | None = None,
        healthy_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapter = adapter
        self.label = label
        self.liveness = liveness or adapter.liveness
        self.backoff = backoff or Backoff()
        self.healthy_after = healthy_after
        self._sink = sink
        self._clock = clock
        self.streams: dict[StreamKey, Stream] = {}
        self._routes: dict[Hashable, Stream] = {}
        self._awaiting_first: set[StreamKey] = set()
        self.state = ConnectionState.CONNECTING
        self.reason = ""
        self.retry_at: float | None = None
        self.reconnects = 0
        self.decode_errors = 0
        self.frames = 0
        self.last_data_at: float | None = None
        self._arrivals: deque[float] = deque()
        self._last_inbound = 0.0  # any frame or pong; liveness, not data
        self._probe_sent_at: float | None = None  # an unanswered probe is out since then
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._refreshes: dict[StreamKey, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._closing = False

    # --- streams ------------------------------------------------------------------------------

    def can_carry(self, key: StreamKey) -> bool:
        return (
            len(self.streams) < self.adapter.max_subscriptions_per_connection
            and self.adapter.route(key) not in self._routes
        )

    def add(self, stream: Stream) -> None:
        self.streams[stream.key] = stream
        self._routes[self.adapter.route(stream.key)] = stream
        if self._ws is not None and self.state in (ConnectionState.LIVE, ConnectionState.STALE):
            self._subscribe(stream)

    def remove(self, key: StreamKey) -> None:
        stream = self.streams.pop(key, None)
        if stream is None:
            return
        self._routes.pop(self.adapter.route(key), None)
        self._awaiting_first.discard(key)
        if (task := self._refreshes.pop(key, None)) is not None:
            task.cancel()
        if self._ws is not None:
            self._send(self.adapter.unsubscribe_message(key))

    def _subscribe(self, stream: Stream) -> None:
        self._awaiting_first.add(stream.key)
        self._send(self.adapter.subscribe_message(stream.key))
        self.refresh(stream)

    def refresh(self, stream: Stream) -> None:
        """Fetch the stream's REST snapshot (if the venue has one) unless one is under way."""
        task = self._refreshes.get(stream.key)
        if task is None or task.done():
            self._refreshes[stream.key] = asyncio.create_task(self._fetch_snapshot(stream))

    async def _fetch_snapshot(self, stream: Stream) -> None:
        try:
            events = await self.adapter.snapshot(stream.key)
        except RestError as exc:
            log.warning("%s: snapshot of %s failed: %s", self.label, stream.key, exc)
            return
        except Exception as exc:  # a malformed snapshot must not kill the connection
            self.decode_errors += 1
            log.warning("%s: bad snapshot for %s: %r", self.label, stream.key, exc)
            return
        if self.streams.get(stream.key) is stream:
            for event in events:
                self._sink.ingest(stream, event)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"connection {self.label}")

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        for task in self._refreshes.values():
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._set_state(ConnectionState.CLOSED)

    def reconnect_now(self) -> None:
        """Skip the remaining backoff (user asked to retry, or a FAILED venue was reconfigured)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            self._set_state(ConnectionState.CONNECTING)
            opened_at: float | None = None
            try:
                async with connect(
                    self.adapter.ws_url(),
                    ping_interval=None,  # liveness is ours (venue pings differ), see _watch
                    max_size=MAX_FRAME_BYTES,
                    open_timeout=10,
                    close_timeout=2,
                ) as ws:
                    opened_at = self._clock()
                    self._ws = ws
                    self._set_state(ConnectionState.LIVE)
                    for stream in list(self.streams.values()):
                        self._resubscribe(stream)
                    await self._session(ws)
                    code, reason = ws.close_code, ws.close_reason or ""
            except InvalidStatus as exc:
                status = exc.response.status_code
                code, reason = None, f"HTTP {status} on connect"
                if status in (401, 403):
                    self._fail(f"authentication rejected (HTTP {status})")
                    return
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = _describe(exc)
            except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
                code, reason = None, _describe(exc)
            finally:
                self._ws = None
                self._drop_streams()
            if self._closing:
                return
            if (fatal := self.adapter.fatal_close(code, reason)) is not None:
                self._fail(f"{fatal} (close {code})")
                return
            if opened_at is not None and self._clock() - opened_at >= self.healthy_after:
                self.backoff.reset()
            await self._wait_backoff(reason or (f"closed ({code})" if code else "closed"))

    async def _wait_backoff(self, reason: str) -> None:
        delay = self.backoff.next_delay()
        self.reconnects += 1
        self.retry_at = self._clock() + delay
        self._set_state(ConnectionState.RECONNECTING, reason)
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass
        self.retry_at = None

    def _fail(self, reason: str) -> None:
        log.error("%s: %s; not retrying", self.label, reason)
        for stream in self.streams.values():
            self._sink.set_stream_state(stream, StreamState.ERROR, reason)
        self._set_state(ConnectionState.FAILED, reason)

    def _resubscribe(self, stream: Stream) -> None:
        if stream.last_data_at is not None:
            # Rebuild from the venue, never merge into what was held before the drop.
            stream.data.clear()
            self._sink.set_stream_state(stream, StreamState.RESYNCING, "resubscribing")
        self._subscribe(stream)

    def _drop_streams(self) -> None:
        for task in self._refreshes.values():
            task.cancel()
        self._refreshes.clear()
        for stream in self.streams.values():
            if stream.state not in (StreamState.ERROR, StreamState.PENDING):
                self._sink.set_stream_state(stream, StreamState.STALE, "disconnected")

    # --- one connected session ----------------------------------------------------------------

    async def _session(self, ws: ClientConnection) -> None:
        watchdog = asyncio.create_task(self._watch(ws))
        try:
            async for frame in ws:
                self._receive(frame)
        finally:
            watchdog.cancel()

    def _receive(self, frame: str | bytes) -> None:
        now = self._clock()
        self.frames += 1
        self._arrivals.append(now)
        self._prune_arrivals(now)
        self._last_inbound = now
        self._probe_sent_at = None  # any inbound frame proves the socket alive
        if self.state is ConnectionState.STALE:
            self._set_state(ConnectionState.LIVE)
        try:
            decoded = self.adapter.decode(frame)
        except DecodeError as exc:
            self.decode_errors += 1
            if self.decode_errors <= 3 or self.decode_errors % 100 == 0:
                log.warning("%s: decode error #%d: %s", self.label, self.decode_errors, exc)
            return
        for item in decoded:
            if isinstance(item, Data):
                stream = self._routes.get(item.route)
                if stream is None:
                    continue  # data for a stream just unsubscribed
                self.last_data_at = now
                if stream.key in self._awaiting_first:
                    self._awaiting_first.discard(stream.key)
                    if isinstance(item.event, Trades):
                        item.event.backlog = True  # first frames are backlogs, on every venue
                self._sink.ingest(stream, item.event)
            elif isinstance(item, VenueError):
                self._venue_error(item)
            # Ack, Pong, Ignored: liveness is already noted above; they carry nothing else we use.

    def _venue_error(self, error: VenueError) -> None:
        stream = self._stream_for(error.subscription)
        if stream is None:
            log.warning("%s: venue error: %s", self.label, error.message[:200])
            return
        self._sink.set_stream_state(stream, StreamState.ERROR, error.message[:200])

    def _stream_for(self, subscription: object) -> Stream | None:
        """The stream whose subscription the venue echoed (echoes are normalized: match subsets)."""
        if not isinstance(subscription, dict):
            return None
        for stream in self.streams.values():
            ours = self.adapter.subscription(stream.key)
            if isinstance(ours, dict) and all(subscription.get(k) == v for k, v in ours.items()):
                return stream
        return None

    async def _watch(self, ws: ClientConnection) -> None:
        """Probe liveness; abort the socket when a probe goes unanswered."""
        policy = self.liveness
        tick = min(0.25, policy.pong_timeout / 4)
        now = self._clock()
        self._last_inbound = now
        self._probe_sent_at = None
        last_ping = now
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            silence = now - self._last_inbound
            if self._probe_sent_at is not None:
                if now - self._probe_sent_at > policy.pong_timeout:
                    log.warning("%s: no answer to ping in %.1fs; reconnecting", self.label, policy.pong_timeout)
                    ws.transport.abort()
                    return
                if silence > policy.probe_after and self.state is ConnectionState.LIVE:
                    self._set_state(ConnectionState.STALE, f"silent {silence:.0f}s")
            elif now - last_ping >= policy.ping_interval or silence >= policy.probe_after:
                last_ping = now
                self._probe_sent_at = now
                await self._probe(ws)
            self._check_stream_ages(now)

    async def _probe(self, ws: ClientConnection) -> None:
        message = self.adapter.ping_message()
        if message is not None:
            self._send(message)
            return
        pong_waiter = await ws.ping()
        pong_waiter.add_done_callback(lambda _: self._pong())

    def _pong(self) -> None:
        self._last_inbound = self._clock()
        self._probe_sent_at = None

    def _check_stream_ages(self, now: float) -> None:
        limits = self.adapter.stale_after
        for stream in self.streams.values():
            limit = limits.get(stream.key.channel)
            if limit is None or stream.state is not StreamState.LIVE:
                continue
            if stream.last_data_at is not None and now - stream.last_data_at > limit:
                self._sink.set_stream_state(stream, StreamState.STALE, f"no data for {limit:.0f}s")

    def _send(self, message: str) -> None:
        ws = self._ws
        if ws is None:
            return
        task = asyncio.create_task(ws.send(message))
        task.add_done_callback(_ignore_closed)

    # --- status -------------------------------------------------------------------------------

    def _set_state(self, state: ConnectionState, reason: str = "") -> None:
        if state is self.state and reason == self.reason:
            return
        self.state, self.reason = state, reason
        self._sink.connection_changed(self)

    def _prune_arrivals(self, now: float) -> None:
        while self._arrivals and now - self._arrivals[0] > RATE_WINDOW:
            self._arrivals.popleft()

    def health(self) -> ConnectionHealth:
        now = self._clock()
        self._prune_arrivals(now)
        return ConnectionHealth(
            venue=self.adapter.venue,
            label=self.label,
            state=self.state,
            reason=self.reason,
            retry_in=None if self.retry_at is None else max(0.0, self.retry_at - now),
            data_age=None if self.last_data_at is None else now - self.last_data_at,
            message_rate=len(self._arrivals) / RATE_WINDOW,
            reconnects=self.reconnects,
            decode_errors=self.decode_errors,
            streams=len(self.streams),
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, websockets.ConnectionClosed):
        return "connection lost" if exc.rcvd is None else f"closed by venue ({exc.rcvd.code})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__


def _ignore_closed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("send failed: %r", task.exception())
