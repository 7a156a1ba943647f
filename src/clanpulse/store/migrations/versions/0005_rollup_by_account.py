"""message rollup: a covering index by account

Every report sums the daily rollup per account; with ``(account_id, day, messages,
last_sent_at)`` the sums are read from the index alone, already in account order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message_rollup", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_rollup_account_id_day_messages_last_sent_at",
            ["account_id", "day", "messages", "last_sent_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("message_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_message_rollup_account_id_day_messages_last_sent_at")
