"""Perpex emulator: REST under ``/api/v1`` (and ``/v1``) and one WebSocket at ``/``, on one port.

Perpex publishes only a one-page overview (endpoints, channel names, JWT Bearer auth, 120 REST
requests a minute per key, 10 subscriptions per socket, a ping frame after 30 s of silence, the
error codes ``INSUFFICIENT_MARGIN``, ``INVALID_SYMBOL``, ``ORDER_NOT_FOUND``); our wire reference
fixes every message shape on top of it, and this module follows that reference. Perpex executes on
Hyperliquid, so the markets are the shared :class:`~app.sim.engine.MarketEngine`'s perps
(``BTC`` -> ``BTC-USD``), the same books and prices the Hyperliquid emulator shows under a seed.

Design decisions beyond the reference ([D]):

* Tokens: HS256 JWTs (:mod:`app.jwt`) signed with a secret derived from the seed. The demo token
  (``demo_credentials()``) has ``{"sub":"demo","iat":<the engine's start>,"exp":4102444800}`` and is
  the same text for a seed; :meth:`PerpexEmulator.issue_token` makes others (a negative ``ttl`` an
  expired one). Expiry is wall-clock time. Subject ``demo`` owns the demo account; any other subject
  gets an empty account (balance 10000 USD) on first use.
* WebSocket auth: a bad ``Authorization`` header refuses the upgrade (HTTP 401, JSON error body); a
  bad ``auth`` message answers ``UNAUTHORIZED`` ("token expired" for an expired one) and leaves the
  socket as it was (unauthenticated, or on its earlier token). When the token of an authenticated
  socket expires, the server sends ``TOKEN_EXPIRED`` (``id`` null), drops its positions
  subscription and treats the socket as unauthenticated.
* Requests: fields other than the channel's own (``op, channel, symbol, depth|interval, id``) are
  ``INVALID_REQUEST`` (``positions`` takes no symbol); ``id`` is echoed whatever its JSON type.
  Checks in this order: JSON, op, channel, fields, symbol (``INVALID_SYMBOL``), depth/interval,
  auth, limit. A subscription is (channel, symbol[, interval]); re-subscribing an active one is
  acked and changes nothing (its depth stays: unsubscribe to change it). Acks echo ``depth`` and
  ``interval`` when the request had them. ``RATE_LIMITED`` is not sent: over 20 frames a second
  (any frame, pongs included) the socket is closed with 4029 at once.
* Streams: every stream's ``seq`` starts at 1 with its snapshot. Orderbook deltas every 100 ms of
  virtual time, only levels whose size changed within the subscriber's top ``depth`` (a level
  leaving the top ``depth`` is sent as ``"0"``), best first. Trades: the last 50 on subscribe, then
  each engine step's trades; ids ``t-<tid>``. Candles: the newest 100 bars (``closed`` true for
  finished ones), then the forming bar when it changed at most once a second, and a finished bar
  once with ``closed: true``. ``ts`` is the virtual time of the message.
* Book faults name markets by Perpex symbol and act on one 100 ms delta of that symbol, for every
  subscriber: ``skip`` drops it (its ``seq`` is used: a gap), ``duplicate`` sends it twice,
  ``reorder`` sends it after the next one, ``delta_before_snapshot`` sends an ``update`` with
  ``seq`` 1 (the best level of each side) before the next subscribe's ack and snapshot.
* Margin (cross, per account): leverage 10 (at most the market's maximum), initial margin
  notional / leverage, maintenance margin 0.5 % of notional at the mark price, equity = balance +
  unrealized PnL, ``marginUsed`` = positions' initial margin + open orders' reserved margin,
  ``availableMargin`` = equity - marginUsed, ``marginRatio`` = maintenance / equity (capped at 999;
  0 without positions). A position's ``marginRatio`` is the account's (cross margin); its
  ``liquidationPrice`` is the mark at which the account ratio reaches 1 with the other marks held
  (null when no positive price does). Fees are Hyperliquid's (taker 0.045 %, maker 0.015 %), the
  accounting is the engine's :class:`~app.sim.engine.DemoAccount`.
* The demo account: balance 10000 USD, long 0.5 BTC-USD and short 10 ETH-USD at entries within
  2 % of the start price, and 120 past trades over the last two days (prices from the engine's
  candles; a history to page through, not the positions' origin).
* Orders: ``size``/``price``/``triggerPrice`` are positive decimals (strings or numbers) on the
  market's step and tick; ``price`` only on limit orders, ``triggerPrice`` only (and always) on
  stop orders (stop-market, triggered by the mark price). Market orders and marketable limits take
  the engine's visible book level by level without consuming it (the engine's makers are the
  venue's; a user's order is too small to move them): one trade per level. Resting limits fill
  whole at their price, as maker, when the opposite best price reaches them. ``reduceOnly`` must
  reduce the position. The margin an order needs is its increase of the position's notional /
  leverage. The order object adds ``triggerPrice`` and ``reduceOnly``; a market order's ``price``
  is its average fill price. Order ids ``o-<n>``, trade ids ``f-<n>``; orders are per subject.
* Positions channel: snapshot, then ``position_update`` on a fill at once and on mark moves at most
  once a second per position; ``liquidation_warning`` per position when the account ratio crosses
  0.8 upward and every 10 s while it stays there; at 1.0 every position is closed through the book
  (``liquidated`` with its size and average price, then ``position_update`` with size "0").
* ``set_liquidation_stage("normal"|"warning"|"liquidating")`` (demo account) pins the account ratio
  at 0.04 / 0.85 / 1.05 by moving the balance, at every step from the next on; the ``liquidation``
  scenario pins normal for 10 s of virtual time, warning until 25 s, then liquidating.
* REST: a rolling window of ``rest_rate_limit`` requests per ``rest_rate_window`` seconds (120 per
  60 s) per key: the token's subject, or the client address when there is no valid token; the 121st
  gets 429 with ``Retry-After`` (whole seconds, at least 1); refused requests do not count.
  :attr:`PerpexEmulator.rest_requests` counts served and rejected requests per key. ``depth`` is one
  of 5, 10, 20, 50 on REST too. The REST book's ``seq`` counts that market's book changes in the
  emulator (engine steps that changed its top 50 levels): it orders REST snapshots, it is no
  socket's ``seq``. Trades history: newest first, ``limit`` 1..100 (50), ``cursor`` opaque.
* Liveness: the server pings after ``ping_after`` (30 s) without any frame from the client and
  closes with 4000 ``heartbeat timeout`` when that ping has no pong within ``pong_timeout`` (10 s).
  No server-silence close (``idle_timeout`` infinite). ``{"op":"ping"}`` -> ``{"op":"pong","ts"}``.

Determinism: the engine, the demo account and every id come from the seed; cadences run on the
virtual clock; nothing drawn depends on who is subscribed or on orders placed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import orjson
from aiohttp import WSMsgType, web

from app.jwt import TokenError, sign, verify
from app.sim.engine import DEFAULT_ASSETS, HOSTILE_ASSETS, AssetSpec, Bar, DemoAccount, StepEvents, Trade, bucket_start, format_decimal, format_fixed
from app.sim.server import EmulatorServer, LiquidationScript, RollingLimit, WsConnection

__all__ = ["CHANNELS", "DEPTHS", "INTERVALS", "STAGES", "PerpexEmulator"]

CHANNELS: tuple[str, ...] = ("orderbook", "trades", "candles", "positions")
DEPTHS: tuple[int, ...] = (5, 10, 20, 50)
INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
#: Account margin ratio the liquidation stages pin (maintenance / equity).
STAGES: dict[str, float] = {"normal": 0.04, "warning": 0.85, "liquidating": 1.05}

DEMO_SUBJECT = "demo"
DEMO_EXPIRY = 4_102_444_800  # 2100-01-01
CLOSE_HEARTBEAT = 4000
CLOSE_RATE = 4029
MAX_SUBSCRIPTIONS = 10
DEFAULT_DEPTH = 20
BOOK_INTERVAL_MS = 100
CANDLE_INTERVAL_MS = 1_000
POSITION_INTERVAL_MS = 1_000
WARNING_REPEAT_MS = 10_000
WARNING_RATIO = 0.8
SNAPSHOT_TRADES = 50
SNAPSHOT_CANDLES = 100
START_BALANCE = 10_000.0
LEVERAGE = 10
MAINTENANCE_RATE = 0.005
MAX_RATIO = 999.0
MAX_LEVERAGE = {"BTC": 50, "ETH": 50, "SOL": 20, "HYPE": 10}
DEMO_POSITIONS: tuple[tuple[str, float], ...] = (("BTC", 0.5), ("ETH", -10.0))
HISTORY_TRADES = 120
TRADES_PAGE = 50
TRADES_PAGE_MAX = 100
BATCH_MAX = 10
_FIELDS = {
    "orderbook": frozenset(("op", "channel", "symbol", "depth", "id")),
    "trades": frozenset(("op", "channel", "symbol", "id")),
    "candles": frozenset(("op", "channel", "symbol", "interval", "id")),
    "positions": frozenset(("op", "channel", "id")),
}
_ORDER_FIELDS = frozenset(("symbol", "side", "type", "size", "price", "triggerPrice", "reduceOnly", "clientOrderId"))
_CLAIMS = web.RequestKey("perpex_claims", dict)  # a verified upgrade header's claims, for on_ws_open


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Sub:
    """One stream of one socket: its key, its ``seq`` and what the client was last sent."""

    channel: str
    symbol: str  # "" for positions
    interval: str = ""
    depth: int = DEFAULT_DEPTH
    seq: int = 0
    view: tuple[dict[int, int], dict[int, int]] = ({}, {})  # orderbook: the client's top-N
    held: bytes | None = None  # orderbook: a delta kept back by the reorder fault
    bar_open: int | None = None  # candles: the forming bar's open time
    bar_sent: tuple[int, ...] | None = None
    bar_pushed: int = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return self.channel, self.symbol, self.interval


@dataclass(eq=False, slots=True)
class _Order:
    id: str
    client_id: str | None
    symbol: str
    side: str
    type: str
    lots: int
    price: int | None  # ticks (limit)
    trigger: int | None  # ticks (stop)
    reduce_only: bool
    ts: int
    reserved: float = 0.0  # margin held while open
    filled_lots: int = 0
    status: str = "open"
    avg_px: float | None = None


@dataclass(eq=False, slots=True)
class _Account:
    """One subject's cross-margin account; positions and cash are the engine's DemoAccount model."""

    subject: str
    book: DemoAccount
    orders: dict[str, _Order] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    pin: float | None = None  # pinned margin ratio (liquidation stages)
    warned_at: int | None = None
    pushed: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # symbol -> (ms, body)


@dataclass(frozen=True, slots=True)
class _Figures:
    """An account's margin at the current marks."""

    balance: float
    equity: float
    used: float
    maintenance: float
    ratio: float
    marks: dict[str, float]


class _WsError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return format_decimal(value, 2)


def _ratio(value: float) -> str:
    return format_decimal(value, 4)


def _error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message}})


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=_error_body(code, message), content_type="application/json", headers=headers)


def _price_of(body: dict[str, Any], name: str, kind: str, owner: str, spec: AssetSpec) -> int | None:
    """The price field ``name`` that orders of type ``owner`` need and no other type may carry, in
    ticks (``None`` on the others)."""
    value = body.get(name)
    if kind != owner:
        if value is not None:
            raise _ApiError(400, "INVALID_REQUEST", f"{name} is only for {owner} orders")
        return None
    if value is None:
        raise _ApiError(400, "INVALID_REQUEST", f"missing field: {name} ({owner} orders)")
    return _units(value, spec.px_decimals, name)


def _units(value: Any, decimals: int, name: str) -> int:
    """A positive decimal (string or number) as a whole count of ``10**-decimals``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or len(str(value)) > 40:
        raise _ApiError(400, "INVALID_REQUEST", f"{name} must be a positive decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _ApiError(400, "INVALID_REQUEST", f"{name} must be a positive decimal string") from None
    if not number.is_finite() or number <= 0:
        raise _ApiError(400, "INVALID_REQUEST", f"{name} must be a positive decimal string")
    scaled = number.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise _ApiError(400, "INVALID_REQUEST", f"{name} must be a multiple of {format_fixed(1, decimals)}")
    return int(scaled)


def _cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"perpex:{seq}".encode()).decode().rstrip("=")


def _cursor_seq(text: str) -> int:
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        prefix, _, number = decoded.partition(":")
        if prefix == "perpex" and number.isdigit() and len(number) < 12:
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise _ApiError(400, "INVALID_REQUEST", "invalid cursor")


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


class PerpexEmulator(EmulatorServer):
    """The Perpex venue (see the module docstring)."""

    venue: ClassVar[str] = "perpex"
    ws_path: ClassVar[str] = "/"
    extra_ws_routes: ClassVar[tuple[str, ...]] = ("/ws",)
    scenarios: ClassVar[tuple[str, ...]] = ("liquidation",)

    def __init__(
        self,
        *,
        ping_after: float = 30.0,
        pong_timeout: float = 10.0,
        max_messages_per_s: int = 20,
        rest_rate_limit: int = 120,
        rest_rate_window: float = 60.0,
        scenario: str | None = None,
        idle_timeout: float = math.inf,
        hostile_names: bool = False,
        **kwargs: Any,
    ) -> None:
        if scenario is not None and scenario not in self.scenarios:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(self.scenarios)})")
        if "engine" not in kwargs and "assets" not in kwargs:
            hostile = HOSTILE_ASSETS if hostile_names else ()  # ``perpterm sim --hostile-names``
            kwargs["assets"] = tuple(spec for spec in (*DEFAULT_ASSETS, *hostile) if spec.kind == "perp")
        super().__init__(idle_timeout=idle_timeout, **kwargs)
        self.ping_after = ping_after
        self.pong_timeout = pong_timeout
        self.max_messages_per_s = max_messages_per_s
        self.rest_rate_limit = rest_rate_limit
        self.rest_rate_window = rest_rate_window
        self.scenario = scenario
        #: Per REST rate-limit key: {"served": n, "rejected": n}.
        self.rest_requests: dict[str, dict[str, int]] = {}
        self._rest_windows: dict[str, RollingLimit] = {}
        self._secret = hashlib.sha256(f"perpex:{self.seed}:jwt".encode()).digest()
        self._demo_token = sign({"sub": DEMO_SUBJECT, "iat": self.engine.start_ms // 1000, "exp": DEMO_EXPIRY}, self._secret)
        #: Perpex symbol -> engine asset (perps only).
        self.markets: dict[str, AssetSpec] = {f"{spec.base}-USD": spec for spec in self.engine.specs.values() if spec.kind == "perp"}
        if not self.markets:
            raise ValueError("the Perpex emulator needs perps in the engine")
        ids = random.Random(f"{self.seed}:perpex:ids")
        self._order_ids = itertools.count(ids.randrange(10**6, 10**7))
        self._fill_ids = itertools.count(ids.randrange(10**7, 10**8))
        self._book_seq = dict.fromkeys(self.markets, 1)
        self._book_state: dict[str, Any] = {symbol: self._top(symbol, max(DEPTHS)) for symbol in self.markets}
        self._book_pushed = self.engine.now_ms
        self._subscribers: dict[tuple[str, str, str], dict[WsConnection, _Sub]] = {}
        self._script = LiquidationScript(self.engine.now_ms) if scenario == "liquidation" else None
        self.accounts: dict[str, _Account] = {}
        self._open_demo_account(random.Random(f"{self.seed}:perpex:demo"))

    # -- credentials -----------------------------------------------------------------------------

    def demo_credentials(self) -> dict[str, str]:
        return {"token": self._demo_token}

    def demo_connect(self) -> dict[str, Any]:
        return {"uri": self.ws_url, "additional_headers": {"Authorization": f"Bearer {self._demo_token}"}}

    def issue_token(self, subject: str = DEMO_SUBJECT, ttl: float = 1800.0) -> str:
        """A token for ``subject`` expiring ``ttl`` wall-clock seconds from now (negative: expired)."""
        now = time.time()
        return sign({"sub": subject, "iat": int(now), "exp": now + ttl}, self._secret)

    def _claims(self, token: str) -> dict[str, Any]:
        """Verified claims with a string ``sub`` (raises :class:`TokenError` saying why not)."""
        claims = verify(token, self._secret, time.time())
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise TokenError("token has no subject")
        return claims

    def _bearer(self, header: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """The claims of an ``Authorization: Bearer`` header, or why there are none."""
        if not header:
            return None, "missing token"
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "invalid token"
        try:
            return self._claims(token.strip()), None
        except TokenError as error:
            return None, "token expired" if str(error) == "token expired" else "invalid token"

    # -- accounts --------------------------------------------------------------------------------

    def account(self, subject: str) -> _Account:
        """The account of ``subject`` (an empty one is opened for a subject seen the first time)."""
        account = self.accounts.get(subject)
        if account is None:
            account = self.accounts[subject] = _Account(subject, DemoAccount(self.engine.specs))
        return account

    def _open_demo_account(self, rng: random.Random) -> None:
        account = self.account(DEMO_SUBJECT)
        by_coin = {spec.symbol: symbol for symbol, spec in self.markets.items()}
        for coin, size in DEMO_POSITIONS:
            if coin in by_coin:
                spec = self.engine.spec(coin)
                position = account.book.positions[coin]
                position.size = round(size / spec.lot)
                position.entry_px = round(self.engine.mark_px(coin) * (1 + rng.uniform(-0.02, 0.02)), spec.px_decimals)
        now = self.engine.now_ms
        symbols = list(self.markets)
        for index in range(HISTORY_TRADES):
            symbol = symbols[rng.randrange(len(symbols))]
            spec = self.markets[symbol]
            t = now - (HISTORY_TRADES - index) * 24 * 60_000 + rng.randrange(60_000)
            bars = self.engine.candles(spec.symbol, "5m", t, t, 1)
            px = bars[-1].c if bars else round(spec.initial_px / spec.tick)
            lots = max(1, round(rng.uniform(300, 3_000) / spec.px(px) / spec.lot))
            taker = rng.random() < 0.6
            fee = spec.px(px) * spec.sz(lots) * (0.00045 if taker else 0.00015)
            order_id = f"o-{next(self._order_ids)}"
            self._record_trade(account, symbol, rng.choice(("buy", "sell")), px, lots, fee, taker, order_id, t)

    def _record_trade(self, account: _Account, symbol: str, side: str, px: int, lots: int, fee: float, taker: bool, order_id: str, t: int) -> None:
        spec = self.markets[symbol]
        account.trades.append({
            "id": f"f-{next(self._fill_ids)}", "orderId": order_id, "symbol": symbol, "side": side, "price": spec.px_str(px),
            "size": spec.sz_str(lots), "fee": format_decimal(fee, 6), "liquidity": "taker" if taker else "maker", "ts": t,
        })  # fmt: skip

    def _figures(self, account: _Account) -> _Figures:
        book = account.book
        balance = START_BALANCE + book.transfers + book.realized_pnl
        unrealized = used = maintenance = 0.0
        marks: dict[str, float] = {}
        for symbol, spec in self.markets.items():
            position = book.positions[spec.symbol]
            if position.size:
                mark = marks[symbol] = self.engine.mark_px(spec.symbol)
                size = spec.sz(position.size)
                unrealized += size * (mark - position.entry_px)
                used += abs(size) * mark / self._leverage(spec)
                maintenance += abs(size) * mark * MAINTENANCE_RATE
        used += sum(order.reserved for order in account.orders.values() if order.status == "open")
        equity = balance + unrealized
        ratio = 0.0 if maintenance == 0 else MAX_RATIO if equity <= 0 else min(MAX_RATIO, maintenance / equity)
        return _Figures(balance, equity, used, maintenance, ratio, marks)

    @staticmethod
    def _leverage(spec: AssetSpec) -> int:
        return min(LEVERAGE, MAX_LEVERAGE.get(spec.symbol, LEVERAGE))

    def _account_json(self, figures: _Figures) -> dict[str, str]:
        return {
            "balance": _usd(figures.balance), "equity": _usd(figures.equity), "availableMargin": _usd(figures.equity - figures.used),
            "marginUsed": _usd(figures.used), "maintenanceMargin": _usd(figures.maintenance), "marginRatio": _ratio(figures.ratio),
        }  # fmt: skip

    def _liquidation_price(self, account: _Account, symbol: str, figures: _Figures) -> float | None:
        """The mark of ``symbol`` at which the account ratio reaches 1, the other marks held."""
        spec = self.markets[symbol]
        position = account.book.positions[spec.symbol]
        q, mark = spec.sz(position.size), figures.marks[symbol]
        others = figures.maintenance - abs(q) * mark * MAINTENANCE_RATE
        price = (others - figures.equity + q * mark) / (q - MAINTENANCE_RATE * abs(q))
        return price if price > 0 else None

    def _position_json(self, account: _Account, symbol: str, figures: _Figures) -> dict[str, Any]:
        spec = self.markets[symbol]
        position = account.book.positions[spec.symbol]
        size, mark = spec.sz(position.size), figures.marks[symbol]
        liquidation = self._liquidation_price(account, symbol, figures)
        return {
            "symbol": symbol, "side": "long" if size > 0 else "short", "size": spec.sz_str(abs(position.size)),
            "entryPrice": format_decimal(position.entry_px, spec.px_decimals + 2), "markPrice": format_decimal(mark, spec.px_decimals),
            "unrealizedPnl": _usd(size * (mark - position.entry_px)), "leverage": str(self._leverage(spec)),
            "margin": _usd(abs(size) * mark / self._leverage(spec)),
            "liquidationPrice": None if liquidation is None else format_decimal(liquidation, spec.px_decimals + 1),
            "marginRatio": _ratio(figures.ratio), "maintenanceMargin": _usd(abs(size) * mark * MAINTENANCE_RATE),
        }  # fmt: skip

    def _closed_position_json(self, symbol: str, side: str, figures: _Figures) -> dict[str, Any]:
        spec = self.markets[symbol]
        return {
            "symbol": symbol, "side": side, "size": "0", "entryPrice": "0", "markPrice": format_decimal(self.engine.mark_px(spec.symbol), spec.px_decimals),
            "unrealizedPnl": "0.0", "leverage": str(self._leverage(spec)), "margin": "0.0", "liquidationPrice": None,
            "marginRatio": _ratio(figures.ratio), "maintenanceMargin": "0.0",
        }  # fmt: skip

    def _open_symbols(self, account: _Account) -> list[str]:
        return [symbol for symbol, spec in self.markets.items() if account.book.positions[spec.symbol].size]

    def set_liquidation_stage(self, stage: str) -> None:
        """Pin the demo account's margin ratio at the stage's value (:data:`STAGES`) by moving its
        balance, from the next step on: ``liquidating`` (1.05) liquidates it at that step."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
        self.account(DEMO_SUBJECT).pin = STAGES[stage]

    # -- trading ---------------------------------------------------------------------------------

    def _take(self, spec: AssetSpec, side: str, lots: int, limit: int | None) -> list[tuple[int, int]]:
        """Fills ``(px, lots)`` of a taker order against the visible book, up to ``limit`` ticks."""
        bids, asks = self.engine.levels(spec.symbol)
        fills: list[tuple[int, int]] = []
        left = lots
        for px, size, _ in asks if side == "buy" else bids:
            if left == 0 or (limit is not None and (px > limit if side == "buy" else px < limit)):
                break
            take = min(left, size)
            fills.append((px, take))
            left -= take
        if left and limit is None:  # deeper than the book: the rest at its last price
            levels = asks if side == "buy" else bids
            fills.append((levels[-1][0] if levels else round(self.engine.mark_px(spec.symbol) / spec.tick), left))
        return fills

    def _fill(self, account: _Account, order: _Order, fills: list[tuple[int, int]], taker: bool) -> None:
        """Book fills of ``order`` into the account: position, balance, trades."""
        spec = self.markets[order.symbol]
        now = self.engine.now_ms
        for px, lots in fills:
            fill = account.book.apply(spec.symbol, order.side, px, lots, now, "", 0, taker, next(self._fill_ids))
            self._record_trade(account, order.symbol, order.side, px, lots, fill.fee, taker, order.id, now)
            order.avg_px = ((order.avg_px or 0.0) * order.filled_lots + spec.px(px) * lots) / (order.filled_lots + lots)
            order.filled_lots += lots
        if order.filled_lots >= order.lots:
            order.status, order.reserved = "filled", 0.0

    def _margin_needed(self, account: _Account, spec: AssetSpec, side: str, lots: int, price: float) -> float:
        """The initial margin an order's increase of the position's size needs."""
        current = account.book.positions[spec.symbol].size
        after = current + (lots if side == "buy" else -lots)
        return max(0, abs(after) - abs(current)) * spec.lot * price / self._leverage(spec)

    def _order_json(self, order: _Order) -> dict[str, Any]:
        spec = self.markets[order.symbol]
        if order.type == "limit":
            price: str | None = spec.px_str(order.price or 0)
        else:
            price = None if order.avg_px is None else format_decimal(order.avg_px, spec.px_decimals + 2)
        return {
            "id": order.id, "clientOrderId": order.client_id, "symbol": order.symbol, "side": order.side, "type": order.type,
            "size": spec.sz_str(order.lots), "price": price, "filledSize": spec.sz_str(order.filled_lots), "status": order.status,
            "ts": order.ts, "triggerPrice": None if order.trigger is None else spec.px_str(order.trigger), "reduceOnly": order.reduce_only,
        }  # fmt: skip

    def _parse_order(self, body: Any) -> _Order:
        if not isinstance(body, dict):
            raise _ApiError(400, "INVALID_REQUEST", "order must be a JSON object")
        unknown = sorted(set(body) - _ORDER_FIELDS)
        if unknown:
            raise _ApiError(400, "INVALID_REQUEST", f"unknown field: {unknown[0][:64]}")
        for name in ("symbol", "side", "type", "size"):
            if name not in body:
                raise _ApiError(400, "INVALID_REQUEST", f"missing field: {name}")
        symbol = body["symbol"]
        if not isinstance(symbol, str):
            raise _ApiError(400, "INVALID_REQUEST", "symbol must be a string")
        spec = self.markets.get(symbol)
        if spec is None:
            raise _ApiError(404, "INVALID_SYMBOL", f"Unknown symbol: {symbol[:64]}")
        side, kind = body["side"], body["type"]
        if side not in ("buy", "sell"):
            raise _ApiError(400, "INVALID_REQUEST", 'side must be "buy" or "sell"')
        if kind not in ("limit", "market", "stop"):
            raise _ApiError(400, "INVALID_REQUEST", 'type must be "limit", "market" or "stop"')
        lots = _units(body["size"], spec.sz_decimals, "size")
        price = _price_of(body, "price", kind, "limit", spec)
        trigger = _price_of(body, "triggerPrice", kind, "stop", spec)
        reduce_only = body.get("reduceOnly", False)
        if not isinstance(reduce_only, bool):
            raise _ApiError(400, "INVALID_REQUEST", "reduceOnly must be a boolean")
        client_id = body.get("clientOrderId")
        if client_id is not None and (not isinstance(client_id, str) or not 0 < len(client_id) <= 64):
            raise _ApiError(400, "INVALID_REQUEST", "clientOrderId must be a string of 1 to 64 characters")
        return _Order(f"o-{next(self._order_ids)}", client_id, symbol, side, kind, lots, price, trigger, reduce_only, self.engine.now_ms)

    async def place(self, account: _Account, body: Any) -> _Order:
        """Validate, margin-check and execute one order (REST ``POST /orders``)."""
        order = self._parse_order(body)
        spec = self.markets[order.symbol]
        current = account.book.positions[spec.symbol].size
        if order.reduce_only and (current == 0 or (current > 0) == (order.side == "buy") or order.lots > abs(current)):
            raise _ApiError(400, "INVALID_REQUEST", "reduceOnly order would increase the position")
        estimate = spec.px(order.price) if order.price is not None else self.engine.mark_px(spec.symbol)
        needed = self._margin_needed(account, spec, order.side, order.lots, estimate)
        figures = self._figures(account)
        if needed > figures.equity - figures.used:
            raise _ApiError(400, "INSUFFICIENT_MARGIN", "Insufficient margin for order")
        account.orders[order.id] = order
        if order.type == "stop":
            order.reserved = needed
            return order
        fills = self._take(spec, order.side, order.lots, order.price)
        if fills:
            self._fill(account, order, fills, taker=True)
            await self._push_position(account, order.symbol)
        if order.status == "open":
            if order.type == "market":  # only a limit can rest
                order.status = "filled"
            else:
                order.reserved = self._margin_needed(account, spec, order.side, order.lots - order.filled_lots, estimate)
        return order

    def cancel(self, account: _Account, order_id: str) -> _Order:
        order = account.orders.get(order_id)
        if order is None or order.status != "open":
            raise _ApiError(404, "ORDER_NOT_FOUND", f"Order not found: {order_id[:64]}")
        order.status, order.reserved = "canceled", 0.0
        return order

    async def _work_orders(self, account: _Account) -> None:
        """Fill resting limits the book reached (maker, at their price) and trigger stops (mark)."""
        for order in [order for order in account.orders.values() if order.status == "open"]:
            spec = self.markets[order.symbol]
            bid, ask = self.engine.bbo(spec.symbol)
            if order.type == "limit":
                assert order.price is not None
                reached = ask is not None and ask[0] <= order.price if order.side == "buy" else bid is not None and bid[0] >= order.price
                if reached:
                    self._fill(account, order, [(order.price, order.lots - order.filled_lots)], taker=False)
                    await self._push_position(account, order.symbol)
            else:
                assert order.trigger is not None
                mark = self.engine.mark_px(spec.symbol)
                if mark >= spec.px(order.trigger) if order.side == "buy" else mark <= spec.px(order.trigger):
                    self._fill(account, order, self._take(spec, order.side, order.lots, None), taker=True)
                    await self._push_position(account, order.symbol)

    # -- REST ------------------------------------------------------------------------------------

    def http_routes(self) -> list[web.RouteDef]:
        routes: list[web.RouteDef] = []
        for prefix in ("/api/v1", "/v1"):
            routes += [
                web.get(f"{prefix}/markets", self._rest(self._rest_markets, private=False)),
                web.get(prefix + "/orderbook/{symbol}", self._rest(self._rest_orderbook, private=False)),
                web.get(f"{prefix}/account", self._rest(self._rest_account)),
                web.get(f"{prefix}/trades", self._rest(self._rest_trades)),
                web.post(f"{prefix}/orders", self._rest(self._rest_order)),
                web.post(f"{prefix}/orders/batch", self._rest(self._rest_batch)),
                web.delete(prefix + "/orders/{id}", self._rest(self._rest_cancel)),
                web.route("*", prefix + "/{tail:.*}", self._rest(self._rest_not_found, private=False)),
            ]
        return routes

    def _rest(self, handler: Callable[[web.Request, _Account | None], Awaitable[Any]], *, private: bool = True) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Rate limit, auth and the error shape around one endpoint."""

        async def serve(request: web.Request) -> web.Response:
            claims, why = self._bearer(request.headers.get("Authorization"))
            key = claims["sub"] if claims is not None else f"ip:{request.remote}"
            counts = self.rest_requests.setdefault(key, {"served": 0, "rejected": 0})
            window = self._rest_windows.setdefault(key, RollingLimit(self.rest_rate_limit, self.rest_rate_window))
            wait = window.admit()
            if wait:
                counts["rejected"] += 1
                per = "minute" if self.rest_rate_window == 60 else f"{self.rest_rate_window:g} s"
                message = f"Rate limit exceeded: {self.rest_rate_limit} requests per {per}"
                return _error_response(429, "RATE_LIMITED", message, {"Retry-After": str(max(1, math.ceil(wait)))})
            counts["served"] += 1
            if private and claims is None:
                return _error_response(401, "UNAUTHORIZED", why or "invalid token")
            account = self.account(claims["sub"]) if private and claims is not None else None
            try:
                body = await handler(request, account)
            except _ApiError as error:
                return _error_response(error.status, error.code, error.message)
            return web.Response(body=orjson.dumps(body), content_type="application/json")

        return serve

    async def _json_body(self, request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise _ApiError(400, "INVALID_REQUEST", "body must be JSON") from None

    async def _rest_not_found(self, request: web.Request, account: _Account | None) -> Any:
        raise _ApiError(404, "NOT_FOUND", f"Not found: {request.method} {request.path[:128]}")

    async def _rest_markets(self, request: web.Request, account: _Account | None) -> Any:
        rows = []
        for symbol, spec in self.markets.items():
            ctx = self.engine.context(spec.symbol)
            last = self.engine.recent_trades(spec.symbol, 1)
            last_px = last[-1].px if last else self.engine.current_candle(spec.symbol, "1m").c
            change = (spec.px(last_px) - ctx.prev_day_px) / ctx.prev_day_px * 100 if ctx.prev_day_px else 0.0
            rows.append({
                "symbol": symbol, "baseAsset": spec.base, "quoteAsset": "USD", "tickSize": spec.px_str(1), "stepSize": spec.sz_str(1),
                "maxLeverage": MAX_LEVERAGE.get(spec.symbol, LEVERAGE), "markPrice": format_decimal(ctx.mark_px, spec.px_decimals),
                "indexPrice": format_decimal(ctx.oracle_px, spec.px_decimals + 1), "lastPrice": spec.px_str(last_px),
                "fundingRate": format_decimal(ctx.funding, 8), "openInterest": format_decimal(ctx.open_interest, spec.sz_decimals),
                "volume24h": format_decimal(ctx.day_base_vlm, spec.sz_decimals), "change24hPct": f"{change:.2f}".replace("-0.00", "0.00"),
            })  # fmt: skip
        return {"data": rows}

    def _symbol(self, symbol: str) -> AssetSpec:
        spec = self.markets.get(symbol)
        if spec is None:
            raise _ApiError(404, "INVALID_SYMBOL", f"Unknown symbol: {symbol[:64]}")
        return spec

    async def _rest_orderbook(self, request: web.Request, account: _Account | None) -> Any:
        symbol = request.match_info["symbol"]
        spec = self._symbol(symbol)
        raw = request.query.get("depth", str(DEFAULT_DEPTH))
        if raw not in {str(depth) for depth in DEPTHS}:
            raise _ApiError(400, "INVALID_REQUEST", f"invalid depth: {raw[:16]} (one of {', '.join(map(str, DEPTHS))})")
        bids, asks = self.engine.book(spec.symbol, int(raw))
        return {
            "symbol": symbol, "seq": self._book_seq[symbol], "ts": self.engine.now_ms,
            "bids": [[px, sz] for px, sz, _ in bids], "asks": [[px, sz] for px, sz, _ in asks],
        }  # fmt: skip

    async def _rest_account(self, request: web.Request, account: _Account | None) -> Any:
        assert account is not None
        figures = self._figures(account)
        positions = [self._position_json(account, symbol, figures) for symbol in self._open_symbols(account)]
        return {**self._account_json(figures), "positions": positions}

    async def _rest_trades(self, request: web.Request, account: _Account | None) -> Any:
        assert account is not None
        query = request.query
        symbol = query.get("symbol") or None
        if symbol is not None:
            self._symbol(symbol)
        raw = query.get("limit", str(TRADES_PAGE))
        if not (raw.isascii() and raw.isdigit() and len(raw) < 6 and 1 <= int(raw) <= TRADES_PAGE_MAX):
            raise _ApiError(400, "INVALID_REQUEST", f"invalid limit: {raw[:16]} (1 to {TRADES_PAGE_MAX})")
        limit = int(raw)
        before = _cursor_seq(query["cursor"]) if query.get("cursor") else len(account.trades)
        matching = [index for index in range(min(before, len(account.trades)) - 1, -1, -1)
                    if symbol is None or account.trades[index]["symbol"] == symbol]  # fmt: skip
        page = matching[:limit]
        return {"data": [account.trades[index] for index in page], "nextCursor": _cursor(page[-1]) if len(matching) > limit else None}

    async def _rest_order(self, request: web.Request, account: _Account | None) -> Any:
        assert account is not None
        return {"order": self._order_json(await self.place(account, await self._json_body(request)))}

    async def _rest_batch(self, request: web.Request, account: _Account | None) -> Any:
        assert account is not None
        body = await self._json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("orders"), list) or set(body) != {"orders"}:
            raise _ApiError(400, "INVALID_REQUEST", 'body must be {"orders": [...]}')
        if len(body["orders"]) > BATCH_MAX:
            raise _ApiError(400, "BATCH_TOO_LARGE", f"Maximum {BATCH_MAX} orders per batch")
        results: list[dict[str, Any]] = []
        for item in body["orders"]:
            try:
                results.append({"order": self._order_json(await self.place(account, item))})
            except _ApiError as error:
                results.append({"error": {"code": error.code, "message": error.message}})
        return {"orders": results}

    async def _rest_cancel(self, request: web.Request, account: _Account | None) -> Any:
        assert account is not None
        return {"order": self._order_json(self.cancel(account, request.match_info["id"]))}

    # -- WebSocket: connection -------------------------------------------------------------------

    def check_upgrade(self, request: web.Request) -> web.StreamResponse | tuple[str, ...]:
        """A bad ``Authorization`` header refuses the upgrade with 401; a good one authenticates."""
        header = request.headers.get("Authorization")
        if header is None:
            return ()
        claims, _ = self._bearer(header)
        if claims is None:
            return _error_response(401, "UNAUTHORIZED", "invalid or expired token")
        request[_CLAIMS] = claims
        return ()

    async def on_ws_open(self, conn: WsConnection) -> None:
        conn.state.update(subs={}, subject=None, expiry=None)
        claims = conn.request.get(_CLAIMS)
        if claims is not None:
            self._authenticate(conn, claims)
        conn.heartbeat = self.spawn(self._heartbeat(conn))

    def on_ws_close(self, conn: WsConnection) -> None:
        for sub in list(conn.state.get("subs", {}).values()):
            self._detach(conn, sub)
        expiry = conn.state.get("expiry")
        if expiry is not None:
            expiry.cancel()

    async def on_ws_frame(self, conn: WsConnection, kind: WSMsgType) -> bool:
        return await self.limit_rate(conn, self.max_messages_per_s, CLOSE_RATE, "message rate exceeded")

    async def _heartbeat(self, conn: WsConnection) -> None:
        """A ping frame after ``ping_after`` s without any frame from the client; close 4000 when
        that ping has no pong within ``pong_timeout`` s. (The base's heartbeat pings on a fixed
        cadence whatever the client sends; Perpex pings only a silent client.)"""
        while not conn.closed:
            due = conn.last_received + self.ping_after
            await asyncio.sleep(max(0.0, due - time.monotonic()) + 0.001)
            if conn.closed:
                return
            if self.stalled or time.monotonic() < conn.last_received + self.ping_after:
                await asyncio.sleep(self.tick_interval if self.stalled else 0)
                continue
            pinged = time.monotonic()
            await conn.ping()
            await asyncio.sleep(self.pong_timeout)
            if not conn.closed and not self.stalled and conn.last_pong < pinged:
                await conn.close(CLOSE_HEARTBEAT, "heartbeat timeout")
                return

    def _authenticate(self, conn: WsConnection, claims: dict[str, Any]) -> None:
        conn.state["subject"] = claims["sub"]
        if conn.state["expiry"] is not None:
            conn.state["expiry"].cancel()
        conn.state["expiry"] = self.spawn(self._expire(conn, float(claims["exp"])))

    async def _expire(self, conn: WsConnection, exp: float) -> None:
        """At the token's expiry: ``TOKEN_EXPIRED``, the positions subscription dropped."""
        while (left := exp - time.time()) > 0:
            await asyncio.sleep(min(left, 3_600.0))
        conn.state["subject"] = conn.state["expiry"] = None
        sub = conn.state["subs"].pop(("positions", "", ""), None)
        if sub is not None:
            self._detach(conn, sub)
        await self._send_error(conn, "TOKEN_EXPIRED", "token expired", None)

    # -- WebSocket: requests ---------------------------------------------------------------------

    async def _send_error(self, conn: WsConnection, code: str, message: str, request_id: Any) -> None:
        await conn.send(orjson.dumps({"op": "error", "code": code, "message": message, "id": request_id}))

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        request_id = None
        try:
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _WsError("INVALID_REQUEST", "Malformed message") from None
            if not isinstance(message, dict):
                raise _WsError("INVALID_REQUEST", "Malformed message: expected a JSON object")
            request_id = message.get("id")
            op = message.get("op")
            if op == "ping":
                await conn.send(orjson.dumps({"op": "pong", "ts": self.now_ms()}))
            elif op == "auth":
                await self._auth_message(conn, message, request_id)
            elif op in ("subscribe", "unsubscribe"):
                await self._subscription(conn, op, message, request_id)
            elif op is None:
                raise _WsError("INVALID_REQUEST", "missing field: op")
            else:
                raise _WsError("INVALID_REQUEST", f"unknown op: {str(op)[:64]}")
        except _WsError as error:
            await self._send_error(conn, error.code, error.message, request_id)

    async def _auth_message(self, conn: WsConnection, message: dict[str, Any], request_id: Any) -> None:
        token = message.get("token")
        if not isinstance(token, str):
            raise _WsError("INVALID_REQUEST", "missing field: token")
        try:
            claims = self._claims(token)
        except TokenError as error:
            expired = str(error) == "token expired"
            raise _WsError("UNAUTHORIZED", "token expired" if expired else "invalid or expired token") from None
        self._authenticate(conn, claims)
        await conn.send(orjson.dumps({"op": "auth", "success": True, "id": request_id}))

    def _parse_subscription(self, message: dict[str, Any]) -> tuple[_Sub, dict[str, Any]]:
        """The stream a (un)subscribe names and its ack's fields (module docstring's check order)."""
        channel = message.get("channel")
        if channel is None:
            raise _WsError("INVALID_REQUEST", "missing field: channel")
        if channel not in CHANNELS:
            raise _WsError("INVALID_REQUEST", f"unknown channel: {str(channel)[:64]}")
        unknown = sorted(set(message) - _FIELDS[channel])
        if unknown:
            raise _WsError("INVALID_REQUEST", f"unknown field: {unknown[0][:64]}")
        ack: dict[str, Any] = {"channel": channel}
        if channel == "positions":
            return _Sub(channel, ""), ack
        symbol = message.get("symbol")
        if symbol is None:
            raise _WsError("INVALID_REQUEST", "missing field: symbol")
        if not isinstance(symbol, str) or symbol not in self.markets:
            raise _WsError("INVALID_SYMBOL", f"Unknown symbol: {str(symbol)[:64]}")
        ack["symbol"] = symbol
        sub = _Sub(channel, symbol)
        if channel == "orderbook" and "depth" in message:
            depth = message["depth"]
            if isinstance(depth, bool) or depth not in DEPTHS:
                raise _WsError("INVALID_REQUEST", f"invalid depth: {orjson.dumps(depth).decode()[:16]} (one of {', '.join(map(str, DEPTHS))})")
            sub.depth = ack["depth"] = depth
        if channel == "candles":
            interval = message.get("interval")
            if interval is None:
                raise _WsError("INVALID_REQUEST", "missing field: interval")
            if interval not in INTERVALS:
                raise _WsError("INVALID_REQUEST", f"invalid interval: {str(interval)[:16]} (one of {', '.join(INTERVALS)})")
            sub.interval = ack["interval"] = interval
        return sub, ack

    async def _subscription(self, conn: WsConnection, op: str, message: dict[str, Any], request_id: Any) -> None:
        sub, ack = self._parse_subscription(message)
        subs: dict[tuple[str, str, str], _Sub] = conn.state["subs"]
        if op == "unsubscribe":
            active = subs.pop(sub.key, None)
            if active is not None:
                self._detach(conn, active)
            await conn.send(orjson.dumps({"op": "unsubscribed", **ack, "id": request_id}))
            return
        if sub.channel == "positions" and conn.state["subject"] is None:
            raise _WsError("UNAUTHORIZED", "authentication required")
        if sub.key in subs:
            await conn.send(orjson.dumps({"op": "subscribed", **ack, "id": request_id}))
            return
        if len(subs) >= MAX_SUBSCRIPTIONS:
            raise _WsError("SUBSCRIPTION_LIMIT", f"Maximum {MAX_SUBSCRIPTIONS} subscriptions per connection")
        if sub.channel == "orderbook" and self.take_book_fault(sub.symbol, ("delta_before_snapshot",)):
            bids, asks = self._top(sub.symbol, 1)
            await conn.send(self._envelope("update", sub, 1, {"bids": self._levels(sub.symbol, bids, True), "asks": self._levels(sub.symbol, asks, False)}))
        subs[sub.key] = sub
        self._subscribers.setdefault(sub.key, {})[conn] = sub
        await conn.send(orjson.dumps({"op": "subscribed", **ack, "id": request_id}))
        await self._push(conn, sub, "snapshot", self._snapshot(conn, sub))

    def _detach(self, conn: WsConnection, sub: _Sub) -> None:
        audience = self._subscribers.get(sub.key)
        if audience is not None:
            audience.pop(conn, None)
            if not audience:
                del self._subscribers[sub.key]

    # -- WebSocket: payloads ---------------------------------------------------------------------

    def _envelope(self, op: str, sub: _Sub, seq: int, data: Any) -> bytes:
        head: dict[str, Any] = {"op": op, "channel": sub.channel}
        if sub.channel != "positions":
            head["symbol"] = sub.symbol
        return orjson.dumps({**head, "seq": seq, "ts": self.engine.now_ms, "data": data})

    async def _push(self, conn: WsConnection, sub: _Sub, op: str, data: Any) -> None:
        sub.seq += 1
        await conn.send(self._envelope(op, sub, sub.seq, data))

    def _top(self, symbol: str, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        bids, asks = self.engine.levels(self.markets[symbol].symbol)
        return {px: sz for px, sz, _ in bids[:depth]}, {px: sz for px, sz, _ in asks[:depth]}

    def _levels(self, symbol: str, side: dict[int, int], bids: bool) -> list[list[str]]:
        """``[price, size]`` rows best first (size 0 prints as ``"0"``: a deletion)."""
        spec = self.markets[symbol]
        return [[spec.px_str(px), spec.sz_str(sz) if sz else "0"] for px, sz in sorted(side.items(), reverse=bids)]

    def _snapshot(self, conn: WsConnection, sub: _Sub) -> Any:
        spec = self.markets.get(sub.symbol)
        if sub.channel == "orderbook":
            sub.view = self._top(sub.symbol, sub.depth)
            return {"bids": self._levels(sub.symbol, sub.view[0], True), "asks": self._levels(sub.symbol, sub.view[1], False)}
        if sub.channel == "trades":
            assert spec is not None
            return [self._trade_row(trade) for trade in self.engine.recent_trades(spec.symbol, SNAPSHOT_TRADES)]
        if sub.channel == "candles":
            assert spec is not None
            now = self.engine.now_ms
            current = bucket_start(sub.interval, now)
            bars = self.engine.candles(spec.symbol, sub.interval, 0, now, SNAPSHOT_CANDLES)
            if bars and bars[-1].t == current:
                sub.bar_open, sub.bar_sent = current, self._bar_state(bars[-1])
            sub.bar_pushed = now
            return [self._candle_row(spec, sub.interval, bar, bar.t < current) for bar in bars]
        account = self.account(conn.state["subject"])
        figures = self._figures(account)
        positions = [self._position_json(account, symbol, figures) for symbol in self._open_symbols(account)]
        return {"positions": positions, "account": self._account_json(figures)}

    @staticmethod
    def _trade_row(trade: Trade) -> dict[str, Any]:
        return {"id": f"t-{trade.tid}", "price": trade.px_str, "size": trade.sz_str, "side": trade.side, "ts": trade.time}

    @staticmethod
    def _bar_state(bar: Bar) -> tuple[int, ...]:
        return bar.t, bar.o, bar.h, bar.l, bar.c, bar.v

    @staticmethod
    def _candle_row(spec: AssetSpec, interval: str, bar: Bar, closed: bool) -> dict[str, Any]:
        return {
            "interval": interval, "t": bar.t, "o": spec.px_str(bar.o), "h": spec.px_str(bar.h), "l": spec.px_str(bar.l),
            "c": spec.px_str(bar.c), "v": spec.sz_str(bar.v), "closed": closed,
        }  # fmt: skip

    # -- publishing ------------------------------------------------------------------------------

    def _audience(self, channel: str, symbol: str = "", interval: str = "") -> list[tuple[WsConnection, _Sub]]:
        return [(conn, sub) for conn, sub in self._subscribers.get((channel, symbol, interval), {}).items() if not conn.closed]

    async def on_step(self, events: StepEvents) -> None:
        now = events.time
        for symbol, spec in self.markets.items():
            state = self._top(symbol, max(DEPTHS))
            if state != self._book_state[symbol]:
                self._book_state[symbol] = state
                self._book_seq[symbol] += 1
            trades = events.trades.get(spec.symbol)
            if trades:
                rows = [self._trade_row(trade) for trade in trades]
                for conn, sub in self._audience("trades", symbol):
                    await self._push(conn, sub, "update", rows)
        if now - self._book_pushed >= BOOK_INTERVAL_MS:
            self._book_pushed = now
            for symbol in self.markets:
                await self._publish_book(symbol)
        for (channel, symbol, interval), audience in list(self._subscribers.items()):
            if channel == "candles" and audience:
                await self._publish_candles(symbol, interval, now)
        if self._script is not None and (stage := self._script.change(now)) is not None:
            self.set_liquidation_stage(stage)
        for account in list(self.accounts.values()):
            await self._work_orders(account)
            await self._check_margin(account, now)

    async def _publish_book(self, symbol: str) -> None:
        """One coalesced delta per subscriber whose top-N changed; an armed fault applies to it."""
        deltas: list[tuple[WsConnection, _Sub, bytes]] = []
        for conn, sub in self._audience("orderbook", symbol):
            view = self._top(symbol, sub.depth)
            changes = [{px: size.get(px, 0) for px in old.keys() | size.keys() if old.get(px) != size.get(px)} for old, size in zip(sub.view, view, strict=True)]
            if changes[0] or changes[1]:
                sub.view = view
                sub.seq += 1
                deltas.append((conn, sub, self._envelope("update", sub, sub.seq, {"bids": self._levels(symbol, changes[0], True), "asks": self._levels(symbol, changes[1], False)})))
            elif sub.held is not None:
                deltas.append((conn, sub, b""))
        fault = self.take_book_fault(symbol, ("skip", "duplicate", "reorder")) if any(frame for _, _, frame in deltas) else None
        for conn, sub, frame in deltas:
            held, sub.held = sub.held, None
            if frame and fault == "reorder":
                sub.held = frame
            elif frame and fault != "skip":
                for _ in range(2 if fault == "duplicate" else 1):
                    await conn.send(frame)
            if held is not None:
                await conn.send(held)

    async def _publish_candles(self, symbol: str, interval: str, now: int) -> None:
        """The finished bar once (``closed``), the forming bar when it changed (at most every 1 s)."""
        spec = self.markets[symbol]
        current = bucket_start(interval, now)
        for conn, sub in self._audience("candles", symbol, interval):
            if sub.bar_open is not None and sub.bar_open < current:
                finished = self.engine.candles(spec.symbol, interval, sub.bar_open, sub.bar_open, 1)
                if finished:
                    await self._push(conn, sub, "update", self._candle_row(spec, interval, finished[-1], True))
                sub.bar_open = sub.bar_sent = None
            if now - sub.bar_pushed < CANDLE_INTERVAL_MS:
                continue
            bar = self.engine.current_candle(spec.symbol, interval)
            if bar.t == current and self._bar_state(bar) != sub.bar_sent:
                sub.bar_open, sub.bar_sent, sub.bar_pushed = bar.t, self._bar_state(bar), now
                await self._push(conn, sub, "update", self._candle_row(spec, interval, bar, False))

    def _account_audience(self, account: _Account) -> list[tuple[WsConnection, _Sub]]:
        return [(conn, sub) for conn, sub in self._audience("positions") if conn.state["subject"] == account.subject]

    async def _send_account_event(self, account: _Account, data: dict[str, Any]) -> None:
        for conn, sub in self._account_audience(account):
            await self._push(conn, sub, "update", data)

    async def _push_position(self, account: _Account, symbol: str, side: str | None = None) -> None:
        """A ``position_update`` of ``symbol`` now (size "0" when flat; ``side`` it had then)."""
        figures = self._figures(account)
        spec = self.markets[symbol]
        position = account.book.positions[spec.symbol]
        if position.size:
            body = self._position_json(account, symbol, figures)
        else:
            last = account.pushed.get(symbol)
            body = self._closed_position_json(symbol, side or (last[1]["side"] if last else "long"), figures)
        account.pushed[symbol] = (self.engine.now_ms, body)
        await self._send_account_event(account, {"event": "position_update", "position": body, "account": self._account_json(figures)})

    async def _check_margin(self, account: _Account, now: int) -> None:
        """Hold a pinned ratio, liquidate at 1.0, warn from 0.8, push mark moves (1/s/position)."""
        figures = self._figures(account)
        if account.pin is not None and figures.maintenance > 0:
            account.book.transfers += figures.maintenance / account.pin - figures.equity
            figures = self._figures(account)
        open_symbols = self._open_symbols(account)
        if open_symbols and figures.ratio >= 1.0:
            await self._liquidate(account, open_symbols)
            return
        if open_symbols and figures.ratio >= WARNING_RATIO:
            if account.warned_at is None or now - account.warned_at >= WARNING_REPEAT_MS:
                account.warned_at = now
                for symbol in open_symbols:
                    liquidation = self._liquidation_price(account, symbol, figures)
                    await self._send_account_event(account, {
                        "event": "liquidation_warning", "symbol": symbol, "marginRatio": _ratio(figures.ratio),
                        "liquidationPrice": None if liquidation is None else format_decimal(liquidation, self.markets[symbol].px_decimals + 1),
                        "message": "Position close to liquidation", "account": self._account_json(figures),
                    })  # fmt: skip
        else:
            account.warned_at = None
        for symbol in open_symbols:
            pushed = account.pushed.get(symbol)
            if pushed is None or now - pushed[0] >= POSITION_INTERVAL_MS:
                body = self._position_json(account, symbol, figures)
                if pushed is None or body != pushed[1]:
                    account.pushed[symbol] = (now, body)
                    await self._send_account_event(account, {"event": "position_update", "position": body, "account": self._account_json(figures)})

    async def _liquidate(self, account: _Account, symbols: list[str]) -> None:
        """Close every position by a market order through the book; ``liquidated`` then size "0"."""
        account.warned_at = None
        for symbol in symbols:
            spec = self.markets[symbol]
            size = account.book.positions[spec.symbol].size
            side = "sell" if size > 0 else "buy"
            order = _Order(f"o-{next(self._order_ids)}", None, symbol, side, "market", abs(size), None, None, True, self.engine.now_ms)
            account.orders[order.id] = order
            self._fill(account, order, self._take(spec, side, abs(size), None), taker=True)
            assert order.avg_px is not None
            await self._send_account_event(account, {
                "event": "liquidated", "symbol": symbol, "size": spec.sz_str(abs(size)),
                "price": format_decimal(order.avg_px, spec.px_decimals + 2), "account": self._account_json(self._figures(account)),
            })  # fmt: skip
            await self._push_position(account, symbol, "long" if size > 0 else "short")

    # -- benchmark flood -------------------------------------------------------------------------

    async def flood(self, market: str, count: int) -> int:
        """Send ``count`` orderbook deltas of ``market`` (a Perpex symbol) to each of its subscribers
        as fast as they drain: the best bid's size alternates, the last delta restores it."""
        if market not in self.markets:
            raise KeyError(f"unknown market {market!r}")
        sent = 0
        for conn, sub in self._audience("orderbook", market):
            sent += await self.send_burst([conn], self._flood_frames(sub, count))
        return sent

    def _flood_frames(self, sub: _Sub, count: int) -> Iterator[bytes]:
        bids = sub.view[0]
        if not bids or count <= 0:
            return
        best = max(bids)
        for index in range(count):
            size = bids[best] if index == count - 1 else bids[best] + 1 + index % 16
            sub.seq += 1
            yield self._envelope("update", sub, sub.seq, {"bids": self._levels(sub.symbol, {best: size}, True), "asks": []})
