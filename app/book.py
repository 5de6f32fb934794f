"""An exact limit order book: full snapshots, level deltas, best prices and top-N reads.

Keys are :class:`~decimal.Decimal` prices (exact; ``float`` keys merge or split levels), values the
venue's size strings, so nothing is rounded before display. Each side is kept sorted (bisect on
update) so that reading the top of a deep book costs O(N) per frame rather than a sort per message
(the limits research: re-sorting a 1000-level dict per message is 30x slower).

A crossed book (best bid >= best ask) is never presented as truth: :attr:`OrderBook.crossed` tells
the stream to resync, and the widget shows it as resyncing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import islice

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
    """One side of the book; ``descending`` is True for bids (best = highest).

    Two aligned lists, ascending by price: exact ``Decimal`` prices and the venue's size strings.
    No dict: hashing a ``Decimal`` costs more than a bisect over a few hundred levels, and a
    snapshot, the common case, then needs no per-level Python work beyond the conversion.
    """

    __slots__ = ("descending", "prices", "sizes")

    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.prices: list[Decimal] = []
        self.sizes: list[str] = []

    def replace(self, levels: Iterable[Level]) -> None:
        levels = list(levels)
        if not levels:
            self.prices, self.sizes = [], []
            return
        # Whole-list conversions and min/max run in C: a 20-level side costs a few microseconds.
        price_texts, size_texts = zip(*levels)
        try:
            prices = list(map(Decimal, price_texts))
            sizes = list(map(Decimal, size_texts))
            lowest_size = min(sizes)
            in_range = min(prices) > _ZERO and lowest_size >= _ZERO  # NaN raises here
            in_range = in_range and max(prices).is_finite() and max(sizes).is_finite()
        except (InvalidOperation, TypeError, ValueError):
            raise BookError(f"level is not a decimal: {levels[:3]!r}") from None
        if not in_range:
            raise BookError(f"level out of range: {levels[:3]!r}")
        texts = list(size_texts)
        if lowest_size == _ZERO:
            kept = [i for i, size in enumerate(sizes) if size]
            prices, texts = [prices[i] for i in kept], [texts[i] for i in kept]
        pairs = list(zip(prices, prices[1:]))
        if all(a < b for a, b in pairs):
            pass
        elif all(a > b for a, b in pairs):  # best-first bids, as most venues send them
            prices.reverse()
            texts.reverse()
        else:
            order = sorted(range(len(prices)), key=prices.__getitem__)
            prices, texts = [prices[i] for i in order], [texts[i] for i in order]
            if any(a == b for a, b in zip(prices, prices[1:])):
                raise BookError("duplicate price in snapshot")
        self.prices, self.sizes = prices, texts

    def update(self, price_text: str, size_text: str) -> None:
        price = _decimal(price_text, "price")
        size = _decimal(size_text, "size")
        prices = self.prices
        i = bisect_left(prices, price)
        exists = i < len(prices) and prices[i] == price
        if size == _ZERO:
            if exists:
                del prices[i]
                del self.sizes[i]
        elif exists:
            self.sizes[i] = size_text
        else:
            prices.insert(i, price)
            self.sizes.insert(i, size_text)

    def best(self) -> Decimal | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.descending else self.prices[0]

    def _best_first(self) -> Iterable[int]:
        count = len(self.prices)
        return range(count - 1, -1, -1) if self.descending else range(count)

    def top(self, depth: int) -> list[DepthLevel]:
        out: list[DepthLevel] = []
        total = _ZERO
        for i in islice(self._best_first(), depth):
            size = Decimal(self.sizes[i])
            total += size
            out.append(DepthLevel(self.prices[i], size, total))
        return out

    def levels(self) -> list[Level]:
        return [(str(self.prices[i]), self.sizes[i]) for i in self._best_first()]


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
