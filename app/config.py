"""Configuration: a TOML file (``--config``) plus command-line overrides, validated by pydantic.

With no configuration every venue uses its built-in emulator (``network = "demo"``). Pointing a
venue at a real exchange is one line::

    [venues.hyperliquid]
    network = "mainnet"          # or "testnet", or ws_url/http_url for any other endpoint

Errors name the key, the value and what was expected, but never echo a secret: URL credentials,
query strings, values of secret-looking or unknown keys (see :func:`load_settings`).
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from app.logsafe import escape
from app.model import Venue
from app.secrets import Credentials
from app.venues import ADAPTERS, NETWORKS
from app.venues.base import Endpoint

DEMO = "demo"
INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d")


# Key names whose values are never shown; an unknown key may be one of these misspelt.
_SECRET_NAME = re.compile(
    r"key|secret|token|pass|private|jwt|auth|credential|mnemonic|signature|cookie", re.IGNORECASE
)


class ConfigError(ValueError):
    """A configuration problem, phrased for the user."""


def redact_url(url: str) -> str:
    """``url`` fit for a message: ``user:password@`` and ``?query``/``#fragment`` can hold credentials.

    Everything up to the last ``@`` goes, even without a scheme, so a mistyped URL cannot leak either.
    """
    shown = re.sub(r"[?#].*", "?***", url, flags=re.S)
    scheme, sep, rest = shown.partition("://")
    if not sep:
        scheme, rest = "", shown
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


def _shown(value: object) -> str:
    """``repr(value)``, escaped for the terminal, with URL credentials hidden."""
    return repr(redact_url(value)) if isinstance(value, str) else repr(value)


def _got(value: object) -> str:
    """`` (got VALUE)`` for a scalar; a table or array is not echoed, it may hold anything."""
    return f" (got {_shown(value)})" if isinstance(value, str | int | float) else ""


def _check_url(url: str | None, schemes: tuple[str, ...]) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected a {' or '.join(schemes)} URL with a host")
    try:
        parts.port  # urllib checks the port only when it is read
    except ValueError:
        raise ValueError("expected a port number 0-65535") from None
    return url


@cache
def theme_names() -> tuple[str, ...]:
    """perpterm's themes, then Textual's built-in ones: what the app can switch to by name."""
    from textual.theme import BUILTIN_THEMES  # imported here: only a configured theme needs Textual

    from themes import load_themes

    return (*(theme.name for theme in load_themes()), *BUILTIN_THEMES)


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")

CREDENTIAL_ENV = "PERPTERM_{venue}_{field}"
"""Where a venue's credential may come from instead of the config file
(``PERPTERM_PERPS_STUDIO_API_KEY``, ``PERPTERM_RAILS_API_SECRET``, ``PERPTERM_PERPEX_TOKEN``)."""

CREDENTIAL_FIELDS = ("api_key", "api_secret", "token")


def credential_variable(venue: Venue, field: str = "api_key") -> str:
    return CREDENTIAL_ENV.format(venue=str(venue).upper().replace("-", "_"), field=field.upper())


class VenueSettings(BaseModel):
    """How to reach one venue."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    network: str = DEMO
    ws_url: str | None = None
    http_url: str | None = None
    markets: list[str] = Field(default_factory=list, description="markets to show first")
    wallet: str | None = Field(
        None, description="account address whose positions, fills and liquidation state to show"
    )
    api_key: SecretStr | None = Field(
        None, description="the venue's API key (or the environment variable PERPTERM_<VENUE>_API_KEY)"
    )
    api_secret: SecretStr | None = Field(
        None, description="the secret that goes with api_key where the venue issues tokens for both (Rails)"
    )
    token: SecretStr | None = Field(None, description="a bearer token (JWT) the venue issued (Perpex)")

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.api_key, self.api_secret, self.token)

    @field_validator("wallet")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        # An address is public (not a secret), but it is checked so a typo fails here, not later.
        if value is not None and not _ADDRESS.fullmatch(value):
            raise ValueError("expected an address: 0x and 40 hex digits")
        return None if value is None else value.lower()

    _check_ws = field_validator("ws_url")(lambda v: _check_url(v, ("ws", "wss")))
    _check_http = field_validator("http_url")(lambda v: _check_url(v, ("http", "https")))

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

    @field_validator("theme")
    @classmethod
    def _known_theme(cls, value: str) -> str:
        names = theme_names()
        if value not in names:
            raise ValueError(f"expected a theme such as {', '.join(names[:5])} ({len(names)} in all)")
        return value

    @model_validator(mode="after")
    def _known_networks(self) -> Settings:
        for venue, venue_settings in self.venues.items():
            if venue not in ADAPTERS:
                raise ValueError(f"venues.{venue}: not supported yet")
            names = (DEMO, *NETWORKS.get(venue, {}))
            if venue_settings.ws_url is None and venue_settings.network not in names:
                network = _shown(venue_settings.network)
                raise ValueError(f"venues.{venue}.network: {network} is not one of {', '.join(names)}")
        return self

    def enabled_venues(self) -> list[Venue]:
        return [venue for venue, vs in self.venues.items() if vs.enabled]

    def credentials(self) -> dict[Venue, Credentials]:
        """The credentials of each enabled venue that has any."""
        return {venue: vs.credentials for venue, vs in self.venues.items() if vs.enabled and vs.credentials}

    def wallets(self) -> dict[Venue, str]:
        """The configured account address of each enabled venue that has one."""
        return {venue: vs.wallet for venue, vs in self.venues.items() if vs.enabled and vs.wallet}

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
    """One clause per problem: the dotted key, what was expected, and the value if safe to show."""
    clauses = []
    for item in error.errors():
        loc = [escape(part, 60) for part in item["loc"] if part != "[key]"]  # keys are the file's text
        clause = item["msg"].removeprefix("Value error, ")
        if loc:  # without one, the message comes from a model validator that names its key
            clause = f"{'.'.join(loc)}: {clause}"
        unknown_key = item["type"] == "extra_forbidden"  # maybe a misspelt secret
        if not unknown_key and not any(_SECRET_NAME.search(part) for part in loc):
            clause += _got(item.get("input"))
        clauses.append(clause)
    return "; ".join(clauses)


def _table(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """``parent[key]``, created empty if missing; the file may hold anything there, not just a table."""
    table = parent.setdefault(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"config error: {where}: expected a table{_got(table)}")
    return table


def apply_endpoint_override(raw: dict[str, Any], override: str) -> None:
    """Apply ``--endpoint VENUE=NETWORK`` or ``VENUE=WS_URL,HTTP_URL`` to raw config data."""
    venue, sep, target = override.partition("=")
    if not sep or not target:
        raise ConfigError(f"--endpoint {_shown(override)}: expected VENUE=NETWORK or VENUE=WS_URL,HTTP_URL")
    if venue not in ADAPTERS:
        raise ConfigError(
            f"--endpoint: unknown venue {_shown(venue)} (expected one of {', '.join(ADAPTERS)})"
        )
    venue_raw = _table(_table(raw, "venues", "venues"), venue, f"venues.{venue}")
    if "://" in target:
        ws_url, _, http_url = target.partition(",")
        venue_raw.update(ws_url=ws_url, http_url=http_url or None)
    else:
        venue_raw.update(network=target)


def load_settings(
    path: Path | None = None,
    endpoints: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
    **overrides: Any,
) -> Settings:
    """Read the TOML file (if any), apply command-line overrides and the API keys of the
    environment (:func:`credential_variable`; the file wins), validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    for override in endpoints:
        apply_endpoint_override(raw, override)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    # Venues the file does not mention keep their defaults.
    venues = _table(raw, "venues", "venues")
    for venue in ADAPTERS:
        venue_raw = _table(venues, str(venue), f"venues.{venue}")
        for field in CREDENTIAL_FIELDS:
            if field not in venue_raw and (value := environ.get(credential_variable(venue, field))):
                venue_raw[field] = value
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"config error: {_describe(exc)}") from None


def exposed_secrets(path: Path, settings: Settings) -> str | None:
    """A warning when the config file holds a credential and others may read it, else ``None``."""
    text = path.read_text(encoding="utf-8")
    if not any(vs.credentials for vs in settings.venues.values()) or not any(f in text for f in CREDENTIAL_FIELDS):
        return None
    mode = path.stat().st_mode
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return f"{path} holds a venue credential and other users can read it: chmod 600 {path}"
