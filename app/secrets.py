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


class RedactingFilter(logging.Filter):
    """A handler filter: the record's message, formatted, with every secret removed (libraries
    such as ``websockets`` log URLs we do not control)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
