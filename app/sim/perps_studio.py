"""perps.studio Provider API emulator: four vertical WebSockets and the REST API on one port.

Follows the perps.studio Provider API docs (its WebSocket page and the REST reference): an
aggregator in front of Hyperliquid, Aster and Polymarket. The markets are the shared ones: perps,
spot and RWA books, trades and candles come from :class:`~app.sim.engine.MarketEngine` (one
underlying, one price: BTC here is the Hyperliquid and Aster emulators' BTC under the same seed),
the prediction markets from :class:`~app.sim.predictions.PredictionMarkets` (the Polymarket
emulator's markets, token ids and condition ids). This module lists, validates and formats.

Wire (documented): ``/ws/v1/perps``, ``/ws/v1/spot``, ``/ws/v1/rwas``,
``/ws/v1/predictions``; the key as ``?apiKey=`` or an ``X-API-Key`` header, a missing or unknown one
closes the socket with 4001 (``Missing API key`` / ``Invalid API key``) right after the upgrade;
``{"event":"subscribe"|"unsubscribe","data":{provider,channel,params}}``; data frames
``{"channel","provider","data"}``; errors ``{"error":{"code","message"}}``; channels and their
params per vertical as seed 000 lists them; REST under ``/v1`` with ``X-API-Key``. Valid keys:
the ``api_keys`` option, by default the demo key :data:`DEMO_API_KEY` (``demo_credentials()``).

Design decisions ([D]; the docs are silent, so these are ours):

* Acks ``{"event":"subscribed"|"unsubscribed","data":{provider,channel,params}}`` echo what was
  sent (``params`` as sent, ``{}`` when absent). ``{"event":"ping"}`` -> ``{"event":"pong","ts"}``
  (virtual ms); ping control frames are answered by the server base.
* Errors keep the socket open and echo the refused ``subscription`` (ours: the documented error
  has only ``error``; none on INVALID_MESSAGE).
  Checked in this order: INVALID_MESSAGE (not JSON, not an object, unknown ``event``, ``data`` not
  an object, ``provider``/``channel`` not strings), UNKNOWN_CHANNEL ``Unknown channel: <c>``
  (verbatim), UNSUPPORTED_PROVIDER ``Provider <p> does not serve <vertical>``, INVALID_PARAMS
  (``params must be an object``, ``Missing required param: <name>`` for each required param in the
  seed's order, absent/empty/not a string; ``Invalid interval: <i>``), UNKNOWN_SYMBOL ``Unknown
  symbol: <s>`` (``<dex>:<symbol>`` on rwas, the token or market id on predictions),
  SUBSCRIPTION_LIMIT on the 101st distinct subscription (``max_subscriptions``). Unsubscribe is
  validated the same way and acked even when nothing was subscribed.
* A subscription is (provider, channel, required params); extra params are ignored (but echoed in
  the ack). Subscribing again is acked again and sends the first push again (a resync).
* First push right after the ack: orderbook (the current book), ticker, candle (the newest bar),
  prices (perps: the complete map, also on Aster; predictions: the market). Trades start with the
  next batch (history over REST).
* Pushes: orderbook a full snapshot of 20 levels a side, best first, on every change and at most
  every ``book_interval`` (0.5 s) per subscription; ``timestamp`` = the virtual time of the book's
  last change. Trades: one batch per engine step that traded. Ticker every 1 s. Candle on change,
  at most every 0.5 s, plus a last frame ``closed: true`` when its bar ends (``timestamp`` = open
  time). Perps prices every 1 s: Hyperliquid the complete mid map, Aster only the symbols whose
  last price changed since the previous push (no frame when none did). Predictions prices every
  1 s when an outcome's best bid/ask or last price changed. All cadences in virtual time.
* Formats per provider: Hyperliquid prints decimals its way (``"97012.0"``, trailing zeros
  dropped), Aster with fixed decimals (``"97012.0"`` at 1 decimal, ``"0.050"``), Polymarket as
  the Polymarket emulator does (``"0.71"``, ``"5000"``). Ticker fields an upstream lacks are
  ``null``: Hyperliquid ``lastPrice`` is the mid; Aster has no mark, index, mid, funding or open
  interest; spot has no funding or open interest, Hyperliquid spot no index. Trade ``id``:
  Hyperliquid's tid, Aster's running trade number. ``side`` is the aggressor's.
* Predictions orderbook ``hash``: SHA-1 of the compact payload with ``hash`` empty (the Polymarket
  rule, :func:`app.sim.polymarket.summary_hash`); prices best first; 20 levels a side at most.
  ``bestBid``/``bestAsk``/``lastPrice`` are ``null`` when absent.
* Markets: perps hyperliquid BTC ETH SOL HYPE (USDC), aster BTC ETH SOL HYPE (USDT; Aster's tick and
  lot sizes, thinner books); spot hyperliquid PURR/USDC HYPE/USDC, aster ASTER/USDT BTC/USDT (the
  docs' ``BTC/USDC`` example is not listed); rwas hyperliquid dex ``xyz`` XYZ100 (index) TSLA NVDA
  (equity), dex ``flx`` GOLD SILVER OIL (commodity), each its own underlying; predictions
  polymarket: :data:`app.sim.predictions.DEFAULT_MARKETS`. Engine symbols (and the names book
  faults and :meth:`PerpsStudioEmulator.flood` take) are the client adapter's market names:
  ``perps:hyperliquid:BTC``, ``spot:aster:BTC/USDT``, ``rwas:hyperliquid:xyz:TSLA``,
  ``predictions:polymarket:<tokenId>``.
* Idleness is client silence: a socket without subscriptions that received no frame (data, ping,
  pong) for ``idle_timeout`` (30 s) closes with 4008 ``idle timeout``. More than
  ``max_messages_per_s`` (20) frames of any kind within a second closes it with 4029 ``rate limit
  exceeded``.
* Book faults apply to a topic's next push (full snapshots): ``skip`` drops it (the subscribers
  miss that version), ``duplicate`` sends it twice, ``reorder`` sends it after the next one,
  ``delta_before_snapshot`` sends the market's last published (stale) book before the next
  subscribe's ack (the current book if none was published yet).
* REST: every ``/v1`` endpoint needs ``X-API-Key`` (health too); ``rest_rate_limit`` (100) requests a
  rolling minute per key (from its first counted request), each answer with ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (unix seconds, virtual clock); 429 with
  ``Retry-After``. Errors ``{"error":{"code","message"}}``: UNSUPPORTED_PROVIDER 400, NOT_FOUND 404
  (unknown market or path), INVALID_PARAMS 400 (bad ``depth``/``limit``/``interval``/times),
  PROVIDER_UNAVAILABLE 503 (:meth:`PerpsStudioEmulator.set_provider_status`). Orderbook ``depth``
  1..100 (default 20); rwas orderbook ``GET /v1/rwas/hyperliquid/orderbook/{dex}/{symbol}`` adds
  ``dex``; trades ``limit`` 1..200 (default 50), oldest first; candles need ``interval`` and
  return the newest ``limit`` (default and at most 500) bars in ``[startTime, endTime]``, oldest
  first; funding ``limit`` 1..500 (default 100): settled rates at period ends (Hyperliquid hourly,
  Aster 8-hourly), synthetic and seeded, ``markPrice`` = the close of the hour before. Listings ``GET /v1/{vertical}/{provider}/markets``;
  ``/v1/health`` ``{"status":"ok"|"degraded","providers"}``, ``/v1/health/{provider}``
  ``{"provider","status"}``.
* :meth:`PerpsStudioEmulator.set_provider_status` (``"down"``): that provider's REST answers 503
  PROVIDER_UNAVAILABLE, health shows it, its WebSocket subscriptions are acked but silent.
* ``hostile_names=True`` adds the engine's hostile perps on both perps providers, the hostile spot
  pair on Hyperliquid spot and hostile prediction markets.

Determinism: the engine, the prediction model and the ids are seeded; cadences run on the virtual
clock; nothing drawn depends on who is subscribed.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import orjson
from aiohttp import WSMsgType, web

from app.sim.aster import ASTER_ASSETS
from app.sim.aster import _fixed as fixed_decimals  # Aster's fixed-decimal printing, shared not copied
from app.sim.aster import _float as fixed_float
from app.sim.engine import (
    DEFAULT_ASSETS,
    HOSTILE_ASSETS,
    HOSTILE_NAMES,
    AssetSpec,
    Bar,
    StepEvents,
    Trade,
    bucket_start,
    format_decimal,
    format_price,
)
from app.sim.polymarket import summary_hash
from app.sim.predictions import (
    DEFAULT_MARKETS,
    PRICE_DECIMALS,
    PRICE_ONE,
    SIZE_DECIMALS,
    BinaryMarket,
    BookSnapshot,
    PredictionMarkets,
    decimal_str,
    hostile_market_specs,
)
from app.sim.server import EmulatorServer, WsConnection

__all__ = ["CANDLE_INTERVALS", "CHANNELS", "DEMO_API_KEY", "PROVIDERS", "PerpsStudioEmulator"]

DEMO_API_KEY = "ps_test_perpterm_demo_key"
VERTICALS: tuple[str, ...] = ("perps", "spot", "rwas", "predictions")
PROVIDERS: dict[str, tuple[str, ...]] = {
    "perps": ("hyperliquid", "aster"),
    "spot": ("hyperliquid", "aster"),
    "rwas": ("hyperliquid",),
    "predictions": ("polymarket",),
}
#: Channel -> required params, per vertical (seed 000).
CHANNELS: dict[str, dict[str, tuple[str, ...]]] = {
    "perps": {"orderbook": ("symbol",), "trades": ("symbol",), "ticker": ("symbol",), "candle": ("symbol", "interval"), "prices": ()},
    "spot": {"orderbook": ("symbol",), "trades": ("symbol",), "ticker": ("symbol",)},
    "rwas": {"orderbook": ("symbol", "dex"), "trades": ("symbol", "dex"), "ticker": ("symbol", "dex")},
    "predictions": {"orderbook": ("tokenId",), "prices": ("marketId",)},
}
CANDLE_INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
ALL_PROVIDERS: tuple[str, ...] = ("hyperliquid", "aster", "polymarket")

CLOSE_UNAUTHORIZED = 4001
CLOSE_IDLE = 4008
CLOSE_RATE_LIMIT = 4029
BOOK_LEVELS = 20
TICKER_INTERVAL_MS = 1_000
CANDLE_INTERVAL_MS = 500
PRICES_INTERVAL_MS = 1_000
REST_CANDLE_CAP = 500
_TAPE = 200
_HOUR = 3_600_000
_FUNDING_PERIOD_MS = {"hyperliquid": _HOUR, "aster": 8 * _HOUR}
_FLOOD_VARIANTS = 16


# --------------------------------------------------------------------------------------------------
# The universe
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketDef:
    """One listed market: where it is listed and the engine asset behind it (``spec.symbol`` is the
    market key, ``<vertical>:<provider>:[<dex>:]<symbol>``)."""

    vertical: str
    provider: str
    symbol: str
    spec: AssetSpec
    dex: str | None = None
    name: str = ""
    category: str = ""


def _market(vertical: str, provider: str, spec: AssetSpec, symbol: str | None = None, dex: str | None = None,
            name: str = "", category: str = "", **changes: Any) -> MarketDef:  # fmt: skip
    symbol = spec.symbol if symbol is None else symbol
    key = f"{vertical}:{provider}:{f'{dex}:' if dex else ''}{symbol}"
    return MarketDef(vertical, provider, symbol, replace(spec, symbol=key, **changes), dex, name, category)


def _rwa(dex: str, symbol: str, name: str, category: str, px: float, sz_decimals: int, px_decimals: int, vol: float,
         trades_per_s: float, notional: float) -> MarketDef:  # fmt: skip
    spec = AssetSpec(f"{dex}:{symbol}", symbol, "USDC", "perp", sz_decimals=sz_decimals, px_decimals=px_decimals,
                     initial_px=px, daily_vol=vol, trades_per_s=trades_per_s, trade_notional=notional,
                     level_notional=notional * 8, level_gap_bps=2.0, spread_bps=1.0, open_interest=5_000_000 / px,
                     underlying=f"{dex}:{symbol}")  # fmt: skip
    return _market("rwas", "hyperliquid", spec, symbol, dex, name, category)


def _aster_flavour(spec: AssetSpec) -> dict[str, Any]:
    """Aster's books of the same underlying: wider and thinner (distinct from Hyperliquid's)."""
    return {"spread_bps": spec.spread_bps * 1.5, "level_notional": spec.level_notional * 0.6, "trades_per_s": spec.trades_per_s * 0.6}


_HL = {spec.symbol: spec for spec in DEFAULT_ASSETS}
_ASTER = {spec.symbol: spec for spec in ASTER_ASSETS}

#: The listing, Hyperliquid perps first (so each underlying's price process starts exactly as on the
#: Hyperliquid emulator under the same seed).
MARKETS: tuple[MarketDef, ...] = (
    *(_market("perps", "hyperliquid", _HL[s]) for s in ("BTC", "ETH", "SOL", "HYPE")),
    *(_market("spot", "hyperliquid", _HL[s]) for s in ("PURR/USDC", "HYPE/USDC")),
    *(_market("perps", "aster", _ASTER[s], **_aster_flavour(_ASTER[s])) for s in ("BTC", "ETH", "SOL", "HYPE")),
    *(_market("spot", "aster", _ASTER[s]) for s in ("ASTER/USDT", "BTC/USDT")),
    _rwa("xyz", "XYZ100", "XYZ 100 (US tech index)", "index", 25_000.0, 4, 0, 0.012, 0.6, 2_000.0),
    _rwa("xyz", "TSLA", "Tesla", "equity", 430.0, 3, 2, 0.03, 0.8, 1_500.0),
    _rwa("xyz", "NVDA", "NVIDIA", "equity", 180.0, 3, 2, 0.025, 0.8, 1_500.0),
    _rwa("flx", "GOLD", "Gold", "commodity", 3_350.0, 4, 1, 0.01, 0.5, 2_000.0),
    _rwa("flx", "SILVER", "Silver", "commodity", 38.0, 2, 3, 0.015, 0.4, 800.0),
    _rwa("flx", "OIL", "WTI crude oil", "commodity", 68.0, 2, 3, 0.02, 0.5, 800.0),
)

#: Added with ``hostile_names=True``: the hostile perps on both providers, the hostile spot pair.
HOSTILE_MARKETS: tuple[MarketDef, ...] = (
    *(_market("perps", "hyperliquid", spec) for spec in HOSTILE_ASSETS if spec.kind == "perp"),
    *(_market("perps", "aster", spec, quote="USDT") for spec in HOSTILE_ASSETS if spec.kind == "perp"),
    *(_market("spot", "hyperliquid", spec) for spec in HOSTILE_ASSETS if spec.kind == "spot"),
)


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Listing:
    """A listed engine market with its provider's formatting and its numbered tape."""

    definition: MarketDef
    next_trade_id: int  # Aster's running trade number (Hyperliquid uses the engine's tid)
    tape: deque[tuple[str, Trade]] = field(default_factory=lambda: deque(maxlen=_TAPE))
    step_rows: list[dict[str, Any]] = field(default_factory=list)
    step_time: int = -1

    @property
    def key(self) -> str:
        return self.definition.spec.symbol

    @property
    def spec(self) -> AssetSpec:
        return self.definition.spec

    @property
    def provider(self) -> str:
        return self.definition.provider

    @property
    def ident(self) -> dict[str, str]:
        """The params a payload echoes: ``symbol`` (and ``dex``)."""
        d = self.definition
        return {"symbol": d.symbol, "dex": d.dex} if d.dex else {"symbol": d.symbol}

    def px(self, ticks: int) -> str:
        spec = self.spec
        return fixed_decimals(ticks, spec.px_decimals) if self.provider == "aster" else spec.px_str(ticks)

    def sz(self, lots: int) -> str:
        spec = self.spec
        return fixed_decimals(lots, spec.sz_decimals) if self.provider == "aster" else spec.sz_str(lots)

    def price(self, value: float) -> str:
        """A derived price (mark, index, previous day) in the provider's style."""
        spec = self.spec
        if self.provider == "aster":
            return fixed_float(value, spec.px_decimals)
        return format_price(value, spec.sz_decimals, 8 if spec.kind == "spot" else 6)

    def amount(self, value: float, decimals: int) -> str:
        return fixed_float(value, decimals) if self.provider == "aster" else format_decimal(value, decimals)

    def levels(self, levels: Iterable[list[int] | tuple[int, int]]) -> list[dict[str, str]]:
        return [{"price": self.px(level[0]), "size": self.sz(level[1])} for level in levels]


@dataclass(eq=False, slots=True)
class _Topic:
    """One subscription shared by its connections; payloads are encoded once per topic."""

    key: tuple[str, ...]
    vertical: str
    provider: str
    channel: str
    ident: dict[str, str]  # the params its payloads carry
    listing: _Listing | None = None
    market: BinaryMarket | None = None  # predictions
    token: str | None = None  # predictions orderbook
    interval: str = ""
    #: per connection ``[virtual ms of its last book push, book version it has]``
    connections: dict[WsConnection, list[int]] = field(default_factory=dict)
    version: int = 0
    state: Any = None
    frame: bytes | None = None
    changed_at: int = 0
    last_push: int = 0
    last_sent: Any = None
    bar_open: int | None = None
    held: tuple[bytes, list[WsConnection]] | None = None  # a book push kept back by "reorder"

    @property
    def market_key(self) -> str:
        if self.listing is not None:
            return self.listing.key
        return f"predictions:polymarket:{self.token}" if self.token else f"{self.vertical}:{self.provider}"


class _WsError(Exception):
    def __init__(self, code: str, message: str, echo: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.echo = code, message, echo


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _frame(channel: str, provider: str, data: dict[str, Any]) -> bytes:
    return orjson.dumps({"channel": channel, "provider": provider, "data": data})


def _pct(change: float, base: float) -> str:
    text = f"{change / base * 100 if base else 0.0:.2f}"
    return "0.00" if text == "-0.00" else text


def _prediction_price(units: int | None) -> str | None:
    return None if units is None else decimal_str(units, PRICE_DECIMALS)


def _prediction_levels(levels: Iterable[tuple[int, int]]) -> list[dict[str, str]]:
    return [{"price": decimal_str(px, PRICE_DECIMALS), "size": decimal_str(sz, SIZE_DECIMALS)} for px, sz in levels]


def _best_first(snapshot: BookSnapshot, depth: int) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """A Polymarket book (worst first) as ``depth`` levels a side, best first."""
    return snapshot.bids[::-1][:depth], snapshot.asks[::-1][:depth]


# --------------------------------------------------------------------------------------------------
# The emulator
# --------------------------------------------------------------------------------------------------


class PerpsStudioEmulator(EmulatorServer):
    """The perps.studio Provider API on the shared emulator mechanism (see the module docstring)."""

    venue: ClassVar[str] = "perps-studio"
    ws_path: ClassVar[str] = "/ws/v1/perps"
    extra_ws_routes: ClassVar[tuple[str, ...]] = ("/ws/v1/spot", "/ws/v1/rwas", "/ws/v1/predictions")
    idle_close: ClassVar[tuple[int, str]] = (CLOSE_IDLE, "idle timeout")

    def __init__(
        self,
        *,
        api_keys: Iterable[str] = (DEMO_API_KEY,),
        idle_timeout: float = 30.0,
        max_subscriptions: int = 100,
        max_messages_per_s: int = 20,
        rest_rate_limit: int = 100,
        book_interval: float = 0.5,
        hostile_names: bool = False,
        **kwargs: Any,
    ) -> None:
        definitions = MARKETS + (HOSTILE_MARKETS if hostile_names else ())
        if "engine" not in kwargs:
            kwargs["assets"] = [d.spec for d in definitions]
        super().__init__(idle_timeout=idle_timeout, **kwargs)
        self.api_keys = frozenset(api_keys)
        if not self.api_keys:
            raise ValueError("at least one API key")
        self.max_subscriptions = max_subscriptions
        self.max_messages_per_s = max_messages_per_s
        self.rest_rate_limit = rest_rate_limit
        self.book_interval_ms = int(book_interval * 1000)
        self.provider_status: dict[str, str] = dict.fromkeys(ALL_PROVIDERS, "ok")
        ids = random.Random(f"{self.seed}:perps-studio:ids")
        self.listings: dict[str, _Listing] = {}
        for d in definitions:
            if d.spec.symbol in self.engine.specs:  # a shared engine may list only some
                base = ids.randrange(10**8, 10**9)
                self.listings[d.spec.symbol] = _Listing(d, base + self.engine.trade_count(d.spec.symbol) if d.provider == "aster" else 0)
        specs = DEFAULT_MARKETS + (hostile_market_specs(HOSTILE_NAMES) if hostile_names else ())
        self.model = PredictionMarkets(self.seed, specs, start_ms=self.engine.now_ms)
        self._topics: dict[tuple[str, ...], _Topic] = {}
        self._published: dict[str, bytes] = {}  # market key -> last orderbook frame sent
        self._rest_windows: dict[str, list[float]] = {}

    # -- public accessors ------------------------------------------------------------------------

    def demo_credentials(self) -> dict[str, str]:
        return {"api_key": DEMO_API_KEY if DEMO_API_KEY in self.api_keys else sorted(self.api_keys)[0]}

    def demo_connect(self) -> dict[str, Any]:
        """The perps socket with the demo key as ``?apiKey=`` (without a key it closes at once)."""
        return {"uri": f"{self.ws_url}?apiKey={self.demo_credentials()['api_key']}"}

    def ws_url_of(self, vertical: str) -> str:
        """The socket URL of a vertical (without the key)."""
        if vertical not in VERTICALS:
            raise ValueError(f"unknown vertical {vertical!r}")
        return f"ws://{self._url_host}:{self.port}/ws/v1/{vertical}"

    def extra_urls(self) -> dict[str, str]:
        return {f"{vertical}_ws": self.ws_url_of(vertical) for vertical in VERTICALS[1:]}

    def symbols(self, vertical: str, provider: str) -> list[str]:
        """What a vertical's provider lists: symbols (``dex:symbol`` on rwas, token ids on predictions)."""
        if vertical == "predictions":
            return self.token_ids if provider == "polymarket" else []
        return [key.split(":", 2)[2] for key, item in self.listings.items() if (item.definition.vertical, item.provider) == (vertical, provider)]

    @property
    def token_ids(self) -> list[str]:
        """Every prediction token id, YES then NO per market, in listing order."""
        return [token for market in self.model.markets for token in market.token_ids]

    @property
    def market_ids(self) -> list[str]:
        """Every prediction market's id (its condition id), in listing order."""
        return [market.condition_id for market in self.model.markets]

    def set_provider_status(self, provider: str, status: str) -> None:
        """``"down"``: the provider's REST answers 503 and its streams go silent; ``"ok"``: normal."""
        if provider not in self.provider_status or status not in ("ok", "down"):
            raise ValueError(f"provider in {ALL_PROVIDERS}, status ok or down (got {provider!r}, {status!r})")
        self.provider_status[provider] = status

    # ==============================================================================================
    # Payloads
    # ==============================================================================================

    def _last_px(self, listing: _Listing) -> int:
        if listing.tape:
            return listing.tape[-1][1].px
        return self.engine.current_candle(listing.key, "1m").c

    def _book_state(self, topic: _Topic) -> Any:
        if topic.token is not None:
            return _best_first(self.model.book(topic.token), BOOK_LEVELS)
        assert topic.listing is not None
        bids, asks = self.engine.levels(topic.listing.key)
        return tuple((level[0], level[1]) for level in bids[:BOOK_LEVELS]), tuple((level[0], level[1]) for level in asks[:BOOK_LEVELS])

    def _refresh_book(self, topic: _Topic, now: int) -> None:
        """Bump the topic's version when its book changed since it was last looked at."""
        state = self._book_state(topic)
        if state != topic.state:
            topic.state, topic.frame, topic.changed_at = state, None, now
            topic.version += 1

    def _book_frame(self, topic: _Topic) -> bytes:
        if topic.frame is None:
            bids, asks = topic.state
            topic.frame = self._encode_book(topic, bids, asks, topic.changed_at)
        return topic.frame

    def _encode_book(self, topic: _Topic, bids: Iterable[Any], asks: Iterable[Any], at: int) -> bytes:
        if topic.token is not None:
            assert topic.market is not None
            data: dict[str, Any] = {"tokenId": topic.token, "marketId": topic.market.condition_id,
                                    "bids": _prediction_levels(bids), "asks": _prediction_levels(asks), "timestamp": at, "hash": ""}  # fmt: skip
            data["hash"] = summary_hash(data)
        else:
            assert topic.listing is not None
            data = {**topic.ident, "bids": topic.listing.levels(bids), "asks": topic.listing.levels(asks), "timestamp": at}
        return _frame("orderbook", topic.provider, data)

    def _ticker(self, listing: _Listing, now: int) -> dict[str, Any]:
        spec = listing.spec
        ctx = self.engine.context(listing.key)
        perp = spec.kind == "perp"
        prev = ctx.prev_day_px
        if listing.provider == "aster":
            last_ticks = self._last_px(listing)
            last, last_value = listing.px(last_ticks), spec.px(last_ticks)
            mark = index = mid = funding = open_interest = None
            change = fixed_float(last_value - prev, spec.px_decimals)
        else:
            mid = self.engine.mid(listing.key)
            last_value = ctx.mid_px if ctx.mid_px is not None else ctx.mark_px
            last = mid if mid is not None else listing.price(last_value)
            mark = listing.price(ctx.mark_px)
            index = listing.price(ctx.oracle_px) if perp else None
            funding = format_decimal(ctx.funding, 8) if perp else None
            open_interest = format_decimal(ctx.open_interest, spec.sz_decimals) if perp else None
            change = format_decimal(last_value - prev, spec.px_decimals + 1)
        return {
            **listing.ident, "lastPrice": last, "markPrice": mark, "indexPrice": index, "midPrice": mid,
            "prevDayPrice": listing.price(prev), "change24h": change, "change24hPct": _pct(last_value - prev, prev),
            "volume24h": listing.amount(ctx.day_base_vlm, spec.sz_decimals), "quoteVolume24h": listing.amount(ctx.day_ntl_vlm, 2),
            "fundingRate": funding, "openInterest": open_interest, "timestamp": now,
        }  # fmt: skip

    def _candle(self, listing: _Listing, interval: str, bar: Bar, closed: bool) -> dict[str, Any]:
        return {
            "symbol": listing.definition.symbol, "interval": interval, "open": listing.px(bar.o), "high": listing.px(bar.h),
            "low": listing.px(bar.l), "close": listing.px(bar.c), "volume": listing.sz(bar.v), "timestamp": bar.t, "closed": closed,
        }  # fmt: skip

    def _perp_listings(self, provider: str) -> list[_Listing]:
        return [item for item in self.listings.values() if item.definition.vertical == "perps" and item.provider == provider]

    def _prices(self, provider: str) -> dict[str, str]:
        """The complete map: mids (Hyperliquid) or last prices (Aster)."""
        prices = {}
        for listing in self._perp_listings(provider):
            if provider == "aster":
                prices[listing.definition.symbol] = listing.px(self._last_px(listing))
            elif (mid := self.engine.mid(listing.key)) is not None:
                prices[listing.definition.symbol] = mid
        return prices

    def _outcomes(self, market: BinaryMarket) -> list[dict[str, Any]]:
        rows = []
        for outcome, token in enumerate(market.token_ids):
            book = self.model.book(token)
            last = market.last_trade if market.last_trade is None or outcome == 0 else PRICE_ONE - market.last_trade
            rows.append({"tokenId": token, "outcome": market.outcomes[outcome], "bestBid": _prediction_price(book.best_bid),
                         "bestAsk": _prediction_price(book.best_ask), "lastPrice": _prediction_price(last)})  # fmt: skip
        return rows

    def _trade_rows(self, listing: _Listing, trades: list[Trade]) -> list[dict[str, Any]]:
        """Number and record a step's trades on the listing's tape; their wire rows."""
        rows = []
        for trade in trades:
            if listing.provider == "aster":
                trade_id = str(listing.next_trade_id)
                listing.next_trade_id += 1
            else:
                trade_id = str(trade.tid)
            listing.tape.append((trade_id, trade))
            rows.append(self._trade_row(listing, trade_id, trade))
        return rows

    @staticmethod
    def _trade_row(listing: _Listing, trade_id: str, trade: Trade) -> dict[str, Any]:
        return {"id": trade_id, "price": listing.px(trade.px), "size": listing.sz(trade.sz), "side": trade.side, "timestamp": trade.time}

    # ==============================================================================================
    # Publishing
    # ==============================================================================================

    async def on_step(self, events: StepEvents) -> None:
        now = events.time
        self.model.step(now - self.model.now_ms)
        for symbol, trades in events.trades.items():
            listing = self.listings.get(symbol)
            if listing is not None:
                listing.step_rows, listing.step_time = self._trade_rows(listing, trades), now
        for topic in list(self._topics.values()):
            if topic.connections and self.provider_status[topic.provider] == "ok":
                await self._publish(topic, now)

    async def _publish(self, topic: _Topic, now: int) -> None:
        channel, listing = topic.channel, topic.listing
        if channel == "orderbook":
            await self._publish_book(topic, now)
        elif channel == "trades":
            assert listing is not None
            if listing.step_time == now and listing.step_rows:
                await self.broadcast(topic.connections, _frame("trades", topic.provider, {**topic.ident, "trades": listing.step_rows}))
        elif channel == "ticker":
            if now - topic.last_push >= TICKER_INTERVAL_MS:
                assert listing is not None
                topic.last_push = now
                await self.broadcast(topic.connections, _frame("ticker", topic.provider, self._ticker(listing, now)))
        elif channel == "candle":
            if now - topic.last_push >= CANDLE_INTERVAL_MS:
                topic.last_push = now
                await self._publish_candle(topic, now)
        elif topic.vertical == "perps":  # prices
            if now - topic.last_push >= PRICES_INTERVAL_MS:
                topic.last_push = now
                await self._publish_perp_prices(topic, now)
        elif now - topic.last_push >= PRICES_INTERVAL_MS:  # predictions prices
            assert topic.market is not None
            topic.last_push = now
            outcomes = self._outcomes(topic.market)
            if outcomes != topic.last_sent:
                topic.last_sent = outcomes
                await self.broadcast(topic.connections, self._prediction_prices_frame(topic, outcomes, now))

    async def _publish_book(self, topic: _Topic, now: int) -> None:
        """The current book to each subscriber that has an older one and had none for
        ``book_interval``; an armed fault applies to this push as a whole."""
        self._refresh_book(topic, now)
        due = [conn for conn, (pushed, version) in topic.connections.items() if version != topic.version and now - pushed >= self.book_interval_ms]
        if not due:
            return
        frame = self._book_frame(topic)
        for conn in due:
            topic.connections[conn] = [now, topic.version]
        held, topic.held = topic.held, None
        fault = self.take_book_fault(topic.market_key, ("skip", "duplicate", "reorder"))
        frames = [] if fault in ("skip", "reorder") else [frame, frame] if fault == "duplicate" else [frame]
        if fault == "reorder":
            topic.held = (frame, due)
        for conn in due:
            for each in frames:
                await conn.send(each)
        if frames:
            self._published[topic.market_key] = frame
        if held is not None:
            await self.broadcast((conn for conn in held[1] if conn in topic.connections), held[0])

    async def _publish_candle(self, topic: _Topic, now: int) -> None:
        """The forming bar when it changed; when its bucket ended, once more with ``closed: true``."""
        listing, interval = topic.listing, topic.interval
        assert listing is not None
        if topic.bar_open is not None and bucket_start(interval, now) > topic.bar_open:
            finished = self.engine.candles(listing.key, interval, topic.bar_open, topic.bar_open, 1)
            if finished:
                await self.broadcast(topic.connections, _frame("candle", topic.provider, self._candle(listing, interval, finished[-1], True)))
            topic.bar_open, topic.last_sent = None, None
        bar = self.engine.current_candle(listing.key, interval)
        state = (bar.t, bar.o, bar.h, bar.l, bar.c, bar.v)
        if bar.t == bucket_start(interval, now) and state != topic.last_sent:
            topic.bar_open, topic.last_sent = bar.t, state
            await self.broadcast(topic.connections, _frame("candle", topic.provider, self._candle(listing, interval, bar, False)))

    async def _publish_perp_prices(self, topic: _Topic, now: int) -> None:
        prices = self._prices(topic.provider)
        if topic.provider == "aster":  # !ticker@arr: only what changed since the last push
            previous = topic.last_sent or {}
            topic.last_sent = prices
            prices = {symbol: price for symbol, price in prices.items() if previous.get(symbol) != price}
            if not prices:
                return
        await self.broadcast(topic.connections, _frame("prices", topic.provider, {"prices": prices, "timestamp": now}))

    def _prediction_prices_frame(self, topic: _Topic, outcomes: list[dict[str, Any]], now: int) -> bytes:
        assert topic.market is not None
        return _frame("prices", topic.provider, {"marketId": topic.market.condition_id, "outcomes": outcomes, "timestamp": now})

    def _first_push(self, topic: _Topic, conn: WsConnection) -> bytes | None:
        """What a new subscriber gets right after the ack (module docstring)."""
        now = self.engine.now_ms
        channel, listing = topic.channel, topic.listing
        if channel == "orderbook":
            self._refresh_book(topic, now)
            topic.connections[conn] = [now, topic.version]
            return self._book_frame(topic)
        if channel == "ticker":
            assert listing is not None
            return _frame("ticker", topic.provider, self._ticker(listing, now))
        if channel == "candle":
            assert listing is not None
            bar = self.engine.current_candle(listing.key, topic.interval)
            return _frame("candle", topic.provider, self._candle(listing, topic.interval, bar, bar.t < bucket_start(topic.interval, now)))
        if channel == "prices" and topic.vertical == "perps":
            prices = self._prices(topic.provider)
            if topic.provider == "aster" and topic.last_sent is None:
                topic.last_sent = prices
            return _frame("prices", topic.provider, {"prices": prices, "timestamp": now})
        if channel == "prices":
            assert topic.market is not None
            outcomes = self._outcomes(topic.market)
            if topic.last_sent is None:
                topic.last_sent = outcomes
            return self._prediction_prices_frame(topic, outcomes, now)
        return None

    # -- benchmark flood -------------------------------------------------------------------------

    async def flood(self, market: str, count: int) -> int:  # type: ignore[override]  # a market key
        """Send ``count`` orderbook snapshots of ``market`` (a market key) to its subscribers as fast
        as the transports drain: 16 variants with perturbed sizes, the last frame the true book."""
        topics = [t for t in self._topics.values() if t.channel == "orderbook" and t.market_key == market]
        if market not in self.listings and self.model.token(market.removeprefix("predictions:polymarket:")) is None:
            raise KeyError(f"unknown market {market!r}")
        sent = 0
        for topic in topics:
            self._refresh_book(topic, self.engine.now_ms)
            sent += await self.send_burst(list(topic.connections), self._flood_frames(topic, count))
            for conn in topic.connections:
                topic.connections[conn] = [self.engine.now_ms, topic.version]
        return sent

    def _flood_frames(self, topic: _Topic, count: int) -> Iterator[bytes]:
        bids, asks = topic.state

        def perturbed(side: tuple[tuple[int, int], ...], variant: int) -> list[tuple[int, int]]:
            return [(px, sz + (7 * variant + 3 * i) % 16 + 1) for i, (px, sz) in enumerate(side)]

        variants = [
            self._encode_book(topic, perturbed(bids, variant), perturbed(asks, variant), topic.changed_at)
            for variant in range(min(_FLOOD_VARIANTS, max(0, count - 1)))
        ]
        for index in range(count - 1):
            yield variants[index % len(variants)]
        if count > 0:
            yield self._book_frame(topic)

    # ==============================================================================================
    # WebSocket
    # ==============================================================================================

    def idle_since(self, conn: WsConnection) -> float | None:
        return None if conn.state.get("subs") else conn.last_received

    async def on_ws_open(self, conn: WsConnection) -> None:
        vertical = conn.request.path.rstrip("/").rsplit("/", 1)[-1]
        conn.state.update(vertical=vertical, subs={}, closing=False)
        key = conn.request.query.get("apiKey")
        if key is None:
            key = conn.request.headers.get("X-API-Key")
        if not key or key not in self.api_keys:
            conn.state["closing"] = True
            await conn.close(CLOSE_UNAUTHORIZED, "Missing API key" if not key else "Invalid API key")

    def on_ws_close(self, conn: WsConnection) -> None:
        for key in list(conn.state.get("subs", {})):
            self._detach(conn, key)

    async def on_ws_frame(self, conn: WsConnection, kind: WSMsgType) -> bool:
        """At most ``max_messages_per_s`` frames (any kind) a second; the next one closes with 4029."""
        return await self.limit_rate(conn, self.max_messages_per_s, CLOSE_RATE_LIMIT, "rate limit exceeded")

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        try:
            try:
                message = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise _WsError("INVALID_MESSAGE", "Invalid JSON") from None
            if not isinstance(message, dict):
                raise _WsError("INVALID_MESSAGE", "Message must be a JSON object")
            event = message.get("event")
            if event == "ping":
                await conn.send(orjson.dumps({"event": "pong", "ts": self.now_ms()}))
            elif event in ("subscribe", "unsubscribe"):
                await self._subscription(conn, event, message.get("data"))
            else:
                raise _WsError("INVALID_MESSAGE", f"Unknown event: {orjson.dumps(event).decode()[:64]}")
        except _WsError as error:
            body: dict[str, Any] = {"error": {"code": error.code, "message": error.message}}
            if error.echo is not None:
                body["subscription"] = error.echo
            await conn.send(orjson.dumps(body))

    def _resolve(self, vertical: str, data: Any) -> tuple[dict[str, Any], _Topic]:
        """Validate a subscription (module docstring order); its echo and its (unregistered) topic."""
        if not isinstance(data, dict):
            raise _WsError("INVALID_MESSAGE", "data must be an object with provider, channel and params")
        provider, channel = data.get("provider"), data.get("channel")
        if not isinstance(provider, str) or not isinstance(channel, str):
            raise _WsError("INVALID_MESSAGE", "data.provider and data.channel must be strings")
        params = data.get("params", {})
        echo = {"provider": provider, "channel": channel, "params": params}
        required = CHANNELS[vertical].get(channel)
        if required is None:
            raise _WsError("UNKNOWN_CHANNEL", f"Unknown channel: {channel}", echo)
        if provider not in PROVIDERS[vertical]:
            raise _WsError("UNSUPPORTED_PROVIDER", f"Provider {provider} does not serve {vertical}", echo)
        if not isinstance(params, dict):
            raise _WsError("INVALID_PARAMS", "params must be an object", echo)
        for name in required:
            if not isinstance(params.get(name), str) or not params[name]:
                raise _WsError("INVALID_PARAMS", f"Missing required param: {name}", echo)
        values = tuple(params[name] for name in required)
        topic = _Topic((vertical, provider, channel, *values), vertical, provider, channel, {})
        if channel == "candle":
            topic.interval = params["interval"]
            if topic.interval not in CANDLE_INTERVALS:
                raise _WsError("INVALID_PARAMS", f"Invalid interval: {topic.interval} (one of {', '.join(CANDLE_INTERVALS)})", echo)
        if vertical == "predictions":
            if channel == "orderbook":
                found = self.model.token(params["tokenId"])
                topic.market, topic.token = found[0] if found else None, params["tokenId"]
            else:
                topic.market = self.model.market(params["marketId"])
            if topic.market is None:
                raise _WsError("UNKNOWN_SYMBOL", f"Unknown symbol: {values[0]}", echo)
            topic.ident = {required[0]: values[0]}
        elif channel != "prices":
            symbol = params["symbol"]
            dex = params.get("dex") if vertical == "rwas" else None
            ident = f"{dex}:{symbol}" if dex else symbol
            topic.listing = self.listings.get(f"{vertical}:{provider}:{ident}")
            if topic.listing is None:
                raise _WsError("UNKNOWN_SYMBOL", f"Unknown symbol: {ident}", echo)
            topic.ident = topic.listing.ident
        return echo, topic

    async def _subscription(self, conn: WsConnection, event: str, data: Any) -> None:
        echo, candidate = self._resolve(conn.state["vertical"], data)
        subs: dict[tuple[str, ...], _Topic] = conn.state["subs"]
        key = candidate.key
        if event == "unsubscribe":
            if subs.pop(key, None) is not None:
                self._detach(conn, key)
            await conn.send(orjson.dumps({"event": "unsubscribed", "data": echo}))
            return
        if key not in subs and len(subs) >= self.max_subscriptions:
            raise _WsError("SUBSCRIPTION_LIMIT", f"Subscription limit reached: at most {self.max_subscriptions} subscriptions per connection", echo)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = candidate
            topic.last_push = self.engine.now_ms
        if topic.channel == "orderbook" and self.take_book_fault(topic.market_key, ("delta_before_snapshot",)):
            stale = self._published.get(topic.market_key)
            if stale is None:
                self._refresh_book(topic, self.engine.now_ms)
                stale = self._book_frame(topic)
            await conn.send(stale)  # a book before the ack
        subs[key] = topic
        topic.connections[conn] = [self.engine.now_ms, -1]
        await conn.send(orjson.dumps({"event": "subscribed", "data": echo}))
        if self.provider_status[topic.provider] == "ok" and (first := self._first_push(topic, conn)) is not None:
            await conn.send(first)

    def _detach(self, conn: WsConnection, key: tuple[str, ...]) -> None:
        topic = self._topics.get(key)
        if topic is not None:
            topic.connections.pop(conn, None)
            if not topic.connections:
                del self._topics[key]

    # ==============================================================================================
    # REST
    # ==============================================================================================

    def http_routes(self) -> list[web.RouteDef]:
        routes: dict[str, Callable[[web.Request], Any]] = {
            "/v1/health": self._rest_health,
            "/v1/health/{provider}": self._rest_provider_health,
            "/v1/{vertical}/{provider}/markets": self._rest_markets,
            "/v1/perps/{provider}/markets/{symbol:.+}/orderbook": self._rest_perps_book,
            "/v1/perps/{provider}/markets/{symbol:.+}/trades": self._rest_trades,
            "/v1/perps/{provider}/markets/{symbol:.+}/candles": self._rest_candles,
            "/v1/perps/{provider}/markets/{symbol:.+}/funding": self._rest_funding,
            "/v1/perps/{provider}/prices": self._rest_prices,
            "/v1/spot/{provider}/orderbook/{symbol:.+}": self._rest_spot_book,
            "/v1/rwas/{provider}/orderbook/{dex}/{symbol:.+}": self._rest_rwa_book,
            "/v1/predictions/{provider}/orderbook/{token}": self._rest_prediction_book,
            "/v1/{tail:.*}": self._rest_not_found,
        }
        return [web.get(path, self._rest(handler)) for path, handler in routes.items()]

    def _rest(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        """Key check, the per-key rate limit and the error shape around one endpoint."""

        async def serve(request: web.Request) -> web.Response:
            key = request.headers.get("X-API-Key")
            if not key or key not in self.api_keys:
                return _error_response(401, "INVALID_API_KEY", "Missing X-API-Key header" if not key else "Invalid API key")
            headers, retry_after = self._charge(key)
            if retry_after is not None:
                headers["Retry-After"] = str(retry_after)
                return _error_response(429, "RATE_LIMITED", f"Rate limit exceeded. Try again in {retry_after} seconds.", headers)
            try:
                return web.Response(body=orjson.dumps(handler(request)), content_type="application/json", headers=headers)
            except _ApiError as error:
                return _error_response(error.status, error.code, error.message, headers)

        return serve

    def _charge(self, key: str) -> tuple[dict[str, str], int | None]:
        """Count one request of ``key``: its rate-limit headers, and the seconds to wait if over."""
        now = time.monotonic()
        window = self._rest_windows.setdefault(key, [now, 0])
        if now - window[0] >= 60.0:
            window[0], window[1] = now, 0
        left = max(0.0, window[0] + 60.0 - now)
        headers = {"X-RateLimit-Limit": str(self.rest_rate_limit), "X-RateLimit-Reset": str(math.ceil(self.now_ms() / 1000 + left))}
        if window[1] >= self.rest_rate_limit:
            headers["X-RateLimit-Remaining"] = "0"
            return headers, max(1, math.ceil(left))
        window[1] += 1
        headers["X-RateLimit-Remaining"] = str(self.rest_rate_limit - int(window[1]))
        return headers, None

    # -- parameters ------------------------------------------------------------------------------

    def _provider(self, vertical: str, provider: str) -> None:
        if provider not in PROVIDERS.get(vertical, ()):
            raise _ApiError(400, "UNSUPPORTED_PROVIDER", f"Provider {provider} does not serve {vertical}")
        if self.provider_status[provider] != "ok":
            raise _ApiError(503, "PROVIDER_UNAVAILABLE", f"Provider {provider} is unavailable")

    def _listing(self, request: web.Request, vertical: str) -> _Listing:
        provider, symbol = request.match_info["provider"], request.match_info["symbol"]
        self._provider(vertical, provider)
        dex = request.match_info.get("dex")
        ident = f"{dex}:{symbol}" if dex is not None else symbol
        listing = self.listings.get(f"{vertical}:{provider}:{ident}")
        if listing is None:
            raise _ApiError(404, "NOT_FOUND", f"Market not found: {ident}")
        return listing

    # -- handlers --------------------------------------------------------------------------------

    def _rest_not_found(self, request: web.Request) -> Any:
        raise _ApiError(404, "NOT_FOUND", f"Not found: {request.path}")

    def _rest_health(self, request: web.Request) -> Any:
        status = "ok" if all(value == "ok" for value in self.provider_status.values()) else "degraded"
        return {"status": status, "providers": dict(self.provider_status)}

    def _rest_provider_health(self, request: web.Request) -> Any:
        provider = request.match_info["provider"]
        if provider not in self.provider_status:
            raise _ApiError(404, "NOT_FOUND", f"Unknown provider: {provider}")
        return {"provider": provider, "status": self.provider_status[provider]}

    def _rest_markets(self, request: web.Request) -> Any:
        vertical, provider = request.match_info["vertical"], request.match_info["provider"]
        if vertical not in VERTICALS:
            raise _ApiError(404, "NOT_FOUND", f"Not found: {request.path}")
        self._provider(vertical, provider)
        if vertical == "predictions":
            return [
                {"marketId": market.condition_id, "question": market.spec.question,
                 "outcomes": [{"tokenId": token, "outcome": outcome} for token, outcome in zip(market.token_ids, market.outcomes, strict=True)]}
                for market in self.model.markets
            ]  # fmt: skip
        rows = []
        for listing in self.listings.values():
            d = listing.definition
            if (d.vertical, d.provider) != (vertical, provider):
                continue
            if vertical == "rwas":
                rows.append({"symbol": d.symbol, "dex": d.dex, "name": d.name, "category": d.category})
            else:
                spec = d.spec
                rows.append({"symbol": d.symbol, "base": spec.base, "quote": spec.quote, "priceDecimals": spec.px_decimals, "sizeDecimals": spec.sz_decimals})
        return rows

    def _book_body(self, listing: _Listing, query: Mapping[str, str]) -> dict[str, Any]:
        depth = _int_param(query, "depth", 20, 1, 100)
        bids, asks = self.engine.levels(listing.key)
        return {"bids": listing.levels(bids[:depth]), "asks": listing.levels(asks[:depth]), "timestamp": self.engine.now_ms}

    def _rest_perps_book(self, request: web.Request) -> Any:
        return self._book_body(self._listing(request, "perps"), request.query)

    def _rest_spot_book(self, request: web.Request) -> Any:
        return self._book_body(self._listing(request, "spot"), request.query)

    def _rest_rwa_book(self, request: web.Request) -> Any:
        listing = self._listing(request, "rwas")
        return {**self._book_body(listing, request.query), "dex": listing.definition.dex}

    def _rest_prediction_book(self, request: web.Request) -> Any:
        self._provider("predictions", request.match_info["provider"])
        token = request.match_info["token"]
        if self.model.token(token) is None:
            raise _ApiError(404, "NOT_FOUND", f"Market not found: {token}")
        bids, asks = _best_first(self.model.book(token), _int_param(request.query, "depth", 20, 1, 100))
        return {"bids": _prediction_levels(bids), "asks": _prediction_levels(asks), "timestamp": self.model.book(token).time}

    def _rest_trades(self, request: web.Request) -> Any:
        listing = self._listing(request, "perps")
        limit = _int_param(request.query, "limit", 50, 1, 200)
        return [self._trade_row(listing, trade_id, trade) for trade_id, trade in list(listing.tape)[-limit:]]

    def _times(self, query: Mapping[str, str]) -> tuple[int, int]:
        now = self.engine.now_ms
        start, end = _int_param(query, "startTime", 0, 0, 2**53), _int_param(query, "endTime", now, 0, 2**53)
        if start > end:
            raise _ApiError(400, "INVALID_PARAMS", "startTime is after endTime")
        return start, min(end, now)

    def _rest_candles(self, request: web.Request) -> Any:
        listing = self._listing(request, "perps")
        interval = request.query.get("interval")
        if interval not in CANDLE_INTERVALS:
            raise _ApiError(400, "INVALID_PARAMS", f"Invalid interval: {interval} (one of {', '.join(CANDLE_INTERVALS)})")
        start, end = self._times(request.query)
        bars = self.engine.candles(listing.key, interval, start, end, _int_param(request.query, "limit", REST_CANDLE_CAP, 1, REST_CANDLE_CAP))
        return [{"open": listing.px(b.o), "high": listing.px(b.h), "low": listing.px(b.l), "close": listing.px(b.c),
                 "volume": listing.sz(b.v), "timestamp": b.t} for b in bars]  # fmt: skip

    def _rest_funding(self, request: web.Request) -> Any:
        listing = self._listing(request, "perps")
        limit = _int_param(request.query, "limit", 100, 1, 500)
        start, end = self._times(request.query)
        period = _FUNDING_PERIOD_MS[listing.provider]
        times = []
        t = end - end % period
        while t >= start and t > 0 and len(times) < limit:
            times.append(t)
            t -= period
        if not times:
            return []
        closes = {bar.t: bar.c for bar in self.engine.candles(listing.key, "1h", times[-1] - _HOUR, times[0], 10**6)}
        rows = []
        for t in reversed(times):
            close = closes.get(t - _HOUR)
            if close is None:
                continue
            noise = random.Random(f"{self.seed}:funding:{listing.key}:{t}").gauss(0.0, 1.0)
            rate = 0.0000125 * (1 if listing.provider == "hyperliquid" else 8) + 0.00001 * noise
            rows.append({"fundingRate": format_decimal(rate, 8) if listing.provider == "hyperliquid" else fixed_float(rate, 8),
                         "markPrice": listing.px(close), "timestamp": t})  # fmt: skip
        return rows

    def _rest_prices(self, request: web.Request) -> Any:
        provider = request.match_info["provider"]
        self._provider("perps", provider)
        return {"prices": self._prices(provider), "timestamp": self.engine.now_ms}


def _error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 16 or not low <= int(raw) <= high:
        raise _ApiError(400, "INVALID_PARAMS", f"Invalid {name}: {raw[:32]} (an integer in {low}..{high})")
    return int(raw)
