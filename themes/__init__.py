"""perpterm's own Textual themes, one TOML file each in this package.

A theme file holds the arguments of :class:`textual.theme.Theme`, e.g.::

    name = "perpterm-dark"
    primary = "#4EA1D3"
    success = "#3FB950"   # bids, buys
    error = "#F85149"     # asks, sells
    dark = true

Widgets take bid/ask colours from ``$success``/``$error`` so a theme restyles everything.
"""

from __future__ import annotations

import tomllib
from importlib.resources import files

from textual.app import App
from textual.theme import Theme


def load_themes() -> list[Theme]:
    themes = []
    for entry in sorted(files(__name__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            themes.append(Theme(**tomllib.loads(entry.read_text(encoding="utf-8"))))
    return themes


def register_themes(app: App) -> None:
    for theme in load_themes():
        app.register_theme(theme)
