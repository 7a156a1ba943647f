"""Ingest of Wise Old Man data: players, clan roster, snapshots, renames, membership events.

Like the chat ingest, every function writes inside the caller's transaction and is
idempotent: snapshots are keyed by (player, WOM's createdAt), renames by WOM's id, events
by (player, type, time), so a replayed batch changes nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.identity import merge_accounts
from clanpulse.names import normalize_osrs_name
from clanpulse.records import GroupEvent, GroupMembership, NameChange, Platform, Snapshot, WomPlayer
from clanpulse.store.archive_schema import archived_snapshot
from clanpulse.store.ingest import archived_keys, insert_for
from clanpulse.store.schema import account, group_event, member, name_change, snapshot, utcnow

OSRS = Platform.OSRS.value


def pack_snapshot_data(data: dict[str, Any]) -> bytes:
    # level 1: nearly the size of level 6 on this JSON, at a fraction of the CPU
    return zlib.compress(orjson.dumps(data), 1)


def unpack_snapshot_data(blob: bytes) -> dict[str, Any]:
    value = orjson.loads(zlib.decompress(blob))
    assert isinstance(value, dict)
    return value


async def player_accounts(conn: AsyncConnection) -> dict[int, int]:
    """WOM player id -> account id, for every player we know."""
    rows = await conn.execute(
        select(account.c.external_id, account.c.id).where(
            account.c.platform == OSRS, account.c.external_id.is_not(None)
        )
    )
    return {int(xid): aid for xid, aid in rows}


async def upsert_players(
    conn: AsyncConnection, players: Iterable[WomPlayer], seen_at: datetime
) -> dict[int, int]:
    """Make sure every player has an account, named as WOM shows it; return id -> account.

    A name first seen in relayed clan chat already has an account of its own: the player
    adopts it (with its messages) instead of getting a second one.
    """
    known = await player_accounts(conn)
    refresh = []
    current_names: dict[str, int] = {}
    for player in players:
        account_id = known.get(player.id)
        if account_id is None:
            account_id = known[player.id] = await _adopt_or_create(conn, player, seen_at)
        else:
            refresh.append({"aid": account_id, "u": player.display_name, "n": player.username})
        current_names[player.username] = account_id
    if refresh:
        # WOM's display name wins: it follows renames
        await conn.execute(
            update(account)
            .where(account.c.id == bindparam("aid"))
            .values(username=bindparam("u"), normalized_name=bindparam("n"), names_seen_at=seen_at),
            refresh,
        )
    # a player's (new) name may have chat lines waiting on an account of their own
    waiting = await conn.execute(
        select(account.c.id, account.c.normalized_name).where(
            account.c.platform == OSRS,
            account.c.external_id.is_(None),
            account.c.normalized_name.in_(list(current_names)),
        )
    )
    for waiting_id, name in waiting.all():
        await merge_accounts(conn, waiting_id, current_names[name])
    return known


async def _adopt_or_create(conn: AsyncConnection, player: WomPlayer, seen_at: datetime) -> int:
    waiting = (
        await conn.execute(
            select(account.c.id).where(
                account.c.platform == OSRS,
                account.c.external_id.is_(None),
                account.c.normalized_name == player.username,
            )
        )
    ).scalar_one_or_none()
    if waiting is not None:
        await conn.execute(
            update(account)
            .where(account.c.id == waiting)
            .values(external_id=str(player.id), username=player.display_name, names_seen_at=seen_at)
        )
        return int(waiting)
    created_member = await conn.execute(
        member.insert().values(created_at=utcnow(), opted_out=False).returning(member.c.id)
    )
    created = await conn.execute(
        account.insert()
        .values(
            platform=OSRS,
            external_id=str(player.id),
            normalized_name=player.username,
            username=player.display_name,
            names_seen_at=seen_at,
            is_bot=False,
            member_id=created_member.scalar_one(),
            created_at=utcnow(),
        )
        .returning(account.c.id)
    )
    return int(created.scalar_one())


async def _absorb_chat_name(conn: AsyncConnection, normalized: str, account_id: int) -> None:
    """Chat lines under a name that now belongs to a tracked player move onto that player."""
    waiting = (
        await conn.execute(
            select(account.c.id).where(
                account.c.platform == OSRS,
                account.c.external_id.is_(None),
                account.c.normalized_name == normalized,
            )
        )
    ).scalar_one_or_none()
    if waiting is not None:
        await merge_accounts(conn, waiting, account_id)


@dataclass(slots=True)
class RosterChanges:
    joined: list[int] = field(default_factory=list)  # account ids
    left: list[int] = field(default_factory=list)
    role_changed: list[int] = field(default_factory=list)


async def sync_roster(
    conn: AsyncConnection,
    memberships: list[GroupMembership],
    accounts: dict[int, int],
    now: datetime,
) -> RosterChanges:
    """Current members get their role and join date; members no longer listed are marked
    left (never deleted: their history stays)."""
    changes = RosterChanges()
    before = {
        row.id: row
        for row in await conn.execute(
            select(account.c.id, account.c.role, account.c.joined_at, account.c.left_at).where(
                account.c.platform == OSRS, account.c.joined_at.is_not(None)
            )
        )
    }
    current: set[int] = set()
    updates = []
    for ms in memberships:
        account_id = accounts[ms.player.id]
        current.add(account_id)
        old = before.get(account_id)
        if old is None or old.left_at is not None:
            changes.joined.append(account_id)
        elif old.role != ms.role:
            changes.role_changed.append(account_id)
        updates.append({"aid": account_id, "role": ms.role, "joined": ms.joined_at})
    if updates:
        await conn.execute(
            update(account)
            .where(account.c.id == bindparam("aid"))
            .values(role=bindparam("role"), joined_at=bindparam("joined"), left_at=None),
            updates,
        )
    gone = [aid for aid, row in before.items() if aid not in current and row.left_at is None]
    if gone:
        await conn.execute(update(account).where(account.c.id.in_(gone)).values(left_at=now))
        changes.left = gone
    return changes


async def latest_snapshot_times(conn: AsyncConnection) -> dict[int, datetime]:
    """Account id -> newest stored reading, one index seek per player (never a table scan).

    Read it on a reader connection: only there does ``snapshot`` include archived readings.
    (``ORDER BY ... LIMIT 1``, not ``max()``: SQLite seeks through the hot + archive view
    only for the former; see ``store/archive_schema.py``.)
    """
    newest = (
        select(snapshot.c.taken_at)
        .where(snapshot.c.account_id == account.c.id)
        .order_by(snapshot.c.taken_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    rows = await conn.execute(
        select(account.c.id, newest.label("newest")).where(
            account.c.platform == OSRS, account.c.external_id.is_not(None)
        )
    )
    return {aid: when for aid, when in rows if when is not None}


async def store_snapshots(
    conn: AsyncConnection, account_id: int, snapshots: Iterable[Snapshot]
) -> int:
    rows = [
        {
            "account_id": account_id,
            "taken_at": s.taken_at,
            "overall_xp": s.overall_xp,
            "ehp": s.ehp,
            "ehb": s.ehb,
            "boss_kills": s.boss_kills,
            "data": pack_snapshot_data(s.data),
        }
        for s in snapshots
    ]
    cold = archived_snapshot.c
    archived = await archived_keys(
        conn, cold.account_id, account_id, cold.taken_at, [r["taken_at"] for r in rows]
    )
    rows = [r for r in rows if r["taken_at"] not in archived]
    if not rows:
        return 0
    result = await conn.execute(_snapshot_insert(conn.dialect.name), rows)
    return len(result.all())


@cache
def _snapshot_insert(dialect: str) -> Any:
    return (
        insert_for(dialect)(snapshot)
        .on_conflict_do_nothing(index_elements=["account_id", "taken_at"])
        .returning(snapshot.c.taken_at)
    )


async def store_name_changes(
    conn: AsyncConnection, changes: Iterable[NameChange], accounts: dict[int, int]
) -> int:
    """Record renames, and move chat lines said under an old name onto the player."""
    rows: list[dict[str, Any]] = [
        {
            "id": c.id,
            "account_id": accounts[c.player_id],
            "old_name": c.old_name,
            "old_normalized": normalize_osrs_name(c.old_name),
            "new_name": c.new_name,
            "new_normalized": normalize_osrs_name(c.new_name),
            "resolved_at": c.resolved_at,
        }
        for c in changes
        if c.player_id in accounts
    ]
    if not rows:
        return 0
    inserted = await conn.execute(
        insert_for(conn.dialect.name)(name_change)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(name_change.c.id),
        rows,
    )
    count = len(inserted.all())
    for row in rows:
        for name in (row["old_normalized"], row["new_normalized"]):
            await _absorb_chat_name_if_unique(conn, name, row["account_id"])
    return count


async def _absorb_chat_name_if_unique(conn: AsyncConnection, name: str, account_id: int) -> None:
    holders = await conn.execute(
        select(name_change.c.account_id)
        .where((name_change.c.old_normalized == name) | (name_change.c.new_normalized == name))
        .distinct()
    )
    if {row[0] for row in holders} == {account_id}:  # a name two players held is not guessed
        await _absorb_chat_name(conn, name, account_id)


async def store_group_events(
    conn: AsyncConnection, events: Iterable[GroupEvent], accounts: dict[int, int]
) -> int:
    rows = [
        {
            "account_id": accounts[e.player_id],
            "type": e.type,
            "role": e.role,
            "previous_role": e.previous_role,
            "at": e.at,
        }
        for e in events
        if e.player_id in accounts
    ]
    if not rows:
        return 0
    inserted = await conn.execute(
        insert_for(conn.dialect.name)(group_event)
        .on_conflict_do_nothing(index_elements=["account_id", "type", "at"])
        .returning(group_event.c.id),
        rows,
    )
    return len(inserted.all())
