"""The venues under test, and the good frames each one really sends.

:data:`CASES` is the one table of the harness: one :class:`VenueCase` per adapter in
:data:`app.venues.ADAPTERS` (a test fails when an adapter has no case). Everything else is
generic: :func:`capture` starts the case's emulator, connects over a real WebSocket, subscribes with
the adapter's own messages and records what comes back; the fuzz tests mutate those frames, and the
poison test uses the case's book hooks.

Adding a venue (its adapter in ``ADAPTERS``, its emulator on :class:`app.sim.server.EmulatorServer`)::

    PERPEX = VenueCase(
        venue=Venue.PERPEX,
        emulator=PerpexEmulator,
        sample_keys=keys(Venue.PERPEX, (Channel.BOOK, "BTC-PERP"), (Channel.TRADES, "BTC-PERP"), ...),
        bad_keys=keys(Venue.PERPEX, (Channel.BOOK, "NOPE")),   # or () if it cannot refuse one
        book_market="ETH-PERP",
        emulator_book=lambda server, market: ...,            # its book as ([(px, sz)], [(px, sz)])
        book_message=lambda server, market, bids, asks: {...},  # a book frame (JSON value) of these levels
    )
    CASES = (HYPERLIQUID, ASTER, POLYMARKET, PERPEX)

A venue that refuses no subscription can still have its error frames captured with
``bad_requests`` (raw client messages it answers with an error); ``capture_extra`` drives the
emulator through what plain market steps rarely show (a tick size change, an older frame shape).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import inspect
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets
import yarl
from pydantic import SecretStr

from app.model import Channel, Level, StreamKey, Venue, freeze_params
from app.rest import RestClient, RestError
from app.sim.aster import AsterEmulator
from app.sim.engine import DEMO_ADDRESS, format_fixed
from app.sim.hypercall import HypercallEmulator
from app.sim.perps_studio import DEMO_API_KEY, PerpsStudioEmulator
from app.sim.hyperliquid import HyperliquidEmulator
from app.sim.perpex import DEMO_SUBJECT as PERPEX_DEMO, PerpexEmulator
from app.sim.polymarket import PolymarketEmulator
from app.sim.rails import PROTOCOL_PREFIX as RAILS_PROTOCOL, RailsEmulator
from app.sim.predictions import DEFAULT_MARKETS, BinaryMarket
from app.sim.server import EmulatorServer
from app.secrets import Credentials
from app.venues import ADAPTERS, build_adapter
from app.venues.base import Endpoint, VenueAdapter
from app.venues.perps_studio import VERTICALS, split_market
from tests.conformance.mutations import Pool, strings_in, trimmed

BookLevels = tuple[list[Level], list[Level]]

#: Every emulator's virtual clock starts here (2026-06-01T12:00:30Z; mid-minute, so the first
#: steps stay in one candle), not at the wall clock: the captured frames, and so the derandomized
#: fuzz examples built from them, are the same on every run.
START_MS = 1_780_315_230_000


def keys(venue: Venue, *specs: tuple[Any, ...]) -> tuple[StreamKey, ...]:
    """Stream keys from ``(channel, market[, params])`` tuples."""
    return tuple(
        StreamKey(venue, Channel(spec[0]), spec[1] if len(spec) > 1 else "", freeze_params(spec[2] if len(spec) > 2 else None))
        for spec in specs
    )


@dataclass(frozen=True, eq=False)
class VenueCase:
    """What the harness needs to know about one venue; everything else it derives.

    ``sample_keys``: streams to capture good frames from, at least one per channel the adapter has
    (more where frames differ, e.g. a spot and a perp ticker). ``bad_keys``: subscriptions the venue
    refuses, to capture its error frames. ``bad_requests``: raw client messages the venue answers
    with an error (for a venue that refuses no subscription), sent on the first socket after the
    subscribe. ``book_market``: the market of the live poison test.
    ``emulator_book(server, market)``: the emulator's current book, best first, as the client's
    ``OrderBook.levels()`` shows it. ``book_message(server, market, bids, asks)``: a JSON value the
    venue would push as a full book of ``market`` with exactly these levels (any types: the poison
    test puts hostile values in them), timestamped now; for a venue that pushes deltas, the message
    the client applies as a whole book (a partial-depth snapshot, or a delta continuing the chain
    that sets these levels and removes every other one: ``book_is_delta``).
    ``reveal_forged_book(server, market)`` (awaited): where a forged book cannot be told from the
    venue's, makes the venue show it: for a delta venue whose chain is a plain count, which a forged
    delta continues undetectably, the venue's next update a gap; for one whose deltas are not
    numbered at all (Rails), the venue's whole book sent now (the poison test calls it after each
    batch). ``capture_steps``: market steps during the capture (enough for every
    sample key to get data); ``capture_extra(server)``: run after them, to make the emulator send
    what plain steps rarely do. A key of a channel the adapter polls over REST (``polled``) is not
    subscribed on a socket: its snapshot's REST answers are its samples.
    """

    venue: Venue
    emulator: type[EmulatorServer]
    sample_keys: tuple[StreamKey, ...]
    bad_keys: tuple[StreamKey, ...]
    book_market: str
    emulator_book: Callable[[Any, str], BookLevels]
    book_message: Callable[[Any, str, Sequence[Any], Sequence[Any]], Any]
    emulator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    bad_requests: tuple[str, ...] = ()
    book_is_delta: bool = False
    reveal_forged_book: Callable[[Any, str], Awaitable[None]] | None = None
    capture_steps: int = 3
    capture_extra: Callable[[Any], Awaitable[None]] | None = None
    seed: int = 7
    advance_ms: int = 1000  # one step of the emulator's clock: long enough for every periodic push
    wallet: str | None = None  # the account the account channels' sample keys are about
    credentials: Credentials = Credentials()  # what a venue that wants them needs (the emulator's demo ones)

    @property
    def name(self) -> str:
        return str(self.venue)

    def adapter(self, endpoint: Endpoint) -> VenueAdapter:
        return build_adapter(self.venue, endpoint, self.wallet, self.credentials)

    def endpoint(self, server: EmulatorServer) -> Endpoint:
        """The endpoint of a running emulator, with the further URLs it advertises (Aster's spot
        streams are on another path)."""
        return Endpoint(server.ws_url, server.http_url, tuple(server.extra_urls().items()))

    def start_emulator(self, **overrides: Any) -> EmulatorServer:
        """The case's emulator, deterministic (``autostep=False``, clock from :data:`START_MS`):
        ``async with`` it."""
        kwargs = {"seed": self.seed, "autostep": False, "idle_timeout": 30.0, "start_ms": START_MS, **self.emulator_kwargs, **overrides}
        return self.emulator(**kwargs)

    def offline_adapter(self) -> VenueAdapter:
        """An adapter for decoding only (its endpoint is never contacted)."""
        return self.adapter(Endpoint("ws://127.0.0.1:9/ws", "http://127.0.0.1:9"))


# --- Hyperliquid ----------------------------------------------------------------------------------


def _engine_book(server: EmulatorServer, symbol: str, depth: int = 20) -> BookLevels:
    """The top ``depth`` levels of the shared market engine's book of ``symbol`` (what a venue
    that publishes the engine's book as is shows: Hyperliquid, Perpex)."""
    bids, asks = server.engine.book(symbol, depth)
    return [(px, sz) for px, sz, _ in bids], [(px, sz) for px, sz, _ in asks]


def _removals(book: list[Level], kept: Sequence[Any], zero: str) -> list[list[str]]:
    """Delta rows (size ``zero``) removing every level of ``book`` whose price ``kept`` does not
    set: a delta that sets ``kept`` and these leaves exactly ``kept``."""
    prices = {level[0] for level in kept if isinstance(level, tuple) and isinstance(level[0], str)}
    return [[px, zero] for px, _ in book if px not in prices]


def _hyperliquid_book(server: HyperliquidEmulator, coin: str) -> BookLevels:
    return _engine_book(server, server.listings[coin].spec.symbol)


def _hyperliquid_book_message(server: HyperliquidEmulator, coin: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    side = lambda levels: [{"px": px, "sz": sz, "n": 1} for px, sz in levels]  # noqa: E731
    return {"channel": "l2Book", "data": {"coin": coin, "time": server.now_ms(), "levels": [side(bids), side(asks)]}}


async def _hyperliquid_extra(server: HyperliquidEmulator) -> None:
    """The demo account liquidated: below maintenance for the emulator's delay (3 s), then the
    ``liquidation`` user event, its market orders (``orderUpdates`` open and filled) and its fills
    (``userFills`` and ``user``, with a ``liquidation`` object); ``clearinghouseState`` pushes on
    the way."""
    server.set_liquidation_stage("liquidating")
    for _ in range(5):
        await server.advance(1000)


HYPERLIQUID = VenueCase(
    venue=Venue.HYPERLIQUID,
    emulator=HyperliquidEmulator,
    emulator_kwargs={"greeting": True, "book_interval": 0.5},
    sample_keys=keys(
        Venue.HYPERLIQUID,
        (Channel.BOOK, "BTC"),
        (Channel.BOOK, "ETH", {"nSigFigs": 5, "mantissa": 2}),
        (Channel.TRADES, "BTC"),
        (Channel.TRADES, "@1"),
        (Channel.CANDLES, "ETH", {"interval": "1m"}),
        (Channel.TICKER, "BTC"),
        (Channel.TICKER, "@1"),  # spot: channel activeSpotAssetCtx, no funding
        (Channel.ALL_MIDS,),
        (Channel.BBO, "SOL"),
        # The account (socket group "account"): clearinghouseState, userFills, orderUpdates and
        # userEvents (its frames on channel "user").
        (Channel.POSITIONS,),
        (Channel.FILLS,),
        (Channel.ORDERS,),
        (Channel.LIQUIDATION,),
    ),
    bad_keys=keys(Venue.HYPERLIQUID, (Channel.BOOK, "NOPE"), (Channel.CANDLES, "NOPE", {"interval": "1m"})),
    book_market="ETH",
    emulator_book=_hyperliquid_book,
    book_message=_hyperliquid_book_message,
    capture_extra=_hyperliquid_extra,
    wallet=DEMO_ADDRESS,
)


# --- Aster ----------------------------------------------------------------------------------------
# Perps and spot are two connection groups (two stream paths); a spot market is "spot:<SYMBOL>".
# Symbols differ between the perp and the spot sample of a channel where they can, because routes
# name the symbol only (unique within one socket): the coverage check then tells them apart.


def _aster_book(server: AsterEmulator, market: str) -> BookLevels:
    """The emulator's published book (the one its diff-depth stream and REST depth describe)."""
    listing = server.listing(market)
    bids = [(listing.px(t), listing.qty(q)) for t, q in sorted(listing.bids.items(), reverse=True)]
    asks = [(listing.px(t), listing.qty(q)) for t, q in sorted(listing.asks.items())]
    return bids, asks


def _aster_book_message(server: AsterEmulator, market: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    """A combined-stream ``depthUpdate`` that continues the chain the client holds (``pu`` is the
    last id the emulator published, which the client's book has reached, either by its deltas or
    by the REST snapshot's ``lastUpdateId``), sets these levels and removes every other level of
    the published book, so the client then holds exactly these levels.

    The emulator does not know of it: its next update still names its own last id as ``pu``, so
    an applied message of this kind is a gap the client must see and resync from (perps; on spot
    the next update could reuse its ids, so ``book_market`` is a perp)."""
    symbol = market.removeprefix("spot:")
    try:
        listing = server.listing(market)
    except KeyError:  # a market the venue does not list (the poison "other markets")
        last, zero, book_bids, book_asks = 1, "0", [], []
    else:
        last, zero = listing.update_id, listing.qty(0)  # zero as the venue writes it ("0.000")
        book_bids, book_asks = _aster_book(server, market)

    now = server.now_ms()
    return {
        "stream": f"{symbol.lower()}@depth@100ms",
        "data": {
            "e": "depthUpdate", "E": now, "T": now, "s": symbol, "U": last + 1, "u": last + 1, "pu": last,
            "b": [[px, sz] for px, sz in bids] + _removals(book_bids, bids, zero),
            "a": [[px, sz] for px, sz in asks] + _removals(book_asks, asks, zero),
        },
    }  # fmt: skip


ASTER = VenueCase(
    venue=Venue.ASTER,
    emulator=AsterEmulator,
    sample_keys=keys(
        Venue.ASTER,
        (Channel.BOOK, "BTCUSDT"),
        (Channel.BOOK, "spot:ASTERUSDT"),  # spot ids chain by U == previous u + 1
        (Channel.TRADES, "BTCUSDT"),
        (Channel.TRADES, "spot:ASTERUSDT"),  # spot aggTrade has "M"
        (Channel.CANDLES, "ETHUSDT", {"interval": "1m"}),
        (Channel.CANDLES, "spot:BTCUSDT", {"interval": "1m"}),
        (Channel.TICKER, "BTCUSDT"),  # 24hrTicker and markPriceUpdate
        (Channel.TICKER, "spot:ASTERUSDT"),  # 24hrTicker only
        (Channel.BBO, "SOLUSDT"),
        (Channel.BBO, "spot:BTCUSDT"),  # spot bookTicker has no event type
        (Channel.ALL_MIDS,),
        (Channel.ALL_MIDS, "", {"kind": "spot"}),
    ),
    # Unknown streams are acknowledged and silent (Binance's behaviour): no key is refused, but a
    # malformed request is (its error names the request's id where it had one).
    bad_keys=(),
    bad_requests=(
        '{"method":"SUBSCRIBE","params":"btcusdt@aggTrade","id":77}',
        '{"method":"RESUBSCRIBE","params":[],"id":78}',
        "not json",
    ),
    book_market="ETHUSDT",
    emulator_book=_aster_book,
    book_message=_aster_book_message,
    book_is_delta=True,
)


# --- Polymarket -----------------------------------------------------------------------------------
# Markets are outcome-token ids (the emulator derives them from its seed and each market's slug).


@functools.cache
def _polymarket_tokens(seed: int) -> dict[str, tuple[str, str]]:
    """``slug -> (YES token, NO token)`` of the emulator's default markets for ``seed``."""
    return {spec.slug: BinaryMarket(spec, seed, 0).token_ids for spec in DEFAULT_MARKETS}


_PM_SEED = 7
_PM_BUSY = _polymarket_tokens(_PM_SEED)["nba-lal-bos-2026-06-12"]  # the most trades and maker actions
_PM_SLOW = _polymarket_tokens(_PM_SEED)["will-btc-close-above-120k-in-2026"]


def _polymarket_book(server: PolymarketEmulator, token: str) -> BookLevels:
    bids, asks = server.book(token)
    return list(bids), list(asks)


def _polymarket_book_message(server: PolymarketEmulator, token: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    """A ``book`` event (the venue's full book, levels worst to best as it sends them)."""
    found = server.model.token(token)
    condition = found[0].condition_id if found is not None else "0x" + "0" * 64
    tick = server.book_summary(token)["tick_size"] if found is not None else "0.01"
    side = lambda levels: [{"price": px, "size": sz} for px, sz in reversed(list(levels))]  # noqa: E731
    return {
        "event_type": "book", "market": condition, "asset_id": token, "timestamp": str(server.now_ms()),
        "hash": "0" * 40, "bids": side(bids), "asks": side(asks), "tick_size": tick, "last_trade_price": "",
    }  # fmt: skip


async def _polymarket_extra(server: PolymarketEmulator) -> None:
    """A tick size change (``tick_size_change`` and a fresh ``book``), then steps in the legacy
    ``price_change`` shape (one frame per asset with ``changes``), then the other legacy shape
    (one change inline), sent through the emulator's socket since it never produces that one."""
    await server.change_tick_size(_PM_SLOW[0], "0.001")
    server.legacy_price_change = True
    try:
        for _ in range(2):
            await server.advance(1000)
    finally:
        server.legacy_price_change = False
    bids, _ = server.book(_PM_BUSY[0])
    bid_px, bid_sz = bids[0]
    flat = {
        "asset_id": _PM_BUSY[0], "event_type": "price_change", "market": server.model.token(_PM_BUSY[0])[0].condition_id,
        "price": bid_px, "side": "BUY", "size": bid_sz, "timestamp": str(server.now_ms()), "hash": "0" * 40,
    }  # fmt: skip
    await server.inject(orjson.dumps(flat).decode())


POLYMARKET = VenueCase(
    venue=Venue.POLYMARKET,
    emulator=PolymarketEmulator,
    # A fresh book on every step of the poison test: the venue's only repair of a wrong book.
    emulator_kwargs={"book_refresh_interval": 1.0},
    sample_keys=keys(
        Venue.POLYMARKET,
        (Channel.BOOK, _PM_BUSY[0]),
        (Channel.BOOK, _PM_SLOW[0]),
        (Channel.TRADES, _PM_BUSY[0]),
        (Channel.TRADES, _PM_BUSY[1]),
    ),
    bad_keys=(),  # unknown token ids get no answer at all
    book_market=_PM_BUSY[0],
    emulator_book=_polymarket_book,
    book_message=_polymarket_book_message,
    capture_steps=6,
    capture_extra=_polymarket_extra,
    seed=_PM_SEED,
)


# --- Hypercall ------------------------------------------------------------------------------------
# Options named UND-YYYYMMDD-STRIKE-C|P; expiries and strikes follow from the seed and START_MS.
# Public streams share one socket, a filtered options chain has its own (filters hold per socket
# and channel), the account streams ride an authenticated one (the adapter's handshake).

#: Under seed 7 from START_MS: a BTC put of the third expiry (2026-06-05, so the expiry driven by
#: ``_hypercall_extra`` leaves it listed for the REST snapshot) that trades twice in the capture,
#: first within two seconds (random trades are 3 a second over 144 instruments).
_HC_BUSY = "BTC-20260605-100000-P"
_HC_FIRST_EXPIRY = "2026-06-02"  # the one ``expire_next`` settles


def _hypercall_book(server: HypercallEmulator, symbol: str) -> BookLevels:
    """The instrument's book as the emulator publishes it (prices in ticks, sizes in 0.1 lots)."""
    inst = server.instruments[symbol]
    return [(inst.px(px), format_fixed(lots, 1)) for px, lots in inst.bids], [(inst.px(px), format_fixed(lots, 1)) for px, lots in inst.asks]


def _hypercall_book_message(server: HypercallEmulator, symbol: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    """An ``OrderbookUpdate``: the venue's whole top of book, each push replacing the last."""
    return {
        "type": "OrderbookUpdate", "symbol": symbol, "option_token_address": None,
        "bids": [[px, sz] for px, sz in bids], "asks": [[px, sz] for px, sz in asks], "timestamp": server.now_ms(),
    }  # fmt: skip


async def _hypercall_extra(server: HypercallEmulator) -> None:
    """What plain steps rarely show: the demo wallet trading (every 15-30 s of virtual time, the
    first at 28 s under this seed: ``OrderUpdate`` open and filled, ``Fill``, a position and a
    balance ``PortfolioUpdate``), the account entering Warning (``LiquidationStateChange``), an expiry
    (``MarketUpdate`` Expired and Created, chain ``Remove`` per leg, ``PositionExpired`` of the
    demo's BTC call). The clock passes a ten-second mark, so ``CompetitionPnlSummary`` repeats."""
    for _ in range(28):
        await server.advance(1000)
    server.set_liquidation_stage("warning")
    await server.advance(1000)
    await server.expire_next()
    await server.advance(1000)


HYPERCALL = VenueCase(
    venue=Venue.HYPERCALL,
    emulator=HypercallEmulator,
    # Every book changes at least every second of the poison test: the venue pushes a book only
    # when it changed, and that push is a client's only repair of a wrong book.
    emulator_kwargs={"requote_interval": 1.0},
    sample_keys=keys(
        Venue.HYPERCALL,
        (Channel.BOOK, _HC_BUSY),
        (Channel.TRADES, _HC_BUSY),
        (Channel.CANDLES, "BTC", {"interval": "1m"}),
        (Channel.ALL_MIDS,),  # index_prices: the underlyings' index
        (Channel.OPTIONS_CHAIN, "BTC"),
        (Channel.OPTIONS_CHAIN, "BTC", {"expiry": _HC_FIRST_EXPIRY, "option_type": "call"}),  # rows with one leg
        (Channel.LISTINGS,),
        (Channel.POSITIONS,),
        (Channel.LIQUIDATION,),
        (Channel.FILLS,),
        (Channel.ORDERS,),
        (Channel.COMPETITION,),
    ),
    bad_keys=keys(Venue.HYPERCALL, (Channel.CANDLES, "NOPE", {"interval": "1m"})),  # Invalid channel: candles:NOPE:1m
    bad_requests=('{"type":"Nope"}', "not json"),  # Unknown message type; Invalid message
    book_market=_HC_BUSY,
    emulator_book=_hypercall_book,
    book_message=_hypercall_book_message,
    capture_extra=_hypercall_extra,
    wallet=DEMO_ADDRESS,
)

# --- perps.studio ---------------------------------------------------------------------------------
# An aggregator: markets are "<vertical>:<provider>:<symbol>", one socket per vertical (the socket's
# group is the vertical; payloads do not say it). Hyperliquid and Aster frames differ in their
# decimals and in the ticker fields they leave null (Aster has no mark, index or funding; its
# prices push only what changed), so perps channels are sampled on both providers.

_PS_SEED = 7
_PS_MARKETS = {spec.slug: BinaryMarket(spec, _PS_SEED, 0) for spec in DEFAULT_MARKETS}
_PS_BUSY = _PS_MARKETS["nba-lal-bos-2026-06-12"]
#: Its YES token has 78 digits: "predictions:polymarket:<token>" is 101 characters, as real ones are.
_PS_LONG = _PS_MARKETS["will-btc-close-above-120k-in-2026"].token_ids[0]


def _studio_book(server: PerpsStudioEmulator, market: str) -> BookLevels:
    """The book a perps, spot or RWA market pushes (its top 20 levels, formatted by its provider)."""
    listing = server.listings[market]
    bids, asks = server.engine.levels(listing.key)
    side = lambda levels: [(listing.px(level[0]), listing.sz(level[1])) for level in levels[:20]]  # noqa: E731
    return side(bids), side(asks)


def _studio_book_message(server: PerpsStudioEmulator, market: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    """An ``orderbook`` frame (a whole book, replacing the last); a name that is no market of the
    venue goes out as a perps Hyperliquid symbol."""
    vertical, provider, ident = split_market(market)
    if vertical not in VERTICALS or not provider or not ident:
        vertical, provider, ident = "perps", "hyperliquid", market
    names = {"symbol": ident}
    if vertical == "rwas":
        dex, _, symbol = ident.partition(":")
        names = {"symbol": symbol, "dex": dex}
    elif vertical == "predictions":
        names = {"tokenId": ident}
    side = lambda levels: [{"price": px, "size": sz} for px, sz in levels]  # noqa: E731
    return {"channel": "orderbook", "provider": provider, "data": {**names, "bids": side(bids), "asks": side(asks), "timestamp": server.now_ms()}}


PERPS_STUDIO = VenueCase(
    venue=Venue.PERPS_STUDIO,
    emulator=PerpsStudioEmulator,
    sample_keys=keys(
        Venue.PERPS_STUDIO,
        (Channel.BOOK, "perps:hyperliquid:BTC"),
        (Channel.TRADES, "perps:hyperliquid:BTC"),
        (Channel.TICKER, "perps:hyperliquid:BTC"),
        (Channel.CANDLES, "perps:hyperliquid:ETH", {"interval": "1m"}),
        (Channel.ALL_MIDS, "perps:hyperliquid"),  # the complete mid map
        (Channel.BOOK, "perps:aster:BTC"),  # fixed decimals
        (Channel.TRADES, "perps:aster:BTC"),  # running trade numbers
        (Channel.TICKER, "perps:aster:BTC"),  # no mark, index, mid, funding or open interest
        (Channel.CANDLES, "perps:aster:ETH", {"interval": "1m"}),
        (Channel.ALL_MIDS, "perps:aster"),  # last prices, only what changed
        (Channel.BOOK, "spot:hyperliquid:HYPE/USDC"),
        (Channel.TRADES, "spot:aster:BTC/USDT"),
        (Channel.TICKER, "spot:hyperliquid:PURR/USDC"),  # spot: no funding, no index on Hyperliquid
        (Channel.TICKER, "spot:aster:BTC/USDT"),
        (Channel.BOOK, "rwas:hyperliquid:xyz:TSLA"),  # HIP-3: the dex in every payload
        (Channel.TRADES, "rwas:hyperliquid:xyz:TSLA"),
        (Channel.TICKER, "rwas:hyperliquid:flx:GOLD"),
        (Channel.BOOK, f"predictions:polymarket:{_PS_LONG}"),
        (Channel.BOOK, f"predictions:polymarket:{_PS_BUSY.token_ids[1]}"),
        (Channel.ALL_MIDS, f"predictions:polymarket:{_PS_BUSY.condition_id}"),  # a market's outcome prices
    ),
    # UNKNOWN_SYMBOL with the refused subscription echoed, on three verticals' sockets.
    bad_keys=keys(
        Venue.PERPS_STUDIO,
        (Channel.BOOK, "perps:hyperliquid:NOPE"),
        (Channel.TRADES, "rwas:hyperliquid:xyz:NOPE"),
        (Channel.ALL_MIDS, "predictions:polymarket:0xnope"),
    ),
    bad_requests=(
        '{"event":"subscribe","data":{"provider":"hyperliquid","channel":"orderbook","params":{}}}',  # INVALID_PARAMS, echoed
        '{"event":"subscribe","data":{"provider":"hyperliquid","channel":"bbo","params":{"symbol":"BTC"}}}',  # UNKNOWN_CHANNEL
        '{"event":"subscribe","data":{"provider":"polymarket","channel":"ticker","params":{"symbol":"BTC"}}}',  # UNSUPPORTED_PROVIDER
        "not json",  # INVALID_MESSAGE, no echo
    ),
    book_market="perps:hyperliquid:ETH",
    emulator_book=_studio_book,
    book_message=_studio_book_message,
    seed=_PS_SEED,
    credentials=Credentials(api_key=SecretStr(DEMO_API_KEY)),
)

# --- Perpex ---------------------------------------------------------------------------------------
# The engine's perps as "<BASE>-USD". Public streams share one socket; positions and liquidation
# ride the account's own, authenticated by the demo token in its upgrade header. Ticker and fills
# are polled over REST (markets, the first page of own trades): their snapshots are their samples.

_PX_SEED = 7


def _perpex_token(seed: int) -> str:
    """The emulator's demo token under ``seed`` (the same text for a seed and :data:`START_MS`),
    from an emulator built but never started."""
    return PerpexEmulator(seed=seed, autostep=False, start_ms=START_MS).demo_credentials()["token"]


def _perpex_book(server: PerpexEmulator, market: str) -> BookLevels:
    """The top 20 levels (the adapter's default depth): what a subscriber holds after a push."""
    return _engine_book(server, server.markets[market].symbol)


def _perpex_subscribers(server: PerpexEmulator, market: str) -> list[Any]:
    """The emulator's orderbook subscriptions of ``market`` (its per-socket ``seq`` counts)."""
    return list(server._subscribers.get(("orderbook", market, ""), {}).values())  # noqa: SLF001


def _perpex_book_message(server: PerpexEmulator, market: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    """An orderbook ``update`` with the next ``seq`` of the client's stream that sets these levels
    and removes every other level it holds (a name that is no market: ``seq`` 1, nothing removed)."""
    seq = max((sub.seq for sub in _perpex_subscribers(server, market)), default=0) + 1
    held_bids, held_asks = _perpex_book(server, market) if market in server.markets else ([], [])
    return {
        "op": "update", "channel": "orderbook", "symbol": market, "seq": seq, "ts": server.now_ms(),
        "data": {"bids": [[px, sz] for px, sz in bids] + _removals(held_bids, bids, "0"),
                 "asks": [[px, sz] for px, sz in asks] + _removals(held_asks, asks, "0")},
    }  # fmt: skip


async def _perpex_skip_number(server: PerpexEmulator, market: str) -> None:
    """A forged update continuing a plain count takes the venue's next number, so the venue's real
    update repeats it, the client drops that as a duplicate and nothing would ever show the
    forgery. The venue counts the forged number as used and skips one more (its ``skip`` fault,
    with the frame still sent): its next update is a gap whether or not a forged one was applied."""
    for sub in _perpex_subscribers(server, market):
        sub.seq += 2


async def _perpex_extra(server: PerpexEmulator) -> None:
    """The demo account at Warning (``liquidation_warning`` per position), then liquidated
    (``liquidated`` per position and its ``position_update`` of size "0"), then a small long opened
    at a normal ratio, so the REST account answer after the capture has a position to parse."""
    server.set_liquidation_stage("warning")
    await server.advance(1000)
    server.set_liquidation_stage("liquidating")
    await server.advance(1000)
    server.set_liquidation_stage("normal")
    await server.place(server.account(PERPEX_DEMO), {"symbol": "BTC-USD", "side": "buy", "type": "market", "size": "0.01"})
    await server.advance(1000)


PERPEX = VenueCase(
    venue=Venue.PERPEX,
    emulator=PerpexEmulator,
    sample_keys=keys(
        Venue.PERPEX,
        (Channel.BOOK, "BTC-USD"),
        (Channel.TRADES, "BTC-USD"),
        (Channel.CANDLES, "ETH-USD", {"interval": "1m"}),
        (Channel.TICKER, "BTC-USD"),  # REST: GET /api/v1/markets
        (Channel.POSITIONS,),  # the account socket: positions snapshot and position_update; REST: /api/v1/account
        (Channel.LIQUIDATION,),
        (Channel.FILLS,),  # REST: GET /api/v1/trades
    ),
    # INVALID_SYMBOL with the request's id ("orderbook:NOPE-USD"), which names the refused stream.
    bad_keys=keys(Venue.PERPEX, (Channel.BOOK, "NOPE-USD"), (Channel.CANDLES, "NOPE-USD", {"interval": "1m"})),
    bad_requests=(
        '{"op":"subscribe","channel":"orderbook","symbol":"BTC-USD","depth":7,"id":77}',  # INVALID_REQUEST, numeric id
        '{"op":"subscribe","channel":"positions","id":"positions"}',  # UNAUTHORIZED on the public socket
        '{"op":"nope"}',  # INVALID_REQUEST, id null
        "not json",
    ),
    book_market="ETH-USD",
    emulator_book=_perpex_book,
    book_message=_perpex_book_message,
    book_is_delta=True,
    reveal_forged_book=_perpex_skip_number,
    capture_extra=_perpex_extra,
    seed=_PX_SEED,
    credentials=Credentials(token=SecretStr(_perpex_token(_PX_SEED))),
)

# --- Rails ----------------------------------------------------------------------------------------
# The engine's perps as "<BASE>-USDT". Every socket carries the token issued for the demo API key
# and secret in its subprotocol; one socket per market (book, trades) and one market=ALL socket for
# the account (orders, fills). The ticker is polled over REST (market-data): its snapshot is its
# sample. Books are a snapshot, asked for on the socket, then deltas numbered by nothing.

_RL_SEED = 7


def _rails_credentials(seed: int) -> Credentials:
    """The emulator's demo API key and secret under ``seed``, from an emulator built but never
    started (the adapter fetches its token from the running one, as the app does)."""
    server = RailsEmulator(seed=seed, autostep=False, start_ms=START_MS)
    return Credentials(api_key=SecretStr(server.demo_api_key), api_secret=SecretStr(server.demo_api_secret))


def _rails_book(server: RailsEmulator, market: str) -> BookLevels:
    """The book as published (25 a side), best first."""
    return server.book_levels(market)


def _rails_book_message(server: RailsEmulator, market: str, bids: Sequence[Any], asks: Sequence[Any]) -> Any:
    """A ``publicOrderBook`` (the answer to ``emitPublicOrderBook``: a whole book, asks then bids,
    best first) stamped as the venue's own would be now: its book's last change (a name that is no
    market: the clock)."""
    listed = server.books.get(market)
    side = lambda kind, levels: [{"orderType": kind, "price": px, "quantity": sz} for px, sz in levels]  # noqa: E731
    return {
        "resultType": "publicOrderBook", "market": market,
        "data": {"orders": side("sell", asks) + side("buy", bids), "statusCode": 200,
                 "ts": listed.changed_at if listed is not None else server.now_ms()},
    }  # fmt: skip


async def _rails_emit_book(server: RailsEmulator, market: str) -> None:
    """Nothing numbers Rails' deltas, so a forged whole book is followed by deltas that apply to it
    as well as to the true one; the client repairs it only from the venue's snapshot (asked for on
    a crossed book, a reconnect, and by its audit every 30 s). The venue answers
    ``emitPublicOrderBook`` on every socket of the market now, as if each had asked: the audit's
    repair without its wait (Polymarket's case gets the same repair by its periodic book)."""
    for conn in list(server.connections):
        if conn.state.get("market") == market:
            await server._emit_book(conn, {"market": market})  # noqa: SLF001


async def _rails_place(ws: Any, number: int, request: str, content: dict[str, Any]) -> dict[str, Any]:
    """Send one order request with an id of another client's form and return its answer's data (the
    first message echoing the id: the ack or the refusal; the notices that follow echo it too)."""
    request_id = f"3f0c1f5e-6a8e-4a52-9d6b-{number:012d}"
    await ws.send(orjson.dumps({"message": request, "content": {**content, "clientRequestId": request_id}}).decode())
    while True:
        data = orjson.loads(await asyncio.wait_for(ws.recv(), 5))["data"]
        if isinstance(data, dict) and data.get("clientRequestId") == request_id:
            return data


async def _rails_extra(server: RailsEmulator) -> None:
    """The account's own orders over a socket of its own (its acks stay there; every notice and
    fill reaches the captured market=ALL socket too): a market buy (accepted, filled as taker), a
    limit far from the market (accepted, resting) cancelled, a post-only that would match
    (accepted, rejected with a reason). Then the steps to the demo account's own trade (first at
    21 s under this seed, in SOL-USDT: a maker fill)."""
    protocol = RAILS_PROTOCOL + server.issue_token(server.demo_api_key)
    async with websockets.connect(f"{server.ws_url}?market=ALL&subscriptions=orders", subprotocols=[protocol]) as ws:  # type: ignore[list-item]
        await _rails_place(ws, 1, "createOrder", {"market": "BTC-USDT", "orderType": "buy", "tradeType": "market", "quantity": "0.01"})
        resting = await _rails_place(ws, 2, "createOrder", {"market": "ETH-USDT", "orderType": "buy", "tradeType": "limit",
                                                            "price": "1000.00", "quantity": "0.5"})  # fmt: skip
        cancelled = await _rails_place(ws, 3, "cancelOrder", {"market": "ETH-USDT", "orderId": resting["order"]["orderId"]})
        best_ask = _rails_book(server, "BTC-USDT")[1][0][0]
        rejected = await _rails_place(ws, 4, "createOrder", {"market": "BTC-USDT", "orderType": "buy", "tradeType": "limit",
                                                             "price": best_ask, "quantity": "0.01", "postOnly": True})  # fmt: skip
        assert cancelled["statusCode"] == rejected["statusCode"] == 202, (cancelled, rejected)
    for _ in range(25):
        await server.advance(1000)


RAILS = VenueCase(
    venue=Venue.RAILS,
    emulator=RailsEmulator,
    sample_keys=keys(
        Venue.RAILS,
        (Channel.BOOK, "BTC-USDT"),  # a socket per market: publicOrderBook, then its deltas
        (Channel.TRADES, "BTC-USDT"),  # publicCompletedOrders, then its deltas
        (Channel.BOOK, "ETH-USDT"),
        (Channel.TRADES, "ETH-USDT"),
        (Channel.CANDLES, "ETH-USDT", {"interval": "1m"}),  # bars built from the same trades
        (Channel.TICKER, "BTC-USDT"),  # REST: GET /api/v1/market-data?market=
        (Channel.FILLS,),  # market=ALL: completedOrdersDelta of every market
        (Channel.ORDERS,),  # market=ALL: createOrder, cancelOrder, orderFilled, orderRejected
    ),
    # An unknown market is refused at the upgrade (HTTP 400), not in a frame: no bad key. Errors
    # are {"resultType": <request type or "error">, "data": {"statusCode", "body", ...}}.
    bad_keys=(),
    bad_requests=(
        '{"message":"nope","content":{"clientRequestId":"00000000-0000-4000-8000-000000000077"}}',  # error 400, our id
        '{"message":"subscribe","content":{"subscriptions":["nope"]}}',  # subscribe 400, no id
        '{"message":"emitPublicOrderBook","content":{"market":"ETH-USDT"}}',  # not this socket's market
        '{"message":"createOrder","content":{"orderType":"buy","tradeType":"market","quantity":"1"}}',  # no orders subscription
        "not json",  # error 400
    ),
    book_market="ETH-USDT",
    emulator_book=_rails_book,
    book_message=_rails_book_message,
    reveal_forged_book=_rails_emit_book,
    capture_extra=_rails_extra,
    seed=_RL_SEED,
    credentials=_rails_credentials(_RL_SEED),
)

#: Every venue the harness runs; one per adapter in ``app.venues.ADAPTERS``.
CASES: tuple[VenueCase, ...] = (HYPERLIQUID, ASTER, POLYMARKET, HYPERCALL, PERPS_STUDIO, PERPEX, RAILS)


def case_ids(case: VenueCase) -> str:
    return case.name


def missing_cases() -> set[Venue]:
    return set(ADAPTERS) - {case.venue for case in CASES}


# --- capture --------------------------------------------------------------------------------------


@dataclass(repr=False)
class RestCall:
    """One REST-using adapter operation and the bodies the emulator answered it with, in order."""

    name: str
    run: Callable[[VenueAdapter], Any]  # adapter -> coroutine (snapshot(key) or markets())
    responses: list[Any]
    markets: bool = False
    key: StreamKey | None = None  # the stream a snapshot is for

    def __repr__(self) -> str:
        return f"<RestCall {self.name}: {len(self.responses)} answer(s)>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(repr=False)
class Samples:
    """What a venue's emulator really sent: raw WebSocket frames and REST answers; ``by_socket``:
    the frames of each sample socket with the keys it carried (a route is unique on one socket
    only: Aster's perp and spot sockets both carry ``("all",)``); ``groups``: the connection group
    each frame arrived on (a venue's decoder may depend on it: perps.studio's payloads do not say
    their vertical)."""

    case: VenueCase
    frames: list[str | bytes]
    rest: list[RestCall]
    by_socket: list[tuple[tuple[StreamKey, ...], list[str | bytes]]] = field(default_factory=list)  # sample sockets
    groups: list[Any] = field(default_factory=list)  # parallel to ``frames``

    def __repr__(self) -> str:  # short: hypothesis prints the arguments of a failing test
        return f"<Samples of {self.case.name}: {len(self.frames)} frames, {len(self.rest)} REST operations>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's printer
        printer.text(repr(self))

    @functools.cached_property
    def documents(self) -> list[Any]:
        """The frames that are JSON, parsed (for structural mutation)."""
        return [doc for doc, _ in self.grouped_documents]

    @functools.cached_property
    def grouped_documents(self) -> list[tuple[Any, Any]]:
        """:attr:`documents` with the connection group each arrived on."""
        out = []
        for frame, group in zip(self.frames, self.groups or [()] * len(self.frames), strict=True):
            try:
                out.append((orjson.loads(frame), group))
            except orjson.JSONDecodeError:
                pass
        return out

    @functools.cached_property
    def group_choices(self) -> list[Any]:
        """Every connection group a frame arrived on, in order of first arrival."""
        return list(dict.fromkeys(group for _, group in self.grouped_documents)) or [()]

    @functools.cached_property
    def small_documents(self) -> list[Any]:
        """:attr:`documents` with long arrays cut to three items (quicker to mutate)."""
        return [trimmed(doc) for doc in self.documents]

    @functools.cached_property
    def small_rest(self) -> list[RestCall]:
        """:attr:`rest` with long arrays in the answers cut to three items."""
        return [RestCall(c.name, c.run, [trimmed(body) for body in c.responses], c.markets, c.key) for c in self.rest]

    @functools.cached_property
    def words(self) -> list[str]:
        """Every string in the good frames and REST answers (channel names, coins, keys)."""
        return strings_in([*self.small_documents, *(body for call in self.small_rest for body in call.responses)])

    @functools.cached_property
    def frame_pool(self) -> Pool:
        """The good frames (small) for the mutation strategies."""
        return Pool(f"{self.case.name} frames", self.small_documents, self.words)

    @functools.cached_property
    def rest_pool(self) -> Pool:
        """The good REST answers (small), to graft from."""
        return Pool(f"{self.case.name} REST", [b for call in self.small_rest for b in call.responses], self.words)


class _Recorder:
    """Stands in for one of the adapter's RestClients: forwards every request method
    (``post_json``, ``get_json``, ...) to the real one and records each answer in ``responses``
    (shared by the recorders of one adapter, so the answers stay in the order they came)."""

    def __init__(self, rest: Any, responses: list[Any]) -> None:
        self.rest = rest
        self.responses = responses

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.rest, name)
        if not name.endswith("_json"):
            return method

        async def request(*args: Any, **kwargs: Any) -> Any:
            response = await method(*args, **kwargs)
            self.responses.append(copy.deepcopy(response))
            return response

        return request

    async def close(self) -> None:
        await self.rest.close()


@contextlib.contextmanager
def rest_replaced(adapter: VenueAdapter, make: Callable[[Any], Any]) -> Any:
    """Every RestClient the adapter holds (``rest``, and any other, e.g. Aster's ``spot_rest``)
    replaced by ``make(client)`` (one replacement per distinct client) while the block runs."""
    clients = {name: value for name, value in vars(adapter).items() if isinstance(value, RestClient)}
    made: dict[int, Any] = {}
    for name, client in clients.items():
        if id(client) not in made:
            made[id(client)] = make(client)
        setattr(adapter, name, made[id(client)])
    try:
        yield
    finally:
        for name, client in clients.items():
            setattr(adapter, name, client)


class ReplayExhausted(RestError):
    """The adapter asked for more than the venue answered (e.g. one more page after a mutated
    cursor): to the adapter, a failed request like any other."""


@functools.cache
def _rest_signature(name: str) -> inspect.Signature:
    return inspect.signature(getattr(RestClient, name))


class Replay:
    """A RestClient that answers every request method (``post_json``, ``get_json``, ...) with
    prepared bodies, in order, without a socket. Query parameters are put in a URL as aiohttp
    does (so a value it cannot send raises here as it would there); a request beyond the prepared
    answers fails with :class:`ReplayExhausted`."""

    def __init__(self, responses: Sequence[Any]) -> None:
        self.responses = list(responses)
        self.calls = 0
        self.exhausted = False
        self.limiter = None

    def __getattr__(self, name: str) -> Any:
        if not name.endswith("_json"):
            raise AttributeError(name)
        real = _rest_signature(name)

        async def request(path: str, *args: Any, **kwargs: Any) -> Any:
            params = real.bind(None, path, *args, **kwargs).arguments.get("params")
            if params is not None:
                yarl.URL("http://replay.invalid").with_path(path).extend_query(params)
            if self.calls >= len(self.responses):
                self.exhausted = True
                raise ReplayExhausted(f"{name} {path}: no answer")
            self.calls += 1
            return self.responses[self.calls - 1]

        return request

    async def close(self) -> None:
        pass


async def _drain(ws: Any, quiet: float = 0.3) -> list[str | bytes]:
    """Frames received until the socket has been quiet for ``quiet`` seconds."""
    frames: list[str | bytes] = []
    while True:
        try:
            frames.append(await asyncio.wait_for(ws.recv(), quiet))
        except TimeoutError:
            return frames


class _Socket:
    """One captured connection: the keys it carries and the adapter's messages for them. Uses the
    adapter's connection API as it stands: ``group``/``dial``/``subscribe_messages`` where the
    adapter has them, else ``ws_url``/``subscribe_message``."""

    def __init__(self, adapter: VenueAdapter, keys: list[StreamKey], group: Any = None) -> None:
        self.adapter, self.keys, self.group = adapter, keys, group
        self.ws: Any = None
        self.requests = itertools.count(1)

    async def open(self, stack: contextlib.AsyncExitStack) -> None:
        adapter = self.adapter
        options: dict[str, Any] = {"max_size": None, "ping_interval": None}
        if hasattr(adapter, "dial"):
            dial = await adapter.dial(self.group, self.keys)  # a venue may name the streams in the URL
            url = dial.url
            if dial.headers:
                options["additional_headers"] = list(dial.headers)
            if dial.subprotocols:
                options["subprotocols"] = list(dial.subprotocols)
        else:
            url = adapter.ws_url()  # type: ignore[attr-defined]
        self.ws = await stack.enter_async_context(websockets.connect(url, **options))
        if (handshake := adapter.handshake(self.group)) is not None:
            await self.send(handshake.messages)  # its answer is captured like any frame

    def subscribe(self, keys: list[StreamKey], *, initial: bool) -> list[str]:
        method = getattr(self.adapter, "subscribe_messages", None)
        if method is None:
            return [self.adapter.subscribe_message(key) for key in keys]
        return method(keys, next(self.requests), **_accepted(method, initial=initial))

    def unsubscribe(self, keys: list[StreamKey]) -> list[str]:
        method = getattr(self.adapter, "unsubscribe_messages", None)
        if method is None:
            return [self.adapter.unsubscribe_message(key) for key in keys]
        remaining = [key for key in self.keys if key not in keys]
        return method(keys, next(self.requests), **_accepted(method, remaining=remaining))

    async def send(self, messages: Sequence[str]) -> None:
        for message in messages:
            await self.ws.send(message)


def _accepted(method: Callable[..., Any], **options: Any) -> dict[str, Any]:
    """The keyword options ``method`` takes (the adapter connection API is still growing)."""
    parameters = inspect.signature(method).parameters
    return {name: value for name, value in options.items() if name in parameters}


def _sockets(adapter: VenueAdapter, keys: Sequence[StreamKey]) -> list[_Socket]:
    """The sockets carrying ``keys``, one per connection group (polled keys on none, as in the app)."""
    keys = [key for key in keys if key.channel not in adapter.polled]
    if not hasattr(adapter, "group"):
        return [_Socket(adapter, list(keys))]
    groups: dict[Any, list[StreamKey]] = {}
    for key in keys:
        groups.setdefault(adapter.group(key), []).append(key)
    return [_Socket(adapter, members, group) for group, members in groups.items()]


async def capture_async(case: VenueCase) -> Samples:
    """Run the case's emulator and record its frames and REST answers over real sockets: the
    greeting, the acks and first frames of every sample key (in one request per socket), the
    errors for the bad keys (in a request of their own) and the bad requests, a pong (pinged after
    the subscribe: a venue may refuse anything else as a socket's first message), the case's
    ``capture_steps`` market moves and ``capture_extra``, and an unsubscribe ack."""
    frames: list[str | bytes] = []
    groups: list[Any] = []
    rest: list[RestCall] = []
    received: dict[int, list[str | bytes]] = {}
    async with case.start_emulator() as server, contextlib.AsyncExitStack() as stack:
        adapter = case.adapter(case.endpoint(server))
        stack.push_async_callback(adapter.close)
        sockets = _sockets(adapter, case.sample_keys)
        bad = _sockets(adapter, case.bad_keys)
        for socket in (*sockets, *bad):
            await socket.open(stack)

        async def drain(quiet: float) -> None:
            every = (*sockets, *bad)
            for socket, got in zip(every, await asyncio.gather(*(_drain(socket.ws, quiet) for socket in every)), strict=True):
                frames.extend(got)
                groups.extend([() if socket.group is None else socket.group] * len(got))
                received.setdefault(id(socket), []).extend(got)

        await drain(0.3)  # greetings, if the venue sends them
        for socket in sockets:
            await socket.send(socket.subscribe(socket.keys, initial=True))
        for socket in bad:
            await socket.send(socket.subscribe(socket.keys, initial=True))
        for socket in (*sockets, *bad):
            if (ping := adapter.ping_message()) is not None:
                await socket.ws.send(ping)
        await sockets[0].send(case.bad_requests)
        await drain(0.3)  # acks, errors, first snapshots and backlogs, pongs
        for _ in range(case.capture_steps):
            await server.advance(case.advance_ms)
            await drain(0.1)
        if case.capture_extra is not None:
            await case.capture_extra(server)
            await drain(0.1)
        await sockets[0].send(sockets[0].unsubscribe(sockets[0].keys[:1]))
        await drain(0.1)
        for key in case.sample_keys:
            rest.append(await _record(adapter, f"snapshot {key}", lambda a, key=key: a.snapshot(key), key=key))
        rest.append(await _record(adapter, "markets", lambda a: a.markets(), markets=True))
    by_socket = [(tuple(socket.keys), received.get(id(socket), [])) for socket in sockets]
    return Samples(case, frames, [call for call in rest if call.responses], by_socket, groups)


async def _record(adapter: VenueAdapter, name: str, run: Callable[[VenueAdapter], Any], markets: bool = False,
                  key: StreamKey | None = None) -> RestCall:  # fmt: skip
    responses: list[Any] = []
    with rest_replaced(adapter, lambda client: _Recorder(client, responses)):
        await run(adapter)
    return RestCall(name, run, responses, markets, key)


@functools.cache
def capture(case: VenueCase) -> Samples:
    """:func:`capture_async`, once per venue per test session (call it outside an event loop)."""
    return asyncio.run(capture_async(case))
