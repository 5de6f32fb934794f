"""What the widget tests share: a one-widget app, streams with data, and reading the screen back."""

from __future__ import annotations

from typing import Any

from rich.style import Style
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widget import Widget

from app.model import Channel, StreamKey, StreamState, Venue, freeze_params
from app.state import Stream


class OneWidgetApp(App[None]):
    """An app that shows just ``widget``, for ``run_test``."""

    def __init__(self, widget: Widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


def hyperliquid_key(channel: Channel, market: str = "BTC", **params: str) -> StreamKey:
    return StreamKey(Venue.HYPERLIQUID, channel, market, freeze_params(params))


def stream_with(
    key: StreamKey,
    *events: Any,
    state: StreamState = StreamState.LIVE,
    last_data_at: float | None = 100.0,
) -> Stream:
    """A stream for ``key`` with ``events`` applied, then in ``state`` with ``last_data_at``."""
    stream = Stream(key)
    for event in events:
        stream.data.apply(event)
    stream.state = state
    stream.last_data_at = last_data_at
    return stream


def lines(view: Widget) -> list[str]:
    return [view.render_line(y).text for y in range(view.size.height)]


def row_of(view: Widget, text: str) -> Strip:
    """The first rendered line of ``view`` that contains ``text``."""
    for y in range(view.size.height):
        strip = view.render_line(y)
        if text in strip.text:
            return strip
    raise AssertionError(f"{text!r} not on screen: {lines(view)}")


def style_at(strip: Strip, text: str) -> Style:
    """Style of the segment that holds ``text`` (or its first character)."""
    position = strip.text.index(text)
    for segment in strip:
        if position < len(segment.text):
            return segment.style or Style()
        position -= len(segment.text)
    raise AssertionError(text)
