"""A fake Wise Old Man API v2 server over real HTTP, serving a generated WOM group.

It answers the group, player, snapshot, gains, name-change, activity and update-all endpoints
clanpulse uses, with WOM's shapes, error bodies, pagination, the ``startDate``-alone trap of
the snapshots endpoint, per-IP and per-key rate limits (windows scaled by ``time_scale`` so
tests run fast) with or without the ``RateLimit-*`` headers, switchable bulk endpoints,
seeded faults, and counters tests can read.

Use it from synchronous code::

    with FakeWomServer(group, FakeWomConfig(time_scale=0.05)) as server:
        httpx2.get(f"{server.url}/groups/{group.id}")

or from a running event loop with ``async with`` (the server runs on its own thread either
way). ``python -m clanpulse.demo.fake_wom`` runs one standalone for demos.

The server's clock ("now", for periods and update-all) is ``config.now`` when set, else the
group's end plus the real time elapsed since the server was created, so a group generated
with a fixed end looks freshly updated. API keys and the verification code are compared,
never logged.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from clanpulse.demo.fake_discord import (
    ASGIApp,
    ASGIMessage,
    Receive,
    RequestRecord,
    Scope,
    Send,
    ServerStats,
)
from clanpulse.demo.loopback import LoopbackServer, add_server_arguments
from clanpulse.demo.wom_data import (
    WomGroup,
    WomPlayer,
    from_ms,
    generate_wom_group,
    metric_delta,
    metric_kind,
    metric_value_field,
    parse_wom_time,
    to_ms,
)
from clanpulse.names import is_valid_osrs_name, normalize_osrs_name
from clanpulse.wom_metrics import METRICS

API_PREFIX = "/v2"
DEFAULT_VERIFICATION_CODE = "demo-verification-code"  # a made-up demo value
TOO_MANY_REQUESTS = (
    "Too Many Requests. Please check the API docs for rate limits (https://docs.wiseoldman.net)."
)
OUTDATED_AFTER = timedelta(hours=24)


@dataclass
class FakeWomConfig:
    """How the fake behaves. Fields may be changed while the server runs."""

    api_key: str | None = None  # the one key the server accepts; any other key is a 403
    limit_without_key: int = 20  # requests per window per IP
    limit_with_key: int = 100  # requests per window per key
    window: float = 60.0  # WOM seconds; real length is window * time_scale
    time_scale: float = 1.0
    rate_limits: bool = True
    rate_limit_headers: bool = True  # False: no RateLimit-* nor Retry-After, like old servers
    bulk_endpoints: bool = True  # False: bulk-hiscores and bulk-gained answer 404
    fault_rate: float = 0.0  # share of requests (after the limiter) answered with a 500
    fault_seed: int = 0
    latency: float = 0.0  # real seconds added to every request
    verification_code: str = DEFAULT_VERIFICATION_CODE
    now: datetime | None = None  # the server clock; None: group end + elapsed real time
    player_update_cooldown: float = 60.0  # WOM seconds between POST /players/{name}
    max_logged_requests: int = 10_000


class WomServerStats(ServerStats):
    """Counters the tests read (``rate_limited`` counts every 429 served)."""

    @property
    def timestamps(self) -> list[float]:
        """Arrival times (``time.time()``) of the logged requests, oldest first."""
        return [record.at for record in self.requests]


# --------------------------------------------------------------------------------------
# bodies and parameters


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"code": code, "message": message}, status)


def _not_found_endpoint() -> Response:
    return _error(404, "ENDPOINT_NOT_FOUND", "Endpoint not found.")


_NAMED_PERIODS = {
    "five_min": 300,
    "day": 86_400,
    "week": 7 * 86_400,
    "month": 31 * 86_400,
    "year": 31_556_926,
}
_CUSTOM_PERIOD = re.compile(r"(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?")
_PERIOD_UNITS = (31_556_926, 31 * 86_400, 7 * 86_400, 86_400, 3_600)


def parse_period(text: str) -> timedelta | None:
    """A WOM period (``week``, ``2w3d``, ``1y6m``...) as a duration; None if invalid.

    ``m`` is a 31-day month, ``y`` 365.242 days; the whole string must match.
    """
    key = text.strip().lower()
    if key in _NAMED_PERIODS:
        return timedelta(seconds=_NAMED_PERIODS[key])
    found = _CUSTOM_PERIOD.fullmatch(key)
    if found is None:
        return None
    seconds = sum(int(n or 0) * unit for n, unit in zip(found.groups(), _PERIOD_UNITS, strict=True))
    return timedelta(seconds=seconds) if seconds > 0 else None


_Window = tuple[datetime | None, datetime | None]


def _date_window(params: Any, now: datetime, *, period_end_now: bool) -> _Window | Response | None:
    """``period`` or ``startDate`` + ``endDate``; None when neither form is complete.

    One date without the other is not a date filter at all: WOM ignores it. A period ends
    at ``now`` or, with ``period_end_now`` False, at the latest snapshot (gains).
    """
    period = params.get("period")
    if period is not None:
        length = parse_period(period)
        if length is None:
            return _error(400, "INVALID_PERIOD", f"Invalid period: {period}.")
        return now - length, (now if period_end_now else None)
    start_text, end_text = params.get("startDate"), params.get("endDate")
    if start_text is not None and end_text is not None:
        try:
            start, end = parse_wom_time(start_text), parse_wom_time(end_text)
        except ValueError:
            return _error(400, "VALIDATION_ERROR", "Invalid date: startDate/endDate.")
        if start >= end:
            return _error(400, "INVALID_DATE_RANGE", "Start date must be before the end date.")
        return start, end
    return None


def _required_window(params: Any, now: datetime, *, period_end_now: bool) -> _Window | Response:
    window = _date_window(params, now, period_end_now=period_end_now)
    if window is None:
        return _error(
            400, "VALIDATION_ERROR", "A period or a startDate and endDate pair is required."
        )
    return window


def _page(params: Any, maximum: int) -> tuple[int, int] | Response:
    values: list[int] = []
    for name, default in (("limit", 20), ("offset", 0)):
        raw = params.get(name)
        if raw is None:
            values.append(default)
            continue
        try:
            values.append(int(raw))
        except ValueError:
            return _error(400, "VALIDATION_ERROR", f"Parameter '{name}' is not a valid number.")
    limit, offset = values
    if not 1 <= limit <= maximum:
        return _error(
            400, "VALIDATION_ERROR", f"Parameter 'limit' must be between 1 and {maximum}."
        )
    if offset < 0:
        return _error(400, "VALIDATION_ERROR", "Parameter 'offset' must be >= 0.")
    return limit, offset


# --------------------------------------------------------------------------------------
# state and the gate


@dataclass(slots=True)
class _Bucket:
    reset_at: float  # monotonic
    remaining: int


class _ServerState:
    def __init__(self, group: WomGroup, config: FakeWomConfig) -> None:
        self.group = group
        self.config = config
        self.stats = WomServerStats(config.max_logged_requests)
        self.fault_rng = random.Random(config.fault_seed)
        self.buckets: dict[tuple[str, str], _Bucket] = {}
        self.manual_updates: dict[int, float] = {}  # player id -> monotonic time
        self.clock_origin = time.monotonic()

    def now(self) -> datetime:
        if self.config.now is not None:
            return self.config.now.astimezone(UTC)
        elapsed = timedelta(seconds=time.monotonic() - self.clock_origin)
        return self.group.end + elapsed

    def seconds_header(self, seconds: float) -> str:
        # WOM sends whole seconds; a sped-up fake would round every wait up to 1 s, so it
        # sends decimals instead
        if self.config.time_scale >= 1.0:
            return str(max(1, math.ceil(seconds)))
        return f"{max(seconds, 0.001):.3f}"


class _Gate:
    """ASGI middleware: counters, latency, API key, rate limit and faults before routing."""

    def __init__(self, app: ASGIApp, state: _ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        config = state.config
        raw_query = scope.get("query_string", b"").decode("latin-1")
        record = RequestRecord(
            scope["method"], scope["path"], dict(parse_qsl(raw_query)), at=time.time()
        )
        state.stats._arrived(record)
        if config.latency > 0:
            await asyncio.sleep(config.latency)
        extra: list[tuple[str, str]] = []

        async def send_tracked(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for key, value in extra:
                    response_headers.append(key, value)
                state.stats._served(record, int(message["status"]))
            await send(message)

        early = self._check(scope, extra)
        if early is not None:
            await early(scope, receive, send_tracked)
            return
        await self.app(scope, receive, send_tracked)

    def _check(self, scope: Scope, extra: list[tuple[str, str]]) -> Response | None:
        state = self.state
        config = state.config
        key: str | None = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"x-api-key":
                key = value.decode("latin-1")
        valid_key = key is not None and config.api_key is not None and key == config.api_key
        if valid_key:
            bucket_key, limit = ("key", str(key)), config.limit_with_key
        else:
            client = scope.get("client") or ("unknown", 0)
            bucket_key, limit = ("ip", str(client[0])), config.limit_without_key
        if config.rate_limits:
            limited = self._limit(bucket_key, limit, extra)
            if limited is not None:
                return limited
        if key is not None and not valid_key:
            # compared, never echoed or logged
            return _json(
                {"message": "Invalid API Key. Ask the Wise Old Man team for a valid one."}, 403
            )
        if config.fault_rate > 0 and state.fault_rng.random() < config.fault_rate:
            state.stats._count_fault()
            return _error(500, "UNEXPECTED_ERROR", "Internal Server Error.")
        return None

    def _limit(
        self, bucket_key: tuple[str, str], limit: int, extra: list[tuple[str, str]]
    ) -> Response | None:
        state = self.state
        config = state.config
        now = time.monotonic()
        bucket = state.buckets.get(bucket_key)
        if bucket is None or now >= bucket.reset_at:
            # a fixed window per client, starting with its first request
            bucket = _Bucket(now + config.window * config.time_scale, limit)
            state.buckets[bucket_key] = bucket
        limited = bucket.remaining <= 0
        if not limited:
            bucket.remaining -= 1
        reset_after = max(bucket.reset_at - now, 0.0)
        if config.rate_limit_headers:
            extra += [
                ("RateLimit-Limit", str(limit)),
                ("RateLimit-Remaining", str(max(0, bucket.remaining))),
                ("RateLimit-Reset", state.seconds_header(reset_after)),
            ]
        if not limited:
            return None
        if config.rate_limit_headers:
            extra.append(("Retry-After", state.seconds_header(reset_after)))
        return _json({"message": TOO_MANY_REQUESTS}, 429)


# --------------------------------------------------------------------------------------
# handlers


def _build_app(state: _ServerState) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    group = state.group
    prefix = API_PREFIX

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # unknown paths and methods alike: WOM's router knows no such endpoint
        return _not_found_endpoint()

    def group_problem(raw_id: str) -> Response | None:
        if not raw_id.isdigit():
            return _error(400, "VALIDATION_ERROR", "Parameter 'id' is not a valid number.")
        if int(raw_id) != group.id:
            return _error(404, "GROUP_NOT_FOUND", "Group not found.")
        return None

    def find_player(raw_name: str) -> WomPlayer | Response:
        key = normalize_osrs_name(raw_name)
        if not is_valid_osrs_name(key):
            return _error(400, "VALIDATION_ERROR", "Invalid username.")
        # only the current name: a renamed player's old name is unknown here
        player = group.player_by_username(key, current_only=True)
        if player is None:
            return _error(404, "PLAYER_NOT_FOUND", "Player not found.")
        return player

    # -- groups -------------------------------------------------------------------

    @app.get(prefix + "/groups/{gid}")
    async def group_details(gid: str) -> Response:
        return group_problem(gid) or _json(group.group_json())

    @app.get(prefix + "/groups/{gid}/bulk-hiscores")
    async def bulk_hiscores(gid: str) -> Response:
        if not state.config.bulk_endpoints:
            return _not_found_endpoint()
        problem = group_problem(gid)
        if problem:
            return problem
        out = []
        for player in group.members():
            latest = group.latest_snapshot(player.id)
            if latest is not None:
                out.append({"player": group.player_json(player.id), "data": latest})
        return _json(out)

    def member_gains(window: _Window) -> list[tuple[WomPlayer, dict[str, Any]]]:
        gains = []
        for player in group.members():
            gained = group.gained(player.id, window[0], window[1])
            if gained["startsAt"] is not None:
                gains.append((player, gained))
        return gains

    @app.get(prefix + "/groups/{gid}/gained")
    async def group_gained(gid: str, request: Request) -> Response:
        problem = group_problem(gid)
        if problem:
            return problem
        params = request.query_params
        metric = params.get("metric")
        if metric is None or metric_kind(metric) is None:
            return _error(400, "VALIDATION_ERROR", "Invalid enum value for 'metric'.")
        window = _required_window(params, state.now(), period_end_now=False)
        if isinstance(window, Response):
            return window
        rows = [
            {
                "player": group.player_json(player.id),
                "startDate": gained["startsAt"],
                "endDate": gained["endsAt"],
                "data": metric_delta(gained, metric),
            }
            for player, gained in member_gains(window)
        ]
        rows.sort(key=lambda row: (-row["data"]["gained"], row["player"]["id"]))
        return _json(rows)

    @app.get(prefix + "/groups/{gid}/bulk-gained")
    async def bulk_gained(gid: str, request: Request) -> Response:
        if not state.config.bulk_endpoints:
            return _not_found_endpoint()
        problem = group_problem(gid)
        if problem:
            return problem
        window = _required_window(request.query_params, state.now(), period_end_now=False)
        if isinstance(window, Response):
            return window
        rows = [
            {
                "player": group.player_json(player.id),
                "startDate": gained["startsAt"],
                "endDate": gained["endsAt"],
                "data": [{"metric": m, **metric_delta(gained, m)} for m in METRICS],
            }
            for player, gained in member_gains(window)
        ]
        return _json(rows)

    def paged(gid: str, request: Request, items: Callable[[], list[dict[str, Any]]]) -> Response:
        # the group's paginated lists: limit (default 20, max 50) and offset
        problem = group_problem(gid)
        if problem:
            return problem
        page = _page(request.query_params, 50)
        if isinstance(page, Response):
            return page
        limit, offset = page
        return _json(items()[offset : offset + limit])

    @app.get(prefix + "/groups/{gid}/name-changes")
    async def name_changes(gid: str, request: Request) -> Response:
        return paged(gid, request, group.name_changes)

    @app.get(prefix + "/groups/{gid}/activity")
    async def activity(gid: str, request: Request) -> Response:
        return paged(gid, request, group.activity)

    @app.post(prefix + "/groups/{gid}/update-all")
    async def update_all(gid: str, request: Request) -> Response:
        problem = group_problem(gid)
        if problem:
            return problem
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            body = {}
        code = body.get("verificationCode") if isinstance(body, dict) else None
        if not isinstance(code, str) or not code:
            return _error(400, "VALIDATION_ERROR", "Parameter 'verificationCode' is undefined.")
        if code != state.config.verification_code:
            return _error(403, "INCORRECT_VERIFICATION_CODE", "Incorrect verification code.")
        now = state.now()
        cutoff = to_ms(now - OUTDATED_AFTER)
        outdated = []
        for player in group.members():
            updated = group.updated_ms(player.id)
            if updated is None or updated < cutoff:
                outdated.append(player)
        if not outdated:
            return _error(
                400,
                "NO_OUTDATED_MEMBERS",
                "This group has no outdated members (updated over 24h ago).",
            )
        for player in outdated:
            # WOM reads them over minutes; the fake reads them at once. Someone who quit
            # the game gets a fresh reading with unchanged values.
            group.add_snapshot(player.id, now, progress=player.quit_ms is None)
        count = len(outdated)
        return _json(
            {
                "count": count,
                "message": f"{count} outdated (updated > 24h ago) players are being updated. "
                "This can take up to a few minutes.",
            }
        )

    # -- players ------------------------------------------------------------------

    @app.get(prefix + "/players/{username}")
    async def player_details(username: str) -> Response:
        found = find_player(username)
        if isinstance(found, Response):
            return found
        return _json(group.player_details(found.id))

    @app.post(prefix + "/players/{username}")
    async def update_player(username: str) -> Response:
        found = find_player(username)
        if isinstance(found, Response):
            return found
        cooldown = state.config.player_update_cooldown * state.config.time_scale
        last = state.manual_updates.get(found.id)
        if last is not None and time.monotonic() - last < cooldown:
            return _json({"message": f"Error: {found.display_name} was updated recently."}, 429)
        state.manual_updates[found.id] = time.monotonic()
        now = state.now()
        latest = group.updated_ms(found.id)
        if latest is None or latest < to_ms(now):
            group.add_snapshot(found.id, now, progress=found.quit_ms is None)
        return _json(group.player_details(found.id))

    @app.get(prefix + "/players/{username}/snapshots")
    async def snapshots(username: str, request: Request) -> Response:
        found = find_player(username)
        if isinstance(found, Response):
            return found
        params = request.query_params
        page = _page(params, 200)
        if isinstance(page, Response):
            return page
        limit, offset = page
        window = _date_window(params, state.now(), period_end_now=True)
        if isinstance(window, Response):
            return window
        start, end = window or (None, None)
        return _json(
            group.snapshot_page(found.id, start=start, end=end, offset=offset, limit=limit)
        )

    @app.get(prefix + "/players/{username}/snapshots/timeline")
    async def timeline(username: str, request: Request) -> Response:
        found = find_player(username)
        if isinstance(found, Response):
            return found
        params = request.query_params
        metric = params.get("metric")
        kind = metric_kind(metric or "")
        if metric is None or kind is None:
            return _error(400, "VALIDATION_ERROR", "Invalid enum value for 'metric'.")
        window = _required_window(params, state.now(), period_end_now=True)
        if isinstance(window, Response):
            return window
        section = {"skill": "skills", "boss": "bosses", "activity": "activities"}.get(
            kind, "computed"
        )
        field = metric_value_field(metric)
        points = []
        for snapshot in reversed(group.snapshots(found.id, window[0], window[1])):
            entry = snapshot["data"][section][metric]
            points.append(
                {"value": entry[field], "rank": entry["rank"], "date": snapshot["createdAt"]}
            )
        return _json(points)

    @app.get(prefix + "/players/{username}/gained")
    async def player_gained(username: str, request: Request) -> Response:
        found = find_player(username)
        if isinstance(found, Response):
            return found
        window = _required_window(request.query_params, state.now(), period_end_now=False)
        if isinstance(window, Response):
            return window
        return _json(group.gained(found.id, window[0], window[1]))

    return app


# --------------------------------------------------------------------------------------
# the server


class FakeWomServer(LoopbackServer):
    """A running fake WOM API on 127.0.0.1 (uvicorn on a background thread).

    ``with FakeWomServer(...) as server`` or ``start()``/``stop()`` from synchronous code;
    ``async with`` or ``await astart()``/``await astop()`` inside an event loop.
    """

    label = "fake WOM server"

    def __init__(
        self,
        group: WomGroup | None = None,
        config: FakeWomConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.group = group if group is not None else generate_wom_group()
        self.config = config if config is not None else FakeWomConfig()
        self._state = _ServerState(self.group, self.config)
        super().__init__(_Gate(_build_app(self._state), self._state), host=host, port=port)

    # -- addresses ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base, ``http://127.0.0.1:PORT/v2``."""
        return f"{self.base_url}{API_PREFIX}"

    @property
    def group_id(self) -> int:
        return self.group.id

    # -- observing and steering -----------------------------------------------------

    @property
    def stats(self) -> WomServerStats:
        return self._state.stats

    def now(self) -> datetime:
        """The server's clock, as periods and update-all see it."""
        return self._state.now()

    def reset_stats(self) -> None:
        self._state.stats.reset()

    def reset_rate_limits(self) -> None:
        self._state.buckets = {}
        self._state.manual_updates = {}

    def reseed_faults(self, seed: int | None = None) -> None:
        """Restart the fault sequence (from ``config.fault_seed`` unless given)."""
        self._state.fault_rng = random.Random(self.config.fault_seed if seed is None else seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clanpulse.demo.fake_wom",
        description="Serve a generated clan through a fake Wise Old Man API v2.",
    )
    add_server_arguments(parser)
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--group-id", type=int, default=4242)
    parser.add_argument("--snapshot-every-hours", type=float, default=6.0)
    parser.add_argument("--api-key", default=None, help="the key that gets the higher limit")
    parser.add_argument("--no-bulk", action="store_true", help="answer bulk endpoints with 404")
    parser.add_argument(
        "--no-rate-limit-headers", action="store_true", help="behave like an old deployment"
    )
    parser.add_argument("--no-rate-limits", action="store_true")
    parser.add_argument("--verification-code", default=DEFAULT_VERIFICATION_CODE)
    args = parser.parse_args(argv)
    group = generate_wom_group(
        seed=args.seed,
        members=args.members,
        days=args.days,
        snapshot_every_hours=args.snapshot_every_hours,
        group_id=args.group_id,
    )
    config = FakeWomConfig(
        api_key=args.api_key,
        time_scale=args.time_scale,
        rate_limits=not args.no_rate_limits,
        rate_limit_headers=not args.no_rate_limit_headers,
        bulk_endpoints=not args.no_bulk,
        fault_rate=args.fault_rate,
        latency=args.latency,
        verification_code=args.verification_code,
    )
    server = FakeWomServer(group, config, host=args.host, port=args.port)
    server.bind()
    print(f"fake WOM API: {server.url}", flush=True)
    print(f"group id:     {group.id} ({len(group.members())} members)", flush=True)
    print(f"history:      {from_ms(group.start_ms):%Y-%m-%d} .. {group.end:%Y-%m-%d}", flush=True)
    server.run_forever()


if __name__ == "__main__":
    main()
