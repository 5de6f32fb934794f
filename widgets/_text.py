"""Make venue-supplied text inert before it reaches the terminal.

Market names and error reasons come from venues we do not control. Widgets never parse them as
Rich markup (they build ``Segment``s with explicit styles), but the raw characters still reach the
terminal: an ESC could start an escape sequence (retitle the window, move the cursor, write to the
clipboard), bidi overrides can make text read differently from what it is, and a lone surrogate
cannot be encoded for the terminal at all (the write would raise). :func:`inert` removes all of
that and keeps printable text, zero-width joiners included, as it is.

Markup is a separate matter: the result is plain text and must reach Textual as such (``Content``
or a ``Text``, ``notify(..., markup=False)``), never as a markup string.
"""

from __future__ import annotations

import re

# Whole escape sequences first, so their parameters ("]0;pwned") do not survive as visible text.
_ESCAPE_SEQUENCE = re.compile(
    r"""
      (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?            # CSI ... final byte
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])      # OSC, DCS, SOS, PM, APC ...
      [^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?        # ... up to BEL or ST (or the end)
    | \x1b[ -/]*[0-~]?                             # any other ESC sequence, or a lone ESC
    """,
    re.VERBOSE,
)
_LINE_BREAKS = re.compile(r"[\t\n\r\v\f\x85\u2028\u2029]")
# C0 and C1 controls, DEL, the bidi embedding/override/isolate controls and marks, and surrogates.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def inert(text: object) -> str:
    """Return ``text`` as a single line with escape sequences and control characters removed."""
    cleaned = _ESCAPE_SEQUENCE.sub("", str(text))
    cleaned = _LINE_BREAKS.sub(" ", cleaned)
    return _CONTROLS.sub("", cleaned)
