"""Supervised venue connections: connect, subscribe, prove liveness, reconnect with backoff.

One :class:`Connection` is one WebSocket to one venue endpoint carrying many streams. It runs a
visible state machine (:class:`~app.model.ConnectionState`)::

    CONNECTING -> LIVE <-> STALE          (STALE: silent, a liveness probe is unanswered)
         ^          |
         |          v  (closed, dead, refused)
    RECONNECTING <--+      FAILED  (a close the adapter calls final, e.g. 4001: retried only
                                    when the user asks; or our own crash: retried with backoff)

On every (re)connect it re-sends every subscription (batched as the venue allows) and refetches
REST snapshots, and the streams' state is rebuilt from those (never merged into what was held
before the drop). Liveness counts inbound frames; after ``probe_after`` seconds of silence a probe
(the venue's ping, or a WebSocket ping frame) is sent early, so a quiet market is distinguished from
a dead socket without being reconnected for being quiet. A subscribe that gets neither an ack nor
data is re-sent, then the socket is recycled; a refusal is retried with backoff; a snapshot that
fails is retried with backoff; before the venue's connection lifetime ends the service rotates
the socket (:meth:`StreamSink.rotate`). Nothing one frame holds can end the session.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Hashable
from itertools import count
from typing import Protocol
from urllib.parse import urlsplit

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
from app.record import Recorder, record_snapshots, session_label
from app.rest import RestError
from app.state import BookData, Stream
from app.logsafe import QuietLog, escape
from app.venues.base import (
    Ack,
    Authenticated,
    Data,
    DecodeError,
    Decoded,
    Handshake,
    Liveness,
    Refused,
    VenueAdapter,
    VenueError,
)

log = logging.getLogger("perpterm.supervisor")

RATE_WINDOW = 5.0  # seconds over which the message rate is averaged
MAX_FRAME_BYTES = 16 * 1024 * 1024  # full-depth snapshots can be large; bounded all the same
ROTATE_LEAD = 0.1  # share of a socket's lifetime left when its replacement is opened...
MIN_ROTATE_LEAD = 2.0  # ...but at least these seconds (a short-lived token), at most half the life


def rotation_due(lifetime: float) -> float:
    """Seconds after opening at which a socket that lives ``lifetime`` is replaced: early enough
    for the replacement to connect and sync before the venue ends the old one."""
    return lifetime - min(max(lifetime * ROTATE_LEAD, MIN_ROTATE_LEAD), lifetime / 2)


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

    def ingest(self, stream: Stream, event: MarketEvent, *, from_snapshot: bool = False) -> None: ...

    def confirm(self, stream: Stream) -> None: ...

    def set_stream_state(self, stream: Stream, state: StreamState, reason: str = "") -> None: ...

    def connection_changed(self, connection: Connection) -> None: ...

    def rotate(self, connection: Connection) -> None: ...


class Connection:
    """One supervised WebSocket carrying many streams of one venue.

    Nothing a venue sends can end it: each frame is decoded, routed and ingested on its own, and a
    failure there is counted as a bad frame (:attr:`decode_errors`) and logged once per kind. An
    error in our own code outside a frame is caught by the run loop, shown as FAILED with its
    reason, and retried with backoff like a dropped socket.
    """

    def __init__(
        self,
        adapter: VenueAdapter,
        label: str,
        sink: StreamSink,
        *,
        group: Hashable = (),
        liveness: Liveness | None = None,
        backoff: Backoff | None = None,
        healthy_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        recorder: Recorder | None = None,
    ) -> None:
        self.adapter = adapter
        self.label = label
        self.group = group
        self._decode = adapter.decoder(group)
        self.liveness = liveness or adapter.liveness
        self.backoff = backoff or Backoff()
        self.healthy_after = healthy_after
        self._sink = sink
        self._clock = clock
        self._log = QuietLog(log)
        self.streams: dict[StreamKey, Stream] = {}
        self._routes: dict[Hashable, Stream] = {}
        self._unanswered: dict[StreamKey, tuple[float, int]] = {}  # subscribe sent at, times sent
        self._refusals: dict[StreamKey, Backoff] = {}  # streams the venue refused, until it accepts
        self.state = ConnectionState.CONNECTING
        self.reason = ""
        self.retry_at: float | None = None
        self.reconnects = 0
        self.decode_errors = 0
        self.frames = 0
        self.last_data_at: float | None = None
        self._session_data_since: float | None = None  # first data frame of the current session
        self._arrivals: deque[float] = deque()
        self._last_inbound = 0.0  # any frame or pong; liveness, not data
        self._probe_sent_at: float | None = None  # an unanswered probe is out since then
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[str] | None = None  # the open session's messages, paced
        self._request_ids = count(1)
        self._requests: dict[int, list[StreamKey]] = {}  # request id -> keys it (un)subscribed
        self._task: asyncio.Task[None] | None = None
        self._stream_tasks: dict[StreamKey, asyncio.Task[None]] = {}  # snapshot fetch or retry
        self._wake = asyncio.Event()
        self._skip_backoff = False
        self._closing = False
        self._lifetime: float | None = None  # the current socket's, from its dial
        self._not_before = 0.0  # no attempt before then (a token endpoint's Retry-After)
        self._final_error: str | None = None  # a venue error that ended the session for good
        self._recorder = recorder  # --record: every inbound frame and snapshot response
        self._path = ""  # the dialled URL's path (never its query: it may carry a key), for recording
        self._sessions = 0  # sockets opened; a reconnect is recorded as a new session of the label
        self._recorded_as = label

    # --- streams ------------------------------------------------------------------------------

    @property
    def subscriptions(self) -> int:
        """Streams the venue counts against its per-socket limit (polled ones it never sees)."""
        polled = self.adapter.polled
        return sum(1 for key in self.streams if key.channel not in polled) if polled else len(self.streams)

    def can_carry(self, key: StreamKey) -> bool:
        fits = key.channel in self.adapter.polled or self.subscriptions < self.adapter.max_subscriptions_per_connection
        return fits and self.adapter.route(key) not in self._routes

    def add(self, stream: Stream) -> None:
        self.streams[stream.key] = stream
        self._routes[self.adapter.route(stream.key)] = stream
        if self._open:
            self._subscribe([stream])

    def remove(self, key: StreamKey) -> None:
        stream = self.streams.pop(key, None)
        if stream is None:
            return
        self._routes.pop(self.adapter.route(key), None)
        self._unanswered.pop(key, None)
        self._refusals.pop(key, None)
        self._cancel_stream_task(key)
        if self._ws is not None and key.channel not in self.adapter.polled:
            request_id = next(self._request_ids)
            self._send_all(self.adapter.unsubscribe_messages([key], request_id, remaining=list(self.streams)))

    @property
    def _open(self) -> bool:
        return self._ws is not None and self.state in (ConnectionState.LIVE, ConnectionState.STALE)

    def _subscribe(self, streams: list[Stream], *, initial: bool = False) -> None:
        """Subscribe ``streams`` in as few messages as the adapter makes (``initial``: the first
        request of a new socket, which some venues shape differently) and fetch their snapshots
        (a polled stream's, again and again)."""
        now = self._clock()
        for stream in streams:
            stream.begin()
            if stream.key.channel not in self.adapter.polled:
                self._unanswered[stream.key] = (now, 1)
        self._request([stream.key for stream in streams], initial=initial)
        for stream in streams:
            self.refresh(stream)

    def _request(self, keys: list[StreamKey], *, initial: bool = False) -> None:
        keys = [key for key in keys if key.channel not in self.adapter.polled]
        if not keys:
            return
        request_id = next(self._request_ids)
        if self.adapter.acks_by_id:
            self._requests[request_id] = keys
        self._send_all(self.adapter.subscribe_messages(keys, request_id, initial=initial))

    def refresh(self, stream: Stream, delay: float = 0.0) -> None:
        """Fetch the stream's REST snapshot (if the venue has one), after ``delay`` seconds,
        unless one is under way."""
        task = self._stream_tasks.get(stream.key)
        if task is None or task.done():
            self._stream_tasks[stream.key] = asyncio.create_task(self._fetch_snapshot(stream, delay))

    def resync(self, stream: Stream, delay: float = 0.0) -> None:
        """Get the stream's whole state again after ``delay`` seconds: from the socket where the
        venue resends it on request (:meth:`VenueAdapter.resync_messages`), else over REST."""
        messages = self.adapter.resync_messages(stream.key)
        if messages is None:
            self.refresh(stream, delay)
            return
        task = self._stream_tasks.get(stream.key)
        if task is None or task.done():
            self._stream_tasks[stream.key] = asyncio.create_task(self._ask_again(stream, messages, delay))

    async def _ask_again(self, stream: Stream, messages: list[str], delay: float) -> None:
        await asyncio.sleep(delay)
        if self.streams.get(stream.key) is stream and self._open:
            self._send_all(messages)

    def adopt(self, stream: Stream) -> None:
        """Carry ``stream`` in place of the same key's stream here (a rotation's shadow), without
        subscribing again: the venue already sends it on this socket."""
        self.streams[stream.key] = stream
        self._routes[self.adapter.route(stream.key)] = stream

    async def _fetch_snapshot(self, stream: Stream, delay: float = 0.0) -> None:
        """Fetch until it succeeds or the stream is released; a failure is shown on the stream
        (when it has nothing current to show) and retried with backoff."""
        if self._recorder is not None:  # this task's REST responses are this connection's
            record_snapshots(self._recorder, self.adapter.venue, self._recorded_as)
        if delay > 0:
            await asyncio.sleep(delay)
        backoff = Backoff(self.backoff.initial, self.backoff.maximum)
        while self.streams.get(stream.key) is stream:
            try:
                events = await self.adapter.snapshot(stream.key)
            except Exception as exc:  # RestError, DecodeError, or a bug: all retried, none fatal
                if not isinstance(exc, RestError):
                    self.decode_errors += 1
                asked = exc.retry_after if isinstance(exc, RestError) else None
                delay = max(backoff.next_delay(), asked or 0.0)
                problem = f"snapshot failed: {exc}" if isinstance(exc, RestError) else f"bad snapshot: {exc}"
                self._log.warning(f"snapshot {stream.key}", f"{self.label}: {stream.key} {problem}")
                if stream.state is not StreamState.LIVE and stream.state is not StreamState.ERROR:
                    self._sink.set_stream_state(
                        stream, stream.state, f"{escape(problem)}; retry in {delay:.0f}s"
                    )
                await asyncio.sleep(delay)
                continue
            if self.streams.get(stream.key) is not stream:
                return
            for event in events:
                self._sink.ingest(stream, event, from_snapshot=True)
            if (every := self.adapter.polled.get(stream.key.channel)) is None:
                return
            self._sink.confirm(stream)  # REST is all the venue has for it: the answer is the stream
            backoff.reset()
            await asyncio.sleep(every)

    def _cancel_stream_task(self, key: StreamKey) -> None:
        if (task := self._stream_tasks.pop(key, None)) is not None:
            task.cancel()

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"connection {self.label}")

    async def close(self) -> None:
        """Stop for good. Never raises, whatever ended the connection's task."""
        self._closing = True
        self._wake.set()
        for task in self._stream_tasks.values():
            task.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._set_state(ConnectionState.CLOSED)

    def reconnect_now(self) -> None:
        """The user asked to reconnect: an open socket (perhaps stalled) is closed and reopened at
        once, a backoff wait is cut short, and a FAILED connection is tried once more."""
        if self._closing:
            return
        if self.state is ConnectionState.FAILED:
            self.backoff.reset()
            self.start()
        elif self._ws is not None:
            self._skip_backoff = True
            self._ws.transport.abort()
        else:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            try:
                reason = await self._session_attempt()
            except Exception as exc:  # our bug, not the venue's: show it, then retry
                log.exception("%s: connection task error", self.label)
                reason = f"internal error: {type(exc).__name__}: {escape(exc, 80)}"
                self._set_state(ConnectionState.FAILED, reason)
            if reason is None or self._closing:
                return
            if self._skip_backoff:
                self._skip_backoff = False
                self.reconnects += 1
                continue
            await self._wait_backoff(reason)

    async def _session_attempt(self) -> str | None:
        """Connect, run one session, and say why it ended (``None``: final, do not retry)."""
        self._set_state(ConnectionState.CONNECTING)
        self._session_data_since = None
        try:
            dial = await self.adapter.dial(self.group, list(self.streams))
        except Refused as exc:
            self._fail(escape(exc, 160))
            return None
        except RestError as exc:  # fetching a token failed: retried like a failed connect
            if exc.retry_after:
                self._not_before = self._clock() + exc.retry_after
            return f"token request failed: {exc}"
        try:
            self._lifetime = dial.max_lifetime
            self._path = urlsplit(dial.url).path or "/"
            async with connect(
                dial.url,
                additional_headers=dial.headers or None,
                subprotocols=list(dial.subprotocols) or None,
                ping_interval=None,  # liveness is ours (venue pings differ), see _watch
                max_size=MAX_FRAME_BYTES,
                open_timeout=10,
                close_timeout=2,
            ) as ws:
                self._ws = ws
                self._outbox = asyncio.Queue()
                self._sessions += 1
                self._recorded_as = session_label(self.label, self._sessions)
                if (handshake := self.adapter.handshake(self.group)) is not None:
                    refusal = await self._handshake(ws, handshake)
                    if refusal is not None:
                        self._fail(f"authentication refused: {escape(refusal, 120)}")
                        return None
                self._set_state(ConnectionState.LIVE)
                self._resubscribe_all()
                await self._session(ws)
                code, reason = ws.close_code, ws.close_reason or ""
        except InvalidStatus as exc:
            status = exc.response.status_code
            code, reason = None, f"HTTP {status} on connect"
            if status in (401, 403):
                self._fail(f"authentication rejected (HTTP {status})")
                return None
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            reason = _describe(exc)
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            code, reason = None, _describe(exc)
        finally:
            self._ws = None
            self._outbox = None
            self._drop_streams()
        if (fatal := self.adapter.fatal_close(code, reason)) is not None:
            self._fail(f"{fatal} (close {code})")
            return None
        if self._final_error is not None:
            final, self._final_error = self._final_error, None
            self._fail(final)
            return None
        since = self._session_data_since
        if since is not None and self.last_data_at is not None and self.last_data_at - since >= self.healthy_after:
            self.backoff.reset()  # it delivered for a while: a drop now is news, not a pattern
        return escape(reason, 120) or (f"closed ({code})" if code else "closed")

    async def _handshake(self, ws: ClientConnection, handshake: Handshake) -> str | None:
        """Send the handshake and wait for the venue's acceptance; the venue's refusal message,
        or ``None`` once accepted. Raises ``TimeoutError`` when the venue does not answer."""
        for message in handshake.messages:
            await ws.send(message)
        async with asyncio.timeout(handshake.timeout):
            while True:
                frame = await ws.recv()
                if self._recorder is not None:
                    self._recorder.ws(self.adapter.venue, self._recorded_as, self._path, frame)
                self._last_inbound = self._clock()
                try:
                    decoded = self._decode(frame)
                except Exception as exc:  # a bad frame is counted, and the wait goes on
                    self._bad_frame(f"during authentication: {type(exc).__name__}: {exc}")
                    continue
                for item in decoded:
                    if isinstance(item, Authenticated):
                        return None
                    if isinstance(item, VenueError):
                        return item.message

    async def _wait_backoff(self, reason: str) -> None:
        delay = max(self.backoff.next_delay(), self._not_before - self._clock())
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
        log.error("%s: %s; not retrying", self.label, escape(reason))
        for stream in self.streams.values():
            self._sink.set_stream_state(stream, StreamState.ERROR, reason)
        self._set_state(ConnectionState.FAILED, reason)

    def _resubscribe_all(self) -> None:
        streams = list(self.streams.values())
        for stream in streams:
            if stream.last_data_at is not None:
                # Rebuild from the venue, never merge into what was held before the drop.
                stream.data.clear()
                self._sink.set_stream_state(stream, StreamState.RESYNCING, "resubscribing")
        self._subscribe(streams, initial=True)

    def _drop_streams(self) -> None:
        for task in self._stream_tasks.values():
            task.cancel()
        self._stream_tasks.clear()
        self._unanswered.clear()
        self._requests.clear()
        for stream in self.streams.values():
            if stream.state not in (StreamState.ERROR, StreamState.PENDING):
                self._sink.set_stream_state(stream, StreamState.STALE, "disconnected")

    # --- one connected session ----------------------------------------------------------------

    async def _session(self, ws: ClientConnection) -> None:
        helpers = [asyncio.create_task(self._watch(ws)), asyncio.create_task(self._sender(ws))]
        try:
            async for frame in ws:
                self._receive(frame)
        finally:
            for task in helpers:
                task.cancel()

    async def _sender(self, ws: ClientConnection) -> None:
        """Send queued messages in order, no faster than the venue's inbound message limit."""
        outbox = self._outbox
        assert outbox is not None
        rate = self.adapter.max_messages_per_second
        while True:
            message = await outbox.get()
            try:
                await ws.send(message)
            except websockets.ConnectionClosed:
                return
            if rate:
                await asyncio.sleep(1.0 / rate)

    def _receive(self, frame: str | bytes) -> None:
        """Take one frame. Nothing in it may end the session: a failure anywhere in decoding,
        routing, ingesting or a listener is that frame's failure, counted and logged."""
        if self._recorder is not None:  # before decoding: the frame as it arrived
            self._recorder.ws(self.adapter.venue, self._recorded_as, self._path, frame)
        now = self._clock()
        self.frames += 1
        self._arrivals.append(now)
        self._prune_arrivals(now)
        self._last_inbound = now
        self._probe_sent_at = None  # any inbound frame proves the socket alive
        if self.state is ConnectionState.STALE:
            self._set_state(ConnectionState.LIVE)
        try:
            decoded = self._decode(frame)
        except DecodeError as exc:
            self._bad_frame(str(exc))
            return
        except Exception as exc:  # an adapter bug must cost one frame, not the feed
            self._bad_frame(f"adapter failed: {type(exc).__name__}: {exc}")
            return
        for item in decoded:
            try:
                self._handle(item, now)
            except Exception as exc:
                self._bad_frame(f"handling {type(item).__name__} failed: {type(exc).__name__}: {exc}")

    def _handle(self, item: Decoded, now: float) -> None:
        if isinstance(item, Data):
            stream = self._routes.get(item.route)
            if stream is None:
                return  # data for a stream just unsubscribed
            self.last_data_at = now
            if self._session_data_since is None:
                self._session_data_since = now
            if not stream.confirmed:
                self._answered(stream)
                if isinstance(item.event, Trades):
                    item.event.backlog = True  # first frames are backlogs, on every venue
            self._sink.ingest(stream, item.event)
        elif isinstance(item, Ack):
            if not item.unsubscribe:
                streams = self._streams_named(item.subscription, item.request_id, partial=item.partial)
                if item.partial:  # one ack per subscribe: the oldest unanswered one it fits
                    streams = [stream for stream in streams if stream.key in self._unanswered][:1]
                for stream in streams:
                    self._answered(stream)
                    self._sink.confirm(stream)
        elif isinstance(item, VenueError):
            self._venue_error(item)
        # Pong, Ignored: liveness is already noted above; they carry nothing else.

    def _answered(self, stream: Stream) -> None:
        """The venue accepted the stream's subscription: no re-send, no refusal backoff."""
        self._unanswered.pop(stream.key, None)
        self._refusals.pop(stream.key, None)

    def _bad_frame(self, problem: str) -> None:
        self.decode_errors += 1
        kind = problem.partition(":")[0]
        self._log.warning(kind, f"{self.label}: bad frame #{self.decode_errors}: {problem}")

    def _venue_error(self, error: VenueError) -> None:
        if error.final:
            self._final_error = escape(error.message, 160)
            if self._ws is not None:
                self._ws.transport.abort()
            return
        streams = self._streams_named(error.subscription, error.request_id, partial=error.partial)
        message = escape(error.message)
        if not streams:
            self._log.warning(f"venue error {message}", f"{self.label}: venue error: {message}")
            return
        for stream in streams:
            self._unanswered.pop(stream.key, None)
            self._sink.set_stream_state(stream, StreamState.ERROR, message)
            self._retry_refused(stream)

    def _retry_refused(self, stream: Stream) -> None:
        """Ask again later: a refusal may be passing (a market not listed yet, a venue limit)."""
        backoffs = self._refusals.setdefault(stream.key, Backoff(self.backoff.initial, self.backoff.maximum))
        delay = max(backoffs.next_delay(), self.backoff.initial)
        self._cancel_stream_task(stream.key)
        self._stream_tasks[stream.key] = asyncio.create_task(self._resubscribe_later(stream, delay))

    async def _resubscribe_later(self, stream: Stream, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.streams.get(stream.key) is stream and self._open and stream.state is StreamState.ERROR:
            del self._stream_tasks[stream.key]
            self._subscribe([stream])

    def _streams_named(self, subscription: object, request_id: int | None, *, partial: bool = False) -> list[Stream]:
        """The streams an ack or error is about: those of the request it names by id, or those
        whose subscription it echoes. Echoes are normalized (fields added), so ours must be a
        subset of the echo; a ``partial`` echo (fields left out) must be a subset of ours."""
        if request_id is not None:
            keys = self._requests.pop(request_id, ())
            return [self.streams[key] for key in keys if key in self.streams]
        if not isinstance(subscription, dict):
            return []
        named = []
        for stream in self.streams.values():
            ours = self.adapter.subscription(stream.key)
            if not isinstance(ours, dict):
                continue
            small, large = (subscription, ours) if partial else (ours, subscription)
            if all(large.get(k) == v for k, v in small.items()):
                named.append(stream)
        return named

    async def _watch(self, ws: ClientConnection) -> None:
        """Probe liveness; abort the socket when a probe goes unanswered."""
        policy = self.liveness
        tick = min(0.25, policy.pong_timeout / 4)
        now = self._clock()
        self._last_inbound = now
        self._probe_sent_at = None
        last_ping = opened = last_audit = now
        rotating = False
        audit = min(self.adapter.audit_every.values(), default=None)
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
            if audit is not None and now - last_audit >= audit:
                last_audit = now
                self._audit()
            if self._lifetime is not None and now - opened >= rotation_due(self._lifetime) and not rotating:
                rotating = True  # once per socket
                self._sink.rotate(self)
            if not self._check_unanswered(now):
                ws.transport.abort()
                return

    def _audit(self) -> None:
        """Ask again for every live stream the adapter audits (see ``VenueAdapter.audit_every``)."""
        for stream in self.streams.values():
            if stream.key.channel in self.adapter.audit_every and stream.state is StreamState.LIVE:
                self._send_all(self.adapter.resync_messages(stream.key) or [])

    def _check_unanswered(self, now: float) -> bool:
        """Re-send a subscribe the venue ignored; on a second silence, recycle the connection
        (returns False). A lost subscribe would otherwise leave the widget waiting forever."""
        limit = self.liveness.subscribe_timeout
        for key, (sent_at, times) in list(self._unanswered.items()):
            if now - sent_at < limit:
                continue
            stream = self.streams[key]
            if times >= 2:
                reason = f"no answer to subscribe in {limit:.0f}s, twice; reconnecting"
                log.warning("%s: %s: %s", self.label, key, reason)
                self._sink.set_stream_state(stream, stream.state, reason)
                return False
            self._unanswered[key] = (now, times + 1)
            self._sink.set_stream_state(stream, stream.state, f"no answer in {limit:.0f}s; subscribe re-sent")
            self._request([key])
        return True

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
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    def _send_all(self, messages: list[str]) -> None:
        for message in messages:
            self._send(message)

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
            resyncs=sum(stream.resyncs for stream in self.streams.values()),
            gaps=sum(stream.data.gaps for stream in self.streams.values() if isinstance(stream.data, BookData)),
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, websockets.ConnectionClosed):
        if exc.rcvd is None:
            return "connection lost"
        # The venue's reason says why (Hypercall: pong timeout, slow consumer and its recovery).
        return f"closed by venue ({exc.rcvd.code}: {exc.rcvd.reason})" if exc.rcvd.reason else f"closed by venue ({exc.rcvd.code})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return type(exc).__name__
