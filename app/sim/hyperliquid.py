"""Hyperliquid emulator: ``POST /info`` and WebSocket ``/ws`` on one port.

Follows the wire reference ``protocols/hyperliquid.md`` (section numbers below are its sections) so
that the official ``hyperliquid-python-sdk`` and ccxt's ``hyperliquid`` / ``ccxt.pro.hyperliquid``
work against it unchanged, with only their URLs pointed here. Everything about the market (books,
trades, candles, contexts, the demo account) comes from :class:`app.sim.engine.MarketEngine`; this
module only names, validates and formats.

Wire facts implemented (reference sections):

* §3 subscribe/unsubscribe, one ``subscriptionResponse`` ack per request echoing the subscription
  *normalized* (``l2Book`` gains ``nSigFigs:null, mantissa:null``; unknown fields dropped; addresses
  lower-cased as a Rust ``H160`` would print them); errors on channel ``error`` as plain strings with
  the exact prefixes; errors never close the socket.
* §2.3 ``{"method":"ping"}`` -> ``{"channel":"pong"}`` with no ``data`` key.
* §4 pushes ``{"channel","data"}``; spot ``activeAssetCtx`` -> channel ``activeSpotAssetCtx``;
  ``userEvents`` -> channel ``user``; decimals as strings, times/counts/ids as ints; key order as in
  the recorded fixtures.
* §4.1 ``l2Book``: a full snapshot each push, 20 levels (5 with ``fast``), ``nSigFigs`` 2-5 bucketing
  (bids rounded down, asks up) with ``mantissa`` 1/2/5 only with ``nSigFigs: 5``; ``spread`` only
  with ``nSigFigs``; every book on the same clock, default every 0.5 s, first snapshot on subscribe.
* §4.2 ``trades``: first frame = up to 30 recent trades (oldest first), then one array per engine
  step; all trades of a frame share a coin.
* §4.3/§4.5/§4.6 ``activeAssetCtx`` and ``allMids`` (complete map) every 1 s, ``bbo`` when it changes.
* §4.4 ``candle``: one object (not an array) per change of the forming bar.
* §4.7 account channels of the demo address: ``userFills`` (a snapshot with ``isSnapshot: true``
  first, then ``{"user","fills"}`` per step with fills); ``userEvents`` on channel ``user`` with
  ``{"fills"}`` and ``{"liquidation":{lid,liquidator,liquidated_user,liquidated_ntl_pos,
  liquidated_account_value}}``; liquidation fills carry ``liquidation{liquidatedUser,markPx (a
  string),method:"market"}`` between ``tid`` and ``feeToken`` (key order of a real capture);
  ``orderUpdates`` (no snapshot) with ``WsOrder`` lists; ``clearinghouseState``
  (``{"type":"clearinghouseState","user","dex"?}``, verified in the nktkas SDK only):
  ``{"dex":"","user","clearinghouseState":<the REST body>}`` on subscribe, then on change at most
  once a second (virtual time; ``time`` alone is no change).
* §5 ``post`` requests: ``info`` answered with the REST body under ``payload.data``; ``error`` with a
  string payload; more than 100 in flight -> ``too many pending post requests id=<n>`` on ``error``.
* §6 REST ``/info`` types listed in :data:`INFO_TYPES`; ``allMids`` is a flat map (no ``mids``
  wrapper); an unknown ``dex`` gives ``null``; ``candleSnapshot`` caps at the newest 5000 bars.

Design decisions where the venue is silent or unverified ([D] in the reference's terms):

* Malformed bodies: valid JSON of the wrong shape (unknown ``type``, missing or mistyped field,
  unknown candle interval, malformed address) -> HTTP 422 ``Failed to deserialize the JSON body into
  the target type`` (the text real clients report); a body that is not JSON -> HTTP 400
  ``Failed to parse the request body as JSON`` (axum's wording, inferred). Both ``text/plain``.
  The Content-Type header is not enforced.
* Unknown coin: ``l2Book`` -> ``null`` (nktkas SDK types it "null if the market does not exist");
  ``candleSnapshot`` and ``recentTrades`` -> ``[]``; a subscription -> ``Invalid subscription {..}``.
  A bad ``nSigFigs``/``mantissa`` value is ``Invalid subscription`` on the socket and 422 over REST.
* Error strings echo the client's subscription as compact JSON; ``Error parsing JSON ...`` echoes the
  raw frame text. An ack/echo includes ``fast`` or ``dex`` only when the client sent them.
* ``post`` errors carry the HTTP error text as the payload; signed ``action`` posts are answered
  ``{"status":"err","response":...}`` (the emulator has no exchange). ``post_latency`` (default 0)
  delays answers so the in-flight limit can be exercised.
* Spot universe indices are dense (position == index, which ccxt relies on for both ``universe`` and
  ``tokens``), so HYPE/USDC is ``@1`` here (``@107`` on mainnet); index 0 keeps its legacy pair name
  (``PURR/USDC``). ``perpDexs`` is ``[null]`` (no builder dexes).
* Candles and ``l2Book`` use the WebSocket key order over REST too (the recorded REST fixtures were
  re-sorted by the tool that stored them).
* Account data exists for :data:`app.sim.engine.DEMO_ADDRESS` only; any other address is an empty
  account. ``openOrders``/``frontendOpenOrders`` are ``[]`` (the book is level-based, no resting
  orders); ``webData2``, ``notification``, ``userFundings``, ``userNonFundingLedgerUpdates`` and
  ``activeAssetData`` are acknowledged and stay silent. A ``clearinghouseState`` subscription with a
  non-empty ``dex`` is ``Invalid subscription`` (as ``allMids``).
* ``orderUpdates``: each demo order of a step (a taker order with all its fills, or the resting
  order behind a maker fill) is sent ``open`` (``sz`` = ``origSz``, ``timestamp`` = its first fill)
  in one frame and then ``filled`` (``sz`` ``"0.0"``) in the next; a taker order's ``limitPx`` is its
  worst fill price. The venue may batch a block's updates in one list; clients must accept both.
* Margin (demo account): cross leverage min(10, maxLeverage); maintenance margin half the initial
  margin at max leverage; ``liquidationPx`` by the venue's cross formula (see
  :meth:`HyperliquidEmulator._clearinghouse_state`). ``cumFunding`` stays zero (no funding
  payments are simulated).
* Liquidation controls: :meth:`HyperliquidEmulator.set_liquidation_stage` (``normal``, ``warning``,
  ``liquidating``) and ``scenario="liquidation"`` (virtual time from construction: normal for 10 s,
  warning until 25 s, then liquidating: liquidated 3 s later, then trading on with what is left
  and liquidated again whenever it stays below maintenance, as Hypercall's scenario stays
  liquidating). The liquidation closes positions by market orders through the book
  (taker fills, ``method: "market"``); the liquidator address is synthetic
  (:data:`LIQUIDATOR_ADDRESS`); ``dir`` of those fills is ``Close Long``/``Close Short``.
* Spot fills show the fee in the fee token (the base token on buys), as the venue does.
* At most 1000 subscriptions per connection (the venue's limit is per IP).
* ``hostile_names=True`` appends :data:`app.sim.engine.HOSTILE_ASSETS` to the universe: perps named
  with markup, escape sequences and a bidi override, and a spot pair whose base token is such a name
  (the venue lists what its deployers name things; clients must show it literally). Off by default,
  so the default universe and everything a seed determines stay as they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson
from aiohttp import web

from app.sim.engine import (
    DEFAULT_ASSETS,
    DEMO_ADDRESS,
    HOSTILE_ASSETS,
    INTERVALS,
    AssetSpec,
    Bar,
    Fill,
    StepEvents,
    Trade,
    bucket_end,
    format_decimal,
    format_price,
)
from app.sim.server import EmulatorServer, LiquidationScript, WsConnection

__all__ = ["HyperliquidEmulator", "INFO_TYPES", "LIQUIDATION_STAGES", "LIQUIDATOR_ADDRESS"]

PARSE_ERROR = "Error parsing JSON into valid websocket request: "
DESERIALIZE_ERROR = "Failed to deserialize the JSON body into the target type"
JSON_SYNTAX_ERROR = "Failed to parse the request body as JSON"
MAX_INFLIGHT_POSTS = 100
MAX_SUBSCRIPTIONS = 1000
TRADES_BACKLOG = 30
CANDLE_CAP = 5000
BOOK_LEVELS, FAST_BOOK_LEVELS = 20, 5
PERP_MAX_DECIMALS, SPOT_MAX_DECIMALS = 6, 8
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_MAX_LEVERAGE = {"BTC": 40, "ETH": 25, "SOL": 20}
_DEFAULT_MAX_LEVERAGE = 10
_CROSS_LEVERAGE = 10  # the demo account's leverage setting, capped at each asset's maximum

LiquidationStage = Literal["normal", "warning", "liquidating"]
LIQUIDATION_STAGES: tuple[LiquidationStage, ...] = ("normal", "warning", "liquidating")
#: Who liquidates the demo account (synthetic; the venue names its liquidator vault here).
LIQUIDATOR_ADDRESS = "0x11d0000000000000000000000000000000000001"
#: How long the demo account stays below its maintenance margin before it is liquidated (virtual
#: ms): long enough for a client to see the Liquidating state in a ``clearinghouseState`` push.
LIQUIDATION_DELAY_MS = 3_000
CLEARINGHOUSE_PUSH_MS = 1_000  # clearinghouseState pushes: on change, at most once a second
#: accountValue / crossMaintenanceMarginUsed kept by each stage: (low, high, target). The account
#: value floats with the market inside [low, high]; outside it, USDC is moved to reach the target.
_STAGE_BANDS: dict[str, tuple[float, float, float]] = {
    "normal": (2.0, math.inf, 4.0),
    "warning": (1.05, 1.45, 1.25),
    "liquidating": (0.75, 0.95, 0.85),
}
#: The "liquidation" scenario: (stage, virtual ms after start it lasts until); then liquidating for good.
_ACCOUNT_PUSHES = frozenset({"userFills", "userEvents", "orderUpdates"})  # fed by the demo account's fills
_SUBSCRIPTION_FIELDS: dict[str, tuple[str, ...]] = {
    "allMids": (),
    "l2Book": ("coin",),
    "trades": ("coin",),
    "bbo": ("coin",),
    "activeAssetCtx": ("coin",),
    "candle": ("coin", "interval"),
    "userFills": ("user",),
    "userEvents": ("user",),
    "orderUpdates": ("user",),
    "clearinghouseState": ("user",),
    "notification": ("user",),
    "webData2": ("user",),
    "userFundings": ("user",),
    "userNonFundingLedgerUpdates": ("user",),
    "activeAssetData": ("user", "coin"),
}


class _Invalid(Exception):
    """The request is well-formed JSON of the wrong shape (422 / ``Error parsing JSON``)."""


@dataclass(frozen=True, slots=True)
class _Listing:
    """An engine asset under its Hyperliquid name."""

    coin: str
    spec: AssetSpec
    index: int  # position in meta.universe or spotMeta.universe

    @property
    def is_spot(self) -> bool:
        return self.spec.kind == "spot"

    @property
    def max_decimals(self) -> int:
        return SPOT_MAX_DECIMALS if self.is_spot else PERP_MAX_DECIMALS


@dataclass(slots=True)
class _Subscription:
    type: str
    echo: dict[str, Any]  # normalized, as acknowledged
    client_json: str  # what the client sent, for error strings
    listing: _Listing | None = None
    user: str | None = None

    @property
    def key(self) -> str:
        return orjson.dumps(self.echo).decode()


@dataclass(slots=True)
class _Topic:
    """Connections sharing one normalized subscription; frames are encoded once per topic."""

    subscription: _Subscription
    connections: set[WsConnection] = field(default_factory=set)
    last_sent: Any = None
    last_push_ms: int = 0
    held: bytes | None = None  # a book push kept back by the "reorder" fault


@dataclass(slots=True)
class _PositionMargin:
    """One open perp position of the demo account, valued at the mark."""

    item: _Listing
    lots: int  # signed
    size: float  # signed
    entry_px: float
    mark: float
    value: float
    pnl: float
    leverage: int
    max_leverage: int
    used: float  # initial margin at the account's leverage
    maintenance: float  # half the initial margin at max leverage (the venue's rule)


@dataclass(slots=True)
class _Margin:
    """A user's perp account in numbers (the demo account; every other address is empty)."""

    positions: list[_PositionMargin] = field(default_factory=list)
    equity: float = 0.0  # accountValue
    notional: float = 0.0
    used: float = 0.0
    maintenance: float = 0.0
    signed_value: float = 0.0  # sum of szi * mark

    @property
    def ratio(self) -> float:
        """accountValue / crossMaintenanceMarginUsed (infinite without positions)."""
        return self.equity / self.maintenance if self.maintenance > 0 else math.inf


def _frame(channel: str, data: Any) -> bytes:
    return orjson.dumps({"channel": channel, "data": data})


def _level(spec: AssetSpec, level: list[int]) -> dict[str, Any]:
    return {"px": spec.px_str(level[0]), "sz": spec.sz_str(level[1]), "n": level[2]}


def _bucket_levels(levels: list[list[int]], is_bid: bool, n_sig_figs: int, mantissa: int | None) -> list[list[int]]:
    """Aggregate raw tick levels to ``n_sig_figs`` significant figures (bids down, asks up)."""
    out: list[list[int]] = []
    for px, sz, n in levels:
        exponent = len(str(px)) - n_sig_figs
        bucket = (mantissa or 1) * 10**exponent if exponent >= 0 else 1
        bucketed = (px // bucket) * bucket if is_bid else -(-px // bucket) * bucket
        if out and out[-1][0] == bucketed:
            out[-1][1] += sz
            out[-1][2] += n
        else:
            out.append([bucketed, sz, n])
    return out


class HyperliquidEmulator(EmulatorServer):
    """The Hyperliquid venue on the shared emulator mechanism (see the module docstring)."""

    venue = "hyperliquid"
    ws_path = "/ws"
    greeting_text = "Websocket connection established."
    scenarios: ClassVar[tuple[str, ...]] = ("liquidation",)

    def __init__(
        self,
        *,
        book_interval: float = 0.5,
        mids_interval: float = 1.0,
        ctx_interval: float = 1.0,
        post_latency: float = 0.0,
        hostile_names: bool = False,
        scenario: str | None = None,
        **kwargs: Any,
    ) -> None:
        if scenario is not None and scenario not in self.scenarios:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(self.scenarios)})")
        if hostile_names:
            kwargs["assets"] = (*DEFAULT_ASSETS, *HOSTILE_ASSETS)
        super().__init__(**kwargs)
        self.scenario = scenario
        self.book_interval_ms = int(book_interval * 1000)
        self.mids_interval_ms = int(mids_interval * 1000)
        self.ctx_interval_ms = int(ctx_interval * 1000)
        self.post_latency = post_latency
        self._topics: dict[str, _Topic] = {}
        self._last_push = dict.fromkeys(("book", "mids", "ctx"), self.engine.now_ms)
        self.perps: list[_Listing] = []
        self.spots: list[_Listing] = []
        for spec in self.engine.specs.values():
            if spec.kind == "perp":
                self.perps.append(_Listing(spec.base, spec, len(self.perps)))
            else:
                index = len(self.spots)
                self.spots.append(_Listing(spec.symbol if index == 0 else f"@{index}", spec, index))
        self.listings: dict[str, _Listing] = {item.coin: item for item in (*self.perps, *self.spots)}
        self._by_symbol: dict[str, _Listing] = {item.spec.symbol: item for item in self.listings.values()}
        self.tokens: list[str] = ["USDC"]
        for item in self.spots:
            for token in (item.spec.base, item.spec.quote):
                if token not in self.tokens:
                    self.tokens.append(token)
        # Liquidation controls (see set_liquidation_stage); unmanaged until the hook or a scenario runs.
        self.liquidation_stage: LiquidationStage = "normal"
        self._stage_managed = False
        self._force_liquidation = False
        self._liquidation_due: int | None = None
        self._next_lid = 1_000_000 + int.from_bytes(hashlib.blake2b(f"{self.seed}:lid".encode(), digest_size=3).digest(), "big")
        self._script = LiquidationScript(self.engine.now_ms) if self.scenario == "liquidation" else None

    def demo_credentials(self) -> dict[str, str]:
        """The demo account whose account streams this emulator serves."""
        return {"wallet": DEMO_ADDRESS}

    def coin(self, symbol: str) -> str:
        """Hyperliquid coin name of an engine symbol (``"HYPE/USDC"`` -> ``"@1"``)."""
        return self._by_symbol[symbol].coin

    # ==============================================================================================
    # Liquidation controls (the demo account)
    # ==============================================================================================

    def set_liquidation_stage(self, stage: LiquidationStage) -> None:
        """Put the demo account in ``stage`` (test hook; the "liquidation" scenario calls it too).

        The stage is read from ``clearinghouseState`` as clients do: Liquidating when accountValue <
        crossMaintenanceMarginUsed, Warning below 1.5 times it, else Normal. USDC is moved into or
        out of the perp account (at once, and again after any step that left the stage's band, see
        :data:`_STAGE_BANDS`) so the state holds whenever the account has positions:

        * ``normal``: the USDC moved by earlier stages goes back (the account is whole again);
        * ``warning``: accountValue kept at 1.05-1.45 x maintenance;
        * ``liquidating``: accountValue kept at 0.75-0.95 x maintenance for
          :data:`LIQUIDATION_DELAY_MS`, then the account is liquidated: a ``liquidation`` user event,
          market orders closing every position (fills with a ``liquidation`` object on ``userFills``
          and ``user``, orders on ``orderUpdates``), positions flat. It then trades on with what is
          left, under the venue's rule (liquidated again whenever it stays below maintenance for the
          delay), until another stage is set.
        """
        if stage not in LIQUIDATION_STAGES:
            raise ValueError(f"unknown liquidation stage {stage!r} (known: {', '.join(LIQUIDATION_STAGES)})")
        self.liquidation_stage = stage
        self._stage_managed = True
        self._liquidation_due = None
        self._force_liquidation = stage == "liquidating"
        if stage == "normal":
            self.engine.account.transfers = 0.0
        self._hold_stage()

    def _hold_stage(self) -> bool:
        """Keep the demo account in its stage's band; True when a liquidation is due now."""
        margin = self._margin(DEMO_ADDRESS)
        stage, now = self.liquidation_stage, self.engine.now_ms
        if margin.maintenance <= 0:  # flat: no state to hold (a pending liquidation waits for positions)
            self._liquidation_due = None
            return False
        if stage != "liquidating" or self._force_liquidation:
            low, high, target = _STAGE_BANDS[stage]
            if not low <= margin.ratio <= high:
                self.engine.account.transfers += target * margin.maintenance - margin.equity
            if stage != "liquidating":
                return False
        elif margin.equity >= margin.maintenance:
            self._liquidation_due = None
            return False
        if self._liquidation_due is None:
            self._liquidation_due = now + LIQUIDATION_DELAY_MS
        return now >= self._liquidation_due

    def _run_scenario(self, now: int) -> None:
        if self._script is not None and (stage := self._script.change(now)) is not None:
            self.set_liquidation_stage(stage)  # type: ignore[arg-type]  # the script's stages are these

    def _manage_account(self, events: StepEvents) -> dict[str, Any] | None:
        """Run the scenario and hold the stage after a step; liquidate when due (its trades and
        fills join ``events``). Returns the ``liquidation`` user event, if any."""
        self._run_scenario(events.time)
        if not self._stage_managed or not self._hold_stage():
            return None
        margin = self._margin(DEMO_ADDRESS)
        trades, fills = self.engine.liquidate_demo()
        for symbol, symbol_trades in trades.items():
            events.trades.setdefault(symbol, []).extend(symbol_trades)
        events.fills.extend(fills)
        self._force_liquidation = False
        self._liquidation_due = None
        lid, self._next_lid = self._next_lid, self._next_lid + 1
        return {
            "liquidation": {
                "lid": lid,
                "liquidator": LIQUIDATOR_ADDRESS,
                "liquidated_user": DEMO_ADDRESS,
                "liquidated_ntl_pos": format_decimal(margin.notional, 6),
                "liquidated_account_value": format_decimal(margin.equity, 6),
            }
        }

    # ==============================================================================================
    # REST /info
    # ==============================================================================================

    def http_routes(self) -> list[web.RouteDef]:
        return [web.post("/info", self._http_info)]

    async def _http_info(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return web.Response(status=400, text=JSON_SYNTAX_ERROR)
        status, data = self.info(body)
        if status != 200:
            return web.Response(status=status, text=data)
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    def info(self, body: Any) -> tuple[int, Any]:
        """Answer an info request: ``(200, json_value)`` or ``(status, error_text)``."""
        try:
            if not isinstance(body, dict):
                raise _Invalid
            kind = body.get("type")
            handler = INFO_TYPES.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise _Invalid
            return 200, handler(self, body)
        except _Invalid:
            return 422, DESERIALIZE_ERROR

    # -- request field helpers -------------------------------------------------------------------

    @staticmethod
    def _str(body: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
        value = body.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise _Invalid
        return value

    @staticmethod
    def _int(body: dict[str, Any], name: str, *, optional: bool = False) -> int | None:
        value = body.get(name)
        if value is None and optional:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid
        return value

    @classmethod
    def _user(cls, body: dict[str, Any]) -> str:
        user = cls._str(body, "user")
        assert user is not None
        if not _ADDRESS.match(user):
            raise _Invalid
        return user.lower()

    @classmethod
    def _main_dex(cls, body: dict[str, Any]) -> bool:
        return not cls._str(body, "dex", optional=True)

    # -- market data -----------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        universe = []
        leverages: list[int] = []
        for item in self.perps:
            leverage = _MAX_LEVERAGE.get(item.coin, _DEFAULT_MAX_LEVERAGE)
            universe.append({"szDecimals": item.spec.sz_decimals, "name": item.coin, "maxLeverage": leverage, "marginTableId": leverage})
            if leverage not in leverages:
                leverages.append(leverage)
        tables = [[lev, {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": lev}]}] for lev in leverages]
        return {"universe": universe, "marginTables": tables, "collateralToken": 0}

    def _spot_meta(self) -> dict[str, Any]:
        token_specs = {item.spec.base: item.spec for item in self.spots}
        tokens = []
        for index, name in enumerate(self.tokens):
            sz_decimals = 8 if name == "USDC" else token_specs[name].sz_decimals
            tokens.append({
                "name": name,
                "szDecimals": sz_decimals,
                "weiDecimals": 8,
                "index": index,
                "tokenId": "0x" + hashlib.blake2b(name.encode(), digest_size=16).hexdigest(),
                "isCanonical": True,
                "evmContract": None,
                "fullName": None,
                "deployerTradingFeeShare": "0.0",
            })  # fmt: skip
        universe = [
            {
                "tokens": [self.tokens.index(item.spec.base), self.tokens.index(item.spec.quote)],
                "name": item.coin,
                "index": item.index,
                "isCanonical": item.index == 0,
            }
            for item in self.spots
        ]
        return {"universe": universe, "tokens": tokens}

    def _asset_ctx(self, item: _Listing) -> dict[str, Any]:
        ctx = self.engine.context(item.spec.symbol)
        spec = item.spec
        price = lambda value: format_price(value, spec.sz_decimals, item.max_decimals)  # noqa: E731
        mid = self.engine.mid(spec.symbol)
        if item.is_spot:
            return {
                "prevDayPx": price(ctx.prev_day_px),
                "dayNtlVlm": format_decimal(ctx.day_ntl_vlm, 8),
                "markPx": price(ctx.mark_px),
                "midPx": mid,
                "circulatingSupply": format_decimal(ctx.circulating_supply, 8),
                "coin": item.coin,
            }
        impact = None
        if ctx.impact_bid is not None and ctx.impact_ask is not None:
            impact = [format_decimal(ctx.impact_bid, spec.px_decimals + 1), format_decimal(ctx.impact_ask, spec.px_decimals + 1)]
        return {
            "funding": format_decimal(ctx.funding, 10),
            "openInterest": format_decimal(ctx.open_interest, spec.sz_decimals),
            "prevDayPx": price(ctx.prev_day_px),
            "dayNtlVlm": format_decimal(ctx.day_ntl_vlm, 5),
            "premium": None if mid is None else format_decimal(ctx.premium, 10),
            "oraclePx": price(ctx.oracle_px),
            "markPx": price(ctx.mark_px),
            "midPx": mid,
            "impactPxs": impact,
            "dayBaseVlm": format_decimal(ctx.day_base_vlm, spec.sz_decimals),
        }

    def _all_mids(self) -> dict[str, str]:
        mids = {}
        for coin, item in self.listings.items():
            mid = self.engine.mid(item.spec.symbol)
            if mid is not None:
                mids[coin] = mid
        return mids

    def _book_sides(self, item: _Listing, n_sig_figs: int | None, mantissa: int | None, depth: int) -> tuple[list[list[int]], list[list[int]], str | None]:
        """Top ``depth`` raw levels per side (bucketed when ``n_sig_figs`` is set) and the spread."""
        bids, asks = self.engine.levels(item.spec.symbol)
        if n_sig_figs is None:
            return bids[:depth], asks[:depth], None
        bids = _bucket_levels(bids, True, n_sig_figs, mantissa)
        asks = _bucket_levels(asks, False, n_sig_figs, mantissa)
        spread = item.spec.px_str(asks[0][0] - bids[0][0]) if bids and asks else None
        return bids[:depth], asks[:depth], spread

    def _book(self, item: _Listing, n_sig_figs: int | None, mantissa: int | None, depth: int, fast: bool = False) -> dict[str, Any]:
        spec = item.spec
        bids, asks, spread = self._book_sides(item, n_sig_figs, mantissa, depth)
        book: dict[str, Any] = {
            "coin": item.coin,
            "time": self.engine.now_ms,
            "levels": [[_level(spec, lvl) for lvl in bids], [_level(spec, lvl) for lvl in asks]],
        }
        if spread is not None:
            book["spread"] = spread
        if fast:
            book["fast"] = True
        return book

    def _trade(self, item: _Listing, trade: Trade) -> dict[str, Any]:
        return {
            "coin": item.coin,
            "side": "B" if trade.side == "buy" else "A",
            "px": trade.px_str,
            "sz": trade.sz_str,
            "time": trade.time,
            "hash": trade.hash,
            "tid": trade.tid,
            "users": [trade.buyer, trade.seller],
        }

    def _candle(self, item: _Listing, interval: str, bar: Bar) -> dict[str, Any]:
        spec = item.spec
        return {
            "t": bar.t,
            "T": bucket_end(interval, bar.t) - 1,
            "s": item.coin,
            "i": interval,
            "o": spec.px_str(bar.o),
            "c": spec.px_str(bar.c),
            "h": spec.px_str(bar.h),
            "l": spec.px_str(bar.l),
            "v": spec.sz_str(bar.v),
            "n": bar.n,
        }

    def _bbo(self, item: _Listing) -> dict[str, Any]:
        bid, ask = self.engine.bbo(item.spec.symbol)
        spec = item.spec
        return {
            "coin": item.coin,
            "time": self.engine.now_ms,
            "bbo": [None if bid is None else _level(spec, bid), None if ask is None else _level(spec, ask)],
        }

    def _fill(self, fill: Fill) -> dict[str, Any]:
        item = self._by_symbol[fill.symbol]
        spec = item.spec
        buy = fill.side == "buy"
        fee = fill.fee  # the engine counts fees in USDC
        if item.is_spot:
            direction = "Buy" if buy else "Sell"
            fee_token = spec.base if buy else spec.quote
            if buy:  # a spot buy pays its fee in the token bought
                fee /= spec.px(fill.px)
        else:
            start, signed = fill.start_position, fill.sz if buy else -fill.sz
            if start == 0 or (start > 0) == (signed > 0):
                direction = "Open Long" if buy else "Open Short"
            elif abs(signed) > abs(start):
                direction = "Short > Long" if buy else "Long > Short"
            else:
                direction = "Close Short" if buy else "Close Long"
            fee_token = "USDC"
        out: dict[str, Any] = {
            "coin": item.coin,
            "px": spec.px_str(fill.px),
            "sz": spec.sz_str(fill.sz),
            "side": "B" if buy else "A",
            "time": fill.time,
            "startPosition": spec.sz_str(fill.start_position),
            "dir": direction,
            "closedPnl": format_decimal(fill.closed_pnl, 6),
            "hash": fill.hash,
            "oid": fill.order_id,
            "crossed": fill.taker,
            "fee": format_decimal(fee, 8 if fee_token != "USDC" else 6),
            "tid": fill.tid,
        }
        if fill.liquidation_mark_px is not None:  # key order and string markPx as in a real capture
            out["liquidation"] = {
                "liquidatedUser": DEMO_ADDRESS,
                "markPx": format_price(fill.liquidation_mark_px, spec.sz_decimals, item.max_decimals),
                "method": "market",
            }
        out["feeToken"] = fee_token
        out["twapId"] = None
        return out

    def _order_updates(self, fills: list[Fill]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The demo orders behind ``fills`` as ``WsOrder`` lists: each order ``open`` (full size),
        then the same orders ``filled`` (``sz`` 0). A taker order's limit is its worst fill price."""
        orders: dict[int, list[Fill]] = {}
        for fill in fills:
            orders.setdefault(fill.order_id, []).append(fill)
        opened: list[dict[str, Any]] = []
        filled: list[dict[str, Any]] = []
        for oid, group in orders.items():
            first = group[0]
            item = self._by_symbol[first.symbol]
            spec = item.spec
            buy = first.side == "buy"
            limit = max(f.px for f in group) if buy else min(f.px for f in group)
            size = spec.sz_str(sum(f.sz for f in group))
            order = {"coin": item.coin, "side": "B" if buy else "A", "limitPx": spec.px_str(limit), "sz": size, "oid": oid, "timestamp": first.time, "origSz": size}
            opened.append({"order": order, "status": "open", "statusTimestamp": first.time})
            filled.append({"order": {**order, "sz": spec.sz_str(0)}, "status": "filled", "statusTimestamp": group[-1].time})
        return opened, filled

    def _fills_of(self, user: str) -> list[Fill]:
        """The user's fills, newest first (Hyperliquid's order for ``userFills``)."""
        if user != DEMO_ADDRESS:
            return []
        return sorted(self.engine.account.fills, key=lambda fill: fill.time, reverse=True)

    # -- info handlers ---------------------------------------------------------------------------

    def _info_meta(self, body: dict[str, Any]) -> Any:
        return self._meta() if self._main_dex(body) else None

    def _info_spot_meta(self, body: dict[str, Any]) -> Any:
        return self._spot_meta()

    def _info_meta_and_ctxs(self, body: dict[str, Any]) -> Any:
        if not self._main_dex(body):
            return None
        return [self._meta(), [self._asset_ctx(item) for item in self.perps]]

    def _info_spot_meta_and_ctxs(self, body: dict[str, Any]) -> Any:
        return [self._spot_meta(), [self._asset_ctx(item) for item in self.spots]]

    def _info_perp_dexs(self, body: dict[str, Any]) -> Any:
        return [None]

    def _info_all_mids(self, body: dict[str, Any]) -> Any:
        return self._all_mids() if self._main_dex(body) else None

    def _info_l2_book(self, body: dict[str, Any]) -> Any:
        coin = self._str(body, "coin")
        n_sig_figs, mantissa = self._book_precision(body)
        if not self._valid_precision(n_sig_figs, mantissa):
            raise _Invalid
        item = self.listings.get(coin)  # type: ignore[arg-type]
        return None if item is None else self._book(item, n_sig_figs, mantissa, BOOK_LEVELS)

    def _info_candles(self, body: dict[str, Any]) -> Any:
        req = body.get("req")
        if not isinstance(req, dict):
            raise _Invalid
        coin = self._str(req, "coin")
        interval = self._str(req, "interval")
        start = self._int(req, "startTime")
        end = self._int(req, "endTime", optional=True)
        if interval not in INTERVALS:
            raise _Invalid
        item = self.listings.get(coin)  # type: ignore[arg-type]
        if item is None:
            return []
        end = self.engine.now_ms if end is None else end
        bars = self.engine.candles(item.spec.symbol, interval, start, end, CANDLE_CAP)  # type: ignore[arg-type]
        return [self._candle(item, interval, bar) for bar in bars]  # type: ignore[arg-type]

    def _info_recent_trades(self, body: dict[str, Any]) -> Any:
        item = self.listings.get(self._str(body, "coin"))  # type: ignore[arg-type]
        if item is None:
            return []
        return [self._trade(item, trade) for trade in self.engine.recent_trades(item.spec.symbol, TRADES_BACKLOG)]

    def _info_user_fills(self, body: dict[str, Any]) -> Any:
        return [self._fill(fill) for fill in self._fills_of(self._user(body))[:2000]]

    def _info_user_fills_by_time(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        start = self._int(body, "startTime")
        end = self._int(body, "endTime", optional=True)
        fills = [f for f in self._fills_of(user) if f.time >= start and (end is None or f.time <= end)]  # type: ignore[operator]
        return [self._fill(fill) for fill in fills[:2000]]

    def _info_open_orders(self, body: dict[str, Any]) -> Any:
        self._user(body)
        return []

    def _info_exchange_status(self, body: dict[str, Any]) -> Any:
        return {"time": self.engine.now_ms, "specialStatuses": None}

    def _info_clearinghouse(self, body: dict[str, Any]) -> Any:
        user = self._user(body)
        if not self._main_dex(body):
            return None
        return self._clearinghouse_state(user)

    def _margin(self, user: str) -> _Margin:
        """The user's perp account valued at the marks now."""
        margin = _Margin()
        if user != DEMO_ADDRESS:
            return margin
        account = self.engine.account
        unrealized = 0.0
        for item in self.perps:
            pos = account.positions[item.spec.symbol]
            if pos.size == 0:
                continue
            spec = item.spec
            max_leverage = _MAX_LEVERAGE.get(item.coin, _DEFAULT_MAX_LEVERAGE)
            leverage = min(_CROSS_LEVERAGE, max_leverage)
            size = spec.sz(pos.size)
            mark = self.engine.mark_px(spec.symbol)
            value = abs(size) * mark
            pnl = (mark - pos.entry_px) * size
            used, maintenance = value / leverage, value / (2 * max_leverage)
            margin.positions.append(_PositionMargin(item, pos.size, size, pos.entry_px, mark, value, pnl, leverage, max_leverage, used, maintenance))
            margin.notional += value
            margin.used += used
            margin.maintenance += maintenance
            margin.signed_value += size * mark
            unrealized += pnl
        margin.equity = account.STARTING_EQUITY + account.transfers + account.realized_pnl + unrealized
        return margin

    def _clearinghouse_state(self, user: str) -> dict[str, Any]:
        """REST ``clearinghouseState`` (also the ``clearinghouseState`` push's payload).

        ``totalRawUsd`` is the account value less the signed position value (negative when long
        with borrowed USD, as on the venue). ``crossMaintenanceMarginUsed`` is half the initial
        margin at each asset's max leverage. ``liquidationPx`` is the venue's cross-margin formula
        ``mark - side * (accountValue - maintenance) / |szi| / (1 - side / (2 * maxLeverage))``
        (the price at which accountValue meets the maintenance margin, others fixed); null if <= 0.
        """
        margin = self._margin(user)
        available = margin.equity - margin.maintenance
        positions = []
        for p in margin.positions:
            spec = p.item.spec
            side = 1 if p.lots > 0 else -1
            liquidation = p.mark - side * available / abs(p.size) / (1 - side / (2 * p.max_leverage))
            entry_margin = abs(p.size) * p.entry_px / p.leverage
            positions.append({
                "type": "oneWay",
                "position": {
                    "coin": p.item.coin,
                    "szi": spec.sz_str(p.lots),
                    "leverage": {"type": "cross", "value": p.leverage},
                    "entryPx": format_price(p.entry_px, spec.sz_decimals, PERP_MAX_DECIMALS),
                    "positionValue": format_decimal(p.value, 6),
                    "unrealizedPnl": format_decimal(p.pnl, 6),
                    "returnOnEquity": format_decimal(p.pnl / entry_margin if entry_margin else 0.0, 8),
                    "liquidationPx": format_price(liquidation, spec.sz_decimals, PERP_MAX_DECIMALS) if liquidation > 0 else None,
                    "marginUsed": format_decimal(p.used, 6),
                    "maxLeverage": p.max_leverage,
                    "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
                },
            })  # fmt: skip
        summary = {
            "accountValue": format_decimal(margin.equity, 6),
            "totalNtlPos": format_decimal(margin.notional, 6),
            "totalRawUsd": format_decimal(margin.equity - margin.signed_value, 6),
            "totalMarginUsed": format_decimal(margin.used, 6),
        }
        return {
            "marginSummary": summary,
            "crossMarginSummary": dict(summary),
            "crossMaintenanceMarginUsed": format_decimal(margin.maintenance, 6),
            "withdrawable": format_decimal(max(0.0, margin.equity - margin.used), 6),
            "assetPositions": positions,
            "time": self.engine.now_ms,
        }

    def _info_spot_clearinghouse(self, body: dict[str, Any]) -> Any:
        if self._user(body) != DEMO_ADDRESS:
            return {"balances": []}
        balances = self.engine.account.balances
        return {
            "balances": [
                {"coin": token, "token": self.tokens.index(token), "hold": "0.0", "total": format_decimal(balances[token], 8), "entryNtl": "0.0"}
                for token in self.tokens
                if token in balances
            ]
        }

    @classmethod
    def _book_precision(cls, body: dict[str, Any]) -> tuple[int | None, int | None]:
        return cls._int(body, "nSigFigs", optional=True), cls._int(body, "mantissa", optional=True)

    @staticmethod
    def _valid_precision(n_sig_figs: int | None, mantissa: int | None) -> bool:
        if n_sig_figs is None:
            return mantissa is None
        if n_sig_figs not in (2, 3, 4, 5):
            return False
        return mantissa is None or (n_sig_figs == 5 and mantissa in (1, 2, 5))

    # ==============================================================================================
    # WebSocket
    # ==============================================================================================

    async def on_ws_open(self, conn: WsConnection) -> None:
        conn.state["subscriptions"] = {}
        conn.state["posts_in_flight"] = 0

    def on_ws_close(self, conn: WsConnection) -> None:
        for key in conn.state.get("subscriptions", {}):
            self._detach(conn, key)

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        method = message.get("method") if isinstance(message, dict) else None
        try:
            if method == "ping":
                await conn.send(b'{"channel":"pong"}')
            elif method in ("subscribe", "unsubscribe"):
                subscription = self._parse_subscription(message["subscription"] if "subscription" in message else None)
                if method == "subscribe":
                    await self._subscribe(conn, subscription)
                else:
                    await self._unsubscribe(conn, subscription)
            elif method == "post":
                await self._post(conn, message)
            else:
                raise _Invalid
        except _Invalid:
            await self._error(conn, PARSE_ERROR + text)

    async def _error(self, conn: WsConnection, text: str) -> None:
        await conn.send(_frame("error", text))

    def _parse_subscription(self, raw: Any) -> _Subscription:
        """Shape checks raise :class:`_Invalid`; semantic problems leave ``listing``/``echo`` to check."""
        if not isinstance(raw, dict):
            raise _Invalid
        kind = raw.get("type")
        fields = _SUBSCRIPTION_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise _Invalid
        echo: dict[str, Any] = {"type": kind}
        subscription = _Subscription(kind, echo, orjson.dumps(raw).decode())  # type: ignore[arg-type]
        for name in fields:
            if name == "user":
                subscription.user = echo["user"] = self._user(raw)
            else:
                echo[name] = self._str(raw, name)
        if kind == "candle" and echo["interval"] not in INTERVALS:
            raise _Invalid
        if kind == "l2Book":
            echo["nSigFigs"], echo["mantissa"] = self._book_precision(raw)
            if "fast" in raw:
                if not isinstance(raw["fast"], bool):
                    raise _Invalid
                echo["fast"] = raw["fast"]
        if kind in ("allMids", "clearinghouseState") and "dex" in raw:
            echo["dex"] = self._str(raw, "dex", optional=True)
        if kind == "userFills" and "aggregateByTime" in raw:
            if not isinstance(raw["aggregateByTime"], bool):
                raise _Invalid
            echo["aggregateByTime"] = raw["aggregateByTime"]
        if "coin" in echo:
            subscription.listing = self.listings.get(echo["coin"])
        return subscription

    def _is_valid(self, subscription: _Subscription) -> bool:
        echo = subscription.echo
        if "coin" in echo and subscription.listing is None:
            return False
        if subscription.type == "l2Book":
            return self._valid_precision(echo["nSigFigs"], echo["mantissa"])
        if subscription.type in ("allMids", "clearinghouseState"):
            return not echo.get("dex")
        return True

    async def _subscribe(self, conn: WsConnection, subscription: _Subscription) -> None:
        subscriptions: dict[str, _Topic] = conn.state["subscriptions"]
        key = subscription.key
        if not self._is_valid(subscription):
            await self._error(conn, f"Invalid subscription {subscription.client_json}")
        elif key in subscriptions:
            await self._error(conn, f"Already subscribed: {subscription.client_json}")
        elif len(subscriptions) >= MAX_SUBSCRIPTIONS:
            await self._error(conn, f"Cannot track more than {MAX_SUBSCRIPTIONS} total subscriptions")
        else:
            topic = self._topics.setdefault(key, _Topic(subscription))
            topic.connections.add(conn)
            subscriptions[key] = topic
            coin = subscription.echo.get("coin")
            if subscription.type == "l2Book" and self.take_book_fault(coin, ("delta_before_snapshot",)):
                await conn.send(self._book_frame(subscription))  # data before the ack (no deltas here)
            await conn.send(_frame("subscriptionResponse", {"method": "subscribe", "subscription": subscription.echo}))
            if subscription.type == "clearinghouseState":
                assert subscription.user is not None
                state, content = self._clearinghouse_push(subscription.user)
                if len(topic.connections) == 1:  # a new topic: pushes follow from this state
                    topic.last_sent, topic.last_push_ms = content, self.engine.now_ms
                await conn.send(state)
            for frame in self._initial_frames(topic.subscription):
                await conn.send(frame)

    async def _unsubscribe(self, conn: WsConnection, subscription: _Subscription) -> None:
        key = subscription.key
        if key not in conn.state["subscriptions"]:
            await self._error(conn, f"Already unsubscribed: {subscription.client_json}")
            return
        del conn.state["subscriptions"][key]
        self._detach(conn, key)
        await conn.send(_frame("subscriptionResponse", {"method": "unsubscribe", "subscription": subscription.echo}))

    def _detach(self, conn: WsConnection, key: str) -> None:
        topic = self._topics.get(key)
        if topic is not None:
            topic.connections.discard(conn)
            if not topic.connections:
                del self._topics[key]

    async def _post(self, conn: WsConnection, message: dict[str, Any]) -> None:
        request_id, request = message.get("id"), message.get("request")
        if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
            raise _Invalid
        if not isinstance(request, dict) or request.get("type") not in ("info", "action"):
            raise _Invalid
        if conn.state["posts_in_flight"] >= MAX_INFLIGHT_POSTS:
            await self._error(conn, f"too many pending post requests id={request_id}")
            return
        if request["type"] == "action":
            response: dict[str, Any] = {"type": "action", "payload": {"status": "err", "response": "Signed actions are not supported by the emulator"}}
        else:
            payload = request.get("payload")
            status, data = self.info(payload)
            if status == 200:
                response = {"type": "info", "payload": {"type": payload["type"], "data": data}}
            else:
                response = {"type": "error", "payload": data}
        frame = _frame("post", {"id": request_id, "response": response})
        if self.post_latency <= 0:
            await conn.send(frame)
            return
        conn.state["posts_in_flight"] += 1
        self.spawn(self._answer_later(conn, frame))

    async def _answer_later(self, conn: WsConnection, frame: bytes) -> None:
        try:
            await asyncio.sleep(self.post_latency)
            await conn.send(frame)
        finally:
            conn.state["posts_in_flight"] -= 1

    # -- pushes ----------------------------------------------------------------------------------

    def _channel(self, subscription: _Subscription) -> str:
        if subscription.type == "activeAssetCtx" and subscription.listing is not None and subscription.listing.is_spot:
            return "activeSpotAssetCtx"
        return "user" if subscription.type == "userEvents" else subscription.type

    def _book_frame(self, subscription: _Subscription) -> bytes:
        echo = subscription.echo
        fast = bool(echo.get("fast"))
        assert subscription.listing is not None
        book = self._book(subscription.listing, echo["nSigFigs"], echo["mantissa"], FAST_BOOK_LEVELS if fast else BOOK_LEVELS, fast)
        return _frame("l2Book", book)

    def _ctx_frame(self, subscription: _Subscription) -> bytes:
        item = subscription.listing
        assert item is not None
        return _frame(self._channel(subscription), {"coin": item.coin, "ctx": self._asset_ctx(item)})

    def _initial_frames(self, subscription: _Subscription) -> Iterator[bytes]:
        """What a new subscriber gets right after the ack (snapshots and backlogs)."""
        kind, item = subscription.type, subscription.listing
        if kind == "l2Book":
            yield self._book_frame(subscription)
        elif kind == "trades" and item is not None:
            trades = self.engine.recent_trades(item.spec.symbol, TRADES_BACKLOG)
            yield _frame("trades", [self._trade(item, trade) for trade in trades])
        elif kind == "candle" and item is not None:
            interval = subscription.echo["interval"]
            yield _frame("candle", self._candle(item, interval, self.engine.current_candle(item.spec.symbol, interval)))
        elif kind == "allMids":
            yield _frame("allMids", {"mids": self._all_mids()})
        elif kind == "activeAssetCtx":
            yield self._ctx_frame(subscription)
        elif kind == "bbo" and item is not None:
            yield _frame("bbo", self._bbo(item))
        elif kind == "userFills":
            assert subscription.user is not None
            fills = [self._fill(fill) for fill in self._fills_of(subscription.user)[:TRADES_BACKLOG]]
            yield _frame("userFills", {"isSnapshot": True, "user": subscription.user, "fills": fills})

    def _clearinghouse_push(self, user: str) -> tuple[bytes, bytes]:
        """A ``clearinghouseState`` frame for ``user`` and its content without ``time`` (what a
        change is judged by)."""
        state = self._clearinghouse_state(user)
        frame = _frame("clearinghouseState", {"dex": "", "user": user, "clearinghouseState": state})
        del state["time"]
        return frame, orjson.dumps(state)

    def _due(self, what: str, now: int, interval_ms: int) -> bool:
        if now - self._last_push[what] >= interval_ms:
            self._last_push[what] = now
            return True
        return False

    async def on_step(self, events: StepEvents) -> None:
        now = events.time
        liquidation = self._manage_account(events)
        book_due = self._due("book", now, self.book_interval_ms)
        mids_due = self._due("mids", now, self.mids_interval_ms)
        ctx_due = self._due("ctx", now, self.ctx_interval_ms)
        mids_frame: bytes | None = None
        account_frames: dict[str, list[bytes]] = {}  # per subscription type, the demo account's frames
        clearinghouse: dict[str, tuple[bytes, bytes]] = {}  # per user, this step's state
        if (events.fills or liquidation) and any(topic.subscription.type in _ACCOUNT_PUSHES for topic in self._topics.values()):
            account_frames = self._account_frames(events.fills, liquidation)
        for topic in list(self._topics.values()):
            subscription, item = topic.subscription, topic.subscription.listing
            kind = subscription.type
            frame: bytes | None = None
            if kind == "l2Book" and book_due:
                for faulted in self._book_pushes(topic, self._book_frame(subscription)):
                    await self.broadcast(topic.connections, faulted)
            elif kind == "trades" and item is not None and item.spec.symbol in events.trades:
                frame = _frame("trades", [self._trade(item, trade) for trade in events.trades[item.spec.symbol]])
            elif kind == "candle" and item is not None and item.spec.symbol in events.trades:
                interval = subscription.echo["interval"]
                frame = _frame("candle", self._candle(item, interval, self.engine.current_candle(item.spec.symbol, interval)))
            elif kind == "bbo" and item is not None:
                bid, ask = self.engine.bbo(item.spec.symbol)
                state = (tuple(bid) if bid else None, tuple(ask) if ask else None)
                if state != topic.last_sent:
                    topic.last_sent = state
                    frame = _frame("bbo", self._bbo(item))
            elif kind == "allMids" and mids_due:
                mids_frame = mids_frame or _frame("allMids", {"mids": self._all_mids()})
                frame = mids_frame
            elif kind == "activeAssetCtx" and ctx_due:
                frame = self._ctx_frame(subscription)
            elif kind in account_frames and subscription.user == DEMO_ADDRESS:
                for account_frame in account_frames[kind]:
                    await self.broadcast(topic.connections, account_frame)
            elif kind == "clearinghouseState" and now - topic.last_push_ms >= CLEARINGHOUSE_PUSH_MS:
                user = subscription.user
                assert user is not None
                if user not in clearinghouse:
                    clearinghouse[user] = self._clearinghouse_push(user)
                state, content = clearinghouse[user]
                if content != topic.last_sent:
                    topic.last_sent, topic.last_push_ms = content, now
                    frame = state
            if frame is not None:
                await self.broadcast(topic.connections, frame)

    def _account_frames(self, fills: list[Fill], liquidation: dict[str, Any] | None) -> dict[str, list[bytes]]:
        """The demo account's frames of one step, per subscription type, in order: fills before the
        liquidation, the ``liquidation`` user event, the liquidation's fills; for ``orderUpdates``,
        every order ``open`` then every order ``filled``."""
        regular = [self._fill(fill) for fill in fills if fill.liquidation_mark_px is None]
        liquidated = [self._fill(fill) for fill in fills if fill.liquidation_mark_px is not None]
        frames: dict[str, list[bytes]] = {"userFills": [], "userEvents": [], "orderUpdates": []}
        for batch in (regular, liquidated):
            if batch:
                frames["userFills"].append(_frame("userFills", {"user": DEMO_ADDRESS, "fills": batch}))
        if regular:
            frames["userEvents"].append(_frame("user", {"fills": regular}))
        if liquidation is not None:
            frames["userEvents"].append(_frame("user", liquidation))
        if liquidated:
            frames["userEvents"].append(_frame("user", {"fills": liquidated}))
        if fills:
            opened, filled = self._order_updates(fills)
            frames["orderUpdates"] += [_frame("orderUpdates", opened), _frame("orderUpdates", filled)]
        return frames

    def _book_pushes(self, topic: _Topic, frame: bytes) -> list[bytes]:
        """The frames one book push becomes under an armed fault (each book is complete, so a
        fault here costs the client at most one push: the next one replaces the book)."""
        held, topic.held = topic.held, None
        fault = self.take_book_fault(topic.subscription.echo["coin"], ("skip", "duplicate", "reorder"))
        if fault == "skip":
            return [held] if held else []
        if fault == "duplicate":
            return [frame, frame] + ([held] if held else [])
        if fault == "reorder":
            topic.held = frame  # sent after the next push, older than it
            return [held] if held else []
        return [frame] + ([held] if held else [])

    # -- benchmark flood -------------------------------------------------------------------------

    async def flood(self, coin: str, count: int) -> int:  # type: ignore[override]  # the venue's word
        """Send ``count`` consecutive ``l2Book`` snapshots of ``coin`` to every subscriber of it.

        Frames come from a rotating set of 16 distinct books (sizes perturbed around the current
        book, so consecutive frames always differ) with the current virtual time spliced in, sent as
        fast as each transport drains. Returns the number of frames written.
        """
        if coin not in self.listings:
            raise KeyError(f"unknown coin {coin!r}")
        sent = 0
        for topic in [t for t in self._topics.values() if t.subscription.type == "l2Book" and t.subscription.echo["coin"] == coin]:
            sent += await self.send_burst(topic.connections, self._flood_frames(topic.subscription, count))
        return sent

    def _flood_frames(self, subscription: _Subscription, count: int) -> Iterator[bytes]:
        echo = subscription.echo
        item = subscription.listing
        assert item is not None
        fast = bool(echo.get("fast"))
        bids, asks, spread = self._book_sides(item, echo["nSigFigs"], echo["mantissa"], FAST_BOOK_LEVELS if fast else BOOK_LEVELS)
        prefix = b'{"channel":"l2Book","data":{"coin":' + orjson.dumps(item.coin) + b',"time":'
        templates = []
        for variant in range(16):
            rest: dict[str, Any] = {
                "levels": [
                    [_level(item.spec, [px, sz + (variant + 3 * i) % 7, n]) for i, (px, sz, n) in enumerate(side)]
                    for side in (bids, asks)
                ]
            }
            if spread is not None:
                rest["spread"] = spread
            if fast:
                rest["fast"] = True
            templates.append(b"," + orjson.dumps(rest)[1:] + b"}")
        for index in range(count):
            yield prefix + str(self.now_ms()).encode() + templates[index % len(templates)]


#: ``POST /info`` request types the emulator answers (anything else is 422).
INFO_TYPES: dict[str, Callable[[HyperliquidEmulator, dict[str, Any]], Any]] = {
    "meta": HyperliquidEmulator._info_meta,
    "spotMeta": HyperliquidEmulator._info_spot_meta,
    "metaAndAssetCtxs": HyperliquidEmulator._info_meta_and_ctxs,
    "spotMetaAndAssetCtxs": HyperliquidEmulator._info_spot_meta_and_ctxs,
    "perpDexs": HyperliquidEmulator._info_perp_dexs,
    "allMids": HyperliquidEmulator._info_all_mids,
    "l2Book": HyperliquidEmulator._info_l2_book,
    "candleSnapshot": HyperliquidEmulator._info_candles,
    "recentTrades": HyperliquidEmulator._info_recent_trades,
    "clearinghouseState": HyperliquidEmulator._info_clearinghouse,
    "spotClearinghouseState": HyperliquidEmulator._info_spot_clearinghouse,
    "openOrders": HyperliquidEmulator._info_open_orders,
    "frontendOpenOrders": HyperliquidEmulator._info_open_orders,
    "userFills": HyperliquidEmulator._info_user_fills,
    "userFillsByTime": HyperliquidEmulator._info_user_fills_by_time,
    "exchangeStatus": HyperliquidEmulator._info_exchange_status,
}
