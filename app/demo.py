"""The demo: the built-in emulators in a child process, reached over loopback like a real venue.

A child process (``python -m app sim --json``) rather than tasks in the UI's event loop, so that the
emulators' work does not share the UI's core budget and so that a fault behaves exactly like a
venue misbehaving (the supervisor shows stale, then reconnects when it is back).

The child runs with ``--control-stdin``: the demo keeps the write end of its stdin, sends it
:class:`~app.sim.runner.Fault` commands (the command palette's demo faults) and, by going away in
any way at all (even ``kill -9``), closes it, which makes the child exit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterable

import orjson

from app.model import Venue
from app.secrets import Credentials
from app.sim.runner import Fault
from app.venues.base import Endpoint


STOP_GRACE = 2.0
"""Seconds the emulators get to close their sockets before they are killed: the demo is exiting,
so nothing waits on a graceful close and the user should not wait for one either."""

DEMO_PORT_BASE = 47800
"""The demo's emulators listen here when the ports are free (free ports otherwise), so that the
endpoints are the same from one run to the next."""


class EmulatorProcess:
    """Starts ``perpterm sim`` for some venues, reads the endpoints it prints and sends it faults."""

    def __init__(
        self,
        venues: Iterable[Venue],
        seed: int,
        startup_timeout: float = 20.0,
        port_base: int = DEMO_PORT_BASE,
        scenario: str | None = None,
    ) -> None:
        """``scenario``: a scripted story the emulators play (``liquidation``: the demo accounts
        walk from Normal through Warning to Liquidating)."""
        self.venues = list(venues)
        self.seed = seed
        self.startup_timeout = startup_timeout
        self.port_base = port_base
        self.scenario = scenario
        self.endpoints: dict[Venue, Endpoint] = {}
        self.wallets: dict[Venue, str] = {}  # the emulators' demo accounts, as they announce them
        self.credentials: dict[Venue, Credentials] = {}  # the emulators' demo keys and tokens (fake: only they take them)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[Venue, Endpoint]:
        """Start the child on ``port_base`` (on free ports if those are taken)."""
        try:
            return self._start(self.port_base)
        except RuntimeError:
            if not self.port_base:
                raise
            return self._start(0)

    def _start(self, port_base: int) -> dict[Venue, Endpoint]:
        command = [
            sys.executable, "-m", "app", "sim", "--json", "--control-stdin",
            "--seed", str(self.seed),
            "--venues", ",".join(self.venues),
            "--port-base", str(port_base),
            *(("--scenario", self.scenario) if self.scenario else ()),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        reader = threading.Thread(target=self._read_endpoints, daemon=True)
        reader.start()
        reader.join(self.startup_timeout)  # returns early if the child exits (port taken)
        if len(self.endpoints) < len(self.venues):
            self.stop()
            missing = ", ".join(v for v in self.venues if v not in self.endpoints)
            raise RuntimeError(f"demo emulators did not start in time ({missing})")
        return self.endpoints

    def _read_endpoints(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            try:
                info = orjson.loads(line)
                extra = tuple((k, v) for k, v in info.items() if k.endswith(("_ws", "_http")) and isinstance(v, str))
                venue = Venue(info["venue"])
                self.endpoints[venue] = Endpoint(info["ws"], info["http"], extra)
                if isinstance(wallet := info.get("wallet"), str):
                    self.wallets[venue] = wallet
                if credentials := Credentials.of(info):
                    self.credentials[venue] = credentials
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue
            if len(self.endpoints) == len(self.venues):
                return

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def send(self, fault: Fault) -> None:
        """Make every emulator of the child misbehave; ``OSError`` if the child is not running."""
        process = self._process
        if process is None or process.stdin is None or process.poll() is not None:
            raise ProcessLookupError("the demo emulators are not running")
        process.stdin.write(fault.line())
        process.stdin.flush()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()  # the child's cue to exit
        try:
            process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
