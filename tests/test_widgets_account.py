"""Open orders and recent fills across venues: what is listed and in which order, sides and the
LIQ tag, stream states (stale, waiting, refused) per venue, binding, hostile venue text, no redraw
without change; and an SVG snapshot of the account row (Greeks, liquidation, fills) as the app
lays it out at 140 columns."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.containers import Horizontal

from app.model import (
    Channel,
    Fill,
    Fills,
    LiquidationState,
    OrderUpdate,
    OrderUpdates,
    Side,
    StreamKey,
    StreamState,
    Venue,
)
from app.state import Stream
from app.portfolio import Transition
from tests.portfolio_fixtures import NOW, Clock, hypercall_account, hyperliquid_account, portfolio, stated
from tests.widget_harness import OneWidgetApp, lines, row_of, stream_with, style_at
from widgets import FillsOrdersView, LiquidationStateView, PortfolioGreeksView

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20.000 UTC
HC, HL = Venue.HYPERCALL, Venue.HYPERLIQUID
CALL = "BTC-20260131-100000-C"


def account_stream(venue: Venue, channel: Channel, *events: object, state: StreamState = StreamState.LIVE) -> Stream:
    return stream_with(StreamKey(venue, channel, "", ()), *events, state=state, last_data_at=88.0)


def hypercall_fills(state: StreamState = StreamState.LIVE) -> Stream:
    return account_stream(HC, Channel.FILLS, Fills([
        Fill(CALL, Side.BUY, "1500", "2", T0, "f1", fee="0.75"),
        Fill("BTC-20260131-90000-P", Side.SELL, "2100.5", "1", T0 + 1_500, "f2", fee="1.05"),
    ]), state=state)  # fmt: skip


def hyperliquid_fills(state: StreamState = StreamState.LIVE) -> Stream:
    liquidated = Fill("BTC", Side.SELL, "65000.5", "0.5", T0 + 2_000, "h1", fee="-0.0123", liquidation=True)
    return account_stream(HL, Channel.FILLS, Fills([liquidated]), state=state)


def hypercall_orders() -> Stream:
    return account_stream(HC, Channel.ORDERS, OrderUpdates([
        OrderUpdate("o1", CALL, "open", Side.BUY, "1400", "5", "1", T0),
        OrderUpdate("o2", "BTC-20260131-90000-P", "open", Side.SELL, "2200.25", "2", None, T0 + 10),
        OrderUpdate("o3", CALL, "filled", Side.BUY, "1500", "2", "2", T0 + 20),
    ]))  # fmt: skip


def view_of(*, hl_fills: Stream | None = None, hl_orders: Stream | None = None) -> FillsOrdersView:
    view = FillsOrdersView(clock=lambda: 100.0)
    view.bind_fills(HC, hypercall_fills())
    view.bind_orders(HC, hypercall_orders())
    if hl_fills is not None:
        view.bind_fills(HL, hl_fills)
    if hl_orders is not None:
        view.bind_orders(HL, hl_orders)
    return view


async def screen_of(view: FillsOrdersView, size: tuple[int, int] = (100, 16)) -> list[str]:
    async with OneWidgetApp(view).run_test(size=size) as pilot:
        await pilot.pause()
        return lines(view)


async def test_open_orders_then_fills_newest_first() -> None:
    screen = await screen_of(view_of(hl_fills=hyperliquid_fills()))
    assert screen[1].strip() == "Open orders (2)"  # the filled one is no longer open
    assert screen[2].split() == ["Venue", "Market", "Side", "Price", "Size", "Filled", "Status"]
    assert screen[3].split() == ["hypercall", "BTC-20260131-90000-P", "SELL", "2,200.25", "2", "0", "open"]
    assert screen[4].split() == ["hypercall", CALL, "BUY", "1,400", "5", "1", "open"]
    assert screen[5].strip() == "Fills"
    assert screen[6].split() == ["Time", "UTC", "Venue", "Market", "Side", "Size", "Price", "Fee"]
    assert [line.split()[0] for line in screen[7:10]] == ["22:13:22.000", "22:13:21.500", "22:13:20.000"]
    assert screen[7].split()[1:] == ["hyperliquid", "BTC", "SELL", "▼", "0.5", "65,000.5", "-0.0123", "LIQ"]
    assert screen[9].split()[1:] == ["hypercall", CALL, "BUY", "▲", "2", "1,500", "0.75"]


async def test_sides_are_coloured_and_liquidations_tagged() -> None:
    view = view_of(hl_fills=hyperliquid_fills())
    async with OneWidgetApp(view).run_test(size=(100, 16)) as pilot:
        await pilot.pause()
        buy = view.get_component_rich_style("fills--buy").color
        sell = view.get_component_rich_style("fills--sell").color
        liq = view.get_component_rich_style("fills--liq")
        liquidated = row_of(view, "65,000.5")
        bought = row_of(view, "22:13:20.000")
        order = row_of(view, "2,200.25")
        assert style_at(liquidated, "SELL").color == sell and style_at(liquidated, "65,000.5").color == sell
        assert style_at(bought, "BUY").color == buy
        assert style_at(order, "SELL").color == sell
        tag = style_at(liquidated, "LIQ")
        assert tag.color == liq.color and tag.reverse


async def test_stale_and_waiting_streams_per_venue() -> None:
    pending = account_stream(HL, Channel.ORDERS, state=StreamState.PENDING)
    view = view_of(hl_fills=hyperliquid_fills(StreamState.STALE), hl_orders=pending)
    async with OneWidgetApp(view).run_test(size=(100, 16)) as pilot:
        await pilot.pause()
        assert "STALE 12s hyperliquid fills" in lines(view)[0]
        assert "hyperliquid: waiting for orders…" in "\n".join(lines(view))
        dim = view.get_component_rich_style("stream--dim").color
        assert style_at(row_of(view, "65,000.5"), "65,000.5").color == dim
        assert style_at(row_of(view, "22:13:20.000"), "1,500").color != dim  # Hypercall is live


async def test_refused_stream_shows_its_reason_inert() -> None:
    refused = account_stream(HL, Channel.FILLS, state=StreamState.ERROR)
    refused.reason = "[red]no[/] \x1b[2Jwallet"
    screen = "\n".join(await screen_of(view_of(hl_fills=refused)))
    assert "hyperliquid fills: error: [red]no[/] wallet" in screen
    assert "ERROR" in screen.splitlines()[0] and "\x1b" not in screen


async def test_empty_sections_and_unbound() -> None:
    view = FillsOrdersView(clock=lambda: 100.0)
    async with OneWidgetApp(view).run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        assert lines(view)[1].strip() == "no account configured"
        view.bind_fills(HC, account_stream(HC, Channel.FILLS))
        view.bind_orders(HC, account_stream(HC, Channel.ORDERS))
        await pilot.pause()
        screen = [line.strip() for line in lines(view)]
        assert "no open orders" in screen and "no fills yet" in screen
        view.unbind(HC)
        await pilot.pause()
        assert lines(view)[1].strip() == "no account configured"


async def test_binding_checks_the_stream_kind() -> None:
    view = FillsOrdersView()
    with pytest.raises(TypeError):
        view.bind_fills(HC, hypercall_orders())
    with pytest.raises(TypeError):
        view.bind_orders(HC, hypercall_fills())


async def test_many_orders_leave_room_for_fills() -> None:
    orders = account_stream(HC, Channel.ORDERS, OrderUpdates([
        OrderUpdate(f"o{i}", CALL, "open", Side.BUY, str(1000 + i), "1", "0", T0 + i) for i in range(20)
    ]))  # fmt: skip
    view = FillsOrdersView(clock=lambda: 100.0)
    view.bind_orders(HC, orders)
    view.bind_fills(HC, hypercall_fills())
    screen = await screen_of(view, (100, 14))
    assert screen[1].strip() == "Open orders (20)"
    assert any("more open orders" in line for line in screen)
    assert "Fills" in [line.strip() for line in screen]
    assert any("22:13:21.500" in line for line in screen)


async def test_hostile_market_and_status_are_drawn_literally() -> None:
    hostile = "[red]x[/]\x1b]0;pwned\x07\x1b[31mEVIL"
    fills = account_stream(HC, Channel.FILLS, Fills([Fill(hostile, Side.SELL, "1", "1", T0, "x", liquidation=True)]))
    orders = account_stream(HC, Channel.ORDERS, OrderUpdates([OrderUpdate("o", hostile, "[b]open[/b]", Side.BUY, "1", "1")]))
    view = FillsOrdersView(clock=lambda: 100.0)
    view.bind_fills(HC, fills)
    view.bind_orders(HC, orders)
    screen = "\n".join(await screen_of(view, (120, 12)))
    assert "[red]x[/]EVIL" in screen and "[b]open[/b]" in screen
    assert "\x1b" not in screen and "pwned" not in screen


async def test_no_rebuild_without_change() -> None:
    fills = hypercall_fills()
    view = FillsOrdersView(clock=lambda: 100.0)
    view.bind_fills(HC, fills)
    async with OneWidgetApp(view).run_test(size=(100, 12)) as pilot:
        await pilot.pause()
        builds = view.builds
        for _ in range(5):
            view.poll()
            lines(view)
        assert view.builds == builds
        fills.data.apply(Fills([Fill(CALL, Side.SELL, "1600", "1", T0 + 9_000, "f9")]))
        view.poll()
        await pilot.pause()
        assert view.builds == builds + 1
        fills_at = next(y for y, line in enumerate(lines(view)) if line.strip() == "Fills")
        assert "22:13:29.000" in lines(view)[fills_at + 2]  # the newest, first under the header


@pytest.mark.parametrize("width", [30, 38, 60, 100, 140])
async def test_every_width_draws_full_lines(width: int) -> None:
    screen = await screen_of(view_of(hl_fills=hyperliquid_fills()), (width, 12))
    assert all(len(line) == width for line in screen)
    assert any("LIQ" in line for line in screen)


# --- the account row, as the app lays it out --------------------------------------------------------


class AccountRow(App[None]):
    """Greeks (3fr), liquidation (2fr) and fills (2fr) in bordered panels 14 rows high, with
    Hypercall's account in ``state`` (alerting, as the app makes it, when that is not Normal)."""

    CSS = """
    #account { height: 14; }
    PortfolioGreeksView { width: 3fr; border: round $primary; }
    LiquidationStateView { width: 2fr; border: round $primary; }
    FillsOrdersView { width: 2fr; border: round $primary; }
    """

    def __init__(self, state: LiquidationState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        clock = Clock(NOW)
        if self.state is LiquidationState.NORMAL:
            account, liquidation = hypercall_account(equity="30000"), None  # derived from margin
        elif self.state is LiquidationState.WARNING:
            account, liquidation = hypercall_account(), stated(LiquidationState.WARNING, entered=NOW - 125)
        else:
            account = hypercall_account(equity="9000")
            liquidation = stated(
                LiquidationState.LIQUIDATING, LiquidationState.WARNING, entered=NOW - 40, shortfall="1000", auction_id="auc-7"
            )
        source = portfolio(hypercall=account, liquidation=liquidation, hyperliquid=hyperliquid_account(), clock=clock)
        fills = FillsOrdersView(clock=lambda: 100.0)
        fills.bind_fills(HC, hypercall_fills())
        fills.bind_orders(HC, hypercall_orders())
        fills.bind_fills(HL, hyperliquid_fills())
        with Horizontal(id="account"):
            yield PortfolioGreeksView(source)
            yield LiquidationStateView(source, clock=clock)
            yield fills

    def on_mount(self) -> None:
        if self.state is not LiquidationState.NORMAL:
            previous = LiquidationState.NORMAL if self.state is LiquidationState.WARNING else LiquidationState.WARNING
            self.query_one(LiquidationStateView).alert(Transition(HC, previous, self.state))


@pytest.mark.parametrize("state", list(LiquidationState), ids=lambda state: state.value.lower())
def test_snapshot_account_row(snap_compare, state) -> None:  # type: ignore[no-untyped-def]
    """The Greeks and the liquidation state side by side in each liquidation state."""
    assert snap_compare(AccountRow(state), terminal_size=(140, 14))
