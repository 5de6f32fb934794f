"""The shared fault controls, on every emulator: one suite, so a venue cannot lack one.

Venue-neutral: a raw WebSocket opened as the venue's demo client would (``demo_connect``: its key,
token or query where the venue wants one) and plain HTTP, no venue message. What a venue does with
a stall or an ignored request needs its own messages and stays in that venue's emulator tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.sim.runner import VENUE_EMULATORS
from app.sim.server import EmulatorServer


@pytest.fixture(params=sorted(VENUE_EMULATORS))
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[EmulatorServer]:
    server = VENUE_EMULATORS[request.param](seed=5, autostep=False)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@asynccontextmanager
async def opened(emu: EmulatorServer) -> AsyncIterator[ClientConnection]:
    async with connect(**emu.demo_connect(), open_timeout=5, close_timeout=1) as ws:
        yield ws


async def closed_with(ws: ClientConnection) -> tuple[int, str] | None:
    """The close code and reason the server sent (``None``: the connection was reset)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    return None if closed.value.rcvd is None else (closed.value.rcvd.code, closed.value.rcvd.reason)


async def http_status(emu: EmulatorServer) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(emu.http_url + "/any/path") as response:
        return response.status, await response.text()


async def test_inject_reaches_every_socket_raw(emu: EmulatorServer) -> None:
    async with opened(emu) as first, opened(emu) as second:
        await asyncio.sleep(0.1)
        assert await emu.inject("not json", b"\x00") == 4
        for ws in (first, second):
            frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(2)]
            assert frames == ["not json", b"\x00"]  # unchanged, in order, nothing between


async def test_drop_resets_and_restart_closes_1012_then_listens_again(emu: EmulatorServer) -> None:
    async with opened(emu) as ws:
        emu.drop_all()
        assert await closed_with(ws) is None  # a reset: no close frame
    port = emu.port
    async with opened(emu) as ws:
        await emu.restart()
        code = await closed_with(ws)
        assert code is not None and code[0] == 1012
    assert emu.port == port
    async with opened(emu):
        pass


async def test_reject_new_connections_with_a_close_code(emu: EmulatorServer) -> None:
    emu.reject_new_connections(4001, "unauthorized")
    async with opened(emu) as ws:
        assert await closed_with(ws) == (4001, "unauthorized")
    emu.reject_new_connections(None)
    async with opened(emu) as ws:
        await ws.ping()


async def test_fail_http_then_serve_again(emu: EmulatorServer) -> None:
    emu.fail_http(503, "down", retry_after=2)
    assert await http_status(emu) == (503, "down")
    emu.fail_http(None)
    assert (await http_status(emu))[0] != 503


async def test_refuse_then_accept(emu: EmulatorServer) -> None:
    emu.refuse(True)
    with pytest.raises(OSError):
        await asyncio.open_connection(emu.host, emu.port)
    emu.refuse(False)
    async with opened(emu):
        pass
