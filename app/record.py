"""Recording what a venue sends (``perpterm --record FILE``), and the parts of the format that
recording and replay (:mod:`app.replay`) share.

A recording is JSON Lines: one object per inbound WebSocket frame and per REST snapshot response
that feeds state, in the order they were taken in (the order they were applied)::

    {"t": 1753000000.123, "venue": "aster", "conn": "aster-perp#2", "kind": "ws",
     "path": "/stream", "frame": "{\\"stream\\":\\"btcusdt@depth@100ms\\",...}"}
    {"t": 1753000000.201, "venue": "aster", "conn": "aster-perp#2", "kind": "rest",
     "path": "GET /fapi/v1/depth?symbol=BTCUSDT&limit=1000", "frame": "{\\"lastUpdateId\\":...}"}

``t`` is the receipt time (unix seconds), ``conn`` the connection's label (see
:func:`connection_label`: it names the connection group, which replay needs to route frames;
from the connection's second session on, after a reconnect, it ends in ``/N``, see
:func:`session_label`, so that replay clears the streams where the live client did),
``path`` the WebSocket URL's path (never its query string, which may carry a key) or the REST
request as ``METHOD path?query body`` with secret-looking parameters removed, and ``frame`` the
raw text as it arrived. A binary frame that is not UTF-8 (no venue we speak sends one) is stored
base64-encoded with ``"encoding": "base64"``.

Writes go to a buffered file (flushed about once a second and on close), serialized by orjson:
recording costs the receive path a few microseconds a frame. A write error stops the recording
(logged once) rather than the feed.

REST responses are recorded by :class:`~app.rest.RestClient` for requests made inside a
*recording scope*: :func:`record_snapshots` marks the current task (a connection's snapshot fetch)
as fetching for a connection, so only snapshot responses are recorded, under the label of the
connection whose streams they feed, and adapters need no recording code of their own.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Hashable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

log = logging.getLogger("perpterm.record")

FIELDS = ("t", "venue", "conn", "kind", "path", "frame")
KINDS = ("ws", "rest")
FLUSH_EVERY = 1.0  # seconds

# A parameter or body field whose name ends like a credential (apiKey, listenKey, token,
# signature, ...) or mentions one anywhere (secret, password) is not recorded. ``token_id`` (a
# Polymarket asset) ends in ``id`` and is kept.
_SECRET_END = re.compile(r"(key|token|secret|signature|sig|passphrase|password|auth|authorization|jwt|credentials?)$")
_SECRET_ANYWHERE = re.compile(r"secret|password|passphrase|private|mnemonic|cookie")


def is_secret_name(name: str) -> bool:
    plain = name.lower().replace("_", "").replace("-", "")
    return bool(_SECRET_END.search(plain) or _SECRET_ANYWHERE.search(plain))


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not (isinstance(k, str) and is_secret_name(k))}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def request_path(method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> str:
    """A REST request as recorded: ``METHOD path?query body`` (query and body without secrets)."""
    text = f"{method} {path}"
    if params:
        kept = [(k, v) for k, v in params.items() if not is_secret_name(str(k))]
        if kept:
            text += "?" + urlencode(kept)
    if body is not None:
        text += " " + orjson.dumps(_without_secrets(body)).decode()
    return text


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    body: Any = None


def parse_request(text: str) -> RecordedRequest | None:
    """The parts of a recorded REST ``path`` (see :func:`request_path`), or ``None`` if it has
    not that shape. Adapters read it in ``key_for_request``."""
    method, _, rest = text.partition(" ")
    target, _, body_text = rest.partition(" ")
    path, _, query = target.partition("?")
    if not method or not path.startswith("/"):
        return None
    body = None
    if body_text:
        try:
            body = orjson.loads(body_text)
        except orjson.JSONDecodeError:
            return None
    return RecordedRequest(method, path, dict(parse_qsl(query, keep_blank_values=True)), body)


# --- connection labels ---------------------------------------------------------------------------


def connection_label(venue: str, group: Hashable, number: int) -> str:
    """``hyperliquid#1`` for a venue's only group, ``aster-spot#3`` otherwise: the label says which
    group a connection serves (replay needs it to map a route back to a stream), no secrets."""
    return f"{venue}#{number}" if group == () else f"{venue}-{group}#{number}"


def group_of_label(venue: str, label: str) -> Hashable:
    """The connection group a label names (the inverse of :func:`connection_label`): ``()`` when
    it names none. Groups are strings (or ``()``), so the one in the label is the group."""
    rest = label[len(venue) :] if label.startswith(venue) else ""
    name = rest.partition("#")[0]
    return name[1:] if name.startswith("-") and len(name) > 1 else ()


def session_label(label: str, session: int) -> str:
    """The label recorded for a connection's ``session``-th socket: the label itself for the
    first, ``hyperliquid#1/2`` for the second, and so on."""
    return label if session <= 1 else f"{label}/{session}"


def split_session(conn: str) -> tuple[str, int]:
    """A recorded ``conn`` as (connection label, session number): the inverse of :func:`session_label`."""
    label, sep, number = conn.rpartition("/")
    if sep and number.isascii() and number.isdigit() and int(number) >= 2:
        return label, int(number)
    return conn, 1


# --- the recorder --------------------------------------------------------------------------------


class Recorder:
    """Appends lines to a recording; ``close`` flushes it. Calls after ``close`` do nothing."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._file = open(self.path, "wb", buffering=1 << 20)  # OSError if it cannot be written
        self._clock = clock
        self._flushed_at = clock()
        self.lines = 0
        self.closed = False

    def ws(self, venue: str, conn: str, path: str, frame: str | bytes) -> None:
        """One inbound WebSocket frame of connection ``conn`` (``path``: the URL's path only)."""
        self._write(venue, conn, "ws", path, frame)

    def rest(self, venue: str, conn: str, path: str, payload: bytes | str) -> None:
        """One REST response (``path`` from :func:`request_path`)."""
        self._write(venue, conn, "rest", path, payload)

    def _write(self, venue: str, conn: str, kind: str, path: str, frame: str | bytes) -> None:
        if self.closed:
            return
        t = self._clock()
        line: dict[str, Any] = {"t": t, "venue": str(venue), "conn": conn, "kind": kind, "path": path}
        if isinstance(frame, str):
            line["frame"] = frame
        else:
            try:
                line["frame"] = frame.decode()
            except UnicodeDecodeError:
                line["frame"], line["encoding"] = base64.b64encode(frame).decode(), "base64"
        try:
            self._file.write(orjson.dumps(line))
            self._file.write(b"\n")
            if t - self._flushed_at >= FLUSH_EVERY:
                self._flushed_at = t
                self._file.flush()
        except (OSError, TypeError, orjson.JSONEncodeError) as exc:
            log.error("recording to %s stopped: %s", self.path, exc)
            self.close()
            return
        self.lines += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except OSError as exc:
            log.error("closing the recording %s: %s", self.path, exc)

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the recording scope of REST requests --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Scope:
    recorder: Recorder
    venue: str
    conn: str


_SCOPE: ContextVar[_Scope | None] = ContextVar("perpterm_record_scope", default=None)


def record_snapshots(recorder: Recorder, venue: str, conn: str) -> None:
    """Record the REST responses that the current task (and tasks it starts) receives, as
    connection ``conn``'s. Called at the start of a connection's snapshot fetch, which runs in its
    own task, so the scope ends with it."""
    _SCOPE.set(_Scope(recorder, venue, conn))


def record_rest(method: str, path: str, params: Mapping[str, Any] | None, body: Any, payload: bytes) -> None:
    """Called by :class:`~app.rest.RestClient` with every JSON response; recorded in a scope only."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.recorder.rest(scope.venue, scope.conn, request_path(method, path, params, body), payload)
