"""The demo: the built-in emulators in a child process, reached over loopback like a real venue.

A child process (``python -m app sim --json``) rather than tasks in the UI's event loop, so that the
emulators' work does not share the UI's core budget and so that killing it behaves exactly like a
venue going away (the supervisor shows stale, then reconnects when it is back).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterable

import orjson

from app.model import Venue
from app.venues.base import Endpoint


DEMO_PORT_BASE = 47800
"""The demo's emulators listen here when the ports are free (free ports otherwise), so that an
emulator stopped and started again with ``perpterm sim --port-base 47800`` is found by the app."""


class EmulatorProcess:
    """Starts ``perpterm sim`` for some venues and reads the endpoints it prints."""

    def __init__(self, venues: Iterable[Venue], seed: int, startup_timeout: float = 20.0) -> None:
        self.venues = list(venues)
        self.seed = seed
        self.startup_timeout = startup_timeout
        self.endpoints: dict[Venue, Endpoint] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> dict[Venue, Endpoint]:
        try:
            return self._start(DEMO_PORT_BASE)
        except RuntimeError:
            return self._start(0)

    def _start(self, port_base: int) -> dict[Venue, Endpoint]:
        command = [
            sys.executable, "-m", "app", "sim", "--json",
            "--seed", str(self.seed),
            "--venues", ",".join(self.venues),
            "--port-base", str(port_base),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
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
                self.endpoints[Venue(info["venue"])] = Endpoint(info["ws"], info["http"])
            except (orjson.JSONDecodeError, KeyError, ValueError):
                continue
            if len(self.endpoints) == len(self.venues):
                return

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
