"""Aster emulator: futures (perps) and spot market streams and REST, on one port.

Follows the wire reference ``protocols/aster.md`` (Binance USD-M futures / Binance spot clones) and
Aster's own API docs (``asterdex/api-docs`` V3 futures and spot) so that ccxt's ``aster`` and
``binanceusdm`` work against it unchanged, with only their URLs pointed here. The market itself
(books, trades, candles, mark and funding) comes from :class:`app.sim.engine.MarketEngine`; this
module names, numbers, validates and formats.

URL layout (one port; real Aster uses three hosts)::

    futures streams  /stream[?streams=a/b]   combined: every data frame {"stream": name, "data": payload}
                     /ws  /ws/<stream>[/<stream>...]   raw payloads; a /ws/<stream> socket starts subscribed
    spot streams     /spot/stream[?streams=...]  /spot/ws  /spot/ws/<stream>...
    futures REST     /fapi/v1/...  /fapi/v3/...   (same handlers)
    spot REST        /api/v1/...   /api/v3/...

[D] Real spot streams live on another host (``sstream.asterdex.com``) with the same paths; one
emulator port serves both, so spot streams get the ``/spot`` path prefix. Spot REST needs no prefix
(``/api`` vs ``/fapi`` already differ), exactly as ccxt's ``urls`` expect (``.../api``, ``.../fapi``).

Wire facts implemented ([V] in the reference, section numbers are its sections):

* §3 ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``/``SET_PROPERTY``/``GET_PROPERTY`` with an
  unsigned-integer ``id``; acks ``{"result":null,"id":N}``; the documented ``{"code","msg"}`` errors;
  ``combined`` is true on ``/stream``, false on ``/ws``, and can be switched per connection.
  A request without ``id`` (or ``"id": null``) is served and answered with ``"id": null``: ccxt's
  ``aster`` WebSocket client subscribes without one and its captured frames show real Aster streaming
  to it; a present ``id`` that is not an unsigned integer is the documented code-2 error.
* §4.1 diff depth ``<sym>@depth`` (250 ms), ``@depth@500ms``, ``@depth@100ms`` with ``U``/``u``/``pu``;
  REST ``depth`` ``lastUpdateId`` is the id of the last update in the book it returns, so the documented
  local-book procedure rebuilds the emulator's book exactly. Futures update ids come from one counter
  shared by every futures symbol (as on Binance), so ``U > prev u + 1`` is normal there and only ``pu``
  chains events; spot ids are consecutive per symbol (the spot rule ``U == prev u + 1`` holds).
* §4.2 partial depth ``@depth5/10/20[@500ms|@100ms]``: top-N snapshots, same field names.
* §4.3 ``@aggTrade`` (``m`` = buyer is maker); spot also ``@trade``. §4.4 ``@ticker``, ``@miniTicker``;
  ``@markPrice[@1s]`` (futures). §4.5 ``!ticker@arr``/``!miniTicker@arr``: only symbols whose ticker
  changed since that stream's last push. §4.6 ``@kline_<interval>`` (15 intervals) with ``x``, one
  closing frame per bar, trade ids ``f``/``L`` consecutive across bars. §4.7 ``@bookTicker``,
  ``!bookTicker``, ``!markPrice@arr[@1s]``.
* Key order, strings vs numbers and decimal padding as in the recorded Binance futures frames
  (``fixtures/binance_futures``): prices and sizes are fixed-decimal strings (``"7.6110"``), ids and
  times integers; stream names lowercase, payload symbols uppercase.
* §2 limits: 10 (futures) / 5 (spot) incoming frames per second per connection, pings and pongs
  included; 200 / 1024 streams per connection; a ping control frame every 300 s / 180 s and a close
  when no pong came for 900 s / 600 s (constructor options); the 24 h lifetime via the base server's
  ``max_connection_age`` (close 1001). REST weights per the docs, ``X-MBX-USED-WEIGHT-1m`` on every
  answer, 429 with ``Retry-After`` (seconds) and code -1003 over ``weight_limit`` (futures, default
  2400) or ``spot_weight_limit`` (spot, default 6000 as the spot ``exchangeInfo`` example shows).
* REST ``ping``, ``time``, ``exchangeInfo``, ``depth`` (limits 5..1000; default 500 futures, 100
  spot), ``trades``, ``historicalTrades``, ``aggTrades``, ``klines`` (default 500, max 1500),
  ``ticker/24hr``, ``ticker/price``, ``ticker/bookTicker``, ``premiumIndex`` (futures); errors
  ``{"code":-1121,"msg":"Invalid symbol."}`` etc. with HTTP 400.

Design decisions ([D]; the venue is silent or the sources disagree):

* WebSocket errors carry ``id`` whenever the request had a valid one (the documented table omits it;
  Binance-style servers include it); parse errors and invalid ids have none.
* Exceeding the message rate closes with 1008 "too many requests"; a missing pong closes with 1008
  "pong timeout"; a request that would pass the stream limit is refused whole with
  ``{"code":2,"msg":"Invalid request: too many streams ..."}`` (too many in the URL: that error, then
  close 1008). Unknown or misspelled streams are acknowledged, listed and silent (Binance's behaviour,
  reference §3 [I]). There is no idle close (Aster relies on ping/pong): ``idle_timeout`` defaults to
  infinity.
* Spot depth frames have the futures shape (``e,E,T,s,U,u,pu,b,a``): Aster's spot doc shows ``T`` and
  ``pu`` in both examples and ccxt reads spot partial depth from ``b``/``a``. With consecutive spot
  ids ``pu == U - 1``, so clients following either the spot rule or the futures rule stay in sync.
  Spot REST ``depth`` has ``E``/``T`` too (spot doc example).
* Spot REST ``trades`` rows follow the spot doc's examples literally: ``qty`` is the quote amount and
  ``baseQty`` the base amount (``baseQty == qty / price`` in both examples), 8 decimals; futures rows
  have the base ``qty`` and ``quoteQty``. (ccxt reads ``qty`` as the amount either way.) Kline ``V``/``Q`` (taker-buy volume) are exact for live trades;
  for generated history (which has no aggressor side) half of the volume is counted as taker buys.
* Every engine fill is its own aggregate trade (the engine fills each price level once per taker).
  Trade ids are consecutive per symbol and count the generated history too (``engine.trade_count``),
  so kline ``f``/``L`` and ticker ``F``/``L``/``n`` agree with REST ``trades``.
* Funding every 8 h; mark, index and funding rate printed with 8 decimals; the index is the engine's
  oracle price and also the estimated settle price. Tickers come from the 1m candles of the rolling
  24 h window (``prevClosePrice`` is the window's open); ``lastQty`` is 0 until a live trade.
* The 429 weight window is a rolling minute from the first request counted (per client address and
  per futures/spot), not the wall-clock minute, so tests do not depend on when they run.
* Book faults and :meth:`AsterEmulator.flood` name markets as :meth:`AsterEmulator.market_key` does:
  the symbol for futures (``"BTCUSDT"``), ``"spot:<SYMBOL>"`` for spot. Faults apply to diff-depth
  streams: ``skip`` consumes an event (its ids) without sending it, so the next event's ``pu``
  (spot: ``U``) shows the gap; ``duplicate`` sends one event twice; ``reorder`` holds one event and
  sends it after the next; ``delta_before_snapshot`` makes the next subscriber of that market's diff
  depth receive a (stale, already published) diff before the subscription's ack.
* ``hostile_names=True`` adds the engine's hostile-named markets (quoted in USDT).
* Weekly candles open on Thursdays (the engine's epoch-aligned buckets); Binance's open on Mondays.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from app.sim.engine import (
    CANDLE_INTERVALS,
    DEFAULT_ASSETS,
    HOSTILE_ASSETS,
    AssetSpec,
    Bar,
    StepEvents,
    Trade,
    bucket_end,
    bucket_start,
)
from app.sim.server import EmulatorServer, WsConnection

__all__ = ["ASTER_ASSETS", "AsterEmulator"]

_MINUTE = 60_000
_DAY = 24 * 60 * _MINUTE
_FUNDING_PERIOD_MS = 8 * 60 * _MINUTE
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_TAPE_LENGTH = 5_000
_CLOSE_POLICY = 1008
_MAX_REQUEST_ID = 2**64 - 1
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_UNKNOWN_METHOD = (
    "Invalid request: unknown variant {}, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
    "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line {} column {}"
)
_METHOD_VALUE = re.compile(r'"method"\s*:\s*"(?:[^"\\]|\\.)*"')
_UNSIGNED = re.compile(r"^[0-9]{1,20}$")
_FLOOD_LEVELS = 1000
_FLOOD_CHANGES_PER_SIDE = 10
_FLOOD_TEMPLATES = 64

#: One flood event: bid and ask changes as ``(px, lots)`` and the same formatted for the wire.
_FloodChange = tuple[list[tuple[int, int]], list[tuple[int, int]], list[list[str]], list[list[str]]]

_DEFAULTS = {spec.symbol: spec for spec in DEFAULT_ASSETS}

#: The Aster universe: the four perps on the same underlyings, prices and activity as the other
#: venues' emulators (Aster's tick and step sizes), and two spot pairs, one on its own underlying.
#: The perps come first and in the default order, so with one seed they start at the same prices with
#: the same generated history as on Hyperliquid's emulator; from the first step on the paths differ,
#: because the engine draws every market's randomness from one shared generator.
ASTER_ASSETS: tuple[AssetSpec, ...] = (
    replace(_DEFAULTS["BTC"], quote="USDT", px_decimals=1, sz_decimals=3),
    replace(_DEFAULTS["ETH"], quote="USDT", px_decimals=2, sz_decimals=3),
    replace(_DEFAULTS["SOL"], quote="USDT", px_decimals=2, sz_decimals=2),
    replace(_DEFAULTS["HYPE"], quote="USDT", px_decimals=3, sz_decimals=2),
    AssetSpec("ASTER/USDT", "ASTER", "USDT", "spot", sz_decimals=2, px_decimals=4, initial_px=1.2,
              daily_vol=0.08, trades_per_s=0.8, trade_notional=400.0, level_notional=4_000.0,
              level_gap_bps=4.0, spread_bps=3.0, circulating_supply=1_650_000_000.0),
    AssetSpec("BTC/USDT", "BTC", "USDT", "spot", sz_decimals=5, px_decimals=2, initial_px=97_000.0,
              daily_vol=0.025, trades_per_s=0.6, trade_notional=1_500.0, level_notional=10_000.0,
              level_gap_bps=2.0, spread_bps=1.0, circulating_supply=19_800_000.0),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Family:
    """What differs between Aster's futures and spot APIs (reference §1-§4, spot doc A3)."""

    name: str
    ws_prefix: str
    rest_prefixes: tuple[str, ...]
    depth_speeds: Mapping[str, int]  # stream suffix -> push interval (ms), diff and partial depth
    ticker_ms: int
    kline_ms: int
    depth_default_limit: int

    @property
    def is_spot(self) -> bool:
        return self.name == "spot"


FUTURES = _Family("futures", "", ("/fapi/v1", "/fapi/v3"), {"": 250, "@500ms": 500, "@100ms": 100}, 500, 250, 500)
SPOT = _Family("spot", "/spot", ("/api/v1", "/api/v3"), {"": 1000, "@100ms": 100}, 1000, 2000, 100)


# --------------------------------------------------------------------------------------------------
# Formatting (Binance style: fixed decimals, trailing zeros kept)
# --------------------------------------------------------------------------------------------------


def _fixed(units: int, decimals: int) -> str:
    """``units * 10**-decimals`` with exactly ``decimals`` decimals: ``"7.6110"``, ``"297"``."""
    if decimals <= 0:
        return str(units * 10**-decimals)
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


def _float(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text


def _step_size(decimals: int, pad: int = 0) -> str:
    """The increment ``10**-decimals`` (``"0.01"``), optionally padded to ``pad`` decimals."""
    text = _fixed(1, decimals) if decimals > 0 else "1"
    if pad > decimals:
        text = (text if "." in text else text + ".") + "0" * (pad - max(decimals, 0))
    return text


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------


class _ApiError(Exception):
    """A REST error answered as ``{"code","msg"}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


class _RequestError(Exception):
    """A WebSocket request error answered as ``{"code","msg"[,"id"]}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass(frozen=True, slots=True)
class _Print:
    """One engine fill under Aster's numbering: its aggregate id and its trade id."""

    agg_id: int
    trade_id: int
    trade: Trade


@dataclass(frozen=True, slots=True)
class _BookChange:
    """One step's book change of a symbol: update ids ``U..u`` and the new quantities."""

    first_id: int
    last_id: int
    previous_id: int
    time: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


class _TakerFlow:
    """Live volume and taker-buy volume per minute as cumulative sums (minutes only grow), so any
    candle's taker-buy share is two lookups."""

    __slots__ = ("minutes", "lots", "quote", "buy_lots", "buy_quote")

    def __init__(self) -> None:
        self.minutes: list[int] = []
        self.lots: list[int] = []
        self.quote: list[float] = []
        self.buy_lots: list[int] = []
        self.buy_quote: list[float] = []

    def add(self, t: int, lots: int, quote: float, buy: bool) -> None:
        minute = t - t % _MINUTE
        if not self.minutes or self.minutes[-1] != minute:
            self.minutes.append(minute)
            for sums in (self.lots, self.quote, self.buy_lots, self.buy_quote):
                sums.append(sums[-1] if sums else 0)
        self.lots[-1] += lots
        self.quote[-1] += quote
        if buy:
            self.buy_lots[-1] += lots
            self.buy_quote[-1] += quote

    def between(self, start: int, end: int) -> tuple[int, float, int, float]:
        """Live ``(lots, quote, buy_lots, buy_quote)`` in minutes ``start <= t < end``."""
        first = bisect.bisect_left(self.minutes, start)
        last = bisect.bisect_left(self.minutes, end)
        if first >= last:
            return 0, 0.0, 0, 0.0

        def span(sums: list[Any]) -> Any:
            return sums[last - 1] - (sums[first - 1] if first else 0)

        return span(self.lots), span(self.quote), span(self.buy_lots), span(self.buy_quote)


@dataclass(eq=False, slots=True)
class _Listing:
    """An engine asset under its Aster symbol, with the book as published (ids and all)."""

    symbol: str
    spec: AssetSpec
    family: _Family
    trade_id_base: int
    agg_id_base: int
    update_id: int
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    changed_at: int = 0
    last_change: _BookChange | None = None
    tape: deque[_Print] = field(default_factory=lambda: deque(maxlen=_TAPE_LENGTH))
    aggregates: int = 0
    step_prints: list[_Print] = field(default_factory=list)
    flow: _TakerFlow = field(default_factory=_TakerFlow)
    book_topics: set[_Topic] = field(default_factory=set)

    @property
    def stream_symbol(self) -> str:
        return self.symbol.lower()

    def px(self, ticks: int) -> str:
        return _fixed(ticks, self.spec.px_decimals)

    def qty(self, lots: int) -> str:
        return _fixed(lots, self.spec.sz_decimals)

    def levels_text(self, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
        return [[self.px(px), self.qty(lots)] for px, lots in levels]

    def top(self, depth: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``depth`` levels per side, best first."""
        return heapq.nlargest(depth, self.bids.items()), heapq.nsmallest(depth, self.asks.items())


@dataclass(eq=False, slots=True)
class _Topic:
    """One stream name of one family and the connections listening to it; payloads are encoded once."""

    name: str
    family: _Family
    kind: str
    listing: _Listing | None
    interval_ms: int
    levels: int = 0
    candle_interval: str = ""
    connections: set[WsConnection] = field(default_factory=set)
    last_push: int = 0
    # book streams: the chain of update ids, and what changed since the last event
    last_id: int = 0
    pending_first_id: int | None = None
    dirty_bids: set[int] = field(default_factory=set)
    dirty_asks: set[int] = field(default_factory=set)
    held: bytes | None = None
    # tickers, book tickers, klines: what was pushed last
    last_sent: Any = None
    bar_open: int | None = None
    prefix: bytes = b""

    def __post_init__(self) -> None:
        self.prefix = b'{"stream":' + orjson.dumps(self.name) + b',"data":'

    def combined(self, raw: bytes) -> bytes:
        return self.prefix + raw + b"}"


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


class AsterEmulator(EmulatorServer):
    """The Aster venue (futures and spot) on the shared emulator mechanism (see the module docstring)."""

    venue = "aster"
    ws_path = "/stream"
    extra_ws_routes = (
        "/stream/",
        "/ws",
        "/ws/{streams:.*}",
        "/spot/stream",
        "/spot/stream/",
        "/spot/ws",
        "/spot/ws/{streams:.*}",
    )

    def __init__(
        self,
        *,
        ping_interval: float = 300.0,
        pong_timeout: float = 900.0,
        spot_ping_interval: float = 180.0,
        spot_pong_timeout: float = 600.0,
        max_messages_per_s: int = 10,
        spot_max_messages_per_s: int = 5,
        max_streams: int = 200,
        spot_max_streams: int = 1024,
        weight_limit: int = 2400,
        spot_weight_limit: int = 6000,
        hostile_names: bool = False,
        **kwargs: Any,
    ) -> None:
        if hostile_names:
            hostile = (replace(spec, quote="USDT", symbol=spec.symbol.replace("/USDC", "/USDT")) for spec in HOSTILE_ASSETS)
            kwargs["assets"] = (*ASTER_ASSETS, *hostile)
        elif "engine" not in kwargs:
            kwargs["assets"] = ASTER_ASSETS
        kwargs.setdefault("max_connection_age", 86_400.0)
        kwargs.setdefault("idle_timeout", math.inf)
        super().__init__(**kwargs)
        self.heartbeat = {FUTURES.name: (ping_interval, pong_timeout), SPOT.name: (spot_ping_interval, spot_pong_timeout)}
        self.message_rate = {FUTURES.name: max_messages_per_s, SPOT.name: spot_max_messages_per_s}
        self.max_streams = {FUTURES.name: max_streams, SPOT.name: spot_max_streams}
        self.weight_limit = {FUTURES.name: weight_limit, SPOT.name: spot_weight_limit}
        self._weights: dict[tuple[str, str], list[float]] = {}  # (family, client) -> [window start, used]
        self._ids = random.Random(f"{self.seed}:aster")  # numbering only; the engine's draws stay untouched
        self._futures_update_id = 100_000_000_000 + self._ids.randrange(10**10)
        self.listings: dict[str, dict[str, _Listing]] = {FUTURES.name: {}, SPOT.name: {}}
        for spec in self.engine.specs.values():
            family = SPOT if spec.kind == "spot" else FUTURES
            listing = _Listing(
                symbol=spec.base + spec.quote,
                spec=spec,
                family=family,
                trade_id_base=self._ids.randrange(10**6, 10**7),
                agg_id_base=self._ids.randrange(10**7, 10**8),
                update_id=1_000_000_000 + self._ids.randrange(10**9) if family.is_spot else 0,
            )
            self.listings[family.name][listing.symbol] = listing
            self._sync_book(listing, self.engine.now_ms)
        self._by_stream_symbol = {name: {each.stream_symbol: each for each in family.values()} for name, family in self.listings.items()}
        self._topics: dict[tuple[str, str], _Topic] = {}
        self._step_cache: dict[tuple[str, str], Any] = {}

    # -- names and addresses ---------------------------------------------------------------------

    @property
    def spot_ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}{SPOT.ws_prefix}/stream"

    def extra_urls(self) -> dict[str, str]:
        return {"spot_ws": self.spot_ws_url}

    def market_key(self, listing: _Listing) -> str:
        """How faults and floods name a market: ``"BTCUSDT"`` (futures), ``"spot:BTCUSDT"`` (spot)."""
        return f"spot:{listing.symbol}" if listing.family.is_spot else listing.symbol

    def listing(self, market: str) -> _Listing:
        """The market named as :meth:`market_key` names it (``KeyError`` if unknown)."""
        if market.startswith("spot:"):
            return self.listings[SPOT.name][market.removeprefix("spot:")]
        return self.listings[FUTURES.name][market]

    # ==============================================================================================
    # Market state: books with update ids, numbered trades, tickers, candles
    # ==============================================================================================

    def _take_update_ids(self, listing: _Listing, count: int) -> tuple[int, int]:
        """Consume ``count`` update ids for a change of ``listing``: futures share one counter (other
        symbols' updates in between make gaps), spot ids are consecutive per symbol."""
        if listing.family.is_spot:
            first = listing.update_id + 1
        else:
            self._futures_update_id += self._ids.randrange(1, 40)  # the rest of the exchange's updates
            first = self._futures_update_id + 1
            self._futures_update_id += count
        return first, first + count - 1

    def _record_change(self, listing: _Listing, bids: list[tuple[int, int]], asks: list[tuple[int, int]], now: int) -> _BookChange:
        """Apply new quantities (0 removes) to the published book under fresh update ids."""
        first, last = self._take_update_ids(listing, max(1, len(bids) + len(asks)))
        for side, changes in ((listing.bids, bids), (listing.asks, asks)):
            for px, lots in changes:
                if lots:
                    side[px] = lots
                else:
                    side.pop(px, None)
        change = _BookChange(first, last, listing.update_id, now, sorted(bids), sorted(asks))
        listing.update_id, listing.changed_at, listing.last_change = last, now, change
        for topic in listing.book_topics:
            if topic.pending_first_id is None:
                topic.pending_first_id = first
            topic.dirty_bids.update(px for px, _ in bids)
            topic.dirty_asks.update(px for px, _ in asks)
        return change

    def _sync_book(self, listing: _Listing, now: int) -> None:
        """Publish whatever changed in the engine's book since the last step (or flood)."""
        engine_bids, engine_asks = self.engine.levels(listing.spec.symbol)
        changes = []
        for published, levels in ((listing.bids, engine_bids), (listing.asks, engine_asks)):
            current = {px: lots for px, lots, _ in levels}
            side = [(px, lots) for px, lots in current.items() if published.get(px) != lots]
            side += [(px, 0) for px in published if px not in current]
            changes.append(side)
        if changes[0] or changes[1]:
            self._record_change(listing, changes[0], changes[1], now)

    def _record_trades(self, listing: _Listing, trades: list[Trade]) -> None:
        """Number the step's fills: trade ids continue the engine's running trade count."""
        last_trade_id = listing.trade_id_base + self.engine.trade_count(listing.spec.symbol) - 1
        first_trade_id = last_trade_id - len(trades) + 1
        spec = listing.spec
        prints = []
        for offset, trade in enumerate(trades):
            listing.aggregates += 1
            item = _Print(listing.agg_id_base + listing.aggregates, first_trade_id + offset, trade)
            prints.append(item)
            listing.tape.append(item)
            listing.flow.add(trade.time, trade.sz, spec.px(trade.px) * spec.sz(trade.sz), trade.side == "buy")
        listing.step_prints = prints

    def _trade_id_before(self, listing: _Listing, t: int | None) -> int:
        """The id the first trade at or after ``t`` has (or will have)."""
        return listing.trade_id_base + self.engine.trade_count(listing.spec.symbol, t)

    def _cached(self, key: tuple[str, str], build: Callable[[], Any]) -> Any:
        """Per-step memo (tickers are asked for by several streams in one step)."""
        value = self._step_cache.get(key)
        if value is None:
            value = self._step_cache[key] = build()
        return value

    def _day_stats(self, listing: _Listing, now: int) -> dict[str, Any]:
        """The rolling 24 h window from the 1m candles, so tickers agree with klines and trade ids."""
        spec = listing.spec
        bars = self.engine.candles(spec.symbol, "1m", now - _DAY - _MINUTE + 1, now, 10_000)
        open_px, close_px = bars[0].o, bars[-1].c
        lots = sum(bar.v for bar in bars)
        quote = sum(bar.ntl for bar in bars)
        first_id = self._trade_id_before(listing, bars[0].t)
        last_id = self._trade_id_before(listing, None) - 1
        last_qty = listing.tape[-1].trade.sz if listing.tape else 0
        return {
            "open": open_px, "high": max(bar.h for bar in bars), "low": min(bar.l for bar in bars),
            "close": close_px, "last_qty": last_qty, "lots": lots, "quote": quote,
            "first_id": first_id, "last_id": last_id, "count": last_id - first_id + 1,
            "vwap": quote / spec.sz(lots) if lots else 0.0,
        }  # fmt: skip

    def _ticker_values(self, listing: _Listing, now: int) -> dict[str, Any]:
        stats = self._cached(("day", listing.symbol + listing.family.name), lambda: self._day_stats(listing, now))
        change = stats["close"] - stats["open"]
        return {
            **stats,
            "change": listing.px(change),
            "percent": _float(change / stats["open"] * 100 if stats["open"] else 0.0, 3),
            "vwap": _float(stats["vwap"], listing.spec.px_decimals),
        }

    def _ws_ticker(self, listing: _Listing, now: int) -> dict[str, Any]:
        v = self._ticker_values(listing, now)
        return {
            "e": "24hrTicker", "E": now, "s": listing.symbol, "p": v["change"], "P": v["percent"],
            "w": v["vwap"], "c": listing.px(v["close"]), "Q": listing.qty(v["last_qty"]),
            "o": listing.px(v["open"]), "h": listing.px(v["high"]), "l": listing.px(v["low"]),
            "v": listing.qty(v["lots"]), "q": _float(v["quote"], listing.spec.px_decimals),
            "O": now - _DAY, "C": now, "F": v["first_id"], "L": v["last_id"], "n": v["count"],
        }  # fmt: skip

    def _ws_mini_ticker(self, listing: _Listing, now: int) -> dict[str, Any]:
        v = self._ticker_values(listing, now)
        return {
            "e": "24hrMiniTicker", "E": now, "s": listing.symbol, "c": listing.px(v["close"]),
            "o": listing.px(v["open"]), "h": listing.px(v["high"]), "l": listing.px(v["low"]),
            "v": listing.qty(v["lots"]), "q": _float(v["quote"], listing.spec.px_decimals),
        }  # fmt: skip

    def _rest_ticker(self, listing: _Listing, now: int) -> dict[str, Any]:
        v = self._ticker_values(listing, now)
        ticker: dict[str, Any] = {
            "symbol": listing.symbol, "priceChange": v["change"], "priceChangePercent": v["percent"],
            "weightedAvgPrice": v["vwap"], "prevClosePrice": listing.px(v["open"]),
            "lastPrice": listing.px(v["close"]), "lastQty": listing.qty(v["last_qty"]),
        }  # fmt: skip
        if listing.family.is_spot:
            (bid, bid_qty), (ask, ask_qty) = self._best(listing)
            ticker.update(bidPrice=bid, bidQty=bid_qty, askPrice=ask, askQty=ask_qty)
        ticker.update({
            "openPrice": listing.px(v["open"]), "highPrice": listing.px(v["high"]), "lowPrice": listing.px(v["low"]),
            "volume": listing.qty(v["lots"]), "quoteVolume": _float(v["quote"], listing.spec.px_decimals),
            "openTime": now - _DAY, "closeTime": now, "firstId": v["first_id"], "lastId": v["last_id"], "count": v["count"],
        })  # fmt: skip
        if listing.family.is_spot:
            ticker.update(baseAsset=listing.spec.base, quoteAsset=listing.spec.quote)
        return ticker

    def _best(self, listing: _Listing) -> tuple[tuple[str, str], tuple[str, str]]:
        (bids, asks), empty = listing.top(1), ("0", "0")
        bid = (listing.px(bids[0][0]), listing.qty(bids[0][1])) if bids else empty
        ask = (listing.px(asks[0][0]), listing.qty(asks[0][1])) if asks else empty
        return bid, ask

    def _mark(self, listing: _Listing, now: int) -> dict[str, Any]:
        """Mark, index and funding in Aster's units (8 decimals) and the next funding time."""
        ctx = self.engine.context(listing.spec.symbol)
        return {
            "mark": _float(ctx.mark_px, 8),
            "index": _float(ctx.oracle_px, 8),
            "funding": _float(ctx.funding, 8),
            "next_funding": now - now % _FUNDING_PERIOD_MS + _FUNDING_PERIOD_MS,
        }

    def _candle_fields(self, listing: _Listing, interval: str, bar: Bar) -> dict[str, Any]:
        """What a kline adds to a bar: close time, trade ids and taker-buy volume."""
        spec = listing.spec
        end = bucket_end(interval, bar.t)
        live_lots, live_quote, buy_lots, buy_quote = listing.flow.between(bar.t, end)
        first_id = self._trade_id_before(listing, bar.t)
        return {
            "close_time": end - 1,
            "first_id": first_id if bar.n else -1,
            "last_id": first_id + bar.n - 1 if bar.n else -1,
            "buy_lots": buy_lots + max(0, bar.v - live_lots) // 2,
            "buy_quote": buy_quote + max(0.0, bar.ntl - live_quote) / 2,
            "quote": _float(bar.ntl, spec.px_decimals),
        }

    def _rest_kline(self, listing: _Listing, interval: str, bar: Bar) -> list[Any]:
        x = self._candle_fields(listing, interval, bar)
        px, qty = listing.px, listing.qty
        return [
            bar.t, px(bar.o), px(bar.h), px(bar.l), px(bar.c), qty(bar.v), x["close_time"], x["quote"], bar.n,
            qty(x["buy_lots"]), _float(x["buy_quote"], listing.spec.px_decimals), "0",
        ]  # fmt: skip

    def _ws_kline(self, listing: _Listing, interval: str, bar: Bar, closed: bool, now: int) -> dict[str, Any]:
        x = self._candle_fields(listing, interval, bar)
        px, qty = listing.px, listing.qty
        return {
            "e": "kline", "E": now, "s": listing.symbol,
            "k": {
                "t": bar.t, "T": x["close_time"], "s": listing.symbol, "i": interval,
                "f": x["first_id"], "L": x["last_id"], "o": px(bar.o), "c": px(bar.c), "h": px(bar.h),
                "l": px(bar.l), "v": qty(bar.v), "n": bar.n, "x": closed, "q": x["quote"],
                "V": qty(x["buy_lots"]), "Q": _float(x["buy_quote"], listing.spec.px_decimals), "B": "0",
            },
        }  # fmt: skip

    def _depth_event(self, listing: _Listing, first: int, last: int, previous: int, bids: Iterable[tuple[int, int]],
                     asks: Iterable[tuple[int, int]], now: int) -> bytes:  # fmt: skip
        return _depth_payload(listing, first, last, previous, listing.levels_text(bids), listing.levels_text(asks), now)

    # ==============================================================================================
    # Publishing
    # ==============================================================================================

    async def on_step(self, events: StepEvents) -> None:
        now = events.time
        self._step_cache.clear()
        for family in self.listings.values():
            for listing in family.values():
                trades = events.trades.get(listing.spec.symbol)
                if trades:
                    self._record_trades(listing, trades)
                else:
                    listing.step_prints = []
                self._sync_book(listing, now)
        for topic in list(self._topics.values()):
            if topic.connections:
                await self._push(topic, now)

    def _due(self, topic: _Topic, now: int) -> bool:
        if now - topic.last_push >= topic.interval_ms:
            topic.last_push = now
            return True
        return False

    async def _publish(self, topic: _Topic, raw: bytes, *, backpressure: bool = False) -> int:
        """Send one payload to every listener, wrapped for connections in combined mode."""
        combined: bytes | None = None
        sent = 0
        for conn in list(topic.connections):
            frame = raw
            if conn.state["combined"]:
                combined = combined or topic.combined(raw)
                frame = combined
            sent += await conn.send(frame, backpressure=backpressure)
        return sent

    async def _push(self, topic: _Topic, now: int) -> None:
        kind, listing = topic.kind, topic.listing
        if kind == "depth":
            if topic.pending_first_id is not None and self._due(topic, now):
                await self._push_depth_diff(topic, now)
        elif kind == "partial":
            if topic.pending_first_id is not None and self._due(topic, now):
                assert listing is not None
                bids, asks = listing.top(topic.levels)
                await self._publish(topic, self._depth_event(listing, *self._advance_chain(topic), bids, asks, now))
        elif kind in ("aggTrade", "trade"):
            assert listing is not None
            for item in listing.step_prints:
                await self._publish(topic, orjson.dumps(self._trade_event(listing, item, kind, now)))
        elif kind == "bookTicker":
            assert listing is not None
            await self._push_book_ticker(topic, listing, now)
        elif kind == "bookTickerAll":
            for each in self.listings[topic.family.name].values():
                await self._push_book_ticker(topic, each, now)
        elif kind == "kline":
            if self._due(topic, now):
                await self._push_kline(topic, now)
        elif self._due(topic, now):
            payload = self._periodic_payload(topic, now)
            if payload is not None:
                await self._publish(topic, orjson.dumps(payload))

    def _advance_chain(self, topic: _Topic) -> tuple[int, int, int]:
        """``(U, u, pu)`` of the next event on a book stream, and mark everything up to ``u`` sent."""
        assert topic.listing is not None and topic.pending_first_id is not None
        chain = (topic.pending_first_id, topic.listing.update_id, topic.last_id)
        topic.last_id, topic.pending_first_id = topic.listing.update_id, None
        topic.dirty_bids, topic.dirty_asks = set(), set()
        return chain

    def _pending_diff(self, topic: _Topic) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        listing = topic.listing
        assert listing is not None
        return (
            sorted((px, listing.bids.get(px, 0)) for px in topic.dirty_bids),
            sorted((px, listing.asks.get(px, 0)) for px in topic.dirty_asks),
        )

    async def _push_depth_diff(self, topic: _Topic, now: int) -> None:
        """One diff event with the book faults applied: ``skip`` drops it (its ids are gone),
        ``duplicate`` sends it twice, ``reorder`` holds it until the next event has been sent."""
        listing = topic.listing
        assert listing is not None
        bids, asks = self._pending_diff(topic)
        raw = self._depth_event(listing, *self._advance_chain(topic), bids, asks, now)
        fault = self.take_book_fault(self.market_key(listing), ("skip", "duplicate", "reorder"))
        if fault == "skip":
            return
        if fault == "reorder":
            if topic.held is None:
                topic.held = raw
                return
            self.arm_book_fault(self.market_key(listing), "reorder")  # one held event at a time: later
        await self._publish(topic, raw)
        if fault == "duplicate":
            await self._publish(topic, raw)
        if topic.held is not None:
            held, topic.held = topic.held, None
            await self._publish(topic, held)

    def _trade_event(self, listing: _Listing, item: _Print, kind: str, now: int) -> dict[str, Any]:
        trade = item.trade
        buyer_is_maker = trade.side == "sell"
        if kind == "trade":
            return {"e": "trade", "E": now, "s": listing.symbol, "t": item.trade_id, "p": listing.px(trade.px),
                    "q": listing.qty(trade.sz), "T": trade.time, "m": buyer_is_maker}  # fmt: skip
        event: dict[str, Any] = {"e": "aggTrade", "E": now, "a": item.agg_id, "s": listing.symbol, "p": listing.px(trade.px),
                                 "q": listing.qty(trade.sz), "f": item.trade_id, "l": item.trade_id, "T": trade.time, "m": buyer_is_maker}  # fmt: skip
        if listing.family.is_spot:
            event["M"] = True
        return event

    async def _push_book_ticker(self, topic: _Topic, listing: _Listing, now: int) -> None:
        (bid, bid_qty), (ask, ask_qty) = self._best(listing)
        state = (bid, bid_qty, ask, ask_qty)
        sent = topic.last_sent if isinstance(topic.last_sent, dict) else {}
        if sent.get(listing.symbol) == state:
            return
        topic.last_sent = {**sent, listing.symbol: state}
        if not listing.family.is_spot:
            payload = {"e": "bookTicker", "u": listing.update_id, "s": listing.symbol, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty, "T": listing.changed_at, "E": now}
        else:
            payload = {"u": listing.update_id, "s": listing.symbol, "b": bid, "B": bid_qty, "a": ask, "A": ask_qty}
        await self._publish(topic, orjson.dumps(payload))

    async def _push_kline(self, topic: _Topic, now: int) -> None:
        """The forming bar when it changed; when its bucket ended, once more with ``x: true``."""
        listing, interval = topic.listing, topic.candle_interval
        assert listing is not None
        symbol = listing.spec.symbol
        if topic.bar_open is not None and bucket_start(interval, now) > topic.bar_open:
            finished = self.engine.candles(symbol, interval, topic.bar_open, topic.bar_open, 1)
            if finished:
                await self._publish(topic, orjson.dumps(self._ws_kline(listing, interval, finished[-1], True, now)))
            topic.bar_open, topic.last_sent = None, None
        bar = self.engine.current_candle(symbol, interval)
        state = (bar.t, bar.o, bar.h, bar.l, bar.c, bar.v, bar.n)
        if bar.t == bucket_start(interval, now) and state != topic.last_sent:
            topic.bar_open, topic.last_sent = bar.t, state
            await self._publish(topic, orjson.dumps(self._ws_kline(listing, interval, bar, False, now)))

    def _periodic_payload(self, topic: _Topic, now: int) -> Any:
        """Tickers and mark prices: one object, or an array of the symbols that changed."""
        kind, listing = topic.kind, topic.listing
        if kind == "ticker":
            assert listing is not None
            return self._ws_ticker(listing, now)
        if kind == "miniTicker":
            assert listing is not None
            return self._ws_mini_ticker(listing, now)
        if kind == "markPrice":
            assert listing is not None
            return self._ws_mark_price(listing, now)
        listings = self.listings[topic.family.name].values()
        if kind == "markPriceArr":
            return [self._ws_mark_price(each, now) for each in listings]
        build = self._ws_ticker if kind == "tickerArr" else self._ws_mini_ticker
        previous = topic.last_sent if isinstance(topic.last_sent, dict) else {}
        current, changed = {}, []
        for each in listings:
            payload = build(each, now)
            fingerprint = tuple(value for key, value in payload.items() if key not in ("E", "O", "C"))
            current[each.symbol] = fingerprint
            if previous.get(each.symbol) != fingerprint:
                changed.append(payload)
        topic.last_sent = current
        return changed or None

    def _ws_mark_price(self, listing: _Listing, now: int) -> dict[str, Any]:
        mark = self._mark(listing, now)
        return {"e": "markPriceUpdate", "E": now, "s": listing.symbol, "p": mark["mark"], "i": mark["index"],
                "P": mark["index"], "r": mark["funding"], "T": mark["next_funding"]}  # fmt: skip

    # -- benchmark flood -------------------------------------------------------------------------

    async def flood(self, market: str, count: int) -> int:  # type: ignore[override]  # market per market_key
        """Send ``count`` diff-depth events of ``market`` to its diff-depth subscribers as fast as the
        transports drain: the first fills the book to 1000 levels a side, each later one changes
        :data:`_FLOOD_CHANGES_PER_SIDE` levels a side. Ids chain with the live events and the published
        book follows, so the local-book procedure stays exact through a flood. The market pauses
        meanwhile (no engine step interleaves). Returns the number of frames written.
        """
        listing = self.listing(market)
        async with self._step_lock:
            topics = [topic for topic in listing.book_topics if topic.kind == "depth" and topic.connections]
            now = self.now_ms()
            for topic in topics:  # bring every diff stream to the same update id first
                if topic.pending_first_id is not None:
                    bids, asks = self._pending_diff(topic)
                    await self._publish(topic, self._depth_event(listing, *self._advance_chain(topic), bids, asks, now))
            sent = 0
            fill, updates = self._flood_plan(listing)
            for index in range(count):
                bids, asks, bids_text, asks_text = fill if index == 0 else updates[(index - 1) % len(updates)]
                change = self._record_change(listing, bids, asks, now)
                raw = _depth_payload(listing, change.first_id, change.last_id, change.previous_id, bids_text, asks_text, now)
                for topic in topics:
                    self._advance_chain(topic)  # every topic was at ``change.previous_id``
                    sent += await self._publish(topic, raw, backpressure=True)
            return sent

    def _flood_plan(self, listing: _Listing) -> tuple[_FloodChange, list[_FloodChange]]:
        """The flood's changes on a ladder of 1000 prices a side below/above the inside: one that fills
        the ladder, then :data:`_FLOOD_TEMPLATES` update sets used in turn (formatted once, so the
        flood measures the client, not this formatter). Deterministic for a seed and book."""
        spec = listing.spec
        rng = random.Random(f"{self.seed}:flood:{listing.symbol}:{listing.update_id}")
        gap = max(1, round(spec.initial_px * spec.level_gap_bps / 1e4 / spec.tick))
        level_lots = max(1.0, spec.level_notional / spec.initial_px / spec.lot)
        bid_ladder = sorted(listing.bids, reverse=True)[:_FLOOD_LEVELS]
        while len(bid_ladder) < _FLOOD_LEVELS and bid_ladder and bid_ladder[-1] - gap > 0:
            bid_ladder.append(bid_ladder[-1] - gap)
        ask_ladder = sorted(listing.asks)[:_FLOOD_LEVELS]
        while ask_ladder and len(ask_ladder) < _FLOOD_LEVELS:
            ask_ladder.append(ask_ladder[-1] + gap)

        def size() -> int:
            return max(1, round(rng.lognormvariate(math.log(level_lots), 0.9)))

        def change(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> _FloodChange:
            return bids, asks, listing.levels_text(bids), listing.levels_text(asks)

        fill = change(
            [(px, listing.bids.get(px) or size()) for px in sorted(bid_ladder)],
            [(px, listing.asks.get(px) or size()) for px in ask_ladder],
        )
        updates = []
        for _ in range(_FLOOD_TEMPLATES):
            sides = []
            for ladder in (bid_ladder, ask_ladder):
                prices = {ladder[rng.randrange(len(ladder))] for _ in range(_FLOOD_CHANGES_PER_SIDE)} if ladder else set()
                sides.append(sorted((px, 0 if rng.random() < 0.1 else size()) for px in prices))
            updates.append(change(sides[0], sides[1]))
        return fill, updates

    # ==============================================================================================
    # WebSocket
    # ==============================================================================================

    async def on_ws_open(self, conn: WsConnection) -> None:
        request = conn.request
        family = SPOT if request.path.startswith(SPOT.ws_prefix + "/") else FUTURES
        combined = request.path.removeprefix(family.ws_prefix) in ("/stream", "/stream/")
        conn.state.update(family=family, combined=combined, streams={}, closing=False)
        self.start_heartbeat(conn, *self.heartbeat[family.name])
        names = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
        streams = list(dict.fromkeys(name for name in names.split("/") if name))
        if len(streams) > self.max_streams[family.name]:
            await self._send_error(conn, _RequestError(2, self._too_many_streams(family)), None)
            conn.state["closing"] = True
            await conn.close(_CLOSE_POLICY, "too many streams")
            return
        await self._subscribe(conn, streams)

    def on_ws_close(self, conn: WsConnection) -> None:
        heartbeat = conn.state.get("heartbeat")
        if heartbeat is not None:
            heartbeat.cancel()
        for topic in conn.state.get("streams", {}).values():
            if topic is not None:
                self._leave(conn, topic)

    async def on_ws_frame(self, conn: WsConnection, kind: WSMsgType) -> bool:
        """At most N incoming frames (data, ping, pong) per second; the next one closes the socket."""
        return await self.limit_rate(conn, self.message_rate[conn.state["family"].name], _CLOSE_POLICY, "too many requests")

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        request_id: int | None = None
        try:
            try:
                request = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise _RequestError(3, f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}") from None
            if not isinstance(request, dict):
                kind = {list: "sequence", str: "string", bool: "boolean", type(None): "unit"}.get(type(request), "number")
                raise _RequestError(2, f"Invalid request: invalid type: {kind}, expected a map at line 1 column {len(text)}")
            raw_id = request.get("id")
            if isinstance(raw_id, int) and not isinstance(raw_id, bool) and 0 <= raw_id <= _MAX_REQUEST_ID:
                request_id = raw_id
            method = request.get("method")
            if "method" not in request:
                raise _RequestError(2, "Invalid request: missing field `method` at line {} column {}".format(*_end_position(text)))
            if method not in _METHODS:
                line, column = _method_position(text)
                shown = f"`{method}`" if isinstance(method, str) else orjson.dumps(method).decode()
                raise _RequestError(2, _UNKNOWN_METHOD.format(shown, line, column))
            if request_id is None and raw_id is not None:
                raise _RequestError(2, "Invalid request: request ID must be an unsigned integer")
            result = await self._handle_request(conn, method, request)
        except _RequestError as error:
            await self._send_error(conn, error, request_id)
            return
        await conn.send(orjson.dumps({"result": result, "id": request_id}))

    async def _send_error(self, conn: WsConnection, error: _RequestError, request_id: int | None) -> None:
        body: dict[str, Any] = {"code": error.code, "msg": error.msg}
        if request_id is not None:
            body["id"] = request_id
        await conn.send(orjson.dumps(body))

    async def _handle_request(self, conn: WsConnection, method: str, request: dict[str, Any]) -> Any:
        params = request.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if "params" not in request:
                raise _RequestError(2, "Invalid request: missing field `params`")
            if not isinstance(params, list) or not all(isinstance(name, str) for name in params):
                raise _RequestError(2, "Invalid request: params must be an array of stream names")
            names = list(dict.fromkeys(params))
            if method == "UNSUBSCRIBE":
                for name in names:
                    topic = conn.state["streams"].pop(name, False)
                    if topic:
                        self._leave(conn, topic)
                return None
            family = conn.state["family"]
            new = [name for name in names if name not in conn.state["streams"]]
            if len(conn.state["streams"]) + len(new) > self.max_streams[family.name]:
                raise _RequestError(2, self._too_many_streams(family))
            await self._subscribe(conn, new)
            return None
        if method == "LIST_SUBSCRIPTIONS":
            if params:
                raise _RequestError(2, "Invalid request: too many parameters")
            return list(conn.state["streams"])
        # SET_PROPERTY / GET_PROPERTY
        arity = 2 if method == "SET_PROPERTY" else 1
        if not isinstance(params, list) or not params or not isinstance(params[0], str):
            raise _RequestError(2, "Invalid request: property name must be a string")
        if len(params) > arity:
            raise _RequestError(2, "Invalid request: too many parameters")
        if params[0] != "combined":
            raise _RequestError(0, "Unknown property")
        if method == "GET_PROPERTY":
            return conn.state["combined"]
        if len(params) < 2 or not isinstance(params[1], bool):
            raise _RequestError(1, "Invalid value type: expected Boolean")
        conn.state["combined"] = params[1]
        return None

    def _too_many_streams(self, family: _Family) -> str:
        return f"Invalid request: too many streams, a connection may listen to at most {self.max_streams[family.name]}"

    async def _subscribe(self, conn: WsConnection, names: list[str]) -> None:
        """Listen to ``names`` (unknown names are kept, listed and silent); a pending
        ``delta_before_snapshot`` fault sends a stale diff first."""
        family: _Family = conn.state["family"]
        for name in names:
            topic = self._topic(family, name)
            conn.state["streams"][name] = topic
            if topic is None:
                continue
            if topic.kind == "depth" and topic.listing is not None:
                listing = topic.listing
                if self.take_book_fault(self.market_key(listing), ("delta_before_snapshot",)):
                    await self._send_stale_diff(conn, topic)
            topic.connections.add(conn)

    async def _send_stale_diff(self, conn: WsConnection, topic: _Topic) -> None:
        listing = topic.listing
        assert listing is not None
        change = listing.last_change
        if change is None:
            (bids, asks), first, previous = listing.top(1), listing.update_id, listing.update_id - 1
            last = first
        else:
            bids, asks, first, last, previous = change.bids, change.asks, change.first_id, change.last_id, change.previous_id
        raw = self._depth_event(listing, first, last, previous, bids, asks, self.now_ms())
        await conn.send(topic.combined(raw) if conn.state["combined"] else raw)

    def _topic(self, family: _Family, name: str) -> _Topic | None:
        """The shared topic of a stream name, created on first use; ``None`` for unknown names."""
        key = (family.name, name)
        topic = self._topics.get(key)
        if topic is None:
            topic = _parse_stream(name, family, self._by_stream_symbol[family.name])
            if topic is None:
                return None
            topic.last_push = self.engine.now_ms
            if topic.listing is not None and topic.kind in ("depth", "partial"):
                topic.last_id = topic.listing.update_id
                topic.listing.book_topics.add(topic)
            self._topics[key] = topic
        return topic

    def _leave(self, conn: WsConnection, topic: _Topic) -> None:
        topic.connections.discard(conn)
        if not topic.connections:
            self._topics.pop((topic.family.name, topic.name), None)
            if topic.listing is not None:
                topic.listing.book_topics.discard(topic)

    # ==============================================================================================
    # REST
    # ==============================================================================================

    def http_routes(self) -> list[web.RouteDef]:
        endpoints: dict[str, tuple[Callable[[Mapping[str, str]], int], Callable[[_Family, Mapping[str, str]], Any], bool]] = {
            "/ping": (lambda q: 1, lambda f, q: {}, True),
            "/time": (lambda q: 1, self._rest_time, True),
            "/exchangeInfo": (lambda q: 1, self._rest_exchange_info, True),
            "/depth": (_depth_weight, self._rest_depth, True),
            "/trades": (lambda q: 1, self._rest_trades, True),
            "/historicalTrades": (lambda q: 20, self._rest_trades, True),
            "/aggTrades": (lambda q: 20, self._rest_agg_trades, True),
            "/klines": (_klines_weight, self._rest_klines, True),
            "/ticker/24hr": (lambda q: 1 if "symbol" in q else 40, self._rest_ticker_24hr, True),
            "/ticker/price": (lambda q: 1 if "symbol" in q else 2, self._rest_ticker_price, True),
            "/ticker/bookTicker": (lambda q: 1 if "symbol" in q else 2, self._rest_book_ticker, True),
            "/premiumIndex": (lambda q: 1, self._rest_premium_index, False),
        }
        routes = []
        for family in (FUTURES, SPOT):
            for prefix in family.rest_prefixes:
                for path, (weight, handler, on_spot) in endpoints.items():
                    if on_spot or not family.is_spot:
                        routes.append(web.get(prefix + path, self._endpoint(family, weight, handler)))
        return routes

    def _endpoint(self, family: _Family, weight: Callable[[Mapping[str, str]], int],
                  handler: Callable[[_Family, Mapping[str, str]], Any]) -> Callable[[web.Request], Any]:  # fmt: skip
        """Weight accounting (``X-MBX-USED-WEIGHT-1m``, 429 + ``Retry-After``) and error shapes."""

        async def serve(request: web.Request) -> web.Response:
            used, retry_after = self._charge(family, request.remote or "", weight(request.query))
            headers = {"X-MBX-USED-WEIGHT-1m": str(used)}
            if retry_after is not None:
                headers["Retry-After"] = str(retry_after)
                limit = self.weight_limit[family.name]
                msg = f"Too many requests; current limit is {limit} requests per minute. Please use the websocket for live updates to avoid polling the API."
                return _json({"code": -1003, "msg": msg}, 429, headers)
            try:
                return _json(handler(family, request.query), 200, headers)
            except _ApiError as error:
                return _json({"code": error.code, "msg": error.msg}, error.status, headers)

        return serve

    def _charge(self, family: _Family, client: str, cost: int) -> tuple[int, int | None]:
        """Add ``cost`` to the client's minute; ``(used, None)``, or ``(used, retry_after_s)`` if over."""
        now = time.monotonic()
        window = self._weights.setdefault((family.name, client), [now, 0])
        if now - window[0] >= 60.0:
            window[0], window[1] = now, 0
        if window[1] + cost > self.weight_limit[family.name]:
            return int(window[1]), max(1, math.ceil(window[0] + 60.0 - now))
        window[1] += cost
        return int(window[1]), None

    # -- parameters ------------------------------------------------------------------------------

    def _symbol(self, family: _Family, query: Mapping[str, str], *, required: bool = True) -> _Listing | None:
        symbol = query.get("symbol")
        if not symbol:
            if required:
                raise _ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
            return None
        listing = self.listings[family.name].get(symbol)
        if listing is None:
            raise _ApiError(-1121, "Invalid symbol.")
        return listing

    # -- handlers --------------------------------------------------------------------------------

    def _rest_time(self, family: _Family, query: Mapping[str, str]) -> Any:
        return {"serverTime": self.now_ms()}

    def _rest_depth(self, family: _Family, query: Mapping[str, str]) -> Any:
        listing = self._symbol(family, query)
        assert listing is not None
        limit = _int_param(query, "limit", family.depth_default_limit)
        if limit not in _DEPTH_LIMITS:
            raise _ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        bids, asks = listing.top(limit)
        px, qty = listing.px, listing.qty
        return {
            "lastUpdateId": listing.update_id,
            "E": self.now_ms(),
            "T": listing.changed_at,
            "bids": [[px(p), qty(q)] for p, q in bids],
            "asks": [[px(p), qty(q)] for p, q in asks],
        }

    def _rest_trades(self, family: _Family, query: Mapping[str, str]) -> Any:
        listing = self._symbol(family, query)
        assert listing is not None
        limit = min(1000, _int_param(query, "limit", 500))
        from_id = _int_param(query, "fromId", None)
        tape = list(listing.tape)
        if from_id is not None:
            chosen = [item for item in tape if item.trade_id >= from_id][:limit]
        else:
            chosen = tape[-limit:] if limit else []
        spec = listing.spec
        rows = []
        for item in chosen:
            trade = item.trade
            notional = spec.px(trade.px) * spec.sz(trade.sz)
            if family.is_spot:  # the spot doc's rows: qty in quote units, baseQty = qty / price
                row: dict[str, Any] = {"id": item.trade_id, "price": listing.px(trade.px), "qty": _float(notional, 8), "baseQty": _float(spec.sz(trade.sz), 8)}
            else:
                exact = _float(notional, spec.px_decimals + spec.sz_decimals).rstrip("0").rstrip(".")
                row = {"id": item.trade_id, "price": listing.px(trade.px), "qty": listing.qty(trade.sz), "quoteQty": exact}
            row.update(time=trade.time, isBuyerMaker=trade.side == "sell")
            rows.append(row)
        return rows

    def _rest_agg_trades(self, family: _Family, query: Mapping[str, str]) -> Any:
        listing = self._symbol(family, query)
        assert listing is not None
        limit = min(1000, _int_param(query, "limit", 500))
        from_id, start, end = (_int_param(query, name, None) for name in ("fromId", "startTime", "endTime"))
        if start is not None and end is not None:
            if start > end:
                raise _ApiError(-1023, "Start time is greater than end time.")
            if end - start > 3_600_000:
                raise _ApiError(-1127, "More than 1 hours between startTime and endTime.")
        tape = list(listing.tape)
        if from_id is not None:
            chosen = [item for item in tape if item.agg_id >= from_id][:limit]
        elif start is not None or end is not None:
            low, high = start or 0, math.inf if end is None else end
            chosen = [item for item in tape if low <= item.trade.time <= high][:limit]
        else:
            chosen = tape[-limit:] if limit else []
        return [
            {"a": item.agg_id, "p": listing.px(item.trade.px), "q": listing.qty(item.trade.sz), "f": item.trade_id,
             "l": item.trade_id, "T": item.trade.time, "m": item.trade.side == "sell"}
            for item in chosen
        ]  # fmt: skip

    def _rest_klines(self, family: _Family, query: Mapping[str, str]) -> Any:
        listing = self._symbol(family, query)
        assert listing is not None
        interval = query.get("interval")
        if not interval:
            raise _ApiError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if interval not in CANDLE_INTERVALS:
            raise _ApiError(-1120, "Invalid interval.")
        limit = _int_param(query, "limit", 500)
        if limit < 1:
            raise _ApiError(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = min(limit, 1500)
        start, end = _int_param(query, "startTime", None), _int_param(query, "endTime", None)
        if start is not None and end is not None and start > end:
            raise _ApiError(-1023, "Start time is greater than end time.")
        now = self.engine.now_ms
        bars = self.engine.candles(listing.spec.symbol, interval, start or 0, now if end is None else end, 10**9)
        if start is not None:
            bars = [bar for bar in bars if bar.t >= start][:limit]
        else:
            bars = bars[-limit:]
        return [self._rest_kline(listing, interval, bar) for bar in bars]

    def _rest_ticker_24hr(self, family: _Family, query: Mapping[str, str]) -> Any:
        return self._per_symbol(family, query, self._rest_ticker)

    def _rest_ticker_price(self, family: _Family, query: Mapping[str, str]) -> Any:
        def price(listing: _Listing, now: int) -> dict[str, Any]:
            last = listing.tape[-1].trade.px if listing.tape else self.engine.current_candle(listing.spec.symbol, "1m").c
            return {"symbol": listing.symbol, "price": listing.px(last), "time": now}

        return self._per_symbol(family, query, price)

    def _rest_book_ticker(self, family: _Family, query: Mapping[str, str]) -> Any:
        def book_ticker(listing: _Listing, now: int) -> dict[str, Any]:
            (bid, bid_qty), (ask, ask_qty) = self._best(listing)
            return {"symbol": listing.symbol, "bidPrice": bid, "bidQty": bid_qty, "askPrice": ask, "askQty": ask_qty, "time": listing.changed_at}

        return self._per_symbol(family, query, book_ticker)

    def _rest_premium_index(self, family: _Family, query: Mapping[str, str]) -> Any:
        def premium(listing: _Listing, now: int) -> dict[str, Any]:
            mark = self._mark(listing, now)
            return {
                "symbol": listing.symbol, "markPrice": mark["mark"], "indexPrice": mark["index"],
                "estimatedSettlePrice": mark["index"], "lastFundingRate": mark["funding"],
                "nextFundingTime": mark["next_funding"], "interestRate": "0.00010000", "time": now,
            }  # fmt: skip

        return self._per_symbol(family, query, premium)

    def _per_symbol(self, family: _Family, query: Mapping[str, str], build: Callable[[_Listing, int], Any]) -> Any:
        """One object for ``symbol=``, an array of every symbol without it (Binance's convention)."""
        listing = self._symbol(family, query, required=False)
        now = self.now_ms()
        if listing is not None:
            return build(listing, now)
        return [build(each, now) for each in self.listings[family.name].values()]

    def _rest_exchange_info(self, family: _Family, query: Mapping[str, str]) -> Any:
        listings = list(self.listings[family.name].values())
        weight = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit[family.name]}
        if family.is_spot:
            tokens = list(dict.fromkeys(token for each in listings for token in (each.spec.base, each.spec.quote)))
            return {
                "timezone": "UTC",
                "serverTime": self.now_ms(),
                "rateLimits": [weight, {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                               {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],  # fmt: skip
                "exchangeFilters": [],
                "assets": [{"asset": token} for token in tokens],
                "symbols": [_spot_symbol_info(each) for each in listings],
            }
        margin_assets = list(dict.fromkeys(each.spec.quote for each in listings))
        return {
            "exchangeFilters": [],
            "rateLimits": [{"interval": "MINUTE", "intervalNum": 1, "limit": weight["limit"], "rateLimitType": "REQUEST_WEIGHT"},
                           {"interval": "MINUTE", "intervalNum": 1, "limit": 1200, "rateLimitType": "ORDERS"}],  # fmt: skip
            "serverTime": self.now_ms(),
            "assets": [{"asset": asset, "marginAvailable": True, "autoAssetExchange": 0} for asset in margin_assets],
            "symbols": [_futures_symbol_info(each) for each in listings],
            "timezone": "UTC",
        }


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _depth_payload(listing: _Listing, first: int, last: int, previous: int, bids: list[list[str]], asks: list[list[str]], now: int) -> bytes:
    """A ``depthUpdate`` (diff or partial) with its levels already formatted."""
    return orjson.dumps({
        "e": "depthUpdate", "E": now, "T": listing.changed_at, "s": listing.symbol,
        "U": first, "u": last, "pu": previous, "b": bids, "a": asks,
    })  # fmt: skip


def _json(body: Any, status: int, headers: dict[str, str]) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json", headers=headers)


def _int_param(query: Mapping[str, str], name: str, default: Any) -> Any:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not _UNSIGNED.match(raw):
        raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _depth_weight(query: Mapping[str, str]) -> int:
    limit = query.get("limit", "")
    value = int(limit) if limit.isdigit() and len(limit) < 6 else 500
    return 2 if value <= 50 else 5 if value <= 100 else 10 if value <= 500 else 20


def _klines_weight(query: Mapping[str, str]) -> int:
    limit = query.get("limit", "")
    value = int(limit) if limit.isdigit() and len(limit) < 6 else 500
    return 1 if value < 100 else 2 if value < 500 else 5 if value <= 1000 else 10


def _end_position(text: str) -> tuple[int, int]:
    """Line and column (1-based) of a JSON text's last character, as serde reports them."""
    stripped = text.rstrip()
    lines = stripped.split("\n")
    return len(lines), len(lines[-1])


def _method_position(text: str) -> tuple[int, int]:
    """Line and column just after the ``method`` value (where serde rejects an unknown variant)."""
    match = _METHOD_VALUE.search(text)
    end = match.end() if match else len(text.rstrip())
    line = text.count("\n", 0, end) + 1
    return line, end - (text.rfind("\n", 0, end) + 1)


def _parse_stream(name: str, family: _Family, by_stream_symbol: Mapping[str, _Listing]) -> _Topic | None:
    """A stream name as a topic of ``family``, or ``None`` if that family has no such stream.
    Symbols are matched whole (lowercase) before the ``@``, so a listed name may contain ``@``."""
    all_market = {"!ticker@arr": ("tickerArr", 1000), "!miniTicker@arr": ("miniTickerArr", 1000), "!bookTicker": ("bookTickerAll", 0)}
    if not family.is_spot:
        all_market.update({"!markPrice@arr": ("markPriceArr", 3000), "!markPrice@arr@1s": ("markPriceArr", 1000)})
    if name in all_market:
        kind, interval = all_market[name]
        return _Topic(name, family, kind, None, interval)
    for at in (index for index, char in enumerate(name) if char == "@"):
        listing = by_stream_symbol.get(name[:at])
        if listing is not None:
            return _stream_of_symbol(name, name[at + 1 :], family, listing)
    return None


def _stream_of_symbol(name: str, rest: str, family: _Family, listing: _Listing) -> _Topic | None:
    simple = {"aggTrade": 0, "bookTicker": 0, "ticker": family.ticker_ms, "miniTicker": family.ticker_ms}
    if family.is_spot:
        simple["trade"] = 0
    else:
        simple.update({"markPrice": 3000, "markPrice@1s": 1000})
    if rest in simple:
        kind = "markPrice" if rest.startswith("markPrice") else rest
        return _Topic(name, family, kind, listing, simple[rest])
    if rest.startswith("kline_"):
        interval = rest[len("kline_") :]
        return _Topic(name, family, "kline", listing, family.kline_ms, candle_interval=interval) if interval in CANDLE_INTERVALS else None
    if rest.startswith("depth"):
        levels, _, speed = rest[len("depth") :].partition("@")
        speed = f"@{speed}" if speed else ""
        if speed not in family.depth_speeds:
            return None
        if not levels:
            return _Topic(name, family, "depth", listing, family.depth_speeds[speed])
        if levels in ("5", "10", "20"):
            return _Topic(name, family, "partial", listing, family.depth_speeds[speed], levels=int(levels))
    return None


def _common_filters(listing: _Listing, pad: int) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    spec = listing.spec
    tick, step = _step_size(spec.px_decimals, pad), _step_size(spec.sz_decimals, pad)
    max_qty = str(max(1, round(50_000_000 / spec.initial_px)))  # about 50 M USDT
    price = {"minPrice": tick, "maxPrice": str(round(spec.initial_px * 100)), "filterType": "PRICE_FILTER", "tickSize": tick}
    lot = {"stepSize": step, "filterType": "LOT_SIZE", "maxQty": max_qty, "minQty": step}
    market_lot = {"stepSize": step, "filterType": "MARKET_LOT_SIZE", "maxQty": max_qty, "minQty": step}
    return price, lot, market_lot


def _futures_symbol_info(listing: _Listing) -> dict[str, Any]:
    """One ``exchangeInfo`` symbol in the key order of the real futures answer."""
    spec = listing.spec
    price, lot, market_lot = _common_filters(listing, 0)
    return {
        "symbol": listing.symbol, "pair": listing.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1_742_342_400_000, "status": "TRADING", "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000", "baseAsset": spec.base, "quoteAsset": spec.quote, "marginAsset": spec.quote,
        "pricePrecision": spec.px_decimals, "quantityPrecision": spec.sz_decimals, "baseAssetPrecision": 8,
        "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0,
        "triggerProtect": "0.0500", "liquidationFee": "0.015000", "marketTakeBound": "0.10",
        "filters": [
            price, lot, market_lot, {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"limit": 10, "filterType": "MAX_NUM_ALGO_ORDERS"}, {"notional": "5", "filterType": "MIN_NOTIONAL"},
            {"multiplierDown": "0.9000", "multiplierUp": "1.1000", "multiplierDecimal": "4", "filterType": "PERCENT_PRICE"},
        ],
        "OrderType": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "HIDDEN"],
    }  # fmt: skip


def _spot_symbol_info(listing: _Listing) -> dict[str, Any]:
    """One spot ``exchangeInfo`` symbol in the key order of Aster's spot doc (8-decimal filters)."""
    spec = listing.spec
    price, lot, market_lot = _common_filters(listing, 8)
    return {
        "status": "TRADING", "baseAsset": spec.base, "quoteAsset": spec.quote, "pricePrecision": spec.px_decimals,
        "quantityPrecision": spec.sz_decimals, "baseAssetPrecision": 8, "quotePrecision": 8,
        "filters": [
            price, lot, market_lot, {"limit": 200, "filterType": "MAX_NUM_ORDERS"},
            {"minNotional": "5", "filterType": "MIN_NOTIONAL"},
            {"multiplierDown": "0", "multiplierUp": "5", "multiplierDecimal": "0", "filterType": "PERCENT_PRICE"},
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "HIDDEN"], "symbol": listing.symbol, "ocoAllowed": False,
    }  # fmt: skip
