"""Cold storage: raw rows older than CLANPULSE_HOT_DAYS move to an archive database.

Messages (by ``sent_at``) and snapshots (by ``taken_at``) older than ``now - hot_days`` move
to their archive twins (``store/archive_schema.py``: a second SQLite file, or the ``archive``
schema on PostgreSQL); the daily message rollup stays hot, and readers see hot and archive
as one table, so every report gives the same numbers after a move as before it.

Rows move in batches; every step is idempotent, so a run killed at any instant and run
again leaves every row in exactly one place:

1. copy the batch into the archive, skipping rows already there (a unique-key conflict
   means the same message or reading);
2. delete from hot the rows of the batch that the archive holds.

PostgreSQL does both in one transaction. SQLite cannot commit two files atomically (in WAL
mode each file commits on its own), so it commits step 1 before step 2: a crash in between
leaves the batch in both places, which readers' views show once and the next run finishes.
Deleting first could lose rows; one transaction could, on a crash between the two files'
commits, do the same.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, create_engine, delete, event, exists, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.settings import Settings
from clanpulse.store.archive_schema import (
    ARCHIVE_SCHEMA,
    archive_metadata,
    archived_message,
    archived_snapshot,
)
from clanpulse.store.database import Database, sqlite_archive_path
from clanpulse.store.ingest import insert_for
from clanpulse.store.schema import message, snapshot

__all__ = ["ARCHIVE_BATCH", "ArchiveReport", "archive_cold", "sqlite_archive_path"]

# rows per batch: big enough to amortize a transaction, small enough to keep each one short
ARCHIVE_BATCH = 5_000


@dataclass(frozen=True)
class ArchiveReport:
    cutoff: datetime
    messages: int
    snapshots: int


async def archive_cold(db: Database, settings: Settings, now: datetime) -> ArchiveReport:
    """Move messages and snapshots older than ``now - hot_days`` into the archive."""
    cutoff = now - timedelta(days=settings.hot_days)
    archive = sqlite_archive_path(db.url)
    if db.backend == "sqlite":
        if archive is None:
            raise ValueError(f"{db.display_url} has no archive file (in-memory database?)")
        if not archive.exists():
            if not await _anything_older(db, cutoff):
                return ArchiveReport(cutoff, 0, 0)  # no file for nothing to move
            await asyncio.to_thread(_create_sqlite_archive, archive)
    return ArchiveReport(
        cutoff,
        messages=await _move_messages(db, cutoff),
        snapshots=await _move_snapshots(db, cutoff),
    )


async def _anything_older(db: Database, cutoff: datetime) -> bool:
    async with db.write() as conn:  # the writer: it sees the hot tables only
        for found in (
            select(message.c.id).where(message.c.sent_at < cutoff).limit(1),
            select(snapshot.c.account_id).where(snapshot.c.taken_at < cutoff).limit(1),
        ):
            if (await conn.execute(found)).first() is not None:
                return True
    return False


def _create_sqlite_archive(path: Path) -> None:
    """Create the archive file with the twin tables, all at once.

    Built under a temporary name and renamed into place: another process attaches the
    archive as soon as the file exists, so it must never see a file without its tables.
    """
    building = path.with_name(path.name + ".building")
    building.unlink(missing_ok=True)
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _attach(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute(f"ATTACH DATABASE ? AS {ARCHIVE_SCHEMA}", (str(building),))

    try:
        with engine.begin() as conn:
            archive_metadata.create_all(conn)
        with engine.connect() as conn:
            # WAL, as the main file: readers never wait for a batch being copied in
            conn.exec_driver_sql(f"PRAGMA {ARCHIVE_SCHEMA}.journal_mode = WAL")
    finally:
        engine.dispose()
    os.replace(building, path)


# One batch's plan, made in its first transaction: (copy, delete, whether more may follow).
Plan = tuple[Any, Any, bool]


async def _move_batches(db: Database, plan: Callable[[AsyncConnection], Awaitable[Plan]]) -> int:
    """Move batch after batch: copy, then delete what the archive holds (module docstring)."""
    moved = 0
    while True:
        async with db.write(archiving=True) as conn:
            copy, remove, more = await plan(conn)
            await conn.execute(copy)
            if db.backend == "postgresql":
                count = await _deleted(conn, remove)
        if db.backend == "sqlite":
            async with db.write(archiving=True) as conn:
                count = await _deleted(conn, remove)
        moved += count
        if not more or count == 0:
            return moved


async def _deleted(conn: AsyncConnection, statement: Any) -> int:
    return max((await conn.execute(statement)).rowcount, 0)


async def _move_messages(db: Database, cutoff: datetime) -> int:
    m = message.c
    cold = archived_message.alias("cold")

    async def plan(conn: AsyncConnection) -> Plan:
        # The oldest messages up to the sent_at of the batch-th one (ties included), read
        # from the sent_at index; moved rows leave hot, so each batch starts at the oldest.
        last = (
            await conn.execute(
                select(m.sent_at)
                .where(m.sent_at < cutoff)
                .order_by(m.sent_at)
                .offset(ARCHIVE_BATCH - 1)
                .limit(1)
            )
        ).scalar_one_or_none()
        batch = and_(m.sent_at < cutoff, true() if last is None else m.sent_at <= last)
        copy = (
            insert_for(db.backend)(archived_message)
            .from_select([c.name for c in message.c], select(message).where(batch))
            .on_conflict_do_nothing()
        )
        remove = delete(message).where(
            batch,
            exists().where(cold.c.channel_id == m.channel_id, cold.c.external_id == m.external_id),
        )
        return copy, remove, last is not None

    return await _move_batches(db, plan)


async def _move_snapshots(db: Database, cutoff: datetime) -> int:
    s = snapshot.c
    cold = archived_snapshot.alias("cold")
    # walk the primary key (account_id, taken_at) from this account on: linear in the table
    position = {"account": -1}

    async def plan(conn: AsyncConnection) -> Plan:
        batch: ColumnElement[bool] = and_(s.account_id >= position["account"], s.taken_at < cutoff)
        last = (
            await conn.execute(
                select(s.account_id, s.taken_at)
                .where(batch)
                .order_by(s.account_id, s.taken_at)
                .offset(ARCHIVE_BATCH - 1)
                .limit(1)
            )
        ).first()
        if last is not None:
            account_id, taken_at = last
            batch = and_(
                batch,
                s.account_id <= account_id,
                (s.account_id < account_id) | (s.taken_at <= taken_at),
            )
            position["account"] = account_id
        copy = (
            insert_for(db.backend)(archived_snapshot)
            .from_select([c.name for c in snapshot.c], select(snapshot).where(batch))
            .on_conflict_do_nothing()
        )
        remove = delete(snapshot).where(
            batch,
            exists().where(cold.c.account_id == s.account_id, cold.c.taken_at == s.taken_at),
        )
        return copy, remove, last is not None

    return await _move_batches(db, plan)
