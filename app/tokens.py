"""Bearer tokens for the venues that want one on every connection (Perpex, Rails).

A :class:`TokenSource` is asked for a token before every dial. A token given in the config
(:class:`GivenToken`) is used as is until its ``exp``, then refused with a clear message: dialling
with it would only be refused by the venue, again and again. A token the venue issues for a key and
secret (:class:`IssuedToken`) is fetched once, shared by every connection, and fetched anew when
less than 60 % of its life is left, so a socket opened with it lasts long enough to be replaced
before the token expires (the dial's ``max_lifetime``, :meth:`TokenSource.lifetime`: the
service opens the replacement, with a fresh token, before the old socket's token runs out).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from pydantic import SecretStr

from app import jwt, secrets
from app.venues.base import Refused

# Fetch a new token when less than this share of its life is left: more than a socket has left
# when it is replaced (at most half its life, see app.supervisor.rotation_due), so a replacement
# always dials with a new token.
REFRESH_SHARE = 0.6


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M UTC")


class TokenSource:
    """Where a venue's bearer token comes from, and how long the one at hand still holds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._expires_at: float | None = None

    async def token(self) -> str:
        """A token good for a while yet; raises :class:`Refused` when there can be none."""
        raise NotImplementedError

    def lifetime(self) -> float | None:
        """Seconds until the token last handed out expires (``None``: it states no expiry): the
        most a socket opened with it may live."""
        return None if self._expires_at is None else max(0.0, self._expires_at - self._clock())


class GivenToken(TokenSource):
    """A token the user configured; ``name`` says where it comes from, for the message that asks
    for a new one."""

    def __init__(self, token: SecretStr, name: str, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)
        self._token = token
        self._name = name
        self._expires_at = jwt.expires_at(token.get_secret_value())

    async def token(self) -> str:
        if self._expires_at is not None and self._expires_at <= self._clock():
            raise Refused(f"token expired at {_when(self._expires_at)}: set a new one as {self._name}")
        return self._token.get_secret_value()


class IssuedToken(TokenSource):
    """Tokens the venue issues on request: ``fetch`` returns the token and its life in seconds.
    Concurrent callers share one request; each token is registered for redaction."""

    def __init__(
        self, fetch: Callable[[], Awaitable[tuple[str, float]]], clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock)
        self._fetch = fetch
        self._token: str | None = None
        self._issued_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0  # tokens fetched, for the health display and tests

    def _due(self) -> bool:
        if self._token is None or self._expires_at is None:
            return True
        life = self._expires_at - self._issued_at
        return self._expires_at - self._clock() < life * REFRESH_SHARE

    async def token(self) -> str:
        async with self._lock:
            if self._due():
                token, expires_in = await self._fetch()
                secrets.register(token)
                self.fetches += 1
                self._issued_at = self._clock()
                self._token = token
                # The token's own exp where it states one; the answer's expires_in otherwise.
                self._expires_at = jwt.expires_at(token) or self._issued_at + expires_in
            assert self._token is not None
            return self._token
