"""OSRS name normalization: the same keys Wise Old Man uses, and nothing looser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clanpulse.names import is_valid_osrs_name, normalize_osrs_name


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Fern Whistle", "fern whistle"),
        ("Sea_Lark", "sea lark"),
        ("Sea-Lark", "sea lark"),
        ("Fern\u00a0Whistle", "fern whistle"),
        ("Tide Pool", "tide pool"),
        ("Tidepool", "tidepool"),
        ("Sky-Fox", "sky fox"),
        ("Rookie Ned", "rookie ned"),
        (" Fern Whistle ", "fern whistle"),
    ],
)
def test_normalization_matches_the_spec_table(raw: str, normalized: str) -> None:
    assert normalize_osrs_name(raw) == normalized


def test_tide_pool_and_tidepool_stay_different_accounts() -> None:
    assert normalize_osrs_name("Tide Pool") != normalize_osrs_name("Tidepool")


def test_inner_spaces_are_neither_removed_nor_collapsed() -> None:
    assert normalize_osrs_name("Tide  Pool") == "tide  pool"
    assert normalize_osrs_name("Sea_-Lark") == "sea  lark"


def test_each_separator_becomes_exactly_one_space() -> None:
    assert normalize_osrs_name("a-_ b") == "a   b"


@pytest.mark.parametrize(
    "space",
    ["\t", "\n", "\u00a0", "\u2003", "\u202f", "\u3000", "\ufeff", "\u2028"],
    ids=["tab", "newline", "no-break", "em", "narrow-no-break", "ideographic", "bom", "line-sep"],
)
def test_unicode_whitespace_counts_as_a_separator(space: str) -> None:
    assert normalize_osrs_name(f"Iron{space}Quill") == "iron quill"


@pytest.mark.parametrize("char", ["\u200b", "\u0085", "\x1c"], ids=["zero-width", "nel", "fs"])
def test_characters_outside_wise_old_mans_whitespace_are_kept(char: str) -> None:
    # Wise Old Man's whitespace class does not contain these, so neither does ours: the
    # result keeps them and is therefore not a valid name.
    normalized = normalize_osrs_name(f"Iron{char}Quill")
    assert normalized == f"iron{char}quill"
    assert not is_valid_osrs_name(normalized)


def test_edges_are_trimmed_after_separators_become_spaces() -> None:
    assert normalize_osrs_name("_Rook-") == "rook"
    assert normalize_osrs_name("\u00a0Rook\t") == "rook"


@pytest.mark.parametrize(
    "name", ["a", "rook", "fern whistle", "tide  pool", "zezima123456", "1 2", "9"]
)
def test_valid_names(name: str) -> None:
    assert is_valid_osrs_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " rook",
        "rook ",
        "this name is far too long",
        "thirteen char",
        "Rook",
        "sea_lark",
        "sky-fox",
        "rook!",
        "rookié",
    ],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_osrs_name(name)


def test_twelve_characters_is_the_limit() -> None:
    assert is_valid_osrs_name("abcdefghijkl")
    assert not is_valid_osrs_name("abcdefghijklm")


NAME_CHARS = st.text(alphabet="abcXYZ019 _-", max_size=20)


@settings(max_examples=200)
@given(NAME_CHARS)
def test_ascii_names_normalize_by_plain_replacement(raw: str) -> None:
    expected = raw.replace("-", " ").replace("_", " ").strip(" ").lower()
    assert normalize_osrs_name(raw) == expected


@settings(max_examples=200)
@given(st.text(max_size=30))
def test_normalized_names_never_have_separators_or_edge_spaces(raw: str) -> None:
    normalized = normalize_osrs_name(raw)
    assert not normalized.startswith(" ")
    assert not normalized.endswith(" ")
    assert "-" not in normalized
    assert "_" not in normalized
    assert "\u00a0" not in normalized
