"""Discord REST API v10 calls the harvester needs, returning typed records.

Every call goes through the shared HTTP layer (limits, retries, breaker); payloads are
validated by :mod:`clanpulse.sources.discord_api`. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2

from clanpulse import __version__
from clanpulse.net.http import ApiClient, CircuitBreaker, RetryPolicy, Timeouts, make_client
from clanpulse.net.ratelimit import DiscordRateLimiter
from clanpulse.records import Channel, ChatMessage, DiscordUser
from clanpulse.sources.discord_api import (
    parse_channel,
    parse_channels,
    parse_members,
    parse_messages,
    parse_thread_list,
)

USER_AGENT = f"DiscordBot (https://github.com/clanpulse/clanpulse, {__version__})"
PAGE_SIZE = 100  # the most the messages endpoint returns at once
MEMBERS_PAGE_SIZE = 1000

# Channel types whose history the messages endpoint serves (see the REST spec, section 2).
MESSAGE_CHANNEL_TYPES = frozenset({0, 2, 5, 10, 11, 12, 13})
# Channel types that own threads (text, announcement, forum, media).
THREAD_PARENT_TYPES = frozenset({0, 5, 15, 16})


class DiscordClient:
    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        base_url: str,
        token: str,
        *,
        retry: RetryPolicy | None = None,
        timeouts: Timeouts | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> AsyncIterator[DiscordClient]:
        headers = {"Authorization": f"Bot {token}", "User-Agent": USER_AGENT}
        async with make_client(
            base_url, headers=headers, timeouts=timeouts, transport=transport
        ) as http:
            yield cls(
                ApiClient(
                    "discord",
                    http,
                    DiscordRateLimiter(),
                    retry=retry or RetryPolicy(),
                    breaker=CircuitBreaker("discord"),
                )
            )

    async def channel(self, channel_id: int) -> Channel:
        path = f"/channels/{channel_id}"
        payload = await self.api.get_json(path, bucket=f"GET /channels/{{id}}|{channel_id}")
        return parse_channel(payload, f"GET {path}")

    async def guild_channels(self, guild_id: int) -> list[Channel]:
        path = f"/guilds/{guild_id}/channels"
        payload = await self.api.get_json(path, bucket=f"GET /guilds/{{id}}/channels|{guild_id}")
        return parse_channels(payload, f"GET {path}")

    async def active_threads(self, guild_id: int) -> list[Channel]:
        path = f"/guilds/{guild_id}/threads/active"
        payload = await self.api.get_json(
            path, bucket=f"GET /guilds/{{id}}/threads/active|{guild_id}"
        )
        return parse_thread_list(payload, f"GET {path}")[0]

    async def archived_threads(self, channel_id: int, *, private: bool) -> list[Channel]:
        """Every archived thread of a channel, paging by archive time until ``has_more`` ends."""
        kind = "private" if private else "public"
        path = f"/channels/{channel_id}/threads/archived/{kind}"
        threads: list[Channel] = []
        before: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if before is not None:
                params["before"] = before
            payload = await self.api.get_json(
                path,
                bucket=f"GET /channels/{{id}}/threads/archived/{kind}|{channel_id}",
                params=params,
            )
            page, has_more, stamps = parse_thread_list(payload, f"GET {path}")
            threads.extend(page)
            if not has_more or not stamps or stamps[-1] == before:
                return threads
            before = stamps[-1]

    async def newest_message_id(self, channel_id: int) -> int | None:
        page = await self._messages(channel_id, {"limit": 1})
        return max((m.id for m in page), default=None)

    async def messages_after(self, channel_id: int, after: int) -> list[ChatMessage]:
        """The next page of messages after ``after``, oldest first (the API sends newest first)."""
        page = await self._messages(channel_id, {"after": str(after), "limit": PAGE_SIZE})
        return sorted(page, key=lambda m: m.id)

    async def _messages(self, channel_id: int, params: dict[str, str | int]) -> list[ChatMessage]:
        path = f"/channels/{channel_id}/messages"
        payload = await self.api.get_json(
            path, bucket=f"GET /channels/{{id}}/messages|{channel_id}", params=params
        )
        return parse_messages(payload, f"GET {path}")

    async def guild_members(self, guild_id: int) -> AsyncIterator[list[DiscordUser]]:
        """The guild member list, a page at a time (needs the GUILD_MEMBERS intent)."""
        path = f"/guilds/{guild_id}/members"
        after = 0
        while True:
            payload = await self.api.get_json(
                path,
                bucket=f"GET /guilds/{{id}}/members|{guild_id}",
                params={"limit": MEMBERS_PAGE_SIZE, "after": str(after)},
            )
            page = parse_members(payload, f"GET {path}")
            if not page:
                return
            yield page
            newest = max(user.id for user in page)
            if len(page) < MEMBERS_PAGE_SIZE or newest <= after:
                return
            after = newest
