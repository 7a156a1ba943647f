"""Benchmark: the clan report and the activity report on a big, realistic database.

The database (built once, then cached under ``bench/.cache/`` keyed by its parameters):

* ``--members`` (500) clan members, each with an Old School RuneScape account on the clan
  roster (``upsert_players`` + ``sync_roster``) and a Discord account linked to it
  (``auto_link``: the Discord display name is the in-game name);
* a Wise Old Man reading every ``--every-hours`` (1) hours over ``--days`` (730) days for
  every member: 17,520 per member, 8.76 M rows at the defaults. Each row's ``data`` is
  ``pack_snapshot_data`` of a compact but real-shaped reading (overall, one boss, computed
  EHP/EHB: ~140 bytes), so the file stays around 2-3 GB;
* ``--messages`` (1 M) Discord chat messages by the same members over the same days,
  through ``ingest_batch`` (classified ``CHAT``, three channels, 5,000 per batch), so the
  daily rollup is the real one;
* a few approved renames in the last month (``store_name_changes``).

Building is setup, not what is measured. Readings go through ``store_snapshots`` (the
harvest's own insert) in one batch per member when that is fast enough; with ``--build
auto`` (default) the first members are timed and, if the whole would take over 15 minutes,
the rest are written by a fast path: plain ``sqlite3`` ``executemany`` (or ``COPY`` on
PostgreSQL) of exactly the rows ``store_snapshots`` writes, into the schema that
``open_database`` created. The build records which path it took.

Measured: ``clan_report(conn, as_of, 30)`` and ``activity_report(conn, as_of)``, each in its
own read transaction as the CLI runs them, median of ``--runs`` (5) after one warm-up; also
their parts (``message_counts``, ``progress_by_account``, ``people``), and every SQL statement
of one clan report with its time, and the query plan (``EXPLAIN QUERY PLAN`` on SQLite,
``EXPLAIN ANALYZE`` on PostgreSQL) of the slowest ones. As the machine is shared, a
baseline measured in the same process is reported too: the same reports on a small database
(50 members, 30 days) built alongside, and the ratio big/small.

Goal: clan report <= 1 s.

Run: ``uv run python bench/clan_report.py`` (first run builds for ~10-20 minutes; later
runs reuse the cache). Smaller variants: ``--members 100 --days 90``. PostgreSQL as well:
``--postgres postgresql://postgres@127.0.0.1:5432/postgres`` (a database named after the
parameters is created on that server and kept as the cache). Results:
``bench/results/clan_report.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from clanpulse.analytics.activity import activity_report, message_counts
from clanpulse.analytics.clan import clan_report
from clanpulse.analytics.gains import progress_by_account
from clanpulse.analytics.members import people
from clanpulse.identity import auto_link
from clanpulse.names import normalize_osrs_name
from clanpulse.records import (
    Channel,
    ChatMessage,
    ClassifiedMessage,
    DiscordUser,
    GroupMembership,
    MessageBatch,
    MessageKind,
    NameChange,
    Snapshot,
    WomPlayer,
)
from clanpulse.store.database import Database, open_database
from clanpulse.store.ingest import ingest_batch
from clanpulse.store.schema import (
    account,
    member,
    message,
    message_rollup,
    name_change,
    snapshot,
)
from clanpulse.store.wom_ingest import (
    pack_snapshot_data,
    store_name_changes,
    store_snapshots,
    sync_roster,
    upsert_players,
)

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results" / "clan_report.json"
BUILD_VERSION = 1  # bump when the generated data changes shape
END = datetime(2026, 11, 1, tzinfo=UTC)  # data covers [END - days, END): fixed, so caches last
AS_OF = END - timedelta(hours=5, minutes=30)  # inside as_of's own day: partial days are read
INACTIVE_DAYS = 30
GOAL_S = 1.0
SLOW_STATEMENT_S = 0.1
BUILD_BUDGET_S = 15 * 60  # projected snapshot build above this: fast path
PROBE_MEMBERS = 4  # members written through store_snapshots before projecting
MESSAGE_BATCH = 5_000
FAST_CHUNK = 50_000
DISCORD_EPOCH_MS = 1_420_070_400_000
SNAPSHOT_COLUMNS = ("account_id", "taken_at", "overall_xp", "ehp", "ehb", "boss_kills", "data")
FIRST_PLAYER_ID = 800_001
FIRST_DISCORD_ID = 300_000_000_000_000_000
CHANNELS = (
    (Channel(id=1187817881589645314, name="general", type=0, guild_id=1187817879744151553), 0.6),
    (Channel(id=1187817881589645315, name="pvm", type=0, guild_id=1187817879744151553), 0.3),
    (Channel(id=1187817881589645316, name="clan-chat", type=0, guild_id=1187817879744151553), 0.1),
)
WORDS = (
    "gz",
    "anyone up for cox",
    "lf tob",
    "nice drop",
    "brb",
    "what world",
    "mass at 8?",
    "finally 99",
    "ty",
    "lol",
    "who has a spare pet",
    "gl on the grind",
)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# the synthetic clan


@dataclass(frozen=True)
class Params:
    members: int
    days: int
    every_hours: float
    messages: int
    seed: int

    @property
    def key(self) -> str:
        hours = f"{self.every_hours:g}".replace(".", "p")
        return (
            f"clan-v{BUILD_VERSION}-m{self.members}-d{self.days}-h{hours}"
            f"-msg{self.messages}-s{self.seed}"
        )

    @property
    def start(self) -> datetime:
        return END - timedelta(days=self.days)

    @property
    def readings_per_member(self) -> int:
        return int(self.days * 24 / self.every_hours)


@dataclass(frozen=True)
class Person:
    index: int
    name: str
    player: WomPlayer
    discord: DiscordUser
    joined_at: datetime
    active: float  # share of hours with progress
    xp_rate: float
    start_xp: int
    quit_at: datetime | None  # stops playing and chatting
    chattiness: float


def clan(params: Params) -> list[Person]:
    rng = random.Random(params.seed)
    span = END - params.start
    people_: list[Person] = []
    for i in range(params.members):
        name = f"Heron {i:04d}"[:12]
        roll = rng.random()
        if roll < 0.03:
            joined = END - timedelta(days=rng.uniform(0.5, 13))  # "new"
        elif roll < 0.2:
            joined = params.start + span * rng.random()
        else:
            joined = params.start - timedelta(days=rng.uniform(1, 1500))
        quit_at = None
        if rng.random() < 0.12:
            quit_at = END - timedelta(days=rng.uniform(31, min(400, params.days)))
            quit_at = max(quit_at, params.start + timedelta(days=1))
            if quit_at <= joined + timedelta(days=7):
                quit_at = None  # nobody quits within a week of joining here
        people_.append(
            Person(
                index=i,
                name=name,
                player=WomPlayer(
                    id=FIRST_PLAYER_ID + i, username=normalize_osrs_name(name), display_name=name
                ),
                discord=DiscordUser(
                    id=FIRST_DISCORD_ID + i, username=f"heron_fan_{i}", global_name=name
                ),
                joined_at=joined,
                active=rng.uniform(0.02, 0.3),
                xp_rate=rng.uniform(20_000, 150_000),
                start_xp=rng.randrange(1_000_000, 300_000_000),
                quit_at=quit_at,
                chattiness=rng.lognormvariate(0, 1.2),
            )
        )
    return people_


def reading(xp: int, ehp: float, kills: int, ehb: float) -> dict[str, Any]:
    """A compact reading with WOM's shape (what the parsers keep, minus most metrics)."""
    return {
        "skills": {
            "overall": {
                "metric": "overall",
                "experience": xp,
                "rank": max(1, 2_000_000 - xp // 200),
                "level": min(2277, 32 + xp // 200_000),
                "ehp": ehp,
            }
        },
        "bosses": {
            "vorkath": {"metric": "vorkath", "kills": kills, "rank": 50_000, "ehb": ehb},
        },
        "activities": {},
        "computed": {
            "ehp": {"metric": "ehp", "value": ehp, "rank": 10_000},
            "ehb": {"metric": "ehb", "value": ehb, "rank": 20_000},
        },
    }


def readings(params: Params, person: Person) -> Iterator[tuple[datetime, int, float, float, int]]:
    """(taken_at, overall_xp, ehp, ehb, boss_kills), oldest first."""
    rng = random.Random(params.seed * 1_000_003 + person.index)
    step = timedelta(hours=params.every_hours)
    offset = timedelta(seconds=rng.randrange(int(params.every_hours * 3600)))
    at = params.start + offset
    xp, kills = person.start_xp, rng.randrange(0, 3000)
    quit_at = person.quit_at or END
    active, rate = person.active, person.xp_rate * params.every_hours
    for _ in range(params.readings_per_member):
        if at >= END:
            break
        if at < quit_at and rng.random() < active:
            xp += int(rate * (0.5 + rng.random()))
            if rng.random() < 0.3:
                kills += rng.randrange(1, 8)
        ehp = round(xp / 180_000, 3)
        ehb = round(kills / 32, 3)
        yield at, xp, ehp, ehb, kills
        at += step


def snapshot_records(params: Params, person: Person) -> list[Snapshot]:
    return [
        Snapshot(person.player.id, at, xp, ehp, ehb, kills, reading(xp, ehp, kills, ehb))
        for at, xp, ehp, ehb, kills in readings(params, person)
    ]


def message_times(params: Params, crowd: list[Person]) -> list[tuple[int, int, int]]:
    """(unix ms, person index, channel index) of every message, in time order."""
    rng = random.Random(params.seed + 17)
    weights = [p.chattiness for p in crowd]
    span_ms = int((END - params.start).total_seconds() * 1000)
    start_ms = int(params.start.timestamp() * 1000)
    chosen = rng.choices(range(len(crowd)), weights=weights, k=params.messages)
    channel_weights = [w for _, w in CHANNELS]
    out = []
    for who in chosen:
        person = crowd[who]
        # members chat while in the clan: from joining (or the start) until they quit
        lo = max(start_ms, int(person.joined_at.timestamp() * 1000))
        hi = start_ms + span_ms
        if person.quit_at is not None:
            hi = int(person.quit_at.timestamp() * 1000)
        at = lo + int((hi - lo) * rng.random())
        channel = rng.choices(range(len(CHANNELS)), weights=channel_weights)[0]
        out.append((at, who, channel))
    out.sort()
    return out


# --------------------------------------------------------------------------------------
# building


@dataclass
class BuildInfo:
    seconds: float = 0.0
    snapshot_path: str = "store_snapshots"
    store_members: int = 0
    fast_members: int = 0
    snapshot_seconds: float = 0.0
    message_seconds: float = 0.0
    store_rows_per_s: float | None = None


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    assert database is not None
    return Path(database)


async def build(db: Database, params: Params, mode: str) -> BuildInfo:
    info = BuildInfo()
    t0 = time.perf_counter()
    crowd = clan(params)
    async with db.write() as conn:
        accounts = await upsert_players(conn, (p.player for p in crowd), params.start)
        memberships = [GroupMembership(p.player, "member", p.joined_at) for p in crowd]
        await sync_roster(conn, memberships, accounts, END)

    # -- readings --------------------------------------------------------------------------
    ts = time.perf_counter()
    fast_from = len(crowd) if mode == "store" else 0
    if mode == "auto":
        fast_from = len(crowd)
        probe = min(PROBE_MEMBERS, len(crowd))
        for person in crowd[:probe]:
            await _store_member(db, params, person, accounts)
        elapsed = time.perf_counter() - ts
        rows = probe * params.readings_per_member
        info.store_rows_per_s = rows / elapsed if elapsed > 0 else None
        projected = elapsed / probe * len(crowd) if probe else 0.0
        log(
            f"  store_snapshots: {info.store_rows_per_s:,.0f} rows/s, the whole build "
            f"~{projected / 60:.1f} min"
        )
        fast_from = probe if projected > BUILD_BUDGET_S else len(crowd)
        start_at = probe
    else:
        start_at = 0
    for n, person in enumerate(crowd[start_at:fast_from], start=start_at + 1):
        await _store_member(db, params, person, accounts)
        if n % 25 == 0:
            log(f"  readings: {n}/{len(crowd)} members ({time.perf_counter() - ts:.0f} s)")
    info.store_members = fast_from
    info.fast_members = len(crowd) - fast_from
    if info.fast_members:
        await _fast_readings(db, params, crowd[fast_from:], accounts, ts)
        info.snapshot_path = (
            f"store_snapshots for {fast_from} members, fast path for {info.fast_members}"
            if fast_from
            else "fast path"
        )
    info.snapshot_seconds = time.perf_counter() - ts

    # -- chat ------------------------------------------------------------------------------
    tm = time.perf_counter()
    await _chat(db, params, crowd)
    info.message_seconds = time.perf_counter() - tm

    # -- identities and renames --------------------------------------------------------------
    async with db.write() as conn:
        linked = await auto_link(conn)
    log(f"  auto_link linked {linked} Discord accounts to their in-game accounts")
    rng = random.Random(params.seed + 99)
    renamed = rng.sample(crowd, k=min(8, len(crowd)))
    changes = [
        NameChange(
            id=90_000 + n,
            player_id=p.player.id,
            old_name=f"Old Heron {n}",
            new_name=p.name,
            resolved_at=AS_OF - timedelta(days=rng.uniform(1, 29)),
        )
        for n, p in enumerate(renamed)
    ]
    async with db.write() as conn:
        await store_name_changes(conn, changes, accounts)
    info.seconds = time.perf_counter() - t0
    return info


async def _store_member(
    db: Database, params: Params, person: Person, accounts: dict[int, int]
) -> None:
    records = snapshot_records(params, person)
    async with db.write() as conn:
        await store_snapshots(conn, accounts[person.player.id], records)


def _fast_rows(
    params: Params, person: Person, account_id: int, *, text_time: bool
) -> Iterator[tuple[Any, ...]]:
    """Exactly the row ``store_snapshots`` writes (naive UTC; SQLite keeps it as text)."""
    for at, xp, ehp, ehb, kills in readings(params, person):
        naive = at.replace(tzinfo=None)
        taken = naive.strftime("%Y-%m-%d %H:%M:%S.%f") if text_time else naive
        data = pack_snapshot_data(reading(xp, ehp, kills, ehb))
        yield (account_id, taken, xp, ehp, ehb, kills, data)


async def _fast_readings(
    db: Database,
    params: Params,
    crowd: list[Person],
    accounts: dict[int, int],
    started: float,
) -> None:
    if db.backend == "sqlite":
        path = sqlite_path(db.url)
        await db.close()  # the async engines let go of the file; open again on next use
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = OFF")  # setup only: a crash means rebuild
            insert = (
                f"INSERT INTO snapshot ({', '.join(SNAPSHOT_COLUMNS)})"
                f" VALUES ({', '.join('?' for _ in SNAPSHOT_COLUMNS)})"
            )
            for n, person in enumerate(crowd, start=1):
                conn.execute("BEGIN IMMEDIATE")
                rows = _fast_rows(params, person, accounts[person.player.id], text_time=True)
                conn.executemany(insert, rows)
                conn.execute("COMMIT")
                if n % 50 == 0:
                    spent = time.perf_counter() - started
                    log(f"  readings (fast): {n}/{len(crowd)} ({spent:.0f} s)")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        return
    import asyncpg

    url = make_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)
    pg = await asyncpg.connect(url)
    try:
        for n, person in enumerate(crowd, start=1):
            rows = list(_fast_rows(params, person, accounts[person.player.id], text_time=False))
            await pg.copy_records_to_table(
                "snapshot",
                records=rows,
                columns=list(SNAPSHOT_COLUMNS),
            )
            if n % 50 == 0:
                log(f"  readings (COPY): {n}/{len(crowd)} ({time.perf_counter() - started:.0f} s)")
    finally:
        await pg.close()


async def _chat(db: Database, params: Params, crowd: list[Person]) -> None:
    times = message_times(params, crowd)
    pending: dict[int, list[ClassifiedMessage]] = {i: [] for i in range(len(CHANNELS))}
    written = 0
    started = time.perf_counter()

    async def flush(channel_index: int) -> None:
        nonlocal written
        batch = MessageBatch(channel=CHANNELS[channel_index][0], messages=pending[channel_index])
        async with db.write() as conn:
            await ingest_batch(conn, batch)
        written += len(batch.messages)
        pending[channel_index] = []
        if written % (MESSAGE_BATCH * 40) < MESSAGE_BATCH:
            log(f"  chat: {written:,}/{len(times):,} ({time.perf_counter() - started:.0f} s)")

    for counter, (at_ms, who, channel_index) in enumerate(times, start=1):
        person = crowd[who]
        channel = CHANNELS[channel_index][0]
        sent = datetime.fromtimestamp(at_ms / 1000, UTC)
        msg = ChatMessage(
            id=((at_ms - DISCORD_EPOCH_MS) << 22) | (counter % 4096),
            channel_id=channel.id,
            author=person.discord,
            sent_at=sent,
            type=0,
            content=WORDS[counter % len(WORDS)],
        )
        pending[channel_index].append(ClassifiedMessage(message=msg, kind=MessageKind.CHAT))
        if len(pending[channel_index]) >= MESSAGE_BATCH:
            await flush(channel_index)
    for channel_index in pending:
        if pending[channel_index]:
            await flush(channel_index)


# --------------------------------------------------------------------------------------
# databases and their cache


def _finish_file(building: Path, path: Path) -> None:
    """Fold the WAL into the file and move it where the cache looks."""
    conn = sqlite3.connect(building)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    shutil.move(building, path)


async def sqlite_database(params: Params, mode: str, rebuild: bool) -> tuple[str, dict[str, Any]]:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{params.key}.db"
    meta_path = CACHE / f"{params.key}.json"
    if path.exists() and meta_path.exists() and not rebuild:
        return f"sqlite+aiosqlite:///{path}", json.loads(meta_path.read_text())
    building = CACHE / f"{params.key}.building.db"
    for stale in (building, Path(f"{building}-wal"), Path(f"{building}-shm"), path, meta_path):
        stale.unlink(missing_ok=True)
    url = f"sqlite+aiosqlite:///{building}"
    log(f"building {path.name} (setup, not measured) ...")
    async with open_database(url) as db:
        info = await build(db, params, mode)
    _finish_file(building, path)
    meta = {"params": vars(params), "build": vars(info), "built_at": datetime.now(UTC).isoformat()}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return f"sqlite+aiosqlite:///{path}", meta


async def postgres_database(
    admin_url: str, params: Params, mode: str, rebuild: bool
) -> tuple[str, dict[str, Any]]:
    import asyncpg

    name = params.key.replace("-", "_")
    admin = make_url(admin_url).set(drivername="postgresql")
    target = admin.set(database=name)
    url = target.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    meta_path = CACHE / f"{params.key}.pg-{admin.host}-{admin.port or 5432}.json"
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and meta_path.exists() and not rebuild:
            return url, json.loads(meta_path.read_text())
        meta_path.unlink(missing_ok=True)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    log(f"building PostgreSQL database {name} (setup, not measured) ...")
    async with open_database(url) as db:
        info = await build(db, params, mode)
    meta = {"params": vars(params), "build": vars(info), "built_at": datetime.now(UTC).isoformat()}
    CACHE.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return url, meta


# --------------------------------------------------------------------------------------
# measuring


@dataclass
class Statement:
    sql: str
    params: Any
    seconds: float


class StatementLog:
    """Every statement the reader engine runs while enabled, with its time."""

    def __init__(self, db: Database) -> None:
        self.enabled = False
        self.found: list[Statement] = []
        engine = db.reader.sync_engine
        starts: dict[int, float] = {}

        @event.listens_for(engine, "before_cursor_execute")
        def _before(conn: Any, cursor: Any, statement: str, parameters: Any, *a: Any) -> None:
            starts[id(cursor)] = time.perf_counter()

        @event.listens_for(engine, "after_cursor_execute")
        def _after(conn: Any, cursor: Any, statement: str, parameters: Any, *a: Any) -> None:
            began = starts.pop(id(cursor), None)
            if self.enabled and began is not None:
                self.found.append(Statement(statement, parameters, time.perf_counter() - began))


async def timed(
    db: Database,
    work: Callable[[AsyncConnection], Awaitable[Any]],
    runs: int,
    budget_s: float,
) -> dict[str, Any]:
    """One warm-up, then ``runs`` runs (fewer if they would not fit in ``budget_s``), each in
    its own read transaction, as the CLI runs a report."""
    t0 = time.perf_counter()
    async with db.read() as conn:
        await work(conn)
    warm_up = time.perf_counter() - t0
    planned = runs
    if warm_up * runs > budget_s:
        runs = max(1, int(budget_s // max(warm_up, 1e-9)))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        async with db.read() as conn:
            await work(conn)
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "warm_up_s": round(warm_up, 4),
        "runs_s": [round(t, 4) for t in times],
        "runs_planned": planned,
    }


async def plans(db: Database, statements: list[Statement]) -> list[dict[str, Any]]:
    out = []
    async with db.read() as conn:
        for st in statements:
            if db.backend == "sqlite":
                result = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + st.sql, st.params)
                lines = _plan_lines(result.all())
            else:
                result = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + st.sql, st.params
                )
                lines = [row[0] for row in result.all()]
            out.append({"seconds": round(st.seconds, 4), "sql": st.sql, "plan": lines})
    return out


def _plan_lines(rows: list[Any]) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN rows (id, parent, notused, detail) as an indented tree."""
    depth: dict[int, int] = {0: -1}
    lines = []
    for node, parent, _, detail in rows:
        depth[node] = depth.get(parent, -1) + 1
        lines.append("  " * depth[node] + str(detail))
    return lines


async def row_counts(db: Database) -> dict[str, int]:
    counts = {}
    async with db.read() as conn:
        for table in (member, account, snapshot, message, message_rollup, name_change):
            counts[table.name] = int(
                (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            )
    return counts


async def measure(url: str, runs: int, budget_s: float, *, label: str) -> dict[str, Any]:
    async with open_database(url) as db:
        log(f"measuring {label} ...")
        counts = await row_counts(db)
        statements = StatementLog(db)
        result: dict[str, Any] = {"rows": counts}

        async def run_clan(conn: AsyncConnection) -> Any:
            return await clan_report(conn, AS_OF, INACTIVE_DAYS)

        async def activity(conn: AsyncConnection) -> Any:
            return await activity_report(conn, AS_OF)

        result["clan_report"] = await timed(db, run_clan, runs, budget_s)
        result["activity_report"] = await timed(db, activity, runs, budget_s)
        parts: dict[str, Callable[[AsyncConnection], Awaitable[Any]]] = {
            "message_counts": lambda c: message_counts(c, AS_OF),
            "progress_by_account": lambda c: progress_by_account(c, AS_OF),
            "people": people,
        }
        result["parts"] = {
            name: await timed(db, work, 3, budget_s / 2) for name, work in parts.items()
        }
        async with db.read() as conn:
            report = await run_clan(conn)
        result["clan_rows"] = len(report.rows)
        result["by_status"] = report.summary.by_status

        statements.enabled = True
        async with db.read() as conn:
            await run_clan(conn)
        statements.enabled = False
        found = sorted(statements.found, key=lambda s: -s.seconds)
        result["statements"] = {
            "count": len(found),
            "total_s": round(sum(s.seconds for s in found), 4),
        }
        slow = [s for s in found if s.seconds >= SLOW_STATEMENT_S]
        top = found[: max(3, len(slow))]
        result["slowest_statements"] = await plans(db, top)
        if db.backend == "sqlite":
            path = sqlite_path(url)
            result["file_bytes"] = path.stat().st_size
    return result


def print_result(label: str, result: dict[str, Any], *, show_plans: bool) -> None:
    rows = result["rows"]
    print(f"\n== {label}")
    print(
        "rows: "
        + ", ".join(f"{name} {count:,}" for name, count in rows.items())
        + (f"; file {result['file_bytes'] / 1e9:.2f} GB" if "file_bytes" in result else "")
    )
    print(f"clan report rows: {result['clan_rows']}, status {result['by_status']}")
    for name in ("clan_report", "activity_report"):
        r = result[name]
        print(
            f"{name:<20} median {r['median_s'] * 1000:8.1f} ms  "
            f"(min {r['min_s'] * 1000:.1f}, max {r['max_s'] * 1000:.1f}, "
            f"{len(r['runs_s'])} runs after a {r['warm_up_s'] * 1000:.0f} ms warm-up)"
        )
    for name, r in result["parts"].items():
        print(f"  part {name:<20} median {r['median_s'] * 1000:8.1f} ms")
    st = result["statements"]
    total_ms = st["total_s"] * 1000
    print(f"  {st['count']} SQL statements in one clan report, {total_ms:.1f} ms in all")
    for item in result["slowest_statements"]:
        slow = item["seconds"] >= SLOW_STATEMENT_S
        print(f"  {item['seconds'] * 1000:8.1f} ms  {' '.join(item['sql'].split())[:150]}")
        if show_plans or slow:
            for line in item["plan"]:
                print(f"      | {line}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Clan report and activity report on a big database.")
    p.add_argument("--members", type=int, default=500)
    p.add_argument("--days", type=int, default=730)
    p.add_argument("--every-hours", type=float, default=1.0)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--runs", type=int, default=5, help="timed runs after one warm-up")
    p.add_argument(
        "--budget", type=float, default=300.0, help="seconds of timed runs per report at most"
    )
    p.add_argument("--build", choices=("auto", "store", "fast"), default="auto")
    p.add_argument("--rebuild", action="store_true", help="ignore the cached database")
    p.add_argument("--postgres", metavar="URL", help="also on PostgreSQL (an admin URL)")
    p.add_argument("--no-baseline", action="store_true", help="skip the small baseline database")
    p.add_argument("--output", type=Path, default=RESULTS)
    return p.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    params = Params(args.members, args.days, args.every_hours, args.messages, args.seed)
    out: dict[str, Any] = {
        "bench": "clan_report",
        "started_at": datetime.now(UTC).isoformat(),
        "as_of": AS_OF.isoformat(),
        "inactive_days": INACTIVE_DAYS,
        "goal_s": GOAL_S,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
        },
        "parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "backends": {},
    }
    targets: list[tuple[str, str, dict[str, Any]]] = []
    url, meta = await sqlite_database(params, args.build, args.rebuild)
    targets.append(("sqlite", url, meta))
    if args.postgres:
        pg_url, pg_meta = await postgres_database(args.postgres, params, args.build, args.rebuild)
        targets.append(("postgresql", pg_url, pg_meta))
    baseline_params = Params(50, 30, args.every_hours, 20_000, args.seed)
    for backend, target_url, target_meta in targets:
        entry: dict[str, Any] = {"build": target_meta}
        entry["big"] = await measure(
            target_url, args.runs, args.budget, label=f"{backend} {params.key}"
        )
        if not args.no_baseline:
            if backend == "sqlite":
                base_url, _ = await sqlite_database(baseline_params, "store", False)
            else:
                base_url, _ = await postgres_database(
                    args.postgres, baseline_params, "store", False
                )
            entry["baseline"] = await measure(
                base_url, args.runs, args.budget, label=f"{backend} baseline {baseline_params.key}"
            )
            entry["ratio_to_baseline"] = {
                name: entry["big"][name]["median_s"] / entry["baseline"][name]["median_s"]
                for name in ("clan_report", "activity_report")
            }
        entry["goal_met"] = entry["big"]["clan_report"]["median_s"] <= GOAL_S
        out["backends"][backend] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    for backend, entry in result["backends"].items():
        build_info = entry["build"]["build"]
        print(
            f"\n{backend}: built in {build_info['seconds'] / 60:.1f} min "
            f"({build_info['snapshot_path']}), cached"
        )
        met = entry["goal_met"]
        print_result(f"{backend}: big database", entry["big"], show_plans=not met)
        if "baseline" in entry:
            print_result(
                f"{backend}: baseline (50 members, 30 days)", entry["baseline"], show_plans=False
            )
            ratios = entry["ratio_to_baseline"]
            print(
                "ratio big/baseline: "
                + ", ".join(f"{name} {value:.1f}x" for name, value in ratios.items())
            )
        median = entry["big"]["clan_report"]["median_s"]
        verdict = "met" if met else "MISSED"
        print(f"goal clan report <= {GOAL_S:g} s on {backend}: {verdict} ({median * 1000:.0f} ms)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nresults written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
