"""The one HTTP layer every API client uses.

One shared ``httpx2.AsyncClient`` per API (connection reuse, bounded pool), a rate
limiter fed by response headers, bounded retries with jittered backoff for 5xx and
network errors, waits on 429 as the server asks, and a circuit breaker that stops
hitting an API for the rest of a run once it keeps failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx2
import orjson

log = logging.getLogger("clanpulse.net")


class ApiError(Exception):
    """A request failed for good. The message names the API and endpoint, never a secret."""

    def __init__(
        self,
        api: str,
        endpoint: str,
        detail: str,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{api} {endpoint}: {detail}")
        self.api = api
        self.endpoint = endpoint
        self.detail = detail
        self.status = status
        self.code = code  # the API's own error code, when its body has one


class CircuitOpenError(ApiError):
    """The API kept failing; no more requests go to it during this run."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request. Every number is a cap: nothing retries forever."""

    attempts: int = 5  # for 5xx and network errors
    rate_limited_attempts: int = 6  # for 429s, each after waiting what the server asked
    backoff_base: float = 0.5  # seconds; doubles per attempt, with jitter
    backoff_max: float = 30.0
    max_retry_after: float = 300.0  # a 429 asking for longer than this fails the request


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0
    read: float = 30.0

    def httpx(self) -> httpx2.Timeout:
        return httpx2.Timeout(self.read, connect=self.connect)


class RateLimiter(Protocol):
    """Header-driven limits of one API: waited on before a request, fed after it."""

    async def before(self, key: str) -> None: ...

    def after(self, key: str, response: httpx2.Response) -> None: ...

    def rate_limited(self, key: str, response: httpx2.Response, wait: float) -> None: ...


@dataclass(slots=True)
class CircuitBreaker:
    """Opens after ``threshold`` requests in a row failed for good; stays open for the run."""

    api: str
    threshold: int = 3
    failures: int = 0
    open_reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.open_reason is not None

    def success(self) -> None:
        self.failures = 0

    def failure(self, reason: str) -> None:
        self.failures += 1
        if self.failures >= self.threshold and not self.is_open:
            self.trip(f"{self.failures} requests in a row failed (last: {reason})")

    def trip(self, reason: str) -> None:
        self.open_reason = reason
        log.error("%s API: circuit breaker open, no more requests this run: %s", self.api, reason)


@dataclass(slots=True)
class RequestStats:
    requests: int = 0
    rate_limited: int = 0
    retries: int = 0


@dataclass
class ApiClient:
    """Requests to one API through the shared limits, retries and breaker."""

    api: str
    client: httpx2.AsyncClient
    limiter: RateLimiter
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: CircuitBreaker | None = None
    stats: RequestStats = field(default_factory=RequestStats)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def __post_init__(self) -> None:
        if self.breaker is None:
            self.breaker = CircuitBreaker(self.api)

    async def get_json(
        self, path: str, *, bucket: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        response = await self.request("GET", path, bucket=bucket, params=params)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise ApiError(self.api, f"GET {path}", f"response is not JSON ({exc})") from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        bucket: str,
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx2.Response:
        """Send one request, retrying within the policy; raise ApiError when it cannot succeed."""
        assert self.breaker is not None
        endpoint = f"{method} {path}"
        failures = 0
        limited = 0
        while True:
            if self.breaker.is_open:
                raise CircuitOpenError(
                    self.api, endpoint, f"circuit breaker open: {self.breaker.open_reason}"
                )
            await self.limiter.before(bucket)
            self.stats.requests += 1
            try:
                response = await self.client.request(method, path, params=params, **kwargs)
            except httpx2.TimeoutException:
                problem = "timed out"
            except httpx2.TransportError as exc:
                problem = f"network error ({type(exc).__name__})"
            else:
                self.limiter.after(bucket, response)
                status = response.status_code
                if status < 400:
                    self.breaker.success()
                    return response
                if status == 429:
                    limited += 1
                    self.stats.rate_limited += 1
                    wait = _retry_after(response)
                    if (
                        limited >= self.retry.rate_limited_attempts
                        or wait > self.retry.max_retry_after
                    ):
                        self.breaker.failure("rate limited")
                        raise ApiError(
                            self.api, endpoint, f"still rate limited after {limited} waits", 429
                        )
                    log.warning("%s %s: rate limited, waiting %.2fs", self.api, endpoint, wait)
                    self.limiter.rate_limited(bucket, response, wait)
                    continue
                if status >= 500:
                    problem = f"server error {status}"
                else:
                    detail, code = _error_message(response)
                    if status == 401:
                        # a bad token stays bad: stop before the invalid-request limit bans us
                        self.breaker.trip(f"401 unauthorized on {endpoint}")
                    raise ApiError(self.api, endpoint, f"HTTP {status}: {detail}", status, code)
            failures += 1
            if failures >= self.retry.attempts:
                self.breaker.failure(problem)
                raise ApiError(self.api, endpoint, f"{problem}; gave up after {failures} attempts")
            self.stats.retries += 1
            delay = min(self.retry.backoff_max, self.retry.backoff_base * 2 ** (failures - 1))
            delay *= random.uniform(0.5, 1.0)
            log.info("%s %s: %s, retrying in %.2fs", self.api, endpoint, problem, delay)
            await self.sleep(delay)


def _retry_after(response: httpx2.Response) -> float:
    """The longer of the body's ``retry_after`` and the ``Retry-After`` header (seconds)."""
    waits = [0.0]
    header = response.headers.get("retry-after")
    if header:
        with contextlib.suppress(ValueError):
            waits.append(float(header))
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict) and isinstance(body.get("retry_after"), int | float):
            waits.append(float(body["retry_after"]))
    except orjson.JSONDecodeError:
        pass
    return max(waits)


def _error_message(response: httpx2.Response) -> tuple[str, str | None]:
    """The error's message and the API's code for it (both APIs send ``message``/``code``)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.reason_phrase or "error", None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        code = body.get("code")
        text = str(body["message"]) + (f" (code {code})" if code is not None else "")
        return text, None if code is None else str(code)
    return response.reason_phrase or "error", None


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str],
    timeouts: Timeouts | None = None,
    max_connections: int = 10,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> httpx2.AsyncClient:
    """The shared client for one API: keep-alive connections, bounded pool, no redirects."""
    return httpx2.AsyncClient(
        base_url=base_url,
        headers=dict(headers),
        timeout=(timeouts or Timeouts()).httpx(),
        limits=httpx2.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
    )
