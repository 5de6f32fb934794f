"""Values at the edges of what strict decoding lets through never crash a widget: the longest
decimals, the tiniest and the hugest sizes and prices, a name of the maximum length. Each is
decoded by the real adapter first, so what is drawn is exactly what could reach the screen."""

from __future__ import annotations

import orjson
import pytest

from app.model import BookSnapshot, CandleHistory, Channel, StreamKey, Trades, Venue
from app.rest import RestClient
from app.state import Stream
from app.venues.base import Data, Endpoint
from app.venues.fields import MAX_DECIMAL_CHARS, MAX_NAME_CHARS
from app.venues.hyperliquid import HyperliquidAdapter
from tests.widget_harness import OneWidgetApp, lines
from widgets import CandleChart, OrderBookView, TradeTapeView

T0 = 1_700_000_000_000
TINY = "0." + "0" * (MAX_DECIMAL_CHARS - 3) + "1"  # the smallest positive value allowed
HUGE = "9" * MAX_DECIMAL_CHARS  # the largest
LONG = "1." + "3" * (MAX_DECIMAL_CHARS - 2)  # the most decimals
NAME = "X" * MAX_NAME_CHARS

CASES = {
    "tiny": (TINY, TINY),
    "huge": (HUGE, HUGE),
    "long decimals": (LONG, LONG),
    "tiny price, huge size": (TINY, HUGE),
}


def decode(frame: dict) -> object:
    adapter = HyperliquidAdapter(Endpoint("ws://x", "http://x"), RestClient("http://x"))
    (item,) = adapter.decode(orjson.dumps(frame))
    assert isinstance(item, Data)
    return item.event


def fed(channel: Channel, *events: object, **params: str) -> Stream:
    stream = Stream(StreamKey(Venue.HYPERLIQUID, channel, NAME, tuple(params.items())))
    for event in events:
        stream.data.apply(event)  # type: ignore[arg-type]
    stream.state = stream.state.LIVE
    stream.last_data_at = 1.0
    return stream


def book(price: str, size: str) -> BookSnapshot:
    """Bids at ``price`` (one digit less when it is the largest), asks at the largest price."""
    bid = price if price != HUGE else HUGE[1:]
    levels = [[{"px": bid, "sz": size, "n": 1}], [{"px": HUGE, "sz": size, "n": 1}]]
    event = decode({"channel": "l2Book", "data": {"coin": NAME, "time": T0, "levels": levels}})
    assert isinstance(event, BookSnapshot)
    return event


@pytest.mark.parametrize("width", [20, 44, 120])
@pytest.mark.parametrize("case", list(CASES))
async def test_book_tape_and_chart_draw_extreme_values(case: str, width: int) -> None:
    price, size = CASES[case]
    trades = decode({"channel": "trades", "data": [
        {"coin": NAME, "side": side, "px": price, "sz": size, "time": T0 + i, "tid": i, "hash": "0x0"}
        for i, side in enumerate("BABA")
    ]})  # fmt: skip
    assert isinstance(trades, Trades)
    bar = {"t": T0, "T": T0 + 59_999, "s": NAME, "i": "1m", "o": price, "h": price, "l": price, "c": price, "v": size, "n": 1}
    candle = decode({"channel": "candle", "data": bar})
    views = [
        OrderBookView(fed(Channel.BOOK, book(price, size))),
        TradeTapeView(fed(Channel.TRADES, trades)),
        CandleChart(fed(Channel.CANDLES, CandleHistory(NAME, "1m", [candle]), interval="1m")),  # type: ignore[list-item]
    ]
    for view in views:
        async with OneWidgetApp(view).run_test(size=(width, 16)) as pilot:
            await pilot.pause()
            shown = lines(view)
        assert all(len(line) == width for line in shown), (case, type(view).__name__)
        assert "XXXX" in shown[0]  # the title still shows (cut to fit)
