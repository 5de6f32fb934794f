"""What the hardening probes found wrong, each against the emulator over real sockets: frames and
listeners that fail, a connection task that dies, snapshots that fail, refusals that must stay
visible, subscriptions the venue ignores, reconnect-now in every state, and backoff reset."""

from __future__ import annotations

import asyncio

import pytest

from app.model import Channel, ConnectionState, StreamState, Venue
from app.rest import RestClient
from app.supervisor import Backoff
from app.venues.base import DecodeError, Dial, Liveness
from app.venues.hyperliquid import HyperliquidAdapter
from tests.conftest import endpoint_of, eventually

HL = Venue.HYPERLIQUID


def live(stream) -> bool:
    return stream.state is StreamState.LIVE


def adapter_of(cls, emulator) -> HyperliquidAdapter:
    endpoint = endpoint_of(emulator)
    return cls(endpoint, RestClient(endpoint.http_url))


def book_levels(emulator, coin: str):
    bids, asks = emulator.engine.book(coin)
    return [(px, sz) for px, sz, _ in bids], [(px, sz) for px, sz, _ in asks]


class ExplodingAdapter(HyperliquidAdapter):
    """An adapter with a bug: every third frame raises something that is not a DecodeError."""

    frames_seen = 0

    def decode(self, frame):
        self.frames_seen += 1
        if self.frames_seen % 3 == 0:
            raise ZeroDivisionError("adapter bug")
        return super().decode(frame)


async def test_adapter_bug_costs_one_frame_not_the_feed(make_service, emulator):
    service = make_service(adapter_of(ExplodingAdapter, emulator))
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    (connection,) = service.connections(HL)
    generation = book.stream.data.generation
    await eventually(lambda: connection.decode_errors >= 3, what="adapter failures counted")
    await eventually(lambda: book.stream.data.generation > generation + 3, what="book keeps updating")
    assert connection.state is ConnectionState.LIVE and connection.reconnects == 0


async def test_failing_listener_is_counted_and_others_still_hear(make_service, emulator):
    service = make_service()
    heard: list[object] = []

    def broken(event: object) -> None:
        raise RuntimeError("listener bug")

    first = service.subscribe(HL, Channel.BOOK, "ETH", on_event=broken)
    second = service.subscribe(HL, Channel.BOOK, "ETH", on_event=heard.append)
    await eventually(lambda: len(heard) > 5, what="second listener keeps hearing")
    (connection,) = service.connections(HL)
    assert connection.decode_errors > 0
    assert connection.state is ConnectionState.LIVE and connection.reconnects == 0
    assert live(first.stream) and first.stream is second.stream


class FlakyUrlAdapter(HyperliquidAdapter):
    """Our own code failing outside any frame (here: building the URL), once."""

    failures = 1

    async def dial(self, group, keys=()):
        if self.failures:
            self.failures -= 1
            raise RuntimeError("bug while dialling")
        return await super().dial(group, keys)


async def test_connection_task_error_shows_failed_then_retries(make_service, emulator):
    states: list[tuple[ConnectionState, str]] = []
    service = make_service(
        adapter_of(FlakyUrlAdapter, emulator),
        on_connection=lambda status: states.append((status.state, status.reason)),
    )
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream), what="live after the retry")
    failed = [reason for state, reason in states if state is ConnectionState.FAILED]
    assert failed and "RuntimeError" in failed[0] and "bug while dialling" in failed[0]
    assert [state for state, _ in states][-1] is ConnectionState.LIVE
    assert ConnectionState.RECONNECTING in [state for state, _ in states]


async def test_close_never_raises_a_connections_error(make_service, emulator):
    service = make_service()
    service.subscribe(HL, Channel.TRADES, "BTC")
    (connection,) = service.connections(HL)
    await eventually(lambda: connection.state is ConnectionState.LIVE)
    assert connection._task is not None
    connection._task.cancel()  # stand-in for a task that ended any way at all
    await asyncio.sleep(0)
    await service.close()  # must not raise
    assert connection.state is ConnectionState.CLOSED


async def test_failed_history_is_retried_and_never_live_without_it(make_service, emulator):
    emulator.fail_http(500, "[bold red]boom[/] \x1b]0;pwned\x07")
    service = make_service()
    candles = service.subscribe(HL, Channel.CANDLES, "BTC", {"interval": "1m"})
    await eventually(lambda: "retry in" in candles.stream.reason, what="failure shown with its retry")
    assert "HTTP 500" in candles.stream.reason and "\x1b" not in candles.stream.reason
    await asyncio.sleep(0.5)  # pushed bars arrive meanwhile: partial history is not LIVE
    assert candles.stream.state is StreamState.PENDING
    requests = emulator.stats.http_requests
    await eventually(lambda: emulator.stats.http_requests >= requests + 2, what="retried with backoff")
    emulator.fail_http(None)
    await eventually(lambda: live(candles.stream), what="live once history arrived")
    assert len(candles.stream.data.candles) > 100


async def test_refusal_stays_error_and_is_retried(make_service, emulator):
    service = make_service()
    bad = service.subscribe(HL, Channel.BOOK, "NOPE")
    await eventually(lambda: bad.stream.state is StreamState.ERROR, what="refused")
    received = emulator.stats.frames_received
    await eventually(lambda: emulator.stats.frames_received >= received + 2, what="subscribe retried")
    assert bad.stream.state is StreamState.ERROR and "NOPE" in bad.stream.reason


async def test_rest_snapshot_does_not_undo_a_refusal(make_service, emulator):
    emulator.autostep = False  # no pushes: only the REST snapshot could bring data
    service = make_service(backoff=lambda: Backoff(initial=1.0, maximum=1.0))
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    refusal = '{"channel":"error","data":"Invalid subscription {\\"type\\":\\"l2Book\\",\\"coin\\":\\"BTC\\"}"}'
    await emulator.inject(refusal)
    await eventually(lambda: book.stream.state is StreamState.ERROR, what="refusal shown")
    (connection,) = service.connections(HL)
    connection.refresh(book.stream)
    await asyncio.sleep(0.3)
    assert book.stream.state is StreamState.ERROR
    # The retry (after the 0.5-1 s backoff) is acked ("Already subscribed") and data returns.
    await eventually(lambda: book.stream.state is not StreamState.ERROR, timeout=3, what="retry accepted")
    await emulator.advance(500)
    await eventually(lambda: live(book.stream), what="live after the accepted retry")
    await eventually(lambda: book.stream.data.book.levels() == book_levels(emulator, "BTC"))


async def test_ignored_subscribe_is_resent_then_the_connection_recycled(make_service, emulator):
    quick = Liveness(ping_interval=1.0, probe_after=0.3, pong_timeout=0.6, subscribe_timeout=0.4)
    service = make_service(liveness={HL: quick})
    emulator.ignore_requests('"subscribe"')
    book = service.subscribe(HL, Channel.BOOK, "ETH")
    await eventually(lambda: "re-sent" in book.stream.reason, what="re-sent and said so")
    (connection,) = service.connections(HL)
    await eventually(lambda: connection.reconnects >= 1, what="connection recycled")
    assert book.stream.state is StreamState.PENDING
    emulator.ignore_requests(None)
    await eventually(lambda: live(book.stream), timeout=5, what="live once the venue answers")


async def test_reconnect_now_reopens_a_stalled_socket_at_once(make_service, emulator):
    service = make_service(liveness={HL: Liveness(ping_interval=30, probe_after=30, pong_timeout=30)})
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    emulator.stall(True)
    await asyncio.sleep(0.2)
    accepted = emulator.stats.connections_accepted
    service.retry()  # liveness would take a minute to notice; the user does not wait
    emulator.stall(False)
    await eventually(lambda: emulator.stats.connections_accepted == accepted + 1, what="reopened")
    await eventually(lambda: live(book.stream))
    (connection,) = service.connections(HL)
    assert connection.backoff.attempts == 0  # no backoff wait was taken


async def test_reconnect_now_retries_a_failed_connection_once(make_service, emulator):
    emulator.reject_new_connections(4001, "unauthorized")
    service = make_service()
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    (connection,) = service.connections(HL)
    await eventually(lambda: connection.state is ConnectionState.FAILED)
    emulator.reject_new_connections(None)
    service.retry()
    await eventually(lambda: live(book.stream), what="the user's retry worked")
    emulator.reject_new_connections(4001, "unauthorized")
    emulator.drop_all()
    await eventually(lambda: connection.state is ConnectionState.FAILED, what="failed again")
    accepted = emulator.stats.connections_accepted
    await asyncio.sleep(0.5)
    assert emulator.stats.connections_accepted == accepted  # once per request, no loop


async def test_backoff_resets_after_data_flowed_for_a_while(make_service, emulator):
    service = make_service(healthy_after=0.3)
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    (connection,) = service.connections(HL)
    connection.backoff.attempts = 5  # as after a run of failures
    await asyncio.sleep(0.6)  # data flows for longer than healthy_after
    emulator.drop_all()
    await eventually(lambda: connection.reconnects == 1)
    assert connection.backoff.attempts == 1  # reset, then one step for this drop


@pytest.mark.parametrize("raw", ["1e5", "NaN", "-1", True, 1.5, "", " 1", "1" * 50])
def test_field_readers_refuse_what_no_venue_sends(raw):
    from app.venues import fields

    with pytest.raises(DecodeError):
        fields.price(raw)


def test_field_readers_keep_the_venue_string():
    from app.venues import fields

    assert fields.price("0.00001000") == "0.00001000"
    assert fields.size("0") == "0"
    assert fields.decimal_text("-0.0001", "funding", signed=True) == "-0.0001"
    with pytest.raises(DecodeError):
        fields.price("0.000")
    with pytest.raises(DecodeError):
        fields.time_ms(True)
    with pytest.raises(DecodeError):
        fields.time_ms(1)
    with pytest.raises(DecodeError):
        fields.name("")



class ShortLivedAdapter(HyperliquidAdapter):
    """As if the venue ended every connection after 1.5 s (Aster's 24 h, shortened)."""

    async def dial(self, group, keys=()):
        dial = await super().dial(group, keys)
        return Dial(dial.url, max_lifetime=1.5)


async def test_lifetime_rotation_is_make_before_break(make_service, emulator):
    service = make_service(adapter_of(ShortLivedAdapter, emulator))
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    trades = service.subscribe(HL, Channel.TRADES, "BTC")
    await eventually(lambda: live(book.stream) and live(trades.stream))
    (first,) = service.connections(HL)
    states: set[StreamState] = set()
    generations: list[int] = []
    while emulator.stats.connections_accepted < 2 or service.connections(HL)[0] is first:
        states.add(book.stream.state)
        states.add(trades.stream.state)
        generations.append(book.stream.data.generation)
        await asyncio.sleep(0.01)
        assert len(generations) < 500, "no rotation within 5 s"
    (second,) = service.connections(HL)
    assert second is not first
    await eventually(lambda: first.state is ConnectionState.CLOSED, what="old socket closed")
    assert states == {StreamState.LIVE}  # never a gap on screen
    assert second.reconnects == 0 and first.reconnects == 0
    emulator.autostep = False
    await emulator.advance(500)
    await eventually(lambda: book.stream.data.book.levels() == book_levels(emulator, "BTC"), what="fed by the new socket")
    await eventually(lambda: len(upstream_keys(emulator)) == 2, what="old socket's subscriptions gone")


def upstream_keys(emulator) -> list[str]:
    return [key for key, topic in emulator._topics.items() if topic.connections]
