"""The Rails emulator over real sockets on 127.0.0.1: the token in the subprotocol and its echo, upgrade
refusals, the token endpoint and its limit, expiry closes, requests and their errors, the order book
bootstrap (deltas, snapshot on request), public and private trades, orders, deterministic delivery,
the request rate limit, a book fault and REST market data.

The clock is stepped by hand (``autostep=False``); a ``ping`` is the barrier (everything the server
sent before its ``pong`` has arrived). Most tests share one emulator; tests that need a fresh limit
window, a short token or determinism from the start build their own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from app.jwt import claims, sign
from app.sim.engine import DEFAULT_START_MS
from app.sim.rails import PROTOCOL_PREFIX, RailsEmulator
from app.sim.runner import VENUE_EMULATORS

pytestmark = [pytest.mark.timeout(30), pytest.mark.asyncio(loop_scope="module")]

BTC = "BTC-USDT"
EVERY_STREAM = "orders,trades,publicTrades,publicOrderBook"


def build(**options: Any) -> RailsEmulator:
    """Scripted clients send more than 10 requests a second: the limit is tested on its own."""
    defaults = {"seed": 9, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, "max_requests_per_s": 10_000}
    return RailsEmulator(**{**defaults, **options})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emu() -> AsyncIterator[RailsEmulator]:
    async with build() as server:
        await server.advance(2_000)
        yield server


class Client:
    """A raw WebSocket speaking Rails' envelopes."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: str, **content: Any) -> None:
        await self.ws.send(orjson.dumps({"message": message, "content": content}).decode())

    async def sync(self) -> list[bytes]:
        """Every frame the server sent before it answered a fresh ping, raw."""
        await self.send("ping", clientRequestId="sync")
        frames = []
        while b'"resultType":"pong"' not in (frame := await self.raw()):
            frames.append(frame)
        return frames

    async def raw(self) -> bytes:
        frame = await asyncio.wait_for(self.ws.recv(decode=False), 3)
        assert isinstance(frame, bytes)
        return frame

    async def request(self, message: str, **content: Any) -> list[dict[str, Any]]:
        await self.send(message, **content)
        return [orjson.loads(frame) for frame in await self.sync()]


@contextlib.asynccontextmanager
async def opened(emu: RailsEmulator, query: str = f"market={BTC}&subscriptions={EVERY_STREAM}", token: str | None = None) -> AsyncIterator[Client]:
    token = emu.issue_token(emu.demo_api_key) if token is None else token
    uri = emu.ws_url + (f"?{query}" if query else "")
    async with connect(uri, subprotocols=[PROTOCOL_PREFIX + token], open_timeout=5, close_timeout=1) as ws:  # type: ignore[list-item]
        yield Client(ws)


async def refused(emu: RailsEmulator, query: str, subprotocols: list[str] | None) -> tuple[int, dict[str, Any]]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(emu.ws_url + "?" + query, subprotocols=subprotocols, open_timeout=5):  # type: ignore[arg-type]
            pass
    response = caught.value.response
    return response.status_code, orjson.loads(response.body)


def rebuilt(snapshot: list[dict[str, str]], deltas: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """A client's book: the snapshot, then the deltas received after it ("0" deletes)."""
    book = {(row["orderType"], row["price"]): row["quantity"] for row in snapshot}
    for delta in deltas:
        for row in delta["data"]["orders"]:
            if row["quantity"] == "0":
                book.pop((row["orderType"], row["price"]), None)
            else:
                book[(row["orderType"], row["price"])] = row["quantity"]
    return book


def of(frames: list[dict[str, Any]], result_type: str) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame["resultType"] == result_type]


# --------------------------------------------------------------------------------------------------
# Upgrade and tokens
# --------------------------------------------------------------------------------------------------


async def test_the_offered_subprotocol_is_echoed_exactly(emu: RailsEmulator) -> None:
    offered = PROTOCOL_PREFIX + emu.issue_token(emu.demo_api_key)
    async with connect(f"{emu.ws_url}?market={BTC}", subprotocols=["chat", offered], open_timeout=5) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == offered
    assert "rails" in VENUE_EMULATORS and emu.demo_connect()["subprotocols"][0].startswith(PROTOCOL_PREFIX)


async def test_missing_bad_and_expired_tokens_are_refused_401(emu: RailsEmulator) -> None:
    before, accepted = emu.stats.ws_refused_auth, emu.stats.connections_accepted
    forged = sign(claims(emu.issue_token(emu.demo_api_key)), b"not the venue's key")
    query = f"market={BTC}"
    assert await refused(emu, query, None) == (401, {"statusCode": 401, "body": "invalid or expired token"})
    for token in ("garbage", forged):
        assert await refused(emu, query, [PROTOCOL_PREFIX + token]) == (401, {"statusCode": 401, "body": "invalid or expired token"})
    expired = emu.issue_token(emu.demo_api_key, ttl=-5)
    assert await refused(emu, query, [PROTOCOL_PREFIX + expired]) == (401, {"statusCode": 401, "body": "token expired"})
    assert emu.stats.ws_refused_auth == before + 4 and emu.stats.connections_accepted == accepted


async def test_query_parameters(emu: RailsEmulator) -> None:
    token = [PROTOCOL_PREFIX + emu.issue_token(emu.demo_api_key)]
    assert await refused(emu, "subscriptions=orders", token) == (400, {"statusCode": 400, "body": "market is required"})
    assert await refused(emu, "market=DOGE-USDT", token) == (400, {"statusCode": 400, "body": "unknown market: DOGE-USDT"})
    assert await refused(emu, f"market={BTC}&subscriptions=orders,candles", token) == (400, {"statusCode": 400, "body": "unknown subscription: candles"})
    async with opened(emu, f"market={BTC}") as client:  # no subscriptions parameter: orders
        [ack] = await client.request("subscribe", subscriptions=[])
        assert ack["data"]["activeSubscriptions"] == ["orders"]
    async with opened(emu, f"market={BTC}&subscriptions=") as client:  # empty: none
        [ack] = await client.request("subscribe", subscriptions=[])
        assert ack["data"]["activeSubscriptions"] == []


async def test_token_endpoint_and_its_limit_per_key() -> None:
    async with build() as emu, aiohttp.ClientSession() as session:
        url = emu.http_url + "/api/v1/token"
        key, secret = emu.demo_api_key, emu.demo_api_secret
        async with session.post(url, headers={"X-Api-Key": key, "X-Api-Secret": secret}) as response:
            assert response.status == 200
            body = await response.json()
        assert body["token_type"] == "Bearer" and body["expires_in"] == 1800
        token_claims = claims(body["access_token"])
        assert list(token_claims) == ["iss", "sub", "aud", "exp", "iat"]
        assert token_claims["sub"] == emu.demo_account and 1800 <= token_claims["exp"] - token_claims["iat"] <= 1801
        async with opened(emu, f"market={BTC}", body["access_token"]) as client:
            assert await client.request("subscribe", subscriptions=[])
        for headers in ({"X-Api-Key": key, "X-Api-Secret": "wrong"}, {"X-Api-Key": "nobody", "X-Api-Secret": secret}, {}):
            async with session.post(url, headers=headers) as response:
                assert (response.status, await response.json()) == (401, {"statusCode": 401, "body": "invalid api key or secret"})
        for _ in range(18):  # 20 a minute for the key, the wrong secret counted
            async with session.post(url, headers={"X-Api-Key": key, "X-Api-Secret": secret}) as response:
                assert response.status == 200
        async with session.post(url, headers={"X-Api-Key": key, "X-Api-Secret": secret}) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        assert emu.stats.token_requests == 23


async def test_a_socket_is_closed_4001_when_its_token_expires() -> None:
    async with build(token_ttl=0.5) as emu:
        async with connect(**emu.demo_connect(), open_timeout=5) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "token expired")
        assert emu.stats.token_expiry_closes == 1


async def test_a_silent_socket_is_closed_as_idle() -> None:
    async with build(idle_timeout=0.3) as emu, opened(emu) as client:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(client.ws.recv(), 5)
        assert closed.value.rcvd is not None and (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, "idle timeout")


# --------------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------------


async def test_subscribe_unsubscribe_ping_and_errors(emu: RailsEmulator) -> None:
    async with opened(emu, f"market={BTC}&subscriptions=orders") as client:
        [ack] = await client.request("subscribe", clientRequestId="r1", subscriptions=["publicTrades", "trades", "publicTrades"])
        assert ack == {"resultType": "subscribed", "data": {"activeSubscriptions": ["orders", "trades", "publicTrades"],
                       "clientRequestId": "r1", "requestedSubscriptions": ["publicTrades", "trades", "publicTrades"]}}  # fmt: skip
        [again] = await client.request("subscribe", subscriptions=["trades"])
        assert again["data"]["activeSubscriptions"] == ["orders", "trades", "publicTrades"]
        [ack] = await client.request("unsubscribe", clientRequestId="r2", subscriptions=["orders", "publicOrderBook"])
        assert ack["resultType"] == "unsubscribed" and ack["data"]["activeSubscriptions"] == ["trades", "publicTrades"]
        [error] = await client.request("subscribe", clientRequestId="r3", subscriptions=["candles"])
        assert error == {"resultType": "subscribe", "data": {"statusCode": 400, "body": "unknown subscription: candles", "clientRequestId": "r3"}}
        await client.send("ping", clientRequestId="4cc68b60")
        assert orjson.loads(await client.raw()) == {"resultType": "pong", "data": {"clientRequestId": "4cc68b60", "statusCode": 200}}
        [unknown] = await client.request("fly", clientRequestId="r4")
        assert unknown["resultType"] == "error" and unknown["data"]["statusCode"] == 400 and unknown["data"]["clientRequestId"] == "r4"
        await client.ws.send("{not json")
        [malformed] = [orjson.loads(frame) for frame in await client.sync()]
        assert malformed["resultType"] == "error" and malformed["data"]["statusCode"] == 400


async def test_more_than_ten_requests_a_second_are_answered_429() -> None:
    async with build(max_requests_per_s=10) as emu, opened(emu, f"market={BTC}&subscriptions=") as client:
        for index in range(14):
            await client.send("ping", clientRequestId=str(index))
        answers = [orjson.loads(await client.raw()) for _ in range(14)]
        assert [a["resultType"] for a in answers] == ["pong"] * 10 + ["ping"] * 4
        assert answers[-1]["data"] == {"statusCode": 429, "body": "too many requests", "clientRequestId": "13"}
        await asyncio.sleep(1.05)
        assert await client.sync() == []  # still open, answered again


# --------------------------------------------------------------------------------------------------
# Public streams
# --------------------------------------------------------------------------------------------------


async def test_deltas_until_asked_then_the_snapshot_and_later_deltas_rebuild_the_book(emu: RailsEmulator) -> None:
    async with opened(emu, f"market={BTC}&subscriptions=publicOrderBook") as client:
        await emu.advance(300)
        before = [orjson.loads(frame) for frame in await client.sync()]
        assert before and {frame["resultType"] for frame in before} == {"publicOrderBookDelta"}  # no snapshot unasked
        assert before[0]["market"] == BTC and before[0]["data"]["statusCode"] == 200 and isinstance(before[0]["data"]["ts"], int)
        await client.send("emitPublicOrderBook", clientRequestId="snap")
        await emu.advance(200)  # before or after the snapshot: the rebuild holds either way
        await emu.advance(200)
        while (snapshot := orjson.loads(await client.raw()))["resultType"] != "publicOrderBook":
            pass  # a delta before the snapshot: discarded
        assert snapshot["market"] == BTC and snapshot["data"]["clientRequestId"] == "snap" and len(snapshot["data"]["orders"]) == 50
        for _ in range(3):
            await emu.advance(200)
        later = [orjson.loads(frame) for frame in await client.sync()]
        assert later and all(frame["resultType"] == "publicOrderBookDelta" for frame in later)
        expected = {(row["orderType"], row["price"]): row["quantity"] for row in emu.book(BTC)}
        assert rebuilt(snapshot["data"]["orders"], later) == expected


async def test_a_skipped_delta_leaves_a_client_book_wrong_until_the_next_snapshot(emu: RailsEmulator) -> None:
    async with opened(emu, f"market={BTC}&subscriptions=publicOrderBook") as client:
        [snapshot] = await client.request("emitPublicOrderBook")
        emu.arm_book_fault(BTC, "skip")
        await emu.advance(200)
        assert await client.sync() == []  # the one delta of that step was dropped
        expected = {(row["orderType"], row["price"]): row["quantity"] for row in emu.book(BTC)}
        assert rebuilt(snapshot["data"]["orders"], []) != expected
        [fresh] = await client.request("emitPublicOrderBook")
        assert rebuilt(fresh["data"]["orders"], []) == expected


async def test_market_all_needs_content_market_and_labels_every_message(emu: RailsEmulator) -> None:
    async with opened(emu, "market=ALL&subscriptions=publicOrderBook,publicTrades") as client:
        [error] = await client.request("emitPublicOrderBook", clientRequestId="x")
        assert error["resultType"] == "emitPublicOrderBook"
        assert error["data"] == {"statusCode": 400, "body": "content.market is required on market=ALL connections", "clientRequestId": "x"}
        [snapshot] = await client.request("emitPublicOrderBook", market="ETH-USDT")
        assert snapshot["resultType"] == "publicOrderBook" and snapshot["market"] == "ETH-USDT"
        await emu.advance(2_000)
        frames = [orjson.loads(frame) for frame in await client.sync()]
        assert {frame["market"] for frame in frames} == {"BTC-USDT", "ETH-USDT", "SOL-USDT"}
    async with opened(emu, f"market={BTC}&subscriptions=publicOrderBook") as client:
        [error] = await client.request("emitPublicOrderBook", market="ETH-USDT")
        assert error["data"]["statusCode"] == 400


async def test_public_trades_and_the_recent_tape(emu: RailsEmulator) -> None:
    async with opened(emu, f"market={BTC}&subscriptions=publicTrades") as client:
        await emu.advance(10_000)
        deltas = [orjson.loads(frame) for frame in await client.sync()]
        assert deltas and {frame["resultType"] for frame in deltas} == {"publicCompletedOrdersDelta"}
        rows = [row for frame in deltas for row in frame["data"]["orders"]]
        assert set(rows[0]) == {"executionType", "matchId", "orderType", "price", "quantity", "updatedAt"}
        assert {row["executionType"] for row in rows} == {"taker"} and len({row["matchId"] for row in rows}) == len(rows)
        [recent] = await client.request("emitPublicCompletedOrders", clientRequestId="tape")
        assert recent["resultType"] == "publicCompletedOrders" and recent["market"] == BTC
        tape = recent["data"]["orders"]
        assert len(tape) <= 50 and tape[-len(rows[-50:]) :] == rows[-50:]


# --------------------------------------------------------------------------------------------------
# Private streams and orders
# --------------------------------------------------------------------------------------------------


async def test_orders_ack_then_confirm_and_fills_as_an_array(emu: RailsEmulator) -> None:
    async with opened(emu) as client, opened(emu, "market=ETH-USDT&subscriptions=orders,trades") as other_market:
        far_bid = str(round(float(emu.book(BTC)[-1]["price"]) * 0.8, 1))
        frames = await client.request("createOrder", clientRequestId="c1", orderType="buy", tradeType="limit", price=far_bid, quantity="0.01")
        ack, confirmation = frames
        assert (ack["resultType"], ack["data"]["statusCode"], ack["data"]["body"]) == ("createOrder", 202, "order created, pending acceptance")
        assert ack["data"]["order"]["orderStatus"] == "pending" and ack["data"]["apiQuotaUsed"] == 1 and ack["data"]["clientRequestId"] == "c1"
        assert (confirmation["data"]["statusCode"], confirmation["data"]["body"], confirmation["data"]["order"]["orderStatus"]) == (200, "order accepted", "active")
        order_id = ack["data"]["order"]["orderId"]
        assert len(order_id) == 26 and ack["data"]["order"]["quantity"] == "0.01" and ack["data"]["order"]["price"] == far_bid
        cancelling, cancelled = await client.request("cancelOrder", clientRequestId="c2", orderId=order_id, cancelBy="orderId")
        assert (cancelling["data"]["statusCode"], cancelling["data"]["body"], cancelling["data"]["order"]["orderStatus"]) == (202, "cancelling order", "cancelling")
        assert (cancelled["resultType"], cancelled["data"]["statusCode"], cancelled["data"]["order"]["orderStatus"]) == ("cancelOrder", 200, "cancelled")
        [missing] = await client.request("cancelOrder", orderId=order_id)
        assert missing["data"] == {"statusCode": 404, "body": "order not found"}

        frames = await client.request("createOrder", orderType="sell", tradeType="market", quantity="0.02")
        assert [f["resultType"] for f in frames] == ["createOrder", "createOrder", "completedOrdersDelta", "orderFilled"]
        fills = frames[2]["data"]
        assert isinstance(fills, list) and fills[0]["executionType"] == "taker" and fills[-1]["fillType"] == "complete"
        assert frames[3]["data"]["order"]["orderStatus"] == "filled" and frames[3]["data"]["order"]["filledQuantity"] == "0.02"
        other = [orjson.loads(frame) for frame in await other_market.sync()]
        assert [f["resultType"] for f in other] == ["completedOrdersDelta"]  # fills of every market; orders of its own
        assert "market" not in other[0] and other[0]["data"] == fills

    async with opened(emu, f"market={BTC}&subscriptions=trades") as client:
        [error] = await client.request("createOrder", orderType="buy", tradeType="market", quantity="0.01")
        assert error["data"]["statusCode"] == 400  # order requests need the orders subscription


async def test_the_demo_account_trades_by_itself_against_the_public_tape(emu: RailsEmulator) -> None:
    async with opened(emu, f"market=ALL&subscriptions={EVERY_STREAM}") as client:
        await emu.advance(31_000)
        await emu.advance(31_000)
        frames = [orjson.loads(frame) for frame in await client.sync()]
        fills = [row for frame in of(frames, "completedOrdersDelta") for row in frame["data"]]
        assert fills and {row["executionType"] for row in fills} == {"maker"}
        assert all(frame["market"] == frame["data"][0]["market"] for frame in of(frames, "completedOrdersDelta"))
        tape = {row["matchId"] for frame in of(frames, "publicCompletedOrdersDelta") for row in frame["data"]["orders"]}
        assert {row["matchId"] for row in fills} <= tape
        assert {f["data"]["order"]["orderStatus"] for f in of(frames, "orderFilled")} == {"filled"}


# --------------------------------------------------------------------------------------------------
# Deterministic delivery
# --------------------------------------------------------------------------------------------------


async def streamed(emu: RailsEmulator) -> tuple[list[bytes], list[bytes], list[bytes]]:
    async with opened(emu) as first, opened(emu) as second, opened(emu, f"market={BTC}&subscriptions=publicTrades") as focused:
        for _ in range(40):
            await emu.advance(1_000)
        return await first.sync(), await second.sync(), await focused.sync()


async def test_identical_connections_receive_identical_bytes_run_after_run() -> None:
    async with build(seed=4) as emu:
        first, second, focused = await streamed(emu)
    assert first == second and any(b"completedOrdersDelta" in frame for frame in first)
    assert focused == [frame for frame in first if b'"publicCompletedOrdersDelta"' in frame]
    async with build(seed=4) as emu:
        assert (await streamed(emu))[0] == first


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


async def test_markets_and_market_data(emu: RailsEmulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(emu.http_url + "/api/v1/markets") as response:
            markets = await response.json()
        assert markets[0] == {"name": BTC, "baseAsset": "BTC", "quoteAsset": "USDT", "tickSize": "0.1", "stepSize": "0.0001", "status": "active"}
        assert [m["name"] for m in markets] == ["BTC-USDT", "ETH-USDT", "SOL-USDT"]
        async with session.get(emu.http_url + "/api/v1/market-data", params={"market": BTC}) as response:
            rows = await response.json()
        assert [row["type"] for row in rows] == ["INDEX", "24H_COUNT", "24H_VOLUME", "ASK", "BID", "FUNDING", "NEXT_FUNDING", "OPEN_INTEREST"]
        assert all(set(row) == {"market", "type", "index", "value", "updatedAt"} and isinstance(row["value"], str) for row in rows)
        by_type = {row["type"]: row["value"] for row in rows}
        assert float(by_type["BID"]) < float(by_type["ASK"])
        async with session.get(emu.http_url + "/api/v1/market-data") as response:
            assert len(await response.json()) == 3 * len(rows)
        async with session.get(emu.http_url + "/api/v1/market-data", params={"market": "NOPE"}) as response:
            assert response.status == 400


async def test_rest_is_limited_per_address() -> None:
    async with build() as emu, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(601):
            async with session.get(emu.http_url + "/api/v1/markets") as response:
                statuses.append(response.status)
                retry_after = response.headers.get("Retry-After")
        assert statuses.count(200) == 600 and statuses[-1] == 429 and retry_after is not None and int(retry_after) >= 1


async def test_flood_ends_with_the_true_book(emu: RailsEmulator) -> None:
    async with opened(emu, f"market={BTC}&subscriptions=publicOrderBook") as client:
        [snapshot] = await client.request("emitPublicOrderBook")
        assert await emu.flood(BTC, 40) == 40
        flooded = [orjson.loads(frame) for frame in await client.sync()]
        assert len(flooded) == 40 and len({orjson.dumps(frame) for frame in flooded}) > 10
        expected = {(row["orderType"], row["price"]): row["quantity"] for row in emu.book(BTC)}
        assert rebuilt(snapshot["data"]["orders"], flooded) == expected
    with pytest.raises(KeyError):
        await emu.flood("NOPE", 1)
