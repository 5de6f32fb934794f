"""SVG snapshots of the widgets with fixed data, size and clock, to catch layout regressions.

Update the baselines deliberately (``python -m pytest tests/test_widgets_snapshot.py
--snapshot-update``) and look at the report before committing them.
"""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical

from app.model import (
    BookSnapshot,
    Candle,
    CandleHistory,
    Channel,
    ConnectionHealth,
    ConnectionState,
    Side,
    StreamState,
    Trade,
    Trades,
    Venue,
)
from app.state import Stream
from tests.widget_harness import hyperliquid_key, stream_with
from widgets import CandleChart, OrderBookView, StatusBar, TradeTapeView

T0 = 1_700_000_000_000
FIXED_CLOCK = 1_000.0


def fixed_clock() -> float:
    return FIXED_CLOCK


def stream(channel: Channel, state: StreamState, event: object, **params: str) -> Stream:
    key = hyperliquid_key(channel, **params)
    return stream_with(key, event, state=state, last_data_at=FIXED_CLOCK - 14.2)


def book(state: StreamState = StreamState.LIVE) -> Stream:
    bids = [(f"{65000 - 0.5 * i:.1f}", f"{0.125 * (i % 7 + 1):.3f}") for i in range(15)]
    asks = [(f"{65000.5 + 0.5 * i:.1f}", f"{0.25 * (i % 5 + 1):.2f}") for i in range(15)]
    return stream(Channel.BOOK, state, BookSnapshot("BTC", bids=bids, asks=asks))


def tape(state: StreamState = StreamState.LIVE) -> Stream:
    trades = [
        Trade(
            "BTC",
            f"{65000 + (i % 5) * 0.5:.1f}",
            f"{0.01 * (1 + i % 9):.3f}",
            Side.BUY if i % 3 else Side.SELL,
            T0 + i * 731,
            str(i),
        )
        for i in range(30)
    ]
    trades.append(Trade("BTC", "65001.5", "4.2", Side.BUY, T0 + 30 * 731, "whale"))
    return stream(Channel.TRADES, state, Trades("BTC", trades))


def chart(state: StreamState = StreamState.LIVE) -> Stream:
    candles = []
    price = 65000
    for i in range(60):
        close = price + (7 * i % 11) - 5
        candles.append(
            Candle("BTC", "1m", T0 + i * 60_000, T0 + (i + 1) * 60_000 - 1, str(price),
                   str(max(price, close) + 3), str(min(price, close) - 3), str(close), "1")
        )  # fmt: skip
        price = close
    return stream(Channel.CANDLES, state, CandleHistory("BTC", "1m", candles), interval="1m")


def health() -> list[ConnectionHealth]:
    live = ConnectionHealth(
        Venue.HYPERLIQUID, "hyperliquid#1", ConnectionState.LIVE, data_age=0.2, message_rate=42
    )
    live.reconnects = 1
    return [
        live,
        ConnectionHealth(Venue.ASTER, "aster#1", ConnectionState.RECONNECTING, retry_in=3),
    ]


class BookAndTape(App[None]):
    CSS = """
    OrderBookView { width: 42; border: round $primary; }
    TradeTapeView { width: 1fr; border: round $primary; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield OrderBookView(book(), clock=fixed_clock)
            yield TradeTapeView(tape(), clock=fixed_clock)
        yield StatusBar(health, hint="? help  q quit")


class Degraded(App[None]):
    """A stale book, a resyncing tape and a live chart: the states a trader must not misread."""

    CSS = """
    OrderBookView { width: 36; border: round $primary; }
    CandleChart { border: round $primary; }
    TradeTapeView { border: round $primary; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield OrderBookView(book(StreamState.STALE), clock=fixed_clock)
            with Vertical():
                yield CandleChart(chart(), clock=fixed_clock)
                yield TradeTapeView(tape(StreamState.RESYNCING), clock=fixed_clock)


def test_book_and_tape_snapshot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(BookAndTape(), terminal_size=(90, 24))


def test_degraded_states_snapshot(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(Degraded(), terminal_size=(100, 30))
