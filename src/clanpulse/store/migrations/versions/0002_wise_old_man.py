"""wise old man: snapshots, renames, clan membership

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "group_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=True),
        sa.Column("previous_role", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_group_event_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_group_event")),
        sa.UniqueConstraint(
            "account_id", "type", "at", name=op.f("uq_group_event_account_id_type_at")
        ),
    )
    with op.batch_alter_table("group_event", schema=None) as batch_op:
        batch_op.create_index("ix_group_event_at", ["at"], unique=False)

    op.create_table(
        "name_change",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("old_name", sa.String(length=64), nullable=False),
        sa.Column("old_normalized", sa.String(length=64), nullable=False),
        sa.Column("new_name", sa.String(length=64), nullable=False),
        sa.Column("new_normalized", sa.String(length=64), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_name_change_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_name_change")),
    )
    with op.batch_alter_table("name_change", schema=None) as batch_op:
        batch_op.create_index("ix_name_change_account_id", ["account_id"], unique=False)
        batch_op.create_index("ix_name_change_old_normalized", ["old_normalized"], unique=False)

    op.create_table(
        "snapshot",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("overall_xp", sa.BigInteger(), nullable=False),
        sa.Column("ehp", sa.Float(), nullable=False),
        sa.Column("ehb", sa.Float(), nullable=False),
        sa.Column("boss_kills", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["account.id"],
            name=op.f("fk_snapshot_account_id_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "taken_at", name=op.f("pk_snapshot")),
    )
    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.create_index(
            "ix_snapshot_account_id_overall_xp_taken_at",
            ["account_id", "overall_xp", "taken_at"],
            unique=False,
        )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "link_locked", sa.Boolean(), server_default=sa.text("(false)"), nullable=False
            )
        )
        batch_op.add_column(sa.Column("role", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("joined_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("left_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_column("left_at")
        batch_op.drop_column("role")
        batch_op.drop_column("joined_at")


def downgrade() -> None:
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("joined_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("role", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("left_at", sa.DateTime(), nullable=True))

    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_column("left_at")
        batch_op.drop_column("joined_at")
        batch_op.drop_column("role")
        batch_op.drop_column("link_locked")

    with op.batch_alter_table("snapshot", schema=None) as batch_op:
        batch_op.drop_index("ix_snapshot_account_id_overall_xp_taken_at")

    op.drop_table("snapshot")
    with op.batch_alter_table("name_change", schema=None) as batch_op:
        batch_op.drop_index("ix_name_change_old_normalized")
        batch_op.drop_index("ix_name_change_account_id")

    op.drop_table("name_change")
    with op.batch_alter_table("group_event", schema=None) as batch_op:
        batch_op.drop_index("ix_group_event_at")

    op.drop_table("group_event")
