"""What the portfolio, account and options widgets share: a polled, cached Line-API panel.

These widgets read more than one source (a portfolio of several venues, a stream per venue) or
keep their own selection (the options chain's cursor), so they do not fit :class:`StreamView`'s
one-stream body cache. A :class:`PanelView` instead asks its subclass for one cheap, hashable
:meth:`~PanelView.observe` key per poll and rebuilds all its lines only when that key, its size,
its focus or the theme moved; every compositor pass in between is served the cached strips.

Tables are laid out by :func:`fit_columns`: natural widths from the visible cells, a flexible
column (a market name) cut with "…" first when the width is short, then the gaps narrowed, then
the least important columns dropped, so a narrow pane still shows the figures that matter.

:class:`CompactPanelView` adds the one-line summary form used on small terminals.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.cells import cell_len, set_cell_size
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip

from widgets._base import STREAM_COMPONENTS, STREAM_RULES, Badge, Piece, PollingLineWidget, row_strip

NATURAL_HEIGHT = 10_000
"""Height offered to :meth:`PanelView.build` when asked for the content height (``height: auto``)."""


def cut(text: str, cells: int) -> str:
    """``text`` in at most ``cells`` cells, its end replaced by "…" when cut."""
    if cell_len(text) <= cells:
        return text
    if cells <= 1:
        return set_cell_size(text, max(0, cells))
    return set_cell_size(text, cells - 1) + "…"


def pad(text: str, cells: int, right: bool) -> str:
    """``text`` cut or padded to exactly ``cells`` cells, right- or left-aligned."""
    text = cut(text, cells)
    room = cells - cell_len(text)
    return " " * room + text if right else text + " " * room


@dataclass(frozen=True, slots=True)
class Column:
    """A table column. ``keep``: the lowest are dropped first when the width is short; ``flex``:
    narrowed down to ``min_width`` before anything is dropped."""

    title: str
    right: bool = True
    keep: int = 5
    flex: bool = False
    min_width: int = 8
    shorten: Callable[[str], str] | None = None
    """A shorter form of a cell that does not fit (before it is cut with "…")."""


GAP = 2
INDENT = 1
MAX_SPREAD = 3
"""Spare cells given to each column at most: wide panes spread the table a little, not apart."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a table's columns go: each column's cells (``None``: dropped) and the gap between."""

    widths: tuple[int | None, ...]
    gap: int = GAP

    def starts(self) -> list[int | None]:
        """The first cell of each shown column (``None`` for a dropped one)."""
        starts: list[int | None] = []
        x = INDENT
        for cells in self.widths:
            if cells is None:
                starts.append(None)
                continue
            starts.append(x)
            x += cells + self.gap
        return starts


def _fit(columns: Sequence[Column], natural: list[int], width: int, gap: int) -> list[int | None]:
    widths: list[int | None] = list(natural)

    def total() -> int:
        shown = [w for w in widths if w is not None]
        return INDENT + sum(shown) + gap * max(0, len(shown) - 1)

    while total() > width:
        flexible = [
            i for i, column in enumerate(columns)
            if column.flex and (w := widths[i]) is not None and w > min(column.min_width, natural[i])
        ]  # fmt: skip
        if flexible:
            index = flexible[0]
            current = widths[index]
            assert current is not None
            widths[index] = max(min(columns[index].min_width, natural[index]), current - (total() - width))
            continue
        alive = [i for i, w in enumerate(widths) if w is not None]
        if len(alive) <= 1:
            break
        widths[min(alive, key=lambda i: (columns[i].keep, -i))] = None
    alive = [i for i, w in enumerate(widths) if w is not None]
    spare = max(0, width - 1 - total())
    if alive and spare:
        share = min(MAX_SPREAD, spare // len(alive))
        for i in alive:
            current = widths[i]
            assert current is not None
            widths[i] = current + share
    return widths


def fit_columns(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> Layout:
    """Lay ``columns`` out for ``rows`` in ``width`` cells: natural widths, the flexible column cut,
    then a one-cell gap instead of two, and only then the least important columns dropped."""
    natural = [cell_len(column.title) for column in columns]
    for row in rows:
        for index, text in enumerate(row[: len(columns)]):
            natural[index] = max(natural[index], cell_len(text))
    widths = _fit(columns, natural, width, GAP)
    if None in widths:
        narrow = _fit(columns, natural, width, 1)
        if narrow.count(None) < widths.count(None):
            return Layout(tuple(narrow), 1)
    return Layout(tuple(widths), GAP)


def table_pieces(cells: Sequence[Piece], columns: Sequence[Column], layout: Layout, base: Style) -> list[Piece]:
    """One table row as pieces: each shown cell padded to its column, gaps in ``base``."""
    pieces: list[Piece] = [(" " * INDENT, base)]
    first = True
    for (text, style), column, cells_wide in zip(cells, columns, layout.widths):
        if cells_wide is None:
            continue
        if not first:
            pieces.append((" " * layout.gap, base))
        first = False
        if column.shorten is not None and cell_len(text) > cells_wide:
            text = column.shorten(text)
        pieces.append((pad(text, cells_wide, column.right), style))
    return pieces


def first_fitting(variants: Sequence[Sequence[Piece]], width: int) -> list[Piece]:
    """The first of ``variants`` (longest first) whose text fits ``width`` cells, else the last."""
    for pieces in variants:
        if sum(cell_len(text) for text, _ in pieces) <= width:
            return list(pieces)
    return list(variants[-1])


class PanelView(PollingLineWidget):
    """A polled Line-API widget whose lines are rebuilt only when :meth:`observe` moves."""

    DEFAULT_CSS = (
        "PanelView {"
        + STREAM_RULES
        + """
        & > .panel--positive { color: $success; }
        & > .panel--negative { color: $error; }
        & > .panel--section { text-style: bold; }
        & > .panel--total { text-style: bold; }
    }"""
    )

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        *STREAM_COMPONENTS,
        "panel--positive",
        "panel--negative",
        "panel--section",
        "panel--total",
    }

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.builds = 0
        """How many times the lines were rebuilt: what the "no work without change" tests count."""
        self._key: Hashable = None
        self._cache: tuple[Hashable, list[Strip]] | None = None

    # --- for subclasses ---------------------------------------------------------------------------

    def observe(self) -> Hashable:
        """A cheap key of everything shown; equal keys mean nothing to redraw."""
        raise NotImplementedError

    def build(self, width: int, height: int) -> list[Strip]:
        """Every line of the widget for ``width`` x ``height`` (fewer lines leave blanks)."""
        raise NotImplementedError

    def style(self, component: str, dimmed: bool = False) -> Style:
        """The theme's style for ``component``, or the muted one when ``dimmed``."""
        return self.get_component_rich_style("stream--dim" if dimmed else component)

    def plain(self, dimmed: bool = False) -> Style:
        return self.style("stream--dim") if dimmed else self.rich_style

    def sign_style(self, sign: int, dimmed: bool = False) -> Style:
        """Green for positive, red for negative (the bid/ask colours), plain for zero."""
        if dimmed or not sign:
            return self.plain(dimmed)
        return self.style("panel--positive" if sign > 0 else "panel--negative")

    def header(self, title: str, badge: Badge | None, width: int) -> Strip:
        """The title line: ``title`` on the left, ``badge`` on the right (as the stream widgets)."""
        base = self.rich_style
        badge_pieces: list[Piece] = []
        if badge is not None:
            badge_pieces = [(f" {badge.text} ", self.style(badge.component)), (" ", base)]
        badge_cells = min(width, sum(cell_len(text) for text, _ in badge_pieces))
        title_cells = width - badge_cells
        left = row_strip([(f" {title}", self.style("stream--title"))], title_cells, base)
        return Strip.join([left, row_strip(badge_pieces, badge_cells, base)])

    def line(self, pieces: Sequence[Piece], width: int) -> Strip:
        return row_strip(pieces, width, self.rich_style)

    def notice(self, text: str, width: int, component: str = "stream--notice") -> Strip:
        return self.line([(" " + text, self.style(component))], width)

    def invalidate(self) -> None:
        """Redraw now (a key press, a new binding): the next render rebuilds every line."""
        self._key = self.observe()
        self._cache = None
        self.refresh(layout=self._auto_height())

    # --- polling and the Line API -----------------------------------------------------------------

    def poll(self) -> None:
        key = self.observe()
        if key != self._key:
            self._key = key
            self.refresh(layout=self._auto_height())

    def lines(self) -> list[Strip]:
        """The cached lines for the current key, size, focus and theme."""
        if self._key is None:
            self._key = self.observe()
        size = self.size
        key = (self._key, size, self.has_focus, self.style_epoch)
        if self._cache is None or self._cache[0] != key:
            self.builds += 1
            self._cache = (key, self.build(size.width, size.height))
        return self._cache[1]

    def render_line(self, y: int) -> Strip:
        lines = self.lines()
        if y < len(lines):
            return lines[y].crop_extend(0, self.size.width, self.rich_style)
        return Strip.blank(self.size.width, self.rich_style)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[no-untyped-def]
        return max(1, len(self.build(width, NATURAL_HEIGHT)))

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def _auto_height(self) -> bool:
        height = self.styles.height
        return height is not None and height.is_auto


_COMPACT_RULES = (
    "height", "min_height", "max_height",
    "border_top", "border_right", "border_bottom", "border_left",
    "padding",
)  # fmt: skip


class CompactPanelView(PanelView):
    """A panel with a one-line summary form for small terminals.

    Setting :attr:`compact` adds the CSS class ``-compact`` and pins the widget to one line with
    inline styles (height 1, no border, no padding), which win over any stylesheet; clearing it
    removes those inline rules so the stylesheet's size and border apply again.
    """

    compact: reactive[bool] = reactive(False)

    def __init__(
        self,
        *,
        compact: bool = False,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.set_reactive(CompactPanelView.compact, compact)
        self.set_class(compact, "-compact")

    def on_mount(self) -> None:  # Textual also runs the base classes' on_mount (the poll timer)
        self._apply_compact(self.compact)

    def watch_compact(self, compact: bool) -> None:
        self._apply_compact(compact)
        self.invalidate()

    def _apply_compact(self, compact: bool) -> None:
        self.set_class(compact, "-compact")
        styles = self.styles
        if compact:
            styles.height = 1
            styles.min_height = 1
            styles.max_height = 1
            styles.border = ("none", "black")
            styles.padding = 0
        else:
            for rule in _COMPACT_RULES:
                styles.clear_rule(rule)
        self.refresh(layout=True)

    def build(self, width: int, height: int) -> list[Strip]:
        if self.compact:
            return [self.build_compact(width)]
        return self.build_full(width, height)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[no-untyped-def]
        return 1 if self.compact else super().get_content_height(container, viewport, width)

    def build_compact(self, width: int) -> Strip:
        """The one-line summary."""
        raise NotImplementedError

    def build_full(self, width: int, height: int) -> list[Strip]:
        raise NotImplementedError
