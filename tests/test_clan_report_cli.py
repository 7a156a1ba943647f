"""`report clan` and `member ...` driven as a user drives them: real commands, real files.

A clan is built through the commands themselves: DiscordChatExporter files written here by
hand go in with `import discord-export`, the clan's Wise Old Man group comes from the fake
server with `harvest wom`. Every expected number is computed straight from those sources
(the fake's snapshots, the chat lines written) by the rules the README states, never
through clanpulse's own code.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import zip_longest
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from click.testing import Result

from clanpulse.demo.fake_wom import FakeWomConfig, FakeWomServer
from clanpulse.demo.wom_data import WomGroup, generate_wom_group, parse_wom_time
from tests.cli_support import clanpulse

# the group's history ends at the start of the current UTC day: the harvest backfills a
# year back from the real clock, so the history must be recent
END = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
AS_OF = END
DISCORD_EPOCH_MS = 1420070400000
GUILD_ID = 1187817879744151553
GENERAL_ID = 1187817881589645314
CLAN_CHAT_ID = 1188046507396431875
BRIDGE_ID = 1192928016972513286
NEW_DAYS = 14

# Discord people: (id, username, nickname)
FERN_D = (574204114108547089, "fernwhistle", "Fern Whistle")  # links itself: same name in game
MARROW_D = (745019384266883091, "marrowgate", "Marrow")  # linked by hand only
MAPLE_1 = (806060084428931093, "maple1", "Maple Field")  # two Discord people, one name
MAPLE_2 = (296933507727491095, "maple2", "Maple Field")
PIPE_D = (412345678901234567, "barstool", "Bar | Stool")

# in-game players: (display name, role, joined, left); ids are given in this order
FERN, MARROW, SEA, TIDE, QUILL, ROOK, NED, SALT = range(701101, 701109)
PLAYERS = [
    ("Fern Whistle", "owner", None, None),
    ("Marrow Gate", "deputy_owner", None, None),
    ("Sea_Lark", "administrator", None, None),
    ("Tide Pool", "recruit", END - timedelta(days=10), None),  # new
    ("Iron Quill", "zenyte", None, None),  # renamed to Quill Pen 5 days ago
    ("Rook Old", "onyx", None, None),  # renamed to Rook 35 days ago
    ("Rookie Ned", "slayer", None, None),
    ("Old Salt", "saviour", None, END - timedelta(days=8)),  # left 8 days ago
]
QUILL_RENAMED = END - timedelta(days=5)
ROOK_RENAMED = END - timedelta(days=35)


def ago(days: float = 0, **more: float) -> datetime:
    return AS_OF - timedelta(days=days, **more)


# What was said: Discord messages by person, relayed clan chat lines by in-game name.
DISCORD_LINES: dict[tuple[int, str, str], list[datetime]] = {
    FERN_D: [
        ago(0),  # exactly at as_of: in no window (windows are half-open)
        ago(hours=1),
        ago(2),
        ago(7),  # exactly 7 days back: inside 7d
        ago(7, seconds=1),
        ago(20),
        ago(45),
        ago(100),
        AS_OF + timedelta(days=2, hours=12),  # after as_of: counts only for later reports
    ],
    MARROW_D: [ago(1), ago(2), ago(3), ago(4), ago(25)],
    MAPLE_1: [ago(3)],
    MAPLE_2: [ago(4)],
    PIPE_D: [ago(2)],
}
BRIDGE_LINES: dict[str, list[datetime]] = {
    "Fern Whistle": [ago(3), ago(10)],
    "Marrow Gate": [ago(5)],
    "Sea_Lark": [ago(1), ago(2), ago(3), ago(4), ago(5), ago(6), ago(6, hours=1), ago(29), ago(40)],
    "Tide Pool": [ago(1), ago(2)],
    "Iron Quill": [ago(12), ago(11), ago(10)],  # said under the old name, before the rename
    "Quill Pen": [ago(1)],
    "Rook": [ago(31), ago(32), ago(60)],  # quiet for a month, no XP change: inactive
    "Rookie Ned": [ago(1)],
    "Old Salt": [ago(9)],  # left since: in no row
}


# --------------------------------------------------------------------------------------
# sources


def snowflake(moment: datetime, increment: int) -> int:
    return ((int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22) | increment


def dce_author(uid: int, username: str, nickname: str, *, bot: bool = False) -> dict[str, Any]:
    return {
        "id": str(uid),
        "name": username,
        "discriminator": "0000",
        "nickname": nickname,
        "color": None,
        "isBot": bot,
        "roles": [],
        "avatarUrl": "https://cdn.discordapp.com/embed/avatars/0.png",
    }


def dce_file(
    path: Path, channel_id: int, name: str, lines: list[tuple[datetime, dict[str, Any], str]]
) -> Path:
    """A DiscordChatExporter JSON file (default rendering) of one channel."""
    messages = []
    for index, (when, author, content) in enumerate(sorted(lines, key=lambda x: x[0])):
        messages.append(
            {
                "id": str(snowflake(when, index % 4096)),
                "type": "Default",
                "timestamp": when.astimezone(ZoneInfo("Europe/Amsterdam")).isoformat(),
                "timestampEdited": None,
                "callEndedTimestamp": None,
                "isPinned": False,
                "content": content,
                "author": author,
                "attachments": [],
                "embeds": [],
                "stickers": [],
                "reactions": [],
                "mentions": [],
                "inlineEmojis": [],
            }
        )
    document = {
        "guild": {"id": str(GUILD_ID), "name": "Grey Heron", "iconUrl": ""},
        "channel": {
            "id": str(channel_id),
            "type": "GuildTextChat",
            "categoryId": "1187817880499126277",
            "category": "Text Channels",
            "name": name,
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": datetime.now(UTC).isoformat(),
        "messages": messages,
        "messageCount": len(messages),
    }
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def write_exports(
    folder: Path, *, discord: dict[tuple[int, str, str], list[datetime]], bridge: bool = True
) -> Path:
    folder.mkdir(exist_ok=True)
    general = [
        (when, dce_author(*person), f"message {i}")
        for person, times in discord.items()
        for i, when in enumerate(times)
    ]
    dce_file(
        folder / "Grey Heron - general [1187817881589645314].json", GENERAL_ID, "general", general
    )
    if not bridge:
        return folder
    relay = dce_author(BRIDGE_ID, "Clan Chat", "Clan Chat", bot=True)
    relayed = [
        (when, relay, f":Zenyte: **{name}**: line {i}")
        for name, times in BRIDGE_LINES.items()
        for i, when in enumerate(times)
    ]
    relayed.append((ago(3, hours=2), relay, "Rook has reached Slayer level 85\\."))  # no one's
    dce_file(
        folder / "Grey Heron - clan-chat [1188046507396431875].json",
        CLAN_CHAT_ID,
        "clan-chat",
        relayed,
    )
    return folder


def make_group() -> WomGroup:
    group = generate_wom_group(
        seed=5, players=PLAYERS, days=40, end=END, snapshot_every_hours=24, name_changes=0
    )
    group.rename(QUILL, "Quill Pen", QUILL_RENAMED)
    group.rename(ROOK, "Rook", ROOK_RENAMED)
    return group


# --------------------------------------------------------------------------------------
# running the commands


def clan_json(*extra: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(clanpulse("report", "clan", "--format", "json", *extra).stdout)
    return doc


@dataclass
class Clan:
    group: WomGroup
    server: FakeWomServer
    tmp: Path

    def harvest(self) -> Result:
        return clanpulse("harvest", "wom")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> Path:
    for key in list(os.environ):
        if key.startswith("CLANPULSE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("CLANPULSE_DATABASE_URL", db_url)
    monkeypatch.setenv("CLANPULSE_DISCORD_BRIDGE_AUTHORS", str(BRIDGE_ID))
    return tmp_path


@pytest.fixture
def clan(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Clan]:
    """Chat imported first, then the Wise Old Man harvest (which also links accounts)."""
    group = make_group()
    with FakeWomServer(group, FakeWomConfig(rate_limits=False)) as server:
        monkeypatch.setenv("CLANPULSE_WOM_API_URL", server.url)
        monkeypatch.setenv("CLANPULSE_WOM_GROUP_ID", str(group.id))
        exports = write_exports(clean_env / "exports", discord=DISCORD_LINES)
        clanpulse("import", "discord-export", str(exports))
        found = Clan(group, server, clean_env)
        found.harvest()
        yield found


# --------------------------------------------------------------------------------------
# expectations, from the sources


def when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def roster(group: WomGroup) -> dict[int, dict[str, Any]]:
    """Current members as the fake's group endpoint lists them."""
    return {m["playerId"]: m for m in group.group_json()["memberships"]}


def roster_joined(membership: dict[str, Any]) -> datetime:
    # the in-game join date the RuneLite plugin synced, else when added to the WOM group
    return parse_wom_time(membership["clientSyncJoinedAt"] or membership["createdAt"])


def readings(group: WomGroup, pid: int, as_of: datetime) -> list[tuple[datetime, int]]:
    """(createdAt, overall XP) of every snapshot before as_of, oldest first."""
    return [
        (parse_wom_time(s["createdAt"]), s["data"]["skills"]["overall"]["experience"])
        for s in group.snapshots(pid)
        if parse_wom_time(s["createdAt"]) < as_of
    ]


def xp_gained(group: WomGroup, pid: int, as_of: datetime, days: int) -> int | None:
    """WOM's rule: first snapshot at or after the window start, latest before as_of."""
    seen = readings(group, pid, as_of)
    inside = [xp for at, xp in seen if at >= as_of - timedelta(days=days)]
    if not inside:
        return None
    return seen[-1][1] - inside[0]


def last_xp_change(group: WomGroup, pid: int, as_of: datetime) -> datetime | None:
    """When the current XP was first reached; None if it never changed in the history."""
    seen = readings(group, pid, as_of)
    if not seen:
        return None
    current = seen[-1][1]
    first = next(at for at, xp in seen if xp == current)
    return None if first == seen[0][0] else first


def counts(times: list[datetime], as_of: datetime) -> dict[str, int]:
    out = {}
    for window, days in (("7d", 7), ("30d", 30), ("90d", 90), ("all", None)):
        start = None if days is None else as_of - timedelta(days=days)
        out[window] = sum(1 for t in times if t < as_of and (start is None or t >= start))
    return out


def chat_of(
    pid: int, group: WomGroup, *, linked: dict[int, list[tuple[int, str, str]]]
) -> list[datetime]:
    """Every counted line of a player: relayed under any of their names, plus linked Discord."""
    names = {group.player(pid).display_name}
    names |= {c["oldName"] for c in group.name_changes() if c["playerId"] == pid}
    times = [t for name in names for t in BRIDGE_LINES.get(name, [])]
    for person in linked.get(pid, []):
        times += DISCORD_LINES[person]
    return times


def expected_rows(
    group: WomGroup,
    as_of: datetime,
    *,
    inactive_days: int = 30,
    linked: dict[int, list[tuple[int, str, str]]] | None = None,
    excluded: frozenset[int] = frozenset(),
) -> dict[str, dict[str, Any]]:
    linked = {FERN: [FERN_D]} if linked is None else linked
    rows = {}
    for pid, membership in roster(group).items():
        if pid in excluded:
            continue
        player = group.player(pid)
        joined = roster_joined(membership)
        chat = chat_of(pid, group, linked=linked)
        last_msg = max((t for t in chat if t < as_of), default=None)
        last_xp = last_xp_change(group, pid, as_of)
        idle_since = as_of - timedelta(days=inactive_days)
        if joined >= as_of - timedelta(days=NEW_DAYS):
            status = "new"
        elif (last_msg is None or last_msg < idle_since) and (
            last_xp is None or last_xp < idle_since
        ):
            status = "inactive"
        else:
            status = "active"
        rows[player.display_name] = {
            "name": player.display_name,
            "role": membership["role"],
            "joined_at": joined,
            "status": status,
            "messages": counts(chat, as_of),
            "xp_gained": {
                w: xp_gained(group, pid, as_of, d)
                for w, d in (("7d", 7), ("30d", 30), ("90d", 90), ("365d", 365))
            },
            "last_message_at": last_msg,
            "last_xp_change_at": last_xp,
        }
    return rows


def actual_rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for m in doc["members"]:
        found[m["name"]] = {
            "name": m["name"],
            "role": m["role"],
            "joined_at": when(m["joined_at"]),
            "status": m["status"],
            "messages": m["messages"],
            "xp_gained": m["xp_gained"],
            "last_message_at": when(m["last_message_at"]),
            "last_xp_change_at": when(m["last_xp_change_at"]),
        }
    assert len(found) == len(doc["members"]), "one row per member"
    return found


def top3(rows: dict[str, dict[str, Any]], key: str) -> list[tuple[str, int]]:
    ranked = [(name, row[key]["30d"]) for name, row in rows.items() if row[key]["30d"]]
    ranked.sort(key=lambda item: (-item[1], item[0].casefold()))
    return ranked[:3]


def check_summary(doc: dict[str, Any], rows: dict[str, dict[str, Any]]) -> None:
    summary = doc["summary"]
    assert summary["members"] == len(rows)
    assert summary["by_status"] == {
        s: sum(1 for r in rows.values() if r["status"] == s) for s in ("new", "active", "inactive")
    }
    assert summary["messages_30d"] == sum(r["messages"]["30d"] for r in rows.values())
    assert summary["xp_gained_30d"] == sum(r["xp_gained"]["30d"] or 0 for r in rows.values())
    assert [(t["name"], t["messages"]) for t in summary["top_messages_30d"]] == top3(
        rows, "messages"
    )
    assert [(t["name"], t["xp_gained"]) for t in summary["top_xp_30d"]] == top3(rows, "xp_gained")
    by_name = {m["name"]: m["member_id"] for m in doc["members"]}
    for entry in summary["top_messages_30d"] + summary["top_xp_30d"]:
        assert entry["member_id"] == by_name[entry["name"]]


# --------------------------------------------------------------------------------------
# the JSON report


def test_the_scenario_is_what_the_tests_think_it_is(clan: Clan) -> None:
    """Guards the expectations below: the group has the variety they rely on."""
    rows = expected_rows(clan.group, AS_OF)
    assert set(rows) == {
        "Fern Whistle",
        "Marrow Gate",
        "Sea_Lark",
        "Tide Pool",
        "Quill Pen",
        "Rook",
        "Rookie Ned",
    }
    assert {r["status"] for r in rows.values()} == {"new", "active", "inactive"}
    assert any(r["xp_gained"]["7d"] is None for r in rows.values())  # no snapshot in 7 days
    assert len({r["messages"]["30d"] for r in rows.values()}) >= 4  # top 3 without ties


def test_one_row_per_current_member_with_chat_and_xp_by_the_rules(clan: Clan) -> None:
    doc = clan_json("--as-of", AS_OF.isoformat())
    assert when(doc["as_of"]) == AS_OF
    assert doc["inactive_days"] == 30
    expected = expected_rows(clan.group, AS_OF)
    assert actual_rows(doc) == expected
    # members who left are not rows; Discord people without an in-game account neither
    names = [m["name"] for m in doc["members"]]
    assert "Old Salt" not in names and "Maple Field" not in names and "Marrow" not in names
    # sorted by messages 30d, then XP 30d, descending, then name
    keys = [
        (-m["messages"]["30d"], -(m["xp_gained"]["30d"] or 0), m["name"].casefold())
        for m in doc["members"]
    ]
    assert keys == sorted(keys)
    check_summary(doc, expected)
    assert [m["name"] for m in doc["summary"]["joined_30d"]] == ["Tide Pool"]
    assert when(doc["summary"]["joined_30d"][0]["at"]) == expected["Tide Pool"]["joined_at"]
    assert [
        (r["old_name"], r["new_name"], when(r["at"])) for r in doc["summary"]["renames_30d"]
    ] == [("Iron Quill", "Quill Pen", QUILL_RENAMED)]  # Rook's rename is 35 days old


def test_later_as_of_and_inactive_days_setting(clan: Clan, monkeypatch: pytest.MonkeyPatch) -> None:
    later = AS_OF + timedelta(days=3)
    monkeypatch.setenv("CLANPULSE_INACTIVE_DAYS", "1")
    doc = clan_json("--as-of", later.isoformat())
    assert doc["inactive_days"] == 1
    expected = expected_rows(clan.group, later, inactive_days=1)
    assert actual_rows(doc) == expected
    statuses = {name: row["status"] for name, row in expected.items()}
    # Fern wrote a day and a half before; Tide Pool is new whatever they do; the rest is idle
    assert statuses["Fern Whistle"] == "active" and statuses["Tide Pool"] == "new"
    assert statuses["Sea_Lark"] == "inactive"
    check_summary(doc, expected)


def test_a_bare_as_of_date_is_midnight_in_the_configured_zone(
    clan: Clan, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLANPULSE_TIMEZONE", "Pacific/Auckland")
    moment = datetime.combine(AS_OF.date(), time(0), tzinfo=ZoneInfo("Pacific/Auckland"))
    doc = clan_json("--as-of", AS_OF.date().isoformat())
    assert when(doc["as_of"]) == moment
    assert actual_rows(doc) == expected_rows(clan.group, moment.astimezone(UTC))


def test_a_member_who_left_within_30_days_is_listed_as_left(clan: Clan) -> None:
    doc = clan_json("--as-of", AS_OF.isoformat())
    salt = clan.group.player(SALT)
    assert salt.left_at is not None
    assert [(c["name"], when(c["at"])) for c in doc["summary"]["left_30d"]] == [
        ("Old Salt", salt.left_at)
    ]


def test_a_member_who_leaves_between_harvests_is_no_row_but_listed_as_left(clan: Clan) -> None:
    before = datetime.now(UTC)
    # Rookie Ned leaves the clan on Wise Old Man; the next harvest no longer sees him
    clan.group.player(NED).left_at = before
    clan.harvest()
    after = datetime.now(UTC)
    later = after + timedelta(seconds=1)
    doc = clan_json("--as-of", later.isoformat())
    assert "Rookie Ned" not in [m["name"] for m in doc["members"]]
    left = [(c["name"], when(c["at"])) for c in doc["summary"]["left_30d"]]
    assert [name for name, _ in left if name == "Rookie Ned"] == ["Rookie Ned"]
    (at,) = [at for name, at in left if name == "Rookie Ned"]
    assert at is not None and before - timedelta(seconds=1) <= at <= after
    assert doc["summary"]["members"] == len(doc["members"]) == 6


# --------------------------------------------------------------------------------------
# every format carries the same rows


def _minute(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _number(text: str) -> int | None:
    text = text.strip().replace(",", "")
    return None if text == "" else int(float(text))


def _column(header: list[str], pattern: str) -> int:
    found = [i for i, title in enumerate(header) if re.fullmatch(pattern, title.strip(), re.I)]
    assert len(found) == 1, f"no single column {pattern!r} in {header}"
    return found[0]


def _normalized_row(header: list[str], cells: list[Any]) -> dict[str, Any]:
    """A sheet row as comparable values, whatever the format wrote (text, numbers, times)."""

    def text(i: int) -> str:
        value = cells[i]
        return "" if value is None else str(value).strip()

    def number(i: int) -> int | None:
        value = cells[i]
        if value is None or isinstance(value, int | float):
            return None if value is None else int(value)
        return _number(str(value))

    def moment(i: int) -> str:
        value = cells[i]
        if value is None or value == "":
            return ""
        if isinstance(value, datetime):
            return _minute(value if value.tzinfo else value.replace(tzinfo=UTC))
        parsed = datetime.fromisoformat(str(value).strip())
        return _minute(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))

    windows = ("7d", "30d", "90d", "all")
    return {
        "name": text(_column(header, "member")),
        "role": text(_column(header, "role")),
        "status": text(_column(header, "status")),
        "joined": moment(_column(header, r"joined.*"))[:10],
        "messages": {w: number(_column(header, rf"(msgs|messages) {w}")) for w in windows},
        "xp": {w: number(_column(header, rf"xp {w}")) for w in ("7d", "30d", "90d", "365d")},
        "last_message": moment(_column(header, r"last message.*")),
        "last_xp_change": moment(_column(header, r"last xp change.*")),
    }


def _json_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": m["name"],
            "role": m["role"] or "",
            "status": m["status"],
            "joined": _minute(when(m["joined_at"]))[:10],
            "messages": m["messages"],
            "xp": m["xp_gained"],
            "last_message": _minute(when(m["last_message_at"])),
            "last_xp_change": _minute(when(m["last_xp_change_at"])),
        }
        for m in doc["members"]
    ]


def _markdown_cells(line: str) -> list[str]:
    inner = line.strip()
    assert inner.startswith("|") and inner.endswith("|"), line
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner[1:-1])]


def markdown_section(text: str, title: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    start = lines.index(f"## {title}")
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(_markdown_cells(line))
    header, _rule, *rows = table
    assert all(len(row) == len(header) for row in rows), "a cell broke the table"
    return header, rows


def table_rows(text: str, title: str) -> tuple[list[str], list[list[str]]]:
    """The rows of one Rich table: cells between '│', wrapped lines joined back."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    header: list[str] = []
    rows: list[list[str]] = []
    for line in lines[start + 1 :]:
        if line.startswith("┃"):
            cells = [c.strip() for c in line.strip("┃").split("┃")]
            header = (
                cells
                if not header
                else [f"{a} {b}".strip() for a, b in zip_longest(header, cells, fillvalue="")]
            )
        elif line.startswith("│"):
            cells = [c.strip() for c in line.rstrip().strip("│").split("│")]
            if rows and all(c == "" for c in cells[4:]):  # a wrapped name or role goes on
                rows[-1] = [
                    f"{a} {b}".strip() for a, b in zip_longest(rows[-1], cells, fillvalue="")
                ]
            else:
                rows.append(cells)
        elif line.startswith("└"):
            break
    return header, rows


def test_csv_xlsx_markdown_and_table_carry_the_json_rows(clan: Clan) -> None:
    as_of = ["--as-of", AS_OF.isoformat()]
    doc = clan_json(*as_of)
    expected = _json_rows(doc)
    assert len(expected) == 7

    # CSV: the members
    reader = list(
        csv.reader(io.StringIO(clanpulse("report", "clan", *as_of, "--format", "csv").stdout))
    )
    header, *rows = reader
    assert [_normalized_row(header, r) for r in rows] == expected

    # XLSX: one sheet per section, members last
    path = clan.tmp / "clan.xlsx"
    clanpulse("report", "clan", *as_of, "--format", "xlsx", "-o", str(path))
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["Summary", "Top 30d", "Joined and left", "Renames", "Members"]
    sheet = list(book["Members"].iter_rows(values_only=True))
    header = [str(c) for c in sheet[0]]
    members = [list(r) for r in sheet[1 : 1 + len(expected)]]
    assert [_normalized_row(header, r) for r in members] == expected
    assert all(c is None for c in sheet[1 + len(expected)]), "no extra member row"
    summary = dict(list(book["Summary"].iter_rows(values_only=True))[1:])
    assert summary["Current members"] == doc["summary"]["members"]
    assert summary["Messages, last 30 days"] == doc["summary"]["messages_30d"]
    assert summary["XP gained, last 30 days"] == doc["summary"]["xp_gained_30d"]
    for status, count in doc["summary"]["by_status"].items():
        assert summary[f"Status: {status}"] == count
    top = [r for r in list(book["Top 30d"].iter_rows(values_only=True))[1:] if r[0]]
    assert [(r[2], r[3]) for r in top if r[0] == "Messages"] == [
        (t["name"], t["messages"]) for t in doc["summary"]["top_messages_30d"]
    ]
    assert [(r[2], r[3]) for r in top if r[0] == "XP gained"] == [
        (t["name"], t["xp_gained"]) for t in doc["summary"]["top_xp_30d"]
    ]
    renames = [r for r in list(book["Renames"].iter_rows(values_only=True))[1:] if r[0]]
    assert [(r[0], r[1]) for r in renames] == [("Iron Quill", "Quill Pen")]

    # Markdown: every section, the same members
    text = clanpulse("report", "clan", *as_of, "--format", "markdown").stdout
    header, rows = markdown_section(text, "Members")
    assert [_normalized_row(header, r) for r in rows] == expected
    _, top_rows = markdown_section(text, "Top 30d")
    assert [r[2] for r in top_rows] == [t["name"] for t in doc["summary"]["top_messages_30d"]] + [
        t["name"] for t in doc["summary"]["top_xp_30d"]
    ]


def _squashed(row: dict[str, Any], *, last_xp_change: bool = False) -> dict[str, Any]:
    # a narrow column wraps a name at a space or folds it anywhere: compare without spaces
    return {
        **row,
        "name": row["name"].replace(" ", ""),
        "role": row["role"].replace(" ", ""),
        "last_xp_change": row["last_xp_change"] if last_xp_change else None,
    }


def _table_forms(clan: Clan, as_of: list[str]) -> dict[str, str]:
    piped = clanpulse("report", "clan", *as_of, "--format", "table").stdout
    path = clan.tmp / "clan.txt"
    clanpulse("report", "clan", *as_of, "--format", "table", "-o", str(path))
    return {"piped": piped, "file": path.read_text(encoding="utf-8")}


def test_the_table_carries_the_json_rows(clan: Clan) -> None:
    as_of = ["--as-of", AS_OF.isoformat()]
    expected = _json_rows(clan_json(*as_of))
    for form, text in _table_forms(clan, as_of).items():
        header, rows = table_rows(text, "Members")
        # every column up to the last message (the last one is pinned below)
        cut = _column(header, r"last message.*") + 1
        found = [_normalized_row([*header[:cut], "Last XP change"], [*r[:cut], None]) for r in rows]
        assert [_squashed(r) for r in found] == [_squashed(r) for r in expected], form


def test_the_table_has_every_column_when_written_to_a_pipe_or_file(clan: Clan) -> None:
    as_of = ["--as-of", AS_OF.isoformat()]
    expected = _json_rows(clan_json(*as_of))
    for text in _table_forms(clan, as_of).values():
        header, rows = table_rows(text, "Members")
        assert [_squashed(_normalized_row(header, r), last_xp_change=True) for r in rows] == [
            _squashed(r, last_xp_change=True) for r in expected
        ]


def test_markdown_escapes_a_pipe_in_a_name(clean_env: Path) -> None:
    # no roster harvested: every member is reported, under their Discord name
    people = {PIPE_D: DISCORD_LINES[PIPE_D], MARROW_D: DISCORD_LINES[MARROW_D]}
    exports = write_exports(clean_env / "exports", discord=people, bridge=False)
    clanpulse("import", "discord-export", str(exports))
    as_of = ["--as-of", AS_OF.isoformat()]
    text = clanpulse("report", "clan", *as_of, "--format", "markdown").stdout
    assert "Bar \\| Stool" in text
    header, rows = markdown_section(text, "Members")  # asserts every row has every cell
    names = [row[header.index("Member")] for row in rows]
    assert sorted(names) == ["Bar | Stool", "Marrow"]
    assert [m["name"] for m in clan_json(*as_of)["members"]] == ["Marrow", "Bar | Stool"]
    _, top = markdown_section(text, "Top 30d")
    assert [(row[2], row[3]) for row in top] == [("Marrow", "5"), ("Bar | Stool", "1")]


# --------------------------------------------------------------------------------------
# member commands


def every_format(clan: Clan, *as_of: str) -> dict[str, str]:
    """The whole report as text, in each format (the XLSX as all its cells)."""
    out = {
        fmt: clanpulse("report", "clan", *as_of, "--format", fmt).stdout
        for fmt in ("json", "csv", "markdown", "table")
    }
    path = clan.tmp / "every.xlsx"
    clanpulse("report", "clan", *as_of, "--format", "xlsx", "-o", str(path))
    book = openpyxl.load_workbook(path)
    out["xlsx"] = "\n".join(
        str(cell)
        for ws in book.worksheets
        for row in ws.iter_rows(values_only=True)
        for cell in row
    )
    return out


def member_ids_by_discord_id(*as_of: str) -> dict[int, int]:
    doc = json.loads(clanpulse("report", "activity", "--format", "json", *as_of).stdout)
    return {
        int(a["id"]): m["member_id"]
        for m in doc["members"]
        for a in m["accounts"]
        if a["platform"] == "discord"
    }


def test_an_opted_out_member_is_in_no_format_total_or_ranking(clan: Clan) -> None:
    as_of = ("--as-of", AS_OF.isoformat())
    before = clan_json(*as_of)
    assert "Quill Pen" in [t["name"] for t in before["summary"]["top_messages_30d"]]
    clanpulse("member", "opt-out", "Quill Pen")
    doc = clan_json(*as_of)
    expected = expected_rows(clan.group, AS_OF, excluded=frozenset({QUILL}))
    assert actual_rows(doc) == expected
    check_summary(doc, expected)  # totals and top lists without them
    assert doc["summary"]["renames_30d"] == []  # their rename went with them
    for fmt, text in every_format(clan, *as_of).items():
        assert "Quill" not in text, fmt  # neither the name nor the old one
    clan.harvest()  # a harvest does not bring them back
    assert "Quill Pen" not in [m["name"] for m in clan_json(*as_of)["members"]]
    clanpulse("member", "opt-out", "Quill Pen", "--undo")
    assert clan_json(*as_of) == before


def test_link_by_hand_counts_the_discord_messages_for_the_clan_member(clan: Clan) -> None:
    as_of = ("--as-of", AS_OF.isoformat())
    before = clan_json(*as_of)
    clanpulse("member", "link", "Marrow Gate", "discord:marrowgate")
    both = {FERN: [FERN_D], MARROW: [MARROW_D]}
    expected = expected_rows(clan.group, AS_OF, linked=both)
    assert expected["Marrow Gate"]["messages"]["30d"] == 6
    doc = clan_json(*as_of)
    assert actual_rows(doc) == expected
    check_summary(doc, expected)
    shown = clanpulse("member", "show", "Marrow Gate").output
    assert "Marrow Gate" in shown and re.search(r"\bMarrow\b(?! Gate)", shown)  # both accounts
    listed = clanpulse("member", "list").output
    for name in ("Fern Whistle", "Marrow Gate", "Quill Pen", "Rook", "Maple Field", "Old Salt"):
        assert name in listed, name
    clan.harvest()  # a link made by hand stays
    assert actual_rows(clan_json(*as_of)) == expected
    clanpulse("member", "unlink", "discord:marrowgate")
    assert clan_json(*as_of) == before


def test_member_names_match_exactly_and_ambiguity_is_a_usage_error(clan: Clan) -> None:
    ids = member_ids_by_discord_id()
    # two Discord people are called "Maple Field": exit 2, naming both
    ambiguous = clanpulse("member", "show", "Maple Field", code=2)
    assert f"#{ids[MAPLE_1[0]]}" in ambiguous.output and f"#{ids[MAPLE_2[0]]}" in ambiguous.output
    assert clanpulse("member", "show", f"#{ids[MAPLE_1[0]]}").exit_code == 0
    assert clanpulse("member", "show", "discord:maple2").exit_code == 0
    # never by substring
    assert "no member" in clanpulse("member", "show", "Rookie", code=2).output
    rook = clanpulse("member", "show", "rook").output
    assert "Rook" in rook and "Rookie Ned" not in rook
    clanpulse("member", "link", "Rook", "discord:Maple", code=2)
    clanpulse("member", "opt-out", "Ned", code=2)
    # unlinking Fern's Discord account makes "Fern Whistle" two people: ambiguous now
    clanpulse("member", "unlink", "discord:fernwhistle")
    twice = clanpulse("member", "show", "Fern Whistle", code=2)
    assert twice.output.count("Fern Whistle") >= 2
    clan.harvest()  # a hand-made unlink is never undone
    rows = actual_rows(clan_json("--as-of", AS_OF.isoformat()))
    assert rows == expected_rows(clan.group, AS_OF, linked={})
