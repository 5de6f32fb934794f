"""A small JSON-over-HTTP client for venue snapshot endpoints, with the venue's rate limit.

aiohttp (already the emulators' server) is used rather than a hand-written HTTP/1.1 client: it
keeps connections alive, handles TLS with certificate verification on by default, and timeouts.
Error messages never include request bodies or query strings, which may carry secrets, and show
the venue's error body escaped (no control characters) and cut short.

Every request of one venue goes through one :class:`RateLimiter`, so a reconnect that refetches
twenty snapshots queues behind the venue's limit instead of bursting into a ban; a 429 (or 418,
or 503) with ``Retry-After`` pauses the whole venue for that long. Venues that count per API key
(Perpex: 120 a minute) get one limiter per key (:func:`shared_limiter`), whoever uses the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import orjson

from app.logsafe import escape
from app.record import record_rest

_BACK_OFF_STATUSES = (418, 429, 503)


class RestError(Exception):
    """A snapshot request failed; the message is safe to show (no secrets, no venue markup).
    ``retry_after``: seconds the venue asked us to wait, when it said."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RateLimiter:
    """At most ``per_minute`` request weight in any ``window`` seconds, plus a pause that a venue's
    Retry-After imposes on every request.

    A sliding window, not a token bucket: a bucket holding a minute's weight and refilled
    continuously lets through up to twice the limit within one minute, which a venue counting a
    rolling minute answers with 429. Whatever a sliding window lets through, a bucket of the same
    limit would too, so this is safe whichever way the venue counts. ``margin`` seconds are added
    to the window for the two clocks and the network between them.
    """

    def __init__(
        self, per_minute: float, *, window: float = 60.0, margin: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = per_minute * window / 60.0
        self._span = window + margin
        self._sent: deque[tuple[float, float]] = deque()  # (when, weight) within the span
        self._used = 0.0
        self._clock = clock
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self, weight: float = 1.0) -> None:
        """Wait until ``weight`` fits in the window, then count it. No lock: waiters that wake
        together check again, and only the ones that fit go (no lock also means no event loop
        bound to a limiter shared by several clients)."""
        weight = min(weight, self.capacity)  # heavier than the limit: alone in a window
        while True:
            now = self._clock()
            while self._sent and self._sent[0][0] <= now - self._span:
                self._used -= self._sent.popleft()[1]
            wait = self._paused_until - now
            if wait <= 0 and self._used + weight <= self.capacity:
                self._sent.append((now, weight))
                self._used += weight
                return
            if wait <= 0:  # until enough of the oldest requests leave the window
                freed, wait = 0.0, 0.0
                for sent_at, sent_weight in self._sent:
                    freed += sent_weight
                    wait = sent_at + self._span - now
                    if self._used - freed + weight <= self.capacity:
                        break
            await asyncio.sleep(max(wait, 0.001))


_shared: dict[tuple[str, str], RateLimiter] = {}


def shared_limiter(scope: str, secret: str | None, per_minute: float) -> RateLimiter:
    """The one limiter of ``scope`` (a venue and host) for requests made with ``secret`` (an
    API key or token; ``None``: unauthenticated, counted per address), so every client using the
    key draws on the venue's one allowance. The key is held only as a hash."""
    fingerprint = "" if secret is None else hashlib.sha256(secret.encode()).hexdigest()
    limiter = _shared.get((scope, fingerprint))
    if limiter is None or limiter.capacity != per_minute:
        limiter = _shared[(scope, fingerprint)] = RateLimiter(per_minute)
    return limiter


class RestClient:
    """One keep-alive session per venue base URL, opened on first use."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``headers`` go with every request (a venue's API key); they are never recorded."""
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.headers = dict(headers or {})
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def get_json(self, path: str, params: Mapping[str, Any] | None = None, *, weight: float = 1.0) -> Any:
        return await self._json("GET", path, params=params, weight=weight)

    async def post_json(self, path: str, body: Any, *, weight: float = 1.0) -> Any:
        return await self._json("POST", path, body=body, weight=weight)

    async def _json(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
        weight: float = 1.0,
    ) -> Any:  # fmt: skip
        """The parsed response; inside a recording scope the raw response is recorded too (after
        the last await, so nothing else is received between recording and applying it)."""
        payload = await self.fetch(
            method, path, params=params, body=None if body is None else orjson.dumps(body), weight=weight
        )
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RestError(f"{method} {path}: response is not JSON") from None
        record_rest(method, path, params, body, payload)
        return value

    async def fetch(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: bytes | None = None,
        weight: float = 1.0,
    ) -> bytes:  # fmt: skip
        """The raw body of a 200 response (``RestError`` for anything else)."""
        if self.limiter is not None:
            await self.limiter.acquire(weight)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        what = f"{method} {path}"
        headers = {**self.headers, "Content-Type": "application/json"} if body is not None else self.headers
        try:
            async with self._session.request(
                method, self.base_url + path, params=params, data=body, headers=headers
            ) as response:
                payload = await response.read()
                if response.status != 200:
                    raise self._error(what, response.status, response.headers.get("Retry-After"), payload)
        except aiohttp.ClientError as exc:
            raise RestError(f"{what}: {type(exc).__name__}") from None
        except TimeoutError:
            raise RestError(f"{what}: timed out") from None
        return payload

    def _error(self, what: str, status: int, retry_after: str | None, payload: bytes) -> RestError:
        wait = _seconds(retry_after) if status in _BACK_OFF_STATUSES else None
        if wait is not None and self.limiter is not None:
            self.limiter.pause(wait)
        snippet = escape(payload[:120].decode("utf-8", "replace"), 120)
        return RestError(f"{what}: HTTP {status}: {snippet}", status=status, retry_after=wait)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _seconds(header: str | None) -> float | None:
    """Retry-After in seconds (the HTTP-date form is not used by the venues we speak)."""
    try:
        return max(0.0, min(float(header), 600.0)) if header else None
    except ValueError:
        return None
