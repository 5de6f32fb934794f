"""The status bar: one line per connection state, colour coded, plus the hint on the right."""

from __future__ import annotations

from textual.strip import Strip

from app.model import ConnectionHealth, ConnectionState, Venue
from tests.widget_harness import OneWidgetApp, style_at
from widgets import StatusBar


def health(state: ConnectionState, **fields: object) -> ConnectionHealth:
    return ConnectionHealth(Venue.HYPERLIQUID, "hyperliquid#1", state, **fields)  # type: ignore[arg-type]


async def test_each_connection_state_reads_and_is_colour_coded() -> None:
    current: list[ConnectionHealth] = []
    bar = StatusBar(lambda: current, hint="? help  q quit")
    async with OneWidgetApp(bar).run_test(size=(100, 3)) as pilot:

        async def show(entry: ConnectionHealth) -> Strip:
            current[:] = [entry]
            bar.poll()
            await pilot.pause()
            return bar.render_line(0)

        def colour(component: str) -> object:
            return bar.get_component_rich_style(component).color

        live = await show(
            health(ConnectionState.LIVE, data_age=0.34, message_rate=142.2, reconnects=2)
        )
        assert "hyperliquid#1 live 0.3s 142 msg/s ↻2" in live.text
        assert style_at(live, "live").color == colour("status--live")
        assert live.text.endswith("? help  q quit ")

        resynced = await show(health(ConnectionState.LIVE, data_age=0.1, message_rate=5.0, resyncs=3, gaps=2))
        assert "3 resyncs, 2 gaps" in resynced.text

        stale = await show(health(ConnectionState.STALE, data_age=12.0, message_rate=0.0))
        assert "stale 12s 0.0 msg/s" in stale.text
        assert style_at(stale, "stale").color == colour("status--stale")

        retrying = await show(health(ConnectionState.RECONNECTING, retry_in=3.2, reconnects=1))
        assert "reconnecting, retry in 3s ↻1" in retrying.text
        assert style_at(retrying, "reconnecting").color == colour("status--reconnecting")

        failed = await show(health(ConnectionState.FAILED, reason="auth \x1b[5mrefused"))
        assert "failed: auth refused" in failed.text
        assert style_at(failed, "failed").color == colour("status--failed")

        connecting = await show(health(ConnectionState.CONNECTING))
        assert "hyperliquid#1 connecting" in connecting.text

        bad = await show(health(ConnectionState.LIVE, data_age=0.1, decode_errors=3))
        assert "3 bad frames" in bad.text
        assert colour("status--live") != colour("status--failed")


async def test_several_connections_and_a_hostile_label() -> None:
    entries = [
        health(ConnectionState.LIVE, data_age=0.1, message_rate=5),
        ConnectionHealth(Venue.ASTER, "[b]aster\x1b]0;x\x07", ConnectionState.CLOSED),
    ]
    bar = StatusBar(lambda: entries)
    async with OneWidgetApp(bar).run_test(size=(80, 3)) as pilot:
        await pilot.pause()
        text = bar.render_line(0).text
    assert "hyperliquid#1 live 0.1s 5.0 msg/s  │ [b]aster closed" in text
    assert "\x1b" not in text and "\x07" not in text


async def test_repaints_only_when_the_text_changes() -> None:
    calls = 0
    entries = [health(ConnectionState.LIVE, data_age=0.1, message_rate=5)]

    def source() -> list[ConnectionHealth]:
        nonlocal calls
        calls += 1
        return entries

    bar = StatusBar(source, hint="q quit")
    async with OneWidgetApp(bar).run_test(size=(60, 3)) as pilot:
        await pilot.pause()
        first = bar.render_line(0)
        await pilot.pause(0.7)  # a couple of polls
        assert calls >= 3
        assert bar.render_line(0) is first  # same cached strip: nothing rebuilt

        entries[0] = health(ConnectionState.STALE, data_age=9.0)
        await pilot.pause(0.4)
        assert "stale 9.0s" in bar.render_line(0).text


async def test_the_hint_keeps_its_place_on_a_narrow_screen() -> None:
    bar = StatusBar(
        lambda: [health(ConnectionState.LIVE, data_age=0.1, message_rate=5)] * 4, hint="q quit"
    )
    async with OneWidgetApp(bar).run_test(size=(40, 3)) as pilot:
        await pilot.pause()
        line = bar.render_line(0)
    assert line.cell_length == 40
    assert line.text.endswith("q quit ")
