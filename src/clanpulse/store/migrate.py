"""Alembic migrations, run in-process on the writer connection.

Every command that touches the database calls :func:`upgrade` first, so people never
have to delete their database after an upgrade of clanpulse.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

if TYPE_CHECKING:
    from clanpulse.store.database import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, target: str) -> None:
    if connection.dialect.name == "postgresql":
        # Two processes starting at once must not both run the same migration.
        connection.execute(text("SELECT pg_advisory_xact_lock(727274)"))
    if _current(connection) != target:
        command.upgrade(_config(connection), target)


async def upgrade(db: Database, target: str = "head") -> None:
    """Bring the schema to ``target`` (default: the newest revision)."""
    revision = head_revision() if target == "head" else target
    # Cheap check first: most runs find the schema current and need no write lock.
    async with db.reader.connect() as conn:
        if await conn.run_sync(_current) == revision:
            return
    # not counted as a data change: before 0006 there is no counter to bump
    async with db.write(changes_data=False) as conn:
        await conn.run_sync(_upgrade, revision)


async def current_revision(db: Database) -> str | None:
    async with db.reader.connect() as conn:
        return await conn.run_sync(_current)
