"""Engines: one writer and a pool of readers.

SQLite (the embedded default) runs in WAL mode with exactly one writer connection that
opens every transaction with ``BEGIN IMMEDIATE``: it takes the write lock up front, so a
transaction never fails half-way with "database is locked", and readers, each in their
own snapshot, never wait for it. PostgreSQL gets one pool; writes are still funnelled
through one lock per process so both backends behave the same.

Cold storage (``store/archive_schema.py``): :meth:`Database.read` sees raw messages and
snapshots of the hot tables and the archive as one table; :meth:`Database.write` sees the
hot tables. SQLite attaches the archive file to every connection once it exists, and its
reader connections carry the union views; PostgreSQL keeps the archive in a schema of the
same database, and a read transaction puts the union views first on its search_path.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from clanpulse.store.archive_schema import (
    ARCHIVE_SCHEMA,
    ATTACHED_KEY,
    HOT_TABLES,
    UNION_SCHEMA,
    sqlite_union_view,
)

SQLITE_READERS = 4
# The writer waits this long for another process's write lock before giving up.
SQLITE_WRITER_BUSY_MS = 30_000
SQLITE_READER_BUSY_MS = 5_000
# PostgreSQL: every write transaction holds this advisory lock shared, an archive batch holds
# it exclusively, so no write (of any process) interleaves with a batch being moved.
PG_ARCHIVE_LOCK = 727_275


def sqlite_archive_path(url: str) -> Path | None:
    """The archive file of a SQLite database (``<stem>-archive.db`` beside it); None for
    PostgreSQL and for in-memory databases, which have none."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    main = Path(database)
    return main.with_name(f"{main.stem}-archive.db")


WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _sqlite_engine(url: str, *, writer: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        poolclass=AsyncAdaptedQueuePool,
        pool_size=1 if writer else SQLITE_READERS,
        max_overflow=0,
    )
    busy_ms = SQLITE_WRITER_BUSY_MS if writer else SQLITE_READER_BUSY_MS
    archive = sqlite_archive_path(url)

    @event.listens_for(engine.sync_engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver; we emit BEGIN ourselves below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if writer:
                # WAL is a property of the file: set it once, when it is not set yet.
                cursor.execute("PRAGMA journal_mode")
                if str(cursor.fetchone()[0]).lower() != "wal":
                    cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                # readers that never let go keep the WAL from restarting; once they do,
                # a checkpoint shrinks it back to this (else it keeps its largest size)
                cursor.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            # ATTACH and the TEMP VIEWs must come before query_only, which forbids them.
            _record.info[ATTACHED_KEY] = archive is not None and archive.exists()
            if _record.info[ATTACHED_KEY]:
                cursor.execute(f"ATTACH DATABASE ? AS {ARCHIVE_SCHEMA}", (str(archive),))
                cursor.execute(f"PRAGMA {ARCHIVE_SCHEMA}.busy_timeout = {busy_ms}")
                if writer:
                    cursor.execute(f"PRAGMA {ARCHIVE_SCHEMA}.synchronous = NORMAL")
                else:
                    for table in HOT_TABLES:
                        cursor.execute(sqlite_union_view(table))
            if not writer:
                cursor.execute("PRAGMA query_only = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "checkout")
    def _archive_appeared(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # The archive may have been created (by this process or another) after this
        # connection opened: replace it with one that attaches the archive, or a report
        # would miss the rows moved there. One stat() per checkout.
        if archive is not None and not record.info.get(ATTACHED_KEY) and archive.exists():
            raise exc.DisconnectionError("archive created since this connection opened")

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(connection: Any) -> None:
        # Readers take a deferred BEGIN: a consistent snapshot for a whole report.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")

    return engine


_BUMP_VERSION = text("UPDATE data_version SET version = version + 1 WHERE id = 1")


async def data_version(conn: AsyncConnection) -> int:
    """The counter every data-changing write transaction bumps (see :meth:`Database.write`)."""
    return int(
        (await conn.execute(text("SELECT version FROM data_version WHERE id = 1"))).scalar_one()
    )


class ShutdownRequested(Exception):
    """The process is stopping: no new write transaction starts (the current one commits)."""


class Database:
    """The store's connections. Use :meth:`write` for the one writer, :meth:`read` for reports."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.backend = make_url(url).get_backend_name()
        if self.backend == "sqlite":
            self.writer = _sqlite_engine(url, writer=True)
            self.reader = _sqlite_engine(url, writer=False)
        elif self.backend == "postgresql":
            self.writer = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
            self.reader = self.writer
        else:
            raise ValueError(f"unsupported database backend {self.backend!r}")
        self._write_lock = asyncio.Lock()
        self._stopping = False

    def __repr__(self) -> str:
        # The URL may hold a password.
        return f"Database({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def stop_writes(self) -> None:
        """Let the transaction in progress commit, and refuse to start another.

        This is how a stopping process finishes "the current batch": every harvest and
        import writes batch by batch, each batch with its cursor in one transaction, so
        the work simply ends at the next batch boundary and resumes there next time.
        """
        self._stopping = True

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the writer's turn without a transaction: no write of this process is in
        flight or can start while the block runs (for statements that cannot run inside a
        transaction, and for cancelling work only between transactions)."""
        async with self._write_lock:
            yield

    @asynccontextmanager
    async def write(
        self, *, bookkeeping: bool = False, archiving: bool = False, changes_data: bool = True
    ) -> AsyncIterator[AsyncConnection]:
        """One write transaction: commits when the block ends, rolls back on any error.

        ``bookkeeping`` writes (recording how a job ended) are still allowed once
        :meth:`stop_writes` was called. ``archiving`` is a batch of the archive move: on
        PostgreSQL it waits until no other write transaction (of any process) is open, and
        holds them off until it commits (SQLite's one writer lock does that already).
        Unless it is bookkeeping or ``changes_data`` is false, the transaction bumps the
        data version last (:func:`data_version`), so caches of what was read know.
        """
        if self._stopping and not bookkeeping:
            raise ShutdownRequested("stopping: no new write transaction")
        async with self._write_lock:
            if self._stopping and not bookkeeping:
                raise ShutdownRequested("stopping: no new write transaction")
            async with self.writer.begin() as conn:
                if self.backend == "postgresql":
                    # A write that checks the archive then writes hot (ingest's dedup, a
                    # merge of accounts) must not interleave with a batch moving rows.
                    lock = "pg_advisory_xact_lock" if archiving else "pg_advisory_xact_lock_shared"
                    await conn.execute(text(f"SELECT {lock}({PG_ARCHIVE_LOCK})"))
                yield conn
                if changes_data and not bookkeeping:
                    # last, so the row lock (PostgreSQL) is held only until the commit
                    await conn.execute(_BUMP_VERSION)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot, in which ``message`` and ``snapshot`` include archived rows."""
        async with self.reader.connect() as conn, conn.begin():
            await self.see_archive(conn)
            yield conn

    async def see_archive(self, conn: AsyncConnection) -> None:
        """Make ``message`` and ``snapshot`` include archived rows in this read transaction.

        SQLite readers always do (their connections carry the views); on PostgreSQL the
        union views go first on the search path, for this transaction only (is_local): the
        pool's connections also write, and schema introspection must keep seeing the
        tables themselves.
        """
        if self.backend == "postgresql":
            await conn.execute(
                text(
                    f"SELECT set_config('search_path', '{UNION_SCHEMA}, '"
                    " || current_setting('search_path'), true)"
                )
            )

    async def close(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


@asynccontextmanager
async def open_database(url: str, *, migrate: bool = True) -> AsyncIterator[Database]:
    """Open the store, bringing its schema up to date first (every command does this)."""
    from clanpulse.store.migrate import upgrade

    db = Database(url)
    try:
        if migrate:
            await upgrade(db)
        yield db
    finally:
        await db.close()
