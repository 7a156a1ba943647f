"""``clanpulse maintain``: backup, archive of cold rows, and database upkeep, in that order.

The order matters: cold rows only move to the archive once a fresh, verified backup
exists, and the upkeep runs last so it can hand the space the archive freed back to the
file system.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    MetaData,
    Table,
    UniqueConstraint,
    and_,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.ops.archive import ArchiveReport
from clanpulse.ops.backup import BackupResult, backup_database, sqlite_path
from clanpulse.ops.runs import forget_old_history
from clanpulse.settings import Settings
from clanpulse.store.database import SQLITE_WRITER_BUSY_MS, Database
from clanpulse.store.schema import metadata

# A full VACUUM rewrites the whole file and holds the write lock meanwhile: only worth it
# when at least this share of the file is free pages (after an archive run, typically).
VACUUM_FREE_RATIO = 0.25
# how many duplicated keys of one kind are named in the report
DUPLICATE_EXAMPLES = 3


# job runs and closed alerts are kept this long (the history, not the data)
HISTORY_KEPT = timedelta(days=400)


@dataclass(slots=True)
class StepReport:
    name: str
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    items: int = 0


@dataclass(frozen=True, slots=True)
class UniqueKey:
    """A natural key the schema declares unique (a constraint, a unique index, or a
    primary key that is not a surrogate id); ``where`` narrows a partial unique index."""

    name: str
    table: Table
    columns: tuple[Column[Any], ...]
    where: dict[str, Any] = field(default_factory=dict)  # dialect name -> clause

    @property
    def label(self) -> str:
        return f"{self.table.name} ({', '.join(c.name for c in self.columns)})"


@dataclass(frozen=True, slots=True)
class Duplicates:
    key: UniqueKey
    groups: int  # how many key values occur more than once
    examples: list[tuple[Any, ...]]  # a few of them, each with its count last


@dataclass(slots=True)
class OptimizeResult:
    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    vacuumed: bool = False
    free_ratio: float | None = None  # SQLite: free pages / pages before any VACUUM
    duplicates: list[Duplicates] = field(default_factory=list)


@dataclass(slots=True)
class MaintenanceReport:
    steps: list[StepReport] = field(default_factory=list)
    backup: BackupResult | None = None
    archive: ArchiveReport | None = None
    optimize: OptimizeResult | None = None

    @property
    def items(self) -> int:
        return sum(step.items for step in self.steps)

    @property
    def errors(self) -> list[str]:
        return [f"{step.name}: {error}" for step in self.steps for error in step.errors]


async def maintain(
    db: Database,
    settings: Settings,
    *,
    backup: bool,
    archive: bool,
    optimize: bool,
    now: datetime,
) -> MaintenanceReport:
    """Run the chosen steps; every problem ends up in the report, none is raised."""
    report = MaintenanceReport()
    backup_failed = False
    if backup:
        step = StepReport("backup")
        report.backup = result = await backup_database(db, settings, now)
        if result.skipped:
            step.messages.append(result.skipped)
        step.messages += [f"wrote {path}" for path in result.copies]
        step.messages += [f"removed old backup {path.name}" for path in result.removed]
        step.errors += result.errors
        step.items = len(result.copies)
        backup_failed = bool(result.errors)
        report.steps.append(step)
    if archive:
        step = StepReport("archive")
        if backup_failed:
            # Moving rows out of the main database without a good backup of both ends
            # would leave nothing to go back to if the move went wrong.
            step.messages.append("skipped: the backup failed")
        else:
            await _archive(db, settings, now, report, step)
        forgotten = await forget_old_history(db, now - HISTORY_KEPT)
        if forgotten:
            step.messages.append(
                f"forgot {forgotten} job runs and closed alerts older than {HISTORY_KEPT.days} days"
            )
        report.steps.append(step)
    if optimize:
        step = StepReport("optimize")
        report.optimize = tuned = await optimize_database(db)
        step.messages += tuned.messages
        step.errors += tuned.errors
        report.steps.append(step)
    return report


async def _archive(
    db: Database, settings: Settings, now: datetime, report: MaintenanceReport, step: StepReport
) -> None:
    from clanpulse.ops.archive import archive_cold

    try:
        report.archive = moved = await archive_cold(db, settings, now)
    except Exception as exc:  # one failing step must not stop the others
        step.errors.append(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return
    step.items = moved.messages + moved.snapshots
    step.messages.append(
        f"moved {moved.messages} messages and {moved.snapshots} snapshots older than "
        f"{moved.cutoff:%Y-%m-%d} to the archive"
    )


async def optimize_database(db: Database) -> OptimizeResult:
    result = OptimizeResult()
    if db.backend == "sqlite":
        async with _writes_paused(db):
            await asyncio.to_thread(_optimize_sqlite, sqlite_path(db.url), result)
    else:
        await _optimize_postgres(db, result)
    async with db.read() as conn:
        result.duplicates = await find_duplicates(conn)
    for found in result.duplicates:
        examples = ", ".join(
            f"{values[:-1]} ×{values[-1]}" for values in found.examples[:DUPLICATE_EXAMPLES]
        )
        result.errors.append(
            f"duplicate keys in {found.key.label}: {found.groups} values, e.g. {examples}"
        )
    if not result.duplicates:
        result.messages.append(f"no duplicate keys ({len(unique_keys())} unique keys checked)")
    return result


@asynccontextmanager
async def _writes_paused(db: Database) -> AsyncIterator[None]:
    # Checkpoint and VACUUM cannot run inside a transaction, so db.write() (which begins
    # one) will not do; taking its lock alone keeps this process's writers waiting their
    # turn instead of failing on a busy database.
    async with db.exclusive():
        yield


def _optimize_sqlite(path: Path, result: OptimizeResult) -> None:
    conn = sqlite3.connect(path, isolation_level=None)  # autocommit: no transaction around
    try:
        conn.execute(f"PRAGMA busy_timeout = {SQLITE_WRITER_BUSY_MS}")
        conn.execute("PRAGMA optimize")
        result.messages.append("PRAGMA optimize: query planner statistics refreshed")
        _checkpoint(conn, result)
        checks = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if checks == ["ok"]:
            result.messages.append("integrity check: ok")
        else:
            result.errors += [f"integrity check: {problem}" for problem in checks]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        result.free_ratio = free / pages if pages else 0.0
        share = f"{free} of {pages} pages free ({result.free_ratio:.0%})"
        if result.free_ratio > VACUUM_FREE_RATIO:
            conn.execute("VACUUM")
            result.vacuumed = True
            after = conn.execute("PRAGMA page_count").fetchone()[0]
            result.messages.append(f"VACUUM: {share}; {pages} pages -> {after}")
            _checkpoint(conn, result)  # VACUUM wrote every page to the WAL: empty it again
        else:
            result.messages.append(f"no VACUUM needed: {share}, threshold {VACUUM_FREE_RATIO:.0%}")
    except sqlite3.Error as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _checkpoint(conn: sqlite3.Connection, result: OptimizeResult) -> None:
    busy, wal_pages, _moved = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        # a reader in another process still needs the WAL; the next run will finish the job
        result.messages.append("WAL checkpoint incomplete: the database was in use")
    else:
        result.messages.append(f"WAL checkpoint: {max(wal_pages, 0)} pages written back")


async def _optimize_postgres(db: Database, result: OptimizeResult) -> None:
    # VACUUM refuses to run in a transaction block: this connection runs in autocommit.
    async with db.writer.connect() as conn:
        auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await auto.exec_driver_sql("VACUUM (ANALYZE)")
    result.messages.append("VACUUM (ANALYZE): dead rows reclaimed, planner statistics refreshed")


def unique_keys(schema: MetaData = metadata) -> list[UniqueKey]:
    """Every natural unique key the schema declares, so the check follows the schema."""
    keys = []
    for table in schema.sorted_tables:
        # a surrogate id (autoincrement) is unique by construction: not worth a scan
        if table.autoincrement_column is None:
            pk = table.primary_key
            keys.append(UniqueKey(str(pk.name), table, tuple(pk.columns)))
        for constraint in table.constraints:
            if isinstance(constraint, UniqueConstraint):
                keys.append(UniqueKey(str(constraint.name), table, tuple(constraint.columns)))
        for index in table.indexes:
            if index.unique:
                where = {
                    dialect: index.dialect_options[dialect]["where"]
                    for dialect in ("sqlite", "postgresql")
                    if index.dialect_options[dialect].get("where") is not None
                }
                keys.append(UniqueKey(str(index.name), table, tuple(index.columns), where))
    return keys


async def find_duplicates(
    conn: AsyncConnection, keys: list[UniqueKey] | None = None
) -> list[Duplicates]:
    """Key values stored more than once (there should never be any)."""
    found = []
    for key in unique_keys() if keys is None else keys:
        # SQL unique keys treat NULLs as distinct: rows with a NULL key part never collide
        conditions: list[ColumnElement[bool]] = [c.is_not(None) for c in key.columns]
        if conn.dialect.name in key.where:
            conditions.append(key.where[conn.dialect.name])
        count = func.count().label("n")
        repeated = (
            select(*key.columns, count)
            .where(and_(*conditions))
            .group_by(*key.columns)
            .having(func.count() > 1)
        )
        groups = (
            await conn.execute(select(func.count()).select_from(repeated.subquery()))
        ).scalar_one()
        if groups:
            rows = await conn.execute(repeated.limit(DUPLICATE_EXAMPLES))
            found.append(Duplicates(key, groups, [tuple(row) for row in rows]))
    return found
