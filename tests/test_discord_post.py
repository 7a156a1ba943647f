"""The weekly report and alerts as Discord webhook messages, the chart, and `report clan --post`.

Limits are checked twice: by a checker written here from the spec, and by posting to the
fake Discord server, which rejects what Discord rejects (400, code 50035).
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from clanpulse.analytics.clan import (
    XP_WINDOWS,
    ClanReport,
    ClanRow,
    ClanSummary,
    Ranked,
    Rename,
    RosterChange,
)
from clanpulse.analytics.daily import DayTotals
from clanpulse.demo.community import generate_community
from clanpulse.demo.fake_discord import FakeDiscordConfig, FakeDiscordServer
from clanpulse.net.webhook import DiscordWebhook, WebhookMessage
from clanpulse.outputs.charts import weekly_chart_png
from clanpulse.outputs.discord_post import (
    ALERT_COLOR,
    RECOVERED_COLOR,
    alert_message,
    escape_markdown,
    weekly_report_messages,
)
from tests.test_clan_report_cli import (  # noqa: F401  (fixtures used by name)
    AS_OF,
    Clan,
    clan,
    clan_json,
    clanpulse,
    clean_env,
)

ZONE = ZoneInfo("Europe/London")
REPORT_AS_OF = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 in London (summer time)
TRICKY = [
    "**x**",
    "@everyone",
    "@here",
    "<@123456789012345678>",
    "snake_case_name",
    "`tick`",
    "~~strike~~",
    "||spoiler||",
    "[click](https://evil.example)",
    "# heading",
    "> quote",
    "- item",
    "back\\slash",
    "new\nline",
    "😀" * 30,
    "x" * 150 + "*" * 50,
]


# -- an independent reading of the spec's limits, and of how Discord shows escaped text -----


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def spec_violations(message: WebhookMessage) -> list[str]:
    payload = message.payload
    found = []
    embeds = payload.get("embeds", [])
    if len(embeds) > 10:
        found.append("more than 10 embeds")
    if utf16(payload.get("content") or "") > 2000:
        found.append("content")
    total = 0
    for e in embeds:
        title, text = e.get("title", ""), e.get("description", "")
        fields = e.get("fields", [])
        footer = e.get("footer", {}).get("text", "")
        total += utf16(title) + utf16(text) + utf16(footer)
        if utf16(title) > 256 or utf16(text) > 4096 or len(fields) > 25 or utf16(footer) > 2048:
            found.append(f"embed {title!r}")
        for f in fields:
            total += utf16(f["name"]) + utf16(f["value"])
            if not 0 < utf16(f["name"]) <= 256 or not 0 < utf16(f["value"]) <= 1024:
                found.append(f"field {f['name']!r}")
    if total > 6000:
        found.append(f"{total} characters in all")
    return found


def shown(markdown: str) -> str:
    """What Discord displays for escaped text: a backslash before punctuation is dropped."""
    return re.sub(r"\\([^0-9A-Za-z\s])", r"\1", markdown).replace("\u200b", "")


# -- building reports by hand: rendering does no queries --------------------------------------


def row(i: int, name: str, messages: int, xp: int | None, status: str = "active") -> ClanRow:
    return ClanRow(
        member_id=i,
        name=name,
        role="member",
        joined_at=REPORT_AS_OF - timedelta(days=400),
        messages={"7d": messages, "30d": messages * 4, "90d": messages * 9, "all": messages * 20},
        xp={"7d": xp, "30d": None if xp is None else xp * 4, "90d": None, "365d": None},
        ehp=dict.fromkeys(XP_WINDOWS),
        ehb=dict.fromkeys(XP_WINDOWS),
        boss_kills=dict.fromkeys(XP_WINDOWS),
        last_message_at=None,
        last_xp_change_at=None,
        status=status,
    )


def report_of(
    rows: list[ClanRow],
    *,
    joined: list[RosterChange] | None = None,
    left: list[RosterChange] | None = None,
    renames: list[Rename] | None = None,
) -> ClanReport:
    statuses = Counter(r.status for r in rows)
    summary = ClanSummary(
        members=len(rows),
        by_status={s: statuses[s] for s in ("new", "active", "inactive")},
        messages_30d=sum(r.messages["30d"] for r in rows),
        xp_30d=sum(r.xp["30d"] or 0 for r in rows),
        top_messages_30d=[],
        top_xp_30d=[],
        joined_30d=joined or [],
        left_30d=left or [],
        renames_30d=renames or [],
    )
    return ClanReport(REPORT_AS_OF, 30, rows, summary)


def week(messages: int = 100, xp: int | None = 50_000) -> list[DayTotals]:
    first = date(2026, 3, 23)
    cuts = [datetime(2026, 3, 23 + i, 8, tzinfo=UTC) for i in range(8)]
    return [
        DayTotals(first + timedelta(days=i), cuts[i], cuts[i + 1], messages + i, xp)
        for i in range(7)
    ]


def embeds(messages: list[WebhookMessage]) -> Iterator[dict[str, Any]]:
    for message in messages:
        yield from message.payload["embeds"]


def section_lines(messages: list[WebhookMessage], title: str) -> list[str]:
    """Every line of the embeds a section spans (its first one and its continuations)."""
    return [
        line
        for e in embeds(messages)
        if e.get("title", "").startswith(title)
        for line in e["description"].split("\n")
    ]


@pytest.fixture
def fake() -> Iterator[FakeDiscordServer]:
    community = generate_community(
        seed=2, members=12, days=2, end=datetime(2026, 3, 1, tzinfo=UTC), messages_per_day=20
    )
    with FakeDiscordServer(community, FakeDiscordConfig(time_scale=0.05)) as server:
        yield server


async def post_all(server: FakeDiscordServer, messages: list[WebhookMessage]) -> None:
    async with DiscordWebhook.open(server.webhook_url()) as webhook:
        for message in messages:
            await webhook.post(message)


# -- the weekly report ------------------------------------------------------------------


def test_headline_shows_the_weeks_numbers_with_the_chart() -> None:
    rows = [
        row(1, "Fern Whistle", 41, 1_540_073),
        row(2, "Sea_Lark", 60, None),
        row(3, "Rook", 0, 0, "inactive"),
        row(4, "Tide Pool", 3, 200_000, "new"),
    ]
    report = report_of(
        rows,
        joined=[
            RosterChange("Old Timer", REPORT_AS_OF - timedelta(days=20)),  # not this week
            RosterChange("Tide Pool", REPORT_AS_OF - timedelta(days=6)),
        ],
        left=[RosterChange("Old Salt", REPORT_AS_OF - timedelta(days=2))],
        renames=[Rename("Iron Quill", "Quill Pen", REPORT_AS_OF - timedelta(days=5))],
    )
    chart = b"\x89PNG fake bytes"
    messages = weekly_report_messages(report, week(), chart, ZONE)
    assert len(messages) == 1
    [message] = messages
    [upload] = message.files
    assert (upload.filename, upload.content_type, upload.data) == ("chart.png", "image/png", chart)
    headline = message.payload["embeds"][0]
    assert headline["image"] == {"url": "attachment://chart.png"}
    assert headline["title"] == "Weekly clan report · 23 Mar – 30 Mar 2026"
    assert "**4** members · **104** messages · **1,740,073** XP" in headline["description"]
    assert "Inactive 1" in headline["description"] and "New 1" in headline["description"]
    assert headline["timestamp"] == "2026-03-30T08:00:00Z"
    assert headline["footer"]["text"] == "As of 2026-03-30 09:00 (Europe/London)"
    fields = {f["name"]: f["value"] for f in headline["fields"]}
    assert fields["Top chatters"].split("\n") == [
        "1. Sea\\_Lark · 60 messages",
        "2. Fern Whistle · 41 messages",
        "3. Tide Pool · 3 messages",
    ]
    assert fields["Top XP gainers"].split("\n") == [
        "1. Fern Whistle · 1,540,073 XP",
        "2. Tide Pool · 200,000 XP",
    ]
    assert fields["Joined (1)"] == "Tide Pool · Tue 24 Mar"
    assert fields["Left (1)"] == "Old Salt · Sat 28 Mar"
    assert fields["Renames (1)"] == "Iron Quill → Quill Pen"
    assert fields["Per day"].split("\n")[0] == (
        "Mon 23 Mar (08:00–08:00) · 100 messages · 50,000 XP"
    )
    members = section_lines(messages, "Members")
    assert members == [
        "Sea\\_Lark · 60 messages · no XP data",
        "Fern Whistle · 41 messages · 1,540,073 XP",
        "Tide Pool · 3 messages · 200,000 XP · new",
        "Rook · 0 messages · 0 XP · inactive",
    ]
    assert spec_violations(message) == []


def test_without_a_chart_there_is_no_file_and_no_image() -> None:
    report = report_of([row(1, "Fern", 1, 1)])
    [message] = weekly_report_messages(report, week(), None, ZONE)
    assert message.files == ()
    assert "image" not in message.payload["embeds"][0]
    empty = weekly_report_messages(report_of([]), [], None, ZONE, members=False)
    fields = {f["name"]: f["value"] for f in empty[0].payload["embeds"][0]["fields"]}
    assert fields["Top chatters"] == "none"  # Discord refuses empty field values


async def test_a_2000_member_clan_splits_into_valid_messages_and_loses_no_row(
    fake: FakeDiscordServer,
) -> None:
    rows = [
        row(i, f"{TRICKY[i % len(TRICKY)]} {i}", (i * 37) % 500, (i * 7919) % 3_000_000)
        for i in range(2000)
    ]
    moment = REPORT_AS_OF - timedelta(days=1)
    joined = [RosterChange(f"Recruit_{i}", moment - timedelta(minutes=i)) for i in range(300)]
    left = [RosterChange(f"Leaver *{i}*", moment - timedelta(minutes=i)) for i in range(120)]
    report = report_of(rows, joined=joined, left=left)
    chart = weekly_chart_png(
        week(), [Ranked(r.member_id, r.name, r.messages["7d"]) for r in rows[:5]]
    )
    messages = weekly_report_messages(report, week(), chart, ZONE)

    assert len(messages) > 10
    assert [spec_violations(m) for m in messages] == [[]] * len(messages)
    assert [len(m.files) for m in messages] == [1] + [0] * (len(messages) - 1)
    # every member exactly once, with their numbers, and the name as typed
    lines = section_lines(messages, "Members (2,000)")
    assert len(lines) == 2000
    listed = Counter(shown(line.rsplit(" · ", 2)[0]) for line in lines)
    assert listed == Counter(" ".join(r.name.split()) for r in rows)
    # lists too long for a field continue as embeds of their own, in full
    assert Counter(section_lines(messages, "Joined (300)")) == Counter(
        f"Recruit\\_{i} · Sun 29 Mar" for i in range(300)
    )
    assert len(section_lines(messages, "Left (120)")) == 120

    await post_all(fake, messages)  # the fake accepts every one (it answers 400 otherwise)
    posts = fake.webhook_posts
    assert len(posts) == len(messages)
    assert [p.payload["embeds"] for p in posts] == [m.payload["embeds"] for m in messages]
    assert posts[0].files[0].data == chart


def test_member_names_are_shown_literally_and_never_mention() -> None:
    rows = [row(i, name, 10 - i, 1000) for i, name in enumerate(TRICKY[:14])]
    messages = weekly_report_messages(report_of(rows), week(), None, ZONE)
    lines = section_lines(messages, "Members")
    names = [line.rsplit(" · ", 2)[0] for line in lines]
    assert [shown(n) for n in names] == [" ".join(n.split()) for n in TRICKY[:14]]
    text = "\n".join(e.get("description", "") for e in embeds(messages))
    text += "\n".join(f["value"] for e in embeds(messages) for f in e.get("fields", []))
    assert "@everyone" not in text and "@here" not in text and "<@1" not in text
    assert "**x**" not in text and "[click](" not in text and "\n# heading" not in text
    assert escape_markdown("**x**") == "\\*\\*x\\*\\*"
    assert escape_markdown("@everyone") == "@\u200beveryone"


def test_a_giant_name_wraps_without_breaking_an_escape() -> None:
    name = "*" * 3000  # 6000 characters once escaped: no field or line could hold it
    messages = weekly_report_messages(report_of([row(1, name, 5, 5)]), week(), None, ZONE)
    assert [spec_violations(m) for m in messages] == [[]] * len(messages)
    lines = section_lines(messages, "Members")
    assert "".join(lines) == escape_markdown(name) + " · 5 messages · 5 XP"
    assert all(not re.search(r"(?<!\\)(\\\\)*\\$", line) for line in lines)  # no dangling \


# -- alerts -----------------------------------------------------------------------------


def test_alerts_are_red_and_recoveries_green() -> None:
    alert = alert_message("Harvest failing", ["harvest_wom failed 3 times", "last: HTTP 500"])
    [embed] = alert.payload["embeds"]
    assert embed["color"] == ALERT_COLOR
    assert embed["title"] == "Harvest failing"
    assert embed["description"] == "harvest\\_wom failed 3 times\nlast: HTTP 500"
    recovered = alert_message("Harvest recovered", [], recovered=True)
    assert recovered.payload["embeds"][0]["color"] == RECOVERED_COLOR
    assert spec_violations(recovered) == [] and recovered.files == ()


def test_an_alert_too_long_for_one_message_says_what_it_left_out() -> None:
    lines = [f"failure {i}: something went wrong" for i in range(1000)]
    alert = alert_message("T" * 300, lines)
    assert spec_violations(alert) == []
    [embed] = alert.payload["embeds"]
    assert len(embed["title"]) == 256 and embed["title"].endswith("…")
    body = embed["description"].split("\n")
    assert body[0] == "T" * 300  # the whole title
    kept = body[1:-1]
    assert kept == lines[: len(kept)]
    assert body[-1] == f"… and {1000 - len(kept)} more lines not shown"


# -- the chart ----------------------------------------------------------------------------


def test_the_chart_is_a_small_deterministic_png() -> None:
    top = [Ranked(1, "$$$ Rich $x$", 50), Ranked(2, "**x**", 40), Ranked(3, "😀 y" * 20, 3)]
    days = [*week(xp=None), DayTotals(date(2026, 3, 30), REPORT_AS_OF, REPORT_AS_OF, 0, 0)]
    first = weekly_chart_png(days, top)
    assert first == weekly_chart_png(days, top)
    assert len(first) < 200_000
    image = Image.open(io.BytesIO(first))
    image.verify()
    assert image.format == "PNG" and image.size == (800, 600)
    assert Image.open(io.BytesIO(weekly_chart_png([], []))).size == (800, 600)


# -- `report clan --post`, end to end -------------------------------------------------------


@pytest.fixture
def discord(clean_env: Path) -> Iterator[FakeDiscordServer]:  # noqa: F811
    community = generate_community(
        seed=2, members=12, days=2, end=datetime(2026, 3, 1, tzinfo=UTC), messages_per_day=20
    )
    with FakeDiscordServer(community, FakeDiscordConfig(time_scale=0.05)) as server:
        yield server


def test_report_clan_post_sends_the_week_to_the_webhook(
    clan: Clan,  # noqa: F811
    discord: FakeDiscordServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLANPULSE_DISCORD_WEBHOOK_URL", discord.webhook_url())
    day = AS_OF.date().isoformat()
    posted = clanpulse("report", "clan", "--post", "--as-of", day)
    assert posted.stdout == ""  # posting only: nothing printed
    assert "posted the weekly report" in posted.stderr
    expected = clan_json("--as-of", day)
    [post] = discord.webhook_posts  # a small clan: one message
    headline = post.payload["embeds"][0]
    rows = expected["members"]
    messages_7d = sum(m["messages"]["7d"] for m in rows)
    xp_7d = sum(m["xp_gained"]["7d"] or 0 for m in rows)
    assert (
        f"**{len(rows)}** members · **{messages_7d:,}** messages · **{xp_7d:,}** XP"
        in (headline["description"])
    )
    per_day = {f["name"]: f["value"] for f in headline["fields"]}["Per day"].split("\n")
    assert len(per_day) == 7
    # the days add up to the week: same members, same counting, same gain rules
    assert sum(int(line.split(" · ")[1].split()[0].replace(",", "")) for line in per_day) == (
        messages_7d
    )
    assert sum(int(line.split(" · ")[2].split()[0].replace(",", "")) for line in per_day) == xp_7d
    assert post.payload["allowed_mentions"] == {"parse": []}
    [chart] = post.files
    assert chart.filename == "chart.png"
    assert Image.open(io.BytesIO(chart.data)).format == "PNG"
    member_lines = section_lines([WebhookMessage(post.payload)], "Members")
    assert len(member_lines) == len(rows)
    # --format alongside --post: posted and printed
    both = clanpulse("report", "clan", "--post", "--format", "json", "--as-of", day)
    assert len(discord.webhook_posts) == 2 and '"members"' in both.stdout


def test_report_clan_post_without_a_webhook_stops_before_any_work(
    clan: Clan,  # noqa: F811
    discord: FakeDiscordServer,
) -> None:
    result = clanpulse("report", "clan", "--post", code=2)
    assert "CLANPULSE_DISCORD_WEBHOOK_URL is not set" in result.stderr
    assert discord.stats.total_requests == 0


def test_report_clan_post_with_a_malformed_url_is_a_setting_error(
    clean_env: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLANPULSE_DISCORD_WEBHOOK_URL", "https://discord.com/api/whoops/secret")
    result = clanpulse("report", "clan", "--post", code=2)
    assert "CLANPULSE_DISCORD_WEBHOOK_URL is malformed" in result.stderr
    assert "secret" not in result.output + result.stderr


def test_report_clan_post_failing_exits_1_without_showing_the_token(
    clan: Clan,  # noqa: F811
    discord: FakeDiscordServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = discord.config.webhook_token
    monkeypatch.setenv("CLANPULSE_DISCORD_WEBHOOK_URL", discord.webhook_url(webhook_id=5))
    result = clanpulse("report", "clan", "--post", code=1)
    assert "Discord webhook" in result.stderr and "404" in result.stderr
    assert token not in result.output + result.stderr
    assert discord.stats.count("/api/webhooks/5/***") == 1
    assert discord.webhook_posts == []
