"""Helpers for harvest tests: a small generated clan served by the fake Discord API, and
expectations computed straight from the source data (not through clanpulse's own code)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from clanpulse.demo.community import BRIDGE_WEBHOOK_ID, Community, generate_community
from clanpulse.demo.fake_discord import FakeDiscordServer
from clanpulse.settings import Settings, load_settings
from clanpulse.store.database import Database
from clanpulse.store.schema import account, channel, message, message_rollup

END = datetime(2026, 3, 30, tzinfo=UTC)
# the bridge regex of the clan chat spec, written out here independently of the parser
BRIDGE_CHAT = re.compile(r"^(?:(?:<a?:\w+:\d+>|:\w+:)\s*)*\*\*(?P<name>[^*\n]{1,40}?)\*\*:")


def small_clan(seed: int = 3, members: int = 24, days: int = 12) -> Community:
    return generate_community(seed=seed, members=members, days=days, end=END, messages_per_day=120)


def settings_for(server: FakeDiscordServer, url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "discord_token": server.token,
        "discord_api_url": server.url,
        "discord_guild_id": server.guild_id,
        "discord_channels": [],
        "discord_bridge_authors": [str(BRIDGE_WEBHOOK_ID)],
    }
    values.update(extra)
    return load_settings(**values)


def env_for(server: FakeDiscordServer, url: str) -> dict[str, str]:
    return {
        "CLANPULSE_DATABASE_URL": url,
        "CLANPULSE_DISCORD_TOKEN": server.token,
        "CLANPULSE_DISCORD_API_URL": server.url,
        "CLANPULSE_DISCORD_GUILD_ID": str(server.guild_id),
        "CLANPULSE_DISCORD_BRIDGE_AUTHORS": str(BRIDGE_WEBHOOK_ID),
    }


def readable_channels(community: Community, forbidden: set[int] | None = None) -> set[int]:
    """Channels with history the bot can read: not forbidden, not private threads."""
    hidden = set(community.forbidden_channel_ids) | (forbidden or set())
    return {
        cid
        for cid in community.message_channel_ids()
        if cid not in hidden and (community.channel(cid) or {}).get("type") != 12
    }


def source_ids(community: Community, channels: set[int]) -> dict[int, set[int]]:
    return {cid: {int(m["id"]) for m in community.channel_messages(cid)} for cid in channels}


def expected_discord_counts(community: Community, channels: set[int]) -> Counter[int]:
    """Messages per Discord user that count: Default/Reply by a human, no webhook."""
    counts: Counter[int] = Counter()
    for cid in channels:
        for m in community.channel_messages(cid):
            author = m["author"]
            if m["type"] in (0, 19) and not author.get("bot") and "webhook_id" not in m:
                counts[int(author["id"])] += 1
    return counts


def expected_bridge_lines(community: Community, channels: set[int]) -> int:
    total = 0
    for cid in channels:
        for m in community.channel_messages(cid):
            if int(m["author"]["id"]) == BRIDGE_WEBHOOK_ID and m["type"] == 0:
                match = BRIDGE_CHAT.match(m["content"])
                if match and len(match["name"].replace("\\", "").strip()) <= 12:
                    total += 1
    return total


async def stored_ids(db: Database) -> dict[int, set[int]]:
    found: dict[int, set[int]] = {}
    async with db.read() as conn:
        rows = await conn.execute(
            select(channel.c.external_id, message.c.external_id).join(
                channel, channel.c.id == message.c.channel_id
            )
        )
        for cid, mid in rows:
            found.setdefault(int(cid), set()).add(int(mid))
    return found


async def stored_discord_counts(db: Database) -> Counter[int]:
    async with db.read() as conn:
        rows = await conn.execute(
            select(account.c.external_id, func.count())
            .select_from(message)
            .join(account, account.c.id == message.c.credited_account_id)
            .where(account.c.platform == "discord")
            .group_by(account.c.external_id)
        )
        return Counter({int(xid): n for xid, n in rows})


async def rollup_matches_messages(db: Database) -> tuple[int, int]:
    """(sum of the rollup, counted raw messages): equal when the rollup is consistent."""
    async with db.read() as conn:
        rolled = (
            await conn.execute(select(func.coalesce(func.sum(message_rollup.c.messages), 0)))
        ).scalar_one()
        raw = (
            await conn.execute(
                select(func.count())
                .select_from(message)
                .where(message.c.credited_account_id.is_not(None))
            )
        ).scalar_one()
    return int(rolled), int(raw)
