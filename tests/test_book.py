"""The order book: exact keys, snapshot/delta semantics, top-N with cumulative size, crossing."""

from decimal import Decimal

import pytest

from app.book import BookError, OrderBook
from app.model import BookSnapshot, Channel, StreamKey, Venue
from app.state import BookData, ResyncNeeded


def test_snapshot_replaces_everything_and_orders_best_first():
    book = OrderBook()
    book.replace([("100.5", "1"), ("100.0", "2")], [("101.0", "3")])
    book.replace([("99.0", "5"), ("99.5", "1")], [("100.5", "2"), ("100.25", "1")])
    assert book.levels() == ([("99.5", "1"), ("99.0", "5")], [("100.25", "1"), ("100.5", "2")])
    assert book.best_bid == Decimal("99.5") and book.best_ask == Decimal("100.25")
    assert book.spread == Decimal("0.75") and book.mid == Decimal("99.875")


def test_keys_are_exact_decimals_not_floats():
    book = OrderBook()
    # 0.1 + 0.2 style prices that collide or split as floats stay distinct and exact.
    book.replace([("0.30000000000000004", "1"), ("0.3", "2")], [])
    assert len(book.bids.prices) == 2
    book.apply([("0.3000", "0")], [])  # same price, other spelling, deletes the level
    assert book.levels()[0] == [("0.30000000000000004", "1")]


def test_delta_updates_deletes_and_inserts():
    book = OrderBook()
    book.replace([("10", "1"), ("9", "1")], [("11", "1"), ("12", "1")])
    book.apply([("10", "0"), ("9.5", "4")], [("11", "2.5"), ("13", "1")], sequence=7)
    assert book.levels() == ([("9.5", "4"), ("9", "1")], [("11", "2.5"), ("12", "1"), ("13", "1")])
    assert book.sequence == 7


def test_top_with_cumulative_size():
    book = OrderBook()
    book.replace([("10", "1.5"), ("9", "2"), ("8", "3")], [("11", "1"), ("12", "0.25")])
    bids, asks = book.top(2)
    assert [(b.price, b.size, b.total) for b in bids] == [
        (Decimal(10), Decimal("1.5"), Decimal("1.5")),
        (Decimal(9), Decimal(2), Decimal("3.5")),
    ]
    assert [a.total for a in asks] == [Decimal(1), Decimal("1.25")]
    assert book.top(0) == ([], [])


@pytest.mark.parametrize(
    "bids",
    [[("abc", "1")], [("1", "-2")], [("NaN", "1")], [("1", "1"), ("1.0", "2")]],
)
def test_bad_levels_are_rejected(bids):
    with pytest.raises(BookError):
        OrderBook().replace(bids, [])


def test_crossed_book_asks_for_resync():
    data = BookData()
    with pytest.raises(ResyncNeeded):
        data.apply(BookSnapshot("BTC", [("101", "1")], [("100", "1")]))
    assert data.book.crossed


def test_stream_key_params_are_hashable_and_ordered():
    a = StreamKey(Venue.HYPERLIQUID, Channel.BOOK, "BTC", (("fast", True), ("nSigFigs", 5)))
    assert a.param("nSigFigs") == 5 and a.param("missing", 1) == 1
    assert str(a) == "hyperliquid:book:BTC[fast=True,nSigFigs=5]"
