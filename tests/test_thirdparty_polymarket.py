"""The official ``py-clob-client`` against the Polymarket emulator, with only its host changed.

Its public (level 0) methods must parse every answer unchanged and agree with the emulator's state;
its own "server-compatible" book hash must reproduce the hash the emulator sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

pytest.importorskip("py_clob_client.client")

from py_clob_client.clob_types import BookParams  # noqa: E402
from py_clob_client.client import ClobClient  # noqa: E402
from py_clob_client.constants import END_CURSOR  # noqa: E402

from app.sim.engine import DEFAULT_START_MS  # noqa: E402
from app.sim.polymarket import PolymarketEmulator  # noqa: E402
from app.sim.runner import EmulatorThread  # noqa: E402

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def emus() -> Iterator[EmulatorThread]:
    """A still market (the clock moves only when a test advances it), so calls can be compared."""
    with EmulatorThread(["polymarket"], seed=31, autostep=False, start_ms=DEFAULT_START_MS) as thread:
        thread.run(thread["polymarket"].advance(5_000))
        yield thread


@pytest.fixture(scope="module")
def pm(emus: EmulatorThread) -> PolymarketEmulator:
    server = emus["polymarket"]
    assert isinstance(server, PolymarketEmulator)
    return server


@pytest.fixture(scope="module")
def clob(pm: PolymarketEmulator) -> ClobClient:
    return ClobClient(host=pm.http_url + "/")


def test_order_book_parses_and_equals_the_emulator_book(emus: EmulatorThread, pm: PolymarketEmulator, clob: ClobClient) -> None:
    for token in pm.token_ids:
        book = clob.get_order_book(token)
        bids, asks = emus.call(pm.book, token)
        assert [(level.price, level.size) for level in reversed(book.bids)] == bids  # sent worst to best
        assert [(level.price, level.size) for level in reversed(book.asks)] == asks
        assert book.asset_id == token and book.neg_risk is False and book.min_order_size == "5"
        served_hash = book.hash
        assert clob.get_order_book_hash(book) == served_hash  # the SDK's own server-compatible hash


def test_order_books_in_one_call(pm: PolymarketEmulator, clob: ClobClient) -> None:
    tokens = pm.token_ids[:3]
    books = clob.get_order_books([BookParams(token_id=token) for token in tokens])
    assert [book.asset_id for book in books] == tokens


def test_prices_midpoint_spread_and_tick_size(emus: EmulatorThread, pm: PolymarketEmulator, clob: ClobClient) -> None:
    for token in pm.token_ids:
        (bid, _), (ask, _) = (side[0] for side in emus.call(pm.book, token))
        assert clob.get_price(token, "BUY") == {"price": bid}  # BUY: the best bid, as the docs say
        assert clob.get_price(token, "SELL") == {"price": ask}
        assert Decimal(clob.get_midpoint(token)["mid"]) == (Decimal(bid) + Decimal(ask)) / 2
        assert Decimal(clob.get_spread(token)["spread"]) == Decimal(ask) - Decimal(bid)
        assert clob.get_tick_size(token) == clob.get_order_book(token).tick_size
        assert clob.get_neg_risk(token) is False


def test_markets_pages_and_single_market(pm: PolymarketEmulator, clob: ClobClient) -> None:
    page = clob.get_markets()
    assert page["next_cursor"] == END_CURSOR and page["count"] == len(page["data"]) == len(pm.model.markets)
    listed = {token["token_id"] for market in page["data"] for token in market["tokens"]}
    assert listed == set(pm.token_ids)
    first = page["data"][0]
    assert clob.get_market(first["condition_id"]) == first
    assert str(first["minimum_tick_size"]) == clob.get_tick_size(first["tokens"][0]["token_id"])


def test_health_time_and_last_trade(pm: PolymarketEmulator, clob: ClobClient) -> None:
    assert clob.get_ok() == "OK"
    assert clob.get_server_time() == pm.now_ms() // 1000
    last = clob.get_last_trade_price(pm.token_ids[0])
    assert set(last) == {"price", "side"} and last["side"] in ("BUY", "SELL")


def test_tick_size_follows_a_change(emus: EmulatorThread, pm: PolymarketEmulator) -> None:
    clob = ClobClient(host=pm.http_url, tick_size_ttl=0)  # its cache would hide the change
    token = pm.token_ids[0]
    before = clob.get_tick_size(token)
    emus.run(pm.change_tick_size(token, "0.001" if before == "0.01" else "0.01"))
    after = clob.get_tick_size(token)
    assert {before, after} == {"0.01", "0.001"}
    assert clob.get_order_book(token).tick_size == after
