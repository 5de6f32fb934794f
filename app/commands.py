"""Command palette providers that show their entries as plain text.

Textual parses command strings as markup: ``App.search_commands``, ``Matcher.highlight`` and a
hit's help all go through ``Content.from_markup``. A market that a venue calls
``[@click=app.quit]x[/]`` would become a clickable action in the market picker. These providers
build every prompt and help as plain :class:`~textual.content.Content` from :func:`inert` text, and
highlight the fuzzy match on that same text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from app.sim.runner import Fault
from widgets._text import inert

if TYPE_CHECKING:
    from app.ui import PerptermApp


@dataclass(frozen=True, slots=True)
class PlainCommand:
    """A palette entry. ``label`` and ``help`` may be venue text: they are shown inert, unparsed."""

    label: str
    run: Callable[[], object]
    help: str = ""


class PlainProvider(Provider):
    """Offers :meth:`commands`, matched on their labels."""

    def commands(self) -> list[PlainCommand]:
        raise NotImplementedError

    @property
    def perpterm(self) -> PerptermApp:
        return cast("PerptermApp", self.app)

    async def discover(self) -> Hits:
        for command in self.commands():
            label = inert(command.label)
            yield DiscoveryHit(Content(label), command.run, text=label, help=_help(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            label = inert(command.label)
            score, offsets = matcher.fuzzy_search.match(matcher.query, label)
            if score > 0:
                prompt = Content(label)
                for offset in offsets:
                    prompt = prompt.stylize(matcher.match_style, offset, offset + 1)
                yield Hit(score, prompt, command.run, text=label, help=_help(command))


def _help(command: PlainCommand) -> str | None:
    # The palette passes help through Content.from_markup, which returns a Content unparsed.
    return cast(str, Content(inert(command.help))) if command.help else None


class MarketPicker(PlainProvider):
    """The markets of the selected venue (``/`` or ``m``)."""

    def commands(self) -> list[PlainCommand]:
        return self.perpterm.market_commands()


#: What the demo can make its emulators do, for watching the supervisor at work.
DEMO_FAULTS: tuple[tuple[Fault, str, str], ...] = (
    (Fault("stall", 15.0), "Demo: stall the venue for 15 s", "silence: STALE, probe, reconnect, fresh snapshots"),
    (Fault("drop"), "Demo: drop every connection", "TCP reset: reconnect with backoff, fresh snapshots"),
    (Fault("restart"), "Demo: restart the venue", "close 1012, listen again: reconnect, fresh snapshots"),
)


class DemoFaults(PlainProvider):
    """The demo faults, in the command palette (``ctrl+p``) of a demo with emulators to control."""

    def commands(self) -> list[PlainCommand]:
        app = self.perpterm
        if not app.can_inject_faults:
            return []
        return [PlainCommand(label, partial(app.inject_fault, fault), help) for fault, label, help in DEMO_FAULTS]
