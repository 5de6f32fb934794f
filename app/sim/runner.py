"""Running emulators: in a process (``perpterm sim``), in a test's event loop, or in a thread.

* :func:`main` is ``perpterm sim``: one port per venue, one line per venue on stdout once every
  server listens (the demo parses these ``--json`` lines from a child process), clean exit 0 on
  SIGINT/SIGTERM.
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
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Self, TypeVar


from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.server import DEFAULT_SEED, EmulatorServer

__all__ = ["VENUE_EMULATORS", "EmulatorThread", "main", "start_emulators"]

T = TypeVar("T")

#: Emulator class per venue id (ids to come: aster, polymarket, perps-studio, hypercall, perpex, rails).
VENUE_EMULATORS: dict[str, type[EmulatorServer]] = {
    "hyperliquid": HyperliquidEmulator,
}


async def start_emulators(
    venues: Iterable[str],
    host: str = "127.0.0.1",
    seed: int = DEFAULT_SEED,
    ports: dict[str, int] | None = None,
    **options: Any,
) -> list[EmulatorServer]:
    """Start one emulator per venue (port from ``ports`` or a free one); all or none are left running.

    ``options`` go to every emulator's constructor (``autostep``, ``idle_timeout``, ...).
    """
    servers: list[EmulatorServer] = []
    try:
        for venue in venues:
            try:
                cls = VENUE_EMULATORS[venue]
            except KeyError:
                raise ValueError(f"no emulator for venue {venue!r} (known: {', '.join(VENUE_EMULATORS)})") from None
            server = cls(seed=seed, **options)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perpterm sim",
        description="Run the venue emulators on loopback; prints one line per venue once listening.",
    )
    parser.add_argument("--venues", default="hyperliquid", help=f"comma-separated venue ids ({', '.join(VENUE_EMULATORS)})")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port-base", type=int, default=0, metavar="N", help="first port, one per venue in order (0: free ports)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"market seed (default {DEFAULT_SEED})")
    parser.add_argument("--json", action="store_true", help="print one JSON object per venue")
    return parser


def _describe(server: EmulatorServer, as_json: bool) -> str:
    if as_json:
        described = {"venue": server.venue, "http": server.http_url, "ws": server.ws_url, **server.demo_credentials()}
        return json.dumps(described)
    return f"{server.venue:<12} {server.http_url}  {server.ws_url}"


async def _serve(venues: list[str], host: str, seed: int, ports: dict[str, int], as_json: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        servers = await start_emulators(venues, host, seed, ports)
    except OSError as exc:
        print(f"perpterm sim: cannot listen: {exc}", file=sys.stderr)
        return 1
    try:
        for server in servers:
            print(_describe(server, as_json))
        sys.stdout.flush()
        await stop.wait()
    finally:
        await asyncio.gather(*(server.stop() for server in servers), return_exceptions=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``perpterm sim [--venues ...] [--host H] [--port-base N] [--seed N] [--json]``."""
    args = _parser().parse_args(argv)
    venues = [venue.strip() for venue in args.venues.split(",") if venue.strip()]
    unknown = [venue for venue in venues if venue not in VENUE_EMULATORS]
    if not venues or unknown:
        print(f"perpterm sim: unknown venue(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(VENUE_EMULATORS)}", file=sys.stderr)
        return 2
    ports = {venue: args.port_base + i for i, venue in enumerate(venues)} if args.port_base else {}
    return asyncio.run(_serve(venues, args.host, args.seed, ports, args.json))


if __name__ == "__main__":
    sys.exit(main())
