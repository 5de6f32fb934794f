"""The Polymarket emulator over real sockets: the market channel, the REST API and the shared fault
controls. The clock is stepped by hand (``autostep=False``), so every frame follows from the seed and
the ``advance`` calls; a client-side book built from ``book`` + ``price_change`` frames must stay equal
to the emulator's, entry by entry, hash by hash."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.sim.engine import DEFAULT_START_MS, HOSTILE_NAMES
from app.sim.polymarket import PolymarketEmulator, summary_hash
from app.sim.predictions import DEFAULT_MARKETS, PredictionMarkets, TickSizeChange

pytestmark = pytest.mark.timeout(30)

BOOK_KEYS = ["event_type", "market", "asset_id", "timestamp", "hash", "bids", "asks", "tick_size", "last_trade_price"]
REST_BOOK_KEYS = ["market", "asset_id", "timestamp", "hash", "bids", "asks", "min_order_size", "tick_size", "neg_risk", "last_trade_price"]
ENTRY_KEYS = ["asset_id", "price", "size", "side", "hash", "best_bid", "best_ask"]
TRADE_KEYS = ["event_type", "market", "asset_id", "price", "side", "size", "fee_rate_bps", "timestamp", "transaction_hash"]
MARKET_KEYS = [
    "enable_order_book", "active", "closed", "archived", "accepting_orders", "accepting_order_timestamp",
    "minimum_order_size", "minimum_tick_size", "condition_id", "question_id", "question", "description",
    "market_slug", "end_date_iso", "game_start_time", "seconds_delay", "fpmm", "maker_base_fee", "taker_base_fee",
    "notifications_enabled", "neg_risk", "neg_risk_market_id", "neg_risk_request_id", "icon", "image", "rewards",
    "is_50_50_outcome", "tokens", "tags",
]  # fmt: skip
QUIET = 4  # index of the market that trades least (ETH flip): fault tests see price_changes without books between them


@contextlib.asynccontextmanager
async def emulator(**options: Any) -> AsyncIterator[PolymarketEmulator]:
    options = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, **options}
    server = PolymarketEmulator(**options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def subscription(tokens: list[str], **extra: Any) -> dict[str, Any]:
    return {"assets_ids": tokens, "type": "market", "initial_dump": True, "custom_feature_enabled": True, **extra}


class Client:
    """A raw market-channel client that also keeps books the way a careful client would."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.books: dict[str, dict[str, Any]] = {}

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def raw(self, timeout: float = 2.0) -> str:
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def recv(self, timeout: float = 2.0) -> Any:
        """The next frame decoded (``PONG`` as the string it is)."""
        raw = await self.raw(timeout)
        return raw if raw == "PONG" else orjson.loads(raw)

    async def drain(self, quiet: float = 0.15) -> list[Any]:
        """Every frame until the socket is quiet for ``quiet`` seconds."""
        frames = []
        with contextlib.suppress(TimeoutError):
            while True:
                frames.append(await self.recv(quiet))
        return frames

    async def sync(self, *, apply: bool = True) -> list[Any]:
        """PING and wait for the PONG: the server has handled everything sent before. Returns (and
        applies) the frames that came first."""
        await self.send("PING")
        frames = []
        while (frame := await self.recv()) != "PONG":
            frames.append(frame)
            if apply:
                self.apply(frame)
        return frames

    async def silent(self, seconds: float) -> bool:
        try:
            await self.raw(seconds)
        except TimeoutError:
            return True
        return False

    def apply(self, frame: Any) -> None:
        """Apply a frame (object or array) to the local books, checking every hash and best price."""
        for event in frame if isinstance(frame, list) else [frame]:
            kind = event["event_type"]
            if kind == "book":
                self.books[event["asset_id"]] = {
                    "market": event["market"],
                    "bids": {level["price"]: level["size"] for level in event["bids"]},
                    "asks": {level["price"]: level["size"] for level in event["asks"]},
                    "tick_size": event["tick_size"],
                    "last_trade_price": event["last_trade_price"],
                }
                assert local_hash(self.books[event["asset_id"]], event["asset_id"], event["timestamp"]) == event["hash"]
            elif kind == "price_change" and "price_changes" in event:
                for entry in event["price_changes"]:
                    book = self.books.get(entry["asset_id"])
                    if book is None:
                        continue  # the other token of the market, not subscribed
                    side = book["bids" if entry["side"] == "BUY" else "asks"]
                    if entry["size"] == "0":
                        side.pop(entry["price"], None)
                    else:
                        side[entry["price"]] = entry["size"]
                    assert local_hash(book, entry["asset_id"], event["timestamp"]) == entry["hash"]
                    assert best(book) == (entry["best_bid"], entry["best_ask"])
            elif kind == "price_change":  # legacy: one asset per frame
                book = self.books.get(event["asset_id"])
                if book is not None:
                    for change in event["changes"]:
                        side = book["bids" if change["side"] == "BUY" else "asks"]
                        if change["size"] == "0":
                            side.pop(change["price"], None)
                        else:
                            side[change["price"]] = change["size"]
                    assert local_hash(book, event["asset_id"], event["timestamp"]) == event["hash"]

    def levels(self, token: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        book = self.books[token]
        return (
            sorted(book["bids"].items(), key=lambda level: Decimal(level[0]), reverse=True),
            sorted(book["asks"].items(), key=lambda level: Decimal(level[0])),
        )


def best(book: dict[str, Any]) -> tuple[str, str]:
    bids, asks = book["bids"], book["asks"]
    return (max(bids, key=Decimal) if bids else "0"), (min(asks, key=Decimal) if asks else "1")


def local_hash(book: dict[str, Any], token: str, timestamp: str) -> str:
    """The venue's hash recomputed from client-side state (the algorithm py-clob-client documents)."""
    return summary_hash({
        "market": book["market"],
        "asset_id": token,
        "timestamp": timestamp,
        "hash": "",
        "bids": [{"price": p, "size": s} for p, s in sorted(book["bids"].items(), key=lambda level: Decimal(level[0]))],
        "asks": [{"price": p, "size": s} for p, s in sorted(book["asks"].items(), key=lambda level: Decimal(level[0]), reverse=True)],
        "min_order_size": "5",
        "tick_size": book["tick_size"],
        "neg_risk": False,
        "last_trade_price": book["last_trade_price"],
    })  # fmt: skip


@contextlib.asynccontextmanager
async def client(server: PolymarketEmulator, tokens: list[str] | None = None, **extra: Any) -> AsyncIterator[Client]:
    """A connected client; with ``tokens`` it subscribes and applies the dump."""
    async with connect(server.ws_url, ping_interval=None, max_size=None) as ws:
        c = Client(ws)
        if tokens is not None:
            await c.send(subscription(tokens, **extra))
            if extra.get("initial_dump", True) and any(server.model.token(token) for token in tokens):
                c.apply(await c.recv())
        yield c


async def rest(server: PolymarketEmulator, path: str, *, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        method = session.get if body is None else session.post
        kwargs = {} if body is None else {"data": orjson.dumps(body)}
        async with method(server.http_url + path, **kwargs) as response:
            return response.status, orjson.loads(await response.read())


async def run(server: PolymarketEmulator, c: Client, steps: int, dt_ms: int = 500) -> list[Any]:
    """Advance ``steps`` times, applying and returning every frame the client got."""
    frames: list[Any] = []
    for _ in range(steps):
        await server.advance(dt_ms)
        frames += await c.sync()  # everything published before the PONG has arrived
    return frames


def entries_of(frames: list[Any], token: str) -> list[tuple[int, dict[str, str]]]:
    """``(frame index, entry)`` for every price_change entry of ``token``, in wire order."""
    return [
        (index, entry)
        for index, frame in enumerate(frames)
        if isinstance(frame, dict) and frame["event_type"] == "price_change"
        for entry in frame["price_changes"]
        if entry["asset_id"] == token
    ]


# --------------------------------------------------------------------------------------------------
# Subscribing
# --------------------------------------------------------------------------------------------------


async def test_initial_dump_is_one_array_frame_ordered_worst_to_best() -> None:
    async with emulator() as emu, client(emu) as c:
        tokens = emu.token_ids
        await c.send({"assets_ids": tokens, "type": "MARKET"})  # the older docs' spelling
        dump = await c.recv()
        assert isinstance(dump, list) and [book["asset_id"] for book in dump] == tokens
        for book in dump:
            assert list(book) == BOOK_KEYS and book["event_type"] == "book"
            assert book["timestamp"] == str(DEFAULT_START_MS) and len(book["hash"]) == 40
            bids = [Decimal(level["price"]) for level in book["bids"]]
            asks = [Decimal(level["price"]) for level in book["asks"]]
            assert bids == sorted(bids) and asks == sorted(asks, reverse=True) and bids[-1] < asks[-1]
            assert all(isinstance(level[key], str) for level in book["bids"] + book["asks"] for key in ("price", "size"))
            assert book["tick_size"] in ("0.01", "0.001")
        assert {book["last_trade_price"] for book in dump[8:10]} == {""}  # the market that has not traded yet
        assert all(len(book["last_trade_price"]) == 5 for book in dump[:8])  # "0.350": three decimals
        assert await c.silent(0.2)  # nothing moves until the clock does


async def test_dump_options_and_unknown_ids() -> None:
    async with emulator() as emu:
        yes = emu.token_ids[0]
        async with client(emu, [yes], initial_dump=False) as c:
            assert await c.silent(0.2)
        async with client(emu) as c:
            await c.send(subscription(["123", "not a token", yes, yes]))
            assert [book["asset_id"] for book in await c.recv()] == [yes]


async def test_operation_subscribe_and_unsubscribe_on_the_open_socket() -> None:
    async with emulator() as emu:
        first, second = emu.model.markets[0], emu.model.markets[1]
        async with client(emu, [first.token_ids[0]]) as c:
            await c.send({"assets_ids": [second.token_ids[1]], "operation": "subscribe", "type": "market", "markets": []})
            c.apply(added := await c.recv())
            assert [book["asset_id"] for book in added] == [second.token_ids[1]]
            frames = await run(emu, c, 4)
            assert {frame["market"] for frame in frames} == {first.condition_id, second.condition_id}
            await c.send({"assets_ids": [first.token_ids[0]], "operation": "unsubscribe"})
            await c.sync()
            frames = await run(emu, c, 4)
            assert frames and {frame["market"] for frame in frames} == {second.condition_id}
            await c.send({"assets_ids": [second.token_ids[1]], "operation": "subscribe"})  # again: a fresh book
            again = await c.recv()
            assert isinstance(again, list) and again[0]["asset_id"] == second.token_ids[1]


async def test_first_frame_must_be_a_market_subscription() -> None:
    async with emulator() as emu:
        for first in ("PING", '{"assets_ids":["1"],"type":"user"}', '{"assets_ids":["1"],"operation":"subscribe"}', "[]",
                      '{"assets_ids":"1","type":"market"}', '{"assets_ids":[1],"type":"market"}'):  # fmt: skip
            async with client(emu) as c:
                await c.send(first)
                with pytest.raises(ConnectionClosed) as closed:
                    await c.raw()
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "invalid subscription payload")


async def test_ping_pong_and_invalid_operations_keep_the_socket() -> None:
    async with emulator() as emu, client(emu, emu.token_ids[:1]) as c:
        await c.send("PING")
        assert await c.raw() == "PONG"
        for bad in (orjson.dumps(subscription(emu.token_ids[:1])).decode(), '{"assets_ids":[],"operation":"resubscribe"}',
                    "hello", "[1]", '{"operation":"subscribe"}'):  # fmt: skip
            await c.send(bad)
            assert await c.raw() == "INVALID OPERATION"
        await c.send("PING")
        assert await c.raw() == "PONG"


async def test_silent_clients_are_closed_even_while_receiving_data() -> None:
    async with emulator(idle_timeout=0.4) as emu:
        tokens = emu.token_ids
        async with client(emu, tokens) as quiet, client(emu, tokens) as busy:
            for _ in range(8):
                await emu.advance(200)  # the quiet one keeps receiving; it still says nothing
                await busy.send("PING")
                await asyncio.sleep(0.1)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await quiet.raw(timeout=2)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
            await busy.sync()  # still open
            assert emu.stats.idle_closes == 1
            await busy.drain()  # unread frames would stall the closing handshake


# --------------------------------------------------------------------------------------------------
# Streams
# --------------------------------------------------------------------------------------------------


async def test_price_changes_keep_a_client_book_equal_to_the_emulators() -> None:
    async with emulator() as emu, client(emu, emu.token_ids) as c:
        frames = await run(emu, c, 30)  # every hash and best price checked as applied
        kinds = {frame["event_type"] for frame in frames if isinstance(frame, dict)}
        assert {"price_change", "book", "last_trade_price", "best_bid_ask"} <= kinds
        for token in emu.token_ids:
            assert c.levels(token) == emu.book(token)
        changes = [frame for frame in frames if isinstance(frame, dict) and frame["event_type"] == "price_change"]
        assert any(len(frame["price_changes"]) > 2 for frame in changes)  # batches
        for frame in changes:
            assert list(frame) == ["market", "price_changes", "timestamp", "event_type"]
            for yes, no in zip(frame["price_changes"][::2], frame["price_changes"][1::2], strict=True):
                assert list(yes) == ENTRY_KEYS and yes["size"] == no["size"]  # a level and its mirror
                assert Decimal(yes["price"]) + Decimal(no["price"]) == 1 and {yes["side"], no["side"]} == {"BUY", "SELL"}


async def test_legacy_price_change_shape() -> None:
    async with emulator(legacy_price_change=True) as emu, client(emu, emu.token_ids) as c:
        frames = await run(emu, c, 20)
        legacy = [frame for frame in frames if isinstance(frame, dict) and frame["event_type"] == "price_change"]
        assert legacy and all(list(frame) == ["asset_id", "changes", "event_type", "market", "timestamp", "hash"] for frame in legacy)
        assert all(list(change) == ["price", "side", "size"] for frame in legacy for change in frame["changes"])
        for token in emu.token_ids:
            assert c.levels(token) == emu.book(token)


async def test_last_trade_price_then_a_fresh_book() -> None:
    async with emulator() as emu, client(emu, emu.token_ids) as c:
        frames = await run(emu, c, 10)
        trades = [(i, frame) for i, frame in enumerate(frames) if isinstance(frame, dict) and frame["event_type"] == "last_trade_price"]
        assert trades
        for index, trade in trades:
            assert list(trade) == TRADE_KEYS and trade["side"] in ("BUY", "SELL") and trade["fee_rate_bps"] == "0"
            assert all(isinstance(trade[key], str) for key in TRADE_KEYS) and trade["transaction_hash"].startswith("0x")
            later = [frame for frame in frames[index + 1 :] if isinstance(frame, dict)]
            book = next(frame for frame in later if frame["event_type"] != "last_trade_price")
            assert book["event_type"] == "book" and book["market"] == trade["market"]


async def test_best_bid_ask_only_with_custom_features() -> None:
    async with emulator() as emu:
        tokens = emu.token_ids
        async with client(emu, tokens, custom_feature_enabled=True) as on, client(emu, tokens, custom_feature_enabled=False) as off:
            await emu.advance(2_000)
            kinds_on = {frame["event_type"] for frame in await on.drain() if isinstance(frame, dict)}
            kinds_off = {frame["event_type"] for frame in await off.drain() if isinstance(frame, dict)}
            assert "best_bid_ask" in kinds_on and "best_bid_ask" not in kinds_off


async def test_tick_size_change_hook_and_rest() -> None:
    async with emulator() as emu:
        market = emu.model.markets[0]
        yes, no = market.token_ids
        async with client(emu, [yes, no]) as c:
            assert (await rest(emu, f"/tick-size?token_id={yes}")) == (200, {"minimum_tick_size": 0.01})
            await emu.change_tick_size(market.condition_id, "0.001")
            frames = await c.drain()
            changes = [frame for frame in frames if frame["event_type"] == "tick_size_change"]
            assert [(f["asset_id"], f["old_tick_size"], f["new_tick_size"]) for f in changes] == [(yes, "0.01", "0.001"), (no, "0.01", "0.001")]
            assert list(changes[0]) == ["event_type", "market", "asset_id", "old_tick_size", "new_tick_size", "timestamp"]
            books = [frame for frame in frames if frame["event_type"] == "book"]
            assert {book["tick_size"] for book in books} == {"0.001"} and len(books) == 2
            assert (await rest(emu, f"/tick-size/{no}")) == (200, {"minimum_tick_size": 0.001})
            for frame in frames:
                c.apply(frame)
            await emu.change_tick_size(yes, "0.01")
            for frame in await c.drain():
                c.apply(frame)
            assert c.levels(yes) == emu.book(yes) and all(Decimal(px) % Decimal("0.01") == 0 for px, _ in emu.book(yes)[0])


def test_markets_cross_into_and_out_of_the_extreme_tick_zone() -> None:
    mars = PredictionMarkets(3, (DEFAULT_MARKETS[-1],), start_ms=DEFAULT_START_MS)
    changes: list[TickSizeChange] = []
    while len(changes) < 2:
        changes += [event for event in mars.step(1_000) if isinstance(event, TickSizeChange)]
    assert [(change.old_tick, change.new_tick) for change in changes[:2]] in ([(1, 10), (10, 1)], [(10, 1), (1, 10)])
    assert all(px % changes[1].new_tick == 0 for px, _ in changes[1].book.bids + changes[1].book.asks)


# --------------------------------------------------------------------------------------------------
# Book faults
# --------------------------------------------------------------------------------------------------


async def test_skip_drops_one_tokens_entries_and_a_book_follows_in_bounded_time() -> None:
    async with emulator(book_refresh_interval=2.0) as emu:
        yes, no = emu.model.markets[QUIET].token_ids
        async with client(emu, [yes]) as c:
            emu.arm_book_fault(yes, "skip")
            frames: list[Any] = []
            for _ in range(4):
                await emu.advance(100)
                frames += await c.sync(apply=False)  # the local book would fall behind here, on purpose
            changes = [frame for frame in frames if frame["event_type"] == "price_change"]
            assert any({e["asset_id"] for e in frame["price_changes"]} == {no} for frame in changes)  # YES half dropped
            assert all({e["asset_id"] for e in frame["price_changes"]} == {yes, no} for frame in changes[1:])
            c.books.clear()  # recover the way a client must: from the next book on
            frames = await run(emu, c, 5, 500)
            assert any(frame["event_type"] == "book" and frame["asset_id"] == yes for frame in frames)
            assert c.levels(yes) == emu.book(yes)


async def test_duplicate_sends_a_tokens_entries_twice() -> None:
    async with emulator() as emu:
        yes, _ = emu.model.markets[QUIET].token_ids
        async with client(emu, [yes]) as c:
            emu.arm_book_fault(yes, "duplicate")
            frames = await run(emu, c, 4, 100)
            changes = [frame for frame in frames if frame["event_type"] == "price_change"]
            first, again = changes[0], changes[1]
            assert [e for e in first["price_changes"] if e["asset_id"] == yes] == again["price_changes"]
            assert again["timestamp"] == first["timestamp"]
            assert c.levels(yes) == emu.book(yes)  # absolute sizes: harmless


async def test_reorder_swaps_two_consecutive_changes_of_a_token() -> None:
    async with emulator(book_refresh_interval=60.0) as emu:
        yes, _ = emu.model.markets[QUIET].token_ids
        async with connect(emu.ws_url, ping_interval=None) as ws:  # raw: the local book cannot follow a swap
            c = Client(ws)
            await c.send(subscription([yes]))
            await c.recv()
            emu.arm_book_fault(yes, "reorder")
            frames: list[Any] = []
            for _ in range(20):
                await emu.advance(100)
                frames += await c.sync(apply=False)
            stamps = [int(frames[index]["timestamp"]) for index, _ in entries_of(frames, yes)]
            assert any(later < earlier for earlier, later in zip(stamps, stamps[1:], strict=False))


async def test_delta_before_snapshot_reaches_the_next_subscriber_first() -> None:
    async with emulator() as emu:
        yes = emu.token_ids[0]
        emu.arm_book_fault(yes, "delta_before_snapshot")
        await emu.advance(1_000)  # updates leave it armed
        async with client(emu) as c:
            await c.send(subscription([yes]))
            early, dump = await c.recv(), await c.recv()
            assert early["event_type"] == "price_change" and yes in {e["asset_id"] for e in early["price_changes"]}
            assert isinstance(dump, list) and dump[0]["asset_id"] == yes
        async with client(emu) as c:  # once only
            await c.send(subscription([yes]))
            assert isinstance(await c.recv(), list)


async def test_faults_in_the_legacy_shape() -> None:
    async with emulator(legacy_price_change=True) as emu:
        yes, no = emu.model.markets[QUIET].token_ids
        async with client(emu, [yes, no]) as c:
            emu.arm_book_fault(yes, "skip")
            emu.arm_book_fault(yes, "duplicate")
            frames: list[Any] = []
            while len(frames) < 4:
                await emu.advance(100)  # not applied: the skip leaves the local book behind on purpose
                frames += [frame for frame in await c.sync(apply=False) if frame["event_type"] == "price_change"]
            assert [frame["asset_id"] for frame in frames[:4]] == [no, yes, no, yes]  # YES skipped, then...
            assert frames[3] == frames[1] and frames[0]["timestamp"] < frames[1]["timestamp"]  # ...sent twice


async def test_flood_ends_with_the_clients_book_equal_to_the_emulators() -> None:
    async with emulator() as emu:
        market = emu.model.markets[0]
        async with client(emu, list(market.token_ids)) as c, client(emu, emu.model.markets[1].token_ids[:1]) as other:
            sent_before = emu.stats.frames_sent
            assert await emu.flood(market.token_ids[0], 301) == 301
            assert emu.stats.frames_sent - sent_before == 301
            frames = [await c.recv() for _ in range(301)]
            for frame in frames:
                c.apply(frame)  # every entry's hash checked
            assert all(a != b for a, b in zip(frames, frames[1:], strict=False))
            assert all(c.levels(token) == emu.book(token) for token in market.token_ids)
            assert await other.silent(0.2)
        with pytest.raises(KeyError):
            await emu.flood("123", 1)


async def test_base_fault_controls() -> None:
    async with emulator() as emu:
        tokens = emu.token_ids[:2]
        async with client(emu, tokens) as c:
            emu.stall(True)
            await c.send("PING")
            await emu.advance(1_000)
            assert await c.silent(0.3)
            emu.stall(False)
            assert "PONG" in [await c.raw() for _ in range(1)]
            await emu.restart()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await c.raw()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        emu.ignore_requests('"assets_ids"')
        async with client(emu) as c:
            await c.send(subscription(tokens))
            assert await c.silent(0.3)  # the subscription was lost
        emu.ignore_requests(None)
        async with client(emu, tokens) as c:
            assert await emu.inject("not json", b"\x00") == 2
            assert (await c.raw(), await c.raw()) == ("not json", b"\x00")
            emu.drop_all()
            with pytest.raises(ConnectionClosed):
                await c.raw()
        emu.fail_http(503, "down")
        async with aiohttp.ClientSession() as session, session.get(emu.http_url + "/book?token_id=1") as response:
            assert (response.status, await response.text()) == (503, "down")
        emu.fail_http(None)


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


async def test_rest_book_matches_the_ws_book_and_its_hash() -> None:
    async with emulator() as emu:
        await emu.advance(3_000)
        token = emu.token_ids[3]
        async with client(emu) as c:
            await c.send(subscription([token]))
            ws_book = (await c.recv())[0]
        status, book = await rest(emu, f"/book?token_id={token}")
        assert status == 200 and list(book) == REST_BOOK_KEYS
        assert book["hash"] == ws_book["hash"] == summary_hash(book)
        assert (book["bids"], book["asks"], book["timestamp"]) == (ws_book["bids"], ws_book["asks"], ws_book["timestamp"])
        assert book["min_order_size"] == "5" and book["neg_risk"] is False and book["tick_size"] == ws_book["tick_size"]
        status, books = await rest(emu, "/books", body=[{"token_id": token}, {"token_id": "999"}, {"token_id": emu.token_ids[0]}])
        assert status == 200 and [b["asset_id"] for b in books] == [token, emu.token_ids[0]] and books[0] == book


async def test_rest_prices_and_errors() -> None:
    async with emulator() as emu:
        yes, no = emu.model.markets[0].token_ids
        (bid, _), (ask, _) = emu.book(yes)[0][0], emu.book(yes)[1][0]
        assert await rest(emu, f"/price?token_id={yes}&side=BUY") == (200, {"price": bid})
        assert await rest(emu, f"/price?token_id={yes}&side=SELL") == (200, {"price": ask})
        assert await rest(emu, f"/price?token_id={no}&side=BUY") == (200, {"price": str(1 - Decimal(ask))})
        mid = (Decimal(bid) + Decimal(ask)) / 2
        status, body = await rest(emu, f"/midpoint?token_id={yes}")
        assert status == 200 and Decimal(body["mid"]) == mid and isinstance(body["mid"], str)
        assert await rest(emu, f"/spread?token_id={yes}") == (200, {"spread": str(Decimal(ask) - Decimal(bid))})
        assert (await rest(emu, f"/last-trade-price?token_id={yes}"))[1]["price"] != ""
        assert await rest(emu, f"/neg-risk?token_id={yes}") == (200, {"neg_risk": False})
        assert await rest(emu, "/") == (200, "OK")
        assert await rest(emu, "/time") == (200, DEFAULT_START_MS // 1000)
        for path in ("/book", "/book?token_id=", "/book?token_id=0x12", "/tick-size?token_id=1e5", "/midpoint?token_id=-1"):
            assert await rest(emu, path) == (400, {"error": "Invalid token id"}), path
        assert await rest(emu, "/book?token_id=12345") == (404, {"error": "No orderbook exists for the requested token id"})
        assert await rest(emu, "/tick-size?token_id=12345") == (404, {"error": "market not found"})
        assert await rest(emu, "/markets/0x" + "0" * 64) == (404, {"error": "market not found"})
        assert await rest(emu, f"/price?token_id={yes}&side=UP") == (400, {"error": "Invalid side"})


async def test_markets_pages_and_shape() -> None:
    async with emulator(markets_page_size=4, hostile_names=True) as emu:
        total = len(DEFAULT_MARKETS) + len(HOSTILE_NAMES)
        pages, cursor = [], "MA=="
        while cursor != "LTE=":
            status, page = await rest(emu, f"/markets?next_cursor={cursor}")
            assert status == 200 and list(page) == ["data", "next_cursor", "limit", "count"] and page["limit"] == 4
            assert page["count"] == len(page["data"])
            pages.append(page)
            cursor = page["next_cursor"]
        offsets = range(4, total, 4)
        assert [page["next_cursor"] for page in pages] == [base64.b64encode(str(n).encode()).decode() for n in offsets] + ["LTE="]
        markets = [market for page in pages for market in page["data"]]
        assert len(markets) == total and markets[-1]["question"] == HOSTILE_NAMES[-1]
        first = markets[0]
        assert list(first) == MARKET_KEYS and first["market_slug"] == DEFAULT_MARKETS[0].slug
        assert first["condition_id"].startswith("0x") and len(first["condition_id"]) == 66
        assert [token["outcome"] for token in first["tokens"]] == ["Yes", "No"]
        assert all(token["token_id"].isdigit() and len(token["token_id"]) >= 70 for token in first["tokens"])
        assert abs(first["tokens"][0]["price"] + first["tokens"][1]["price"] - 1) < 1e-9
        assert isinstance(first["minimum_tick_size"], float) and first["minimum_order_size"] == 5
        assert (await rest(emu, f"/markets/{first['condition_id']}")) == (200, first)
        assert (await rest(emu, "/markets?next_cursor=LTE="))[1]["data"] == []
        assert (await rest(emu, "/markets?next_cursor=%%%"))[0] == 400


async def test_autostep_streams_live_and_stays_consistent() -> None:
    async with emulator(autostep=True) as emu, client(emu, emu.token_ids) as c:
        start = emu.engine.now_ms
        frames: list[Any] = []
        while emu.engine.now_ms - start < 1_500:
            frames += await c.sync()
        emu.autostep = False  # freeze, then compare
        await asyncio.sleep(0.1)
        frames += await c.sync()
        assert any(frame["event_type"] == "price_change" for frame in frames)
        assert all(c.levels(token) == emu.book(token) for token in emu.token_ids)


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------


async def test_same_seed_same_frames_other_seed_other_ids() -> None:
    recorded = []
    for _ in range(2):
        async with emulator(seed=5) as emu, client(emu) as c:
            await c.send(subscription(emu.token_ids))
            frames = [await c.recv()]
            for _ in range(6):
                await emu.advance(700)
                frames += await c.sync(apply=False)
            recorded.append(frames)
    assert recorded[0] == recorded[1] and len(recorded[0]) > 20
    async with emulator(seed=6) as other:
        assert set(other.token_ids).isdisjoint(frame["asset_id"] for frame in recorded[0][0])
