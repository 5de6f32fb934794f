"""What every stream widget shares: binding, polling, state badges, dimming and cached lines.

A widget reads one :class:`app.state.Stream` and never does I/O. It polls on its own timer and
repaints only when something it shows has moved: the data generation, the stream state or reason,
the badge text (a stale age ticks once a second), its size or the theme. Lines are Line-API
``Strip``s, built once per change and served from a cache for every compositor pass in between
(the limits research measured this as the cheapest way to draw a fast book).

The header line (title and badge) is cached apart from the body, so a ticking "STALE 12s" badge
does not rebuild the levels under it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from app.model import StreamState
from app.state import Stream
from widgets._format import format_age
from widgets._text import inert

Clock = Callable[[], float]
"""Monotonic seconds, comparable with :attr:`Stream.last_data_at`; injectable for tests."""

Piece = tuple[str, Style]
"""A run of text and the style it is drawn with."""


def row_strip(
    pieces: Iterable[Piece],
    width: int,
    base: Style,
    *,
    bar: int = 0,
    bar_style: Style | None = None,
) -> Strip:
    """One line exactly ``width`` cells wide, the last ``bar`` cells on ``bar_style``'s background.

    Only the background is taken, so a depth bar sits behind the text and never hides a number.
    """
    segments: list[Segment] = []
    room = width
    for text, style in pieces:
        cells = cell_len(text)
        if cells > room:
            text, cells = set_cell_size(text, room), room
        if cells:
            segments.append(Segment(text, style))
            room -= cells
    if room:
        segments.append(Segment(" " * room, base))
    bar = min(bar, width)
    if bar > 0 and bar_style is not None and bar_style.bgcolor is not None:
        background = Style(bgcolor=bar_style.bgcolor)
        plain, barred = Segment.divide(segments, [width - bar, width])
        segments = plain + [
            Segment(text, (style or base) + background) for text, style, _ in barred
        ]
    return Strip(segments, width)


def column_widths(rows: Iterable[Sequence[str]], width: int) -> list[int]:
    """Widths of text columns that fill ``width`` but its last cell (a right margin).

    Each column is at least its widest cell plus a one-cell gap; spare cells are shared out evenly
    so right-aligned columns spread across the widget.
    """
    natural: list[int] = []
    for row in rows:
        for index, cell in enumerate(row):
            if index == len(natural):
                natural.append(0)
            natural[index] = max(natural[index], len(cell) + 1)
    if not natural:
        return []
    spare = max(0, width - 1 - sum(natural))
    share, extra = divmod(spare, len(natural))
    return [cells + share + (index < extra) for index, cells in enumerate(natural)]


@dataclass(frozen=True, slots=True)
class Badge:
    text: str
    component: str


def stream_badge(stream: Stream, now: float) -> Badge:
    """The header badge of a stream: its state, and for a stale one how old the data is."""
    state = stream.state
    if state is StreamState.STALE:
        age = stream.age(now)
        text = "STALE" if age is None else f"STALE {format_age(age, tenths=False)}"
        return Badge(text, "stream--badge-stale")
    if state is StreamState.PENDING:
        return Badge("WAITING", "stream--badge-pending")
    return Badge(state.value.upper(), f"stream--badge-{state.value}")


@dataclass(frozen=True, slots=True)
class _Shown:
    """What a widget decided to show at its last poll; equal to the next one means skip."""

    stream: Stream | None
    generation: int
    state: StreamState | None
    reason: str
    title: str
    badge: Badge | None

    def same_status(self, other: _Shown) -> bool:
        return (self.stream, self.state, self.reason, self.badge) == (
            other.stream,
            other.state,
            other.reason,
            other.badge,
        )


STREAM_RULES = """
    height: 1fr;
    background: $surface;
    color: $foreground;
    & > .stream--title { text-style: bold; }
    & > .stream--badge-live { color: $success; }
    & > .stream--badge-stale { color: $warning; text-style: bold reverse; }
    & > .stream--badge-resyncing { color: $warning; text-style: bold reverse; }
    & > .stream--badge-pending { color: $text-muted; }
    & > .stream--badge-error { color: $error; text-style: bold reverse; }
    & > .stream--notice { color: $text-muted; }
    & > .stream--error { color: $error; }
    & > .stream--dim { color: $text-disabled; }
    & > .stream--column-header { color: $text-muted; }
"""
"""The look every panel shares: its title, state badges, notices and column headers."""

STREAM_COMPONENTS = frozenset(
    {
        "stream--title",
        "stream--badge-live",
        "stream--badge-stale",
        "stream--badge-resyncing",
        "stream--badge-pending",
        "stream--badge-error",
        "stream--notice",
        "stream--error",
        "stream--dim",
        "stream--column-header",
    }
)


class PollingLineWidget(Widget):
    """A Line-API widget that polls its source on a timer and caches strips per theme.

    :attr:`style_epoch` moves whenever styles change (theme switch, CSS reload): part of every
    strip cache key, so cached lines never outlive the colours they were drawn with.
    """

    POLL_INTERVAL: ClassVar[float] = 0.1
    """Seconds between polls of the source."""

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.style_epoch = 0

    def on_mount(self) -> None:
        self.set_interval(self.POLL_INTERVAL, self.poll)

    def poll(self) -> None:
        """Repaint if what the widget shows has changed; otherwise do nothing."""
        raise NotImplementedError

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self.style_epoch += 1


class StreamView(PollingLineWidget):
    """Base of the book, tape and chart widgets: a header line over a body drawn from a stream.

    Subclasses implement :meth:`render_body` (and optionally :meth:`title_detail`) and use
    :meth:`component_style` for every colour, so dimming and theming behave the same everywhere.
    """

    DEFAULT_CSS = "StreamView {" + STREAM_RULES + "}"

    COMPONENT_CLASSES: ClassVar[set[str]] = set(STREAM_COMPONENTS)

    MIN_REBUILD_INTERVAL: ClassVar[float] = 0.0
    """Least seconds between rebuilds caused by new data alone (state changes always show now)."""
    HIDE_WHILE_RESYNCING: ClassVar[bool] = True
    """Whether data is withheld while resyncing (a book being rebuilt) or only dimmed (history)."""

    def __init__(
        self,
        stream: Stream | None = None,
        *,
        title: str | None = None,
        clock: Clock = time.monotonic,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.stream = stream
        self.clock = clock
        self.body_builds = 0
        """How many times the body was rebuilt: what the "no work without change" tests count."""
        self._title = title
        self._absent = "no market"
        self._shown = self._observe()
        self._shown_at = -math.inf
        self._header: tuple[object, Strip] | None = None
        self._body: tuple[object, list[Strip]] | None = None

    def bind(self, stream: Stream | None, *, title: str | None = None, absent: str = "no market") -> None:
        """Show ``stream`` (``None`` shows ``absent``); ``title`` replaces "MARKET · venue"."""
        self.stream = stream
        self._title = title
        self._absent = absent
        self.poll()

    def poll(self) -> None:
        shown = self._observe()
        if shown == self._shown:
            return
        now = self.clock()
        if shown.same_status(self._shown) and now - self._shown_at < self.MIN_REBUILD_INTERVAL:
            return
        self._shown = shown
        self._shown_at = now
        self.refresh()

    # --- for subclasses -------------------------------------------------------------------------

    def render_body(self, stream: Stream, width: int, height: int, dimmed: bool) -> list[Strip]:
        """Lines under the header for a stream that has data to show; ``dimmed`` when not live."""
        raise NotImplementedError

    def title_detail(self, stream: Stream) -> str:
        """Extra header text after the market (e.g. the chart's interval and last price)."""
        return ""

    def component_style(self, component: str, dimmed: bool = False) -> Style:
        """The theme's style for ``component``; all components share one muted look when dimmed."""
        return self.get_component_rich_style("stream--dim" if dimmed else component)

    def plain_style(self, dimmed: bool = False) -> Style:
        """The widget's plain text style, or the muted one when dimmed."""
        return self.component_style("stream--dim") if dimmed else self.rich_style

    def notice(self, text: str, width: int, component: str = "stream--notice") -> list[Strip]:
        """A body that is a single message instead of data."""
        return [row_strip([(" " + text, self.component_style(component))], width, self.rich_style)]

    # --- Line API ---------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            return self._header_strip(width)
        body = self._body_strips()
        if y - 1 < len(body):
            return body[y - 1]
        return Strip.blank(width, self.rich_style)

    def _observe(self) -> _Shown:
        stream = self.stream
        if stream is None:
            return _Shown(None, 0, None, self._absent, inert(self._title or ""), None)
        title = self._title or f"{stream.key.market} · {stream.key.venue}"
        detail = self.title_detail(stream)
        return _Shown(
            stream,
            stream.data.generation,
            stream.state,
            stream.reason,
            inert(f"{title}  {detail}" if detail else title),
            stream_badge(stream, self.clock()),
        )

    def _header_strip(self, width: int) -> Strip:
        shown = self._shown
        key = (shown.title, shown.badge, width, self.style_epoch)
        if self._header is None or self._header[0] != key:
            base = self.rich_style
            badge = shown.badge
            badge_pieces: list[Piece] = []
            if badge is not None:
                badge_pieces = [
                    (f" {badge.text} ", self.component_style(badge.component)),
                    (" ", base),
                ]
            badge_cells = sum(len(text) for text, _ in badge_pieces)
            title_cells = max(0, width - badge_cells)
            title = row_strip(
                [(f" {shown.title}", self.component_style("stream--title"))], title_cells, base
            )
            badge_strip = row_strip(badge_pieces, width - title_cells, base)
            self._header = (key, Strip.join([title, badge_strip]))
        return self._header[1]

    def _body_strips(self) -> list[Strip]:
        shown = self._shown
        size = self.size
        key = (shown.stream, shown.generation, shown.state, shown.reason, size, self.style_epoch)
        if self._body is None or self._body[0] != key:
            self.body_builds += 1
            self._body = (key, self._build_body(shown, size.width, max(0, size.height - 1)))
        return self._body[1]

    def _build_body(self, shown: _Shown, width: int, height: int) -> list[Strip]:
        stream = shown.stream
        if stream is None:
            return self.notice(shown.reason, width)
        if shown.state is StreamState.PENDING:
            return self.notice(inert(shown.reason) or "waiting for data", width)
        if shown.state is StreamState.ERROR:
            reason = inert(shown.reason)
            return self.notice(f"error: {reason}" if reason else "error", width, "stream--error")
        if shown.state is StreamState.RESYNCING and self.HIDE_WHILE_RESYNCING:
            return self.notice("resyncing…", width)
        return self.render_body(stream, width, height, dimmed=not stream.trustworthy)
