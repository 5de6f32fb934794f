"""Ending perpterm, and the demo's emulator child.

SIGTERM and SIGHUP end the demo like ``q``: the terminal is restored and the emulator child is
stopped. A ``kill -9`` of the demo leaves no emulator behind either, because the child exits when
its stdin (a pipe the demo holds) reaches its end. The same pipe carries fault commands.

The demo runs for real: ``python -m app`` on a pseudo-terminal of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app.demo import EmulatorProcess
from app.model import Venue
from app.sim.runner import MAX_STALL_SECONDS, Fault
from tests.test_sim_runner import post_info

pytestmark = pytest.mark.timeout(60)
ROOT = Path(__file__).resolve().parents[1]
COLUMNS, LINES = 100, 30
LEAVE_ALTERNATE_SCREEN = b"\x1b[?1049l"
MOUSE_TRACKING_OFF = b"\x1b[?1000l"


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has exited; whoever inherited it may not have reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").glob("*") for child in (task / "children").read_text().split()]


class Terminal:
    """``python -m app`` (the demo) on a pseudo-terminal; a thread collects what the demo writes.

    With ``controlling`` the terminal is the demo's controlling terminal, as in a terminal emulator
    or over SSH: closing it hangs up (SIGHUP to the demo and its emulator child), and so does the
    demo's death. Without, the demo runs in a session of its own with the terminal only as its
    stdio, so nothing but the demo itself can end its emulator child.
    """

    def __init__(self, *, controlling: bool = True) -> None:
        argv = [sys.executable, "-m", "app"]
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES), "PYTHONPATH": str(ROOT)}
        winsize = struct.pack("HHHH", LINES, COLUMNS, 0, 0)
        if controlling:
            pid, master = pty.fork()
            if pid == 0:  # the child: size its terminal and become the demo
                try:
                    fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
                    os.execve(sys.executable, argv, env)
                finally:
                    os._exit(127)
        else:
            master, slave = os.openpty()
            try:
                fcntl.ioctl(slave, termios.TIOCSWINSZ, winsize)
                stdio = [(os.POSIX_SPAWN_DUP2, slave, fd) for fd in (0, 1, 2)]
                pid = os.posix_spawn(sys.executable, argv, env, file_actions=stdio, setsid=True)
            finally:
                os.close(slave)
        self.pid = pid
        self.master = master
        self.returncode: int | None = None
        self.emulator_pid: int | None = None
        self._output = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            if not select.select([self.master], [], [], 0.05)[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                return
            if not chunk:
                return
            with self._lock:
                self._output += chunk

    @property
    def output(self) -> bytes:
        with self._lock:
            return bytes(self._output)

    def wait_drawn(self) -> int:
        """Wait until the demo has drawn its header; return the emulator child's pid."""
        wait_until(lambda: b"DEMO" in self.output, 30, "the demo to draw")
        sims = [pid for pid in children(self.pid) if b"sim" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        assert len(sims) == 1, f"expected one emulator child, found {sims}"
        self.emulator_pid = sims[0]
        return sims[0]

    def exited(self) -> bool:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode is not None

    def wait(self, timeout: float) -> float:
        """Wait for the demo to exit; return the seconds it took."""
        return wait_until(self.exited, timeout, "the demo to exit")

    def hang_up(self) -> None:
        """Close the terminal's master side, as a terminal emulator or sshd does when it goes away."""
        self._stop.set()
        self._reader.join(5)
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        """Kill whatever is left of what this test started."""
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            self.wait(10)
        if self.emulator_pid is not None and alive(self.emulator_pid):
            os.kill(self.emulator_pid, signal.SIGKILL)
        if self.master >= 0:
            self.hang_up()


@pytest.fixture
def terminal(request: pytest.FixtureRequest) -> Iterator[Terminal]:
    """The demo on a controlling terminal, unless parametrized indirectly with ``False``."""
    term = Terminal(controlling=getattr(request, "param", True))
    try:
        yield term
    finally:
        term.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_signal_ends_the_demo_like_q(terminal: Terminal, signum: signal.Signals) -> None:
    emulator = terminal.wait_drawn()
    drawn = len(terminal.output)
    os.kill(terminal.pid, signum)
    terminal.wait(5)
    assert terminal.returncode == 0
    wait_until(lambda: not alive(emulator), 5, "the emulator child to be gone")
    wait_until(lambda: LEAVE_ALTERNATE_SCREEN in terminal.output[drawn:], 2, "the terminal restored")
    assert MOUSE_TRACKING_OFF in terminal.output[drawn:]


def test_hangup_ends_the_demo(terminal: Terminal) -> None:
    emulator = terminal.wait_drawn()
    terminal.hang_up()  # the kernel sends SIGHUP to the demo and its emulator child
    terminal.wait(5)
    assert terminal.returncode == 0
    wait_until(lambda: not alive(emulator), 5, "the emulator child to be gone")


# Without a controlling terminal the demo's death hangs nothing up: only the stdin pipe is left.
@pytest.mark.parametrize("terminal", [False], indirect=True, ids=["no controlling terminal"])
def test_killed_demo_leaves_no_emulator_behind(terminal: Terminal) -> None:
    emulator = terminal.wait_drawn()
    os.kill(terminal.pid, signal.SIGKILL)
    terminal.wait(5)
    wait_until(lambda: not alive(emulator), 5, "the orphaned emulator to exit at the end of its stdin")


@pytest.fixture
def emulators() -> Iterator[EmulatorProcess]:
    process = EmulatorProcess([Venue.HYPERLIQUID], seed=4, port_base=0)
    try:
        process.start()
        yield process
    finally:
        process.stop()


def timed_meta(http_url: str) -> float:
    """Seconds one REST request took."""
    start = time.monotonic()
    assert post_info(http_url, {"type": "meta"})["universe"]  # type: ignore[index]
    return time.monotonic() - start


@contextlib.contextmanager
def open_ws(url: str) -> Iterator[ClientConnection]:
    """A connection the emulator has answered on (so it is in the emulator's set)."""
    with connect(url, open_timeout=5) as ws:
        ws.send('{"method": "ping"}')
        assert json.loads(ws.recv(5)) == {"channel": "pong"}
        yield ws


def test_fault_lines_reach_the_emulator_child(emulators: EmulatorProcess) -> None:
    endpoint = emulators.endpoints[Venue.HYPERLIQUID]
    with open_ws(endpoint.ws_url) as ws:
        emulators.send(Fault("drop"))
        with pytest.raises(ConnectionClosed) as dropped:
            ws.recv(5)
        assert dropped.value.rcvd is None  # a reset, no close frame
    with open_ws(endpoint.ws_url) as ws:
        emulators.send(Fault("restart"))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    emulators.send(Fault("stall", 1.5))
    time.sleep(0.2)
    assert 0.8 < timed_meta(endpoint.http_url) < 5  # held while stalled, answered when it lifts


def test_emulator_child_exits_at_the_end_of_its_stdin(emulators: EmulatorProcess) -> None:
    pid = emulators.pid
    assert pid is not None
    start = time.monotonic()
    emulators.stop()
    assert not alive(pid) and time.monotonic() - start < 3


@pytest.mark.parametrize(
    "line",
    [
        b"not json\n",
        b'["drop"]\n',
        b'{"fault": "explode"}\n',
        b'{"fault": "drop", "seconds": 1}\n',
        b'{"fault": "stall"}\n',
        b'{"fault": "stall", "seconds": -1}\n',
        b'{"fault": "stall", "seconds": true}\n',
        b'{"fault": "stall", "seconds": 1e999}\n',
        b'{"fault": "stall", "seconds": 5, "extra": 1}\n',
        b"\xff\n",
    ],
)
def test_bad_fault_lines_are_refused(line: bytes) -> None:
    with pytest.raises(ValueError):
        Fault.parse(line)


def test_fault_lines_round_trip() -> None:
    for fault in (Fault("stall", 10.0), Fault("stall", MAX_STALL_SECONDS), Fault("drop"), Fault("restart")):
        assert fault.line().endswith(b"\n") and Fault.parse(fault.line()) == fault
