"""The book sync rules of BookData: buffering before the snapshot, dropping what it covers, the
straddle of the first update, the chain after it, and that any break asks for a resync of this
book alone. Live fault tests over sockets are in the venue emulator suites."""

from __future__ import annotations

import pytest

from app.model import BookDelta, BookSnapshot
from app.state import BookData, BookSync, ResyncNeeded


def delta(first: int, last: int, previous: int | None = None, bids=(), asks=()) -> BookDelta:
    return BookDelta("BTCUSDT", list(bids), list(asks), None, first, last, previous)


def snapshot(last_id: int | None, bids=(("100", "1"),), asks=(("101", "1"),)) -> BookSnapshot:
    return BookSnapshot("BTCUSDT", list(bids), list(asks), None, last_id)


def test_perp_chain_buffers_drops_covered_and_straddles() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(delta(90, 95, 89, bids=[("99", "5")]))  # covered by the snapshot: dropped
    data.apply(delta(96, 104, 95, bids=[("100", "2")]))  # straddles 100
    data.apply(delta(105, 110, 104, asks=[("101", "0"), ("102", "3")]))
    assert not data.complete and data.book.empty  # all buffered, nothing shown
    data.apply(snapshot(100))
    assert data.complete
    assert data.book.levels() == ([("100", "2")], [("102", "3")])
    data.apply(delta(111, 111, 110, bids=[("100.5", "1")]))
    assert data.book.best_bid is not None and str(data.book.best_bid) == "100.5"


def test_perp_chain_break_is_a_gap() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(snapshot(100))
    data.apply(delta(99, 101, 98))
    with pytest.raises(ResyncNeeded, match="gap"):
        data.apply(delta(103, 104, 102))  # pu 102 != last u 101: one update was lost
    assert data.gaps == 1


def test_first_update_must_straddle_the_snapshot() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(snapshot(100))
    with pytest.raises(ResyncNeeded, match="straddle"):
        data.apply(delta(105, 110, 104))  # updates 101-104 are in neither


def test_spot_chain_is_previous_last_plus_one() -> None:
    data = BookData(BookSync.CHAIN_NEXT)
    data.apply(delta(95, 100))  # u == lastUpdateId: covered on spot
    data.apply(delta(101, 103, bids=[("100", "4")]))
    data.apply(snapshot(100))
    assert data.book.levels()[0] == [("100", "4")]
    data.apply(delta(104, 104))
    with pytest.raises(ResyncNeeded, match="gap"):
        data.apply(delta(106, 107))


def test_snapshot_then_deltas_waits_for_the_snapshot() -> None:
    data = BookData(BookSync.SNAPSHOT_THEN_DELTAS)
    data.apply(delta(0, 0, bids=[("0.4", "10")]))  # before any book: ignored, not a one-level book
    assert data.book.empty and not data.complete
    data.apply(snapshot(None, bids=[("0.5", "1")], asks=[("0.6", "1")]))
    data.apply(BookDelta("m", [("0.5", "0"), ("0.55", "2")], []))
    assert data.book.levels() == ([("0.55", "2")], [("0.6", "1")])


def test_clear_starts_over_with_buffering() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(snapshot(100))
    data.clear()
    assert not data.complete and data.book.empty
    data.apply(delta(120, 125, 119))
    assert data.book.empty  # buffered until the next snapshot
    data.apply(snapshot(122))
    assert data.complete


def test_buffer_is_bounded() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS, buffer_limit=3)
    for i in range(3):
        data.apply(delta(i, i, i - 1))
    with pytest.raises(ResyncNeeded, match="no snapshot"):
        data.apply(delta(3, 3, 2))


def test_snapshot_without_sequence_cannot_start_a_chain() -> None:
    with pytest.raises(ResyncNeeded, match="sequence"):
        BookData(BookSync.CHAIN_PREVIOUS).apply(snapshot(None))


def test_updates_arriving_after_a_newer_snapshot_are_dropped_until_one_straddles() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(snapshot(100, bids=[("100", "1")]))
    data.apply(delta(90, 95, 89, bids=[("100", "9")]))  # the stream lags the snapshot: covered
    assert data.book.levels()[0] == [("100", "1")]
    data.apply(delta(96, 101, 95, bids=[("100", "2")]))
    assert data.book.levels()[0] == [("100", "2")]


def test_perp_first_update_may_start_after_the_snapshot_when_pu_is_in_it() -> None:
    """Perp ids are shared by every symbol: a quiet book's next update starts well after L."""
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(snapshot(100))
    data.apply(delta(150, 152, 100, bids=[("100", "3")]))  # pu == L: nothing missing
    assert data.book.levels()[0] == [("100", "3")]
    data.apply(delta(150, 152, 100, bids=[("100", "3")]))  # the same update again: dropped, not a gap
    assert data.gaps == 0


def test_perp_first_update_after_a_missing_one_is_a_gap() -> None:
    data = BookData(BookSync.CHAIN_PREVIOUS)
    data.apply(snapshot(100))
    with pytest.raises(ResyncNeeded, match="straddle"):
        data.apply(delta(150, 152, 120))  # pu 120 > L: the update 101-120 is in neither


def test_socket_sequenced_drops_what_came_before_its_snapshot_and_chains_after() -> None:
    data = BookData(BookSync.SOCKET_SEQUENCED)
    data.apply(delta(57, 57, bids=[("99", "9")]))  # an earlier subscription's: not buffered
    data.apply(snapshot(1))
    assert data.complete and data.book.levels() == ([("100", "1")], [("101", "1")])
    data.apply(delta(2, 2, bids=[("100", "3")]))
    with pytest.raises(ResyncNeeded, match="gap"):
        data.apply(delta(4, 4, asks=[("101", "0")]))
    data.clear()
    data.apply(snapshot(1, bids=(("98", "1"),)))  # a new subscription counts from 1 again
    assert data.book.levels() == ([("98", "1")], [("101", "1")])


def test_an_update_sent_twice_is_dropped_unless_it_changed() -> None:
    data = BookData(BookSync.SOCKET_SEQUENCED)
    data.apply(snapshot(1))
    data.apply(delta(2, 2, bids=[("100", "3")]))
    data.apply(delta(2, 2, bids=[("100", "3")]))  # a duplicate: nothing new
    data.apply(delta(1, 1, bids=[("100", "7")]))  # older than the book: late, dropped
    assert data.book.levels() == ([("100", "3")], [("101", "1")]) and data.gaps == 0
    with pytest.raises(ResyncNeeded, match="twice with different levels"):
        data.apply(delta(2, 2, bids=[("100", "5")]))  # the same number, other levels: one is false
    assert data.gaps == 1
