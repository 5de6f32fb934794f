"""Running emulators: ``perpterm sim`` as a child process (what the demo does), in the test's loop,
and in a thread for synchronous clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.runner import VENUE_EMULATORS, EmulatorThread, main, start_emulators

pytestmark = pytest.mark.timeout(30)
ROOT = Path(__file__).resolve().parents[1]


def post_info(http_url: str, body: dict[str, object], timeout: float = 5.0) -> object:
    request = urllib.request.Request(http_url + "/info", json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def spawn_sim(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "app.sim", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sim_command_prints_json_endpoints_and_exits_cleanly(signum: signal.Signals) -> None:
    process = spawn_sim("--json", "--seed", "4")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        endpoint = json.loads(line)
        assert list(endpoint) == ["venue", "http", "ws", "wallet"] and endpoint["venue"] == "hyperliquid"
        assert endpoint["http"].startswith("http://127.0.0.1:")
        assert endpoint["ws"] == endpoint["http"].replace("http://", "ws://") + "/ws"
        meta = post_info(endpoint["http"], {"type": "meta"})
        assert [asset["name"] for asset in meta["universe"]][:2] == ["BTC", "ETH"]  # type: ignore[index]
        process.send_signal(signum)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sim_command_human_output_and_port_base() -> None:
    probe = EmulatorThread(["hyperliquid"]).start()  # find a free port, then release it
    port = probe["hyperliquid"].port
    probe.stop()
    process = spawn_sim("--port-base", str(port), "--venues", "hyperliquid")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().split() == ["hyperliquid", f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws"]
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_sim_command_rejects_unknown_venues(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--venues", "hyperliquid,nope"]) == 2
    assert "nope" in capsys.readouterr().err


async def test_start_emulators_in_the_running_loop() -> None:
    servers = await start_emulators(["hyperliquid"], seed=9, autostep=False)
    try:
        (server,) = servers
        assert isinstance(server, HyperliquidEmulator) and server.port > 0 and server.seed == 9
    finally:
        for server in servers:
            await server.stop()
    with pytest.raises(ValueError, match="no emulator"):
        await start_emulators(["nope"])
    assert {"hyperliquid", "aster"} <= set(VENUE_EMULATORS)


def test_emulator_thread_runs_fault_controls_thread_safely() -> None:
    with EmulatorThread(["hyperliquid"], seed=5) as emus:
        hl = emus["hyperliquid"]
        assert post_info(hl.http_url, {"type": "perpDexs"}) == [None]
        emus.call(hl.refuse, True)
        with pytest.raises(OSError):
            post_info(hl.http_url, {"type": "perpDexs"}, timeout=2)
        emus.call(hl.refuse, False)
        assert post_info(hl.http_url, {"type": "perpDexs"}) == [None]
        emus.call(hl.restart)  # a coroutine function: awaited on the emulators' loop
        before = hl.engine.now_ms
        events = emus.run(hl.advance(1_000))
        assert events.time >= before + 1_000
        with pytest.raises(KeyError):
            emus["nope"]
