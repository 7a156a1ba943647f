"""``clanpulse db copy``: move the whole store from one backend to the other.

The target gets its schema from the normal migrations, then every table is streamed over
in foreign-key order with its primary keys, in batches, inside ONE target transaction:
a copy that fails or is killed half-way leaves the target exactly as empty as it was, so
running it again just works. A target that already holds rows is refused, never merged
into. The source is read in one snapshot, so the copy is consistent even while a harvest
keeps writing to the source.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Table, func, literal, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.progress import Progress
from clanpulse.store.database import Database, open_database
from clanpulse.store.migrate import current_revision
from clanpulse.store.schema import data_version, metadata

# rows per executemany: big enough to amortise round trips, small enough to keep memory flat
COPY_BATCH = 2000

# the data version is the target's own: a fresh database has its row already
_COPIED = [t for t in metadata.sorted_tables if t is not data_version]


class CopyError(Exception):
    """The copy cannot start or did not come out whole; the target was left unchanged."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    rows: int


@dataclass(slots=True)
class CopyReport:
    source: str  # URLs as shown to people: the password hidden
    target: str
    revision: str | None = None
    tables: list[TableCopy] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def copy_database(source: Database, target_url: str, *, progress: Progress) -> CopyReport:
    """Copy every table of ``source`` into the empty database at ``target_url``."""
    report = CopyReport(source=source.display_url, target=display_url(target_url))
    if _same_database(source.url, target_url):
        raise CopyError("the target is the source database itself")
    async with open_database(target_url) as target:
        report.revision = await current_revision(target)
        if await current_revision(source) != report.revision:
            raise CopyError(
                f"the source is at schema revision {await current_revision(source)}, the "
                f"target at {report.revision}: upgrade the source first (clanpulse init)"
            )
        async with _snapshot(source) as src, target.write() as dst:
            await _refuse_non_empty(dst)
            for table in _COPIED:  # parents before children
                report.tables.append(await _copy_table(src, dst, table, progress))
            if dst.dialect.name == "postgresql":
                await _reset_sequences(dst)
            await _verify(dst, report)
    return report


def _same_database(a: str, b: str) -> bool:
    left, right = make_url(a), make_url(b)
    if left.get_backend_name() == right.get_backend_name() == "sqlite":
        return Path(left.database or "").resolve() == Path(right.database or "").resolve()
    return left.set(drivername="x") == right.set(drivername="x")


@asynccontextmanager
async def _snapshot(db: Database) -> AsyncIterator[AsyncConnection]:
    """One read transaction that sees one state of the source from start to end."""
    if db.backend != "postgresql":
        async with db.read() as conn:  # SQLite: a deferred BEGIN is already a snapshot
            yield conn
        return
    async with db.reader.connect() as conn:
        # PostgreSQL's default READ COMMITTED would see each table at a different moment
        snap = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with snap.begin():
            await db.see_archive(snap)  # archived rows are copied too
            yield snap


async def _refuse_non_empty(conn: AsyncConnection) -> None:
    for table in _COPIED:
        if (await conn.execute(select(literal(1)).select_from(table).limit(1))).first():
            raise CopyError(
                f"the target is not empty (table {table.name} has rows): copy into a new, "
                "empty database (an interrupted copy leaves nothing behind, so these rows "
                "were put there some other way)"
            )


async def _count(conn: AsyncConnection, table: Table) -> int:
    return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _copy_table(
    src: AsyncConnection, dst: AsyncConnection, table: Table, progress: Progress
) -> TableCopy:
    total = await _count(src, table)
    progress.start(table.name, total=total)
    copied = 0
    # a server-side cursor: rows arrive batch by batch, never a whole table in memory
    result = await src.stream(select(table).execution_options(yield_per=COPY_BATCH))
    async for batch in result.partitions(COPY_BATCH):
        await dst.execute(table.insert(), [row._asdict() for row in batch])
        copied += len(batch)
        progress.advance(table.name, len(batch))
    progress.finish(table.name, f"{copied} rows")
    if copied != total:  # the snapshot makes this impossible, but cheap to be sure
        raise CopyError(f"{table.name}: read {copied} rows of {total}")
    return TableCopy(table.name, copied)


async def _reset_sequences(conn: AsyncConnection) -> None:
    """Rows came with their ids, which bypasses the id sequences: point each sequence past
    the largest id, or the first row inserted after the copy would collide."""
    quote = conn.dialect.identifier_preparer
    for table in _COPIED:
        column = table.autoincrement_column
        if column is None:
            continue
        sequence = func.pg_get_serial_sequence(quote.format_table(table), column.name)
        next_id = func.coalesce(select(func.max(column)).scalar_subquery(), 0) + 1
        await conn.execute(select(func.setval(sequence, next_id, False)))


async def _verify(dst: AsyncConnection, report: CopyReport) -> None:
    by_name = {table.name: table for table in _COPIED}
    for copied in report.tables:
        found = await _count(dst, by_name[copied.table])
        if found != copied.rows:
            raise CopyError(f"{copied.table}: {found} rows in the target, {copied.rows} copied")
