"""The Hyperliquid emulator over real sockets: the wire protocol of reference §3-§8 and the fault
controls of the shared server. The engine is stepped by hand (``autostep=False``), so every frame's
content follows from the seed and the ``advance`` calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from app.sim.engine import DEFAULT_START_MS, DEMO_ADDRESS
from app.sim.hyperliquid import HyperliquidEmulator

pytestmark = pytest.mark.timeout(20)

ALL_COINS = {"BTC", "ETH", "SOL", "HYPE", "PURR/USDC", "@1"}
TRADE_KEYS = ["coin", "side", "px", "sz", "time", "hash", "tid", "users"]
CANDLE_KEYS = ["t", "T", "s", "i", "o", "c", "h", "l", "v", "n"]
PERP_CTX_KEYS = ["funding", "openInterest", "prevDayPx", "dayNtlVlm", "premium", "oraclePx", "markPx", "midPx", "impactPxs", "dayBaseVlm"]
SPOT_CTX_KEYS = ["prevDayPx", "dayNtlVlm", "markPx", "midPx", "circulatingSupply", "coin"]


@contextlib.asynccontextmanager
async def emulator(**options: Any) -> AsyncIterator[HyperliquidEmulator]:
    options = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, **options}
    server = HyperliquidEmulator(**options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def emu() -> AsyncIterator[HyperliquidEmulator]:
    async with emulator() as server:
        await server.advance(20_000)  # some trades to backfill
        yield server


class Client:
    """A raw WebSocket client speaking JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str | bytes) else orjson.dumps(message).decode())

    async def raw(self, timeout: float = 2.0) -> str:
        return await asyncio.wait_for(self.ws.recv(), timeout)

    async def recv(self, timeout: float = 2.0) -> Any:
        return orjson.loads(await self.raw(timeout))

    async def recv_channel(self, channel: str, timeout: float = 2.0) -> Any:
        while True:
            message = await self.recv(timeout)
            if message["channel"] == channel:
                return message

    async def silent(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False

    async def subscribe(self, subscription: dict[str, Any], *, initial: bool = True) -> Any:
        """Subscribe, check the ack, return the first data frame (if the channel sends one)."""
        await self.send({"method": "subscribe", "subscription": subscription})
        ack = await self.recv()
        assert ack["channel"] == "subscriptionResponse", ack
        return await self.recv() if initial else None


@contextlib.asynccontextmanager
async def client(server: HyperliquidEmulator) -> AsyncIterator[Client]:
    async with connect(server.ws_url, ping_interval=None) as ws:
        yield Client(ws)


async def info(server: HyperliquidEmulator, body: Any, *, raw: bytes | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        data = raw if raw is not None else orjson.dumps(body)
        async with session.post(server.http_url + "/info", data=data, headers={"Content-Type": "application/json"}) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, orjson.loads(text)
            return response.status, text


# --------------------------------------------------------------------------------------------------
# Subscriptions, acks, errors, ping
# --------------------------------------------------------------------------------------------------


async def test_subscription_ack_is_normalized(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        await c.send({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}})
        assert await c.raw() == (
            '{"channel":"subscriptionResponse","data":{"method":"subscribe","subscription":'
            '{"type":"l2Book","coin":"BTC","nSigFigs":null,"mantissa":null}}}'
        )
        await c.recv_channel("l2Book")
        await c.send({"method": "subscribe", "subscription": {"type": "trades", "coin": "ETH", "junk": 1}})
        ack = await c.recv()
        assert ack["data"] == {"method": "subscribe", "subscription": {"type": "trades", "coin": "ETH"}}
        await c.send({"method": "unsubscribe", "subscription": {"type": "l2Book", "coin": "BTC", "nSigFigs": None}})
        ack = await c.recv_channel("subscriptionResponse")
        assert ack["data"]["method"] == "unsubscribe"
        assert ack["data"]["subscription"] == {"type": "l2Book", "coin": "BTC", "nSigFigs": None, "mantissa": None}
        user = "0x" + "AB" * 20
        await c.send({"method": "subscribe", "subscription": {"type": "userFills", "user": user}})
        ack = await c.recv_channel("subscriptionResponse")
        assert ack["data"]["subscription"] == {"type": "userFills", "user": user.lower()}


async def test_error_strings_and_socket_survives(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        nope = {"method": "subscribe", "subscription": {"type": "l2Book", "coin": "NOPE"}}
        await c.send(nope)
        assert await c.recv() == {"channel": "error", "data": 'Invalid subscription {"type":"l2Book","coin":"NOPE"}'}
        await c.subscribe({"type": "trades", "coin": "BTC"})
        await c.send({"method": "subscribe", "subscription": {"type": "trades", "coin": "BTC"}})
        assert await c.recv() == {"channel": "error", "data": 'Already subscribed: {"type":"trades","coin":"BTC"}'}
        await c.send({"method": "unsubscribe", "subscription": {"type": "bbo", "coin": "ETH"}})
        assert await c.recv() == {"channel": "error", "data": 'Already unsubscribed: {"type":"bbo","coin":"ETH"}'}
        for bad in (
            '{"method": "subscribe", "subscription": {"type": "candles", "coin": "BTC", "interval": "1m"}}',
            '{"method": "subscribe", "subscription": {"type": "candle", "symbol": "BTC", "interval": "1m"}}',
            '{"method": "subscribe", "subscription": {"type": "candle", "coin": "BTC", "interval": "7m"}}',
            '{"type": "allMids"}',
            "not json at all",
            "[1, 2]",
        ):
            await c.send(bad)
            assert await c.recv() == {"channel": "error", "data": f"Error parsing JSON into valid websocket request: {bad}"}
        for invalid in ({"type": "l2Book", "coin": "BTC", "nSigFigs": 7}, {"type": "l2Book", "coin": "BTC", "nSigFigs": 4, "mantissa": 2}):
            await c.send({"method": "subscribe", "subscription": invalid})
            assert (await c.recv())["data"].startswith("Invalid subscription {")
        await c.send({"method": "ping"})
        assert await c.raw() == '{"channel":"pong"}'


async def test_pong_has_no_data_key(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        await c.send({"method": "ping"})
        assert await c.recv() == {"channel": "pong"}


async def test_hostile_input_gets_error_shapes_not_a_crash(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        hostile = [
            b"\xff\xfe\x00binary",
            '{"method":"subscribe"}',
            '{"method":"subscribe","subscription":{"type":["l2Book"]}}',
            '{"method":"subscribe","subscription":{"type":"l2Book","coin":7}}',
            '{"method":"subscribe","subscription":{"type":"userFills","user":"0x123"}}',
            '{"method":"post","id":"x","request":{"type":"info","payload":{}}}',
            '{"method":"post","id":1}',
            "[" * 5000 + "]" * 5000,
            "x" * 100_000,
        ]
        for frame in hostile:
            await c.send(frame)
            assert (await c.recv())["channel"] == "error"
        await c.send({"method": "post", "id": 2, "request": {"type": "info", "payload": [1]}})
        response = (await c.recv())["data"]["response"]
        assert response == {"type": "error", "payload": "Failed to deserialize the JSON body into the target type"}
        await c.send({"method": "ping"})
        assert await c.recv() == {"channel": "pong"}


# --------------------------------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------------------------------


async def test_trades_backlog_then_live(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        backlog = (await c.subscribe({"type": "trades", "coin": "BTC"}))["data"]
        assert 1 <= len(backlog) <= 30
        assert all(list(trade) == TRADE_KEYS and trade["coin"] == "BTC" for trade in backlog)
        assert [t["time"] for t in backlog] == sorted(t["time"] for t in backlog)
        trade = backlog[-1]
        assert trade["side"] in ("B", "A") and isinstance(trade["px"], str) and isinstance(trade["sz"], str)
        assert isinstance(trade["time"], int) and isinstance(trade["tid"], int) and len(trade["users"]) == 2
        live: list[dict[str, Any]] = []
        while not live:
            await emu.advance(1_000)
            with contextlib.suppress(TimeoutError):
                live = (await c.recv_channel("trades", timeout=0.3))["data"]
        assert all(t["coin"] == "BTC" for t in live) and live[0]["time"] > backlog[-1]["time"]


async def test_candle_is_a_single_object(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        first = (await c.subscribe({"type": "candle", "coin": "ETH", "interval": "1m"}))["data"]
        assert list(first) == CANDLE_KEYS and first["s"] == "ETH" and first["i"] == "1m"
        assert first["T"] == first["t"] + 59_999
        for _ in range(20):
            await emu.advance(1_000)
            with contextlib.suppress(TimeoutError):
                frame = await c.recv_channel("candle", timeout=0.3)
                break
        assert isinstance(frame["data"], dict) and list(frame["data"]) == CANDLE_KEYS
        assert all(isinstance(frame["data"][k], str) for k in "ochlv") and isinstance(frame["data"]["n"], int)


async def test_all_mids_is_a_full_map(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        first = await c.subscribe({"type": "allMids"})
        assert set(first["data"]) == {"mids"} and set(first["data"]["mids"]) == ALL_COINS
        await emu.advance(1_000)
        frame = await c.recv_channel("allMids")
        assert set(frame["data"]["mids"]) == ALL_COINS
        status, rest = await info(emu, {"type": "allMids"})
        assert status == 200 and set(rest) == ALL_COINS and rest == frame["data"]["mids"]


async def test_active_asset_ctx_channels(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        perp = await c.subscribe({"type": "activeAssetCtx", "coin": "BTC"})
        assert perp["channel"] == "activeAssetCtx" and list(perp["data"]["ctx"]) == PERP_CTX_KEYS
        spot = await c.subscribe({"type": "activeAssetCtx", "coin": "PURR/USDC"})
        assert spot["channel"] == "activeSpotAssetCtx" and list(spot["data"]["ctx"]) == SPOT_CTX_KEYS
        assert spot["data"]["coin"] == spot["data"]["ctx"]["coin"] == "PURR/USDC"
        ctx = perp["data"]["ctx"]
        assert all(isinstance(ctx[k], str) for k in PERP_CTX_KEYS if k != "impactPxs")
        await emu.advance(1_000)
        channels = {(await c.recv())["channel"] for _ in range(2)}
        assert channels == {"activeAssetCtx", "activeSpotAssetCtx"}


async def test_bbo_on_change_only(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        first = await c.subscribe({"type": "bbo", "coin": "SOL"})
        bid, ask = first["data"]["bbo"]
        assert float(bid["px"]) < float(ask["px"]) and set(bid) == {"px", "sz", "n"}
        await emu.advance(100)
        frame = await c.recv_channel("bbo")
        assert frame["data"]["bbo"] != first["data"]["bbo"]


async def test_l2_book_depth_fast_and_order(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        slow = (await c.subscribe({"type": "l2Book", "coin": "ETH"}))["data"]
        fast = (await c.subscribe({"type": "l2Book", "coin": "ETH", "fast": True}))["data"]
        assert list(slow) == ["coin", "time", "levels"] and slow["time"] == emu.engine.now_ms
        assert [len(side) for side in slow["levels"]] == [20, 20]
        assert [len(side) for side in fast["levels"]] == [5, 5] and fast["fast"] is True
        bids, asks = ([float(level["px"]) for level in side] for side in slow["levels"])
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] < asks[0]
        assert all(list(level) == ["px", "sz", "n"] for level in slow["levels"][0])
        await emu.advance(400)
        assert await c.silent(0.2)  # cadence 0.5 s of virtual time
        await emu.advance(100)
        assert {(await c.recv())["channel"] for _ in range(2)} == {"l2Book"}


async def test_l2_book_significant_figure_bucketing(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        book = (await c.subscribe({"type": "l2Book", "coin": "BTC", "nSigFigs": 3}))["data"]
        raw_bids, raw_asks = emu.engine.levels("BTC")
        bids, asks = book["levels"]
        assert all(float(level["px"]) % 100 == 0 for level in bids + asks)
        assert "spread" in book
        top_bid = float(bids[0]["px"])
        expected = sum(sz for px, sz, _ in raw_bids if top_bid <= px < top_bid + 100)
        assert round(float(bids[0]["sz"]) * 1e5) == expected
        assert float(asks[0]["px"]) >= raw_asks[0][0] > float(asks[0]["px"]) - 100
        book = (await c.subscribe({"type": "l2Book", "coin": "BTC", "nSigFigs": 5, "mantissa": 5}))["data"]
        assert all(float(level["px"]) % 5 == 0 for level in book["levels"][0] + book["levels"][1])
        status, rest = await info(emu, {"type": "l2Book", "coin": "PURR/USDC", "nSigFigs": 2})
        assert status == 200 and all(len(level["px"].rstrip("0")) <= len("0.xx") for level in rest["levels"][0])


async def test_user_fills_snapshot_then_live(emu: HyperliquidEmulator) -> None:
    await emu.advance(600_000)
    async with client(emu) as c:
        snapshot = (await c.subscribe({"type": "userFills", "user": DEMO_ADDRESS}))["data"]
        assert snapshot["isSnapshot"] is True and snapshot["user"] == DEMO_ADDRESS and snapshot["fills"]
        fill = snapshot["fills"][0]
        assert list(fill)[:6] == ["coin", "px", "sz", "side", "time", "startPosition"]
        await c.subscribe({"type": "userEvents", "user": DEMO_ADDRESS}, initial=False)
        while not emu.engine.account.fills or emu.engine.account.fills[-1].time <= snapshot["fills"][0]["time"]:
            await emu.advance(5_000)
        channels = {(await c.recv())["channel"] for _ in range(2)}
        assert channels == {"userFills", "user"}


# --------------------------------------------------------------------------------------------------
# post over the socket
# --------------------------------------------------------------------------------------------------


async def test_post_info_over_websocket(emu: HyperliquidEmulator) -> None:
    payload = {"type": "l2Book", "coin": "ETH", "nSigFigs": 5, "mantissa": None}
    async with client(emu) as c:
        await c.send({"method": "post", "id": 123, "request": {"type": "info", "payload": payload}})
        message = await c.recv()
        assert message["channel"] == "post" and message["data"]["id"] == 123
        response = message["data"]["response"]
        assert response["type"] == "info" and response["payload"]["type"] == "l2Book"
        assert response["payload"]["data"] == (await info(emu, payload))[1]
        await c.send({"method": "post", "id": 124, "request": {"type": "info", "payload": {"type": "nope"}}})
        assert (await c.recv())["data"] == {"id": 124, "response": {"type": "error", "payload": "Failed to deserialize the JSON body into the target type"}}
        await c.send({"method": "post", "id": 125, "request": {"type": "action", "payload": {}}})
        assert (await c.recv())["data"]["response"]["payload"]["status"] == "err"


async def test_post_in_flight_limit() -> None:
    async with emulator(post_latency=0.5) as server, client(server) as c:
        for request_id in range(1, 102):
            await c.send({"method": "post", "id": request_id, "request": {"type": "info", "payload": {"type": "perpDexs"}}})
        assert await c.recv() == {"channel": "error", "data": "too many pending post requests id=101"}
        answered = [(await c.recv())["data"]["id"] for _ in range(100)]
        assert sorted(answered) == list(range(1, 101))


# --------------------------------------------------------------------------------------------------
# REST /info
# --------------------------------------------------------------------------------------------------


async def test_rest_market_metadata(emu: HyperliquidEmulator) -> None:
    status, meta = await info(emu, {"type": "meta", "dex": ""})
    assert status == 200 and [a["name"] for a in meta["universe"]] == ["BTC", "ETH", "SOL", "HYPE"]
    assert [a["szDecimals"] for a in meta["universe"]] == [5, 4, 2, 2]
    _, spot = await info(emu, {"type": "spotMeta"})
    assert [(u["name"], u["index"]) for u in spot["universe"]] == [("PURR/USDC", 0), ("@1", 1)]
    assert [t["index"] for t in spot["tokens"]] == list(range(len(spot["tokens"])))
    names = {t["index"]: t["name"] for t in spot["tokens"]}
    assert [[names[i] for i in u["tokens"]] for u in spot["universe"]] == [["PURR", "USDC"], ["HYPE", "USDC"]]
    _, (meta2, ctxs) = await info(emu, {"type": "metaAndAssetCtxs"})
    assert meta2 == meta and len(ctxs) == 4 and all(list(ctx) == PERP_CTX_KEYS for ctx in ctxs)
    assert (emu.coin("HYPE/USDC"), emu.coin("PURR/USDC"), emu.coin("BTC")) == ("@1", "PURR/USDC", "BTC")
    _, (spot2, spot_ctxs) = await info(emu, {"type": "spotMetaAndAssetCtxs"})
    assert spot2 == spot and [ctx["coin"] for ctx in spot_ctxs] == ["PURR/USDC", "@1"]
    assert await info(emu, {"type": "perpDexs"}) == (200, [None])
    assert await info(emu, {"type": "allMids", "dex": "nope"}) == (200, None)
    status, exchange = await info(emu, {"type": "exchangeStatus"})
    assert exchange == {"time": emu.engine.now_ms, "specialStatuses": None}


async def test_rest_book_trades_and_candles(emu: HyperliquidEmulator) -> None:
    status, book = await info(emu, {"type": "l2Book", "coin": "BTC", "nSigFigs": None, "mantissa": None})
    bids, asks = emu.engine.book("BTC")
    assert status == 200 and book["levels"] == [[{"px": p, "sz": s, "n": n} for p, s, n in side] for side in (bids, asks)]
    assert await info(emu, {"type": "l2Book", "coin": "NOPE"}) == (200, None)
    _, trades = await info(emu, {"type": "recentTrades", "coin": "@1"})
    assert trades and all(list(t) == TRADE_KEYS and t["coin"] == "@1" for t in trades)
    start, end = DEFAULT_START_MS - 5 * 3_600_000 - 5, DEFAULT_START_MS - 1
    _, candles = await info(emu, {"type": "candleSnapshot", "req": {"coin": "SOL", "interval": "1h", "startTime": start, "endTime": end}})
    assert [c["t"] for c in candles] == [DEFAULT_START_MS - h * 3_600_000 for h in range(6, 0, -1)]
    assert all(list(c) == CANDLE_KEYS and c["T"] == c["t"] + 3_599_999 for c in candles)
    _, many = await info(emu, {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1m", "startTime": 0, "endTime": emu.engine.now_ms}})
    assert len(many) == 1441  # one day of history plus the live minute
    for interval in ("15m", "4h", "1d", "1w", "1M"):
        _, bars = await info(emu, {"type": "candleSnapshot", "req": {"coin": "HYPE", "interval": interval, "startTime": 0, "endTime": emu.engine.now_ms}})
        assert len(bars) >= 30, interval
    assert await info(emu, {"type": "candleSnapshot", "req": {"coin": "NOPE", "interval": "1m", "startTime": 0, "endTime": 1}}) == (200, [])


async def test_rest_account_endpoints(emu: HyperliquidEmulator) -> None:
    await emu.advance(600_000)
    _, state = await info(emu, {"type": "clearinghouseState", "user": DEMO_ADDRESS, "dex": ""})
    assert {"marginSummary", "crossMarginSummary", "withdrawable", "assetPositions", "time"} <= set(state)
    for entry in state["assetPositions"]:
        assert entry["type"] == "oneWay" and isinstance(entry["position"]["szi"], str)
    _, empty = await info(emu, {"type": "clearinghouseState", "user": "0x" + "1" * 40})
    assert empty["assetPositions"] == [] and empty["marginSummary"]["accountValue"] == "0.0"
    _, fills = await info(emu, {"type": "userFills", "user": DEMO_ADDRESS})
    assert fills and [f["time"] for f in fills] == sorted((f["time"] for f in fills), reverse=True)
    _, window = await info(emu, {"type": "userFillsByTime", "user": DEMO_ADDRESS, "startTime": fills[5]["time"]})
    assert window and all(f["time"] >= fills[5]["time"] for f in window)
    assert await info(emu, {"type": "openOrders", "user": DEMO_ADDRESS}) == (200, [])
    _, balances = await info(emu, {"type": "spotClearinghouseState", "user": DEMO_ADDRESS})
    assert [b["coin"] for b in balances["balances"]] == ["USDC", "PURR", "HYPE"]


async def test_rest_errors(emu: HyperliquidEmulator) -> None:
    unprocessable = (422, "Failed to deserialize the JSON body into the target type")
    for body in (
        {"type": "nope"},
        {"type": "l2Book"},
        {"type": "l2Book", "coin": "BTC", "nSigFigs": 9},
        {"type": "l2Book", "coin": "BTC", "mantissa": 2},
        {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "2m", "startTime": 0}},
        {"type": "candleSnapshot", "req": {"coin": "BTC", "interval": "1m"}},
        {"type": "userFills", "user": "bob"},
        {"type": ["meta"]},
        [1, 2, 3],
    ):
        assert await info(emu, body) == unprocessable, body
    assert await info(emu, None, raw=b"{not json") == (400, "Failed to parse the request body as JSON")


# --------------------------------------------------------------------------------------------------
# Connection behaviour and fault controls
# --------------------------------------------------------------------------------------------------


async def test_greeting_is_optional() -> None:
    async with emulator(greeting=True) as server, client(server) as c:
        assert await c.raw() == "Websocket connection established."
    async with emulator() as server, client(server) as c:
        assert await c.silent(0.3)


async def test_idle_connections_are_closed_but_pinging_ones_are_not() -> None:
    async with emulator(idle_timeout=0.4) as server, client(server) as quiet, client(server) as busy:
        for _ in range(8):
            await busy.send({"method": "ping"})
            assert await busy.recv() == {"channel": "pong"}
            await asyncio.sleep(0.1)
        with pytest.raises(ConnectionClosed) as closed:
            await quiet.raw(timeout=2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
        assert server.stats.idle_closes >= 1


async def test_drop_all_resets_without_close_frame(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        await c.subscribe({"type": "allMids"})
        emu.drop_all()
        with pytest.raises(ConnectionClosedError) as dropped:
            await c.raw()
        assert dropped.value.rcvd is None
    async with client(emu) as c:  # still listening
        await c.send({"method": "ping"})
        assert await c.recv() == {"channel": "pong"}


async def test_stall_sends_nothing_until_resumed(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        await c.subscribe({"type": "trades", "coin": "BTC"})
        sent = emu.stats.frames_sent
        emu.stall(True)
        await c.send({"method": "ping"})
        await emu.advance(5_000)
        assert await c.silent(0.4)
        assert emu.stats.frames_sent == sent
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(info(emu, {"type": "perpDexs"}), 0.4)
        emu.stall(False)
        assert await c.recv() == {"channel": "pong"}
        assert await info(emu, {"type": "perpDexs"}) == (200, [None])


async def test_refuse_and_listen_again_on_the_same_port(emu: HyperliquidEmulator) -> None:
    port = emu.port
    async with client(emu) as c:
        emu.refuse(True)
        with pytest.raises(ConnectionClosed):
            await c.raw()
    with pytest.raises(OSError):
        async with connect(emu.ws_url, open_timeout=2):
            pass
    with pytest.raises(aiohttp.ClientConnectorError):
        await info(emu, {"type": "perpDexs"})
    emu.refuse(False)
    assert emu.port == port
    async with client(emu) as c:
        await c.send({"method": "ping"})
        assert await c.recv() == {"channel": "pong"}


async def test_restart_closes_with_1012_and_starts_fresh(emu: HyperliquidEmulator) -> None:
    engine, port = emu.engine, emu.port
    async with client(emu) as c:
        await c.subscribe({"type": "trades", "coin": "BTC"})
        await emu.restart()
        with pytest.raises(ConnectionClosed) as closed:
            await c.raw()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert emu.engine is engine and emu.port == port
    async with client(emu) as c:
        await c.subscribe({"type": "trades", "coin": "BTC"})  # not "Already subscribed"
    assert await info(emu, {"type": "perpDexs"}) == (200, [None])


async def test_reject_new_connections_with_close_code(emu: HyperliquidEmulator) -> None:
    async with client(emu) as before:
        emu.reject_new_connections(4001, "unauthorized")
        async with connect(emu.ws_url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "unauthorized")
        await before.send({"method": "ping"})  # existing connections are untouched
        assert await before.recv() == {"channel": "pong"}
        emu.reject_new_connections(None, "")
        async with client(emu) as after:
            await after.send({"method": "ping"})
            assert await after.recv() == {"channel": "pong"}


async def test_flood_sends_distinct_snapshots_to_every_subscriber(emu: HyperliquidEmulator) -> None:
    async with client(emu) as slow, client(emu) as fast, client(emu) as other:
        await slow.subscribe({"type": "l2Book", "coin": "BTC"})
        await fast.subscribe({"type": "l2Book", "coin": "BTC", "fast": True})
        await other.subscribe({"type": "l2Book", "coin": "ETH"})
        sent_before = emu.stats.frames_sent
        assert await emu.flood("BTC", 300) == 600
        assert emu.stats.frames_sent - sent_before == 600
        for c, depth in ((slow, 20), (fast, 5)):
            books = [(await c.recv())["data"] for _ in range(300)]
            assert all(book["coin"] == "BTC" and len(book["levels"][0]) == depth for book in books)
            assert all(a["levels"] != b["levels"] for a, b in zip(books, books[1:], strict=False))
        assert await other.silent(0.2)
        with pytest.raises(KeyError):
            await emu.flood("NOPE", 1)


async def test_stats_count_connections_and_frames(emu: HyperliquidEmulator) -> None:
    async with client(emu) as c:
        await c.send({"method": "ping"})
        await c.recv()
    assert emu.stats.connections_accepted == 1
    assert emu.stats.frames_received == 1 and emu.stats.frames_sent == 1


async def test_autostep_follows_wall_time() -> None:
    async with emulator(autostep=True, tick_interval=0.05) as server, client(server) as c:
        start = server.engine.now_ms
        first = await c.subscribe({"type": "l2Book", "coin": "BTC"})
        pushed = await c.recv_channel("l2Book", timeout=3)  # the next push, 0.5 s of virtual time later
        assert pushed["data"]["time"] >= first["data"]["time"] + 500 > start
        assert server.engine.now_ms - start <= 5_000
