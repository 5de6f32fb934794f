"""Configuration: a TOML file (``--config``) plus command-line overrides, validated by pydantic.

With no configuration every venue uses its built-in emulator (``network = "demo"``). Pointing a
venue at a real exchange is one line::

    [venues.hyperliquid]
    network = "mainnet"          # or "testnet", or ws_url/http_url for any other endpoint

Validation errors name the key, the value and what was expected (see :func:`load_settings`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.model import Venue
from app.venues import ADAPTERS, NETWORKS
from app.venues.base import Endpoint

DEMO = "demo"
INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")


class ConfigError(ValueError):
    """A configuration problem, phrased for the user."""


def _check_url(url: str | None, schemes: tuple[str, ...], what: str) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{what} must be a {' or '.join(schemes)} URL with a host")
    return url


class VenueSettings(BaseModel):
    """How to reach one venue."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    network: str = DEMO
    ws_url: str | None = None
    http_url: str | None = None
    markets: list[str] = Field(default_factory=list, description="markets to show first")

    _check_ws = field_validator("ws_url")(lambda v: _check_url(v, ("ws", "wss"), "ws_url"))
    _check_http = field_validator("http_url")(lambda v: _check_url(v, ("http", "https"), "http_url"))

    @model_validator(mode="after")
    def _custom_needs_both(self) -> VenueSettings:
        if (self.ws_url is None) != (self.http_url is None):
            raise ValueError("ws_url and http_url go together")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venues: dict[Venue, VenueSettings] = Field(
        default_factory=lambda: {venue: VenueSettings() for venue in ADAPTERS}
    )
    venue: Venue = Venue.HYPERLIQUID
    market: str = "BTC"
    interval: str = "1m"
    seed: int = 7
    theme: str = "perpterm-dark"

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if value not in INTERVALS:
            raise ValueError(f"expected one of {', '.join(INTERVALS)}")
        return value

    @model_validator(mode="after")
    def _known_networks(self) -> Settings:
        for venue, venue_settings in self.venues.items():
            if venue not in ADAPTERS:
                raise ValueError(f"venues.{venue}: not supported yet")
            names = (DEMO, *NETWORKS.get(venue, {}))
            if venue_settings.ws_url is None and venue_settings.network not in names:
                raise ValueError(
                    f"venues.{venue}.network: {venue_settings.network!r} is not one of {', '.join(names)}"
                )
        return self

    def enabled_venues(self) -> list[Venue]:
        return [venue for venue, vs in self.venues.items() if vs.enabled]

    def demo_venues(self) -> list[Venue]:
        """Venues served by the built-in emulators."""
        return [
            venue
            for venue, vs in self.venues.items()
            if vs.enabled and vs.ws_url is None and vs.network == DEMO
        ]

    def endpoint(self, venue: Venue) -> Endpoint | None:
        """The real endpoint of a venue, or ``None`` when it runs on the emulator."""
        vs = self.venues[venue]
        if vs.ws_url is not None and vs.http_url is not None:
            return Endpoint(vs.ws_url, vs.http_url)
        if vs.network == DEMO:
            return None
        return NETWORKS[venue][vs.network]


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "config"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {item['msg']}{shown}")
    return "; ".join(lines)


def apply_endpoint_override(raw: dict[str, Any], override: str) -> None:
    """Apply ``--endpoint VENUE=NETWORK`` or ``VENUE=WS_URL,HTTP_URL`` to raw config data."""
    venue, sep, target = override.partition("=")
    if not sep or not target:
        raise ConfigError(f"--endpoint {override!r}: expected VENUE=NETWORK or VENUE=WS_URL,HTTP_URL")
    venue_raw = raw.setdefault("venues", {}).setdefault(venue, {})
    if "://" in target:
        ws_url, _, http_url = target.partition(",")
        venue_raw.update(ws_url=ws_url, http_url=http_url or None)
    else:
        venue_raw.update(network=target)


def load_settings(
    path: Path | None = None, endpoints: Sequence[str] = (), **overrides: Any
) -> Settings:
    """Read the TOML file (if any), apply command-line overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    for override in endpoints:
        apply_endpoint_override(raw, override)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    # Venues the file does not mention keep their defaults.
    venues = raw.setdefault("venues", {})
    for venue in ADAPTERS:
        venues.setdefault(str(venue), {})
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config error: {_describe(exc)}") from None
