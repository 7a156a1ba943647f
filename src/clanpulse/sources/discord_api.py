"""Discord REST API v10 payloads turned into typed records.

Pure parsing: the client in :mod:`clanpulse.sources.discord_client` fetches and decodes the
JSON, this module validates the parts clanpulse reads and maps them to
:mod:`clanpulse.records`. Fields we do not read are ignored, so new API fields never break a
harvest; a payload missing something we do read raises :class:`ApiPayloadError` naming the
endpoint and the field.

The snowflake and timestamp rules live here and are shared with the export importer, since
both describe the same Discord data.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)
from pydantic_core import ErrorDetails

from clanpulse.records import Channel, ChatMessage, DiscordUser

REPLY_TYPE = 19

# Snowflakes are unsigned 64-bit on Discord's side, but they are stored in signed BIGINT
# columns; real ids stay below 2**63 until the year 2084, so anything larger is garbage.
_SNOWFLAKE_LIMIT = 2**63
_SNOWFLAKE_TEXT = re.compile(r"[0-9]{1,19}")
# More than six fractional digits (exports carry seven) are cut, not rounded: the stdlib
# keeps microseconds only, and truncation never moves an instant across a boundary.
_EXTRA_FRACTION = re.compile(r"(\.[0-9]{6})[0-9]+")


class ApiPayloadError(ValueError):
    """A Discord API response did not have the shape clanpulse reads.

    ``str()`` is one line: ``<endpoint>: <field path>: <problem>``.
    """

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__(f"{endpoint}: {detail}")
        self.endpoint = endpoint
        self.detail = detail


def short_repr(value: object, limit: int = 40) -> str:
    """A value quoted for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_snowflake(value: object) -> int:
    """Read a Discord id: a string of digits (how Discord sends them) or a non-negative int.

    Raises ValueError for anything else, including ids too large for a signed 64-bit column.
    """
    if isinstance(value, str) and _SNOWFLAKE_TEXT.fullmatch(value):
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise ValueError(f"not a snowflake id: {short_repr(value)}")
    if not 0 <= number < _SNOWFLAKE_LIMIT:
        raise ValueError(f"snowflake id out of range: {short_repr(value)}")
    return number


def parse_timestamp(value: object) -> datetime:
    """Read an ISO 8601 timestamp with an explicit offset and return it in UTC.

    Any number of fractional digits is accepted (beyond six they are truncated). A timestamp
    without an offset is rejected rather than guessed: its zone is unknowable.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp string: {short_repr(value)}")
    try:
        parsed = datetime.fromisoformat(_EXTRA_FRACTION.sub(r"\1", value, count=1))
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {short_repr(value)}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp without a UTC offset: {short_repr(value)}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp out of range: {short_repr(value)}") from None


def _checked_timestamp_text(value: str) -> str:
    parse_timestamp(value)
    return value


Snowflake = Annotated[int, BeforeValidator(parse_snowflake)]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
# Kept as sent, because it is echoed back verbatim as the `before` cursor of the next page.
TimestampText = Annotated[str, AfterValidator(_checked_timestamp_text)]


class _Payload(BaseModel):
    # Strict: Discord sends real JSON types, and a "1" where a number belongs means the
    # payload is not what we think it is.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class ApiUser(_Payload):
    id: Snowflake
    username: str
    global_name: str | None = None
    bot: bool = False

    def to_record(self, nickname: str | None = None, *, is_webhook: bool = False) -> DiscordUser:
        return DiscordUser(
            id=self.id,
            username=self.username,
            global_name=self.global_name,
            nickname=nickname,
            is_bot=self.bot,
            is_webhook=is_webhook,
        )


class ApiMessageReference(_Payload):
    message_id: Snowflake | None = None
    channel_id: Snowflake | None = None
    guild_id: Snowflake | None = None


class ApiReaction(_Payload):
    count: int = Field(ge=0)


class ApiInteraction(_Payload):
    """Who ran the command, from ``interaction_metadata`` or the deprecated ``interaction``."""

    user: ApiUser | None = None


class ApiMessage(_Payload):
    id: Snowflake
    channel_id: Snowflake
    author: ApiUser
    type: int
    timestamp: Timestamp
    content: str = ""
    edited_timestamp: Timestamp | None = None
    webhook_id: Snowflake | None = None
    message_reference: ApiMessageReference | None = None
    # Only how many: attachment URLs expire and their metadata is not stored here.
    attachments: list[object] = Field(default_factory=list)
    reactions: list[ApiReaction] = Field(default_factory=list)
    interaction_metadata: ApiInteraction | None = None
    interaction: ApiInteraction | None = None

    def to_record(self) -> ChatMessage:
        reference = self.message_reference
        reply_to = None
        # Pins, crossposts and thread notices carry a reference too; only a reply answers it.
        if reference is not None and self.type == REPLY_TYPE:
            reply_to = reference.message_id
        interaction_user = next(
            (
                command.user
                for command in (self.interaction_metadata, self.interaction)
                if command is not None and command.user is not None
            ),
            None,
        )
        return ChatMessage(
            id=self.id,
            channel_id=self.channel_id,
            # History pages carry no guild member, so the nickname is unknown here.
            author=self.author.to_record(is_webhook=self.webhook_id is not None),
            sent_at=self.timestamp,
            type=self.type,
            content=self.content,
            edited_at=self.edited_timestamp,
            reply_to=reply_to,
            attachments=len(self.attachments),
            reactions=sum(reaction.count for reaction in self.reactions),
            interaction_user=None if interaction_user is None else interaction_user.to_record(),
        )


class ApiThreadMetadata(_Payload):
    archived: bool = False
    archive_timestamp: TimestampText


class ApiChannel(_Payload):
    id: Snowflake
    type: int
    # DMs have no name; an unknown name is stored empty rather than failing the harvest.
    name: str | None = None
    guild_id: Snowflake | None = None
    parent_id: Snowflake | None = None
    thread_metadata: ApiThreadMetadata | None = None

    def to_record(self) -> Channel:
        return Channel(
            id=self.id,
            name=self.name or "",
            type=self.type,
            guild_id=self.guild_id,
            parent_id=self.parent_id,
        )


class ApiThread(ApiChannel):
    """A channel from a thread listing, where the archive metadata is always present."""

    thread_metadata: ApiThreadMetadata


class ApiThreadList(_Payload):
    threads: list[ApiThread]
    # The active-threads listing is not paginated and has no such field.
    has_more: bool = False


class ApiMember(_Payload):
    user: ApiUser
    nick: str | None = None


_Parsed = TypeVar("_Parsed")

_MESSAGES = TypeAdapter(list[ApiMessage])
_CHANNEL = TypeAdapter(ApiChannel)
_CHANNELS = TypeAdapter(list[ApiChannel])
_THREAD_LIST = TypeAdapter(ApiThreadList)
_MEMBERS = TypeAdapter(list[ApiMember])


def _field_path(location: tuple[int | str, ...]) -> str:
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    return path.removeprefix(".") or "(root)"


def _describe(error: ErrorDetails) -> str:
    problem = error["msg"].removeprefix("Value error, ")
    return f"{_field_path(error['loc'])}: {problem}"


def _validate(adapter: TypeAdapter[_Parsed], payload: object, endpoint: str) -> _Parsed:
    try:
        return adapter.validate_python(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        detail = _describe(errors[0]) if errors else str(exc).splitlines()[0]
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more problems)"
        raise ApiPayloadError(endpoint, detail) from None


def parse_messages(payload: object, endpoint: str) -> list[ChatMessage]:
    """A page of ``GET /channels/{id}/messages``, in the order sent (newest first)."""
    return [message.to_record() for message in _validate(_MESSAGES, payload, endpoint)]


def parse_channel(payload: object, endpoint: str) -> Channel:
    """One channel object (``GET /channels/{id}``)."""
    return _validate(_CHANNEL, payload, endpoint).to_record()


def parse_channels(payload: object, endpoint: str) -> list[Channel]:
    """A channel list (``GET /guilds/{id}/channels``), every type included."""
    return [channel.to_record() for channel in _validate(_CHANNELS, payload, endpoint)]


def parse_thread_list(payload: object, endpoint: str) -> tuple[list[Channel], bool, list[str]]:
    """A thread listing (active or archived): the threads, ``has_more``, and their archive times.

    The archive timestamps come back as sent and in the listing's order, because the next
    page of archived threads is asked for with ``before=<archive time of the last thread>``.
    """
    listing = _validate(_THREAD_LIST, payload, endpoint)
    threads = [thread.to_record() for thread in listing.threads]
    stamps = [thread.thread_metadata.archive_timestamp for thread in listing.threads]
    return threads, listing.has_more, stamps


def parse_members(payload: object, endpoint: str) -> list[DiscordUser]:
    """A guild member list: each user with their server nickname (``""`` when they have none)."""
    members = _validate(_MEMBERS, payload, endpoint)
    return [member.user.to_record(nickname=member.nick or "") for member in members]
