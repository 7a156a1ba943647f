"""Relayed clan chat lines: which shape each line has and whose name it carries."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clanpulse.names import is_valid_osrs_name, normalize_osrs_name
from clanpulse.sources.bridge import (
    SYSTEM_PATTERNS,
    BridgeLine,
    parse_bridge_line,
    unescape_markdown,
)

# The test vectors of the bridge spec, section 6: content, kind, normalized name.
SPEC_VECTORS = [
    ("<:Owner:1> **Fern Whistle**: hi", "chat", "fern whistle"),
    (
        ":Deputy_owner::Ironman_chat_badge: **Iron Quill**: after my slayer task",
        "chat",
        "iron quill",
    ),
    (":Saviour: **Sea_Lark**: gz\\!", "chat", "sea lark"),
    (":Slayer: **Tide Pool**: \\*\\*finally\\*\\* 85 slayer", "chat", "tide pool"),
    (":Slayer: **Tidepool**: wrong tide pool lol", "chat", "tidepool"),
    (":Prospector: **Rookie Ned**: here\\!", "chat", "rookie ned"),
    ("**Rook**: no badge at all", "chat", "rook"),
    ("Bramble Knot has been invited into the clan by Fern Whistle\\.", "system", "bramble knot"),
    (
        "Iron Quill received a new collection log item\\: Bryophyta's essence \\(112/1699\\)",
        "broadcast",
        "iron quill",
    ),
    ("Tide Pool has reached Slayer level 85\\.", "broadcast", "tide pool"),
    ("Rookie Ned has left the clan\\.", "system", "rookie ned"),
    ("welcome back everyone", "unknown", None),
    (":Owner: **This Name Is Far Too Long**: x", "chat", "this name is far too long"),
]


@pytest.mark.parametrize(("content", "kind", "normalized"), SPEC_VECTORS)
def test_spec_vectors_have_the_expected_kind_and_name(
    content: str, kind: str, normalized: str | None
) -> None:
    line = parse_bridge_line(content)
    assert line.kind == kind
    if normalized is None:
        assert line.name is None
    else:
        assert line.name is not None
        assert normalize_osrs_name(line.name) == normalized


def test_an_overlong_bold_name_is_chat_but_not_a_valid_account() -> None:
    line = parse_bridge_line(":Owner: **This Name Is Far Too Long**: x")
    assert line == BridgeLine(kind="chat", name="This Name Is Far Too Long", text="x")
    assert not is_valid_osrs_name(normalize_osrs_name("This Name Is Far Too Long"))


def test_chat_text_is_unescaped() -> None:
    assert parse_bridge_line(":Saviour: **Sea_Lark**: gz\\!").text == "gz!"


def test_escaped_asterisks_in_the_text_are_text_not_a_second_name() -> None:
    line = parse_bridge_line(":Slayer: **Tide Pool**: \\*\\*finally\\*\\* 85 slayer")
    assert line == BridgeLine(kind="chat", name="Tide Pool", text="**finally** 85 slayer")


def test_a_bold_segment_later_in_the_line_is_never_a_speaker() -> None:
    line = parse_bridge_line("gz to **Iron Quill**: 99 slayer")
    assert line.kind == "unknown"
    assert line.name is None


def test_only_badges_may_precede_the_name() -> None:
    assert parse_bridge_line(":Owner: hey **Fern Whistle**: hi").kind == "unknown"
    assert parse_bridge_line("<@123> **Fern Whistle**: hi").kind == "unknown"


def test_the_first_bold_pair_after_the_badges_is_the_name() -> None:
    line = parse_bridge_line("**Rook**: **wow**: that")
    assert line == BridgeLine(kind="chat", name="Rook", text="**wow**: that")


@pytest.mark.parametrize(
    "content",
    [
        "<:Owner:1193146947997925383> **Fern Whistle**: event at 8",
        "<a:Owner:1193146947997925383> **Fern Whistle**: event at 8",
        ":Owner: **Fern Whistle**: event at 8",
        "<:Deputy_owner:1><:Ironman_chat_badge:2> **Fern Whistle**: event at 8",
        ":Deputy_owner::Ironman_chat_badge: **Fern Whistle**: event at 8",
        "<:Owner:1> :Hardcore_ironman_chat_badge: **Fern Whistle**: event at 8",
        "**Fern Whistle**: event at 8",
        "  :Owner: **Fern Whistle**: event at 8  ",
    ],
    ids=[
        "raw",
        "animated",
        "rendered",
        "raw-two-badges",
        "rendered-two-badges",
        "mixed",
        "none",
        "padded",
    ],
)
def test_every_badge_form_is_accepted(content: str) -> None:
    assert parse_bridge_line(content) == BridgeLine(
        kind="chat", name="Fern Whistle", text="event at 8"
    )


def test_chat_text_may_be_empty() -> None:
    assert parse_bridge_line(":Owner: **Rook**:") == BridgeLine(kind="chat", name="Rook", text="")


def test_names_keep_their_underscores_and_hyphens_raw() -> None:
    line = parse_bridge_line(":Zenyte: **Sky-Fox_2**: hi")
    assert line.name == "Sky-Fox_2"


def test_an_escaped_name_in_a_broadcast_is_unescaped_before_normalizing() -> None:
    line = parse_bridge_line("Sky\\-Fox received a drop\\: Dragon warhammer")
    assert line == BridgeLine(kind="broadcast", name="Sky-Fox")
    assert normalize_osrs_name("Sky-Fox") == "sky fox"


def test_invitation_names_the_subject_and_the_actor() -> None:
    line = parse_bridge_line("Bramble Knot has been invited into the clan by Fern Whistle\\.")
    assert line == BridgeLine(kind="system", name="Bramble Knot", actor="Fern Whistle")


def test_expulsion_names_the_subject_and_the_actor() -> None:
    line = parse_bridge_line("Sky\\-Fox has been expelled from the clan by Fern Whistle\\.")
    assert line == BridgeLine(kind="system", name="Sky-Fox", actor="Fern Whistle")


def test_leaving_has_a_subject_and_no_actor() -> None:
    line = parse_bridge_line("Rookie Ned has left the clan\\.")
    assert line == BridgeLine(kind="system", name="Rookie Ned", actor=None)


def test_system_sentences_match_without_the_escape_too() -> None:
    assert parse_bridge_line("Rookie Ned has left the clan.").kind == "system"


def test_system_wordings_are_configurable() -> None:
    kicked = re.compile(r"(?P<who>.+?) was kicked by (?P<by>.+?)\\?\.")
    line = parse_bridge_line(
        "Rook was kicked by Fern Whistle\\.", system_patterns=(*SYSTEM_PATTERNS, kicked)
    )
    assert line == BridgeLine(kind="system", name="Rook", actor="Fern Whistle")
    assert parse_bridge_line("Rook was kicked by Fern Whistle\\.").kind == "unknown"


@pytest.mark.parametrize(
    "content",
    [
        "Iron Quill received a new collection log item\\: Bryophyta's essence \\(112/1699\\)",
        "Iron Quill received a drop\\: Abyssal whip",
        "Iron Quill has reached Slayer level 90\\.",
        "Iron Quill has reached 50,000,000 XP in Slayer\\.",
        "Iron Quill has reached combat level 100\\.",
        "Iron Quill has reached a total level of 2000\\.",
        "Iron Quill has achieved a new Vorkath personal best\\: 1\\:02",
        "Iron Quill has completed a hard combat task\\: Whack-a-mole\\.",
    ],
)
def test_known_broadcasts_name_their_subject(content: str) -> None:
    assert parse_bridge_line(content) == BridgeLine(kind="broadcast", name="Iron Quill")


@pytest.mark.parametrize("content", ["", "   ", "\n\n", "welcome back everyone", "**", "****: x"])
def test_content_of_no_known_shape_names_nobody(content: str) -> None:
    assert parse_bridge_line(content) == BridgeLine(kind="unknown")


def test_a_bold_name_longer_than_forty_characters_is_not_a_name() -> None:
    assert parse_bridge_line(f"**{'x' * 41}**: hi").kind == "unknown"
    assert parse_bridge_line(f"**{'x' * 40}**: hi").kind == "chat"


def test_several_lines_are_attributed_by_the_first_non_empty_one() -> None:
    line = parse_bridge_line("\n  \n:Owner: **Fern Whistle**: first\n:Zenyte: **Rook**: second")
    assert line == BridgeLine(kind="chat", name="Fern Whistle", text="first")


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("gz\\!", "gz!"),
        ("\\(112/1699\\)", "(112/1699)"),
        ("a\\\\b", "a\\b"),
        ("\\\\\\.", "\\."),
        ("\\n stays", "\\n stays"),
        ("\\5 stays", "\\5 stays"),
        ("trailing\\", "trailing\\"),
        ("\\é", "\\é"),
        ("\\ ", " "),
    ],
)
def test_unescaping_drops_backslashes_before_non_alphanumerics_only(
    escaped: str, plain: str
) -> None:
    assert unescape_markdown(escaped) == plain


BADGE = st.from_regex(r"<a?:[A-Za-z_]{1,12}:[0-9]{1,19}>|:[A-Za-z_]{1,12}:", fullmatch=True)
NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _-]{0,10}[A-Za-z0-9]", fullmatch=True)
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc", "Zl", "Zp"]), max_size=60)


@settings(max_examples=200)
@given(st.lists(BADGE, max_size=3), NAME, TEXT)
def test_any_badges_name_and_text_round_trip(badges: list[str], name: str, text: str) -> None:
    escaped_text = re.sub(r"([^\w\s])", r"\\\1", text)
    line = parse_bridge_line(f"{''.join(badges)} **{name}**: {escaped_text}")
    assert line.kind == "chat"
    assert line.name == name
    assert line.text == text.rstrip()


@settings(max_examples=200)
@given(st.text(max_size=300))
def test_any_text_parses_to_a_line_without_raising(content: str) -> None:
    line = parse_bridge_line(content)
    assert line.kind in ("chat", "system", "broadcast", "unknown")
    if line.kind == "unknown":
        assert line == BridgeLine(kind="unknown")
    else:
        assert line.name is not None
