"""Record and replay: a session recorded over real sockets against the Hyperliquid and Aster
emulators (with an Aster gap, so the recording holds a resync and its second REST snapshot, and a
reconnect of every socket) replays headless to exactly the books the live client held; bad files are refused naming the line; no
secret reaches a recording; every adapter inverts its routes and snapshot requests; the dashboard
plays a recording with a REPLAY badge."""

from __future__ import annotations

import asyncio
import re
import time

import orjson
import pytest

from app.cli import main
from app.model import Channel, ConnectionState, StreamKey, StreamState, Venue, freeze_params
from app.record import Recorder, connection_label, group_of_label, parse_request, request_path
from app.replay import Entry, ReplayService, read_recording, replay_app
from app.rest import RestClient
from app.service import SubscriptionService
from app.sim.aster import AsterEmulator
from app.sim.hyperliquid import HyperliquidEmulator
from app.supervisor import Backoff
from app.venues import ADAPTERS, build_adapter
from app.venues.base import Dial, Endpoint, VenueAdapter
from app.venues.hyperliquid import HyperliquidAdapter
from tests.conftest import FAST_LIVENESS, QUICK_LIVENESS, endpoint_of, eventually

HL, ASTER = Venue.HYPERLIQUID, Venue.ASTER


def make_service(adapters: list[VenueAdapter], recorder: Recorder) -> SubscriptionService:
    return SubscriptionService(
        adapters,
        liveness={HL: FAST_LIVENESS, ASTER: QUICK_LIVENESS},
        backoff=lambda: Backoff(initial=0.05, maximum=0.4),
        idle_grace=0.2,
        recorder=recorder,
    )


def as_dumped(levels: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> dict[str, list[list[str]]]:
    bids, asks = levels
    return {"bids": [list(level) for level in bids], "asks": [list(level) for level in asks]}


async def test_a_recorded_session_replays_to_the_books_the_live_client_held(tmp_path, capsys):
    path = tmp_path / "session.jsonl"
    async with (
        HyperliquidEmulator(seed=3, book_interval=0.1, idle_timeout=30) as hl,
        AsterEmulator(seed=5) as aster,
    ):
        recorder = Recorder(path)
        service = make_service(
            [
                build_adapter(HL, endpoint_of(hl)),
                build_adapter(ASTER, Endpoint(aster.ws_url, aster.http_url, (("spot_ws", aster.spot_ws_url),))),
            ],
            recorder,
        )
        try:
            books = {
                (venue, market): service.subscribe(venue, Channel.BOOK, market)
                for venue, market in [(HL, "BTC"), (HL, "ETH"), (ASTER, "BTCUSDT"), (ASTER, "ETHUSDT"), (ASTER, "spot:ASTERUSDT")]
            }
            others = [
                service.subscribe(HL, Channel.TRADES, "BTC"),
                service.subscribe(HL, Channel.CANDLES, "BTC", {"interval": "1m"}),
                service.subscribe(ASTER, Channel.TRADES, "BTCUSDT"),
                service.subscribe(ASTER, Channel.CANDLES, "spot:ASTERUSDT", {"interval": "1m"}),
            ]
            handles = [*books.values(), *others]
            await eventually(lambda: all(h.stream.state is StreamState.LIVE for h in handles), 10, "every stream live")
            eth = books[(ASTER, "ETHUSDT")].stream
            aster.arm_book_fault("ETHUSDT", "skip")
            await eventually(lambda: eth.resyncs >= 1 and eth.state is StreamState.LIVE, 10, "ETHUSDT resynced")
            await asyncio.sleep(0.3)  # deltas after the resync
            hl.drop_all()
            aster.drop_all()  # every socket reconnects: the books are rebuilt from new snapshots
            connections = [c for venue in (HL, ASTER) for c in service.connections(venue)]
            await eventually(
                lambda: all(c.reconnects >= 1 for c in connections) and all(h.stream.state is StreamState.LIVE for h in handles),
                10,
                "every socket reconnected and every stream live again",
            )
            await asyncio.sleep(0.3)  # more pushes everywhere
            # The copy and the end of the recording in one step: nothing is recorded that the copy lacks.
            held = {(venue, market): as_dumped(h.stream.data.book.levels()) for (venue, market), h in books.items()}
            recorder.close()
            labels = sorted(c.label for venue in (HL, ASTER) for c in service.connections(venue))
        finally:
            recorder.close()
            await service.close()

    assert all(len(book["bids"]) >= 10 and len(book["asks"]) >= 10 for book in held.values())
    assert [re.sub(r"#\d+$", "", label) for label in labels] == ["aster-perp", "aster-spot", "hyperliquid"]
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert {line["conn"] for line in lines} == set(labels) | {f"{label}/2" for label in labels}  # a reconnect
    assert {line["path"] for line in lines if line["kind"] == "ws"} == {"/ws", "/stream", "/spot/stream"}
    eth_depth = [line for line in lines if line["kind"] == "rest" and line["path"].startswith("GET /fapi/v1/depth?symbol=ETHUSDT&")]
    assert len(eth_depth) >= 3  # the first sync, the resync, the reconnect
    assert all(line["t"] <= after["t"] for line, after in zip(lines, lines[1:]))

    code = await asyncio.to_thread(main, ["replay", str(path), "--headless", "--dump", "books"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    dumped = orjson.loads(captured.out)
    assert {(Venue(venue), market) for venue, markets in dumped.items() for market in markets} == set(held)
    for (venue, market), book in held.items():
        assert dumped[venue][market] == book, f"{venue} {market}"

    replay = ReplayService()
    await replay.play(read_recording(path))
    await replay.close()
    assert replay.books() == dumped
    replayed_eth = replay._streams[StreamKey(ASTER, Channel.BOOK, "ETHUSDT")]
    assert replayed_eth.resyncs >= 1 and replayed_eth.data.gaps >= 1  # the same gap, the same resync
    assert all(c.reconnects == 1 for venue in (HL, ASTER) for c in replay.connections(venue))
    assert replay._streams[StreamKey(HL, Channel.CANDLES, "BTC", freeze_params({"interval": "1m"}))].data.has_history


GOOD = {"t": 1.5, "venue": "hyperliquid", "conn": "hyperliquid#1", "kind": "ws", "path": "/ws", "frame": '{"channel":"pong"}'}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"t": 1.5, "venue": "hyper', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k != "frame"}), "missing field 'frame'"),
        (orjson.dumps({k: v for k, v in GOOD.items() if k not in ("t", "path")}), "missing fields 't', 'path'"),
        (orjson.dumps(GOOD | {"venue": "binance"}), "unknown venue 'binance'"),
        (orjson.dumps(GOOD | {"kind": "fix"}), "'kind' is 'fix', not 'ws' or 'rest'"),
        (orjson.dumps(GOOD | {"t": "yesterday"}), "'t' is not a time"),
        (orjson.dumps(GOOD | {"frame": {"channel": "pong"}}), "'frame' is not a string"),
    ],
)
def test_a_malformed_line_is_named_and_the_exit_code_is_2(tmp_path, capsys, line, problem):
    path = tmp_path / "bad.jsonl"
    good = orjson.dumps(GOOD) + b"\n"
    path.write_bytes(good + good + line + b"\n" + good)
    assert main(["replay", str(path), "--headless", "--dump", "books"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"{path}:3: ") and problem in captured.err, captured.err
    assert main(["replay", str(path)]) == 2  # on screen too, before the screen opens
    assert capsys.readouterr().err.startswith(f"{path}:3: ")


def test_a_cut_off_last_line_and_a_missing_file_are_named(tmp_path, capsys):
    path = tmp_path / "cut.jsonl"
    path.write_bytes(orjson.dumps(GOOD) + b"\n" + orjson.dumps(GOOD)[:30])
    assert main(["replay", str(path), "--headless", "--dump", "books"]) == 2
    assert f"{path}:2: not JSON" in (err := capsys.readouterr().err) and "cut short" in err
    assert main(["replay", str(tmp_path / "absent.jsonl"), "--headless"]) == 2
    assert "absent.jsonl: cannot read" in capsys.readouterr().err


class KeyedHyperliquid(HyperliquidAdapter):
    """Dials with an API key in the query string, as some venues want."""

    async def dial(self, group, keys=()):
        return Dial(self.endpoint.ws_url + "?apiKey=SECRET-KEY-123&x=1")


async def test_no_secret_reaches_the_recording(emulator, tmp_path):
    path = tmp_path / "keyed.jsonl"
    with Recorder(path) as recorder:
        adapter = KeyedHyperliquid(endpoint_of(emulator), RestClient(emulator.http_url))
        service = make_service([adapter], recorder)
        book = service.subscribe(HL, Channel.BOOK, "BTC")
        await eventually(lambda: book.stream.state is StreamState.LIVE, what="book live")
        await service.close()
    text = path.read_text()
    assert "SECRET-KEY-123" not in text and "apiKey" not in text
    lines = [orjson.loads(line) for line in text.splitlines()]
    assert {line["path"] for line in lines if line["kind"] == "ws"} == {"/ws"}
    assert any(line["kind"] == "rest" for line in lines)
    # REST: credentials in the query or the body are left out, public names (token_id) kept.
    params = {"symbol": "BTCUSDT", "apiKey": "k", "signature": "s", "listenKey": "l", "token": "t", "token_id": "7"}
    assert request_path("GET", "/fapi/v1/depth", params) == "GET /fapi/v1/depth?symbol=BTCUSDT&token_id=7"
    body = {"type": "l2Book", "signature": {"r": "0x1"}, "inner": {"api_secret": "s", "coin": "BTC"}}
    assert request_path("POST", "/info", None, body) == 'POST /info {"type":"l2Book","inner":{"coin":"BTC"}}'


class _Asked(Exception):
    pass


class CapturingRest:
    """Stands in for a RestClient: notes the request as it would be recorded, answers nothing."""

    limiter = None

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def get_json(self, path, params=None, *, weight=1.0):
        self.requests.append(request_path("GET", path, params))
        raise _Asked

    async def post_json(self, path, body, *, weight=1.0):
        self.requests.append(request_path("POST", path, None, body))
        raise _Asked

    async def close(self) -> None:
        pass


KEYS = {
    HL: [
        StreamKey(HL, Channel.BOOK, "BTC"),
        StreamKey(HL, Channel.CANDLES, "BTC", freeze_params({"interval": "5m"})),
        StreamKey(HL, Channel.ALL_MIDS),
        StreamKey(HL, Channel.ALL_MIDS, "", freeze_params({"dex": "xyz"})),
        StreamKey(HL, Channel.TRADES, "ETH"),
        StreamKey(HL, Channel.TICKER, "@107"),
        StreamKey(HL, Channel.BBO, "ETH"),
        *(StreamKey(HL, channel) for channel in (Channel.POSITIONS, Channel.FILLS, Channel.ORDERS, Channel.LIQUIDATION)),
    ],
    ASTER: [
        *(StreamKey(ASTER, channel, market) for channel in (Channel.BOOK, Channel.TRADES, Channel.TICKER, Channel.BBO)
          for market in ("BTCUSDT", "spot:ASTERUSDT")),
        StreamKey(ASTER, Channel.CANDLES, "BTCUSDT", freeze_params({"interval": "1h"})),
        StreamKey(ASTER, Channel.CANDLES, "spot:ASTERUSDT", freeze_params({"interval": "1m"})),
        StreamKey(ASTER, Channel.ALL_MIDS),
        StreamKey(ASTER, Channel.ALL_MIDS, "", freeze_params({"kind": "spot"})),
    ],  # fmt: skip
    Venue.POLYMARKET: [StreamKey(Venue.POLYMARKET, Channel.BOOK, "7123"), StreamKey(Venue.POLYMARKET, Channel.TRADES, "7123")],
    Venue.PERPS_STUDIO: [
        StreamKey(Venue.PERPS_STUDIO, Channel.BOOK, "perps:hyperliquid:BTC"),
        StreamKey(Venue.PERPS_STUDIO, Channel.BOOK, "perps:aster:ETH"),
        StreamKey(Venue.PERPS_STUDIO, Channel.BOOK, "spot:aster:BTC/USDT"),
        StreamKey(Venue.PERPS_STUDIO, Channel.BOOK, "rwas:hyperliquid:xyz:TSLA"),
        StreamKey(Venue.PERPS_STUDIO, Channel.BOOK, "predictions:polymarket:7123"),
        StreamKey(Venue.PERPS_STUDIO, Channel.TRADES, "perps:aster:SOL"),
        StreamKey(Venue.PERPS_STUDIO, Channel.TICKER, "rwas:hyperliquid:flx:GOLD"),
        StreamKey(Venue.PERPS_STUDIO, Channel.CANDLES, "perps:hyperliquid:ETH", freeze_params({"interval": "15m"})),
        StreamKey(Venue.PERPS_STUDIO, Channel.ALL_MIDS, "perps:aster"),
        StreamKey(Venue.PERPS_STUDIO, Channel.ALL_MIDS, "predictions:polymarket:0xabc"),
    ],
    Venue.PERPEX: [
        StreamKey(Venue.PERPEX, Channel.BOOK, "BTC-USD"),
        StreamKey(Venue.PERPEX, Channel.TRADES, "ETH-USD"),
        StreamKey(Venue.PERPEX, Channel.CANDLES, "SOL-USD", freeze_params({"interval": "5m"})),
        StreamKey(Venue.PERPEX, Channel.TICKER, "BTC-USD"),
        StreamKey(Venue.PERPEX, Channel.POSITIONS),
        StreamKey(Venue.PERPEX, Channel.LIQUIDATION),
        StreamKey(Venue.PERPEX, Channel.FILLS),
    ],
    Venue.RAILS: [
        StreamKey(Venue.RAILS, Channel.BOOK, "BTC-USDT"),
        StreamKey(Venue.RAILS, Channel.TRADES, "ETH-USDT"),
        StreamKey(Venue.RAILS, Channel.CANDLES, "ETH-USDT", freeze_params({"interval": "15m"})),
        StreamKey(Venue.RAILS, Channel.TICKER, "SOL-USDT"),
        StreamKey(Venue.RAILS, Channel.FILLS),
        StreamKey(Venue.RAILS, Channel.ORDERS),
    ],
    Venue.HYPERCALL: [
        StreamKey(Venue.HYPERCALL, Channel.BOOK, "BTC-20260131-100000-C"),
        StreamKey(Venue.HYPERCALL, Channel.TRADES, "ETH-20260131-3500-P"),
        StreamKey(Venue.HYPERCALL, Channel.CANDLES, "BTC", freeze_params({"interval": "1h"})),
        StreamKey(Venue.HYPERCALL, Channel.ALL_MIDS),
        StreamKey(Venue.HYPERCALL, Channel.OPTIONS_CHAIN, "BTC"),
        StreamKey(Venue.HYPERCALL, Channel.OPTIONS_CHAIN, "ETH", freeze_params({"expiry": "2026-01-31", "option_type": "put"})),
        StreamKey(Venue.HYPERCALL, Channel.LISTINGS),
        *(
            StreamKey(Venue.HYPERCALL, channel)
            for channel in (Channel.POSITIONS, Channel.LIQUIDATION, Channel.FILLS, Channel.ORDERS, Channel.COMPETITION)
        ),
    ],
}


@pytest.mark.parametrize("venue", list(ADAPTERS))
async def test_every_adapter_inverts_its_routes_and_snapshot_requests(venue):
    cls = ADAPTERS[venue]
    assert cls.key_for_route is not VenueAdapter.key_for_route and cls.key_for_request is not VenueAdapter.key_for_request
    rest = CapturingRest()
    adapter = cls(Endpoint("ws://x/ws", "http://x"), rest, "0x" + "ab" * 20)  # type: ignore[arg-type]
    snapshots = 0
    for key in KEYS[venue]:
        group = adapter.group(key)
        label = connection_label(venue, group, 4)
        assert group_of_label(venue, label) == group
        assert adapter.key_for_route(adapter.route(key), group) == key
        rest.requests.clear()
        try:
            await adapter.snapshot(key)
        except _Asked:
            (path,) = rest.requests
            assert parse_request(path) is not None
            assert adapter.key_for_request(path) == key, path
            snapshots += 1
    assert snapshots >= 1
    assert adapter.key_for_route(("no such route",), ()) is None
    assert adapter.key_for_request("GET /nothing?x=1") is None


def test_labels_name_the_group():
    assert connection_label("hyperliquid", (), 1) == "hyperliquid#1"
    assert connection_label("aster", "spot", 3) == "aster-spot#3"
    assert group_of_label("aster", "aster-spot#3") == "spot"
    assert group_of_label("perps-studio", "perps-studio#2") == ()


def hl_book_line(t: float, bid: str, ask: str) -> bytes:
    data = {"coin": "BTC", "time": int(t * 1000), "levels": [[{"px": bid, "sz": "1.5", "n": 1}], [{"px": ask, "sz": "2", "n": 1}]]}
    frame = orjson.dumps({"channel": "l2Book", "data": data}).decode()
    return orjson.dumps({"t": t, "venue": "hyperliquid", "conn": "hyperliquid#1", "kind": "ws", "path": "/ws", "frame": frame}) + b"\n"


async def test_replay_keeps_the_recorded_pace_scaled_by_speed():
    service = ReplayService()
    entries = [Entry(i, 100.0 + i * 0.5, HL, "hyperliquid#1", "ws", "/ws", '{"channel":"pong"}') for i in range(3)]
    started = time.monotonic()
    await service.play(entries, speed=5.0)  # 1 s recorded, 0.2 s replayed
    assert 0.18 <= time.monotonic() - started < 1.0
    await service.close()


async def test_the_dashboard_plays_a_recording_with_a_replay_badge(tmp_path):
    path = tmp_path / "small.jsonl"
    path.write_bytes(b"".join(hl_book_line(1_753_000_000.0 + i / 10, f"{100 + i}.5", f"{101 + i}") for i in range(5)))
    app = replay_app(path, speed=0)
    async with app.run_test(size=(120, 40)):
        book = app.service._streams[StreamKey(HL, Channel.BOOK, "BTC")]
        await eventually(lambda: all(c.state is ConnectionState.CLOSED for c in app.service.connections(HL)), what="replay ended")
        assert book.state is StreamState.LIVE and str(book.data.book.best_bid) == "104.5"
        assert app._handles[Channel.BOOK].stream is book
        await eventually(lambda: "REPLAY" in str(app.query_one("#header").render()), what="REPLAY badge")


def aster_line(conn: str, kind: str, body: dict, t: float = 1_753_000_000.0) -> bytes:
    if kind == "ws":
        path, frame = "/stream", orjson.dumps({"stream": "btcusdt@depth@100ms", "data": body}).decode()
    else:
        path, frame = "GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000", orjson.dumps(body).decode()
    return orjson.dumps({"t": t, "venue": "aster", "conn": conn, "kind": kind, "path": path, "frame": frame}) + b"\n"


def depth(first: int, last: int, previous: int, bids=(), asks=()) -> dict:
    return {"e": "depthUpdate", "E": 1_753_000_000_000, "T": 1_753_000_000_000, "s": "BTCUSDT",
            "U": first, "u": last, "pu": previous, "b": list(bids), "a": list(asks)}  # fmt: skip


async def test_a_reconnect_in_the_recording_starts_the_books_over_as_live(tmp_path):
    """After a reconnect the live client clears its books and holds the new socket's first
    updates for the new snapshot; here that snapshot is older than the first update, which only
    the held update bridges. Replayed without the reconnect, that update would be a gap."""
    first, second = "aster-perp#1", "aster-perp#1/2"
    path = tmp_path / "reconnect.jsonl"
    path.write_bytes(
        aster_line(first, "rest", {"lastUpdateId": 100, "E": 1_753_000_000_000, "T": 1_753_000_000_000, "bids": [["99.0", "1"]], "asks": [["102.0", "1"]]})
        + aster_line(first, "ws", depth(98, 103, 97, bids=[["99.5", "1"]]))
        + aster_line(second, "ws", depth(151, 160, 150, bids=[["100.5", "2"]]))
        + aster_line(second, "rest", {"lastUpdateId": 155, "E": 1_753_000_000_100, "T": 1_753_000_000_100, "bids": [["100.0", "1"]], "asks": [["101.0", "1"]]})
        + aster_line(second, "ws", depth(161, 170, 160, asks=[["101.0", "0"], ["101.5", "3"]]))
    )
    replay = ReplayService()
    await replay.play(read_recording(path))
    (connection,) = replay.connections(ASTER)
    assert connection.label == first and connection.reconnects == 1
    await replay.close()
    assert replay.books() == {"aster": {"BTCUSDT": {"bids": [["100.5", "2"], ["100.0", "1"]], "asks": [["101.5", "3"]]}}}
    book = replay._streams[StreamKey(ASTER, Channel.BOOK, "BTCUSDT")]
    assert book.state is StreamState.LIVE and book.resyncs == 0 and book.data.gaps == 0


async def test_a_newer_connection_takes_a_stream_over_once_live_as_in_a_rotation(tmp_path):
    """A rotation: the replacement (another label) syncs its own copy; once it is live it is
    shown, and what the old socket still delivers for the stream is dropped."""
    old, new = "aster-perp#1", "aster-perp#2"
    path = tmp_path / "rotation.jsonl"
    path.write_bytes(
        aster_line(old, "rest", {"lastUpdateId": 100, "bids": [["99.0", "1"]], "asks": [["102.0", "1"]]})
        + aster_line(old, "ws", depth(98, 103, 97, bids=[["99.5", "1"]]))
        + aster_line(new, "rest", {"lastUpdateId": 110, "bids": [["99.0", "1"], ["99.5", "1"]], "asks": [["101.0", "4"]]})
        + aster_line(old, "ws", depth(104, 106, 103, asks=[["101.0", "4"]]))  # not yet: the copy is not live
        + aster_line(new, "ws", depth(107, 112, 106, bids=[["100.0", "2"]]))  # the copy goes live and is shown
        + aster_line(old, "ws", depth(107, 112, 106, bids=[["100.5", "9"]]))  # the old socket's: dropped
    )
    replay = ReplayService()
    handle = replay.subscribe(ASTER, Channel.BOOK, "BTCUSDT")  # held from before the data, like a widget
    await replay.play(read_recording(path))
    old_connection, new_connection = sorted(replay.connections(ASTER), key=lambda c: c.label)
    await replay.close()
    assert handle.stream.data.book.levels() == ([("100.0", "2"), ("99.5", "1"), ("99.0", "1")], [("101.0", "4")])
    assert handle.stream.state is StreamState.LIVE and handle.stream.resyncs == 0
    assert new_connection.streams[handle.key] is handle.stream and handle.key not in old_connection.streams
