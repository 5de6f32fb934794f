"""The REST client against the emulator over real HTTP: GET and POST, the venue-wide rate limit,
and a 429 with Retry-After pausing every request of the venue."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.rest import RateLimiter, RestClient, RestError


async def test_get_and_post(emulator):
    client = RestClient(emulator.http_url)
    try:
        meta = await client.post_json("/info", {"type": "meta"})
        assert any(asset["name"] == "BTC" for asset in meta["universe"])
        with pytest.raises(RestError, match="GET /info: HTTP 405"):
            await client.get_json("/info", {"type": "meta"})
    finally:
        await client.close()


async def test_limiter_queues_a_burst_behind_the_window():
    limiter = RateLimiter(per_minute=600, window=0.5, margin=0.1)  # 5 in any 0.6 s
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    assert time.monotonic() - started < 0.1
    await limiter.acquire(2)  # the window is full: waits until the first requests leave it
    assert time.monotonic() - started >= 0.55


async def test_limiter_never_lets_more_than_the_limit_into_any_window():
    limiter = RateLimiter(per_minute=600, window=0.3, margin=0.05)  # 3 weight in any 0.35 s
    sent: list[tuple[float, int]] = []

    async def client(weight: int) -> None:
        for _ in range(6):
            await limiter.acquire(weight)
            sent.append((time.monotonic(), weight))

    await asyncio.gather(client(1), client(2), client(1))
    assert len(sent) == 18
    for start, _ in sent:  # counts, not speed: a slow machine lets fewer through, never more
        assert sum(w for t, w in sent if start <= t < start + 0.35) <= 3


async def test_retry_after_pauses_the_whole_venue(emulator):
    limiter = RateLimiter(per_minute=6000)
    client = RestClient(emulator.http_url, limiter=limiter)
    try:
        emulator.fail_http(429, '{"code":-1003,"msg":"Too many requests"}', retry_after=0.5)
        with pytest.raises(RestError) as caught:
            await client.post_json("/info", {"type": "meta"})
        assert caught.value.status == 429 and caught.value.retry_after == 0.5
        emulator.fail_http(None)
        started = time.monotonic()
        await client.post_json("/info", {"type": "meta"})
        assert time.monotonic() - started >= 0.4  # waited out the venue's pause
    finally:
        await client.close()
