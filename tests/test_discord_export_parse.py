"""DiscordChatExporter files: streamed into records, and every broken file reported precisely."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import BRIDGE_WEBHOOK_ID, DCE_GENERAL, TELEGRAM_EXPORT

from clanpulse.records import Channel, ChatMessage, DiscordUser
from clanpulse.sources.discord_export import (
    DiscordExport,
    ExportError,
    find_export_files,
    open_export,
)

SAMPLE_BYTES = DCE_GENERAL.read_bytes()
SAMPLE: dict[str, Any] = json.loads(SAMPLE_BYTES)
CHANNEL_ID = 1187817881589645314
DISCORD_EPOCH_MS = 1420070400000


def read_all(path: Path, size: int = 1000) -> list[ChatMessage]:
    return [message for batch in open_export(path).batches(size) for message in batch]


def write_json(path: Path, document: object, *, indent: int | None = 2) -> Path:
    """Write a document the way the exporter does (indented, raw UTF-8), or compact when fuzzing."""
    path.write_text(json.dumps(document, indent=indent, ensure_ascii=False), encoding="utf-8")
    return path


def sample_with(**root: Any) -> dict[str, Any]:
    """The sample export with some root keys replaced (a value of None drops the key)."""
    document: dict[str, Any] = json.loads(SAMPLE_BYTES)
    for key, value in root.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


def sample_messages() -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(SAMPLE_BYTES)["messages"]
    return messages


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


@pytest.fixture(scope="module")
def messages() -> list[ChatMessage]:
    return read_all(DCE_GENERAL)


@pytest.fixture(scope="module")
def by_id(messages: list[ChatMessage]) -> dict[int, ChatMessage]:
    return {message.id: message for message in messages}


# --- the sample ---


def test_the_channel_comes_from_the_root_object() -> None:
    export = open_export(DCE_GENERAL)
    assert export.path == DCE_GENERAL
    assert export.channel == Channel(
        id=CHANNEL_ID,
        name="general",
        type=0,
        guild_id=1187817879744151553,
        parent_id=1187817880499126277,
    )


def test_all_thirty_messages_are_read_in_file_order(messages: list[ChatMessage]) -> None:
    assert len(messages) == SAMPLE["messageCount"] == 30
    assert [m.id for m in messages] == [int(m["id"]) for m in SAMPLE["messages"]]
    assert all(m.channel_id == CHANNEL_ID for m in messages)


def test_message_types_are_mapped_to_discord_numbers(messages: list[ChatMessage]) -> None:
    assert Counter(m.type for m in messages) == {0: 24, 19: 2, 7: 1, 6: 1, 20: 1, 18: 1}


def test_local_offsets_across_the_dst_switch_become_utc(by_id: dict[int, ChatMessage]) -> None:
    # +01:00 before the switch on 2026-03-29, +02:00 after it.
    assert by_id[1487134655437209628].sent_at == utc(2026, 3, 27, 17, 2, 11, 482000)
    assert by_id[1487556590587478073].sent_at == utc(2026, 3, 28, 20, 58, 48, 661000)
    assert by_id[1487715494147522621].sent_at == utc(2026, 3, 29, 7, 30, 14, 222000)
    assert by_id[1487784640512131138].sent_at == utc(2026, 3, 29, 12, 5)


def test_short_and_missing_fractions_are_read_as_written(by_id: dict[int, ChatMessage]) -> None:
    assert by_id[1487135266161426461].sent_at == utc(2026, 3, 27, 17, 4, 37, 90000)  # ".09"
    assert by_id[1487158196463337517].sent_at == utc(2026, 3, 27, 18, 35, 44, 100000)  # ".1"
    assert by_id[1487141653708931103].sent_at == utc(2026, 3, 27, 17, 30)  # none


def test_every_timestamp_agrees_with_its_snowflake(messages: list[ChatMessage]) -> None:
    for message in messages:
        snowflake_ms = (message.id >> 22) + DISCORD_EPOCH_MS
        assert message.sent_at == datetime.fromtimestamp(0, UTC) + timedelta(
            milliseconds=snowflake_ms
        )
        assert message.sent_at.tzinfo is UTC


def test_the_edit_time_is_kept(by_id: dict[int, ChatMessage]) -> None:
    assert by_id[1487135373715963934].edited_at == utc(2026, 3, 27, 17, 6, 41, 5000)
    assert by_id[1487134655437209628].edited_at is None


def test_replies_point_at_their_target_even_a_deleted_one(by_id: dict[int, ChatMessage]) -> None:
    assert by_id[1487135266161426461].reply_to == 1487134655437209628
    assert by_id[1487392095789514804].reply_to == 1487390343828734003  # not in the file


def test_pins_and_forwards_have_references_but_are_no_replies(
    by_id: dict[int, ChatMessage],
) -> None:
    assert by_id[1487379479612489776].reply_to is None  # pin notice
    assert by_id[1487715494147522621].reply_to is None  # forward
    assert by_id[1487784252329295937].reply_to is None  # thread created


def test_authors_keep_name_nickname_and_bot_flag(by_id: dict[int, ChatMessage]) -> None:
    assert by_id[1487134655437209628].author == DiscordUser(
        id=574204114108547089, username="fernwhistle", nickname="Fern (Owner)"
    )
    assert by_id[1487141653708931103].author.is_bot  # HeronBot


def test_the_bridge_webhook_is_a_bot_but_the_export_cannot_say_webhook(
    by_id: dict[int, ChatMessage],
) -> None:
    relay = by_id[1487144461002866720].author
    assert relay == DiscordUser(
        id=BRIDGE_WEBHOOK_ID, username="Clan Chat", nickname="Clan Chat", is_bot=True
    )
    assert not any(m.author.is_webhook for m in by_id.values())


def test_rendered_bridge_content_is_kept_verbatim(by_id: dict[int, ChatMessage]) -> None:
    assert (
        by_id[1487152143206187049].content
        == ":Slayer: **Tide Pool**: \\*\\*finally\\*\\* 85 slayer"
    )


def test_a_slash_command_response_names_who_ran_it(by_id: dict[int, ChatMessage]) -> None:
    response = by_id[1487391440786030641]
    assert response.type == 20
    assert response.author.username == "HeronBot"
    assert response.interaction_user == DiscordUser(
        id=745019384266883091, username="marrowgate", nickname="marrowgate"
    )
    assert sum(m.interaction_user is not None for m in by_id.values()) == 1


def test_attachments_and_reactions_are_counted(by_id: dict[int, ChatMessage]) -> None:
    assert by_id[1487158196463337517].attachments == 1
    assert by_id[1487416243576242232].attachments == 1
    assert by_id[1487134655437209628].reactions == 4  # 3 x check mark + 1 x thumbs up
    assert by_id[1487556590587478073].reactions == 2
    assert sum(m.attachments for m in by_id.values()) == 2
    assert sum(m.reactions for m in by_id.values()) == 6


def test_system_messages_keep_their_fallback_sentence(by_id: dict[int, ChatMessage]) -> None:
    assert by_id[1487378950245187630].content == "Joined the server."
    assert by_id[1487416044120309814].content == ""  # sticker only


@pytest.mark.parametrize(("size", "sizes"), [(7, [7, 7, 7, 7, 2]), (30, [30]), (1000, [30])])
def test_batches_hold_at_most_the_asked_size(size: int, sizes: list[int]) -> None:
    assert [len(batch) for batch in open_export(DCE_GENERAL).batches(size)] == sizes


def test_a_batch_size_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        open_export(DCE_GENERAL).batches(0)


def test_batches_can_be_read_again() -> None:
    export = open_export(DCE_GENERAL)
    first = [m.id for batch in export.batches() for m in batch]
    assert [m.id for batch in export.batches() for m in batch] == first


# --- shapes the exporter writes ---


def test_an_export_without_messages_is_an_empty_channel(tmp_path: Path) -> None:
    path = write_json(tmp_path / "empty.json", sample_with(messages=[], messageCount=0))
    assert list(open_export(path).batches()) == []


def test_a_direct_message_export_has_no_guild(tmp_path: Path) -> None:
    guild = {"id": "0", "name": "Direct Messages", "iconUrl": "x"}
    channel = {
        "id": "42",
        "type": "DirectTextChat",
        "categoryId": None,
        "category": None,
        "name": "fernwhistle",
        "topic": None,
    }
    path = write_json(tmp_path / "dm.json", sample_with(guild=guild, channel=channel))
    assert open_export(path).channel == Channel(id=42, name="fernwhistle", type=1)
    assert read_all(path)[0].channel_id == 42


def test_a_thread_export_has_its_parent_channel(tmp_path: Path) -> None:
    channel = {
        "id": "1487784252119580736",
        "type": "GuildPublicThread",
        "categoryId": str(CHANNEL_ID),
        "category": "general",
        "name": "ToA Saturday",
        "topic": None,
    }
    path = write_json(tmp_path / "thread.json", sample_with(channel=channel))
    assert open_export(path).channel == Channel(
        id=1487784252119580736,
        name="ToA Saturday",
        type=11,
        guild_id=1187817879744151553,
        parent_id=CHANNEL_ID,
    )


@pytest.mark.parametrize(
    ("kind", "number"),
    [
        ("GuildVoiceChat", 2),
        ("GuildNews", 5),
        ("GuildNewsThread", 10),
        ("GuildPrivateThread", 12),
        ("GuildStageVoice", 13),
        ("GuildForum", 15),
        ("16", 16),
        ("GuildHologram", -1),
    ],
)
def test_channel_kinds_map_to_api_type_numbers(tmp_path: Path, kind: str, number: int) -> None:
    channel = SAMPLE["channel"] | {"type": kind}
    path = write_json(tmp_path / "kind.json", sample_with(channel=channel))
    assert open_export(path).channel.type == number


@pytest.mark.parametrize(
    ("kind", "number"),
    [
        ("RecipientAdd", 1),
        ("RecipientRemove", 2),
        ("Call", 3),
        ("ChannelNameChange", 4),
        ("ChannelIconChange", 5),
        ("8", 8),
        ("21", 21),
        ("23", 23),
        ("046", 46),
        ("SomethingNew", -1),
        ("-3", -1),
        ("", -1),
    ],
)
def test_message_kinds_map_to_api_type_numbers(tmp_path: Path, kind: str, number: int) -> None:
    raw = sample_messages()
    raw[0]["type"] = kind
    path = write_json(tmp_path / "kind.json", sample_with(messages=raw))
    assert read_all(path)[0].type == number


def test_seven_fractional_digits_are_truncated_to_microseconds(tmp_path: Path) -> None:
    raw = sample_messages()
    raw[0]["timestamp"] = "2026-03-27T18:02:11.4829999+01:00"
    path = write_json(tmp_path / "precise.json", sample_with(messages=raw))
    assert read_all(path)[0].sent_at == utc(2026, 3, 27, 17, 2, 11, 482999)


def test_an_export_made_with_utc_offsets_reads_the_same(tmp_path: Path) -> None:
    raw = sample_messages()
    raw[0]["timestamp"] = "2026-03-27T17:02:11.482+00:00"
    path = write_json(tmp_path / "utc.json", sample_with(messages=raw))
    assert read_all(path)[0].sent_at == utc(2026, 3, 27, 17, 2, 11, 482000)


def test_an_old_export_without_optional_keys_gets_their_defaults(tmp_path: Path) -> None:
    raw = sample_messages()
    for message in raw:
        for key in (
            "reference",
            "interaction",
            "stickers",
            "inlineEmojis",
            "mentions",
            "callEndedTimestamp",
            "timestampEdited",
            "attachments",
            "reactions",
            "embeds",
            "isPinned",
        ):
            message.pop(key, None)
        message["author"].pop("roles", None)
        message["author"].pop("nickname", None)
    channel = {k: v for k, v in SAMPLE["channel"].items() if k != "categoryId"}
    document = sample_with(messages=raw, channel=channel, exportedAt=None, dateRange=None)
    path = write_json(tmp_path / "old.json", document)
    export = open_export(path)
    assert export.channel.parent_id is None
    parsed = read_all(path)
    assert len(parsed) == 30
    assert all(m.reply_to is None and m.interaction_user is None for m in parsed)
    assert all(m.attachments == 0 and m.reactions == 0 and m.edited_at is None for m in parsed)
    assert all(m.author.nickname is None for m in parsed)


def test_unknown_keys_anywhere_are_ignored(tmp_path: Path) -> None:
    raw = sample_messages()
    raw[0]["futureField"] = {"deep": [1, {"x": None}]}
    raw[0]["author"]["pronouns"] = "she/her"
    document = sample_with(
        messages=raw, futureRoot=[{"a": 1}], channel=SAMPLE["channel"] | {"x": 1}
    )
    assert len(read_all(write_json(tmp_path / "future.json", document))) == 30


def test_a_channel_written_after_the_messages_is_found_by_a_first_pass(tmp_path: Path) -> None:
    document = {
        "guild": SAMPLE["guild"],
        "messages": SAMPLE["messages"],
        "channel": SAMPLE["channel"],
    }
    path = write_json(tmp_path / "reordered.json", document)
    export = open_export(path)
    assert export.channel == open_export(DCE_GENERAL).channel
    assert [m.id for m in read_all(path)] == [m.id for m in read_all(DCE_GENERAL)]


def test_a_guild_written_after_the_channel_is_still_used(tmp_path: Path) -> None:
    document = {"channel": SAMPLE["channel"], "guild": SAMPLE["guild"], "messages": []}
    path = write_json(tmp_path / "reordered.json", document)
    assert open_export(path).channel.guild_id == 1187817879744151553


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + SAMPLE_BYTES)
    assert len(read_all(path)) == 30


def test_a_minified_export_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "minified.json"
    path.write_text(json.dumps(SAMPLE, separators=(",", ":")), encoding="utf-8")
    assert read_all(path) == read_all(DCE_GENERAL)


def test_a_large_export_streams_in_batches(tmp_path: Path) -> None:
    # Several parser chunks' worth of messages, so batches and chunk edges interleave.
    raw = sample_messages()
    many = [raw[i % 30] | {"id": str(1487134655437209628 + i)} for i in range(900)]
    path = write_json(tmp_path / "large.json", sample_with(messages=many))
    sizes = [len(batch) for batch in open_export(path).batches(250)]
    assert sizes == [250, 250, 250, 150]


# --- files that are not exports ---


def assert_one_line_naming(error: ExportError, path: Path, position: str) -> None:
    text = str(error)
    assert "\n" not in text
    assert text == f"{path}: {error.position}: {error.reason}"
    assert error.path == path
    assert error.position.startswith(position), error.position


def test_export_error_is_a_value_error_with_a_one_line_message() -> None:
    error = ExportError(Path("a.json"), "byte 3 (line 1)", "invalid JSON: x\ny")
    assert isinstance(error, ValueError)
    assert str(error) == "a.json: byte 3 (line 1): invalid JSON: x\\ny"


@pytest.mark.parametrize(
    ("document", "what"),
    [
        ([SAMPLE], "root is an array"),
        ("just a string", "root is not an object"),
        (42, "root is not an object"),
        (None, "root is not an object"),
        ({"guild": SAMPLE["guild"], "messages": []}, "no 'channel' object"),
        ({}, "no 'channel' object"),
        (sample_with(channel=[1, 2]), "'channel' is not an object"),
        (sample_with(guild="Grey Heron"), "'guild' is not an object"),
    ],
    ids=[
        "list",
        "string",
        "number",
        "null",
        "no-channel",
        "empty-object",
        "channel-list",
        "guild-string",
    ],
)
def test_json_of_another_shape_is_not_an_export(
    tmp_path: Path, document: object, what: str
) -> None:
    path = write_json(tmp_path / "other.json", document)
    with pytest.raises(ExportError) as caught:
        open_export(path)
    assert caught.value.reason.startswith("not a DiscordChatExporter export")
    assert what in caught.value.reason
    assert_one_line_naming(caught.value, path, "")


def test_a_telegram_export_is_not_a_discord_export() -> None:
    with pytest.raises(ExportError) as caught:
        open_export(TELEGRAM_EXPORT)
    assert_one_line_naming(caught.value, TELEGRAM_EXPORT, "root")
    assert "no 'channel' object" in caught.value.reason


def test_an_export_without_a_messages_array_fails_when_read(tmp_path: Path) -> None:
    path = write_json(tmp_path / "nomessages.json", sample_with(messages=None))
    export = open_export(path)
    with pytest.raises(ExportError, match=r"no 'messages' array"):
        list(export.batches())


def test_messages_that_are_not_an_array_are_reported(tmp_path: Path) -> None:
    path = write_json(tmp_path / "dict.json", sample_with(messages={"0": {}}))
    with pytest.raises(ExportError) as caught:
        read_all(path)
    assert_one_line_naming(caught.value, path, "messages")
    assert "'messages' is not an array" in caught.value.reason


@pytest.mark.parametrize(
    ("field", "value", "position", "reason"),
    [
        ("id", None, "messages[4]", "'id': missing required field"),
        ("id", "abc", "messages[4]", "'id': not a snowflake id: 'abc'"),
        ("type", None, "messages[4] (id 1487144461002866720)", "'type': missing required field"),
        ("type", True, "messages[4] (id 1487144461002866720)", "'type': expected a type name"),
        (
            "timestamp",
            None,
            "messages[4] (id 1487144461002866720)",
            "'timestamp': missing required field",
        ),
        (
            "timestamp",
            "27/03/2026 18:41",
            "messages[4] (id 1487144461002866720)",
            "'timestamp': not an ISO 8601 timestamp: '27/03/2026 18:41'",
        ),
        (
            "timestamp",
            "2026-03-27T18:41:09.311",
            "messages[4] (id 1487144461002866720)",
            "'timestamp': timestamp without a UTC offset",
        ),
        (
            "timestampEdited",
            "later",
            "messages[4] (id 1487144461002866720)",
            "'timestampEdited': not an ISO 8601 timestamp",
        ),
        (
            "author",
            None,
            "messages[4] (id 1487144461002866720)",
            "'author': missing required field",
        ),
        (
            "author",
            {"name": "Clan Chat"},
            "messages[4] (id 1487144461002866720)",
            "'author.id': missing required field",
        ),
        (
            "author",
            "Clan Chat",
            "messages[4] (id 1487144461002866720)",
            "'author': expected an object",
        ),
        ("content", 5, "messages[4] (id 1487144461002866720)", "'content': expected a string"),
        (
            "reactions",
            [{"emoji": {}}],
            "messages[4] (id 1487144461002866720)",
            "'reactions[0].count': missing required field",
        ),
        (
            "reactions",
            [{"count": -2}],
            "messages[4] (id 1487144461002866720)",
            "'reactions[0].count': expected a count",
        ),
        (
            "attachments",
            {},
            "messages[4] (id 1487144461002866720)",
            "'attachments': expected an array",
        ),
        (
            "interaction",
            {"user": {"name": "x"}},
            "messages[4] (id 1487144461002866720)",
            "'interaction.user.id': missing required field",
        ),
    ],
)
def test_a_broken_message_is_named_with_its_index_id_and_field(
    tmp_path: Path, field: str, value: object, position: str, reason: str
) -> None:
    raw = sample_messages()
    if value is None:
        del raw[4][field]
    else:
        raw[4][field] = value
    path = write_json(tmp_path / "broken.json", sample_with(messages=raw))
    export = open_export(path)
    read: list[ChatMessage] = []
    with pytest.raises(ExportError) as caught:
        for batch in export.batches(1):
            read.extend(batch)
    assert caught.value.position == position
    assert caught.value.reason.startswith(reason)
    assert_one_line_naming(caught.value, path, "messages[4]")
    assert len(read) == 4  # the messages before it were handed out


def test_a_message_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    raw: list[Any] = sample_messages()
    raw[2] = "Evening all!"
    path = write_json(tmp_path / "broken.json", sample_with(messages=raw))
    with pytest.raises(ExportError) as caught:
        read_all(path)
    assert caught.value.position == "messages[2]"
    assert caught.value.reason == "expected an object, got 'Evening all!'"


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "gone.json"
    with pytest.raises(ExportError) as caught:
        open_export(path)
    assert_one_line_naming(caught.value, path, "file")


def test_a_folder_is_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        open_export(tmp_path)
    assert_one_line_naming(caught.value, tmp_path, "file")


# --- invalid JSON ---


def test_an_empty_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"")
    with pytest.raises(ExportError) as caught:
        open_export(path)
    assert str(caught.value) == (
        f"{path}: byte 0 (line 1): invalid JSON: the file is empty; "
        "while reading the channel header"
    )


def test_text_that_is_not_json_is_reported_at_the_first_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text("\n  hello, these are my notes\n", encoding="utf-8")
    with pytest.raises(ExportError) as caught:
        open_export(path)
    assert caught.value.offset == 3
    assert caught.value.position == "byte 3 (line 2)"
    assert caught.value.reason.startswith("invalid JSON: lexical error")


def line_of(data: bytes, offset: int) -> int:
    return data[:offset].count(b"\n") + 1


def cut_point(after: str, occurrence: int = 1) -> int:
    """The byte offset just after the given occurrence of ``after`` in the sample."""
    offset = -1
    for _ in range(occurrence):
        offset = SAMPLE_BYTES.index(after.encode(), offset + 1)
    return offset + len(after.encode())


@pytest.mark.parametrize(
    ("cut", "complete"),
    [
        (cut_point('"id": "1487145394063540259"'), 7),  # inside messages[7]
        (cut_point("Sign-ups for Saturday"), 0),  # inside the first message's content
        (cut_point('"messageCount": 3'), 30),  # inside the count, after the messages
        (len(SAMPLE_BYTES) - 2, 30),  # the closing brace lost
    ],
    ids=["mid-array", "mid-string", "mid-count", "closing-brace"],
)
def test_a_truncated_file_hands_out_whole_messages_then_fails_at_its_end(
    tmp_path: Path, cut: int, complete: int
) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(SAMPLE_BYTES[:cut])
    read: list[ChatMessage] = []
    with pytest.raises(ExportError) as caught:
        for batch in open_export(path).batches(1):
            read.extend(batch)
    assert [m.id for m in read] == [int(m["id"]) for m in SAMPLE["messages"][:complete]]
    assert caught.value.offset == cut
    assert caught.value.position == f"byte {cut} (line {line_of(SAMPLE_BYTES, cut)})"
    assert "premature EOF" in caught.value.reason
    if complete:
        last = SAMPLE["messages"][complete - 1]["id"]
        assert caught.value.reason.endswith(
            f"last complete message: messages[{complete - 1}] (id {last})"
        )
    else:
        assert caught.value.reason.endswith("no complete message before it")
    assert_one_line_naming(caught.value, path, "byte")


@pytest.mark.parametrize(
    "cut", [1, 10, cut_point('"name": "Grey Heron"'), cut_point('"type": "GuildTextChat"')]
)
def test_a_file_cut_before_its_channel_fails_on_opening(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(SAMPLE_BYTES[:cut])
    with pytest.raises(ExportError) as caught:
        open_export(path)
    assert caught.value.offset == cut
    assert caught.value.reason.endswith("while reading the channel header")


def test_garbage_inside_the_messages_is_located_to_the_byte(tmp_path: Path) -> None:
    at = cut_point('"id": "1487147452565028902",\n')  # start of a line in messages[10]
    path = tmp_path / "garbage.json"
    path.write_bytes(SAMPLE_BYTES[:at] + b"oops" + SAMPLE_BYTES[at:])
    with pytest.raises(ExportError) as caught:
        read_all(path)
    assert caught.value.position == f"byte {at} (line {line_of(SAMPLE_BYTES, at)})"
    assert caught.value.offset == at
    assert caught.value.reason == (
        "invalid JSON: lexical error: invalid char in json text; "
        "last complete message: messages[9] (id 1487147358037999653)"
    )


def test_an_error_far_into_a_large_file_is_still_located_to_the_byte(tmp_path: Path) -> None:
    raw = sample_messages()
    many = [raw[i % 30] | {"id": str(1487134655437209628 + i)} for i in range(600)]
    text = json.dumps(sample_with(messages=many), indent=2, ensure_ascii=False).encode()
    at = text.index(b"\n", 300_000) + 1  # well past the first parser chunk
    path = tmp_path / "large.json"
    path.write_bytes(text[:at] + b"}" + text[at:])
    with pytest.raises(ExportError) as caught:
        read_all(path)
    assert caught.value.offset == at
    assert caught.value.position == f"byte {at} (line {line_of(text, at)})"


def test_trailing_garbage_after_the_root_is_reported_after_all_messages(tmp_path: Path) -> None:
    path = tmp_path / "trailing.json"
    path.write_bytes(SAMPLE_BYTES + b"\n{}")
    read: list[ChatMessage] = []
    with pytest.raises(ExportError) as caught:
        for batch in open_export(path).batches():
            read.extend(batch)
    assert len(read) == 30
    assert caught.value.offset == len(SAMPLE_BYTES) + 1
    assert "trailing garbage" in caught.value.reason


def test_invalid_utf8_is_reported_at_the_bad_byte(tmp_path: Path) -> None:
    at = cut_point('"content": "count me in')
    path = tmp_path / "latin1.json"
    path.write_bytes(SAMPLE_BYTES[:at] + b"\xe9" + SAMPLE_BYTES[at:])
    with pytest.raises(ExportError) as caught:
        read_all(path)
    assert caught.value.offset is not None
    assert at <= caught.value.offset <= at + 40
    assert "UTF8" in caught.value.reason


# --- finding export files ---


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}", encoding="utf-8")
    return path


def test_partitioned_exports_are_ordered_by_part_number(tmp_path: Path) -> None:
    base = "Grey Heron - Text Channels - general [1187817881589645314]"
    names = [
        f"{base} [part 10].json",
        f"{base} [part 2].json",
        f"{base}.json",
        f"{base} [part 3].json",
        "Grey Heron - Text Channels - alpha [1].json",
    ]
    for name in names:
        touch(tmp_path / name)
    found = find_export_files([tmp_path])
    assert [p.name for p in found] == [
        "Grey Heron - Text Channels - alpha [1].json",
        f"{base}.json",
        f"{base} [part 2].json",
        f"{base} [part 3].json",
        f"{base} [part 10].json",
    ]


def test_folders_are_searched_recursively_for_json_only(tmp_path: Path) -> None:
    touch(tmp_path / "a.json")
    touch(tmp_path / "nested" / "deeper" / "b.json")
    touch(tmp_path / "notes.txt")
    (tmp_path / "folder.json").mkdir()
    found = find_export_files([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.json",
        "nested/deeper/b.json",
    ]


def test_files_given_by_name_are_taken_whatever_their_extension(tmp_path: Path) -> None:
    odd = touch(tmp_path / "export.txt")
    assert find_export_files([odd]) == [odd]


def test_a_file_reached_twice_is_listed_once(tmp_path: Path) -> None:
    file = touch(tmp_path / "a.json")
    assert find_export_files([file, tmp_path, tmp_path]) == [file]


def test_a_missing_path_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError) as caught:
        find_export_files([tmp_path / "nope"])
    assert_one_line_naming(caught.value, tmp_path / "nope", "file")


# --- garbage in, an export error out ---

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**66), max_value=2**66)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["0", "Reply", "20", "1487144461002866720", "2026-03-27T18:41:09+01:00"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "guild",
                    "channel",
                    "messages",
                    "id",
                    "type",
                    "timestamp",
                    "author",
                    "name",
                    "isBot",
                    "reference",
                    "messageId",
                    "reactions",
                    "count",
                    "interaction",
                    "user",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=25,
)


def read_or_export_error(path: Path) -> list[ChatMessage]:
    """Read a file completely; an ExportError is the only failure allowed."""
    try:
        export = open_export(path)
        assert isinstance(export, DiscordExport)
        return [message for batch in export.batches(7) for message in batch]
    except ExportError as error:
        assert str(error).startswith(f"{path}: ")
        assert "\n" not in str(error)
        return []


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_read_or_raise_an_export_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "random.json"
    path.write_bytes(data)
    read_or_export_error(path)


@FUZZ
@given(JSON_VALUES)
def test_random_json_values_read_or_raise_an_export_error(tmp_path: Path, value: object) -> None:
    read_or_export_error(write_json(tmp_path / "value.json", value, indent=None))


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(SAMPLE_BYTES)),
            st.sampled_from(["delete", "insert", "replace"]),
            st.binary(min_size=1, max_size=3),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_randomly_damaged_samples_read_or_raise_an_export_error(
    tmp_path: Path, edits: list[tuple[int, str, bytes]]
) -> None:
    data = bytearray(SAMPLE_BYTES)
    for offset, action, chunk in edits:
        at = min(offset, len(data))
        if action == "delete":
            del data[at : at + len(chunk)]
        elif action == "insert":
            data[at:at] = chunk
        else:
            data[at : at + len(chunk)] = chunk
    path = tmp_path / "damaged.json"
    path.write_bytes(bytes(data))
    read_or_export_error(path)


@FUZZ
@given(
    st.integers(min_value=0, max_value=29),
    st.sampled_from(
        [
            "id",
            "type",
            "timestamp",
            "timestampEdited",
            "content",
            "author",
            "reference",
            "attachments",
            "reactions",
            "interaction",
        ]
    ),
    st.sampled_from([None, "id", "name", "isBot", "messageId", "user", "count"]),
    JSON_VALUES,
)
def test_samples_with_a_field_replaced_read_or_raise_an_export_error(
    tmp_path: Path, index: int, field: str, subfield: str | None, value: object
) -> None:
    raw = sample_messages()
    target = raw[index]
    if subfield is not None and isinstance(target.get(field), dict):
        target = target[field]
        field = subfield
    target[field] = value
    document = SAMPLE | {"messages": raw}
    read_or_export_error(write_json(tmp_path / "edited.json", document, indent=None))


@FUZZ
@given(st.integers(min_value=0, max_value=len(SAMPLE_BYTES) - 2))  # the last byte is "\n"
def test_a_sample_cut_anywhere_reports_the_cut(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(SAMPLE_BYTES[:cut])
    with pytest.raises(ExportError) as caught:
        list(open_export(path).batches())
    assert caught.value.offset == cut
