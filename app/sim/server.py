"""The emulator server mechanism every venue emulator is built on.

Why one base: the client's supervisor (reconnect, stale detection, resubscribe, resync) must be
tested against the same faults on every venue, and the benchmark needs the same flood path
everywhere. So the transport, the clock, the fault controls and the statistics live here, and a venue
subclass (``app.sim.hyperliquid`` ...) only adds its paths, its message handling and its frame
formats.

One aiohttp application serves HTTP and WebSocket on ONE port, because the venues put REST
(``POST /info``) and streams on the same host, and because the ``websockets`` library cannot read
POST bodies.

Clock: an :class:`~app.sim.engine.MarketEngine` on a virtual millisecond clock. With ``autostep``
(the default) a tick loop advances it by the wall time that passed, so the emulator looks live; with
``autostep=False`` nothing moves until a test calls :meth:`EmulatorServer.advance`, which makes every
frame's content a function of the seed and the ``advance`` calls only.

Fault controls, for the reconnect supervisor's tests (all synchronous unless noted):

* :meth:`~EmulatorServer.drop_all` aborts every open connection at TCP level (RST, no close frame);
* :meth:`~EmulatorServer.stall` freezes the server: sockets stay open, nothing is sent (no data, no
  pong, no answer to requests; HTTP requests hang) until un-stalled; pushes due meanwhile are
  dropped, requests received meanwhile are answered after it resumes (the market keeps moving);
* :meth:`~EmulatorServer.refuse` stops listening (new connects get ECONNREFUSED) and drops existing
  connections; ``refuse(False)`` listens again on the same port before it returns;
* ``await`` :meth:`~EmulatorServer.restart` closes every WebSocket with 1012 (service restart), stops
  listening and listens again on the same port, keeping the engine (design decision: the close code
  is the one RFC 6455 registers for a restart);
* :meth:`~EmulatorServer.reject_new_connections` accepts the upgrade and closes it at once with a given
  code and reason (e.g. 4001 "unauthorized"); ``None`` turns it off;
* :meth:`~EmulatorServer.fail_http` answers every HTTP request with a given status and body
  (REST snapshot failures; the body may be hostile text);
* :meth:`~EmulatorServer.ignore_requests` drops, unanswered, every client frame that contains a
  given text (e.g. ``'"subscribe"'``): a lost subscribe, while pings are still answered;
* ``await`` :meth:`~EmulatorServer.inject` sends raw frames (poison, hostile text) to every open
  WebSocket, in order with the venue's own frames: ``str`` as text frames, ``bytes`` as binary;
* :meth:`~EmulatorServer.arm_book_fault` makes the next book update of a market go wrong in one
  of the ways a feed does (:data:`BOOK_FAULTS`: skip an update id, send one twice, swap two, send
  a delta before the subscriber has any snapshot); each venue applies it where it publishes books
  (:meth:`~EmulatorServer.take_book_fault`), so one fault suite runs over every venue;
* ``max_connection_age`` closes each WebSocket that old with 1001 (Aster's 24 h lifetime,
  shortened in tests);
* :meth:`~EmulatorServer.start_heartbeat` (for venues whose server pings) sends a ping control frame
  every ``ping_interval`` and closes with 1008 ``pong timeout`` when no pong came for
  ``pong_timeout``; a stall freezes this clock like every other;
* ``await`` :meth:`~EmulatorServer.flood` (each venue implements it with
  :meth:`~EmulatorServer.send_burst`) sends order-book frames as fast as the transports take them.

Upgrades: a venue that vets the handshake (a token in a subprotocol, required query parameters)
overrides :meth:`~EmulatorServer.check_upgrade`, which refuses with an HTTP response or names the
subprotocols the server may select; the shared fault suite dials every venue with
:meth:`~EmulatorServer.demo_connect`, the arguments a valid demo client passes.

Server-silence idle close: a connection the server has sent nothing to for ``idle_timeout`` seconds
is closed with 1000 (Hyperliquid reference §2.3, 60 s; the close code is a design decision there).
A venue measuring idleness otherwise overrides :meth:`~EmulatorServer.idle_since` (e.g. client
silence: ``conn.last_received``, any frame from the client) and :attr:`~EmulatorServer.idle_close`.

Slow consumers: writes never wait in the tick loop; a client whose unread output exceeds
``write_buffer_limit`` bytes is dropped (as real venues do) instead of stalling everyone else.
"""

from __future__ import annotations

import asyncio
from collections import deque
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

from aiohttp import WSMessage, WSMsgType, web

from app.sim.engine import AssetSpec, MarketEngine, StepEvents

__all__ = ["BOOK_FAULTS", "DEFAULT_SEED", "EmulatorServer", "EmulatorStats", "RollingLimit", "WsConnection"]

log = logging.getLogger(__name__)

DEFAULT_SEED = 1
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY_VIOLATION = 1008
CLOSE_SERVICE_RESTART = 1012

BookFault = Literal["skip", "duplicate", "reorder", "delta_before_snapshot"]
BOOK_FAULTS: tuple[BookFault, ...] = ("skip", "duplicate", "reorder", "delta_before_snapshot")


@dataclass(slots=True)
class EmulatorStats:
    """Counters since the server object was created (they survive restart)."""

    connections_accepted: int = 0  # WebSocket upgrades
    ws_refused: int = 0  # upgrades refused with an HTTP error (see EmulatorServer.check_upgrade)
    http_requests: int = 0
    frames_sent: int = 0  # WebSocket data frames, all connections
    frames_received: int = 0
    dropped_slow_consumers: int = 0
    idle_closes: int = 0
    lifetime_closes: int = 0


class RollingLimit:
    """At most ``limit`` events within any ``period`` seconds (a sliding log of their monotonic times).

    One mechanism for every rate limit the venues document, whether a venue closes the socket, answers
    an error or returns HTTP 429: only admitted events count, so a refused client is told exactly when
    the oldest admitted event leaves the window.
    """

    def __init__(self, limit: float, period: float) -> None:
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque()

    def admit(self) -> float:
        """Count one event and return 0.0, or, over the limit, count nothing and return the seconds
        until an event would be admitted."""
        now = time.monotonic()
        times = self._times
        while times and now - times[0] >= self.period:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return 0.0
        return max(times[0] + self.period - now, 1e-6)


class LiquidationScript:
    """The ``liquidation`` scenario's timeline, the same on every venue with a demo account:
    Normal for the first 10 s of virtual time, Warning until 25 s, then Liquidating."""

    STAGES: ClassVar[tuple[tuple[int, str], ...]] = ((10_000, "normal"), (25_000, "warning"))
    LAST = "liquidating"

    def __init__(self, start_ms: int, stage: str | None = None) -> None:
        self.start_ms = start_ms
        self.stage = stage

    def change(self, now_ms: int) -> str | None:
        """The stage at ``now_ms`` if it differs from the last one said, else ``None``."""
        elapsed = now_ms - self.start_ms
        stage = next((name for until, name in self.STAGES if elapsed < until), self.LAST)
        if stage == self.stage:
            return None
        self.stage = stage
        return stage


class WsConnection:
    """One upgraded WebSocket client. Venue subclasses keep their per-connection state in ``state``."""

    _ids = itertools.count(1)

    def __init__(self, server: EmulatorServer, request: web.Request, ws: web.WebSocketResponse) -> None:
        self.id = next(self._ids)
        self.server = server
        self.request = request
        self.ws = ws
        self.transport = request.transport
        self.last_sent = time.monotonic()
        self.opened_at = self.last_sent
        self.last_pong = self.last_sent  # a pong frame from the client (solicited or not)
        self.last_received = self.last_sent  # any frame from the client (data, ping, pong)
        self.heartbeat: asyncio.Task[None] | None = None  # see EmulatorServer.start_heartbeat
        self.state: dict[str, Any] = {}

    @property
    def closed(self) -> bool:
        return self.ws.closed or self.transport is None or self.transport.is_closing()

    async def send(self, frame: bytes, *, backpressure: bool = False) -> bool:
        """Send one text frame (already encoded JSON). Returns False if it was not sent.

        Without ``backpressure`` (the live feeds) the write never waits: a connection whose send buffer
        is over the limit is aborted as a slow consumer. With it (floods) the call awaits the drain.
        """
        server = self.server
        if server.stalled or self.closed:
            return False
        if not backpressure and self.transport.get_write_buffer_size() > server.write_buffer_limit:
            server.stats.dropped_slow_consumers += 1
            log.info("dropping slow consumer %s", self.id)
            self.abort()
            return False
        try:
            await self.ws.send_frame(frame, WSMsgType.TEXT)
        except (ConnectionError, RuntimeError):
            return False
        self.last_sent = time.monotonic()
        server.stats.frames_sent += 1
        return True

    async def ping(self, payload: bytes = b"") -> None:
        """Send a ping control frame (venues whose server pings, e.g. Aster every few minutes)."""
        if not self.closed and not self.server.stalled:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.ping(payload)

    async def pong(self, payload: bytes) -> None:
        if not self.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.pong(payload)
                self.last_sent = time.monotonic()

    async def close(self, code: int, reason: str = "") -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
            await self.ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


class EmulatorServer:
    """HTTP + WebSocket emulator of one venue on one port, driven by a :class:`MarketEngine`.

    Subclasses set :attr:`venue`, :attr:`ws_path`, optionally :attr:`extra_ws_routes` and
    :attr:`greeting_text`, and override :meth:`http_routes`, :meth:`on_ws_open`, :meth:`on_ws_message`,
    :meth:`on_ws_close` and :meth:`on_step` (and :meth:`on_ws_frame`, :meth:`extra_urls` if needed).
    """

    venue: ClassVar[str] = ""
    ws_path: ClassVar[str] = "/ws"
    #: More aiohttp route patterns served by the WebSocket handler (venues with several stream paths,
    #: e.g. ``/ws/{streams:.*}``); the handler reads ``conn.request`` to tell them apart.
    extra_ws_routes: ClassVar[tuple[str, ...]] = ()
    greeting_text: ClassVar[str | None] = None
    #: Named market scenarios the constructor's ``scenario`` option accepts (``perpterm sim
    #: --scenario``); emulators without any take no ``scenario`` argument.
    scenarios: ClassVar[tuple[str, ...]] = ()
    #: Close code and reason for a connection idle for ``idle_timeout`` seconds (see :meth:`idle_since`).
    idle_close: ClassVar[tuple[int, str]] = (CLOSE_NORMAL, "idle timeout")

    def __init__(
        self,
        *,
        seed: int = DEFAULT_SEED,
        engine: MarketEngine | None = None,
        start_ms: int | None = None,
        tick_interval: float = 0.1,
        idle_timeout: float = 60.0,
        greeting: bool = False,
        autostep: bool = True,
        write_buffer_limit: int = 8 << 20,
        max_message_size: int = 1 << 20,
        max_connection_age: float | None = None,
        assets: Iterable[AssetSpec] | None = None,
    ) -> None:
        """``engine`` shares a market; otherwise one is built from ``assets`` (the engine's defaults
        when ``None``), starting now or at ``start_ms``."""
        if engine is not None and assets is not None:
            raise ValueError("pass an engine or the assets to build one, not both")
        self.seed = seed
        self.engine = engine or MarketEngine(
            seed, assets, start_ms=time.time_ns() // 1_000_000 if start_ms is None else start_ms
        )
        self.tick_interval = tick_interval
        self.idle_timeout = idle_timeout
        self.greeting = greeting
        self.autostep = autostep
        self.write_buffer_limit = write_buffer_limit
        self.max_message_size = max_message_size
        self.max_connection_age = max_connection_age
        self._book_faults: dict[str, list[BookFault]] = {}
        self.stats = EmulatorStats()
        self.connections: set[WsConnection] = set()
        self._host = "127.0.0.1"
        self._port = 0
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self._relisten: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tick_task: asyncio.Task[None] | None = None
        self._step_lock = asyncio.Lock()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._rejection: tuple[int, str] | None = None
        self._ignored_request: str | None = None
        self._http_failure: tuple[int, str, float | None] | None = None
        self._virtual_anchor = (self.engine.now_ms, time.monotonic())

    # -- addresses -------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def http_url(self) -> str:
        return f"http://{self._url_host}:{self._port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self._port}{self.ws_path}"

    @property
    def _url_host(self) -> str:
        return f"[{self._host}]" if ":" in self._host else self._host

    def extra_urls(self) -> dict[str, str]:
        """More endpoints to advertise besides ``http`` and ``ws`` (``perpterm sim`` prints them)."""
        return {}

    def demo_credentials(self) -> dict[str, str]:
        """Credentials a client needs for this emulator (``api_key``, ``token``, ``wallet``); none by default."""
        return {}

    def demo_connect(self) -> dict[str, Any]:
        """Keyword arguments for ``websockets.asyncio.client.connect`` that open a socket this venue
        accepts, as a demo client would (a venue needing a key, a token or a query overrides it)."""
        return {"uri": self.ws_url}

    @property
    def stalled(self) -> bool:
        return not self._resumed.is_set()

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on ``host:port`` (0 picks a free port) and start the tick loop."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._host = host
        app = web.Application(middlewares=[self._http_middleware], client_max_size=self.max_message_size)
        for path in (self.ws_path, *self.extra_ws_routes):
            app.router.add_get(path, self._ws_handler)
        app.router.add_routes(self.http_routes())
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        sock = self._bind(host, port)
        self._port = sock.getsockname()[1]
        self._listener = await asyncio.get_running_loop().create_server(self._runner.server, sock=sock)
        self._virtual_anchor = (self.engine.now_ms, time.monotonic())
        self._tick_task = asyncio.create_task(self._tick_loop(), name=f"{self.venue}-tick")
        return self

    async def stop(self) -> None:
        """Close every connection (1001), stop listening and stop every loop."""
        if self._runner is None:
            return
        self._resumed.set()
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        await self._stop_listening()
        await self._close_all(CLOSE_GOING_AWAY, "server shutdown")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _bind(self, host: str, port: int) -> socket.socket:
        """Bind and listen synchronously, so the port accepts connections when this returns."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    async def _stop_listening(self) -> None:
        if self._relisten is not None:
            await self._relisten
            self._relisten = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    # -- clock -----------------------------------------------------------------------------------

    def now_ms(self) -> int:
        """The virtual clock between steps: last step's time plus wall time since (autostep only)."""
        anchor_ms, anchor_mono = self._virtual_anchor
        if not self.autostep:
            return anchor_ms
        return anchor_ms + int((time.monotonic() - anchor_mono) * 1000)

    async def advance(self, dt_ms: int) -> StepEvents:
        """Step the engine by ``dt_ms`` and publish what happened (what the tick loop calls)."""
        async with self._step_lock:
            events = self.engine.step(dt_ms)
            self._virtual_anchor = (self.engine.now_ms, time.monotonic())
            await self.on_step(events)
            return events

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        carried_ms = 0.0
        while True:
            await asyncio.sleep(self.tick_interval)
            now = loop.time()
            carried_ms += (now - last) * 1000
            last = now
            try:
                if self.autostep and carried_ms >= 1:
                    step = int(carried_ms)
                    carried_ms -= step
                    await self.advance(step)
                self._close_idle()
            except Exception:  # a bug in a venue's publisher must not stop the market
                log.exception("%s emulator tick failed", self.venue)

    def _close_idle(self) -> None:
        if self.stalled:
            return
        now = time.monotonic()
        deadline = now - self.idle_timeout
        age_limit = self.max_connection_age
        for conn in list(self.connections):
            if conn.closed:
                continue
            idle_since = self.idle_since(conn)
            if idle_since is not None and idle_since < deadline:
                self.stats.idle_closes += 1
                self.spawn(conn.close(*self.idle_close))
            elif age_limit is not None and now - conn.opened_at > age_limit and not conn.state.get("expiring"):
                conn.state["expiring"] = True
                self.stats.lifetime_closes += 1
                self.spawn(conn.close(CLOSE_GOING_AWAY, "connection lifetime reached"))

    def idle_since(self, conn: WsConnection) -> float | None:
        """Monotonic time since which ``conn`` counts as idle (``None``: it cannot be idle now). The
        default is server silence, ``conn.last_sent``."""
        return conn.last_sent

    def start_heartbeat(self, conn: WsConnection, ping_interval: float, pong_timeout: float, reason: str = "pong timeout") -> None:
        """Ping ``conn`` every ``ping_interval`` seconds; close it with 1008 ``reason`` when no pong
        arrived for ``pong_timeout`` seconds. Ends with the connection; a stall freezes it."""
        conn.heartbeat = self.spawn(self._heartbeat(conn, ping_interval, pong_timeout, reason))

    async def _heartbeat(self, conn: WsConnection, ping_interval: float, pong_timeout: float, reason: str) -> None:
        next_ping = conn.opened_at + ping_interval
        while not conn.closed:
            deadline = conn.last_pong + pong_timeout
            await asyncio.sleep(max(0.0, min(next_ping, deadline) - time.monotonic()) + 0.001)
            if conn.closed:
                return
            now = time.monotonic()
            if self.stalled:
                conn.last_pong, next_ping = now, now + ping_interval
                await asyncio.sleep(self.tick_interval)
                continue
            if now >= conn.last_pong + pong_timeout:
                await conn.close(CLOSE_POLICY_VIOLATION, reason)
                return
            if now >= next_ping:
                await conn.ping()
                next_ping = now + ping_interval

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run a coroutine in the background, owned (and cancelled on stop) by this server."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- transport -------------------------------------------------------------------------------

    @web.middleware
    async def _http_middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        is_ws = self._is_ws_route(request)
        if not is_ws:
            self.stats.http_requests += 1
        await self._resumed.wait()
        if self._http_failure is not None and not is_ws:
            status, body, retry_after = self._http_failure
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            return web.Response(status=status, text=body, headers=headers)
        return await handler(request)

    def _is_ws_route(self, request: web.Request) -> bool:
        return getattr(request.match_info, "handler", None) == self._ws_handler

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        verdict = self.check_upgrade(request)
        if isinstance(verdict, web.StreamResponse):
            self.stats.ws_refused += 1
            return verdict
        ws = web.WebSocketResponse(autoping=False, max_msg_size=self.max_message_size, protocols=verdict)
        await ws.prepare(request)
        self.stats.connections_accepted += 1
        if request.transport is not None:
            request.transport.set_write_buffer_limits(high=self.write_buffer_limit)
        conn = WsConnection(self, request, ws)
        if self._rejection is not None:
            code, reason = self._rejection
            await conn.close(code, reason)
            return ws
        self.connections.add(conn)
        try:
            if self.greeting and self.greeting_text is not None:
                await conn.send(self.greeting_text.encode())
            await self.on_ws_open(conn)
            async for message in ws:
                await self._resumed.wait()
                try:
                    await self._dispatch(conn, message)
                except Exception:  # untrusted input must never take the server or the socket down
                    log.exception("%s connection %s: message handling failed", self.venue, conn.id)
        finally:
            self.connections.discard(conn)
            if conn.heartbeat is not None:
                conn.heartbeat.cancel()
            self.on_ws_close(conn)
        return ws

    async def _dispatch(self, conn: WsConnection, message: WSMessage) -> None:
        conn.last_received = time.monotonic()
        if not await self.on_ws_frame(conn, message.type):
            return
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            self.stats.frames_received += 1
            text = message.data if message.type is WSMsgType.TEXT else message.data.decode("utf-8", "replace")
            if self._ignored_request is not None and self._ignored_request in text:
                return
            await self.on_ws_message(conn, text)
        elif message.type is WSMsgType.PING:
            await conn.pong(message.data)
        elif message.type is WSMsgType.PONG:
            conn.last_pong = time.monotonic()

    async def broadcast(self, connections: Iterable[WsConnection], frame: bytes) -> None:
        """Send one encoded frame to each connection (never waits on a slow one)."""
        for conn in list(connections):
            await conn.send(frame)

    async def send_burst(self, connections: Iterable[WsConnection], frames: Iterable[bytes]) -> int:
        """Send frames back to back to every connection, awaiting the transport's drain as needed."""
        targets = list(connections)
        sent = 0
        for frame in frames:
            for conn in targets:
                sent += await conn.send(frame, backpressure=True)
        return sent

    async def _close_all(self, code: int, reason: str) -> None:
        conns = list(self.connections)
        if conns:
            closes = [asyncio.wait_for(conn.close(code, reason), 2.0) for conn in conns]
            await asyncio.gather(*closes, return_exceptions=True)
        self._abort_all()

    def _abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                if handler.transport is not None:
                    handler.transport.abort()

    # -- fault controls --------------------------------------------------------------------------

    def drop_all(self) -> None:
        """Abort every open connection (WebSocket and HTTP keep-alive) with a TCP reset."""
        self._abort_all()

    def stall(self, on: bool = True) -> None:
        """Freeze (``True``) or resume (``False``) all sending and request handling."""
        if on:
            self._resumed.clear()
            return
        now = time.monotonic()
        for conn in self.connections:
            conn.last_sent = conn.last_received = now  # the idle clock did not run while frozen
        self._resumed.set()

    def refuse(self, on: bool = True) -> None:
        """Stop listening and drop every connection, or listen again on the same port."""
        if on:
            if self._relisten is not None:
                self._relisten.cancel()
                self._relisten = None
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            self._abort_all()
            return
        if self._listener is not None or self._relisten is not None:
            return
        sock = self._bind(self._host, self._port)
        self._relisten = asyncio.get_running_loop().create_task(self._serve(sock))

    async def _serve(self, sock: socket.socket) -> None:
        assert self._runner is not None and self._runner.server is not None
        try:
            self._listener = await asyncio.get_running_loop().create_server(self._runner.server, sock=sock)
        except BaseException:
            sock.close()
            raise
        self._relisten = None

    async def restart(self) -> None:
        """Close every WebSocket (1012), stop listening, listen again on the same port.

        Connections start fresh (the venue state lives on the connections); the engine, the
        statistics and the port stay; stall and rejection are cleared.
        """
        await self._stop_listening()
        self._resumed.set()
        self._rejection = None
        await self._close_all(CLOSE_SERVICE_RESTART, "service restart")
        self.refuse(False)
        if self._relisten is not None:
            await self._relisten

    def reject_new_connections(self, close_code: int | None, reason: str = "") -> None:
        """Close every new WebSocket right after the upgrade with ``close_code`` (None: accept again)."""
        self._rejection = None if close_code is None else (close_code, reason)

    def arm_book_fault(self, market: str, fault: BookFault) -> None:
        """Make the next book update of ``market`` (the venue's own name) go wrong once."""
        if fault not in BOOK_FAULTS:
            raise ValueError(f"unknown book fault {fault!r} (known: {', '.join(BOOK_FAULTS)})")
        self._book_faults.setdefault(market, []).append(fault)

    def take_book_fault(self, market: str, only: Iterable[BookFault] | None = None) -> BookFault | None:
        """For venue publishers: the fault armed for ``market``'s next book update, if any.

        ``only`` takes the first armed fault of those kinds and leaves the others queued (a venue
        applies ``delta_before_snapshot`` when a subscriber arrives, the others when it publishes).
        """
        faults = self._book_faults.get(market)
        if not faults:
            return None
        if only is None:
            return faults.pop(0)
        kinds = set(only)
        for index, fault in enumerate(faults):
            if fault in kinds:
                return faults.pop(index)
        return None

    def fail_http(self, status: int | None, body: str = "", retry_after: float | None = None) -> None:
        """Answer every HTTP request with ``status`` and ``body`` (``None``: serve normally), with a
        ``Retry-After`` header when given."""
        self._http_failure = None if status is None else (status, body, retry_after)

    def ignore_requests(self, containing: str | None) -> None:
        """Drop, unanswered, client frames containing ``containing`` (``None``: answer all again)."""
        self._ignored_request = containing

    async def inject(self, *frames: str | bytes) -> int:
        """Send raw frames to every open WebSocket (``bytes`` as binary frames); returns how many
        were written. For poison-frame and hostile-text tests: no validation, no encoding."""
        sent = 0
        for conn in list(self.connections):
            for frame in frames:
                if self.stalled or conn.closed:
                    break
                kind = WSMsgType.BINARY if isinstance(frame, bytes) else WSMsgType.TEXT
                data = frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass")
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await conn.ws.send_frame(data, kind)
                    sent += 1
        return sent

    # -- venue hooks -----------------------------------------------------------------------------

    def http_routes(self) -> list[web.RouteDef]:
        return []

    def check_upgrade(self, request: web.Request) -> web.StreamResponse | tuple[str, ...]:
        """Vet an upgrade request before it is accepted: an HTTP response refuses it (e.g. 401 for a
        bad token); otherwise the subprotocols the server may select, of which aiohttp echoes the
        first the client offered (none by default). Runs before any fault control's rejection."""
        return ()

    async def on_ws_open(self, conn: WsConnection) -> None:
        """Called after the upgrade (and the optional greeting)."""

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        """Called for every text (or binary, decoded) frame from the client."""

    async def on_ws_frame(self, conn: WsConnection, kind: WSMsgType) -> bool:
        """Called for every frame from the client (data, ping, pong) before it is handled, e.g. to
        enforce a message-rate limit (:meth:`limit_rate`); returning False drops the frame unhandled."""
        return True

    async def limit_rate(self, conn: WsConnection, per_second: float, code: int, reason: str) -> bool:
        """Count one inbound frame of ``conn``; past ``per_second`` frames within the last second,
        close it with ``code``/``reason`` and drop this and every later frame (returns False), as
        for any connection whose ``state["closing"]`` an emulator has set."""
        if conn.state.get("closing"):
            return False
        arrivals: RollingLimit = conn.state.setdefault("arrivals", RollingLimit(per_second, 1.0))
        if not arrivals.admit():
            return True
        conn.state["closing"] = True
        await conn.close(code, reason)
        return False

    def on_ws_close(self, conn: WsConnection) -> None:
        """Called once when a connection ends, whatever the reason."""

    async def on_step(self, events: StepEvents) -> None:
        """Called after every engine step: push what the venue pushes."""

    async def flood(self, market: str, count: int) -> int:
        """Send ``count`` consecutive order-book frames of ``market`` to its subscribers as fast as
        the transports drain (benchmarks); returns the number of frames written."""
        raise NotImplementedError(f"{type(self).__name__} has no flood")
