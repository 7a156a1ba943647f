"""A deterministic synthetic Discord community of an Old School RuneScape clan.

``generate_community`` builds a guild with channels, threads, members (humans and bots), an
in-game clan whose chat is relayed into a ``clan-chat`` channel by a webhook, and months of
message history. Every message is a Discord REST API v10 message object exactly as the API
returns it, so the fake Discord server can serve it and tests can compute what a correct
harvest must find from the same raw data. ``write_dce_export`` writes a channel the way
DiscordChatExporter does, for the import path.

The same seed and ``end`` always produce the same community. Message dicts are shared with
the fake server: treat them as read-only.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

import orjson

JSONDict = dict[str, Any]
_T = TypeVar("_T")

DISCORD_EPOCH_MS = 1420070400000
# Worker bits keep the two id sources apart: message-time ids come from one monotonic
# allocator, everything created before the history (users, channels, roles) from another.
_HISTORY_WORKER = 1
_STATIC_WORKER = 2

# Fixed ids so configuration written against one community works for every seed.
BRIDGE_WEBHOOK_ID = 1192928016972513286
BRIDGE_WEBHOOK_NAME = "Clan Chat"
REPORT_WEBHOOK_ID = 1201345678901234567

DAY_MS = 86_400_000


# --------------------------------------------------------------------------------------
# snowflakes and timestamps


def snowflake(unix_ms: int, *, worker: int = 0, process: int = 0, increment: int = 0) -> int:
    """The snowflake for ``unix_ms`` with the given low bits."""
    return (
        ((unix_ms - DISCORD_EPOCH_MS) << 22)
        | ((worker & 0x1F) << 17)
        | ((process & 0x1F) << 12)
        | (increment & 0xFFF)
    )


def snowflake_ms(snowflake_id: int) -> int:
    """Unix milliseconds embedded in a snowflake."""
    return (snowflake_id >> 22) + DISCORD_EPOCH_MS


_DAY_PREFIX: dict[int, str] = {}


def iso_ms(unix_ms: int) -> str:
    """Discord's timestamp format: UTC, microsecond digits, ``+00:00``."""
    # Formatting a datetime per message dominates generation time; the date part is
    # cached per day and the clock part is plain arithmetic.
    day, in_day = divmod(unix_ms, 86_400_000)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        prefix = f"{datetime.fromtimestamp(day * 86_400, UTC):%Y-%m-%d}T"
        if len(_DAY_PREFIX) < 100_000:
            _DAY_PREFIX[day] = prefix
    seconds, millis = divmod(in_day, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{prefix}{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}000+00:00"


def _to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return int(dt.timestamp() * 1000)


def _from_ms(unix_ms: int) -> datetime:
    return datetime.fromtimestamp(unix_ms / 1000, UTC)


class _IdAllocator:
    """Monotonic snowflakes for everything that happens during the history.

    Allocating in time order makes ids unique across the community and strictly increasing
    inside every channel; a clash inside one millisecond is resolved by the increment bits.
    """

    def __init__(self) -> None:
        self.last_ms = 0
        self.seq = -1

    def allocate(self, unix_ms: int) -> tuple[int, int]:
        """Return ``(id, ms)``; ``ms`` can be later than asked when time would go backwards."""
        if unix_ms < self.last_ms:
            unix_ms = self.last_ms
        if unix_ms == self.last_ms:
            self.seq += 1
            if self.seq > 0xFFF:
                unix_ms += 1
                self.seq = 0
        else:
            self.seq = 0
        self.last_ms = unix_ms
        return snowflake(unix_ms, worker=_HISTORY_WORKER, increment=self.seq), unix_ms


class _StaticIds:
    """Random-looking snowflakes at chosen past times, guaranteed unique."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[int] = {BRIDGE_WEBHOOK_ID, REPORT_WEBHOOK_ID}

    def make(self, unix_ms: int) -> int:
        while True:
            candidate = snowflake(
                unix_ms,
                worker=_STATIC_WORKER,
                process=self.rng.randrange(32),
                increment=self.rng.randrange(4096),
            )
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
            unix_ms += 1


# --------------------------------------------------------------------------------------
# word banks


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NAME_WORDS_A = _words(
    "fern marrow quill tide rook bramble pebble heron salt ash birch cinder dusk ember flint "
    "gale hazel iris juniper kestrel lumen moss nettle onyx pike quartz raven sage thorn umber "
    "vale willow yarrow zephyr otter lark wren finch badger stoat vole newt toad crane egret "
    "plover sorrel tansy clover basil fennel rowan alder cedar elm maple oak pine spruce yew "
    "slate cobalt copper amber jade ruby garnet opal pearl coral storm frost mist rain snow "
    "comet nova orbit pixel byte glitch turbo nitro echo delta sigma omega zeta kraken wyrm"
)
NAME_WORDS_B = _words(
    "gate whistle pool knot brook fall wood field stone hollow ridge mere ford wick smith "
    "wright born heart shade light fire song wing claw fang bane runner hunter seeker keeper"
)
_DISPLAY_EXTRA = ("Zoë", "Mårten", "Ren ✨", "Noé", "Łukasz", "Ana 🌿", "Kai", "Jo", "Sól")
_TRICKY_RSNS = (
    "Fern Whistle",
    "Iron Quill",
    "Tide Pool",
    "Tidepool",
    "Rook",
    "Rookie Ned",
    "Sea_Lark",
    "Sky-Fox",
    "Marrow Gate",
    "Q",
    "Zezima Fan 1",
    "x_Bramble_x",
)
_RANKS_STAFF = ("Deputy_owner", "Administrator")
_RANKS = ("Zenyte", "Onyx", "Dragonstone", "Saviour", "Slayer", "Prospector", "Short_Green_Guy")
_BADGES = ("Ironman_chat_badge", "Hardcore_ironman_chat_badge", "Group_ironman_chat_badge")
_BOSSES = (
    "Vorkath",
    "Zulrah",
    "Vardorvis",
    "Duke Sucellus",
    "the Leviathan",
    "the Whisperer",
    "Cerberus",
    "Corp",
    "Nex",
    "Nightmare",
    "Phantom Muspah",
    "Araxxor",
    "Hueycoatl",
    "Tormented Demons",
    "Scurrius",
    "Sarachnis",
    "Kree'arra",
    "Graardor",
    "Zilyana",
)
_RAIDS = ("CoX", "ToB", "ToA", "CoX CMs", "ToA 400s", "ToB HMT")
_ITEMS = (
    "Dragon warhammer",
    "Twisted bow",
    "Tumeken's shadow",
    "Scythe of vitur",
    "Bandos chestplate",
    "Abyssal whip",
    "Zenyte shard",
    "Dragon pickaxe",
    "Pet snakeling",
    "Vorkath's head",
    "Ancestral robe top",
    "Masori mask",
    "Venator shard",
    "Soulreaper axe",
    "Voidwaker blade",
    "Ranger boots",
    "Burning claws",
    "Dragon claws",
    "Elder maul",
    "Kodai insignia",
    "Dexterous prayer scroll",
    "Virtus mask",
    "Ultor vestige",
)
_SKILLS = (
    "Attack",
    "Strength",
    "Defence",
    "Ranged",
    "Prayer",
    "Magic",
    "Runecraft",
    "Construction",
    "Hitpoints",
    "Agility",
    "Herblore",
    "Thieving",
    "Crafting",
    "Fletching",
    "Slayer",
    "Hunter",
    "Mining",
    "Smithing",
    "Fishing",
    "Cooking",
    "Firemaking",
    "Woodcutting",
    "Farming",
)
_PLACES = ("the clan hall", "Ferox", "GE", "Zanaris", "Prif", "Varlamore", "the Fossil Island")
_TASK_TIERS = ("Easy", "Medium", "Hard", "Elite", "Master", "Grandmaster")
_TASKS = (
    "Perfect Vorkath",
    "Zulrah Speed-Chaser",
    "Why Are You Running?",
    "Hazard Prevention",
    "Dancing with Statues",
    "Nex Survivors",
    "Perfect Olm (Solo)",
    "Chally Time",
)

_UNICODE_EMOJI: dict[str, str] = {
    "👍": "thumbsup",
    "😂": "joy",
    "🔥": "fire",
    "✅": "white_check_mark",
    "👀": "eyes",
    "🎉": "tada",
    "😭": "sob",
    "💀": "skull",
    "🙏": "pray",
    "🪦": "headstone",
}

_GENERAL_LINES = (
    "anyone up for {activity}?",
    "gz on the {item}!",
    "just got {item} finally",
    "how much is {item} going for these days",
    "lf {n} more for {raid}",
    "brb dinner",
    "gn all",
    "morning all",
    "ty",
    "lol",
    "that's so rng",
    "{skill} grind is killing me",
    "99 {skill} soon 👀",
    "is {boss} worth it at {cb} cb?",
    "w{world} for the event",
    "who's hosting tonight?",
    "my {skill} is {lvl} now",
    "dry streak on {boss}: {kc} kc 😭",
    "same",
    "haha true",
    "nice",
    "rip",
    "gz!",
    "lmao 😂",
    "<:{emoji}:{emoji_id}>",
    "anyone know a good {skill} method?",
    "<@{mention}> you coming tonight?",
    "check <#{channel}> for the signups",
    "finally maxed 🎉",
    "back from holiday, what did I miss",
    "the new update is actually good",
    "is the wiki down for anyone else",
    "who wants to duo {boss}",
    "hcim status: gone 🪦",
    "{item} or {item2} first?",
)
_PVM_LINES = (
    "lf {boss} team",
    "{boss} kc {kc}, still no {item}",
    "need 1 more for {raid}",
    "mass at {hour}:00 utc",
    "gear check: {item} or {item2}?",
    "split was {mins}m, not bad",
    "anyone got a spare {item}?",
    "learner {raid} tonight, all welcome",
    "gz on the purple!! 🔥",
    "died at {boss} again 💀",
)
_SKILLING_LINES = (
    "{skill} {lvl} done",
    "best {skill} xp/h right now?",
    "afk {skill} while working",
    "{skill} pet finally!!",
    "halfway to 99 {skill}",
    "is {skill} worth boosting with spicy stew",
)
_EVENT_LINES = (
    "event tonight at {hour}:00 utc",
    "signups for {raid} are open",
    "bingo team {n} let's go",
    "who won last week?",
    "can someone host {boss} mass on sunday",
    "thanks for hosting, that was fun",
)
_COMMAND_LINES = ("/xp", "!kc {boss}", "!price {item}", "what's the command for ehp?")
_ANNOUNCE_LINES = (
    "**Clan event**: {raid} mass on Saturday at {hour}:00 UTC. Bring your friends! @everyone",
    "New ranks have been handed out, check your in-game rank and ping a deputy if it's wrong.",
    "Reminder: clan bingo starts this weekend, team signups in <#{channel}>.",
    "Congrats to everyone who maxed this month 🎉",
)
_CLANCHAT_LINES = (
    "gz",
    "gz!",
    "ty",
    "lf {boss}",
    "anyone w{world}?",
    "brb",
    "nice drop!",
    "lol",
    "gl",
    "how do i get to {place}?",
    "{skill} is so slow",
    "wildy trip anyone?",
    "hi",
    "gn",
    "**wow**",
    "sick",
    "ty all",
    "gz on {lvl} {skill}",
    "who's doing {raid}?",
    "hey all",
    "afk a bit",
    "anyone selling {item}?",
    "grats!",
    "finally :)",
    "omw",
    "1 sec",
    "(lol)",
    "ez",
    "$$$",
    "what world = event?",
    "#1 rng",
    "+1",
    "on my way - 2 min",
)
_STAFF_LINES = (
    "can we move the event to 20:00?",
    "who handles ranks this week",
    "bingo tiles draft is in the doc",
    "need a host for sunday",
)
_CHANNEL_LINES = {
    "general": _GENERAL_LINES,
    "pvm": _PVM_LINES,
    "skilling": _SKILLING_LINES,
    "events": _EVENT_LINES,
    "bot-commands": _COMMAND_LINES,
    "announcements": _ANNOUNCE_LINES,
}


# --------------------------------------------------------------------------------------
# public data model


@dataclass(slots=True)
class Member:
    """One guild member: a human or a bot, with what the generator decided about them."""

    user: JSONDict  # the API user object, shared by every message the member wrote
    nick: str | None  # guild nickname, visible only through the guild members endpoint
    roles: list[int]
    joined_at: datetime
    rsn: str | None = None  # in-game name, when the member plays in the clan
    weight: float = 0.0  # relative chattiness
    silent_from: datetime | None = None  # posts nothing from this moment on
    favourite: str | None = None  # channel name the member posts in most

    @property
    def id(self) -> int:
        return int(self.user["id"])

    @property
    def is_bot(self) -> bool:
        return bool(self.user.get("bot"))

    @property
    def display_name(self) -> str:
        """What the guild shows: nickname, else global name, else username."""
        return str(self.nick or self.user.get("global_name") or self.user["username"])


@dataclass(slots=True)
class InGamePlayer:
    """An in-game clan member whose chat the bridge relays."""

    name: str  # as displayed in game (1-12 of [A-Za-z0-9 _-])
    rank: str  # clan rank, shown as the rank badge emoji
    badge: str | None  # account-type badge emoji name, if any
    user_id: int | None  # the Discord member who plays it, if any
    weight: float = 0.0
    invited_at: datetime | None = None  # invited during the history (a system line)
    left_at: datetime | None = None  # left during the history (a system line)
    silent_from: datetime | None = None


@dataclass(slots=True)
class _Stream:
    """Where generated traffic goes: one channel or thread and what kind of talk it gets."""

    name: str
    kind: str  # chat, bridge, commands, events, announcements, staff
    weight: float
    start_ms: int
    end_ms: int
    channel_id: int = 0  # threads get theirs when the creation event runs
    thread: JSONDict | None = None
    creator: Member | None = None


@dataclass
class Community:
    """A generated guild with its channels, members and message history."""

    seed: int
    guild_id: int
    guild_name: str
    start: datetime
    end: datetime
    guild: JSONDict
    roles: list[JSONDict]
    members: list[Member]
    ingame_players: list[InGamePlayer]
    webhook_user: JSONDict
    bridge_channel_id: int
    voice_channel_id: int
    report_channel_id: int
    command_bot_id: int
    embed_bot_id: int
    emojis: dict[str, int]  # custom emoji name -> id (rank badges and the guild's own)
    _channels: dict[int, JSONDict] = field(repr=False)
    _messages: dict[int, list[JSONDict]] = field(repr=False)
    _ids: dict[int, list[int]] = field(repr=False)
    _allocator: _IdAllocator = field(repr=False)
    _live_rng: random.Random = field(repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- channels ---------------------------------------------------------------------

    @property
    def webhook_id(self) -> int:
        return int(self.webhook_user["id"])

    @property
    def forbidden_channel_ids(self) -> frozenset[int]:
        """Channels whose history the bot may not read (the fake answers 403)."""
        return frozenset({self.voice_channel_id})

    def all_channels(self) -> list[JSONDict]:
        """Every channel object, threads included, in creation (id) order."""
        with self.lock:
            return [dict(c) for _, c in sorted(self._channels.items())]

    def guild_channels(self) -> list[JSONDict]:
        """What ``GET /guilds/{id}/channels`` lists: every channel except threads."""
        return [c for c in self.all_channels() if c["type"] not in (10, 11, 12)]

    def threads(self) -> list[JSONDict]:
        return [c for c in self.all_channels() if c["type"] in (10, 11, 12)]

    def channel(self, channel_id: int) -> JSONDict | None:
        with self.lock:
            found = self._channels.get(channel_id)
            return dict(found) if found is not None else None

    def channel_by_name(self, name: str) -> JSONDict:
        for candidate in self.all_channels():
            if candidate["name"] == name:
                return candidate
        raise KeyError(name)

    def message_channel_ids(self) -> list[int]:
        """Channels and threads that hold generated history."""
        with self.lock:
            return sorted(cid for cid, ids in self._ids.items() if ids)

    # -- messages ---------------------------------------------------------------------

    def channel_messages(self, channel_id: int) -> list[JSONDict]:
        """Messages of one channel or thread, ascending by id (a snapshot list)."""
        with self.lock:
            return list(self._messages.get(channel_id, ()))

    def message_ids(self, channel_id: int) -> list[int]:
        with self.lock:
            return list(self._ids.get(channel_id, ()))

    def page(
        self,
        channel_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
        limit: int = 50,
    ) -> list[JSONDict]:
        """One page of history exactly as the messages endpoint orders it (newest first)."""
        with self.lock:
            ids = self._ids.get(channel_id, [])
            messages = self._messages.get(channel_id, [])
            if after is not None:
                lo = bisect.bisect_right(ids, after)
                chunk = messages[lo : lo + limit]
            elif around is not None:
                centre = bisect.bisect_left(ids, around)
                lo = max(0, centre - limit // 2)
                chunk = messages[lo : lo + limit]
            else:
                hi = len(ids) if before is None else bisect.bisect_left(ids, before)
                chunk = messages[max(0, hi - limit) : hi]
        chunk.reverse()
        return chunk

    def total_messages(self) -> int:
        with self.lock:
            return sum(len(v) for v in self._messages.values())

    def iter_messages(self) -> Iterator[JSONDict]:
        """Every message of every channel (channel by channel, each ascending)."""
        for channel_id in self.message_channel_ids():
            yield from self.channel_messages(channel_id)

    def find_message(self, message_id: int) -> JSONDict | None:
        with self.lock:
            for channel_id, ids in self._ids.items():
                index = bisect.bisect_left(ids, message_id)
                if index < len(ids) and ids[index] == message_id:
                    return self._messages[channel_id][index]
        return None

    # -- members ----------------------------------------------------------------------

    @property
    def humans(self) -> list[Member]:
        return [m for m in self.members if not m.is_bot]

    def member(self, user_id: int) -> Member | None:
        for candidate in self.members:
            if candidate.id == user_id:
                return candidate
        return None

    def members_payload(self) -> list[JSONDict]:
        """Guild member objects as ``GET /guilds/{id}/members`` returns them, by user id."""
        return [_member_object(m) for m in sorted(self.members, key=lambda m: m.id)]

    # -- live data --------------------------------------------------------------------

    def next_id(self, at: datetime | None = None) -> tuple[int, datetime]:
        """A fresh snowflake after every id handed out so far, and the instant it encodes."""
        with self.lock:
            when = _to_ms(at) if at is not None else _to_ms(datetime.now(UTC))
            new_id, when = self._allocator.allocate(when)
            return new_id, _from_ms(when)

    def append_raw(self, message: JSONDict) -> None:
        """Store a ready message object (its id from ``next_id``) at the end of its channel."""
        with self.lock:
            channel_id = int(message["channel_id"])
            channel = self._channels.get(channel_id)
            if channel is None:
                raise KeyError(f"unknown channel {channel_id}")
            ids = self._ids.setdefault(channel_id, [])
            message_id = int(message["id"])
            if ids and message_id <= ids[-1]:
                raise ValueError("message ids must grow within a channel")
            self._messages.setdefault(channel_id, []).append(message)
            ids.append(message_id)
            channel["last_message_id"] = str(message_id)
            if "message_count" in channel:
                channel["message_count"] += 1
                channel["total_message_sent"] += 1

    def append_message(
        self,
        channel_id: int,
        content: str | None = None,
        *,
        author_id: int | None = None,
        at: datetime | None = None,
        reply_to: int | None = None,
    ) -> JSONDict:
        """Add a new message to a channel (thread-safe) and return it.

        Without ``content`` the text fits the channel (a relayed in-game line in the bridge
        channel). Without ``author_id`` a member is picked (the webhook in the bridge
        channel). ``at`` defaults to now; the id always lands after every existing one.
        """
        with self.lock:
            channel = self._channels.get(channel_id)
            if channel is None:
                raise KeyError(f"unknown channel {channel_id}")
            rng = self._live_rng
            when = _to_ms(at) if at is not None else _to_ms(datetime.now(UTC))
            message_id, when = self._allocator.allocate(when)
            is_bridge = channel_id == self.bridge_channel_id
            if author_id is None:
                author = self.webhook_user if is_bridge else rng.choice(self.humans).user
            elif author_id == self.webhook_id:
                author = self.webhook_user
            else:
                found = self.member(author_id)
                if found is None:
                    raise KeyError(f"unknown member {author_id}")
                author = found.user
            if content is None:
                if author is self.webhook_user:
                    players = [p for p in self.ingame_players if p.left_at is None]
                    content = _bridge_chat_line(rng, rng.choice(players), self.emojis)
                else:
                    content = _fill(rng, rng.choice(_GENERAL_LINES), _LiveContext(self))
            extra: JSONDict = {}
            message_type = 0
            if author is self.webhook_user:
                extra["webhook_id"] = str(self.webhook_id)
            if reply_to is not None:
                target = self.find_message(reply_to)
                message_type = 19
                extra["message_reference"] = {
                    "type": 0,
                    "channel_id": str(channel_id),
                    "message_id": str(reply_to),
                    "guild_id": str(self.guild_id),
                }
                extra["referenced_message"] = None if target is None else _without_reference(target)
            message = _message(
                message_type, content, message_id, channel_id, author, iso_ms(when), extra
            )
            self._messages.setdefault(channel_id, []).append(message)
            self._ids.setdefault(channel_id, []).append(message_id)
            channel["last_message_id"] = str(message_id)
            if "message_count" in channel:
                message["position"] = channel["total_message_sent"]
                channel["message_count"] += 1
                channel["total_message_sent"] += 1
            return message


class _LiveContext:
    """Template values for live messages (the generator has its own richer context)."""

    def __init__(self, community: Community) -> None:
        self.community = community

    def mention(self, rng: random.Random) -> int:
        return rng.choice(self.community.humans).id

    def channel(self, rng: random.Random) -> int:
        return int(rng.choice(self.community.guild_channels())["id"])

    def emoji(self, rng: random.Random) -> tuple[str, int]:
        return "heronhype", self.community.emojis["heronhype"]


# --------------------------------------------------------------------------------------
# object builders


def _user_object(
    user_id: int,
    username: str,
    *,
    global_name: str | None,
    discriminator: str,
    avatar: str | None,
    bot: bool = False,
) -> JSONDict:
    user: JSONDict = {
        "id": str(user_id),
        "username": username,
        "avatar": avatar,
        "discriminator": discriminator,
        "public_flags": 0,
        "flags": 0,
    }
    if bot:
        user["bot"] = True
    user["global_name"] = global_name
    return user


def _member_object(member: Member) -> JSONDict:
    return {
        "avatar": None,
        "banner": None,
        "communication_disabled_until": None,
        "flags": 0,
        "joined_at": member.joined_at.isoformat(timespec="microseconds"),
        "nick": member.nick,
        "pending": False,
        "premium_since": None,
        "roles": [str(r) for r in member.roles],
        "user": dict(member.user),
        "mute": False,
        "deaf": False,
    }


def _message(
    message_type: int,
    content: str,
    message_id: int,
    channel_id: int,
    author: JSONDict,
    timestamp: str,
    extra: JSONDict | None = None,
    *,
    mentions: list[JSONDict] | None = None,
    attachments: list[JSONDict] | None = None,
    embeds: list[JSONDict] | None = None,
    edited: str | None = None,
) -> JSONDict:
    # Key order follows what the API sends, so dumps look like the real thing.
    message: JSONDict = {
        "type": message_type,
        "content": content,
        "mentions": mentions if mentions is not None else [],
        "mention_roles": [],
        "attachments": attachments if attachments is not None else [],
        "embeds": embeds if embeds is not None else [],
        "timestamp": timestamp,
        "edited_timestamp": edited,
        "flags": 0,
        "components": [],
        "id": str(message_id),
        "channel_id": str(channel_id),
        "author": author,
        "pinned": False,
        "mention_everyone": False,
        "tts": False,
    }
    if extra:
        message.update(extra)
    return message


def _pick(rng: random.Random, items: list[_T], cum: list[float]) -> _T:
    """A weighted pick from precomputed cumulative weights (much cheaper than choices)."""
    return items[bisect.bisect(cum, rng.random() * cum[-1], 0, len(cum) - 1)]


def _without_reference(target: JSONDict) -> JSONDict:
    # referenced_message is one level deep: the target's own target is not embedded.
    if "referenced_message" not in target:
        return target
    return {k: v for k, v in target.items() if k != "referenced_message"}


_ESCAPED = set("\\.!?:()-#+*<$=")


def bridge_escape(text: str) -> str:
    """Backslash-escape the characters the clan chat relay escapes."""
    return "".join("\\" + ch if ch in _ESCAPED else ch for ch in text)


def _badges(player: InGamePlayer, emojis: dict[str, int]) -> str:
    out = f"<:{player.rank}:{emojis[player.rank]}>"
    if player.badge:
        out += f"<:{player.badge}:{emojis[player.badge]}>"
    return out


def _bridge_chat_line(rng: random.Random, player: InGamePlayer, emojis: dict[str, int]) -> str:
    text = rng.choice(_CLANCHAT_LINES)
    if "{" in text:
        text = text.format(
            boss=rng.choice(_BOSSES),
            world=rng.randrange(301, 580),
            place=rng.choice(_PLACES),
            skill=rng.choice(_SKILLS),
            lvl=rng.randrange(60, 100),
            raid=rng.choice(_RAIDS),
            item=rng.choice(_ITEMS),
        )
    # the bold name is the only unescaped ** pair; the name itself keeps _ and - as typed
    return f"{_badges(player, emojis)} **{player.name}**: {bridge_escape(text)}"


def _broadcast_line(rng: random.Random, player: InGamePlayer) -> str:
    name = bridge_escape(player.name)
    roll = rng.random()
    if roll < 0.3:
        item = rng.choice(_ITEMS)
        coins = rng.randrange(50_000, 90_000_000)
        return f"{name} received a drop\\: {bridge_escape(f'{item} ({coins:,} coins)')}\\."
    if roll < 0.55:
        return f"{name} has reached {rng.choice(_SKILLS)} level {rng.randrange(70, 100)}\\."
    if roll < 0.75:
        item = rng.choice(_ITEMS)
        count = rng.randrange(100, 1500)
        return (
            f"{name} received a new collection log item\\: "
            f"{bridge_escape(f'{item} ({count}/1699)')}"
        )
    if roll < 0.85:
        tier = rng.choice(_TASK_TIERS)
        task = bridge_escape(rng.choice(_TASKS))
        return f"{name} has completed a {tier} combat task\\: {task}\\."
    if roll < 0.93:
        boss = rng.choice(_BOSSES)
        minutes, seconds = rng.randrange(0, 40), rng.randrange(0, 60)
        return f"{name} has achieved a new {boss} personal best\\: {minutes}\\:{seconds:02d}"
    return f"{name} has reached a total level of {rng.randrange(1500, 2278)}\\."


# --------------------------------------------------------------------------------------
# generator


class _Gen:
    """All the generator state; ``finish`` returns the finished community."""

    def __init__(self, seed: int, members: int, days: int, end: datetime, per_day: int) -> None:
        if members < 12:
            # the tricky in-game names and the staff need this many members
            raise ValueError("members must be at least 12")
        if days < 1:
            raise ValueError("days must be at least 1")
        self.rng = random.Random(seed)
        self.seed = seed
        self.member_count = members
        self.days = days
        self.per_day = per_day
        self.end = end
        self.end_ms = _to_ms(end)
        self.start_ms = self.end_ms - days * DAY_MS
        self.static = _StaticIds(random.Random(seed ^ 0x5EED))
        self.alloc = _IdAllocator()
        self.channels: dict[int, JSONDict] = {}
        self.messages: dict[int, list[JSONDict]] = {}
        self.ids: dict[int, list[int]] = {}
        self.recent: dict[int, list[JSONDict]] = {}
        self.emojis: dict[str, int] = {}
        self.usernames: set[str] = set()

    # -- static objects ------------------------------------------------------------

    def _past_ms(self, lo_year: int, hi_ms: int | None = None) -> int:
        lo = _to_ms(datetime(lo_year, 1, 1, tzinfo=UTC))
        hi = hi_ms if hi_ms is not None else self.start_ms - 30 * DAY_MS
        return self.rng.randrange(lo, max(lo + 1, hi))

    def build_guild(self) -> None:
        rng = self.rng
        created = self._past_ms(2019, _to_ms(datetime(2020, 1, 1, tzinfo=UTC)))
        self.guild_id = snowflake(created, worker=_STATIC_WORKER, increment=7)
        self.static.used.add(self.guild_id)
        self.guild_name = "Iron Lanterns"
        role_specs = [
            ("Clan Owner", 0xE67E22, 7),
            ("Deputy", 0x9B59B6, 6),
            ("Bots", 0x95A5A6, 5),
            ("Event Host", 0x1ABC9C, 4),
            ("PvMer", 0xC0392B, 3),
            ("Member", 0x3498DB, 2),
            ("Recruit", 0x2ECC71, 1),
        ]
        self.roles: list[JSONDict] = [
            {"id": str(self.guild_id), "name": "@everyone", "color": 0, "position": 0}
        ]
        self.role_ids: dict[str, int] = {}
        for name, color, position in role_specs:
            role_id = self.static.make(created + rng.randrange(1, 10 * DAY_MS))
            self.role_ids[name] = role_id
            self.roles.append(
                {"id": str(role_id), "name": name, "color": color, "position": position}
            )
        for name in (*_RANKS_STAFF, *_RANKS, "Owner", "Recruit", *_BADGES, "heronhype", "gz"):
            self.emojis[name] = self.static.make(self._past_ms(2021))
        self.sticker_id = self.static.make(self._past_ms(2022))
        self.guild = {
            "id": str(self.guild_id),
            "name": self.guild_name,
            "icon": hashlib.md5(b"guild").hexdigest(),
            "owner_id": "0",
            "roles": self.roles,
            "emojis": [
                {"id": str(i), "name": n, "animated": False, "available": True}
                for n, i in self.emojis.items()
            ],
            "features": ["COMMUNITY", "NEWS"],
            "preferred_locale": "en-US",
        }

    def _channel(
        self,
        name: str,
        channel_type: int,
        position: int,
        parent: int | None,
        topic: str | None = None,
    ) -> int:
        channel_id = self.static.make(self._past_ms(2020))
        channel: JSONDict = {
            "id": str(channel_id),
            "type": channel_type,
            "flags": 0,
            "guild_id": str(self.guild_id),
            "name": name,
            "parent_id": str(parent) if parent is not None else None,
            "position": position,
            "permission_overwrites": [],
        }
        if channel_type in (0, 2, 5, 15):
            channel["last_message_id"] = None
            channel["rate_limit_per_user"] = 0
            channel["nsfw"] = False
        if channel_type in (0, 5, 15):
            channel["topic"] = topic
        if channel_type == 2:
            channel.update({"bitrate": 64000, "user_limit": 0, "rtc_region": None})
        if channel_type == 15:
            channel.update(
                {
                    "available_tags": [
                        {
                            "id": str(self.static.make(self._past_ms(2022))),
                            "name": tag,
                            "moderated": False,
                            "emoji_id": None,
                            "emoji_name": None,
                        }
                        for tag in ("Guide", "Question", "Gear")
                    ],
                    "default_reaction_emoji": None,
                    "default_sort_order": None,
                    "default_forum_layout": 1,
                }
            )
        self.channels[channel_id] = channel
        return channel_id

    def build_channels(self) -> None:
        info = self._channel("Information", 4, 0, None)
        clan = self._channel("Clan", 4, 1, None)
        voice_cat = self._channel("Voice", 4, 2, None)
        self.ch: dict[str, int] = {
            "announcements": self._channel(
                "announcements", 5, 0, info, "Clan news. Events, ranks, bingo."
            ),
            "general": self._channel("general", 0, 0, clan, "Clan chatter. Be nice."),
            "pvm": self._channel("pvm", 0, 1, clan, "Bossing, raids, splits."),
            "skilling": self._channel("skilling", 0, 2, clan, None),
            "events": self._channel("events", 0, 3, clan, "Clan events and signups."),
            "clan-chat": self._channel(
                "clan-chat", 0, 4, clan, "In-game clan chat, relayed. Read only."
            ),
            "bot-commands": self._channel("bot-commands", 0, 5, clan, None),
            "pvm-guides": self._channel("pvm-guides", 15, 6, clan, "Guides and questions."),
            "reports": self._channel("reports", 0, 7, clan, "Activity reports."),
            "Hangout": self._channel("Hangout", 2, 0, voice_cat, None),
        }

    def _username(self, legacy: bool) -> str:
        rng = self.rng
        while True:
            a, b = rng.choice(NAME_WORDS_A), rng.choice(NAME_WORDS_B)
            style = rng.randrange(9)
            if legacy:
                name = f"{a.capitalize()}{b.capitalize()}"
            elif style == 0:
                name = f"{a}{b}"
            elif style == 1:
                name = f"{a}_{b}"
            elif style == 2:
                name = f"{a}.{b}"
            elif style == 3:
                name = f"{a}{b}{rng.randrange(1, 999)}"
            elif style == 4:
                name = f"{a}_osrs"
            elif style == 5:
                name = f"xx{a}xx"
            elif style == 6:
                name = f"the{a}{b}"
            elif style == 7:
                name = f"{a}{rng.randrange(10, 99)}"
            else:
                name = f"{a}.{rng.randrange(1990, 2010)}"
            if name.lower() not in self.usernames:
                self.usernames.add(name.lower())
                return name

    def _rsn(self, taken: set[str]) -> str:
        rng = self.rng
        while True:
            a, b = rng.choice(NAME_WORDS_A).capitalize(), rng.choice(NAME_WORDS_B).capitalize()
            style = rng.randrange(8)
            if style == 0:
                name = f"{a} {b}"
            elif style == 1:
                name = f"{a}{b}"
            elif style == 2:
                name = f"{a}_{b}"
            elif style == 3:
                name = f"{a}-{b}"
            elif style == 4:
                name = f"{a}{rng.randrange(1, 999)}"
            elif style == 5:
                name = f"Iron {a}"
            elif style == 6:
                name = f"Gim {a}"
            else:
                name = f"{a} btw"
            normal = normalize_rsn(name)
            if len(name) <= 12 and normal not in taken:
                taken.add(normal)
                return name

    def build_members(self) -> None:
        rng = self.rng
        humans: list[Member] = []
        taken_rsn = {normalize_rsn(name) for name in _TRICKY_RSNS}
        tricky = list(_TRICKY_RSNS)
        day_ms = DAY_MS
        for index in range(self.member_count):
            legacy = index in (3, 17)
            username = self._username(legacy)
            # most members joined long before the history; some during it, some very recently
            roll = rng.random()
            if index == 0 or roll < 0.82:
                joined_ms = self._past_ms(2020)
            elif roll < 0.92:
                joined_ms = (
                    rng.randrange(self.start_ms, self.end_ms - 30 * day_ms)
                    if (self.days > 31)
                    else rng.randrange(self.start_ms, self.end_ms)
                )
            else:
                joined_ms = rng.randrange(
                    max(self.start_ms, self.end_ms - 25 * day_ms), self.end_ms - day_ms // 2
                )
            created_ms = min(joined_ms - rng.randrange(day_ms, 800 * day_ms), joined_ms - day_ms)
            created_ms = max(created_ms, _to_ms(datetime(2015, 6, 1, tzinfo=UTC)))
            user_id = self.static.make(created_ms)
            global_name: str | None = None
            g_roll = rng.random()
            if g_roll < 0.35:
                global_name = username.split(".")[0].split("_")[0].capitalize()
            elif g_roll < 0.5:
                global_name = f"{rng.choice(NAME_WORDS_A).capitalize()} {rng.choice(NAME_WORDS_B)}"
            elif g_roll < 0.56:
                global_name = rng.choice(_DISPLAY_EXTRA)
            avatar = hashlib.md5(username.encode()).hexdigest() if rng.random() < 0.7 else None
            discriminator = f"{rng.randrange(1, 10000):04d}" if legacy else "0"
            user = _user_object(
                user_id,
                username,
                global_name=global_name,
                discriminator=discriminator,
                avatar=avatar,
            )
            rsn: str | None = None
            if tricky:
                rsn = tricky.pop(0)
            elif rng.random() < 0.85:
                rsn = self._rsn(taken_rsn)
            nick: str | None = None
            n_roll = rng.random()
            if index == 0:
                nick = "Fern (Owner)"
            elif rsn and n_roll < 0.2:
                nick = rsn
            elif n_roll < 0.3:
                nick = f"{global_name or username} | {rsn or 'guest'}"
            # activity: heavy-tailed, a fifth never speak, a few are very loud
            weight = 0.0 if rng.random() < 0.2 else min(rng.paretovariate(1.15), 60.0)
            if index < 12:
                weight = max(weight, 3.0 + rng.random() * 4)  # tricky names must show up
            if index in (1, 2, 5):
                weight = 40.0 + index  # the few members who never stop typing
            silent_from: datetime | None = None
            if index >= 12 and rng.random() < 0.12 and weight > 0:
                cutoff = self.end_ms - 31 * day_ms
                silent_ms = (
                    rng.randrange(self.start_ms, cutoff)
                    if cutoff > self.start_ms
                    else self.start_ms
                )
                silent_from = _from_ms(silent_ms)
            roles = [self.role_ids["Member"]]
            if index == 0:
                roles = [self.role_ids["Clan Owner"], self.role_ids["Member"]]
            elif index in (1, 2, 4):
                roles = [self.role_ids["Deputy"], self.role_ids["Member"]]
            elif joined_ms > self.end_ms - 30 * day_ms:
                roles = [self.role_ids["Recruit"]]
            if rng.random() < 0.25:
                roles.append(self.role_ids["PvMer"])
            if rng.random() < 0.05:
                roles.append(self.role_ids["Event Host"])
            favourite = rng.choice(("general", "general", "pvm", "skilling", "events"))
            humans.append(
                Member(user, nick, roles, _from_ms(joined_ms), rsn, weight, silent_from, favourite)
            )
        self.humans = humans
        self.staff = [humans[i] for i in (0, 1, 2, 4)]
        self.guild["owner_id"] = humans[0].user["id"]
        bot_joined = _from_ms(self._past_ms(2021))
        self.command_bot = Member(
            _user_object(
                self.static.make(self._past_ms(2020)),
                "Lanternbot",
                global_name=None,
                discriminator="8265",
                avatar=hashlib.md5(b"lb").hexdigest(),
                bot=True,
            ),
            None,
            [self.role_ids["Bots"]],
            bot_joined,
        )
        self.embed_bot = Member(
            _user_object(
                self.static.make(self._past_ms(2020)),
                "Town Crier",
                global_name=None,
                discriminator="1914",
                avatar=hashlib.md5(b"tc").hexdigest(),
                bot=True,
            ),
            None,
            [self.role_ids["Bots"]],
            bot_joined,
        )
        self.webhook_user = _user_object(
            BRIDGE_WEBHOOK_ID,
            BRIDGE_WEBHOOK_NAME,
            global_name=None,
            discriminator="0000",
            avatar=hashlib.md5(b"cc").hexdigest(),
            bot=True,
        )

    def build_ingame(self) -> None:
        rng = self.rng
        players: list[InGamePlayer] = []
        # keeps membership changes clear of the history's edges, even for one-day histories
        pad = min(DAY_MS // 2, (self.end_ms - self.start_ms) // 4)
        taken = {normalize_rsn(m.rsn) for m in self.humans if m.rsn}
        for index, member in enumerate(self.humans):
            if not member.rsn:
                continue
            rank = (
                "Owner"
                if index == 0
                else ("Deputy_owner" if member in self.staff else rng.choice(_RANKS))
            )
            if member.joined_at > _from_ms(self.end_ms - 30 * DAY_MS):
                rank = "Recruit"
            badge = rng.choice(_BADGES) if rng.random() < 0.18 else None
            if member.rsn == "Iron Quill":
                badge = "Ironman_chat_badge"
            weight = 0.5 * member.weight + (rng.paretovariate(1.3) if rng.random() < 0.8 else 0)
            invited = member.joined_at if member.joined_at > _from_ms(self.start_ms) else None
            players.append(
                InGamePlayer(
                    member.rsn, rank, badge, member.id, weight, invited, None, member.silent_from
                )
            )
        # clan members who never joined the Discord server
        for _ in range(max(8, self.member_count // 8)):
            name = self._rsn(taken)
            invited = None
            if rng.random() < 0.25:
                invited = _from_ms(rng.randrange(self.start_ms, self.end_ms - pad))
            players.append(
                InGamePlayer(name, rng.choice(_RANKS), None, None, rng.paretovariate(1.3), invited)
            )
        # a few leave during the history and never speak again
        for player in rng.sample(players[12:], k=min(3, max(0, len(players) - 12))):
            left = rng.randrange(self.start_ms + pad, self.end_ms - pad)
            if player.invited_at is None or _to_ms(player.invited_at) < left:
                player.left_at = _from_ms(left)
        self.players = players

    # -- traffic ------------------------------------------------------------------

    def build_streams(self) -> None:
        span = self.end_ms - self.start_ms

        def frac(f: float) -> int:
            return self.start_ms + int(span * f)

        full = (self.start_ms, self.end_ms)
        ch = self.ch
        self.streams: list[_Stream] = [
            _Stream("general", "chat", 30, *full, channel_id=ch["general"]),
            _Stream("clan-chat", "bridge", 28, *full, channel_id=ch["clan-chat"]),
            _Stream("pvm", "chat", 12, *full, channel_id=ch["pvm"]),
            _Stream("skilling", "chat", 6, *full, channel_id=ch["skilling"]),
            _Stream("events", "events", 5, *full, channel_id=ch["events"]),
            _Stream("bot-commands", "commands", 6, *full, channel_id=ch["bot-commands"]),
            _Stream("announcements", "announcements", 0.4, *full, channel_id=ch["announcements"]),
        ]
        # (name, parent, type, start, end, archived, weight)
        thread_specs: list[tuple[str, str, int, float, float, bool, float]] = [
            ("toa splits 300-400", "pvm", 11, 0.08, 0.30, True, 2.5),
            ("bingo ideas", "general", 11, 0.35, 0.50, True, 1.5),
            ("99 watch", "skilling", 11, 0.20, 0.45, True, 1.0),
            ("cox learners", "pvm", 11, 0.55, 1.0, False, 2.0),
            ("memes", "general", 11, 0.05, 1.0, False, 1.5),
            ("staff planning", "events", 12, 0.30, 0.60, True, 0.8),
            ("Vorkath for beginners", "pvm-guides", 11, 0.04, 0.25, True, 1.0),
            ("Colosseum waves", "pvm-guides", 11, 0.15, 0.35, True, 0.8),
            ("ToB entry mode", "pvm-guides", 11, 0.30, 0.55, True, 1.0),
            ("CoX gear by budget", "pvm-guides", 11, 0.40, 1.0, False, 1.2),
            ("Inferno tips", "pvm-guides", 11, 0.70, 1.0, False, 0.9),
        ]
        self.thread_streams: list[_Stream] = []
        for name, parent, thread_type, f0, f1, archived, weight in thread_specs:
            # threads start during someone's evening, never in the last hour of the history
            start = frac(f0) + self.rng.randrange(8 * 3_600_000, 22 * 3_600_000)
            start = min(start, self.end_ms - 3_600_000)
            # an archived thread's last message leaves room for the auto-archive delay
            stop = min(frac(f1), self.end_ms - 2 * DAY_MS) if archived else self.end_ms
            stop = max(stop, start + 60_000)
            stream = _Stream(name, "staff" if thread_type == 12 else "chat", weight, start, stop)
            stream.thread = {
                "name": name,
                "type": thread_type,
                "parent": ch[parent],
                "archived": archived,
                "forum": parent == "pvm-guides",
            }
            self.thread_streams.append(stream)
            self.streams.append(stream)

    def _eligible(self, day_start: int) -> tuple[list[Member], list[float]]:
        pool: list[Member] = []
        cum: list[float] = []
        total = 0.0
        for member in self.humans:
            if member.weight <= 0:
                continue
            if _to_ms(member.joined_at) >= day_start:
                continue
            if member.silent_from is not None and _to_ms(member.silent_from) <= day_start + DAY_MS:
                continue
            total += member.weight
            pool.append(member)
            cum.append(total)
        return pool, cum

    def _eligible_players(self, day_start: int) -> tuple[list[InGamePlayer], list[float]]:
        pool: list[InGamePlayer] = []
        cum: list[float] = []
        total = 0.0
        day_end = day_start + DAY_MS
        for player in self.players:
            if player.weight <= 0:
                continue
            if player.invited_at is not None and _to_ms(player.invited_at) >= day_start:
                continue
            if player.left_at is not None and _to_ms(player.left_at) <= day_end:
                continue
            if player.silent_from is not None and _to_ms(player.silent_from) <= day_end:
                continue
            total += player.weight
            pool.append(player)
            cum.append(total)
        return pool, cum

    def schedule(self) -> list[tuple[int, int, int, int]]:
        """Events as (ms, priority, stream index or special kind, extra)."""
        rng = self.rng
        hour_weights = [
            2,
            1.5,
            1,
            0.7,
            0.5,
            0.5,
            0.7,
            1,
            1.5,
            2,
            2.5,
            3,
            3.5,
            3.5,
            3.5,
            4,
            4.5,
            5,
            6,
            6.5,
            6.5,
            6,
            5,
            3.5,
        ]
        hour_cum: list[float] = []
        acc = 0.0
        for w in hour_weights:
            acc += w
            hour_cum.append(acc)
        weekday_factor = (0.9, 0.88, 0.95, 0.95, 1.05, 1.25, 1.2)
        events: list[tuple[int, int, int, int]] = []
        for day in range(self.days):
            day_start = self.start_ms + day * DAY_MS
            day_end = day_start + DAY_MS
            weekday = _from_ms(day_start).weekday()
            factor = weekday_factor[weekday] * rng.uniform(0.8, 1.2)
            count = max(0, round(self.per_day * factor))
            active = [
                (i, s)
                for i, s in enumerate(self.streams)
                if s.start_ms < day_end and s.end_ms > day_start
            ]
            stream_cum: list[float] = []
            total = 0.0
            for _, stream in active:
                total += stream.weight
                stream_cum.append(total)
            hours = rng.choices(range(24), cum_weights=hour_cum, k=count)
            picks = rng.choices(active, cum_weights=stream_cum, k=count)
            for hour, (index, stream) in zip(hours, picks, strict=True):
                when = day_start + hour * 3_600_000 + rng.randrange(3_600_000)
                if when < stream.start_ms or when >= stream.end_ms:
                    lo = max(day_start, stream.start_ms + 1)
                    hi = min(day_end, stream.end_ms)
                    when = rng.randrange(lo, hi) if hi > lo else lo
                events.append((when, 2, index, 0))
        for index, stream in enumerate(self.thread_streams):
            events.append((stream.start_ms, 0, -1, index))
        for index, member in enumerate(self.humans):
            joined = _to_ms(member.joined_at)
            if self.start_ms <= joined < self.end_ms:
                events.append((joined, 1, -2, index))
        for index, player in enumerate(self.players):
            if player.invited_at is not None:
                events.append((max(self.start_ms, _to_ms(player.invited_at) - 5_000), 1, -3, index))
            if player.left_at is not None:
                events.append((_to_ms(player.left_at), 1, -4, index))
        pin_channels = ("general", "pvm", "events", "announcements")
        for name in pin_channels:
            when = self.start_ms + rng.randrange(2 * DAY_MS, 7 * DAY_MS)
            while when < self.end_ms:
                events.append((when, 3, -5, self.ch[name]))
                when += rng.randrange(3 * DAY_MS, 12 * DAY_MS)
        events.sort()
        return events

    def run(self) -> None:
        rng = self.rng
        events = self.schedule()
        pools: dict[int, tuple[list[Member], list[float]]] = {}
        player_pools: dict[int, tuple[list[InGamePlayer], list[float]]] = {}
        ctx = _GenContext(self)
        guild_id = str(self.guild_id)
        for when, _, kind, extra in events:
            day = (when - self.start_ms) // DAY_MS
            if kind >= 0:
                stream = self.streams[kind]
                if stream.channel_id == 0:
                    continue  # the thread was never created (too short a history)
                if stream.kind == "bridge":
                    if day not in player_pools:
                        player_pools[day] = self._eligible_players(self.start_ms + day * DAY_MS)
                    self._bridge_message(when, player_pools[day])
                    continue
                if day not in pools:
                    pools[day] = self._eligible(self.start_ms + day * DAY_MS)
                self._human_stream_message(when, stream, pools[day], ctx)
            elif kind == -1:
                self._create_thread(when, self.thread_streams[extra], pools, ctx)
            elif kind == -2:
                member = self.humans[extra]
                message_id, at = self.alloc.allocate(when)
                self._store(
                    self.ch["general"],
                    _message(7, "", message_id, self.ch["general"], member.user, iso_ms(at)),
                )
            elif kind == -3:
                player = self.players[extra]
                inviter = rng.choice([p for p in self.players[:5] if p.left_at is None])
                content = (
                    f"{bridge_escape(player.name)} has been invited into the clan by "
                    f"{bridge_escape(inviter.name)}\\."
                )
                self._webhook_post(when, content)
            elif kind == -4:
                self._webhook_post(
                    when, f"{bridge_escape(self.players[extra].name)} has left the clan\\."
                )
            elif kind == -5:
                self._pin(when, extra, guild_id)

    # -- message makers -----------------------------------------------------------

    def _store(self, channel_id: int, message: JSONDict) -> None:
        self.messages.setdefault(channel_id, []).append(message)
        self.ids.setdefault(channel_id, []).append(int(message["id"]))
        if message["type"] in (0, 19, 20):
            recent = self.recent.setdefault(channel_id, [])
            recent.append(message)
            if len(recent) > 60:
                del recent[:20]

    def _webhook_post(self, when: int, content: str) -> None:
        channel_id = self.ch["clan-chat"]
        message_id, at = self.alloc.allocate(when)
        self._store(
            channel_id,
            _message(
                0,
                content,
                message_id,
                channel_id,
                self.webhook_user,
                iso_ms(at),
                {"webhook_id": str(BRIDGE_WEBHOOK_ID)},
            ),
        )

    def _bridge_message(self, when: int, pool: tuple[list[InGamePlayer], list[float]]) -> None:
        players, cum = pool
        if not players:
            return
        rng = self.rng
        player = _pick(rng, players, cum)
        if rng.random() < 0.1:
            content = _broadcast_line(rng, player)
        else:
            content = _bridge_chat_line(rng, player, self.emojis)
        self._webhook_post(when, content)

    def _pick_author(
        self, stream: _Stream, pool: tuple[list[Member], list[float]], when: int
    ) -> Member | None:
        rng = self.rng
        members, cum = pool
        if stream.kind in ("announcements", "staff"):
            return rng.choice(self.staff)
        creator = stream.creator
        # a thread's starter keeps talking in it, unless they have gone quiet by now
        if (
            creator is not None
            and rng.random() < 0.2
            and (creator.silent_from is None or _to_ms(creator.silent_from) > when + DAY_MS)
        ):
            return creator
        if not members:
            return None
        author = _pick(rng, members, cum)
        if author.favourite != stream.name and rng.random() < 0.3:
            author = _pick(rng, members, cum)  # favourites get more traffic
        return author

    def _human_stream_message(
        self,
        when: int,
        stream: _Stream,
        pool: tuple[list[Member], list[float]],
        ctx: _GenContext,
    ) -> None:
        rng = self.rng
        channel_id = stream.channel_id
        if stream.kind == "commands" and rng.random() < 0.55:
            self._command_response(when, channel_id, pool)
            return
        if stream.kind == "events" and rng.random() < 0.08:
            self._embed_post(when, channel_id)
            return
        author = self._pick_author(stream, pool, when)
        if author is None:
            return
        lines = _CHANNEL_LINES.get(stream.name)
        if lines is None:
            lines = _STAFF_LINES if stream.kind == "staff" else _PVM_LINES + _GENERAL_LINES
        content = _fill(rng, rng.choice(lines), ctx)
        message_id, at = self.alloc.allocate(when)
        extra: JSONDict = {}
        mentions: list[JSONDict] = []
        message_type = 0
        recent = self.recent.get(channel_id)
        if recent and rng.random() < 0.13:
            target = recent[-1 - min(int(rng.expovariate(0.4)), len(recent) - 1)]
            message_type = 19
            extra["message_reference"] = {
                "type": 0,
                "channel_id": str(channel_id),
                "message_id": target["id"],
                "guild_id": str(self.guild_id),
            }
            extra["referenced_message"] = _without_reference(target)
            target_author = target["author"]
            if (
                rng.random() < 0.7
                and "webhook_id" not in target
                and target_author["id"] != author.user["id"]
            ):
                mentions.append(target_author)
        mention_match = _MENTION.search(content)
        if mention_match:
            mentioned = ctx.users.get(int(mention_match.group(1)))
            if mentioned is not None and mentioned not in mentions:
                mentions.append(mentioned)
        attachments: list[JSONDict] = []
        if rng.random() < 0.03:
            attachments.append(self._attachment(at, channel_id))
            if rng.random() < 0.3:
                content = ""
        edited = None
        if rng.random() < 0.05:
            edited = iso_ms(min(at + rng.randrange(3_000, 1_800_000), self.end_ms - 1))
        if stream.kind == "announcements":
            extra.setdefault("mention_everyone", "@everyone" in content)
        if rng.random() < 0.08:
            extra["reactions"] = self._reactions()
        if rng.random() < 0.004:
            content = ""
            extra["sticker_items"] = [
                {"id": str(self.sticker_id), "name": "Lantern wave", "format_type": 1}
            ]
        message = _message(
            message_type,
            content,
            message_id,
            channel_id,
            author.user,
            iso_ms(at),
            extra,
            mentions=mentions,
            attachments=attachments,
            edited=edited,
        )
        if stream.thread is not None:
            message["position"] = len(self.messages.get(channel_id, ()))
        self._store(channel_id, message)

    def _attachment(self, at: int, channel_id: int) -> JSONDict:
        rng = self.rng
        attachment_id, _ = self.alloc.allocate(at)
        name, kind, size = rng.choice(
            (
                ("loot.png", "image/png", 482113),
                ("gear_setup.png", "image/png", 251904),
                ("clip.mp4", "video/mp4", 7340032),
                ("bingo_board.jpg", "image/jpeg", 118230),
                ("splits.txt", "text/plain; charset=utf-8", 2210),
            )
        )
        digest = hashlib.sha256(f"{attachment_id}".encode()).hexdigest()
        url = (
            f"https://cdn.discordapp.com/attachments/{channel_id}/{attachment_id}/{name}"
            f"?ex={at // 1000 + 86400:x}&is={at // 1000:x}&hm={digest}&"
        )
        attachment: JSONDict = {
            "id": str(attachment_id),
            "filename": name,
            "size": size + rng.randrange(-1000, 1000),
            "url": url,
            "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net"),
            "content_type": kind,
        }
        if kind.startswith("image"):
            attachment.update({"width": 1366, "height": 768})
        return attachment

    def _reactions(self) -> list[JSONDict]:
        rng = self.rng
        out: list[JSONDict] = []
        for _ in range(1 + int(rng.random() < 0.3)):
            if rng.random() < 0.25:
                emoji: JSONDict = {"id": str(self.emojis["heronhype"]), "name": "heronhype"}
            else:
                emoji = {"id": None, "name": rng.choice(("👍", "😂", "🔥", "🎉", "👀"))}
            if any(r["emoji"] == emoji for r in out):
                continue
            count = 1 + int(rng.expovariate(0.6))
            out.append(
                {
                    "emoji": emoji,
                    "count": count,
                    "count_details": {"burst": 0, "normal": count},
                    "burst_colors": [],
                    "me": False,
                    "me_burst": False,
                }
            )
        return out

    def _command_response(
        self, when: int, channel_id: int, pool: tuple[list[Member], list[float]]
    ) -> None:
        rng = self.rng
        members, cum = pool
        if not members:
            return
        user = _pick(rng, members, cum)
        interaction_id, _ = self.alloc.allocate(when - rng.randrange(200, 1500))
        message_id, at = self.alloc.allocate(when)
        name = rng.choice(("xp", "kc", "ehp", "price"))
        who = user.rsn or user.user["username"]
        content = {
            "xp": f"{who} gained {rng.randrange(1000, 2_000_000):,} XP today.",
            "kc": f"{who} has {rng.randrange(1, 3000):,} {rng.choice(_BOSSES)} kills.",
            "ehp": f"{who} gained {rng.uniform(0.1, 30):.2f} EHP this week.",
            "price": f"{rng.choice(_ITEMS)}: {rng.randrange(10_000, 1_500_000_000):,} gp",
        }[name]
        bot = self.command_bot.user
        extra: JSONDict = {
            "application_id": bot["id"],
            "interaction_metadata": {
                "id": str(interaction_id),
                "type": 2,
                "user": user.user,
                "authorizing_integration_owners": {"0": str(self.guild_id)},
            },
            "interaction": {"id": str(interaction_id), "type": 2, "name": name, "user": user.user},
        }
        self._store(
            channel_id, _message(20, content, message_id, channel_id, bot, iso_ms(at), extra)
        )

    def _embed_post(self, when: int, channel_id: int) -> None:
        rng = self.rng
        message_id, at = self.alloc.allocate(when)
        raid = rng.choice(_RAIDS)
        embed: JSONDict = {
            "type": "rich",
            "title": f"{raid} mass — signups",
            "description": f"{rng.randrange(3, 25)} members signed up. React to join!",
            "color": 0x2E86C1,
            "timestamp": iso_ms(at),
            "fields": [
                {"name": "Host", "value": rng.choice(self.staff).display_name, "inline": True},
                {"name": "World", "value": str(rng.randrange(301, 580)), "inline": True},
            ],
            "footer": {"text": "Town Crier"},
        }
        self._store(
            channel_id,
            _message(
                0, "", message_id, channel_id, self.embed_bot.user, iso_ms(at), embeds=[embed]
            ),
        )

    def _pin(self, when: int, channel_id: int, guild_id: str) -> None:
        rng = self.rng
        candidates = [
            m
            for m in self.recent.get(channel_id, ())
            if m["type"] in (0, 19) and not m["pinned"] and "webhook_id" not in m
        ]
        if not candidates:
            return
        target = rng.choice(candidates)
        target["pinned"] = True
        message_id, at = self.alloc.allocate(when)
        pinner = rng.choice(self.staff)
        extra = {
            "message_reference": {
                "type": 0,
                "channel_id": str(channel_id),
                "message_id": target["id"],
                "guild_id": guild_id,
            }
        }
        self._store(
            channel_id, _message(6, "", message_id, channel_id, pinner.user, iso_ms(at), extra)
        )

    def _create_thread(
        self,
        when: int,
        stream: _Stream,
        pools: dict[int, tuple[list[Member], list[float]]],
        ctx: _GenContext,
    ) -> None:
        assert stream.thread is not None
        spec = stream.thread
        rng = self.rng
        day = (when - self.start_ms) // DAY_MS
        if day not in pools:
            pools[day] = self._eligible(self.start_ms + day * DAY_MS)
        members = pools[day][0]
        creator = (
            rng.choice(self.staff)
            if spec["type"] == 12 or not members
            else rng.choice(members[: max(1, len(members) // 3)])
        )
        stream.creator = creator
        thread_id, at = self.alloc.allocate(when)
        stream.channel_id = thread_id
        parent = spec["parent"]
        channel: JSONDict = {
            "id": str(thread_id),
            "type": spec["type"],
            "last_message_id": None,
            "flags": 0,
            "guild_id": str(self.guild_id),
            "name": spec["name"],
            "parent_id": str(parent),
            "rate_limit_per_user": 0,
            "owner_id": creator.user["id"],
            "thread_metadata": {
                "archived": False,
                "archive_timestamp": iso_ms(at),
                "auto_archive_duration": 1440 if spec["type"] != 12 else 4320,
                "locked": False,
                "create_timestamp": iso_ms(at),
            },
            "message_count": 0,
            "member_count": rng.randrange(3, 25),
            "total_message_sent": 0,
        }
        if spec["type"] == 12:
            channel["thread_metadata"]["invitable"] = False
        if spec["forum"]:
            channel["applied_tags"] = []
            # a forum post's first message has the thread's id
            starter = _message(
                0,
                _fill(rng, "{boss} question: {item} or {item2}?", ctx),
                thread_id,
                thread_id,
                creator.user,
                iso_ms(at),
                {"position": 0},
            )
            self.channels[thread_id] = channel
            self._store(thread_id, starter)
            return
        self.channels[thread_id] = channel
        if spec["type"] == 11:
            notice_id, notice_at = self.alloc.allocate(at)
            self._store(
                parent,
                _message(
                    18,
                    spec["name"],
                    notice_id,
                    parent,
                    creator.user,
                    iso_ms(notice_at),
                    {
                        "message_reference": {
                            "type": 0,
                            "channel_id": str(thread_id),
                            "guild_id": str(self.guild_id),
                        }
                    },
                ),
            )

    # -- finish -------------------------------------------------------------------

    def finish(self) -> Community:
        for channel_id, channel in self.channels.items():
            ids = self.ids.get(channel_id)
            if "last_message_id" in channel:
                channel["last_message_id"] = str(ids[-1]) if ids else None
            if "thread_metadata" in channel:
                count = len(ids) if ids else 0
                channel["message_count"] = count
                channel["total_message_sent"] = count
        for stream in self.thread_streams:
            if stream.thread is None or not stream.channel_id or not stream.thread["archived"]:
                continue
            channel = self.channels[stream.channel_id]
            ids = self.ids.get(stream.channel_id) or [stream.channel_id]
            last_ms = snowflake_ms(ids[-1])
            archived_ms = min(
                last_ms + channel["thread_metadata"]["auto_archive_duration"] * 60_000,
                self.end_ms - 1,
            )
            channel["thread_metadata"]["archived"] = True
            channel["thread_metadata"]["archive_timestamp"] = iso_ms(max(archived_ms, last_ms))
        members = [*self.humans, self.command_bot, self.embed_bot]
        return Community(
            seed=self.seed,
            guild_id=self.guild_id,
            guild_name=self.guild_name,
            start=_from_ms(self.start_ms),
            end=self.end,
            guild=self.guild,
            roles=self.roles,
            members=members,
            ingame_players=self.players,
            webhook_user=self.webhook_user,
            bridge_channel_id=self.ch["clan-chat"],
            voice_channel_id=self.ch["Hangout"],
            report_channel_id=self.ch["reports"],
            command_bot_id=self.command_bot.id,
            embed_bot_id=self.embed_bot.id,
            emojis=dict(self.emojis),
            _channels=self.channels,
            _messages=self.messages,
            _ids=self.ids,
            _allocator=self.alloc,
            _live_rng=random.Random(self.seed * 7919 + 1),
        )


class _GenContext:
    """Template values while generating: who can be mentioned, which channels exist."""

    def __init__(self, gen: _Gen) -> None:
        self.users = {m.id: m.user for m in gen.humans}
        self.mentionable = [m.id for m in gen.humans if m.weight > 0]
        self.channel_ids = [gen.ch[n] for n in ("events", "pvm", "skilling", "pvm-guides")]
        self.emoji_id = gen.emojis["heronhype"]

    def mention(self, rng: random.Random) -> int:
        return rng.choice(self.mentionable)

    def channel(self, rng: random.Random) -> int:
        return rng.choice(self.channel_ids)

    def emoji(self, rng: random.Random) -> tuple[str, int]:
        return "heronhype", self.emoji_id


_MENTION = re.compile(r"<@!?(\d+)>")
_FIELD = re.compile(r"\{(\w+)\}")


def _fill(rng: random.Random, template: str, ctx: _GenContext | _LiveContext) -> str:
    if "{" not in template:
        return template
    emoji_name, emoji_id = ctx.emoji(rng)

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in ("item", "item2"):
            return rng.choice(_ITEMS)
        if key == "boss":
            return rng.choice(_BOSSES)
        if key == "raid":
            return rng.choice(_RAIDS)
        if key == "skill":
            return rng.choice(_SKILLS)
        if key == "activity":
            return rng.choice((*_RAIDS, *_BOSSES, "wildy", "GotR", "Tempoross"))
        if key == "mention":
            return str(ctx.mention(rng))
        if key == "channel":
            return str(ctx.channel(rng))
        if key == "emoji":
            return emoji_name
        if key == "emoji_id":
            return str(emoji_id)
        return str(
            {
                "n": rng.randrange(1, 5),
                "cb": rng.randrange(80, 126),
                "world": rng.randrange(301, 580),
                "lvl": rng.randrange(60, 100),
                "kc": rng.randrange(50, 2500),
                "hour": rng.randrange(17, 22),
                "mins": rng.randrange(18, 40),
            }.get(key, key)
        )

    return _FIELD.sub(value, template)


def normalize_rsn(name: str) -> str:
    """OSRS name normalization as Wise Old Man does it (the generator keeps names unique)."""
    return re.sub(r"[-_\s]", " ", name).strip().lower()


def _default_end() -> datetime:
    # Floored to the UTC day so two calls on the same day give the same community.
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def generate_community(
    seed: int = 7,
    members: int = 300,
    days: int = 120,
    end: datetime | None = None,
    messages_per_day: int = 400,
) -> Community:
    """Generate a clan community; the same arguments always give the same community.

    ``end`` (exclusive, UTC) defaults to the start of the current UTC day; the history covers
    the ``days`` days before it.
    """
    if end is None:
        end = _default_end()
    elif end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end = end.astimezone(UTC)
    # Drop sub-millisecond precision so every generated time is a whole millisecond.
    end = end.replace(microsecond=end.microsecond // 1000 * 1000)
    gen = _Gen(seed, members, days, end, messages_per_day)
    gen.build_guild()
    gen.build_channels()
    gen.build_members()
    gen.build_ingame()
    gen.build_streams()
    gen.run()
    return gen.finish()


# --------------------------------------------------------------------------------------
# DiscordChatExporter writer

_DCE_CHANNEL_TYPES = {
    0: "GuildTextChat",
    1: "DirectTextChat",
    2: "GuildVoiceChat",
    3: "DirectGroupTextChat",
    4: "GuildCategory",
    5: "GuildNews",
    10: "GuildNewsThread",
    11: "GuildPublicThread",
    12: "GuildPrivateThread",
    13: "GuildStageVoice",
    14: "GuildDirectory",
    15: "GuildForum",
}
_DCE_MESSAGE_TYPES = {
    0: "Default",
    1: "RecipientAdd",
    2: "RecipientRemove",
    3: "Call",
    4: "ChannelNameChange",
    5: "ChannelIconChange",
    6: "ChannelPinnedMessage",
    7: "GuildMemberJoin",
    18: "ThreadCreated",
    19: "Reply",
}
_DCE_SYSTEM_CONTENT = {
    1: "Added a recipient.",
    2: "Removed a recipient.",
    5: "Changed the channel icon.",
    6: "Pinned a message.",
    7: "Joined the server.",
    18: "Started a thread.",
}
_STICKER_FORMATS = {1: "Png", 2: "Apng", 3: "Lottie", 4: "Gif"}
_RENDER = re.compile(r"<(a?):(\w+):(\d+)>|<@!?(\d+)>|<@&(\d+)>|<#(\d+)>")
_CUSTOM_EMOJI = re.compile(r"<(a?):(\w+):(\d+)>")


def _parse_offset(offset: str) -> tzinfo:
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", offset)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        delta = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        return timezone(sign * delta)
    if offset in ("Z", "UTC"):
        return UTC
    return ZoneInfo(offset)  # a zone name exports with its DST changes, as DCE does


def _dce_time(value: str | datetime | None, zone: tzinfo, digits: int = 6) -> str | None:
    if value is None:
        return None
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = dt.astimezone(zone)
    frac = f"{local.microsecond:06d}" + ("0" if digits == 7 else "")
    frac = frac.rstrip("0")
    offset = local.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    base = f"{local:%Y-%m-%dT%H:%M:%S}"
    return f"{base}.{frac}{offset}" if frac else f"{base}{offset}"


class _DceContext:
    """Lookups the exporter needs: members with roles, channel names, role names."""

    def __init__(self, community: Community, zone: tzinfo) -> None:
        self.community = community
        self.zone = zone
        self.members = {m.id: m for m in community.members}
        self.roles = {int(r["id"]): r for r in community.roles}
        self.channels = {int(c["id"]): c for c in community.all_channels()}
        self.reactors = community.humans

    def user(self, user: JSONDict, *, with_roles: bool = True) -> JSONDict:
        user_id = int(user["id"])
        member = self.members.get(user_id)
        discriminator = user.get("discriminator") or "0"
        if discriminator == "0":
            discriminator = "0000"
        nickname = (member.nick if member else None) or user.get("global_name") or user["username"]
        roles = sorted(
            (self.roles[r] for r in (member.roles if member else []) if r in self.roles),
            key=lambda r: -int(r["position"]),
        )
        coloured = [r for r in roles if r["color"]]
        out: JSONDict = {
            "id": str(user_id),
            "name": user["username"],
            "discriminator": discriminator,
            "nickname": nickname,
            "color": f"#{coloured[0]['color']:06X}" if coloured else None,
            "isBot": bool(user.get("bot")),
        }
        if with_roles:
            out["roles"] = [
                {
                    "id": r["id"],
                    "name": r["name"],
                    "color": f"#{r['color']:06X}" if r["color"] else None,
                    "position": r["position"],
                }
                for r in roles
            ]
        avatar = user.get("avatar")
        if avatar:
            out["avatarUrl"] = f"https://cdn.discordapp.com/avatars/{user_id}/{avatar}.png?size=512"
        else:
            out["avatarUrl"] = f"https://cdn.discordapp.com/embed/avatars/{(user_id >> 22) % 6}.png"
        return out

    def render(self, content: str) -> str:
        """DCE's default rendering: mentions by name, custom emoji as ``:name:``."""
        if "<" not in content:
            return content

        def replace(match: re.Match[str]) -> str:
            if match.group(2):
                return f":{match.group(2)}:"
            if match.group(4):
                member = self.members.get(int(match.group(4)))
                return f"@{member.display_name}" if member else "@Unknown"
            if match.group(5):
                role = self.roles.get(int(match.group(5)))
                return f"@{role['name']}" if role else "@deleted-role"
            channel = self.channels.get(int(match.group(6)))
            if channel is None:
                return "#deleted-channel"
            suffix = " [voice]" if channel["type"] in (2, 13) else ""
            return f"#{channel['name']}{suffix}"

        return _RENDER.sub(replace, content)

    def emoji(self, name: str, emoji_id: str | None, animated: bool = False) -> JSONDict:
        if emoji_id:
            extension = "gif" if animated else "png"
            return {
                "id": emoji_id,
                "name": name or "Unknown Emoji",
                "code": name,
                "isAnimated": animated,
                "imageUrl": f"https://cdn.discordapp.com/emojis/{emoji_id}.{extension}",
            }
        codepoints = "-".join(f"{ord(ch):x}" for ch in name if ord(ch) != 0xFE0F)
        return {
            "id": "",
            "name": name,
            "code": _UNICODE_EMOJI.get(name, name),
            "isAnimated": False,
            "imageUrl": f"https://cdn.jsdelivr.net/gh/twitter/twemoji@latest/assets/svg/"
            f"{codepoints}.svg",
        }

    def inline_emojis(self, content: str) -> list[JSONDict]:
        found: dict[str, JSONDict] = {}
        for match in _CUSTOM_EMOJI.finditer(content):
            found.setdefault(
                match.group(3), self.emoji(match.group(2), match.group(3), bool(match.group(1)))
            )
        for ch in content:
            if ch in _UNICODE_EMOJI and ch not in found:
                found[ch] = self.emoji(ch, None)
        return list(found.values())

    def embed(self, embed: JSONDict) -> JSONDict:
        out: JSONDict = {
            "title": embed.get("title", ""),
            "url": embed.get("url"),
            "timestamp": _dce_time(embed.get("timestamp"), self.zone),
            "description": embed.get("description", ""),
        }
        if embed.get("color") is not None:
            out["color"] = f"#{embed['color']:06X}"
        if "author" in embed:
            out["author"] = {"name": embed["author"].get("name"), "url": embed["author"].get("url")}
        for key in ("thumbnail", "image", "video"):
            if key in embed:
                out[key] = {
                    "url": embed[key].get("url"),
                    "width": embed[key].get("width"),
                    "height": embed[key].get("height"),
                }
        if "footer" in embed:
            out["footer"] = {"text": embed["footer"].get("text", "")}
        out["images"] = []
        out["fields"] = [
            {"name": f["name"], "value": f["value"], "isInline": bool(f.get("inline"))}
            for f in embed.get("fields", [])
        ]
        out["inlineEmojis"] = []
        return out

    def message(self, message: JSONDict) -> JSONDict:
        message_type = int(message["type"])
        raw = message.get("content") or ""
        if message_type in _DCE_SYSTEM_CONTENT:
            content = _DCE_SYSTEM_CONTENT[message_type]
        elif message_type == 4:
            content = f"Changed the channel name: {raw}" if raw else "Changed the channel name."
        else:
            content = self.render(raw)
        reactions = []
        for reaction in message.get("reactions", []):
            emoji = reaction["emoji"]
            count = int(reaction["count"])
            # Reactor identities are not in the message; pick stable members per message.
            picker = random.Random(f"{message['id']}:{emoji.get('name')}")
            users = picker.sample(self.reactors, k=min(count, len(self.reactors)))
            reactions.append(
                {
                    "emoji": self.emoji(
                        emoji.get("name") or "", emoji.get("id"), bool(emoji.get("animated"))
                    ),
                    "count": count,
                    "users": [self.user(u.user, with_roles=False) for u in users],
                }
            )
        out: JSONDict = {
            "id": message["id"],
            "type": _DCE_MESSAGE_TYPES.get(message_type, str(message_type)),
            "timestamp": _dce_time(message["timestamp"], self.zone),
            "timestampEdited": _dce_time(message.get("edited_timestamp"), self.zone),
            "callEndedTimestamp": None,
            "isPinned": bool(message.get("pinned")),
            "content": content,
            "author": self.user(message["author"]),
            "attachments": [
                {
                    "id": a["id"],
                    "url": a["url"],
                    "fileName": a["filename"],
                    "fileSizeBytes": a["size"],
                }
                for a in message.get("attachments", [])
            ],
            "embeds": [self.embed(e) for e in message.get("embeds", [])],
            "stickers": [
                {
                    "id": s["id"],
                    "name": s["name"],
                    "format": _STICKER_FORMATS.get(s.get("format_type", 1), "Png"),
                    "sourceUrl": f"https://cdn.discordapp.com/stickers/{s['id']}"
                    f".{'json' if s.get('format_type') == 3 else 'png'}",
                }
                for s in message.get("sticker_items", [])
            ],
            "reactions": reactions,
            "mentions": [self.user(u) for u in message.get("mentions", [])],
        }
        reference = message.get("message_reference")
        if reference is not None:
            out["reference"] = {
                "type": "Forward" if reference.get("type") == 1 else "Default",
                "messageId": reference.get("message_id"),
                "channelId": reference.get("channel_id"),
                "guildId": reference.get("guild_id"),
            }
        interaction = message.get("interaction")
        if interaction is not None:
            out["interaction"] = {
                "id": interaction["id"],
                "name": interaction.get("name", ""),
                "user": self.user(interaction["user"]),
            }
        out["inlineEmojis"] = self.inline_emojis(raw)
        return out


def _dce_file_name(community: Community, channel: JSONDict) -> str:
    parent = channel.get("parent_id")
    parent_name = None
    if parent is not None:
        found = community.channel(int(parent))
        parent_name = found["name"] if found else None
    parts = [community.guild_name, *([parent_name] if parent_name else []), channel["name"]]
    name = " - ".join(parts) + f" [{channel['id']}].json"
    return re.sub(r'[<>:"/\\|?*]', "_", name)


def _part_path(base: Path, part: int) -> Path:
    if part == 1:
        return base
    return base.with_name(f"{base.stem} [part {part}]{base.suffix}")


def _indented(value: Any, depth: int) -> bytes:
    # JSON strings never hold a raw newline, so re-indenting line starts is safe.
    dumped = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    return dumped.replace(b"\n", b"\n" + b"  " * depth)


def _write_part(
    handle: BinaryIO, header: Iterable[tuple[str, Any]], messages: Iterable[JSONDict]
) -> int:
    handle.write(b"{\n")
    for key, value in header:
        handle.write(b'  "' + key.encode() + b'": ' + _indented(value, 1) + b",\n")
    handle.write(b'  "messages": [')
    count = 0
    for message in messages:
        handle.write((b",\n    " if count else b"\n    ") + _indented(message, 2))
        count += 1
    handle.write(b"\n  ],\n" if count else b"],\n")
    handle.write(b'  "messageCount": ' + str(count).encode() + b"\n}\n")
    return count


def write_dce_export(
    community: Community,
    channel_id: int,
    path: Path | str,
    *,
    part_size: int | None = None,
    offset: str = "+01:00",
    exported_at: datetime | None = None,
) -> list[Path]:
    """Write a channel's history as DiscordChatExporter JSON; return the files written.

    ``path`` is the first file (later parts get `` [part N]`` before the extension) or an
    existing directory, in which DCE's default file name is used. ``offset`` is the
    exporting machine's zone: a fixed ``+HH:MM`` or a zone name such as
    ``Europe/Amsterdam`` (offsets then change at DST like real exports). ``part_size`` is the
    number of messages per file. Messages are converted and written one at a time.
    """
    if part_size is not None and part_size < 1:
        raise ValueError("part_size must be positive")
    channel = community.channel(channel_id)
    if channel is None:
        raise KeyError(f"unknown channel {channel_id}")
    zone = _parse_offset(offset)
    target = Path(path)
    if target.is_dir():
        target = target / _dce_file_name(community, channel)
    ctx = _DceContext(community, zone)
    parent = channel.get("parent_id")
    parent_channel = community.channel(int(parent)) if parent is not None else None
    guild_icon = community.guild.get("icon")
    header: list[tuple[str, Any]] = [
        (
            "guild",
            {
                "id": str(community.guild_id),
                "name": community.guild_name,
                "iconUrl": f"https://cdn.discordapp.com/icons/{community.guild_id}/{guild_icon}.png"
                "?size=512",
            },
        ),
        (
            "channel",
            {
                "id": channel["id"],
                "type": _DCE_CHANNEL_TYPES.get(channel["type"], str(channel["type"])),
                "categoryId": parent_channel["id"] if parent_channel else None,
                "category": parent_channel["name"] if parent_channel else None,
                "name": channel["name"],
                "topic": channel.get("topic"),
            },
        ),
        ("dateRange", {"after": None, "before": None}),
        ("exportedAt", _dce_time(exported_at or datetime.now(UTC), zone, digits=7)),
    ]
    messages = community.channel_messages(channel_id)
    size = part_size or max(1, len(messages))
    written: list[Path] = []
    part = 1
    for start in range(0, max(1, len(messages)), size):
        file_path = _part_path(target, part)
        with file_path.open("wb") as handle:
            _write_part(handle, header, (ctx.message(m) for m in messages[start : start + size]))
        written.append(file_path)
        part += 1
    return written
