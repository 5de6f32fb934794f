"""The secrets this process holds (API keys, tokens), and their removal from anything shown.

A venue key reaches a URL (perps.studio takes it as the ``apiKey`` query parameter), and a URL can
reach an error message, a log line or a notification. So every secret is registered here when the
adapter that uses it is built, and :func:`redact` replaces it wherever it appears: the log escape,
the app's notifications and the logging filter all go through it. Secrets are held as pydantic
``SecretStr`` until that moment, so ``repr`` and validation errors never show them either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields

from pydantic import SecretStr

REDACTED = "***"
MIN_SECRET_CHARS = 6  # shorter values would redact ordinary text; no real key is that short

_secrets: set[str] = set()
# Credentials in a URL or a header-like text, whether or not the value was registered.
_CREDENTIAL_PARAMETER = re.compile(r"(?i)\b(api[_-]?key|token|jwt|secret|password)=([^&\s\"']+)")


def register(secret: SecretStr | str | None) -> None:
    """Remember ``secret`` so that :func:`redact` removes it from every text from now on."""
    value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if value and len(value) >= MIN_SECRET_CHARS:
        _secrets.add(value)


def redact(text: str) -> str:
    """``text`` without any registered secret, nor any ``apiKey=...``-style credential."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _CREDENTIAL_PARAMETER.sub(lambda m: f"{m.group(1)}={REDACTED}", text)


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a venue may want from the user, each a ``SecretStr`` until a dial or request uses it:
    an ``api_key`` (perps.studio), a key and ``api_secret`` exchanged for tokens (Rails), or a
    ``token`` given as is (Perpex's JWT)."""

    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    token: SecretStr | None = None

    @classmethod
    def of(cls, values: Mapping[str, object]) -> Credentials:
        """The credentials among ``values`` (an emulator's announcement, a config table); other
        entries and non-text values are left out."""
        return cls(**{
            f.name: SecretStr(value) for f in fields(cls) if isinstance(value := values.get(f.name), str) and value
        })

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def register(self) -> None:
        """Redact every one of them from now on."""
        for f in fields(self):
            register(getattr(self, f.name))


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, formatted, with every secret removed (libraries
    such as ``websockets`` log URLs we do not control)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
