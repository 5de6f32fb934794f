"""The order-book ladder, mounted in a tiny app and read back line by line."""

from __future__ import annotations

from textual.strip import Strip

from app.model import BookDelta, BookSnapshot, Channel, StreamState
from app.state import Stream
from tests.widget_harness import OneWidgetApp, hyperliquid_key, lines, row_of, stream_with, style_at
from widgets import OrderBookView

BIDS = [("65000.0", "1.5"), ("64999.5", "2"), ("64999", "0.25")]
ASKS = [("65000.5", "0.5"), ("65001", "3.125"), ("65002", "1")]


def book_stream(market: str = "BTC", state: StreamState = StreamState.LIVE) -> Stream:
    snapshot = BookSnapshot(market, bids=list(BIDS), asks=list(ASKS))
    return stream_with(hyperliquid_key(Channel.BOOK, market), snapshot, state=state)


async def test_best_prices_sit_either_side_of_the_spread_row() -> None:
    view = OrderBookView(book_stream())
    async with OneWidgetApp(view).run_test(size=(42, 12)) as pilot:
        await pilot.pause()
        shown = lines(view)
    spread_y = next(y for y, line in enumerate(shown) if "spread" in line)
    assert "65,000.5" in shown[spread_y - 1]  # best ask right above
    assert "65,000.0" in shown[spread_y + 1]  # best bid right below
    assert "65,002.0" in shown[spread_y - 3]  # worse asks further up
    assert "64,999.0" in shown[spread_y + 3]
    assert "0.5" in shown[spread_y] and "0.08 bps" in shown[spread_y]
    assert "mid 65,000.25" in shown[spread_y]
    assert shown[1].split() == ["Price", "Size", "Total"]
    assert "BTC · hyperliquid" in shown[0] and "LIVE" in shown[0]


async def test_cumulative_sizes_and_common_decimals() -> None:
    view = OrderBookView(book_stream())
    async with OneWidgetApp(view).run_test(size=(42, 12)) as pilot:
        await pilot.pause()
        shown = lines(view)
    cells = {line.split()[0]: line.split()[1:] for line in shown[2:] if line.strip()}
    # Sizes and totals share the most decimals among visible sizes (3 from "3.125").
    assert cells["65,000.5"] == ["0.500", "0.500"]
    assert cells["65,001.0"] == ["3.125", "3.625"]
    assert cells["65,002.0"] == ["1.000", "4.625"]
    assert cells["65,000.0"] == ["1.500", "1.500"]
    assert cells["64,999.5"] == ["2.000", "3.500"]
    assert cells["64,999.0"] == ["0.250", "3.750"]


async def test_fits_its_height_with_the_same_depth_per_side() -> None:
    bids = [(str(100 - i), "1") for i in range(50)]
    asks = [(str(101 + i), "1") for i in range(50)]
    snapshot = BookSnapshot("BTC", bids=bids, asks=asks)
    view = OrderBookView(stream_with(hyperliquid_key(Channel.BOOK), snapshot, last_data_at=None))
    async with OneWidgetApp(view).run_test(size=(40, 14)) as pilot:
        await pilot.pause()
        shown = lines(view)
    spread_y = next(y for y, line in enumerate(shown) if "spread" in line)
    asks_shown = [line for line in shown[2:spread_y] if line.strip()]
    bids_shown = [line for line in shown[spread_y + 1 :] if line.strip()]
    # 14 rows: header, column header, spread, and (14 - 3) // 2 = 5 levels a side.
    assert len(asks_shown) == len(bids_shown) == 5
    assert asks_shown[0].split()[0] == "105" and bids_shown[-1].split()[0] == "96"


async def test_depth_bar_is_a_background_proportional_to_the_total() -> None:
    view = OrderBookView(book_stream())
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        deepest = row_of(view, "64,999.0")  # total 3.750 of a deepest 4.625
        best_bid = row_of(view, "65,000.0")  # total 1.500
        bar = view.get_component_rich_style("orderbook--bar-bid").bgcolor
        bid_colour = view.get_component_rich_style("orderbook--bid").color

    def bar_cells(strip: Strip) -> int:
        return sum(
            len(segment.text) for segment in strip if segment.style and segment.style.bgcolor == bar
        )

    assert bar_cells(deepest) == round(40 * 3.75 / 4.625)
    assert bar_cells(best_bid) == round(40 * 1.5 / 4.625)
    assert style_at(best_bid, "65,000.0").color == bid_colour  # the bar does not recolour text


async def test_stale_book_is_dimmed_with_its_age_in_the_badge() -> None:
    stream = book_stream(state=StreamState.STALE)
    view = OrderBookView(stream, clock=lambda: 112.4)  # data arrived at 100.0
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        assert "STALE 12s" in view.render_line(0).text
        dim = view.get_component_rich_style("stream--dim")
        ask = row_of(view, "65,000.5")
        assert style_at(ask, "65,000.5").color == dim.color
        assert style_at(ask, "0.500").color == dim.color
        assert all(segment.style.bgcolor == view.rich_style.bgcolor for segment in ask)  # no bars


async def test_resyncing_book_hides_its_levels() -> None:
    view = OrderBookView(book_stream(state=StreamState.RESYNCING))
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        shown = "\n".join(lines(view))
    assert "RESYNCING" in shown and "resyncing…" in shown
    assert "65,000.5" not in shown


async def test_pending_error_and_unbound_placeholders() -> None:
    view = OrderBookView(book_stream(state=StreamState.PENDING))
    async with OneWidgetApp(view).run_test(size=(40, 8)) as pilot:
        await pilot.pause()
        assert "WAITING" in lines(view)[0] and "waiting for data" in lines(view)[1]

        errored = book_stream(state=StreamState.ERROR)
        errored.reason = "unknown coin \x1b[31mBTC"
        view.bind(errored)
        await pilot.pause()
        assert "ERROR" in lines(view)[0]
        assert lines(view)[1].strip() == "error: unknown coin BTC"

        view.bind(None)
        await pilot.pause()
        assert lines(view)[1].strip() == "no market"
        assert not lines(view)[0].strip()


async def test_no_rebuild_without_a_new_generation() -> None:
    stream = book_stream()
    view = OrderBookView(stream)
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        builds = view.body_builds
        await pilot.pause(0.35)  # several 10 Hz polls, nothing changed
        view.refresh()  # even a forced repaint is served from the cached strips
        await pilot.pause()
        assert view.body_builds == builds

        stream.data.apply(BookDelta("BTC", bids=[("65000.0", "9")], asks=[]))
        view.poll()
        await pilot.pause()
        assert view.body_builds == builds + 1
        assert row_of(view, "65,000.0").text.split()[1] == "9.000"

        stream.state = StreamState.STALE
        view.poll()
        await pilot.pause()
        assert view.body_builds == builds + 2  # a state change repaints too


async def test_a_ticking_stale_age_repaints_only_the_header() -> None:
    now = [105.0]
    view = OrderBookView(book_stream(state=StreamState.STALE), clock=lambda: now[0])
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        builds = view.body_builds
        now[0] = 107.0
        view.poll()
        await pilot.pause()
        assert "STALE 7s" in view.render_line(0).text
        assert view.body_builds == builds


async def test_hostile_market_name_is_displayed_inert() -> None:
    view = OrderBookView(book_stream(market="[red]X[/red]\x1b]0;pwned\x07"))
    async with OneWidgetApp(view).run_test(size=(44, 10)) as pilot:
        await pilot.pause()
        header = view.render_line(0)
    assert "[red]X[/red] · hyperliquid" in header.text
    assert "pwned" not in header.text and "\x1b" not in header.text and "\x07" not in header.text


async def test_title_given_to_bind_replaces_the_market_name() -> None:
    view = OrderBookView()
    async with OneWidgetApp(view).run_test(size=(44, 10)) as pilot:
        view.bind(book_stream(market="@107"), title="HYPE/USDC\u202e")
        await pilot.pause()
        assert view.render_line(0).text.split()[0] == "HYPE/USDC"


async def test_theme_change_redraws_with_the_new_colours() -> None:
    view = OrderBookView(book_stream())
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        app = pilot.app
        app.theme = "textual-dark"
        await pilot.pause()
        before = style_at(row_of(view, "65,000.5"), "65,000.5").color
        app.theme = "dracula"
        await pilot.pause()
        after = style_at(row_of(view, "65,000.5"), "65,000.5").color
    assert before != after
    assert after == view.get_component_rich_style("orderbook--ask").color


async def test_one_sided_and_empty_books() -> None:
    one_sided = BookSnapshot("BTC", bids=list(BIDS), asks=[])
    stream = stream_with(hyperliquid_key(Channel.BOOK), one_sided, last_data_at=None)
    view = OrderBookView(stream)
    async with OneWidgetApp(view).run_test(size=(40, 12)) as pilot:
        await pilot.pause()
        shown = lines(view)
        spread_y = next(y for y, line in enumerate(shown) if "no asks" in line)
        assert "65,000.0" in shown[spread_y + 1]
        assert not any(line.strip() for line in shown[2:spread_y])

        stream.data.clear()
        view.poll()
        await pilot.pause()
        assert lines(view)[1].strip() == "empty book"


async def test_too_short_for_levels_still_shows_an_exact_spread() -> None:
    view = OrderBookView(book_stream())
    async with OneWidgetApp(view).run_test(size=(40, 4)) as pilot:
        await pilot.pause()
        assert "spread 0.5" in "\n".join(lines(view))


async def test_an_outcome_book_reads_as_chances() -> None:
    """A prediction market's outcome: prices 0-1 in percent, the spread in points."""
    snapshot = BookSnapshot("7123", bids=[("0.24", "100"), ("0.215", "50")], asks=[("0.26", "70"), ("0.3", "5")])
    view = OrderBookView(stream_with(hyperliquid_key(Channel.BOOK, "7123"), snapshot))
    view.probability = True
    async with OneWidgetApp(view).run_test(size=(42, 10)) as pilot:
        await pilot.pause()
        shown = lines(view)
    assert shown[1].split() == ["Chance", "Size", "Total"]
    rows = {line.split()[0] for line in shown[2:] if line.strip() and "spread" not in line}
    assert {"24.0%", "21.5%", "26.0%", "30.0%"} <= rows
    spread = next(line for line in shown if "spread" in line)
    assert "spread 2.0 pts" in spread and "mid 25.00%" in spread and "bps" not in spread
