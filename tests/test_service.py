"""The subscription service and the reconnect supervisor, against the Hyperliquid emulator over
real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from app.model import Channel, ConnectionState, StreamState, Venue
from app.state import BookData
from app.venues.hyperliquid import HyperliquidAdapter
from app.rest import RestClient
from app.sim.hyperliquid import HyperliquidEmulator
from tests.conftest import endpoint_of, eventually

HL = Venue.HYPERLIQUID


def upstream(emulator) -> dict[str, int]:
    """Subscriptions the emulator holds: normalized subscription JSON -> number of sockets."""
    return {key: len(topic.connections) for key, topic in emulator._topics.items() if topic.connections}


def emulator_levels(emulator, coin: str):
    bids, asks = emulator.engine.book(coin)
    return [(px, sz) for px, sz, _ in bids], [(px, sz) for px, sz, _ in asks]


def live(stream) -> bool:
    return stream.state is StreamState.LIVE


async def test_book_equals_the_emulators_book(make_service, emulator):
    emulator.autostep = False  # freeze the market so both sides can be compared exactly
    service = make_service()
    book = service.subscribe(HL, Channel.BOOK, "ETH")
    await eventually(lambda: live(book.stream), what="ETH book live")
    await emulator.advance(1000)  # trade, and push the new book
    want = emulator_levels(emulator, "ETH")
    await eventually(lambda: book.stream.data.book.levels() == want, what="client book == emulator book")
    assert not book.stream.data.book.crossed


async def test_two_consumers_share_one_upstream_subscription(make_service, emulator):
    service = make_service()
    first = service.subscribe(HL, Channel.TRADES, "BTC")
    second = service.subscribe(HL, Channel.TRADES, "BTC")
    assert first.stream is second.stream
    await eventually(lambda: upstream(emulator) == {'{"type":"trades","coin":"BTC"}': 1}, what="one upstream")
    first.close()
    await asyncio.sleep(0.2)
    assert upstream(emulator) == {'{"type":"trades","coin":"BTC"}': 1}
    second.close()
    await eventually(lambda: upstream(emulator) == {}, what="upstream unsubscribe after the last consumer")


async def test_market_switch_reuses_the_socket(make_service, emulator):
    service = make_service()
    btc = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(btc.stream))
    eth = service.subscribe(HL, Channel.BOOK, "ETH")  # make before break
    btc.close()
    await eventually(lambda: live(eth.stream))
    await eventually(lambda: list(upstream(emulator)) == ['{"type":"l2Book","coin":"ETH","nSigFigs":null,"mantissa":null}'])
    assert emulator.stats.connections_accepted == 1
    (connection,) = service.connections(HL)
    assert connection.reconnects == 0


class TinyLimitAdapter(HyperliquidAdapter):
    max_subscriptions_per_connection = 2


async def test_second_connection_when_the_per_connection_limit_is_reached(make_service, emulator):
    endpoint = endpoint_of(emulator)
    service = make_service(TinyLimitAdapter(endpoint, RestClient(endpoint.http_url)))
    handles = [service.subscribe(HL, Channel.TRADES, coin) for coin in ("BTC", "ETH", "SOL")]
    assert len(service.connections(HL)) == 2
    await eventually(lambda: all(live(h.stream) for h in handles), what="all three streams live")
    await eventually(lambda: emulator.stats.connections_accepted == 2)
    handles[2].close()  # the extra connection closes once empty
    await eventually(lambda: len(service.connections(HL)) == 1)


async def test_same_coin_two_precisions_are_split_across_sockets(make_service, emulator):
    service = make_service()
    fine = service.subscribe(HL, Channel.BOOK, "BTC")
    coarse = service.subscribe(HL, Channel.BOOK, "BTC", {"nSigFigs": 3})
    assert len(service.connections(HL)) == 2  # their frames could not be told apart on one socket
    await eventually(lambda: live(fine.stream) and live(coarse.stream))
    assert len(coarse.stream.data.book.bids.prices) < len(fine.stream.data.book.bids.prices) or (
        coarse.stream.data.book.levels() != fine.stream.data.book.levels()
    )


async def test_unknown_market_is_an_error_on_that_stream_only(make_service, emulator):
    service = make_service()
    good = service.subscribe(HL, Channel.TRADES, "BTC")
    bad = service.subscribe(HL, Channel.BOOK, "NOPE")
    await eventually(lambda: bad.stream.state is StreamState.ERROR, what="error routed to the stream")
    assert "NOPE" in bad.stream.reason
    await eventually(lambda: live(good.stream))


async def test_candles_start_with_rest_history(make_service, emulator):
    service = make_service()
    candles = service.subscribe(HL, Channel.CANDLES, "BTC", {"interval": "1m"})
    await eventually(lambda: len(candles.stream.data.candles) > 100, what="candle history")
    times = [c.open_time_ms for c in candles.stream.data.candles]
    assert times == sorted(times) and len(set(times)) == len(times)


async def test_drop_resubscribes_and_rebuilds_from_a_fresh_snapshot(make_service, emulator):
    states: list[ConnectionState] = []
    service = make_service(on_connection=lambda status: states.append(status.state))
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    trades = service.subscribe(HL, Channel.TRADES, "BTC")
    await eventually(lambda: live(book.stream) and live(trades.stream))
    seen: list[StreamState] = []
    book.listener = lambda event: seen.append(getattr(event, "state", None))
    emulator.drop_all()
    await eventually(lambda: book.stream.state is not StreamState.LIVE, what="stale after the drop")
    await eventually(lambda: live(book.stream) and live(trades.stream), what="live again")
    (connection,) = service.connections(HL)
    assert connection.reconnects == 1
    assert states[:4] == [ConnectionState.LIVE, ConnectionState.RECONNECTING, ConnectionState.CONNECTING,
                          ConnectionState.LIVE]
    assert StreamState.STALE in seen and StreamState.RESYNCING in seen  # never merged into the old book
    await eventually(lambda: upstream(emulator) == {
        '{"type":"l2Book","coin":"BTC","nSigFigs":null,"mantissa":null}': 1,
        '{"type":"trades","coin":"BTC"}': 1,
    })
    # Trades seen before the drop are not repeated by the backlog the venue resends.
    ids = [(t.time_ms, t.trade_id) for t in trades.stream.data.trades]
    assert len(ids) == len(set(ids))


async def test_refused_then_back_with_backoff_and_no_stale_levels(make_service, emulator):
    service = make_service()
    book = service.subscribe(HL, Channel.BOOK, "SOL")
    await eventually(lambda: live(book.stream))
    emulator.refuse(True)
    (connection,) = service.connections(HL)
    await eventually(lambda: connection.reconnects >= 3, what="several refused attempts")
    assert connection.state in (ConnectionState.RECONNECTING, ConnectionState.CONNECTING)
    assert book.stream.state is StreamState.STALE
    assert connection.backoff.attempts >= 3  # delays grew: 0.05, 0.1, 0.2, ...
    emulator.autostep = False
    emulator.refuse(False)
    await eventually(lambda: live(book.stream), timeout=5, what="back after refuse(False)")
    await emulator.advance(500)
    want = emulator_levels(emulator, "SOL")
    await eventually(lambda: book.stream.data.book.levels() == want, what="no stale levels after restart")


async def test_restart_brings_data_back(make_service, emulator):
    service = make_service()
    mids = service.subscribe(HL, Channel.ALL_MIDS)
    await eventually(lambda: live(mids.stream))
    await emulator.restart()
    await eventually(lambda: mids.stream.state is not StreamState.LIVE)
    await eventually(lambda: live(mids.stream) and "BTC" in mids.stream.data.mids)


async def test_stall_is_detected_and_reconnected(make_service, emulator):
    states: list[ConnectionState] = []
    service = make_service(on_connection=lambda status: states.append(status.state))
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    emulator.stall(True)
    await eventually(lambda: ConnectionState.STALE in states, timeout=3, what="STALE while silent")
    await eventually(lambda: ConnectionState.RECONNECTING in states, timeout=3, what="dead socket abandoned")
    emulator.stall(False)
    await eventually(lambda: live(book.stream), timeout=5)


async def test_quiet_connection_is_not_reconnected(make_service, emulator):
    service = make_service()
    handle = service.subscribe(HL, Channel.BOOK, "NOPE")  # nothing will ever flow on this stream
    await eventually(lambda: handle.stream.state is StreamState.ERROR)
    await asyncio.sleep(2.5)  # several probe periods of silence
    (connection,) = service.connections(HL)
    assert connection.reconnects == 0 and connection.state is ConnectionState.LIVE


async def test_authentication_failure_is_not_retried(make_service, emulator):
    emulator.reject_new_connections(4001, "unauthorized")
    service = make_service()
    handle = service.subscribe(HL, Channel.BOOK, "BTC")
    (connection,) = service.connections(HL)
    await eventually(lambda: connection.state is ConnectionState.FAILED, what="FAILED on 4001")
    assert "authentication" in connection.reason and "4001" in connection.reason
    assert handle.stream.state is StreamState.ERROR
    accepted = emulator.stats.connections_accepted
    await asyncio.sleep(0.6)  # far longer than the test backoff
    assert emulator.stats.connections_accepted == accepted == 1


async def test_periodic_stream_silence_marks_it_stale_but_keeps_the_socket(make_service, emulator):
    service = make_service()
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    data = book.stream.data
    assert isinstance(data, BookData)
    # The stale limit for books is generous (15 s); shorten it on this connection to see it act.
    (connection,) = service.connections(HL)
    connection.adapter.stale_after = {Channel.BOOK: 0.2}
    emulator.autostep = False  # no more book pushes, but pings are still answered
    await eventually(lambda: book.stream.state is StreamState.STALE, what="book stale without data")
    assert connection.reconnects == 0


@pytest.mark.parametrize(
    "bad", ["\x00 not json {", '{"channel":"l2Book","data":{"coin":"BTC"}}', '{"channel":"nope","data":1}']
)
async def test_malformed_frames_are_counted_not_fatal(make_service, emulator, bad):
    service = make_service()
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    (connection,) = service.connections(HL)
    for ws_conn in list(emulator.connections):
        await ws_conn.send(bad.encode())
    await eventually(lambda: connection.decode_errors >= 1, what="decode error counted")
    assert connection.state is ConnectionState.LIVE and live(book.stream)


@pytest.mark.parametrize(
    ("channel", "market", "check"),
    [
        (Channel.TICKER, "BTC", lambda data: data.ticker.mark and data.ticker.funding_rate),
        (Channel.TICKER, "@1", lambda data: data.ticker.mark and data.ticker.funding_rate is None),  # spot ctx
        (Channel.BBO, "ETH", lambda data: data.bbo.bid and data.bbo.ask),
        (Channel.ALL_MIDS, "", lambda data: {"BTC", "ETH", "PURR/USDC", "@1"} <= set(data.mids)),
        (Channel.TRADES, "HYPE", lambda data: len(data.trades) > 0),
    ],
)
async def test_every_channel_decodes_live_over_the_socket(make_service, emulator, channel, market, check):
    service = make_service()
    handle = service.subscribe(HL, channel, market)
    await eventually(lambda: live(handle.stream) and check(handle.stream.data), what=f"{channel} {market}")


async def test_greeting_text_frame_is_tolerated(make_service):
    async with HyperliquidEmulator(seed=5, greeting=True, book_interval=0.1) as chatty:
        endpoint = endpoint_of(chatty)
        service = make_service(HyperliquidAdapter(endpoint, RestClient(endpoint.http_url)))
        book = service.subscribe(HL, Channel.BOOK, "BTC")
        await eventually(lambda: live(book.stream))
        (connection,) = service.connections(HL)
        assert connection.decode_errors == 0
        await service.close()


@pytest.mark.parametrize("fault", ["skip", "duplicate", "reorder", "delta_before_snapshot"])
async def test_full_snapshot_book_is_exact_after_each_fault(make_service, emulator, fault):
    emulator.autostep = False
    if fault == "delta_before_snapshot":
        emulator.arm_book_fault("BTC", fault)  # for the next subscriber
    service = make_service()
    book = service.subscribe(HL, Channel.BOOK, "BTC")
    await eventually(lambda: live(book.stream))
    if fault != "delta_before_snapshot":
        emulator.arm_book_fault("BTC", fault)
    for _ in range(4):
        await emulator.advance(200)  # a push every 100 ms of virtual time
        await asyncio.sleep(0.02)
    want = emulator_levels(emulator, "BTC")
    await eventually(lambda: book.stream.data.book.levels() == want, what=f"exact after {fault}")
    assert book.stream.resyncs == 0  # a full book needs no resync: an older push is simply dropped
