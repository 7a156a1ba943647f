"""The store's engines and schema: one writer, readers that never wait, migrations that match."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, func, select, text

from clanpulse.store.database import Database, data_version, open_database
from clanpulse.store.ingest import ingest_batch
from clanpulse.store.migrate import current_revision, head_revision, upgrade
from clanpulse.store.schema import message, metadata
from tests.conftest import sqlite_url
from tests.factories import batch, chat, user


def _diff(connection: Connection) -> list[Any]:
    return compare_metadata(MigrationContext.configure(connection), metadata)  # type: ignore[no-any-return]


async def test_migrations_produce_exactly_the_declared_schema(db: Database) -> None:
    async with db.reader.connect() as conn:
        assert await conn.run_sync(_diff) == []
    assert await current_revision(db) == head_revision()


async def test_upgrade_twice_is_a_no_op_and_downgrade_round_trips(db: Database) -> None:
    await upgrade(db)
    async with db.write(changes_data=False) as conn:
        from alembic import command

        from clanpulse.store.migrate import _config

        await conn.run_sync(lambda c: command.downgrade(_config(c), "base"))
    assert await current_revision(db) is None
    await upgrade(db)
    assert await current_revision(db) == head_revision()


async def test_sqlite_writer_runs_wal_normal_sync_foreign_keys(tmp_path: Any) -> None:
    async with open_database(sqlite_url(tmp_path / "x.db")) as db:
        async with db.write() as conn:
            mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
            sync = (await conn.exec_driver_sql("PRAGMA synchronous")).scalar()
            fks = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar()
            busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar()
        assert (mode, sync, fks) == ("wal", 1, 1)
        assert busy and busy >= 5000
        async with db.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA query_only")).scalar() == 1


async def test_readers_never_wait_for_the_writer(tmp_path: Any) -> None:
    async with open_database(sqlite_url(tmp_path / "x.db")) as db:
        async with db.write() as conn:
            await ingest_batch(conn, batch(chat(user(1, "a"), "2026-03-01 10:00")))
        writer_holds = asyncio.Event()
        release = asyncio.Event()

        async def long_write() -> None:
            async with db.write() as conn:
                await ingest_batch(conn, batch(chat(user(1, "a"), "2026-03-01 11:00")))
                writer_holds.set()
                await release.wait()

        task = asyncio.create_task(long_write())
        await writer_holds.wait()
        # the write transaction is open and uncommitted: readers see the last commit, at once
        counts = await asyncio.gather(*(_count(db) for _ in range(8)))
        assert counts == [1] * 8
        release.set()
        await task
        assert await _count(db) == 2


async def _count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(message))).scalar_one())


async def test_a_failed_write_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await ingest_batch(conn, batch(chat(user(1, "a"), "2026-03-01 10:00")))
            raise RuntimeError("crash mid-transaction")
    assert await _count(db) == 0


async def test_database_repr_hides_the_password() -> None:
    db = Database("postgresql+asyncpg://clan:hunter2-secret@127.0.0.1:5432/clan")
    try:
        assert "hunter2-secret" not in repr(db)
        assert "hunter2-secret" not in db.display_url
    finally:
        await db.close()


async def test_sent_at_index_serves_the_window_edge_query(tmp_path: Any) -> None:
    async with open_database(sqlite_url(tmp_path / "x.db")) as db, db.read() as conn:
        plan = (
            await conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT credited_account_id, count(*) FROM message "
                "WHERE credited_account_id IS NOT NULL AND sent_at >= '2026-01-01' "
                "AND sent_at < '2026-01-02' GROUP BY credited_account_id"
            )
        ).all()
        detail = " ".join(str(row[-1]) for row in plan)
        assert "ix_message_sent_at_credited_account_id" in detail, detail
        await conn.execute(text("SELECT 1"))


async def test_data_version_counts_committed_data_writes_only(db: Database) -> None:
    async def version() -> int:
        async with db.read() as conn:
            return await data_version(conn)

    start = await version()
    async with db.write() as conn:
        await ingest_batch(conn, batch(chat(user(1, "a"), "2026-03-01 10:00")))
    assert await version() == start + 1
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await ingest_batch(conn, batch(chat(user(2, "b"), "2026-03-01 11:00")))
            raise RuntimeError("rolled back")
    async with db.write(bookkeeping=True):
        pass
    assert await version() == start + 1  # neither a rollback nor bookkeeping is new data
