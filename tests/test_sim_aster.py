"""The Aster emulator over real sockets: requests, acks and errors, stream shapes, the local-book
procedure, book faults, limits, liveness and determinism. The engine is stepped by hand
(``autostep=False``), so every frame's content follows from the seed and the ``advance`` calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.sim.aster import AsterEmulator
from app.sim.engine import DEFAULT_START_MS, HOSTILE_NAMES

pytestmark = pytest.mark.timeout(20)

FUTURES_SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "HYPEUSDT"]
SPOT_SYMBOLS = ["ASTERUSDT", "BTCUSDT"]
# key order of the recorded Binance USD-M frames (fixtures/binance_futures) and Aster's docs
DEPTH_KEYS = ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
AGG_TRADE_KEYS = ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"]
KLINE_KEYS = ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"]
BOOK_TICKER_KEYS = ["e", "u", "s", "b", "B", "a", "A", "T", "E"]
TICKER_KEYS = ["e", "E", "s", "p", "P", "w", "c", "Q", "o", "h", "l", "v", "q", "O", "C", "F", "L", "n"]
MARK_KEYS = ["e", "E", "s", "p", "i", "P", "r", "T"]


@contextlib.asynccontextmanager
async def emulator(**options: Any) -> AsyncIterator[AsterEmulator]:
    options = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, **options}
    async with AsterEmulator(**options) as server:
        yield server


@pytest.fixture
async def emu() -> AsyncIterator[AsterEmulator]:
    async with emulator() as server:
        await server.advance(5_000)  # a few trades on the tape
        yield server


class Socket:
    """A raw WebSocket client speaking Aster's JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def raw(self, timeout: float = 2.0) -> str:
        return await asyncio.wait_for(self.ws.recv(), timeout)  # type: ignore[return-value]

    async def recv(self, timeout: float = 2.0) -> Any:
        return orjson.loads(await self.raw(timeout))

    async def request(self, method: str, params: Any = None, request_id: int = 1) -> Any:
        """Send a request and return its answer (data frames in between are skipped)."""
        message: dict[str, Any] = {"method": method, "id": request_id}
        if params is not None:
            message["params"] = params
        await self.send(message)
        while True:
            answer = await self.recv()
            if isinstance(answer, dict) and ("result" in answer or "code" in answer):
                return answer

    async def drain(self, quiet: float = 0.1) -> list[Any]:
        """Every frame until the socket has been quiet for ``quiet`` seconds."""
        frames = []
        with contextlib.suppress(TimeoutError):
            while True:
                frames.append(await self.recv(quiet))
        return frames

    async def silent(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def socket(url: str) -> AsyncIterator[Socket]:
    async with connect(url, ping_interval=None) as ws:
        yield Socket(ws)


async def rest(server: AsterEmulator, path: str, **params: Any) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + path, params={k: str(v) for k, v in params.items()}) as response:
            body = await response.read()
            return response.status, orjson.loads(body) if response.content_type == "application/json" else body.decode(), response.headers


def data(frames: list[Any], stream: str | None = None) -> list[Any]:
    """Payloads of combined frames, optionally of one stream."""
    return [frame["data"] for frame in frames if "stream" in frame and (stream is None or frame["stream"] == stream)]


# --------------------------------------------------------------------------------------------------
# Requests, acks, errors, wrapping
# --------------------------------------------------------------------------------------------------


async def test_subscribe_list_unsubscribe_and_properties(emu: AsterEmulator) -> None:
    async with socket(emu.ws_url) as c:
        await c.send({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "ethusdt@depth"], "id": 1})
        assert await c.raw() == '{"result":null,"id":1}'
        assert await c.request("LIST_SUBSCRIPTIONS", request_id=3) == {"result": ["btcusdt@aggTrade", "ethusdt@depth"], "id": 3}
        assert await c.request("GET_PROPERTY", ["combined"], 2) == {"result": True, "id": 2}
        assert await c.request("UNSUBSCRIBE", ["ethusdt@depth"], 312) == {"result": None, "id": 312}
        assert await c.request("LIST_SUBSCRIPTIONS", request_id=4) == {"result": ["btcusdt@aggTrade"], "id": 4}
        assert await c.request("SET_PROPERTY", ["combined", False], 5) == {"result": None, "id": 5}
        assert await c.request("GET_PROPERTY", ["combined"], 6) == {"result": False, "id": 6}
        await emu.advance(2_000)
        frames = await c.drain()
        assert frames and all(frame["e"] == "aggTrade" and frame["s"] == "BTCUSDT" for frame in frames)


async def test_documented_errors_carry_the_id_when_it_was_valid() -> None:
    unknown = (
        "Invalid request: unknown variant `SUBSCRIPTION`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
        "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 24"
    )
    cases: list[tuple[str, dict[str, Any]]] = [
        ('{"method":"SUBSCRIBE",', {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 23"}),
        ('{"method":"SUBSCRIPTION","params":[],"id":7}', {"code": 2, "msg": unknown, "id": 7}),
        ('{"params":["btcusdt@depth"],"id":8}', {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 35", "id": 8}),
        ('{"method":"SUBSCRIBE","params":[],"id":"1"}', {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ('{"method":"SUBSCRIBE","params":[],"id":-1}', {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ('{"method":"SUBSCRIBE","params":[],"id":1.5}', {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ('{"method":"SUBSCRIBE","params":[],"id":true}', {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}),
        ('{"method":"SUBSCRIBE","params":[]}', {"result": None, "id": None}),  # ccxt sends no id
        ('{"method":"LIST_SUBSCRIPTIONS","id":null}', {"result": [], "id": None}),
        ('{"method":"LIST_SUBSCRIPTIONS","params":["x"],"id":9}', {"code": 2, "msg": "Invalid request: too many parameters", "id": 9}),
        ('{"method":"GET_PROPERTY","params":["combined","x"],"id":10}', {"code": 2, "msg": "Invalid request: too many parameters", "id": 10}),
        ('{"method":"SET_PROPERTY","params":["nope",true],"id":11}', {"code": 0, "msg": "Unknown property", "id": 11}),
        ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":12}', {"code": 1, "msg": "Invalid value type: expected Boolean", "id": 12}),
        ('{"method":"GET_PROPERTY","params":[5],"id":13}', {"code": 2, "msg": "Invalid request: property name must be a string", "id": 13}),
        ('{"method":"SET_PROPERTY","params":[],"id":14}', {"code": 2, "msg": "Invalid request: property name must be a string", "id": 14}),
    ]
    async with emulator(max_messages_per_s=100) as emu, socket(emu.ws_url) as c:
        for text, expected in cases:
            await c.send(text)
            assert await c.recv() == expected, text
        for bad in ('{"method":"SUBSCRIBE","id":15}', '{"method":"SUBSCRIBE","params":"btcusdt@depth","id":16}', "[1,2]"):
            await c.send(bad)
            error = await c.recv()
            assert error["code"] == 2 and error["msg"].startswith("Invalid request: ")
        assert await c.request("LIST_SUBSCRIPTIONS", request_id=17) == {"result": [], "id": 17}  # still open


async def test_unknown_streams_are_acknowledged_listed_and_silent(emu: AsterEmulator) -> None:
    names = ["nope@depth", "btcusdt@depth7", "BTCUSDT@depth", "btcusdt@kline_2m", "btcusdt@trade", "btcusdt@depth@250ms"]
    async with socket(emu.ws_url) as c:
        assert await c.request("SUBSCRIBE", names, 1) == {"result": None, "id": 1}
        assert (await c.request("LIST_SUBSCRIPTIONS", request_id=2))["result"] == names
        for _ in range(4):
            await emu.advance(500)
        assert await c.silent(0.2)


async def test_combined_and_raw_paths_wrap_the_same_payloads(emu: AsterEmulator) -> None:
    base = emu.ws_url.removesuffix("/stream")
    async with socket(emu.ws_url + "?streams=btcusdt@aggTrade/btcusdt@bookTicker") as combined, socket(base + "/ws/btcusdt@aggTrade") as raw, socket(base + "/ws") as bare:
        assert (await raw.request("GET_PROPERTY", ["combined"]))["result"] is False
        assert (await raw.request("LIST_SUBSCRIPTIONS", request_id=2))["result"] == ["btcusdt@aggTrade"]
        assert (await combined.request("LIST_SUBSCRIPTIONS"))["result"] == ["btcusdt@aggTrade", "btcusdt@bookTicker"]
        await bare.request("SUBSCRIBE", ["btcusdt@aggTrade"])
        await bare.request("SET_PROPERTY", ["combined", True], 2)
        await emu.advance(3_000)
        wrapped, plain, switched = await combined.drain(), await raw.drain(), await bare.drain()
        assert all(set(frame) == {"stream", "data"} for frame in wrapped)
        assert {frame["stream"] for frame in wrapped} == {"btcusdt@aggTrade", "btcusdt@bookTicker"}
        assert data(wrapped, "btcusdt@aggTrade") == plain == data(switched) and plain
        assert all(frame["e"] == "aggTrade" for frame in plain)


async def test_spot_streams_live_under_the_spot_prefix(emu: AsterEmulator) -> None:
    base = emu.ws_url.removesuffix("/stream")
    async with socket(emu.spot_ws_url + "?streams=asterusdt@depth@100ms/btcusdt@trade/btcusdt@aggTrade") as c, socket(base + "/spot/ws/asterusdt@bookTicker") as raw:
        await emu.advance(2_000)
        frames, tickers = await c.drain(), await raw.drain()
        depth = data(frames, "asterusdt@depth@100ms")
        assert depth and all(list(event) == DEPTH_KEYS and event["s"] == "ASTERUSDT" for event in depth)
        trades, aggregates = data(frames, "btcusdt@trade"), data(frames, "btcusdt@aggTrade")
        assert trades and [t["t"] for t in trades] == [a["f"] for a in aggregates]
        assert all(list(a) == [*AGG_TRADE_KEYS, "M"] and a["M"] is True for a in aggregates)
        assert tickers and all(list(t) == ["u", "s", "b", "B", "a", "A"] for t in tickers)


# --------------------------------------------------------------------------------------------------
# Stream shapes and consistency
# --------------------------------------------------------------------------------------------------


async def test_payload_shapes_match_the_recorded_frames(emu: AsterEmulator) -> None:
    streams = "btcusdt@depth/btcusdt@aggTrade/btcusdt@kline_1m/btcusdt@bookTicker/btcusdt@ticker/btcusdt@markPrice@1s"
    async with socket(f"{emu.ws_url}?streams={streams}") as c:
        for _ in range(8):
            await emu.advance(250)
        frames = await c.drain()
    by_stream = {stream: data(frames, stream) for stream in streams.split("/")}
    assert all(by_stream.values()), {k: len(v) for k, v in by_stream.items()}
    depth = by_stream["btcusdt@depth"][0]
    assert list(depth) == DEPTH_KEYS and depth["e"] == "depthUpdate" and depth["s"] == "BTCUSDT"
    assert all(isinstance(depth[k], int) for k in "ETUu") and isinstance(depth["pu"], int)
    levels = depth["b"] + depth["a"]
    assert all(isinstance(p, str) and isinstance(q, str) and len(p.split(".")[1]) == 1 and len(q.split(".")[1]) == 3 for p, q in levels)
    assert [p for p, _ in depth["b"]] == sorted((p for p, _ in depth["b"]), key=float)  # ascending, as recorded
    trade = by_stream["btcusdt@aggTrade"][0]
    assert list(trade) == AGG_TRADE_KEYS and isinstance(trade["m"], bool) and isinstance(trade["p"], str)
    kline = by_stream["btcusdt@kline_1m"][0]
    assert list(kline) == ["e", "E", "s", "k"] and list(kline["k"]) == KLINE_KEYS
    assert kline["k"]["T"] == kline["k"]["t"] + 59_999 and kline["k"]["x"] is False and kline["k"]["B"] == "0"
    assert list(by_stream["btcusdt@bookTicker"][0]) == BOOK_TICKER_KEYS
    ticker = by_stream["btcusdt@ticker"][0]
    assert list(ticker) == TICKER_KEYS and ticker["e"] == "24hrTicker" and ticker["C"] - ticker["O"] == 86_400_000
    assert ticker["n"] == ticker["L"] - ticker["F"] + 1 and all(isinstance(ticker[k], str) for k in "pPwcQohlvq")
    mark = by_stream["btcusdt@markPrice@1s"][0]
    assert list(mark) == MARK_KEYS and mark["T"] % (8 * 3_600_000) == 0 and len(mark["p"].split(".")[1]) == 8


async def test_trades_agree_across_stream_rest_and_engine(emu: AsterEmulator) -> None:
    async with socket(emu.ws_url + "?streams=ethusdt@aggTrade") as c:
        sides = []
        for _ in range(10):
            events = await emu.advance(500)
            sides += [trade.side for trade in events.trades.get("ETH", [])]
        streamed = data(await c.drain())
    assert len(streamed) == len(sides) > 0
    assert [event["m"] for event in streamed] == [side == "sell" for side in sides]  # m: buyer is maker
    assert [event["f"] for event in streamed] == list(range(streamed[0]["f"], streamed[0]["f"] + len(streamed)))
    _, aggregates, _ = await rest(emu, "/fapi/v3/aggTrades", symbol="ETHUSDT", limit=len(streamed))
    assert [{k: e[k] for k in "apqflTm"} for e in streamed] == aggregates
    _, trades, _ = await rest(emu, "/fapi/v1/trades", symbol="ETHUSDT", limit=len(streamed))
    assert [t["id"] for t in trades] == [e["f"] for e in streamed]
    assert list(trades[0]) == ["id", "price", "qty", "quoteQty", "time", "isBuyerMaker"]
    _, spot_trades, _ = await rest(emu, "/api/v3/trades", symbol="ASTERUSDT", limit=3)
    for row in spot_trades:  # the spot doc's rows: qty in quote units, baseQty = qty / price
        assert list(row) == ["id", "price", "qty", "baseQty", "time", "isBuyerMaker"]
        assert abs(float(row["qty"]) / float(row["price"]) - float(row["baseQty"])) < 1e-6


async def test_kline_closes_once_and_trade_ids_run_on() -> None:
    async with emulator() as emu, socket(emu.ws_url + "?streams=btcusdt@kline_1m") as c:
        for _ in range(61):  # from a minute boundary across the next one
            await emu.advance(1_000)
        klines = [event["k"] for event in data(await c.drain())]
        closing = [k for k in klines if k["x"]]
        assert len(closing) == 1 and closing[0]["t"] == DEFAULT_START_MS
        index = klines.index(closing[0])
        assert all(k["t"] == DEFAULT_START_MS for k in klines[:index]) and all(k["t"] == DEFAULT_START_MS + 60_000 for k in klines[index + 1 :])
        previous = klines[index - 1]  # the close also has the trades of the bar's last moments
        assert (previous["o"], previous["f"]) == (closing[0]["o"], closing[0]["f"]) and previous["L"] <= closing[0]["L"]
        if index + 1 < len(klines):
            assert klines[index + 1]["f"] == closing[0]["L"] + 1
        assert closing[0]["n"] == closing[0]["L"] - closing[0]["f"] + 1
        _, rows, _ = await rest(emu, "/fapi/v1/klines", symbol="BTCUSDT", interval="1m", startTime=DEFAULT_START_MS, limit=1)
        k = closing[0]
        assert rows == [[k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"], "0"]]


async def test_ticker_array_carries_only_changed_symbols() -> None:
    async with emulator() as emu, socket(emu.ws_url + "?streams=!ticker@arr") as c:
        engine_symbols = {"BTC": "BTCUSDT", "ETH": "ETHUSDT", "SOL": "SOLUSDT", "HYPE": "HYPEUSDT"}
        traded: list[set[str]] = []
        for _ in range(20):  # inside the first minute, so the 24 h window only changes with trades
            events = await emu.advance(1_000)
            traded.append({engine_symbols[s] for s in events.trades if s in engine_symbols})
        frames = data(await c.drain())
        assert frames[0] and {t["s"] for t in frames[0]} == set(FUTURES_SYMBOLS)  # everything is new at first
        later = [set(t["s"] for t in frame) for frame in frames[1:]]
        assert later == [symbols for symbols in traded[1:] if symbols]
        assert any(len(symbols) < len(FUTURES_SYMBOLS) for symbols in later)


async def test_mark_price_cadences_and_premium_index(emu: AsterEmulator) -> None:
    async with socket(emu.ws_url + "?streams=solusdt@markPrice/solusdt@markPrice@1s/!markPrice@arr") as c:
        for _ in range(6):
            await emu.advance(1_000)
        frames = await c.drain()
    assert len(data(frames, "solusdt@markPrice@1s")) == 6 and len(data(frames, "solusdt@markPrice")) == 2
    assert [m["s"] for m in data(frames, "!markPrice@arr")[0]] == FUTURES_SYMBOLS
    status, premium, _ = await rest(emu, "/fapi/v1/premiumIndex", symbol="SOLUSDT")
    assert status == 200 and list(premium) == ["symbol", "markPrice", "indexPrice", "estimatedSettlePrice", "lastFundingRate", "nextFundingTime", "interestRate", "time"]
    assert premium["markPrice"] == data(frames, "solusdt@markPrice@1s")[-1]["p"]
    assert (await rest(emu, "/api/v3/premiumIndex", symbol="BTCUSDT"))[0] == 404  # futures only


async def test_partial_depth_is_the_top_of_the_rest_book(emu: AsterEmulator) -> None:
    async with socket(emu.ws_url + "?streams=ethusdt@depth5@100ms/ethusdt@depth10/ethusdt@depth20@500ms") as c:
        await emu.advance(500)
        frames = await c.drain()
    _, book, _ = await rest(emu, "/fapi/v1/depth", symbol="ETHUSDT", limit=20)
    for stream, depth in (("ethusdt@depth5@100ms", 5), ("ethusdt@depth10", 10), ("ethusdt@depth20@500ms", 20)):
        (event,) = data(frames, stream)
        assert list(event) == DEPTH_KEYS and event["u"] == book["lastUpdateId"]
        assert event["b"] == book["bids"][:depth] and event["a"] == book["asks"][:depth]


# --------------------------------------------------------------------------------------------------
# The local order book procedure
# --------------------------------------------------------------------------------------------------


def local_book(snapshot: dict[str, Any], events: list[dict[str, Any]], *, spot: bool) -> tuple[dict[str, str], dict[str, str], int]:
    """Binance's procedure (reference §4.1; spot: A3): snapshot, drop stale events, check the first
    straddles ``lastUpdateId``, then chain on ``pu`` (futures) or ``U == prev u + 1`` (spot)."""
    last_update_id = snapshot["lastUpdateId"]
    bids = dict(snapshot["bids"])
    asks = dict(snapshot["asks"])
    previous: int | None = None
    for event in events:
        if event["u"] < last_update_id or (spot and event["u"] <= last_update_id):
            continue
        if previous is None:
            target = last_update_id + 1 if spot else last_update_id
            assert event["U"] <= target <= event["u"], (event["U"], last_update_id, event["u"])
        else:
            assert (event["U"] == previous + 1) if spot else (event["pu"] == previous), (event, previous)
        for side, changes in ((bids, event["b"]), (asks, event["a"])):
            for price, qty in changes:
                if float(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        previous = event["u"]
    assert previous is not None
    return bids, asks, previous


@pytest.mark.parametrize(
    ("url_attr", "stream", "symbol", "rest_path", "dt"),
    [
        ("ws_url", "btcusdt@depth", "BTCUSDT", "/fapi/v3/depth", 250),
        ("ws_url", "solusdt@depth@100ms", "SOLUSDT", "/fapi/v1/depth", 100),
        ("spot_ws_url", "btcusdt@depth", "BTCUSDT", "/api/v3/depth", 1_000),
        ("spot_ws_url", "asterusdt@depth@100ms", "ASTERUSDT", "/api/v1/depth", 100),
    ],
)
async def test_snapshot_plus_buffered_diffs_reproduce_the_book(emu: AsterEmulator, url_attr: str, stream: str, symbol: str, rest_path: str, dt: int) -> None:
    spot = url_attr == "spot_ws_url"
    async with socket(f"{getattr(emu, url_attr)}?streams={stream}") as c:
        for _ in range(3):  # events buffered before the snapshot
            await emu.advance(dt)
        _, snapshot, _ = await rest(emu, rest_path, symbol=symbol, limit=1000)
        for _ in range(12):
            await emu.advance(dt)
        events = data(await c.drain(), stream)
    _, final, _ = await rest(emu, rest_path, symbol=symbol, limit=1000)
    bids, asks, last = local_book(snapshot, events, spot=spot)
    assert last == final["lastUpdateId"]
    assert bids == dict(final["bids"]) and asks == dict(final["asks"])
    engine_bids, engine_asks = emu.engine.levels(emu.listing(("spot:" if spot else "") + symbol).spec.symbol)
    assert len(bids) == len(engine_bids) and len(asks) == len(engine_asks)
    gaps = [b["U"] - a["u"] for a, b in zip(events, events[1:], strict=False)]
    assert all(b["pu"] == a["u"] for a, b in zip(events, events[1:], strict=False))
    assert all(gap == 1 for gap in gaps) if spot else all(gap > 1 for gap in gaps)  # futures ids are shared


# --------------------------------------------------------------------------------------------------
# Book faults and the flood
# --------------------------------------------------------------------------------------------------


async def diff_events(emu: AsterEmulator, url: str, steps: int, arm: tuple[str, Any] | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Raw frames and payloads of a raw diff-depth socket over ``steps`` advances of 100 ms; the
    fault ``arm`` is armed after the second one (so the client has seen events before it)."""
    async with socket(url) as c:
        for step in range(steps):
            if step == 2 and arm is not None:
                emu.arm_book_fault(*arm)
            await emu.advance(100)
        raws = []
        with contextlib.suppress(TimeoutError):
            while True:
                raws.append(await c.raw(0.1))
    return raws, [orjson.loads(raw) for raw in raws]


@pytest.mark.parametrize("spot", [False, True])
async def test_skip_fault_leaves_a_gap_in_the_chain(emu: AsterEmulator, spot: bool) -> None:
    base = emu.ws_url.removesuffix("/stream") + ("/spot" if spot else "")
    market = "spot:BTCUSDT" if spot else "BTCUSDT"
    _, events = await diff_events(emu, base + "/ws/btcusdt@depth@100ms", 8, (market, "skip"))
    links = [(b["U"] == a["u"] + 1) if spot else (b["pu"] == a["u"]) for a, b in zip(events, events[1:], strict=False)]
    assert links.count(False) == 1 and len(events) >= 4  # one event (and its update ids) never sent
    gap = links.index(False)
    assert events[gap + 1]["U"] > events[gap]["u"] + 1 and emu.take_book_fault(market) is None


async def test_duplicate_and_reorder_faults(emu: AsterEmulator) -> None:
    url = emu.ws_url.removesuffix("/stream") + "/ws/ethusdt@depth@100ms"
    raws, events = await diff_events(emu, url, 6, ("ETHUSDT", "duplicate"))
    twins = [a == b for a, b in zip(raws, raws[1:], strict=False)]
    assert twins.count(True) == 1 and twins.index(True) >= 1  # one event sent twice, after others
    _, events = await diff_events(emu, url, 6, ("ETHUSDT", "reorder"))
    backwards = [b["u"] < a["u"] for a, b in zip(events, events[1:], strict=False)]
    assert backwards.count(True) == 1
    late = backwards.index(True) + 1  # the held event arrives after the one that follows it
    assert events[late - 1]["pu"] == events[late]["u"] and events[late]["pu"] == events[late - 2]["u"]


async def test_delta_before_snapshot_reaches_a_new_subscriber_first(emu: AsterEmulator) -> None:
    emu.arm_book_fault("HYPEUSDT", "delta_before_snapshot")
    _, snapshot, _ = await rest(emu, "/fapi/v1/depth", symbol="HYPEUSDT")
    async with socket(emu.ws_url) as c:
        await c.send({"method": "SUBSCRIBE", "params": ["hypeusdt@depth"], "id": 1})
        first = await c.recv()
        assert first["stream"] == "hypeusdt@depth" and first["data"]["u"] <= snapshot["lastUpdateId"]
        assert await c.recv() == {"result": None, "id": 1}
    emu.arm_book_fault("spot:ASTERUSDT", "delta_before_snapshot")
    async with socket(emu.ws_url.removesuffix("/stream") + "/spot/ws/asterusdt@depth") as c:
        assert (await c.recv())["e"] == "depthUpdate"
    async with socket(emu.ws_url + "?streams=hypeusdt@depth") as c:  # used up
        assert await c.silent(0.2)


async def test_flood_fills_a_thousand_levels_and_keeps_the_chain(emu: AsterEmulator) -> None:
    base = emu.ws_url.removesuffix("/stream")
    async with socket(base + "/ws/btcusdt@depth") as slow, socket(emu.ws_url + "?streams=btcusdt@depth@100ms") as fast:
        await emu.advance(100)  # the 100 ms stream has an event pending, the 250 ms one too
        _, snapshot, _ = await rest(emu, "/fapi/v1/depth", symbol="BTCUSDT", limit=1000)
        assert await emu.flood("BTCUSDT", 300) == 600
        await emu.advance(250)  # live events continue the chain (and remove the flood's deep levels)
        slow_events, fast_events = await slow.drain(), data(await fast.drain())
    assert len(slow_events) == len(fast_events) >= 301
    _, final, _ = await rest(emu, "/fapi/v1/depth", symbol="BTCUSDT", limit=1000)
    for events in (slow_events, fast_events):
        flood_start = next(i for i, e in enumerate(events) if len(e["b"]) >= 900)
        full_bids, full_asks, _ = local_book(snapshot, events[: flood_start + 1], spot=False)
        assert len(full_bids) == len(full_asks) == 1000  # then 299 frames update that book
        bids, asks, last = local_book(snapshot, events, spot=False)
        assert last == final["lastUpdateId"] and bids == dict(final["bids"]) and asks == dict(final["asks"])
    with pytest.raises(KeyError):
        await emu.flood("NOPE", 1)


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


async def test_rest_market_data_and_versions(emu: AsterEmulator) -> None:
    assert (await rest(emu, "/fapi/v1/ping"))[:2] == (200, {})
    assert (await rest(emu, "/api/v3/time"))[1] == {"serverTime": emu.engine.now_ms}
    _, v1, _ = await rest(emu, "/fapi/v1/depth", symbol="BTCUSDT", limit=5)
    _, v3, _ = await rest(emu, "/fapi/v3/depth", symbol="BTCUSDT", limit=5)
    _, spot_v1, _ = await rest(emu, "/api/v1/depth", symbol="BTCUSDT")
    assert v1 == v3 and list(v1) == ["lastUpdateId", "E", "T", "bids", "asks"] == list(spot_v1)
    _, book, _ = await rest(emu, "/fapi/v1/depth", symbol="SOLUSDT")
    bids, asks = emu.engine.book("SOL", 1000)
    assert [float(p) for p, _ in book["bids"]] == [float(p) for p, _, _ in bids] and len(book["asks"]) == len(asks)
    _, klines, _ = await rest(emu, "/fapi/v3/klines", symbol="HYPEUSDT", interval="1h")
    assert len(klines) == 500 and [k[0] for k in klines] == sorted(k[0] for k in klines)
    assert all(len(row) == 12 and isinstance(row[0], int) and isinstance(row[8], int) and row[6] == row[0] + 3_599_999 for row in klines)
    _, window, _ = await rest(emu, "/fapi/v1/klines", symbol="BTCUSDT", interval="1d", startTime=DEFAULT_START_MS - 5 * 86_400_000, endTime=DEFAULT_START_MS - 1)
    assert [k[0] for k in window] == [DEFAULT_START_MS - d * 86_400_000 for d in range(5, 0, -1)]
    _, six, _ = await rest(emu, "/fapi/v1/klines", symbol="BTCUSDT", interval="6h", limit=1500)
    assert 100 < len(six) < 1500
    _, tickers, _ = await rest(emu, "/fapi/v1/ticker/24hr")
    assert [t["symbol"] for t in tickers] == FUTURES_SYMBOLS and "bidPrice" not in tickers[0]
    _, spot_ticker, _ = await rest(emu, "/api/v3/ticker/24hr", symbol="ASTERUSDT")
    assert spot_ticker["baseAsset"] == "ASTER" and float(spot_ticker["bidPrice"]) < float(spot_ticker["askPrice"])
    _, price, _ = await rest(emu, "/fapi/v1/ticker/price", symbol="ETHUSDT")
    _, best, _ = await rest(emu, "/api/v3/ticker/bookTicker")
    assert list(price) == ["symbol", "price", "time"] and [b["symbol"] for b in best] == SPOT_SYMBOLS


async def test_rest_errors(emu: AsterEmulator) -> None:
    cases = [
        ("/fapi/v1/depth", {"symbol": "NOPE"}, -1121, "Invalid symbol."),
        ("/fapi/v1/depth", {"symbol": "btcusdt"}, -1121, "Invalid symbol."),
        ("/api/v3/depth", {"symbol": "ETHUSDT"}, -1121, "Invalid symbol."),  # a perp, not a spot pair
        ("/fapi/v1/depth", {}, -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 7}, -1130, "Data sent for parameter 'limit' is not valid."),
        ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": "-5"}, -1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'."),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "2m"}, -1120, "Invalid interval."),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT"}, -1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."),
        ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": 5, "endTime": 4}, -1023, "Start time is greater than end time."),
        ("/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "startTime": 0, "endTime": 3_600_001}, -1127, "More than 1 hours between startTime and endTime."),
    ]
    for path, params, code, msg in cases:
        assert (await rest(emu, path, **params))[:2] == (400, {"code": code, "msg": msg}), (path, params)


async def test_exchange_info_filters_and_rate_limits(emu: AsterEmulator) -> None:
    _, futures, _ = await rest(emu, "/fapi/v3/exchangeInfo")
    assert [s["symbol"] for s in futures["symbols"]] == FUTURES_SYMBOLS
    assert futures["rateLimits"][0] == {"interval": "MINUTE", "intervalNum": 1, "limit": 2400, "rateLimitType": "REQUEST_WEIGHT"}
    btc = futures["symbols"][0]
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert (filters["PRICE_FILTER"]["tickSize"], filters["LOT_SIZE"]["stepSize"]) == ("0.1", "0.001")
    assert (btc["pricePrecision"], btc["quantityPrecision"], btc["contractType"], btc["marginAsset"]) == (1, 3, "PERPETUAL", "USDT")
    _, spot, _ = await rest(emu, "/api/v1/exchangeInfo")
    assert [s["symbol"] for s in spot["symbols"]] == SPOT_SYMBOLS and "contractType" not in spot["symbols"][0]
    aster = {f["filterType"]: f for f in spot["symbols"][0]["filters"]}
    assert (aster["PRICE_FILTER"]["tickSize"], aster["LOT_SIZE"]["stepSize"]) == ("0.00010000", "0.01000000")
    assert spot["rateLimits"][0]["limit"] == 6000 and [a["asset"] for a in spot["assets"]] == ["ASTER", "USDT", "BTC"]


async def test_request_weight_limit_answers_429_with_retry_after() -> None:
    async with emulator(weight_limit=25) as emu:
        status, _, headers = await rest(emu, "/fapi/v1/depth", symbol="BTCUSDT", limit=1000)
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1m"] == "20"
        status, body, headers = await rest(emu, "/fapi/v1/depth", symbol="BTCUSDT", limit=500)
        assert status == 429 and body["code"] == -1003 and headers["X-MBX-USED-WEIGHT-1m"] == "20"
        assert 1 <= int(headers["Retry-After"]) <= 60
        status, _, headers = await rest(emu, "/fapi/v1/ping")
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1m"] == "21"
        status, _, headers = await rest(emu, "/api/v3/depth", symbol="BTCUSDT", limit=1000)
        assert status == 200 and headers["X-MBX-USED-WEIGHT-1m"] == "20"  # spot counts apart


# --------------------------------------------------------------------------------------------------
# Limits, liveness, lifetime
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spot", "limit"), [(False, 10), (True, 5)])
async def test_message_rate_limit_closes_the_connection(emu: AsterEmulator, spot: bool, limit: int) -> None:
    url = emu.spot_ws_url if spot else emu.ws_url
    async with socket(url) as c:
        for request_id in range(limit):
            await c.send({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        assert [(await c.recv())["id"] for _ in range(limit)] == list(range(limit))
        await c.send({"method": "LIST_SUBSCRIPTIONS", "id": limit})
        with pytest.raises(ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "too many requests")
    async with socket(url) as c:  # a paced client is fine
        for request_id in range(limit + 2):
            await c.send({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
            assert (await c.recv())["id"] == request_id
            await asyncio.sleep(1.05 / limit)


async def test_stream_limit_refuses_the_request_that_exceeds_it(emu: AsterEmulator) -> None:
    for url, limit in ((emu.ws_url, 200), (emu.spot_ws_url, 1024)):
        async with socket(url) as c:
            names = [f"s{i}@depth" for i in range(limit + 1)]
            error = await c.request("SUBSCRIBE", names, 1)
            assert error == {"code": 2, "msg": f"Invalid request: too many streams, a connection may listen to at most {limit}", "id": 1}
            assert (await c.request("LIST_SUBSCRIPTIONS", request_id=2))["result"] == []
            assert await c.request("SUBSCRIBE", names[:limit], 3) == {"result": None, "id": 3}
            assert (await c.request("SUBSCRIBE", [names[limit]], 4))["code"] == 2
    async with emulator(max_streams=2) as emu, socket(emu.ws_url + "?streams=a@depth/b@depth/c@depth") as c:
        assert (await c.recv())["code"] == 2
        with pytest.raises(ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_server_pings_and_closes_without_pong() -> None:
    async with emulator(ping_interval=0.1, pong_timeout=0.45, spot_ping_interval=5.0) as emu, aiohttp.ClientSession() as session:
        async with session.ws_connect(emu.ws_url, autoping=False) as ws, session.ws_connect(emu.spot_ws_url, autoping=False) as spot:
            started = time.monotonic()
            for _ in range(6):  # answered pings keep it open past the pong timeout
                message = await ws.receive(timeout=1)
                assert message.type is aiohttp.WSMsgType.PING
                await ws.pong(message.data)
            assert time.monotonic() - started > 0.45
            silent_since = time.monotonic()
            while (message := await ws.receive(timeout=2)).type is aiohttp.WSMsgType.PING:
                pass
            assert message.type is aiohttp.WSMsgType.CLOSE and (message.data, message.extra) == (1008, "pong timeout")
            assert 0.4 < time.monotonic() - silent_since < 1.0
            with pytest.raises(TimeoutError):  # spot pings on its own (longer) interval
                await spot.receive(timeout=0.2)


async def test_a_stall_freezes_the_heartbeat_too() -> None:
    async with emulator(ping_interval=0.1, pong_timeout=0.3) as emu, aiohttp.ClientSession() as session:
        async with session.ws_connect(emu.ws_url, autoping=False) as ws:
            emu.stall(True)
            with pytest.raises(TimeoutError):  # frozen: no ping, and no pong-timeout close
                await ws.receive(timeout=0.6)
            emu.stall(False)
            assert (await ws.receive(timeout=1)).type is aiohttp.WSMsgType.PING


async def test_connections_end_at_their_lifetime() -> None:
    async with emulator(max_connection_age=0.3) as emu, socket(emu.ws_url) as c:
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            await c.recv(timeout=3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert 0.3 <= time.monotonic() - started < 1.5 and emu.stats.lifetime_closes == 1


async def test_base_fault_controls_work_here(emu: AsterEmulator) -> None:
    async with socket(emu.ws_url + "?streams=btcusdt@aggTrade") as c:
        await emu.restart()
        with pytest.raises(ConnectionClosed) as closed:
            await c.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert not emu._topics  # nobody listens any more
    async with socket(emu.ws_url) as c:
        emu.ignore_requests('"SUBSCRIBE"')
        await c.send({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 1})
        assert await c.silent(0.2)
        emu.ignore_requests(None)
        assert await emu.inject('{"poison":') == 1 and await c.raw() == '{"poison":'
    emu.fail_http(503, "maintenance")
    async with aiohttp.ClientSession() as session, session.get(emu.http_url + "/fapi/v1/ping") as response:
        assert (response.status, await response.text()) == (503, "maintenance")
    emu.fail_http(None)
    async with socket(emu.ws_url) as c:  # upgrades are not HTTP failures
        assert (await c.request("LIST_SUBSCRIPTIONS"))["result"] == []


# --------------------------------------------------------------------------------------------------
# Determinism, options, the command
# --------------------------------------------------------------------------------------------------


async def scripted_session(seed: int) -> tuple[list[Any], Any]:
    streams = "btcusdt@depth/ethusdt@aggTrade/solusdt@kline_1m/!ticker@arr/hypeusdt@markPrice@1s/btcusdt@bookTicker"
    async with emulator(seed=seed) as emu, socket(f"{emu.ws_url}?streams={streams}") as c, socket(emu.spot_ws_url + "?streams=asterusdt@depth@100ms") as spot:
        for _ in range(12):
            await emu.advance(250)
        frames = [*await c.drain(), *await spot.drain()]
        _, book, _ = await rest(emu, "/api/v3/depth", symbol="ASTERUSDT")
    return frames, book


async def test_same_seed_same_frames() -> None:
    first, second, other = await scripted_session(3), await scripted_session(3), await scripted_session(4)
    assert first == second and len(first[0]) > 30
    assert first[0][0] != other[0][0] and first[1] != other[1]


async def test_hostile_names_are_listed_verbatim() -> None:
    async with emulator(hostile_names=True) as emu:
        _, info, _ = await rest(emu, "/fapi/v1/exchangeInfo")
        symbols = [s["symbol"] for s in info["symbols"]]
        assert symbols[:4] == FUTURES_SYMBOLS and [f"{name}USDT" for name in HOSTILE_NAMES] == symbols[4:]
        name = f"{HOSTILE_NAMES[1]}USDT"  # "[@click=app.quit]xUSDT": an "@" inside the symbol
        async with socket(emu.ws_url) as c:
            await c.request("SUBSCRIBE", [f"{name.lower()}@depth"])
            for _ in range(8):
                await emu.advance(250)
            assert {event["s"] for event in data(await c.drain())} == {name}


def test_sim_command_prints_the_spot_stream_url() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.sim", "--json", "--venues", "aster", "--seed", "2"],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        described = json.loads(process.stdout.readline())
        assert list(described) == ["venue", "http", "ws", "spot_ws"] and described["venue"] == "aster"
        assert described["ws"] == described["http"].replace("http://", "ws://") + "/stream"
        assert described["spot_ws"] == described["ws"].removesuffix("/stream") + "/spot/stream"
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
