"""The counting rules: every message gets a kind, and only chat counts, for the right person."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from samples import API_MESSAGES_PAGE, BRIDGE_WEBHOOK_ID, DCE_GENERAL

from clanpulse.counting import NO_BRIDGE, BridgeAuthors, classify
from clanpulse.records import ChatMessage, DiscordUser, MessageKind, OsrsSpeaker
from clanpulse.sources.discord_api import parse_messages
from clanpulse.sources.discord_export import open_export

HUMAN = DiscordUser(id=745019384266883091, username="marrowgate")
BOT = DiscordUser(id=1187831925964931098, username="HeronBot", is_bot=True)
WEBHOOK = DiscordUser(id=555, username="Announcements", is_bot=True, is_webhook=True)
RELAY = DiscordUser(id=BRIDGE_WEBHOOK_ID, username="Clan Chat", is_bot=True, is_webhook=True)
BRIDGE = BridgeAuthors.from_settings([str(BRIDGE_WEBHOOK_ID)])


def message(author: DiscordUser, content: str = "hi", type: int = 0) -> ChatMessage:
    return ChatMessage(
        id=1,
        channel_id=2,
        author=author,
        sent_at=datetime(2026, 3, 29, 18, 0, tzinfo=UTC),
        type=type,
        content=content,
    )


# --- who is the bridge ---


def test_bridge_entries_of_digits_are_author_ids_and_the_rest_names() -> None:
    bridge = BridgeAuthors.from_settings(["1192928016972513286", " Clan Chat ", "", "  "])
    assert bridge.ids == frozenset({1192928016972513286})
    assert bridge.names == frozenset({"clan chat"})


def test_the_bridge_matches_by_author_id_whatever_the_name() -> None:
    renamed = DiscordUser(id=BRIDGE_WEBHOOK_ID, username="Osrs clanchat", is_bot=True)
    assert BRIDGE.matches(renamed)
    assert not BRIDGE.matches(HUMAN)


def test_the_bridge_matches_a_username_exactly_ignoring_case() -> None:
    bridge = BridgeAuthors.from_settings(["clan chat"])
    assert bridge.matches(DiscordUser(id=9, username="Clan Chat"))
    assert not bridge.matches(DiscordUser(id=9, username="Clan Chatter"))
    assert not bridge.matches(DiscordUser(id=9, username="Clan"))


def test_the_bridge_name_is_compared_with_the_username_only() -> None:
    bridge = BridgeAuthors.from_settings(["Clan Chat"])
    imitator = DiscordUser(id=9, username="sneaky", global_name="Clan Chat", nickname="Clan Chat")
    assert not bridge.matches(imitator)


def test_no_bridge_matches_nobody() -> None:
    assert not NO_BRIDGE.matches(RELAY)
    assert not NO_BRIDGE.matches(DiscordUser(id=0, username=""))


# --- Discord messages ---


@pytest.mark.parametrize("message_type", [0, 19])
def test_a_human_writing_or_replying_is_chat(message_type: int) -> None:
    result = classify(message(HUMAN, type=message_type), BRIDGE)
    assert result.kind is MessageKind.CHAT
    assert result.kind.counts
    assert result.speaker is None


@pytest.mark.parametrize("author", [BOT, WEBHOOK], ids=["bot", "webhook"])
@pytest.mark.parametrize("message_type", [0, 19])
def test_bots_and_webhooks_other_than_the_bridge_are_bot_output(
    author: DiscordUser, message_type: int
) -> None:
    result = classify(message(author, type=message_type), BRIDGE)
    assert result.kind is MessageKind.BOT
    assert not result.kind.counts


def test_a_webhook_flag_alone_makes_bot_output() -> None:
    hook = DiscordUser(id=556, username="hook", is_bot=False, is_webhook=True)
    assert classify(message(hook), BRIDGE).kind is MessageKind.BOT


@pytest.mark.parametrize("message_type", [20, 23])
def test_command_responses_are_app_output(message_type: int) -> None:
    assert classify(message(BOT, type=message_type), BRIDGE).kind is MessageKind.APP


@pytest.mark.parametrize("message_type", [1, 6, 7, 8, 18, 21, 22, 24, 46, 13, 99, -1])
def test_every_other_type_known_or_not_is_system(message_type: int) -> None:
    result = classify(message(HUMAN, type=message_type), BRIDGE)
    assert result.kind is MessageKind.SYSTEM
    assert not result.kind.counts


# --- bridge messages ---


def test_a_relayed_chat_line_is_credited_to_the_in_game_speaker() -> None:
    result = classify(message(RELAY, ":Saviour: **Sea_Lark**: gz\\!"), BRIDGE)
    assert result.kind is MessageKind.BRIDGE_CHAT
    assert result.kind.counts
    assert result.speaker == OsrsSpeaker(name="Sea_Lark", normalized="sea lark")


def test_the_speakers_name_is_kept_unescaped_as_written() -> None:
    result = classify(message(RELAY, "**Sky\\-Fox**: hi"), BRIDGE)
    assert result.speaker == OsrsSpeaker(name="Sky-Fox", normalized="sky fox")


def test_a_relayed_line_by_an_impossible_name_counts_for_nobody() -> None:
    result = classify(message(RELAY, ":Owner: **This Name Is Far Too Long**: x"), BRIDGE)
    assert result.kind is MessageKind.BRIDGE_UNKNOWN
    assert result.speaker is None
    assert not result.kind.counts


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (
            "Bramble Knot has been invited into the clan by Fern Whistle\\.",
            MessageKind.BRIDGE_SYSTEM,
        ),
        ("Rookie Ned has left the clan\\.", MessageKind.BRIDGE_SYSTEM),
        ("Tide Pool has reached Slayer level 85\\.", MessageKind.BRIDGE_BROADCAST),
        ("welcome back everyone", MessageKind.BRIDGE_UNKNOWN),
        ("", MessageKind.BRIDGE_UNKNOWN),
    ],
)
def test_relayed_lines_that_are_not_chat_count_for_nobody(content: str, kind: MessageKind) -> None:
    result = classify(message(RELAY, content), BRIDGE)
    assert result.kind is kind
    assert result.speaker is None
    assert not result.kind.counts


def test_a_bridge_message_of_another_type_is_a_system_message() -> None:
    result = classify(message(RELAY, ":Owner: **Fern Whistle**: hi", type=7), BRIDGE)
    assert result.kind is MessageKind.SYSTEM


def test_a_bridge_configured_by_name_is_parsed_like_one_configured_by_id() -> None:
    by_name = BridgeAuthors.from_settings(["Clan Chat"])
    result = classify(message(RELAY, "**Rook**: hi"), by_name)
    assert result.speaker == OsrsSpeaker(name="Rook", normalized="rook")


def test_without_a_bridge_relayed_lines_are_plain_bot_output() -> None:
    assert classify(message(RELAY, "**Rook**: hi"), NO_BRIDGE).kind is MessageKind.BOT


def test_the_classification_keeps_the_message_itself() -> None:
    original = message(HUMAN)
    assert classify(original, BRIDGE).message is original


# --- the samples, message by message ---

C, S, B, A = MessageKind.CHAT, MessageKind.SYSTEM, MessageKind.BOT, MessageKind.APP
BC, BS, BB = MessageKind.BRIDGE_CHAT, MessageKind.BRIDGE_SYSTEM, MessageKind.BRIDGE_BROADCAST

EXPORT_EXPECTED: list[tuple[MessageKind, str | None]] = [
    (C, None),  # sign-ups
    (C, None),  # reply
    (C, None),
    (B, None),  # HeronBot embed
    (BC, "fern whistle"),
    (BC, "iron quill"),
    (BC, "marrow gate"),
    (BS, None),  # Bramble Knot invited
    (BC, "bramble knot"),
    (BB, None),  # collection log
    (BC, "sea lark"),
    (BB, None),  # level 85
    (BC, "tidepool"),
    (BC, "tide pool"),
    (BC, "rook"),
    (BC, "rookie ned"),
    (C, None),  # attachment
    (S, None),  # GuildMemberJoin
    (C, None),
    (S, None),  # ChannelPinnedMessage
    (A, None),  # /xp
    (C, None),  # reply to a deleted message
    (C, None),  # sticker only
    (C, None),  # attachment only
    (C, None),
    (C, None),  # forward
    (BC, "fern whistle"),
    (BS, None),  # Rookie Ned left
    (S, None),  # ThreadCreated
    (C, None),
]


def test_each_exported_sample_message_gets_its_kind_and_speaker() -> None:
    messages = [m for batch in open_export(DCE_GENERAL).batches() for m in batch]
    results = [classify(m, BRIDGE) for m in messages]
    actual = [(r.kind, r.speaker.normalized if r.speaker else None) for r in results]
    assert actual == EXPORT_EXPECTED


def test_the_exported_sample_counts_eleven_discord_messages_and_ten_in_game_lines() -> None:
    messages = [m for batch in open_export(DCE_GENERAL).batches() for m in batch]
    kinds = [classify(m, BRIDGE).kind for m in messages]
    assert sum(kind is C for kind in kinds) == 11
    assert sum(kind is BC for kind in kinds) == 10
    assert sum(kind.counts for kind in kinds) == 21


API_EXPECTED: list[tuple[MessageKind, str | None]] = [
    (A, None),  # /xp by marrowgate
    (B, None),  # HeronBot, empty content
    (BB, None),  # Iron Quill reached Slayer 90
    (C, None),  # edited
    (C, None),  # reply
    (C, None),  # attachment and reactions
    (S, None),  # USER_JOIN
    (BS, None),  # Pebble Brook invited
    (BC, "fern whistle"),
    (C, None),
]


def test_each_api_sample_message_gets_its_kind_and_speaker() -> None:
    payload = json.loads(API_MESSAGES_PAGE.read_text(encoding="utf-8"))
    messages = parse_messages(payload, "GET /channels/1188046507396431875/messages")
    results = [classify(m, BRIDGE) for m in messages]
    actual = [(r.kind, r.speaker.normalized if r.speaker else None) for r in results]
    assert actual == API_EXPECTED
