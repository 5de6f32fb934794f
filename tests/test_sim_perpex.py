"""The Perpex emulator over real sockets on 127.0.0.1: subscriptions, acks and errors, exact order-book
deltas and their faults, auth by header and by message, the positions channel through a
liquidation, REST (rate window, trade pages, orders), the heartbeat and the message-rate close.

The clock is stepped by hand (``autostep=False``); ``{"op":"ping"}`` is the barrier (everything the
server sent before its pong has arrived). Scripted clients send faster than 20 messages a second,
so the message-rate limit is raised except in its own test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.jwt import claims
from app.sim.engine import DEFAULT_START_MS
from app.sim.perpex import PerpexEmulator
from tests.ws_client import JsonClient

pytestmark = pytest.mark.timeout(20)

POSITION_KEYS = ["symbol", "side", "size", "entryPrice", "markPrice", "unrealizedPnl", "leverage", "margin", "liquidationPrice",
                 "marginRatio", "maintenanceMargin"]  # fmt: skip
ACCOUNT_KEYS = ["balance", "equity", "availableMargin", "marginUsed", "maintenanceMargin", "marginRatio"]


@contextlib.asynccontextmanager
async def emulator(**options: Any) -> AsyncIterator[PerpexEmulator]:
    options = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, "max_messages_per_s": 10_000, **options}
    async with PerpexEmulator(**options) as server:
        yield server


class Client(JsonClient):
    """A raw WebSocket client speaking Perpex's JSON."""

    ping = {"op": "ping"}
    pong = ("op", "pong")


@contextlib.asynccontextmanager
async def client(server: PerpexEmulator, token: str | None = None, path: str = "/") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    url = f"ws://127.0.0.1:{server.port}{path}"
    async with connect(url, additional_headers=headers, ping_interval=None, max_size=None, max_queue=None) as ws:
        yield Client(ws)


async def rest(server: PerpexEmulator, method: str, path: str, token: str | None = None, body: Any = None,
               **params: Any) -> tuple[int, Any, Any]:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session:
        data = None if body is None else orjson.dumps(body)
        async with session.request(method, server.http_url + path, params={k: str(v) for k, v in params.items()}, data=data, headers=headers) as response:
            return response.status, orjson.loads(await response.read()), response.headers


def data_frames(frames: list[Any], channel: str) -> list[Any]:
    return [frame for frame in frames if frame.get("channel") == channel and frame["op"] in ("snapshot", "update")]


def apply(book: dict[str, dict[str, str]], frame: Any) -> None:
    for side in ("bids", "asks"):
        if frame["op"] == "snapshot":
            book[side] = {}
        for price, size in frame["data"][side]:
            if size == "0":
                book[side].pop(price, None)
            else:
                book[side][price] = size


# --------------------------------------------------------------------------------------------------
# Order book
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [5, 20])
async def test_snapshot_and_deltas_rebuild_the_exact_top_n(depth: int) -> None:
    async with emulator() as emu, client(emu) as c:
        frames = await c.request({"op": "subscribe", "channel": "orderbook", "symbol": "BTC-USD", "depth": depth, "id": "c1"})
        assert frames[0] == {"op": "subscribed", "channel": "orderbook", "symbol": "BTC-USD", "depth": depth, "id": "c1"}
        for _ in range(40):
            await emu.advance(100)
        frames += await c.sync()
        stream = data_frames(frames, "orderbook")
        assert [frame["seq"] for frame in stream] == list(range(1, len(stream) + 1)) and len(stream) > 20
        assert stream[0]["op"] == "snapshot" and all(frame["op"] == "update" for frame in stream[1:])
        assert list(stream[1]) == ["op", "channel", "symbol", "seq", "ts", "data"]
        book: dict[str, dict[str, str]] = {}
        for frame in stream:
            apply(book, frame)
            assert len(book["bids"]) <= depth and len(book["asks"]) <= depth
        bids, asks = emu.engine.book("BTC", depth)
        assert book == {"bids": {px: sz for px, sz, _ in bids}, "asks": {px: sz for px, sz, _ in asks}}
        status, body, _ = await rest(emu, "GET", "/api/v1/orderbook/BTC-USD", depth=depth)
        assert status == 200 and body["bids"] == [[px, sz] for px, sz, _ in bids] and body["seq"] > 1


async def test_skip_fault_shows_a_gap_and_resubscribe_restarts_at_one() -> None:
    async with emulator() as emu, client(emu) as c:
        await c.request({"op": "subscribe", "channel": "orderbook", "symbol": "ETH-USD", "depth": 10, "id": 1})
        await emu.advance(100)
        emu.arm_book_fault("ETH-USD", "skip")
        for _ in range(5):
            await emu.advance(100)
        seqs = [frame["seq"] for frame in data_frames(await c.sync(), "orderbook")]
        assert any(b - a == 2 for a, b in zip(seqs, seqs[1:], strict=False)) or seqs[0] == 3
        emu.arm_book_fault("ETH-USD", "duplicate")
        await emu.advance(100)
        await emu.advance(100)
        seqs = [frame["seq"] for frame in data_frames(await c.sync(), "orderbook")]
        assert len(seqs) != len(set(seqs))
        assert (await c.request({"op": "unsubscribe", "channel": "orderbook", "symbol": "ETH-USD", "id": 2}))[0]["op"] == "unsubscribed"
        frames = await c.request({"op": "subscribe", "channel": "orderbook", "symbol": "ETH-USD", "id": 3})
        assert frames[0] == {"op": "subscribed", "channel": "orderbook", "symbol": "ETH-USD", "id": 3}  # depth as sent: none
        assert frames[1]["op"] == "snapshot" and frames[1]["seq"] == 1 and len(frames[1]["data"]["bids"]) == 20


async def test_delta_before_snapshot_and_reorder() -> None:
    async with emulator() as emu, client(emu) as c:
        emu.arm_book_fault("SOL-USD", "delta_before_snapshot")
        frames = await c.request({"op": "subscribe", "channel": "orderbook", "symbol": "SOL-USD", "id": "x"})
        assert [frame["op"] for frame in frames] == ["update", "subscribed", "snapshot"]
        emu.arm_book_fault("SOL-USD", "reorder")
        for _ in range(4):
            await emu.advance(100)
        seqs = [frame["seq"] for frame in data_frames(await c.sync(), "orderbook")]
        assert seqs != sorted(seqs) and sorted(seqs) == list(range(2, 2 + len(seqs)))


# --------------------------------------------------------------------------------------------------
# Subscriptions and errors
# --------------------------------------------------------------------------------------------------


async def test_subscription_limit_and_a_freed_slot() -> None:
    async with emulator() as emu, client(emu) as c:
        requests = [{"op": "subscribe", "channel": channel, "symbol": symbol, "id": f"{channel}-{symbol}"}
                    for symbol in ("BTC-USD", "ETH-USD", "SOL-USD", "HYPE-USD") for channel in ("orderbook", "trades")]  # fmt: skip
        requests += [{"op": "subscribe", "channel": "candles", "symbol": "BTC-USD", "interval": interval, "id": interval} for interval in ("1m", "5m")]
        for request in requests:
            assert (await c.request(request))[0]["op"] == "subscribed"
        assert (await c.request(requests[0]))[0]["op"] == "subscribed"  # an active one again: a no-op, acked
        eleventh = {"op": "subscribe", "channel": "candles", "symbol": "ETH-USD", "interval": "1h", "id": "c11"}
        refused = await c.request(eleventh)
        assert refused == [{"op": "error", "code": "SUBSCRIPTION_LIMIT", "message": "Maximum 10 subscriptions per connection", "id": "c11"}]
        for _ in range(20):
            await emu.advance(100)
        flowing = {(frame["channel"], frame["symbol"]) for frame in await c.sync() if frame["op"] == "update"}
        assert {("orderbook", s) for s in ("BTC-USD", "ETH-USD", "SOL-USD", "HYPE-USD")} <= flowing and ("trades", "BTC-USD") in flowing
        assert (await c.request({"op": "unsubscribe", "channel": "trades", "symbol": "SOL-USD", "id": "u"}))[0]["op"] == "unsubscribed"
        frames = await c.request(eleventh)
        assert frames[0] == {"op": "subscribed", "channel": "candles", "symbol": "ETH-USD", "interval": "1h", "id": "c11"}
        assert frames[1]["op"] == "snapshot" and len(frames[1]["data"]) == 100 and frames[1]["data"][-1]["interval"] == "1h"


async def test_request_errors_keep_the_socket_open() -> None:
    async with emulator() as emu, client(emu, path="/ws") as c:
        cases = [
            ("{nope", "INVALID_REQUEST", "Malformed message", None),
            ({"op": "subscribe", "channel": "orderbook", "symbol": "DOGE-XYZ", "id": "c1"}, "INVALID_SYMBOL", "Unknown symbol: DOGE-XYZ", "c1"),
            ({"op": "subscribe", "channel": "ticker", "symbol": "BTC-USD", "id": 2}, "INVALID_REQUEST", "unknown channel: ticker", 2),
            ({"op": "subscribe", "channel": "orderbook", "symbol": "BTC-USD", "depth": 7, "id": 3}, "INVALID_REQUEST",
             "invalid depth: 7 (one of 5, 10, 20, 50)", 3),
            ({"op": "subscribe", "channel": "candles", "symbol": "BTC-USD", "interval": "2m", "id": 4}, "INVALID_REQUEST",
             "invalid interval: 2m (one of 1m, 5m, 15m, 1h, 4h, 1d)", 4),
            ({"op": "subscribe", "channel": "trades", "id": 5}, "INVALID_REQUEST", "missing field: symbol", 5),
            ({"op": "subscribe", "channel": "trades", "symbol": "BTC-USD", "depth": 5, "id": 6}, "INVALID_REQUEST", "unknown field: depth", 6),
            ({"op": "subscribe", "channel": "positions", "id": "c4"}, "UNAUTHORIZED", "authentication required", "c4"),
            ({"op": "fly", "id": 7}, "INVALID_REQUEST", "unknown op: fly", 7),
        ]  # fmt: skip
        for message, code, text, request_id in cases:
            assert await c.request(message) == [{"op": "error", "code": code, "message": text, "id": request_id}]
        frames = await c.request({"op": "unsubscribe", "channel": "trades", "symbol": "BTC-USD", "id": 8})
        assert frames == [{"op": "unsubscribed", "channel": "trades", "symbol": "BTC-USD", "id": 8}]  # idempotent


async def test_trades_and_candles_streams() -> None:
    async with emulator() as emu, client(emu) as c:
        await emu.advance(40_000)  # the tape fills up: ~2 trades a second
        frames = await c.request({"op": "subscribe", "channel": "trades", "symbol": "BTC-USD", "id": 1})
        snapshot = frames[1]
        assert snapshot["op"] == "snapshot" and snapshot["seq"] == 1 and len(snapshot["data"]) == 50
        assert list(snapshot["data"][0]) == ["id", "price", "size", "side", "ts"] and snapshot["data"][0]["id"].startswith("t-")
        await c.request({"op": "subscribe", "channel": "candles", "symbol": "BTC-USD", "interval": "1m", "id": 2})
        for _ in range(70):
            await emu.advance(1_000)
        frames = await c.sync()
        trades = data_frames(frames, "trades")
        assert [frame["seq"] for frame in trades] == list(range(2, 2 + len(trades))) and trades
        candles = [frame for frame in data_frames(frames, "candles")]
        assert all(list(frame["data"]) == ["interval", "t", "o", "h", "l", "c", "v", "closed"] for frame in candles)
        closed = [frame["data"] for frame in candles if frame["data"]["closed"]]
        assert len(closed) == 1 and len({frame["data"]["t"] for frame in candles}) == 2


# --------------------------------------------------------------------------------------------------
# Auth and positions
# --------------------------------------------------------------------------------------------------


async def test_auth_by_header_and_by_message() -> None:
    async with emulator() as emu:
        token = emu.demo_credentials()["token"]
        assert claims(token) == {"sub": "demo", "iat": DEFAULT_START_MS // 1000, "exp": 4102444800}
        async with client(emu, token) as c:
            frames = await c.request({"op": "subscribe", "channel": "positions", "id": "p"})
            assert frames[0] == {"op": "subscribed", "channel": "positions", "id": "p"}
            snapshot = frames[1]
            assert list(snapshot) == ["op", "channel", "seq", "ts", "data"] and snapshot["seq"] == 1
            positions = snapshot["data"]["positions"]
            assert [(p["symbol"], p["side"], p["size"]) for p in positions] == [("BTC-USD", "long", "0.5"), ("ETH-USD", "short", "10.0")]
            assert all(list(p) == POSITION_KEYS for p in positions) and list(snapshot["data"]["account"]) == ACCOUNT_KEYS
        for bad in ("nope", emu.issue_token(ttl=-5), PerpexEmulator(seed=8).demo_credentials()["token"]):
            with pytest.raises(InvalidStatus) as refused:
                async with client(emu, bad):
                    pass
            assert refused.value.response.status_code == 401
            assert orjson.loads(refused.value.response.body) == {"error": {"code": "UNAUTHORIZED", "message": "invalid or expired token"}}
        async with client(emu) as c:
            assert await c.request({"op": "auth", "token": "x.y.z", "id": "a0"}) == [
                {"op": "error", "code": "UNAUTHORIZED", "message": "invalid or expired token", "id": "a0"}]
            assert await c.request({"op": "auth", "token": emu.issue_token(ttl=-1), "id": "a1"}) == [
                {"op": "error", "code": "UNAUTHORIZED", "message": "token expired", "id": "a1"}]
            assert await c.request({"op": "auth", "token": emu.issue_token("alice"), "id": "a2"}) == [{"op": "auth", "success": True, "id": "a2"}]
            frames = await c.request({"op": "subscribe", "channel": "positions", "id": "p"})
            assert frames[1]["data"]["positions"] == [] and frames[1]["data"]["account"]["balance"] == "10000.0"


async def test_an_expiring_token_ends_the_positions_stream() -> None:
    async with emulator() as emu, client(emu) as c:
        await c.request({"op": "auth", "token": emu.issue_token(ttl=0.4), "id": 1})
        await c.request({"op": "subscribe", "channel": "positions", "id": 2})
        assert await c.recv() == {"op": "error", "code": "TOKEN_EXPIRED", "message": "token expired", "id": None}
        assert await c.request({"op": "subscribe", "channel": "positions", "id": 3}) == [
            {"op": "error", "code": "UNAUTHORIZED", "message": "authentication required", "id": 3}]


async def test_warning_then_liquidation_under_the_stage_control() -> None:
    async with emulator() as emu, client(emu, emu.demo_credentials()["token"]) as c:
        await c.request({"op": "subscribe", "channel": "positions", "id": 1})
        emu.set_liquidation_stage("warning")
        await emu.advance(100)
        events = [frame["data"] for frame in await c.sync()]
        warnings = [event for event in events if event["event"] == "liquidation_warning"]
        assert [w["symbol"] for w in warnings] == ["BTC-USD", "ETH-USD"]
        assert warnings[0]["marginRatio"] == "0.85" and warnings[0]["message"] == "Position close to liquidation"
        assert float(warnings[0]["liquidationPrice"]) < emu.engine.mark_px("BTC")  # long: liquidated below the mark
        assert float(warnings[1]["liquidationPrice"]) > emu.engine.mark_px("ETH")  # short: above
        await emu.advance(5_000)
        assert not [f for f in await c.sync() if f["data"]["event"] == "liquidation_warning"]  # repeats only every 10 s
        await emu.advance(5_000)
        assert len([f for f in await c.sync() if f["data"]["event"] == "liquidation_warning"]) == 2
        emu.set_liquidation_stage("liquidating")
        await emu.advance(100)
        events = [frame["data"] for frame in await c.sync()]
        assert [(e["event"], e["symbol"] if "symbol" in e else e["position"]["symbol"]) for e in events] == [
            ("liquidated", "BTC-USD"), ("position_update", "BTC-USD"), ("liquidated", "ETH-USD"), ("position_update", "ETH-USD")]
        assert events[0]["size"] == "0.5" and events[1]["position"]["size"] == "0" and events[3]["position"]["side"] == "short"
        status, account, _ = await rest(emu, "GET", "/api/v1/account", emu.demo_credentials()["token"])
        assert status == 200 and account["positions"] == [] and account["marginRatio"] == "0.0"


async def test_liquidation_scenario_walks_the_stages() -> None:
    async with emulator(scenario="liquidation") as emu, client(emu, emu.demo_credentials()["token"]) as c:
        await c.request({"op": "subscribe", "channel": "positions", "id": 1})
        seen: list[tuple[int, str]] = []
        for second in range(1, 27):
            await emu.advance(1_000)
            seen += [(second, frame["data"]["event"]) for frame in await c.sync() if frame["data"]["event"] != "position_update"]
        warned = [(second, event) for second, event in seen if event == "liquidation_warning"]
        assert warned == [(10, "liquidation_warning")] * 2 + [(20, "liquidation_warning")] * 2  # normal 10 s, then every 10 s
        assert seen[len(warned):] == [(25, "liquidated")] * 2


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


async def test_markets_and_orderbook_rest() -> None:
    async with emulator() as emu:
        status, body, _ = await rest(emu, "GET", "/v1/markets")
        assert status == 200 and [row["symbol"] for row in body["data"]] == ["BTC-USD", "ETH-USD", "SOL-USD", "HYPE-USD"]
        assert list(body["data"][0]) == ["symbol", "baseAsset", "quoteAsset", "tickSize", "stepSize", "maxLeverage", "markPrice", "indexPrice",
                                         "lastPrice", "fundingRate", "openInterest", "volume24h", "change24hPct"]  # fmt: skip
        assert body["data"][0]["maxLeverage"] == 50 and isinstance(body["data"][0]["markPrice"], str)
        assert (await rest(emu, "GET", "/api/v1/orderbook/NOPE-USD"))[:2] == (404, {"error": {"code": "INVALID_SYMBOL", "message": "Unknown symbol: NOPE-USD"}})
        assert (await rest(emu, "GET", "/api/v1/orderbook/BTC-USD", depth=3))[1]["error"]["code"] == "INVALID_REQUEST"
        status, book, _ = await rest(emu, "GET", "/api/v1/orderbook/BTC-USD", depth=5)
        assert list(book) == ["symbol", "seq", "ts", "bids", "asks"] and len(book["asks"]) == 5


async def test_rest_rate_limit_429_then_the_window_frees() -> None:
    async with emulator() as emu, aiohttp.ClientSession() as session:
        url = emu.http_url + "/api/v1/markets"
        for _ in range(120):
            async with session.get(url) as response:
                assert response.status == 200
        async with session.get(url) as response:
            assert response.status == 429 and 1 <= int(response.headers["Retry-After"]) <= 60
            assert orjson.loads(await response.read()) == {"error": {"code": "RATE_LIMITED", "message": "Rate limit exceeded: 120 requests per minute"}}
        headers = {"Authorization": f"Bearer {emu.demo_credentials()['token']}"}
        async with session.get(url, headers=headers) as response:
            assert response.status == 200  # a key of its own
        assert emu.rest_requests == {"ip:127.0.0.1": {"served": 120, "rejected": 1}, "demo": {"served": 1, "rejected": 0}}
    async with emulator(rest_rate_limit=3, rest_rate_window=0.5) as emu:
        statuses = [(await rest(emu, "GET", "/api/v1/markets"))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        await asyncio.sleep(0.55)
        assert (await rest(emu, "GET", "/api/v1/markets"))[0] == 200  # refused requests did not count


async def test_trades_history_pages_and_filters() -> None:
    async with emulator() as emu:
        token = emu.demo_credentials()["token"]
        seen: list[dict[str, Any]] = []
        cursor = None
        while True:
            status, page, _ = await rest(emu, "GET", "/api/v1/trades", token, **({"cursor": cursor} if cursor else {}))
            assert status == 200
            seen += page["data"]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        assert len(seen) == 120 and len({row["id"] for row in seen}) == 120
        assert [row["ts"] for row in seen] == sorted((row["ts"] for row in seen), reverse=True)
        assert list(seen[0]) == ["id", "orderId", "symbol", "side", "price", "size", "fee", "liquidity", "ts"]
        status, page, _ = await rest(emu, "GET", "/api/v1/trades", token, symbol="ETH-USD", limit=100)
        assert page["data"] == [row for row in seen if row["symbol"] == "ETH-USD"] and page["nextCursor"] is None
        assert (await rest(emu, "GET", "/api/v1/trades", token, limit=101))[0] == 400
        assert (await rest(emu, "GET", "/api/v1/trades", token, symbol="X-USD"))[1]["error"]["code"] == "INVALID_SYMBOL"
        assert (await rest(emu, "GET", "/api/v1/trades", token, cursor="%%"))[0] == 400
        for bad, why in ((None, "missing token"), ("garbage", "invalid token"), (emu.issue_token(ttl=-1), "token expired")):
            assert (await rest(emu, "GET", "/api/v1/trades", bad))[:2] == (401, {"error": {"code": "UNAUTHORIZED", "message": why}})


async def test_market_order_changes_position_and_trades_and_pushes_an_update() -> None:
    async with emulator() as emu, client(emu, emu.demo_credentials()["token"]) as c:
        token = emu.demo_credentials()["token"]
        await c.request({"op": "subscribe", "channel": "positions", "id": 1})
        order = {"symbol": "BTC-USD", "side": "buy", "type": "market", "size": "0.01", "clientOrderId": "my-1"}
        status, body, _ = await rest(emu, "POST", "/api/v1/orders", token, order)
        assert status == 200 and body["order"]["status"] == "filled" and body["order"]["filledSize"] == "0.01"
        assert list(body["order"])[:10] == ["id", "clientOrderId", "symbol", "side", "type", "size", "price", "filledSize", "status", "ts"]
        update = [frame["data"] for frame in await c.sync()]
        assert update[0]["event"] == "position_update" and update[0]["position"]["size"] == "0.51"
        _, account, _ = await rest(emu, "GET", "/api/v1/account", token)
        assert account["positions"][0]["size"] == "0.51"
        _, trades, _ = await rest(emu, "GET", "/api/v1/trades", token, limit=1)
        assert trades["data"][0]["orderId"] == body["order"]["id"] and trades["data"][0]["liquidity"] == "taker"


async def test_order_errors_limit_resting_and_cancel() -> None:
    async with emulator() as emu:
        token = emu.demo_credentials()["token"]
        status, body, _ = await rest(emu, "POST", "/api/v1/orders", token, {"symbol": "BTC-USD", "side": "buy", "type": "market", "size": "1"})
        assert (status, body) == (400, {"error": {"code": "INSUFFICIENT_MARGIN", "message": "Insufficient margin for order"}})
        assert (await rest(emu, "POST", "/api/v1/orders", token, {"symbol": "X-USD", "side": "buy", "type": "market", "size": "1"}))[0] == 404
        assert (await rest(emu, "POST", "/api/v1/orders", token, {"symbol": "BTC-USD", "side": "buy", "type": "limit", "size": "0.01"}))[0] == 400
        assert (await rest(emu, "DELETE", "/api/v1/orders/o-1", token))[:2] == (404, {"error": {"code": "ORDER_NOT_FOUND", "message": "Order not found: o-1"}})
        eleven = {"orders": [{"symbol": "SOL-USD", "side": "buy", "type": "market", "size": "0.1"}] * 11}
        assert (await rest(emu, "POST", "/api/v1/orders/batch", token, eleven))[:2] == (400, {"error": {"code": "BATCH_TOO_LARGE", "message": "Maximum 10 orders per batch"}})
        bid = emu.engine.bbo("ETH")[0]
        assert bid is not None
        far = emu.markets["ETH-USD"].px_str(bid[0] - 500)
        batch = {"orders": [{"symbol": "ETH-USD", "side": "buy", "type": "limit", "size": "0.1", "price": far}, {"symbol": "ETH-USD", "side": "up", "type": "limit", "size": "1"}]}
        status, body, _ = await rest(emu, "POST", "/v1/orders/batch", token, batch)
        assert status == 200 and body["orders"][0]["order"]["status"] == "open" and body["orders"][1]["error"]["code"] == "INVALID_REQUEST"
        order_id = body["orders"][0]["order"]["id"]
        status, body, _ = await rest(emu, "DELETE", f"/api/v1/orders/{order_id}", token)
        assert status == 200 and body["order"]["status"] == "canceled"
        assert (await rest(emu, "DELETE", f"/api/v1/orders/{order_id}", token))[0] == 404


# --------------------------------------------------------------------------------------------------
# Liveness and determinism
# --------------------------------------------------------------------------------------------------


async def test_ping_after_silence_and_4000_without_pong() -> None:
    async with emulator(ping_after=0.3, pong_timeout=0.3) as emu, aiohttp.ClientSession() as session:
        async with session.ws_connect(emu.ws_url, autoping=False) as ws:
            message = await ws.receive(timeout=2)
            assert message.type is aiohttp.WSMsgType.PING
            await ws.pong(message.data)
            assert (await ws.receive(timeout=2)).type is aiohttp.WSMsgType.PING  # after the next silence
            closing = await ws.receive(timeout=2)
            assert (closing.type, closing.data, closing.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "heartbeat timeout")


async def test_message_flood_closes_4029() -> None:
    async with emulator(max_messages_per_s=20) as emu, client(emu) as c:
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(40):
                await c.send({"op": "ping"})
            while True:
                await c.recv()
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4029, "message rate exceeded")


async def test_same_seed_same_frames() -> None:
    runs = []
    for _ in range(2):
        async with emulator() as emu, client(emu, emu.demo_credentials()["token"]) as c:
            await c.request({"op": "subscribe", "channel": "orderbook", "symbol": "HYPE-USD", "depth": 50, "id": 1})
            await c.request({"op": "subscribe", "channel": "positions", "id": 2})
            for _ in range(15):
                await emu.advance(100)
            runs.append((emu.demo_credentials(), await c.sync(), (await rest(emu, "GET", "/api/v1/trades", emu.demo_credentials()["token"]))[1]))
    assert runs[0] == runs[1]
