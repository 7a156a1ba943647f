"""Small builders of typed records for tests that exercise the store directly."""

from __future__ import annotations

from datetime import UTC, datetime

from clanpulse.records import (
    Channel,
    ChatMessage,
    ClassifiedMessage,
    DiscordUser,
    MessageBatch,
    MessageKind,
    OsrsSpeaker,
)

DISCORD_EPOCH_MS = 1420070400000
GENERAL = Channel(id=1187817881589645314, name="general", type=0, guild_id=1187817879744151553)
BRIDGE = DiscordUser(id=900000000000000001, username="Clan Chat", is_bot=True, is_webhook=True)


def at(text: str) -> datetime:
    """A UTC instant from '2026-03-29 17:50' or '2026-03-29 17:50:02.118'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def snowflake(moment: datetime, increment: int = 0) -> int:
    return ((int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22) | increment


def user(uid: int, username: str, **kwargs: object) -> DiscordUser:
    return DiscordUser(id=uid, username=username, **kwargs)  # type: ignore[arg-type]


_counter = 0


def chat(
    author: DiscordUser,
    when: str,
    *,
    kind: MessageKind = MessageKind.CHAT,
    speaker: str | None = None,
    content: str = "hello",
    edited: str | None = None,
    msg_id: int | None = None,
    msg_type: int = 0,
    channel: Channel = GENERAL,
) -> ClassifiedMessage:
    global _counter
    _counter += 1
    moment = at(when)
    message = ChatMessage(
        id=msg_id if msg_id is not None else snowflake(moment, _counter % 4096),
        channel_id=channel.id,
        author=author,
        sent_at=moment,
        type=msg_type,
        content=content,
        edited_at=at(edited) if edited else None,
    )
    osrs = None
    if speaker is not None:
        osrs = OsrsSpeaker(name=speaker, normalized=speaker.lower().replace("_", " "))
    return ClassifiedMessage(message=message, kind=kind, speaker=osrs)


def batch(
    *messages: ClassifiedMessage,
    channel: Channel = GENERAL,
    cursor: tuple[str, str, str] | None = None,
) -> MessageBatch:
    return MessageBatch(channel=channel, messages=list(messages), cursor=cursor)
