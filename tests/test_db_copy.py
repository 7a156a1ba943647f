"""`db copy`: the whole store moves between SQLite and PostgreSQL, row for row.

The copy is proved by reading every row of every table on both sides, by the reports
giving the same answers on both, and by the copied PostgreSQL database taking new rows
(its id sequences moved past the copied ids).
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from clanpulse.analytics.activity import activity_report
from clanpulse.analytics.clan import clan_report
from clanpulse.progress import SilentProgress
from clanpulse.records import Channel, GroupEvent, MessageKind
from clanpulse.store import copy as copy_module
from clanpulse.store.copy import COPY_BATCH, CopyError, copy_database
from clanpulse.store.database import Database, open_database
from clanpulse.store.ingest import ingest_batch, record_imported_file, set_cursor
from clanpulse.store.schema import data_version, job_run, member, message, metadata
from clanpulse.store.wom_ingest import (
    store_group_events,
    store_name_changes,
    store_snapshots,
    sync_roster,
    upsert_players,
)
from tests.cli_support import clanpulse
from tests.conftest import sqlite_url
from tests.factories import BRIDGE, at, batch, chat, user
from tests.wom_factories import membership, player, rename, snap

AS_OF = at("2026-03-29 12:00")
CLAN_CHAT = Channel(id=1188046507396431875, name="clan-chat", type=0, guild_id=1187817879744151553)
FERN = user(574204114108547089, "fernwhistle", global_name="Fern", nickname="Fern Whistle")
MARROW = user(745019384266883091, "marrowgate")
BOT = user(935000000000000001, "helper", is_bot=True)


async def populate_store(db: Database, *, chatter: int = 40) -> None:
    """A small clan in every table clanpulse writes: chat (counted, bots, bridge lines,
    edits), a roster, snapshots, renames, membership events, cursors, files, job runs."""
    async with db.write() as conn:
        lines = []
        for i in range(chatter):
            when = (AS_OF - timedelta(days=i * 2.5, minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
            who = FERN if i % 3 else MARROW
            lines.append(chat(who, when, content=f"line {i} ünïcødé ✓"))
        lines.append(chat(BOT, "2026-03-20 10:00", kind=MessageKind.BOT))
        lines.append(chat(FERN, "2026-03-21 10:00", edited="2026-03-21 10:05"))
        await ingest_batch(conn, batch(*lines, cursor=("discord", "general", "123")))
        relayed = [
            chat(
                BRIDGE,
                f"2026-03-{day:02d} 18:30",
                kind=MessageKind.BRIDGE_CHAT,
                speaker=name,
                channel=CLAN_CHAT,
            )
            for day, name in [(1, "Sea_Lark"), (12, "Iron Quill"), (27, "Sea_Lark"), (28, "Rook")]
        ]
        await ingest_batch(conn, batch(*relayed, channel=CLAN_CHAT))
        await record_imported_file(
            conn, sha256="ab" * 32, kind="discord-export", path="exports/a.json", size=9, items=3
        )
        await set_cursor(conn, "wom", "names", "42")
        players = [player(701, "Fern Whistle"), player(702, "Sea_Lark"), player(703, "Quill Pen")]
        accounts = await upsert_players(conn, players, AS_OF - timedelta(days=60))
        await sync_roster(
            conn,
            [membership(p, "member", AS_OF - timedelta(days=50)) for p in players],
            accounts,
            AS_OF - timedelta(days=60),
        )
        for pid in accounts:
            readings = [
                snap(pid, AS_OF - timedelta(days=d), 1_000_000 + pid * 10 + (40 - d) * 997)
                for d in range(40, 0, -3)
            ]
            await store_snapshots(conn, accounts[pid], readings)
        await store_name_changes(
            conn,
            [rename(9001, 703, "Iron Quill", "Quill Pen", AS_OF - timedelta(days=5))],
            accounts,
        )
        await store_group_events(
            conn,
            [GroupEvent(702, "changed_role", "deputy_owner", "member", AS_OF - timedelta(days=9))],
            accounts,
        )
        await conn.execute(
            job_run.insert(),
            [
                {
                    "job": "harvest_wom",
                    "started_at": AS_OF,
                    "status": "ok",
                    "items": 3,
                    "error": None,
                },
                {
                    "job": "harvest_discord",
                    "started_at": AS_OF,
                    "status": "failed",
                    "items": 0,
                    "error": "x",
                },
            ],
        )


async def every_row(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every data table, in primary key order (the data version counts each
    database's own write transactions: a copy starts its own)."""
    async with db.read() as conn:
        return {
            table.name: [
                tuple(row)
                for row in await conn.execute(select(table).order_by(*table.primary_key.columns))
            ]
            for table in metadata.sorted_tables
            if table is not data_version
        }


async def reports(db: Database) -> tuple[Any, Any]:
    async with db.read() as conn:
        return await activity_report(conn, AS_OF), await clan_report(conn, AS_OF, 30)


class Recorder:
    """A Progress that remembers what it was told."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.finished: dict[str, str] = {}
        self.fail_on = fail_on

    def start(self, name: str, total: int | None = None) -> None:
        if name == self.fail_on:
            raise RuntimeError(f"killed while copying {name}")

    def advance(self, name: str, amount: int = 1) -> None:
        pass

    def finish(self, name: str, note: str = "") -> None:
        self.finished[name] = note


async def test_sqlite_to_postgresql_and_back_copies_every_row(
    tmp_path: Path, postgres_url: str
) -> None:
    async with open_database(sqlite_url(tmp_path / "source.db")) as source:
        await populate_store(source)
        original = await every_row(source)
        original_reports = await reports(source)
        progress = Recorder()
        report = await copy_database(source, postgres_url, progress=progress)
    assert original["message"] and original["snapshot"] and original["name_change"]
    assert {t.table: t.rows for t in report.tables} == {k: len(v) for k, v in original.items()}
    assert progress.finished["message"] == f"{len(original['message'])} rows"

    async with open_database(postgres_url) as pg:
        assert await every_row(pg) == original
        assert await reports(pg) == original_reports
        back = sqlite_url(tmp_path / "back.db")
        await copy_database(pg, back, progress=SilentProgress())
    async with open_database(back) as round_trip:
        assert await every_row(round_trip) == original
        assert await reports(round_trip) == original_reports


async def test_the_copied_postgresql_database_takes_new_rows(
    tmp_path: Path, postgres_url: str
) -> None:
    async with open_database(sqlite_url(tmp_path / "source.db")) as source:
        await populate_store(source)
        await copy_database(source, postgres_url, progress=SilentProgress())
        biggest = await every_row(source)
    async with open_database(postgres_url) as pg:
        # ids come from the sequences: they must start past the copied ids
        async with pg.write() as conn:
            await ingest_batch(conn, batch(chat(user(1, "newcomer"), "2026-03-29 11:00")))
            new_job = await conn.execute(
                job_run.insert()
                .values(job="maintain", started_at=AS_OF, status="ok")
                .returning(job_run.c.id)
            )
            assert new_job.scalar_one() == max(row[0] for row in biggest["job_run"]) + 1
        async with pg.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(message))).scalar_one() == (
                len(biggest["message"]) + 1
            )
            members = (await conn.execute(select(func.count()).select_from(member))).scalar_one()
            assert members == len(biggest["member"]) + 1


async def test_a_non_empty_target_is_refused_and_left_alone(tmp_path: Path, db_url: str) -> None:
    async with open_database(db_url) as target:
        async with target.write() as conn:
            await ingest_batch(conn, batch(chat(user(1, "already"), "2026-03-01 10:00")))
        before = await every_row(target)
    async with open_database(sqlite_url(tmp_path / "source.db")) as source:
        await populate_store(source)
        with pytest.raises(CopyError, match="not empty"):
            await copy_database(source, db_url, progress=SilentProgress())
    async with open_database(db_url) as target:
        assert await every_row(target) == before


async def test_a_copy_killed_half_way_leaves_an_empty_target_and_runs_again(
    tmp_path: Path, db_url: str
) -> None:
    async with open_database(sqlite_url(tmp_path / "source.db")) as source:
        await populate_store(source)
        # tables before "message" are already written when the copy dies
        with pytest.raises(RuntimeError, match="killed"):
            await copy_database(source, db_url, progress=Recorder(fail_on="message"))
        async with open_database(db_url) as target:
            assert all(rows == [] for rows in (await every_row(target)).values())
        await copy_database(source, db_url, progress=SilentProgress())
        original = await every_row(source)
    async with open_database(db_url) as target:
        assert await every_row(target) == original


async def test_rows_are_streamed_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_module, "COPY_BATCH", 7)
    sizes: list[int] = []

    class Batches(Recorder):
        def advance(self, name: str, amount: int = 1) -> None:
            if name == "message":
                sizes.append(amount)

    async with open_database(sqlite_url(tmp_path / "source.db")) as source:
        await populate_store(source, chatter=30)
        await copy_database(source, sqlite_url(tmp_path / "t.db"), progress=Batches())
        count = len((await every_row(source))["message"])
    assert COPY_BATCH >= 1000  # the real batch size
    assert sizes and max(sizes) == 7 and sum(sizes) == count


async def test_copying_a_database_onto_itself_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "source.db")
    async with open_database(url) as source:
        with pytest.raises(CopyError, match="source database itself"):
            await copy_database(source, url, progress=SilentProgress())


# --------------------------------------------------------------------------------------
# the command


def test_db_copy_command_copies_refuses_a_second_time_and_never_shows_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    for key in list(os.environ):
        if key.startswith("CLANPULSE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    source_url = sqlite_url(tmp_path / "clanpulse.db")
    monkeypatch.setenv("CLANPULSE_DATABASE_URL", source_url)

    async def fill() -> dict[str, list[tuple[Any, ...]]]:
        async with open_database(source_url) as source:
            await populate_store(source)
            return await every_row(source)

    original = asyncio.run(fill())
    # the local server trusts every connection, so any password does: it must never show
    target = postgres_url.replace("postgres@", "postgres:s3cret@")
    assert "s3cret" in target

    out = clanpulse("db", "copy", "--to", target).output
    assert f"copied {sum(len(rows) for rows in original.values())} rows" in out
    assert "***" in out and "s3cret" not in out

    again = clanpulse("db", "copy", "--to", target, code=1).output
    assert "is not empty" in again and "s3cret" not in again

    refused = clanpulse("db", "copy", "--to", "mysql://root:s3cret@localhost/x", code=2).output
    assert "--to must be" in refused and "s3cret" not in refused

    async def copied() -> dict[str, list[tuple[Any, ...]]]:
        async with open_database(postgres_url) as target_db:
            return await every_row(target_db)

    assert asyncio.run(copied()) == original


async def test_archived_rows_are_copied_too_both_ways(tmp_path: Path, postgres_url: str) -> None:
    from clanpulse.ops.archive import archive_cold
    from clanpulse.settings import load_settings

    async def archived(db: Database) -> int:
        report = await archive_cold(db, load_settings(database_url=db.url, hot_days=30), AS_OF)
        return report.messages + report.snapshots

    async with open_database(sqlite_url(tmp_path / "source.db")) as source:
        await populate_store(source)
        original = await every_row(source)
        original_reports = await reports(source)
        assert await archived(source) > 0
        await copy_database(source, postgres_url, progress=SilentProgress())
    async with open_database(postgres_url) as pg:
        assert await every_row(pg) == original
        assert await archived(pg) > 0  # moved again in the copy, then copied back
        back = sqlite_url(tmp_path / "back.db")
        await copy_database(pg, back, progress=SilentProgress())
    async with open_database(back) as round_trip:
        assert await every_row(round_trip) == original
        assert await reports(round_trip) == original_reports
