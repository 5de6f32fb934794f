"""Shared fixtures: a Hyperliquid emulator on loopback and a subscription service pointed at it.

Timings (backoff, liveness probes) are shortened so that fault tests finish in about a second; the
mechanisms are the production ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import pytest

from app.model import Venue
from app.service import SubscriptionService
from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.runner import EmulatorThread, start_emulators
from app.sim.server import EmulatorServer
from app.supervisor import Backoff
from app.venues import build_adapter
from app.venues.base import Endpoint, Liveness, VenueAdapter

FAST_LIVENESS = Liveness(ping_interval=1.0, probe_after=0.3, pong_timeout=0.6)
QUICK_LIVENESS = Liveness(ping_interval=1.0, probe_after=0.5, pong_timeout=1.0, subscribe_timeout=2.0)
"""The venue service tests': a silent second is a probe, an unanswered subscribe is sent again after 2 s."""


@pytest.fixture
async def emulator():
    async with HyperliquidEmulator(seed=11, book_interval=0.1, idle_timeout=30) as server:
        yield server


@pytest.fixture(scope="module")
def emus() -> Iterator[EmulatorThread]:
    """The emulator on its own thread and loop, for synchronous third-party clients."""
    with EmulatorThread(["hyperliquid"], seed=21) as thread:
        yield thread


@pytest.fixture(scope="module")
def hl(emus: EmulatorThread) -> HyperliquidEmulator:
    server = emus["hyperliquid"]
    assert isinstance(server, HyperliquidEmulator)
    return server


def endpoint_of(server: HyperliquidEmulator) -> Endpoint:
    return Endpoint(server.ws_url, server.http_url)


@pytest.fixture
async def make_service(emulator):
    """Build services on the emulator; every one is closed at the end of the test."""
    services: list[SubscriptionService] = []

    def make(adapter: VenueAdapter | None = None, **kwargs) -> SubscriptionService:
        kwargs.setdefault("liveness", {Venue.HYPERLIQUID: FAST_LIVENESS})
        kwargs.setdefault("backoff", lambda: Backoff(initial=0.05, maximum=0.4))
        kwargs.setdefault("idle_grace", 0.2)
        service = SubscriptionService([adapter or build_adapter(Venue.HYPERLIQUID, endpoint_of(emulator))], **kwargs)
        services.append(service)
        return service

    yield make
    for service in services:
        await service.close()


@pytest.fixture
async def services() -> AsyncIterator[Callable[..., SubscriptionService]]:
    """Services over one adapter each (quick liveness, backoff and idle grace unless told); every
    one is closed at the end of the test."""
    made: list[SubscriptionService] = []

    def make(adapter: VenueAdapter, liveness: Liveness = QUICK_LIVENESS, **kwargs: Any) -> SubscriptionService:
        kwargs.setdefault("backoff", lambda: Backoff(initial=0.05, maximum=0.4))
        kwargs.setdefault("idle_grace", 0.2)
        service = SubscriptionService([adapter], liveness={adapter.venue: liveness}, **kwargs)
        made.append(service)
        return service

    yield make
    await asyncio.gather(*(service.close() for service in made))


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def stepped_until(
    server: EmulatorServer, predicate: Callable[[], bool], timeout: float = 8.0, what: str = "condition", step_ms: int = 100
) -> None:
    """Step an ``autostep=False`` emulator ``step_ms`` at a time until ``predicate()`` holds."""

    async def stepping() -> None:
        while True:
            await server.advance(step_ms)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(stepping())
    try:
        await eventually(predicate, timeout=timeout, what=what)
    finally:
        task.cancel()


@contextlib.asynccontextmanager
async def running(venues: Iterable[Venue], seed: int = 4) -> AsyncIterator[dict[Venue, EmulatorServer]]:
    """The venues' emulators on this loop, by venue; all stopped on exit."""
    servers = await start_emulators([str(venue) for venue in venues], seed=seed)
    try:
        yield {Venue(server.venue): server for server in servers}
    finally:
        for server in servers:
            await server.stop()
