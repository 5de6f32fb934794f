"""The REST client against the emulator over real HTTP: GET and POST, the venue-wide rate limit,
and a 429 with Retry-After pausing every request of the venue."""

from __future__ import annotations

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


async def test_limiter_queues_a_burst_behind_the_limit():
    limiter = RateLimiter(per_minute=600)  # 10 a second, a minute's worth at once
    started = time.monotonic()
    await limiter.acquire(600)
    assert time.monotonic() - started < 0.1
    await limiter.acquire(5)  # the bucket is empty: waits for 5 tokens at 10 a second
    assert time.monotonic() - started >= 0.45


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
