"""The Aster adapter through the subscription service against the Aster emulator over real sockets:
diff-depth books synced from REST equal the emulator's after every fault, perps and spot on their
own connections, every channel live, acks by request id, and the planned 24 h rotation."""

from __future__ import annotations

import asyncio

import pytest

from app.model import Channel, ConnectionState, StreamState, StreamStatus, Venue
from app.rest import RestClient
from app.service import SubscriptionService
from app.sim.aster import AsterEmulator
from app.supervisor import Backoff
from app.venues.aster import AsterAdapter
from app.venues.base import Dial, Endpoint, Liveness
from tests.conftest import QUICK_LIVENESS, eventually

ASTER = Venue.ASTER


@pytest.fixture
async def aster():
    async with AsterEmulator(seed=5, autostep=False) as server:
        yield server


def endpoint_of(server: AsterEmulator) -> Endpoint:
    return Endpoint(server.ws_url, server.http_url, (("spot_ws", server.spot_ws_url),))


@pytest.fixture
async def service(aster):
    services: list[SubscriptionService] = []

    def make(adapter_cls: type[AsterAdapter] = AsterAdapter, liveness: Liveness = QUICK_LIVENESS) -> SubscriptionService:
        endpoint = endpoint_of(aster)
        made = SubscriptionService(
            [adapter_cls(endpoint, RestClient(endpoint.http_url))],
            liveness={ASTER: liveness},
            backoff=lambda: Backoff(initial=0.05, maximum=0.4),
            idle_grace=0.2,
        )
        services.append(made)
        return made

    yield make
    for made in services:
        await made.close()


def emulator_book(server: AsterEmulator, market: str):
    listing = server.listing(market)
    bids = [(listing.px(t), listing.qty(q)) for t, q in sorted(listing.bids.items(), reverse=True)]
    asks = [(listing.px(t), listing.qty(q)) for t, q in sorted(listing.asks.items())]
    return bids, asks


async def run_market(server: AsterEmulator, seconds: float, step_ms: int = 100) -> None:
    """Move the market on: ``seconds`` of virtual time in pushes of ``step_ms``."""
    for _ in range(int(seconds * 1000 / step_ms)):
        await server.advance(step_ms)
        await asyncio.sleep(0.005)


async def synced(server: AsterEmulator, handle, market: str, what: str) -> None:
    """The client's book is live and equal to the emulator's (after the pushes in flight land)."""
    await eventually(
        lambda: handle.stream.state is StreamState.LIVE and handle.stream.data.book.levels() == emulator_book(server, market),
        what=what,
    )


@pytest.mark.parametrize("market", ["BTCUSDT", "spot:ASTERUSDT"])
async def test_diff_depth_book_equals_the_emulators(service, aster, market):
    svc = service()
    book = svc.subscribe(ASTER, Channel.BOOK, market)
    await run_market(aster, 1.0)
    await synced(aster, book, market, f"{market} book synced")
    await run_market(aster, 2.0)
    await synced(aster, book, market, f"{market} book still equal after 2 s of deltas")
    assert book.stream.resyncs == 0 and book.stream.data.gaps == 0


@pytest.mark.parametrize("fault", ["skip", "duplicate", "reorder", "delta_before_snapshot"])
async def test_book_is_exact_again_after_each_fault(service, aster, fault):
    svc = service()
    market = "ETHUSDT"
    if fault == "delta_before_snapshot":
        aster.arm_book_fault(market, fault)  # takes effect at the next subscribe
    book = svc.subscribe(ASTER, Channel.BOOK, market)
    await run_market(aster, 1.0)
    await synced(aster, book, market, "synced before the fault")
    states: list[StreamState] = []
    book.listener = lambda event: states.append(event.state) if isinstance(event, StreamStatus) else None
    if fault != "delta_before_snapshot":
        aster.arm_book_fault(market, fault)
    for _ in range(30):
        await aster.advance(100)
        await asyncio.sleep(0.01)
        if book.stream.state is StreamState.LIVE:
            assert not book.stream.data.book.crossed
    await synced(aster, book, market, f"exact again after {fault}")
    if fault in ("skip", "reorder"):
        assert book.stream.resyncs >= 1 and book.stream.data.gaps >= 1  # seen, not applied blindly
        assert StreamState.RESYNCING in states and states[-1] is StreamState.LIVE
    else:
        assert book.stream.resyncs == 0  # harmless: absolute sizes, or covered by the snapshot


async def test_a_gap_resyncs_that_book_only(service, aster):
    svc = service()
    eth = svc.subscribe(ASTER, Channel.BOOK, "ETHUSDT")
    btc = svc.subscribe(ASTER, Channel.BOOK, "BTCUSDT")
    await run_market(aster, 1.0)
    await synced(aster, eth, "ETHUSDT", "eth synced")
    aster.arm_book_fault("ETHUSDT", "skip")
    await run_market(aster, 3.0)
    await synced(aster, eth, "ETHUSDT", "eth exact after its resync")
    await synced(aster, btc, "BTCUSDT", "btc untouched")
    assert eth.stream.resyncs == 1 and btc.stream.resyncs == 0
    assert eth.stream.resync_seconds > 0


async def test_every_channel_is_live_and_perps_and_spot_use_their_own_sockets(service, aster):
    svc = service()
    handles = {
        "trades": svc.subscribe(ASTER, Channel.TRADES, "BTCUSDT"),
        "candles": svc.subscribe(ASTER, Channel.CANDLES, "BTCUSDT", {"interval": "1m"}),
        "ticker": svc.subscribe(ASTER, Channel.TICKER, "BTCUSDT"),
        "bbo": svc.subscribe(ASTER, Channel.BBO, "BTCUSDT"),
        "mids": svc.subscribe(ASTER, Channel.ALL_MIDS),
        "spot trades": svc.subscribe(ASTER, Channel.TRADES, "spot:ASTERUSDT"),
    }
    await run_market(aster, 6.0, step_ms=200)
    for name, handle in handles.items():
        await eventually(lambda h=handle: h.stream.state is StreamState.LIVE, what=f"{name} live")
    ticker = handles["ticker"].stream.data.ticker
    assert ticker.mark and ticker.funding_rate and ticker.last and ticker.volume_24h  # two streams merged
    assert len(handles["candles"].stream.data.candles) > 100
    assert "BTCUSDT" in handles["mids"].stream.data.mids and "ETHUSDT" in handles["mids"].stream.data.mids
    assert {c.group for c in svc.connections(ASTER)} == {"perp", "spot"}


async def test_unknown_interval_is_refused_before_any_request(service, aster):
    with pytest.raises(ValueError, match="interval"):
        service().subscribe(ASTER, Channel.CANDLES, "BTCUSDT", {"interval": "7m"})


class ShortLivedAster(AsterAdapter):
    async def dial(self, group, keys=()):
        dial = await super().dial(group, keys)
        return Dial(dial.url, max_lifetime=2.0)


async def test_lifetime_is_handled_by_a_rotation_before_the_venue_drops_us(aster, service):
    aster.max_connection_age = 4.0  # the venue's 24 h, shortened; we plan for 2 s and rotate at 1.8 s
    aster.autostep = True
    svc = service(ShortLivedAster, AsterAdapter.liveness)  # no probe timeouts on a loaded machine
    book = svc.subscribe(ASTER, Channel.BOOK, "BTCUSDT")
    await eventually(lambda: book.stream.state is StreamState.LIVE, what="live")
    (first,) = svc.connections(ASTER)
    seen: set[StreamState] = set()
    for _ in range(300):
        seen.add(book.stream.state)
        if svc.connections(ASTER)[0] is not first:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("no rotation")
    assert seen == {StreamState.LIVE}
    await eventually(lambda: first.state is ConnectionState.CLOSED, what="old socket closed")
    assert first.reconnects == 0
    assert aster.stats.lifetime_closes == 0  # we left before the venue cut us
