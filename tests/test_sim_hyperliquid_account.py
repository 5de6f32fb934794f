"""The Hyperliquid emulator's account streams of the demo address (reference §4.7, §6) over real
sockets: ``orderUpdates``, ``userFills``, ``userEvents`` (channel ``user``) with liquidations, the
``clearinghouseState`` subscription, and the liquidation controls (``set_liquidation_stage``, the
"liquidation" scenario). The engine is stepped by hand, so every frame follows from the seed."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest

from app.sim.engine import DEMO_ADDRESS
from app.sim.hyperliquid import LIQUIDATION_DELAY_MS, LIQUIDATOR_ADDRESS, HyperliquidEmulator
from tests.test_sim_hyperliquid import Client, client, emulator, info

pytestmark = pytest.mark.timeout(20)

WS_ORDER_KEYS = ["coin", "side", "limitPx", "sz", "oid", "timestamp", "origSz"]
FILL_KEYS = ["coin", "px", "sz", "side", "time", "startPosition", "dir", "closedPnl", "hash", "oid", "crossed", "fee", "tid", "feeToken", "twapId"]
POSITION_KEYS = ["coin", "szi", "leverage", "entryPx", "positionValue", "unrealizedPnl", "returnOnEquity", "liquidationPx", "marginUsed", "maxLeverage", "cumFunding"]
SUMMARY_KEYS = ["accountValue", "totalNtlPos", "totalRawUsd", "totalMarginUsed"]


def derived_state(state: dict[str, Any]) -> str:
    """What our client derives from a clearinghouseState."""
    value = float(state["marginSummary"]["accountValue"])
    maintenance = float(state["crossMaintenanceMarginUsed"])
    if value < maintenance:
        return "Liquidating"
    return "Warning" if value < 1.5 * maintenance else "Normal"


async def rest_state(emu: HyperliquidEmulator) -> dict[str, Any]:
    status, state = await info(emu, {"type": "clearinghouseState", "user": DEMO_ADDRESS, "dex": ""})
    assert status == 200
    return state


async def advance_until_fills(emu: HyperliquidEmulator, max_ms: int = 60_000) -> list[Any]:
    for _ in range(max_ms // 500):
        events = await emu.advance(500)
        if events.fills:
            return events.fills
    raise AssertionError("no demo fill")


async def frames_until(c: Client, channel: str, count: int) -> list[Any]:
    out = []
    while len(out) < count:
        message = await c.recv()
        if message["channel"] == channel:
            out.append(message["data"])
    return out


async def test_order_updates_open_then_filled() -> None:
    async with emulator() as emu, client(emu) as c:
        await emu.advance(2_000)
        await c.subscribe({"type": "orderUpdates", "user": DEMO_ADDRESS}, initial=False)
        assert await c.silent(0.2)  # no snapshot
        fills = await advance_until_fills(emu)
        opened, filled = await frames_until(c, "orderUpdates", 2)
        oids = list(dict.fromkeys(fill.order_id for fill in fills))
        assert [u["order"]["oid"] for u in opened] == oids == [u["order"]["oid"] for u in filled]
        for before, after in zip(opened, filled, strict=True):
            assert list(before) == ["order", "status", "statusTimestamp"] and list(before["order"]) == WS_ORDER_KEYS
            assert before["status"] == "open" and after["status"] == "filled"
            order = before["order"]
            mine = [fill for fill in fills if fill.order_id == order["oid"]]
            spec = emu.engine.spec(mine[0].symbol)
            assert order["coin"] == emu.coin(mine[0].symbol) and order["side"] == ("B" if mine[0].side == "buy" else "A")
            assert order["sz"] == order["origSz"] == spec.sz_str(sum(fill.sz for fill in mine))
            assert after["order"]["sz"] == "0.0" and after["order"]["origSz"] == order["origSz"]
            assert order["limitPx"] in {spec.px_str(fill.px) for fill in mine}
            assert order["timestamp"] == before["statusTimestamp"] == mine[0].time and after["statusTimestamp"] == mine[-1].time
    async with emulator() as emu, client(emu) as c:
        await c.subscribe({"type": "orderUpdates", "user": "0x" + "2" * 40}, initial=False)
        await advance_until_fills(emu)
        assert await c.silent(0.2)  # another user's orders: nothing


async def test_user_fills_snapshot_is_the_rest_fills(emu_with_history: HyperliquidEmulator) -> None:
    emu = emu_with_history
    async with client(emu) as c:
        snapshot = (await c.subscribe({"type": "userFills", "user": DEMO_ADDRESS}))["data"]
        _, rest = await info(emu, {"type": "userFills", "user": DEMO_ADDRESS})
        assert list(snapshot) == ["isSnapshot", "user", "fills"] and snapshot["fills"] == rest[: len(snapshot["fills"])]
        assert all(list(fill) == FILL_KEYS for fill in rest)
        spot = [fill for fill in rest if fill["coin"] in ("PURR/USDC", "@1")]
        assert spot and all(fill["dir"] in ("Buy", "Sell") for fill in spot)
        assert all(fill["feeToken"] == ("USDC" if fill["side"] == "A" else ("PURR" if fill["coin"] == "PURR/USDC" else "HYPE")) for fill in spot)


@pytest.fixture
async def emu_with_history():
    async with emulator() as server:
        await server.advance(600_000)
        yield server


async def test_clearinghouse_state_rest_fields(emu_with_history: HyperliquidEmulator) -> None:
    state = await rest_state(emu_with_history)
    assert list(state) == ["marginSummary", "crossMarginSummary", "crossMaintenanceMarginUsed", "withdrawable", "assetPositions", "time"]
    assert list(state["marginSummary"]) == SUMMARY_KEYS and state["crossMarginSummary"] == state["marginSummary"]
    assert state["assetPositions"], "the demo account holds positions"
    summary = state["marginSummary"]
    value = float(summary["accountValue"])
    maintenance = signed = notional = 0.0
    for entry in state["assetPositions"]:
        position = entry["position"]
        assert entry["type"] == "oneWay" and list(position) == POSITION_KEYS
        assert position["leverage"] == {"type": "cross", "value": min(10, position["maxLeverage"])}
        assert all(isinstance(position[key], str) for key in ("szi", "entryPx", "positionValue", "unrealizedPnl", "returnOnEquity", "marginUsed"))
        size, position_value = float(position["szi"]), float(position["positionValue"])
        mark = position_value / abs(size)
        maintenance += position_value / (2 * position["maxLeverage"])
        signed += math.copysign(position_value, size)
        notional += position_value
        liquidation = position["liquidationPx"]
        if size > 0:  # with ~100k USDC against a few hundred of maintenance, a long is never liquidated
            assert liquidation is None or float(liquidation) < mark
        else:
            assert float(liquidation) > mark
    assert float(state["crossMaintenanceMarginUsed"]) == pytest.approx(maintenance, rel=1e-5, abs=1e-5)
    assert float(summary["totalNtlPos"]) == pytest.approx(notional, rel=1e-6)
    assert float(summary["totalRawUsd"]) == pytest.approx(value - signed, rel=1e-6)
    assert derived_state(state) == "Normal"


async def test_clearinghouse_state_subscription_pushes_on_subscribe_and_on_change() -> None:
    async with emulator() as emu, client(emu) as c:
        await emu.advance(30_000)
        await c.send({"method": "subscribe", "subscription": {"type": "clearinghouseState", "user": DEMO_ADDRESS, "dex": ""}})
        ack = await c.recv()
        assert ack["data"]["subscription"] == {"type": "clearinghouseState", "user": DEMO_ADDRESS, "dex": ""}
        first = await c.recv()
        assert first["channel"] == "clearinghouseState" and list(first["data"]) == ["dex", "user", "clearinghouseState"]
        assert first["data"]["dex"] == "" and first["data"]["user"] == DEMO_ADDRESS
        assert first["data"]["clearinghouseState"] == await rest_state(emu)
        await emu.advance(600)
        assert await c.silent(0.2)  # at most one push a second
        await emu.advance(500)
        pushed = await c.recv()
        assert pushed["channel"] == "clearinghouseState" and pushed["data"]["clearinghouseState"] == await rest_state(emu)
        assert pushed["data"]["clearinghouseState"]["time"] > first["data"]["clearinghouseState"]["time"]
        # an empty account never changes: one frame on subscribe, then nothing
        other = "0x" + "3" * 40
        empty = await c.subscribe({"type": "clearinghouseState", "user": other})
        assert empty["data"]["user"] == other and empty["data"]["clearinghouseState"]["assetPositions"] == []
        for _ in range(3):
            await emu.advance(1_100)
            assert (await c.recv())["data"]["user"] == DEMO_ADDRESS
        await c.send({"method": "subscribe", "subscription": {"type": "clearinghouseState", "user": DEMO_ADDRESS, "dex": "xyz"}})
        assert (await c.recv_channel("error"))["data"].startswith("Invalid subscription {")


async def test_warning_stage_holds() -> None:
    async with emulator() as emu:
        await emu.advance(30_000)
        emu.set_liquidation_stage("warning")
        for _ in range(40):
            await emu.advance(250)
            state = await rest_state(emu)
            ratio = float(state["marginSummary"]["accountValue"]) / float(state["crossMaintenanceMarginUsed"])
            assert 1.0 <= ratio < 1.5 and derived_state(state) == "Warning", ratio
        emu.set_liquidation_stage("normal")
        await emu.advance(100)
        assert derived_state(await rest_state(emu)) == "Normal"
        assert float((await rest_state(emu))["marginSummary"]["accountValue"]) > 90_000
        with pytest.raises(ValueError):
            emu.set_liquidation_stage("panic")  # type: ignore[arg-type]


async def drain(c: Client, quiet: float = 0.3) -> list[Any]:
    """Every frame already sent (the engine does not move unless a test advances it)."""
    out = []
    while True:
        try:
            out.append(await c.recv(quiet))
        except TimeoutError:
            return out


async def test_liquidating_stage_liquidates_then_trades_on() -> None:
    async with emulator() as emu, client(emu) as c:
        await emu.advance(30_000)
        await c.subscribe({"type": "userEvents", "user": DEMO_ADDRESS}, initial=False)
        assert (await c.subscribe({"type": "userFills", "user": DEMO_ADDRESS}))["data"]["isSnapshot"] is True
        await c.subscribe({"type": "orderUpdates", "user": DEMO_ADDRESS}, initial=False)
        await c.subscribe({"type": "clearinghouseState", "user": DEMO_ADDRESS})
        emu.set_liquidation_stage("liquidating")
        await emu.advance(100)
        before = await rest_state(emu)
        assert derived_state(before) == "Liquidating"
        assert before["assetPositions"]
        await drain(c)
        liquidation_fills = []
        for _ in range(LIQUIDATION_DELAY_MS // 100 + 2):
            events = await emu.advance(100)
            liquidation_fills = [fill for fill in events.fills if fill.liquidation_mark_px is not None]
            if liquidation_fills:
                break
            assert derived_state(await rest_state(emu)) == "Liquidating"  # held until the liquidation
        assert liquidation_fills, "no liquidation within the delay"
        after = await rest_state(emu)
        assert after["assetPositions"] == [] and derived_state(after) == "Normal"
        frames = await drain(c)
        pushed = [f["data"]["clearinghouseState"] for f in frames if f["channel"] == "clearinghouseState"]
        seen = [(derived_state(state), bool(state["assetPositions"])) for state in pushed]
        assert seen[0] == ("Liquidating", True)  # clients see it coming, then the flat account
        assert set(seen) <= {("Liquidating", True), ("Normal", False)} and seen == sorted(seen, key=lambda s: not s[1])

        # channel user: the liquidation event, then the liquidation's fills
        user = [f["data"] for f in frames if f["channel"] == "user"]
        index = next(i for i, data in enumerate(user) if "liquidation" in data)
        event = user[index]["liquidation"]
        assert list(event) == ["lid", "liquidator", "liquidated_user", "liquidated_ntl_pos", "liquidated_account_value"]
        assert isinstance(event["lid"], int) and event["liquidator"] == LIQUIDATOR_ADDRESS and event["liquidated_user"] == DEMO_ADDRESS
        assert 0 < float(event["liquidated_account_value"]) < 0.05 * float(event["liquidated_ntl_pos"])
        remaining = float(after["marginSummary"]["accountValue"])  # what is left after fees and slippage
        assert 0 < remaining == pytest.approx(float(event["liquidated_account_value"]), rel=0.2)
        liquidated = user[index + 1]["fills"]
        assert len(liquidated) == len(liquidation_fills)
        for coin in {fill["coin"] for fill in liquidated}:  # each order closes its whole position
            mine = [fill for fill in liquidated if fill["coin"] == coin]
            assert sum(float(fill["sz"]) for fill in mine) == pytest.approx(abs(float(mine[0]["startPosition"])))
        closed = sum(float(fill["sz"]) * float(fill["liquidation"]["markPx"]) for fill in liquidated)  # whole positions
        assert float(event["liquidated_ntl_pos"]) == pytest.approx(closed, rel=1e-3)
        for fill in liquidated:
            assert list(fill) == FILL_KEYS[:13] + ["liquidation"] + FILL_KEYS[13:]
            assert fill["liquidation"] == {"liquidatedUser": DEMO_ADDRESS, "markPx": fill["liquidation"]["markPx"], "method": "market"}
            assert isinstance(fill["liquidation"]["markPx"], str) and fill["crossed"] is True
            assert fill["dir"] in ("Close Long", "Close Short")
        # channel userFills: the same fills; REST userFills has them too
        on_user_fills = [fill for f in frames if f["channel"] == "userFills" for fill in f["data"]["fills"] if "liquidation" in fill]
        assert on_user_fills == liquidated
        _, rest_fills = await info(emu, {"type": "userFills", "user": DEMO_ADDRESS})
        assert all(fill in rest_fills for fill in liquidated)
        # orderUpdates: the liquidation orders open, then filled
        updates = [f["data"] for f in frames if f["channel"] == "orderUpdates"]
        liquidation_oids = {fill["oid"] for fill in liquidated}
        opened = [u for frame in updates for u in frame if u["order"]["oid"] in liquidation_oids]
        assert [u["status"] for u in opened] == ["open"] * len(liquidation_oids) + ["filled"] * len(liquidation_oids)

        # the account trades on with what is left; the stage stays until set
        await advance_until_fills(emu)
        assert emu.liquidation_stage == "liquidating"
        emu.set_liquidation_stage("normal")
        await emu.advance(100)
        assert float((await rest_state(emu))["marginSummary"]["accountValue"]) > 90_000


async def test_liquidation_scenario_walks_normal_warning_liquidating() -> None:
    with pytest.raises(ValueError):
        HyperliquidEmulator(scenario="nope", autostep=False)
    assert "liquidation" in HyperliquidEmulator.scenarios
    async with emulator(scenario="liquidation") as emu:
        states: list[str] = []
        liquidated_at = None
        for step in range(300):  # 30 s of virtual time
            events = await emu.advance(100)
            if any(fill.liquidation_mark_px is not None for fill in events.fills):
                liquidated_at = liquidated_at or step
            state = emu._clearinghouse_state(DEMO_ADDRESS)
            if state["assetPositions"]:
                states.append(derived_state(state))
        runs = [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]
        assert runs[:3] == ["Normal", "Warning", "Liquidating"], runs
        assert states.count("Warning") >= 100  # ~15 s of 100 ms steps
        assert liquidated_at is not None and 250 <= liquidated_at <= 290


def test_official_sdk_account_subscriptions() -> None:
    """``hyperliquid-python-sdk``'s ``Info.subscribe`` for orderUpdates, userEvents and userFills
    (it has no clearinghouseState subscription), a liquidation included."""
    pytest.importorskip("hyperliquid.info")
    from hyperliquid.info import Info

    from app.sim.runner import EmulatorThread

    received: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def collect(message: Any) -> None:
        with lock:
            received.setdefault(message["channel"], []).append(message["data"])

    def wait_for(predicate: Any, advance_ms: int = 0, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with lock:
                if predicate():
                    return
            if advance_ms:
                emus.run(server.advance(advance_ms))
            time.sleep(0.02)
        raise AssertionError(f"timed out; got {sorted(received)}")

    with EmulatorThread(["hyperliquid"], seed=5, autostep=False) as emus:
        server = emus["hyperliquid"]
        assert isinstance(server, HyperliquidEmulator)
        emus.run(server.advance(30_000))
        info = Info(base_url=server.http_url, skip_ws=False)
        try:
            info.subscribe({"type": "orderUpdates", "user": DEMO_ADDRESS}, collect)
            info.subscribe({"type": "userEvents", "user": DEMO_ADDRESS}, collect)
            info.subscribe({"type": "userFills", "user": DEMO_ADDRESS}, collect)
            wait_for(lambda: "userFills" in received)  # the snapshot: all three are subscribed
            assert received["userFills"][0]["isSnapshot"] is True
            wait_for(lambda: len(received.get("orderUpdates", [])) >= 2 and "user" in received, advance_ms=500)
            assert {u["status"] for u in received["orderUpdates"][0]} == {"open"}
            assert {u["status"] for u in received["orderUpdates"][1]} == {"filled"}
            emus.call(server.set_liquidation_stage, "liquidating")

            def liquidated() -> bool:
                return any("liquidation" in data for data in received.get("user", []))

            wait_for(liquidated, advance_ms=200)
            wait_for(lambda: any("liquidation" in f for data in received["userFills"] for f in data["fills"]))
            with lock:
                event = next(data["liquidation"] for data in received["user"] if "liquidation" in data)
            assert event["liquidated_user"] == DEMO_ADDRESS
            assert emus.call(server.info, {"type": "clearinghouseState", "user": DEMO_ADDRESS})[1]["assetPositions"] == []
        finally:
            info.disconnect_websocket()
