"""Rate limiters driven by what the server says, never by hard-coded numbers.

Discord: limits apply per (bucket, top-level resource). The caller names each request's
key as ``<method> <route template>|<top-level id>``, e.g. ``GET /channels/{id}/messages|42``;
responses tell us the bucket and how many requests are left until when.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

import httpx2

from clanpulse.net.cache import TTLCache

# Bucket states are remembered for this many distinct resources at most, each for as long
# as any reset window lasts; then the next response tells us anew.
MAX_TRACKED_BUCKETS = 10_000
BUCKET_TTL = 600.0
# Route -> bucket id mappings: few (one per route template), refreshed hourly.
MAX_ROUTES = 1000
ROUTE_TTL = 3600.0
MIN_RATE = 1.0  # requests per second the global spacing never goes below
RATE_RECOVERY = 0.05  # requests per second regained per successful response


@dataclass(slots=True)
class _BucketState:
    remaining: int | None = None
    reset_at: float = 0.0  # monotonic seconds


class DiscordRateLimiter:
    """Discord's header model: per-bucket remaining/reset, a global pause on global 429s."""

    def __init__(self, global_per_second: float = 50.0) -> None:
        self._buckets: TTLCache[str, _BucketState] = TTLCache(MAX_TRACKED_BUCKETS, BUCKET_TTL)
        # route template -> Discord's bucket id, learned from X-RateLimit-Bucket: routes that
        # share a bucket share its counters (per top-level resource)
        self._route_bucket: TTLCache[str, str] = TTLCache(MAX_ROUTES, ROUTE_TTL)
        self._global_until = 0.0
        # Requests are spaced evenly at this rate. A global 429 halves it (whatever the real
        # limit is, we back off under it); each success earns a little of it back.
        self._max_rate = global_per_second
        self.rate = global_per_second
        self._next_slot = 0.0
        self._global_lock = asyncio.Lock()

    def _state(self, key: str) -> _BucketState:
        route, _, major = key.partition("|")
        bucket = self._route_bucket.get(route)
        if bucket is not None:
            key = f"{bucket}|{major}"
        state = self._buckets.get(key)
        if state is None:
            state = _BucketState()
            self._buckets.set(key, state)
        return state

    async def before(self, key: str) -> None:
        state = self._state(key)
        while True:
            now = time.monotonic()
            wait = max(self._global_until - now, 0.0)
            if state.remaining is not None and state.remaining <= 0 and state.reset_at > now:
                wait = max(wait, state.reset_at - now)
            if wait <= 0:
                break
            await asyncio.sleep(wait)
            if state.reset_at <= time.monotonic():
                state.remaining = None  # the window passed; the next response tells us anew
        if state.remaining is not None:
            state.remaining -= 1  # claim a slot so concurrent callers on one bucket queue up
        await self._global_slot()

    async def _global_slot(self) -> None:
        # Process-wide cap on requests per second (Discord allows 50 per bot), as even spacing
        # so that waiters released together after a pause do not arrive as one burst.
        async with self._global_lock:
            now = time.monotonic()
            wait = max(self._next_slot, self._global_until) - now
            if wait > 0:
                await asyncio.sleep(wait)
                now = time.monotonic()
            self._next_slot = now + 1.0 / self.rate

    def after(self, key: str, response: httpx2.Response) -> None:
        if response.status_code < 400 and self.rate < self._max_rate:
            self.rate = min(self._max_rate, self.rate + RATE_RECOVERY)
        headers = response.headers
        remaining = headers.get("x-ratelimit-remaining")
        reset_after = headers.get("x-ratelimit-reset-after")
        if remaining is None or reset_after is None:
            return
        bucket = headers.get("x-ratelimit-bucket")
        route = key.partition("|")[0]
        if bucket and self._route_bucket.get(route) != bucket:
            self._route_bucket.set(route, bucket)
        try:
            state = self._state(key)
            state.remaining = int(remaining)
            state.reset_at = time.monotonic() + float(reset_after)
        except ValueError:
            return  # a malformed header tells us nothing; the 429 path still protects us

    def rate_limited(self, key: str, response: httpx2.Response, wait: float) -> None:
        until = time.monotonic() + wait
        is_global = response.headers.get("x-ratelimit-global", "").lower() == "true"
        if not is_global:
            try:
                is_global = bool(response.json().get("global"))
            except (ValueError, AttributeError):
                is_global = False
        if is_global:
            self._global_until = max(self._global_until, until)
            self.rate = max(MIN_RATE, self.rate / 2)
        else:
            state = self._state(key)
            state.remaining = 0
            state.reset_at = max(state.reset_at, until)


class WindowRateLimiter:
    """A limit of ``limit`` requests per ``window`` seconds (Wise Old Man's model).

    Requests go out at once while the window allows, so a short run costs no waiting;
    when the server sends ``RateLimit-Remaining``/``RateLimit-Reset`` they are obeyed, and
    without them (older deployments) a sliding log of our own requests keeps any window of
    ``window`` seconds at or under ``limit``, which no server window can exceed.
    """

    def __init__(self, limit: int, window: float, *, margin: float = 0.01) -> None:
        self.limit = limit
        self.window = window
        self._margin = window * margin  # slack for the server counting a hair later than us
        self._sent: deque[float] = deque(maxlen=limit)
        self._blocked_until = 0.0
        self._backoff = 0.0  # seconds of the last 429 back-off without Retry-After
        self._lock = asyncio.Lock()

    async def before(self, key: str) -> None:
        async with self._lock:  # one caller at a time: the log must see every request
            while True:
                now = time.monotonic()
                wait = self._blocked_until - now
                if len(self._sent) == self.limit:
                    wait = max(wait, self._sent[0] + self.window + self._margin - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            self._sent.append(time.monotonic())

    def after(self, key: str, response: httpx2.Response) -> None:
        if response.status_code != 429:
            self._backoff = 0.0
        remaining = response.headers.get("ratelimit-remaining")
        reset = response.headers.get("ratelimit-reset")
        if remaining is None or reset is None:
            return
        try:
            if int(remaining) <= 0:
                until = time.monotonic() + float(reset) + self._margin
                self._blocked_until = max(self._blocked_until, until)
        except ValueError:
            return

    def rate_limited(self, key: str, response: httpx2.Response, wait: float) -> None:
        if wait <= 0:
            # No Retry-After: back off as the server's documentation asks (5 s, doubling, 60 s)
            self._backoff = min(60.0, self._backoff * 2) if self._backoff else 5.0
            wait = self._backoff
        self._blocked_until = max(self._blocked_until, time.monotonic() + wait)
