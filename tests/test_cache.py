"""Caches stay bounded in size and forget what is old."""

from __future__ import annotations

import httpx2
import pytest

from clanpulse.net.cache import TTLCache
from clanpulse.net.ratelimit import MAX_TRACKED_BUCKETS, DiscordRateLimiter


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_lifetime() -> None:
    clock = Ticker()
    cache: TTLCache[str, int] = TTLCache(10, ttl=5, clock=clock)
    cache.set("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_size_never_passes_the_maximum_and_the_least_recent_goes_first() -> None:
    clock = Ticker()
    cache: TTLCache[int, int] = TTLCache(3, ttl=100, clock=clock)
    for key in range(3):
        cache.set(key, key)
    assert cache.get(0) == 0  # 0 is now the most recent; 1 the least
    cache.set(3, 3)
    assert len(cache) == 3
    assert cache.get(1) is None
    assert [cache.get(k) for k in (0, 2, 3)] == [0, 2, 3]


def test_expired_entries_make_room_before_live_ones_are_dropped() -> None:
    clock = Ticker()
    cache: TTLCache[int, int] = TTLCache(3, ttl=10, clock=clock)
    cache.set(0, 0)
    clock.now = 6
    cache.set(1, 1)
    cache.set(2, 2)
    clock.now = 11  # 0 has expired, 1 and 2 have not
    cache.set(3, 3)
    assert [cache.get(k) for k in (0, 1, 2, 3)] == [None, 1, 2, 3]


def test_a_cache_needs_a_size_and_a_lifetime() -> None:
    with pytest.raises(ValueError):
        TTLCache(0, ttl=1)
    with pytest.raises(ValueError):
        TTLCache(1, ttl=0)


def test_the_rate_limiter_remembers_a_bounded_number_of_buckets() -> None:
    limiter = DiscordRateLimiter()
    request = httpx2.Request("GET", "http://127.0.0.1/channels/1/messages")
    for channel in range(MAX_TRACKED_BUCKETS + 500):
        response = httpx2.Response(
            200,
            headers={"x-ratelimit-remaining": "4", "x-ratelimit-reset-after": "1.0"},
            request=request,
        )
        limiter.after(f"GET /channels/{{id}}/messages|{channel}", response)
    assert len(limiter._buckets) == MAX_TRACKED_BUCKETS
