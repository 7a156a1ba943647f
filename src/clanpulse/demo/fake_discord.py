"""A fake Discord REST API v10 server over real HTTP, serving a generated community.

It answers the endpoints the harvester and the report poster use, with Discord's paging
semantics, auth, error bodies, per-bucket and global rate limits (windows scaled by
``time_scale`` so tests run fast), seeded fault injection, and counters tests can read.

Use it from synchronous code::

    with FakeDiscordServer(community, FakeDiscordConfig(time_scale=0.05)) as server:
        httpx2.get(f"{server.url}/channels/{cid}/messages", headers=server.auth_headers())

or from a running event loop with ``async with`` (the server still runs on its own thread, so
blocking calls in the loop never stall it). ``python -m clanpulse.demo.fake_discord`` runs one
standalone for demos.

The bot token is compared, never logged; webhook tokens are masked in the request log.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from clanpulse.demo.community import (
    REPORT_WEBHOOK_ID,
    Community,
    JSONDict,
    generate_community,
    iso_ms,
)
from clanpulse.demo.loopback import LoopbackServer, add_server_arguments

API_PREFIX = "/api/v10"
DEFAULT_TOKEN = "demo-token"  # a made-up demo value, shaped nothing like a real token
DEFAULT_WEBHOOK_TOKEN = "demo-webhook-token"

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``limit`` requests per ``per`` seconds of real Discord time (scaled by time_scale)."""

    limit: int
    per: float


def default_route_limits() -> dict[str, RateLimit]:
    """Per-bucket limits, keyed by the bucket names the fake uses."""
    return {
        "messages": RateLimit(5, 1.0),
        "message": RateLimit(5, 1.0),
        "channel": RateLimit(5, 1.0),
        "threads-archived": RateLimit(10, 10.0),
        "guild": RateLimit(5, 1.0),
        "guild-channels": RateLimit(5, 1.0),
        "threads-active": RateLimit(10, 10.0),
        "members": RateLimit(10, 10.0),
        "member": RateLimit(5, 1.0),
        "user": RateLimit(5, 1.0),
        "webhook": RateLimit(5, 2.0),
    }


@dataclass
class FakeDiscordConfig:
    """How the fake behaves. Fields may be changed while the server runs."""

    token: str = DEFAULT_TOKEN
    webhook_token: str = DEFAULT_WEBHOOK_TOKEN
    # rate limits: windows are ``per * time_scale`` real seconds
    time_scale: float = 1.0
    rate_limits: bool = True
    route_limits: dict[str, RateLimit] = field(default_factory=default_route_limits)
    global_limit: RateLimit = RateLimit(50, 1.0)
    # faults: each request after auth and rate limits fails with this probability; a
    # ``fault_429_share`` of the failures are 429s (scope "shared"), the rest 500/502/503
    fault_rate: float = 0.0
    fault_429_share: float = 0.25
    fault_retry_after: float = 1.0  # Discord seconds, scaled by time_scale
    fault_seed: int = 0
    fail_channels: set[int] = field(default_factory=set)  # always 500 for these channels
    forbidden_channels: set[int] = field(default_factory=set)  # 403, besides the voice one
    latency: float = 0.0  # real seconds added to every request
    members_intent: bool = True  # False: the members list answers 403
    private_threads_access: bool = False  # False: archived private threads answer 403
    require_user_agent: bool = True
    webhook_posts_visible: bool = False  # True: webhook posts join the channel's history
    max_logged_requests: int = 10_000


@dataclass(slots=True)
class RequestRecord:
    """One request as the server saw it (webhook tokens masked)."""

    method: str
    path: str
    query: dict[str, str]
    status: int = 0
    at: float = 0.0  # time.time() when it arrived


@dataclass(slots=True)
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class WebhookPost:
    """What one accepted webhook execution carried, and the message it created."""

    webhook_id: int
    payload: JSONDict
    files: list[UploadedFile]
    thread_id: int | None
    wait: bool
    message: JSONDict


class ServerStats:
    """Counters the tests read. Updated on the server thread, read from any thread."""

    def __init__(self, max_logged: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.total_requests = 0
        self.rate_limited = 0  # every 429 served (bucket, global and injected)
        self.global_rate_limited = 0
        self.faults = 0  # injected 5xx and 429s, and fail_channels 500s
        self.path_counts: Counter[str] = Counter()
        self.status_counts: Counter[int] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=max_logged)

    def _arrived(self, record: RequestRecord) -> None:
        with self._lock:
            self.total_requests += 1
            self.path_counts[record.path] += 1
            self._log.append(record)

    def _served(self, record: RequestRecord, status: int) -> None:
        with self._lock:
            record.status = status
            self.status_counts[status] += 1
            if status == 429:
                self.rate_limited += 1

    def _count_fault(self) -> None:
        with self._lock:
            self.faults += 1

    def _count_global(self) -> None:
        with self._lock:
            self.global_rate_limited += 1

    @property
    def requests(self) -> list[RequestRecord]:
        """The most recent requests, oldest first."""
        with self._lock:
            return list(self._log)

    def count(self, path: str) -> int:
        with self._lock:
            return self.path_counts[path]

    def reset(self) -> None:
        with self._lock:
            self.total_requests = self.rate_limited = self.global_rate_limited = 0
            self.faults = 0
            self.path_counts.clear()
            self.status_counts.clear()
            self._log.clear()


# --------------------------------------------------------------------------------------
# routing table shared by the gate (auth, limits, faults) and the handlers


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: re.Pattern[str]
    bucket: str
    bot_auth: bool = True


_ROUTES = (
    _Route("GET", re.compile(r"^/api/v10/channels/(\d+)/messages$"), "messages"),
    _Route("GET", re.compile(r"^/api/v10/channels/(\d+)/messages/(\d+)$"), "message"),
    _Route("GET", re.compile(r"^/api/v10/channels/(\d+)$"), "channel"),
    _Route(
        "GET",
        re.compile(r"^/api/v10/channels/(\d+)/threads/archived/(?:public|private)$"),
        "threads-archived",
    ),
    _Route("GET", re.compile(r"^/api/v10/guilds/(\d+)$"), "guild"),
    _Route("GET", re.compile(r"^/api/v10/guilds/(\d+)/channels$"), "guild-channels"),
    _Route("GET", re.compile(r"^/api/v10/guilds/(\d+)/threads/active$"), "threads-active"),
    _Route("GET", re.compile(r"^/api/v10/guilds/(\d+)/members$"), "members"),
    _Route("GET", re.compile(r"^/api/v10/guilds/(\d+)/members/(\d+)$"), "member"),
    _Route("GET", re.compile(r"^/api/v10/users/(@me)$"), "user"),
    _Route(
        "POST", re.compile(r"^/api(?:/v10)?/webhooks/(\d+)/([^/]+)$"), "webhook", bot_auth=False
    ),
)
_WEBHOOK_PATH = re.compile(r"^(/api(?:/v10)?/webhooks/\d+/)[^/]+$")


def _error(status: int, message: str, code: int = 0, **extra: Any) -> Response:
    return _json({"message": message, "code": code, **extra}, status)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _form_error(field_name: str, code: str, message: str) -> Response:
    return _error(
        400,
        "Invalid Form Body",
        50035,
        errors={field_name: {"_errors": [{"code": code, "message": message}]}},
    )


def _bucket_hash(name: str) -> str:
    return hashlib.sha1(f"clanpulse-fake:{name}".encode()).hexdigest()[:32]


@dataclass(slots=True)
class _Window:
    reset_at: float  # monotonic
    remaining: int


class _ServerState:
    """Everything the app needs; lives on the server, handlers close over it."""

    def __init__(self, community: Community, config: FakeDiscordConfig) -> None:
        self.community = community
        self.config = config
        self.stats = ServerStats(config.max_logged_requests)
        self.fault_rng = random.Random(config.fault_seed)
        self.windows: dict[tuple[str, str], _Window] = {}
        self.global_window: _Window | None = None
        self.webhook_posts: list[WebhookPost] = []
        self.posts_lock = threading.Lock()
        members = community.members_payload()
        self.members = members
        self.member_ids = [int(m["user"]["id"]) for m in members]


# --------------------------------------------------------------------------------------
# the gate: UA, auth, global and bucket limits, faults, latency, counters


class _Gate:
    """ASGI middleware doing what every Discord route shares before its handler runs."""

    def __init__(self, app: ASGIApp, state: _ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        config = state.config
        path: str = scope["path"]
        method: str = scope["method"]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        shown_path = _WEBHOOK_PATH.sub(r"\1***", path)
        record = RequestRecord(method, shown_path, dict(parse_qsl(raw_query)), at=time.time())
        state.stats._arrived(record)
        if config.latency > 0:
            await asyncio.sleep(config.latency)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        route, groups = _match(method, path)
        extra_headers: list[tuple[str, str]] = []

        async def send_tracked(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for key, value in extra_headers:
                    response_headers.append(key, value)
                state.stats._served(record, int(message["status"]))
            await send(message)

        if route is None:
            await self.app(scope, receive, send_tracked)
            return
        early = self._early_response(route, headers)
        if early is None:
            early = self._limit(route, groups, extra_headers)
        if early is None:
            early = self._fault(route, groups, extra_headers)
        if early is not None:
            await early(scope, receive, send_tracked)
            return
        await self.app(scope, receive, send_tracked)

    def _early_response(self, route: _Route, headers: dict[str, str]) -> Response | None:
        config = self.state.config
        if config.require_user_agent and not headers.get("user-agent", "").startswith("DiscordBot"):
            return _error(400, "User-Agent must look like 'DiscordBot (url, version)'.")
        # compared, never logged or echoed
        if route.bot_auth and headers.get("authorization") != f"Bot {config.token}":
            return _error(401, "401: Unauthorized")
        return None

    def _limit(
        self, route: _Route, groups: tuple[str, ...], extra: list[tuple[str, str]]
    ) -> Response | None:
        state = self.state
        config = state.config
        if not config.rate_limits:
            return None
        now = time.monotonic()
        scale = config.time_scale
        glob = config.global_limit
        window = state.global_window
        if window is None or now >= window.reset_at:
            window = state.global_window = _Window(now + glob.per * scale, glob.limit)
        if window.remaining <= 0:
            retry = max(window.reset_at - now, 0.001)
            state.stats._count_global()
            extra += [
                ("X-RateLimit-Global", "true"),
                ("X-RateLimit-Scope", "global"),
                ("Retry-After", self._retry_header(retry)),
            ]
            return _json(
                {
                    "message": "You are being rate limited.",
                    "retry_after": round(retry, 3),
                    "global": True,
                },
                429,
            )
        window.remaining -= 1
        limit = config.route_limits.get(route.bucket)
        if limit is None:
            return None
        # (bucket, top-level resource): the webhook token is part of the resource
        key = (route.bucket, ":".join(groups[:2] if route.bucket == "webhook" else groups[:1]))
        bucket = state.windows.get(key)
        if bucket is None or now >= bucket.reset_at:
            bucket = state.windows[key] = _Window(now + limit.per * scale, limit.limit)
        reset_after = max(bucket.reset_at - now, 0.0)
        limited = bucket.remaining <= 0
        if not limited:
            bucket.remaining -= 1
        extra += [
            ("X-RateLimit-Limit", str(limit.limit)),
            ("X-RateLimit-Remaining", str(bucket.remaining)),
            ("X-RateLimit-Reset", f"{time.time() + reset_after:.3f}"),
            ("X-RateLimit-Reset-After", f"{reset_after:.3f}"),
            ("X-RateLimit-Bucket", _bucket_hash(route.bucket)),
        ]
        if not limited:
            return None
        extra += [("X-RateLimit-Scope", "user"), ("Retry-After", self._retry_header(reset_after))]
        return _json(
            {
                "message": "You are being rate limited.",
                "retry_after": round(max(reset_after, 0.001), 3),
                "global": False,
            },
            429,
        )

    def _retry_header(self, seconds: float) -> str:
        # Discord sends whole seconds; scaled-down windows would round every wait up to 1 s,
        # so a sped-up fake sends decimals instead.
        if self.state.config.time_scale >= 1.0:
            return str(max(1, math.ceil(seconds)))
        return f"{max(seconds, 0.001):.3f}"

    def _fault(
        self, route: _Route, groups: tuple[str, ...], extra: list[tuple[str, str]]
    ) -> Response | None:
        state = self.state
        config = state.config
        if (
            route.bucket in ("messages", "message", "channel", "threads-archived")
            and int(groups[0]) in config.fail_channels
        ):
            state.stats._count_fault()
            return _error(500, "500: Internal Server Error")
        if config.fault_rate <= 0:
            return None
        rng = state.fault_rng
        if rng.random() >= config.fault_rate:
            return None
        state.stats._count_fault()
        if rng.random() < config.fault_429_share:
            retry = config.fault_retry_after * config.time_scale
            extra += [("X-RateLimit-Scope", "shared"), ("Retry-After", self._retry_header(retry))]
            return _json(
                {
                    "message": "You are being rate limited.",
                    "retry_after": round(retry, 3),
                    "global": False,
                },
                429,
            )
        status = rng.choice((500, 502, 503))
        if status == 502:
            # what the edge proxy sends: not JSON at all
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                status_code=502,
                media_type="text/html",
            )
        if status == 503:
            return _error(503, "upstream connect error or disconnect/reset before headers")
        return _error(500, "500: Internal Server Error")


def _match(method: str, path: str) -> tuple[_Route | None, tuple[str, ...]]:
    for route in _ROUTES:
        if route.method != method:
            continue
        found = route.pattern.match(path)
        if found:
            return route, found.groups()
    return None, ()


# --------------------------------------------------------------------------------------
# handlers


def _snowflake_param(params: Mapping[str, str], name: str) -> int | Response | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not str(raw).isdigit() or len(str(raw)) > 20:
        return _form_error(name, "NUMBER_TYPE_COERCE", f'Value "{raw}" is not snowflake.')
    return int(raw)


def _int_param(
    params: Mapping[str, str], name: str, default: int, lo: int, hi: int
) -> int | Response:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        return _form_error(name, "NUMBER_TYPE_COERCE", f'Value "{raw}" is not int.')
    if value < lo:
        return _form_error(
            name, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {lo}."
        )
    if value > hi:
        return _form_error(
            name, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {hi}."
        )
    return value


def _parse_iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _build_app(state: _ServerState) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    community = state.community
    guild_id = community.guild_id

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, f"{exc.status_code}: {exc.detail}")

    def channel_or_error(raw_id: str) -> JSONDict | Response:
        channel = community.channel(int(raw_id)) if raw_id.isdigit() else None
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        return channel

    def readable(channel: JSONDict) -> Response | None:
        channel_id = int(channel["id"])
        if (
            channel_id in community.forbidden_channel_ids
            or channel_id in state.config.forbidden_channels
        ):
            return _error(403, "Missing Access", 50001)
        return None

    def guild_or_error(raw_id: str) -> Response | None:
        if not raw_id.isdigit() or int(raw_id) != guild_id:
            return _error(404, "Unknown Guild", 10004)
        return None

    @app.get("/api/v10/users/@me")
    async def me() -> Response:
        return _json(
            {
                "id": "1",
                "username": "clanpulse-demo",
                "avatar": None,
                "discriminator": "0000",
                "public_flags": 0,
                "flags": 0,
                "bot": True,
                "global_name": None,
            }
        )

    @app.get("/api/v10/guilds/{gid}")
    async def guild(gid: str) -> Response:
        return guild_or_error(gid) or _json(community.guild)

    @app.get("/api/v10/guilds/{gid}/channels")
    async def guild_channels(gid: str) -> Response:
        return guild_or_error(gid) or _json(community.guild_channels())

    @app.get("/api/v10/guilds/{gid}/threads/active")
    async def active_threads(gid: str) -> Response:
        problem = guild_or_error(gid)
        if problem:
            return problem
        threads = [t for t in community.threads() if not t["thread_metadata"]["archived"]]
        threads.sort(key=lambda t: int(t["id"]), reverse=True)
        return _json({"threads": threads, "members": []})

    @app.get("/api/v10/guilds/{gid}/members")
    async def members(gid: str, request: Request) -> Response:
        problem = guild_or_error(gid)
        if problem:
            return problem
        if not state.config.members_intent:
            return _error(403, "Missing Access", 50001)
        params = request.query_params
        limit = _int_param(params, "limit", 1, 1, 1000)
        if isinstance(limit, Response):
            return limit
        after = _snowflake_param(params, "after")
        if isinstance(after, Response):
            return after
        start = bisect.bisect_right(state.member_ids, after or 0)
        return _json(state.members[start : start + limit])

    @app.get("/api/v10/guilds/{gid}/members/{uid}")
    async def member(gid: str, uid: str) -> Response:
        problem = guild_or_error(gid)
        if problem:
            return problem
        for candidate in state.members:
            if candidate["user"]["id"] == uid:
                return _json(candidate)
        return _error(404, "Unknown Member", 10007)

    @app.get("/api/v10/channels/{cid}")
    async def channel(cid: str) -> Response:
        found = channel_or_error(cid)
        return found if isinstance(found, Response) else _json(found)

    @app.get("/api/v10/channels/{cid}/messages")
    async def messages(cid: str, request: Request) -> Response:
        found = channel_or_error(cid)
        if isinstance(found, Response):
            return found
        problem = readable(found)
        if problem:
            return problem
        if found["type"] in (4, 14, 15, 16):
            return _error(400, "Cannot execute action on this channel type", 50024)
        params = request.query_params
        limit = _int_param(params, "limit", 50, 1, 100)
        if isinstance(limit, Response):
            return limit
        cursors: dict[str, int] = {}
        for name in ("before", "after", "around"):
            value = _snowflake_param(params, name)
            if isinstance(value, Response):
                return value
            if value is not None:
                cursors[name] = value
        if len(cursors) > 1:
            return _form_error(
                "around" if "around" in cursors else "after",
                "ONE_OF",
                "Only one of before, after and around may be set.",
            )
        page = community.page(int(cid), limit=limit, **cursors)
        return _json(page)

    @app.get("/api/v10/channels/{cid}/messages/{mid}")
    async def message(cid: str, mid: str) -> Response:
        found = channel_or_error(cid)
        if isinstance(found, Response):
            return found
        problem = readable(found)
        if problem:
            return problem
        page = community.page(int(cid), around=int(mid), limit=1)
        if not page or page[0]["id"] != mid:
            return _error(404, "Unknown Message", 10008)
        return _json(page[0])

    async def archived(cid: str, request: Request, private: bool) -> Response:
        found = channel_or_error(cid)
        if isinstance(found, Response):
            return found
        if private and not state.config.private_threads_access:
            return _error(403, "Missing Permissions", 50013)
        problem = readable(found)
        if problem:
            return problem
        if found["type"] not in (0, 5, 15, 16):
            return _error(400, "Cannot execute action on this channel type", 50024)
        params = request.query_params
        limit = _int_param(params, "limit", 50, 1, 100)
        if isinstance(limit, Response):
            return limit
        before: datetime | None = None
        if params.get("before") is not None:
            before = _parse_iso(params["before"])
            if before is None:
                return _form_error(
                    "before",
                    "DATE_TYPE_PARSE",
                    f"Could not parse {params['before']}. Should be ISO8601.",
                )
        wanted = (12,) if private else (10, 11)
        threads = []
        for thread in community.threads():
            meta = thread["thread_metadata"]
            if thread["parent_id"] != found["id"] or thread["type"] not in wanted:
                continue
            if not meta["archived"]:
                continue
            archived_at = datetime.fromisoformat(meta["archive_timestamp"])
            if before is not None and archived_at >= before:
                continue
            threads.append((archived_at, thread))
        threads.sort(key=lambda pair: (pair[0], int(pair[1]["id"])), reverse=True)
        page = [t for _, t in threads[:limit]]
        return _json({"threads": page, "members": [], "has_more": len(threads) > limit})

    @app.get("/api/v10/channels/{cid}/threads/archived/public")
    async def archived_public(cid: str, request: Request) -> Response:
        return await archived(cid, request, private=False)

    @app.get("/api/v10/channels/{cid}/threads/archived/private")
    async def archived_private(cid: str, request: Request) -> Response:
        return await archived(cid, request, private=True)

    async def execute_webhook(wid: str, token: str, request: Request) -> Response:
        return await _execute_webhook(state, wid, token, request)

    app.add_api_route("/api/webhooks/{wid}/{token}", execute_webhook, methods=["POST"])
    app.add_api_route("/api/v10/webhooks/{wid}/{token}", execute_webhook, methods=["POST"])
    app.add_middleware(_Gate, state=state)
    return app


# --------------------------------------------------------------------------------------
# webhook execution


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart/form-data body into (headers, data) parts."""
    holder = Message()
    holder["content-type"] = content_type
    boundary = holder.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart body without a boundary")
    parts: list[tuple[dict[str, str], bytes]] = []
    for section in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if section.startswith(b"--"):
            break
        if section.startswith(b"\r\n"):
            section = section[2:]
        head, separator, data = section.partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("malformed multipart part")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts


def _disposition(headers: dict[str, str]) -> tuple[str | None, str | None]:
    holder = Message()
    holder["content-disposition"] = headers.get("content-disposition", "")
    name = holder.get_param("name", header="content-disposition")
    filename = holder.get_filename()
    return (name if isinstance(name, str) else None), filename


def _embed_errors(embeds: Any) -> JSONDict | None:
    if not isinstance(embeds, list):
        return {
            "embeds": {
                "_errors": [
                    {
                        "code": "LIST_TYPE_CONVERT",
                        "message": "Only iterables may be used in a ListType",
                    }
                ]
            }
        }
    if len(embeds) > 10:
        return {
            "embeds": {
                "_errors": [
                    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 10 or fewer in length."}
                ]
            }
        }
    errors: JSONDict = {}
    total = 0
    limits = {"title": 256, "description": 4096}
    for index, embed in enumerate(embeds):
        if not isinstance(embed, dict):
            errors[str(index)] = {
                "_errors": [
                    {"code": "MODEL_TYPE_CONVERT", "message": "Only dictionaries may be used"}
                ]
            }
            continue
        problems: JSONDict = {}
        for key, most in limits.items():
            text = str(embed.get(key) or "")
            total += len(text)
            if len(text) > most:
                problems[key] = _too_long(most)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            problems["fields"] = _too_long(25)
        for f_index, item in enumerate(fields):
            name, value = str(item.get("name", "")), str(item.get("value", ""))
            total += len(name) + len(value)
            if len(name) > 256 or len(value) > 1024 or not name or not value:
                problems.setdefault("fields", {})[str(f_index)] = {
                    "name" if len(name) > 256 or not name else "value": _too_long(
                        256 if len(name) > 256 or not name else 1024
                    )
                }
        footer = str((embed.get("footer") or {}).get("text", ""))
        author = str((embed.get("author") or {}).get("name", ""))
        total += len(footer) + len(author)
        if len(footer) > 2048:
            problems["footer"] = {"text": _too_long(2048)}
        if len(author) > 256:
            problems["author"] = {"name": _too_long(256)}
        if problems:
            errors[str(index)] = problems
    if errors:
        return {"embeds": errors}
    if total > 6000:
        return {
            "embeds": {
                "_errors": [
                    {
                        "code": "MAX_EMBED_SIZE_EXCEEDED",
                        "message": "Embed size exceeds maximum size of 6000",
                    }
                ]
            }
        }
    return None


def _too_long(most: int) -> JSONDict:
    return {
        "_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": f"Must be {most} or fewer in length."}
        ]
    }


async def _execute_webhook(
    state: _ServerState, raw_id: str, token: str, request: Request
) -> Response:
    community = state.community
    config = state.config
    if not raw_id.isdigit() or int(raw_id) != REPORT_WEBHOOK_ID:
        return _error(404, "Unknown Webhook", 10015)
    if token != config.webhook_token:
        return _error(401, "Invalid Webhook Token", 50027)
    webhook_id = int(raw_id)
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    payload: Any = {}
    files: list[UploadedFile] = []
    try:
        if content_type.startswith("multipart/form-data"):
            for headers, data in _parse_multipart(body, content_type):
                name, filename = _disposition(headers)
                if name == "payload_json":
                    payload = orjson.loads(data)
                elif filename is not None and name is not None:
                    files.append(
                        UploadedFile(
                            name,
                            filename,
                            headers.get("content-type", "application/octet-stream"),
                            data,
                        )
                    )
                elif name is not None and isinstance(payload, dict):
                    payload[name] = data.decode("utf-8")
        else:
            payload = orjson.loads(body) if body else {}
    except (orjson.JSONDecodeError, ValueError):
        return _error(400, "The request body contains invalid JSON.", 50109)
    if not isinstance(payload, dict):
        return _error(400, "The request body contains invalid JSON.", 50109)
    content = payload.get("content")
    embeds = payload.get("embeds")
    if not (content or embeds or payload.get("components") or files or payload.get("poll")):
        return _error(400, "Cannot send an empty message", 50006)
    if content is not None and len(str(content)) > 2000:
        return _error(400, "Invalid Form Body", 50035, errors={"content": _too_long(2000)})
    if embeds is not None:
        problems = _embed_errors(embeds)
        if problems:
            return _error(400, "Invalid Form Body", 50035, errors=problems)
    params = request.query_params
    wait = params.get("wait", "false").lower() == "true"
    channel_id = community.report_channel_id
    thread_id: int | None = None
    if params.get("thread_id") is not None:
        raw_thread = params["thread_id"]
        thread = community.channel(int(raw_thread)) if raw_thread.isdigit() else None
        if thread is None or thread.get("parent_id") != str(channel_id):
            return _error(400, "Unknown Channel", 10003)
        thread_id = channel_id = int(raw_thread)
    message_id, at = community.next_id()
    at_ms = int(at.timestamp() * 1000)
    described = {
        str(a.get("id")): a for a in payload.get("attachments") or [] if isinstance(a, dict)
    }
    attachments: list[JSONDict] = []
    urls: dict[str, str] = {}
    for upload in files:
        index = upload.field.removeprefix("files[").removesuffix("]")
        meta = described.get(index, {})
        filename = str(meta.get("filename") or upload.filename)
        attachment_id, _ = community.next_id(at)
        url = f"https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{filename}"
        urls[filename] = url
        attachment: JSONDict = {
            "id": str(attachment_id),
            "filename": filename,
            "size": len(upload.data),
            "url": url,
            "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
            "content_type": upload.content_type,
        }
        if meta.get("description"):
            attachment["description"] = meta["description"]
        attachments.append(attachment)
    sent_embeds = []
    for embed in embeds or []:
        embed = {**embed, "type": "rich"}
        for key in ("image", "thumbnail"):
            target = (embed.get(key) or {}).get("url", "")
            if isinstance(target, str) and target.startswith("attachment://"):
                embed[key] = {**embed[key], "url": urls.get(target[13:], target)}
        sent_embeds.append(embed)
    message: JSONDict = {
        "type": 0,
        "content": str(content or ""),
        "mentions": [],
        "mention_roles": [],
        "attachments": attachments,
        "embeds": sent_embeds,
        "timestamp": iso_ms(at_ms),
        "edited_timestamp": None,
        "flags": int(payload.get("flags") or 0),
        "components": [],
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": {
            "id": str(webhook_id),
            "username": str(payload.get("username") or "Clanpulse"),
            "avatar": None,
            "discriminator": "0000",
            "public_flags": 0,
            "flags": 0,
            "bot": True,
            "global_name": None,
        },
        "pinned": False,
        "mention_everyone": False,
        "tts": bool(payload.get("tts")),
        "webhook_id": str(webhook_id),
    }
    with state.posts_lock:
        state.webhook_posts.append(
            WebhookPost(webhook_id, payload, files, thread_id, wait, message)
        )
    if config.webhook_posts_visible:
        community.append_raw(message)
    if wait:
        return _json(message)
    return Response(status_code=204)


# --------------------------------------------------------------------------------------
# the server


class FakeDiscordServer(LoopbackServer):
    """A running fake Discord API on 127.0.0.1 (uvicorn on a background thread).

    ``with FakeDiscordServer(...) as server`` or ``start()``/``stop()`` from synchronous
    code; ``async with`` or ``await astart()``/``await astop()`` inside an event loop.
    """

    label = "fake Discord server"

    def __init__(
        self,
        community: Community | None = None,
        config: FakeDiscordConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.community = community if community is not None else generate_community()
        self.config = config if config is not None else FakeDiscordConfig()
        self._state = _ServerState(self.community, self.config)
        super().__init__(_build_app(self._state), host=host, port=port)

    # -- addresses ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The API base, ``http://127.0.0.1:PORT/api/v10``."""
        return f"{self.base_url}{API_PREFIX}"

    @property
    def token(self) -> str:
        return self.config.token

    @property
    def guild_id(self) -> int:
        return self.community.guild_id

    def webhook_url(self, webhook_id: int = REPORT_WEBHOOK_ID, token: str | None = None) -> str:
        """The report webhook's execute URL (``/api/webhooks/{id}/{token}``, like Discord's)."""
        return f"{self.base_url}/api/webhooks/{webhook_id}/{token or self.config.webhook_token}"

    def auth_headers(self) -> dict[str, str]:
        """Headers a well-behaved bot sends."""
        return {
            "Authorization": f"Bot {self.config.token}",
            "User-Agent": "DiscordBot (https://example.invalid/clanpulse-tests, 0.1.0)",
        }

    # -- observing and steering -----------------------------------------------------

    @property
    def stats(self) -> ServerStats:
        return self._state.stats

    @property
    def webhook_posts(self) -> list[WebhookPost]:
        with self._state.posts_lock:
            return list(self._state.webhook_posts)

    def append_message(
        self, channel_id: int, content: str | None = None, **kwargs: Any
    ) -> JSONDict:
        """Add a message while the server runs (see ``Community.append_message``)."""
        return self.community.append_message(channel_id, content, **kwargs)

    def reset_stats(self) -> None:
        self._state.stats.reset()

    def reset_rate_limits(self) -> None:
        self._state.windows = {}
        self._state.global_window = None

    def reseed_faults(self, seed: int | None = None) -> None:
        """Restart the fault sequence (from ``config.fault_seed`` unless given)."""
        self._state.fault_rng = random.Random(self.config.fault_seed if seed is None else seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m clanpulse.demo.fake_discord",
        description="Serve a generated clan community through a fake Discord REST API.",
    )
    add_server_arguments(parser)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--messages-per-day", type=int, default=400)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    community = generate_community(
        seed=args.seed, members=args.members, days=args.days, messages_per_day=args.messages_per_day
    )
    config = FakeDiscordConfig(
        token=args.token,
        time_scale=args.time_scale,
        fault_rate=args.fault_rate,
        latency=args.latency,
    )
    server = FakeDiscordServer(community, config, host=args.host, port=args.port)
    server.bind()
    print(f"fake Discord API: {server.url}", flush=True)
    print(f"bot token:        {config.token}", flush=True)
    print(f"guild id:         {community.guild_id}", flush=True)
    print(
        f"bridge channel:   {community.bridge_channel_id} (webhook {community.webhook_id})",
        flush=True,
    )
    print(f"report webhook:   {server.webhook_url()}", flush=True)
    print(f"messages:         {community.total_messages()}", flush=True)
    server.run_forever()


if __name__ == "__main__":
    main()
