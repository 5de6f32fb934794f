"""Rails (rails.xyz) emulator: the WebSocket v2 at ``/``, the token endpoint and REST market data on one port.

Follows the Rails docs (WebSocket API overview, subscribe, ping, order book, public trade, trade and
order-creation streams; REST authorization and market data) so that the client's adapter sees the
venue's shapes exactly. The books and the public tape are the shared
:class:`~app.sim.engine.MarketEngine`'s (BTC here is the other emulators' BTC under the same seed);
this module names, formats, fans out and keeps the demo account's orders.

Wire facts implemented:

* Upgrade at ``/?market=<M>|ALL&subscriptions=<comma list>`` (``orders``, ``trades``,
  ``publicTrades``, ``publicOrderBook``; ``orders`` when the parameter is absent) with the subprotocol
  ``authorization#<JWT>``, echoed exactly in the 101. Tokens from ``POST /api/v1/token``
  (``X-Api-Key``, ``X-Api-Secret``) as ``{"access_token","token_type":"Bearer","expires_in":1800}``,
  HS256 with claims ``iss, sub, aud, exp, iat`` like the docs' example token; 20 token requests a
  minute per key.
* Requests ``{"message","content"}``, ``clientRequestId`` echoed; ``content.market`` required on
  ``market=ALL`` sockets. Responses and stream messages ``{"resultType","market"?,"data"}``.
* ``subscribe``/``unsubscribe`` -> ``subscribed``/``unsubscribed`` with ``activeSubscriptions`` and
  ``requestedSubscriptions``; ``ping`` -> ``pong`` (any subscriptions).
* ``publicOrderBookDelta``: new total per level, ``"0"`` deletes, no sequence number and no snapshot
  unless asked: ``emitPublicOrderBook`` -> ``publicOrderBook``. ``publicCompletedOrdersDelta`` and
  ``emitPublicCompletedOrders`` -> ``publicCompletedOrders``. Private ``completedOrdersDelta`` with
  ``data`` an array, every market of the account whatever the socket's market.
* ``createOrder``: ack 202 ``order created, pending acceptance`` (``pending``) then confirmation 200
  ``order accepted`` (``active``); ``cancelOrder`` (by ``orderId``): ack 202 ``cancelling order`` then
  200 ``order cancelled``. ``quantity`` in order objects is the remaining quantity.
* Deterministic delivery: every stream message is made once per market per engine step and fanned out
  in one order, so sockets with the same market and subscriptions receive the same bytes.
* ``GET /api/v1/markets``, ``GET /api/v1/market-data[?market=]`` (rows ``INDEX``, ``24H_COUNT``,
  ``24H_VOLUME``, ``ASK``, ``BID``, ``FUNDING``, ``NEXT_FUNDING``, ``OPEN_INTEREST``, values strings).

Design decisions ([D]; the docs are silent):

* Markets: the engine's perps as ``<COIN>-USDT`` (BTC tick 0.1 step 0.0001, ETH 0.01/0.001, SOL
  0.001/0.01); ``/api/v1/markets`` rows ``{name, baseAsset, quoteAsset, tickSize, stepSize, status}``.
  REST needs no token; 600 requests a rolling minute per client address (the token endpoint
  included), 429 with ``Retry-After`` (whole seconds) beyond; errors ``{"statusCode","body"}``.
* Upgrade refusals are HTTP with a JSON ``{"statusCode","body"}``: 401 first (no, bad or expired
  token: ``invalid or expired token`` / ``token expired``; a token of no known account), then 400
  (``market is required``, ``unknown market: M``, ``unknown subscription: S``). ``subscriptions=``
  (empty) means none. A socket is closed 4001 ``token expired`` when its token's ``exp`` passes
  (wall clock, like the token). Token windows count only requests naming a known key.
* Envelopes: public stream messages carry ``market`` on every socket (as the docs' examples do);
  ``completedOrdersDelta`` carries it only on ``market=ALL`` sockets, where it comes as one message
  per market. Errors ``{"resultType": <request type, or "error" for unknown or malformed>, "data":
  {"statusCode","body","clientRequestId"?}}``; more than 10 requests in a second: 429 ``too many
  requests`` for each one over (the socket stays; ``max_requests_per_s``). Idle: no frame from the client for
  ``idle_timeout`` (60 s) closes 1000 ``idle timeout``; the server never pings.
* Books: 25 levels a side; a level leaving that depth is sent as ``"0"``, one entering it with its
  quantity. Changes within a delta: asks best first, then bids best first; the snapshot lists them
  the same way, with ``ts`` the time of the book's last change. A snapshot is taken between steps, so
  it contains every delta sent before it on that socket and none after.
* Public trades: one taker row per engine fill (``matchId`` a UUID from a seeded stream drawn for
  every trade, subscribed or not); ``publicCompletedOrders`` the last 50, oldest first.
* Orders: ``orders`` must be among the socket's subscriptions to send order requests (400 otherwise);
  on a single-market socket ``content.market``, when given, must be that market. The ack goes to the
  requesting socket; confirmations and later notices go to every ``orders`` socket of the account
  and market. Market orders and the marketable part of limit orders fill at once against the
  engine's book (walking levels, not consuming them: the account's orders do not reach the public
  book or tape), as taker; a post-only order that would match is confirmed, then ``orderRejected``
  (400 ``post only order would match``, status ``rejected``). After fills: ``completedOrdersDelta``
  and ``orderFilled`` (200, status ``filled``, ``partiallyFilled``, or ``cancelled`` when a market
  order's remainder found no liquidity). Ids: ULIDs (virtual ms + seeded bits), match ids UUIDs.
  ``price`` of a market order ``"0"``; ``avgFillPrice`` ``"0"`` before a fill; ``leverage`` ``"1"``;
  ``apiQuotaUsed`` 1 on each ack; fees 0.1 % taker, 0.05 % maker. ``modifyOrder`` is not served.
* The demo account trades by itself every 15-30 s of virtual time: its resting limit order is the
  maker of the next public trade in a seeded market (same price, quantity and ``matchId``), sent as
  accepted then filled.
* Book faults apply to the delta stream: ``skip`` drops one delta, ``duplicate`` sends it twice,
  ``reorder`` sends it after the next step's delta, ``delta_before_snapshot`` makes the next
  ``publicOrderBook`` answered stale (the book before the last delta), so a client's bootstrap
  discards a delta the snapshot lacks.
* ``flood`` sends deltas resizing the top levels and a last delta restoring them.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import orjson
from aiohttp import web

from app.jwt import TokenError, sign, verify
from app.sim.engine import DEFAULT_ASSETS, HOSTILE_ASSETS, AssetSpec, StepEvents, Trade, format_decimal
from app.sim.predictions import decimal_str
from app.sim.server import EmulatorServer, EmulatorStats, RollingLimit, WsConnection

__all__ = ["RAILS_ASSETS", "SUBSCRIPTIONS", "RailsEmulator", "RailsStats"]

SUBSCRIPTIONS: tuple[str, ...] = ("orders", "trades", "publicTrades", "publicOrderBook")
ALL_MARKETS = "ALL"
PROTOCOL_PREFIX = "authorization#"
TOKEN_ISSUER = "staging.fungible.xyz"  # what the docs' example token and a real one carry
TOKEN_AUDIENCE = ("staging-app.fungible.xyz",)
CLOSE_TOKEN_EXPIRED = 4001
BOOK_LEVELS = 25
TAPE_LENGTH = 50
TOKEN_REQUESTS_PER_MINUTE = 20
REST_REQUESTS_PER_MINUTE = 600
REQUESTS_PER_SECOND = 10
DEMO_TRADE_GAP_MS = (15_000, 30_000)
TAKER_FEE, MAKER_FEE = 0.001, 0.0005
INVALID_TOKEN = "invalid or expired token"
_MAX_UNITS = 10**15
_FUNDING_PERIOD_MS = 3_600_000
_DAY_MS = 86_400_000
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

_DEFAULTS = {spec.symbol: spec for spec in DEFAULT_ASSETS}
#: The listing: the default perps' underlyings in USDT with Rails' tick and step sizes.
RAILS_ASSETS: tuple[AssetSpec, ...] = (
    replace(_DEFAULTS["BTC"], symbol="BTC-USDT", quote="USDT", px_decimals=1, sz_decimals=4),
    replace(_DEFAULTS["ETH"], symbol="ETH-USDT", quote="USDT", px_decimals=2, sz_decimals=3),
    replace(_DEFAULTS["SOL"], symbol="SOL-USDT", quote="USDT", px_decimals=3, sz_decimals=2),
)


@dataclass(slots=True)
class RailsStats(EmulatorStats):
    """The base counters plus what tells a client's auth loop apart from a retry storm."""

    ws_refused_auth: int = 0  # upgrades refused 401
    token_requests: int = 0  # POST /api/v1/token, answered or not
    tokens_issued: int = 0
    token_expiry_closes: int = 0


@dataclass(frozen=True, slots=True)
class _Session:
    """What an accepted upgrade established, handed from the handshake to the connection."""

    account: str
    market: str
    subscriptions: frozenset[str]
    expires_at: float


_SESSION = web.RequestKey("rails_session", _Session)


@dataclass(eq=False, slots=True)
class _Book:
    """One market: the 25-a-side book as last published, its tape and a delta held by ``reorder``."""

    name: str
    spec: AssetSpec
    levels: dict[tuple[str, int], int] = field(default_factory=dict)  # (side, px) -> lots
    previous: dict[tuple[str, int], int] = field(default_factory=dict)  # before the last delta
    changed_at: int = 0
    held: bytes | None = None
    tape: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TAPE_LENGTH))

    def px(self, ticks: int) -> str:
        return decimal_str(ticks, self.spec.px_decimals)

    def qty(self, lots: int) -> str:
        return decimal_str(lots, self.spec.sz_decimals)

    def rows(self, levels: Iterable[tuple[tuple[str, int], int]]) -> list[dict[str, str]]:
        """Wire levels, asks best first then bids best first."""
        ordered = sorted(levels, key=lambda item: (item[0][0] == "buy", item[0][1] if item[0][0] == "sell" else -item[0][1]))
        return [{"orderType": side, "price": self.px(px), "quantity": self.qty(lots)} for (side, px), lots in ordered]


@dataclass(eq=False, slots=True)
class _Order:
    """An order of the account; sizes in lots, prices in ticks (``price`` None: a market order)."""

    book: _Book
    order_id: str
    side: str
    trade_type: str
    price: int | None
    lots: int
    created_at: int
    post_only: bool = False
    client_request_id: Any = None
    filled: int = 0
    filled_notional: int = 0  # ticks * lots
    status: str = "pending"
    updated_at: int = 0

    def wire(self) -> dict[str, Any]:
        book = self.book
        average = "0" if not self.filled else _ratio(self.filled_notional, self.filled, book.spec.px_decimals)
        body: dict[str, Any] = {
            "market": book.name, "orderId": self.order_id, "orderType": self.side, "tradeType": self.trade_type,
            "price": "0" if self.price is None else book.px(self.price), "quantity": book.qty(self.lots - self.filled),
            "filledQuantity": book.qty(self.filled), "leverage": "1", "createdAt": self.created_at,
            "updatedAt": self.updated_at or self.created_at, "orderStatus": self.status,
        }  # fmt: skip
        if self.client_request_id is not None:
            body["clientRequestId"] = self.client_request_id
        body["postOnly"] = self.post_only
        body["avgFillPrice"] = average
        return body


@dataclass(frozen=True, slots=True)
class _Push:
    """One stream message and who receives it: sockets subscribed to ``stream``, of ``market`` (None:
    any market) and of ``account`` (None: public). ``frame_all`` is the ``market=ALL`` encoding when
    it differs."""

    stream: str
    market: str | None
    account: str | None
    frame: bytes
    frame_all: bytes | None = None


class _Refusal(Exception):
    """A request answered with an error status (the dispatcher adds the type and the request id)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status, self.body = status, body


def _envelope(result_type: str, data: Any, market: str | None = None) -> bytes:
    message: dict[str, Any] = {"resultType": result_type}
    if market is not None:
        message["market"] = market
    message["data"] = data
    return orjson.dumps(message)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _refusal(status: int, body: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(status, {"statusCode": status, "body": body}, headers)


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


def _ratio(numerator: int, denominator: int, decimals: int) -> str:
    """``numerator / denominator`` units of ``10**-decimals``, to four more places, no trailing zeros."""
    value = (Decimal(numerator) / Decimal(denominator)).scaleb(-decimals).quantize(Decimal(1).scaleb(-decimals - 4))
    return _plain(value)


def _plain(value: Decimal | float, places: int = 8) -> str:
    """A decimal without exponent or trailing zeros (``"2174.12877357"``, ``"0"``)."""
    text = f"{Decimal(value):.{places}f}" if isinstance(value, float) else f"{value:f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text in ("", "-0") else text


def _ulid(ms: int, rng: random.Random) -> str:
    value = (ms << 80) | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _quoted(value: Any) -> str:
    """Client text echoed in an error body, bounded."""
    return (value if isinstance(value, str) else orjson.dumps(value).decode())[:64]


class RailsEmulator(EmulatorServer):
    """Rails' WebSocket v2, token endpoint and market data on the shared mechanism (module docstring)."""

    venue: ClassVar[str] = "rails"
    ws_path: ClassVar[str] = "/"

    def __init__(self, *, token_ttl: float = 1800.0, max_requests_per_s: int = REQUESTS_PER_SECOND, hostile_names: bool = False,
                 **kwargs: Any) -> None:  # fmt: skip
        if "engine" not in kwargs:
            hostile = tuple(replace(spec, symbol=f"{spec.base}-USDT", quote="USDT") for spec in HOSTILE_ASSETS if spec.kind == "perp")
            kwargs["assets"] = RAILS_ASSETS + (hostile if hostile_names else ())
        super().__init__(**kwargs)
        self.stats: RailsStats = RailsStats()
        self.token_ttl = token_ttl
        self.max_requests_per_s = max_requests_per_s
        self.books: dict[str, _Book] = {}
        for spec in self.engine.specs.values():
            name = spec.symbol if spec.symbol.endswith("-USDT") else f"{spec.base}-USDT"
            if spec.kind == "perp" and name not in self.books:
                book = self.books[name] = _Book(name, spec)
                book.levels = book.previous = self._kept_levels(book)
                book.changed_at = self.engine.now_ms
        secrets = random.Random(f"{self.seed}:rails:credentials")
        self._signing_key = secrets.randbytes(32)
        self.demo_api_key = f"rails-demo-{secrets.getrandbits(64):016x}"
        self.demo_api_secret = secrets.randbytes(24).hex()
        self.demo_account = _uuid(secrets)
        self._keys: dict[str, tuple[str, str]] = {self.demo_api_key: (self.demo_api_secret, self.demo_account)}
        self._token_windows: dict[str, RollingLimit] = {}
        self._rest_windows: dict[str, RollingLimit] = {}
        self._match_ids = random.Random(f"{self.seed}:rails:matches")  # the public tape's
        self._account_ids = random.Random(f"{self.seed}:rails:account")  # orders, private matches
        self._demo_rng = random.Random(f"{self.seed}:rails:demo")
        self._demo_plan = self._next_demo_trade(self.engine.now_ms)
        self._orders: dict[str, _Order] = {}  # the account's resting orders
        self._demo_token = self.issue_token(self.demo_api_key)
        self._requests: dict[str, Callable[[WsConnection, dict[str, Any]], Awaitable[None]]] = {
            "subscribe": self._subscribe,
            "unsubscribe": self._unsubscribe,
            "ping": self._ping,
            "emitPublicOrderBook": self._emit_book,
            "emitPublicCompletedOrders": self._emit_trades,
            "createOrder": self._create_order,
            "cancelOrder": self._cancel_order,
        }

    # -- credentials -----------------------------------------------------------------------------

    def issue_token(self, api_key: str, ttl: float | None = None) -> str:
        """A signed access token for ``api_key``'s account, valid ``ttl`` seconds (default
        ``token_ttl``; negative: already expired)."""
        _, account = self._keys[api_key]
        now = time.time()
        lifetime = self.token_ttl if ttl is None else ttl
        self.stats.tokens_issued += 1
        claims = {"iss": TOKEN_ISSUER, "sub": account, "aud": list(TOKEN_AUDIENCE), "exp": math.ceil(now + lifetime), "iat": int(now)}
        return sign(claims, self._signing_key)

    def demo_credentials(self) -> dict[str, str]:
        return {"api_key": self.demo_api_key, "api_secret": self.demo_api_secret, "token": self._demo_token}

    def demo_connect(self) -> dict[str, Any]:
        """BTC-USDT's book stream with a fresh demo token as the subprotocol."""
        token = self.issue_token(self.demo_api_key)
        return {"uri": f"{self.ws_url}?market=BTC-USDT&subscriptions=publicOrderBook", "subprotocols": [PROTOCOL_PREFIX + token]}

    # -- state accessors (tests) -----------------------------------------------------------------

    def book(self, market: str) -> list[dict[str, str]]:
        """The book as published (25 a side), in snapshot order."""
        book = self.books[market]
        return book.rows(book.levels.items())

    def book_levels(self, market: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The published book as bids and asks, each best first, (price, quantity) as sent."""
        rows = self.book(market)
        side = lambda kind: [(row["price"], row["quantity"]) for row in rows if row["orderType"] == kind]  # noqa: E731
        return side("buy"), side("sell")

    # ==============================================================================================
    # Upgrade
    # ==============================================================================================

    def check_upgrade(self, request: web.Request) -> web.StreamResponse | tuple[str, ...]:
        offered = [part.strip() for part in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        protocol = next((part for part in offered if part.startswith(PROTOCOL_PREFIX)), None)
        try:
            if protocol is None:
                raise TokenError("no token offered")
            claims = verify(protocol.removeprefix(PROTOCOL_PREFIX), self._signing_key, time.time())
            if not any(claims.get("sub") == account for _, account in self._keys.values()):
                raise TokenError("token of no account")
        except TokenError as error:
            self.stats.ws_refused_auth += 1
            return _refusal(401, "token expired" if str(error) == "token expired" else INVALID_TOKEN)
        market = request.query.get("market")
        if not market:
            return _refusal(400, "market is required")
        if market != ALL_MARKETS and market not in self.books:
            return _refusal(400, f"unknown market: {_quoted(market)}")
        listed = request.query.get("subscriptions")
        names = ["orders"] if listed is None else [name.strip() for name in listed.split(",") if name.strip()]
        for name in names:
            if name not in SUBSCRIPTIONS:
                return _refusal(400, f"unknown subscription: {_quoted(name)}")
        request[_SESSION] = _Session(claims["sub"], market, frozenset(names), float(claims["exp"]))
        return (protocol,)

    async def on_ws_open(self, conn: WsConnection) -> None:
        session = conn.request[_SESSION]
        conn.state.update(account=session.account, market=session.market, subs=set(session.subscriptions),
                          requests=RollingLimit(self.max_requests_per_s, 1.0))  # fmt: skip
        conn.state["expiry"] = self.spawn(self._close_at_expiry(conn, session.expires_at))

    async def _close_at_expiry(self, conn: WsConnection, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        while self.stalled:  # a frozen server sends nothing, not even a close
            await asyncio.sleep(self.tick_interval)
        if not conn.closed:
            self.stats.token_expiry_closes += 1
            await conn.close(CLOSE_TOKEN_EXPIRED, "token expired")

    def on_ws_close(self, conn: WsConnection) -> None:
        expiry = conn.state.get("expiry")
        if expiry is not None:
            expiry.cancel()

    def idle_since(self, conn: WsConnection) -> float | None:
        """Client silence: the last frame of any kind from the client."""
        return conn.last_received

    # ==============================================================================================
    # Requests
    # ==============================================================================================

    async def on_ws_message(self, conn: WsConnection, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            request = None
        kind = request.get("message") if isinstance(request, dict) else None
        content = request.get("content", {}) if isinstance(request, dict) else None
        request_id = content.get("clientRequestId") if isinstance(content, dict) else None
        result_type = kind if isinstance(kind, str) and kind in self._requests else "error"
        # One request at a time between engine steps: answers and notices stay in stream order.
        async with self._step_lock:
            try:
                if conn.state["requests"].admit():
                    raise _Refusal(429, "too many requests")
                if not isinstance(kind, str):
                    raise _Refusal(400, "malformed request: expected {\"message\": <type>, \"content\": {...}}")
                if result_type == "error":
                    raise _Refusal(400, f"unknown request type: {_quoted(kind)}")
                if not isinstance(content, dict):
                    raise _Refusal(400, "content must be an object")
                await self._requests[kind](conn, content)
            except _Refusal as refusal:
                data: dict[str, Any] = {"statusCode": refusal.status, "body": refusal.body}
                if request_id is not None:
                    data["clientRequestId"] = request_id
                await conn.send(_envelope(result_type, data))

    @staticmethod
    def _with_id(data: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        if "clientRequestId" in content:
            data["clientRequestId"] = content["clientRequestId"]
        return data

    async def _ping(self, conn: WsConnection, content: dict[str, Any]) -> None:
        await conn.send(_envelope("pong", {**self._with_id({}, content), "statusCode": 200}))

    async def _subscribe(self, conn: WsConnection, content: dict[str, Any]) -> None:
        await self._change_subscriptions(conn, content, adding=True)

    async def _unsubscribe(self, conn: WsConnection, content: dict[str, Any]) -> None:
        await self._change_subscriptions(conn, content, adding=False)

    async def _change_subscriptions(self, conn: WsConnection, content: dict[str, Any], *, adding: bool) -> None:
        """Idempotent on both sides: subscribing twice or unsubscribing what is not active changes nothing."""
        requested = content.get("subscriptions")
        if not isinstance(requested, list) or not all(isinstance(name, str) for name in requested):
            raise _Refusal(400, "content.subscriptions must be a list of names")
        for name in requested:
            if name not in SUBSCRIPTIONS:
                raise _Refusal(400, f"unknown subscription: {_quoted(name)}")
        subs: set[str] = conn.state["subs"]
        if adding:
            subs.update(requested)
        else:
            subs.difference_update(requested)
        active = [name for name in SUBSCRIPTIONS if name in subs]
        data = self._with_id({"activeSubscriptions": active}, content)
        data["requestedSubscriptions"] = requested
        await conn.send(_envelope("subscribed" if adding else "unsubscribed", data))

    def _request_book(self, conn: WsConnection, content: dict[str, Any]) -> _Book:
        """The market a market-scoped request is about (``content.market`` or the socket's)."""
        named, own = content.get("market"), conn.state["market"]
        if named is None:
            if own == ALL_MARKETS:
                raise _Refusal(400, "content.market is required on market=ALL connections")
            named = own
        if not isinstance(named, str) or named not in self.books:
            raise _Refusal(400, f"unknown market: {_quoted(named)}")
        if own not in (ALL_MARKETS, named):
            raise _Refusal(400, f"market {named} is not this connection's market {own}")
        return self.books[named]

    async def _emit_book(self, conn: WsConnection, content: dict[str, Any]) -> None:
        book = self._request_book(conn, content)
        stale = self.take_book_fault(book.name, ("delta_before_snapshot",)) is not None
        levels = book.previous if stale else book.levels
        data = self._with_id({"orders": book.rows(levels.items()), "statusCode": 200, "ts": book.changed_at}, content)
        await conn.send(_envelope("publicOrderBook", data, book.name))

    async def _emit_trades(self, conn: WsConnection, content: dict[str, Any]) -> None:
        book = self._request_book(conn, content)
        data = self._with_id({"orders": list(book.tape), "statusCode": 200}, content)
        await conn.send(_envelope("publicCompletedOrders", data, book.name))

    # -- orders ----------------------------------------------------------------------------------

    def _order_book(self, conn: WsConnection, content: dict[str, Any]) -> _Book:
        if "orders" not in conn.state["subs"]:
            raise _Refusal(400, "subscribe to orders to send order requests")
        return self._request_book(conn, content)

    async def _create_order(self, conn: WsConnection, content: dict[str, Any]) -> None:
        book = self._order_book(conn, content)
        side, trade_type = content.get("orderType"), content.get("tradeType")
        if side not in ("buy", "sell"):
            raise _Refusal(400, "orderType must be buy or sell")
        if trade_type not in ("limit", "market"):
            raise _Refusal(400, "tradeType must be limit or market")
        post_only = content.get("postOnly", False)
        if not isinstance(post_only, bool):
            raise _Refusal(400, "postOnly must be a boolean")
        lots = _units(content.get("quantity"), book.spec.sz_decimals, "quantity")
        price = _units(content.get("price"), book.spec.px_decimals, "price") if trade_type == "limit" else None
        now = self.engine.now_ms
        order = _Order(book, _ulid(now, self._account_ids), side, trade_type, price, lots, now, post_only and trade_type == "limit",
                       content.get("clientRequestId"))  # fmt: skip
        account = conn.state["account"]
        ack = self._with_id({"statusCode": 202, "body": "order created, pending acceptance", "order": order.wire()}, content)
        ack["apiQuotaUsed"] = 1
        await conn.send(_envelope("createOrder", ack, book.name))
        order.status = "active"
        pushes = [self._order_notice("createOrder", 200, "order accepted", order, account)]
        matches = self._match(book, side, lots, price)
        if matches and order.post_only:
            order.status = "rejected"
            pushes.append(self._order_notice("orderRejected", 400, "post only order would match", order, account))
        elif matches:
            pushes += self._fills(order, account, [(px, qty, _uuid(self._account_ids)) for px, qty in matches], "taker", now)
        if order.status in ("active", "partiallyFilled"):
            self._orders[order.order_id] = order
        await self._deliver(pushes)

    async def _cancel_order(self, conn: WsConnection, content: dict[str, Any]) -> None:
        book = self._order_book(conn, content)
        if content.get("cancelBy", "orderId") != "orderId":
            raise _Refusal(400, "cancelBy must be orderId")
        order_id = content.get("orderId")
        order = self._orders.get(order_id) if isinstance(order_id, str) else None
        account = conn.state["account"]
        if order is None or order.book is not book:
            raise _Refusal(404, "order not found")
        del self._orders[order.order_id]
        order.status, order.updated_at = "cancelling", self.engine.now_ms
        ack = self._with_id({"statusCode": 202, "body": "cancelling order", "order": order.wire()}, content)
        ack["apiQuotaUsed"] = 1
        await conn.send(_envelope("cancelOrder", ack, book.name))
        order.status = "cancelled"
        await self._deliver([self._order_notice("cancelOrder", 200, "order cancelled", order, account)])

    def _match(self, book: _Book, side: str, lots: int, limit: int | None) -> list[tuple[int, int]]:
        """What the engine's book would give a taker order now: ``(px, lots)`` per level."""
        bids, asks = self.engine.levels(book.spec.symbol)
        matches = []
        for px, size, _ in asks if side == "buy" else bids:
            if lots <= 0 or (limit is not None and (px > limit if side == "buy" else px < limit)):
                break
            matches.append((px, min(size, lots)))
            lots -= matches[-1][1]
        return matches

    def _fills(self, order: _Order, account: str, matches: list[tuple[int, int, str]], execution: str, t: int) -> list[_Push]:
        """Apply fills to ``order``: the account's ``completedOrdersDelta`` and the ``orderFilled`` notice."""
        book, rows = order.book, []
        fee_rate = TAKER_FEE if execution == "taker" else MAKER_FEE
        for px, lots, match_id in matches:
            order.filled += lots
            order.filled_notional += px * lots
            rows.append({
                "market": book.name, "orderId": order.order_id, "matchId": match_id, "orderType": order.side,
                "tradeType": order.trade_type, "executionType": execution,
                "fillType": "complete" if order.filled == order.lots else "partial", "price": book.px(px),
                "quantity": book.qty(lots), "leverage": "1", "fees": _plain(book.spec.px(px) * book.spec.sz(lots) * fee_rate),
                "orderCreatedAt": order.created_at, "orderFilledAt": t, "triggerType": "none", "triggerPrice": "0",
                "triggerCreatedAt": 0,
            })  # fmt: skip
        order.updated_at = t
        if order.filled == order.lots:
            order.status, body = "filled", "order filled"
        elif order.trade_type == "market":
            order.status, body = "cancelled", "order partially filled, remainder cancelled"
        else:
            order.status, body = "partiallyFilled", "order partially filled"
        delta = _Push("trades", None, account, _envelope("completedOrdersDelta", rows), _envelope("completedOrdersDelta", rows, book.name))
        return [delta, self._order_notice("orderFilled", 200, body, order, account)]

    def _order_notice(self, result_type: str, status: int, body: str, order: _Order, account: str) -> _Push:
        data: dict[str, Any] = {"statusCode": status, "body": body, "order": order.wire()}
        if order.client_request_id is not None:
            data["clientRequestId"] = order.client_request_id
        return _Push("orders", order.book.name, account, _envelope(result_type, data, order.book.name))

    # ==============================================================================================
    # Publishing
    # ==============================================================================================

    def _kept_levels(self, book: _Book) -> dict[tuple[str, int], int]:
        bids, asks = self.engine.levels(book.spec.symbol)
        kept = {("buy", px): lots for px, lots, _ in bids[:BOOK_LEVELS]}
        kept.update((("sell", px), lots) for px, lots, _ in asks[:BOOK_LEVELS])
        return kept

    def _delta(self, book: _Book, changes: Iterable[tuple[tuple[str, int], int]], t: int) -> bytes:
        return _envelope("publicOrderBookDelta", {"orders": book.rows(changes), "statusCode": 200, "ts": t}, book.name)

    async def on_step(self, events: StepEvents) -> None:
        t = events.time
        pushes: list[_Push] = []
        taped: dict[str, list[tuple[Trade, dict[str, Any]]]] = {}
        for book in self.books.values():
            pushes += [_Push("publicOrderBook", book.name, None, frame) for frame in self._book_frames(book, t)]
            trades = events.trades.get(book.spec.symbol, ())
            if trades:
                taped[book.name] = [(trade, self._tape_row(book, trade)) for trade in trades]
                rows = [row for _, row in taped[book.name]]
                pushes.append(_Push("publicTrades", book.name, None, _envelope("publicCompletedOrdersDelta", {"orders": rows, "statusCode": 200}, book.name)))
        pushes += self._demo_trade(t, taped)
        await self._deliver(pushes)

    def _book_frames(self, book: _Book, t: int) -> list[bytes]:
        """This step's delta of one market after any armed fault, and a delta held from the last step."""
        fresh = self._kept_levels(book)
        changes = [(key, lots) for key, lots in fresh.items() if book.levels.get(key) != lots]
        changes += [(key, 0) for key in book.levels if key not in fresh]
        frames: list[bytes] = []
        held = None
        if changes:
            book.previous, book.levels, book.changed_at = book.levels, fresh, t
            frame = self._delta(book, changes, t)
            fault = self.take_book_fault(book.name, ("skip", "duplicate", "reorder"))
            if fault == "reorder":
                held = frame
            elif fault != "skip":
                frames = [frame, frame] if fault == "duplicate" else [frame]
        if book.held is not None:
            frames.append(book.held)
        book.held = held
        return frames

    def _tape_row(self, book: _Book, trade: Trade) -> dict[str, Any]:
        row = {"executionType": "taker", "matchId": _uuid(self._match_ids), "orderType": trade.side,
               "price": book.px(trade.px), "quantity": book.qty(trade.sz), "updatedAt": trade.time}  # fmt: skip
        book.tape.append(row)
        return row

    def _next_demo_trade(self, after_ms: int) -> tuple[int, str]:
        rng = self._demo_rng
        return after_ms + rng.randint(*DEMO_TRADE_GAP_MS), rng.choice(sorted(self.books))

    def _demo_trade(self, t: int, taped: dict[str, list[tuple[Trade, dict[str, Any]]]]) -> list[_Push]:
        """When due, the demo account's resting limit order makes the next public trade of its market."""
        due, name = self._demo_plan
        if t < due:
            return []
        trade, row = next(((trade, row) for trade, row in taped.get(name, ()) if trade.time >= due), (None, None))
        if trade is None or row is None:
            return []
        self._demo_plan = self._next_demo_trade(trade.time)
        book = self.books[name]
        side = "sell" if trade.side == "buy" else "buy"
        order = _Order(book, _ulid(due, self._account_ids), side, "limit", trade.px, trade.sz, due, status="active")
        accepted = self._order_notice("createOrder", 200, "order accepted", order, self.demo_account)
        return [accepted, *self._fills(order, self.demo_account, [(trade.px, trade.sz, row["matchId"])], "maker", trade.time)]

    def _receives(self, conn: WsConnection, push: _Push) -> bool:
        state = conn.state
        if push.stream not in state.get("subs", ()) or (push.account is not None and state["account"] != push.account):
            return False
        return push.market is None or state["market"] in (ALL_MARKETS, push.market)

    async def _deliver(self, pushes: list[_Push]) -> None:
        """Every push to every socket that receives it, push by push: one order for all sockets."""
        for push in pushes:
            for conn in list(self.connections):
                if self._receives(conn, push):
                    everything = push.frame_all is not None and conn.state["market"] == ALL_MARKETS
                    await conn.send(push.frame_all if everything else push.frame)  # type: ignore[arg-type]

    # -- benchmark flood -------------------------------------------------------------------------

    async def flood(self, market: str, count: int) -> int:
        """Send ``count`` deltas of ``market`` to its book subscribers as fast as they drain: the top
        five levels a side resized in turn, the last delta restoring them (the client's book ends true)."""
        book = self.books[market]
        async with self._step_lock:
            audience = [conn for conn in self.connections if self._receives(conn, _Push("publicOrderBook", market, None, b""))]
            if not audience or count <= 0:
                return 0
            return await self.send_burst(audience, self._flood_frames(book, count))

    def _flood_frames(self, book: _Book, count: int) -> Iterator[bytes]:
        asks = sorted((px, lots) for (side, px), lots in book.levels.items() if side == "sell")[:5]
        bids = sorted(((px, lots) for (side, px), lots in book.levels.items() if side == "buy"), reverse=True)[:5]
        top = [(("sell", px), lots) for px, lots in asks] + [(("buy", px), lots) for px, lots in bids]
        t = book.changed_at
        variants: dict[tuple[int, int], bytes] = {}
        for index in range(count - 1):
            key = (index % len(top), index % 7)
            if key not in variants:
                level, lots = top[key[0]]
                variants[key] = self._delta(book, [(level, lots + key[1] + 1)], t)
            yield variants[key]
        if count > 0:
            yield self._delta(book, top, t)

    # ==============================================================================================
    # REST
    # ==============================================================================================

    def http_routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/token", self._rest(self._token)),
            web.get("/api/v1/markets", self._rest(self._list_markets)),
            web.get("/api/v1/market-data", self._rest(self._market_data)),
        ]

    def _rest(self, handler: Callable[[web.Request], Awaitable[web.Response]]) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The per-address rate limit around one endpoint."""

        async def serve(request: web.Request) -> web.Response:
            window = self._rest_windows.setdefault(request.remote or "", RollingLimit(REST_REQUESTS_PER_MINUTE, 60.0))
            if wait := window.admit():
                return _refusal(429, "too many requests", _retry_after(wait))
            return await handler(request)

        return serve

    async def _token(self, request: web.Request) -> web.Response:
        self.stats.token_requests += 1
        key, secret = request.headers.get("X-Api-Key", ""), request.headers.get("X-Api-Secret", "")
        known = self._keys.get(key)
        if known is None:
            return _refusal(401, "invalid api key or secret")
        if wait := self._token_windows.setdefault(key, RollingLimit(TOKEN_REQUESTS_PER_MINUTE, 60.0)).admit():
            return _refusal(429, "too many requests", _retry_after(wait))
        if secret != known[0]:
            return _refusal(401, "invalid api key or secret")
        return _json(200, {"access_token": self.issue_token(key), "token_type": "Bearer", "expires_in": round(self.token_ttl)})

    async def _list_markets(self, request: web.Request) -> web.Response:
        return _json(200, [
            {"name": book.name, "baseAsset": book.spec.base, "quoteAsset": "USDT", "tickSize": book.px(1), "stepSize": book.qty(1), "status": "active"}
            for book in self.books.values()
        ])  # fmt: skip

    async def _market_data(self, request: web.Request) -> web.Response:
        named = request.query.get("market")
        if named is not None and named not in self.books:
            return _refusal(400, f"unknown market: {_quoted(named)}")
        books = [self.books[named]] if named is not None else list(self.books.values())
        return _json(200, [row for book in books for row in self._market_rows(book)])

    def _market_rows(self, book: _Book) -> list[dict[str, Any]]:
        symbol, now = book.spec.symbol, self.engine.now_ms
        ctx = self.engine.context(symbol)
        bid, ask = self.engine.bbo(symbol)
        values = (
            ("INDEX", "CCCAGG", format_decimal(ctx.oracle_px, 10)),
            ("24H_COUNT", "RAILS", str(self.engine.trade_count(symbol) - self.engine.trade_count(symbol, now - _DAY_MS))),
            ("24H_VOLUME", "RAILS", _plain(ctx.day_ntl_vlm, 2)),
            ("ASK", "RAILS", "0" if ask is None else book.px(ask[0])),
            ("BID", "RAILS", "0" if bid is None else book.px(bid[0])),
            ("FUNDING", "RAILS", _plain(ctx.funding, 16)),
            ("NEXT_FUNDING", "RAILS", str(now - now % _FUNDING_PERIOD_MS + _FUNDING_PERIOD_MS)),
            ("OPEN_INTEREST", "RAILS", book.qty(round(ctx.open_interest / book.spec.lot))),
        )
        return [{"market": book.name, "type": kind, "index": index, "value": value, "updatedAt": now} for kind, index, value in values]


def _units(value: Any, decimals: int, what: str) -> int:
    """A positive decimal (string or number) as a whole number of ``10**-decimals`` units."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Refusal(400, f"{what} must be a decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise _Refusal(400, f"{what} must be a decimal string") from None
    if not number.is_finite() or number <= 0:
        raise _Refusal(400, f"{what} must be positive")
    units = number.scaleb(decimals)
    if units != units.to_integral_value():
        raise _Refusal(400, f"{what} must be a multiple of {decimal_str(1, decimals)}")
    if units > _MAX_UNITS:
        raise _Refusal(400, f"{what} is too large")
    return int(units)
