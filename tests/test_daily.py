"""The clan's messages and XP per local day: what the weekly chart and post show.

Expected numbers come two ways: straight from the generated source data (by the README's
rules), and from the activity and gains reports themselves, so the per-day figures can never
disagree with the report they sit beside.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from clanpulse.analytics.activity import activity_report
from clanpulse.analytics.daily import clan_daily, daily_by_member, day_cuts
from clanpulse.analytics.gains import progress_by_account
from clanpulse.identity import set_opted_out
from clanpulse.records import ClassifiedMessage, MessageKind
from clanpulse.store.database import Database
from clanpulse.store.ingest import add_rollup_rows, ingest_batch
from clanpulse.store.schema import account, channel
from clanpulse.store.wom_ingest import store_snapshots, upsert_players
from tests.factories import GENERAL, at, batch, chat, user
from tests.wom_factories import player, snap

USERS = [user(574204114108547000 + i, f"chatter{i}") for i in range(5)]
QUIET = user(574204114108547999, "opted_out_chatter")  # opts out: counted nowhere
BOT = user(574204114108547777, "some_bot", is_bot=True)
PLAYERS = [player(701 + i, f"Player {i}") for i in range(4)]
HIDDEN_PLAYER = 703  # opts out
LATE_PLAYER = 704  # first reading mid-week: a baseline, not a gain
# a week across the UK's switch to summer time (2026-03-29): one local day is 23 hours
WEEK_END_DAY = datetime(2026, 3, 30).date()
ZONES = ["UTC", "Europe/London", "Asia/Kolkata", "America/St_Johns"]


Series = list[tuple[datetime, int]]  # (taken_at, overall XP), oldest first


@dataclass
class Source:
    said: list[datetime]  # when each message that counts was sent
    by_author: list[tuple[datetime, int]]  # (when, index in USERS) of the same messages
    xp: dict[int, Series]  # readings of each visible player


def local_midnight(zone: ZoneInfo, days_back: int = 0) -> datetime:
    day = WEEK_END_DAY - timedelta(days=days_back)
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def text(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")


def message_times(rng: random.Random, zone: ZoneInfo) -> list[datetime]:
    """Random times around the week, plus every local and UTC midnight and a hair before."""
    low, high = local_midnight(zone, 10), local_midnight(zone) + timedelta(days=2)
    span = (high - low).total_seconds()
    times = [low + timedelta(seconds=rng.uniform(0, span)) for _ in range(400)]
    for back in range(9):
        for edge in (local_midnight(zone, back), local_midnight(ZoneInfo("UTC"), back)):
            times += [edge, edge - timedelta(milliseconds=1)]
    return [t.replace(microsecond=t.microsecond // 1000 * 1000) for t in times]


def readings(rng: random.Random, zone: ZoneInfo, pid: int) -> Series:
    start = local_midnight(zone, 12 if pid != LATE_PLAYER else 3) + timedelta(hours=pid % 5)
    moment, xp = start, 1_000_000 * pid
    found = []
    while moment < local_midnight(zone) + timedelta(days=2):
        found.append((moment, xp))
        moment += timedelta(hours=rng.uniform(2, 15))
        xp += rng.choice([0, 0, rng.randint(1, 90_000)])
    # a reading exactly at a local midnight belongs to the day that starts there
    edge = local_midnight(zone, 2)
    if pid != LATE_PLAYER:
        found = [r for r in found if r[0] != edge]
        earlier = [xp for t, xp in found if t < edge]
        found.append((edge, earlier[-1] + 777))
        found = [(t, xp + 777 if t > edge else xp) for t, xp in found]
    return sorted(found)


async def build(db: Database, zone: ZoneInfo, seed: int) -> Source:
    rng = random.Random(seed)
    said: list[tuple[datetime, int]] = []  # (when, author index or -1 for the opted-out one)
    messages: list[ClassifiedMessage] = []
    for when in message_times(rng, zone):
        who = rng.randrange(-1, len(USERS))
        author = QUIET if who < 0 else USERS[who]
        messages.append(chat(author, text(when)))
        said.append((when, who))
        if rng.random() < 0.1:  # bots never count
            messages.append(chat(BOT, text(when), kind=MessageKind.BOT))
    xp: dict[int, Series] = {p.id: readings(rng, zone, p.id) for p in PLAYERS}
    async with db.write() as conn:
        for start in range(0, len(messages), 500):
            await ingest_batch(conn, batch(*messages[start : start + 500]))
        accounts = await upsert_players(conn, PLAYERS, at("2026-03-01 00:00"))
        for pid, series in xp.items():
            await store_snapshots(conn, accounts[pid], [snap(pid, t, v) for t, v in series])
        for external in (str(QUIET.id), str(HIDDEN_PLAYER)):
            member_id = (
                await conn.execute(
                    select(account.c.member_id).where(account.c.external_id == external)
                )
            ).scalar_one()
            await set_opted_out(conn, member_id)
    visible = {pid: s for pid, s in xp.items() if pid != HIDDEN_PLAYER}
    counted = [(t, who) for t, who in said if who >= 0]
    return Source([t for t, _ in counted], counted, visible)


def expected_messages(said: list[datetime], low: datetime, high: datetime) -> int:
    return sum(1 for t in said if low <= t < high)


def expected_xp(series: dict[int, Series], window: datetime, low: datetime, high: datetime) -> int:
    """Wise Old Man's rule day by day: readings from the window start on; the first of them
    is the baseline."""
    total = 0
    for found in series.values():
        inside = [(t, xp) for t, xp in found if t >= window]
        by_end = [xp for t, xp in inside if t < high]
        before = [xp for t, xp in inside if t < low]
        if by_end:
            total += by_end[-1] - (before[-1] if before else inside[0][1])
    return total


@pytest.mark.parametrize("zone_name", ZONES)
async def test_a_week_of_local_days_matches_the_source_data(db: Database, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    source = await build(db, zone, seed=len(zone_name))
    start, end = local_midnight(zone, 7), local_midnight(zone)
    async with db.read() as conn:
        days = await clan_daily(conn, start, end, zone)
    assert [d.day for d in days] == [WEEK_END_DAY - timedelta(days=7 - i) for i in range(7)]
    assert days[0].start == start and days[-1].end == end
    assert all(a.end == b.start for a, b in pairwise(days))
    for d in days:
        assert d.start.astimezone(zone).time() == time(0)
        assert d.messages == expected_messages(source.said, d.start, d.end), d
        assert d.xp == expected_xp(source.xp, start, d.start, d.end), d
    if zone_name == "Europe/London":  # the day the clocks went forward is 23 hours long
        assert {d.end - d.start for d in days} == {timedelta(hours=24), timedelta(hours=23)}


@pytest.mark.parametrize("zone_name", ["UTC", "Europe/London"])
async def test_days_agree_with_the_activity_and_gains_reports(db: Database, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    await build(db, zone, seed=11)
    # an end that is no midnight: the first and last days are partial
    end = local_midnight(zone) - timedelta(hours=5, minutes=17)
    start = end - timedelta(days=7)
    async with db.read() as conn:
        days = await clan_daily(conn, start, end, zone)
        cuts = [days[0].start, *(d.end for d in days)]
        everyone = {}
        for cut in cuts:
            report = await activity_report(conn, cut)
            everyone[cut] = sum(m.messages["all"] for m in report.members)
        week = await activity_report(conn, end)
    assert len(days) == 8 and days[0].start == start and days[-1].end == end
    # messages: each day is the difference of two "all time" counts of the activity report
    for d in days:
        assert d.messages == everyone[d.end] - everyone[d.start]
    assert sum(d.messages for d in days) == sum(m.messages["7d"] for m in week.members)

    # XP: the days add up to the week's gains by Wise Old Man's rules, over visible accounts
    async with db.read() as conn:
        hidden = (
            await conn.execute(
                select(account.c.id).where(account.c.external_id == str(HIDDEN_PLAYER))
            )
        ).scalar_one()
        gains = await progress_by_account(conn, end, ["7d"])
    week_xp = [
        int(gain.values["overall_xp"])
        for aid, p in gains.items()
        if aid != hidden and (gain := p.gains["7d"]) is not None
    ]
    assert len(week_xp) == len(PLAYERS) - 1
    assert sum(d.xp or 0 for d in days) == sum(week_xp)


async def test_only_the_members_asked_for(db: Database) -> None:
    zone = ZoneInfo("UTC")
    source = await build(db, zone, seed=3)
    start, end = local_midnight(zone, 7), local_midnight(zone)
    async with db.read() as conn:
        ids = {
            xid: mid
            for xid, mid in await conn.execute(select(account.c.external_id, account.c.member_id))
        }
        chosen = [ids[str(USERS[0].id)], ids[str(LATE_PLAYER)], ids[str(HIDDEN_PLAYER)]]
        days = await clan_daily(conn, start, end, zone, member_ids=chosen)
        everyone = await clan_daily(conn, start, end, zone)
    assert sum(d.messages for d in days) == sum(
        1 for when, who in source.by_author if who == 0 and start <= when < end
    )
    late = {LATE_PLAYER: source.xp[LATE_PLAYER]}  # the opted-out player stays out when asked for
    assert [d.xp for d in days] == [
        expected_xp(late, start, d.start, d.end) if d.end > late[LATE_PLAYER][0][0] else None
        for d in days
    ]
    assert sum(d.messages for d in everyone) > sum(d.messages for d in days)


async def test_whole_utc_days_are_read_from_the_rollup(db: Database) -> None:
    # a rollup row with no raw messages behind it: only the rollup can produce this count
    fern = USERS[0]
    async with db.write() as conn:
        await ingest_batch(conn, batch(chat(fern, "2026-03-25 10:00")))
        fern_account = (
            await conn.execute(select(account.c.id).where(account.c.external_id == str(fern.id)))
        ).scalar_one()
        general = (
            await conn.execute(select(channel.c.id).where(channel.c.external_id == str(GENERAL.id)))
        ).scalar_one()
        await add_rollup_rows(
            conn,
            [
                {
                    "day": datetime(2026, 3, 26).date(),
                    "account_id": fern_account,
                    "channel_id": general,
                    "messages": 40,
                    "last_sent_at": at("2026-03-26 12:00"),
                }
            ],
        )
    utc = ZoneInfo("UTC")
    async with db.read() as conn:
        days = await clan_daily(conn, at("2026-03-25 00:00"), at("2026-03-27 00:00"), utc)
    assert [d.messages for d in days] == [1, 40]
    assert all(d.xp is None for d in days)  # no in-game readings at all: unknown, not 0


def test_cuts_clip_to_the_window_and_fall_on_local_midnights() -> None:
    zone = ZoneInfo("Europe/London")
    cuts = day_cuts(at("2026-03-27 15:00"), at("2026-03-30 09:00"), zone)
    assert cuts == [
        at("2026-03-27 15:00"),
        at("2026-03-28 00:00"),
        at("2026-03-29 00:00"),  # still GMT at midnight; summer time starts at 01:00
        at("2026-03-29 23:00"),  # midnight BST
        at("2026-03-30 09:00"),
    ]
    assert day_cuts(at("2026-03-27 15:00"), at("2026-03-27 15:00"), zone) == []


@pytest.mark.parametrize("zone_name", ["UTC", "America/St_Johns"])
async def test_each_members_days_match_the_source_data(db: Database, zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    source = await build(db, zone, seed=5)
    end = local_midnight(zone) - timedelta(hours=3, minutes=41)  # partial first and last day
    start = end - timedelta(days=7)
    async with db.read() as conn:
        ids = {
            xid: mid
            for xid, mid in await conn.execute(select(account.c.external_id, account.c.member_id))
        }
        per_member = await daily_by_member(conn, start, end, zone)
        everyone = await clan_daily(conn, start, end, zone)
    for index, chatter in enumerate(USERS):
        days = per_member.of(ids[str(chatter.id)])
        assert [d.messages for d in days] == [
            sum(1 for when, who in source.by_author if who == index and d.start <= when < d.end)
            for d in days
        ], chatter.username
    for pid, series in source.xp.items():
        days = per_member.of(ids[str(pid)])
        assert [d.xp or 0 for d in days] == [
            expected_xp({pid: series}, start, d.start, d.end) for d in days
        ], pid
    # the opted-out: nothing; the members added up: the clan's days
    assert all(d.messages == 0 for d in per_member.of(ids[str(QUIET.id)]))
    assert all(d.xp is None for d in per_member.of(ids[str(HIDDEN_PLAYER)]))
    assert per_member.total() == everyone
