"""Cold storage: where archived raw rows live, and how readers see hot and cold as one.

Raw ``message`` and ``snapshot`` rows older than ``CLANPULSE_HOT_DAYS`` move (``clanpulse.
ops.archive``) to twin tables of the same name in a schema called ``archive``:

- SQLite: a second file beside the main one (:func:`clanpulse.store.database.
  sqlite_archive_path`), ATTACHed as ``archive`` by every connection once it exists.
- PostgreSQL: a schema ``archive`` in the same database (migration 0004).

**Readers see one table.** Every read transaction (``Database.read``) resolves the
unqualified names ``message`` and ``snapshot`` to a view that is hot UNION ALL archive, so
every report, and any report written later, counts archived rows without knowing they
moved. SQLite: TEMP VIEWs made when a reader connection opens (a temp name wins over
main's). PostgreSQL: views in a schema ``archive_union`` that every read transaction puts
first on its ``search_path``. The writer (``Database.write``) sees the hot tables only:
ingest inserts and updates them by their plain names, and the few writes that must reach
archived rows (ingest dedup and edits, merging accounts) name the archive twins below.

**Why SQLite's view hides rows that are in both places.** SQLite commits the two files of a
transaction one after the other (WAL makes multi-file commits non-atomic), so a batch is
moved in two transactions: copy into the archive, then delete from hot. Between the two, and
after a crash between the two until the next run, a row is in both places; the view's
archive arm skips rows still in hot, so a report counts each row once at every instant. (A
reader takes its main-file snapshot no later than its archive snapshot, as every statement
that reads the archive reads main first, so it can never miss a row either.) PostgreSQL
moves each batch in one transaction: its views need no such filter.

**Queries through the views.** SQLite flattens a correlated ``... ORDER BY taken_at LIMIT
1`` over the view into a merge of two index seeks only when the selected column is the
ordering one; any other column, or an aggregate, over a correlated view runs as a scan of
both tables per outer row. So a lookup of "the reading at or before a moment" selects
``taken_at`` first and then the values at that exact key (see ``analytics/gains.py``).
Uncorrelated filters (time ranges, ``IN`` lists) are pushed into both arms and stay index
ranges.

**Keeping the twins in step with the schema.** The twins are built from the hot tables'
definitions in ``schema.py``: same columns, unique constraints and indexes, minus foreign
keys (an SQLite file cannot reference another) and minus ``message.id`` as a key (SQLite
reuses the rowid of deleted rows, so an archived id can reappear in hot). A migration
that changes ``message`` or ``snapshot`` must change the twins the same way: on PostgreSQL
``archive.<table>`` plus re-creating the ``archive_union`` views; on SQLite
``archive.<table>`` when the archive is attached to the migrating writer
(``has_archive``), as the views there are rebuilt from ``schema.py`` on every connect.
``tests/test_archive.py`` fails when the twins' columns drift from the hot tables'.
"""

from __future__ import annotations

from sqlalchemy import Column, DefaultClause, Index, MetaData, Table, UniqueConstraint
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.store.schema import message, metadata, snapshot

ARCHIVE_SCHEMA = "archive"
# PostgreSQL only: where the hot + archive views live (first on readers' search_path)
UNION_SCHEMA = "archive_union"
# set in a SQLite connection's info when the archive file is attached to it
ATTACHED_KEY = "clanpulse_archive_attached"

archive_metadata = MetaData(naming_convention=metadata.naming_convention, schema=ARCHIVE_SCHEMA)


def _twin(table: Table) -> Table:
    """The archive's copy of a hot table (see the module docstring for what differs)."""
    surrogate = table.autoincrement_column
    columns = [
        Column(
            col.name,
            col.type,
            nullable=col.nullable,
            primary_key=col.primary_key and col is not surrogate,
            autoincrement=False,
            server_default=(
                DefaultClause(col.server_default.arg)  # type: ignore[attr-defined]
                if col.server_default is not None
                else None
            ),
        )
        for col in table.columns
    ]
    twin = Table(table.name, archive_metadata, *columns)
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            twin.append_constraint(
                UniqueConstraint(
                    *[twin.c[c.name] for c in constraint.columns], name=constraint.name
                )
            )
    for index in table.indexes:
        Index(index.name, *[twin.c[c.name] for c in index.columns], unique=index.unique)
    return twin


# the hot tables whose old rows move, and their twins
HOT_TABLES = (message, snapshot)
archived_message = _twin(message)
archived_snapshot = _twin(snapshot)
ARCHIVED = {message.name: archived_message, snapshot.name: archived_snapshot}


def has_archive(conn: AsyncConnection) -> bool:
    """Whether this connection can reach the archive tables.

    PostgreSQL: always (migration 0004 made them). SQLite: when the archive file existed as
    the connection opened; a connection opened earlier is replaced at its next checkout.
    """
    return conn.dialect.name == "postgresql" or bool(conn.info.get(ATTACHED_KEY))


def sqlite_union_view(table: Table) -> str:
    """The TEMP VIEW that shows a SQLite reader hot and archived rows of ``table`` as one.

    Columns are listed from ``schema.py``: a twin missing a column fails here, loudly, on
    connect, rather than shifting values between columns.
    """
    cols = ", ".join(f'"{c.name}"' for c in table.columns)
    key = _natural_key(table)
    same_row = " AND ".join(f'hot."{c}" = cold."{c}"' for c in key)
    return (
        f'CREATE TEMP VIEW "{table.name}" AS '
        f'SELECT {cols} FROM main."{table.name}" '
        f"UNION ALL "
        f'SELECT {cols} FROM {ARCHIVE_SCHEMA}."{table.name}" AS cold '
        f'WHERE NOT EXISTS (SELECT 1 FROM main."{table.name}" AS hot WHERE {same_row})'
    )


def _natural_key(table: Table) -> list[str]:
    """The columns that say two rows are the same row (what ingest deduplicates on)."""
    twin = ARCHIVED[table.name]
    if twin.primary_key.columns:
        return [c.name for c in twin.primary_key.columns]
    unique = next(c for c in twin.constraints if isinstance(c, UniqueConstraint))
    return [c.name for c in unique.columns]
