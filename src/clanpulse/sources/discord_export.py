"""DiscordChatExporter JSON files turned into typed records, streamed.

An export holds one channel (or thread) and its messages. Files can be hundreds of MB, so
nothing here loads a whole file: the JSON is fed in fixed-size chunks to an incremental
parser and only one message object at a time is ever built. Memory stays flat whatever the
file size.

Any problem with a file, from a missing path to a truncated message, raises
:class:`ExportError`, whose one-line message names the file, where in it the problem is, and
what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import ijson  # type: ignore[import-untyped]

from clanpulse.records import Channel, ChatMessage, DiscordUser
from clanpulse.sources.discord_api import parse_snowflake, parse_timestamp, short_repr

_CHUNK_SIZE = 64 * 1024
_UTF8_BOM = b"\xef\xbb\xbf"

# The exporter writes channel kinds by name; these are the API's channel type numbers.
CHANNEL_TYPES: dict[str, int] = {
    "GuildTextChat": 0,
    "DirectTextChat": 1,
    "GuildVoiceChat": 2,
    "DirectGroupTextChat": 3,
    "GuildCategory": 4,
    "GuildNews": 5,
    "GuildNewsThread": 10,
    "GuildPublicThread": 11,
    "GuildPrivateThread": 12,
    "GuildStageVoice": 13,
    "GuildDirectory": 14,
    "GuildForum": 15,
}

# Message kinds the exporter names; kinds it has no name for are written as the number.
MESSAGE_TYPES: dict[str, int] = {
    "Default": 0,
    "RecipientAdd": 1,
    "RecipientRemove": 2,
    "Call": 3,
    "ChannelNameChange": 4,
    "ChannelIconChange": 5,
    "ChannelPinnedMessage": 6,
    "GuildMemberJoin": 7,
    "ThreadCreated": 18,
    "Reply": 19,
}
UNKNOWN_TYPE = -1
_REPLY_TYPE = MESSAGE_TYPES["Reply"]
# Bounded so a garbage number cannot overflow an integer column downstream.
_NUMERIC_TYPE = re.compile(r"[0-9]{1,9}")
# Direct messages are exported under a pseudo-guild with this id.
_DM_GUILD_ID = 0

_PART_SUFFIX = re.compile(r"(?P<base>.*) \[part (?P<number>[0-9]+)\]")
_NOT_AN_EXPORT = "not a DiscordChatExporter export"


# Every character str.splitlines() breaks on, written as its escape so a message stays one line.
_LINE_BREAKS = {ord(char): repr(char)[1:-1] for char in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


class ExportError(ValueError):
    """A DiscordChatExporter file that cannot be imported (or only partly).

    ``position`` says where, for people: ``file``, ``root``, ``channel``,
    ``byte 18234 (line 512)`` or ``messages[17] (id 1487134655437209628)``. For invalid JSON
    ``offset`` is the exact 0-based byte offset of the first byte the parser rejected (for a
    truncated file: the file size), counted from the start of the file. ``str()`` is one
    line: ``<path>: <position>: <reason>``.
    """

    def __init__(
        self, path: Path, position: str, reason: str, *, offset: int | None = None
    ) -> None:
        self.path = path
        self.position = position
        self.reason = reason
        self.offset = offset
        super().__init__(_one_line(f"{path}: {position}: {reason}"))


# --- reading JSON events -------------------------------------------------------------------

_Event = tuple[str, Any]


class _InvalidJson(Exception):
    """Raised inside the event stream; turned into an ExportError by whoever knows the context."""

    def __init__(self, offset: int, line: int, problem: str) -> None:
        super().__init__(problem)
        self.offset = offset
        self.line = line
        self.problem = problem


def _chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """The file's bytes in chunks, with their file offsets, minus a leading UTF-8 BOM."""
    with path.open("rb") as file:
        offset = 0
        chunk = file.read(_CHUNK_SIZE)
        # Editors that re-save an export may add a BOM; the parser would reject it.
        if chunk.startswith(_UTF8_BOM):
            offset = len(_UTF8_BOM)
            chunk = chunk[offset:]
        while chunk:
            yield offset, chunk
            offset += len(chunk)
            chunk = file.read(_CHUNK_SIZE)


def _parser_problem(exc: Exception) -> str:
    # The parser's message is a first line plus an ASCII-art pointer at the bad spot; the
    # pointer is replaced by our byte offset, so only the first line is kept.
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    lines = str(detail).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def _events(path: Path) -> Iterator[_Event]:
    """Basic JSON events of the whole file, fed to the parser a chunk at a time."""
    sink = ijson.sendable_list()
    parser = ijson.basic_parse_coro(sink, use_float=True)
    end = 0
    newlines = 0
    for offset, chunk in _chunks(path):
        problem = None
        try:
            parser.send(chunk)
        except ijson.JSONError as exc:
            problem = _parser_problem(exc)
        except UnicodeDecodeError as exc:
            # the C parser passes some invalid UTF-8 through and decoding then fails
            problem = f"invalid UTF-8 ({exc.reason})"
        # On failure the sink still holds the events parsed before the bad byte: handing them
        # out first lets readers keep every message completed before it (or stop early, with
        # no error at all, when they already have what they need).
        yield from sink
        del sink[:]
        if problem is not None:
            raise _locate_invalid_json(path, offset, problem)
        end = offset + len(chunk)
        newlines += chunk.count(b"\n")
    try:
        parser.close()
    except ijson.JSONError as exc:
        # Only the end of input can fail here (a truncated file): the offset is exact.
        problem = _parser_problem(exc) if end else "the file is empty"
        raise _InvalidJson(end, newlines + 1, problem) from None
    yield from sink


def _locate_invalid_json(path: Path, chunk_offset: int, problem: str) -> _InvalidJson:
    """Find the exact byte the parser rejected, knowing the chunk it was in.

    The streaming pass only knows which chunk failed. The file is parsed again up to that
    chunk, then the chunk is fed one byte at a time: the byte whose feeding fails is the one
    the parser rejected (for a broken token, the first byte that made it invalid). This costs
    a second pass, but only on the error path.
    """
    sink = ijson.sendable_list()
    parser = ijson.basic_parse_coro(sink, use_float=True)
    newlines = 0
    try:
        for offset, chunk in _chunks(path):
            if offset < chunk_offset:
                parser.send(chunk)
                newlines += chunk.count(b"\n")
                del sink[:]
                continue
            for index in range(len(chunk)):
                byte = chunk[index : index + 1]
                try:
                    parser.send(byte)
                except (ijson.JSONError, UnicodeDecodeError):
                    return _InvalidJson(offset + index, newlines + 1, problem)
                newlines += byte == b"\n"
                del sink[:]
            break
    except (ijson.JSONError, UnicodeDecodeError, OSError):
        pass
    # The file changed between the passes; the start of the failing chunk is the best we know.
    return _InvalidJson(chunk_offset, newlines + 1, problem + " (position approximate)")


_CONTAINER_STARTS = frozenset({"start_map", "start_array"})
_CONTAINER_ENDS = frozenset({"end_map", "end_array"})


def _build(event: str, value: Any, events: Iterator[_Event]) -> Any:
    """The JSON value that starts with ``event``, built from the events that follow."""
    if event == "start_map":
        root: Any = {}
    elif event == "start_array":
        root = []
    else:
        return value
    stack: list[Any] = [root]
    key = ""
    for event, value in events:
        if event == "map_key":
            key = value
        elif event in _CONTAINER_ENDS:
            stack.pop()
            if not stack:
                return root
        else:
            if event == "start_map":
                item: Any = {}
            elif event == "start_array":
                item = []
            else:
                item = value
            parent = stack[-1]
            if isinstance(parent, dict):
                parent[key] = item
            else:
                parent.append(item)
            if event in _CONTAINER_STARTS:
                stack.append(item)
    raise AssertionError("the parser ended inside a value")  # it reports truncation first


def _skip(event: str, events: Iterator[_Event]) -> None:
    """Consume the JSON value that starts with ``event`` without building it."""
    if event not in _CONTAINER_STARTS:
        return
    depth = 1
    for event, _ in events:
        if event in _CONTAINER_STARTS:
            depth += 1
        elif event in _CONTAINER_ENDS:
            depth -= 1
            if depth == 0:
                return


_RootItemKind = Literal[
    "not_object",
    "guild",
    "channel",
    "messages_start",
    "message",
    "messages_end",
    "messages_not_array",
    "end",
]


def _walk_root(
    events: Iterator[_Event], *, build_messages: bool
) -> Generator[tuple[_RootItemKind, Any], None, None]:
    """The parts of an export's root object, in file order.

    ``guild`` and ``channel`` come with their built value, each item of ``messages`` as a
    ``message`` (only when asked to build them: a scan for the header skips them), every
    other root key is skipped. After the root ends, the rest of the input is still read so
    that trailing garbage is reported.
    """
    first = next(events, None)
    if first is None or first[0] != "start_map":
        yield "not_object", None if first is None else first[0]
        return
    for event, key in events:
        if event == "end_map":
            for _ in events:
                pass
            yield "end", None
            return
        value_event, value = next(events)
        if key == "messages":
            if value_event != "start_array":
                _skip(value_event, events)
                yield "messages_not_array", value_event
                continue
            yield "messages_start", None
            for item_event, item_value in events:
                if item_event == "end_array":
                    break
                if build_messages:
                    yield "message", _build(item_event, item_value, events)
                else:
                    _skip(item_event, events)
            yield "messages_end", None
        elif key in ("guild", "channel"):
            yield key, _build(value_event, value, events)
        else:
            _skip(value_event, events)


# --- fields --------------------------------------------------------------------------------


class _FieldProblem(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    @property
    def reason(self) -> str:
        return f"'{self.field}': {self.problem}"


def _present(obj: dict[str, Any], key: str, field: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise _FieldProblem(field, "missing required field" if key not in obj else "is null")
    return value


_Value = TypeVar("_Value")


def _converted(value: object, field: str, convert: Callable[[object], _Value]) -> _Value:
    try:
        return convert(value)
    except ValueError as exc:
        raise _FieldProblem(field, str(exc)) from None


def _required(
    obj: dict[str, Any], key: str, field: str, convert: Callable[[object], _Value]
) -> _Value:
    return _converted(_present(obj, key, field), field, convert)


def _optional(
    obj: dict[str, Any], key: str, field: str, convert: Callable[[object], _Value]
) -> _Value | None:
    value = obj.get(key)
    return None if value is None else _converted(value, field, convert)


def _string(obj: dict[str, Any], key: str, field: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _FieldProblem(field, f"expected a string, got {short_repr(value)}")
    return value


def _flag(obj: dict[str, Any], key: str, field: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _FieldProblem(field, f"expected true or false, got {short_repr(value)}")
    return value


def _array(obj: dict[str, Any], key: str, field: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _FieldProblem(field, f"expected an array, got {short_repr(value)}")
    return value


def _object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _FieldProblem(field, f"expected an object, got {short_repr(value)}")
    return value


def _optional_object(obj: dict[str, Any], key: str, field: str) -> dict[str, Any] | None:
    value = obj.get(key)
    return None if value is None else _object(value, field)


def _type_number(obj: dict[str, Any], names: dict[str, int], field: str) -> int:
    """A channel or message kind as the API's type number: named, numeric, or unknown (-1)."""
    value = _present(obj, "type", field)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _FieldProblem(field, f"expected a type name, got {short_repr(value)}")
    if isinstance(value, int):
        return value if 0 <= value < 10**9 else UNKNOWN_TYPE
    if value in names:
        return names[value]
    if _NUMERIC_TYPE.fullmatch(value):
        return int(value)
    # A kind newer than our tables: keep the item, its type is simply unknown.
    return UNKNOWN_TYPE


def _user(raw: Any, field: str) -> DiscordUser:
    user = _object(raw, field)
    return DiscordUser(
        id=_required(user, "id", f"{field}.id", parse_snowflake),
        username=_string(user, "name", f"{field}.name") or "",
        global_name=None,
        nickname=_string(user, "nickname", f"{field}.nickname"),
        is_bot=_flag(user, "isBot", f"{field}.isBot"),
        # The exporter does not say whether a webhook posted (webhooks show as bots).
        is_webhook=False,
    )


def _message(raw: dict[str, Any], channel_id: int) -> ChatMessage:
    message_id = _required(raw, "id", "id", parse_snowflake)
    message_type = _type_number(raw, MESSAGE_TYPES, "type")
    sent_at = _required(raw, "timestamp", "timestamp", parse_timestamp)
    edited_at = _optional(raw, "timestampEdited", "timestampEdited", parse_timestamp)
    author = _user(_present(raw, "author", "author"), "author")

    reply_to = None
    reference = _optional_object(raw, "reference", "reference")
    if reference is not None and message_type == _REPLY_TYPE:
        reply_to = _optional(reference, "messageId", "reference.messageId", parse_snowflake)

    reactions = 0
    for index, reaction in enumerate(_array(raw, "reactions", "reactions")):
        field = f"reactions[{index}].count"
        count = _present(_object(reaction, f"reactions[{index}]"), "count", field)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise _FieldProblem(field, f"expected a count, got {short_repr(count)}")
        reactions += count

    interaction = _optional_object(raw, "interaction", "interaction")
    interaction_user = None
    if interaction is not None and interaction.get("user") is not None:
        interaction_user = _user(interaction["user"], "interaction.user")

    return ChatMessage(
        id=message_id,
        channel_id=channel_id,
        author=author,
        sent_at=sent_at,
        type=message_type,
        content=_string(raw, "content", "content") or "",
        edited_at=edited_at,
        reply_to=reply_to,
        attachments=len(_array(raw, "attachments", "attachments")),
        reactions=reactions,
        interaction_user=interaction_user,
    )


def _channel(raw: Any, guild_id: int | None) -> Channel:
    channel = _object(raw, "channel")
    return Channel(
        id=_required(channel, "id", "id", parse_snowflake),
        name=_string(channel, "name", "name") or "",
        type=_type_number(channel, CHANNEL_TYPES, "type"),
        guild_id=guild_id,
        # For threads the exporter's "category" is the parent channel; for other channels it
        # is the category, which is also what the API calls parent_id.
        parent_id=_optional(channel, "categoryId", "categoryId", parse_snowflake),
    )


def _guild_id(raw: Any) -> int | None:
    guild = _object(raw, "guild")
    guild_id = _optional(guild, "id", "id", parse_snowflake)
    return None if guild_id == _DM_GUILD_ID else guild_id


# --- the export ----------------------------------------------------------------------------


def _describe_message(index: int, raw: object) -> str:
    position = f"messages[{index}]"
    if isinstance(raw, dict):
        try:
            return f"{position} (id {parse_snowflake(raw.get('id'))})"
        except ValueError:
            pass
    return position


@dataclass(frozen=True, slots=True)
class DiscordExport:
    """One export file: its channel (read on opening) and its messages (streamed on demand)."""

    path: Path
    channel: Channel

    def batches(self, size: int = 1000) -> Iterator[list[ChatMessage]]:
        """The messages in file order, ``size`` at a time, read in one streaming pass.

        Batches are handed out as soon as they are full, so an :class:`ExportError` for a
        broken message or invalid JSON further on arrives after the batches before it; the
        error says which message was the last complete one. Callers that want a file
        all-or-nothing must hold their writes until the iteration ends.
        """
        if size < 1:
            raise ValueError("batch size must be at least 1")
        return self._stream(size)

    def _stream(self, size: int) -> Iterator[list[ChatMessage]]:
        batch: list[ChatMessage] = []
        count = 0
        last_complete = "no complete message before it"
        seen_messages = False
        walker = _walk_root(_events(self.path), build_messages=True)
        try:
            for kind, value in walker:
                if kind == "not_object":
                    raise self._error("root", _not_an_object(value))
                if kind == "messages_not_array":
                    raise self._error("messages", f"{_NOT_AN_EXPORT} ('messages' is not an array)")
                if kind == "messages_start":
                    seen_messages = True
                elif kind == "message":
                    batch.append(self._message(count, value))
                    last_complete = f"last complete message: {_describe_message(count, value)}"
                    count += 1
                    if len(batch) >= size:
                        yield batch
                        batch = []
                elif kind == "messages_end" and batch:
                    yield batch
                    batch = []
                elif kind == "end" and not seen_messages:
                    raise self._error("root", f"{_NOT_AN_EXPORT} (no 'messages' array)")
        except _InvalidJson as exc:
            raise _invalid_json_error(self.path, exc, last_complete) from None
        except OSError as exc:
            raise self._error("file", exc.strerror or str(exc)) from None
        finally:
            # Closes the file now, not whenever an abandoned generator is collected.
            walker.close()

    def _message(self, index: int, raw: Any) -> ChatMessage:
        if not isinstance(raw, dict):
            raise self._error(f"messages[{index}]", f"expected an object, got {short_repr(raw)}")
        try:
            return _message(raw, self.channel.id)
        except _FieldProblem as problem:
            raise self._error(_describe_message(index, raw), problem.reason) from None

    def _error(self, position: str, reason: str) -> ExportError:
        return ExportError(self.path, position, reason)


def _not_an_object(first_event: str | None) -> str:
    what = "an array" if first_event == "start_array" else "not an object"
    return f"{_NOT_AN_EXPORT} (root is {what})"


def _invalid_json_error(path: Path, exc: _InvalidJson, context: str) -> ExportError:
    return ExportError(
        path,
        f"byte {exc.offset} (line {exc.line})",
        f"invalid JSON: {exc.problem}; {context}",
        offset=exc.offset,
    )


def open_export(path: Path) -> DiscordExport:
    """Open an export and read its channel, without reading its messages.

    The root's ``guild`` and ``channel`` normally precede ``messages``, so only the top of the
    file is read. When ``channel`` comes later, the file is scanned for it (messages skipped,
    not built). Raises :class:`ExportError` when the file is unreadable, not JSON, or not a
    DiscordChatExporter export.
    """
    guild_id: int | None = None
    channel_raw: Any = None
    found_channel = False
    walker = _walk_root(_events(path), build_messages=False)
    try:
        for kind, value in walker:
            if kind == "not_object":
                raise ExportError(path, "root", _not_an_object(value))
            if kind == "guild":
                guild_id = _read_header_part(path, "guild", _guild_id, value)
            elif kind == "channel":
                channel_raw, found_channel = value, True
            # The guild conventionally precedes the channel; once the channel is known there
            # is no point reading on into the messages for a guild that is not there.
            if found_channel and (kind == "messages_start" or guild_id is not None):
                break
    except _InvalidJson as exc:
        raise _invalid_json_error(path, exc, "while reading the channel header") from None
    except OSError as exc:
        raise ExportError(path, "file", exc.strerror or str(exc)) from None
    finally:
        walker.close()
    if not found_channel:
        raise ExportError(path, "root", f"{_NOT_AN_EXPORT} (no 'channel' object)")
    channel = _read_header_part(path, "channel", lambda raw: _channel(raw, guild_id), channel_raw)
    return DiscordExport(path=path, channel=channel)


def _read_header_part(path: Path, part: str, read: Callable[[Any], _Value], raw: Any) -> _Value:
    try:
        return read(raw)
    except _FieldProblem as problem:
        if problem.field == part:
            raise ExportError(path, part, f"{_NOT_AN_EXPORT} ('{part}' is not an object)") from None
        raise ExportError(path, part, problem.reason) from None


# --- finding files -------------------------------------------------------------------------


def _export_order(path: Path) -> tuple[str, str, int, str]:
    # "<name> [part 2].json" is the second part of "<name>.json": it sorts right after it,
    # and "[part 10]" after "[part 9]".
    match = _PART_SUFFIX.fullmatch(path.stem)
    base, part = (match["base"], int(match["number"])) if match else (path.stem, 1)
    return str(path.parent), base, part, path.suffix


def find_export_files(paths: Iterable[Path]) -> list[Path]:
    """The export files to import: files as given, folders searched recursively for ``*.json``.

    The result is sorted by folder and name, with the parts of a partitioned export in part
    order after their first file, and each file listed once.
    """
    found: dict[Path, Path] = {}
    for path in paths:
        if path.is_dir():
            candidates = [item for item in path.rglob("*.json") if item.is_file()]
        elif path.exists():
            candidates = [path]
        else:
            raise ExportError(path, "file", "no such file or directory")
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    return sorted(found.values(), key=_export_order)
