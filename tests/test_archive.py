"""Cold storage: old raw rows move to the archive and no report can tell.

A community is generated (seeded): Discord chat and relayed clan chat over 600 days, Wise
Old Man readings for a clan roster (two players stopped playing 300 days ago, so all their
readings are archived), linked accounts. Every report is taken before archiving and after,
for moments whose windows reach into archived time, and must be equal, field for field.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics.activity import activity_report
from clanpulse.analytics.clan import clan_report
from clanpulse.analytics.gains import detailed_gains
from clanpulse.analytics.members import people
from clanpulse.identity import auto_link, member_details, merge_accounts
from clanpulse.ops import archive as archive_module
from clanpulse.ops.archive import ArchiveReport, archive_cold, sqlite_archive_path
from clanpulse.records import ClassifiedMessage, MessageKind, Snapshot
from clanpulse.settings import Settings
from clanpulse.store.archive_schema import (
    ARCHIVED,
    archived_message,
    archived_snapshot,
    has_archive,
)
from clanpulse.store.database import Database, open_database
from clanpulse.store.ingest import ingest_batch
from clanpulse.store.schema import account, channel, message, snapshot
from clanpulse.store.wom_ingest import (
    latest_snapshot_times,
    store_snapshots,
    sync_roster,
    upsert_players,
)
from tests.factories import BRIDGE, GENERAL, batch, chat, snowflake, user
from tests.wom_factories import membership, player, snap

HOT_DAYS = 180
# Real time: member details count up to the clock. Whole minutes plus 17 s, so the windows'
# edges fall between generated messages (those are kept away from them, see _moment).
NOW = datetime.now(UTC).replace(second=17, microsecond=0)
CUTOFF = NOW - timedelta(days=HOT_DAYS)
SETTINGS = Settings(_env_file=None, hot_days=HOT_DAYS)  # type: ignore[call-arg]
# report moments: now, a partial day, windows reaching across the cutoff, all archived
AS_OFS = [
    NOW,
    NOW - timedelta(days=3, hours=5, minutes=30),
    NOW - timedelta(days=150),
    NOW - timedelta(days=200, hours=7),
    NOW - timedelta(days=400),
]
HISTORY_DAYS = 600
OFF_TOPIC = GENERAL.__class__(
    id=GENERAL.id + 1, name="off-topic", type=0, guild_id=GENERAL.guild_id
)
PEOPLE = [user(100_000 + i, f"person{i}", global_name=f"Player {i}") for i in range(8)]
PLAYERS = [player(700 + i, f"Player {i}") for i in range(6)]
INACTIVE = {704, 705}  # their readings stop 300 days before NOW: every one gets archived
CHAT_ONLY_NAME = "Old Timer"  # speaks in relayed clan chat, never tracked by Wise Old Man


def _moment(rng: random.Random, days_back: float) -> datetime:
    """A random moment up to ``days_back`` ago, never within a minute of a report edge."""
    edges = [a - timedelta(days=d) for a in (*AS_OFS, NOW) for d in (0, 7, 30, 90, 365)]
    while True:
        when = NOW - timedelta(seconds=rng.uniform(1, days_back * 86_400))
        when = when.replace(microsecond=rng.randrange(0, 1_000_000, 1000))
        if all(abs((when - edge).total_seconds()) > 60 for edge in edges):
            return when


def _text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def generated_chat(seed: int, count: int) -> list[tuple[Any, list[ClassifiedMessage]]]:
    """Chat by the Discord people and relayed clan chat lines, as (channel, messages)."""
    rng = random.Random(seed)
    by_channel: dict[int, list[ClassifiedMessage]] = {GENERAL.id: [], OFF_TOPIC.id: []}
    used: set[int] = set()
    for i in range(count):
        when = _moment(rng, HISTORY_DAYS)
        msg_id = snowflake(when, i % 4096)
        if msg_id in used:
            continue
        used.add(msg_id)
        channel = rng.choice([GENERAL, OFF_TOPIC])
        if rng.random() < 0.25:
            speaker = rng.choice([p.display_name for p in PLAYERS] + [CHAT_ONLY_NAME])
            item = chat(
                BRIDGE,
                _text(when),
                kind=MessageKind.BRIDGE_CHAT,
                speaker=speaker,
                msg_id=msg_id,
                channel=channel,
            )
        else:
            edited = _text(when + timedelta(minutes=5)) if rng.random() < 0.1 else None
            item = chat(
                rng.choice(PEOPLE), _text(when), msg_id=msg_id, channel=channel, edited=edited
            )
        by_channel[channel.id].append(item)
    return [
        (ch, sorted(by_channel[ch.id], key=lambda c: c.message.sent_at))
        for ch in (GENERAL, OFF_TOPIC)
    ]


def generated_readings(seed: int, every_hours: float = 40) -> dict[int, list[Snapshot]]:
    """Readings per player: a rising XP total with long flat stretches."""
    rng = random.Random(seed)
    readings: dict[int, list[Snapshot]] = {}
    for p in PLAYERS:
        first = NOW - timedelta(days=10 if p.id == 703 else HISTORY_DAYS)  # 703 is new
        last = NOW - timedelta(days=300) if p.id in INACTIVE else NOW
        xp, kills, when, found = 1_000_000, 0, first, []
        while when < last:
            if rng.random() < 0.4:
                xp += rng.randint(1, 20_000)
                kills += rng.randint(0, 3)
            found.append(snap(p.id, when, xp, zulrah=kills, ehp=xp / 100_000, ehb=kills / 7))
            when += timedelta(hours=rng.uniform(every_hours / 2, every_hours * 1.5))
        readings[p.id] = found
    return readings


async def ingest_chat(db: Database, chat_batches: list[tuple[Any, list[ClassifiedMessage]]]) -> int:
    inserted = 0
    for where, items in chat_batches:
        for start in range(0, len(items), 500):
            async with db.write() as conn:
                counts = await ingest_batch(conn, batch(*items[start : start + 500], channel=where))
                inserted += counts.inserted
    return inserted


async def store_readings(db: Database, readings: dict[int, list[Snapshot]]) -> int:
    stored = 0
    async with db.write() as conn:
        accounts = await upsert_players(conn, PLAYERS, NOW)
        for pid, found in readings.items():
            stored += await store_snapshots(conn, accounts[pid], found)
    return stored


async def build_community(db: Database, seed: int = 7) -> None:
    async with db.write() as conn:
        accounts = await upsert_players(conn, PLAYERS, NOW)
        roster = [
            membership(p, "member", NOW - timedelta(days=8 if p.id == 703 else 500))
            for p in PLAYERS
        ]
        await sync_roster(conn, roster, accounts, NOW)
    await store_readings(db, generated_readings(seed))
    await ingest_chat(db, generated_chat(seed, 1_500))
    async with db.write() as conn:
        await auto_link(conn)


async def all_reports(db: Database) -> list[Any]:
    """Every report and its parts, for every moment; equal lists mean equal numbers."""
    found: list[Any] = []
    async with db.read() as conn:
        for as_of in AS_OFS:
            found.append(await activity_report(conn, as_of))
            found.append(await clan_report(conn, as_of, 30))
        for person in await people(conn):
            found.append(await member_details(conn, person.member_id))
        osrs = await osrs_accounts(conn)
        for account_id in osrs:
            for window in ("7d", "365d", "all"):
                found.append(await detailed_gains(conn, account_id, AS_OFS[2], window))
        found.append(await latest_snapshot_times(conn))
    return found


async def osrs_accounts(conn: AsyncConnection) -> list[int]:
    rows = await conn.execute(
        select(account.c.id).where(account.c.external_id.in_([str(p.id) for p in PLAYERS]))
    )
    return sorted(row[0] for row in rows)


async def row_counts(db: Database) -> dict[str, int]:
    """Rows per place: hot (the writer's plain tables), archive, and what readers see."""
    counts: dict[str, int] = {}
    async with db.write() as conn:
        for table in (message, snapshot):
            counts[f"hot {table.name}"] = await _count(conn, table)
            counts[f"hot old {table.name}"] = await _count(conn, table, older=True)
            twin = ARCHIVED[table.name]
            archived = has_archive(conn)
            counts[f"archived {table.name}"] = await _count(conn, twin) if archived else 0
            counts[f"archived new {table.name}"] = (
                await _count(conn, twin, newer=True) if archived else 0
            )
    async with db.read() as conn:
        for table in (message, snapshot):
            counts[f"seen {table.name}"] = await _count(conn, table)
    return counts


async def _count(
    conn: AsyncConnection, table: Any, *, older: bool = False, newer: bool = False
) -> int:
    when = table.c.sent_at if "sent_at" in table.c else table.c.taken_at
    query = select(func.count()).select_from(table)
    if older:
        query = query.where(when < CUTOFF)
    if newer:
        query = query.where(when >= CUTOFF)
    return int((await conn.execute(query)).scalar_one())


def assert_every_row_once(
    counts: dict[str, int], total_messages: int, total_snapshots: int
) -> None:
    for table, total in (("message", total_messages), ("snapshot", total_snapshots)):
        assert counts[f"hot old {table}"] == 0, counts  # nothing old left hot
        assert counts[f"archived new {table}"] == 0, counts  # nothing recent archived
        assert counts[f"hot {table}"] + counts[f"archived {table}"] == total, counts
        assert counts[f"seen {table}"] == total, counts


@pytest.fixture
async def community(db: Database) -> Database:
    await build_community(db)
    return db


async def test_every_report_is_the_same_after_archiving(community: Database) -> None:
    db = community
    before = await all_reports(db)  # also opens reader connections before the archive exists
    counts = await row_counts(db)
    assert counts["hot old message"] > 100 and counts["hot old snapshot"] > 100

    report = await archive_cold(db, SETTINGS, NOW)

    assert report == ArchiveReport(
        CUTOFF, messages=counts["hot old message"], snapshots=counts["hot old snapshot"]
    )
    after_counts = await row_counts(db)
    assert after_counts["archived message"] == counts["hot old message"]
    assert after_counts["archived snapshot"] == counts["hot old snapshot"]
    assert_every_row_once(after_counts, counts["hot message"], counts["hot snapshot"])
    after = await all_reports(db)
    assert after == before
    # the moments that reach into archived time really do read archived rows
    assert any(r.messages["all"] for r in after[0].members)


async def test_a_second_run_moves_nothing_and_doubles_nothing(community: Database) -> None:
    db = community
    before = await all_reports(db)
    first = await archive_cold(db, SETTINGS, NOW)
    counts = await row_counts(db)

    again = await archive_cold(db, SETTINGS, NOW)

    assert (again.messages, again.snapshots) == (0, 0)
    assert first.messages > 0 and first.snapshots > 0
    assert await row_counts(db) == counts
    assert await all_reports(db) == before


async def test_reimporting_archived_rows_does_not_bring_them_back(community: Database) -> None:
    db = community
    before = await all_reports(db)
    await archive_cold(db, SETTINGS, NOW)
    counts = await row_counts(db)

    # the same chat and readings again: an export imported twice, a harvest backfilling
    assert await ingest_chat(db, generated_chat(7, 1_500)) == 0
    assert await store_readings(db, generated_readings(7)) == 0

    assert await row_counts(db) == counts
    assert await all_reports(db) == before


async def test_an_edit_of_an_archived_message_reaches_the_archive(community: Database) -> None:
    db = community
    await archive_cold(db, SETTINGS, NOW)
    async with db.write() as conn:
        old = (
            await conn.execute(
                select(archived_message.c.external_id, archived_message.c.sent_at)
                .join(channel, channel.c.id == archived_message.c.channel_id)
                .where(channel.c.external_id == str(GENERAL.id))
                .limit(1)
            )
        ).one()
    edited = chat(
        PEOPLE[0],
        _text(old.sent_at),
        msg_id=old.external_id,
        content="fixed a typo",
        edited=_text(NOW - timedelta(minutes=1)),
    )
    async with db.write() as conn:
        counts = await ingest_batch(conn, batch(edited))
    assert (counts.inserted, counts.edited) == (0, 1)
    async with db.read() as conn:
        contents = await conn.execute(
            select(message.c.content).where(message.c.external_id == old.external_id)
        )
        assert contents.scalars().all() == ["fixed a typo"]


async def test_a_crash_between_copy_and_delete_is_finished_by_the_next_run(
    community: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = community
    before = await all_reports(db)
    counts = await row_counts(db)
    real_deleted = archive_module._deleted

    async def crash(conn: AsyncConnection, statement: Any) -> int:
        raise RuntimeError("killed")

    monkeypatch.setattr(archive_module, "_deleted", crash)
    with pytest.raises(RuntimeError):
        await archive_cold(db, SETTINGS, NOW)
    crashed = await row_counts(db)
    if db.backend == "sqlite":
        # the first batch was copied and not deleted: in both places, yet shown once
        assert (
            crashed["archived message"] > 0
            and crashed["hot old message"] == counts["hot old message"]
        )
    else:
        # one transaction per batch: nothing happened
        assert crashed["archived message"] == 0
    assert crashed["seen message"] == counts["seen message"]
    assert await all_reports(db) == before

    monkeypatch.setattr(archive_module, "_deleted", real_deleted)
    await archive_cold(db, SETTINGS, NOW)
    assert_every_row_once(await row_counts(db), counts["hot message"], counts["hot snapshot"])
    assert await all_reports(db) == before


async def test_merging_an_account_moves_its_archived_rows(db: Database) -> None:
    # relayed chat under a name nobody tracks yet gets an account of its own ...
    old_lines = [
        chat(
            BRIDGE,
            _text(NOW - timedelta(days=300 + d)),
            kind=MessageKind.BRIDGE_CHAT,
            speaker="Late Bloomer",
        )
        for d in range(5)
    ]
    async with db.write() as conn:
        await ingest_batch(conn, batch(*old_lines))
    await archive_cold(db, SETTINGS, NOW)
    async with db.write() as conn:
        waiting = (
            await conn.execute(
                select(account.c.id).where(account.c.normalized_name == "late bloomer")
            )
        ).scalar_one()
        # ... until Wise Old Man tracks the player: the player adopts it; merge another into it
        accounts = await upsert_players(
            conn, [player(801, "Late Bloomer"), player(802, "Other")], NOW
        )
        assert accounts[801] == waiting
        await store_snapshots(conn, accounts[801], [snap(801, NOW - timedelta(days=250), 3)])
        await store_snapshots(conn, accounts[802], [snap(802, NOW - timedelta(days=200), 5)])
    await archive_cold(db, SETTINGS, NOW)
    async with db.read() as conn:
        before = (await activity_report(conn, NOW), await clan_report(conn, NOW, 30))

    async with db.write() as conn:
        await merge_accounts(conn, accounts[801], accounts[802])
        archived_credit = (
            (await conn.execute(select(archived_message.c.credited_account_id).distinct()))
            .scalars()
            .all()
        )
        archived_owner = (
            (await conn.execute(select(archived_snapshot.c.account_id).distinct())).scalars().all()
        )

    assert archived_credit == [accounts[802]] and archived_owner == [accounts[802]]
    async with db.read() as conn:
        after = await activity_report(conn, NOW)
    [other] = [m for m in after.members if any(a.name == "Other" for a in m.accounts)]
    assert other.messages["all"] == 5
    assert sum(m.messages["all"] for m in after.members) == sum(
        m.messages["all"] for m in before[0].members
    )


async def test_the_archive_tables_match_the_hot_ones(community: Database) -> None:
    db = community
    await archive_cold(db, SETTINGS, NOW)

    def columns(sync_conn: Any) -> dict[str, list[tuple[str, str, bool]]]:
        found = {}
        inspector = inspect(sync_conn)
        for table in (message, snapshot):
            for schema in (None, "archive"):
                found[f"{schema}.{table.name}"] = [
                    (c["name"], str(c["type"]), c["nullable"])
                    for c in inspector.get_columns(table.name, schema=schema)
                ]
        return found

    async with db.write() as conn:
        found = await conn.run_sync(columns)
    assert found["None.message"] == found["archive.message"]
    assert found["None.snapshot"] == found["archive.snapshot"]


async def test_nothing_old_makes_no_archive_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    async with open_database(url) as db:
        report = await archive_cold(db, SETTINGS, NOW)
    assert (report.messages, report.snapshots) == (0, 0)
    assert not (tmp_path / "fresh-archive.db").exists()


def test_the_archive_file_sits_beside_the_database() -> None:
    assert sqlite_archive_path("sqlite+aiosqlite:///data/clan.db") == Path("data/clan-archive.db")
    assert sqlite_archive_path("sqlite:////srv/clanpulse.db") == Path("/srv/clanpulse-archive.db")
    assert sqlite_archive_path("sqlite+aiosqlite://") is None
    assert sqlite_archive_path("postgresql+asyncpg://u@h/db") is None


async def test_reports_seek_indexes_through_the_archive(tmp_path: Path) -> None:
    """SQLite: no statement of the reports scans messages or snapshots, hot or archived."""
    from sqlalchemy import event

    url = f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}"
    async with open_database(url) as db:
        await build_community(db)
        await archive_cold(db, SETTINGS, NOW)
        statements: list[tuple[str, Any]] = []

        def capture(_c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
            if "snapshot" in sql or "message" in sql:
                statements.append((sql, params))

        event.listen(db.reader.sync_engine, "before_cursor_execute", capture)
        await all_reports(db)
        event.remove(db.reader.sync_engine, "before_cursor_execute", capture)
        async with db.read() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            scans = set()
            for sql, params in statements:
                plan = await (await raw.execute("EXPLAIN QUERY PLAN " + sql, params)).fetchall()
                # a table scan shows as main.<table> or the view's aliases (hot, cold); a
                # "SCAN message" alone is the walk over a view's already-filtered rows
                scans.update(
                    detail
                    for *_, detail in plan
                    if detail.startswith(("SCAN main.", "SCAN hot", "SCAN cold"))
                    or "AUTOMATIC" in detail
                )
    assert len(statements) > 10
    assert scans == set()


# --- kill -9 in the middle of a run ---------------------------------------------------

ARCHIVER = """
import asyncio, sys
from datetime import datetime
from clanpulse.ops import archive
from clanpulse.settings import Settings
from clanpulse.store.database import open_database

archive.ARCHIVE_BATCH = 50  # many small batches: a kill lands inside the run

async def main() -> None:
    async with open_database(sys.argv[1]) as db:
        settings = Settings(hot_days=int(sys.argv[3]))
        await archive.archive_cold(db, settings, datetime.fromisoformat(sys.argv[2]))

asyncio.run(main())
"""


def _archiver(url: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", ARCHIVER, url, NOW.isoformat(), str(HOT_DAYS)],
        cwd=cwd,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _archived_so_far(url: str) -> int:
    async with open_database(url, migrate=False) as db:
        counts = await row_counts(db)
    return counts["archived message"] + counts["archived snapshot"]


@pytest.mark.slow
def test_archive_killed_repeatedly_then_rerun_keeps_every_row_once(
    db_url: str, tmp_path: Path
) -> None:
    async def build() -> tuple[list[Any], dict[str, int]]:
        async with open_database(db_url) as db:
            await build_community(db)
            await store_readings(db, generated_readings(11, every_hours=4))
            return await all_reports(db), await row_counts(db)

    before, counts = asyncio.run(build())
    assert counts["hot old snapshot"] > 2_000
    rng = random.Random(99)
    kills = 0
    for _ in range(4):
        seen = asyncio.run(_archived_so_far(db_url))
        proc = _archiver(db_url, tmp_path)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if asyncio.run(_archived_so_far(db_url)) > seen:
                break  # it is moving rows: kill it at a random instant from here
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 2, "the archive finished too fast to be interrupted"
    final = _archiver(db_url, tmp_path)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()

    async def check() -> None:
        async with open_database(db_url) as db:
            assert_every_row_once(
                await row_counts(db), counts["hot message"], counts["hot snapshot"]
            )
            assert await all_reports(db) == before

    asyncio.run(check())


@pytest.fixture(autouse=True)
def _no_leftover_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Settings read a .env in the working directory: never the developer's
    monkeypatch.chdir(tmp_path)
    yield
