"""The synthetic community generator and its DiscordChatExporter writer."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from clanpulse.demo.community import (
    BRIDGE_WEBHOOK_ID,
    DISCORD_EPOCH_MS,
    Community,
    generate_community,
    normalize_rsn,
    write_dce_export,
)

END = datetime(2026, 3, 1, tzinfo=UTC)
API_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
DCE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?[+-]\d\d:\d\d$")
CHAT = re.compile(
    r"^(?:(?:<a?:\w+:\d+>|:\w+:)\s*)*\*\*(?P<name>[^*\n]{1,40}?)\*\*:\s?(?P<text>.*)$"
)
SYSTEM = re.compile(
    r"^(?P<who>.+?) (?:has been invited into the clan by (?P<by>.+?)|has left the clan)\\?\.$"
)
BROADCAST = re.compile(
    r"^(?P<who>.+?) (?:received a (?:new collection log item|drop)|has (?:reached|achieved|"
    r"completed))\b"
)
RSN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,10}[A-Za-z0-9]$|^[A-Za-z0-9]$")


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


@pytest.fixture(scope="module")
def big() -> tuple[Community, float]:
    started = time.process_time()
    community = generate_community(seed=7, end=END)
    return community, time.process_time() - started


@pytest.fixture(scope="module")
def community(big: tuple[Community, float]) -> Community:
    return big[0]


@pytest.fixture(scope="module")
def small() -> Community:
    return generate_community(seed=11, members=60, days=30, end=END, messages_per_day=150)


def test_full_size_generation_is_fast_and_large(big: tuple[Community, float]) -> None:
    community, cpu_seconds = big
    assert cpu_seconds < 3.0
    assert 120 * 400 * 0.8 < community.total_messages() < 120 * 400 * 1.3
    assert len(community.humans) == 300


def test_same_seed_same_community_other_seed_differs() -> None:
    def dump(c: Community) -> bytes:
        return orjson.dumps([list(c.iter_messages()), c.members_payload(), c.all_channels()])

    def make(seed: int) -> Community:
        return generate_community(seed=seed, members=30, days=8, end=END, messages_per_day=60)

    assert dump(make(3)) == dump(make(3))
    assert dump(make(3)) != dump(make(4))


def test_history_window(community: Community) -> None:
    assert community.end == END
    assert community.start == END - timedelta(days=120)
    for message in community.iter_messages():
        assert community.start <= datetime.fromisoformat(message["timestamp"]) < END


def test_snowflakes_valid_increasing_and_unique(community: Community) -> None:
    seen: set[int] = set()
    for channel_id in community.message_channel_ids():
        previous = 0
        for message in community.channel_messages(channel_id):
            message_id = int(message["id"])
            assert message["channel_id"] == str(channel_id)
            assert API_TIME.match(message["timestamp"])
            assert (message_id >> 22) + DISCORD_EPOCH_MS == _ms(message["timestamp"])
            assert message_id > previous
            previous = message_id
            assert message_id not in seen
            seen.add(message_id)
            for attachment in message["attachments"]:
                assert int(attachment["id"]) not in seen
                seen.add(int(attachment["id"]))
    others = [int(c["id"]) for c in community.all_channels() if c["type"] not in (10, 11, 12)]
    others += [m.id for m in community.members] + [community.guild_id, BRIDGE_WEBHOOK_ID]
    assert len(set(others)) == len(others)
    assert not seen & set(others)


def test_message_objects_look_like_the_api(community: Community) -> None:
    keys = {
        "type",
        "content",
        "mentions",
        "mention_roles",
        "attachments",
        "embeds",
        "timestamp",
        "edited_timestamp",
        "flags",
        "components",
        "id",
        "channel_id",
        "author",
        "pinned",
        "mention_everyone",
        "tts",
    }
    edited = 0
    for message in community.iter_messages():
        assert keys <= message.keys()
        assert isinstance(message["id"], str) and message["id"].isdigit()
        assert {"id", "username", "discriminator", "global_name"} <= message["author"].keys()
        assert "member" not in message and "nick" not in message["author"]
        if message["edited_timestamp"] is not None:
            edited += 1
            assert API_TIME.match(message["edited_timestamp"])
            assert message["edited_timestamp"] > message["timestamp"]
    assert edited > 100


def test_message_types_and_references(community: Community) -> None:
    by_id = {m["id"]: m for m in community.iter_messages()}
    types = Counter(m["type"] for m in by_id.values())
    assert {0, 6, 7, 18, 19, 20} <= types.keys()
    assert types[0] > types[19] > types[20] > types[6]
    threads = {t["id"]: t for t in community.threads()}
    for message in by_id.values():
        reference = message.get("message_reference") or {}
        if message["type"] == 19:
            target = by_id[reference["message_id"]]
            assert reference["channel_id"] == message["channel_id"] == target["channel_id"]
            assert int(target["id"]) < int(message["id"])
            assert message["referenced_message"]["id"] == target["id"]
            assert "referenced_message" not in message["referenced_message"]
        elif message["type"] == 6:
            target = by_id[reference["message_id"]]
            assert target["pinned"] and int(target["id"]) < int(message["id"])
        elif message["type"] == 18:
            thread = threads[reference["channel_id"]]
            assert thread["parent_id"] == message["channel_id"]
            assert message["content"] == thread["name"]
        elif message["type"] == 7:
            assert message["content"] == ""
            member = community.member(int(message["author"]["id"]))
            assert member is not None
            assert abs(member.joined_at - datetime.fromisoformat(message["timestamp"])) < timedelta(
                seconds=1
            )
        elif message["type"] == 20:
            assert message["author"]["bot"] is True
            assert int(message["author"]["id"]) == community.command_bot_id
            human = community.member(int(message["interaction_metadata"]["user"]["id"]))
            assert human is not None and not human.is_bot
    assert any(m["attachments"] for m in by_id.values())
    assert any(m.get("reactions") for m in by_id.values())
    assert any(
        m["embeds"] and m["author"]["id"] == str(community.embed_bot_id) for m in by_id.values()
    )


def test_bridge_lines(community: Community) -> None:
    kinds: Counter[str] = Counter()
    speakers: set[str] = set()
    contents = []
    for message in community.channel_messages(community.bridge_channel_id):
        author = message["author"]
        assert author["id"] == message["webhook_id"] == str(BRIDGE_WEBHOOK_ID)
        assert (author["username"], author["discriminator"], author["bot"]) == (
            "Clan Chat",
            "0000",
            True,
        )
        content = message["content"]
        contents.append(content)
        if chat := CHAT.match(content):
            kinds["chat"] += 1
            speakers.add(chat["name"])
            assert RSN.match(chat["name"]), chat["name"]
        elif SYSTEM.match(content):
            kinds["system"] += 1
        elif BROADCAST.match(content):
            kinds["broadcast"] += 1
        else:
            kinds["unknown"] += 1
    assert kinds["chat"] > kinds["broadcast"] > kinds["system"] > 0
    assert kinds["unknown"] == 0
    assert {"Tide Pool", "Tidepool", "Rook", "Rookie Ned", "Sea_Lark", "Sky-Fox"} <= speakers
    assert any("<:Ironman_chat_badge:" in c for c in contents)
    assert any(c.endswith("gz\\!") for c in contents)
    assert any("\\*\\*wow\\*\\*" in c for c in contents)
    assert any("Sky\\-Fox" in c for c in contents if not c.startswith("<"))
    assert any(" has been invited into the clan by " in c and c.endswith("\\.") for c in contents)
    assert any(" received a drop\\: " in c for c in contents)
    assert any(re.search(r" has reached \w+ level \d+\\\.$", c) for c in contents)


def test_ingame_names_are_unique_and_valid(community: Community) -> None:
    names = [p.name for p in community.ingame_players]
    normalized = [normalize_rsn(n) for n in names]
    assert len(set(normalized)) == len(normalized)
    assert all(RSN.match(n) and len(n) <= 12 for n in names)
    assert sum(m.rsn is not None for m in community.humans) > 0.75 * len(community.humans)
    assert any(p.user_id is None for p in community.ingame_players)


def test_users_members_and_bots(community: Community) -> None:
    humans = community.humans
    bots = [m for m in community.members if m.is_bot]
    assert len(bots) == 2
    assert len({m.user["username"].lower() for m in humans}) == len(humans)
    legacy = [m for m in humans if m.user["discriminator"] != "0"]
    assert 1 <= len(legacy) <= 5 and all(
        re.fullmatch(r"\d{4}", m.user["discriminator"]) for m in legacy
    )
    assert sum(m.user["global_name"] is not None for m in humans) > len(humans) // 3
    assert sum(m.nick is not None for m in humans) > len(humans) // 6
    payload = community.members_payload()
    ids = [int(p["user"]["id"]) for p in payload]
    assert ids == sorted(ids) and len(ids) == len(community.members)
    for entry in payload:
        assert {"user", "nick", "roles", "joined_at"} <= entry.keys()
        assert all(isinstance(r, str) for r in entry["roles"])


def test_activity_is_realistic(community: Community) -> None:
    counts: Counter[int] = Counter()
    last_seen: dict[int, datetime] = {}
    for message in community.iter_messages():
        author = message["author"]
        if author.get("bot") or message["type"] not in (0, 19):
            continue
        user_id = int(author["id"])
        counts[user_id] += 1
        last_seen[user_id] = max(
            last_seen.get(user_id, community.start), datetime.fromisoformat(message["timestamp"])
        )
    total = sum(counts.values())
    top3 = sum(n for _, n in counts.most_common(3))
    assert top3 > 0.15 * total  # a few very active members
    assert len(counts) > 0.5 * len(community.humans)  # a long tail
    assert len(community.humans) - len(counts) > 10  # some never speak
    cutoff = community.end - timedelta(days=30)
    assert sum(seen < cutoff for seen in last_seen.values()) >= 5  # silent for 30+ days
    recent = [m for m in community.humans if m.joined_at > cutoff and counts[m.id] > 0]
    assert recent  # joined recently and already chatting
    for member in community.humans:
        if member.silent_from is not None and member.id in last_seen:
            assert last_seen[member.id] < member.silent_from
    left = {p.name: p.left_at for p in community.ingame_players if p.left_at is not None}
    assert left
    for message in community.channel_messages(community.bridge_channel_id):
        chat = CHAT.match(message["content"])
        if chat and chat["name"] in left:
            assert datetime.fromisoformat(message["timestamp"]) < left[chat["name"]]
    hours = Counter(
        datetime.fromisoformat(m["timestamp"]).hour
        for m in community.channel_messages(int(community.channel_by_name("general")["id"]))
    )
    assert hours[19] > 3 * hours[4]  # evenings are busier than the small hours


def test_channels_and_threads(community: Community) -> None:
    channels = community.all_channels()
    types = Counter(c["type"] for c in channels)
    assert types[0] >= 5 and types[5] == 1 and types[4] >= 1 and types[2] == 1
    assert types[15] == 1 and types[12] == 1 and types[11] >= 6
    by_id = {c["id"]: c for c in channels}
    for channel in channels:
        held = community.channel_messages(int(channel["id"]))
        if channel["type"] in (2, 4, 15):
            assert held == []
        if channel["type"] in (0, 2, 5, 15, 11, 12):
            assert channel["last_message_id"] == (held[-1]["id"] if held else None)
    threads = community.threads()
    assert any(t["thread_metadata"]["archived"] for t in threads)
    assert any(not t["thread_metadata"]["archived"] for t in threads)
    private = [t for t in threads if t["type"] == 12]
    assert private[0]["thread_metadata"]["archived"]
    for thread in threads:
        held = community.channel_messages(int(thread["id"]))
        assert held and thread["message_count"] == len(held)
        meta = thread["thread_metadata"]
        if meta["archived"]:
            assert meta["archive_timestamp"] >= held[-1]["timestamp"]
            assert datetime.fromisoformat(meta["archive_timestamp"]) < END
        if by_id[thread["parent_id"]]["type"] == 15:
            assert held[0]["id"] == thread["id"]  # a forum post opens with the thread's id
    forum_threads = [t for t in threads if by_id[t["parent_id"]]["type"] == 15]
    assert len(forum_threads) >= 4
    assert community.channel_messages(community.report_channel_id) == []


def test_page_matches_endpoint_semantics(small: Community) -> None:
    channel_id = int(small.channel_by_name("general")["id"])
    ids = small.message_ids(channel_id)
    assert [int(m["id"]) for m in small.page(channel_id, limit=5)] == ids[-5:][::-1]
    after = [int(m["id"]) for m in small.page(channel_id, after=ids[9], limit=4)]
    assert after == ids[10:14][::-1]
    before = [int(m["id"]) for m in small.page(channel_id, before=ids[9], limit=4)]
    assert before == ids[5:9][::-1]
    around = [int(m["id"]) for m in small.page(channel_id, around=ids[20], limit=5)]
    assert ids[20] in around and around == sorted(around, reverse=True)


def test_append_message(small: Community) -> None:
    community = generate_community(seed=11, members=30, days=5, end=END, messages_per_day=40)
    channel_id = int(community.channel_by_name("pvm")["id"])
    last = community.message_ids(channel_id)[-1]
    first = community.append_message(channel_id, "fresh message")
    second = community.append_message(community.bridge_channel_id)
    reply = community.append_message(channel_id, "replying", reply_to=int(first["id"]))
    assert int(first["id"]) > last and int(second["id"]) > int(first["id"])
    assert (int(first["id"]) >> 22) + DISCORD_EPOCH_MS == _ms(first["timestamp"])
    channel = community.channel(channel_id)
    assert channel is not None and channel["last_message_id"] == reply["id"]
    assert CHAT.match(second["content"]) and second["webhook_id"] == str(BRIDGE_WEBHOOK_ID)
    assert reply["type"] == 19 and reply["referenced_message"]["id"] == first["id"]
    assert community.channel_messages(channel_id)[-2:] == [first, reply]


# -- DiscordChatExporter writer ----------------------------------------------------------


def _load(path: Path) -> dict[str, object]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def test_dce_export_matches_channel(small: Community, tmp_path: Path) -> None:
    channel_id = int(small.channel_by_name("general")["id"])
    raw = small.channel_messages(channel_id)
    files = write_dce_export(small, channel_id, tmp_path / "general.json")
    assert files == [tmp_path / "general.json"]
    data = _load(files[0])
    assert list(data) == ["guild", "channel", "dateRange", "exportedAt", "messages", "messageCount"]
    messages = data["messages"]
    assert isinstance(messages, list)
    assert data["messageCount"] == len(messages) == len(raw)
    assert [m["id"] for m in messages] == [m["id"] for m in raw]
    assert data["channel"] == {
        "id": str(channel_id),
        "type": "GuildTextChat",
        "categoryId": small.channel_by_name("Clan")["id"],
        "category": "Clan",
        "name": "general",
        "topic": "Clan chatter. Be nice.",
    }
    assert list(messages[0])[:7] == [
        "id",
        "type",
        "timestamp",
        "timestampEdited",
        "callEndedTimestamp",
        "isPinned",
        "content",
    ]
    names = {
        0: "Default",
        19: "Reply",
        7: "GuildMemberJoin",
        6: "ChannelPinnedMessage",
        18: "ThreadCreated",
    }
    nicks = {m.id: m.nick for m in small.members if m.nick}
    for exported, original in zip(messages, raw, strict=True):
        assert exported["type"] == names.get(original["type"], str(original["type"]))
        assert DCE_TIME.match(exported["timestamp"]) and exported["timestamp"].endswith("+01:00")
        assert not re.search(r"\.\d*0[+-]", exported["timestamp"])  # trailing zeros trimmed
        assert _ms(exported["timestamp"]) == _ms(original["timestamp"])
        author_id = int(original["author"]["id"])
        if author_id in nicks:
            assert exported["author"]["nickname"] == nicks[author_id]
        assert exported["author"]["discriminator"] in ("0000", original["author"]["discriminator"])
        assert "<:" not in exported["content"] and "<@" not in exported["content"]
        if original["type"] == 7:
            assert exported["content"] == "Joined the server."
        if original["type"] == 19:
            assert exported["reference"]["messageId"] == original["message_reference"]["message_id"]
        if "reference" not in exported:
            assert "message_reference" not in original


def test_dce_export_bridge_renders_emoji(small: Community, tmp_path: Path) -> None:
    files = write_dce_export(small, small.bridge_channel_id, tmp_path, offset="-05:00")
    assert files[0].name.startswith("Iron Lanterns - Clan - clan-chat [")
    data = _load(files[0])
    messages = data["messages"]
    assert isinstance(messages, list)
    chat = [m for m in messages if m["content"].startswith(":")]
    assert chat and all(CHAT.match(m["content"]) for m in chat)
    assert any("::Ironman_chat_badge: **" in m["content"] for m in chat) or any(
        "::Hardcore_ironman_chat_badge: **" in m["content"] for m in chat
    )
    assert all(m["inlineEmojis"] for m in chat)
    author = messages[0]["author"]
    assert author["id"] == str(BRIDGE_WEBHOOK_ID)
    assert (author["isBot"], author["discriminator"], author["nickname"]) == (
        True,
        "0000",
        "Clan Chat",
    )
    assert messages[0]["timestamp"].endswith("-05:00")


def test_dce_export_partitions(small: Community, tmp_path: Path) -> None:
    channel_id = small.bridge_channel_id
    raw_ids = [m["id"] for m in small.channel_messages(channel_id)]
    files = write_dce_export(small, channel_id, tmp_path / "cc.json", part_size=400)
    expected_parts = -(-len(raw_ids) // 400)
    assert len(files) == expected_parts >= 3
    assert files[1].name == "cc [part 2].json"
    collected = []
    for path in files:
        data = _load(path)
        messages = data["messages"]
        assert isinstance(messages, list)
        assert data["messageCount"] == len(messages) <= 400
        collected += [m["id"] for m in messages]
    assert collected == raw_ids


def test_dce_export_empty_channel_and_dst_zone(small: Community, tmp_path: Path) -> None:
    files = write_dce_export(small, small.report_channel_id, tmp_path / "r.json", part_size=10)
    data = _load(files[0])
    assert len(files) == 1 and data["messages"] == [] and data["messageCount"] == 0
    assert '"messages": [],' in files[0].read_text(encoding="utf-8")
    big_window = generate_community(
        seed=5, members=25, days=40, end=datetime(2026, 4, 15, tzinfo=UTC), messages_per_day=30
    )
    channel_id = int(big_window.channel_by_name("general")["id"])
    path = write_dce_export(big_window, channel_id, tmp_path / "g.json", offset="Europe/Amsterdam")[
        0
    ]
    messages = _load(path)["messages"]
    assert isinstance(messages, list)
    offsets = {m["timestamp"][-6:] for m in messages}
    assert offsets == {"+01:00", "+02:00"}
