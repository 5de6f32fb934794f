"""An exact limit order book: full snapshots, level deltas, best prices and top-N reads.

Keys are :class:`~decimal.Decimal` prices (exact; ``float`` keys merge or split levels), values the
venue's size strings, so nothing is rounded before display. Each side keeps a dict for O(1) level
updates plus an ascending, bisect-maintained price list so that reading the top of a deep book costs
O(N) per frame rather than a sort per message (see the limits research: re-sorting a 1000-level
dict per message is 30x slower).

A crossed book (best bid >= best ask) is never presented as truth: :attr:`OrderBook.crossed` tells
the stream to resync, and the widget shows it as resyncing.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from app.model import Level

_ZERO = Decimal(0)


class BookError(ValueError):
    """The venue sent a level the book cannot hold (bad number, duplicate price, negative size)."""


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        raise BookError(f"{what} is not a decimal: {text!r}") from None
    if not value.is_finite() or value < _ZERO:
        raise BookError(f"{what} out of range: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class DepthLevel:
    """One displayed level: exact price, size and cumulative size from the best price."""

    price: Decimal
    size: Decimal
    total: Decimal


class _Side:
    """One side of the book; ``descending`` is True for bids (best = highest)."""

    __slots__ = ("descending", "sizes", "prices")

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.sizes: dict[Decimal, str] = {}
        self.prices: list[Decimal] = []  # ascending

    def replace(self, levels: Iterable[Level]) -> None:
        sizes: dict[Decimal, str] = {}
        for price_text, size_text in levels:
            price = _decimal(price_text, "price")
            if _decimal(size_text, "size") == _ZERO:
                continue
            if price in sizes:
                raise BookError(f"duplicate price in snapshot: {price_text!r}")
            sizes[price] = size_text
        self.sizes = sizes
        # Venues usually send best first; sorting an already ordered list is linear in CPython.
        self.prices = sorted(sizes)

    def update(self, price_text: str, size_text: str) -> None:
        price = _decimal(price_text, "price")
        if _decimal(size_text, "size") == _ZERO:
            if self.sizes.pop(price, None) is not None:
                del self.prices[bisect_left(self.prices, price)]
            return
        if price not in self.sizes:
            insort(self.prices, price)
        self.sizes[price] = size_text

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.descending else self.prices[0]

    def top(self, depth: int) -> list[DepthLevel]:
        if self.descending:
            prices = self.prices[: -depth - 1 : -1] if depth else []
        else:
            prices = self.prices[:depth]
        out: list[DepthLevel] = []
        total = _ZERO
        for price in prices:
            size = Decimal(self.sizes[price])
            total += size
            out.append(DepthLevel(price, size, total))
        return out

    def levels(self) -> list[Level]:
        prices = reversed(self.prices) if self.descending else self.prices
        return [(str(price), self.sizes[price]) for price in prices]


class OrderBook:
    """Both sides of one market's book, plus the venue time and sequence of the last update."""

    __slots__ = ("bids", "asks", "time_ms", "sequence")

    def __init__(self) -> None:
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)
        self.time_ms: int | None = None
        self.sequence: int | None = None

    def replace(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        time_ms: int | None = None,
        sequence: int | None = None,
    ) -> None:
        """Replace the whole book (a snapshot). Levels may come in any order."""
        self.bids.replace(bids)
        self.asks.replace(asks)
        self.time_ms = time_ms
        self.sequence = sequence

    def apply(
        self,
        bids: Iterable[Level],
        asks: Iterable[Level],
        time_ms: int | None = None,
        sequence: int | None = None,
    ) -> None:
        """Apply level changes (new absolute sizes; size zero deletes)."""
        for price, size in bids:
            self.bids.update(price, size)
        for price, size in asks:
            self.asks.update(price, size)
        if time_ms is not None:
            self.time_ms = time_ms
        if sequence is not None:
            self.sequence = sequence

    def clear(self) -> None:
        self.replace((), ())

    @property
    def best_bid(self) -> Decimal | None:
        return self.bids.best()

    @property
    def best_ask(self) -> Decimal | None:
        return self.asks.best()

    @property
    def spread(self) -> Decimal | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask - bid

    @property
    def mid(self) -> Decimal | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else (bid + ask) / 2

    @property
    def crossed(self) -> bool:
        """True when best bid >= best ask: the book is wrong and must be resynced."""
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid >= ask

    @property
    def empty(self) -> bool:
        return not self.bids.prices and not self.asks.prices

    def top(self, depth: int) -> tuple[list[DepthLevel], list[DepthLevel]]:
        """Best ``depth`` levels per side, best first, with cumulative size."""
        return self.bids.top(depth), self.asks.top(depth)

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Every level as (price, size) strings, best first: for comparisons and dumps."""
        return self.bids.levels(), self.asks.levels()
