"""The Hypercall emulator over real sockets on 127.0.0.1: authentication, subscriptions and filters,
every message type, the heartbeat and slow-consumer closes, REST, the shared fault controls and
determinism. The clock is stepped by hand (``autostep=False``), so every frame follows from the seed
and the ``advance`` calls; ``ClockSync`` serves as a barrier (everything sent before its answer has
arrived)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.sim.engine import DEFAULT_START_MS, DEMO_ADDRESS, HOSTILE_NAMES
from app.sim.hypercall import HypercallEmulator
from app.sim.runner import main as sim_main
from app.sim.runner import start_emulators

pytestmark = pytest.mark.timeout(20)

OTHER_WALLET = "0x" + "ab" * 20
LEG_KEYS = [
    "symbol", "option_token_address", "bid_price_usd", "bid_iv", "bid_size_contracts", "bid_size_usd_notional",
    "ask_price_usd", "ask_iv", "ask_size_contracts", "ask_size_usd_notional", "greeks_abs", "greeks_cash",
    "mark_price_usd", "mark_iv",
]  # fmt: skip
POSITION_KEYS = [
    "wallet_address", "symbol", "amount", "entry_price", "margin_posted", "realized_pnl", "unrealized_pnl", "updated_at",
    "instrument_type", "notional_value", "maintenance_margin", "liquidation_price", "margin_ratio",
]  # fmt: skip
SPAN_KEYS = [
    "equity", "initial_margin_required", "maintenance_margin_required", "open_orders_initial_margin",
    "option_margin_required", "scanning_risk", "option_floor", "gamma_overlay", "hypercore_margin_required",
]  # fmt: skip


@contextlib.asynccontextmanager
async def emulator(**options: Any) -> AsyncIterator[HypercallEmulator]:
    options = {"seed": 7, "autostep": False, "start_ms": DEFAULT_START_MS, "tick_interval": 0.05, **options}
    async with HypercallEmulator(**options) as server:
        yield server


class Client:
    """A raw WebSocket client speaking Hypercall's JSON."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._nonce = 0

    async def send(self, message: Any) -> None:
        await self.ws.send(message if isinstance(message, str) else orjson.dumps(message).decode())

    async def recv(self, timeout: float = 2.0) -> Any:
        return orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def sync(self) -> list[Any]:
        """Every frame the server sent before it answered a fresh ClockSync."""
        self._nonce += 1
        await self.send({"type": "ClockSync", "nonce": self._nonce})
        frames = []
        while (frame := await self.recv()) != {"type": "ClockSynced", "nonce": self._nonce, "server_at": frame.get("server_at")}:
            frames.append(frame)
        return frames

    async def request(self, message: Any) -> list[Any]:
        await self.send(message)
        return await self.sync()

    async def silent(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def client(server: HypercallEmulator, wallet: str | None = None, query: str = "") -> AsyncIterator[Client]:
    async with connect(server.ws_url + query, ping_interval=None, max_size=None, max_queue=None) as ws:  # unread frames must not stall the close
        c = Client(ws)
        if wallet is not None:
            await c.send({"type": "Authenticate", "wallet": wallet})
            assert await c.recv() == {"type": "Authenticated", "wallet": wallet.lower()}
        yield c


async def rest(server: HypercallEmulator, path: str, **params: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.get(server.http_url + path, params={k: str(v) for k, v in params.items()}) as response:
            return response.status, orjson.loads(await response.read())


async def run(server: HypercallEmulator, c: Client, steps: int, dt_ms: int = 500) -> list[Any]:
    frames: list[Any] = []
    for _ in range(steps):
        await server.advance(dt_ms)
        frames += await c.sync()
    return frames


def of(frames: list[Any], kind: str, **fields: Any) -> list[Any]:
    return [f for f in frames if f["type"] == kind and all(f.get(k) == v for k, v in fields.items())]


def expiry_ms(name: str) -> int:
    day = datetime.strptime(name.split("-")[1], "%Y%m%d").replace(hour=8, tzinfo=UTC)
    return int(day.timestamp() * 1000)


def black_scholes(spot: float, strike: float, t: float, vol: float, is_call: bool) -> dict[str, float]:
    """Independent r = 0 Black-Scholes: delta, gamma per USD, theta per day, vega per vol point."""
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + sd * sd / 2) / sd
    n1 = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    pdf = math.exp(-d1 * d1 / 2) / math.sqrt(2 * math.pi)
    return {
        "delta": n1 if is_call else n1 - 1,
        "gamma": pdf / (spot * sd),
        "theta": -spot * pdf * vol / (2 * math.sqrt(t)) / 365,
        "vega": spot * pdf * math.sqrt(t) / 100,
    }


# --------------------------------------------------------------------------------------------------
# Connection, authentication, subscriptions
# --------------------------------------------------------------------------------------------------


async def test_authenticate_lowercases_rejects_and_accepts_the_query() -> None:
    async with emulator() as emu:
        mixed = "0x" + "AbCdEf0123" * 4
        async with client(emu) as c:
            assert await c.request({"type": "Subscribe", "channel": "fills"}) == [{"type": "Error", "message": "Authentication required for channel: fills"}]
            for bad in ("0x123", "0x" + "g" * 40, 42, None, mixed + "0"):
                assert await c.request({"type": "Authenticate", "wallet": bad}) == [{"type": "Error", "message": "Invalid wallet address"}]
            assert (await c.request({"type": "Subscribe", "channel": "portfolio"}))[0]["type"] == "Error"  # still not authenticated
            assert await c.request({"type": "Authenticate", "wallet": mixed}) == [{"type": "Authenticated", "wallet": mixed.lower()}]
            assert await c.request({"type": "Subscribe", "channel": "fills"}) == [{"type": "Subscribed", "channel": "fills"}]
        async with client(emu, query=f"?wallet={DEMO_ADDRESS.upper().replace('0X', '0x')}") as c:
            frames = await c.request({"type": "Subscribe", "channel": "portfolio"})
            assert frames[0] == {"type": "Subscribed", "channel": "portfolio"} and len(frames[1]["positions"]) == 4
        async with client(emu, query="?wallet=0xnope") as c:
            assert await c.recv() == {"type": "Error", "message": "Invalid wallet address"}
            assert (await c.request({"type": "Subscribe", "channel": "liquidation"}))[0]["type"] == "Error"


async def test_acks_and_errors_keep_the_socket_open() -> None:
    async with emulator() as emu, client(emu) as c:
        for channel in ("market_updates", "trades", "trades"):  # a repeat is acked again
            assert await c.request({"type": "Subscribe", "channel": channel}) == [{"type": "Subscribed", "channel": channel}]
        assert await c.request({"type": "Unsubscribe", "channel": "trades"}) == [{"type": "Unsubscribed", "channel": "trades"}]
        assert await c.request({"type": "Unsubscribe", "channel": "orderbook"}) == [{"type": "Unsubscribed", "channel": "orderbook"}]
        long_type = "X" * 100
        cases = [
            ({"type": "Subscribe", "channel": "foobar"}, "Invalid channel: foobar"),
            ({"type": "Subscribe", "channel": "candles:SOL:1m"}, "Invalid channel: candles:SOL:1m"),
            ({"type": "Subscribe", "channel": "candles:BTC:2m"}, "Invalid channel: candles:BTC:2m"),
            ({"type": "Unsubscribe", "channel": "markets"}, "Invalid channel: markets"),
            ({"type": long_type}, "Unknown message type: " + "X" * 64),
            ({"type": "Subscribe"}, "Invalid message: missing string field `channel`"),
            ({"type": "Subscribe", "channel": "orderbook", "symbols": "BTC"}, "Invalid message: `symbols` must be an array of strings"),
            ({"type": "Subscribe", "channel": "options_chain", "expiry": "2025-13-01"}, "Invalid message: `expiry` must be a date YYYY-MM-DD"),
            ({"type": "Subscribe", "channel": "options_chain", "option_type": "CALL"}, 'Invalid message: `option_type` must be "call" or "put"'),
            ({"channel": "orderbook"}, "Invalid message: missing string field `type`"),
            ([1, 2], "Invalid message: expected a JSON object"),
            ("{not json", "Invalid message: not valid JSON"),
        ]
        for message, error in cases:
            assert await c.request(message) == [{"type": "Error", "message": error}], message
        for channel in ("order_updates", "fills", "portfolio", "liquidation", "competition"):
            assert await c.request({"type": "Subscribe", "channel": channel}) == [{"type": "Error", "message": f"Authentication required for channel: {channel}"}]
        await c.send({"type": "ClockSync", "nonce": "x"})
        assert await c.recv() == {"type": "ClockSynced", "nonce": "x", "server_at": DEFAULT_START_MS}


async def test_symbols_filter_adds_and_removes() -> None:
    async with emulator() as emu, client(emu) as c:
        btc_call = next(name for name in emu.instruments if name.startswith("BTC-") and name.endswith("-C"))
        frames = await c.request({"type": "Subscribe", "channel": "orderbook", "symbols": ["ETH", "NOPE"]})
        assert frames[0] == {"type": "Subscribed", "channel": "orderbook"}
        assert {f["symbol"] for f in frames[1:]} == {n for n in emu.instruments if n.startswith("ETH-")}
        frames = await c.request({"type": "Subscribe", "channel": "orderbook", "symbols": [btc_call]})
        assert {f["symbol"] for f in frames[1:]} == {n for n in emu.instruments if n.startswith("ETH-")} | {btc_call}
        assert await c.request({"type": "Unsubscribe", "channel": "orderbook", "symbols": ["ETH"]}) == [{"type": "Unsubscribed", "channel": "orderbook"}]
        updates = await run(emu, c, 20)
        assert updates and {f["symbol"] for f in updates} == {btc_call}
        await c.request({"type": "Unsubscribe", "channel": "orderbook", "symbols": [btc_call, "NOPE"]})  # none left: unsubscribed
        assert "orderbook" not in emu._subscribers and await run(emu, c, 6) == []
        frames = await c.request({"type": "Subscribe", "channel": "orderbook"})  # no symbols: everything
        assert len(frames) == 1 + len(emu.instruments)


async def test_orderbook_full_ladders_as_strings_throttled_per_instrument() -> None:
    async with emulator() as emu, client(emu) as c:
        snapshot = (await c.request({"type": "Subscribe", "channel": "orderbook"}))[1:]
        assert len(snapshot) == len(emu.instruments) == 144
        for book in snapshot:
            assert list(book) == ["type", "symbol", "option_token_address", "bids", "asks", "timestamp"] and book["option_token_address"] is None
            assert len(book["asks"]) == 15 and len(book["bids"]) <= 15
            assert all(isinstance(p, str) and isinstance(s, str) for p, s in book["bids"] + book["asks"])
            bids, asks = [float(p) for p, _ in book["bids"]], [float(p) for p, _ in book["asks"]]
            assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and (not bids or bids[0] < asks[0])
        frames = []
        times: dict[str, list[int]] = {}
        for _ in range(16):
            await emu.advance(100)
            for frame in await c.sync():
                frames.append(frame)
                times.setdefault(frame["symbol"], []).append(emu.engine.now_ms)
        assert frames and all(f["type"] == "OrderbookUpdate" for f in frames)
        assert all(b - a >= 500 for pushes in times.values() for a, b in zip(pushes, pushes[1:]))
        name = frames[-1]["symbol"]
        inst = emu.instruments[name]
        assert frames[-1]["asks"][0] == [inst.px(inst.asks[0][0]), f"{inst.asks[0][1] / 10:.1f}"]


async def test_trades_index_prices_and_candles() -> None:
    async with emulator() as emu, client(emu) as c:
        frames = await c.request({"type": "Subscribe", "channel": "index_prices"})
        index = frames[1]
        assert list(index) == ["type", "prices", "timestamp"] and [p["underlying"] for p in index["prices"]] == ["BTC", "ETH"]
        assert float(index["prices"][0]["price"]) == pytest.approx(emu.engine.fair_price("BTC"), abs=0.01)
        candle = (await c.request({"type": "Subscribe", "channel": "candles:BTC:1m"}))[1]
        assert list(candle) == ["type", "underlying", "resolution", "open_time", "close_time", "open", "high", "low", "close", "volume", "timestamp"]
        assert candle["close_time"] == candle["open_time"] + 59_999 and isinstance(candle["close"], str)
        await c.request({"type": "Subscribe", "channel": "trades", "symbols": ["BTC"]})
        frames = await run(emu, c, 130)  # 65 s: across a minute boundary
        trades = of(frames, "Trade")
        assert trades and all(t["symbol"].startswith("BTC-") and t["side"] in ("buy", "sell") for t in trades)
        assert list(trades[0]) == ["type", "symbol", "price", "size", "side", "timestamp"] and float(trades[0]["size"]) > 0
        assert 55 <= len(of(frames, "IndexPriceUpdate")) <= 66
        candles = of(frames, "Candle")
        opens = sorted({f["open_time"] for f in candles})
        assert opens[-1] == opens[-2] + 60_000 and len(candles) >= 60
        first_bars = [f for f in candles if f["open_time"] == opens[-2]]
        assert first_bars[-1]["timestamp"] >= opens[-1]  # the closing frame of that bar came after it ended


async def test_options_chain_snapshot_filters_and_legs() -> None:
    async with emulator() as emu, client(emu) as c:
        frames = (await c.request({"type": "Subscribe", "channel": "options_chain"}))[1:]
        assert len(frames) == 72 and all(f["action"] == "Upsert" for f in frames)
        row = frames[0]
        assert list(row) == ["type", "action", "currency", "expiry", "row", "timestamp"] and isinstance(row["row"]["strike"], float)
        leg = row["row"]["call"]
        assert list(leg) == LEG_KEYS and leg["symbol"].endswith("-C") and row["row"]["put"]["symbol"].endswith("-P")
        assert all(isinstance(leg[k], float) for k in LEG_KEYS if k not in ("symbol", "option_token_address", "greeks_abs", "greeks_cash"))
        assert list(leg["greeks_abs"]) == ["delta", "gamma", "theta", "vega"]
        assert list(leg["greeks_cash"]) == ["delta_1pct_usd", "gamma_1pct_usd", "theta_1d_usd", "vega_1vol_usd"]
        assert leg["bid_price_usd"] <= leg["mark_price_usd"] <= leg["ask_price_usd"]
        assert leg["ask_iv"] > leg["mark_iv"] > 0
    async with emulator() as emu, client(emu) as c:
        frames = await c.request({"type": "Subscribe", "channel": "options_chain", "symbols": ["ETH"], "expiry": "2025-06-20", "option_type": "put"})
        rows = frames[1:]
        assert len(rows) == 9 and all(r["currency"] == "ETH" and list(r["row"]) == ["strike", "put"] for r in rows)
        assert {datetime.fromtimestamp(r["expiry"], UTC).strftime("%Y-%m-%d %H:%M") for r in rows} == {"2025-06-20 08:00"}
        updates = await run(emu, c, 10)
        assert updates and all(u["currency"] == "ETH" and list(u["row"]) == ["strike", "put"] for u in updates)
        per_row: dict[float, list[int]] = {}
        for u in updates:
            per_row.setdefault(u["row"]["strike"], []).append(u["timestamp"])
        assert all(b - a >= 2_000 for stamps in per_row.values() for a, b in zip(stamps, stamps[1:]))


async def test_expiry_settles_and_lists_a_new_expiry() -> None:
    async with emulator() as emu, client(emu, DEMO_ADDRESS) as c:
        for channel in ("market_updates", "portfolio"):
            await c.request({"type": "Subscribe", "channel": channel})
        await c.request({"type": "Subscribe", "channel": "options_chain", "option_type": "call"})
        held = next(name for name in emu._positions if name.startswith("BTC-20250616"))
        spot = emu.engine.fair_price("BTC")
        nearest = await emu.expire_next()
        frames = await c.sync()
        expired = of(frames, "MarketUpdate", action="Expired")
        assert len(expired) == 36 and {f["expiry"] for f in expired} == {nearest // 1000}
        assert list(expired[0]) == ["type", "action", "symbol", "strike", "is_call", "underlying", "expiry", "timestamp"]
        removes = of(frames, "OptionsChainUpdate", action="Remove")
        assert len(removes) == 18 and all(r["option_type"] == "call" for r in removes)  # the socket's filter
        assert list(removes[0]) == ["type", "action", "currency", "expiry", "strike", "option_type", "symbol", "timestamp"]
        (settled,) = of(frames, "PositionExpired")
        strike = float(held.split("-")[2])
        assert settled["symbol"] == held and settled["position_size"] == "2.0"
        assert float(settled["settlement_value"]) == pytest.approx(2 * max(0.0, spot - strike), abs=0.01)
        assert float(settled["net_pnl"]) == pytest.approx(float(settled["settlement_value"]) - float(settled["cost_basis"]), abs=0.02)
        created = of(frames, "MarketUpdate", action="Created")
        assert len(created) == 36 and {datetime.fromtimestamp(f["expiry"], UTC).strftime("%Y-%m-%d") for f in created} == {"2025-08-29"}
        assert held not in emu.instruments and held not in emu._positions
        _, markets = await rest(emu, "/markets")
        assert [m["expiry"] for m in markets["data"] if m["underlying"] == "BTC"] == [e // 1000 for e in emu.underlyings["BTC"].expiries]
        assert nearest // 1000 not in [m["expiry"] for m in markets["data"]]


# --------------------------------------------------------------------------------------------------
# Private channels
# --------------------------------------------------------------------------------------------------


async def test_portfolio_initial_margin_greeks_match_black_scholes() -> None:
    async with emulator() as emu, client(emu, DEMO_ADDRESS) as c:
        await emu.advance(500)
        frames = await c.request({"type": "Subscribe", "channel": "portfolio"})
        assert frames[0] == {"type": "Subscribed", "channel": "portfolio"}
        initial, margin, greeks = frames[1:]
        assert list(initial) == ["type", "positions", "timestamp"]
        amounts = {p["symbol"].split("-")[0] + p["symbol"][-1]: p["amount"] for p in initial["positions"]}
        assert amounts == {"BTCC": "2.0", "BTCP": "-3.0", "ETHC": "-10.0", "ETHP": "5.0"}
        assert len({p["symbol"].split("-")[1] for p in initial["positions"]}) == 4  # four expiries
        assert all(list(p) == POSITION_KEYS and p["wallet_address"] == DEMO_ADDRESS for p in initial["positions"])
        assert list(margin) == ["type", "span_margin", "margin_summary", "margin_mode", "total_margin_used", "available_balance", "timestamp"]
        assert list(margin["span_margin"]) == SPAN_KEYS and margin["margin_mode"] == "portfolio"
        summary = margin["margin_summary"]
        assert summary["liquidation_state"] == "Normal"
        assert float(summary["equity"]) == pytest.approx(3 * float(summary["maintenance_margin"]), rel=0.01)
        assert float(summary["maintenance_margin"]) == pytest.approx(0.8 * float(summary["initial_margin"]), rel=1e-3)
        assert list(greeks) == ["type", "per_leg", "aggregate", "timestamp"] and len(greeks["per_leg"]) == 4
        leg = next(leg for leg in greeks["per_leg"] if leg["symbol"].startswith("BTC") and leg["symbol"].endswith("-C"))
        assert list(leg) == ["symbol", "quantity", "delta", "gamma", "theta", "vega", "iv"] and leg["quantity"] == "2.0"
        t = (expiry_ms(leg["symbol"]) - emu.engine.now_ms) / (365 * 86_400_000)
        expected = black_scholes(emu.engine.fair_price("BTC"), float(leg["symbol"].split("-")[2]), t, leg["iv"], True)
        for key, value in expected.items():
            assert leg[key] == pytest.approx(2 * value, rel=1e-6), key
        aggregate = greeks["aggregate"]
        assert aggregate["delta"] == pytest.approx(sum(leg["delta"] for leg in greeks["per_leg"]), rel=1e-6)
        assert min(leg["iv"] for leg in greeks["per_leg"]) <= aggregate["iv"] <= max(leg["iv"] for leg in greeks["per_leg"])
        periodic = await run(emu, c, 4)
        assert [f["type"] for f in periodic] == ["PortfolioUpdate"] * 4
        assert ["per_leg" in f for f in periodic] == [True, False, True, False]


async def test_other_wallets_see_the_empty_forms() -> None:
    async with emulator() as emu, client(emu, OTHER_WALLET) as c:
        frames = await c.request({"type": "Subscribe", "channel": "portfolio"})
        assert frames[1]["positions"] == []
        assert frames[2]["margin_summary"] == {"equity": "0.0", "maintenance_margin": "0.0", "initial_margin": "0.0", "liquidation_state": "Normal"}
        assert (frames[3]["per_leg"], frames[3]["aggregate"]) == ([], None)
        competition = (await c.request({"type": "Subscribe", "channel": "competition"}))[1]
        assert competition["active_competition"] is None and competition["wallet_address"] == OTHER_WALLET
        for channel in ("fills", "order_updates", "liquidation"):
            await c.request({"type": "Subscribe", "channel": channel})
        emu.set_liquidation_stage("liquidating")
        frames = await run(emu, c, 70)
        assert {f["type"] for f in frames} == {"PortfolioUpdate", "CompetitionPnlSummary"}  # the demo's trades are not ours
        assert all(f.get("per_leg", []) == [] for f in frames)


async def test_demo_trades_send_order_fill_position_and_balance() -> None:
    async with emulator() as emu, client(emu, DEMO_ADDRESS) as c:
        for channel in ("order_updates", "fills", "portfolio"):
            await c.request({"type": "Subscribe", "channel": channel})
        await c.request({"type": "Subscribe", "channel": "trades"})
        frames = await run(emu, c, 64)  # 32 s: at least one demo trade
        fills = of(frames, "Fill")
        assert fills, [f["type"] for f in frames]
        fill = fills[0]
        assert list(fill) == ["type", "order_id", "fill_id", "symbol", "side", "price", "size", "timestamp", "wallet_address", "fee", "trade_id",
                              "is_taker", "builder_code_address", "builder_code_fee", "instrument_type"]  # fmt: skip
        assert fill["wallet_address"] == DEMO_ADDRESS and fill["instrument_type"] == "option" and fill["is_taker"] is True
        at = frames.index(fill)
        opened, filled = frames[at - 1], frames[at + 1]
        assert opened["type"] == filled["type"] == "OrderUpdate" and opened["order_id"] == filled["order_id"] == fill["order_id"]
        assert (opened["status"], opened["filled_size"], filled["status"], filled["filled_size"]) == ("OPEN", "0.0", "FILLED", fill["size"])
        assert opened["request"] == {"price": opened["request"]["price"], "size": fill["size"], "symbol": fill["symbol"], "side": fill["side"].capitalize(), "tif": "gtc"}
        assert list(opened) == ["type", "order_id", "request", "status", "filled_size", "timestamp", "reason", "wallet_address", "instrument_type"]
        public = [f for f in frames[at + 2 :] if f["type"] == "Trade" and f["timestamp"] == fill["timestamp"] and f["symbol"] == fill["symbol"]]
        assert public and (public[0]["price"], public[0]["size"]) == (fill["price"], fill["size"])
        position, balance = [f for f in frames[at + 2 :] if f["type"] == "PortfolioUpdate"][:2]
        assert position["position"]["symbol"] == fill["symbol"] and list(balance) == ["type", "total_margin_used", "timestamp"]
        status, body = await rest(emu, "/fills", wallet=DEMO_ADDRESS)
        assert status == 200 and body["data"][0] == {k: v for k, v in fills[-1].items() if k != "type"}
        assert body["pagination"] == {"page": 1, "page_size": 100, "total": len(fills)}
        _, orders = await rest(emu, "/orders", wallet=DEMO_ADDRESS)
        assert {o["order_id"] for o in orders["data"]} >= {f["order_id"] for f in fills}


async def test_order_updates_and_fills_follow_the_symbols_filter() -> None:
    async with emulator() as emu, client(emu, DEMO_ADDRESS) as c:
        await c.request({"type": "Subscribe", "channel": "fills", "symbols": ["NOPE"]})
        await c.request({"type": "Subscribe", "channel": "order_updates", "symbols": ["NOPE"]})
        assert await run(emu, c, 64) == []
        assert emu._fills  # trades happened, none of them ours to see


async def test_liquidation_stages_from_the_hook() -> None:
    async with emulator() as emu, client(emu, DEMO_ADDRESS) as c:
        assert await c.request({"type": "Subscribe", "channel": "liquidation"}) == [{"type": "Subscribed", "channel": "liquidation"}]
        emu.set_liquidation_stage("warning")
        await emu.advance(100)
        (change,) = await c.sync()
        assert list(change) == ["type", "wallet_address", "previous_state", "new_state", "liquidation_mode", "margin_mode", "equity", "mm_required",
                                "maintenance_margin", "shortfall", "auction_id", "partial_liquidation", "full_liquidation", "timestamp"]  # fmt: skip
        assert (change["previous_state"], change["new_state"], change["auction_id"], change["full_liquidation"]) == ("Normal", "Warning", None, None)
        assert float(change["equity"]) == pytest.approx(1.25 * float(change["mm_required"]), rel=1e-3) and change["shortfall"] == "0.0"
        assert await run(emu, c, 10) == []  # held there
        _, portfolio = await rest(emu, "/portfolio", wallet=DEMO_ADDRESS)
        assert portfolio["margin_summary"]["liquidation_state"] == "Warning"
        emu.set_liquidation_stage("liquidating")
        await emu.advance(100)
        (change,) = await c.sync()
        assert (change["previous_state"], change["new_state"], change["liquidation_mode"]) == ("Warning", "Liquidating", "full")
        assert change["auction_id"] == change["full_liquidation"]["auction_id"] == "auc-1"
        assert float(change["shortfall"]) == pytest.approx(0.2 * float(change["mm_required"]), rel=1e-3)
        assert change["full_liquidation"]["started_at"] == emu.engine.now_ms
        _, portfolio = await rest(emu, "/portfolio", wallet=DEMO_ADDRESS)
        assert portfolio["margin_summary"]["liquidation_state"] == "Liquidating"
        emu.set_liquidation_stage("normal")
        await emu.advance(100)
        assert [(f["new_state"], f["auction_id"]) for f in await c.sync()] == [("Normal", None)]
        with pytest.raises(ValueError):
            emu.set_liquidation_stage("panic")


async def test_liquidation_scenario_walks_the_states() -> None:
    async with emulator(scenario="liquidation") as emu, client(emu, DEMO_ADDRESS) as c:
        await c.request({"type": "Subscribe", "channel": "liquidation"})
        changes = []
        for _ in range(30):
            await emu.advance(1_000)
            changes += [(f["new_state"], emu.engine.now_ms - DEFAULT_START_MS) for f in await c.sync()]
        assert changes == [("Warning", 10_000), ("Liquidating", 25_000)]
    with pytest.raises(ValueError, match="scenario"):
        HypercallEmulator(scenario="crash")


async def test_competition_on_subscribe_and_every_ten_seconds() -> None:
    async with emulator() as emu, client(emu, DEMO_ADDRESS) as c:
        summary = (await c.request({"type": "Subscribe", "channel": "competition"}))[1]
        assert list(summary) == ["type", "wallet_address", "lifetime_realized_pnl", "active_competition", "timestamp"]
        assert list(summary["active_competition"]) == ["competition_id", "competition_name", "competition_state", "rank", "pnl", "volume", "efficiency", "medal"]
        assert isinstance(summary["active_competition"]["rank"], int) and isinstance(summary["lifetime_realized_pnl"], str)
        frames = await run(emu, c, 10, 2_500)
        assert len(of(frames, "CompetitionPnlSummary")) == 2


# --------------------------------------------------------------------------------------------------
# Liveness and slow consumers
# --------------------------------------------------------------------------------------------------


async def raw_socket(server: HypercallEmulator) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake by hand: this client never answers a ping."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /ws HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), 2)
    length = second & 0x7F
    if length >= 126:
        length = int.from_bytes(await reader.readexactly(2 if length == 126 else 8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def test_heartbeat_closes_a_silent_client_with_1008_and_keeps_an_answering_one() -> None:
    async with emulator(ping_interval=0.1, pong_timeout=0.5) as emu, client(emu) as answering:
        answering_since = time.monotonic()
        reader, writer = await raw_socket(emu)
        try:
            started = time.monotonic()
            opcodes = []
            while (frame := await read_frame(reader))[0] == 0x9:  # pings
                opcodes.append(frame[0])
            opcode, payload = frame
            assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1008 and payload[2:] == b"pong timeout"
            assert len(opcodes) >= 2 and 0.4 < time.monotonic() - started < 1.5
        finally:
            writer.close()
        assert time.monotonic() - answering_since > 0.5  # past its own pong timeout
        assert await answering.request({"type": "Subscribe", "channel": "trades"}) == [{"type": "Subscribed", "channel": "trades"}]  # websockets pongs


async def test_slow_consumer_close_reason() -> None:
    async with emulator() as emu, client(emu) as c:
        await c.request({"type": "Subscribe", "channel": "orderbook"})
        await emu.close_slow_consumer()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await c.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert orjson.loads(closed.value.rcvd.reason) == {"error": "slow_consumer", "class": "ordered_public", "cause": "message_age", "recovery": "snapshot_resubscribe"}
        assert closed.value.rcvd.reason == '{"error":"slow_consumer","class":"ordered_public","cause":"message_age","recovery":"snapshot_resubscribe"}'
        assert not emu._subscribers
        with pytest.raises(ValueError):
            await emu.close_slow_consumer("nope")


# --------------------------------------------------------------------------------------------------
# REST
# --------------------------------------------------------------------------------------------------


async def test_rest_markets_orderbook_and_candles() -> None:
    async with emulator() as emu:
        await emu.advance(5_000)
        status, markets = await rest(emu, "/markets")
        assert status == 200 and markets["success"] is True and len(markets["data"]) == 8
        entry = markets["data"][0]
        assert list(entry) == ["underlying", "expiry", "index_price", "atm_vol", "instruments", "total_volume_24h", "total_open_interest", "prev_day_price"]
        instrument = entry["instruments"][0]
        assert list(instrument) == ["instrument_id", "id", "underlying", "strike", "expiry", "option_type", "option_token_address", "mark_iv",
                                    "volume_24h", "open_interest", "updated_at", "status"]  # fmt: skip
        assert instrument["id"] == "BTC-20250616-87500-C" and instrument["strike"] == "87500" and instrument["status"] == "active"
        names = [i["id"] for m in markets["data"] for i in m["instruments"]]
        assert names == list(emu.instruments) and any(n.startswith("ETH-20250725-") and n.endswith("00-P") for n in names)
        status, book = await rest(emu, "/orderbook", instrument_id=instrument["id"], depth=5)
        assert status == 200 and list(book) == ["jsonrpc", "result", "testnet", "usIn", "usOut", "usDiff"]
        result = book["result"]
        assert result["instrument_name"] == instrument["id"] and len(result["asks"]) == 5
        assert all(isinstance(p, float) and isinstance(s, float) for p, s in result["bids"] + result["asks"])
        assert result["best_ask_price"] == result["asks"][0][0] and result["state"] == "open" and isinstance(result["change_id"], int)
        assert list(result["stats"]) == ["high", "low", "price_change", "volume", "volume_usd"] and list(result["greeks"]) == ["delta", "gamma", "theta", "vega"]
        assert (await rest(emu, "/orderbook", instrument_id=instrument["instrument_id"]))[1]["result"]["instrument_name"] == instrument["id"]
        status, candles = await rest(emu, "/candles", underlying="ETH", resolution="1h", limit=24)
        assert status == 200 and len(candles["data"]) == 24 and "type" not in candles["data"][0]
        assert [c["open_time"] for c in candles["data"]] == sorted(c["open_time"] for c in candles["data"])
        errors = [
            ("/orderbook", {"instrument_id": "BTC-20990101-1-C"}, 404, "Instrument not found"),
            ("/orderbook", {}, 400, "Missing instrument_id"),
            ("/orderbook", {"instrument_id": instrument["id"], "depth": "x"}, 400, "Invalid depth"),
            ("/candles", {"underlying": "SOL", "resolution": "1m"}, 400, "Invalid underlying"),
            ("/candles", {"underlying": "BTC", "resolution": "2m"}, 400, "Invalid resolution"),
            ("/portfolio", {"wallet": "0x12"}, 400, "Invalid wallet address"),
            ("/portfolio/greeks", {}, 400, "Invalid wallet address"),
            ("/orders", {"wallet": DEMO_ADDRESS, "status": "weird"}, 400, "Invalid status"),
        ]
        for path, params, code, message in errors:
            assert await rest(emu, path, **params) == (code, {"success": False, "data": None, "error": message}), (path, params)


async def test_rest_account_endpoints() -> None:
    async with emulator() as emu:
        status, portfolio = await rest(emu, "/portfolio", wallet=DEMO_ADDRESS.upper().replace("0X", "0x"))
        assert status == 200 and portfolio["wallet_address"] == DEMO_ADDRESS
        assert list(portfolio) == ["wallet_address", "positions", "total_margin_used", "available_balance", "withdrawable_usdc",
                                   "portfolio_snapshot_timestamp_ms", "span_margin", "margin_mode", "margin_summary"]  # fmt: skip
        assert len(portfolio["positions"]) == 4 and portfolio["margin_summary"]["liquidation_state"] == "Normal"
        assert float(portfolio["span_margin"]["open_orders_initial_margin"]) > 0  # the resting order
        status, empty = await rest(emu, "/portfolio", wallet=OTHER_WALLET)
        assert empty["positions"] == [] and empty["margin_summary"]["equity"] == "0.0"
        _, greeks = await rest(emu, "/portfolio/greeks", wallet=DEMO_ADDRESS)
        assert list(greeks) == ["wallet_address", "per_leg", "aggregate"] and len(greeks["per_leg"]) == 4
        assert await rest(emu, "/portfolio/greeks", wallet=OTHER_WALLET) == (200, {"wallet_address": OTHER_WALLET, "per_leg": [], "aggregate": None})
        _, orders = await rest(emu, "/orders", wallet=DEMO_ADDRESS, status="open")
        (order,) = orders["data"]
        assert order["status"] == "OPEN" and orders["pagination"] == {"page": 1, "page_size": 100, "total": 1}
        assert (await rest(emu, "/orders", wallet=OTHER_WALLET))[1]["data"] == []
        assert (await rest(emu, "/fills", wallet=DEMO_ADDRESS))[1]["data"] == []


async def test_rest_rate_limit_answers_429() -> None:
    async with emulator(rest_rate_limit=3) as emu:
        for _ in range(3):
            assert (await rest(emu, "/markets"))[0] == 200
        async with aiohttp.ClientSession() as session, session.get(emu.http_url + "/fills?wallet=" + DEMO_ADDRESS) as response:
            assert response.status == 429 and 1 <= int(response.headers["Retry-After"]) <= 60


# --------------------------------------------------------------------------------------------------
# Shared fault controls, book faults, flood
# --------------------------------------------------------------------------------------------------


async def test_stall_and_ignored_requests_in_its_own_messages() -> None:
    """The fault controls every emulator shares are tested once for all (test_sim_fault_controls);
    here what they mean in Hypercall's messages."""
    async with emulator() as emu:
        async with client(emu) as c:
            emu.stall(True)
            await c.send({"type": "ClockSync", "nonce": 1})
            assert await c.silent(0.2)
            emu.stall(False)
            assert (await c.recv())["type"] == "ClockSynced"
        emu.ignore_requests('"Subscribe"')
        async with client(emu) as c:
            await c.send({"type": "Subscribe", "channel": "trades"})
            assert await c.sync() == []
            emu.ignore_requests(None)
            await c.send({"type": "Subscribe", "channel": "trades"})
            assert (await c.recv())["type"] == "Subscribed"


async def test_book_faults_and_flood() -> None:
    async with emulator() as emu, client(emu) as c:
        name = "BTC-20250616-97500-C"
        await c.request({"type": "Subscribe", "channel": "orderbook", "symbols": [name]})

        async def pushes(steps: int) -> list[Any]:
            frames = []
            for _ in range(steps):
                inst = emu.instruments[name]
                inst.version += 1  # force a change every push
                frames += await run(emu, c, 1)
            return frames

        normal = await pushes(2)
        assert len(normal) == 2
        emu.arm_book_fault(name, "duplicate")
        frames = await pushes(1)
        assert len(frames) == 2 and frames[0] == frames[1]
        emu.arm_book_fault(name, "skip")
        assert await pushes(1) == []
        emu.arm_book_fault(name, "reorder")
        frames = await pushes(1)
        assert frames == []
        frames = await pushes(1)
        assert len(frames) == 2 and frames[0]["timestamp"] >= frames[1]["timestamp"]  # the held, older book last
        emu.arm_book_fault(name, "delta_before_snapshot")
        async with client(emu) as late:
            await late.send({"type": "Subscribe", "channel": "orderbook", "symbols": [name]})
            early, ack = await late.recv(), await late.recv()
            assert early["type"] == "OrderbookUpdate" and ack == {"type": "Subscribed", "channel": "orderbook"}
            assert await emu.flood(name, 40) == 80  # both subscribers
            flooded = [await late.recv() for _ in range(41)][1:]  # after the snapshot
            inst = emu.instruments[name]
            assert len({orjson.dumps(f) for f in flooded}) > 10 and flooded[-1]["asks"][0][1] == f"{inst.asks[0][1] / 10:.1f}"
        with pytest.raises(KeyError):
            await emu.flood("NOPE", 1)


# --------------------------------------------------------------------------------------------------
# Determinism, hostile names, the command
# --------------------------------------------------------------------------------------------------


async def scripted(seed: int) -> list[Any]:
    async with emulator(seed=seed) as emu, client(emu, DEMO_ADDRESS) as c:
        frames: list[Any] = []
        for channel in ("orderbook", "trades", "options_chain", "index_prices", "candles:ETH:1m", "portfolio", "fills", "order_updates", "competition"):
            frames += await c.request({"type": "Subscribe", "channel": channel, **({"symbols": ["ETH"]} if channel == "orderbook" else {})})
        frames += await run(emu, c, 50)
        return frames[:600]


async def test_same_seed_same_frames() -> None:
    first, second, other = await scripted(3), await scripted(3), await scripted(4)
    assert len(first) == 600 and first == second and first != other
    assert {f["type"] for f in first} >= {"OrderbookUpdate", "Trade", "OptionsChainUpdate", "IndexPriceUpdate", "Candle", "PortfolioUpdate", "CompetitionPnlSummary"}


async def test_hostile_names_are_listed_verbatim() -> None:
    async with emulator(hostile_names=True) as emu:
        hostile = [name for name in emu.instruments if not name.startswith(("BTC-", "ETH-"))]
        assert len(hostile) == 6 * len(HOSTILE_NAMES)
        assert {name.rsplit("-", 3)[0] for name in hostile} == set(HOSTILE_NAMES)
        name = next(n for n in hostile if n.startswith(HOSTILE_NAMES[0]))  # "[link=https://evil.example]x[/link]": a ":" inside
        async with client(emu) as c:
            assert (await c.request({"type": "Subscribe", "channel": f"candles:{HOSTILE_NAMES[0]}:1m"}))[1]["underlying"] == HOSTILE_NAMES[0]
            frames = await c.request({"type": "Subscribe", "channel": "orderbook", "symbols": [name]})
            assert frames[1]["symbol"] == name
        assert (await rest(emu, "/orderbook", instrument_id=name))[1]["result"]["instrument_name"] == name


async def test_runner_passes_the_scenario_only_where_declared(capsys: pytest.CaptureFixture[str]) -> None:
    servers = await start_emulators(["polymarket", "hypercall"], seed=2, autostep=False, scenario="liquidation")
    try:
        assert [getattr(server, "scenario", None) for server in servers] == [None, "liquidation"]
        assert servers[1].demo_credentials() == {"wallet": DEMO_ADDRESS}
    finally:
        for server in servers:
            await server.stop()
    assert sim_main(["--venues", "aster", "--scenario", "liquidation"]) == 2
    assert "hypercall" in capsys.readouterr().err
