"""Stream state for options chains, listings and accounts (positions, liquidation, fills, orders).

Like :mod:`app.state`: events are folded in as they arrive, widgets read on a timer and skip work
while :attr:`~app.state.StreamData.generation` has not moved. Venue-neutral: Hypercall's portfolio
channel and Hyperliquid's ``clearinghouseState`` both fold into :class:`AccountData`.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal

from app.model import (
    Channel,
    ChainLeg,
    ChainRemoval,
    ChainRow,
    CompetitionSummary,
    Fill,
    Fills,
    Greeks,
    LegGreeks,
    LiquidationChange,
    LiquidationState,
    Listing,
    Margin,
    MarketEvent,
    OrderUpdate,
    OrderUpdates,
    Position,
    PositionExpired,
    Positions,
)
from app.state import StreamData

WARNING_RATIO = Decimal("1.5")
"""Equity below this multiple of the maintenance requirement is a Warning. The venues publish no
warning band; the emulators and our derivation use this one."""


def derive_state(equity: Decimal | None, maintenance: Decimal | None) -> LiquidationState | None:
    """The state margin implies: below maintenance Liquidating, below the warning band Warning."""
    if equity is None or maintenance is None:
        return None
    if maintenance <= 0:
        return LiquidationState.NORMAL
    if equity < maintenance:
        return LiquidationState.LIQUIDATING
    if equity < maintenance * WARNING_RATIO:
        return LiquidationState.WARNING
    return LiquidationState.NORMAL



__all__ = [
    "WARNING_RATIO",
    "derive_state",
    "AccountData",
    "ChainData",
    "CompetitionData",
    "FillsData",
    "LiquidationData",
    "ListingsData",
    "OpenOrders",
    "OrdersData",
]


class ChainData(StreamData):
    """An options chain: rows keyed by (expiry, strike), each with its call and put."""

    channel = Channel.OPTIONS_CHAIN

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[int, Decimal], ChainRow] = {}

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, ChainRow):
            self.rows[(event.expiry_s, Decimal(event.strike))] = event
        elif isinstance(event, ChainRemoval):
            key = (event.expiry_s, Decimal(event.strike))
            row = self.rows.get(key)
            if row is None:
                return
            if event.option_type == "call":
                row.call = None
            else:
                row.put = None
            if row.call is None and row.put is None:
                del self.rows[key]
        else:
            return
        self.generation += 1

    def expiries(self) -> list[int]:
        return sorted({expiry for expiry, _ in self.rows})

    def leg(self, symbol: str) -> ChainLeg | None:
        """The call or put named ``symbol``, wherever it is in the chain."""
        for row in self.rows.values():
            for leg in (row.call, row.put):
                if leg is not None and leg.symbol == symbol:
                    return leg
        return None

    def rows_for(self, expiry_s: int) -> list[ChainRow]:
        """The expiry's rows by ascending strike."""
        return [self.rows[key] for key in sorted(key for key in self.rows if key[0] == expiry_s)]

    def clear(self) -> None:
        self.rows.clear()
        super().clear()


class ListingsData(StreamData):
    """The most recent market listing changes, newest last."""

    channel = Channel.LISTINGS
    empty_is_current = True  # no listing change yet is the current news

    def __init__(self, maxlen: int = 200) -> None:
        super().__init__()
        self.changes: deque[Listing] = deque(maxlen=maxlen)

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, Listing):
            self.changes.append(event)
            self.generation += 1


class AccountData(StreamData):
    """Positions, margin and Greeks of one account on one venue.

    Not :attr:`complete` until a full set of positions has arrived: a position update alone says
    nothing about the positions it does not name.
    """

    channel = Channel.POSITIONS

    def __init__(self, expired_maxlen: int = 50) -> None:
        super().__init__()
        self.positions: dict[str, Position] = {}
        self.margin: Margin | None = None
        self.greeks: dict[str, LegGreeks] = {}
        self.greeks_time_ms: int | None = None
        self.expired: deque[PositionExpired] = deque(maxlen=expired_maxlen)
        self.has_positions = False

    @property
    def complete(self) -> bool:
        return self.has_positions

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, Positions):
            if event.replace:
                self.positions = {}
                self.has_positions = True
            for position in event.positions:
                if Decimal(position.size) == 0:
                    self.positions.pop(position.market, None)
                else:
                    self.positions[position.market] = position
        elif isinstance(event, Margin):
            self.margin = event
        elif isinstance(event, Greeks):
            self.greeks = {leg.market: leg for leg in event.legs}
            self.greeks_time_ms = event.time_ms
        elif isinstance(event, PositionExpired):
            self.expired.append(event)
            self.positions.pop(event.market, None)
            self.greeks.pop(event.market, None)
        else:
            return
        self.generation += 1

    def clear(self) -> None:
        self.positions = {}
        self.margin = None
        self.greeks = {}
        self.has_positions = False
        super().clear()


class LiquidationData(StreamData):
    """The venue's own liquidation state of the account, as its last change said.

    ``since`` is when the state was entered (``time.time()`` seconds, the venue's timestamp where
    it sent one), for "time in state". ``transitions`` counts changes, so a reader notices one
    even between two of its refreshes.
    """

    channel = Channel.LIQUIDATION
    empty_is_current = True  # the venue speaks only on a change: silence is no news

    def __init__(self) -> None:
        super().__init__()
        self.last: LiquidationChange | None = None
        self.since: float | None = None
        self.transitions = 0

    @property
    def state(self) -> LiquidationState | None:
        return None if self.last is None else self.last.state

    def in_force(self, now: float) -> LiquidationChange | None:
        """The last change while it holds at ``now`` (``time.time()`` seconds): a stated state
        until the next change, an event (``lasts``) only for that long after it came."""
        last = self.last
        if last is not None and last.lasts is not None and now >= (self.since or 0) + last.lasts:
            return None
        return last

    def apply(self, event: MarketEvent) -> None:
        if not isinstance(event, LiquidationChange):
            return
        if self.last is None or event.state is not self.last.state:
            self.since = time.time() if event.time_ms is None else event.time_ms / 1000
            self.transitions += 1
        self.last = event
        self.generation += 1

    def clear(self) -> None:
        # A reconnect does not undo a liquidation event (shown for its ``lasts``): keep it. A
        # stated state holds only until the venue's next change, and a change missed while
        # disconnected is not sent again: forget it, so margin speaks until the venue does.
        if self.last is not None and self.last.lasts is None:
            self.last = self.since = None
            self.generation += 1


class FillsData(StreamData):
    """The account's most recent fills, newest last, each once."""

    channel = Channel.FILLS
    empty_is_current = True

    def __init__(self, maxlen: int = 200) -> None:
        super().__init__()
        self.fills: deque[Fill] = deque(maxlen=maxlen)
        self._seen: set[str] = set()

    def apply(self, event: MarketEvent) -> None:
        if not isinstance(event, Fills):
            return
        fresh = [fill for fill in sorted(event.fills, key=lambda f: f.time_ms) if fill.fill_id not in self._seen]
        if not fresh:
            return
        for fill in fresh:
            if len(self.fills) == self.fills.maxlen:
                self._seen.discard(self.fills[0].fill_id)
            self.fills.append(fill)
            self._seen.add(fill.fill_id)
        self.generation += 1

    def clear(self) -> None:
        pass  # fills are history: a resubscribe's snapshot repeats them and is deduplicated


@dataclass(slots=True)
class OpenOrders(OrderUpdates):
    """Every order the venue holds open (a REST snapshot): an order we held open when the socket
    dropped that is not among them, and not heard of since, ended while we were away."""


class OrdersData(StreamData):
    """The account's orders by id, latest status each; a partial update keeps what it omits."""

    channel = Channel.ORDERS
    empty_is_current = True
    DONE = frozenset({"filled", "canceled", "cancelled", "rejected", "expired", "closed"})

    def __init__(self, maxlen: int = 200) -> None:
        super().__init__()
        self.orders: dict[str, OrderUpdate] = {}
        self._maxlen = maxlen
        self._unconfirmed: set[str] = set()  # open when the socket dropped, not heard of since

    def apply(self, event: MarketEvent) -> None:
        if not isinstance(event, OrderUpdates):
            return
        if isinstance(event, OpenOrders):
            for order_id in self._unconfirmed - {update.order_id for update in event.orders}:
                held = self.orders.get(order_id)
                if held is not None and held.status not in self.DONE:
                    # Filled or canceled, the snapshot does not say which: no longer open.
                    self.orders[order_id] = replace(held, status="closed", reason="ended while disconnected")
            self._unconfirmed.clear()
        for update in event.orders:
            self._unconfirmed.discard(update.order_id)
            held = self.orders.pop(update.order_id, None)
            if held is not None:
                for name in OrderUpdate.__slots__:
                    if getattr(update, name) is None:
                        setattr(update, name, getattr(held, name))
            self.orders[update.order_id] = update  # re-inserted: the dict is oldest change first
        while len(self.orders) > self._maxlen:
            del self.orders[next(iter(self.orders))]
        self.generation += 1

    def open_orders(self) -> list[OrderUpdate]:
        return [order for order in self.orders.values() if order.status not in self.DONE]

    def clear(self) -> None:
        # Order history outlives a reconnect; statuses are updated by what follows, and the orders
        # open now are confirmed by the venue's open-orders snapshot (where it has one).
        self._unconfirmed = {order_id for order_id, order in self.orders.items() if order.status not in self.DONE}


class CompetitionData(StreamData):
    channel = Channel.COMPETITION

    def __init__(self) -> None:
        super().__init__()
        self.summary: CompetitionSummary | None = None

    def apply(self, event: MarketEvent) -> None:
        if isinstance(event, CompetitionSummary):
            self.summary = event
            self.generation += 1


ACCOUNT_STATE_TYPES: tuple[type[StreamData], ...] = (
    ChainData,
    ListingsData,
    AccountData,
    LiquidationData,
    FillsData,
    OrdersData,
    CompetitionData,
)
