"""Typed records: what sources produce and the store ingests.

Sources parse or fetch and yield these; they never touch the database. The store
writes them; it never parses. Timestamps are always timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Platform(StrEnum):
    DISCORD = "discord"
    OSRS = "osrs"


class MessageKind(StrEnum):
    """What a chat message is, for counting. Only ``CHAT`` and ``BRIDGE_CHAT`` count."""

    CHAT = "chat"  # a person wrote it (Discord Default/Reply by a human)
    SYSTEM = "system"  # joins, pins, thread created, boosts, calls, unknown types...
    BOT = "bot"  # a bot or webhook wrote it (not the bridge)
    APP = "app"  # slash / context-menu command response (types 20 and 23)
    BRIDGE_CHAT = "bridge_chat"  # relayed in-game clan chat line, credited to the speaker
    BRIDGE_SYSTEM = "bridge_system"  # relayed clan membership sentence
    BRIDGE_BROADCAST = "bridge_broadcast"  # relayed achievement broadcast
    BRIDGE_UNKNOWN = "bridge_unknown"  # relayed line of no known shape

    @property
    def counts(self) -> bool:
        return self in (MessageKind.CHAT, MessageKind.BRIDGE_CHAT)


@dataclass(frozen=True, slots=True)
class DiscordUser:
    """A Discord author as seen on one message (or in the guild member list).

    ``None`` means "this source does not say"; an empty string means "known to be
    absent" (for example a member who removed their nickname).
    """

    id: int
    username: str
    global_name: str | None = None
    nickname: str | None = None
    is_bot: bool = False
    is_webhook: bool = False


@dataclass(frozen=True, slots=True)
class Channel:
    id: int
    name: str
    type: int  # Discord channel type number (0 text, 11 public thread, ...)
    guild_id: int | None = None
    parent_id: int | None = None


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One Discord message, as the API or an export describes it, before classification."""

    id: int
    channel_id: int
    author: DiscordUser
    sent_at: datetime  # UTC
    type: int  # Discord message type number; unknown names map to -1 and count as system
    content: str
    edited_at: datetime | None = None
    reply_to: int | None = None
    attachments: int = 0
    reactions: int = 0
    # slash-command responses: the human who ran the command (types 20/23)
    interaction_user: DiscordUser | None = None


@dataclass(frozen=True, slots=True)
class OsrsSpeaker:
    """The in-game account a relayed clan chat line is credited to."""

    name: str  # as written, unescaped
    normalized: str  # Wise Old Man normalization


@dataclass(frozen=True, slots=True)
class ClassifiedMessage:
    """A message with the counting rules applied: its kind and whom it counts for."""

    message: ChatMessage
    kind: MessageKind
    # the in-game speaker for bridge chat lines (credited instead of the Discord author)
    speaker: OsrsSpeaker | None = None


@dataclass(slots=True)
class MessageBatch:
    """What one ingest transaction writes: messages of one channel, plus the cursor they cover."""

    channel: Channel
    messages: list[ClassifiedMessage] = field(default_factory=list)
    # (source, key, value) advanced in the same transaction, or None
    cursor: tuple[str, str, str] | None = None


# --- Wise Old Man (Old School RuneScape game progress) ---------------------------------


@dataclass(frozen=True, slots=True)
class WomPlayer:
    id: int
    username: str  # WOM's normalized name
    display_name: str
    type: str = "unknown"
    build: str = "main"
    status: str = "active"
    exp: int = -1
    ehp: float = 0.0
    ehb: float = 0.0
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    last_changed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class GroupMembership:
    player: WomPlayer
    role: str | None
    joined_at: datetime  # in-game join date when WOM knows it (clientSyncJoinedAt), else createdAt
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One hiscores reading, keyed by (player, WOM's createdAt) — never by our clock."""

    player_id: int
    taken_at: datetime
    overall_xp: int  # -1 when unranked
    ehp: float
    ehb: float
    boss_kills: int  # sum of kills over bosses with kills > 0
    data: dict[str, Any]  # WOM's snapshot ``data`` object: skills, bosses, activities, computed


@dataclass(frozen=True, slots=True)
class NameChange:
    id: int
    player_id: int
    old_name: str
    new_name: str
    resolved_at: datetime


@dataclass(frozen=True, slots=True)
class GroupEvent:
    """A membership event from WOM's group activity: joined, left or changed_role."""

    player_id: int
    type: str
    role: str | None
    previous_role: str | None
    at: datetime
    player: WomPlayer | None = None
