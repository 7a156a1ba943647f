"""In-game clan chat lines relayed into Discord by the clan-chat bridge.

The bridge posts every in-game line under one Discord author, so the speaker lives in the
text. :func:`parse_bridge_line` tells the four line shapes apart (chat, clan membership
sentence, achievement broadcast, anything else) and pulls out the names, unescaped. Turning a
name into an account key is :mod:`clanpulse.names`' job; deciding what counts is
:mod:`clanpulse.counting`'s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

BridgeLineKind = Literal["chat", "system", "broadcast", "unknown"]

# Only badges may come before the bold name, and the match is anchored at the start: a bold
# segment later in the line is text, never a second speaker. The relay escapes players' own
# asterisks (`\*\*wow\*\*`), so the first unescaped `**...**` is the name. Badges come as raw
# custom emoji (`<:Owner:123>`, `<a:Owner:123>`) or as rendered by an exporter (`:Owner:`).
_CHAT = re.compile(r"(?:(?:<a?:\w+:\d+>|:\w+:)\s*)*\*\*(?P<name>[^*\n]{1,40}?)\*\*:\s?(?P<text>.*)")

# Membership sentences. Only the invitation wording has been seen from the relay; the other
# two are the expected wordings, which is why callers may pass their own list. Each pattern
# names the subject `who` and, where there is one, the `by` actor.
SYSTEM_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?P<who>.+?) has been invited into the clan by (?P<by>.+?)\\?\."),
    re.compile(r"(?P<who>.+?) has left the clan\\?\."),
    re.compile(r"(?P<who>.+?) has been expelled from the clan by (?P<by>.+?)\\?\."),
)

_BROADCAST = re.compile(
    r"(?P<who>.+?) "
    r"(?:received a (?:new collection log item|drop)|has (?:reached|achieved|completed))\b"
)

# The relay puts a backslash before Markdown-special characters; a backslash before a letter
# or digit is not an escape and stays.
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class BridgeLine:
    """One relayed line, taken apart.

    ``name`` is the speaker (chat) or the subject (system, broadcast); ``actor`` is who invited
    or expelled the subject; ``text`` is what a speaker said. All are unescaped, none are
    normalized. Fields that do not apply to the kind are ``None``.
    """

    kind: BridgeLineKind
    name: str | None = None
    text: str | None = None
    actor: str | None = None


UNKNOWN_LINE = BridgeLine(kind="unknown")


def unescape_markdown(text: str) -> str:
    """Undo the relay's backslash escapes: ``\\X`` becomes ``X`` for any non-alphanumeric ``X``."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(_unescape_one, text)


def _unescape_one(match: re.Match[str]) -> str:
    char = match.group(1)
    return match.group(0) if char.isalnum() else char


def _attribution_line(content: str) -> str:
    # One Discord message is credited once, so a message holding several lines (not observed,
    # but possible) is attributed by its first non-empty line; the rest rides along as text of
    # the stored message.
    for line in content.splitlines():
        stripped = line.strip()
        if stripped:
            return stripped
    return ""


def parse_bridge_line(
    content: str, *, system_patterns: Sequence[re.Pattern[str]] = SYSTEM_PATTERNS
) -> BridgeLine:
    """Classify the content of one bridge message and extract its names.

    The shapes are tried in order: chat line (badges, bold name, text), membership sentence,
    achievement broadcast; content of no known shape is ``unknown`` and names nobody.
    """
    line = _attribution_line(content)
    if not line:
        return UNKNOWN_LINE

    chat = _CHAT.fullmatch(line)
    if chat is not None:
        return BridgeLine(
            kind="chat",
            name=unescape_markdown(chat["name"]),
            text=unescape_markdown(chat["text"]),
        )

    for pattern in system_patterns:
        system = pattern.fullmatch(line)
        if system is not None:
            groups = system.groupdict()
            actor = groups.get("by")
            return BridgeLine(
                kind="system",
                name=unescape_markdown(groups["who"]),
                actor=None if actor is None else unescape_markdown(actor),
            )

    broadcast = _BROADCAST.match(line)
    if broadcast is not None:
        return BridgeLine(kind="broadcast", name=unescape_markdown(broadcast["who"]))

    return UNKNOWN_LINE
