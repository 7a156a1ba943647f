"""The schema: one MetaData with a naming convention, so every constraint has a stable name.

Changes go through Alembic migrations (``store/migrations``); this module is what the
newest migration produces, and a test checks the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real BIGINT.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC: one meaning on every backend.

    Naive input is refused: a timestamp without a zone is a bug upstream.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware, got {value!r}")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite aggregates (max) return the stored text
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]


member = Table(
    "member",
    metadata,
    Column("id", BigId, primary_key=True),
    # a name chosen for the member; when null the name of their most recently seen account is used
    Column("display_name", String(200)),
    Column("opted_out", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", UTCDateTime(), nullable=False),
)

account = Table(
    "account",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("platform", String(16), nullable=False),
    # Discord user id; for OSRS the Wise Old Man player id once known, else null
    Column("external_id", String(64)),
    # OSRS accounts are keyed by their normalized in-game name until a player id is known
    Column("normalized_name", String(64)),
    Column("username", String(200), nullable=False),
    Column("global_name", String(200)),
    Column("nickname", String(200)),
    # time of the observation the names come from (message time, or harvest time for
    # the guild member list), so an older file imported later cannot overwrite a newer name
    Column("names_seen_at", UTCDateTime(), nullable=False),
    Column("is_bot", Boolean, nullable=False, server_default=text("false")),
    Column("member_id", BigInteger, ForeignKey("member.id", ondelete="SET NULL")),
    # set when a person linked or unlinked this account by hand: automatic linking keeps off
    Column("link_locked", Boolean, nullable=False, server_default=text("false")),
    # clan (Wise Old Man group) membership of an in-game account; left members are kept
    Column("role", String(64)),
    Column("joined_at", UTCDateTime()),
    Column("left_at", UTCDateTime()),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("platform", "external_id"),
    Index("ix_account_member_id", "member_id"),
    Index(
        "uq_account_platform_normalized_name_unlinked",
        "platform",
        "normalized_name",
        unique=True,
        sqlite_where=text("external_id IS NULL"),
        postgresql_where=text("external_id IS NULL"),
    ),
)

channel = Table(
    "channel",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("guild_id", String(64)),
    Column("parent_external_id", String(64)),
    Column("name", String(200), nullable=False),
    Column("type", Integer, nullable=False),
    UniqueConstraint("platform", "external_id"),
)

message = Table(
    "message",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("channel_id", BigInteger, ForeignKey("channel.id", ondelete="CASCADE"), nullable=False),
    Column("external_id", BigInteger, nullable=False),
    # who posted it on the platform (for a bridge line: the relay)
    Column("author_account_id", BigInteger, ForeignKey("account.id"), nullable=False),
    # whom it counts for; null when it counts for nobody (system, bots, unattributed lines)
    Column("credited_account_id", BigInteger, ForeignKey("account.id")),
    Column("kind", String(20), nullable=False),
    Column("type", Integer, nullable=False),
    Column("sent_at", UTCDateTime(), nullable=False),
    Column("edited_at", UTCDateTime()),
    Column("content", Text, nullable=False),
    Column("reply_to", BigInteger),
    Column("attachments", Integer, nullable=False, server_default=text("0")),
    Column("reactions", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("channel_id", "external_id"),
    # window edges of reports: counted messages in a time range, read from the index alone
    Index("ix_message_sent_at_credited_account_id", "sent_at", "credited_account_id"),
    Index("ix_message_credited_account_id", "credited_account_id"),
)

# Counted messages per UTC day, account and channel, written in the same transaction as the
# messages themselves; reports sum whole days here and read raw rows only at window edges.
message_rollup = Table(
    "message_rollup",
    metadata,
    Column("day", Date, nullable=False),
    Column("account_id", BigInteger, ForeignKey("account.id"), nullable=False),
    Column("channel_id", BigInteger, ForeignKey("channel.id", ondelete="CASCADE"), nullable=False),
    Column("messages", Integer, nullable=False),
    Column("last_sent_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("day", "account_id", "channel_id"),
    # the per-account sums of every report, read from the index alone, already grouped
    Index(
        "ix_message_rollup_account_id_day_messages_last_sent_at",
        "account_id",
        "day",
        "messages",
        "last_sent_at",
    ),
)

# Wise Old Man snapshots: one hiscores reading per player and WOM createdAt. The headline
# numbers are columns (reports read only these); the full reading is kept compressed for
# per-skill and per-boss gains.
snapshot = Table(
    "snapshot",
    metadata,
    Column("account_id", BigInteger, ForeignKey("account.id", ondelete="CASCADE"), nullable=False),
    Column("taken_at", UTCDateTime(), nullable=False),
    Column("overall_xp", BigInteger, nullable=False),
    Column("ehp", Float, nullable=False),
    Column("ehb", Float, nullable=False),
    Column("boss_kills", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),  # zlib-compressed JSON of WOM's ``data``
    PrimaryKeyConstraint("account_id", "taken_at"),
    # "last XP change": the first reading at the latest XP total is one seek, not a scan
    Index("ix_snapshot_account_id_overall_xp_taken_at", "account_id", "overall_xp", "taken_at"),
)

# Approved in-game renames, from WOM: old and new names belong to the same player.
name_change = Table(
    "name_change",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # WOM's id
    Column("account_id", BigInteger, ForeignKey("account.id", ondelete="CASCADE"), nullable=False),
    Column("old_name", String(64), nullable=False),
    Column("old_normalized", String(64), nullable=False),
    Column("new_name", String(64), nullable=False),
    Column("new_normalized", String(64), nullable=False),
    Column("resolved_at", UTCDateTime(), nullable=False),
    Index("ix_name_change_old_normalized", "old_normalized"),
    Index("ix_name_change_account_id", "account_id"),
)

# Clan membership events (joined, left, changed_role), from WOM's group activity.
group_event = Table(
    "group_event",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("account_id", BigInteger, ForeignKey("account.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(16), nullable=False),
    Column("role", String(64)),
    Column("previous_role", String(64)),
    Column("at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "type", "at"),
    Index("ix_group_event_at", "at"),
)

harvest_cursor = Table(
    "harvest_cursor",
    metadata,
    Column("source", String(32), nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", String(128), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    PrimaryKeyConstraint("source", "key"),
)

imported_file = Table(
    "imported_file",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("items", Integer, nullable=False),
    Column("imported_at", UTCDateTime(), nullable=False),
)

job_run = Table(
    "job_run",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("job", String(64), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    Column("status", String(16), nullable=False),
    Column("items", Integer, nullable=False, server_default=text("0")),
    Column("error", Text),
    Index("ix_job_run_job_started_at", "job", "started_at"),
)

# The watchdog's incidents: one row per incident, so an alert is raised once and its
# recovery reported once, whichever process (``run`` or a cron'd ``watchdog``) sees it.
alert = Table(
    "alert",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("key", String(128), nullable=False),
    Column("message", Text, nullable=False),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime()),
    # whether the alert / the recovery reached the webhook (a failed post is retried)
    Column("alert_sent", Boolean, nullable=False, server_default=text("false")),
    Column("recovery_sent", Boolean, nullable=False, server_default=text("false")),
    Index("ix_alert_key_closed_at", "key", "closed_at"),
)


# One row, bumped by every write transaction but bookkeeping (Database.write): readers
# that cache what they computed (the dashboard) know from it when the data changed.
data_version = Table(
    "data_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False, server_default=text("0")),
)


def utcnow() -> datetime:
    return datetime.now(UTC)
