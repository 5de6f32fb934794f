"""Venue text in the log: escaped, bounded, and not repeated without end.

A log file is read in a terminal (``tail -f``), so venue text written to it must not carry escape
sequences or bidi controls; :func:`escape` makes them visible as ``\\x1b``-style escapes instead of
removing them, because in a log the evidence matters. A venue that sends the same bad frame a
thousand times a second must not fill the disk: :class:`QuietLog` writes the first of each kind and
then one summary line per window.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from app.secrets import redact

_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: object, limit: int = 200) -> str:
    """``text`` on one line with every control and bidi character shown as an escape and every
    secret removed (:func:`app.secrets.redact`), cut to ``limit`` characters."""
    shown = _UNSAFE.sub(_visible, redact(str(text)))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class QuietLog:
    """Rate-limited warnings keyed by kind: the first one of a kind is written at once, repeats
    within ``window`` seconds are counted and summed up by the next one written after it."""

    def __init__(
        self, logger: logging.Logger, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._logger = logger
        self._window = window
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (written at, repeats since)

    def warning(self, kind: str, message: str) -> bool:
        """Write ``message`` (escaped) unless ``kind`` was written less than a window ago.
        Returns whether it was written."""
        now = self._clock()
        written_at, repeats = self._last.get(kind, (-self._window, 0))
        if now - written_at < self._window:
            self._last[kind] = (written_at, repeats + 1)
            return False
        suffix = f" (and {repeats} more like it)" if repeats else ""
        self._logger.warning("%s%s", escape(message), suffix)
        self._last[kind] = (now, 0)
        return True
