"""Wise Old Man harvest: roster -> new snapshots -> backfill -> renames -> membership events.

It asks the API for as little as it allows: one request for the roster, one for every
member's latest reading (the group's bulk endpoint, where the server has it; else one per
member whose WOM update time is newer than what is stored), one page each of renames and
events until a known one. A player seen for the first time gets their history backfilled
over the longest report window, in one transaction with the marker saying it is done, so
a harvest killed at any instant redoes at most that player, and never doubles a reading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from clanpulse.identity import auto_link
from clanpulse.net.http import ApiError
from clanpulse.progress import Progress, SilentProgress
from clanpulse.records import GroupMembership
from clanpulse.settings import Settings
from clanpulse.sources.wom_api import ApiPayloadError
from clanpulse.sources.wom_client import EVENT_PAGE, WINDOW_SECONDS, EndpointMissing, WomClient
from clanpulse.store.database import Database
from clanpulse.store.ingest import cursor_keys, get_cursor, set_cursor
from clanpulse.store.schema import utcnow
from clanpulse.store.wom_ingest import (
    latest_snapshot_times,
    player_accounts,
    store_group_events,
    store_name_changes,
    store_snapshots,
    sync_roster,
    upsert_players,
)

log = logging.getLogger("clanpulse.harvest")

BACKFILL = timedelta(days=366)  # a day more than the longest report window (365d)
BACKFILL_SOURCE = "wom_backfill"
RENAMES_SOURCE = "wom_renames"
EVENTS_SOURCE = "wom_events"
PROGRESS_NAME = "wom backfill"


@dataclass(slots=True)
class WomHarvestReport:
    group: str = ""
    members: int = 0
    joined: int = 0
    left: int = 0
    new_snapshots: int = 0
    backfilled: int = 0
    name_changes: int = 0
    events: int = 0
    linked: int = 0
    refresh_requested: int | None = None
    bulk: bool = True
    requests: int = 0
    rate_limited: int = 0
    warnings: list[str] = field(default_factory=list)
    failed_players: list[str] = field(default_factory=list)
    circuit_open: bool = False  # the API kept failing and the run stopped asking it


async def harvest_wom(
    db: Database,
    settings: Settings,
    *,
    progress: Progress | None = None,
    client: WomClient | None = None,
    window: float = WINDOW_SECONDS,
) -> WomHarvestReport:
    """Harvest the group; ``window`` is the API's rate-limit window (scaled in trials)."""
    settings.require("wom_group_id")
    progress = progress or SilentProgress()
    if client is None:
        key = settings.wom_api_key.get_secret_value() if settings.wom_api_key else None
        async with WomClient.open(
            settings.wom_api_url, api_key=key, contact=settings.wom_contact, window=window
        ) as opened:
            return await _harvest(db, settings, opened, progress)
    return await _harvest(db, settings, client, progress)


async def _harvest(
    db: Database, settings: Settings, client: WomClient, progress: Progress
) -> WomHarvestReport:
    assert settings.wom_group_id is not None
    group_id = settings.wom_group_id
    report = WomHarvestReport()
    now = utcnow()

    report.group, memberships = await client.group(group_id)
    report.members = len(memberships)
    async with db.write() as conn:
        accounts = await upsert_players(conn, (m.player for m in memberships), now)
        changes = await sync_roster(conn, memberships, accounts, now)
    report.joined, report.left = len(changes.joined), len(changes.left)

    if settings.wom_verification_code is not None:
        report.refresh_requested = await client.update_all(
            group_id, settings.wom_verification_code.get_secret_value()
        )
        # WOM refreshes over minutes; the readings arrive with the next harvest

    pending = await _players_to_backfill(db, memberships)
    await _backfill(db, client, pending, accounts, now, report, progress)
    await _latest(
        db, client, group_id, memberships, accounts, {m.player.id for m in pending}, report
    )
    await _renames(db, client, group_id, report)
    await _events(db, client, group_id, report)
    async with db.write() as conn:
        report.linked = await auto_link(conn)
    report.requests = client.api.stats.requests
    report.rate_limited = client.api.stats.rate_limited
    report.circuit_open = bool(client.api.breaker and client.api.breaker.is_open)
    return report


async def _players_to_backfill(
    db: Database, memberships: list[GroupMembership]
) -> list[GroupMembership]:
    async with db.read() as conn:
        done = await cursor_keys(conn, BACKFILL_SOURCE)
    return [ms for ms in memberships if str(ms.player.id) not in done]


async def _backfill(
    db: Database,
    client: WomClient,
    pending: list[GroupMembership],
    accounts: dict[int, int],
    now: datetime,
    report: WomHarvestReport,
    progress: Progress,
) -> None:
    if not pending:
        return
    progress.start(PROGRESS_NAME, total=len(pending))
    for ms in pending:
        player = ms.player
        try:
            history = await client.snapshots(player.username, now - BACKFILL, now)
        except (ApiError, ApiPayloadError) as exc:
            # the others go on; this player is tried again next run
            report.failed_players.append(f"{player.display_name}: {exc}")
            log.debug("backfill of %s: %s", player.display_name, exc)
            if isinstance(exc, ApiError) and client.api.breaker and client.api.breaker.is_open:
                raise
            progress.advance(PROGRESS_NAME)
            continue
        async with db.write() as conn:
            report.new_snapshots += await store_snapshots(conn, accounts[player.id], history)
            await set_cursor(conn, BACKFILL_SOURCE, str(player.id), now.isoformat())
        report.backfilled += 1
        progress.advance(PROGRESS_NAME)
    progress.finish(PROGRESS_NAME, f"{report.backfilled} players")


async def _latest(
    db: Database,
    client: WomClient,
    group_id: int,
    memberships: list[GroupMembership],
    accounts: dict[int, int],
    just_backfilled: set[int],
    report: WomHarvestReport,
) -> None:
    async with db.read() as conn:
        stored = await latest_snapshot_times(conn)
    try:
        readings = await client.bulk_hiscores(group_id)
    except (EndpointMissing, ApiPayloadError) as exc:
        if isinstance(exc, ApiPayloadError):
            # one malformed entry must not cost every member their reading: ask one by one
            report.warnings.append(f"{exc}; fetching players one by one instead")
        report.bulk = False
        readings = []
        for ms in memberships:
            player = ms.player
            newest = stored.get(accounts[player.id])
            if player.id in just_backfilled:
                continue  # its history, latest reading included, was fetched a moment ago
            if player.updated_at is None or (newest is not None and player.updated_at <= newest):
                continue  # WOM has never read them, or nothing newer than we hold: no request
            try:
                fetched, latest = await client.player(player.username)
            except (ApiError, ApiPayloadError) as exc:
                report.failed_players.append(f"{player.display_name}: {exc}")
                if isinstance(exc, ApiError) and client.api.breaker and client.api.breaker.is_open:
                    raise
                continue
            if latest is not None:
                readings.append((fetched, latest))
    fresh = [
        (accounts[player.id], reading)
        for player, reading in readings
        if player.id in accounts
        and (
            stored.get(accounts[player.id]) is None
            or reading.taken_at > stored[accounts[player.id]]
        )
    ]
    if fresh:
        async with db.write() as conn:
            for account_id, reading in fresh:
                report.new_snapshots += await store_snapshots(conn, account_id, [reading])


async def _renames(
    db: Database, client: WomClient, group_id: int, report: WomHarvestReport
) -> None:
    """Newest first: page back to the newest rename of the last *completed* paging.

    The high-water mark moves only when a paging has finished, in the transaction of its last
    page: a run killed half-way re-reads from the top next time instead of mistaking the
    pages it did store for everything.
    """
    key = str(group_id)
    async with db.read() as conn:
        stored = await get_cursor(conn, RENAMES_SOURCE, key)
    done_up_to = int(stored) if stored is not None else 0
    newest = done_up_to
    offset = 0
    while True:
        try:
            page = await client.name_changes(group_id, offset)
        except ApiPayloadError as exc:
            report.warnings.append(f"renames not updated: {exc}")
            return
        newest = max([newest, *(c.id for c in page)])
        finished = len(page) < EVENT_PAGE or any(c.id <= done_up_to for c in page)
        async with db.write() as conn:
            report.name_changes += await store_name_changes(
                conn, [c for c in page if c.id > done_up_to], await player_accounts(conn)
            )
            if finished:
                await set_cursor(conn, RENAMES_SOURCE, key, str(newest))
        if finished:
            return
        offset += len(page)


async def _events(db: Database, client: WomClient, group_id: int, report: WomHarvestReport) -> None:
    """Newest first: page back to the newest event of the last *completed* paging."""
    key = str(group_id)
    async with db.read() as conn:
        stored = await get_cursor(conn, EVENTS_SOURCE, key)
    done_up_to = datetime.fromisoformat(stored) if stored is not None else None
    newest = done_up_to
    offset = 0
    while True:
        try:
            page = await client.activity(group_id, offset)
        except ApiPayloadError as exc:
            report.warnings.append(f"membership events not updated: {exc}")
            return
        for event in page:
            newest = event.at if newest is None or event.at > newest else newest
        finished = len(page) < EVENT_PAGE or (
            done_up_to is not None and any(e.at <= done_up_to for e in page)
        )
        async with db.write() as conn:
            # players who have left since are not on the roster: they get accounts too
            players = [e.player for e in page if e.player is not None]
            if players:
                await upsert_players(conn, players, utcnow())
            report.events += await store_group_events(conn, page, await player_accounts(conn))
            if finished and newest is not None:
                await set_cursor(conn, EVENTS_SOURCE, key, newest.isoformat())
        if finished:
            return
        offset += len(page)
