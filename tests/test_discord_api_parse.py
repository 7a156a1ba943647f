"""Discord REST API payloads: what the records say, and what a malformed payload reports."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import API_MESSAGES_PAGE, BRIDGE_WEBHOOK_ID

from clanpulse.records import Channel, DiscordUser
from clanpulse.sources.discord_api import (
    ApiPayloadError,
    parse_channel,
    parse_channels,
    parse_members,
    parse_messages,
    parse_snowflake,
    parse_thread_list,
    parse_timestamp,
)

ENDPOINT = "GET /channels/1188046507396431875/messages"
CHANNEL_ID = 1188046507396431875


def page() -> list[dict[str, Any]]:
    payload: list[dict[str, Any]] = json.loads(API_MESSAGES_PAGE.read_text(encoding="utf-8"))
    return payload


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --- the sample page ---


def test_the_sample_page_keeps_its_newest_first_order() -> None:
    messages = parse_messages(page(), ENDPOINT)
    assert [m.id for m in messages] == [
        1487891060515536975,
        1487889080279760973,
        1487881852919480396,
        1487875170495496267,
        1487874020169875530,
        1487873627914371145,
        1487872217600622663,
        1487872014017626181,
        1487871634164678724,
        1487871471488467011,
    ]
    assert all(m.channel_id == CHANNEL_ID for m in messages)


def test_the_sample_page_has_its_message_types() -> None:
    types = [m.type for m in parse_messages(page(), ENDPOINT)]
    assert types == [20, 0, 0, 0, 19, 0, 7, 0, 0, 0]


def test_timestamps_become_aware_utc_datetimes() -> None:
    messages = parse_messages(page(), ENDPOINT)
    assert messages[0].sent_at == utc(2026, 3, 29, 19, 7, 52, 506000)
    assert messages[-1].sent_at == utc(2026, 3, 29, 17, 50, 2, 118000)
    assert all(m.sent_at.tzinfo is UTC for m in messages)


def test_an_edited_message_has_its_edit_time_and_others_none() -> None:
    messages = {m.id: m for m in parse_messages(page(), ENDPOINT)}
    assert messages[1487875170495496267].edited_at == utc(2026, 3, 29, 18, 5, 20, 612000)
    assert messages[1487874020169875530].edited_at is None


def test_a_reply_points_at_the_message_it_answers() -> None:
    messages = {m.id: m for m in parse_messages(page(), ENDPOINT)}
    assert messages[1487874020169875530].reply_to == 1487871471488467011
    assert all(m.reply_to is None for m in messages.values() if m.type != 19)


def test_a_reference_on_a_message_that_is_not_a_reply_is_no_reply() -> None:
    pin = page()[3] | {"type": 6, "message_reference": {"message_id": "1487871471488467011"}}
    assert parse_messages([pin], ENDPOINT)[0].reply_to is None


def test_attachments_and_reactions_are_counted() -> None:
    messages = {m.id: m for m in parse_messages(page(), ENDPOINT)}
    assert messages[1487873627914371145].attachments == 1
    assert messages[1487873627914371145].reactions == 3  # 2 thumbs up + 1 custom emoji
    assert messages[1487871471488467011].attachments == 0
    assert messages[1487871471488467011].reactions == 0


def test_webhook_posts_are_flagged_and_bots_are_bots() -> None:
    messages = {m.id: m for m in parse_messages(page(), ENDPOINT)}
    relay = messages[1487881852919480396].author
    assert relay == DiscordUser(
        id=BRIDGE_WEBHOOK_ID, username="Clan Chat", is_bot=True, is_webhook=True
    )
    assert messages[1487889080279760973].author.is_bot
    assert not messages[1487889080279760973].author.is_webhook
    human = messages[1487873627914371145].author
    assert human == DiscordUser(id=806060084428931093, username="quill_osrs", global_name="Quill")


def test_history_pages_do_not_know_nicknames() -> None:
    assert all(m.author.nickname is None for m in parse_messages(page(), ENDPOINT))


def test_a_command_response_names_the_human_who_ran_it() -> None:
    command = parse_messages(page(), ENDPOINT)[0]
    assert command.interaction_user == DiscordUser(id=745019384266883091, username="marrowgate")
    assert command.author.username == "HeronBot"


def test_the_deprecated_interaction_object_is_used_when_the_metadata_is_missing() -> None:
    raw = page()[0]
    del raw["interaction_metadata"]
    raw["interaction"]["user"]["id"] = "42"
    assert parse_messages([raw], ENDPOINT)[0].interaction_user == DiscordUser(
        id=42, username="marrowgate"
    )


def test_metadata_without_a_user_falls_back_to_the_deprecated_object() -> None:
    raw = page()[0]
    del raw["interaction_metadata"]["user"]
    command = parse_messages([raw], ENDPOINT)[0]
    assert command.interaction_user is not None
    assert command.interaction_user.id == 745019384266883091


def test_interaction_metadata_wins_over_the_deprecated_object() -> None:
    raw = page()[0]
    raw["interaction"]["user"]["id"] = "42"
    command = parse_messages([raw], ENDPOINT)[0]
    assert command.interaction_user is not None
    assert command.interaction_user.id == 745019384266883091


def test_unknown_message_types_are_kept_as_numbers() -> None:
    raw = page()[3] | {"type": 4242}
    assert parse_messages([raw], ENDPOINT)[0].type == 4242


def test_a_minimal_message_needs_only_what_we_read() -> None:
    raw = {
        "id": "10",
        "channel_id": 20,
        "author": {"id": "30", "username": "rook"},
        "type": 0,
        "timestamp": "2026-03-29T19:00:00+02:00",
    }
    [parsed] = parse_messages([raw], ENDPOINT)
    assert (parsed.id, parsed.channel_id, parsed.author.id) == (10, 20, 30)
    assert parsed.sent_at == utc(2026, 3, 29, 17, 0)
    assert (parsed.content, parsed.attachments, parsed.reactions) == ("", 0, 0)
    assert parsed.interaction_user is None


def test_an_empty_page_is_no_messages() -> None:
    assert parse_messages([], ENDPOINT) == []


# --- errors ---


def test_a_missing_field_is_reported_with_the_endpoint_and_its_path() -> None:
    payload = page()
    del payload[3]["author"]["id"]
    with pytest.raises(ApiPayloadError) as caught:
        parse_messages(payload, "GET /channels/1/messages")
    assert str(caught.value) == "GET /channels/1/messages: [3].author.id: Field required"
    assert caught.value.endpoint == "GET /channels/1/messages"
    assert caught.value.detail == "[3].author.id: Field required"


def test_the_payload_error_is_a_value_error() -> None:
    assert issubclass(ApiPayloadError, ValueError)


def test_a_payload_that_is_not_a_list_is_reported_at_the_root() -> None:
    with pytest.raises(ApiPayloadError, match=r"^GET /x: \(root\): Input should be a valid list"):
        parse_messages({"message": "404: Not Found"}, "GET /x")


def test_several_problems_are_summarised_on_one_line() -> None:
    payload = page()
    del payload[0]["id"]
    del payload[5]["timestamp"]
    with pytest.raises(ApiPayloadError) as caught:
        parse_messages(payload, ENDPOINT)
    assert str(caught.value) == f"{ENDPOINT}: [0].id: Field required (and 1 more problems)"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("id", "12ab", "[0].id: not a snowflake id: '12ab'"),
        ("id", -5, "[0].id: snowflake id out of range: -5"),
        ("id", True, "[0].id: not a snowflake id: True"),
        ("type", "0", "[0].type: Input should be a valid integer"),
        ("timestamp", "2026-03-29T19:07:52", "[0].timestamp: timestamp without a UTC offset"),
        ("timestamp", "yesterday", "[0].timestamp: not an ISO 8601 timestamp: 'yesterday'"),
        ("edited_timestamp", 1774811272, "[0].edited_timestamp: not a timestamp string"),
        ("reactions", [{"count": -1}], "[0].reactions[0].count: Input should be greater"),
        ("content", None, "[0].content: Input should be a valid string"),
    ],
)
def test_malformed_fields_are_named(field: str, value: object, detail: str) -> None:
    raw = page()[3] | {field: value}
    with pytest.raises(ApiPayloadError) as caught:
        parse_messages([raw], ENDPOINT)
    assert caught.value.detail.startswith(detail)


def test_unknown_fields_are_ignored() -> None:
    raw = page()[3] | {"brand_new_field": {"x": [1, 2]}, "poll": None}
    assert parse_messages([raw], ENDPOINT)[0].id == 1487875170495496267


# --- ids and timestamps ---


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1487891060515536975", 1487891060515536975), (42, 42), ("0", 0), (2**63 - 1, 2**63 - 1)],
)
def test_snowflakes_come_as_strings_or_ints(value: object, expected: int) -> None:
    assert parse_snowflake(value) == expected


@pytest.mark.parametrize(
    "value", ["", " 42", "42 ", "+42", "-42", "4.2", "٤٢", 2**63, -1, 4.0, None, False, [42]]
)
def test_anything_else_is_not_a_snowflake(value: object) -> None:
    with pytest.raises(ValueError):
        parse_snowflake(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-29T17:50:02.118000+00:00", utc(2026, 3, 29, 17, 50, 2, 118000)),
        ("2026-03-29T19:50:02.118+02:00", utc(2026, 3, 29, 17, 50, 2, 118000)),
        ("2026-03-27T18:04:37.09+01:00", utc(2026, 3, 27, 17, 4, 37, 90000)),
        ("2026-03-27T18:30:00+01:00", utc(2026, 3, 27, 17, 30)),
        ("2026-03-30T21:14:07.5512345+02:00", utc(2026, 3, 30, 19, 14, 7, 551234)),
        ("2026-03-29T17:50:02Z", utc(2026, 3, 29, 17, 50, 2)),
    ],
)
def test_timestamps_with_any_offset_and_fraction_become_utc(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.utcoffset() is not None
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "value", ["2026-03-29T17:50:02", "2026-03-29", "", "soon", "0001-01-01T00:00:00+01:00", 0]
)
def test_timestamps_without_offset_or_out_of_range_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


# --- channels, threads, members ---

TEXT_CHANNEL = {
    "id": "1188046507396431875",
    "type": 0,
    "guild_id": "1187817879744151553",
    "name": "clan-chat",
    "parent_id": "1187817880499126277",
    "position": 3,
    "topic": None,
    "last_message_id": "1487891060515536975",
}


def thread(thread_id: str, archived_at: str) -> dict[str, Any]:
    return {
        "id": thread_id,
        "type": 11,
        "guild_id": "1187817879744151553",
        "parent_id": "1188046507396431875",
        "name": f"thread {thread_id}",
        "message_count": 3,
        "thread_metadata": {
            "archived": True,
            "archive_timestamp": archived_at,
            "auto_archive_duration": 1440,
            "locked": False,
        },
    }


def test_a_channel_becomes_a_channel_record() -> None:
    assert parse_channel(TEXT_CHANNEL, "GET /channels/1188046507396431875") == Channel(
        id=1188046507396431875,
        name="clan-chat",
        type=0,
        guild_id=1187817879744151553,
        parent_id=1187817880499126277,
    )


def test_a_channel_list_keeps_every_type_including_unknown_ones() -> None:
    category = {"id": "1", "type": 4, "guild_id": "9", "name": "Text Channels"}
    future = {"id": "2", "type": 99, "guild_id": "9", "name": "hologram"}
    channels = parse_channels([TEXT_CHANNEL, category, future], "GET /guilds/9/channels")
    assert [c.type for c in channels] == [0, 4, 99]
    assert channels[1].parent_id is None


def test_a_channel_without_a_name_gets_an_empty_one() -> None:
    dm = {"id": "5", "type": 1, "recipients": []}
    assert parse_channel(dm, "GET /channels/5") == Channel(id=5, name="", type=1)


def test_a_channel_without_an_id_is_reported() -> None:
    with pytest.raises(
        ApiPayloadError, match=r"^GET /guilds/9/channels: \[1\]\.id: Field required"
    ):
        parse_channels([TEXT_CHANNEL, {"type": 0}], "GET /guilds/9/channels")


def test_an_archived_thread_page_gives_threads_has_more_and_archive_times() -> None:
    payload = {
        "threads": [
            thread("300", "2026-03-29T12:00:00.000000+00:00"),
            thread("200", "2026-03-28T09:30:00.5+00:00"),
        ],
        "members": [],
        "has_more": True,
    }
    threads, has_more, stamps = parse_thread_list(
        payload, "GET /channels/1/threads/archived/public"
    )
    assert [t.id for t in threads] == [300, 200]
    assert threads[0] == Channel(
        id=300,
        name="thread 300",
        type=11,
        guild_id=1187817879744151553,
        parent_id=1188046507396431875,
    )
    assert has_more is True
    assert stamps == ["2026-03-29T12:00:00.000000+00:00", "2026-03-28T09:30:00.5+00:00"]


def test_the_active_thread_listing_has_no_more_pages() -> None:
    payload = {"threads": [thread("300", "2026-03-29T12:00:00+00:00")], "members": []}
    threads, has_more, _ = parse_thread_list(payload, "GET /guilds/9/threads/active")
    assert len(threads) == 1
    assert has_more is False


def test_a_listed_thread_needs_its_archive_time() -> None:
    bad = thread("300", "2026-03-29T12:00:00+00:00")
    del bad["thread_metadata"]["archive_timestamp"]
    with pytest.raises(ApiPayloadError) as caught:
        parse_thread_list({"threads": [bad]}, "GET /x")
    assert caught.value.detail == "threads[0].thread_metadata.archive_timestamp: Field required"


def test_a_listed_thread_with_an_unreadable_archive_time_is_reported() -> None:
    with pytest.raises(ApiPayloadError, match=r"threads\[0\]\.thread_metadata\.archive_timestamp"):
        parse_thread_list({"threads": [thread("300", "last week")]}, "GET /x")


def test_members_carry_their_nickname_or_an_empty_one() -> None:
    payload = [
        {
            "user": {"id": "1", "username": "fernwhistle", "global_name": "Fern"},
            "nick": "Fern (Owner)",
        },
        {"user": {"id": "2", "username": "marrowgate", "global_name": None}, "nick": None},
        {"user": {"id": "3", "username": "heronbot", "bot": True}, "roles": []},
    ]
    assert parse_members(payload, "GET /guilds/9/members") == [
        DiscordUser(id=1, username="fernwhistle", global_name="Fern", nickname="Fern (Owner)"),
        DiscordUser(id=2, username="marrowgate", nickname=""),
        DiscordUser(id=3, username="heronbot", nickname="", is_bot=True),
    ]


def test_a_member_without_a_user_is_reported() -> None:
    with pytest.raises(ApiPayloadError, match=r"^GET /m: \[0\]\.user: Field required$"):
        parse_members([{"nick": "x"}], "GET /m")


# --- garbage in, a payload error out ---

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(["0", "1487891060515536975", "2026-03-29T19:07:52.506000+00:00"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["id", "type", "author", "timestamp", "threads", "user", "nick", "count", "x"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)

PARSERS = [parse_messages, parse_channel, parse_channels, parse_thread_list, parse_members]


@settings(max_examples=200)
@given(JSON_VALUES, st.sampled_from(PARSERS))
def test_any_json_value_parses_or_raises_a_payload_error(payload: object, parser: Any) -> None:
    try:
        parser(payload, "GET /garbage")
    except ApiPayloadError as exc:
        assert str(exc).startswith("GET /garbage: ")
        assert "\n" not in str(exc)


MESSAGE_FIELDS = [
    "id",
    "channel_id",
    "author",
    "type",
    "timestamp",
    "content",
    "edited_timestamp",
    "webhook_id",
    "message_reference",
    "attachments",
    "reactions",
    "interaction_metadata",
    "interaction",
]


@settings(max_examples=200)
@given(
    st.integers(min_value=0, max_value=9),
    st.sampled_from(MESSAGE_FIELDS),
    JSON_VALUES,
    st.booleans(),
)
def test_a_sample_page_with_one_field_replaced_parses_or_raises_a_payload_error(
    index: int, field: str, value: object, nested: bool
) -> None:
    payload = copy.deepcopy(SAMPLE_PAGE)
    target = payload[index]
    if nested and isinstance(target.get(field), dict):
        target = target[field]
        field = next(iter(target), "id")
    target[field] = value
    try:
        parse_messages(payload, ENDPOINT)
    except ApiPayloadError as exc:
        assert str(exc).startswith(f"{ENDPOINT}: ")


SAMPLE_PAGE = page()
