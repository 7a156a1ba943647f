"""Discord harvest: channels -> pages of messages -> counting rules -> ingest, per channel.

Each page is written in one transaction together with the channel's cursor (the newest
message id it covers), so a harvest killed at any instant resumes exactly where its last
commit left off, and a replayed page changes nothing. A first run walks forward from the
very first message, which makes the backfill and the incremental run one code path.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from clanpulse.counting import BridgeAuthors, classify
from clanpulse.net.http import ApiError, CircuitOpenError
from clanpulse.progress import Progress, SilentProgress
from clanpulse.records import Channel, ChatMessage, MessageBatch
from clanpulse.settings import Settings
from clanpulse.sources.discord_api import ApiPayloadError
from clanpulse.sources.discord_client import (
    MESSAGE_CHANNEL_TYPES,
    THREAD_PARENT_TYPES,
    DiscordClient,
)
from clanpulse.store.database import Database
from clanpulse.store.ingest import IngestCounts, get_cursor, ingest_batch, observe_discord_users
from clanpulse.store.schema import utcnow

log = logging.getLogger("clanpulse.harvest")

CURSOR_SOURCE = "discord"
CHANNEL_CONCURRENCY = 4  # channels are separate rate-limit resources; fetch a few at once
# Pages are written together up to this many messages: fewer, larger transactions, and the
# cursor still only ever moves with the messages it covers.
WRITE_BATCH = 1000
PROGRESS_NAME = "discord harvest"


@dataclass(slots=True)
class ChannelOutcome:
    channel: Channel
    counts: IngestCounts = field(default_factory=IngestCounts)
    error: str | None = None
    skipped: str | None = None


@dataclass(slots=True)
class HarvestReport:
    channels: list[ChannelOutcome] = field(default_factory=list)
    nicknames: int = 0
    warnings: list[str] = field(default_factory=list)
    requests: int = 0
    rate_limited: int = 0
    circuit_open: bool = False  # the API kept failing and the run stopped asking it

    @property
    def failed(self) -> list[ChannelOutcome]:
        return [c for c in self.channels if c.error is not None]

    @property
    def totals(self) -> IngestCounts:
        total = IngestCounts()
        for outcome in self.channels:
            total.add(outcome.counts)
        return total


async def harvest_discord(
    db: Database,
    settings: Settings,
    *,
    progress: Progress | None = None,
    client: DiscordClient | None = None,
) -> HarvestReport:
    """Harvest every configured channel (or every readable channel of the guild)."""
    settings.require("discord_token", "discord_source")
    progress = progress or SilentProgress()
    if client is None:
        assert settings.discord_token is not None
        async with DiscordClient.open(
            settings.discord_api_url, settings.discord_token.get_secret_value()
        ) as opened:
            return await _harvest(db, settings, opened, progress)
    return await _harvest(db, settings, client, progress)


async def _harvest(
    db: Database, settings: Settings, client: DiscordClient, progress: Progress
) -> HarvestReport:
    report = HarvestReport()
    bridge = BridgeAuthors.from_settings(settings.discord_bridge_authors)
    channels, guild_id = await _discover(client, settings, report)
    progress.start(PROGRESS_NAME, total=len(channels))
    limit = asyncio.Semaphore(CHANNEL_CONCURRENCY)
    explicit = set(settings.discord_channels)

    async def one(ch: Channel) -> ChannelOutcome:
        async with limit:
            outcome = ChannelOutcome(ch)
            try:
                await _harvest_channel(db, client, ch, bridge, outcome, report)
            except (ApiError, ApiPayloadError, DBAPIError) as exc:
                if getattr(exc, "status", None) == 403 and ch.id not in explicit:
                    outcome.skipped = "no access"
                    log.info("channel #%s (%s): skipped, no access", ch.name, ch.id)
                else:
                    outcome.error = str(exc)
                    log.debug("channel #%s (%s): %s", ch.name, ch.id, exc)
            progress.advance(PROGRESS_NAME)
            return outcome

    report.channels = list(await asyncio.gather(*(one(ch) for ch in channels)))
    if guild_id is not None and not (client.api.breaker and client.api.breaker.is_open):
        await _observe_nicknames(db, client, guild_id, report)
    report.requests = client.api.stats.requests
    report.rate_limited = client.api.stats.rate_limited
    report.circuit_open = bool(client.api.breaker and client.api.breaker.is_open)
    totals = report.totals
    progress.finish(PROGRESS_NAME, f"{totals.inserted} new messages")
    return report


async def _discover(
    client: DiscordClient, settings: Settings, report: HarvestReport
) -> tuple[list[Channel], int | None]:
    """The channels to read: the configured ones, else the guild's text channels and threads."""
    found: dict[int, Channel] = {}
    guild_id = settings.discord_guild_id
    for channel_id in settings.discord_channels:
        try:
            ch = await client.channel(channel_id)
        except CircuitOpenError:
            raise
        except (ApiError, ApiPayloadError) as exc:
            # keep it in the list so it is reported as failed, not silently dropped
            report.warnings.append(str(exc))
            ch = Channel(id=channel_id, name=str(channel_id), type=0)
        found[ch.id] = ch
        guild_id = guild_id or ch.guild_id
    if settings.discord_guild_id is not None and not settings.discord_channels:
        gid = settings.discord_guild_id
        parents = []
        for ch in await client.guild_channels(gid):
            if ch.type in MESSAGE_CHANNEL_TYPES:
                found[ch.id] = ch
            if ch.type in THREAD_PARENT_TYPES:
                parents.append(ch)
        for thread in await client.active_threads(gid):
            found[thread.id] = thread
        for parent in parents:
            for private in (False, True):
                try:
                    for thread in await client.archived_threads(parent.id, private=private):
                        found[thread.id] = thread
                except CircuitOpenError:
                    raise
                except (ApiError, ApiPayloadError) as exc:
                    if getattr(exc, "status", None) == 403:
                        # private archives need MANAGE_THREADS; public ones READ_MESSAGE_HISTORY
                        log.debug("archived threads of #%s: no access", parent.name)
                    else:
                        # the channel itself may still be readable: go on without these threads
                        report.warnings.append(f"archived threads of #{parent.name}: {exc}")
    return sorted(found.values(), key=lambda c: c.id), guild_id


async def _harvest_channel(
    db: Database,
    client: DiscordClient,
    ch: Channel,
    bridge: BridgeAuthors,
    outcome: ChannelOutcome,
    report: HarvestReport,
) -> None:
    key = str(ch.id)
    async with db.read() as conn:
        stored = await get_cursor(conn, CURSOR_SOURCE, key)
    after = int(stored) if stored is not None else 0
    # A fixed end for this run, so a busy channel cannot keep it going forever.
    stop_id = await client.newest_message_id(ch.id)
    if stop_id is None or stop_id <= after:
        async with db.write() as conn:
            await ingest_batch(conn, MessageBatch(ch))  # keep the channel's name current
        return
    warned_intent = False
    pending: list[ChatMessage] = []

    async def flush() -> None:
        if not pending:
            return
        newest = pending[-1].id
        batch = MessageBatch(
            ch, [classify(m, bridge) for m in pending], cursor=(CURSOR_SOURCE, key, str(newest))
        )
        async with db.write() as conn:
            outcome.counts.add(await ingest_batch(conn, batch))
        pending.clear()

    try:
        while after < stop_id:
            page = await client.messages_after(ch.id, after)
            if not page:
                break
            if not warned_intent and _looks_like_no_content_intent(page):
                warned_intent = True
                report.warnings.append(
                    f"#{ch.name}: messages arrive without content; is the MESSAGE_CONTENT intent "
                    "enabled? Counting still works, clan chat bridge lines cannot be attributed."
                )
            pending.extend(page)
            after = page[-1].id
            if len(pending) >= WRITE_BATCH:
                await flush()
    except (ApiError, ApiPayloadError):
        await flush()  # keep what was fetched before the failure
        raise
    await flush()


def _looks_like_no_content_intent(page: list[ChatMessage]) -> bool:
    human = [m for m in page if m.type in (0, 19) and not m.author.is_bot]
    return len(human) >= 20 and all(not m.content and not m.attachments for m in human)


async def _observe_nicknames(
    db: Database, client: DiscordClient, guild_id: int, report: HarvestReport
) -> None:
    """Guild nicknames come only from the member list (message history carries none)."""
    seen_at = utcnow()
    try:
        async for page in client.guild_members(guild_id):
            async with db.write() as conn:
                report.nicknames += await observe_discord_users(conn, page, seen_at)
    except ApiError as exc:
        if exc.status in (401, 403) or isinstance(exc, CircuitOpenError):
            report.warnings.append(
                "guild member list not readable (is the GUILD_MEMBERS intent enabled?): "
                "names fall back to global display names"
            )
        else:
            report.warnings.append(f"nicknames not updated: {exc}")
