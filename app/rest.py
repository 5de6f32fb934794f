"""A small JSON-over-HTTP client for venue snapshot endpoints.

aiohttp (already the emulators' server) is used rather than a hand-written HTTP/1.1 client: it
keeps connections alive, handles TLS with certificate verification on by default, and timeouts.
Error messages never include request bodies or query strings, which may carry secrets, and show
the venue's error body escaped (no control characters) and cut short.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from app.logsafe import escape


class RestError(Exception):
    """A snapshot request failed; the message is safe to show (no secrets, no venue markup)."""


class RestClient:
    """One keep-alive session per venue base URL, opened on first use."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def post_json(self, path: str, body: Any) -> Any:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = self.base_url + path
        try:
            async with self._session.post(
                url, data=orjson.dumps(body), headers={"Content-Type": "application/json"}
            ) as response:
                payload = await response.read()
                if response.status != 200:
                    snippet = escape(payload[:120].decode("utf-8", "replace"), 120)
                    raise RestError(f"POST {path}: HTTP {response.status}: {snippet}")
        except aiohttp.ClientError as exc:
            raise RestError(f"POST {path}: {type(exc).__name__}") from None
        except TimeoutError:
            raise RestError(f"POST {path}: timed out") from None
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise RestError(f"POST {path}: response is not JSON") from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
