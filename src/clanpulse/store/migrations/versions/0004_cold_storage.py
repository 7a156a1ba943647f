"""cold storage: archive twins of message and snapshot, and the views readers see

PostgreSQL only: a schema ``archive`` with twins of ``message`` and ``snapshot`` (same
columns, unique keys and indexes; no foreign keys, and ``message.id`` is not a key), and a
schema ``archive_union`` whose views ``message`` and ``snapshot`` are hot UNION ALL archive;
read transactions put ``archive_union`` first on their search_path. SQLite needs nothing
here: its archive is a separate file created by the first archive run, and its views are
TEMP views made on connect (see ``clanpulse/store/archive_schema.py``).

A later migration that changes ``message`` or ``snapshot`` must change the twins the same
way and re-create these views (their column lists are fixed when they are created).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ARCHIVE = "archive"
UNION = "archive_union"
MESSAGE_COLUMNS = (
    "id, channel_id, external_id, author_account_id, credited_account_id, kind, type,"
    " sent_at, edited_at, content, reply_to, attachments, reactions"
)
SNAPSHOT_COLUMNS = "account_id, taken_at, overall_xp, ehp, ehb, boss_kills, data"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # the hot tables' schema, named in the views so that they never resolve to themselves
    hot = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{ARCHIVE}"')
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{UNION}"')

    op.create_table(
        "message",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("channel_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.BigInteger(), nullable=False),
        sa.Column("author_account_id", sa.BigInteger(), nullable=False),
        sa.Column("credited_account_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("type", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=False),
        sa.Column("edited_at", sa.DateTime(), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.BigInteger(), nullable=True),
        sa.Column("attachments", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("reactions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.UniqueConstraint(
            "channel_id", "external_id", name=op.f("uq_message_channel_id_external_id")
        ),
        schema=ARCHIVE,
    )
    op.create_index(
        "ix_message_credited_account_id", "message", ["credited_account_id"], schema=ARCHIVE
    )
    op.create_index(
        "ix_message_sent_at_credited_account_id",
        "message",
        ["sent_at", "credited_account_id"],
        schema=ARCHIVE,
    )
    op.create_table(
        "snapshot",
        sa.Column("account_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("overall_xp", sa.BigInteger(), nullable=False),
        sa.Column("ehp", sa.Float(), nullable=False),
        sa.Column("ehb", sa.Float(), nullable=False),
        sa.Column("boss_kills", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "taken_at", name=op.f("pk_snapshot")),
        schema=ARCHIVE,
    )
    op.create_index(
        "ix_snapshot_account_id_overall_xp_taken_at",
        "snapshot",
        ["account_id", "overall_xp", "taken_at"],
        schema=ARCHIVE,
    )
    for table, columns in (("message", MESSAGE_COLUMNS), ("snapshot", SNAPSHOT_COLUMNS)):
        # Each batch moves in one transaction here, so a row is never in both places.
        op.execute(
            f'CREATE VIEW "{UNION}"."{table}" AS'
            f' SELECT {columns} FROM "{hot}"."{table}"'
            f' UNION ALL SELECT {columns} FROM "{ARCHIVE}"."{table}"'
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # Archived rows would be lost: put them back first.
    hot = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    for table, columns in (("message", MESSAGE_COLUMNS), ("snapshot", SNAPSHOT_COLUMNS)):
        op.execute(f'DROP VIEW IF EXISTS "{UNION}"."{table}"')
        op.execute(
            f'INSERT INTO "{hot}"."{table}" ({columns})'
            f' SELECT {columns} FROM "{ARCHIVE}"."{table}" ON CONFLICT DO NOTHING'
        )
    op.execute(f'DROP SCHEMA IF EXISTS "{UNION}" CASCADE')
    op.execute(f'DROP SCHEMA IF EXISTS "{ARCHIVE}" CASCADE')
