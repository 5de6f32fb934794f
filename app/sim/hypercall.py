"""Hypercall emulator: an options exchange (WebSocket ``/ws`` and REST) on the shared emulator mechanism.

Follows the Hypercall WebSocket docs and the official SDK's message types (where they differ, the
SDK's shapes): flat JSON messages tagged by ``"type"``, decimals as strings, Greeks and IV as numbers,
timestamps in ms, market ``expiry`` in seconds. The underlying prices come from the shared
:class:`~app.sim.engine.MarketEngine` (``fair_price``; the same BTC as every venue's BTC perp under a
seed); the option maths (Black-Scholes with r = 0, the IV surface, the margin model) is in
:mod:`app.sim.options`; this module lists, quotes, names, filters and formats.

Wire facts implemented: ``Authenticate``/``Authenticated`` and the deprecated ``?wallet=``; the
``Subscribe``/``Unsubscribe`` acks and ``Error`` texts; the channels orderbook, trades,
market_updates, options_chain, index_prices, ``candles:<UND>:<RES>`` and the private order_updates,
fills, portfolio, liquidation, competition; ``ClockSync``; a Ping control frame every
``ping_interval`` (20 s) and close 1008 ``pong timeout`` after ``pong_timeout`` (60 s) without a pong;
the REST ``/markets``, ``/orderbook`` (JSON-RPC envelope, numbers), ``/candles``, ``/portfolio``,
``/portfolio/greeks``, ``/orders``, ``/fills``.

Design decisions ([D]; the venue is silent, so these are ours):

* Auth: the ``Authenticated`` echo is the wallet lower-cased (the SDK compares case-insensitively). A
  valid ``?wallet=`` authenticates silently at connect; an invalid one gets ``Error Invalid wallet
  address``. An invalid ``Authenticate`` leaves the socket as it was (unauthenticated, or on its
  earlier wallet); a valid one replaces the wallet, and private channels then carry that wallet.
* Errors: private channel before auth -> ``Authentication required for channel: <C>``; unknown
  channel (bad candle underlying or resolution too) -> ``Invalid channel: <C>``; unknown type ->
  ``Unknown message type: <t>``; malformed frames and malformed filters (``symbols`` not a list of
  strings, ``expiry`` not ``YYYY-MM-DD``, ``option_type`` not call/put) -> ``Invalid message: ...``.
  Echoed client text is cut at 64 characters. The socket always stays open.
* Filters per (socket, channel) on orderbook, trades, options_chain, order_updates, fills: a symbol
  is an underlying or an instrument name; Subscribe with symbols adds them (to "all" it adds
  nothing), without symbols means all; Unsubscribe with symbols removes them and the channel goes
  when none is left (on "all" it removes nothing); Unsubscribe without symbols, or of a channel not
  subscribed, is acked. ``expiry``/``option_type`` replace the earlier value when given. Unknown
  symbols are accepted silently. Every Subscribe is acked, also a repeat.
* Snapshots after the ack: orderbook -> the book of every matching instrument; options_chain -> an
  Upsert per matching row (resubscribe is the snapshot); index_prices -> one update; candles -> the
  forming bar; portfolio -> Initial, MarginUpdate, GreeksUpdate; competition -> the summary.
  trades, market_updates, liquidation, fills, order_updates send nothing on subscribe. (Candles: the
  newest bar, the one before when the current bucket has no trade yet.)
* Books: a full top-15 ladder per instrument on every change (string pairs, best first), at most
  every 500 ms per instrument; ``timestamp`` is the time of the book's last change. Quotes are
  Black-Scholes marks +- a half spread of max(2 ticks, 1.5 % of mark, half a vol point of vega),
  levels a few ticks apart, log-normal sizes in 0.1-contract lots; a book is requoted when the mark
  moved a quarter of its half spread (else now and then; with ``requote_interval``, a test knob off by
  default, also whenever it has not changed for that many seconds), every 500 ms of virtual time. Tick 0.1 USD
  (BTC), 0.01 (ETH): ``10**(digits(spot) - 6)``. An empty side (deep out of the money bids) stays
  empty. Random trades (3 per second over the chain) take the top level of a book.
* options_chain LEG: numbers only; ``mark_price_usd``/``mark_iv`` are our additions; an empty side
  has price, IV and sizes 0.0; ``*_size_usd_notional`` = contracts x index. ``greeks_cash``:
  delta x 1 % spot, gamma x (1 % spot)^2, theta per day, vega per vol point. Upsert at most every
  2 s per row when its numbers changed; with ``option_type`` set a row carries only that leg.
* Candles (payload undocumented): ``{"type":"Candle","underlying","resolution","open_time",
  "close_time" (end - 1 ms),"open","high","low","close","volume","timestamp"}`` from the engine's
  candles of the underlying's perp (its trades and volume), every 1 s and once more when a bar closes.
  REST ``/candles?underlying&resolution&limit`` (default 500, at most 5000) returns the same objects.
* Listing: underlyings BTC (ATM vol 0.55) and ETH (0.70) when the engine has them. Four expiries at
  08:00 UTC each: tomorrow, the day after, the next Friday after those, the last Friday of next month.
  Nine strikes around the spot at listing, step the round number >= 2.5 % of spot (expiries within
  7 days) or 5 % (later): BTC 2500/5000, ETH 100/200. Names ``UND-YYYYMMDD-STRIKE-C|P``. IV surface:
  :class:`app.sim.options.VolSurface` (skew, smile, term structure, seeded noise).
* Expiry (virtual time reaches it, or :meth:`HypercallEmulator.expire_next`): settle at the index:
  ``MarketUpdate Expired`` per instrument, options_chain ``Remove`` per leg, ``PositionExpired`` per
  held leg (settlement_value = qty x intrinsic, added to cash; no PositionUpdate), open orders on it
  ``CANCELED`` (reason ``expired``); then a new expiry, the last Friday of the month after the
  farthest one, is listed (``MarketUpdate Created`` per instrument). ``Deleted`` is never sent.
* Demo wallet (:data:`~app.sim.engine.DEMO_ADDRESS`): +2 BTC call (1st expiry, strike one step above
  the money), -3 BTC put (3rd expiry, one step below), -10 ETH call (2nd expiry, two steps above),
  +5 ETH put (4th expiry, one step below); one resting buy order far below the book; cash set so
  equity = 3 x maintenance (Normal). Every 15-30 s of virtual time it takes liquidity on one of its
  legs: OrderUpdate OPEN, Fill, OrderUpdate FILLED, PositionUpdate, BalanceUpdate and a public Trade.
  Fee 0.03 % of the underlying notional, at most 12.5 % of the premium. Any other valid wallet has an
  empty portfolio (equity 0) and ``active_competition: null``.
* Margin model (:func:`app.sim.options.portfolio_margin`): scanning risk over spot -15..+15 % x vol
  -+25 %, option floor 10 % of short premium, gamma overlay; maintenance = 0.8 x initial; state
  Liquidating below maintenance, Warning below 1.5 x. ``total_margin_used`` = initial + open orders'
  premium, ``available_balance`` = equity - that. POSITION: ``notional_value`` = |qty| x index,
  ``margin_posted``/``maintenance_margin`` = the leg's own initial/maintenance margin alone,
  ``liquidation_price`` null, ``margin_ratio`` = account maintenance / equity.
* ``set_liquidation_stage("normal"|"warning"|"liquidating")`` pins equity at 3 / 1.25 / 0.8 x
  maintenance by moving cash, applied at the next step and held at every margin check (1 s). The
  ``liquidation`` scenario (constructor ``scenario``) pins normal for 10 s, warning until 25 s, then
  liquidating. ``LiquidationStateChange`` on every state change; entering Liquidating opens auction
  ``auc-N`` (top-level ``auction_id`` and ``full_liquidation``, ``liquidation_mode: "full"``).
* REST: a symbol or numeric id for ``instrument_id``; ``/orderbook`` IVs are decimals, ``usIn``/
  ``usOut`` the virtual time (``usDiff`` 0), ``stats`` since listing (``volume_24h`` too), ``change_id``
  counts book changes; unknown instrument 404, bad parameters 400 (``{"success":false,"data":null,
  "error":...}``); over ``rest_rate_limit`` requests per rolling minute per client address: 429 with
  ``Retry-After``. ORDER rows: ``order_id, wallet_address, symbol, side, price, size, filled_size,
  status, tif, created_at, updated_at, instrument_type``; ``status`` filter ``open`` (OPEN and
  PARTIALLY_FILLED), ``filled``, ``canceled``, or none for all. FILL rows are the WS Fill without
  ``type``, newest first.
* Liveness is ping/pong only: no server-silence close (``idle_timeout`` defaults to infinity). No WS
  message or subscription limits. :meth:`close_slow_consumer` is the test hook for the JSON close
  reason; real write-buffer overflows still abort the socket (the base server's rule).
* Book faults and :meth:`flood` name markets by instrument name; a fault applies to the next
  published book of it (``skip`` drops it, ``duplicate`` sends it twice, ``reorder`` sends it after
  the next one, ``delta_before_snapshot`` sends the last published book before the next orderbook
  ack). The flood's last frame is the true book.
* ``hostile_names=True`` adds the engine's hostile perps as underlyings (one expiry, three strikes each).

Determinism: everything drawn from generators seeded with the seed, stepped by virtual time; no
generator draw depends on who is subscribed.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import orjson
from aiohttp import web

from app.sim.engine import DEFAULT_ASSETS, DEMO_ADDRESS, HOSTILE_ASSETS, Bar, StepEvents, bucket_end, bucket_start, format_decimal, format_fixed
from app.sim.options import (
    Greeks,
    Leg,
    Margin,
    VolSurface,
    bs_greeks,
    bs_price,
    cash_greeks,
    implied_vol,
    portfolio_margin,
    years_between,
)
from app.sim.server import CLOSE_POLICY_VIOLATION, EmulatorServer, LiquidationScript, WsConnection

__all__ = ["CANDLE_RESOLUTIONS", "PRIVATE_CHANNELS", "PUBLIC_CHANNELS", "SLOW_CONSUMER_CLASSES", "HypercallEmulator"]

PUBLIC_CHANNELS: tuple[str, ...] = ("orderbook", "trades", "market_updates", "options_chain", "index_prices")
PRIVATE_CHANNELS: tuple[str, ...] = ("order_updates", "fills", "portfolio", "liquidation", "competition")
CANDLE_RESOLUTIONS: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
#: Slow-consumer classes and the recovery the SDK pairs with each (``recovery.rs``).
SLOW_CONSUMER_CLASSES: dict[str, str] = {
    "replaceable_public": "resubscribe",
    "ordered_public": "snapshot_resubscribe",
    "private_durable": "rest_reconcile",
    "replaceable_private": "portfolio_refetch",
    "command_result": "rest_reconcile",
}
STAGES: dict[str, float] = {"normal": 3.0, "warning": 1.25, "liquidating": 0.8}  # equity / maintenance

BOOK_LEVELS = 15
QUOTE_INTERVAL_MS = 500  # requotes, trades and book pushes
CHAIN_INTERVAL_MS = 2_000
INDEX_INTERVAL_MS = 1_000
CANDLE_INTERVAL_MS = 1_000
ACCOUNT_INTERVAL_MS = 1_000
COMPETITION_INTERVAL_MS = 10_000
TRADES_PER_S = 3.0
DEMO_TRADE_EVERY_MS = (15_000, 30_000)
_FILTERED = frozenset(("orderbook", "trades", "options_chain", "order_updates", "fills"))
_WALLET = re.compile(r"^0x[0-9a-fA-F]{40}\Z")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
_ECHO = 64
_DAY_MS = 86_400_000
_REST_CANDLE_CAP = 5_000
_FLOOD_VARIANTS = 16


@dataclass(frozen=True, slots=True)
class _UnderlyingSpec:
    atm: float
    skew: float
    smile: float
    level_contracts: float  # typical size of one book level
    expiries: int = 4
    strikes: int = 9


_UNDERLYING_SPECS = {
    "BTC": _UnderlyingSpec(atm=0.55, skew=-0.05, smile=0.025, level_contracts=2.0),
    "ETH": _UnderlyingSpec(atm=0.70, skew=-0.04, smile=0.03, level_contracts=40.0),
}
_HOSTILE_SPEC = _UnderlyingSpec(atm=0.9, skew=0.0, smile=0.02, level_contracts=100.0, expiries=1, strikes=3)


# --------------------------------------------------------------------------------------------------
# Model state
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Underlying:
    name: str
    symbol: str  # the engine asset whose candles are this underlying's
    spec: _UnderlyingSpec
    surface: VolSurface
    tick: float
    px_decimals: int
    expiries: list[int] = field(default_factory=list)  # ms, ascending

    @property
    def index_decimals(self) -> int:
        return max(2, self.px_decimals + 1)


@dataclass(eq=False, slots=True)
class _Instrument:
    name: str
    instrument_id: int
    und: _Underlying
    expiry_ms: int
    strike: float
    strike_text: str
    is_call: bool
    listed_ms: int
    iv: float = 0.0
    mark: float = 0.0
    spot: float = 0.0
    t: float = 0.0
    greeks: Greeks = Greeks(0.0, 0.0, 0.0, 0.0)
    bids: list[list[int]] = field(default_factory=list)  # [price ticks, size lots], best first
    asks: list[list[int]] = field(default_factory=list)
    quoted_mark: float = -1.0
    half_spread: float = 0.0
    version: int = 0  # book changes (REST change_id)
    changed_ms: int = 0
    pushed_version: int = -1
    pushed_ms: int = -(10**15)
    last_frame: bytes | None = None  # the last published book (delta_before_snapshot sends it)
    held: bytes | None = None  # a book kept back by the reorder fault
    volume_lots: int = 0
    volume_usd: float = 0.0
    open_interest_lots: int = 0
    high: float | None = None
    low: float | None = None
    open_mark: float = 0.0

    @property
    def expiry_s(self) -> int:
        return self.expiry_ms // 1000

    @property
    def expiry_date(self) -> str:
        return datetime.fromtimestamp(self.expiry_ms / 1000, UTC).strftime("%Y-%m-%d")

    @property
    def option_type(self) -> str:
        return "call" if self.is_call else "put"

    def px(self, ticks: int) -> str:
        return format_fixed(ticks, self.und.px_decimals)

    def px_float(self, ticks: int) -> float:
        return round(ticks * self.und.tick, self.und.px_decimals)


@dataclass(eq=False, slots=True)
class _Row:
    und: _Underlying
    expiry_ms: int
    strike: float
    call: _Instrument
    put: _Instrument
    upserted_ms: int = -(10**15)
    fingerprint: tuple[Any, ...] | None = None


@dataclass(eq=False, slots=True)
class _Position:
    inst: _Instrument
    lots: int  # signed, 0.1 contract each
    entry: float
    realized: float = 0.0
    updated_ms: int = 0

    @property
    def quantity(self) -> float:
        return self.lots / 10


@dataclass(eq=False, slots=True)
class _Order:
    order_id: int
    inst: _Instrument
    side: str  # buy | sell
    price: float
    lots: int
    filled_lots: int
    status: str
    created_ms: int
    updated_ms: int
    reason: str | None = None


@dataclass(slots=True)
class _Filter:
    symbols: set[str] | None = None  # None: everything
    expiry: str | None = None
    option_type: str | None = None

    def passes(self, inst: _Instrument) -> bool:
        if self.symbols is not None and inst.name not in self.symbols and inst.und.name not in self.symbols:
            return False
        if self.expiry is not None and inst.expiry_date != self.expiry:
            return False
        return self.option_type is None or self.option_type == inst.option_type


class _BadMessage(Exception):
    """A client frame answered with ``{"type":"Error","message":...}``."""


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _frame(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def _echo(text: str) -> str:
    return text[:_ECHO]


def _usd(value: float) -> str:
    return format_decimal(value, 2)


def _dec(value: float, decimals: int = 4) -> str:
    return format_decimal(value, decimals)


def _qty(lots: int) -> str:
    return format_fixed(lots, 1)


def _num(value: float) -> float:
    """A float for the wire, eight significant figures."""
    return float(f"{value:.8g}")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _at_eight(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 8, tzinfo=UTC).timestamp() * 1000)


def _last_friday(year: int, month: int) -> date:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    following = date(year + (month == 12), month % 12 + 1, 1)
    last = following - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - 4) % 7)


def _expiry_schedule(now_ms: int, count: int) -> list[int]:
    """The first ``count`` of: tomorrow, the day after, the next Friday after those, the last Friday
    of next month (08:00 UTC each, distinct)."""
    today = datetime.fromtimestamp(now_ms / 1000, UTC).date()
    first, second = today + timedelta(days=1), today + timedelta(days=2)
    friday = second + timedelta(days=(4 - second.weekday()) % 7 or 7)
    monthly = _last_friday(today.year, today.month + 1)
    if monthly <= friday:
        monthly = _last_friday(today.year, today.month + 2)
    return [_at_eight(day) for day in (first, second, friday, monthly)][:count]


def _next_far_expiry(latest_ms: int) -> int:
    day = datetime.fromtimestamp(latest_ms / 1000, UTC).date()
    candidate = _last_friday(day.year, day.month + 1)
    return _at_eight(candidate if _at_eight(candidate) > latest_ms else _last_friday(day.year, day.month + 2))


def _round_step(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^n that is >= ``value``."""
    exponent = math.floor(math.log10(value))
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = mantissa * 10.0**exponent
        if step >= value * (1 - 1e-12):
            return round(step, 12)
    return 10.0 ** (exponent + 1)


def _strike_text(strike: float) -> str:
    if strike == int(strike):
        return str(int(strike))
    return f"{strike:.8f}".rstrip("0").rstrip(".")


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"success": False, "data": None, "error": message}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


class _RestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


class HypercallEmulator(EmulatorServer):
    """The Hypercall options venue (see the module docstring)."""

    venue: ClassVar[str] = "hypercall"
    ws_path: ClassVar[str] = "/ws"
    scenarios: ClassVar[tuple[str, ...]] = ("liquidation",)

    def __init__(
        self,
        *,
        ping_interval: float = 20.0,
        pong_timeout: float = 60.0,
        scenario: str | None = None,
        rest_rate_limit: int = 600,
        requote_interval: float | None = None,
        hostile_names: bool = False,
        idle_timeout: float = math.inf,
        **kwargs: Any,
    ) -> None:
        if scenario is not None and scenario not in self.scenarios:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(self.scenarios)})")
        if "engine" not in kwargs:
            hostile = tuple(spec for spec in HOSTILE_ASSETS if spec.kind == "perp") if hostile_names else ()
            kwargs["assets"] = (*DEFAULT_ASSETS[:2], *hostile)
        super().__init__(idle_timeout=idle_timeout, **kwargs)
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.scenario = scenario
        self.rest_rate_limit = rest_rate_limit
        if requote_interval is not None and requote_interval <= 0:
            raise ValueError("requote_interval must be positive")
        # Every book changes (and so is pushed) at least this often: a client's only repair of a
        # wrong book on this venue is the next push (tests; None: on mark moves and now and then).
        self.requote_ms = None if requote_interval is None else int(requote_interval * 1000)
        self._rng = random.Random(f"{self.seed}:hypercall:market")
        self._demo_rng = random.Random(f"{self.seed}:hypercall:demo")
        ids = random.Random(f"{self.seed}:hypercall:ids")
        self._instrument_ids = itertools.count(ids.randrange(1_000, 9_000))
        self._order_ids = itertools.count(ids.randrange(10**6, 10**7))
        self._fill_ids = itertools.count(ids.randrange(10**6, 10**7))
        self._trade_ids = itertools.count(ids.randrange(10**7, 10**8))
        self._auction_ids = itertools.count(1)
        now = self.engine.now_ms
        self.underlyings: dict[str, _Underlying] = {}
        for name, spec in self._underlying_specs(hostile_names).items():
            spot = self.engine.fair_price(name)
            tick = 10.0 ** (math.floor(math.log10(spot)) - 5)
            symbol = next(s.symbol for s in self.engine.specs.values() if s.underlying_key == name)
            surface = VolSurface(spec.atm, spec.skew, spec.smile)
            self.underlyings[name] = _Underlying(name, symbol, spec, surface, tick, max(0, -round(math.log10(tick))))
        if not self.underlyings:
            raise ValueError("the Hypercall emulator needs BTC or ETH in the engine")
        self.instruments: dict[str, _Instrument] = {}
        self._by_id: dict[int, _Instrument] = {}
        self._rows: dict[tuple[str, int, float], _Row] = {}
        for und in self.underlyings.values():
            for expiry in _expiry_schedule(now, und.spec.expiries):
                self._list_expiry(und, expiry, now)
        # subscriptions: channel -> connections
        self._subscribers: dict[str, set[WsConnection]] = {}
        self._candle_open: dict[str, int] = {}
        self._last: dict[str, int] = dict.fromkeys(("quote", "index", "candles", "account", "competition"), now)
        self._rest_windows: dict[str, list[float]] = {}
        # the demo account
        self._positions: dict[str, _Position] = {}
        self._orders: dict[int, _Order] = {}
        self._fills: deque[dict[str, Any]] = deque(maxlen=1_000)
        self._cash = 0.0
        self._realized = 0.0
        self._traded_usd = 0.0
        self._liquidation_state = "Normal"
        self._pin: float | None = None
        self._check_account_now = False
        self._auction: str | None = None
        self._auction_started = 0
        self._rank = self._demo_rng.randrange(5, 40)
        self._script = LiquidationScript(now, "normal") if scenario == "liquidation" else None
        self._next_demo_trade = now + self._demo_rng.randrange(*DEMO_TRADE_EVERY_MS)
        self._open_demo_account(now)
        if self._script is not None:
            self._pin = STAGES["normal"]

    def _underlying_specs(self, hostile_names: bool) -> dict[str, _UnderlyingSpec]:
        present = {spec.underlying_key for spec in self.engine.specs.values()}
        specs = {name: spec for name, spec in _UNDERLYING_SPECS.items() if name in present}
        if hostile_names:
            for asset in HOSTILE_ASSETS:
                if asset.kind == "perp" and asset.underlying_key in present:
                    specs[asset.underlying_key] = _HOSTILE_SPEC
        return specs

    def demo_credentials(self) -> dict[str, str]:
        return {"wallet": DEMO_ADDRESS}

    # ==============================================================================================
    # Listing and quoting
    # ==============================================================================================

    def _list_expiry(self, und: _Underlying, expiry_ms: int, now: int) -> list[_Instrument]:
        spot = self.engine.fair_price(und.name)
        step = _round_step(spot * (0.025 if expiry_ms - now <= 7 * _DAY_MS else 0.05))
        center = round(spot / step)
        count = und.spec.strikes
        strikes = [round((center + i - count // 2) * step, 10) for i in range(count)]
        day = datetime.fromtimestamp(expiry_ms / 1000, UTC).strftime("%Y%m%d")
        listed: list[_Instrument] = []
        for strike in (s for s in strikes if s > 0):
            text = _strike_text(strike)
            legs = []
            for is_call in (True, False):
                name = f"{und.name}-{day}-{text}-{'C' if is_call else 'P'}"
                inst = _Instrument(name, next(self._instrument_ids), und, expiry_ms, strike, text, is_call, now)
                self._reprice(inst, spot, now)
                inst.open_mark = inst.mark
                inst.open_interest_lots = max(1, round(self._rng.lognormvariate(math.log(und.spec.level_contracts * 100), 0.8)))
                self._requote(inst, now)
                self.instruments[name] = inst
                self._by_id[inst.instrument_id] = inst
                legs.append(inst)
                listed.append(inst)
            self._rows[(und.name, expiry_ms, strike)] = _Row(und, expiry_ms, strike, legs[0], legs[1])
        und.expiries = sorted({*und.expiries, expiry_ms})
        return listed

    def _reprice(self, inst: _Instrument, spot: float, now: int) -> None:
        t = years_between(now, inst.expiry_ms)
        inst.spot, inst.t = spot, t
        inst.iv = inst.und.surface.iv(spot, inst.strike, t) if t > 0 else inst.iv
        inst.mark = bs_price(spot, inst.strike, t, inst.iv, inst.is_call)
        inst.greeks = bs_greeks(spot, inst.strike, t, inst.iv, inst.is_call)

    def _requote(self, inst: _Instrument, now: int) -> None:
        """A fresh ladder around the mark (module docstring)."""
        rng, tick = self._rng, inst.und.tick
        half = max(2 * tick, 0.015 * inst.mark, 0.5 * inst.greeks.vega)
        gap = max(1, round(max(0.004 * inst.mark, 0.2 * half) / tick))
        best_bid = math.floor((inst.mark - half) / tick + 1e-9)
        best_ask = max(best_bid + 1, math.ceil((inst.mark + half) / tick - 1e-9))
        lots = math.log(inst.und.spec.level_contracts * 10)

        def size(level: int) -> int:
            return max(1, round(rng.lognormvariate(lots + 0.15 * level, 0.6)))

        inst.bids = [[best_bid - k * gap, size(k)] for k in range(BOOK_LEVELS) if best_bid - k * gap >= 1]
        inst.asks = [[best_ask + k * gap, size(k)] for k in range(BOOK_LEVELS)]
        inst.quoted_mark, inst.half_spread = inst.mark, half
        inst.version += 1
        inst.changed_ms = now

    def _quote_cycle(self, start: int, now: int) -> list[dict[str, Any]]:
        """Move the surfaces, reprice and requote every instrument, draw the random trades."""
        rng = self._rng
        for und in self.underlyings.values():
            und.surface.evolve(now - start, rng)
        spots = {name: self.engine.fair_price(name) for name in self.underlyings}
        for inst in self.instruments.values():
            self._reprice(inst, spots[inst.und.name], now)
            if (
                abs(inst.mark - inst.quoted_mark) >= 0.25 * inst.half_spread
                or rng.random() < 0.03  # drawn as before: the knob below leaves the default draws alone
                or (self.requote_ms is not None and now - inst.changed_ms >= self.requote_ms)
            ):
                self._requote(inst, now)
        trades = []
        listed = list(self.instruments.values())
        times = sorted(start + 1 + int(rng.random() * (now - start)) for _ in range(_poisson(rng, TRADES_PER_S * (now - start) / 1000)))
        for t in times:
            inst = listed[rng.randrange(len(listed))]
            side = "buy" if rng.random() < 0.5 else "sell"
            wanted = max(1, round(rng.lognormvariate(math.log(inst.und.spec.level_contracts * 3), 0.8)))
            taken = self._take(inst, side, wanted, t)
            if taken is not None:
                trades.append(self._trade_frame(inst, side, *taken, t))
        return trades

    def _take(self, inst: _Instrument, side: str, lots: int, t: int) -> tuple[int, int] | None:
        """A taker order against the top level: ``(price ticks, lots)`` traded, or None (empty side)."""
        levels = inst.asks if side == "buy" else inst.bids
        if not levels:
            return None
        px, available = levels[0]
        lots = min(lots, available)
        if lots == available:
            levels.pop(0)
        else:
            levels[0][1] -= lots
        inst.version += 1
        inst.changed_ms = t
        price = inst.px_float(px)
        inst.volume_lots += lots
        inst.volume_usd += price * lots / 10
        inst.high = price if inst.high is None else max(inst.high, price)
        inst.low = price if inst.low is None else min(inst.low, price)
        grow = self._rng.random() < 0.55
        inst.open_interest_lots = max(0, inst.open_interest_lots + (lots if grow else -lots))
        return px, lots

    # ==============================================================================================
    # The demo account
    # ==============================================================================================

    def _open_demo_account(self, now: int) -> None:
        """The demo's legs (module docstring), a resting order, and cash for equity = 3 x maintenance."""
        plan = [("BTC", 0, 1, True, 20), ("BTC", 2, -1, False, -30), ("ETH", 1, 2, True, -100), ("ETH", 3, -1, False, 50)]
        for und_name, expiry_index, offset, is_call, lots in plan:
            und = self.underlyings.get(und_name)
            if und is None or expiry_index >= len(und.expiries):
                continue
            inst = self._strike_offset(und, und.expiries[expiry_index], offset, is_call)
            entry = inst.mark * (1 + self._demo_rng.uniform(-0.08, 0.08))
            self._positions[inst.name] = _Position(inst, lots, entry, 0.0, now - self._demo_rng.randrange(_DAY_MS))
        btc = self.underlyings.get("BTC") or next(iter(self.underlyings.values()))
        inst = self._strike_offset(btc, btc.expiries[min(2, len(btc.expiries) - 1)], -2, False)
        price = round(max(inst.und.tick, inst.mark * 0.5) / inst.und.tick) * inst.und.tick
        order = _Order(next(self._order_ids), inst, "buy", round(price, inst.und.px_decimals), 10, 0, "OPEN", now - 600_000, now - 600_000)
        self._orders[order.order_id] = order
        margin, _ = self._evaluate(now, pin=False)
        self._cash = STAGES["normal"] * margin.maintenance - (margin.equity - self._cash)

    def _strike_offset(self, und: _Underlying, expiry: int, offset: int, is_call: bool) -> _Instrument:
        """The instrument ``offset`` strikes from the one nearest the money."""
        rows = sorted((row for row in self._rows.values() if row.und is und and row.expiry_ms == expiry), key=lambda row: row.strike)
        spot = self.engine.fair_price(und.name)
        atm = min(range(len(rows)), key=lambda i: abs(rows[i].strike - spot))
        row = rows[max(0, min(len(rows) - 1, atm + offset))]
        return row.call if is_call else row.put

    def _legs(self, now: int) -> list[tuple[_Position, Leg, Greeks]]:
        """Every demo position priced now (fresh Black-Scholes at the index and the leg's IV)."""
        legs = []
        for position in self._positions.values():
            inst = position.inst
            spot = self.engine.fair_price(inst.und.name)
            t = years_between(now, inst.expiry_ms)
            mark = bs_price(spot, inst.strike, t, inst.iv, inst.is_call)
            greeks = bs_greeks(spot, inst.strike, t, inst.iv, inst.is_call)
            legs.append((position, Leg(inst.und.name, position.quantity, inst.strike, t, inst.is_call, inst.iv, mark), greeks))
        return legs

    def _spots(self) -> dict[str, float]:
        return {name: self.engine.fair_price(name) for name in self.underlyings}

    def _evaluate(self, now: int, pin: bool = True) -> tuple[Margin, list[tuple[_Position, Leg, Greeks]]]:
        """The demo's margin now; with a pinned stage, cash moves so equity sits at its ratio."""
        legs = self._legs(now)
        margin = portfolio_margin(self._cash, (leg for _, leg, _ in legs), self._spots())
        if pin and self._pin is not None and margin.maintenance > 0:
            target = self._pin * margin.maintenance
            self._cash += target - margin.equity
            margin = replace(margin, equity=target)
        return margin, legs

    def _open_orders_margin(self) -> float:
        return sum(order.price * (order.lots - order.filled_lots) / 10 for order in self._orders.values() if order.status in ("OPEN", "PARTIALLY_FILLED"))

    def set_liquidation_stage(self, stage: str) -> None:
        """Pin the demo account's equity at the stage's multiple of maintenance (``normal`` 3,
        ``warning`` 1.25, ``liquidating`` 0.8) by moving its cash: reached at the next step, held
        at every margin check."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
        self._pin = STAGES[stage]
        self._check_account_now = True

    async def expire_next(self, underlying: str | None = None) -> int:
        """Expire the nearest expiry (of ``underlying``, or of every underlying listing the nearest
        one) now and publish it; returns that expiry (ms)."""
        async with self._step_lock:
            candidates = [self.underlyings[underlying]] if underlying is not None else list(self.underlyings.values())
            nearest = min(und.expiries[0] for und in candidates if und.expiries)
            for und in candidates:
                if und.expiries and und.expiries[0] == nearest:
                    await self._expire(und, nearest, self.engine.now_ms)
            return nearest

    # ==============================================================================================
    # Formatting
    # ==============================================================================================

    def _book_frame(self, inst: _Instrument, bids: Iterable[list[int]] | None = None, asks: Iterable[list[int]] | None = None) -> bytes:
        return _frame({
            "type": "OrderbookUpdate", "symbol": inst.name, "option_token_address": None,
            "bids": [[inst.px(px), _qty(lots)] for px, lots in (inst.bids if bids is None else bids)],
            "asks": [[inst.px(px), _qty(lots)] for px, lots in (inst.asks if asks is None else asks)],
            "timestamp": inst.changed_ms,
        })  # fmt: skip

    def _trade_frame(self, inst: _Instrument, side: str, px: int, lots: int, t: int) -> dict[str, Any]:
        return {"type": "Trade", "symbol": inst.name, "price": inst.px(px), "size": _qty(lots), "side": side, "timestamp": t}

    def _index_frame(self, now: int) -> bytes:
        prices = [{"underlying": und.name, "price": format_decimal(self.engine.fair_price(und.name), und.index_decimals), "timestamp": now}
                  for und in self.underlyings.values()]  # fmt: skip
        return _frame({"type": "IndexPriceUpdate", "prices": prices, "timestamp": now})

    def _market_update(self, inst: _Instrument, action: str, now: int) -> bytes:
        return _frame({
            "type": "MarketUpdate", "action": action, "symbol": inst.name, "strike": inst.strike_text,
            "is_call": inst.is_call, "underlying": inst.und.name, "expiry": inst.expiry_s, "timestamp": now,
        })  # fmt: skip

    def _leg(self, inst: _Instrument) -> dict[str, Any]:
        """One side of an options_chain row (numbers only)."""
        spot, t = inst.spot, inst.t
        sides: dict[str, Any] = {}
        for name, levels in (("bid", inst.bids), ("ask", inst.asks)):
            if levels:
                price = inst.px_float(levels[0][0])
                contracts = levels[0][1] / 10
                iv = implied_vol(price, spot, inst.strike, t, inst.is_call, inst.iv) or 0.0
            else:
                price = contracts = iv = 0.0
            sides[name] = (price, iv, contracts, contracts * spot)
        greeks = inst.greeks
        return {
            "symbol": inst.name, "option_token_address": None,
            "bid_price_usd": sides["bid"][0], "bid_iv": _num(sides["bid"][1]),
            "bid_size_contracts": sides["bid"][2], "bid_size_usd_notional": _num(sides["bid"][3]),
            "ask_price_usd": sides["ask"][0], "ask_iv": _num(sides["ask"][1]),
            "ask_size_contracts": sides["ask"][2], "ask_size_usd_notional": _num(sides["ask"][3]),
            "greeks_abs": {"delta": _num(greeks.delta), "gamma": _num(greeks.gamma), "theta": _num(greeks.theta), "vega": _num(greeks.vega)},
            "greeks_cash": {key: _num(value) for key, value in cash_greeks(greeks, spot).items()},
            "mark_price_usd": _num(inst.mark), "mark_iv": _num(inst.iv),
        }  # fmt: skip

    def _upsert(self, row: _Row, option_type: str | None, now: int, legs: dict[str, dict[str, Any]]) -> bytes:
        body: dict[str, Any] = {"strike": float(row.strike)}
        if option_type in (None, "call"):
            body["call"] = legs["call"]
        if option_type in (None, "put"):
            body["put"] = legs["put"]
        return _frame({"type": "OptionsChainUpdate", "action": "Upsert", "currency": row.und.name, "expiry": row.expiry_ms // 1000, "row": body, "timestamp": now})

    def _candle(self, und: _Underlying, resolution: str, bar: Bar, now: int) -> dict[str, Any]:
        spec = self.engine.spec(und.symbol)
        return {
            "underlying": und.name, "resolution": resolution, "open_time": bar.t,
            "close_time": bucket_end(resolution, bar.t) - 1, "open": spec.px_str(bar.o), "high": spec.px_str(bar.h),
            "low": spec.px_str(bar.l), "close": spec.px_str(bar.c), "volume": spec.sz_str(bar.v), "timestamp": now,
        }  # fmt: skip

    def _position_json(self, position: _Position, leg: Leg, margin: Margin, now: int) -> dict[str, Any]:
        inst = position.inst
        spot = self.engine.fair_price(inst.und.name)
        alone = portfolio_margin(0.0, [leg], {inst.und.name: spot})
        ratio = min(99.9999, margin.maintenance / margin.equity) if margin.equity > 0 else 99.9999
        return {
            "wallet_address": DEMO_ADDRESS, "symbol": inst.name, "amount": _qty(position.lots),
            "entry_price": _dec(position.entry), "margin_posted": _usd(alone.initial),
            "realized_pnl": _usd(position.realized), "unrealized_pnl": _usd(leg.quantity * (leg.mark - position.entry)),
            "updated_at": _iso(position.updated_ms), "instrument_type": "option",
            "notional_value": _usd(abs(leg.quantity) * spot), "maintenance_margin": _usd(alone.maintenance),
            "liquidation_price": None, "margin_ratio": _dec(ratio),
        }  # fmt: skip

    def _closed_position_json(self, position: _Position, now: int) -> dict[str, Any]:
        return {
            "wallet_address": DEMO_ADDRESS, "symbol": position.inst.name, "amount": "0.0", "entry_price": _dec(position.entry),
            "margin_posted": "0.0", "realized_pnl": _usd(position.realized), "unrealized_pnl": "0.0",
            "updated_at": _iso(position.updated_ms), "instrument_type": "option", "notional_value": "0.0",
            "maintenance_margin": "0.0", "liquidation_price": None, "margin_ratio": "0.0",
        }  # fmt: skip

    def _span(self, margin: Margin | None) -> dict[str, str]:
        if margin is None:
            return dict.fromkeys(("equity", "initial_margin_required", "maintenance_margin_required", "open_orders_initial_margin",
                                  "option_margin_required", "scanning_risk", "option_floor", "gamma_overlay", "hypercore_margin_required"), "0.0")  # fmt: skip
        return {
            "equity": _usd(margin.equity), "initial_margin_required": _usd(margin.initial),
            "maintenance_margin_required": _usd(margin.maintenance), "open_orders_initial_margin": _usd(self._open_orders_margin()),
            "option_margin_required": _usd(margin.initial), "scanning_risk": _usd(margin.scanning_risk),
            "option_floor": _usd(margin.option_floor), "gamma_overlay": _usd(margin.gamma_overlay), "hypercore_margin_required": "0.0",
        }  # fmt: skip

    def _margin_fields(self, margin: Margin | None) -> dict[str, Any]:
        """``span_margin``, ``margin_mode``, ``margin_summary`` and the balances (zeros without an account)."""
        if margin is None:
            summary = {"equity": "0.0", "maintenance_margin": "0.0", "initial_margin": "0.0", "liquidation_state": "Normal"}
            return {"span_margin": self._span(None), "margin_summary": summary, "margin_mode": "portfolio", "total_margin_used": "0.0", "available_balance": "0.0"}
        used = margin.initial + self._open_orders_margin()
        summary = {"equity": _usd(margin.equity), "maintenance_margin": _usd(margin.maintenance), "initial_margin": _usd(margin.initial),
                   "liquidation_state": self._liquidation_state}  # fmt: skip
        return {"span_margin": self._span(margin), "margin_summary": summary, "margin_mode": "portfolio",
                "total_margin_used": _usd(used), "available_balance": _usd(margin.equity - used)}  # fmt: skip

    def _greeks_fields(self, legs: list[tuple[_Position, Leg, Greeks]]) -> dict[str, Any]:
        per_leg = []
        total = Greeks(0.0, 0.0, 0.0, 0.0)
        weighted_iv = weights = 0.0
        for position, leg, greeks in legs:
            g = greeks.scaled(leg.quantity)
            per_leg.append({"symbol": position.inst.name, "quantity": _qty(position.lots), "delta": _num(g.delta), "gamma": _num(g.gamma),
                            "theta": _num(g.theta), "vega": _num(g.vega), "iv": _num(leg.vol)})  # fmt: skip
            total = Greeks(total.delta + g.delta, total.gamma + g.gamma, total.theta + g.theta, total.vega + g.vega)
            weighted_iv += abs(g.vega) * leg.vol
            weights += abs(g.vega)
        if not per_leg:
            return {"per_leg": [], "aggregate": None}
        iv = weighted_iv / weights if weights > 0 else None
        aggregate = {"delta": _num(total.delta), "gamma": _num(total.gamma), "theta": _num(total.theta), "vega": _num(total.vega),
                     "iv": None if iv is None else _num(iv)}  # fmt: skip
        return {"per_leg": per_leg, "aggregate": aggregate}

    def _order_update(self, order: _Order, now: int) -> bytes:
        return _frame({
            "type": "OrderUpdate", "order_id": order.order_id,
            "request": {"price": _dec(order.price), "size": _qty(order.lots), "symbol": order.inst.name,
                        "side": order.side.capitalize(), "tif": "gtc"},
            "status": order.status, "filled_size": _qty(order.filled_lots), "timestamp": now, "reason": order.reason,
            "wallet_address": DEMO_ADDRESS, "instrument_type": "option",
        })  # fmt: skip

    def _order_row(self, order: _Order) -> dict[str, Any]:
        return {
            "order_id": order.order_id, "wallet_address": DEMO_ADDRESS, "symbol": order.inst.name, "side": order.side,
            "price": _dec(order.price), "size": _qty(order.lots), "filled_size": _qty(order.filled_lots), "status": order.status,
            "tif": "gtc", "created_at": order.created_ms, "updated_at": order.updated_ms, "instrument_type": "option",
        }  # fmt: skip

    def _competition(self, wallet: str, now: int) -> bytes:
        if wallet != DEMO_ADDRESS:
            return _frame({"type": "CompetitionPnlSummary", "wallet_address": wallet, "lifetime_realized_pnl": "0.0", "active_competition": None, "timestamp": now})
        margin, legs = self._evaluate(now, pin=False)
        pnl = self._realized + sum(leg.quantity * (leg.mark - position.entry) for position, leg, _ in legs)
        volume = 25_000.0 + self._traded_usd
        competition = {
            "competition_id": 7, "competition_name": "Spring Sprint", "competition_state": "active", "rank": self._rank,
            "pnl": _usd(pnl), "volume": _usd(volume), "efficiency": format_decimal(pnl / volume, 5), "medal": None,
        }  # fmt: skip
        return _frame({"type": "CompetitionPnlSummary", "wallet_address": DEMO_ADDRESS, "lifetime_realized_pnl": _usd(1250.5 + self._realized),
                       "active_competition": competition, "timestamp": now})  # fmt: skip

    def _portfolio_snapshot(self, wallet: str, now: int) -> list[bytes]:
        """Initial, MarginUpdate, GreeksUpdate for ``wallet``."""
        if wallet != DEMO_ADDRESS:
            return [
                _frame({"type": "PortfolioUpdate", "positions": [], "timestamp": now}),
                _frame({"type": "PortfolioUpdate", **self._margin_fields(None), "timestamp": now}),
                _frame({"type": "PortfolioUpdate", "per_leg": [], "aggregate": None, "timestamp": now}),
            ]
        margin, legs = self._evaluate(now, pin=False)
        positions = [self._position_json(position, leg, margin, now) for position, leg, _ in legs]
        return [
            _frame({"type": "PortfolioUpdate", "positions": positions, "timestamp": now}),
            _frame({"type": "PortfolioUpdate", **self._margin_fields(margin), "timestamp": now}),
            _frame({"type": "PortfolioUpdate", **self._greeks_fields(legs), "timestamp": now}),
        ]

    # ==============================================================================================
    # Publishing
    # ==============================================================================================

    def _audience(self, channel: str) -> list[WsConnection]:
        return [conn for conn in self._subscribers.get(channel, ()) if not conn.closed]

    def _private_audience(self, channel: str, wallet: str = DEMO_ADDRESS) -> list[WsConnection]:
        return [conn for conn in self._audience(channel) if conn.state["wallet"] == wallet]

    async def _send_filtered(self, channel: str, inst: _Instrument, frame: bytes, audience: list[WsConnection] | None = None) -> None:
        for conn in self._audience(channel) if audience is None else audience:
            if conn.state["subs"][channel].passes(inst):
                await conn.send(frame)

    def _due(self, what: str, now: int, interval_ms: int) -> bool:
        if now - self._last[what] >= interval_ms:
            self._last[what] = now
            return True
        return False

    async def on_step(self, events: StepEvents) -> None:
        now = events.time
        for und in self.underlyings.values():
            while und.expiries and und.expiries[0] <= now:
                await self._expire(und, und.expiries[0], now)
        start = self._last["quote"]
        if self._due("quote", now, QUOTE_INTERVAL_MS):
            trades = self._quote_cycle(start, now)
            if self._subscribers.get("trades"):
                for trade in trades:
                    await self._send_filtered("trades", self.instruments[trade["symbol"]], _frame(trade))
            await self._publish_books(now)
            await self._publish_chain(now)
        if self._due("index", now, INDEX_INTERVAL_MS) and self._subscribers.get("index_prices"):
            await self.broadcast(self._audience("index_prices"), self._index_frame(now))
        if self._due("candles", now, CANDLE_INTERVAL_MS):
            await self._publish_candles(now)
        if self._script is not None and (stage := self._script.change(now)) is not None:
            self.set_liquidation_stage(stage)
        if now >= self._next_demo_trade:
            self._next_demo_trade = now + self._demo_rng.randrange(*DEMO_TRADE_EVERY_MS)
            await self._demo_trade(now)
        account_due = self._due("account", now, ACCOUNT_INTERVAL_MS)
        if account_due or self._check_account_now:
            self._check_account_now = False
            await self._publish_account(now, periodic=account_due)
        if self._due("competition", now, COMPETITION_INTERVAL_MS):
            self._rank = max(1, self._rank + self._demo_rng.choice((-1, 0, 0, 1)))
            for conn in self._audience("competition"):
                await conn.send(self._competition(conn.state["wallet"], now))

    async def _publish_books(self, now: int) -> None:
        audience = self._audience("orderbook")
        if not audience:
            return
        for inst in self.instruments.values():
            if inst.version == inst.pushed_version or now - inst.pushed_ms < QUOTE_INTERVAL_MS:
                continue
            targets = [conn for conn in audience if conn.state["subs"]["orderbook"].passes(inst)]
            if not targets:
                continue
            inst.pushed_version, inst.pushed_ms = inst.version, now
            frame = self._book_frame(inst)
            inst.last_frame = frame
            for faulted in self._book_pushes(inst, frame):
                await self.broadcast(targets, faulted)

    def _book_pushes(self, inst: _Instrument, frame: bytes) -> list[bytes]:
        """The frames one book push becomes under an armed fault (each book is complete)."""
        held, inst.held = inst.held, None
        after = [held] if held else []
        fault = self.take_book_fault(inst.name, ("skip", "duplicate", "reorder"))
        if fault == "skip":
            return after
        if fault == "duplicate":
            return [frame, frame, *after]
        if fault == "reorder":
            inst.held = frame
            return after
        return [frame, *after]

    async def _publish_chain(self, now: int) -> None:
        audience = self._audience("options_chain")
        if not audience:
            return
        for row in self._rows.values():
            if now - row.upserted_ms < CHAIN_INTERVAL_MS:
                continue
            fingerprint = tuple((leg.version, round(leg.mark / leg.und.tick), round(leg.iv, 4)) for leg in (row.call, row.put))
            if fingerprint == row.fingerprint:
                continue
            targets = [conn for conn in audience if self._row_passes(conn.state["subs"]["options_chain"], row)]
            if not targets:
                continue
            row.upserted_ms, row.fingerprint = now, fingerprint
            legs = {"call": self._leg(row.call), "put": self._leg(row.put)}
            frames: dict[str | None, bytes] = {}
            for conn in targets:
                option_type = conn.state["subs"]["options_chain"].option_type
                if option_type not in frames:
                    frames[option_type] = self._upsert(row, option_type, now, legs)
                await conn.send(frames[option_type])

    @staticmethod
    def _row_passes(subscription: _Filter, row: _Row) -> bool:
        symbols = subscription.symbols
        if symbols is not None and row.und.name not in symbols and row.call.name not in symbols and row.put.name not in symbols:
            return False
        return subscription.expiry is None or row.call.expiry_date == subscription.expiry

    async def _publish_candles(self, now: int) -> None:
        """The forming bar of every subscribed candle channel; first the closing frame of the bar
        sent before when its bucket has ended."""
        for channel, connections in list(self._subscribers.items()):
            if not channel.startswith("candles:") or not connections:
                continue
            und, resolution = self._candle_channel(channel)
            assert und is not None
            current = bucket_start(resolution, now)
            audience = self._audience(channel)
            opened = self._candle_open.get(channel)
            if opened is not None and current > opened:
                del self._candle_open[channel]
                closed = self.engine.candles(und.symbol, resolution, opened, opened, 1)
                if closed:
                    await self.broadcast(audience, _frame({"type": "Candle", **self._candle(und, resolution, closed[-1], now)}))
            bar = self.engine.current_candle(und.symbol, resolution)
            if bar.t == current:  # no trade in this bucket yet: no forming bar to show
                self._candle_open[channel] = bar.t
                await self.broadcast(audience, _frame({"type": "Candle", **self._candle(und, resolution, bar, now)}))

    async def _publish_account(self, now: int, *, periodic: bool) -> None:
        """Margin check (state changes) and, every second, GreeksUpdate + MarginUpdate."""
        margin, legs = self._evaluate(now)
        state = margin.state
        if state != self._liquidation_state:
            previous, self._liquidation_state = self._liquidation_state, state
            await self._publish_liquidation(previous, state, margin, now)
        if not periodic:
            return
        demo_frames: list[bytes] | None = None
        empty_frames: list[bytes] | None = None
        for conn in self._audience("portfolio"):
            if conn.state["wallet"] == DEMO_ADDRESS:
                demo_frames = demo_frames or [
                    _frame({"type": "PortfolioUpdate", **self._greeks_fields(legs), "timestamp": now}),
                    _frame({"type": "PortfolioUpdate", **self._margin_fields(margin), "timestamp": now}),
                ]
                frames = demo_frames
            else:
                empty_frames = empty_frames or [
                    _frame({"type": "PortfolioUpdate", "per_leg": [], "aggregate": None, "timestamp": now}),
                    _frame({"type": "PortfolioUpdate", **self._margin_fields(None), "timestamp": now}),
                ]
                frames = empty_frames
            for frame in frames:
                await conn.send(frame)

    async def _publish_liquidation(self, previous: str, state: str, margin: Margin, now: int) -> None:
        full = None
        if state == "Liquidating":
            self._auction = f"auc-{next(self._auction_ids)}"
            self._auction_started = now
            full = {
                "auction_id": self._auction, "request_id": None, "tx_hash": None, "started_at": now, "chain_start_time": None,
                "margin_needed": _usd(margin.shortfall), "stop_request_id": None, "stop_tx_hash": None, "liquidated_at": None,
                "winner": None, "bonus": None, "resolution_tx_hash": None,
            }  # fmt: skip
        else:
            self._auction = None
        frame = _frame({
            "type": "LiquidationStateChange", "wallet_address": DEMO_ADDRESS, "previous_state": previous, "new_state": state,
            "liquidation_mode": "full" if full else None, "margin_mode": "portfolio", "equity": _usd(margin.equity),
            "mm_required": _usd(margin.maintenance), "maintenance_margin": _usd(margin.maintenance),
            "shortfall": _usd(margin.shortfall), "auction_id": self._auction, "partial_liquidation": None,
            "full_liquidation": full, "timestamp": now,
        })  # fmt: skip
        await self.broadcast(self._private_audience("liquidation"), frame)

    async def _demo_trade(self, now: int) -> None:
        """The demo wallet takes liquidity on one of its legs (module docstring)."""
        rng = self._demo_rng
        if self._positions:
            position = rng.choice(list(self._positions.values()))
            inst = position.inst
            lots = rng.randrange(1, 11)
            side = ("sell" if position.lots > 0 else "buy") if rng.random() < 0.5 else ("buy" if position.lots > 0 else "sell")
        else:
            listed = list(self.instruments.values())
            inst = listed[rng.randrange(len(listed))]
            lots, side = rng.randrange(1, 11), rng.choice(("buy", "sell"))
        taken = self._take(inst, side, lots, now)
        if taken is None:
            return
        px, lots = taken
        price = inst.px_float(px)
        spot = self.engine.fair_price(inst.und.name)
        fee = min(0.0003 * spot * lots / 10, 0.125 * price * lots / 10)
        order = _Order(next(self._order_ids), inst, side, price, lots, 0, "OPEN", now, now)
        self._orders[order.order_id] = order
        self._trim_orders()
        private = {channel: [conn for conn in self._private_audience(channel) if conn.state["subs"][channel].passes(inst)]
                   for channel in ("order_updates", "fills")}  # fmt: skip
        await self.broadcast(private["order_updates"], self._order_update(order, now))
        trade_id = next(self._trade_ids)
        fill = {
            "order_id": order.order_id, "fill_id": next(self._fill_ids), "symbol": inst.name, "side": side, "price": inst.px(px),
            "size": _qty(lots), "timestamp": now, "wallet_address": DEMO_ADDRESS, "fee": _dec(fee, 6), "trade_id": trade_id,
            "is_taker": True, "builder_code_address": None, "builder_code_fee": None, "instrument_type": "option",
        }  # fmt: skip
        self._fills.append(fill)
        await self.broadcast(private["fills"], _frame({"type": "Fill", **fill}))
        order.filled_lots, order.status = lots, "FILLED"
        await self.broadcast(private["order_updates"], self._order_update(order, now))
        if self._subscribers.get("trades"):
            await self._send_filtered("trades", inst, _frame(self._trade_frame(inst, side, px, lots, now)))
        position = self._apply_fill(inst, side, price, lots, fee, now)
        portfolio = self._private_audience("portfolio")
        if portfolio:
            margin, legs = self._evaluate(now, pin=False)
            if position.lots:
                leg = next(leg for held, leg, _ in legs if held is position)
                body = self._position_json(position, leg, margin, now)
            else:
                body = self._closed_position_json(position, now)
            await self.broadcast(portfolio, _frame({"type": "PortfolioUpdate", "position": body, "timestamp": now}))
            used = margin.initial + self._open_orders_margin()
            await self.broadcast(portfolio, _frame({"type": "PortfolioUpdate", "total_margin_used": _usd(used), "timestamp": now}))
        self._check_account_now = True

    def _apply_fill(self, inst: _Instrument, side: str, price: float, lots: int, fee: float, now: int) -> _Position:
        signed = lots if side == "buy" else -lots
        self._cash -= signed * price / 10 + fee
        self._traded_usd += price * lots / 10
        position = self._positions.get(inst.name) or _Position(inst, 0, price, 0.0, now)
        old = position.lots
        new = old + signed
        if old == 0 or (old > 0) == (signed > 0):
            position.entry = (position.entry * abs(old) + price * lots) / abs(new)
        else:
            closed = min(abs(old), lots)
            pnl = closed / 10 * (price - position.entry) * (1 if old > 0 else -1)
            position.realized += pnl
            self._realized += pnl
            if new and (new > 0) != (old > 0):
                position.entry = price  # flipped through zero
        position.lots, position.updated_ms = new, now
        if new:
            self._positions[inst.name] = position
        else:
            self._positions.pop(inst.name, None)
        return position

    def _trim_orders(self) -> None:
        while len(self._orders) > 1_000:
            oldest = next(order_id for order_id, order in self._orders.items() if order.status not in ("OPEN", "PARTIALLY_FILLED"))
            del self._orders[oldest]

    async def _expire(self, und: _Underlying, expiry_ms: int, now: int) -> None:
        """Settle one expiry of ``und`` at the index and list a new far one (module docstring)."""
        settlement = self.engine.fair_price(und.name)
        rows = [key for key, row in self._rows.items() if row.und is und and row.expiry_ms == expiry_ms]
        expiring = [inst for key in rows for inst in (self._rows[key].call, self._rows[key].put)]
        market_updates = self._audience("market_updates")
        chain = self._audience("options_chain")
        portfolio = self._private_audience("portfolio")
        order_updates = self._private_audience("order_updates")
        for inst in expiring:
            await self.broadcast(market_updates, self._market_update(inst, "Expired", now))
            remove = _frame({"type": "OptionsChainUpdate", "action": "Remove", "currency": und.name, "expiry": inst.expiry_s,
                             "strike": float(inst.strike), "option_type": inst.option_type, "symbol": inst.name, "timestamp": now})  # fmt: skip
            for conn in chain:
                subscription = conn.state["subs"]["options_chain"]
                row = self._rows[(und.name, expiry_ms, inst.strike)]
                if self._row_passes(subscription, row) and subscription.option_type in (None, inst.option_type):
                    await conn.send(remove)
            position = self._positions.pop(inst.name, None)
            if position is not None:
                intrinsic = max(0.0, settlement - inst.strike) if inst.is_call else max(0.0, inst.strike - settlement)
                value = position.quantity * intrinsic
                cost = position.quantity * position.entry
                self._cash += value
                self._realized += value - cost
                frame = _frame({
                    "type": "PositionExpired", "wallet_address": DEMO_ADDRESS, "symbol": inst.name,
                    "position_size": _qty(position.lots), "settlement_price": format_decimal(settlement, und.index_decimals),
                    "settlement_value": _usd(value), "settlement_entry_price": _dec(position.entry), "cost_basis": _usd(cost),
                    "net_pnl": _usd(value - cost), "timestamp": now,
                })  # fmt: skip
                await self.broadcast(portfolio, frame)
            for order in self._orders.values():
                if order.inst is inst and order.status in ("OPEN", "PARTIALLY_FILLED"):
                    order.status, order.reason, order.updated_ms = "CANCELED", "expired", now
                    targets = [conn for conn in order_updates if conn.state["subs"]["order_updates"].passes(inst)]
                    await self.broadcast(targets, self._order_update(order, now))
            del self.instruments[inst.name]
            del self._by_id[inst.instrument_id]
        for key in rows:
            del self._rows[key]
        und.expiries = [expiry for expiry in und.expiries if expiry != expiry_ms]
        far = _next_far_expiry(max(und.expiries, default=expiry_ms))
        for inst in self._list_expiry(und, far, now):
            await self.broadcast(market_updates, self._market_update(inst, "Created", now))
        self._check_account_now = True

    # -- test hooks and benchmark ----------------------------------------------------------------

    async def close_slow_consumer(self, cls: str = "ordered_public", cause: str = "message_age", recovery: str | None = None) -> None:
        """Close every WebSocket with 1008 and the venue's JSON slow-consumer reason."""
        if cls not in SLOW_CONSUMER_CLASSES:
            raise ValueError(f"unknown class {cls!r} (known: {', '.join(SLOW_CONSUMER_CLASSES)})")
        reason = orjson.dumps({"error": "slow_consumer", "class": cls, "cause": cause, "recovery": recovery or SLOW_CONSUMER_CLASSES[cls]}).decode()
        conns = list(self.connections)
        await asyncio.gather(*(asyncio.wait_for(conn.close(CLOSE_POLICY_VIOLATION, reason), 2.0) for conn in conns), return_exceptions=True)

    async def flood(self, market: str, count: int) -> int:
        """Send ``count`` OrderbookUpdate frames of instrument ``market`` to its orderbook subscribers
        as fast as they drain (sizes perturbed; the last frame is the true book). Returns frames sent."""
        inst = self.instruments.get(market)
        if inst is None:
            raise KeyError(f"unknown instrument {market!r}")
        audience = [conn for conn in self._audience("orderbook") if conn.state["subs"]["orderbook"].passes(inst)]
        if not audience or count <= 0:
            return 0
        return await self.send_burst(audience, self._flood_frames(inst, count))

    def _flood_frames(self, inst: _Instrument, count: int) -> Iterator[bytes]:
        variants = [
            self._book_frame(inst, [[px, lots + 1 + (v if i == 0 else (v * i) % 7)] for i, (px, lots) in enumerate(inst.bids)],
                             [[px, lots + 1 + (v if i == 0 else (v * i) % 5)] for i, (px, lots) in enumerate(inst.asks)])
            for v in range(_FLOOD_VARIANTS)
        ]  # fmt: skip
        for index in range(count - 1):
            yield variants[index % _FLOOD_VARIANTS]
        yield self._book_frame(inst)

    # ==============================================================================================
    # WebSocket
    # ==============================================================================================

    async def on_ws_open(self, conn: WsConnection) -> None:
        conn.state.update(wallet=None, subs={})
        self.start_heartbeat(conn, self.ping_interval, self.pong_timeout)
        wallet = conn.request.query.get("wallet")
        if wallet is not None:
            if _WALLET.match(wallet):
                conn.state["wallet"] = wallet.lower()
            else:
                await self._error(conn, "Invalid wallet address")

    def on_ws_close(self, conn: WsConnection) -> None:
        for channel in conn.state.get("subs", {}):
            self._detach(conn, channel)

    def _detach(self, conn: WsConnection, channel: str) -> None:
        connections = self._subscribers.get(channel)
        if connections is not None:
            connections.discard(conn)
            if not connections:
                del self._subscribers[channel]
                self._candle_open.pop(channel, None)

    async def _error(self, conn: WsConnection, message: str) -> None:
        await conn.send(_frame({"type": "Error", "message": message}))

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        try:
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _BadMessage("Invalid message: not valid JSON") from None
            if not isinstance(message, dict):
                raise _BadMessage("Invalid message: expected a JSON object")
            kind = message.get("type")
            if not isinstance(kind, str):
                raise _BadMessage("Invalid message: missing string field `type`")
            if kind == "Authenticate":
                await self._authenticate(conn, message)
            elif kind in ("Subscribe", "Unsubscribe"):
                await self._subscription(conn, kind, message)
            elif kind == "ClockSync":
                await conn.send(_frame({"type": "ClockSynced", "nonce": message.get("nonce"), "server_at": self.now_ms()}))
            else:
                raise _BadMessage(f"Unknown message type: {_echo(kind)}")
        except _BadMessage as error:
            await self._error(conn, str(error))

    async def _authenticate(self, conn: WsConnection, message: dict[str, Any]) -> None:
        wallet = message.get("wallet")
        if not isinstance(wallet, str) or not _WALLET.match(wallet):
            raise _BadMessage("Invalid wallet address")
        conn.state["wallet"] = wallet.lower()
        await conn.send(_frame({"type": "Authenticated", "wallet": conn.state["wallet"]}))

    def _candle_channel(self, channel: str) -> tuple[_Underlying | None, str]:
        """``candles:<UND>:<RES>`` as (underlying, resolution); ``(None, "")`` if not a listed one."""
        body = channel.removeprefix("candles:")
        name, _, resolution = body.rpartition(":")
        und = self.underlyings.get(name)
        if und is None or resolution not in CANDLE_RESOLUTIONS:
            return None, ""
        return und, resolution

    async def _subscription(self, conn: WsConnection, kind: str, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        if not isinstance(channel, str):
            raise _BadMessage("Invalid message: missing string field `channel`")
        known = channel in PUBLIC_CHANNELS or channel in PRIVATE_CHANNELS or (channel.startswith("candles:") and self._candle_channel(channel)[0] is not None)
        if not known:
            raise _BadMessage(f"Invalid channel: {_echo(channel)}")
        symbols = message.get("symbols")
        if symbols is not None and (not isinstance(symbols, list) or not all(isinstance(symbol, str) for symbol in symbols)):
            raise _BadMessage("Invalid message: `symbols` must be an array of strings")
        expiry = message.get("expiry")
        if expiry is not None and not (isinstance(expiry, str) and _DATE.match(expiry) and _valid_date(expiry)):
            raise _BadMessage("Invalid message: `expiry` must be a date YYYY-MM-DD")
        option_type = message.get("option_type")
        if option_type is not None and option_type not in ("call", "put"):
            raise _BadMessage('Invalid message: `option_type` must be "call" or "put"')
        if channel in PRIVATE_CHANNELS and conn.state["wallet"] is None:
            raise _BadMessage(f"Authentication required for channel: {_echo(channel)}")
        subs: dict[str, _Filter] = conn.state["subs"]
        if kind == "Unsubscribe":
            current = subs.get(channel)
            if current is not None:
                if symbols and current.symbols is not None:
                    current.symbols.difference_update(symbols)
                if not symbols or current.symbols == set():
                    del subs[channel]
                    self._detach(conn, channel)
            await conn.send(_frame({"type": "Unsubscribed", "channel": channel}))
            return
        current = subs.get(channel)
        if current is None:
            current = subs[channel] = _Filter(set(symbols) if symbols else None)
            self._subscribers.setdefault(channel, set()).add(conn)
        elif not symbols:
            current.symbols = None
        elif current.symbols is not None:
            current.symbols.update(symbols)
        if expiry is not None:
            current.expiry = expiry
        if option_type is not None:
            current.option_type = option_type
        if channel == "orderbook":
            for inst in self.instruments.values():
                if current.passes(inst) and self.take_book_fault(inst.name, ("delta_before_snapshot",)):
                    await conn.send(inst.last_frame or self._book_frame(inst))  # data before the ack
        await conn.send(_frame({"type": "Subscribed", "channel": channel}))
        for frame in self._snapshot(conn, channel, current):
            await conn.send(frame)

    def _snapshot(self, conn: WsConnection, channel: str, subscription: _Filter) -> Iterator[bytes]:
        """What a Subscribe to ``channel`` sends after its ack (module docstring)."""
        now = self.engine.now_ms
        wallet = conn.state["wallet"]
        if channel == "orderbook":
            for inst in self.instruments.values():
                if subscription.passes(inst):
                    yield self._book_frame(inst)
        elif channel == "options_chain":
            for row in self._rows.values():
                if self._row_passes(subscription, row):
                    yield self._upsert(row, subscription.option_type, now, {"call": self._leg(row.call), "put": self._leg(row.put)})
        elif channel == "index_prices":
            yield self._index_frame(now)
        elif channel.startswith("candles:"):
            und, resolution = self._candle_channel(channel)
            assert und is not None
            bar = self.engine.current_candle(und.symbol, resolution)
            self._candle_open.setdefault(channel, bar.t)
            yield _frame({"type": "Candle", **self._candle(und, resolution, bar, now)})
        elif channel == "portfolio":
            yield from self._portfolio_snapshot(wallet, now)
        elif channel == "competition":
            yield self._competition(wallet, now)

    # ==============================================================================================
    # REST
    # ==============================================================================================

    def http_routes(self) -> list[web.RouteDef]:
        routes = {
            "/markets": self._rest_markets,
            "/orderbook": self._rest_orderbook,
            "/candles": self._rest_candles,
            "/portfolio": self._rest_portfolio,
            "/portfolio/greeks": self._rest_greeks,
            "/orders": self._rest_orders,
            "/fills": self._rest_fills,
        }
        return [web.get(path, self._rest(handler)) for path, handler in routes.items()]

    def _rest(self, handler: Any) -> Any:
        async def serve(request: web.Request) -> web.StreamResponse:
            limited = self._rate_limited(request)
            if limited is not None:
                return limited
            try:
                return _json(handler(request.query, self.engine.now_ms))
            except _RestError as error:
                return _error_response(error.status, error.message)

        return serve

    def _rate_limited(self, request: web.Request) -> web.Response | None:
        """A rolling minute from the first request counted, per client address."""
        now = time.monotonic()
        window = self._rest_windows.setdefault(request.remote or "", [now, 0])
        if now - window[0] >= 60.0:
            window[0], window[1] = now, 0
        if window[1] >= self.rest_rate_limit:
            retry = max(1, math.ceil(60.0 - (now - window[0])))
            return _error_response(429, "Too many requests", {"Retry-After": str(retry)})
        window[1] += 1
        return None

    def _wallet(self, query: Any) -> str:
        wallet = query.get("wallet", "")
        if not _WALLET.match(wallet):
            raise _RestError(400, "Invalid wallet address")
        return wallet.lower()

    def _rest_markets(self, query: Any, now: int) -> Any:
        data = []
        for und in self.underlyings.values():
            spot = self.engine.fair_price(und.name)
            spec = self.engine.spec(und.symbol)
            previous = self.engine.candles(und.symbol, "1m", now - _DAY_MS, now - _DAY_MS, 1)
            for expiry in und.expiries:
                instruments = [inst for inst in self.instruments.values() if inst.und is und and inst.expiry_ms == expiry]
                t = years_between(now, expiry)
                data.append({
                    "underlying": und.name, "expiry": expiry // 1000,
                    "index_price": format_decimal(spot, und.index_decimals), "atm_vol": _dec(und.surface.atm_at(t)),
                    "instruments": [{
                        "instrument_id": inst.instrument_id, "id": inst.name, "underlying": und.name, "strike": inst.strike_text,
                        "expiry": inst.expiry_s, "option_type": inst.option_type, "option_token_address": None,
                        "mark_iv": _dec(inst.iv), "volume_24h": _qty(inst.volume_lots), "open_interest": _qty(inst.open_interest_lots),
                        "updated_at": _iso(inst.changed_ms), "status": "active",
                    } for inst in instruments],
                    "total_volume_24h": _qty(sum(inst.volume_lots for inst in instruments)),
                    "total_open_interest": _qty(sum(inst.open_interest_lots for inst in instruments)),
                    "prev_day_price": spec.px_str(previous[0].c) if previous else format_decimal(spot, und.index_decimals),
                })  # fmt: skip
        return {"success": True, "data": data, "error": None}

    def _instrument(self, query: Any) -> _Instrument:
        key = query.get("instrument_id", "")
        if not key:
            raise _RestError(400, "Missing instrument_id")
        inst = self.instruments.get(key)
        if inst is None and key.isascii() and key.isdigit() and len(key) < 12:
            inst = self._by_id.get(int(key))
        if inst is None:
            raise _RestError(404, "Instrument not found")
        return inst

    def _rest_orderbook(self, query: Any, now: int) -> Any:
        inst = self._instrument(query)
        depth = _int_param(query, "depth", BOOK_LEVELS, 1, 1_000)
        spot = self.engine.fair_price(inst.und.name)
        bids = [[inst.px_float(px), lots / 10] for px, lots in inst.bids[:depth]]
        asks = [[inst.px_float(px), lots / 10] for px, lots in inst.asks[:depth]]
        leg = self._leg(inst)
        g = inst.greeks
        change = (inst.mark - inst.open_mark) / inst.open_mark * 100 if inst.open_mark > 0 else 0.0
        result = {
            "instrument_name": inst.name, "bids": bids, "asks": asks, "change_id": inst.version,
            "mark_price": _num(inst.mark), "mark_iv": _num(inst.iv),
            "bid_iv": leg["bid_iv"] if bids else None, "ask_iv": leg["ask_iv"] if asks else None,
            "best_bid_price": bids[0][0] if bids else None, "best_ask_price": asks[0][0] if asks else None,
            "index_price": _num(spot), "underlying_price": _num(spot), "open_interest": inst.open_interest_lots / 10,
            "greeks": {"delta": _num(g.delta), "gamma": _num(g.gamma), "theta": _num(g.theta), "vega": _num(g.vega)},
            "stats": {"high": inst.high, "low": inst.low, "price_change": _num(change), "volume": inst.volume_lots / 10,
                      "volume_usd": _num(inst.volume_usd)},
            "timestamp": now, "state": "open",
        }  # fmt: skip
        return {"jsonrpc": "2.0", "result": result, "testnet": False, "usIn": now * 1000, "usOut": now * 1000, "usDiff": 0}

    def _rest_candles(self, query: Any, now: int) -> Any:
        und = self.underlyings.get(query.get("underlying", ""))
        if und is None:
            raise _RestError(400, "Invalid underlying")
        resolution = query.get("resolution", "")
        if resolution not in CANDLE_RESOLUTIONS:
            raise _RestError(400, "Invalid resolution")
        limit = _int_param(query, "limit", 500, 1, _REST_CANDLE_CAP)
        bars = self.engine.candles(und.symbol, resolution, 0, now, limit)
        return {"success": True, "data": [self._candle(und, resolution, bar, now) for bar in bars], "error": None}

    def _rest_portfolio(self, query: Any, now: int) -> Any:
        wallet = self._wallet(query)
        if wallet != DEMO_ADDRESS:
            fields = self._margin_fields(None)
            positions: list[dict[str, Any]] = []
        else:
            margin, legs = self._evaluate(now, pin=False)
            fields = self._margin_fields(margin)
            positions = [self._position_json(position, leg, margin, now) for position, leg, _ in legs]
        return {
            "wallet_address": wallet, "positions": positions, "total_margin_used": fields["total_margin_used"],
            "available_balance": fields["available_balance"], "withdrawable_usdc": _usd(max(0.0, float(fields["available_balance"]))),
            "portfolio_snapshot_timestamp_ms": now, "span_margin": fields["span_margin"], "margin_mode": "portfolio",
            "margin_summary": fields["margin_summary"],
        }  # fmt: skip

    def _rest_greeks(self, query: Any, now: int) -> Any:
        wallet = self._wallet(query)
        legs = self._legs(now) if wallet == DEMO_ADDRESS else []
        return {"wallet_address": wallet, **self._greeks_fields(legs)}

    def _page(self, rows: list[dict[str, Any]], query: Any) -> Any:
        page = _int_param(query, "page", 1, 1, 10**6)
        size = _int_param(query, "page_size", 100, 1, 1_000)
        chosen = rows[(page - 1) * size : page * size]
        return {"success": True, "data": chosen, "pagination": {"page": page, "page_size": size, "total": len(rows)}}

    def _rest_orders(self, query: Any, now: int) -> Any:
        wallet = self._wallet(query)
        status = query.get("status", "").lower()
        wanted = {"": None, "all": None, "open": ("OPEN", "PARTIALLY_FILLED"), "filled": ("FILLED",), "canceled": ("CANCELED",), "cancelled": ("CANCELED",)}
        if status not in wanted:
            raise _RestError(400, "Invalid status")
        orders = list(self._orders.values()) if wallet == DEMO_ADDRESS else []
        statuses = wanted[status]
        rows = [self._order_row(order) for order in reversed(orders) if statuses is None or order.status in statuses]
        return self._page(rows, query)

    def _rest_fills(self, query: Any, now: int) -> Any:
        wallet = self._wallet(query)
        rows = list(reversed(self._fills)) if wallet == DEMO_ADDRESS else []
        return self._page(rows, query)


def _valid_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _int_param(query: Any, name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10) or not low <= int(raw) <= high:
        raise _RestError(400, f"Invalid {name}")
    return int(raw)
