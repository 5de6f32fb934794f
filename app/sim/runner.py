"""Running emulators: in a process (``perpterm sim``), in a test's event loop, or in a thread.

* :func:`main` is ``perpterm sim``: one port per venue, one line per venue on stdout once every
  server listens (the demo parses these ``--json`` lines from a child process), clean exit 0 on
  SIGINT/SIGTERM/SIGHUP. With ``--control-stdin`` it also reads :class:`Fault` commands from stdin,
  one JSON object per line (``{"fault": "stall", "seconds": 10}``, ``{"fault": "drop"}``,
  ``{"fault": "restart"}``), and exits when stdin reaches its end: the demo holds the other end of
  that pipe, so the emulators go away with the demo however it ends, even by ``kill -9`` (portable,
  unlike ``prctl(PR_SET_PDEATHSIG)``). ``--scenario NAME`` goes to the emulators whose class lists it
  in :attr:`~app.sim.server.EmulatorServer.scenarios` (``liquidation``: Hyperliquid, Hypercall, Perpex).
* :func:`start_emulators` starts several venues in the running event loop (async tests).
* :class:`EmulatorThread` runs them on a private event loop in a daemon thread, for synchronous
  clients (the official Hyperliquid SDK, ccxt) and for benchmarks; fault controls are called through
  it thread-safely.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar, get_args


from app.sim.aster import AsterEmulator
from app.sim.hypercall import HypercallEmulator
from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.perpex import PerpexEmulator
from app.sim.perps_studio import PerpsStudioEmulator
from app.sim.polymarket import PolymarketEmulator
from app.sim.rails import RailsEmulator
from app.sim.server import DEFAULT_SEED, EmulatorServer

__all__ = ["VENUE_EMULATORS", "EmulatorThread", "Fault", "FaultInjector", "main", "start_emulators"]

T = TypeVar("T")

#: Emulator class per venue id.
VENUE_EMULATORS: dict[str, type[EmulatorServer]] = {
    "hyperliquid": HyperliquidEmulator,
    "aster": AsterEmulator,
    "polymarket": PolymarketEmulator,
    "hypercall": HypercallEmulator,
    "perps-studio": PerpsStudioEmulator,
    "perpex": PerpexEmulator,
    "rails": RailsEmulator,
}


def scenarios() -> list[str]:
    """Every scenario some emulator declares (:attr:`EmulatorServer.scenarios`), in venue order."""
    return list(dict.fromkeys(name for cls in VENUE_EMULATORS.values() for name in cls.scenarios))


async def start_emulators(
    venues: Iterable[str],
    host: str = "127.0.0.1",
    seed: int = DEFAULT_SEED,
    ports: dict[str, int] | None = None,
    scenario: str | None = None,
    **options: Any,
) -> list[EmulatorServer]:
    """Start one emulator per venue (port from ``ports`` or a free one); all or none are left running.

    ``options`` go to every emulator's constructor (``autostep``, ``idle_timeout``, ...);
    ``scenario`` only to the emulators whose class declares it (the others run their usual market).
    """
    servers: list[EmulatorServer] = []
    try:
        for venue in venues:
            try:
                cls = VENUE_EMULATORS[venue]
            except KeyError:
                raise ValueError(f"no emulator for venue {venue!r} (known: {', '.join(VENUE_EMULATORS)})") from None
            extra = {"scenario": scenario} if scenario is not None and scenario in cls.scenarios else {}
            server = cls(seed=seed, **options, **extra)
            await server.start(host, (ports or {}).get(venue, 0))
            servers.append(server)
    except BaseException:
        await asyncio.gather(*(server.stop() for server in servers), return_exceptions=True)
        raise
    return servers


class EmulatorThread:
    """Emulators on their own event loop in a daemon thread; a context manager.

    ``with EmulatorThread(["hyperliquid"], seed=3) as emus: emus["hyperliquid"].http_url``. Use
    :meth:`call` for the synchronous fault controls and :meth:`run` for coroutines (``restart``,
    ``flood``, ``advance``): both execute on the emulators' loop and return the result.
    """

    def __init__(
        self,
        venues: Iterable[str] = ("hyperliquid",),
        *,
        host: str = "127.0.0.1",
        seed: int = DEFAULT_SEED,
        ports: dict[str, int] | None = None,
        startup_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        self.venues = list(venues)
        self.servers: list[EmulatorServer] = []
        self._start_args = (host, seed, ports, options)
        self._startup_timeout = startup_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulators", daemon=True)

    def __getitem__(self, venue: str) -> EmulatorServer:
        for server in self.servers:
            if server.venue == venue:
                return server
        raise KeyError(venue)

    def start(self) -> Self:
        self._thread.start()
        host, seed, ports, options = self._start_args
        try:
            self.servers = self.run(start_emulators(self.venues, host, seed, ports, **options), self._startup_timeout)
        except BaseException:
            self._shutdown_loop()
            raise
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.run(self._stop_servers(), 10.0)
        self._shutdown_loop()

    async def _stop_servers(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers), return_exceptions=True)

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run ``coro`` on the emulators' loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def call(self, fn: Callable[..., T | Awaitable[T]], *args: Any, timeout: float | None = 30.0) -> T:
        """Call ``fn(*args)`` on the emulators' loop (awaiting it if it returns an awaitable)."""

        async def invoke() -> T:
            result = fn(*args)
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                return await result
            return result  # type: ignore[return-value]

        return self.run(invoke(), timeout)


FaultKind = Literal["stall", "drop", "restart"]
MAX_STALL_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One command of the ``--control-stdin`` line protocol; invalid values raise ``ValueError``.

    ``stall`` freezes every emulator for ``seconds`` (then it resumes by itself), ``drop`` resets
    every connection, ``restart`` closes every WebSocket with 1012 and listens again.
    """

    kind: FaultKind
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in get_args(FaultKind):
            raise ValueError(f"unknown fault {self.kind!r} (known: {', '.join(get_args(FaultKind))})")
        if self.kind == "stall":
            if not (0 < self.seconds <= MAX_STALL_SECONDS):
                raise ValueError(f"a stall lasts more than 0 and at most {MAX_STALL_SECONDS:.0f} seconds")
        elif self.seconds:
            raise ValueError(f"{self.kind} takes no seconds")

    def line(self) -> bytes:
        """The command as one protocol line."""
        body: dict[str, object] = {"fault": self.kind}
        if self.kind == "stall":
            body["seconds"] = self.seconds
        return json.dumps(body).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Fault:
        """Read one protocol line."""
        try:
            body = json.loads(line)
        except ValueError:
            raise ValueError("not a JSON line") from None
        if not isinstance(body, dict) or not set(body) <= {"fault", "seconds"}:
            raise ValueError('expected {"fault": ..., "seconds": ...}')
        seconds = body.get("seconds", 0.0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
            raise ValueError("seconds must be a number")
        return cls(body.get("fault"), float(seconds))  # type: ignore[arg-type]  # checked by __post_init__


class FaultInjector:
    """Applies :class:`Fault`s to every emulator of a process; a stall lifts itself after its seconds."""

    def __init__(self, servers: list[EmulatorServer]) -> None:
        self.servers = servers
        self._resume: asyncio.TimerHandle | None = None

    async def apply(self, fault: Fault) -> None:
        if fault.kind == "stall":
            if self._resume is not None:
                self._resume.cancel()  # a new stall replaces the one in progress
            for server in self.servers:
                server.stall(True)
            self._resume = asyncio.get_running_loop().call_later(fault.seconds, self._unstall)
        elif fault.kind == "drop":
            for server in self.servers:
                server.drop_all()
        else:
            await asyncio.gather(*(server.restart() for server in self.servers))

    def _unstall(self) -> None:
        self._resume = None
        for server in self.servers:
            server.stall(False)


async def _follow_control(control: asyncio.StreamReader, injector: FaultInjector, stop: asyncio.Event) -> None:
    """Apply the fault lines read from ``control``; its end (the parent is gone) stops the process."""
    try:
        while line := await control.readline():
            try:
                fault = Fault.parse(line)
            except ValueError as exc:
                print(f"perpterm sim: control line ignored: {exc}", file=sys.stderr)
                continue
            try:
                await injector.apply(fault)
            except OSError as exc:  # e.g. a restart finds its port taken
                print(f"perpterm sim: {fault.kind} failed: {exc}", file=sys.stderr)
    finally:
        stop.set()


async def _stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perpterm sim",
        description="Run the venue emulators on loopback; prints one line per venue once listening.",
    )
    parser.add_argument(
        "--venues", default=",".join(VENUE_EMULATORS), help=f"comma-separated venue ids (default all: {', '.join(VENUE_EMULATORS)})"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port-base", type=int, default=0, metavar="N", help="first port, one per venue in order (0: free ports)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"market seed (default {DEFAULT_SEED})")
    parser.add_argument("--json", action="store_true", help="print one JSON object per venue")
    parser.add_argument(
        "--hostile-names",
        action="store_true",
        help="add markets named with markup, escape sequences and bidi controls (client hardening tests)",
    )
    parser.add_argument(
        "--scenario",
        choices=scenarios(),
        help="run a named market scenario on the emulators that have it (liquidation: the demo account "
        "goes Normal -> Warning after 10 s -> Liquidating after 25 s)",
    )
    parser.add_argument(
        "--control-stdin",
        action="store_true",
        help='read fault commands from stdin, one JSON object per line ({"fault": "stall", "seconds": 10}, '
        '{"fault": "drop"}, {"fault": "restart"}); exit when stdin ends',
    )
    return parser


def _describe(server: EmulatorServer, as_json: bool) -> str:
    if as_json:
        described = {"venue": server.venue, "http": server.http_url, "ws": server.ws_url, **server.extra_urls(), **server.demo_credentials()}
        return json.dumps(described)
    return "  ".join((f"{server.venue:<12} {server.http_url}", server.ws_url, *server.extra_urls().values()))


async def _serve(args: argparse.Namespace, venues: list[str], ports: dict[str, int]) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, stop.set)
    control: asyncio.StreamReader | None = None
    if args.control_stdin:
        try:
            control = await _stdin_reader()
        except (ValueError, OSError) as exc:  # a regular file or a closed stdin
            print(f"perpterm sim: --control-stdin needs stdin to be a pipe or a terminal: {exc}", file=sys.stderr)
            return 2
    options = {"hostile_names": True} if args.hostile_names else {}
    try:
        servers = await start_emulators(venues, args.host, args.seed, ports, args.scenario, **options)
    except OSError as exc:
        print(f"perpterm sim: cannot listen: {exc}", file=sys.stderr)
        return 1
    follower: asyncio.Task[None] | None = None
    try:
        for server in servers:
            print(_describe(server, args.json))
        sys.stdout.flush()
        if control is not None:
            follower = asyncio.create_task(_follow_control(control, FaultInjector(servers), stop))
        await stop.wait()
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        await asyncio.gather(*(server.stop() for server in servers), return_exceptions=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``perpterm sim [--venues ...] [--host H] [--port-base N] [--seed N] [--json] [--hostile-names]
    [--scenario NAME] [--control-stdin]``."""
    args = _parser().parse_args(argv)
    venues = [venue.strip() for venue in args.venues.split(",") if venue.strip()]
    unknown = [venue for venue in venues if venue not in VENUE_EMULATORS]
    if not venues or unknown:
        print(f"perpterm sim: unknown venue(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(VENUE_EMULATORS)}", file=sys.stderr)
        return 2
    if args.scenario is not None and not any(args.scenario in VENUE_EMULATORS[venue].scenarios for venue in venues):
        having = [venue for venue, cls in VENUE_EMULATORS.items() if args.scenario in cls.scenarios]
        print(f"perpterm sim: no selected venue has scenario {args.scenario!r} (it is on: {', '.join(having)})", file=sys.stderr)
        return 2
    ports = {venue: args.port_base + i for i, venue in enumerate(venues)} if args.port_base else {}
    return asyncio.run(_serve(args, venues, ports))


if __name__ == "__main__":
    sys.exit(main())
