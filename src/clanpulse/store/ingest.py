"""Ingest: the only code that writes chat data.

Each call writes one batch inside the caller's write transaction: the channel, the
accounts and members it mentions, the messages (idempotent on channel + message id), the
daily rollup of the messages that were new, and the harvest cursor covering them. A batch
replayed after a crash changes nothing; a batch cut short by one leaves nothing behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import Column, and_, bindparam, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.identity import resolve_osrs_names
from clanpulse.records import (
    Channel,
    ClassifiedMessage,
    DiscordUser,
    MessageBatch,
    OsrsSpeaker,
    Platform,
)
from clanpulse.store.archive_schema import archived_message, has_archive
from clanpulse.store.schema import (
    account,
    channel,
    harvest_cursor,
    imported_file,
    member,
    message,
    message_rollup,
    utcnow,
)

# keys per archive lookup: well under both backends' limit on bound parameters
KEY_CHUNK = 5_000


@dataclass(slots=True)
class IngestCounts:
    received: int = 0
    inserted: int = 0
    counted: int = 0
    edited: int = 0

    def add(self, other: IngestCounts) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.counted += other.counted
        self.edited += other.edited


def insert_for(dialect: str) -> Callable[..., Any]:
    """The dialect's INSERT, which knows ON CONFLICT (both backends speak it)."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _newer(new: Any, old: Any) -> Any:
    """SQL for "the later of two timestamps" that means the same on both backends."""
    return case((new > old, new), else_=old)


async def upsert_channel(conn: AsyncConnection, ch: Channel, platform: str = "discord") -> int:
    row = {
        "platform": platform,
        "external_id": str(ch.id),
        "guild_id": None if ch.guild_id is None else str(ch.guild_id),
        "parent_external_id": None if ch.parent_id is None else str(ch.parent_id),
        "name": ch.name,
        "type": ch.type,
    }
    return int((await conn.execute(_channel_upsert(conn.dialect.name), row)).scalar_one())


@cache
def _channel_upsert(dialect: str) -> Any:
    ins = insert_for(dialect)(channel)
    return ins.on_conflict_do_update(
        index_elements=["platform", "external_id"],
        set_={
            "name": ins.excluded.name,
            "type": ins.excluded.type,
            "guild_id": func.coalesce(ins.excluded.guild_id, channel.c.guild_id),
            "parent_external_id": func.coalesce(
                ins.excluded.parent_external_id, channel.c.parent_external_id
            ),
        },
    ).returning(channel.c.id)


@dataclass(slots=True)
class _Observation:
    """The latest names seen for one account within a batch."""

    username: str
    global_name: str | None
    nickname: str | None
    seen_at: datetime
    is_bot: bool


def _merge(seen: dict[Any, _Observation], key: Any, obs: _Observation) -> None:
    old = seen.get(key)
    if old is None:
        seen[key] = obs
    elif obs.seen_at >= old.seen_at:
        # fields this observation does not know keep what an earlier one said
        seen[key] = _Observation(
            obs.username,
            obs.global_name if obs.global_name is not None else old.global_name,
            obs.nickname if obs.nickname is not None else old.nickname,
            obs.seen_at,
            obs.is_bot,
        )


async def _upsert_accounts(
    conn: AsyncConnection,
    platform: Platform,
    seen: dict[Any, _Observation],
) -> dict[Any, int]:
    """Write name observations; return account ids by key (Discord id or normalized name)."""
    if not seen:
        return {}
    now = utcnow()
    rows = []
    for key, obs in seen.items():
        rows.append(
            {
                "platform": platform.value,
                "external_id": str(key) if platform is Platform.DISCORD else None,
                "normalized_name": key if platform is Platform.OSRS else None,
                "username": obs.username,
                "global_name": obs.global_name,
                "nickname": obs.nickname,
                "names_seen_at": obs.seen_at,
                "is_bot": obs.is_bot,
                "created_at": now,
            }
        )
    stmt, key_col = _account_upsert(conn.dialect.name, platform)
    await conn.execute(stmt, rows)

    keys = [str(k) for k in seen] if platform is Platform.DISCORD else list(seen)
    query = select(key_col, account.c.id, account.c.member_id, account.c.is_bot).where(
        account.c.platform == platform.value, key_col.in_(keys)
    )
    if platform is Platform.OSRS:
        query = query.where(account.c.external_id.is_(None))
    found = await conn.execute(query)
    ids: dict[Any, int] = {}
    needs_member: list[int] = []
    for key, account_id, member_id, is_bot in found:
        ids[int(key) if platform is Platform.DISCORD else key] = account_id
        if member_id is None and not is_bot:
            needs_member.append(account_id)
    await _create_members(conn, needs_member)
    return ids


@cache
def _account_upsert(dialect: str, platform: Platform) -> tuple[Any, Any]:
    """The account upsert, built once per dialect (building ON CONFLICT clauses is costly)."""
    ins = insert_for(dialect)(account)
    newer = ins.excluded.names_seen_at >= account.c.names_seen_at

    def pick(col: str) -> Any:
        # a newer observation wins; None means "this source does not say" and keeps the old
        return case((newer, func.coalesce(ins.excluded[col], account.c[col])), else_=account.c[col])

    set_ = {
        "username": case((newer, ins.excluded.username), else_=account.c.username),
        "global_name": pick("global_name"),
        "nickname": pick("nickname"),
        "names_seen_at": _newer(ins.excluded.names_seen_at, account.c.names_seen_at),
    }
    if platform is Platform.DISCORD:
        stmt = ins.on_conflict_do_update(index_elements=["platform", "external_id"], set_=set_)
        key_col = account.c.external_id
    else:
        stmt = ins.on_conflict_do_update(
            index_elements=["platform", "normalized_name"],
            index_where=account.c.external_id.is_(None),
            set_=set_,
        )
        key_col = account.c.normalized_name
    return stmt, key_col


async def _create_members(conn: AsyncConnection, account_ids: list[int]) -> None:
    """Every person-owned account starts as its own member; linking merges them later."""
    if not account_ids:
        return
    now = utcnow()
    created = await conn.execute(
        member.insert().returning(member.c.id, sort_by_parameter_order=True),
        [{"created_at": now, "opted_out": False} for _ in account_ids],
    )
    member_ids = [row[0] for row in created]
    await conn.execute(
        update(account).where(account.c.id == bindparam("aid")).values(member_id=bindparam("mid")),
        [{"aid": a, "mid": m} for a, m in zip(account_ids, member_ids, strict=True)],
    )


def _discord_observation(user: DiscordUser, seen_at: datetime) -> _Observation:
    return _Observation(
        user.username, user.global_name, user.nickname, seen_at, user.is_bot or user.is_webhook
    )


async def observe_discord_users(
    conn: AsyncConnection, users: Iterable[DiscordUser], seen_at: datetime
) -> int:
    """Record names from the guild member list (the only place nicknames come from over REST)."""
    seen: dict[Any, _Observation] = {}
    for user in users:
        _merge(seen, user.id, _discord_observation(user, seen_at))
    await _upsert_accounts(conn, Platform.DISCORD, seen)
    return len(seen)


async def ingest_batch(conn: AsyncConnection, batch: MessageBatch) -> IngestCounts:
    """Write one batch of classified messages of one channel, with rollups and cursor."""
    counts = IngestCounts(received=len(batch.messages))
    channel_id = await upsert_channel(conn, batch.channel)
    if batch.messages:
        await _write_messages(conn, channel_id, batch.messages, counts)
    if batch.cursor is not None:
        await set_cursor(conn, *batch.cursor)
    return counts


async def _write_messages(
    conn: AsyncConnection, channel_id: int, items: list[ClassifiedMessage], counts: IngestCounts
) -> None:
    authors: dict[Any, _Observation] = {}
    speakers: dict[Any, _Observation] = {}
    for item in items:
        msg = item.message
        _merge(authors, msg.author.id, _discord_observation(msg.author, msg.sent_at))
        if item.speaker is not None:
            _merge(
                speakers, item.speaker.normalized, _speaker_observation(item.speaker, msg.sent_at)
            )
    author_ids = await _upsert_accounts(conn, Platform.DISCORD, authors)
    # in-game names of tracked players go to their accounts; others wait on their own
    speaker_ids = await resolve_osrs_names(conn, set(speakers))
    unknown = {name: obs for name, obs in speakers.items() if name not in speaker_ids}
    speaker_ids.update(await _upsert_accounts(conn, Platform.OSRS, unknown))

    rows = []
    for item in items:
        msg = item.message
        credited: int | None = None
        if item.kind.counts:
            credited = (
                speaker_ids[item.speaker.normalized]
                if item.speaker is not None
                else author_ids[msg.author.id]
            )
        rows.append(
            {
                "channel_id": channel_id,
                "external_id": msg.id,
                "author_account_id": author_ids[msg.author.id],
                "credited_account_id": credited,
                "kind": item.kind.value,
                "type": msg.type,
                "sent_at": msg.sent_at,
                "edited_at": msg.edited_at,
                # PostgreSQL text cannot hold NUL; SQLite could, but both must store the same
                "content": msg.content.replace("\x00", "\ufffd"),
                "reply_to": msg.reply_to,
                "attachments": msg.attachments,
                "reactions": msg.reactions,
            }
        )
    cold = archived_message.c
    archived = await archived_keys(
        conn, cold.channel_id, channel_id, cold.external_id, [item.message.id for item in items]
    )
    fresh = [r for r in rows if r["external_id"] not in archived]
    inserted = (
        (await conn.execute(_message_insert(conn.dialect.name), fresh)).all() if fresh else []
    )
    counts.inserted = len(inserted)
    new_ids = {row.external_id for row in inserted}

    # Edits: a message seen again with a newer edit time gets the new text; it still counts once.
    edits = [
        {"ch": channel_id, "xid": r["external_id"], "e": r["edited_at"], "c": r["content"]}
        for r in rows
        if r["edited_at"] is not None and r["external_id"] not in new_ids
    ]
    if edits:
        # an archived message takes its edit where it is (archive_cold keeps both copies
        # equal while one is in both places)
        for table in (message, archived_message) if has_archive(conn) else (message,):
            result = await conn.execute(
                update(table)
                .where(
                    and_(
                        table.c.channel_id == bindparam("ch"),
                        table.c.external_id == bindparam("xid"),
                        or_(table.c.edited_at.is_(None), table.c.edited_at < bindparam("e")),
                    )
                )
                .values(edited_at=bindparam("e"), content=bindparam("c")),
                edits,
            )
            counts.edited += max(result.rowcount, 0)

    await _add_to_rollup(conn, channel_id, inserted, counts)


async def archived_keys(
    conn: AsyncConnection, owner: Column[Any], owner_id: int, key: Column[Any], values: list[Any]
) -> set[Any]:
    """Which of ``values`` of an archive twin's ``key`` column (rows of ``owner_id``) are in
    the archive: a re-import or re-harvest must not put them back in hot (the hot table's
    unique key cannot see them there)."""
    if not has_archive(conn) or not values:
        return set()
    found: set[Any] = set()
    for start in range(0, len(values), KEY_CHUNK):
        rows = await conn.execute(
            select(key).where(owner == owner_id, key.in_(values[start : start + KEY_CHUNK]))
        )
        found.update(row[0] for row in rows)
    return found


@cache
def _message_insert(dialect: str) -> Any:
    """Insert new messages, skip known ones, and say which were new (for the rollup)."""
    return (
        insert_for(dialect)(message)
        .on_conflict_do_nothing(index_elements=["channel_id", "external_id"])
        .returning(message.c.external_id, message.c.credited_account_id, message.c.sent_at)
    )


def _speaker_observation(speaker: OsrsSpeaker, seen_at: datetime) -> _Observation:
    return _Observation(speaker.name, None, None, seen_at, False)


async def _add_to_rollup(
    conn: AsyncConnection, channel_id: int, inserted: Iterable[Any], counts: IngestCounts
) -> None:
    per_day: dict[tuple[date, int], list[Any]] = defaultdict(lambda: [0, None])
    for row in inserted:
        if row.credited_account_id is None:
            continue
        cell = per_day[(row.sent_at.date(), row.credited_account_id)]
        cell[0] += 1
        if cell[1] is None or row.sent_at > cell[1]:
            cell[1] = row.sent_at
        counts.counted += 1
    await add_rollup_rows(
        conn,
        [
            {
                "day": day,
                "account_id": account_id,
                "channel_id": channel_id,
                "messages": n,
                "last_sent_at": last,
            }
            for (day, account_id), (n, last) in per_day.items()
        ],
    )


async def add_rollup_rows(conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    """Add message counts to the daily rollup (summing into rows that exist)."""
    if rows:
        await conn.execute(_rollup_upsert(conn.dialect.name), rows)


@cache
def _rollup_upsert(dialect: str) -> Any:
    ins = insert_for(dialect)(message_rollup)
    return ins.on_conflict_do_update(
        index_elements=["day", "account_id", "channel_id"],
        set_={
            "messages": message_rollup.c.messages + ins.excluded.messages,
            "last_sent_at": _newer(ins.excluded.last_sent_at, message_rollup.c.last_sent_at),
        },
    )


async def get_cursor(conn: AsyncConnection, source: str, key: str) -> str | None:
    row = await conn.execute(
        select(harvest_cursor.c.value).where(
            harvest_cursor.c.source == source, harvest_cursor.c.key == key
        )
    )
    return row.scalar_one_or_none()


async def cursor_keys(conn: AsyncConnection, source: str) -> set[str]:
    """Every key that has a cursor for ``source`` (one query, however many there are)."""
    rows = await conn.execute(select(harvest_cursor.c.key).where(harvest_cursor.c.source == source))
    return {row[0] for row in rows}


async def set_cursor(conn: AsyncConnection, source: str, key: str, value: str) -> None:
    await conn.execute(
        _cursor_upsert(conn.dialect.name),
        {"source": source, "key": key, "value": value, "updated_at": utcnow()},
    )


@cache
def _cursor_upsert(dialect: str) -> Any:
    ins = insert_for(dialect)(harvest_cursor)
    return ins.on_conflict_do_update(
        index_elements=["source", "key"],
        set_={"value": ins.excluded.value, "updated_at": ins.excluded.updated_at},
    )


async def file_already_imported(conn: AsyncConnection, sha256: str) -> bool:
    row = await conn.execute(select(imported_file.c.sha256).where(imported_file.c.sha256 == sha256))
    return row.first() is not None


async def record_imported_file(
    conn: AsyncConnection, *, sha256: str, kind: str, path: str, size: int, items: int
) -> None:
    await conn.execute(
        imported_file.insert().values(
            sha256=sha256, kind=kind, path=path, size=size, items=items, imported_at=utcnow()
        )
    )
