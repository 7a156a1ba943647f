"""Wise Old Man API v2 calls, returning typed records.

Every call goes through the shared HTTP layer (limits, retries, breaker); payloads are
validated by :mod:`clanpulse.sources.wom_api`. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx2

from clanpulse import __version__
from clanpulse.net.http import (
    ApiClient,
    ApiError,
    CircuitBreaker,
    RetryPolicy,
    Timeouts,
    make_client,
)
from clanpulse.net.ratelimit import WindowRateLimiter
from clanpulse.records import GroupEvent, GroupMembership, NameChange, Snapshot, WomPlayer
from clanpulse.sources.wom_api import (
    parse_bulk_hiscores,
    parse_group,
    parse_group_activity,
    parse_name_changes,
    parse_player,
    parse_snapshots,
)

LIMIT_WITHOUT_KEY = 20  # requests per window, per IP
LIMIT_WITH_KEY = 100  # requests per window, per key
WINDOW_SECONDS = 60.0
SNAPSHOT_PAGE = 200  # the most /snapshots returns at once
EVENT_PAGE = 50  # the most the paginated group endpoints return at once


class EndpointMissing(Exception):
    """The server does not have this (newer) endpoint: use the fallback."""


def user_agent(contact: str | None) -> str:
    about = f"; {contact}" if contact else ""
    return f"clanpulse/{__version__} (+https://github.com/clanpulse/clanpulse{about})"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class WomClient:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        base_url: str,
        *,
        api_key: str | None = None,
        contact: str | None = None,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        window: float = WINDOW_SECONDS,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[WomClient]:
        headers = {"User-Agent": user_agent(contact)}
        if api_key:
            headers["x-api-key"] = api_key
        limit = LIMIT_WITH_KEY if api_key else LIMIT_WITHOUT_KEY
        async with make_client(
            base_url, headers=headers, timeouts=timeouts, transport=transport
        ) as http:
            yield cls(
                ApiClient(
                    "wiseoldman",
                    http,
                    WindowRateLimiter(limit, window),
                    retry=retry or RetryPolicy(),
                    breaker=CircuitBreaker("wiseoldman"),
                )
            )

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.api.get_json(path, bucket="wom", params=params)

    async def group(self, group_id: int) -> tuple[str, list[GroupMembership]]:
        path = f"/groups/{group_id}"
        return parse_group(await self._get(path), f"GET {path}")

    async def bulk_hiscores(self, group_id: int) -> list[tuple[WomPlayer, Snapshot]]:
        path = f"/groups/{group_id}/bulk-hiscores"
        try:
            payload = await self._get(path)
        except ApiError as exc:
            if exc.status == 404 and exc.code == "ENDPOINT_NOT_FOUND":
                raise EndpointMissing(path) from None
            raise
        return parse_bulk_hiscores(payload, f"GET {path}")

    async def player(self, username: str) -> tuple[WomPlayer, Snapshot | None]:
        path = f"/players/{quote(username)}"
        return parse_player(await self._get(path), f"GET {path}")

    async def snapshots(self, username: str, start: datetime, end: datetime) -> list[Snapshot]:
        """Every snapshot in [start, end]. Both dates are always sent: the API ignores a
        start date alone and would return the whole history."""
        path = f"/players/{quote(username)}/snapshots"
        found: list[Snapshot] = []
        offset = 0
        while True:
            params = {
                "startDate": _iso(start),
                "endDate": _iso(end),
                "limit": SNAPSHOT_PAGE,
                "offset": offset,
            }
            page = parse_snapshots(await self._get(path, params), f"GET {path}")
            found.extend(page)
            if len(page) < SNAPSHOT_PAGE:
                return found
            offset += SNAPSHOT_PAGE

    async def name_changes(self, group_id: int, offset: int) -> list[NameChange]:
        path = f"/groups/{group_id}/name-changes"
        payload = await self._get(path, {"limit": EVENT_PAGE, "offset": offset})
        return parse_name_changes(payload, f"GET {path}")

    async def activity(self, group_id: int, offset: int) -> list[GroupEvent]:
        path = f"/groups/{group_id}/activity"
        payload = await self._get(path, {"limit": EVENT_PAGE, "offset": offset})
        return parse_group_activity(payload, f"GET {path}")

    async def update_all(self, group_id: int, verification_code: str) -> int:
        """Ask WOM to refresh outdated members; 0 when none is outdated (not a failure)."""
        path = f"/groups/{group_id}/update-all"
        try:
            response = await self.api.request(
                "POST", path, bucket="wom", json={"verificationCode": verification_code}
            )
        except ApiError as exc:
            if exc.status == 400 and exc.code == "NO_OUTDATED_MEMBERS":
                return 0
            raise
        count = response.json().get("count", 0)
        return int(count) if isinstance(count, int) else 0
