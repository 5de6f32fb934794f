"""The status bar: one line of feed health per connection, and a key hint on the right.

It reads a ``health`` callable (the supervisor's read-only summaries) a few times a second and
repaints only when the text it would show has changed. Each connection reads like
``hyperliquid#1 live 0.3s 142 msg/s ↻2``: state colour coded (live green, stale and reconnecting
yellow, failed red with its reason), data age, message rate and reconnect count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.strip import Strip

from app.model import ConnectionHealth, ConnectionState
from widgets._base import PollingLineWidget, row_strip
from widgets._format import format_age, format_rate
from widgets._text import inert

HealthSource = Callable[[], list[ConnectionHealth]]
Part = tuple[str, str]
"""A run of status text and the component class it is drawn with."""

SEPARATOR = "  │ "


def connection_parts(health: ConnectionHealth) -> list[Part]:
    """What the bar says about one connection, as (text, component class) runs."""
    state = health.state
    parts: list[Part] = [(inert(health.label) + " ", "status--label")]
    if state is ConnectionState.RECONNECTING and health.retry_in is not None:
        parts.append((f"reconnecting, retry in {health.retry_in:.0f}s", "status--reconnecting"))
    elif state is ConnectionState.FAILED and health.reason:
        parts.append((f"failed: {inert(health.reason)}", "status--failed"))
    else:
        parts.append((state.value, f"status--{state.value}"))
    if state in (ConnectionState.LIVE, ConnectionState.STALE):
        detail = f" {format_age(health.data_age)} {format_rate(health.message_rate)} msg/s"
        parts.append((detail, "status--detail"))
    if health.reconnects:
        parts.append((f" ↻{health.reconnects}", "status--detail"))
    if health.resyncs:
        gaps = f", {health.gaps} gaps" if health.gaps else ""
        parts.append((f" {health.resyncs} resyncs{gaps}", "status--detail"))
    if health.decode_errors:
        parts.append((f" {health.decode_errors} bad frames", "status--failed"))
    return parts


class StatusBar(PollingLineWidget):
    """Feed health of every connection on one line (docked at the bottom by the app)."""

    DEFAULT_CSS = """
    StatusBar {
        dock: bottom;
        height: 1;
        background: $panel;
        color: $foreground;
        & > .status--label { text-style: bold; }
        & > .status--connecting { color: $text-muted; }
        & > .status--live { color: $success; }
        & > .status--stale { color: $warning; }
        & > .status--reconnecting { color: $warning; }
        & > .status--failed { color: $error; }
        & > .status--closed { color: $text-muted; }
        & > .status--detail { color: $text-muted; }
        & > .status--hint { color: $text-muted; }
    }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "status--label",
        *(f"status--{state.value}" for state in ConnectionState),
        "status--detail",
        "status--hint",
    }

    POLL_INTERVAL = 0.3

    def __init__(
        self,
        health: HealthSource,
        hint: str = "",
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.health = health
        self.hint = hint
        self._parts = self._observe()
        self._line: tuple[object, Strip] | None = None

    def poll(self) -> None:
        parts = self._observe()
        if parts != self._parts:
            self._parts = parts
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y:
            return Strip.blank(width, base)
        key = (self._parts, self.hint, width, self.style_epoch)
        if self._line is None or self._line[0] != key:
            hint = f"{self.hint} " if self.hint else ""
            status_cells = max(0, width - len(hint))
            pieces = [
                (text, self.get_component_rich_style(component)) for text, component in self._parts
            ]
            if sum(len(text) for text, _ in pieces) + 2 > status_cells:  # cut visibly, not mid-word
                cut = row_strip([(" ", base), *pieces], max(0, status_cells - 2), base)
                status = Strip.join([cut, row_strip([("… ", base)], status_cells - cut.cell_length, base)])
            else:
                status = row_strip([(" ", base), *pieces], status_cells, base)
            right = row_strip(
                [(hint, self.get_component_rich_style("status--hint"))], width - status_cells, base
            )
            self._line = (key, Strip.join([status, right]))
        return self._line[1]

    def _observe(self) -> tuple[Part, ...]:
        parts: list[Part] = []
        for index, health in enumerate(self.health()):
            if index:
                parts.append((SEPARATOR, "status--detail"))
            parts.extend(connection_parts(health))
        return tuple(parts)
