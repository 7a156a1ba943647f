"""The counting rules: what kind of message each chat message is, and whom it counts for.

Every source hands its messages to :func:`classify` before they are stored, so an API page,
an export file and a re-import all agree on what counts. Only :attr:`MessageKind.CHAT`
(credited to the Discord author) and :attr:`MessageKind.BRIDGE_CHAT` (credited to the in-game
speaker) count as chat.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from clanpulse.names import is_valid_osrs_name, normalize_osrs_name
from clanpulse.records import (
    ChatMessage,
    ClassifiedMessage,
    DiscordUser,
    MessageKind,
    OsrsSpeaker,
)
from clanpulse.sources.bridge import parse_bridge_line

DEFAULT_TYPE = 0
REPLY_TYPE = 19
APP_COMMAND_TYPES = frozenset({20, 23})  # slash command and context-menu command responses

_AUTHOR_ID = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class BridgeAuthors:
    """The Discord authors that relay in-game clan chat.

    Configure them by author id: a webhook's id is stable, its display name can be changed
    per post. A name is accepted too and matches the author's ``username`` exactly, ignoring
    case; names are stored case-folded.
    """

    ids: frozenset[int] = frozenset()
    names: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, entries: Iterable[str]) -> BridgeAuthors:
        """Build from the configured entries (``CLANPULSE_DISCORD_BRIDGE_AUTHORS``).

        An entry of digits only is an author id, anything else an author name.
        """
        ids: set[int] = set()
        names: set[str] = set()
        for entry in entries:
            value = entry.strip()
            if not value:
                continue
            if _AUTHOR_ID.fullmatch(value):
                ids.add(int(value))
            else:
                names.add(value.casefold())
        return cls(ids=frozenset(ids), names=frozenset(names))

    def matches(self, user: DiscordUser) -> bool:
        return user.id in self.ids or user.username.casefold() in self.names


NO_BRIDGE = BridgeAuthors()  # for communities without a relayed clan chat


def classify(message: ChatMessage, bridge: BridgeAuthors) -> ClassifiedMessage:
    """Apply the counting rules to one message.

    Bridge messages are taken apart by their content and credited to the in-game speaker when
    the line is chat by a valid OSRS name. Otherwise the Discord message type decides: Default
    and Reply are chat (or bot output when a bot or webhook wrote them), command responses are
    app output, and every other type, known or not, is a system message.
    """
    if bridge.matches(message.author):
        return _classify_bridge(message)
    if message.type in (DEFAULT_TYPE, REPLY_TYPE):
        by_machine = message.author.is_bot or message.author.is_webhook
        return ClassifiedMessage(message, MessageKind.BOT if by_machine else MessageKind.CHAT)
    if message.type in APP_COMMAND_TYPES:
        return ClassifiedMessage(message, MessageKind.APP)
    return ClassifiedMessage(message, MessageKind.SYSTEM)


def _classify_bridge(message: ChatMessage) -> ClassifiedMessage:
    # A join, pin or thread notice under the bridge account carries no relayed line.
    if message.type != DEFAULT_TYPE:
        return ClassifiedMessage(message, MessageKind.SYSTEM)
    line = parse_bridge_line(message.content)
    if line.kind == "chat" and line.name is not None:
        normalized = normalize_osrs_name(line.name)
        if is_valid_osrs_name(normalized):
            speaker = OsrsSpeaker(name=line.name, normalized=normalized)
            return ClassifiedMessage(message, MessageKind.BRIDGE_CHAT, speaker)
        # A bold name no OSRS account can have: keep the line, credit nobody.
        return ClassifiedMessage(message, MessageKind.BRIDGE_UNKNOWN)
    if line.kind == "system":
        return ClassifiedMessage(message, MessageKind.BRIDGE_SYSTEM)
    if line.kind == "broadcast":
        return ClassifiedMessage(message, MessageKind.BRIDGE_BROADCAST)
    return ClassifiedMessage(message, MessageKind.BRIDGE_UNKNOWN)
